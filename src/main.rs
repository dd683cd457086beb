//! `dhwani`: see `dhwani --help`.

use clap::Parser;

fn main() -> anyhow::Result<std::process::ExitCode> {
    dhwani::cli::run(dhwani::cli::Cli::parse())
}
