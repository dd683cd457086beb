//! Tenant keys for recordings, and opening a new encrypted recording file.
//!
//! Each tenant's key-encryption key (KEK) lives outside the database: in
//! the environment variable `DHWANI_KEK_TENANT` when set, else in the file
//! `DATA_DIR/keys/TENANT.kek` (64 hex digits, mode 0600). When
//! the file is missing at startup a random key is generated into it and
//! logged as a demo key, so the embedded default records (and
//! `dhwani recordings decrypt --kek` reads back) with no setup. Production
//! deployments put their own key there (or mount it).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, RwLock};
use std::time::{Duration, Instant};

use recordings::file::FileRecorder;

use super::error::{PrivacyError, at};
use recordings::header::{Header, KeyMode};
use recordings::keys::{Key, wrap_kek};

/// One tenant's key.
#[derive(Debug, Clone)]
pub struct TenantKey {
    /// Key id written into each recording's header.
    pub key_id: String,
    kek: Key,
    /// Write-only tenants: recordings are wrapped to this X25519 public
    /// key instead (the KEK then only keys pseudonyms).
    pub public: Option<[u8; 32]>,
}

/// The secret pseudonyms were derived with before tenants had a
/// pseudonym key of their own (`super::pseudonyms`): only to migrate data
/// pseudonymised back then.
pub(crate) fn legacy_pseudonym_base(key: &TenantKey) -> [u8; 32] {
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    sha2::Digest::update(&mut h, b"dhwani pseudonym v1\0");
    sha2::Digest::update(&mut h, key.kek.0);
    sha2::Digest::finalize(h).into()
}

/// An archived key file, when it holds a key.
pub(crate) fn read_archived(path: &Path, tenant: &str) -> Option<TenantKey> {
    parse_key_file(path, tenant).ok()
}

/// Loads an existing tenant key (the CLI never makes one).
pub fn load(data_dir: &Path, tenant: &str) -> Result<TenantKey, PrivacyError> {
    if let Some(k) = from_env(tenant)? {
        return Ok(k);
    }
    let path = key_path(data_dir, tenant);
    if !path.exists() {
        return Err(PrivacyError::NoKeyFile {
            tenant: tenant.to_owned(),
            path,
        });
    }
    load_or_create(data_dir, tenant)
}

/// The environment variable that may hold a tenant's key instead of its
/// key file: `DHWANI_KEK_` and the tenant id in capitals, `-` as `_`.
pub fn env_var(tenant: &str) -> String {
    format!(
        "DHWANI_KEK_{}",
        tenant.to_ascii_uppercase().replace('-', "_")
    )
}

/// The key from the environment, when set (64 hex digits).
fn from_env(tenant: &str) -> Result<Option<TenantKey>, PrivacyError> {
    let var = env_var(tenant);
    let Ok(text) = std::env::var(&var) else {
        return Ok(None);
    };
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| PrivacyError::NotAKey { what: var.clone() })?;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(bytes);
    Ok(Some(TenantKey {
        key_id: format!("{tenant}-{}", hex::encode(&digest[..4])),
        kek: Key(bytes),
        public: None,
    }))
}

/// Key files the config names per tenant (`recording_key_file`,
/// `pseudonym_key_file`), as absolute paths. The config is the process's,
/// read once at start ([`configure`]); without an entry a key lives in
/// the data directory.
static CONFIGURED: LazyLock<RwLock<HashMap<String, KeyFiles>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// Where the config puts a tenant's key files.
#[derive(Debug, Clone, Default)]
pub struct KeyFiles {
    /// The recording key.
    pub recording: Option<PathBuf>,
    /// The pseudonym key.
    pub pseudonym: Option<PathBuf>,
}

/// Takes the key file paths from the config (relative ones from
/// `config_dir`).
pub fn configure(cfg: &crate::config::Config, config_dir: &Path) {
    let abs = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            config_dir.join(p)
        }
    };
    if let Ok(mut m) = CONFIGURED.write() {
        m.clear();
        for t in &cfg.tenants {
            m.insert(
                t.id.clone(),
                KeyFiles {
                    recording: t.recording_key_file.as_ref().map(abs),
                    pseudonym: t.pseudonym_key_file.as_ref().map(abs),
                },
            );
        }
    }
}

/// The key files the config names for `tenant`.
pub fn configured(tenant: &str) -> KeyFiles {
    CONFIGURED
        .read()
        .ok()
        .and_then(|m| m.get(tenant).cloned())
        .unwrap_or_default()
}

/// The key file of a tenant: the configured one, else
/// `DATA_DIR/keys/TENANT.kek`.
pub fn key_path(data_dir: &Path, tenant: &str) -> PathBuf {
    configured(tenant)
        .recording
        .unwrap_or_else(|| data_dir.join("keys").join(format!("{tenant}.kek")))
}

/// The folder of a tenant's earlier keys: `TENANT/` beside its key file.
pub fn archive_dir(data_dir: &Path, tenant: &str) -> PathBuf {
    let key = key_path(data_dir, tenant);
    key.parent().unwrap_or(data_dir).join(tenant)
}

/// Where a tenant's earlier keys are kept after a rotation (until every
/// recording has been re-wrapped).
pub fn archive_path(data_dir: &Path, tenant: &str, key_id: &str) -> PathBuf {
    archive_dir(data_dir, tenant).join(format!("{key_id}.kek"))
}

fn write_key_file(path: &Path, key: &[u8; 32]) -> Result<(), PrivacyError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(at(dir))?;
    }
    let tmp = path.with_extension("kek.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(at(&tmp))?;
    writeln!(f, "{}", hex::encode(key))?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn parse_key_file(path: &Path, tenant: &str) -> Result<TenantKey, PrivacyError> {
    let text = std::fs::read_to_string(path).map_err(at(path))?;
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| PrivacyError::NotAKey {
            what: path.display().to_string(),
        })?;
    // The key id names the key without revealing it.
    let digest = <sha2::Sha256 as sha2::Digest>::digest(bytes);
    Ok(TenantKey {
        key_id: format!("{tenant}-{}", hex::encode(&digest[..4])),
        kek: Key(bytes),
        public: None,
    })
}

/// Rotates a tenant's key: the current one is archived under its id, a new
/// random key becomes current (new recordings use it). Returns (old id,
/// new id).
pub fn rotate(data_dir: &Path, tenant: &str) -> Result<(String, String), PrivacyError> {
    let var = env_var(tenant);
    if std::env::var_os(&var).is_some() {
        return Err(PrivacyError::KeyFromEnvironment {
            tenant: tenant.to_owned(),
            var,
            archive: archive_path(data_dir, tenant, "OLD_KEY_ID"),
        });
    }
    let old = load(data_dir, tenant)?;
    write_key_file(&archive_path(data_dir, tenant, &old.key_id), &old.kek.0)?;
    let new: [u8; 32] = rand::random();
    write_key_file(&key_path(data_dir, tenant), &new)?;
    let new = load(data_dir, tenant)?;
    Ok((old.key_id, new.key_id))
}

/// The key with `key_id` of a tenant: the current one or an archived one.
pub fn find(data_dir: &Path, tenant: &str, key_id: &str) -> Option<TenantKey> {
    if let Ok(k) = load(data_dir, tenant)
        && k.key_id == key_id
    {
        return Some(k);
    }
    let p = archive_path(data_dir, tenant, key_id);
    parse_key_file(&p, tenant)
        .ok()
        .filter(|k| k.key_id == key_id)
}

/// The key-encryption key itself (for re-wrapping).
impl TenantKey {
    /// The key.
    pub fn kek(&self) -> &Key {
        &self.kek
    }

    /// The same key, writing recordings to `public` when given.
    pub fn with_public(mut self, public: Option<[u8; 32]>) -> TenantKey {
        self.public = public;
        self
    }
}

/// Loads (or, when missing, generates) a tenant's KEK.
pub fn load_or_create(data_dir: &Path, tenant: &str) -> Result<TenantKey, PrivacyError> {
    if let Some(k) = from_env(tenant)? {
        return Ok(k);
    }
    let path = key_path(data_dir, tenant);
    if !path.exists() {
        let dir = path.parent().unwrap_or(data_dir);
        std::fs::create_dir_all(dir).map_err(at(dir))?;
        let key: [u8; 32] = rand::random();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&path).map_err(at(&path))?;
        writeln!(f, "{}", hex::encode(key))?;
        f.sync_all()?;
        if configured(tenant).recording.is_some() {
            tracing::info!(tenant, file = %path.display(), "generated the tenant's recording key at its configured path");
        } else {
            tracing::warn!(tenant, file = %path.display(), "generated a DEMO recording key: replace it with your own key for real calls");
        }
        crate::privacy::Audit::new(data_dir).append(
            "server",
            "key.create",
            &format!("tenant {tenant} demo key"),
        )?;
    }
    parse_key_file(&path, tenant)
}

/// Why a recording could not be started or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    /// The tenant has no recording key loaded.
    #[error("tenant `{tenant}` has no recording key")]
    NoKey {
        /// The tenant.
        tenant: String,
    },
    /// The file or its folder could not be created.
    #[error("{path}: {source}")]
    Create {
        /// The path.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Wrapping the key or writing the stream failed.
    #[error(transparent)]
    Recording(#[from] recordings::Error),
    /// A write to a recording that is not open.
    #[error("recording {id} is not open")]
    NotOpen {
        /// The recording id.
        id: String,
    },
}

/// Starts an encrypted recording file at `path` (audio as (sample rate,
/// channels)).
pub fn create_recording(
    path: &Path,
    tenant: &str,
    key: &TenantKey,
    call_id: &str,
    (sample_rate, channels): (u32, u8),
    sync: Duration,
    now: Instant,
) -> Result<FileRecorder, RecordingError> {
    let mut rng = rand::rng();
    let data_key = Key::random(&mut rng);
    let (mode, key_id, wrapped) = match key.public {
        Some(public) => {
            let digest = <sha2::Sha256 as sha2::Digest>::digest(public);
            let id = format!("{tenant}-pub-{}", hex::encode(&digest[..4]));
            let w =
                recordings::keys::wrap_public(&public, &data_key, tenant, &id, call_id, &mut rng)?;
            (KeyMode::PublicKey, id, w)
        }
        None => {
            let w = wrap_kek(&key.kek, &data_key, tenant, &key.key_id, call_id, &mut rng)?;
            (KeyMode::Kek, key.key_id.clone(), w)
        }
    };
    let header = Header {
        key_mode: mode,
        tenant: tenant.to_owned(),
        key_id,
        wrapped_key: wrapped,
        sample_rate,
        channels,
        chunk_frames: sample_rate / 10,
        call_id: call_id.to_owned(),
        nonce_prefix: rand::random(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| RecordingError::Create {
            path: dir.to_owned(),
            source,
        })?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let file = opts.open(path).map_err(|source| RecordingError::Create {
        path: path.to_owned(),
        source,
    })?;
    Ok(FileRecorder::new(file, &header, &data_key, sync, now)?)
}

/// The environment variable that may hold the key sealing users' TOTP
/// secrets instead of its file (64 hex digits).
pub const MFA_KEY_VAR: &str = "DHWANI_MFA_KEY";

/// Where the key sealing users' TOTP secrets lives:
/// `DATA_DIR/keys/mfa.key` (no tenant key file has this name: those end
/// in `.kek` and `.pseudonym`).
pub fn mfa_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("mfa.key")
}

/// The key sealing users' TOTP secrets in the store: from
/// `DHWANI_MFA_KEY`, else its file, made (random, mode 0600) when missing
/// and `create` is set.
pub fn mfa_key(data_dir: &Path, create: bool) -> Result<Key, PrivacyError> {
    let parse = |text: &str, what: String| {
        hex::decode(text.trim())
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .map(Key)
            .ok_or(PrivacyError::NotAKey { what })
    };
    if let Ok(text) = std::env::var(MFA_KEY_VAR) {
        return parse(&text, MFA_KEY_VAR.to_owned());
    }
    let path = mfa_key_path(data_dir);
    if !path.exists() {
        if !create {
            return Err(PrivacyError::NoKeyFile {
                tenant: "(console users' MFA)".to_owned(),
                path,
            });
        }
        let key: [u8; 32] = rand::random();
        write_key_file(&path, &key)?;
        tracing::info!(file = %path.display(), "generated the key that seals users' TOTP secrets");
    }
    let text = std::fs::read_to_string(&path).map_err(at(&path))?;
    parse(&text, path.display().to_string())
}
