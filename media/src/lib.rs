//! Dhwani's media engine: RTP/RTCP sessions, codecs (G.711, G.722, L16),
//! jitter buffer, DTMF (RFC 4733, SIP INFO, in-band), prompt decoding and
//! resampling, pacing, bridging and the recording tap.
//!
//! Not built yet: this crate is a placeholder until the media issue lands.
//! Until then the server sends RTP silence itself (see `dhwani::call`).
//! Like every Dhwani core crate it will hold sans-IO state machines only;
//! sockets and clocks belong to the server's drivers.
