//! The tokio driver of the server: binds the transports, runs the SIP core
//! ([`crate::ua::Core`]) on one task, starts and stops each call's media
//! task, and shuts down cleanly on SIGINT/SIGTERM.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sip::transport::{self, Bound, Event, ListenSpec, TransportConfig};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Listen, parse_port_range};
use crate::media_task::{self, HangupReason, RtpPorts};
use crate::ua::{Action, CallId, Core, Settings};

fn clock_now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// A running server.
pub struct Server {
    /// The sockets it listens on.
    pub bound: Vec<Bound>,
    shutdown: CancellationToken,
    core_task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds everything and starts the core.
    pub async fn start(config: &Config) -> anyhow::Result<Server> {
        // Decode prompts before listening: a call answered at once must
        // find them ready.
        let welcome_8k = media_task::load_welcome(&config.media.welcome_prompt, 8000)
            .context("media.welcome_prompt")?;
        let welcome_16k = media_task::load_welcome(&config.media.welcome_prompt, 16000)
            .context("media.welcome_prompt")?;
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
        let tls = match (&config.sip.tls_cert, &config.sip.tls_key) {
            (Some(c), Some(k)) => Some(crate::tls::server_config(c, k)?),
            _ => None,
        };
        let mut specs = Vec::new();
        for l in config.listens() {
            specs.push(match l {
                Listen::Udp(a) => ListenSpec::Udp(a),
                Listen::Tcp(a) => ListenSpec::Tcp(a),
                Listen::Tls(a) => ListenSpec::Tls(
                    a,
                    tls.clone()
                        .context("a tls: listener needs sip.tls_cert and sip.tls_key")?,
                ),
            });
        }
        let tcfg = TransportConfig {
            limits: config.limits(),
            max_connections: config.sip.max_connections,
            max_connections_per_ip: config.sip.max_connections_per_ip,
            idle_timeout: Duration::from_secs(config.sip.idle_timeout_secs),
            message_timeout: Duration::from_secs(config.sip.message_timeout_secs),
            handshake_timeout: Duration::from_secs(config.sip.tls_handshake_timeout_secs),
        };
        let shutdown = CancellationToken::new();
        let (ev_tx, ev_rx) = mpsc::channel(8192);
        let (handle, bound) = transport::bind(&specs, tcfg, ev_tx, shutdown.clone())
            .await
            .context("cannot bind SIP sockets")?;
        for b in &bound {
            tracing::info!(transport = %b.transport, addr = %b.addr, "listening");
        }
        let (lo, hi) = parse_port_range(&config.media.rtp_ports).map_err(anyhow::Error::msg)?;
        let settings = Settings {
            limits: config.limits(),
            timers: config.timers(),
            max_transactions: config.sip.max_transactions,
            max_calls: config.calls.max_calls,
            retry_after_secs: config.calls.retry_after_secs,
            answer_after: Duration::from_millis(config.calls.answer_after_ms),
            codecs: config
                .media
                .codecs
                .iter()
                .map(|c| c.to_ascii_uppercase())
                .collect(),
            user_agent: config.sip.user_agent.clone(),
        };
        let core = Core::new(
            settings,
            Box::new(RtpPorts::new(config.media.rtp_ip, lo, hi)),
            rand::random(),
        );
        let media = Arc::new(media_task::Settings {
            welcome_8k,
            welcome_16k,
            timeout: Duration::from_secs(config.media.timeout_secs),
            inband_dtmf: config.media.inband_dtmf,
            max_duration: Duration::from_secs(config.calls.max_call_secs),
        });
        let core_task = tokio::spawn(drive(core, handle, ev_rx, shutdown.clone(), media));
        Ok(Server {
            bound,
            shutdown,
            core_task,
        })
    }

    /// Ends calls with BYE, stops listening, waits for the core to finish.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.core_task.await;
    }
}

/// The core's event loop: every decision is the core's; this only moves
/// bytes and wakes up on time.
async fn drive(
    mut core: Core,
    transports: transport::TransportHandle,
    mut events: mpsc::Receiver<Event>,
    shutdown: CancellationToken,
    media_settings: Arc<media_task::Settings>,
) {
    let (hangup_tx, mut hangup_rx) = mpsc::channel::<(CallId, HangupReason)>(1024);
    let mut media: HashMap<CallId, (CancellationToken, mpsc::Sender<media::call::Command>)> =
        HashMap::new();
    let transports = Arc::new(transports);
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    loop {
        while let Some(action) = core.poll_action() {
            match action {
                Action::Send(flow, bytes) => {
                    if let Err(e) = transports.send(&flow, bytes) {
                        tracing::debug!(remote = %flow.remote, error = %e, "send failed");
                    }
                }
                Action::StartMedia(setup) => {
                    let stop = CancellationToken::new();
                    let (cmd_tx, cmd_rx) = mpsc::channel(64);
                    media.insert(setup.id, (stop.clone(), cmd_tx));
                    tokio::spawn(media_task::run(
                        setup,
                        Arc::clone(&media_settings),
                        cmd_rx,
                        stop,
                        hangup_tx.clone(),
                    ));
                }
                Action::StopMedia(id) => {
                    if let Some((stop, _)) = media.remove(&id) {
                        stop.cancel();
                    }
                }
                Action::InfoDigit(id, key) => {
                    if let Some((_, tx)) = media.get(&id) {
                        let _ = tx.try_send(media::call::Command::InfoDigit(key));
                    }
                }
                Action::MediaDirection(id, direction) => {
                    use sip::sdp::Direction;
                    let (send, receive) = match direction {
                        Direction::SendRecv => (true, true),
                        Direction::SendOnly => (true, false),
                        Direction::RecvOnly => (false, true),
                        Direction::Inactive => (false, false),
                    };
                    if let Some((_, tx)) = media.get(&id) {
                        let _ = tx.try_send(media::call::Command::Direction { send, receive });
                    }
                }
            }
        }
        if let Some(d) = drain_deadline
            && (core.call_count() == 0 || tokio::time::Instant::now() >= d)
        {
            break;
        }
        let wake = core
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let wake = drain_deadline.map_or(wake, |d| wake.min(d));
        tokio::select! {
            ev = events.recv() => match ev {
                Some(Event::Message(m)) => core.handle_bytes(clock_now(), m.flow, m.bytes),
                Some(Event::Rejected { .. }) => {}
                None => break,
            },
            Some((id, reason)) = hangup_rx.recv() => {
                let why = match reason {
                    HangupReason::MaxDuration => "max_call_secs reached",
                    HangupReason::MediaTimeout => "media timeout",
                };
                core.hangup(clock_now(), id, why);
            }
            _ = tokio::time::sleep_until(wake) => core.handle_timeout(clock_now()),
            _ = shutdown.cancelled(), if drain_deadline.is_none() => {
                tracing::info!(calls = core.call_count(), "shutting down: ending calls");
                core.drain(clock_now());
                drain_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(2));
            }
        }
    }
    for (_, (stop, _)) in media {
        stop.cancel();
    }
}
