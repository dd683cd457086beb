//! Jitter buffer for incoming audio: a sans-IO unit with time passed in.
//!
//! Packets go in as they arrive ([`JitterBuffer::handle_packet`]); the
//! pacing driver asks for one frame every 20 ms ([`JitterBuffer::poll_frame`])
//! and gets the next packet in sequence order, or [`Frame::Lost`] when it
//! did not come in time (the caller conceals it with [`conceal`]).
//!
//! - **Reordering**: packets are kept by (extended) sequence number.
//! - **Duplicates** are dropped and counted.
//! - **Late** packets (their turn has passed) are dropped and counted.
//! - **Depth** adapts to the measured interarrival jitter (RFC 3550
//!   §6.4.1, appendix A.8): target = one frame + 3 × jitter, between
//!   [`Config::min_depth`] and [`Config::max_depth`]; when more than the
//!   target plus two frames is buffered, the oldest frames are dropped to
//!   bring the delay down.
//! - A silence in the stream longer than [`Config::resync_after`] (or a
//!   sequence jump over 3000) restarts buffering from the next packet.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Frame length.
    pub frame: Duration,
    /// Least buffering.
    pub min_depth: Duration,
    /// Most buffering.
    pub max_depth: Duration,
    /// Most packets held.
    pub max_packets: usize,
    /// Restart after this long without packets.
    pub resync_after: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            clock_rate: 8000,
            frame: Duration::from_millis(20),
            min_depth: Duration::from_millis(40),
            max_depth: Duration::from_millis(200),
            max_packets: 64,
            resync_after: Duration::from_secs(1),
        }
    }
}

/// What the buffer hands out for one frame slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The payload of the packet due now.
    Audio(Vec<u8>),
    /// The packet due now is missing: conceal.
    Lost,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets accepted.
    pub received: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Packets that came after their turn.
    pub late: u64,
    /// Frames handed out as lost.
    pub lost: u64,
    /// Packets that arrived out of order (and were put back in order).
    pub reordered: u64,
    /// Frames dropped to cut the delay, or because the buffer was full.
    pub dropped: u64,
    /// Restarts after silence or a sequence jump.
    pub resyncs: u64,
}

#[derive(Debug)]
struct Packet {
    payload: Vec<u8>,
}

/// The jitter buffer of one incoming stream.
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: Config,
    packets: BTreeMap<u64, Packet>,
    /// Highest extended sequence number seen.
    highest: Option<u64>,
    /// Next extended sequence number to play; None while buffering.
    next: Option<u64>,
    /// When buffering started.
    buffering_since: Option<Instant>,
    last_arrival: Option<Instant>,
    /// RFC 3550 jitter estimate, in timestamp units (times 16).
    jitter16: u64,
    /// Transit time of the previous packet (arrival in timestamp units
    /// minus RTP timestamp).
    prev_transit: Option<i64>,
    epoch: Option<Instant>,
    /// Counters.
    pub stats: Stats,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(cfg: Config) -> JitterBuffer {
        JitterBuffer {
            cfg,
            packets: BTreeMap::new(),
            highest: None,
            next: None,
            buffering_since: None,
            last_arrival: None,
            jitter16: 0,
            prev_transit: None,
            epoch: None,
            stats: Stats::default(),
        }
    }

    /// Interarrival jitter (RFC 3550 A.8).
    pub fn jitter(&self) -> Duration {
        let units = self.jitter16 / 16;
        Duration::from_micros(units * 1_000_000 / u64::from(self.cfg.clock_rate.max(1)))
    }

    /// The delay the buffer aims for now.
    pub fn target_depth(&self) -> Duration {
        (self.cfg.frame + self.jitter() * 3).clamp(self.cfg.min_depth, self.cfg.max_depth)
    }

    /// Audio held, in frames.
    pub fn buffered(&self) -> usize {
        self.packets.len()
    }

    /// Extends a 16-bit sequence number next to the highest one seen.
    fn extend(&self, seq: u16) -> u64 {
        let Some(h) = self.highest else {
            return (1 << 16) + u64::from(seq);
        };
        let base = h & !0xFFFF;
        let candidates = [base.wrapping_sub(1 << 16), base, base + (1 << 16)];
        candidates
            .iter()
            .map(|b| b.wrapping_add(u64::from(seq)))
            .min_by_key(|c| c.abs_diff(h))
            .unwrap_or(base + u64::from(seq))
    }

    fn update_jitter(&mut self, now: Instant, timestamp: u32) {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = now.saturating_duration_since(epoch).as_micros() as i64
            * i64::from(self.cfg.clock_rate)
            / 1_000_000;
        let transit = arrival - i64::from(timestamp);
        if let Some(prev) = self.prev_transit {
            // Timestamps wrap; a difference beyond half the range is a wrap.
            let d = (transit - prev).rem_euclid(1 << 32);
            let d = if d > (1 << 31) { (1 << 32) - d } else { d } as u64;
            // J += (|D| - J) / 16, kept times 16.
            self.jitter16 = self.jitter16 + d - self.jitter16 / 16;
        }
        self.prev_transit = Some(transit);
    }

    fn resync(&mut self) {
        self.packets.clear();
        self.highest = None;
        self.next = None;
        self.buffering_since = None;
        self.prev_transit = None;
        self.epoch = None;
        self.stats.resyncs += 1;
    }

    /// One received packet.
    pub fn handle_packet(&mut self, now: Instant, seq: u16, timestamp: u32, payload: &[u8]) {
        if self
            .last_arrival
            .is_some_and(|t| now.saturating_duration_since(t) > self.cfg.resync_after)
        {
            self.resync();
        }
        let mut ext = self.extend(seq);
        if let Some(h) = self.highest
            && ext.abs_diff(h) > 3000
        {
            self.resync();
            ext = self.extend(seq);
        }
        self.last_arrival = Some(now);
        if self.next.is_some_and(|n| ext < n) {
            self.stats.late += 1;
            return;
        }
        if self.packets.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        if self.highest.is_some_and(|h| ext < h) {
            self.stats.reordered += 1;
        }
        self.update_jitter(now, timestamp);
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.packets.insert(
            ext,
            Packet {
                payload: payload.to_vec(),
            },
        );
        self.stats.received += 1;
        if self.buffering_since.is_none() && self.next.is_none() {
            self.buffering_since = Some(now);
        }
        while self.packets.len() > self.cfg.max_packets {
            if let Some((k, _)) = self.packets.pop_first() {
                self.next = self.next.map(|n| n.max(k + 1));
                self.stats.dropped += 1;
            }
        }
    }

    /// The frame for the slot due at `now`; None while buffering (play
    /// silence or comfort noise).
    pub fn poll_frame(&mut self, now: Instant) -> Option<Frame> {
        let next = match self.next {
            Some(n) => n,
            None => {
                let since = self.buffering_since?;
                if now.saturating_duration_since(since) < self.target_depth() {
                    return None;
                }
                let first = *self.packets.keys().next()?;
                self.buffering_since = None;
                first
            }
        };
        // Too much delay: drop the oldest frames down to the target.
        let frame_us = self.cfg.frame.as_micros().max(1);
        let target_frames = (self.target_depth().as_micros() / frame_us) as usize + 2;
        let mut next = next;
        while self.packets.len() > target_frames {
            match self.packets.pop_first() {
                Some((k, _)) => {
                    next = next.max(k + 1);
                    self.stats.dropped += 1;
                }
                None => break,
            }
        }
        self.next = Some(next + 1);
        match self.packets.remove(&next) {
            Some(p) => Some(Frame::Audio(p.payload)),
            None => {
                self.stats.lost += 1;
                Some(Frame::Lost)
            }
        }
    }
}

/// Packet-loss concealment for a lost frame: repeats the last good frame,
/// halving its level for each consecutive loss, and is silent after three.
pub fn conceal(last_good: &[i16], consecutive: u32, out: &mut Vec<i16>) {
    let shift = consecutive.max(1);
    if shift > 3 {
        out.extend(std::iter::repeat_n(0, last_good.len()));
    } else {
        out.extend(last_good.iter().map(|s| s >> shift));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Duration = Duration::from_millis(20);

    /// Runs arrivals `(ms, seq)` and a poll every 20 ms from `first_poll`
    /// for `polls` slots, in time order; returns the polled frames.
    fn run(
        jb: &mut JitterBuffer,
        t0: Instant,
        arrivals: &[(u64, u16)],
        first_poll: u64,
        polls: usize,
    ) -> Vec<Option<Frame>> {
        let mut events: Vec<(u64, u8, u16)> =
            arrivals.iter().map(|(ms, seq)| (*ms, 0, *seq)).collect();
        events.extend((0..polls as u64).map(|k| (first_poll + k * 20, 1, 0)));
        events.sort();
        let mut out = Vec::new();
        for (ms, kind, seq) in events {
            let now = t0 + Duration::from_millis(ms);
            if kind == 0 {
                jb.handle_packet(now, seq, u32::from(seq) * 160, &[seq as u8]);
            } else {
                out.push(jb.poll_frame(now));
            }
        }
        out
    }

    fn audio(seq: u16) -> Option<Frame> {
        Some(Frame::Audio(vec![seq as u8]))
    }

    #[test]
    fn in_order_packets_play_after_the_minimum_depth() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Config::default());
        let arrivals: Vec<(u64, u16)> = (0..6).map(|i| (i * 20, i as u16)).collect();
        let out = run(&mut jb, t0, &arrivals, 1, 6);
        assert_eq!(out[0], None, "still buffering at 1 ms");
        assert_eq!(out[1], None, "and at 21 ms (depth 40 ms)");
        assert_eq!(&out[2..], &[audio(0), audio(1), audio(2), audio(3)]);
        assert_eq!(jb.stats.lost + jb.stats.dropped, 0);
    }

    #[test]
    fn reordered_duplicate_and_lost_packets() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Config::default());
        // 1 comes after 2 (and twice); 3 never comes in time.
        let arrivals = [
            (0, 0),
            (40, 2),
            (45, 1),
            (46, 1),
            (80, 4),
            (100, 5),
            (120, 6),
        ];
        let out = run(&mut jb, t0, &arrivals, 1, 8);
        let played: Vec<_> = out.into_iter().flatten().collect();
        assert_eq!(
            played[..6],
            [
                Frame::Audio(vec![0]),
                Frame::Audio(vec![1]),
                Frame::Audio(vec![2]),
                Frame::Lost,
                Frame::Audio(vec![4]),
                Frame::Audio(vec![5])
            ]
        );
        assert_eq!(jb.stats.duplicates, 1);
        assert_eq!(jb.stats.reordered, 1);
        assert_eq!(jb.stats.lost, 1);
        // Packet 3 shows up after its turn: late, dropped.
        jb.handle_packet(t0 + Duration::from_millis(200), 3, 480, &[3]);
        assert_eq!(jb.stats.late, 1);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Config::default());
        for (i, seq) in [65534u16, 65535, 0, 1].iter().enumerate() {
            jb.handle_packet(t0 + F * i as u32, *seq, i as u32 * 160, &[i as u8]);
        }
        let played: Vec<_> = (0..6)
            .filter_map(|k| jb.poll_frame(t0 + F * 3 + F * k))
            .collect();
        assert_eq!(
            played,
            (0..4)
                .map(|i| Frame::Audio(vec![i]))
                .collect::<Vec<_>>()
                .into_iter()
                .chain([Frame::Lost, Frame::Lost])
                .collect::<Vec<_>>()
        );
        assert_eq!(jb.stats.lost, 2);
    }

    #[test]
    fn jitter_raises_the_depth_within_bounds() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Config::default());
        // Packets 20 ms apart in timestamp but arriving 0 or 40 ms late in turn.
        for i in 0..200u32 {
            let wobble = if i % 2 == 0 { 0 } else { 40 };
            jb.handle_packet(
                t0 + Duration::from_millis(u64::from(i * 20 + wobble)),
                i as u16,
                i * 160,
                &[0],
            );
            let _ = jb.poll_frame(t0 + Duration::from_millis(u64::from(i * 20)));
        }
        assert!(
            jb.jitter() >= Duration::from_millis(30),
            "{:?}",
            jb.jitter()
        );
        assert!(jb.target_depth() > Duration::from_millis(100));
        assert!(jb.target_depth() <= Duration::from_millis(200));
        // A steady stream brings it back down.
        for i in 200..600u32 {
            jb.handle_packet(
                t0 + Duration::from_millis(u64::from(i * 20 + 40)),
                i as u16,
                i * 160,
                &[0],
            );
        }
        assert!(jb.jitter() < Duration::from_millis(5), "{:?}", jb.jitter());
    }

    #[test]
    fn a_long_silence_or_a_jump_restarts_buffering() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Config::default());
        jb.handle_packet(t0, 10, 1600, &[1]);
        jb.handle_packet(t0 + Duration::from_secs(5), 11, 1760, &[2]);
        assert_eq!(jb.stats.resyncs, 1);
        jb.handle_packet(t0 + Duration::from_millis(5020), 40000, 99999, &[3]);
        assert_eq!(jb.stats.resyncs, 2);
        assert_eq!(jb.buffered(), 1);
    }

    #[test]
    fn a_flood_is_bounded_and_delay_is_cut() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Config::default());
        for i in 0..1000u16 {
            jb.handle_packet(t0, i, u32::from(i) * 160, &[0; 160]);
        }
        assert!(jb.buffered() <= 64);
        let _ = jb.poll_frame(t0 + Duration::from_millis(200));
        let limit = (jb.target_depth().as_millis() / 20) as usize + 2;
        assert!(
            jb.buffered() <= limit,
            "delay cut to the target: {} > {limit}",
            jb.buffered()
        );
        assert!(jb.stats.dropped > 900);
    }

    #[test]
    fn concealment_fades_out() {
        let mut out = Vec::new();
        conceal(&[1000, -1000], 1, &mut out);
        conceal(&[1000, -1000], 2, &mut out);
        conceal(&[1000, -1000], 4, &mut out);
        assert_eq!(out, vec![500, -500, 250, -250, 0, 0]);
    }
}
