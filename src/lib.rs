//! The Dhwani server: configuration, tenants and routing, the SIP
//! user-agent core, the per-call task that runs a flow against the media
//! engine, the store (timelines and CDRs), recording keys, privacy (rights,
//! holds, retention, audit) and the command line. The library crates do the
//! protocol work: `sip` (messages, transactions, dialogs, transports),
//! `media`, `ivr-dsl` and `recordings`.
//!
//! Layers, top to bottom (`tests/layering.rs` keeps them true: a module
//! may use the ones below it, never one above):
//!
//! ```text
//!   cli        the command line: one file per subcommand group
//!   server     startup wiring, the SIP driver, drain, periodic jobs, RTP ports, TLS
//!   api        the admin HTTP API: keys and roles, OpenAPI, /metrics, /health
//!   call  ua   the call task (flow + media) and the sans-IO user-agent core
//!   tenants    registry, routing, the admission gate, flow loading and reload
//!   privacy    keys, audit, export, erase, sweep, consent, recording file layout
//!   metrics    Prometheus metrics and the live-call table (beside privacy)
//!   store      timelines, CDRs, holds, the consent registry (SQLite / PostgreSQL)
//!   config     the config file and its defaults
//!   redact     how the server's own log names callers and keys (beside config)
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod acd;
pub mod api;
pub mod call;
pub mod cli;
pub mod config;
pub mod metrics;
pub mod privacy;
pub mod redact;
pub mod server;
pub mod store;
pub mod tenants;
pub mod ua;
