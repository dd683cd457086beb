//! Agents, their phones' registrations and their state changes in the
//! store: the rows behind `dhwani agents`, the registrar's bindings (so
//! they survive a restart, and nodes sharing a database see each other's)
//! and the agent state history.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError};

/// An agent as stored (credentials as digest HA1s only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentRow {
    /// Tenant id.
    pub tenant: String,
    /// Extension (digest username).
    pub extension: String,
    /// Display name.
    pub name: String,
    /// `H(extension:realm:password)`, SHA-256.
    #[serde(skip)]
    pub ha1_sha256: Option<String>,
    /// The same, MD5.
    #[serde(skip)]
    pub ha1_md5: Option<String>,
    /// Skills, `NAME:LEVEL` separated by commas.
    pub skills: String,
    /// Has the supervisor role.
    pub supervisor: bool,
    /// Added, ms since the epoch.
    pub created_ms: i64,
}

/// A registration binding as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindingRow {
    /// Tenant id.
    pub tenant: String,
    /// The agent's extension.
    pub extension: String,
    /// The Contact URI the phone registered.
    pub contact: String,
    /// `UDP`, `TCP` or `TLS`: the flow the REGISTER came on.
    pub transport: String,
    /// Our address of that flow.
    pub local_addr: String,
    /// The phone's address as we saw it (NAT: not the Contact's).
    pub remote_addr: String,
    /// Expires, ms since the epoch.
    pub expires_ms: i64,
    /// The REGISTER's Call-ID.
    pub call_id: String,
    /// Its CSeq.
    pub cseq: i64,
    /// Path header values (RFC 3327), one per line.
    pub path: String,
    /// The node that holds the flow.
    pub node: String,
}

/// One agent state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentEventRow {
    /// Order of the changes (two may share a millisecond).
    pub seq: i64,
    /// Tenant id.
    pub tenant: String,
    /// Extension.
    pub extension: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// State before.
    pub from_state: String,
    /// State after.
    pub to_state: String,
    /// Why.
    pub reason: String,
}

impl Store {
    /// Adds an agent, or replaces its name and HA1s.
    pub async fn put_agent(&self, a: &AgentRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agents (tenant, extension, name, ha1_sha256, ha1_md5, skills, created_ms, supervisor)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (tenant, extension) DO UPDATE SET
                name = excluded.name, ha1_sha256 = excluded.ha1_sha256, ha1_md5 = excluded.ha1_md5,
                skills = excluded.skills, supervisor = excluded.supervisor",
        )
        .bind(&a.tenant)
        .bind(&a.extension)
        .bind(&a.name)
        .bind(a.ha1_sha256.clone())
        .bind(a.ha1_md5.clone())
        .bind(&a.skills)
        .bind(a.created_ms)
        .bind(i64::from(a.supervisor))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes an agent and its bindings; false if there was none.
    pub async fn remove_agent(&self, tenant: &str, extension: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM agents WHERE tenant = $1 AND extension = $2")
            .bind(tenant)
            .bind(extension)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM agent_bindings WHERE tenant = $1 AND extension = $2")
            .bind(tenant)
            .bind(extension)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Every stored agent (all tenants, or one), by tenant and extension.
    pub async fn agents(&self, tenant: Option<&str>) -> Result<Vec<AgentRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, extension, name, ha1_sha256, ha1_md5, skills, created_ms, supervisor FROM agents
             WHERE ($1 = '' OR tenant = $1) ORDER BY tenant, extension",
        )
        .bind(tenant.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AgentRow {
                    tenant: r.try_get(0)?,
                    extension: r.try_get(1)?,
                    name: r.try_get(2)?,
                    ha1_sha256: r.try_get(3)?,
                    ha1_md5: r.try_get(4)?,
                    skills: r.try_get(5)?,
                    created_ms: r.try_get(6)?,
                    supervisor: r.try_get::<i64, _>(7)? != 0,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Replaces the bindings `node` holds for one agent with `rows`
    /// (empty: unregistered there); other nodes' bindings stay.
    pub async fn replace_bindings(
        &self,
        node: &str,
        tenant: &str,
        extension: &str,
        rows: &[BindingRow],
    ) -> Result<(), StoreError> {
        let one = [(tenant.to_owned(), extension.to_owned(), rows.to_vec())];
        self.replace_many_bindings(node, &one).await
    }

    /// Replaces the bindings `node` holds for several agents, in one
    /// transaction. A contact in `rows` that another node held (the phone
    /// now registers through this one) moves here.
    pub async fn replace_many_bindings(
        &self,
        node: &str,
        agents: &[(String, String, Vec<BindingRow>)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (tenant, extension, rows) in agents {
            sqlx::query(
                "DELETE FROM agent_bindings WHERE tenant = $1 AND extension = $2 AND node = $3",
            )
            .bind(tenant)
            .bind(extension)
            .bind(node)
            .execute(&mut *tx)
            .await?;
            for b in rows {
                sqlx::query(
                    "DELETE FROM agent_bindings WHERE tenant = $1 AND extension = $2 AND contact = $3",
                )
                .bind(tenant)
                .bind(extension)
                .bind(&b.contact)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO agent_bindings (tenant, extension, contact, transport, local_addr,
                        remote_addr, expires_ms, call_id, cseq, path, node)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&b.tenant)
                .bind(&b.extension)
                .bind(&b.contact)
                .bind(&b.transport)
                .bind(&b.local_addr)
                .bind(&b.remote_addr)
                .bind(b.expires_ms)
                .bind(&b.call_id)
                .bind(b.cseq)
                .bind(&b.path)
                .bind(&b.node)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Bindings that have not expired at `now_ms`, of one node or all.
    pub async fn bindings(
        &self,
        node: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<BindingRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, extension, contact, transport, local_addr, remote_addr, expires_ms,
                call_id, cseq, path, node FROM agent_bindings
             WHERE expires_ms > $1 AND ($2 = '' OR node = $2)
             ORDER BY tenant, extension, contact",
        )
        .bind(now_ms)
        .bind(node.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BindingRow {
                    tenant: r.try_get(0)?,
                    extension: r.try_get(1)?,
                    contact: r.try_get(2)?,
                    transport: r.try_get(3)?,
                    local_addr: r.try_get(4)?,
                    remote_addr: r.try_get(5)?,
                    expires_ms: r.try_get(6)?,
                    call_id: r.try_get(7)?,
                    cseq: r.try_get(8)?,
                    path: r.try_get(9)?,
                    node: r.try_get(10)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// The highest agent event sequence number stored (0 for none).
    pub async fn last_agent_event_seq(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT MAX(seq) FROM agent_events")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.unwrap_or(0))
    }

    /// Appends agent state changes.
    pub async fn agent_events(&self, rows: &[AgentEventRow]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for e in rows {
            sqlx::query(
                "INSERT INTO agent_events (seq, tenant, extension, at_ms, from_state, to_state, reason)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(e.seq)
            .bind(&e.tenant)
            .bind(&e.extension)
            .bind(e.at_ms)
            .bind(&e.from_state)
            .bind(&e.to_state)
            .bind(&e.reason)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The latest state change of each agent of a tenant (or all).
    pub async fn latest_agent_events(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<AgentEventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.seq, e.tenant, e.extension, e.at_ms, e.from_state, e.to_state, e.reason
             FROM agent_events e
             WHERE ($1 = '' OR e.tenant = $1) AND e.seq = (SELECT MAX(seq) FROM agent_events x
                WHERE x.tenant = e.tenant AND x.extension = e.extension)
             ORDER BY e.tenant, e.extension",
        )
        .bind(tenant.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AgentEventRow {
                    seq: r.try_get(0)?,
                    tenant: r.try_get(1)?,
                    extension: r.try_get(2)?,
                    at_ms: r.try_get(3)?,
                    from_state: r.try_get(4)?,
                    to_state: r.try_get(5)?,
                    reason: r.try_get(6)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

/// One queue event of a call, with the call's end (for queue statistics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEventRow {
    /// The call.
    pub call_id: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// The event's JSON detail.
    pub detail: String,
    /// The call's end, if it ended.
    pub end_ms: Option<i64>,
}

impl Store {
    /// The queue events of a tenant's calls that started at or after
    /// `since_ms`, in call and time order.
    pub async fn queue_events(
        &self,
        tenant: &str,
        since_ms: i64,
    ) -> Result<Vec<QueueEventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.call_id, e.at_ms, e.detail, c.end_ms FROM call_events e
             JOIN calls c ON c.call_id = e.call_id
             WHERE c.tenant = $1 AND c.start_ms >= $2 AND e.kind = 'queue'
             ORDER BY e.call_id, e.seq",
        )
        .bind(tenant)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<QueueEventRow> = rows
            .iter()
            .map(|r| {
                Ok(QueueEventRow {
                    call_id: r.try_get(0)?,
                    at_ms: r.try_get(1)?,
                    detail: r.try_get(2)?,
                    end_ms: r.try_get(3)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        for e in &mut out {
            e.detail = self
                .unseal_text(&e.call_id, "detail", std::mem::take(&mut e.detail))
                .await?;
        }
        Ok(out)
    }
}

/// A state change asked of an agent from the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCommandRow {
    /// Tenant id.
    pub tenant: String,
    /// Extension.
    pub extension: String,
    /// `login`, `logout`, `pause` or `unpause`.
    pub command: String,
    /// Why (for a pause).
    pub reason: String,
    /// Asked at, ms since the epoch.
    pub at_ms: i64,
    /// Unique (made on insert when empty): what a node remembers it
    /// applied.
    pub id: String,
    /// The node that made the change (`cli` for `dhwani agents state`):
    /// it applied it already.
    pub origin: String,
}

impl Store {
    /// Stores a state change for every node sharing the store to apply
    /// (each applies those of other origins; see `server::agent_commands`).
    pub async fn put_agent_command(&self, c: &AgentCommandRow) -> Result<(), StoreError> {
        let id = if c.id.is_empty() {
            format!("{:016x}", rand::random::<u64>())
        } else {
            c.id.clone()
        };
        sqlx::query(
            "INSERT INTO agent_commands (tenant, extension, command, reason, at_ms, id, origin)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.tenant)
        .bind(&c.extension)
        .bind(&c.command)
        .bind(&c.reason)
        .bind(c.at_ms)
        .bind(id)
        .bind(&c.origin)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// State changes asked at or after `since_ms`, oldest first.
    pub async fn agent_commands_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<AgentCommandRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, extension, command, reason, at_ms, id, origin FROM agent_commands
             WHERE at_ms >= $1 ORDER BY at_ms, id",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AgentCommandRow {
                    tenant: r.try_get(0)?,
                    extension: r.try_get(1)?,
                    command: r.try_get(2)?,
                    reason: r.try_get(3)?,
                    at_ms: r.try_get(4)?,
                    id: r.try_get(5)?,
                    origin: r.try_get(6)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Forgets state changes asked before `before_ms` (every node has
    /// applied them long since).
    pub async fn prune_agent_commands(&self, before_ms: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM agent_commands WHERE at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}

/// One queue's figures.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Figures {
    /// Callers in the queue now.
    pub waiting: u64,
    /// The longest of their waits, seconds.
    pub longest_wait_secs: f64,
    /// Callers who reached an agent.
    pub answered: u64,
    /// Of them, within the queue's service level.
    pub answered_in_service_level: u64,
    /// Callers who hung up while waiting.
    pub abandoned: u64,
    /// Callers sent to `on overflow`.
    pub overflowed: u64,
    /// Callers who left with a key of the flow's `queue`.
    pub left_by_key: u64,
    /// Mean wait of the answered, seconds.
    pub mean_wait_secs: f64,
    /// answered within the service level / (answered + abandoned), percent.
    pub service_level_pct: f64,
}

/// The figures of each queue named in `rows` at `now_ms`, with the
/// service level in seconds per queue.
pub fn figures(
    rows: &[QueueEventRow],
    now_ms: i64,
    service_level: impl Fn(&str) -> u64,
) -> std::collections::BTreeMap<String, Figures> {
    let mut out: std::collections::BTreeMap<String, Figures> = Default::default();
    let mut i = 0;
    while i < rows.len() {
        let call = &rows[i].call_id;
        let mut j = i;
        while j < rows.len() && rows[j].call_id == *call {
            j += 1;
        }
        let events: Vec<(i64, serde_json::Value)> = rows[i..j]
            .iter()
            .map(|r| (r.at_ms, serde_json::from_str(&r.detail).unwrap_or_default()))
            .collect();
        let end = rows[i].end_ms;
        i = j;
        let Some((joined_at, joined)) = events.iter().find(|(_, d)| d["event"] == "joined") else {
            continue;
        };
        let name = joined["name"].as_str().unwrap_or_default().to_owned();
        let f = out.entry(name.clone()).or_default();
        if let Some((_, b)) = events.iter().find(|(_, d)| d["event"] == "bridged") {
            let wait = b["wait_secs"].as_f64().unwrap_or_default();
            f.answered += 1;
            f.mean_wait_secs += wait;
            if wait <= service_level(&name) as f64 {
                f.answered_in_service_level += 1;
            }
        } else if events.iter().any(|(_, d)| d["event"] == "overflow") {
            f.overflowed += 1;
        } else if events.iter().any(|(_, d)| d["event"] == "left") {
            f.left_by_key += 1;
        } else if end.is_some() {
            f.abandoned += 1;
        } else {
            f.waiting += 1;
            let w = (now_ms - joined_at).max(0) as f64 / 1000.0;
            f.longest_wait_secs = f.longest_wait_secs.max(w);
        }
    }
    for f in out.values_mut() {
        if f.answered > 0 {
            f.mean_wait_secs /= f.answered as f64;
        }
        let offered = f.answered + f.abandoned;
        if offered > 0 {
            f.service_level_pct = 100.0 * f.answered_in_service_level as f64 / offered as f64;
        }
    }
    out
}
