//! A supervisor on an agent's call (`*31EXT` listen, `*32EXT` whisper,
//! `*33EXT` barge): the supervisor's own call hands its media to the
//! caller's call task, where it becomes a third leg of the call's
//! [`media::bridge::Bridge`]. What each leg hears is the bridge's matrix
//! for the mode (see the bridge's table); nothing else changes: the call,
//! its recording (caller left, what the caller hears right, so a barging
//! supervisor is in it) and its CDR stay the caller's and the agent's.
//!
//! The supervisor leaves by hanging up (or by a media timeout); when the
//! agent's leg ends (hang-up, transfer) or the call ends, the supervisor's
//! call is hung up ([`Output::SupervisorDone`]).

use std::time::Instant;

use media::bridge::BridgeLeg;
use media::call::{CallMedia, Command, Event, Output as MediaOutput};

use super::{Core, Leg, Output, SipEvent};
use crate::ua::SuperviseMode;

/// The supervisor's leg.
pub(super) struct SupervisorLeg {
    pub(super) media: Box<CallMedia>,
    extension: String,
    mode: SuperviseMode,
    since: Instant,
    leg: BridgeLeg,
}

impl Core {
    /// A supervisor's media arrived: it joins the bridge in `mode`, or is
    /// sent away when there is no bridge (the agent's leg ended a moment
    /// before) or another supervisor is on the call.
    pub(super) fn supervisor_joined(
        &mut self,
        now: Instant,
        mut media: Box<CallMedia>,
        extension: String,
        mode: SuperviseMode,
    ) {
        let agent = self.agent.as_ref().map(|a| a.extension.clone());
        let (Some((bridge, caller, agent_leg)), Some(agent), None) =
            (self.bridge.as_mut(), agent, self.supervisor.as_ref())
        else {
            self.out.push_back(Output::SupervisorDone);
            return;
        };
        let leg = bridge.add_leg(media.codec().sample_rate());
        bridge.hear(leg, *caller, true);
        bridge.hear(leg, *agent_leg, true);
        bridge.hear(*agent_leg, leg, mode != SuperviseMode::Listen);
        bridge.hear(*caller, leg, mode == SuperviseMode::Barge);
        media.handle_command(now, Command::Tap(true));
        tracing::info!(call_id = %self.info.sip_call_id, record_id = %self.info.record_id, supervisor = %extension, agent = %agent, mode = mode.name(), "supervisor joined");
        self.log(
            now,
            "",
            "supervisor",
            serde_json::json!({"event": mode.name(), "supervisor": extension, "agent": agent}),
        );
        self.supervisor = Some(SupervisorLeg {
            media,
            extension,
            mode,
            since: now,
            leg,
        });
    }

    /// The supervisor is gone: nobody hears its leg any more.
    pub(super) fn supervisor_left(&mut self, now: Instant, why: &str) {
        let Some(s) = self.supervisor.take() else {
            return;
        };
        if let Some((bridge, caller, agent)) = self.bridge.as_mut() {
            bridge.hear(*caller, s.leg, false);
            bridge.hear(*agent, s.leg, false);
            bridge.hear(s.leg, *caller, false);
            bridge.hear(s.leg, *agent, false);
        }
        let secs = now.saturating_duration_since(s.since).as_secs_f64();
        tracing::info!(call_id = %self.info.sip_call_id, record_id = %self.info.record_id, supervisor = %s.extension, mode = s.mode.name(), why, "supervisor left");
        self.log(
            now,
            "",
            "supervisor",
            serde_json::json!({"event": "left", "supervisor": s.extension, "mode": s.mode.name(), "why": why, "secs": (secs * 10.0).round() / 10.0}),
        );
    }

    /// The agent's leg ended or left the call: the supervisor goes too.
    pub(super) fn end_supervision(&mut self, now: Instant, why: &str) {
        if self.supervisor.is_some() {
            self.supervisor_left(now, why);
            self.out.push_back(Output::SupervisorDone);
        }
    }

    /// From the supervisor's own dialog.
    pub(super) fn supervisor_sip(&mut self, now: Instant, ev: SipEvent) {
        let Some(s) = self.supervisor.as_mut() else {
            return;
        };
        match ev {
            SipEvent::Ended { .. } => self.supervisor_left(now, "supervisor hung up"),
            SipEvent::Confirmed => s.media.handle_command(now, Command::Confirm),
            SipEvent::MediaUpdate(u) => {
                super::follow_media_update(&mut s.media, now, &u);
            }
            // Keys and queue events mean nothing on this leg.
            _ => {}
        }
    }

    /// Moves the supervisor leg's media outputs: datagrams out, its audio
    /// into the bridge and what it hears back. True if there were any.
    pub(super) fn pump_supervisor(&mut self, now: Instant) -> bool {
        let mut any = false;
        loop {
            let Some(s) = self.supervisor.as_mut() else {
                return any;
            };
            let Some(out) = s.media.poll_output() else {
                return any;
            };
            any = true;
            match out {
                MediaOutput::Transmit { to, bytes, rtcp } => self.out.push_back(Output::Transmit {
                    leg: Leg::Supervisor,
                    to,
                    bytes,
                    rtcp,
                }),
                MediaOutput::Tap { caller: heard, .. } => {
                    if let Some((b, _, _)) = self.bridge.as_mut() {
                        b.put(s.leg, &heard);
                        if let Some(f) = b.take(s.leg) {
                            s.media.handle_command(now, Command::Feed(f));
                        }
                    }
                }
                MediaOutput::Event(Event::MediaTimeout) => {
                    self.end_supervision(now, "no RTP from the supervisor");
                }
                MediaOutput::Event(_) => {}
            }
        }
    }
}
