//! Issue 15, points 2-4: a tenant's call events POSTed to its webhook, a
//! real HTTPS receiver on loopback started by the test (its certificate
//! made by the test, trusted through the tenant's test-only
//! `fetch_ca_file`). The receiver is down while a call happens, the server
//! is SIGKILLed mid-retry and started again, the receiver comes back:
//! every event arrives, signed, in order, each accepted once. Then every
//! kind of bad receiver: each attempt fails within the timeout with its
//! reason in the delivery record, and stays due for a retry.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use common::https::{Request, read_request};
use common::sippxml::{SERVER_BYE, info, pause, write_scenario};
use hmac::Mac;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// What the receiver got: each request and the status it answered.
#[derive(Default)]
struct Received {
    up: bool,
    got: Vec<(Request, u16)>,
}

/// The receiver: one request per connection; `/hook` answers 200 when up
/// and 503 when down; the other paths are the bad receivers.
async fn receiver(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<Mutex<Received>>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let acceptor = acceptor.clone();
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let Some(req) = read_request(&mut tls).await else {
                return;
            };
            let path = req.path().to_owned();
            let up = state.lock().unwrap().up;
            let reply = |status: &str, ctype: &str, body: &str| {
                format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            let (code, text) = match path.as_str() {
                "/hook" | "/ok" if up || path == "/ok" => {
                    (200, reply("200 OK", "application/json", "{}"))
                }
                "/hook" => (503, reply("503 Service Unavailable", "text/plain", "down")),
                "/hang" => {
                    // Counted as it arrives; answered (too late) after 10 s.
                    state.lock().unwrap().got.push((req, 0));
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    let _ = tls
                        .write_all(reply("200 OK", "application/json", "{}").as_bytes())
                        .await;
                    return;
                }
                "/drip" => {
                    state.lock().unwrap().got.push((req, 200));
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
                "/big" => {
                    // 10 MB announced and sent.
                    state.lock().unwrap().got.push((req, 200));
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\nConnection: close\r\n\r\n";
                    let _ = tls.write_all(head.as_bytes()).await;
                    let block = vec![b' '; 64 * 1024];
                    for _ in 0..160 {
                        if tls.write_all(&block).await.is_err() {
                            return;
                        }
                    }
                    return;
                }
                "/html" => (
                    200,
                    reply("200 OK", "text/html", "<html><body>Welcome</body></html>"),
                ),
                "/self" => (
                    302,
                    "HTTP/1.1 302 Found\r\nLocation: /self\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                ),
                "/private" => (
                    302,
                    "HTTP/1.1 302 Found\r\nLocation: https://10.0.0.1/steal\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                ),
                _ => (404, reply("404 Not Found", "text/plain", "")),
            };
            state.lock().unwrap().got.push((req, code));
            let _ = tls.write_all(text.as_bytes()).await;
            let _ = tls.shutdown().await;
        });
    }
}

/// Starts a receiver with `chain`/`key` on a loopback port of its own.
fn start_receiver(
    rt: &tokio::runtime::Runtime,
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
    state: &Arc<Mutex<Received>>,
) -> u16 {
    let state = Arc::clone(state);
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(receiver(
            listener,
            common::https::acceptor(chain, key),
            state,
        ));
        port
    })
}

/// Checks `X-Dhwani-Signature` the way docs/webhooks.md tells receivers
/// to: HMAC-SHA256(secret, t + "." + body), and t within 5 minutes.
fn verify(secret: &str, req: &Request) -> Result<(), String> {
    let sig = req.header("x-dhwani-signature").ok_or("no signature")?;
    let (t, v1) = sig
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .ok_or_else(|| format!("malformed: {sig}"))?;
    let t: u64 = t.parse().map_err(|_| "t is not a number")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(t) > 300 {
        return Err(format!("t={t} is outside the 5 minute window"));
    }
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&req.body);
    let want = hex::decode(v1).map_err(|_| "v1 is not hex")?;
    mac.verify_slice(&want)
        .map_err(|_| "the MAC does not match".to_owned())
}

fn webhook_rows(server: &Server) -> Vec<Value> {
    common::dhwani_for(server, &["webhooks", "list", "--json", "--reason", "test"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn hooks_flow(dir: &std::path::Path) -> std::path::PathBuf {
    let flows = dir.join("hook-flows");
    std::fs::create_dir_all(&flows).unwrap();
    let chime = common::repo_path("examples/prompts/chime.wav");
    std::fs::write(
        flows.join("hooks.ivr"),
        format!(
            r#"flow "Hooks"
  numbers 3000

step ask
  consent play "{chime}", timeout 4s
  if consent == "yes"
    recording start
  gather into account, digits 3, timeout 5s
    play "{chime}"
    on invalid -> done
    on timeout -> done
  goto done

step done
  recording stop
  hangup "done"
"#,
            chime = chime.display()
        ),
    )
    .unwrap();
    std::fs::write(
        flows.join("plain.ivr"),
        "flow \"Plain\"\n  numbers 3001\n\nstep start\n  hangup \"done\"\n",
    )
    .unwrap();
    flows
}

#[test]
fn events_arrive_signed_in_order_and_once_after_the_receiver_and_the_server_come_back() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ca_pem, chain, key) = common::https::certificates(&["localhost"]);
    let state = Arc::new(Mutex::new(Received::default()));
    let port = start_receiver(&rt, chain, key, &state);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let flows = hooks_flow(dir.path());
    let mut server = Server::start(&format!(
        r#"[[tenants]]
id = "acme"
numbers = ["3000", "3001"]
flows_dir = "{flows}"
fetch_private_networks = ["127.0.0.1/32"]
fetch_ca_file = "{ca}"
webhook_timeout_ms = 2000
webhook_retry_base_ms = 200
webhook_retry_max_secs = 1
[[tenants.webhooks]]
name = "crm"
url = "https://localhost:{port}/hook"
"#,
        flows = flows.display(),
        ca = ca.display()
    ));
    // The caller agrees (1), enters 427; the flow hangs up.
    let mut middle = pause(500);
    middle.push_str(&info('1', 2));
    middle.push_str(&pause(400));
    for (i, d) in "427".chars().enumerate() {
        if i > 0 {
            middle.push_str(&pause(150));
        }
        middle.push_str(&info(d, 3 + i as u32));
    }
    let sc = write_scenario(dir.path(), &middle, SERVER_BYE);
    let run = common::run_sipp(
        server.addr("udp"),
        &["-sf", &sc, "-m", "1", "-s", "3000"],
        Duration::from_secs(60),
    );
    assert_eq!(
        run.successful,
        1,
        "{}\n{}",
        run.output,
        server.log.join("\n")
    );

    // The receiver is down: the first event is tried again and again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while state
        .lock()
        .unwrap()
        .got
        .iter()
        .filter(|(_, c)| *c == 503)
        .count()
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "no retries while the receiver is down:\n{}",
            server.log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let downs: Vec<String> = state
        .lock()
        .unwrap()
        .got
        .iter()
        .map(|(r, _)| r.header("x-dhwani-event-type").unwrap_or("").to_owned())
        .collect();
    assert!(
        downs.iter().all(|t| t == "call.started"),
        "only the call's first event is tried while it is not delivered: {downs:?}"
    );
    let pending = webhook_rows(&server);
    assert_eq!(pending.len(), 6, "{pending:?}");
    assert!(
        pending.iter().all(|r| r["state"] == "pending"),
        "{pending:?}"
    );

    // SIGKILL mid-retry; the receiver comes back; the server starts again.
    server.kill9();
    state.lock().unwrap().up = true;
    server.restart();
    let want = [
        "call.started",
        "call.answered",
        "consent.given",
        "digits.collected",
        "recording.ready",
        "call.ended",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = state
            .lock()
            .unwrap()
            .got
            .iter()
            .filter(|(_, c)| *c == 200)
            .count();
        if n >= want.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} events delivered:\n{}",
            server.log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nothing more comes (nothing twice).
    std::thread::sleep(Duration::from_secs(3));
    let secret_path = server.data_dir().join("keys/acme.webhook");
    let secret = std::fs::read_to_string(&secret_path)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(
        common::dhwani_for(&server, &["webhooks", "secret", "--tenant", "acme"]).trim(),
        secret
    );
    let got = state.lock().unwrap().got.clone();
    let delivered: Vec<&Request> = got
        .iter()
        .filter(|(_, c)| *c == 200)
        .map(|(r, _)| r)
        .collect();
    let types: Vec<&str> = delivered
        .iter()
        .map(|r| r.header("x-dhwani-event-type").unwrap())
        .collect();
    assert_eq!(types, want, "in the order they happened, each once");
    let mut ids: Vec<&str> = delivered
        .iter()
        .map(|r| r.header("x-dhwani-event-id").unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), want.len(), "an event accepted twice");
    for (r, _) in &got {
        verify(&secret, r).unwrap_or_else(|e| panic!("{e}: {r:?}"));
        // A wrong secret does not verify (the check can fail).
        assert!(verify("not-the-secret", r).is_err());
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["version"], 1);
        assert_eq!(body["tenant"], "acme");
        assert_eq!(body["id"], r.header("x-dhwani-event-id").unwrap());
        assert_eq!(body["type"], r.header("x-dhwani-event-type").unwrap());
    }
    let body = |t: &str| -> Value {
        let r = delivered
            .iter()
            .find(|r| r.header("x-dhwani-event-type") == Some(t))
            .unwrap();
        serde_json::from_slice(&r.body).unwrap()
    };
    assert_eq!(body("call.started")["data"]["from"], "+919800000001");
    assert_eq!(body("call.started")["data"]["to"], "3000");
    assert_eq!(body("digits.collected")["data"]["digits"], "427");
    assert_eq!(body("consent.given")["data"]["answer"], "yes");
    let cdr = &body("call.ended")["data"]["cdr"];
    assert_eq!(cdr["outcome"], "hangup: done", "{cdr}");
    assert!(cdr["recording_id"].is_string(), "{cdr}");
    assert!(body("recording.ready")["data"]["recording_id"].is_string());
    // The first event was tried while down and before the kill.
    let started = delivered[0];
    let attempt: i64 = started.header("x-dhwani-attempt").unwrap().parse().unwrap();
    assert!(attempt >= 4, "attempt {attempt}");
    let rows = webhook_rows(&server);
    assert_eq!(rows.len(), 6);
    for r in &rows {
        assert_eq!(r["state"], "delivered", "{r}");
        assert_eq!(r["last_status"], 200, "{r}");
    }
    // `show` gives the body; the read is audited.
    let id = started.header("x-dhwani-event-id").unwrap();
    let shown: Value = serde_json::from_str(&common::dhwani_for(
        &server,
        &["webhooks", "show", id, "--json", "--reason", "checking"],
    ))
    .unwrap();
    assert_eq!(shown["body"]["type"], "call.started");
    assert!(shown["deliveries"][0]["attempts"].as_i64().unwrap() >= 4);
    let audit = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap_or_default();
    assert!(
        audit.contains("webhooks.show") && audit.contains("checking"),
        "{audit}"
    );
    // Retried on request, it comes once more (the receiver is told it is
    // the same event by its id).
    common::dhwani_for(&server, &["webhooks", "retry", id, "--delivered-too"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = state
            .lock()
            .unwrap()
            .got
            .iter()
            .filter(|(r, c)| *c == 200 && r.header("x-dhwani-event-id") == Some(id))
            .count();
        if again == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the retried event did not come");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The privacy tools reach the outbox (its bodies name the caller):
    // withdrawing consent and erasing are reported by pseudonym, and the
    // erasure deletes the call's outbox rows.
    let before = state.lock().unwrap().got.len();
    common::dhwani_for(
        &server,
        &[
            "privacy",
            "withdraw-consent",
            "--tenant",
            "acme",
            "--number",
            "+919800000001",
        ],
    );
    let erased: Value = serde_json::from_str(&common::dhwani_for(
        &server,
        &[
            "privacy",
            "erase",
            "--tenant",
            "acme",
            "--number",
            "+919800000001",
        ],
    ))
    .unwrap();
    assert_eq!(erased["erased"]["calls_erased"], 1, "{erased}");
    assert_eq!(erased["erased"]["webhook_events_deleted"], 6, "{erased}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let privacy_events = loop {
        let got: Vec<Value> = state.lock().unwrap().got[before..]
            .iter()
            .filter(|(_, c)| *c == 200)
            .map(|(r, _)| serde_json::from_slice(&r.body).unwrap())
            .collect();
        if got.len() >= 2 {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "privacy events not delivered: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let types: Vec<&str> = privacy_events
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["consent.withdrawn", "erasure.done"]);
    for b in &privacy_events {
        assert!(
            b["data"]["caller"].as_str().unwrap().starts_with("anon-"),
            "{b}"
        );
        assert!(!b.to_string().contains("9800000001"), "{b}");
    }
    assert_eq!(privacy_events[1]["data"]["calls_erased"], 1);
    let rows = webhook_rows(&server);
    let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["erasure.done", "consent.withdrawn"],
        "only these are left"
    );
    // No byte of the number in the database files after the erasure.
    for f in ["dhwani.db", "dhwani.db-wal"] {
        let bytes = std::fs::read(server.data_dir().join(f)).unwrap_or_default();
        assert!(
            !bytes.windows(13).any(|w| w == b"+919800000001"),
            "the number is still in {f}"
        );
    }
    // The operator's log names neither the URL's path nor the number.
    let log = server.log.join("\n");
    assert!(!log.contains("9800000001"), "{log}");
}

#[test]
fn every_bad_receiver_gets_a_retry_later_with_its_reason_within_the_timeout() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ca_pem, mut leaves) =
        common::https::ca_and_leaves(&[(&["localhost"], false), (&["localhost"], true)]);
    let state = Arc::new(Mutex::new(Received::default()));
    let (chain, key) = leaves.remove(0);
    let port = start_receiver(&rt, chain, key, &state);
    // A receiver whose certificate has expired (from the trusted CA), and
    // one whose certificate is for another name from a CA the tenant does
    // not trust.
    let (chain, key) = leaves.remove(0);
    let expired_port = start_receiver(&rt, chain, key, &state);
    let (_, other_chain, other_key) = common::https::certificates(&["other.example"]);
    let wrong_port = start_receiver(&rt, other_chain, other_key, &state);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let flows = hooks_flow(dir.path());
    let hook = |name: &str, url: String| {
        format!(
            "[[tenants.webhooks]]\nname = \"{name}\"\nurl = \"{url}\"\nevents = [\"call.started\"]\n"
        )
    };
    let at = |p: &str| format!("https://localhost:{port}{p}");
    let mut toml = format!(
        r#"[[tenants]]
id = "acme"
numbers = ["3000", "3001"]
flows_dir = "{flows}"
fetch_private_networks = ["127.0.0.1/32"]
fetch_ca_file = "{ca}"
webhook_timeout_ms = 1000
webhook_retry_base_ms = 60000
webhook_max_concurrent = 16
"#,
        flows = flows.display(),
        ca = ca.display()
    );
    for (name, url) in [
        ("ok", at("/ok")),
        ("hang", at("/hang")),
        ("drip", at("/drip")),
        ("big", at("/big")),
        ("html", at("/html")),
        ("self", at("/self")),
        ("private", at("/private")),
        ("cert", format!("https://localhost:{wrong_port}/ok")),
        ("expired", format!("https://localhost:{expired_port}/ok")),
        ("literal", format!("https://127.0.0.2:{port}/ok")),
        ("status", at("/missing")),
    ] {
        toml.push_str(&hook(name, url));
    }
    let server = Server::start(&toml);
    let sc = write_scenario(dir.path(), "", SERVER_BYE);
    let started = Instant::now();
    let run = common::run_sipp(
        server.addr("udp"),
        &["-sf", &sc, "-m", "1", "-s", "3001"],
        Duration::from_secs(30),
    );
    assert_eq!(
        run.successful,
        1,
        "{}\n{}",
        run.output,
        server.log.join("\n")
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let rows = loop {
        let rows = webhook_rows(&server);
        if rows.len() == 11 && rows.iter().all(|r| r["attempts"].as_i64() >= Some(1)) {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "not every webhook was tried: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // All tried within the 1 s timeout (plus the call and the polling).
    assert!(started.elapsed() < Duration::from_secs(15));
    let by = |name: &str| rows.iter().find(|r| r["hook"] == name).unwrap().clone();
    let ok = by("ok");
    assert_eq!(ok["state"], "delivered", "{ok}");
    for (name, reason) in [
        ("hang", "timed out"),
        ("drip", "timed out"),
        ("big", "larger than 64 KiB"),
        ("html", "HTML page"),
        ("self", "redirect (not followed)"),
        ("private", "redirect (not followed)"),
        ("cert", "certificate"),
        ("expired", "xpired"),
        ("literal", "private or reserved address"),
        ("status", "HTTP 404"),
    ] {
        let r = by(name);
        assert_eq!(r["state"], "pending", "{name}: a retry later: {r}");
        assert_eq!(r["attempts"], 1, "{name}: {r}");
        let err = r["last_error"].as_str().unwrap_or_default();
        assert!(
            err.contains(reason),
            "{name}: `{err}` does not say `{reason}`"
        );
        assert!(
            !err.contains("localhost:") && !err.contains("/hang"),
            "{name}: the URL in the reason: {err}"
        );
        // Due again after the backoff (60 s ± a fifth), not at once.
        let wait = r["next_ms"].as_i64().unwrap() - r["last_ms"].as_i64().unwrap();
        assert!(
            (47_000..=73_000).contains(&wait),
            "{name}: next in {wait} ms"
        );
    }
    // The redirects were not followed, and 127.0.0.2 and the wrong
    // certificate's endpoint got nothing.
    let paths: Vec<String> = state
        .lock()
        .unwrap()
        .got
        .iter()
        .map(|(r, _)| r.path().to_owned())
        .collect();
    assert_eq!(
        paths.iter().filter(|p| *p == "/self").count(),
        1,
        "{paths:?}"
    );
    assert!(!paths.iter().any(|p| p == "/steal"), "{paths:?}");
    assert_eq!(
        paths.iter().filter(|p| *p == "/ok").count(),
        1,
        "only the good webhook's request reached /ok: {paths:?}"
    );
}

/// A flows folder with one flow that hangs up at once, answering `number`.
fn plain_flows(dir: &std::path::Path, name: &str, number: &str) -> std::path::PathBuf {
    let flows = dir.join(name);
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(
        flows.join("plain.ivr"),
        format!("flow \"Plain\"\n  numbers {number}\n\nstep start\n  hangup \"done\"\n"),
    )
    .unwrap();
    flows
}

fn arrivals(state: &Arc<Mutex<Received>>, path: &str) -> usize {
    state
        .lock()
        .unwrap()
        .got
        .iter()
        .filter(|(r, _)| r.path() == path)
        .count()
}

/// Issue 15, point 4: a tenant whose receiver hangs gets at most its
/// `webhook_max_concurrent` deliveries at once, and another tenant's
/// events are delivered meanwhile.
#[test]
fn a_hanging_receiver_gets_no_more_than_its_tenants_limit_and_holds_up_no_other_tenant() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ca_pem, chain, key) = common::https::certificates(&["localhost"]);
    let state = Arc::new(Mutex::new(Received::default()));
    let port = start_receiver(&rt, chain, key, &state);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let tenant = |id: &str, number: &str, path: &str, extra: &str| {
        format!(
            r#"[[tenants]]
id = "{id}"
numbers = ["{number}"]
flows_dir = "{flows}"
fetch_private_networks = ["127.0.0.1/32"]
fetch_ca_file = "{ca}"
{extra}
[[tenants.webhooks]]
url = "https://localhost:{port}{path}"
events = ["call.started"]
"#,
            flows = plain_flows(dir.path(), id, number).display(),
            ca = ca.display()
        )
    };
    let server = Server::start(&format!(
        "{}{}",
        tenant(
            "slow",
            "4001",
            "/hang",
            "webhook_max_concurrent = 1\nwebhook_timeout_ms = 6000"
        ),
        tenant("fast", "5001", "/ok", "")
    ));
    let sc = write_scenario(dir.path(), "", SERVER_BYE);
    let run = common::run_sipp(
        server.addr("udp"),
        &["-sf", &sc, "-m", "3", "-s", "4001"],
        Duration::from_secs(30),
    );
    assert_eq!(run.successful, 3, "{}", run.output);
    let run = common::run_sipp(
        server.addr("udp"),
        &["-sf", &sc, "-m", "1", "-s", "5001"],
        Duration::from_secs(30),
    );
    assert_eq!(run.successful, 1, "{}", run.output);
    let deadline = Instant::now() + Duration::from_secs(10);
    while arrivals(&state, "/ok") == 0 {
        assert!(
            Instant::now() < deadline,
            "the other tenant's event never came"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The slow tenant's three events: one at a time, each held the full
    // 6 s timeout before the next began.
    assert_eq!(
        arrivals(&state, "/hang"),
        1,
        "the fast tenant's event came while the slow one's first still hung"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while arrivals(&state, "/hang") < 2 {
        assert!(
            Instant::now() < deadline,
            "the second slow event never came"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rows = webhook_rows(&server);
    let slow: Vec<&Value> = rows.iter().filter(|r| r["tenant"] == "slow").collect();
    let tried: Vec<&&Value> = slow.iter().filter(|r| r["attempts"] == 1).collect();
    assert_eq!(tried.len(), 1, "one slow attempt finished: {slow:?}");
    assert!(
        tried[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    let gap = rows
        .iter()
        .filter(|r| r["tenant"] == "slow" && r["attempts"] == 1)
        .map(|r| r["last_ms"].as_i64().unwrap() - r["created_ms"].as_i64().unwrap())
        .next()
        .unwrap();
    assert!(
        gap >= 5_900,
        "the attempt ended after {gap} ms, before its 6 s timeout"
    );
}

/// Issue 15, point 3: two nodes on one PostgreSQL, each with calls of its
/// own and each delivering whatever is due (its own rows at once, the
/// other's when it polls): every event reaches the receiver once.
#[test]
fn two_nodes_on_one_database_deliver_each_event_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ca_pem, chain, key) = common::https::certificates(&["localhost"]);
    let state = Arc::new(Mutex::new(Received {
        up: true,
        got: Vec::new(),
    }));
    let port = start_receiver(&rt, chain, key, &state);
    let pg = common::pg::TempPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let flows = plain_flows(dir.path(), "flows", "4001");
    let node = |name: &str| {
        format!(
            r#"[registrar]
node = "{name}"

[store]
url = "{url}"

[[tenants]]
id = "acme"
numbers = ["4001"]
flows_dir = "{flows}"
fetch_private_networks = ["127.0.0.1/32"]
fetch_ca_file = "{ca}"
webhook_secret_file = "{secret}"
webhook_max_per_sec = 1000
[[tenants.webhooks]]
url = "https://localhost:{port}/hook"
"#,
            url = pg.url,
            flows = flows.display(),
            ca = ca.display(),
            secret = dir.path().join("secret").display()
        )
    };
    crate_secret(&dir.path().join("secret"));
    let a = Server::start(&node("a"));
    let b = Server::start(&node("b"));
    let sc = write_scenario(dir.path(), "", SERVER_BYE);
    let (aa, ba) = (a.addr("udp"), b.addr("udp"));
    let (sa, sb) = (sc.clone(), sc.clone());
    let ta = std::thread::spawn(move || {
        common::run_sipp(
            aa,
            &["-sf", &sa, "-m", "10", "-s", "4001"],
            Duration::from_secs(60),
        )
    });
    let tb = std::thread::spawn(move || {
        common::run_sipp(
            ba,
            &["-sf", &sb, "-m", "10", "-s", "4001", "-p", "0"],
            Duration::from_secs(60),
        )
    });
    assert_eq!(ta.join().unwrap().successful, 10);
    assert_eq!(tb.join().unwrap().successful, 10);
    // 20 calls, 3 events each (started, answered, ended).
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals(&state, "/hook") < 60 {
        assert!(
            Instant::now() < deadline,
            "{} of 60 delivered",
            arrivals(&state, "/hook")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let got = state.lock().unwrap().got.clone();
    let mut ids: Vec<&str> = got
        .iter()
        .map(|(r, _)| r.header("x-dhwani-event-id").unwrap())
        .collect();
    assert_eq!(ids.len(), 60, "requests beyond one per event");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 60, "an event delivered twice");
    // Per call, in order.
    let mut per_call: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (r, _) in &got {
        let b: Value = serde_json::from_slice(&r.body).unwrap();
        per_call
            .entry(b["call_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(b["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(per_call.len(), 20);
    for (call, types) in per_call {
        assert_eq!(
            types,
            ["call.started", "call.answered", "call.ended"],
            "{call}"
        );
    }
    let rows = webhook_rows(&a);
    assert_eq!(rows.len(), 60);
    assert!(
        rows.iter()
            .all(|r| r["state"] == "delivered" && r["attempts"] == 1)
    );
}

/// The shared secret of the two nodes (a file both configs name).
fn crate_secret(p: &std::path::Path) {
    std::fs::write(p, "test-fixture-secret-not-for-production\n").unwrap();
}
