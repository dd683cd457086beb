//! The remaining rights of the DPDP Act from the command line:
//! `dhwani privacy requests|nominee|correct` and `dhwani grievance`
//! (`store::rights`). Numbers are taken on the command line and stored
//! only as the tenant's pseudonyms; every action is audited.

use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Args, Subcommand};

use crate::config::Config;
use crate::privacy::pseudonyms::PseudonymKey;
use crate::privacy::{Audit, cli_actor, pseudonyms};
use crate::store::Store;
use crate::store::rights::{GrievanceRow, RequestRow};

/// The kinds of request (`--kind`), and the command that answers each.
pub const REQUEST_KINDS: &[(&str, &str)] = &[
    ("access", "privacy export"),
    ("correction", "privacy correct"),
    ("erasure", "privacy erase"),
    ("consent-withdrawal", "privacy withdraw-consent"),
    ("nomination", "privacy nominee add"),
    ("other", "privacy requests close"),
];

/// Who acts, for a command that answers a right: the caller (default) or
/// a registered nominee, and the request it answers.
#[derive(Debug, Clone, Default, Args)]
pub struct Acting {
    /// The request this answers (`privacy requests open`): checked to be
    /// open, of this kind and about this number, and closed when done.
    #[arg(long, value_name = "ID")]
    pub request: Option<String>,
    /// The right is exercised by this nominee of the number (registered
    /// with `privacy nominee add`), not by the caller.
    #[arg(long, value_name = "NUMBER")]
    pub by_nominee: Option<String>,
}

/// `dhwani privacy requests ...`
#[derive(Debug, Subcommand)]
pub enum RequestsCommand {
    /// Record a request a data principal (or their nominee) made: it is
    /// due in 30 days.
    Open {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// The caller's number.
        #[arg(long)]
        number: String,
        /// access, correction, erasure, consent-withdrawal, nomination,
        /// other.
        #[arg(long)]
        kind: String,
        /// Made by this nominee of the number.
        #[arg(long, value_name = "NUMBER")]
        by_nominee: Option<String>,
    },
    /// Requests, oldest first, with their due dates.
    List {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only open ones.
        #[arg(long)]
        open: bool,
        /// Only open ones past their due date.
        #[arg(long)]
        overdue: bool,
        /// Judge what is overdue at this time (RFC 3339), not now.
        #[arg(long)]
        now: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Close a request by hand (the commands that answer one close it
    /// with `--request`).
    Close {
        /// The request id.
        id: String,
        /// What was done.
        #[arg(long)]
        outcome: String,
    },
}

/// `dhwani privacy nominee ...`
#[derive(Debug, Subcommand)]
pub enum NomineeCommand {
    /// Register a nominee for a number (DPDP Act §14): they may then
    /// exercise the number's rights (`--by-nominee`).
    Add {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// The caller's number.
        #[arg(long)]
        number: String,
        /// The nominee's number.
        #[arg(long)]
        nominee: String,
        /// The request this answers.
        #[arg(long, value_name = "ID")]
        request: Option<String>,
    },
    /// Remove a nominee.
    Remove {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// The caller's number.
        #[arg(long)]
        number: String,
        /// The nominee's number.
        #[arg(long)]
        nominee: String,
    },
    /// The number's nominees (by pseudonym).
    List {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// The caller's number.
        #[arg(long)]
        number: String,
    },
}

/// `dhwani grievance ...`
#[derive(Debug, Subcommand)]
pub enum GrievanceCommand {
    /// Open a grievance (one lodged by letter, mail or in person; by phone
    /// a flow's `grievance` opens them): acknowledgement due in 24 hours,
    /// resolution in 30 days.
    Open {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// The caller's number, if known.
        #[arg(long)]
        number: Option<String>,
        /// Its category.
        #[arg(long)]
        category: String,
    },
    /// Acknowledge one.
    Ack {
        /// The grievance id (`G...`).
        id: String,
    },
    /// Resolve one.
    Resolve {
        /// The grievance id.
        id: String,
        /// How (kept with it).
        #[arg(long)]
        resolution: String,
    },
    /// Grievances, oldest first, with their due dates.
    List {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only unresolved ones.
        #[arg(long)]
        open: bool,
        /// Only those past a due date.
        #[arg(long)]
        overdue: bool,
        /// Judge what is overdue at this time (RFC 3339), not now.
        #[arg(long)]
        now: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `--now`, or now, in ms since the epoch.
fn at(now: Option<&str>) -> anyhow::Result<i64> {
    match now {
        None => Ok(now_ms()),
        Some(s) => {
            let ts: jiff::Timestamp = s
                .parse()
                .map_err(|e| anyhow::anyhow!("--now `{s}`: {e} (write 2027-06-01T00:00:00Z)"))?;
            Ok(ts.as_millisecond())
        }
    }
}

fn when(ms: Option<i64>) -> String {
    match ms.and_then(|m| jiff::Timestamp::from_millisecond(m).ok()) {
        Some(t) => t.strftime("%Y-%m-%d %H:%M").to_string(),
        None => "-".into(),
    }
}

/// Checks who acts and for which request, before a right is exercised;
/// returns the words the audit entry adds.
pub async fn check_acting(
    store: &Store,
    key: &PseudonymKey,
    (tenant, number, command): (&str, &str, &str),
    acting: &Acting,
) -> anyhow::Result<String> {
    let subject = key.pseudonym(number);
    let mut said = String::new();
    if let Some(n) = &acting.by_nominee {
        let nominee = key.pseudonym(n);
        if !store.nominees(tenant, &subject).await?.contains(&nominee) {
            anyhow::bail!(
                "that number is not a registered nominee of this number at `{tenant}` (dhwani privacy nominee add)"
            );
        }
        said.push_str(&format!("; by nominee {nominee}"));
    }
    if let Some(id) = &acting.request {
        let Some(r) = store.request(id).await? else {
            anyhow::bail!("no request `{id}` (dhwani privacy requests list)");
        };
        let answers = REQUEST_KINDS
            .iter()
            .find(|(k, _)| *k == r.kind)
            .map(|(_, c)| *c);
        if r.tenant != tenant || r.subject != subject {
            anyhow::bail!("request `{id}` is about another number or tenant");
        }
        if r.closed_ms.is_some() {
            anyhow::bail!("request `{id}` is closed already");
        }
        if answers != Some(command) {
            anyhow::bail!(
                "request `{id}` asks for {} (answered by `dhwani {}`), not `dhwani {command}`",
                r.kind,
                answers.unwrap_or("privacy requests close")
            );
        }
        said.push_str(&format!("; answers request {id}"));
    }
    Ok(said)
}

/// Closes the request a command answered.
pub async fn close_acting(store: &Store, acting: &Acting, command: &str) -> anyhow::Result<()> {
    if let Some(id) = &acting.request {
        store
            .close_request(id, &format!("done: dhwani {command}"), now_ms())
            .await?;
        eprintln!("request {id} closed");
    }
    Ok(())
}

fn request_json(r: &RequestRow, now: i64) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["overdue"] = r.overdue(now).into();
    v
}

fn grievance_json(g: &GrievanceRow, now: i64) -> serde_json::Value {
    let mut v = serde_json::to_value(g).unwrap_or_default();
    v["overdue"] = g.overdue(now).into();
    v
}

/// Runs `dhwani privacy requests ...`.
pub async fn requests(
    store: &Store,
    cfg: &Config,
    cmd: RequestsCommand,
) -> anyhow::Result<ExitCode> {
    let audit = Audit::new(&cfg.data_dir);
    match cmd {
        RequestsCommand::Open {
            tenant,
            number,
            kind,
            by_nominee,
        } => {
            if !REQUEST_KINDS.iter().any(|(k, _)| *k == kind) {
                let kinds: Vec<&str> = REQUEST_KINDS.iter().map(|(k, _)| *k).collect();
                anyhow::bail!("--kind is one of {}", kinds.join(", "));
            }
            crate::cli::privacy::tenant_known(cfg, &tenant)?;
            let key = pseudonyms::current(store, &cfg.data_dir, &tenant).await?;
            let subject = key.pseudonym(&number);
            let nominee = match &by_nominee {
                Some(n) => {
                    let p = key.pseudonym(n);
                    if !store.nominees(&tenant, &subject).await?.contains(&p) {
                        anyhow::bail!("that number is not a registered nominee of this number");
                    }
                    p
                }
                None => String::new(),
            };
            let r = store
                .open_request(&tenant, &kind, (&subject, &nominee), now_ms())
                .await?;
            audit.append(
                &cli_actor(),
                "request.open",
                &format!("tenant {tenant} {} {kind} about {subject}", r.request_id),
            )?;
            println!(
                "{}",
                serde_json::to_string_pretty(&request_json(&r, now_ms()))?
            );
        }
        RequestsCommand::List {
            tenant,
            open,
            overdue,
            now,
            json,
        } => {
            let now = at(now.as_deref())?;
            let rows: Vec<RequestRow> = store
                .requests(tenant.as_deref(), open || overdue)
                .await?
                .into_iter()
                .filter(|r| !overdue || r.overdue(now))
                .collect();
            if json {
                for r in &rows {
                    println!("{}", request_json(r, now));
                }
            } else {
                println!(
                    "{:<10} {:<10} {:<19} {:<16} {:<16} {:<16}  OUTCOME",
                    "REQUEST", "TENANT", "KIND", "OPENED", "DUE", "CLOSED"
                );
                for r in &rows {
                    let late = if r.overdue(now) { " OVERDUE" } else { "" };
                    println!(
                        "{:<10} {:<10} {:<19} {:<16} {:<16} {:<16}  {}{late}",
                        r.request_id,
                        r.tenant,
                        r.kind,
                        when(Some(r.opened_ms)),
                        when(Some(r.due_ms)),
                        when(r.closed_ms),
                        r.outcome.as_deref().unwrap_or("")
                    );
                }
            }
        }
        RequestsCommand::Close { id, outcome } => {
            if !store.close_request(&id, &outcome, now_ms()).await? {
                anyhow::bail!("no open request `{id}`");
            }
            audit.append(&cli_actor(), "request.close", &format!("{id}: {outcome}"))?;
            println!("request {id} closed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `dhwani privacy nominee ...`.
pub async fn nominee(store: &Store, cfg: &Config, cmd: NomineeCommand) -> anyhow::Result<ExitCode> {
    let audit = Audit::new(&cfg.data_dir);
    match cmd {
        NomineeCommand::Add {
            tenant,
            number,
            nominee,
            request,
        } => {
            crate::cli::privacy::tenant_known(cfg, &tenant)?;
            let key = pseudonyms::current(store, &cfg.data_dir, &tenant).await?;
            let acting = Acting {
                request,
                by_nominee: None,
            };
            let said = check_acting(
                store,
                &key,
                (&tenant, &number, "privacy nominee add"),
                &acting,
            )
            .await?;
            let (s, n) = (key.pseudonym(&number), key.pseudonym(&nominee));
            if s == n {
                anyhow::bail!("a number cannot be its own nominee");
            }
            store.add_nominee(&tenant, &s, &n, now_ms()).await?;
            audit.append(
                &cli_actor(),
                "nominee.add",
                &format!("tenant {tenant} number {s} nominee {n}{said}"),
            )?;
            close_acting(store, &acting, "privacy nominee add").await?;
            println!("nominee {n} registered for {s}");
        }
        NomineeCommand::Remove {
            tenant,
            number,
            nominee,
        } => {
            crate::cli::privacy::tenant_known(cfg, &tenant)?;
            let key = pseudonyms::current(store, &cfg.data_dir, &tenant).await?;
            let (s, n) = (key.pseudonym(&number), key.pseudonym(&nominee));
            if !store.remove_nominee(&tenant, &s, &n).await? {
                anyhow::bail!("that number is not a nominee of this number");
            }
            audit.append(
                &cli_actor(),
                "nominee.remove",
                &format!("tenant {tenant} number {s} nominee {n}"),
            )?;
            println!("nominee {n} removed");
        }
        NomineeCommand::List { tenant, number } => {
            crate::cli::privacy::tenant_known(cfg, &tenant)?;
            let key = pseudonyms::current(store, &cfg.data_dir, &tenant).await?;
            for n in store.nominees(&tenant, &key.pseudonym(&number)).await? {
                println!("{n}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `dhwani grievance ...`.
pub fn grievance(cmd: GrievanceCommand, cfg: &Config) -> anyhow::Result<ExitCode> {
    let audit = Audit::new(&cfg.data_dir);
    crate::cli::privacy::runtime()?.block_on(async {
        let store = crate::privacy::open_store(&cfg.store.url, &cfg.data_dir).await?;
        let r = grievance_in(&store, cfg, &audit, cmd).await;
        store.close().await;
        r
    })
}

async fn grievance_in(
    store: &Store,
    cfg: &Config,
    audit: &Audit,
    cmd: GrievanceCommand,
) -> anyhow::Result<ExitCode> {
    match cmd {
        GrievanceCommand::Open {
            tenant,
            number,
            category,
        } => {
            crate::cli::privacy::tenant_known(cfg, &tenant)?;
            let subject = match &number {
                Some(n) => pseudonyms::current(store, &cfg.data_dir, &tenant)
                    .await?
                    .pseudonym(n),
                None => String::new(),
            };
            let g = GrievanceRow::new(&tenant, &subject, &category, "cli", now_ms());
            store.open_grievance(&g).await?;
            audit.append(
                &cli_actor(),
                "grievance.open",
                &format!(
                    "tenant {tenant} {} {category} about {subject}",
                    g.grievance_id
                ),
            )?;
            println!(
                "{}",
                serde_json::to_string_pretty(&grievance_json(&g, now_ms()))?
            );
        }
        GrievanceCommand::Ack { id } => {
            if !store.ack_grievance(&id, now_ms()).await? {
                anyhow::bail!("no grievance `{id}` waiting for acknowledgement");
            }
            audit.append(&cli_actor(), "grievance.ack", &id)?;
            println!("grievance {id} acknowledged");
        }
        GrievanceCommand::Resolve { id, resolution } => {
            if !store.resolve_grievance(&id, &resolution, now_ms()).await? {
                anyhow::bail!("no open grievance `{id}`");
            }
            audit.append(
                &cli_actor(),
                "grievance.resolve",
                &format!("{id}: {resolution}"),
            )?;
            println!("grievance {id} resolved");
        }
        GrievanceCommand::List {
            tenant,
            open,
            overdue,
            now,
            json,
        } => {
            let now = at(now.as_deref())?;
            let rows: Vec<GrievanceRow> = store
                .grievances(tenant.as_deref(), open || overdue)
                .await?
                .into_iter()
                .filter(|g| !overdue || g.overdue(now))
                .collect();
            if json {
                for g in &rows {
                    println!("{}", grievance_json(g, now));
                }
            } else {
                println!(
                    "{:<10} {:<10} {:<14} {:<6} {:<16} {:<16} {:<16}  STATE",
                    "GRIEVANCE", "TENANT", "CATEGORY", "BY", "OPENED", "ACK DUE", "RESOLVE DUE"
                );
                for g in &rows {
                    let state = match (g.acked_ms, g.resolved_ms) {
                        (_, Some(t)) => format!("resolved {}", when(Some(t))),
                        (Some(t), None) => format!("acknowledged {}", when(Some(t))),
                        (None, None) => "open".into(),
                    };
                    let late = if g.overdue(now) { " OVERDUE" } else { "" };
                    println!(
                        "{:<10} {:<10} {:<14} {:<6} {:<16} {:<16} {:<16}  {state}{late}",
                        g.grievance_id,
                        g.tenant,
                        g.category,
                        g.channel,
                        when(Some(g.opened_ms)),
                        when(Some(g.ack_due_ms)),
                        when(Some(g.resolve_due_ms))
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
