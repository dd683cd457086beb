//! Digest authentication (RFC 7616, RFC 2617 as used by SIP in RFC 3261
//! §22.4): MD5 and SHA-256, `qop=auth`, nonces that expire (answered with
//! `stale=true`), for both sides.
//!
//! Server side: [`DigestServer::challenge`] makes a WWW-Authenticate (or
//! Proxy-Authenticate) value; [`DigestServer::verify`] checks an
//! Authorization value. Nonces are stateless: a timestamp and a keyed hash
//! of it, so any node holding the same secret can verify them and an
//! expired one is told apart from a forged one.
//!
//! A challenge for an unknown user looks exactly like one for a known user,
//! and verifying an unknown user costs the same hashing as a known one, so
//! neither the answer nor its timing reveals which users exist.
//!
//! Replays: `qop=auth` is required (without it RFC 2617 has no nonce
//! count), the digest `uri` must be the request's Request-URI, and
//! [`NonceCounts`] remembers the highest `nc` seen per nonce, so an
//! `Authorization` header copied off the wire is refused the second time.
//!
//! Sans-IO: the current time (seconds since the Unix epoch) is passed in.

use md5::{Digest as _, Md5};
use sha2::Sha256;

use crate::header::Credentials;
use crate::{Error, Result};

/// The digest algorithms supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// MD5 (RFC 2617; what most SIP phones still send).
    Md5,
    /// SHA-256 (RFC 7616).
    Sha256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }
    fn parse(s: &[u8]) -> Option<Algorithm> {
        if s.eq_ignore_ascii_case(b"MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case(b"SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }
    /// Hex digest of `data`.
    pub fn hash(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(data)),
            Algorithm::Sha256 => hex::encode(Sha256::digest(data)),
        }
    }
}

/// What the server knows of a user's secret.
#[derive(Debug, Clone)]
pub enum Secret {
    /// The password itself.
    Password(String),
    /// A stored HA1 = H(username:realm:password) for one algorithm.
    Ha1(Algorithm, String),
}

/// Why credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No or unparseable credentials: challenge.
    Missing,
    /// The nonce was ours but expired: challenge again with `stale=true`.
    Stale,
    /// Wrong password, unknown user, forged nonce, wrong realm, no
    /// `qop=auth`...: challenge (and count it: repeated failures are an
    /// attack).
    Invalid,
    /// The digest `uri` is not the request's Request-URI (credentials
    /// lifted from another request).
    UriMismatch,
    /// A nonce count at or below one already used with this nonce: a
    /// replayed header.
    Replayed,
}

/// What is being authenticated.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The request's method.
    pub method: &'a str,
    /// The request's Request-URI, as it appears on the request line.
    pub request_uri: &'a str,
    /// Seconds since the Unix epoch.
    pub now_secs: u64,
}

/// The highest nonce count seen per nonce (RFC 7616 §3.4: a server that
/// tracks `nc` detects replays), bounded: expired nonces are forgotten
/// first, then the oldest.
#[derive(Debug, Clone)]
pub struct NonceCounts {
    seen: std::collections::HashMap<String, (u32, u64)>,
    max: usize,
    ttl_secs: u64,
}

impl NonceCounts {
    /// Remembers at most `max` nonces, each for `ttl_secs` (the nonce
    /// lifetime).
    pub fn new(max: usize, ttl_secs: u64) -> NonceCounts {
        NonceCounts {
            seen: std::collections::HashMap::new(),
            max: max.max(1),
            ttl_secs,
        }
    }

    /// Nonces remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Accepts `nc` for `nonce` (issued at `issued`) if it is above every
    /// count used with that nonce so far, and remembers it.
    fn accept(&mut self, nonce: &str, nc: u32, issued: u64, now_secs: u64) -> bool {
        if let Some((last, _)) = self.seen.get_mut(nonce) {
            if nc <= *last {
                return false;
            }
            *last = nc;
            return true;
        }
        if self.seen.len() >= self.max {
            let ttl = self.ttl_secs;
            self.seen
                .retain(|_, (_, at)| now_secs.saturating_sub(*at) <= ttl);
        }
        if self.seen.len() >= self.max
            && let Some(oldest) = self
                .seen
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
        {
            self.seen.remove(&oldest);
        }
        self.seen.insert(nonce.to_owned(), (nc, issued));
        true
    }
}

/// The server side.
#[derive(Debug, Clone)]
pub struct DigestServer {
    realm: String,
    secret: [u8; 32],
    nonce_ttl_secs: u64,
}

impl DigestServer {
    /// A verifier for `realm`; `secret` keys the nonces.
    pub fn new(realm: impl Into<String>, secret: [u8; 32], nonce_ttl_secs: u64) -> DigestServer {
        DigestServer {
            realm: realm.into(),
            secret,
            nonce_ttl_secs,
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// `issued` (16 hex digits), `salt` (8) and a keyed hash of both. The
    /// salt makes every challenge's nonce its own, so nonce counts of two
    /// clients challenged in the same second never collide.
    fn nonce_at(&self, issued: u64, salt: u32) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(issued.to_be_bytes());
        h.update(salt.to_be_bytes());
        h.update(self.realm.as_bytes());
        let mac = h.finalize();
        format!(
            "{issued:016x}{salt:08x}{}",
            hex::encode(mac.get(..16).unwrap_or_default())
        )
    }

    /// A challenge header value issued at `now_secs`; `salt` (a counter or
    /// random number from the caller) makes its nonce unique.
    pub fn challenge(&self, now_secs: u64, salt: u32, algorithm: Algorithm, stale: bool) -> String {
        let nonce = self.nonce_at(now_secs, salt);
        let stale = if stale { ", stale=true" } else { "" };
        format!(
            "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale}",
            self.realm,
            algorithm.name()
        )
    }

    /// Checks credentials for `attempt`. `lookup` returns the user's
    /// secret; `None` (unknown user) is checked against a dummy secret so
    /// it takes the same time, then refused as [`Rejection::Invalid`].
    /// Valid credentials must carry `qop=auth`, name the Request-URI and
    /// use a nonce count above any seen with their nonce (`counts`). On
    /// success returns the username.
    pub fn verify(
        &self,
        creds: &Credentials,
        attempt: &Attempt<'_>,
        counts: &mut NonceCounts,
        lookup: impl FnOnce(&str) -> Option<Secret>,
    ) -> std::result::Result<String, Rejection> {
        let (method, now_secs) = (attempt.method, attempt.now_secs);
        if !creds.scheme.eq_ignore_ascii_case(b"Digest") {
            return Err(Rejection::Missing);
        }
        let get = |n: &str| {
            creds
                .get(n)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let (Some(username), Some(realm), Some(nonce), Some(uri), Some(response)) = (
            get("username"),
            get("realm"),
            get("nonce"),
            get("uri"),
            get("response"),
        ) else {
            return Err(Rejection::Missing);
        };
        let algorithm = match creds.get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(a).ok_or(Rejection::Invalid)?,
        };
        let found = lookup(&username);
        let known = found.is_some();
        let secret = found.unwrap_or_else(|| Secret::Password("\u{0}dummy\u{0}".into()));
        let ha1 = match secret {
            Secret::Password(p) => {
                algorithm.hash(format!("{username}:{}:{p}", self.realm).as_bytes())
            }
            Secret::Ha1(a, h) if a == algorithm => h,
            Secret::Ha1(..) => algorithm.hash(b"mismatched algorithm"),
        };
        let qop = get("qop");
        let expected = compute_response(
            algorithm,
            &ha1,
            &nonce,
            method,
            &uri,
            qop.as_deref(),
            get("nc").as_deref(),
            get("cnonce").as_deref(),
        );
        let response_ok = constant_time_eq(
            expected.as_bytes(),
            response.to_ascii_lowercase().as_bytes(),
        );
        // The nonce: ours (keyed hash matches) and not expired.
        let nonce_issued = nonce
            .get(..16)
            .and_then(|t| u64::from_str_radix(t, 16).ok());
        let nonce_salt = nonce
            .get(16..24)
            .and_then(|t| u32::from_str_radix(t, 16).ok());
        let nonce_ours = match (nonce_issued, nonce_salt) {
            (Some(t), Some(salt)) => {
                constant_time_eq(self.nonce_at(t, salt).as_bytes(), nonce.as_bytes())
            }
            _ => false,
        };
        let nc = get("nc").and_then(|n| u32::from_str_radix(&n, 16).ok());
        if !known
            || !response_ok
            || !nonce_ours
            || realm != self.realm
            || qop.as_deref() != Some("auth")
            || nc.is_none()
        {
            return Err(Rejection::Invalid);
        }
        if uri.trim() != attempt.request_uri.trim() {
            return Err(Rejection::UriMismatch);
        }
        let issued = nonce_issued.unwrap_or(0);
        if now_secs.saturating_sub(issued) > self.nonce_ttl_secs
            || issued > now_secs.saturating_add(60)
        {
            return Err(Rejection::Stale);
        }
        if !counts.accept(&nonce, nc.unwrap_or(0), issued, now_secs) {
            return Err(Rejection::Replayed);
        }
        Ok(username)
    }
}

/// The request-digest of RFC 7616 §3.4.1 (and RFC 2617 §3.2.2.1 without qop).
#[allow(clippy::too_many_arguments)]
pub fn compute_response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    qop: Option<&str>,
    nc: Option<&str>,
    cnonce: Option<&str>,
) -> String {
    let ha2 = algorithm.hash(format!("{method}:{uri}").as_bytes());
    match qop {
        Some(q) => algorithm.hash(
            format!(
                "{ha1}:{nonce}:{}:{}:{q}:{ha2}",
                nc.unwrap_or_default(),
                cnonce.unwrap_or_default()
            )
            .as_bytes(),
        ),
        None => algorithm.hash(format!("{ha1}:{nonce}:{ha2}").as_bytes()),
    }
}

/// Client side: the Authorization value answering `challenge` (a parsed
/// WWW-Authenticate / Proxy-Authenticate).
pub fn authorization(
    challenge: &crate::header::Challenge,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String> {
    let get = |n: &str| {
        challenge
            .get(n)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let realm = get("realm").ok_or(Error::Digest("challenge without realm"))?;
    let nonce = get("nonce").ok_or(Error::Digest("challenge without nonce"))?;
    let algorithm = match challenge.get("algorithm") {
        None => Algorithm::Md5,
        Some(a) => Algorithm::parse(a).ok_or(Error::Digest("unsupported algorithm"))?,
    };
    let qop = get("qop").map(|q| q.split(',').any(|t| t.trim() == "auth"));
    let ha1 = algorithm.hash(format!("{username}:{realm}:{password}").as_bytes());
    let nc = format!("{nc:08x}");
    let mut out = format!(
        "Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm={}",
        algorithm.name()
    );
    if qop == Some(true) {
        let resp = compute_response(
            algorithm,
            &ha1,
            &nonce,
            method,
            uri,
            Some("auth"),
            Some(&nc),
            Some(cnonce),
        );
        out.push_str(&format!(
            ", qop=auth, nc={nc}, cnonce=\"{cnonce}\", response=\"{resp}\""
        ));
    } else {
        let resp = compute_response(algorithm, &ha1, &nonce, method, uri, None, None, None);
        out.push_str(&format!(", response=\"{resp}\""));
    }
    if let Some(o) = get("opaque") {
        out.push_str(&format!(", opaque=\"{o}\""));
    }
    Ok(out)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::header::AuthParams;

    #[test]
    fn rfc7616_section_3_9_1_vectors() {
        // username Mufasa, password "Circle of Life", GET /dir/index.html.
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for (alg, want) in [
            (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
            (
                Algorithm::Sha256,
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let ha1 = alg.hash(b"Mufasa:http-auth@example.org:Circle of Life");
            let got = compute_response(
                alg,
                &ha1,
                nonce,
                "GET",
                "/dir/index.html",
                Some("auth"),
                Some("00000001"),
                Some(cnonce),
            );
            assert_eq!(got, want, "{alg:?}");
        }
    }

    #[test]
    fn rfc2617_section_3_5_vector() {
        let ha1 = Algorithm::Md5.hash(b"Mufasa:testrealm@host.com:Circle Of Life");
        let got = compute_response(
            Algorithm::Md5,
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "GET",
            "/dir/index.html",
            Some("auth"),
            Some("00000001"),
            Some("0a4f113b"),
        );
        assert_eq!(got, "6629fae49393a05397450978507c4ef1");
    }

    /// Verifies with a fresh nonce-count table, for the Request-URI the
    /// test answers use.
    fn check(
        s: &DigestServer,
        creds: &Credentials,
        method: &str,
        now_secs: u64,
        lookup: impl FnOnce(&str) -> Option<Secret>,
    ) -> std::result::Result<String, Rejection> {
        let attempt = Attempt {
            method,
            request_uri: "sip:dhwani.test",
            now_secs,
        };
        s.verify(creds, &attempt, &mut NonceCounts::new(100, 300), lookup)
    }

    fn server() -> DigestServer {
        DigestServer::new("dhwani.test", [7; 32], 300)
    }

    fn answer(
        server: &DigestServer,
        at: u64,
        alg: Algorithm,
        user: &str,
        pass: &str,
    ) -> Credentials {
        let ch = AuthParams::parse(&Bytes::from(server.challenge(at, 1, alg, false))).unwrap();
        let auth = authorization(&ch, "REGISTER", "sip:dhwani.test", user, pass, "abc", 1).unwrap();
        AuthParams::parse(&Bytes::from(auth)).unwrap()
    }

    #[test]
    fn round_trip_with_both_algorithms_and_a_stored_ha1() {
        let s = server();
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let creds = answer(&s, 1000, alg, "agent7", "s3cret");
            let got = check(&s, &creds, "REGISTER", 1010, |u| {
                (u == "agent7").then(|| Secret::Password("s3cret".into()))
            });
            assert_eq!(got, Ok("agent7".to_owned()));
            let ha1 = alg.hash(b"agent7:dhwani.test:s3cret");
            let got = check(&s, &creds, "REGISTER", 1010, |_| {
                Some(Secret::Ha1(alg, ha1))
            });
            assert_eq!(got, Ok("agent7".to_owned()));
        }
    }

    #[test]
    fn wrong_password_unknown_user_and_wrong_method_are_invalid() {
        let s = server();
        let creds = answer(&s, 1000, Algorithm::Sha256, "agent7", "wrong");
        let lookup = |u: &str| (u == "agent7").then(|| Secret::Password("s3cret".into()));
        assert_eq!(
            check(&s, &creds, "REGISTER", 1001, lookup),
            Err(Rejection::Invalid)
        );
        let creds = answer(&s, 1000, Algorithm::Sha256, "nobody", "x");
        assert_eq!(
            check(&s, &creds, "REGISTER", 1001, lookup),
            Err(Rejection::Invalid)
        );
        let creds = answer(&s, 1000, Algorithm::Sha256, "agent7", "s3cret");
        assert_eq!(
            check(&s, &creds, "INVITE", 1001, lookup),
            Err(Rejection::Invalid)
        );
    }

    #[test]
    fn an_expired_nonce_is_stale_and_a_forged_one_invalid() {
        let s = server();
        let lookup = |_: &str| Some(Secret::Password("s3cret".into()));
        let creds = answer(&s, 1000, Algorithm::Md5, "agent7", "s3cret");
        assert_eq!(
            check(&s, &creds, "REGISTER", 1000 + 301, lookup),
            Err(Rejection::Stale)
        );
        let other = DigestServer::new("dhwani.test", [8; 32], 300);
        let forged = answer(&other, 1000, Algorithm::Md5, "agent7", "s3cret");
        assert_eq!(
            check(&s, &forged, "REGISTER", 1001, lookup),
            Err(Rejection::Invalid)
        );
        assert!(
            s.challenge(5, 1, Algorithm::Md5, true)
                .ends_with("stale=true")
        );
    }

    #[test]
    fn a_replayed_nonce_count_is_refused_and_a_higher_one_accepted() {
        let s = server();
        let lookup = |_: &str| Some(Secret::Password("s3cret".into()));
        let attempt = Attempt {
            method: "REGISTER",
            request_uri: "sip:dhwani.test",
            now_secs: 1001,
        };
        let mut counts = NonceCounts::new(100, 300);
        let creds = answer(&s, 1000, Algorithm::Sha256, "agent7", "s3cret");
        assert_eq!(
            s.verify(&creds, &attempt, &mut counts, lookup),
            Ok("agent7".into())
        );
        // The same header again (copied off the wire): refused.
        assert_eq!(
            s.verify(&creds, &attempt, &mut counts, lookup),
            Err(Rejection::Replayed)
        );
        // The phone's next request with the same nonce counts up: fine.
        let ch = AuthParams::parse(&Bytes::from(s.challenge(1000, 1, Algorithm::Sha256, false)))
            .unwrap();
        let next = authorization(
            &ch,
            "REGISTER",
            "sip:dhwani.test",
            "agent7",
            "s3cret",
            "abc",
            2,
        )
        .unwrap();
        let next = AuthParams::parse(&Bytes::from(next)).unwrap();
        assert_eq!(
            s.verify(&next, &attempt, &mut counts, lookup),
            Ok("agent7".into())
        );
        assert_eq!(counts.len(), 1);
    }

    #[test]
    fn the_digest_uri_must_be_the_request_uri() {
        let s = server();
        let creds = answer(&s, 1000, Algorithm::Md5, "agent7", "s3cret");
        let attempt = Attempt {
            method: "REGISTER",
            request_uri: "sip:other.test",
            now_secs: 1001,
        };
        assert_eq!(
            s.verify(&creds, &attempt, &mut NonceCounts::new(10, 300), |_| {
                Some(Secret::Password("s3cret".into()))
            }),
            Err(Rejection::UriMismatch)
        );
    }

    #[test]
    fn credentials_without_qop_are_refused() {
        // RFC 2069-style digests carry no nonce count: replayable.
        let s = server();
        let ch = AuthParams::parse(&Bytes::from(
            s.challenge(1000, 1, Algorithm::Md5, false)
                .replace(", qop=\"auth\"", ""),
        ))
        .unwrap();
        let auth = authorization(
            &ch,
            "REGISTER",
            "sip:dhwani.test",
            "agent7",
            "s3cret",
            "abc",
            1,
        )
        .unwrap();
        assert!(!auth.contains("qop"), "{auth}");
        let creds = AuthParams::parse(&Bytes::from(auth)).unwrap();
        assert_eq!(
            check(&s, &creds, "REGISTER", 1001, |_| Some(Secret::Password(
                "s3cret".into()
            ))),
            Err(Rejection::Invalid)
        );
    }

    #[test]
    fn the_nonce_count_table_stays_bounded() {
        let mut counts = NonceCounts::new(3, 300);
        for i in 0..10u64 {
            assert!(counts.accept(&format!("n{i}"), 1, 1000 + i, 1000 + i));
            assert!(counts.len() <= 3);
        }
        // The newest are kept (and still refuse a replay).
        assert!(!counts.accept("n9", 1, 1009, 1010));
    }
}
