//! The sans-IO core of one answered call: the flow's [`Interpreter`]
//! against the call's media ([`CallMedia`]), with consent and recording
//! control, the hold clock, message-end detection, the timeline and the CDR.
//!
//! ```text
//!  Input::Datagram ──► CallMedia ──digits, prompt done, tap──► Core ──► Interpreter
//!  Input::Sip (ACK, INFO, hold, BYE) ─────────────────────────►  │  ◄── play, record, hangup
//!  Input::Prompts (decoded PCM) ──────────────────────────────►  │
//!  Input::Timeout ───────────────────────────────────────────►  ▼
//!        Output::{Transmit, ResolvePrompts, Record, Hangup, Finished}
//! ```
//!
//! It reads no clock and does no I/O: `now` comes with every input, wall
//! time is the `epoch` given at start plus elapsed `now`, recordings go
//! through the [`Recorders`] trait, and prompt files and speech are decoded
//! by the driver when asked ([`Output::ResolvePrompts`]). The tokio driver
//! is [`super::task`].
//!
//! Rules it owns:
//! - The flow's clock stops while the caller holds the call (re-INVITE
//!   sendonly/inactive) and before the dialog is confirmed: timeouts do not
//!   run out and prompts wait.
//! - Nothing is recorded without consent; a caller who withdrew consent
//!   (the privacy registry, checked by the driver at start) is never
//!   recorded, message or call.
//! - A message ends on its maximum length, on the flow's end key, or after
//!   the flow's silence once the caller has spoken or a second has passed
//!   ([`SILENCE_MEAN_AMPLITUDE`], [`SILENCE_GRACE_FRAMES`]).
//! - A `queue` step asks the driver to queue the caller
//!   ([`Output::Enqueue`]) and loops the hold music until an agent answers
//!   ([`Input::AgentAnswered`]: the agent's media becomes a second [`Leg`],
//!   bridged to the caller's through a [`media::bridge::Bridge`]) or the
//!   queue gives up ([`QueueEvent::Overflow`]: the flow's `on overflow`).
//!   Once bridged, either side hanging up ends the call; the agent's hold
//!   gives the caller the hold music; keys are relayed as RFC 4733 events.
//! - An agent's blind transfer ([`QueueEvent::Transferred`]) takes the
//!   agent's leg out and the caller waits again with the hold music until
//!   the next agent answers. A flow's `transfer` ([`Output::Transfer`]) is
//!   answered like a queue's agent ([`Input::AgentAnswered`]) or fails
//!   ([`QueueEvent::TransferFailed`]: the flow's `on failure`). `fetch` is checked against the tenant's
//!   allow-list, then answered "not available".

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ivr_dsl::allow::AllowList;
use ivr_dsl::interp::{CallContext, Input as FlowInput, Interpreter, Output as Step, Playable};
use media::call::{CallMedia, Command, Event, Output as MediaOutput};

pub use super::cdr::{call_record, failed_record, unanswered_record};
use super::cdr::{ms, outcome_text};
use crate::store::Event as LogEvent;
use crate::store::writer::Record;
use crate::ua::{CallInfo, Party};

/// A frame's mean absolute amplitude under this is silence, for the end of
/// a message (speech sits in the thousands; line noise under a hundred).
pub const SILENCE_MEAN_AMPLITUDE: i64 = 300;
/// Silence ends a message only after this many 20 ms frames (one second),
/// so a caller who pauses before speaking is not cut off.
pub const SILENCE_GRACE_FRAMES: u64 = 50;
/// One media frame.
const FRAME: Duration = Duration::from_millis(20);

/// What the SIP side tells a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipEvent {
    /// The ACK came: the call's media may send.
    Confirmed,
    /// A digit from SIP INFO.
    InfoDigit(char),
    /// A re-INVITE changed the media: direction (hold/unhold), address,
    /// payload types.
    MediaUpdate(sip::sdp::MediaUpdate),
    /// From the queue and the agent leg.
    Queue(QueueEvent),
    /// The call is over (the caller hung up, or we sent BYE).
    Ended {
        /// Who.
        by: Party,
        /// Why.
        cause: String,
    },
}

/// What the queue and the agent's leg tell a queued call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueEvent {
    /// For the timeline: `agent rung`, `no answer`, `busy`...
    Timeline {
        /// What happened.
        event: String,
        /// The agent's extension.
        agent: Option<String>,
    },
    /// The queue gave up on the caller (full, no agents, max wait): the
    /// flow takes `on overflow`.
    Overflow {
        /// Why.
        why: String,
    },
    /// The caller's place in the queue, to be announced.
    Position {
        /// 1 for next.
        position: usize,
        /// The queue's recent wait, seconds.
        estimated_wait_secs: Option<u64>,
    },
    /// The agent hung up.
    AgentLeft,
    /// The agent's re-INVITE changed its media (hold, unhold).
    AgentMedia(sip::sdp::MediaUpdate),
    /// The flow's `transfer` to an agent failed (refused, no answer,
    /// busy): the flow takes `on failure`.
    TransferFailed {
        /// Why, for the timeline.
        why: String,
    },
    /// The agent transferred the caller (a blind transfer, REFER): its leg
    /// is gone and the caller waits, with the hold music, for the next
    /// [`Input::AgentAnswered`].
    Transferred {
        /// The queue, the agent's extension or the number.
        to: String,
        /// Which of those `to` is.
        kind: TransferTo,
    },
}

/// What an agent's blind transfer sent the caller to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferTo {
    /// A queue of the tenant.
    Queue,
    /// Another agent.
    Agent,
    /// A number, dialled through the tenant's outbound trunk (if it does
    /// not answer, the caller waits in its queue again).
    Number,
    /// A SIP URI on another host of the tenant's `transfer_hosts` (if it
    /// does not answer, the caller waits in its queue again).
    Uri,
    /// The agent the transferring agent consulted (an attended transfer):
    /// its leg comes over from the consultation call at once.
    Attended,
}

impl TransferTo {
    /// For the timeline.
    pub fn name(self) -> &'static str {
        match self {
            TransferTo::Queue => "queue",
            TransferTo::Agent => "agent",
            TransferTo::Number => "number",
            TransferTo::Uri => "uri",
            TransferTo::Attended => "attended",
        }
    }
}

/// A media leg of the call: the caller's, and an agent's once a queued
/// call is answered. Every datagram in and out says which leg it is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// The caller's leg: the dialog the INVITE created.
    Caller,
    /// The agent's leg: our INVITE to the agent's phone.
    Agent,
    /// A supervisor's leg: the supervisor's own call to us.
    Supervisor,
}

/// Something that happened to the call.
#[derive(Debug)]
pub enum Input<'a> {
    /// A datagram on one of the call's RTP or RTCP sockets.
    Datagram {
        /// Whose socket it came in on.
        leg: Leg,
        /// Its source.
        from: SocketAddr,
        /// Its bytes.
        bytes: &'a [u8],
    },
    /// [`Core::poll_timeout`] was reached.
    Timeout,
    /// From the SIP side.
    Sip(SipEvent),
    /// An agent answered the queued caller: its leg's media, built with
    /// the agent's codec and addresses, and the agent's extension.
    AgentAnswered {
        /// The agent leg's media core.
        media: Box<CallMedia>,
        /// Who: an agent's extension, or the number a transfer dialled.
        agent: String,
        /// `agent` is a number outside (through a trunk): a person's,
        /// maybe, so the log does not name it.
        outside: bool,
    },
    /// The answer to [`Output::Fetch`].
    Fetched {
        /// Its job.
        job: u64,
        /// The HTTP status, if a reply came.
        status: Option<u16>,
        /// The reply's JSON object, or why not.
        result: Result<serde_json::Value, String>,
        /// How long it took.
        elapsed: Duration,
    },
    /// A supervisor's call joins the agent's: its media, built from the
    /// supervisor's own dialog.
    SupervisorJoined {
        /// The supervisor leg's media core.
        media: Box<CallMedia>,
        /// The supervisor's extension.
        extension: String,
        /// Listen, whisper or barge.
        mode: crate::ua::SuperviseMode,
    },
    /// From the supervisor's dialog (its BYE, ACK, re-INVITE).
    SupervisorSip(SipEvent),
    /// The prompts of [`Output::ResolvePrompts`] `job`, decoded at the
    /// codec's rate, or why they cannot play.
    Prompts {
        /// The job.
        job: u64,
        /// PCM per prompt, or the error.
        result: Result<Vec<Arc<[i16]>>, String>,
    },
}

/// Something for the driver to do.
#[derive(Debug)]
pub enum Output {
    /// Send a datagram (RTCP from the RTCP socket unless `rtcp-mux`).
    Transmit {
        /// From which leg's sockets.
        leg: Leg,
        /// To.
        to: SocketAddr,
        /// Bytes.
        bytes: bytes::Bytes,
        /// RTCP.
        rtcp: bool,
    },
    /// Decode or synthesise these prompts (off the call's task) at `rate`
    /// and answer with [`Input::Prompts`].
    ResolvePrompts {
        /// Answer with this job number.
        job: u64,
        /// The prompts.
        prompts: Vec<Playable>,
        /// Sample rate.
        rate: u32,
    },
    /// Run this HTTPS request (the tenant's fetch client) and answer with
    /// [`Input::Fetched`].
    Fetch {
        /// Answer with this job number.
        job: u64,
        /// POST this JSON body; GET without one.
        post: Option<serde_json::Value>,
        /// The URL (allowed by the tenant's list).
        url: String,
        /// The flow's time limit.
        timeout: Duration,
    },
    /// The prompts of `job` are no longer wanted.
    CancelPrompts {
        /// The job.
        job: u64,
    },
    /// A timeline event or a CDR for the interaction log.
    Record(Box<Record>),
    /// Ask the SIP side to end the call (BYE). The call goes on until
    /// [`SipEvent::Ended`].
    Hangup {
        /// Who decided.
        by: Party,
        /// Why.
        reason: String,
    },
    /// Queue the caller (the flow's `queue` step): answer with
    /// [`Input::AgentAnswered`] or [`QueueEvent::Overflow`].
    Enqueue {
        /// The queue's name.
        name: String,
        /// The flow's `max wait`.
        max_wait: Duration,
        /// Served before callers of lower priority.
        priority: i32,
        /// Tell the caller its place this often (the flow's `announce
        /// every`): answered with [`QueueEvent::Position`].
        announce_every: Option<Duration>,
    },
    /// The flow's `transfer`: connect the caller to `target` (an agent's
    /// extension, `EXT` or `sip:EXT@...`); answer with
    /// [`Input::AgentAnswered`] or [`QueueEvent::TransferFailed`].
    Transfer {
        /// As the flow wrote it.
        target: String,
    },
    /// The caller left the queue with a key: take it out.
    LeaveQueue,
    /// An agent's leg arrived when the caller no longer waited: hang it
    /// up and free the agent.
    AgentNotNeeded,
    /// The supervisor's leg is no longer on the call: hang up the
    /// supervisor's call.
    SupervisorDone,
    /// The call is over and its CDR was emitted: the driver may stop.
    Finished,
}

/// Where recordings go (encrypted files in the server, memory in tests).
/// A failure is logged and marked in the timeline; the call goes on.
pub trait Recorders {
    /// What goes wrong (a full disk, a missing key).
    type Error: std::fmt::Display;
    /// Opens recording `id`: stereo (caller left, us right) or mono.
    fn open(&mut self, id: &str, stereo: bool, now: Instant) -> Result<(), Self::Error>;
    /// Appends samples (interleaved when stereo).
    fn write(&mut self, id: &str, now: Instant, samples: &[i16]) -> Result<(), Self::Error>;
    /// Closes it.
    fn finish(&mut self, id: &str) -> Result<(), Self::Error>;
}

/// What a call starts with.
pub struct Setup {
    /// Who is calling, which flow, when.
    pub info: CallInfo,
    /// The media core, already built with the call's codec and addresses.
    pub media: CallMedia,
    /// Its codec's sample rate.
    pub rate: u32,
    /// Where `now` and wall time meet (the call's start).
    pub epoch: (Instant, SystemTime),
    /// The dialog is confirmed already (late offer: media started at the ACK).
    pub confirmed: bool,
    /// No call lasts longer.
    pub max_duration: Duration,
    /// The caller withdrew recording consent (the privacy registry).
    pub consent_withdrawn: bool,
    /// The tenant's `fetch` allow-list.
    pub fetch_allow: AllowList,
    /// Test hook (`DHWANI_TEST_PANIC_DIGIT`): panic on this key, so the
    /// tests can show that one call's failure ends that call only.
    pub panic_digit: Option<char>,
    /// The beep before a message.
    pub beep: Arc<[i16]>,
    /// Timeline events one call may write; then one `limit` event, and
    /// only the end of the call after it.
    pub max_events: u32,
    /// Keys per second a caller may send (RFC 4733, INFO, in-band
    /// together); beyond it keys are ignored, with one `limit` event.
    pub max_digits_per_sec: u32,
    /// Said when a fetch has taken [`FILLER_AFTER`] (empty: nothing).
    pub fetch_filler: String,
}

/// A fetch still running this long gets the tenant's filler said.
pub const FILLER_AFTER: Duration = Duration::from_millis(700);

/// A fetch under way: its job, when it started, and the filler's state.
#[derive(Debug)]
struct Fetching {
    job: u64,
    started: Instant,
    /// The filler's prompt job, once asked for.
    filler_job: Option<u64>,
}

/// A message (`record`) or the call recording in progress.
struct Recording {
    id: String,
    paused: bool,
    /// Message only: ends at this time.
    deadline: Option<Instant>,
    /// Message only: silence that ends it, and how long it has been quiet.
    silence: Option<(Duration, Duration)>,
    frames: u64,
}

/// The core of one call.
pub struct Core {
    info: CallInfo,
    interp: Interpreter,
    media: CallMedia,
    rate: u32,
    epoch: (Instant, SystemTime),
    max_end: Instant,
    seq: i64,
    /// Time the flow's clock stood still so far, and since when it stands
    /// (hold, or the dialog not confirmed yet).
    held_total: Duration,
    held_since: Option<Instant>,
    on_hold: bool,
    play_job: Option<u64>,
    next_job: u64,
    play_barge_in: bool,
    message: Option<Recording>,
    call_rec: Option<Recording>,
    recording_ids: Vec<String>,
    messages: u32,
    consent_withdrawn: bool,
    fetch_allow: AllowList,
    panic_digit: Option<char>,
    beep: Arc<[i16]>,
    hangup_sent: bool,
    finished: bool,
    scratch: Vec<i16>,
    out: VecDeque<Output>,
    max_events: u32,
    events_capped: bool,
    /// Key bucket: tokens left and when it was last filled.
    digit_tokens: u32,
    digit_refill: Instant,
    max_digits_per_sec: u32,
    fetch_filler: String,
    fetching: Option<Fetching>,
    /// The filler is playing: its end is not the flow's prompt's.
    filler_playing: bool,
    digits_capped: bool,
    /// The queue's hold music, decoded at the caller's rate, looped while
    /// the caller waits or the agent holds.
    hold_music: Option<Vec<Arc<[i16]>>>,
    /// Waiting in a queue: its name, the hold music (decoded, looped)
    /// and when the caller joined.
    queued: Option<Queued>,
    /// Bridged to an agent.
    agent: Option<AgentLeg>,
    /// A supervisor on the call (listen, whisper, barge).
    supervisor: Option<supervise::SupervisorLeg>,
    pub(super) bridge: Option<(media::bridge::Bridge, BridgeLeg, BridgeLeg)>,
    /// For the CDR: the queue, the agent who answered, the wait.
    queue_cdr: Option<QueueCdr>,
    /// The prompt job in flight is a position announcement.
    announcing: bool,
    /// A flow's `transfer` in progress: its target, since when.
    transferring: Option<(String, Instant)>,
    /// The step whose prompts are being decoded, then played: a prompt's
    /// end is logged under the step that played it.
    play_step: String,
    playing_step: Option<String>,
    /// The flow stopped its prompt (barge-in) and moved on: the media's
    /// "interrupted" end that follows is that prompt's, not the next one's.
    stopped_step: Option<String>,
    /// The steps visited (at most [`MAX_PATH`]), for the anonymised
    /// usage; the last one's time runs since `step_since`.
    path: Vec<crate::store::StepVisit>,
    step_since: Instant,
}

/// Step visits kept per call for the usage figures (a flow that loops
/// stops being followed there).
const MAX_PATH: usize = 200;

/// A menu choice as the usage figures keep it: a key or two, `timeout`,
/// `invalid`; anything longer (digits a caller typed) is `other`.
fn usage_choice(on: &str) -> String {
    let key = |c: char| c.is_ascii_digit() || c == '*' || c == '#';
    if matches!(on, "timeout" | "invalid")
        || (on.len() <= 2 && !on.is_empty() && on.chars().all(key))
    {
        on.to_owned()
    } else {
        "other".to_owned()
    }
}

/// What the CDR says of a queued call.
#[derive(Debug, Clone, Default)]
struct QueueCdr {
    queue: String,
    agent: Option<String>,
    wait: Duration,
    talk: Duration,
}

use media::bridge::BridgeLeg;

struct Queued {
    name: String,
    joined: Instant,
    /// Keys that leave the queue (the flow's `on KEY ->`).
    keys: Vec<char>,
}

struct AgentLeg {
    media: Box<CallMedia>,
    extension: String,
    /// `extension` is a number dialled out through a trunk.
    outside: bool,
    since: Instant,
    on_hold: bool,
}

impl AgentLeg {
    /// The party as the log names it: a number outside is not named.
    fn shown(&self) -> &str {
        if self.outside {
            "a number"
        } else {
            &self.extension
        }
    }
}

impl Core {
    /// Starts the call's flow at `now` and emits the CDR's first row and
    /// the "answered" event.
    pub fn new(setup: Setup, now: Instant, recorders: &mut impl Recorders) -> Core {
        let ctx = CallContext {
            call_id: setup.info.record_id.to_string(),
            caller: setup.info.admitted.caller.clone(),
            called: setup.info.admitted.called.clone(),
            start_time: jiff::Timestamp::try_from(setup.epoch.1)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        };
        let interp = Interpreter::start(Arc::clone(&setup.info.admitted.flow), ctx, now);
        let mut core = Core {
            interp,
            media: setup.media,
            rate: setup.rate,
            epoch: setup.epoch,
            max_end: now + setup.max_duration,
            seq: 0,
            held_total: Duration::ZERO,
            held_since: (!setup.confirmed).then_some(now),
            on_hold: false,
            play_job: None,
            next_job: 0,
            play_barge_in: false,
            message: None,
            call_rec: None,
            recording_ids: Vec::new(),
            messages: 0,
            consent_withdrawn: setup.consent_withdrawn,
            fetch_allow: setup.fetch_allow,
            panic_digit: setup.panic_digit,
            beep: setup.beep,
            hangup_sent: false,
            finished: false,
            scratch: Vec::with_capacity(640),
            out: VecDeque::new(),
            max_events: setup.max_events,
            events_capped: false,
            digit_tokens: setup.max_digits_per_sec,
            digit_refill: now,
            max_digits_per_sec: setup.max_digits_per_sec,
            fetch_filler: setup.fetch_filler,
            fetching: None,
            filler_playing: false,
            digits_capped: false,
            queued: None,
            agent: None,
            supervisor: None,
            bridge: None,
            queue_cdr: None,
            announcing: false,
            transferring: None,
            play_step: String::new(),
            playing_step: None,
            stopped_step: None,
            hold_music: None,
            path: Vec::new(),
            step_since: now,
            info: setup.info,
        };
        core.out
            .push_back(Output::Record(Box::new(Record::Call(Box::new(
                call_record(&core.info),
            )))));
        let flow = &core.info.admitted.flow;
        let detail = serde_json::json!({"event": "answered", "codec": core.media.codec().name(), "flow": flow.name, "version": flow.version.to_string(), "trunk": core.info.admitted.trunk});
        core.log(now, "", "sip", detail);
        core.pump(now, recorders);
        core
    }

    /// The call's details.
    pub fn info(&self) -> &CallInfo {
        &self.info
    }

    /// The media core (counters).
    pub fn media(&self) -> &CallMedia {
        &self.media
    }

    /// The flow's interpreter (state, for tests and logs).
    pub fn interpreter(&self) -> &Interpreter {
        &self.interp
    }

    /// True once [`Output::Finished`] was emitted.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to send [`Input::Timeout`]: the next media frame, the flow's
    /// next deadline (in real time), or the longest call.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        let mut t = self.media.poll_timeout();
        if let Some(a) = &self.agent {
            t = t.min(a.media.poll_timeout());
        }
        if let Some(s) = &self.supervisor {
            t = t.min(s.media.poll_timeout());
        }
        if self.held_since.is_none()
            && let Some(f) = self.interp.poll_timeout()
        {
            t = t.min(f + self.held_total);
        }
        if !self.hangup_sent {
            t = t.min(self.max_end);
        }
        Some(t)
    }

    /// Feeds one input; then drain [`Core::poll_output`].
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>, rec: &mut impl Recorders) {
        if self.finished {
            return;
        }
        match input {
            Input::Datagram {
                leg: Leg::Caller,
                from,
                bytes,
            } => self.media.handle_datagram(now, from, bytes),
            Input::Datagram {
                leg: Leg::Agent,
                from,
                bytes,
            } => {
                if let Some(a) = self.agent.as_mut() {
                    a.media.handle_datagram(now, from, bytes);
                }
            }
            Input::Datagram {
                leg: Leg::Supervisor,
                from,
                bytes,
            } => {
                if let Some(s) = self.supervisor.as_mut() {
                    s.media.handle_datagram(now, from, bytes);
                }
            }
            Input::AgentAnswered {
                media,
                agent,
                outside,
            } => self.agent_answered(now, media, agent, outside),
            Input::SupervisorJoined {
                media,
                extension,
                mode,
            } => self.supervisor_joined(now, media, extension, mode),
            Input::SupervisorSip(ev) => self.supervisor_sip(now, ev),
            Input::Sip(SipEvent::Queue(ev)) => self.queue_event(now, ev),
            Input::Timeout => {
                self.media.handle_timeout(now);
                if let Some(a) = self.agent.as_mut()
                    && a.media.poll_timeout() <= now
                {
                    a.media.handle_timeout(now);
                }
                if let Some(s) = self.supervisor.as_mut()
                    && s.media.poll_timeout() <= now
                {
                    s.media.handle_timeout(now);
                }
                self.pump(now, rec);
                if self.held_since.is_none()
                    && self
                        .interp
                        .poll_timeout()
                        .is_some_and(|t| t + self.held_total <= now)
                {
                    self.flow_input(now, FlowInput::Timeout);
                }
                if now >= self.max_end {
                    self.request_hangup(Party::System, "max_call_secs reached".into());
                }
                self.fetch_timer(now);
            }
            Input::Sip(SipEvent::Confirmed) => self.media.handle_command(now, Command::Confirm),
            Input::Sip(SipEvent::InfoDigit(k)) => {
                self.media.handle_command(now, Command::InfoDigit(k))
            }
            Input::Sip(SipEvent::MediaUpdate(u)) => {
                let send = follow_media_update(&mut self.media, now, &u);
                if u.moved {
                    tracing::info!(call_id = %self.info.sip_call_id, record_id = %self.info.record_id, remote = %u.remote, "re-INVITE moved the media");
                }
                match (!send, self.on_hold) {
                    (true, false) => {
                        self.on_hold = true;
                        self.stop_clock(now);
                        self.log(now, "", "sip", serde_json::json!({"event": "hold"}));
                    }
                    (false, true) => {
                        self.on_hold = false;
                        self.start_clock(now);
                        self.log(now, "", "sip", serde_json::json!({"event": "unhold"}));
                    }
                    _ => {}
                }
            }
            Input::Sip(SipEvent::Ended { by, cause }) => {
                self.finish(now, by, cause, rec);
                return;
            }
            Input::Prompts { job, result } if self.filler_ready(now, job, &result) => {}
            Input::Fetched {
                job,
                status,
                result,
                elapsed,
            } => {
                self.fetched(now, (job, status, result, elapsed));
            }
            Input::Prompts { job, result } => {
                if self.play_job == Some(job) {
                    self.play_job = None;
                    match result {
                        Ok(pcm) if self.queued.is_some() && self.announcing => {
                            // A position announcement: over the hold
                            // music, which resumes after it.
                            self.announcing = false;
                            self.media.handle_command(now, Command::Stop);
                            self.media.handle_command(
                                now,
                                Command::Play {
                                    prompts: pcm,
                                    barge_in: false,
                                },
                            );
                        }
                        Ok(pcm) if self.queued.is_some() => {
                            // The hold music: looped until the queue ends.
                            self.hold_music = Some(pcm.clone());
                            self.media.handle_command(
                                now,
                                Command::Play {
                                    prompts: pcm,
                                    barge_in: false,
                                },
                            );
                        }
                        Ok(pcm) => {
                            self.playing_step = Some(self.play_step.clone());
                            self.media.handle_command(
                                now,
                                Command::Play {
                                    prompts: pcm,
                                    barge_in: self.play_barge_in,
                                },
                            )
                        }
                        Err(e) if self.announcing => {
                            // The announcement cannot be said (no speech
                            // engine): the hold music goes on.
                            self.announcing = false;
                            tracing::warn!(call_id = %self.info.sip_call_id, record_id = %self.info.record_id, error = %e, "queue position not announced");
                        }
                        Err(e) => {
                            tracing::error!(call_id = %self.info.sip_call_id, record_id = %self.info.record_id, error = %e, "prompt cannot play");
                            let step = self.interp.step_name().to_owned();
                            self.log(now, &step, "error", serde_json::json!({"prompt": e}));
                            self.flow_input(now, FlowInput::PromptFinished);
                        }
                    }
                }
            }
        }
        self.pump(now, rec);
    }

    fn wall(&self, now: Instant) -> SystemTime {
        self.epoch.1 + now.saturating_duration_since(self.epoch.0)
    }

    /// The interpreter's clock: real time minus the time it stood still.
    fn flow_now(&self, now: Instant) -> Instant {
        let held = self.held_total
            + self
                .held_since
                .map_or(Duration::ZERO, |h| now.saturating_duration_since(h));
        now.checked_sub(held).unwrap_or(now)
    }

    fn stop_clock(&mut self, now: Instant) {
        if self.held_since.is_none() {
            self.held_since = Some(now);
        }
    }

    fn start_clock(&mut self, now: Instant) {
        if let Some(h) = self.held_since.take() {
            self.held_total += now.saturating_duration_since(h);
        }
    }

    fn flow_input(&mut self, now: Instant, input: FlowInput) {
        let t = self.flow_now(now);
        self.interp.handle_input(t, input);
    }

    /// Follows the flow's steps for the usage figures: a `step` event
    /// ends the visit before it and starts one; a `branch` is the choice
    /// the current visit ends with.
    fn follow_path(&mut self, now: Instant, kind: &str, fields: &[(String, String)]) {
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        match kind {
            "step" if self.path.len() < MAX_PATH => {
                if let Some(last) = self.path.last_mut() {
                    last.ms = now.saturating_duration_since(self.step_since).as_millis() as i64;
                }
                self.step_since = now;
                self.path.push(crate::store::StepVisit {
                    step: field("name").unwrap_or_default().to_owned(),
                    ms: 0,
                    choice: None,
                });
            }
            "branch" => {
                if let (Some(last), Some(on)) = (self.path.last_mut(), field("on"))
                    && last.choice.is_none()
                {
                    last.choice = Some(usage_choice(on));
                }
            }
            _ => {}
        }
    }

    fn log(&mut self, now: Instant, step: &str, kind: &str, detail: serde_json::Value) {
        // A caller cannot grow the timeline without bound: past the cap
        // one `limit` event, then only the end of the call.
        let is_end = kind == "sip" && detail.get("event").is_some_and(|e| e == "ended");
        if self.seq >= i64::from(self.max_events) && !is_end {
            if !self.events_capped {
                self.events_capped = true;
                tracing::warn!(call_id = %self.info.sip_call_id, record_id = %self.info.record_id, limit = self.max_events, "timeline cap reached; further events of this call are not logged");
                self.push_event(
                    now,
                    step,
                    "limit",
                    serde_json::json!({"what": "timeline events", "limit": self.max_events}),
                );
            }
            return;
        }
        self.push_event(now, step, kind, detail);
    }

    fn push_event(&mut self, now: Instant, step: &str, kind: &str, detail: serde_json::Value) {
        let wall = self.wall(now);
        let e = LogEvent {
            call_id: self.info.record_id.to_string(),
            tenant: self.info.admitted.tenant_id.to_string(),
            seq: self.seq,
            at_ms: ms(wall),
            offset_ms: now.saturating_duration_since(self.epoch.0).as_millis() as i64,
            step: step.to_owned(),
            kind: kind.to_owned(),
            detail: detail.to_string(),
        };
        self.seq += 1;
        self.out
            .push_back(Output::Record(Box::new(Record::Event(e))));
    }

    /// A token bucket of `max_digits_per_sec`, refilled every second.
    fn take_digit_token(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.digit_refill);
        if elapsed >= Duration::from_secs(1) {
            self.digit_tokens = self.max_digits_per_sec;
            self.digit_refill = now;
        }
        if self.digit_tokens == 0 {
            return false;
        }
        self.digit_tokens -= 1;
        true
    }

    fn request_hangup(&mut self, by: Party, reason: String) {
        if !self.hangup_sent {
            self.hangup_sent = true;
            self.out.push_back(Output::Hangup { by, reason });
        }
    }

    /// Runs the flow's steps and the media's outputs until both are quiet.
    fn pump(&mut self, now: Instant, rec: &mut impl Recorders) {
        loop {
            let mut busy = self.run_steps(now, rec);
            while let Some(out) = self.media.poll_output() {
                busy = true;
                self.media_output(now, out, rec);
            }
            busy |= self.pump_agent(now);
            busy |= self.pump_supervisor(now);
            if !busy {
                break;
            }
        }
        if self.interp.is_ended()
            && !self.hangup_sent
            && self.play_job.is_none()
            && self.agent.is_none()
            && self.queued.is_none()
            && self.transferring.is_none()
        {
            // The flow ended without a hangup (queued, transferred, error).
            let reason = outcome_text(self.interp.outcome());
            self.request_hangup(Party::Dhwani, reason);
        }
    }

    fn media_output(&mut self, now: Instant, out: MediaOutput, rec: &mut impl Recorders) {
        match out {
            MediaOutput::Transmit { to, bytes, rtcp } => self.out.push_back(Output::Transmit {
                leg: Leg::Caller,
                to,
                bytes,
                rtcp,
            }),
            MediaOutput::Event(Event::Digit { key, source }) => {
                if !self.take_digit_token(now) {
                    if !self.digits_capped {
                        self.digits_capped = true;
                        tracing::warn!(call_id = %self.info.sip_call_id, record_id = %self.info.record_id, limit = self.max_digits_per_sec, "caller sends keys faster than the limit; extra keys ignored");
                        let step = self.interp.step_name().to_owned();
                        self.log(now, &step, "limit", serde_json::json!({"what": "keys per second", "limit": self.max_digits_per_sec}));
                    }
                    return;
                }
                if let Some(a) = self.agent.as_mut() {
                    // Bridged: the key goes on to the agent (RFC 4733);
                    // the flow has ended and hears no keys.
                    a.media.handle_command(now, Command::SendDigit(key));
                    return;
                }
                if let Some(q) = &self.queued {
                    // Waiting: only the queue's own keys do anything.
                    if q.keys.contains(&key) {
                        self.leave_queue_by_key(now, key);
                    }
                    return;
                }
                if self.panic_digit == Some(key) {
                    #[allow(clippy::panic)]
                    {
                        panic!("DHWANI_TEST_PANIC_DIGIT pressed");
                    }
                }
                let (call_id, record_id) = (&self.info.sip_call_id, &self.info.record_id);
                if self.interp.is_collecting_sensitive() {
                    // Never in clear, not even with `[log] personal_data`.
                    tracing::info!(%call_id, %record_id, source = source.name(), "DTMF received (sensitive)");
                } else {
                    tracing::info!(%call_id, %record_id, digit = %crate::redact::key(key), source = source.name(), "DTMF received");
                }
                let step = self.interp.step_name().to_owned();
                self.log(
                    now,
                    &step,
                    "dtmf",
                    serde_json::json!({"source": source.name()}),
                );
                self.flow_input(now, FlowInput::Digit(key));
                // What the key makes the flow do (stop its prompt on
                // barge-in) happens before the media's next event, which
                // may be the end of that very prompt.
                self.run_steps(now, rec);
            }
            MediaOutput::Event(Event::PlaybackFinished { .. }) if self.filler_playing => {
                // The fetch filler, not the flow's prompt.
                self.filler_playing = false;
            }
            MediaOutput::Event(Event::PlaybackFinished { interrupted }) => {
                if self.queued.is_some() || self.agent.as_ref().is_some_and(|a| a.on_hold) {
                    // Hold music ended: again, unless it was stopped.
                    if !interrupted {
                        self.play_hold_music(now);
                    }
                    return;
                }
                if self.agent.is_some() {
                    return;
                }
                if let Some(step) = self.stopped_step.take() {
                    // The end of a prompt the flow left (barge-in): logged
                    // under its step; the flow's current prompt goes on.
                    self.log(
                        now,
                        &step,
                        "played",
                        serde_json::json!({"interrupted": interrupted}),
                    );
                    return;
                }
                let step = self
                    .playing_step
                    .take()
                    .unwrap_or_else(|| self.interp.step_name().to_owned());
                self.log(
                    now,
                    &step,
                    "played",
                    serde_json::json!({"interrupted": interrupted}),
                );
                self.flow_input(now, FlowInput::PromptFinished);
            }
            MediaOutput::Event(Event::Confirmed) => {
                if !self.on_hold {
                    self.start_clock(now);
                }
            }
            MediaOutput::Event(Event::Latched(addr)) => {
                tracing::debug!(call_id = %self.info.sip_call_id, %addr, "RTP peer learned")
            }
            MediaOutput::Event(Event::MediaTimeout) => {
                tracing::info!(call_id = %self.info.sip_call_id, record_id = %self.info.record_id, "no RTP: media timeout");
                self.request_hangup(Party::System, "media timeout".into());
            }
            MediaOutput::Tap { caller, far_end } => {
                if let Some((b, c, a)) = self.bridge.as_mut() {
                    b.put(*c, &caller);
                    if let Some(f) = b.take(*a)
                        && let Some(agent) = self.agent.as_mut()
                    {
                        agent.media.handle_command(now, Command::Feed(f));
                    }
                }
                self.tap(now, &caller, &far_end, rec)
            }
        }
    }

    /// Carries out what the flow asked for; true if it asked anything.
    fn run_steps(&mut self, now: Instant, rec: &mut impl Recorders) -> bool {
        let mut any = false;
        while let Some(step) = self.interp.poll_output() {
            any = true;
            let at = self.interp.step_name().to_owned();
            match step {
                Step::Play { prompts, barge_in } => {
                    if let Some(job) = self.play_job.take() {
                        self.out.push_back(Output::CancelPrompts { job });
                    }
                    self.play_step = at.clone();
                    self.next_job += 1;
                    self.play_job = Some(self.next_job);
                    self.play_barge_in = barge_in;
                    self.out.push_back(Output::ResolvePrompts {
                        job: self.next_job,
                        prompts,
                        rate: self.rate,
                    });
                }
                Step::StopPlayback => {
                    if let Some(job) = self.play_job.take() {
                        self.out.push_back(Output::CancelPrompts { job });
                    }
                    // What was playing ends "interrupted" (now, or it
                    // already did on the key); the flow does not wait for
                    // it any more.
                    self.stopped_step = self.playing_step.take();
                    self.media.handle_command(now, Command::Stop);
                }
                Step::Log(ev) => {
                    self.follow_path(now, ev.kind, &ev.fields);
                    let mut m = serde_json::Map::new();
                    for (k, v) in ev.fields {
                        m.insert(k, serde_json::Value::String(v));
                    }
                    self.log(now, &ev.step, ev.kind, serde_json::Value::Object(m));
                }
                Step::Record { max, beep, silence } => {
                    self.start_message(now, max, beep, silence, &at, rec)
                }
                Step::StopRecord => self.finish_message(now, rec),
                Step::Grievance { category, message } => {
                    // The caller by pseudonym: the ticket outlives an
                    // erasure of the number.
                    let tenant = self.info.admitted.tenant_id.to_string();
                    let subject = crate::redact::pseudonym(&tenant, &self.info.admitted.caller)
                        .unwrap_or_else(|| "anon-unknown".to_owned());
                    let mut g = crate::store::rights::GrievanceRow::new(
                        &tenant,
                        &subject,
                        &category,
                        "phone",
                        ms(self.wall(now)),
                    );
                    g.call_id = Some(self.info.record_id.to_string());
                    g.recording_id = message;
                    self.log(
                        now,
                        &at,
                        "grievance",
                        serde_json::json!({"event": "opened", "ticket": g.grievance_id, "category": category}),
                    );
                    self.out
                        .push_back(Output::Record(Box::new(Record::Grievance(Box::new(g)))));
                }
                Step::Consent { .. } => {
                    // The interpreter logs the answer itself; nothing else
                    // to do until a `recording start`.
                }
                Step::Recording(op) => self.call_recording(now, op, &at, rec),
                Step::Queue {
                    name,
                    hold,
                    max_wait,
                    announce_every,
                    keys,
                    priority,
                } => {
                    // The interpreter logged `joined` itself.
                    let _ = &at;
                    self.queued = Some(Queued {
                        name: name.clone(),
                        joined: now,
                        keys,
                    });
                    if let Some(file) = hold {
                        if let Some(job) = self.play_job.take() {
                            self.out.push_back(Output::CancelPrompts { job });
                        }
                        self.next_job += 1;
                        self.play_job = Some(self.next_job);
                        self.play_barge_in = false;
                        self.out.push_back(Output::ResolvePrompts {
                            job: self.next_job,
                            prompts: vec![Playable::File(file)],
                            rate: self.rate,
                        });
                    }
                    self.out.push_back(Output::Enqueue {
                        name,
                        max_wait,
                        priority: i32::try_from(priority).unwrap_or(0),
                        announce_every,
                    });
                }
                Step::Transfer { target } => {
                    self.transferring = Some((target.clone(), now));
                    self.out.push_back(Output::Transfer { target });
                }
                Step::Fetch {
                    method,
                    url,
                    body,
                    timeout,
                } => match self.fetch_allow.check(&url) {
                    Ok(()) => {
                        self.next_job += 1;
                        self.fetching = Some(Fetching {
                            job: self.next_job,
                            started: now,
                            filler_job: None,
                        });
                        let post = match method {
                            ivr_dsl::ast::Method::Post => Some(body.unwrap_or_default()),
                            ivr_dsl::ast::Method::Get => None,
                        };
                        self.out.push_back(Output::Fetch {
                            job: self.next_job,
                            post,
                            url,
                            timeout,
                        });
                    }
                    // The reason only: the URL may carry a caller's values.
                    Err(ivr_dsl::Error::FetchDenied { reason, .. }) => {
                        self.flow_input(now, FlowInput::FetchDone(Err(reason.to_owned().into())));
                    }
                    Err(_) => {
                        self.flow_input(
                            now,
                            FlowInput::FetchDone(Err("not allowed".to_owned().into())),
                        );
                    }
                },
                Step::Hangup { reason } => {
                    self.request_hangup(Party::Dhwani, format!("flow: {reason}"))
                }
            }
        }
        any
    }

    /// The end: the flow learns the caller left, recorders close, the CDR.
    fn finish(&mut self, now: Instant, by: Party, cause: String, rec: &mut impl Recorders) {
        if let Some(job) = self.play_job.take() {
            self.out.push_back(Output::CancelPrompts { job });
        }
        if !self.interp.is_ended() {
            self.flow_input(now, FlowInput::HangUp);
            self.run_steps(now, rec);
        }
        if let Some(q) = self.queued.take() {
            // Hung up while waiting.
            self.waited(&q.name, now.saturating_duration_since(q.joined));
        }
        self.end_supervision(now, "the call ended");
        if let Some(a) = self.agent.take() {
            if let Some(c) = self.queue_cdr.as_mut() {
                c.talk += now.saturating_duration_since(a.since);
            }
            let talk = now.saturating_duration_since(a.since).as_secs_f64();
            self.log(
                now,
                "",
                "queue",
                serde_json::json!({"event": "bridge ended", "agent": a.extension, "talk_secs": (talk * 10.0).round() / 10.0}),
            );
        }
        self.queued = None;
        self.finish_message(now, rec);
        self.stop_call_recording(now, rec);
        self.run_steps(now, rec);
        // Outputs of the media (frames, reports) are of no use any more.
        while self.media.poll_output().is_some() {}
        self.log(
            now,
            "",
            "sip",
            serde_json::json!({"event": "ended", "by": by.name(), "cause": cause}),
        );
        let mut r = call_record(&self.info);
        if let Some(last) = self.path.last_mut() {
            last.ms = now.saturating_duration_since(self.step_since).as_millis() as i64;
        }
        r.path = std::mem::take(&mut self.path);
        r.end_ms = Some(ms(self.wall(now)));
        r.duration_ms = Some(now.saturating_duration_since(self.epoch.0).as_millis() as i64);
        r.hangup_by = Some(by.name().into());
        r.hangup_cause = Some(cause);
        r.outcome = Some(outcome_text(self.interp.outcome()));
        r.recording_id = self.recording_ids.first().cloned();
        if let Some(q) = &self.queue_cdr {
            // A flow's transfer to an agent names no queue.
            r.queue = (!q.queue.is_empty()).then(|| q.queue.clone());
            r.agent = q.agent.clone();
            r.wait_ms = Some(q.wait.as_millis() as i64);
            r.talk_ms = q.agent.as_ref().map(|_| q.talk.as_millis() as i64);
        }
        let m = &self.media;
        r.timing = Some(crate::store::FrameTiming {
            frames: m.frames as i64,
            late_2ms: m.late_2ms as i64,
            late_5ms: m.late_5ms as i64,
            late_10ms: m.late_10ms as i64,
            late_20ms: m.late_20ms as i64,
            skipped_frames: m.skipped_frames as i64,
        });
        self.out
            .push_back(Output::Record(Box::new(Record::Call(Box::new(r)))));
        let m = &self.media;
        tracing::info!(
            call_id = %self.info.sip_call_id,
            record_id = %self.info.record_id,
            outcome = %outcome_text(self.interp.outcome()),
            frames = m.frames,
            late_2ms = m.late_2ms,
            late_5ms = m.late_5ms,
            late_10ms = m.late_10ms,
            late_20ms = m.late_20ms,
            skipped = m.skipped_frames,
            "call finished"
        );
        self.finished = true;
        self.out.push_back(Output::Finished);
    }
}

mod bridge;
mod fetch;
mod recording;
mod supervise;

#[cfg(test)]
mod tests;

/// A leg's re-INVITE (or the caller's): its media follows the new remote
/// address, payload types and direction. Returns whether the peer now
/// sends (false: it put us on hold).
fn follow_media_update(media: &mut CallMedia, now: Instant, u: &sip::sdp::MediaUpdate) -> bool {
    let (send, receive) = (u.direction.sends(), u.direction.receives());
    media.handle_command(
        now,
        Command::Remote {
            remote: u.remote,
            payload_type: media::rtp::PayloadType(u.payload_type),
            telephone_event: u.telephone_event.map(media::rtp::PayloadType),
        },
    );
    media.handle_command(now, Command::Direction { send, receive });
    send
}
