//! The ACD (automatic call distribution) core: agents' states, the queues
//! callers wait in, and which agent is rung for which caller, when.
//!
//! Sans-IO and on time passed in: the driver feeds it what happened
//! (a caller joined or left, a ring was answered or failed, a bridged call
//! ended, an agent's phone registered or lapsed) and carries out its
//! [`Output`]s (ring an agent, stop ringing, bridge, send the caller to
//! `on overflow`, store a state change). What it guarantees:
//!
//! - one call, one agent: of the legs rung for a caller the first answer
//!   wins ([`Output::Bridge`]); every other leg is stopped
//!   ([`Output::StopRing`]), including one whose 200 OK raced in after
//!   the winner (the driver ACKs and BYEs it), and its agent goes back to
//!   available, never left "ringing";
//! - an agent is rung for one caller at a time and never while on a call,
//!   in wrap-up, paused, logged out or without a registered phone;
//! - wrap-up runs its full time after every call, then the agent is
//!   available; it is its own state, not "available";
//! - a ring that times out moves on to the next agent; the agent who let
//!   it ring out is paused with the reason "no answer" (per queue);
//! - callers leave for `on overflow` when the queue is full, when it has
//!   no logged-in member (join-empty / leave-empty rules), and at their
//!   maximum wait.
//!
//! Strategies: ring-all, longest-idle, round-robin (with memory),
//! fewest-calls, least-talk-time. Callers are served in order of priority
//! (higher first), then of arrival.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{QueueConfig, Strategy};
use crate::ua::{AgentRef, CallSlot};

/// An agent's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not taking calls (logged out, or never logged in).
    LoggedOut,
    /// Waiting for a call.
    Available,
    /// Being rung for a caller.
    Ringing,
    /// On a call.
    OnCall,
    /// Resting after a call, until the wrap-up time is over.
    WrapUp,
    /// Paused, with the reason.
    Paused(String),
    /// Logged in but no registered phone (registration lapsed or lost).
    Unreachable,
}

impl State {
    /// The name used in the store and the CLI.
    pub fn name(&self) -> &'static str {
        match self {
            State::LoggedOut => "logged-out",
            State::Available => "available",
            State::Ringing => "ringing",
            State::OnCall => "on-call",
            State::WrapUp => "wrap-up",
            State::Paused(_) => "paused",
            State::Unreachable => "unreachable",
        }
    }

    /// Parses a name (`paused` takes its reason separately).
    pub fn parse(name: &str, reason: &str) -> Option<State> {
        Some(match name {
            "logged-out" => State::LoggedOut,
            "available" => State::Available,
            "ringing" => State::Ringing,
            "on-call" => State::OnCall,
            "wrap-up" => State::WrapUp,
            "paused" => State::Paused(reason.to_owned()),
            "unreachable" => State::Unreachable,
            _ => return None,
        })
    }

    /// Counts as a member being there (for join-empty / leave-empty).
    fn present(&self) -> bool {
        !matches!(self, State::LoggedOut | State::Unreachable)
    }
}

/// One attempt to reach an agent for a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptId(pub u64);

/// Why a caller left the queue for `on overflow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The flow named a queue the tenant does not have.
    NoSuchQueue,
    /// `max_len` callers were waiting.
    Full,
    /// No member logged in (join-empty off), or the last one left.
    Empty,
    /// The maximum wait passed.
    Timeout,
}

impl Overflow {
    /// For the timeline.
    pub fn name(self) -> &'static str {
        match self {
            Overflow::NoSuchQueue => "no such queue",
            Overflow::Full => "queue full",
            Overflow::Empty => "no agents",
            Overflow::Timeout => "max wait",
        }
    }
}

/// Why a ring did not reach the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingFailure {
    /// The agent let it ring for the ring timeout.
    NoAnswer,
    /// Busy (486, 600) or declined (603).
    Busy,
    /// Any other refusal or transport failure, with the SIP cause.
    Failed(String),
    /// Another node sharing the store holds the agent (its claim is
    /// live): it is on a call or ringing there. Not the agent's fault: no
    /// pause; it is not rung from here until [`Acd::held_elsewhere`] says
    /// it is free.
    Elsewhere,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Ring `agent` for `call` (an INVITE to each of its phones).
    Ring {
        /// The caller.
        call: CallSlot,
        /// This attempt.
        attempt: AttemptId,
        /// Who.
        agent: AgentRef,
    },
    /// Stop the attempt: CANCEL while it rings, or ACK and BYE if it was
    /// answered after another agent won.
    StopRing {
        /// The attempt.
        attempt: AttemptId,
    },
    /// The attempt was answered and won: bridge the caller to it.
    Bridge {
        /// The caller.
        call: CallSlot,
        /// The attempt.
        attempt: AttemptId,
        /// Who answered.
        agent: AgentRef,
    },
    /// The caller leaves the queue for the flow's `on overflow`.
    Overflow {
        /// The caller.
        call: CallSlot,
        /// Why.
        why: Overflow,
    },
    /// Something for the caller's timeline.
    Timeline {
        /// The caller.
        call: CallSlot,
        /// What: `agent rung`, `no answer`, `answered`, `wrap-up`...
        event: &'static str,
        /// The agent's extension, when one is concerned.
        agent: Option<String>,
    },
    /// A flow's transfer to an agent ([`Acd::connect_to_agent`]) was not
    /// answered: the flow takes `on failure`.
    DirectFailed {
        /// The caller.
        call: CallSlot,
        /// `no answer`, `busy` or `failed`.
        why: &'static str,
    },
    /// Time to tell a waiting caller its place (the flow's `announce
    /// every`).
    Position {
        /// The caller.
        call: CallSlot,
        /// 1 for the next caller to be served.
        position: usize,
        /// The queue's recent wait, when it has one.
        estimated_wait: Option<Duration>,
    },
    /// An agent's state changed: store it.
    AgentState {
        /// Who.
        agent: AgentRef,
        /// From.
        from: State,
        /// To.
        to: State,
        /// Why.
        reason: String,
        /// When.
        at: SystemTime,
    },
}

/// A queue's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Callers waiting now.
    pub waiting: usize,
    /// The longest of their waits.
    pub longest_wait: Duration,
    /// Callers answered by an agent.
    pub answered: u64,
    /// Answered within the service level.
    pub answered_in_service_level: u64,
    /// Callers who hung up while waiting.
    pub abandoned: u64,
    /// Callers sent to `on overflow`.
    pub overflowed: u64,
    /// Callers who left with a key of the flow's `queue`.
    pub left_by_key: u64,
    /// Logged-in members (present).
    pub members_present: usize,
    /// Members available now.
    pub members_available: usize,
}

#[derive(Debug)]
struct Agent {
    state: State,
    /// When the agent last became idle (for longest-idle).
    idle_since: Instant,
    calls: u64,
    talk: Duration,
    /// Wrap-up ends.
    wrap_until: Option<Instant>,
    /// The call being rung or talked on.
    call: Option<CallSlot>,
    /// Answered-at of the current call.
    talk_since: Option<Instant>,
    /// Has a registered phone.
    reachable: bool,
    /// Logged in (taking calls when nothing else stops it).
    logged_in: bool,
    /// Skills and levels (the `skills` strategy).
    skills: Vec<(String, u32)>,
    /// Another node holds the agent (a live claim in the store).
    elsewhere: bool,
}

#[derive(Debug)]
struct Queue {
    tenant: usize,
    cfg: QueueConfig,
    /// Callers in service order.
    waiting: Vec<CallSlot>,
    /// Round-robin memory: the member index last rung.
    last_rung: Option<usize>,
    stats: QueueStats,
    /// Recent wait of answered callers (a moving average), for the
    /// estimated wait announced to callers.
    recent_wait: Option<Duration>,
}

#[derive(Debug)]
struct Waiting {
    queue: usize,
    priority: i32,
    joined: Instant,
    deadline: Instant,
    /// Attempts in progress.
    attempts: Vec<AttemptId>,
    /// Agents tried in this round (non-ring-all).
    tried: HashSet<String>,
    /// Every available member was tried: the next round starts then (an
    /// agent whose phone refuses at once is not rung in a tight loop).
    next_round: Option<Instant>,
    /// Position announcements: how often, and the next.
    announce: Option<(Duration, Instant)>,
    /// A blind transfer to this one agent: only it is rung; if it does
    /// not answer, the caller waits in the queue like any other.
    direct: Option<AgentRef>,
    /// A flow's `transfer` to that agent: if it does not answer, the
    /// transfer fails ([`Output::DirectFailed`]) instead.
    direct_final: bool,
}

#[derive(Debug)]
struct Attempt {
    call: CallSlot,
    agent: AgentRef,
    deadline: Instant,
}

#[derive(Debug)]
struct Bridged {
    agent: AgentRef,
    queue: usize,
    /// The caller's priority (kept across a transfer).
    priority: i32,
}

/// Where a caller transferred out to a number goes back to if the number
/// does not answer ([`Acd::transfer_out`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// The tenant's index.
    pub tenant: usize,
    /// The queue the caller was answered from.
    pub queue: String,
    /// The caller's priority.
    pub priority: i32,
}

/// Where an agent's blind transfer sends its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    /// A queue of the tenant: the caller waits there.
    Queue(String),
    /// An agent of the tenant: that agent is rung.
    Agent(String),
}

/// Why a transfer is refused (the call stays with the agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferRefused {
    /// The call is not bridged to an agent (any more).
    NotBridged,
    /// No queue and no agent of the tenant has that name.
    NoSuchTarget,
    /// An agent transferring to itself.
    ToSelf,
    /// The agent is not available (on a call, ringing, wrap-up, paused,
    /// logged out, no phone).
    Unavailable,
    /// The queue is full, or has no agent logged in and refuses to be
    /// joined empty.
    QueueClosed,
}

impl TransferRefused {
    /// The SIP status a REFER gets for it.
    pub fn status(self) -> u16 {
        match self {
            TransferRefused::NotBridged => 481,
            TransferRefused::NoSuchTarget => 404,
            TransferRefused::ToSelf => 403,
            TransferRefused::Unavailable => 480,
            TransferRefused::QueueClosed => 486,
        }
    }
}

/// The core.
#[derive(Debug)]
pub struct Acd {
    epoch: (Instant, SystemTime),
    queues: Vec<Queue>,
    by_name: HashMap<(usize, String), usize>,
    agents: HashMap<AgentRef, Agent>,
    waiting: HashMap<CallSlot, Waiting>,
    attempts: HashMap<AttemptId, Attempt>,
    bridged: HashMap<CallSlot, Bridged>,
    next_attempt: u64,
    /// Deadlines: attempts' ring timeouts, callers' max waits, wrap-ups.
    timers: BTreeSet<(Instant, Timer)>,
    out: VecDeque<Output>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Ring(AttemptId),
    Wait(CallSlot),
    WrapUp(AgentRef),
    /// A caller's next round of agents may start.
    Round(CallSlot),
    /// A caller's next position announcement.
    Announce(CallSlot),
}

/// After every available member was tried for a caller, the next round
/// waits this long (Asterisk's `retry`).
pub const ROUND_PAUSE: Duration = Duration::from_secs(5);

impl Ord for AgentRef {
    fn cmp(&self, other: &AgentRef) -> std::cmp::Ordering {
        (self.tenant, &self.extension).cmp(&(other.tenant, &other.extension))
    }
}

impl PartialOrd for AgentRef {
    fn partial_cmp(&self, other: &AgentRef) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Acd {
    /// Queues per tenant (index, id, queues); every member starts logged
    /// in and unreachable until its phone registers (or is restored).
    pub fn new(
        tenants: &[(usize, Arc<str>, Vec<QueueConfig>)],
        epoch: (Instant, SystemTime),
        now: Instant,
    ) -> Acd {
        let mut acd = Acd {
            epoch,
            queues: Vec::new(),
            by_name: HashMap::new(),
            agents: HashMap::new(),
            waiting: HashMap::new(),
            attempts: HashMap::new(),
            bridged: HashMap::new(),
            next_attempt: 0,
            timers: BTreeSet::new(),
            out: VecDeque::new(),
        };
        for (tenant, id, queues) in tenants {
            for q in queues {
                for m in &q.members {
                    let r = AgentRef {
                        tenant: *tenant,
                        tenant_id: Arc::clone(id),
                        extension: m.clone(),
                    };
                    acd.agents.entry(r).or_insert(Agent {
                        state: State::Unreachable,
                        idle_since: now,
                        calls: 0,
                        talk: Duration::ZERO,
                        wrap_until: None,
                        call: None,
                        talk_since: None,
                        reachable: false,
                        logged_in: true,
                        skills: Vec::new(),
                        elsewhere: false,
                    });
                }
                acd.by_name
                    .insert((*tenant, q.name.clone()), acd.queues.len());
                acd.queues.push(Queue {
                    tenant: *tenant,
                    cfg: q.clone(),
                    waiting: Vec::new(),
                    last_rung: None,
                    stats: QueueStats::default(),
                    recent_wait: None,
                });
            }
        }
        acd
    }

    /// An agent's skills (`NAME`, level), for queues of the `skills`
    /// strategy.
    pub fn set_skills(&mut self, agent: &AgentRef, skills: Vec<(String, u32)>) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.skills = skills;
        }
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to call [`Acd::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Does tenant `tenant` have queue `name`?
    pub fn has_queue(&self, tenant: usize, name: &str) -> bool {
        self.by_name.contains_key(&(tenant, name.to_owned()))
    }

    /// Queue members by tenant and state (for the metrics).
    pub fn state_counts(&self) -> Vec<(String, &'static str, i64)> {
        let mut counts: std::collections::BTreeMap<(String, &'static str), i64> =
            Default::default();
        for (r, a) in &self.agents {
            *counts
                .entry((r.tenant_id.to_string(), a.state.name()))
                .or_default() += 1;
        }
        counts.into_iter().map(|((t, s), n)| (t, s, n)).collect()
    }

    /// An agent's state, if it is a member of any queue.
    pub fn state(&self, agent: &AgentRef) -> Option<&State> {
        self.agents.get(agent).map(|a| &a.state)
    }

    /// A queue's counters at `now`.
    pub fn stats(&self, tenant: usize, name: &str, now: Instant) -> Option<QueueStats> {
        let q = &self.queues[*self.by_name.get(&(tenant, name.to_owned()))?];
        let mut s = q.stats.clone();
        s.waiting = q.waiting.len();
        s.longest_wait = q
            .waiting
            .iter()
            .filter_map(|c| self.waiting.get(c))
            .map(|w| now.saturating_duration_since(w.joined))
            .max()
            .unwrap_or_default();
        for m in &q.cfg.members {
            if let Some(a) = self.agent_by(q.tenant, m) {
                s.members_present += usize::from(a.state.present());
                s.members_available += usize::from(a.state == State::Available);
            }
        }
        Some(s)
    }

    fn agent_by(&self, tenant: usize, ext: &str) -> Option<&Agent> {
        self.agents
            .iter()
            .find(|(r, _)| r.tenant == tenant && r.extension == ext)
            .map(|(_, a)| a)
    }

    fn agent_ref(&self, tenant: usize, ext: &str) -> Option<AgentRef> {
        self.agents
            .keys()
            .find(|r| r.tenant == tenant && r.extension == ext)
            .cloned()
    }

    fn wall(&self, now: Instant) -> SystemTime {
        self.epoch.1 + now.saturating_duration_since(self.epoch.0)
    }

    /// Sets an agent's state, with the event.
    fn set(&mut self, now: Instant, agent: &AgentRef, to: State, reason: &str) {
        let at = self.wall(now);
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        if a.state == to {
            return;
        }
        let from = std::mem::replace(&mut a.state, to.clone());
        if to == State::Available {
            a.idle_since = now;
        }
        self.out.push_back(Output::AgentState {
            agent: agent.clone(),
            from,
            to,
            reason: reason.to_owned(),
            at,
        });
    }

    /// The state an agent returns to when nothing holds it: available if
    /// logged in with a phone, else logged out or unreachable.
    fn settle(&mut self, now: Instant, agent: &AgentRef, reason: &str) {
        let Some(a) = self.agents.get(agent) else {
            return;
        };
        let to = if !a.logged_in {
            State::LoggedOut
        } else if !a.reachable {
            State::Unreachable
        } else {
            State::Available
        };
        self.set(now, agent, to, reason);
    }

    /// Which agents other nodes sharing the store hold now (their live
    /// claims, as `(tenant id, extension)`): those are not rung from here;
    /// the others may be again, and waiting callers are served.
    pub fn held_elsewhere(&mut self, now: Instant, held: &HashSet<(String, String)>) {
        let mut freed = false;
        for (r, a) in self.agents.iter_mut() {
            let yes = held.contains(&(r.tenant_id.to_string(), r.extension.clone()));
            freed |= a.elsewhere && !yes;
            a.elsewhere = yes;
        }
        if freed {
            self.dispatch(now);
        }
    }

    /// Agents this node holds now (ringing, on a call or wrapping up here), as
    /// `(tenant id, extension)`: the claims it must keep.
    pub fn held_here(&self) -> Vec<(String, String)> {
        self.agents
            .iter()
            .filter(|(_, a)| {
                a.call.is_some()
                    || matches!(a.state, State::Ringing | State::OnCall | State::WrapUp)
            })
            .map(|(r, _)| (r.tenant_id.to_string(), r.extension.clone()))
            .collect()
    }

    /// Restores a stored state at startup: paused and logged-out agents
    /// stay so; anything else settles (a call or ring of before the
    /// restart is over: no agent is left "ringing" or "on call").
    pub fn restore_state(&mut self, now: Instant, agent: &AgentRef, state: &State) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        match state {
            State::LoggedOut => {
                a.logged_in = false;
                a.state = State::LoggedOut;
            }
            State::Paused(r) => {
                a.state = State::Paused(r.clone());
            }
            State::Ringing | State::OnCall | State::WrapUp => {
                // Recorded mid-call by a server that stopped: say so.
                a.state = state.clone();
                self.settle(now, agent, "restarted");
            }
            _ => {}
        }
    }

    /// An agent's phone registered (`true`) or its last binding lapsed.
    pub fn reachable(&mut self, now: Instant, agent: &AgentRef, yes: bool) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        if a.reachable == yes {
            return;
        }
        a.reachable = yes;
        let st = a.state.clone();
        match (yes, st) {
            (true, State::Unreachable) => self.settle(now, agent, "registered"),
            (false, State::Available) => {
                self.set(now, agent, State::Unreachable, "registration lost")
            }
            _ => {}
        }
        if !yes {
            self.check_empty(now);
        }
        self.dispatch(now);
    }

    /// The CLI or a feature code: log in, log out, pause (with a reason),
    /// unpause. A busy agent's change applies when its call and wrap-up
    /// are over, except logging out, which takes effect for new calls at
    /// once.
    pub fn command(&mut self, now: Instant, agent: &AgentRef, cmd: AgentCommand) -> bool {
        let Some(a) = self.agents.get_mut(agent) else {
            return false;
        };
        let busy = matches!(a.state, State::Ringing | State::OnCall | State::WrapUp);
        match cmd {
            AgentCommand::LogIn => {
                a.logged_in = true;
                if !busy && matches!(a.state, State::LoggedOut) {
                    self.settle(now, agent, "logged in");
                }
            }
            AgentCommand::LogOut => {
                a.logged_in = false;
                if !busy {
                    self.set(now, agent, State::LoggedOut, "logged out");
                }
                self.check_empty(now);
            }
            AgentCommand::Pause(reason) => {
                if !busy {
                    self.set(now, agent, State::Paused(reason), "paused");
                }
            }
            AgentCommand::Unpause => {
                if matches!(a.state, State::Paused(_)) {
                    self.settle(now, agent, "unpaused");
                }
            }
            AgentCommand::SetSkills(skills) => a.skills = skills,
        }
        self.dispatch(now);
        true
    }

    /// A caller joins queue `name` of `tenant` (the flow's `queue` step),
    /// waiting at most `max_wait`, served by `priority` (higher first).
    pub fn enqueue(
        &mut self,
        now: Instant,
        call: CallSlot,
        tenant: usize,
        name: &str,
        priority: i32,
        max_wait: Duration,
    ) {
        self.enqueue_announced(now, call, (tenant, name), priority, max_wait, None);
    }

    /// [`Acd::enqueue`], with the caller told its place every
    /// `announce_every` ([`Output::Position`]).
    pub fn enqueue_announced(
        &mut self,
        now: Instant,
        call: CallSlot,
        (tenant, name): (usize, &str),
        priority: i32,
        max_wait: Duration,
        announce_every: Option<Duration>,
    ) {
        let at = (tenant, name);
        self.join(now, call, at, priority, max_wait, announce_every, false);
    }

    /// A caller joins a queue: behind the callers of its priority, or in
    /// `front` of them.
    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        now: Instant,
        call: CallSlot,
        (tenant, name): (usize, &str),
        priority: i32,
        max_wait: Duration,
        announce_every: Option<Duration>,
        front: bool,
    ) {
        let Some(&qi) = self.by_name.get(&(tenant, name.to_owned())) else {
            self.out.push_back(Output::Overflow {
                call,
                why: Overflow::NoSuchQueue,
            });
            return;
        };
        let q = &self.queues[qi];
        let why = if q.waiting.len() >= q.cfg.max_len {
            Some(Overflow::Full)
        } else if !q.cfg.join_empty && !self.any_present(qi) {
            Some(Overflow::Empty)
        } else {
            None
        };
        if let Some(why) = why {
            self.queues[qi].stats.overflowed += 1;
            self.out.push_back(Output::Overflow { call, why });
            return;
        }
        let wait = max_wait.min(Duration::from_secs(q.cfg.max_wait_secs));
        let deadline = now + wait;
        // Priority, then arrival.
        let pos = {
            let q = &self.queues[qi];
            q.waiting
                .iter()
                .position(|c| {
                    self.waiting
                        .get(c)
                        .is_some_and(|w| w.priority < priority || (front && w.priority == priority))
                })
                .unwrap_or(q.waiting.len())
        };
        self.queues[qi].waiting.insert(pos, call);
        self.waiting.insert(
            call,
            Waiting {
                queue: qi,
                priority,
                joined: now,
                deadline,
                attempts: Vec::new(),
                tried: HashSet::new(),
                next_round: None,
                announce: announce_every.map(|d| (d, now + d)),
                direct: None,
                direct_final: false,
            },
        );
        self.timers.insert((deadline, Timer::Wait(call)));
        if let Some(d) = announce_every {
            self.timers.insert((now + d, Timer::Announce(call)));
        }
        self.dispatch(now);
    }

    fn any_present(&self, qi: usize) -> bool {
        let q = &self.queues[qi];
        q.cfg.members.iter().any(|m| {
            self.agent_by(q.tenant, m)
                .is_some_and(|a| a.state.present())
        })
    }

    /// Leave-empty: callers of queues with no member present overflow.
    fn check_empty(&mut self, now: Instant) {
        for qi in 0..self.queues.len() {
            if self.queues[qi].cfg.leave_empty
                && !self.queues[qi].waiting.is_empty()
                && !self.any_present(qi)
            {
                let calls = self.queues[qi].waiting.clone();
                for c in calls {
                    self.leave(now, c, Leave::Overflow(Overflow::Empty));
                }
            }
        }
    }

    /// The caller hung up (or its flow ended) while waiting or bridged.
    pub fn abandon(&mut self, now: Instant, call: CallSlot) {
        if self.waiting.contains_key(&call) {
            self.leave(now, call, Leave::Abandoned);
        }
        self.call_ended(now, call);
    }

    /// Removes a waiting caller with its timers and its place in line.
    fn take_waiting(&mut self, call: CallSlot) -> Option<Waiting> {
        let w = self.waiting.remove(&call)?;
        self.timers.remove(&(w.deadline, Timer::Wait(call)));
        if let Some(at) = w.next_round {
            self.timers.remove(&(at, Timer::Round(call)));
        }
        if let Some((_, at)) = w.announce {
            self.timers.remove(&(at, Timer::Announce(call)));
        }
        self.queues[w.queue].waiting.retain(|c| *c != call);
        Some(w)
    }

    /// Takes a caller out of its queue: its rings stop, its agents are
    /// freed, and `why` is counted (an overflow is reported).
    fn leave(&mut self, now: Instant, call: CallSlot, why: Leave) {
        let Some(w) = self.take_waiting(call) else {
            return;
        };
        let q = &mut self.queues[w.queue];
        // A flow's transfer to one agent is no caller of the queue's.
        match why {
            _ if w.direct_final => {}
            Leave::Overflow(_) => q.stats.overflowed += 1,
            Leave::Abandoned => q.stats.abandoned += 1,
            Leave::Key => q.stats.left_by_key += 1,
        }
        for id in w.attempts {
            self.end_attempt(now, id, "caller left");
        }
        if let Leave::Overflow(why) = why {
            self.out.push_back(Output::Overflow { call, why });
        }
        self.dispatch(now);
    }

    /// The caller left the queue with one of its keys (the flow goes on).
    pub fn left_by_key(&mut self, now: Instant, call: CallSlot) {
        self.leave(now, call, Leave::Key);
    }

    /// Stops an attempt and frees its agent.
    fn end_attempt(&mut self, now: Instant, id: AttemptId, reason: &str) {
        if let Some(a) = self.attempts.remove(&id) {
            self.timers.remove(&(a.deadline, Timer::Ring(id)));
            self.out.push_back(Output::StopRing { attempt: id });
            if let Some(ag) = self.agents.get_mut(&a.agent) {
                ag.call = None;
            }
            if self.state(&a.agent) == Some(&State::Ringing) {
                self.settle(now, &a.agent, reason);
            }
        }
    }

    /// An attempt was answered (200 OK). The first answer for a caller
    /// bridges; any later one is stopped.
    pub fn answered(&mut self, now: Instant, id: AttemptId) {
        let Some(att) = self.attempts.remove(&id) else {
            // Not ours any more (the caller left, another agent won, it
            // timed out): the driver must hang this leg up.
            self.out.push_back(Output::StopRing { attempt: id });
            return;
        };
        self.timers.remove(&(att.deadline, Timer::Ring(id)));
        let call = att.call;
        let Some(w) = self.take_waiting(call) else {
            self.out.push_back(Output::StopRing { attempt: id });
            self.settle(now, &att.agent, "caller gone");
            return;
        };
        let q = &mut self.queues[w.queue];
        // A caller put through to one agent by a transfer was counted
        // when the queue first answered it.
        if w.direct.is_none() {
            q.stats.answered += 1;
            let waited = now.saturating_duration_since(w.joined);
            q.recent_wait = Some(match q.recent_wait {
                // A moving average: a fifth of the newest wait.
                Some(avg) => (avg * 4 + waited) / 5,
                None => waited,
            });
            if waited <= Duration::from_secs(q.cfg.service_level_secs) {
                q.stats.answered_in_service_level += 1;
            }
        }
        for other in w.attempts.iter().filter(|a| **a != id) {
            self.end_attempt(now, *other, "another agent answered");
        }
        if let Some(a) = self.agents.get_mut(&att.agent) {
            a.call = Some(call);
            a.talk_since = Some(now);
            a.calls += 1;
        }
        self.set(now, &att.agent, State::OnCall, "answered");
        self.bridged.insert(
            call,
            Bridged {
                agent: att.agent.clone(),
                queue: w.queue,
                priority: w.priority,
            },
        );
        self.out.push_back(Output::Timeline {
            call,
            event: "answered",
            agent: Some(att.agent.extension.clone()),
        });
        self.out.push_back(Output::Bridge {
            call,
            attempt: id,
            agent: att.agent,
        });
        self.dispatch(now);
    }

    /// An attempt failed; the caller waits for the next agent.
    pub fn ring_failed(&mut self, now: Instant, id: AttemptId, why: RingFailure) {
        let Some(att) = self.attempts.remove(&id) else {
            return;
        };
        self.timers.remove(&(att.deadline, Timer::Ring(id)));
        if let Some(w) = self.waiting.get_mut(&att.call) {
            w.attempts.retain(|a| *a != id);
        }
        if let Some(a) = self.agents.get_mut(&att.agent) {
            a.call = None;
        }
        let pause = self
            .waiting
            .get(&att.call)
            .is_some_and(|w| self.queues[w.queue].cfg.no_answer_pause);
        let event = match &why {
            RingFailure::NoAnswer => "no answer",
            RingFailure::Busy => "busy",
            RingFailure::Failed(_) => "failed",
            RingFailure::Elsewhere => "held by another node",
        };
        if why == RingFailure::Elsewhere
            && let Some(a) = self.agents.get_mut(&att.agent)
        {
            a.elsewhere = true;
        }
        self.out.push_back(Output::Timeline {
            call: att.call,
            event,
            agent: Some(att.agent.extension.clone()),
        });
        if self
            .waiting
            .get(&att.call)
            .is_some_and(|w| w.direct.is_some())
        {
            self.direct_unanswered(now, att.call, event);
        }
        match why {
            RingFailure::NoAnswer if pause => self.set(
                now,
                &att.agent,
                State::Paused("no answer".into()),
                "no answer",
            ),
            _ => self.settle(now, &att.agent, event),
        }
        self.dispatch(now);
    }

    /// A bridged call ended: the agent's wrap-up starts.
    pub fn call_ended(&mut self, now: Instant, call: CallSlot) {
        let Some(b) = self.bridged.remove(&call) else {
            return;
        };
        let wrap = Duration::from_secs(self.queues[b.queue].cfg.wrap_up_secs);
        if let Some(a) = self.agents.get_mut(&b.agent) {
            if let Some(t) = a.talk_since.take() {
                a.talk += now.saturating_duration_since(t);
            }
            a.call = None;
            a.wrap_until = Some(now + wrap);
        }
        self.set(now, &b.agent, State::WrapUp, "call ended");
        self.timers.insert((now + wrap, Timer::WrapUp(b.agent)));
    }

    /// An agent's blind transfer of its bridged caller to `target`, a
    /// queue or an agent of the same tenant (queues are looked up first).
    /// On success the agent's part of the call is over (its wrap-up runs
    /// in full, whatever happens to the caller next) and the caller waits:
    /// in the queue, or for the one agent, who is rung at once; if that
    /// agent does not answer, the caller waits in the queue that answered
    /// it. Refused (the call stays with the agent) when the target does
    /// not exist, is the agent itself, is an agent not available now, or
    /// is a queue that would turn the caller away.
    pub fn transfer(
        &mut self,
        now: Instant,
        call: CallSlot,
        target: &str,
    ) -> Result<TransferTarget, TransferRefused> {
        let b = self.bridged.get(&call).ok_or(TransferRefused::NotBridged)?;
        let tenant = b.agent.tenant;
        let (from_queue, priority, from) = (b.queue, b.priority, b.agent.clone());
        if let Some(&qi) = self.by_name.get(&(tenant, target.to_owned())) {
            let q = &self.queues[qi];
            let closed =
                q.waiting.len() >= q.cfg.max_len || (!q.cfg.join_empty && !self.any_present(qi));
            if closed {
                return Err(TransferRefused::QueueClosed);
            }
            let max_wait = Duration::from_secs(q.cfg.max_wait_secs);
            self.call_ended(now, call);
            self.enqueue_announced(now, call, (tenant, target), priority, max_wait, None);
            return Ok(TransferTarget::Queue(target.to_owned()));
        }
        let to = self
            .agent_ref(tenant, target)
            .ok_or(TransferRefused::NoSuchTarget)?;
        if to == from {
            return Err(TransferRefused::ToSelf);
        }
        let free = self
            .agents
            .get(&to)
            .is_some_and(|a| a.state == State::Available && a.call.is_none() && !a.elsewhere);
        if !free {
            return Err(TransferRefused::Unavailable);
        }
        self.call_ended(now, call);
        self.ring_direct(now, call, from_queue, priority, &to, false);
        Ok(TransferTarget::Agent(to.extension))
    }

    /// An attended transfer: the agent bridged to `call` consulted another
    /// agent on its own call `consult` (an agent-to-agent call, bridged to
    /// that agent) and hands the caller over. The first agent's part ends
    /// (wrap-up in full); the consulted agent is on `call` now, with the
    /// caller's priority, under the queue it was reached through. Returns
    /// that agent, and where the caller waits if its leg cannot come over.
    pub fn attended(
        &mut self,
        now: Instant,
        call: CallSlot,
        consult: CallSlot,
    ) -> Result<(AgentRef, Fallback), TransferRefused> {
        let b = self.bridged.get(&call).ok_or(TransferRefused::NotBridged)?;
        let priority = b.priority;
        let back = Fallback {
            tenant: b.agent.tenant,
            queue: self.queues[b.queue].cfg.name.clone(),
            priority,
        };
        let to = self
            .bridged
            .remove(&consult)
            .ok_or(TransferRefused::NotBridged)?;
        if self.bridged.get(&call).is_some_and(|b| b.agent == to.agent) {
            self.bridged.insert(consult, to);
            return Err(TransferRefused::ToSelf);
        }
        self.call_ended(now, call);
        if let Some(a) = self.agents.get_mut(&to.agent) {
            a.call = Some(call);
        }
        let agent = to.agent.clone();
        self.bridged.insert(
            call,
            Bridged {
                agent: to.agent,
                queue: to.queue,
                priority,
            },
        );
        Ok((agent, back))
    }

    /// An agent's blind transfer of its bridged caller to a number outside
    /// (the driver dials it through the tenant's trunk): the agent's part
    /// of the call is over (wrap-up in full), and what the caller needs if
    /// the number does not answer is returned, for
    /// [`Acd::return_to_queue`].
    pub fn transfer_out(
        &mut self,
        now: Instant,
        call: CallSlot,
    ) -> Result<Fallback, TransferRefused> {
        let b = self.bridged.get(&call).ok_or(TransferRefused::NotBridged)?;
        let fallback = Fallback {
            tenant: b.agent.tenant,
            queue: self.queues[b.queue].cfg.name.clone(),
            priority: b.priority,
        };
        self.call_ended(now, call);
        Ok(fallback)
    }

    /// A caller transferred out whose number did not answer waits again in
    /// the queue it came from, at the front (behind callers of higher
    /// priority only), for the queue's maximum wait; a full queue, or an
    /// empty one it may not join, sends it to `on overflow` as any caller.
    pub fn return_to_queue(&mut self, now: Instant, call: CallSlot, back: &Fallback) {
        let Some(&qi) = self.by_name.get(&(back.tenant, back.queue.clone())) else {
            self.out.push_back(Output::Overflow {
                call,
                why: Overflow::NoSuchQueue,
            });
            return;
        };
        let max_wait = Duration::from_secs(self.queues[qi].cfg.max_wait_secs);
        let at = (back.tenant, back.queue.as_str());
        self.join(now, call, at, back.priority, max_wait, None, true);
    }

    /// Rings `to` alone for `call`, at the front of queue `qi` (whose ring
    /// timeout and wrap-up apply); `fail` says what an unanswered ring
    /// does ([`Acd::direct_unanswered`]).
    fn ring_direct(
        &mut self,
        now: Instant,
        call: CallSlot,
        qi: usize,
        priority: i32,
        to: &AgentRef,
        fail: bool,
    ) {
        let ring = Duration::from_secs(self.queues[qi].cfg.ring_timeout_secs);
        // A safety net: the ring's own timeout comes first.
        let deadline = now + ring + Duration::from_secs(2);
        self.queues[qi].waiting.insert(0, call);
        self.waiting.insert(
            call,
            Waiting {
                queue: qi,
                priority,
                joined: now,
                deadline,
                attempts: Vec::new(),
                tried: HashSet::from([to.extension.clone()]),
                next_round: None,
                announce: None,
                direct: Some(to.clone()),
                direct_final: fail,
            },
        );
        self.timers.insert((deadline, Timer::Wait(call)));
        self.ring(now, qi, call, &to.extension);
    }

    /// A flow's `transfer` to an agent of its tenant (sip:EXT or EXT): the
    /// agent is rung at once for its (first) queue's ring timeout, with
    /// that queue's wrap-up after the call; answered, it is an
    /// [`Output::Bridge`] like a queue's, otherwise
    /// [`Output::DirectFailed`]. Refused when the tenant has no such agent
    /// in a queue or the agent is not available now.
    pub fn connect_to_agent(
        &mut self,
        now: Instant,
        call: CallSlot,
        tenant: usize,
        ext: &str,
    ) -> Result<(), TransferRefused> {
        let to = self
            .agent_ref(tenant, ext)
            .ok_or(TransferRefused::NoSuchTarget)?;
        let qi = self
            .queues
            .iter()
            .position(|q| q.tenant == tenant && q.cfg.members.iter().any(|m| m == ext))
            .ok_or(TransferRefused::NoSuchTarget)?;
        let free = self
            .agents
            .get(&to)
            .is_some_and(|a| a.state == State::Available && a.call.is_none() && !a.elsewhere);
        if !free || self.waiting.contains_key(&call) || self.bridged.contains_key(&call) {
            return Err(TransferRefused::Unavailable);
        }
        self.ring_direct(now, call, qi, 0, &to, true);
        Ok(())
    }

    /// The one agent of a direct ring did not answer (`why`): a blind
    /// transfer's caller goes back to the queue, a flow's transfer fails.
    fn direct_unanswered(&mut self, now: Instant, call: CallSlot, why: &'static str) {
        let fail = self.waiting.get(&call).is_some_and(|w| w.direct_final);
        if !fail {
            self.back_to_queue(now, call);
            return;
        }
        if let Some(w) = self.take_waiting(call) {
            for id in w.attempts {
                self.end_attempt(now, id, "transfer over");
            }
        }
        self.out.push_back(Output::DirectFailed { call, why });
    }

    /// A transfer to one agent failed: the caller waits in its queue like
    /// any caller (behind those of higher priority), up to the queue's
    /// maximum wait.
    fn back_to_queue(&mut self, now: Instant, call: CallSlot) {
        let Some(w) = self.waiting.get_mut(&call) else {
            return;
        };
        let Some(agent) = w.direct.take() else {
            return;
        };
        let qi = w.queue;
        let old = w.deadline;
        w.deadline = now + Duration::from_secs(self.queues[qi].cfg.max_wait_secs);
        let deadline = w.deadline;
        self.timers.remove(&(old, Timer::Wait(call)));
        self.timers.insert((deadline, Timer::Wait(call)));
        self.out.push_back(Output::Timeline {
            call,
            event: "transfer failed",
            agent: Some(agent.extension),
        });
    }

    /// Deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, t)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, t.clone()));
            match t {
                Timer::Ring(id) => self.ring_failed_by_timeout(now, id),
                Timer::Wait(call)
                    if self.waiting.get(&call).is_some_and(|w| w.direct.is_some()) =>
                {
                    self.direct_unanswered(now, call, "no answer")
                }
                Timer::Wait(call) => self.leave(now, call, Leave::Overflow(Overflow::Timeout)),
                Timer::Round(_) => {}
                Timer::Announce(call) => self.announce(now, call),
                Timer::WrapUp(agent) => {
                    if let Some(a) = self.agents.get_mut(&agent)
                        && a.wrap_until.is_some_and(|w| w <= now)
                    {
                        a.wrap_until = None;
                        if a.state == State::WrapUp {
                            self.settle(now, &agent, "wrap-up over");
                        }
                    }
                }
            }
        }
        self.dispatch(now);
    }

    fn announce(&mut self, now: Instant, call: CallSlot) {
        let Some(w) = self.waiting.get_mut(&call) else {
            return;
        };
        let Some((every, _)) = w.announce else {
            return;
        };
        w.announce = Some((every, now + every));
        let qi = w.queue;
        self.timers.insert((now + every, Timer::Announce(call)));
        let q = &self.queues[qi];
        let position = q
            .waiting
            .iter()
            .position(|c| *c == call)
            .map_or(1, |p| p + 1);
        self.out.push_back(Output::Position {
            call,
            position,
            estimated_wait: q.recent_wait,
        });
    }

    fn ring_failed_by_timeout(&mut self, now: Instant, id: AttemptId) {
        if self.attempts.contains_key(&id) {
            self.out.push_back(Output::StopRing { attempt: id });
        }
        self.ring_failed(now, id, RingFailure::NoAnswer);
    }

    /// Rings agents for waiting callers while both exist.
    fn dispatch(&mut self, now: Instant) {
        for qi in 0..self.queues.len() {
            let calls = self.queues[qi].waiting.clone();
            for call in calls {
                let strategy = self.queues[qi].cfg.strategy;
                let busy = self
                    .waiting
                    .get(&call)
                    .is_some_and(|w| !w.attempts.is_empty());
                if busy && strategy != Strategy::RingAll {
                    continue;
                }
                let picks = self.pick(now, qi, call);
                if picks.is_empty() {
                    // This caller waits; a later one may have agents it
                    // has not tried yet.
                    continue;
                }
                for ext in picks {
                    self.ring(now, qi, call, &ext);
                }
            }
        }
    }

    /// Available members to ring for `call`, by the queue's strategy.
    fn pick(&mut self, now: Instant, qi: usize, call: CallSlot) -> Vec<String> {
        let q = &self.queues[qi];
        let (tried, next_round) = self
            .waiting
            .get(&call)
            .map(|w| (w.tried.clone(), w.next_round))
            .unwrap_or_default();
        let avail: Vec<(usize, &String, &Agent)> = q
            .cfg
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| self.agent_by(q.tenant, m).map(|a| (i, m, a)))
            .filter(|(_, _, a)| a.state == State::Available && a.call.is_none() && !a.elsewhere)
            .collect();
        if let Some(direct) = self.waiting.get(&call).and_then(|w| w.direct.as_ref()) {
            // A transfer to one agent: it, or nobody (it was rung when the
            // transfer was made; a caller of another queue got it first).
            let free = self
                .agents
                .get(direct)
                .is_some_and(|a| a.state == State::Available && a.call.is_none() && !a.elsewhere);
            return if free && !tried.contains(&direct.extension) {
                vec![direct.extension.clone()]
            } else {
                vec![]
            };
        }
        if avail.is_empty() {
            return vec![];
        }
        let fresh: Vec<&(usize, &String, &Agent)> = avail
            .iter()
            .filter(|(_, m, _)| !tried.contains(*m))
            .collect();
        // Everyone available was tried this round: a new round, after a
        // pause.
        let (pool, new_round): (Vec<&(usize, &String, &Agent)>, bool) = if fresh.is_empty() {
            match next_round {
                Some(at) if at <= now => (avail.iter().collect(), true),
                Some(_) => return vec![],
                None => {
                    let at = now + ROUND_PAUSE;
                    if let Some(w) = self.waiting.get_mut(&call) {
                        w.next_round = Some(at);
                    }
                    self.timers.insert((at, Timer::Round(call)));
                    return vec![];
                }
            }
        } else {
            (fresh, false)
        };
        let chosen: Vec<String> = match q.cfg.strategy {
            Strategy::RingAll => pool.iter().map(|(_, m, _)| (*m).clone()).collect(),
            Strategy::LongestIdle => pool
                .iter()
                .min_by_key(|(i, _, a)| (a.idle_since, *i))
                .map(|(_, m, _)| vec![(*m).clone()])
                .unwrap_or_default(),
            Strategy::FewestCalls => pool
                .iter()
                .min_by_key(|(i, _, a)| (a.calls, *i))
                .map(|(_, m, _)| vec![(*m).clone()])
                .unwrap_or_default(),
            Strategy::LeastTalkTime => pool
                .iter()
                .min_by_key(|(i, _, a)| (a.talk, *i))
                .map(|(_, m, _)| vec![(*m).clone()])
                .unwrap_or_default(),
            Strategy::Skills => {
                let needed: Vec<String> = q
                    .cfg
                    .skills
                    .iter()
                    .map(|s| s.to_ascii_lowercase())
                    .collect();
                // The sum of the needed skills' levels; an agent without
                // one of them is not rung for this queue.
                let score = |a: &Agent| -> Option<u32> {
                    needed
                        .iter()
                        .map(|n| a.skills.iter().find(|(s, _)| s == n).map(|(_, l)| *l))
                        .sum()
                };
                pool.iter()
                    .filter_map(|(i, m, a)| score(a).map(|sc| (sc, *i, *m, a.idle_since)))
                    .max_by(|x, y| x.0.cmp(&y.0).then(y.3.cmp(&x.3)).then(y.1.cmp(&x.1)))
                    .map(|(_, _, m, _)| vec![m.clone()])
                    .unwrap_or_default()
            }
            Strategy::RoundRobin => {
                let n = q.cfg.members.len();
                let start = q.last_rung.map_or(0, |l| (l + 1) % n.max(1));
                pool.iter()
                    .min_by_key(|(i, _, _)| (i + n - start) % n.max(1))
                    .map(|(_, m, _)| vec![(*m).clone()])
                    .unwrap_or_default()
            }
        };
        if q.cfg.strategy == Strategy::RoundRobin
            && let Some(first) = chosen.first()
        {
            let idx = q.cfg.members.iter().position(|m| m == first);
            self.queues[qi].last_rung = idx;
        }
        if let Some(w) = self.waiting.get_mut(&call) {
            if new_round {
                w.tried.clear();
                w.next_round = None;
            }
            w.tried.extend(chosen.iter().cloned());
        }
        chosen
    }

    fn ring(&mut self, now: Instant, qi: usize, call: CallSlot, ext: &str) {
        let tenant = self.queues[qi].tenant;
        let Some(agent) = self.agent_ref(tenant, ext) else {
            return;
        };
        self.next_attempt += 1;
        let id = AttemptId(self.next_attempt);
        let deadline = now + Duration::from_secs(self.queues[qi].cfg.ring_timeout_secs);
        self.attempts.insert(
            id,
            Attempt {
                call,
                agent: agent.clone(),
                deadline,
            },
        );
        self.timers.insert((deadline, Timer::Ring(id)));
        if let Some(w) = self.waiting.get_mut(&call) {
            w.attempts.push(id);
        }
        if let Some(a) = self.agents.get_mut(&agent) {
            a.call = Some(call);
        }
        self.set(now, &agent, State::Ringing, "rung");
        self.out.push_back(Output::Timeline {
            call,
            event: "agent rung",
            agent: Some(ext.to_owned()),
        });
        self.out.push_back(Output::Ring {
            call,
            attempt: id,
            agent,
        });
    }
}

/// How a caller left the queue without an agent.
#[derive(Debug, Clone, Copy)]
enum Leave {
    Abandoned,
    Key,
    Overflow(Overflow),
}

/// What the CLI or a feature code asks of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentCommand {
    /// Take calls.
    LogIn,
    /// Stop taking calls.
    LogOut,
    /// Pause, with a reason.
    Pause(String),
    /// Back from a pause.
    Unpause,
    /// New skills (the agent was edited).
    SetSkills(Vec<(String, u32)>),
}

#[cfg(test)]
mod tests;
