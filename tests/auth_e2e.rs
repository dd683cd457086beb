//! Digest hardening against the real binary (issue 13 point 4): SHA-256
//! offered before MD5, a replayed `Authorization` refused, ten wrong
//! guesses lock the source out (the right password included) while another
//! source still gets in, and the lockout is logged as a security event.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use bytes::Bytes;
use common::Server;
use common::rawsip::{header, recv_sip};

const PASSWORD: &str = "test-only-secret";

fn start() -> Server {
    Server::start(&format!(
        "[[tenants]]\nid = \"test\"\nnumbers = [\"1000\"]\nflows_dir = \"{}\"\n[[trunks]]\nname = \"carrier\"\nnetworks = [\"127.0.0.0/8\"]\nusername = \"carrier\"\npassword = \"{PASSWORD}\"\n",
        flows_dir().display()
    ))
}

fn flows_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dhwani-auth-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("flows dir");
    std::fs::write(dir.join("test.ivr"), common::test_flow()).expect("flow");
    dir
}

const URI: &str = "sip:1000@127.0.0.1";

fn invite(local: SocketAddr, call: &str, authorization: Option<&str>) -> String {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
        ip = local.ip()
    );
    format!(
        "INVITE {URI} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{call};rport\r\nFrom: <sip:caller@127.0.0.1>;tag=f-{call}\r\nTo: <{URI}>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{local}>\r\n{auth}Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn ack(local: SocketAddr, call: &str, final_response: &str) -> String {
    let to = header(final_response, "To").expect("To");
    format!(
        "ACK {URI} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{call};rport\r\nFrom: <sip:caller@127.0.0.1>;tag=f-{call}\r\nTo: {to}\r\nCall-ID: {call}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends an INVITE, returns its final response (and ACKs a failure).
fn call(sock: &UdpSocket, target: SocketAddr, call: &str, auth: Option<&str>) -> String {
    let local = sock.local_addr().expect("addr");
    sock.send_to(invite(local, call, auth).as_bytes(), target)
        .expect("send");
    loop {
        let r = recv_sip(sock, "SIP/2.0", Duration::from_secs(3))
            .unwrap_or_else(|| panic!("no final response to {call}"));
        let first = r.lines().next().unwrap_or_default().to_owned();
        if first.contains(" 100 ") || first.contains(" 180 ") {
            continue;
        }
        if !first.contains(" 200 ") {
            sock.send_to(ack(local, call, &r).as_bytes(), target)
                .expect("ack");
        }
        return r;
    }
}

fn challenges(r: &str) -> Vec<String> {
    r.lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .map(str::to_owned)
        .collect()
}

fn answer(challenge: &str, password: &str, nc: u32) -> String {
    let ch = sip::header::AuthParams::parse(&Bytes::from(challenge.to_owned())).expect("challenge");
    sip::auth::authorization(&ch, "INVITE", URI, "carrier", password, "c0ffee", nc)
        .expect("authorization")
}

fn status(r: &str) -> u16 {
    r.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn socket(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind(format!("{ip}:0")).expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    s
}

#[test]
fn digest_replay_and_brute_force_are_refused_and_locked_out() {
    let mut server = start();
    let target = server.addr("udp");
    let attacker = socket("127.0.0.1");

    let r = call(&attacker, target, "c0", None);
    assert_eq!(status(&r), 401, "{r}");
    let ch = challenges(&r);
    assert_eq!(ch.len(), 2, "{r}");
    assert!(ch[0].contains("algorithm=SHA-256") && ch[1].contains("algorithm=MD5"));

    // The right answer works once; the same header again is a replay.
    let good = answer(&ch[0], PASSWORD, 1);
    let ok = call(&attacker, target, "c1", Some(&good));
    assert_eq!(status(&ok), 200, "{ok}");
    let replay = call(&attacker, target, "c2", Some(&good));
    assert_eq!(status(&replay), 401, "a replayed Authorization: {replay}");

    // Ten wrong guesses, then the right password: 403 for this source.
    for i in 0..9u32 {
        let guess = answer(&ch[0], &format!("guess{i}"), 10 + i);
        assert_eq!(
            status(&call(&attacker, target, &format!("g{i}"), Some(&guess))),
            401
        );
    }
    let right = answer(&ch[0], PASSWORD, 100);
    let locked = call(&attacker, target, "c3", Some(&right));
    assert_eq!(status(&locked), 403, "locked out: {locked}");
    assert!(server.wait_for_log("auth_lockout", Duration::from_secs(3)));

    // Another source with the right password gets in.
    let other = socket("127.0.0.2");
    let r = call(&other, target, "o0", None);
    let fresh = answer(&challenges(&r)[0], PASSWORD, 1);
    assert_eq!(status(&call(&other, target, "o1", Some(&fresh))), 200);
}
