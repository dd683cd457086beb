//! `dhwani agents add|passwd|list|remove|ha1`: the agents who may register
//! softphones, kept in the store as digest HA1s (the password is shown
//! once, when generated, and never stored). A running server picks up
//! changes on reload (these commands send it SIGHUP).

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use sip::auth::Algorithm;

use crate::config::{Config, valid_extension};
use crate::store::Store;
use crate::store::agents::AgentRow;
use crate::tenants::agents::{agent_row, generate_password, ha1};

/// `dhwani agents ...`
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Add an agent (a password is generated and printed once, unless
    /// `--password-stdin`).
    Add {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The extension (2-16 digits): the SIP username of the softphone.
        extension: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// A skill with its level, `NAME:LEVEL` (1-100); repeatable.
        #[arg(long = "skill", value_name = "NAME:LEVEL")]
        skills: Vec<String>,
        /// The supervisor role: may listen to (`*31EXT`), whisper to
        /// (`*32EXT`) and barge into (`*33EXT`) other agents' calls.
        #[arg(long)]
        supervisor: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (generated and printed, unless `--password-stdin`).
    Passwd {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The extension.
        extension: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Agents, their registered phones and their state.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// JSON lines, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove an agent (and its registrations).
    Remove {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The extension.
        extension: String,
    },
    /// Change an agent's state: `login`, `logout`, `pause` (with
    /// `--reason`) or `unpause`. The running server applies it at once
    /// (SIGHUP); a stopped one when it starts. A busy agent's pause
    /// applies once its call and wrap-up are over.
    State {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The extension.
        extension: String,
        /// login, logout, pause or unpause.
        #[arg(value_parser = ["login", "logout", "pause", "unpause"])]
        command: String,
        /// Why (shown with `paused`).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Print the HA1 values for `[[tenants.agents]]` in a config file (the
    /// password is read from standard input).
    Ha1 {
        /// The extension.
        extension: String,
    },
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let p = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(p.len() >= 8, "the password must have at least 8 characters");
    Ok(p)
}

/// Runs an `agents` subcommand.
pub fn run(cmd: AgentsCommand, cfg: &Config) -> anyhow::Result<ExitCode> {
    if let AgentsCommand::Ha1 { extension } = &cmd {
        anyhow::ensure!(
            valid_extension(extension),
            "`{extension}`: an extension is 2-16 digits"
        );
        let p = read_password()?;
        let realm = &cfg.registrar.realm;
        println!(
            "ha1_sha256 = \"{}\"",
            ha1(Algorithm::Sha256, extension, realm, &p)
        );
        println!(
            "ha1_md5 = \"{}\"",
            ha1(Algorithm::Md5, extension, realm, &p)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rt = crate::cli::privacy::runtime()?;
    // Agents may be added before the server first ran.
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create {}", cfg.data_dir.display()))?;
    rt.block_on(async {
        let store = crate::privacy::open_store(&cfg.store.url, &cfg.data_dir).await?;
        let realm = cfg.registrar.realm.clone();
        let code = match cmd {
            AgentsCommand::Add {
                tenant,
                extension,
                name,
                skills,
                supervisor,
                password_stdin,
            } => {
                crate::config::parse_skills(&skills).map_err(|e| anyhow::anyhow!("--skill: {e}"))?;
                crate::cli::privacy::tenant_known(cfg, &tenant)?;
                anyhow::ensure!(valid_extension(&extension), "`{extension}`: an extension is 2-16 digits");
                let existing = store.agents(Some(&tenant)).await?;
                anyhow::ensure!(
                    !existing.iter().any(|a| a.extension == extension),
                    "agent {extension} of `{tenant}` exists: `dhwani agents passwd` changes its password"
                );
                let (password, generated) = if password_stdin {
                    (read_password()?, false)
                } else {
                    (generate_password(), true)
                };
                let mut row = agent_row(&tenant, &extension, &name, &realm, &password);
                row.skills = skills.join(",");
                row.supervisor = supervisor;
                store.put_agent(&row).await?;
                println!("agent {extension} added to `{tenant}`");
                if generated {
                    println!("password: {password}   (shown once; the store keeps only its digest HA1)");
                }
                println!("{}", crate::cli::signal_reload(&cfg.data_dir)?);
                ExitCode::SUCCESS
            }
            AgentsCommand::Passwd { tenant, extension, password_stdin } => {
                let Some(old) = store
                    .agents(Some(&tenant))
                    .await?
                    .into_iter()
                    .find(|a| a.extension == extension)
                else {
                    eprintln!("no agent {extension} in `{tenant}` (agents in the config change in the config)");
                    return Ok(ExitCode::FAILURE);
                };
                let (password, generated) = if password_stdin {
                    (read_password()?, false)
                } else {
                    (generate_password(), true)
                };
                let mut row = agent_row(&tenant, &extension, &old.name, &realm, &password);
                row.created_ms = old.created_ms;
                row.skills = old.skills.clone();
                row.supervisor = old.supervisor;
                store.put_agent(&row).await?;
                println!("password of agent {extension} changed");
                if generated {
                    println!("password: {password}   (shown once)");
                }
                println!("{}", crate::cli::signal_reload(&cfg.data_dir)?);
                ExitCode::SUCCESS
            }
            AgentsCommand::Remove { tenant, extension } => {
                if store.remove_agent(&tenant, &extension).await? {
                    println!("agent {extension} removed from `{tenant}`");
                    println!("{}", crate::cli::signal_reload(&cfg.data_dir)?);
                    ExitCode::SUCCESS
                } else {
                    eprintln!("no agent {extension} in `{tenant}`");
                    ExitCode::FAILURE
                }
            }
            AgentsCommand::State {
                tenant,
                extension,
                command,
                reason,
            } => {
                crate::cli::privacy::tenant_known(cfg, &tenant)?;
                let known = cfg
                    .tenants
                    .iter()
                    .filter(|t| t.id == tenant)
                    .any(|t| t.queues.iter().any(|q| q.members.contains(&extension)));
                anyhow::ensure!(
                    known,
                    "agent {extension} is in none of `{tenant}`'s queues: its state is not tracked"
                );
                store
                    .put_agent_command(&crate::store::agents::AgentCommandRow {
                        tenant: tenant.clone(),
                        extension: extension.clone(),
                        command: command.clone(),
                        reason: if reason.is_empty() && command == "pause" {
                            "paused by an operator".into()
                        } else {
                            reason
                        },
                        at_ms: jiff::Timestamp::now().as_millisecond(),
                        id: String::new(),
                        origin: "cli".into(),
                    })
                    .await?;
                println!("agent {extension}: {command} asked");
                println!("{}", crate::cli::signal_reload(&cfg.data_dir)?);
                ExitCode::SUCCESS
            }
            AgentsCommand::List { tenant, json } => {
                list(cfg, &store, tenant.as_deref(), json).await?;
                ExitCode::SUCCESS
            }
            AgentsCommand::Ha1 { .. } => ExitCode::SUCCESS,
        };
        store.close().await;
        Ok(code)
    })
}

async fn list(cfg: &Config, store: &Store, tenant: Option<&str>, json: bool) -> anyhow::Result<()> {
    let mut agents: Vec<(AgentRow, &'static str)> = store
        .agents(tenant)
        .await?
        .into_iter()
        .map(|a| (a, "store"))
        .collect();
    for t in cfg
        .tenants
        .iter()
        .filter(|t| tenant.is_none_or(|x| x == t.id))
    {
        for a in &t.agents {
            agents.retain(|(r, _)| !(r.tenant == t.id && r.extension == a.extension));
            agents.push((
                AgentRow {
                    tenant: t.id.clone(),
                    extension: a.extension.clone(),
                    name: a.name.clone(),
                    ha1_sha256: None,
                    ha1_md5: None,
                    skills: a.skills.join(","),
                    supervisor: a.supervisor,
                    created_ms: 0,
                },
                "config",
            ));
        }
    }
    agents.sort_by(|a, b| (&a.0.tenant, &a.0.extension).cmp(&(&b.0.tenant, &b.0.extension)));
    let now = jiff::Timestamp::now().as_millisecond();
    let bindings = store.bindings(None, now).await?;
    let states = store.latest_agent_events(tenant).await?;
    // Which node rings or talks to each agent now (its live claim).
    let claims = store.claims(now).await?;
    if !json {
        println!(
            "{:<10} {:<8} {:<20} {:<7} {:<24} {:<8} STATE",
            "TENANT", "EXT", "NAME", "FROM", "STATE SINCE", "PHONES"
        );
    }
    for (a, from) in &agents {
        let phones: Vec<_> = bindings
            .iter()
            .filter(|b| b.tenant == a.tenant && b.extension == a.extension)
            .collect();
        let state = states
            .iter()
            .find(|e| e.tenant == a.tenant && e.extension == a.extension);
        // Queue members start logged in, waiting for a phone; an agent in
        // no queue has no state.
        let member = cfg
            .tenants
            .iter()
            .filter(|t| t.id == a.tenant)
            .any(|t| t.queues.iter().any(|q| q.members.contains(&a.extension)));
        let initial = if member { "unreachable" } else { "in no queue" };
        let held_by = claims
            .iter()
            .find(|c| c.tenant == a.tenant && c.extension == a.extension)
            .map(|c| c.node.clone());
        let mut state_text = match state {
            Some(e) if e.reason.is_empty() => e.to_state.clone(),
            Some(e) => format!("{} ({})", e.to_state, e.reason),
            None => initial.to_owned(),
        };
        if let Some(n) = &held_by {
            state_text.push_str(&format!(" [held by node {n}]"));
        }
        if json {
            let v = serde_json::json!({
                "tenant": a.tenant, "extension": a.extension, "name": a.name, "defined_in": from, "skills": a.skills, "supervisor": a.supervisor,
                "state": state.map(|e| e.to_state.clone()).unwrap_or_else(|| initial.into()),
                "state_reason": state.map(|e| e.reason.clone()).unwrap_or_default(),
                "state_since_ms": state.map(|e| e.at_ms),
                "held_by": held_by,
                "phones": phones.iter().map(|b| serde_json::json!({"contact": b.contact, "transport": b.transport, "source": b.remote_addr, "expires_ms": b.expires_ms, "node": b.node, "path": b.path.lines().collect::<Vec<_>>()})).collect::<Vec<_>>(),
            });
            println!("{v}");
        } else {
            let since = state
                .and_then(|e| jiff::Timestamp::from_millisecond(e.at_ms).ok())
                .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_else(|| "-".into());
            println!(
                "{:<10} {:<8} {:<20} {:<7} {:<24} {:<8} {}",
                a.tenant,
                a.extension,
                a.name,
                from,
                since,
                phones.len(),
                state_text
            );
        }
    }
    Ok(())
}
