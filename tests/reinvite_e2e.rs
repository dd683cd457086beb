//! A re-INVITE that moves the caller's media to another port (what an SBC
//! does mid-call), against the real binary: the server's RTP follows to
//! the new port and stops going to the old one (issue 11, offer/answer as
//! data).

mod common;

use std::time::Duration;

use common::Server;
use common::rawsip::{count_rtp, in_dialog, invite, recv_sip, reinvite, sockets, to_tag};

#[test]
fn media_follows_a_reinvite_to_a_new_port() {
    let mut server = Server::start("[calls]\nmax_call_secs = 60\n");
    let target = server.addr("udp");
    let (sip, old) = sockets();
    let (_, new) = sockets();
    let local = sip.local_addr().expect("addr");
    sip.send_to(
        invite(local, old.local_addr().expect("addr"), "moving").as_bytes(),
        target,
    )
    .expect("send");
    let ok = recv_sip(&sip, "200 OK", Duration::from_secs(3)).expect("200 OK");
    let tag = to_tag(&ok);
    sip.send_to(
        in_dialog("ACK", 1, local, "moving", &tag).as_bytes(),
        target,
    )
    .expect("ack");
    assert!(
        count_rtp(&old, Duration::from_millis(400)) >= 10,
        "media before the move"
    );
    let offer = reinvite(
        local,
        new.local_addr().expect("addr"),
        "moving",
        2,
        &tag,
        "sendrecv",
    );
    sip.send_to(offer.as_bytes(), target).expect("re-INVITE");
    let ok2 = recv_sip(&sip, "200 OK", Duration::from_secs(3)).expect("200 OK to the re-INVITE");
    assert!(ok2.contains("m=audio "), "the answer has SDP:\n{ok2}");
    sip.send_to(
        in_dialog("ACK", 2, local, "moving", &tag).as_bytes(),
        target,
    )
    .expect("ack");
    // Let packets already in flight to the old port arrive, then count.
    let _ = count_rtp(&old, Duration::from_millis(100));
    let at_new = count_rtp(&new, Duration::from_millis(600));
    let at_old = count_rtp(&old, Duration::from_millis(300));
    assert!(
        at_new >= 20,
        "only {at_new} packets at the new port in 600 ms"
    );
    assert!(at_old <= 1, "{at_old} packets still going to the old port");
    assert!(server.wait_for_log("re-INVITE moved the media", Duration::from_secs(2)));
    sip.send_to(
        in_dialog("BYE", 3, local, "moving", &tag).as_bytes(),
        target,
    )
    .expect("bye");
    assert!(recv_sip(&sip, "200 OK", Duration::from_secs(3)).is_some());
    // From the CDR to the server's log: the record id is on the call's
    // lines, next to the SIP Call-ID.
    let calls = common::finished_calls(&server);
    let record = calls[0]["call_id"].as_str().expect("record id").to_owned();
    assert!(server.wait_for_log("call finished", Duration::from_secs(5)));
    let tagged: Vec<&String> = server
        .log
        .iter()
        .filter(|l| l.contains(&format!("record_id={record}")))
        .collect();
    assert!(
        tagged
            .iter()
            .any(|l| l.contains("call finished") && l.contains("call_id=moving")),
        "no line with both ids:\n{}",
        server.log.join("\n")
    );
    assert!(
        tagged
            .iter()
            .any(|l| l.contains("re-INVITE moved the media"))
    );
    assert!(tagged.iter().any(|l| l.contains("incoming call")));
}
