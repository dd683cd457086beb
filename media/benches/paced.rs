//! How many calls one core paces: N call media cores on one thread, each
//! receiving a G.711 packet of speech and sending a prompt packet every
//! 20 ms with in-band DTMF detection on, woken by real timers. Prints the share of frames sent
//! more than 2 ms after their deadline. No sockets: this measures the
//! engine and its pacing, not the kernel's UDP path.
//!
//! `cargo bench -p media --bench paced` (SECS=10 and N list as arguments:
//! `cargo bench -p media --bench paced -- 1000 2000 3000`)

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use media::call::{CallMedia, Command, Config, Output};
use media::codec::Codec;
use rand::SeedableRng;
use rand::rngs::StdRng;
use webrtc_util::marshal::Marshal;

fn main() {
    let secs: u64 = std::env::var("SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let ns: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let ns = if ns.is_empty() {
        vec![500, 1000, 2000, 3000]
    } else {
        ns
    };
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let prompt: Arc<[i16]> = (0..8000 * 60)
        .map(|i| ((f64::from(i) * 0.05).sin() * 8000.0) as i16)
        .collect();
    // What callers send: real speech (the welcome prompt), as μ-law frames.
    let welcome =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/prompts/welcome.wav");
    let speech = media::prompt::load(&welcome, 8000).expect("examples/prompts/welcome.wav");
    let speech_frames: Vec<Vec<u8>> = speech
        .chunks_exact(160)
        .map(|c| {
            let mut p = Vec::new();
            Codec::Pcmu.encode(c, &mut p);
            p
        })
        .collect();
    for n in ns {
        let start = Instant::now();
        let mut calls: Vec<(CallMedia, u16)> = (0..n)
            .map(|i| {
                let cfg = Config {
                    rtp: media::rtp::Config::new(
                        peer,
                        media::rtp::PayloadType(0),
                        media::rtp::ClockRate(8000),
                    )
                    .already_confirmed(),
                    codec: Codec::Pcmu,
                    inband_dtmf: true,
                    tap: false,
                };
                // Spread the calls' frame phases over the 20 ms.
                let t = start + Duration::from_micros((i as u64 * 20_000 / n as u64) % 20_000);
                let mut m = CallMedia::new(
                    cfg,
                    &mut StdRng::seed_from_u64(i as u64),
                    t,
                    SystemTime::UNIX_EPOCH,
                );
                m.handle_command(
                    t,
                    Command::Play {
                        prompts: vec![Arc::clone(&prompt)],
                        barge_in: false,
                    },
                );
                (m, 0u16)
            })
            .collect();
        let mut heap: BinaryHeap<Reverse<(Instant, usize)>> = calls
            .iter()
            .enumerate()
            .map(|(i, (m, _))| Reverse((m.poll_timeout(), i)))
            .collect();
        let end = start + Duration::from_secs(secs);
        let (mut frames, mut late) = (0u64, 0u64);
        let mut busy = Duration::ZERO;
        // Like the server's timer wheel: sleep to the earliest deadline,
        // then serve every call due within the next millisecond (sending
        // up to 1 ms early rather than sleeping a thousand times a slot).
        let batch = Duration::from_millis(1);
        while let Some(Reverse((first, _))) = heap.peek().copied() {
            if first >= end {
                break;
            }
            let now = Instant::now();
            if first > now {
                std::thread::sleep(first - now);
            }
            let woke = Instant::now();
            let work = Instant::now();
            while let Some(Reverse((due, i))) = heap.peek().copied() {
                if due > woke + batch {
                    break;
                }
                heap.pop();
                let at = Instant::now().max(due);
                let lateness = Instant::now().saturating_duration_since(due);
                let (m, seq) = &mut calls[i];
                let pkt = rtp::packet::Packet {
                    header: rtp::header::Header {
                        version: 2,
                        payload_type: 0,
                        sequence_number: *seq,
                        timestamp: u32::from(*seq) * 160,
                        ssrc: 9,
                        ..Default::default()
                    },
                    payload: bytes::Bytes::copy_from_slice(
                        &speech_frames[usize::from(*seq) % speech_frames.len()],
                    ),
                }
                .marshal()
                .expect("marshal");
                *seq = seq.wrapping_add(1);
                m.handle_datagram(at, peer, &pkt);
                m.handle_timeout(at);
                while let Some(o) = m.poll_output() {
                    if matches!(o, Output::Transmit { .. }) {
                        frames += 1;
                        if lateness > Duration::from_millis(2) {
                            late += 1;
                        }
                    }
                }
                heap.push(Reverse((m.poll_timeout(), i)));
            }
            busy += work.elapsed();
        }
        let wall = start.elapsed();
        println!(
            "{n} calls: {frames} frames in {:.1} s, {:.2}% sent >2 ms late, core busy {:.0}%",
            wall.as_secs_f64(),
            100.0 * late as f64 / frames.max(1) as f64,
            100.0 * busy.as_secs_f64() / wall.as_secs_f64()
        );
    }
}
