//! A whole call over TLS: INVITE, 100, 200 with SDP, ACK, BYE, 200, through
//! a rustls client that trusts the server's test certificate.
//! (Debian's SIPp is built without TLS, so the client is ours.) And the
//! admin API over HTTPS with `http.tls_cert`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn read_message<S: tokio::io::AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> String {
    loop {
        let text = String::from_utf8_lossy(buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let cl: usize = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + cl {
                let msg: Vec<u8> = buf.drain(..end + 4 + cl).collect();
                return String::from_utf8_lossy(&msg).into_owned();
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("timely answer")
            .expect("read");
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_call_over_tls_is_answered_and_hung_up() {
    // TEST FIXTURE: a throwaway self-signed certificate made for this run.
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_pem = certified.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();
    let extra = format!(
        "[sip]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display()
    );
    let server = common::Server::start_with(&["tls:127.0.0.1:0"], &extra);
    let addr = server.addr("tls");

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();

    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    let invite = format!(
        "INVITE sips:1000@localhost SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bKtls1\r\nFrom: <sips:caller@localhost>;tag=c1\r\nTo: <sips:1000@localhost>\r\nCall-ID: tls-call-1\r\nCSeq: 1 INVITE\r\nContact: <sips:caller@{local};transport=tls>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    tls.write_all(invite.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let trying = read_message(&mut tls, &mut buf).await;
    assert!(trying.starts_with("SIP/2.0 100 Trying\r\n"), "{trying}");
    let ok = read_message(&mut tls, &mut buf).await;
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("m=audio ") && ok.contains(" RTP/AVP 8 101\r\n"),
        "PCMA and telephone-event chosen: {ok}"
    );
    assert!(header(&ok, "Contact").contains("transport=tls"), "{ok}");
    let to = header(&ok, "To").to_owned();
    assert!(to.contains(";tag="));

    let ack = format!(
        "ACK sips:1000@localhost SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bKtls2\r\nFrom: <sips:caller@localhost>;tag=c1\r\nTo: {to}\r\nCall-ID: tls-call-1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    tls.write_all(ack.as_bytes()).await.unwrap();
    let bye = format!(
        "BYE sips:1000@localhost SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bKtls3\r\nFrom: <sips:caller@localhost>;tag=c1\r\nTo: {to}\r\nCall-ID: tls-call-1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    tls.write_all(bye.as_bytes()).await.unwrap();
    let bye_ok = read_message(&mut tls, &mut buf).await;
    assert!(
        bye_ok.starts_with("SIP/2.0 200 OK\r\n") && bye_ok.contains("CSeq: 2 BYE"),
        "{bye_ok}"
    );
}

#[test]
fn a_tls_peer_that_never_handshakes_is_dropped() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), certified.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("k.pem"),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();
    let extra = format!(
        "[sip]\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_handshake_timeout_secs = 1\n",
        dir.path().join("c.pem").display(),
        dir.path().join("k.pem").display()
    );
    let server = common::Server::start_with(&["tls:127.0.0.1:0"], &extra);
    let mut s = std::net::TcpStream::connect(server.addr("tls")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = std::time::Instant::now();
    let mut b = [0u8; 8];
    let closed = matches!(std::io::Read::read(&mut s, &mut b), Ok(0) | Err(_));
    assert!(closed && t.elapsed() < Duration::from_secs(9));
}

#[tokio::test]
async fn the_admin_api_answers_over_https_with_the_configured_certificate_and_not_in_clear() {
    // TEST FIXTURE: a throwaway self-signed certificate made for this run.
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_pem = certified.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();
    let extra = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display()
    );
    let server = common::Server::start(&extra);
    let http = server.http.expect("the admin API's address");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(http).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("a TLS handshake with the configured certificate");
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut reply),
    )
    .await
    .expect("a reply in time")
    .ok();
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("\"alive\""), "{text}");
    // Plain HTTP on the same port gets no HTTP answer.
    let mut plain = TcpStream::connect(http).await.unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        tokio::io::AsyncReadExt::read_to_end(&mut plain, &mut got),
    )
    .await
    .expect("the server closes a connection that does not speak TLS");
    assert!(
        !String::from_utf8_lossy(&got).contains("HTTP/1.1 200"),
        "{got:?}"
    );
}
