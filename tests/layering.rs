//! Keeps the server package's layers true (see the crate docs in
//! `src/lib.rs`): each top-level module of `src/` may use the modules
//! below it, never one above; nothing but `main.rs` and `cli/` uses the
//! CLI; the sans-IO user-agent core (`ua/`) uses no tokio, no store and
//! no I/O service at all.
//!
//! The check reads the source: every `crate::NAME` outside comments is a
//! use of module NAME. A new upward import fails this test; the first
//! test below shows that it does on made-up files.

use std::collections::BTreeMap;
use std::path::Path;

/// Bottom to top. Modules on one line are peers; a module may use any
/// module on a lower line, and the peers named in [`PEERS`].
const LAYERS: &[&[&str]] = &[
    &["config", "redact"],
    &["store"],
    &["privacy", "metrics"],
    &["tenants"],
    &["ua", "call", "acd"],
    &["api"],
    &["server"],
    &["cli"],
];

/// Allowed uses outside the order: the call task speaks the UA's types,
/// and the admission gate (`tenants/gate.rs`) implements the UA core's
/// `Admission` trait (the core says what it needs, the service provides).
const PEERS: &[(&str, &str)] = &[("call", "ua"), ("tenants", "ua"), ("acd", "ua")];

/// What a sans-IO core (by path prefix under `src/`) must not touch: no
/// runtime, no store, no files or sockets, no clock.
const CORE_FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "ua/",
        &[
            "tokio",
            "crate::store",
            "crate::privacy",
            "crate::tenants",
            "std::fs",
            "Instant::now",
            "SystemTime::now",
        ],
    ),
    (
        "acd/",
        &[
            "tokio",
            "crate::store",
            "crate::privacy",
            "crate::tenants",
            "std::fs",
            "Instant::now",
            "SystemTime::now",
        ],
    ),
    (
        "call/core",
        &[
            "tokio",
            "Store",
            "LogSender",
            "crate::privacy",
            "crate::tenants",
            "std::fs",
            "Instant::now",
            "SystemTime::now",
        ],
    ),
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The uses of `crate::NAME` in code (not comments) of one file.
fn uses(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((i + 1, name));
            }
            rest = after;
        }
    }
    out
}

/// Every violation in `files` (path relative to `src/` -> text).
fn violations(files: &BTreeMap<String, String>) -> Vec<String> {
    let mut bad = Vec::new();
    for (path, text) in files {
        let top = path.split('/').next().unwrap_or("");
        let module = top.trim_end_matches(".rs");
        if module == "main" || module == "lib" {
            continue;
        }
        let Some(own) = rank(module) else {
            bad.push(format!(
                "{path}: module `{module}` has no layer in tests/layering.rs"
            ));
            continue;
        };
        for (line, used) in uses(text) {
            if used == module {
                continue;
            }
            let Some(theirs) = rank(&used) else {
                bad.push(format!(
                    "{path}:{line}: uses `crate::{used}`, which has no layer"
                ));
                continue;
            };
            let peer_ok = PEERS.contains(&(module, used.as_str()));
            if theirs >= own && !peer_ok {
                bad.push(format!(
                    "{path}:{line}: `{module}` uses `crate::{used}`, which is not below it"
                ));
            }
        }
        for (core, forbidden) in CORE_FORBIDDEN {
            // Unit tests pick a fixed starting `Instant` like any fake clock:
            // test files and a file's `#[cfg(test)]` module are not the core.
            if !path.starts_with(core) || path.ends_with("tests.rs") {
                continue;
            }
            let code_end = text
                .lines()
                .position(|l| l.trim() == "#[cfg(test)]")
                .unwrap_or(usize::MAX);
            for (i, line) in text.lines().enumerate().take(code_end) {
                let code = line.split("//").next().unwrap_or("");
                for f in *forbidden {
                    if code.contains(f) {
                        bad.push(format!(
                            "{path}:{}: the sans-IO core `{}` uses `{f}`",
                            i + 1,
                            core.trim_end_matches('/')
                        ));
                    }
                }
            }
        }
    }
    bad
}

fn read_tree(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for e in std::fs::read_dir(dir).expect("read src").flatten() {
        let p = e.path();
        if p.is_dir() {
            read_tree(root, &p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p
                .strip_prefix(root)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(rel, std::fs::read_to_string(&p).expect("read"));
        }
    }
}

#[test]
fn the_checker_finds_an_upward_import_and_a_core_using_tokio() {
    let mut files = BTreeMap::new();
    files.insert(
        "store/mod.rs".to_owned(),
        "use crate::config::Config;\nuse crate::tenants::Registry;\n".to_owned(),
    );
    files.insert(
        "privacy/mod.rs".to_owned(),
        "// crate::cli in a comment is fine\nfn f() { crate::cli::run(); }\n".to_owned(),
    );
    files.insert(
        "ua/mod.rs".to_owned(),
        "use tokio::net::UdpSocket;\n".to_owned(),
    );
    files.insert(
        "call/task.rs".to_owned(),
        "use crate::ua::CallId;\n".to_owned(),
    );
    let v = violations(&files);
    assert_eq!(v.len(), 3, "{v:#?}");
    assert!(
        v.iter()
            .any(|m| m.contains("privacy/mod.rs:2: `privacy` uses `crate::cli`"))
    );
    assert!(v.iter().any(|m| m.contains("store/mod.rs:2")));
    assert!(
        v.iter()
            .any(|m| m.contains("sans-IO core `ua` uses `tokio`"))
    );
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    read_tree(&src, &src, &mut files);
    assert!(files.len() > 20, "the source tree was not read");
    let v = violations(&files);
    assert!(v.is_empty(), "layering violations:\n{}", v.join("\n"));
}
