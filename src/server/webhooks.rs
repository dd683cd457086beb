//! The webhook deliverer: one task per node that takes due rows from the
//! outbox (`store::outbox`), claims each, POSTs it with its tenant's
//! sender (`tenants::webhooks`) and records the result: delivered, due
//! again after a backoff, or dead after the tenant's attempts.
//!
//! It wakes when this process wrote outbox rows, when a delivery ended
//! (the next event of that call may be due now) and every second (rows
//! other processes wrote: the CLI, other nodes; retries coming due). Each
//! tenant is asked for at most as many rows as it has free slots, so one
//! tenant with a slow or dead receiver never holds up another's events.
//! Deliveries run on their own tasks, never a call's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::store::outbox::{Attempt, KEEP_DELIVERED_MS, OutboxRow};
use crate::tenants::webhooks::{Sender, Sent};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Starts the deliverer for `senders` (tenant id → sender). It ends when
/// `stop` is cancelled, after letting running deliveries finish (at most
/// 5 s; a delivery cut short is sent again later).
pub fn start(
    store: Store,
    node: String,
    senders: HashMap<String, Arc<Sender>>,
    stop: CancellationToken,
    metrics: Arc<crate::metrics::Metrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(store, node, senders, stop, metrics))
}

async fn run(
    store: Store,
    node: String,
    senders: HashMap<String, Arc<Sender>>,
    stop: CancellationToken,
    metrics: Arc<crate::metrics::Metrics>,
) {
    // A node starting again holds no delivery.
    match store.clear_webhook_claims(&node).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            rows = n,
            "webhook deliveries this node left unfinished are due again"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot drop this node's old webhook claims; they lapse")
        }
    }
    if senders.is_empty() {
        return;
    }
    let mut running: JoinSet<()> = JoinSet::new();
    let mut last_sweep = Instant::now() - Duration::from_secs(3600);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = store.webhooks_added().notified() => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        while running.try_join_next().is_some() {}
        if last_sweep.elapsed() >= Duration::from_secs(3600) {
            last_sweep = Instant::now();
            match store.sweep_webhooks(now_ms() - KEEP_DELIVERED_MS).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    rows = n,
                    "delivered webhook events older than 7 days deleted"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot sweep delivered webhook events"),
            }
        }
        for (tenant, sender) in &senders {
            let free = sender.free_slots(Instant::now());
            if free == 0 {
                continue;
            }
            let now = now_ms();
            let lease = sender.lease().as_millis() as i64;
            let claimed = match store
                .claim_due_webhooks(tenant, &node, (now, now + lease), free as i64)
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the webhook outbox; trying again");
                    break;
                }
            };
            for row in claimed {
                let Some(slot) = sender.slot(Instant::now()) else {
                    // The tenant's rate: the rest go back, due a moment later.
                    if let Err(e) = store.release_webhook(&row, &node, now + 100).await {
                        tracing::warn!(error = %e, "cannot give a webhook event back; its claim lapses");
                    }
                    continue;
                };
                let (store, node, sender) = (store.clone(), node.clone(), Arc::clone(sender));
                let metrics = Arc::clone(&metrics);
                running.spawn(async move {
                    metrics.webhook(deliver(&store, &node, &sender, &row).await);
                    drop(slot);
                });
            }
        }
    }
    // Let what runs finish, briefly; what is cut short is due again when
    // its claim is dropped.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while running.join_next().await.is_some() {}
    })
    .await;
    running.abort_all();
    if let Err(e) = store.clear_webhook_claims(&node).await {
        tracing::warn!(error = %e, "cannot drop this node's webhook claims; they lapse");
    }
}

/// One attempt of a claimed row, and its record.
/// One attempt; returns its outcome for the metrics (`delivered`,
/// `failed`, `dead_lettered`).
async fn deliver(store: &Store, node: &str, sender: &Sender, row: &OutboxRow) -> &'static str {
    let unix = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let attempt_no = row.attempts + 1;
    let sent = sender
        .send(
            &row.hook,
            (&row.event_id, &row.kind, attempt_no),
            &row.body,
            unix,
        )
        .await;
    let mut outcome = "delivered";
    let attempt = match sent {
        Sent::Delivered(status) => Attempt::Delivered { status },
        Sent::Failed(status, error) => {
            let dead = attempt_no >= i64::from(sender.max_attempts);
            outcome = if dead { "dead_lettered" } else { "failed" };
            let next_ms = (!dead).then(|| {
                let d = sender.backoff(attempt_no as u32, rand::random::<f64>());
                now_ms() + d.as_millis() as i64
            });
            if dead {
                tracing::warn!(tenant = %row.tenant, webhook = %row.hook, event = %row.kind, event_id = %row.event_id, attempts = attempt_no, error = %error, "webhook event dead-lettered after its last attempt (dhwani webhooks retry sends it again)");
            } else {
                tracing::info!(tenant = %row.tenant, webhook = %row.hook, event = %row.kind, attempts = attempt_no, error = %error, "webhook delivery failed; it is tried again later");
            }
            Attempt::Failed {
                status,
                error,
                next_ms,
            }
        }
    };
    if let Err(e) = store.webhook_attempted(row, node, now_ms(), &attempt).await {
        // The claim lapses and the event is tried again.
        tracing::warn!(error = %e, "cannot record a webhook attempt");
    }
    outcome
}
