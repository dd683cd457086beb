//! Offer/answer as data (RFC 3264): our side of one dialog's audio session,
//! kept so that a new offer in the dialog (a re-INVITE, §8) is answered
//! from what was agreed, not by editing the text of the first answer.
//!
//! ```text
//!   initial offer ──LocalSession::answer──► LocalSession ──to_sdp──► 200 OK
//!   re-offer ──────LocalSession::reoffer──► MediaUpdate (remote, payload types, direction)
//!                         │                  └─► the media task follows
//!                         └─ 488 when the call's codec is gone; the old session stays
//! ```
//!
//! What a re-offer may change (§8.3): the connection address and port
//! (an SBC or a NAT moving media: the update names the new address), the
//! direction (hold and unhold, including the old RFC 2543 `c=0.0.0.0` hold,
//! which keeps the current address), the payload type numbers, and the
//! codec list, as long as it still holds the call's codec. Switching codec
//! mid-call is refused with 488 (the session goes on unchanged, as §8
//! allows): prompts, recordings and the jitter buffer run at the call's
//! sample rate. The version in `o=` goes up by one exactly when our
//! description changes (§8).

use std::net::SocketAddr;

use super::{AudioOffer, Direction, Negotiated, negotiate, write_answer};

/// Our side of an audio session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSession {
    /// `o=` session id.
    pub id: u64,
    /// `o=` version.
    pub version: u64,
    /// Our RTP address.
    pub local: SocketAddr,
    /// Where the peer wants RTP.
    pub remote: SocketAddr,
    /// The codec and telephone-event, with the peer's payload types.
    pub negotiated: Negotiated,
    /// Our direction.
    pub direction: Direction,
    /// RTCP on the RTP port (RFC 5761).
    pub rtcp_mux: bool,
    /// Packet time.
    pub ptime_ms: u32,
}

/// What a re-offer changed, for the media task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaUpdate {
    /// Where RTP goes now.
    pub remote: SocketAddr,
    /// The media moved to another address or port.
    pub moved: bool,
    /// The codec's payload type.
    pub payload_type: u8,
    /// telephone-event's payload type, if any.
    pub telephone_event: Option<u8>,
    /// Our direction.
    pub direction: Direction,
}

/// Why a re-offer is refused (the old session stays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReofferError {
    /// The call's codec is not in the new offer.
    CodecGone {
        /// The call's codec.
        codec: String,
    },
    /// The offer is not RTP/AVP(F) or has no audio we speak.
    NotUsable,
}

impl std::fmt::Display for ReofferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReofferError::CodecGone { codec } => {
                write!(f, "the call's codec {codec} must stay in the offer")
            }
            ReofferError::NotUsable => write!(f, "no usable audio in the offer"),
        }
    }
}

impl LocalSession {
    /// The answer to an initial offer, or `None` when nothing is shared.
    pub fn answer(
        offer: &AudioOffer,
        preference: &[&str],
        id: u64,
        local: SocketAddr,
        ptime_ms: u32,
    ) -> Option<LocalSession> {
        let negotiated = negotiate(offer, preference)?;
        Some(LocalSession {
            id,
            version: 1,
            local,
            remote: offer.rtp,
            negotiated,
            direction: offer.direction.answer(),
            rtcp_mux: offer.rtcp_mux,
            ptime_ms,
        })
    }

    /// The session after a late offer: we offered (version 1) and the peer
    /// answered in the ACK with `answer`, negotiated as `negotiated`.
    pub fn from_answer(
        answer: &AudioOffer,
        negotiated: Negotiated,
        id: u64,
        local: SocketAddr,
        ptime_ms: u32,
    ) -> LocalSession {
        LocalSession {
            id,
            version: 1,
            local,
            remote: answer.rtp,
            negotiated,
            // Our offer said sendrecv; the answer says what the peer does.
            direction: answer.direction.answer(),
            rtcp_mux: false,
            ptime_ms,
        }
    }

    /// Our session description.
    pub fn to_sdp(&self) -> String {
        let mut sdp = write_answer(
            self.id,
            self.version,
            self.local,
            &self.negotiated,
            self.direction,
            self.ptime_ms,
        );
        if self.rtcp_mux {
            sdp.push_str("a=rtcp-mux\r\n");
        }
        sdp
    }

    /// Answers a new offer in the dialog (RFC 3264 §8). On success the
    /// session is updated and [`LocalSession::to_sdp`] is the answer; on
    /// error it is unchanged (answer 488).
    pub fn reoffer(
        &mut self,
        offer: &AudioOffer,
        preference: &[&str],
    ) -> Result<MediaUpdate, ReofferError> {
        // The peer's order decides among formats of the call's codec; any
        // other shared codec would be a switch, which we refuse.
        let codec = &self.negotiated.codec;
        let Some(same) = offer.formats.iter().find(|f| {
            f.encoding.eq_ignore_ascii_case(&codec.encoding) && f.clock_rate == codec.clock_rate
        }) else {
            return Err(if negotiate(offer, preference).is_some() {
                ReofferError::CodecGone {
                    codec: codec.encoding.clone(),
                }
            } else {
                ReofferError::NotUsable
            });
        };
        let mut neg =
            negotiate(offer, &[codec.encoding.as_str()]).ok_or(ReofferError::NotUsable)?;
        neg.codec = same.clone();
        // §8.4: c=0.0.0.0 is the old way to hold; the address stays ours
        // to keep, and we must not send.
        let held_old_style = offer.rtp.ip().is_unspecified();
        let mut direction = offer.direction.answer();
        if held_old_style {
            direction = match direction {
                Direction::SendRecv | Direction::RecvOnly => Direction::RecvOnly,
                Direction::SendOnly | Direction::Inactive => Direction::Inactive,
            };
        }
        let remote = if held_old_style {
            self.remote
        } else {
            offer.rtp
        };
        let next = LocalSession {
            remote,
            negotiated: neg,
            direction,
            rtcp_mux: self.rtcp_mux && offer.rtcp_mux,
            ..self.clone()
        };
        let ours_changed = next.negotiated != self.negotiated
            || next.direction != self.direction
            || next.rtcp_mux != self.rtcp_mux;
        let moved = next.remote != self.remote;
        *self = next;
        if ours_changed {
            self.version += 1;
        }
        Ok(MediaUpdate {
            remote: self.remote,
            moved,
            payload_type: self.negotiated.codec.payload_type,
            telephone_event: self
                .negotiated
                .telephone_event
                .as_ref()
                .map(|t| t.payload_type),
            direction: self.direction,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_audio_offer;
    use super::*;

    fn offer(ip: &str, port: u16, pts: &str, extra: &str) -> AudioOffer {
        let text = format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {pts}\r\na=rtpmap:101 telephone-event/8000\r\na=rtpmap:97 PCMU/8000\r\n{extra}"
        );
        parse_audio_offer(text.as_bytes()).expect("offer")
    }

    fn session() -> LocalSession {
        LocalSession::answer(
            &offer("10.0.0.1", 4000, "0 8 101", ""),
            &["PCMU", "PCMA"],
            77,
            "127.0.0.1:20000".parse().expect("addr"),
            20,
        )
        .expect("shared codec")
    }

    fn version(sdp: &str) -> u64 {
        sdp.lines()
            .find_map(|l| l.strip_prefix("o="))
            .and_then(|o| o.split_whitespace().nth(2))
            .and_then(|v| v.parse().ok())
            .expect("o= version")
    }

    #[test]
    fn the_same_offer_again_changes_nothing_not_even_the_version() {
        let mut s = session();
        let before = s.to_sdp();
        let u = s
            .reoffer(&offer("10.0.0.1", 4000, "0 8 101", ""), &["PCMU"])
            .expect("accepted");
        assert!(!u.moved);
        assert_eq!(s.to_sdp(), before);
        assert_eq!(version(&before), 1);
    }

    #[test]
    fn a_reoffer_that_moves_the_media_names_the_new_address() {
        let mut s = session();
        let u = s
            .reoffer(&offer("10.0.0.9", 5002, "0 101", ""), &["PCMU"])
            .expect("accepted");
        assert!(u.moved);
        assert_eq!(u.remote, "10.0.0.9:5002".parse().expect("addr"));
        assert_eq!(u.payload_type, 0);
        // Our side did not change: same version (§8: only on change).
        assert_eq!(version(&s.to_sdp()), 1);
    }

    #[test]
    fn hold_and_unhold_mirror_the_direction_and_bump_the_version() {
        let mut s = session();
        let u = s
            .reoffer(
                &offer("10.0.0.1", 4000, "0 101", "a=sendonly\r\n"),
                &["PCMU"],
            )
            .expect("hold");
        assert_eq!(u.direction, Direction::RecvOnly);
        let sdp = s.to_sdp();
        assert!(sdp.contains("a=recvonly"), "{sdp}");
        assert_eq!(version(&sdp), 2);
        // RFC 2543 hold: c=0.0.0.0; the address stays, we stop sending.
        let u = s
            .reoffer(&offer("0.0.0.0", 4000, "0 101", ""), &["PCMU"])
            .expect("old hold");
        assert_eq!(u.direction, Direction::RecvOnly);
        assert_eq!(u.remote, "10.0.0.1:4000".parse().expect("addr"));
        assert!(!u.moved);
        let u = s
            .reoffer(&offer("10.0.0.1", 4000, "0 101", ""), &["PCMU"])
            .expect("unhold");
        assert_eq!(u.direction, Direction::SendRecv);
        assert_eq!(version(&s.to_sdp()), 3);
    }

    #[test]
    fn a_changed_codec_list_keeps_the_call_codec_with_the_new_payload_type() {
        let mut s = session();
        // PCMU now on dynamic 97, PCMA first: we stay on PCMU.
        let u = s
            .reoffer(&offer("10.0.0.1", 4000, "8 97 101", ""), &["PCMA", "PCMU"])
            .expect("accepted");
        assert_eq!(u.payload_type, 97);
        assert!(s.to_sdp().contains("m=audio 20000 RTP/AVP 97 101"));
        assert_eq!(version(&s.to_sdp()), 2);
        // Without PCMU at all: refused, the session unchanged.
        let before = s.clone();
        assert_eq!(
            s.reoffer(&offer("10.0.0.1", 4000, "8 101", ""), &["PCMA", "PCMU"]),
            Err(ReofferError::CodecGone {
                codec: "PCMU".into()
            })
        );
        assert_eq!(s, before);
        assert_eq!(
            s.reoffer(&offer("10.0.0.1", 4000, "18", ""), &["PCMU"]),
            Err(ReofferError::NotUsable)
        );
    }

    #[test]
    fn rtcp_mux_stays_only_while_offered() {
        let mut s = LocalSession::answer(
            &offer("10.0.0.1", 4000, "0", "a=rtcp-mux\r\n"),
            &["PCMU"],
            1,
            "127.0.0.1:20000".parse().expect("addr"),
            20,
        )
        .expect("answer");
        assert!(s.to_sdp().contains("a=rtcp-mux"));
        s.reoffer(&offer("10.0.0.1", 4000, "0", ""), &["PCMU"])
            .expect("accepted");
        assert!(!s.to_sdp().contains("a=rtcp-mux"));
    }
}
