//! A call's whole media receive path (session, learning, jitter buffer, decoding, DTMF, playback, tap) driven by arbitrary datagrams, time and commands: none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| media::fuzzing::receive_path(data));
