//! The store: calls (one row per call, completed into its CDR at hang-up)
//! and the interaction log (one row per event of a call), in SQLite (the
//! default, `DATA_DIR/dhwani.db`) or PostgreSQL (`store.url =
//! "postgres://..."`).
//!
//! One schema and one set of queries serve both, through sqlx's `Any`
//! driver: the SQL here is the common subset (TEXT and BIGINT columns,
//! `$n` placeholders, `ON CONFLICT` upserts). Times are milliseconds since
//! the Unix epoch, so both databases hold the same values. Writes come
//! from [`writer`], which batches them off the media path.

pub mod agents;
pub mod api_keys;
pub mod claims;
pub mod outbox;
pub mod provisioning;
pub mod rights;
pub mod sealed;
pub mod usage;
pub mod users;
pub mod writer;

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Could not connect or open.
    #[error("cannot open the store at {url}: {source}")]
    Open {
        /// The URL (password removed).
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// A query failed.
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A tenant key that seals a call's personal fields is not available.
    #[error("cannot seal the call's personal fields: {0}")]
    Keys(String),
    /// The database was written by a newer Dhwani.
    #[error(
        "the store has schema version {found}; this Dhwani knows up to {known}: upgrade Dhwani"
    )]
    TooNew {
        /// In the database.
        found: i64,
        /// Known here.
        known: i64,
    },
}

/// The schema, one entry per version; each applies in a transaction.
/// Never edit a released entry: add a new one.
const MIGRATIONS: &[&[&str]] = &[
    &[
        "CREATE TABLE calls (
        call_id TEXT PRIMARY KEY,
        sip_call_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        flow TEXT NOT NULL,
        flow_version TEXT NOT NULL,
        caller TEXT NOT NULL,
        called TEXT NOT NULL,
        start_ms BIGINT NOT NULL,
        answer_ms BIGINT,
        end_ms BIGINT,
        duration_ms BIGINT,
        hangup_by TEXT,
        hangup_cause TEXT,
        outcome TEXT,
        recording_id TEXT
    )",
        "CREATE INDEX calls_by_tenant ON calls (tenant, start_ms)",
        "CREATE INDEX calls_by_caller ON calls (tenant, caller)",
        "CREATE TABLE call_events (
        call_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        at_ms BIGINT NOT NULL,
        offset_ms BIGINT NOT NULL,
        step TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL,
        PRIMARY KEY (call_id, seq)
    )",
    ],
    &[
        // Consent withdrawals, by the keyed pseudonym of the number (the
        // registry must outlive an erasure without holding the number).
        "CREATE TABLE consent_withdrawals (
        tenant TEXT NOT NULL,
        pseudonym TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant, pseudonym)
    )",
        "CREATE TABLE holds (
        hold_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        scope TEXT NOT NULL,
        target TEXT NOT NULL,
        reason TEXT NOT NULL,
        placed_ms BIGINT NOT NULL,
        lifted_ms BIGINT
    )",
    ],
    &[
        // Agents: digest HA1s per algorithm, never a password.
        "CREATE TABLE agents (
        tenant TEXT NOT NULL,
        extension TEXT NOT NULL,
        name TEXT NOT NULL,
        ha1_sha256 TEXT,
        ha1_md5 TEXT,
        skills TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant, extension)
    )",
        // Registrations (RFC 3261 §10.3), with the flow they came on and
        // the node that holds it.
        "CREATE TABLE agent_bindings (
        tenant TEXT NOT NULL,
        extension TEXT NOT NULL,
        contact TEXT NOT NULL,
        transport TEXT NOT NULL,
        local_addr TEXT NOT NULL,
        remote_addr TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        call_id TEXT NOT NULL,
        cseq BIGINT NOT NULL,
        path TEXT NOT NULL,
        node TEXT NOT NULL,
        PRIMARY KEY (tenant, extension, contact)
    )",
        // Every agent state change.
        "CREATE TABLE agent_events (
        seq BIGINT NOT NULL,
        tenant TEXT NOT NULL,
        extension TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        reason TEXT NOT NULL
    )",
        "CREATE INDEX agent_events_by_agent ON agent_events (tenant, extension, seq)",
        // State changes asked by `dhwani agents state`, until the server
        // applies them.
        "CREATE TABLE agent_commands (
        tenant TEXT NOT NULL,
        extension TEXT NOT NULL,
        command TEXT NOT NULL,
        reason TEXT NOT NULL,
        at_ms BIGINT NOT NULL
    )",
        // The CDR of a queued call names the queue and the agent.
        "ALTER TABLE calls ADD COLUMN queue TEXT",
        "ALTER TABLE calls ADD COLUMN agent TEXT",
        "ALTER TABLE calls ADD COLUMN wait_ms BIGINT",
        "ALTER TABLE calls ADD COLUMN talk_ms BIGINT",
    ],
    &[
        // The fingerprint of the pseudonym key the tenant's stored
        // pseudonyms were last re-keyed to (`privacy::pseudonyms`).
        "CREATE TABLE pseudonym_keys (
        tenant TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        at_ms BIGINT NOT NULL
    )",
        // A lifted hold leaves only its audit entry.
        "DELETE FROM holds WHERE lifted_ms IS NOT NULL",
        // The supervisor role (listen, whisper, barge), 0 or 1.
        "ALTER TABLE agents ADD COLUMN supervisor BIGINT NOT NULL DEFAULT 0",
    ],
    &[
        // Nodes sharing the database: each one's lease (`store::claims`).
        "CREATE TABLE nodes (
        node TEXT PRIMARY KEY,
        started_ms BIGINT NOT NULL,
        lease_until_ms BIGINT NOT NULL
    )",
        // Which node holds an agent (ringing or on a call), until when.
        "CREATE TABLE agent_claims (
        tenant TEXT NOT NULL,
        extension TEXT NOT NULL,
        node TEXT NOT NULL,
        state TEXT NOT NULL,
        lease_until_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant, extension)
    )",
    ],
    &[
        // Frame timing of the audio sent to the caller (the CDR's
        // `FrameTiming`): frames sent, late by bucket, skipped.
        "ALTER TABLE calls ADD COLUMN frames BIGINT",
        "ALTER TABLE calls ADD COLUMN late_2ms BIGINT",
        "ALTER TABLE calls ADD COLUMN late_5ms BIGINT",
        "ALTER TABLE calls ADD COLUMN late_10ms BIGINT",
        "ALTER TABLE calls ADD COLUMN late_20ms BIGINT",
        "ALTER TABLE calls ADD COLUMN skipped_frames BIGINT",
    ],
    &[
        // Anonymised usage (`store::usage`): counted as each call ends,
        // never touched by erasure or retention.
        "CREATE TABLE usage_daily (
        tenant TEXT NOT NULL,
        day TEXT NOT NULL,
        flow TEXT NOT NULL,
        outcome TEXT NOT NULL,
        calls BIGINT NOT NULL,
        answered BIGINT NOT NULL,
        duration_ms BIGINT NOT NULL,
        queued BIGINT NOT NULL,
        agent_answered BIGINT NOT NULL,
        wait_ms BIGINT NOT NULL,
        talk_ms BIGINT NOT NULL,
        recorded BIGINT NOT NULL,
        PRIMARY KEY (tenant, day, flow, outcome)
    )",
    ],
    &[
        // The webhook outbox (`store::outbox`): one row per event and
        // webhook, with its delivery state and claim.
        "CREATE TABLE webhook_outbox (
        event_id TEXT NOT NULL,
        hook TEXT NOT NULL,
        tenant TEXT NOT NULL,
        call_id TEXT NOT NULL,
        ord BIGINT NOT NULL,
        kind TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        body TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        next_ms BIGINT NOT NULL,
        last_status BIGINT,
        last_error TEXT,
        last_ms BIGINT,
        delivered_ms BIGINT,
        claim_node TEXT,
        claim_until_ms BIGINT,
        PRIMARY KEY (event_id, hook)
    )",
        // Due rows of a tenant in order, and the earlier rows of a call.
        "CREATE INDEX webhook_outbox_due ON webhook_outbox (tenant, state, ord)",
        "CREATE INDEX webhook_outbox_by_call ON webhook_outbox (tenant, hook, call_id, ord)",
    ],
    &[
        // Anonymised usage per flow step (`store::usage`): visits, calls
        // that ended there by the caller hanging up, time in the step;
        // and the menu choices out of it.
        "CREATE TABLE usage_steps (
        tenant TEXT NOT NULL,
        day TEXT NOT NULL,
        flow TEXT NOT NULL,
        step TEXT NOT NULL,
        entered BIGINT NOT NULL,
        dropped BIGINT NOT NULL,
        time_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant, day, flow, step)
    )",
        "CREATE TABLE usage_choices (
        tenant TEXT NOT NULL,
        day TEXT NOT NULL,
        flow TEXT NOT NULL,
        step TEXT NOT NULL,
        choice TEXT NOT NULL,
        chosen BIGINT NOT NULL,
        PRIMARY KEY (tenant, day, flow, step, choice)
    )",
    ],
    &[
        // The remaining rights (`store::rights`): requests with their due
        // dates, nominees, grievances; callers by pseudonym only.
        "CREATE TABLE privacy_requests (
        request_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        nominee TEXT NOT NULL,
        opened_ms BIGINT NOT NULL,
        due_ms BIGINT NOT NULL,
        closed_ms BIGINT,
        outcome TEXT
    )",
        "CREATE TABLE nominees (
        tenant TEXT NOT NULL,
        subject TEXT NOT NULL,
        nominee TEXT NOT NULL,
        added_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant, subject, nominee)
    )",
        "CREATE TABLE grievances (
        grievance_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        subject TEXT NOT NULL,
        category TEXT NOT NULL,
        channel TEXT NOT NULL,
        call_id TEXT,
        recording_id TEXT,
        opened_ms BIGINT NOT NULL,
        ack_due_ms BIGINT NOT NULL,
        acked_ms BIGINT,
        resolve_due_ms BIGINT NOT NULL,
        resolved_ms BIGINT,
        resolution TEXT
    )",
    ],
    &[
        // Agent state changes are kept for every node to apply (not taken
        // by the first): each has an id and the node that made it.
        "ALTER TABLE agent_commands ADD COLUMN id TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE agent_commands ADD COLUMN origin TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX agent_commands_by_time ON agent_commands (at_ms)",
    ],
    &[
        // Each call's data key, wrapped by the tenant's key (`store::sealed`):
        // the caller, timeline details and webhook bodies are sealed under
        // it, and erasure destroys it. Callers are looked up by pseudonym.
        "CREATE TABLE call_keys (
        call_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        kek_id TEXT NOT NULL,
        wrapped TEXT NOT NULL
    )",
        "ALTER TABLE calls ADD COLUMN caller_ref TEXT",
        "CREATE INDEX calls_by_caller_ref ON calls (tenant, caller_ref)",
    ],
    &[
        // Admin API keys (`store::api_keys`): the secret's SHA-256 only.
        "CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        role TEXT NOT NULL,
        recordings BIGINT NOT NULL,
        secret_sha256 TEXT NOT NULL,
        label TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        revoked_ms BIGINT
    )",
        // Console users (`store::users`): Argon2id password hashes, TOTP
        // secrets, and their login sessions (the token's SHA-256 only).
        "CREATE TABLE users (
        username TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        role TEXT NOT NULL,
        recordings BIGINT NOT NULL,
        password_hash TEXT NOT NULL,
        totp_secret TEXT,
        totp_last_step BIGINT,
        created_ms BIGINT NOT NULL
    )",
        "CREATE TABLE sessions (
        session_id TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL
    )",
        "CREATE INDEX sessions_by_user ON sessions (username)",
    ],
    &[
        // Tenants and numbers provisioned through the admin API
        // (`store::provisioning`), beside those of the config file.
        "CREATE TABLE provisioned_tenants (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        max_calls BIGINT NOT NULL,
        suspended BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL
    )",
        // `number_key` is the number without its leading `+` (as routing
        // sees it), so one number has one owner however it is written.
        "CREATE TABLE provisioned_numbers (
        number_key TEXT PRIMARY KEY,
        number TEXT NOT NULL,
        tenant TEXT NOT NULL,
        added_ms BIGINT NOT NULL
    )",
    ],
];

/// The columns of a call, in the order [`call_from_row`] reads them (a
/// constant: only the WHERE clauses appended to it differ, and they take
/// their values as bound parameters).
const CALL_SELECT: &str =
    "SELECT call_id, sip_call_id, tenant, flow, flow_version, caller, called, start_ms,
    answer_ms, end_ms, duration_ms, hangup_by, hangup_cause, outcome, recording_id,
    queue, agent, wait_ms, talk_ms, frames, late_2ms, late_5ms, late_10ms, late_20ms,
    skipped_frames FROM calls";

/// What [`Store::scrub`] could do about deleted bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ScrubReport {
    /// The database keeps no copy of the deleted rows in its own files.
    pub complete: bool,
    /// What was done, and what remains, in words.
    pub note: String,
}

/// A call: its start, and its CDR once it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    /// Our id for the call (unique, sortable by start time).
    pub call_id: String,
    /// The SIP Call-ID.
    pub sip_call_id: String,
    /// Tenant id.
    pub tenant: String,
    /// Flow name.
    pub flow: String,
    /// Flow version (content hash).
    pub flow_version: String,
    /// Caller's number (From user).
    pub caller: String,
    /// Number dialled.
    pub called: String,
    /// INVITE received, ms since the epoch.
    pub start_ms: i64,
    /// Answered (200 OK sent).
    pub answer_ms: Option<i64>,
    /// Ended.
    pub end_ms: Option<i64>,
    /// Answered duration, ms.
    pub duration_ms: Option<i64>,
    /// `caller`, `dhwani` (the flow or the server) or `system` (timeouts).
    pub hangup_by: Option<String>,
    /// Why, with the SIP cause (`BYE from caller`, `487 CANCEL`, ...).
    pub hangup_cause: Option<String>,
    /// How the flow ended (`hangup: completed`, `caller hung up`, ...).
    pub outcome: Option<String>,
    /// The call recording's id, when recorded.
    pub recording_id: Option<String>,
    /// The queue the caller waited in.
    pub queue: Option<String>,
    /// The agent (extension) who answered.
    pub agent: Option<String>,
    /// Time waited in the queue, ms.
    pub wait_ms: Option<i64>,
    /// Time talking to the agent, ms.
    pub talk_ms: Option<i64>,
    /// How punctually audio went to the caller (set when the call ended
    /// in its task).
    #[serde(flatten)]
    pub timing: Option<FrameTiming>,
    /// The flow steps the call went through, for the anonymised usage
    /// (`store::usage`); not stored with the call.
    #[serde(skip)]
    pub path: Vec<StepVisit>,
}

/// One visit of a flow step: how long the call stayed, and the menu
/// choice it left by (a key, `timeout` or `invalid`; `other` for longer
/// values, which may be personal).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StepVisit {
    /// The step's name.
    pub step: String,
    /// Time in it, ms.
    pub ms: i64,
    /// The branch taken out of it, if a gather's.
    pub choice: Option<String>,
}

/// How punctually a call's audio frames (20 ms each) went out to the
/// caller: a frame sent more than 10 ms after its time is one a listener
/// may hear as jitter; a skipped frame is a gap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FrameTiming {
    /// Frames sent.
    pub frames: i64,
    /// Sent more than 2 ms late.
    pub late_2ms: i64,
    /// ... more than 5 ms.
    pub late_5ms: i64,
    /// ... more than 10 ms.
    pub late_10ms: i64,
    /// ... more than 20 ms.
    pub late_20ms: i64,
    /// Skipped (the call's task stalled for more than five frames).
    pub skipped_frames: i64,
}

/// One interaction-log event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Event {
    /// The call.
    pub call_id: String,
    /// The call's tenant (whose key seals the detail; empty when read
    /// back from the store).
    #[serde(skip)]
    pub tenant: String,
    /// Order within the call, from 0.
    pub seq: i64,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// When, ms since the call started.
    pub offset_ms: i64,
    /// The flow step it happened in (empty for SIP events).
    pub step: String,
    /// What: `step`, `prompt`, `digits`, `branch`, `dtmf`, `sip`, ...
    pub kind: String,
    /// Details as a JSON object (sensitive digits already masked).
    pub detail: String,
}

/// A legal hold as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HoldRow {
    /// Id.
    pub hold_id: String,
    /// Tenant.
    pub tenant: String,
    /// `call`, `number` or `tenant`.
    pub scope: String,
    /// The call id, the number's pseudonyms (comma-separated: the
    /// current one first), or "" for a tenant hold.
    pub target: String,
    /// Why.
    pub reason: String,
    /// Placed.
    pub placed_ms: i64,
}

impl HoldRow {
    /// As the retention module's hold.
    pub fn to_hold(&self) -> recordings::retention::Hold {
        use recordings::retention::HoldScope;
        let scope = match self.scope.as_str() {
            "call" => HoldScope::Call(self.target.clone()),
            "number" => HoldScope::Number {
                tenant: self.tenant.clone(),
                pseudonyms: self.target.split(',').map(str::to_owned).collect(),
            },
            _ => HoldScope::Tenant(self.tenant.clone()),
        };
        recordings::retention::Hold {
            scope,
            reason: self.reason.clone(),
            lifted: false,
        }
    }
}

/// Filters of `calls list`.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only calls from this number.
    pub caller: Option<String>,
    /// Only calls that started at or after this (ms since the epoch).
    pub since_ms: Option<i64>,
    /// At most this many (newest first).
    pub limit: i64,
    /// Only calls older than this one (start ms, call id): the next page
    /// after a page whose last call it was.
    pub before: Option<(i64, String)>,
}

/// An open store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    kind: Kind,
    hooks: std::sync::Arc<outbox::Hooks>,
    sealer: std::sync::Arc<sealed::Sealer>,
}

/// The URL with any password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates. An empty
    /// `url` is SQLite at `data_dir/dhwani.db`.
    pub async fn open(url: &str, data_dir: &Path) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, kind) = if url.is_empty() {
            (
                format!("sqlite://{}?mode=rwc", data_dir.join("dhwani.db").display()),
                Kind::Sqlite,
            )
        } else if url.starts_with("sqlite:") {
            let u = if url.contains('?') {
                url.to_owned()
            } else {
                format!("{url}?mode=rwc")
            };
            (u, Kind::Sqlite)
        } else {
            (url.to_owned(), Kind::Postgres)
        };
        let open_err = |source| StoreError::Open {
            url: redact(&url),
            source,
        };
        let mut opts = AnyPoolOptions::new()
            .max_connections(if kind == Kind::Sqlite { 1 } else { 4 })
            .acquire_timeout(Duration::from_secs(10));
        if kind == Kind::Sqlite {
            // WAL: readers (the CLI) never block the server's writer, and a
            // committed batch survives a crash of the process.
            opts = opts.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA journal_mode=WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous=NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout=5000")
                        .execute(&mut *conn)
                        .await?;
                    // Deleted and overwritten rows are zeroed in their
                    // pages as they go, so an erasure leaves no bytes of
                    // them in the database file (the WAL: see `scrub`).
                    sqlx::query("PRAGMA secure_delete=ON")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = opts.connect(&url).await.map_err(open_err)?;
        let store = Store {
            pool,
            kind,
            hooks: Default::default(),
            sealer: std::sync::Arc::new(sealed::Sealer::new(data_dir.to_path_buf())),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Which database.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS dhwani_schema (version BIGINT NOT NULL)")
            .execute(&self.pool)
            .await?;
        let current: i64 = sqlx::query("SELECT MAX(version) FROM dhwani_schema")
            .fetch_one(&self.pool)
            .await?
            .try_get::<Option<i64>, _>(0)?
            .unwrap_or(0);
        let known = MIGRATIONS.len() as i64;
        if current > known {
            return Err(StoreError::TooNew {
                found: current,
                known,
            });
        }
        for (i, statements) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let mut tx = self.pool.begin().await?;
            for s in *statements {
                sqlx::query(*s).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO dhwani_schema (version) VALUES ($1)")
                .bind(i as i64 + 1)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Writes a batch in one transaction.
    pub async fn write(&self, batch: &[writer::Record]) -> Result<(), StoreError> {
        // The calls' keys first: reading them takes the connection, which
        // the transaction holds (SQLite has one).
        let keys = self.batch_keys(batch).await?;
        let mut tx = self.pool.begin().await?;
        self.insert_keys(&mut tx, &keys).await?;
        let mut added = false;
        for r in batch {
            match r {
                writer::Record::Call(c) => {
                    // A call seen ending for the first time is counted in
                    // the anonymised usage, and what changed is reported
                    // to the tenant's webhooks, in the same transaction.
                    let hooks = self.call_events_wanted(&c.tenant);
                    let mut before: outbox::Before = None;
                    if c.end_ms.is_some() || hooks {
                        let row =
                            sqlx::query("SELECT answer_ms, end_ms FROM calls WHERE call_id = $1")
                                .bind(&c.call_id)
                                .fetch_optional(&mut *tx)
                                .await?;
                        if let Some(r) = row {
                            before = Some((
                                r.try_get::<Option<i64>, _>(0)?.is_some(),
                                r.try_get::<Option<i64>, _>(1)?.is_some(),
                            ));
                        }
                        let ended_before = before.is_some_and(|(_, ended)| ended);
                        if c.end_ms.is_some() && !ended_before {
                            usage::count(&mut tx, c).await?;
                        }
                    }
                    sqlx::query(
                        "INSERT INTO calls (call_id, sip_call_id, tenant, flow, flow_version, caller, called,
                            start_ms, answer_ms, end_ms, duration_ms, hangup_by, hangup_cause, outcome, recording_id,
                            queue, agent, wait_ms, talk_ms, frames, late_2ms, late_5ms, late_10ms,
                            late_20ms, skipped_frames, caller_ref)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
                            $20, $21, $22, $23, $24, $25, $26)
                         ON CONFLICT (call_id) DO UPDATE SET
                            answer_ms = excluded.answer_ms, end_ms = excluded.end_ms,
                            duration_ms = excluded.duration_ms, hangup_by = excluded.hangup_by,
                            hangup_cause = excluded.hangup_cause, outcome = excluded.outcome,
                            recording_id = excluded.recording_id, flow_version = excluded.flow_version,
                            queue = excluded.queue, agent = excluded.agent,
                            wait_ms = excluded.wait_ms, talk_ms = excluded.talk_ms,
                            frames = excluded.frames, late_2ms = excluded.late_2ms,
                            late_5ms = excluded.late_5ms, late_10ms = excluded.late_10ms,
                            late_20ms = excluded.late_20ms, skipped_frames = excluded.skipped_frames",
                    )
                    .bind(&c.call_id)
                    .bind(&c.sip_call_id)
                    .bind(&c.tenant)
                    .bind(&c.flow)
                    .bind(&c.flow_version)
                    .bind(sealed_caller(&keys, c))
                    .bind(&c.called)
                    .bind(c.start_ms)
                    .bind(c.answer_ms)
                    .bind(c.end_ms)
                    .bind(c.duration_ms)
                    .bind(c.hangup_by.clone())
                    .bind(c.hangup_cause.clone())
                    .bind(c.outcome.clone())
                    .bind(c.recording_id.clone())
                    .bind(c.queue.clone())
                    .bind(c.agent.clone())
                    .bind(c.wait_ms)
                    .bind(c.talk_ms)
                    .bind(c.timing.map(|t| t.frames))
                    .bind(c.timing.map(|t| t.late_2ms))
                    .bind(c.timing.map(|t| t.late_5ms))
                    .bind(c.timing.map(|t| t.late_10ms))
                    .bind(c.timing.map(|t| t.late_20ms))
                    .bind(c.timing.map(|t| t.skipped_frames))
                    .bind(keys.refs.get(&c.call_id).cloned().flatten())
                    .execute(&mut *tx)
                    .await?;
                    if hooks {
                        added |= self
                            .enqueue_call(&mut tx, c, before, keys.keys.get(&c.call_id))
                            .await?;
                    }
                }
                writer::Record::Event(e) => {
                    sqlx::query(
                        "INSERT INTO call_events (call_id, seq, at_ms, offset_ms, step, kind, detail)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)
                         ON CONFLICT (call_id, seq) DO NOTHING",
                    )
                    .bind(&e.call_id)
                    .bind(e.seq)
                    .bind(e.at_ms)
                    .bind(e.offset_ms)
                    .bind(&e.step)
                    .bind(&e.kind)
                    .bind(match keys.keys.get(&e.call_id) {
                        Some(k) => sealed::seal(k, &e.call_id, "detail", &e.detail),
                        None => e.detail.clone(),
                    })
                    .execute(&mut *tx)
                    .await?;
                    added |= self
                        .enqueue_event(&mut tx, e, keys.keys.get(&e.call_id))
                        .await?;
                }
                writer::Record::Grievance(g) => rights::insert_grievance(&mut tx, g).await?,
            }
        }
        tx.commit().await?;
        self.keys_committed(&keys);
        if added {
            self.hooks.added.notify_one();
        }
        Ok(())
    }

    /// Calls matching `filter`, newest first.
    pub async fn list_calls(&self, filter: &CallFilter) -> Result<Vec<CallRecord>, StoreError> {
        let limit = if filter.limit > 0 { filter.limit } else { 100 };
        // A number is looked up by its pseudonyms at each tenant (the
        // stored caller is sealed), and as itself (rows from before).
        let mut values = vec![filter.caller.clone().unwrap_or_default()];
        if let Some(number) = filter.caller.as_deref().filter(|n| !n.is_empty()) {
            let tenants: Vec<String> = match &filter.tenant {
                Some(t) => vec![t.clone()],
                None => sqlx::query("SELECT DISTINCT tenant FROM calls")
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?,
            };
            for t in tenants {
                values.extend(self.pseudonyms_of(&t, number).await);
            }
        }
        let mut calls = Vec::new();
        for v in values {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "{CALL_SELECT} WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR caller = $2 OR caller_ref = $2)
                 AND start_ms >= $3 AND (start_ms < $5 OR (start_ms = $5 AND call_id < $6))
                 ORDER BY start_ms DESC, call_id DESC LIMIT $4"
            )))
            .bind(filter.tenant.clone().unwrap_or_default())
            .bind(v)
            .bind(filter.since_ms.unwrap_or(0))
            .bind(limit)
            .bind(filter.before.as_ref().map_or(i64::MAX, |b| b.0))
            .bind(filter.before.as_ref().map_or(String::new(), |b| b.1.clone()))
            .fetch_all(&self.pool)
            .await?;
            for r in &rows {
                calls.push(call_from_row(r)?);
            }
        }
        calls.sort_by(|a, b| (b.start_ms, &b.call_id).cmp(&(a.start_ms, &a.call_id)));
        calls.dedup_by(|a, b| a.call_id == b.call_id);
        calls.truncate(limit as usize);
        self.unseal_calls(calls).await
    }

    /// Answers when the database does (`/ready`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// One call by our id or its SIP Call-ID.
    pub async fn call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{CALL_SELECT} WHERE call_id = $1 OR sip_call_id = $1 ORDER BY start_ms DESC LIMIT 1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row.as_ref().map(call_from_row).transpose()? {
            Some(mut c) => {
                self.unseal_call(&mut c).await?;
                Ok(Some(c))
            }
            None => Ok(None),
        }
    }

    /// A call's interaction log, in order.
    pub async fn events(&self, call_id: &str) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT call_id, seq, at_ms, offset_ms, step, kind, detail FROM call_events
             WHERE call_id = $1 ORDER BY seq",
        )
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?;
        let mut events: Vec<Event> = rows
            .iter()
            .map(|r| {
                Ok::<_, StoreError>(Event {
                    call_id: r.try_get(0)?,
                    tenant: String::new(),
                    seq: r.try_get(1)?,
                    at_ms: r.try_get(2)?,
                    offset_ms: r.try_get(3)?,
                    step: r.try_get(4)?,
                    kind: r.try_get(5)?,
                    detail: r.try_get(6)?,
                })
            })
            .collect::<Result<_, _>>()?;
        for e in &mut events {
            e.detail = self
                .unseal_text(call_id, "detail", std::mem::take(&mut e.detail))
                .await?;
        }
        Ok(events)
    }

    /// Records that `pseudonym` (a number's) withdrew recording consent.
    pub async fn withdraw_consent(
        &self,
        tenant: &str,
        pseudonym: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO consent_withdrawals (tenant, pseudonym, at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (tenant, pseudonym) DO NOTHING",
        )
        .bind(tenant)
        .bind(pseudonym)
        .bind(at_ms)
        .execute(&mut *tx)
        .await?;
        // Reported to the tenant's webhooks once, with the withdrawal.
        let mut added = false;
        if done.rows_affected() == 1 {
            added = self
                .enqueue_plain(
                    &mut tx,
                    (tenant, pseudonym),
                    "consent.withdrawn",
                    serde_json::json!({"caller": pseudonym, "at_ms": at_ms}),
                )
                .await?;
        }
        tx.commit().await?;
        if added {
            self.hooks.added.notify_one();
        }
        Ok(())
    }

    /// True when the number (by pseudonym) withdrew consent.
    pub async fn consent_withdrawn(
        &self,
        tenant: &str,
        pseudonym: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT at_ms FROM consent_withdrawals WHERE tenant = $1 AND pseudonym = $2",
        )
        .bind(tenant)
        .bind(pseudonym)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Places a hold.
    pub async fn place_hold(&self, h: &HoldRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO holds (hold_id, tenant, scope, target, reason, placed_ms, lifted_ms)
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(&h.hold_id)
        .bind(&h.tenant)
        .bind(&h.scope)
        .bind(&h.target)
        .bind(&h.reason)
        .bind(h.placed_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Lifts a hold: its row is deleted (the audit log keeps that it was
    /// placed and lifted); false when there is no such hold.
    pub async fn lift_hold(&self, hold_id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM holds WHERE hold_id = $1")
            .bind(hold_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Replaces what a hold covers (a number hold's pseudonyms).
    pub async fn set_hold_target(&self, hold_id: &str, target: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE holds SET target = $1 WHERE hold_id = $2")
            .bind(target)
            .bind(hold_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The fingerprint of the pseudonym key the tenant's pseudonyms were
    /// last re-keyed to (none before the first re-key).
    pub async fn pseudonym_fingerprint(&self, tenant: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT fingerprint FROM pseudonym_keys WHERE tenant = $1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// Re-keys every stored pseudonym of a tenant with `relayer` (consent
    /// withdrawals, holds on numbers, pseudonymised CDRs) and records the
    /// new key's fingerprint, in one transaction. Returns the counts.
    pub async fn rekey_pseudonyms(
        &self,
        tenant: &str,
        fingerprint: &str,
        relayer: impl Fn(&str) -> String,
    ) -> Result<(u64, u64, u64), StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT pseudonym FROM consent_withdrawals WHERE tenant = $1")
            .bind(tenant)
            .fetch_all(&mut *tx)
            .await?;
        let mut withdrawals = 0;
        for r in &rows {
            let p: String = r.try_get(0)?;
            sqlx::query(
                "UPDATE consent_withdrawals SET pseudonym = $1 WHERE tenant = $2 AND pseudonym = $3",
            )
            .bind(relayer(&p))
            .bind(tenant)
            .bind(&p)
            .execute(&mut *tx)
            .await?;
            withdrawals += 1;
        }
        let rows =
            sqlx::query("SELECT hold_id, target FROM holds WHERE tenant = $1 AND scope = 'number'")
                .bind(tenant)
                .fetch_all(&mut *tx)
                .await?;
        let mut holds = 0;
        for r in &rows {
            let (id, target): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            let new: Vec<String> = target.split(',').map(&relayer).collect();
            sqlx::query("UPDATE holds SET target = $1 WHERE hold_id = $2")
                .bind(new.join(","))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            holds += 1;
        }
        let rows = sqlx::query(
            "SELECT call_id, caller FROM calls WHERE tenant = $1 AND caller LIKE 'anon-%'",
        )
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await?;
        let mut cdrs = 0;
        for r in &rows {
            let (id, caller): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            sqlx::query("UPDATE calls SET caller = $1 WHERE call_id = $2")
                .bind(relayer(&caller))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            cdrs += 1;
        }
        // The pseudonyms sealed callers are looked up by.
        let rows = sqlx::query(
            "SELECT call_id, caller_ref FROM calls WHERE tenant = $1 AND caller_ref IS NOT NULL
               AND caller NOT LIKE 'anon-%'",
        )
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let (id, p): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            sqlx::query("UPDATE calls SET caller_ref = $1 WHERE call_id = $2")
                .bind(relayer(&p))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        sqlx::query(
            "INSERT INTO pseudonym_keys (tenant, fingerprint, at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (tenant) DO UPDATE SET fingerprint = excluded.fingerprint, at_ms = excluded.at_ms",
        )
        .bind(tenant)
        .bind(fingerprint)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((withdrawals, holds, cdrs))
    }

    /// Every standing hold.
    pub async fn holds(&self) -> Result<Vec<HoldRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT hold_id, tenant, scope, target, reason, placed_ms FROM holds ORDER BY placed_ms",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HoldRow {
                    hold_id: r.try_get(0)?,
                    tenant: r.try_get(1)?,
                    scope: r.try_get(2)?,
                    target: r.try_get(3)?,
                    reason: r.try_get(4)?,
                    placed_ms: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Every call of a tenant (all of them: for the sweeper and the rights
    /// of a data principal), oldest first.
    pub async fn tenant_calls(&self, tenant: &str) -> Result<Vec<CallRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{CALL_SELECT} WHERE tenant = $1 ORDER BY start_ms"
        )))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        let calls = rows.iter().map(call_from_row).collect::<Result<_, _>>()?;
        self.unseal_calls(calls).await
    }

    /// Every call of a tenant from one number (stored as itself, or
    /// looked up by a pseudonym: pass each of the number's), oldest first.
    pub async fn calls_from(
        &self,
        tenant: &str,
        caller: &str,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{CALL_SELECT} WHERE tenant = $1 AND (caller = $2 OR caller_ref = $2) ORDER BY start_ms"
        )))
        .bind(tenant)
        .bind(caller)
        .fetch_all(&self.pool)
        .await?;
        let calls = rows.iter().map(call_from_row).collect::<Result<_, _>>()?;
        self.unseal_calls(calls).await
    }

    /// Deletes a call's timeline.
    pub async fn delete_events(&self, call_id: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM call_events WHERE call_id = $1")
            .bind(call_id)
            .execute(&self.pool)
            .await?;
        // The webhook bodies of the call go with its timeline.
        self.delete_webhooks_of(call_id).await?;
        self.shred_key_if_unused(call_id).await?;
        Ok(r.rows_affected())
    }

    /// Deletes a call's CDR.
    pub async fn delete_call(&self, call_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM calls WHERE call_id = $1")
            .bind(call_id)
            .execute(&self.pool)
            .await?;
        self.delete_webhooks_of(call_id).await?;
        self.shred_key_if_unused(call_id).await?;
        Ok(())
    }

    /// Replaces the caller number of a CDR (and forgets its recording id).
    pub async fn pseudonymise_call(
        &self,
        call_id: &str,
        pseudonym: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE calls SET caller = $1, caller_ref = $1 WHERE call_id = $2")
            .bind(pseudonym)
            .bind(call_id)
            .execute(&self.pool)
            .await?;
        // Webhook bodies name the number: they go too.
        self.delete_webhooks_of(call_id).await?;
        self.shred_key_if_unused(call_id).await?;
        Ok(())
    }

    /// After deleting personal data, what the database can do to not keep
    /// the deleted bytes, and whether it did (see `docs/privacy.md`).
    ///
    /// SQLite: every connection runs with `secure_delete`, so the deleted
    /// rows were zeroed in the database file's pages as they went; their
    /// old page images stay in the write-ahead log until a checkpoint
    /// copies the log back and truncates it. That checkpoint is tried up
    /// to five times (a reader in another process, such as the running
    /// server mid-query, blocks it); if it never completes the report
    /// says so. PostgreSQL: `VACUUM` makes the dead row versions' space
    /// reusable but does not overwrite them, and the WAL, replicas and
    /// backups keep them until they are recycled: never complete.
    pub async fn scrub(&self) -> Result<ScrubReport, StoreError> {
        match self.kind {
            Kind::Sqlite => {
                let mut conn = self.pool.acquire().await?;
                // Each try waits at most 1 s for readers (not the 5 s of
                // ordinary statements); restored after.
                sqlx::query("PRAGMA busy_timeout=1000")
                    .execute(&mut *conn)
                    .await?;
                let report = checkpoint(&mut conn).await;
                // Restored whatever the checkpoint came to.
                sqlx::query("PRAGMA busy_timeout=5000")
                    .execute(&mut *conn)
                    .await?;
                report
            }
            Kind::Postgres => {
                sqlx::query("VACUUM calls").execute(&self.pool).await?;
                sqlx::query("VACUUM call_events")
                    .execute(&self.pool)
                    .await?;
                sqlx::query("VACUUM call_keys").execute(&self.pool).await?;
                Ok(ScrubReport {
                    complete: false,
                    note: "PostgreSQL: VACUUM ran; it marks the deleted row versions' space free but does not overwrite it, and the WAL, replicas and backups keep them until recycled. The callers, timelines and webhook bodies in those copies are sealed under the calls' keys, now destroyed; a copy of a destroyed key's own row, wrapped by the tenant's key, may be kept there too, so the sealed copies stay readable only to someone with both such a copy and the tenant's key (docs/privacy.md)".into(),
                })
            }
        }
    }

    /// Runs one statement (tests only: to simulate other versions).
    #[doc(hidden)]
    pub async fn exec_for_tests(&self, sql: &'static str) {
        let _ = sqlx::query(sql).execute(&self.pool).await;
    }

    /// Closes the pool (flushes SQLite's WAL on the last connection).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// SQLite's WAL checkpoint (TRUNCATE), tried up to five times; what it
/// came to.
async fn checkpoint(conn: &mut sqlx::AnyConnection) -> Result<ScrubReport, StoreError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *conn)
            .await?;
        let busy: i64 = row.try_get(0)?;
        if busy == 0 {
            return Ok(ScrubReport {
                complete: true,
                note: format!(
                    "SQLite: deleted rows zeroed in the database file (secure_delete); write-ahead log checkpointed and truncated ({tries} tries)"
                ),
            });
        }
        if tries == 5 {
            return Ok(ScrubReport {
                complete: false,
                note: "SQLite: deleted rows zeroed in the database file (secure_delete), but the write-ahead log could not be checkpointed (another process kept reading in 5 tries): old copies of the deleted rows stay in dhwani.db-wal until the next checkpoint; run the erasure again when the server is idle".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200 * tries)).await;
    }
}

/// The caller as stored: sealed under the call's key (a pseudonym stays
/// as it is).
fn sealed_caller(keys: &sealed::BatchKeys, c: &CallRecord) -> String {
    match keys.keys.get(&c.call_id) {
        Some(k) if !c.caller.starts_with("anon-") => {
            sealed::seal(k, &c.call_id, "caller", &c.caller)
        }
        _ => c.caller.clone(),
    }
}

fn call_from_row(r: &AnyRow) -> Result<CallRecord, StoreError> {
    Ok(CallRecord {
        call_id: r.try_get(0)?,
        sip_call_id: r.try_get(1)?,
        tenant: r.try_get(2)?,
        flow: r.try_get(3)?,
        flow_version: r.try_get(4)?,
        caller: r.try_get(5)?,
        called: r.try_get(6)?,
        start_ms: r.try_get(7)?,
        answer_ms: r.try_get(8)?,
        end_ms: r.try_get(9)?,
        duration_ms: r.try_get(10)?,
        hangup_by: r.try_get(11)?,
        hangup_cause: r.try_get(12)?,
        outcome: r.try_get(13)?,
        recording_id: r.try_get(14)?,
        queue: r.try_get(15)?,
        agent: r.try_get(16)?,
        wait_ms: r.try_get(17)?,
        talk_ms: r.try_get(18)?,
        timing: match r.try_get::<Option<i64>, _>(19)? {
            None => None,
            Some(frames) => Some(FrameTiming {
                frames,
                late_2ms: r.try_get::<Option<i64>, _>(20)?.unwrap_or(0),
                late_5ms: r.try_get::<Option<i64>, _>(21)?.unwrap_or(0),
                late_10ms: r.try_get::<Option<i64>, _>(22)?.unwrap_or(0),
                late_20ms: r.try_get::<Option<i64>, _>(23)?.unwrap_or(0),
                skipped_frames: r.try_get::<Option<i64>, _>(24)?.unwrap_or(0),
            }),
        },
        path: Vec::new(),
    })
}

/// The call and its timeline as one JSON object.
pub fn call_json(call: &CallRecord, events: &[Event]) -> serde_json::Value {
    let timeline: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            serde_json::json!({
                "seq": e.seq,
                "at_ms": e.at_ms,
                "offset_ms": e.offset_ms,
                "step": e.step,
                "kind": e.kind,
                "detail": serde_json::from_str::<serde_json::Value>(&e.detail).unwrap_or(serde_json::Value::String(e.detail.clone())),
            })
        })
        .collect();
    serde_json::json!({ "call": call, "timeline": timeline })
}
