//! The placeholder media of an answered call, until the `media` crate
//! lands: RTP packets of G.711 silence every 20 ms to the address in the
//! offer, on absolute deadlines (no drift), and a hang-up request after
//! `max_call_secs`. Received RTP is read and discarded so the socket
//! buffer never fills.
//!
//! The 12-byte RTP header (RFC 3550 §5.1) is written by hand: it is fixed
//! for this use and the real engine will use the `rtp` crate.

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::time::Duration;

use rand::Rng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ua::CallId;

/// Samples per 20 ms frame at 8 kHz.
const SAMPLES_PER_FRAME: usize = 160;

/// Why a media task asks the core to hang up.
#[derive(Debug, Clone, Copy)]
pub enum HangupReason {
    /// `calls.max_call_secs` elapsed.
    MaxDuration,
}

/// Runs until `stop` is cancelled or the call reaches `max_duration`.
pub async fn run(
    id: CallId,
    socket: StdUdpSocket,
    remote: SocketAddr,
    payload_type: u8,
    max_duration: Duration,
    stop: CancellationToken,
    hangup: mpsc::Sender<(CallId, HangupReason)>,
) {
    let Ok(sock) = socket
        .set_nonblocking(true)
        .and_then(|_| UdpSocket::from_std(socket))
    else {
        return;
    };
    // RFC 3550 §5.1: random SSRC, initial sequence number and timestamp.
    let (ssrc, mut seq, mut ts) = {
        let mut rng = rand::rng();
        (
            rng.random::<u32>(),
            rng.random::<u16>(),
            rng.random::<u32>(),
        )
    };
    // PCMU silence is 0xFF, PCMA silence 0xD5 (ITU-T G.711 code for +0).
    let silence = if payload_type == 8 { 0xD5 } else { 0xFF };
    let mut packet = vec![silence; 12 + SAMPLES_PER_FRAME];
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval_at(start, Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = start + max_duration;
    let mut buf = [0u8; 2048];
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(end) => {
                let _ = hangup.send((id, HangupReason::MaxDuration)).await;
                return;
            }
            _ = tick.tick() => {
                write_header(&mut packet, payload_type, seq, ts, ssrc);
                let _ = sock.send_to(&packet, remote).await;
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(SAMPLES_PER_FRAME as u32);
            }
            _ = sock.recv_from(&mut buf) => {}
        }
    }
}

/// RFC 3550 §5.1: V=2, P=0, X=0, CC=0 | M=0, PT | sequence | timestamp | SSRC.
fn write_header(packet: &mut [u8], pt: u8, seq: u16, ts: u32, ssrc: u32) {
    if let Some(h) = packet.get_mut(..12) {
        h[0] = 0x80;
        h[1] = pt & 0x7f;
        h[2..4].copy_from_slice(&seq.to_be_bytes());
        h[4..8].copy_from_slice(&ts.to_be_bytes());
        h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    }
}

/// Binds RTP sockets on even ports of a range, round robin.
#[derive(Debug)]
pub struct RtpPorts {
    ip: std::net::IpAddr,
    low: u16,
    high: u16,
    next: u16,
}

impl RtpPorts {
    /// A range `low..=high` on `ip`.
    pub fn new(ip: std::net::IpAddr, low: u16, high: u16) -> RtpPorts {
        let low = low + (low % 2);
        RtpPorts {
            ip,
            low,
            high,
            next: low,
        }
    }
}

impl crate::ua::PortAllocator for RtpPorts {
    fn allocate(&mut self) -> Option<StdUdpSocket> {
        let count = usize::from((self.high - self.low) / 2 + 1);
        for _ in 0..count {
            let port = self.next;
            self.next = if self.next + 2 > self.high {
                self.low
            } else {
                self.next + 2
            };
            if let Ok(s) = StdUdpSocket::bind(SocketAddr::new(self.ip, port)) {
                return Some(s);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ua::PortAllocator;

    #[test]
    fn the_rtp_header_is_rfc3550() {
        let mut p = [0u8; 12];
        write_header(&mut p, 8, 0x1234, 0xdeadbeef, 7);
        assert_eq!(p, [0x80, 8, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 7]);
    }

    #[test]
    fn ports_are_even_and_released_ports_are_reused() {
        let mut ports = RtpPorts::new("127.0.0.1".parse().unwrap(), 31001, 31005);
        let a = ports.allocate().unwrap();
        let b = ports.allocate().unwrap();
        assert_eq!(a.local_addr().unwrap().port(), 31002);
        assert_eq!(b.local_addr().unwrap().port(), 31004);
        assert!(ports.allocate().is_none(), "range exhausted");
        drop(a);
        assert_eq!(
            ports.allocate().unwrap().local_addr().unwrap().port(),
            31002
        );
    }
}
