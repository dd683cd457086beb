//! `dhwani apikeys add|list|revoke`: keys of the admin HTTP API. A key is
//! printed once, when made; the store keeps only its secret's SHA-256.
//! Every change is an audit-log entry.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::api::auth::{Role, make_key};
use crate::config::Config;

/// `dhwani apikeys ...`
#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Make a key (printed once).
    Add {
        /// The tenant it belongs to (omit for a platform operator's key).
        #[arg(long)]
        tenant: Option<String>,
        /// platform-operator, tenant-admin, supervisor, agent or auditor.
        #[arg(long)]
        role: String,
        /// It may also read (decrypt) recordings.
        #[arg(long)]
        recordings: bool,
        /// What it is for (shown by `list`).
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Keys (never their secrets).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// JSON lines, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its id (it stops working at once).
    Revoke {
        /// The id (`dhk_<id>_...`, or from `list`).
        key_id: String,
    },
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs an `apikeys` subcommand.
pub fn run(cmd: ApiKeysCommand, cfg: &Config) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(async {
        let store = crate::privacy::open_store(&cfg.store.url, &cfg.data_dir).await?;
        let audit = crate::privacy::Audit::new(&cfg.data_dir);
        let code = match cmd {
            ApiKeysCommand::Add {
                tenant,
                role,
                recordings,
                label,
            } => {
                let Some(role) = Role::parse(&role) else {
                    let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
                    anyhow::bail!(
                        "--role: `{role}` is not a role; use one of {}",
                        names.join(", ")
                    );
                };
                crate::api::auth::key_scope(tenant.as_deref(), role)
                    .map_err(|m| anyhow::anyhow!("--tenant: {m}"))?;
                if let Some(t) = &tenant
                    && !cfg.tenants.iter().any(|c| &c.id == t)
                {
                    anyhow::bail!("--tenant: no tenant `{t}` in the config");
                }
                let (row, key) = make_key(tenant.as_deref(), role, recordings, &label, now_ms());
                store.put_api_key(&row).await?;
                audit.append(
                    &crate::privacy::cli_actor(),
                    "apikeys.add",
                    &crate::api::auth::made_key_subject(&row),
                )?;
                eprintln!(
                    "API key {} ({}, {}): shown once, keep it safe",
                    row.key_id,
                    role.name(),
                    tenant.as_deref().unwrap_or("every tenant")
                );
                println!("{key}");
                ExitCode::SUCCESS
            }
            ApiKeysCommand::List { tenant, json } => {
                for k in store.api_keys(tenant.as_deref()).await? {
                    if json {
                        println!("{}", serde_json::to_string(&k)?);
                    } else {
                        println!(
                            "{}  {:<10} {:<17} {}{}{}",
                            k.key_id,
                            if k.tenant.is_empty() {
                                "(platform)"
                            } else {
                                &k.tenant
                            },
                            k.role,
                            if k.recordings { "recordings " } else { "" },
                            if k.revoked_ms.is_some() {
                                "REVOKED "
                            } else {
                                ""
                            },
                            k.label
                        );
                    }
                }
                ExitCode::SUCCESS
            }
            ApiKeysCommand::Revoke { key_id } => {
                let id = crate::api::auth::split_key(&key_id)
                    .map_or(key_id.as_str(), |(id, _)| id)
                    .to_owned();
                if store.revoke_api_key(&id, now_ms()).await? {
                    audit.append(
                        &crate::privacy::cli_actor(),
                        "apikeys.revoke",
                        &format!("key {id}"),
                    )?;
                    println!("key {id} revoked");
                    ExitCode::SUCCESS
                } else {
                    eprintln!("no key {id} that is not revoked already");
                    ExitCode::FAILURE
                }
            }
        };
        store.close().await;
        Ok(code)
    })
}
