//! Arbitrary bytes through our compound RTCP reader (RFC 3550 §A.2 checks): none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| media::fuzzing::rtcp_compound(data));
