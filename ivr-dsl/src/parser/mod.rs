//! Parser: tokens to the syntax tree, by recursive descent.
//!
//! A mistake in one line becomes a diagnostic and the parser skips that
//! line (and any block indented under it), so one run reports every
//! independent mistake in a file.
//!
//! ```text
//! file    = [ header ] { include | item }
//! header  = "flow" string NL [ INDENT { header-line NL } DEDENT ]
//! include = "include" string NL
//! item    = ("step" | "block") name NL INDENT { stmt } DEDENT
//! ```

mod effects;
mod expr;
pub mod stmt;

use crate::ast::{File, Header, Hours, HoursRange, Item, ItemKind, Name, Text};
use crate::diag::{Diagnostic, suggest};
use crate::lexer::{Tok, Token, lex};
use crate::source::{FileId, Span};

/// Longest file the parser accepts, in bytes.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Parses one file. Always returns a tree (maybe partial); problems are
/// pushed to `diags`.
pub fn parse(file: FileId, text: &str, diags: &mut Vec<Diagnostic>) -> File {
    if text.len() > MAX_FILE_BYTES {
        diags.push(
            Diagnostic::error("E013", Span::new(file, 0..0), "flow file is too large").hint(
                format!(
                    "a flow file may hold at most {MAX_FILE_BYTES} bytes; split it with `include`"
                ),
            ),
        );
        return File::default();
    }
    let toks = lex(file, text, diags);
    let mut p = Parser {
        toks,
        pos: 0,
        file,
        src: text,
        diags,
    };
    p.file()
}

pub(crate) struct Parser<'a> {
    toks: Vec<Token<'a>>,
    pos: usize,
    file: FileId,
    src: &'a str,
    diags: &'a mut Vec<Diagnostic>,
}

const TOP_LEVEL: [&str; 4] = ["flow", "include", "step", "block"];

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok<'a> {
        self.toks.get(self.pos).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn peek_at(&self, n: usize) -> &Tok<'a> {
        self.toks.get(self.pos + n).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn span(&self) -> Span {
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .map_or(Span::new(self.file, 0..0), |t| t.span)
    }

    fn prev_span(&self) -> Span {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.toks.get(i))
            .map_or_else(|| self.span(), |t| t.span)
    }

    /// Moves past the current token, returning its span.
    fn bump(&mut self) -> Span {
        let span = self.span();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        span
    }

    /// Moves past the current token, taking its value (the parser never
    /// reads a token twice; spans stay for `prev_span`).
    fn take(&mut self) -> (Tok<'a>, Span) {
        let span = self.span();
        let tok = match self.toks.get_mut(self.pos) {
            Some(t) => std::mem::replace(&mut t.tok, Tok::Eof),
            None => Tok::Eof,
        };
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        (tok, span)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Word(x) if *x == w)
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == t {
            self.bump();
            true
        } else {
            false
        }
    }

    fn at_line_end(&self) -> bool {
        matches!(self.peek(), Tok::Newline | Tok::Eof)
    }

    /// Reports "expected X, found Y" at the current token.
    fn expected(&mut self, what: &str, hint: &str) {
        let found = self.peek().describe();
        let d = Diagnostic::error(
            "E020",
            self.span(),
            format!("expected {what}, found {found}"),
        )
        .label(format!("expected {what}"))
        .hint(hint);
        self.diags.push(d);
    }

    /// Skips the rest of the line and any block indented under it.
    fn recover(&mut self) {
        while !self.at_line_end() && !matches!(self.peek(), Tok::Indent | Tok::Dedent) {
            self.bump();
        }
        self.eat(&Tok::Newline);
        if matches!(self.peek(), Tok::Indent) {
            self.skip_block();
        }
    }

    fn skip_block(&mut self) {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                Tok::Indent => depth += 1,
                Tok::Dedent => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.bump();
                        return;
                    }
                }
                Tok::Eof => return,
                _ => {}
            }
            self.bump();
        }
    }

    /// Ends a line: anything left on it is an error.
    fn end_line(&mut self, what: &str) {
        if self.eat(&Tok::Newline) || matches!(self.peek(), Tok::Eof) {
            return;
        }
        let start = self.span();
        while !self.at_line_end() && !matches!(self.peek(), Tok::Indent | Tok::Dedent) {
            self.bump();
        }
        let span = start.to(self.prev_span());
        self.diags.push(
            Diagnostic::error("E021", span, format!("unexpected text after {what}"))
                .label("not understood")
                .hint("put one statement per line; separate options with commas"),
        );
        self.eat(&Tok::Newline);
    }

    fn name(&mut self, what: &str, hint: &str) -> Option<Name> {
        match self.peek() {
            Tok::Word(_) => {
                let (tok, span) = self.take();
                let Tok::Word(text) = tok else { return None };
                Some(Name {
                    text: text.to_owned(),
                    span,
                })
            }
            _ => {
                self.expected(what, hint);
                None
            }
        }
    }

    fn text(&mut self, what: &str, hint: &str) -> Option<Text> {
        match self.peek() {
            Tok::Str(_) => {
                let (tok, span) = self.take();
                let Tok::Str(parts) = tok else { return None };
                Some(Text { parts, span })
            }
            _ => {
                self.expected(what, hint);
                None
            }
        }
    }

    fn file(&mut self) -> File {
        let mut f = File::default();
        loop {
            match self.peek().clone() {
                Tok::Eof => break,
                Tok::Newline | Tok::Dedent => {
                    self.bump();
                }
                Tok::Indent => {
                    let span = self.span();
                    self.diags.push(
                        Diagnostic::error("E022", span, "indented line outside any step")
                            .hint("statements belong under a `step NAME` or `block NAME` line"),
                    );
                    self.skip_block();
                }
                Tok::Word("flow") => {
                    let span = self.span();
                    let misplaced = f.header.is_some() || !f.items.is_empty();
                    let h = self.header();
                    if misplaced {
                        self.diags.push(
                            Diagnostic::error("E023", span, "`flow` header must come first, once")
                                .hint("keep a single `flow \"Name\"` block at the top of the main file"),
                        );
                    } else {
                        f.header = h;
                    }
                }
                Tok::Word("include") => {
                    self.bump();
                    match self.text("a file name in quotes", "write `include \"shared.ivr\"`") {
                        Some(t) => {
                            f.includes.push(t);
                            self.end_line("`include`");
                        }
                        None => self.recover(),
                    }
                }
                Tok::Word(w) if w == "step" || w == "block" => {
                    if let Some(item) = self.item() {
                        f.items.push(item);
                    }
                }
                Tok::Word(w) => {
                    let span = self.span();
                    let mut d =
                        Diagnostic::error("E024", span, format!("`{w}` cannot start a line here"))
                            .label("expected `step`, `block`, `include` or `flow`");
                    d = match suggest(w, TOP_LEVEL) {
                        Some(s) => d.hint(format!("did you mean `{s}`?")),
                        None => d.hint("statements go indented under a `step NAME` line"),
                    };
                    self.diags.push(d);
                    self.recover();
                }
                _ => {
                    self.expected(
                        "`step`, `block`, `include` or `flow`",
                        "a flow file is a list of steps",
                    );
                    self.recover();
                }
            }
        }
        f
    }

    fn item(&mut self) -> Option<Item> {
        let kind = if self.eat_word("step") {
            ItemKind::Step
        } else {
            self.bump();
            ItemKind::Block
        };
        let keyword_span = self.prev_span();
        let Some(name) = self.name("a name", "write `step main_menu` (letters, digits, `_`)")
        else {
            self.recover();
            return None;
        };
        self.end_line("the step name");
        if !matches!(self.peek(), Tok::Indent) {
            self.diags.push(
                Diagnostic::error(
                    "E025",
                    keyword_span.to(name.span),
                    format!("`{}` has no statements", name.text),
                )
                .hint("indent the statements of a step under its `step` line"),
            );
            return Some(Item {
                kind,
                name,
                body: Vec::new(),
            });
        }
        let body = self.block();
        Some(Item { kind, name, body })
    }

    fn header(&mut self) -> Option<Header> {
        let start = self.bump();
        let name = match self.text("the flow's name in quotes", "write `flow \"Acme Support\"`") {
            Some(n) => n,
            None => {
                self.recover();
                return None;
            }
        };
        let mut h = Header {
            name,
            numbers: Vec::new(),
            voice: None,
            timezone: None,
            barge_in: None,
            hours: Vec::new(),
            holidays: Vec::new(),
            span: start,
        };
        h.span = start.to(h.name.span);
        self.end_line("the flow name");
        if !self.eat(&Tok::Indent) {
            return Some(h);
        }
        const KEYS: [&str; 6] = [
            "numbers", "voice", "timezone", "barge-in", "hours", "holidays",
        ];
        loop {
            match self.peek().clone() {
                Tok::Dedent => {
                    self.bump();
                    break;
                }
                Tok::Eof => break,
                Tok::Newline => {
                    self.bump();
                }
                Tok::Word("numbers") => {
                    self.bump();
                    loop {
                        let plus = self.eat(&Tok::Plus);
                        let start = self.prev_span();
                        match self.peek().clone() {
                            Tok::Int(_) => {
                                let t = self.bump();
                                let span = if plus { start.to(t) } else { t };
                                h.numbers.push(Name {
                                    text: self.snippet(span),
                                    span,
                                });
                            }
                            Tok::Str(parts) => {
                                let span = self.bump();
                                let text = Text { parts, span }.template();
                                h.numbers.push(Name { text, span });
                            }
                            _ => {
                                self.expected(
                                    "a phone number",
                                    "list numbers like `numbers 1000, +911140000000`",
                                );
                                break;
                            }
                        }
                        if !self.eat(&Tok::Comma) {
                            break;
                        }
                    }
                    self.end_line("the numbers");
                }
                Tok::Word(w) if w == "voice" || w == "timezone" => {
                    self.bump();
                    let v = match self.peek().clone() {
                        Tok::Word(x) => Some(Name {
                            text: x.to_owned(),
                            span: self.bump(),
                        }),
                        Tok::Str(parts) => {
                            let span = self.bump();
                            Some(Name {
                                text: Text { parts, span }.template(),
                                span,
                            })
                        }
                        _ => {
                            self.expected("a name", "e.g. `voice en-IN`, `timezone Asia/Kolkata`");
                            None
                        }
                    };
                    if w == "voice" {
                        h.voice = v
                    } else {
                        h.timezone = v
                    }
                    self.end_line(&format!("`{w}`"));
                }
                Tok::Word("barge-in") => {
                    self.bump();
                    h.barge_in = self.on_off();
                    self.end_line("`barge-in`");
                }
                Tok::Word("hours") => {
                    self.bump();
                    if let Some(hours) = self.hours() {
                        h.hours.push(hours);
                    }
                    self.end_line("the hours");
                }
                Tok::Word("holidays") => {
                    self.bump();
                    loop {
                        match self.peek().clone() {
                            Tok::Date(d) => {
                                let span = self.bump();
                                h.holidays.push((d, span));
                            }
                            _ => {
                                self.expected(
                                    "a date",
                                    "list dates like `holidays 2026-01-26, 2026-08-15`",
                                );
                                break;
                            }
                        }
                        if !self.eat(&Tok::Comma) {
                            break;
                        }
                    }
                    self.end_line("the holidays");
                }
                Tok::Word(w) => {
                    let mut d = Diagnostic::error(
                        "E026",
                        self.span(),
                        format!("unknown flow setting `{w}`"),
                    )
                    .label("not a setting");
                    d = match suggest(w, KEYS) {
                        Some(s) => d.hint(format!("did you mean `{s}`?")),
                        None => d.hint("the settings are numbers, voice, timezone, barge-in, hours and holidays"),
                    };
                    self.diags.push(d);
                    self.recover();
                }
                _ => {
                    self.expected(
                        "a flow setting",
                        "the settings are numbers, voice, timezone, barge-in, hours and holidays",
                    );
                    self.recover();
                }
            }
        }
        Some(h)
    }

    fn snippet(&self, span: Span) -> String {
        self.source_text(span)
    }

    pub(crate) fn source_text(&self, span: Span) -> String {
        self.src.get(span.range()).unwrap_or("").to_owned()
    }

    pub(crate) fn on_off(&mut self) -> Option<bool> {
        if self.eat_word("on") {
            Some(true)
        } else if self.eat_word("off") {
            Some(false)
        } else {
            self.expected("`on` or `off`", "write `barge-in on` or `barge-in off`");
            None
        }
    }

    fn hours(&mut self) -> Option<Hours> {
        let name = self.name(
            "a name for these hours",
            "write `hours business mon-fri 09:00-18:00`",
        )?;
        let mut ranges = Vec::new();
        loop {
            let start = self.span();
            let days = match self.peek().clone() {
                Tok::Word(w) => {
                    let span = self.bump();
                    match parse_days(w) {
                        Some(d) => d,
                        None => {
                            self.diags.push(
                                Diagnostic::error("E027", span, format!("`{w}` is not a day or range of days"))
                                    .hint("use mon, tue, wed, thu, fri, sat, sun, a range like mon-fri, or daily"),
                            );
                            return None;
                        }
                    }
                }
                _ => {
                    self.expected("days", "write days like `mon-fri` or `sat`");
                    return None;
                }
            };
            let (from, to) = match (
                self.peek().clone(),
                self.peek_at(1).clone(),
                self.peek_at(2).clone(),
            ) {
                (Tok::Time(a), Tok::Minus, Tok::Time(b)) => {
                    self.bump();
                    self.bump();
                    self.bump();
                    (a, b)
                }
                _ => {
                    self.expected(
                        "a time range",
                        "write the opening time range like `09:00-18:00`",
                    );
                    return None;
                }
            };
            let span = start.to(self.prev_span());
            if from >= to {
                self.diags.push(
                    Diagnostic::error("E028", span, "opening time is not before closing time")
                        .hint("ranges run within one day, e.g. 09:00-18:00; split overnight hours into two days"),
                );
            }
            ranges.push(HoursRange {
                days,
                from,
                to,
                span,
            });
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        Some(Hours { name, ranges })
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `mon`, `mon-fri`, `sat-sun`, `daily`, `weekdays`, `weekends` to a day mask
/// (bit 0 = Monday).
pub fn parse_days(w: &str) -> Option<u8> {
    let day = |d: &str| DAYS.iter().position(|x| *x == d);
    match w {
        "daily" => return Some(0x7f),
        "weekdays" => return Some(0x1f),
        "weekends" => return Some(0x60),
        _ => {}
    }
    match w.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (day(a)?, day(b)?);
            let mut mask = 0u8;
            let mut d = a;
            loop {
                mask |= 1 << d;
                if d == b {
                    break;
                }
                d = (d + 1) % 7;
            }
            Some(mask)
        }
        None => day(w).map(|d| 1 << d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::StmtKind;

    fn parse_ok(src: &str) -> File {
        let mut d = Vec::new();
        let f = parse(FileId(0), src, &mut d);
        assert!(d.is_empty(), "{d:#?}");
        f
    }

    #[test]
    fn header_and_steps() {
        let f = parse_ok(
            "flow \"Acme\"\n  numbers 1000, +911140000000\n  voice en-IN\n  timezone Asia/Kolkata\n  hours office mon-fri 09:00-18:00, sat 10:00-13:00\n  holidays 2026-01-26\n\nstep a\n  say \"hi\"\n  goto b\nstep b\n  hangup\n",
        );
        let h = f.header.as_ref().expect("header");
        assert_eq!(
            h.numbers
                .iter()
                .map(|n| n.text.as_str())
                .collect::<Vec<_>>(),
            ["1000", "+911140000000"]
        );
        assert_eq!(
            h.timezone.as_ref().map(|t| t.text.as_str()),
            Some("Asia/Kolkata")
        );
        assert_eq!(h.hours[0].ranges.len(), 2);
        assert_eq!(h.hours[0].ranges[0].days, 0x1f);
        assert_eq!(f.items.len(), 2);
        assert!(matches!(f.items[0].body[1].kind, StmtKind::Goto(_)));
    }

    #[test]
    fn day_ranges_wrap_the_week() {
        assert_eq!(parse_days("sat-mon"), Some(0b110_0001));
        assert_eq!(parse_days("funday"), None);
    }

    #[test]
    fn one_bad_line_does_not_hide_the_next() {
        let mut d = Vec::new();
        parse(
            FileId(0),
            "step a\n  gaither 1\n    on 1 -> b\n  sya \"x\"\n  hangup\n",
            &mut d,
        );
        assert_eq!(d.len(), 2, "{d:#?}");
        assert_eq!(d[0].hint.as_deref(), Some("did you mean `gather`?"));
        assert_eq!(d[1].hint.as_deref(), Some("did you mean `say`?"));
    }
}
