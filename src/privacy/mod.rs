//! Data protection: the audit log, legal holds, the retention sweeper, and
//! the rights of a data principal under India's DPDP Act 2023 (export,
//! erasure, consent withdrawal), per tenant and caller number.
//!
//! - The **audit log** is `DATA_DIR/audit.log`, hash-chained
//!   ([`recordings::audit`]), appended under a file lock by the server and
//!   the CLI. `DATA_DIR/audit.anchor` keeps the entry count and last hash,
//!   so cutting entries off the end is detected too. Numbers never appear
//!   in it: subjects name a number by its keyed pseudonym
//!   ([`pseudonyms`]: a key per tenant of its own, untouched by recording
//!   key rotations).
//! - **Erasure** deletes the number's timelines, crypto-shreds its
//!   recordings, pseudonymises its CDRs (kept under the TRAI/DoT licence
//!   conditions) and scrubs the database files; data under a legal hold is
//!   kept and reported with the hold's reason. Calls whose CDR already
//!   names the number by a pseudonym are found by it (export too).
//! - The **sweeper** applies each tenant's retention periods at a given
//!   time ([`sweep`]); the server runs it hourly and
//!   `dhwani retention sweep --now` runs it at any time (tests move time).

pub mod error;
pub mod keys;
pub mod layout;
pub mod pseudonyms;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use recordings::audit::{Appender, verify};
use recordings::retention::{self, DataClass, Decision, Item};
use serde::Serialize;

pub use error::PrivacyError;
use error::at;

use crate::config::Config;
use crate::store::{CallRecord, Store};
use pseudonyms::PseudonymKey;

/// The tenant keys of a data directory, as the store's sealing needs
/// them (`crate::store::sealed::KeySource`): recording keys from
/// [`keys`], pseudonyms from [`pseudonyms`].
struct StoreKeys;

impl crate::store::sealed::KeySource for StoreKeys {
    fn current(
        &self,
        data_dir: &Path,
        tenant: &str,
        create: bool,
    ) -> Result<(String, recordings::keys::Key), String> {
        let k = if create {
            keys::load_or_create(data_dir, tenant)
        } else {
            keys::load(data_dir, tenant)
        }
        .map_err(|e| e.to_string())?;
        Ok((k.key_id.clone(), k.kek().clone()))
    }

    fn find(&self, data_dir: &Path, tenant: &str, key_id: &str) -> Option<recordings::keys::Key> {
        keys::find(data_dir, tenant, key_id).map(|k| k.kek().clone())
    }

    fn mfa_key(&self, data_dir: &Path, create: bool) -> Result<recordings::keys::Key, String> {
        keys::mfa_key(data_dir, create).map_err(|e| e.to_string())
    }

    fn pseudonyms<'a>(
        &'a self,
        store: &'a Store,
        data_dir: &'a Path,
        tenant: &'a str,
        number: &'a str,
    ) -> crate::store::sealed::BoxFuture<'a, Vec<String>> {
        Box::pin(async move {
            match pseudonyms::current(store, data_dir, tenant).await {
                Ok(k) => k.all(number),
                Err(e) => {
                    tracing::debug!(tenant, error = %e, "no pseudonym key for a lookup");
                    Vec::new()
                }
            }
        })
    }
}

/// Opens the store at `url` (SQLite in `data_dir` when empty) with the
/// tenant keys of `data_dir`, so callers' fields are sealed and opened.
/// Every command and the server open the store this way.
pub async fn open_store(url: &str, data_dir: &Path) -> Result<Store, crate::store::StoreError> {
    Ok(Store::open(url, data_dir)
        .await?
        .with_key_source(std::sync::Arc::new(StoreKeys)))
}

/// The hash-chained audit log of a data directory.
#[derive(Debug, Clone)]
pub struct Audit {
    log: PathBuf,
    anchor: PathBuf,
    lock: PathBuf,
}

/// Who is acting: `user@cli` for commands, `server` or `sweeper`.
pub fn cli_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@cli")
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How an audit log fails verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditBroken {
    /// The log file is gone but the anchor remembers entries.
    #[error("the audit log is missing; the anchor says {anchored} entries")]
    LogMissing {
        /// Entries the anchor counts.
        anchored: u64,
    },
    /// An entry was edited or removed inside the chain.
    #[error("{0:?}")]
    Chain(recordings::audit::Broken),
    /// Entries but no anchor file.
    #[error("{entries} entries but no anchor ({})", anchor.display())]
    AnchorMissing {
        /// Entries in the log.
        entries: u64,
        /// Where the anchor should be.
        anchor: PathBuf,
    },
    /// Entries cut off the end.
    #[error(
        "entries removed from the end: the anchor says {anchored} entries, the log has {entries}"
    )]
    CutOff {
        /// Entries the anchor counts.
        anchored: u64,
        /// Entries in the log.
        entries: u64,
    },
}

impl Audit {
    /// The audit log of `data_dir`.
    pub fn new(data_dir: &Path) -> Audit {
        Audit {
            log: data_dir.join("audit.log"),
            anchor: data_dir.join("audit.anchor"),
            lock: data_dir.join("audit.lock"),
        }
    }

    fn read_anchor(&self) -> Result<Option<(u64, String)>, PrivacyError> {
        match std::fs::read_to_string(&self.anchor) {
            Ok(t) => {
                let mut it = t.split_whitespace();
                let (Some(n), Some(h)) = (it.next().and_then(|n| n.parse().ok()), it.next()) else {
                    return Err(PrivacyError::BadAnchor {
                        path: self.anchor.clone(),
                    });
                };
                Ok(Some((n, h.to_owned())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(at(&self.anchor)(e)),
        }
    }

    /// Appends one entry (and moves the anchor), under the lock.
    pub fn append(&self, actor: &str, action: &str, subject: &str) -> Result<(), PrivacyError> {
        if let Some(dir) = self.log.parent() {
            std::fs::create_dir_all(dir).map_err(at(dir))?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(at(&self.lock))?;
        lock.lock().map_err(at(&self.lock))?;
        let mut appender = match self.read_anchor()? {
            Some((n, h)) => Appender::at(n, &h),
            None => Appender::resume(None)?,
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(at(&self.log))?;
        appender.append(&mut f, unix_secs(SystemTime::now()), actor, action, subject)?;
        f.sync_data()?;
        let (n, h) = appender.anchor();
        let tmp = self.anchor.with_extension("tmp");
        std::fs::write(&tmp, format!("{n} {h}\n"))?;
        std::fs::rename(&tmp, &self.anchor)?;
        Ok(())
    }

    /// [`Audit::append`] on a blocking thread (it takes a file lock and
    /// syncs the log), for async callers such as the admin API.
    pub async fn append_async(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
    ) -> Result<(), PrivacyError> {
        let (me, actor, action, subject) = (
            self.clone(),
            actor.to_owned(),
            action.to_owned(),
            subject.to_owned(),
        );
        tokio::task::spawn_blocking(move || me.append(&actor, &action, &subject))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Checks the chain and the anchor: Ok(entries) or what is wrong.
    pub fn verify(&self) -> Result<Result<u64, AuditBroken>, PrivacyError> {
        let anchor = self.read_anchor()?;
        let f = match std::fs::File::open(&self.log) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(match anchor {
                    None => Ok(0),
                    Some((n, _)) => Err(AuditBroken::LogMissing { anchored: n }),
                });
            }
            Err(e) => return Err(at(&self.log)(e)),
        };
        let n = match verify(BufReader::new(f))? {
            Ok(n) => n,
            Err(broken) => return Ok(Err(AuditBroken::Chain(broken))),
        };
        let last_hash = BufReader::new(std::fs::File::open(&self.log)?)
            .lines()
            .map_while(Result::ok)
            .last()
            .and_then(|l| l.rsplit('\t').next().map(str::to_owned));
        Ok(match anchor {
            None if n == 0 => Ok(0),
            None => Err(AuditBroken::AnchorMissing {
                entries: n,
                anchor: self.anchor.clone(),
            }),
            Some((m, h)) if m == n && last_hash.as_deref() == Some(h.as_str()) => Ok(n),
            Some((m, _)) => Err(AuditBroken::CutOff {
                anchored: m,
                entries: n,
            }),
        })
    }
}

/// Lists at most this many ids or pseudonyms in one audit entry.
const AUDIT_LIST_MAX: usize = 100;

fn capped(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(AUDIT_LIST_MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    if items.len() > AUDIT_LIST_MAX {
        s.push_str(&format!(" (+{} more)", items.len() - AUDIT_LIST_MAX));
    }
    s
}

/// The audit entry of a read of callers' data (`calls list`, `calls
/// show`): what was asked, the calls read by id, their callers by
/// pseudonym (never the number), and the reason given. Written before the
/// data is shown: no entry, no data.
pub async fn audit_read(
    store: &Store,
    cfg: &Config,
    (action, what): (&str, &str),
    calls: &[CallRecord],
    reason: Option<&str>,
) -> Result<(), PrivacyError> {
    audit_read_by(&cli_actor(), store, cfg, (action, what), calls, reason).await
}

/// [`audit_read`] by another actor (`api-key:ID` for the admin API).
pub async fn audit_read_by(
    actor: &str,
    store: &Store,
    cfg: &Config,
    (action, what): (&str, &str),
    calls: &[CallRecord],
    reason: Option<&str>,
) -> Result<(), PrivacyError> {
    let mut keys: std::collections::HashMap<String, Option<PseudonymKey>> = Default::default();
    let mut callers = Vec::new();
    for c in calls {
        if !keys.contains_key(&c.tenant) {
            let k = match keys::load(&cfg.data_dir, &c.tenant) {
                Ok(_) => Some(pseudonyms::current(store, &cfg.data_dir, &c.tenant).await?),
                Err(_) => None,
            };
            keys.insert(c.tenant.clone(), k);
        }
        let p = match keys.get(&c.tenant).and_then(Option::as_ref) {
            Some(k) => pseudonym_of(k, &c.caller),
            None if c.caller.starts_with("anon-") => c.caller.clone(),
            None => "anon-unknown".to_owned(),
        };
        if !callers.contains(&p) {
            callers.push(p);
        }
    }
    let ids: Vec<String> = calls.iter().map(|c| c.call_id.clone()).collect();
    let subject = format!(
        "{what}; {} calls: {}; callers: {}; reason: {}",
        calls.len(),
        capped(&ids),
        capped(&callers),
        reason.unwrap_or("none given")
    );
    Audit::new(&cfg.data_dir)
        .append_async(actor, action, &subject)
        .await
}

/// The audit subject of a recording read: its id and the reason given.
pub fn recording_subject(id: &str, reason: Option<&str>) -> String {
    format!("{id}; reason: {}", reason.unwrap_or("none given"))
}

/// Recording files of a call (the call recording and its messages).
pub fn recordings_of(data_dir: &Path, tenant: &str, call_id: &str) -> Vec<PathBuf> {
    let prefix = format!("{call_id}-");
    crate::privacy::layout::stored(data_dir, Some(tenant))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect()
}

/// What an export wrote.
#[derive(Debug, Serialize)]
pub struct ExportReport {
    /// The folder.
    pub folder: PathBuf,
    /// Calls exported.
    pub calls: usize,
    /// Recording files copied (still encrypted).
    pub recordings: usize,
}

fn sha256_file(p: &Path) -> Result<String, PrivacyError> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let mut f = std::fs::File::open(p)?;
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// Everything held about `number` at `tenant`, into `folder`: the CDRs,
/// the timelines, the (encrypted) recordings, and `manifest.json` listing
/// each file with its SHA-256.
pub async fn export(
    store: &Store,
    cfg: &Config,
    tenant: &str,
    number: &str,
    folder: &Path,
) -> Result<ExportReport, PrivacyError> {
    let recordings_folder = folder.join("recordings");
    std::fs::create_dir_all(&recordings_folder).map_err(at(&recordings_folder))?;
    let key = pseudonyms::current(store, &cfg.data_dir, tenant).await?;
    let calls = calls_of(store, tenant, number, &key).await?;
    let mut manifest_calls = Vec::new();
    let mut n_rec = 0;
    for c in &calls {
        let events = store.events(&c.call_id).await?;
        let mut timeline = crate::store::call_json(c, &events);
        // What the outbox still holds of the call (its webhook bodies).
        timeline["webhook_events"] = webhook_events_of(store, &c.call_id).await?;
        let tl_name = format!("call-{}.json", c.call_id);
        std::fs::write(folder.join(&tl_name), serde_json::to_vec_pretty(&timeline)?)?;
        let mut recs = Vec::new();
        for r in recordings_of(&cfg.data_dir, tenant, &c.call_id) {
            let name = r
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let dest = folder.join("recordings").join(&name);
            std::fs::copy(&r, &dest)?;
            recs.push(serde_json::json!({"file": format!("recordings/{name}"), "sha256": sha256_file(&dest)?}));
            n_rec += 1;
        }
        manifest_calls.push(serde_json::json!({
            "call_id": c.call_id,
            "timeline": tl_name,
            "timeline_sha256": sha256_file(&folder.join(&tl_name))?,
            "recordings": recs,
        }));
    }
    let manifest = serde_json::json!({
        "tenant": tenant,
        "number": number,
        "exported_at_ms": unix_ms(SystemTime::now()),
        "what": "every call from this number held by the tenant: CDR and timeline per call (call-*.json), and the call's recordings, still encrypted (decrypt with the tenant's key: dhwani recordings decrypt FILE --key KEY)",
        "calls": manifest_calls,
    });
    std::fs::write(
        folder.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    Ok(ExportReport {
        folder: folder.to_path_buf(),
        calls: calls.len(),
        recordings: n_rec,
    })
}

/// What the webhook outbox still holds of a call (its events' bodies).
async fn webhook_events_of(
    store: &Store,
    call_id: &str,
) -> Result<serde_json::Value, PrivacyError> {
    let outbox = store
        .webhook_rows(&crate::store::outbox::OutboxFilter {
            call_id: Some(call_id.to_owned()),
            limit: 10_000,
            ..Default::default()
        })
        .await?;
    Ok(outbox
        .iter()
        .map(|r| {
            serde_json::json!({
                "event_id": r.event_id, "webhook": r.hook, "type": r.kind, "state": r.state,
                "body": serde_json::from_str::<serde_json::Value>(&r.body).unwrap_or_default(),
            })
        })
        .collect())
}

/// Everything `tenant` holds about `number`, as one JSON document (the
/// admin API's export: no files are written): per call its CDR, timeline
/// and webhook events still in the outbox, and the ids of its recordings
/// (each readable, still encrypted or decrypted, through the recordings
/// paths).
pub async fn export_json(
    store: &Store,
    cfg: &Config,
    tenant: &str,
    number: &str,
) -> Result<serde_json::Value, PrivacyError> {
    let key = pseudonyms::current(store, &cfg.data_dir, tenant).await?;
    let calls = calls_of(store, tenant, number, &key).await?;
    let mut out = Vec::new();
    for c in &calls {
        let events = store.events(&c.call_id).await?;
        let mut v = crate::store::call_json(c, &events);
        v["webhook_events"] = webhook_events_of(store, &c.call_id).await?;
        v["recordings"] = recordings_of(&cfg.data_dir, tenant, &c.call_id)
            .iter()
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        out.push(v);
    }
    Ok(serde_json::json!({
        "tenant": tenant,
        "subject": key.pseudonym(number),
        "exported_at_ms": unix_ms(SystemTime::now()),
        "calls": out,
    }))
}

/// Every call of `tenant` from `number`: those still naming it and those
/// whose CDR names it by a pseudonym (after an erasure or the CDR
/// retention's pseudonymisation), oldest first.
async fn calls_of(
    store: &Store,
    tenant: &str,
    number: &str,
    key: &PseudonymKey,
) -> Result<Vec<CallRecord>, PrivacyError> {
    let mut calls = store.calls_from(tenant, number).await?;
    for p in key.all(number) {
        calls.extend(store.calls_from(tenant, &p).await?);
    }
    calls.sort_by(|a, b| (a.start_ms, &a.call_id).cmp(&(b.start_ms, &b.call_id)));
    calls.dedup_by(|a, b| a.call_id == b.call_id);
    Ok(calls)
}

/// The pseudonym a stored caller field stands for (itself once
/// pseudonymised).
fn pseudonym_of(key: &PseudonymKey, caller: &str) -> String {
    if caller.starts_with("anon-") {
        caller.to_owned()
    } else {
        key.pseudonym(caller)
    }
}

/// What an erasure did and kept.
#[derive(Debug, Default, Serialize)]
pub struct EraseReport {
    /// Calls whose data was erased.
    pub calls_erased: usize,
    /// Timeline events deleted.
    pub events_deleted: u64,
    /// Recordings crypto-shredded.
    pub recordings_shredded: usize,
    /// Calls whose data key (sealing the caller, timeline and webhook
    /// bodies) was destroyed.
    pub call_keys_shredded: usize,
    /// CDRs kept with the number pseudonymised.
    pub cdrs_pseudonymised: usize,
    /// Of those, CDRs that already named the number by a pseudonym (an
    /// earlier erasure, the CDR retention), found by it.
    pub already_pseudonymised: usize,
    /// Webhook events of the erased calls deleted from the outbox
    /// (delivered or not: none is sent after the erasure).
    pub webhook_events_deleted: u64,
    /// Calls kept whole under a legal hold: (call id, hold reason).
    pub held: Vec<(String, String)>,
    /// Whether the database's files keep no copy of what was deleted.
    pub scrub: crate::store::ScrubReport,
}

fn holds_for(
    holds: &[crate::store::HoldRow],
    tenant: &str,
    call: &CallRecord,
    key: &PseudonymKey,
) -> Option<String> {
    let item = Item {
        id: call.call_id.clone(),
        tenant: tenant.to_owned(),
        class: DataClass::Recording,
        created: 0,
        call_id: call.call_id.clone(),
        caller: Some(call.caller.clone()),
        pseudonym: Some(pseudonym_of(key, &call.caller)),
    };
    holds
        .iter()
        .find(|h| h.tenant == tenant && h.to_hold().covers(&item))
        .map(|h| format!("{} (hold {})", h.reason, h.hold_id))
}

/// Erases what `tenant` holds about `number` (see the module doc).
pub async fn erase(
    store: &Store,
    cfg: &Config,
    tenant: &str,
    number: &str,
) -> Result<EraseReport, PrivacyError> {
    let key = pseudonyms::current(store, &cfg.data_dir, tenant).await?;
    let pseudonym = key.pseudonym(number);
    let holds = store.holds().await?;
    let mut report = EraseReport::default();
    for c in calls_of(store, tenant, number, &key).await? {
        if let Some(why) = holds_for(&holds, tenant, &c, &key) {
            report.held.push((c.call_id.clone(), why));
            continue;
        }
        // The call's key first: whatever copy of its sealed fields the
        // database keeps after the deletions below can no longer be read.
        if store.shred_call_key(&c.call_id).await? {
            report.call_keys_shredded += 1;
        }
        for r in recordings_of(&cfg.data_dir, tenant, &c.call_id) {
            recordings::file::shred(&r).map_err(|source| PrivacyError::RecordingFile {
                path: r.clone(),
                source,
            })?;
            report.recordings_shredded += 1;
        }
        report.webhook_events_deleted += store.delete_webhooks_of(&c.call_id).await?;
        report.events_deleted += store.delete_events(&c.call_id).await?;
        store.pseudonymise_call(&c.call_id, &pseudonym).await?;
        report.cdrs_pseudonymised += 1;
        if c.caller != number {
            report.already_pseudonymised += 1;
        }
        report.calls_erased += 1;
    }
    // Reported to the tenant's webhooks by pseudonym, never the number.
    store
        .report_erasure(
            tenant,
            &pseudonym,
            serde_json::json!({
                "caller": pseudonym,
                "calls_erased": report.calls_erased,
                "recordings_shredded": report.recordings_shredded,
                "calls_held": report.held.len(),
            }),
        )
        .await?;
    report.scrub = store.scrub().await?;
    if !report.scrub.complete {
        tracing::warn!(note = %report.scrub.note, "erasure: the database may keep copies of the deleted rows");
    }
    Ok(report)
}

/// What a sweep did.
#[derive(Debug, Default, Serialize)]
pub struct SweepReport {
    /// Recordings crypto-shredded.
    pub recordings_deleted: usize,
    /// Timelines deleted.
    pub timelines_deleted: usize,
    /// CDRs deleted.
    pub cdrs_deleted: usize,
    /// CDRs whose number was pseudonymised.
    pub cdrs_pseudonymised: usize,
    /// After the last deletion: whether the database's files keep no
    /// copy of what was deleted (absent when nothing was deleted).
    pub scrub: Option<crate::store::ScrubReport>,
}

/// Applies every tenant's retention at `now` (holds respected); each
/// deletion is audited.
pub async fn sweep(
    store: &Store,
    cfg: &Config,
    now: SystemTime,
    actor: &str,
) -> Result<SweepReport, PrivacyError> {
    let audit = Audit::new(&cfg.data_dir);
    // The keys first: loading one turns its tenant's old holds on numbers
    // into pseudonyms.
    let mut keys = Vec::new();
    for t in &cfg.tenants {
        if crate::privacy::keys::load(&cfg.data_dir, &t.id).is_err() {
            continue; // no key: the server never ran for it, nothing stored
        }
        keys.push((t, pseudonyms::current(store, &cfg.data_dir, &t.id).await?));
    }
    let holds: Vec<_> = store.holds().await?;
    let hold_list: Vec<retention::Hold> = holds.iter().map(|h| h.to_hold()).collect();
    let mut report = SweepReport::default();
    for (t, key) in keys {
        let calls = store.tenant_calls(&t.id).await?;
        let mut items = Vec::new();
        for c in &calls {
            let created = (c.start_ms / 1000).max(0) as u64;
            let caller = (!c.caller.starts_with("anon-")).then(|| c.caller.clone());
            let pseudonym = Some(pseudonym_of(&key, &c.caller));
            for (prefix, class) in [("log", DataClass::InteractionLog), ("cdr", DataClass::Cdr)] {
                items.push(Item {
                    id: format!("{prefix}:{}", c.call_id),
                    tenant: t.id.clone(),
                    class,
                    created,
                    call_id: c.call_id.clone(),
                    caller: caller.clone(),
                    pseudonym: pseudonym.clone(),
                });
            }
            for r in recordings_of(&cfg.data_dir, &t.id, &c.call_id) {
                items.push(Item {
                    id: format!("rec:{}", r.display()),
                    tenant: t.id.clone(),
                    class: DataClass::Recording,
                    created,
                    call_id: c.call_id.clone(),
                    caller: caller.clone(),
                    pseudonym: pseudonym.clone(),
                });
            }
        }
        let policy = t.retention.policy();
        let decisions = retention::sweep(unix_secs(now), |_| policy, &hold_list, &items);
        let mut scrub = false;
        for d in decisions {
            match d {
                Decision::Delete(id) => {
                    if let Some(path) = id.strip_prefix("rec:") {
                        recordings::file::shred(Path::new(path)).map_err(|source| {
                            PrivacyError::RecordingFile {
                                path: path.into(),
                                source,
                            }
                        })?;
                        report.recordings_deleted += 1;
                    } else if let Some(call) = id.strip_prefix("log:") {
                        store.delete_events(call).await?;
                        report.timelines_deleted += 1;
                    } else if let Some(call) = id.strip_prefix("cdr:") {
                        store.delete_call(call).await?;
                        report.cdrs_deleted += 1;
                    }
                    audit.append(actor, "retention.delete", &format!("tenant {} {id}", t.id))?;
                    scrub = true;
                }
                Decision::Pseudonymise(id) => {
                    let call = id.trim_start_matches("cdr:");
                    if let Some(c) = calls.iter().find(|c| c.call_id == call) {
                        store
                            .pseudonymise_call(call, &key.pseudonym(&c.caller))
                            .await?;
                        report.cdrs_pseudonymised += 1;
                        audit.append(
                            actor,
                            "retention.pseudonymise",
                            &format!("tenant {} {id}", t.id),
                        )?;
                        scrub = true;
                    }
                }
            }
        }
        if scrub {
            let r = store.scrub().await?;
            if !r.complete {
                tracing::warn!(note = %r.note, "retention: the database may keep copies of the deleted rows");
            }
            report.scrub = Some(r);
        }
    }
    Ok(report)
}
