//! The data principal's rights beyond access and erasure (DPDP Act
//! §§11-14): requests with their 30-day due date, nominees, and
//! grievances with their 24-hour acknowledgement and 30-day resolution.
//! Callers are named by their pseudonym (never the number), so these rows
//! outlive an erasure without holding the number.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};

/// A request is answered within this (DPDP Rules: 30 days at most).
pub const REQUEST_DUE_MS: i64 = 30 * 24 * 3600 * 1000;
/// A grievance is acknowledged within this.
pub const GRIEVANCE_ACK_MS: i64 = 24 * 3600 * 1000;
/// ... and resolved within this.
pub const GRIEVANCE_RESOLVE_MS: i64 = 30 * 24 * 3600 * 1000;

/// A data principal's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRow {
    /// `R` + 8 digits.
    pub request_id: String,
    /// Tenant id.
    pub tenant: String,
    /// `access`, `correction`, `erasure`, `consent-withdrawal`,
    /// `nomination`.
    pub kind: String,
    /// The caller, by pseudonym.
    pub subject: String,
    /// The nominee who made it, by pseudonym (empty: the caller).
    pub nominee: String,
    /// Opened, ms since the epoch.
    pub opened_ms: i64,
    /// Due (opened + 30 days).
    pub due_ms: i64,
    /// Closed, if.
    pub closed_ms: Option<i64>,
    /// What was done.
    pub outcome: Option<String>,
}

/// A grievance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrievanceRow {
    /// `G` + 8 digits (what the caller quotes).
    pub grievance_id: String,
    /// Tenant id.
    pub tenant: String,
    /// The caller, by pseudonym (empty: not known).
    pub subject: String,
    /// Its category.
    pub category: String,
    /// `phone` (the flow's `grievance`) or `cli`.
    pub channel: String,
    /// The call it was lodged in (phone).
    pub call_id: Option<String>,
    /// The message the caller left (phone).
    pub recording_id: Option<String>,
    /// Opened, ms since the epoch.
    pub opened_ms: i64,
    /// Acknowledgement due.
    pub ack_due_ms: i64,
    /// Acknowledged.
    pub acked_ms: Option<i64>,
    /// Resolution due.
    pub resolve_due_ms: i64,
    /// Resolved.
    pub resolved_ms: Option<i64>,
    /// How.
    pub resolution: Option<String>,
}

impl GrievanceRow {
    /// A new grievance of `tenant` at `now_ms`.
    pub fn new(tenant: &str, subject: &str, category: &str, channel: &str, now_ms: i64) -> Self {
        GrievanceRow {
            grievance_id: format!("G{:08}", rand::random::<u32>() % 100_000_000),
            tenant: tenant.to_owned(),
            subject: subject.to_owned(),
            category: category.to_owned(),
            channel: channel.to_owned(),
            call_id: None,
            recording_id: None,
            opened_ms: now_ms,
            ack_due_ms: now_ms + GRIEVANCE_ACK_MS,
            acked_ms: None,
            resolve_due_ms: now_ms + GRIEVANCE_RESOLVE_MS,
            resolved_ms: None,
            resolution: None,
        }
    }

    /// Overdue at `now_ms`: not acknowledged in 24 h, or not resolved in
    /// 30 days.
    pub fn overdue(&self, now_ms: i64) -> bool {
        self.resolved_ms.is_none()
            && ((self.acked_ms.is_none() && now_ms > self.ack_due_ms)
                || now_ms > self.resolve_due_ms)
    }
}

impl RequestRow {
    /// Open and past its due date at `now_ms`.
    pub fn overdue(&self, now_ms: i64) -> bool {
        self.closed_ms.is_none() && now_ms > self.due_ms
    }
}

const REQUEST_SELECT: &str =
    "SELECT request_id, tenant, kind, subject, nominee, opened_ms, due_ms, closed_ms, outcome
    FROM privacy_requests";
const GRIEVANCE_SELECT: &str =
    "SELECT grievance_id, tenant, subject, category, channel, call_id, recording_id,
    opened_ms, ack_due_ms, acked_ms, resolve_due_ms, resolved_ms, resolution FROM grievances";

fn request(r: &sqlx::any::AnyRow) -> Result<RequestRow, sqlx::Error> {
    Ok(RequestRow {
        request_id: r.try_get(0)?,
        tenant: r.try_get(1)?,
        kind: r.try_get(2)?,
        subject: r.try_get(3)?,
        nominee: r.try_get(4)?,
        opened_ms: r.try_get(5)?,
        due_ms: r.try_get(6)?,
        closed_ms: r.try_get(7)?,
        outcome: r.try_get(8)?,
    })
}

fn grievance(r: &sqlx::any::AnyRow) -> Result<GrievanceRow, sqlx::Error> {
    Ok(GrievanceRow {
        grievance_id: r.try_get(0)?,
        tenant: r.try_get(1)?,
        subject: r.try_get(2)?,
        category: r.try_get(3)?,
        channel: r.try_get(4)?,
        call_id: r.try_get(5)?,
        recording_id: r.try_get(6)?,
        opened_ms: r.try_get(7)?,
        ack_due_ms: r.try_get(8)?,
        acked_ms: r.try_get(9)?,
        resolve_due_ms: r.try_get(10)?,
        resolved_ms: r.try_get(11)?,
        resolution: r.try_get(12)?,
    })
}

/// Inserts a grievance in `tx` (the log writer's, for the phone).
pub(super) async fn insert_grievance(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    g: &GrievanceRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO grievances (grievance_id, tenant, subject, category, channel, call_id, recording_id,
            opened_ms, ack_due_ms, acked_ms, resolve_due_ms, resolved_ms, resolution)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (grievance_id) DO NOTHING",
    )
    .bind(&g.grievance_id)
    .bind(&g.tenant)
    .bind(&g.subject)
    .bind(&g.category)
    .bind(&g.channel)
    .bind(g.call_id.clone())
    .bind(g.recording_id.clone())
    .bind(g.opened_ms)
    .bind(g.ack_due_ms)
    .bind(g.acked_ms)
    .bind(g.resolve_due_ms)
    .bind(g.resolved_ms)
    .bind(g.resolution.clone())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Corrects what a flow captured in a call's timeline: every `custom`
    /// (a flow's `log`) or `digits` event whose detail has `field` gets
    /// `value`; then a `correction` event naming the field (not the
    /// values) is added. Returns the events changed.
    pub async fn correct_field(
        &self,
        call_id: &str,
        field: &str,
        value: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        // The details are sealed under the call's key (read before the
        // transaction takes the connection).
        let key = self.call_key(call_id).await?;
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT seq, detail FROM call_events WHERE call_id = $1 AND kind IN ('custom', 'digits')
             ORDER BY seq",
        )
        .bind(call_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut changed = 0;
        for r in &rows {
            let seq: i64 = r.try_get(0)?;
            let detail: String = r.try_get(1)?;
            let detail = if super::sealed::is_sealed(&detail) {
                match key
                    .as_ref()
                    .and_then(|k| super::sealed::open(k, call_id, "detail", &detail))
                {
                    Some(d) => d,
                    None => continue,
                }
            } else {
                detail
            };
            let Ok(serde_json::Value::Object(mut m)) = serde_json::from_str(&detail) else {
                continue;
            };
            if !m.contains_key(field) {
                continue;
            }
            m.insert(field.to_owned(), value.into());
            sqlx::query("UPDATE call_events SET detail = $1 WHERE call_id = $2 AND seq = $3")
                .bind(seal_with(
                    key.as_ref(),
                    call_id,
                    serde_json::Value::Object(m).to_string(),
                ))
                .bind(call_id)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            changed += 1;
        }
        if changed > 0 {
            let last =
                sqlx::query("SELECT MAX(seq), MIN(at_ms) FROM call_events WHERE call_id = $1")
                    .bind(call_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let seq = last.try_get::<Option<i64>, _>(0)?.unwrap_or(0) + 1;
            let start = last.try_get::<Option<i64>, _>(1)?.unwrap_or(now_ms);
            sqlx::query(
                "INSERT INTO call_events (call_id, seq, at_ms, offset_ms, step, kind, detail)
                 VALUES ($1, $2, $3, $4, '', 'correction', $5)",
            )
            .bind(call_id)
            .bind(seq)
            .bind(now_ms)
            .bind(now_ms - start)
            .bind(seal_with(
                key.as_ref(),
                call_id,
                serde_json::json!({"field": field, "events": changed}).to_string(),
            ))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Opens a request: `kind` about `subject` (a pseudonym), made by the
    /// caller or by a nominee (`nominee`, a pseudonym; empty: the caller).
    pub async fn open_request(
        &self,
        tenant: &str,
        kind: &str,
        (subject, nominee): (&str, &str),
        now_ms: i64,
    ) -> Result<RequestRow, StoreError> {
        let r = RequestRow {
            request_id: format!("R{:08}", rand::random::<u32>() % 100_000_000),
            tenant: tenant.to_owned(),
            kind: kind.to_owned(),
            subject: subject.to_owned(),
            nominee: nominee.to_owned(),
            opened_ms: now_ms,
            due_ms: now_ms + REQUEST_DUE_MS,
            closed_ms: None,
            outcome: None,
        };
        sqlx::query(
            "INSERT INTO privacy_requests (request_id, tenant, kind, subject, nominee, opened_ms, due_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&r.request_id)
        .bind(&r.tenant)
        .bind(&r.kind)
        .bind(&r.subject)
        .bind(&r.nominee)
        .bind(r.opened_ms)
        .bind(r.due_ms)
        .execute(&self.pool)
        .await?;
        Ok(r)
    }

    /// A request by id.
    pub async fn request(&self, id: &str) -> Result<Option<RequestRow>, StoreError> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{REQUEST_SELECT} WHERE request_id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.as_ref().map(request).transpose()?)
    }

    /// Closes an open request with what was done; false if it was not
    /// open.
    pub async fn close_request(
        &self,
        id: &str,
        outcome: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE privacy_requests SET closed_ms = $1, outcome = $2
             WHERE request_id = $3 AND closed_ms IS NULL",
        )
        .bind(now_ms)
        .bind(outcome)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Requests of a tenant (or all), oldest first; only open ones with
    /// `open`.
    pub async fn requests(
        &self,
        tenant: Option<&str>,
        open: bool,
    ) -> Result<Vec<RequestRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{REQUEST_SELECT} WHERE ($1 = '' OR tenant = $1) AND ($2 = 0 OR closed_ms IS NULL)
             ORDER BY opened_ms, request_id"
        )))
        .bind(tenant.unwrap_or(""))
        .bind(i64::from(open))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(request).collect::<Result<_, _>>()?)
    }

    /// Registers `nominee` (pseudonym) for `subject` (pseudonym).
    pub async fn add_nominee(
        &self,
        tenant: &str,
        subject: &str,
        nominee: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO nominees (tenant, subject, nominee, added_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant, subject, nominee) DO NOTHING",
        )
        .bind(tenant)
        .bind(subject)
        .bind(nominee)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Removes a nominee; false if there was none.
    pub async fn remove_nominee(
        &self,
        tenant: &str,
        subject: &str,
        nominee: &str,
    ) -> Result<bool, StoreError> {
        let r =
            sqlx::query("DELETE FROM nominees WHERE tenant = $1 AND subject = $2 AND nominee = $3")
                .bind(tenant)
                .bind(subject)
                .bind(nominee)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The nominees of `subject` (pseudonyms).
    pub async fn nominees(&self, tenant: &str, subject: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT nominee FROM nominees WHERE tenant = $1 AND subject = $2 ORDER BY added_ms",
        )
        .bind(tenant)
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    /// Opens a grievance (the CLI's; the phone's come through the writer).
    pub async fn open_grievance(&self, g: &GrievanceRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_grievance(&mut tx, g).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Acknowledges an open grievance; false if none was waiting for it.
    pub async fn ack_grievance(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE grievances SET acked_ms = $1
             WHERE grievance_id = $2 AND acked_ms IS NULL AND resolved_ms IS NULL",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Resolves a grievance (acknowledging it too if it was not); false if
    /// it was resolved already or does not exist.
    pub async fn resolve_grievance(
        &self,
        id: &str,
        resolution: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE grievances SET resolved_ms = $1, resolution = $2,
                acked_ms = COALESCE(acked_ms, $1)
             WHERE grievance_id = $3 AND resolved_ms IS NULL",
        )
        .bind(now_ms)
        .bind(resolution)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Grievances of a tenant (or all), oldest first; only unresolved
    /// ones with `open`.
    pub async fn grievances(
        &self,
        tenant: Option<&str>,
        open: bool,
    ) -> Result<Vec<GrievanceRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{GRIEVANCE_SELECT} WHERE ($1 = '' OR tenant = $1) AND ($2 = 0 OR resolved_ms IS NULL)
             ORDER BY opened_ms, grievance_id"
        )))
        .bind(tenant.unwrap_or(""))
        .bind(i64::from(open))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(grievance).collect::<Result<_, _>>()?)
    }
}

impl Store {
    /// The daily check (the server's sweeper): open requests and grievances
    /// past a due date, counted per tenant and logged (no numbers).
    pub async fn log_overdue(&self, now: i64) {
        let store = self;
        let mut per: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
        match store.requests(None, true).await {
            Ok(rows) => {
                for r in rows.iter().filter(|r| r.overdue(now)) {
                    per.entry(r.tenant.clone()).or_default().0 += 1;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the privacy requests"),
        }
        match store.grievances(None, true).await {
            Ok(rows) => {
                for g in rows.iter().filter(|g| g.overdue(now)) {
                    per.entry(g.tenant.clone()).or_default().1 += 1;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the grievances"),
        }
        for (tenant, (requests, grievances)) in per {
            tracing::warn!(
                tenant = %tenant,
                requests,
                grievances,
                "privacy requests or grievances are past their due date (dhwani privacy requests list --overdue, dhwani grievance list --overdue)"
            );
        }
    }
}

/// A timeline detail as stored: sealed when the call has a key.
fn seal_with(key: Option<&recordings::keys::Key>, call_id: &str, detail: String) -> String {
    match key {
        Some(k) => super::sealed::seal(k, call_id, "detail", &detail),
        None => detail,
    }
}
