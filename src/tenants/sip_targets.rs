//! Transfers to SIP URIs on other hosts: which hosts a tenant's
//! transfers may reach (`transfer_hosts`), the URI we send to, and the
//! address it resolves to (checked like a fetch's: loopback, private and
//! reserved addresses are refused unless `transfer_private_networks` lets
//! the range through).
//!
//! Only UDP is used, and a name is resolved with its A/AAAA records (the
//! system's resolver) at the URI's port or 5060: no NAPTR/SRV lookup
//! (RFC 3263 §4.1-4.2), so a host whose SIP service is published only by
//! SRV must be listed with its port (`pbx.example.in:5080`) or as the
//! address the SRV record names.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use ipnet::IpNet;
use sip::uri::{Host, Scheme, Uri};

use super::fetch::refused_by_default;

/// How long resolving a target's host may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The port of a SIP URI without one (RFC 3261 §19.1.2).
const SIP_PORT: u16 = 5060;

/// One `transfer_hosts` entry: a host, and the one port it may be called
/// at (`None`: any).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostRule {
    /// Lower-case; IPv6 without brackets.
    host: String,
    port: Option<u16>,
}

/// A tenant's rules for transfers to other SIP hosts.
#[derive(Debug, Clone, Default)]
pub struct UriTargets {
    hosts: Vec<HostRule>,
    private_ok: Vec<IpNet>,
}

/// A transfer's target on an allowed host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// What we send as the Request-URI and the To:
    /// `sip:USER@HOST[:PORT]` (the target's parameters and headers are
    /// dropped: a `maddr` would send the request elsewhere).
    pub uri: String,
    /// The host to resolve (IPv6 without brackets).
    pub host: String,
    /// The port to send to.
    pub port: u16,
}

/// Why a target on an allowed host cannot be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl UriTargets {
    /// From a tenant's `transfer_hosts` (`HOST` or `HOST:PORT`) and
    /// `transfer_private_networks` (CIDR); the error names the bad entry.
    pub fn new(hosts: &[String], private_networks: &[String]) -> Result<UriTargets, String> {
        let hosts = hosts
            .iter()
            .map(|h| {
                crate::config::transfer_host(h)
                    .map(|(host, port)| HostRule { host, port })
                    .ok_or_else(|| {
                        format!(
                            "`{h}` is not HOST or HOST:PORT (e.g. pbx.example.in, 203.0.113.7:5070, [2001:db8::7]:5060)"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let private_ok = private_networks
            .iter()
            .map(|n| {
                n.parse::<IpNet>()
                    .map_err(|_| format!("`{n}` is not a network (CIDR, e.g. 10.1.0.0/16)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(UriTargets { hosts, private_ok })
    }

    /// Whether `target` (a flow's transfer target or a Refer-To URI) is a
    /// SIP URI on one of the tenant's hosts: `None` when it is not (it may
    /// still be an extension or a number), else the URI to call or why it
    /// cannot be called.
    pub fn target(&self, target: &str) -> Option<Result<Target, Refused>> {
        if self.hosts.is_empty() {
            return None;
        }
        let uri = Uri::parse(&Bytes::copy_from_slice(target.as_bytes())).ok()?;
        let (host, shown) = match uri.host.as_ref()? {
            Host::Domain(d) => {
                let d = String::from_utf8_lossy(d).to_ascii_lowercase();
                let d = d.trim_end_matches('.').to_owned();
                (d.clone(), d)
            }
            Host::V4(a) => (a.to_string(), a.to_string()),
            Host::V6(a) => (a.to_string(), format!("[{a}]")),
        };
        let port = uri.port.unwrap_or(SIP_PORT);
        if !self
            .hosts
            .iter()
            .any(|r| r.host == host && r.port.is_none_or(|p| p == port))
        {
            return None;
        }
        Some(self.checked(&uri, host, shown, port))
    }

    fn checked(
        &self,
        uri: &Uri,
        host: String,
        shown: String,
        port: u16,
    ) -> Result<Target, Refused> {
        if uri.scheme != Scheme::Sip {
            return Err(Refused(
                "only sip: URIs are called (no TLS to other hosts)".into(),
            ));
        }
        if let Some(t) = uri.transport_param()
            && t != "udp"
        {
            return Err(Refused(format!(
                "transport={t}: only UDP is used for transfers to other hosts"
            )));
        }
        if uri.params.get(b"maddr").is_some() {
            return Err(Refused("a maddr parameter is not followed".into()));
        }
        // The user as written (escapes kept), only RFC 3261 user characters.
        let user = uri
            .user
            .as_deref()
            .filter(|u| {
                !u.is_empty()
                    && u.len() <= 64
                    && u.iter()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()%&=+$,;?/".contains(b))
            })
            .ok_or_else(|| Refused("the URI names no user (sip:USER@HOST)".into()))?;
        let user = String::from_utf8_lossy(user);
        let uri = if port == SIP_PORT && uri.port.is_none() {
            format!("sip:{user}@{shown}")
        } else {
            format!("sip:{user}@{shown}:{port}")
        };
        Ok(Target { uri, host, port })
    }

    /// True when `ip` may be called: not loopback, private or reserved,
    /// or in one of the tenant's `transfer_private_networks`.
    pub fn address_allowed(&self, ip: IpAddr) -> bool {
        !refused_by_default(ip) || self.private_ok.iter().any(|n| n.contains(&ip))
    }

    /// The addresses `t` resolves to that may be called (an IP literal is
    /// itself), within [`RESOLVE_TIMEOUT`]; an error says why none.
    pub async fn resolve(&self, t: &Target) -> Result<Vec<SocketAddr>, Refused> {
        let found: Vec<SocketAddr> = match t.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, t.port)],
            Err(_) => tokio::time::timeout(
                RESOLVE_TIMEOUT,
                tokio::net::lookup_host((t.host.as_str(), t.port)),
            )
            .await
            .map_err(|_| Refused(format!("resolving {} timed out", t.host)))?
            .map_err(|_| Refused(format!("{} does not resolve", t.host)))?
            .collect(),
        };
        let ok: Vec<SocketAddr> = found
            .iter()
            .copied()
            .filter(|a| self.address_allowed(a.ip()))
            .collect();
        match (found.first(), ok.is_empty()) {
            (None, _) => Err(Refused(format!("{} does not resolve", t.host))),
            (Some(a), true) => Err(Refused(format!(
                "{} is a private or reserved address (transfer_private_networks lets a range through)",
                a.ip()
            ))),
            (Some(_), false) => Ok(ok),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(hosts: &[&str], private: &[&str]) -> UriTargets {
        let h: Vec<String> = hosts.iter().map(|s| (*s).to_owned()).collect();
        let p: Vec<String> = private.iter().map(|s| (*s).to_owned()).collect();
        UriTargets::new(&h, &p).expect("rules")
    }

    #[test]
    fn only_listed_hosts_and_ports_are_targets() {
        let t = targets(
            &["PBX.acme.example", "203.0.113.7:5070", "[2001:DB8:0::7]"],
            &[],
        );
        let got = t
            .target("sip:desk@pbx.acme.example")
            .expect("listed")
            .expect("ok");
        assert_eq!(got.uri, "sip:desk@pbx.acme.example");
        assert_eq!((got.host.as_str(), got.port), ("pbx.acme.example", 5060));
        let got = t
            .target("sip:desk@PBX.Acme.Example.:5090;user=phone?Subject=x")
            .expect("listed, any port")
            .expect("ok");
        assert_eq!(got.uri, "sip:desk@pbx.acme.example:5090");
        let got = t
            .target("sip:+9180@203.0.113.7:5070")
            .expect("listed")
            .expect("ok");
        assert_eq!(got.uri, "sip:+9180@203.0.113.7:5070");
        let got = t
            .target("sip:a%20b@[2001:db8::7]")
            .expect("listed")
            .expect("ok");
        assert_eq!(got.uri, "sip:a%20b@[2001:db8::7]");
        assert_eq!(got.host, "2001:db8::7");
        for other in [
            "sip:desk@203.0.113.7",
            "sip:desk@203.0.113.7:5060",
            "sip:desk@evil.example",
            "sip:desk@pbx.acme.example.evil.example",
            "1002",
            "+919812345678",
            "tel:+919812345678",
            "sip:",
        ] {
            assert_eq!(t.target(other), None, "{other}");
        }
        assert_eq!(
            UriTargets::default().target("sip:desk@pbx.acme.example"),
            None
        );
    }

    #[test]
    fn targets_on_listed_hosts_that_cannot_be_called_say_why() {
        let t = targets(&["pbx.acme.example"], &[]);
        for (uri, why) in [
            ("sips:desk@pbx.acme.example", "only sip:"),
            ("sip:desk@pbx.acme.example;transport=tcp", "transport=tcp"),
            ("sip:desk@pbx.acme.example;maddr=10.0.0.1", "maddr"),
            ("sip:pbx.acme.example", "no user"),
        ] {
            match t.target(uri) {
                Some(Err(Refused(r))) => assert!(r.contains(why), "{uri}: {r}"),
                other => panic!("{uri}: {other:?}"),
            }
        }
        assert!(
            t.target("sip:desk@pbx.acme.example;transport=UDP")
                .expect("listed")
                .is_ok()
        );
    }

    #[test]
    fn bad_rules_are_refused_with_the_entry_named() {
        for bad in [
            "",
            "pbx.example:0",
            "pbx.example:99999",
            "a b",
            "[::1",
            "[nope]:5060",
            "sip:x@y",
        ] {
            let e = UriTargets::new(&[bad.to_owned()], &[]).expect_err(bad);
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
        let e = UriTargets::new(&[], &["10.0.0.0/33".into()]).expect_err("cidr");
        assert!(e.contains("10.0.0.0/33"), "{e}");
    }

    #[tokio::test]
    async fn private_and_reserved_addresses_are_refused_unless_a_network_lets_them_through() {
        let t = targets(&["127.0.0.1:5099", "10.1.2.3", "localhost:5099"], &[]);
        for uri in [
            "sip:a@127.0.0.1:5099",
            "sip:a@10.1.2.3",
            "sip:a@localhost:5099",
        ] {
            let target = t.target(uri).expect("listed").expect("ok");
            let e = t.resolve(&target).await.expect_err(uri);
            assert!(e.0.contains("private or reserved"), "{uri}: {e}");
        }
        let t = targets(&["127.0.0.1:5099", "10.1.2.3"], &["127.0.0.0/8"]);
        let target = t
            .target("sip:a@127.0.0.1:5099")
            .expect("listed")
            .expect("ok");
        assert_eq!(
            t.resolve(&target).await.expect("let through"),
            ["127.0.0.1:5099".parse::<SocketAddr>().expect("addr")]
        );
        let target = t.target("sip:a@10.1.2.3").expect("listed").expect("ok");
        assert!(t.resolve(&target).await.is_err(), "10/8 is not let through");
        assert!(t.address_allowed("198.51.99.1".parse().expect("ip")));
    }
}
