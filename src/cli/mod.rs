//! The `dhwani` command line.

pub mod agents;
pub mod apikeys;
pub mod calls;
pub mod flow;
pub mod privacy;
pub mod queues;
pub mod recordings;
pub mod rights;
pub mod stats;
pub mod users;
pub mod webhooks;

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
        /// The admin API's `ADDR:PORT` (overrides http.listen; empty: no
        /// HTTP server).
        #[arg(long, value_name = "ADDR:PORT")]
        http_listen: Option<String>,
    },
    /// Verify and decrypt encrypted call recordings (format in
    /// recordings/FORMAT.md).
    Recordings {
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::recordings::RecordingsCommand,
        /// TOML config file (as for `serve`).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Data directory (as for `serve`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
        /// Why the data is read (kept in the audit log with the entry).
        #[arg(long, value_name = "TEXT", global = true)]
        reason: Option<String>,
    },
    /// Data principal rights (DPDP Act 2023): export, erase, withdraw
    /// recording consent, per tenant and caller number.
    Privacy {
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::privacy::PrivacyCommand,
        /// TOML config file (as for `serve`).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Data directory (as for `serve`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
        /// Why the data is read (kept in the audit log with the entry).
        #[arg(long, value_name = "TEXT", global = true)]
        reason: Option<String>,
    },
    /// Legal holds: held data is never swept or erased.
    Holds {
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::privacy::HoldsCommand,
        /// TOML config file (as for `serve`).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Data directory (as for `serve`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Retention: apply each tenant's periods.
    Retention {
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::privacy::RetentionCommand,
        /// TOML config file (as for `serve`).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Data directory (as for `serve`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Tenant recording keys: rotate, re-wrap stored recordings.
    Keys {
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::privacy::KeysCommand,
        /// TOML config file (as for `serve`).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Data directory (as for `serve`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
    },
    /// The audit log of data access.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::privacy::AuditCommand,
        /// TOML config file (as for `serve`).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Data directory (as for `serve`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Calls and their timelines from the store.
    Calls {
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::calls::CallsCommand,
        /// TOML config file (as for `serve`).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Data directory (as for `serve`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
        /// Why the data is read (kept in the audit log with the entry).
        #[arg(long, value_name = "TEXT", global = true)]
        reason: Option<String>,
    },
    /// Grievances (DPDP Act §13): open, acknowledge (24 h), resolve
    /// (30 days), list with what is overdue.
    Grievance {
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::rights::GrievanceCommand,
        /// TOML config file (as for `serve`).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Data directory (as for `serve`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Webhook deliveries (the outbox): list, show, retry; the signing
    /// secret.
    Webhooks {
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::webhooks::WebhooksCommand,
        /// TOML config file (as for `serve`).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Data directory (as for `serve`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
        /// Why the data is read (kept in the audit log with the entry).
        #[arg(long, value_name = "TEXT", global = true)]
        reason: Option<String>,
    },
    /// Call-centre agents: who may register a softphone, their phones and
    /// states.
    Agents {
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::agents::AgentsCommand,
        /// TOML config file (as for `serve`).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Data directory (as for `serve`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Keys of the admin HTTP API: make (shown once), list, revoke.
    Apikeys {
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::apikeys::ApiKeysCommand,
        /// TOML config file (as for `serve`).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Data directory (as for `serve`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Console users of the admin API: passwords (Argon2id) and TOTP.
    Users {
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::users::UsersCommand,
        /// TOML config file (as for `serve`).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Data directory (as for `serve`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Check a config file without starting the server: every key, the
    /// tenants' flows, the TLS files.
    Config {
        /// What to do.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Queues: callers waiting, answered, abandoned, the service level.
    Queues {
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::queues::QueuesCommand,
        /// TOML config file (as for `serve`).
        #[arg(long, value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Data directory (as for `serve`).
        #[arg(long, value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Anonymised usage per tenant, day, flow and kind of outcome (no
    /// caller data; kept after erasure and retention; small rows withheld).
    Stats {
        /// Which rows, and how.
        #[command(flatten)]
        args: crate::cli::stats::StatsArgs,
        /// TOML config file (as for `serve`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Data directory (as for `serve`).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Check, test and try IVR flows (`.ivr` files; see docs/ivr-dsl.md).
    Flow {
        /// What to do with the flows.
        #[command(subcommand)]
        command: crate::cli::flow::FlowCommand,
    },
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Flow { command } => crate::cli::flow::run(command),
        Command::Privacy {
            command,
            config,
            data_dir,
            reason,
        } => crate::cli::privacy::privacy(
            command,
            &load_config(config.as_deref(), data_dir)?,
            reason.as_deref(),
        ),
        Command::Holds {
            command,
            config,
            data_dir,
        } => crate::cli::privacy::holds(command, &load_config(config.as_deref(), data_dir)?),
        Command::Retention {
            command,
            config,
            data_dir,
        } => crate::cli::privacy::retention(command, &load_config(config.as_deref(), data_dir)?),
        Command::Keys {
            command,
            config,
            data_dir,
        } => crate::cli::privacy::keys(command, &load_config(config.as_deref(), data_dir)?),
        Command::Audit {
            command,
            config,
            data_dir,
        } => crate::cli::privacy::audit(command, &load_config(config.as_deref(), data_dir)?),
        Command::Grievance {
            command,
            config,
            data_dir,
        } => crate::cli::rights::grievance(command, &load_config(config.as_deref(), data_dir)?),
        Command::Webhooks {
            command,
            config,
            data_dir,
            reason,
        } => {
            let cfg = load_config(config.as_deref(), data_dir)?;
            crate::cli::webhooks::run(
                command,
                &cfg,
                &config_dir(config.as_deref()),
                reason.as_deref(),
            )
        }
        Command::Calls {
            command,
            config,
            data_dir,
            reason,
        } => {
            let cfg = load_config(config.as_deref(), data_dir)?;
            crate::cli::calls::run(command, &cfg, reason.as_deref())
        }
        Command::Stats {
            args,
            config,
            data_dir,
        } => crate::cli::stats::run(args, &load_config(config.as_deref(), data_dir)?),
        Command::Queues {
            command,
            config,
            data_dir,
        } => {
            let cfg = load_config(config.as_deref(), data_dir)?;
            crate::cli::queues::run(command, &cfg)
        }
        Command::Apikeys {
            command,
            config,
            data_dir,
        } => {
            let cfg = load_config(config.as_deref(), data_dir)?;
            crate::cli::apikeys::run(command, &cfg)
        }
        Command::Users {
            command,
            config,
            data_dir,
        } => {
            let cfg = load_config(config.as_deref(), data_dir)?;
            crate::cli::users::run(command, &cfg)
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => config_check(&file),
        Command::Agents {
            command,
            config,
            data_dir,
        } => {
            let cfg = load_config(config.as_deref(), data_dir)?;
            crate::cli::agents::run(command, &cfg)
        }
        Command::Recordings {
            command,
            config,
            data_dir,
            reason,
        } => {
            let cfg = load_config(config.as_deref(), data_dir)?;
            crate::cli::recordings::run(command, &cfg, reason.as_deref())
        }
        Command::Serve {
            config,
            listen,
            data_dir,
            http_listen,
        } => {
            // The server adds the API-made tenants itself, once its store
            // is open.
            let mut cfg = load_file(config.as_deref(), data_dir)?;
            if let Some(h) = http_listen {
                cfg.http.listen = h;
                cfg.http
                    .addr()
                    .map_err(|m| anyhow::anyhow!("--http-listen: {m}"))?;
            }
            if !listen.is_empty() {
                for l in &listen {
                    parse_listen(l).map_err(|m| anyhow::anyhow!("--listen: {m}"))?;
                }
                cfg.sip.listen = listen;
            }
            init_logging(&cfg.log);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the tokio runtime")?;
            let config_dir = config_dir(config.as_deref());
            rt.block_on(serve(cfg, &config_dir))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The config (`--config` or the embedded default) with `--data-dir`
/// applied: every subcommand that reads stored data calls this.
///
/// The tenants and numbers made through the admin API are added from the
/// store (`store::provisioning`) when the store exists; when it cannot be
/// opened the command goes on with the file's tenants and says so.
pub fn load_config(
    config: Option<&std::path::Path>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<Config> {
    let mut cfg = load_file(config, data_dir)?;
    if store_exists(&cfg) {
        let merged = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the tokio runtime")?
            .block_on(async {
                let store = crate::privacy::open_store(&cfg.store.url, &cfg.data_dir).await?;
                let mut with = cfg.clone();
                store.merge_provisioned(&mut with).await?;
                store.close().await;
                Ok::<_, crate::store::StoreError>(with)
            });
        match merged {
            Ok(with) => cfg = with,
            Err(e) => eprintln!(
                "warning: tenants made through the admin API are not known to this command: {e}"
            ),
        }
    }
    Ok(cfg)
}

/// The config file (or the embedded default) with `--data-dir` applied,
/// without the API-made tenants.
fn load_file(
    config: Option<&std::path::Path>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<Config> {
    let mut cfg = Config::load(config)?;
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    crate::privacy::keys::configure(&cfg, &config_dir(config));
    Ok(cfg)
}

/// Whether the config's store is there to read (a SQLite file that
/// exists, or a PostgreSQL URL): a command never makes an empty one.
fn store_exists(cfg: &Config) -> bool {
    let url = &cfg.store.url;
    if url.is_empty() {
        return cfg.data_dir.join("dhwani.db").exists();
    }
    match url.strip_prefix("sqlite:") {
        Some(rest) => {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or(path);
            std::path::Path::new(path).exists()
        }
        None => true,
    }
}

/// Where relative paths in the config are from: the config file's
/// directory, or the current directory for the embedded default.
pub fn config_dir(config: Option<&std::path::Path>) -> PathBuf {
    config
        .and_then(|p| p.parent())
        .filter(|p| !p.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Asks the server running on `data_dir` (its pid in `dhwani.pid`) to
/// reload flows and keys (SIGHUP); says what happened.
pub fn signal_reload(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let pid_file = data_dir.join("dhwani.pid");
    let Ok(pid) = std::fs::read_to_string(&pid_file) else {
        return Ok(format!(
            "no running server ({} not found): the change applies when it starts",
            pid_file.display()
        ));
    };
    let pid = pid.trim();
    anyhow::ensure!(
        !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()),
        "{}: not a pid",
        pid_file.display()
    );
    let status = std::process::Command::new("kill")
        .args(["-HUP", pid])
        .status()
        .context("cannot run kill")?;
    Ok(if status.success() {
        format!("deployed: server {pid} is reloading its flows and keys")
    } else {
        format!(
            "server {pid} is not running (stale {}): the change applies when it starts",
            pid_file.display()
        )
    })
}

/// `dhwani config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate FILE as `serve --config FILE` would, without binding
    /// anything: keys and values, TLS files, tenants' flows (each refused
    /// flow with its diagnostics). Exit 1 on any error.
    Check {
        /// The TOML config file.
        file: PathBuf,
    },
}

fn config_check(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let cfg = match Config::load(Some(file)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut failed = false;
    for (what, cert, key) in [
        ("sip", &cfg.sip.tls_cert, &cfg.sip.tls_key),
        ("http", &cfg.http.tls_cert, &cfg.http.tls_key),
    ] {
        if let (Some(c), Some(k)) = (cert, key)
            && let Err(e) = crate::server::tls::server_config(c, k)
        {
            eprintln!("error: {what}.tls_cert / {what}.tls_key: {e}");
            failed = true;
        }
    }
    let dir = config_dir(Some(file));
    // Flows are loaded from a scratch data directory (the demo's built-in
    // flows are unpacked there), so checking touches no real data.
    let scratch = tempfile_dir()?;
    let mut probe = cfg.clone();
    probe.data_dir = scratch.clone();
    match crate::tenants::Registry::new(&probe, &dir) {
        Err(e) => {
            eprintln!("error: {e}");
            failed = true;
        }
        Ok(reg) => {
            let report = reg.reload();
            for (tenant, f, why) in &report.refused {
                eprintln!("error: tenant {tenant}: {} refused:\n{why}", f.display());
                failed = true;
            }
            for (tenant, f, w) in &report.warnings {
                eprintln!("warning: tenant {tenant}: {}: {w}", f.display());
            }
            for line in reg.summary(&report) {
                println!("{line}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if failed {
        println!("{}: not valid", file.display());
        Ok(ExitCode::FAILURE)
    } else {
        println!(
            "{}: ok ({} tenant{}, SIP on {}, admin API on {})",
            file.display(),
            cfg.tenants.len(),
            if cfg.tenants.len() == 1 { "" } else { "s" },
            cfg.listens()
                .iter()
                .map(|l| match l {
                    crate::config::Listen::Udp(a) => format!("udp:{a}"),
                    crate::config::Listen::Tcp(a) => format!("tcp:{a}"),
                    crate::config::Listen::Tls(a) => format!("tls:{a}"),
                })
                .collect::<Vec<_>>()
                .join(", "),
            if cfg.http.listen.is_empty() {
                "nothing (off)"
            } else {
                cfg.http.listen.as_str()
            }
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// A fresh private directory under the system's temp dir.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!(
        "dhwani-config-check-{:016x}",
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    Ok(d)
}

fn init_logging(log: &crate::config::LogConfig) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.filter));
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr);
    let fmt = match log.format {
        crate::config::LogFormat::Text => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed(),
        // One object per line; the call's span (its SIP Call-ID and record
        // id) is merged into each line's fields.
        crate::config::LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    };
    // Security events are counted for `/metrics` whatever the log shows.
    let security = crate::metrics::SecurityCounter.with_filter(
        tracing_subscriber::filter::Targets::new().with_target("security", tracing::Level::TRACE),
    );
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(security)
        .try_init();
    crate::redact::set_clear(log.personal_data);
}

async fn serve(cfg: Config, config_dir: &std::path::Path) -> anyhow::Result<()> {
    // Signals are caught from before the sockets are bound, so a SIGTERM
    // that arrives during startup still shuts down cleanly.
    let mut signals = Signals::new();
    // The pid file is written before the server says it listens, so a
    // `dhwani flow deploy` right after finds it (a SIGHUP during startup
    // waits for the loop below).
    let pid_file = cfg.data_dir.join("dhwani.pid");
    let _ = std::fs::create_dir_all(&cfg.data_dir);
    if let Err(e) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
        tracing::warn!(file = %pid_file.display(), error = %e, "cannot write the pid file (`dhwani flow deploy` will not find the server)");
    }
    let server = match crate::server::Server::start(&cfg, config_dir).await {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&pid_file);
            return Err(e.into());
        }
    };
    while let Sig::Reload = signals.wait().await {
        tracing::info!("SIGHUP: reloading flows");
        server.reload();
    }
    tracing::info!("signal received, shutting down");
    server.shutdown().await;
    let _ = std::fs::remove_file(&pid_file);
    tracing::info!("stopped");
    Ok(())
}

enum Sig {
    Stop,
    Reload,
}

/// SIGTERM and SIGINT (stop) and SIGHUP (reload flows), registered when
/// created.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
                hup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn wait(&mut self) -> Sig {
        #[cfg(unix)]
        {
            match (&mut self.term, &mut self.int, &mut self.hup) {
                (Some(t), Some(i), Some(h)) => {
                    tokio::select! {
                        _ = t.recv() => Sig::Stop,
                        _ = i.recv() => Sig::Stop,
                        _ = h.recv() => Sig::Reload,
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                    Sig::Stop
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Sig::Stop
        }
    }
}

/// Writes a JSON report line to stdout.
pub fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    std::io::Write::write_all(&mut out, b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
