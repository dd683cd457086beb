//! RTP and RTCP for one call leg: [`Session`] (a sans-IO state machine over
//! one UDP port pair) and the reception statistics of RFC 3550 ([`stats`]).

pub mod session;
pub mod stats;

pub use session::{Config, Counters, Input, Output, Session};
