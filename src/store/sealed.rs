//! A call's personal fields sealed under the call's own data key
//! (crypto-shredding of rows, as recordings already are).
//!
//! What is sealed: the CDR's caller number, every timeline event's detail
//! (the digits, values and `log` fields a flow collected, consent answers,
//! numbers), and the body of every webhook event about the call. Each call
//! gets a random 256-bit data key when its first row is written; the key
//! is kept in `call_keys`, wrapped (ChaCha20-Poly1305) by the tenant's
//! recording key (`privacy::keys`, outside the database), with that key's
//! id. A sealed value is `s1:` and hex of nonce (12) || ciphertext || tag,
//! bound to the call and the field. Erasure deletes the call's key first
//! (then its rows): a copy of the rows the database keeps after that (a
//! PostgreSQL dead tuple, its WAL, a backup) holds only ciphertext that no
//! key opens any more. `docs/privacy.md` says what that does and does not
//! guarantee.
//!
//! Lookups by number use `calls.caller_ref`, the caller's pseudonym under
//! the tenant's pseudonym key (the same one the consent registry uses),
//! never the number.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use recordings::keys::Key;
use sqlx::Row;

use super::{Store, StoreError};

/// What a sealed value starts with.
pub const PREFIX: &str = "s1:";

/// Data keys kept in memory at most (the calls in progress and the
/// recently read); more, and the cache starts again empty.
const CACHED_KEYS: usize = 8192;

/// True when `s` is a sealed value.
pub fn is_sealed(s: &str) -> bool {
    s.starts_with(PREFIX)
}

fn aad(call_id: &str, field: &str) -> Vec<u8> {
    let mut a = b"dhwani call field v1\0".to_vec();
    for part in [call_id, field] {
        a.extend_from_slice(&(part.len() as u32).to_be_bytes());
        a.extend_from_slice(part.as_bytes());
    }
    a
}

/// Seals `plain`, the `field` of `call_id`, under the call's key.
pub fn seal(key: &Key, call_id: &str, field: &str, plain: &str) -> String {
    let nonce: [u8; 12] = rand::random();
    let aad = aad(call_id, field);
    let ct = ChaCha20Poly1305::new(&key.0.into())
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plain.as_bytes(),
                aad: &aad,
            },
        )
        // Encryption fails only for inputs over 256 GiB.
        .unwrap_or_default();
    let mut out = String::with_capacity(PREFIX.len() + 2 * (12 + ct.len()));
    out.push_str(PREFIX);
    out.push_str(&hex::encode(nonce));
    out.push_str(&hex::encode(ct));
    out
}

/// Opens a sealed value; `None` when it does not open with `key` (a wrong
/// key, another call's or field's value, damage). A value that is not
/// sealed is returned as it is (rows from before sealing, pseudonyms).
pub fn open(key: &Key, call_id: &str, field: &str, text: &str) -> Option<String> {
    let Some(hexed) = text.strip_prefix(PREFIX) else {
        return Some(text.to_owned());
    };
    let bytes = hex::decode(hexed).ok()?;
    let (nonce, ct) = bytes.split_at_checked(12)?;
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    let aad = aad(call_id, field);
    let pt = ChaCha20Poly1305::new(&key.0.into())
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: &aad })
        .ok()?;
    String::from_utf8(pt).ok()
}

/// What a sealed value reads as when the call's key is gone or not here.
pub const UNREADABLE: &str = "(sealed: the call's key is not available)";

fn wrap_aad(tenant: &str, kek_id: &str, call_id: &str) -> Vec<u8> {
    let mut a = b"dhwani call key v1\0".to_vec();
    for part in [tenant, kek_id, call_id] {
        a.extend_from_slice(&(part.len() as u32).to_be_bytes());
        a.extend_from_slice(part.as_bytes());
    }
    a
}

fn wrap(kek: &Key, tenant: &str, kek_id: &str, call_id: &str, dek: &Key) -> String {
    let nonce: [u8; 12] = rand::random();
    let aad = wrap_aad(tenant, kek_id, call_id);
    let ct = ChaCha20Poly1305::new(&kek.0.into())
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &dek.0,
                aad: &aad,
            },
        )
        .unwrap_or_default();
    format!("{}{}", hex::encode(nonce), hex::encode(ct))
}

fn unwrap(kek: &Key, tenant: &str, kek_id: &str, call_id: &str, wrapped: &str) -> Option<Key> {
    let bytes = hex::decode(wrapped).ok()?;
    let (nonce, ct) = bytes.split_at_checked(12)?;
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    let aad = wrap_aad(tenant, kek_id, call_id);
    let pt = ChaCha20Poly1305::new(&kek.0.into())
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: &aad })
        .ok()?;
    Some(Key(pt.as_slice().try_into().ok()?))
}

/// A new call key to store with the batch that first writes the call.
pub(super) struct NewKey {
    pub call_id: String,
    pub tenant: String,
    pub kek_id: String,
    pub wrapped: String,
}

/// The keys of the calls a batch writes, and the keys to add.
#[derive(Default)]
pub(super) struct BatchKeys {
    pub keys: HashMap<String, Key>,
    pub new: Vec<NewKey>,
    /// Each caller's pseudonym, by call.
    pub refs: HashMap<String, Option<String>>,
}

/// The store's data keys in memory, by call. The tenant's key that wraps
/// a new one is read from its file (or the environment) each time, so a
/// `keys rotate` holds for the next call and `keys rewrap` never misses a
/// call key wrapped a moment before.
pub(super) struct Sealer {
    data_dir: PathBuf,
    deks: Mutex<HashMap<String, Key>>,
    source: Option<Arc<dyn KeySource>>,
}

/// A boxed future (for [`KeySource::pseudonyms`]).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The tenant keys that sealing needs, from the layer that owns them:
/// the store sits below `crate::privacy` (its key files and pseudonym
/// keys) and cannot read them itself, so the privacy layer hands them in
/// with [`Store::with_key_source`] (`crate::privacy::open_store`). A store
/// opened without one stores and reads everything but sealed fields.
pub trait KeySource: Send + Sync {
    /// The tenant's current recording key, made when missing if
    /// `create`: its id and the key.
    fn current(&self, data_dir: &Path, tenant: &str, create: bool)
    -> Result<(String, Key), String>;
    /// A tenant key by its id (current or archived), if it is here.
    fn find(&self, data_dir: &Path, tenant: &str, key_id: &str) -> Option<Key>;
    /// The key sealing console users' TOTP secrets, made when missing if
    /// `create`.
    fn mfa_key(&self, data_dir: &Path, create: bool) -> Result<Key, String>;
    /// Every pseudonym `number` may be stored under at `tenant` (empty
    /// when the tenant has no pseudonym key here).
    fn pseudonyms<'a>(
        &'a self,
        store: &'a Store,
        data_dir: &'a Path,
        tenant: &'a str,
        number: &'a str,
    ) -> BoxFuture<'a, Vec<String>>;
}

const NO_SOURCE: &str =
    "this store was opened without the tenant keys (open it with privacy::open_store)";

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub(super) fn new(data_dir: PathBuf) -> Sealer {
        Sealer {
            data_dir,
            deks: Mutex::new(HashMap::new()),
            source: None,
        }
    }

    fn cached(&self, call_id: &str) -> Option<Key> {
        self.deks.lock().ok()?.get(call_id).cloned()
    }

    fn remember(&self, call_id: &str, key: &Key) {
        if let Ok(mut m) = self.deks.lock() {
            if m.len() >= CACHED_KEYS {
                m.clear();
            }
            m.insert(call_id.to_owned(), key.clone());
        }
    }

    fn forget(&self, call_id: &str) {
        if let Ok(mut m) = self.deks.lock() {
            m.remove(call_id);
        }
    }

    /// The tenant's current recording key (made when missing, as the
    /// server does at start): its id and the key.
    fn current_kek(&self, tenant: &str, create: bool) -> Result<(String, Key), StoreError> {
        let source = self
            .source
            .as_ref()
            .ok_or_else(|| StoreError::Keys(NO_SOURCE.into()))?;
        source
            .current(&self.data_dir, tenant, create)
            .map_err(StoreError::Keys)
    }

    /// The key sealing users' TOTP secrets.
    pub(super) fn mfa_key(&self, create: bool) -> Result<Key, StoreError> {
        let source = self
            .source
            .as_ref()
            .ok_or_else(|| StoreError::Keys(NO_SOURCE.into()))?;
        source
            .mfa_key(&self.data_dir, create)
            .map_err(StoreError::Keys)
    }

    fn find_kek(&self, tenant: &str, key_id: &str) -> Option<Key> {
        self.source.as_ref()?.find(&self.data_dir, tenant, key_id)
    }
}

impl Store {
    /// This store, sealing under the tenant keys `source` gives (see
    /// [`KeySource`]).
    pub fn with_key_source(mut self, source: Arc<dyn KeySource>) -> Store {
        let mut sealer = Sealer::new(self.sealer.data_dir.clone());
        sealer.source = Some(source);
        self.sealer = Arc::new(sealer);
        self
    }
}

impl Store {
    /// The data key of a call, from memory or the store (`None`: it has
    /// none, or it was shredded, or the tenant's key that wraps it is not
    /// on this machine).
    pub(super) async fn call_key(&self, call_id: &str) -> Result<Option<Key>, StoreError> {
        if let Some(k) = self.sealer.cached(call_id) {
            return Ok(Some(k));
        }
        let row = sqlx::query("SELECT tenant, kek_id, wrapped FROM call_keys WHERE call_id = $1")
            .bind(call_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (tenant, kek_id, wrapped): (String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let Some(kek) = self.sealer.find_kek(&tenant, &kek_id) else {
            tracing::warn!(%tenant, key_id = %kek_id, "a call's key is wrapped by a tenant key that is not here: its personal fields cannot be read");
            return Ok(None);
        };
        let key = unwrap(&kek, &tenant, &kek_id, call_id, &wrapped);
        if let Some(k) = &key {
            self.sealer.remember(call_id, k);
        }
        Ok(key)
    }

    /// Before a batch's transaction: the key of each call it writes (new
    /// ones made and wrapped, to be inserted with the batch) and each
    /// caller's pseudonym.
    pub(super) async fn batch_keys(
        &self,
        batch: &[super::writer::Record],
    ) -> Result<BatchKeys, StoreError> {
        use super::writer::Record;
        let mut out = BatchKeys::default();
        for r in batch {
            let (call_id, tenant) = match r {
                Record::Call(c) => {
                    if !out.refs.contains_key(&c.call_id) {
                        // The tenant's keys exist before its pseudonym is
                        // taken (a first pseudonym key derives from them).
                        self.sealer.current_kek(&c.tenant, true)?;
                        let r = if c.caller.starts_with("anon-") {
                            Some(c.caller.clone())
                        } else {
                            self.pseudonym_for_store(&c.tenant, &c.caller).await
                        };
                        out.refs.insert(c.call_id.clone(), r);
                    }
                    (&c.call_id, &c.tenant)
                }
                Record::Event(e) => (&e.call_id, &e.tenant),
                Record::Grievance(_) => continue,
            };
            if out.keys.contains_key(call_id) {
                continue;
            }
            if let Some(k) = self.call_key(call_id).await? {
                out.keys.insert(call_id.clone(), k);
                continue;
            }
            // An event read back from the store carries no tenant; the
            // call's row does.
            let tenant = if tenant.is_empty() {
                match sqlx::query("SELECT tenant FROM calls WHERE call_id = $1")
                    .bind(call_id)
                    .fetch_optional(&self.pool)
                    .await?
                {
                    Some(r) => r.try_get::<String, _>(0)?,
                    None => continue,
                }
            } else {
                tenant.clone()
            };
            let (kek_id, kek) = self.sealer.current_kek(&tenant, true)?;
            let dek = Key(rand::random());
            out.new.push(NewKey {
                call_id: call_id.clone(),
                wrapped: wrap(&kek, &tenant, &kek_id, call_id, &dek),
                tenant,
                kek_id,
            });
            out.keys.insert(call_id.clone(), dek);
        }
        Ok(out)
    }

    /// Once the batch committed, its new keys are the calls' keys.
    pub(super) fn keys_committed(&self, keys: &BatchKeys) {
        for n in &keys.new {
            if let Some(k) = keys.keys.get(&n.call_id) {
                self.sealer.remember(&n.call_id, k);
            }
        }
    }

    /// The caller's pseudonym as stored in `caller_ref`: the running
    /// server's function for the tenant, else the tenant's pseudonym key
    /// read here.
    async fn pseudonym_for_store(&self, tenant: &str, number: &str) -> Option<String> {
        if let Some(p) = crate::redact::pseudonym(tenant, number) {
            return Some(p);
        }
        self.pseudonyms_of(tenant, number).await.into_iter().next()
    }

    /// Every pseudonym `number` may be stored under at `tenant` (empty when
    /// the tenant has no pseudonym key here).
    pub async fn pseudonyms_of(&self, tenant: &str, number: &str) -> Vec<String> {
        match &self.sealer.source {
            Some(source) => {
                source
                    .pseudonyms(self, &self.sealer.data_dir, tenant, number)
                    .await
            }
            None => {
                tracing::debug!(tenant, "{NO_SOURCE}");
                Vec::new()
            }
        }
    }

    /// Opens a call's sealed caller.
    pub(super) async fn unseal_call(&self, c: &mut super::CallRecord) -> Result<(), StoreError> {
        if !is_sealed(&c.caller) {
            return Ok(());
        }
        let key = self.call_key(&c.call_id).await?;
        c.caller = key
            .and_then(|k| open(&k, &c.call_id, "caller", &c.caller))
            .unwrap_or_else(|| UNREADABLE.to_owned());
        Ok(())
    }

    /// Opens the sealed fields of calls read from the store.
    pub(super) async fn unseal_calls(
        &self,
        mut calls: Vec<super::CallRecord>,
    ) -> Result<Vec<super::CallRecord>, StoreError> {
        for c in &mut calls {
            self.unseal_call(c).await?;
        }
        Ok(calls)
    }

    /// Opens a sealed `field` of `call_id` read from the store.
    pub(super) async fn unseal_text(
        &self,
        call_id: &str,
        field: &str,
        text: String,
    ) -> Result<String, StoreError> {
        if !is_sealed(&text) {
            return Ok(text);
        }
        let key = self.call_key(call_id).await?;
        Ok(key
            .and_then(|k| open(&k, call_id, field, &text))
            .unwrap_or_else(|| {
                if field == "detail" || field == "body" {
                    serde_json::json!({ "sealed": UNREADABLE }).to_string()
                } else {
                    UNREADABLE.to_owned()
                }
            }))
    }

    /// Destroys a call's data key: its sealed fields, wherever a copy of
    /// them is, can no longer be opened. Done first by an erasure.
    pub async fn shred_call_key(&self, call_id: &str) -> Result<bool, StoreError> {
        self.sealer.forget(call_id);
        let r = sqlx::query("DELETE FROM call_keys WHERE call_id = $1")
            .bind(call_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Destroys a call's data key once nothing sealed under it is left (no
    /// timeline, no sealed caller, no webhook body): after the retention
    /// sweep deleted its timeline and pseudonymised its CDR.
    pub(super) async fn shred_key_if_unused(&self, call_id: &str) -> Result<(), StoreError> {
        let r = sqlx::query(
            "DELETE FROM call_keys WHERE call_id = $1
               AND NOT EXISTS (SELECT 1 FROM call_events WHERE call_id = $1)
               AND NOT EXISTS (SELECT 1 FROM calls WHERE call_id = $1 AND caller LIKE 's1:%')
               AND NOT EXISTS (SELECT 1 FROM webhook_outbox WHERE call_id = $1)",
        )
        .bind(call_id)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() > 0 {
            self.sealer.forget(call_id);
        }
        Ok(())
    }

    /// Seals what rows written before sealing hold in clear (callers,
    /// timeline details, webhook bodies of calls), call by call, each
    /// call in one transaction. Run by the server at start; returns the
    /// number of calls sealed.
    pub async fn seal_clear_rows(&self) -> Result<u64, StoreError> {
        let rows = sqlx::query(
            "SELECT call_id, tenant, caller FROM calls c
             WHERE (caller NOT LIKE 's1:%' AND caller NOT LIKE 'anon-%')
                OR EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.call_id AND e.detail NOT LIKE 's1:%')",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut sealed = 0;
        for r in &rows {
            let (call_id, tenant, caller): (String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let record = super::writer::Record::Event(super::Event {
                call_id: call_id.clone(),
                tenant: tenant.clone(),
                ..Default::default()
            });
            let keys = self.batch_keys(std::slice::from_ref(&record)).await?;
            let Some(key) = keys.keys.get(&call_id) else {
                continue;
            };
            let caller_ref = if is_sealed(&caller) || caller.starts_with("anon-") {
                None
            } else {
                self.pseudonym_for_store(&tenant, &caller).await
            };
            let events = sqlx::query(
                "SELECT seq, detail FROM call_events WHERE call_id = $1 AND detail NOT LIKE 's1:%'",
            )
            .bind(&call_id)
            .fetch_all(&self.pool)
            .await?;
            let mut tx = self.pool.begin().await?;
            self.insert_keys(&mut tx, &keys).await?;
            if !is_sealed(&caller) && !caller.starts_with("anon-") {
                sqlx::query("UPDATE calls SET caller = $1, caller_ref = $2 WHERE call_id = $3")
                    .bind(seal(key, &call_id, "caller", &caller))
                    .bind(caller_ref)
                    .bind(&call_id)
                    .execute(&mut *tx)
                    .await?;
            }
            for e in &events {
                let (seq, detail): (i64, String) = (e.try_get(0)?, e.try_get(1)?);
                sqlx::query("UPDATE call_events SET detail = $1 WHERE call_id = $2 AND seq = $3")
                    .bind(seal(key, &call_id, "detail", &detail))
                    .bind(&call_id)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
            }
            let bodies = sqlx::query(
                "SELECT event_id, hook, body FROM webhook_outbox WHERE call_id = $1 AND body NOT LIKE 's1:%'",
            )
            .bind(&call_id)
            .fetch_all(&mut *tx)
            .await?;
            for b in &bodies {
                let (id, hook, body): (String, String, String) =
                    (b.try_get(0)?, b.try_get(1)?, b.try_get(2)?);
                sqlx::query(
                    "UPDATE webhook_outbox SET body = $1 WHERE event_id = $2 AND hook = $3",
                )
                .bind(seal(key, &call_id, "body", &body))
                .bind(&id)
                .bind(&hook)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            self.keys_committed(&keys);
            sealed += 1;
        }
        Ok(sealed)
    }

    /// Re-wraps the tenant's call keys that an earlier tenant key wraps
    /// under its current key (`dhwani keys rewrap`, before the archived
    /// keys are destroyed), in one transaction. Returns (re-wrapped,
    /// failed: their tenant key is not here or does not open them).
    pub async fn rewrap_call_keys(&self, tenant: &str) -> Result<(u64, u64), StoreError> {
        let (current_id, current_kek) = self.sealer.current_kek(tenant, false)?;
        let rows = sqlx::query(
            "SELECT call_id, kek_id, wrapped FROM call_keys WHERE tenant = $1 AND kek_id <> $2",
        )
        .bind(tenant)
        .bind(&current_id)
        .fetch_all(&self.pool)
        .await?;
        let mut old: HashMap<String, Option<Key>> = HashMap::new();
        let mut updates = Vec::new();
        let mut failed = 0;
        for r in &rows {
            let (call_id, kek_id, wrapped): (String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let kek = old
                .entry(kek_id.clone())
                .or_insert_with(|| self.sealer.find_kek(tenant, &kek_id))
                .clone();
            match kek.and_then(|k| unwrap(&k, tenant, &kek_id, &call_id, &wrapped)) {
                Some(dek) => {
                    let w = wrap(&current_kek, tenant, &current_id, &call_id, &dek);
                    updates.push((call_id, w));
                }
                None => failed += 1,
            }
        }
        let mut tx = self.pool.begin().await?;
        for (call_id, w) in &updates {
            sqlx::query("UPDATE call_keys SET kek_id = $1, wrapped = $2 WHERE call_id = $3")
                .bind(&current_id)
                .bind(w)
                .bind(call_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((updates.len() as u64, failed))
    }

    /// Inserts a batch's new call keys in its transaction.
    pub(super) async fn insert_keys(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        keys: &BatchKeys,
    ) -> Result<(), StoreError> {
        for n in &keys.new {
            sqlx::query(
                "INSERT INTO call_keys (call_id, tenant, kek_id, wrapped) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (call_id) DO NOTHING",
            )
            .bind(&n.call_id)
            .bind(&n.tenant)
            .bind(&n.kek_id)
            .bind(&n.wrapped)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_call_and_field() {
        let key = Key([7; 32]);
        let s = seal(&key, "c1", "caller", "+919812345678");
        assert!(is_sealed(&s));
        assert!(!s.contains("919812345678"));
        assert_eq!(
            open(&key, "c1", "caller", &s).as_deref(),
            Some("+919812345678")
        );
        assert_eq!(open(&Key([8; 32]), "c1", "caller", &s), None, "another key");
        assert_eq!(open(&key, "c2", "caller", &s), None, "another call's value");
        assert_eq!(open(&key, "c1", "detail", &s), None, "another field");
        let mut damaged = s.clone();
        damaged.pop();
        damaged.push(if s.ends_with('0') { '1' } else { '0' });
        assert_eq!(open(&key, "c1", "caller", &damaged), None, "damaged");
        assert_eq!(open(&key, "c1", "caller", "s1:zz"), None, "not hex");
        assert_eq!(open(&key, "c1", "caller", "s1:00"), None, "too short");
        // Two seals of one value differ (a fresh nonce each).
        assert_ne!(s, seal(&key, "c1", "caller", "+919812345678"));
        // Values from before sealing read as they are.
        assert_eq!(
            open(&key, "c1", "caller", "anon-ab").as_deref(),
            Some("anon-ab")
        );
    }

    #[test]
    fn a_wrapped_call_key_unwraps_only_for_its_tenant_key_and_call() {
        let kek = Key([1; 32]);
        let dek = Key([2; 32]);
        let w = wrap(&kek, "acme", "acme-1", "c1", &dek);
        assert!(unwrap(&kek, "acme", "acme-1", "c1", &w) == Some(dek.clone()));
        assert!(unwrap(&Key([3; 32]), "acme", "acme-1", "c1", &w).is_none());
        assert!(unwrap(&kek, "other", "acme-1", "c1", &w).is_none());
        assert!(unwrap(&kek, "acme", "acme-1", "c2", &w).is_none());
        assert!(unwrap(&kek, "acme", "acme-1", "c1", "").is_none());
    }
}
