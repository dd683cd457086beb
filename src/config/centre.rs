//! The contact-centre parts of the configuration: `[registrar]` (how long
//! agents' phones stay registered), `[[tenants.agents]]` (who may register,
//! with their digest HA1s, never a password) and `[[tenants.queues]]` (the
//! queues a flow's `queue "NAME"` joins).

use serde::Deserialize;

use super::BadValue;

/// `[registrar]`: bindings of agents' phones (RFC 3261 §10.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarConfig {
    /// The digest realm of REGISTER challenges; an agent's HA1 is
    /// `H(extension:realm:password)`.
    pub realm: String,
    /// A shorter nonzero expiry gets 423 Interval Too Brief.
    pub min_expires_secs: u32,
    /// A longer one is cut to this.
    pub max_expires_secs: u32,
    /// When the REGISTER names none.
    pub default_expires_secs: u32,
    /// Contacts (phones) one agent may have registered at once.
    pub max_contacts_per_agent: usize,
    /// Bindings the node holds at most (beyond: 503).
    pub max_bindings: usize,
    /// The name of this node, stored with each binding it holds the flow
    /// of (nodes sharing one database tell their bindings apart by it).
    pub node: String,
    /// How long this node's claims on agents (ringing, on a call) stay
    /// good without its heartbeat (every second): after a node dies, other
    /// nodes sharing the database may ring its agents once this is over.
    pub claim_lease_secs: u64,
    /// Digest algorithms offered to REGISTER, most preferred first
    /// (`SHA-256`, `MD5`). Phones built on libre (baresip 1.x) fail a
    /// REGISTER whose 401 carries any challenge but MD5: `["MD5"]` for them.
    pub digest_algorithms: Vec<String>,
}

impl Default for RegistrarConfig {
    fn default() -> RegistrarConfig {
        RegistrarConfig {
            realm: "dhwani".into(),
            min_expires_secs: 60,
            max_expires_secs: 3600,
            default_expires_secs: 3600,
            max_contacts_per_agent: 5,
            max_bindings: 100_000,
            node: "local".into(),
            claim_lease_secs: 15,
            digest_algorithms: vec!["SHA-256".into(), "MD5".into()],
        }
    }
}

impl RegistrarConfig {
    /// The offered algorithms, in order.
    pub fn algorithms(&self) -> Vec<sip::auth::Algorithm> {
        self.digest_algorithms
            .iter()
            .filter_map(|a| match a.to_ascii_uppercase().as_str() {
                "SHA-256" => Some(sip::auth::Algorithm::Sha256),
                "MD5" => Some(sip::auth::Algorithm::Md5),
                _ => None,
            })
            .collect()
    }

    /// Checks the numbers fit together.
    pub fn validate(&self) -> Result<(), BadValue> {
        if self.digest_algorithms.is_empty()
            || self.algorithms().len() != self.digest_algorithms.len()
        {
            return Err(BadValue(
                "digest_algorithms: a list of \"SHA-256\" and/or \"MD5\"".into(),
            ));
        }
        if self.min_expires_secs == 0
            || self.min_expires_secs > self.default_expires_secs
            || self.default_expires_secs > self.max_expires_secs
        {
            return Err(BadValue(
                "need 0 < min_expires_secs <= default_expires_secs <= max_expires_secs".into(),
            ));
        }
        if self.max_contacts_per_agent == 0 || self.max_bindings == 0 {
            return Err(BadValue(
                "max_contacts_per_agent and max_bindings must be > 0".into(),
            ));
        }
        if self.realm.is_empty() || self.realm.contains('"') {
            return Err(BadValue("realm: a non-empty name without quotes".into()));
        }
        Ok(())
    }
}

/// `[[tenants.agents]]`: an agent who may register a softphone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The extension: the digest username and the user of the agent's
    /// address of record (digits, 2-16).
    pub extension: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// `H(extension:realm:password)` with SHA-256, 64 hex digits
    /// (`dhwani agents ha1` prints it).
    #[serde(default)]
    pub ha1_sha256: Option<String>,
    /// The same with MD5, 32 hex digits, for phones without SHA-256.
    #[serde(default)]
    pub ha1_md5: Option<String>,
    /// Skills with levels, `NAME:LEVEL` (level 1-100, higher is better;
    /// `NAME` alone is level 50), for queues of the `skills` strategy.
    #[serde(default)]
    pub skills: Vec<String>,
    /// The supervisor role: may listen to (`*31EXT`), whisper to (`*32EXT`)
    /// and barge into (`*33EXT`) the call of agent `EXT` of the tenant.
    #[serde(default)]
    pub supervisor: bool,
}

/// Parses `NAME:LEVEL` skills (`NAME` alone is level 50).
pub fn parse_skills(list: &[String]) -> Result<Vec<(String, u32)>, BadValue> {
    list.iter()
        .map(|s| {
            let (name, level) = match s.split_once(':') {
                Some((n, l)) => (n.trim(), l.trim().parse::<u32>().ok()),
                None => (s.trim(), Some(50)),
            };
            match level {
                Some(l) if (1..=100).contains(&l) && !name.is_empty() => {
                    Ok((name.to_ascii_lowercase(), l))
                }
                _ => Err(BadValue(format!(
                    "skill `{s}`: write NAME or NAME:LEVEL with a level from 1 to 100"
                ))),
            }
        })
        .collect()
}

/// Is `ext` a usable extension?
pub fn valid_extension(ext: &str) -> bool {
    (2..=16).contains(&ext.len()) && ext.chars().all(|c| c.is_ascii_digit())
}

impl AgentConfig {
    /// Checks the extension and the HA1s.
    pub fn validate(&self) -> Result<(), BadValue> {
        if !valid_extension(&self.extension) {
            return Err(BadValue(format!(
                "agent extension `{}`: use 2-16 digits",
                self.extension
            )));
        }
        let hex_of = |v: &Option<String>, n: usize| {
            v.as_ref()
                .is_none_or(|h| h.len() == n && h.chars().all(|c| c.is_ascii_hexdigit()))
        };
        if !hex_of(&self.ha1_sha256, 64) || !hex_of(&self.ha1_md5, 32) {
            return Err(BadValue(format!(
                "agent {}: ha1_sha256 is 64 hex digits, ha1_md5 32",
                self.extension
            )));
        }
        parse_skills(&self.skills)?;
        if self.ha1_sha256.is_none() && self.ha1_md5.is_none() {
            return Err(BadValue(format!(
                "agent {}: give ha1_sha256 and/or ha1_md5 (`dhwani agents ha1` prints them), or add the agent with `dhwani agents add`",
                self.extension
            )));
        }
        Ok(())
    }
}

/// How a queue picks the agent to ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Every available agent at once; the first to answer gets the call.
    RingAll,
    /// The agent idle the longest (since their last call ended).
    LongestIdle,
    /// Members in turn, remembering where the last call went.
    RoundRobin,
    /// The agent who took the fewest calls.
    FewestCalls,
    /// The agent with the least talk time.
    LeastTalkTime,
    /// Agents with every skill the queue asks for, the best levels first
    /// (then the longest idle).
    Skills,
}

/// `[[tenants.queues]]`: a queue of callers waiting for agents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// The name a flow's `queue "NAME"` uses.
    pub name: String,
    /// How agents are picked.
    #[serde(default = "default_strategy")]
    pub strategy: Strategy,
    /// Extensions of the agents who take its calls.
    pub members: Vec<String>,
    /// Ring an agent this long, then the next.
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_secs: u64,
    /// After a call the agent rests this long before the next.
    #[serde(default = "default_wrap_up")]
    pub wrap_up_secs: u64,
    /// Callers waiting at most (more: `on overflow`).
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Longest wait (the flow's `max wait` applies when shorter).
    #[serde(default = "default_max_wait")]
    pub max_wait_secs: u64,
    /// Join even when no member is logged in (else: `on overflow` at once).
    #[serde(default)]
    pub join_empty: bool,
    /// Callers leave (`on overflow`) when the last member logs out or
    /// becomes unreachable.
    #[serde(default = "yes")]
    pub leave_empty: bool,
    /// An agent who lets a call ring out is paused ("no answer") rather
    /// than rung again.
    #[serde(default = "yes")]
    pub no_answer_pause: bool,
    /// Service level: answered within this many seconds.
    #[serde(default = "default_service_level")]
    pub service_level_secs: u64,
    /// Skills an agent needs to be rung (the `skills` strategy).
    #[serde(default)]
    pub skills: Vec<String>,
}

fn default_strategy() -> Strategy {
    Strategy::LongestIdle
}
fn default_ring_timeout() -> u64 {
    15
}
fn default_wrap_up() -> u64 {
    10
}
fn default_max_len() -> usize {
    50
}
fn default_max_wait() -> u64 {
    1800
}
fn default_service_level() -> u64 {
    20
}
fn yes() -> bool {
    true
}

impl QueueConfig {
    /// Checks the name, members and times.
    pub fn validate(&self) -> Result<(), BadValue> {
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_ ".contains(c))
        {
            return Err(BadValue(format!(
                "queue name `{}`: 1-64 letters, digits, spaces, - or _",
                self.name
            )));
        }
        if let Some(m) = self.members.iter().find(|m| !valid_extension(m)) {
            return Err(BadValue(format!(
                "queue `{}`: member `{m}` is not an extension (2-16 digits)",
                self.name
            )));
        }
        if !(1..=300).contains(&self.ring_timeout_secs) {
            return Err(BadValue(format!(
                "queue `{}`: ring_timeout_secs is 1 to 300",
                self.name
            )));
        }
        if self.strategy == Strategy::Skills && self.skills.is_empty() {
            return Err(BadValue(format!(
                "queue `{}`: the skills strategy needs `skills = [\"NAME\", ...]`",
                self.name
            )));
        }
        if self.wrap_up_secs > 3600 || self.max_wait_secs == 0 || self.max_len == 0 {
            return Err(BadValue(format!(
                "queue `{}`: wrap_up_secs at most 3600, max_wait_secs and max_len above 0",
                self.name
            )));
        }
        Ok(())
    }
}
