//! The data principal's rights, legal holds, retention and the audit log,
//! end to end: real calls through the demo flow record (with consent),
//! then the CLI exports, withdraws consent, holds, erases and sweeps, and
//! a byte scan of the data directory checks what is left.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Server, dhwani, run_sipp};
use serde_json::Value;

const DEMO: &str = "[[tenants]]\nid = \"demo\"\nnumbers = [\"1000\", \"+911140000000\"]\nflows_dir = \"builtin:demo\"\n";
const A: &str = "+919800000001";
const B: &str = "+919800000777";

/// The README's demo walk (consent yes, leave a silent message), from `number`.
fn walk(server: &Server, dir: &Path, number: &str) {
    let text = std::fs::read_to_string(common::repo_path("examples/sipp/demo-walk.xml"))
        .unwrap()
        .replace("+919800000001", number);
    let sc = dir.join(format!("walk{number}.xml"));
    std::fs::write(&sc, text).unwrap();
    let run = run_sipp(
        server.addr("udp"),
        &["-sf", &sc.display().to_string(), "-m", "1", "-s", "1000"],
        Duration::from_secs(60),
    );
    assert_eq!(run.successful, 1, "{}", run.output);
}

struct Cli {
    cfg: String,
    data: String,
}

impl Cli {
    /// The CLI with the server's config and data directory.
    fn of(server: &Server) -> Cli {
        Cli {
            cfg: server.config_path().display().to_string(),
            data: server.data_dir().display().to_string(),
        }
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--config", &self.cfg, "--data-dir", &self.data]);
        dhwani(&a)
    }
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        out
    }
    fn calls(&self) -> Vec<Value> {
        self.ok(&["calls", "list", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
    /// Waits until `n` calls have their CDR.
    fn wait_calls(&self, n: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let calls = self.calls();
            if calls.iter().filter(|c| c["end_ms"].is_i64()).count() >= n {
                return calls;
            }
            assert!(std::time::Instant::now() < deadline, "{calls:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn recordings(data: &Path) -> Vec<PathBuf> {
    let dir = data.join("recordings").join("demo");
    std::fs::read_dir(&dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
fn export_withdraw_hold_erase_sweep_and_audit() {
    let server = Server::start(DEMO);
    let work = tempfile::tempdir().unwrap();
    let data = server.data_dir();
    let cli = Cli::of(&server);
    walk(&server, work.path(), A);
    walk(&server, work.path(), B);
    let calls = cli.wait_calls(2);
    let call_a = calls.iter().find(|c| c["caller"] == A).unwrap()["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        recordings(&data).len(),
        4,
        "a call recording and a message each"
    );
    // While the calls' data is live, the database holds the numbers only
    // sealed under each call's key (issue 14, point 5): no file under the
    // data directory has them in clear.
    for f in files_under(&data) {
        let bytes = std::fs::read(&f).unwrap();
        for n in [A, B] {
            assert!(
                !contains(&bytes, &n.as_bytes()[1..]),
                "{} holds {n} in clear",
                f.display()
            );
        }
    }

    // Export: every call of A with its timeline and encrypted recordings.
    let out = work.path().join("export-a");
    let report = export(&cli, A, &out);
    assert_eq!(report["calls"], 1);
    assert_eq!(report["recordings"], 2);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["number"], A);
    let rec = &manifest["calls"][0]["recordings"][0];
    let copied = std::fs::read(out.join(rec["file"].as_str().unwrap())).unwrap();
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&copied)),
        rec["sha256"].as_str().unwrap()
    );

    // Consent withdrawn: A's next call is not recorded, though A says yes.
    cli.ok(&[
        "privacy",
        "withdraw-consent",
        "--tenant",
        "demo",
        "--number",
        A,
    ]);
    walk(&server, work.path(), A);
    let calls = cli.wait_calls(3);
    assert_eq!(recordings(&data).len(), 4, "nothing new recorded for A");
    let third = calls
        .iter()
        .find(|c| c["caller"] == A && c["call_id"] != call_a.as_str())
        .unwrap();
    assert!(third["recording_id"].is_null(), "{third}");
    let shown = cli.ok(&[
        "calls",
        "show",
        third["call_id"].as_str().unwrap(),
        "--json",
    ]);
    assert!(shown.contains("the caller withdrew consent"), "{shown}");

    // A hold on B's number stops B's erasure; lifted, the erasure runs.
    let hold = cli.ok(&[
        "holds",
        "place",
        "--tenant",
        "demo",
        "--number",
        B,
        "--reason",
        "case 42/2026",
    ]);
    let hold = hold.trim().to_owned();
    let held: Value =
        serde_json::from_str(&cli.ok(&["privacy", "erase", "--tenant", "demo", "--number", B]))
            .unwrap();
    assert_eq!(held["erased"]["calls_erased"], 0);
    assert!(
        held["erased"]["held"][0][1]
            .as_str()
            .unwrap()
            .contains("case 42/2026"),
        "{held}"
    );
    assert_eq!(recordings(&data).len(), 4);
    cli.ok(&["holds", "lift", &hold]);

    // The anonymised usage before any erasure: its rows name no caller
    // or call, and they must outlive the erasure and the sweeps below.
    let stats_before = cli.ok(&["stats", "--json", "--k", "1"]);
    let total = |s: &str| -> i64 {
        s.lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["calls"]
                    .as_i64()
                    .unwrap()
            })
            .sum()
    };
    assert_eq!(total(&stats_before), 3, "{stats_before}");
    for c in cli.calls() {
        for needle in [
            c["caller"].as_str().unwrap(),
            c["call_id"].as_str().unwrap(),
        ] {
            assert!(!stats_before.contains(needle), "{needle} in {stats_before}");
        }
    }
    // Erase A: timelines deleted, recordings shredded, CDRs pseudonymised.
    let a_bytes: Vec<Vec<u8>> = recordings(&data)
        .iter()
        .filter(|p| p.display().to_string().contains(&call_a))
        .map(|p| {
            let b = std::fs::read(p).unwrap();
            b[b.len() / 2..b.len() / 2 + 64].to_vec()
        })
        .collect();
    assert_eq!(a_bytes.len(), 2);
    let erased: Value =
        serde_json::from_str(&cli.ok(&["privacy", "erase", "--tenant", "demo", "--number", A]))
            .unwrap();
    assert_eq!(erased["erased"]["calls_erased"], 2, "{erased}");
    assert_eq!(erased["erased"]["recordings_shredded"], 2);
    assert_eq!(erased["erased"]["call_keys_shredded"], 2, "{erased}");
    assert_eq!(
        erased["erased"]["scrub"]["complete"], true,
        "SQLite: zeroed and checkpointed: {erased}"
    );
    assert!(erased["kept"]["cdrs"].as_str().unwrap().contains("TRAI"));
    // Neither the number nor any recording bytes of A anywhere in the data
    // directory (database files included).
    for f in files_under(&data) {
        let bytes = std::fs::read(&f).unwrap();
        for needle in [A.as_bytes(), &A.as_bytes()[1..]] {
            assert!(
                !contains(&bytes, needle),
                "{} still holds the number",
                f.display()
            );
        }
        for chunk in &a_bytes {
            assert!(
                !contains(&bytes, chunk),
                "{} still holds A's recording bytes",
                f.display()
            );
        }
    }
    let calls = cli.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c["caller"].as_str().unwrap().starts_with("anon-"))
            .count(),
        2
    );
    let shown = cli.ok(&["calls", "show", &call_a, "--json"]);
    let v: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        v["timeline"].as_array().unwrap().len(),
        0,
        "the timeline is gone"
    );

    // Retention: B's call recorded now; at +91 days its recordings go
    // (90-day default), unless held; at +181 days its timeline goes and its
    // CDR is pseudonymised; after the CDR period the CDR goes.
    let call_b = calls.iter().find(|c| c["caller"] == B).unwrap()["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let start_ms = calls.iter().find(|c| c["caller"] == B).unwrap()["start_ms"]
        .as_i64()
        .unwrap();
    let at = |days: i64| {
        jiff::Timestamp::from_millisecond(start_ms + days * 86_400_000)
            .unwrap()
            .to_string()
    };
    let hold = cli.ok(&[
        "holds", "place", "--tenant", "demo", "--call", &call_b, "--reason", "dispute",
    ]);
    let r: Value =
        serde_json::from_str(&cli.ok(&["retention", "sweep", "--now", &at(91)])).unwrap();
    assert_eq!(r["recordings_deleted"], 0, "held: {r}");
    assert_eq!(recordings(&data).len(), 2);
    cli.ok(&["holds", "lift", hold.trim()]);
    let r: Value =
        serde_json::from_str(&cli.ok(&["retention", "sweep", "--now", &at(91)])).unwrap();
    assert_eq!(r["recordings_deleted"], 2, "{r}");
    assert_eq!(r["timelines_deleted"], 0, "{r}");
    let r: Value =
        serde_json::from_str(&cli.ok(&["retention", "sweep", "--now", &at(181)])).unwrap();
    assert_eq!(
        r["timelines_deleted"], 3,
        "B's and A's two (already empty) timelines: {r}"
    );
    assert_eq!(r["cdrs_pseudonymised"], 1, "B's: {r}");
    assert!(
        cli.calls()
            .iter()
            .all(|c| c["caller"].as_str().unwrap().starts_with("anon-"))
    );
    let r: Value =
        serde_json::from_str(&cli.ok(&["retention", "sweep", "--now", &at(8 * 366)])).unwrap();
    assert_eq!(r["cdrs_deleted"], 3, "{r}");
    assert!(cli.calls().is_empty());
    // Run again: nothing more to do.
    let r: Value =
        serde_json::from_str(&cli.ok(&["retention", "sweep", "--now", &at(8 * 366)])).unwrap();
    assert_eq!(r["cdrs_deleted"], 0);
    // Every CDR is gone; the anonymised usage is as it was.
    assert_eq!(cli.ok(&["stats", "--json", "--k", "1"]), stats_before);
    // With the default k = 5 the rows of 3 calls are withheld.
    let withheld = cli.ok(&["stats", "--json"]);
    assert!(
        withheld.lines().all(|l| l.contains("\"withheld\":true")),
        "{withheld}"
    );

    // The audit log saw all of it, and detects tampering.
    let out = cli.ok(&["audit", "verify"]);
    assert!(out.contains("intact"), "{out}");
    let log_path = data.join("audit.log");
    let log = std::fs::read_to_string(&log_path).unwrap();
    for action in [
        "key.create",
        "privacy.export",
        "consent.withdraw",
        "hold.place",
        "hold.lift",
        "privacy.erase",
        "retention.delete",
        "retention.pseudonymise",
    ] {
        assert!(log.contains(action), "no {action} in the audit log:\n{log}");
    }
    assert!(
        !log.contains(A) && !log.contains(B),
        "numbers appear only as pseudonyms"
    );
    std::fs::write(&log_path, log.replacen("hold.lift", "hold.lif7", 1)).unwrap();
    let (code, out, _) = cli.run(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Edited"), "{out}");
    let lines: Vec<&str> = log.lines().collect();
    std::fs::write(&log_path, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let (code, out, _) = cli.run(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("removed from the end"), "{out}");
}

#[test]
fn key_rotation_then_rewrap_keeps_every_recording_readable() {
    let mut server = Server::start(DEMO);
    let work = tempfile::tempdir().unwrap();
    let data = server.data_dir();
    let cli = Cli::of(&server);
    walk(&server, work.path(), A);
    cli.wait_calls(1);
    let old_id = cli
        .ok(&["recordings", "list"])
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_owned();
    let out = cli.ok(&["keys", "rotate", "--tenant", "demo"]);
    assert!(
        out.contains("archived") && out.contains("reloading"),
        "{out}"
    );
    assert!(
        server.wait_for_log("flows reloaded", Duration::from_secs(5)),
        "{}",
        server.log.join("\n")
    );
    walk(&server, work.path(), B);
    cli.wait_calls(2);
    let list = cli.ok(&["recordings", "list"]);
    let ids: Vec<&str> = list
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(ids.len(), 4, "{list}");
    assert_eq!(
        ids.iter().filter(|k| **k == old_id).count(),
        2,
        "old recordings keep the old key: {list}"
    );
    let new_id = ids.iter().find(|k| **k != old_id).unwrap().to_string();
    // Both generations open: the old through the archived key.
    let out = cli.ok(&["recordings", "verify"]);
    assert_eq!(out.matches("intact").count(), 4, "{out}");
    // Rewrap: everything under the new key, the archive emptied.
    let out = cli.ok(&["keys", "rewrap", "--tenant", "demo"]);
    assert!(
        out.contains("2 recordings and 1 calls' keys re-wrapped")
            && out.contains("2 recordings already current"),
        "{out}"
    );
    // The calls' own keys (sealing callers and timelines) were wrapped by
    // the destroyed key too: re-wrapped, both calls still read in clear.
    let calls: Vec<serde_json::Value> = cli
        .ok(&["calls", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut callers: Vec<&str> = calls
        .iter()
        .map(|c| c["caller"].as_str().unwrap())
        .collect();
    callers.sort();
    let mut want = [A, B];
    want.sort();
    assert_eq!(callers, want, "{calls:?}");
    for c in &calls {
        let show: serde_json::Value = serde_json::from_str(&cli.ok(&[
            "calls",
            "show",
            c["call_id"].as_str().unwrap(),
            "--json",
        ]))
        .unwrap();
        let timeline = show["timeline"].as_array().unwrap();
        assert!(timeline.len() > 3, "{show}");
        assert!(
            timeline.iter().all(|e| e["detail"].get("sealed").is_none()),
            "a timeline no key opens: {show}"
        );
    }
    let list = cli.ok(&["recordings", "list"]);
    assert_eq!(list.matches(&new_id).count(), 4, "{list}");
    assert_eq!(
        std::fs::read_dir(data.join("keys").join("demo"))
            .unwrap()
            .count(),
        0,
        "archived key destroyed"
    );
    let out = cli.ok(&["recordings", "verify"]);
    assert_eq!(out.matches("intact").count(), 4, "{out}");
    let log = std::fs::read_to_string(data.join("audit.log")).unwrap();
    for action in [
        "key.rotate",
        "key.rewrap",
        "key.destroy",
        "recording.verify",
    ] {
        assert!(log.contains(action), "no {action}:\n{log}");
    }
    assert!(cli.ok(&["audit", "verify"]).contains("intact"));
}

#[test]
fn a_write_only_tenant_s_recordings_open_only_with_its_private_key() {
    // Test fixture key pair: the business keeps the private key.
    let private = [0x42u8; 32];
    let public = recordings::keys::public_of(&private);
    let tenant = DEMO.replace(
        "flows_dir",
        &format!(
            "recording_public_key = \"{}\"\nflows_dir",
            hex::encode(public)
        ),
    );
    let server = Server::start(&tenant);
    let work = tempfile::tempdir().unwrap();
    let data = server.data_dir();
    let cli = Cli::of(&server);
    walk(&server, work.path(), A);
    cli.wait_calls(1);
    let list = cli.ok(&["recordings", "list"]);
    assert_eq!(list.matches("demo-pub-").count(), 2, "{list}");
    // The server's own key cannot open them.
    let (code, out, _) = cli.run(&["recordings", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("write-only"), "{out}");
    let server_kek = data.join("keys").join("demo.kek").display().to_string();
    let (code, out, _) = cli.run(&["recordings", "verify", "--key", &server_kek]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("wrong key"), "{out}");
    // The business's private key does.
    let private_file = work.path().join("business.x25519");
    std::fs::write(&private_file, hex::encode(private)).unwrap();
    let out = cli.ok(&[
        "recordings",
        "verify",
        "--key",
        &private_file.display().to_string(),
    ]);
    assert_eq!(out.matches("intact").count(), 2, "{out}");
}

#[test]
fn a_sensitive_gather_pauses_the_call_recording_and_masks_the_keys() {
    let flows = tempfile::tempdir().unwrap();
    let chime = common::repo_path("examples/prompts/chime.wav")
        .display()
        .to_string();
    std::fs::write(
        flows.path().join("pin.ivr"),
        format!(
            "flow \"Pin\"\n  numbers 3000\n\nstep start\n  consent play \"{chime}\", timeout 10s\n  if consent == \"yes\"\n    recording start\n  gather into pin, digits 4, timeout 5s, between 3s, sensitive\n    play \"{chime}\"\n  log \"pin.entered\" pin=pin\n  wait 1s\n  hangup \"done\"\n"
        ),
    )
    .unwrap();
    let server = Server::start(&format!(
        "[[tenants]]\nid = \"bank\"\nnumbers = [\"3000\"]\nflows_dir = \"{}\"\n",
        flows.path().display()
    ));
    let work = tempfile::tempdir().unwrap();
    // Consent at once; the PIN 4 2 4 2 over about two seconds.
    let text = std::fs::read_to_string(common::repo_path("examples/sipp/demo-walk.xml")).unwrap();
    let head = &text[..text.find("  <pause").unwrap()];
    let tail = &text[text.find("  <recv request=\"BYE\"").unwrap()..];
    let info = |d: char, cseq: u32| {
        let start = text
            .find("  <send retrans=\"500\">\n    <![CDATA[\n\n      INFO")
            .unwrap();
        let end = start
            + text[start..].find("<recv response=\"200\"/>").unwrap()
            + "<recv response=\"200\"/>\n".len();
        text[start..end]
            .replace("Signal=1", &format!("Signal={d}"))
            .replace("CSeq: 2 INFO", &format!("CSeq: {cseq} INFO"))
    };
    let mut sc = head.to_owned();
    sc.push_str("  <pause milliseconds=\"300\"/>\n");
    sc.push_str(&info('1', 2));
    sc.push_str("  <pause milliseconds=\"1500\"/>\n");
    for (i, d) in ['4', '2', '4', '2'].into_iter().enumerate() {
        sc.push_str(&info(d, 3 + i as u32));
        sc.push_str("  <pause milliseconds=\"600\"/>\n");
    }
    sc.push_str(tail);
    let path = work.path().join("pin.xml");
    std::fs::write(&path, sc).unwrap();
    let run = run_sipp(
        server.addr("udp"),
        &["-sf", &path.display().to_string(), "-m", "1", "-s", "3000"],
        Duration::from_secs(30),
    );
    assert_eq!(run.successful, 1, "{}", run.output);
    let cli = Cli::of(&server);
    let calls = cli.wait_calls(1);
    let shown = cli.ok(&[
        "calls",
        "show",
        calls[0]["call_id"].as_str().unwrap(),
        "--json",
    ]);
    let v: Value = serde_json::from_str(&shown).unwrap();
    let timeline = v["timeline"].as_array().unwrap();
    let rec: Vec<&Value> = timeline
        .iter()
        .filter(|e| e["kind"] == "recording")
        .collect();
    let events: Vec<&str> = rec
        .iter()
        .filter_map(|e| e["detail"]["event"].as_str())
        .collect();
    for want in ["started", "paused", "resumed", "saved"] {
        assert!(events.contains(&want), "no recording {want}: {events:?}");
    }
    let at = |ev: &str| {
        rec.iter().find(|e| e["detail"]["event"] == ev).unwrap()["offset_ms"]
            .as_i64()
            .unwrap()
    };
    let paused_ms = at("resumed") - at("paused");
    let wall_ms = at("saved") - at("started");
    let saved = rec
        .iter()
        .find(|e| e["detail"]["event"] == "saved")
        .unwrap()["detail"]["seconds"]
        .as_f64()
        .unwrap();
    assert!(paused_ms >= 1500, "the PIN took {paused_ms} ms");
    assert!(
        saved * 1000.0 <= (wall_ms - paused_ms + 200) as f64,
        "recorded {saved} s over {wall_ms} ms with {paused_ms} ms paused"
    );
    // The PIN is nowhere in the timeline.
    assert!(!shown.contains("4242"), "{shown}");
    assert!(shown.contains("****"), "masked digits are logged: {shown}");
}

#[test]
fn a_tenant_key_from_the_environment_never_touches_the_disk() {
    let key_hex = hex::encode([0x17u8; 32]); // test fixture key
    let server = Server::start_env(DEMO, &[("DHWANI_KEK_DEMO", &key_hex)]);
    let work = tempfile::tempdir().unwrap();
    walk(&server, work.path(), A);
    let cli = Cli::of(&server);
    cli.wait_calls(1);
    assert!(
        !server.data_dir().join("keys").join("demo.kek").exists(),
        "no key file when the key comes from the environment"
    );
    let run = |env: Option<&str>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_dhwani"));
        c.args([
            "recordings",
            "verify",
            "--config",
            &cli.cfg,
            "--data-dir",
            &cli.data,
        ])
        .env_remove("DHWANI_KEK_DEMO");
        if let Some(k) = env {
            c.env("DHWANI_KEK_DEMO", k);
        }
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run(Some(&key_hex));
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.matches("intact").count(), 2, "{out}");
    let (code, out) = run(None);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("DHWANI_KEK_DEMO"),
        "the error names where the key may come from: {out}"
    );
}

/// `privacy export` of `number` into `out`, as JSON.
fn export(cli: &Cli, number: &str, out: &Path) -> Value {
    serde_json::from_str(&cli.ok(&[
        "privacy",
        "export",
        "--tenant",
        "demo",
        "--number",
        number,
        "--out",
        &out.display().to_string(),
    ]))
    .unwrap()
}

/// `privacy erase` as JSON.
fn erase(cli: &Cli, number: &str) -> Value {
    serde_json::from_str(&cli.ok(&["privacy", "erase", "--tenant", "demo", "--number", number]))
        .unwrap()
}

/// Issue 14, point 1: pseudonyms come from a key of their own, so a
/// recording-key rotation loses no withdrawal, hold or pseudonymised CDR,
/// and a pseudonym re-key rewrites them all.
#[test]
fn consent_holds_and_erasure_outlive_a_key_rotation_and_a_pseudonym_rekey() {
    let mut server = Server::start(DEMO);
    let work = tempfile::tempdir().unwrap();
    let data = server.data_dir();
    let cli = Cli::of(&server);
    let pseudonym_file = data.join("keys").join("demo.pseudonym");
    walk(&server, work.path(), A);
    cli.wait_calls(1);
    assert_eq!(recordings(&data).len(), 2);
    let key_text = std::fs::read_to_string(&pseudonym_file).unwrap();
    cli.ok(&[
        "privacy",
        "withdraw-consent",
        "--tenant",
        "demo",
        "--number",
        A,
    ]);

    // Rotate the recording key (the server reloads it): A says yes at the
    // consent prompt, and is still not recorded.
    cli.ok(&["keys", "rotate", "--tenant", "demo"]);
    assert!(
        server.wait_for_log("flows reloaded", Duration::from_secs(5)),
        "{}",
        server.log.join("\n")
    );
    walk(&server, work.path(), A);
    let calls = cli.wait_calls(2);
    assert_eq!(recordings(&data).len(), 2, "A withdrew: not recorded");
    let newest = calls.iter().max_by_key(|c| c["start_ms"].as_i64()).unwrap();
    assert!(newest["recording_id"].is_null(), "{newest}");
    assert_eq!(
        std::fs::read_to_string(&pseudonym_file).unwrap(),
        key_text,
        "a rotation leaves the pseudonym key alone"
    );

    // A hold on B's number names B by pseudonyms only.
    let hold = cli.ok(&[
        "holds",
        "place",
        "--tenant",
        "demo",
        "--number",
        B,
        "--reason",
        "case 7/2026",
    ]);
    let hold = hold.trim().to_owned();
    let listed = cli.ok(&["holds", "list"]);
    assert!(
        listed.contains(&hold) && listed.contains("anon-"),
        "{listed}"
    );
    assert!(!listed.contains(B) && !listed.contains(&B[1..]), "{listed}");
    walk(&server, work.path(), B);
    let calls = cli.wait_calls(3);
    let b_start = calls.iter().find(|c| c["caller"] == B).unwrap()["start_ms"]
        .as_i64()
        .unwrap();
    let at = |days: i64| {
        jiff::Timestamp::from_millisecond(b_start + days * 86_400_000)
            .unwrap()
            .to_string()
    };
    // +181 days: A's two CDRs are pseudonymised and its recordings go;
    // B is held.
    let r: Value =
        serde_json::from_str(&cli.ok(&["retention", "sweep", "--now", &at(181)])).unwrap();
    assert_eq!(r["cdrs_pseudonymised"], 2, "{r}");
    assert_eq!(r["recordings_deleted"], 2, "A's first call's: {r}");
    assert_eq!(recordings(&data).len(), 2, "B's are held");

    // Re-key the pseudonyms: the registry, the hold and both CDRs follow.
    let r: Value =
        serde_json::from_str(&cli.ok(&["privacy", "rekey-pseudonyms", "--tenant", "demo"]))
            .unwrap();
    assert_eq!(
        (&r["withdrawals"], &r["holds"], &r["cdrs"]),
        (&Value::from(1), &Value::from(1), &Value::from(2)),
        "{r}"
    );
    assert_ne!(
        std::fs::read_to_string(&pseudonym_file).unwrap(),
        key_text,
        "the re-key added a layer"
    );
    assert!(!data.join("keys").join("demo.pseudonym.next").exists());
    // The running server follows the re-key (no reload asked for it).
    walk(&server, work.path(), A);
    cli.wait_calls(4);
    assert_eq!(recordings(&data).len(), 2, "A still not recorded");
    // The hold still stands over B.
    let r: Value =
        serde_json::from_str(&cli.ok(&["retention", "sweep", "--now", &at(181)])).unwrap();
    assert_eq!(r["recordings_deleted"], 0, "B held: {r}");
    assert_eq!(r["cdrs_pseudonymised"], 1, "A's third call's, not B's: {r}");
    let held = erase(&cli, B);
    assert_eq!(held["erased"]["calls_erased"], 0, "{held}");
    assert!(held.to_string().contains("case 7/2026"), "{held}");
    // Lifted, the hold leaves no row, only its audit entries.
    cli.ok(&["holds", "lift", &hold]);
    assert!(!cli.ok(&["holds", "list"]).contains(&hold));
    let r: Value =
        serde_json::from_str(&cli.ok(&["retention", "sweep", "--now", &at(181)])).unwrap();
    assert_eq!(r["recordings_deleted"], 2, "B's: {r}");
    assert_eq!(r["cdrs_pseudonymised"], 1, "B's: {r}");

    // Erasing A after the rotation and the re-key finds all three calls,
    // though every CDR already names A by a pseudonym.
    let erased = erase(&cli, A);
    assert_eq!(erased["erased"]["calls_erased"], 3, "{erased}");
    assert_eq!(erased["erased"]["already_pseudonymised"], 3, "{erased}");
    let out = work.path().join("export-a");
    let report = export(&cli, A, &out);
    assert_eq!(
        report["calls"], 3,
        "the access right finds them too: {report}"
    );

    let log = std::fs::read_to_string(data.join("audit.log")).unwrap();
    for action in ["key.rotate", "pseudonyms.rekey", "hold.place", "hold.lift"] {
        assert!(log.contains(action), "no {action}:\n{log}");
    }
    assert!(!log.contains(A) && !log.contains(B));
    assert!(cli.ok(&["audit", "verify"]).contains("intact"));
}

/// Issue 14, point 4: every read of callers' data is an audit entry with
/// the actor, the reason given, the calls by id and the callers by
/// pseudonym, written before the data is shown.
#[test]
fn every_read_of_callers_data_is_audited_with_the_reason_and_pseudonyms() {
    let server = Server::start(DEMO);
    let work = tempfile::tempdir().unwrap();
    let data = server.data_dir();
    let cli = Cli::of(&server);
    walk(&server, work.path(), A);
    let calls = cli.wait_calls(1);
    let id = calls[0]["call_id"].as_str().unwrap().to_owned();
    let before = std::fs::read_to_string(data.join("audit.log")).unwrap();
    cli.ok(&["calls", "list", "--reason", "ticket 42"]);
    cli.ok(&["calls", "show", &id, "--reason", "ticket 43"]);
    let list = cli.ok(&["recordings", "list", "--reason", "ticket 44"]);
    let rec = list
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    cli.ok(&["recordings", "decrypt", &rec, "--reason", "ticket 45"]);
    cli.ok(&["recordings", "verify", &rec]);
    let out = work.path().join("export");
    cli.ok(&[
        "privacy",
        "export",
        "--tenant",
        "demo",
        "--number",
        A,
        "--out",
        &out.display().to_string(),
        "--reason",
        "request 46",
    ]);
    let log = std::fs::read_to_string(data.join("audit.log")).unwrap();
    let new: Vec<&str> = log.lines().skip(before.lines().count()).collect();
    let entry = |action: &str| -> String {
        new.iter()
            .find(|l| l.split('\t').nth(3) == Some(action))
            .unwrap_or_else(|| panic!("no {action} entry in:\n{}", new.join("\n")))
            .to_string()
    };
    let user = entry("calls.list");
    assert!(user.contains("@cli"), "the actor: {user}");
    for (action, reason) in [
        ("calls.list", "ticket 42"),
        ("calls.show", "ticket 43"),
        ("recordings.list", "ticket 44"),
        ("recording.decrypt", "ticket 45"),
        ("recording.verify", "none given"),
        ("privacy.export", "request 46"),
    ] {
        let e = entry(action);
        assert!(e.contains(&format!("reason: {reason}")), "{e}");
    }
    for action in ["calls.list", "calls.show"] {
        let e = entry(action);
        assert!(e.contains(&id) && e.contains("callers: anon-"), "{e}");
    }
    assert!(entry("recordings.list").contains(&rec));
    assert!(
        !log.contains(A) && !log.contains(&A[1..]),
        "numbers only as pseudonyms"
    );
    // The pseudonym is the one the registry uses: a withdrawal names A
    // the same way.
    let callers = entry("calls.show");
    let p = callers
        .split("callers: ")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    cli.ok(&[
        "privacy",
        "withdraw-consent",
        "--tenant",
        "demo",
        "--number",
        A,
    ]);
    let log = std::fs::read_to_string(data.join("audit.log")).unwrap();
    let withdraw = log
        .lines()
        .find(|l| l.contains("consent.withdraw"))
        .unwrap();
    assert!(withdraw.contains(&p), "{withdraw} vs {p}");
    assert!(cli.ok(&["audit", "verify"]).contains("intact"));
}

/// Issue 14, point 8: key files named in the config, outside the data
/// directory, are the ones used (and rotated beside); `keys check` says
/// where each key comes from and warns about keys inside the data
/// directory.
#[test]
fn configured_key_files_outside_the_data_directory_and_keys_check() {
    let keys = tempfile::tempdir().unwrap();
    let rec = keys.path().join("demo.kek");
    let ps = keys.path().join("demo.pseudonym");
    let mut server = Server::start(&format!(
        "{DEMO}recording_key_file = \"{}\"\npseudonym_key_file = \"{}\"\n",
        rec.display(),
        ps.display()
    ));
    let work = tempfile::tempdir().unwrap();
    let data = server.data_dir();
    let cli = Cli::of(&server);
    walk(&server, work.path(), A);
    cli.wait_calls(1);
    assert_eq!(recordings(&data).len(), 2);
    assert!(rec.exists() && ps.exists());
    for name in ["demo.kek", "demo.pseudonym"] {
        assert!(
            !data.join("keys").join(name).exists(),
            "{name} in the data directory"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [&rec, &ps] {
            assert_eq!(
                std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
    assert!(
        !server.log.iter().any(|l| l.contains("DEMO recording key")),
        "no demo warning for a configured key"
    );
    assert_eq!(
        cli.ok(&["recordings", "verify"]).matches("intact").count(),
        2
    );
    let out = cli.ok(&["keys", "check"]);
    assert_eq!(
        out.matches("outside the data directory").count(),
        2,
        "{out}"
    );
    assert!(!out.contains("WARNING"), "{out}");
    // A rotation archives the old key beside the configured file.
    cli.ok(&["keys", "rotate", "--tenant", "demo"]);
    assert!(server.wait_for_log("flows reloaded", Duration::from_secs(5)));
    assert_eq!(
        std::fs::read_dir(keys.path().join("demo")).unwrap().count(),
        1
    );
    walk(&server, work.path(), B);
    cli.wait_calls(2);
    assert_eq!(
        cli.ok(&["recordings", "verify"]).matches("intact").count(),
        4
    );

    // The embedded default's keys sit in the data directory: warned.
    let default = Server::start(DEMO);
    let cli = Cli::of(&default);
    let (code, out, _) = cli.run(&["keys", "check"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.matches("WARNING").count(), 2, "{out}");
    assert!(out.contains("inside the data directory"), "{out}");
}

/// Issue 14, point 6: a caller lodges a grievance by phone (the flow's
/// `grievance`, a message and a ticket), the operator acknowledges and
/// resolves it; a correction request is answered by `privacy correct`
/// (the captured value rewritten, a `correction` event, the request
/// closed); a nominee is registered and exercises the caller's access
/// right, and someone who is not a nominee cannot; overdue requests and
/// grievances are listed by their due dates; every step is audited, and
/// no number is stored with any of it.
#[test]
fn grievances_requests_nominees_and_corrections_with_their_due_dates() {
    use common::sippxml::{SERVER_BYE, info, pause, write_scenario};
    let work = tempfile::tempdir().unwrap();
    let flows = work.path().join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let chime = common::repo_path("examples/prompts/chime.wav");
    std::fs::write(
        flows.join("rights.ivr"),
        format!(
            r#"flow "Rights"
  numbers 3000

step ask
  gather into account, digits 6, timeout 5s
    play "{chime}"
    on invalid -> complain
    on timeout -> complain
  log "account.entered" account=account
  goto complain

step complain
  grievance "billing", max 20s
  hangup "grievance"
"#,
            chime = chime.display()
        ),
    )
    .unwrap();
    let server = Server::start(&format!(
        "[[tenants]]\nid = \"acme\"\nnumbers = [\"3000\"]\nflows_dir = \"{}\"\n",
        flows.display()
    ));
    let cli = Cli::of(&server);
    // The caller types 739154, leaves a short message, ends it with #.
    let mut middle = pause(300);
    for (i, d) in "739154".chars().enumerate() {
        middle.push_str(&info(d, 2 + i as u32));
        middle.push_str(&pause(150));
    }
    middle.push_str(&pause(1500));
    middle.push_str(&info('#', 9));
    let sc = write_scenario(work.path(), &middle, SERVER_BYE);
    let run = run_sipp(
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
    let calls = cli.wait_calls(1);
    let call_id = calls[0]["call_id"].as_str().unwrap().to_owned();

    // The phone's grievance: a ticket by pseudonym with the message.
    let list = |extra: &[&str]| -> Vec<Value> {
        let mut a = vec!["grievance", "list", "--json"];
        a.extend(extra);
        cli.ok(&a)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let g = loop {
        if let Some(g) = list(&[]).pop() {
            break g;
        }
        assert!(std::time::Instant::now() < deadline, "no grievance");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(g["category"], "billing");
    assert_eq!(g["channel"], "phone");
    assert_eq!(g["call_id"], call_id.as_str());
    assert!(g["subject"].as_str().unwrap().starts_with("anon-"), "{g}");
    let rec = g["recording_id"].as_str().unwrap();
    assert!(
        files_under(&server.data_dir().join("recordings"))
            .iter()
            .any(|p| p.display().to_string().contains(rec)),
        "the message {rec} is stored"
    );
    let id = g["grievance_id"].as_str().unwrap().to_owned();
    let day = 24 * 3600 * 1000;
    assert_eq!(
        g["ack_due_ms"].as_i64().unwrap() - g["opened_ms"].as_i64().unwrap(),
        day
    );
    assert_eq!(
        g["resolve_due_ms"].as_i64().unwrap() - g["opened_ms"].as_i64().unwrap(),
        30 * day
    );
    // Not acknowledged: overdue two days later, not now.
    let later = |days: i64| {
        jiff::Timestamp::from_millisecond(g["opened_ms"].as_i64().unwrap() + days * day)
            .unwrap()
            .to_string()
    };
    assert!(list(&["--overdue"]).is_empty());
    assert_eq!(list(&["--overdue", "--now", &later(2)]).len(), 1);
    cli.ok(&["grievance", "ack", &id]);
    assert!(
        list(&["--overdue", "--now", &later(2)]).is_empty(),
        "acknowledged in time"
    );
    assert_eq!(
        list(&["--overdue", "--now", &later(31)]).len(),
        1,
        "not resolved in 30 days"
    );
    cli.ok(&["grievance", "resolve", &id, "--resolution", "refund issued"]);
    assert!(list(&["--open"]).is_empty());
    assert_eq!(list(&[])[0]["resolution"], "refund issued");
    // One lodged in writing, without a number.
    let opened: Value = serde_json::from_str(&cli.ok(&[
        "grievance",
        "open",
        "--tenant",
        "acme",
        "--category",
        "privacy",
    ]))
    .unwrap();
    assert_eq!(opened["channel"], "cli");
    assert_eq!(list(&["--open"]).len(), 1);

    // A correction request, answered by `privacy correct`.
    let req: Value = serde_json::from_str(&cli.ok(&[
        "privacy",
        "requests",
        "open",
        "--tenant",
        "acme",
        "--number",
        A,
        "--kind",
        "correction",
    ]))
    .unwrap();
    let rid = req["request_id"].as_str().unwrap().to_owned();
    assert_eq!(
        req["due_ms"].as_i64().unwrap() - req["opened_ms"].as_i64().unwrap(),
        30 * day
    );
    // The wrong command for it is refused, and so is another number.
    let (code, _, err) = cli.run(&[
        "privacy",
        "erase",
        "--tenant",
        "acme",
        "--number",
        A,
        "--request",
        &rid,
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("asks for correction"), "{err}");
    let (code, _, err) = cli.run(&[
        "privacy",
        "correct",
        "--tenant",
        "acme",
        "--number",
        B,
        "--call",
        &call_id,
        "--field",
        "account",
        "--value",
        "739155",
        "--request",
        &rid,
    ]);
    assert_ne!(code, 0, "{err}");
    let fixed: Value = serde_json::from_str(&cli.ok(&[
        "privacy",
        "correct",
        "--tenant",
        "acme",
        "--number",
        A,
        "--call",
        &call_id,
        "--field",
        "account",
        "--value",
        "739155",
        "--request",
        &rid,
    ]))
    .unwrap();
    assert_eq!(fixed["events_corrected"], 1, "{fixed}");
    let shown: Value =
        serde_json::from_str(&cli.ok(&["calls", "show", &call_id, "--json"])).unwrap();
    let tl = shown["timeline"].as_array().unwrap();
    let custom = tl.iter().find(|e| e["kind"] == "custom").unwrap();
    assert_eq!(custom["detail"]["account"], "739155", "{custom}");
    let corr = tl.iter().find(|e| e["kind"] == "correction").unwrap();
    assert_eq!(corr["detail"]["field"], "account");
    assert!(
        !corr.to_string().contains("73915"),
        "the correction event names no value"
    );
    let reqs: Vec<Value> = cli
        .ok(&["privacy", "requests", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(reqs[0]["closed_ms"].is_i64(), "{reqs:?}");
    assert_eq!(reqs[0]["outcome"], "done: dhwani privacy correct");

    // A nominee: registered, then exercises the access right; a number
    // that is not one cannot.
    let out = work.path().join("export");
    let (code, _, err) = cli.run(&[
        "privacy",
        "export",
        "--tenant",
        "acme",
        "--number",
        A,
        "--out",
        &out.display().to_string(),
        "--by-nominee",
        B,
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("not a registered nominee"), "{err}");
    cli.ok(&[
        "privacy",
        "nominee",
        "add",
        "--tenant",
        "acme",
        "--number",
        A,
        "--nominee",
        B,
    ]);
    let nominees = cli.ok(&[
        "privacy", "nominee", "list", "--tenant", "acme", "--number", A,
    ]);
    assert_eq!(nominees.lines().count(), 1);
    assert!(nominees.starts_with("anon-"), "{nominees}");
    let access: Value = serde_json::from_str(&cli.ok(&[
        "privacy",
        "requests",
        "open",
        "--tenant",
        "acme",
        "--number",
        A,
        "--kind",
        "access",
        "--by-nominee",
        B,
    ]))
    .unwrap();
    assert!(access["nominee"].as_str().unwrap().starts_with("anon-"));
    let aid = access["request_id"].as_str().unwrap().to_owned();
    // Open and past due a month later.
    let open_later = |days: i64| -> usize {
        let t =
            jiff::Timestamp::from_millisecond(access["opened_ms"].as_i64().unwrap() + days * day)
                .unwrap()
                .to_string();
        cli.ok(&[
            "privacy",
            "requests",
            "list",
            "--overdue",
            "--now",
            &t,
            "--json",
        ])
        .lines()
        .count()
    };
    assert_eq!(open_later(31), 1);
    assert_eq!(open_later(29), 0);
    let exported: Value = serde_json::from_str(&cli.ok(&[
        "privacy",
        "export",
        "--tenant",
        "acme",
        "--number",
        A,
        "--out",
        &out.display().to_string(),
        "--by-nominee",
        B,
        "--request",
        &aid,
    ]))
    .unwrap();
    assert_eq!(exported["calls"], 1);
    assert_eq!(open_later(31), 0, "answered");

    // Audited, and no number or typed value stored with any of it.
    let audit = std::fs::read_to_string(server.data_dir().join("audit.log")).unwrap();
    for action in [
        "grievance.ack",
        "grievance.resolve",
        "grievance.open",
        "request.open",
        "privacy.correct",
        "nominee.add",
        "privacy.export",
    ] {
        assert!(audit.contains(action), "{action} not audited:\n{audit}");
    }
    assert!(audit.contains("by nominee anon-"), "{audit}");
    assert!(
        !audit.contains("9800000"),
        "a number in the audit log:\n{audit}"
    );
    let listed = format!(
        "{}{}",
        cli.ok(&["grievance", "list", "--json"]),
        cli.ok(&["privacy", "requests", "list", "--json"])
    );
    assert!(!listed.contains("9800000"), "{listed}");
}
