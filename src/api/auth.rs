//! API keys and roles. A key reads `dhk_<id>_<secret>`: the id finds its
//! row, the secret's SHA-256 is compared in constant time with the stored
//! one. Keys are random 256-bit secrets, so a fast hash is enough (no
//! password to stretch); users' passwords, when the console comes, get
//! Argon2id.
//!
//! Failed checks are counted per source address: after
//! `http.auth_max_failures` within `http.auth_window_secs` the address
//! gets 429 for `http.auth_lockout_secs` without its key being looked at,
//! and each lockout is a security event. Other addresses are unaffected.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::store::api_keys::ApiKeyRow;

/// What a key may do, besides its tenant scope.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Every tenant, everything.
    PlatformOperator,
    /// One tenant: everything of it (recordings with the permission).
    TenantAdmin,
    /// One tenant: live and past calls, agents and queues.
    Supervisor,
    /// One tenant: its own agent view.
    Agent,
    /// One tenant (or the platform): the audit log's verification and
    /// the privacy request and grievance lists; never calls or
    /// recordings.
    Auditor,
}

impl Role {
    /// Every role, as named in keys and docs.
    pub const ALL: [Role; 5] = [
        Role::PlatformOperator,
        Role::TenantAdmin,
        Role::Supervisor,
        Role::Agent,
        Role::Auditor,
    ];

    /// The name (`tenant-admin`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Role::PlatformOperator => "platform-operator",
            Role::TenantAdmin => "tenant-admin",
            Role::Supervisor => "supervisor",
            Role::Agent => "agent",
            Role::Auditor => "auditor",
        }
    }

    /// The role of a name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// Something a request does, checked against the key's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read its tenants (id, numbers, flows live).
    Tenants,
    /// Live calls (no personal data).
    LiveCalls,
    /// Past calls: CDRs and timelines (personal data, audited).
    ReadCalls,
    /// Agents and queues.
    Agents,
    /// Check and deploy flows.
    Flows,
    /// The audit log's verification, privacy request and grievance lists,
    /// the holds.
    Audit,
    /// List a tenant's recordings (ids, sizes); decrypting one also needs
    /// the key's recordings permission.
    Recordings,
    /// Place and lift legal holds.
    Holds,
    /// Act on a caller's rights: erasure, consent withdrawal.
    Rights,
    /// Change an agent's state (log in or out, pause, unpause).
    AgentState,
    /// Make tenants, change them, give and take their numbers.
    Provision,
    /// List, make and revoke API keys (of its own tenant, and never with
    /// more than its own role and permissions).
    Keys,
}

impl Permission {
    /// May `role` do this?
    pub fn allowed(self, role: Role) -> bool {
        use Permission::*;
        use Role::*;
        match self {
            Tenants => true,
            LiveCalls | ReadCalls => matches!(role, PlatformOperator | TenantAdmin | Supervisor),
            Agents => matches!(role, PlatformOperator | TenantAdmin | Supervisor | Agent),
            Flows => matches!(role, PlatformOperator | TenantAdmin),
            Audit => matches!(role, PlatformOperator | TenantAdmin | Auditor),
            Recordings => matches!(role, PlatformOperator | TenantAdmin | Supervisor),
            Holds | Rights => matches!(role, PlatformOperator | TenantAdmin),
            AgentState => matches!(role, PlatformOperator | TenantAdmin | Supervisor),
            Provision => role == PlatformOperator,
            Keys => matches!(role, PlatformOperator | TenantAdmin),
        }
    }
}

/// Who is calling: a checked key, or a logged-in user.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's id, or the user's session id.
    pub key_id: String,
    /// The user, when it is a session.
    pub user: Option<String>,
    /// Its tenant; None for a platform operator.
    pub tenant: Option<String>,
    /// Its role.
    pub role: Role,
    /// May read recordings.
    pub recordings: bool,
}

impl Caller {
    /// May it see data of `tenant`?
    pub fn sees(&self, tenant: &str) -> bool {
        match &self.tenant {
            None => self.role == Role::PlatformOperator,
            Some(t) => t == tenant,
        }
    }

    /// The actor named in audit entries.
    pub fn actor(&self) -> String {
        match &self.user {
            Some(u) => format!("user:{u}"),
            None => format!("api-key:{}", self.key_id),
        }
    }
}

/// Whether a key of `role` may have this tenant scope: a platform
/// operator's belongs to no tenant, an auditor's to one or none, every
/// other to one. The error says how to fix it.
pub fn key_scope(tenant: Option<&str>, role: Role) -> Result<(), String> {
    match (tenant, role) {
        (Some(_), Role::PlatformOperator) => {
            Err("a platform operator's key belongs to no tenant; leave the tenant out".into())
        }
        (None, r) if r != Role::PlatformOperator && r != Role::Auditor => {
            Err(format!("a {} key belongs to one tenant; name it", r.name()))
        }
        _ => Ok(()),
    }
}

/// A new key: its row (to store) and the key to show once.
pub fn make_key(
    tenant: Option<&str>,
    role: Role,
    recordings: bool,
    label: &str,
    now_ms: i64,
) -> (ApiKeyRow, String) {
    let id = hex::encode(rand::random::<[u8; 8]>());
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let row = ApiKeyRow {
        key_id: id.clone(),
        tenant: tenant.unwrap_or_default().to_owned(),
        role: role.name().to_owned(),
        recordings,
        secret_sha256: hash(&secret),
        label: label.to_owned(),
        created_ms: now_ms,
        revoked_ms: None,
    };
    (row, format!("dhk_{id}_{secret}"))
}

/// The audit log's subject for a key just made.
pub fn made_key_subject(row: &ApiKeyRow) -> String {
    format!(
        "key {} tenant {} role {}{}",
        row.key_id,
        if row.tenant.is_empty() {
            "(platform)"
        } else {
            &row.tenant
        },
        row.role,
        if row.recordings {
            " with recordings"
        } else {
            ""
        }
    )
}

/// Hex SHA-256 (of a key's or a session's secret).
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Does `secret` hash to `stored` (hex SHA-256)? Compared in constant
/// time over the fixed-length digests.
pub fn secret_matches(secret: &str, stored: &str) -> bool {
    let presented = hash(secret);
    presented.len() == stored.len()
        && presented
            .bytes()
            .zip(stored.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The id and secret of a presented key, if it has the key's shape.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("dhk_")?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 16) && hex(secret, 64)).then_some((id, secret))
}

/// Does `secret` match the stored row (and is the row usable)?
pub fn matches(row: &ApiKeyRow, secret: &str) -> Option<Caller> {
    if !secret_matches(secret, &row.secret_sha256) || row.revoked_ms.is_some() {
        return None;
    }
    let role = Role::parse(&row.role)?;
    let tenant = (!row.tenant.is_empty()).then(|| row.tenant.clone());
    // A tenant-less key is only a platform operator's.
    if tenant.is_none() != (role == Role::PlatformOperator) && role != Role::Auditor {
        return None;
    }
    Some(Caller {
        key_id: row.key_id.clone(),
        user: None,
        tenant,
        role,
        recordings: row.recordings && role != Role::Auditor,
    })
}

/// Limits of the failure counter.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Failures that lock an address out.
    pub max_failures: u32,
    /// Counted within.
    pub window: Duration,
    /// For this long.
    pub lockout: Duration,
    /// Addresses tracked at most (the oldest entries go first).
    pub max_sources: usize,
}

#[derive(Debug)]
struct Source {
    failures: Vec<Instant>,
    locked_until: Option<Instant>,
}

/// Failed checks per source address, or per username (fake time in
/// tests: every method takes `now`).
#[derive(Debug)]
pub struct Failures<K = IpAddr> {
    limits: Limits,
    sources: Mutex<HashMap<K, Source>>,
}

/// What a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Counted.
    Counted,
    /// This one locked the address out.
    LockedOut,
}

impl<K: std::hash::Hash + Eq + Clone> Failures<K> {
    /// A counter.
    pub fn new(limits: Limits) -> Failures<K> {
        Failures {
            limits,
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// Is `ip` locked out now?
    pub fn locked(&self, ip: K, now: Instant) -> bool {
        self.sources
            .lock()
            .ok()
            .and_then(|m| m.get(&ip).and_then(|s| s.locked_until))
            .is_some_and(|until| now < until)
    }

    /// Counts a failed check from `ip`.
    pub fn fail(&self, ip: K, now: Instant) -> Failed {
        let Ok(mut m) = self.sources.lock() else {
            return Failed::Counted;
        };
        if m.len() >= self.limits.max_sources && !m.contains_key(&ip) {
            // Forget addresses whose failures and lockouts are over.
            let window = self.limits.window;
            m.retain(|_, s| {
                s.locked_until.is_some_and(|u| now < u)
                    || s.failures
                        .last()
                        .is_some_and(|t| now.saturating_duration_since(*t) < window)
            });
            if m.len() >= self.limits.max_sources {
                return Failed::Counted;
            }
        }
        let s = m.entry(ip).or_insert(Source {
            failures: Vec::new(),
            locked_until: None,
        });
        let window = self.limits.window;
        s.failures
            .retain(|t| now.saturating_duration_since(*t) < window);
        s.failures.push(now);
        if s.failures.len() as u32 >= self.limits.max_failures {
            s.failures.clear();
            s.locked_until = Some(now + self.limits.lockout);
            return Failed::LockedOut;
        }
        Failed::Counted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_failures: 10,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(600),
            max_sources: 4,
        }
    }

    #[test]
    fn ten_failures_in_a_minute_lock_that_address_for_ten_minutes_and_no_other() {
        let f = Failures::<IpAddr>::new(limits());
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        for i in 0..9 {
            assert_eq!(f.fail(a, t0 + Duration::from_secs(i)), Failed::Counted);
        }
        assert!(!f.locked(a, t0 + Duration::from_secs(9)));
        assert_eq!(f.fail(a, t0 + Duration::from_secs(9)), Failed::LockedOut);
        assert!(f.locked(a, t0 + Duration::from_secs(10)));
        assert!(f.locked(a, t0 + Duration::from_secs(608)));
        assert!(!f.locked(a, t0 + Duration::from_secs(610)));
        assert!(!f.locked(b, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn failures_spread_wider_than_the_window_never_lock() {
        let f = Failures::<IpAddr>::new(limits());
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        for i in 0..30 {
            assert_eq!(f.fail(a, t0 + Duration::from_secs(7 * i)), Failed::Counted);
        }
        assert!(!f.locked(a, t0 + Duration::from_secs(211)));
    }

    #[test]
    fn a_key_matches_only_its_own_secret_and_not_once_revoked() {
        let (mut row, key) = make_key(Some("acme"), Role::Supervisor, false, "wallboard", 1);
        let (id, secret) = split_key(&key).expect("shape");
        assert_eq!(id, row.key_id);
        let c = matches(&row, secret).expect("matches");
        assert_eq!(c.role, Role::Supervisor);
        assert_eq!(c.tenant.as_deref(), Some("acme"));
        assert!(c.sees("acme") && !c.sees("other"));
        let mut wrong = secret.to_owned();
        wrong.replace_range(0..1, if secret.starts_with('0') { "1" } else { "0" });
        assert!(matches(&row, &wrong).is_none());
        row.revoked_ms = Some(2);
        assert!(matches(&row, secret).is_none());
        assert!(split_key("dhk_short_key").is_none());
        assert!(split_key(&format!("{key}x")).is_none());
    }

    #[test]
    fn only_a_platform_operator_sees_every_tenant_and_roles_keep_to_their_permissions() {
        let (row, key) = make_key(None, Role::PlatformOperator, false, "ops", 1);
        let c = matches(&row, split_key(&key).expect("shape").1).expect("op");
        assert!(c.sees("a") && c.sees("b"));
        // A tenant key claiming the operator's role is refused.
        let (mut row, key) = make_key(Some("a"), Role::TenantAdmin, false, "x", 1);
        row.role = "platform-operator".into();
        assert!(matches(&row, split_key(&key).expect("shape").1).is_none());
        assert!(!Permission::ReadCalls.allowed(Role::Auditor));
        assert!(!Permission::ReadCalls.allowed(Role::Agent));
        assert!(Permission::ReadCalls.allowed(Role::Supervisor));
        assert!(!Permission::Flows.allowed(Role::Supervisor));
        assert!(Permission::Audit.allowed(Role::Auditor));
        assert!(!Permission::Audit.allowed(Role::Supervisor));
    }
}
