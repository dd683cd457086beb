//! IVR language benchmarks: parse + check of a 1,000-step flow and
//! interpreter events per second. Memory is measured by `flow_memory`
//! (a counting allocator would slow these timings down).
//!
//! `cargo bench -p ivr-dsl --bench flow`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group};
use ivr_dsl::interp::Interpreter;

mod common;
use common::{big_flow, ctx, load, walk};

fn bench(c: &mut Criterion) {
    let src = big_flow(1000);
    let mut g = c.benchmark_group("flow");
    g.throughput(Throughput::Bytes(src.len() as u64));
    g.bench_function("parse_check_1000_steps", |b| {
        b.iter(|| load(black_box(&src)))
    });
    g.finish();
    let flow = load(&big_flow(200));
    let mut g = c.benchmark_group("interpreter");
    g.throughput(Throughput::Elements(walk(&flow, 100) as u64));
    g.bench_function("events_100_menus", |b| b.iter(|| walk(&flow, 100)));
    g.bench_function("start_call", |b| {
        b.iter(|| Interpreter::start(Arc::clone(&flow), ctx(), Instant::now()))
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
