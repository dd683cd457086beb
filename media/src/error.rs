//! The media crate's errors in one enum. Each part keeps its own precise
//! error ([`PromptError`], [`TtsError`], [`PacketError`], [`RtcpError`]);
//! this is what a caller that handles any of them matches on. The receive
//! path never returns an error to its driver: a bad datagram is counted
//! and dropped ([`crate::rtp::Counters`]).

use crate::prompt::PromptError;
use crate::rtp::packet::PacketError;
use crate::rtp::rtcp::RtcpError;
use crate::tts::TtsError;

/// Something in the media engine failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A prompt file could not be decoded or resampled.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// Text-to-speech failed.
    #[error(transparent)]
    Tts(#[from] TtsError),
    /// Not an RTP packet we accept.
    #[error("RTP: {0}")]
    Packet(#[from] PacketError),
    /// Not a compound RTCP packet we accept.
    #[error("RTCP: {0}")]
    Rtcp(#[from] RtcpError),
}
