//! Hostile input over UDP and TCP: malformed messages get a 400 where a
//! response is possible, nothing crashes, and the server still answers
//! OPTIONS afterwards.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use common::Server;

fn options(branch: &str, local: std::net::SocketAddr) -> String {
    format!(
        "OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: {branch}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Reads until the server closes the stream. A read timeout is not a
/// close: it fails the test (the server kept the connection open).
fn assert_closed_by_server(stream: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue, // a reply before the close is fine
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                return;
            }
            Err(e) => panic!("{what}: the server did not close the connection ({e})"),
        }
    }
}

fn recv_status(sock: &UdpSocket) -> Option<String> {
    let mut buf = [0u8; 65_535];
    let n = sock.recv(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().map(str::to_owned)
}

#[test]
fn malformed_datagrams_get_400s_and_options_is_still_answered() {
    let server = Server::start("");
    let target = server.addr("udp");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(target).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let local = sock.local_addr().unwrap();
    let good = options("ok1", local);

    // Requests with the five headers intact get a 400 naming the problem.
    let answered: Vec<(String, &str)> = vec![
        (
            good.replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS"),
            "400 Malformed CSeq",
        ),
        (
            good.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"),
            "400 Malformed CSeq",
        ),
        (
            good.replace("Content-Length: 0", "Content-Length: 50"),
            "400 Content-Length",
        ),
        (
            good.replace(
                "From: <sip:t@127.0.0.1>;tag=1",
                "From: <sip:t@127.0.0.1;tag=1",
            ),
            "400 Malformed From",
        ),
        (
            good.replace("Max-Forwards: 70", "Max-Forwards: 70\r\nMax-Forwards: x"),
            "400 Malformed Max-Forwards",
        ),
        (good.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia"), "505"),
        (
            good.replace("OPTIONS sip:ping@127.0.0.1", "OPTIONS http://ping.invalid"),
            "416",
        ),
        (
            good.replace("Max-Forwards: 70", "Max-Forwards: 70\r\nRequire: nonsense"),
            "420",
        ),
        (
            good.replace("OPTIONS sip", "FROB sip")
                .replace("1 OPTIONS", "1 FROB"),
            "501",
        ),
        (
            good.replace("OPTIONS sip", "PUBLISH sip")
                .replace("1 OPTIONS", "1 PUBLISH"),
            "405",
        ),
        (
            // The registrar answers: a challenge first.
            good.replace("OPTIONS sip", "REGISTER sip")
                .replace("1 OPTIONS", "1 REGISTER"),
            "401",
        ),
        (
            good.replace("Call-ID: ok1", "Call-ID: a b c"),
            "400 Malformed Call-ID",
        ),
    ];
    for (i, (msg, want)) in answered.iter().enumerate() {
        // Distinct branch and Call-ID per case, or the server rightly sees
        // a merged request (482).
        let msg = msg
            .replace("branch=z9hG4bKok1", &format!("branch=z9hG4bKbad{i}"))
            .replace("Call-ID: ok1", &format!("Call-ID: ok1-{i}"));
        sock.send(msg.as_bytes()).unwrap();
        let status = recv_status(&sock).unwrap_or_else(|| panic!("no answer to case {i} ({want})"));
        assert!(
            status.starts_with(&format!("SIP/2.0 {want}")),
            "case {i}: want {want}, got {status}"
        );
    }

    // Garbage with nothing to answer to: silently dropped.
    let mut garbage: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\x03".to_vec(),
        b"INVITE\r\n\r\n".to_vec(),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKstray\r\n\r\n".to_vec(),
        vec![b'A'; 60_000],
        b"INVITE sip:a@b SIP/2.0\r\n"
            .iter()
            .chain([b' '; 5000].iter())
            .copied()
            .collect(),
        (0..300)
            .flat_map(|i| format!("X-H{i}: v\r\n").into_bytes())
            .collect(),
    ];
    garbage.push(
        good.replace(
            "Max-Forwards: 70",
            &"Via: SIP/2.0/UDP h;branch=z9hG4bKv\r\n".repeat(200),
        )
        .into_bytes(),
    );
    // Each is checked on its own: no answer to the ones without the five
    // headers a response needs (waiting 300 ms for nothing is the check),
    // a 400 to the Via bomb, which has them all.
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let last = garbage.len() - 1;
    for (i, g) in garbage.iter().enumerate() {
        sock.send(g).unwrap();
        let reply = recv_status(&sock);
        if i == last {
            let status = reply.expect("the Via bomb has the five headers: a 400");
            assert!(status.starts_with("SIP/2.0 400"), "{status}");
        } else {
            assert_eq!(reply, None, "garbage {i} was answered");
        }
    }
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    sock.send(options("after", local).as_bytes()).unwrap();
    assert_eq!(recv_status(&sock).as_deref(), Some("SIP/2.0 200 OK"));
}

#[test]
fn garbage_on_tcp_closes_that_connection_only() {
    let server = Server::start("");
    let target = server.addr("tcp");
    let mut bad = TcpStream::connect(target).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut good = TcpStream::connect(target).unwrap();
    good.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A header line longer than the cap: unframeable, the connection closes.
    bad.write_all(&vec![b'x'; 10_000]).unwrap();
    assert_closed_by_server(&mut bad, "garbage connection");
    // The other connection still works.
    let local = good.local_addr().unwrap();
    let req = options("tcp1", local).replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    good.write_all(req.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        let n = good.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed");
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("SIP/2.0 200 OK\r\n"));
}

#[test]
fn a_stalled_tcp_message_is_dropped_after_the_message_timeout() {
    let server = Server::start("[sip]\nmessage_timeout_secs = 1\n");
    let mut s = TcpStream::connect(server.addr("tcp")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP")
        .unwrap();
    let started = std::time::Instant::now();
    assert_closed_by_server(&mut s, "slow-loris connection");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "closed only after {:?}",
        started.elapsed()
    );
}

#[test]
fn connections_beyond_the_per_ip_cap_are_refused() {
    let server = Server::start("[sip]\nmax_connections_per_ip = 2\n");
    let target = server.addr("tcp");
    let _a = TcpStream::connect(target).unwrap();
    let _b = TcpStream::connect(target).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut c = TcpStream::connect(target).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_closed_by_server(&mut c, "third connection from one IP");
}

#[test]
fn an_over_size_request_gets_513() {
    let server = Server::start("[sip]\nmax_message_bytes = 2048\n");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(server.addr("udp")).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let local = sock.local_addr().unwrap();
    let pad = "X-Pad: ".to_owned() + &"p".repeat(200) + "\r\n";
    let big = options("big1", local).replace(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{}", pad.repeat(15)),
    );
    assert!(big.len() > 2048);
    sock.send(big.as_bytes()).unwrap();
    let status = recv_status(&sock).expect("an answer");
    assert!(status.starts_with("SIP/2.0 513"), "{status}");
}

#[test]
fn options_over_ipv6_loopback_is_answered() {
    let server = Server::start_with(&["udp:[::1]:0"], "");
    let sock = UdpSocket::bind("[::1]:0").unwrap();
    sock.connect(server.addr("udp")).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let local = sock.local_addr().unwrap();
    sock.send(options("v6", local).as_bytes()).unwrap();
    assert_eq!(recv_status(&sock).as_deref(), Some("SIP/2.0 200 OK"));
}

/// Issue 13 point 7: a garbage flood from one source costs a few log
/// lines and one summary per interval, not a line per datagram.
#[test]
fn a_garbage_flood_writes_a_few_log_lines_and_a_summary() {
    // Exempt from the flood ban (its own test is below): this one is about
    // the log.
    let mut server = Server::start(
        "[security]\npeer_log_interval_secs = 1\nexempt_networks = [\"127.0.0.0/8\"]\n",
    );
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(server.addr("udp")).unwrap();
    for i in 0..3000 {
        sock.send(format!("INVITE sip:{i} SIP/2.0\r\n\r\n").as_bytes())
            .unwrap();
    }
    assert!(
        server.wait_for_log("were suppressed", Duration::from_secs(10)),
        "no summary line:\n{}",
        server.log.join("\n")
    );
    let full = server
        .log
        .iter()
        .filter(|l| l.contains("malformed message"))
        .count();
    // Five per interval; the flood may straddle two or three intervals.
    assert!((5..=15).contains(&full), "{full} lines for 3,000 datagrams");
    let summary = server
        .log
        .iter()
        .find(|l| l.contains("were suppressed"))
        .cloned()
        .unwrap_or_default();
    assert!(summary.contains("source=127.0.0.1"), "{summary}");
    // The server still answers.
    let local = sock.local_addr().unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    sock.send(options("alive", local).as_bytes()).unwrap();
    assert_eq!(recv_status(&sock).as_deref(), Some("SIP/2.0 200 OK"));
}

/// Issue 13 point 3: a source over its message rate is banned (no replies
/// at all) for the ban time; another source is not affected.
#[test]
fn a_flooding_source_is_banned_and_others_are_not() {
    let mut server =
        Server::start("[security]\nflood_messages_per_sec = 100\nflood_ban_secs = 2\n");
    let target = server.addr("udp");
    let flooder = UdpSocket::bind("127.0.0.1:0").unwrap();
    flooder.connect(target).unwrap();
    let local = flooder.local_addr().unwrap();
    for i in 0..500 {
        flooder
            .send(options(&format!("fl{i}"), local).as_bytes())
            .unwrap();
    }
    flooder
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut answered = 0;
    while recv_status(&flooder).is_some() {
        answered += 1;
    }
    assert!(
        (90..=101).contains(&answered),
        "{answered} of 500 answered with a limit of 100 a second"
    );
    assert!(server.wait_for_log("flood_ban", Duration::from_secs(3)));
    // Banned: nothing comes back (waiting for nothing is the check here).
    flooder.send(options("banned", local).as_bytes()).unwrap();
    assert_eq!(recv_status(&flooder), None, "a banned source got a reply");
    // Another source is answered meanwhile.
    let other = UdpSocket::bind("127.0.0.2:0").unwrap();
    other.connect(target).unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let other_local = other.local_addr().unwrap();
    other
        .send(options("other", other_local).as_bytes())
        .unwrap();
    assert_eq!(recv_status(&other).as_deref(), Some("SIP/2.0 200 OK"));
    // After the ban the flooder is answered again.
    std::thread::sleep(Duration::from_millis(2100));
    flooder
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    flooder
        .send(options("after-ban", local).as_bytes())
        .unwrap();
    assert_eq!(recv_status(&flooder).as_deref(), Some("SIP/2.0 200 OK"));
}
