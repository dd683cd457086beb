//! Lexer: flow text to tokens, with indentation turned into `Indent` and
//! `Dedent` tokens (as in Python) so the parser sees blocks.
//!
//! ```text
//! line     = indent { token } [ "#" comment ] newline
//! word     = letter { letter | digit | "_" | ("-" | "/" | ".") (letter | digit) }
//! string   = '"' { char | "\" escape | "{" word "}" | "{{" | "}}" } '"'
//! number   = digit { digit }
//! duration = number unit { number unit }        unit = "ms" | "s" | "m" | "h"
//! time     = digit digit ":" digit digit        (24-hour clock)
//! date     = 4digit "-" 2digit "-" 2digit
//! ```
//!
//! Hyphens, slashes and dots join words (`barge-in`, `mon-fri`, `en-IN`,
//! `Asia/Kolkata`), so subtraction and division need spaces around them;
//! the checker says so when a joined word is used as a variable.

use std::time::Duration;

use crate::diag::Diagnostic;
use crate::source::{FileId, Span};

/// Longest string literal, in bytes: a prompt, not a novel.
pub const MAX_STRING_BYTES: usize = 4096;
/// Deepest indentation nesting.
pub const MAX_INDENT_DEPTH: usize = 32;

/// A piece of a string literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrPart {
    /// Literal text.
    Text(String),
    /// `{name}`: a variable to insert.
    Var(String, Span),
}

/// What a token is. Words borrow from the source text (most tokens are
/// words; not allocating for them halves the lexer's time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok<'a> {
    /// A word: keyword, name, or joined word like `mon-fri`.
    Word(&'a str),
    /// A string literal, split at `{variables}`.
    Str(Vec<StrPart>),
    /// A whole number; its digits are the span's text.
    Int(i64),
    /// `5s`, `500ms`, `1m30s`.
    Duration(Duration),
    /// `09:30`, as minutes after midnight.
    Time(u16),
    /// `2026-01-26`.
    Date(jiff::civil::Date),
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `*`
    Star,
    /// `/`
    Slash,
    /// `->`
    Arrow,
    /// `,`
    Comma,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `=`
    Assign,
    /// `==`
    EqEq,
    /// `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// End of a logical line.
    Newline,
    /// The next line is indented deeper.
    Indent,
    /// Back out one level.
    Dedent,
    /// End of file.
    Eof,
}

impl Tok<'_> {
    /// How the token is named in "expected ..., found ..." messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Str(_) => "a string".into(),
            Tok::Int(_) => "a number".into(),
            Tok::Duration(_) => "a duration".into(),
            Tok::Time(_) => "a time of day".into(),
            Tok::Date(_) => "a date".into(),
            Tok::Plus => "`+`".into(),
            Tok::Minus => "`-`".into(),
            Tok::Star => "`*`".into(),
            Tok::Slash => "`/`".into(),
            Tok::Arrow => "`->`".into(),
            Tok::Comma => "`,`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Assign => "`=`".into(),
            Tok::EqEq => "`==`".into(),
            Tok::NotEq => "`!=`".into(),
            Tok::Lt => "`<`".into(),
            Tok::Le => "`<=`".into(),
            Tok::Gt => "`>`".into(),
            Tok::Ge => "`>=`".into(),
            Tok::Newline => "the end of the line".into(),
            Tok::Indent => "an indented line".into(),
            Tok::Dedent => "the end of the block".into(),
            Tok::Eof => "the end of the file".into(),
        }
    }
}

/// A token and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    /// What.
    pub tok: Tok<'a>,
    /// Where.
    pub span: Span,
}

/// Splits `text` into tokens. Problems become diagnostics; the lexer always
/// reaches the end and the token list always ends with `Eof`.
pub fn lex<'a>(file: FileId, text: &'a str, diags: &mut Vec<Diagnostic>) -> Vec<Token<'a>> {
    let mut lx = Lexer {
        file,
        text,
        bytes: text.as_bytes(),
        // Flows run at about one token per four bytes; a third avoids
        // regrowing (and copying) the vector for large flows.
        out: Vec::with_capacity(text.len() / 3 + 8),
        diags,
        indents: vec![0],
    };
    lx.run();
    lx.out
}

struct Lexer<'a, 'd> {
    file: FileId,
    text: &'a str,
    bytes: &'a [u8],
    out: Vec<Token<'a>>,
    diags: &'d mut Vec<Diagnostic>,
    indents: Vec<usize>,
}

impl<'a> Lexer<'a, '_> {
    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, start..end)
    }

    fn at(&self, i: usize) -> u8 {
        self.bytes.get(i).copied().unwrap_or(0)
    }

    fn push(&mut self, tok: Tok<'a>, start: usize, end: usize) {
        let span = self.span(start, end);
        self.out.push(Token { tok, span });
    }

    fn run(&mut self) {
        let mut pos = 0;
        while pos < self.bytes.len() {
            let line_end = memchr_newline(self.bytes, pos);
            self.line(pos, line_end);
            pos = line_end + 1;
        }
        let end = self.bytes.len();
        while self.indents.len() > 1 {
            self.indents.pop();
            self.push(Tok::Dedent, end, end);
        }
        self.push(Tok::Eof, end, end);
    }

    /// One physical line `[start, end)` (without the newline).
    fn line(&mut self, start: usize, end: usize) {
        // Measure indentation.
        let mut i = start;
        let mut width = 0usize;
        while i < end {
            match self.at(i) {
                b' ' => width += 1,
                b'\t' => {
                    self.diags.push(
                        Diagnostic::error("E001", self.span(i, i + 1), "tab used for indentation")
                            .label("tab here")
                            .hint("indent with spaces only (two per level is the usual style)"),
                    );
                    width += 2;
                }
                _ => break,
            }
            i += 1;
        }
        // Blank or comment-only lines do not affect blocks.
        if i >= end || self.at(i) == b'#' || (self.at(i) == b'\r' && i + 1 >= end) {
            return;
        }
        let current = self.indents.last().copied().unwrap_or(0);
        if width > current {
            if self.indents.len() >= MAX_INDENT_DEPTH {
                self.diags.push(
                    Diagnostic::error("E002", self.span(start, i), "indentation is too deep")
                        .hint(format!(
                            "a flow nests at most {MAX_INDENT_DEPTH} levels; move inner parts into a block and `call` it"
                        )),
                );
            } else {
                self.indents.push(width);
                self.push(Tok::Indent, start, i);
            }
        } else if width < current {
            let mut popped = None;
            while self.indents.last().is_some_and(|&w| w > width) {
                popped = self.indents.pop();
                self.push(Tok::Dedent, i, i);
            }
            if self.indents.last().copied().unwrap_or(0) != width {
                self.diags.push(
                    Diagnostic::error(
                        "E003",
                        self.span(start, i),
                        "this line's indentation matches no outer line",
                    )
                    .label(format!("{width} spaces"))
                    .hint("line it up with the line that starts the block it belongs to"),
                );
                // Keep the line in the block it was closest to, so one
                // misaligned line does not end its step.
                if let Some(level) = popped {
                    self.indents.push(level);
                    self.out.pop();
                }
            }
        }
        self.tokens(i, end);
        self.push(Tok::Newline, end, end);
    }

    fn tokens(&mut self, mut i: usize, end: usize) {
        while i < end {
            let c = self.at(i);
            let start = i;
            match c {
                b' ' | b'\t' | b'\r' => i += 1,
                b'#' => return,
                b'"' => i = self.string(i, end),
                b'\'' => {
                    // A common slip: lex it as a string so the rest of the
                    // line still parses, and say how to write it.
                    self.diags.push(
                        Diagnostic::error("E004", self.span(i, i + 1), "strings use double quotes")
                            .label("single quote")
                            .hint("write \"like this\" instead of 'like this'"),
                    );
                    let close = self
                        .bytes
                        .get(i + 1..end)
                        .and_then(|r| r.iter().position(|&b| b == b'\''))
                        .map_or(end, |p| i + 1 + p);
                    let text = self.text.get(i + 1..close).unwrap_or("").to_owned();
                    let stop = (close + 1).min(end);
                    self.push(Tok::Str(vec![StrPart::Text(text)]), i, stop);
                    i = stop;
                }
                b'0'..=b'9' => i = self.number(i, end),
                b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                    i += 1;
                    loop {
                        let d = self.at(i);
                        if i < end && (d.is_ascii_alphanumeric() || d == b'_') {
                            i += 1;
                        } else if i + 1 < end
                            && matches!(d, b'-' | b'/' | b'.')
                            && (self.at(i + 1).is_ascii_alphanumeric() || self.at(i + 1) == b'_')
                        {
                            i += 2;
                        } else {
                            break;
                        }
                    }
                    let w = self.text.get(start..i).unwrap_or("");
                    self.push(Tok::Word(w), start, i);
                }
                _ => {
                    let two = (c, self.at(i + 1));
                    let (tok, len) = match two {
                        (b'-', b'>') => (Some(Tok::Arrow), 2),
                        (b'=', b'=') => (Some(Tok::EqEq), 2),
                        (b'!', b'=') => (Some(Tok::NotEq), 2),
                        (b'<', b'=') => (Some(Tok::Le), 2),
                        (b'>', b'=') => (Some(Tok::Ge), 2),
                        (b'+', _) => (Some(Tok::Plus), 1),
                        (b'-', _) => (Some(Tok::Minus), 1),
                        (b'*', _) => (Some(Tok::Star), 1),
                        (b'/', _) => (Some(Tok::Slash), 1),
                        (b',', _) => (Some(Tok::Comma), 1),
                        (b'(', _) => (Some(Tok::LParen), 1),
                        (b')', _) => (Some(Tok::RParen), 1),
                        (b'=', _) => (Some(Tok::Assign), 1),
                        (b'<', _) => (Some(Tok::Lt), 1),
                        (b'>', _) => (Some(Tok::Gt), 1),
                        _ => (None, 1),
                    };
                    match tok {
                        Some(t) => {
                            self.push(t, start, start + len);
                            i += len;
                        }
                        None => {
                            // Step over one whole character, not one byte.
                            let ch = self.text.get(start..).and_then(|s| s.chars().next());
                            let n = ch.map_or(1, char::len_utf8);
                            let shown = ch.map_or_else(|| "?".to_owned(), |c| c.to_string());
                            let mut d = Diagnostic::error(
                                "E004",
                                self.span(start, start + n),
                                format!("unexpected character `{shown}`"),
                            );
                            d = match shown.as_str() {
                                "'" => d.hint("strings use double quotes: \"like this\""),
                                "{" | "}" => d.hint("`{name}` works only inside a string"),
                                ":" => d.hint("write times as HH:MM, e.g. 09:30"),
                                _ => d.hint("remove it, or put it inside a string"),
                            };
                            self.diags.push(d.label("not part of the language"));
                            i += n;
                        }
                    }
                }
            }
        }
    }

    fn string(&mut self, start: usize, end: usize) -> usize {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut i = start + 1;
        let mut closed = false;
        while i < end {
            let c = self.at(i);
            match c {
                b'"' => {
                    closed = true;
                    i += 1;
                    break;
                }
                b'\\' => {
                    let e = self.at(i + 1);
                    match e {
                        b'"' => text.push('"'),
                        b'\\' => text.push('\\'),
                        b'n' => text.push('\n'),
                        _ => {
                            self.diags.push(
                                Diagnostic::error(
                                    "E005",
                                    self.span(i, (i + 2).min(end)),
                                    "unknown escape in string",
                                )
                                .hint("inside strings only \\\" \\\\ and \\n are escapes"),
                            );
                        }
                    }
                    i += 2;
                }
                b'{' if self.at(i + 1) == b'{' => {
                    text.push('{');
                    i += 2;
                }
                b'}' if self.at(i + 1) == b'}' => {
                    text.push('}');
                    i += 2;
                }
                b'{' => {
                    let name_start = i + 1;
                    let mut j = name_start;
                    while j < end && self.at(j) != b'}' && self.at(j) != b'"' {
                        j += 1;
                    }
                    let name = self.text.get(name_start..j).unwrap_or("").trim().to_owned();
                    let valid = !name.is_empty()
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                        && !name.as_bytes().first().is_some_and(u8::is_ascii_digit);
                    if self.at(j) != b'}' || !valid {
                        self.diags.push(
                            Diagnostic::error(
                                "E006",
                                self.span(i, j.min(end)),
                                "bad `{variable}` in string",
                            )
                            .label("this brace")
                            .hint(
                                "write `{name}` with a variable name, or `{{` for a literal brace",
                            ),
                        );
                        i = if self.at(j) == b'}' { j + 1 } else { j };
                        continue;
                    }
                    if !text.is_empty() {
                        parts.push(StrPart::Text(std::mem::take(&mut text)));
                    }
                    parts.push(StrPart::Var(name, self.span(name_start, j)));
                    i = j + 1;
                }
                _ => {
                    let ch = self.text.get(i..).and_then(|s| s.chars().next());
                    if let Some(ch) = ch {
                        text.push(ch);
                        i += ch.len_utf8();
                    } else {
                        i += 1;
                    }
                }
            }
        }
        if !closed {
            self.diags.push(
                Diagnostic::error("E007", self.span(start, end), "string is not closed")
                    .label("starts here")
                    .hint("end it with `\"` on the same line"),
            );
        }
        let total: usize = parts
            .iter()
            .map(|p| match p {
                StrPart::Text(t) => t.len(),
                StrPart::Var(v, _) => v.len(),
            })
            .sum::<usize>()
            + text.len();
        if total > MAX_STRING_BYTES {
            self.diags.push(
                Diagnostic::error("E008", self.span(start, i), "string is too long")
                    .hint(format!("keep strings under {MAX_STRING_BYTES} bytes; split a long announcement into several `say` lines")),
            );
        }
        if !text.is_empty() {
            parts.push(StrPart::Text(text));
        }
        self.push(Tok::Str(parts), start, i);
        i
    }

    fn digits(&self, mut i: usize, end: usize) -> usize {
        while i < end && self.at(i).is_ascii_digit() {
            i += 1;
        }
        i
    }

    fn number(&mut self, start: usize, end: usize) -> usize {
        let i = self.digits(start, end);
        let n = i - start;
        // HH:MM
        if self.at(i) == b':' {
            let j = self.digits(i + 1, end);
            let hh = self.text.get(start..i).and_then(|s| s.parse::<u16>().ok());
            let mm = self.text.get(i + 1..j).and_then(|s| s.parse::<u16>().ok());
            match (hh, mm, n, j - i - 1) {
                (Some(h), Some(m), 1 | 2, 2) if h < 24 && m < 60 => {
                    self.push(Tok::Time(h * 60 + m), start, j)
                }
                _ => {
                    self.diags.push(
                        Diagnostic::error("E009", self.span(start, j), "bad time of day")
                            .hint("write a 24-hour time as HH:MM, from 00:00 to 23:59"),
                    );
                    // A stand-in keeps the rest of the line parsing.
                    self.push(Tok::Time(23 * 60 + 59), start, j);
                }
            }
            return j;
        }
        // YYYY-MM-DD
        if n == 4 && self.at(i) == b'-' && self.at(i + 1).is_ascii_digit() {
            let j = self.digits(i + 1, end);
            let k = if self.at(j) == b'-' {
                self.digits(j + 1, end)
            } else {
                j
            };
            let date = self
                .text
                .get(start..k)
                .and_then(|s| s.parse::<jiff::civil::Date>().ok())
                .filter(|_| k - start == 10);
            match date {
                Some(d) => self.push(Tok::Date(d), start, k),
                None => {
                    self.diags.push(
                        Diagnostic::error("E010", self.span(start, k), "bad date")
                            .hint("write dates as YYYY-MM-DD, e.g. 2026-08-15"),
                    );
                    self.push(Tok::Date(jiff::civil::Date::MIN), start, k);
                }
            }
            return k;
        }
        // Duration: number unit { number unit }
        if self.at(i).is_ascii_alphabetic() {
            let mut j = start;
            let mut total = Duration::ZERO;
            let mut ok = true;
            loop {
                let d_end = self.digits(j, end);
                let mut u_end = d_end;
                while u_end < end && self.at(u_end).is_ascii_alphabetic() {
                    u_end += 1;
                }
                let value = self.text.get(j..d_end).and_then(|s| s.parse::<u64>().ok());
                let unit = self.text.get(d_end..u_end).unwrap_or("");
                let part = match (value, unit) {
                    (Some(v), "ms") => Some(Duration::from_millis(v)),
                    (Some(v), "s") => v.checked_mul(1).map(Duration::from_secs),
                    (Some(v), "m") => v.checked_mul(60).map(Duration::from_secs),
                    (Some(v), "h") => v.checked_mul(3600).map(Duration::from_secs),
                    _ => None,
                };
                match part.and_then(|p| total.checked_add(p)) {
                    Some(t) => total = t,
                    None => ok = false,
                }
                j = u_end;
                if !(j < end && self.at(j).is_ascii_digit() && ok) {
                    break;
                }
            }
            // Swallow any trailing word characters into the bad token.
            while j < end && self.at(j).is_ascii_alphanumeric() {
                j += 1;
                ok = false;
            }
            if ok {
                self.push(Tok::Duration(total), start, j);
            } else {
                let shown = self.text.get(start..j).unwrap_or("").to_owned();
                self.diags.push(
                    Diagnostic::error(
                        "E011",
                        self.span(start, j),
                        format!("bad duration `{shown}`"),
                    )
                    .label("not a duration")
                    .hint("use a number with ms, s, m or h, e.g. 500ms, 5s, 2m, 1m30s"),
                );
                self.push(Tok::Duration(Duration::from_secs(1)), start, j);
            }
            return j;
        }
        match self.text.get(start..i).and_then(|s| s.parse::<i64>().ok()) {
            Some(v) => self.push(Tok::Int(v), start, i),
            None => {
                self.diags.push(
                    Diagnostic::error("E012", self.span(start, i), "number is too large").hint(
                        "numbers must fit in 18 digits; quote long digit strings: \"123...\"",
                    ),
                );
                self.push(Tok::Int(0), start, i);
            }
        }
        i
    }
}

fn memchr_newline(bytes: &[u8], from: usize) -> usize {
    bytes
        .get(from..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        .map_or(bytes.len(), |p| from + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok<'_>> {
        let mut d = Vec::new();
        let t = lex(FileId(0), src, &mut d);
        assert!(d.is_empty(), "{d:?}");
        t.into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn indentation_becomes_blocks() {
        let t = toks("step a\n  say \"hi\"\n\n  # c\n  goto b\nstep b\n");
        assert_eq!(
            t,
            vec![
                Tok::Word("step"),
                Tok::Word("a"),
                Tok::Newline,
                Tok::Indent,
                Tok::Word("say"),
                Tok::Str(vec![StrPart::Text("hi".into())]),
                Tok::Newline,
                Tok::Word("goto"),
                Tok::Word("b"),
                Tok::Newline,
                Tok::Dedent,
                Tok::Word("step"),
                Tok::Word("b"),
                Tok::Newline,
                Tok::Eof
            ]
        );
    }

    #[test]
    fn literals() {
        let t = toks("x 5s 1m30s 500ms 09:30 2026-08-15 42 mon-fri -> >= a - b");
        assert_eq!(t[1], Tok::Duration(Duration::from_secs(5)));
        assert_eq!(t[2], Tok::Duration(Duration::from_secs(90)));
        assert_eq!(t[3], Tok::Duration(Duration::from_millis(500)));
        assert_eq!(t[4], Tok::Time(570));
        assert!(matches!(t[5], Tok::Date(_)));
        assert_eq!(t[6], Tok::Int(42));
        assert_eq!(t[7], Tok::Word("mon-fri"));
        assert_eq!(t[8], Tok::Arrow);
        assert_eq!(t[9], Tok::Ge);
        assert_eq!(t[11], Tok::Minus);
    }

    #[test]
    fn string_interpolation_and_escapes() {
        let t = toks(r#"say "Hi {name}, {{x}} \"q\"""#);
        match &t[1] {
            Tok::Str(parts) => {
                assert_eq!(parts.len(), 3);
                assert!(matches!(&parts[1], StrPart::Var(n, _) if n == "name"));
                assert_eq!(parts[2], StrPart::Text(", {x} \"q\"".into()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_do_not_stop_the_lexer() {
        let mut d = Vec::new();
        let t = lex(FileId(0), "a 5x 25:00 'q' \"open\nb", &mut d);
        let codes: Vec<_> = d.iter().map(|d| d.code).collect();
        assert_eq!(codes, vec!["E011", "E009", "E004", "E007"]);
        assert_eq!(t.last().map(|t| &t.tok), Some(&Tok::Eof));
    }
}
