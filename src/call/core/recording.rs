//! Recording control of the call core: messages (`record`) and the
//! consented call recording, paused for sensitive input, ended by silence,
//! the end key or the maximum length; all through the [`Recorders`] trait.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ivr_dsl::ast::RecordingOp;
use ivr_dsl::interp::Input as FlowInput;
use media::call::Command;

use super::{Core, FRAME, Recorders, Recording, SILENCE_GRACE_FRAMES, SILENCE_MEAN_AMPLITUDE};

impl Core {
    pub(super) fn start_message(
        &mut self,
        now: Instant,
        max: Duration,
        beep: bool,
        silence: Duration,
        step: &str,
        rec: &mut impl Recorders,
    ) {
        self.messages += 1;
        let id = format!("{}-m{}", self.info.record_id, self.messages);
        let opened = if self.consent_withdrawn {
            // The caller's voice is not kept, message or not.
            Err("the caller withdrew consent (privacy registry)".to_owned())
        } else {
            rec.open(&id, false, now).map_err(|e| e.to_string())
        };
        match opened {
            Ok(()) => {
                if beep {
                    self.media.handle_command(
                        now,
                        Command::Play {
                            prompts: vec![Arc::clone(&self.beep)],
                            barge_in: false,
                        },
                    );
                }
                self.media.handle_command(now, Command::Tap(true));
                self.message = Some(Recording {
                    id,
                    paused: false,
                    deadline: Some(now + max),
                    silence: (!silence.is_zero()).then_some((silence, Duration::ZERO)),
                    frames: 0,
                });
            }
            Err(e) => {
                self.log(now, step, "error", serde_json::json!({"record": e}));
                self.flow_input(
                    now,
                    FlowInput::RecordingFinished {
                        id: String::new(),
                        duration: Duration::ZERO,
                    },
                );
            }
        }
    }

    pub(super) fn finish_message(&mut self, now: Instant, rec: &mut impl Recorders) {
        let Some(m) = self.message.take() else {
            return;
        };
        if self.call_rec.is_none() && self.bridge.is_none() {
            self.media.handle_command(now, Command::Tap(false));
        }
        let duration = FRAME * u32::try_from(m.frames).unwrap_or(u32::MAX);
        if let Err(e) = rec.finish(&m.id) {
            tracing::error!(call_id = %self.info.sip_call_id, recording = %m.id, error = %e, "message recording failed");
        }
        self.recording_ids.push(m.id.clone());
        self.flow_input(now, FlowInput::RecordingFinished { id: m.id, duration });
    }

    pub(super) fn call_recording(
        &mut self,
        now: Instant,
        op: RecordingOp,
        step: &str,
        rec: &mut impl Recorders,
    ) {
        match op {
            RecordingOp::Start if self.consent_withdrawn => {
                self.log(
                    now,
                    step,
                    "recording",
                    serde_json::json!({"event": "refused", "reason": "the caller withdrew consent (privacy registry)"}),
                );
            }
            RecordingOp::Start if self.call_rec.is_none() => {
                let id = format!("{}-call", self.info.record_id);
                match rec.open(&id, true, now) {
                    Ok(()) => {
                        self.media.handle_command(now, Command::Tap(true));
                        self.log(
                            now,
                            step,
                            "recording",
                            serde_json::json!({"event": "writing", "id": id}),
                        );
                        self.recording_ids.insert(0, id.clone());
                        self.call_rec = Some(Recording {
                            id,
                            paused: false,
                            deadline: None,
                            silence: None,
                            frames: 0,
                        });
                    }
                    Err(e) => {
                        tracing::error!(call_id = %self.info.sip_call_id, error = %e, "cannot start the call recording; the call goes on unrecorded");
                        self.log(
                            now,
                            step,
                            "error",
                            serde_json::json!({"recording": format!("failed: {e}")}),
                        );
                    }
                }
            }
            RecordingOp::Stop => self.stop_call_recording(now, rec),
            // The interpreter logs these itself.
            RecordingOp::Pause | RecordingOp::Resume => {
                if let Some(r) = self.call_rec.as_mut() {
                    r.paused = op == RecordingOp::Pause;
                }
            }
            RecordingOp::Start => {}
        }
    }

    pub(super) fn stop_call_recording(&mut self, now: Instant, rec: &mut impl Recorders) {
        if let Some(r) = self.call_rec.take() {
            let seconds = r.frames as f64 * FRAME.as_secs_f64();
            self.log(
                now,
                "",
                "recording",
                serde_json::json!({"event": "saved", "id": r.id, "seconds": seconds}),
            );
            if self.message.is_none() && self.bridge.is_none() {
                self.media.handle_command(now, Command::Tap(false));
            }
            if let Err(e) = rec.finish(&r.id) {
                tracing::error!(call_id = %self.info.sip_call_id, recording = %r.id, error = %e, "call recording failed");
            }
        }
    }

    /// 20 ms of audio each way for the recorders.
    pub(super) fn tap(
        &mut self,
        now: Instant,
        caller: &[i16],
        far: &[i16],
        rec: &mut impl Recorders,
    ) {
        let mut failed = None;
        if let Some(r) = self.call_rec.as_mut()
            && !r.paused
        {
            // Caller left, far end right, in a buffer kept across frames.
            let inter = &mut self.scratch;
            inter.clear();
            inter.extend(caller.iter().zip(far).flat_map(|(a, b)| [*a, *b]));
            r.frames += 1;
            if let Err(e) = rec.write(&r.id, now, inter) {
                failed = Some((r.id.clone(), e.to_string()));
            }
        }
        if let Some((id, e)) = failed {
            // Full disk and the like: the call goes on, the recording is
            // marked failed in the timeline and the log.
            tracing::error!(call_id = %self.info.sip_call_id, recording = %id, error = %e, "recording failed; the call goes on");
            self.log(
                now,
                "",
                "error",
                serde_json::json!({"recording": id, "failed": e, "what": "call"}),
            );
            self.call_rec = None;
        }
        let mut done = false;
        if let Some(m) = self.message.as_mut() {
            m.frames += 1;
            if let Err(e) = rec.write(&m.id, now, caller) {
                tracing::error!(call_id = %self.info.sip_call_id, recording = %m.id, error = %e, "message recording failed");
                done = true;
            }
            if let Some((limit, quiet)) = m.silence.as_mut() {
                let energy = caller.iter().map(|s| i64::from(*s).abs()).sum::<i64>()
                    / caller.len().max(1) as i64;
                if energy < SILENCE_MEAN_AMPLITUDE {
                    *quiet += FRAME;
                } else {
                    *quiet = Duration::ZERO;
                }
                if *quiet >= *limit && m.frames > SILENCE_GRACE_FRAMES {
                    done = true;
                }
            }
            if m.deadline.is_some_and(|d| now >= d) {
                done = true;
            }
        }
        if done {
            self.finish_message(now, rec);
        }
    }
}
