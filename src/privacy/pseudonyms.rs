//! Pseudonyms of caller numbers: where a number may not be kept (the
//! consent-withdrawal registry, legal holds, CDRs past the interaction-log
//! period, the audit log) it is named by a keyed pseudonym,
//! `anon-` + 32 hex digits of an HMAC-SHA256.
//!
//! Each tenant has a **pseudonym key of its own**, the file
//! `DATA_DIR/keys/TENANT.pseudonym` (mode 0600), independent of the
//! recording key: `dhwani keys rotate` never touches it, so a withdrawal,
//! a hold or an erasure still finds the caller after any number of
//! recording-key rotations.
//!
//! The file holds `base` lines and `layer` lines (64 hex digits each):
//! the pseudonym of a number under a base is HMAC(base, number), then
//! HMAC(layer, ...) for each layer in order. The first base is the one new
//! pseudonyms use. Further bases exist only for data from before this key
//! existed (see *migration*); lookups try each base.
//!
//! **Re-keying** (`dhwani privacy rekey-pseudonyms`) adds a layer: every
//! stored pseudonym `p` of the tenant becomes HMAC(new layer, p), in one
//! database transaction that also records the new key's fingerprint in
//! `pseudonym_keys`. A pseudonym cannot be turned back into its number, so
//! a layer is the only way to re-key without the numbers; someone holding
//! the old file can no longer test a number against the re-keyed data.
//! The new file is written as `TENANT.pseudonym.next` first and renamed
//! after the commit; whoever loads the key next and finds the store's
//! fingerprint on the `.next` file finishes the rename (a re-key killed
//! between its commit and its rename loses nothing).
//!
//! **Migration.** Before this file existed, pseudonyms were derived from
//! the recording key. The first load of a tenant whose recording key
//! already existed writes the file with that derivation as its first base,
//! and one more base per archived recording key (`keys/TENANT/*.kek`), so
//! data pseudonymised before and between earlier rotations still matches.
//! A tenant whose recording key is created at the same start gets a random
//! base.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{PrivacyError, at};
use super::keys::TenantKey;
use crate::store::Store;

/// A tenant's pseudonym key.
#[derive(Clone)]
pub struct PseudonymKey {
    bases: Vec<[u8; 32]>,
    layers: Vec<[u8; 32]>,
}

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PseudonymKey({})", self.fingerprint())
    }
}

impl PseudonymKey {
    fn layered(&self, mut p: String) -> String {
        for l in &self.layers {
            p = recordings::retention::pseudonym(l, &p);
        }
        p
    }

    /// The pseudonym of `number` (what new entries store).
    pub fn pseudonym(&self, number: &str) -> String {
        self.layered(recordings::retention::pseudonym(&self.bases[0], number))
    }

    /// Every pseudonym `number` may be stored under (the current one
    /// first, then one per migrated base).
    pub fn all(&self, number: &str) -> Vec<String> {
        self.bases
            .iter()
            .map(|b| self.layered(recordings::retention::pseudonym(b, number)))
            .collect()
    }

    /// Names the key without revealing it (16 hex digits of a SHA-256 over
    /// every base and layer).
    pub fn fingerprint(&self) -> String {
        let mut h = <sha2::Sha256 as sha2::Digest>::new();
        sha2::Digest::update(&mut h, b"dhwani pseudonym key\0");
        for b in &self.bases {
            sha2::Digest::update(&mut h, b"b");
            sha2::Digest::update(&mut h, b);
        }
        for l in &self.layers {
            sha2::Digest::update(&mut h, b"l");
            sha2::Digest::update(&mut h, l);
        }
        hex::encode(&sha2::Digest::finalize(h)[..8])
    }

    /// This key with one more layer.
    pub fn with_layer(&self, layer: [u8; 32]) -> PseudonymKey {
        let mut k = self.clone();
        k.layers.push(layer);
        k
    }

    /// Re-keys one stored pseudonym with the last layer (for the re-key
    /// transaction; `p` was made by the key without that layer).
    pub fn relayer(&self, p: &str) -> String {
        match self.layers.last() {
            Some(l) => recordings::retention::pseudonym(l, p),
            None => p.to_owned(),
        }
    }

    fn text(&self, tenant: &str) -> String {
        let mut s = format!(
            "# Dhwani pseudonym key of tenant `{tenant}`: keep it secret and keep it.\n\
             # `dhwani keys rotate` never changes it; `dhwani privacy rekey-pseudonyms` adds a layer.\n"
        );
        for b in &self.bases {
            s.push_str(&format!("base {}\n", hex::encode(b)));
        }
        for l in &self.layers {
            s.push_str(&format!("layer {}\n", hex::encode(l)));
        }
        s
    }

    fn parse(text: &str, what: &Path) -> Result<PseudonymKey, PrivacyError> {
        let bad = || PrivacyError::NotAKey {
            what: what.display().to_string(),
        };
        let (mut bases, mut layers) = (Vec::new(), Vec::new());
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (kind, hexkey) = line.split_once(' ').ok_or_else(bad)?;
            let key = hex::decode(hexkey.trim())
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or_else(bad)?;
            match kind {
                "base" => bases.push(key),
                "layer" => layers.push(key),
                _ => return Err(bad()),
            }
        }
        if bases.is_empty() {
            return Err(bad());
        }
        Ok(PseudonymKey { bases, layers })
    }
}

/// The pseudonym key file of a tenant: the configured
/// `pseudonym_key_file`, else `DATA_DIR/keys/TENANT.pseudonym`.
pub fn key_path(data_dir: &Path, tenant: &str) -> PathBuf {
    super::keys::configured(tenant)
        .pseudonym
        .unwrap_or_else(|| data_dir.join("keys").join(format!("{tenant}.pseudonym")))
}

fn next_path(data_dir: &Path, tenant: &str) -> PathBuf {
    let mut p = key_path(data_dir, tenant).into_os_string();
    p.push(".next");
    PathBuf::from(p)
}

/// Writes `text` to `path` through a temporary file (mode 0600), replacing
/// it; with `new_only`, fails when `path` exists.
fn write_secret(path: &Path, text: &str, new_only: bool) -> Result<(), PrivacyError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(at(dir))?;
    }
    let tmp = path.with_extension(format!("tmp{}", rand::random::<u32>()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(at(&tmp))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    let placed = if new_only {
        // A hard link fails when the name exists: no second writer wins.
        std::fs::hard_link(&tmp, path).map_err(at(path))
    } else {
        std::fs::rename(&tmp, path).map_err(at(path))
    };
    let _ = std::fs::remove_file(&tmp);
    placed
}

fn read(path: &Path) -> Result<Option<PseudonymKey>, PrivacyError> {
    match std::fs::read_to_string(path) {
        Ok(t) => PseudonymKey::parse(&t, path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(at(path)(e)),
    }
}

/// The tenant's pseudonym key file, made when missing (see the module doc
/// for what a first one holds): `kek` is the tenant's recording key and
/// `kek_is_new` says it was created at this start (then no data can have
/// been pseudonymised under it, and the base is random).
pub fn ensure(
    data_dir: &Path,
    tenant: &str,
    kek: &TenantKey,
    kek_is_new: bool,
) -> Result<PseudonymKey, PrivacyError> {
    let path = key_path(data_dir, tenant);
    if let Some(k) = read(&path)? {
        return Ok(k);
    }
    let bases = if kek_is_new {
        vec![rand::random::<[u8; 32]>()]
    } else {
        let mut bases = vec![super::keys::legacy_pseudonym_base(kek)];
        let archive = super::keys::archive_dir(data_dir, tenant);
        let mut archived: Vec<PathBuf> = std::fs::read_dir(&archive)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        archived.sort();
        for p in archived {
            if p.extension().is_some_and(|e| e == "kek")
                && let Some(k) = super::keys::read_archived(&p, tenant)
            {
                let b = super::keys::legacy_pseudonym_base(&k);
                if !bases.contains(&b) {
                    bases.push(b);
                }
            }
        }
        bases
    };
    let key = PseudonymKey {
        bases,
        layers: Vec::new(),
    };
    match write_secret(&path, &key.text(tenant), true) {
        Ok(()) => {
            tracing::info!(tenant, file = %path.display(), bases = key.bases.len(), "created the tenant's pseudonym key");
            Ok(key)
        }
        // Another process made it first: use theirs.
        Err(_) if path.exists() => read(&path)?.ok_or(PrivacyError::NotAKey {
            what: path.display().to_string(),
        }),
        Err(e) => Err(e),
    }
}

/// The tenant's pseudonym key as the store knows it: when a re-key
/// committed but its file was not renamed yet, the rename is finished
/// here; a key file that does not match the store's fingerprint is an
/// error (never a silent mismatch that would miss withdrawals). Also turns
/// any legal hold on a number still stored in clear (from before holds
/// were pseudonymised) into pseudonyms.
pub async fn current(
    store: &Store,
    data_dir: &Path,
    tenant: &str,
) -> Result<PseudonymKey, PrivacyError> {
    let path = key_path(data_dir, tenant);
    let key = match read(&path)? {
        Some(k) => k,
        None => {
            let kek = super::keys::load(data_dir, tenant)?;
            ensure(data_dir, tenant, &kek, false)?
        }
    };
    let key = match store.pseudonym_fingerprint(tenant).await? {
        Some(fp) if fp != key.fingerprint() => {
            let next = next_path(data_dir, tenant);
            match read(&next)? {
                Some(n) if n.fingerprint() == fp => {
                    std::fs::rename(&next, &path).map_err(at(&path))?;
                    n
                }
                _ => {
                    return Err(PrivacyError::PseudonymKeyMismatch {
                        tenant: tenant.to_owned(),
                        path,
                        file: key.fingerprint(),
                        store: fp,
                    });
                }
            }
        }
        _ => key,
    };
    for h in store.holds().await? {
        if h.tenant == tenant && h.scope == "number" && !h.target.starts_with("anon-") {
            store
                .set_hold_target(&h.hold_id, &key.all(&h.target).join(","))
                .await?;
        }
    }
    Ok(key)
}

/// What a re-key changed.
#[derive(Debug, Default, serde::Serialize)]
pub struct RekeyReport {
    /// The key's fingerprint before.
    pub from: String,
    /// And after.
    pub to: String,
    /// Consent withdrawals re-keyed.
    pub withdrawals: u64,
    /// Holds on numbers re-keyed.
    pub holds: u64,
    /// Pseudonymised CDRs re-keyed.
    pub cdrs: u64,
}

/// Re-keys the tenant's pseudonyms (see the module doc).
pub async fn rekey(
    store: &Store,
    data_dir: &Path,
    tenant: &str,
) -> Result<RekeyReport, PrivacyError> {
    let next = next_path(data_dir, tenant);
    if next.exists() {
        // `current` below finishes a committed one; anything else is an
        // interrupted re-key whose transaction never committed.
        let _ = current(store, data_dir, tenant).await?;
        if next.exists() {
            return Err(PrivacyError::RekeyInterrupted { next });
        }
    }
    let old = current(store, data_dir, tenant).await?;
    let new = old.with_layer(rand::random());
    write_secret(&next, &new.text(tenant), true)?;
    let counts = store
        .rekey_pseudonyms(tenant, &new.fingerprint(), |p| new.relayer(p))
        .await;
    let (withdrawals, holds, cdrs) = match counts {
        Ok(c) => c,
        Err(e) => {
            // Remove the new file only when the store surely does not use
            // it (a lost commit answer may hide a commit).
            if let Ok(fp) = store.pseudonym_fingerprint(tenant).await
                && fp.as_deref() != Some(new.fingerprint().as_str())
            {
                let _ = std::fs::remove_file(&next);
            }
            return Err(e.into());
        }
    };
    std::fs::rename(&next, key_path(data_dir, tenant)).map_err(at(&next))?;
    Ok(RekeyReport {
        from: old.fingerprint(),
        to: new.fingerprint(),
        withdrawals,
        holds,
        cdrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(bases: usize, layers: usize) -> PseudonymKey {
        PseudonymKey {
            bases: (0..bases).map(|i| [i as u8 + 1; 32]).collect(),
            layers: (0..layers).map(|i| [i as u8 + 100; 32]).collect(),
        }
    }

    #[test]
    fn a_layer_maps_every_stored_pseudonym_to_the_new_keys_pseudonym() {
        let old = key(2, 0);
        let new = old.with_layer([9; 32]);
        for n in ["+919800000001", "+919800000002"] {
            let stored = old.all(n);
            let relayered: Vec<String> = stored.iter().map(|p| new.relayer(p)).collect();
            assert_eq!(relayered, new.all(n), "{n}");
            assert_ne!(new.pseudonym(n), old.pseudonym(n));
            assert!(!new.pseudonym(n).contains("9800000001"));
        }
        assert_ne!(old.fingerprint(), new.fingerprint());
    }

    #[test]
    fn the_key_file_reads_back_what_was_written_and_refuses_garbage() {
        let k = key(2, 3);
        let p = Path::new("k.pseudonym");
        let back = PseudonymKey::parse(&k.text("demo"), p).unwrap();
        assert_eq!(back.fingerprint(), k.fingerprint());
        assert_eq!(back.all("+911"), k.all("+911"));
        for bad in [
            "",
            "layer 00",
            "# only a comment\n",
            "base zz",
            "salt 0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert!(PseudonymKey::parse(bad, p).is_err(), "{bad:?}");
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Data pseudonymised under the recording key (before this module)
    /// still matches after the migration, also what was pseudonymised
    /// under a key rotated away since; a later rotation changes nothing.
    #[test]
    fn the_first_key_carries_the_pseudonyms_of_the_recording_keys_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let n = "+919800000001";
        let first = super::super::keys::load_or_create(d, "demo").unwrap();
        let legacy = |k: &TenantKey| {
            recordings::retention::pseudonym(&super::super::keys::legacy_pseudonym_base(k), n)
        };
        let under_first = legacy(&first);
        super::super::keys::rotate(d, "demo").unwrap();
        let second = super::super::keys::load(d, "demo").unwrap();
        let under_second = legacy(&second);
        assert_ne!(
            under_first, under_second,
            "the old derivation broke on rotation"
        );
        let k = ensure(d, "demo", &second, false).unwrap();
        assert_eq!(k.pseudonym(n), under_second);
        assert_eq!(k.all(n), vec![under_second.clone(), under_first.clone()]);
        super::super::keys::rotate(d, "demo").unwrap();
        let third = super::super::keys::load(d, "demo").unwrap();
        let again = ensure(d, "demo", &third, false).unwrap();
        assert_eq!(again.fingerprint(), k.fingerprint(), "made once, kept");
        // A new tenant's key is random, not derived.
        let fresh = super::super::keys::load_or_create(d, "new").unwrap();
        let k = ensure(d, "new", &fresh, true).unwrap();
        assert_ne!(k.pseudonym(n), legacy(&fresh));
        assert_eq!(k.all(n).len(), 1);
    }

    /// The store and the key file stay in step: old holds in clear become
    /// pseudonyms, a re-key killed between its commit and its rename is
    /// finished by the next load, and a key file that is not the store's is
    /// refused rather than used.
    #[test]
    fn the_store_and_the_key_file_cannot_drift_apart() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let n = "+919800000002";
        block_on(async {
            let store = crate::privacy::open_store("", d).await.unwrap();
            let kek = super::super::keys::load_or_create(d, "demo").unwrap();
            let k = ensure(d, "demo", &kek, true).unwrap();
            store
                .withdraw_consent("demo", &k.pseudonym(n), 1)
                .await
                .unwrap();
            store
                .place_hold(&crate::store::HoldRow {
                    hold_id: "hold-1".into(),
                    tenant: "demo".into(),
                    scope: "number".into(),
                    target: n.into(),
                    reason: "an order from before holds were pseudonymised".into(),
                    placed_ms: 1,
                })
                .await
                .unwrap();
            let k = current(&store, d, "demo").await.unwrap();
            let holds = store.holds().await.unwrap();
            assert_eq!(holds[0].target, k.all(n).join(","));
            assert!(!holds[0].target.contains("9800000002"));

            // A re-key that committed but died before its rename.
            let new = k.with_layer([7; 32]);
            write_secret(&next_path(d, "demo"), &new.text("demo"), true).unwrap();
            let counts = store
                .rekey_pseudonyms("demo", &new.fingerprint(), |p| new.relayer(p))
                .await
                .unwrap();
            assert_eq!(counts, (1, 1, 0));
            let loaded = current(&store, d, "demo").await.unwrap();
            assert_eq!(loaded.fingerprint(), new.fingerprint());
            assert!(!next_path(d, "demo").exists());
            assert!(
                store
                    .consent_withdrawn("demo", &loaded.pseudonym(n))
                    .await
                    .unwrap()
            );
            assert!(
                !store
                    .consent_withdrawn("demo", &k.pseudonym(n))
                    .await
                    .unwrap()
            );
            assert_eq!(
                store.holds().await.unwrap()[0].target,
                loaded.all(n).join(",")
            );

            // A full re-key, then the old file restored by mistake.
            let r = rekey(&store, d, "demo").await.unwrap();
            assert_eq!((r.withdrawals, r.holds), (1, 1));
            let good = std::fs::read_to_string(key_path(d, "demo")).unwrap();
            std::fs::write(key_path(d, "demo"), loaded.text("demo")).unwrap();
            let err = current(&store, d, "demo").await.unwrap_err();
            assert!(
                matches!(err, PrivacyError::PseudonymKeyMismatch { .. }),
                "{err}"
            );
            std::fs::write(key_path(d, "demo"), &good).unwrap();
            assert_eq!(
                current(&store, d, "demo").await.unwrap().fingerprint(),
                r.to
            );
            // A leftover `.next` the store never used blocks a re-key and
            // is left for the operator; the key stays.
            std::fs::write(next_path(d, "demo"), new.with_layer([8; 32]).text("demo")).unwrap();
            let err = rekey(&store, d, "demo").await.unwrap_err();
            assert!(
                matches!(err, PrivacyError::RekeyInterrupted { .. }),
                "{err}"
            );
            assert!(next_path(d, "demo").exists());
            assert_eq!(std::fs::read_to_string(key_path(d, "demo")).unwrap(), good);
        });
    }
}
