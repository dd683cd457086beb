//! Which hosts a tenant's flows may `fetch` from. The language never
//! decides this: the host side (the server, the simulator) holds an
//! [`AllowList`] from configuration and checks every `Output::Fetch` URL
//! before making the request.

use crate::error::Error;

/// Hosts that `fetch` may call: exact names (`api.acme.in`), wildcard
/// subdomains (`*.acme.in`, which does not match `acme.in` itself), with an
/// optional port (`api.acme.in:8443`; without one only 443 is allowed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<(String, Option<u16>)>,
}

/// A `fetch_allow` entry that is not a host name (with an optional port).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{entry}`: {why}")]
pub struct BadEntry {
    /// The entry as configured.
    pub entry: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl AllowList {
    /// From configured entries; an entry that is not a host name is an error.
    pub fn new<I, S>(entries: I) -> Result<AllowList, BadEntry>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Vec::new();
        for e in entries {
            let e = e.as_ref().trim().to_ascii_lowercase();
            let (host, port) = match e.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_owned(),
                    Some(p.parse::<u16>().map_err(|_| BadEntry {
                        entry: e.clone(),
                        why: "bad port",
                    })?),
                ),
                None => (e.clone(), None),
            };
            let name = host.strip_prefix("*.").unwrap_or(&host);
            let valid = !name.is_empty()
                && name.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !valid {
                return Err(BadEntry {
                    entry: e,
                    why: "not a host name (write api.example.in or *.example.in)",
                });
            }
            out.push((host, port));
        }
        Ok(AllowList { entries: out })
    }

    /// True when nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks a URL from `Output::Fetch`.
    pub fn check(&self, url: &str) -> Result<(), Error> {
        let deny = |reason| {
            Err(Error::FetchDenied {
                url: url.to_owned(),
                reason,
            })
        };
        let Some(rest) = url.strip_prefix("https://") else {
            return deny("only https:// URLs may be fetched");
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return deny("user names in URLs are not allowed");
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || p.bytes().all(|b| b.is_ascii_digit()) => {
                match p.parse::<u16>() {
                    Ok(p) => (h, p),
                    Err(_) => return deny("bad port"),
                }
            }
            _ => (authority, 443),
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return deny("no host");
        }
        let allowed = self.entries.iter().any(|(h, p)| {
            let port_ok = p.map_or(port == 443, |p| p == port);
            let host_ok = match h.strip_prefix("*.") {
                Some(suffix) => {
                    host.len() > suffix.len() + 1
                        && host.ends_with(suffix)
                        && host.as_bytes().get(host.len() - suffix.len() - 1) == Some(&b'.')
                }
                None => *h == host,
            };
            port_ok && host_ok
        });
        if allowed {
            Ok(())
        } else {
            deny("the host is not on the tenant's allow-list")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_wildcard_and_port_rules() {
        let a =
            AllowList::new(["api.acme.in", "*.bank.example", "hooks.acme.in:8443"]).expect("valid");
        assert!(a.check("https://api.acme.in/balance?x=1").is_ok());
        assert!(a.check("https://API.acme.in./x").is_ok());
        assert!(a.check("https://api.acme.in:443/x").is_ok());
        assert!(
            a.check("https://api.acme.in:8443/x").is_err(),
            "port not listed"
        );
        assert!(a.check("https://hooks.acme.in:8443/x").is_ok());
        assert!(a.check("https://hooks.acme.in/x").is_err());
        assert!(a.check("https://ivr.bank.example/x").is_ok());
        assert!(
            a.check("https://bank.example/x").is_err(),
            "wildcard needs a subdomain"
        );
        assert!(a.check("https://evilbank.example/x").is_err());
        assert!(a.check("http://api.acme.in/x").is_err(), "https only");
        assert!(
            a.check("https://api.acme.in@evil.example/x").is_err(),
            "userinfo trick"
        );
        assert!(a.check("https://evil.example/?api.acme.in").is_err());
        assert!(a.check("https://127.0.0.1/x").is_err());
        assert!(AllowList::default().check("https://api.acme.in/").is_err());
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(AllowList::new(["https://api.acme.in"]).is_err());
        assert!(AllowList::new(["api.acme.in:99999"]).is_err());
        assert!(AllowList::new(["*."]).is_err());
    }
}
