//! Digest brute-force protection: failures counted per source address and
//! per username in a sliding window; a source that fails too often is
//! locked out for a while (as fail2ban does from Asterisk's security log,
//! or Kamailio's `pike` + `htable` recipes). A username that fails from
//! many sources is reported, not locked: locking it would let anyone lock
//! a real agent or trunk out from elsewhere.
//!
//! Sans-IO (time passed in) and bounded: at most `max_entries` sources and
//! usernames are tracked; beyond that the stalest are forgotten.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failures in `window` that lock a source out.
    pub max_failures: u32,
    /// The sliding window.
    pub window: Duration,
    /// How long a lockout lasts.
    pub lockout: Duration,
    /// Sources and usernames tracked at most.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_failures: 10,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(600),
            max_entries: 100_000,
        }
    }
}

/// What a failure led to, for the security log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Counted.
    Counted,
    /// The source is now locked out until the given time.
    SourceLocked(SystemTime),
    /// The username has failed `max_failures` times in the window (from
    /// any sources): reported once per window.
    UsernameUnderAttack,
}

#[derive(Debug, Default)]
struct Track {
    failures: VecDeque<SystemTime>,
    locked_until: Option<SystemTime>,
    reported: bool,
}

/// Failure counters.
#[derive(Debug)]
pub struct Lockouts {
    limits: Limits,
    sources: HashMap<IpAddr, Track>,
    users: HashMap<String, Track>,
}

impl Lockouts {
    /// Empty, with `limits`.
    pub fn new(limits: Limits) -> Lockouts {
        Lockouts {
            limits,
            sources: HashMap::new(),
            users: HashMap::new(),
        }
    }

    /// When `source` is locked out at `now`, until when.
    pub fn locked(&self, source: IpAddr, now: SystemTime) -> Option<SystemTime> {
        self.sources
            .get(&source)
            .and_then(|t| t.locked_until)
            .filter(|until| *until > now)
    }

    /// A failed authentication from `source` for `username` (if it sent
    /// one). Returns what it led to, most severe first.
    pub fn fail(
        &mut self,
        source: IpAddr,
        username: Option<&str>,
        now: SystemTime,
    ) -> Vec<Verdict> {
        let limits = self.limits;
        let mut out = Vec::new();
        bound(&mut self.sources, limits.max_entries, now, limits);
        let t = self.sources.entry(source).or_default();
        if count(t, now, limits) && t.locked_until.is_none_or(|u| u <= now) {
            let until = now + limits.lockout;
            t.locked_until = Some(until);
            t.failures.clear();
            out.push(Verdict::SourceLocked(until));
        }
        if let Some(u) = username {
            let key: String = u.chars().take(64).collect();
            bound(&mut self.users, limits.max_entries, now, limits);
            let t = self.users.entry(key).or_default();
            if count(t, now, limits) && !t.reported {
                t.reported = true;
                out.push(Verdict::UsernameUnderAttack);
            }
        }
        if out.is_empty() {
            out.push(Verdict::Counted);
        }
        out
    }

    /// Sources currently tracked (for tests and metrics).
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }
}

/// Adds a failure at `now`; true when the window now holds the limit.
fn count(t: &mut Track, now: SystemTime, limits: Limits) -> bool {
    while t
        .failures
        .front()
        .is_some_and(|f| now.duration_since(*f).unwrap_or_default() > limits.window)
    {
        t.failures.pop_front();
    }
    if t.failures.is_empty() {
        t.reported = false;
    }
    t.failures.push_back(now);
    // Keep no more than the limit: memory per entry stays bounded.
    while t.failures.len() > limits.max_failures as usize {
        t.failures.pop_front();
    }
    t.failures.len() >= limits.max_failures as usize
}

/// Forgets idle entries, then the stalest, to stay under `max`.
fn bound<K: Clone + Eq + std::hash::Hash>(
    map: &mut HashMap<K, Track>,
    max: usize,
    now: SystemTime,
    limits: Limits,
) {
    if map.len() < max {
        return;
    }
    map.retain(|_, t| {
        let locked = t.locked_until.is_some_and(|u| u > now);
        let recent = t
            .failures
            .back()
            .is_some_and(|f| now.duration_since(*f).unwrap_or_default() <= limits.window);
        locked || recent
    });
    while map.len() >= max {
        let stalest = map
            .iter()
            .min_by_key(|(_, t)| t.failures.back().copied())
            .map(|(k, _)| k.clone());
        match stalest {
            Some(k) => {
                map.remove(&k);
            }
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn ten_failures_in_a_minute_lock_the_source_for_ten_minutes_and_only_it() {
        let mut l = Lockouts::new(Limits::default());
        let bad: IpAddr = "203.0.113.7".parse().unwrap();
        let good: IpAddr = "203.0.113.8".parse().unwrap();
        for i in 0..9 {
            assert_eq!(l.fail(bad, Some("trunk"), at(i)), vec![Verdict::Counted]);
            assert_eq!(l.locked(bad, at(i)), None);
        }
        let v = l.fail(bad, Some("trunk"), at(9));
        assert_eq!(v[0], Verdict::SourceLocked(at(609)));
        assert!(v.contains(&Verdict::UsernameUnderAttack));
        assert_eq!(l.locked(bad, at(10)), Some(at(609)));
        assert_eq!(l.locked(bad, at(608)), Some(at(609)));
        assert_eq!(l.locked(bad, at(609)), None, "ten minutes, then free");
        assert_eq!(
            l.locked(good, at(10)),
            None,
            "other sources are not affected"
        );
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_lock() {
        let mut l = Lockouts::new(Limits::default());
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        for i in 0..30 {
            l.fail(ip, None, at(i * 7));
        }
        assert_eq!(l.locked(ip, at(30 * 7)), None, "9 per 63 s at most");
    }

    #[test]
    fn a_username_attacked_from_many_sources_is_reported_not_locked() {
        let mut l = Lockouts::new(Limits::default());
        let mut reports = 0;
        for i in 0..25u8 {
            let ip = IpAddr::from([198, 51, 100, i]);
            reports += l
                .fail(ip, Some("agent7"), at(u64::from(i)))
                .iter()
                .filter(|v| **v == Verdict::UsernameUnderAttack)
                .count();
        }
        assert_eq!(reports, 1, "once per window");
        assert_eq!(l.locked(IpAddr::from([198, 51, 100, 3]), at(30)), None);
    }

    #[test]
    fn the_tables_stay_bounded() {
        let mut l = Lockouts::new(Limits {
            max_entries: 100,
            ..Limits::default()
        });
        for i in 0..10_000u32 {
            l.fail(
                IpAddr::from(i.to_be_bytes()),
                Some(&format!("u{i}")),
                at(u64::from(i % 50)),
            );
        }
        assert!(l.tracked_sources() <= 100);
    }
}
