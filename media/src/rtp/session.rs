//! One RTP session: strict source learning, receive validation and
//! statistics, sending, RTCP reports, DTMF events and the media timeout.
//!
//! ```text
//!  Learning ──packet from the SDP address──────────────► Latched(addr, ssrc)
//!     │ ──N packets in sequence from the incumbent─────►   (NAT: only early
//!     │      source (one address, one SSRC), in the window  in the call)
//!     └ before latching, every packet is sent to the SDP address
//! ```
//!
//! Strictness (as Asterisk's `strictrtp` and rtpengine's strict-source):
//! once latched, packets from any other address are dropped and counted
//! before they are parsed, and nothing is ever sent to an address that was
//! not learned.
//!
//! The learning rule, for a caller behind NAT whose RTP comes from an
//! address other than the one in its SDP:
//! - a packet from the SDP address (address and port) always latches, and
//!   takes over from a NAT latch during the learning window;
//! - otherwise only during the learning window (`learn_window`, 2 s from
//!   the start), the first source to send becomes the *incumbent*. It
//!   latches after `learn_packets` packets of one SSRC in sequence;
//! - while the incumbent keeps sending (a gap under `learn_quiet`, 200 ms),
//!   another address is learnable only if it continues the incumbent's
//!   SSRC and sequence (the same stream after a NAT rebinding). So an
//!   attacker who sprays in-sequence packets once the caller has started
//!   cannot take over; one who sent first loses the claim as soon as it
//!   pauses, and the SDP address beats it at any time in the window.
//!
//! Nothing is sent before the dialog is confirmed: until the driver calls
//! [`Session::confirm`] (the ACK came) or the peer's own RTP latches, RTP
//! and RTCP are counted as withheld, so a forged INVITE that is never
//! ACKed cannot aim our media at a victim (reflection).
//!
//! Packets are validated before they touch any state, by our own reader
//! ([`super::packet`], [`super::rtcp`]): RTP version 2, a header that fits
//! (CSRC count, extension, padding), a negotiated payload type, the RFC
//! 3550 sequence check; RTCP only as a valid compound from the latched
//! peer's address, carrying its SSRC. The session never panics on input;
//! every drop has a counter.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand::Rng;

use super::id::{ClockRate, PayloadType, Ssrc};
use super::packet::{self, Header, Packet};
use super::stats::{RecvStats, SeqCheck};
use crate::dtmf::rfc4733::{self, Digit};

/// Settings of a session, mostly from the SDP offer/answer.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SDP says to send RTP.
    pub remote: SocketAddr,
    /// RTCP multiplexed on the RTP port (RFC 5761, `a=rtcp-mux`).
    pub rtcp_mux: bool,
    /// The audio payload type.
    pub payload_type: PayloadType,
    /// The codec's RTP clock rate.
    pub clock_rate: ClockRate,
    /// The telephone-event payload type, if negotiated.
    pub telephone_event: Option<PayloadType>,
    /// Report interval (RFC 3550: 5 s), randomised by ±50%.
    pub rtcp_interval: Duration,
    /// No RTP for this long raises [`Output::MediaTimeout`].
    pub media_timeout: Duration,
    /// Packets in sequence from one other source before latching to it.
    pub learn_packets: u32,
    /// How long after the start another source may be learned.
    pub learn_window: Duration,
    /// A learning incumbent that sends nothing for this long loses its
    /// claim to the next source.
    pub learn_quiet: Duration,
    /// The dialog is confirmed (the ACK came): the session may send. When
    /// false, nothing is sent until [`Session::confirm`] or until the
    /// peer's own RTP latches.
    pub confirmed: bool,
    /// RTCP CNAME.
    pub cname: String,
}

impl Config {
    /// Defaults for `remote` with the given payload type and clock rate.
    pub fn new(remote: SocketAddr, payload_type: PayloadType, clock_rate: ClockRate) -> Config {
        Config {
            remote,
            rtcp_mux: false,
            payload_type,
            clock_rate,
            telephone_event: None,
            rtcp_interval: Duration::from_secs(5),
            media_timeout: Duration::from_secs(30),
            learn_packets: 4,
            learn_window: Duration::from_secs(2),
            learn_quiet: Duration::from_millis(200),
            confirmed: false,
            cname: "dhwani".into(),
        }
    }

    /// The same, for a leg whose dialog is already confirmed (tests,
    /// benchmarks, a late-offer call whose ACK carried the answer).
    pub fn already_confirmed(mut self) -> Config {
        self.confirmed = true;
        self
    }
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// A datagram arrived on the session's port.
    Datagram {
        /// Its source.
        from: SocketAddr,
        /// Its bytes.
        bytes: &'a [u8],
    },
    /// `poll_timeout` was reached.
    Timeout,
}

/// Something for the driver or the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes.
    Transmit {
        /// To.
        to: SocketAddr,
        /// RTP or RTCP.
        bytes: Bytes,
        /// True for RTCP (goes on the RTCP port unless muxed).
        rtcp: bool,
    },
    /// Audio from the peer, in the negotiated codec.
    Audio {
        /// RTP sequence number.
        seq: u16,
        /// RTP timestamp.
        timestamp: u32,
        /// Codec payload.
        payload: Bytes,
    },
    /// A DTMF digit from telephone-events.
    Digit(Digit),
    /// The session latched to its peer's address.
    Latched(SocketAddr),
    /// No RTP for `media_timeout`.
    MediaTimeout,
}

/// Counters (all drops are counted, never logged per packet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// RTP packets accepted.
    pub rtp_received: u64,
    /// RTCP packets accepted.
    pub rtcp_received: u64,
    /// Dropped: not from the latched (or learnable) source.
    pub foreign: u64,
    /// Dropped: not a valid RTP/RTCP packet.
    pub malformed: u64,
    /// Dropped: payload type not negotiated.
    pub unknown_payload_type: u64,
    /// Dropped: sequence number far out of line.
    pub bad_sequence: u64,
    /// RTP packets sent.
    pub rtp_sent: u64,
    /// RTP payload bytes sent.
    pub octets_sent: u64,
    /// RTCP reports sent.
    pub rtcp_sent: u64,
    /// RTP or RTCP not sent because the dialog was not confirmed yet.
    pub withheld: u64,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    addr: SocketAddr,
    ssrc: u32,
    last_seq: u16,
    count: u32,
    last_at: Instant,
}

/// How far ahead a moved stream's sequence number may be (packets lost in
/// a NAT rebinding) and still continue the incumbent.
const MAX_MOVE_GAP: u16 = 16;

#[derive(Debug, Clone, Copy)]
enum Peer {
    Learning(Option<Candidate>),
    Latched { addr: SocketAddr, ssrc: u32 },
}

/// The RTP session of one call leg.
#[derive(Debug)]
pub struct Session {
    cfg: Config,
    start: Instant,
    /// Learning of the peer's address started here (the start, or the
    /// last re-INVITE that moved the media).
    learn_start: Instant,
    /// The address a re-INVITE moved the media away from: never learned
    /// again (its last packets in flight must not pull the media back).
    abandoned: Option<SocketAddr>,
    wall_start: SystemTime,
    peer: Peer,
    recv: Option<(u32, RecvStats)>,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    /// Timestamp of the last packet sent, and when (for SR rtp_time).
    sent_at: Option<(Instant, u32)>,
    next_rtcp: Instant,
    rtcp_jitter_seed: u32,
    last_rtp: Instant,
    receiving: bool,
    timed_out: bool,
    /// Middle 32 bits of the peer's last SR NTP time, and when it came.
    last_sr: Option<(u32, Instant)>,
    dtmf: rfc4733::Receiver,
    dtmf_out: Vec<(Instant, bool, [u8; 4], u32)>,
    out: Vec<Output>,
    confirmed: bool,
    /// Counters.
    pub counters: Counters,
}

/// Seconds from 1900 (NTP) to 1970 (Unix).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

impl Session {
    /// A session starting at `now` (wall clock `wall`), with random SSRC,
    /// sequence number and timestamp from `rng`.
    pub fn new(cfg: Config, rng: &mut impl Rng, now: Instant, wall: SystemTime) -> Session {
        let seed: u32 = rng.random();
        let mut s = Session {
            dtmf: rfc4733::Receiver::new(cfg.clock_rate.0),
            start: now,
            learn_start: now,
            abandoned: None,
            wall_start: wall,
            peer: Peer::Learning(None),
            recv: None,
            ssrc: rng.random(),
            seq: rng.random(),
            timestamp: rng.random(),
            sent_at: None,
            next_rtcp: now,
            rtcp_jitter_seed: seed | 1,
            last_rtp: now,
            receiving: true,
            timed_out: false,
            last_sr: None,
            dtmf_out: Vec::new(),
            out: Vec::new(),
            confirmed: cfg.confirmed,
            counters: Counters::default(),
            cfg,
        };
        s.next_rtcp = now + s.rtcp_delay();
        s
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> Ssrc {
        Ssrc(self.ssrc)
    }

    /// Where RTP goes: the learned address, or the SDP one before that.
    pub fn send_addr(&self) -> SocketAddr {
        match self.peer {
            Peer::Latched { addr, .. } => addr,
            Peer::Learning(_) => self.cfg.remote,
        }
    }

    /// The latched peer, if any.
    pub fn latched(&self) -> Option<SocketAddr> {
        match self.peer {
            Peer::Latched { addr, .. } => Some(addr),
            Peer::Learning(_) => None,
        }
    }

    /// The SSRC of the latched peer's stream.
    pub fn remote_ssrc(&self) -> Option<Ssrc> {
        match self.peer {
            Peer::Latched { ssrc, .. } => Some(Ssrc(ssrc)),
            Peer::Learning(_) => None,
        }
    }

    /// Reception statistics of the current source.
    pub fn recv_stats(&self) -> Option<&RecvStats> {
        self.recv.as_ref().map(|(_, s)| s)
    }

    /// The peer's offer changed mid-call (a re-INVITE): RTP goes to
    /// `remote` now, with these payload types. A new address starts
    /// learning afresh (the learning window counts from `now`), so media
    /// follows a peer whose SBC moved it.
    pub fn update_remote(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        payload_type: PayloadType,
        telephone_event: Option<PayloadType>,
    ) {
        self.cfg.payload_type = payload_type;
        self.cfg.telephone_event = telephone_event;
        if remote != self.cfg.remote {
            self.abandoned = Some(self.send_addr());
            self.cfg.remote = remote;
            self.peer = Peer::Learning(None);
            self.learn_start = now;
            self.last_rtp = now;
        }
    }

    /// The dialog is confirmed (the ACK arrived): sending may start.
    pub fn confirm(&mut self) {
        self.confirmed = true;
    }

    /// True once the session may send: confirmed, or latched to the peer's
    /// own RTP.
    pub fn is_confirmed(&self) -> bool {
        self.confirmed
    }

    /// Pauses the media timeout (call on hold: sendonly/inactive).
    pub fn set_receiving(&mut self, now: Instant, on: bool) {
        self.receiving = on;
        self.last_rtp = now;
        self.timed_out = false;
    }

    fn rtcp_delay(&mut self) -> Duration {
        // xorshift: deterministic from the seed, ±50% as RFC 3550 §6.3.1.
        let mut x = self.rtcp_jitter_seed;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rtcp_jitter_seed = x;
        let factor = 0.5 + f64::from(x % 1000) / 1000.0;
        self.cfg.rtcp_interval.mul_f64(factor)
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.remove(0))
        }
    }

    /// When to call with [`Input::Timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_rtcp;
        if self.receiving && !self.timed_out {
            t = t.min(self.last_rtp + self.cfg.media_timeout);
        }
        if let Some(d) = self.dtmf.poll_timeout() {
            t = t.min(d);
        }
        if let Some((at, ..)) = self.dtmf_out.first() {
            t = t.min(*at);
        }
        Some(t)
    }

    /// Feeds one input.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Timeout => self.handle_timeout(now),
            Input::Datagram { from, bytes } => {
                // RFC 5761 §4: second byte 192-223 (with the marker bit
                // folded in) is RTCP.
                match bytes.get(1).copied() {
                    Some(b) if (192..=223).contains(&b) => self.handle_rtcp(now, from, bytes),
                    _ => self.handle_rtp(now, from, bytes),
                }
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.dtmf.handle_timeout(now);
        self.drain_digits();
        while self.dtmf_out.first().is_some_and(|(at, ..)| *at <= now) {
            let (_, marker, payload, ts) = self.dtmf_out.remove(0);
            if let Some(pt) = self.cfg.telephone_event {
                self.transmit_rtp(pt.0, marker, ts, &payload);
            }
        }
        if self.receiving && !self.timed_out && now >= self.last_rtp + self.cfg.media_timeout {
            self.timed_out = true;
            self.out.push(Output::MediaTimeout);
        }
        if now >= self.next_rtcp {
            self.send_report(now);
            self.next_rtcp = now + self.rtcp_delay();
        }
    }

    fn drain_digits(&mut self) {
        while let Some(d) = self.dtmf.poll_digit() {
            self.out.push(Output::Digit(d));
        }
    }

    /// The learning rule of the module docs. Decides whether a packet of
    /// `ssrc`/`seq` from `from` is the peer's, updating what is learned.
    fn source_allowed(&mut self, now: Instant, from: SocketAddr, ssrc: u32, seq: u16) -> bool {
        let in_window = now.saturating_duration_since(self.learn_start) < self.cfg.learn_window;
        match self.peer {
            Peer::Latched { addr, .. } if addr == from => {
                self.peer = Peer::Latched { addr, ssrc };
                true
            }
            Peer::Latched { addr, .. } => {
                // The signalled address may still take over early on.
                if from == self.cfg.remote && addr != self.cfg.remote && in_window {
                    self.latch(from, ssrc);
                    true
                } else {
                    false
                }
            }
            Peer::Learning(cand) => {
                if from == self.cfg.remote {
                    self.latch(from, ssrc);
                    return true;
                }
                if !in_window || self.abandoned == Some(from) {
                    return false;
                }
                let fresh =
                    |c: &Candidate| now.saturating_duration_since(c.last_at) < self.cfg.learn_quiet;
                let next = match cand {
                    // The incumbent's own address: its stream goes on, or
                    // it starts a new one (new SSRC) and counts again.
                    Some(c) if c.addr == from => {
                        if c.ssrc == ssrc && seq == c.last_seq.wrapping_add(1) {
                            Candidate {
                                last_seq: seq,
                                count: c.count.saturating_add(1),
                                last_at: now,
                                ..c
                            }
                        } else {
                            Candidate {
                                addr: from,
                                ssrc,
                                last_seq: seq,
                                count: 1,
                                last_at: now,
                            }
                        }
                    }
                    // Another address while the incumbent is sending: only
                    // the incumbent's stream itself may move.
                    Some(c) if fresh(&c) => {
                        let gap = seq.wrapping_sub(c.last_seq);
                        if c.ssrc == ssrc && (1..=MAX_MOVE_GAP).contains(&gap) {
                            Candidate {
                                addr: from,
                                last_seq: seq,
                                count: c.count.saturating_add(1),
                                last_at: now,
                                ..c
                            }
                        } else {
                            return false;
                        }
                    }
                    // No incumbent, or it went quiet: this source is next.
                    _ => Candidate {
                        addr: from,
                        ssrc,
                        last_seq: seq,
                        count: 1,
                        last_at: now,
                    },
                };
                if next.count >= self.cfg.learn_packets {
                    self.latch(from, ssrc);
                    true
                } else {
                    self.peer = Peer::Learning(Some(next));
                    false
                }
            }
        }
    }

    fn latch(&mut self, addr: SocketAddr, ssrc: u32) {
        self.peer = Peer::Latched { addr, ssrc };
        // The peer's own RTP proves the address wants media (symmetric
        // RTP): sending may start even before the ACK.
        self.confirmed = true;
        self.out.push(Output::Latched(addr));
    }

    fn handle_rtp(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        // Cheapest first: the fixed header, then the source, and only then
        // the variable parts (CSRCs, extension, padding).
        let Ok(peek) = packet::peek(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        if let Peer::Latched { addr, .. } = self.peer
            && from != addr
            && from != self.cfg.remote
        {
            self.counters.foreign += 1;
            return;
        }
        let pt = PayloadType(peek.payload_type);
        if pt != self.cfg.payload_type && Some(pt) != self.cfg.telephone_event {
            self.counters.unknown_payload_type += 1;
            return;
        }
        let Ok(packet) = packet::parse(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        let h = packet.header;
        if !self.source_allowed(now, from, h.ssrc, h.sequence_number) {
            self.counters.foreign += 1;
            return;
        }
        let stats = match &mut self.recv {
            Some((ssrc, s)) if *ssrc == h.ssrc => s,
            _ => {
                self.recv = Some((h.ssrc, RecvStats::new(h.sequence_number)));
                match &mut self.recv {
                    Some((_, s)) => s,
                    None => return,
                }
            }
        };
        if stats.update_seq(h.sequence_number) == SeqCheck::Bad {
            self.counters.bad_sequence += 1;
            return;
        }
        stats.bytes += packet.payload.len() as u64;
        let arrival = now.saturating_duration_since(self.start).as_micros() as i64
            * i64::from(self.cfg.clock_rate.0)
            / 1_000_000;
        stats.update_jitter(arrival, h.timestamp);
        self.counters.rtp_received += 1;
        self.last_rtp = now;
        self.timed_out = false;
        if Some(pt) == self.cfg.telephone_event {
            self.dtmf.handle_packet(now, h.timestamp, packet.payload);
            self.drain_digits();
        } else {
            self.out.push(Output::Audio {
                seq: h.sequence_number,
                timestamp: h.timestamp,
                payload: Bytes::copy_from_slice(packet.payload),
            });
        }
    }

    fn handle_rtcp(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        // Reports only from the latched peer's address (any port: RTCP may
        // come from RTP port + 1), and only for the stream we latched to.
        let Peer::Latched { addr, ssrc } = self.peer else {
            self.counters.foreign += 1;
            return;
        };
        if from.ip() != addr.ip() {
            self.counters.foreign += 1;
            return;
        }
        let Ok(compound) = super::rtcp::parse(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        if compound.sender_ssrc != ssrc {
            self.counters.foreign += 1;
            return;
        }
        self.counters.rtcp_received += 1;
        if let Some(ntp) = compound.sr_ntp {
            self.last_sr = Some((((ntp >> 16) & 0xFFFF_FFFF) as u32, now));
        }
    }

    fn transmit_rtp(&mut self, pt: u8, marker: bool, timestamp: u32, payload: &[u8]) {
        if !self.confirmed {
            self.counters.withheld += 1;
            return;
        }
        let mut buf = Vec::with_capacity(packet::FIXED_HEADER + payload.len());
        packet::write(
            &mut buf,
            &Header {
                marker,
                payload_type: pt,
                sequence_number: self.seq,
                timestamp,
                ssrc: self.ssrc,
                csrc_count: 0,
            },
            payload,
        );
        let bytes = Bytes::from(buf);
        self.seq = self.seq.wrapping_add(1);
        self.counters.rtp_sent += 1;
        self.counters.octets_sent += payload.len() as u64;
        let to = self.send_addr();
        self.out.push(Output::Transmit {
            to,
            bytes,
            rtcp: false,
        });
    }

    /// Sends one frame of audio (`samples` long) now; the timestamp then
    /// moves on by `samples`. Set `marker` on the first packet after a
    /// silence (RFC 3551 §4.1).
    pub fn send_audio(&mut self, now: Instant, payload: &[u8], samples: u32, marker: bool) {
        let ts = self.timestamp;
        self.transmit_rtp(self.cfg.payload_type.0, marker, ts, payload);
        self.sent_at = Some((now, ts));
        self.timestamp = self.timestamp.wrapping_add(samples);
    }

    /// Moves the timestamp on without sending (silence suppressed).
    pub fn skip_samples(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
    }

    /// Schedules the RFC 4733 packets of one digit, starting now. Returns
    /// false when telephone-event was not negotiated or the key is not DTMF.
    pub fn send_digit(&mut self, now: Instant, key: char, length: Duration) -> bool {
        if self.cfg.telephone_event.is_none() {
            return false;
        }
        let Some(packets) = rfc4733::send(
            key,
            length,
            Duration::from_millis(20),
            self.cfg.clock_rate.0,
            10,
        ) else {
            return false;
        };
        let ts = self.timestamp;
        for p in packets {
            self.dtmf_out.push((now + p.at, p.marker, p.payload, ts));
        }
        self.handle_timeout(now);
        true
    }

    fn ntp(&self, now: Instant) -> u64 {
        let wall = self.wall_start + now.saturating_duration_since(self.start);
        let d = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs() + NTP_UNIX_OFFSET;
        let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
        (secs << 32) | frac
    }

    fn send_report(&mut self, now: Instant) {
        if !self.confirmed {
            self.counters.withheld += 1;
            return;
        }
        let reports = match &mut self.recv {
            Some((ssrc, s)) => {
                let (lsr, dlsr) = match self.last_sr {
                    Some((lsr, at)) => {
                        let delay = now.saturating_duration_since(at);
                        (
                            lsr,
                            u32::try_from(delay.as_micros() * 65536 / 1_000_000)
                                .unwrap_or(u32::MAX),
                        )
                    }
                    None => (0, 0),
                };
                vec![rtcp::reception_report::ReceptionReport {
                    ssrc: *ssrc,
                    fraction_lost: s.take_fraction_lost(),
                    total_lost: s.lost().clamp(-(1 << 23), (1 << 23) - 1) as u32 & 0x00FF_FFFF,
                    last_sequence_number: s.extended_max(),
                    jitter: s.jitter(),
                    last_sender_report: lsr,
                    delay: dlsr,
                }]
            }
            None => Vec::new(),
        };
        let mut packets: Vec<Box<dyn rtcp::packet::Packet + Send + Sync>> = Vec::new();
        match self.sent_at {
            Some((at, ts)) => {
                let elapsed = now.saturating_duration_since(at);
                let rtp_time = ts.wrapping_add(
                    (elapsed.as_micros() * u128::from(self.cfg.clock_rate.0) / 1_000_000) as u32,
                );
                packets.push(Box::new(rtcp::sender_report::SenderReport {
                    ssrc: self.ssrc,
                    ntp_time: self.ntp(now),
                    rtp_time,
                    packet_count: self.counters.rtp_sent as u32,
                    octet_count: self.counters.octets_sent as u32,
                    reports,
                    profile_extensions: Bytes::new(),
                }));
            }
            None => packets.push(Box::new(rtcp::receiver_report::ReceiverReport {
                ssrc: self.ssrc,
                reports,
                profile_extensions: Bytes::new(),
            })),
        }
        packets.push(Box::new(rtcp::source_description::SourceDescription {
            chunks: vec![rtcp::source_description::SourceDescriptionChunk {
                source: self.ssrc,
                items: vec![rtcp::source_description::SourceDescriptionItem {
                    sdes_type: rtcp::source_description::SdesType::SdesCname,
                    text: Bytes::from(self.cfg.cname.clone()),
                }],
            }],
        }));
        let Ok(bytes) = rtcp::packet::marshal(&packets) else {
            return;
        };
        let addr = self.send_addr();
        let to = if self.cfg.rtcp_mux {
            addr
        } else {
            SocketAddr::new(addr.ip(), addr.port().wrapping_add(1))
        };
        self.counters.rtcp_sent += 1;
        self.out.push(Output::Transmit {
            to,
            bytes,
            rtcp: true,
        });
    }
}

/// Parses an RTP packet (our own reader: see [`super::packet`]).
pub fn parse_rtp(bytes: &[u8]) -> Option<Packet<'_>> {
    packet::parse(bytes).ok()
}

#[cfg(test)]
mod tests;
