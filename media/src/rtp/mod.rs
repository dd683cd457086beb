//! RTP and RTCP for one call leg: [`Session`] (a sans-IO state machine over
//! one UDP port pair), our own wire readers for peer bytes ([`packet`],
//! [`rtcp`]), and the reception statistics of RFC 3550 ([`stats`]).

pub mod id;
pub mod packet;
pub mod rtcp;
pub mod session;
pub mod stats;

pub use id::{ClockRate, PayloadType, Ssrc};
pub use session::{Config, Counters, Input, Output, Session};
