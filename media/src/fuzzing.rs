//! Entry points shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`) and
//! their replay tests (`media/tests/fuzz_regressions.rs`), so a crash the
//! fuzzer finds is replayed by the stable toolchain in CI with the very
//! same code. Each function takes arbitrary bytes and must not panic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::SeedableRng;

use crate::call::{CallMedia, Command, Config};
use crate::codec::Codec;
use crate::dtmf::rfc4733;
use crate::rtp::{self, packet};

/// Our RTP reader and the extension elements it exposes.
pub fn rtp_packet(data: &[u8]) {
    let _ = packet::peek(data);
    if let Ok(p) = packet::parse(data)
        && let Some(ext) = p.extension
    {
        for _ in ext.elements() {}
    }
}

/// Our compound RTCP reader.
pub fn rtcp_compound(data: &[u8]) {
    let _ = rtp::rtcp::parse(data);
}

/// RFC 4733 payloads through the event receiver, as a stream of packets:
/// each chunk is `[timestamp-delta, ms-delta, len, payload...]`.
pub fn rfc4733_events(data: &[u8]) {
    let t0 = Instant::now();
    let mut now = t0;
    let mut ts = 0u32;
    let mut rx = rfc4733::Receiver::new(8000);
    let mut rest = data;
    while let [dts, dms, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (payload, after) = tail.split_at(n);
        ts = ts.wrapping_add(u32::from(*dts) * 160);
        now += Duration::from_millis(u64::from(*dms));
        let _ = rfc4733::Payload::parse(payload);
        rx.handle_packet(now, ts, payload);
        if let Some(t) = rx.poll_timeout()
            && t <= now
        {
            rx.handle_timeout(now);
        }
        while rx.poll_digit().is_some() {}
        rest = after;
    }
}

/// The whole receive path of a call's media: datagrams from the signalled
/// address or strangers, time passing, and commands, in an order the bytes
/// choose. Each chunk is `[op, len, bytes...]`.
pub fn receive_path(data: &[u8]) {
    let peer: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 40000));
    let stranger: SocketAddr = SocketAddr::from(([127, 0, 0, 2], 40002));
    let mut cfg = rtp::Config::new(peer, rtp::PayloadType(0), rtp::ClockRate(8000));
    cfg.telephone_event = Some(rtp::PayloadType(101));
    let t0 = Instant::now();
    let mut m = CallMedia::new(
        Config {
            rtp: cfg,
            codec: Codec::Pcmu,
            inband_dtmf: true,
            tap: true,
        },
        &mut rand::rngs::StdRng::seed_from_u64(0),
        t0,
        SystemTime::UNIX_EPOCH,
    );
    let tone: Arc<[i16]> = (0..480).map(|i| (i * 37 % 2000) as i16).collect();
    let mut now = t0;
    let mut rest = data;
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (bytes, after) = tail.split_at(n);
        match op % 8 {
            0 => m.handle_datagram(now, peer, bytes),
            1 => m.handle_datagram(now, stranger, bytes),
            2 => {
                // Valid-looking RTP: our header on the fuzzer's payload.
                let mut b = Vec::new();
                let seq = u16::from(*len);
                let h = packet::Header {
                    marker: false,
                    payload_type: if op & 0x80 != 0 { 101 } else { 0 },
                    sequence_number: seq,
                    timestamp: u32::from(seq) * 160,
                    ssrc: 7,
                    csrc_count: 0,
                };
                packet::write(&mut b, &h, bytes);
                m.handle_datagram(now, peer, &b);
            }
            3 => {
                now += Duration::from_millis(u64::from(*len));
                m.handle_timeout(now);
            }
            4 => m.handle_command(now, Command::Confirm),
            5 => m.handle_command(
                now,
                Command::Play {
                    prompts: vec![Arc::clone(&tone)],
                    barge_in: op & 0x80 != 0,
                },
            ),
            6 => m.handle_command(
                now,
                Command::Direction {
                    send: op & 0x80 != 0,
                    receive: op & 0x40 != 0,
                },
            ),
            _ => m.handle_command(now, Command::InfoDigit(char::from(*len))),
        }
        while m.poll_output().is_some() {}
        rest = after;
    }
}
