//! Lowering the statements that branch on what happens outside the flow:
//! `gather` (choices, invalid, timeout), `queue` (overflow) and `fetch`
//! (failure), with their checks: duplicate and unreachable choices,
//! missing branches, limits.

use std::collections::HashMap;

use super::emit::{
    Emitter, FETCH_TIMEOUT, GATHER_BETWEEN, GATHER_TIMEOUT, QUEUE_ANNOUNCE, QUEUE_MAX_WAIT,
};
use crate::ast::{self, BranchOn};
use crate::diag::Diagnostic;
use crate::flow::{Builtin, Fetch, Gather, Instr, Queue, StepId, VarId};
use crate::lexer::StrPart;
use crate::source::Span;

impl Emitter<'_> {
    pub(super) fn single_branch(
        &mut self,
        branches: &[ast::Branch],
        on: BranchOn,
    ) -> Option<StepId> {
        let mut found = None;
        for b in branches.iter().filter(|b| b.on == on) {
            if found.is_some() {
                self.diags.push(
                    Diagnostic::error("E063", b.span, "this branch is given twice")
                        .hint("keep one `on` line per outcome"),
                );
                continue;
            }
            found = Some(self.step_ref(&b.target, false));
        }
        found.flatten()
    }

    pub(super) fn gather(&mut self, g: &ast::Gather, span: Span) -> bool {
        let into_name = g.into.as_ref().map_or("digits", |n| n.text.as_str());
        if let Some(n) = &g.into
            && Builtin::named(&n.text).is_some()
        {
            self.diags.push(
                Diagnostic::error(
                    "E051",
                    n.span,
                    format!("`{}` is built in and cannot be set", n.text),
                )
                .hint("choose another name for the digits"),
            );
        }
        let into = self.var_index.get(into_name).copied().unwrap_or(VarId(0));
        let timeout = self.limit(g.timeout, &GATHER_TIMEOUT, "a timeout");
        let between = self.limit(g.between, &GATHER_BETWEEN, "an inter-digit timeout");
        let retries = self.retries(g.retries, 2);
        if g.prompts.is_empty() {
            self.diags.push(
                Diagnostic::warning("W089", span, "`gather` has no prompt")
                    .hint("indent a `say \"...\"` or `play \"...\"` line under it so the caller knows what to press"),
            );
        }
        let prompts = g.prompts.iter().map(|p| self.prompt(p)).collect();
        let reprompts = g.reprompts.iter().map(|p| self.prompt(p)).collect();
        let mut choices: Vec<(String, StepId)> = Vec::new();
        let mut first_seen: HashMap<String, Span> = HashMap::new();
        let mut has_choices = false;
        for b in &g.branches {
            let BranchOn::Choice(c) = &b.on else { continue };
            has_choices = true;
            if let Some(prev) = first_seen.get(c) {
                self.diags.push(
                    Diagnostic::error("E063", b.span, format!("choice `{c}` is given twice"))
                        .related(*prev, "first given here")
                        .hint("each choice may lead to one step only; remove one of them"),
                );
                continue;
            }
            first_seen.insert(c.clone(), b.span);
            let len = u32::try_from(c.chars().count()).unwrap_or(u32::MAX);
            if len < g.min || len > g.max {
                let span_digits = g.digits_span.unwrap_or(span);
                self.diags.push(
                    Diagnostic::error("E064", b.span, format!("choice `{c}` can never be entered"))
                        .label(format!("{len} digit{}", if len == 1 { "" } else { "s" }))
                        .related(
                            span_digits,
                            format!("this gather takes {} to {} digits", g.min, g.max),
                        )
                        .hint("make the choice fit the digit count, or change `digits`"),
                );
            } else if let Some(k) = g.end_key.map(|k| k.0).filter(|k| c.contains(*k)) {
                self.diags.push(
                    Diagnostic::error("E064", b.span, format!("choice `{c}` can never be entered"))
                        .label(format!("contains the end key {k}"))
                        .hint(
                            "pressing the end key finishes input; choose another end key or choice",
                        ),
                );
            }
            if let Some(id) = self.step_ref(&b.target, false) {
                choices.push((c.clone(), id));
            }
        }
        let on_invalid = self.single_branch(&g.branches, BranchOn::Invalid);
        let on_timeout = self.single_branch(&g.branches, BranchOn::Timeout);
        let missing: Vec<&str> = [
            (
                g.branches.iter().all(|b| b.on != BranchOn::Timeout),
                "timeout",
            ),
            (
                has_choices && g.branches.iter().all(|b| b.on != BranchOn::Invalid),
                "invalid",
            ),
        ]
        .into_iter()
        .filter_map(|(m, n)| m.then_some(n))
        .collect();
        if !missing.is_empty() {
            let list = missing
                .iter()
                .map(|m| format!("`on {m}`"))
                .collect::<Vec<_>>()
                .join(" or ");
            self.diags.push(
                Diagnostic::warning("W062", span, format!("`gather` has no {list} branch"))
                    .hint(format!("add {} under it; otherwise, after the last retry the flow goes on to the next line", missing.iter().map(|m| format!("`on {m} -> STEP`")).collect::<Vec<_>>().join(" and "))),
            );
        }
        let ends = has_choices && on_invalid.is_some() && on_timeout.is_some();
        let gather = Gather {
            into,
            min: g.min,
            max: g.max,
            end_key: g.end_key.map(|k| k.0),
            timeout,
            between,
            retries,
            sensitive: g.sensitive,
            barge_in: self.barge_in(g.barge_in),
            prompts,
            reprompts,
            choices,
            on_invalid,
            on_timeout,
        };
        self.emit(Instr::Gather(Box::new(gather)), span);
        !ends
    }

    pub(super) fn queue(&mut self, q: &ast::Queue, span: Span) -> bool {
        let name = q.name.template();
        if name.trim().is_empty() || !q.name.is_plain() {
            self.diags.push(
                Diagnostic::error("E090", q.name.span, "queue name must be plain text")
                    .hint("write the queue's name as configured, e.g. `queue \"support\"`"),
            );
        }
        let hold = q.hold.as_ref().map(|h| self.prompt_file(h));
        let max_wait = self.limit(q.max_wait, &QUEUE_MAX_WAIT, "a maximum wait");
        let announce_every = q
            .announce
            .map(|a| self.limit(Some(a), &QUEUE_ANNOUNCE, "an announcement interval"));
        let on_overflow = self.single_branch(&q.branches, BranchOn::Overflow);
        if on_overflow.is_none() {
            self.diags.push(
                Diagnostic::warning("W080", span, "`queue` has no `on overflow` branch")
                    .hint("add `on overflow -> STEP` (e.g. voicemail); otherwise a caller who waits too long goes on to the next line"),
            );
        }
        let mut keys: Vec<(char, StepId)> = Vec::new();
        for b in &q.branches {
            let BranchOn::Choice(c) = &b.on else { continue };
            let mut chars = c.chars();
            let (Some(k), None) = (chars.next(), chars.next()) else {
                self.diags.push(
                    Diagnostic::error(
                        "E091",
                        b.span,
                        format!("`on {c}` in a queue: a queue leaves on one key"),
                    )
                    .hint("write one key, e.g. `on 0 -> voicemail`"),
                );
                continue;
            };
            if keys.iter().any(|(x, _)| *x == k) {
                self.diags.push(
                    Diagnostic::error("E063", b.span, format!("key `{k}` is given twice"))
                        .hint("each key may lead to one step only; remove one of them"),
                );
                continue;
            }
            if let Some(step) = self.step_ref(&b.target, false) {
                keys.push((k, step));
            }
        }
        let priority = match q.priority {
            Some((p, _)) if p <= 9 => p,
            Some((_, span)) => {
                self.diags.push(
                    Diagnostic::error("E072", span, "a queue priority is 0 to 9")
                        .hint("write e.g. `priority 5`; higher is served first"),
                );
                0
            }
            None => 0,
        };
        let queue = Queue {
            name,
            hold,
            announce_every,
            max_wait,
            on_overflow,
            keys,
            priority,
        };
        self.emit(Instr::Queue(Box::new(queue)), span);
        on_overflow.is_none()
    }

    pub(super) fn fetch(&mut self, f: &ast::Fetch, span: Span) -> bool {
        let starts_https = matches!(f.url.parts.first(), Some(StrPart::Text(t)) if t.starts_with("https://") && t.len() > "https://".len());
        if !starts_https {
            self.diags.push(
                Diagnostic::error("E075", f.url.span, "`fetch` needs an https:// URL with a fixed host")
                    .hint("write the scheme and host literally, e.g. \"https://api.acme.in/balance?account={account}\""),
            );
        }
        let url = self.template(&f.url, false);
        let timeout = self.limit(f.timeout, &FETCH_TIMEOUT, "a timeout");
        let mut send = Vec::new();
        for n in &f.send {
            match self.var_index.get(&n.text) {
                Some(v) => send.push((n.text.clone(), *v)),
                None => self.unknown_var(&n.text, n.span),
            }
        }
        let into = f
            .into
            .iter()
            .filter_map(|n| self.var_index.get(&n.text).map(|v| (n.text.clone(), *v)))
            .collect();
        let on_failure = self.single_branch(&f.branches, BranchOn::Failure);
        if on_failure.is_none() {
            self.diags.push(
                Diagnostic::warning("W080", span, "`fetch` has no `on failure` branch")
                    .hint("add `on failure -> STEP`; otherwise a failed request goes on to the next line with the variables unchanged"),
            );
        }
        let fetch = Fetch {
            method: f.method,
            url,
            timeout,
            send,
            into,
            on_failure,
        };
        self.emit(Instr::Fetch(Box::new(fetch)), span);
        true
    }
}
