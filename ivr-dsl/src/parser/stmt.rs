//! Statements: one line each, options after commas, branches and prompts
//! in an indented block under the line.
//!
//! ```text
//! stmt    = verb args { "," option } NL [ INDENT { body-line NL } DEDENT ]
//! branch  = "on" choice { "," choice } "->" name
//! prompt  = ("say" | "play") string
//! ```

use std::time::Duration;

use super::Parser;
use crate::ast::{Arm, Branch, BranchOn, Gather, Name, Prompt, Stmt, StmtKind, Text};
use crate::diag::{Diagnostic, suggest};
use crate::lexer::{StrPart, Tok};
use crate::source::Span;

/// Every statement verb, for "did you mean" hints.
pub const VERBS: [&str; 18] = [
    "play",
    "say",
    "gather",
    "goto",
    "call",
    "return",
    "if",
    "set",
    "wait",
    "hangup",
    "record",
    "grievance",
    "consent",
    "recording",
    "queue",
    "transfer",
    "log",
    "fetch",
];

/// Most digits a `gather` may collect.
pub const MAX_GATHER_DIGITS: u32 = 64;

impl Parser<'_> {
    /// An indented block of statements (the current token is `Indent`).
    pub(crate) fn block(&mut self) -> Vec<Stmt> {
        self.bump();
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Tok::Dedent => {
                    self.bump();
                    break;
                }
                Tok::Eof => break,
                Tok::Newline => {
                    self.bump();
                }
                Tok::Indent => {
                    let span = self.span();
                    self.diags.push(
                        Diagnostic::error("E029", span, "unexpected indentation")
                            .hint("only the lines under `if`, `gather`, `queue`, `transfer` and `fetch` are indented further"),
                    );
                    self.skip_block();
                }
                _ => {
                    if let Some(s) = self.stmt() {
                        out.push(s);
                    }
                }
            }
        }
        out
    }

    fn stmt(&mut self) -> Option<Stmt> {
        let start = self.span();
        if !matches!(self.peek(), Tok::Word(_)) {
            self.expected(
                "a statement",
                "lines in a step start with a verb such as `say`, `gather` or `goto`",
            );
            self.recover();
            return None;
        }
        let (Tok::Word(verb), _) = self.take() else {
            return None;
        };
        let kind = match verb {
            "play" | "say" => self.play(verb),
            "gather" => self.gather().map(|g| StmtKind::Gather(Box::new(g))),
            "goto" => self.target("goto").map(StmtKind::Goto),
            "call" => self.target("call").map(StmtKind::Call),
            "return" => Some(StmtKind::Return),
            "if" => return self.if_stmt(start),
            "else" => {
                self.diags.push(
                    Diagnostic::error("E030", start, "`else` without an `if` just above it")
                        .hint("`else` must line up with an `if` and follow its block"),
                );
                None
            }
            "set" => self.set(),
            "wait" => self
                .duration("a duration", "write `wait 2s`")
                .map(|(d, _)| StmtKind::Wait(d)),
            "hangup" => {
                let reason = match self.peek() {
                    Tok::Str(_) => self.text("a reason", ""),
                    _ => None,
                };
                Some(StmtKind::Hangup(reason))
            }
            "record" => self.record().map(StmtKind::Record),
            "grievance" => self.grievance().map(StmtKind::Grievance),
            "consent" => self.consent(start).map(|c| StmtKind::Consent(Box::new(c))),
            "recording" => self.recording_op(),
            "queue" => self.queue().map(|q| StmtKind::Queue(Box::new(q))),
            "transfer" => self.transfer().map(|t| StmtKind::Transfer(Box::new(t))),
            "log" => self.log(),
            "fetch" => self.fetch().map(|f| StmtKind::Fetch(Box::new(f))),
            "on" => {
                self.diags.push(
                    Diagnostic::error(
                        "E031",
                        start,
                        "`on` branch outside a `gather`, `queue`, `transfer` or `fetch`",
                    )
                    .hint("indent `on ... -> step` lines under the statement they belong to"),
                );
                None
            }
            other => {
                let mut d =
                    Diagnostic::error("E032", start, format!("unknown statement `{other}`"))
                        .label("not a verb of the language");
                d = match suggest(other, VERBS) {
                    Some(s) => d.hint(format!("did you mean `{s}`?")),
                    None => d.hint("see docs/ivr-dsl.md for the list of statements"),
                };
                self.diags.push(d);
                None
            }
        };
        let Some(kind) = kind else {
            self.recover();
            return None;
        };
        let span = self.line_span(start);
        // Statements whose body was parsed already consumed their line end.
        if !matches!(
            kind,
            StmtKind::Gather(_) | StmtKind::Queue(_) | StmtKind::Transfer(_) | StmtKind::Fetch(_)
        ) {
            self.end_line(&format!("`{verb}`"));
            if matches!(self.peek(), Tok::Indent) {
                let s = self.span();
                self.diags.push(
                    Diagnostic::error("E029", s, "unexpected indentation")
                        .label(format!("`{verb}` takes no indented lines"))
                        .hint("only the lines under `if`, `gather`, `queue`, `transfer` and `fetch` are indented further"),
                );
                self.skip_block();
            }
        }
        Some(Stmt { kind, span })
    }

    /// From `start` to the last token on its line (not into a body).
    fn line_span(&self, start: Span) -> Span {
        let begin = start.start as usize;
        let line_end = self
            .src
            .get(begin..)
            .and_then(|r| r.find('\n'))
            .map_or(self.src.len(), |i| begin + i);
        // Search from the statement's first token (a few tokens back).
        let from = self
            .toks
            .get(..self.pos)
            .and_then(|t| t.iter().rposition(|t| t.span == start))
            .unwrap_or(0);
        let mut end = start;
        for t in self.toks.iter().skip(from) {
            if t.span.file != start.file || t.span.start as usize >= line_end {
                break;
            }
            if t.span.end > t.span.start {
                end = t.span;
            }
        }
        start.to(end)
    }

    fn target(&mut self, verb: &str) -> Option<Name> {
        self.name(
            "a step name",
            &format!(
                "write `{verb} NAME` where NAME is a step{}",
                if verb == "call" { " or block" } else { "" }
            ),
        )
    }

    pub(crate) fn duration(&mut self, what: &str, hint: &str) -> Option<(Duration, Span)> {
        match self.peek().clone() {
            Tok::Duration(d) => Some((d, self.bump())),
            Tok::Int(n) => {
                let span = self.bump();
                self.diags.push(
                    Diagnostic::error("E033", span, format!("`{n}` has no unit"))
                        .label("a duration needs a unit")
                        .hint(format!("write {n}s for seconds or {n}ms for milliseconds")),
                );
                None
            }
            _ => {
                self.expected(what, hint);
                None
            }
        }
    }

    pub(super) fn count(&mut self, hint: &str) -> Option<(u32, Span)> {
        match self.peek().clone() {
            Tok::Int(n) => {
                let span = self.bump();
                match u32::try_from(n) {
                    Ok(v) if v <= 1000 => Some((v, span)),
                    _ => {
                        self.diags.push(
                            Diagnostic::error("E034", span, "number out of range").hint(hint),
                        );
                        None
                    }
                }
            }
            _ => {
                self.expected("a number", hint);
                None
            }
        }
    }

    /// A phone key: `1`, `"#"`, `*`.
    pub(super) fn key(&mut self) -> Option<(char, Span)> {
        let span = self.span();
        let c = match self.peek().clone() {
            Tok::Int(n) if (0..=9).contains(&n) => char::from_digit(n as u32, 10),
            Tok::Star => Some('*'),
            Tok::Str(parts) => match parts.as_slice() {
                [StrPart::Text(t)] if t.chars().count() == 1 => t.chars().next(),
                _ => None,
            },
            _ => None,
        }
        .filter(|c| is_key(*c));
        match c {
            Some(c) => {
                self.bump();
                Some((c, span))
            }
            None => {
                self.diags.push(
                    Diagnostic::error("E035", span, "not a phone key")
                        .label("expected one key")
                        .hint(
                            "keys are 0-9, * and \"#\" (quote # because a bare # starts a comment)",
                        ),
                );
                None
            }
        }
    }

    pub(super) fn prompt(&mut self) -> Option<Prompt> {
        if self.eat_word("say") {
            self.text("the text to say in quotes", "write `say \"Welcome\"`")
                .map(Prompt::Say)
        } else if self.eat_word("play") {
            self.text(
                "a file name in quotes",
                "write `play \"prompts/welcome.wav\"`",
            )
            .map(Prompt::File)
        } else {
            self.expected(
                "`say` or `play`",
                "a prompt is `say \"text\"` or `play \"file.wav\"`",
            );
            None
        }
    }

    /// Reports an unknown option and returns None.
    pub(super) fn unknown_option<T>(&mut self, verb: &str, keys: &[&str]) -> Option<T> {
        let span = self.span();
        let found = self.peek().describe();
        let mut d = Diagnostic::error("E036", span, format!("unknown option {found} for `{verb}`"))
            .label("not an option here");
        let word = match self.peek() {
            Tok::Word(w) => *w,
            _ => "",
        };
        let list = keys
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ");
        d = match suggest(word, keys.iter().copied()) {
            Some(s) => d.hint(format!("did you mean `{s}`? `{verb}` takes {list}")),
            None => d.hint(format!("`{verb}` takes {list}")),
        };
        self.diags.push(d);
        None
    }

    /// Runs `f` on each comma-separated option until the line ends.
    pub(super) fn options(&mut self, mut f: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        while !self.at_line_end() {
            f(self)?;
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        Some(())
    }

    fn play(&mut self, verb: &str) -> Option<StmtKind> {
        let mut prompts = Vec::new();
        let mut barge_in = None;
        loop {
            let t = self.text(
                if verb == "say" {
                    "the text to say in quotes"
                } else {
                    "a file name in quotes"
                },
                if verb == "say" {
                    "write `say \"Welcome to Acme\"`"
                } else {
                    "write `play \"prompts/welcome.wav\"`"
                },
            )?;
            prompts.push(if verb == "say" {
                Prompt::Say(t)
            } else {
                Prompt::File(t)
            });
            if !self.eat(&Tok::Comma) {
                return Some(StmtKind::Play { prompts, barge_in });
            }
            if !matches!(self.peek(), Tok::Str(_)) {
                break;
            }
        }
        self.options(|p| {
            if p.eat_word("barge-in") {
                barge_in = p.on_off();
                barge_in.map(|_| ())
            } else {
                p.unknown_option(verb, &["barge-in"])
            }
        })?;
        Some(StmtKind::Play { prompts, barge_in })
    }

    fn gather(&mut self) -> Option<Gather> {
        let mut g = Gather {
            into: None,
            min: 1,
            max: 1,
            digits_span: None,
            end_key: None,
            timeout: None,
            between: None,
            retries: None,
            sensitive: false,
            barge_in: None,
            prompts: Vec::new(),
            reprompts: Vec::new(),
            branches: Vec::new(),
        };
        const KEYS: [&str; 8] = [
            "digits",
            "into",
            "end",
            "timeout",
            "between",
            "retries",
            "sensitive",
            "barge-in",
        ];
        self.options(|p| {
            let start = p.span();
            if let Tok::Int(_) = p.peek() {
                // `gather 4 digits`
                let (n, _) = p.count("digits are counted 1 to 64")?;
                if !(p.eat_word("digits") || p.eat_word("digit")) {
                    p.expected("`digits`", "write `4 digits` or `digits 4-16`");
                    return None;
                }
                g.min = n;
                g.max = n;
                g.digits_span = Some(start.to(p.prev_span()));
                return Some(());
            }
            if p.eat_word("digits") || p.eat_word("digit") {
                let (a, _) = p.count("write `digits 4` or `digits 4-16`")?;
                let b = if p.eat(&Tok::Minus) { p.count("write `digits 4-16`")?.0 } else { a };
                g.min = a;
                g.max = b;
                g.digits_span = Some(start.to(p.prev_span()));
                let span = start.to(p.prev_span());
                if a == 0 || a > b || b > MAX_GATHER_DIGITS {
                    p.diags.push(
                        Diagnostic::error("E037", span, "bad digit count")
                            .hint(format!("write `digits N` or `digits MIN-MAX` with 1 <= MIN <= MAX <= {MAX_GATHER_DIGITS}")),
                    );
                }
                Some(())
            } else if p.eat_word("into") {
                g.into = Some(p.name("a variable name", "write `into account`")?);
                Some(())
            } else if p.eat_word("end") {
                g.end_key = Some(p.key()?);
                Some(())
            } else if p.eat_word("timeout") {
                g.timeout = Some(p.duration("a duration", "write `timeout 5s`")?);
                Some(())
            } else if p.eat_word("between") {
                g.between = Some(p.duration("a duration", "write `between 3s`")?);
                Some(())
            } else if p.eat_word("retries") {
                g.retries = Some(p.count("retries run from 0 to 10")?);
                Some(())
            } else if p.eat_word("sensitive") {
                g.sensitive = true;
                Some(())
            } else if p.eat_word("barge-in") {
                g.barge_in = Some(p.on_off()?);
                Some(())
            } else {
                p.unknown_option("gather", &KEYS)
            }
        })?;
        self.end_line("the `gather` options");
        self.body("gather", |p| {
            if p.is_word("say") || p.is_word("play") {
                let pr = p.prompt()?;
                g.prompts.push(pr);
                Some(())
            } else if p.eat_word("reprompt") {
                let pr = p.prompt()?;
                g.reprompts.push(pr);
                Some(())
            } else if p.is_word("on") {
                let b = p.branch(&["invalid", "timeout"], true)?;
                g.branches.extend(b);
                Some(())
            } else {
                p.unknown_body_line("gather", "`say`, `play`, `reprompt` or `on ... -> step`")
            }
        });
        Some(g)
    }

    pub(super) fn unknown_body_line<T>(&mut self, verb: &str, allowed: &str) -> Option<T> {
        let span = self.span();
        let found = self.peek().describe();
        self.diags.push(
            Diagnostic::error(
                "E038",
                span,
                format!("{found} cannot appear under `{verb}`"),
            )
            .hint(format!(
                "under `{verb}` write {allowed}; put other statements after it, unindented"
            )),
        );
        None
    }

    /// An optional indented body: each line goes to `f`.
    pub(super) fn body(&mut self, _verb: &str, mut f: impl FnMut(&mut Self) -> Option<()>) {
        if !self.eat(&Tok::Indent) {
            return;
        }
        loop {
            match self.peek() {
                Tok::Dedent => {
                    self.bump();
                    return;
                }
                Tok::Eof => return,
                Tok::Newline => {
                    self.bump();
                }
                _ => {
                    if f(self).is_some() {
                        self.end_line("this line");
                    } else {
                        self.recover();
                    }
                }
            }
        }
    }

    /// `on CHOICE {, CHOICE} -> step`: one branch per choice.
    pub(super) fn branch(&mut self, words: &[&str], digits: bool) -> Option<Vec<Branch>> {
        self.bump(); // on
        let mut ons = Vec::new();
        loop {
            let span = self.span();
            let on = match self.peek().clone() {
                Tok::Int(_) if digits => {
                    self.bump();
                    // The digits as written (leading zeros matter).
                    let text = self.digits_text(span);
                    BranchOn::Choice(text)
                }
                Tok::Star if digits => {
                    self.bump();
                    BranchOn::Choice("*".into())
                }
                Tok::Str(parts) if digits => {
                    self.bump();
                    let t = Text { parts, span }.template();
                    if t.is_empty() || t.chars().any(|c| !is_key(c)) {
                        self.diags.push(
                            Diagnostic::error(
                                "E039",
                                span,
                                format!("choice \"{t}\" is not a key sequence"),
                            )
                            .hint("a choice is keys the caller presses: digits, * and #"),
                        );
                        return None;
                    }
                    BranchOn::Choice(t)
                }
                Tok::Word(w) if words.contains(&w) => {
                    self.bump();
                    match w {
                        "invalid" => BranchOn::Invalid,
                        "timeout" => BranchOn::Timeout,
                        "overflow" => BranchOn::Overflow,
                        _ => BranchOn::Failure,
                    }
                }
                _ => {
                    let list = words
                        .iter()
                        .map(|w| format!("`{w}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let what = if digits {
                        format!("keys or one of {list}")
                    } else {
                        list.clone()
                    };
                    self.expected(
                        &format!("a choice ({what})"),
                        &format!(
                            "write `on {} -> step`",
                            if digits {
                                "1"
                            } else {
                                words.first().copied().unwrap_or("failure")
                            }
                        ),
                    );
                    return None;
                }
            };
            ons.push((on, span));
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        if !self.eat(&Tok::Arrow) {
            self.expected("`->`", "write `on 1 -> step_name`");
            return None;
        }
        let target = self.name("a step name", "write `on 1 -> step_name`")?;
        Some(
            ons.into_iter()
                .map(|(on, span)| Branch {
                    on,
                    span,
                    target: target.clone(),
                })
                .collect(),
        )
    }

    fn digits_text(&self, span: Span) -> String {
        // Int tokens keep their value; leading zeros are in the source only.
        self.source_text(span)
    }

    fn set(&mut self) -> Option<StmtKind> {
        let var = self.name("a variable name", "write `set tries = tries + 1`")?;
        if !self.eat(&Tok::Assign) {
            self.expected("`=`", "write `set name = value`");
            return None;
        }
        let value = self.expr()?;
        Some(StmtKind::Set { var, value })
    }

    fn if_stmt(&mut self, start: Span) -> Option<Stmt> {
        let mut arms = Vec::new();
        let mut otherwise = None;
        let Some(cond) = self.expr() else {
            self.recover();
            return None;
        };
        let body = self.if_body()?;
        arms.push(Arm { cond, body });
        loop {
            if !self.is_word("else") {
                break;
            }
            self.bump();
            if self.eat_word("if") {
                let Some(cond) = self.expr() else {
                    self.recover();
                    break;
                };
                let body = self.if_body()?;
                arms.push(Arm { cond, body });
            } else {
                otherwise = Some(self.if_body()?);
                break;
            }
        }
        Some(Stmt {
            kind: StmtKind::If { arms, otherwise },
            span: start,
        })
    }

    fn if_body(&mut self) -> Option<Vec<Stmt>> {
        self.end_line("the condition");
        if !matches!(self.peek(), Tok::Indent) {
            let span = self.prev_span();
            self.diags.push(
                Diagnostic::error("E040", span, "`if` or `else` without an indented block")
                    .hint("indent the statements to run under the `if` line"),
            );
            return Some(Vec::new());
        }
        Some(self.block())
    }
}

/// True for the keys of a phone keypad.
pub fn is_key(c: char) -> bool {
    c.is_ascii_digit() || c == '*' || c == '#'
}

#[cfg(test)]
mod tests {
    use crate::ast::{BranchOn, StmtKind};
    use crate::parser::parse;
    use crate::source::FileId;

    #[test]
    fn gather_with_prompts_and_branches() {
        let mut d = Vec::new();
        let f = parse(
            FileId(0),
            "step m\n  gather into c, digits 1-4, end \"#\", timeout 5s, retries 2, sensitive\n    say \"Enter\"\n    reprompt say \"Again\"\n    on 1, 02 -> a\n    on invalid -> b\n    on timeout -> b\n  goto a\n",
            &mut d,
        );
        assert!(d.is_empty(), "{d:#?}");
        let StmtKind::Gather(g) = &f.items[0].body[0].kind else {
            panic!()
        };
        assert_eq!(
            (g.min, g.max, g.end_key.map(|k| k.0), g.sensitive),
            (1, 4, Some('#'), true)
        );
        assert_eq!(g.prompts.len(), 1);
        assert_eq!(g.reprompts.len(), 1);
        assert_eq!(g.branches.len(), 4);
        assert_eq!(g.branches[1].on, BranchOn::Choice("02".into()));
        assert!(matches!(f.items[0].body[1].kind, StmtKind::Goto(_)));
    }

    #[test]
    fn if_else_chain() {
        let mut d = Vec::new();
        let f = parse(
            FileId(0),
            "step a\n  if x > 1 and not open(office)\n    say \"a\"\n  else if x == 1\n    say \"b\"\n  else\n    say \"c\"\n  hangup\n",
            &mut d,
        );
        assert!(d.is_empty(), "{d:#?}");
        let StmtKind::If { arms, otherwise } = &f.items[0].body[0].kind else {
            panic!()
        };
        assert_eq!(arms.len(), 2);
        assert!(otherwise.is_some());
        assert_eq!(f.items[0].body.len(), 2);
    }

    #[test]
    fn queue_fetch_transfer_log() {
        let mut d = Vec::new();
        let f = parse(
            FileId(0),
            "step a\n  queue \"support\", hold \"m.wav\", announce every 30s, max wait 10m\n    on overflow -> b\n  fetch post \"https://x.in/{acct}\", timeout 3s\n    send acct\n    into balance, name\n    on failure -> b\n  transfer \"+9111\"\n    on failure -> b\n  log \"done\" a=1, b=\"x\"\n  hangup \"ok\"\n",
            &mut d,
        );
        assert!(d.is_empty(), "{d:#?}");
        assert_eq!(f.items[0].body.len(), 5);
    }
}
