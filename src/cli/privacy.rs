//! `dhwani privacy|holds|retention|audit ...`: the data principal's rights,
//! legal holds, the retention sweeper and the audit log from the command
//! line (see [`crate::privacy`]). Each takes the same `--config` and
//! `--data-dir` as `serve`; each action is written to the audit log.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use clap::Subcommand;

use super::print_json;
use crate::config::Config;
use crate::privacy::{Audit, cli_actor, pseudonyms};
use crate::store::HoldRow;

use super::rights;

/// `dhwani privacy ...` (DPDP Act 2023 rights, per tenant and number).
#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// Everything the tenant holds about a number, into a folder with a
    /// manifest: CDRs, timelines, the encrypted recordings.
    Export {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// The caller's number.
        #[arg(long)]
        number: String,
        /// Folder to write (created).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Who asks, and the request it answers.
        #[command(flatten)]
        acting: crate::cli::rights::Acting,
    },
    /// Erase a number's data: timelines deleted, recordings crypto-shredded,
    /// CDRs pseudonymised (kept under TRAI/DoT rules); held calls are kept
    /// and reported.
    Erase {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// The caller's number.
        #[arg(long)]
        number: String,
        /// Who asks, and the request it answers.
        #[command(flatten)]
        acting: crate::cli::rights::Acting,
    },
    /// The number withdraws recording consent: its later calls are not
    /// recorded, whatever the flow asks.
    WithdrawConsent {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// The caller's number.
        #[arg(long)]
        number: String,
        /// Who asks, and the request it answers.
        #[command(flatten)]
        acting: crate::cli::rights::Acting,
    },
    /// Correct a value a flow captured about the caller in one call's
    /// timeline (a `log` field or a gather's `digits`); the timeline gets
    /// a `correction` event naming the field.
    Correct {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// The caller's number.
        #[arg(long)]
        number: String,
        /// The call (its id from `calls list`).
        #[arg(long)]
        call: String,
        /// The field (`account`, `digits`, ...).
        #[arg(long)]
        field: String,
        /// The right value.
        #[arg(long)]
        value: String,
        /// Who asks, and the request it answers.
        #[command(flatten)]
        acting: crate::cli::rights::Acting,
    },
    /// Requests of data principals and their 30-day due dates.
    Requests {
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::rights::RequestsCommand,
    },
    /// Nominees who may exercise a number's rights.
    Nominee {
        /// What to do.
        #[command(subcommand)]
        command: crate::cli::rights::NomineeCommand,
    },
    /// Re-key the tenant's pseudonyms (after its pseudonym key may have
    /// leaked): a new layer is added to `keys/TENANT.pseudonym` and every
    /// stored pseudonym (consent withdrawals, holds on numbers,
    /// pseudonymised CDRs) is rewritten in one transaction. The recording
    /// key is not involved (`keys rotate` does not change pseudonyms).
    RekeyPseudonyms {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
    },
}

/// `dhwani holds ...` (legal holds).
#[derive(Debug, Subcommand)]
pub enum HoldsCommand {
    /// Place a hold: held data is never swept or erased until lifted.
    Place {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// Hold one call (its id from `calls list`).
        #[arg(long, group = "scope")]
        call: Option<String>,
        /// Hold every call from a number.
        #[arg(long, group = "scope")]
        number: Option<String>,
        /// Hold everything of the tenant.
        #[arg(long, group = "scope")]
        whole_tenant: bool,
        /// Why (required: a case or order reference).
        #[arg(long)]
        reason: String,
    },
    /// Lift a hold.
    Lift {
        /// The hold id.
        hold_id: String,
    },
    /// List holds.
    List,
}

/// `dhwani retention ...`
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Apply every tenant's retention periods now (or at `--now`, to see
    /// or test what a later date will remove).
    Sweep {
        /// The time to sweep at (RFC 3339, e.g. 2027-06-01T00:00:00Z).
        #[arg(long)]
        now: Option<String>,
    },
}

/// `dhwani keys ...` (tenant recording keys).
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new key current for the tenant's new recordings; the old one
    /// is archived (old recordings stay readable) until `keys rewrap`.
    Rotate {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
    },
    /// Re-wrap every stored recording of the tenant under its current key
    /// (the audio is not touched), then remove archived keys no recording
    /// needs.
    Rewrap {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
    },
    /// Tell, per tenant, where its recording key and its pseudonym key come
    /// from; warn (and exit 1) where one is missing or is a file inside the
    /// data directory (a copy of the data directory would carry the key
    /// that opens it).
    Check,
}

/// Runs `dhwani keys ...`.
pub fn keys(cmd: KeysCommand, cfg: &Config) -> anyhow::Result<ExitCode> {
    let audit = Audit::new(&cfg.data_dir);
    let actor = cli_actor();
    match cmd {
        KeysCommand::Rotate { tenant } => {
            tenant_known(cfg, &tenant)?;
            let (old, new) = crate::privacy::keys::rotate(&cfg.data_dir, &tenant)?;
            audit.append(
                &actor,
                "key.rotate",
                &format!("tenant {tenant} {old} -> {new}"),
            )?;
            println!("tenant `{tenant}`: new key {new}; {old} archived until `dhwani keys rewrap`");
            println!("{}", crate::cli::signal_reload(&cfg.data_dir)?);
        }
        KeysCommand::Check => {
            let mut warnings = 0;
            for t in &cfg.tenants {
                let lines = key_custody(cfg, t);
                println!("tenant `{}`", t.id);
                for (line, warn) in lines {
                    println!("  {}{line}", if warn { "WARNING: " } else { "" });
                    warnings += usize::from(warn);
                }
            }
            audit.append(&actor, "key.check", &format!("{warnings} warnings"))?;
            if warnings > 0 {
                println!("{warnings} warning(s)");
                return Ok(ExitCode::FAILURE);
            }
        }
        KeysCommand::Rewrap { tenant } => {
            tenant_known(cfg, &tenant)?;
            let current = crate::privacy::keys::load(&cfg.data_dir, &tenant)?;
            let (mut done, mut already, mut failed) = (0, 0, 0);
            for f in crate::privacy::layout::stored(&cfg.data_dir, Some(&tenant)) {
                let header = std::fs::File::open(&f)
                    .map_err(recordings::Error::from)
                    .and_then(|mut r| recordings::stream::read_header(&mut r));
                let h = match header {
                    Ok((h, _)) => h,
                    Err(e) => {
                        eprintln!("{}: {e}", f.display());
                        failed += 1;
                        continue;
                    }
                };
                if h.key_id == current.key_id || h.key_mode != recordings::header::KeyMode::Kek {
                    already += 1;
                    continue;
                }
                let Some(old) = crate::privacy::keys::find(&cfg.data_dir, &tenant, &h.key_id)
                else {
                    eprintln!(
                        "{}: key `{}` is not archived; cannot re-wrap",
                        f.display(),
                        h.key_id
                    );
                    failed += 1;
                    continue;
                };
                match recordings::file::rewrap_file(&f, old.kek(), current.kek(), &current.key_id) {
                    Ok(()) => done += 1,
                    Err(e) => {
                        eprintln!("{}: {e}", f.display());
                        failed += 1;
                    }
                }
            }
            // The calls' data keys (`store::sealed`) too: an archived key
            // is destroyed only when nothing it wraps is left.
            let (calls_done, calls_failed) = runtime()?.block_on(async {
                let store = crate::privacy::open_store(&cfg.store.url, &cfg.data_dir).await?;
                let r = store.rewrap_call_keys(&tenant).await;
                store.close().await;
                r
            })?;
            if calls_failed > 0 {
                eprintln!(
                    "{calls_failed} calls' keys are wrapped by a key that is not archived here; cannot re-wrap"
                );
            }
            failed += calls_failed;
            audit.append(
                &actor,
                "key.rewrap",
                &format!(
                    "tenant {tenant} to {} ({done} recordings, {calls_done} calls)",
                    current.key_id
                ),
            )?;
            // Archived keys no recording needs any more are destroyed.
            let mut removed = 0;
            if failed == 0 {
                let dir = crate::privacy::keys::archive_dir(&cfg.data_dir, &tenant);
                if let Ok(rd) = std::fs::read_dir(&dir) {
                    for e in rd.filter_map(Result::ok) {
                        if std::fs::remove_file(e.path()).is_ok() {
                            removed += 1;
                        }
                    }
                }
                if removed > 0 {
                    audit.append(
                        &actor,
                        "key.destroy",
                        &format!("tenant {tenant} {removed} archived keys"),
                    )?;
                }
            }
            println!(
                "tenant `{tenant}`: {done} recordings and {calls_done} calls' keys re-wrapped under {}, {already} recordings already current, {failed} failed, {removed} archived keys removed",
                current.key_id
            );
            if failed > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `keys check` says of a tenant's keys: (line, is a warning).
fn key_custody(cfg: &Config, t: &crate::config::TenantConfig) -> Vec<(String, bool)> {
    let inside = |p: &std::path::Path| {
        let abs = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
        abs(p).starts_with(abs(&cfg.data_dir))
    };
    let file = |what: &str, p: std::path::PathBuf, setting: &str| -> (String, bool) {
        if !p.exists() {
            (
                format!(
                    "{what}: no file at {} (the server makes it at its next start)",
                    p.display()
                ),
                true,
            )
        } else if inside(&p) {
            (
                format!(
                    "{what}: file {} is inside the data directory: a copy or backup of the data directory carries the key with the data; move it out and set `{setting}` (or the environment variable)",
                    p.display()
                ),
                true,
            )
        } else {
            (
                format!("{what}: file {} (outside the data directory)", p.display()),
                false,
            )
        }
    };
    let mut out = Vec::new();
    let var = crate::privacy::keys::env_var(&t.id);
    if std::env::var_os(&var).is_some() {
        out.push((format!("recording key: environment variable {var}"), false));
    } else {
        out.push(file(
            "recording key",
            crate::privacy::keys::key_path(&cfg.data_dir, &t.id),
            "recording_key_file",
        ));
    }
    if t.recording_public_key.is_some() {
        out.push((
            "recordings: write-only (recording_public_key): the server cannot read them; its own key keys nothing but old recordings".into(),
            false,
        ));
    }
    out.push(file(
        "pseudonym key",
        crate::privacy::pseudonyms::key_path(&cfg.data_dir, &t.id),
        "pseudonym_key_file",
    ));
    out
}

/// `dhwani audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain and anchor: exit 1 when an entry
    /// was edited, removed, inserted or cut from the end.
    Verify,
}

/// A single-threaded runtime for one CLI command.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// An error naming the configured tenants unless `tenant` is one.
pub(crate) fn tenant_known(cfg: &Config, tenant: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        cfg.tenants.iter().any(|t| t.id == tenant),
        "no tenant `{tenant}` in the config (tenants: {})",
        cfg.tenants
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Runs `dhwani privacy ...`.
pub fn privacy(
    cmd: PrivacyCommand,
    cfg: &Config,
    reason: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let audit = Audit::new(&cfg.data_dir);
    let actor = cli_actor();
    runtime()?.block_on(async {
        let store = crate::privacy::open_store(&cfg.store.url, &cfg.data_dir).await?;
        // Withdrawals and erasures are reported to the tenant's webhooks.
        store.set_webhooks(&cfg.tenants);
        match cmd {
            PrivacyCommand::Export { tenant, number, out, acting } => {
                tenant_known(cfg, &tenant)?;
                let key = pseudonyms::current(&store, &cfg.data_dir, &tenant).await?;
                let said = rights::check_acting(&store, &key, (&tenant, &number, "privacy export"), &acting).await?;
                let r = crate::privacy::export(&store, cfg, &tenant, &number, &out).await?;
                audit.append(&actor, "privacy.export", &format!("tenant {tenant} number {}; {} calls; reason: {}{said}", key.pseudonym(&number), r.calls, reason.unwrap_or("none given")))?;
                rights::close_acting(&store, &acting, "privacy export").await?;
                print_json(&r)?;
            }
            PrivacyCommand::Erase { tenant, number, acting } => {
                tenant_known(cfg, &tenant)?;
                let key = pseudonyms::current(&store, &cfg.data_dir, &tenant).await?;
                let said = rights::check_acting(&store, &key, (&tenant, &number, "privacy erase"), &acting).await?;
                let r = crate::privacy::erase(&store, cfg, &tenant, &number).await?;
                audit.append(&actor, "privacy.erase", &format!("tenant {tenant} number {}{said}", key.pseudonym(&number)))?;
                rights::close_acting(&store, &acting, "privacy erase").await?;
                print_json(&serde_json::json!({
                    "erased": r,
                    "kept": {
                        "cdrs": "each call's CDR, with the number replaced by a keyed pseudonym: kept for the CDR retention period under the TRAI/DoT licence conditions",
                        "held": "calls under a legal hold are kept whole until the hold is lifted (see `held`)",
                        "consent": "a consent withdrawal, if any, stays registered under the pseudonym",
                    }
                }))?;
            }
            PrivacyCommand::WithdrawConsent { tenant, number, acting } => {
                tenant_known(cfg, &tenant)?;
                let key = pseudonyms::current(&store, &cfg.data_dir, &tenant).await?;
                let said = rights::check_acting(&store, &key, (&tenant, &number, "privacy withdraw-consent"), &acting).await?;
                let p = key.pseudonym(&number);
                let at = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                store.withdraw_consent(&tenant, &p, at).await?;
                audit.append(&actor, "consent.withdraw", &format!("tenant {tenant} number {p}{said}"))?;
                rights::close_acting(&store, &acting, "privacy withdraw-consent").await?;
                println!("consent withdrawn: later calls from this number to `{tenant}` are not recorded");
            }
            PrivacyCommand::Correct { tenant, number, call, field, value, acting } => {
                tenant_known(cfg, &tenant)?;
                let key = pseudonyms::current(&store, &cfg.data_dir, &tenant).await?;
                let said = rights::check_acting(&store, &key, (&tenant, &number, "privacy correct"), &acting).await?;
                // The call must be this number's at this tenant.
                let c = store.call(&call).await?;
                let theirs = c.as_ref().is_some_and(|c| {
                    c.tenant == tenant && (c.caller == number || key.all(&number).contains(&c.caller))
                });
                if !theirs {
                    anyhow::bail!("call `{call}` is not a call of this number at `{tenant}`");
                }
                let call_id = c.map(|c| c.call_id).unwrap_or_default();
                let at = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                let n = store.correct_field(&call_id, &field, &value, at).await?;
                if n == 0 {
                    anyhow::bail!("call `{call_id}` has no captured field `{field}` (a `log` field or `digits`)");
                }
                audit.append(&actor, "privacy.correct", &format!("tenant {tenant} number {} call {call_id} field {field} ({n} events){said}", key.pseudonym(&number)))?;
                rights::close_acting(&store, &acting, "privacy correct").await?;
                print_json(&serde_json::json!({"call_id": call_id, "field": field, "events_corrected": n}))?;
            }
            PrivacyCommand::Requests { command } => {
                let code = rights::requests(&store, cfg, command).await;
                store.close().await;
                return code;
            }
            PrivacyCommand::Nominee { command } => {
                let code = rights::nominee(&store, cfg, command).await;
                store.close().await;
                return code;
            }
            PrivacyCommand::RekeyPseudonyms { tenant } => {
                tenant_known(cfg, &tenant)?;
                let r = pseudonyms::rekey(&store, &cfg.data_dir, &tenant).await?;
                audit.append(
                    &actor,
                    "pseudonyms.rekey",
                    &format!(
                        "tenant {tenant} {} -> {} ({} withdrawals, {} holds, {} CDRs)",
                        r.from, r.to, r.withdrawals, r.holds, r.cdrs
                    ),
                )?;
                // A running server sees the new fingerprint in the store
                // and loads the new key before its next consent check.
                print_json(&r)?;
            }
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `dhwani holds ...`.
pub fn holds(cmd: HoldsCommand, cfg: &Config) -> anyhow::Result<ExitCode> {
    let audit = Audit::new(&cfg.data_dir);
    let actor = cli_actor();
    runtime()?.block_on(async {
        let store = crate::privacy::open_store(&cfg.store.url, &cfg.data_dir).await?;
        let code = match cmd {
            HoldsCommand::Place {
                tenant,
                call,
                number,
                whole_tenant,
                reason,
            } => {
                tenant_known(cfg, &tenant)?;
                anyhow::ensure!(!reason.trim().is_empty(), "a hold needs a reason");
                let (scope, target, subject) = match (call, number, whole_tenant) {
                    (Some(c), None, false) => ("call", c.clone(), format!("call {c}")),
                    (None, Some(n), false) => {
                        // The hold names the number by its pseudonyms only.
                        let key = pseudonyms::current(&store, &cfg.data_dir, &tenant).await?;
                        (
                            "number",
                            key.all(&n).join(","),
                            format!("number {}", key.pseudonym(&n)),
                        )
                    }
                    (None, None, true) => ("tenant", String::new(), "tenant".to_owned()),
                    _ => anyhow::bail!(
                        "say what the hold covers: --call ID, --number N or --whole-tenant"
                    ),
                };
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                let hold_id = format!("hold-{:08x}", rand::random::<u32>());
                store
                    .place_hold(&HoldRow {
                        hold_id: hold_id.clone(),
                        tenant: tenant.clone(),
                        scope: scope.into(),
                        target: target.clone(),
                        reason: reason.clone(),
                        placed_ms: now,
                    })
                    .await?;
                audit.append(
                    &actor,
                    "hold.place",
                    &format!("{hold_id} tenant {tenant} {subject}"),
                )?;
                println!("{hold_id}");
                ExitCode::SUCCESS
            }
            HoldsCommand::Lift { hold_id } => {
                if store.lift_hold(&hold_id).await? {
                    audit.append(&actor, "hold.lift", &hold_id)?;
                    println!("lifted {hold_id}");
                    ExitCode::SUCCESS
                } else {
                    eprintln!("no standing hold `{hold_id}`");
                    ExitCode::FAILURE
                }
            }
            HoldsCommand::List => {
                for t in &cfg.tenants {
                    // Turns old holds on numbers into pseudonyms first.
                    if crate::privacy::keys::load(&cfg.data_dir, &t.id).is_ok() {
                        pseudonyms::current(&store, &cfg.data_dir, &t.id).await?;
                    }
                }
                for h in store.holds().await? {
                    println!("{}", serde_json::to_string(&h)?);
                }
                ExitCode::SUCCESS
            }
        };
        store.close().await;
        Ok(code)
    })
}

/// Runs `dhwani retention ...`.
pub fn retention(cmd: RetentionCommand, cfg: &Config) -> anyhow::Result<ExitCode> {
    let RetentionCommand::Sweep { now } = cmd;
    let now = match now {
        None => SystemTime::now(),
        Some(s) => {
            let ts: jiff::Timestamp = s
                .parse()
                .map_err(|e| anyhow::anyhow!("--now `{s}`: {e} (write 2027-06-01T00:00:00Z)"))?;
            SystemTime::UNIX_EPOCH
                + std::time::Duration::from_millis(ts.as_millisecond().max(0) as u64)
        }
    };
    runtime()?.block_on(async {
        let store = crate::privacy::open_store(&cfg.store.url, &cfg.data_dir).await?;
        let r = crate::privacy::sweep(&store, cfg, now, &cli_actor()).await?;
        print_json(&r)?;
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `dhwani audit ...`.
pub fn audit(cmd: AuditCommand, cfg: &Config) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify = cmd;
    match Audit::new(&cfg.data_dir).verify()? {
        Ok(n) => {
            println!("audit log intact: {n} entries");
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            println!("audit log broken: {why}");
            Ok(ExitCode::FAILURE)
        }
    }
}
