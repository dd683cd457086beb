//! Dhwani's media engine: RTP sessions with strict source learning and our
//! own wire readers ([`rtp`]), codecs (G.711 μ-law and A-law, G.722, L16),
//! a jitter buffer with loss concealment, DTMF (RFC 4733 events, SIP INFO
//! and an in-band detector), prompt decoding and resampling, text to
//! speech, 20 ms pacing, mixing and the recording tap, joined per call leg
//! in [`call::CallMedia`].
//!
//! Like every Dhwani core crate it holds sans-IO state machines only:
//! sockets and clocks belong to the server's drivers, which pass time in.
//! Errors are in [`Error`]; the receive path never returns one (a bad
//! datagram is counted in [`rtp::Counters`] and dropped).
//!
//! A call leg's run loop, on fake time: the leg plays a prompt to its peer,
//! paced at 20 ms, once the dialog is confirmed.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//! use std::time::{Duration, Instant, SystemTime};
//! use media::call::{CallMedia, Command, Config, Event, Output};
//! use media::codec::Codec;
//! use rand::SeedableRng;
//!
//! let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
//! let cfg = Config {
//!     rtp: media::rtp::Config::new(peer, media::rtp::PayloadType(0), media::rtp::ClockRate(8000)),
//!     codec: Codec::Pcmu,
//!     inband_dtmf: true,
//!     tap: false,
//! };
//! let mut now = Instant::now();
//! let mut leg = CallMedia::new(cfg, &mut rand::rngs::StdRng::seed_from_u64(1), now, SystemTime::now());
//! let prompt: Arc<[i16]> = vec![3000i16; 8000].into(); // one second
//! leg.handle_command(now, Command::Play { prompts: vec![prompt], barge_in: true });
//! leg.handle_command(now, Command::Confirm); // the ACK came
//! let (mut packets, mut done) = (0, false);
//! while !done {
//!     // Drain the outputs, then sleep until poll_timeout (here: jump).
//!     while let Some(out) = leg.poll_output() {
//!         match out {
//!             Output::Transmit { rtcp: false, .. } => packets += 1, // send_to(peer)
//!             Output::Event(Event::PlaybackFinished { .. }) => done = true,
//!             _ => {}
//!         }
//!     }
//!     now = leg.poll_timeout();
//!     leg.handle_timeout(now);
//!     // A datagram from the socket would go to leg.handle_datagram(now, from, bytes).
//! }
//! assert_eq!(packets, 50, "one second of prompt in 20 ms packets");
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod bridge;
pub mod call;
pub mod codec;
pub mod dtmf;
pub mod error;
pub mod fuzzing;
pub mod jitter;
pub mod mix;
pub mod prompt;
pub mod rtp;
pub mod tap;
pub mod tts;

pub use error::Error;
