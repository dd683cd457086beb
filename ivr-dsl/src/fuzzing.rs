//! Shared by the fuzz target (`fuzz/fuzz_targets/ivr_flow.rs`), its replay
//! test and the interpreter property tests: load arbitrary bytes as a
//! flow, and run a flow with an arbitrary event script while checking the
//! interpreter's invariants.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::compile::{Host, load_str};
use crate::flow::Flow;
use crate::interp::{CallContext, Input, Interpreter, QueueOutcome, STEP_BUDGET};

/// No includes, every prompt file exists.
struct FuzzHost;

impl Host for FuzzHost {
    fn read(&self, _: &Path) -> std::io::Result<String> {
        Err(std::io::Error::other("no files while fuzzing"))
    }
    fn prompt_exists(&self, _: &Path) -> bool {
        true
    }
}

/// Loads `data` as a flow and renders its diagnostics; a flow that loads
/// is run with `data` as its event script. Panics when an invariant breaks.
// Panicking is how a fuzz target reports a finding.
#[allow(clippy::panic)]
pub fn exercise(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let loaded = load_str(Path::new("fuzz.ivr"), &text, &FuzzHost);
    let _ = loaded.render();
    if let Some(flow) = loaded.flow
        && let Err(e) = run_events(&flow, data)
    {
        panic!("interpreter invariant broken: {e}");
    }
}

/// Most outputs one input may produce: each instruction logs at most a few
/// lines, and the budget bounds the instructions.
pub const MAX_OUTPUTS_PER_INPUT: usize = STEP_BUDGET as usize * 4;

/// Runs `flow` with one event per byte of `script`. Checks that every
/// input returns with a bounded number of outputs, that deadlines are never
/// in the past, and that nothing happens after the end.
pub fn run_events(flow: &Arc<Flow>, script: &[u8]) -> Result<usize, String> {
    let ctx = CallContext {
        call_id: "fuzz".into(),
        caller: "+919800000000".into(),
        called: "1000".into(),
        start_time: jiff::Timestamp::from_second(1_780_000_000)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    };
    let mut now = Instant::now();
    let mut it = Interpreter::start(Arc::clone(flow), ctx, now);
    let mut total = drain(&mut it)?;
    for &b in script {
        let input = match b % 24 {
            d @ 0..=9 => Input::Digit(char::from(b'0' + d)),
            10 => Input::Digit('*'),
            11 => Input::Digit('#'),
            12 | 13 => Input::PromptFinished,
            14 | 15 => {
                if let Some(t) = it.poll_timeout() {
                    now = now.max(t);
                }
                Input::Timeout
            }
            16 => Input::RecordingFinished {
                id: "r".into(),
                duration: Duration::from_secs(3),
            },
            17 => Input::FetchDone(Ok(
                serde_json::json!({"balance": 5, "reference": "x", "slot": "1", "doctor": "d"}),
            )),
            18 => Input::FetchDone(Err("down".into())),
            19 => Input::QueueDone(QueueOutcome::Overflow),
            20 => Input::QueueDone(if b > 128 {
                QueueOutcome::Answered
            } else {
                QueueOutcome::Unavailable
            }),
            21 => Input::TransferDone(if b > 128 { Ok(()) } else { Err("busy".into()) }),
            22 => Input::HangUp,
            _ => {
                now += Duration::from_millis(u64::from(b) * 40);
                continue;
            }
        };
        let was_ended = it.is_ended();
        let hang_up = input == Input::HangUp;
        it.handle_input(now, input);
        let n = drain(&mut it)?;
        if was_ended && n > 0 {
            return Err(format!("{n} outputs after the call ended"));
        }
        if hang_up && !it.is_ended() {
            return Err("still running after the caller hung up".into());
        }
        if let Some(t) = it.poll_timeout()
            && t < now
        {
            return Err("a deadline in the past".into());
        }
        total += n;
    }
    Ok(total)
}

fn drain(it: &mut Interpreter) -> Result<usize, String> {
    let mut n = 0;
    while it.poll_output().is_some() {
        n += 1;
        if n > MAX_OUTPUTS_PER_INPUT {
            return Err(format!(
                "more than {MAX_OUTPUTS_PER_INPUT} outputs for one input"
            ));
        }
    }
    Ok(n)
}
