//! Default parser limits against what valid traffic carries: RFC 4475
//! `longreq` has 34 Via values, and a request may carry one per hop.

use bytes::Bytes;
use sip::message::{Limits, parse_message};

fn with_vias(n: usize) -> Bytes {
    let vias: String = (0..n)
        .map(|i| {
            format!(
                "Via: SIP/2.0/UDP 127.0.0.{}:5060;branch=z9hG4bK{i}\r\n",
                i % 250 + 1
            )
        })
        .collect();
    Bytes::from(format!(
        "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\n{vias}From: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: v\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ))
}

#[test]
fn seventy_vias_are_accepted_by_default_and_seventy_one_refused() {
    let limits = Limits::default();
    assert!(
        parse_message(with_vias(34), &limits).is_ok(),
        "longreq's 34"
    );
    assert!(parse_message(with_vias(70), &limits).is_ok());
    let err = parse_message(with_vias(71), &limits).expect_err("over the cap");
    assert!(err.to_string().contains("Via"), "{err}");
}
