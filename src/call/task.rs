//! The task of one answered call: it runs the tenant's flow (the sans-IO
//! [`Interpreter`]) against the call's media (the sans-IO
//! [`CallMedia`]), and writes the call's timeline and CDR.
//!
//! ```text
//!   RTP in ──► CallMedia ──digits, prompt done──► Interpreter ──play, record, hangup──┐
//!   20 ms tick ─┘   ▲                                                                  │
//!                   └────────────── PCM prompts (cache, espeak-ng) ◄───────────────────┘
//!   SIP (INFO digits, hold, BYE) ──► CallEvent ──► both
//! ```
//!
//! The interpreter runs on a clock that stops while the caller holds the
//! call (re-INVITE sendonly/inactive): timeouts do not run out and prompts
//! wait, to go on when the caller returns.
//!
//! Queues and transfers need the agents issue: the flow gets "unavailable"
//! (its overflow or failure path runs) and the timeline says why. `fetch`
//! is checked against the tenant's allow-list and then answered "not
//! available on this server yet".

use std::net::UdpSocket as StdUdpSocket;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ivr_dsl::ast::RecordingOp;
use ivr_dsl::interp::{
    CallContext, Input, Interpreter, Outcome, Output as Step, Playable, QueueOutcome,
};
use media::call::{CallMedia, Command, Config, Event, Output};
use media::codec::Codec;
use recordings::file::FileRecorder;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::privacy::keys::TenantKey;
use crate::store::writer::{LogSender, Record};
use crate::store::{CallRecord, Event as LogEvent};
use crate::tenants::Registry;
use crate::ua::{CallId, CallInfo, CallSetup, Party};

/// What the SIP side tells a call.
#[derive(Debug, Clone)]
pub enum CallEvent {
    /// The ACK came: the call's media may send.
    Confirmed,
    /// A digit from SIP INFO.
    InfoDigit(char),
    /// The media direction changed (hold/unhold).
    Direction {
        /// We may send.
        send: bool,
        /// The caller sends.
        receive: bool,
    },
    /// The call is over (the caller hung up, or we sent BYE).
    Ended {
        /// Who.
        by: Party,
        /// Why.
        cause: String,
    },
}

/// A call asks the SIP side to hang up.
#[derive(Debug)]
pub struct HangupRequest {
    /// The call.
    pub id: CallId,
    /// Who decided.
    pub by: Party,
    /// Why.
    pub reason: String,
}

/// What every call shares.
pub struct Shared {
    /// No RTP for this long ends the call.
    pub media_timeout: Duration,
    /// Run the in-band DTMF detector.
    pub inband_dtmf: bool,
    /// No call lasts longer.
    pub max_duration: Duration,
    /// Decoded prompt files.
    pub prompts: Mutex<media::prompt::Cache>,
    /// Synthesised speech.
    pub tts: Option<Mutex<media::tts::Cache>>,
    /// The interaction log.
    pub log: LogSender,
    /// Tenants (for fetch allow-lists).
    pub registry: Arc<Registry>,
    /// Tenants' recording keys, by tenant index (reloaded on SIGHUP after
    /// a key rotation).
    pub keys: std::sync::RwLock<Vec<Option<TenantKey>>>,
    /// Where recordings go.
    pub recordings_dir: PathBuf,
    /// How often recordings are synced to disk.
    pub recording_sync: Duration,
    /// The beep before a message.
    pub beep: Arc<[i16]>,
    /// The store (the consent-withdrawal registry).
    pub store: crate::store::Store,
    /// Test hook (`DHWANI_TEST_PANIC_DIGIT`): a call task panics when the
    /// caller presses this key, so the tests can show that one call's
    /// failure ends that call only. Unset in production.
    pub panic_digit: Option<char>,
}

impl Shared {
    /// A tenant's current recording key.
    pub fn key(&self, tenant: usize) -> Option<TenantKey> {
        self.keys.read().ok()?.get(tenant).cloned().flatten()
    }
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The CDR row of a call (also written at start, without the end).
pub fn call_record(info: &CallInfo) -> CallRecord {
    CallRecord {
        call_id: info.record_id.clone(),
        sip_call_id: info.sip_call_id.clone(),
        tenant: info.admitted.tenant_id.to_string(),
        flow: info.admitted.flow.name.clone(),
        flow_version: info.admitted.flow.version.to_string(),
        caller: info.admitted.caller.clone(),
        called: info.admitted.called.clone(),
        start_ms: ms(info.invited_at),
        answer_ms: info.answered_at.map(ms),
        end_ms: None,
        duration_ms: None,
        hangup_by: None,
        hangup_cause: None,
        outcome: None,
        recording_id: None,
    }
}

/// Writes the CDR of a call that never reached its task (refused after
/// admission, cancelled, never answered).
pub fn write_unanswered(log: &LogSender, info: &CallInfo, by: Party, cause: &str) {
    let mut r = call_record(info);
    let end = SystemTime::now();
    r.end_ms = Some(ms(end));
    r.duration_ms = Some(0);
    r.hangup_by = Some(by.name().into());
    r.hangup_cause = Some(cause.into());
    r.outcome = Some("not answered".into());
    log.send(Record::Call(r));
}

fn outcome_text(o: Option<&Outcome>) -> String {
    match o {
        Some(Outcome::HungUp(r)) => format!("hangup: {r}"),
        Some(Outcome::CallerHungUp) => "caller hung up".into(),
        Some(Outcome::Queued(q)) => format!("queued: {q}"),
        Some(Outcome::Transferred(t)) => format!("transferred: {t}"),
        Some(Outcome::Error(e)) => format!("error: {e}"),
        None => "unfinished".into(),
    }
}

/// Prompts being decoded or synthesised off the call's task.
type PlayJob = tokio::task::JoinHandle<Result<Vec<Arc<[i16]>>, String>>;

/// Waits for the play job, if any (never completes without one).
async fn play_done(
    job: &mut Option<PlayJob>,
) -> Result<Result<Vec<Arc<[i16]>>, String>, tokio::task::JoinError> {
    match job.as_mut() {
        Some(j) => j.await,
        None => std::future::pending().await,
    }
}

/// A message (`record`) or the call recording in progress.
struct Recording {
    id: String,
    file: FileRecorder,
    paused: bool,
    /// Message only: ends at this time.
    deadline: Option<Instant>,
    /// Message only: silence that ends it, and how long it has been quiet.
    silence: Option<(Duration, Duration)>,
    frames: u64,
}

struct Call {
    id: CallId,
    info: CallInfo,
    shared: Arc<Shared>,
    interp: Interpreter,
    core: CallMedia,
    rate: u32,
    seq: i64,
    started_wall: SystemTime,
    started: Instant,
    /// Time spent on hold so far, and since when the current hold runs.
    held_total: Duration,
    held_since: Option<Instant>,
    play_job: Option<PlayJob>,
    play_barge_in: bool,
    message: Option<Recording>,
    call_rec: Option<Recording>,
    recording_ids: Vec<String>,
    hangup_sent: bool,
    hangup: mpsc::Sender<HangupRequest>,
    messages: u32,
    /// The caller withdrew recording consent (registry checked at start).
    consent_withdrawn: bool,
    /// Interleaving buffer of the call recording.
    scratch: Vec<i16>,
}

impl Call {
    /// The interpreter's clock: real time minus time on hold.
    fn flow_now(&self, now: Instant) -> Instant {
        let held = self.held_total
            + self
                .held_since
                .map_or(Duration::ZERO, |h| now.saturating_duration_since(h));
        now.checked_sub(held).unwrap_or(now)
    }

    fn log(&mut self, step: &str, kind: &str, detail: serde_json::Value) {
        let now = SystemTime::now();
        let e = LogEvent {
            call_id: self.info.record_id.clone(),
            seq: self.seq,
            at_ms: ms(now),
            offset_ms: now
                .duration_since(self.started_wall)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            step: step.to_owned(),
            kind: kind.to_owned(),
            detail: detail.to_string(),
        };
        self.seq += 1;
        self.shared.log.send(Record::Event(e));
    }

    fn input(&mut self, now: Instant, input: Input) {
        let t = self.flow_now(now);
        self.interp.handle_input(t, input);
    }

    async fn request_hangup(&mut self, by: Party, reason: String) {
        if !self.hangup_sent {
            self.hangup_sent = true;
            let _ = self
                .hangup
                .send(HangupRequest {
                    id: self.id,
                    by,
                    reason,
                })
                .await;
        }
    }

    /// Carries out what the flow asked for.
    async fn run_steps(&mut self, now: Instant) {
        while let Some(step) = self.interp.poll_output() {
            let at = self.interp.step_name().to_owned();
            match step {
                Step::Play { prompts, barge_in } => self.start_play(prompts, barge_in),
                Step::StopPlayback => {
                    if let Some(j) = self.play_job.take() {
                        j.abort();
                    }
                    self.core.handle_command(now, Command::Stop);
                }
                Step::Log(ev) => {
                    let mut m = serde_json::Map::new();
                    for (k, v) in ev.fields {
                        m.insert(k, serde_json::Value::String(v));
                    }
                    self.log(&ev.step, ev.kind, serde_json::Value::Object(m));
                }
                Step::Record { max, beep, silence } => {
                    self.messages += 1;
                    let id = format!("{}-m{}", self.info.record_id, self.messages);
                    let opened = if self.consent_withdrawn {
                        // The caller's voice is not kept, message or not.
                        Err("the caller withdrew consent (privacy registry)".to_owned())
                    } else {
                        self.open_recording(&id, false, now)
                    };
                    match opened {
                        Ok(file) => {
                            if beep {
                                self.core.handle_command(
                                    now,
                                    Command::Play {
                                        prompts: vec![Arc::clone(&self.shared.beep)],
                                        barge_in: false,
                                    },
                                );
                            }
                            self.core.handle_command(now, Command::Tap(true));
                            self.message = Some(Recording {
                                id,
                                file,
                                paused: false,
                                deadline: Some(now + max),
                                silence: (!silence.is_zero()).then_some((silence, Duration::ZERO)),
                                frames: 0,
                            });
                        }
                        Err(e) => {
                            self.log(&at, "error", serde_json::json!({"record": e}));
                            self.input(
                                now,
                                Input::RecordingFinished {
                                    id: String::new(),
                                    duration: Duration::ZERO,
                                },
                            );
                        }
                    }
                }
                Step::StopRecord => self.finish_message(now),
                Step::Consent { .. } => {
                    // The interpreter logs the answer itself; nothing else
                    // to do until a `recording start`.
                }
                Step::Recording(op) => self.call_recording(now, op, &at),
                Step::Queue { name, .. } => {
                    self.log(
                        &at,
                        "queue",
                        serde_json::json!({"name": name, "event": "not yet available", "why": "agents and queues are not available on this server yet"}),
                    );
                    self.input(now, Input::QueueDone(QueueOutcome::Unavailable));
                }
                Step::Transfer { .. } => {
                    self.input(
                        now,
                        Input::TransferDone(Err(
                            "transfers are not available on this server yet".into()
                        )),
                    );
                }
                Step::Fetch { url, .. } => {
                    let allowed = self
                        .shared
                        .registry
                        .tenant(self.info.admitted.tenant)
                        .map(|t| t.allow.check(&url));
                    let why = match allowed {
                        Some(Ok(())) => "fetch is not available on this server yet".to_owned(),
                        Some(Err(e)) => e.to_string(),
                        None => "unknown tenant".to_owned(),
                    };
                    self.input(now, Input::FetchDone(Err(why)));
                }
                Step::Hangup { reason } => {
                    self.request_hangup(Party::Dhwani, format!("flow: {reason}"))
                        .await;
                }
            }
        }
    }

    fn start_play(&mut self, prompts: Vec<Playable>, barge_in: bool) {
        if let Some(j) = self.play_job.take() {
            j.abort();
        }
        let shared = Arc::clone(&self.shared);
        let rate = self.rate;
        self.play_barge_in = barge_in;
        self.play_job = Some(tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for p in prompts {
                match p {
                    Playable::File(path) => {
                        let mut cache = shared
                            .prompts
                            .lock()
                            .map_err(|_| "prompt cache poisoned".to_owned())?;
                        out.push(cache.get(&path, rate).map_err(|e| e.to_string())?);
                    }
                    Playable::Say { text, voice } => {
                        let tts = shared.tts.as_ref().ok_or_else(|| {
                            "no text-to-speech engine (install espeak-ng)".to_owned()
                        })?;
                        let mut cache =
                            tts.lock().map_err(|_| "speech cache poisoned".to_owned())?;
                        out.push(
                            cache
                                .get(&text, voice.as_deref(), rate)
                                .map_err(|e| e.to_string())?,
                        );
                    }
                }
            }
            Ok(out)
        }));
    }

    fn open_recording(
        &mut self,
        id: &str,
        stereo: bool,
        now: Instant,
    ) -> Result<FileRecorder, String> {
        let tenant = self.info.admitted.tenant_id.to_string();
        let key = self
            .shared
            .key(self.info.admitted.tenant)
            .ok_or_else(|| format!("tenant `{tenant}` has no recording key"))?;
        let path = self
            .shared
            .recordings_dir
            .join(&tenant)
            .join(format!("{id}.{}", crate::privacy::layout::EXTENSION));
        crate::privacy::keys::create_recording(
            &path,
            &tenant,
            &key,
            &self.info.record_id,
            (self.rate, if stereo { 2 } else { 1 }),
            self.shared.recording_sync,
            now,
        )
    }

    fn finish_message(&mut self, now: Instant) {
        let Some(m) = self.message.take() else {
            return;
        };
        if self.call_rec.is_none() {
            self.core.handle_command(now, Command::Tap(false));
        }
        let duration = Duration::from_millis(m.frames * 20);
        let id = m.id.clone();
        if let Err(e) = m.file.finish() {
            tracing::error!(call_id = %self.info.sip_call_id, recording = %id, error = %e, "message recording failed");
        }
        self.recording_ids.push(id.clone());
        self.input(now, Input::RecordingFinished { id, duration });
    }

    fn call_recording(&mut self, now: Instant, op: RecordingOp, step: &str) {
        match op {
            RecordingOp::Start if self.consent_withdrawn => {
                self.log(
                    step,
                    "recording",
                    serde_json::json!({"event": "refused", "reason": "the caller withdrew consent (privacy registry)"}),
                );
            }
            RecordingOp::Start if self.call_rec.is_none() => {
                let id = format!("{}-call", self.info.record_id);
                match self.open_recording(&id, true, now) {
                    Ok(file) => {
                        self.core.handle_command(now, Command::Tap(true));
                        self.log(
                            step,
                            "recording",
                            serde_json::json!({"event": "writing", "id": id}),
                        );
                        self.recording_ids.insert(0, id.clone());
                        self.call_rec = Some(Recording {
                            id,
                            file,
                            paused: false,
                            deadline: None,
                            silence: None,
                            frames: 0,
                        });
                    }
                    Err(e) => {
                        tracing::error!(call_id = %self.info.sip_call_id, error = %e, "cannot start the call recording; the call goes on unrecorded");
                        self.log(
                            step,
                            "error",
                            serde_json::json!({"recording": format!("failed: {e}")}),
                        );
                    }
                }
            }
            RecordingOp::Stop => self.stop_call_recording(now),
            // The interpreter logs these itself.
            RecordingOp::Pause | RecordingOp::Resume => {
                if let Some(r) = self.call_rec.as_mut() {
                    r.paused = op == RecordingOp::Pause;
                }
            }
            RecordingOp::Start => {}
        }
    }

    fn stop_call_recording(&mut self, now: Instant) {
        if let Some(r) = self.call_rec.take() {
            let seconds = r.frames as f64 * 0.02;
            self.log(
                "",
                "recording",
                serde_json::json!({"event": "saved", "id": r.id, "seconds": seconds}),
            );
            if self.message.is_none() {
                self.core.handle_command(now, Command::Tap(false));
            }
            if let Err(e) = r.file.finish() {
                tracing::error!(call_id = %self.info.sip_call_id, recording = %r.id, error = %e, "call recording failed");
            }
        }
    }

    /// 20 ms of audio each way for the recorders.
    fn tap(&mut self, now: Instant, caller: &[i16], far: &[i16]) {
        let mut failed = None;
        if let Some(r) = self.call_rec.as_mut()
            && !r.paused
        {
            // Caller left, far end right, in a buffer kept across frames.
            let inter = &mut self.scratch;
            inter.clear();
            inter.extend(caller.iter().zip(far).flat_map(|(a, b)| [*a, *b]));
            r.frames += 1;
            if let Err(e) = r.file.write(now, inter) {
                failed = Some(("call", r.id.clone(), e.to_string()));
            }
        }
        if let Some((what, id, e)) = failed.take() {
            // Full disk and the like: the call goes on, the recording is
            // marked failed in the timeline and the log.
            tracing::error!(call_id = %self.info.sip_call_id, recording = %id, error = %e, "recording failed; the call goes on");
            self.log(
                "",
                "error",
                serde_json::json!({"recording": id, "failed": e, "what": what}),
            );
            self.call_rec = None;
        }
        let mut done = false;
        if let Some(m) = self.message.as_mut() {
            m.frames += 1;
            if let Err(e) = m.file.write(now, caller) {
                tracing::error!(call_id = %self.info.sip_call_id, recording = %m.id, error = %e, "message recording failed");
                done = true;
            }
            if let Some((limit, quiet)) = m.silence.as_mut() {
                let energy = caller.iter().map(|s| i64::from(*s).abs()).sum::<i64>()
                    / caller.len().max(1) as i64;
                if energy < 300 {
                    *quiet += Duration::from_millis(20);
                } else {
                    *quiet = Duration::ZERO;
                }
                // Silence only counts after the caller has said something
                // or a second has passed.
                if *quiet >= *limit && m.frames > 50 {
                    done = true;
                }
            }
            if m.deadline.is_some_and(|d| now >= d) {
                done = true;
            }
        }
        if done {
            self.finish_message(now);
        }
    }
}

fn clock_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs one answered call to its end.
pub async fn run(
    setup: CallSetup,
    shared: Arc<Shared>,
    mut events: mpsc::Receiver<CallEvent>,
    hangup: mpsc::Sender<HangupRequest>,
) {
    let id = setup.id;
    let info = setup.info.clone();
    let sip_call_id = setup.sip_call_id.clone();
    let Some(codec) = Codec::named(&setup.negotiated.codec.encoding) else {
        tracing::warn!(call_id = sip_call_id, codec = %setup.negotiated.codec.encoding, "no media engine for this codec");
        let _ = hangup
            .send(HangupRequest {
                id,
                by: Party::System,
                reason: "unsupported codec".into(),
            })
            .await;
        return;
    };
    let to_tokio = |s: StdUdpSocket| s.set_nonblocking(true).and_then(|_| UdpSocket::from_std(s));
    let (Ok(sock), Ok(rtcp_sock)) = (to_tokio(setup.socket), to_tokio(setup.rtcp_socket)) else {
        let _ = hangup
            .send(HangupRequest {
                id,
                by: Party::System,
                reason: "RTP socket error".into(),
            })
            .await;
        return;
    };
    let rtcp_mux = setup.rtcp_mux;
    let mut rtp = media::rtp::Config::new(
        setup.remote_rtp,
        setup.negotiated.codec.payload_type,
        codec.rtp_clock_rate(),
    );
    rtp.telephone_event = setup
        .negotiated
        .telephone_event
        .as_ref()
        .map(|t| t.payload_type);
    rtp.media_timeout = shared.media_timeout;
    rtp.rtcp_mux = rtcp_mux;
    rtp.confirmed = setup.confirmed;
    let confirmed = setup.confirmed;
    let cfg = Config {
        rtp,
        codec,
        inband_dtmf: shared.inband_dtmf,
        tap: false,
    };
    let started = clock_now();
    let started_wall = SystemTime::now();
    let core = CallMedia::new(cfg, &mut rand::rng(), started, started_wall);
    let ctx = CallContext {
        call_id: info.record_id.clone(),
        caller: info.admitted.caller.clone(),
        called: info.admitted.called.clone(),
        start_time: jiff::Timestamp::try_from(started_wall).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    };
    // The consent-withdrawal registry, by the number's pseudonym.
    let consent_withdrawn = match shared.key(info.admitted.tenant) {
        Some(k) => shared
            .store
            .consent_withdrawn(&info.admitted.tenant_id, &k.pseudonym(&info.admitted.caller))
            .await
            .unwrap_or_else(|e| {
                // Unknown: do not record rather than risk it.
                tracing::error!(call_id = sip_call_id, error = %e, "cannot read the consent registry; not recording this call");
                true
            }),
        None => false,
    };
    let interp = Interpreter::start(Arc::clone(&info.admitted.flow), ctx, started);
    shared.log.send(Record::Call(call_record(&info)));
    let mut call = Call {
        id,
        info,
        shared: Arc::clone(&shared),
        interp,
        core,
        rate: codec.sample_rate(),
        seq: 0,
        started_wall,
        started,
        held_total: Duration::ZERO,
        // Until the dialog is confirmed the flow's clock waits, as on
        // hold: its prompts could not be heard.
        held_since: (!confirmed).then_some(started),
        play_job: None,
        play_barge_in: false,
        message: None,
        call_rec: None,
        recording_ids: Vec::new(),
        hangup_sent: false,
        hangup,
        messages: 0,
        consent_withdrawn,
        scratch: Vec::with_capacity(640),
    };
    call.log(
        "",
        "sip",
        serde_json::json!({"event": "answered", "codec": codec.name(), "flow": call.info.admitted.flow.name, "version": call.info.admitted.flow.version.to_string(), "trunk": call.info.admitted.trunk}),
    );
    let end = tokio::time::Instant::from_std(started) + shared.max_duration;
    let mut buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 1500];
    let (by, cause) = loop {
        let now = clock_now();
        call.run_steps(now).await;
        while let Some(out) = call.core.poll_output() {
            match out {
                Output::Transmit { to, bytes, rtcp } => {
                    let from = if rtcp && !rtcp_mux { &rtcp_sock } else { &sock };
                    let _ = from.send_to(&bytes, to).await;
                }
                Output::Event(Event::Digit { key, source }) => {
                    if call.shared.panic_digit == Some(key) {
                        #[allow(clippy::panic)]
                        {
                            panic!("DHWANI_TEST_PANIC_DIGIT pressed");
                        }
                    }
                    if call.interp.is_collecting_sensitive() {
                        tracing::info!(
                            call_id = sip_call_id,
                            digit = "*",
                            source = source.name(),
                            "DTMF received (sensitive)"
                        );
                    } else {
                        tracing::info!(call_id = sip_call_id, digit = %key, source = source.name(), "DTMF received");
                    }
                    let step = call.interp.step_name().to_owned();
                    call.log(&step, "dtmf", serde_json::json!({"source": source.name()}));
                    call.input(now, Input::Digit(key));
                }
                Output::Event(Event::PlaybackFinished { interrupted }) => {
                    let step = call.interp.step_name().to_owned();
                    call.log(
                        &step,
                        "played",
                        serde_json::json!({"interrupted": interrupted}),
                    );
                    call.input(now, Input::PromptFinished);
                }
                Output::Event(Event::Confirmed) => {
                    if let Some(h) = call.held_since.take() {
                        call.held_total += now.saturating_duration_since(h);
                    }
                }
                Output::Event(Event::Latched(addr)) => {
                    tracing::debug!(call_id = sip_call_id, %addr, "RTP peer learned")
                }
                Output::Event(Event::MediaTimeout) => {
                    tracing::info!(call_id = sip_call_id, "no RTP: media timeout");
                    call.request_hangup(Party::System, "media timeout".into())
                        .await;
                }
                Output::Tap { caller, far_end } => call.tap(now, &caller, &far_end),
            }
        }
        call.run_steps(now).await;
        if call.interp.is_ended() && !call.hangup_sent && call.play_job.is_none() {
            // The flow ended without a hangup (queued, transferred, error).
            let reason = outcome_text(call.interp.outcome());
            call.request_hangup(Party::Dhwani, reason).await;
        }
        let media_wake = tokio::time::Instant::from_std(call.core.poll_timeout());
        let flow_wake = match (call.interp.poll_timeout(), call.held_since) {
            (Some(t), None) => {
                // Interpreter time back to real time.
                let real = t + call.held_total;
                tokio::time::Instant::from_std(real)
            }
            _ => tokio::time::Instant::now() + Duration::from_secs(3600),
        };
        let wake = media_wake.min(flow_wake);
        tokio::select! {
            ev = events.recv() => match ev {
                Some(CallEvent::Confirmed) => call.core.handle_command(clock_now(), Command::Confirm),
                Some(CallEvent::InfoDigit(k)) => call.core.handle_command(clock_now(), Command::InfoDigit(k)),
                Some(CallEvent::Direction { send, receive }) => {
                    let now = clock_now();
                    call.core.handle_command(now, Command::Direction { send, receive });
                    let held = !send;
                    match (held, call.held_since) {
                        (true, None) => {
                            call.held_since = Some(now);
                            call.log("", "sip", serde_json::json!({"event": "hold"}));
                        }
                        (false, Some(h)) => {
                            call.held_total += now.saturating_duration_since(h);
                            call.held_since = None;
                            call.log("", "sip", serde_json::json!({"event": "unhold"}));
                        }
                        _ => {}
                    }
                }
                Some(CallEvent::Ended { by, cause }) => break (by, cause),
                None => break (Party::System, "server stopped".to_owned()),
            },
            done = play_done(&mut call.play_job), if call.play_job.is_some() => {
                call.play_job = None;
                let now = clock_now();
                match done {
                    Ok(Ok(pcm)) => call.core.handle_command(now, Command::Play { prompts: pcm, barge_in: call.play_barge_in }),
                    Ok(Err(e)) => {
                        tracing::error!(call_id = sip_call_id, error = %e, "prompt cannot play");
                        let step = call.interp.step_name().to_owned();
                        call.log(&step, "error", serde_json::json!({"prompt": e}));
                        call.input(now, Input::PromptFinished);
                    }
                    Err(_) => {}
                }
            }
            _ = tokio::time::sleep_until(end), if !call.hangup_sent => {
                call.request_hangup(Party::System, "max_call_secs reached".into()).await;
            }
            _ = tokio::time::sleep_until(wake) => {
                let now = clock_now();
                call.core.handle_timeout(now);
                if call.held_since.is_none()
                    && call.interp.poll_timeout().is_some_and(|t| t + call.held_total <= now)
                {
                    call.input(now, Input::Timeout);
                }
            }
            got = sock.recv_from(&mut buf) => {
                if let Ok((n, from)) = got {
                    call.core.handle_datagram(clock_now(), from, buf.get(..n).unwrap_or(&[]));
                }
            }
            got = rtcp_sock.recv_from(&mut rtcp_buf) => {
                if let Ok((n, from)) = got {
                    call.core.handle_datagram(clock_now(), from, rtcp_buf.get(..n).unwrap_or(&[]));
                }
            }
        }
    };
    // The end: the flow learns the caller left, recorders close, the CDR.
    let now = clock_now();
    if let Some(j) = call.play_job.take() {
        j.abort();
    }
    if !call.interp.is_ended() {
        call.input(now, Input::HangUp);
        call.run_steps(now).await;
    }
    call.finish_message(now);
    call.stop_call_recording(now);
    call.run_steps(now).await;
    call.log(
        "",
        "sip",
        serde_json::json!({"event": "ended", "by": by.name(), "cause": cause}),
    );
    let end_wall = SystemTime::now();
    let mut r = call_record(&call.info);
    r.end_ms = Some(ms(end_wall));
    r.duration_ms = Some(now.saturating_duration_since(call.started).as_millis() as i64);
    r.hangup_by = Some(by.name().into());
    r.hangup_cause = Some(cause);
    r.outcome = Some(outcome_text(call.interp.outcome()));
    r.recording_id = call.recording_ids.first().cloned();
    call.shared.log.send(Record::Call(r));
    tracing::info!(
        call_id = sip_call_id,
        outcome = %outcome_text(call.interp.outcome()),
        frames = call.core.frames,
        late_2ms = call.core.late_2ms,
        skipped = call.core.skipped_frames,
        "call finished"
    );
}

/// Decodes a built-in prompt (WAV bytes) at `rate`.
pub fn builtin_prompt(wav: &[u8], name: &str, rate: u32) -> anyhow::Result<Arc<[i16]>> {
    let pcm = media::prompt::decode_bytes(wav.to_vec(), "wav", Path::new(name))?;
    Ok(media::prompt::resample(&pcm, rate, Path::new(name))?.into())
}
