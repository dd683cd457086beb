//! Arbitrary bytes as a flow file: lexer, parser, checker, compiler and the
//! diagnostics renderer must not panic or hang; a flow that loads is run
//! with an event script taken from the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ivr_dsl::fuzzing::exercise(data);
});
