//! The UDP listener (RFC 3261 §18.1.2, §18.2.1).

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use tokio::net::UdpSocket;

use super::{Bound, Event, Flow, Incoming, Transport, TransportHandle};
use crate::Error;

pub(super) async fn listen(handle: &TransportHandle, addr: SocketAddr) -> Result<Bound, Error> {
    let sock = Arc::new(UdpSocket::bind(addr).await?);
    let local = sock.local_addr()?;
    handle
        .inner
        .udp
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(local, sock.clone());
    let inner = handle.inner.clone();
    tokio::spawn(async move {
        // One datagram at most: the largest UDP payload.
        let mut buf = vec![0u8; 65_535];
        loop {
            let got = tokio::select! {
                _ = inner.shutdown.cancelled() => break,
                got = sock.recv_from(&mut buf) => got,
            };
            let (n, remote) = match got {
                Ok(x) => x,
                // ICMP port unreachable and friends surface here on Linux;
                // they concern one peer, not the socket.
                Err(e) => {
                    tracing::debug!(error = %e, "udp receive error");
                    continue;
                }
            };
            let Some(data) = buf.get(..n) else { continue };
            // Keep-alives (CRLF, or NAT pinholes of a few bytes of whitespace).
            if data.iter().all(|c| c.is_ascii_whitespace() || *c == 0) {
                continue;
            }
            let flow = Flow {
                transport: Transport::Udp,
                local,
                remote,
                conn: None,
            };
            let ev = Event::Message(Incoming {
                flow,
                bytes: Bytes::copy_from_slice(data),
            });
            if inner.events.send(ev).await.is_err() {
                break;
            }
        }
    });
    Ok(Bound {
        transport: Transport::Udp,
        addr: local,
    })
}
