//! Replays the fuzzer's seeds and every input it ever found to crash
//! (`sip/tests/data/fuzz/`) through the same calls as `fuzz/fuzz_targets/
//! sip_message.rs`, so the stable toolchain in CI covers them.

use std::path::Path;

use bytes::Bytes;
use sip::message::{HeaderName, Limits, Message, StatusCode, parse_message, reply_to_raw};

fn exercise(data: &[u8]) {
    let _ = reply_to_raw(data, StatusCode::BAD_REQUEST, "x");
    let _ = sip::sdp::parse_audio_offer(data);
    let _ = sip::message::scan_headers(data, &Limits::default());
    if let Ok(msg) = parse_message(Bytes::copy_from_slice(data), &Limits::default()) {
        let h = msg.headers();
        let _ = (
            h.vias(),
            h.from(),
            h.to(),
            h.call_id(),
            h.cseq(),
            h.contacts(),
        );
        let _ = (h.routes(), h.record_routes(), h.content_type(), h.expires());
        let _ = h.credentials(&HeaderName::Authorization);
        let _ = msg.to_bytes();
        if let Message::Request(r) = &msg {
            let _ = sip::uas::check_request(r, &sip::uas::Policy::default());
            let _ = sip::transaction::Key::for_request(r);
        }
    }
}

#[test]
fn seeds_and_past_crashes_do_not_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in [
        root.join("../fuzz/seeds/sip_message"),
        root.join("tests/data/fuzz"),
    ] {
        // A missing folder fails: a replay that skips its corpus proves nothing.
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus folder {} is missing: {e}", dir.display()));
        for e in entries.flatten() {
            let data = std::fs::read(e.path()).unwrap();
            exercise(&data);
            // Every prefix too: truncation is what a stream gives us.
            for cut in (0..data.len()).step_by(7) {
                exercise(&data[..cut]);
            }
            n += 1;
        }
    }
    assert!(n >= 3, "the seeds are missing");
}

/// The same for the SDP target (`fuzz/fuzz_targets/sdp_offer.rs`).
#[test]
fn sdp_seeds_do_not_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in [
        root.join("../fuzz/seeds/sdp_offer"),
        root.join("tests/data/fuzz"),
    ] {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus folder {} is missing: {e}", dir.display()));
        for e in entries.flatten() {
            let data = std::fs::read(e.path()).unwrap();
            for cut in (0..=data.len()).step_by(3) {
                let d = &data[..cut];
                if let Ok(offer) = sip::sdp::parse_audio_offer(d)
                    && let Some(neg) = sip::sdp::negotiate(&offer, &["PCMU", "PCMA", "G722", "L16"])
                {
                    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 20000));
                    let _ = sip::sdp::write_answer(1, 1, local, &neg, offer.direction.answer(), 20);
                }
            }
            n += 1;
        }
    }
    assert!(n >= 4, "the SDP seeds are missing");
}
