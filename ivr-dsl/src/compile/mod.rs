//! Loading a flow: read the main file and its includes, parse, resolve
//! names, type-check, lower to [`Flow`] code, then run the flow-graph
//! checks. Errors stop the flow from loading; warnings do not.
//!
//! Reading files goes through [`Host`], so the crate stays free of IO in
//! tests and the server can load flows from anywhere.

mod branching;
mod emit;
mod expr;
mod types;

pub use emit::fmt_duration;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::ast::{self, ItemKind};
use crate::diag::{self, Diagnostic, Severity};
use crate::flow::{Flow, Hours, StepId, StepInfo, Version};
use crate::parser::parse;
use crate::source::{FileId, Sources, Span};

/// Flow-shape findings that a parse error elsewhere can cause.
const CASCADING: [&str; 9] = [
    "E056", "E060", "W057", "W058", "W061", "W062", "W080", "W089", "E071",
];

/// Most files one flow may include (directly or not).
pub const MAX_FILES: usize = 32;
/// Most steps and blocks in one flow.
pub const MAX_STEPS: usize = 20_000;

/// What the loader needs from the outside world.
pub trait Host {
    /// Reads a flow file.
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// True when a prompt file exists and is a readable file.
    fn prompt_exists(&self, path: &Path) -> bool;
}

/// Reads from the file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsHost;

impl Host for FsHost {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        let meta = std::fs::metadata(path)?;
        if meta.len() > crate::parser::MAX_FILE_BYTES as u64 {
            return Err(std::io::Error::other(format!(
                "larger than {} bytes",
                crate::parser::MAX_FILE_BYTES
            )));
        }
        std::fs::read_to_string(path)
    }

    fn prompt_exists(&self, path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|m| m.is_file())
    }
}

/// The result of loading a flow.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The flow, when there were no errors.
    pub flow: Option<Arc<Flow>>,
    /// Errors and warnings, sorted by place.
    pub diagnostics: Vec<Diagnostic>,
    /// The files read, for rendering diagnostics.
    pub sources: Sources,
}

impl Loaded {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Diagnostics as text.
    pub fn render(&self) -> String {
        diag::render(&self.sources, &self.diagnostics)
    }

    /// Counts of (errors, warnings).
    pub fn counts(&self) -> (usize, usize) {
        let e = self.diagnostics.iter().filter(|d| d.is_error()).count();
        (e, self.diagnostics.len() - e)
    }
}

/// Loads the flow in `path` (and its includes) through `host`.
pub fn load(path: &Path, host: &dyn Host) -> Loaded {
    let mut sources = Sources::new();
    match host.read(path) {
        Ok(text) => load_inner(path, text, host, sources),
        Err(e) => {
            let id = sources.add(path.display().to_string(), "");
            Loaded {
                flow: None,
                diagnostics: vec![
                    Diagnostic::error(
                        "E079",
                        Span::new(id, 0..0),
                        format!("cannot read the flow file: {e}"),
                    )
                    .hint("check the path and that the file is readable"),
                ],
                sources,
            }
        }
    }
}

/// Loads a flow from text; `path` names it and anchors relative paths.
pub fn load_str(path: &Path, text: &str, host: &dyn Host) -> Loaded {
    load_inner(path, text.to_owned(), host, Sources::new())
}

pub(crate) struct ParsedFile {
    pub id: FileId,
    pub dir: PathBuf,
    pub ast: ast::File,
}

fn load_inner(path: &Path, text: String, host: &dyn Host, mut sources: Sources) -> Loaded {
    let mut diags = Vec::new();
    let mut files = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut hasher = Sha256::new();
    let mut queue: Vec<(PathBuf, String, Option<Span>)> = vec![(path.to_path_buf(), text, None)];
    while let Some((p, text, included_at)) = queue.pop() {
        hasher.update(p.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
        let id = sources.add(p.display().to_string(), text.as_str());
        seen.push(normalize(&p));
        let ast = parse(id, &text, &mut diags);
        let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
        if let (Some(at), Some(h)) = (included_at, ast.header.as_ref()) {
            diags.push(
                Diagnostic::error(
                    "E080",
                    h.span,
                    "an included file cannot have a `flow` header",
                )
                .related(at, "included here")
                .hint(
                    "keep the header in the main file; included files hold only steps and blocks",
                ),
            );
        }
        for inc in &ast.includes {
            let rel = inc.template();
            let target = dir.join(&rel);
            if seen.contains(&normalize(&target))
                || queue
                    .iter()
                    .any(|(q, _, _)| normalize(q) == normalize(&target))
            {
                diags.push(
                    Diagnostic::error(
                        "E081",
                        inc.span,
                        format!("`{rel}` is included more than once"),
                    )
                    .hint("include each file once, from the main flow file"),
                );
                continue;
            }
            if sources.len() + queue.len() >= MAX_FILES {
                diags.push(
                    Diagnostic::error("E082", inc.span, "too many included files")
                        .hint(format!("a flow may use at most {MAX_FILES} files")),
                );
                continue;
            }
            match host.read(&target) {
                Ok(t) => queue.push((target, t, Some(inc.span))),
                Err(e) => diags.push(
                    Diagnostic::error(
                        "E083",
                        inc.span,
                        format!("cannot read included file `{rel}`: {e}"),
                    )
                    .label("included here")
                    .hint("paths are relative to the file that includes them"),
                ),
            }
        }
        files.push(ParsedFile { id, dir, ast });
    }
    let parse_failed = diags.iter().any(Diagnostic::is_error);
    let version = Version(hex::encode(hasher.finalize()).chars().take(16).collect());
    let flow = compile(&files, version, host, &mut diags);
    if parse_failed {
        // Lines the parser dropped would show up again as steps that fall
        // off their end, loops without exits and unreachable steps.
        diags.retain(|d| !CASCADING.contains(&d.code));
    }
    diag::sort(&mut diags);
    diags.dedup();
    let has_errors = diags.iter().any(|d| d.severity == Severity::Error);
    Loaded {
        flow: if has_errors { None } else { flow.map(Arc::new) },
        diagnostics: diags,
        sources,
    }
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn compile(
    files: &[ParsedFile],
    version: Version,
    host: &dyn Host,
    diags: &mut Vec<Diagnostic>,
) -> Option<Flow> {
    let main = files.first()?;
    let Some(header) = main.ast.header.as_ref() else {
        diags.push(
            Diagnostic::error(
                "E077",
                Span::new(main.id, 0..0),
                "the flow has no `flow` header",
            )
            .hint(
                "start the file with `flow \"Name\"` and its settings (numbers, voice, timezone)",
            ),
        );
        return None;
    };
    // Pass 1: every step and block name, so targets resolve in any order.
    let mut steps: Vec<StepInfo> = Vec::new();
    let mut index: HashMap<String, StepId> = HashMap::new();
    let mut items: Vec<(&ParsedFile, &ast::Item)> = Vec::new();
    for f in files {
        for item in &f.ast.items {
            if let Some(first) = index
                .get(&item.name.text)
                .and_then(|id| steps.get(id.0 as usize))
            {
                diags.push(
                    Diagnostic::error(
                        "E053",
                        item.name.span,
                        format!("`{}` is defined twice", item.name.text),
                    )
                    .label("second definition")
                    .related(first.span, "first defined here")
                    .hint("give each step and block its own name"),
                );
                continue;
            }
            if steps.len() >= MAX_STEPS {
                diags.push(
                    Diagnostic::error("E084", item.name.span, "too many steps").hint(format!(
                        "a flow may have at most {MAX_STEPS} steps and blocks"
                    )),
                );
                break;
            }
            let id = StepId(u16::try_from(steps.len()).unwrap_or(u16::MAX));
            index.insert(item.name.text.clone(), id);
            steps.push(StepInfo {
                name: item.name.text.clone(),
                is_block: item.kind == ItemKind::Block,
                entry: 0,
                span: item.name.span,
            });
            items.push((f, item));
        }
    }
    if !steps.iter().any(|s| !s.is_block) {
        diags.push(
            Diagnostic::error("E078", header.span, "the flow has no steps")
                .hint("add `step welcome` with what the caller hears first"),
        );
        return None;
    }
    let timezone_name = header
        .timezone
        .as_ref()
        .map_or_else(|| "UTC".to_owned(), |t| t.text.clone());
    let timezone = match jiff::tz::TimeZone::get(&timezone_name) {
        Ok(tz) => tz,
        Err(_) => {
            let span = header.timezone.as_ref().map_or(header.span, |t| t.span);
            diags.push(
                Diagnostic::error("E067", span, format!("unknown time zone `{timezone_name}`"))
                    .hint("use an IANA name such as Asia/Kolkata or UTC"),
            );
            jiff::tz::TimeZone::UTC
        }
    };
    let mut hours = Vec::new();
    for h in &header.hours {
        if let Some(first) = header
            .hours
            .iter()
            .find(|x| x.name.text == h.name.text && x.name.span.start < h.name.span.start)
        {
            diags.push(
                Diagnostic::error(
                    "E085",
                    h.name.span,
                    format!("hours `{}` are defined twice", h.name.text),
                )
                .related(first.name.span, "first defined here")
                .hint("put all ranges on one `hours` line, separated by commas"),
            );
            continue;
        }
        hours.push(Hours {
            name: h.name.text.clone(),
            ranges: h.ranges.iter().map(|r| (r.days, r.from, r.to)).collect(),
        });
    }
    let mut numbers = Vec::new();
    for n in &header.numbers {
        let digits = n.text.strip_prefix('+').unwrap_or(&n.text);
        if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            diags.push(
                Diagnostic::error(
                    "E086",
                    n.span,
                    format!("`{}` is not a phone number", n.text),
                )
                .hint(
                    "write numbers as digits with an optional leading + (E.164), at most 15 digits",
                ),
            );
        }
        numbers.push(n.text.clone());
    }
    let mut em = emit::Emitter::new(files, &items, steps, index, hours, header, host, diags);
    em.run();
    let (code, step_of, spans, steps, vars, prompt_files, uses_tts, hours) = em.finish();
    let flow = Flow {
        name: header.name.template(),
        version,
        numbers,
        voice: header.voice.as_ref().map(|v| v.text.clone()),
        timezone,
        timezone_name,
        hours,
        holidays: header.holidays.iter().map(|(d, _)| *d).collect(),
        code,
        step_of,
        spans,
        steps,
        vars,
        prompt_files,
        uses_tts,
    };
    crate::check::graph(&flow, diags);
    Some(flow)
}
