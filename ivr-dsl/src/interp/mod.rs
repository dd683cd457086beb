//! The interpreter: one per call, a sans-IO state machine over a compiled
//! [`Flow`].
//!
//! ```text
//!   start ──► run instructions ──► waiting ──handle_input──► run ... ──► Ended
//!                (Set, If, Goto,     (prompt, digits, timer,
//!                 Log: no waiting)    recording, queue, fetch)
//! ```
//!
//! The host (the server's call task, or the simulator) feeds [`Input`]s with
//! the current time, drains [`Output`]s with `poll_output`, and calls again
//! with [`Input::Timeout`] at `poll_timeout`. The interpreter never reads a
//! clock: calendar time is the call's start time plus elapsed `Instant`s.
//!
//! Each input may run at most [`STEP_BUDGET`] instructions before the flow
//! must wait; a flow that does not is ended with an error naming its step.

mod eval;
mod services;
mod waits;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ast::{Method, RecordingOp};
use crate::flow::{Flow, Instr, Pc, Prompt, StepId, Version};
use crate::value::Value;

pub use eval::mask;

/// Most instructions one input may run.
pub const STEP_BUDGET: u32 = 10_000;
/// Deepest chain of `call`s.
pub const MAX_CALL_DEPTH: usize = 32;
/// Digits kept from a caller typing ahead of a menu.
pub const MAX_TYPE_AHEAD: usize = 32;

/// Who is calling, and when the call began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallContext {
    /// The call's id (for logs).
    pub call_id: String,
    /// Caller's number.
    pub caller: String,
    /// Number dialled.
    pub called: String,
    /// Wall-clock start of the call.
    pub start_time: jiff::Timestamp,
}

/// How a queue attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOutcome {
    /// An agent took the call; the flow is over.
    Answered,
    /// Waited `max wait`, or the queue was full.
    Overflow,
    /// The queue does not exist or has no agents (or queues are not
    /// available on this server yet).
    Unavailable,
    /// The caller pressed one of the queue's keys (`on 0 -> step`).
    Key(char),
}

/// Something that happened on the call.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The caller pressed a key (from RFC 4733, SIP INFO or in-band).
    Digit(char),
    /// The prompts of the last `Play` finished (or were stopped).
    PromptFinished,
    /// `poll_timeout` was reached.
    Timeout,
    /// A `record` finished.
    RecordingFinished {
        /// Recording id.
        id: String,
        /// Length.
        duration: Duration,
    },
    /// A `fetch` finished: the JSON reply or why it failed.
    FetchDone(Result<serde_json::Value, ServiceFailure>),
    /// A `queue` finished.
    QueueDone(QueueOutcome),
    /// A `transfer` finished (Err: why it failed).
    TransferDone(Result<(), ServiceFailure>),
    /// The caller hung up.
    HangUp,
}

/// Why a service the flow asked for (`fetch`, `transfer`) failed, in words
/// for the timeline ("busy", "timed out after 3 s", "HTTP 503").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ServiceFailure {
    /// The reason.
    pub reason: String,
}

impl From<String> for ServiceFailure {
    fn from(reason: String) -> ServiceFailure {
        ServiceFailure { reason }
    }
}

impl From<&str> for ServiceFailure {
    fn from(reason: &str) -> ServiceFailure {
        ServiceFailure {
            reason: reason.to_owned(),
        }
    }
}

/// A prompt ready to play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playable {
    /// An audio file.
    File(PathBuf),
    /// Text for text-to-speech.
    Say {
        /// The text.
        text: String,
        /// Voice / language.
        voice: Option<String>,
    },
}

/// An interaction-log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// The step it happened in.
    pub step: String,
    /// What: `step`, `prompt`, `digits`, `branch`, `consent`, `recording`,
    /// `record`, `grievance`, `queue`, `transfer`, `fetch`, `custom`,
    /// `error`, `hangup`.
    pub kind: &'static str,
    /// Details (sensitive digits already masked).
    pub fields: Vec<(String, String)>,
}

/// Something the host must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Play prompts in order, then send `PromptFinished`.
    Play {
        /// What to play.
        prompts: Vec<Playable>,
        /// Digits may interrupt.
        barge_in: bool,
    },
    /// Stop the current playback (send `PromptFinished` when stopped is
    /// not needed: the interpreter has moved on).
    StopPlayback,
    /// Record a message from the caller, then send `RecordingFinished`.
    Record {
        /// Longest message.
        max: Duration,
        /// Beep first.
        beep: bool,
        /// Stop after this much silence.
        silence: Duration,
    },
    /// Stop the message being recorded (the caller pressed the end key).
    StopRecord,
    /// The caller answered the consent question.
    Consent {
        /// Yes?
        granted: bool,
    },
    /// Call-recording control.
    Recording(RecordingOp),
    /// Put the caller in a queue, then send `QueueDone`.
    Queue {
        /// Queue name.
        name: String,
        /// Hold music.
        hold: Option<PathBuf>,
        /// Position announcements.
        announce_every: Option<Duration>,
        /// Longest wait.
        max_wait: Duration,
        /// Keys that leave the queue (answer with `QueueDone(Key)`).
        keys: Vec<char>,
        /// Served before callers of lower priority (0 to 9).
        priority: u32,
    },
    /// Transfer the call, then send `TransferDone`.
    Transfer {
        /// Number or SIP URI.
        target: String,
    },
    /// HTTPS request (the host checks the tenant's allow-list), then send
    /// `FetchDone`.
    Fetch {
        /// GET or POST.
        method: Method,
        /// The URL (GET: with the sent variables as query parameters).
        url: String,
        /// POST: JSON body.
        body: Option<serde_json::Value>,
        /// Time limit.
        timeout: Duration,
    },
    /// Open a grievance ticket (DPDP Act §13) of `category`, with the
    /// message the caller just left, if any.
    Grievance {
        /// Its category.
        category: String,
        /// The message's recording id.
        message: Option<String>,
    },
    /// Write to the interaction log.
    Log(LogEvent),
    /// End the call.
    Hangup {
        /// Why.
        reason: String,
    },
}

/// How the flow ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The flow hung up.
    HungUp(String),
    /// The caller hung up.
    CallerHungUp,
    /// An agent answered from a queue.
    Queued(String),
    /// The call was transferred.
    Transferred(String),
    /// The flow failed at run time.
    Error(String),
}

#[derive(Debug)]
enum Wait {
    Running,
    Prompt {
        barge_in: bool,
    },
    Gather(Box<waits::Collect>),
    Timer(Instant),
    Record {
        deadline: Instant,
        end_key: Option<char>,
        into: Option<crate::flow::VarId>,
    },
    Queue(String),
    Transfer(String),
    Fetch {
        deadline: Instant,
    },
    Ended,
}

/// The interpreter of one call.
#[derive(Debug)]
pub struct Interpreter {
    flow: Arc<Flow>,
    ctx: CallContext,
    started: Instant,
    pc: Pc,
    stack: Vec<Pc>,
    vars: Vec<Value>,
    wait: Wait,
    consent: Option<bool>,
    recording: Rec,
    type_ahead: String,
    out: VecDeque<Output>,
    outcome: Option<Outcome>,
    /// The last message recorded (for a `grievance`).
    last_message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rec {
    Off,
    On,
    Paused,
}

impl Interpreter {
    /// Starts a call on `flow` and runs it to its first wait.
    pub fn start(flow: Arc<Flow>, ctx: CallContext, now: Instant) -> Interpreter {
        let vars = vec![Value::default(); flow.vars.len()];
        let mut it = Interpreter {
            flow,
            ctx,
            started: now,
            pc: 0,
            stack: Vec::new(),
            vars,
            wait: Wait::Running,
            consent: None,
            recording: Rec::Off,
            type_ahead: String::new(),
            out: VecDeque::new(),
            outcome: None,
            last_message: None,
        };
        it.run(now);
        it
    }

    /// The flow version this call runs.
    pub fn version(&self) -> &Version {
        &self.flow.version
    }

    /// The flow.
    pub fn flow(&self) -> &Arc<Flow> {
        &self.flow
    }

    /// True while a `sensitive` gather is collecting digits (the host must
    /// not log the keys the caller presses).
    pub fn is_collecting_sensitive(&self) -> bool {
        matches!(self.wait, Wait::Gather(_))
            && matches!(self.flow.instr(self.pc), Some(Instr::Gather(g)) if g.sensitive)
    }

    /// True when the flow has ended.
    pub fn is_ended(&self) -> bool {
        matches!(self.wait, Wait::Ended)
    }

    /// How it ended.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// The current step's name.
    pub fn step_name(&self) -> &str {
        self.flow.step_at(self.pc).map_or("", |s| s.name.as_str())
    }

    /// A variable's current value, by name (for tests and the simulator).
    pub fn var(&self, name: &str) -> Option<&Value> {
        let i = self.flow.vars.iter().position(|v| v.name == name)?;
        self.vars.get(i)
    }

    /// The next action for the host.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// True when outputs are waiting to be polled.
    pub fn poll_output_pending(&self) -> bool {
        !self.out.is_empty()
    }

    /// When to send `Input::Timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.wait {
            Wait::Gather(c) => c.deadline(),
            Wait::Timer(t) => Some(*t),
            Wait::Record { deadline, .. } | Wait::Fetch { deadline } => Some(*deadline),
            _ => None,
        }
    }

    /// Feeds one input.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        if self.is_ended() {
            return;
        }
        // A deadline that passed before this input arrived fires first: a
        // key pressed after the inter-digit timeout belongs to what comes
        // next, whatever order the driver noticed the two in.
        if !matches!(input, Input::Timeout | Input::HangUp)
            && self.poll_timeout().is_some_and(|t| t <= now)
        {
            self.handle_input(now, Input::Timeout);
            if self.is_ended() {
                return;
            }
        }
        if input == Input::HangUp {
            self.log("hangup", vec![("by".into(), "caller".into())]);
            self.finish(Outcome::CallerHungUp);
            return;
        }
        let wait = std::mem::replace(&mut self.wait, Wait::Running);
        match (wait, input) {
            (Wait::Prompt { .. }, Input::PromptFinished) => self.advance(now),
            (Wait::Prompt { barge_in: true }, Input::Digit(d)) => {
                self.out.push_back(Output::StopPlayback);
                self.push_type_ahead(d);
                self.advance(now);
            }
            (w @ Wait::Prompt { barge_in: false }, Input::Digit(d)) => {
                self.log(
                    "digit.ignored",
                    vec![
                        ("reason".into(), "no barge-in".into()),
                        ("key".into(), d.to_string()),
                    ],
                );
                self.wait = w;
            }
            (Wait::Gather(c), input) => self.gather_input(now, c, input),
            (Wait::Timer(t), Input::Timeout) if now >= t => self.advance(now),
            (w @ Wait::Timer(_), Input::Digit(d)) => {
                self.push_type_ahead(d);
                self.wait = w;
            }
            (Wait::Record { into, .. }, Input::RecordingFinished { id, duration }) => {
                if let Some(v) = into
                    && let Some(slot) = self.vars.get_mut(v.0 as usize)
                {
                    *slot = Value::Str(id.clone());
                }
                self.last_message = Some(id.clone());
                self.log(
                    "record",
                    vec![
                        ("id".into(), id),
                        ("duration_ms".into(), duration.as_millis().to_string()),
                    ],
                );
                self.advance(now);
            }
            (
                w @ Wait::Record {
                    end_key: Some(k), ..
                },
                Input::Digit(d),
            ) if d == k => {
                self.out.push_back(Output::StopRecord);
                self.wait = w;
            }
            (Wait::Record { into, .. }, Input::Timeout) => {
                // The host never reported the end: do not wait forever.
                if let Some(v) = into
                    && let Some(slot) = self.vars.get_mut(v.0 as usize)
                {
                    *slot = Value::default();
                }
                self.out.push_back(Output::StopRecord);
                self.log(
                    "error",
                    vec![("message".into(), "recording did not finish in time".into())],
                );
                self.advance(now);
            }
            (Wait::Queue(name), Input::QueueDone(outcome)) => self.queue_done(now, name, outcome),
            (Wait::Transfer(target), Input::TransferDone(r)) => self.transfer_done(now, target, r),
            (Wait::Fetch { .. }, Input::FetchDone(r)) => self.fetch_done(now, r),
            (Wait::Fetch { deadline }, Input::Timeout) if now >= deadline => {
                self.fetch_done(now, Err("timed out".into()))
            }
            (w, Input::Digit(d)) => {
                // Digits while queued, transferring, fetching: typed ahead.
                self.push_type_ahead(d);
                self.wait = w;
            }
            (w, _) => {
                // Stale or early input (e.g. a Timeout before its deadline).
                self.wait = w;
            }
        }
    }

    fn push_type_ahead(&mut self, d: char) {
        if self.type_ahead.len() < MAX_TYPE_AHEAD {
            self.type_ahead.push(d);
        }
    }

    /// Moves past the current (waiting) instruction and runs on.
    fn advance(&mut self, now: Instant) {
        self.pc += 1;
        self.run(now);
    }

    fn goto(&mut self, now: Instant, step: StepId) {
        match self.flow.steps.get(step.0 as usize) {
            Some(s) => {
                self.pc = s.entry;
                self.stack.clear();
                self.run(now);
            }
            None => self.fail("branch to a missing step"),
        }
    }

    pub(crate) fn log(&mut self, kind: &'static str, fields: Vec<(String, String)>) {
        let step = self.step_name().to_owned();
        self.out
            .push_back(Output::Log(LogEvent { step, kind, fields }));
    }

    fn finish(&mut self, outcome: Outcome) {
        if self.recording != Rec::Off {
            self.recording = Rec::Off;
        }
        self.outcome = Some(outcome);
        self.wait = Wait::Ended;
    }

    fn fail(&mut self, message: &str) {
        let step = self.step_name().to_owned();
        let at = self.flow.spans.get(self.pc as usize).copied();
        let mut fields = vec![
            ("message".into(), message.to_owned()),
            ("step".into(), step.clone()),
        ];
        if let Some(at) = at {
            fields.push(("offset".into(), at.start.to_string()));
        }
        self.log("error", fields);
        self.out.push_back(Output::Hangup {
            reason: "flow error".into(),
        });
        self.finish(Outcome::Error(format!("{message} (in step `{step}`)")));
    }

    fn prompts(&self, prompts: &[Prompt], now: Instant) -> Vec<Playable> {
        prompts
            .iter()
            .map(|p| match p {
                Prompt::File(f) => Playable::File(f.clone()),
                Prompt::Say(t) => Playable::Say {
                    text: self.render(t, now, false),
                    voice: self.flow.voice.clone(),
                },
            })
            .collect()
    }

    pub(crate) fn play(&mut self, prompts: &[Prompt], barge_in: bool, now: Instant) {
        let prompts = self.prompts(prompts, now);
        for p in &prompts {
            let (k, v) = match p {
                Playable::File(f) => ("file", f.display().to_string()),
                Playable::Say { text, .. } => ("say", text.clone()),
            };
            self.log("prompt", vec![(k.into(), v)]);
        }
        self.out.push_back(Output::Play { prompts, barge_in });
    }

    /// Runs instructions until the flow waits or ends.
    fn run(&mut self, now: Instant) {
        let flow = Arc::clone(&self.flow);
        let mut budget = STEP_BUDGET;
        loop {
            if budget == 0 {
                self.fail(&format!(
                    "ran {STEP_BUDGET} instructions without waiting for the caller (a loop?)"
                ));
                return;
            }
            budget -= 1;
            let Some(instr) = flow.instr(self.pc) else {
                self.fail("ran past the end of the flow");
                return;
            };
            match instr {
                Instr::Enter(s) => {
                    let name = flow
                        .steps
                        .get(s.0 as usize)
                        .map(|s| s.name.clone())
                        .unwrap_or_default();
                    self.log("step", vec![("name".into(), name)]);
                    self.pc += 1;
                }
                Instr::Play { prompts, barge_in } => {
                    if *barge_in && !self.type_ahead.is_empty() {
                        // The caller already pressed a key: skip the prompt.
                        self.pc += 1;
                        continue;
                    }
                    self.play(prompts, *barge_in, now);
                    self.wait = Wait::Prompt {
                        barge_in: *barge_in,
                    };
                    return;
                }
                Instr::Gather(g) => {
                    self.start_gather(now, waits::Collect::gather(g));
                    return;
                }
                Instr::Consent(c) => {
                    self.start_gather(now, waits::Collect::consent(c));
                    return;
                }
                Instr::Goto(s) => {
                    let Some(step) = flow.steps.get(s.0 as usize) else {
                        self.fail("goto to a missing step");
                        return;
                    };
                    self.pc = step.entry;
                    self.stack.clear();
                }
                Instr::Jump(t) => self.pc = *t,
                Instr::JumpUnless(cond, t) => match self.eval(cond, now) {
                    Ok(v) => {
                        if v.truthy() {
                            self.pc += 1;
                        } else {
                            self.pc = *t;
                        }
                    }
                    Err(e) => {
                        self.fail(&e.to_string());
                        return;
                    }
                },
                Instr::Call(s) => {
                    if self.stack.len() >= MAX_CALL_DEPTH {
                        self.fail("blocks call each other too deeply");
                        return;
                    }
                    let Some(step) = flow.steps.get(s.0 as usize) else {
                        self.fail("call to a missing block");
                        return;
                    };
                    self.stack.push(self.pc + 1);
                    self.pc = step.entry;
                }
                Instr::Return => match self.stack.pop() {
                    Some(pc) => self.pc = pc,
                    None => {
                        self.fail("`return` with no block to return from");
                        return;
                    }
                },
                Instr::Set(v, e) => match self.eval(e, now) {
                    Ok(x) => {
                        if let Some(slot) = self.vars.get_mut(v.0 as usize) {
                            *slot = x;
                        }
                        self.pc += 1;
                    }
                    Err(err) => {
                        self.fail(&err.to_string());
                        return;
                    }
                },
                Instr::Wait(d) => {
                    self.wait = Wait::Timer(now + *d);
                    return;
                }
                Instr::Hangup(reason) => {
                    let reason = reason
                        .as_ref()
                        .map_or_else(|| "completed".to_owned(), |t| self.render(t, now, true));
                    self.log(
                        "hangup",
                        vec![
                            ("by".into(), "flow".into()),
                            ("reason".into(), reason.clone()),
                        ],
                    );
                    self.out.push_back(Output::Hangup {
                        reason: reason.clone(),
                    });
                    self.finish(Outcome::HungUp(reason));
                    return;
                }
                Instr::Record(r) => {
                    self.out.push_back(Output::Record {
                        max: r.max,
                        beep: r.beep,
                        silence: r.silence,
                    });
                    self.wait = Wait::Record {
                        deadline: now + r.max + Duration::from_secs(10),
                        end_key: r.end_key,
                        into: r.into,
                    };
                    return;
                }
                Instr::Recording(op) => {
                    self.recording_op(*op);
                    self.pc += 1;
                }
                Instr::Grievance(category) => {
                    let message = self.last_message.take();
                    self.log(
                        "grievance",
                        vec![
                            ("category".into(), category.clone()),
                            ("message".into(), message.clone().unwrap_or_default()),
                        ],
                    );
                    self.out.push_back(Output::Grievance {
                        category: category.clone(),
                        message,
                    });
                    self.pc += 1;
                }
                Instr::Queue(q) => {
                    self.log(
                        "queue",
                        vec![
                            ("name".into(), q.name.clone()),
                            ("event".into(), "joined".into()),
                        ],
                    );
                    self.out.push_back(Output::Queue {
                        name: q.name.clone(),
                        hold: q.hold.clone(),
                        announce_every: q.announce_every,
                        max_wait: q.max_wait,
                        keys: q.keys.iter().map(|(k, _)| *k).collect(),
                        priority: q.priority,
                    });
                    self.wait = Wait::Queue(q.name.clone());
                    return;
                }
                Instr::Transfer { target, .. } => {
                    let target = self.render(target, now, false);
                    self.log(
                        "transfer",
                        vec![
                            ("target".into(), target.clone()),
                            ("event".into(), "started".into()),
                        ],
                    );
                    self.out.push_back(Output::Transfer {
                        target: target.clone(),
                    });
                    self.wait = Wait::Transfer(target);
                    return;
                }
                Instr::Log { event, fields } => {
                    let mut f = vec![("event".into(), self.render(event, now, true))];
                    for (k, e) in fields {
                        let v = match self.eval(e, now) {
                            Ok(v) => v.to_string(),
                            Err(err) => format!("<{err}>"),
                        };
                        let v = if self.reads_sensitive(e) { mask(&v) } else { v };
                        f.push((k.clone(), v));
                    }
                    self.log("custom", f);
                    self.pc += 1;
                }
                Instr::Fetch(f) => {
                    self.start_fetch(now, f);
                    return;
                }
                Instr::FellOff => {
                    self.fail("the step ended without `goto` or `hangup`");
                    return;
                }
            }
        }
    }

    fn recording_op(&mut self, op: RecordingOp) {
        let next = match (op, self.recording) {
            (RecordingOp::Start, Rec::Off) => {
                if self.consent != Some(true) {
                    self.log(
                        "recording",
                        vec![
                            ("event".into(), "refused".into()),
                            ("reason".into(), "no consent".into()),
                        ],
                    );
                    return;
                }
                Rec::On
            }
            (RecordingOp::Stop, Rec::On | Rec::Paused) => Rec::Off,
            (RecordingOp::Pause, Rec::On) => Rec::Paused,
            (RecordingOp::Resume, Rec::Paused) => Rec::On,
            _ => return, // already in that state
        };
        self.recording = next;
        self.log("recording", vec![("event".into(), op.event().into())]);
        self.out.push_back(Output::Recording(op));
    }
}

#[cfg(test)]
mod tests;
