//! Arbitrary SDP bodies through the offer reader, the codec negotiation and
//! the answer writer: none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(offer) = sip::sdp::parse_audio_offer(data)
        && let Some(n) = sip::sdp::negotiate(&offer, &["PCMU", "PCMA", "G722", "L16"])
    {
        let local = std::net::SocketAddr::from(([127, 0, 0, 1], 20000));
        let _ = sip::sdp::write_answer(1, 1, local, &n, offer.direction.answer(), 20);
    }
});
