//! Lowering checked statements to flow code, with the checks that need
//! names: steps, blocks, variables, hours, prompt files.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::types::{self, Ty};
use super::{Host, ParsedFile};
use crate::ast::{self, BranchOn, ExprKind, RecordingOp, StmtKind};
use crate::diag::{Diagnostic, suggest};
use crate::flow::{
    Builtin, Consent, Hours, Instr, Pc, Piece, Prompt, Record, StepId, StepInfo, Template, VarId,
    VarInfo,
};
use crate::lexer::StrPart;
use crate::source::Span;

/// A duration option: default, lowest, highest.
pub(super) struct Limit {
    default: Duration,
    min: Duration,
    max: Duration,
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub(super) const GATHER_TIMEOUT: Limit = Limit {
    default: secs(5),
    min: secs(1),
    max: secs(60),
};
pub(super) const GATHER_BETWEEN: Limit = Limit {
    default: secs(3),
    min: secs(1),
    max: secs(30),
};
const CONSENT_TIMEOUT: Limit = Limit {
    default: secs(5),
    min: secs(1),
    max: secs(60),
};
const RECORD_MAX: Limit = Limit {
    default: secs(120),
    min: secs(1),
    max: secs(600),
};
const RECORD_SILENCE: Limit = Limit {
    default: secs(5),
    min: secs(1),
    max: secs(60),
};
const WAIT: Limit = Limit {
    default: secs(1),
    min: Duration::from_millis(100),
    max: secs(600),
};
pub(super) const QUEUE_MAX_WAIT: Limit = Limit {
    default: secs(600),
    min: secs(10),
    max: secs(7200),
};
pub(super) const QUEUE_ANNOUNCE: Limit = Limit {
    default: secs(60),
    min: secs(15),
    max: secs(600),
};
pub(super) const FETCH_TIMEOUT: Limit = Limit {
    default: secs(3),
    min: Duration::from_millis(100),
    max: secs(10),
};
const MAX_RETRIES: u32 = 10;

pub(super) type Output = (
    Vec<Instr>,
    Vec<StepId>,
    Vec<Span>,
    Vec<StepInfo>,
    Vec<VarInfo>,
    Vec<PathBuf>,
    bool,
    Vec<Hours>,
);

pub(super) struct Emitter<'a> {
    pub(super) items: &'a [(&'a ParsedFile, &'a ast::Item)],
    pub(super) steps: Vec<StepInfo>,
    pub(super) index: HashMap<String, StepId>,
    pub(super) hours: Vec<Hours>,
    pub(super) header: &'a ast::Header,
    pub(super) host: &'a dyn Host,
    pub(super) diags: &'a mut Vec<Diagnostic>,
    pub(super) code: Vec<Instr>,
    pub(super) step_of: Vec<StepId>,
    pub(super) spans: Vec<Span>,
    pub(super) vars: Vec<VarInfo>,
    pub(super) var_index: HashMap<String, VarId>,
    pub(super) var_ty: Vec<Ty>,
    pub(super) prompt_files: Vec<PathBuf>,
    pub(super) prompt_seen: std::collections::HashSet<PathBuf>,
    pub(super) uses_tts: bool,
    pub(super) cur: StepId,
    pub(super) cur_dir: PathBuf,
    pub(super) cur_is_block: bool,
    pub(super) consent_at: Option<Span>,
    pub(super) recording_starts: Vec<Span>,
    pub(super) calls: Vec<(StepId, StepId, Span)>,
}

impl<'a> Emitter<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        _files: &'a [ParsedFile],
        items: &'a [(&'a ParsedFile, &'a ast::Item)],
        steps: Vec<StepInfo>,
        index: HashMap<String, StepId>,
        hours: Vec<Hours>,
        header: &'a ast::Header,
        host: &'a dyn Host,
        diags: &'a mut Vec<Diagnostic>,
    ) -> Emitter<'a> {
        Emitter {
            items,
            steps,
            index,
            hours,
            header,
            host,
            diags,
            code: Vec::new(),
            step_of: Vec::new(),
            spans: Vec::new(),
            vars: Vec::new(),
            var_index: HashMap::new(),
            var_ty: Vec::new(),
            prompt_files: Vec::new(),
            prompt_seen: std::collections::HashSet::new(),
            uses_tts: false,
            cur: StepId(0),
            cur_dir: PathBuf::new(),
            cur_is_block: false,
            consent_at: None,
            recording_starts: Vec::new(),
            calls: Vec::new(),
        }
    }

    pub(super) fn finish(self) -> Output {
        (
            self.code,
            self.step_of,
            self.spans,
            self.steps,
            self.vars,
            self.prompt_files,
            self.uses_tts,
            self.hours,
        )
    }

    pub(super) fn run(&mut self) {
        let items = self.items;
        // Declare every variable first: a flow may read in one step what
        // another step assigns.
        for (_, item) in items {
            self.declare(&item.body);
        }
        self.infer_var_types();
        for (i, (file, item)) in items.iter().enumerate() {
            self.cur = StepId(u16::try_from(i).unwrap_or(u16::MAX));
            self.cur_dir = file.dir.clone();
            self.cur_is_block = item.kind == ast::ItemKind::Block;
            let entry = self.pc();
            if let Some(s) = self.steps.get_mut(i) {
                s.entry = entry;
            }
            self.emit(Instr::Enter(self.cur), item.name.span);
            let completes = self.body(&item.body);
            if completes {
                if self.cur_is_block {
                    self.emit(Instr::Return, item.name.span);
                } else {
                    let last = item.body.last().map_or(item.name.span, |s| s.span);
                    self.diags.push(
                        Diagnostic::error("E056", last, format!("step `{}` can reach its end without saying where to go", item.name.text))
                            .label("the step can end after this line")
                            .hint("end the step with `goto NEXT_STEP` or `hangup`; a caller must never be left in silence"),
                    );
                    self.emit(Instr::FellOff, last);
                }
            }
        }
        self.check_calls();
        if self.consent_at.is_none() {
            for span in std::mem::take(&mut self.recording_starts) {
                self.diags.push(
                    Diagnostic::error("E071", span, "`recording start` in a flow that never asks for consent")
                        .hint("ask first with `consent say \"...\"`; recording starts only after the caller says yes"),
                );
            }
        }
    }

    pub(super) fn pc(&self) -> Pc {
        Pc::try_from(self.code.len()).unwrap_or(Pc::MAX)
    }

    pub(super) fn emit(&mut self, i: Instr, span: Span) -> usize {
        self.code.push(i);
        self.step_of.push(self.cur);
        self.spans.push(span);
        self.code.len() - 1
    }

    // ----- variables -------------------------------------------------

    fn declare_var(&mut self, name: &str, ty: Ty, sensitive: bool) {
        if Builtin::named(name).is_some() {
            return;
        }
        match self.var_index.get(name) {
            Some(v) => {
                if let Some(info) = self.vars.get_mut(v.0 as usize) {
                    info.sensitive |= sensitive;
                }
                if let Some(t) = self.var_ty.get_mut(v.0 as usize) {
                    *t = t.join(ty);
                }
            }
            None => {
                let id = VarId(u16::try_from(self.vars.len()).unwrap_or(u16::MAX));
                self.vars.push(VarInfo {
                    name: name.to_owned(),
                    sensitive,
                });
                self.var_ty.push(ty);
                self.var_index.insert(name.to_owned(), id);
            }
        }
    }

    fn declare(&mut self, body: &[ast::Stmt]) {
        for s in body {
            match &s.kind {
                StmtKind::Gather(g) => {
                    let name = g.into.as_ref().map_or("digits", |n| n.text.as_str());
                    self.declare_var(name, Ty::Str, g.sensitive);
                }
                StmtKind::Record(r) => {
                    if let Some(n) = &r.into {
                        self.declare_var(&n.text, Ty::Str, false);
                    }
                }
                StmtKind::Fetch(f) => {
                    for n in &f.into {
                        self.declare_var(&n.text, Ty::Any, false);
                    }
                }
                // Typed after all names are known.
                StmtKind::Set { var, .. }
                    if !self.var_index.contains_key(&var.text)
                        && Builtin::named(&var.text).is_none() =>
                {
                    let id = VarId(u16::try_from(self.vars.len()).unwrap_or(u16::MAX));
                    self.vars.push(VarInfo {
                        name: var.text.clone(),
                        sensitive: false,
                    });
                    self.var_ty.push(Ty::Any);
                    self.var_index.insert(var.text.clone(), id);
                }
                StmtKind::If { arms, otherwise } => {
                    for a in arms {
                        self.declare(&a.body);
                    }
                    if let Some(o) = otherwise {
                        self.declare(o);
                    }
                }
                _ => {}
            }
        }
    }

    fn infer_var_types(&mut self) {
        // Variables only ever `set` get the join of their assigned types.
        let mut seen: HashMap<VarId, Ty> = HashMap::new();
        fn walk(em: &Emitter<'_>, body: &[ast::Stmt], seen: &mut HashMap<VarId, Ty>) {
            for s in body {
                match &s.kind {
                    StmtKind::Set { var, value } => {
                        if let Some(v) = em.var_index.get(&var.text) {
                            let t = em.quiet_type(value);
                            let e = seen.entry(*v).or_insert(t);
                            *e = e.join(t);
                        }
                    }
                    StmtKind::If { arms, otherwise } => {
                        for a in arms {
                            walk(em, &a.body, seen);
                        }
                        if let Some(o) = otherwise {
                            walk(em, o, seen);
                        }
                    }
                    _ => {}
                }
            }
        }
        for (_, item) in self.items {
            walk(self, &item.body, &mut seen);
        }
        for (v, t) in seen {
            if let Some(slot) = self.var_ty.get_mut(v.0 as usize) {
                // A variable also filled by gather/fetch keeps Any/Str joins.
                *slot = if *slot == Ty::Any { t } else { slot.join(t) };
            }
        }
    }

    fn quiet_type(&self, e: &ast::Expr) -> Ty {
        match &e.kind {
            ExprKind::Int(_) | ExprKind::Neg(_) => Ty::Int,
            ExprKind::Str(_) => Ty::Str,
            ExprKind::Bool(_) | ExprKind::Not(_) => Ty::Bool,
            ExprKind::Time(_) => Ty::Time,
            ExprKind::Date(_) => Ty::Date,
            ExprKind::Var(n) => self.var_type(n).unwrap_or(Ty::Any),
            ExprKind::Binary(op, a, b) => {
                types::binary(*op, self.quiet_type(a), self.quiet_type(b)).unwrap_or(Ty::Any)
            }
            ExprKind::Call(f, _) => match f.text.as_str() {
                "len" => Ty::Int,
                _ => Ty::Bool,
            },
        }
    }

    fn var_type(&self, name: &str) -> Option<Ty> {
        if let Some(b) = Builtin::named(name) {
            return Some(builtin_ty(b));
        }
        self.var_index
            .get(name)
            .and_then(|v| self.var_ty.get(v.0 as usize))
            .copied()
    }

    pub(super) fn unknown_var(&mut self, name: &str, span: Span) {
        let mut candidates: Vec<&str> = self.var_index.keys().map(String::as_str).collect();
        candidates.extend(Builtin::ALL.iter().map(|(n, _)| *n));
        candidates.sort_unstable();
        let mut d = Diagnostic::error("E050", span, format!("unknown variable `{name}`"))
            .label("never set anywhere in this flow");
        d = if let Some(s) = suggest(name, candidates.iter().copied()) {
            d.hint(format!("did you mean `{s}`?"))
        } else if name.contains(['-', '/']) {
            d.hint("names cannot contain - or /; for arithmetic put spaces around the operator: `a - b`")
        } else {
            d.hint(format!(
                "give it a value first with `set {name} = ...` or `gather into {name}`"
            ))
        };
        self.diags.push(d);
    }

    fn var_ref(&mut self, name: &str, span: Span) -> Option<Piece> {
        if let Some(b) = Builtin::named(name) {
            return Some(Piece::Builtin(b));
        }
        match self.var_index.get(name) {
            Some(v) => Some(Piece::Var(*v)),
            None => {
                self.unknown_var(name, span);
                None
            }
        }
    }

    // ----- templates and prompts ------------------------------------

    pub(super) fn template(&mut self, t: &ast::Text, spoken: bool) -> Template {
        let mut out = Vec::new();
        for p in &t.parts {
            match p {
                StrPart::Text(s) => out.push(Piece::Text(s.clone())),
                StrPart::Var(name, span) => {
                    if let Some(piece) = self.var_ref(name, *span) {
                        if spoken
                            && let Piece::Var(v) = piece
                            && self.vars.get(v.0 as usize).is_some_and(|i| i.sensitive)
                        {
                            self.diags.push(
                                Diagnostic::warning("W076", *span, format!("`{name}` holds sensitive digits and is read aloud"))
                                    .hint("do not repeat card numbers or OTPs to the caller; say only the last digits if you must"),
                            );
                        }
                        out.push(piece);
                    }
                }
            }
        }
        Template(out)
    }

    pub(super) fn prompt(&mut self, p: &ast::Prompt) -> Prompt {
        match p {
            ast::Prompt::Say(t) => {
                self.uses_tts = true;
                Prompt::Say(self.template(t, true))
            }
            ast::Prompt::File(t) => Prompt::File(self.prompt_file(t)),
        }
    }

    pub(super) fn prompt_file(&mut self, t: &ast::Text) -> PathBuf {
        if !t.is_plain() {
            self.diags.push(
                Diagnostic::error("E065", t.span, "prompt file names cannot contain `{variables}`")
                    .hint("every prompt file must be known when the flow loads; use `if` to choose between files"),
            );
        }
        let rel = t.template();
        let path = self.cur_dir.join(&rel);
        if !t.is_plain() {
            // Reported above; the name is not a file name.
        } else if !self.host.prompt_exists(&path) {
            self.diags.push(
                Diagnostic::error("E066", t.span, format!("prompt file `{rel}` not found"))
                    .label(format!("looked for {}", path.display()))
                    .hint("paths are relative to the flow file's folder; check the name and that the file was deployed"),
            );
        } else if self.prompt_seen.insert(path.clone()) {
            self.prompt_files.push(path.clone());
        }
        path
    }

    // ----- targets -----------------------------------------------------

    pub(super) fn step_ref(&mut self, name: &ast::Name, want_block: bool) -> Option<StepId> {
        match self.index.get(&name.text).copied() {
            Some(id) => {
                let is_block = self.steps.get(id.0 as usize).is_some_and(|s| s.is_block);
                if is_block && !want_block {
                    self.diags.push(
                        Diagnostic::error(
                            "E054",
                            name.span,
                            format!("`{}` is a block: it is called, not gone to", name.text),
                        )
                        .hint(format!(
                            "write `call {}` to run it and come back, or make it a `step`",
                            name.text
                        )),
                    );
                    return None;
                }
                if !is_block && want_block {
                    self.diags.push(
                        Diagnostic::error(
                            "E055",
                            name.span,
                            format!("`{}` is a step: it is gone to, not called", name.text),
                        )
                        .hint(format!(
                            "write `goto {}`, or declare it with `block` to call it",
                            name.text
                        )),
                    );
                    return None;
                }
                Some(id)
            }
            None => {
                let names: Vec<&str> = self.index.keys().map(String::as_str).collect();
                let mut d = Diagnostic::error(
                    "E052",
                    name.span,
                    format!("no step or block named `{}`", name.text),
                )
                .label("not defined");
                d = match suggest(&name.text, names) {
                    Some(s) => d.hint(format!("did you mean `{s}`?")),
                    None => d.hint(format!("add `step {}` or fix the name", name.text)),
                };
                self.diags.push(d);
                None
            }
        }
    }

    pub(super) fn limit(&mut self, v: Option<(Duration, Span)>, l: &Limit, what: &str) -> Duration {
        match v {
            None => l.default,
            Some((d, span)) => {
                if d < l.min || d > l.max {
                    self.diags.push(
                        Diagnostic::error(
                            "E072",
                            span,
                            format!("{what} of {} is out of range", fmt_duration(d)),
                        )
                        .hint(format!(
                            "use between {} and {}",
                            fmt_duration(l.min),
                            fmt_duration(l.max)
                        )),
                    );
                }
                d.clamp(l.min, l.max)
            }
        }
    }

    pub(super) fn retries(&mut self, v: Option<(u32, Span)>, default: u32) -> u32 {
        match v {
            None => default,
            Some((n, span)) => {
                if n > MAX_RETRIES {
                    self.diags.push(
                        Diagnostic::error("E088", span, format!("{n} retries is too many"))
                            .hint(format!("use at most {MAX_RETRIES}; after that, send the caller somewhere useful")),
                    );
                }
                n.min(MAX_RETRIES)
            }
        }
    }

    pub(super) fn barge_in(&self, v: Option<bool>) -> bool {
        v.or(self.header.barge_in).unwrap_or(true)
    }

    // ----- statements ------------------------------------------------

    /// Lowers a body; true when it can complete normally.
    fn body(&mut self, body: &[ast::Stmt]) -> bool {
        let mut completes = true;
        for s in body {
            if !completes {
                self.diags.push(
                    Diagnostic::warning("W058", s.span, "this line is never reached")
                        .hint("the line before it always leaves; remove this line or move it up"),
                );
                break;
            }
            completes = self.stmt(s);
        }
        completes
    }

    fn stmt(&mut self, s: &ast::Stmt) -> bool {
        let span = s.span;
        match &s.kind {
            StmtKind::Play { prompts, barge_in } => {
                let prompts = prompts.iter().map(|p| self.prompt(p)).collect();
                let barge_in = self.barge_in(*barge_in);
                self.emit(Instr::Play { prompts, barge_in }, span);
                true
            }
            StmtKind::Gather(g) => self.gather(g, span),
            StmtKind::Goto(n) => {
                if let Some(id) = self.step_ref(n, false) {
                    self.emit(Instr::Goto(id), span);
                }
                false
            }
            StmtKind::Call(n) => {
                if let Some(id) = self.step_ref(n, true) {
                    self.calls.push((self.cur, id, n.span));
                    self.emit(Instr::Call(id), span);
                }
                true
            }
            StmtKind::Return => {
                if !self.cur_is_block {
                    self.diags.push(
                        Diagnostic::error("E059", span, "`return` outside a block")
                            .hint("`return` ends a `block` that was called; in a step use `goto` or `hangup`"),
                    );
                }
                self.emit(Instr::Return, span);
                false
            }
            StmtKind::If { arms, otherwise } => self.if_stmt(arms, otherwise.as_deref(), span),
            StmtKind::Set { var, value } => {
                if Builtin::named(&var.text).is_some() {
                    self.diags.push(
                        Diagnostic::error(
                            "E051",
                            var.span,
                            format!("`{}` is built in and cannot be set", var.text),
                        )
                        .hint("choose another name for your variable"),
                    );
                    return true;
                }
                let (e, _) = self.expr(value);
                if let Some(v) = self.var_index.get(&var.text).copied() {
                    self.emit(Instr::Set(v, e), span);
                }
                true
            }
            StmtKind::Wait(d) => {
                let d = self.limit(Some((*d, span)), &WAIT, "a wait");
                self.emit(Instr::Wait(d), span);
                true
            }
            StmtKind::Hangup(reason) => {
                let r = reason.as_ref().map(|t| self.template(t, false));
                self.emit(Instr::Hangup(r), span);
                false
            }
            StmtKind::Record(r) => {
                let rec = Record {
                    into: r
                        .into
                        .as_ref()
                        .and_then(|n| self.var_index.get(&n.text).copied()),
                    max: self.limit(r.max, &RECORD_MAX, "a message length"),
                    beep: r.beep,
                    silence: self.limit(r.silence, &RECORD_SILENCE, "a silence limit"),
                    end_key: r.end_key.map(|k| k.0),
                };
                self.emit(Instr::Record(Box::new(rec)), span);
                true
            }
            StmtKind::Grievance(g) => {
                let category = g.category.template();
                let ok = category.len() <= 40
                    && !category.is_empty()
                    && category
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ' '));
                if !g.category.is_plain() || !ok {
                    self.diags.push(
                        Diagnostic::error(
                            "E095",
                            g.category.span,
                            "a grievance category is a short plain name",
                        )
                        .hint("write e.g. `grievance \"billing\"`: letters, digits, spaces, `-` and `_`, at most 40, no `{variables}`"),
                    );
                }
                let rec = Record {
                    into: None,
                    max: self.limit(g.max, &RECORD_MAX, "a message length"),
                    beep: true,
                    silence: self.limit(None, &RECORD_SILENCE, "a silence limit"),
                    end_key: Some('#'),
                };
                self.emit(Instr::Record(Box::new(rec)), span);
                self.emit(Instr::Grievance(category), span);
                true
            }
            StmtKind::Consent(c) => {
                if c.yes.0 == c.no.0 {
                    self.diags.push(
                        Diagnostic::error("E074", c.no.1, "the same key answers yes and no")
                            .related(c.yes.1, "yes key")
                            .hint("use different keys, e.g. `yes 1, no 2`"),
                    );
                }
                self.consent_at.get_or_insert(span);
                let consent = Consent {
                    prompt: self.prompt(&c.prompt),
                    yes: c.yes.0,
                    no: c.no.0,
                    timeout: self.limit(c.timeout, &CONSENT_TIMEOUT, "a timeout"),
                    retries: self.retries(c.retries, 1),
                };
                self.emit(Instr::Consent(Box::new(consent)), span);
                true
            }
            StmtKind::Recording(op) => {
                if *op == RecordingOp::Start {
                    self.recording_starts.push(span);
                }
                self.emit(Instr::Recording(*op), span);
                true
            }
            StmtKind::Queue(q) => self.queue(q, span),
            StmtKind::Transfer(t) => {
                let target = self.template(&t.target, false);
                let on_failure = self.single_branch(&t.branches, BranchOn::Failure);
                if on_failure.is_none() {
                    self.diags.push(
                        Diagnostic::warning("W080", span, "`transfer` has no `on failure` branch")
                            .hint("add `on failure -> STEP` under it; without one, a failed transfer continues with the next line"),
                    );
                }
                self.emit(Instr::Transfer { target, on_failure }, span);
                on_failure.is_none()
            }
            StmtKind::Log { event, fields } => {
                let event = self.template(event, false);
                let fields = fields
                    .iter()
                    .map(|(k, v)| (k.text.clone(), self.expr(v).0))
                    .collect();
                self.emit(Instr::Log { event, fields }, span);
                true
            }
            StmtKind::Fetch(f) => self.fetch(f, span),
        }
    }

    fn if_stmt(&mut self, arms: &[ast::Arm], otherwise: Option<&[ast::Stmt]>, span: Span) -> bool {
        let mut to_end = Vec::new();
        let mut completes = otherwise.is_none();
        for arm in arms {
            let (cond, ty) = self.expr(&arm.cond);
            if !matches!(ty, Ty::Bool | Ty::Any) {
                self.diags.push(
                    Diagnostic::error(
                        "E070",
                        arm.cond.span,
                        format!("`if` needs a condition, this is {}", ty.describe()),
                    )
                    .hint("compare it, e.g. `if tries > 2` or `if choice == \"1\"`"),
                );
            }
            let jump = self.emit(Instr::JumpUnless(cond, 0), arm.cond.span);
            completes |= self.body(&arm.body);
            to_end.push(self.emit(Instr::Jump(0), span));
            let next = self.pc();
            if let Some(Instr::JumpUnless(_, t)) = self.code.get_mut(jump) {
                *t = next;
            }
        }
        if let Some(o) = otherwise {
            completes |= self.body(o);
        }
        let end = self.pc();
        for j in to_end {
            if let Some(Instr::Jump(t)) = self.code.get_mut(j) {
                *t = end;
            }
        }
        completes
    }

    /// Blocks may call blocks, but never themselves (directly or not):
    /// a call chain must end.
    fn check_calls(&mut self) {
        let n = self.steps.len();
        let mut edges: Vec<Vec<(usize, Span)>> = vec![Vec::new(); n];
        for (from, to, span) in &self.calls {
            if let Some(e) = edges.get_mut(from.0 as usize) {
                e.push((to.0 as usize, *span));
            }
        }
        // Depth-first search for a back edge.
        let mut state = vec![0u8; n]; // 0 new, 1 on stack, 2 done
        for start in 0..n {
            if state.get(start) != Some(&0) {
                continue;
            }
            let mut stack = vec![(start, 0usize)];
            if let Some(s) = state.get_mut(start) {
                *s = 1;
            }
            while let Some((node, i)) = stack.pop() {
                let next = edges.get(node).and_then(|e| e.get(i)).copied();
                match next {
                    None => {
                        if let Some(s) = state.get_mut(node) {
                            *s = 2;
                        }
                    }
                    Some((to, span)) => {
                        stack.push((node, i + 1));
                        match state.get(to) {
                            Some(0) => {
                                if let Some(s) = state.get_mut(to) {
                                    *s = 1;
                                }
                                stack.push((to, 0));
                            }
                            Some(1) => {
                                let name = self
                                    .steps
                                    .get(to)
                                    .map(|s| s.name.clone())
                                    .unwrap_or_default();
                                self.diags.push(
                                    Diagnostic::error("E087", span, format!("block `{name}` ends up calling itself"))
                                        .hint("a block must not call itself, directly or through other blocks; use `goto` to a step for loops"),
                                );
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
}

pub(super) fn builtin_ty(b: Builtin) -> Ty {
    match b {
        Builtin::Time => Ty::Time,
        Builtin::Date => Ty::Date,
        Builtin::Holiday => Ty::Bool,
        _ => Ty::Str,
    }
}

/// `90s` -> `1m30s`.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}
