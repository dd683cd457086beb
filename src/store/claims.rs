//! Claims on agents and the nodes' leases: what lets several nodes share
//! one database without two of them ringing, or bridging, the same agent.
//!
//! A node claims an agent before it rings any of the agent's phones, keeps
//! the claim while the agent rings and talks, renews it with its own
//! lease, and releases it when the ring or the call is over. A claim held
//! by another node is refused until that node releases it or its lease
//! runs out (the node died: SIGKILL, power, network). A node that starts
//! drops the claims its earlier life left behind: it holds no calls then.
//!
//! The claim is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE`, atomic on
//! PostgreSQL (two nodes claiming at once: one row wins, the other's
//! update sees the winner's row and is refused) and on SQLite.

use sqlx::Row;

use super::{Store, StoreError};

/// A claim as stored (`dhwani agents list` shows who holds an agent).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClaimRow {
    /// Tenant id.
    pub tenant: String,
    /// The agent's extension.
    pub extension: String,
    /// The node holding it.
    pub node: String,
    /// `ringing` or `on-call`.
    pub state: String,
    /// Good until, ms since the epoch (renewed while the node lives).
    pub lease_until_ms: i64,
}

impl Store {
    /// Claims agent `extension` of `tenant` for `node` in `state` until
    /// `lease_until_ms`: true if it is ours now (it was free, its holder's
    /// lease ran out before `now_ms`, or we held it already).
    pub async fn claim_agent(&self, c: &ClaimRow, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO agent_claims (tenant, extension, node, state, lease_until_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant, extension) DO UPDATE
               SET node = excluded.node, state = excluded.state,
                   lease_until_ms = excluded.lease_until_ms
             WHERE agent_claims.node = excluded.node OR agent_claims.lease_until_ms < $6",
        )
        .bind(&c.tenant)
        .bind(&c.extension)
        .bind(&c.node)
        .bind(&c.state)
        .bind(c.lease_until_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Releases `node`'s claim on an agent (nothing if another node holds
    /// it now).
    pub async fn release_agent(
        &self,
        tenant: &str,
        extension: &str,
        node: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM agent_claims WHERE tenant = $1 AND extension = $2 AND node = $3")
            .bind(tenant)
            .bind(extension)
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The node's heartbeat: its lease and every claim it holds are good
    /// until `lease_until_ms`. Returns how many claims it holds.
    pub async fn renew_node(
        &self,
        node: &str,
        started_ms: i64,
        lease_until_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO nodes (node, started_ms, lease_until_ms) VALUES ($1, $2, $3)
             ON CONFLICT (node) DO UPDATE
               SET started_ms = excluded.started_ms, lease_until_ms = excluded.lease_until_ms",
        )
        .bind(node)
        .bind(started_ms)
        .bind(lease_until_ms)
        .execute(&mut *tx)
        .await?;
        let held = sqlx::query("UPDATE agent_claims SET lease_until_ms = $1 WHERE node = $2")
            .bind(lease_until_ms)
            .bind(node)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(held)
    }

    /// Drops every claim of `node` (at its start: an earlier life's).
    /// Returns how many there were.
    pub async fn clear_claims(&self, node: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM agent_claims WHERE node = $1")
            .bind(node)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Claims still good at `now_ms`, of every node.
    pub async fn claims(&self, now_ms: i64) -> Result<Vec<ClaimRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, extension, node, state, lease_until_ms FROM agent_claims
             WHERE lease_until_ms >= $1 ORDER BY tenant, extension",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ClaimRow {
                    tenant: r.try_get(0)?,
                    extension: r.try_get(1)?,
                    node: r.try_get(2)?,
                    state: r.try_get(3)?,
                    lease_until_ms: r.try_get(4)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// A node's lease: until when it was last renewed, if ever.
    pub async fn node_lease(&self, node: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT lease_until_ms FROM nodes WHERE node = $1")
            .bind(node)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }
}
