//! DTMF from the three sources phones use: RFC 4733 telephone-events
//! ([`rfc4733`]), SIP INFO bodies ([`info`]), and (next) in-band tones.

pub mod inband;
pub mod info;
pub mod rfc4733;

/// Where a digit came from (logged with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// RFC 4733 telephone-event packets.
    Rfc4733,
    /// A SIP INFO request.
    Info,
    /// Tones in the audio.
    InBand,
}

impl Source {
    /// Name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Source::Rfc4733 => "rfc4733",
            Source::Info => "info",
            Source::InBand => "inband",
        }
    }
}
