//! Issue 15, point 1: a flow's `fetch` against a real HTTPS endpoint on
//! loopback, started by the test with a certificate the test makes (a CA
//! and a leaf for `localhost`, trusted through the tenant's test-only
//! `fetch_ca_file`). One call walks a flow through every case: a JSON
//! reply into a variable, an endpoint that hangs (timeout), HTML, a 10 MB
//! reply, a redirect off the allow-list, a private IP literal, a reply
//! dripping in, a redirect to itself and to a private address, an expired
//! certificate; a
//! second tenant, which lets no private network through, is refused for
//! `localhost` because the name resolves to loopback.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Server;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The endpoint: one request per connection; what each path answers.
/// Records every request line it got.
async fn endpoint(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    seen: Arc<Mutex<Vec<String>>>,
) {
    let port = listener.local_addr().unwrap().port();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let acceptor = acceptor.clone();
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            seen.lock().unwrap().push(line.clone());
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let (status, ctype, body): (&str, &str, Vec<u8>) = match path.split('?').next() {
                Some("/ok") => (
                    "200 OK",
                    "application/json",
                    br#"{"balance": 4200, "name": "A"}"#.to_vec(),
                ),
                Some("/slow") => {
                    tokio::time::sleep(Duration::from_secs(8)).await;
                    ("200 OK", "application/json", b"{}".to_vec())
                }
                Some("/html") => (
                    "200 OK",
                    "text/html",
                    b"<html><body>hello</body></html>".to_vec(),
                ),
                Some("/big") => {
                    let mut b = br#"{"pad": ""#.to_vec();
                    b.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
                    b.extend_from_slice(br#""}"#);
                    ("200 OK", "application/json", b)
                }
                Some("/redirect") | Some("/loop") | Some("/toprivate") => {
                    ("302 Found", "text/plain", Vec::new())
                }
                Some("/drip") => {
                    // A reply that comes one byte every 300 ms.
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\nConnection: close\r\n\r\n";
                    let _ = tls.write_all(head.as_bytes()).await;
                    for _ in 0..40 {
                        if tls.write_all(b" ").await.is_err() || tls.flush().await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    return;
                }
                _ => ("404 Not Found", "text/plain", Vec::new()),
            };
            let location = if path.starts_with("/redirect") {
                "Location: https://evil.example/steal\r\n".to_owned()
            } else if path.starts_with("/loop") {
                "Location: /loop\r\n".to_owned()
            } else if path.starts_with("/toprivate") {
                format!("Location: https://127.0.0.2:{port}/ok\r\n")
            } else {
                String::new()
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{location}Connection: close\r\n\r\n",
                body.len()
            );
            let _ = tls.write_all(head.as_bytes()).await;
            let _ = tls.write_all(&body).await;
            let _ = tls.shutdown().await;
        });
    }
}

fn flow(port: u16, expired_port: u16) -> String {
    let u = |p: &str| format!("https://localhost:{port}{p}");
    format!(
        r#"flow "Fetches"
  numbers 1000

step start
  fetch get "{ok}", timeout 3s
    into balance
    on failure -> s2
  log "got" balance=balance
  goto s2

step s2
  fetch get "{slow}", timeout 1s
    into balance
    on failure -> s3
  goto s3

step s3
  fetch get "{html}", timeout 3s
    into balance
    on failure -> s4
  goto s4

step s4
  fetch get "{big}", timeout 3s
    into balance
    on failure -> s5
  goto s5

step s5
  fetch post "{redirect}", timeout 3s
    send balance
    into balance
    on failure -> s6
  goto s6

step s6
  fetch get "https://127.0.0.2:{port}/ok", timeout 3s
    into balance
    on failure -> s7
  goto s7

step s7
  fetch get "{drip}", timeout 1s
    into balance
    on failure -> s8
  goto s8

step s8
  fetch get "{lp}", timeout 3s
    into balance
    on failure -> s9
  goto s9

step s9
  fetch get "{toprivate}", timeout 3s
    into balance
    on failure -> s10
  goto s10

step s10
  fetch get "https://localhost:{expired_port}/ok", timeout 3s
    into balance
    on failure -> done
  goto done

step done
  hangup "walked"
"#,
        ok = u("/ok"),
        slow = u("/slow"),
        html = u("/html"),
        big = u("/big"),
        redirect = u("/redirect"),
        drip = u("/drip"),
        lp = u("/loop"),
        toprivate = u("/toprivate"),
    )
}

fn other_flow(port: u16, number: &str) -> String {
    format!(
        "flow \"Other\"\n  numbers {number}\n\nstep start\n  fetch get \"https://localhost:{port}/ok\", timeout 3s\n    into balance\n    on failure -> done\n  goto done\n\nstep done\n  hangup \"walked\"\n"
    )
}

fn timeline(server: &Server, called: &str) -> Vec<Value> {
    // The CDR is written a moment after the call ends.
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let call = loop {
        let found = common::finished_calls(server)
            .into_iter()
            .find(|c| c["called"] == called && c["end_ms"].is_i64());
        match found {
            Some(c) => break c,
            None if std::time::Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(200))
            }
            None => panic!("no finished call to {called}"),
        }
    };
    let v: Value = serde_json::from_str(&common::dhwani_for(
        server,
        &["calls", "show", call["call_id"].as_str().unwrap(), "--json"],
    ))
    .unwrap();
    v["timeline"].as_array().unwrap().clone()
}

#[test]
fn a_flow_fetches_over_https_and_every_bad_endpoint_takes_on_failure_with_its_reason() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // One leaf for the endpoint and one, from the same trusted CA, whose
    // validity ended in 2020.
    let (ca_pem, leaves) =
        common::https::ca_and_leaves(&[(&["localhost"], false), (&["localhost"], true)]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut ports = leaves.into_iter().map(|(chain, key)| {
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let acceptor = common::https::acceptor(chain, key);
            tokio::spawn(endpoint(listener, acceptor, Arc::clone(&seen)));
            port
        })
    });
    let (port, expired_port) = (ports.next().unwrap(), ports.next().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(a.join("f.ivr"), flow(port, expired_port)).unwrap();
    std::fs::write(b.join("f.ivr"), other_flow(port, "2000")).unwrap();
    let c = dir.path().join("c");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(c.join("f.ivr"), other_flow(port, "3000")).unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca_pem).unwrap();
    let ca = dir.path().join("ca.pem");
    let cfg = format!(
        "[[tenants]]\nid = \"shop\"\nnumbers = [\"1000\"]\nflows_dir = \"{}\"\nfetch_allow = [\"localhost:{port}\", \"127.0.0.2:{port}\", \"localhost:{expired_port}\"]\nfetch_private_networks = [\"127.0.0.1/32\", \"::1/128\"]\nfetch_ca_file = \"{}\"\nfetch_filler = \"\"\n\n[[tenants]]\nid = \"other\"\nnumbers = [\"2000\"]\nflows_dir = \"{}\"\nfetch_allow = [\"localhost:{port}\"]\nfetch_ca_file = \"{}\"\n\n[[tenants]]\nid = \"third\"\nnumbers = [\"3000\"]\nflows_dir = \"{}\"\nfetch_allow = [\"localhost:{port}\"]\nfetch_private_networks = [\"127.0.0.0/8\", \"::1/128\"]\n",
        a.display(),
        ca.display(),
        b.display(),
        ca.display(),
        c.display()
    );
    let server = Server::start(&cfg);
    for number in ["1000", "2000", "3000"] {
        let run = common::run_sipp(
            server.addr("udp"),
            &[
                "-sf",
                &common::scenario("wait_bye.xml"),
                "-m",
                "1",
                "-s",
                number,
            ],
            Duration::from_secs(40),
        );
        assert_eq!(
            run.successful,
            1,
            "{}\n{}",
            run.output,
            server.log.join("\n")
        );
    }
    let t = timeline(&server, "1000");
    let answers: Vec<(Value, String)> = t
        .iter()
        .filter(|e| e["kind"] == "fetch" && e["detail"]["event"] == "answer")
        .map(|e| {
            (
                e["detail"]["status"].clone(),
                e["detail"]["outcome"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let show = || format!("{answers:#?}\n{t:#?}");
    assert_eq!(answers.len(), 10, "{}", show());
    assert_eq!(
        answers[0],
        (serde_json::json!(200), "ok".to_owned()),
        "{}",
        show()
    );
    assert!(answers[1].1.contains("timed out"), "{}", show());
    assert_eq!(answers[2].1, "the reply is not JSON", "{}", show());
    assert_eq!(
        answers[3].1,
        "the reply is larger than 64 KiB",
        "{}",
        show()
    );
    assert!(
        answers[4].1.contains("redirect") && answers[4].1.contains("not on the tenant"),
        "{}",
        show()
    );
    assert!(
        answers[5]
            .1
            .contains("127.0.0.2 is a private or reserved address"),
        "{}",
        show()
    );
    assert!(
        answers[6].1.contains("timed out"),
        "a reply dripping in: {}",
        show()
    );
    assert!(
        answers[7].1.contains("more than 3 redirects"),
        "a redirect to itself: {}",
        show()
    );
    assert!(
        answers[8].1.contains("redirect")
            && answers[8]
                .1
                .contains("127.0.0.2 is a private or reserved address"),
        "a redirect to a private address: {}",
        show()
    );
    assert!(
        answers[9].1.to_lowercase().contains("certificate")
            && answers[9].1.to_lowercase().contains("expired"),
        "an expired certificate: {}",
        show()
    );
    // The JSON reply's field went into the variable.
    let got = t
        .iter()
        .find(|e| e["kind"] == "custom")
        .unwrap_or_else(|| panic!("{t:#?}"));
    assert_eq!(got["detail"]["balance"], "4200", "{got}");
    // The timeout took about its second, not the endpoint's eight.
    let ms = t
        .iter()
        .filter(|e| e["kind"] == "fetch" && e["detail"]["event"] == "answer")
        .nth(1)
        .and_then(|e| e["detail"]["ms"].as_u64())
        .unwrap();
    assert!((900..3000).contains(&ms), "the timeout took {ms} ms");
    // Nothing went to the redirect's target or the refused literal: the
    // endpoint saw /ok, /slow, /html, /big, /redirect, /drip, the loop
    // (the first request and 3 redirects followed) and /toprivate only.
    let lines = seen.lock().unwrap().clone();
    let paths: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        paths,
        [
            "/ok",
            "/slow",
            "/html",
            "/big",
            "/redirect",
            "/drip",
            "/loop",
            "/loop",
            "/loop",
            "/loop",
            "/toprivate"
        ],
        "{lines:?}"
    );
    // The other tenant lets no private network through: `localhost`
    // resolves to loopback and is refused before any connection.
    let t = timeline(&server, "2000");
    let refused = t
        .iter()
        .find(|e| e["kind"] == "fetch" && e["detail"]["event"] == "answer")
        .unwrap_or_else(|| panic!("{t:#?}"));
    let outcome = refused["detail"]["outcome"].as_str().unwrap();
    assert!(
        outcome.contains("resolves to") && outcome.contains("private or reserved"),
        "{outcome}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        11,
        "no request from the other tenant"
    );
    // A third tenant lets loopback through but does not trust the test
    // CA: the certificate is refused, nothing is asked.
    let t = timeline(&server, "3000");
    let untrusted = t
        .iter()
        .find(|e| e["kind"] == "fetch" && e["detail"]["event"] == "answer")
        .unwrap_or_else(|| panic!("{t:#?}"));
    let outcome = untrusted["detail"]["outcome"].as_str().unwrap();
    assert!(outcome.to_lowercase().contains("certificate"), "{outcome}");
    assert_eq!(
        seen.lock().unwrap().len(),
        11,
        "no request over an untrusted TLS"
    );
    drop(rt);
}
