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

/// A tenant whose flow queues every caller, with agents 1001 and 1002.
fn config(dir: &Path, strategy: &str, extra_queue: &str) -> String {
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).expect("flows");
    std::fs::copy(
        common::repo_path("examples/prompts/hold-music.wav"),
        flows.join("hold.wav"),
    )
    .expect("hold music");
    std::fs::write(
        flows.join("queue.ivr"),
        "flow \"Queue\"\n  numbers 1000\n\nstep start\n  queue \"support\", hold \"hold.wav\", max wait 2m\n    on overflow -> gone\n\nstep gone\n  hangup \"overflow\"\n",
    )
    .expect("flow");
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
        let mut child = Command::new(bin)
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
