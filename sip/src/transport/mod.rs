//! The tokio transports: UDP, TCP and TLS listeners that turn sockets into
//! [`Incoming`] byte units for the SIP core, and a [`TransportHandle`] that
//! sends bytes back along a [`Flow`].
//!
//! This is the only place in the crate with sockets. It frames, bounds and
//! forwards; it never parses beyond framing nor decides anything about SIP.
//!
//! Limits (all in [`TransportConfig`]): message size (via [`Limits`]),
//! stream connections in total and per source IP, bytes buffered per
//! connection (one message at most), idle time of a connection, and the time
//! a stream peer may take to complete a message or a TLS handshake. Garbage
//! on a stream closes that connection only.

mod stream;
mod udp;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::message::Limits;

/// Which transport a flow uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP (RFC 3261 §18, RFC 3581).
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }
    /// TCP and TLS retransmit for us (§17.1.1.1: timers that are zero on
    /// reliable transports).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.via_token().to_ascii_lowercase())
    }
}

/// Identifies one stream connection.
pub type ConnId = u64;

/// A path between us and a peer: the transport, both addresses and, for
/// streams, the connection it arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Transport.
    pub transport: Transport,
    /// Our socket's address.
    pub local: SocketAddr,
    /// The peer's address (the packet source).
    pub remote: SocketAddr,
    /// The stream connection, if any.
    pub conn: Option<ConnId>,
}

/// One datagram or one framed stream message.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Where it came from.
    pub flow: Flow,
    /// Its bytes.
    pub bytes: Bytes,
}

/// Something a transport tells the core.
#[derive(Debug, Clone)]
pub enum Event {
    /// A message arrived.
    Message(Incoming),
    /// A stream peer sent bytes that cannot be framed; the connection was
    /// closed (logged by the transport, counted by the core).
    Rejected {
        /// The flow.
        flow: Flow,
        /// Why.
        error: Error,
    },
}

/// Transport limits and timeouts.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Parser limits; `max_message_bytes` also caps each connection's buffer.
    pub limits: Limits,
    /// Stream connections at once, in total.
    pub max_connections: usize,
    /// Stream connections at once from one IP address.
    pub max_connections_per_ip: usize,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// A stream peer must complete a message this long after it starts.
    pub message_timeout: Duration,
    /// A TLS peer must complete its handshake within this.
    pub handshake_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> TransportConfig {
        TransportConfig {
            limits: Limits::default(),
            max_connections: 4096,
            max_connections_per_ip: 64,
            idle_timeout: Duration::from_secs(600),
            message_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// What to listen on.
#[derive(Clone)]
pub enum ListenSpec {
    /// A UDP socket.
    Udp(SocketAddr),
    /// A TCP listener.
    Tcp(SocketAddr),
    /// A TLS listener with its rustls server config.
    Tls(SocketAddr, Arc<rustls::ServerConfig>),
}

impl std::fmt::Debug for ListenSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenSpec::Udp(a) => write!(f, "udp:{a}"),
            ListenSpec::Tcp(a) => write!(f, "tcp:{a}"),
            ListenSpec::Tls(a, _) => write!(f, "tls:{a}"),
        }
    }
}

struct Conn {
    remote: SocketAddr,
    transport: Transport,
    tx: mpsc::Sender<Bytes>,
}

#[derive(Default)]
struct ConnTable {
    next_id: ConnId,
    conns: HashMap<ConnId, Conn>,
    per_ip: HashMap<IpAddr, usize>,
}

struct Inner {
    config: TransportConfig,
    udp: Mutex<HashMap<SocketAddr, Arc<tokio::net::UdpSocket>>>,
    conns: Mutex<ConnTable>,
    events: mpsc::Sender<Event>,
    shutdown: CancellationToken,
}

/// Sends bytes along flows; cheap to clone.
#[derive(Clone)]
pub struct TransportHandle {
    inner: Arc<Inner>,
}

/// A bound socket, for logging and for tests that bind port 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// Transport.
    pub transport: Transport,
    /// The actual address.
    pub addr: SocketAddr,
}

/// Binds every listener and starts its task. Received messages go to
/// `events`; all tasks stop when `shutdown` is cancelled.
pub async fn bind(
    specs: &[ListenSpec],
    config: TransportConfig,
    events: mpsc::Sender<Event>,
    shutdown: CancellationToken,
) -> Result<(TransportHandle, Vec<Bound>), Error> {
    let handle = TransportHandle {
        inner: Arc::new(Inner {
            config,
            udp: Mutex::new(HashMap::new()),
            conns: Mutex::new(ConnTable::default()),
            events,
            shutdown,
        }),
    };
    let mut bound = Vec::new();
    for spec in specs {
        let (transport, addr, b) = match spec {
            ListenSpec::Udp(addr) => ("udp", *addr, udp::listen(&handle, *addr).await),
            ListenSpec::Tcp(addr) => ("tcp", *addr, stream::listen(&handle, *addr, None).await),
            ListenSpec::Tls(addr, cfg) => (
                "tls",
                *addr,
                stream::listen(&handle, *addr, Some(cfg.clone())).await,
            ),
        };
        let b = b.map_err(|e| {
            let reason = match e {
                Error::Io(r) => r,
                other => other.to_string(),
            };
            let hint = if reason.contains("in use") {
                " (is another server, or another Dhwani, listening there? Stop it, or choose another address with --listen, e.g. --listen udp:127.0.0.1:5070)"
            } else if reason.contains("ermission denied") {
                " (ports below 1024 need privileges: run as a user allowed to bind them, or choose a port above 1023 with --listen)"
            } else if reason.contains("ssign requested address") {
                " (no interface of this machine has that address: check the IP in --listen)"
            } else {
                ""
            };
            Error::Bind {
                transport,
                addr,
                reason,
                hint,
            }
        })?;
        bound.push(b);
    }
    Ok((handle, bound))
}

impl TransportHandle {
    /// Sends `bytes` along `flow`. UDP goes from the socket the flow arrived
    /// on; streams reuse the flow's connection, or any open connection to
    /// the same peer, or (TCP only) a new connection (RFC 3261 §18.2.2).
    /// Never blocks: a full queue drops the message, as a lossy network
    /// would, and the transaction layer's retransmissions recover.
    pub fn send(&self, flow: &Flow, bytes: Bytes) -> Result<(), Error> {
        match flow.transport {
            Transport::Udp => {
                let sock = self
                    .inner
                    .udp
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&flow.local)
                    .cloned()
                    .ok_or_else(|| Error::Io(format!("no UDP socket on {}", flow.local)))?;
                match sock.try_send_to(&bytes, flow.remote) {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Transport::Tcp | Transport::Tls => {
                let tx = {
                    let table = self
                        .inner
                        .conns
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    flow.conn
                        .and_then(|id| table.conns.get(&id))
                        .or_else(|| {
                            table
                                .conns
                                .values()
                                .find(|c| c.remote == flow.remote && c.transport == flow.transport)
                        })
                        .map(|c| c.tx.clone())
                };
                match tx {
                    Some(tx) => tx
                        .try_send(bytes)
                        .map_err(|_| Error::Io("connection queue full or closed".into())),
                    None if flow.transport == Transport::Tcp => {
                        stream::connect_and_send(self.clone(), flow.remote, bytes);
                        Ok(())
                    }
                    None => Err(Error::Io(format!("no TLS connection to {}", flow.remote))),
                }
            }
        }
    }

    /// Open stream connections.
    pub fn connection_count(&self) -> usize {
        self.inner
            .conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .conns
            .len()
    }

    /// The address of our socket for `transport` (the first one bound), for
    /// Via and Contact of requests we originate.
    pub fn config(&self) -> &TransportConfig {
        &self.inner.config
    }
}
