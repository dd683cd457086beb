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
pub mod transaction;
#[cfg(feature = "tokio")]
pub mod transport;
pub mod uas;
pub mod uri;

pub use error::{Error, Result};
