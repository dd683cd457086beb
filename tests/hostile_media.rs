//! Issue 13, points 1 and 2, against the real binary on loopback: a crafted
//! RTP packet does not end the call, and an INVITE that is never ACKed
//! (what a forged UDP INVITE looks like) makes the server send no media to
//! the address in its SDP.
//!
//! The caller here is a plain UDP socket speaking SIP by hand, so the test
//! decides exactly when (or whether) the ACK goes out.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::Server;
use common::rawsip::{count_rtp, in_dialog, invite, recv_sip, server_media, sockets, to_tag};

fn start() -> Server {
    Server::start("[calls]\nmax_call_secs = 60\n")
}

#[test]
fn an_invite_that_is_never_acked_sends_no_media_to_its_sdp_address() {
    let server = start();
    let target = server.addr("udp");
    let mut victims = Vec::new();
    for i in 0..5 {
        let (sip, victim) = sockets();
        let local = sip.local_addr().expect("addr");
        let media = victim.local_addr().expect("addr");
        sip.send_to(
            invite(local, media, &format!("forged-{i}")).as_bytes(),
            target,
        )
        .expect("send");
        // The 200 OK arrives (and is retransmitted: we never ACK).
        assert!(
            recv_sip(&sip, "200 OK", Duration::from_secs(3)).is_some(),
            "the forged INVITE was answered"
        );
        victims.push((sip, victim));
    }
    // Five calls' worth of media would be 5 x 50 packets a second.
    let mut total = 0;
    for (_, victim) in &victims {
        total += count_rtp(victim, Duration::from_millis(600));
    }
    assert!(
        total <= 5,
        "{total} RTP packets reflected at the SDP addresses of unACKed INVITEs"
    );

    // The same exchange with an ACK gets media at once: the counter above
    // does see RTP when there is some.
    let (sip, media) = sockets();
    let local = sip.local_addr().expect("addr");
    sip.send_to(
        invite(local, media.local_addr().expect("addr"), "acked").as_bytes(),
        target,
    )
    .expect("send");
    let ok = recv_sip(&sip, "200 OK", Duration::from_secs(3)).expect("200 OK");
    sip.send_to(
        in_dialog("ACK", 1, local, "acked", &to_tag(&ok)).as_bytes(),
        target,
    )
    .expect("ack");
    let heard = count_rtp(&media, Duration::from_millis(600));
    assert!(heard >= 20, "only {heard} packets in 600 ms after the ACK");
}

/// RFC 8285 two-byte extension element claiming 255 bytes in a 4-byte
/// block: the packet that panicked the `rtp` crate inside the call task.
fn crafted(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut b = vec![0x90, 0x00];
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    b.extend_from_slice(&ssrc.to_be_bytes());
    b.extend_from_slice(&[0x10, 0x00, 0x00, 0x01, 0x01, 0xFF, 0x00, 0x00]);
    b.extend_from_slice(&[0xFF; 160]);
    b
}

#[test]
fn a_crafted_rtp_packet_does_not_end_the_call() {
    let mut server = start();
    let target = server.addr("udp");
    let (sip, media) = sockets();
    let local = sip.local_addr().expect("addr");
    sip.send_to(
        invite(local, media.local_addr().expect("addr"), "crafted").as_bytes(),
        target,
    )
    .expect("send");
    let ok = recv_sip(&sip, "200 OK", Duration::from_secs(3)).expect("200 OK");
    let tag = to_tag(&ok);
    let rtp_port = server_media(&ok);
    sip.send_to(
        in_dialog("ACK", 1, local, "crafted", &tag).as_bytes(),
        target,
    )
    .expect("ack");
    // From a stranger (spraying the port range) and from the caller's own
    // media socket, RTP and RTCP port both.
    let stranger = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let rtcp_port = SocketAddr::new(rtp_port.ip(), rtp_port.port() + 1);
    for seq in 0..20u16 {
        let p = crafted(seq, 0x5EED);
        stranger.send_to(&p, rtp_port).expect("send");
        stranger.send_to(&p, rtcp_port).expect("send");
        media.send_to(&p, rtp_port).expect("send");
        let mut rtcpish = p.clone();
        rtcpish[1] = 200;
        media.send_to(&rtcpish, rtp_port).expect("send");
        media.send_to(&rtcpish, rtcp_port).expect("send");
    }
    // The call goes on: no BYE comes, and the prompt's RTP keeps flowing.
    assert!(
        recv_sip(&sip, "BYE", Duration::from_millis(800)).is_none(),
        "the server hung up after the crafted packets"
    );
    let heard = count_rtp(&media, Duration::from_millis(600));
    assert!(heard >= 20, "media stopped: {heard} packets in 600 ms");
    assert!(
        !server.log.iter().any(|l| l.contains("panicked")),
        "{}",
        server.log.join("\n")
    );
    // And it still ends normally.
    sip.send_to(
        in_dialog("BYE", 2, local, "crafted", &tag).as_bytes(),
        target,
    )
    .expect("bye");
    assert!(recv_sip(&sip, "200 OK", Duration::from_secs(3)).is_some());
    assert!(server.wait_for_log("call finished", Duration::from_secs(5)));
    assert!(
        !server.log.iter().any(|l| l.contains("panicked")),
        "{}",
        server.log.join("\n")
    );
}
