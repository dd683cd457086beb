//! RTP ports: binding each call's RTP/RTCP socket pair from the configured
//! range. (The call itself runs in [`crate::call::task`].)

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};

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
    fn allocate(&mut self) -> Option<crate::ua::MediaPorts> {
        let count = usize::from((self.high - self.low) / 2 + 1);
        for _ in 0..count {
            let port = self.next;
            self.next = if self.next + 2 > self.high {
                self.low
            } else {
                self.next + 2
            };
            let Some(rtcp_port) = port
                .checked_add(1)
                .filter(|p| *p <= self.high.max(port + 1))
            else {
                continue;
            };
            if let (Ok(rtp), Ok(rtcp)) = (
                StdUdpSocket::bind(SocketAddr::new(self.ip, port)),
                StdUdpSocket::bind(SocketAddr::new(self.ip, rtcp_port)),
            ) && let Ok(local) = rtp.local_addr()
            {
                return Some(crate::ua::MediaPorts {
                    local,
                    sockets: Some((rtp, rtcp)),
                });
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
    fn ports_are_even_and_released_ports_are_reused() {
        let mut ports = RtpPorts::new("127.0.0.1".parse().unwrap(), 31001, 31005);
        let a = ports.allocate().unwrap();
        let b = ports.allocate().unwrap();
        let (rtp, rtcp) = a.sockets.as_ref().unwrap();
        assert_eq!(a.local.port(), 31002);
        assert_eq!(rtp.local_addr().unwrap().port(), 31002);
        assert_eq!(
            rtcp.local_addr().unwrap().port(),
            31003,
            "RTCP on the next port"
        );
        assert_eq!(b.local.port(), 31004);
        assert!(ports.allocate().is_none(), "range exhausted");
        drop(a);
        assert_eq!(ports.allocate().unwrap().local.port(), 31002);
    }
}
