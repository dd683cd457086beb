//! Memory of one call's media core, idle and playing (the prompt's PCM is
//! shared through the cache and not counted), with a counting allocator.
//!
//! `cargo bench -p media --bench call_memory`

use std::alloc::System;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use media::call::{CallMedia, Command, Config, FRAME};
use media::codec::Codec;
use rand::SeedableRng;
use rand::rngs::StdRng;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let prompt: Arc<[i16]> = vec![1000i16; 8000 * 10].into();
    // The G.711 tables are built once per process, not per call.
    let mut warm = Vec::new();
    Codec::Pcmu.encode(&[0; 160], &mut warm);
    Codec::Pcmu.decode(&warm.clone(), &mut Vec::new());
    for (codec, pt) in [(Codec::Pcmu, 0u8), (Codec::G722, 9)] {
        let t0 = Instant::now();
        let region = Region::new(GLOBAL);
        let cfg = Config {
            rtp: media::rtp::Config::new(
                peer,
                media::rtp::PayloadType(pt),
                media::rtp::ClockRate(8000),
            )
            .already_confirmed(),
            codec,
            inband_dtmf: true,
            tap: false,
        };
        let mut m = CallMedia::new(
            cfg,
            &mut StdRng::seed_from_u64(1),
            t0,
            SystemTime::UNIX_EPOCH,
        );
        for i in 0..50 {
            m.handle_timeout(t0 + FRAME * i);
            while m.poll_output().is_some() {}
        }
        let idle = region.change();
        m.handle_command(
            t0,
            Command::Play {
                prompts: vec![Arc::clone(&prompt)],
                barge_in: true,
            },
        );
        for i in 50..100 {
            m.handle_timeout(t0 + FRAME * i);
            while m.poll_output().is_some() {}
        }
        let playing = region.change();
        let live = |c: stats_alloc::Stats| c.bytes_allocated as i64 - c.bytes_deallocated as i64;
        println!(
            "{codec:?}: {} bytes inline; heap {} bytes idle, {} bytes playing",
            std::mem::size_of::<CallMedia>(),
            live(idle),
            live(playing)
        );
        std::hint::black_box(&m);
    }
}
