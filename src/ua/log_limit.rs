//! Rate limits on log lines that a peer's input causes (malformed
//! messages, refused requests, refused calls, auth failures), per source
//! address: the first few lines of an interval in full, then silence, and
//! one summary line with the count when the interval ends. A flood of
//! garbage costs the operator's disk a few lines per source and interval,
//! not one line per datagram.
//!
//! Sans-IO and bounded: at most `max_sources` addresses are tracked; the
//! rest share one overflow window.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Lines logged in full per source and interval.
    pub lines: u32,
    /// The interval.
    pub interval: Duration,
    /// Sources tracked one by one.
    pub max_sources: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            lines: 5,
            interval: Duration::from_secs(10),
            max_sources: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

/// Per-source log budgets.
#[derive(Debug)]
pub struct LogLimiter {
    limits: Limits,
    sources: HashMap<IpAddr, Window>,
    overflow: Option<Window>,
}

/// Who a summary is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// One address.
    Addr(IpAddr),
    /// All the sources beyond `max_sources`.
    Others,
}

impl LogLimiter {
    /// Empty.
    pub fn new(limits: Limits) -> LogLimiter {
        LogLimiter {
            limits,
            sources: HashMap::new(),
            overflow: None,
        }
    }

    /// May a line caused by `source` be logged at `now`?
    pub fn allow(&mut self, now: Instant, source: IpAddr) -> bool {
        let limits = self.limits;
        let w = if self.sources.len() < limits.max_sources || self.sources.contains_key(&source) {
            self.sources.entry(source).or_insert(Window {
                start: now,
                logged: 0,
                suppressed: 0,
            })
        } else {
            self.overflow.get_or_insert(Window {
                start: now,
                logged: 0,
                suppressed: 0,
            })
        };
        if now.saturating_duration_since(w.start) >= limits.interval && w.suppressed == 0 {
            *w = Window {
                start: now,
                logged: 0,
                suppressed: 0,
            };
        }
        if w.logged < limits.lines {
            w.logged += 1;
            true
        } else {
            w.suppressed += 1;
            false
        }
    }

    /// When the next summary is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sources
            .values()
            .chain(self.overflow.iter())
            .filter(|w| w.suppressed > 0)
            .map(|w| w.start + self.limits.interval)
            .min()
    }

    /// Summaries of the intervals that ended by `now` with lines
    /// suppressed: (source, count). Ended quiet windows are forgotten.
    pub fn poll_summaries(&mut self, now: Instant) -> Vec<(Source, u64)> {
        let interval = self.limits.interval;
        let mut out = Vec::new();
        self.sources.retain(|ip, w| {
            if now.saturating_duration_since(w.start) < interval {
                return true;
            }
            if w.suppressed > 0 {
                out.push((Source::Addr(*ip), w.suppressed));
            }
            false
        });
        if let Some(w) = self.overflow
            && now.saturating_duration_since(w.start) >= interval
        {
            if w.suppressed > 0 {
                out.push((Source::Others, w.suppressed));
            }
            self.overflow = None;
        }
        out
    }

    /// Sources tracked.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_five_lines_then_one_summary_per_interval() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Limits::default());
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let other: IpAddr = "203.0.113.10".parse().unwrap();
        let logged = (0..10_000)
            .filter(|i| l.allow(t0 + Duration::from_micros(*i), ip))
            .count();
        assert_eq!(logged, 5);
        assert!(l.allow(t0, other), "another source has its own budget");
        assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        assert!(l.poll_summaries(t0 + Duration::from_secs(9)).is_empty());
        let s = l.poll_summaries(t0 + Duration::from_secs(10));
        assert_eq!(s, vec![(Source::Addr(ip), 9_995)]);
        assert_eq!(l.poll_timeout(), None);
        // The next interval starts afresh.
        assert!(l.allow(t0 + Duration::from_secs(11), ip));
    }

    #[test]
    fn beyond_the_source_cap_everyone_else_shares_one_budget() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Limits {
            max_sources: 100,
            ..Limits::default()
        });
        let mut logged = 0;
        for i in 0..50_000u32 {
            if l.allow(t0, IpAddr::from(i.to_be_bytes())) {
                logged += 1;
            }
        }
        assert_eq!(logged, 100 + 5);
        assert!(l.tracked() <= 100);
        let s = l.poll_summaries(t0 + Duration::from_secs(10));
        assert!(s.contains(&(Source::Others, 50_000 - 100 - 5)));
    }
}
