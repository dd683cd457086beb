//! SIPp's built-in `uac` scenario against the real server: many calls over
//! UDP and TCP, and calls under 10% packet loss, all with zero failures.

mod common;

use std::time::Duration;

use common::{Server, run_sipp};

fn assert_all_calls(run: &common::SippRun, calls: u64) {
    assert_eq!(
        (run.code, run.successful, run.failed),
        (Some(0), calls, 0),
        "SIPp output:\n{}",
        run.output
    );
}

#[test]
fn two_hundred_calls_over_udp_all_succeed() {
    let server = Server::start("[calls]\nmax_call_secs = 30\n");
    let run = run_sipp(
        server.addr("udp"),
        &[
            "-sn", "uac", "-s", "1000", "-m", "200", "-r", "100", "-d", "200",
        ],
        Duration::from_secs(60),
    );
    assert_all_calls(&run, 200);
}

#[test]
fn two_hundred_calls_over_tcp_all_succeed() {
    let server = Server::start("");
    let run = run_sipp(
        server.addr("tcp"),
        &[
            "-sn", "uac", "-t", "t1", "-s", "1000", "-m", "200", "-r", "100", "-d", "200",
        ],
        Duration::from_secs(60),
    );
    assert_all_calls(&run, 200);
}

#[test]
fn a_hundred_calls_under_ten_percent_loss_all_succeed() {
    let server = Server::start("");
    let run = run_sipp(
        server.addr("udp"),
        &[
            "-sn", "uac", "-s", "1000", "-m", "100", "-r", "25", "-d", "200", "-lost", "10",
        ],
        Duration::from_secs(120),
    );
    assert_all_calls(&run, 100);
}

#[test]
fn options_is_answered_with_allow_and_accept() {
    let server = Server::start("");
    let run = run_sipp(
        server.addr("udp"),
        &[
            "-sf",
            &common::scenario("options.xml"),
            "-s",
            "ping",
            "-m",
            "1",
        ],
        Duration::from_secs(20),
    );
    assert_all_calls(&run, 1);
}

#[test]
fn cancel_before_answer_gets_200_then_487() {
    let mut server = Server::start("[calls]\nanswer_after_ms = 10000\n");
    let run = run_sipp(
        server.addr("udp"),
        &[
            "-sf",
            &common::scenario("cancel.xml"),
            "-s",
            "1000",
            "-m",
            "1",
        ],
        Duration::from_secs(20),
    );
    assert_all_calls(&run, 1);
    assert!(server.wait_for_log("call cancelled before answer", Duration::from_secs(5)));
    // The unanswered call still has its CDR.
    let cfg = server.config_path().display().to_string();
    let data = server.data_dir().display().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, out, _) = common::dhwani(&[
            "calls",
            "list",
            "--json",
            "--config",
            &cfg,
            "--data-dir",
            &data,
        ]);
        if out.contains("CANCEL before answer (487)") {
            assert!(out.contains("\"hangup_by\":\"caller\""), "{out}");
            assert!(out.contains("\"answer_ms\":null"), "{out}");
            assert!(out.contains("\"outcome\":\"not answered\""), "{out}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no CDR for the cancelled call: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn calls_are_hung_up_by_us_after_max_call_secs() {
    let mut server = Server::start("[calls]\nmax_call_secs = 1\n");
    let run = run_sipp(
        server.addr("udp"),
        &[
            "-sf",
            &common::scenario("wait_bye.xml"),
            "-s",
            "1000",
            "-m",
            "3",
            "-r",
            "10",
        ],
        Duration::from_secs(30),
    );
    assert_all_calls(&run, 3);
    assert!(
        server.wait_for_log("max_call_secs reached", Duration::from_secs(5)),
        "{}",
        server.log.join("\n")
    );
    assert!(
        server.wait_for_log("BYE answered", Duration::from_secs(5)),
        "{}",
        server.log.join("\n")
    );
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let server = Server::start("");
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
}
