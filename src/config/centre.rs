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
        }
    }
}

impl RegistrarConfig {
    /// Checks the numbers fit together.
    pub fn validate(&self) -> Result<(), BadValue> {
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
        if self.ha1_sha256.is_none() && self.ha1_md5.is_none() {
            return Err(BadValue(format!(
                "agent {}: give ha1_sha256 and/or ha1_md5 (`dhwani agents ha1` prints them), or add the agent with `dhwani agents add`",
                self.extension
            )));
        }
        Ok(())
    }
}
