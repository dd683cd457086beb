//! The server configuration: a TOML file (or the embedded default), every key
//! documented in `docs/config.md`. An unknown key or a bad value is a startup
//! error that names the key and the line.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod centre;
pub use centre::{
    AgentConfig, QueueConfig, RegistrarConfig, Strategy, parse_skills, valid_extension,
};

/// The embedded default configuration (`config/default.toml`).
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrongly typed value.
    #[error("{origin}: {message}")]
    Parse {
        /// The file (or "embedded default").
        origin: String,
        /// toml's message, which names the line, column and key.
        message: String,
    },
    /// A value of the right type but not allowed.
    #[error("{origin}:{line}: `{key}`: {message}")]
    Invalid {
        /// The file.
        origin: String,
        /// 1-based line of the key (0 when not in the file).
        line: usize,
        /// The dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the server keeps its data.
    pub data_dir: PathBuf,
    /// The server's own log: `log = "info"` (a filter) or a `[log]` table.
    #[serde(deserialize_with = "LogConfig::from_either")]
    pub log: LogConfig,
    /// SIP signalling.
    pub sip: SipConfig,
    /// RTP media.
    pub media: MediaConfig,
    /// Call handling.
    pub calls: CallsConfig,
    /// Where calls, the interaction log and CDRs are stored.
    pub store: StoreConfig,
    /// Recording files.
    pub recordings: RecordingsConfig,
    /// The businesses hosted here: their numbers and flows.
    pub tenants: Vec<TenantConfig>,
    /// SIP trunks allowed to send calls. None: calls from any source.
    pub trunks: Vec<TrunkConfig>,
    /// Trunks calls go out through (transfers to numbers).
    pub outbound_trunks: Vec<OutboundTrunkConfig>,
    /// Protection against hostile peers.
    pub security: SecurityConfig,
    /// Agents' phone registrations.
    pub registrar: RegistrarConfig,
    /// The admin HTTP API, `/metrics`, `/health` and `/ready`.
    pub http: HttpConfig,
}

/// `[http]`: the admin API's server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `ADDR:PORT` to listen on; empty: no HTTP server.
    pub listen: String,
    /// PEM certificate chain: HTTPS instead of HTTP (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
    /// Request bodies larger than this get 413.
    pub max_body_bytes: usize,
    /// A request (headers, body and answer) taking longer gets 408.
    pub request_timeout_secs: u64,
    /// A client sending its headers slower than this is cut off.
    pub header_timeout_secs: u64,
    /// Open connections at most (more wait to be accepted).
    pub max_connections: usize,
    /// Failed API-key checks from one address, within
    /// `auth_window_secs`, that lock it out (1 to 10).
    pub auth_max_failures: u32,
    /// The window failures are counted in.
    pub auth_window_secs: u64,
    /// How long a locked-out address gets 429 without its key being
    /// looked at (at least 600).
    pub auth_lockout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            tls_cert: None,
            tls_key: None,
            max_body_bytes: 1 << 20,
            request_timeout_secs: 30,
            header_timeout_secs: 10,
            max_connections: 256,
            auth_max_failures: 10,
            auth_window_secs: 60,
            auth_lockout_secs: 600,
        }
    }
}

/// `[security]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Failed digest authentications from one source, within
    /// `auth_window_secs`, that lock it out (1 to 10).
    pub auth_max_failures: u32,
    /// The window failures are counted in.
    pub auth_window_secs: u64,
    /// How long a locked-out source gets 403 (at least 600).
    pub auth_lockout_secs: u64,
    /// Failed digest authentications of one username, from any sources
    /// within `auth_window_secs`, that lock the username (more than
    /// `auth_max_failures`).
    pub auth_user_max_failures: u32,
    /// How long a locked username gets 403 from sources it never
    /// authenticated from (1 to 600, shorter than a source's lockout).
    pub auth_user_lockout_secs: u64,
    /// Log lines a source's bad input may cause in full per interval.
    pub peer_log_lines: u32,
    /// The interval; then one summary line with the count suppressed.
    pub peer_log_interval_secs: u64,
    /// Messages per second from one source before it is banned.
    pub flood_messages_per_sec: u32,
    /// New INVITEs per second from one source before it is banned.
    pub flood_invites_per_sec: u32,
    /// How long a flood ban lasts (datagrams dropped, no replies).
    pub flood_ban_secs: u64,
    /// Live SIP transactions one source may hold.
    pub max_transactions_per_source: usize,
    /// Calls in progress one source may hold (503 beyond).
    pub max_calls_per_source: usize,
    /// Networks (CIDR) exempt from the flood limits and per-source caps:
    /// trunks and SBCs you trust. A trunk can also say `flood_exempt`.
    pub exempt_networks: Vec<String>,
}

impl Default for SecurityConfig {
    fn default() -> SecurityConfig {
        SecurityConfig {
            auth_max_failures: 10,
            auth_window_secs: 60,
            auth_lockout_secs: 600,
            auth_user_max_failures: 30,
            auth_user_lockout_secs: 60,
            peer_log_lines: 5,
            peer_log_interval_secs: 10,
            flood_messages_per_sec: 5_000,
            flood_invites_per_sec: 2_000,
            flood_ban_secs: 300,
            max_transactions_per_source: 20_000,
            max_calls_per_source: 250,
            exempt_networks: Vec::new(),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            data_dir: PathBuf::from("./data"),
            log: LogConfig::default(),
            sip: SipConfig::default(),
            media: MediaConfig::default(),
            calls: CallsConfig::default(),
            store: StoreConfig::default(),
            recordings: RecordingsConfig::default(),
            tenants: Vec::new(),
            trunks: Vec::new(),
            outbound_trunks: Vec::new(),
            security: SecurityConfig::default(),
            registrar: RegistrarConfig::default(),
            http: HttpConfig::default(),
        }
    }
}

/// The server's own log (what goes to stderr and the operator's journal,
/// beyond the reach of the privacy tools: so without personal data unless
/// `personal_data` is on).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Filter (tracing `EnvFilter` syntax); `RUST_LOG` overrides it.
    pub filter: String,
    /// `text` (one line per event, for people) or `json` (one object per
    /// line, for log shippers).
    pub format: LogFormat,
    /// Show caller numbers and pressed keys in clear (debugging only: the
    /// server warns when it starts with it on). Keys of `sensitive` input
    /// are never shown.
    pub personal_data: bool,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            filter: "info".to_owned(),
            format: LogFormat::Text,
            personal_data: false,
        }
    }
}

/// The log's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line.
    Json,
}

/// Reads `log` as a string (the filter) or as a table.
impl LogConfig {
    fn from_either<'de, D: serde::Deserializer<'de>>(d: D) -> Result<LogConfig, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = LogConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a log filter such as \"info\", or a [log] table")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LogConfig, E> {
                Ok(LogConfig {
                    filter: v.to_owned(),
                    ..LogConfig::default()
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<LogConfig, A::Error> {
                LogConfig::deserialize(serde::de::value::MapAccessDeserializer::new(m))
            }
        }
        d.deserialize_any(Either)
    }
}

/// `[recordings]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingsConfig {
    /// Each recording is synced to disk at least this often (a power loss
    /// loses at most this much; a killed process loses at most the 100 ms
    /// chunk in progress, whatever this is).
    pub sync_ms: u64,
}

impl Default for RecordingsConfig {
    fn default() -> RecordingsConfig {
        RecordingsConfig { sync_ms: 1000 }
    }
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://PATH`, `postgres://...`, or empty for SQLite at
    /// `DATA_DIR/dhwani.db`.
    pub url: String,
    /// Log writes are batched and flushed at least this often.
    pub flush_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            url: String::new(),
            flush_ms: 200,
        }
    }
}

/// A tenant id: 1-64 letters, digits, `-` or `_`.
pub fn valid_tenant_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A number a tenant may own: 1-32 digits with an optional leading `+`.
pub fn valid_number(n: &str) -> bool {
    let digits = n.strip_prefix('+').unwrap_or(n);
    !digits.is_empty() && digits.len() <= 32 && digits.chars().all(|c| c.is_ascii_digit())
}

/// Flows shipped inside the binary (the demo tenant of the embedded default).
pub const BUILTIN_DEMO_FLOWS: &str = "builtin:demo";

/// `[[tenants]]`: one business.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Short id (letters, digits, `-`, `_`), used in the store and logs.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// The numbers (DIDs) it owns. Each of its flows answers some of them
    /// (the flow's `numbers` setting); a flow naming a number the tenant
    /// does not own is refused.
    pub numbers: Vec<String>,
    /// Directory of its flows: every `*.ivr` file directly in it is a flow
    /// (subdirectories hold included files and prompts). Relative paths are
    /// from the config file's directory. `builtin:demo` is the demo flow
    /// shipped in the binary, unpacked into `DATA_DIR/demo-flows`.
    pub flows_dir: PathBuf,
    /// Most calls at once for this tenant (beyond: 503).
    #[serde(default = "default_tenant_max_calls")]
    pub max_calls: usize,
    /// New calls to its numbers are refused (503) while set; calls in
    /// progress go on. The admin API sets it for tenants it made.
    #[serde(default)]
    pub suspended: bool,
    /// Made through the admin API (`store::provisioning`), not read from
    /// the config file.
    #[serde(skip)]
    pub provisioned: bool,
    /// Hosts its flows may `fetch` from (see docs/ivr-dsl.md).
    #[serde(default)]
    pub fetch_allow: Vec<String>,
    /// Networks (CIDR) a fetch may reach although they are loopback,
    /// private or reserved (refused by default: see `tenants::fetch`).
    #[serde(default)]
    pub fetch_private_networks: Vec<String>,
    /// Extra CA certificates (PEM) trusted for this tenant's fetches. A
    /// test option (a local endpoint with a certificate of its own):
    /// production endpoints use the system's trust store.
    #[serde(default)]
    pub fetch_ca_file: Option<PathBuf>,
    /// Fetches of this tenant at once (beyond: `on failure` at once).
    #[serde(default = "default_fetch_max_concurrent")]
    pub fetch_max_concurrent: usize,
    /// Fetches of this tenant a second (bursts of as many; beyond:
    /// `on failure` at once).
    #[serde(default = "default_fetch_max_per_sec")]
    pub fetch_max_per_sec: u32,
    /// Said (with the flow's voice) when a fetch has taken 700 ms, so the
    /// caller is not left in silence; empty: nothing.
    #[serde(default = "default_fetch_filler")]
    pub fetch_filler: String,
    /// How long its data is kept.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Write-only recordings: the business's X25519 public key (64 hex
    /// digits). Recordings are wrapped to it, so the server can write but
    /// never read them back; the business decrypts with its private key.
    /// Unset: the server-held key in `DATA_DIR/keys/ID.kek`.
    #[serde(default)]
    pub recording_public_key: Option<String>,
    /// The recording key's file, outside the data directory in production
    /// (relative to the config file's folder). Unset: `DATA_DIR/keys/ID.kek`
    /// (or `DHWANI_KEK_ID` from the environment, which wins).
    #[serde(default)]
    pub recording_key_file: Option<PathBuf>,
    /// The outbound trunk (`[[outbound_trunks]]` name) its transfers to
    /// numbers go through. Unset: a transfer to a number fails.
    #[serde(default)]
    pub transfer_trunk: Option<String>,
    /// Number prefixes a transfer may dial (`"+91"`, `"1800"`); a number
    /// matching none is refused (toll-fraud guard: agents' phones and
    /// flows reach only these).
    #[serde(default)]
    pub transfer_allow: Vec<String>,
    /// Other SIP hosts its transfers may call (`HOST` or `HOST:PORT`): a
    /// flow's `transfer "sip:USER@HOST"` and an agent's REFER to such a
    /// URI go there over UDP (`tenants::sip_targets`). Empty: none.
    #[serde(default)]
    pub transfer_hosts: Vec<String>,
    /// Networks (CIDR) those hosts may resolve to although they are
    /// loopback, private or reserved (refused by default, like a fetch's).
    #[serde(default)]
    pub transfer_private_networks: Vec<String>,
    /// The pseudonym key's file (as above). Unset:
    /// `DATA_DIR/keys/ID.pseudonym`.
    #[serde(default)]
    pub pseudonym_key_file: Option<PathBuf>,
    /// The domain its agents register under (`sip:1001@DOMAIN`). Unset:
    /// agents register at any of the server's addresses, and an extension
    /// names one agent across all tenants without a domain.
    #[serde(default)]
    pub sip_domain: Option<String>,
    /// Agents defined in the config (more with `dhwani agents add`).
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    /// Its queues of callers waiting for agents.
    #[serde(default)]
    pub queues: Vec<QueueConfig>,
    /// Where its call events are delivered (`[[tenants.webhooks]]`; see
    /// docs/webhooks.md). Their addresses are checked like a fetch's: the
    /// tenant's `fetch_private_networks` and `fetch_ca_file` apply.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// The file of the secret its webhooks are signed with (relative to
    /// the config file's folder). Unset: `DATA_DIR/keys/ID.webhook`,
    /// created at first use (`dhwani webhooks secret` shows it).
    #[serde(default)]
    pub webhook_secret_file: Option<PathBuf>,
    /// Deliveries of this tenant at once.
    #[serde(default = "default_webhook_max_concurrent")]
    pub webhook_max_concurrent: usize,
    /// Deliveries of this tenant a second (bursts of as many).
    #[serde(default = "default_webhook_max_per_sec")]
    pub webhook_max_per_sec: u32,
    /// One delivery's time limit (connect, TLS, request and reply), ms
    /// (at most 30000).
    #[serde(default = "default_webhook_timeout_ms")]
    pub webhook_timeout_ms: u64,
    /// Attempts before an event is dead-lettered (`dhwani webhooks retry`
    /// sends it again).
    #[serde(default = "default_webhook_max_attempts")]
    pub webhook_max_attempts: u32,
    /// The first retry's delay, ms; each further one doubles it, up to
    /// `webhook_retry_max_secs`, with a fifth either way of jitter.
    #[serde(default = "default_webhook_retry_base_ms")]
    pub webhook_retry_base_ms: u64,
    /// The longest delay between two attempts, s.
    #[serde(default = "default_webhook_retry_max_secs")]
    pub webhook_retry_max_secs: u64,
}

/// The events a webhook can ask for (`events = [...]`). `step.entered` is
/// sent only to a webhook that names it.
pub const WEBHOOK_EVENTS: &[&str] = &[
    "call.started",
    "call.answered",
    "step.entered",
    "digits.collected",
    "consent.given",
    "consent.refused",
    "recording.ready",
    "call.ended",
    "consent.withdrawn",
    "erasure.done",
];

/// `[[tenants.webhooks]]`: one receiver of a tenant's events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Its name (the delivery records name it; unique in the tenant).
    #[serde(default = "default_webhook_name")]
    pub name: String,
    /// `https://` URL the events are POSTed to.
    pub url: String,
    /// The events it wants (see [`WEBHOOK_EVENTS`]); empty: all but
    /// `step.entered`.
    #[serde(default)]
    pub events: Vec<String>,
}

impl WebhookConfig {
    /// Whether it wants events of `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        if self.events.is_empty() {
            kind != "step.entered"
        } else {
            self.events.iter().any(|e| e == kind)
        }
    }
}

fn default_webhook_name() -> String {
    "main".into()
}

fn default_webhook_max_concurrent() -> usize {
    4
}

fn default_webhook_max_per_sec() -> u32 {
    20
}

fn default_webhook_timeout_ms() -> u64 {
    10_000
}

fn default_webhook_max_attempts() -> u32 {
    25
}

fn default_webhook_retry_base_ms() -> u64 {
    1000
}

fn default_webhook_retry_max_secs() -> u64 {
    600
}

impl TenantConfig {
    /// The parsed public key, if the tenant records write-only.
    pub fn public_key(&self) -> Option<[u8; 32]> {
        let hex_text = self.recording_public_key.as_deref()?;
        hex::decode(hex_text.trim())
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
    }
}

/// `[tenants.retention]`: days each class of data is kept.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Call recordings (1 to 3650).
    pub recordings_days: u64,
    /// Interaction logs (TRAI/DoT: 180 to 365).
    pub interaction_log_days: u64,
    /// CDRs (365 to 3650; the caller's number is pseudonymised once the
    /// interaction-log period has passed).
    pub cdr_days: u64,
}

impl Default for RetentionConfig {
    fn default() -> RetentionConfig {
        let p = recordings::retention::Policy::default();
        RetentionConfig {
            recordings_days: p.recordings_days,
            interaction_log_days: p.interaction_log_days,
            cdr_days: p.cdr_days,
        }
    }
}

impl RetentionConfig {
    /// As the recordings crate's policy.
    pub fn policy(&self) -> recordings::retention::Policy {
        recordings::retention::Policy {
            recordings_days: self.recordings_days,
            interaction_log_days: self.interaction_log_days,
            cdr_days: self.cdr_days,
        }
    }
}

fn default_fetch_max_concurrent() -> usize {
    16
}

fn default_fetch_max_per_sec() -> u32 {
    50
}

fn default_fetch_filler() -> String {
    "One moment, please.".into()
}

fn default_tenant_max_calls() -> usize {
    100
}

/// `[[trunks]]`: a SIP peer allowed to send calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// Name (for logs).
    pub name: String,
    /// Source networks in CIDR form (`203.0.113.0/24`, `::1/128`).
    pub networks: Vec<String>,
    /// Digest username the trunk must authenticate with (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// Digest password; `env:NAME` reads it from an environment variable.
    #[serde(default)]
    pub password: Option<String>,
    /// The trunk's networks skip the flood limits and per-source caps.
    #[serde(default)]
    pub flood_exempt: bool,
}

impl SecurityConfig {
    /// The networks exempt from flood limits: `exempt_networks` and the
    /// networks of every trunk marked `flood_exempt`.
    pub fn exempt(&self, trunks: &[TrunkConfig]) -> Vec<ipnet::IpNet> {
        let mut nets: Vec<ipnet::IpNet> = self
            .exempt_networks
            .iter()
            .filter_map(|n| parse_net(n).ok())
            .collect();
        for t in trunks.iter().filter(|t| t.flood_exempt) {
            nets.extend(t.nets());
        }
        nets
    }
}

impl TrunkConfig {
    /// The parsed networks.
    pub fn nets(&self) -> Vec<ipnet::IpNet> {
        self.networks
            .iter()
            .filter_map(|n| parse_net(n).ok())
            .collect()
    }

    /// The password, read from the environment for `env:NAME`.
    pub fn resolved_password(&self) -> Option<String> {
        let p = self.password.as_ref()?;
        match p.strip_prefix("env:") {
            Some(var) => std::env::var(var).ok(),
            None => Some(p.clone()),
        }
    }
}

/// `[[outbound_trunks]]`: a SIP trunk calls go out through (a flow's
/// `transfer "NUMBER"`, an agent's transfer to a number), over UDP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundTrunkConfig {
    /// Name, which a tenant's `transfer_trunk` names.
    pub name: String,
    /// Where INVITEs go: `IP:PORT` or `HOST:PORT` (resolved at start).
    pub address: String,
    /// Digest username for the trunk's 401/407 (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// Digest password; `env:NAME` reads it from an environment variable.
    #[serde(default)]
    pub password: Option<String>,
    /// The From user the trunk sees. Unset: the number the caller dialled
    /// (the tenant's own number).
    #[serde(default)]
    pub caller_id: Option<String>,
}

impl OutboundTrunkConfig {
    /// The password, read from the environment for `env:NAME`.
    pub fn resolved_password(&self) -> Option<String> {
        let p = self.password.as_ref()?;
        match p.strip_prefix("env:") {
            Some(var) => std::env::var(var).ok(),
            None => Some(p.clone()),
        }
    }

    /// The trunk's address (the first one its name resolves to).
    pub fn resolve(&self) -> Option<std::net::SocketAddr> {
        std::net::ToSocketAddrs::to_socket_addrs(&self.address)
            .ok()?
            .next()
    }
}

/// `10.0.0.0/8`, `::1/128`, or a bare address (a /32 or /128).
pub fn parse_net(s: &str) -> Result<ipnet::IpNet, BadValue> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| BadValue(format!("`{s}` is not a network like 10.0.0.0/8 or ::1/128")))
}

/// A value that does not parse, with what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadValue(pub String);

/// `[sip]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Listening sockets: `udp:ADDR:PORT`, `tcp:...`, `tls:...`, or a bare
    /// `ADDR:PORT` for UDP and TCP both.
    pub listen: Vec<String>,
    /// PEM certificate chain for TLS listeners.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS listeners.
    pub tls_key: Option<PathBuf>,
    /// RFC 3261 T1 in ms.
    pub t1_ms: u64,
    /// RFC 3261 T2 in ms.
    pub t2_ms: u64,
    /// RFC 3261 T4 in ms.
    pub t4_ms: u64,
    /// Largest message accepted, bytes (larger: 513).
    pub max_message_bytes: usize,
    /// Most header fields in one message.
    pub max_headers: usize,
    /// Longest header line, bytes.
    pub max_header_line_bytes: usize,
    /// Most Via values in one message.
    pub max_vias: usize,
    /// Most transactions alive at once (beyond: 503).
    pub max_transactions: usize,
    /// Most TCP/TLS connections at once.
    pub max_connections: usize,
    /// Most TCP/TLS connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Idle TCP/TLS connections are closed after this many seconds.
    pub idle_timeout_secs: u64,
    /// A TCP/TLS peer must complete a started message within this many seconds.
    pub message_timeout_secs: u64,
    /// A TLS peer must complete its handshake within this many seconds.
    pub tls_handshake_timeout_secs: u64,
    /// The user part of our Contact and the Server header's product.
    pub user_agent: String,
}

impl Default for SipConfig {
    fn default() -> SipConfig {
        SipConfig {
            listen: vec!["udp:127.0.0.1:5060".into(), "tcp:127.0.0.1:5060".into()],
            tls_cert: None,
            tls_key: None,
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            max_message_bytes: 65_535,
            max_headers: 128,
            max_header_line_bytes: 4096,
            max_vias: 70,
            max_transactions: 200_000,
            max_connections: 4096,
            max_connections_per_ip: 256,
            idle_timeout_secs: 600,
            message_timeout_secs: 10,
            tls_handshake_timeout_secs: 10,
            user_agent: "Dhwani".into(),
        }
    }
}

/// `[media]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// The address RTP sockets bind to and SDP announces.
    pub rtp_ip: IpAddr,
    /// RTP port range, `LOW-HIGH` (even ports are used).
    pub rtp_ports: String,
    /// Codec preference, first match with the offer wins.
    pub codecs: Vec<String>,
    /// No RTP for this long ends the call.
    pub timeout_secs: u64,
    /// Listen for DTMF tones in the audio as well as RFC 4733 and INFO.
    pub inband_dtmf: bool,
}

impl Default for MediaConfig {
    fn default() -> MediaConfig {
        MediaConfig {
            rtp_ip: IpAddr::from([127, 0, 0, 1]),
            rtp_ports: "10000-20000".into(),
            codecs: vec!["PCMU".into(), "PCMA".into()],
            timeout_secs: 30,
            inband_dtmf: true,
        }
    }
}

/// `[calls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallsConfig {
    /// Most calls at once (beyond: 503 with Retry-After).
    pub max_calls: usize,
    /// No call lasts longer than this: we hang up (BYE) after it.
    pub max_call_secs: u64,
    /// On SIGTERM, calls in progress may run this long before we hang up.
    pub drain_secs: u64,
    /// Ring (180) for this many ms before answering; 0 answers at once.
    pub answer_after_ms: u64,
    /// Retry-After seconds in a 503.
    pub retry_after_secs: u32,
    /// Timeline events one call may write (then one `limit` event).
    pub max_timeline_events: u32,
    /// Keys per second a caller may send; extra keys are ignored.
    pub max_dtmf_per_sec: u32,
}

impl Default for CallsConfig {
    fn default() -> CallsConfig {
        CallsConfig {
            max_calls: 1000,
            max_call_secs: 4 * 3600,
            drain_secs: 30,
            answer_after_ms: 0,
            retry_after_secs: 5,
            max_timeline_events: 2000,
            max_dtmf_per_sec: 10,
        }
    }
}

/// One listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// UDP.
    Udp(SocketAddr),
    /// TCP.
    Tcp(SocketAddr),
    /// TLS.
    Tls(SocketAddr),
}

/// Parses one `--listen` / `sip.listen` entry; a bare address means UDP and TCP.
pub fn parse_listen(s: &str) -> Result<Vec<Listen>, BadValue> {
    let (kind, addr) = match s.split_once(':') {
        Some((k @ ("udp" | "tcp" | "tls"), rest)) => (Some(k), rest),
        _ => (None, s),
    };
    let addr: SocketAddr = addr.parse().map_err(|_| {
        BadValue(format!(
            "`{s}` is not [udp:|tcp:|tls:]ADDR:PORT (IPv6: [::1]:5060)"
        ))
    })?;
    Ok(match kind {
        Some("udp") => vec![Listen::Udp(addr)],
        Some("tcp") => vec![Listen::Tcp(addr)],
        Some("tls") => vec![Listen::Tls(addr)],
        _ => vec![Listen::Udp(addr), Listen::Tcp(addr)],
    })
}

/// Parses `LOW-HIGH`.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), BadValue> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| BadValue(format!("`{s}` is not LOW-HIGH")))?;
    let lo: u16 = a
        .trim()
        .parse()
        .map_err(|_| BadValue(format!("`{a}` is not a port")))?;
    let hi: u16 = b
        .trim()
        .parse()
        .map_err(|_| BadValue(format!("`{b}` is not a port")))?;
    if lo == 0 || lo >= hi {
        return Err(BadValue(format!("`{s}`: need 0 < LOW < HIGH")));
    }
    Ok((lo, hi))
}

impl HttpConfig {
    /// The listen address (None: no HTTP server).
    pub fn addr(&self) -> Result<Option<std::net::SocketAddr>, String> {
        if self.listen.trim().is_empty() {
            return Ok(None);
        }
        self.listen.trim().parse().map(Some).map_err(|_| {
            format!(
                "`{}` is not ADDR:PORT (e.g. 127.0.0.1:8080, [::1]:8080); empty turns the HTTP server off",
                self.listen
            )
        })
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        self.addr().map_err(|m| ("http.listen", m))?;
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(("http.tls_cert", "tls_cert and tls_key go together".into()));
        }
        let checks: [(&str, bool, &str); 6] = [
            (
                "http.max_body_bytes",
                !(1024..=64 << 20).contains(&self.max_body_bytes),
                "must be 1024 to 67108864",
            ),
            (
                "http.request_timeout_secs",
                !(1..=3600).contains(&self.request_timeout_secs),
                "must be 1 to 3600",
            ),
            (
                "http.header_timeout_secs",
                !(1..=300).contains(&self.header_timeout_secs),
                "must be 1 to 300",
            ),
            (
                "http.max_connections",
                !(1..=100_000).contains(&self.max_connections),
                "must be 1 to 100000",
            ),
            (
                "http.auth_max_failures",
                !(1..=10).contains(&self.auth_max_failures),
                "must be 1 to 10",
            ),
            (
                "http.auth_lockout_secs",
                self.auth_lockout_secs < 600 || self.auth_window_secs < 1,
                "must be at least 600 (and auth_window_secs at least 1)",
            ),
        ];
        for (key, bad, msg) in checks {
            if bad {
                return Err((key, msg.into()));
            }
        }
        Ok(())
    }
}

impl Config {
    /// Loads `path`, or the embedded default when `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => Config::parse(DEFAULT_TOML, "embedded default config"),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_owned(),
                    source,
                })?;
                Config::parse(&text, &p.display().to_string())
            }
        }
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        config.validate(text, origin)?;
        Ok(config)
    }

    fn validate(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            line: line_of(text, key),
            key: key.to_owned(),
            message,
        };
        for l in &self.sip.listen {
            parse_listen(l).map_err(|m| invalid("sip.listen", m.0))?;
        }
        parse_port_range(&self.media.rtp_ports).map_err(|m| invalid("media.rtp_ports", m.0))?;
        for n in &self.security.exempt_networks {
            parse_net(n).map_err(|m| invalid("security.exempt_networks", m.0))?;
        }
        if self.media.codecs.is_empty() {
            return Err(invalid("media.codecs", "name at least one codec".into()));
        }
        for c in &self.media.codecs {
            if media::codec::Codec::named(c).is_none() {
                return Err(invalid(
                    "media.codecs",
                    format!("`{c}` is not supported; use PCMU, PCMA, G722 or L16"),
                ));
            }
        }
        let checks: [(&str, bool, &str); 22] = [
            (
                "security.flood_messages_per_sec",
                self.security.flood_messages_per_sec == 0,
                "must be > 0",
            ),
            (
                "security.flood_invites_per_sec",
                self.security.flood_invites_per_sec == 0,
                "must be > 0",
            ),
            (
                "security.max_transactions_per_source",
                self.security.max_transactions_per_source == 0,
                "must be > 0",
            ),
            (
                "security.max_calls_per_source",
                self.security.max_calls_per_source == 0,
                "must be > 0",
            ),
            (
                "security.peer_log_lines",
                !(1..=100).contains(&self.security.peer_log_lines),
                "must be 1 to 100",
            ),
            (
                "security.peer_log_interval_secs",
                !(1..=3600).contains(&self.security.peer_log_interval_secs),
                "must be 1 to 3600",
            ),
            (
                "calls.max_timeline_events",
                self.calls.max_timeline_events < 100,
                "must be at least 100",
            ),
            (
                "calls.max_dtmf_per_sec",
                !(1..=100).contains(&self.calls.max_dtmf_per_sec),
                "must be 1 to 100",
            ),
            (
                "security.auth_max_failures",
                !(1..=10).contains(&self.security.auth_max_failures),
                "must be 1 to 10",
            ),
            (
                "security.auth_window_secs",
                self.security.auth_window_secs < 60,
                "must be at least 60",
            ),
            (
                "security.auth_lockout_secs",
                self.security.auth_lockout_secs < 600,
                "must be at least 600 (ten minutes)",
            ),
            (
                "security.auth_user_max_failures",
                self.security.auth_user_max_failures <= self.security.auth_max_failures,
                "must be more than auth_max_failures (one source is locked first)",
            ),
            (
                "security.auth_user_lockout_secs",
                !(1..=600).contains(&self.security.auth_user_lockout_secs),
                "must be 1 to 600",
            ),
            ("sip.t1_ms", self.sip.t1_ms == 0, "must be > 0"),
            (
                "sip.t2_ms",
                self.sip.t2_ms < self.sip.t1_ms,
                "must be >= t1_ms",
            ),
            (
                "sip.max_message_bytes",
                self.sip.max_message_bytes < 1024 || self.sip.max_message_bytes > 1 << 20,
                "must be 1024..=1048576",
            ),
            ("sip.max_headers", self.sip.max_headers < 8, "must be >= 8"),
            (
                "sip.max_header_line_bytes",
                self.sip.max_header_line_bytes < 256,
                "must be >= 256",
            ),
            ("sip.max_vias", self.sip.max_vias == 0, "must be > 0"),
            ("calls.max_calls", self.calls.max_calls == 0, "must be > 0"),
            (
                "media.timeout_secs",
                self.media.timeout_secs == 0,
                "must be > 0",
            ),
            (
                "calls.max_call_secs",
                self.calls.max_call_secs == 0,
                "must be > 0",
            ),
        ];
        for (key, bad, msg) in checks {
            if bad {
                return Err(invalid(key, msg.into()));
            }
        }
        self.validate_tenants(&invalid)?;
        self.registrar
            .validate()
            .map_err(|m| invalid("registrar", m.0))?;
        if self.sip.tls_cert.is_some() != self.sip.tls_key.is_some() {
            return Err(invalid(
                "sip.tls_cert",
                "tls_cert and tls_key go together".into(),
            ));
        }
        self.http.validate().map_err(|(k, m)| invalid(k, m))?;
        Ok(())
    }

    fn validate_tenants(
        &self,
        invalid: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let url = &self.store.url;
        if !(url.is_empty()
            || url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "store.url",
                format!(
                    "`{url}`: use sqlite://PATH or postgres://USER@HOST/DB (empty: SQLite in data_dir)"
                ),
            ));
        }
        let mut owner: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
        let mut ids = std::collections::HashSet::new();
        for t in &self.tenants {
            if !valid_tenant_id(&t.id) {
                return Err(invalid(
                    "id",
                    format!("tenant id `{}`: use 1-64 letters, digits, - or _", t.id),
                ));
            }
            if !ids.insert(t.id.as_str()) {
                return Err(invalid("id", format!("tenant id `{}` is used twice", t.id)));
            }
            t.retention
                .policy()
                .validate()
                .map_err(|m| invalid("retention", format!("tenant `{}`: {m}", t.id)))?;
            if t.recording_public_key.is_some() && t.public_key().is_none() {
                return Err(invalid(
                    "recording_public_key",
                    format!("tenant `{}`: an X25519 public key is 64 hex digits", t.id),
                ));
            }
            if t.max_calls == 0 {
                return Err(invalid(
                    "max_calls",
                    format!("tenant `{}`: must be > 0", t.id),
                ));
            }
            for n in &t.numbers {
                if !valid_number(n) {
                    return Err(invalid(
                        "numbers",
                        format!(
                            "tenant `{}`: `{n}` is not a number (digits with an optional leading +)",
                            t.id
                        ),
                    ));
                }
                // Routing ignores a leading +, so ownership does too.
                if let Some(other) = owner.insert(n.trim_start_matches('+'), &t.id) {
                    return Err(invalid(
                        "numbers",
                        format!("number {n} belongs to both `{other}` and `{}`", t.id),
                    ));
                }
            }
            let mut exts = std::collections::HashSet::new();
            for a in &t.agents {
                a.validate()
                    .map_err(|m| invalid("agents", format!("tenant `{}`: {m}", t.id)))?;
                if !exts.insert(a.extension.as_str()) {
                    return Err(invalid(
                        "agents",
                        format!("tenant `{}`: agent {} is defined twice", t.id, a.extension),
                    ));
                }
            }
            let mut names = std::collections::HashSet::new();
            for q in &t.queues {
                q.validate()
                    .map_err(|m| invalid("queues", format!("tenant `{}`: {m}", t.id)))?;
                if !names.insert(q.name.as_str()) {
                    return Err(invalid(
                        "queues",
                        format!("tenant `{}`: queue `{}` is defined twice", t.id, q.name),
                    ));
                }
            }
            for host in &t.fetch_allow {
                ivr_dsl::allow::AllowList::new([host.as_str()])
                    .map_err(|e| invalid("fetch_allow", format!("tenant `{}`: {e}", t.id)))?;
            }
            let mut hooks = std::collections::HashSet::new();
            for w in &t.webhooks {
                let bad = |m: String| invalid("webhooks", format!("tenant `{}`: {m}", t.id));
                if !hooks.insert(w.name.as_str()) {
                    return Err(bad(format!(
                        "two webhooks are named `{}`: give each its own `name`",
                        w.name
                    )));
                }
                let ok_name = !w.name.is_empty()
                    && w.name.len() <= 64
                    && w.name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !ok_name {
                    return Err(bad(format!(
                        "webhook name `{}`: use letters, digits, `-` and `_` (at most 64)",
                        w.name
                    )));
                }
                let host = w.url.strip_prefix("https://").unwrap_or("");
                if host.is_empty() || host.starts_with('/') {
                    return Err(bad(format!(
                        "webhook `{}`: the url must be https://HOST/... (events carry callers' data)",
                        w.name
                    )));
                }
                for e in &w.events {
                    if !WEBHOOK_EVENTS.contains(&e.as_str()) {
                        return Err(bad(format!(
                            "webhook `{}`: no event `{e}`; the events are {}",
                            w.name,
                            WEBHOOK_EVENTS.join(", ")
                        )));
                    }
                }
            }
            if !(100..=30_000).contains(&t.webhook_timeout_ms) {
                return Err(invalid(
                    "webhook_timeout_ms",
                    format!("tenant `{}`: give 100 to 30000 (ms)", t.id),
                ));
            }
            if t.webhook_max_attempts == 0 || t.webhook_max_concurrent == 0 {
                return Err(invalid(
                    "webhook_max_attempts",
                    format!(
                        "tenant `{}`: webhook_max_attempts and webhook_max_concurrent must be at least 1",
                        t.id
                    ),
                ));
            }
            for n in &t.fetch_private_networks {
                n.parse::<ipnet::IpNet>().map_err(|_| {
                    invalid(
                        "fetch_private_networks",
                        format!(
                            "tenant `{}`: `{n}` is not a network (CIDR, e.g. 10.1.0.0/16)",
                            t.id
                        ),
                    )
                })?;
            }
        }
        for o in &self.outbound_trunks {
            if o.username.is_some() != o.password.is_some() {
                return Err(invalid(
                    "username",
                    format!(
                        "outbound trunk `{}`: username and password go together",
                        o.name
                    ),
                ));
            }
            if !o.address.contains(':') {
                return Err(invalid(
                    "address",
                    format!(
                        "outbound trunk `{}`: write HOST:PORT (e.g. 203.0.113.5:5060)",
                        o.name
                    ),
                ));
            }
        }
        for t in &self.tenants {
            if let Some(name) = &t.transfer_trunk
                && !self.outbound_trunks.iter().any(|o| &o.name == name)
            {
                return Err(invalid(
                    "transfer_trunk",
                    format!("tenant `{}`: no [[outbound_trunks]] named `{name}`", t.id),
                ));
            }
            for h in &t.transfer_hosts {
                if transfer_host(h).is_none() {
                    return Err(invalid(
                        "transfer_hosts",
                        format!(
                            "tenant `{}`: `{h}` is not HOST or HOST:PORT (e.g. pbx.example.in, 203.0.113.7:5070, [2001:db8::7]:5060)",
                            t.id
                        ),
                    ));
                }
            }
            for n in &t.transfer_private_networks {
                n.parse::<ipnet::IpNet>().map_err(|_| {
                    invalid(
                        "transfer_private_networks",
                        format!(
                            "tenant `{}`: `{n}` is not a network (CIDR, e.g. 10.1.0.0/16)",
                            t.id
                        ),
                    )
                })?;
            }
            if t.transfer_trunk.is_some() && t.transfer_allow.is_empty() {
                return Err(invalid(
                    "transfer_allow",
                    format!(
                        "tenant `{}`: list the number prefixes transfers may dial (e.g. [\"+91\"]); none are allowed by default",
                        t.id
                    ),
                ));
            }
        }
        for tr in &self.trunks {
            if tr.networks.is_empty() {
                return Err(invalid(
                    "networks",
                    format!(
                        "trunk `{}`: list the source networks it calls from",
                        tr.name
                    ),
                ));
            }
            for n in &tr.networks {
                parse_net(n)
                    .map_err(|m| invalid("networks", format!("trunk `{}`: {m}", tr.name)))?;
            }
            if tr.username.is_some() != tr.password.is_some() {
                return Err(invalid(
                    "username",
                    format!("trunk `{}`: username and password go together", tr.name),
                ));
            }
        }
        Ok(())
    }

    /// All listening sockets.
    pub fn listens(&self) -> Vec<Listen> {
        self.sip
            .listen
            .iter()
            .filter_map(|l| parse_listen(l).ok())
            .flatten()
            .collect()
    }

    /// RFC 3261 timers.
    pub fn timers(&self) -> sip::transaction::Timers {
        sip::transaction::Timers {
            t1: Duration::from_millis(self.sip.t1_ms),
            t2: Duration::from_millis(self.sip.t2_ms),
            t4: Duration::from_millis(self.sip.t4_ms),
        }
    }

    /// Parser limits.
    pub fn limits(&self) -> sip::message::Limits {
        sip::message::Limits {
            max_message_bytes: self.sip.max_message_bytes,
            max_headers: self.sip.max_headers,
            max_header_line_bytes: self.sip.max_header_line_bytes,
            max_vias: self.sip.max_vias,
        }
    }
}

/// The line on which the last segment of a dotted key is set (best effort,
/// for error messages): the first `name =` after the `[section]` header.
fn line_of(text: &str, dotted: &str) -> usize {
    let (section, name) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    let mut in_section = section.is_empty();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            in_section = t.trim_matches(|c| c == '[' || c == ']').trim() == section;
            continue;
        }
        if in_section
            && let Some((k, _)) = t.split_once('=')
            && k.trim() == name
        {
            return i + 1;
        }
    }
    0
}

/// A `transfer_hosts` entry (`host`, `host:port`, `[v6]`, `[v6]:port`)
/// as the host (lower-case; IPv6 without brackets, in its canonical form)
/// and the one port it may be called at (`None`: any); `None` when it is
/// neither.
pub fn transfer_host(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let h = h.parse::<std::net::Ipv6Addr>().ok()?.to_string();
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':')?.parse::<u16>().ok()?)),
        }
    } else {
        let (h, p) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().ok()?)),
            None => (s, None),
        };
        sip::uri::Host::parse(&bytes::Bytes::copy_from_slice(h.as_bytes())).ok()?;
        (h.to_ascii_lowercase(), p)
    };
    (port != Some(0)).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_loads() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.listens().len(), 2);
        assert_eq!(c.calls.max_call_secs, 4 * 3600);
        assert_eq!(c.tenants.len(), 1);
        assert_eq!(c.tenants[0].flows_dir, Path::new(BUILTIN_DEMO_FLOWS));
        assert_eq!(c.trunks[0].nets().len(), 2);
    }

    #[test]
    fn an_unknown_key_names_the_key_and_line() {
        let err = Config::parse("[sip]\nlisten = []\nlisen = []\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn a_bad_value_names_the_key_and_line() {
        let err = Config::parse("[media]\n\nrtp_ports = \"20000-100\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.toml:3: `media.rtp_ports`"), "{err}");
        let err = Config::parse("[sip]\nlisten = [\"udp:nope\"]\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.toml:2: `sip.listen`"), "{err}");
        let err = Config::parse("[calls]\nmax_calls = \"many\"\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_calls") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn transfer_host_mistakes_are_named() {
        let tenant = "[[tenants]]\nid = \"t\"\nnumbers = [\"1\"]\nflows_dir = \"f\"\n";
        for (text, want) in [
            (
                format!("{tenant}transfer_hosts = [\"sip:desk@pbx.example\"]\n"),
                "`transfer_hosts`",
            ),
            (
                format!("{tenant}transfer_hosts = [\"pbx.example:0\"]\n"),
                "is not HOST or HOST:PORT",
            ),
            (
                format!("{tenant}transfer_private_networks = [\"10.0.0.0/40\"]\n"),
                "`transfer_private_networks`",
            ),
        ] {
            let err = Config::parse(&text, "x.toml").unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
        let ok = Config::parse(
            &format!("{tenant}transfer_hosts = [\"PBX.example\", \"[2001:DB8::7]:5070\"]\ntransfer_private_networks = [\"10.0.0.0/8\"]\n"),
            "x.toml",
        )
        .expect("valid");
        assert_eq!(ok.tenants[0].transfer_hosts.len(), 2);
        assert_eq!(
            transfer_host("[2001:DB8:0::7]:5070"),
            Some(("2001:db8::7".to_owned(), Some(5070)))
        );
        assert_eq!(
            transfer_host("PBX.example"),
            Some(("pbx.example".to_owned(), None))
        );
    }

    #[test]
    fn outbound_trunk_mistakes_are_named() {
        let tenant = "[[tenants]]\nid = \"t\"\nnumbers = [\"1\"]\nflows_dir = \"f\"\n";
        let trunk = "[[outbound_trunks]]\nname = \"carrier\"\naddress = \"127.0.0.1:5070\"\n";
        for (text, want) in [
            (
                format!("{tenant}transfer_trunk = \"nope\"\ntransfer_allow = [\"+91\"]\n"),
                "no [[outbound_trunks]] named `nope`",
            ),
            (
                format!("{tenant}transfer_trunk = \"carrier\"\n{trunk}"),
                "list the number prefixes",
            ),
            (
                "[[outbound_trunks]]\nname = \"c\"\naddress = \"carrier\"\n".to_owned(),
                "write HOST:PORT",
            ),
            (
                format!("{trunk}username = \"u\"\n"),
                "username and password go together",
            ),
        ] {
            let err = Config::parse(&text, "x.toml").unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
        let ok = Config::parse(
            &format!("{tenant}transfer_trunk = \"carrier\"\ntransfer_allow = [\"+91\"]\n{trunk}"),
            "x.toml",
        )
        .expect("valid");
        assert_eq!(
            ok.outbound_trunks[0].resolve().map(|a| a.port()),
            Some(5070)
        );
    }

    #[test]
    fn tenant_and_trunk_mistakes_are_named() {
        let cases = [
            (
                "[[tenants]]\nid = \"a b\"\nnumbers = []\nflows_dir = \"f\"\n",
                "tenant id `a b`",
            ),
            (
                "[[tenants]]\nid = \"a\"\nnumbers = [\"1000\"]\nflows_dir = \"f\"\n[[tenants]]\nid = \"b\"\nnumbers = [\"+1000\"]\nflows_dir = \"g\"\n",
                "belongs to both",
            ),
            (
                "[[tenants]]\nid = \"a\"\nnumbers = [\"1000\"]\nflows_dir = \"f\"\n[[tenants]]\nid = \"b\"\nnumbers = [\"1000\"]\nflows_dir = \"g\"\n",
                "belongs to both `a` and `b`",
            ),
            (
                "[[tenants]]\nid = \"a\"\nnumbers = [\"ten\"]\nflows_dir = \"f\"\n",
                "`ten` is not a number",
            ),
            (
                "[[trunks]]\nname = \"t\"\nnetworks = [\"10.0.0.0/33\"]\n",
                "not a network",
            ),
            (
                "[[trunks]]\nname = \"t\"\nnetworks = [\"10.0.0.0/8\"]\nusername = \"u\"\n",
                "username and password go together",
            ),
            (
                "[store]\nurl = \"mysql://x\"\n",
                "use sqlite://PATH or postgres://",
            ),
        ];
        for (toml, want) in cases {
            let err = Config::parse(toml, "x.toml").unwrap_err().to_string();
            assert!(err.contains(want), "{toml}: {err}");
        }
    }

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen("127.0.0.1:5070").unwrap().len(), 2);
        assert_eq!(
            parse_listen("tls:[::1]:5061").unwrap(),
            vec![Listen::Tls("[::1]:5061".parse().unwrap())]
        );
        assert!(parse_listen("sctp:127.0.0.1:1").is_err());
    }
}
