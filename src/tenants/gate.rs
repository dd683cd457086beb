//! The server's [`Admission`]: which sources may call (trunks by network,
//! with optional digest authentication) and where a call goes (the dialled
//! number's tenant and flow).
//!
//! Refusals: a source in no trunk's networks gets 403; a trunk with
//! credentials challenges with 401 (SHA-256 offered first, then MD5 for old
//! phones) until the INVITE carries valid digest credentials; a number no
//! tenant's flow answers gets 404. With no trunks configured every source
//! may call (a warning is logged at startup unless the server listens only
//! on loopback).
//!
//! Digest hardening: credentials must name the Request-URI and use a fresh
//! nonce count (a replayed `Authorization` is refused); every failure is
//! counted per source and per username ([`super::lockout`]), and a source
//! that fails `security.auth_max_failures` times in
//! `security.auth_window_secs` gets 403 for `security.auth_lockout_secs`,
//! the right password included. Each lockout is a `security` log event.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use sip::auth::{Algorithm, Attempt, DigestServer, NonceCounts, Rejection, Secret};
use sip::message::{HeaderName, Request, StatusCode};

use super::agents::Directory;
use super::lockout::{self, Lockouts, Verdict};
use crate::config::TrunkConfig;
use crate::tenants::Registry;
use crate::ua::{Admission, Admitted, AgentRef, Feature, Refusal};

/// Digest nonces live this long.
const NONCE_TTL_SECS: u64 = 300;
/// Nonces whose counts are remembered at most (about 100 bytes each).
const MAX_TRACKED_NONCES: usize = 100_000;

#[derive(Debug)]
struct Trunk {
    name: String,
    nets: Vec<ipnet::IpNet>,
    credentials: Option<(String, String)>,
}

/// Trunk checks and routing.
#[derive(Debug)]
pub struct Gate {
    registry: Arc<Registry>,
    trunks: Vec<Trunk>,
    digest: DigestServer,
    counts: NonceCounts,
    lockouts: Lockouts,
    /// Makes each challenge's nonce unique.
    salt: u32,
    /// Who may register, and the realm of their challenges.
    agents: Arc<std::sync::RwLock<Directory>>,
    register_digest: DigestServer,
    /// REGISTER challenges, in order of preference.
    register_algorithms: Vec<Algorithm>,
    /// Feature codes' confirmation flows.
    features: HashMap<&'static str, Arc<ivr_dsl::Flow>>,
    /// Agent-to-agent calls' flows, by the extension dialled (one per
    /// agent at most: the extension must be an agent's).
    agent_calls: HashMap<String, Arc<ivr_dsl::Flow>>,
}

impl Gate {
    /// From the configured trunks; `secret` keys digest nonces. Agents
    /// (REGISTER) are checked against `agents` under `realm`.
    pub fn new(
        registry: Arc<Registry>,
        trunks: &[TrunkConfig],
        secret: [u8; 32],
        limits: lockout::Limits,
        agents: Arc<std::sync::RwLock<Directory>>,
        (realm, register_algorithms): (&str, Vec<Algorithm>),
    ) -> Gate {
        Gate {
            agents,
            register_algorithms,
            features: feature_flows(),
            agent_calls: HashMap::new(),
            register_digest: DigestServer::new(realm, secret, NONCE_TTL_SECS),
            counts: NonceCounts::new(MAX_TRACKED_NONCES, NONCE_TTL_SECS),
            lockouts: Lockouts::new(limits),
            salt: 0,
            registry,
            trunks: trunks
                .iter()
                .map(|t| Trunk {
                    name: t.name.clone(),
                    nets: t.nets(),
                    credentials: t.username.clone().zip(t.resolved_password()),
                })
                .collect(),
            digest: DigestServer::new("dhwani", secret, NONCE_TTL_SECS),
        }
    }

    fn check_trunk(
        &mut self,
        now: SystemTime,
        source: SocketAddr,
        invite: &Request,
    ) -> Result<String, Refusal> {
        if self.trunks.is_empty() {
            return Ok(String::new());
        }
        let ip = source.ip().to_canonical();
        self.refuse_locked(ip, now)?;
        let Some(trunk) = self
            .trunks
            .iter()
            .find(|t| t.nets.iter().any(|n| n.contains(&ip)))
        else {
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                reason: "Forbidden",
                headers: vec![],
                why: format!("{ip} is in no trunk's networks"),
            });
        };
        let Some((user, password)) = trunk.credentials.clone() else {
            return Ok(trunk.name.clone());
        };
        let trunk_name = trunk.name.clone();
        let digest = self.digest.clone();
        let lookup =
            |u: &str, _: Algorithm| (u == user).then(|| Secret::Password(password.clone()));
        self.check_digest(
            now,
            ip,
            invite,
            (&digest, &[Algorithm::Sha256, Algorithm::Md5]),
            &format!("trunk `{trunk_name}`"),
            lookup,
        )?;
        Ok(trunk_name)
    }

    /// 403 while `ip` is locked out.
    fn refuse_locked(&self, ip: std::net::IpAddr, now: SystemTime) -> Result<(), Refusal> {
        match self.lockouts.locked(ip, now) {
            Some(until) => {
                let left = until.duration_since(now).unwrap_or_default().as_secs();
                Err(Refusal {
                    status: StatusCode::FORBIDDEN,
                    reason: "Forbidden",
                    headers: vec![],
                    why: format!(
                        "{ip} is locked out after repeated authentication failures ({left} s left)"
                    ),
                })
            }
            None => Ok(()),
        }
    }

    /// Checks `req`'s digest credentials against `digest`'s realm; a
    /// challenge (SHA-256 first, then MD5) when they are missing, stale or
    /// wrong. Every failure counts toward the source's lockout. `what`
    /// names the account for the log.
    fn check_digest(
        &mut self,
        now: SystemTime,
        ip: std::net::IpAddr,
        req: &Request,
        (digest, algorithms): (&DigestServer, &[Algorithm]),
        what: &str,
        lookup: impl FnOnce(&str, Algorithm) -> Option<Secret>,
    ) -> Result<String, Refusal> {
        let now_secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.salt = self.salt.wrapping_add(1);
        let salt = self.salt;
        // RFC 7616 §3.7 / RFC 8760: the preferred algorithm first.
        let challenge = |stale: bool, why: String| Refusal {
            status: StatusCode::UNAUTHORIZED,
            reason: "Unauthorized",
            headers: algorithms
                .iter()
                .map(|a| {
                    (
                        HeaderName::WwwAuthenticate,
                        digest.challenge(now_secs, salt, *a, stale),
                    )
                })
                .collect(),
            why,
        };
        let creds = match req.headers.credentials(&HeaderName::Authorization) {
            Ok(Some(c)) => c,
            _ => return Err(challenge(false, format!("{what} needs digest credentials"))),
        };
        let algorithm = match creds.get("algorithm") {
            Some(a) if a.eq_ignore_ascii_case(b"SHA-256") => Algorithm::Sha256,
            _ => Algorithm::Md5,
        };
        let claimed = creds
            .get("username")
            .map(|u| String::from_utf8_lossy(u).into_owned());
        if let Some(until) = claimed
            .as_deref()
            .and_then(|u| self.lockouts.user_locked(u, ip, now))
        {
            // Refused without evaluating the guess.
            let left = until.duration_since(now).unwrap_or_default().as_secs();
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                reason: "Forbidden",
                headers: vec![],
                why: format!(
                    "{what}: this username is locked after failures from several sources ({left} s left)"
                ),
            });
        }
        let request_uri = String::from_utf8_lossy(req.uri.as_bytes()).into_owned();
        let method = req.method.to_string();
        let attempt = Attempt {
            method: &method,
            request_uri: &request_uri,
            now_secs,
        };
        let failure =
            match digest.verify(&creds, &attempt, &mut self.counts, |u| lookup(u, algorithm)) {
                Ok(user) => {
                    self.lockouts.succeeded(&user, ip);
                    return Ok(user);
                }
                Err(Rejection::Stale) => return Err(challenge(true, "stale nonce".into())),
                Err(Rejection::Missing) => {
                    return Err(challenge(false, "no usable credentials".into()));
                }
                Err(Rejection::Invalid) => "wrong digest credentials",
                Err(Rejection::UriMismatch) => "digest uri is not the Request-URI",
                Err(Rejection::Replayed) => "replayed nonce count",
            };
        for v in self.lockouts.fail(ip, claimed.as_deref(), now) {
            match v {
                Verdict::SourceLocked(until) => {
                    let secs = until.duration_since(now).unwrap_or_default().as_secs();
                    tracing::warn!(target: "security", event = "auth_lockout", source = %ip, account = %what, lockout_secs = secs, "source locked out after repeated authentication failures");
                }
                Verdict::UsernameLocked(until) => {
                    let secs = until.duration_since(now).unwrap_or_default().as_secs();
                    tracing::warn!(target: "security", event = "auth_username_locked", account = %what, lockout_secs = secs, "username locked after repeated authentication failures from several sources (not for the sources it authenticated from)");
                }
                Verdict::Counted => {}
            }
        }
        Err(challenge(false, format!("{failure} for {what}")))
    }
}

/// The confirmation flows of feature codes, each said then hung up.
struct NoFiles;

impl ivr_dsl::Host for NoFiles {
    fn read(&self, _: &std::path::Path) -> std::io::Result<String> {
        Err(std::io::Error::other("built-in flows include nothing"))
    }
    fn prompt_exists(&self, _: &std::path::Path) -> bool {
        false
    }
}

/// The flow of an agent's call to another agent's extension `ext`
/// (digits only: checked by the caller): ring that agent; if it cannot be
/// reached, say so.
fn agent_call_flow(ext: &str) -> Option<Arc<ivr_dsl::Flow>> {
    let src = format!(
        "flow \"Agent call {ext}\"\n  numbers 1\n\nstep start\n  transfer \"sip:{ext}@agents\"\n    on failure -> sorry\n\nstep sorry\n  say \"That agent is not available.\"\n  hangup \"agent not available\"\n"
    );
    ivr_dsl::load_str(std::path::Path::new("agent-call.ivr"), &src, &NoFiles).flow
}

fn feature_flows() -> HashMap<&'static str, Arc<ivr_dsl::Flow>> {
    let mut out = HashMap::new();
    for (key, text) in [
        ("login", "You are logged in."),
        ("logout", "You are logged out."),
        ("pause", "You are paused."),
        ("unpause", "You are available again."),
        ("unknown", "That feature code is not known."),
        ("supervise", "That agent is not on a call."),
    ] {
        let src = format!(
            "flow \"Agent feature {key}\"\n  numbers 1\n\nstep start\n  say \"{text}\"\n  hangup \"feature code\"\n"
        );
        if let Some(f) = ivr_dsl::load_str(std::path::Path::new("feature.ivr"), &src, &NoFiles).flow
        {
            out.insert(key, f);
        }
    }
    out
}

impl Gate {
    /// An agent's call to another agent of its tenant (the Request-URI
    /// user is an extension of the tenant that no flow answers, the From an
    /// agent): authenticated as the calling agent, then the dialled agent
    /// is rung like a flow's `transfer` to it. `None`: not such a call.
    fn agent_call(
        &mut self,
        now: SystemTime,
        source: SocketAddr,
        invite: &Request,
        called: &str,
    ) -> Option<Result<Admitted, Refusal>> {
        if !(2..=16).contains(&called.len())
            || !called.bytes().all(|b| b.is_ascii_digit())
            || self.registry.route(called).is_some()
        {
            return None;
        }
        let from = invite.from().ok()?;
        let host = from
            .uri
            .host
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let tenant = {
            let d = self.agents.read().ok()?;
            let a = d.resolve(&host, &user_of(&from.uri))?;
            d.get(a.tenant, called)?;
            a.tenant
        };
        let agent = match self.agent_digest(now, source, invite, &from.uri) {
            Ok(a) if a.tenant == tenant => a,
            Ok(_) => {
                return Some(Err(Refusal {
                    status: StatusCode::FORBIDDEN,
                    reason: "Forbidden",
                    headers: vec![],
                    why: "agent of another tenant".into(),
                }));
            }
            Err(r) => return Some(Err(r)),
        };
        let refuse = || Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "Service Unavailable",
            headers: vec![],
            why: "no agent call flow".into(),
        };
        let flow = match self.agent_calls.get(called) {
            Some(f) => Arc::clone(f),
            None => {
                let Some(f) = agent_call_flow(called) else {
                    return Some(Err(refuse()));
                };
                self.agent_calls.insert(called.to_owned(), Arc::clone(&f));
                f
            }
        };
        let Some(t) = self.registry.tenant(agent.tenant) else {
            return Some(Err(refuse()));
        };
        Some(Ok(Admitted {
            tenant: agent.tenant,
            tenant_id: Arc::clone(&t.id),
            max_calls: t.max_calls,
            flow,
            caller: agent.extension.clone(),
            called: called.to_owned(),
            trunk: "agent".into(),
            feature: None,
        }))
    }

    /// A feature code from an agent's phone.
    fn feature(
        &mut self,
        now: SystemTime,
        source: SocketAddr,
        invite: &Request,
        code: &str,
    ) -> Result<Admitted, Refusal> {
        let from = invite.from().map_err(|_| Refusal {
            status: StatusCode::BAD_REQUEST,
            reason: "Bad From Header",
            headers: vec![],
            why: "feature code without a usable From".into(),
        })?;
        let agent = self.agent_digest(now, source, invite, &from.uri)?;
        let feature = Feature::from_code(code);
        let key = match &feature {
            Feature::LogIn => "login",
            Feature::LogOut => "logout",
            Feature::Pause => "pause",
            Feature::Unpause => "unpause",
            Feature::Supervise { .. } => "supervise",
            Feature::Unknown => "unknown",
        };
        if matches!(feature, Feature::Supervise { .. }) {
            let may = self
                .agents
                .read()
                .ok()
                .and_then(|d| d.get(agent.tenant, &agent.extension).map(|a| a.supervisor))
                .unwrap_or(false);
            if !may {
                tracing::warn!(target: "security", event = "supervise_refused", tenant = %agent.tenant_id, extension = %agent.extension, "an agent without the supervisor role dialled a supervisor code");
                return Err(Refusal {
                    status: StatusCode::FORBIDDEN,
                    reason: "Forbidden",
                    headers: vec![],
                    why: "not a supervisor".into(),
                });
            }
        }
        let refuse = || Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "Service Unavailable",
            headers: vec![],
            why: "no feature flow".into(),
        };
        let flow = self.features.get(key).cloned().ok_or_else(refuse)?;
        let tenant = self.registry.tenant(agent.tenant).ok_or_else(refuse)?;
        Ok(Admitted {
            tenant: agent.tenant,
            tenant_id: Arc::clone(&tenant.id),
            max_calls: tenant.max_calls,
            flow,
            caller: agent.extension.clone(),
            called: format!("*{}", code.chars().take(8).collect::<String>()),
            trunk: "agent".into(),
            feature: Some((agent, feature)),
        })
    }
}

fn user_of(uri: &sip::uri::Uri) -> String {
    uri.user_unescaped()
        .map(|u| String::from_utf8_lossy(&u).into_owned())
        .unwrap_or_default()
}

impl Admission for Gate {
    fn admit(
        &mut self,
        now: SystemTime,
        source: SocketAddr,
        invite: &Request,
    ) -> Result<Admitted, Refusal> {
        // An agent's feature code: authenticated as the agent (its
        // phone is no trunk), answered with a confirmation.
        if let Some(code) = user_of(&invite.uri).strip_prefix('*') {
            let code = code.to_owned();
            return self.feature(now, source, invite, &code);
        }
        let dialled = user_of(&invite.uri);
        if let Some(verdict) = self.agent_call(now, source, invite, &dialled) {
            return verdict;
        }
        let trunk = self.check_trunk(now, source, invite)?;
        let mut called = user_of(&invite.uri);
        if called.is_empty() {
            called = invite.to().map(|t| user_of(&t.uri)).unwrap_or_default();
        }
        // Visual separators (RFC 3966) are not part of the number.
        let called: String = called
            .chars()
            .filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' '))
            .collect();
        let caller = invite.from().map(|f| user_of(&f.uri)).unwrap_or_default();
        let not_found = || Refusal {
            status: StatusCode::NOT_FOUND,
            reason: "Not Found",
            headers: vec![],
            why: format!("no flow answers `{called}`"),
        };
        let not_live = || {
            Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "Flow Not Live",
            headers: vec![(
                HeaderName::Warning,
                "399 dhwani \"the flow for this number was refused when it was loaded; see the server log\"".to_owned(),
            )],
            why: "the flow for this number is not live (refused when loaded)".to_owned(),
        }
        };
        let route = match self.registry.route(&called) {
            Some(r) => r,
            None if self.registry.not_live(&called).is_some() => return Err(not_live()),
            None => return Err(not_found()),
        };
        let tenant = self.registry.tenant(route.tenant).ok_or_else(not_found)?;
        if tenant.suspended {
            return Err(Refusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: "Service Suspended",
                headers: vec![],
                why: format!("tenant `{}` is suspended", tenant.id),
            });
        }
        Ok(Admitted {
            tenant: route.tenant,
            tenant_id: Arc::clone(&tenant.id),
            max_calls: tenant.max_calls,
            flow: route.flow,
            caller: caller.chars().take(64).collect(),
            called,
            trunk,
            feature: None,
        })
    }

    fn authenticate_agent(
        &mut self,
        now: SystemTime,
        source: SocketAddr,
        register: &Request,
    ) -> Result<AgentRef, Refusal> {
        let to = register.to().map_err(|_| Refusal {
            status: StatusCode::BAD_REQUEST,
            reason: "Bad To Header",
            headers: vec![],
            why: "REGISTER without a usable To".into(),
        })?;
        self.agent_digest(now, source, register, &to.uri)
    }
}

impl Gate {
    /// The agent whose address of record is `aor`, if `req` carries that
    /// agent's digest credentials (a REGISTER's To, a feature call's From).
    fn agent_digest(
        &mut self,
        now: SystemTime,
        source: SocketAddr,
        req: &Request,
        aor: &sip::uri::Uri,
    ) -> Result<AgentRef, Refusal> {
        let ip = source.ip().to_canonical();
        self.refuse_locked(ip, now)?;
        let to = aor;
        let extension = user_of(to);
        let host = to
            .host
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        // The same lookup and the same hashing for every name: the answer
        // never tells which extensions exist.
        let agent = self
            .agents
            .read()
            .ok()
            .and_then(|d| d.resolve(&host, &extension).cloned());
        let digest = self.register_digest.clone();
        let found = agent.clone();
        let lookup = move |u: &str, alg: Algorithm| {
            let a = found.filter(|a| a.extension == u)?;
            a.ha1(alg).map(|h| Secret::Ha1(alg, h.to_owned()))
        };
        let algorithms = self.register_algorithms.clone();
        self.check_digest(now, ip, req, (&digest, &algorithms), "an agent", lookup)?;
        // The credentials were valid: for an agent the lookup found.
        let agent = agent.ok_or_else(|| Refusal {
            status: StatusCode::FORBIDDEN,
            reason: "Forbidden",
            headers: vec![],
            why: "no such agent".into(),
        })?;
        Ok(AgentRef {
            tenant: agent.tenant,
            tenant_id: agent.tenant_id,
            extension: agent.extension,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use sip::message::{Limits, Message, parse_message};

    use super::*;
    use crate::config::Config;

    fn gate() -> Gate {
        let cfg = Config::default();
        let registry = Arc::new(Registry::new(&cfg, std::path::Path::new(".")).expect("registry"));
        let trunk = TrunkConfig {
            name: "carrier".into(),
            networks: vec!["198.51.100.0/24".into()],
            username: Some("carrier".into()),
            password: Some("right-password".into()),
            flood_exempt: false,
        };
        Gate::new(
            registry,
            &[trunk],
            [9; 32],
            lockout::Limits::default(),
            Arc::default(),
            ("dhwani", vec![Algorithm::Sha256, Algorithm::Md5]),
        )
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn invite(uri: &str, authorization: Option<&str>) -> Request {
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let text = format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.5:5060;branch=z9hG4bK1\r\nFrom: <sip:caller@198.51.100.5>;tag=1\r\nTo: <{uri}>\r\nCall-ID: g1\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@198.51.100.5>\r\n{auth}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        match parse_message(Bytes::from(text), &Limits::default()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    /// The challenges of a refusal, SHA-256 first.
    fn challenges(r: &Refusal) -> Vec<String> {
        r.headers
            .iter()
            .filter(|(n, _)| *n == HeaderName::WwwAuthenticate)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Answers the SHA-256 challenge of `r` for `uri`.
    fn answer(r: &Refusal, uri: &str, user: &str, password: &str, nc: u32) -> String {
        let ch = sip::header::AuthParams::parse(&Bytes::from(challenges(r)[0].clone()))
            .expect("challenge");
        sip::auth::authorization(&ch, "INVITE", uri, user, password, "c0ffee", nc)
            .expect("authorization")
    }

    fn source(last: u8) -> SocketAddr {
        SocketAddr::from(([198, 51, 100, last], 5060))
    }

    const URI: &str = "sip:1000@203.0.113.1";

    #[test]
    fn sha256_is_offered_before_md5_and_the_challenge_is_the_same_for_any_user() {
        let mut g = gate();
        let first = g
            .admit(at(0), source(5), &invite(URI, None))
            .expect_err("challenge");
        let c = challenges(&first);
        assert_eq!(c.len(), 2);
        assert!(
            c[0].contains("algorithm=SHA-256") && c[1].contains("algorithm=MD5"),
            "{c:?}"
        );
        // Wrong password for the real user, and any password for a user
        // that does not exist: the same answer but for the fresh nonce.
        let wrong = answer(&first, URI, "carrier", "guess", 1);
        let unknown = answer(&first, URI, "nobody", "guess", 1);
        let a = g
            .admit(at(1), source(5), &invite(URI, Some(&wrong)))
            .expect_err("refused");
        let b = g
            .admit(at(1), source(6), &invite(URI, Some(&unknown)))
            .expect_err("refused");
        let masked = |r: &Refusal| -> Vec<String> {
            challenges(r)
                .iter()
                .map(|c| {
                    let start = c.find("nonce=\"").expect("nonce") + 7;
                    let end = start + c[start..].find('"').expect("end");
                    format!("{}{}", &c[..start], &c[end..])
                })
                .collect()
        };
        assert_eq!((a.status, a.reason), (b.status, b.reason));
        assert_eq!(masked(&a), masked(&b));
        assert_ne!(
            challenges(&a),
            challenges(&b),
            "each challenge has its own nonce"
        );
    }

    #[test]
    fn a_replayed_authorization_and_one_for_another_uri_are_refused() {
        let mut g = gate();
        let ch = g
            .admit(at(0), source(5), &invite(URI, None))
            .expect_err("challenge");
        let good = answer(&ch, URI, "carrier", "right-password", 1);
        // Routing fails (no tenant owns 1000 here): past the trunk check.
        let first = g
            .admit(at(1), source(5), &invite(URI, Some(&good)))
            .expect_err("no route");
        assert_eq!(first.status, StatusCode::NOT_FOUND);
        let replay = g
            .admit(at(2), source(5), &invite(URI, Some(&good)))
            .expect_err("replay");
        assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "{}", replay.why);
        assert!(replay.why.contains("replayed"), "{}", replay.why);
        let other = "sip:2000@203.0.113.1";
        let lifted = g
            .admit(at(3), source(5), &invite(other, Some(&good)))
            .expect_err("lifted");
        assert!(lifted.why.contains("Request-URI"), "{}", lifted.why);
    }

    #[test]
    fn ten_wrong_guesses_lock_the_source_out_even_for_the_right_password() {
        let mut g = gate();
        let ch = g
            .admit(at(0), source(5), &invite(URI, None))
            .expect_err("challenge");
        for i in 0..10u32 {
            let guess = answer(&ch, URI, "carrier", &format!("guess{i}"), i + 1);
            let r = g
                .admit(at(1), source(5), &invite(URI, Some(&guess)))
                .expect_err("wrong");
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
        let right = answer(&ch, URI, "carrier", "right-password", 50);
        let locked = g
            .admit(at(2), source(5), &invite(URI, Some(&right)))
            .expect_err("locked");
        assert_eq!(locked.status, StatusCode::FORBIDDEN, "{}", locked.why);
        assert!(locked.why.contains("locked out"));
        // Another source with the right password is not affected.
        let ch2 = g
            .admit(at(2), source(6), &invite(URI, None))
            .expect_err("challenge");
        let right2 = answer(&ch2, URI, "carrier", "right-password", 1);
        let ok = g
            .admit(at(3), source(6), &invite(URI, Some(&right2)))
            .expect_err("no route");
        assert_eq!(
            ok.status,
            StatusCode::NOT_FOUND,
            "past the trunk: {}",
            ok.why
        );
        // Ten minutes later the locked source may try again.
        let later = g
            .admit(at(603), source(5), &invite(URI, None))
            .expect_err("challenge");
        assert_eq!(later.status, StatusCode::UNAUTHORIZED);
    }

    fn register(authorization: Option<&str>) -> Request {
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let text = format!(
            "REGISTER sip:203.0.113.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKr\r\nFrom: <sip:1001@203.0.113.1>;tag=1\r\nTo: <sip:1001@203.0.113.1>\r\nCall-ID: r1\r\nCSeq: 1 REGISTER\r\nContact: <sip:1001@192.0.2.9>\r\n{auth}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        match parse_message(Bytes::from(text), &Limits::default()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn agent_gate() -> Gate {
        let cfg = Config::parse(
            "[[tenants]]\nid = \"demo\"\nnumbers = [\"1000\"]\nflows_dir = \"x\"\n",
            "test",
        )
        .expect("config");
        let row = crate::store::agents::AgentRow {
            tenant: "demo".into(),
            extension: "1001".into(),
            name: "Asha".into(),
            ha1_sha256: Some(super::super::agents::ha1(
                Algorithm::Sha256,
                "1001",
                "dhwani",
                "agent-pw",
            )),
            ha1_md5: Some(super::super::agents::ha1(
                Algorithm::Md5,
                "1001",
                "dhwani",
                "agent-pw",
            )),
            skills: String::new(),
            supervisor: false,
            created_ms: 0,
        };
        let dir = Directory::new(&cfg, &[row]);
        let registry = Arc::new(
            Registry::new(&Config::default(), std::path::Path::new(".")).expect("registry"),
        );
        Gate::new(
            registry,
            &[],
            [9; 32],
            lockout::Limits::default(),
            Arc::new(std::sync::RwLock::new(dir)),
            ("dhwani", vec![Algorithm::Sha256, Algorithm::Md5]),
        )
    }

    fn answer_register(r: &Refusal, which: usize, user: &str, password: &str, nc: u32) -> String {
        let ch = sip::header::AuthParams::parse(&Bytes::from(challenges(r)[which].clone()))
            .expect("challenge");
        sip::auth::authorization(
            &ch,
            "REGISTER",
            "sip:203.0.113.1",
            user,
            password,
            "c0ffee",
            nc,
        )
        .expect("authorization")
    }

    #[test]
    fn an_agent_registers_with_sha256_or_md5_and_ten_wrong_guesses_lock_the_source() {
        let mut g = agent_gate();
        let src = SocketAddr::from(([192, 0, 2, 9], 5060));
        let ch = g
            .authenticate_agent(at(0), src, &register(None))
            .expect_err("challenge");
        assert_eq!(ch.status, StatusCode::UNAUTHORIZED);
        for which in [0, 1] {
            let ok = answer_register(&ch, which, "1001", "agent-pw", 1 + which as u32);
            let a = g
                .authenticate_agent(at(1), src, &register(Some(&ok)))
                .expect("agent");
            assert_eq!((a.tenant, a.extension.as_str()), (0, "1001"));
        }
        // A user that does not exist is challenged exactly as a known one.
        let unknown = answer_register(&ch, 0, "1009", "agent-pw", 9);
        let r = g
            .authenticate_agent(at(1), src, &register(Some(&unknown)))
            .expect_err("unknown");
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let attacker = SocketAddr::from(([192, 0, 2, 66], 5060));
        let ch2 = g
            .authenticate_agent(at(2), attacker, &register(None))
            .expect_err("challenge");
        for i in 0..10u32 {
            let guess = answer_register(&ch2, 0, "1001", &format!("guess{i}"), i + 1);
            let r = g
                .authenticate_agent(at(3), attacker, &register(Some(&guess)))
                .expect_err("wrong");
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
        let right = answer_register(&ch2, 0, "1001", "agent-pw", 50);
        let locked = g
            .authenticate_agent(at(4), attacker, &register(Some(&right)))
            .expect_err("locked");
        assert_eq!(locked.status, StatusCode::FORBIDDEN);
        // The agent's own phone is not affected.
        let mine = answer_register(&ch, 0, "1001", "agent-pw", 60);
        assert!(
            g.authenticate_agent(at(4), src, &register(Some(&mine)))
                .is_ok()
        );
    }
}
