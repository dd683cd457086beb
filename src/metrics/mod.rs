//! What the server reports about itself: the Prometheus metrics served at
//! `/metrics` ([`Metrics`]) and the table of live calls behind `dhwani
//! calls live` and the API's `/v1/calls/live` ([`live::LiveCalls`]).
//!
//! Most figures are read off the interaction log as it is written
//! ([`Metrics::observe`] sees every CDR row and timeline event before the
//! store writer queues it), so a metric and the stored record of the same
//! call cannot disagree. The SIP core's and the ACD's counters are copied
//! in once a second by the SIP driver; process figures are read at scrape
//! time.
//!
//! Labels are bounded: tenants (from the config), outcomes, directions,
//! sources and event names are fixed sets of the code. No number, call id
//! or address is ever a label.

pub mod live;

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::writer::Record;

/// `tenant`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabel {
    /// The tenant's id (from the config).
    pub tenant: String,
}

/// `tenant`, `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The tenant's id.
    pub tenant: String,
    /// One of [`outcome_class`]'s names.
    pub outcome: &'static str,
}

/// `direction`: `in` or `out`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// `in` or `out`.
    pub direction: &'static str,
}

/// `over_ms`: 2, 5, 10 or 20.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LateLabel {
    /// The threshold in milliseconds.
    pub over_ms: &'static str,
}

/// `source` of a key press, `kind` of a flow error, `event` of a
/// security event, `outcome` of a fetch or webhook: a name from a fixed
/// set of the code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabel {
    /// The name.
    pub name: String,
}

/// `tenant`, `state` of agents.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentStateLabels {
    /// The tenant's id.
    pub tenant: String,
    /// `available`, `ringing`, `on-call`, `wrap-up`, `paused`,
    /// `logged-out`, `unreachable`.
    pub state: String,
}

/// `route` (the matched path template, never the raw path) and `status`
/// class (`2xx` .. `5xx`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route template, e.g. `/v1/calls/{id}`; `unmatched` for 404s.
    pub route: String,
    /// `2xx`, `4xx`, ...
    pub status: &'static str,
}

/// The SIP core's counters, copied in by the driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct SipFigures {
    /// Messages that did not parse.
    pub malformed: u64,
    /// Sources banned for flooding.
    pub bans: u64,
    /// Messages dropped unanswered (banned source, over its cap).
    pub flood_drops: u64,
    /// REGISTERs accepted.
    pub registrations_accepted: u64,
    /// Calls in the SIP core now (ringing or answered).
    pub calls_in_core: u64,
    /// Agent registrations (bindings) held now.
    pub bindings: u64,
}

/// Counters copied from elsewhere: the last value seen, so that a
/// Prometheus counter moves by the difference.
#[derive(Debug, Default)]
struct Copied {
    sip: SipFigures,
    store_written: u64,
    store_batches: u64,
    store_write_micros: u64,
    store_failures: u64,
    events_dropped: u64,
}

/// The store writer's figures (`store::writer::WriterStats`), as read.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreFigures {
    /// Records written.
    pub written: u64,
    /// Transactions committed.
    pub batches: u64,
    /// Time spent in them, microseconds.
    pub write_micros: u64,
    /// Batches that failed (retried).
    pub failures: u64,
    /// Records waiting to be written now.
    pub backlog: u64,
    /// Timeline events dropped because the queue was full.
    pub events_dropped: u64,
}

/// The server's metrics. One per server; cheap to share (`Arc`).
pub struct Metrics {
    registry: Registry,
    /// The live calls (also the source of `calls_active`).
    pub live: live::LiveCalls,
    calls_active: Family<TenantLabel, Gauge>,
    calls: Family<OutcomeLabels, Counter>,
    attempts: Family<TenantLabel, Counter>,
    setup: Histogram,
    rtp_packets: Family<DirectionLabel, Counter>,
    rtp_lost: Counter,
    jitter: Histogram,
    frames: Counter,
    frames_late: Family<LateLabel, Counter>,
    frames_skipped: Counter,
    dtmf: Family<NameLabel, Counter>,
    flow_errors: Family<NameLabel, Counter>,
    recording_bytes: Counter,
    recording_failures: Counter,
    recording_syncs: Counter,
    fetches: Family<NameLabel, Counter>,
    webhooks: Family<NameLabel, Counter>,
    store_written: Counter,
    store_batches: Counter,
    store_write_seconds: prometheus_client::metrics::counter::Counter<f64, AtomicU64>,
    store_failures: Counter,
    store_write_latency: Histogram,
    store_backlog: Gauge,
    events_dropped: Counter,
    security: Family<NameLabel, Counter>,
    sip_malformed: Counter,
    sip_bans: Counter,
    sip_flood_drops: Counter,
    sip_registrations: Counter,
    sip_calls: Gauge,
    bindings: Gauge,
    agents: Family<AgentStateLabels, Gauge>,
    http: Family<HttpLabels, Counter>,
    rss: Gauge,
    open_fds: Gauge,
    copied: Mutex<Copied>,
    store_source: std::sync::OnceLock<Box<dyn Fn() -> StoreFigures + Send + Sync>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// One call's media totals so far (see [`Metrics::media_progress`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaTally {
    /// RTP packets received from the caller.
    pub received: u64,
    /// RTP packets sent to the caller.
    pub sent: u64,
    /// Frames lost (concealed) from the caller.
    pub lost: u64,
    /// Frames produced.
    pub frames: u64,
    /// Frames produced more than 2 ms late.
    pub late_2ms: u64,
    /// ... more than 5 ms.
    pub late_5ms: u64,
    /// ... more than 10 ms.
    pub late_10ms: u64,
    /// ... more than 20 ms.
    pub late_20ms: u64,
    /// Frames skipped because the driver was far too late.
    pub skipped_frames: u64,
}

/// The outcome class of a finished call's CDR (`outcome` label).
pub fn outcome_class(outcome: Option<&str>) -> &'static str {
    let o = outcome.unwrap_or("unfinished");
    if o.starts_with("hangup") {
        "completed"
    } else if o == "caller hung up" {
        "caller_hung_up"
    } else if o.starts_with("queued") {
        "queued"
    } else if o.starts_with("transferred") {
        "transferred"
    } else if o.starts_with("error") {
        "error"
    } else if o == "not answered" {
        "not_answered"
    } else if o.starts_with("supervised") {
        "supervised"
    } else if o == "unfinished" {
        "unfinished"
    } else {
        "other"
    }
}

/// Names a label may take from a timeline event's detail: at most 32
/// bytes of `[a-z0-9_ -]`, else `other` (a label never carries what a
/// caller or a peer sent).
fn bounded_name(s: &str) -> String {
    if !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_ -".contains(&b))
    {
        s.replace([' ', '-'], "_")
    } else {
        "other".into()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set, every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("dhwani");
        let calls_active = Family::<TenantLabel, Gauge>::default();
        registry.register(
            "calls_active",
            "Answered calls in progress, by tenant",
            calls_active.clone(),
        );
        let calls = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "calls",
            "Calls finished, by tenant and outcome",
            calls.clone(),
        );
        let attempts = Family::<TenantLabel, Counter>::default();
        registry.register(
            "call_attempts",
            "Calls admitted to a tenant (answered or not); rate() gives attempts per second",
            attempts.clone(),
        );
        let setup = Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]);
        registry.register(
            "call_setup_seconds",
            "Time from a call's INVITE to its 200 OK",
            setup.clone(),
        );
        let rtp_packets = Family::<DirectionLabel, Counter>::default();
        registry.register(
            "rtp_packets",
            "RTP packets of finished calls' caller legs, by direction",
            rtp_packets.clone(),
        );
        let rtp_lost = Counter::default();
        registry.register(
            "rtp_lost_frames",
            "Frames the jitter buffer handed out as lost (finished calls)",
            rtp_lost.clone(),
        );
        let jitter = Histogram::new([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1]);
        registry.register(
            "rtp_jitter_seconds",
            "Interarrival jitter of each finished call's caller leg (RFC 3550), at its end",
            jitter.clone(),
        );
        let frames = Counter::default();
        registry.register(
            "frames",
            "Media frames sent by finished calls",
            frames.clone(),
        );
        let frames_late = Family::<LateLabel, Counter>::default();
        registry.register(
            "frames_late",
            "Frames sent later than over_ms after their deadline (finished calls; a frame late by 12 ms counts under 2, 5 and 10)",
            frames_late.clone(),
        );
        let frames_skipped = Counter::default();
        registry.register(
            "frames_skipped",
            "Frames skipped because a call's task stalled",
            frames_skipped.clone(),
        );
        let dtmf = Family::<NameLabel, Counter>::default();
        registry.register(
            "dtmf",
            "Keys callers pressed, by how they arrived (rfc4733, info, inband)",
            dtmf.clone(),
        );
        let flow_errors = Family::<NameLabel, Counter>::default();
        registry.register(
            "flow_errors",
            "Errors in flows' timelines, by what failed",
            flow_errors.clone(),
        );
        let recording_bytes = Counter::default();
        registry.register(
            "recording_bytes",
            "Audio bytes (16-bit PCM) written to encrypted recordings",
            recording_bytes.clone(),
        );
        let recording_failures = Counter::default();
        registry.register(
            "recording_failures",
            "Recordings that failed to start or to be written",
            recording_failures.clone(),
        );
        let recording_syncs = Counter::default();
        registry.register(
            "recording_syncs",
            "Syncs of the recordings' filesystem (one for every open recording)",
            recording_syncs.clone(),
        );
        let fetches = Family::<NameLabel, Counter>::default();
        registry.register(
            "fetches",
            "Flows' HTTPS fetches, by outcome",
            fetches.clone(),
        );
        let webhooks = Family::<NameLabel, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts, by outcome (delivered, failed, dead_lettered)",
            webhooks.clone(),
        );
        let store_written = Counter::default();
        registry.register(
            "store_records_written",
            "Interaction-log records written to the store",
            store_written.clone(),
        );
        let store_batches = Counter::default();
        registry.register(
            "store_batches",
            "Store write transactions committed",
            store_batches.clone(),
        );
        let store_write_seconds =
            prometheus_client::metrics::counter::Counter::<f64, AtomicU64>::default();
        registry.register(
            "store_write_seconds",
            "Time spent in store write transactions; divided by store_batches, the mean write latency",
            store_write_seconds.clone(),
        );
        let store_failures = Counter::default();
        registry.register(
            "store_write_failures",
            "Store write transactions that failed (their records are retried)",
            store_failures.clone(),
        );
        let store_write_latency = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
        ]);
        registry.register(
            "store_write_latency_seconds",
            "Duration of each store write transaction (committed or failed)",
            store_write_latency.clone(),
        );
        let store_backlog = Gauge::default();
        registry.register(
            "store_backlog",
            "Interaction-log records waiting to be written",
            store_backlog.clone(),
        );
        let events_dropped = Counter::default();
        registry.register(
            "timeline_events_dropped",
            "Timeline events dropped because the writer's queue was full",
            events_dropped.clone(),
        );
        let security = Family::<NameLabel, Counter>::default();
        registry.register(
            "security_events",
            "Security events (the log lines of target `security`), by event",
            security.clone(),
        );
        let sip_malformed = Counter::default();
        registry.register(
            "sip_malformed",
            "SIP messages that did not parse",
            sip_malformed.clone(),
        );
        let sip_bans = Counter::default();
        registry.register(
            "sip_flood_bans",
            "Sources banned for flooding",
            sip_bans.clone(),
        );
        let sip_flood_drops = Counter::default();
        registry.register(
            "sip_flood_drops",
            "SIP messages dropped unanswered (banned source, over its cap)",
            sip_flood_drops.clone(),
        );
        let sip_registrations = Counter::default();
        registry.register(
            "sip_registrations",
            "REGISTER requests accepted",
            sip_registrations.clone(),
        );
        let sip_calls = Gauge::default();
        registry.register(
            "sip_calls",
            "Calls in the SIP core (ringing or answered)",
            sip_calls.clone(),
        );
        let bindings = Gauge::default();
        registry.register(
            "registrations",
            "Agent phone registrations (bindings) held by this node",
            bindings.clone(),
        );
        let agents = Family::<AgentStateLabels, Gauge>::default();
        registry.register(
            "agents",
            "Queue members, by tenant and state",
            agents.clone(),
        );
        let http = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Admin API requests, by route and status class",
            http.clone(),
        );
        let rss = Gauge::default();
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the server process",
            rss.clone(),
        );
        let open_fds = Gauge::default();
        registry.register(
            "process_open_fds",
            "Open file descriptors of the server process",
            open_fds.clone(),
        );
        Metrics {
            registry,
            live: live::LiveCalls::default(),
            calls_active,
            calls,
            attempts,
            setup,
            rtp_packets,
            rtp_lost,
            jitter,
            frames,
            frames_late,
            frames_skipped,
            dtmf,
            flow_errors,
            recording_bytes,
            recording_failures,
            recording_syncs,
            fetches,
            webhooks,
            store_written,
            store_batches,
            store_write_seconds,
            store_failures,
            store_write_latency,
            store_backlog,
            events_dropped,
            security,
            sip_malformed,
            sip_bans,
            sip_flood_drops,
            sip_registrations,
            sip_calls,
            bindings,
            agents,
            http,
            rss,
            open_fds,
            copied: Mutex::new(Copied::default()),
            store_source: std::sync::OnceLock::new(),
        }
    }

    /// Every tenant's series start at zero (so a dashboard shows 0, not
    /// nothing, before the first call).
    pub fn tenants<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        for t in ids {
            let tenant = t.to_owned();
            let _ = self.calls_active.get_or_create(&TenantLabel {
                tenant: tenant.clone(),
            });
            let _ = self.attempts.get_or_create(&TenantLabel { tenant });
        }
    }

    /// Sees one record of the interaction log (before it is queued for
    /// the store): CDR rows start and end live calls and count outcomes;
    /// timeline events move a live call's step and count keys and errors.
    pub fn observe(&self, r: &Record) {
        match r {
            Record::Call(c) => match c.end_ms {
                None => {
                    if self.live.start(c) {
                        let t = TenantLabel {
                            tenant: c.tenant.clone(),
                        };
                        self.calls_active.get_or_create(&t).inc();
                        self.attempts.get_or_create(&t).inc();
                        if let Some(a) = c.answer_ms {
                            self.setup.observe((a - c.start_ms).max(0) as f64 / 1000.0);
                        }
                    }
                }
                Some(_) => {
                    let t = TenantLabel {
                        tenant: c.tenant.clone(),
                    };
                    if self.live.end(&c.call_id) {
                        self.calls_active.get_or_create(&t).dec();
                    } else {
                        // Never answered: its only row is the last.
                        self.attempts.get_or_create(&t).inc();
                    }
                    self.calls
                        .get_or_create(&OutcomeLabels {
                            tenant: c.tenant.clone(),
                            outcome: outcome_class(c.outcome.as_deref()),
                        })
                        .inc();
                }
            },
            Record::Event(e) => {
                let wanted = matches!(
                    e.kind.as_str(),
                    "step" | "dtmf" | "error" | "queue" | "fetch" | "recording"
                );
                if !wanted {
                    return;
                }
                let Ok(d) = serde_json::from_str::<serde_json::Value>(&e.detail) else {
                    return;
                };
                let s = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or_default();
                match e.kind.as_str() {
                    "step" => self.live.step(&e.call_id, s("name")),
                    "dtmf" => {
                        self.dtmf
                            .get_or_create(&NameLabel {
                                name: bounded_name(s("source")),
                            })
                            .inc();
                    }
                    "error" => {
                        let kind = d
                            .as_object()
                            .and_then(|o| o.keys().next().cloned())
                            .unwrap_or_default();
                        if kind == "recording" {
                            self.recording_failures.inc();
                        }
                        self.flow_errors
                            .get_or_create(&NameLabel {
                                name: bounded_name(&kind),
                            })
                            .inc();
                    }
                    "queue" => {
                        let agent = d.get("agent").and_then(|v| v.as_str());
                        match s("event") {
                            "joined" => self.live.queue(&e.call_id, Some(s("name")), None),
                            "bridged" => self.live.queue(&e.call_id, None, agent),
                            "bridge ended" | "transferred" | "handed over" => {
                                self.live.queue(&e.call_id, None, Some(""))
                            }
                            _ => {}
                        }
                    }
                    "fetch" if s("event") == "answer" => {
                        self.fetches
                            .get_or_create(&NameLabel {
                                name: bounded_name(s("outcome")),
                            })
                            .inc();
                    }
                    _ => {}
                }
            }
            Record::Grievance(_) => {}
        }
    }

    /// A call's media so far (its caller leg's totals): what moved since
    /// `reported` is added to the server's counters, and `reported`
    /// becomes `now`. A call reports every few seconds while it runs and
    /// once at its end, so the counters move during long calls.
    pub fn media_progress(&self, now: MediaTally, reported: &mut MediaTally) {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        self.rtp_packets
            .get_or_create(&DirectionLabel { direction: "in" })
            .inc_by(d(now.received, reported.received));
        self.rtp_packets
            .get_or_create(&DirectionLabel { direction: "out" })
            .inc_by(d(now.sent, reported.sent));
        self.rtp_lost.inc_by(d(now.lost, reported.lost));
        self.frames.inc_by(d(now.frames, reported.frames));
        for (over, a, b) in [
            ("2", now.late_2ms, reported.late_2ms),
            ("5", now.late_5ms, reported.late_5ms),
            ("10", now.late_10ms, reported.late_10ms),
            ("20", now.late_20ms, reported.late_20ms),
        ] {
            self.frames_late
                .get_or_create(&LateLabel { over_ms: over })
                .inc_by(d(a, b));
        }
        self.frames_skipped
            .inc_by(d(now.skipped_frames, reported.skipped_frames));
        *reported = now;
    }

    /// A finished call's caller-leg jitter (seconds) at its end.
    pub fn jitter_at_end(&self, jitter_secs: f64) {
        self.jitter.observe(jitter_secs);
    }

    /// Encrypted recording bytes written.
    pub fn recording_written(&self, bytes: u64) {
        self.recording_bytes.inc_by(bytes);
    }

    /// The recordings' filesystem was synced.
    pub fn recordings_synced(&self) {
        self.recording_syncs.inc();
    }

    /// A recording that could not be written.
    pub fn recording_failed(&self) {
        self.recording_failures.inc();
    }

    /// A webhook attempt: `delivered`, `failed` or `dead_lettered`.
    pub fn webhook(&self, outcome: &'static str) {
        self.webhooks
            .get_or_create(&NameLabel {
                name: outcome.into(),
            })
            .inc();
    }

    /// A security event (a log line of target `security`).
    pub fn security_event(&self, event: &str) {
        self.security
            .get_or_create(&NameLabel {
                name: bounded_name(event),
            })
            .inc();
    }

    /// An admin API request answered.
    pub fn http_request(&self, route: &str, status: u16) {
        let status = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.http
            .get_or_create(&HttpLabels {
                route: route.into(),
                status,
            })
            .inc();
    }

    /// The SIP core's figures and the ACD's agents by state (the driver,
    /// once a second). `agents` lists every (tenant, state) with its
    /// count; states not listed read 0.
    pub fn sip(&self, f: SipFigures, agents: &[(String, &'static str, i64)]) {
        let Ok(mut c) = self.copied.lock() else {
            return;
        };
        self.sip_malformed
            .inc_by(f.malformed.saturating_sub(c.sip.malformed));
        self.sip_bans.inc_by(f.bans.saturating_sub(c.sip.bans));
        self.sip_flood_drops
            .inc_by(f.flood_drops.saturating_sub(c.sip.flood_drops));
        self.sip_registrations.inc_by(
            f.registrations_accepted
                .saturating_sub(c.sip.registrations_accepted),
        );
        c.sip = f;
        self.sip_calls.set(f.calls_in_core as i64);
        self.bindings.set(f.bindings as i64);
        self.agents.clear();
        for (tenant, state, n) in agents {
            self.agents
                .get_or_create(&AgentStateLabels {
                    tenant: tenant.clone(),
                    state: (*state).to_owned(),
                })
                .set(*n);
        }
    }

    /// The store writer's figures (at scrape time).
    pub fn store(&self, s: StoreFigures) {
        let Ok(mut c) = self.copied.lock() else {
            return;
        };
        self.store_written
            .inc_by(s.written.saturating_sub(c.store_written));
        self.store_batches
            .inc_by(s.batches.saturating_sub(c.store_batches));
        let micros = s.write_micros.saturating_sub(c.store_write_micros);
        self.store_write_seconds.inc_by(micros as f64 / 1e6);
        self.store_failures
            .inc_by(s.failures.saturating_sub(c.store_failures));
        self.events_dropped
            .inc_by(s.events_dropped.saturating_sub(c.events_dropped));
        c.store_written = s.written;
        c.store_batches = s.batches;
        c.store_write_micros = s.write_micros;
        c.store_failures = s.failures;
        c.events_dropped = s.events_dropped;
        self.store_backlog.set(s.backlog as i64);
    }

    /// One store write transaction took `d`.
    pub fn store_batch(&self, d: std::time::Duration) {
        self.store_write_latency.observe(d.as_secs_f64());
    }

    /// Where the store writer's figures are read at scrape time.
    pub fn store_source(&self, f: Box<dyn Fn() -> StoreFigures + Send + Sync>) {
        let _ = self.store_source.set(f);
    }

    /// The text exposition (OpenMetrics text), with the process and store
    /// figures read now.
    pub fn encode(&self) -> String {
        if let Some(f) = self.store_source.get() {
            self.store(f());
        }
        if let Some(rss) = process_rss() {
            self.rss.set(rss as i64);
        }
        if let Ok(d) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(d.count() as i64);
        }
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Resident memory in bytes (Linux: `/proc/self/statm`).
fn process_rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// A `tracing` layer that counts the security events (log lines of
/// target `security`, by their `event` field) into every server's
/// metrics of this process.
pub struct SecurityCounter;

static SECURITY_SINKS: Mutex<Vec<std::sync::Weak<Metrics>>> = Mutex::new(Vec::new());

/// Security events logged from now on are counted in `m`.
pub fn count_security_events(m: &std::sync::Arc<Metrics>) {
    if let Ok(mut v) = SECURITY_SINKS.lock() {
        v.retain(|w| w.strong_count() > 0);
        v.push(std::sync::Arc::downgrade(m));
    }
}

struct EventName(Option<String>);

impl tracing::field::Visit for EventName {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "event" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "event" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SecurityCounter {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if event.metadata().target() != "security" {
            return;
        }
        let mut name = EventName(None);
        event.record(&mut name);
        let name = name.0.unwrap_or_else(|| "unnamed".into());
        if let Ok(v) = SECURITY_SINKS.lock() {
            for m in v.iter().filter_map(std::sync::Weak::upgrade) {
                m.security_event(&name);
            }
        }
    }
}

#[cfg(test)]
mod tests;
