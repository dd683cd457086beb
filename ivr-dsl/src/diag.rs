//! Diagnostics: what is wrong with a flow, where, and how to fix it.
//!
//! Every diagnostic has a stable code (`E0xx` errors stop a flow from
//! loading, `W0xx` warnings do not), one primary span, a one-line message,
//! and a hint. Rendering uses `codespan-reporting`: `file:line:column`, the
//! source line, and a caret under the span.

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label, Severity as CsSeverity};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term;

use crate::source::{Sources, Span};

/// Error or warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The flow still loads.
    Warning,
    /// The flow is refused.
    Error,
}

/// One finding about a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code, e.g. `E012`.
    pub code: &'static str,
    /// One line: what is wrong.
    pub message: String,
    /// Where.
    pub span: Span,
    /// Text under the caret (may be empty).
    pub label: String,
    /// How to fix it.
    pub hint: Option<String>,
    /// Other places that explain it (e.g. the first definition).
    pub related: Vec<(Span, String)>,
}

impl Diagnostic {
    /// A new error.
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            label: String::new(),
            hint: None,
            related: Vec::new(),
        }
    }

    /// A new warning.
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    /// Sets the text under the caret.
    pub fn label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = label.into();
        self
    }

    /// Sets the fix hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a secondary location.
    pub fn related(mut self, span: Span, text: impl Into<String>) -> Diagnostic {
        self.related.push((span, text.into()));
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Renders diagnostics as text (no colour), in the order given.
pub fn render(sources: &Sources, diags: &[Diagnostic]) -> String {
    let mut files = SimpleFiles::new();
    for (_, f) in sources.iter() {
        files.add(f.name.clone(), f.text.clone());
    }
    let config = term::Config::default();
    let mut out = String::new();
    for d in diags {
        let severity = match d.severity {
            Severity::Error => CsSeverity::Error,
            Severity::Warning => CsSeverity::Warning,
        };
        let mut labels =
            vec![Label::primary(d.span.file.0 as usize, d.span.range()).with_message(&d.label)];
        for (span, text) in &d.related {
            labels.push(Label::secondary(span.file.0 as usize, span.range()).with_message(text));
        }
        let mut cs = CsDiagnostic::new(severity)
            .with_code(d.code)
            .with_message(&d.message)
            .with_labels(labels);
        if let Some(h) = &d.hint {
            cs = cs.with_notes(vec![format!("hint: {h}")]);
        }
        let mut buf = String::new();
        if term::emit_to_string(&mut buf, &config, &files, &cs).is_err() {
            // A span outside its file cannot happen for spans we made; fall
            // back to a plain line rather than lose the finding.
            buf = format!(
                "{}: {}[{}]: {}\n",
                sources.location(d.span),
                if d.is_error() { "error" } else { "warning" },
                d.code,
                d.message
            );
        }
        out.push_str(&buf);
    }
    out
}

/// Sorts diagnostics by file and position (errors first on the same spot).
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (
            a.span.file,
            a.span.start,
            std::cmp::Reverse(a.severity),
            a.code,
        )
            .cmp(&(
                b.span.file,
                b.span.start,
                std::cmp::Reverse(b.severity),
                b.code,
            ))
    });
}

/// The candidate closest to `word` by edit distance, if it is close enough
/// to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: insertions, deletions, substitutions
/// and swaps of neighbours (`sya` is one step from `say`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    let at = |i: usize, j: usize| i * w + j;
    for i in 0..=a.len() {
        if let Some(x) = d.get_mut(at(i, 0)) {
            *x = i;
        }
    }
    for j in 0..=b.len() {
        if let Some(x) = d.get_mut(at(0, j)) {
            *x = j;
        }
    }
    let get =
        |d: &Vec<usize>, i: usize, j: usize| d.get(at(i, j)).copied().unwrap_or(usize::MAX / 2);
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let (ca, cb) = (a.get(i - 1), b.get(j - 1));
            let cost = usize::from(ca != cb);
            let mut v = (get(&d, i - 1, j) + 1)
                .min(get(&d, i, j - 1) + 1)
                .min(get(&d, i - 1, j - 1) + cost);
            if i > 1 && j > 1 && ca == b.get(j - 2) && a.get(i - 2) == cb {
                v = v.min(get(&d, i - 2, j - 2) + 1);
            }
            if let Some(x) = d.get_mut(at(i, j)) {
                *x = v;
            }
        }
    }
    get(&d, a.len(), b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses_only() {
        assert_eq!(suggest("gather", ["gather", "goto"]), Some("gather"));
        assert_eq!(suggest("xyz", ["gather", "goto"]), None);
    }
}
