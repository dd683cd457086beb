//! The server's [`Admission`]: which sources may call (trunks by network,
//! with optional digest authentication) and where a call goes (the dialled
//! number's tenant and flow).
//!
//! Refusals: a source in no trunk's networks gets 403; a trunk with
//! credentials challenges with 401 until the INVITE carries valid digest
//! credentials; a number no tenant's flow answers gets 404. With no trunks
//! configured every source may call (a warning is logged at startup unless
//! the server listens only on loopback).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use sip::auth::{Algorithm, DigestServer, Rejection, Secret};
use sip::message::{HeaderName, Request, StatusCode};

use crate::config::TrunkConfig;
use crate::tenants::Registry;
use crate::ua::{Admission, Admitted, Refusal};

/// Digest nonces live this long.
const NONCE_TTL_SECS: u64 = 300;

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
}

impl Gate {
    /// From the configured trunks; `secret` keys digest nonces.
    pub fn new(registry: Arc<Registry>, trunks: &[TrunkConfig], secret: [u8; 32]) -> Gate {
        Gate {
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
        &self,
        now_secs: u64,
        source: SocketAddr,
        invite: &Request,
    ) -> Result<String, Refusal> {
        if self.trunks.is_empty() {
            return Ok(String::new());
        }
        let ip = source.ip().to_canonical();
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
        let Some((user, password)) = &trunk.credentials else {
            return Ok(trunk.name.clone());
        };
        let challenge = |stale: bool, why: String| Refusal {
            status: StatusCode::UNAUTHORIZED,
            reason: "Unauthorized",
            headers: vec![(
                HeaderName::WwwAuthenticate,
                self.digest.challenge(now_secs, Algorithm::Md5, stale),
            )],
            why,
        };
        let creds = match invite.headers.credentials(&HeaderName::Authorization) {
            Ok(Some(c)) => c,
            _ => {
                return Err(challenge(
                    false,
                    format!("trunk `{}` needs digest credentials", trunk.name),
                ));
            }
        };
        let lookup = |u: &str| (u == user).then(|| Secret::Password(password.clone()));
        match self.digest.verify(&creds, "INVITE", now_secs, lookup) {
            Ok(_) => Ok(trunk.name.clone()),
            Err(Rejection::Stale) => Err(challenge(true, "stale nonce".into())),
            Err(Rejection::Missing) => Err(challenge(false, "no usable credentials".into())),
            Err(Rejection::Invalid) => Err(challenge(
                false,
                format!("wrong digest credentials for trunk `{}`", trunk.name),
            )),
        }
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
        let now_secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let trunk = self.check_trunk(now_secs, source, invite)?;
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
        let route = self.registry.route(&called).ok_or_else(not_found)?;
        let tenant = self.registry.tenant(route.tenant).ok_or_else(not_found)?;
        Ok(Admitted {
            tenant: route.tenant,
            tenant_id: Arc::clone(&tenant.id),
            max_calls: tenant.max_calls,
            flow: route.flow,
            caller: caller.chars().take(64).collect(),
            called,
            trunk,
        })
    }
}
