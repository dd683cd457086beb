//! The admin HTTP API (axum, on hyper with our own accept loop so that
//! header timeouts, the connection cap, TLS and the drain are ours): API
//! keys with roles and tenant scope (`auth`), RFC 9457 problems
//! (`problem`), the resources (`routes`), its OpenAPI 3.1 document
//! generated from the handlers (utoipa) at `/openapi.json`, Prometheus
//! `/metrics`, `/health` and `/ready`.
//!
//! `/health`, `/ready`, `/metrics` and `/openapi.json` need no key (the
//! server listens on 127.0.0.1 by default; put it behind a proxy or TLS
//! with a firewall to expose it). Everything under `/v1/` needs one.

pub mod auth;
pub mod centre;
pub mod flows;
pub mod keys;
pub mod problem;
pub mod recordings;
pub mod rights;
pub mod routes;
pub mod tenants;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tenants::Registry;

/// What the handlers share.
pub struct ApiState {
    /// The store (keys, calls, timelines).
    pub store: Store,
    /// The config (tenants, data dir for the audit log).
    pub config: Config,
    /// The directory relative flow paths are resolved against.
    pub config_dir: std::path::PathBuf,
    /// Tenants and their live flows.
    pub registry: Arc<Registry>,
    /// Metrics and live calls.
    pub metrics: Arc<Metrics>,
    /// Failed key checks and logins per address.
    pub failures: auth::Failures,
    /// Failed logins per username.
    pub user_failures: auth::Failures<String>,
    /// Set when the server starts draining: `/ready` says 503.
    pub draining: AtomicBool,
    /// Set once the SIP transports are bound.
    pub transports_bound: AtomicBool,
    /// Flow deploys and tenant changes, one at a time.
    pub deploys: tokio::sync::Mutex<()>,
    /// Asks the server to reload keys, agents and flows (answered when
    /// done); set by the server once its reloader runs.
    pub reload: std::sync::OnceLock<tokio::sync::mpsc::Sender<ReloadAsk>>,
}

/// A reload request: the sender is answered once keys, agents and flows
/// are reloaded.
pub type ReloadAsk = Option<tokio::sync::oneshot::Sender<()>>;

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

impl ApiState {
    /// The state of a server with `config`.
    pub fn new(
        store: Store,
        config: &Config,
        config_dir: &std::path::Path,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> ApiState {
        ApiState {
            store,
            config: config.clone(),
            config_dir: config_dir.to_owned(),
            registry,
            metrics,
            failures: auth::Failures::new(auth::Limits {
                max_failures: config.http.auth_max_failures,
                window: Duration::from_secs(config.http.auth_window_secs),
                lockout: Duration::from_secs(config.http.auth_lockout_secs),
                max_sources: 65_536,
            }),
            user_failures: auth::Failures::new(auth::Limits {
                max_failures: users::USER_MAX_FAILURES,
                window: Duration::from_secs(config.http.auth_window_secs),
                lockout: users::USER_LOCKOUT,
                max_sources: 65_536,
            }),
            draining: AtomicBool::new(false),
            transports_bound: AtomicBool::new(false),
            deploys: tokio::sync::Mutex::new(()),
            reload: std::sync::OnceLock::new(),
        }
    }

    /// No new work: `/ready` answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

/// A bound HTTP listener, not yet serving.
pub struct Bound {
    listener: TcpListener,
    /// The address it is bound to.
    pub addr: SocketAddr,
}

/// Binds `addr` (an error names the address and what to do).
pub async fn bind(addr: SocketAddr) -> Result<Bound, String> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen for HTTP on {addr}: {e} (set http.listen, or --http-listen, to a free address; empty turns it off)")
    })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    Ok(Bound { listener, addr })
}

/// Serves the API on `bound` until `stop`; then stops accepting, lets
/// requests under way finish (5 s at most) and returns.
pub async fn serve(
    bound: Bound,
    state: Arc<ApiState>,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: CancellationToken,
) {
    let http = &state.config.http;
    let app = routes::router(Arc::clone(&state));
    let limit = Arc::new(tokio::sync::Semaphore::new(http.max_connections));
    let header_timeout = Duration::from_secs(http.header_timeout_secs);
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let conns = tokio_util::task::TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            p = Arc::clone(&limit).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            a = bound.listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let stop = stop.clone();
        conns.spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    let mut app = app.clone();
                    async move {
                        use tower::Service;
                        app.call(req.map(axum::body::Body::new)).await
                    }
                },
            );
            match tls {
                None => {
                    serve_conn(
                        hyper_util::rt::TokioIo::new(stream),
                        service,
                        header_timeout,
                        stop,
                    )
                    .await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => {
                            serve_conn(
                                hyper_util::rt::TokioIo::new(s),
                                service,
                                header_timeout,
                                stop,
                            )
                            .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer.ip(), error = %e, "HTTPS handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %peer.ip(), "HTTPS handshake timed out"),
                    }
                }
            }
        });
    }
    conns.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), conns.wait()).await;
}

async fn serve_conn<I, S>(io: I, service: S, header_timeout: Duration, stop: CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send + 'static,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
