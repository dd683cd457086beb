//! Calls walking IVR flows end to end: the real binary, SIPp as the caller,
//! the timeline and CDR read back with `dhwani calls list|show --json`.
//! Digits arrive by SIP INFO, RFC 4733 (SIPp's pcaps; needs root, as CI
//! runs) and in-band tones; callers hang up mid-prompt or press nothing.

mod common;

use std::time::Duration;

use common::sippxml::{CALLER_BYE, INVITE, SERVER_BYE, info, pause, write_scenario};
use common::{Server, dhwani, run_sipp};
use serde_json::Value;

/// A re-INVITE with `direction` (hold: sendonly; unhold: sendrecv), its
/// 200 and our ACK.
fn reinvite(direction: &str, cseq: u32) -> String {
    format!(
        r#"  <send retrans="500">
    <![CDATA[

      INVITE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: "Test Caller" <sip:+919800000001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 {cseq} IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a={direction}

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: "Test Caller" <sip:+919800000001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: {cseq} ACK
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"#
    )
}

fn rfc4733(digit: char) -> String {
    let pcap = format!("/usr/share/sip-tester/dtmf_2833_{digit}.pcap");
    assert!(
        std::path::Path::new(&pcap).exists(),
        "SIPp's DTMF pcaps come with the sip-tester package"
    );
    format!("  <nop><action><exec play_pcap_audio=\"{pcap}\"/></action></nop>\n")
}

/// The demo tenant of the embedded default (number 1000, the support flow).
const DEMO: &str = "[[tenants]]\nid = \"demo\"\nnumbers = [\"1000\", \"+911140000000\"]\nflows_dir = \"builtin:demo\"\n";

/// One SIPp call on its own thread (`limit` seconds at most).
fn call_in_background(
    server: &Server,
    sc: String,
    number: &'static str,
    limit: u64,
) -> std::thread::JoinHandle<common::SippRun> {
    let addr = server.addr("udp");
    std::thread::spawn(move || {
        run_sipp(
            addr,
            &["-sf", &sc, "-m", "1", "-s", number],
            Duration::from_secs(limit),
        )
    })
}

fn call_once(server: &Server, sc: &str, number: &str) -> common::SippRun {
    run_sipp(
        server.addr("udp"),
        &["-sf", sc, "-m", "1", "-s", number],
        Duration::from_secs(90),
    )
}

/// The newest call and its timeline, through the CLI.
fn last_call(server: &Server) -> (Value, Vec<Value>) {
    let call = common::finished_calls(server).remove(0);
    let id = call["call_id"].as_str().expect("id").to_owned();
    let v: Value = serde_json::from_str(&common::dhwani_for(
        server,
        &["calls", "show", &id, "--json"],
    ))
    .expect("json");
    let timeline = v["timeline"].as_array().expect("timeline").clone();
    (v["call"].clone(), timeline)
}

/// The server logs `needle` within `secs` seconds (the log is shown if not).
fn assert_logged(server: &mut Server, needle: &str, secs: u64) {
    assert!(
        server.wait_for_log(needle, Duration::from_secs(secs)),
        "no `{needle}` in:\n{}",
        server.log.join("\n")
    );
}

fn events<'a>(timeline: &'a [Value], kind: &str) -> Vec<&'a Value> {
    timeline.iter().filter(|e| e["kind"] == kind).collect()
}

fn steps(timeline: &[Value]) -> Vec<String> {
    events(timeline, "step")
        .iter()
        .map(|e| e["detail"]["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_caller_walks_the_demo_flow_to_voicemail_with_info_digits() {
    let mut server = Server::start(DEMO);
    // The scenario the README's tour uses.
    let sc = common::repo_path("examples/sipp/demo-walk.xml")
        .display()
        .to_string();
    let run = call_once(&server, &sc, "1000");
    assert_eq!(
        run.successful,
        1,
        "{}\n{}",
        run.output,
        server.log.join("\n")
    );
    let (call, timeline) = last_call(&server);
    assert_eq!(call["tenant"], "demo");
    assert_eq!(call["caller"], "+919800000001");
    assert_eq!(call["called"], "1000");
    assert_eq!(call["hangup_by"], "dhwani", "{call}");
    assert_eq!(call["outcome"], "hangup: voicemail", "{call}");
    // The CDR says how punctually the caller's audio went out: frames
    // for the whole answered call (50 a second), the buckets nested.
    let n = |k: &str| call[k].as_i64().unwrap_or_else(|| panic!("{k} in {call}"));
    let secs = call["duration_ms"].as_i64().expect("duration") as f64 / 1000.0;
    assert!(
        (n("frames") as f64) > secs * 45.0 && (n("frames") as f64) < secs * 52.0 + 5.0,
        "{call}"
    );
    assert!(
        n("late_2ms") >= n("late_5ms")
            && n("late_5ms") >= n("late_10ms")
            && n("late_10ms") >= n("late_20ms")
            && n("skipped_frames") >= 0,
        "{call}"
    );
    assert_eq!(
        steps(&timeline),
        ["welcome", "main_menu", "voicemail"],
        "{timeline:#?}"
    );
    let consent = events(&timeline, "consent");
    assert_eq!(consent.len(), 1);
    assert_eq!(consent[0]["detail"]["granted"], "yes");
    let branch = events(&timeline, "branch");
    assert!(
        branch.iter().any(|b| b["detail"]["to"] == "voicemail"),
        "{branch:?}"
    );
    assert!(
        events(&timeline, "dtmf")
            .iter()
            .all(|d| d["detail"]["source"] == "info")
    );
    assert!(
        timeline
            .iter()
            .any(|e| e["kind"] == "custom" || e["detail"].to_string().contains("voicemail.left")),
        "{timeline:#?}"
    );
    // The call was recorded after the yes, and the message too: both
    // verify with the tenant's (demo) key.
    let rec_id = call["recording_id"].as_str().expect("recording id");
    let rec_dir = server.data_dir().join("recordings").join("demo");
    let files: Vec<_> = std::fs::read_dir(&rec_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files
            .iter()
            .any(|f| f.display().to_string().contains(rec_id))
    );
    // By id, with the tenant's key found in the data directory.
    let cfg = server.config_path().display().to_string();
    let data = server.data_dir().display().to_string();
    let (code, out, err) = dhwani(&[
        "recordings",
        "verify",
        rec_id,
        "--config",
        &cfg,
        "--data-dir",
        &data,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("intact"), "{out}");
    let (code, out, err) = dhwani(&[
        "recordings",
        "verify",
        "--config",
        &cfg,
        "--data-dir",
        &data,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.matches("intact").count(),
        2,
        "the call and the message: {out}"
    );
    let (code, out, _) = dhwani(&["recordings", "list", "--config", &cfg, "--data-dir", &data]);
    assert_eq!(code, 0);
    assert!(
        out.contains(rec_id) && out.contains("stereo") && out.contains("mono"),
        "{out}"
    );
    let kek = server.data_dir().join("keys").join("demo.kek");
    for f in &files {
        let (code, out, err) = dhwani(&[
            "recordings",
            "verify",
            &f.display().to_string(),
            "--kek",
            &kek.display().to_string(),
        ]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let recording = events(&timeline, "recording");
    let started = recording
        .iter()
        .find(|e| e["detail"]["event"] == "writing")
        .unwrap_or_else(|| panic!("{recording:?}"));
    assert_eq!(started["detail"]["id"], rec_id);
    // The readable timeline names the steps.
    let (code, text, _) = dhwani(&[
        "calls",
        "show",
        call["call_id"].as_str().unwrap(),
        "--config",
        &server.config_path().display().to_string(),
        "--data-dir",
        &server.data_dir().display().to_string(),
    ]);
    assert_eq!(code, 0);
    assert!(
        text.contains("hung up by dhwani") && text.contains("main_menu"),
        "{text}"
    );
    assert!(server.wait_for_log("call finished", Duration::from_secs(2)));
}

#[test]
fn rfc4733_digits_then_a_hang_up_during_the_menu_prompt() {
    let server = Server::start(DEMO);
    let dir = tempfile::tempdir().unwrap();
    let middle = [pause(1000), rfc4733('1'), pause(2500)].concat();
    let sc = write_scenario(dir.path(), &middle, CALLER_BYE);
    let run = call_once(&server, &sc, "1000");
    assert_eq!(run.successful, 1, "{}", run.output);
    let (call, timeline) = last_call(&server);
    assert_eq!(call["hangup_by"], "caller", "{call}");
    assert_eq!(call["hangup_cause"], "BYE from caller");
    assert_eq!(call["outcome"], "caller hung up");
    assert_eq!(events(&timeline, "consent")[0]["detail"]["granted"], "yes");
    assert!(
        events(&timeline, "dtmf")
            .iter()
            .any(|d| d["detail"]["source"] == "rfc4733")
    );
    assert_eq!(steps(&timeline), ["welcome", "main_menu"]);
    let last_prompt = events(&timeline, "prompt")
        .last()
        .map(|p| p["step"].clone());
    assert_eq!(
        last_prompt,
        Some(Value::from("main_menu")),
        "hung up during the menu"
    );
}

/// A flow with short timeouts, for callers who press nothing and for
/// in-band digits.
fn menu_flow(prompt: &str) -> String {
    format!(
        r#"flow "Menu"
  numbers 2000

step menu
  gather digits 1, timeout 1s, retries 1
    play "{prompt}"
    on 5 -> five
    on invalid -> goodbye
    on timeout -> goodbye

step five
  log "menu.five"
  hangup "five"

step goodbye
  play "{prompt}"
  hangup "no input"
"#
    )
}

fn menu_tenant(dir: &std::path::Path) -> String {
    let flows = dir.join("menu-flows");
    std::fs::create_dir_all(&flows).unwrap();
    let chime = common::repo_path("examples/prompts/chime.wav");
    std::fs::write(
        flows.join("menu.ivr"),
        menu_flow(&chime.display().to_string()),
    )
    .unwrap();
    format!(
        "[[tenants]]\nid = \"menu\"\nnumbers = [\"2000\"]\nflows_dir = \"{}\"\n",
        flows.display()
    )
}

#[test]
fn a_caller_who_presses_nothing_hears_the_retry_then_goodbye() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&menu_tenant(dir.path()));
    let sc = write_scenario(dir.path(), "", SERVER_BYE);
    let run = call_once(&server, &sc, "2000");
    assert_eq!(run.successful, 1, "{}", run.output);
    let (call, timeline) = last_call(&server);
    assert_eq!(call["outcome"], "hangup: no input");
    assert_eq!(call["hangup_by"], "dhwani");
    assert_eq!(steps(&timeline), ["menu", "goodbye"]);
    // The first prompt, its retry, then goodbye's.
    assert_eq!(events(&timeline, "prompt").len(), 3, "{timeline:#?}");
    let branch = events(&timeline, "branch");
    assert_eq!(branch[0]["detail"]["on"], "timeout");
}

/// What must match between two runs of the same call script: the CDR
/// without ids and times, and the timeline's steps, kinds and details.
fn comparable(call: &Value, timeline: &[Value]) -> (Vec<Value>, Vec<(Value, Value, Value)>) {
    let cdr = [
        "tenant",
        "flow",
        "flow_version",
        "caller",
        "called",
        "hangup_by",
        "hangup_cause",
        "outcome",
    ]
    .iter()
    .map(|k| call[*k].clone())
    .collect();
    let events = timeline
        .iter()
        .map(|e| (e["step"].clone(), e["kind"].clone(), e["detail"].clone()))
        .collect();
    (cdr, events)
}

#[test]
fn sqlite_and_postgresql_record_the_same_call_the_same_way() {
    let pg = common::pg::TempPostgres::start();
    let mut runs = Vec::new();
    // One flows directory: the flow's version hashes its files' paths too.
    let flows = tempfile::tempdir().unwrap();
    let tenant = menu_tenant(flows.path());
    for store in ["", pg.url.as_str()] {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&format!("[store]\nurl = \"{store}\"\n{tenant}"));
        let sc = write_scenario(dir.path(), "", SERVER_BYE);
        assert_eq!(call_once(&server, &sc, "2000").successful, 1);
        let (call, timeline) = last_call(&server);
        runs.push(comparable(&call, &timeline));
    }
    assert_eq!(runs[0].0, runs[1].0, "CDRs differ");
    assert_eq!(runs[0].1, runs[1].1, "timelines differ");
    assert!(runs[0].1.len() >= 8, "{:?}", runs[0].1);
}

#[test]
fn in_band_digits_walk_a_menu() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&menu_tenant(dir.path()));
    let mut pcm = vec![0i16; 4000];
    pcm.extend(media::dtmf::inband::tone(
        '5', 100, 1.0, 6000.0, 6000.0, 0.0,
    ));
    pcm.extend(vec![0i16; 8000]);
    let mut ulaw = Vec::new();
    media::codec::Codec::Pcmu.encode(&pcm, &mut ulaw);
    let file = dir.path().join("five.ulaw");
    std::fs::write(&file, &ulaw).unwrap();
    let middle = format!(
        "  <nop><action><exec rtp_stream=\"{},1,0\"/></action></nop>\n",
        file.display()
    );
    let sc = write_scenario(dir.path(), &middle, SERVER_BYE);
    let run = call_once(&server, &sc, "2000");
    assert_eq!(run.successful, 1, "{}", run.output);
    let (call, timeline) = last_call(&server);
    assert_eq!(call["outcome"], "hangup: five", "{timeline:#?}");
    assert!(
        events(&timeline, "dtmf")
            .iter()
            .any(|d| d["detail"]["source"] == "inband")
    );
}

#[test]
fn hold_pauses_the_flow_and_unhold_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&menu_tenant(dir.path()));
    // The wiring: re-INVITEs reach the call, which logs hold and unhold and
    // goes on to take a key. That the flow's clock stops on hold is proved
    // on fake time in src/call/core/tests.rs
    // (`hold_stops_the_flow_clock_and_the_prompt_and_unhold_resumes`).
    let middle = [
        pause(300),
        reinvite("sendonly", 2),
        pause(1000),
        reinvite("sendrecv", 3),
        pause(300),
        info('5', 4),
    ]
    .concat();
    let sc = write_scenario(dir.path(), &middle, SERVER_BYE);
    let run = call_once(&server, &sc, "2000");
    assert_eq!(run.successful, 1, "{}", run.output);
    let (call, timeline) = last_call(&server);
    assert_eq!(call["outcome"], "hangup: five", "{timeline:#?}");
    let sip: Vec<&Value> = events(&timeline, "sip");
    let held: Vec<&str> = sip
        .iter()
        .filter_map(|e| e["detail"]["event"].as_str())
        .collect();
    assert_eq!(held, ["answered", "hold", "unhold", "ended"]);
    assert!(
        events(&timeline, "dtmf")
            .iter()
            .any(|d| d["detail"]["source"] == "info")
    );
}

#[test]
fn a_panic_in_one_call_ends_that_call_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_env(
        &menu_tenant(dir.path()),
        &[("DHWANI_TEST_PANIC_DIGIT", "9")],
    );
    // Call B is in its menu while call A's task panics; B then presses 5.
    let dir_b = tempfile::tempdir().unwrap();
    let sc_b = write_scenario(
        dir_b.path(),
        &[pause(1500), info('5', 2)].concat(),
        SERVER_BYE,
    );
    let b = call_in_background(&server, sc_b, "2000", 20);
    std::thread::sleep(Duration::from_millis(300));
    let sc_a = write_scenario(dir.path(), &[pause(300), info('9', 2)].concat(), SERVER_BYE);
    let a = call_once(&server, &sc_a, "2000");
    assert_eq!(a.successful, 1, "call A gets a BYE: {}", a.output);
    assert!(server.wait_for_log("call task panicked", Duration::from_secs(5)));
    let b = b.join().unwrap();
    assert_eq!(b.successful, 1, "call B goes on: {}", b.output);
    // And the server takes new calls.
    let dir_c = tempfile::tempdir().unwrap();
    let sc_c = write_scenario(
        dir_c.path(),
        &[pause(300), info('5', 2)].concat(),
        SERVER_BYE,
    );
    assert_eq!(call_once(&server, &sc_c, "2000").successful, 1);
    let _ = last_call(&server); // C's CDR is written
    let cfg = server.config_path().display().to_string();
    let data = server.data_dir().display().to_string();
    let (_, out, _) = dhwani(&[
        "calls",
        "list",
        "--json",
        "--config",
        &cfg,
        "--data-dir",
        &data,
    ]);
    assert!(
        out.contains("\"outcome\":\"error: the call task failed\""),
        "{out}"
    );
}

/// Calls `number` expecting a refusal with `status`, and (when given) a
/// header matching `header_re` in it; the call fails otherwise.
fn refused_with(server: &Server, number: &str, status: u16, header_re: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let check = header_re
        .map(|re| {
            format!(
                r#"><action><ereg regexp="{re}" search_in="msg" check_it="true" assign_to="h"/></action></recv>
  <Reference variables="h"/>"#
            )
        })
        .unwrap_or_else(|| "/>".to_owned());
    let head = &INVITE[..INVITE.find("  <recv response=\"100\"").unwrap()];
    let sc = format!(
        r#"{head}  <recv response="100" optional="true"/>
  <recv response="{status}"{check}
  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: "Test Caller" <sip:+919800000001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
</scenario>
"#
    );
    let path = dir.path().join("refused.xml");
    std::fs::write(&path, sc).unwrap();
    let run = run_sipp(
        server.addr("udp"),
        &["-sf", &path.display().to_string(), "-m", "1", "-s", number],
        Duration::from_secs(10),
    );
    assert_eq!(run.successful, 1, "expected {status}: {}", run.output);
    run.output
}

#[test]
fn unknown_numbers_get_404_and_forbidden_sources_403() {
    let mut server = Server::start("");
    refused_with(&server, "5555", 404, None);
    assert_logged(&mut server, "status=404", 5);
    let dir = tempfile::tempdir().unwrap();
    let mut walled = Server::start(&format!(
        "{}[[trunks]]\nname = \"carrier\"\nnetworks = [\"192.0.2.0/24\"]\n",
        menu_tenant(dir.path())
    ));
    refused_with(&walled, "2000", 403, None);
    assert_logged(&mut walled, "status=403", 5);
}

#[test]
fn a_tenant_at_its_call_limit_gets_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = menu_tenant(dir.path()).replace("flows_dir", "max_calls = 1\nflows_dir");
    let mut server = Server::start(&tenant);
    // One call holds the tenant's only slot (it waits in the menu).
    let sc = write_scenario(dir.path(), &pause(3000), CALLER_BYE);
    let first = call_in_background(&server, sc, "2000", 20);
    std::thread::sleep(Duration::from_millis(1000));
    refused_with(&server, "2000", 503, Some("Retry-After: [0-9]+"));
    assert!(first.join().unwrap().successful == 1);
    assert_logged(&mut server, "tenant at its call limit", 5);
}

#[test]
fn a_node_at_max_calls_gets_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&format!(
        "[calls]\nmax_calls = 1\nretry_after_secs = 7\n{}",
        menu_tenant(dir.path())
    ));
    let sc = write_scenario(dir.path(), &pause(3000), CALLER_BYE);
    let first = call_in_background(&server, sc, "2000", 20);
    std::thread::sleep(Duration::from_millis(1000));
    refused_with(&server, "2000", 503, Some("Retry-After: 7"));
    assert_eq!(first.join().unwrap().successful, 1);
    assert_logged(&mut server, "refusing call: at capacity", 5);
}

#[test]
fn a_digest_trunk_challenges_a_caller_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&format!(
        "{}[[trunks]]\nname = \"carrier\"\nnetworks = [\"127.0.0.0/8\"]\nusername = \"carrier\"\npassword = \"test-only-secret\"\n",
        menu_tenant(dir.path())
    ));
    // Without credentials: 401 with a digest challenge.
    refused_with(
        &server,
        "2000",
        401,
        Some("WWW-Authenticate: Digest realm=\"dhwani\""),
    );
    assert_logged(&mut server, "status=401", 5);
}

#[test]
fn hot_deploy_keeps_running_calls_on_their_version() {
    let dir = tempfile::tempdir().unwrap();
    let tenant = menu_tenant(dir.path());
    let mut server = Server::start(&tenant);
    let flow_file = dir.path().join("menu-flows").join("menu.ivr");
    // Call A starts on version 1 and stays 4 s.
    let sc_a = write_scenario(dir.path(), &pause(4000), CALLER_BYE);
    let a = call_in_background(&server, sc_a, "2000", 30);
    std::thread::sleep(Duration::from_millis(800));
    // A broken edit is refused and version 1 stays live.
    std::fs::write(
        &flow_file,
        "flow \"Menu\"\n  numbers 2000\nstep menu\n  gather\n",
    )
    .unwrap();
    assert_logged(&mut server, "flow refused", 5);
    // A good edit deploys version 2 for new calls.
    let chime = common::repo_path("examples/prompts/chime.wav")
        .display()
        .to_string();
    std::fs::write(
        &flow_file,
        menu_flow(&chime).replace("\"no input\"", "\"no input v2\""),
    )
    .unwrap();
    assert_logged(&mut server, "flow deployed", 5);
    let dir_b = tempfile::tempdir().unwrap();
    let sc_b = write_scenario(dir_b.path(), "", SERVER_BYE);
    let b = call_once(&server, &sc_b, "2000");
    assert_eq!(b.successful, 1, "{}", b.output);
    assert_eq!(a.join().unwrap().successful, 1);
    let _ = last_call(&server);
    let cfg = server.config_path().display().to_string();
    let data = server.data_dir().display().to_string();
    let (_, out, _) = dhwani(&[
        "calls",
        "list",
        "--json",
        "--config",
        &cfg,
        "--data-dir",
        &data,
    ]);
    let calls: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(calls.len(), 2, "{out}");
    let b_call = calls
        .iter()
        .find(|c| c["outcome"] == "hangup: no input v2")
        .unwrap_or_else(|| panic!("call B on v2: {out}\n{}", server.log.join("\n")));
    let a_call = calls
        .iter()
        .find(|c| c["hangup_by"] == "caller")
        .expect("call A");
    assert_ne!(
        a_call["flow_version"], b_call["flow_version"],
        "A kept version 1, B got version 2"
    );
}

#[test]
fn flow_deploy_checks_then_signals_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&menu_tenant(dir.path()));
    let cfg = server.config_path().display().to_string();
    let data = server.data_dir().display().to_string();
    let flow_file = dir.path().join("menu-flows").join("menu.ivr");
    let good = std::fs::read_to_string(&flow_file).unwrap();
    std::fs::write(&flow_file, good.replace("on 5 -> five", "on 5 -> fiv")).unwrap();
    let (code, out, err) = dhwani(&["flow", "deploy", "--config", &cfg, "--data-dir", &data]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("menu.ivr:7:") && err.contains("did you mean `five`"),
        "a located diagnostic: {err}"
    );
    assert!(out.contains("not deployed"), "{out}");
    std::fs::write(&flow_file, good.replace("\"five\"", "\"five, deployed\"")).unwrap();
    let (code, out, err) = dhwani(&["flow", "deploy", "--config", &cfg, "--data-dir", &data]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("deployed: server"), "{out}");
    assert_logged(&mut server, "SIGHUP: reloading flows", 5);
}

#[test]
fn sigterm_drains_a_running_call_then_flushes_its_cdr() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&format!(
        "{}[calls]\ndrain_secs = 10\n",
        menu_tenant(dir.path())
    ));
    let sc = write_scenario(dir.path(), &pause(2500), CALLER_BYE);
    let call = call_in_background(&server, sc, "2000", 20);
    std::thread::sleep(Duration::from_millis(700));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status();
    assert!(server.wait_for_log("waiting for calls to finish", Duration::from_secs(5)));
    // New calls are refused while draining.
    refused_with(&server, "2000", 503, Some("Retry-After: [0-9]+"));
    let run = call.join().unwrap();
    assert_eq!(
        run.successful,
        1,
        "the running call finished normally: {}\n{}",
        run.output,
        server.log.join("\n")
    );
    assert_logged(&mut server, "stopped", 10);
    let (call, _) = last_call(&server);
    assert_eq!(call["hangup_by"], "caller", "{call}");
}

/// The wall-clock time of a server log line (`2026-11-28T13:21:27.929432Z ...`).
fn log_time(line: &str) -> std::time::SystemTime {
    let stamp = line.split_whitespace().next().expect("timestamp");
    let ts: jiff::Timestamp = stamp.parse().expect("log timestamp");
    std::time::UNIX_EPOCH + Duration::from_micros(ts.as_microsecond() as u64)
}

#[test]
fn a_recording_survives_sigkill_up_to_200_ms_before_the_kill() {
    let mut server = Server::start(DEMO);
    let dir = tempfile::tempdir().unwrap();
    // Consent (1) starts the call recording; then the caller listens.
    let middle = [pause(1500), info('1', 2), pause(20000)].concat();
    let sc = write_scenario(dir.path(), &middle, CALLER_BYE);
    let caller = call_in_background(&server, sc, "1000", 12);
    assert_logged(&mut server, "DTMF received", 10);
    let started = log_time(
        server
            .log
            .iter()
            .find(|l| l.contains("DTMF received"))
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(2730));
    let killed = server.kill9();
    let _ = caller.join();
    let data = server.data_dir();
    let files = std::fs::read_dir(data.join("recordings").join("demo"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect::<Vec<_>>();
    assert_eq!(files.len(), 1, "{files:?}");
    let f = files[0].display().to_string();
    let d = data.display().to_string();
    // The file opens and verifies as truncated, not tampered: never a
    // recording that needs repair.
    let (code, out, _) = dhwani(&["recordings", "verify", &f, "--data-dir", &d]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("truncated"), "{out}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dhwani"))
        .args(["recordings", "decrypt", &f, "--data-dir", &d])
        .output()
        .unwrap();
    let wav = out.stdout;
    assert!(wav.starts_with(b"RIFF"), "a WAV comes out");
    // Stereo, 16-bit, 8 kHz.
    let seconds = (wav.len() - 44) as f64 / (8000.0 * 2.0 * 2.0);
    let elapsed = killed.duration_since(started).unwrap().as_secs_f64();
    assert!(
        seconds >= elapsed - 0.2,
        "recorded {seconds:.3} s of the {elapsed:.3} s before the kill"
    );
    assert!(seconds <= elapsed + 0.05, "{seconds} > {elapsed}");
}

#[test]
fn a_full_disk_fails_the_recording_not_the_call() {
    // 96 KiB for recordings: the call recording (32 KB/s) fills it in
    // about three seconds, well before the caller's walk ends.
    let mut server = Server::start_small_recordings_fs(DEMO, 96 * 1024);
    let sc = common::repo_path("examples/sipp/demo-walk.xml")
        .display()
        .to_string();
    let run = call_once(&server, &sc, "1000");
    assert_eq!(run.successful, 1, "the call went on: {}", run.output);
    assert_logged(&mut server, "recording failed; the call goes on", 5);
    let (call, timeline) = last_call(&server);
    assert_eq!(
        call["outcome"], "hangup: voicemail",
        "the flow ran to its end: {call}"
    );
    let failed: Vec<&Value> = events(&timeline, "error")
        .into_iter()
        .filter(|e| e["detail"]["failed"].is_string() || e["detail"]["record"].is_string())
        .collect();
    assert!(
        !failed.is_empty(),
        "the recording is marked failed: {timeline:#?}"
    );
    // No key or audio in the log.
    let kek = std::fs::read_to_string(server.data_dir().join("keys").join("demo.kek")).unwrap();
    assert!(
        !server.log.iter().any(|l| l.contains(kek.trim())),
        "the key leaked into the log"
    );
}

/// A late offer: the INVITE has no SDP; our 200 OK offers; the ACK answers
/// with `ack_sdp` (empty: no answer at all).
fn late_offer_scenario(dir: &std::path::Path, ack_sdp: &str, tail: &str) -> String {
    let (content, len) = if ack_sdp.is_empty() {
        ("", "Content-Length: 0")
    } else {
        (
            "Content-Type: application/sdp\n      ",
            "Content-Length: [len]",
        )
    };
    let sc = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="late-offer">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: "Test Caller" <sip:+919800000001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200" rtd="true" rrs="true">
    <action><ereg regexp="m=audio [0-9]+ RTP/AVP 0 8 101" search_in="body" check_it="true" assign_to="m"/></action>
  </recv>
  <Reference variables="m"/>
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: "Test Caller" <sip:+919800000001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      {content}{len}

      {ack_sdp}
    ]]>
  </send>
{tail}"#
    );
    let p = dir.join("late.xml");
    std::fs::write(&p, sc).unwrap();
    p.display().to_string()
}

#[test]
fn a_late_offer_is_answered_in_the_ack() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&menu_tenant(dir.path()));
    let answer = "v=0\n      o=user1 1 1 IN IP4 [local_ip]\n      s=-\n      c=IN IP4 [media_ip]\n      t=0 0\n      m=audio [media_port] RTP/AVP 8 101\n      a=rtpmap:8 PCMA/8000\n      a=rtpmap:101 telephone-event/8000\n";
    let middle = [pause(500), info('5', 2)].concat();
    let sc = late_offer_scenario(dir.path(), answer, &format!("{middle}{SERVER_BYE}"));
    let run = call_once(&server, &sc, "2000");
    assert_eq!(run.successful, 1, "{}", run.output);
    let (call, timeline) = last_call(&server);
    assert_eq!(call["outcome"], "hangup: five", "{timeline:#?}");
    let answered = events(&timeline, "sip")[0];
    assert_eq!(
        answered["detail"]["codec"], "PCMA",
        "the codec of the answer: {answered}"
    );
}

#[test]
fn a_late_offer_without_an_answer_is_ended_with_bye() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&menu_tenant(dir.path()));
    let sc = late_offer_scenario(dir.path(), "", SERVER_BYE);
    let run = call_once(&server, &sc, "2000");
    assert_eq!(run.successful, 1, "we sent BYE: {}", run.output);
    assert_logged(&mut server, "no usable answer in the ACK", 5);
}

/// A tenant whose flow collects six keys (not marked sensitive) and logs
/// them with `log`, for the log scans.
fn account_tenant(dir: &std::path::Path) -> String {
    let flows = dir.join("account-flows");
    std::fs::create_dir_all(&flows).unwrap();
    let chime = common::repo_path("examples/prompts/chime.wav");
    std::fs::write(
        flows.join("account.ivr"),
        format!(
            "flow \"Account\"\n  numbers 3000\n\nstep ask\n  gather into account, digits 6, timeout 5s\n    play \"{}\"\n    on invalid -> done\n    on timeout -> done\n  goto done\n\nstep done\n  log \"account.entered\" account=account\n  hangup \"done\"\n",
            chime.display()
        ),
    )
    .unwrap();
    format!(
        "[[tenants]]\nid = \"acct\"\nnumbers = [\"3000\"]\nflows_dir = \"{}\"\n",
        flows.display()
    )
}

/// Enters 739154 by SIP INFO as +919800000001 and waits for the CDR.
fn enter_account(server: &Server, dir: &std::path::Path) {
    let mut middle = pause(300);
    for (i, d) in "739154".chars().enumerate() {
        if i > 0 {
            middle.push_str(&pause(150));
        }
        middle.push_str(&info(d, 2 + i as u32));
    }
    let sc = write_scenario(dir, &middle, SERVER_BYE);
    let run = call_once(server, &sc, "3000");
    assert_eq!(
        run.successful,
        1,
        "{}\n{}",
        run.output,
        server.log.join("\n")
    );
    let (call, timeline) = last_call(server);
    assert_eq!(call["outcome"], "hangup: done", "{call}");
    assert!(
        timeline.iter().any(|e| e.to_string().contains("739154")),
        "the interaction log (which the privacy tools reach) has the value: {timeline:?}"
    );
}

/// Issue 14, point 2: the operator's log (stdout/stderr, the journal) holds
/// neither the caller's number nor a key the caller pressed, by default.
#[test]
fn the_servers_log_names_the_caller_by_pseudonym_and_no_key_pressed() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&account_tenant(dir.path()));
    enter_account(&server, dir.path());
    assert_logged(&mut server, "call finished", 10);
    let log = server.log.join("\n");
    for needle in [
        "+919800000001",
        "919800000001",
        "9800000001",
        "739154",
        "73915",
    ] {
        assert!(!log.contains(needle), "`{needle}` in the log:\n{log}");
    }
    let keys: Vec<&String> = server
        .log
        .iter()
        .filter(|l| l.contains("DTMF received"))
        .collect();
    assert_eq!(keys.len(), 6, "one line per key:\n{log}");
    for line in keys {
        assert!(line.contains("digit=hidden"), "a key in: {line}");
    }
    assert!(
        server
            .log
            .iter()
            .any(|l| l.contains("incoming call") && l.contains("from=anon-")),
        "the caller is named by pseudonym:\n{log}"
    );
}

/// The debugging switch shows numbers and keys, and says so loudly.
#[test]
fn log_personal_data_shows_them_in_clear_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&format!(
        "[log]\nfilter = \"info\"\npersonal_data = true\n{}",
        account_tenant(dir.path())
    ));
    enter_account(&server, dir.path());
    assert_logged(&mut server, "call finished", 10);
    let log = server.log.join("\n");
    assert!(log.contains("+919800000001"), "{log}");
    assert!(log.contains("digit=7"), "{log}");
    assert!(
        server
            .log
            .iter()
            .any(|l| l.contains("WARN") && l.contains("personal_data is on")),
        "{log}"
    );
}

/// `log_format = "json"`: one object per line, the call's lines carry the
/// SIP Call-ID and the record id.
#[test]
fn the_json_log_is_one_object_per_line_with_the_call_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&format!(
        "[log]\nformat = \"json\"\n{}",
        account_tenant(dir.path())
    ));
    enter_account(&server, dir.path());
    assert_logged(&mut server, "call finished", 10);
    let (call, _) = last_call(&server);
    let mut finished = None;
    for line in &server.log {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
        if v.to_string().contains("call finished") {
            finished = Some(v);
        }
    }
    let f = finished.expect("a `call finished` line");
    assert_eq!(f["span"]["call_id"], call["sip_call_id"], "{f}");
    assert_eq!(f["span"]["record_id"], call["call_id"], "{f}");
    assert!(!f.to_string().contains("9800000001"), "{f}");
}
