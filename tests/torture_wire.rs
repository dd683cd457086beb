//! RFC 4475's torture messages, byte for byte (`sip/tests/data/rfc4475/`,
//! the RFC's own archive), and RFC 5118's IPv6 ones
//! (`sip/tests/data/rfc5118/`), sent to the real binary over UDP and over
//! TCP, each answer judged as the RFC's section for that message says.
//!
//! The messages name hosts that are not ours (192.0.2.x, example.com in
//! Via, Contact, Route, maddr). So the server and the client run in a
//! network namespace of their own with nothing but loopback (`unshare -n`,
//! then `ip link set lo up`): no reply, no DNS lookup can leave the
//! machine. The outer test re-runs this test binary's inner test inside
//! that namespace; the inner test refuses to run anywhere else.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::Digest;

/// Set for the inner test by the outer one.
const IN_NAMESPACE: &str = "DHWANI_TORTURE_IN_NETNS";

/// What the RFC asks of an endpoint for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// One of these final statuses.
    Status(&'static [u16]),
    /// Treated as well formed: a final answer that is no rejection of the
    /// message's form (400, 505, 513), e.g. 200, 401, 404, 405, 481.
    WellFormed,
    /// A response, or a message to drop: nothing comes back.
    Nothing,
    /// Over a stream, framing cannot go on (the byte count is missing,
    /// negative or runs past the message): no answer as if the message
    /// were processed, and the connection is closed (at once, or when the
    /// missing bytes never come).
    Unframed,
    /// Over a stream, a Content-Length that runs past what was sent: the
    /// rest may still come, so no answer yet and the connection open.
    Waits,
}

impl Want {
    /// An answer is expected, so the first final one ends the wait.
    fn answered(self) -> bool {
        matches!(self, Want::Status(_) | Want::WellFormed)
    }
}

use Want::{Nothing, Status, Unframed, Waits, WellFormed};

/// Each message of the archive with what RFC 4475 says of it (its
/// section), over UDP and over TCP. Where the RFC allows either a 400 or
/// liberal acceptance, the row says which one this server chose.
const CASES: &[(&str, &str, Want, Want)] = &[
    // 3.1.1 valid messages: parsers must accept them.
    ("wsinv", "3.1.1.1", WellFormed, WellFormed),
    // "Endpoints will generate a 501 listing the methods they understand."
    ("intmeth", "3.1.1.2", Status(&[501]), Status(&[501])),
    // An INVITE with escapes everywhere: routed (to no number of ours).
    ("esc01", "3.1.1.3", WellFormed, WellFormed),
    ("escnull", "3.1.1.4", WellFormed, WellFormed),
    // "An endpoint would reject this message with a 501."
    ("esc02", "3.1.1.5", Status(&[501]), Status(&[501])),
    ("lwsdisp", "3.1.1.6", Status(&[200]), Status(&[200])),
    // 34 Via values and very long fields: still well formed.
    ("longreq", "3.1.1.7", WellFormed, WellFormed),
    // The INVITE after the REGISTER is noise (§18.3): one answer only.
    ("dblreq", "3.1.1.8", WellFormed, WellFormed),
    ("semiuri", "3.1.1.9", Status(&[200]), Status(&[200])),
    ("transports", "3.1.1.10", Status(&[200]), Status(&[200])),
    // A MESSAGE with a multipart body: framed right, then 405 (no MESSAGE).
    ("mpart01", "3.1.1.11", Status(&[405]), Status(&[405])),
    // Responses nobody asked for: accepted by the parser, then dropped.
    ("unreason", "3.1.1.12", Nothing, Nothing),
    ("noreason", "3.1.1.13", Nothing, Nothing),
    // 3.1.2 invalid messages.
    ("badinv01", "3.1.2.1", Status(&[400]), Status(&[400])),
    // Content-Length past the end: 400 over UDP; over TCP the rest of the
    // message is still to come.
    ("clerr", "3.1.2.2", Status(&[400]), Waits),
    // Negative Content-Length: an error over UDP, a closed connection
    // over TCP.
    ("ncl", "3.1.2.3", Status(&[400]), Unframed),
    ("scalar02", "3.1.2.4", Status(&[400]), Status(&[400])),
    // A response with scalars out of range: discarded.
    ("scalarlg", "3.1.2.5", Nothing, Nothing),
    ("quotbal", "3.1.2.6", Status(&[400]), Status(&[400])),
    ("ltgtruri", "3.1.2.7", Status(&[400]), Status(&[400])),
    ("lwsruri", "3.1.2.8", Status(&[400]), Status(&[400])),
    // "It is acceptable to reject this request as malformed": we do.
    ("lwsstart", "3.1.2.9", Status(&[400]), Status(&[400])),
    ("trws", "3.1.2.10", Status(&[400]), Status(&[400])),
    // 400, or liberal: we ignore the escaped headers and route the INVITE.
    ("escruri", "3.1.2.11", WellFormed, WellFormed),
    // A bad Date we do not use: not worth a rejection.
    ("baddate", "3.1.2.12", WellFormed, WellFormed),
    // 400, or infer the brackets: the registrar asks for credentials
    // before it reads the Contact.
    (
        "regbadct",
        "3.1.2.13",
        Status(&[400, 401]),
        Status(&[400, 401]),
    ),
    ("badaspec", "3.1.2.14", Status(&[400]), Status(&[400])),
    // The archive's copy ends after `l: 0` without the empty line: a
    // datagram is whole anyway (then 400 for the display names); a stream
    // waits for the rest.
    ("baddn", "3.1.2.15", Status(&[400]), Waits),
    ("badvers", "3.1.2.16", Status(&[505]), Status(&[505])),
    ("mismatch01", "3.1.2.17", Status(&[400]), Status(&[400])),
    (
        "mismatch02",
        "3.1.2.18",
        Status(&[501, 400]),
        Status(&[501, 400]),
    ),
    // A response with a status code over 699: dropped.
    ("bigcode", "3.1.2.19", Nothing, Nothing),
    // 3.2.1: a branch that is only the magic cookie: 400, or RFC 2543
    // matching.
    (
        "badbranch",
        "3.2.1",
        Status(&[200, 400]),
        Status(&[200, 400]),
    ),
    // 3.3 application layer.
    ("insuf", "3.3.1", Status(&[400]), Status(&[400])),
    ("unkscm", "3.3.2", Status(&[416]), Status(&[416])),
    ("novelsc", "3.3.3", Status(&[416]), Status(&[416])),
    (
        "unksm2",
        "3.3.4",
        Status(&[400, 401, 416]),
        Status(&[400, 401, 416]),
    ),
    ("bext01", "3.3.5", Status(&[420]), Status(&[420])),
    ("invut", "3.3.6", Status(&[415]), Status(&[415])),
    ("regaut01", "3.3.7", Status(&[401]), Status(&[401])),
    ("multi01", "3.3.8", Status(&[400]), Status(&[400])),
    // Two Content-Length values: 400 over UDP; over TCP the message cannot
    // be framed.
    ("mcl01", "3.3.9", Status(&[400]), Unframed),
    // A 200 with a broadcast Via: dropped, nothing sent anywhere.
    ("bcast", "3.3.10", Nothing, Nothing),
    // Max-Forwards 0 on an OPTIONS to us: answered.
    ("zeromf", "3.3.11", Status(&[200]), Status(&[200])),
    ("cparam01", "3.3.12", WellFormed, WellFormed),
    ("cparam02", "3.3.13", WellFormed, WellFormed),
    ("regescrt", "3.3.14", WellFormed, WellFormed),
    ("sdp01", "3.3.15", Status(&[404, 406]), Status(&[404, 406])),
    // 3.4.1: an RFC 2543 INVITE (no branch cookie, no Content-Length):
    // accepted over UDP; over TCP it cannot be framed.
    ("inv2543", "3.4.1", WellFormed, Unframed),
];

/// RFC 5118's messages with what its section 4 says of each.
const CASES_5118: &[(&str, &str, Want, Want)] = &[
    ("ipv6-good", "4.1", WellFormed, WellFormed),
    // An IPv6 address without its brackets in the Request-URI.
    ("ipv6-bad", "4.2", Status(&[400]), Status(&[400])),
    // `[2001:db8::10:5070]` is an address, not an address and a port:
    // well formed.
    ("port-ambiguous", "4.3", WellFormed, WellFormed),
    ("port-unambiguous", "4.4", WellFormed, WellFormed),
    (
        "via-received-param-with-delim",
        "4.5",
        WellFormed,
        WellFormed,
    ),
    ("via-received-param-no-delim", "4.5", WellFormed, WellFormed),
    ("ipv6-in-sdp", "4.6", WellFormed, WellFormed),
    ("mult-ip-in-header", "4.7", WellFormed, WellFormed),
    ("mult-ip-in-sdp", "4.8", WellFormed, WellFormed),
    ("ipv4-mapped-ipv6", "4.9", WellFormed, WellFormed),
    // Three colons: not an IPv6 reference.
    (
        "ipv6-bug-abnf-3-colons",
        "4.10",
        Status(&[400]),
        Status(&[400]),
    ),
    (
        "ipv6-correct-abnf-2-colons",
        "4.10",
        Status(&[200]),
        Status(&[200]),
    ),
];

/// One corpus: its folder, its message count, its expectations.
struct Corpus {
    dir: &'static str,
    count: usize,
    cases: &'static [(&'static str, &'static str, Want, Want)],
}

const CORPORA: &[Corpus] = &[
    Corpus {
        dir: "sip/tests/data/rfc4475",
        count: 49,
        cases: CASES,
    },
    Corpus {
        dir: "sip/tests/data/rfc5118",
        count: 12,
        cases: CASES_5118,
    },
];

/// A corpus's bytes, each checked against its `SHA256SUMS`.
fn messages(corpus: &Corpus) -> Vec<(String, Vec<u8>)> {
    let dir = common::repo_path(corpus.dir);
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("SHA256SUMS").display()));
    let mut out = Vec::new();
    for line in sums.lines() {
        let (sum, file) = line.split_once("  ").expect("SHA256SUMS line");
        let bytes = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&bytes)),
            sum,
            "{file} is not the RFC's bytes"
        );
        out.push((file.trim_end_matches(".dat").to_owned(), bytes));
    }
    assert_eq!(out.len(), corpus.count, "{}: messages", corpus.dir);
    for (name, ..) in corpus.cases {
        assert!(
            out.iter().any(|(n, _)| n == name),
            "{name} missing from {}",
            corpus.dir
        );
    }
    assert_eq!(
        corpus.cases.len(),
        corpus.count,
        "every message has its expectation"
    );
    out
}

/// Final statuses among SIP messages in `text` (responses split by
/// their status lines).
fn statuses(text: &str) -> Vec<u16> {
    text.split("SIP/2.0 ")
        .skip(1)
        .filter_map(|rest| rest.get(..3)?.parse::<u16>().ok())
        .filter(|s| *s >= 200)
        .collect()
}

/// Where a UDP response to `bytes` goes (RFC 3261 §18.2.2: without
/// `rport`, to the source IP at the top Via's port, 5060 by default), and
/// the message's Call-ID, as our own parser reads them (a message it
/// cannot read is answered straight back to its source, if at all).
fn reply_port_and_call_id(bytes: &[u8]) -> (u16, Option<String>) {
    use sip::message::{Limits, Message, parse_datagram};
    match parse_datagram(bytes::Bytes::copy_from_slice(bytes), &Limits::default()) {
        Ok(Message::Request(r)) => {
            let port = r
                .top_via()
                .ok()
                .filter(|v| v.rport().is_none())
                .map(|v| v.port.unwrap_or(5060));
            let call_id = r
                .call_id()
                .ok()
                .map(|c| String::from_utf8_lossy(&c).into_owned());
            (port.unwrap_or(0), call_id)
        }
        Ok(Message::Response(r)) => (
            0,
            r.call_id()
                .ok()
                .map(|c| String::from_utf8_lossy(&c).into_owned()),
        ),
        // Not readable: the Call-ID line as it stands (the answer, if any,
        // goes straight back to the source).
        Err(_) => (
            0,
            String::from_utf8_lossy(bytes).lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                let name = name.trim();
                (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
                    .then(|| value.trim().to_owned())
            }),
        ),
    }
}

/// A server transaction's key (RFC 3261 §17.2.3: branch, sent-by,
/// method). Some archive messages share one (`unkscm` and `novelsc`, the
/// `cparam` pair): the RFC means each to be sent alone, so a message whose
/// key a server has seen gets a fresh server.
fn tx_key(bytes: &[u8]) -> Option<String> {
    use sip::message::{Limits, Message, parse_datagram};
    let Ok(Message::Request(r)) =
        parse_datagram(bytes::Bytes::copy_from_slice(bytes), &Limits::default())
    else {
        return None;
    };
    let v = r.top_via().ok()?;
    Some(format!(
        "{:?} {}:{:?} {}",
        v.branch(),
        v.host,
        v.port,
        r.cseq().ok()?.method
    ))
}

/// What came back over UDP within `within` (the final statuses of
/// responses to this message: answers to earlier messages, resent until
/// their ACK that never comes, carry other Call-IDs).
fn over_udp(
    server: std::net::SocketAddr,
    bytes: &[u8],
    within: Duration,
    first: bool,
    others: &[String],
) -> Vec<u16> {
    let (port, call_id) = reply_port_and_call_id(bytes);
    let sock = UdpSocket::bind(("127.0.0.1", port)).expect("bind the reply port");
    sock.send_to(bytes, server).expect("send");
    let end = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                let ours = match &call_id {
                    // RFC 5118's messages share a Call-ID; answers to an
                    // earlier one go to the reply port that one named,
                    // which is not this socket's unless both name it.
                    Some(c) => text.contains(c.as_str()),
                    None => !others.iter().any(|o| text.contains(o.as_str())),
                };
                if ours {
                    got.extend(statuses(&text));
                }
            }
            Err(_) => break,
        }
        if first && !got.is_empty() {
            break;
        }
    }
    got
}

/// What came back over a TCP connection within `within`, and whether the
/// server closed the connection (a read of zero bytes; a timeout is not a
/// close).
fn over_tcp(
    server: std::net::SocketAddr,
    bytes: &[u8],
    within: Duration,
    first: bool,
) -> (Vec<u16>, bool) {
    let mut s = TcpStream::connect(server).expect("connect");
    s.write_all(bytes).expect("send");
    let end = Instant::now() + within;
    let mut text = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut closed = false;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            Err(_) => break,
        }
        if first && !statuses(&String::from_utf8_lossy(&text)).is_empty() {
            break;
        }
    }
    (statuses(&String::from_utf8_lossy(&text)), closed)
}

fn judge(want: Want, got: &[u16], closed: Option<bool>) -> Result<(), String> {
    let first = got.first().copied();
    match want {
        Status(ok) => match first {
            Some(s) if ok.contains(&s) => Ok(()),
            other => Err(format!("want one of {ok:?}, got {other:?}")),
        },
        WellFormed => match first {
            Some(s) if ![400, 505, 513].contains(&s) => Ok(()),
            other => Err(format!(
                "want an answer to a well-formed message, got {other:?}"
            )),
        },
        Nothing => match first {
            None => Ok(()),
            Some(s) => Err(format!("want no answer, got {s}")),
        },
        Waits => match (first, closed) {
            (None, Some(false)) => Ok(()),
            (s, c) => Err(format!(
                "want no answer yet and the connection open, got {s:?}, closed {c:?}"
            )),
        },
        Unframed => match (first, closed) {
            (None | Some(400), Some(true)) => Ok(()),
            (s, c) => Err(format!(
                "want no processing and a closed connection, got {s:?}, closed {c:?}"
            )),
        },
    }
}

#[test]
fn rfc_4475_and_5118_messages_byte_for_byte_over_udp_and_tcp_in_a_loopback_only_namespace() {
    // Fails here, not in the namespace, when a corpus is missing.
    for c in CORPORA {
        messages(c);
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("unshare")
        .args([
            "-n",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(&exe)
        .args([
            "--exact",
            "replay_inside_the_namespace",
            "--include-ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(IN_NAMESPACE, "1")
        .output()
        .expect("unshare (util-linux) and ip (iproute2): ./scripts/test.sh installs them");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("test result: ok. 1 passed"),
        "the inner test did not run: {text}"
    );
}

#[test]
#[ignore = "run inside its own network namespace by the test above"]
fn replay_inside_the_namespace() {
    assert_eq!(
        std::env::var(IN_NAMESPACE).as_deref(),
        Ok("1"),
        "these messages name foreign hosts: run only inside the namespace the outer test makes"
    );
    let dev = std::fs::read_to_string("/proc/self/net/dev").expect("/proc/self/net/dev");
    let ifaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, vec!["lo"], "a namespace with nothing but loopback");
    let msgs: Vec<(String, Vec<u8>)> = CORPORA.iter().flat_map(messages).collect();
    let cases: Vec<&(&str, &str, Want, Want)> =
        CORPORA.iter().flat_map(|c| c.cases.iter()).collect();
    // One server per transport: the same message over TCP after UDP would
    // be a retransmission of the UDP transaction (same branch and
    // sent-by, §17.2.3), answered where the first copy's answer went.
    let mut server = common::Server::start("");
    let mut tcp_server = common::Server::start("");
    let mut seen = std::collections::HashSet::new();
    let call_ids: Vec<String> = msgs
        .iter()
        .filter_map(|(_, b)| reply_port_and_call_id(b).1)
        .collect();
    let mut failures = Vec::new();
    let mut table = Vec::new();
    for (name, section, want_udp, want_tcp) in cases {
        let bytes = &msgs.iter().find(|(n, _)| n == name).expect("message").1;
        if let Some(key) = tx_key(bytes)
            && !seen.insert(key)
        {
            server = common::Server::start("");
            tcp_server = common::Server::start("");
            seen.clear();
            seen.extend(tx_key(bytes));
        }
        let (udp, tcp) = (server.addr("udp"), tcp_server.addr("tcp"));
        // Silence needs the whole window to be judged; an answer ends it
        // (except for dblreq, where a second answer would be wrong).
        let first = |w: &Want| w.answered() && *name != "dblreq";
        let got = over_udp(
            udp,
            bytes,
            Duration::from_millis(800),
            first(want_udp),
            &call_ids,
        );
        if let Err(e) = judge(*want_udp, &got, None) {
            failures.push(format!("{name} (§{section}) over UDP: {e}"));
        }
        // dblreq: the noise after the REGISTER is not a second request.
        if *name == "dblreq" && got.len() > 1 {
            failures.push(format!("dblreq over UDP: {} answers, want one", got.len()));
        }
        let (got_tcp, closed) = over_tcp(tcp, bytes, Duration::from_millis(1500), first(want_tcp));
        if let Err(e) = judge(*want_tcp, &got_tcp, Some(closed)) {
            failures.push(format!("{name} (§{section}) over TCP: {e}"));
        }
        table.push(format!(
            "{name:<11} udp {got:?} tcp {got_tcp:?} closed={closed}"
        ));
    }
    assert!(
        failures.is_empty(),
        "{}\n\nall answers:\n{}\n\nserver log:\n{}",
        failures.join("\n"),
        table.join("\n"),
        server.log.join("\n")
    );
}
