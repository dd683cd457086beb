//! SIP transactions (RFC 3261 §17): four sans-IO state machines and a
//! [`Layer`] that matches messages to them (§17.1.3, §17.2.3) and keeps
//! their deadlines in one schedule.
//!
//! Nothing here reads a clock or touches a socket. The driver feeds
//! received messages and `now`, drains [`Layer::poll_output`] (bytes to send
//! to a peer, events for the transaction user) and sleeps until
//! [`Layer::poll_timeout`].
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use sip::message::{parse_message, Limits, Message, ResponseBuilder, StatusCode};
//! use sip::transaction::{Layer, LayerOutput, Timers};
//!
//! let raw = Bytes::from_static(b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\nFrom: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
//! let Message::Request(req) = parse_message(raw, &Limits::default()).unwrap() else { unreachable!() };
//! let mut layer: Layer<&str> = Layer::new(Timers::default(), 10_000);
//! let now = Instant::now();
//! let tu = layer.handle_request(now, req, "peer", false).unwrap().unwrap();
//! let ok = ResponseBuilder::new(&tu.request, StatusCode::OK).to_tag(b"t").build();
//! layer.respond(now, tu.id, ok).unwrap();
//! assert!(matches!(layer.poll_output(), Some(LayerOutput::Transmit { peer: "peer", .. })));
//! ```

mod client_invite;
mod client_non_invite;
mod layer;
mod server_invite;
mod server_non_invite;
mod timer;

use crate::message::Response;

pub use client_invite::{ClientInvite, ack_for_failure};
pub use client_non_invite::ClientNonInvite;
pub use layer::{Key, Layer, LayerOutput, TuRequest, TxId};
pub use server_invite::ServerInvite;
pub use server_non_invite::ServerNonInvite;
pub use timer::{TimerName, TimerTable, Timers};

/// The states of each machine.
pub mod state {
    pub use super::client_invite::State as ClientInvite;
    pub use super::client_non_invite::State as ClientNonInvite;
    pub use super::server_invite::State as ServerInvite;
    pub use super::server_non_invite::State as ServerNonInvite;
}
/// Inputs of the server machines.
pub mod input {
    pub use super::server_invite::Input as ServerInvite;
    pub use super::server_non_invite::Input as ServerNonInvite;
}

/// What a transaction machine emits.
#[derive(Debug, Clone)]
pub enum Output {
    /// Bytes to send to the transaction's peer.
    Transmit(bytes::Bytes),
    /// Something for the transaction user.
    Event(TxEvent),
}

/// Events for the transaction user.
#[derive(Debug, Clone)]
pub enum TxEvent {
    /// A response for a client transaction.
    Response(Response),
    /// Timer B, F or H fired: the peer never answered (or never ACKed).
    Timeout,
    /// The transaction ended and was removed.
    Terminated,
}
