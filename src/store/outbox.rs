//! The webhook outbox: call events a tenant's webhooks asked for, written
//! in the same transaction as the record they report (the CDR row, the
//! timeline event, the consent withdrawal), then delivered by
//! `server::webhooks` with retries, in order per call and webhook.
//!
//! One row per event and webhook (`event_id`, `hook`): its body (the JSON
//! POSTed, built once when the event is written), its state (`pending`,
//! `delivered`, `dead`), attempts, when it is due next, the last status
//! and error, and a claim (`claim_node` until `claim_until_ms`). A node
//! claims a due row with one conditional `UPDATE` (the row is still
//! pending and unclaimed, or its claim lapsed), so two nodes sharing the
//! database never both send it; a node that dies mid-delivery leaves a
//! claim that lapses, and the row is sent again (at least once, never
//! twice while both nodes live). A row is due only when no earlier row of
//! the same call and webhook is still pending: events of one call arrive
//! in the order they happened.
//!
//! The bodies carry callers' data (the caller's number in `call.*`
//! events), so they live no longer than the call's timeline: deleting a
//! call's timeline or CDR, or pseudonymising its CDR (erasure, retention)
//! deletes its outbox rows too, and delivered rows go after 7 days.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};

use serde::Serialize;
use sqlx::Row;

use super::{CallRecord, Event, Store, StoreError};
use crate::config::TenantConfig;

/// Delivered rows are kept this long for `dhwani webhooks show`.
pub const KEEP_DELIVERED_MS: i64 = 7 * 24 * 3600 * 1000;

/// The version of the bodies' shape (the `version` field).
pub const BODY_VERSION: i64 = 1;

/// A tenant's webhooks: (name, the events it wants).
type TenantHooks = Vec<(String, Vec<String>)>;

/// Which webhooks of which tenant want which events, and the order key
/// of the next event.
#[derive(Debug, Default)]
pub struct Hooks {
    /// Tenant id → (webhook name, what it wants).
    by_tenant: RwLock<HashMap<String, TenantHooks>>,
    /// The last order key given out (microseconds since the epoch, made
    /// unique by counting on).
    last_ord: AtomicI64,
    /// Woken when rows were added (the deliverer of this process).
    pub added: tokio::sync::Notify,
}

impl Hooks {
    /// The webhooks of `tenant` that want `kind`.
    fn wanting(&self, tenant: &str, kind: &str) -> Vec<String> {
        let Ok(map) = self.by_tenant.read() else {
            return Vec::new();
        };
        map.get(tenant)
            .map(|hooks| {
                hooks
                    .iter()
                    .filter(|(_, events)| wants(events, kind))
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether any tenant's webhook wants `kind` (before a lookup).
    fn any_wants(&self, kind: &str) -> bool {
        let Ok(map) = self.by_tenant.read() else {
            return false;
        };
        map.values()
            .any(|hooks| hooks.iter().any(|(_, events)| wants(events, kind)))
    }

    fn tenant_has_hooks(&self, tenant: &str) -> bool {
        self.by_tenant
            .read()
            .map(|m| m.get(tenant).is_some_and(|h| !h.is_empty()))
            .unwrap_or(false)
    }

    fn next_ord(&self, now_ms: i64) -> i64 {
        let now_us = now_ms.saturating_mul(1000);
        let mut prev = self.last_ord.load(Ordering::Relaxed);
        loop {
            let next = now_us.max(prev + 1);
            match self.last_ord.compare_exchange_weak(
                prev,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(p) => prev = p,
            }
        }
    }
}

fn wants(events: &[String], kind: &str) -> bool {
    if events.is_empty() {
        kind != "step.entered"
    } else {
        events.iter().any(|e| e == kind)
    }
}

/// One delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxRow {
    /// The event's id (the same for each webhook it goes to).
    pub event_id: String,
    /// The webhook's name.
    pub hook: String,
    /// Tenant id.
    pub tenant: String,
    /// The call it is about (its record id), or `caller:PSEUDONYM` for
    /// events about a caller and no call: what orders its delivery.
    pub call_id: String,
    /// Order key (microseconds since the epoch, unique per process).
    pub ord: i64,
    /// `call.started`, `call.ended`, ...
    pub kind: String,
    /// Written, ms since the epoch.
    pub created_ms: i64,
    /// The JSON body.
    #[serde(skip)]
    pub body: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// Due next (pending), ms since the epoch.
    pub next_ms: i64,
    /// The last attempt's HTTP status, if a reply came.
    pub last_status: Option<i64>,
    /// The last attempt's error, if it failed.
    pub last_error: Option<String>,
    /// The last attempt, ms since the epoch.
    pub last_ms: Option<i64>,
    /// Delivered, ms since the epoch.
    pub delivered_ms: Option<i64>,
    /// The node delivering it now, if any.
    pub claim_node: Option<String>,
}

const ROW_SELECT: &str =
    "SELECT event_id, hook, tenant, call_id, ord, kind, created_ms, body, state, attempts,
    next_ms, last_status, last_error, last_ms, delivered_ms, claim_node FROM webhook_outbox";

fn row(r: &sqlx::any::AnyRow) -> Result<OutboxRow, StoreError> {
    Ok(OutboxRow {
        event_id: r.try_get(0)?,
        hook: r.try_get(1)?,
        tenant: r.try_get(2)?,
        call_id: r.try_get(3)?,
        ord: r.try_get(4)?,
        kind: r.try_get(5)?,
        created_ms: r.try_get(6)?,
        body: r.try_get(7)?,
        state: r.try_get(8)?,
        attempts: r.try_get(9)?,
        next_ms: r.try_get(10)?,
        last_status: r.try_get(11)?,
        last_error: r.try_get(12)?,
        last_ms: r.try_get(13)?,
        delivered_ms: r.try_get(14)?,
        claim_node: r.try_get(15)?,
    })
}

/// What `dhwani webhooks list` selects.
#[derive(Debug, Clone, Default)]
pub struct OutboxFilter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only rows in this state.
    pub state: Option<String>,
    /// Only this call's.
    pub call_id: Option<String>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// How an attempt ended, for [`Store::webhook_attempted`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx reply.
    Delivered {
        /// Its status.
        status: u16,
    },
    /// Failed: tried again at `next_ms`, or dead-lettered (`None`).
    Failed {
        /// The status, if a reply came.
        status: Option<u16>,
        /// Why.
        error: String,
        /// Due again.
        next_ms: Option<i64>,
    },
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

fn event_id() -> String {
    format!("evt_{:032x}", rand::random::<u128>())
}

/// What an event is about: a call (its record id, and the call's key
/// that seals the body, `store::sealed`), or a caller by pseudonym
/// (events of no call). Events about the same one are delivered in
/// order.
#[derive(Clone, Copy)]
enum About<'a> {
    Call(&'a str, Option<&'a recordings::keys::Key>),
    Caller(&'a str),
}

/// Adds the event to the outbox of each webhook of `tenant` that wants
/// `kind`, in `tx`.
async fn enqueue(
    tx: &mut Tx<'_>,
    hooks: &Hooks,
    tenant: &str,
    about: About<'_>,
    kind: &str,
    at_ms: i64,
    data: serde_json::Value,
) -> Result<bool, StoreError> {
    let names = hooks.wanting(tenant, kind);
    if names.is_empty() {
        return Ok(false);
    }
    let id = event_id();
    let body = serde_json::json!({
        "version": BODY_VERSION,
        "id": id,
        "type": kind,
        "created_ms": at_ms,
        "tenant": tenant,
        "call_id": match about { About::Call(c, _) => c.into(), About::Caller(_) => serde_json::Value::Null },
        "data": data,
    })
    .to_string();
    // A call's events are sealed under the call's key (`store::sealed`).
    let body = match about {
        About::Call(c, Some(k)) => super::sealed::seal(k, c, "body", &body),
        _ => body,
    };
    let order_key = match about {
        About::Call(c, _) => c.to_owned(),
        About::Caller(p) => format!("caller:{p}"),
    };
    let ord = hooks.next_ord(at_ms);
    for name in names {
        sqlx::query(
            "INSERT INTO webhook_outbox (event_id, hook, tenant, call_id, ord, kind, created_ms, body,
                state, attempts, next_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9)",
        )
        .bind(&id)
        .bind(&name)
        .bind(tenant)
        .bind(&order_key)
        .bind(ord)
        .bind(kind)
        .bind(at_ms)
        .bind(&body)
        .bind(at_ms)
        .execute(&mut **tx)
        .await?;
    }
    Ok(true)
}

/// What a call's row was before this write: (answered, ended), or None
/// for a new call.
pub(super) type Before = Option<(bool, bool)>;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn call_data(c: &CallRecord, full: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "sip_call_id": c.sip_call_id,
        "from": c.caller,
        "to": c.called,
        "flow": c.flow,
        "flow_version": c.flow_version,
        "start_ms": c.start_ms,
        "answer_ms": c.answer_ms,
    });
    if full && let Ok(serde_json::Value::Object(cdr)) = serde_json::to_value(c) {
        v = serde_json::json!({"cdr": cdr});
    }
    v
}

impl Store {
    /// Sets which webhooks each tenant has (the server at start, the CLI
    /// before a privacy operation that reports to them).
    pub fn set_webhooks(&self, tenants: &[TenantConfig]) {
        let map = tenants
            .iter()
            .filter(|t| !t.webhooks.is_empty())
            .map(|t| {
                let hooks = t
                    .webhooks
                    .iter()
                    .map(|w| (w.name.clone(), w.events.clone()))
                    .collect();
                (t.id.clone(), hooks)
            })
            .collect();
        if let Ok(mut m) = self.hooks.by_tenant.write() {
            *m = map;
        }
    }

    /// Woken when this process added outbox rows.
    pub fn webhooks_added(&self) -> &tokio::sync::Notify {
        &self.hooks.added
    }

    /// Whether a call's row needs reading before it is written (its
    /// tenant has webhooks).
    pub(super) fn call_events_wanted(&self, tenant: &str) -> bool {
        self.hooks.tenant_has_hooks(tenant)
    }

    /// The outbox rows a call record makes: started (new row), answered
    /// (first with an answer time), ended (first with an end).
    pub(super) async fn enqueue_call(
        &self,
        tx: &mut Tx<'_>,
        c: &CallRecord,
        before: Before,
        key: Option<&recordings::keys::Key>,
    ) -> Result<bool, StoreError> {
        let hooks = &*self.hooks;
        let (answered, ended) = before.unwrap_or((false, false));
        let mut any = false;
        if before.is_none() {
            any |= enqueue(
                tx,
                hooks,
                &c.tenant,
                About::Call(&c.call_id, key),
                "call.started",
                c.start_ms,
                call_data(c, false),
            )
            .await?;
        }
        if let Some(at) = c.answer_ms
            && !answered
        {
            any |= enqueue(
                tx,
                hooks,
                &c.tenant,
                About::Call(&c.call_id, key),
                "call.answered",
                at,
                call_data(c, false),
            )
            .await?;
        }
        if let Some(at) = c.end_ms
            && !ended
        {
            any |= enqueue(
                tx,
                hooks,
                &c.tenant,
                About::Call(&c.call_id, key),
                "call.ended",
                at,
                call_data(c, true),
            )
            .await?;
        }
        Ok(any)
    }

    /// The outbox rows a timeline event makes (its kinds in
    /// [`webhook_kind`]).
    pub(super) async fn enqueue_event(
        &self,
        tx: &mut Tx<'_>,
        e: &Event,
        key: Option<&recordings::keys::Key>,
    ) -> Result<bool, StoreError> {
        let detail: serde_json::Value =
            serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null);
        let Some(kind) = webhook_kind(&e.kind, &detail) else {
            return Ok(false);
        };
        if !self.hooks.any_wants(kind) {
            return Ok(false);
        }
        let tenant = sqlx::query("SELECT tenant FROM calls WHERE call_id = $1")
            .bind(&e.call_id)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(tenant) = tenant else {
            return Ok(false);
        };
        let tenant: String = tenant.try_get(0)?;
        let s = |k: &str| detail.get(k).cloned().unwrap_or(serde_json::Value::Null);
        let data = match kind {
            "step.entered" => serde_json::json!({"step": s("name")}),
            "digits.collected" => serde_json::json!({
                "step": e.step, "digits": s("digits"), "result": s("result"), "attempt": s("attempt"),
            }),
            "consent.given" | "consent.refused" => {
                serde_json::json!({"step": e.step, "answer": s("answer")})
            }
            _ => {
                // recording.ready: the call's recording or a message.
                let (id, what) = if e.kind == "record" {
                    (s("id"), "message")
                } else {
                    (s("id"), "call")
                };
                serde_json::json!({"recording_id": id, "what": what, "seconds": s("seconds"), "duration_ms": s("duration_ms")})
            }
        };
        enqueue(
            tx,
            &self.hooks,
            &tenant,
            About::Call(&e.call_id, key),
            kind,
            e.at_ms,
            data,
        )
        .await
    }

    /// Reports an event about a caller (by the number's pseudonym) to the
    /// tenant's webhooks, in `tx`: a consent withdrawal, in the
    /// withdrawal's transaction.
    pub(super) async fn enqueue_plain(
        &self,
        tx: &mut Tx<'_>,
        (tenant, pseudonym): (&str, &str),
        kind: &str,
        data: serde_json::Value,
    ) -> Result<bool, StoreError> {
        enqueue(
            tx,
            &self.hooks,
            tenant,
            About::Caller(pseudonym),
            kind,
            now_ms(),
            data,
        )
        .await
    }

    /// Reports what an erasure of the caller `pseudonym` did (its own
    /// transaction: an erasure is many).
    pub async fn report_erasure(
        &self,
        tenant: &str,
        pseudonym: &str,
        data: serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let added = self
            .enqueue_plain(&mut tx, (tenant, pseudonym), "erasure.done", data)
            .await?;
        tx.commit().await?;
        if added {
            self.hooks.added.notify_one();
        }
        Ok(())
    }

    /// Rows of `tenant` due at `now_ms`: pending, unclaimed (or the claim
    /// lapsed), and the earliest pending one of their call and webhook;
    /// oldest first.
    pub async fn due_webhooks(
        &self,
        tenant: &str,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ROW_SELECT} o WHERE tenant = $3 AND state = 'pending' AND next_ms <= $1
               AND (claim_until_ms IS NULL OR claim_until_ms < $1)
               AND NOT EXISTS (SELECT 1 FROM webhook_outbox p
                   WHERE p.tenant = o.tenant AND p.hook = o.hook AND p.call_id = o.call_id
                     AND p.state = 'pending' AND p.ord < o.ord)
             ORDER BY ord LIMIT $2"
        )))
        .bind(now_ms)
        .bind(limit)
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        let rows = rows.iter().map(row).collect::<Result<_, _>>()?;
        self.unseal_bodies(rows).await
    }

    /// Claims up to `limit` rows of `tenant` due at `now_ms` for `node`
    /// until `until_ms`, in one statement, and returns them oldest first:
    /// the rows [`Store::due_webhooks`] lists, less any another node
    /// claimed first (the outer conditions are checked again on each row
    /// as it is updated, so two nodes never both get one).
    pub async fn claim_due_webhooks(
        &self,
        tenant: &str,
        node: &str,
        (now_ms, until_ms): (i64, i64),
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(
            "UPDATE webhook_outbox SET claim_node = $1, claim_until_ms = $2
             WHERE (event_id, hook) IN (
                 SELECT event_id, hook FROM webhook_outbox o
                 WHERE tenant = $3 AND state = 'pending' AND next_ms <= $4
                   AND (claim_until_ms IS NULL OR claim_until_ms < $4)
                   AND NOT EXISTS (SELECT 1 FROM webhook_outbox p
                       WHERE p.tenant = o.tenant AND p.hook = o.hook AND p.call_id = o.call_id
                         AND p.state = 'pending' AND p.ord < o.ord)
                 ORDER BY ord LIMIT $5)
               AND state = 'pending' AND (claim_until_ms IS NULL OR claim_until_ms < $4)
             RETURNING event_id, hook, tenant, call_id, ord, kind, created_ms, body, state, attempts,
                 next_ms, last_status, last_error, last_ms, delivered_ms, claim_node",
        )
        .bind(node)
        .bind(until_ms)
        .bind(tenant)
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<OutboxRow> = rows.iter().map(row).collect::<Result<_, _>>()?;
        out.sort_by_key(|r| r.ord);
        self.unseal_bodies(out).await
    }

    /// Claims a due row for `node` until `until_ms`: true if it is ours
    /// (it was still pending and unclaimed, or its claim had lapsed).
    pub async fn claim_webhook(
        &self,
        r: &OutboxRow,
        node: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhook_outbox SET claim_node = $1, claim_until_ms = $2
             WHERE event_id = $3 AND hook = $4 AND state = 'pending'
               AND (claim_until_ms IS NULL OR claim_until_ms < $5)",
        )
        .bind(node)
        .bind(until_ms)
        .bind(&r.event_id)
        .bind(&r.hook)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a claimed row back unattempted, due at `next_ms` (a limit
    /// held it back).
    pub async fn release_webhook(
        &self,
        r: &OutboxRow,
        node: &str,
        next_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_outbox SET claim_node = NULL, claim_until_ms = NULL, next_ms = $1
             WHERE event_id = $2 AND hook = $3 AND claim_node = $4",
        )
        .bind(next_ms)
        .bind(&r.event_id)
        .bind(&r.hook)
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records an attempt of a row `node` holds.
    pub async fn webhook_attempted(
        &self,
        r: &OutboxRow,
        node: &str,
        now_ms: i64,
        a: &Attempt,
    ) -> Result<(), StoreError> {
        let q = match a {
            Attempt::Delivered { status } => sqlx::query(
                "UPDATE webhook_outbox SET state = 'delivered', attempts = attempts + 1,
                    last_status = $1, last_error = NULL, last_ms = $2, delivered_ms = $2,
                    claim_node = NULL, claim_until_ms = NULL
                 WHERE event_id = $3 AND hook = $4 AND claim_node = $5",
            )
            .bind(i64::from(*status))
            .bind(now_ms),
            Attempt::Failed {
                status,
                error,
                next_ms,
            } => sqlx::query(
                "UPDATE webhook_outbox SET state = $1, attempts = attempts + 1,
                    last_status = $2, last_error = $3, last_ms = $4, next_ms = $5,
                    claim_node = NULL, claim_until_ms = NULL
                 WHERE event_id = $6 AND hook = $7 AND claim_node = $8",
            )
            .bind(if next_ms.is_some() { "pending" } else { "dead" })
            .bind(status.map(i64::from))
            .bind(error.clone())
            .bind(now_ms)
            .bind(next_ms.unwrap_or(now_ms)),
        };
        q.bind(&r.event_id)
            .bind(&r.hook)
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Opens the bodies of a call's events, sealed under its key.
    async fn unseal_bodies(&self, mut rows: Vec<OutboxRow>) -> Result<Vec<OutboxRow>, StoreError> {
        for r in &mut rows {
            if super::sealed::is_sealed(&r.body) {
                r.body = self
                    .unseal_text(&r.call_id, "body", std::mem::take(&mut r.body))
                    .await?;
            }
        }
        Ok(rows)
    }

    /// Drops the claims `node` left (it starts again: it holds none).
    pub async fn clear_webhook_claims(&self, node: &str) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE webhook_outbox SET claim_node = NULL, claim_until_ms = NULL WHERE claim_node = $1",
        )
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Outbox rows, newest first.
    pub async fn webhook_rows(&self, f: &OutboxFilter) -> Result<Vec<OutboxRow>, StoreError> {
        // A constant query: the filters are bound values ('' = any).
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ROW_SELECT} WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR state = $2)
               AND ($3 = '' OR call_id = $3)
             ORDER BY ord DESC, hook LIMIT $4"
        )))
        .bind(f.tenant.clone().unwrap_or_default())
        .bind(f.state.clone().unwrap_or_default())
        .bind(f.call_id.clone().unwrap_or_default())
        .bind(if f.limit > 0 { f.limit } else { 100 })
        .fetch_all(&self.pool)
        .await?;
        let rows = rows.iter().map(row).collect::<Result<_, _>>()?;
        self.unseal_bodies(rows).await
    }

    /// An event's rows (one per webhook).
    pub async fn webhook_event(&self, event_id: &str) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ROW_SELECT} WHERE event_id = $1 ORDER BY hook"
        )))
        .bind(event_id)
        .fetch_all(&self.pool)
        .await?;
        let rows = rows.iter().map(row).collect::<Result<_, _>>()?;
        self.unseal_bodies(rows).await
    }

    /// Sends an event again (every webhook's row of it, or one), as new:
    /// pending, due now, attempts from 0. Rows delivered stay so unless
    /// `delivered_too`. Returns the rows changed.
    pub async fn retry_webhook(
        &self,
        event_id: &str,
        hook: Option<&str>,
        delivered_too: bool,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_ms = $1,
                claim_node = NULL, claim_until_ms = NULL, delivered_ms = NULL
             WHERE event_id = $2 AND ($3 = '' OR hook = $3)
               AND (state = 'dead' OR (state = 'pending' AND claim_node IS NULL) OR ($4 = 1 AND state = 'delivered'))",
        )
        .bind(now_ms)
        .bind(event_id)
        .bind(hook.unwrap_or(""))
        .bind(i64::from(delivered_too))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Every dead row of `tenant` pending again (the receiver is back).
    pub async fn retry_dead_webhooks(&self, tenant: &str, now_ms: i64) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_ms = $1
             WHERE tenant = $2 AND state = 'dead'",
        )
        .bind(now_ms)
        .bind(tenant)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Deletes a call's outbox rows (with its timeline or its number).
    pub async fn delete_webhooks_of(&self, call_id: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM webhook_outbox WHERE call_id = $1")
            .bind(call_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Deletes rows delivered before `before_ms`.
    pub async fn sweep_webhooks(&self, before_ms: i64) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "DELETE FROM webhook_outbox WHERE state = 'delivered' AND delivered_ms < $1",
        )
        .bind(before_ms)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }
}

/// The webhook event a timeline event is, if any: `step` entered,
/// `digits` collected, `consent` given or refused, a recording saved or
/// a message recorded.
pub fn webhook_kind(kind: &str, detail: &serde_json::Value) -> Option<&'static str> {
    match kind {
        "step" => Some("step.entered"),
        "digits" => Some("digits.collected"),
        "consent" => Some(
            if detail.get("granted").and_then(|g| g.as_str()) == Some("yes") {
                "consent.given"
            } else {
                "consent.refused"
            },
        ),
        "recording" if detail.get("event").and_then(|e| e.as_str()) == Some("saved") => {
            Some("recording.ready")
        }
        "record" => Some("recording.ready"),
        _ => None,
    }
}

/// Whether a timeline event of `kind` may become a webhook event that is
/// never dropped: such events go through the log writer's lossless queue
/// (a few per call). `step` events are many: they stay in the bounded
/// queue, and an overloaded writer may drop them (and their
/// `step.entered`).
pub fn lossless_kind(kind: &str) -> bool {
    matches!(kind, "digits" | "consent" | "recording" | "record")
}
