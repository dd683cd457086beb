//! Arbitrary bytes through the SIP parser, every typed accessor, the UAS
//! checks, the SDP reader and the error-reply builder: none may panic.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip::message::{Limits, Message, StatusCode, parse_message, reply_to_raw};

fuzz_target!(|data: &[u8]| {
    let _ = reply_to_raw(data, StatusCode::BAD_REQUEST, "x");
    let _ = sip::sdp::parse_audio_offer(data);
    let _ = sip::message::scan_headers(data, &Limits::default());
    if let Ok(msg) = parse_message(Bytes::copy_from_slice(data), &Limits::default()) {
        let h = msg.headers();
        let _ = h.vias();
        let _ = h.from();
        let _ = h.to();
        let _ = h.call_id();
        let _ = h.cseq();
        let _ = h.contacts();
        let _ = h.routes();
        let _ = h.record_routes();
        let _ = h.content_type();
        let _ = h.expires();
        let _ = h.credentials(&sip::message::HeaderName::Authorization);
        let _ = msg.to_bytes();
        if let Message::Request(r) = &msg {
            let _ = sip::uas::check_request(r, &sip::uas::Policy::default());
            let _ = sip::transaction::Key::for_request(r);
        }
    }
});
