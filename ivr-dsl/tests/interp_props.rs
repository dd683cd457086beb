//! Property tests: whatever the caller and the host do, in any order, the
//! interpreter answers every input within its step budget, never sets a
//! deadline in the past, ends when the caller hangs up, and stays quiet
//! after the end.

use std::path::Path;
use std::sync::Arc;

use ivr_dsl::Flow;
use proptest::prelude::*;

fn examples() -> Vec<Arc<Flow>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/flows");
    ["bank.ivr", "clinic.ivr", "support.ivr"]
        .iter()
        .map(|f| {
            ivr_dsl::load(&dir.join(f), &ivr_dsl::FsHost)
                .flow
                .expect("example loads")
        })
        .collect()
}

/// A flow that can only be stopped by its step budget or a hang-up.
fn spinner() -> Arc<Flow> {
    let src =
        "flow \"Spin\"\n\nstep spin\n  set n = n + 1\n  if n > 0 - 1\n    goto spin\n  hangup\n";
    struct NoFiles;
    impl ivr_dsl::Host for NoFiles {
        fn read(&self, _: &Path) -> std::io::Result<String> {
            Err(std::io::Error::other("none"))
        }
        fn prompt_exists(&self, _: &Path) -> bool {
            true
        }
    }
    ivr_dsl::load_str(Path::new("spin.ivr"), src, &NoFiles)
        .flow
        .expect("spinner loads")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn any_event_sequence_keeps_the_invariants(script in proptest::collection::vec(any::<u8>(), 0..200)) {
        for flow in examples() {
            if let Err(e) = ivr_dsl::fuzzing::run_events(&flow, &script) {
                prop_assert!(false, "{}: {e}", flow.name);
            }
        }
    }

    #[test]
    fn a_runaway_flow_always_stops(script in proptest::collection::vec(any::<u8>(), 0..20)) {
        prop_assert!(ivr_dsl::fuzzing::run_events(&spinner(), &script).is_ok());
    }

    #[test]
    fn arbitrary_text_never_panics_the_loader(text in "\\PC{0,300}") {
        ivr_dsl::fuzzing::exercise(text.as_bytes());
    }
}
