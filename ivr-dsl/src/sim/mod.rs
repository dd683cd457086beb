//! The simulator: runs a flow with a simulated caller and host on
//! simulated time, and writes down a transcript of what happened.
//!
//! Prompts take a nominal time to play (400 ms a word for `say`, 2 s for a
//! file); every other wait is the flow's own timeouts. Host services are
//! stubbed: each `fetch`, `queue`, `transfer` and `record` takes the next
//! stubbed outcome, or a default (fetch fails, queue is unavailable,
//! transfer connects, a message lasts 5 s).

/// Flow tests (`.ivrtest`).
pub mod script;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::allow::AllowList;
use crate::flow::Flow;
use crate::interp::{
    CallContext, Input, Interpreter, Output, Playable, QueueOutcome, ServiceFailure,
};

/// One line of a transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Kind: `step`, `hear`, `play`, `press`, `digits`, `branch`, `log`,
    /// `consent`, `recording`, `record`, `queue`, `transfer`, `fetch`,
    /// `error`, `hangup`, `wait`.
    pub kind: &'static str,
    /// The rest of the line.
    pub text: String,
    /// Simulated time since the call began.
    pub at: Duration,
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.at.as_millis();
        write!(
            f,
            "[{:>3}.{:03}s] {} {}",
            ms / 1000,
            ms % 1000,
            self.kind,
            self.text
        )
    }
}

/// A stubbed host reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Stub {
    /// The next `fetch` gets this JSON.
    FetchReply(serde_json::Value),
    /// The next `fetch` fails.
    FetchFail(String),
    /// The next `queue` ends so.
    Queue(QueueOutcome),
    /// The next `transfer` connects (Ok) or fails.
    Transfer(Result<(), ServiceFailure>),
    /// The next `record`ed message lasts this long.
    Record(Duration),
}

/// A call on simulated time.
pub struct Simulator {
    interp: Interpreter,
    base: Instant,
    now: Instant,
    playing_until: Option<Instant>,
    pending: VecDeque<(Instant, Input)>,
    stubs: Vec<Stub>,
    records: u32,
    flow_dir: PathBuf,
    allow: Option<AllowList>,
    /// What happened so far.
    pub transcript: Vec<Entry>,
}

/// Nominal time to play a prompt.
pub fn nominal_duration(p: &Playable) -> Duration {
    match p {
        Playable::File(_) => Duration::from_secs(2),
        Playable::Say { text, .. } => {
            let words = u64::try_from(text.split_whitespace().count()).unwrap_or(u64::MAX);
            Duration::from_millis(words.saturating_mul(400).max(500))
        }
    }
}

impl Simulator {
    /// Starts a call. `flow_dir` shortens file names in the transcript.
    /// With an allow-list, a `fetch` to any other host fails as it would in
    /// the server.
    pub fn start(
        flow: Arc<Flow>,
        ctx: CallContext,
        stubs: Vec<Stub>,
        flow_dir: &Path,
        allow: Option<AllowList>,
    ) -> Simulator {
        let base = Instant::now();
        let interp = Interpreter::start(flow, ctx, base);
        let mut s = Simulator {
            interp,
            base,
            now: base,
            playing_until: None,
            pending: VecDeque::new(),
            stubs,
            records: 0,
            flow_dir: flow_dir.to_path_buf(),
            allow,
            transcript: Vec::new(),
        };
        s.drain();
        s
    }

    /// The interpreter (for variables and outcome).
    pub fn interpreter(&self) -> &Interpreter {
        &self.interp
    }

    /// Simulated time since the call began.
    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// True while a prompt is playing.
    pub fn is_playing(&self) -> bool {
        self.playing_until.is_some()
    }

    fn note(&mut self, kind: &'static str, text: impl Into<String>) {
        let at = self.elapsed();
        self.transcript.push(Entry {
            kind,
            text: text.into(),
            at,
        });
    }

    fn feed(&mut self, input: Input) {
        self.interp.handle_input(self.now, input);
        self.drain();
    }

    fn take_stub(&mut self, pick: impl Fn(&Stub) -> bool) -> Option<Stub> {
        let i = self.stubs.iter().position(pick)?;
        Some(self.stubs.remove(i))
    }

    fn drain(&mut self) {
        loop {
            while let Some(o) = self.interp.poll_output() {
                self.output(o);
            }
            let Some((at, input)) = self.pending.pop_front() else {
                return;
            };
            self.now = self.now.max(at);
            self.interp.handle_input(self.now, input);
        }
    }

    fn output(&mut self, o: Output) {
        match o {
            Output::Play { prompts, .. } => {
                let mut total = Duration::ZERO;
                for p in &prompts {
                    total += nominal_duration(p);
                    match p {
                        Playable::File(f) => {
                            let shown = f
                                .strip_prefix(&self.flow_dir)
                                .unwrap_or(f)
                                .display()
                                .to_string();
                            self.note("play", shown);
                        }
                        Playable::Say { text, .. } => self.note("hear", format!("\"{text}\"")),
                    }
                }
                self.playing_until = Some(self.now + total);
            }
            Output::StopPlayback => self.playing_until = None,
            Output::Record { max, .. } => {
                let len = match self.take_stub(|s| matches!(s, Stub::Record(_))) {
                    Some(Stub::Record(d)) => d,
                    _ => Duration::from_secs(5),
                }
                .min(max);
                self.records += 1;
                let id = format!("rec-{}", self.records);
                self.note("record", format!("{id} {}s", len.as_secs()));
                self.pending.push_back((
                    self.now + len,
                    Input::RecordingFinished { id, duration: len },
                ));
            }
            Output::StopRecord => {}
            Output::Consent { granted } => self.note("consent", if granted { "yes" } else { "no" }),
            Output::Grievance { category, .. } => self.note("grievance", category),
            Output::Recording(op) => self.note("recording", format!("{op:?}").to_lowercase()),
            Output::Queue { name, .. } => {
                let outcome = match self.take_stub(|s| matches!(s, Stub::Queue(_))) {
                    Some(Stub::Queue(q)) => q,
                    _ => QueueOutcome::Unavailable,
                };
                self.note(
                    "queue",
                    format!("\"{name}\" {}", format!("{outcome:?}").to_lowercase()),
                );
                self.pending
                    .push_back((self.now, Input::QueueDone(outcome)));
            }
            Output::Transfer { target } => {
                let r = match self.take_stub(|s| matches!(s, Stub::Transfer(_))) {
                    Some(Stub::Transfer(r)) => r,
                    _ => Ok(()),
                };
                let shown = match &r {
                    Ok(()) => "connected".to_owned(),
                    Err(e) => format!("failed: {e}"),
                };
                self.note("transfer", format!("\"{target}\" {shown}"));
                self.pending.push_back((self.now, Input::TransferDone(r)));
            }
            Output::Fetch {
                method, url, body, ..
            } => {
                let denied = self.allow.as_ref().and_then(|a| a.check(&url).err());
                let r = match denied {
                    Some(e) => Err(e.to_string()),
                    None => match self
                        .take_stub(|s| matches!(s, Stub::FetchReply(_) | Stub::FetchFail(_)))
                    {
                        Some(Stub::FetchReply(v)) => Ok(v),
                        Some(Stub::FetchFail(e)) => Err(e),
                        _ => Err("no reply stubbed in the test".to_owned()),
                    },
                };
                let method = match method {
                    crate::ast::Method::Get => "GET",
                    crate::ast::Method::Post => "POST",
                };
                let body = body.map(|b| format!(" {b}")).unwrap_or_default();
                let result = match &r {
                    Ok(_) => String::new(),
                    Err(e) => format!(" -> failed: {e}"),
                };
                self.note("fetch", format!("{method} {url}{body}{result}"));
                self.pending.push_back((
                    self.now + Duration::from_millis(100),
                    Input::FetchDone(r.map_err(ServiceFailure::from)),
                ));
            }
            Output::Log(ev) => {
                let fields = ev
                    .fields
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                match ev.kind {
                    "step" => {
                        let name = ev
                            .fields
                            .first()
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default();
                        self.note("step", name);
                    }
                    "digits" => self.note("digits", fields),
                    "branch" => self.note("branch", fields),
                    "custom" => self.note("log", fields.trim_start_matches("event=").to_owned()),
                    "error" => self.note("error", fields),
                    "digit.ignored" => self.note("ignored", fields),
                    // Already noted from the action itself.
                    _ => {}
                }
            }
            Output::Hangup { reason } => {
                self.playing_until = None;
                self.note("hangup", format!("\"{reason}\""));
            }
        }
    }

    /// Lets time pass until `target`, delivering prompt ends and timeouts.
    pub fn advance_to(&mut self, target: Instant) {
        loop {
            if self.interp.is_ended() {
                break;
            }
            let prompt = self.playing_until;
            let timer = self.interp.poll_timeout();
            let next = match (prompt, timer) {
                (Some(p), Some(t)) => p.min(t),
                (Some(p), None) => p,
                (None, Some(t)) => t,
                (None, None) => break,
            };
            if next > target {
                break;
            }
            self.now = self.now.max(next);
            if prompt == Some(next) {
                self.playing_until = None;
                self.feed(Input::PromptFinished);
            } else {
                self.feed(Input::Timeout);
            }
        }
        self.now = self.now.max(target);
    }

    /// Lets the current prompt play to its end (and any prompts that follow
    /// it without waiting for the caller).
    pub fn listen(&mut self) {
        let mut rounds = 0;
        while let Some(end) = self.playing_until {
            self.advance_to(end);
            rounds += 1;
            if rounds > 1000 {
                break;
            }
        }
    }

    /// The caller presses keys after the prompt ends.
    pub fn press(&mut self, keys: &str) {
        self.listen();
        self.barge(keys);
    }

    /// The caller presses keys now, even over a prompt.
    pub fn barge(&mut self, keys: &str) {
        for k in keys.chars() {
            self.note("press", k.to_string());
            self.feed(Input::Digit(k));
            let t = self.now + Duration::from_millis(200);
            self.advance_to(t);
        }
    }

    /// The caller listens to the end of the prompt, then stays silent for
    /// `d`.
    pub fn wait(&mut self, d: Duration) {
        self.listen();
        self.note("wait", crate::compile::fmt_duration(d));
        let t = self.now + d;
        self.advance_to(t);
    }

    /// The caller hangs up.
    pub fn hang_up(&mut self) {
        self.note("caller-hangup", "");
        self.feed(Input::HangUp);
    }
}
