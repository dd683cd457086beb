//! The Dhwani server: configuration, tenants and routing, the SIP
//! user-agent core, the per-call task that runs a flow against the media
//! engine, the store (timelines and CDRs), recording keys, privacy (rights,
//! holds, retention, audit) and the command line. The library crates do the
//! protocol work: `sip` (messages, transactions, dialogs, transports),
//! `media`, `ivr-dsl` and `recordings`.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod call_task;
pub mod callscmd;
pub mod cli;
pub mod config;
pub mod flowcmd;
pub mod flowmedia;
pub mod gate;
pub mod keystore;
pub mod privacy;
pub mod privacycmd;
pub mod reccmd;
pub mod rtp_ports;
pub mod server;
pub mod store;
pub mod tenants;
pub mod tls;
pub mod ua;
