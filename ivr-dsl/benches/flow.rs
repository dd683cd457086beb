//! IVR language benchmarks: parse + check of a 1,000-step flow,
//! interpreter events per second, and the memory of a compiled flow and of
//! one interpreter (measured with a counting allocator, printed first).
//!
//! `cargo bench -p ivr-dsl --bench flow`

use std::alloc::System;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group};
use ivr_dsl::interp::{CallContext, Input, Interpreter};
use ivr_dsl::{Flow, Host, load_str};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

struct NoFiles;

impl Host for NoFiles {
    fn read(&self, path: &Path) -> Result<String, String> {
        Err(format!("{} not in bench", path.display()))
    }
    fn prompt_exists(&self, _: &Path) -> bool {
        true
    }
}

/// A flow of `n` menu steps, each a gather whose choices go on to the next
/// steps, with a condition, a variable and a log line: the shape of a
/// large real IVR.
fn big_flow(n: usize) -> String {
    let mut s = String::from(
        "flow \"Big\"\n  numbers 1000\n  timezone Asia/Kolkata\n  hours office mon-fri 09:00-18:00\n\n",
    );
    for i in 0..n {
        let next = (i + 1) % n;
        let skip = (i + 2) % n;
        s.push_str(&format!(
            "step s{i}\n  set visits = visits + 1\n  if open(office) and visits < 5000\n    say \"Menu {i}, visit {{visits}}.\"\n  log \"menu\" step={i}\n  gather into choice, digits 1, timeout 5s, retries 1\n    play \"prompts/menu{i}.wav\"\n    on 1 -> s{next}\n    on 2 -> s{skip}\n    on 9 -> bye\n    on invalid -> bye\n    on timeout -> bye\n\n"
        ));
    }
    s.push_str("step bye\n  say \"Goodbye.\"\n  hangup\n");
    s
}

fn load(src: &str) -> Arc<Flow> {
    let l = load_str(Path::new("big.ivr"), src, &NoFiles);
    assert!(l.diagnostics.is_empty(), "{}", l.render());
    l.flow.expect("flow")
}

fn ctx() -> CallContext {
    CallContext {
        call_id: "bench".into(),
        caller: "+919800000000".into(),
        called: "1000".into(),
        start_time: "2026-11-30T05:00:00Z".parse().expect("time"),
    }
}

/// Runs one call through `steps` menus: each prompt ends, the caller presses 1.
fn walk(flow: &Arc<Flow>, steps: usize) -> usize {
    let now = Instant::now();
    let mut it = Interpreter::start(Arc::clone(flow), ctx(), now);
    let mut events = 0;
    for _ in 0..steps {
        while it.poll_output().is_some() {}
        it.handle_input(now, Input::PromptFinished);
        while it.poll_output().is_some() {}
        it.handle_input(now, Input::PromptFinished);
        while it.poll_output().is_some() {}
        it.handle_input(now, Input::Digit('1'));
        events += 3;
    }
    black_box(it.step_name());
    events
}

fn memory_report() {
    let src = big_flow(1000);
    let region = Region::new(GLOBAL);
    let flow = load(&src);
    let after_load = region.change();
    drop(flow);
    // Live bytes held by the compiled flow (the loader's temporary parse
    // trees and source text are freed by now; the flow alone stays).
    let flow = {
        let region = Region::new(GLOBAL);
        let l = load_str(Path::new("big.ivr"), &src, &NoFiles);
        let flow = l.flow.clone().expect("flow");
        drop(l);
        let c = region.change();
        let live = c.bytes_allocated as i64 - c.bytes_deallocated as i64;
        eprintln!(
            "memory: compiled 1,000-step flow holds {live} bytes ({} instructions)",
            flow.code.len()
        );
        flow
    };
    let region = Region::new(GLOBAL);
    let now = Instant::now();
    let mut it = Interpreter::start(Arc::clone(&flow), ctx(), now);
    while it.poll_output().is_some() {}
    for _ in 0..20 {
        it.handle_input(now, Input::PromptFinished);
        while it.poll_output().is_some() {}
        it.handle_input(now, Input::PromptFinished);
        while it.poll_output().is_some() {}
        it.handle_input(now, Input::Digit('1'));
        while it.poll_output().is_some() {}
    }
    let c = region.change();
    let heap = c.bytes_allocated as i64 - c.bytes_deallocated as i64;
    eprintln!(
        "memory: one interpreter: {} bytes inline + {heap} bytes heap after 20 menus (parse+check allocated {} bytes in total)",
        std::mem::size_of::<Interpreter>(),
        after_load.bytes_allocated
    );
    black_box(&it);
}

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
    memory_report();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
