//! The agent directory: who may register a softphone, per tenant, with the
//! digest HA1s to check them by (never a password). Agents come from the
//! config (`[[tenants.agents]]`) and from the store (`dhwani agents add`);
//! the config wins where both name one extension.
//!
//! A REGISTER names an address of record `sip:EXT@DOMAIN`. A tenant with
//! a `sip_domain` owns the extensions under that domain; under any other
//! host (the server's own address, as most phones are set up) an
//! extension belongs to the one tenant without a domain that has it.

use std::collections::HashMap;
use std::sync::Arc;

use sip::auth::Algorithm;

use crate::config::Config;
use crate::store::agents::AgentRow;

/// `H(extension:realm:password)` in hex.
pub fn ha1(algorithm: Algorithm, extension: &str, realm: &str, password: &str) -> String {
    algorithm.hash(format!("{extension}:{realm}:{password}").as_bytes())
}

/// A password for a softphone: 16 characters from an alphabet without
/// look-alikes (about 90 bits).
pub fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY345679";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The stored row of an agent with `password` under `realm`.
pub fn agent_row(
    tenant: &str,
    extension: &str,
    name: &str,
    realm: &str,
    password: &str,
) -> AgentRow {
    AgentRow {
        tenant: tenant.to_owned(),
        extension: extension.to_owned(),
        name: name.to_owned(),
        ha1_sha256: Some(ha1(Algorithm::Sha256, extension, realm, password)),
        ha1_md5: Some(ha1(Algorithm::Md5, extension, realm, password)),
        skills: String::new(),
        supervisor: false,
        created_ms: jiff::Timestamp::now().as_millisecond(),
    }
}

/// One agent's identity and credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Tenant index (into the registry).
    pub tenant: usize,
    /// Tenant id.
    pub tenant_id: Arc<str>,
    /// Extension.
    pub extension: String,
    /// Display name.
    pub name: String,
    /// SHA-256 HA1.
    pub ha1_sha256: Option<String>,
    /// MD5 HA1.
    pub ha1_md5: Option<String>,
    /// Skills and levels.
    pub skills: Vec<(String, u32)>,
    /// May listen to, whisper to and barge into other agents' calls.
    pub supervisor: bool,
}

impl Agent {
    /// The HA1 for `algorithm`, if the agent has one.
    pub fn ha1(&self, algorithm: Algorithm) -> Option<&str> {
        match algorithm {
            Algorithm::Sha256 => self.ha1_sha256.as_deref(),
            Algorithm::Md5 => self.ha1_md5.as_deref(),
        }
    }
}

/// Agents by tenant and extension.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    agents: HashMap<(usize, String), Agent>,
    domains: HashMap<String, usize>,
    /// Tenants without a domain.
    undomained: Vec<usize>,
}

impl Directory {
    /// From the config's agents and the store's rows.
    pub fn new(config: &Config, stored: &[AgentRow]) -> Directory {
        let mut d = Directory::default();
        for (i, t) in config.tenants.iter().enumerate() {
            match &t.sip_domain {
                Some(dom) => {
                    d.domains.insert(dom.to_ascii_lowercase(), i);
                }
                None => d.undomained.push(i),
            }
        }
        let index: HashMap<&str, usize> = config
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str(), i))
            .collect();
        for row in stored {
            let Some(&i) = index.get(row.tenant.as_str()) else {
                continue;
            };
            d.agents.insert(
                (i, row.extension.clone()),
                Agent {
                    tenant: i,
                    tenant_id: Arc::from(row.tenant.as_str()),
                    extension: row.extension.clone(),
                    name: row.name.clone(),
                    ha1_sha256: row.ha1_sha256.clone(),
                    ha1_md5: row.ha1_md5.clone(),
                    skills: crate::config::parse_skills(
                        &row.skills
                            .split(',')
                            .filter(|s| !s.trim().is_empty())
                            .map(str::to_owned)
                            .collect::<Vec<_>>(),
                    )
                    .unwrap_or_default(),
                    supervisor: row.supervisor,
                },
            );
        }
        for (i, t) in config.tenants.iter().enumerate() {
            for a in &t.agents {
                d.agents.insert(
                    (i, a.extension.clone()),
                    Agent {
                        tenant: i,
                        tenant_id: Arc::from(t.id.as_str()),
                        extension: a.extension.clone(),
                        name: a.name.clone(),
                        ha1_sha256: a.ha1_sha256.as_ref().map(|h| h.to_ascii_lowercase()),
                        ha1_md5: a.ha1_md5.as_ref().map(|h| h.to_ascii_lowercase()),
                        skills: crate::config::parse_skills(&a.skills).unwrap_or_default(),
                        supervisor: a.supervisor,
                    },
                );
            }
        }
        d
    }

    /// The agent `extension` under `host` (the address of record's domain).
    pub fn resolve(&self, host: &str, extension: &str) -> Option<&Agent> {
        if let Some(&t) = self.domains.get(&host.to_ascii_lowercase()) {
            return self.agents.get(&(t, extension.to_owned()));
        }
        let mut found = self
            .undomained
            .iter()
            .filter_map(|t| self.agents.get(&(*t, extension.to_owned())));
        let first = found.next()?;
        // Two tenants without a domain share the extension: neither is
        // meant, and guessing would let one tenant's agent take the other's.
        found.next().is_none().then_some(first)
    }

    /// The agent `extension` of tenant `tenant`.
    pub fn get(&self, tenant: usize, extension: &str) -> Option<&Agent> {
        self.agents.get(&(tenant, extension.to_owned()))
    }

    /// Every agent.
    pub fn iter(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// How many agents.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// No agents at all.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text, "test").expect("config")
    }

    fn row(tenant: &str, ext: &str) -> AgentRow {
        AgentRow {
            tenant: tenant.into(),
            extension: ext.into(),
            name: format!("{tenant}-{ext}"),
            ha1_sha256: Some(ha1(Algorithm::Sha256, ext, "dhwani", "pw")),
            ha1_md5: None,
            skills: String::new(),
            supervisor: false,
            created_ms: 0,
        }
    }

    const TWO: &str = "[[tenants]]\nid = \"a\"\nnumbers = [\"1\"]\nflows_dir = \"x\"\n\n[[tenants]]\nid = \"b\"\nnumbers = [\"2\"]\nflows_dir = \"y\"\nsip_domain = \"b.example\"\n";

    #[test]
    fn a_domain_picks_its_tenant_and_a_bare_address_the_one_tenant_without() {
        let d = Directory::new(&config(TWO), &[row("a", "1001"), row("b", "1001")]);
        assert_eq!(d.resolve("127.0.0.1", "1001").map(|a| a.tenant), Some(0));
        assert_eq!(d.resolve("B.example", "1001").map(|a| a.tenant), Some(1));
        assert!(d.resolve("b.example", "1002").is_none());
        assert!(d.resolve("127.0.0.1", "1002").is_none());
    }

    #[test]
    fn an_extension_two_undomained_tenants_share_belongs_to_neither() {
        let text = "[[tenants]]\nid = \"a\"\nnumbers = [\"1\"]\nflows_dir = \"x\"\n\n[[tenants]]\nid = \"b\"\nnumbers = [\"2\"]\nflows_dir = \"y\"\n";
        let d = Directory::new(
            &config(text),
            &[row("a", "1001"), row("b", "1001"), row("b", "1002")],
        );
        assert!(d.resolve("127.0.0.1", "1001").is_none());
        assert_eq!(d.resolve("127.0.0.1", "1002").map(|a| a.tenant), Some(1));
    }

    #[test]
    fn the_config_overrides_the_store_and_unknown_tenants_are_ignored() {
        let h = ha1(Algorithm::Md5, "1001", "dhwani", "cfg");
        let text = format!(
            "[[tenants]]\nid = \"a\"\nnumbers = [\"1\"]\nflows_dir = \"x\"\n[[tenants.agents]]\nextension = \"1001\"\nname = \"Cfg\"\nha1_md5 = \"{h}\"\n"
        );
        let d = Directory::new(&config(&text), &[row("a", "1001"), row("gone", "1003")]);
        let a = d.get(0, "1001").expect("agent");
        assert_eq!(a.name, "Cfg");
        assert_eq!(a.ha1(Algorithm::Md5), Some(h.as_str()));
        assert_eq!(a.ha1(Algorithm::Sha256), None);
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn stored_skills_are_read_with_their_levels() {
        let mut r = row("a", "1001");
        r.skills = "billing:80,hindi".into();
        let d = Directory::new(&config(TWO), &[r]);
        let a = d.get(0, "1001").expect("agent");
        assert_eq!(
            a.skills,
            vec![("billing".to_owned(), 80), ("hindi".to_owned(), 50)]
        );
        assert!(!a.supervisor);
    }

    #[test]
    fn the_supervisor_role_comes_from_the_store_row_or_the_config() {
        let mut r = row("a", "1001");
        r.supervisor = true;
        let text = format!(
            "{TWO}[[tenants.agents]]\nextension = \"1002\"\nha1_md5 = \"{}\"\nsupervisor = true\n",
            ha1(Algorithm::Md5, "1002", "dhwani", "pw")
        );
        let d = Directory::new(&config(&text), &[r, row("a", "1003")]);
        // (The config's agent belongs to the last tenant, `b`.)
        let role = |t: usize, e: &str| d.get(t, e).map(|a| a.supervisor);
        assert_eq!(
            (role(0, "1001"), role(1, "1002"), role(0, "1003")),
            (Some(true), Some(true), Some(false))
        );
    }
}
