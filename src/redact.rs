//! What the server's own log (stderr, the operator's journal) may say
//! about a caller. That log is beyond the privacy tools' reach (no export,
//! no erasure, the journal's retention, not ours), so by default it names a
//! caller's number only by the tenant's pseudonym (`anon-` + 32 hex, the
//! same one the consent registry and the audit log use, so one caller's
//! calls can still be followed) and never shows a key the caller pressed
//! (only that one arrived, and how). The interaction log in the store,
//! which the privacy tools do reach, keeps what the flow collected.
//!
//! `[log] personal_data = true` shows numbers and keys in clear, for
//! debugging; the server warns when it starts with it on.
//!
//! The log is process-wide, so this state is too: the switch is set once
//! when logging starts, and each tenant's pseudonym function when the
//! server loads its pseudonym key (at start and after a re-key). It sits
//! at the bottom of the layers (it holds functions, not keys' storage), so
//! the sans-IO cores may name callers in their log lines through it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

static CLEAR: AtomicBool = AtomicBool::new(false);
/// A tenant's number -> pseudonym function.
pub type Pseudonymise = Arc<dyn Fn(&str) -> String + Send + Sync>;

static KEYS: LazyLock<RwLock<HashMap<String, Pseudonymise>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// Turns clear numbers and keys in the log on or off.
pub fn set_clear(on: bool) {
    CLEAR.store(on, Ordering::Relaxed);
}

/// True when the log shows personal data in clear.
pub fn clear() -> bool {
    CLEAR.load(Ordering::Relaxed)
}

/// How the log names a tenant's callers (its pseudonym key's
/// `pseudonym`).
pub fn set_key(tenant: &str, f: Pseudonymise) {
    if let Ok(mut m) = KEYS.write() {
        m.insert(tenant.to_owned(), f);
    }
}

/// A caller's number as the log may show it: its pseudonym (or
/// `anon-unknown` when the tenant's key is not loaded), or the number
/// itself with `personal_data` on.
pub fn number(tenant: &str, n: &str) -> String {
    if clear() {
        return n.to_owned();
    }
    KEYS.read()
        .ok()
        .and_then(|m| m.get(tenant).map(|f| f(n)))
        .unwrap_or_else(|| "anon-unknown".to_owned())
}

/// A caller's pseudonym at `tenant` (whatever the log shows), when the
/// tenant's key is loaded.
pub fn pseudonym(tenant: &str, n: &str) -> Option<String> {
    KEYS.read().ok().and_then(|m| m.get(tenant).map(|f| f(n)))
}

/// A key the caller pressed as the log may show it: `hidden`, or the key
/// with `personal_data` on.
pub fn key(k: char) -> String {
    if clear() {
        k.to_string()
    } else {
        "hidden".to_owned()
    }
}
