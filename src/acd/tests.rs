//! The ACD core on fake time: every strategy, ring timeouts, wrap-up, the
//! ring-all race, overflow rules, agents losing their phones.

use super::*;

struct T {
    acd: Acd,
    now: Instant,
    out: Vec<Output>,
}

fn queue(strategy: Strategy, members: &[&str]) -> QueueConfig {
    QueueConfig {
        name: "support".into(),
        strategy,
        members: members.iter().map(|m| (*m).to_owned()).collect(),
        ring_timeout_secs: 15,
        wrap_up_secs: 10,
        max_len: 3,
        max_wait_secs: 600,
        join_empty: false,
        leave_empty: true,
        no_answer_pause: true,
        service_level_secs: 20,
        skills: vec![],
    }
}

fn agent(ext: &str) -> AgentRef {
    AgentRef {
        tenant: 0,
        tenant_id: Arc::from("demo"),
        extension: ext.into(),
    }
}

impl T {
    fn new(q: QueueConfig) -> T {
        let now = Instant::now();
        let acd = Acd::new(
            &[(0, Arc::from("demo"), vec![q])],
            (
                now,
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            ),
            now,
        );
        T {
            acd,
            now,
            out: vec![],
        }
    }

    /// Registers these agents, one second apart (so idle times differ).
    fn online(&mut self, exts: &[&str]) {
        for e in exts {
            self.acd.reachable(self.now, &agent(e), true);
            self.advance(Duration::from_secs(1));
        }
        self.take();
    }

    fn take(&mut self) -> Vec<Output> {
        while let Some(o) = self.acd.poll_output() {
            self.out.push(o);
        }
        std::mem::take(&mut self.out)
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.acd.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t.max(self.now);
            self.acd.handle_timeout(self.now);
            while let Some(o) = self.acd.poll_output() {
                self.out.push(o);
            }
        }
        self.now = end;
    }

    fn join(&mut self, call: u64) {
        self.acd.enqueue(
            self.now,
            CallSlot(call),
            0,
            "support",
            0,
            Duration::from_secs(300),
        );
    }
}

fn rings(out: &[Output]) -> Vec<(u64, String, AttemptId)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Ring {
                call,
                attempt,
                agent,
            } => Some((call.0, agent.extension.clone(), *attempt)),
            _ => None,
        })
        .collect()
}

fn stops(out: &[Output]) -> Vec<AttemptId> {
    out.iter()
        .filter_map(|o| match o {
            Output::StopRing { attempt } => Some(*attempt),
            _ => None,
        })
        .collect()
}

fn state(t: &T, ext: &str) -> State {
    t.acd.state(&agent(ext)).cloned().expect("member")
}

#[test]
fn longest_idle_rings_the_agent_idle_longest_and_the_answer_bridges() {
    let mut t = T::new(queue(Strategy::LongestIdle, &["1001", "1002", "1003"]));
    t.online(&["1002", "1001", "1003"]);
    t.join(1);
    let out = t.take();
    let r = rings(&out);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1, "1002", "registered first: idle longest");
    assert_eq!(state(&t, "1002"), State::Ringing);
    t.acd.answered(t.now, r[0].2);
    let out = t.take();
    assert!(out.contains(&Output::Bridge {
        call: CallSlot(1),
        attempt: r[0].2,
        agent: agent("1002")
    }));
    assert_eq!(state(&t, "1002"), State::OnCall);
    let s = t.acd.stats(0, "support", t.now).expect("stats");
    assert_eq!(
        (s.answered, s.answered_in_service_level, s.waiting),
        (1, 1, 0)
    );
}

#[test]
fn a_ring_timeout_pauses_the_agent_and_rings_the_next() {
    let mut t = T::new(queue(Strategy::LongestIdle, &["1001", "1002"]));
    t.online(&["1001", "1002"]);
    t.join(1);
    let first = rings(&t.take());
    assert_eq!(first[0].1, "1001");
    t.advance(Duration::from_secs(15));
    let out = t.take();
    assert_eq!(stops(&out), vec![first[0].2], "the ringing leg is stopped");
    assert_eq!(state(&t, "1001"), State::Paused("no answer".into()));
    let next = rings(&out);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].1, "1002");
    assert!(out.iter().any(
        |o| matches!(o, Output::Timeline { event: "no answer", agent: Some(a), .. } if a == "1001")
    ));
}

#[test]
fn wrap_up_runs_its_full_time_before_the_next_call() {
    let mut t = T::new(queue(Strategy::LongestIdle, &["1001"]));
    t.online(&["1001"]);
    t.join(1);
    let r = rings(&t.take());
    t.acd.answered(t.now, r[0].2);
    t.take();
    t.advance(Duration::from_secs(30));
    t.acd.call_ended(t.now, CallSlot(1));
    assert_eq!(state(&t, "1001"), State::WrapUp);
    t.join(2);
    assert!(rings(&t.take()).is_empty(), "nobody is rung during wrap-up");
    t.advance(Duration::from_millis(9_999));
    assert!(rings(&t.take()).is_empty());
    assert_eq!(state(&t, "1001"), State::WrapUp);
    t.advance(Duration::from_millis(1));
    let out = t.take();
    let r = rings(&out);
    assert_eq!(r.len(), 1, "{out:?}");
    assert_eq!(r[0].0, 2);
    // The state history says wrap-up, never available, in between.
    let states: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            Output::AgentState { to, .. } => Some(to.name()),
            _ => None,
        })
        .collect();
    assert_eq!(states, vec!["available", "ringing"]);
}

#[test]
fn ring_all_rings_everyone_and_the_first_answer_wins_a_late_one_is_stopped() {
    let mut t = T::new(queue(Strategy::RingAll, &["1001", "1002"]));
    t.online(&["1001", "1002"]);
    t.join(1);
    let r = rings(&t.take());
    assert_eq!(r.len(), 2);
    let (a, b) = (r[0].2, r[1].2);
    t.acd.answered(t.now, b);
    let out = t.take();
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Output::Bridge { .. }))
            .count(),
        1
    );
    assert_eq!(stops(&out), vec![a], "the other leg is cancelled");
    // Its 200 OK raced in anyway: it is stopped, not bridged.
    t.acd.answered(t.now, a);
    let out = t.take();
    assert_eq!(stops(&out), vec![a]);
    assert!(!out.iter().any(|o| matches!(o, Output::Bridge { .. })));
    assert_eq!(state(&t, &r[1].1), State::OnCall);
    assert_eq!(
        state(&t, &r[0].1),
        State::Available,
        "the loser is not left ringing"
    );
}

#[test]
fn round_robin_remembers_where_it_left_off() {
    let mut t = T::new(queue(Strategy::RoundRobin, &["1001", "1002", "1003"]));
    t.online(&["1001", "1002", "1003"]);
    let mut order = vec![];
    for call in 1..=4 {
        t.join(call);
        let r = rings(&t.take());
        order.push(r[0].1.clone());
        t.acd.answered(t.now, r[0].2);
        t.take();
        t.acd.call_ended(t.now, CallSlot(call));
        t.advance(Duration::from_secs(11));
        t.take();
    }
    assert_eq!(order, vec!["1001", "1002", "1003", "1001"]);
}

#[test]
fn fewest_calls_and_least_talk_time_pick_by_their_counters() {
    for strategy in [Strategy::FewestCalls, Strategy::LeastTalkTime] {
        let mut t = T::new(queue(strategy, &["1001", "1002"]));
        t.online(&["1001", "1002"]);
        // 1001 takes a long call; then 1002 a short one.
        t.join(1);
        let r = rings(&t.take());
        assert_eq!(r[0].1, "1001");
        t.acd.answered(t.now, r[0].2);
        t.take();
        t.join(2);
        let r2 = rings(&t.take());
        assert_eq!(r2[0].1, "1002");
        t.acd.answered(t.now, r2[0].2);
        t.take();
        t.advance(Duration::from_secs(5));
        t.acd.call_ended(t.now, CallSlot(2));
        t.advance(Duration::from_secs(55));
        t.acd.call_ended(t.now, CallSlot(1));
        t.advance(Duration::from_secs(11));
        t.take();
        if strategy == Strategy::FewestCalls {
            // Both took one call: the tie goes to the first member.
            t.join(3);
            assert_eq!(rings(&t.take())[0].1, "1001");
        } else {
            t.join(3);
            assert_eq!(rings(&t.take())[0].1, "1002", "5 s of talk against 60 s");
        }
    }
}

#[test]
fn overflow_when_full_when_empty_and_at_max_wait() {
    let mut t = T::new(queue(Strategy::LongestIdle, &["1001"]));
    t.join(1);
    assert!(
        t.take().contains(&Output::Overflow {
            call: CallSlot(1),
            why: Overflow::Empty
        }),
        "no member logged in"
    );
    t.online(&["1001"]);
    t.acd
        .command(t.now, &agent("1001"), AgentCommand::Pause("lunch".into()));
    for c in 2..=4 {
        t.join(c);
    }
    t.join(5);
    let out = t.take();
    assert!(out.contains(&Output::Overflow {
        call: CallSlot(5),
        why: Overflow::Full
    }));
    assert!(rings(&out).is_empty(), "a paused agent is not rung");
    t.advance(Duration::from_secs(300));
    let out = t.take();
    for c in 2..=4 {
        assert!(
            out.contains(&Output::Overflow {
                call: CallSlot(c),
                why: Overflow::Timeout
            }),
            "{out:?}"
        );
    }
    assert_eq!(
        t.acd.stats(0, "support", t.now).expect("stats").overflowed,
        5
    );
}

#[test]
fn an_agent_whose_phone_lapses_is_unreachable_and_waiting_callers_leave() {
    let mut t = T::new(queue(Strategy::LongestIdle, &["1001"]));
    t.online(&["1001"]);
    t.acd
        .command(t.now, &agent("1001"), AgentCommand::Pause("meeting".into()));
    t.join(1);
    t.take();
    t.acd.command(t.now, &agent("1001"), AgentCommand::LogOut);
    let out = t.take();
    assert!(out.contains(&Output::Overflow {
        call: CallSlot(1),
        why: Overflow::Empty
    }));
    t.acd.command(t.now, &agent("1001"), AgentCommand::LogIn);
    assert_eq!(state(&t, "1001"), State::Available);
    t.acd.reachable(t.now, &agent("1001"), false);
    assert_eq!(state(&t, "1001"), State::Unreachable);
    t.acd.reachable(t.now, &agent("1001"), true);
    assert_eq!(state(&t, "1001"), State::Available);
}

#[test]
fn a_caller_who_hangs_up_while_ringing_frees_the_agent() {
    let mut t = T::new(queue(Strategy::RingAll, &["1001", "1002"]));
    t.online(&["1001", "1002"]);
    t.join(1);
    let r = rings(&t.take());
    t.acd.abandon(t.now, CallSlot(1));
    let out = t.take();
    let mut s = stops(&out);
    s.sort();
    assert_eq!(s, vec![r[0].2, r[1].2]);
    assert_eq!(state(&t, "1001"), State::Available);
    assert_eq!(state(&t, "1002"), State::Available);
    assert_eq!(
        t.acd.stats(0, "support", t.now).expect("stats").abandoned,
        1
    );
}

#[test]
fn a_restart_never_leaves_an_agent_ringing_or_on_call() {
    let mut t = T::new(queue(Strategy::LongestIdle, &["1001", "1002", "1003"]));
    t.acd.restore_state(t.now, &agent("1001"), &State::OnCall);
    t.acd
        .restore_state(t.now, &agent("1002"), &State::Paused("lunch".into()));
    t.acd.restore_state(t.now, &agent("1003"), &State::Ringing);
    t.online(&["1001", "1002", "1003"]);
    assert_eq!(state(&t, "1001"), State::Available);
    assert_eq!(state(&t, "1002"), State::Paused("lunch".into()));
    assert_eq!(state(&t, "1003"), State::Available);
}

#[test]
fn higher_priority_callers_are_served_first() {
    let mut t = T::new(queue(Strategy::LongestIdle, &["1001"]));
    t.online(&["1001"]);
    t.acd
        .command(t.now, &agent("1001"), AgentCommand::Pause("x".into()));
    t.join(1);
    t.acd.enqueue(
        t.now,
        CallSlot(2),
        0,
        "support",
        5,
        Duration::from_secs(300),
    );
    t.take();
    t.acd.command(t.now, &agent("1001"), AgentCommand::Unpause);
    assert_eq!(rings(&t.take())[0].0, 2);
}

#[test]
fn a_phone_that_refuses_at_once_is_rung_again_only_after_a_pause() {
    let mut q = queue(Strategy::LongestIdle, &["1001"]);
    q.no_answer_pause = false;
    let mut t = T::new(q);
    t.online(&["1001"]);
    t.join(1);
    let r = rings(&t.take());
    assert_eq!(r.len(), 1);
    // 488: no shared codec. The agent stays available but is not rung
    // again at once, so a refusing phone costs no tight loop.
    t.acd
        .ring_failed(t.now, r[0].2, RingFailure::Failed("SIP 488".into()));
    assert!(rings(&t.take()).is_empty());
    assert_eq!(state(&t, "1001"), State::Available);
    t.advance(ROUND_PAUSE - Duration::from_millis(1));
    assert!(rings(&t.take()).is_empty());
    t.advance(Duration::from_millis(1));
    assert_eq!(rings(&t.take()).len(), 1, "the next round");
}

#[test]
fn a_caller_who_tried_everyone_does_not_block_the_next_caller() {
    let mut t = T::new(queue(Strategy::LongestIdle, &["1001", "1002"]));
    t.online(&["1001"]);
    t.join(1);
    let r = rings(&t.take());
    t.acd.ring_failed(t.now, r[0].2, RingFailure::Busy);
    t.take();
    // 1002 comes online: caller 1 has not tried it, so it is rung.
    t.acd.reachable(t.now, &agent("1002"), true);
    let r = rings(&t.take());
    assert_eq!((r[0].0, r[0].1.as_str()), (1, "1002"));
}

#[test]
fn waiting_callers_are_told_their_place_every_interval_with_the_recent_wait() {
    let mut t = T::new(queue(Strategy::LongestIdle, &["1001"]));
    t.online(&["1001"]);
    // Caller 1 waits 40 s and is answered: the queue's recent wait.
    t.acd
        .command(t.now, &agent("1001"), AgentCommand::Pause("x".into()));
    t.join(1);
    t.advance(Duration::from_secs(40));
    t.acd.command(t.now, &agent("1001"), AgentCommand::Unpause);
    let r = rings(&t.take());
    t.acd.answered(t.now, r[0].2);
    t.take();
    for c in [2, 3] {
        t.acd.enqueue_announced(
            t.now,
            CallSlot(c),
            (0, "support"),
            0,
            Duration::from_secs(300),
            Some(Duration::from_secs(30)),
        );
    }
    t.advance(Duration::from_secs(30));
    let told: Vec<(u64, usize, Option<Duration>)> = t
        .take()
        .iter()
        .filter_map(|o| match o {
            Output::Position {
                call,
                position,
                estimated_wait,
            } => Some((call.0, *position, *estimated_wait)),
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        vec![
            (2, 1, Some(Duration::from_secs(40))),
            (3, 2, Some(Duration::from_secs(40)))
        ]
    );
    // The first leaves: the second is now first, at the next announcement.
    t.acd.abandon(t.now, CallSlot(2));
    t.take();
    t.advance(Duration::from_secs(30));
    let told: Vec<usize> = t
        .take()
        .iter()
        .filter_map(|o| match o {
            Output::Position { position, .. } => Some(*position),
            _ => None,
        })
        .collect();
    assert_eq!(told, vec![1]);
}

#[test]
fn the_skills_strategy_rings_only_qualified_agents_best_level_first() {
    let mut q = queue(Strategy::Skills, &["1001", "1002", "1003"]);
    q.skills = vec!["billing".into(), "hindi".into()];
    let mut t = T::new(q);
    t.acd
        .set_skills(&agent("1001"), vec![("billing".into(), 90)]);
    t.acd.set_skills(
        &agent("1002"),
        vec![("billing".into(), 40), ("hindi".into(), 40)],
    );
    t.acd.set_skills(
        &agent("1003"),
        vec![("billing".into(), 70), ("hindi".into(), 60)],
    );
    t.online(&["1001", "1002", "1003"]);
    t.join(1);
    let r = rings(&t.take());
    assert_eq!(r[0].1, "1003", "both skills, the higher levels");
    t.acd.ring_failed(t.now, r[0].2, RingFailure::Busy);
    let r = rings(&t.take());
    assert_eq!(r[0].1, "1002", "then the other qualified agent");
    t.acd.ring_failed(t.now, r[0].2, RingFailure::Busy);
    t.advance(ROUND_PAUSE * 3);
    let rung: Vec<String> = rings(&t.take()).into_iter().map(|r| r.1).collect();
    assert!(
        !rung.contains(&"1001".to_owned()),
        "1001 lacks hindi: never rung ({rung:?})"
    );
}

/// One caller bridged to `ext` (longest-idle, so `ext` must be the agent
/// idle longest).
fn bridged_to(t: &mut T, call: u64, ext: &str) -> AttemptId {
    t.join(call);
    let r = rings(&t.take());
    assert_eq!(r[0].1, ext);
    t.acd.answered(t.now, r[0].2);
    t.take();
    r[0].2
}

#[test]
fn a_blind_transfer_to_an_agent_rings_only_it_and_the_first_agent_wraps_up_in_full() {
    let mut t = T::new(queue(Strategy::LongestIdle, &["1001", "1002", "1003"]));
    t.online(&["1001", "1002", "1003"]);
    bridged_to(&mut t, 1, "1001");
    t.advance(Duration::from_secs(20));
    assert_eq!(
        t.acd.transfer(t.now, CallSlot(1), "1003"),
        Ok(TransferTarget::Agent("1003".into()))
    );
    let out = t.take();
    let r = rings(&out);
    assert_eq!(r.len(), 1, "only the target is rung: {out:?}");
    assert_eq!(r[0].1, "1003", "not 1002, who is idle longer");
    assert_eq!(state(&t, "1001"), State::WrapUp);
    // The new agent answers 5 s later; the first agent's wrap-up (10 s)
    // is not reset by it, and runs from its own leg's end.
    t.advance(Duration::from_secs(5));
    t.acd.answered(t.now, r[0].2);
    let out = t.take();
    assert!(out.contains(&Output::Bridge {
        call: CallSlot(1),
        attempt: r[0].2,
        agent: agent("1003")
    }));
    assert_eq!(state(&t, "1003"), State::OnCall);
    assert_eq!(state(&t, "1001"), State::WrapUp);
    t.advance(Duration::from_millis(4_999));
    assert_eq!(state(&t, "1001"), State::WrapUp);
    t.advance(Duration::from_millis(1));
    assert_eq!(state(&t, "1001"), State::Available);
    // Answered once, not twice.
    let s = t.acd.stats(0, "support", t.now).expect("stats");
    assert_eq!(s.answered, 1);
    // The call ends: the second agent wraps up.
    t.acd.call_ended(t.now, CallSlot(1));
    assert_eq!(state(&t, "1003"), State::WrapUp);
}

#[test]
fn a_transfer_the_target_does_not_answer_leaves_the_caller_waiting_in_the_queue() {
    let mut q = queue(Strategy::LongestIdle, &["1001", "1002", "1003"]);
    q.wrap_up_secs = 30;
    let mut t = T::new(q);
    t.online(&["1001", "1002", "1003"]);
    bridged_to(&mut t, 1, "1001");
    // 1002 takes another caller meanwhile.
    bridged_to(&mut t, 2, "1002");
    t.acd
        .transfer(t.now, CallSlot(1), "1003")
        .expect("transfer");
    let r = rings(&t.take());
    assert_eq!(r[0].1, "1003");
    t.advance(Duration::from_secs(15));
    let out = t.take();
    assert_eq!(stops(&out), vec![r[0].2]);
    assert!(out.iter().any(|o| matches!(o,
        Output::Timeline { call: CallSlot(1), event: "transfer failed", agent: Some(a) } if a == "1003")));
    assert!(
        !out.iter().any(|o| matches!(o, Output::Overflow { .. })),
        "the caller is not sent away: {out:?}"
    );
    let s = t.acd.stats(0, "support", t.now).expect("stats");
    assert_eq!(s.waiting, 1, "{out:?}");
    // The first agent's wrap-up ends: it takes the caller back.
    t.advance(Duration::from_secs(14));
    assert!(rings(&t.take()).is_empty());
    t.advance(Duration::from_secs(1));
    let r = rings(&t.take());
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].0, r[0].1.as_str()), (1, "1001"));
}

#[test]
fn transfers_are_refused_to_oneself_to_busy_agents_unknown_names_and_closed_queues() {
    let mut q = queue(Strategy::LongestIdle, &["1001", "1002", "1003"]);
    q.max_len = 1;
    let mut t = T::new(q);
    t.online(&["1001", "1002", "1003"]);
    assert_eq!(
        t.acd.transfer(t.now, CallSlot(1), "1002"),
        Err(TransferRefused::NotBridged)
    );
    bridged_to(&mut t, 1, "1001");
    bridged_to(&mut t, 2, "1002");
    let refused = [
        ("1001", TransferRefused::ToSelf),
        ("1002", TransferRefused::Unavailable),
        ("4711", TransferRefused::NoSuchTarget),
    ];
    for (target, why) in refused {
        assert_eq!(t.acd.transfer(t.now, CallSlot(1), target), Err(why));
    }
    t.acd
        .command(t.now, &agent("1003"), AgentCommand::Pause("lunch".into()));
    assert_eq!(
        t.acd.transfer(t.now, CallSlot(1), "1003"),
        Err(TransferRefused::Unavailable)
    );
    // The queue holds one waiting caller at most.
    t.join(3);
    assert_eq!(
        t.acd.transfer(t.now, CallSlot(1), "support"),
        Err(TransferRefused::QueueClosed)
    );
    // Nothing changed for the agent of the refused transfers.
    assert_eq!(state(&t, "1001"), State::OnCall);
    t.take();
}

#[test]
fn a_transfer_to_a_queue_waits_there_with_the_callers_priority() {
    let mut t = T::new(queue(Strategy::LongestIdle, &["1001", "1002"]));
    t.online(&["1001", "1002"]);
    bridged_to(&mut t, 1, "1001");
    bridged_to(&mut t, 2, "1002");
    t.join(3);
    assert_eq!(
        t.acd.transfer(t.now, CallSlot(1), "support"),
        Ok(TransferTarget::Queue("support".into()))
    );
    t.take();
    let s = t.acd.stats(0, "support", t.now).expect("stats");
    assert_eq!(
        s.waiting, 2,
        "the transferred caller queues behind caller 3"
    );
    // Wrap-up over: 1001 takes caller 3 first (same priority, earlier).
    t.advance(Duration::from_secs(10));
    let r = rings(&t.take());
    assert_eq!((r[0].0, r[0].1.as_str()), (3, "1001"));
}

#[test]
fn a_flows_transfer_rings_one_agent_and_fails_without_queueing_when_unanswered() {
    let mut t = T::new(queue(Strategy::LongestIdle, &["1001", "1002"]));
    t.online(&["1001", "1002"]);
    assert_eq!(
        t.acd.connect_to_agent(t.now, CallSlot(1), 0, "4711"),
        Err(TransferRefused::NoSuchTarget)
    );
    assert_eq!(
        t.acd.connect_to_agent(t.now, CallSlot(1), 0, "1002"),
        Ok(())
    );
    let r = rings(&t.take());
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1, "1002", "not 1001, who is idle longer");
    // Nobody answers: the transfer fails, the caller is not queued.
    t.advance(Duration::from_secs(15));
    let out = t.take();
    assert!(
        out.contains(&Output::DirectFailed {
            call: CallSlot(1),
            why: "no answer"
        }),
        "{out:?}"
    );
    assert!(rings(&out).is_empty(), "{out:?}");
    let s = t.acd.stats(0, "support", t.now).expect("stats");
    assert_eq!((s.waiting, s.overflowed, s.abandoned), (0, 0, 0));
    // Another call's transfer to 1001 is answered and bridged.
    assert_eq!(
        t.acd.connect_to_agent(t.now, CallSlot(2), 0, "1001"),
        Ok(())
    );
    let r = rings(&t.take());
    t.acd.answered(t.now, r[0].2);
    let out = t.take();
    assert!(out.contains(&Output::Bridge {
        call: CallSlot(2),
        attempt: r[0].2,
        agent: agent("1001")
    }));
    assert_eq!(state(&t, "1001"), State::OnCall);
    assert_eq!(
        t.acd.connect_to_agent(t.now, CallSlot(3), 0, "1001"),
        Err(TransferRefused::Unavailable)
    );
    t.acd.call_ended(t.now, CallSlot(2));
    assert_eq!(state(&t, "1001"), State::WrapUp);
    let s = t.acd.stats(0, "support", t.now).expect("stats");
    assert_eq!(s.answered, 0, "not a queue call");
}

#[test]
fn a_caller_transferred_to_a_number_that_fails_waits_again_at_the_front_of_its_queue() {
    let mut t = T::new(queue(Strategy::LongestIdle, &["1001", "1002"]));
    t.online(&["1001", "1002"]);
    bridged_to(&mut t, 1, "1001");
    bridged_to(&mut t, 2, "1002");
    // A third caller waits: both agents are on calls.
    t.join(3);
    assert!(rings(&t.take()).is_empty());
    let back = t.acd.transfer_out(t.now, CallSlot(1)).expect("bridged");
    assert_eq!(
        back,
        Fallback {
            tenant: 0,
            queue: "support".into(),
            priority: 0
        }
    );
    assert_eq!(state(&t, "1001"), State::WrapUp, "its part is over");
    // A second transfer of the same call is refused: no agent has it.
    assert_eq!(
        t.acd.transfer_out(t.now, CallSlot(1)),
        Err(TransferRefused::NotBridged)
    );
    // The number rang 4 s and failed: the caller is back, ahead of the
    // caller who has waited longer in the queue (it was answered once).
    t.advance(Duration::from_secs(4));
    t.acd.return_to_queue(t.now, CallSlot(1), &back);
    assert!(rings(&t.take()).is_empty(), "nobody free yet");
    let s = t.acd.stats(0, "support", t.now).expect("stats");
    assert_eq!(s.waiting, 2);
    // 1001's wrap-up (10 s from the transfer) ends: it is rung for call 1.
    t.advance(Duration::from_secs(6));
    let r = rings(&t.take());
    assert_eq!(
        r.iter()
            .map(|(c, e, _)| (*c, e.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "1001")],
        "the returned caller first, not call 3"
    );
}

#[test]
fn a_returned_caller_whose_queue_has_closed_overflows() {
    let mut t = T::new(queue(Strategy::LongestIdle, &["1001"]));
    t.online(&["1001"]);
    bridged_to(&mut t, 1, "1001");
    let back = t.acd.transfer_out(t.now, CallSlot(1)).expect("bridged");
    // The only agent logs out (in effect after its wrap-up): the queue is
    // empty and may not be joined.
    assert!(t.acd.command(t.now, &agent("1001"), AgentCommand::LogOut));
    t.advance(Duration::from_secs(10));
    assert_eq!(state(&t, "1001"), State::LoggedOut);
    t.take();
    t.acd.return_to_queue(t.now, CallSlot(1), &back);
    let out = t.take();
    assert!(
        out.contains(&Output::Overflow {
            call: CallSlot(1),
            why: Overflow::Empty
        }),
        "{out:?}"
    );
}

#[test]
fn an_agent_another_node_holds_is_skipped_without_a_pause_until_that_node_lets_it_go() {
    let mut t = T::new(queue(Strategy::LongestIdle, &["1001", "1002"]));
    t.online(&["1001", "1002"]);
    t.join(1);
    let r = rings(&t.take());
    assert_eq!(r[0].1, "1001");
    assert_eq!(
        t.acd.held_here(),
        vec![("demo".to_owned(), "1001".to_owned())]
    );
    // Our claim on 1001 was refused: another node has it on a call.
    t.acd.ring_failed(t.now, r[0].2, RingFailure::Elsewhere);
    let out = t.take();
    assert_eq!(state(&t, "1001"), State::Available, "not paused: {out:?}");
    // 1002 is rung at once instead (ours to claim now), 1001 is not ours.
    assert_eq!(
        t.acd.held_here(),
        vec![("demo".to_owned(), "1002".to_owned())]
    );
    let r = rings(&out);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1, "1002", "the next agent instead");
    // 1002 answers; a second caller waits, 1001 is not rung while held.
    t.acd.answered(t.now, r[0].2);
    t.take();
    t.join(2);
    assert!(rings(&t.take()).is_empty());
    let held = HashSet::from([("demo".to_owned(), "1001".to_owned())]);
    t.acd.held_elsewhere(t.now, &held);
    t.advance(Duration::from_secs(30));
    assert!(rings(&t.take()).is_empty(), "still held elsewhere");
    // The other node's claim is gone (released, or its lease ran out).
    t.acd.held_elsewhere(t.now, &HashSet::new());
    let r = rings(&t.take());
    assert_eq!(
        r.iter()
            .map(|(c, e, _)| (*c, e.as_str()))
            .collect::<Vec<_>>(),
        vec![(2, "1001")]
    );
    // A transfer to an agent held elsewhere is refused as unavailable.
    t.acd.held_elsewhere(t.now, &held);
    assert_eq!(
        t.acd.transfer(t.now, CallSlot(1), "1001"),
        Err(TransferRefused::Unavailable)
    );
}

#[test]
fn an_attended_transfer_gives_the_caller_to_the_consulted_agent_and_wraps_the_first_up() {
    let mut t = T::new(queue(Strategy::LongestIdle, &["1001", "1002"]));
    t.online(&["1001", "1002"]);
    bridged_to(&mut t, 1, "1001");
    // 1001 calls 1002 from its phone (call 2, a flow's transfer to 1002).
    t.acd
        .connect_to_agent(t.now, CallSlot(2), 0, "1002")
        .expect("1002 is free");
    let r = rings(&t.take());
    assert_eq!(r[0].1, "1002");
    t.acd.answered(t.now, r[0].2);
    t.take();
    // Neither call may be handed to itself, and call 3 is nobody's.
    assert_eq!(
        t.acd.attended(t.now, CallSlot(3), CallSlot(2)),
        Err(TransferRefused::NotBridged)
    );
    let (to, back) = t
        .acd
        .attended(t.now, CallSlot(1), CallSlot(2))
        .expect("attended");
    assert_eq!(to, agent("1002"));
    assert_eq!(back.queue, "support");
    assert_eq!(state(&t, "1001"), State::WrapUp);
    assert_eq!(state(&t, "1002"), State::OnCall);
    // The consultation call ends: 1002 stays on the caller's call.
    t.acd.call_ended(t.now, CallSlot(2));
    assert_eq!(state(&t, "1002"), State::OnCall);
    // The caller hangs up: 1002 wraps up.
    t.acd.call_ended(t.now, CallSlot(1));
    assert_eq!(state(&t, "1002"), State::WrapUp);
}
