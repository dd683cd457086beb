//! The tokio driver of the server: opens the store, loads the tenants'
//! flows (and reloads them when their files change), binds the transports,
//! runs the SIP core ([`crate::ua::Core`]) on one task, starts one
//! [`crate::call::task`] per answered call (a panic there ends only that
//! call), and drains on shutdown: no new calls (503), running calls get
//! `calls.drain_secs` to finish, then BYE, then the log is flushed.

pub mod bindings;
mod claims;
mod drive;
pub mod rtp_ports;
mod syncer;
pub mod tls;
pub mod webhooks;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sip::transport::{self, Bound, ListenSpec, TransportConfig};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::call::task::{self as call_task, Shared};
use crate::config::{Config, Listen, parse_port_range};
use crate::server::rtp_ports::RtpPorts;
use crate::store::Store;
use crate::tenants::{self, Registry};
use crate::ua::{Core, Settings};

/// The beep before a recorded message.
const BEEP: &[u8] = include_bytes!("../../examples/prompts/beep.wav");

fn clock_now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// A running server.
pub struct Server {
    /// The sockets it listens on.
    pub bound: Vec<Bound>,
    /// Tenants and their live flows.
    pub registry: Arc<Registry>,
    shutdown: CancellationToken,
    core_task: tokio::task::JoinHandle<()>,
    writer_task: tokio::task::JoinHandle<()>,
    webhooks_stop: CancellationToken,
    webhooks_task: tokio::task::JoinHandle<()>,
    store: Store,
    reload: mpsc::Sender<crate::api::ReloadAsk>,
    /// The admin API's address (None: `http.listen` is empty).
    pub http_addr: Option<std::net::SocketAddr>,
    /// Syncs the recordings (dropped last: a final sync).
    syncer: Option<syncer::Syncer>,
    api: Option<(
        Arc<crate::api::ApiState>,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    )>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The tenants could not be set up.
    #[error(transparent)]
    Tenants(#[from] tenants::TenantsError),
    /// The TLS certificate or key.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A `tls:` listener without `sip.tls_cert` and `sip.tls_key`.
    #[error("a tls: listener needs sip.tls_cert and sip.tls_key")]
    TlsNotConfigured,
    /// The SIP sockets could not be bound.
    #[error("{0}")]
    Bind(sip::Error),
    /// `media.rtp_ports`.
    #[error("media.rtp_ports: {0}")]
    Ports(#[from] crate::config::BadValue),
    /// A built-in prompt did not decode.
    #[error("built-in prompt: {0}")]
    Prompt(#[from] media::Error),
    /// The admin API's listener or its TLS files.
    #[error("{0}")]
    Http(String),
    /// A tenant's webhooks could not be set up (its secret, its CA file).
    #[error("tenant `{tenant}`: {why}")]
    Webhooks {
        /// The tenant.
        tenant: String,
        /// Why.
        why: String,
    },
}

impl Server {
    /// Binds everything and starts the core. Relative tenant flow
    /// directories are resolved against `config_dir`.
    pub async fn start(config: &Config, config_dir: &Path) -> Result<Server, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let store = crate::privacy::open_store(&config.store.url, &config.data_dir).await?;
        // The tenants and numbers made through the admin API join the
        // file's (`store::provisioning`).
        let mut config = config.clone();
        store.merge_provisioned(&mut config).await?;
        crate::privacy::keys::configure(&config, config_dir);
        let config = &config;
        let registry = Arc::new(Registry::new(config, config_dir)?);
        let metrics = Arc::new(crate::metrics::Metrics::new());
        metrics.tenants(config.tenants.iter().map(|t| t.id.as_str()));
        crate::metrics::count_security_events(&metrics);
        // Webhooks: which events go to the outbox, and who sends them.
        store.set_webhooks(&config.tenants);
        let mut senders = std::collections::HashMap::new();
        for t in &config.tenants {
            let sender = crate::tenants::webhooks::Sender::new(t, config_dir, &config.data_dir)
                .map_err(|why| StartError::Webhooks {
                    tenant: t.id.clone(),
                    why,
                })?;
            if let Some(s) = sender {
                senders.insert(t.id.clone(), Arc::new(s));
            }
        }
        create_demo_agents(config, &store).await?;
        let agents = Arc::new(std::sync::RwLock::new(
            crate::tenants::agents::Directory::new(config, &store.agents(None).await?),
        ));
        let report = registry.reload();
        tenants::log_report(&report, true);
        for line in registry.summary(&report) {
            tracing::info!("{line}");
        }
        let mut keys = Vec::new();
        let mut pseudonym_keys = Vec::new();
        for t in registry.tenants().iter() {
            let kek_is_new = std::env::var_os(crate::privacy::keys::env_var(&t.id)).is_none()
                && !crate::privacy::keys::key_path(&config.data_dir, &t.id).exists();
            let kek = match crate::privacy::keys::load_or_create(&config.data_dir, &t.id) {
                Ok(k) => Some(k.with_public(t.recording_public_key)),
                Err(e) => {
                    tracing::error!(tenant = %t.id, error = %e, "no recording key: this tenant's calls cannot be recorded");
                    None
                }
            };
            // The pseudonym key: made once (migrated from the recording
            // key when that existed), never changed by a rotation.
            let pseudonyms = match &kek {
                Some(k) => {
                    let made =
                        crate::privacy::pseudonyms::ensure(&config.data_dir, &t.id, k, kek_is_new);
                    match made {
                        Ok(_) => crate::privacy::pseudonyms::current(&store, &config.data_dir, &t.id)
                            .await
                            .map(Some),
                        Err(e) => Err(e),
                    }
                    .unwrap_or_else(|e| {
                        tracing::error!(tenant = %t.id, error = %e, "no pseudonym key: this tenant's calls are not recorded");
                        None
                    })
                }
                None => None,
            };
            if let Some(p) = &pseudonyms {
                {
                    let k = p.clone();
                    crate::redact::set_key(&t.id, std::sync::Arc::new(move |n| k.pseudonym(n)));
                }
            }
            keys.push(kek);
            pseudonym_keys.push(pseudonyms);
        }
        // Rows written before calls were sealed (`store::sealed`): sealed
        // once, now that every tenant's keys are loaded.
        match store.seal_clear_totp_secrets().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                users = n,
                "sealed the TOTP secrets stored in clear by an earlier version"
            ),
            Err(e) => tracing::error!(error = %e, "stored TOTP secrets could not be sealed"),
        }
        match store.seal_clear_rows().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                calls = n,
                "sealed the callers and timelines stored in clear by an earlier version"
            ),
            Err(e) => tracing::error!(error = %e, "stored calls could not be sealed"),
        }
        let tls = match (&config.sip.tls_cert, &config.sip.tls_key) {
            (Some(c), Some(k)) => Some(crate::server::tls::server_config(c, k)?),
            _ => None,
        };
        let mut specs = Vec::new();
        for l in config.listens() {
            specs.push(match l {
                Listen::Udp(a) => ListenSpec::Udp(a),
                Listen::Tcp(a) => ListenSpec::Tcp(a),
                Listen::Tls(a) => {
                    ListenSpec::Tls(a, tls.clone().ok_or(StartError::TlsNotConfigured)?)
                }
            });
        }
        if config.log.personal_data {
            tracing::warn!(
                "[log] personal_data is on: this log shows callers' numbers and the keys they press in clear, where the privacy tools cannot erase them; turn it off after debugging"
            );
        }
        if config.trunks.is_empty()
            && config.listens().iter().any(|l| {
                let (Listen::Udp(a) | Listen::Tcp(a) | Listen::Tls(a)) = l;
                !a.ip().is_loopback()
            })
        {
            tracing::warn!("no [[trunks]] configured: calls are accepted from any address");
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
        // The transports outlive the drain: they stop when the core does.
        let transport_stop = CancellationToken::new();
        let (handle, bound) = transport::bind(&specs, tcfg, ev_tx, transport_stop.clone())
            .await
            .map_err(StartError::Bind)?;
        for b in &bound {
            tracing::info!(transport = %b.transport, addr = %b.addr, "listening");
        }
        // The admin API, after the SIP transports (its `/ready` says so).
        let http_addr = config.http.addr().map_err(StartError::Http)?;
        let api = match http_addr {
            None => None,
            Some(addr) => {
                let http_tls = match (&config.http.tls_cert, &config.http.tls_key) {
                    (Some(c), Some(k)) => Some(crate::server::tls::server_config(c, k)?),
                    _ => None,
                };
                let listener = crate::api::bind(addr).await.map_err(StartError::Http)?;
                let state = Arc::new(crate::api::ApiState::new(
                    store.clone(),
                    config,
                    config_dir,
                    Arc::clone(&registry),
                    Arc::clone(&metrics),
                ));
                state
                    .transports_bound
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(http = %listener.addr, tls = http_tls.is_some(), "admin API listening (/openapi.json, /metrics, /health, /ready)");
                Some((listener, state, http_tls))
            }
        };
        let (lo, hi) = parse_port_range(&config.media.rtp_ports)?;
        let settings = Settings {
            flood: crate::ua::pike::Limits {
                messages_per_sec: config.security.flood_messages_per_sec,
                invites_per_sec: config.security.flood_invites_per_sec,
                ban: Duration::from_secs(config.security.flood_ban_secs),
                transactions_per_source: config.security.max_transactions_per_source,
                calls_per_source: config.security.max_calls_per_source,
                exempt: config.security.exempt(&config.trunks),
                ..crate::ua::pike::Limits::default()
            },
            peer_log: crate::ua::log_limit::Limits {
                lines: config.security.peer_log_lines,
                interval: Duration::from_secs(config.security.peer_log_interval_secs),
                ..crate::ua::log_limit::Limits::default()
            },
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
            registrar: crate::ua::registrar::Limits {
                min_expires: config.registrar.min_expires_secs,
                max_expires: config.registrar.max_expires_secs,
                default_expires: config.registrar.default_expires_secs,
                max_contacts: config.registrar.max_contacts_per_agent,
                max_bindings: config.registrar.max_bindings,
            },
        };
        let gate = crate::tenants::gate::Gate::new(
            Arc::clone(&registry),
            &config.trunks,
            rand::random(),
            crate::tenants::lockout::Limits {
                max_failures: config.security.auth_max_failures,
                window: Duration::from_secs(config.security.auth_window_secs),
                lockout: Duration::from_secs(config.security.auth_lockout_secs),
                user_max_failures: config.security.auth_user_max_failures,
                user_lockout: Duration::from_secs(config.security.auth_user_lockout_secs),
                ..crate::tenants::lockout::Limits::default()
            },
            Arc::clone(&agents),
            (&config.registrar.realm, config.registrar.algorithms()),
        );
        let mut core = Core::new(
            settings,
            Box::new(RtpPorts::new(config.media.rtp_ip, lo, hi)),
            Box::new(gate),
            (clock_now(), SystemTime::now()),
            rand::random(),
        );
        let node = config.registrar.node.clone();
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut restored = 0;
        for row in store.bindings(Some(&node), now_ms).await? {
            if let Some((agent, binding)) = bindings::from_row(&row, config) {
                core.restore_binding(agent, binding);
                restored += 1;
            }
        }
        if restored > 0 {
            tracing::info!(
                bindings = restored,
                "agent registrations restored from the store"
            );
        }
        // State changes asked since this node last ran (its old lease's
        // end), before the lease is renewed below.
        let start_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let commands_since = match store.node_lease(&node).await? {
            Some(until) => until.min(start_ms) - 5_000,
            None => start_ms - COMMANDS_KEPT_MS,
        };
        let claim_lease = Duration::from_secs(config.registrar.claim_lease_secs.max(2));
        let claims = claims::start(store.clone(), node.clone(), claim_lease).await?;
        let binding_log = bindings::writer(store.clone(), node.clone());
        let agent_events = agent_event_writer(store.clone(), store.last_agent_event_seq().await?);
        let acd = {
            let now = clock_now();
            let tenants: Vec<_> = config
                .tenants
                .iter()
                .enumerate()
                .map(|(i, t)| (i, Arc::<str>::from(t.id.as_str()), t.queues.clone()))
                .collect();
            let mut acd = crate::acd::Acd::new(&tenants, (now, SystemTime::now()), now);
            // Skills of every agent, from the config or the store.
            if let Ok(dir) = agents.read() {
                for a in dir.iter() {
                    let agent = crate::ua::AgentRef {
                        tenant: a.tenant,
                        tenant_id: Arc::clone(&a.tenant_id),
                        extension: a.extension.clone(),
                    };
                    acd.set_skills(&agent, a.skills.clone());
                }
            }
            // Stored states (a paused agent stays paused across a
            // restart; one recorded ringing or on a call is not left so).
            for e in store.latest_agent_events(None).await? {
                let Some(i) = config.tenants.iter().position(|t| t.id == e.tenant) else {
                    continue;
                };
                let agent = crate::ua::AgentRef {
                    tenant: i,
                    tenant_id: Arc::from(e.tenant.as_str()),
                    extension: e.extension.clone(),
                };
                if let Some(st) = crate::acd::State::parse(&e.to_state, &e.reason) {
                    acd.restore_state(now, &agent, &st);
                }
                if !core.agent_bindings(&agent, now).is_empty() {
                    acd.reachable(now, &agent, true);
                }
            }
            for (i, t) in config.tenants.iter().enumerate() {
                for q in &t.queues {
                    for m in &q.members {
                        let agent = crate::ua::AgentRef {
                            tenant: i,
                            tenant_id: Arc::from(t.id.as_str()),
                            extension: m.clone(),
                        };
                        if !core.agent_bindings(&agent, now).is_empty() {
                            acd.reachable(now, &agent, true);
                        }
                    }
                }
            }
            // State changes asked while the server was down (by the CLI
            // or at other nodes).
            for row in store.agent_commands_since(commands_since).await? {
                if let Some((agent, cmd)) = agent_command(&row, config) {
                    acd.command(now, &agent, cmd);
                }
            }
            acd
        };
        let (agent_cmd_tx, agent_cmd_rx) = mpsc::channel(256);
        let agent_commands = agent_commands(
            store.clone(),
            config.clone(),
            node.clone(),
            start_ms,
            agent_cmd_tx.clone(),
            shutdown.clone(),
        );
        let (log, writer_task) = crate::store::writer::start(
            store.clone(),
            Duration::from_millis(config.store.flush_ms.max(10)),
        );
        // The metrics and the live-call table see every record first.
        let log = {
            let m = Arc::clone(&metrics);
            log.with_observer(Arc::new(move |r| m.observe(r)))
        };
        {
            let (stats, dropped) = log.stats();
            let m = Arc::clone(&metrics);
            let _ = stats.on_batch.set(Box::new(move |d| m.store_batch(d)));
            metrics.store_source(Box::new(move || {
                use std::sync::atomic::Ordering::Relaxed;
                crate::metrics::StoreFigures {
                    written: stats.written.load(Relaxed),
                    batches: stats.batches.load(Relaxed),
                    write_micros: stats.write_micros.load(Relaxed),
                    failures: stats.failures.load(Relaxed),
                    backlog: stats.backlog.load(Relaxed),
                    events_dropped: dropped.load(Relaxed),
                }
            }));
        }
        let tts = media::tts::EspeakNg::find()
            .map(|e| Mutex::new(media::tts::Cache::new(Arc::new(e), 64 << 20)));
        // One syncfs for every recording (Linux), else each its own file.
        let every = Duration::from_millis(config.recordings.sync_ms.max(1));
        let syncer = syncer::Syncer::start(
            config.data_dir.join("recordings"),
            every,
            Arc::clone(&metrics),
        );
        let recording_sync = if syncer.is_some() {
            recordings::file::EXTERNAL_SYNC
        } else {
            every
        };
        let shared = Arc::new(Shared {
            media_timeout: Duration::from_secs(config.media.timeout_secs),
            inband_dtmf: config.media.inband_dtmf,
            max_duration: Duration::from_secs(config.calls.max_call_secs),
            max_timeline_events: config.calls.max_timeline_events,
            max_digits_per_sec: config.calls.max_dtmf_per_sec,
            prompts: Mutex::new(media::prompt::Cache::new(256 << 20)),
            tts,
            log,
            registry: Arc::clone(&registry),
            keys: std::sync::RwLock::new(keys),
            pseudonyms: std::sync::RwLock::new(pseudonym_keys),
            data_dir: config.data_dir.clone(),
            recordings_dir: config.data_dir.join("recordings"),
            recording_sync,
            beep: call_task::builtin_prompt(BEEP, "beep", 8000)?,
            store: store.clone(),
            metrics: Arc::clone(&metrics),
            panic_digit: std::env::var("DHWANI_TEST_PANIC_DIGIT")
                .ok()
                .and_then(|v| v.chars().next()),
        });
        tokio::spawn(sweeper(store.clone(), config.clone(), shutdown.clone()));
        let webhooks_stop = CancellationToken::new();
        let webhooks_task = webhooks::start(
            store.clone(),
            config.registrar.node.clone(),
            senders,
            webhooks_stop.clone(),
            Arc::clone(&metrics),
        );
        let (reload_tx, reload_rx) = mpsc::channel(4);
        if let Some((_, state, _)) = &api {
            let _ = state.reload.set(reload_tx.clone());
        }
        tokio::spawn(watch_flows(
            Arc::clone(&registry),
            Arc::clone(&shared),
            config.data_dir.clone(),
            reload_rx,
            shutdown.clone(),
            AgentReload {
                agents: Arc::clone(&agents),
                store: store.clone(),
                config: config.clone(),
                commands: agent_cmd_tx,
            },
        ));
        let udp_locals: Vec<std::net::SocketAddr> = bound
            .iter()
            .filter(|b| b.transport == sip::transport::Transport::Udp)
            .map(|b| b.addr)
            .collect();
        let outbound = drive::OutRoutes {
            trunks: outbound_routes(config, &registry, &bound),
            uri_targets: uri_targets(config, &registry),
            elsewhere: bindings::watch_elsewhere(
                store.clone(),
                node.clone(),
                config.clone(),
                udp_locals.clone(),
                shutdown.clone(),
            ),
            udp_locals,
        };
        let drain = Duration::from_secs(config.calls.drain_secs);
        let shutdown_for_core = shutdown.clone();
        let store_for_claims = store.clone();
        let core_task = tokio::spawn(async move {
            let sinks = drive::Sinks {
                bindings: binding_log,
                agent_events,
                agent_commands,
            };
            drive::drive(
                core,
                acd,
                handle,
                ev_rx,
                shutdown_for_core,
                shared,
                drain,
                sinks,
                agent_cmd_rx,
                outbound,
                claims,
            )
            .await;
            // Drained: this node holds no agent.
            if let Err(e) = store_for_claims.clear_claims(&node).await {
                tracing::warn!(error = %e, "this node's agent claims could not be dropped; they lapse with its lease");
            }
            transport_stop.cancel();
        });
        let api = api.map(|(listener, state, tls)| {
            let stop = CancellationToken::new();
            let task = tokio::spawn(crate::api::serve(
                listener,
                Arc::clone(&state),
                tls,
                stop.clone(),
            ));
            (state, stop, task)
        });
        Ok(Server {
            bound,
            registry,
            shutdown,
            core_task,
            writer_task,
            webhooks_stop,
            webhooks_task,
            store,
            reload: reload_tx,
            http_addr,
            api,
            syncer,
        })
    }

    /// Reloads every tenant's flows now (SIGHUP, `dhwani flow deploy`).
    pub fn reload(&self) {
        let _ = self.reload.try_send(None);
    }

    /// Drains (no new calls; running calls get `calls.drain_secs`, then
    /// BYE), stops listening, flushes the interaction log.
    pub async fn shutdown(self) {
        // `/ready` says 503 while the calls drain; the API stays up.
        if let Some((state, _, _)) = &self.api {
            state.start_draining();
        }
        self.shutdown.cancel();
        let _ = self.core_task.await;
        // The core task held the last log senders: the writer now writes
        // what is queued and ends.
        let _ = self.writer_task.await;
        // Then the webhook deliverer (what is still pending stays in the
        // outbox for the next start).
        self.webhooks_stop.cancel();
        let _ = self.webhooks_task.await;
        if let Some((_, stop, task)) = self.api {
            stop.cancel();
            let _ = task.await;
        }
        self.store.close().await;
        // Every call is over: one last sync of the recordings.
        drop(self.syncer);
    }
}

/// The demo tenant (flows `builtin:demo`) gets its queue's agents at first
/// start, with generated passwords printed once (as the demo recording key
/// is generated): the README's tour registers a softphone with them.
async fn create_demo_agents(config: &Config, store: &Store) -> Result<(), StartError> {
    for t in config
        .tenants
        .iter()
        .filter(|t| t.flows_dir.as_os_str() == crate::config::BUILTIN_DEMO_FLOWS)
    {
        if !t.agents.is_empty() || !store.agents(Some(&t.id)).await?.is_empty() {
            continue;
        }
        let mut members: Vec<&String> = t.queues.iter().flat_map(|q| &q.members).collect();
        members.sort();
        members.dedup();
        for ext in members {
            let password = crate::tenants::agents::generate_password();
            let row = crate::tenants::agents::agent_row(
                &t.id,
                ext,
                &format!("Demo agent {ext}"),
                &config.registrar.realm,
                &password,
            );
            store.put_agent(&row).await?;
            tracing::warn!(tenant = %t.id, extension = %ext, "created a DEMO agent; its password is printed once below (change it with `dhwani agents passwd`)");
            eprintln!("demo agent {ext}: password {password}   (register sip:{ext}@<this server>)");
        }
    }
    Ok(())
}

/// What a reload refreshes of the contact centre: the agent directory
/// (from the store and the config) and the queued state changes, sent to
/// the SIP driver's ACD.
struct AgentReload {
    agents: Arc<std::sync::RwLock<crate::tenants::agents::Directory>>,
    store: Store,
    config: Config,
    commands: mpsc::Sender<(crate::ua::AgentRef, crate::acd::AgentCommand)>,
}

/// How long agent state changes stay in the store for nodes to apply (a
/// node down for longer starts from the states in `agent_events`).
const COMMANDS_KEPT_MS: i64 = 24 * 3600 * 1000;

/// Agent state changes shared by the nodes on one store: this node's own
/// (feature codes, the ACD's "no answer" pause) are written for the
/// others; every second the others' (and the CLI's) are read and handed
/// to the driver, each once (remembered by id). Changes older than a day
/// are pruned.
fn agent_commands(
    store: Store,
    config: Config,
    node: String,
    start_ms: i64,
    apply: mpsc::Sender<(crate::ua::AgentRef, crate::acd::AgentCommand)>,
    stop: CancellationToken,
) -> mpsc::UnboundedSender<crate::store::agents::AgentCommandRow> {
    let (tx, mut rx) = mpsc::unbounded_channel::<crate::store::agents::AgentCommandRow>();
    tokio::spawn(async move {
        let mut seen: std::collections::HashMap<String, i64> = Default::default();
        let mut since = start_ms - 5_000;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut pruned = 0i64;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                Some(mut row) = rx.recv() => {
                    row.origin = node.clone();
                    row.id = format!("{:016x}", rand::random::<u64>());
                    seen.insert(row.id.clone(), row.at_ms);
                    if let Err(e) = store.put_agent_command(&row).await {
                        tracing::warn!(error = %e, "an agent state change could not be shared with the other nodes");
                    }
                    continue;
                }
                _ = tick.tick() => {}
            }
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            match store.agent_commands_since(since).await {
                Ok(rows) => {
                    for row in rows {
                        let key = if row.id.is_empty() {
                            format!(
                                "{}/{}/{}/{}",
                                row.tenant, row.extension, row.command, row.at_ms
                            )
                        } else {
                            row.id.clone()
                        };
                        if seen.contains_key(&key) || row.origin == node {
                            continue;
                        }
                        seen.insert(key, row.at_ms);
                        if let Some(c) = agent_command(&row, &config) {
                            let _ = apply.send(c).await;
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "agent state changes of other nodes not read"),
            }
            // Read again with some overlap (clocks of nodes differ a little;
            // a row committed late); what was applied is remembered.
            since = since.max(now - 60_000);
            seen.retain(|_, at| *at >= since - 1_000);
            if now - pruned > 3_600_000 {
                pruned = now;
                let _ = store.prune_agent_commands(now - COMMANDS_KEPT_MS).await;
            }
        }
    });
    tx
}

/// A stored state change as the ACD's command, if its tenant exists.
fn agent_command(
    row: &crate::store::agents::AgentCommandRow,
    config: &Config,
) -> Option<(crate::ua::AgentRef, crate::acd::AgentCommand)> {
    use crate::acd::AgentCommand;
    let tenant = config.tenants.iter().position(|t| t.id == row.tenant)?;
    let cmd = match row.command.as_str() {
        "login" => AgentCommand::LogIn,
        "logout" => AgentCommand::LogOut,
        "pause" => AgentCommand::Pause(row.reason.clone()),
        "unpause" => AgentCommand::Unpause,
        _ => return None,
    };
    let agent = crate::ua::AgentRef {
        tenant,
        tenant_id: Arc::from(row.tenant.as_str()),
        extension: row.extension.clone(),
    };
    Some((agent, cmd))
}

/// Writes agent state changes in order.
fn agent_event_writer(
    store: Store,
    mut seq: i64,
) -> mpsc::UnboundedSender<crate::store::agents::AgentEventRow> {
    let (tx, mut rx) = mpsc::unbounded_channel::<crate::store::agents::AgentEventRow>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            // What queued up meanwhile goes in one transaction.
            let mut batch = vec![first];
            while batch.len() < 1000 {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            for e in &mut batch {
                seq += 1;
                e.seq = seq;
            }
            if let Err(err) = store.agent_events(&batch).await {
                tracing::error!(events = batch.len(), error = %err, "agent state changes not stored");
            }
        }
    });
    tx
}

/// Applies the tenants' retention periods every hour (and once at start).
async fn sweeper(store: Store, config: Config, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Once an hour too: requests and grievances past a due date.
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        store.log_overdue(now_ms).await;
        // Tenants the admin API made since the start (here or on another
        // node) are swept too.
        let mut config = config.clone();
        if let Err(e) = store.merge_provisioned(&mut config).await {
            tracing::error!(error = %e, "tenants made through the admin API not read: this sweep covers the others");
        }
        match crate::privacy::sweep(&store, &config, SystemTime::now(), "sweeper").await {
            Ok(r) => tracing::info!(
                recordings = r.recordings_deleted,
                timelines = r.timelines_deleted,
                cdrs = r.cdrs_deleted,
                pseudonymised = r.cdrs_pseudonymised,
                "retention sweep"
            ),
            Err(e) => tracing::error!(error = %e, "retention sweep failed"),
        }
    }
}

/// Reloads flows when files under a flows directory change (checked every
/// second) or when asked.
async fn watch_flows(
    registry: Arc<Registry>,
    shared: Arc<Shared>,
    data_dir: std::path::PathBuf,
    mut asked: mpsc::Receiver<crate::api::ReloadAsk>,
    stop: CancellationToken,
    agent_reload: AgentReload,
) {
    let AgentReload {
        agents,
        store,
        config,
        commands: agent_cmds,
    } = agent_reload;
    let mut last = tenants::fingerprint(&registry);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let (forced, done) = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => (false, None),
            Some(done) = asked.recv() => (true, done),
        };
        if forced {
            // Keys too: a rotation takes effect for the next recording.
            let tenants = registry.tenants();
            let keys: Vec<_> = tenants
                .iter()
                .map(|t| {
                    crate::privacy::keys::load(&data_dir, &t.id)
                        .ok()
                        .map(|k| k.with_public(t.recording_public_key))
                })
                .collect();
            if let Ok(mut k) = shared.keys.write() {
                *k = keys;
            }
            // A tenant the admin API added: its pseudonym key (made by
            // the API with its recording key) joins the others.
            let known = shared.pseudonyms.read().map(|p| p.len()).unwrap_or(0);
            for t in tenants.iter().skip(known) {
                let key = crate::privacy::pseudonyms::current(&store, &data_dir, &t.id)
                    .await
                    .inspect_err(|e| tracing::error!(tenant = %t.id, error = %e, "no pseudonym key: this tenant's calls are not recorded"))
                    .ok();
                if let Some(k) = &key {
                    let k = k.clone();
                    crate::redact::set_key(&t.id, Arc::new(move |n| k.pseudonym(n)));
                }
                if let Ok(mut p) = shared.pseudonyms.write() {
                    p.push(key);
                }
            }
            let config = in_registry_order(&config, &tenants);
            // Agent state changes (`dhwani agents state`) are read by
            // `agent_commands` within a second.
            // Agents too (`dhwani agents add|passwd|remove`).
            match store.agents(None).await {
                Ok(rows) => {
                    let dir = crate::tenants::agents::Directory::new(&config, &rows);
                    tracing::info!(agents = dir.len(), "agents reloaded");
                    for a in dir.iter() {
                        let agent = crate::ua::AgentRef {
                            tenant: a.tenant,
                            tenant_id: Arc::clone(&a.tenant_id),
                            extension: a.extension.clone(),
                        };
                        let cmd = crate::acd::AgentCommand::SetSkills(a.skills.clone());
                        let _ = agent_cmds.send((agent, cmd)).await;
                    }
                    if let Ok(mut a) = agents.write() {
                        *a = dir;
                    }
                }
                Err(e) => tracing::error!(error = %e, "agents not reloaded"),
            }
        }
        let reg = Arc::clone(&registry);
        let Ok(fp) = tokio::task::spawn_blocking(move || tenants::fingerprint(&reg)).await else {
            continue;
        };
        if fp == last && !forced {
            continue;
        }
        last = fp;
        let reg = Arc::clone(&registry);
        if let Ok(report) = tokio::task::spawn_blocking(move || reg.reload()).await {
            tenants::log_report(&report, false);
            if forced {
                tracing::info!(
                    live = report.live.len(),
                    refused = report.refused.len(),
                    "flows reloaded"
                );
            }
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }
}

/// `config` with its tenants in the registry's order (the index every
/// part of the call core uses), a tenant the admin API added since the
/// start as its defaults.
fn in_registry_order(config: &Config, tenants: &[Arc<tenants::Tenant>]) -> Config {
    let mut out = config.clone();
    out.tenants = tenants
        .iter()
        .map(|t| {
            config
                .tenants
                .iter()
                .find(|c| *c.id == *t.id)
                .cloned()
                .unwrap_or_else(|| {
                    let row = crate::store::provisioning::TenantRow {
                        id: t.id.to_string(),
                        name: t.name.clone(),
                        max_calls: t.max_calls,
                        suspended: t.suspended,
                        created_ms: 0,
                    };
                    let mut c = crate::store::provisioning::tenant_config(&row, &config.data_dir);
                    c.numbers = t.numbers.clone();
                    c
                })
        })
        .collect();
    out
}

/// Each tenant's other SIP hosts its transfers may call (by tenant index;
/// the config was checked when loaded, so a bad entry here is a bug and
/// leaves the tenant with none).
fn uri_targets(
    config: &Config,
    registry: &Registry,
) -> Vec<Arc<crate::tenants::sip_targets::UriTargets>> {
    registry
        .tenants()
        .iter()
        .map(|t| {
            let rules = config
                .tenants
                .iter()
                .find(|c| *c.id == *t.id)
                .map(|c| {
                    crate::tenants::sip_targets::UriTargets::new(
                        &c.transfer_hosts,
                        &c.transfer_private_networks,
                    )
                })
                .transpose()
                .unwrap_or_else(|e| {
                    tracing::error!(tenant = %t.id, error = %e, "transfer_hosts not usable: no transfers to other hosts");
                    None
                })
                .unwrap_or_default();
            Arc::new(rules)
        })
        .collect()
}

/// Each tenant's outbound trunk (by tenant index), with the UDP socket of
/// ours that calls go out from (the first UDP listener of the trunk's
/// address family).
fn outbound_routes(
    config: &Config,
    registry: &Registry,
    bound: &[sip::transport::Bound],
) -> Vec<Option<drive::Outbound>> {
    registry
        .tenants()
        .iter()
        .map(|t| {
            let tc = config.tenants.iter().find(|c| *c.id == *t.id)?;
            let name = tc.transfer_trunk.as_ref()?;
            let o = config.outbound_trunks.iter().find(|o| &o.name == name)?;
            let Some(remote) = o.resolve() else {
                tracing::error!(trunk = %o.name, address = %o.address, "outbound trunk address does not resolve: transfers to numbers fail");
                return None;
            };
            let Some(local) = bound
                .iter()
                .find(|b| {
                    b.transport == sip::transport::Transport::Udp
                        && b.addr.is_ipv4() == remote.is_ipv4()
                })
                .map(|b| b.addr)
            else {
                tracing::error!(trunk = %o.name, "no UDP listener of the trunk's address family: transfers to numbers fail");
                return None;
            };
            Some(drive::Outbound {
                trunk: o.name.clone(),
                flow: sip::transport::Flow {
                    transport: sip::transport::Transport::Udp,
                    local,
                    remote,
                    conn: None,
                },
                caller_id: o.caller_id.clone(),
                credentials: o.username.clone().zip(o.resolved_password()),
                allow: tc.transfer_allow.clone(),
            })
        })
        .collect()
}
