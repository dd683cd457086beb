//! The registrar (RFC 3261 §10.3): agents' softphones register contacts
//! for their address of record; calls to an agent go to those contacts.
//!
//! Sans-IO, on wall-clock time passed in (bindings are stored with their
//! expiry as wall time, so they survive a restart). What it owns:
//! - expiry: the contact's `expires` parameter, else the Expires header,
//!   else the default; a nonzero expiry under the minimum is refused with
//!   423 and Min-Expires, one over the maximum is cut to it;
//! - several contacts per agent, up to a cap (a new contact beyond it
//!   replaces the one that expires first, as a rebooted phone's stale
//!   binding would otherwise block it);
//! - unregistering one contact (`expires=0`) or all (`Contact: *` with
//!   `Expires: 0`);
//! - the Call-ID/CSeq rule of §10.3 step 7: a REGISTER older than the
//!   binding it would change is refused, and nothing of it is applied;
//! - Path (RFC 3327): stored, echoed when the phone supports it, and
//!   used as the route of calls to the contact;
//! - the flow the REGISTER came on. Calls to the agent go back over it
//!   (the source address and port, the TCP/TLS connection), never to the
//!   address the Contact names: behind NAT that is a private address, and
//!   from an attacker it is a victim's.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use sip::header::Contacts;
use sip::message::{HeaderName, Request, StatusCode};
use sip::transport::Flow;

use super::AgentRef;

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Shortest nonzero expiry accepted.
    pub min_expires: u32,
    /// Longest granted.
    pub max_expires: u32,
    /// When none is asked for.
    pub default_expires: u32,
    /// Contacts per agent.
    pub max_contacts: usize,
    /// Bindings in all.
    pub max_bindings: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts: 5,
            max_bindings: 100_000,
        }
    }
}

/// One registered contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI as the phone sent it (the Request-URI of calls to it).
    pub contact: String,
    /// The flow the REGISTER came on: where calls to it are sent.
    pub flow: Flow,
    /// When it lapses.
    pub expires: SystemTime,
    /// The REGISTER's Call-ID and CSeq (§10.3 step 7).
    pub call_id: String,
    /// CSeq.
    pub cseq: u32,
    /// Path header values (RFC 3327), the route to the phone.
    pub path: Vec<String>,
}

/// A refused REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Status.
    pub status: StatusCode,
    /// Reason phrase.
    pub reason: &'static str,
    /// Extra headers (Min-Expires).
    pub headers: Vec<(HeaderName, String)>,
}

fn refused(status: StatusCode, reason: &'static str) -> Refused {
    Refused {
        status,
        reason,
        headers: vec![],
    }
}

/// The outcome of an accepted REGISTER: the agent's bindings now, with
/// the seconds left on each, and whether they changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// Every current contact with the seconds it has left.
    pub contacts: Vec<(String, u64)>,
    /// Path values to echo (the phone said `Supported: path`).
    pub path: Vec<String>,
    /// The bindings changed (store them).
    pub changed: bool,
}

/// The bindings of every agent.
#[derive(Debug, Default)]
pub struct Registrar {
    limits: Limits,
    by_agent: HashMap<AgentRef, Vec<Binding>>,
    total: usize,
    /// Every binding's expiry, soonest first, so that finding and
    /// dropping lapsed bindings costs nothing per other binding.
    expiries: BTreeSet<(SystemTime, AgentRef)>,
}

/// Two contact URIs name the same binding: compared without case and
/// without the angle brackets' surroundings (a simplification of §19.1.4
/// that holds for what phones send: they resend their Contact verbatim).
fn same_contact(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

impl Registrar {
    /// Empty, with `limits`.
    pub fn new(limits: Limits) -> Registrar {
        Registrar {
            limits,
            by_agent: HashMap::new(),
            total: 0,
            expiries: BTreeSet::new(),
        }
    }

    /// Bindings held in all.
    pub fn len(&self) -> usize {
        self.total
    }

    /// None held.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// An agent's live contacts at `now`.
    pub fn bindings(&self, agent: &AgentRef, now: SystemTime) -> Vec<&Binding> {
        self.by_agent
            .get(agent)
            .map(|v| v.iter().filter(|b| b.expires > now).collect())
            .unwrap_or_default()
    }

    /// An agent's bindings as held (for storing them).
    pub fn all_bindings(&self, agent: &AgentRef) -> &[Binding] {
        self.by_agent.get(agent).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Puts back a binding read from the store at startup.
    pub fn restore(&mut self, agent: AgentRef, b: Binding) {
        if self.total >= self.limits.max_bindings {
            return;
        }
        let list = self.by_agent.entry(agent.clone()).or_default();
        if list.len() < self.limits.max_contacts
            && !list.iter().any(|x| same_contact(&x.contact, &b.contact))
        {
            self.expiries.insert((b.expires, agent));
            list.push(b);
            self.total += 1;
        }
    }

    /// The earliest expiry.
    pub fn poll_timeout(&self) -> Option<SystemTime> {
        self.expiries.first().map(|(t, _)| *t)
    }

    /// Drops lapsed bindings; returns the agents whose bindings changed.
    pub fn expire(&mut self, now: SystemTime) -> Vec<AgentRef> {
        let mut changed = Vec::new();
        while let Some((at, agent)) = self.expiries.first().cloned() {
            if at > now {
                break;
            }
            self.expiries.remove(&(at, agent.clone()));
            let Some(list) = self.by_agent.get_mut(&agent) else {
                continue;
            };
            let before = list.len();
            list.retain(|b| b.expires > now);
            if list.len() != before {
                self.total -= before - list.len();
                if !changed.contains(&agent) {
                    changed.push(agent.clone());
                }
            }
            if list.is_empty() {
                self.by_agent.remove(&agent);
            }
        }
        changed
    }

    /// Replaces the expiry index entries of `agent` (its bindings changed).
    fn reindex(&mut self, agent: &AgentRef, old: &[Binding]) {
        for b in old {
            self.expiries.remove(&(b.expires, agent.clone()));
        }
        if let Some(list) = self.by_agent.get(agent) {
            for b in list {
                self.expiries.insert((b.expires, agent.clone()));
            }
        }
    }

    /// Applies a REGISTER from `flow` for `agent` (already authenticated)
    /// at `now`.
    pub fn register(
        &mut self,
        now: SystemTime,
        agent: &AgentRef,
        req: &Request,
        flow: Flow,
    ) -> Result<Registered, Refused> {
        let limits = self.limits;
        let bad = |reason| refused(StatusCode::BAD_REQUEST, reason);
        let call_id = req
            .call_id()
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .map_err(|_| bad("Bad Call-ID"))?;
        let cseq = req.cseq().map_err(|_| bad("Bad CSeq"))?.seq;
        let header_expires = req.headers.expires().map_err(|_| bad("Bad Expires"))?;
        let contacts = req.headers.contacts().map_err(|_| bad("Bad Contact"))?;
        let supports_path = req
            .headers
            .tokens(&HeaderName::Supported)
            .iter()
            .any(|t| t.eq_ignore_ascii_case(b"path"));
        let path: Vec<String> = req
            .headers
            .get_all(&HeaderName::Path)
            .flat_map(sip::header::split_commas)
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .take(8)
            .collect();
        // What the request asks, checked whole before anything changes.
        enum Change {
            Upsert(String, u32),
            Remove(String),
        }
        let mut changes = Vec::new();
        let mut star = false;
        match &contacts {
            Contacts::Star => {
                // §10.3 step 6: `*` only with Expires: 0.
                if header_expires != Some(0) {
                    return Err(bad("Contact * needs Expires: 0"));
                }
                star = true;
            }
            Contacts::List(list) => {
                if list.len() > limits.max_contacts {
                    return Err(bad("Too Many Contacts"));
                }
                for c in list {
                    if !matches!(c.uri.scheme, sip::uri::Scheme::Sip | sip::uri::Scheme::Sips) {
                        return Err(refused(
                            StatusCode::UNSUPPORTED_URI_SCHEME,
                            "Unsupported URI Scheme",
                        ));
                    }
                    let asked = match c.params.get(b"expires") {
                        Some(Some(v)) => std::str::from_utf8(&v)
                            .ok()
                            .and_then(|t| t.trim().parse::<u64>().ok())
                            .map(|n| n.min(u64::from(u32::MAX)) as u32)
                            .ok_or_else(|| bad("Bad expires parameter"))?,
                        _ => header_expires.unwrap_or(limits.default_expires),
                    };
                    let uri = c.uri.to_string();
                    if asked == 0 {
                        changes.push(Change::Remove(uri));
                    } else if asked < limits.min_expires {
                        return Err(Refused {
                            status: StatusCode::INTERVAL_TOO_BRIEF,
                            reason: "Interval Too Brief",
                            headers: vec![(HeaderName::MinExpires, limits.min_expires.to_string())],
                        });
                    } else {
                        changes.push(Change::Upsert(uri, asked.min(limits.max_expires)));
                    }
                }
            }
        }
        let existing = self.by_agent.get(agent).map(Vec::as_slice).unwrap_or(&[]);
        // §10.3 step 7: the same Call-ID with a CSeq not above the
        // binding's means an old or replayed request: refused whole.
        let stale = |contact: Option<&str>| {
            existing.iter().any(|b| {
                contact.is_none_or(|c| same_contact(&b.contact, c))
                    && b.call_id == call_id
                    && cseq <= b.cseq
            })
        };
        if star && stale(None) {
            return Err(bad("Stale CSeq"));
        }
        for ch in &changes {
            let c = match ch {
                Change::Upsert(c, _) | Change::Remove(c) => c,
            };
            if stale(Some(c)) {
                return Err(bad("Stale CSeq"));
            }
        }
        let adds = changes
            .iter()
            .filter(|c| matches!(c, Change::Upsert(u, _) if !existing.iter().any(|b| same_contact(&b.contact, u))))
            .count();
        if adds > 0 && self.total + adds > limits.max_bindings {
            return Err(Refused {
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: "Registrar Full",
                headers: vec![(HeaderName::RetryAfter, "60".into())],
            });
        }
        // Apply.
        let list = self.by_agent.entry(agent.clone()).or_default();
        let before = list.clone();
        if star {
            list.clear();
        }
        for ch in changes {
            match ch {
                Change::Remove(c) => list.retain(|b| !same_contact(&b.contact, &c)),
                Change::Upsert(c, secs) => {
                    let b = Binding {
                        contact: c.clone(),
                        flow,
                        expires: now + Duration::from_secs(u64::from(secs)),
                        call_id: call_id.clone(),
                        cseq,
                        path: path.clone(),
                    };
                    match list.iter_mut().find(|x| same_contact(&x.contact, &c)) {
                        Some(x) => *x = b,
                        None => {
                            if list.len() >= limits.max_contacts {
                                // The binding that lapses first makes room.
                                if let Some(i) = list
                                    .iter()
                                    .enumerate()
                                    .min_by_key(|(_, b)| b.expires)
                                    .map(|(i, _)| i)
                                {
                                    list.remove(i);
                                }
                            }
                            list.push(b);
                        }
                    }
                }
            }
        }
        list.retain(|b| b.expires > now);
        let changed = *list != before;
        let contacts = list
            .iter()
            .map(|b| {
                let left = b.expires.duration_since(now).unwrap_or_default().as_secs();
                (b.contact.clone(), left)
            })
            .collect();
        let now_len = list.len();
        if list.is_empty() {
            self.by_agent.remove(agent);
        }
        self.total = self.total + now_len - before.len();
        self.reindex(agent, &before);
        Ok(Registered {
            contacts,
            path: if supports_path { path } else { vec![] },
            changed,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use bytes::Bytes;
    use sip::message::{Limits as ParseLimits, Message, parse_message};
    use sip::transport::Transport;

    use super::*;

    fn agent() -> AgentRef {
        AgentRef {
            tenant: 0,
            tenant_id: Arc::from("demo"),
            extension: "1001".into(),
        }
    }

    fn flow(port: u16) -> Flow {
        Flow {
            transport: Transport::Udp,
            local: SocketAddr::from(([127, 0, 0, 1], 5060)),
            remote: SocketAddr::from(([203, 0, 113, 7], port)),
            conn: None,
        }
    }

    fn register(call_id: &str, cseq: u32, extra: &str) -> Request {
        let text = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK{cseq}\r\nFrom: <sip:1001@127.0.0.1>;tag=a\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match parse_message(Bytes::from(text), &ParseLimits::default()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn expiry_comes_from_the_parameter_the_header_or_the_default_within_bounds() {
        let mut r = Registrar::new(Limits::default());
        let ok = r
            .register(
                t(0),
                &agent(),
                &register(
                    "c",
                    1,
                    "Contact: <sip:1001@10.0.0.5:5062>;expires=120\r\nExpires: 600\r\n",
                ),
                flow(40000),
            )
            .expect("registered");
        assert_eq!(ok.contacts, vec![("sip:1001@10.0.0.5:5062".into(), 120)]);
        let ok = r
            .register(
                t(1),
                &agent(),
                &register(
                    "c",
                    2,
                    "Contact: <sip:1001@10.0.0.5:5062>\r\nExpires: 99999\r\n",
                ),
                flow(40000),
            )
            .expect("registered");
        assert_eq!(ok.contacts[0].1, 3600, "cut to the maximum");
        let ok = r
            .register(
                t(2),
                &agent(),
                &register("c", 3, "Contact: <sip:1001@10.0.0.5:5062>\r\n"),
                flow(40000),
            )
            .expect("registered");
        assert_eq!(ok.contacts[0].1, 3600, "the default");
        let brief = r
            .register(
                t(3),
                &agent(),
                &register("c", 4, "Contact: <sip:1001@10.0.0.5:5062>;expires=30\r\n"),
                flow(40000),
            )
            .expect_err("too brief");
        assert_eq!(brief.status, StatusCode::INTERVAL_TOO_BRIEF);
        assert_eq!(brief.headers, vec![(HeaderName::MinExpires, "60".into())]);
        assert_eq!(
            r.bindings(&agent(), t(3))[0].expires,
            t(2 + 3600),
            "a refused request changes nothing"
        );
    }

    #[test]
    fn bindings_lapse_on_time_and_the_flow_is_the_source_not_the_contact() {
        let mut r = Registrar::new(Limits::default());
        r.register(
            t(0),
            &agent(),
            &register(
                "c",
                1,
                "Contact: <sip:1001@192.168.1.20:5062>;expires=60\r\n",
            ),
            flow(40001),
        )
        .expect("registered");
        let b = r.bindings(&agent(), t(10));
        assert_eq!(
            b[0].flow.remote,
            SocketAddr::from(([203, 0, 113, 7], 40001))
        );
        assert_eq!(r.poll_timeout(), Some(t(60)));
        assert!(r.expire(t(59)).is_empty());
        assert_eq!(r.expire(t(60)), vec![agent()]);
        assert!(r.bindings(&agent(), t(60)).is_empty());
        assert!(r.is_empty());
    }

    #[test]
    fn several_phones_one_unregisters_then_star_removes_all() {
        let mut r = Registrar::new(Limits::default());
        r.register(
            t(0),
            &agent(),
            &register("desk", 1, "Contact: <sip:1001@10.0.0.5>\r\n"),
            flow(1),
        )
        .expect("desk");
        let two = r
            .register(
                t(0),
                &agent(),
                &register("mobile", 1, "Contact: <sip:1001@10.0.0.6>\r\n"),
                flow(2),
            )
            .expect("mobile");
        assert_eq!(two.contacts.len(), 2);
        let one = r
            .register(
                t(1),
                &agent(),
                &register("mobile", 2, "Contact: <sip:1001@10.0.0.6>;expires=0\r\n"),
                flow(2),
            )
            .expect("unregister");
        assert_eq!(one.contacts, vec![("sip:1001@10.0.0.5".into(), 3599)]);
        assert!(one.changed);
        let bad = r
            .register(t(2), &agent(), &register("x", 1, "Contact: *\r\n"), flow(2))
            .expect_err("* without Expires: 0");
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        let none = r
            .register(
                t(2),
                &agent(),
                &register("x", 1, "Contact: *\r\nExpires: 0\r\n"),
                flow(2),
            )
            .expect("all removed");
        assert!(none.contacts.is_empty());
        assert!(r.is_empty());
    }

    #[test]
    fn an_old_cseq_on_the_same_call_id_is_refused_whole() {
        let mut r = Registrar::new(Limits::default());
        r.register(
            t(0),
            &agent(),
            &register("c", 5, "Contact: <sip:1001@10.0.0.5>\r\n"),
            flow(1),
        )
        .expect("first");
        let old = r
            .register(
                t(1),
                &agent(),
                &register("c", 5, "Contact: <sip:1001@10.0.0.5>;expires=0\r\n"),
                flow(1),
            )
            .expect_err("replayed");
        assert_eq!(old.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.bindings(&agent(), t(1)).len(), 1);
        // Another Call-ID (the phone restarted) may change it.
        r.register(
            t(2),
            &agent(),
            &register("d", 1, "Contact: <sip:1001@10.0.0.5>;expires=0\r\n"),
            flow(1),
        )
        .expect("new call-id");
        assert!(r.is_empty());
    }

    #[test]
    fn a_query_lists_and_path_is_echoed_only_when_supported() {
        let mut r = Registrar::new(Limits::default());
        let ok = r
            .register(
                t(0),
                &agent(),
                &register(
                    "c",
                    1,
                    "Path: <sip:edge.local;lr>\r\nContact: <sip:1001@10.0.0.5>\r\n",
                ),
                flow(1),
            )
            .expect("registered");
        assert!(ok.path.is_empty());
        assert_eq!(
            r.bindings(&agent(), t(0))[0].path,
            vec!["<sip:edge.local;lr>".to_owned()]
        );
        let ok = r
            .register(t(1), &agent(), &register("c", 2, "Supported: path\r\nPath: <sip:edge.local;lr>\r\nContact: <sip:1001@10.0.0.5>\r\n"), flow(1))
            .expect("registered");
        assert_eq!(ok.path, vec!["<sip:edge.local;lr>".to_owned()]);
        let q = r
            .register(t(2), &agent(), &register("c", 3, ""), flow(1))
            .expect("query");
        assert_eq!(q.contacts.len(), 1);
        assert!(!q.changed);
    }

    #[test]
    fn the_contact_cap_replaces_the_oldest_and_the_total_cap_refuses() {
        let limits = Limits {
            max_contacts: 2,
            max_bindings: 3,
            ..Limits::default()
        };
        let mut r = Registrar::new(limits);
        for (i, c) in ["a", "b", "c"].iter().enumerate() {
            r.register(
                t(i as u64),
                &agent(),
                &register(c, 1, &format!("Contact: <sip:1001@10.0.0.{}>\r\n", i + 1)),
                flow(1),
            )
            .expect("ok");
        }
        let held: Vec<String> = r
            .bindings(&agent(), t(3))
            .iter()
            .map(|b| b.contact.clone())
            .collect();
        assert_eq!(
            held,
            vec![
                "sip:1001@10.0.0.2".to_owned(),
                "sip:1001@10.0.0.3".to_owned()
            ]
        );
        let other = AgentRef {
            extension: "1002".into(),
            ..agent()
        };
        r.register(
            t(4),
            &other,
            &register("o", 1, "Contact: <sip:1002@10.0.0.9>\r\n"),
            flow(1),
        )
        .expect("third binding");
        let full = r
            .register(
                t(5),
                &AgentRef {
                    extension: "1003".into(),
                    ..agent()
                },
                &register("p", 1, "Contact: <sip:1003@10.0.0.8>\r\n"),
                flow(1),
            )
            .expect_err("full");
        assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn the_expiry_index_follows_refreshes_removals_and_lapses() {
        let mut r = Registrar::new(Limits::default());
        let b = AgentRef {
            extension: "1002".into(),
            ..agent()
        };
        r.register(
            t(0),
            &agent(),
            &register("a", 1, "Contact: <sip:1001@10.0.0.5>;expires=100\r\n"),
            flow(1),
        )
        .expect("a");
        r.register(
            t(0),
            &b,
            &register("b", 1, "Contact: <sip:1002@10.0.0.6>;expires=200\r\n"),
            flow(2),
        )
        .expect("b");
        assert_eq!(r.poll_timeout(), Some(t(100)));
        // 1001 refreshes for longer: 1002's binding is now the first to lapse.
        r.register(
            t(50),
            &agent(),
            &register("a", 2, "Contact: <sip:1001@10.0.0.5>;expires=300\r\n"),
            flow(1),
        )
        .expect("refresh");
        assert_eq!(r.poll_timeout(), Some(t(200)));
        assert!(
            r.expire(t(100)).is_empty(),
            "the refreshed binding is not dropped at its old expiry"
        );
        assert_eq!(r.expire(t(200)), vec![b.clone()]);
        assert_eq!((r.len(), r.poll_timeout()), (1, Some(t(350))));
        r.register(
            t(60),
            &agent(),
            &register("a", 3, "Contact: *\r\nExpires: 0\r\n"),
            flow(1),
        )
        .expect("unregister");
        assert_eq!((r.len(), r.poll_timeout()), (0, None));
    }
}
