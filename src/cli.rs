//! The `dhwani` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, parse_listen};

/// Dhwani: an IVR and voice-call media server.
#[derive(Debug, Parser)]
#[command(name = "dhwani", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (with no flags: the embedded default config, SIP on
    /// 127.0.0.1:5060 over UDP and TCP, data in ./data).
    Serve {
        /// TOML config file (keys documented in docs/config.md).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Listen on `udp:ADDR:PORT`, `tcp:...`, `tls:...`, or a bare
        /// `ADDR:PORT` (UDP and TCP). Repeatable; replaces sip.listen.
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Vec<String>,
        /// Data directory (overrides data_dir).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Verify and decrypt encrypted call recordings (format in
    /// recordings/FORMAT.md).
    Recordings {
        /// What to do.
        #[command(subcommand)]
        command: crate::reccmd::RecordingsCommand,
    },
    /// Check, test and try IVR flows (`.ivr` files; see docs/ivr-dsl.md).
    Flow {
        /// What to do with the flows.
        #[command(subcommand)]
        command: crate::flowcmd::FlowCommand,
    },
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Flow { command } => crate::flowcmd::run(command),
        Command::Recordings { command } => crate::reccmd::run(command),
        Command::Serve {
            config,
            listen,
            data_dir,
        } => {
            let mut cfg = Config::load(config.as_deref())?;
            if !listen.is_empty() {
                for l in &listen {
                    parse_listen(l).map_err(|m| anyhow::anyhow!("--listen: {m}"))?;
                }
                cfg.sip.listen = listen;
            }
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            init_logging(&cfg.log);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the tokio runtime")?;
            rt.block_on(serve(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    // Signals are caught from before the sockets are bound, so a SIGTERM
    // that arrives during startup still shuts down cleanly.
    let signals = Signals::new();
    let server = crate::server::Server::start(&cfg).await?;
    signals.wait().await;
    tracing::info!("signal received, shutting down");
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM and SIGINT, registered when created.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        {
            match (self.term, self.int) {
                (Some(mut t), Some(mut i)) => {
                    tokio::select! {
                        _ = t.recv() => {}
                        _ = i.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
