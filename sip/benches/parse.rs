//! Parse and serialize a typical INVITE with SDP, side by side with `rsip`
//! on the same bytes. Run: `cargo bench -p sip --bench parse`.
#![allow(missing_docs)]

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sip::message::{Limits, Message, parse_message};

const INVITE: &[u8] = b"INVITE sip:1000@10.0.0.5:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:1000@10.0.0.5>\r\n\
From: \"Caller\" <sip:+919812345678@203.0.113.7>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:+919812345678@203.0.113.7:5060>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO\r\n\
Supported: replaces, timer\r\n\
User-Agent: TrunkGateway/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 237\r\n\
\r\n\
v=0\r\n\
o=gw 2890844526 2890844526 IN IP4 203.0.113.7\r\n\
s=-\r\n\
c=IN IP4 203.0.113.7\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let raw = Bytes::from_static(INVITE);
    assert!(parse_message(raw.clone(), &limits).is_ok());
    assert!(rsip::SipMessage::try_from(INVITE).is_ok());

    let mut g = c.benchmark_group("parse INVITE with SDP");
    g.throughput(Throughput::Elements(1));
    g.bench_function("dhwani sip: parse", |b| {
        b.iter(|| parse_message(std::hint::black_box(raw.clone()), &limits))
    });
    g.bench_function("dhwani sip: parse + typed mandatory headers", |b| {
        b.iter(|| {
            let Ok(Message::Request(r)) = parse_message(std::hint::black_box(raw.clone()), &limits)
            else {
                unreachable!()
            };
            r.validate().map(|_| r)
        })
    });
    g.bench_function("rsip: parse", |b| {
        b.iter(|| rsip::SipMessage::try_from(std::hint::black_box(INVITE)))
    });
    g.finish();

    let ours = parse_message(raw.clone(), &limits).unwrap();
    let theirs = rsip::SipMessage::try_from(INVITE).unwrap();
    let mut g = c.benchmark_group("serialize INVITE with SDP");
    g.throughput(Throughput::Elements(1));
    g.bench_function("dhwani sip: serialize", |b| {
        b.iter(|| {
            let mut out = BytesMut::with_capacity(1024);
            std::hint::black_box(&ours).encode(&mut out);
            out
        })
    });
    g.bench_function("rsip: serialize", |b| {
        b.iter(|| std::hint::black_box(&theirs).to_string())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
