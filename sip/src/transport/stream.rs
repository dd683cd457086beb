//! TCP and TLS listeners and connections (RFC 3261 §18.3, RFC 5626 §3.5.1
//! keep-alives), with the caps of [`super::TransportConfig`].

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::codec::Decoder;

use super::{Bound, Conn, ConnId, Event, Flow, Incoming, Inner, Transport, TransportHandle};
use crate::Error;
use crate::codec::{Frame, PONG, SipCodec};

/// Messages queued for one connection before sends are dropped.
const SEND_QUEUE: usize = 256;

pub(super) async fn listen(
    handle: &TransportHandle,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<Bound, Error> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let handle = handle.clone();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = handle.inner.shutdown.cancelled() => break,
                a = listener.accept() => a,
            };
            let (sock, remote) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some((id, rx)) = register(&handle.inner, remote, transport) else {
                tracing::warn!(%remote, %transport, "connection refused: connection limit reached");
                drop(sock);
                continue;
            };
            let _ = sock.set_nodelay(true);
            let handle = handle.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let flow = Flow {
                    transport,
                    local,
                    remote,
                    conn: Some(id),
                };
                match acceptor {
                    None => run(&handle.inner, sock, flow, rx).await,
                    Some(acc) => {
                        let hs =
                            timeout(handle.inner.config.handshake_timeout, acc.accept(sock)).await;
                        match hs {
                            Ok(Ok(tls)) => run(&handle.inner, tls, flow, rx).await,
                            Ok(Err(e)) => {
                                tracing::info!(%remote, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::info!(%remote, "TLS handshake timed out"),
                        }
                    }
                }
                unregister(&handle.inner, id, remote);
            });
        }
    });
    Ok(Bound {
        transport,
        addr: local,
    })
}

/// Opens a TCP connection to send a message whose flow has gone (§18.2.2).
pub(super) fn connect_and_send(handle: TransportHandle, remote: SocketAddr, bytes: Bytes) {
    tokio::spawn(async move {
        let connect = timeout(
            handle.inner.config.handshake_timeout,
            TcpStream::connect(remote),
        )
        .await;
        let sock = match connect {
            Ok(Ok(s)) => s,
            _ => {
                tracing::info!(%remote, "could not connect to send a message");
                return;
            }
        };
        let Ok(local) = sock.local_addr() else { return };
        let Some((id, rx)) = register(&handle.inner, remote, Transport::Tcp) else {
            return;
        };
        let tx = {
            let t = handle
                .inner
                .conns
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            t.conns.get(&id).map(|c| c.tx.clone())
        };
        if let Some(tx) = tx {
            let _ = tx.try_send(bytes);
        }
        let flow = Flow {
            transport: Transport::Tcp,
            local,
            remote,
            conn: Some(id),
        };
        run(&handle.inner, sock, flow, rx).await;
        unregister(&handle.inner, id, remote);
    });
}

fn register(
    inner: &Inner,
    remote: SocketAddr,
    transport: Transport,
) -> Option<(ConnId, mpsc::Receiver<Bytes>)> {
    let mut t = inner.conns.lock().unwrap_or_else(PoisonError::into_inner);
    let per_ip = t.per_ip.get(&remote.ip()).copied().unwrap_or(0);
    if t.conns.len() >= inner.config.max_connections
        || per_ip >= inner.config.max_connections_per_ip
    {
        return None;
    }
    t.next_id += 1;
    let id = t.next_id;
    let (tx, rx) = mpsc::channel(SEND_QUEUE);
    t.conns.insert(
        id,
        Conn {
            remote,
            transport,
            tx,
        },
    );
    *t.per_ip.entry(remote.ip()).or_insert(0) += 1;
    Some((id, rx))
}

fn unregister(inner: &Inner, id: ConnId, remote: SocketAddr) {
    let mut t = inner.conns.lock().unwrap_or_else(PoisonError::into_inner);
    if t.conns.remove(&id).is_some()
        && let Some(n) = t.per_ip.get_mut(&remote.ip())
    {
        *n = n.saturating_sub(1);
        if *n == 0 {
            t.per_ip.remove(&remote.ip());
        }
    }
}

/// Reads frames and writes queued messages until the peer closes, sends
/// garbage, stalls mid-message, idles out, or the server shuts down.
async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    inner: &Inner,
    stream: S,
    flow: Flow,
    mut rx: mpsc::Receiver<Bytes>,
) {
    let cfg = &inner.config;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut codec = SipCodec::new(cfg.limits);
    let mut buf = BytesMut::with_capacity(4096);
    let mut idle_deadline = Instant::now() + cfg.idle_timeout;
    let mut message_deadline: Option<Instant> = None;
    let remote = flow.remote;
    loop {
        // Hand on every complete frame in the buffer.
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(Frame::Message(bytes))) => {
                    let ev = Event::Message(Incoming { flow, bytes });
                    if inner.events.send(ev).await.is_err() {
                        return;
                    }
                }
                Ok(Some(Frame::Ping)) => {
                    if wr.write_all(PONG).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::info!(%remote, transport = %flow.transport, %error, "closing connection: unframeable input");
                    let _ = inner.events.send(Event::Rejected { flow, error }).await;
                    // The messages framed before the garbage are being
                    // answered: their answers still go out, then it closes.
                    linger(inner, &mut wr, &mut rx).await;
                    return;
                }
            }
        }
        // What is left is one incomplete message; the decoder refuses an
        // over-size one once its header is read, this bounds the rest.
        if buf.len() > cfg.limits.max_message_bytes {
            tracing::info!(%remote, "closing connection: buffer cap exceeded");
            return;
        }
        message_deadline = if buf.is_empty() {
            None
        } else {
            message_deadline.or(Some(Instant::now() + cfg.message_timeout))
        };
        let message_wait = async {
            match message_deadline {
                Some(d) => sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            read = rd.read_buf(&mut buf) => {
                match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => idle_deadline = Instant::now() + cfg.idle_timeout,
                }
            }
            out = rx.recv() => {
                let Some(bytes) = out else { return };
                idle_deadline = Instant::now() + cfg.idle_timeout;
                if wr.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            _ = sleep_until(idle_deadline) => {
                tracing::debug!(%remote, "closing idle connection");
                return;
            }
            _ = message_wait => {
                tracing::info!(%remote, "closing connection: message not completed in time");
                return;
            }
        }
    }
}

/// How long a connection that sent unframeable bytes stays open for the
/// answers to what it sent before them.
const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes what is queued for a connection that reads no more, for at
/// most [`LINGER`].
async fn linger<W: AsyncWrite + Unpin>(inner: &Inner, wr: &mut W, rx: &mut mpsc::Receiver<Bytes>) {
    let end = Instant::now() + LINGER;
    loop {
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            out = rx.recv() => {
                let Some(bytes) = out else { return };
                if wr.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            _ = sleep_until(end) => return,
        }
    }
}
