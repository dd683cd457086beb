//! A real softphone calls: baresip (Debian's `baresip-core`, installed by
//! the test command) dials the demo number on loopback, hears the flow,
//! sends two keys as RFC 4733 events and hangs up. The stored timeline must
//! show the path those keys took, and baresip must have heard audio.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Server;

const DEMO: &str = "[[tenants]]\nid = \"demo\"\nnumbers = [\"1000\", \"+911140000000\"]\nflows_dir = \"builtin:demo\"\n";

fn baresip() -> &'static str {
    let p = "/usr/bin/baresip";
    assert!(
        std::path::Path::new(p).exists(),
        "baresip is missing: run ./scripts/test.sh, which installs baresip-core"
    );
    p
}

/// RMS of a 16-bit PCM WAV's samples (after the 44-byte header).
fn rms(wav: &[u8]) -> f64 {
    let samples: Vec<f64> = wav
        .get(44..)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])))
        .collect();
    (samples.iter().map(|s| s * s).sum::<f64>() / samples.len().max(1) as f64).sqrt()
}

#[test]
fn baresip_dials_the_demo_number_presses_keys_and_hangs_up() {
    let bin = baresip();
    let server = Server::start(DEMO);
    let target = server.addr("udp");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    let port = common::free_udp_port();
    std::fs::write(
        conf.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{port}\naudio_player aubridge,x\naudio_source ausine,440\n\
             ausrc_srate 48000\nauplay_srate 48000\nausrc_channels 2\n\
             module_path /usr/lib/baresip/modules\nmodule stdio.so\nmodule g711.so\nmodule ausine.so\n\
             module aubridge.so\nmodule sndfile.so\nsnd_path {}\nmodule_app account.so\nmodule_app menu.so\n",
            dir.path().display()
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("accounts"),
        "<sip:+919800000002@127.0.0.1>;regint=0\n",
    )
    .unwrap();
    // `-n 127.0.0.1`: baresip's SDP and sockets stay on loopback.
    let mut child = Command::new(bin)
        .args(["-n", "127.0.0.1", "-t", "30", "-f"])
        .arg(&conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start baresip");
    let mut stdin = child.stdin.take().unwrap();
    let mut say = |s: &str, then: u64| {
        stdin.write_all(s.as_bytes()).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(then));
    };
    std::thread::sleep(Duration::from_millis(500));
    say(&format!("/dial sip:1000@{target}\n"), 3000);
    say("1", 2500); // consent: yes
    say("2", 2500); // menu: technical support
    say("/hangup\n", 800);
    say("/quit\n", 0);
    drop(stdin);
    let out = child.wait_with_output().expect("baresip");
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("Call established"), "{log}");
    assert!(log.contains("send DTMF digit end: '2'"), "{log}");
    // What baresip heard: the demo's prompts, not silence.
    let heard = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.display().to_string().ends_with("-dec.wav"))
        .expect("baresip's sndfile dump of what it heard");
    let level = rms(&std::fs::read(&heard).unwrap());
    assert!(level > 100.0, "baresip heard silence (RMS {level})");
    // The stored timeline.
    let call = common::finished_calls(&server).remove(0);
    assert_eq!(call["caller"], "+919800000002");
    assert_eq!(call["hangup_by"], "caller", "{call}");
    let out = common::dhwani_for(
        &server,
        &["calls", "show", call["call_id"].as_str().unwrap(), "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let timeline = v["timeline"].as_array().unwrap();
    let dtmf = timeline.iter().filter(|e| e["kind"] == "dtmf").count();
    assert_eq!(dtmf, 2, "{timeline:#?}");
    assert!(
        timeline
            .iter()
            .all(|e| e["kind"] != "dtmf" || e["detail"]["source"] == "rfc4733")
    );
    let consent = timeline
        .iter()
        .find(|e| e["kind"] == "consent")
        .expect("consent");
    assert_eq!(consent["detail"]["granted"], "yes");
    let branch = timeline
        .iter()
        .find(|e| e["kind"] == "branch")
        .expect("menu branch");
    assert_eq!(branch["detail"]["to"], "support", "{timeline:#?}");
}
