//! RFC 4733 telephone-events: DTMF sent as RTP packets.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! All packets of one event carry the RTP timestamp of its start (§2.5.1.2);
//! the duration grows until the End bit, and the final packet is sent three
//! times (§2.5.1.4). [`Receiver`] turns that into one [`Digit`] per event:
//! repeats, duplicates and reordered packets of an event are counted once,
//! and an event whose end packets were all lost ends when the next event
//! starts or after [`Receiver::END_TIMEOUT`] of silence. [`send`] makes the
//! packets of an outgoing digit.

use std::time::{Duration, Instant};

/// A key and how long it was held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit {
    /// `0`-`9`, `*`, `#`, `A`-`D`.
    pub key: char,
    /// Held for (from the event's duration field).
    pub duration: Duration,
}

/// The key for an event code (§3.2), or None for non-DTMF events.
pub fn key_of(code: u8) -> Option<char> {
    match code {
        0..=9 => char::from_digit(u32::from(code), 10),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + (code - 12))),
        _ => None,
    }
}

/// The event code for a key.
pub fn code_of(key: char) -> Option<u8> {
    match key {
        '0'..='9' => key.to_digit(10).map(|d| d as u8),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(key as u8 - b'A' + 12),
        'a'..='d' => Some(key as u8 - b'a' + 12),
        _ => None,
    }
}

/// One telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    /// Event code.
    pub event: u8,
    /// End of the event.
    pub end: bool,
    /// Power level, -dBm0 (0..=63).
    pub volume: u8,
    /// Duration in timestamp units.
    pub duration: u16,
}

impl Payload {
    /// Parses the first event of a payload; None when shorter than 4 bytes.
    pub fn parse(b: &[u8]) -> Option<Payload> {
        let [event, flags, d0, d1, ..] = *b else {
            return None;
        };
        Some(Payload {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The 4 bytes.
    pub fn to_bytes(self) -> [u8; 4] {
        let [d0, d1] = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d0,
            d1,
        ]
    }
}

#[derive(Debug, Clone, Copy)]
struct Current {
    timestamp: u32,
    key: char,
    duration: u16,
    ended: bool,
    last_seen: Instant,
}

/// Turns received telephone-event packets into digits.
#[derive(Debug)]
pub struct Receiver {
    clock_rate: u32,
    current: Option<Current>,
    out: Vec<Digit>,
    /// Packets that were not DTMF or were malformed.
    pub ignored: u64,
}

impl Receiver {
    /// An event with no packet for this long has ended even without an
    /// End bit (all three end packets lost).
    pub const END_TIMEOUT: Duration = Duration::from_millis(300);

    /// For a telephone-event stream at `clock_rate` (8000 for PCMU/PCMA).
    pub fn new(clock_rate: u32) -> Receiver {
        Receiver {
            clock_rate: clock_rate.max(1),
            current: None,
            out: Vec::new(),
            ignored: 0,
        }
    }

    fn duration(&self, units: u16) -> Duration {
        Duration::from_micros(u64::from(units) * 1_000_000 / u64::from(self.clock_rate))
    }

    fn finish(&mut self) {
        let Some(c) = self.current.as_mut().filter(|c| !c.ended) else {
            return;
        };
        c.ended = true;
        let (key, units) = (c.key, c.duration);
        let duration = self.duration(units);
        self.out.push(Digit { key, duration });
    }

    /// One RTP packet of the telephone-event payload type.
    pub fn handle_packet(&mut self, now: Instant, timestamp: u32, payload: &[u8]) {
        let Some(p) = Payload::parse(payload) else {
            self.ignored += 1;
            return;
        };
        let Some(key) = key_of(p.event) else {
            self.ignored += 1;
            return;
        };
        match self.current {
            Some(c) if c.timestamp == timestamp => {
                // Same event: a longer duration, an end, or a repeat.
                if let Some(c) = self.current.as_mut() {
                    c.last_seen = now;
                    if !c.ended {
                        c.duration = c.duration.max(p.duration);
                    }
                }
                if p.end {
                    self.finish();
                }
            }
            Some(c) if (timestamp.wrapping_sub(c.timestamp) as i32) < 0 => {
                // A late packet of an earlier event.
                self.ignored += 1;
            }
            _ => {
                self.finish();
                self.current = Some(Current {
                    timestamp,
                    key,
                    duration: p.duration,
                    ended: false,
                    last_seen: now,
                });
                if p.end {
                    self.finish();
                }
            }
        }
    }

    /// When to call [`Receiver::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current
            .filter(|c| !c.ended)
            .map(|c| c.last_seen + Self::END_TIMEOUT)
    }

    /// Ends an event whose end packets never came.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|t| now >= t) {
            self.finish();
        }
    }

    /// The next digit received.
    pub fn poll_digit(&mut self) -> Option<Digit> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.remove(0))
        }
    }
}

/// One packet to send: when (after the first), whether it carries the RTP
/// marker bit, and the payload. All share the event's RTP timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    /// Offset from the first packet.
    pub at: Duration,
    /// Marker bit (first packet only).
    pub marker: bool,
    /// The payload.
    pub payload: [u8; 4],
}

/// The packets of one digit held for `length` (at least one packet
/// interval), sent every `interval`, with the final packet three times.
pub fn send(
    key: char,
    length: Duration,
    interval: Duration,
    clock_rate: u32,
    volume: u8,
) -> Option<Vec<Outgoing>> {
    let event = code_of(key)?;
    let interval = interval.max(Duration::from_millis(10));
    let units = |d: Duration| -> u16 {
        u16::try_from(d.as_micros() * u128::from(clock_rate) / 1_000_000).unwrap_or(u16::MAX)
    };
    let mut out = Vec::new();
    let mut t = Duration::ZERO;
    while t + interval < length {
        t += interval;
        out.push(Outgoing {
            at: t - interval,
            marker: out.is_empty(),
            payload: Payload {
                event,
                end: false,
                volume,
                duration: units(t),
            }
            .to_bytes(),
        });
    }
    let end = Payload {
        event,
        end: true,
        volume,
        duration: units(length.max(interval)),
    }
    .to_bytes();
    let at = out.last().map_or(Duration::ZERO, |o| o.at + interval);
    for _ in 0..3 {
        out.push(Outgoing {
            at,
            marker: out.is_empty(),
            payload: end,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_vectors() {
        // RFC 4733 §2.5: digit 5, end, volume 10, duration 1760 (220 ms at 8 kHz).
        let p = Payload::parse(&[0x05, 0x8A, 0x06, 0xE0]).expect("4 bytes");
        assert_eq!(
            p,
            Payload {
                event: 5,
                end: true,
                volume: 10,
                duration: 1760
            }
        );
        assert_eq!(p.to_bytes(), [0x05, 0x8A, 0x06, 0xE0]);
        // The R bit is ignored; volume keeps 6 bits.
        assert_eq!(
            Payload::parse(&[11, 0x7F, 0, 160]).map(|p| (p.end, p.volume)),
            Some((false, 63))
        );
        assert_eq!(Payload::parse(&[1, 2, 3]), None);
        assert_eq!(
            (key_of(10), key_of(11), key_of(15), key_of(16)),
            (Some('*'), Some('#'), Some('D'), None)
        );
    }

    fn pkt(event: u8, end: bool, duration: u16) -> [u8; 4] {
        Payload {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    #[test]
    fn an_event_with_three_end_packets_is_one_digit() {
        let t0 = Instant::now();
        let mut r = Receiver::new(8000);
        for (i, d) in [160u16, 320, 480, 640].iter().enumerate() {
            r.handle_packet(
                t0 + Duration::from_millis(20 * i as u64),
                1000,
                &pkt(1, false, *d),
            );
        }
        for _ in 0..3 {
            r.handle_packet(t0 + Duration::from_millis(100), 1000, &pkt(1, true, 800));
        }
        assert_eq!(
            r.poll_digit(),
            Some(Digit {
                key: '1',
                duration: Duration::from_millis(100)
            })
        );
        assert_eq!(r.poll_digit(), None);
        // A duplicate arriving later changes nothing.
        r.handle_packet(t0 + Duration::from_millis(140), 1000, &pkt(1, true, 800));
        assert_eq!(r.poll_digit(), None);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn the_same_key_twice_is_two_digits() {
        let t0 = Instant::now();
        let mut r = Receiver::new(8000);
        r.handle_packet(t0, 1000, &pkt(5, true, 400));
        r.handle_packet(t0 + Duration::from_millis(200), 2600, &pkt(5, true, 400));
        assert_eq!(r.poll_digit().map(|d| d.key), Some('5'));
        assert_eq!(r.poll_digit().map(|d| d.key), Some('5'));
    }

    #[test]
    fn lost_end_packets_end_the_event_on_the_next_or_on_a_timeout() {
        let t0 = Instant::now();
        let mut r = Receiver::new(8000);
        r.handle_packet(t0, 1000, &pkt(2, false, 160));
        r.handle_packet(t0 + Duration::from_millis(200), 3000, &pkt(3, false, 160));
        assert_eq!(r.poll_digit().map(|d| d.key), Some('2'));
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_millis(500)));
        r.handle_timeout(t0 + Duration::from_millis(499));
        assert_eq!(r.poll_digit(), None);
        r.handle_timeout(t0 + Duration::from_millis(500));
        assert_eq!(r.poll_digit().map(|d| d.key), Some('3'));
    }

    #[test]
    fn late_packets_of_an_old_event_and_garbage_are_ignored() {
        let t0 = Instant::now();
        let mut r = Receiver::new(8000);
        r.handle_packet(t0, 5000, &pkt(7, true, 800));
        r.handle_packet(t0, 4000, &pkt(6, false, 160)); // older timestamp
        r.handle_packet(t0, 6000, &[1, 2]);
        r.handle_packet(t0, 7000, &pkt(200, true, 160)); // not DTMF
        assert_eq!(r.poll_digit().map(|d| d.key), Some('7'));
        assert_eq!(r.poll_digit(), None);
        assert_eq!(r.ignored, 3);
        // Timestamp wrap-around is a new event, not a late one.
        let mut r = Receiver::new(8000);
        r.handle_packet(t0, u32::MAX - 100, &pkt(1, true, 160));
        r.handle_packet(t0, 60, &pkt(2, true, 160));
        assert_eq!(r.poll_digit().map(|d| d.key), Some('1'));
        assert_eq!(r.poll_digit().map(|d| d.key), Some('2'));
    }

    #[test]
    fn sending_a_digit_and_receiving_it_back() {
        let pkts = send(
            '#',
            Duration::from_millis(100),
            Duration::from_millis(20),
            8000,
            10,
        )
        .expect("key");
        assert!(pkts[0].marker && pkts.iter().skip(1).all(|p| !p.marker));
        let ends: Vec<_> = pkts.iter().filter(|p| p.payload[1] & 0x80 != 0).collect();
        assert_eq!(ends.len(), 3, "the end packet goes three times");
        assert_eq!(
            Payload::parse(&ends[0].payload).map(|p| p.duration),
            Some(800)
        );
        let t0 = Instant::now();
        let mut r = Receiver::new(8000);
        for p in &pkts {
            r.handle_packet(t0 + p.at, 12345, &p.payload);
        }
        assert_eq!(
            r.poll_digit(),
            Some(Digit {
                key: '#',
                duration: Duration::from_millis(100)
            })
        );
        assert_eq!(r.poll_digit(), None);
        assert!(
            send(
                'x',
                Duration::from_millis(100),
                Duration::from_millis(20),
                8000,
                10
            )
            .is_none()
        );
    }
}
