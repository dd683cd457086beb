//! Digest brute-force protection: failures counted per source address and
//! per username in a sliding window; a source that fails too often is
//! locked out for a while (as fail2ban does from Asterisk's security log,
//! or Kamailio's `pike` + `htable` recipes). A username that fails from
//! many sources (a distributed guess) gets a shorter lockout from every
//! source except those it authenticated from before: an attacker cannot
//! lock a real agent's or trunk's own address out.
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
    /// Failures of one username in `window`, from any sources, that lock
    /// the username (more than `max_failures`, so one source is locked
    /// first).
    pub user_max_failures: u32,
    /// How long a username is locked (for sources it never authenticated
    /// from).
    pub user_lockout: Duration,
    /// Sources and usernames tracked at most.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_failures: 10,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(600),
            user_max_failures: 30,
            user_lockout: Duration::from_secs(60),
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
    /// The username has failed `user_max_failures` times in the window
    /// (from any sources): locked until the given time for sources it
    /// never authenticated from.
    UsernameLocked(SystemTime),
}

#[derive(Debug, Default)]
struct Track {
    failures: VecDeque<SystemTime>,
    locked_until: Option<SystemTime>,
}

/// Sources a username authenticated from, remembered at most.
const KNOWN_PER_USER: usize = 8;

/// Failure counters.
#[derive(Debug)]
pub struct Lockouts {
    limits: Limits,
    sources: HashMap<IpAddr, Track>,
    users: HashMap<String, Track>,
    /// Where each username authenticated from (newest last).
    known: HashMap<String, VecDeque<IpAddr>>,
}

impl Lockouts {
    /// Empty, with `limits`.
    pub fn new(limits: Limits) -> Lockouts {
        Lockouts {
            limits,
            sources: HashMap::new(),
            users: HashMap::new(),
            known: HashMap::new(),
        }
    }

    /// When `username` is locked for `source` at `now`, until when. A
    /// source the username authenticated from before is never locked out
    /// by the username's lock.
    pub fn user_locked(
        &self,
        username: &str,
        source: IpAddr,
        now: SystemTime,
    ) -> Option<SystemTime> {
        let key: String = username.chars().take(64).collect();
        let until = self
            .users
            .get(&key)
            .and_then(|t| t.locked_until)
            .filter(|u| *u > now)?;
        let known = self.known.get(&key).is_some_and(|k| k.contains(&source));
        (!known).then_some(until)
    }

    /// `username` authenticated from `source`.
    pub fn succeeded(&mut self, username: &str, source: IpAddr) {
        let key: String = username.chars().take(64).collect();
        if !self.known.contains_key(&key) && self.known.len() >= self.limits.max_entries {
            return;
        }
        let k = self.known.entry(key).or_default();
        if !k.contains(&source) {
            if k.len() >= KNOWN_PER_USER {
                k.pop_front();
            }
            k.push_back(source);
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
        if count(t, now, limits.window, limits.max_failures)
            && t.locked_until.is_none_or(|u| u <= now)
        {
            let until = now + limits.lockout;
            t.locked_until = Some(until);
            t.failures.clear();
            out.push(Verdict::SourceLocked(until));
        }
        if let Some(u) = username {
            let key: String = u.chars().take(64).collect();
            bound(&mut self.users, limits.max_entries, now, limits);
            let t = self.users.entry(key).or_default();
            if count(t, now, limits.window, limits.user_max_failures)
                && t.locked_until.is_none_or(|u| u <= now)
            {
                let until = now + limits.user_lockout;
                t.locked_until = Some(until);
                t.failures.clear();
                out.push(Verdict::UsernameLocked(until));
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

/// Adds a failure at `now`; true when `window` now holds `max` of them.
fn count(t: &mut Track, now: SystemTime, window: Duration, max: u32) -> bool {
    while t
        .failures
        .front()
        .is_some_and(|f| now.duration_since(*f).unwrap_or_default() > window)
    {
        t.failures.pop_front();
    }
    t.failures.push_back(now);
    // Keep no more than the limit: memory per entry stays bounded.
    while t.failures.len() > max as usize {
        t.failures.pop_front();
    }
    t.failures.len() >= max as usize
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
        assert_eq!(v, vec![Verdict::SourceLocked(at(609))]);
        assert_eq!(
            l.user_locked("trunk", good, at(10)),
            None,
            "one source's ten guesses do not lock the username"
        );
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
    fn a_username_guessed_from_many_sources_is_locked_briefly_except_where_it_logged_in() {
        let mut l = Lockouts::new(Limits::default());
        let home = IpAddr::from([192, 0, 2, 10]);
        l.succeeded("agent7", home);
        let mut locks = Vec::new();
        // 30 guesses from 30 addresses within 30 s: no source reaches 10.
        for i in 0..30u8 {
            let ip = IpAddr::from([198, 51, 100, i]);
            for v in l.fail(ip, Some("agent7"), at(u64::from(i))) {
                if let Verdict::UsernameLocked(until) = v {
                    locks.push(until);
                }
            }
            assert_eq!(l.locked(ip, at(u64::from(i))), None);
        }
        assert_eq!(locks, vec![at(29 + 60)], "locked once, for a minute");
        let fresh = IpAddr::from([203, 0, 113, 99]);
        assert_eq!(l.user_locked("agent7", fresh, at(30)), Some(at(89)));
        assert_eq!(
            l.user_locked("agent7", home, at(30)),
            None,
            "the agent's own address is not locked out by strangers"
        );
        assert_eq!(
            l.user_locked("agent8", fresh, at(30)),
            None,
            "other usernames"
        );
        assert_eq!(
            l.user_locked("agent7", fresh, at(89)),
            None,
            "a minute, then free"
        );
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
