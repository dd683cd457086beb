//! The call media core on fake time: pacing, playback, DTMF from all
//! sources, barge-in, tap alignment.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::SeedableRng;
use rand::rngs::StdRng;
use webrtc_util::marshal::Marshal;

use super::*;
use crate::dtmf::rfc4733::Payload;

fn peer() -> SocketAddr {
    "127.0.0.1:40000".parse().expect("addr")
}

fn media(now: Instant, tap: bool) -> CallMedia {
    let mut rtp = rtp::Config::new(
        peer(),
        crate::rtp::PayloadType(0),
        crate::rtp::ClockRate(8000),
    )
    .already_confirmed();
    rtp.telephone_event = Some(crate::rtp::PayloadType(101));
    let cfg = Config {
        rtp,
        codec: Codec::Pcmu,
        inband_dtmf: true,
        tap,
    };
    CallMedia::new(
        cfg,
        &mut StdRng::seed_from_u64(1),
        now,
        SystemTime::UNIX_EPOCH,
    )
}

/// Runs the core from `from` for `frames` frames, returning everything it
/// put out with the time.
fn run(m: &mut CallMedia, from: Instant, frames: u32) -> Vec<(Instant, Output)> {
    let mut out = Vec::new();
    let end = from + FRAME * frames;
    let mut now = from;
    while now < end {
        m.handle_timeout(now);
        while let Some(o) = m.poll_output() {
            out.push((now, o));
        }
        now = m
            .poll_timeout()
            .max(now + Duration::from_micros(1))
            .min(end);
    }
    out
}

fn sent_rtp(out: &[(Instant, Output)]) -> Vec<(Instant, crate::rtp::packet::Packet<'_>)> {
    out.iter()
        .filter_map(|(t, o)| match o {
            Output::Transmit {
                bytes, rtcp: false, ..
            } => crate::rtp::session::parse_rtp(bytes).map(|p| (*t, p)),
            _ => None,
        })
        .collect()
}

fn events(out: &[(Instant, Output)]) -> Vec<Event> {
    out.iter()
        .filter_map(|(_, o)| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn frames_go_out_every_20_ms_without_drift() {
    let t0 = Instant::now();
    let mut m = media(t0, false);
    let out = run(&mut m, t0, 500);
    let rtp: Vec<_> = sent_rtp(&out)
        .into_iter()
        .filter(|(_, p)| p.header.payload_type == 0)
        .collect();
    assert_eq!(rtp.len(), 500);
    for (i, (t, p)) in rtp.iter().enumerate() {
        assert_eq!(
            *t,
            t0 + FRAME * i as u32,
            "frame {i} on its absolute deadline"
        );
        assert_eq!(
            p.header.timestamp.wrapping_sub(rtp[0].1.header.timestamp),
            160 * i as u32
        );
        assert_eq!(
            p.header.sequence_number,
            rtp[0].1.header.sequence_number.wrapping_add(i as u16)
        );
    }
}

#[test]
fn a_late_driver_catches_up_then_skips() {
    let t0 = Instant::now();
    let mut m = media(t0, false);
    m.handle_timeout(t0 + Duration::from_millis(70)); // 4 frames due
    let n = std::iter::from_fn(|| m.poll_output())
        .filter(|o| matches!(o, Output::Transmit { .. }))
        .count();
    assert_eq!(n, 4);
    assert_eq!(m.poll_timeout(), t0 + Duration::from_millis(80));
    m.handle_timeout(t0 + Duration::from_secs(3)); // stalled for 3 s
    let n = std::iter::from_fn(|| m.poll_output())
        .filter(|o| matches!(o, Output::Transmit { .. }))
        .count();
    assert!(n <= 6, "no burst: {n}");
    assert!(m.skipped_frames > 100);
    assert!(m.poll_timeout() > t0 + Duration::from_secs(3));
}

#[test]
fn a_prompt_plays_then_finishes_with_a_marker_on_its_first_packet() {
    let t0 = Instant::now();
    let mut m = media(t0, false);
    let tone: Arc<[i16]> = (0..800)
        .map(|i| ((i as f64 * 0.5).sin() * 10000.0) as i16)
        .collect();
    m.handle_command(
        t0,
        Command::Play {
            prompts: vec![tone],
            barge_in: true,
        },
    );
    let out = run(&mut m, t0, 10);
    let rtp = sent_rtp(&out);
    assert!(rtp[0].1.header.marker);
    assert!(rtp[0].1.payload.iter().any(|b| *b != 0xFF), "not silence");
    assert_eq!(
        events(&out),
        vec![Event::PlaybackFinished { interrupted: false }]
    );
    // 800 samples = 5 frames of prompt, then silence (0xFF in μ-law).
    assert!(rtp[5].1.payload.iter().all(|b| *b == 0xFF));
    assert!(!rtp[5].1.header.marker);
}

fn rtp_in(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    ::rtp::packet::Packet {
        header: ::rtp::header::Header {
            version: 2,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc: 77,
            ..Default::default()
        },
        payload: Bytes::copy_from_slice(payload),
    }
    .marshal()
    .expect("marshal")
    .to_vec()
}

#[test]
fn digits_from_rfc4733_info_and_inband_all_arrive_with_their_source() {
    let t0 = Instant::now();
    let mut m = media(t0, false);
    // RFC 4733 '4'.
    for (i, end) in [false, false, true, true, true].iter().enumerate() {
        let p = Payload {
            event: 4,
            end: *end,
            volume: 10,
            duration: 160 * (i as u16 + 1),
        }
        .to_bytes();
        m.handle_datagram(t0, peer(), &rtp_in(101, i as u16, 1000, &p));
    }
    // SIP INFO '#'.
    m.handle_command(t0, Command::InfoDigit('#'));
    // In-band '7': 100 ms of tone as μ-law packets, then silence.
    let mut pcm = inband::tone('7', 100, 1.0, 7000.0, 7000.0, 0.0);
    pcm.extend(vec![0i16; 1600]);
    for (i, chunk) in pcm.chunks(160).enumerate() {
        let mut payload = Vec::new();
        Codec::Pcmu.encode(chunk, &mut payload);
        let at = t0 + FRAME * i as u32;
        m.handle_datagram(
            at,
            peer(),
            &rtp_in(0, 10 + i as u16, 5000 + 160 * i as u32, &payload),
        );
        m.handle_timeout(at);
    }
    let mut all = Vec::new();
    while let Some(o) = m.poll_output() {
        if let Output::Event(Event::Digit { key, source }) = o {
            all.push((key, source));
        }
    }
    let more = run(&mut m, t0 + FRAME * 20, 20);
    all.extend(events(&more).into_iter().filter_map(|e| match e {
        Event::Digit { key, source } => Some((key, source)),
        _ => None,
    }));
    assert_eq!(
        all,
        vec![
            ('4', Source::Rfc4733),
            ('#', Source::Info),
            ('7', Source::InBand)
        ]
    );
}

/// 100 ms of in-band '7' and 100 ms of silence from `from`, fed frame by
/// frame; the in-band digits the media reported.
fn inband_seven(m: &mut CallMedia, from: Instant, seq: u16) -> Vec<char> {
    let mut pcm = inband::tone('7', 100, 1.0, 7000.0, 7000.0, 0.0);
    pcm.extend(vec![0i16; 800]);
    let mut keys = Vec::new();
    for (i, chunk) in pcm.chunks(160).enumerate() {
        let mut payload = Vec::new();
        Codec::Pcmu.encode(chunk, &mut payload);
        let at = from + FRAME * i as u32;
        let n = seq + i as u16;
        m.handle_datagram(at, peer(), &rtp_in(0, n, 160 * u32::from(n), &payload));
        m.handle_timeout(at);
        while let Some(o) = m.poll_output() {
            if let Output::Event(Event::Digit {
                key,
                source: Source::InBand,
            }) = o
            {
                keys.push(key);
            }
        }
    }
    let more = run(m, from + FRAME * 10, 10);
    keys.extend(events(&more).into_iter().filter_map(|e| match e {
        Event::Digit {
            key,
            source: Source::InBand,
        } => Some(key),
        _ => None,
    }));
    keys
}

#[test]
fn the_inband_detector_rests_while_turned_off_and_listens_again_after() {
    let t0 = Instant::now();
    let mut m = media(t0, false);
    assert_eq!(inband_seven(&mut m, t0, 10), ['7'], "on by default");
    m.handle_command(t0, Command::InbandDtmf(false));
    assert!(
        inband_seven(&mut m, t0 + FRAME * 20, 30).is_empty(),
        "resting"
    );
    m.handle_command(t0, Command::InbandDtmf(true));
    assert_eq!(
        inband_seven(&mut m, t0 + FRAME * 40, 50),
        ['7'],
        "listening again"
    );
}

#[test]
fn an_aligned_leg_sends_its_frames_on_the_given_deadlines() {
    let t0 = Instant::now();
    let mut m = media(t0, false);
    let at = t0 + Duration::from_millis(7);
    m.align_frames(at);
    assert_eq!(m.next_frame(), at);
    let out = run(&mut m, t0, 3);
    let times: Vec<Instant> = sent_rtp(&out).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        times.first(),
        Some(&at),
        "the first frame at the new deadline"
    );
    assert_eq!(
        times.get(1),
        Some(&(at + FRAME)),
        "then every 20 ms from it"
    );
}

#[test]
fn barge_in_stops_the_prompt() {
    let t0 = Instant::now();
    let mut m = media(t0, false);
    m.handle_command(
        t0,
        Command::Play {
            prompts: vec![Arc::from(vec![1000i16; 8000])],
            barge_in: true,
        },
    );
    let _ = run(&mut m, t0, 5);
    m.handle_command(t0 + FRAME * 5, Command::InfoDigit('1'));
    let evs: Vec<_> = std::iter::from_fn(|| m.poll_output())
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(
        evs,
        vec![
            Event::Digit {
                key: '1',
                source: Source::Info
            },
            Event::PlaybackFinished { interrupted: true }
        ]
    );
    assert!(!m.is_playing());
}

#[test]
fn the_tap_is_time_aligned_with_silence_in_the_gaps() {
    let t0 = Instant::now();
    let mut m = media(t0, true);
    m.handle_command(
        t0,
        Command::Play {
            prompts: vec![Arc::from(vec![2000i16; 320])],
            barge_in: false,
        },
    );
    // The caller sends two packets, then nothing.
    for i in 0..2u16 {
        let mut payload = Vec::new();
        Codec::Pcmu.encode(&[3000i16; 160], &mut payload);
        m.handle_datagram(t0, peer(), &rtp_in(0, i, u32::from(i) * 160, &payload));
    }
    let out = run(&mut m, t0, 10);
    let taps: Vec<_> = out
        .iter()
        .filter_map(|(_, o)| match o {
            Output::Tap { caller, far_end } => Some((caller.clone(), far_end.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(taps.len(), 10, "one per frame");
    assert!(taps.iter().all(|(c, f)| c.len() == 160 && f.len() == 160));
    assert!(
        taps[0].1.iter().all(|s| (*s - 2000).abs() < 100) && taps[2].1.iter().all(|s| *s == 0),
        "far end: prompt then silence"
    );
    let loud = |v: &Vec<i16>| v.iter().any(|s| s.abs() > 1000);
    assert!(!loud(&taps[0].0), "buffering: silence");
    assert!(
        taps.iter().any(|(c, _)| loud(c)),
        "the caller's audio shows up"
    );
    assert!(!loud(&taps[9].0), "silence after the caller stopped");
}

#[test]
fn g722_calls_send_16_khz_audio_with_an_8_khz_rtp_clock_and_hear_inband_digits() {
    let t0 = Instant::now();
    let mut rtp = rtp::Config::new(
        peer(),
        crate::rtp::PayloadType(9),
        crate::rtp::ClockRate(8000),
    )
    .already_confirmed();
    rtp.telephone_event = Some(crate::rtp::PayloadType(101));
    let cfg = Config {
        rtp,
        codec: Codec::G722,
        inband_dtmf: true,
        tap: true,
    };
    let mut m = CallMedia::new(
        cfg,
        &mut StdRng::seed_from_u64(9),
        t0,
        SystemTime::UNIX_EPOCH,
    );
    // The caller sends '3' as tones in G.722.
    let mut pcm: Vec<i16> = Vec::new();
    let (fl, fh) = inband::frequencies('3').expect("key");
    pcm.extend((0..1600).map(|i| {
        let t = f64::from(i) / 16000.0;
        ((2.0 * std::f64::consts::PI * f64::from(fl) * t).sin() * 7000.0
            + (2.0 * std::f64::consts::PI * f64::from(fh) * t).sin() * 7000.0) as i16
    }));
    pcm.extend(vec![0i16; 6400]);
    let mut enc = Coder::new(Codec::G722);
    let mut all = Vec::new();
    for (i, chunk) in pcm.chunks(320).enumerate() {
        let mut payload = Vec::new();
        enc.encode(chunk, &mut payload);
        let at = t0 + FRAME * i as u32;
        m.handle_datagram(at, peer(), &rtp_in(9, i as u16, 160 * i as u32, &payload));
        m.handle_timeout(at);
        while let Some(o) = m.poll_output() {
            all.push((at, o));
        }
    }
    let sent = sent_rtp(&all);
    assert!(sent.len() >= 20);
    let odd: Vec<_> = sent
        .iter()
        .filter(|(_, p)| !(p.header.payload_type == 9 && p.payload.len() == 160))
        .map(|(_, p)| (p.header.payload_type, p.payload.len()))
        .collect();
    assert!(odd.is_empty(), "{odd:?}");
    assert_eq!(
        sent[1]
            .1
            .header
            .timestamp
            .wrapping_sub(sent[0].1.header.timestamp),
        160,
        "8 kHz RTP clock"
    );
    let taps = all
        .iter()
        .filter(|(_, o)| matches!(o, Output::Tap { caller, .. } if caller.len() == 320))
        .count();
    assert_eq!(taps, sent.len(), "16 kHz tap frames");
    assert!(
        events(&all).contains(&Event::Digit {
            key: '3',
            source: Source::InBand
        }),
        "{:?}",
        events(&all)
    );
}

#[test]
fn on_hold_nothing_is_sent_and_the_timeout_sleeps() {
    let t0 = Instant::now();
    let mut m = media(t0, false);
    m.handle_command(
        t0,
        Command::Direction {
            send: false,
            receive: false,
        },
    );
    let out = run(&mut m, t0, 2000); // 40 s, past the 30 s media timeout
    assert!(
        sent_rtp(&out).is_empty(),
        "no RTP while held (RTCP goes on)"
    );
    assert!(!events(&out).contains(&Event::MediaTimeout));
    let later = t0 + FRAME * 2000;
    m.handle_command(
        later,
        Command::Direction {
            send: true,
            receive: true,
        },
    );
    let out = run(&mut m, later, 5);
    assert_eq!(
        sent_rtp(&out)
            .iter()
            .filter(|(_, p)| p.header.payload_type == 0)
            .count(),
        5,
        "unheld: audio again"
    );
}

/// Issue 13 point 2: before the ACK the prompt waits and nothing goes out;
/// the confirmation starts it from its first sample.
#[test]
fn an_unconfirmed_call_sends_nothing_and_its_prompt_waits() {
    let t0 = Instant::now();
    let mut rtp = rtp::Config::new(
        peer(),
        crate::rtp::PayloadType(0),
        crate::rtp::ClockRate(8000),
    );
    rtp.telephone_event = Some(crate::rtp::PayloadType(101));
    let cfg = Config {
        rtp,
        codec: Codec::Pcmu,
        inband_dtmf: false,
        tap: false,
    };
    let mut m = CallMedia::new(
        cfg,
        &mut StdRng::seed_from_u64(1),
        t0,
        SystemTime::UNIX_EPOCH,
    );
    let tone: Arc<[i16]> = (0..800)
        .map(|i| ((i as f64 * 0.5).sin() * 10000.0) as i16)
        .collect();
    m.handle_command(
        t0,
        Command::Play {
            prompts: vec![tone],
            barge_in: false,
        },
    );
    let out = run(&mut m, t0, 1500); // 30 s unACKed
    assert!(sent_rtp(&out).is_empty());
    assert!(
        !out.iter()
            .any(|(_, o)| matches!(o, Output::Transmit { .. })),
        "no RTCP either"
    );
    assert!(
        events(&out).is_empty(),
        "the prompt did not play into the void"
    );
    let t1 = t0 + FRAME * 1500;
    m.handle_command(t1, Command::Confirm);
    let out = run(&mut m, t1, 10);
    assert_eq!(events(&out)[0], Event::Confirmed);
    assert!(events(&out).contains(&Event::PlaybackFinished { interrupted: false }));
    let rtp = sent_rtp(&out);
    assert!(rtp[0].1.header.marker && rtp[0].1.payload.iter().any(|b| *b != 0xFF));
}

#[test]
fn frames_sent_late_are_counted_in_buckets_of_2_5_10_and_20_ms() {
    let t0 = Instant::now();
    let mut m = media(t0, false);
    let ms = Duration::from_millis;
    // Frame deadlines are t0, t0+20, ...; the driver wakes this late for
    // each: 0, 1, 3, 7, 12, then 25 ms for the frame at 100 (which also
    // makes the frame at 120 due, 5 ms late).
    for at in [0, 21, 43, 67, 92, 125] {
        m.handle_timeout(t0 + ms(at));
        while m.poll_output().is_some() {}
    }
    assert_eq!(m.frames, 7);
    assert_eq!(
        (m.late_2ms, m.late_5ms, m.late_10ms, m.late_20ms),
        (5, 3, 2, 1),
        "over 2 ms: 3, 7, 12, 25, 5; over 5: 7, 12, 25; over 10: 12, 25; over 20: 25"
    );
    assert_eq!(m.late_frames, 1, "a whole frame late: the one at 100");
    assert_eq!(m.skipped_frames, 0);
}
