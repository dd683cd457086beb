//! Golden tests for diagnostics: each file in `data/mistakes/` holds one
//! kind of mistake; its name starts with the code it must produce (`e050-`
//! an error that stops the flow loading, `w057-` a warning that does not).
//! The rendered diagnostics are snapshots (`cargo insta review` to update).

use std::path::{Path, PathBuf};

use ivr_dsl::{Host, load_str};

/// Reads includes from the data folder; no prompt file exists.
struct DataHost(PathBuf);

impl Host for DataHost {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(self.0.join(path))
    }
    fn prompt_exists(&self, _: &Path) -> bool {
        false
    }
}

#[test]
fn every_mistake_has_a_located_diagnostic_with_a_hint() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mistakes");
    let mut count = 0;
    insta::glob!("data/mistakes/*.ivr", |path| {
        count += 1;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        let code = name.get(..4).expect("code prefix").to_uppercase();
        let text = std::fs::read_to_string(path).expect("read");
        let loaded = load_str(Path::new(&name), &text, &DataHost(dir.clone()));
        let rendered = loaded.render();
        assert!(
            loaded.diagnostics.iter().any(|d| d.code == code),
            "{name}: expected a {code} diagnostic, got:\n{rendered}"
        );
        for d in &loaded.diagnostics {
            assert!(d.hint.is_some(), "{name}: {} has no hint", d.code);
        }
        assert!(
            rendered.contains(&format!("{name}:")),
            "{name}: no file:line:column in\n{rendered}"
        );
        if code.starts_with('W') {
            assert!(
                loaded.flow.is_some(),
                "{name}: warnings must not stop the flow:\n{rendered}"
            );
        } else {
            assert!(loaded.flow.is_none(), "{name}: errors must stop the flow");
        }
        insta::assert_snapshot!(rendered);
    });
    assert!(count >= 30, "only {count} mistakes");
}

#[test]
fn the_examples_check_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/flows");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "ivr") {
            n += 1;
            let loaded = ivr_dsl::load(&path, &ivr_dsl::FsHost);
            assert!(
                loaded.diagnostics.is_empty(),
                "{}:\n{}",
                path.display(),
                loaded.render()
            );
        }
    }
    assert!(n >= 3, "expected the bank, clinic and support examples");
}

#[test]
fn the_examples_pass_their_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/flows");
    for entry in std::fs::read_dir(&dir).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "ivr") {
            let test = path.with_extension("ivrtest");
            let report = ivr_dsl::sim::script::run_file(&test, &ivr_dsl::FsHost)
                .unwrap_or_else(|e| panic!("{}: {e:?}", test.display()));
            assert!(!report.results.is_empty(), "{}: no tests", test.display());
            assert_eq!(report.failed(), 0, "{}", report.render(false));
        }
    }
}
