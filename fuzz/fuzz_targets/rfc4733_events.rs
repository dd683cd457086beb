//! Streams of RFC 4733 telephone-event payloads through the digit receiver: none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| media::fuzzing::rfc4733_events(data));
