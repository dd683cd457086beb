//! Call-centre agents end to end: baresip (Debian's `baresip-core`) as
//! agents' softphones that register with digest and answer automatically,
//! a queue in the flow, and callers that reach a person.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;

const PASSWORD: &str = "agent-secret-1";

/// `dhwani agents ha1 EXT` with the test password: the config lines.
fn ha1_lines(ext: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dhwani"))
        .args(["agents", "ha1", ext])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("dhwani agents ha1");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .expect("password");
    let out = child.wait_with_output().expect("ha1");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf-8")
}

const QUEUE_FLOW: &str = "flow \"Queue\"\n  numbers 1000\n\nstep start\n  queue \"support\", hold \"hold.wav\", max wait 2m\n    on overflow -> gone\n\nstep gone\n  hangup \"overflow\"\n";

/// A tenant whose flow queues every caller, with agents 1001 and 1002.
fn config(dir: &Path, strategy: &str, extra_queue: &str) -> String {
    config_with_flow(dir, strategy, extra_queue, QUEUE_FLOW)
}

/// The same with another flow.
fn config_with_flow(dir: &Path, strategy: &str, extra_queue: &str, flow: &str) -> String {
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).expect("flows");
    std::fs::copy(
        common::repo_path("examples/prompts/hold-music.wav"),
        flows.join("hold.wav"),
    )
    .expect("hold music");
    std::fs::write(flows.join("queue.ivr"), flow).expect("flow");
    // baresip 1.x (libre) fails a REGISTER whose 401 has any challenge
    // other than MD5 ("Function not implemented"): MD5 only.
    let mut t = format!(
        "[registrar]\ndigest_algorithms = [\"MD5\"]\n\n[[tenants]]\nid = \"demo\"\nnumbers = [\"1000\"]\nflows_dir = \"{}\"\n",
        flows.display()
    );
    for ext in ["1001", "1002"] {
        t.push_str(&format!(
            "[[tenants.agents]]\nextension = \"{ext}\"\nname = \"Agent {ext}\"\n{}",
            ha1_lines(ext)
        ));
    }
    t.push_str(&format!(
        "[[tenants.queues]]\nname = \"support\"\nstrategy = \"{strategy}\"\nmembers = [\"1001\", \"1002\"]\nring_timeout_secs = 6\nwrap_up_secs = 5\n{extra_queue}"
    ));
    t
}

/// A baresip with its own config dir, SIP port and tone; it dumps what it
/// hears to `DIR/*-dec.wav`. Its stdout lines are collected.
struct Phone {
    child: Child,
    stdin: std::process::ChildStdin,
    dir: tempfile::TempDir,
    out: Arc<Mutex<Vec<String>>>,
}

impl Phone {
    fn start(account: &str, tone: u32) -> Phone {
        Phone::start_traced(account, tone, false)
    }

    /// With `trace`, baresip prints every SIP message it sends and gets,
    /// each after a `TRANSPORT FROM -> TO` line. A baresip that exits at
    /// once (its SIP port, free when picked, was taken meanwhile by
    /// another test's socket) is started again on another port.
    fn start_traced(account: &str, tone: u32, trace: bool) -> Phone {
        for _ in 0..4 {
            let mut p = Phone::start_once(account, tone, trace);
            std::thread::sleep(Duration::from_millis(200));
            if matches!(p.child.try_wait(), Ok(None)) {
                return p;
            }
        }
        panic!("baresip exits at start four times running ({account})");
    }

    fn start_once(account: &str, tone: u32, trace: bool) -> Phone {
        let bin = "/usr/bin/baresip";
        assert!(
            Path::new(bin).exists(),
            "baresip is missing: run ./scripts/test.sh, which installs baresip-core"
        );
        let dir = tempfile::tempdir().expect("dir");
        let conf = dir.path().join("conf");
        std::fs::create_dir_all(&conf).expect("conf");
        let port = common::free_udp_port();
        std::fs::write(
            conf.join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{port}\naudio_player aubridge,x\naudio_source ausine,{tone}\n\
                 ausrc_srate 48000\nauplay_srate 48000\nausrc_channels 2\n\
                 module_path /usr/lib/baresip/modules\nmodule stdio.so\nmodule g711.so\nmodule ausine.so\n\
                 module aubridge.so\nmodule sndfile.so\nsnd_path {}\nmodule_app account.so\nmodule_app menu.so\n",
                dir.path().display()
            ),
        )
        .expect("config");
        std::fs::write(conf.join("accounts"), format!("{account}\n")).expect("accounts");
        let mut cmd = Command::new(bin);
        if trace {
            cmd.arg("-s");
        }
        let mut child = cmd
            .args(["-n", "127.0.0.1", "-t", "60", "-f"])
            .arg(&conf)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start baresip");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let out = Arc::new(Mutex::new(Vec::new()));
        let o = Arc::clone(&out);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                o.lock().expect("lock").push(line);
            }
        });
        Phone {
            child,
            stdin,
            dir,
            out,
        }
    }

    /// An agent's phone: registers `ext` with digest and answers by itself.
    fn agent(ext: &str, server: SocketAddr) -> Phone {
        Phone::start(
            &format!("<sip:{ext}@{server}>;auth_pass={PASSWORD};regint=60;answermode=auto"),
            if ext == "1001" { 880 } else { 1320 },
        )
    }

    fn say(&mut self, s: &str) {
        self.stdin.write_all(s.as_bytes()).expect("say");
        self.stdin.flush().expect("flush");
    }

    fn log(&self) -> String {
        self.out.lock().expect("lock").join("\n")
    }

    fn wait_for(&self, needle: &str, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// RMS of what it heard (its decoder dump), if it heard anything.
    fn heard_rms(&self) -> Option<f64> {
        let wav: PathBuf = std::fs::read_dir(self.dir.path())
            .ok()?
            .map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.as_ref()
                    .is_some_and(|p| p.display().to_string().ends_with("-dec.wav"))
            })??;
        let bytes = std::fs::read(wav).ok()?;
        let samples: Vec<f64> = bytes
            .get(44..)?
            .chunks_exact(2)
            .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])))
            .collect();
        Some((samples.iter().map(|s| s * s).sum::<f64>() / samples.len().max(1) as f64).sqrt())
    }

    /// The frequency (from zero crossings of the first channel) of the
    /// `from..to` seconds of what it heard.
    fn heard_freq(&self, from: f64, to: f64) -> f64 {
        let Some(wav) = std::fs::read_dir(self.dir.path()).ok().and_then(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.display().to_string().ends_with("-dec.wav"))
        }) else {
            return 0.0;
        };
        let Ok(bytes) = std::fs::read(wav) else {
            return 0.0;
        };
        let channels = usize::from(u16::from_le_bytes([bytes[22], bytes[23]])).max(1);
        let rate = u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]) as usize;
        let samples: Vec<i16> = bytes[44..]
            .chunks_exact(2 * channels)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        let (a, b) = ((from * rate as f64) as usize, (to * rate as f64) as usize);
        let part = &samples[a.min(samples.len())..b.min(samples.len())];
        let crossings = part.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        crossings as f64 / 2.0 / (part.len().max(1) as f64 / rate as f64)
    }

    /// Seconds of audio it heard.
    /// The frequency it heard most in the 1.5 s ending 0.5 s before the
    /// end of what it heard so far.
    fn recent_freq(&self) -> f64 {
        let end = self.heard_secs();
        self.heard_freq(end - 2.0, end - 0.5)
    }

    fn heard_secs(&self) -> f64 {
        let Some(wav) = std::fs::read_dir(self.dir.path()).ok().and_then(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.display().to_string().ends_with("-dec.wav"))
        }) else {
            return 0.0;
        };
        let Ok(bytes) = std::fs::read(wav) else {
            return 0.0;
        };
        // The WAV header's channels, rate and bits.
        let u16_at = |i: usize| {
            bytes
                .get(i..i + 2)
                .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
        };
        let u32_at = |i: usize| {
            bytes
                .get(i..i + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let (channels, rate, bits) = (u16_at(22), u32_at(24), u16_at(34));
        let per_sec = f64::from(channels) * f64::from(rate) * f64::from(bits) / 8.0;
        if per_sec == 0.0 {
            return 0.0;
        }
        bytes.len().saturating_sub(44) as f64 / per_sec
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        let _ = self.stdin.write_all(b"/quit\n");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agents_json(server: &Server) -> Vec<serde_json::Value> {
    common::dhwani_for(server, &["agents", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn wait_registered(server: &mut Server, n: usize) {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let with_phone = agents_json(server)
            .iter()
            .filter(|a| a["phones"].as_array().is_some_and(|p| !p.is_empty()))
            .count();
        if with_phone >= n {
            return;
        }
        assert!(
            Instant::now() < end,
            "agents did not register: {:?}\n{}",
            agents_json(server),
            server.log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_caller_waits_in_the_queue_then_talks_to_an_agent_on_baresip() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(&config(tmp.path(), "longest-idle", ""));
    let target = server.addr("udp");
    let a1 = Phone::agent("1001", target);
    wait_registered(&mut server, 1);
    let listed = agents_json(&server);
    let me = listed
        .iter()
        .find(|a| a["extension"] == "1001")
        .expect("1001");
    assert_eq!(me["state"], "available", "{listed:?}");
    let phone = &me["phones"][0];
    assert_eq!(phone["transport"], "udp");
    let mut caller = Phone::start("<sip:+919800000002@127.0.0.1>;regint=0", 440);
    std::thread::sleep(Duration::from_millis(300));
    caller.say(&format!("/dial sip:1000@{target}\n"));
    assert!(
        caller.wait_for("Call established", Duration::from_secs(10)),
        "{}",
        caller.log()
    );
    assert!(
        server.wait_for_log("bridged to an agent", Duration::from_secs(15)),
        "{}",
        server.log.join("\n")
    );
    // Both talk for six seconds.
    std::thread::sleep(Duration::from_secs(6));
    let busy = agents_json(&server);
    assert_eq!(
        busy.iter()
            .find(|a| a["extension"] == "1001")
            .expect("1001")["state"],
        "on-call"
    );
    caller.say("/hangup\n");
    std::thread::sleep(Duration::from_millis(1500));
    let heard_by_agent = a1.heard_rms().expect("the agent heard something");
    let heard_by_caller = caller.heard_rms().expect("the caller heard something");
    assert!(
        heard_by_agent > 300.0,
        "the agent heard silence: {heard_by_agent}"
    );
    assert!(
        heard_by_caller > 300.0,
        "the caller heard silence: {heard_by_caller}"
    );
    let secs = a1.heard_secs();
    assert!(secs >= 5.0, "the agent heard {secs} s");
    // Each heard the other's tone: the caller sends 440 Hz, agent 1001
    // 880 Hz (and the hold music is neither).
    let f = a1.heard_freq(secs - 3.0, secs - 1.0);
    assert!(
        (f - 440.0).abs() < 40.0,
        "the agent heard {f} Hz, not the caller's 440 Hz"
    );
    let c = caller.heard_secs();
    let f = caller.heard_freq(c - 3.0, c - 1.0);
    assert!(
        (f - 880.0).abs() < 60.0,
        "the caller heard {f} Hz, not the agent's 880 Hz"
    );
    let call = common::finished_calls(&server).remove(0);
    assert_eq!(call["hangup_by"], "caller", "{call}");
    let out = common::dhwani_for(
        &server,
        &[
            "calls",
            "show",
            call["call_id"].as_str().expect("id"),
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let q: Vec<String> = v["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| e["kind"] == "queue")
        .map(|e| e["detail"]["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    for want in ["joined", "agent rung", "bridged", "bridge ended"] {
        assert!(q.iter().any(|e| e == want), "{want} missing from {q:?}");
    }
    // The queue's figures, from the store.
    let out = common::dhwani_for(&server, &["queues", "show", "--tenant", "demo", "--json"]);
    let f: serde_json::Value =
        serde_json::from_str(out.lines().next().expect("a queue")).expect("json");
    assert_eq!(f["queue"], "support");
    assert_eq!(
        (
            f["answered"].as_u64(),
            f["waiting"].as_u64(),
            f["abandoned"].as_u64()
        ),
        (Some(1), Some(0), Some(0)),
        "{f}"
    );
    // The agent rests for its wrap-up, then takes calls again.
    let after = agents_json(&server);
    assert_eq!(
        after
            .iter()
            .find(|a| a["extension"] == "1001")
            .expect("1001")["state"],
        "wrap-up"
    );
    std::thread::sleep(Duration::from_secs(6));
    let later = agents_json(&server);
    assert_eq!(
        later
            .iter()
            .find(|a| a["extension"] == "1001")
            .expect("1001")["state"],
        "available"
    );
}

/// A caller phone that dials the queue number.
fn caller_dials(target: SocketAddr, number: &str) -> Phone {
    caller_dials_tone(target, number, 440)
}

/// The same, sending a sine of `tone` Hz.
fn caller_dials_tone(target: SocketAddr, number: &str, tone: u32) -> Phone {
    let mut caller = Phone::start(&format!("<sip:{number}@127.0.0.1>;regint=0"), tone);
    std::thread::sleep(Duration::from_millis(300));
    caller.say(&format!("/dial sip:1000@{target}\n"));
    assert!(
        caller.wait_for("Call established", Duration::from_secs(10)),
        "{}",
        caller.log()
    );
    caller
}

fn state_of(server: &Server, ext: &str) -> String {
    agents_json(server)
        .iter()
        .find(|a| a["extension"] == ext)
        .map(|a| {
            let s = a["state"].as_str().unwrap_or_default().to_owned();
            match a["state_reason"].as_str() {
                Some(r) if s == "paused" => format!("{s} ({r})"),
                _ => s,
            }
        })
        .unwrap_or_default()
}

fn queue_events(server: &Server, call_id: &str) -> Vec<serde_json::Value> {
    timeline_events(server, call_id, "queue")
}

/// The details of a call's timeline events of one kind.
fn timeline_events(server: &Server, call_id: &str, kind: &str) -> Vec<serde_json::Value> {
    let out = common::dhwani_for(server, &["calls", "show", call_id, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    v["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["detail"].clone())
        .collect()
}

#[test]
fn an_agent_who_does_not_answer_is_paused_the_next_answers_and_hangs_up() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(&config(tmp.path(), "longest-idle", ""));
    let target = server.addr("udp");
    // 1002 registers first (idle longest) but its phone only rings.
    let slow = Phone::start(
        &format!("<sip:1002@{target}>;auth_pass={PASSWORD};regint=60"),
        1320,
    );
    wait_registered(&mut server, 1);
    std::thread::sleep(Duration::from_millis(1100));
    let mut a1 = Phone::agent("1001", target);
    wait_registered(&mut server, 2);
    let caller = caller_dials(target, "+919800000003");
    assert!(
        slow.wait_for("Incoming call", Duration::from_secs(5)),
        "1002 is rung first: {}",
        slow.log()
    );
    // Its 6 s ring timeout passes; 1001 is rung and answers.
    assert!(
        server.wait_for_log("bridged to an agent", Duration::from_secs(15)),
        "{}",
        server.log.join("\n")
    );
    assert_eq!(state_of(&server, "1002"), "paused (no answer)");
    assert_eq!(state_of(&server, "1001"), "on-call");
    std::thread::sleep(Duration::from_secs(2));
    // The agent hangs up: the caller's call ends.
    a1.say("/hangup\n");
    assert!(
        caller.wait_for("terminated", Duration::from_secs(5))
            || caller.wait_for("closed", Duration::from_secs(1)),
        "the caller's call did not end: {}",
        caller.log()
    );
    let call = common::finished_calls(&server).remove(0);
    assert_eq!(call["hangup_by"], "agent", "{call}");
    let q = queue_events(&server, call["call_id"].as_str().expect("id"));
    let said: Vec<(String, String)> = q
        .iter()
        .map(|d| {
            (
                d["event"].as_str().unwrap_or_default().to_owned(),
                d["agent"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for want in [
        ("agent rung", "1002"),
        ("no answer", "1002"),
        ("agent rung", "1001"),
        ("bridged", "1001"),
    ] {
        assert!(
            said.iter().any(|(e, a)| e == want.0 && a == want.1),
            "{want:?} missing: {said:?}"
        );
    }
    assert_eq!(state_of(&server, "1001"), "wrap-up");
    drop(slow);
}

#[test]
fn ring_all_with_two_agents_answering_at_once_bridges_exactly_one() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(&config(tmp.path(), "ring-all", ""));
    let target = server.addr("udp");
    let a1 = Phone::agent("1001", target);
    let a2 = Phone::agent("1002", target);
    wait_registered(&mut server, 2);
    let mut caller = caller_dials(target, "+919800000004");
    assert!(
        server.wait_for_log("bridged to an agent", Duration::from_secs(10)),
        "{}",
        server.log.join("\n")
    );
    std::thread::sleep(Duration::from_secs(2));
    let states = [state_of(&server, "1001"), state_of(&server, "1002")];
    assert_eq!(
        states.iter().filter(|s| *s == "on-call").count(),
        1,
        "exactly one agent has the call: {states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| *s == "available").count(),
        1,
        "the other is free again, not ringing: {states:?}"
    );
    // Both phones answered (auto-answer); the loser's leg was hung up.
    let answered = [&a1, &a2]
        .iter()
        .filter(|p| p.log().contains("Call established"))
        .count();
    assert!(answered >= 1);
    let bridged = server
        .log
        .iter()
        .filter(|l| l.contains("bridged to an agent"))
        .count();
    assert_eq!(bridged, 1);
    caller.say("/hangup\n");
    let call = common::finished_calls(&server).remove(0);
    assert_eq!(call["hangup_by"], "caller");
    std::thread::sleep(Duration::from_millis(500));
    let states = [state_of(&server, "1001"), state_of(&server, "1002")];
    assert!(
        states.contains(&"wrap-up".to_owned()) && states.contains(&"available".to_owned()),
        "{states:?}"
    );
}

#[test]
fn a_second_caller_waits_for_the_agents_wrap_up() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(&config(tmp.path(), "longest-idle", ""));
    let target = server.addr("udp");
    let _a1 = Phone::agent("1001", target);
    wait_registered(&mut server, 1);
    let mut first = caller_dials(target, "+919800000005");
    assert!(server.wait_for_log("bridged to an agent", Duration::from_secs(10)));
    std::thread::sleep(Duration::from_secs(1));
    first.say("/hangup\n");
    common::finished_calls(&server);
    let _second = caller_dials(target, "+919800000006");
    let end = Instant::now() + Duration::from_secs(15);
    let call_id = loop {
        let calls: Vec<serde_json::Value> =
            common::dhwani_for(&server, &["calls", "list", "--json"])
                .lines()
                .map(|l| serde_json::from_str(l).expect("json"))
                .collect();
        let second = calls
            .iter()
            .find(|c| c["caller"] == "+919800000006")
            .cloned();
        if let Some(c) = second {
            let id = c["call_id"].as_str().expect("id").to_owned();
            if queue_events(&server, &id)
                .iter()
                .any(|d| d["event"] == "bridged")
            {
                break id;
            }
        }
        assert!(Instant::now() < end, "the second caller was never answered");
        std::thread::sleep(Duration::from_millis(300));
    };
    let q = queue_events(&server, &call_id);
    let bridged = q.iter().find(|d| d["event"] == "bridged").expect("bridged");
    let waited = bridged["wait_secs"].as_f64().expect("wait");
    assert!(
        waited >= 4.0,
        "answered after {waited} s, inside the 5 s wrap-up"
    );
}

fn register_raw(sock: &UdpSocket, server: SocketAddr, cseq: u32, auth: Option<&str>) -> String {
    let local = sock.local_addr().expect("local");
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    // The source's address and port name its transaction and dialog:
    // sources on different loopback addresses may share a port.
    let id = local.to_string().replace(['.', ':', '[', ']'], "-");
    let msg = format!(
        "REGISTER sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKlock{cseq}-{id}\r\nFrom: <sip:1001@{server}>;tag=l{id}\r\nTo: <sip:1001@{server}>\r\nCall-ID: lock-{id}@test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:1001@{local}>\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
    );
    sock.send_to(msg.as_bytes(), server).expect("send");
    let mut buf = [0u8; 4096];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(_) => String::new(),
    }
}

fn answer(challenge_reply: &str, server: SocketAddr, password: &str, nc: u32) -> String {
    let line = challenge_reply
        .lines()
        .find(|l| l.starts_with("WWW-Authenticate:"))
        .expect("a challenge")
        .trim_start_matches("WWW-Authenticate:")
        .trim()
        .to_owned();
    let ch = sip::header::AuthParams::parse(&bytes::Bytes::from(line)).expect("challenge");
    sip::auth::authorization(
        &ch,
        "REGISTER",
        &format!("sip:{server}"),
        "1001",
        password,
        "abc",
        nc,
    )
    .expect("authorization")
}

#[test]
fn ten_wrong_register_guesses_lock_that_source_out_and_no_other() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::start(&config(tmp.path(), "longest-idle", ""));
    let target = server.addr("udp");
    let attacker = UdpSocket::bind("127.0.0.1:0").expect("bind");
    attacker
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let first = register_raw(&attacker, target, 1, None);
    assert!(first.starts_with("SIP/2.0 401"), "{first}");
    let mut last = first.clone();
    for i in 0..10u32 {
        let guess = answer(&last, target, &format!("guess-{i}"), 1);
        last = register_raw(&attacker, target, 2 + i, Some(&guess));
        assert!(
            last.starts_with("SIP/2.0 401"),
            "guess {i} was evaluated and refused: {last}"
        );
    }
    // The right password from the attacking source: refused unevaluated.
    let right = answer(&first, target, PASSWORD, 2);
    let locked = register_raw(&attacker, target, 20, Some(&right));
    assert!(locked.starts_with("SIP/2.0 403"), "{locked}");
    // From another source, the agent's password works.
    let phone = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    phone
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let ch = register_raw(&phone, target, 1, None);
    assert!(ch.starts_with("SIP/2.0 401"), "{ch}");
    let ok = register_raw(&phone, target, 2, Some(&answer(&ch, target, PASSWORD, 1)));
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(ok.contains("expires="), "{ok}");
}

#[test]
fn after_a_sigkill_mid_call_no_agent_is_left_on_call_and_the_phone_is_reached_again() {
    let tmp = tempfile::tempdir().expect("tmp");
    let port = common::free_udp_port();
    let listen = format!("udp:127.0.0.1:{port}");
    let mut server =
        Server::start_with(&[listen.as_str()], &config(tmp.path(), "longest-idle", ""));
    let target = server.addr("udp");
    let _a1 = Phone::agent("1001", target);
    wait_registered(&mut server, 1);
    let _caller = caller_dials(target, "+919800000007");
    assert!(server.wait_for_log("bridged to an agent", Duration::from_secs(10)));
    assert_eq!(state_of(&server, "1001"), "on-call");
    server.kill9();
    server.restart();
    assert!(
        server.wait_for_log("agent registrations restored", Duration::from_secs(5)),
        "{}",
        server.log.join("\n")
    );
    let end = Instant::now() + Duration::from_secs(5);
    while state_of(&server, "1001") != "available" {
        assert!(
            Instant::now() < end,
            "agent left as {} after the restart: {:?}\n{}",
            state_of(&server, "1001"),
            agents_json(&server),
            server.log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The restored registration reaches the phone: a new caller is answered.
    std::thread::sleep(Duration::from_secs(1));
    let _again = caller_dials(target, "+919800000008");
    assert!(
        server.wait_for_log("bridged to an agent", Duration::from_secs(15)),
        "{}",
        server.log.join("\n")
    );
}

#[test]
fn feature_codes_from_the_agents_phone_pause_and_unpause_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(&config(tmp.path(), "longest-idle", ""));
    let target = server.addr("udp");
    let mut a1 = Phone::agent("1001", target);
    wait_registered(&mut server, 1);
    assert_eq!(state_of(&server, "1001"), "available");
    let dial = |p: &mut Phone, code: &str| {
        p.say(&format!("/dial sip:*{code}@{target}\n"));
        std::thread::sleep(Duration::from_secs(4));
    };
    dial(&mut a1, "23");
    assert_eq!(state_of(&server, "1001"), "paused (from the phone)");
    // A caller now waits: the paused agent is not rung.
    let _caller = caller_dials(target, "+919800000009");
    std::thread::sleep(Duration::from_secs(2));
    assert!(!server.log.iter().any(|l| l.contains("bridged to an agent")));
    dial(&mut a1, "99");
    assert_eq!(
        state_of(&server, "1001"),
        "paused (from the phone)",
        "an unknown code changes nothing"
    );
    dial(&mut a1, "24");
    assert!(
        server.wait_for_log("bridged to an agent", Duration::from_secs(10)),
        "unpaused, the agent gets the waiting caller: {}",
        server.log.join("\n")
    );
    // The feature calls are logged as the agent's calls, each answered
    // with a confirmation and hung up by us.
    let calls: Vec<serde_json::Value> = common::dhwani_for(&server, &["calls", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let features: Vec<&serde_json::Value> =
        calls.iter().filter(|c| c["caller"] == "1001").collect();
    assert_eq!(features.len(), 3, "{calls:?}");
    assert!(
        features.iter().all(|c| c["hangup_by"] == "dhwani"),
        "{features:?}"
    );
}

#[test]
fn the_cli_pauses_and_logs_out_an_agent_on_the_running_server() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(&config(tmp.path(), "longest-idle", ""));
    let target = server.addr("udp");
    let _a1 = Phone::agent("1001", target);
    wait_registered(&mut server, 1);
    let wait_state = |server: &Server, want: &str| {
        let end = Instant::now() + Duration::from_secs(5);
        while state_of(server, "1001") != want {
            assert!(
                Instant::now() < end,
                "state {} instead of {want}",
                state_of(server, "1001")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_state(&server, "available");
    let out = common::dhwani_for(
        &server,
        &[
            "agents", "state", "--tenant", "demo", "1001", "pause", "--reason", "lunch",
        ],
    );
    assert!(
        out.contains("reloading"),
        "the running server was told: {out}"
    );
    wait_state(&server, "paused (lunch)");
    common::dhwani_for(
        &server,
        &["agents", "state", "--tenant", "demo", "1001", "logout"],
    );
    wait_state(&server, "logged-out");
    common::dhwani_for(
        &server,
        &["agents", "state", "--tenant", "demo", "1001", "login"],
    );
    wait_state(&server, "available");
    // An agent in no queue is refused with a reason.
    let (code, _, err) = common::dhwani(&[
        "agents",
        "state",
        "--tenant",
        "demo",
        "1009",
        "pause",
        "--config",
        &server.config_path().display().to_string(),
        "--data-dir",
        &server.data_dir().display().to_string(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("in none of"), "{err}");
}

#[test]
fn an_agent_registered_over_tcp_is_called_back_over_its_connection() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(&config(tmp.path(), "longest-idle", ""));
    let tcp = server.addr("tcp");
    let a1 = Phone::start_traced(
        &format!("<sip:1001@{tcp};transport=tcp>;auth_pass={PASSWORD};regint=60;answermode=auto"),
        880,
        true,
    );
    wait_registered(&mut server, 1);
    let listed = agents_json(&server);
    let phone = &listed
        .iter()
        .find(|a| a["extension"] == "1001")
        .expect("1001")["phones"][0];
    assert_eq!(phone["transport"], "tcp", "{listed:?}");
    let _caller = caller_dials(server.addr("udp"), "+919800000010");
    assert!(
        server.wait_for_log("bridged to an agent", Duration::from_secs(10)),
        "{}",
        server.log.join("\n")
    );
    assert!(a1.log().contains("Call established"), "{}", a1.log());
    // The INVITE came over the connection the REGISTER opened: from the
    // server's listening port (a new connection would come from another).
    let log = a1.log();
    let lines: Vec<&str> = log.lines().collect();
    let invite_from = lines
        .windows(2)
        .find(|w| w[1].starts_with("INVITE "))
        .map(|w| w[0].to_owned())
        .unwrap_or_else(|| panic!("no INVITE in the phone's trace: {log}"));
    assert!(
        invite_from.contains(&format!("TCP {tcp} ->")),
        "the INVITE came by `{invite_from}`"
    );
}

#[test]
fn agents_added_with_the_cli_keep_their_skills_and_no_password() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        config(tmp.path(), "skills", "skills = [\"billing\"]\n"),
    )
    .expect("config");
    let data = tmp.path().join("data");
    let args = |extra: &[&str]| -> (i32, String, String) {
        let mut a: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        a.extend([
            "--config".into(),
            cfg.display().to_string(),
            "--data-dir".into(),
            data.display().to_string(),
        ]);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        common::dhwani(&a)
    };
    let (code, out, err) = args(&[
        "agents",
        "add",
        "--tenant",
        "demo",
        "2001",
        "--skill",
        "billing:80",
        "--skill",
        "hindi",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .and_then(|l| l.split_whitespace().next())
        .expect("a generated password")
        .to_owned();
    let (code, _, err) = args(&[
        "agents",
        "add",
        "--tenant",
        "demo",
        "2002",
        "--skill",
        "billing:500",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("1 to 100"), "{err}");
    let (code, out, err) = args(&["agents", "add", "--tenant", "demo", "2003", "--supervisor"]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, list, _) = args(&["agents", "list", "--json"]);
    let v: Vec<serde_json::Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let a = v.iter().find(|a| a["extension"] == "2001").expect("2001");
    assert_eq!(a["skills"], "billing:80,hindi");
    assert_eq!(a["supervisor"], false);
    let s = v.iter().find(|a| a["extension"] == "2003").expect("2003");
    assert_eq!(s["supervisor"], true, "{s}");
    // Only digests are stored: the password appears nowhere in the database.
    for f in ["dhwani.db", "dhwani.db-wal"] {
        let bytes = std::fs::read(data.join(f)).unwrap_or_default();
        assert!(
            !bytes
                .windows(password.len())
                .any(|w| w == password.as_bytes()),
            "{f}"
        );
    }
}

/// The frequency (zero crossings) of one channel of interleaved stereo.
fn channel_freq(samples: &[i16], channel: usize, rate: f64) -> f64 {
    let ch: Vec<i16> = samples.iter().skip(channel).step_by(2).copied().collect();
    let crossings = ch.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f64 / 2.0 / (ch.len().max(1) as f64 / rate)
}

#[test]
fn a_consented_call_is_recorded_in_stereo_caller_left_agent_right() {
    let tmp = tempfile::tempdir().expect("tmp");
    let flow = "flow \"Queue\"\n  numbers 1000\n\nstep start\n  consent say \"Press 1 to agree to recording.\"\n  if consent == \"yes\"\n    recording start\n  queue \"support\", hold \"hold.wav\", max wait 2m\n    on overflow -> gone\n\nstep gone\n  hangup \"overflow\"\n";
    let mut server = Server::start(&config_with_flow(tmp.path(), "longest-idle", "", flow));
    let target = server.addr("udp");
    let _a1 = Phone::agent("1001", target);
    wait_registered(&mut server, 1);
    let mut caller = caller_dials(target, "+919800000011");
    std::thread::sleep(Duration::from_millis(1500));
    caller.say("1");
    assert!(
        server.wait_for_log("bridged to an agent", Duration::from_secs(15)),
        "{}",
        server.log.join("\n")
    );
    std::thread::sleep(Duration::from_secs(5));
    caller.say("/hangup\n");
    let call = common::finished_calls(&server).remove(0);
    let rec = call["recording_id"]
        .as_str()
        .expect("the call was recorded")
        .to_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_dhwani"))
        .args(["recordings", "decrypt", &rec, "--config"])
        .arg(server.config_path())
        .arg("--data-dir")
        .arg(server.data_dir())
        .output()
        .expect("decrypt");
    let wav = out.stdout;
    if let Ok(p) = std::env::var("DHWANI_TEST_KEEP_WAV") {
        let _ = std::fs::write(p, &wav);
    }
    assert!(
        wav.starts_with(b"RIFF"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), 2, "stereo");
    let rate = f64::from(u32::from_le_bytes([wav[24], wav[25], wav[26], wav[27]]));
    let samples: Vec<i16> = wav[44..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    // The last 3 s (of 5 s bridged): the caller's 440 Hz on the left, the
    // agent's 880 Hz on the right.
    let tail = &samples[samples.len().saturating_sub((rate * 2.0 * 3.5) as usize)
        ..samples.len().saturating_sub((rate * 2.0 * 0.5) as usize)];
    let (left, right) = (channel_freq(tail, 0, rate), channel_freq(tail, 1, rate));
    assert!((left - 440.0).abs() < 40.0, "left {left} Hz");
    let show = common::dhwani_for(
        &server,
        &["calls", "show", call["call_id"].as_str().expect("id")],
    );
    assert!((right - 880.0).abs() < 60.0, "right {right} Hz\n{show}");
}

#[test]
fn a_caller_who_hangs_up_while_the_agent_rings_leaves_the_agent_available() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(&config(tmp.path(), "longest-idle", ""));
    let target = server.addr("udp");
    let ringing = Phone::start(
        &format!("<sip:1001@{target}>;auth_pass={PASSWORD};regint=60"),
        880,
    );
    wait_registered(&mut server, 1);
    let mut caller = caller_dials(target, "+919800000012");
    assert!(
        ringing.wait_for("Incoming call", Duration::from_secs(5)),
        "{}",
        ringing.log()
    );
    assert_eq!(state_of(&server, "1001"), "ringing");
    caller.say("/hangup\n");
    // The phone's ringing call is cancelled and the agent is free.
    let end = Instant::now() + Duration::from_secs(5);
    while state_of(&server, "1001") != "available" {
        assert!(
            Instant::now() < end,
            "left as {}",
            state_of(&server, "1001")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        ringing.wait_for("session closed", Duration::from_secs(3)),
        "the phone's call was not cancelled: {}",
        ringing.log()
    );
}

/// Waits (bounded) for a server log line that holds every one of `needles`.
fn wait_for_line(server: &mut Server, needles: &[&str], within: Duration) -> bool {
    let end = Instant::now() + within;
    loop {
        if server
            .log
            .iter()
            .any(|l| needles.iter().all(|n| l.contains(n)))
        {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        // Pulls more lines in (or times out quietly).
        server.wait_for_log("\u{0}never", Duration::from_millis(200));
    }
}

#[test]
fn an_agent_transfers_the_caller_by_refer_to_the_other_agent_and_wraps_up() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(&config(tmp.path(), "longest-idle", ""));
    let target = server.addr("udp");
    let mut a1 = Phone::agent("1001", target);
    wait_registered(&mut server, 1);
    std::thread::sleep(Duration::from_millis(1200));
    let mut a2 = Phone::agent("1002", target);
    wait_registered(&mut server, 2);
    let caller = caller_dials(target, "1000");
    assert!(
        wait_for_line(
            &mut server,
            &["bridged to an agent", "agent=1001"],
            Duration::from_secs(15)
        ),
        "{}",
        server.log.join("\n")
    );
    std::thread::sleep(Duration::from_secs(2));
    a1.say(&format!("/transfer sip:1002@{target}\n"));
    assert!(
        wait_for_line(
            &mut server,
            &["agent transferred the caller", "agent=1001", "to=1002"],
            Duration::from_secs(10)
        ),
        "{}\n--- agent 1001:\n{}",
        server.log.join("\n"),
        a1.log()
    );
    assert!(
        wait_for_line(
            &mut server,
            &["bridged to an agent", "agent=1002"],
            Duration::from_secs(15)
        ),
        "{}",
        server.log.join("\n")
    );
    // The first agent's phone is off the call; it wraps up (5 s) while
    // the second talks.
    std::thread::sleep(Duration::from_secs(1));
    let states = |server: &Server| -> (String, String) {
        let list = agents_json(server);
        let s = |e: &str| {
            list.iter().find(|a| a["extension"] == e).expect("agent")["state"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        (s("1001"), s("1002"))
    };
    assert_eq!(
        states(&server),
        ("wrap-up".to_owned(), "on-call".to_owned())
    );
    std::thread::sleep(Duration::from_secs(4));
    // Caller and second agent hear each other.
    let f = caller.recent_freq();
    assert!(
        (f - 1320.0).abs() < 80.0,
        "the caller heard {f} Hz, not agent 1002's 1320 Hz"
    );
    let f = a2.recent_freq();
    assert!(
        (f - 440.0).abs() < 40.0,
        "agent 1002 heard {f} Hz, not the caller's 440 Hz"
    );
    // The first agent's wrap-up ran its 5 s from its own leg's end.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(states(&server).0, "available");
    // A transfer to nobody: accepted, then a NOTIFY with the failure
    // (baresip 1.x hangs up on a failed transfer; other phones keep the
    // call).
    a2.say(&format!("/transfer sip:4711@{target}\n"));
    assert!(
        a2.wait_for("transfer failure: 404 Not Found", Duration::from_secs(5)),
        "{}",
        a2.log()
    );
    assert!(
        wait_for_line(
            &mut server,
            &["transfer to a number refused", "no transfer_trunk"],
            Duration::from_secs(5)
        ),
        "{}",
        server.log.join("\n")
    );
    std::thread::sleep(Duration::from_millis(1500));
    let call = common::finished_calls(&server).remove(0);
    assert_eq!(call["agent"], "1002", "{call}");
    assert_eq!(call["hangup_by"], "agent", "{call}");
    let events = queue_events(&server, call["call_id"].as_str().expect("id"));
    let t = events
        .iter()
        .find(|e| e["event"] == "transferred")
        .unwrap_or_else(|| panic!("no transfer in {events:?}"));
    assert_eq!(
        (t["agent"].as_str(), t["to"].as_str()),
        (Some("1001"), Some("1002"))
    );
    assert!(
        a1.log().contains("transferring call") && a1.log().contains("terminated"),
        "the first agent's phone transferred and is off the call: {}",
        a1.log()
    );
    // The second agent wraps up now; nobody is left on a call.
    assert_eq!(states(&server).1, "wrap-up");
}

const TRANSFER_FLOW: &str = "flow \"Xfer\"\n  numbers 1000\n\nstep start\n  transfer \"sip:1001@desk\"\n    on failure -> sorry\n\nstep sorry\n  hangup \"transfer failed\"\n";

#[test]
fn a_flows_transfer_reaches_a_registered_agent_and_fails_while_it_has_no_phone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(&config_with_flow(
        tmp.path(),
        "longest-idle",
        "",
        TRANSFER_FLOW,
    ));
    let target = server.addr("udp");
    // No phone registered for 1001 yet: the transfer fails at once and
    // the flow takes `on failure`.
    let first = caller_dials(target, "+919800000011");
    let end = Instant::now() + Duration::from_secs(10);
    while common::finished_calls(&server).is_empty() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
    }
    let call = common::finished_calls(&server)
        .pop()
        .unwrap_or_else(|| panic!("the first call did not end: {}", first.log()));
    assert_eq!(call["outcome"], "hangup: transfer failed", "{call}");
    drop(first);
    // With the agent's phone registered the caller is put through.
    let a1 = Phone::agent("1001", target);
    wait_registered(&mut server, 1);
    let mut caller = caller_dials(target, "+919800000012");
    assert!(
        wait_for_line(
            &mut server,
            &["bridged to an agent", "agent=1001"],
            Duration::from_secs(10)
        ),
        "{}",
        server.log.join("\n")
    );
    std::thread::sleep(Duration::from_secs(4));
    let f = caller.recent_freq();
    assert!(
        (f - 880.0).abs() < 60.0,
        "the caller heard {f} Hz, not agent 1001's 880 Hz"
    );
    let f = a1.recent_freq();
    assert!((f - 440.0).abs() < 40.0, "the agent heard {f} Hz");
    assert_eq!(state_of(&server, "1001"), "on-call");
    caller.say("/hangup\n");
    std::thread::sleep(Duration::from_millis(1500));
    let calls = common::finished_calls(&server);
    let call = calls
        .iter()
        .find(|c| c["agent"] == "1001")
        .unwrap_or_else(|| panic!("no call with the agent: {calls:?}"));
    assert_eq!(call["outcome"], "transferred: sip:1001@desk", "{call}");
    assert_eq!(call["hangup_by"], "caller", "{call}");
    assert_eq!(state_of(&server, "1001"), "wrap-up");
}

#[test]
fn a_username_guessed_from_thirty_sources_is_locked_briefly_but_not_for_the_agents_own_phone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::start(&config(tmp.path(), "longest-idle", ""));
    let target = server.addr("udp");
    let sock = |ip: &str| {
        let s = UdpSocket::bind(format!("{ip}:0")).expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        s
    };
    let register = |s: &UdpSocket, password: &str| {
        let ch = register_raw(s, target, 1, None);
        assert!(ch.starts_with("SIP/2.0 401"), "{ch}");
        register_raw(s, target, 2, Some(&answer(&ch, target, password, 1)))
    };
    // The agent's phone registers from its own address first.
    let home = sock("127.0.0.3");
    let ok = register(&home, PASSWORD);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    // 30 wrong guesses, one from each of 30 addresses: none of them is
    // locked as a source (10 each would be), each guess is evaluated.
    for i in 0..30u8 {
        let s = sock(&format!("127.0.1.{}", 10 + i));
        let r = register(&s, &format!("guess-{i}"));
        assert!(r.starts_with("SIP/2.0 401"), "guess {i}: {r}");
    }
    // Now the username is locked for a minute: the right password from a
    // new address is refused without being evaluated...
    let fresh = sock("127.0.2.1");
    let r = register(&fresh, PASSWORD);
    assert!(r.starts_with("SIP/2.0 403"), "{r}");
    // ...but the agent's own phone still registers.
    let again = register(&home, PASSWORD);
    assert!(again.starts_with("SIP/2.0 200"), "{again}");
}

impl Phone {
    /// The first channel of what it heard, `from..to` seconds, and the rate.
    fn heard_samples(&self, from: f64, to: f64) -> (Vec<f64>, f64) {
        let Some(wav) = std::fs::read_dir(self.dir.path()).ok().and_then(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.display().to_string().ends_with("-dec.wav"))
        }) else {
            return (Vec::new(), 1.0);
        };
        let bytes = std::fs::read(wav).unwrap_or_default();
        if bytes.len() < 44 {
            return (Vec::new(), 1.0);
        }
        let channels = usize::from(u16::from_le_bytes([bytes[22], bytes[23]])).max(1);
        let rate = u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]) as usize;
        let all: Vec<f64> = bytes[44..]
            .chunks_exact(2 * channels)
            .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])))
            .collect();
        let (a, b) = ((from * rate as f64) as usize, (to * rate as f64) as usize);
        (
            all[a.min(all.len())..b.min(all.len())].to_vec(),
            rate as f64,
        )
    }

    /// The share of what it heard in the last `secs` seconds (but the last
    /// half second) that is a tone of `freq` Hz (Goertzel): about 1 for the
    /// tone alone, 0.5 for one of two equal tones, near 0 when absent.
    fn tone_share(&self, secs: f64, freq: f64) -> f64 {
        let end = self.heard_secs() - 0.5;
        let (x, rate) = self.heard_samples(end - secs, end);
        let n = x.len() as f64;
        let energy: f64 = x.iter().map(|s| s * s).sum();
        if n == 0.0 || energy == 0.0 {
            return 0.0;
        }
        let w = 2.0 * std::f64::consts::PI * freq / rate;
        let (mut s1, mut s2) = (0.0, 0.0);
        for v in &x {
            let s0 = v + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
        2.0 * power / (n * energy)
    }
}

/// Issue 12, point 7: a supervisor's phone listens to, whispers to and
/// barges into agent 1001's call; each party hears exactly what its mode
/// says (tones: caller 440 Hz, agent 880 Hz, supervisor 2000 Hz).
#[test]
fn a_supervisor_listens_whispers_and_barges_and_each_party_hears_the_right_legs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut cfg = config(tmp.path(), "longest-idle", "");
    cfg = cfg.replace("members = [\"1001\", \"1002\"]", "members = [\"1001\"]");
    cfg.push_str(&format!(
        "[[tenants.agents]]\nextension = \"1003\"\nname = \"Supervisor\"\nsupervisor = true\n{}",
        ha1_lines("1003")
    ));
    let mut server = Server::start(&cfg);
    let target = server.addr("udp");
    let a1 = Phone::agent("1001", target);
    wait_registered(&mut server, 1);
    let caller = caller_dials(target, "+919800000031");
    assert!(
        wait_for_line(
            &mut server,
            &["bridged to an agent", "agent=1001"],
            Duration::from_secs(15)
        ),
        "{}",
        server.log.join("\n")
    );
    let supervisor = |code: &str| {
        let mut p = Phone::start(
            &format!("<sip:1003@{target}>;auth_pass={PASSWORD};regint=0"),
            2000,
        );
        std::thread::sleep(Duration::from_millis(300));
        p.say(&format!("/dial sip:*{code}@{target}\n"));
        assert!(
            p.wait_for("Call established", Duration::from_secs(10)),
            "{}",
            p.log()
        );
        p
    };
    let hears = |p: &Phone, who: &str, freq: f64, yes: bool| {
        let share = p.tone_share(2.5, freq);
        eprintln!("{who} at {freq} Hz: share {share:.3}");
        if yes {
            assert!(
                share > 0.15,
                "{who} does not hear {freq} Hz (share {share:.3})"
            );
        } else {
            assert!(share < 0.03, "{who} hears {freq} Hz (share {share:.3})");
        }
    };

    // An agent without the role is refused.
    let mut a2 = Phone::start(
        &format!("<sip:1002@{target}>;auth_pass={PASSWORD};regint=0"),
        1320,
    );
    std::thread::sleep(Duration::from_millis(300));
    a2.say(&format!("/dial sip:*311001@{target}\n"));
    assert!(a2.wait_for("403", Duration::from_secs(10)), "{}", a2.log());
    assert!(server.wait_for_log("supervise_refused", Duration::from_secs(2)));

    // Listen: the supervisor hears both; neither hears the supervisor.
    let mut s = supervisor("311001");
    assert!(
        wait_for_line(
            &mut server,
            &["supervisor joined", "mode=\"listen\""],
            Duration::from_secs(5)
        ) || wait_for_line(
            &mut server,
            &["supervisor joined", "mode=listen"],
            Duration::from_secs(1)
        ),
        "{}",
        server.log.join("\n")
    );
    std::thread::sleep(Duration::from_secs(4));
    hears(&s, "the listening supervisor", 440.0, true);
    hears(&s, "the listening supervisor", 880.0, true);
    hears(&a1, "the agent", 2000.0, false);
    hears(&caller, "the caller", 2000.0, false);
    s.say("/hangup\n");
    assert!(server.wait_for_log("supervisor left", Duration::from_secs(5)));
    drop(s);

    // Whisper: the agent hears the supervisor, the caller does not.
    let mut s = supervisor("321001");
    std::thread::sleep(Duration::from_secs(4));
    hears(&s, "the whispering supervisor", 440.0, true);
    hears(&s, "the whispering supervisor", 880.0, true);
    hears(&a1, "the agent", 2000.0, true);
    hears(&a1, "the agent", 440.0, true);
    hears(&caller, "the caller", 2000.0, false);
    hears(&caller, "the caller", 880.0, true);
    s.say("/hangup\n");
    std::thread::sleep(Duration::from_secs(1));
    drop(s);

    // Barge: everyone hears everyone.
    let s = supervisor("331001");
    std::thread::sleep(Duration::from_secs(4));
    hears(&caller, "the caller", 2000.0, true);
    hears(&caller, "the caller", 880.0, true);
    hears(&a1, "the agent", 2000.0, true);
    hears(&s, "the barging supervisor", 440.0, true);

    // The caller hangs up: the supervisor's call is ended by us.
    let mut caller = caller;
    caller.say("/hangup\n");
    assert!(
        s.wait_for("terminated", Duration::from_secs(5))
            || s.wait_for("closed", Duration::from_secs(1)),
        "{}",
        s.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    let calls = common::finished_calls(&server);
    let call = calls
        .iter()
        .find(|c| c["caller"] == "+919800000031")
        .expect("the caller's call");
    let sup: Vec<String> =
        timeline_events(&server, call["call_id"].as_str().expect("id"), "supervisor")
            .iter()
            .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
            .collect();
    assert_eq!(sup, ["listen", "left", "whisper", "left", "barge", "left"]);
    let supervised: Vec<&serde_json::Value> =
        calls.iter().filter(|c| c["caller"] == "1003").collect();
    assert_eq!(supervised.len(), 3, "{calls:?}");
    assert!(
        supervised
            .iter()
            .any(|c| c["outcome"] == "supervised: barge 1001"),
        "{supervised:?}"
    );
}

/// Gives the tenant of `cfg` the outbound trunk `carrier` on
/// `127.0.0.1:PORT` (digest user `dhwani` with `password`), allowed to dial
/// numbers starting `+9198`.
fn with_trunk(cfg: &mut String, port: u16, password: &str) {
    *cfg = cfg.replace(
        "numbers = [\"1000\"]\n",
        "numbers = [\"1000\"]\ntransfer_trunk = \"carrier\"\ntransfer_allow = [\"+9198\"]\n",
    );
    cfg.push_str(&format!(
        "\n[[outbound_trunks]]\nname = \"carrier\"\naddress = \"127.0.0.1:{port}\"\nusername = \"dhwani\"\npassword = \"{password}\"\n"
    ));
}

/// The SIPp trunk of `tests/sipp/trunk-401.xml` on `port`, for one call,
/// echoing RTP; its result when it ends.
fn sipp_trunk(target: SocketAddr, port: u16) -> std::thread::JoinHandle<common::SippRun> {
    sipp_far_end("tests/sipp/trunk-401.xml", target, port)
}

/// SIPp running `scenario` (a far end our calls out reach) on `port`, for
/// one call, echoing RTP; its result when it ends.
fn sipp_far_end(
    scenario: &str,
    target: SocketAddr,
    port: u16,
) -> std::thread::JoinHandle<common::SippRun> {
    let scenario = common::repo_path(scenario);
    std::thread::spawn(move || {
        common::run_sipp(
            target,
            &[
                "-sf",
                &scenario.display().to_string(),
                "-p",
                &port.to_string(),
                "-rtp_echo",
                "-m",
                "1",
            ],
            Duration::from_secs(40),
        )
    })
}

/// The tone of a caller whose audio a far end echoes: not the hold
/// music's 440 Hz (heard while the far end rings), nor an agent's.
const ECHO_TONE: u32 = 660;
const ECHO_TONE_HZ: f64 = 660.0;

const TRUNK_FLOW: &str = "flow \"Out\"\n  numbers 1000\n\nstep start\n  transfer \"+919812345678\"\n    on failure -> sorry\n\nstep sorry\n  hangup \"transfer failed\"\n";

/// A flow's transfer to a number through an outbound trunk (SIPp, which
/// challenges with 401 and checks the digest) configured with `password`:
/// the caller's CDR, SIPp's result, what the caller heard, the server's log.
fn transfer_through_trunk(password: &str) -> (serde_json::Value, common::SippRun, f64, String) {
    let tmp = tempfile::tempdir().expect("tmp");
    let trunk_port = common::free_udp_port();
    let mut cfg = config_with_flow(tmp.path(), "longest-idle", "", TRUNK_FLOW);
    with_trunk(&mut cfg, trunk_port, password);
    let server = Server::start(&cfg);
    let target = server.addr("udp");
    let trunk = sipp_trunk(target, trunk_port);
    std::thread::sleep(Duration::from_millis(500));
    // Not 440 Hz: that is the hold music's tone, which the caller hears
    // while the trunk rings.
    let mut caller = caller_dials_tone(target, "+919800000040", ECHO_TONE);
    std::thread::sleep(Duration::from_secs(5));
    let c = caller.heard_secs();
    let heard = caller.heard_freq(c - 2.5, c - 0.5);
    caller.say("/hangup\n");
    let run = trunk.join().expect("sipp");
    std::thread::sleep(Duration::from_millis(800));
    let call = common::finished_calls(&server)
        .into_iter()
        .find(|c| c["caller"] == "+919800000040")
        .unwrap_or_else(|| panic!("no CDR:\n{}", server.log.join("\n")));
    let shown = common::dhwani_for(
        &server,
        &["calls", "show", call["call_id"].as_str().expect("id")],
    );
    let log = server.log.join("\n");
    eprintln!("{shown}\n{log}");
    (call, run, heard, log)
}

/// Issue 12, point 6: `transfer "NUMBER"` goes out through the tenant's
/// outbound trunk, answers its 401 with the configured digest, and bridges
/// the caller to the far end (SIPp echoes the caller's RTP: the caller
/// hears its own 660 Hz back through both legs).
#[test]
fn a_flows_transfer_to_a_number_goes_out_through_the_trunk_answering_its_401() {
    let (call, run, heard, log) = transfer_through_trunk("trunk-secret-1");
    assert_eq!(run.successful, 1, "{}", run.output);
    assert_eq!(call["outcome"], "transferred: +919812345678", "{call}");
    assert_eq!(call["agent"], "+919812345678", "{call}");
    assert!(
        !log.contains("9812345678"),
        "the log names the number: {log}"
    );
    assert!(
        (heard - ECHO_TONE_HZ).abs() < 40.0,
        "the caller heard {heard} Hz, not its own {ECHO_TONE_HZ} Hz echoed by the far end"
    );
    // With the wrong password the trunk refuses (403): the flow's
    // `on failure`, and the caller heard no echo.
    let (call, run, _, _) = transfer_through_trunk("wrong-secret");
    assert_eq!(run.failed + run.successful, 1, "{}", run.output);
    assert_eq!(call["outcome"], "hangup: transfer failed", "{call}");
}

/// An agent's blind transfer (baresip's REFER) to a number: the tenant's
/// trunk (SIPp: 401, digest checked, `password` configured) is dialled.
/// Returns the server (still running), the caller, the two agents, and
/// SIPp's result once it ended.
fn refer_to_number(password: &str) -> (Server, Phone, Phone, Phone, common::SippRun) {
    let tmp = tempfile::tempdir().expect("tmp");
    let trunk_port = common::free_udp_port();
    let mut cfg = config(tmp.path(), "longest-idle", "");
    with_trunk(&mut cfg, trunk_port, password);
    let mut server = Server::start(&cfg);
    // The config's flows live in `tmp`: keep it as long as the server.
    std::mem::forget(tmp);
    let target = server.addr("udp");
    let a1 = Phone::agent("1001", target);
    wait_registered(&mut server, 1);
    std::thread::sleep(Duration::from_millis(1200));
    let a2 = Phone::agent("1002", target);
    wait_registered(&mut server, 2);
    let trunk = sipp_trunk(target, trunk_port);
    let mut caller = caller_dials_tone(target, "+919800000041", ECHO_TONE);
    assert!(
        wait_for_line(
            &mut server,
            &["bridged to an agent", "agent=1001"],
            Duration::from_secs(15)
        ),
        "{}",
        server.log.join("\n")
    );
    std::thread::sleep(Duration::from_secs(1));
    let mut a1 = a1;
    a1.say(&format!("/transfer sip:+919812345678@{target}\n"));
    assert!(
        wait_for_line(
            &mut server,
            &["agent transferred the caller", "kind=number"],
            Duration::from_secs(10)
        ),
        "{}\n--- agent 1001:\n{}",
        server.log.join("\n"),
        a1.log()
    );
    std::thread::sleep(Duration::from_secs(5));
    if password == "trunk-secret-1" {
        // Bridged to the far end, which echoes: the caller hears its own
        // tone; then the caller hangs up and SIPp gets our BYE.
        let c = caller.heard_secs();
        let heard = caller.heard_freq(c - 2.5, c - 0.5);
        assert!(
            (heard - ECHO_TONE_HZ).abs() < 40.0,
            "the caller heard {heard} Hz, not its own {ECHO_TONE_HZ} Hz echoed by the number\n{}",
            server.log.join("\n")
        );
        caller.say("/hangup\n");
    }
    let run = trunk.join().expect("sipp");
    (server, caller, a1, a2, run)
}

/// Issue 12, point 6: an agent's REFER to a number goes out through the
/// tenant's trunk; the agent wraps up; the CDR names the number.
#[test]
fn an_agents_refer_to_a_number_goes_out_through_the_trunk() {
    let (server, _caller, a1, _a2, run) = refer_to_number("trunk-secret-1");
    assert_eq!(run.successful, 1, "{}", run.output);
    assert!(
        a1.log().contains("transferring call"),
        "the agent's phone was told the transfer went through: {}",
        a1.log()
    );
    std::thread::sleep(Duration::from_millis(800));
    let call = common::finished_calls(&server)
        .into_iter()
        .find(|c| c["caller"] == "+919800000041")
        .unwrap_or_else(|| panic!("no CDR:\n{}", server.log.join("\n")));
    assert_eq!(call["agent"], "+919812345678", "{call}");
    assert_eq!(call["queue"], "support", "{call}");
    let events = queue_events(&server, call["call_id"].as_str().expect("id"));
    assert!(
        events.iter().any(|e| e["event"] == "transferred"
            && e["agent"] == "1001"
            && e["to"] == "+919812345678"
            && e["to_kind"] == "number"),
        "{events:?}"
    );
    // The log says a number was dialled, not which.
    let log = server.log.join("\n");
    assert!(!log.contains("9812345678"), "{log}");
}

/// The trunk refuses the number (wrong digest: SIPp's 403): the caller is
/// not lost but waits in its queue again, where agent 1002 answers it.
#[test]
fn a_caller_whose_transfer_to_a_number_fails_waits_in_the_queue_again_for_the_next_agent() {
    let (mut server, caller, _a1, a2, run) = refer_to_number("wrong-secret");
    assert_eq!(run.failed + run.successful, 1, "{}", run.output);
    assert!(
        wait_for_line(
            &mut server,
            &["bridged to an agent", "agent=1002"],
            Duration::from_secs(15)
        ),
        "{}",
        server.log.join("\n")
    );
    std::thread::sleep(Duration::from_secs(4));
    let f = caller.recent_freq();
    assert!(
        (f - 1320.0).abs() < 80.0,
        "the caller heard {f} Hz, not agent 1002's 1320 Hz"
    );
    let f = a2.recent_freq();
    assert!(
        (f - ECHO_TONE_HZ).abs() < 40.0,
        "agent 1002 heard {f} Hz, not the caller's {ECHO_TONE_HZ} Hz"
    );
    let mut caller = caller;
    caller.say("/hangup\n");
    std::thread::sleep(Duration::from_millis(1500));
    let call = common::finished_calls(&server)
        .into_iter()
        .find(|c| c["caller"] == "+919800000041")
        .unwrap_or_else(|| panic!("no CDR:\n{}", server.log.join("\n")));
    assert_eq!(call["agent"], "1002", "{call}");
    let events = queue_events(&server, call["call_id"].as_str().expect("id"));
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    let t = names.iter().position(|e| *e == "transferred");
    let f = names.iter().position(|e| *e == "transfer failed");
    assert!(
        t.is_some() && f.is_some() && t < f,
        "transferred, then transfer failed: {names:?}"
    );
}

/// Issue 12, point 9: two nodes share one PostgreSQL. Agent 1001 has a
/// phone registered at each. While node A has 1001 on a call, node B does
/// not ring it for its own caller (A's claim in the store); when A dies
/// (SIGKILL) mid-bridge, A's claim lapses with its lease and B's waiting
/// caller reaches 1001's phone at B.
#[test]
fn two_nodes_on_one_database_never_ring_an_agent_the_other_holds_until_its_lease_runs_out() {
    let pg = common::pg::TempPostgres::start();
    let node = |name: &str, dir: &Path| {
        let cfg = config(dir, "longest-idle", "").replace(
            "[registrar]\n",
            &format!("[registrar]\nnode = \"{name}\"\nclaim_lease_secs = 3\n"),
        );
        format!("[store]\nurl = \"{}\"\n\n{cfg}", pg.url)
    };
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let mut a = Server::start(&node("a", dir_a.path()));
    let mut b = Server::start(&node("b", dir_b.path()));
    let (addr_a, addr_b) = (a.addr("udp"), b.addr("udp"));
    let phone_a = Phone::agent("1001", addr_a);
    let phone_b = Phone::agent("1001", addr_b);
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let phones = agents_json(&a)
            .iter()
            .find(|x| x["extension"] == "1001")
            .and_then(|x| x["phones"].as_array().map(Vec::len))
            .unwrap_or(0);
        if phones == 2 {
            break;
        }
        assert!(Instant::now() < end, "{:?}", agents_json(&a));
        std::thread::sleep(Duration::from_millis(200));
    }
    let _x = caller_dials(addr_a, "+919800000051");
    assert!(
        wait_for_line(
            &mut a,
            &["bridged to an agent", "agent=1001"],
            Duration::from_secs(15)
        ),
        "{}",
        a.log.join("\n")
    );
    assert!(phone_a.log().contains("Call established"));
    let y = caller_dials(addr_b, "+919800000052");
    // Node B's caller waits: 1001 is A's.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !b.log.iter().any(|l| l.contains("bridged to an agent")),
        "{}",
        b.log.join("\n")
    );
    assert!(
        !phone_b.log().contains("Incoming call") && !phone_b.log().contains("Call established"),
        "node B rang the agent node A holds: {}",
        phone_b.log()
    );
    let claims = common::dhwani_for(&b, &["agents", "list", "--json"]);
    assert!(claims.contains("\"held_by\":\"a\""), "{claims}");
    // A dies mid-bridge. Its claim lapses after its 3 s lease; B rings
    // the agent's phone at B, which answers; Y hears 1001's 880 Hz.
    let killed = Instant::now();
    a.kill9();
    assert!(
        wait_for_line(
            &mut b,
            &["bridged to an agent", "agent=1001"],
            Duration::from_secs(15)
        ),
        "{}",
        b.log.join("\n")
    );
    let after = killed.elapsed();
    assert!(
        after >= Duration::from_secs(2),
        "B took the agent {after:?} after A died: before A's lease could lapse"
    );
    std::thread::sleep(Duration::from_secs(3));
    let f = y.recent_freq();
    assert!(
        (f - 880.0).abs() < 60.0,
        "Y heard {f} Hz, not 1001's 880 Hz"
    );
    drop(phone_a);
}

/// Issue 12: calls routed between nodes. Agent 1001's phone registers
/// through a Kamailio proxy that hands REGISTERs to node A (with a Path
/// carrying the phone's source); a caller dials node B, which shares A's
/// PostgreSQL. B reads A's binding from the store and rings the phone
/// through the proxy (the Path as Route): the caller and 1001 hear each
/// other, the phone's hang-up reaches B through the proxy's
/// Record-Route, and B's CDR names 1001.
#[test]
fn a_caller_at_one_node_is_answered_by_an_agent_registered_at_another_through_a_proxy() {
    let pg = common::pg::TempPostgres::start();
    let node = |name: &str, dir: &Path| {
        let cfg = config(dir, "longest-idle", "").replace(
            "[registrar]\n",
            &format!("[registrar]\nnode = \"{name}\"\nclaim_lease_secs = 3\n"),
        );
        format!("[store]\nurl = \"{}\"\n\n{cfg}", pg.url)
    };
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let a = Server::start(&node("a", dir_a.path()));
    let mut b = Server::start(&node("b", dir_b.path()));
    let (addr_a, addr_b) = (a.addr("udp"), b.addr("udp"));
    let proxy = common::kamailio::Kamailio::start(addr_a, addr_b);
    let phone = Phone::start_traced(
        &format!(
            "<sip:1001@{}>;auth_pass={PASSWORD};regint=60;answermode=auto",
            proxy.addr
        ),
        880,
        true,
    );
    // Registered at A, through the proxy: the stored binding's source is
    // the proxy and its Path names it.
    let end = Instant::now() + Duration::from_secs(15);
    let phones = loop {
        let phones = agents_json(&a)
            .iter()
            .find(|x| x["extension"] == "1001")
            .and_then(|x| x["phones"].as_array().cloned())
            .unwrap_or_default();
        if !phones.is_empty() {
            break phones;
        }
        assert!(
            Instant::now() < end,
            "1001 did not register through the proxy:\n{}\n{}\n{}",
            phone.log(),
            proxy.log(),
            a.log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(phones.len(), 1, "{phones:?}");
    assert_eq!(phones[0]["node"], "a", "{phones:?}");
    assert_eq!(phones[0]["source"], proxy.addr.to_string(), "{phones:?}");
    assert!(
        phones[0]["path"][0]
            .as_str()
            .is_some_and(|p| p.contains(&proxy.addr.to_string()) && p.contains("received=")),
        "{phones:?}"
    );
    // B learns of the binding within its 2 s read; a caller at B.
    std::thread::sleep(Duration::from_secs(3));
    let caller = caller_dials_tone(addr_b, "+919800000061", 660);
    assert!(
        wait_for_line(
            &mut b,
            &["bridged to an agent", "agent=1001"],
            Duration::from_secs(15)
        ),
        "{}\n{}\n{}",
        b.log.join("\n"),
        proxy.log(),
        phone.log()
    );
    assert!(
        phone.wait_for("Call established", Duration::from_secs(5)),
        "{}",
        phone.log()
    );
    // The phone got B's INVITE from the proxy (its Via and Record-Route
    // on top), not straight from B.
    let log = phone.log();
    let invite = log
        .split("INVITE sip:")
        .nth(1)
        .unwrap_or_else(|| panic!("no INVITE in the phone's trace:\n{log}"));
    let invite = &invite[..invite
        .find("\r\n\r\n")
        .or(invite.find("\n\n"))
        .unwrap_or(invite.len())];
    let top_via = invite
        .lines()
        .find(|l| l.starts_with("Via:") || l.starts_with("v:"))
        .unwrap_or_default();
    assert!(
        top_via.contains(&proxy.addr.to_string()),
        "the INVITE did not come through the proxy: {invite}"
    );
    assert!(
        invite.contains(&format!("Record-Route: <sip:{};lr", proxy.addr)),
        "{invite}"
    );
    std::thread::sleep(Duration::from_secs(4));
    let f = caller.recent_freq();
    assert!(
        (f - 880.0).abs() < 60.0,
        "the caller at B heard {f} Hz, not 1001's 880 Hz"
    );
    let f = phone.recent_freq();
    assert!(
        (f - 660.0).abs() < 50.0,
        "1001 heard {f} Hz, not the caller's 660 Hz"
    );
    // Node A never took a call.
    assert!(
        !a.log.iter().any(|l| l.contains("bridged to an agent")),
        "{}",
        a.log.join("\n")
    );
    // The agent hangs up: its BYE follows the Record-Route to B.
    let mut phone = phone;
    phone.say("/hangup\n");
    assert!(
        caller.wait_for("terminated", Duration::from_secs(10)),
        "the caller's call did not end:\n{}\n{}",
        caller.log(),
        proxy.log()
    );
    let call = common::finished_calls(&b)
        .into_iter()
        .find(|c| c["caller"] == "+919800000061")
        .unwrap_or_else(|| panic!("no CDR at B:\n{}", b.log.join("\n")));
    assert_eq!(call["agent"], "1001", "{call}");
    assert_eq!(call["hangup_by"], "agent", "{call}");
    // The phone unregisters (at A, through the proxy): B stops counting
    // on it once its wrap-up is over.
    phone.say("/quit\n");
    assert!(
        wait_for_line(
            &mut b,
            &["agent state", "extension=1001", "to=\"unreachable\""],
            Duration::from_secs(15)
        ),
        "{}",
        b.log.join("\n")
    );
}

/// An agent dials another agent's extension from its phone: the call is
/// authenticated with the agent's digest, the other agent is rung and
/// answers, and each hears the other; the CDR names both.
#[test]
fn an_agent_calls_another_agents_extension_and_they_hear_each_other() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(&config(tmp.path(), "longest-idle", ""));
    let target = server.addr("udp");
    let mut a1 = Phone::agent("1001", target);
    let a2 = Phone::agent("1002", target);
    wait_registered(&mut server, 2);
    a1.say(&format!("/dial sip:1002@{target}\n"));
    assert!(
        a1.wait_for("Call established", Duration::from_secs(10)),
        "{}\n{}",
        a1.log(),
        server.log.join("\n")
    );
    assert!(
        wait_for_line(
            &mut server,
            &["bridged to an agent", "agent=1002"],
            Duration::from_secs(10)
        ),
        "{}",
        server.log.join("\n")
    );
    assert_eq!(state_of(&server, "1002"), "on-call");
    std::thread::sleep(Duration::from_secs(4));
    let f = a1.recent_freq();
    assert!(
        (f - 1320.0).abs() < 80.0,
        "1001 heard {f} Hz, not 1002's 1320 Hz"
    );
    let f = a2.recent_freq();
    assert!(
        (f - 880.0).abs() < 60.0,
        "1002 heard {f} Hz, not 1001's 880 Hz"
    );
    a1.say("/hangup\n");
    std::thread::sleep(Duration::from_millis(1500));
    let call = common::finished_calls(&server).remove(0);
    assert_eq!(
        (
            call["caller"].as_str(),
            call["called"].as_str(),
            call["agent"].as_str()
        ),
        (Some("1001"), Some("1002"), Some("1002")),
        "{call}"
    );
    assert_eq!(state_of(&server, "1002"), "wrap-up");
}

/// Agent 1001's phone for the attended transfer, SIP by hand over UDP:
/// baresip 1.x has no attended transfer. It keeps every message it got
/// that no step has taken yet.
struct HandPhone {
    sock: UdpSocket,
    server: SocketAddr,
    media: UdpSocket,
    backlog: Vec<String>,
    seen: Vec<String>,
}

impl HandPhone {
    fn new(server: SocketAddr) -> HandPhone {
        let (sock, media) = common::rawsip::sockets();
        HandPhone {
            sock,
            server,
            media,
            backlog: vec![],
            seen: vec![],
        }
    }

    fn local(&self) -> SocketAddr {
        self.sock.local_addr().expect("local")
    }

    fn send(&self, msg: &str) {
        self.sock
            .send_to(msg.as_bytes(), self.server)
            .expect("send");
    }

    /// The first message (kept or new) whose first line contains `first`
    /// and, if given, whose CSeq line contains `cseq`.
    fn take(&mut self, first: &str, cseq: Option<&str>, within: Duration) -> String {
        let wanted = |m: &str| {
            m.lines().next().is_some_and(|l| l.contains(first))
                && cseq.is_none_or(|c| {
                    common::rawsip::header(m, "CSeq").is_some_and(|v| v.contains(c))
                })
        };
        if let Some(i) = self.backlog.iter().position(|m| wanted(m)) {
            return self.backlog.remove(i);
        }
        let end = Instant::now() + within;
        let mut buf = [0u8; 8192];
        while Instant::now() < end {
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(m.clone());
                if wanted(&m) {
                    return m;
                }
                self.backlog.push(m);
            }
        }
        panic!(
            "no {first} {cseq:?} within {within:?}; got:\n{}",
            self.seen.join("\n----\n")
        );
    }

    /// A 200 OK to `req` (with `extra` headers and `body`).
    fn ok(&self, req: &str, to_tag: Option<&str>, extra: &str, body: &str) {
        let h = |n: &str| common::rawsip::header(req, n).expect(n).to_owned();
        let to = match to_tag {
            Some(t) if !h("To").contains("tag=") => format!("{};tag={t}", h("To")),
            _ => h("To"),
        };
        let vias: String = req
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("via:"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        self.send(&format!(
            "SIP/2.0 200 OK\r\n{vias}From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            h("From"),
            h("Call-ID"),
            h("CSeq"),
            body.len()
        ));
    }

    fn sdp(&self) -> String {
        let m = self.media.local_addr().expect("media");
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            m.port()
        )
    }
}

fn digest_for(challenge: &str, method: &str, uri: &str, nc: u32) -> String {
    let line = common::rawsip::header(challenge, "WWW-Authenticate")
        .expect("a challenge")
        .to_owned();
    let ch = sip::header::AuthParams::parse(&bytes::Bytes::from(line)).expect("challenge");
    sip::auth::authorization(&ch, method, uri, "1001", PASSWORD, "hand", nc).expect("authorization")
}

/// An attended transfer's start: agent 1001 (by hand) has the caller
/// (baresip, 440 Hz) and has called agent 1002 (baresip, 1320 Hz) from its
/// phone; both calls are bridged.
struct Consulting {
    server: Server,
    a: HandPhone,
    b: Phone,
    caller: Phone,
    /// Our INVITE of 1001's leg in the caller's call.
    invite: String,
    /// Our tag in the consultation dialog.
    cons_to: String,
    /// The consultation's 200 OK.
    cons_ok: String,
    target: SocketAddr,
    local: SocketAddr,
    /// Keeps the config's flows as long as the server.
    _tmp: tempfile::TempDir,
}

fn consulting(caller_number: &str) -> Consulting {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut server = Server::start(&config(tmp.path(), "longest-idle", ""));
    let target = server.addr("udp");
    let mut a = HandPhone::new(target);
    let local = a.local();
    // REGISTER with digest.
    let reg = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKreg{cseq}\r\nFrom: <sip:1001@{target}>;tag=reg\r\nTo: <sip:1001@{target}>\r\nCall-ID: reg-hand@test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:1001@{local}>\r\nExpires: 300\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    };
    a.send(&reg(1, ""));
    let challenge = a.take("401", Some("REGISTER"), Duration::from_secs(5));
    let auth = digest_for(&challenge, "REGISTER", &format!("sip:{target}"), 1);
    a.send(&reg(2, &format!("Authorization: {auth}\r\n")));
    a.take("200", Some("REGISTER"), Duration::from_secs(5));
    wait_registered(&mut server, 1);
    std::thread::sleep(Duration::from_millis(1200));
    let b = Phone::agent("1002", target);
    wait_registered(&mut server, 2);
    // The caller queues; 1001 (idle longest) is rung and answers.
    let caller = caller_dials(target, caller_number);
    let invite = a.take("INVITE", None, Duration::from_secs(10));
    a.ok(
        &invite,
        Some("a1"),
        &format!("Contact: <sip:1001@{local}>\r\nContent-Type: application/sdp\r\n"),
        &a.sdp(),
    );
    a.take("ACK", None, Duration::from_secs(5));
    assert!(
        wait_for_line(
            &mut server,
            &["bridged to an agent", "agent=1001"],
            Duration::from_secs(10)
        ),
        "{}",
        server.log.join("\n")
    );
    // 1001 consults 1002: its own call to 1002 (digest, like a trunk).
    let consult = |cseq: u32, auth: &str, sdp: &str| {
        format!(
            "INVITE sip:1002@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKcons{cseq}\r\nFrom: <sip:1001@{target}>;tag=cons-from\r\nTo: <sip:1002@{target}>\r\nCall-ID: consult-1@hand\r\nCSeq: {cseq} INVITE\r\nContact: <sip:1001@{local}>\r\nMax-Forwards: 70\r\n{auth}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    };
    let sdp = a.sdp();
    a.send(&consult(1, "", &sdp));
    let challenge = a.take("401", Some("INVITE"), Duration::from_secs(5));
    a.send(&format!(
        "ACK sip:1002@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKcons1\r\nFrom: <sip:1001@{target}>;tag=cons-from\r\nTo: {}\r\nCall-ID: consult-1@hand\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        common::rawsip::header(&challenge, "To").expect("To")
    ));
    let auth = digest_for(&challenge, "INVITE", &format!("sip:1002@{target}"), 1);
    a.send(&consult(2, &format!("Authorization: {auth}\r\n"), &sdp));
    let ok = a.take("200", Some("2 INVITE"), Duration::from_secs(15));
    let cons_to = common::rawsip::to_tag(&ok);
    a.send(&format!(
        "ACK sip:dhwani@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKconsack\r\nFrom: <sip:1001@{target}>;tag=cons-from\r\nTo: <sip:1002@{target}>;tag={cons_to}\r\nCall-ID: consult-1@hand\r\nCSeq: 2 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(
        wait_for_line(
            &mut server,
            &["bridged to an agent", "agent=1002"],
            Duration::from_secs(10)
        ),
        "{}",
        server.log.join("\n")
    );
    assert!(b.log().contains("Call established"), "{}", b.log());
    Consulting {
        server,
        a,
        b,
        caller,
        invite,
        cons_to,
        cons_ok: ok,
        target,
        local,
        _tmp: tmp,
    }
}

/// After the REFER: the caller and 1002 hear each other, 1001 wraps up,
/// the caller's CDR names 1002 and the transfer as attended.
fn check_attended(c: Consulting, caller_number: &str) {
    let Consulting {
        mut server,
        b,
        caller,
        ..
    } = c;
    assert!(
        wait_for_line(
            &mut server,
            &["agent transferred the caller", "kind=attended"],
            Duration::from_secs(5)
        ),
        "{}",
        server.log.join("\n")
    );
    // Within its 5 s wrap-up (the transfer was at most 2.5 s ago).
    assert_eq!(state_of(&server, "1001"), "wrap-up");
    std::thread::sleep(Duration::from_secs(4));
    let f = caller.recent_freq();
    assert!(
        (f - 1320.0).abs() < 80.0,
        "the caller heard {f} Hz, not agent 1002's 1320 Hz\n{}",
        server.log.join("\n")
    );
    let f = b.recent_freq();
    assert!(
        (f - 440.0).abs() < 40.0,
        "1002 heard {f} Hz, not the caller's 440 Hz"
    );
    assert_eq!(state_of(&server, "1002"), "on-call");
    let mut caller = caller;
    caller.say("/hangup\n");
    std::thread::sleep(Duration::from_millis(1500));
    let calls = common::finished_calls(&server);
    let call = calls
        .iter()
        .find(|c| c["caller"] == caller_number)
        .unwrap_or_else(|| panic!("{calls:?}"));
    assert_eq!(call["agent"], "1002", "{call}");
    assert_eq!(call["queue"], "support", "{call}");
    let events = queue_events(&server, call["call_id"].as_str().expect("id"));
    assert!(
        events.iter().any(|e| e["event"] == "transferred"
            && e["to_kind"] == "attended"
            && e["to"] == "1002"),
        "{events:?}"
    );
    let consult = calls
        .iter()
        .find(|c| c["caller"] == "1001")
        .unwrap_or_else(|| panic!("no CDR of the consultation: {calls:?}"));
    assert_eq!(consult["called"], "1002", "{consult}");
    assert_eq!(state_of(&server, "1002"), "wrap-up");
}

/// Issue 12, point 6: an attended transfer. Agent 1001 (by hand) has the
/// caller (baresip, 440 Hz), calls agent 1002 (baresip, 1320 Hz) from its
/// phone, then REFERs the caller to 1002 with `Replaces` naming that
/// consultation call (the message of RFC 5589 §7.1, our dialogs' values
/// in it). The caller and 1002 then hear each other, 1001's two calls
/// end, 1001 wraps up, and the caller's CDR names 1002.
#[test]
fn an_attended_transfer_by_refer_with_replaces_hands_the_caller_to_the_consulted_agent() {
    let mut c = consulting("+919800000061");
    let (target, local) = (c.target, c.local);
    let (invite, cons_to) = (c.invite.clone(), c.cons_to.clone());
    let a = &mut c.a;
    // The REFER of RFC 5589 §7.1 (in the dialog with the caller), with
    // Replaces naming the consultation dialog.
    let h = |n: &str| common::rawsip::header(&invite, n).expect(n).to_owned();
    let server_contact = h("Contact");
    let refer_uri = server_contact
        .trim_start_matches('<')
        .split('>')
        .next()
        .expect("uri")
        .to_owned();
    let refer = format!(
        "REFER {refer_uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKnashds9\r\nMax-Forwards: 70\r\nTo: {}\r\nFrom: {};tag=a1\r\nCall-ID: {}\r\nCSeq: 1 REFER\r\nRefer-To: <sip:1002@{target}?Replaces=consult-1%40hand%3Bto-tag%3D{cons_to}%3Bfrom-tag%3Dcons-from>\r\nReferred-By: <sip:1001@{target}>\r\nContact: <sip:1001@{local}>\r\nContent-Length: 0\r\n\r\n",
        h("From"),
        h("To"),
        h("Call-ID"),
    );
    a.send(&refer);
    a.take("202", Some("REFER"), Duration::from_secs(5));
    let notify = a.take("NOTIFY", None, Duration::from_secs(5));
    assert!(notify.contains("SIP/2.0 200 OK"), "{notify}");
    a.ok(&notify, None, "", "");
    // The phone hangs up the caller's leg, as phones do after a transfer.
    a.send(&format!(
        "BYE {refer_uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbye1\r\nMax-Forwards: 70\r\nTo: {}\r\nFrom: {};tag=a1\r\nCall-ID: {}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        h("From"),
        h("To"),
        h("Call-ID"),
    ));
    a.take("200", Some("BYE"), Duration::from_secs(5));
    // The consultation call is ended by us.
    let bye = a.take("BYE", None, Duration::from_secs(5));
    assert!(bye.contains("consult-1@hand"), "{bye}");
    a.ok(&bye, None, "", "");
    check_attended(c, "+919800000061");
}

/// Issue 12, point 6: the same transfer sent the other way round, as some
/// phones do: 1001's REFER in its consultation call to us, Refer-To the
/// caller with `Replaces` naming 1001's leg of the caller's call (our tag
/// the to-tag, the phone's the from-tag). Until now that REFER got 403.
/// The phone hangs up neither call: we end both (the consultation at once,
/// the replaced leg after the 2 s grace).
#[test]
fn an_attended_transfer_sent_in_the_consultation_call_hands_the_caller_to_the_consulted_agent() {
    let mut c = consulting("+919800000062");
    let (target, local) = (c.target, c.local);
    let leg = |n: &str| common::rawsip::header(&c.invite, n).expect(n).to_owned();
    let (leg_call_id, leg_from) = (leg("Call-ID"), leg("From"));
    let our_tag = leg_from.split("tag=").nth(1).expect("our tag").to_owned();
    let cons_contact = common::rawsip::header(&c.cons_ok, "Contact").expect("Contact");
    let cons_uri = cons_contact
        .trim_start_matches('<')
        .split('>')
        .next()
        .expect("uri")
        .to_owned();
    let replaces = format!("{leg_call_id};to-tag={our_tag};from-tag=a1")
        .replace('@', "%40")
        .replace(';', "%3B")
        .replace('=', "%3D");
    let refer = format!(
        "REFER {cons_uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKrevrefer\r\nMax-Forwards: 70\r\nFrom: <sip:1001@{target}>;tag=cons-from\r\nTo: <sip:1002@{target}>;tag={}\r\nCall-ID: consult-1@hand\r\nCSeq: 3 REFER\r\nRefer-To: <sip:+919800000062@{target}?Replaces={replaces}>\r\nReferred-By: <sip:1001@{target}>\r\nContact: <sip:1001@{local}>\r\nContent-Length: 0\r\n\r\n",
        c.cons_to
    );
    c.a.send(&refer);
    c.a.take("202", Some("REFER"), Duration::from_secs(5));
    let notify = c.a.take("NOTIFY", None, Duration::from_secs(5));
    assert!(
        notify.contains("consult-1@hand"),
        "in the consultation dialog: {notify}"
    );
    assert!(notify.contains("SIP/2.0 200 OK"), "{notify}");
    c.a.ok(&notify, None, "", "");
    // Both of 1001's calls are ended by us.
    let mut ended = Vec::new();
    for _ in 0..2 {
        let bye = c.a.take("BYE", None, Duration::from_secs(5));
        c.a.ok(&bye, None, "", "");
        ended.push(
            common::rawsip::header(&bye, "Call-ID")
                .expect("Call-ID")
                .to_owned(),
        );
    }
    ended.sort();
    let mut want = vec!["consult-1@hand".to_owned(), leg_call_id];
    want.sort();
    assert_eq!(ended, want);
    check_attended(c, "+919800000062");
}

/// Issue 12, point 9: an agent's state is the same on every node sharing
/// the store. Agent 1001 has a phone at node A and at node B. Paused by
/// its feature code at A, it is not rung by B's caller; unpaused at A,
/// B's caller gets it. In wrap-up after B's call, A's next caller waits
/// for the wrap-up to end (B keeps its claim through the wrap-up).
#[test]
fn an_agents_pause_and_wrap_up_hold_on_every_node_sharing_the_store() {
    let pg = common::pg::TempPostgres::start();
    let node = |name: &str, dir: &Path| {
        let cfg = config(dir, "longest-idle", "").replace(
            "[registrar]\n",
            &format!("[registrar]\nnode = \"{name}\"\nclaim_lease_secs = 3\n"),
        );
        format!("[store]\nurl = \"{}\"\n\n{cfg}", pg.url)
    };
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let mut a = Server::start(&node("a", dir_a.path()));
    let mut b = Server::start(&node("b", dir_b.path()));
    let (addr_a, addr_b) = (a.addr("udp"), b.addr("udp"));
    let mut phone_a = Phone::agent("1001", addr_a);
    let phone_b = Phone::agent("1001", addr_b);
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let phones = agents_json(&a)
            .iter()
            .find(|x| x["extension"] == "1001")
            .and_then(|x| x["phones"].as_array().map(Vec::len))
            .unwrap_or(0);
        if phones == 2 {
            break;
        }
        assert!(Instant::now() < end, "{:?}", agents_json(&a));
        std::thread::sleep(Duration::from_millis(200));
    }
    // Paused from the phone registered at A.
    phone_a.say(&format!("/dial sip:*23@{addr_a}\n"));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(state_of(&a, "1001"), "paused (from the phone)");
    let mut y = caller_dials(addr_b, "+919800000061");
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !b.log.iter().any(|l| l.contains("bridged to an agent")),
        "node B gave its caller the agent paused at A: {}",
        b.log.join("\n")
    );
    assert!(
        !phone_b.log().contains("Incoming call"),
        "node B rang the paused agent: {}",
        phone_b.log()
    );
    // Unpaused at A: B's caller gets the agent.
    phone_a.say(&format!("/dial sip:*24@{addr_a}\n"));
    assert!(
        wait_for_line(
            &mut b,
            &["bridged to an agent", "agent=1001"],
            Duration::from_secs(15)
        ),
        "{}",
        b.log.join("\n")
    );
    std::thread::sleep(Duration::from_secs(2));
    // B's caller hangs up: 1001 wraps up for 5 s (at B). A's caller then
    // waits until the wrap-up is over.
    y.say("/hangup\n");
    let ended = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let _x = caller_dials(addr_a, "+919800000062");
    assert!(
        wait_for_line(
            &mut a,
            &["bridged to an agent", "agent=1001"],
            Duration::from_secs(20)
        ),
        "{}",
        a.log.join("\n")
    );
    let after = ended.elapsed();
    assert!(
        after >= Duration::from_millis(4500),
        "A rang the agent {after:?} after B's call ended, inside its 5 s wrap-up"
    );
}

/// Lets the tenant of `cfg` transfer to `127.0.0.1:PORT` (`transfer_hosts`),
/// and, with `loopback_ok`, reach loopback (`transfer_private_networks`).
fn with_other_host(cfg: &mut String, port: u16, loopback_ok: bool) {
    let private = if loopback_ok {
        "transfer_private_networks = [\"127.0.0.0/8\"]\n"
    } else {
        ""
    };
    *cfg = cfg.replace(
        "numbers = [\"1000\"]\n",
        &format!("numbers = [\"1000\"]\ntransfer_hosts = [\"127.0.0.1:{port}\"]\n{private}"),
    );
}

/// The SIPp host of `tests/sipp/uri-host.xml` on `port`, for one call,
/// echoing RTP (it fails the call unless the INVITE's Request-URI and To
/// are `sip:desk@127.0.0.1:PORT`).
fn sipp_other_host(target: SocketAddr, port: u16) -> std::thread::JoinHandle<common::SippRun> {
    sipp_far_end("tests/sipp/uri-host.xml", target, port)
}

/// Issue 12, point 6: a flow's `transfer "sip:desk@HOST:PORT"` to a host in
/// the tenant's `transfer_hosts` is an INVITE to that URI at that host
/// (SIPp checks the Request-URI and To, and echoes): the caller hears its
/// own 660 Hz back through both legs; the log does not name the URI.
/// Without `transfer_private_networks` the loopback host is refused before
/// anything is sent: `on failure`, and nothing reaches the port.
#[test]
fn a_flows_transfer_to_a_sip_uri_on_a_listed_host_calls_that_uri_there() {
    let tmp = tempfile::tempdir().expect("tmp");
    let port = common::free_udp_port();
    let flow = format!(
        "flow \"Out\"\n  numbers 1000\n\nstep start\n  transfer \"sip:desk@127.0.0.1:{port}\"\n    on failure -> sorry\n\nstep sorry\n  hangup \"transfer failed\"\n"
    );
    let mut cfg = config_with_flow(tmp.path(), "longest-idle", "", &flow);
    with_other_host(&mut cfg, port, true);
    let server = Server::start(&cfg);
    let target = server.addr("udp");
    let host = sipp_other_host(target, port);
    std::thread::sleep(Duration::from_millis(500));
    let mut caller = caller_dials_tone(target, "+919800000050", ECHO_TONE);
    std::thread::sleep(Duration::from_secs(5));
    let c = caller.heard_secs();
    let heard = caller.heard_freq(c - 2.5, c - 0.5);
    caller.say("/hangup\n");
    let run = host.join().expect("sipp");
    std::thread::sleep(Duration::from_millis(800));
    let log = server.log.join("\n");
    assert_eq!(run.successful, 1, "{}\n{log}", run.output);
    let call = common::finished_calls(&server)
        .into_iter()
        .find(|c| c["caller"] == "+919800000050")
        .unwrap_or_else(|| panic!("no CDR:\n{log}"));
    let uri = format!("sip:desk@127.0.0.1:{port}");
    assert_eq!(call["outcome"], format!("transferred: {uri}"), "{call}");
    assert!(
        (heard - ECHO_TONE_HZ).abs() < 40.0,
        "the caller heard {heard} Hz, not its own {ECHO_TONE_HZ} Hz echoed by the other host"
    );
    assert!(!log.contains("desk@"), "the log names the URI: {log}");
    drop(server);

    // Loopback not let through: refused before anything is sent.
    let tmp = tempfile::tempdir().expect("tmp");
    let mut cfg = config_with_flow(tmp.path(), "longest-idle", "", &flow);
    with_other_host(&mut cfg, port, false);
    let listener = std::net::UdpSocket::bind(("127.0.0.1", port)).expect("bind the host's port");
    listener
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let server = Server::start(&cfg);
    let mut caller = caller_dials_tone(server.addr("udp"), "+919800000051", ECHO_TONE);
    let end = Instant::now() + Duration::from_secs(6);
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        if let Ok((n, from)) = listener.recv_from(&mut buf) {
            panic!(
                "{from} sent {n} bytes to a host on a refused address: {}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
    }
    caller.say("/hangup\n");
    std::thread::sleep(Duration::from_millis(800));
    let log = server.log.join("\n");
    let call = common::finished_calls(&server)
        .into_iter()
        .find(|c| c["caller"] == "+919800000051")
        .unwrap_or_else(|| panic!("no CDR:\n{log}"));
    assert_eq!(call["outcome"], "hangup: transfer failed", "{call}\n{log}");
    let shown = common::dhwani_for(
        &server,
        &["calls", "show", call["call_id"].as_str().expect("id")],
    );
    assert!(
        shown.contains("private or reserved address"),
        "the timeline says why: {shown}"
    );
}

/// Issue 12, point 6: an agent's REFER (baresip's `/transfer`) to a SIP URI
/// on a host in the tenant's `transfer_hosts` calls it there; the caller is
/// bridged to it (SIPp echoes), the agent wraps up, the CDR names the URI.
#[test]
fn an_agents_refer_to_a_sip_uri_on_a_listed_host_calls_that_uri_there() {
    let tmp = tempfile::tempdir().expect("tmp");
    let port = common::free_udp_port();
    let mut cfg = config(tmp.path(), "longest-idle", "");
    with_other_host(&mut cfg, port, true);
    let mut server = Server::start(&cfg);
    let target = server.addr("udp");
    let mut a1 = Phone::agent("1001", target);
    wait_registered(&mut server, 1);
    let host = sipp_other_host(target, port);
    let mut caller = caller_dials_tone(target, "+919800000052", ECHO_TONE);
    assert!(
        wait_for_line(
            &mut server,
            &["bridged to an agent", "agent=1001"],
            Duration::from_secs(15)
        ),
        "{}",
        server.log.join("\n")
    );
    std::thread::sleep(Duration::from_secs(1));
    a1.say(&format!("/transfer sip:desk@127.0.0.1:{port}\n"));
    assert!(
        wait_for_line(
            &mut server,
            &["agent transferred the caller", "kind=uri"],
            Duration::from_secs(10)
        ),
        "{}\n--- agent 1001:\n{}",
        server.log.join("\n"),
        a1.log()
    );
    std::thread::sleep(Duration::from_secs(5));
    let c = caller.heard_secs();
    let heard = caller.heard_freq(c - 2.5, c - 0.5);
    assert!(
        (heard - ECHO_TONE_HZ).abs() < 40.0,
        "the caller heard {heard} Hz, not its own {ECHO_TONE_HZ} Hz echoed by the other host\n{}",
        server.log.join("\n")
    );
    caller.say("/hangup\n");
    let run = host.join().expect("sipp");
    assert_eq!(run.successful, 1, "{}", run.output);
    std::thread::sleep(Duration::from_millis(800));
    let call = common::finished_calls(&server)
        .into_iter()
        .find(|c| c["caller"] == "+919800000052")
        .unwrap_or_else(|| panic!("no CDR:\n{}", server.log.join("\n")));
    let uri = format!("sip:desk@127.0.0.1:{port}");
    assert_eq!(call["agent"], uri, "{call}");
    let events = queue_events(&server, call["call_id"].as_str().expect("id"));
    assert!(
        events.iter().any(|e| e["event"] == "transferred"
            && e["agent"] == "1001"
            && e["to"] == uri
            && e["to_kind"] == "uri"),
        "{events:?}"
    );
}
