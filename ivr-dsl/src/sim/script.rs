//! Flow tests: the `.ivrtest` format and its runner.
//!
//! ```text
//! # Tests for bank.ivr (the flow file with the same name, or `flow "x.ivr"`)
//! caller "+919800000001"        defaults for every test
//! at 2026-11-30 10:00           local time in the flow's time zone
//!
//! test "balance enquiry"
//!   stub fetch {"balance": 1500}
//!   expect hear "Welcome"
//!   press 1
//!   expect step balance
//!   wait 6s
//!   expect hangup "completed"
//! ```
//!
//! `allow "host", ...` at the top makes `fetch` to any other host fail,
//! as the server's per-tenant allow-list would.
//!
//! Caller actions: `press KEYS` (after the prompt ends), `barge KEYS` (over
//! the prompt), `wait DURATION` (silence), `hangup`. Host stubs (used in
//! order by kind): `stub fetch JSON`, `stub fetch fail "why"`, `stub queue
//! answered|overflow|unavailable`, `stub transfer ok|fail "why"`, `stub
//! record DURATION`. Expectations match the transcript in order, each
//! after the previous one: `expect hear|play|step|digits|log|consent|
//! recording|record|grievance|queue|transfer|fetch|hangup|error ...`, `expect no
//! KIND ...` (nothing like it happened), `expect ended` and `expect var
//! NAME = VALUE`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Entry, Simulator, Stub};
use crate::allow::AllowList;
use crate::compile::{Host, load};
use crate::error::Error;
use crate::flow::Flow;
use crate::interp::{CallContext, QueueOutcome};

/// One caller action or expectation.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Keys after the prompt ends.
    Press(String),
    /// Keys over the prompt.
    Barge(String),
    /// Silence.
    Wait(Duration),
    /// The caller hangs up.
    HangUp,
    /// A transcript line of this kind containing this text.
    Expect {
        /// Entry kind.
        kind: &'static str,
        /// Texts it must contain (all).
        texts: Vec<String>,
        /// Whole line as written (for reports).
        shown: String,
    },
    /// No transcript line of this kind containing this text, so far.
    ExpectNone {
        /// Entry kind.
        kind: &'static str,
        /// Texts it must not contain (all).
        texts: Vec<String>,
        /// Whole line as written.
        shown: String,
    },
    /// The flow has ended.
    ExpectEnded,
    /// A variable's value.
    ExpectVar(String, String),
}

/// One `test` block.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its name.
    pub name: String,
    /// Line of `test`.
    pub line: usize,
    /// Caller number.
    pub caller: String,
    /// Local start time.
    pub at: jiff::civil::DateTime,
    /// Host stubs.
    pub stubs: Vec<Stub>,
    /// Actions and expectations, with their lines.
    pub steps: Vec<(usize, Step)>,
}

/// A parsed `.ivrtest` file.
#[derive(Debug, Clone)]
pub struct TestFile {
    /// The flow it tests.
    pub flow: PathBuf,
    /// Hosts `fetch` may call (`allow "host"` lines); None: any.
    pub allow: Option<AllowList>,
    /// Its tests.
    pub cases: Vec<Case>,
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Case name.
    pub name: String,
    /// Why it failed (None: passed).
    pub failure: Option<String>,
    /// What happened.
    pub transcript: Vec<Entry>,
}

/// Parses a test file. Errors carry `file:line:column`.
pub fn parse(path: &Path, text: &str) -> Result<TestFile, Error> {
    let err = |line: usize, col: usize, message: String| Error::TestScript {
        location: format!("{}:{line}:{col}", path.display()),
        message,
    };
    let mut flow = None;
    let mut allow: Vec<String> = Vec::new();
    let mut caller = "+910000000000".to_owned();
    let mut at: jiff::civil::DateTime = jiff::civil::date(2026, 1, 5).at(10, 0, 0, 0);
    let mut cases: Vec<Case> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let indent = raw.len() - raw.trim_start().len();
        let words = split(raw).map_err(|(c, m)| err(line, c, m))?;
        let Some((first, _)) = words.first() else {
            continue;
        };
        let word = |n: usize| words.get(n).map(|(w, _)| w.as_str());
        let col = |n: usize| words.get(n).map_or(raw.len() + 1, |(_, c)| *c);
        let rest_raw = |n: usize| raw.get(col(n).saturating_sub(1)..).unwrap_or("").trim();
        let in_case = indent > 0;
        if !in_case {
            match first.as_str() {
                "flow" => {
                    flow = Some(PathBuf::from(word(1).ok_or_else(|| {
                        err(line, col(1), "write `flow \"name.ivr\"`".into())
                    })?))
                }
                "allow" => {
                    if words.len() < 2 {
                        return Err(err(line, col(1), "write `allow \"api.example.in\"`".into()));
                    }
                    allow.extend(
                        words
                            .iter()
                            .skip(1)
                            .map(|(w, _)| w.trim_end_matches(',').to_owned()),
                    );
                }
                "caller" => {
                    caller = word(1)
                        .ok_or_else(|| err(line, col(1), "write `caller \"+9198...\"`".into()))?
                        .to_owned()
                }
                "at" => at = parse_at(rest_raw(1)).map_err(|m| err(line, col(1), m))?,
                "test" => cases.push(Case {
                    name: word(1)
                        .ok_or_else(|| err(line, col(1), "write `test \"what it checks\"`".into()))?
                        .to_owned(),
                    line,
                    caller: caller.clone(),
                    at,
                    stubs: Vec::new(),
                    steps: Vec::new(),
                }),
                other => {
                    return Err(err(
                        line,
                        1,
                        format!(
                            "`{other}` cannot start a line; expected `test`, `flow`, `caller` or `at`"
                        ),
                    ));
                }
            }
            continue;
        }
        let Some(case) = cases.last_mut() else {
            return Err(err(
                line,
                indent + 1,
                "indented line before any `test \"name\"`".into(),
            ));
        };
        let need = |n: usize, what: &str| {
            word(n)
                .map(str::to_owned)
                .ok_or_else(|| err(line, col(n), format!("expected {what}")))
        };
        match first.as_str() {
            "caller" => case.caller = need(1, "a number")?,
            "at" => case.at = parse_at(rest_raw(1)).map_err(|m| err(line, col(1), m))?,
            "press" => case.steps.push((
                line,
                Step::Press(keys(&need(1, "keys")?).map_err(|m| err(line, col(1), m))?),
            )),
            "barge" => case.steps.push((
                line,
                Step::Barge(keys(&need(1, "keys")?).map_err(|m| err(line, col(1), m))?),
            )),
            "wait" => case.steps.push((
                line,
                Step::Wait(
                    duration(&need(1, "a duration like 5s")?).map_err(|m| err(line, col(1), m))?,
                ),
            )),
            "hangup" => case.steps.push((line, Step::HangUp)),
            "stub" => {
                let stub = match (word(1), word(2)) {
                    (Some("fetch"), Some("fail")) => Stub::FetchFail(word(3).unwrap_or("failed").to_owned()),
                    (Some("fetch"), _) => Stub::FetchReply(
                        serde_json::from_str(rest_raw(2)).map_err(|e| err(line, col(2), format!("bad JSON: {e}")))?,
                    ),
                    (Some("queue"), Some(o)) => Stub::Queue(match o {
                        "answered" => QueueOutcome::Answered,
                        "overflow" => QueueOutcome::Overflow,
                        "unavailable" => QueueOutcome::Unavailable,
                        _ => return Err(err(line, col(2), "queue outcome is answered, overflow or unavailable".into())),
                    }),
                    (Some("transfer"), Some("ok")) => Stub::Transfer(Ok(())),
                    (Some("transfer"), Some("fail")) => Stub::Transfer(Err(word(3).unwrap_or("failed").into())),
                    (Some("record"), Some(d)) => Stub::Record(duration(d).map_err(|m| err(line, col(2), m))?),
                    _ => return Err(err(line, col(1), "stubs are: fetch JSON, fetch fail \"why\", queue OUTCOME, transfer ok|fail \"why\", record DURATION".into())),
                };
                case.stubs.push(stub);
            }
            "expect" => {
                let negated = word(1) == Some("no");
                let skip = usize::from(negated);
                let what = need(1 + skip, "what to expect")?;
                let args: Vec<String> = words
                    .iter()
                    .skip(2 + skip)
                    .map(|(w, _)| w.clone())
                    .collect();
                let shown = raw.trim().to_owned();
                let step = match what.as_str() {
                    "ended" => Step::ExpectEnded,
                    "var" => {
                        let name = need(2, "a variable name")?;
                        let value = match (word(3), word(4)) {
                            (Some("="), Some(v)) => v.to_owned(),
                            (Some(v), _) if v != "=" => v.to_owned(),
                            _ => {
                                return Err(err(
                                    line,
                                    col(3),
                                    "write `expect var NAME = VALUE`".into(),
                                ));
                            }
                        };
                        Step::ExpectVar(name, value)
                    }
                    "digits" => Step::Expect {
                        kind: "digits",
                        texts: args
                            .iter()
                            .enumerate()
                            .map(|(i, a)| {
                                if i == 0 && !a.contains('=') {
                                    format!("digits={a} ")
                                } else {
                                    a.clone()
                                }
                            })
                            .collect(),
                        shown,
                    },
                    _ => {
                        let kind = match what.as_str() {
                            "hear" => "hear",
                            "play" => "play",
                            "step" => "step",
                            "log" => "log",
                            "consent" => "consent",
                            "recording" => "recording",
                            "record" => "record",
                            "grievance" => "grievance",
                            "queue" => "queue",
                            "transfer" => "transfer",
                            "fetch" => "fetch",
                            "hangup" => "hangup",
                            "error" => "error",
                            "branch" => "branch",
                            other => {
                                return Err(err(
                                    line,
                                    col(1),
                                    format!(
                                        "cannot expect `{other}`: use hear, play, step, digits, branch, log, consent, recording, record, grievance, queue, transfer, fetch, hangup, error, ended or var"
                                    ),
                                ));
                            }
                        };
                        if negated {
                            Step::ExpectNone {
                                kind,
                                texts: args,
                                shown,
                            }
                        } else {
                            Step::Expect {
                                kind,
                                texts: args,
                                shown,
                            }
                        }
                    }
                };
                case.steps.push((line, step));
            }
            other => {
                return Err(err(
                    line,
                    indent + 1,
                    format!(
                        "unknown test line `{other}`: use press, barge, wait, hangup, stub, expect, caller or at"
                    ),
                ));
            }
        }
    }
    let flow = match flow {
        Some(f) => path.parent().unwrap_or(Path::new("")).join(f),
        None => path.with_extension("ivr"),
    };
    let allow = if allow.is_empty() {
        None
    } else {
        Some(AllowList::new(&allow).map_err(|m| err(1, 1, m.to_string()))?)
    };
    Ok(TestFile { flow, allow, cases })
}

fn parse_at(s: &str) -> Result<jiff::civil::DateTime, String> {
    let s = s.split('#').next().unwrap_or("").trim().replace(' ', "T");
    s.parse::<jiff::civil::DateTime>()
        .map_err(|_| "write the local start time as `at 2026-11-30 10:00`".to_owned())
}

fn keys(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.chars().all(crate::parser::stmt::is_key) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` are not phone keys (0-9, *, #; quote a # as \"#\")"
        ))
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    let mut d = Vec::new();
    let toks = crate::lexer::lex(crate::source::FileId(0), s, &mut d);
    match toks.first().map(|t| &t.tok) {
        Some(crate::lexer::Tok::Duration(x)) if d.is_empty() && toks.len() == 3 => Ok(*x),
        _ => Err(format!("`{s}` is not a duration: write 5s, 500ms or 2m")),
    }
}

/// Splits a line into words and "quoted strings", with 1-based columns.
/// `#` outside quotes starts a comment.
fn split(line: &str) -> Result<Vec<(String, usize)>, (usize, String)> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c == '#' {
            break;
        }
        let col = line.get(..i).map_or(1, |s| s.chars().count() + 1);
        if c == '"' {
            let mut s = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            s.push(e);
                        }
                    }
                    _ => s.push(c),
                }
            }
            if !closed {
                return Err((col, "string is not closed".into()));
            }
            out.push((s, col));
        } else {
            let mut s = String::from(c);
            while let Some((_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                s.push(*c);
                chars.next();
            }
            out.push((s, col));
        }
    }
    Ok(out)
}

/// Runs one case against a loaded flow.
pub fn run_case(
    flow: &Arc<Flow>,
    case: &Case,
    flow_dir: &Path,
    allow: Option<&AllowList>,
) -> CaseResult {
    let start_time = flow
        .timezone
        .to_timestamp(case.at)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let ctx = CallContext {
        call_id: format!("test-{}", case.line),
        caller: case.caller.clone(),
        called: flow.numbers.first().cloned().unwrap_or_default(),
        start_time,
    };
    let mut sim = Simulator::start(
        Arc::clone(flow),
        ctx,
        case.stubs.clone(),
        flow_dir,
        allow.cloned(),
    );
    let mut cursor = 0usize;
    let mut failure = None;
    for (line, step) in &case.steps {
        match step {
            Step::Press(k) => sim.press(k),
            Step::Barge(k) => sim.barge(k),
            Step::Wait(d) => sim.wait(*d),
            Step::HangUp => sim.hang_up(),
            Step::Expect { kind, texts, shown } => {
                let found = loop {
                    let hit = sim
                        .transcript
                        .iter()
                        .enumerate()
                        .skip(cursor)
                        .find(|(_, e)| {
                            e.kind == *kind && texts.iter().all(|t| contains(&e.text, t))
                        });
                    if let Some((i, _)) = hit {
                        break Some(i);
                    }
                    if !sim.is_playing() {
                        break None;
                    }
                    sim.listen();
                };
                match found {
                    Some(i) => cursor = i + 1,
                    None => {
                        failure = Some(diff(
                            *line,
                            shown,
                            &sim.transcript[cursor.min(sim.transcript.len())..],
                        ));
                        break;
                    }
                }
            }
            Step::ExpectNone { kind, texts, shown } => {
                sim.listen();
                if let Some(e) = sim
                    .transcript
                    .iter()
                    .find(|e| e.kind == *kind && texts.iter().all(|t| contains(&e.text, t)))
                {
                    failure = Some(format!(
                        "line {line}: `{shown}`, but the transcript has\n  + {e}\n"
                    ));
                    break;
                }
            }
            Step::ExpectEnded => {
                sim.listen();
                if !sim.interpreter().is_ended() {
                    failure = Some(diff(
                        *line,
                        "expect ended",
                        &sim.transcript[cursor.min(sim.transcript.len())..],
                    ));
                    break;
                }
            }
            Step::ExpectVar(name, value) => {
                let actual = sim.interpreter().var(name).map(|v| v.to_string());
                if actual.as_deref() != Some(value.as_str()) {
                    failure = Some(format!(
                        "line {line}: expected `{name}` = {value:?}, found {}",
                        actual.map_or_else(|| "no such variable".to_owned(), |a| format!("{a:?}"))
                    ));
                    break;
                }
            }
        }
    }
    CaseResult {
        name: case.name.clone(),
        failure,
        transcript: sim.transcript,
    }
}

fn contains(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(&needle.to_lowercase())
}

fn diff(line: usize, expected: &str, actual: &[Entry]) -> String {
    let mut s = format!("line {line}: not found in the transcript\n  - {expected}\n");
    if actual.is_empty() {
        s.push_str("  + (nothing more happened)\n");
    }
    for e in actual {
        s.push_str(&format!("  + {e}\n"));
    }
    s
}

/// The outcome of a test file.
#[derive(Debug, Clone)]
pub struct Report {
    /// The flow tested.
    pub flow: PathBuf,
    /// Per case.
    pub results: Vec<CaseResult>,
}

impl Report {
    /// Number of failed cases.
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| r.failure.is_some()).count()
    }

    /// Test-runner style text.
    pub fn render(&self, verbose: bool) -> String {
        let mut s = format!(
            "running {} tests of {}\n",
            self.results.len(),
            self.flow.display()
        );
        for r in &self.results {
            match &r.failure {
                None => {
                    s.push_str(&format!("test {} ... ok\n", r.name));
                    if verbose {
                        for e in &r.transcript {
                            s.push_str(&format!("    {e}\n"));
                        }
                    }
                }
                Some(f) => {
                    s.push_str(&format!("test {} ... FAILED\n", r.name));
                    for l in f.lines() {
                        s.push_str(&format!("    {l}\n"));
                    }
                }
            }
        }
        let failed = self.failed();
        s.push_str(&format!(
            "\ntest result: {}. {} passed; {} failed\n",
            if failed == 0 { "ok" } else { "FAILED" },
            self.results.len() - failed,
            failed
        ));
        s
    }
}

/// Loads a test file and its flow, and runs every case.
pub fn run_file(test_path: &Path, host: &dyn Host) -> Result<Report, Error> {
    let text = host.read(test_path).map_err(|e| Error::Read {
        path: test_path.to_path_buf(),
        message: e.to_string(),
    })?;
    let tf = parse(test_path, &text)?;
    let loaded = load(&tf.flow, host);
    let Some(flow) = loaded.flow.clone() else {
        return Err(Error::InvalidFlow {
            errors: loaded.counts().0,
            rendered: loaded.render(),
        });
    };
    let dir = tf.flow.parent().map(Path::to_path_buf).unwrap_or_default();
    let results = tf
        .cases
        .iter()
        .map(|c| run_case(&flow, c, &dir, tf.allow.as_ref()))
        .collect();
    Ok(Report {
        flow: tf.flow,
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::load_str;

    struct NoFiles;

    impl Host for NoFiles {
        fn read(&self, _: &Path) -> std::io::Result<String> {
            Err(std::io::Error::other("none"))
        }
        fn prompt_exists(&self, _: &Path) -> bool {
            true
        }
    }

    fn run(flow: &str, script: &str) -> Vec<CaseResult> {
        let flow = load_str(Path::new("t.ivr"), flow, &NoFiles)
            .flow
            .expect("flow");
        let tf = parse(Path::new("t.ivrtest"), script).expect("script");
        tf.cases
            .iter()
            .map(|c| run_case(&flow, c, Path::new(""), tf.allow.as_ref()))
            .collect()
    }

    const FETCHING: &str = "flow \"F\"\n\nstep s\n  fetch get \"https://evil.example/x\"\n    on failure -> no\n  hangup \"fetched\"\nstep no\n  hangup \"refused\"\n";

    #[test]
    fn fetches_outside_the_allow_list_fail() {
        let r = run(
            FETCHING,
            "allow \"api.acme.in\"\ntest \"t\"\n  stub fetch {}\n  expect fetch \"not on the tenant's allow-list\"\n  expect hangup \"refused\"\n",
        );
        assert_eq!(r[0].failure, None, "{:?}", r[0].transcript);
        let r = run(
            FETCHING,
            "test \"t\"\n  stub fetch {}\n  expect hangup \"fetched\"\n",
        );
        assert_eq!(r[0].failure, None, "without a list the stub answers");
    }

    #[test]
    fn script_mistakes_name_their_place() {
        let e = parse(Path::new("x.ivrtest"), "test \"a\"\n  press 12a\n").expect_err("bad keys");
        assert!(e.to_string().starts_with("x.ivrtest:2:9:"), "{e}");
        let e = parse(Path::new("x.ivrtest"), "test \"a\"\n  expect hearr \"x\"\n")
            .expect_err("bad kind");
        assert!(e.to_string().contains("cannot expect `hearr`"), "{e}");
        let e = parse(Path::new("x.ivrtest"), "  press 1\n").expect_err("no test");
        assert!(e.to_string().contains("before any `test"), "{e}");
    }

    #[test]
    fn a_failed_expectation_shows_what_happened_instead() {
        let flow = "flow \"F\"\n\nstep s\n  say \"Hello\"\n  hangup\n";
        let r = run(flow, "test \"t\"\n  expect hear \"Goodbye\"\n");
        let f = r[0].failure.as_deref().expect("fails");
        assert!(f.contains("- expect hear \"Goodbye\""), "{f}");
        assert!(f.contains("+ [  0.000s] hear \"Hello\""), "{f}");
    }
}
