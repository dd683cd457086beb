//! The tokio driver of one answered call: it builds the call's
//! [`Core`](super::core::Core) and then only moves things: datagrams from
//! the RTP/RTCP sockets in and out, SIP events in, timeline rows and CDRs
//! to the interaction log, hang-up requests to the SIP core, prompts
//! decoded off the task, and recording frames to encrypted files. Every
//! decision is the core's.

use std::collections::HashMap;
use std::net::UdpSocket as StdUdpSocket;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ivr_dsl::interp::Playable;
use media::call::{CallMedia, Config};
use media::codec::Codec;
use media::rtp::{ClockRate, PayloadType};
use recordings::file::FileRecorder;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::core::{Core, Input, Leg, Output, Recorders, Setup, SipEvent};
use crate::privacy::keys::RecordingError;
use crate::privacy::keys::TenantKey;
use crate::privacy::pseudonyms::PseudonymKey;
use crate::store::writer::{LogSender, Record};
use crate::tenants::Registry;
use crate::ua::{CallInfo, CallSetup, CallSlot, Party};

/// What a call's task is told.
#[derive(Debug)]
pub enum CallEvent {
    /// From the SIP side (ACK, INFO, re-INVITE, BYE, the queue).
    Sip(SipEvent),
    /// An agent answered the queued caller.
    AgentAnswered {
        /// The agent leg's sockets and codec.
        media: Box<crate::ua::legs::LegMedia>,
        /// The agent's extension, or the number a transfer dialled.
        agent: String,
        /// `agent` is a number outside, through a trunk.
        outside: bool,
    },
    /// An attended transfer: this call (an agent's consultation call)
    /// gives its agent leg to call `to`, then ends.
    HandOver {
        /// The transferred caller's call.
        to: CallSlot,
    },
    /// A supervisor's call joins this call (its agent's): the supervisor
    /// call's setup, which this task runs as a third leg.
    Supervise {
        /// The supervisor's call.
        setup: Box<CallSetup>,
        /// Listen, whisper or barge.
        mode: crate::ua::SuperviseMode,
        /// The supervisor's extension.
        extension: String,
    },
    /// From the supervisor's dialog.
    SupervisorSip(SipEvent),
}

impl From<SipEvent> for CallEvent {
    fn from(e: SipEvent) -> CallEvent {
        CallEvent::Sip(e)
    }
}

/// What a call's task asks of the SIP core.
#[derive(Debug)]
pub enum ToCore {
    /// End the call.
    Hangup(HangupRequest),
    /// The caller left its queue (a key of the flow's `queue`).
    LeaveQueue(CallSlot),
    /// The caller no longer waits for the agent who answered.
    AgentNotNeeded(CallSlot),
    /// The flow's `transfer` to `target`.
    Transfer {
        /// The call.
        id: CallSlot,
        /// Its tenant.
        tenant: usize,
        /// As the flow wrote it.
        target: String,
    },
    /// The agent leg a [`CallEvent::HandOver`] asked for: its sockets,
    /// where its phone takes RTP, its codec, and the agent's extension
    /// (`None`: this call had no agent leg any more).
    HandedOver {
        /// The call the leg goes to.
        to: CallSlot,
        /// The leg.
        leg: Option<(Box<crate::ua::legs::LegMedia>, String)>,
    },
    /// Queue the caller.
    Enqueue {
        /// The call.
        id: CallSlot,
        /// Its tenant.
        tenant: usize,
        /// The queue's name.
        name: String,
        /// The flow's longest wait.
        max_wait: Duration,
        /// Served before lower priorities.
        priority: i32,
        /// Position announcements this often.
        announce_every: Option<Duration>,
    },
}

/// A call asks the SIP side to hang up.
#[derive(Debug)]
pub struct HangupRequest {
    /// The call.
    pub id: CallSlot,
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
    /// Timeline events per call at most.
    pub max_timeline_events: u32,
    /// Caller keys per second at most.
    pub max_digits_per_sec: u32,
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
    /// Tenants' pseudonym keys, by tenant index (reloaded when the store
    /// says the tenant's pseudonyms were re-keyed).
    pub pseudonyms: std::sync::RwLock<Vec<Option<PseudonymKey>>>,
    /// The data directory (key files).
    pub data_dir: PathBuf,
    /// Where recordings go.
    pub recordings_dir: PathBuf,
    /// How often recordings are synced to disk.
    pub recording_sync: Duration,
    /// The beep before a message.
    pub beep: Arc<[i16]>,
    /// The store (the consent-withdrawal registry).
    pub store: crate::store::Store,
    /// The server's metrics (RTP figures and recording bytes; the rest
    /// are read off the interaction log).
    pub metrics: Arc<crate::metrics::Metrics>,
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

    /// True when `caller` withdrew recording consent at the tenant (the
    /// registry is keyed by the pseudonym key, which a recording-key
    /// rotation does not change; after a re-key the new key is loaded).
    pub async fn consent_withdrawn(
        &self,
        tenant: usize,
        tenant_id: &str,
        caller: &str,
    ) -> Result<bool, crate::privacy::PrivacyError> {
        let cached = self
            .pseudonyms
            .read()
            .ok()
            .and_then(|v| v.get(tenant).cloned().flatten());
        let stored = self.store.pseudonym_fingerprint(tenant_id).await?;
        let key = match cached {
            Some(k) if stored.as_ref().is_none_or(|f| *f == k.fingerprint()) => k,
            _ => {
                let k = crate::privacy::pseudonyms::current(&self.store, &self.data_dir, tenant_id)
                    .await?;
                if let Ok(mut v) = self.pseudonyms.write()
                    && let Some(slot) = v.get_mut(tenant)
                {
                    *slot = Some(k.clone());
                }
                {
                    let kk = k.clone();
                    crate::redact::set_key(tenant_id, Arc::new(move |n| kk.pseudonym(n)));
                }
                k
            }
        };
        for p in key.all(caller) {
            if self.store.consent_withdrawn(tenant_id, &p).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Writes the CDR of a call that never reached its task (refused after
/// admission, cancelled, never answered).
pub fn write_unanswered(log: &LogSender, info: &CallInfo, by: Party, cause: &str) {
    let r = super::core::unanswered_record(info, by, cause, SystemTime::now());
    log.send(Record::Call(Box::new(r)));
}

/// Recordings as encrypted files under `DATA_DIR/recordings/TENANT/`.
struct FileRecorders {
    shared: Arc<Shared>,
    tenant: usize,
    tenant_id: String,
    record_id: String,
    rate: u32,
    open: HashMap<String, FileRecorder>,
}

impl Recorders for FileRecorders {
    type Error = RecordingError;

    fn open(&mut self, id: &str, stereo: bool, now: Instant) -> Result<(), RecordingError> {
        let key = self
            .shared
            .key(self.tenant)
            .ok_or_else(|| RecordingError::NoKey {
                tenant: self.tenant_id.clone(),
            })?;
        let path = self
            .shared
            .recordings_dir
            .join(&self.tenant_id)
            .join(format!("{id}.{}", crate::privacy::layout::EXTENSION));
        let file = crate::privacy::keys::create_recording(
            &path,
            &self.tenant_id,
            &key,
            &self.record_id,
            (self.rate, if stereo { 2 } else { 1 }),
            self.shared.recording_sync,
            now,
        )?;
        self.open.insert(id.to_owned(), file);
        Ok(())
    }

    fn write(&mut self, id: &str, now: Instant, samples: &[i16]) -> Result<(), RecordingError> {
        let file = self
            .open
            .get_mut(id)
            .ok_or_else(|| RecordingError::NotOpen { id: id.to_owned() })?;
        match file.write(now, samples) {
            Ok(()) => {
                self.shared
                    .metrics
                    .recording_written(2 * samples.len() as u64);
                Ok(())
            }
            Err(e) => {
                self.open.remove(id);
                Err(RecordingError::from(e))
            }
        }
    }

    fn finish(&mut self, id: &str) -> Result<(), RecordingError> {
        match self.open.remove(id) {
            Some(f) => Ok(f.finish()?),
            None => Ok(()),
        }
    }
}

/// Prompts being decoded or synthesised off the call's task.
type PlayJob = (
    u64,
    tokio::task::JoinHandle<Result<Vec<Arc<[i16]>>, String>>,
);

/// Waits for the fetch under way (never completes without one).
async fn fetch_done(
    job: &mut Option<(u64, tokio::task::JoinHandle<crate::tenants::fetch::Fetched>)>,
) -> (u64, crate::tenants::fetch::Fetched) {
    match job.as_mut() {
        Some((n, h)) => {
            let f = h.await.unwrap_or_else(|_| crate::tenants::fetch::Fetched {
                status: None,
                result: Err("the fetch failed".into()),
                elapsed: Duration::ZERO,
            });
            (*n, f)
        }
        None => std::future::pending().await,
    }
}

/// Waits for the play job, if any (never completes without one).
async fn play_done(job: &mut Option<PlayJob>) -> (u64, Result<Vec<Arc<[i16]>>, String>) {
    match job.as_mut() {
        Some((id, j)) => {
            let r = j
                .await
                .unwrap_or_else(|e| Err(format!("prompt task failed: {e}")));
            (*id, r)
        }
        None => std::future::pending().await,
    }
}

fn resolve(shared: &Shared, prompts: Vec<Playable>, rate: u32) -> Result<Vec<Arc<[i16]>>, String> {
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
                let tts = shared
                    .tts
                    .as_ref()
                    .ok_or_else(|| "no text-to-speech engine (install espeak-ng)".to_owned())?;
                let mut cache = tts.lock().map_err(|_| "speech cache poisoned".to_owned())?;
                out.push(
                    cache
                        .get(&text, voice.as_deref(), rate)
                        .map_err(|e| e.to_string())?,
                );
            }
        }
    }
    Ok(out)
}

/// How often a running call adds its media counters to the metrics.
const MEDIA_REPORT_EVERY: Duration = Duration::from_secs(5);

fn clock_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs one answered call to its end.
pub async fn run(
    setup: CallSetup,
    shared: Arc<Shared>,
    mut events: mpsc::Receiver<CallEvent>,
    hangup: mpsc::Sender<ToCore>,
) {
    let id = setup.id;
    let refuse = |reason: &str| HangupRequest {
        id,
        by: Party::System,
        reason: reason.into(),
    };
    let Some(codec) = Codec::named(&setup.negotiated.codec.encoding) else {
        tracing::warn!(call_id = %setup.sip_call_id, codec = %setup.negotiated.codec.encoding, "no media engine for this codec");
        let _ = hangup
            .send(ToCore::Hangup(refuse("unsupported codec")))
            .await;
        return;
    };
    let to_tokio = |s: StdUdpSocket| s.set_nonblocking(true).and_then(|_| UdpSocket::from_std(s));
    let Some((rtp_socket, rtcp_socket)) = setup.ports.sockets else {
        let _ = hangup.send(ToCore::Hangup(refuse("no RTP socket"))).await;
        return;
    };
    let (Ok(sock), Ok(rtcp_sock)) = (to_tokio(rtp_socket), to_tokio(rtcp_socket)) else {
        let _ = hangup
            .send(ToCore::Hangup(refuse("RTP socket error")))
            .await;
        return;
    };
    let info = setup.info;
    let tenant = info.admitted.tenant;
    let rtcp_mux = setup.rtcp_mux;
    let rtp = rtp_config(
        (setup.remote_rtp, &setup.negotiated, codec),
        shared.media_timeout,
        rtcp_mux,
        setup.confirmed,
    );
    // The consent-withdrawal registry, by the number's pseudonym.
    let consent_withdrawn = match shared.key(info.admitted.tenant) {
        Some(_) => shared
            .consent_withdrawn(
                info.admitted.tenant,
                &info.admitted.tenant_id,
                &info.admitted.caller,
            )
            .await
            .unwrap_or_else(|e| {
                // Unknown: do not record rather than risk it.
                tracing::error!(call_id = %info.sip_call_id, error = %e, "cannot read the consent registry; not recording this call");
                true
            }),
        None => false,
    };
    let (fetch_allow, fetcher, fetch_filler) = shared
        .registry
        .tenant(info.admitted.tenant)
        .map(|t| (t.allow.clone(), t.fetcher.clone(), t.fetch_filler.clone()))
        .unwrap_or_default();
    let mut recorders = FileRecorders {
        shared: Arc::clone(&shared),
        tenant: info.admitted.tenant,
        tenant_id: info.admitted.tenant_id.to_string(),
        record_id: info.record_id.to_string(),
        rate: codec.sample_rate(),
        open: HashMap::new(),
    };
    let started = clock_now();
    let started_wall = SystemTime::now();
    let media_cfg = Config {
        rtp,
        codec,
        inband_dtmf: shared.inband_dtmf,
        tap: false,
    };
    let media = CallMedia::new(media_cfg, &mut rand::rng(), started, started_wall);
    let span =
        tracing::info_span!("call", call_id = %info.sip_call_id, record_id = %info.record_id);
    let core_setup = Setup {
        info,
        media,
        rate: codec.sample_rate(),
        epoch: (started, started_wall),
        confirmed: setup.confirmed,
        max_duration: shared.max_duration,
        consent_withdrawn,
        fetch_allow,
        panic_digit: shared.panic_digit,
        beep: Arc::clone(&shared.beep),
        max_events: shared.max_timeline_events,
        max_digits_per_sec: shared.max_digits_per_sec,
        fetch_filler,
    };
    let mut core = span.in_scope(|| Core::new(core_setup, started, &mut recorders));
    let mut job: Option<PlayJob> = None;
    // A fetch under way, on the tenant's client (never on this task).
    let mut fetch_job: Option<(u64, tokio::task::JoinHandle<crate::tenants::fetch::Fetched>)> =
        None;
    let mut buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 1500];
    // The extra legs' buffers are allocated when a leg joins.
    let mut agent_buf: Vec<u8> = Vec::new();
    // The agent's leg, once a queued caller is answered.
    let mut agent: Option<AgentSockets> = None;
    // The agent leg's codec, kept to hand the leg to another call.
    let mut agent_codec: Option<(sip::sdp::Negotiated, bool)> = None;
    // A supervisor's leg and its call.
    let mut supervisor: Option<(AgentSockets, CallSlot)> = None;
    let mut supervisor_buf: Vec<u8> = Vec::new();
    // The media counters this call has added to the server's metrics.
    let mut media_reported = crate::metrics::MediaTally::default();
    let mut next_media_report = clock_now() + MEDIA_REPORT_EVERY;
    // Every log line of the call carries its SIP Call-ID and record id.
    async {
    loop {
        while let Some(out) = core.poll_output() {
            match out {
                Output::Transmit {
                    leg: Leg::Caller,
                    to,
                    bytes,
                    rtcp,
                } => {
                    let from = if rtcp && !rtcp_mux { &rtcp_sock } else { &sock };
                    let _ = from.send_to(&bytes, to).await;
                }
                Output::Transmit {
                    leg: Leg::Agent,
                    to,
                    bytes,
                    rtcp,
                } => {
                    if let Some(a) = &agent {
                        let from = if rtcp && !a.rtcp_mux { &a.rtcp } else { &a.rtp };
                        let _ = from.send_to(&bytes, to).await;
                    }
                }
                Output::Transmit {
                    leg: Leg::Supervisor,
                    to,
                    bytes,
                    rtcp,
                } => {
                    if let Some((s, _)) = &supervisor {
                        let from = if rtcp && !s.rtcp_mux { &s.rtcp } else { &s.rtp };
                        let _ = from.send_to(&bytes, to).await;
                    }
                }
                Output::SupervisorDone => {
                    if let Some((_, sid)) = supervisor.take() {
                        let _ = hangup
                            .send(ToCore::Hangup(HangupRequest { id: sid, by: Party::Dhwani, reason: "supervision ended".into() }))
                            .await;
                    }
                }
                Output::Transfer { target } => {
                    let _ = hangup.send(ToCore::Transfer { id, tenant, target }).await;
                }
                Output::Enqueue { name, max_wait, priority, announce_every } => {
                    let _ = hangup
                        .send(ToCore::Enqueue { id, tenant, name, max_wait, priority, announce_every })
                        .await;
                }
                Output::ResolvePrompts { job: n, prompts, rate } => {
                    if let Some((_, j)) = job.take() {
                        j.abort();
                    }
                    let shared = Arc::clone(&shared);
                    let handle =
                        tokio::task::spawn_blocking(move || resolve(&shared, prompts, rate));
                    job = Some((n, handle));
                }
                Output::Fetch { job: n, post, url, timeout } => {
                    if let Some((_, j)) = fetch_job.take() {
                        j.abort();
                    }
                    let handle = match fetcher.clone() {
                        Some(f) => tokio::spawn(async move { f.fetch(post, &url, timeout).await }),
                        None => tokio::spawn(async {
                            crate::tenants::fetch::Fetched {
                                status: None,
                                result: Err("the tenant has no fetch_allow".into()),
                                elapsed: Duration::ZERO,
                            }
                        }),
                    };
                    fetch_job = Some((n, handle));
                }
                Output::CancelPrompts { job: n } => {
                    if job.as_ref().is_some_and(|(j, _)| *j == n)
                        && let Some((_, j)) = job.take()
                    {
                        j.abort();
                    }
                }
                Output::Record(r) => shared.log.send(*r),
                Output::Hangup { by, reason } => {
                    let _ = hangup.send(ToCore::Hangup(HangupRequest { id, by, reason })).await;
                }
                Output::LeaveQueue => {
                    let _ = hangup.send(ToCore::LeaveQueue(id)).await;
                }
                Output::AgentNotNeeded => {
                    agent = None;
                    let _ = hangup.send(ToCore::AgentNotNeeded(id)).await;
                }
                Output::Finished => {}
            }
        }
        let finished = core.is_finished();
        let at = clock_now();
        if finished || at >= next_media_report {
            next_media_report = at + MEDIA_REPORT_EVERY;
            let m = core.media();
            let tally = crate::metrics::MediaTally {
                received: m.session().counters.rtp_received,
                sent: m.session().counters.rtp_sent,
                lost: m.jitter().stats.lost,
                frames: m.frames,
                late_2ms: m.late_2ms,
                late_5ms: m.late_5ms,
                late_10ms: m.late_10ms,
                late_20ms: m.late_20ms,
                skipped_frames: m.skipped_frames,
            };
            shared.metrics.media_progress(tally, &mut media_reported);
        }
        if finished {
            let m = core.media();
            let rate = f64::from(codec.rtp_clock_rate().max(1));
            if let Some(s) = m.session().recv_stats() {
                shared.metrics.jitter_at_end(f64::from(s.jitter()) / rate);
            }
            break;
        }
        let wake = core
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        // While the media's clock runs (a frame due within a frame's time)
        // the sockets are read when it ticks, not when a datagram comes:
        // one wake-up a frame for the whole call, whatever its legs
        // receive. Otherwise (no frame due soon) a datagram wakes us.
        let ticking = wake <= tokio::time::Instant::now() + TICK_READ_WITHIN;
        tokio::select! {
            ev = events.recv() => {
                match ev.unwrap_or(CallEvent::Sip(SipEvent::Ended { by: Party::System, cause: "server stopped".to_owned() })) {
                    CallEvent::Sip(ev) => core.handle_input(clock_now(), Input::Sip(ev), &mut recorders),
                    CallEvent::AgentAnswered { media, agent: ext, outside } => match (media.negotiated.clone(), media.rtcp_mux, agent_leg(*media, &shared)) {
                        (negotiated, mux, Ok((sockets, mut m))) => {
                            // Both legs tick together: one wake-up a frame.
                            m.align_frames(core.media().next_frame());
                            agent_buf.resize(2048, 0);
                            agent = Some(sockets);
                            agent_codec = Some((negotiated, mux));
                            core.handle_input(clock_now(), Input::AgentAnswered { media: Box::new(m), agent: ext, outside }, &mut recorders);
                        }
                        (_, _, Err(e)) => {
                            tracing::warn!(error = %e, "agent leg cannot start");
                            let _ = hangup.send(ToCore::Hangup(HangupRequest { id, by: Party::System, reason: e })).await;
                        }
                    },
                    CallEvent::HandOver { to } => {
                        let leg = match (core.hand_over_agent(clock_now()), agent.take(), agent_codec.take()) {
                            (Some((ext, remote)), Some(s), Some((negotiated, rtcp_mux))) => {
                                handed_leg(s, remote, negotiated, rtcp_mux).map(|m| (Box::new(m), ext))
                            }
                            _ => None,
                        };
                        let _ = hangup.send(ToCore::HandedOver { to, leg }).await;
                    }
                    CallEvent::Supervise { setup, mode, extension } => {
                        let sid = setup.id;
                        match supervisor.is_none().then(|| supervisor_leg(*setup, &shared)) {
                            Some(Ok((sockets, mut m))) => {
                                m.align_frames(core.media().next_frame());
                                supervisor_buf.resize(2048, 0);
                                supervisor = Some((sockets, sid));
                                core.handle_input(clock_now(), Input::SupervisorJoined { media: Box::new(m), extension, mode }, &mut recorders);
                            }
                            // Another supervisor is on the call, or no leg.
                            other => {
                                if let Some(Err(e)) = other {
                                    tracing::warn!(error = %e, "supervisor leg cannot start");
                                }
                                let _ = hangup.send(ToCore::Hangup(HangupRequest { id: sid, by: Party::Dhwani, reason: "supervision refused".into() })).await;
                            }
                        }
                    }
                    CallEvent::SupervisorSip(ev) => {
                        let ended = matches!(ev, SipEvent::Ended { .. });
                        core.handle_input(clock_now(), Input::SupervisorSip(ev), &mut recorders);
                        if ended {
                            supervisor = None;
                        }
                    }
                }
            }
            got = agent_recv(supervisor.as_ref().map(|s| &s.0), &mut supervisor_buf), if !ticking => {
                if let Some((n, from)) = got {
                    let bytes = supervisor_buf.get(..n).unwrap_or(&[]);
                    core.handle_input(clock_now(), Input::Datagram { leg: Leg::Supervisor, from, bytes }, &mut recorders);
                }
            }
            got = agent_recv(agent.as_ref(), &mut agent_buf), if !ticking => {
                if let Some((n, from)) = got {
                    let bytes = agent_buf.get(..n).unwrap_or(&[]);
                    core.handle_input(clock_now(), Input::Datagram { leg: Leg::Agent, from, bytes }, &mut recorders);
                }
            }
            (n, fetched) = fetch_done(&mut fetch_job), if fetch_job.is_some() => {
                fetch_job = None;
                let crate::tenants::fetch::Fetched { status, result, elapsed } = fetched;
                core.handle_input(clock_now(), Input::Fetched { job: n, status, result, elapsed }, &mut recorders);
            }
            (n, result) = play_done(&mut job), if job.is_some() => {
                job = None;
                core.handle_input(clock_now(), Input::Prompts { job: n, result }, &mut recorders);
            }
            _ = tokio::time::sleep_until(wake) => {
                // What came since the last frame goes in before the next.
                let legs = [
                    (Some(&sock), Leg::Caller),
                    (Some(&rtcp_sock), Leg::Caller),
                    (agent.as_ref().map(|a| &a.rtp), Leg::Agent),
                    (agent.as_ref().map(|a| &a.rtcp), Leg::Agent),
                    (supervisor.as_ref().map(|s| &s.0.rtp), Leg::Supervisor),
                    (supervisor.as_ref().map(|s| &s.0.rtcp), Leg::Supervisor),
                ];
                for (s, leg) in legs {
                    if let Some(s) = s {
                        read_waiting(s, &mut buf, leg, &mut core, &mut recorders);
                    }
                }
                core.handle_input(clock_now(), Input::Timeout, &mut recorders);
            }
            got = sock.recv_from(&mut buf), if !ticking => {
                if let Ok((n, from)) = got {
                    let bytes = buf.get(..n).unwrap_or(&[]);
                    core.handle_input(clock_now(), Input::Datagram { leg: Leg::Caller, from, bytes }, &mut recorders);
                }
            }
            got = rtcp_sock.recv_from(&mut rtcp_buf), if !ticking => {
                if let Ok((n, from)) = got {
                    let bytes = rtcp_buf.get(..n).unwrap_or(&[]);
                    core.handle_input(clock_now(), Input::Datagram { leg: Leg::Caller, from, bytes }, &mut recorders);
                }
            }
        }
    }
    }
    .instrument(span)
    .await;
    if let Some((_, j)) = job.take() {
        j.abort();
    }
    // A caller who hung up mid-fetch: its request is dropped.
    if let Some((_, j)) = fetch_job.take() {
        j.abort();
    }
}

/// A frame due this soon: the call's sockets are read on its tick
/// ([`read_waiting`]) rather than woken for (a frame and a little slack).
const TICK_READ_WITHIN: Duration = Duration::from_millis(25);

/// Datagrams read from one socket per tick at most: a flood on one call's
/// port costs that call this much a frame, and the rest waits in (or
/// overflows) the kernel's buffer.
const READ_PER_TICK: usize = 32;

/// Reads the datagrams waiting on `sock` (at most [`READ_PER_TICK`]) into
/// the call as `leg`'s. Non-blocking: tokio's readiness says whether
/// anything came, so an idle socket costs no system call.
fn read_waiting(
    sock: &UdpSocket,
    buf: &mut [u8],
    leg: Leg,
    core: &mut Core,
    recorders: &mut FileRecorders,
) {
    for _ in 0..READ_PER_TICK {
        let Ok((n, from)) = sock.try_recv_from(buf) else {
            return;
        };
        let bytes = buf.get(..n).unwrap_or(&[]);
        core.handle_input(clock_now(), Input::Datagram { leg, from, bytes }, recorders);
    }
}

/// A leg's RTP session settings from what offer/answer agreed.
fn rtp_config(
    (remote, negotiated, codec): (std::net::SocketAddr, &sip::sdp::Negotiated, Codec),
    media_timeout: Duration,
    rtcp_mux: bool,
    confirmed: bool,
) -> media::rtp::Config {
    let mut rtp = media::rtp::Config::new(
        remote,
        PayloadType(negotiated.codec.payload_type),
        ClockRate(codec.rtp_clock_rate()),
    );
    rtp.telephone_event = negotiated
        .telephone_event
        .as_ref()
        .map(|t| PayloadType(t.payload_type));
    rtp.media_timeout = media_timeout;
    rtp.rtcp_mux = rtcp_mux;
    rtp.confirmed = confirmed;
    rtp
}

/// An extra leg's sockets (the agent's, a supervisor's).
struct AgentSockets {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    rtcp_mux: bool,
}

/// The agent leg's media core and sockets from its answered INVITE (we
/// sent the ACK: the dialog is confirmed).
fn agent_leg(
    m: crate::ua::legs::LegMedia,
    shared: &Shared,
) -> Result<(AgentSockets, CallMedia), String> {
    extra_leg(
        "agent",
        m.ports.sockets,
        (m.remote_rtp, &m.negotiated),
        (m.rtcp_mux, true),
        shared,
    )
}

/// An agent leg's sockets and codec, handed to another call's task
/// (`remote`: where the phone takes RTP now).
fn handed_leg(
    s: AgentSockets,
    remote: std::net::SocketAddr,
    negotiated: sip::sdp::Negotiated,
    rtcp_mux: bool,
) -> Option<crate::ua::legs::LegMedia> {
    let (rtp, rtcp) = (s.rtp.into_std().ok()?, s.rtcp.into_std().ok()?);
    let local = rtp.local_addr().ok()?;
    Some(crate::ua::legs::LegMedia {
        ports: crate::ua::MediaPorts {
            local,
            sockets: Some((rtp, rtcp)),
        },
        remote_rtp: remote,
        negotiated,
        rtcp_mux,
    })
}

/// A supervisor's leg from its own call's setup (its media starts at its
/// ACK, or at its first RTP).
fn supervisor_leg(s: CallSetup, shared: &Shared) -> Result<(AgentSockets, CallMedia), String> {
    extra_leg(
        "supervisor",
        s.ports.sockets,
        (s.remote_rtp, &s.negotiated),
        (s.rtcp_mux, s.confirmed),
        shared,
    )
}

/// A leg's media core (tapped, for the bridge) and tokio sockets.
fn extra_leg(
    what: &str,
    sockets: Option<(StdUdpSocket, StdUdpSocket)>,
    (remote, negotiated): (std::net::SocketAddr, &sip::sdp::Negotiated),
    (rtcp_mux, confirmed): (bool, bool),
    shared: &Shared,
) -> Result<(AgentSockets, CallMedia), String> {
    let codec = Codec::named(&negotiated.codec.encoding)
        .ok_or_else(|| format!("{what} codec {} unsupported", negotiated.codec.encoding))?;
    let (rtp_socket, rtcp_socket) =
        sockets.ok_or_else(|| format!("no RTP socket for the {what} leg"))?;
    let to_tokio = |s: StdUdpSocket| s.set_nonblocking(true).and_then(|_| UdpSocket::from_std(s));
    let (rtp_sock, rtcp_sock) = match (to_tokio(rtp_socket), to_tokio(rtcp_socket)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Err(format!("{what} RTP socket error")),
    };
    let rtp = rtp_config(
        (remote, negotiated, codec),
        shared.media_timeout,
        rtcp_mux,
        confirmed,
    );
    let cfg = Config {
        rtp,
        codec,
        inband_dtmf: false,
        tap: true,
    };
    let media = CallMedia::new(cfg, &mut rand::rng(), clock_now(), SystemTime::now());
    Ok((
        AgentSockets {
            rtp: rtp_sock,
            rtcp: rtcp_sock,
            rtcp_mux,
        },
        media,
    ))
}

/// A datagram on the agent leg's RTP or RTCP socket (never, without one).
async fn agent_recv(
    agent: Option<&AgentSockets>,
    buf: &mut [u8],
) -> Option<(usize, std::net::SocketAddr)> {
    match agent {
        Some(a) => {
            let mut rtcp_buf = [0u8; 1500];
            tokio::select! {
                r = a.rtp.recv_from(buf) => r.ok(),
                r = a.rtcp.recv_from(&mut rtcp_buf) => {
                    let (n, from) = r.ok()?;
                    let n = n.min(buf.len());
                    buf[..n].copy_from_slice(&rtcp_buf[..n]);
                    Some((n, from))
                }
            }
        }
        None => std::future::pending().await,
    }
}

/// Decodes a built-in prompt (WAV bytes) at `rate`.
pub fn builtin_prompt(wav: &[u8], name: &str, rate: u32) -> Result<Arc<[i16]>, media::Error> {
    let pcm = media::prompt::decode_bytes(wav.to_vec(), "wav", Path::new(name))?;
    Ok(media::prompt::resample(&pcm, rate, Path::new(name))?.into())
}
