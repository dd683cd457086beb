//! Reading compound RTCP from a peer (RFC 3550 §6.1, validity checks of
//! §A.2), by hand for the same reason as [`super::packet`]: peer bytes
//! reach no third-party parser.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|    RC   |      PT       |  length (32-bit words - 1)    |  each packet
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  SSRC of sender (SR, RR, ...)                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        SR only: NTP timestamp (64), RTP timestamp, counts     |
//! |        report blocks: RC × 24 bytes                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! A compound is valid when every packet has version 2, its length stays
//! inside the datagram and the lengths add up to it exactly, only the last
//! packet is padded, the first packet is an SR or RR, and the report
//! count of an SR or RR fits its length. What we keep is small: the
//! sender's SSRC and, from an SR, the NTP time (for LSR/DLSR).

/// Packet types (RFC 3550 §12.1).
pub const SR: u8 = 200;
/// Receiver report.
pub const RR: u8 = 201;
/// Source description.
pub const SDES: u8 = 202;
/// Goodbye.
pub const BYE: u8 = 203;

/// Why a compound is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpError {
    /// Under the 8 bytes of an RR without reports.
    TooShort,
    /// A packet's version is not 2.
    BadVersion,
    /// A length field runs past the datagram, or the lengths do not add up.
    BadLength,
    /// The first packet is not SR or RR, or it is padded.
    BadFirstPacket,
    /// A packet other than the last has the padding bit.
    PaddingNotLast,
    /// An SR or RR claims more report blocks than it has room for.
    ReportCountOverrun,
}

impl std::fmt::Display for RtcpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RtcpError::TooShort => "shorter than an RTCP header",
            RtcpError::BadVersion => "RTCP version is not 2",
            RtcpError::BadLength => "RTCP length does not match the datagram",
            RtcpError::BadFirstPacket => "compound RTCP must start with an unpadded SR or RR",
            RtcpError::PaddingNotLast => "padding on a packet that is not the last",
            RtcpError::ReportCountOverrun => "report count past the packet",
        })
    }
}

impl std::error::Error for RtcpError {}

/// What we take from a valid compound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compound {
    /// SSRC of the sender of the first packet.
    pub sender_ssrc: u32,
    /// From an SR: the 64-bit NTP timestamp.
    pub sr_ntp: Option<u64>,
    /// A BYE was part of the compound.
    pub bye: bool,
}

fn word(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([
        *s.first()?,
        *s.get(1)?,
        *s.get(2)?,
        *s.get(3)?,
    ]))
}

/// Validates a compound RTCP datagram and reads what the session needs.
pub fn parse(bytes: &[u8]) -> Result<Compound, RtcpError> {
    if bytes.len() < 8 {
        return Err(RtcpError::TooShort);
    }
    let mut at = 0usize;
    let mut out: Option<Compound> = None;
    while at < bytes.len() {
        let head = word(bytes, at).ok_or(RtcpError::BadLength)?;
        let [b0, pt, ..] = head.to_be_bytes();
        if b0 >> 6 != 2 {
            return Err(RtcpError::BadVersion);
        }
        let padded = b0 & 0x20 != 0;
        let count = usize::from(b0 & 0x1F);
        let len = (usize::from((head & 0xFFFF) as u16) + 1) * 4;
        let end = at.checked_add(len).ok_or(RtcpError::BadLength)?;
        if end > bytes.len() {
            return Err(RtcpError::BadLength);
        }
        if padded && end != bytes.len() {
            return Err(RtcpError::PaddingNotLast);
        }
        let body = bytes.get(at..end).ok_or(RtcpError::BadLength)?;
        match out.as_mut() {
            None => {
                if (pt != SR && pt != RR) || padded {
                    return Err(RtcpError::BadFirstPacket);
                }
                let fixed = if pt == SR { 28 } else { 8 };
                if fixed + 24 * count > body.len() {
                    return Err(RtcpError::ReportCountOverrun);
                }
                let sender_ssrc = word(body, 4).ok_or(RtcpError::BadLength)?;
                let sr_ntp = if pt == SR {
                    let hi = word(body, 8).ok_or(RtcpError::BadLength)?;
                    let lo = word(body, 12).ok_or(RtcpError::BadLength)?;
                    Some((u64::from(hi) << 32) | u64::from(lo))
                } else {
                    None
                };
                out = Some(Compound {
                    sender_ssrc,
                    sr_ntp,
                    bye: false,
                });
            }
            Some(c) => {
                if (pt == SR || pt == RR) && 8 + 24 * count > body.len() {
                    return Err(RtcpError::ReportCountOverrun);
                }
                if pt == BYE {
                    c.bye = true;
                }
            }
        }
        at = end;
    }
    out.ok_or(RtcpError::TooShort)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(ssrc: u32) -> Vec<u8> {
        let mut v = vec![0x80, RR, 0, 1];
        v.extend_from_slice(&ssrc.to_be_bytes());
        v
    }

    #[test]
    fn a_report_from_the_rtcp_crate_reads_back() {
        // What a real stack sends: SR + SDES, written by webrtc-rs.
        use webrtc_util::marshal::Marshal;
        let sr = rtcp::sender_report::SenderReport {
            ssrc: 0x1234_5678,
            ntp_time: 0xAABB_CCDD_EEFF_0011,
            rtp_time: 9,
            packet_count: 1,
            octet_count: 160,
            reports: vec![rtcp::reception_report::ReceptionReport::default()],
            profile_extensions: bytes::Bytes::new(),
        };
        let sdes = rtcp::source_description::SourceDescription {
            chunks: vec![rtcp::source_description::SourceDescriptionChunk {
                source: 0x1234_5678,
                items: vec![rtcp::source_description::SourceDescriptionItem {
                    sdes_type: rtcp::source_description::SdesType::SdesCname,
                    text: bytes::Bytes::from_static(b"peer"),
                }],
            }],
        };
        let mut bytes = sr.marshal().expect("sr").to_vec();
        bytes.extend_from_slice(&sdes.marshal().expect("sdes"));
        let c = parse(&bytes).expect("valid compound");
        assert_eq!(c.sender_ssrc, 0x1234_5678);
        assert_eq!(c.sr_ntp, Some(0xAABB_CCDD_EEFF_0011));
        assert!(!c.bye);
    }

    #[test]
    fn invalid_compounds_are_refused_with_their_reason() {
        assert_eq!(parse(&rr(5)).map(|c| c.sender_ssrc), Ok(5));
        assert_eq!(parse(&rr(5)[..7]), Err(RtcpError::TooShort));
        let mut v = rr(5);
        v[0] = 0x40;
        assert_eq!(parse(&v), Err(RtcpError::BadVersion));
        let mut v = rr(5);
        v[3] = 9; // 40 bytes claimed
        assert_eq!(parse(&v), Err(RtcpError::BadLength));
        let mut v = rr(5);
        v[1] = SDES;
        assert_eq!(parse(&v), Err(RtcpError::BadFirstPacket));
        let mut v = rr(5);
        v[0] = 0x81; // one report block, no room
        assert_eq!(parse(&v), Err(RtcpError::ReportCountOverrun));
        let mut v = rr(5);
        v[0] |= 0x20;
        v.extend_from_slice(&rr(6));
        assert_eq!(parse(&v), Err(RtcpError::PaddingNotLast));
        let mut v = rr(5);
        v.extend_from_slice(&[0x81, BYE, 0, 1, 0, 0, 0, 5]);
        assert_eq!(parse(&v).map(|c| c.bye), Ok(true));
        // Trailing bytes that are not a whole packet.
        let mut v = rr(5);
        v.extend_from_slice(&[0x80, SDES]);
        assert_eq!(parse(&v), Err(RtcpError::BadLength));
    }

    #[test]
    fn any_bytes_parse_or_fail_without_panicking() {
        use proptest::prelude::*;
        proptest!(ProptestConfig { cases: 5000, failure_persistence: None, ..ProptestConfig::default() },
            |(mut bytes in proptest::collection::vec(any::<u8>(), 0..100))| {
            if bytes.len() > 1 { bytes[0] = 0x80 | (bytes[0] & 0x3F); bytes[1] = 200 + (bytes[1] % 8); }
            let _ = parse(&bytes);
        });
    }
}
