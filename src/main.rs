//! `dhwani`: see `dhwani --help`.

use clap::Parser;

/// jemalloc, so that memory freed after a load goes back to the system
/// (see `Cargo.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<std::process::ExitCode> {
    // The background thread purges freed pages after the decay time
    // (10 s dirty, then 10 s muzzy), also when no thread allocates.
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("warning: jemalloc's background purging is off: {e}");
    }
    dhwani::cli::run(dhwani::cli::Cli::parse())
}
