//! Encryption throughput of the recording writer, and its cost per call
//! second (`cargo bench -p recordings --bench crypto`).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use recordings::header::{Header, KeyMode};
use recordings::keys::{Key, wrap_kek};
use recordings::stream::Writer;

fn header(rng: &mut StdRng, data_key: &Key) -> Header {
    Header {
        key_mode: KeyMode::Kek,
        tenant: "acme".into(),
        key_id: "k1".into(),
        wrapped_key: wrap_kek(&Key([1; 32]), data_key, "acme", "k1", "c", rng).expect("wrap"),
        sample_rate: 8000,
        channels: 2,
        chunk_frames: 800,
        call_id: "c".into(),
        nonce_prefix: [0; 7],
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let data_key = Key::random(&mut rng);
    let h = header(&mut rng, &data_key);
    // One second of a stereo 8 kHz call, written 20 ms at a time.
    let frame: Vec<i16> = (0..320).map(|i| i as i16).collect();
    let mut g = c.benchmark_group("recording");
    g.throughput(Throughput::Bytes(8000 * 2 * 2));
    g.bench_function("encrypt_one_call_second_stereo_8k", |b| {
        b.iter(|| {
            let mut w = Writer::new(Vec::with_capacity(40_000), &h, &data_key).expect("writer");
            for _ in 0..50 {
                w.write_samples(black_box(&frame)).expect("write");
            }
            w.finish().expect("finish")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
