//! Arbitrary bytes through our RTP reader (fixed header, CSRCs, extension and its RFC 8285 elements, padding): none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| media::fuzzing::rtp_packet(data));
