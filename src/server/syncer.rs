//! One sync for every recording: a thread that calls `syncfs` on the
//! recordings' filesystem every `recordings.sync_ms`, instead of each
//! call's task calling `fdatasync` on its own file every interval (a
//! blocking system call per recording per second on the async workers).
//! A power loss still loses at most that interval of any recording; a
//! killed process loses at most the chunk in progress, as the chunks go
//! to the kernel as they are sealed.
//!
//! Linux only (`syncfs`); elsewhere each recorder syncs its own file.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

/// A running syncer; dropping it syncs once more and ends the thread.
#[derive(Debug)]
pub struct Syncer {
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    /// Starts syncing the filesystem of `dir` (made if missing) every
    /// `every`; None where `syncfs` is not available or `dir` cannot be
    /// opened (then the recorders sync their own files).
    pub fn start(
        dir: PathBuf,
        every: Duration,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Option<Syncer> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "recordings folder not made; each recording syncs its own file");
            return None;
        }
        let handle = match std::fs::File::open(&dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "recordings folder not opened; each recording syncs its own file");
                return None;
            }
        };
        let (stop, stopped) = channel();
        let thread = std::thread::Builder::new()
            .name("recording-sync".into())
            .spawn(move || run(handle, every, stopped, &metrics))
            .ok()?;
        Some(Syncer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

fn run(
    dir: std::fs::File,
    every: Duration,
    stopped: Receiver<()>,
    metrics: &crate::metrics::Metrics,
) {
    loop {
        let last = !matches!(stopped.recv_timeout(every), Err(RecvTimeoutError::Timeout));
        sync(&dir, metrics);
        if last {
            return;
        }
    }
}

#[cfg(target_os = "linux")]
fn sync(dir: &std::fs::File, metrics: &crate::metrics::Metrics) {
    match rustix::fs::syncfs(dir) {
        Ok(()) => metrics.recordings_synced(),
        Err(e) => {
            metrics.recording_failed();
            tracing::error!(error = %e, "the recordings' filesystem could not be synced");
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn sync(_: &std::fs::File, _: &crate::metrics::Metrics) {}

impl Drop for Syncer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
