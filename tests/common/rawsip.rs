//! SIP by hand over a plain UDP socket, for end-to-end tests that must
//! decide exactly what the caller sends and when (or whether) it ACKs.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// An SDP offer of PCMU and telephone-event at `media`, session version
/// `version`, with an `a=` direction line when given.
fn pcmu_offer(media: SocketAddr, version: u32, direction: Option<&str>) -> String {
    let dir = direction.map(|d| format!("a={d}\r\n")).unwrap_or_default();
    format!(
        "v=0\r\no=- 1 {version} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n{dir}",
        ip = media.ip(),
        port = media.port()
    )
}

/// An INVITE from `local` offering PCMU and telephone-event at `media`.
pub fn invite(local: SocketAddr, media: SocketAddr, call_id: &str) -> String {
    let sdp = pcmu_offer(media, 1, None);
    format!(
        "INVITE sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{call_id}\r\nFrom: <sip:caller@127.0.0.1>;tag=from-{call_id}\r\nTo: <sip:1000@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{local}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

pub fn in_dialog(
    method: &str,
    cseq: u32,
    local: SocketAddr,
    call_id: &str,
    to_tag: &str,
) -> String {
    format!(
        "{method} sip:dhwani@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{call_id}-{cseq}\r\nFrom: <sip:caller@127.0.0.1>;tag=from-{call_id}\r\nTo: <sip:1000@127.0.0.1>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Waits (bounded) for a SIP message whose first line contains `first`.
pub fn recv_sip(sock: &UdpSocket, first: &str, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.lines().next().is_some_and(|l| l.contains(first)) {
                return Some(text);
            }
        }
    }
    None
}

pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn to_tag(ok: &str) -> String {
    header(ok, "To")
        .and_then(|v| v.split(";tag=").nth(1))
        .map(|t| t.split(';').next().unwrap_or(t).to_owned())
        .expect("To tag in the 200 OK")
}

/// The server's RTP address from the SDP of its 200 OK.
pub fn server_media(ok: &str) -> SocketAddr {
    let port = ok
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|p| p.parse::<u16>().ok())
        .expect("m=audio port in the answer");
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Counts RTP packets arriving at `sock` during `window`.
pub fn count_rtp(sock: &UdpSocket, window: Duration) -> usize {
    let deadline = Instant::now() + window;
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while Instant::now() < deadline {
        if let Ok((len, _)) = sock.recv_from(&mut buf)
            && len >= 12
            && buf[0] >> 6 == 2
        {
            n += 1;
        }
    }
    n
}

pub fn sockets() -> (UdpSocket, UdpSocket) {
    let sip = UdpSocket::bind("127.0.0.1:0").expect("bind sip");
    sip.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let media = UdpSocket::bind("127.0.0.1:0").expect("bind media");
    media
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    (sip, media)
}

/// A re-INVITE in the dialog of `call_id`, offering PCMU at `media` with
/// `direction` (`sendrecv`, `sendonly`...).
pub fn reinvite(
    local: SocketAddr,
    media: SocketAddr,
    call_id: &str,
    cseq: u32,
    to_tag: &str,
    direction: &str,
) -> String {
    let sdp = pcmu_offer(media, cseq, Some(direction));
    format!(
        "INVITE sip:dhwani@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{call_id}-{cseq}\r\nFrom: <sip:caller@127.0.0.1>;tag=from-{call_id}\r\nTo: <sip:1000@127.0.0.1>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:caller@{local}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}
