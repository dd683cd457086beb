//! The user-agent core against a scripted SIP peer on fake time: the peer
//! sends bytes, the core's actions are collected (its sends parsed back),
//! and time jumps to the core's next deadline. No sockets: the port
//! allocator hands out addresses only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use sip::message::{HeaderName, Limits, Message, Request, Response, StatusCode, parse_message};
use sip::sdp::Direction;
use sip::transaction::Timers;
use sip::transport::{Flow, Transport};

use super::*;

/// Addresses only; counts what it gave out.
struct Ports {
    next: u16,
    left: usize,
}

impl PortAllocator for Ports {
    fn allocate(&mut self) -> Option<MediaPorts> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.next += 2;
        Some(MediaPorts {
            local: SocketAddr::from(([127, 0, 0, 1], self.next)),
            sockets: None,
        })
    }
}

fn flow() -> Arc<ivr_dsl::Flow> {
    struct Host;
    impl ivr_dsl::Host for Host {
        fn read(&self, _: &std::path::Path) -> std::io::Result<String> {
            Err(std::io::Error::other("none"))
        }
        fn prompt_exists(&self, _: &std::path::Path) -> bool {
            true
        }
    }
    let text = "flow \"T\"\n  numbers 1000\n\nstep a\n  wait 10m\n  hangup \"x\"\n";
    ivr_dsl::load_str(std::path::Path::new("t.ivr"), text, &Host)
        .flow
        .expect("flow loads")
}

/// Routes by Request-URI user: 1000 and 2000 are tenants 0 and 1 (tenant 1
/// allows one call); 403, 401 and anything else are refused as a gate would.
struct Gate {
    flow: Arc<ivr_dsl::Flow>,
}

impl Admission for Gate {
    fn admit(
        &mut self,
        _: SystemTime,
        _: SocketAddr,
        invite: &Request,
    ) -> Result<Admitted, Refusal> {
        let user = invite
            .uri
            .user
            .as_ref()
            .map(|u| String::from_utf8_lossy(u).into_owned())
            .unwrap_or_default();
        let refuse = |status, reason, headers: Vec<(HeaderName, String)>| Refusal {
            status,
            reason,
            headers,
            why: "test".into(),
        };
        let tenant = match user.as_str() {
            "1000" => 0,
            "2000" => 1,
            "403" => return Err(refuse(StatusCode::FORBIDDEN, "Forbidden", vec![])),
            "401" => {
                return Err(refuse(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    vec![(
                        HeaderName::WwwAuthenticate,
                        "Digest realm=\"dhwani\", nonce=\"n\", algorithm=SHA-256, qop=\"auth\""
                            .into(),
                    )],
                ));
            }
            _ => return Err(refuse(StatusCode::NOT_FOUND, "Not Found", vec![])),
        };
        Ok(Admitted {
            tenant,
            tenant_id: Arc::from(if tenant == 0 { "acme" } else { "tiny" }),
            max_calls: if tenant == 0 { 100 } else { 1 },
            flow: Arc::clone(&self.flow),
            caller: "+919800000001".into(),
            called: user,
            trunk: "test".into(),
            feature: None,
        })
    }

    /// Agent 1001 of tenant 0 when the REGISTER carries any Authorization
    /// (the digest itself is the gate's, tested there); else a challenge.
    fn authenticate_agent(
        &mut self,
        _: SystemTime,
        _: SocketAddr,
        register: &Request,
    ) -> Result<AgentRef, Refusal> {
        if register.headers.get(&HeaderName::Authorization).is_none() {
            return Err(Refusal {
                status: StatusCode::UNAUTHORIZED,
                reason: "Unauthorized",
                headers: vec![(
                    HeaderName::WwwAuthenticate,
                    "Digest realm=\"dhwani\", nonce=\"n\", qop=\"auth\"".into(),
                )],
                why: "test".into(),
            });
        }
        Ok(AgentRef {
            tenant: 0,
            tenant_id: Arc::from("acme"),
            extension: "1001".into(),
        })
    }
}

const PEER: &str = "127.0.0.1:5070";
const US: &str = "127.0.0.1:5060";

struct Ua {
    core: Core,
    now: Instant,
    /// Every response the core sent, parsed.
    responses: Vec<(Instant, Response)>,
    /// Where each response went.
    response_to: Vec<SocketAddr>,
    /// Every request the core sent (BYE), parsed.
    requests: Vec<(Instant, Request)>,
    started: Vec<CallSetup>,
    ended: Vec<(CallSlot, Party, String, bool)>,
    updates: Vec<(CallSlot, sip::sdp::MediaUpdate)>,
    confirmed: Vec<CallSlot>,
    bindings: Vec<(AgentRef, Vec<registrar::Binding>)>,
    /// What became of agent legs: (attempt, what).
    legs: Vec<(u64, String)>,
    /// Where each request went.
    request_to: Vec<SocketAddr>,
}

fn settings(max_calls: usize, answer_after: Duration) -> Settings {
    Settings {
        limits: Limits::default(),
        timers: Timers::default(),
        max_transactions: 1000,
        max_calls,
        retry_after_secs: 7,
        answer_after,
        codecs: vec!["PCMU".into(), "PCMA".into()],
        user_agent: "dhwani-test".into(),
        peer_log: log_limit::Limits::default(),
        flood: pike::Limits::default(),
        registrar: registrar::Limits::default(),
    }
}

impl Ua {
    fn new(s: Settings) -> Ua {
        let now = Instant::now();
        let core = Core::new(
            s,
            Box::new(Ports {
                next: 20000,
                left: 3,
            }),
            Box::new(Gate { flow: flow() }),
            (
                now,
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            ),
            7,
        );
        Ua {
            core,
            now,
            responses: vec![],
            response_to: vec![],
            requests: vec![],
            started: vec![],
            ended: vec![],
            updates: vec![],
            confirmed: vec![],
            bindings: vec![],
            legs: vec![],
            request_to: vec![],
        }
    }

    fn flow(&self) -> Flow {
        Flow {
            transport: Transport::Udp,
            local: US.parse().expect("addr"),
            remote: PEER.parse().expect("addr"),
            conn: None,
        }
    }

    fn send(&mut self, text: &str) {
        let f = self.flow();
        self.core
            .handle_bytes(self.now, f, Bytes::from(text.replace('\n', "\r\n")));
        self.collect();
    }

    fn collect(&mut self) {
        while let Some(a) = self.core.poll_action() {
            match a {
                Action::Send(flow, bytes) => match parse_message(bytes, &Limits::default()) {
                    Ok(Message::Response(r)) => {
                        self.responses.push((self.now, r));
                        self.response_to.push(flow.remote);
                    }
                    Ok(Message::Request(r)) => {
                        self.requests.push((self.now, r));
                        self.request_to.push(flow.remote);
                    }
                    Err(e) => panic!("the core sent something unparsable: {e}"),
                },
                Action::StartMedia(s) => self.started.push(*s),
                Action::CallEnded {
                    id,
                    by,
                    cause,
                    info,
                } => self.ended.push((id, by, cause, info.is_some())),
                Action::MediaUpdate(id, u) => self.updates.push((id, u)),
                Action::MediaConfirmed(id) => self.confirmed.push(id),
                Action::InfoDigit(..) | Action::AgentFeature(..) => {}
                Action::Bindings(a, b) => self.bindings.push((a, b)),
                Action::LegRinging { .. } => {}
                Action::LegAnswered { attempt, media, .. } => self
                    .legs
                    .push((attempt, format!("answered {}", media.remote_rtp))),
                Action::LegFailed {
                    attempt, status, ..
                } => self.legs.push((attempt, format!("failed {status}"))),
                Action::LegEnded { attempt, .. } => self.legs.push((attempt, "ended".into())),
                Action::LegUpdate { attempt, .. } => self.legs.push((attempt, "update".into())),
                Action::LegRefer {
                    attempt, target, ..
                } => self.legs.push((attempt, format!("refer {target}"))),
                Action::ConsultRefer {
                    consult, attempt, ..
                } => self
                    .legs
                    .push((attempt, format!("consult refer {}", consult.0))),
            }
        }
    }

    /// Runs the core's timers up to `now + d`.
    fn wait(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.core.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t.max(self.now);
            self.core.handle_timeout(self.now);
            self.collect();
        }
        self.now = end;
    }

    fn statuses(&self) -> Vec<u16> {
        self.responses
            .iter()
            .map(|(_, r)| r.status.as_u16())
            .collect()
    }

    fn last(&self, code: u16) -> &Response {
        self.responses
            .iter()
            .rev()
            .map(|(_, r)| r)
            .find(|r| r.status.as_u16() == code)
            .unwrap_or_else(|| panic!("no {code} in {:?}", self.statuses()))
    }

    fn to_tag(&self) -> String {
        let to = self.last(200).headers.get(&HeaderName::To).expect("To");
        let to = String::from_utf8_lossy(to);
        to.split("tag=").nth(1).expect("tag").to_owned()
    }
}

fn sdp(port: u16, direction: &str) -> String {
    format!(
        "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio {port} RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\na={direction}\n"
    )
}

fn invite(
    user: &str,
    call: &str,
    cseq: u32,
    branch: &str,
    to_tag: Option<&str>,
    body: &str,
) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let body = body.replace('\n', "\r\n");
    format!(
        "INVITE sip:{user}@{US} SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bK{branch};rport\nFrom: <sip:caller@{PEER}>;tag=caller-{call}\nTo: <sip:{user}@{US}>{to_tag}\nCall-ID: {call}\nCSeq: {cseq} INVITE\nContact: <sip:caller@{PEER}>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: {}\n\n{}",
        body.len(),
        body.replace("\r\n", "\n")
    )
}

fn in_dialog(method: &str, call: &str, cseq: u32, branch: &str, to_tag: &str) -> String {
    let cseq_method = if method == "ACK" { "ACK" } else { method };
    format!(
        "{method} sip:dhwani@{US} SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bK{branch};rport\nFrom: <sip:caller@{PEER}>;tag=caller-{call}\nTo: <sip:1000@{US}>;tag={to_tag}\nCall-ID: {call}\nCSeq: {cseq} {cseq_method}\nMax-Forwards: 70\nContent-Length: 0\n\n"
    )
}

#[test]
fn invite_is_answered_acked_and_hung_up() {
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    ua.send(&invite("1000", "c1", 1, "a1", None, &sdp(4000, "sendrecv")));
    assert_eq!(ua.statuses(), vec![100, 200]);
    let ok = ua.last(200);
    let body = String::from_utf8_lossy(&ok.body);
    assert!(body.contains("m=audio 20002 RTP/AVP 0 101"), "{body}");
    assert_eq!(ua.started.len(), 1);
    assert!(!ua.started[0].confirmed, "media waits for the ACK");
    assert_eq!(
        ua.started[0].remote_rtp,
        "127.0.0.1:4000".parse().expect("addr")
    );
    let tag = ua.to_tag();
    ua.send(&in_dialog("ACK", "c1", 1, "a1ack", &tag));
    assert_eq!(ua.confirmed, vec![ua.started[0].id]);
    // A retransmitted ACK confirms nothing twice.
    ua.send(&in_dialog("ACK", "c1", 1, "a1ack", &tag));
    assert_eq!(ua.confirmed.len(), 1);
    // No 200 retransmission once ACKed.
    ua.wait(Duration::from_secs(40));
    assert_eq!(ua.statuses(), vec![100, 200]);
    ua.send(&in_dialog("BYE", "c1", 2, "a1bye", &tag));
    assert_eq!(ua.statuses(), vec![100, 200, 200]);
    assert_eq!(ua.ended.len(), 1);
    assert_eq!(ua.ended[0].1, Party::Caller);
    assert!(!ua.ended[0].3, "answered: the media task writes the CDR");
    ua.wait(Duration::from_secs(40));
    assert_eq!(ua.core.call_count(), 0);
}

#[test]
fn a_lost_ack_retransmits_the_200_then_ends_the_call_with_bye() {
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    let t0 = ua.now;
    ua.send(&invite("1000", "c2", 1, "b1", None, &sdp(4000, "sendrecv")));
    ua.wait(Duration::from_secs(40));
    let oks: Vec<Duration> = ua
        .responses
        .iter()
        .filter(|(_, r)| r.status.as_u16() == 200)
        .map(|(t, _)| *t - t0)
        .collect();
    // RFC 3261 §13.3.1.4: T1, doubling to T2, for 64*T1.
    let want: Vec<Duration> = [
        0u64, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
    ]
    .iter()
    .map(|ms| Duration::from_millis(*ms))
    .collect();
    assert_eq!(oks, want);
    // One BYE (with its own Timer E retransmissions: nobody answers it).
    assert!(ua.requests.iter().all(|(_, r)| r.method == Method::Bye));
    let branches: std::collections::BTreeSet<_> = ua
        .requests
        .iter()
        .map(|(_, r)| r.headers.get(&HeaderName::Via).cloned())
        .collect();
    assert_eq!(branches.len(), 1, "one BYE transaction");
    assert_eq!(ua.requests[0].0 - t0, Duration::from_secs(32));
    assert!(ua.confirmed.is_empty());
    assert_eq!(ua.ended.len(), 1);
    assert!(ua.ended[0].2.contains("no ACK"), "{:?}", ua.ended);
}

#[test]
fn cancel_before_the_answer_gets_487_and_after_it_changes_nothing() {
    let mut ua = Ua::new(settings(10, Duration::from_secs(2)));
    ua.send(&invite("1000", "c3", 1, "c1", None, &sdp(4000, "sendrecv")));
    assert_eq!(ua.statuses(), vec![100, 180]);
    ua.wait(Duration::from_millis(500));
    ua.send(&format!(
        "CANCEL sip:1000@{US} SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKc1;rport\nFrom: <sip:caller@{PEER}>;tag=caller-c3\nTo: <sip:1000@{US}>\nCall-ID: c3\nCSeq: 1 CANCEL\nMax-Forwards: 70\nContent-Length: 0\n\n"
    ));
    assert_eq!(ua.statuses(), vec![100, 180, 200, 487]);
    assert_eq!(
        ua.last(200)
            .headers
            .get(&HeaderName::CSeq)
            .map(|v| v.to_vec()),
        Some(b"1 CANCEL".to_vec())
    );
    assert!(ua.started.is_empty(), "no media for a cancelled call");
    assert_eq!(ua.ended.len(), 1);
    assert!(ua.ended[0].3, "not answered: the driver writes the CDR");
    ua.wait(Duration::from_secs(5));
    assert!(
        !ua.statuses().iter().skip(4).any(|s| *s == 200),
        "the answer timer did not fire after the CANCEL: {:?}",
        ua.statuses()
    );

    // The race the other way: the 200 went out first; CANCEL gets its own
    // 200 and the call goes on (§9.2).
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    ua.send(&invite("1000", "c4", 1, "d1", None, &sdp(4000, "sendrecv")));
    ua.send(&format!(
        "CANCEL sip:1000@{US} SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bKd1;rport\nFrom: <sip:caller@{PEER}>;tag=caller-c4\nTo: <sip:1000@{US}>\nCall-ID: c4\nCSeq: 1 CANCEL\nMax-Forwards: 70\nContent-Length: 0\n\n"
    ));
    assert_eq!(ua.statuses(), vec![100, 200, 200]);
    assert!(ua.ended.is_empty());
    assert_eq!(ua.core.call_count(), 1);
}

#[test]
fn a_reinvite_holds_and_unholds() {
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    ua.send(&invite("1000", "c5", 1, "e1", None, &sdp(4000, "sendrecv")));
    let tag = ua.to_tag();
    ua.send(&in_dialog("ACK", "c5", 1, "e1ack", &tag));
    ua.send(&invite(
        "1000",
        "c5",
        2,
        "e2",
        Some(&tag),
        &sdp(4000, "sendonly"),
    ));
    let body = String::from_utf8_lossy(&ua.last(200).body).into_owned();
    assert!(body.contains("a=recvonly"), "{body}");
    ua.send(&in_dialog("ACK", "c5", 2, "e2ack", &tag));
    ua.send(&invite(
        "1000",
        "c5",
        3,
        "e3",
        Some(&tag),
        &sdp(4000, "sendrecv"),
    ));
    let body = String::from_utf8_lossy(&ua.last(200).body).into_owned();
    assert!(body.contains("a=sendrecv"), "{body}");
    let id = ua.started[0].id;
    let directions: Vec<_> = ua.updates.iter().map(|(i, u)| (*i, u.direction)).collect();
    assert_eq!(
        directions,
        vec![(id, Direction::RecvOnly), (id, Direction::SendRecv)]
    );
    assert!(ua.updates.iter().all(|(_, u)| !u.moved));
}

#[test]
fn a_reinvite_that_moves_the_media_is_answered_from_the_session_and_reported() {
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    ua.send(&invite("1000", "m1", 1, "k1", None, &sdp(4000, "sendrecv")));
    let tag = ua.to_tag();
    let first = String::from_utf8_lossy(&ua.last(200).body).into_owned();
    ua.send(&in_dialog("ACK", "m1", 1, "k1ack", &tag));
    let moved = sdp(4100, "sendrecv").replace("127.0.0.1", "127.0.0.2");
    ua.send(&invite("1000", "m1", 2, "k2", Some(&tag), &moved));
    let (_, u) = ua.updates.last().expect("an update");
    assert!(u.moved);
    assert_eq!(u.remote, "127.0.0.2:4100".parse().expect("addr"));
    let again = String::from_utf8_lossy(&ua.last(200).body).into_owned();
    // Our side did not change: the same description, version and all.
    assert_eq!(again, first);
    // A re-offer without the call's codec: 488, the call goes on.
    let pcma = "v=0\no=- 1 2 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 8\na=rtpmap:8 PCMA/8000\n";
    ua.send(&invite("1000", "m1", 3, "k3", Some(&tag), pcma));
    assert_eq!(ua.statuses().last(), Some(&488));
    assert_eq!(ua.updates.len(), 1);
    assert!(ua.ended.is_empty());
}

#[test]
fn the_node_and_tenant_caps_and_draining_answer_503_with_retry_after() {
    let mut ua = Ua::new(settings(2, Duration::ZERO));
    ua.send(&invite("2000", "t1", 1, "f1", None, &sdp(4000, "sendrecv")));
    ua.send(&invite("2000", "t2", 1, "f2", None, &sdp(4000, "sendrecv")));
    assert_eq!(
        ua.statuses(),
        vec![100, 200, 503],
        "tenant 2000 allows one call"
    );
    ua.send(&invite("1000", "n1", 1, "f3", None, &sdp(4000, "sendrecv")));
    ua.send(&invite("1000", "n2", 1, "f4", None, &sdp(4000, "sendrecv")));
    assert_eq!(
        ua.statuses(),
        vec![100, 200, 503, 100, 200, 503],
        "the node allows two"
    );
    assert_eq!(
        ua.last(503)
            .headers
            .get(&HeaderName::RetryAfter)
            .map(|v| v.to_vec()),
        Some(b"7".to_vec())
    );
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    ua.core.stop_accepting();
    ua.send(&invite("1000", "d1", 1, "g1", None, &sdp(4000, "sendrecv")));
    assert_eq!(ua.statuses(), vec![503]);
    assert!(ua.started.is_empty());
}

#[test]
fn refusals_of_the_gate_reach_the_caller_with_their_headers() {
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    for (i, user) in ["999", "403", "401"].iter().enumerate() {
        ua.send(&invite(
            user,
            &format!("r{i}"),
            1,
            &format!("h{i}"),
            None,
            &sdp(4000, "sendrecv"),
        ));
    }
    assert_eq!(ua.statuses(), vec![404, 403, 401]);
    let challenge = ua
        .last(401)
        .headers
        .get(&HeaderName::WwwAuthenticate)
        .expect("challenge");
    assert!(String::from_utf8_lossy(challenge).contains("algorithm=SHA-256"));
    assert!(ua.started.is_empty());
    assert_eq!(ua.core.call_count(), 0);
}

#[test]
fn an_exhausted_port_range_is_a_503_and_an_unusable_offer_a_488() {
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    for i in 0..4 {
        ua.send(&invite(
            "1000",
            &format!("p{i}"),
            1,
            &format!("i{i}"),
            None,
            &sdp(4000, "sendrecv"),
        ));
    }
    assert_eq!(ua.statuses(), vec![100, 200, 100, 200, 100, 200, 503]);
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    let video_only = "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 18\na=rtpmap:18 G729/8000\n";
    ua.send(&invite("1000", "x1", 1, "j1", None, video_only));
    assert_eq!(ua.statuses(), vec![488]);
    let warning = ua
        .last(488)
        .headers
        .get(&HeaderName::Warning)
        .expect("Warning");
    assert!(String::from_utf8_lossy(warning).starts_with("305"));
}

#[test]
fn responses_go_to_the_source_with_received_and_rport_stamped() {
    // RFC 3581 §4: with rport, to the source address and port; the Via
    // gets received= and rport= (RFC 3261 §18.2.1).
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    let options = |via: &str, b: &str| {
        format!(
            "OPTIONS sip:1000@{US} SIP/2.0\nVia: SIP/2.0/UDP {via};branch=z9hG4bK{b}\nFrom: <sip:a@{PEER}>;tag=1\nTo: <sip:1000@{US}>\nCall-ID: o{b}\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n"
        )
    };
    ua.send(&options("10.9.9.9:5999;rport", "r1"));
    assert_eq!(ua.response_to[0], PEER.parse::<SocketAddr>().expect("addr"));
    let via = String::from_utf8_lossy(
        ua.responses[0]
            .1
            .headers
            .get(&HeaderName::Via)
            .expect("Via"),
    )
    .into_owned();
    assert!(
        via.contains("rport=5070") && via.contains("received=127.0.0.1"),
        "{via}"
    );
    // Without rport (§18.2.2): the source IP, the port the Via names.
    ua.send(&options("127.0.0.1:5999", "r2"));
    assert_eq!(
        ua.response_to[1],
        "127.0.0.1:5999".parse::<SocketAddr>().expect("addr")
    );
    // And never to a maddr the request names (no reflection).
    ua.send(&options("127.0.0.1:5999;maddr=10.1.1.1", "r3"));
    assert_eq!(
        ua.response_to[2].ip(),
        PEER.parse::<SocketAddr>().expect("addr").ip()
    );
}

fn settings_with(flood: pike::Limits) -> Settings {
    Settings {
        flood,
        ..settings(100, Duration::ZERO)
    }
}

#[test]
fn one_source_holds_at_most_its_share_of_calls_and_transactions() {
    let mut ua = Ua::new(settings_with(pike::Limits {
        calls_per_source: 1,
        ..pike::Limits::default()
    }));
    ua.send(&invite("1000", "s1", 1, "q1", None, &sdp(4000, "sendrecv")));
    ua.send(&invite("1000", "s2", 1, "q2", None, &sdp(4000, "sendrecv")));
    assert_eq!(ua.statuses(), vec![100, 200, 503]);

    let mut ua = Ua::new(settings_with(pike::Limits {
        transactions_per_source: 3,
        ..pike::Limits::default()
    }));
    let options = |b: &str| {
        format!(
            "OPTIONS sip:1000@{US} SIP/2.0\nVia: SIP/2.0/UDP {PEER};branch=z9hG4bK{b};rport\nFrom: <sip:a@{PEER}>;tag=1\nTo: <sip:1000@{US}>\nCall-ID: t{b}\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n"
        )
    };
    for b in ["a", "b", "c", "d", "e"] {
        ua.send(&options(b));
    }
    assert_eq!(
        ua.statuses(),
        vec![200, 200, 200],
        "the 4th and 5th dropped"
    );
    assert_eq!(ua.core.stats().flood_drops, 2);
    // A retransmission of a live one is still answered (no new state).
    ua.send(&options("a"));
    assert_eq!(ua.statuses().len(), 4);
    // Timer J frees them; the source may ask again.
    ua.wait(Duration::from_secs(33));
    ua.send(&options("f"));
    assert_eq!(ua.statuses().len(), 5);
}

#[test]
fn an_exempt_network_has_no_per_source_caps() {
    let mut ua = Ua::new(settings_with(pike::Limits {
        calls_per_source: 1,
        invites_per_sec: 1,
        exempt: vec!["127.0.0.0/8".parse().expect("net")],
        ..pike::Limits::default()
    }));
    for i in 0..3 {
        ua.send(&invite(
            "1000",
            &format!("x{i}"),
            1,
            &format!("r{i}"),
            None,
            &sdp(4000, "sendrecv"),
        ));
    }
    assert_eq!(ua.statuses(), vec![100, 200, 100, 200, 100, 200]);
}

#[test]
fn an_invite_flood_bans_the_source_without_replies() {
    let mut ua = Ua::new(settings_with(pike::Limits {
        invites_per_sec: 2,
        ..pike::Limits::default()
    }));
    for i in 0..5 {
        ua.send(&invite(
            "1000",
            &format!("f{i}"),
            1,
            &format!("w{i}"),
            None,
            &sdp(4000, "sendrecv"),
        ));
    }
    // Two calls answered; the third INVITE bans the source; no replies.
    assert_eq!(ua.statuses(), vec![100, 200, 100, 200]);
    assert_eq!(ua.core.stats().bans, 1);
    assert_eq!(ua.core.stats().flood_drops, 3);
}

/// RFC 4475 §3.4.1 (`inv2543`): an RFC 2543 INVITE, with no branch in its
/// Via, no From tag and no Content-Length over UDP, is accepted for
/// backward compatibility (RFC 3261 §17.2.3: matched without the magic
/// cookie). The message is written from the RFC's text; the byte-exact
/// replay of its archive is still to come (issue 13 point 5).
#[test]
fn an_rfc_2543_invite_is_answered() {
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    let inv = format!(
        "INVITE sip:1000@{US} SIP/2.0\nVia: SIP/2.0/UDP {PEER}\nFrom: <sip:+13035551111@{PEER};user=phone>\nTo: sip:1000@{US};user=phone\nCall-ID: inv2543.1717@ift.client.example.com\nCSeq: 56 INVITE\nContent-Type: application/sdp\n\nv=0\no=mhandley 29739 7272939 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 49217 RTP/AVP 0\n"
    );
    ua.send(&inv);
    assert_eq!(ua.statuses(), vec![100, 200], "{:?}", ua.responses);
    // A retransmission (same everything, still no branch) matches the
    // transaction by the RFC 2543 rules: absorbed, not a second call.
    ua.send(&inv);
    assert_eq!(ua.core.call_count(), 1);
    assert_eq!(ua.started.len(), 1);
    assert_eq!(ua.statuses(), vec![100, 200]);
    // Without an ACK the 200 is retransmitted on the dialog's timer.
    ua.wait(Duration::from_secs(2));
    assert!(ua.statuses().iter().filter(|s| **s == 200).count() >= 2);
}

fn register(cseq: u32, contact: &str, auth: bool) -> String {
    let auth = if auth {
        "Authorization: Digest username=\"1001\", realm=\"dhwani\", nonce=\"n\", uri=\"sip:127.0.0.1\", response=\"x\"\n"
    } else {
        ""
    };
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 10.1.1.1:5062;rport;branch=z9hG4bKreg{cseq}\nFrom: <sip:1001@127.0.0.1>;tag=r\nTo: <sip:1001@127.0.0.1>\nCall-ID: reg-1\nCSeq: {cseq} REGISTER\nMax-Forwards: 70\n{contact}{auth}Content-Length: 0\n\n"
    )
}

#[test]
fn a_register_is_challenged_then_bound_to_its_flow_and_lapses_on_time() {
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    ua.send(&register(
        1,
        "Contact: <sip:1001@10.1.1.1:5062>;expires=120\n",
        false,
    ));
    assert_eq!(ua.statuses(), vec![401]);
    assert!(ua.bindings.is_empty());
    ua.send(&register(
        2,
        "Contact: <sip:1001@10.1.1.1:5062>;expires=120\n",
        true,
    ));
    let ok = ua.last(200);
    let contact = String::from_utf8_lossy(ok.headers.get(&HeaderName::Contact).expect("contact"))
        .into_owned();
    assert_eq!(contact, "<sip:1001@10.1.1.1:5062>;expires=120");
    assert!(ok.headers.get(&HeaderName::Date).is_some());
    // The 200 goes back to the source (rport), not to the Via's private address.
    assert_eq!(
        ua.response_to.last().copied(),
        Some(PEER.parse().expect("addr"))
    );
    let (agent, list) = ua.bindings.last().expect("stored");
    assert_eq!(agent.extension, "1001");
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0].flow.remote,
        PEER.parse::<SocketAddr>().expect("addr"),
        "calls go to the flow, not the Contact"
    );
    assert_eq!(ua.core.agent_bindings(agent, ua.now).len(), 1);
    ua.wait(Duration::from_secs(121));
    let (_, list) = ua.bindings.last().expect("lapsed");
    assert!(
        list.is_empty(),
        "the lapsed binding is reported so the store forgets it"
    );
    let agent = ua.bindings[0].0.clone();
    assert!(ua.core.agent_bindings(&agent, ua.now).is_empty());
}

#[test]
fn a_too_brief_register_gets_423_with_min_expires() {
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    ua.send(&register(
        1,
        "Contact: <sip:1001@10.1.1.1:5062>;expires=5\n",
        true,
    ));
    let r = ua.last(423);
    assert_eq!(
        r.headers.get(&HeaderName::MinExpires).map(|v| v.to_vec()),
        Some(b"60".to_vec())
    );
    assert!(ua.bindings.is_empty());
}

/// A response from the agent's phone to one of our requests.
fn answer_to(req: &Request, status: u16, to_tag: &str, sdp_port: Option<u16>) -> String {
    let h =
        |n: &HeaderName| String::from_utf8_lossy(req.headers.get(n).expect("header")).into_owned();
    let body = sdp_port.map(|p| sdp(p, "sendrecv")).unwrap_or_default();
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\n"
    };
    format!(
        "SIP/2.0 {status} X\nVia: {}\nFrom: {}\nTo: {};tag={to_tag}\nCall-ID: {}\nCSeq: {}\nContact: <sip:1001@127.0.0.1:5071>\n{ctype}Content-Length: {}\n\n{body}",
        h(&HeaderName::Via),
        h(&HeaderName::From),
        h(&HeaderName::To),
        h(&HeaderName::CallId),
        h(&HeaderName::CSeq),
        body.replace('\n', "\r\n").len()
    )
}

fn agent_binding(port: u16, contact: &str) -> registrar::Binding {
    registrar::Binding {
        contact: contact.into(),
        flow: Flow {
            transport: Transport::Udp,
            local: US.parse().expect("addr"),
            remote: SocketAddr::from(([127, 0, 0, 1], port)),
            conn: None,
        },
        expires: SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000),
        call_id: "r".into(),
        cseq: 1,
        path: vec![],
    }
}

fn sent(ua: &Ua, method: Method) -> Vec<(Request, SocketAddr)> {
    ua.requests
        .iter()
        .zip(&ua.request_to)
        .filter(|((_, r), _)| r.method == method)
        .map(|((_, r), to)| (r.clone(), *to))
        .collect()
}

#[test]
fn an_agent_is_rung_on_its_registered_flows_and_the_first_answer_wins() {
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    let phones = [
        agent_binding(5071, "sip:1001@192.168.1.20:5062"),
        agent_binding(5072, "sip:1001@10.0.0.9"),
    ];
    assert!(ua.core.ring_agent(ua.now, CallSlot(1), 7, "1001", &phones));
    ua.collect();
    let invites = sent(&ua, Method::Invite);
    assert_eq!(invites.len(), 2, "one INVITE per phone");
    let to: Vec<u16> = invites.iter().map(|(_, a)| a.port()).collect();
    assert_eq!(
        to,
        vec![5071, 5072],
        "sent to the flows, never to the Contacts' private addresses"
    );
    assert_eq!(
        invites[0].0.uri.to_string(),
        "sip:1001@192.168.1.20:5062",
        "the Contact is the Request-URI"
    );
    // Phone 1 rings and answers; phone 2 answers a moment later.
    ua.send(&answer_to(&invites[0].0, 180, "p1", None));
    ua.send(&answer_to(&invites[0].0, 200, "p1", Some(30000)));
    assert_eq!(ua.legs, vec![(7, "answered 127.0.0.1:30000".to_owned())]);
    let ack = sent(&ua, Method::Ack).remove(0);
    let cseq = ack.0.cseq().expect("cseq");
    assert_eq!(
        (cseq.seq, cseq.method),
        (1, Method::Ack),
        "§13.2.2.4: the INVITE's CSeq number"
    );
    assert_eq!(
        ack.0.uri.to_string(),
        "sip:1001@127.0.0.1:5071",
        "to the 200 OK's Contact"
    );
    assert_eq!(ack.1.port(), 5071, "over the registered flow");
    ua.send(&answer_to(&invites[1].0, 200, "p2", Some(30002)));
    assert_eq!(ua.legs.len(), 1, "a second 200 OK is not a second answer");
    let acks = sent(&ua, Method::Ack);
    let byes = sent(&ua, Method::Bye);
    assert_eq!(acks.len(), 2, "the late 200 OK is ACKed");
    assert_eq!(byes.len(), 1, "and then hung up");
    assert_eq!(byes[0].1.port(), 5072);
    // Stopping the attempt hangs up the winner.
    ua.core.stop_attempt(ua.now, 7);
    ua.collect();
    let byes = sent(&ua, Method::Bye);
    assert_eq!(byes.len(), 2);
    assert_eq!(byes[1].1.port(), 5071);
}

#[test]
fn a_cancel_waits_for_a_provisional_response_and_a_busy_agent_fails_the_attempt() {
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    assert!(ua.core.ring_agent(
        ua.now,
        CallSlot(1),
        8,
        "1001",
        &[agent_binding(5071, "sip:1001@10.0.0.1")]
    ));
    ua.collect();
    let invite = sent(&ua, Method::Invite).remove(0).0;
    ua.core.stop_attempt(ua.now, 8);
    ua.collect();
    assert!(
        sent(&ua, Method::Cancel).is_empty(),
        "§9.1: no CANCEL before a provisional response"
    );
    ua.send(&answer_to(&invite, 180, "p1", None));
    let cancels = sent(&ua, Method::Cancel);
    assert_eq!(cancels.len(), 1);
    assert_eq!(
        cancels[0].0.top_via().expect("via").branch(),
        invite.top_via().expect("via").branch()
    );
    ua.send(&answer_to(&invite, 487, "p1", None));
    assert!(
        ua.legs.is_empty(),
        "a cancelled attempt is not reported as failed"
    );
    // Another attempt: the phone is busy.
    assert!(ua.core.ring_agent(
        ua.now,
        CallSlot(2),
        9,
        "1001",
        &[agent_binding(5071, "sip:1001@10.0.0.1")]
    ));
    ua.collect();
    let invite = sent(&ua, Method::Invite).remove(1).0;
    ua.send(&answer_to(&invite, 486, "p1", None));
    assert_eq!(ua.legs, vec![(9, "failed 486".to_owned())]);
    ua.wait(Duration::from_secs(40));
    assert_eq!(ua.core.live_legs(), 0, "nothing is left of either");
}

#[test]
fn an_agent_bye_ends_its_leg() {
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    assert!(ua.core.ring_agent(
        ua.now,
        CallSlot(1),
        3,
        "1001",
        &[agent_binding(5071, "sip:1001@10.0.0.1")]
    ));
    ua.collect();
    let invite = sent(&ua, Method::Invite).remove(0).0;
    ua.send(&answer_to(&invite, 200, "p1", Some(30000)));
    let h = |n: &HeaderName| {
        String::from_utf8_lossy(invite.headers.get(n).expect("header")).into_owned()
    };
    let bye = format!(
        "BYE sip:dhwani@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKagentbye\nFrom: {};tag=p1\nTo: {}\nCall-ID: {}\nCSeq: 2 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n",
        h(&HeaderName::To),
        h(&HeaderName::From),
        h(&HeaderName::CallId)
    );
    ua.send(&bye);
    assert_eq!(ua.last(200).cseq().expect("cseq").method, Method::Bye);
    assert_eq!(ua.legs.last(), Some(&(3, "ended".to_owned())));
}

/// An in-dialog request from the agent's phone on the leg `invite` made.
fn from_agent(invite: &Request, method: &str, cseq: u32, extra: &str) -> String {
    let h = |n: &HeaderName| {
        String::from_utf8_lossy(invite.headers.get(n).expect("header")).into_owned()
    };
    format!(
        "{method} sip:dhwani@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKagent{method}{cseq}\nFrom: {};tag=p1\nTo: {}\nCall-ID: {}\nCSeq: {cseq} {method}\nMax-Forwards: 70\n{extra}Content-Length: 0\n\n",
        h(&HeaderName::To),
        h(&HeaderName::From),
        h(&HeaderName::CallId)
    )
}

#[test]
fn an_agents_refer_is_checked_answered_202_with_a_final_notify_and_the_leg_hung_up_after_the_grace()
{
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    let phone = [agent_binding(5071, "sip:1001@10.0.0.1")];
    assert!(ua.core.ring_agent(ua.now, CallSlot(1), 3, "1001", &phone));
    ua.collect();
    let invite = sent(&ua, Method::Invite).remove(0).0;
    ua.send(&answer_to(&invite, 200, "p1", Some(30000)));
    ua.legs.clear();
    // Malformed REFERs are answered here, without the driver.
    ua.send(&from_agent(&invite, "REFER", 2, ""));
    assert_eq!(ua.last(400).cseq().expect("cseq").seq, 2, "no Refer-To");
    ua.send(&from_agent(
        &invite,
        "REFER",
        3,
        "Refer-To: <sip:1002@127.0.0.1>\nRefer-To: <sip:1003@127.0.0.1>\n",
    ));
    assert_eq!(ua.last(400).cseq().expect("cseq").seq, 3, "two Refer-To");
    ua.send(&from_agent(
        &invite,
        "REFER",
        4,
        "Refer-To: <sip:1002@127.0.0.1?Replaces=abc%3Bto-tag%3Dx%3Bfrom-tag%3Dy>\n",
    ));
    assert_eq!(
        ua.last(481).cseq().expect("cseq").seq,
        4,
        "attended, naming no dialog of ours"
    );
    ua.send(&from_agent(
        &invite,
        "REFER",
        40,
        "Refer-To: <sip:1002@127.0.0.1?Replaces=abc%3Bto-tag%3Dx>\n",
    ));
    assert!(
        String::from_utf8_lossy(&ua.last(400).reason).contains("Replaces"),
        "a Replaces without its from-tag"
    );
    assert!(ua.legs.is_empty(), "{:?}", ua.legs);
    // A good one goes to the driver, who refuses it: accepted, and the
    // NOTIFY says why; no BYE follows.
    ua.send(&from_agent(
        &invite,
        "REFER",
        105,
        "Refer-To: <sip:1002@127.0.0.1>\n",
    ));
    assert_eq!(ua.legs, vec![(3, "refer 1002".to_owned())]);
    ua.core.answer_refer(ua.now, 3, Err(480));
    ua.collect();
    assert_eq!(ua.last(202).cseq().expect("cseq").seq, 105);
    let notifies = sent(&ua, Method::Notify);
    assert_eq!(notifies.len(), 1);
    assert_eq!(
        &notifies[0].0.body[..],
        b"SIP/2.0 480 Temporarily Unavailable\r\n"
    );
    ua.wait(legs::TRANSFEROR_GRACE * 2);
    assert!(
        sent(&ua, Method::Bye).is_empty(),
        "a refused transfer keeps the call"
    );
    // Accepted: 202, one NOTIFY with the sipfrag, subscription over.
    ua.send(&from_agent(
        &invite,
        "REFER",
        106,
        "Refer-To: <sip:support@127.0.0.1>\n",
    ));
    ua.core.answer_refer(ua.now, 3, Ok(()));
    ua.collect();
    assert_eq!(ua.last(202).cseq().expect("cseq").seq, 106);
    // The first NOTIFY was retransmitted meanwhile (nobody answered it).
    let mut notifies = sent(&ua, Method::Notify);
    notifies.dedup_by_key(|(n, _)| n.cseq().expect("cseq").seq);
    assert_eq!(notifies.len(), 2);
    let (n, to) = &notifies[1];
    assert_eq!(to.port(), 5071, "over the agent's flow");
    let hv = |name: HeaderName| {
        String::from_utf8_lossy(n.headers.get(&name).expect("header")).into_owned()
    };
    assert_eq!(hv(HeaderName::Event), "refer;id=106");
    assert!(hv(HeaderName::SubscriptionState).starts_with("terminated"));
    assert_eq!(hv(HeaderName::ContentType), "message/sipfrag;version=2.0");
    assert_eq!(&n.body[..], b"SIP/2.0 200 OK\r\n");
    assert_eq!(
        hv(HeaderName::CallId),
        String::from_utf8_lossy(invite.headers.get(&HeaderName::CallId).expect("call-id")),
        "in the agent's dialog"
    );
    // The phone does not hang up: we do, after the grace.
    ua.wait(legs::TRANSFEROR_GRACE - Duration::from_millis(10));
    assert!(sent(&ua, Method::Bye).is_empty());
    ua.wait(Duration::from_millis(20));
    assert_eq!(sent(&ua, Method::Bye).len(), 1);
    assert!(
        !ua.legs.iter().any(|(_, what)| what == "ended"),
        "our own BYE is not the agent hanging up"
    );
}

#[test]
fn a_phone_that_hangs_up_on_the_notify_gets_no_second_bye_and_a_callers_refer_is_forbidden() {
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    let phone = [agent_binding(5071, "sip:1001@10.0.0.1")];
    assert!(ua.core.ring_agent(ua.now, CallSlot(1), 3, "1001", &phone));
    ua.collect();
    let leg = sent(&ua, Method::Invite).remove(0).0;
    ua.send(&answer_to(&leg, 200, "p1", Some(30000)));
    ua.send(&from_agent(
        &leg,
        "REFER",
        2,
        "Refer-To: <sip:1002@127.0.0.1>\n",
    ));
    ua.core.answer_refer(ua.now, 3, Ok(()));
    ua.collect();
    ua.send(&from_agent(&leg, "BYE", 3, ""));
    assert_eq!(ua.last(200).cseq().expect("cseq").method, Method::Bye);
    ua.wait(legs::TRANSFEROR_GRACE * 2);
    assert!(sent(&ua, Method::Bye).is_empty(), "the leg is over already");
    assert_eq!(ua.core.live_legs(), 0);
    // A new leg reusing the slot is not touched by the old NOTIFY's answer.
    assert!(ua.core.ring_agent(ua.now, CallSlot(2), 4, "1001", &phone));
    ua.collect();
    assert_eq!(ua.core.live_legs(), 1);
    // A caller cannot transfer itself anywhere.
    ua.send(&invite("1000", "c9", 1, "r1", None, &sdp(4000, "sendrecv")));
    let tag = ua.to_tag();
    ua.send(&in_dialog("ACK", "c9", 1, "r1ack", &tag));
    let refer = in_dialog("REFER", "c9", 2, "r2", &tag).replace(
        "Content-Length: 0",
        "Refer-To: <sip:1002@127.0.0.1>\nContent-Length: 0",
    );
    ua.send(&refer);
    assert_eq!(ua.last(403).cseq().expect("cseq").method, Method::Refer);
    let refers = ua
        .legs
        .iter()
        .filter(|(_, w)| w.starts_with("refer"))
        .count();
    assert_eq!(refers, 1, "only the agent's REFER reached the driver");
}

/// An attended transfer the other way round (RFC 5589 allows either): the
/// agent's phone sends the REFER in its consultation call to us, Refer-To
/// its caller with `Replaces` naming its leg of the caller's call. It
/// reaches the driver; its verdict is 202 and one NOTIFY in the
/// consultation dialog, and the replaced leg gets our BYE after the grace
/// if the phone keeps it. A Replaces naming no leg gets 481, a leg still
/// ringing too.
#[test]
fn an_attended_transfer_sent_in_the_consultation_call_replaces_the_agents_leg() {
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    let phone = [agent_binding(5071, "sip:1001@10.0.0.1")];
    assert!(ua.core.ring_agent(ua.now, CallSlot(77), 3, "1001", &phone));
    ua.collect();
    let leg = sent(&ua, Method::Invite).remove(0).0;
    let hv = |r: &Request, n: HeaderName| {
        String::from_utf8_lossy(r.headers.get(&n).expect("header")).into_owned()
    };
    let (leg_call_id, our_tag) = (
        hv(&leg, HeaderName::CallId),
        hv(&leg, HeaderName::From)
            .split("tag=")
            .nth(1)
            .expect("tag")
            .to_owned(),
    );
    let refer_with = |replaces: &str| {
        format!(
            "Refer-To: <sip:caller@127.0.0.1?Replaces={}>\nContent-Length: 0",
            replaces
                .replace('@', "%40")
                .replace(';', "%3B")
                .replace('=', "%3D")
        )
    };
    let replaces = format!("{leg_call_id};to-tag={our_tag};from-tag=p1");
    // The consultation call (the agent's own call to us).
    ua.send(&invite("1000", "c9", 1, "r1", None, &sdp(4000, "sendrecv")));
    let tag = ua.to_tag();
    ua.send(&in_dialog("ACK", "c9", 1, "r1ack", &tag));
    // The leg still rings: nothing to replace.
    ua.send(
        &in_dialog("REFER", "c9", 2, "r2", &tag)
            .replace("Content-Length: 0", &refer_with(&replaces)),
    );
    assert_eq!(ua.last(481).cseq().expect("cseq").seq, 2);
    ua.send(&answer_to(&leg, 200, "p1", Some(30000)));
    ua.legs.clear();
    ua.send(&in_dialog("REFER", "c9", 3, "r3", &tag).replace(
        "Content-Length: 0",
        &refer_with(&format!("{leg_call_id};to-tag=nope;from-tag=p1")),
    ));
    assert_eq!(ua.last(481).cseq().expect("cseq").seq, 3, "no such dialog");
    assert!(ua.legs.is_empty(), "{:?}", ua.legs);
    ua.send(
        &in_dialog("REFER", "c9", 4, "r4", &tag)
            .replace("Content-Length: 0", &refer_with(&replaces)),
    );
    assert_eq!(ua.legs.len(), 1, "{:?} {:?}", ua.legs, ua.statuses());
    let (attempt, what) = ua.legs[0].clone();
    assert_eq!(attempt, 3, "the replaced leg");
    assert!(what.starts_with("consult refer "), "{what}");
    let consult: u64 = what
        .trim_start_matches("consult refer ")
        .parse()
        .expect("slot");
    // A second REFER while the first waits for its verdict.
    ua.send(
        &in_dialog("REFER", "c9", 5, "r5", &tag)
            .replace("Content-Length: 0", &refer_with(&replaces)),
    );
    assert_eq!(ua.last(491).cseq().expect("cseq").seq, 5);
    ua.core
        .answer_call_refer(ua.now, CallSlot(consult), 3, Ok(()));
    ua.collect();
    assert_eq!(ua.last(202).cseq().expect("cseq").seq, 4);
    let notify = sent(&ua, Method::Notify).remove(0).0;
    assert_eq!(
        hv(&notify, HeaderName::CallId),
        "c9",
        "in the consultation dialog"
    );
    assert_eq!(hv(&notify, HeaderName::Event), "refer;id=4");
    assert_eq!(&notify.body[..], b"SIP/2.0 200 OK\r\n");
    // The phone keeps the replaced leg: our BYE after the grace, on it.
    ua.wait(legs::TRANSFEROR_GRACE - Duration::from_millis(10));
    assert!(sent(&ua, Method::Bye).is_empty());
    ua.wait(Duration::from_millis(20));
    let byes = sent(&ua, Method::Bye);
    assert_eq!(byes.len(), 1);
    assert_eq!(hv(&byes[0].0, HeaderName::CallId), leg_call_id);
}

/// A call out through a trunk at 127.0.0.1:5090.
fn trunk_dial(credentials: bool) -> crate::ua::legs::TrunkDial {
    crate::ua::legs::TrunkDial {
        flow: Flow {
            transport: Transport::Udp,
            local: US.parse().expect("addr"),
            remote: SocketAddr::from(([127, 0, 0, 1], 5090)),
            conn: None,
        },
        number: "+919812345678".into(),
        caller_id: "+911140000000".into(),
        credentials: credentials.then(|| ("dhwani".to_owned(), "trunk-pw".to_owned())),
        uri: None,
    }
}

#[test]
fn a_call_to_a_uri_on_another_host_names_that_uri_in_the_request_line_and_to() {
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    let mut dial = trunk_dial(false);
    dial.uri = Some("sip:desk@pbx.acme.example:5090".into());
    assert!(ua.core.ring_trunk(ua.now, CallSlot(1), 1 << 48, &dial));
    ua.collect();
    let (invite, to) = sent(&ua, Method::Invite).remove(0);
    assert_eq!(to, dial.flow.remote, "sent to the address it resolved to");
    assert_eq!(invite.uri.to_string(), "sip:desk@pbx.acme.example:5090");
    let to_h =
        String::from_utf8_lossy(invite.headers.get(&HeaderName::To).expect("to")).into_owned();
    assert!(
        to_h.starts_with("<sip:desk@pbx.acme.example:5090>"),
        "{to_h}"
    );
}

/// A trunk's challenge of `invite` in `header`.
fn challenge(invite: &Request, status: u16, header: &str) -> String {
    answer_to(invite, status, "trunk", None).replacen(
        "Contact:",
        &format!("{header}: Digest realm=\"carrier.test\", nonce=\"n0nce\", qop=\"auth\", algorithm=MD5\nContact:"),
        1,
    )
}

#[test]
fn a_trunks_407_is_answered_once_with_proxy_authorization_and_a_second_fails_the_leg() {
    let mut ua = Ua::new(settings(10, Duration::ZERO));
    assert!(
        ua.core
            .ring_trunk(ua.now, CallSlot(1), 1 << 48, &trunk_dial(true))
    );
    ua.collect();
    let first = sent(&ua, Method::Invite).remove(0);
    assert_eq!(first.1.port(), 5090, "to the trunk");
    assert_eq!(first.0.uri.to_string(), "sip:+919812345678@127.0.0.1:5090");
    let from =
        String::from_utf8_lossy(first.0.headers.get(&HeaderName::From).expect("from")).into_owned();
    assert!(from.starts_with("<sip:+911140000000@"), "{from}");
    ua.send(&challenge(&first.0, 407, "Proxy-Authenticate"));
    let invites = sent(&ua, Method::Invite);
    assert_eq!(invites.len(), 2, "the INVITE again, with credentials");
    let again = &invites[1].0;
    let cseq = again.cseq().expect("cseq");
    assert_eq!((cseq.seq, cseq.method), (2, Method::Invite));
    assert_ne!(
        again.top_via().expect("via").branch(),
        first.0.top_via().expect("via").branch(),
        "a new transaction"
    );
    for h in [HeaderName::CallId, HeaderName::From] {
        assert_eq!(again.headers.get(&h), first.0.headers.get(&h), "{h:?}");
    }
    assert!(again.headers.get(&HeaderName::Authorization).is_none());
    let creds = sip::header::AuthParams::parse(
        again
            .headers
            .get(&HeaderName::ProxyAuthorization)
            .expect("Proxy-Authorization"),
    )
    .expect("credentials");
    let get = |n: &str| String::from_utf8_lossy(creds.get(n).expect(n)).into_owned();
    let ha1 = sip::auth::Algorithm::Md5.hash(b"dhwani:carrier.test:trunk-pw");
    let want = sip::auth::compute_response(
        sip::auth::Algorithm::Md5,
        &ha1,
        "n0nce",
        "INVITE",
        &get("uri"),
        Some("auth"),
        Some(&get("nc")),
        Some(&get("cnonce")),
    );
    assert_eq!(get("response"), want);
    assert_eq!(get("uri"), again.uri.to_string());
    // A CANCEL now carries the retried INVITE's CSeq number.
    ua.send(&answer_to(again, 180, "trunk", None));
    ua.core.stop_attempt(ua.now, 1 << 48);
    ua.collect();
    let cancel = sent(&ua, Method::Cancel).remove(0).0;
    assert_eq!(cancel.cseq().expect("cseq").seq, 2);
    assert_eq!(
        cancel.top_via().expect("via").branch(),
        again.top_via().expect("via").branch()
    );

    // A second challenge (wrong password) fails the leg with its status;
    // so does a challenge to a leg without credentials.
    assert!(
        ua.core
            .ring_trunk(ua.now, CallSlot(2), (1 << 48) + 1, &trunk_dial(true))
    );
    ua.collect();
    let first = sent(&ua, Method::Invite).pop().expect("invite").0;
    ua.send(&challenge(&first, 401, "WWW-Authenticate"));
    let again = sent(&ua, Method::Invite).pop().expect("invite").0;
    assert!(again.headers.get(&HeaderName::Authorization).is_some());
    ua.send(&challenge(&again, 401, "WWW-Authenticate"));
    assert_eq!(ua.legs, vec![((1 << 48) + 1, "failed 401".to_owned())]);
    assert!(
        ua.core
            .ring_trunk(ua.now, CallSlot(3), (1 << 48) + 2, &trunk_dial(false))
    );
    ua.collect();
    let first = sent(&ua, Method::Invite).pop().expect("invite").0;
    ua.send(&challenge(&first, 407, "Proxy-Authenticate"));
    assert_eq!(
        ua.legs.last(),
        Some(&((1 << 48) + 2, "failed 407".to_owned()))
    );
    ua.wait(Duration::from_secs(40));
    assert_eq!(ua.core.live_legs(), 0);
}
