//! Shared by the flow benchmarks: a large generated flow and a call walk.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ivr_dsl::interp::{CallContext, Input, Interpreter};
use ivr_dsl::{Flow, Host, load_str};

pub struct NoFiles;

impl Host for NoFiles {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        Err(std::io::Error::other(format!(
            "{} not in bench",
            path.display()
        )))
    }
    fn prompt_exists(&self, _: &Path) -> bool {
        true
    }
}

/// A flow of `n` menu steps, each a gather whose choices go on to the next
/// steps, with a condition, a variable and a log line: the shape of a
/// large real IVR.
pub fn big_flow(n: usize) -> String {
    let mut s = String::from(
        "flow \"Big\"\n  numbers 1000\n  timezone Asia/Kolkata\n  hours office mon-fri 09:00-18:00\n\n",
    );
    for i in 0..n {
        let next = (i + 1) % n;
        let skip = (i + 2) % n;
        s.push_str(&format!(
            "step s{i}\n  set visits = visits + 1\n  if open(office) and visits < 5000\n    say \"Menu {i}, visit {{visits}}.\"\n  log \"menu\" step={i}\n  gather into choice, digits 1, timeout 5s, retries 1\n    play \"prompts/menu{i}.wav\"\n    on 1 -> s{next}\n    on 2 -> s{skip}\n    on 9 -> bye\n    on invalid -> bye\n    on timeout -> bye\n\n"
        ));
    }
    s.push_str("step bye\n  say \"Goodbye.\"\n  hangup\n");
    s
}

pub fn load(src: &str) -> Arc<Flow> {
    let l = load_str(Path::new("big.ivr"), src, &NoFiles);
    assert!(l.diagnostics.is_empty(), "{}", l.render());
    l.flow.expect("flow")
}

pub fn ctx() -> CallContext {
    CallContext {
        call_id: "bench".into(),
        caller: "+919800000000".into(),
        called: "1000".into(),
        start_time: "2026-11-30T05:00:00Z".parse().expect("time"),
    }
}

/// Runs one call through `steps` menus: each prompt ends, the caller presses 1.
pub fn walk(flow: &Arc<Flow>, steps: usize) -> usize {
    let now = Instant::now();
    let mut it = Interpreter::start(Arc::clone(flow), ctx(), now);
    let mut events = 0;
    for _ in 0..steps {
        while it.poll_output().is_some() {}
        it.handle_input(now, Input::PromptFinished);
        while it.poll_output().is_some() {}
        it.handle_input(now, Input::PromptFinished);
        while it.poll_output().is_some() {}
        it.handle_input(now, Input::Digit('1'));
        events += 3;
    }
    black_box(it.step_name());
    events
}
