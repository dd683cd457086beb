//! The log writer: call tasks hand records to a channel (never waiting on
//! the database), and one task writes them in batches, each batch one
//! transaction, at least every `flush` interval. On shutdown the channel
//! closes and everything still queued is written before the task ends, so
//! a graceful stop loses nothing; a crash loses at most one interval.
//!
//! When the database is unreachable, batches are retried with backoff and
//! kept (up to [`MAX_BACKLOG`] records; beyond that the oldest are dropped
//! and the loss is logged with a count).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{CallRecord, Event, Store};

/// Records held while the database is down.
pub const MAX_BACKLOG: usize = 1_000_000;
/// Records written per transaction at most.
const BATCH: usize = 1000;

/// Something to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Insert or complete a call (its CDR).
    Call(CallRecord),
    /// An interaction-log event.
    Event(Event),
}

/// Where call tasks send records. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LogSender(mpsc::UnboundedSender<Record>);

impl LogSender {
    /// Queues a record; never waits.
    pub fn send(&self, r: Record) {
        if self.0.send(r).is_err() {
            tracing::error!("interaction log writer has stopped: record lost");
        }
    }
}

/// Starts the writer; it ends when every [`LogSender`] is dropped and the
/// queue is written.
pub fn start(store: Store, flush: Duration) -> (LogSender, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run(store, rx, flush));
    (LogSender(tx), task)
}

async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<Record>, flush: Duration) {
    let mut pending: VecDeque<Record> = VecDeque::new();
    let mut open = true;
    let mut backoff = Duration::from_millis(100);
    let mut dropped: u64 = 0;
    while open || !pending.is_empty() {
        if open {
            // Gather for one interval, or until a batch is full.
            let deadline = tokio::time::Instant::now() + flush;
            while pending.len() < BATCH {
                tokio::select! {
                    r = rx.recv() => match r {
                        Some(r) => pending.push_back(r),
                        None => { open = false; break; }
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            while pending.len() < BATCH * 8 {
                match rx.try_recv() {
                    Ok(r) => pending.push_back(r),
                    Err(_) => break,
                }
            }
        }
        while !pending.is_empty() {
            let n = pending.len().min(BATCH);
            let batch: Vec<Record> = pending.iter().take(n).cloned().collect();
            match store.write(&batch).await {
                Ok(()) => {
                    pending.drain(..n);
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    tracing::error!(error = %e, queued = pending.len(), "cannot write the interaction log; retrying");
                    if pending.len() > MAX_BACKLOG {
                        let excess = pending.len() - MAX_BACKLOG;
                        pending.drain(..excess);
                        dropped += excess as u64;
                        tracing::error!(
                            dropped,
                            "interaction log backlog full: oldest records dropped"
                        );
                    }
                    if !open && backoff > Duration::from_secs(5) {
                        tracing::error!(
                            lost = pending.len(),
                            "giving up on the interaction log at shutdown"
                        );
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    // Keep draining the channel meanwhile.
                    while let Ok(r) = rx.try_recv() {
                        pending.push_back(r);
                    }
                }
            }
            if open && pending.len() < BATCH {
                break;
            }
        }
    }
}
