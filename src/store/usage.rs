//! Anonymised usage analytics: per tenant, UTC day, flow and kind of
//! outcome, how many calls there were, how long they lasted, how many
//! waited in a queue and were answered by an agent, how many were
//! recorded. Nothing in them names a caller, a number, a call or an
//! agent: the outcome is only its kind (`hangup`, `transferred`,
//! `caller hung up`...), never its text, which may carry a number.
//!
//! Per flow step too (`usage_steps`, `usage_choices`): visits, time in
//! the step, calls the caller ended there (drop-off), and the menu
//! choices out of it (a key, `timeout`, `invalid`; longer values, which a
//! caller typed, are only `other`).
//!
//! The rows are counted when a call's CDR is first written with its end
//! (in the same transaction), and erasure and retention never touch them:
//! they stay after the calls they came from are gone. `dhwani stats`
//! shows them with small counts suppressed (fewer than k calls in a row:
//! the figures of that row are withheld), so a row cannot single out one
//! caller's call.

use serde::Serialize;
use sqlx::Row;

use super::{CallRecord, Store, StoreError};

/// One row of usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// Tenant id.
    pub tenant: String,
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Flow name.
    pub flow: String,
    /// The kind of outcome.
    pub outcome: String,
    /// Calls.
    pub calls: i64,
    /// Of them answered.
    pub answered: i64,
    /// Their answered time, ms.
    pub duration_ms: i64,
    /// That waited in a queue.
    pub queued: i64,
    /// That an agent answered.
    pub agent_answered: i64,
    /// Time waited in queues, ms.
    pub wait_ms: i64,
    /// Time talking to agents, ms.
    pub talk_ms: i64,
    /// Recorded.
    pub recorded: i64,
}

/// The kind of an outcome text: the part before its first `:`, for the
/// kinds a CDR has; anything else is `other`.
pub fn outcome_kind(outcome: Option<&str>) -> &'static str {
    let head = outcome.map(|o| o.split(':').next().unwrap_or(o).trim());
    match head {
        Some("hangup") => "hangup",
        Some("caller hung up") => "caller hung up",
        Some("queued") => "queued",
        Some("transferred") => "transferred",
        Some("error") => "error",
        Some("not answered") => "not answered",
        Some("supervised") => "supervised",
        Some("unfinished") => "unfinished",
        None => "unknown",
        Some(_) => "other",
    }
}

fn day_of(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| "1970-01-01".into())
}

/// Counts an ended call (inside the writer's transaction).
pub(super) async fn count(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    c: &CallRecord,
) -> Result<(), StoreError> {
    let answered = c.answer_ms.is_some() as i64;
    let queued = c.queue.is_some() as i64;
    let agent = c.talk_ms.is_some() as i64;
    sqlx::query(
        "INSERT INTO usage_daily (tenant, day, flow, outcome, calls, answered, duration_ms,
            queued, agent_answered, wait_ms, talk_ms, recorded)
         VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (tenant, day, flow, outcome) DO UPDATE SET
            calls = usage_daily.calls + 1,
            answered = usage_daily.answered + excluded.answered,
            duration_ms = usage_daily.duration_ms + excluded.duration_ms,
            queued = usage_daily.queued + excluded.queued,
            agent_answered = usage_daily.agent_answered + excluded.agent_answered,
            wait_ms = usage_daily.wait_ms + excluded.wait_ms,
            talk_ms = usage_daily.talk_ms + excluded.talk_ms,
            recorded = usage_daily.recorded + excluded.recorded",
    )
    .bind(&c.tenant)
    .bind(day_of(c.start_ms))
    .bind(&c.flow)
    .bind(outcome_kind(c.outcome.as_deref()))
    .bind(answered)
    .bind(c.duration_ms.unwrap_or(0))
    .bind(queued)
    .bind(agent)
    .bind(c.wait_ms.unwrap_or(0))
    .bind(c.talk_ms.unwrap_or(0))
    .bind(c.recording_id.is_some() as i64)
    .execute(&mut **tx)
    .await?;
    // Per step: visits, time, the caller hanging up in it (the last
    // step, when the caller ended the call), and the choices out of it.
    let caller_left = c.hangup_by.as_deref() == Some("caller");
    let last = c.path.len().saturating_sub(1);
    for (i, v) in c.path.iter().enumerate() {
        if v.step.is_empty() {
            continue;
        }
        sqlx::query(
            "INSERT INTO usage_steps (tenant, day, flow, step, entered, dropped, time_ms)
             VALUES ($1, $2, $3, $4, 1, $5, $6)
             ON CONFLICT (tenant, day, flow, step) DO UPDATE SET
                entered = usage_steps.entered + 1,
                dropped = usage_steps.dropped + excluded.dropped,
                time_ms = usage_steps.time_ms + excluded.time_ms",
        )
        .bind(&c.tenant)
        .bind(day_of(c.start_ms))
        .bind(&c.flow)
        .bind(&v.step)
        .bind((caller_left && i == last) as i64)
        .bind(v.ms.max(0))
        .execute(&mut **tx)
        .await?;
        if let Some(choice) = &v.choice {
            sqlx::query(
                "INSERT INTO usage_choices (tenant, day, flow, step, choice, chosen)
                 VALUES ($1, $2, $3, $4, $5, 1)
                 ON CONFLICT (tenant, day, flow, step, choice) DO UPDATE SET
                    chosen = usage_choices.chosen + 1",
            )
            .bind(&c.tenant)
            .bind(day_of(c.start_ms))
            .bind(&c.flow)
            .bind(&v.step)
            .bind(choice)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// One flow step's usage on a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRow {
    /// Tenant id.
    pub tenant: String,
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Flow name.
    pub flow: String,
    /// Step name.
    pub step: String,
    /// Visits (a call that came back counts again).
    pub entered: i64,
    /// Calls the caller ended in this step (drop-off).
    pub dropped: i64,
    /// Time spent in it, ms, all visits.
    pub time_ms: i64,
}

/// How often a menu choice left a step on a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChoiceRow {
    /// Tenant id.
    pub tenant: String,
    /// UTC day.
    pub day: String,
    /// Flow name.
    pub flow: String,
    /// Step name.
    pub step: String,
    /// The key (or `timeout`, `invalid`, `other`).
    pub choice: String,
    /// Times chosen.
    pub chosen: i64,
}

impl Store {
    /// Step rows (as [`Store::usage`] selects).
    pub async fn usage_steps(
        &self,
        tenant: Option<&str>,
        from: &str,
        to: &str,
    ) -> Result<(Vec<StepRow>, Vec<ChoiceRow>), StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, day, flow, step, entered, dropped, time_ms FROM usage_steps
             WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR day >= $2) AND ($3 = '' OR day <= $3)
             ORDER BY tenant, day, flow, step",
        )
        .bind(tenant.unwrap_or(""))
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let steps = rows
            .iter()
            .map(|r| {
                Ok(StepRow {
                    tenant: r.try_get(0)?,
                    day: r.try_get(1)?,
                    flow: r.try_get(2)?,
                    step: r.try_get(3)?,
                    entered: r.try_get(4)?,
                    dropped: r.try_get(5)?,
                    time_ms: r.try_get(6)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        let rows = sqlx::query(
            "SELECT tenant, day, flow, step, choice, chosen FROM usage_choices
             WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR day >= $2) AND ($3 = '' OR day <= $3)
             ORDER BY tenant, day, flow, step, choice",
        )
        .bind(tenant.unwrap_or(""))
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let choices = rows
            .iter()
            .map(|r| {
                Ok(ChoiceRow {
                    tenant: r.try_get(0)?,
                    day: r.try_get(1)?,
                    flow: r.try_get(2)?,
                    step: r.try_get(3)?,
                    choice: r.try_get(4)?,
                    chosen: r.try_get(5)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok((steps, choices))
    }

    /// Usage rows, of one tenant or all, from day `from` to day `to`
    /// (inclusive, `YYYY-MM-DD`; empty: unbounded).
    pub async fn usage(
        &self,
        tenant: Option<&str>,
        from: &str,
        to: &str,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, day, flow, outcome, calls, answered, duration_ms, queued,
                agent_answered, wait_ms, talk_ms, recorded FROM usage_daily
             WHERE ($1 = '' OR tenant = $1) AND ($2 = '' OR day >= $2) AND ($3 = '' OR day <= $3)
             ORDER BY tenant, day, flow, outcome",
        )
        .bind(tenant.unwrap_or(""))
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UsageRow {
                    tenant: r.try_get(0)?,
                    day: r.try_get(1)?,
                    flow: r.try_get(2)?,
                    outcome: r.try_get(3)?,
                    calls: r.try_get(4)?,
                    answered: r.try_get(5)?,
                    duration_ms: r.try_get(6)?,
                    queued: r.try_get(7)?,
                    agent_answered: r.try_get(8)?,
                    wait_ms: r.try_get(9)?,
                    talk_ms: r.try_get(10)?,
                    recorded: r.try_get(11)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_is_reduced_to_its_kind_so_no_number_is_kept() {
        assert_eq!(
            outcome_kind(Some("transferred: +919812345678")),
            "transferred"
        );
        assert_eq!(outcome_kind(Some("hangup: voicemail")), "hangup");
        assert_eq!(outcome_kind(Some("caller hung up")), "caller hung up");
        assert_eq!(outcome_kind(Some("+919812345678")), "other");
        assert_eq!(outcome_kind(None), "unknown");
        assert_eq!(day_of(1_796_222_878_948), "2026-12-02");
    }
}
