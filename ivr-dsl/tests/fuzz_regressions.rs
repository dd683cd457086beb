//! Replays the fuzzer's seeds (`fuzz/seeds/ivr_flow/`), every input it
//! ever found to crash (`tests/data/fuzz/`), the golden mistakes and the
//! examples through the fuzz target's code, with every prefix, so the
//! stable toolchain in CI covers them.

use std::path::Path;

#[test]
fn seeds_mistakes_and_past_crashes_do_not_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in [
        root.join("../fuzz/seeds/ivr_flow"),
        root.join("tests/data/fuzz"),
        root.join("tests/data/mistakes"),
    ] {
        // A missing folder fails: a replay that skips its corpus proves nothing.
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus folder {} is missing: {e}", dir.display()));
        for e in entries.flatten() {
            let data = std::fs::read(e.path()).expect("read");
            ivr_dsl::fuzzing::exercise(&data);
            for cut in (0..data.len()).step_by(13) {
                ivr_dsl::fuzzing::exercise(&data[..cut]);
            }
            n += 1;
        }
    }
    assert!(n >= 30, "the seeds are missing");
}
