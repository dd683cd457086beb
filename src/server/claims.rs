//! This node's side of the agent claims in the store (`store::claims`):
//! one task that runs the driver's claims, releases and heartbeats in the
//! order they were asked, so a release never overtakes the claim it ends.
//!
//! The heartbeat (every second) renews the node's lease and its claims,
//! drops any claim of this node the ACD no longer holds (a claim is never
//! left behind to be renewed for ever), and reads which agents other nodes
//! hold, for [`crate::acd::Acd::held_elsewhere`].

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use crate::store::Store;
use crate::store::claims::ClaimRow;

/// What the driver asks.
#[derive(Debug)]
pub enum Op {
    /// Claim an agent before ringing it; answered by [`Reply::Claimed`].
    Claim {
        /// The ACD's attempt.
        attempt: u64,
        /// Tenant id.
        tenant: String,
        /// Extension.
        extension: String,
    },
    /// The agent answered (`on-call`) or wraps up (`wrap-up`): the claim
    /// is kept, saying so (another node must not ring an agent in its
    /// wrap-up here).
    OnCall {
        /// Tenant id.
        tenant: String,
        /// Extension.
        extension: String,
        /// `on-call` or `wrap-up`.
        state: &'static str,
    },
    /// The ring or the call is over.
    Release {
        /// Tenant id.
        tenant: String,
        /// Extension.
        extension: String,
    },
    /// Renew; keep only these claims; report who others hold.
    Heartbeat {
        /// The agents this node rings or has on a call.
        held: Vec<(String, String)>,
    },
}

/// What the task answers.
#[derive(Debug)]
pub enum Reply {
    /// The claim for `attempt`: ours (ring), or another node's (do not).
    Claimed {
        /// The attempt.
        attempt: u64,
        /// Ours.
        ok: bool,
    },
    /// The agents other nodes hold now (sent when it changes).
    Elsewhere(HashSet<(String, String)>),
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Drops this node's claims of an earlier life and takes its lease; then
/// starts the task.
pub async fn start(
    store: Store,
    node: String,
    lease: Duration,
) -> Result<(mpsc::UnboundedSender<Op>, mpsc::UnboundedReceiver<Reply>), crate::store::StoreError> {
    let started = ms(SystemTime::now());
    let stale = store.clear_claims(&node).await?;
    if stale > 0 {
        tracing::info!(node = %node, claims = stale, "claims on agents left by this node's last run dropped");
    }
    if let Some(until) = store.node_lease(&node).await?
        && until > started
    {
        tracing::warn!(node = %node, "this node's lease was still live: a crash moments ago, or a second server with the same registrar.node (give each node its own name)");
    }
    store
        .renew_node(&node, started, started + lease.as_millis() as i64)
        .await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Op>();
    let (reply_tx, reply_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let lease_ms = lease.as_millis() as i64;
        let mut last_elsewhere: Option<HashSet<(String, String)>> = None;
        while let Some(op) = rx.recv().await {
            let now = ms(SystemTime::now());
            match op {
                Op::Claim {
                    attempt,
                    tenant,
                    extension,
                } => {
                    let row = ClaimRow {
                        tenant,
                        extension,
                        node: node.clone(),
                        state: "ringing".into(),
                        lease_until_ms: now + lease_ms,
                    };
                    let ok = match store.claim_agent(&row, now).await {
                        Ok(ok) => ok,
                        Err(e) => {
                            // The store is down: this node still serves
                            // its callers (a single node needs no claim).
                            tracing::warn!(error = %e, extension = %row.extension, "agent claim could not be stored; ringing anyway");
                            true
                        }
                    };
                    let _ = reply_tx.send(Reply::Claimed { attempt, ok });
                }
                Op::OnCall {
                    tenant,
                    extension,
                    state,
                } => {
                    let row = ClaimRow {
                        tenant,
                        extension,
                        node: node.clone(),
                        state: state.into(),
                        lease_until_ms: now + lease_ms,
                    };
                    if let Err(e) = store.claim_agent(&row, now).await {
                        tracing::warn!(error = %e, "agent claim could not be updated");
                    }
                }
                Op::Release { tenant, extension } => {
                    if let Err(e) = store.release_agent(&tenant, &extension, &node).await {
                        tracing::warn!(error = %e, "agent claim could not be released; the heartbeat retries");
                    }
                }
                Op::Heartbeat { held } => {
                    if let Err(e) = store.renew_node(&node, started, now + lease_ms).await {
                        tracing::warn!(error = %e, "node lease could not be renewed");
                        continue;
                    }
                    let Ok(claims) = store.claims(now).await else {
                        continue;
                    };
                    let held: HashSet<(String, String)> = held.into_iter().collect();
                    let mut elsewhere = HashSet::new();
                    for c in claims {
                        let key = (c.tenant, c.extension);
                        if c.node != node {
                            elsewhere.insert(key);
                        } else if !held.contains(&key) {
                            let _ = store.release_agent(&key.0, &key.1, &node).await;
                        }
                    }
                    if last_elsewhere.as_ref() != Some(&elsewhere) {
                        last_elsewhere = Some(elsewhere.clone());
                        let _ = reply_tx.send(Reply::Elsewhere(elsewhere));
                    }
                }
            }
        }
        // The driver is gone (shutdown): nothing is held any more.
        let _ = store.clear_claims(&node).await;
    });
    Ok((tx, reply_rx))
}
