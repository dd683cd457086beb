//! Memory of a compiled 1,000-step flow and of one interpreter, measured
//! with a counting allocator. Prints its figures; no timing.
//!
//! `cargo bench -p ivr-dsl --bench flow_memory`

use std::alloc::System;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ivr_dsl::interp::{Input, Interpreter};
use ivr_dsl::load_str;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[allow(dead_code)] // shared with the timing bench
mod common;
use common::{NoFiles, big_flow, ctx, load};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
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
