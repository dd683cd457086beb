//! The admin HTTP API against the real binary, over real HTTP/1.1 on
//! loopback: keys made with `dhwani apikeys`, each role's allowed and
//! refused operations, two tenants that never see each other's calls, the
//! problem documents of bad input, the lockout after failed key checks,
//! `/metrics` parsed by a Prometheus text parser while SIPp calls, and
//! `/ready` while the server drains.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::rawsip::{self, recv_sip, sockets, to_tag};
use common::{Server, dhwani_for};
use serde_json::Value;

/// One HTTP/1.1 exchange on a fresh connection (`Connection: close`):
/// status, lower-cased headers, body.
struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    request_from(None, addr, method, path, headers, body)
}

fn request_from(
    local: Option<std::net::IpAddr>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = match local {
        None => TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect"),
        Some(ip) => {
            let sock = socket2_bind(ip);
            sock.connect(&addr.into())
                .expect("connect from another loopback address");
            sock.into()
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).expect("write");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .expect("read the whole reply (the server closes)");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    Reply {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// A TCP socket bound to `ip` (another address of the loopback net).
fn socket2_bind(ip: std::net::IpAddr) -> socket2::Socket {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.bind(&SocketAddr::new(ip, 0).into())
        .expect("bind 127.0.0.2");
    s
}

fn get(addr: SocketAddr, path: &str, key: &str) -> Reply {
    let auth = format!("Bearer {key}");
    request(addr, "GET", path, &[("Authorization", &auth)], b"")
}

fn post_json(addr: SocketAddr, path: &str, key: &str, body: &str) -> Reply {
    let auth = format!("Bearer {key}");
    request(
        addr,
        "POST",
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

fn flow(name: &str, number: &str) -> String {
    format!(
        "flow \"{name}\"\n  numbers {number}\n\nstep greet\n  play \"{}\"\n  goto hold\n\nstep hold\n  wait 10m\n  hangup \"done\"\n",
        common::repo_path("examples/prompts/welcome.wav").display()
    )
}

/// Two tenants: acme owns 1000, zenith owns 2000.
fn two_tenants(dir: &std::path::Path) -> String {
    for (t, n) in [("acme", "1000"), ("zenith", "2000")] {
        let d = dir.join(t);
        std::fs::create_dir_all(&d).expect("flows dir");
        std::fs::write(d.join("main.ivr"), flow(&format!("{t} main"), n)).expect("flow");
    }
    format!(
        "[[tenants]]\nid = \"acme\"\nnumbers = [\"1000\"]\nflows_dir = \"{}\"\n\n[[tenants]]\nid = \"zenith\"\nnumbers = [\"2000\"]\nflows_dir = \"{}\"\n",
        dir.join("acme").display(),
        dir.join("zenith").display()
    )
}

fn key(server: &Server, args: &[&str]) -> String {
    let mut a = vec!["apikeys", "add"];
    a.extend(args);
    let out = dhwani_for(server, &a);
    let k = out.trim().to_owned();
    assert!(k.starts_with("dhk_"), "{out}");
    k
}

/// A call to `number` held open by hand: (SIP socket, Call-ID, To tag).
fn call(server: &Server, number: &str, id: &str) -> (std::net::UdpSocket, String, String) {
    let (sip, media) = sockets();
    let local = sip.local_addr().expect("addr");
    let inv = rawsip::invite(local, media.local_addr().expect("addr"), id)
        .replace("sip:1000@", &format!("sip:{number}@"));
    sip.send_to(inv.as_bytes(), server.addr("udp"))
        .expect("send");
    let ok = recv_sip(&sip, "200", Duration::from_secs(10)).expect("200 OK");
    let tag = to_tag(&ok);
    let mut ack = rawsip::in_dialog("ACK", 1, local, id, &tag);
    ack = ack.replace("sip:1000@", &format!("sip:{number}@"));
    sip.send_to(ack.as_bytes(), server.addr("udp"))
        .expect("ack");
    std::mem::forget(media);
    (sip, id.to_owned(), tag)
}

fn hang_up(server: &Server, (sip, id, tag): &(std::net::UdpSocket, String, String), number: &str) {
    let local = sip.local_addr().expect("addr");
    let bye =
        rawsip::in_dialog("BYE", 2, local, id, tag).replace("sip:1000@", &format!("sip:{number}@"));
    sip.send_to(bye.as_bytes(), server.addr("udp"))
        .expect("bye");
    assert!(
        recv_sip(sip, "200", Duration::from_secs(5)).is_some(),
        "200 to BYE"
    );
}

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn each_key_sees_only_its_tenant_and_its_roles_operations_on_every_endpoint() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::start(&two_tenants(dir.path()));
    let http = server.http.expect("the admin API's address");
    let op = key(&server, &["--role", "platform-operator", "--label", "ops"]);
    let acme = key(&server, &["--tenant", "acme", "--role", "tenant-admin"]);
    let acme_sup = key(&server, &["--tenant", "acme", "--role", "supervisor"]);
    let acme_agent = key(&server, &["--tenant", "acme", "--role", "agent"]);
    let acme_aud = key(&server, &["--tenant", "acme", "--role", "auditor"]);
    let zenith = key(&server, &["--tenant", "zenith", "--role", "tenant-admin"]);

    let a = call(&server, "1000", "api-acme-1");
    let z = call(&server, "2000", "api-zenith-1");
    let mut live = Value::Null;
    wait_until("both calls live", Duration::from_secs(10), || {
        live = get(http, "/v1/calls/live", &op).json();
        live["items"].as_array().is_some_and(|v| v.len() == 2)
    });
    let id_of = |tenant: &str| {
        live["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|c| c["tenant"] == tenant)
            .and_then(|c| c["call_id"].as_str())
            .expect("call id")
            .to_owned()
    };
    let (acme_call, zenith_call) = (id_of("acme"), id_of("zenith"));
    // The live table names the step and the flow, never the caller.
    let acme_live = get(http, "/v1/calls/live", &acme);
    assert_eq!(acme_live.status, 200, "{}", acme_live.body);
    let items = acme_live.json()["items"]
        .as_array()
        .cloned()
        .expect("items");
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["tenant"], "acme");
    assert_eq!(items[0]["flow"], "acme main");
    assert!(
        ["greet", "hold"].contains(&items[0]["step"].as_str().unwrap_or("")),
        "{items:?}"
    );
    assert!(!acme_live.body.contains("caller"), "{}", acme_live.body);
    let z_live = get(http, "/v1/calls/live", &zenith).json();
    assert_eq!(z_live["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(z_live["items"][0]["tenant"], "zenith");

    // Both calls' first rows in the store (within the writer's flush),
    // so that what follows is refused for their tenant, not their absence.
    for id in [&acme_call, &zenith_call] {
        wait_until(
            "the call's first row stored",
            Duration::from_secs(5),
            || get(http, &format!("/v1/calls/{id}"), &op).status == 200,
        );
    }
    // `dhwani calls live` reads the same through the API.
    let (code, out, err) = common::dhwani(&[
        "calls",
        "live",
        "--api",
        &format!("http://{http}"),
        "--api-key",
        &acme,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&acme_call) && !out.contains(&zenith_call),
        "{out}"
    );
    assert!(out.contains("1 live call"), "{out}");
    let (code, _, err) = common::dhwani(&[
        "calls",
        "live",
        "--api",
        &format!("http://{http}"),
        "--api-key",
        &acme_agent,
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("403"), "{err}");
    // Another tenant's call id answers exactly as an id that does not exist.
    let theirs = get(http, &format!("/v1/calls/{zenith_call}"), &acme);
    let nobody = get(http, "/v1/calls/20261203-000000-doesnotexist", &acme);
    assert_eq!(theirs.status, 404, "{}", theirs.body);
    assert_eq!((theirs.status, &theirs.body), (nobody.status, &nobody.body));
    assert!(
        theirs
            .headers
            .contains("content-type: application/problem+json")
    );
    let by_sip_id = get(http, "/v1/calls/api-zenith-1", &acme);
    assert_eq!(
        (by_sip_id.status, &by_sip_id.body),
        (nobody.status, &nobody.body)
    );
    // Naming another tenant is refused the same whether it exists or not.
    let other = get(http, "/v1/calls/live?tenant=zenith", &acme);
    let ghost = get(http, "/v1/calls/live?tenant=ghost", &acme);
    assert_eq!(other.status, 403);
    assert_eq!((other.status, &other.body), (ghost.status, &ghost.body));
    for path in ["/v1/calls?tenant=zenith", "/v1/agents?tenant=zenith"] {
        let r = get(http, path, &acme);
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
    let check_theirs = post_json(
        http,
        "/v1/flows/check",
        &acme,
        r#"{"name": "x.ivr", "source": "flow \"x\"\n", "tenant": "zenith"}"#,
    );
    assert_eq!(check_theirs.status, 403, "{}", check_theirs.body);
    // Every endpoint: naming zenith is refused exactly as naming a tenant
    // that does not exist, and acme's lists never mention zenith.
    for path in [
        "/v1/calls/live",
        "/v1/calls",
        "/v1/agents",
        "/v1/flows",
        "/v1/queues",
        "/v1/recordings",
        "/v1/holds",
        "/v1/retention",
        "/v1/privacy/requests",
        "/v1/grievances",
    ] {
        let theirs = get(http, &format!("{path}?tenant=zenith"), &acme);
        let ghost = get(http, &format!("{path}?tenant=ghost"), &acme);
        assert_eq!(theirs.status, 403, "{path}: {}", theirs.body);
        assert_eq!(
            (theirs.status, &theirs.body),
            (ghost.status, &ghost.body),
            "{path}"
        );
        let mine = get(http, path, &acme);
        assert_eq!(mine.status, 200, "{path}: {}", mine.body);
        assert!(!mine.body.contains("zenith"), "{path}: {}", mine.body);
    }
    let number = r#""number": "+919800000001""#;
    for (method, path, body) in [
        (
            "POST",
            "/v1/privacy/export".to_owned(),
            format!("{{{number}, \"tenant\": \"T\"}}"),
        ),
        (
            "POST",
            "/v1/privacy/erase".to_owned(),
            format!("{{{number}, \"tenant\": \"T\"}}"),
        ),
        (
            "POST",
            "/v1/privacy/withdraw-consent".to_owned(),
            format!("{{{number}, \"tenant\": \"T\"}}"),
        ),
        (
            "POST",
            "/v1/holds".to_owned(),
            r#"{"covers": {"scope": "tenant"}, "reason": "x", "tenant": "T"}"#.to_owned(),
        ),
        (
            "POST",
            "/v1/flows/check".to_owned(),
            r#"{"name": "a.ivr", "source": "", "tenant": "T"}"#.to_owned(),
        ),
        (
            "POST",
            "/v1/flows/test".to_owned(),
            r#"{"name": "a.ivr", "source": "", "tests": "", "tenant": "T"}"#.to_owned(),
        ),
        (
            "PUT",
            "/v1/flows/main.ivr".to_owned(),
            r#"{"source": "", "tenant": "T"}"#.to_owned(),
        ),
        (
            "POST",
            "/v1/agents/1001/state".to_owned(),
            r#"{"state": "pause", "tenant": "T"}"#.to_owned(),
        ),
        (
            "DELETE",
            "/v1/flows/main.ivr?tenant=T".to_owned(),
            String::new(),
        ),
    ] {
        let send = |t: &str| {
            request(
                http,
                method,
                &path.replace("=T", &format!("={t}")),
                &[
                    ("Authorization", &format!("Bearer {acme}")),
                    ("Content-Type", "application/json"),
                ],
                body.replace("\"T\"", &format!("\"{t}\"")).as_bytes(),
            )
        };
        let (theirs, ghost) = (send("zenith"), send("ghost"));
        assert_eq!(theirs.status, 403, "{method} {path}: {}", theirs.body);
        assert_eq!(
            (theirs.status, &theirs.body),
            (ghost.status, &ghost.body),
            "{method} {path}"
        );
    }
    // Tenants: each key its own; the operator every one.
    let t: Vec<String> = get(http, "/v1/tenants", &acme).json()["items"]
        .clone()
        .as_array()
        .expect("list")
        .iter()
        .map(|t| t["id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(t, ["acme"]);
    let t = get(http, "/v1/tenants", &op).json()["items"].clone();
    assert_eq!(t.as_array().map(Vec::len), Some(2), "{t}");
    assert_eq!(t[0]["numbers"][0]["flow"], "acme main");
    assert_eq!(t[0]["live_calls"], 1);
    // A tenant named in the path: another's answers as one that does not
    // exist; changes to tenants are the platform operator's alone.
    for path in ["/v1/tenants/T", "/v1/tenants/T/numbers"] {
        let theirs = get(http, &path.replace('T', "zenith"), &acme);
        let ghost = get(http, &path.replace('T', "ghost"), &acme);
        assert_eq!(theirs.status, 404, "{path}: {}", theirs.body);
        assert_eq!(
            (theirs.status, &theirs.body),
            (ghost.status, &ghost.body),
            "{path}"
        );
        let mine = get(http, &path.replace('T', "acme"), &acme);
        assert_eq!(mine.status, 200, "{path}: {}", mine.body);
        assert!(
            !mine.body.contains("zenith") && !mine.body.contains("2000"),
            "{path}: {}",
            mine.body
        );
    }
    for (method, path, body) in [
        ("POST", "/v1/tenants", r#"{"id": "new"}"#),
        ("PATCH", "/v1/tenants/acme", r#"{"max_calls": 1}"#),
        ("POST", "/v1/tenants/acme/numbers", r#"{"number": "3000"}"#),
        ("DELETE", "/v1/tenants/acme/numbers/1000", ""),
    ] {
        let r = request(
            http,
            method,
            path,
            &[
                ("Authorization", &format!("Bearer {acme}")),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        );
        assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
    }

    // The acme call's own timeline, audited with the reason given.
    let mine = request(
        http,
        "GET",
        &format!("/v1/calls/{acme_call}"),
        &[
            ("Authorization", &format!("Bearer {acme}")),
            ("Dhwani-Reason", "ticket 4711"),
        ],
        b"",
    );
    assert_eq!(mine.status, 200, "{}", mine.body);
    let v = mine.json();
    assert_eq!(v["call"]["tenant"], "acme");
    assert!(v["live"]["step"].is_string(), "{v}");
    assert!(
        v["timeline"].as_array().is_some_and(|t| !t.is_empty()),
        "{v}"
    );
    let audit = std::fs::read_to_string(server.data_dir().join("audit.log")).expect("audit log");
    let acme_id = &acme[4..20];
    assert!(
        audit
            .lines()
            .any(|l| l.contains(&format!("api-key:{acme_id}"))
                && l.contains("api.calls.show")
                && l.contains(&acme_call)
                && l.contains("ticket 4711")),
        "{audit}"
    );

    // Roles: what each may and may not do (with its own tenant).
    let check = r#"{"name": "new.ivr", "source": "flow \"New\"\n\nstep main\n  hangup \"bye\"\n"}"#;
    let cases: &[(&str, &str, &str, u16)] = &[
        (&acme_sup, "GET", "/v1/calls/live", 200),
        (&acme_sup, "GET", "/v1/calls", 200),
        (&acme_sup, "GET", "/v1/agents", 200),
        (&acme_sup, "POST", "/v1/flows/check", 403),
        (&acme_sup, "GET", "/v1/audit/verify", 403),
        (&acme_agent, "GET", "/v1/calls/live", 403),
        (&acme_agent, "GET", "/v1/calls", 403),
        (&acme_agent, "GET", &format!("/v1/calls/{acme_call}"), 403),
        (&acme_agent, "GET", "/v1/agents", 200),
        (&acme_agent, "POST", "/v1/flows/check", 403),
        (&acme_aud, "GET", "/v1/calls", 403),
        (&acme_aud, "GET", "/v1/calls/live", 403),
        (&acme_aud, "GET", "/v1/audit/verify", 200),
        (&acme_aud, "POST", "/v1/flows/check", 403),
        (&acme, "POST", "/v1/flows/check", 200),
        (&acme, "GET", "/v1/audit/verify", 200),
        (&op, "GET", "/v1/calls", 200),
        (&op, "GET", "/v1/audit/verify", 200),
    ];
    for (k, method, path, want) in cases {
        let r = if *method == "POST" {
            post_json(http, path, k, check)
        } else {
            get(http, path, k)
        };
        assert_eq!(r.status, *want, "{} {method} {path}: {}", &k[..20], r.body);
    }
    let checked = post_json(http, "/v1/flows/check", &acme, check).json();
    assert_eq!(checked["ok"], true, "{checked}");
    assert_eq!(checked["flow"], "New");

    hang_up(&server, &a, "1000");
    hang_up(&server, &z, "2000");
    wait_until("no live call", Duration::from_secs(10), || {
        get(http, "/v1/calls/live", &op).json()["items"]
            .as_array()
            .is_some_and(Vec::is_empty)
    });
    // Past calls: acme's only, with its caller (audited); pages join up.
    let mut page = Value::Null;
    wait_until("both CDRs ended", Duration::from_secs(10), || {
        page = get(http, "/v1/calls", &op).json();
        page["items"]
            .as_array()
            .is_some_and(|v| v.len() == 2 && v.iter().all(|c| c["end_ms"].is_i64()))
    });
    let acme_page = get(http, "/v1/calls", &acme).json();
    let items = acme_page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{acme_page}");
    assert_eq!(items[0]["call_id"], acme_call.as_str());
    assert_eq!(items[0]["caller"], "caller");
    let first = get(http, "/v1/calls?limit=1", &op).json();
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = get(http, &format!("/v1/calls?limit=1&cursor={cursor}"), &op).json();
    assert!(second["next_cursor"].is_null(), "{second}");
    let mut ids = vec![
        first["items"][0]["call_id"]
            .as_str()
            .expect("id")
            .to_owned(),
        second["items"][0]["call_id"]
            .as_str()
            .expect("id")
            .to_owned(),
    ];
    ids.sort();
    let mut want = vec![acme_call.clone(), zenith_call.clone()];
    want.sort();
    assert_eq!(ids, want);

    // A revoked key stops at once.
    dhwani_for(&server, &["apikeys", "revoke", &acme]);
    let r = get(http, "/v1/whoami", &acme);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(get(http, "/v1/whoami", &zenith).status, 200);
    let listed = dhwani_for(&server, &["apikeys", "list"]);
    assert!(
        listed.contains("REVOKED") && !listed.contains(&acme[21..]),
        "{listed}"
    );
}

#[test]
fn bad_requests_get_problem_documents_and_slow_clients_are_cut_off() {
    let server = Server::start(
        "[http]\nlisten = \"127.0.0.1:0\"\nheader_timeout_secs = 1\nmax_body_bytes = 2048\n",
    );
    let http = server.http.expect("the admin API's address");
    let op = key(&server, &["--role", "platform-operator"]);
    let unknown = get(http, "/v2/nothing", &op);
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.headers.contains("application/problem+json"),
        "{}",
        unknown.headers
    );
    assert_eq!(unknown.json()["status"], 404);
    // Malformed JSON, a wrong type, an unknown field: 400 naming it.
    let bad = post_json(http, "/v1/flows/check", &op, "{\"name\": ");
    assert_eq!(bad.status, 400, "{}", bad.body);
    let wrong = post_json(
        http,
        "/v1/flows/check",
        &op,
        r#"{"name": 7, "source": "", "tenant": "test"}"#,
    );
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert!(
        wrong.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("name")),
        "{}",
        wrong.body
    );
    let extra = post_json(
        http,
        "/v1/flows/check",
        &op,
        r#"{"name": "a.ivr", "source": "", "tenant": "test", "deploy": true}"#,
    );
    assert!(
        extra.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("deploy")),
        "{}",
        extra.body
    );
    let path = post_json(
        http,
        "/v1/flows/check",
        &op,
        r#"{"name": "../../etc/passwd", "source": "", "tenant": "test"}"#,
    );
    assert_eq!(path.status, 400, "{}", path.body);
    let bad_limit = get(http, "/v1/calls?limit=many", &op);
    assert_eq!(bad_limit.status, 400, "{}", bad_limit.body);
    assert!(
        bad_limit.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("limit"))
    );
    let bad_cursor = get(http, "/v1/calls?cursor=zz", &op);
    assert_eq!(bad_cursor.status, 400, "{}", bad_cursor.body);
    let big = format!(
        r#"{{"name": "a.ivr", "source": "{}", "tenant": "test"}}"#,
        "x".repeat(4096)
    );
    let too_big = post_json(http, "/v1/flows/check", &op, &big);
    assert_eq!(too_big.status, 413, "{}", too_big.body);
    let wrong_method = request(
        http,
        "DELETE",
        "/v1/tenants",
        &[("Authorization", &format!("Bearer {op}"))],
        b"",
    );
    assert_eq!(wrong_method.status, 405, "{}", wrong_method.body);
    // A flow with an error: its diagnostic with line and column.
    let diag = post_json(
        http,
        "/v1/flows/check",
        &op,
        r#"{"name": "bad.ivr", "source": "flow \"Bad\"\n\nstep main\n  goto nowhere\n", "tenant": "test"}"#,
    )
    .json();
    assert_eq!(diag["ok"], false, "{diag}");
    let d = &diag["diagnostics"][0];
    assert_eq!(d["severity"], "error", "{diag}");
    assert_eq!(d["line"], 4, "{diag}");
    assert!(d["column"].as_u64().is_some_and(|c| c > 1), "{diag}");
    // An include outside the tenant's flows directory is not read.
    let escape = post_json(
        http,
        "/v1/flows/check",
        &op,
        r#"{"name": "esc.ivr", "source": "flow \"Esc\"\ninclude \"/etc/passwd\"\n\nstep main\n  hangup \"x\"\n", "tenant": "test"}"#,
    );
    assert!(!escape.body.contains("root:"), "{}", escape.body);

    // Headers sent slower than header_timeout_secs: the server closes
    // (EOF or a 408), well before our own 20 s read timeout.
    let mut s = TcpStream::connect(http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let began = Instant::now();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .expect("partial headers");
    let mut buf = Vec::new();
    let read = s.read_to_end(&mut buf);
    let elapsed = began.elapsed();
    assert!(
        read.is_ok(),
        "the server closed the connection, not our timeout: {read:?}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "closed after {elapsed:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // The server still answers others.
    assert_eq!(request(http, "GET", "/health", &[], b"").status, 200);
}

#[test]
fn failed_key_checks_lock_that_address_out_but_not_another() {
    let server = Server::start("");
    let http = server.http.expect("the admin API's address");
    let good = key(&server, &["--tenant", "test", "--role", "tenant-admin"]);
    let wrong = format!(
        "{}{}",
        &good[..good.len() - 4],
        if good.ends_with("0000") {
            "1111"
        } else {
            "0000"
        }
    );
    for i in 0..10 {
        let r = get(http, "/v1/whoami", &wrong);
        assert_eq!(r.status, 401, "guess {i}: {}", r.body);
    }
    // The real key from the attacking address: refused without a look.
    let r = get(http, "/v1/whoami", &good);
    assert_eq!(r.status, 429, "{}", r.body);
    // From another loopback address the same key works.
    let auth = format!("Bearer {good}");
    let other = request_from(
        Some("127.0.0.2".parse().expect("ip")),
        http,
        "GET",
        "/v1/whoami",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(other.status, 200, "{}", other.body);
    assert_eq!(other.json()["role"], "tenant-admin");
    let text = request(http, "GET", "/metrics", &[], b"").body;
    let m = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parse");
    let count = |event: &str| {
        m.samples
            .iter()
            .find(|s| {
                s.metric == "dhwani_security_events_total" && s.labels.get("name") == Some(event)
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => -1.0,
            })
    };
    assert_eq!(count("api_auth_lockout"), Some(1.0), "{text}");
    assert_eq!(count("api_auth_failure"), Some(9.0), "{text}");
}

fn scrape(http: SocketAddr) -> prometheus_parse::Scrape {
    let r = request(http, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    prometheus_parse::Scrape::parse(r.body.lines().map(|l| Ok(l.to_owned())))
        .expect("a Prometheus text exposition")
}

fn sample(m: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            prometheus_parse::Value::Summary(_) => 0.0,
        })
        .sum()
}

#[test]
fn metrics_move_when_sipp_calls_and_ready_is_503_while_draining() {
    let mut server = Server::start("[calls]\ndrain_secs = 20\n");
    let http = server.http.expect("the admin API's address");
    let before = scrape(http);
    assert_eq!(
        sample(&before, "dhwani_call_attempts_total", &[("tenant", "test")]),
        0.0
    );
    assert_eq!(
        sample(&before, "dhwani_calls_active", &[("tenant", "test")]),
        0.0
    );
    let run = common::run_sipp(
        server.addr("udp"),
        &["-sn", "uac", "-m", "3", "-r", "3", "-d", "2000"],
        Duration::from_secs(60),
    );
    assert_eq!(run.successful, 3, "{}", run.output);
    let mut after = scrape(http);
    wait_until("the three CDRs", Duration::from_secs(10), || {
        after = scrape(http);
        sample(&after, "dhwani_calls_total", &[("tenant", "test")]) >= 3.0
    });
    assert_eq!(
        sample(&after, "dhwani_call_attempts_total", &[("tenant", "test")]),
        3.0
    );
    assert_eq!(
        sample(
            &after,
            "dhwani_calls_total",
            &[("tenant", "test"), ("outcome", "caller_hung_up")]
        ),
        3.0
    );
    assert_eq!(
        sample(&after, "dhwani_calls_active", &[("tenant", "test")]),
        0.0
    );
    let setup_count = after
        .samples
        .iter()
        .find(|s| s.metric == "dhwani_call_setup_seconds")
        .map(|s| match &s.value {
            prometheus_parse::Value::Histogram(h) => h.last().map_or(0.0, |b| b.count),
            _ => 0.0,
        });
    assert_eq!(setup_count, Some(3.0));
    // Two seconds of media each: at least 50 packets out per call.
    assert!(sample(&after, "dhwani_rtp_packets_total", &[("direction", "out")]) >= 150.0);
    assert!(sample(&after, "dhwani_frames_total", &[]) >= 150.0);
    assert!(sample(&after, "dhwani_store_records_written_total", &[]) > 0.0);
    // The recordings' filesystem is synced once a second for all of them.
    assert!(sample(&after, "dhwani_recording_syncs_total", &[]) >= 1.0);
    let batches = after
        .samples
        .iter()
        .find(|s| s.metric == "dhwani_store_write_latency_seconds")
        .map(|s| match &s.value {
            prometheus_parse::Value::Histogram(h) => h.last().map_or(0.0, |b| b.count),
            _ => 0.0,
        });
    assert!(batches.is_some_and(|n| n >= 1.0), "{batches:?}");
    assert!(sample(&after, "dhwani_process_resident_memory_bytes", &[]) > 1e6);
    assert!(
        sample(
            &after,
            "dhwani_http_requests_total",
            &[("route", "/metrics")]
        ) >= 1.0
    );
    // No number or call id is a label.
    let text = request(http, "GET", "/metrics", &[], b"").body;
    assert!(
        !text.contains("sipp") && !text.contains("call_id"),
        "{text}"
    );

    // Ready now; draining with a call still up: 503 and draining.
    let r = request(http, "GET", "/ready", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ready"], true);
    let held = call(&server, "1000", "api-drain-1");
    wait_until("the call live", Duration::from_secs(10), || {
        sample(&scrape(http), "dhwani_calls_active", &[("tenant", "test")]) == 1.0
    });
    // Media counters move while the call runs (each call adds its figures
    // every 5 s), not only at its end.
    let frames_before = sample(&scrape(http), "dhwani_frames_total", &[]);
    wait_until(
        "frames of the live call counted",
        Duration::from_secs(15),
        || {
            let now = scrape(http);
            sample(&now, "dhwani_frames_total", &[]) >= frames_before + 200.0
                && sample(&now, "dhwani_calls_active", &[("tenant", "test")]) == 1.0
        },
    );
    let pid = server.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    assert!(server.wait_for_log("shutting down", Duration::from_secs(10)));
    let r = request(http, "GET", "/ready", &[], b"");
    assert_eq!(r.status, 503, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (v["ready"].as_bool(), v["draining"].as_bool()),
        (Some(false), Some(true)),
        "{v}"
    );
    assert_eq!(request(http, "GET", "/health", &[], b"").status, 200);
    hang_up(&server, &held, "1000");
}

#[test]
fn schemathesis_finds_no_crash_and_no_answer_outside_the_openapi_document() {
    // `python3 -m schemathesis.cli` is installed by scripts/test.sh.
    let probe = std::process::Command::new("python3")
        .args(["-m", "schemathesis.cli", "--version"])
        .output()
        .expect("python3");
    assert!(
        probe.status.success(),
        "schemathesis is missing: run ./scripts/test.sh, which installs it"
    );
    let server = Server::start("");
    let http = server.http.expect("the admin API's address");
    // A tenant admin's key: the API's usual caller. A call so that the
    // call endpoints have data.
    let admin = key(&server, &["--tenant", "test", "--role", "tenant-admin"]);
    let held = call(&server, "1000", "api-schema-1");
    let auth = format!("Authorization: Bearer {admin}");
    let out = std::process::Command::new("timeout")
        .args(["150", "python3", "-m", "schemathesis.cli", "run"])
        .arg(format!("http://{http}/openapi.json"))
        .args(["-H", &auth, "--checks", "all"])
        // Invalid keys would lock this address out (by design, after
        // ten); the lockout has its own test above.
        .args(["--exclude-checks", "ignored_auth"])
        // Failed logins lock this address out too (the login's own test
        // above covers it).
        .args(["--exclude-path", "/v1/login"])
        .args(["--max-time", "60", "-n", "25", "--seed", "1", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    assert!(
        text.contains("Tested: 38"),
        "every operation tested:\n{text}"
    );
    // The server is still up and answering.
    assert_eq!(request(http, "GET", "/health", &[], b"").status, 200);
    hang_up(&server, &held, "1000");
}

#[test]
fn config_check_says_ok_or_names_the_key_line_and_the_refused_flow() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, two_tenants(dir.path())).expect("write");
    let (code, out, err) = common::dhwani(&["config", "check", good.to_str().expect("path")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok (2 tenants"), "{out}");
    assert!(out.contains("tenant acme: 1 flow(s) live"), "{out}");
    // A value out of range: its key and line.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "{}\n[http]\nlisten = \"localhost\"\n",
            two_tenants(dir.path())
        ),
    )
    .expect("write");
    let (code, out, err) = common::dhwani(&["config", "check", bad.to_str().expect("path")]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("http.listen") && err.contains("ADDR:PORT"),
        "{err}"
    );
    // A flow with an error: refused, with its diagnostic.
    std::fs::write(
        dir.path().join("zenith/main.ivr"),
        "flow \"Z\"\n  numbers 2000\n\nstep main\n  goto nowhere\n",
    )
    .expect("write");
    let (code, out, err) = common::dhwani(&["config", "check", good.to_str().expect("path")]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("tenant zenith") && err.contains("nowhere"),
        "{err}"
    );
    assert!(out.contains("not valid"), "{out}");
}

const DEMO: &str = "[[tenants]]\nid = \"demo\"\nnumbers = [\"1000\", \"+911140000000\"]\nflows_dir = \"builtin:demo\"\n";
const CALLER: &str = "+919800000001";

#[test]
fn recordings_holds_erasure_and_consent_through_the_api_keep_to_roles_tenants_and_holds() {
    let dir = tempfile::tempdir().expect("tmp");
    let zen = dir.path().join("zenith");
    std::fs::create_dir_all(&zen).expect("dir");
    std::fs::write(zen.join("main.ivr"), flow("zenith main", "2000")).expect("flow");
    let server = Server::start(&format!(
        "{DEMO}\n[[tenants]]\nid = \"zenith\"\nnumbers = [\"2000\"]\nflows_dir = \"{}\"\n",
        zen.display()
    ));
    let http = server.http.expect("the admin API's address");
    // The README's demo walk: consent, then a (silent) message.
    let run = common::run_sipp(
        server.addr("udp"),
        &[
            "-sf",
            &common::repo_path("examples/sipp/demo-walk.xml")
                .display()
                .to_string(),
            "-m",
            "1",
            "-s",
            "1000",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(run.successful, 1, "{}", run.output);
    let rec = key(
        &server,
        &["--tenant", "demo", "--role", "tenant-admin", "--recordings"],
    );
    let admin = key(&server, &["--tenant", "demo", "--role", "tenant-admin"]);
    let sup = key(
        &server,
        &["--tenant", "demo", "--role", "supervisor", "--recordings"],
    );
    let aud = key(
        &server,
        &["--tenant", "demo", "--role", "auditor", "--recordings"],
    );
    let zenith = key(
        &server,
        &[
            "--tenant",
            "zenith",
            "--role",
            "tenant-admin",
            "--recordings",
        ],
    );

    let mut list = Value::Null;
    wait_until("the call's recordings", Duration::from_secs(10), || {
        list = get(http, "/v1/recordings", &rec).json()["items"].clone();
        list.as_array().is_some_and(|v| {
            v.iter().any(|r| {
                r["recording_id"]
                    .as_str()
                    .is_some_and(|i| i.ends_with("-call"))
            })
        })
    });
    let call_rec = list
        .as_array()
        .expect("list")
        .iter()
        .find(|r| {
            r["recording_id"]
                .as_str()
                .is_some_and(|i| i.ends_with("-call"))
        })
        .expect("a call recording")
        .clone();
    let id = call_rec["recording_id"].as_str().expect("id").to_owned();
    assert_eq!(call_rec["tenant"], "demo");
    assert_eq!(call_rec["channels"], 2);
    assert_eq!(call_rec["key_mode"], "kek");
    // Another tenant's key lists none of them and cannot guess one.
    assert_eq!(
        get(http, "/v1/recordings", &zenith).json()["items"].clone(),
        serde_json::json!([])
    );
    let path = format!("/v1/recordings/{id}/audio");
    let theirs = get(http, &path, &zenith);
    let nothing = get(
        http,
        "/v1/recordings/20261203T000000Z-00000000-call/audio",
        &zenith,
    );
    assert_eq!(theirs.status, 404, "{}", theirs.body);
    assert_eq!(
        (theirs.status, &theirs.body),
        (nothing.status, &nothing.body)
    );
    // Without the recordings permission, or as an auditor: refused.
    assert_eq!(get(http, &path, &admin).status, 403);
    assert_eq!(get(http, &path, &aud).status, 403);
    assert_eq!(get(http, "/v1/recordings", &aud).status, 403);
    // With it: the same WAV bytes `dhwani recordings decrypt` writes.
    let mut s = TcpStream::connect(http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {sup}\r\nDhwani-Reason: complaint G123\r\n\r\n"
    )
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: audio/wav"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let wav = dechunk(&raw[split..]);
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_dhwani"))
        .args(["recordings", "decrypt", &id, "--config"])
        .arg(server.config_path())
        .arg("--data-dir")
        .arg(server.data_dir())
        .output()
        .expect("decrypt");
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(
        wav.len() > 44 && wav.starts_with(b"RIFF"),
        "{} bytes",
        wav.len()
    );
    assert_eq!(wav, cli.stdout, "the API's WAV differs from the CLI's");
    let reader = hound::WavReader::new(std::io::Cursor::new(&wav)).expect("a WAV");
    assert_eq!(reader.spec().channels, 2);
    assert!(reader.duration() > 8000, "{} samples", reader.duration());
    let audit = std::fs::read_to_string(server.data_dir().join("audit.log")).expect("audit");
    assert!(
        audit
            .lines()
            .any(|l| l.contains(&format!("api-key:{}", &sup[4..20]))
                && l.contains("recording.decrypt")
                && l.contains(&id)
                && l.contains("complaint G123")),
        "{audit}"
    );

    // The caller's own data, as JSON: the call, its timeline, its
    // recordings' ids.
    let body = format!(r#"{{"number": "{CALLER}"}}"#);
    assert_eq!(
        post_json(http, "/v1/privacy/export", &sup, &body).status,
        403
    );
    let ex = post_json(http, "/v1/privacy/export", &admin, &body);
    assert_eq!(ex.status, 200, "{}", ex.body);
    let ex = ex.json();
    let calls = ex["export"]["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 1, "{ex}");
    assert_eq!(calls[0]["call"]["caller"], CALLER);
    assert!(
        calls[0]["timeline"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );
    assert!(
        calls[0]["recordings"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == id.as_str())),
        "{ex}"
    );
    let other = post_json(
        http,
        "/v1/privacy/export",
        &admin,
        r#"{"number": "+919800000999"}"#,
    )
    .json();
    assert_eq!(other["export"]["calls"], serde_json::json!([]), "{other}");
    // A hold on the number keeps its calls through an erasure.
    let hold = post_json(
        http,
        "/v1/holds",
        &admin,
        &format!(
            r#"{{"covers": {{"scope": "number", "number": "{CALLER}"}}, "reason": "case 42"}}"#
        ),
    );
    assert_eq!(hold.status, 201, "{}", hold.body);
    let hold = hold.json();
    assert_eq!(hold["scope"], "number");
    assert!(!hold.to_string().contains(CALLER), "{hold}");
    let hold_id = hold["hold_id"].as_str().expect("id").to_owned();
    let listed = get(http, "/v1/holds", &aud).json()["items"].clone();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(
        get(http, "/v1/holds", &zenith).json()["items"].clone(),
        serde_json::json!([])
    );
    assert_eq!(
        post_json(
            http,
            "/v1/holds",
            &sup,
            r#"{"covers": {"scope": "tenant"}, "reason": "x"}"#
        )
        .status,
        403
    );
    // Zenith's key cannot lift demo's hold: it does not exist for it.
    let auth = format!("Bearer {zenith}");
    let r = request(
        http,
        "DELETE",
        &format!("/v1/holds/{hold_id}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let body = format!(r#"{{"number": "{CALLER}"}}"#);
    assert_eq!(
        post_json(http, "/v1/privacy/erase", &sup, &body).status,
        403
    );
    let held = post_json(http, "/v1/privacy/erase", &admin, &body);
    assert_eq!(held.status, 200, "{}", held.body);
    let held = held.json();
    assert!(!held.to_string().contains(CALLER), "{held}");
    assert_eq!(held["erased"]["calls_erased"], 0, "{held}");
    assert_eq!(
        held["erased"]["held"].as_array().map(Vec::len),
        Some(1),
        "{held}"
    );
    assert_eq!(get(http, &path, &sup).status, 200, "kept under the hold");
    let auth = format!("Bearer {admin}");
    let r = request(
        http,
        "DELETE",
        &format!("/v1/holds/{hold_id}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let erased = post_json(http, "/v1/privacy/erase", &admin, &body).json();
    assert_eq!(erased["erased"]["calls_erased"], 1, "{erased}");
    assert!(
        erased["erased"]["recordings_shredded"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{erased}"
    );
    assert_eq!(erased["erased"]["call_keys_shredded"], 1, "{erased}");
    assert_eq!(get(http, &path, &sup).status, 404, "shredded");
    // Consent withdrawal: by pseudonym, the same one the erasure named.
    let w = post_json(http, "/v1/privacy/withdraw-consent", &admin, &body).json();
    assert_eq!(w["subject"], erased["subject"], "{w}");
    assert!(
        w["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("anon-")),
        "{w}"
    );
    let audit = std::fs::read_to_string(server.data_dir().join("audit.log")).expect("audit");
    let admin_id = format!("api-key:{}", &admin[4..20]);
    for action in [
        "hold.place",
        "hold.lift",
        "privacy.erase",
        "consent.withdraw",
    ] {
        assert!(
            audit
                .lines()
                .any(|l| l.contains(&admin_id) && l.contains(action)),
            "{action}: {audit}"
        );
    }
    assert!(!audit.contains(CALLER), "no number in the audit log");
    // Retention: the configured periods, for auditors too.
    let ret = get(http, "/v1/retention", &aud).json()["items"].clone();
    assert_eq!(ret.as_array().map(Vec::len), Some(1), "{ret}");
    assert_eq!(ret[0]["tenant"], "demo");
    assert!(
        ret[0]["interaction_log_days"]
            .as_u64()
            .is_some_and(|d| (180..=365).contains(&d)),
        "{ret}"
    );
    // The request and grievance lists: for auditors and admins.
    assert_eq!(get(http, "/v1/privacy/requests", &aud).status, 200);
    assert_eq!(get(http, "/v1/grievances?open=true", &aud).status, 200);
    assert_eq!(get(http, "/v1/privacy/requests", &sup).status, 403);
}

/// The body of a chunked HTTP/1.1 reply.
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&b[..eol]).expect("hex").trim(), 16)
            .expect("chunk size");
        b = &b[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[test]
fn flows_are_tested_deployed_refused_and_removed_through_the_api() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::start(&two_tenants(dir.path()));
    let http = server.http.expect("the admin API's address");
    let acme = key(&server, &["--tenant", "acme", "--role", "tenant-admin"]);
    let sup = key(&server, &["--tenant", "acme", "--role", "supervisor"]);
    let op = key(&server, &["--role", "platform-operator"]);
    let v2 = "flow \"acme v2\"\n  numbers 1000\n\nstep greet\n  say \"Hello from version two.\"\n  goto hold\n\nstep hold\n  wait 10m\n  hangup \"done\"\n";
    let body = |source: &str| serde_json::json!({ "source": source }).to_string();

    // Its tests first: one case passes, one fails with its reason.
    let tests = "test \"greets\"\n  expect step greet\n  expect hear \"Hello from version two\"\n  expect step hold\n\ntest \"says goodbye\"\n  expect hear \"Goodbye\"\n";
    let t = post_json(
        http,
        "/v1/flows/test",
        &acme,
        &serde_json::json!({"name": "main.ivr", "source": v2, "tests": tests}).to_string(),
    );
    assert_eq!(t.status, 200, "{}", t.body);
    let t = t.json();
    assert_eq!(t["ok"], false, "{t}");
    assert_eq!(t["cases"][0]["passed"], true, "{t}");
    assert_eq!(t["cases"][1]["passed"], false, "{t}");
    assert!(
        t["cases"][1]["failure"]
            .as_str()
            .is_some_and(|f| f.contains("Goodbye")),
        "{t}"
    );
    let bad_tests = post_json(
        http,
        "/v1/flows/test",
        &acme,
        &serde_json::json!({"name": "main.ivr", "source": v2, "tests": "tset \"x\"\n"}).to_string(),
    )
    .json();
    assert!(
        bad_tests["test_error"]
            .as_str()
            .is_some_and(|e| e.contains(":1:")),
        "{bad_tests}"
    );

    // A supervisor may not deploy.
    let auth = |k: &str| format!("Bearer {k}");
    let put = |k: &str, name: &str, b: &str| {
        request(
            http,
            "PUT",
            &format!("/v1/flows/{name}"),
            &[
                ("Authorization", &auth(k)),
                ("Content-Type", "application/json"),
            ],
            b.as_bytes(),
        )
    };
    assert_eq!(put(&sup, "main.ivr", &body(v2)).status, 403);
    // A flow with an error: not deployed, the old one stays live.
    let broken = put(
        &acme,
        "main.ivr",
        &body("flow \"x\"\n  numbers 1000\n\nstep main\n  goto nowhere\n"),
    )
    .json();
    assert_eq!(broken["deployed"], false, "{broken}");
    assert_eq!(broken["check"]["diagnostics"][0]["line"], 5, "{broken}");
    let live = get(http, "/v1/flows", &acme).json()["items"].clone();
    assert_eq!(live[0]["name"], "acme main", "{live}");
    // The new version: live for the next call.
    let ok = put(&acme, "main.ivr", &body(v2));
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["deployed"], true, "{}", ok.body);
    let live = get(http, "/v1/flows", &acme).json()["items"].clone();
    assert_eq!(live.as_array().map(Vec::len), Some(1), "{live}");
    assert_eq!(live[0]["name"], "acme v2", "{live}");
    assert_eq!(live[0]["numbers"][0], "1000");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("acme/main.ivr")).expect("file"),
        v2
    );
    let c = call(&server, "1000", "api-flow-1");
    let mut items = Value::Null;
    wait_until("the call live", Duration::from_secs(10), || {
        items = get(http, "/v1/calls/live", &op).json()["items"].clone();
        items.as_array().is_some_and(|v| !v.is_empty())
    });
    assert_eq!(items[0]["flow"], "acme v2", "{items}");
    hang_up(&server, &c, "1000");
    // A flow the server refuses to load (zenith's number in acme's
    // folder): not deployed, and the file is not left behind.
    let theirs = "flow \"grab\"\n  numbers 2000\n\nstep main\n  hangup \"x\"\n";
    let r = put(&acme, "grab.ivr", &body(theirs)).json();
    assert_eq!(r["deployed"], false, "{r}");
    assert!(r["refused"].is_string() || r["check"]["ok"] == false, "{r}");
    assert!(!dir.path().join("acme/grab.ivr").exists());
    let zl = get(http, "/v1/flows", &op).json()["items"].clone();
    let zenith_flow = zl
        .as_array()
        .expect("list")
        .iter()
        .find(|f| f["tenant"] == "zenith")
        .expect("zenith's flow")
        .clone();
    assert_eq!(zenith_flow["name"], "zenith main", "{zl}");
    // Names with directories are refused; removal works once.
    assert_eq!(put(&acme, "..%2Fzenith%2Fmain.ivr", &body(v2)).status, 400);
    let del = |name: &str| {
        request(
            http,
            "DELETE",
            &format!("/v1/flows/{name}"),
            &[("Authorization", &auth(&acme))],
            b"",
        )
    };
    assert_eq!(del("main.ivr").status, 204);
    assert_eq!(del("main.ivr").status, 404);
    assert_eq!(
        get(http, "/v1/flows", &acme).json()["items"].clone(),
        serde_json::json!([])
    );
    let audit = std::fs::read_to_string(server.data_dir().join("audit.log")).expect("audit");
    assert!(
        audit.contains("flow.deploy") && audit.contains("flow.remove"),
        "{audit}"
    );
}

/// `dhwani users ARGS` with `stdin` on its standard input: stdout.
fn users(server: &Server, args: &[&str], stdin: &str) -> String {
    use std::process::Stdio;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dhwani"))
        .arg("users")
        .args(args)
        .arg("--config")
        .arg(server.config_path())
        .arg("--data-dir")
        .arg(server.data_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dhwani users");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "users {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn login(
    http: SocketAddr,
    from: Option<&str>,
    user: &str,
    password: &str,
    code: Option<&str>,
) -> Reply {
    let body =
        serde_json::json!({"username": user, "password": password, "totp": code}).to_string();
    request_from(
        from.map(|a| a.parse().expect("ip")),
        http,
        "POST",
        "/v1/login",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

#[test]
fn users_log_in_with_a_password_and_a_one_time_code_and_are_locked_out_per_address() {
    let server = Server::start("");
    let http = server.http.expect("the admin API's address");
    let pw = "correct horse battery staple";
    let out = users(
        &server,
        &[
            "add",
            "asha",
            "--tenant",
            "test",
            "--role",
            "supervisor",
            "--password-stdin",
        ],
        &format!("{pw}\n"),
    );
    let secret = out
        .split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("the otpauth URI's secret")
        .to_owned();
    assert!(!out.contains(pw), "the password is not echoed: {out}");
    // The secret is sealed in the store: no database file holds it (the
    // SQLite file and its write-ahead log hold text inline).
    let mut files = 0;
    for entry in std::fs::read_dir(server.data_dir()).expect("data dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with("dhwani.db") {
            files += 1;
            let bytes = std::fs::read(&path).expect("read the database");
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{name} holds the TOTP secret in clear"
            );
        }
    }
    assert!(files > 0, "no database file in the data directory");
    assert!(server.data_dir().join("keys/mfa.key").is_file());
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    };
    let code = dhwani::api::users::totp_code(&secret, now()).expect("a code");
    // Wrong password; right password without the code: the same 401.
    let wrong = login(http, None, "asha", "wrong password here", Some(&code));
    let no_code = login(http, None, "asha", pw, None);
    let nobody = login(http, None, "nobody", pw, Some(&code));
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!((no_code.status, &no_code.body), (wrong.status, &wrong.body));
    assert_eq!((nobody.status, &nobody.body), (wrong.status, &wrong.body));
    // Both factors: a session.
    let ok = login(http, None, "asha", pw, Some(&code));
    assert_eq!(ok.status, 200, "{}", ok.body);
    let token = ok.json()["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("dhs_"));
    let me = get(http, "/v1/whoami", &token).json();
    assert_eq!(
        (me["user"].as_str(), me["role"].as_str()),
        (Some("asha"), Some("supervisor")),
        "{me}"
    );
    assert_eq!(get(http, "/v1/calls/live", &token).status, 200);
    assert_eq!(
        post_json(
            http,
            "/v1/flows/check",
            &token,
            r#"{"name": "a.ivr", "source": ""}"#
        )
        .status,
        403
    );
    // The same code again is refused (RFC 6238 §5.2).
    let replay = login(http, None, "asha", pw, Some(&code));
    assert_eq!(replay.status, 401, "{}", replay.body);
    // Logged out: the token is dead.
    let auth = format!("Bearer {token}");
    let r = request(http, "POST", "/v1/logout", &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(get(http, "/v1/whoami", &token).status, 401);
    // Five failures so far from this address; five more lock it out,
    // and then even the right password and a fresh code get 429.
    for _ in 0..5 {
        assert_eq!(
            login(http, None, "asha", "still wrong pw", None).status,
            401
        );
    }
    let locked = login(http, None, "asha", pw, Some(&code));
    assert_eq!(locked.status, 429, "{}", locked.body);
    // Another address is not locked out (another user: the code's step
    // was used).
    users(
        &server,
        &[
            "add",
            "bob",
            "--tenant",
            "test",
            "--role",
            "agent",
            "--no-mfa",
            "--password-stdin",
        ],
        "bob's long password\n",
    );
    let bob = login(http, Some("127.0.0.2"), "bob", "bob's long password", None);
    assert_eq!(bob.status, 200, "{}", bob.body);
    let bob_token = bob.json()["token"].as_str().expect("token").to_owned();
    let bob_get = |path: &str| {
        let auth = format!("Bearer {bob_token}");
        request_from(
            Some("127.0.0.2".parse().expect("ip")),
            http,
            "GET",
            path,
            &[("Authorization", &auth)],
            b"",
        )
    };
    assert_eq!(bob_get("/v1/calls/live").status, 403, "an agent");
    assert_eq!(bob_get("/v1/whoami").status, 200);
    // A new password ends bob's sessions.
    users(
        &server,
        &["passwd", "bob", "--password-stdin"],
        "bob's new long password\n",
    );
    assert_eq!(bob_get("/v1/whoami").status, 401);
    let audit = std::fs::read_to_string(server.data_dir().join("audit.log")).expect("audit");
    assert!(
        audit.contains("user:asha\tlogin")
            || audit
                .lines()
                .any(|l| l.contains("user:asha") && l.contains("login")),
        "{audit}"
    );
    assert!(!audit.contains(pw), "no password in the audit log");
    let text = request(http, "GET", "/metrics", &[], b"").body;
    assert!(
        text.contains("dhwani_security_events_total{name=\"login_lockout\"} 1"),
        "{text}"
    );
}

#[test]
fn agents_are_paused_and_unpaused_and_queues_read_through_the_api() {
    // The embedded default's demo queue (its agents are made at start).
    let server = Server::start(&format!(
        "{DEMO}[[tenants.queues]]\nname = \"support\"\nstrategy = \"longest-idle\"\nmembers = [\"1001\", \"1002\"]\n"
    ));
    let http = server.http.expect("the admin API's address");
    let sup = key(&server, &["--tenant", "demo", "--role", "supervisor"]);
    let agent = key(&server, &["--tenant", "demo", "--role", "agent"]);
    let agents = get(http, "/v1/agents", &sup).json()["items"].clone();
    let exts: Vec<&str> = agents
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["extension"].as_str())
        .collect();
    assert_eq!(exts, ["1001", "1002"], "{agents}");
    assert!(!agents.to_string().contains("ha1"), "{agents}");
    // Every list pages the same way.
    let first = get(http, "/v1/agents?limit=1", &sup).json();
    assert_eq!(first["items"].as_array().map(Vec::len), Some(1), "{first}");
    assert_eq!(first["items"][0]["extension"], "1001");
    let next = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = get(http, &format!("/v1/agents?limit=1&cursor={next}"), &sup).json();
    assert_eq!(second["items"][0]["extension"], "1002", "{second}");
    assert!(second["next_cursor"].is_null(), "{second}");
    assert_eq!(get(http, "/v1/agents?limit=0", &sup).status, 400);
    assert_eq!(get(http, "/v1/agents?cursor=x", &sup).status, 400);
    let state =
        |ext: &str, b: &str, k: &str| post_json(http, &format!("/v1/agents/{ext}/state"), k, b);
    assert_eq!(
        state("1001", r#"{"state": "pause", "reason": "lunch"}"#, &agent).status,
        403
    );
    assert_eq!(state("1999", r#"{"state": "pause"}"#, &sup).status, 404);
    assert_eq!(state("1001", r#"{"state": "nap"}"#, &sup).status, 400);
    let r = state("1001", r#"{"state": "pause", "reason": "lunch"}"#, &sup);
    assert_eq!(r.status, 202, "{}", r.body);
    let find = |ext: &str| {
        get(http, "/v1/agents", &sup).json()["items"]
            .clone()
            .as_array()
            .expect("list")
            .iter()
            .find(|a| a["extension"] == ext)
            .cloned()
            .expect("agent")
    };
    wait_until("1001 paused", Duration::from_secs(10), || {
        find("1001")["state"] == "paused"
    });
    assert_eq!(find("1001")["reason"], "lunch");
    assert_ne!(find("1002")["state"], "paused");
    assert_eq!(state("1001", r#"{"state": "unpause"}"#, &sup).status, 202);
    wait_until("1001 unpaused", Duration::from_secs(10), || {
        find("1001")["state"] != "paused"
    });
    let q = get(http, "/v1/queues", &sup).json()["items"].clone();
    let support = q
        .as_array()
        .expect("list")
        .iter()
        .find(|x| x["queue"] == "support")
        .expect("the support queue")
        .clone();
    assert_eq!(
        (support["tenant"].as_str(), support["waiting"].as_u64()),
        (Some("demo"), Some(0)),
        "{q}"
    );
    let text = request(http, "GET", "/metrics", &[], b"").body;
    assert!(
        text.contains("dhwani_agents{tenant=\"demo\",state="),
        "{text}"
    );
}

#[test]
fn every_endpoint_answers_many_clients_at_once_while_calls_run() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::start(&two_tenants(dir.path()));
    let http = server.http.expect("the admin API's address");
    let op = key(&server, &["--role", "platform-operator"]);
    let acme = key(&server, &["--tenant", "acme", "--role", "tenant-admin"]);
    let held: Vec<_> = (0..4)
        .map(|i| call(&server, "1000", &format!("api-many-{i}")))
        .collect();
    let paths = [
        "/v1/calls/live",
        "/v1/calls",
        "/v1/agents",
        "/v1/flows",
        "/v1/queues",
        "/v1/tenants",
        "/v1/holds",
        "/v1/retention",
        "/v1/audit/verify",
        "/v1/whoami",
        "/metrics",
        "/ready",
    ];
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (op, acme) = (op.clone(), acme.clone());
            std::thread::spawn(move || {
                let mut answered = 0;
                for round in 0..10 {
                    for p in paths {
                        let k = if (w + round) % 2 == 0 { &op } else { &acme };
                        let r = get(http, p, k);
                        assert_eq!(r.status, 200, "{p}: {}", r.body);
                        answered += 1;
                    }
                    let c = post_json(
                        http,
                        "/v1/flows/check",
                        &acme,
                        r#"{"name": "x.ivr", "source": "flow \"X\"\n\nstep main\n  hangup \"bye\"\n"}"#,
                    );
                    assert_eq!(c.status, 200, "{}", c.body);
                }
                answered
            })
        })
        .collect();
    let total: usize = workers
        .into_iter()
        .map(|w| w.join().expect("a worker"))
        .sum();
    assert_eq!(total, 8 * 10 * paths.len());
    // The calls were not disturbed: still live, then hung up normally.
    let live = get(http, "/v1/calls/live", &op).json();
    assert_eq!(live["items"].as_array().map(Vec::len), Some(4), "{live}");
    for c in &held {
        hang_up(&server, c, "1000");
    }
}

/// A flow that speaks (a deployed flow reaches no file outside its
/// tenant's folder).
fn said(name: &str, number: &str) -> String {
    format!(
        "flow \"{name}\"\n  numbers {number}\n\nstep greet\n  say \"Welcome.\"\n  goto hold\n\nstep hold\n  wait 10m\n  hangup \"done\"\n"
    )
}

/// An INVITE to `number` that the server refuses: the final status.
fn refused(server: &Server, number: &str, id: &str) -> String {
    let (sip, media) = sockets();
    let local = sip.local_addr().expect("addr");
    let inv = rawsip::invite(local, media.local_addr().expect("addr"), id)
        .replace("sip:1000@", &format!("sip:{number}@"));
    sip.send_to(inv.as_bytes(), server.addr("udp"))
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Some(reply) = recv_sip(&sip, "SIP/2.0", Duration::from_secs(10)) else {
            break;
        };
        let status = reply.split_whitespace().nth(1).unwrap_or("").to_owned();
        if !status.starts_with('1') {
            return status;
        }
    }
    panic!("no final answer to the INVITE to {number}");
}

fn send(http: SocketAddr, method: &str, path: &str, key: &str, body: &str) -> Reply {
    let auth = format!("Bearer {key}");
    request(
        http,
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

#[test]
fn tenants_and_numbers_are_provisioned_live_through_the_api_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(&two_tenants(dir.path()));
    let http = server.http.expect("the admin API's address");
    let op = key(&server, &["--role", "platform-operator"]);
    let acme_admin = key(&server, &["--tenant", "acme", "--role", "tenant-admin"]);

    // Only a platform operator makes tenants.
    let new = serde_json::json!({"id": "orbit", "name": "Orbit Travel", "max_calls": 5, "numbers": ["+5550100"]}).to_string();
    assert_eq!(
        post_json(http, "/v1/tenants", &acme_admin, &new).status,
        403
    );
    // Bad input: named fields, no tenant made.
    for (body, field) in [
        (r#"{"id": "a b"}"#, "id"),
        (r#"{"id": "x", "max_calls": 0}"#, "max_calls"),
        (r#"{"id": "x", "numbers": ["55a"]}"#, "numbers"),
        (r#"{"id": "x", "colour": "red"}"#, "colour"),
    ] {
        let r = post_json(http, "/v1/tenants", &op, body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(
            r.json()["detail"]
                .as_str()
                .is_some_and(|d| d.contains(field)),
            "{body}: {}",
            r.body
        );
    }
    // A number another tenant owns: 409, and nothing made.
    let taken = post_json(
        http,
        "/v1/tenants",
        &op,
        r#"{"id": "x", "numbers": ["1000"]}"#,
    );
    assert_eq!(taken.status, 409, "{}", taken.body);
    assert_eq!(get(http, "/v1/tenants/x", &op).status, 404);

    let made = post_json(http, "/v1/tenants", &op, &new);
    assert_eq!(made.status, 201, "{}", made.body);
    let made = made.json();
    assert_eq!(made["id"], "orbit", "{made}");
    assert_eq!(made["provisioned"], true, "{made}");
    assert_eq!(made["numbers"][0]["number"], "+5550100", "{made}");
    assert_eq!(
        post_json(http, "/v1/tenants", &op, &new).status,
        409,
        "the same id twice"
    );
    // Its keys were made as at a first start.
    assert!(server.data_dir().join("keys/orbit.kek").is_file());

    // Its admin, made with the CLI (which reads API-made tenants from the
    // store), deploys a flow; the number answers at once.
    let orbit = key(&server, &["--tenant", "orbit", "--role", "tenant-admin"]);
    let deploy = send(
        http,
        "PUT",
        "/v1/flows/main.ivr",
        &orbit,
        &serde_json::json!({"source": said("orbit main", "+5550100")}).to_string(),
    );
    assert_eq!(deploy.status, 200, "{}", deploy.body);
    assert_eq!(deploy.json()["deployed"], true, "{}", deploy.body);
    let c = call(&server, "5550100", "orbit-call-1");
    hang_up(&server, &c, "5550100");
    // Its finished calls, as the store has them.
    let stored = |http: SocketAddr, n: usize| {
        wait_until("orbit's calls in its list", Duration::from_secs(10), || {
            get(http, "/v1/calls?tenant=orbit", &op).json()["items"]
                .as_array()
                .is_some_and(|a| a.len() == n && a.iter().all(|c| c["end_ms"].is_i64()))
        });
    };
    stored(http, 1);
    assert_eq!(
        get(http, "/v1/calls", &orbit).json()["items"][0]["tenant"],
        "orbit"
    );
    // Another tenant sees nothing of it: its id answers as a tenant that
    // does not exist, byte for byte.
    let other = get(http, "/v1/tenants/orbit", &acme_admin);
    let none = get(http, "/v1/tenants/nosuch", &acme_admin);
    assert_eq!((other.status, &other.body), (none.status, &none.body));
    assert!(!get(http, "/v1/tenants", &acme_admin).body.contains("orbit"));
    assert!(
        get(http, "/v1/calls", &acme_admin).json()["items"]
            .as_array()
            .is_some_and(|a| a.iter().all(|c| c["tenant"] == "acme"))
    );

    // A second number: given, refused for anyone else, routed when a flow
    // names it, and 404 once taken back.
    let give = |t: &str, n: &str| {
        post_json(
            http,
            &format!("/v1/tenants/{t}/numbers"),
            &op,
            &serde_json::json!({ "number": n }).to_string(),
        )
    };
    assert_eq!(give("orbit", "5550101").status, 201);
    assert_eq!(give("acme", "5550101").status, 409);
    assert_eq!(
        give("orbit", "+5550101").status,
        409,
        "a leading + is the same number"
    );
    assert_eq!(give("acme", "5550100").status, 409);
    let n = send(
        http,
        "POST",
        "/v1/tenants/orbit/numbers",
        &orbit,
        r#"{"number": "5550199"}"#,
    );
    assert_eq!(n.status, 403, "a tenant admin gives itself no numbers");
    let deploy = send(
        http,
        "PUT",
        "/v1/flows/second.ivr",
        &orbit,
        &serde_json::json!({"source": said("orbit second", "5550101")}).to_string(),
    );
    assert_eq!(deploy.json()["deployed"], true, "{}", deploy.body);
    let c = call(&server, "5550101", "orbit-call-2");
    hang_up(&server, &c, "5550101");
    // A config file's number is not taken through the API.
    let r = send(http, "DELETE", "/v1/tenants/acme/numbers/1000", &op, "");
    assert_eq!(r.status, 409, "{}", r.body);
    let r = send(http, "DELETE", "/v1/tenants/orbit/numbers/5550101", &op, "");
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(refused(&server, "5550101", "orbit-taken"), "404");

    // Suspended: new calls get 503; unsuspended: answered again. A config
    // file's tenant is changed in its file.
    let patch = |t: &str, body: &str| send(http, "PATCH", &format!("/v1/tenants/{t}"), &op, body);
    assert_eq!(patch("acme", r#"{"suspended": true}"#).status, 409);
    assert_eq!(patch("orbit", r#"{"max_calls": 0}"#).status, 400);
    let p = patch("orbit", r#"{"suspended": true, "name": "Orbit"}"#);
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.json()["suspended"], true);
    assert_eq!(refused(&server, "5550100", "orbit-suspended"), "503");
    assert_eq!(patch("orbit", r#"{"suspended": false}"#).status, 200);
    let c = call(&server, "5550100", "orbit-call-3");
    hang_up(&server, &c, "5550100");
    stored(http, 3);

    // The audit log names each change.
    let audit = std::fs::read_to_string(server.data_dir().join("audit.log")).expect("audit log");
    for action in [
        "tenants.create",
        "tenants.number.add",
        "tenants.number.remove",
        "tenants.change",
    ] {
        assert!(audit.contains(action), "{action} not audited");
    }

    // After a restart: the tenant, its name, its remaining number and its
    // flow are there; the taken number stays taken.
    server.restart();
    let http = server.http.expect("the admin API's address");
    let t = get(http, "/v1/tenants/orbit", &op);
    assert_eq!(t.status, 200, "{}", t.body);
    let t = t.json();
    assert_eq!(t["name"], "Orbit", "{t}");
    assert_eq!(t["max_calls"], 5, "{t}");
    let numbers: Vec<&str> = t["numbers"]
        .as_array()
        .expect("numbers")
        .iter()
        .filter_map(|n| n["number"].as_str())
        .collect();
    assert_eq!(numbers, ["+5550100"], "{t}");
    assert_eq!(t["numbers"][0]["flow"], "orbit main", "{t}");
    let c = call(&server, "5550100", "orbit-call-4");
    hang_up(&server, &c, "5550100");
    assert_eq!(refused(&server, "5550101", "orbit-taken-2"), "404");
    // Retention covers it: the CLI's sweep (which reads API-made tenants
    // from the store) twenty years on deletes its calls' timelines (orbit
    // made the only calls of this test).
    stored(http, 4);
    let out = dhwani_for(
        &server,
        &["retention", "sweep", "--now", "2046-12-01T00:00:00Z"],
    );
    let r: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(
        r["timelines_deleted"].as_u64().is_some_and(|n| n >= 4),
        "{r}"
    );
    assert_eq!(
        get(http, "/v1/retention?tenant=orbit", &op).json()["items"][0]["tenant"],
        "orbit"
    );
}

#[test]
fn keys_are_made_listed_and_revoked_through_the_api_within_their_tenant_and_role() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::start(&two_tenants(dir.path()));
    let http = server.http.expect("the admin API's address");
    let op = key(&server, &["--role", "platform-operator"]);
    let acme = key(&server, &["--tenant", "acme", "--role", "tenant-admin"]);
    let acme_sup = key(&server, &["--tenant", "acme", "--role", "supervisor"]);

    // The operator makes zenith's admin; the secret is in that answer only.
    let made = post_json(
        http,
        "/v1/keys",
        &op,
        r#"{"tenant": "zenith", "role": "tenant-admin", "label": "zenith ops"}"#,
    );
    assert_eq!(made.status, 201, "{}", made.body);
    let made = made.json();
    let zenith = made["key"].as_str().expect("key").to_owned();
    let zenith_id = made["key_id"].as_str().expect("id").to_owned();
    assert!(zenith.starts_with(&format!("dhk_{zenith_id}_")), "{made}");
    assert_eq!(get(http, "/v1/whoami", &zenith).json()["tenant"], "zenith");
    let listed = get(http, "/v1/keys", &op);
    assert!(listed.body.contains(&zenith_id), "{}", listed.body);
    assert!(
        !listed.body.contains(&zenith[20..]),
        "a listing never shows a secret"
    );

    // A tenant admin: keys of its own tenant, no higher role, no
    // permission it lacks; a supervisor none at all.
    let sup = post_json(
        http,
        "/v1/keys",
        &acme,
        r#"{"role": "supervisor", "label": "wallboard"}"#,
    );
    assert_eq!(sup.status, 201, "{}", sup.body);
    let sup = sup.json();
    assert_eq!(sup["tenant"], "acme", "{sup}");
    let wallboard = sup["key"].as_str().expect("key").to_owned();
    for (body, status) in [
        (r#"{"role": "platform-operator"}"#, 403),
        (r#"{"role": "supervisor", "recordings": true}"#, 403),
        (r#"{"role": "supervisor", "tenant": "zenith"}"#, 403),
        (r#"{"role": "sorcerer"}"#, 400),
    ] {
        let r = post_json(http, "/v1/keys", &acme, body);
        assert_eq!(r.status, status, "{body}: {}", r.body);
    }
    assert_eq!(
        post_json(http, "/v1/keys", &acme_sup, r#"{"role": "agent"}"#).status,
        403
    );
    assert_eq!(get(http, "/v1/keys", &acme_sup).status, 403);
    for (body, field) in [
        (r#"{"role": "tenant-admin"}"#, "tenant"),
        (
            r#"{"role": "platform-operator", "tenant": "acme"}"#,
            "tenant",
        ),
        (r#"{"role": "agent", "tenant": "ghost"}"#, "tenant"),
    ] {
        let r = post_json(http, "/v1/keys", &op, body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.body.contains(field), "{body}: {}", r.body);
    }
    // Acme's list is acme's keys only.
    let mine = get(http, "/v1/keys", &acme).json();
    let items = mine["items"].as_array().expect("items");
    assert!(
        items.len() >= 3 && items.iter().all(|k| k["tenant"] == "acme"),
        "{mine}"
    );
    assert_eq!(get(http, "/v1/keys?tenant=zenith", &acme).status, 403);

    // Revoking: zenith's key id from acme answers as a missing one; acme's
    // own supervisor key stops working at once.
    let del = |k: &str, id: &str| send(http, "DELETE", &format!("/v1/keys/{id}"), k, "");
    let theirs = del(&acme, &zenith_id);
    let nobody = del(&acme, "0123456789abcdef");
    assert_eq!(theirs.status, 404);
    assert_eq!((theirs.status, &theirs.body), (nobody.status, &nobody.body));
    assert_eq!(get(http, "/v1/whoami", &zenith).status, 200);
    let wallboard_id = sup["key_id"].as_str().expect("id");
    assert_eq!(get(http, "/v1/calls/live", &wallboard).status, 200);
    assert_eq!(del(&acme, wallboard_id).status, 204);
    assert_eq!(get(http, "/v1/calls/live", &wallboard).status, 401);
    assert_eq!(del(&acme, wallboard_id).status, 404, "revoked already");
    // A key does not revoke itself.
    let acme_id = acme[4..20].to_owned();
    assert_eq!(del(&acme, &acme_id).status, 409);
    assert_eq!(get(http, "/v1/whoami", &acme).status, 200);
    // The operator revokes zenith's.
    assert_eq!(del(&op, &zenith_id).status, 204);
    assert_eq!(get(http, "/v1/whoami", &zenith).status, 401);
    let audit = std::fs::read_to_string(server.data_dir().join("audit.log")).expect("audit");
    assert!(
        audit.contains(&format!("key {zenith_id} tenant zenith role tenant-admin")),
        "{audit}"
    );
    assert!(audit.contains("apikeys.revoke"), "{audit}");
}
