//! The timer table shared by the transaction machines (RFC 3261 §17, Table 4).

use std::time::{Duration, Instant};

/// T1, T2 and T4 of RFC 3261 §17.1.1.1 (defaults 500 ms, 4 s, 5 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses.
    pub t2: Duration,
    /// Maximum duration a message remains in the network.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64*T1: Timers B, F, H, J (unreliable) and L, M of RFC 6026.
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }
}

/// Names of the RFC timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerName {
    /// INVITE request retransmit (client).
    A,
    /// INVITE transaction timeout (client).
    B,
    /// Wait time for response retransmits (client INVITE, Completed).
    D,
    /// non-INVITE request retransmit (client).
    E,
    /// non-INVITE transaction timeout (client).
    F,
    /// INVITE response retransmit (server).
    G,
    /// Wait time for ACK receipt (server).
    H,
    /// Wait time for ACK retransmits (server).
    I,
    /// Wait time for non-INVITE request retransmits (server).
    J,
    /// Wait time for response retransmits (client non-INVITE).
    K,
    /// RFC 6026: wait time for accepted INVITE request retransmits (server).
    L,
    /// RFC 6026: wait time for retransmission of 2xx to INVITE (client).
    M,
}

const N: usize = 12;

fn index(t: TimerName) -> usize {
    t as usize
}

/// One deadline per timer name; the next deadline is the earliest entry.
#[derive(Debug, Clone, Default)]
pub struct TimerTable {
    at: [Option<Instant>; N],
}

impl TimerTable {
    /// Arms a timer.
    pub fn set(&mut self, t: TimerName, at: Instant) {
        if let Some(slot) = self.at.get_mut(index(t)) {
            *slot = Some(at);
        }
    }
    /// Disarms a timer.
    pub fn clear(&mut self, t: TimerName) {
        if let Some(slot) = self.at.get_mut(index(t)) {
            *slot = None;
        }
    }
    /// Disarms all timers.
    pub fn clear_all(&mut self) {
        self.at = [None; N];
    }
    /// Is `t` armed and due at `now`? If so, disarms it.
    pub fn take_due(&mut self, t: TimerName, now: Instant) -> bool {
        match self.at.get_mut(index(t)) {
            Some(slot) if slot.is_some_and(|at| at <= now) => {
                *slot = None;
                true
            }
            _ => false,
        }
    }
    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }
}
