//! `dhwani webhooks`: the outbox's deliveries (`store::outbox`): list
//! them, show one with its body, send dead or failed ones again, and show
//! or replace a tenant's signing secret. Showing a body reads callers'
//! data, so `list` and `show` are audited like `calls list|show`.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;
use crate::store::outbox::{OutboxFilter, OutboxRow};

/// `dhwani webhooks ...`
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Deliveries, newest first: event, webhook, state, attempts, the
    /// last status and error.
    List {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only `pending`, `delivered` or `dead`.
        #[arg(long)]
        state: Option<String>,
        /// Only this call's (its record id).
        #[arg(long)]
        call: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// One event: its deliveries to each webhook and the body sent.
    Show {
        /// The event id (`evt_...`).
        event_id: String,
        /// JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sends an event again (dead, or pending: due now, attempts from 0),
    /// or every dead event of a tenant with `--dead --tenant T`.
    Retry {
        /// The event id.
        event_id: Option<String>,
        /// Only to this webhook.
        #[arg(long)]
        hook: Option<String>,
        /// Also if it was delivered.
        #[arg(long)]
        delivered_too: bool,
        /// Every dead event of `--tenant`.
        #[arg(long)]
        dead: bool,
        /// The tenant (with `--dead`).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Shows the tenant's signing secret (made now if it has none), or
    /// replaces it with `--rotate` (restart or SIGHUP is not enough: the
    /// server reads it at start).
    Secret {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Make a new one.
        #[arg(long)]
        rotate: bool,
    },
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn when(ms: Option<i64>) -> String {
    match ms.and_then(|m| jiff::Timestamp::from_millisecond(m).ok()) {
        Some(t) => t.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        None => "-".into(),
    }
}

fn row_json(r: &OutboxRow, body: bool) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if body {
        v["body"] = serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null);
    }
    v
}

/// The audit entry of a read of deliveries (bodies name callers).
fn audit(
    cfg: &Config,
    action: &str,
    rows: &[OutboxRow],
    reason: Option<&str>,
) -> anyhow::Result<()> {
    let mut events: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    events.dedup();
    let mut calls: Vec<&str> = rows
        .iter()
        .filter(|r| !r.call_id.starts_with("caller:"))
        .map(|r| r.call_id.as_str())
        .collect();
    calls.sort_unstable();
    calls.dedup();
    let subject = format!(
        "{} events of {} calls: {}; reason: {}",
        events.len(),
        calls.len(),
        calls.iter().take(20).copied().collect::<Vec<_>>().join(","),
        reason.unwrap_or("none given")
    );
    crate::privacy::Audit::new(&cfg.data_dir).append(
        &crate::privacy::cli_actor(),
        action,
        &subject,
    )?;
    Ok(())
}

/// Runs `dhwani webhooks`.
pub fn run(
    cmd: WebhooksCommand,
    cfg: &Config,
    config_dir: &Path,
    reason: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let rt = crate::cli::privacy::runtime()?;
    match cmd {
        WebhooksCommand::Secret { tenant, rotate } => {
            let Some(t) = cfg.tenants.iter().find(|t| t.id == tenant) else {
                anyhow::bail!("no tenant `{tenant}` in the config");
            };
            let path = crate::tenants::webhooks::secret_path(t, config_dir, &cfg.data_dir);
            if rotate {
                let s = crate::tenants::webhooks::new_secret();
                crate::tenants::webhooks::write_secret(&path, &s)?;
                crate::privacy::Audit::new(&cfg.data_dir).append(
                    &crate::privacy::cli_actor(),
                    "webhooks.secret_rotated",
                    &format!("tenant {tenant}"),
                )?;
                eprintln!(
                    "new secret written to {} (restart the server to sign with it)",
                    path.display()
                );
                println!("{s}");
            } else {
                let s = crate::tenants::webhooks::secret(&path, t.webhook_secret_file.is_none())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                println!("{s}");
            }
            Ok(ExitCode::SUCCESS)
        }
        WebhooksCommand::List {
            tenant,
            state,
            call,
            limit,
            json,
        } => {
            if let Some(s) = &state
                && !["pending", "delivered", "dead"].contains(&s.as_str())
            {
                anyhow::bail!("--state is pending, delivered or dead");
            }
            let rows = rt.block_on(async {
                let store = crate::privacy::open_store(&cfg.store.url, &cfg.data_dir).await?;
                let rows = store
                    .webhook_rows(&OutboxFilter {
                        tenant,
                        state,
                        call_id: call,
                        limit,
                    })
                    .await;
                store.close().await;
                rows
            })?;
            audit(cfg, "webhooks.list", &rows, reason)?;
            if json {
                for r in &rows {
                    println!("{}", row_json(r, false));
                }
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<36} {:<10} {:<10} {:<18} {:<9} {:>3} {:<19} {:>6}  LAST ERROR",
                "EVENT", "TENANT", "WEBHOOK", "TYPE", "STATE", "TRY", "CREATED", "STATUS"
            );
            for r in &rows {
                println!(
                    "{:<36} {:<10} {:<10} {:<18} {:<9} {:>3} {:<19} {:>6}  {}",
                    r.event_id,
                    r.tenant,
                    r.hook,
                    r.kind,
                    r.state,
                    r.attempts,
                    when(Some(r.created_ms)),
                    r.last_status.map(|s| s.to_string()).unwrap_or("-".into()),
                    r.last_error.as_deref().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        WebhooksCommand::Show { event_id, json } => {
            let rows = rt.block_on(async {
                let store = crate::privacy::open_store(&cfg.store.url, &cfg.data_dir).await?;
                let rows = store.webhook_event(&event_id).await;
                store.close().await;
                rows
            })?;
            if rows.is_empty() {
                anyhow::bail!("no webhook event `{event_id}` (delivered ones are kept 7 days)");
            }
            audit(cfg, "webhooks.show", &rows, reason)?;
            if json {
                let v = serde_json::json!({
                    "event_id": event_id,
                    "body": serde_json::from_str::<serde_json::Value>(&rows[0].body).unwrap_or_default(),
                    "deliveries": rows.iter().map(|r| row_json(r, false)).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "event {event_id}: {} of tenant {}",
                rows[0].kind, rows[0].tenant
            );
            for r in &rows {
                println!(
                    "  webhook {}: {} after {} attempts; last {} status {} {}; next {}",
                    r.hook,
                    r.state,
                    r.attempts,
                    when(r.last_ms),
                    r.last_status.map(|s| s.to_string()).unwrap_or("-".into()),
                    r.last_error.as_deref().unwrap_or(""),
                    if r.state == "pending" {
                        when(Some(r.next_ms))
                    } else {
                        "-".into()
                    }
                );
            }
            println!("body:\n{}", rows[0].body);
            Ok(ExitCode::SUCCESS)
        }
        WebhooksCommand::Retry {
            event_id,
            hook,
            delivered_too,
            dead,
            tenant,
        } => {
            let n = rt.block_on(async {
                let store = crate::privacy::open_store(&cfg.store.url, &cfg.data_dir).await?;
                let n = match (&event_id, dead, &tenant) {
                    (Some(id), false, _) => {
                        store
                            .retry_webhook(id, hook.as_deref(), delivered_too, now_ms())
                            .await
                    }
                    (None, true, Some(t)) => store.retry_dead_webhooks(t, now_ms()).await,
                    _ => {
                        store.close().await;
                        return Err(anyhow::anyhow!(
                            "give an event id, or --dead --tenant T for every dead event of a tenant"
                        ));
                    }
                };
                store.close().await;
                Ok::<_, anyhow::Error>(n?)
            })?;
            println!("{n} deliveries due again");
            if n == 0 {
                eprintln!(
                    "nothing to send again (delivered ones need --delivered-too; one being sent now is left alone)"
                );
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
