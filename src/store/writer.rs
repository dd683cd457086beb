//! The log writer: call tasks hand records to a channel (never waiting on
//! the database), and one task writes them in batches, each batch one
//! transaction, at least every `flush` interval. On shutdown the channel
//! closes and everything still queued is written before the task ends, so
//! a graceful stop loses nothing; a crash loses at most one interval.
//!
//! When the database is unreachable, batches are retried with backoff and
//! kept (up to [`MAX_BACKLOG`] records; beyond that the oldest are dropped
//! and the loss is logged with a count).
//!
//! The queue is bounded: timeline events wait in a channel of
//! [`EVENT_QUEUE`] records; when the writer falls that far behind, further
//! events are dropped (never waited for: a call's media must not stall on
//! the database), counted, and reported in one summary line per interval.
//! CDR rows have their own queue and are never dropped: there are at most
//! a few per call, so the call cap bounds them. The timeline events a
//! webhook may report (digits, consent, recordings: `outbox::lossless_kind`)
//! go through that queue too.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{CallRecord, Event, Store};

/// Records held while the database is down.
pub const MAX_BACKLOG: usize = 1_000_000;
/// Records written per transaction at most.
const BATCH: usize = 1000;
/// Timeline events queued at most before new ones are dropped.
pub const EVENT_QUEUE: usize = 100_000;

/// Something to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Insert or complete a call (its CDR).
    Call(Box<CallRecord>),
    /// An interaction-log event.
    Event(Event),
    /// A grievance a caller lodged by phone (the flow's `grievance`).
    Grievance(Box<super::rights::GrievanceRow>),
}

/// Sees every record as it is queued (the server's metrics and live-call
/// table).
pub type Observer = Arc<dyn Fn(&Record) + Send + Sync>;

/// The writer's counters, read by the metrics at scrape time.
#[derive(Default)]
pub struct WriterStats {
    /// Records written.
    pub written: AtomicU64,
    /// Transactions committed.
    pub batches: AtomicU64,
    /// Time spent in committed and failed transactions, microseconds.
    pub write_micros: AtomicU64,
    /// Transactions that failed (their records are retried).
    pub failures: AtomicU64,
    /// Records gathered and not yet written.
    pub backlog: AtomicU64,
    /// Called with each transaction's duration (the metrics' histogram).
    pub on_batch: std::sync::OnceLock<Box<dyn Fn(Duration) + Send + Sync>>,
}

impl std::fmt::Debug for WriterStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterStats")
            .field("written", &self.written)
            .field("batches", &self.batches)
            .finish_non_exhaustive()
    }
}

/// Where call tasks send records. Cheap to clone.
#[derive(Clone)]
pub struct LogSender {
    calls: mpsc::UnboundedSender<Record>,
    events: mpsc::Sender<Record>,
    dropped: Arc<AtomicU64>,
    stats: Arc<WriterStats>,
    observer: Option<Observer>,
}

impl std::fmt::Debug for LogSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSender")
            .field("dropped", &self.dropped)
            .field("observed", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

impl LogSender {
    /// Queues a record; never waits. A timeline event that finds the queue
    /// full is dropped and counted.
    pub fn send(&self, r: Record) {
        if let Some(o) = &self.observer {
            o(&r);
        }
        match r {
            // Events that may be reported to a webhook (a few per call)
            // are never dropped: they share the CDRs' queue (and so stay
            // in order with the call's row).
            Record::Event(ref e) if super::outbox::lossless_kind(&e.kind) => {
                if self.calls.send(r).is_err() {
                    tracing::error!("interaction log writer has stopped: event lost");
                }
            }
            Record::Call(_) | Record::Grievance(_) => {
                if self.calls.send(r).is_err() {
                    tracing::error!("interaction log writer has stopped: CDR row lost");
                }
            }
            Record::Event(_) => match self.events.try_send(r) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    tracing::error!("interaction log writer has stopped: event lost");
                }
            },
        }
    }

    /// Timeline events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The writer's counters, and the count of timeline events dropped
    /// at the full queue (shared: they outlive this sender).
    pub fn stats(&self) -> (Arc<WriterStats>, Arc<AtomicU64>) {
        (Arc::clone(&self.stats), Arc::clone(&self.dropped))
    }

    /// This sender (and its clones) shows every record to `observer`
    /// first.
    pub fn with_observer(mut self, observer: Observer) -> LogSender {
        self.observer = Some(observer);
        self
    }
}

/// Starts the writer; it ends when every [`LogSender`] is dropped and the
/// queue is written.
pub fn start(store: Store, flush: Duration) -> (LogSender, tokio::task::JoinHandle<()>) {
    start_with_capacity(store, flush, EVENT_QUEUE)
}

/// [`start`] with another event queue size (tests).
pub fn start_with_capacity(
    store: Store,
    flush: Duration,
    events: usize,
) -> (LogSender, tokio::task::JoinHandle<()>) {
    let (calls_tx, calls_rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::channel(events.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    let stats = Arc::new(WriterStats::default());
    let task = tokio::spawn(run(
        Arc::clone(&stats),
        store,
        Queues {
            calls: calls_rx,
            events: events_rx,
            calls_open: true,
            events_open: true,
        },
        flush,
        Arc::clone(&dropped),
    ));
    (
        LogSender {
            calls: calls_tx,
            events: events_tx,
            dropped,
            stats,
            observer: None,
        },
        task,
    )
}

struct Queues {
    calls: mpsc::UnboundedReceiver<Record>,
    events: mpsc::Receiver<Record>,
    calls_open: bool,
    events_open: bool,
}

impl Queues {
    fn open(&self) -> bool {
        self.calls_open || self.events_open
    }

    /// The next record, or None when both queues are closed and empty.
    async fn recv(&mut self) -> Option<Record> {
        loop {
            if !self.open() {
                return None;
            }
            tokio::select! {
                r = self.calls.recv(), if self.calls_open => match r {
                    Some(r) => return Some(r),
                    None => self.calls_open = false,
                },
                r = self.events.recv(), if self.events_open => match r {
                    Some(r) => return Some(r),
                    None => self.events_open = false,
                },
            }
        }
    }

    fn try_recv(&mut self) -> Option<Record> {
        self.calls
            .try_recv()
            .ok()
            .or_else(|| self.events.try_recv().ok())
    }
}

async fn run(
    stats: Arc<WriterStats>,
    store: Store,
    mut rx: Queues,
    flush: Duration,
    full_drops: Arc<AtomicU64>,
) {
    let mut pending: VecDeque<Record> = VecDeque::new();
    let mut open = true;
    let mut backoff = Duration::from_millis(100);
    let mut dropped: u64 = 0;
    let mut reported_full: u64 = 0;
    while open || !pending.is_empty() {
        // One summary line per interval for events dropped at the queue.
        let now_full = full_drops.load(Ordering::Relaxed);
        if now_full > reported_full {
            tracing::warn!(
                dropped = now_full - reported_full,
                total = now_full,
                "interaction log queue full: timeline events dropped"
            );
            reported_full = now_full;
        }
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
                    Some(r) => pending.push_back(r),
                    None => break,
                }
            }
        }
        while !pending.is_empty() {
            stats.backlog.store(pending.len() as u64, Ordering::Relaxed);
            let n = pending.len().min(BATCH);
            let batch: Vec<Record> = pending.iter().take(n).cloned().collect();
            let began = std::time::Instant::now();
            let wrote = store.write(&batch).await;
            let took = began.elapsed();
            stats
                .write_micros
                .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
            if let Some(f) = stats.on_batch.get() {
                f(took);
            }
            match wrote {
                Ok(()) => {
                    pending.drain(..n);
                    stats.written.fetch_add(n as u64, Ordering::Relaxed);
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                    stats.backlog.store(pending.len() as u64, Ordering::Relaxed);
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
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
                    while let Some(r) = rx.try_recv() {
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
