//! `dhwani`: see `dhwani --help`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    dhwani::cli::run(dhwani::cli::Cli::parse())
}
