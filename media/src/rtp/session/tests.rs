//! Session tests on fake time: strict learning, validation, DTMF, RTCP,
//! media timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use rand::SeedableRng;
use rand::rngs::StdRng;
use webrtc_util::marshal::Marshal;

use super::*;

const PT: u8 = 0;
const TE: u8 = 101;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

fn session(now: Instant) -> Session {
    let mut cfg =
        Config::new(addr("10.0.0.5:4000"), PayloadType(PT), ClockRate(8000)).already_confirmed();
    cfg.telephone_event = Some(crate::rtp::PayloadType(TE));
    Session::new(
        cfg,
        &mut StdRng::seed_from_u64(7),
        now,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    )
}

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    rtp::packet::Packet {
        header: rtp::header::Header {
            version: 2,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            ..Default::default()
        },
        payload: Bytes::copy_from_slice(payload),
    }
    .marshal()
    .expect("marshal")
    .to_vec()
}

fn feed(s: &mut Session, now: Instant, from: &str, bytes: &[u8]) -> Vec<Output> {
    s.handle_input(
        now,
        Input::Datagram {
            from: addr(from),
            bytes,
        },
    );
    std::iter::from_fn(|| s.poll_output()).collect()
}

fn audio_count(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::Audio { .. }))
        .count()
}

#[test]
fn the_sdp_address_latches_at_once() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let out = feed(
        &mut s,
        t0,
        "10.0.0.5:4000",
        &rtp(PT, 1, 160, 99, &[0xFF; 160]),
    );
    assert_eq!(out[0], Output::Latched(addr("10.0.0.5:4000")));
    assert_eq!(audio_count(&out), 1);
    assert_eq!(s.remote_ssrc(), Some(Ssrc(99)));
    s.send_audio(t0, &[0xFF; 160], 160, true);
    match s.poll_output() {
        Some(Output::Transmit {
            to,
            bytes,
            rtcp: false,
        }) => {
            assert_eq!(to, addr("10.0.0.5:4000"));
            let p = parse_rtp(&bytes).expect("our packet parses");
            assert_eq!(
                (p.header.payload_type, p.header.marker, p.payload.len()),
                (PT, true, 160)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_nat_address_is_learned_from_consecutive_packets_only() {
    let t0 = Instant::now();
    let mut s = session(t0);
    // Before learning, we send to the SDP address.
    assert_eq!(s.send_addr(), addr("10.0.0.5:4000"));
    for seq in 10..13u16 {
        let out = feed(
            &mut s,
            t0,
            "203.0.113.9:31000",
            &rtp(PT, seq, u32::from(seq) * 160, 5, &[0; 160]),
        );
        assert_eq!(audio_count(&out), 0, "not delivered before latching");
    }
    let out = feed(
        &mut s,
        t0,
        "203.0.113.9:31000",
        &rtp(PT, 13, 13 * 160, 5, &[0; 160]),
    );
    assert_eq!(out[0], Output::Latched(addr("203.0.113.9:31000")));
    assert_eq!(audio_count(&out), 1);
    assert_eq!(s.send_addr(), addr("203.0.113.9:31000"));
    assert_eq!(s.counters.foreign, 3);
}

#[test]
fn a_spraying_attacker_cannot_divert_or_degrade_the_call() {
    let t0 = Instant::now();
    let mut s = session(t0);
    feed(&mut s, t0, "10.0.0.5:4000", &rtp(PT, 1, 160, 99, &[0; 160]));
    // 1,000 packets from elsewhere, in perfect sequence, some with our SSRC.
    for i in 0..1000u16 {
        let out = feed(
            &mut s,
            t0 + Duration::from_millis(1),
            "198.51.100.7:5000",
            &rtp(PT, 2 + i, 320, if i % 2 == 0 { 99 } else { 1 }, &[1; 160]),
        );
        assert_eq!(audio_count(&out), 0);
    }
    assert_eq!(s.counters.foreign, 1000);
    assert_eq!(s.send_addr(), addr("10.0.0.5:4000"));
    // The real peer's stream goes on unharmed.
    let out = feed(
        &mut s,
        t0 + Duration::from_millis(20),
        "10.0.0.5:4000",
        &rtp(PT, 2, 320, 99, &[0; 160]),
    );
    assert_eq!(audio_count(&out), 1);
    assert_eq!(s.recv_stats().map(|r| r.lost()), Some(0));
}

#[test]
fn random_sources_never_latch_and_the_sdp_peer_takes_over_early() {
    let t0 = Instant::now();
    let mut s = session(t0);
    for i in 0..50u16 {
        feed(
            &mut s,
            t0,
            &format!("198.51.100.{}:5000", i % 7),
            &rtp(PT, i.wrapping_mul(7919), 0, 3, &[0]),
        );
    }
    assert_eq!(s.latched(), None);
    // While the spray's incumbent is fresh, four in sequence from yet
    // another address with another SSRC are not learned...
    for seq in 0..4u16 {
        feed(&mut s, t0, "198.51.100.1:6000", &rtp(PT, seq, 0, 4, &[0]));
    }
    assert_eq!(s.latched(), None);
    // ...but once the spray has gone quiet, a source that sends four in
    // sequence first does latch (nothing tells it from a NAT'ed caller)...
    let later = t0 + Duration::from_millis(300);
    for seq in 0..4u16 {
        feed(
            &mut s,
            later,
            "198.51.100.1:6000",
            &rtp(PT, seq, 0, 4, &[0]),
        );
    }
    assert_eq!(s.latched(), Some(addr("198.51.100.1:6000")));
    // ...and the signalled peer takes over within the learning window.
    feed(
        &mut s,
        t0 + Duration::from_secs(1),
        "10.0.0.5:4000",
        &rtp(PT, 500, 0, 99, &[0]),
    );
    assert_eq!(s.latched(), Some(addr("10.0.0.5:4000")));
    let out = feed(
        &mut s,
        t0 + Duration::from_secs(1),
        "198.51.100.1:6000",
        &rtp(PT, 4, 0, 4, &[0]),
    );
    assert_eq!(audio_count(&out), 0);
}

/// Issue 13: a caller behind NAT is learning (its RTP comes from an
/// address not in its SDP); an attacker injects in-sequence packets of its
/// own stream between the caller's. The caller latches, the attacker never.
#[test]
fn an_attacker_cannot_take_over_a_nat_caller_during_learning() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let caller = "203.0.113.9:31000";
    let attacker = "203.0.113.66:31002";
    let mut latched = Vec::new();
    for i in 0..10u16 {
        let now = t0 + Duration::from_millis(20 * u64::from(i));
        for out in [
            feed(&mut s, now, caller, &rtp(PT, 100 + i, 0, 0xCA11, &[0; 160])),
            // Two attacker packets per caller packet, in perfect sequence.
            feed(&mut s, now, attacker, &rtp(PT, 2 * i, 0, 0xBAD, &[0; 160])),
            feed(
                &mut s,
                now,
                attacker,
                &rtp(PT, 2 * i + 1, 0, 0xBAD, &[0; 160]),
            ),
        ] {
            latched.extend(out.into_iter().filter_map(|o| match o {
                Output::Latched(a) => Some(a),
                _ => None,
            }));
        }
    }
    assert_eq!(latched, vec![addr(caller)]);
    assert_eq!(s.send_addr(), addr(caller));
    assert_eq!(s.remote_ssrc(), Some(Ssrc(0xCA11)));
    assert_eq!(
        s.counters.foreign,
        20 + 3,
        "all attacker packets + the caller's first three"
    );
}

#[test]
fn a_stream_that_moves_address_while_learning_keeps_its_count() {
    let t0 = Instant::now();
    let mut s = session(t0);
    feed(&mut s, t0, "203.0.113.9:31000", &rtp(PT, 10, 0, 7, &[0]));
    feed(&mut s, t0, "203.0.113.9:31000", &rtp(PT, 11, 0, 7, &[0]));
    // NAT rebinding: same SSRC, sequence continues (one packet lost).
    feed(&mut s, t0, "203.0.113.9:31050", &rtp(PT, 13, 0, 7, &[0]));
    assert_eq!(s.latched(), None);
    feed(&mut s, t0, "203.0.113.9:31050", &rtp(PT, 14, 0, 7, &[0]));
    assert_eq!(s.latched(), Some(addr("203.0.113.9:31050")));
    // A jump far ahead from yet another address is not the same stream.
    let mut s = session(t0);
    feed(&mut s, t0, "203.0.113.9:31000", &rtp(PT, 10, 0, 7, &[0]));
    feed(
        &mut s,
        t0,
        "203.0.113.9:31050",
        &rtp(PT, 10 + 200, 0, 7, &[0]),
    );
    assert_eq!(s.counters.foreign, 2);
}

/// Issue 13 point 2: a session whose dialog is not confirmed sends
/// nothing, RTP or RTCP, until the ACK (or the peer's own RTP).
#[test]
fn nothing_is_sent_before_the_dialog_is_confirmed() {
    let t0 = Instant::now();
    let cfg = Config::new(addr("10.0.0.5:4000"), PayloadType(PT), ClockRate(8000));
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut s = Session::new(cfg.clone(), &mut StdRng::seed_from_u64(7), t0, wall);
    let mut sent = 0;
    for i in 0..500u32 {
        let now = t0 + Duration::from_millis(20 * u64::from(i));
        s.send_audio(now, &[0xFF; 160], 160, i == 0);
        s.handle_input(now, Input::Timeout);
        sent += std::iter::from_fn(|| s.poll_output())
            .filter(|o| matches!(o, Output::Transmit { .. }))
            .count();
    }
    assert_eq!(sent, 0, "10 s without an ACK: no packet out");
    assert!(s.counters.withheld >= 500);
    s.confirm();
    s.send_audio(t0 + Duration::from_secs(10), &[0xFF; 160], 160, true);
    assert!(matches!(s.poll_output(), Some(Output::Transmit { .. })));
    // The peer's own RTP is a confirmation too (symmetric RTP).
    let mut s = Session::new(cfg, &mut StdRng::seed_from_u64(7), t0, wall);
    feed(&mut s, t0, "10.0.0.5:4000", &rtp(PT, 1, 0, 9, &[0]));
    assert!(s.is_confirmed());
    s.send_audio(t0, &[0xFF; 160], 160, true);
    assert!(matches!(s.poll_output(), Some(Output::Transmit { .. })));
}

/// The packet that ended calls through the `rtp` crate (issue 13): a valid
/// extension block whose RFC 8285 two-byte element claims 255 bytes in a
/// 4-byte block (`rtp` 0.17.2's `Header::unmarshal` panics on it; checked
/// when this test was written). From our peer it is just audio.
#[test]
fn an_extension_element_past_its_block_is_just_audio() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let crafted = |seq: u8, profile: [u8; 2], element: [u8; 4]| {
        let mut b = vec![0x90, PT, 0, seq, 0, 0, 1, 64, 0, 0, 0, 99];
        b.extend_from_slice(&profile);
        b.extend_from_slice(&[0, 1]);
        b.extend_from_slice(&element);
        b.extend_from_slice(&[0xFF; 160]);
        b
    };
    let two_byte = crafted(1, [0x10, 0x00], [0x01, 0xFF, 0x00, 0x00]);
    let one_byte = crafted(2, [0xBE, 0xDE], [0x1F, 0x00, 0x00, 0x00]);
    assert_eq!(
        audio_count(&feed(&mut s, t0, "10.0.0.5:4000", &two_byte)),
        1
    );
    assert_eq!(
        audio_count(&feed(&mut s, t0, "10.0.0.5:4000", &one_byte)),
        1
    );
    // From a stranger: dropped as foreign before it is parsed.
    feed(&mut s, t0, "198.51.100.1:9", &two_byte);
    assert_eq!((s.counters.foreign, s.counters.malformed), (1, 0));
}

fn rr(ssrc: u32) -> Vec<u8> {
    let mut v = vec![0x80, 201, 0, 1];
    v.extend_from_slice(&ssrc.to_be_bytes());
    v
}

#[test]
fn rtcp_is_accepted_only_from_the_latched_peer_with_its_ssrc() {
    let t0 = Instant::now();
    let mut s = session(t0);
    // Before latching: nobody's reports count.
    feed(&mut s, t0, "10.0.0.5:4001", &rr(99));
    assert_eq!((s.counters.rtcp_received, s.counters.foreign), (0, 1));
    feed(&mut s, t0, "10.0.0.5:4000", &rtp(PT, 1, 0, 99, &[0]));
    feed(&mut s, t0, "10.0.0.5:4001", &rr(99));
    assert_eq!(s.counters.rtcp_received, 1);
    // Another SSRC from the right address, the right SSRC from elsewhere,
    // a broken compound: all refused.
    feed(&mut s, t0, "10.0.0.5:4001", &rr(98));
    feed(&mut s, t0, "198.51.100.1:4001", &rr(99));
    let mut bad = rr(99);
    bad[3] = 7;
    feed(&mut s, t0, "10.0.0.5:4001", &bad);
    assert_eq!(s.counters.rtcp_received, 1);
    assert_eq!((s.counters.foreign, s.counters.malformed), (3, 1));
}

#[test]
fn after_the_learning_window_only_the_sdp_address_is_accepted() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let late = t0 + Duration::from_secs(6);
    for seq in 0..10u16 {
        feed(&mut s, late, "203.0.113.9:31000", &rtp(PT, seq, 0, 5, &[0]));
    }
    assert_eq!(s.latched(), None);
    assert_eq!(s.counters.foreign, 10);
}

#[test]
fn malformed_packets_are_dropped_and_counted() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let good = rtp(PT, 1, 0, 9, &[0; 20]);
    let mut bad_version = good.clone();
    bad_version[0] = 0x40;
    let mut csrc_overflow = good.clone();
    csrc_overflow[0] = 0x8F; // 15 CSRCs claimed, 20 bytes of payload
    let mut bad_padding = good.clone();
    bad_padding[0] |= 0x20;
    if let Some(last) = bad_padding.last_mut() {
        *last = 200;
    }
    let mut bad_ext = good.clone();
    bad_ext[0] |= 0x10;
    bad_ext[14] = 0xFF; // extension length far beyond the packet
    bad_ext[15] = 0xFF;
    for bytes in [
        &good[..5],
        &bad_version[..],
        &csrc_overflow[..],
        &bad_padding[..],
        &bad_ext[..],
        &[][..],
    ] {
        let out = feed(&mut s, t0, "10.0.0.5:4000", bytes);
        assert!(out.is_empty(), "{out:?}");
    }
    assert_eq!(s.counters.malformed, 6);
    feed(&mut s, t0, "10.0.0.5:4000", &rtp(77, 1, 0, 9, &[0]));
    assert_eq!(s.counters.unknown_payload_type, 1);
    assert_eq!(s.latched(), None, "nothing invalid latches");
}

#[test]
fn telephone_events_become_digits() {
    let t0 = Instant::now();
    let mut s = session(t0);
    let mut digits = Vec::new();
    for (i, (end, dur)) in [
        (false, 160u16),
        (false, 320),
        (true, 480),
        (true, 480),
        (true, 480),
    ]
    .iter()
    .enumerate()
    {
        let payload = rfc4733::Payload {
            event: 9,
            end: *end,
            volume: 10,
            duration: *dur,
        }
        .to_bytes();
        let out = feed(
            &mut s,
            t0 + Duration::from_millis(20 * i as u64),
            "10.0.0.5:4000",
            &rtp(TE, i as u16, 8000, 99, &payload),
        );
        digits.extend(out.into_iter().filter_map(|o| match o {
            Output::Digit(d) => Some(d.key),
            _ => None,
        }));
    }
    assert_eq!(digits, ['9']);
}

#[test]
fn sending_a_digit_uses_telephone_event() {
    let t0 = Instant::now();
    let mut s = session(t0);
    assert!(s.send_digit(t0, '5', Duration::from_millis(100)));
    let mut sent = Vec::new();
    let mut now = t0;
    for _ in 0..10 {
        s.handle_input(now, Input::Timeout);
        while let Some(o) = s.poll_output() {
            if let Output::Transmit {
                bytes, rtcp: false, ..
            } = o
            {
                let p = parse_rtp(&bytes).expect("parses");
                sent.push((p.header, p.payload.to_vec()));
            }
        }
        now += Duration::from_millis(20);
    }
    assert!(sent.iter().all(|(h, _)| h.payload_type == TE));
    assert_eq!(sent.iter().filter(|(_, p)| p[1] & 0x80 != 0).count(), 3);
    assert!(sent[0].0.marker);
    let ts = sent[0].0.timestamp;
    assert!(
        sent.iter().all(|(h, _)| h.timestamp == ts),
        "one event, one timestamp"
    );
}

#[test]
fn no_rtp_for_the_timeout_raises_it_once_unless_on_hold() {
    let t0 = Instant::now();
    let mut s = session(t0);
    feed(&mut s, t0, "10.0.0.5:4000", &rtp(PT, 1, 0, 9, &[0]));
    let mut timeouts = 0;
    let mut now = t0;
    while now < t0 + Duration::from_secs(40) {
        now = s.poll_timeout().expect("always a deadline").max(now);
        s.handle_input(now, Input::Timeout);
        timeouts += std::iter::from_fn(|| s.poll_output())
            .filter(|o| *o == Output::MediaTimeout)
            .count();
        now += Duration::from_millis(1);
    }
    assert_eq!(timeouts, 1);
    let mut s = session(t0);
    s.set_receiving(t0, false);
    s.handle_input(t0 + Duration::from_secs(60), Input::Timeout);
    assert!(!std::iter::from_fn(|| s.poll_output()).any(|o| o == Output::MediaTimeout));
}

#[test]
fn rtcp_reports_carry_loss_and_jitter_and_go_to_the_rtcp_port() {
    let t0 = Instant::now();
    let mut s = session(t0);
    for seq in (0..50u16).filter(|q| q % 10 != 3) {
        feed(
            &mut s,
            t0 + Duration::from_millis(u64::from(seq) * 20),
            "10.0.0.5:4000",
            &rtp(PT, seq, u32::from(seq) * 160, 99, &[0; 160]),
        );
    }
    s.send_audio(t0, &[0; 160], 160, false);
    let _ = std::iter::from_fn(|| s.poll_output()).count();
    let due = s.poll_timeout().expect("deadline");
    s.handle_input(due.max(t0 + Duration::from_secs(8)), Input::Timeout);
    let report = std::iter::from_fn(|| s.poll_output()).find_map(|o| match o {
        Output::Transmit {
            to,
            bytes,
            rtcp: true,
        } => Some((to, bytes)),
        _ => None,
    });
    let (to, bytes) = report.expect("an RTCP report");
    assert_eq!(to, addr("10.0.0.5:4001"));
    let mut buf = &bytes[..];
    let packets = rtcp::packet::unmarshal(&mut buf).expect("valid compound RTCP");
    let sr = packets[0]
        .as_any()
        .downcast_ref::<rtcp::sender_report::SenderReport>()
        .expect("SR first: we sent RTP");
    assert_eq!(sr.packet_count, 1);
    assert_eq!(sr.reports[0].ssrc, 99);
    assert_eq!(sr.reports[0].total_lost, 5);
    assert_eq!(sr.reports[0].last_sequence_number, 49);
    assert!(
        packets[1]
            .as_any()
            .downcast_ref::<rtcp::source_description::SourceDescription>()
            .is_some()
    );
}

#[test]
fn arbitrary_datagrams_never_panic() {
    use proptest::prelude::*;
    let t0 = Instant::now();
    proptest!(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() }, |(bytes in proptest::collection::vec(any::<u8>(), 0..200), from_sdp in any::<bool>())| {
        let mut s = session(t0);
        let from = if from_sdp { "10.0.0.5:4000" } else { "198.51.100.1:9" };
        feed(&mut s, t0, from, &bytes);
        let mut rtcpish = bytes.clone();
        if rtcpish.len() > 1 { rtcpish[0] = 0x80; rtcpish[1] = 200; }
        feed(&mut s, t0, from, &rtcpish);
    });
}
