//! What can go wrong in the privacy services (keys, the audit log, export,
//! erasure, the sweeper): one enum, with the path or tenant it concerns.

use std::path::PathBuf;

/// A privacy operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivacyError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An I/O error without a path worth naming (a rename, a sync).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A key file or variable that does not hold a key.
    #[error("{what}: not a key (64 hex digits)")]
    NotAKey {
        /// The file or environment variable.
        what: String,
    },
    /// The tenant has no key file yet.
    #[error("tenant `{tenant}` has no key file at {path} (the server makes it at first start)")]
    NoKeyFile {
        /// The tenant.
        tenant: String,
        /// Where it should be.
        path: PathBuf,
    },
    /// The tenant's key comes from the environment: rotate it there.
    #[error(
        "tenant `{tenant}`'s key comes from {var}: rotate it there (archive the old key as {archive})"
    )]
    KeyFromEnvironment {
        /// The tenant.
        tenant: String,
        /// The variable.
        var: String,
        /// Where the old key goes.
        archive: PathBuf,
    },
    /// The pseudonym key file is not the one the store's pseudonyms use.
    #[error(
        "tenant `{tenant}`: the pseudonym key {path} (fingerprint {file}) is not the one the store's pseudonyms were made with ({store}); restore that key file (from a backup) before any privacy command or call recording"
    )]
    PseudonymKeyMismatch {
        /// The tenant.
        tenant: String,
        /// The key file.
        path: PathBuf,
        /// Its fingerprint.
        file: String,
        /// The store's.
        store: String,
    },
    /// A re-key left its new key file without committing.
    #[error(
        "{next} is from a re-key that did not commit (the store does not use it): if no other re-key is running, remove it and run the command again"
    )]
    RekeyInterrupted {
        /// The leftover file.
        next: PathBuf,
    },
    /// The audit anchor file is not `COUNT HASH`.
    #[error("{path}: malformed audit anchor")]
    BadAnchor {
        /// The anchor file.
        path: PathBuf,
    },
    /// A recording file could not be shredded or read.
    #[error("{path}: {source}")]
    RecordingFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: recordings::Error,
    },
    /// The recordings crate refused (the audit chain, a key wrap).
    #[error(transparent)]
    Recording(#[from] recordings::Error),
    /// The database.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Writing an export's JSON.
    #[error("export JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Maps an I/O error to [`PrivacyError::File`] for `path`.
pub fn at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> PrivacyError + '_ {
    move |source| PrivacyError::File {
        path: path.to_owned(),
        source,
    }
}
