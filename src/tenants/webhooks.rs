//! A tenant's webhook sender: its secret, the signature on each body, and
//! one delivery attempt over HTTPS (the outbox and its retries are
//! `store::outbox` and `server::webhooks`).
//!
//! Each POST carries
//! - `X-Dhwani-Signature: t=UNIX_SECONDS,v1=HEX`, where HEX is
//!   HMAC-SHA256(secret, "UNIX_SECONDS." + body): a receiver recomputes
//!   it and refuses a `t` older than 5 minutes (the replay window,
//!   docs/webhooks.md);
//! - `X-Dhwani-Event-Id` (the same on every retry: a receiver that got an
//!   event twice, after a crash between its answer and our record of it,
//!   drops the second), `X-Dhwani-Event-Type`, `X-Dhwani-Attempt`.
//!
//! A delivery is a 2xx reply within the tenant's `webhook_timeout_ms`
//! (connect, TLS, request and reply); anything else is a failure with its
//! reason: an error status, a redirect (never followed: the body would go
//! somewhere not configured), a reply over 64 KiB, an HTML page (a login
//! or parking page, not a receiver), a timeout, a refused address or
//! certificate. The URL is never in a reason or a log line (it may carry
//! the receiver's token).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use ipnet::IpNet;
use tokio::sync::Semaphore;

use super::fetch::{Rate, check_target, describe, guarded_client};
use crate::config::TenantConfig;

/// The largest reply read.
const MAX_REPLY: usize = 64 * 1024;

/// Where a tenant's secret is: its `webhook_secret_file`, or
/// `DATA_DIR/keys/ID.webhook`.
pub fn secret_path(t: &TenantConfig, config_dir: &Path, data_dir: &Path) -> PathBuf {
    match &t.webhook_secret_file {
        Some(p) if p.is_relative() => config_dir.join(p),
        Some(p) => p.clone(),
        None => data_dir.join("keys").join(format!("{}.webhook", t.id)),
    }
}

/// The tenant's secret (its file holds it as text, e.g. 64 hex digits),
/// created (32 random bytes, hex, mode 0600) when `create` and missing.
pub fn secret(path: &Path, create: bool) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is empty", path.display()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            write_secret(path, &new_secret())?;
            secret(path, false)
        }
        Err(e) => Err(e),
    }
}

/// 32 random bytes in hex.
pub fn new_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Writes `s` as the secret at `path` (0600), replacing it.
pub fn write_secret(path: &Path, s: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("webhook.new");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(format!("{s}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The `X-Dhwani-Signature` value for `body` sent at `t` (Unix seconds).
pub fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC takes a key of any length")
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// A 2xx reply.
    Delivered(u16),
    /// Not delivered: the status if a reply came, and why.
    Failed(Option<u16>, String),
}

/// A tenant's sender.
pub struct Sender {
    client: reqwest::Client,
    private_ok: Vec<IpNet>,
    /// Webhook name → URL.
    urls: Vec<(String, String)>,
    secret: String,
    timeout: Duration,
    slots: Arc<Semaphore>,
    rate: std::sync::Mutex<Rate>,
    /// Attempts before an event is dead.
    pub max_attempts: u32,
    /// The first retry's delay.
    pub retry_base: Duration,
    /// The longest delay.
    pub retry_max: Duration,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl Sender {
    /// The sender of tenant `t` (None when it has no webhooks), with its
    /// secret read or created.
    pub fn new(
        t: &TenantConfig,
        config_dir: &Path,
        data_dir: &Path,
    ) -> Result<Option<Sender>, String> {
        if t.webhooks.is_empty() {
            return Ok(None);
        }
        let path = secret_path(t, config_dir, data_dir);
        let secret = secret(&path, t.webhook_secret_file.is_none())
            .map_err(|e| format!("webhook secret {}: {e}", path.display()))?;
        let ca = match &t.fetch_ca_file {
            Some(p) => {
                let p = if p.is_relative() {
                    config_dir.join(p)
                } else {
                    p.clone()
                };
                Some(std::fs::read(&p).map_err(|e| format!("fetch_ca_file {}: {e}", p.display()))?)
            }
            None => None,
        };
        let private_ok: Vec<IpNet> = t
            .fetch_private_networks
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        let client = guarded_client(
            Arc::new(private_ok.clone()),
            ca.as_deref(),
            reqwest::redirect::Policy::none(),
        )?;
        Ok(Some(Sender {
            client,
            private_ok,
            urls: t
                .webhooks
                .iter()
                .map(|w| (w.name.clone(), w.url.clone()))
                .collect(),
            secret,
            timeout: Duration::from_millis(t.webhook_timeout_ms),
            slots: Arc::new(Semaphore::new(t.webhook_max_concurrent.max(1))),
            rate: std::sync::Mutex::new(Rate::new(t.webhook_max_per_sec)),
            max_attempts: t.webhook_max_attempts.max(1),
            retry_base: Duration::from_millis(t.webhook_retry_base_ms.max(1)),
            retry_max: Duration::from_secs(t.webhook_retry_max_secs.max(1)),
        }))
    }

    /// Deliveries the tenant may start now: free slots, within its rate.
    pub fn free_slots(&self, now: Instant) -> usize {
        let rate = self.rate.lock().map(|r| r.available(now)).unwrap_or(0);
        self.slots.available_permits().min(rate)
    }

    /// How long a node holds a row it sends: longer than any attempt.
    pub fn lease(&self) -> Duration {
        self.timeout + Duration::from_secs(30)
    }

    /// A slot to send in, if the tenant's concurrency and rate allow one
    /// now.
    pub fn slot(&self, now: Instant) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let permit = Arc::clone(&self.slots).try_acquire_owned().ok()?;
        let ok = self.rate.lock().map(|mut r| r.allow(now)).unwrap_or(true);
        ok.then_some(permit)
    }

    /// The delay before attempt `attempts + 1`, after `attempts` failed:
    /// doubling from the base, capped, a fifth of jitter either way.
    pub fn backoff(&self, attempts: u32, jitter: f64) -> Duration {
        let doubled = self
            .retry_base
            .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
        let d = doubled.min(self.retry_max).as_secs_f64();
        Duration::from_secs_f64(d * (0.8 + 0.4 * jitter.clamp(0.0, 1.0)))
    }

    /// One attempt to POST `body` to webhook `hook`.
    pub async fn send(
        &self,
        hook: &str,
        (event_id, kind, attempt): (&str, &str, i64),
        body: &str,
        now_unix: u64,
    ) -> Sent {
        let Some((_, url)) = self.urls.iter().find(|(n, _)| n == hook) else {
            return Sent::Failed(None, "no webhook of this name in the config".into());
        };
        let parsed = match reqwest::Url::parse(url) {
            Ok(u) => u,
            Err(_) => return Sent::Failed(None, "the webhook's url is not a URL".into()),
        };
        if let Err(why) = check_target(&parsed, &self.private_ok) {
            return Sent::Failed(None, why);
        }
        let req = self
            .client
            .post(parsed)
            .header("content-type", "application/json")
            .header(
                "x-dhwani-signature",
                signature(&self.secret, now_unix, body.as_bytes()),
            )
            .header("x-dhwani-event-id", event_id)
            .header("x-dhwani-event-type", kind)
            .header("x-dhwani-attempt", attempt.to_string())
            .body(body.to_owned())
            .timeout(self.timeout);
        let work = async {
            let mut resp = match req.send().await {
                Ok(r) => r,
                Err(e) => return Sent::Failed(None, describe(e)),
            };
            let status = resp.status().as_u16();
            if resp.status().is_redirection() {
                return Sent::Failed(
                    Some(status),
                    format!("HTTP {status}: a redirect (not followed)"),
                );
            }
            if !resp.status().is_success() {
                return Sent::Failed(Some(status), format!("HTTP {status}"));
            }
            let html = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/html"));
            if resp.content_length().is_some_and(|n| n > MAX_REPLY as u64) {
                return Sent::Failed(Some(status), "the reply is larger than 64 KiB".into());
            }
            let mut n = 0;
            loop {
                match resp.chunk().await {
                    Ok(Some(c)) => {
                        n += c.len();
                        if n > MAX_REPLY {
                            return Sent::Failed(
                                Some(status),
                                "the reply is larger than 64 KiB".into(),
                            );
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Sent::Failed(Some(status), describe(e)),
                }
            }
            if html {
                return Sent::Failed(
                    Some(status),
                    "the reply is an HTML page, not a webhook receiver's answer".into(),
                );
            }
            Sent::Delivered(status)
        };
        match tokio::time::timeout(self.timeout + Duration::from_millis(250), work).await {
            Ok(s) => s,
            Err(_) => Sent::Failed(None, "timed out".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231s_hmac_sha256_over_time_dot_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for
        // nothing?"; here the data is "T." + body, so split it there.
        let t = signature("Jefe", 0, b"what do ya want for nothing?");
        // HMAC over "0.what do ya want for nothing?", checked against the
        // hmac crate's own run of the RFC vector below.
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            "the MAC we use is the RFC's"
        );
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"0.what do ya want for nothing?");
        assert_eq!(
            t,
            format!("t=0,v1={}", hex::encode(mac.finalize().into_bytes()))
        );
        assert_ne!(t, signature("Jefe", 1, b"what do ya want for nothing?"));
        assert_ne!(t, signature("jefe", 0, b"what do ya want for nothing?"));
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_a_fifth_of_jitter() {
        let mut cfg = crate::config::Config::parse(
            r#"[[tenants]]
id = "t"
numbers = ["1"]
flows_dir = "f"
webhook_retry_base_ms = 1000
webhook_retry_max_secs = 60
[[tenants.webhooks]]
url = "https://hooks.example.in/x"
"#,
            "test",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let t = cfg.tenants.remove(0);
        let s = Sender::new(&t, dir.path(), dir.path()).unwrap().unwrap();
        assert_eq!(s.backoff(1, 0.5), Duration::from_secs(1));
        assert_eq!(s.backoff(2, 0.5), Duration::from_secs(2));
        assert_eq!(s.backoff(4, 0.5), Duration::from_secs(8));
        assert_eq!(s.backoff(10, 0.5), Duration::from_secs(60));
        assert_eq!(s.backoff(40, 0.5), Duration::from_secs(60));
        assert_eq!(s.backoff(1, 0.0), Duration::from_millis(800));
        assert_eq!(s.backoff(1, 1.0), Duration::from_millis(1200));
        // The secret was made once, 0600, and is read back the same.
        let p = dir.path().join("keys/t.webhook");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = Sender::new(&t, dir.path(), dir.path()).unwrap().unwrap();
        assert_eq!(again.secret, s.secret);
        assert_eq!(s.secret.len(), 64);
    }

    #[test]
    fn with_the_defaults_a_receiver_down_for_an_hour_still_gets_its_events() {
        let mut cfg = crate::config::Config::parse(
            "[[tenants]]\nid = \"t\"\nnumbers = [\"1\"]\nflows_dir = \"f\"\n[[tenants.webhooks]]\nurl = \"https://hooks.example.in/x\"\n",
            "test",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let t = cfg.tenants.remove(0);
        let s = Sender::new(&t, dir.path(), dir.path()).unwrap().unwrap();
        // The shortest schedule (all jitter at -20 %): the time from the
        // first failure to the last attempt.
        let total: Duration = (1..s.max_attempts).map(|n| s.backoff(n, 0.0)).sum();
        assert!(
            total >= Duration::from_secs(2 * 3600),
            "retries end after {total:?}"
        );
        // And no gap longer than the cap (+20 %): a receiver that is back
        // gets the event within 12 minutes.
        assert!((1..s.max_attempts).all(|n| s.backoff(n, 1.0) <= Duration::from_secs(720)));
    }
}
