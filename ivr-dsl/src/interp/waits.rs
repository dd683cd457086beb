//! Collecting keys for `gather` and `consent`: prompt, first-digit and
//! inter-digit timeouts, end key, retries with re-prompt, branches.
//!
//! ```text
//!  Prompting ──PromptFinished──► Collecting ──end key / max digits / choice──► done
//!     │ digit (barge-in)            │ timeout: no digits ─► retry or `on timeout`
//!     └────────────────────────────►│ timeout: too few   ─► retry or `on invalid`
//! ```

use std::time::Instant;

use super::{Input, Interpreter, Output, Rec, Wait, mask};
use crate::ast::RecordingOp;
use crate::flow::{Consent, Gather, Instr, Prompt};
use crate::value::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Prompting,
    Collecting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Timeout,
    Invalid,
}

/// The changing part of a gather or consent in progress; its settings stay
/// in the flow (the pc does not move while collecting).
#[derive(Debug)]
pub(crate) struct Collect {
    consent: bool,
    attempt: u32,
    digits: String,
    phase: Phase,
    deadline: Option<Instant>,
    paused_recording: bool,
}

impl Collect {
    pub(crate) fn gather(_g: &Gather) -> Collect {
        Collect::new(false)
    }

    pub(crate) fn consent(_c: &Consent) -> Collect {
        Collect::new(true)
    }

    fn new(consent: bool) -> Collect {
        Collect {
            consent,
            attempt: 0,
            digits: String::new(),
            phase: Phase::Prompting,
            deadline: None,
            paused_recording: false,
        }
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// The settings both verbs share.
struct Params<'f> {
    max: usize,
    end_key: Option<char>,
    timeout: std::time::Duration,
    between: std::time::Duration,
    retries: u32,
    barge_in: bool,
    sensitive: bool,
    prompts: &'f [Prompt],
    reprompts: &'f [Prompt],
}

fn params(instr: &Instr) -> Option<Params<'_>> {
    match instr {
        Instr::Gather(g) => Some(Params {
            max: g.max as usize,
            end_key: g.end_key,
            timeout: g.timeout,
            between: g.between,
            retries: g.retries,
            barge_in: g.barge_in,
            sensitive: g.sensitive,
            prompts: &g.prompts,
            reprompts: &g.reprompts,
        }),
        Instr::Consent(c) => Some(Params {
            max: 1,
            end_key: None,
            timeout: c.timeout,
            between: c.timeout,
            retries: c.retries,
            barge_in: true,
            sensitive: false,
            prompts: std::slice::from_ref(&c.prompt),
            reprompts: &[],
        }),
        _ => None,
    }
}

impl Interpreter {
    pub(super) fn start_gather(&mut self, now: Instant, mut c: Collect) {
        let flow = std::sync::Arc::clone(&self.flow);
        let Some(p) = flow.instr(self.pc).and_then(params) else {
            self.fail("gather state lost");
            return;
        };
        if p.sensitive && self.recording == Rec::On {
            self.recording_op(RecordingOp::Pause);
            c.paused_recording = true;
        }
        if !self.type_ahead.is_empty() {
            // Keys pressed before the menu started count as answers to it.
            c.phase = Phase::Collecting;
            c.deadline = Some(now + p.between);
            let keys = std::mem::take(&mut self.type_ahead);
            self.wait = Wait::Gather(Box::new(c));
            for k in keys.chars() {
                let Wait::Gather(c) = std::mem::replace(&mut self.wait, Wait::Running) else {
                    // Already finished with an earlier key; the rest are
                    // typed ahead of whatever comes next.
                    self.push_type_ahead(k);
                    continue;
                };
                self.collect_digit(now, c, k);
            }
            return;
        }
        self.prompt_attempt(now, c, &p, false);
    }

    fn prompt_attempt(&mut self, now: Instant, mut c: Collect, p: &Params<'_>, retry: bool) {
        let prompts = if retry && !p.reprompts.is_empty() {
            p.reprompts
        } else {
            p.prompts
        };
        if prompts.is_empty() {
            c.phase = Phase::Collecting;
            c.deadline = Some(now + p.timeout);
        } else {
            self.play(prompts, p.barge_in, now);
            c.phase = Phase::Prompting;
            c.deadline = None;
        }
        self.wait = Wait::Gather(Box::new(c));
    }

    pub(super) fn gather_input(&mut self, now: Instant, mut c: Box<Collect>, input: Input) {
        let flow = std::sync::Arc::clone(&self.flow);
        let Some(p) = flow.instr(self.pc).and_then(params) else {
            self.fail("gather state lost");
            return;
        };
        match (c.phase, input) {
            (Phase::Prompting, Input::PromptFinished) => {
                c.phase = Phase::Collecting;
                c.deadline = Some(now + p.timeout);
                self.wait = Wait::Gather(c);
            }
            (Phase::Prompting, Input::Digit(d)) => {
                if p.barge_in {
                    self.out.push_back(Output::StopPlayback);
                    c.phase = Phase::Collecting;
                    self.collect_digit(now, c, d);
                } else {
                    self.log(
                        "digit.ignored",
                        vec![("reason".into(), "no barge-in".into())],
                    );
                    self.wait = Wait::Gather(c);
                }
            }
            (Phase::Collecting, Input::Digit(d)) => self.collect_digit(now, c, d),
            (Phase::Collecting, Input::Timeout) if c.deadline.is_some_and(|t| now >= t) => {
                if c.digits.is_empty() {
                    self.collect_failed(now, c, Failure::Timeout);
                } else {
                    self.collect_complete(now, c);
                }
            }
            (_, _) => self.wait = Wait::Gather(c),
        }
    }

    fn collect_digit(&mut self, now: Instant, mut c: Box<Collect>, d: char) {
        let flow = std::sync::Arc::clone(&self.flow);
        let instr = flow.instr(self.pc);
        let Some(p) = instr.and_then(params) else {
            self.fail("gather state lost");
            return;
        };
        if let Some(Instr::Consent(k)) = instr {
            return if d == k.yes {
                self.consent_done(now, c, true, "yes")
            } else if d == k.no {
                self.consent_done(now, c, false, "no")
            } else {
                c.digits.push(d);
                self.collect_failed(now, c, Failure::Invalid)
            };
        }
        if Some(d) == p.end_key {
            return self.collect_complete(now, c);
        }
        c.digits.push(d);
        let complete = c.digits.chars().count() >= p.max
            || match instr {
                Some(Instr::Gather(g)) if !g.choices.is_empty() => {
                    // A choice matched and no longer choice starts with it.
                    g.choices.iter().any(|(k, _)| *k == c.digits)
                        && !g
                            .choices
                            .iter()
                            .any(|(k, _)| k.len() > c.digits.len() && k.starts_with(&c.digits))
                }
                _ => false,
            };
        if complete {
            self.collect_complete(now, c);
        } else {
            c.deadline = Some(now + p.between);
            self.wait = Wait::Gather(c);
        }
    }

    fn collect_complete(&mut self, now: Instant, c: Box<Collect>) {
        let flow = std::sync::Arc::clone(&self.flow);
        let Some(Instr::Gather(g)) = flow.instr(self.pc) else {
            // Consent completes only through its keys.
            return self.collect_failed(now, c, Failure::Invalid);
        };
        if c.digits.chars().count() < g.min as usize {
            return self.collect_failed(now, c, Failure::Invalid);
        }
        let choice = if g.choices.is_empty() {
            None
        } else {
            match g.choices.iter().find(|(k, _)| *k == c.digits) {
                Some((_, step)) => Some(*step),
                None => return self.collect_failed(now, c, Failure::Invalid),
            }
        };
        let shown = if g.sensitive {
            mask(&c.digits)
        } else {
            c.digits.clone()
        };
        if let Some(slot) = self.vars.get_mut(g.into.0 as usize) {
            *slot = Value::Str(c.digits.clone());
        }
        self.log(
            "digits",
            vec![
                ("digits".into(), shown.clone()),
                ("result".into(), "ok".into()),
                ("attempt".into(), (c.attempt + 1).to_string()),
            ],
        );
        self.end_collect(&c);
        match choice {
            Some(step) => self.take_branch(now, step, shown),
            None => self.advance(now),
        }
    }

    fn collect_failed(&mut self, now: Instant, mut c: Box<Collect>, why: Failure) {
        let flow = std::sync::Arc::clone(&self.flow);
        let instr = flow.instr(self.pc);
        let Some(p) = instr.and_then(params) else {
            self.fail("gather state lost");
            return;
        };
        let result = match why {
            Failure::Timeout => "timeout",
            Failure::Invalid => "invalid",
        };
        let shown = if p.sensitive {
            mask(&c.digits)
        } else {
            c.digits.clone()
        };
        self.log(
            "digits",
            vec![
                ("digits".into(), shown),
                ("result".into(), result.into()),
                ("attempt".into(), (c.attempt + 1).to_string()),
            ],
        );
        c.attempt += 1;
        c.digits.clear();
        if c.attempt <= p.retries {
            self.prompt_attempt(now, *c, &p, true);
            return;
        }
        if c.consent {
            return self.consent_done(now, c, false, result);
        }
        let Some(Instr::Gather(g)) = instr else {
            return;
        };
        if let Some(slot) = self.vars.get_mut(g.into.0 as usize) {
            *slot = Value::default();
        }
        self.end_collect(&c);
        let target = match why {
            Failure::Timeout => g.on_timeout,
            Failure::Invalid => g.on_invalid,
        };
        match target {
            Some(step) => self.take_branch(now, step, result.to_owned()),
            None => self.advance(now),
        }
    }

    fn consent_done(&mut self, now: Instant, c: Box<Collect>, granted: bool, answer: &str) {
        self.consent = Some(granted);
        self.log(
            "consent",
            vec![
                ("granted".into(), if granted { "yes" } else { "no" }.into()),
                ("answer".into(), answer.into()),
            ],
        );
        self.out.push_back(Output::Consent { granted });
        self.end_collect(&c);
        self.advance(now);
    }

    /// Logs which branch was taken and goes to its step.
    fn take_branch(&mut self, now: Instant, step: crate::flow::StepId, on: String) {
        let to = self
            .flow
            .steps
            .get(step.0 as usize)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        self.log("branch", vec![("on".into(), on), ("to".into(), to)]);
        self.goto(now, step);
    }

    fn end_collect(&mut self, c: &Collect) {
        if c.paused_recording && self.recording == Rec::Paused {
            self.recording_op(RecordingOp::Resume);
        }
    }
}
