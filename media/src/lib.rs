//! Dhwani's media engine: codecs (G.711 μ-law and A-law, L16), DTMF
//! (RFC 4733 events and an in-band detector), and (in progress) RTP
//! sessions, jitter buffer, prompt decoding and resampling, pacing,
//! bridging and the recording tap.
//!
//! Like every Dhwani core crate it holds sans-IO state machines only:
//! sockets and clocks belong to the server's drivers, which pass time in.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod call;
pub mod codec;
pub mod dtmf;
pub mod fuzzing;
pub mod jitter;
pub mod mix;
pub mod prompt;
pub mod rtp;
pub mod tap;
pub mod tts;
