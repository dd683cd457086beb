//! Interpreter tests: every construct, on fake time.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::compile::{Host, load_str};

struct AllPromptsExist;

impl Host for AllPromptsExist {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        Err(std::io::Error::other(format!(
            "{} not in test",
            path.display()
        )))
    }
    fn prompt_exists(&self, _: &Path) -> bool {
        true
    }
}

const HEADER: &str = "flow \"T\"\n  numbers 100\n  timezone Asia/Kolkata\n  hours office mon-fri 09:00-18:00\n  holidays 2026-08-15\n\n";

fn flow(body: &str) -> Arc<Flow> {
    let src = format!("{HEADER}{body}");
    let l = load_str(Path::new("t.ivr"), &src, &AllPromptsExist);
    assert!(!l.has_errors(), "{}", l.render());
    l.flow.expect("flow")
}

/// A call at `local` (Asia/Kolkata) on a fixed Instant.
struct Call {
    it: Interpreter,
    now: Instant,
    out: Vec<Output>,
}

impl Call {
    fn at(body: &str, local: &str) -> Call {
        let f = flow(body);
        let dt: jiff::civil::DateTime = local.parse().expect("datetime");
        let start_time = f.timezone.to_timestamp(dt).expect("ts");
        let ctx = CallContext {
            call_id: "c1".into(),
            caller: "+919800000001".into(),
            called: "100".into(),
            start_time,
        };
        let now = Instant::now();
        let it = Interpreter::start(f, ctx, now);
        let mut c = Call {
            it,
            now,
            out: Vec::new(),
        };
        c.drain();
        c
    }

    fn new(body: &str) -> Call {
        Call::at(body, "2026-11-30T10:00") // a Monday morning
    }

    fn drain(&mut self) {
        while let Some(o) = self.it.poll_output() {
            self.out.push(o);
        }
    }

    fn input(&mut self, i: Input) -> Vec<Output> {
        self.it.handle_input(self.now, i);
        self.drain();
        std::mem::take(&mut self.out)
    }

    fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Moves to the next deadline and fires it.
    fn fire(&mut self) -> Vec<Output> {
        let t = self.it.poll_timeout().expect("a deadline");
        self.now = t;
        self.input(Input::Timeout)
    }
}

fn said(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Play { prompts, .. } => Some(prompts.iter().map(|p| match p {
                Playable::Say { text, .. } => text.clone(),
                Playable::File(f) => f.display().to_string(),
            })),
            _ => None,
        })
        .flatten()
        .collect()
}

fn logs<'a>(out: &'a [Output], kind: &str) -> Vec<&'a [(String, String)]> {
    out.iter()
        .filter_map(|o| match o {
            Output::Log(e) if e.kind == kind => Some(e.fields.as_slice()),
            _ => None,
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], k: &str) -> &'a str {
    fields
        .iter()
        .find(|(x, _)| x == k)
        .map_or("", |(_, v)| v.as_str())
}

fn hangup(out: &[Output]) -> Option<&str> {
    out.iter().find_map(|o| match o {
        Output::Hangup { reason } => Some(reason.as_str()),
        _ => None,
    })
}

const MENU: &str = "step menu
  gather into choice, digits 1, timeout 5s, retries 1
    say \"Press 1 or 2\"
    reprompt say \"Again: 1 or 2\"
    on 1 -> one
    on 2 -> two
    on invalid -> bad
    on timeout -> quiet
step one
  hangup \"one\"
step two
  hangup \"two\"
step bad
  hangup \"bad\"
step quiet
  hangup \"quiet\"
";

#[test]
fn first_digit_timeout_starts_when_the_prompt_ends() {
    let mut c = Call::new(MENU);
    assert_eq!(said(&c.take()), ["Press 1 or 2"]);
    assert_eq!(c.it.poll_timeout(), None, "no timer while the prompt plays");
    c.advance(Duration::from_secs(3));
    c.input(Input::PromptFinished);
    assert_eq!(c.it.poll_timeout(), Some(c.now + Duration::from_secs(5)));
}

#[test]
fn a_choice_branches_at_once() {
    let mut c = Call::new(MENU);
    c.take();
    c.input(Input::PromptFinished);
    let out = c.input(Input::Digit('2'));
    assert_eq!(hangup(&out), Some("two"));
    let branch = logs(&out, "branch");
    assert_eq!(field(branch[0], "to"), "two");
    assert_eq!(c.it.outcome(), Some(&Outcome::HungUp("two".into())));
    assert_eq!(c.it.var("choice"), Some(&Value::Str("2".into())));
}

#[test]
fn silence_reprompts_then_takes_the_timeout_branch() {
    let mut c = Call::new(MENU);
    c.take();
    c.input(Input::PromptFinished);
    let out = c.fire();
    assert_eq!(said(&out), ["Again: 1 or 2"], "retry uses the reprompt");
    c.input(Input::PromptFinished);
    let out = c.fire();
    assert_eq!(hangup(&out), Some("quiet"));
}

#[test]
fn a_wrong_key_is_invalid() {
    let mut c = Call::new(MENU);
    c.take();
    c.input(Input::PromptFinished);
    let out = c.input(Input::Digit('9'));
    assert_eq!(field(logs(&out, "digits")[0], "result"), "invalid");
    assert_eq!(said(&out), ["Again: 1 or 2"]);
    c.input(Input::PromptFinished);
    let out = c.input(Input::Digit('7'));
    assert_eq!(hangup(&out), Some("bad"));
}

#[test]
fn barge_in_stops_the_prompt_and_counts_the_key() {
    let mut c = Call::new(MENU);
    c.take();
    let out = c.input(Input::Digit('1'));
    assert_eq!(out.first(), Some(&Output::StopPlayback));
    assert_eq!(hangup(&out), Some("one"));
}

#[test]
fn without_barge_in_keys_during_the_prompt_are_ignored() {
    let mut c = Call::new(&MENU.replace("retries 1", "retries 1, barge-in off"));
    c.take();
    let out = c.input(Input::Digit('1'));
    assert!(hangup(&out).is_none());
    assert_eq!(logs(&out, "digit.ignored").len(), 1);
    c.input(Input::PromptFinished);
    assert_eq!(hangup(&c.input(Input::Digit('1'))), Some("one"));
}

const COLLECT: &str = "step s
  gather into acct, digits 3-6, end \"#\", timeout 5s, between 2s, retries 0, sensitive
    say \"Account?\"
    on invalid -> bad
    on timeout -> bad
  say \"Got {acct}\"
  hangup
step bad
  hangup \"bad\"
";

#[test]
fn inter_digit_timeout_ends_input_with_enough_digits() {
    let mut c = Call::new(COLLECT);
    c.take();
    c.input(Input::PromptFinished);
    for d in ['4', '2', '0'] {
        c.input(Input::Digit(d));
        assert_eq!(c.it.poll_timeout(), Some(c.now + Duration::from_secs(2)));
        c.advance(Duration::from_millis(500));
    }
    let out = c.fire();
    assert_eq!(said(&out), ["Got 420"]);
    assert_eq!(
        field(logs(&out, "digits")[0], "digits"),
        "***",
        "sensitive digits are masked"
    );
}

#[test]
fn end_key_finishes_and_too_few_digits_are_invalid() {
    let mut c = Call::new(COLLECT);
    c.take();
    c.input(Input::PromptFinished);
    c.input(Input::Digit('1'));
    let out = c.input(Input::Digit('#'));
    assert_eq!(hangup(&out), Some("bad"));
    let mut c = Call::new(COLLECT);
    c.take();
    c.input(Input::PromptFinished);
    for d in "1234#".chars() {
        c.input(Input::Digit(d));
    }
    assert_eq!(c.it.var("acct"), Some(&Value::Str("1234".into())));
}

#[test]
fn max_digits_finish_without_waiting() {
    let mut c = Call::new(COLLECT);
    c.take();
    c.input(Input::PromptFinished);
    let mut out = Vec::new();
    for d in "123456".chars() {
        out = c.input(Input::Digit(d));
    }
    assert_eq!(said(&out), ["Got 123456"]);
}

#[test]
fn sensitive_gather_pauses_and_resumes_recording() {
    let body =
        format!("step start\n  consent say \"Record?\"\n  recording start\n  goto s\n{COLLECT}");
    let mut c = Call::new(&body);
    c.take();
    c.input(Input::PromptFinished);
    let out = c.input(Input::Digit('1'));
    assert!(out.contains(&Output::Consent { granted: true }));
    assert!(out.contains(&Output::Recording(RecordingOp::Start)));
    assert!(out.contains(&Output::Recording(RecordingOp::Pause)));
    c.input(Input::PromptFinished);
    let mut out = Vec::new();
    for d in "123456".chars() {
        out = c.input(Input::Digit(d));
    }
    assert!(out.contains(&Output::Recording(RecordingOp::Resume)));
}

#[test]
fn recording_needs_a_yes() {
    let body =
        "step s\n  consent say \"Record?\", timeout 2s, retries 0\n  recording start\n  hangup\n";
    let mut c = Call::new(body);
    c.take();
    c.input(Input::PromptFinished);
    let out = c.fire();
    assert!(
        out.contains(&Output::Consent { granted: false }),
        "silence is a no"
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Recording(_))));
    assert_eq!(field(logs(&out, "recording")[0], "event"), "refused");
    let mut c = Call::new(body);
    c.take();
    c.input(Input::PromptFinished);
    let out = c.input(Input::Digit('2'));
    assert!(out.contains(&Output::Consent { granted: false }));
    assert!(!out.iter().any(|o| matches!(o, Output::Recording(_))));
}

#[test]
fn conditions_variables_and_arithmetic() {
    let body = "step s
  set n = 2 * 3 + 1
  set who = \"caller \" + caller
  if n > 6 and startswith(caller, \"+91\")
    say \"big {n}\"
  else if n == 7
    say \"never\"
  else
    say \"small\"
  say \"{who} {called}\"
  hangup
";
    let mut c = Call::new(body);
    let out = c.take();
    assert_eq!(said(&out), ["big 7"]);
    let out = c.input(Input::PromptFinished);
    assert_eq!(said(&out), ["caller +919800000001 100"]);
}

const HOURS: &str = "step s
  if open(office)
    say \"open\"
  else
    say \"closed {weekday} {time} {holiday}\"
  hangup
";

#[test]
fn opening_hours_follow_the_flow_time_zone_and_holidays() {
    assert_eq!(said(&Call::at(HOURS, "2026-11-30T09:00").take()), ["open"]);
    assert_eq!(
        said(&Call::at(HOURS, "2026-11-30T08:59").take()),
        ["closed mon 08:59 false"]
    );
    assert_eq!(
        said(&Call::at(HOURS, "2026-11-29T10:00").take()),
        ["closed sun 10:00 false"]
    );
    assert_eq!(
        said(&Call::at(HOURS, "2026-08-14T18:00").take()),
        ["closed fri 18:00 false"]
    );
    assert_eq!(
        said(&Call::at(HOURS, "2026-08-15T10:00").take()),
        ["closed sat 10:00 true"]
    );
}

#[test]
fn time_moves_with_the_call() {
    let body = "step s\n  wait 2m\n  if open(office)\n    hangup \"open\"\n  hangup \"closed\"\n";
    let mut c = Call::at(body, "2026-11-30T17:59");
    assert_eq!(c.it.poll_timeout(), Some(c.now + Duration::from_secs(120)));
    assert_eq!(hangup(&c.fire()), Some("closed"));
}

#[test]
fn blocks_are_called_and_return() {
    let body = "step s\n  call greet\n  call greet\n  hangup\nblock greet\n  say \"hi\"\n";
    let mut c = Call::new(body);
    assert_eq!(said(&c.take()), ["hi"]);
    assert_eq!(said(&c.input(Input::PromptFinished)), ["hi"]);
    assert_eq!(hangup(&c.input(Input::PromptFinished)), Some("completed"));
}

#[test]
fn record_a_message() {
    let body = "step s\n  record into msg, max 30s, beep, silence 3s, end \"#\"\n  say \"saved {msg}\"\n  hangup\n";
    let mut c = Call::new(body);
    let out = c.take();
    assert!(out.contains(&Output::Record {
        max: Duration::from_secs(30),
        beep: true,
        silence: Duration::from_secs(3)
    }));
    assert_eq!(c.input(Input::Digit('#')), [Output::StopRecord]);
    let out = c.input(Input::RecordingFinished {
        id: "r9".into(),
        duration: Duration::from_secs(4),
    });
    assert_eq!(said(&out), ["saved r9"]);
}

#[test]
fn a_recording_that_never_finishes_times_out() {
    let mut c = Call::new("step s\n  record max 10s\n  hangup\n");
    c.take();
    assert_eq!(c.it.poll_timeout(), Some(c.now + Duration::from_secs(20)));
    let out = c.fire();
    assert!(out.contains(&Output::StopRecord));
    assert_eq!(hangup(&out), Some("completed"));
}

#[test]
fn queue_outcomes() {
    let body = "step s\n  queue \"sales\", max wait 1m\n    on overflow -> full\nstep full\n  hangup \"full\"\n";
    let mut c = Call::new(body);
    assert!(c.take().iter().any(|o| matches!(o, Output::Queue { name, max_wait, .. } if name == "sales" && *max_wait == Duration::from_secs(60))));
    assert_eq!(
        hangup(&c.input(Input::QueueDone(QueueOutcome::Overflow))),
        Some("full")
    );
    let mut c = Call::new(body);
    c.take();
    let out = c.input(Input::QueueDone(QueueOutcome::Answered));
    assert!(hangup(&out).is_none(), "the agent leg owns the call now");
    assert_eq!(c.it.outcome(), Some(&Outcome::Queued("sales".into())));
}

#[test]
fn a_queue_key_leaves_to_its_step() {
    let body = "step s\n  queue \"sales\"\n    on overflow -> full\n    on 0 -> vm\n    on \"#\" -> full\nstep full\n  hangup \"full\"\nstep vm\n  hangup \"vm\"\n";
    let mut c = Call::new(body);
    assert!(
        c.take()
            .iter()
            .any(|o| matches!(o, Output::Queue { keys, .. } if keys == &vec!['0', '#']))
    );
    assert_eq!(
        hangup(&c.input(Input::QueueDone(QueueOutcome::Key('0')))),
        Some("vm")
    );
}

#[test]
fn a_queue_priority_is_passed_on_and_bounded() {
    let mut c = Call::new("step s\n  queue \"sales\", priority 7\n    on overflow -> s\n");
    assert!(
        c.take()
            .iter()
            .any(|o| matches!(o, Output::Queue { priority: 7, .. }))
    );
    let src = "flow \"F\"\n  numbers 1000\n\nstep s\n  queue \"sales\", priority 12\n    on overflow -> s\n";
    let loaded = crate::load_str(std::path::Path::new("f.ivr"), src, &AllPromptsExist);
    assert!(
        loaded.render().contains("a queue priority is 0 to 9"),
        "{}",
        loaded.render()
    );
}

#[test]
fn a_queue_key_of_two_digits_is_e091() {
    let src = "flow \"F\"\n  numbers 1000\n\nstep s\n  queue \"sales\"\n    on overflow -> s\n    on 12 -> s\n";
    let loaded = crate::load_str(std::path::Path::new("f.ivr"), src, &AllPromptsExist);
    assert!(loaded.flow.is_none());
    assert!(loaded.render().contains("E091"), "{}", loaded.render());
}

#[test]
fn transfer_success_and_failure() {
    let body = "step s\n  transfer \"sip:desk@pbx.example\"\n    on failure -> f\nstep f\n  hangup \"transfer failed\"\n";
    let mut c = Call::new(body);
    assert!(c.take().contains(&Output::Transfer {
        target: "sip:desk@pbx.example".into()
    }));
    c.input(Input::TransferDone(Ok(())));
    assert_eq!(
        c.it.outcome(),
        Some(&Outcome::Transferred("sip:desk@pbx.example".into()))
    );
    let mut c = Call::new(body);
    c.take();
    assert_eq!(
        hangup(&c.input(Input::TransferDone(Err("486".into())))),
        Some("transfer failed")
    );
}

const FETCH: &str = "step s
  gather into acct, digits 2, timeout 5s
    say \"acct\"
    on timeout -> f
  fetch get \"https://api.example.in/b?x=1\", timeout 2s
    send acct
    into balance
    on failure -> f
  say \"balance {balance}\"
  hangup
step f
  hangup \"failed\"
";

#[test]
fn fetch_sends_variables_and_reads_the_reply() {
    let mut c = Call::new(FETCH);
    c.take();
    c.input(Input::PromptFinished);
    c.input(Input::Digit('4'));
    let out = c.input(Input::Digit('2'));
    assert!(out.iter().any(|o| matches!(o, Output::Fetch { url, body: None, .. } if url == "https://api.example.in/b?x=1&acct=42")));
    let out = c.input(Input::FetchDone(Ok(serde_json::json!({"balance": 99}))));
    assert_eq!(said(&out), ["balance 99"]);
}

#[test]
fn fetch_failures_take_the_failure_branch() {
    for reply in [
        Some(Err("503".to_owned())),
        Some(Ok(serde_json::json!({"other": 1}))), // missing field
        None,                                      // no reply at all
    ] {
        let mut c = Call::new(FETCH);
        c.take();
        c.input(Input::PromptFinished);
        c.input(Input::Digit('4'));
        c.input(Input::Digit('2'));
        let out = match reply {
            Some(r) => c.input(Input::FetchDone(r.map_err(ServiceFailure::from))),
            None => {
                assert_eq!(c.it.poll_timeout(), Some(c.now + Duration::from_secs(3)));
                c.fire()
            }
        };
        assert_eq!(hangup(&out), Some("failed"));
    }
}

#[test]
fn fetch_post_body_is_json() {
    let body = "step s\n  set pin = \"12\"\n  fetch post \"https://api.example.in/p\"\n    send pin\n    on failure -> s\n  hangup\n";
    let mut c = Call::new(body);
    let out = c.take();
    assert!(out.iter().any(|o| matches!(o, Output::Fetch { body: Some(b), .. } if b == &serde_json::json!({"pin": "12"}))));
}

#[test]
fn custom_log_events_mask_sensitive_values() {
    let body = "step s\n  gather into otp, digits 4, sensitive\n    say \"otp\"\n    on timeout -> s\n  log \"otp.entered\" otp=otp, len=len(otp)\n  hangup\n";
    let mut c = Call::new(body);
    c.take();
    c.input(Input::PromptFinished);
    let mut out = Vec::new();
    for d in "9876".chars() {
        out = c.input(Input::Digit(d));
    }
    let ev = logs(&out, "custom");
    assert_eq!(field(ev[0], "event"), "otp.entered");
    assert_eq!(field(ev[0], "otp"), "****");
    assert_eq!(
        field(ev[0], "len"),
        "*",
        "derived from a sensitive value: masked too"
    );
}

#[test]
fn the_caller_can_hang_up_at_any_moment() {
    let mut c = Call::new(MENU);
    c.take();
    let out = c.input(Input::HangUp);
    assert_eq!(field(logs(&out, "hangup")[0], "by"), "caller");
    assert!(c.it.is_ended());
    assert_eq!(c.input(Input::Digit('1')), [], "nothing after the end");
    assert_eq!(c.it.poll_timeout(), None);
}

#[test]
fn a_runaway_loop_is_stopped_by_the_step_budget() {
    let body = "step spin\n  set n = n + 1\n  if n < 100000000\n    goto spin\n  hangup\n";
    let mut c = Call::new(body);
    let out = c.take();
    assert_eq!(hangup(&out), Some("flow error"));
    let err = logs(&out, "error");
    assert_eq!(field(err[0], "step"), "spin");
    assert!(matches!(c.it.outcome(), Some(Outcome::Error(m)) if m.contains("`spin`")));
}

#[test]
fn runtime_errors_end_the_call_with_a_reason() {
    let mut c = Call::new("step s\n  set z = 0\n  set n = 1 / z\n  hangup\n");
    let out = c.take();
    assert_eq!(hangup(&out), Some("flow error"));
    assert_eq!(field(logs(&out, "error")[0], "message"), "division by zero");
}

#[test]
fn each_step_is_logged_and_the_version_is_the_content_hash() {
    let mut c = Call::new("step a\n  goto b\nstep b\n  hangup\n");
    let out = c.take();
    let steps: Vec<_> = logs(&out, "step")
        .iter()
        .map(|f| field(f, "name").to_owned())
        .collect();
    assert_eq!(steps, ["a", "b"]);
    let v1 = flow("step a\n  hangup\n").version.clone();
    assert_eq!(v1, flow("step a\n  hangup\n").version.clone());
    assert_ne!(v1, flow("step a\n  hangup \"x\"\n").version.clone());
    assert_eq!(v1.0.len(), 16);
}

#[test]
fn stale_timeouts_are_ignored() {
    let mut c = Call::new(MENU);
    c.take();
    c.input(Input::PromptFinished);
    c.advance(Duration::from_secs(1));
    assert_eq!(
        c.input(Input::Timeout),
        [],
        "before the deadline nothing happens"
    );
}

#[test]
fn an_overdue_deadline_fires_before_a_late_key() {
    let mut c = Call::new(COLLECT);
    c.take();
    c.input(Input::PromptFinished);
    for d in "123".chars() {
        c.input(Input::Digit(d));
    }
    // The driver is late: the inter-digit timeout passed, then a key came.
    c.advance(Duration::from_secs(3));
    let out = c.input(Input::Digit('4'));
    assert_eq!(said(&out), ["Got 123"], "the 4 came after input had ended");
}
