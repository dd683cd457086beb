//! The queued call and its agent: the queue's events, the agent's leg
//! joining the call, the bridge between the two legs, the agent's hold.

use std::time::Instant;

use ivr_dsl::interp::{Input as FlowInput, QueueOutcome};
use media::bridge::Bridge;
use media::call::{CallMedia, Command, Event, Output as MediaOutput};

use super::{AgentLeg, Core, Leg, Output, QueueEvent};
use crate::ua::Party;

impl Core {
    /// The agent answered: its leg joins the call and the two are bridged.
    pub(super) fn agent_answered(
        &mut self,
        now: Instant,
        media: Box<CallMedia>,
        agent: String,
        outside: bool,
    ) {
        if let Some((_, since)) = self.transferring.take() {
            // The flow's `transfer` connected: the flow is over.
            self.bridge_agent(now, media, (agent, outside), String::new(), since);
            self.flow_input(now, FlowInput::TransferDone(Ok(())));
            return;
        }
        let Some(q) = self.queued.take() else {
            // Not waiting any more (the queue gave up, or the caller left
            // with a key, a moment before): the agent is released at once.
            self.out.push_back(Output::AgentNotNeeded);
            return;
        };
        // The hold music stops (its PlaybackFinished is still the queue's),
        // and if it is still being decoded (an agent answered at once), it
        // never starts: it would play over the agent.
        let (name, joined) = (q.name.clone(), q.joined);
        self.queued = Some(q);
        if let Some(job) = self.play_job.take() {
            self.out.push_back(Output::CancelPrompts { job });
        }
        self.announcing = false;
        self.media.handle_command(now, Command::Stop);
        self.queued = None;
        self.bridge_agent(now, media, (agent, outside), name, joined);
        if !self.interp.is_ended() {
            self.flow_input(now, FlowInput::QueueDone(QueueOutcome::Answered));
        }
    }

    /// Bridges the agent's leg to the caller, who waited since `joined`
    /// (in queue `name`, or none for a flow's transfer), and notes it in
    /// the CDR and the timeline.
    fn bridge_agent(
        &mut self,
        now: Instant,
        mut media: Box<CallMedia>,
        (agent, outside): (String, bool),
        name: String,
        joined: Instant,
    ) {
        let wait = now.saturating_duration_since(joined);
        let waited = wait.as_secs_f64();
        self.queue_cdr = Some(match self.queue_cdr.take() {
            // Answered again after a transfer: the CDR keeps the queue
            // that first answered, adds this wait to the earlier ones and
            // names the agent who has the caller now.
            Some(c) if c.agent.is_some() => super::QueueCdr {
                agent: Some(agent.clone()),
                wait: c.wait + wait,
                ..c
            },
            _ => super::QueueCdr {
                queue: name.clone(),
                agent: Some(agent.clone()),
                wait,
                talk: std::time::Duration::ZERO,
            },
        });
        let mut bridge = Bridge::new();
        let c = bridge.add_leg(self.media.codec().sample_rate());
        let a = bridge.add_leg(media.codec().sample_rate());
        bridge.hear(c, a, true);
        bridge.hear(a, c, true);
        self.bridge = Some((bridge, c, a));
        self.media.handle_command(now, Command::Tap(true));
        // The caller's in-band keys are audio the agent hears now (keys
        // that come as RFC 4733 or INFO still go on to the agent).
        self.media.handle_command(now, Command::InbandDtmf(false));
        media.handle_command(now, Command::Tap(true));
        self.log(
            now,
            "",
            "queue",
            serde_json::json!({"name": name, "event": "bridged", "agent": agent, "wait_secs": (waited * 10.0).round() / 10.0}),
        );
        let leg = AgentLeg {
            media,
            extension: agent,
            outside,
            since: now,
            on_hold: false,
        };
        tracing::info!(call_id = %self.info.sip_call_id, record_id = %self.info.record_id, queue = %name, agent = %leg.shown(), "bridged to an agent");
        self.agent = Some(leg);
    }

    /// The agent's blind transfer: its leg leaves the call (its audio
    /// stops, its talk goes to the CDR) and the caller waits again with
    /// the hold music. The flow has ended already (it ended when the
    /// queue answered); if no agent takes the caller in the end, the call
    /// ends.
    fn transferred(&mut self, now: Instant, to: String, kind: super::TransferTo) {
        let queue = kind == super::TransferTo::Queue;
        self.end_supervision(now, "the agent transferred the caller");
        let Some(a) = self.agent.take() else {
            return;
        };
        self.bridge = None;
        // Waiting again: the queue's keys may come in-band.
        self.media.handle_command(now, Command::InbandDtmf(true));
        let talk = now.saturating_duration_since(a.since);
        let name = match self.queue_cdr.as_mut() {
            Some(c) => {
                c.talk += talk;
                c.queue.clone()
            }
            None => String::new(),
        };
        // A number or a URI may be a person's: the log names only its kind.
        let shown = match kind {
            super::TransferTo::Number => "a number",
            super::TransferTo::Uri => "a SIP URI",
            _ => to.as_str(),
        };
        tracing::info!(call_id = %self.info.sip_call_id, record_id = %self.info.record_id, agent = %a.shown(), to = %shown, kind = %kind.name(), "agent transferred the caller");
        let talk = talk.as_secs_f64();
        self.log(
            now,
            "",
            "queue",
            serde_json::json!({"event": "transferred", "agent": a.extension, "to": to, "to_queue": queue, "to_kind": kind.name(), "talk_secs": (talk * 10.0).round() / 10.0}),
        );
        self.queued = Some(super::Queued {
            name: if queue { to } else { name },
            joined: now,
            keys: Vec::new(),
        });
        if self.call_rec.is_none() && self.message.is_none() {
            self.media.handle_command(now, Command::Tap(false));
        }
        // The agent's own hold music may be playing; start the loop over.
        self.media.handle_command(now, Command::Stop);
        self.play_hold_music(now);
    }

    /// An attended transfer moves this call's agent leg (this is the
    /// transferring agent's consultation call) to the caller's call: the
    /// leg leaves the bridge, its talk goes to the CDR, and this call ends
    /// (our BYE to the transferring agent). Returns the agent's extension
    /// and where its phone takes RTP now, for the leg's new call.
    pub fn hand_over_agent(&mut self, now: Instant) -> Option<(String, std::net::SocketAddr)> {
        self.end_supervision(now, "the agent's leg moved to another call");
        let a = self.agent.take()?;
        self.bridge = None;
        let talk = now.saturating_duration_since(a.since);
        if let Some(c) = self.queue_cdr.as_mut() {
            c.talk += talk;
        }
        let talk = talk.as_secs_f64();
        tracing::info!(call_id = %self.info.sip_call_id, record_id = %self.info.record_id, agent = %a.shown(), "consultation handed over: the agent's leg moved to the transferred caller");
        self.log(
            now,
            "",
            "queue",
            serde_json::json!({"event": "handed over", "agent": a.extension, "talk_secs": (talk * 10.0).round() / 10.0}),
        );
        self.request_hangup(Party::Dhwani, "attended transfer".into());
        Some((a.extension, a.media.session().send_addr()))
    }

    /// The queue's hold music from its start (looped by its end event),
    /// if it has any.
    pub(super) fn play_hold_music(&mut self, now: Instant) {
        if let Some(pcm) = self.hold_music.clone() {
            self.media.handle_command(
                now,
                Command::Play {
                    prompts: pcm,
                    barge_in: false,
                },
            );
        }
    }

    pub(super) fn queue_event(&mut self, now: Instant, ev: QueueEvent) {
        match ev {
            QueueEvent::Timeline { event, agent } => {
                let name = self
                    .queued
                    .as_ref()
                    .map(|q| q.name.clone())
                    .unwrap_or_default();
                self.log(
                    now,
                    "",
                    "queue",
                    serde_json::json!({"name": name, "event": event, "agent": agent}),
                );
            }
            QueueEvent::Overflow { why } => {
                if self.queued.is_none() {
                    return;
                }
                let q = self.stop_waiting(now);
                let name = q.map(|q| q.name).unwrap_or_default();
                self.log(
                    now,
                    "",
                    "queue",
                    serde_json::json!({"name": name, "event": "overflow", "why": why}),
                );
                self.flow_input(now, FlowInput::QueueDone(QueueOutcome::Overflow));
            }
            QueueEvent::Position {
                position,
                estimated_wait_secs,
            } => {
                if self.queued.is_none() || self.play_job.is_some() {
                    return;
                }
                let mut text = format!("You are caller number {position} in the queue.");
                if let Some(s) = estimated_wait_secs {
                    let minutes = s.div_ceil(60).max(1);
                    let unit = if minutes == 1 { "minute" } else { "minutes" };
                    text.push_str(&format!(" Your estimated wait is about {minutes} {unit}."));
                }
                text.push_str(" Thank you for waiting.");
                let name = self
                    .queued
                    .as_ref()
                    .map(|q| q.name.clone())
                    .unwrap_or_default();
                self.log(
                    now,
                    "",
                    "queue",
                    serde_json::json!({"name": name, "event": "position", "position": position, "estimated_wait_secs": estimated_wait_secs}),
                );
                self.next_job += 1;
                self.play_job = Some(self.next_job);
                self.play_barge_in = false;
                self.announcing = true;
                self.out.push_back(Output::ResolvePrompts {
                    job: self.next_job,
                    prompts: vec![ivr_dsl::interp::Playable::Say {
                        text,
                        voice: self.info.admitted.flow.voice.clone(),
                    }],
                    rate: self.rate,
                });
            }
            QueueEvent::Transferred { to, kind } => self.transferred(now, to, kind),
            QueueEvent::TransferFailed { why } => {
                if self.transferring.take().is_some() {
                    self.flow_input(now, FlowInput::TransferDone(Err(why.into())));
                }
            }
            QueueEvent::AgentLeft => {
                if let Some(a) = &self.agent {
                    tracing::info!(call_id = %self.info.sip_call_id, record_id = %self.info.record_id, agent = %a.shown(), "agent hung up");
                    self.request_hangup(Party::Agent, "agent hung up".into());
                }
            }
            QueueEvent::AgentMedia(u) => {
                let Some(a) = self.agent.as_mut() else {
                    return;
                };
                let send = super::follow_media_update(&mut a.media, now, &u);
                // The agent put the caller on hold: hold music for the
                // caller until the agent comes back.
                let hold = !send;
                if hold != a.on_hold {
                    a.on_hold = hold;
                    let ext = a.extension.clone();
                    self.log(
                        now,
                        "",
                        "queue",
                        serde_json::json!({"event": if hold { "agent hold" } else { "agent unhold" }, "agent": ext}),
                    );
                    if hold {
                        self.play_hold_music(now);
                    } else {
                        self.media.handle_command(now, Command::Stop);
                    }
                }
            }
        }
    }

    /// The caller stops waiting without an agent: the hold music (or its
    /// decoding, or an announcement) stops, and the CDR gets the wait.
    fn stop_waiting(&mut self, now: Instant) -> Option<super::Queued> {
        if let Some(job) = self.play_job.take() {
            self.out.push_back(Output::CancelPrompts { job });
        }
        self.announcing = false;
        // While still queued, so the PlaybackFinished is the queue's.
        self.media.handle_command(now, Command::Stop);
        let q = self.queued.take()?;
        self.waited(&q.name, now.saturating_duration_since(q.joined));
        Some(q)
    }

    /// A wait without an agent for the CDR: its queue's, or, after a
    /// transfer, added to the earlier waits (the agents stay named).
    pub(super) fn waited(&mut self, queue: &str, wait: std::time::Duration) {
        match self.queue_cdr.as_mut() {
            Some(c) if c.agent.is_some() => c.wait += wait,
            _ => {
                self.queue_cdr = Some(super::QueueCdr {
                    queue: queue.to_owned(),
                    wait,
                    ..super::QueueCdr::default()
                })
            }
        }
    }

    /// The caller pressed one of the queue's keys: out of the queue, and
    /// the flow goes to that key's step.
    pub(super) fn leave_queue_by_key(&mut self, now: Instant, key: char) {
        if self.stop_waiting(now).is_none() {
            return;
        }
        self.out.push_back(Output::LeaveQueue);
        self.flow_input(now, FlowInput::QueueDone(QueueOutcome::Key(key)));
    }

    /// Moves the agent leg's media outputs: its datagrams out, its audio
    /// into the bridge, its keys on to the caller. True if there were any.
    pub(super) fn pump_agent(&mut self, now: Instant) -> bool {
        let mut any = false;
        loop {
            let Some(a) = self.agent.as_mut() else {
                return any;
            };
            let Some(out) = a.media.poll_output() else {
                return any;
            };
            any = true;
            match out {
                MediaOutput::Transmit { to, bytes, rtcp } => self.out.push_back(Output::Transmit {
                    leg: Leg::Agent,
                    to,
                    bytes,
                    rtcp,
                }),
                MediaOutput::Tap { caller: heard, .. } => {
                    if let Some((b, c, ag)) = self.bridge.as_mut() {
                        b.put(*ag, &heard);
                        if let Some(f) = b.take(*c) {
                            self.media.handle_command(now, Command::Feed(f));
                        }
                    }
                }
                MediaOutput::Event(Event::Digit { key, .. }) => {
                    self.media.handle_command(now, Command::SendDigit(key));
                }
                MediaOutput::Event(Event::MediaTimeout) => {
                    tracing::info!(call_id = %self.info.sip_call_id, record_id = %self.info.record_id, "no RTP from the agent: media timeout");
                    self.request_hangup(Party::System, "agent media timeout".into());
                }
                MediaOutput::Event(_) => {}
            }
        }
    }
}
