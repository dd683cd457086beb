//! A tenant's HTTPS client for the flows' `fetch` (docs/ivr-dsl.md §4):
//! one pooled client per tenant, which reaches only what the tenant's
//! `fetch_allow` names and never an address inside our own network.
//!
//! What is checked, and where:
//! - the URL: `https://` only, its host on the allow-list, an IP literal
//!   outside the refused ranges;
//! - every redirect (at most 3): the same three checks;
//! - every address a host name resolves to (our resolver, so a name that
//!   resolves to loopback, a private or link-local range, the cloud
//!   metadata address... is refused before a connection is made), unless
//!   the tenant's `fetch_private_networks` lets that range through;
//! - the flow's timeout covers resolving, connecting, TLS and the whole
//!   body; the body is capped at 64 KiB and must be one JSON object;
//! - at most `fetch_max_concurrent` requests of the tenant at once (the
//!   rest fail at once: a slow endpoint of one business cannot hold the
//!   server's sockets).
//!
//! Errors are described without the URL (its query may carry a caller's
//! values).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use ivr_dsl::allow::AllowList;
use tokio::sync::Semaphore;

/// The largest reply read.
pub const MAX_REPLY: usize = 64 * 1024;

/// At most this many redirects are followed.
const MAX_REDIRECTS: usize = 3;

/// What a fetch came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// The HTTP status, if a reply came.
    pub status: Option<u16>,
    /// The JSON object, or why not (for the timeline and `on failure`).
    pub result: Result<serde_json::Value, String>,
    /// From the start to the last byte (or the failure).
    pub elapsed: Duration,
}

/// A tenant's client.
pub struct Fetcher {
    client: reqwest::Client,
    allow: AllowList,
    private_ok: Arc<Vec<IpNet>>,
    slots: Arc<Semaphore>,
    rate: std::sync::Mutex<Rate>,
}

/// A token bucket: `per_sec` fetches a second, in bursts of up to as many.
#[derive(Debug)]
pub struct Rate {
    per_sec: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl Rate {
    /// `per_sec` a second (at least 1).
    pub fn new(per_sec: u32) -> Rate {
        let per_sec = f64::from(per_sec.max(1));
        Rate {
            per_sec,
            tokens: per_sec,
            last: None,
        }
    }

    /// How many the rate would allow at `now` (nothing taken).
    pub fn available(&self, now: Instant) -> usize {
        let tokens = match self.last {
            Some(last) => (self.tokens
                + now.saturating_duration_since(last).as_secs_f64() * self.per_sec)
                .min(self.per_sec),
            None => self.tokens,
        };
        tokens.max(0.0) as usize
    }

    /// One more at `now`, if the rate allows it.
    pub fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.per_sec;
            self.tokens = (self.tokens + refill).min(self.per_sec);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher").finish_non_exhaustive()
    }
}

/// Addresses a fetch may not reach unless a tenant lets the range through:
/// this host, private networks, link-local (the cloud metadata service is
/// 169.254.169.254), shared address space, and the unroutable ranges.
pub fn refused_by_default(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_by_default(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b)
        }
    }
}

fn address_refused(ip: IpAddr, private_ok: &[IpNet]) -> bool {
    refused_by_default(ip) && !private_ok.iter().any(|n| n.contains(&ip))
}

/// Checks a URL (the first, or a redirect's) before anything is sent.
fn check_url(url: &reqwest::Url, allow: &AllowList, private_ok: &[IpNet]) -> Result<(), String> {
    if url.scheme() != "https" {
        return Err("only https:// may be fetched".into());
    }
    allow.check(url.as_str()).map_err(|e| match e {
        ivr_dsl::Error::FetchDenied { reason, .. } => format!("not allowed: {reason}"),
        _ => "not allowed".to_owned(),
    })?;
    let literal = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<IpAddr>().ok());
    if let Some(ip) = literal
        && address_refused(ip, private_ok)
    {
        return Err(format!("{ip} is a private or reserved address"));
    }
    Ok(())
}

/// Our resolver: the system's, with every answer checked.
struct Guarded {
    private_ok: Arc<Vec<IpNet>>,
}

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let ok = Arc::clone(&self.private_ok);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("{host} does not resolve").into());
            }
            if let Some(a) = addrs.iter().find(|a| address_refused(a.ip(), &ok)) {
                return Err(format!(
                    "{host} resolves to {}, a private or reserved address",
                    a.ip()
                )
                .into());
            }
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

/// An HTTPS client that reaches no refused address (our resolver checks
/// every answer against the ranges of [`refused_by_default`], but for
/// `private_ok`), trusting the system's roots and `extra_ca_pem`, with
/// the redirect `policy` given. Shared by fetches and webhooks.
pub fn guarded_client(
    private_ok: Arc<Vec<IpNet>>,
    extra_ca_pem: Option<&[u8]>,
    policy: reqwest::redirect::Policy,
) -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for c in native.certs {
        let _ = roots.add(c);
    }
    if let Some(pem) = extra_ca_pem {
        use rustls_pki_types::pem::PemObject;
        let mut n = 0;
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
            let c = c.map_err(|e| format!("fetch_ca_file: {e}"))?;
            roots.add(c).map_err(|e| format!("fetch_ca_file: {e}"))?;
            n += 1;
        }
        if n == 0 {
            return Err("fetch_ca_file holds no certificate".into());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .https_only(true)
        .redirect(policy)
        .dns_resolver(Guarded { private_ok })
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(4)
        .user_agent(concat!("dhwani/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(describe)
}

/// Checks a webhook's URL before anything is sent: `https://`, and an IP
/// literal outside the refused ranges (names are checked as they resolve).
pub fn check_target(url: &reqwest::Url, private_ok: &[IpNet]) -> Result<(), String> {
    if url.scheme() != "https" {
        return Err("only https:// may be reached".into());
    }
    let literal = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<IpAddr>().ok());
    if let Some(ip) = literal
        && address_refused(ip, private_ok)
    {
        return Err(format!("{ip} is a private or reserved address"));
    }
    Ok(())
}

/// Why a request failed, in words, without its URL.
pub fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_redirect() {
        "redirect refused"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        let t = s.to_string();
        if !causes.contains(&t) {
            causes.push(t);
        }
        src = s.source();
    }
    if causes.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {}", causes.join(": "))
    }
}

impl Fetcher {
    /// A client for a tenant: its allow-list, the networks it may reach
    /// despite the default refusal, extra trusted CA certificates (PEM; a
    /// test option), its concurrency limit and its rate (a second).
    pub fn new(
        allow: AllowList,
        private_ok: Vec<IpNet>,
        extra_ca_pem: Option<&[u8]>,
        (max_concurrent, per_sec): (usize, u32),
    ) -> Result<Fetcher, String> {
        let private_ok = Arc::new(private_ok);
        let (redirect_allow, redirect_ok) = (allow.clone(), Arc::clone(&private_ok));
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match check_url(attempt.url(), &redirect_allow, &redirect_ok) {
                Ok(()) => attempt.follow(),
                Err(why) => attempt.error(format!("a redirect to a place refused: {why}")),
            }
        });
        let client = guarded_client(Arc::clone(&private_ok), extra_ca_pem, policy)?;
        Ok(Fetcher {
            client,
            allow,
            private_ok,
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            rate: std::sync::Mutex::new(Rate::new(per_sec)),
        })
    }

    /// One fetch: GET `url`, or POST `body` as JSON, within `timeout`.
    pub async fn fetch(
        &self,
        post: Option<serde_json::Value>,
        url: &str,
        timeout: Duration,
    ) -> Fetched {
        let start = Instant::now();
        let failed = |status, why: String| Fetched {
            status,
            result: Err(why),
            elapsed: start.elapsed(),
        };
        let Ok(_slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            return failed(None, "too many fetches of this tenant at once".into());
        };
        let allowed = self.rate.lock().map(|mut r| r.allow(start)).unwrap_or(true);
        if !allowed {
            return failed(None, "over the tenant's fetch rate".into());
        }
        let parsed = match reqwest::Url::parse(url) {
            Ok(u) => u,
            Err(_) => return failed(None, "not a URL".into()),
        };
        if let Err(why) = check_url(&parsed, &self.allow, &self.private_ok) {
            return failed(None, why);
        }
        let req = match post {
            Some(body) => self
                .client
                .post(parsed)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap_or_default()),
            None => self.client.get(parsed),
        }
        .header("accept", "application/json")
        .timeout(timeout);
        let work = async {
            let mut resp = match req.send().await {
                Ok(r) => r,
                Err(e) => return failed(None, describe(e)),
            };
            let status = resp.status().as_u16();
            if !resp.status().is_success() {
                return failed(Some(status), format!("HTTP {status}"));
            }
            if resp.content_length().is_some_and(|n| n > MAX_REPLY as u64) {
                return failed(Some(status), "the reply is larger than 64 KiB".into());
            }
            let mut body = Vec::new();
            loop {
                match resp.chunk().await {
                    Ok(Some(c)) => {
                        if body.len() + c.len() > MAX_REPLY {
                            return failed(Some(status), "the reply is larger than 64 KiB".into());
                        }
                        body.extend_from_slice(&c);
                    }
                    Ok(None) => break,
                    Err(e) => return failed(Some(status), describe(e)),
                }
            }
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(v @ serde_json::Value::Object(_)) => Fetched {
                    status: Some(status),
                    result: Ok(v),
                    elapsed: start.elapsed(),
                },
                Ok(_) => failed(Some(status), "the reply is JSON but not an object".into()),
                Err(_) => failed(Some(status), "the reply is not JSON".into()),
            }
        };
        // reqwest's timeout covers the body too; this one is the backstop.
        match tokio::time::timeout(timeout + Duration::from_millis(250), work).await {
            Ok(f) => f,
            Err(_) => failed(None, "timed out".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused_unless_let_through() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(refused_by_default(ip), "{ip}");
        }
        for ip in ["8.8.8.8", "203.0.114.1", "2a00:1450::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!refused_by_default(ip), "{ip}");
        }
        let lo: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        assert!(!address_refused("127.0.0.1".parse().unwrap(), &lo));
        assert!(address_refused("10.0.0.1".parse().unwrap(), &lo));
    }

    #[test]
    fn the_rate_allows_a_burst_then_refills_with_time() {
        let t0 = Instant::now();
        let mut r = Rate::new(2);
        assert!(r.allow(t0) && r.allow(t0));
        assert!(!r.allow(t0), "a third at once");
        assert!(!r.allow(t0 + Duration::from_millis(400)));
        assert!(
            r.allow(t0 + Duration::from_millis(600)),
            "one token back after 500 ms"
        );
        assert!(!r.allow(t0 + Duration::from_millis(600)));
        // An idle minute refills the burst, not more.
        let later = t0 + Duration::from_secs(60);
        assert!(r.allow(later) && r.allow(later) && !r.allow(later));
    }

    #[test]
    fn urls_must_be_https_on_the_list_and_not_a_private_literal() {
        let allow = AllowList::new(["api.example.in", "10.0.0.5"]).unwrap();
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(check_url(&u("https://api.example.in/x?a=1"), &allow, &[]).is_ok());
        assert!(check_url(&u("http://api.example.in/x"), &allow, &[]).is_err());
        assert!(check_url(&u("https://evil.example/x"), &allow, &[]).is_err());
        let e = check_url(&u("https://10.0.0.5/x"), &allow, &[]).unwrap_err();
        assert!(e.contains("private"), "{e}");
        let ok: Vec<IpNet> = vec!["10.0.0.0/24".parse().unwrap()];
        assert!(check_url(&u("https://10.0.0.5/x"), &allow, &ok).is_ok());
    }
}
