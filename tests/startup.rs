//! What a new user sees when the server starts, and when it stops: the
//! errors of a start that cannot happen, the summary of what is live, a
//! number whose flow was refused, the drain after calls that are over.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Server;

#[test]
fn a_second_server_on_a_taken_address_names_the_transport_the_address_and_what_to_do() {
    let server = Server::start("");
    let udp = server.addr("udp");
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(env!("CARGO_BIN_EXE_dhwani"))
        .arg("serve")
        .arg("--config")
        .arg(server.config_path())
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--listen")
        .arg(format!("udp:{udp}"))
        .output()
        .expect("second server");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("udp {udp}")), "{err}");
    assert!(err.contains("in use"), "{err}");
    assert!(err.contains("--listen"), "what to do: {err}");
}

const DEMO: &str = "[[tenants]]\nid = \"demo\"\nnumbers = [\"1000\", \"+911140000000\"]\nflows_dir = \"builtin:demo\"\n";

#[test]
fn without_a_speech_engine_the_summary_says_so_and_the_demo_number_gets_503_not_404() {
    // No espeak-ng on the PATH: the demo flow's `say` cannot be spoken.
    let mut server = Server::start_env(DEMO, &[("PATH", "/nonexistent")]);
    assert!(
        server.wait_for_log(
            "tenant demo: 0 flow(s) live, 1 refused",
            Duration::from_secs(5)
        ),
        "{}",
        server.log.join("\n")
    );
    let line = server
        .log
        .iter()
        .find(|l| l.contains("tenant demo:"))
        .expect("summary")
        .clone();
    assert!(
        line.contains("numbers whose flow is not live (callers get 503): 1000, 911140000000"),
        "{line}"
    );
    assert!(
        line.contains("refused: support.ivr (the flow uses `say` but no text-to-speech engine"),
        "{line}"
    );
    let (sip, media) = common::rawsip::sockets();
    let local = sip.local_addr().expect("addr");
    let invite = common::rawsip::invite(local, media.local_addr().expect("addr"), "not-live");
    sip.send_to(invite.as_bytes(), server.addr("udp"))
        .expect("send");
    let reply =
        common::rawsip::recv_sip(&sip, "SIP/2.0 5", Duration::from_secs(3)).expect("an answer");
    assert!(reply.starts_with("SIP/2.0 503 Flow Not Live"), "{reply}");
    let warning = common::rawsip::header(&reply, "Warning").expect("a Warning");
    assert!(warning.contains("refused when it was loaded"), "{warning}");
    // A number no flow ever answered is still 404.
    let other = common::rawsip::invite(local, media.local_addr().expect("addr"), "nobody")
        .replace("sip:1000@", "sip:4711@")
        .replace("To: <sip:1000@", "To: <sip:4711@");
    sip.send_to(other.as_bytes(), server.addr("udp"))
        .expect("send");
    let reply =
        common::rawsip::recv_sip(&sip, "SIP/2.0 4", Duration::from_secs(3)).expect("an answer");
    assert!(reply.starts_with("SIP/2.0 404"), "{reply}");
}

#[test]
fn after_a_call_ended_by_bye_sigterm_stops_at_once() {
    let server = Server::start("");
    let udp = server.addr("udp");
    let (sip, media) = common::rawsip::sockets();
    let local = sip.local_addr().expect("addr");
    let invite = common::rawsip::invite(local, media.local_addr().expect("addr"), "drain-bye");
    sip.send_to(invite.as_bytes(), udp).expect("send");
    let ok = common::rawsip::recv_sip(&sip, "SIP/2.0 200", Duration::from_secs(5)).expect("200");
    let tag = common::rawsip::to_tag(&ok);
    let ack = common::rawsip::in_dialog("ACK", 1, local, "drain-bye", &tag);
    sip.send_to(ack.as_bytes(), udp).expect("ack");
    std::thread::sleep(Duration::from_millis(500));
    let bye = common::rawsip::in_dialog("BYE", 2, local, "drain-bye", &tag);
    sip.send_to(bye.as_bytes(), udp).expect("bye");
    assert!(common::rawsip::recv_sip(&sip, "SIP/2.0 200", Duration::from_secs(3)).is_some());
    // Only the transactions' timers are left (Timer J of the BYE): no
    // call holds the drain.
    let t0 = std::time::Instant::now();
    assert!(server.terminate().success());
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "the drain waited {:?} after the only call was over",
        t0.elapsed()
    );
}

/// Issue 17, point 6: a call whose flow hung up is over when our BYE
/// goes out (its CDR is written then); a caller that never answers that
/// BYE leaves only the BYE's transaction, which must not hold the drain.
#[test]
fn a_call_whose_bye_goes_unanswered_does_not_hold_the_drain() {
    let dir = tempfile::tempdir().expect("dir");
    let flows = dir.path().join("flows");
    std::fs::create_dir_all(&flows).expect("flows");
    std::fs::write(
        flows.join("bye.ivr"),
        "flow \"Bye\"\n  numbers 1000\n\nstep start\n  hangup \"done\"\n",
    )
    .expect("flow");
    let server = Server::start(&format!(
        "[[tenants]]\nid = \"t\"\nnumbers = [\"1000\"]\nflows_dir = \"{}\"\n\n[calls]\ndrain_secs = 20\n",
        flows.display()
    ));
    let udp = server.addr("udp");
    let (sip, media) = common::rawsip::sockets();
    let local = sip.local_addr().expect("addr");
    let invite = common::rawsip::invite(local, media.local_addr().expect("addr"), "drain-nobye");
    sip.send_to(invite.as_bytes(), udp).expect("send");
    let ok = common::rawsip::recv_sip(&sip, "SIP/2.0 200", Duration::from_secs(5)).expect("200");
    let tag = common::rawsip::to_tag(&ok);
    let ack = common::rawsip::in_dialog("ACK", 1, local, "drain-nobye", &tag);
    sip.send_to(ack.as_bytes(), udp).expect("ack");
    // The flow hangs up: our BYE arrives, and is never answered.
    assert!(common::rawsip::recv_sip(&sip, "BYE ", Duration::from_secs(5)).is_some());
    let t0 = std::time::Instant::now();
    assert!(server.terminate().success());
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "the drain waited {:?} for a call whose BYE was sent",
        t0.elapsed()
    );
}

/// The other side of the same rule: at the drain's deadline our BYEs go
/// out to the calls still live, and the server waits (3 s at most) for
/// their answers, retransmitting a BYE that is not answered.
#[test]
fn at_the_drain_deadline_our_bye_is_retransmitted_until_answered_or_the_stop() {
    let server = Server::start("[calls]\ndrain_secs = 1\n");
    let udp = server.addr("udp");
    let (sip, media) = common::rawsip::sockets();
    let local = sip.local_addr().expect("addr");
    let invite = common::rawsip::invite(local, media.local_addr().expect("addr"), "drain-live");
    sip.send_to(invite.as_bytes(), udp).expect("send");
    let ok = common::rawsip::recv_sip(&sip, "SIP/2.0 200", Duration::from_secs(5)).expect("200");
    let tag = common::rawsip::to_tag(&ok);
    let ack = common::rawsip::in_dialog("ACK", 1, local, "drain-live", &tag);
    sip.send_to(ack.as_bytes(), udp).expect("ack");
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.pid().to_string();
    let t0 = std::time::Instant::now();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let mut byes = 0;
    while common::rawsip::recv_sip(&sip, "BYE ", Duration::from_millis(2500)).is_some() {
        byes += 1;
    }
    assert!(byes >= 2, "the unanswered BYE was sent {byes} time(s)");
    assert!(server.terminate().success());
    let took = t0.elapsed();
    assert!(
        took > Duration::from_secs(3) && took < Duration::from_secs(8),
        "stopped after {took:?} (drain 1 s, then up to 3 s for the BYE's answer)"
    );
}
