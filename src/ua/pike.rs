//! Per-source flood protection, after Kamailio's `pike` module: messages
//! and new INVITEs per second are counted per source address, and a source
//! over either limit is banned for a while: its datagrams are dropped
//! unparsed, with no reply (a reply is what a spoofed flood wants). Each
//! ban is a `security` log event and a counter.
//!
//! Besides the rates, the core caps what one source may hold: live server
//! transactions and calls in progress (see [`Limits`]), so a single source
//! cannot fill the node's tables and lock everyone else out.
//!
//! Networks in `exempt` (trunks the operator trusts, an SBC in front of
//! us) skip all of it. Sans-IO and bounded like the other tables.
//!
//! The default rates are sized so that one carrier trunk sending 1,000
//! calls a second (3 to 4 datagrams per call) is not banned while a flood
//! like the 6,300 OPTIONS a second of issue 13 is; slow floods (16 unACKed
//! INVITEs a second) are stopped by the per-source call cap instead. A
//! deployment whose peers are softphones should lower them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Messages per second from one source before it is banned.
    pub messages_per_sec: u32,
    /// New INVITEs per second from one source before it is banned.
    pub invites_per_sec: u32,
    /// How long a ban lasts.
    pub ban: Duration,
    /// Live server transactions one source may hold.
    pub transactions_per_source: usize,
    /// Calls in progress one source may hold.
    pub calls_per_source: usize,
    /// Sources that none of this applies to.
    pub exempt: Vec<ipnet::IpNet>,
    /// Sources tracked at most (beyond: the quietest are forgotten).
    pub max_sources: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            messages_per_sec: 5_000,
            invites_per_sec: 2_000,
            ban: Duration::from_secs(300),
            transactions_per_source: 20_000,
            calls_per_source: 250,
            exempt: Vec::new(),
            max_sources: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    window: Instant,
    messages: u32,
    invites: u32,
    banned_until: Option<Instant>,
}

/// What to do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Pass,
    /// The source is banned: drop it, say nothing.
    Drop,
    /// This message put the source over a limit: it is banned from now
    /// until the given time (log the ban once), and the message dropped.
    Banned(Instant),
}

/// The per-source counters.
#[derive(Debug)]
pub struct Pike {
    limits: Limits,
    sources: HashMap<IpAddr, Counter>,
    /// Bans so far.
    pub bans: u64,
    /// Messages dropped because their source was banned.
    pub dropped: u64,
}

impl Pike {
    /// Empty.
    pub fn new(limits: Limits) -> Pike {
        Pike {
            limits,
            sources: HashMap::new(),
            bans: 0,
            dropped: 0,
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// True when no limit applies to `ip`.
    pub fn is_exempt(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.limits.exempt.iter().any(|n| n.contains(&ip))
    }

    /// A message from `ip` arrived at `now`, before it is parsed.
    pub fn message(&mut self, now: Instant, ip: IpAddr) -> Verdict {
        self.count(now, ip, false)
    }

    /// The message from `ip` was a new INVITE.
    pub fn invite(&mut self, now: Instant, ip: IpAddr) -> Verdict {
        self.count(now, ip, true)
    }

    fn count(&mut self, now: Instant, ip: IpAddr, invite: bool) -> Verdict {
        if self.is_exempt(ip) {
            return Verdict::Pass;
        }
        if self.sources.len() >= self.limits.max_sources && !self.sources.contains_key(&ip) {
            self.forget_quiet(now);
        }
        let c = self.sources.entry(ip).or_insert(Counter {
            window: now,
            messages: 0,
            invites: 0,
            banned_until: None,
        });
        if let Some(until) = c.banned_until {
            if now < until {
                self.dropped += 1;
                return Verdict::Drop;
            }
            c.banned_until = None;
        }
        if now.saturating_duration_since(c.window) >= Duration::from_secs(1) {
            c.window = now;
            c.messages = 0;
            c.invites = 0;
        }
        if invite {
            c.invites = c.invites.saturating_add(1);
        } else {
            c.messages = c.messages.saturating_add(1);
        }
        if c.messages > self.limits.messages_per_sec || c.invites > self.limits.invites_per_sec {
            let until = now + self.limits.ban;
            c.banned_until = Some(until);
            self.bans += 1;
            self.dropped += 1;
            return Verdict::Banned(until);
        }
        Verdict::Pass
    }

    /// Drops sources that are neither banned nor sending this second; if
    /// still full, the one with the oldest window.
    fn forget_quiet(&mut self, now: Instant) {
        self.sources.retain(|_, c| {
            c.banned_until.is_some_and(|u| u > now)
                || now.saturating_duration_since(c.window) < Duration::from_secs(1)
        });
        if self.sources.len() >= self.limits.max_sources
            && let Some(ip) = self
                .sources
                .iter()
                .filter(|(_, c)| c.banned_until.is_none())
                .min_by_key(|(_, c)| c.window)
                .map(|(ip, _)| *ip)
        {
            self.sources.remove(&ip);
        }
    }

    /// Sources tracked.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            messages_per_sec: 10,
            invites_per_sec: 3,
            ban: Duration::from_secs(60),
            ..Limits::default()
        }
    }

    #[test]
    fn a_flood_is_banned_for_the_ban_time_and_only_that_source() {
        let t0 = Instant::now();
        let mut p = Pike::new(limits());
        let bad: IpAddr = "203.0.113.5".parse().unwrap();
        let good: IpAddr = "203.0.113.6".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..12).map(|_| p.message(t0, bad)).collect();
        assert!(verdicts[..10].iter().all(|v| *v == Verdict::Pass));
        assert_eq!(verdicts[10], Verdict::Banned(t0 + Duration::from_secs(60)));
        assert_eq!(verdicts[11], Verdict::Drop);
        assert_eq!(p.message(t0, good), Verdict::Pass);
        assert_eq!(p.message(t0 + Duration::from_secs(59), bad), Verdict::Drop);
        assert_eq!(p.message(t0 + Duration::from_secs(60), bad), Verdict::Pass);
        assert_eq!((p.bans, p.dropped), (1, 3));
    }

    #[test]
    fn a_steady_rate_under_the_limit_is_never_banned() {
        let t0 = Instant::now();
        let mut p = Pike::new(limits());
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        for i in 0..1000u64 {
            // Ten a second, evenly spread.
            assert_eq!(
                p.message(t0 + Duration::from_millis(i * 100), ip),
                Verdict::Pass
            );
        }
    }

    #[test]
    fn invites_have_their_own_lower_limit_and_exempt_networks_none() {
        let t0 = Instant::now();
        let mut p = Pike::new(Limits {
            exempt: vec!["198.51.100.0/24".parse().unwrap()],
            ..limits()
        });
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        let v: Vec<_> = (0..4).map(|_| p.invite(t0, ip)).collect();
        assert!(matches!(v[3], Verdict::Banned(_)), "{v:?}");
        let trunk: IpAddr = "198.51.100.9".parse().unwrap();
        assert!((0..10_000).all(|_| p.invite(t0, trunk) == Verdict::Pass));
        assert!(p.is_exempt(trunk) && !p.is_exempt(ip));
    }

    #[test]
    fn the_table_stays_bounded() {
        let t0 = Instant::now();
        let mut p = Pike::new(Limits {
            max_sources: 50,
            ..limits()
        });
        for i in 0..10_000u32 {
            p.message(
                t0 + Duration::from_millis(u64::from(i)),
                IpAddr::from(i.to_be_bytes()),
            );
        }
        assert!(p.tracked() <= 50);
    }
}
