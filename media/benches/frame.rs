//! Per-frame costs of the media engine (`cargo bench -p media --bench frame`):
//! a whole 20 ms call frame (RTP in, jitter buffer, decode, in-band DTMF,
//! prompt, encode, RTP out), and its parts.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use media::call::{CallMedia, Command, Config, FRAME};
use media::codec::{Codec, Coder};
use media::dtmf::inband::Detector;
use media::mix::FrameResampler;
use rand::SeedableRng;
use rand::rngs::StdRng;
use webrtc_util::marshal::Marshal;

fn speechlike(n: usize, seed: u32) -> Vec<i16> {
    let mut x = seed;
    (0..n)
        .map(|i| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (((i as f64 * 0.07).sin() * 6000.0) as i32 + ((x >> 16) as i32 % 2000) - 1000) as i16
        })
        .collect()
}

fn rtp_packet(seq: u16, payload: &[u8]) -> Vec<u8> {
    rtp::packet::Packet {
        header: rtp::header::Header {
            version: 2,
            payload_type: 0,
            sequence_number: seq,
            timestamp: u32::from(seq) * 160,
            ssrc: 1,
            ..Default::default()
        },
        payload: bytes::Bytes::copy_from_slice(payload),
    }
    .marshal()
    .expect("marshal")
    .to_vec()
}

fn bench(c: &mut Criterion) {
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let pcm = speechlike(160, 1);
    let mut payload = Vec::new();
    Codec::Pcmu.encode(&pcm, &mut payload);

    c.bench_function("call_frame_pcmu_inband_on", |b| {
        let t0 = Instant::now();
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
        let mut m = CallMedia::new(
            cfg,
            &mut StdRng::seed_from_u64(1),
            t0,
            SystemTime::UNIX_EPOCH,
        );
        let prompt: Arc<[i16]> = speechlike(8000 * 600, 2).into();
        m.handle_command(
            t0,
            Command::Play {
                prompts: vec![prompt],
                barge_in: false,
            },
        );
        let mut i: u32 = 0;
        b.iter(|| {
            let now = t0 + FRAME * i;
            m.handle_datagram(now, peer, &rtp_packet(i as u16, &payload));
            m.handle_timeout(now);
            while let Some(o) = m.poll_output() {
                black_box(o);
            }
            i += 1;
        })
    });
    c.bench_function("inband_dtmf_detector_frame", |b| {
        let mut d = Detector::new();
        b.iter(|| d.handle_samples(black_box(&pcm)))
    });
    c.bench_function("inband_dtmf_detector_frame_quiet", |b| {
        // Silence or concealment zeros: no window is loud enough for a tone.
        let quiet = [0i16; 160];
        let mut d = Detector::new();
        b.iter(|| d.handle_samples(black_box(&quiet)))
    });
    c.bench_function("g711_encode_decode_frame", |b| {
        let mut out = Vec::with_capacity(160);
        let mut back = Vec::with_capacity(160);
        b.iter(|| {
            out.clear();
            back.clear();
            Codec::Pcmu.encode(black_box(&pcm), &mut out);
            Codec::Pcmu.decode(&out, &mut back);
        })
    });
    c.bench_function("g722_encode_decode_frame", |b| {
        let wide = speechlike(320, 3);
        let mut coder = Coder::new(Codec::G722);
        let mut out = Vec::with_capacity(160);
        let mut back = Vec::with_capacity(320);
        b.iter(|| {
            out.clear();
            back.clear();
            coder.encode(black_box(&wide), &mut out);
            coder.decode(&out, &mut back);
        })
    });
    c.bench_function("resample_frame_16k_to_8k", |b| {
        let wide = speechlike(320, 4);
        let mut r = FrameResampler::new(16000, 8000).expect("pair");
        let mut out = Vec::with_capacity(160);
        b.iter(|| {
            out.clear();
            r.process(black_box(&wide), &mut out);
        })
    });
    c.bench_function("resample_prompt_1s_44k1_to_8k", |b| {
        let pcm = media::prompt::Pcm {
            rate: 44100,
            samples: speechlike(44100, 5),
        };
        b.iter(|| media::prompt::resample(black_box(&pcm), 8000, std::path::Path::new("bench")))
    });
}

/// Issue 13: what reading a peer's RTP costs per packet, with our reader
/// against the `rtp` crate's (which the session used before), and the
/// whole session input path for one packet from the latched peer.
fn rtp_input(c: &mut Criterion) {
    use webrtc_util::marshal::Unmarshal;
    let packet = rtp_packet(7, &[0x55; 160]);
    c.bench_function("rtp_parse_ours", |b| {
        b.iter(|| media::rtp::packet::parse(black_box(&packet)).map(|p| p.payload.len()))
    });
    c.bench_function("rtp_parse_rtp_crate", |b| {
        b.iter(|| {
            let mut buf = bytes::Bytes::copy_from_slice(black_box(&packet));
            rtp::packet::Packet::unmarshal(&mut buf).map(|p| p.payload.len())
        })
    });
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let t0 = Instant::now();
    let cfg = media::rtp::Config::new(
        peer,
        media::rtp::PayloadType(0),
        media::rtp::ClockRate(8000),
    )
    .already_confirmed();
    let mut s = media::rtp::Session::new(cfg, &mut StdRng::seed_from_u64(3), t0, SystemTime::now());
    // A whole sequence-number cycle, built beforehand.
    let packets: Vec<Vec<u8>> = (0..=u16::MAX)
        .map(|q| rtp_packet(q, &[0x55; 160]))
        .collect();
    let mut i = 0usize;
    c.bench_function("rtp_session_input_packet", |b| {
        b.iter(|| {
            i = (i + 1) % packets.len();
            let p = &packets[i];
            s.handle_input(
                t0,
                media::rtp::Input::Datagram {
                    from: peer,
                    bytes: p,
                },
            );
            while s.poll_output().is_some() {}
        })
    });
}

criterion_group!(benches, bench, rtp_input);
criterion_main!(benches);
