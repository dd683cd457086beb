//! `dhwani flow ...` end to end: the real binary on the example flows and
//! on broken ones, checking exit statuses and what a person sees.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn dhwani() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dhwani"))
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/flows")
}

#[test]
fn check_accepts_the_examples_and_prints_their_versions() {
    let out = dhwani()
        .args(["flow", "check"])
        .args(["bank.ivr", "clinic.ivr", "support.ivr"].map(|f| examples().join(f)))
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches(": ok, flow").count(), 3, "{stdout}");
    assert!(stdout.contains("version "), "{stdout}");
}

#[test]
fn check_rejects_a_broken_flow_with_located_hints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = dir.path().join("broken.ivr");
    std::fs::write(
        &flow,
        "flow \"Broken\"\n  numbers 1000\n\nstep main\n  gather digits 1\n    say \"Press 1\"\n    on 1 -> mian\n  sya \"x\"\n  goto main\n",
    )
    .expect("write");
    let out = dhwani()
        .args(["flow", "check"])
        .arg(&flow)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.ivr:7:13"), "{stderr}");
    assert!(stderr.contains("did you mean `main`?"), "{stderr}");
    assert!(stderr.contains("broken.ivr:8:3"), "{stderr}");
    assert!(stderr.contains("did you mean `say`?"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("cannot be used"));
}

#[test]
fn test_passes_the_examples_and_fails_a_wrong_expectation() {
    let out = dhwani()
        .args(["flow", "test"])
        .args(["bank.ivr", "clinic.ivr", "support.ivr"].map(|f| examples().join(f)))
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(stdout.matches("test result: ok").count(), 3, "{stdout}");

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("mini.ivr"),
        "flow \"Mini\"\n\nstep main\n  say \"Hello there\"\n  hangup \"done\"\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("mini.ivrtest"),
        "test \"greets\"\n  expect hear \"Hello there\"\n  expect hangup \"done\"\n\ntest \"wrong\"\n  expect hear \"Goodbye\"\n",
    )
    .expect("write");
    let out = dhwani()
        .args(["flow", "test"])
        .arg(dir.path().join("mini.ivr"))
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("test greets ... ok"), "{stdout}");
    assert!(stdout.contains("test wrong ... FAILED"), "{stdout}");
    assert!(stdout.contains("- expect hear \"Goodbye\""), "{stdout}");
    assert!(
        stdout.contains("+ [  0.000s] hear \"Hello there\""),
        "{stdout}"
    );
}

#[test]
fn run_lets_a_person_walk_a_flow_in_the_terminal() {
    // Decline recording, then hang up at the main menu.
    let out = walk_bank(&["2", "hangup"]);
    assert!(out.contains("[step welcome]"), "{out}");
    assert!(out.contains("\"Welcome to Acme Bank.\""), "{out}");
    assert!(out.contains("[consent: no]"), "{out}");
    assert!(out.contains("[step main_menu]"), "{out}");
    assert!(out.contains("You hung up."), "{out}");
}

/// `flow run` on bank.ivr with stdin lines, its stdout when it ends.
fn walk_bank(lines: &[&str]) -> String {
    let mut child = dhwani()
        .args(["flow", "run", "--caller", "+919800000009"])
        .arg(examples().join("bank.ivr"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    for l in lines {
        stdin.write_all(format!("{l}\n").as_bytes()).expect("write");
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "flow run did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read");
    out
}

#[test]
fn run_speaks_of_the_call_recording_in_the_timelines_words() {
    let out = walk_bank(&["1", "hangup"]);
    assert!(out.contains("[consent: yes]"), "{out}");
    assert!(out.contains("[call recording started]"), "{out}");
    for rust in [
        "Start]", "Pause]", "Resume]", "Stop]", ": Start", "HungUp(", "Outcome",
    ] {
        assert!(!out.contains(rust), "a Rust name ({rust}) in: {out}");
    }
}

#[test]
fn explain_documents_every_statement() {
    let out = dhwani().args(["flow", "explain"]).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for v in ivr_dsl::parser::stmt::VERBS {
        assert!(
            stdout.contains(&format!("  {v} ")),
            "{v} missing from:\n{stdout}"
        );
    }
    let out = dhwani()
        .args(["flow", "explain", "nonsense"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn check_names_a_corrupt_prompt_and_a_missing_speech_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("hello.wav"),
        b"RIFF this is not really audio at all",
    )
    .expect("write");
    let flow = dir.path().join("f.ivr");
    std::fs::write(
        &flow,
        "flow \"F\"\n\nstep main\n  play \"hello.wav\"\n  say \"Bye\"\n  hangup\n",
    )
    .expect("write");
    let out = dhwani()
        .args(["flow", "check"])
        .arg(&flow)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("hello.wav") && stderr.contains("not a WAV"),
        "{stderr}"
    );
    // Without espeak-ng on PATH, `say` cannot work: refused at load.
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/prompts/beep.wav"),
        dir.path().join("hello.wav"),
    )
    .expect("copy");
    let out = dhwani()
        .args(["flow", "check"])
        .arg(&flow)
        .env("PATH", "/nonexistent")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no text-to-speech engine is installed"),
        "{stderr}"
    );
    // With it, the flow is fine.
    let out = dhwani()
        .args(["flow", "check"])
        .arg(&flow)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
