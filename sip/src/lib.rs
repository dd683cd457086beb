//! SIP for Dhwani (RFC 3261 and friends).
//!
//! This crate owns everything about SIP messages and their state machines:
//!
//! - [`message`]: the message model and a zero-copy parser and serializer
//!   over [`bytes::Bytes`]; [`header`] and [`uri`]: typed values parsed on
//!   demand; [`sdp`]: the small SDP model a UAS needs for offer/answer.
//! - [`transaction`]: the four transaction state machines of RFC 3261 §17,
//!   and [`dialog`]: UAS dialogs of §12. Both are sans-IO: time is passed in
//!   (`now: Instant`), nothing here reads a clock, opens a socket or spawns.
//! - [`uas`]: the request checks of §8.2 (405, 416, 420, 482, 483, 400...).
//! - [`auth`]: digest authentication (RFC 7616, RFC 2617).
//! - `codec` and `transport` (feature `tokio`, on by default): the thin tokio
//!   layer that frames streams and moves bytes over UDP, TCP and TLS.
//!
//! What it leaves to others: deciding what a call does (the server), media
//! (the `media` crate), and all configuration files.
//!
//! The transaction layer's run loop, on fake time: a request comes in, the
//! transaction user answers it, a retransmission of the request is
//! absorbed (the layer resends the answer), and the transaction ends at
//! Timer J. A driver does exactly this with sockets and a timer.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use sip::message::{parse_message, Limits, Message, ResponseBuilder, StatusCode};
//! use sip::transaction::{Layer, LayerOutput, Timers, TxEvent};
//!
//! let raw = Bytes::from_static(
//!     b"OPTIONS sip:1000@127.0.0.1 SIP/2.0\r\n\
//!       Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK7\r\n\
//!       From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:1000@127.0.0.1>\r\n\
//!       Call-ID: c7\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
//! let peer = "127.0.0.1:5070";
//! let mut layer: Layer<&str> = Layer::new(Timers::default(), 1000);
//! let mut now = Instant::now();
//! let mut sent = 0;
//! for round in 0..2 {
//!     let Message::Request(req) = parse_message(raw.clone(), &Limits::default()).unwrap() else { panic!() };
//!     // New requests reach the transaction user; a retransmission does not.
//!     if let Some(tu) = layer.handle_request(now, req, peer, false).unwrap() {
//!         assert_eq!(round, 0);
//!         let ok = ResponseBuilder::new(&tu.request, StatusCode::OK).to_tag(b"t").build();
//!         layer.respond(now, tu.id, ok).unwrap();
//!     }
//!     // Drain the outputs after every input, then ask when to wake up.
//!     while let Some(out) = layer.poll_output() {
//!         if let LayerOutput::Transmit { .. } = out { sent += 1; }
//!     }
//!     now += Duration::from_millis(100);
//! }
//! assert_eq!(sent, 2, "the 200 and its resend for the retransmission");
//! let mut ended = false;
//! while let Some(wake) = layer.poll_timeout() {
//!     now = wake;
//!     layer.handle_timeout(now);
//!     while let Some(out) = layer.poll_output() {
//!         ended |= matches!(out, LayerOutput::Event { event: TxEvent::Terminated, .. });
//!     }
//! }
//! assert!(ended && layer.is_empty(), "Timer J (64*T1) removed the transaction");
//! ```
//!
//! Parsing alone:
//!
//! ```
//! use bytes::Bytes;
//! use sip::message::{parse_message, Limits, Message};
//!
//! let raw = Bytes::from_static(
//!     b"OPTIONS sip:1000@127.0.0.1 SIP/2.0\r\n\
//!       Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
//!       From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:1000@127.0.0.1>\r\n\
//!       Call-ID: c1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
//! let Message::Request(req) = parse_message(raw, &Limits::default()).unwrap() else { panic!() };
//! req.validate().unwrap();
//! assert_eq!(req.cseq().unwrap().seq, 1);
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![warn(missing_docs)]

pub mod auth;
#[cfg(feature = "tokio")]
pub mod codec;
pub mod dialog;
mod error;
pub mod header;
pub mod message;
pub mod sdp;
pub mod shrink;
pub mod transaction;
#[cfg(feature = "tokio")]
pub mod transport;
pub mod uas;
pub mod uri;

pub use error::{Error, Result};
