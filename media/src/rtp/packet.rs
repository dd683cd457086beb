//! RTP packets on the wire (RFC 3550 §5.1), read and written by hand.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           timestamp                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           synchronization source (SSRC) identifier            |
//! +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! |            contributing source (CSRC) identifiers             |  CC × 4 bytes
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      defined by profile       |           length              |  if X
//! |                        header extension                       |  length × 4 bytes
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     payload ...               | padding | count |  if P
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Why not the `rtp` crate: its `Header::unmarshal` (0.17) walks RFC 8285
//! extension elements and slices past the block on a hostile element
//! length, which panics. This reader borrows the datagram, checks every
//! length before it reads, and parses extension elements only when asked
//! ([`Extension::elements`]), stopping at the first malformed one.

use std::fmt;

/// RTP header size without CSRCs or extension.
pub const FIXED_HEADER: usize = 12;

/// Why a datagram is not an RTP packet we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PacketError {
    /// Shorter than the 12-byte fixed header.
    TooShort,
    /// Version field is not 2.
    BadVersion(u8),
    /// The CSRC list or the extension runs past the datagram.
    HeaderOverrun,
    /// The padding count is zero or runs into the header.
    BadPadding,
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::TooShort => write!(f, "shorter than an RTP header"),
            PacketError::BadVersion(v) => write!(f, "RTP version {v}, not 2"),
            PacketError::HeaderOverrun => write!(f, "CSRC list or extension past the end"),
            PacketError::BadPadding => write!(f, "padding count does not fit"),
        }
    }
}

impl std::error::Error for PacketError {}

/// The fixed header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Marker bit (start of a talkspurt for audio).
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// Timestamp in the RTP clock.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Number of CSRCs that follow the fixed header.
    pub csrc_count: u8,
}

/// The header extension block (RFC 3550 §5.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The 16-bit profile field (0xBEDE: RFC 8285 one-byte elements;
    /// 0x100x: two-byte elements).
    pub profile: u16,
    /// The extension data (a multiple of four bytes).
    pub data: &'a [u8],
}

/// One RFC 8285 extension element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element<'a> {
    /// Element ID.
    pub id: u8,
    /// Its value.
    pub value: &'a [u8],
}

impl<'a> Extension<'a> {
    /// The RFC 8285 elements of a one-byte (0xBEDE) or two-byte (0x100x)
    /// block; `Err(())` at the first element whose length runs past the
    /// block. Other profiles have no elements.
    #[allow(clippy::result_unit_err)]
    pub fn elements(&self) -> impl Iterator<Item = Result<Element<'a>, ()>> + 'a {
        let one_byte = self.profile == 0xBEDE;
        let two_byte = self.profile & 0xFFF0 == 0x1000;
        let mut rest: &'a [u8] = if one_byte || two_byte { self.data } else { &[] };
        std::iter::from_fn(move || {
            loop {
                let (&first, after) = rest.split_first()?;
                if one_byte {
                    // ID 0: padding byte; ID 15: stop parsing (RFC 8285 §4.2).
                    let id = first >> 4;
                    if id == 0 {
                        rest = after;
                        continue;
                    }
                    if id == 15 {
                        rest = &[];
                        return None;
                    }
                    let len = usize::from(first & 0x0F) + 1;
                    let Some((value, tail)) = after.split_at_checked(len) else {
                        rest = &[];
                        return Some(Err(()));
                    };
                    rest = tail;
                    return Some(Ok(Element { id, value }));
                }
                // Two-byte header: ID 0 is padding (RFC 8285 §4.3).
                if first == 0 {
                    rest = after;
                    continue;
                }
                let Some((&len, after)) = after.split_first() else {
                    rest = &[];
                    return Some(Err(()));
                };
                let Some((value, tail)) = after.split_at_checked(usize::from(len)) else {
                    rest = &[];
                    return Some(Err(()));
                };
                rest = tail;
                return Some(Ok(Element { id: first, value }));
            }
        })
    }
}

/// An RTP packet borrowed from its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Fixed header.
    pub header: Header,
    /// The CSRC list (4 bytes each).
    pub csrcs: &'a [u8],
    /// Header extension, if the X bit is set.
    pub extension: Option<Extension<'a>>,
    /// Payload without padding.
    pub payload: &'a [u8],
}

/// The fields a source check needs, from the first 12 bytes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peek {
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// SSRC.
    pub ssrc: u32,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([
        *s.first()?,
        *s.get(1)?,
        *s.get(2)?,
        *s.get(3)?,
    ]))
}

/// Version, payload type, sequence number and SSRC, without looking past
/// the fixed header: the cheap check before anything else.
pub fn peek(bytes: &[u8]) -> Result<Peek, PacketError> {
    let (Some(&first), Some(&second)) = (bytes.first(), bytes.get(1)) else {
        return Err(PacketError::TooShort);
    };
    if bytes.len() < FIXED_HEADER {
        return Err(PacketError::TooShort);
    }
    if first >> 6 != 2 {
        return Err(PacketError::BadVersion(first >> 6));
    }
    Ok(Peek {
        payload_type: second & 0x7F,
        sequence_number: be16(bytes, 2).ok_or(PacketError::TooShort)?,
        ssrc: be32(bytes, 8).ok_or(PacketError::TooShort)?,
    })
}

/// Parses a whole packet: fixed header, CSRCs, extension and padding, each
/// length checked against the datagram before it is used (RFC 3550 §A.1).
pub fn parse(bytes: &[u8]) -> Result<Packet<'_>, PacketError> {
    peek(bytes)?;
    let (Some(&first), Some(&second)) = (bytes.first(), bytes.get(1)) else {
        return Err(PacketError::TooShort);
    };
    let csrc_count = first & 0x0F;
    let csrc_end = FIXED_HEADER + 4 * usize::from(csrc_count);
    let csrcs = bytes
        .get(FIXED_HEADER..csrc_end)
        .ok_or(PacketError::HeaderOverrun)?;
    let mut header_end = csrc_end;
    let extension = if first & 0x10 != 0 {
        let profile = be16(bytes, csrc_end).ok_or(PacketError::HeaderOverrun)?;
        let words = be16(bytes, csrc_end + 2).ok_or(PacketError::HeaderOverrun)?;
        let start = csrc_end + 4;
        header_end = start + 4 * usize::from(words);
        let data = bytes
            .get(start..header_end)
            .ok_or(PacketError::HeaderOverrun)?;
        Some(Extension { profile, data })
    } else {
        None
    };
    let mut end = bytes.len();
    if first & 0x20 != 0 {
        let pad = usize::from(*bytes.last().ok_or(PacketError::BadPadding)?);
        if pad == 0 || header_end + pad > end {
            return Err(PacketError::BadPadding);
        }
        end -= pad;
    }
    let payload = bytes
        .get(header_end..end)
        .ok_or(PacketError::HeaderOverrun)?;
    Ok(Packet {
        header: Header {
            marker: second & 0x80 != 0,
            payload_type: second & 0x7F,
            sequence_number: be16(bytes, 2).ok_or(PacketError::TooShort)?,
            timestamp: be32(bytes, 4).ok_or(PacketError::TooShort)?,
            ssrc: be32(bytes, 8).ok_or(PacketError::TooShort)?,
            csrc_count,
        },
        csrcs,
        extension,
        payload,
    })
}

/// Appends a packet with a fixed header only (no CSRC, extension or
/// padding: what we send) to `out`.
pub fn write(out: &mut Vec<u8>, header: &Header, payload: &[u8]) {
    out.reserve(FIXED_HEADER + payload.len());
    out.push(0x80);
    out.push((u8::from(header.marker) << 7) | (header.payload_type & 0x7F));
    out.extend_from_slice(&header.sequence_number.to_be_bytes());
    out.extend_from_slice(&header.timestamp.to_be_bytes());
    out.extend_from_slice(&header.ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(seq: u16) -> Header {
        Header {
            marker: true,
            payload_type: 8,
            sequence_number: seq,
            timestamp: 0x0102_0304,
            ssrc: 0xDEAD_BEEF,
            csrc_count: 0,
        }
    }

    #[test]
    fn what_we_write_reads_back_and_matches_the_rtp_crate() {
        let mut out = Vec::new();
        write(&mut out, &header(65535), &[1, 2, 3]);
        let p = parse(&out).expect("parses");
        assert_eq!(p.header, header(65535));
        assert_eq!(p.payload, &[1, 2, 3]);
        // A second opinion on the layout: the webrtc-rs reader agrees on
        // the bytes we write (our own input only, never a peer's).
        use webrtc_util::marshal::Unmarshal;
        let mut buf = bytes::Bytes::from(out);
        let theirs = ::rtp::packet::Packet::unmarshal(&mut buf).expect("rtp crate");
        assert_eq!(theirs.header.sequence_number, 65535);
        assert_eq!(theirs.header.ssrc, 0xDEAD_BEEF);
        assert!(theirs.header.marker);
        assert_eq!(&theirs.payload[..], &[1, 2, 3]);
    }

    #[test]
    fn csrcs_extension_and_padding_are_stripped_from_the_payload() {
        let mut b = vec![0xB2, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        b.extend_from_slice(&[0xAA; 8]); // two CSRCs
        b.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0x55, 0x00, 0x00]);
        b.extend_from_slice(&[7, 7, 7]);
        b.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        let p = parse(&b).expect("valid");
        assert_eq!(p.csrcs.len(), 8);
        assert_eq!(p.payload, &[7, 7, 7]);
        let ext = p.extension.expect("X bit");
        let elements: Vec<_> = ext.elements().collect();
        assert_eq!(
            elements,
            vec![Ok(Element {
                id: 1,
                value: &[0x55]
            })]
        );
    }

    /// The packet that panicked the `rtp` crate (issue 13): an RFC 8285
    /// one-byte element that claims 16 bytes inside a 4-byte block.
    #[test]
    fn an_extension_element_longer_than_its_block_is_an_error_not_a_panic() {
        let mut b = vec![0x90, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        b.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x1F, 0x00, 0x00, 0x00]);
        b.extend_from_slice(&[0; 160]);
        let p = parse(&b).expect("the block itself fits");
        assert_eq!(p.payload.len(), 160);
        let ext = p.extension.expect("X bit");
        assert_eq!(ext.elements().collect::<Vec<_>>(), vec![Err(())]);
        // Two-byte form, length past the block.
        let mut b = vec![0x90, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        b.extend_from_slice(&[0x10, 0x00, 0, 1, 0x01, 0xFF, 0x00, 0x00]);
        let p = parse(&b).expect("block fits");
        let ext = p.extension.expect("X bit");
        assert_eq!(ext.elements().collect::<Vec<_>>(), vec![Err(())]);
    }

    #[test]
    fn lengths_that_run_past_the_datagram_are_refused() {
        let base = [0x80u8, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 1, 2, 3, 4];
        assert_eq!(parse(&base[..11]), Err(PacketError::TooShort));
        let mut v = base;
        v[0] = 0x40;
        assert_eq!(parse(&v), Err(PacketError::BadVersion(1)));
        let mut v = base;
        v[0] = 0x82; // two CSRCs, four bytes left
        assert_eq!(parse(&v), Err(PacketError::HeaderOverrun));
        let mut v = base.to_vec();
        v[0] = 0x90;
        v[14] = 0xFF;
        v[15] = 0xFF;
        assert_eq!(parse(&v), Err(PacketError::HeaderOverrun));
        let mut v = base;
        v[0] = 0xA0;
        v[15] = 0;
        assert_eq!(parse(&v), Err(PacketError::BadPadding));
        v[15] = 5;
        assert_eq!(parse(&v), Err(PacketError::BadPadding));
        v[15] = 4;
        assert_eq!(parse(&v).map(|p| p.payload.len()), Ok(0));
    }

    #[test]
    fn any_bytes_parse_or_fail_without_panicking() {
        use proptest::prelude::*;
        proptest!(ProptestConfig { cases: 5000, failure_persistence: None, ..ProptestConfig::default() },
            |(mut bytes in proptest::collection::vec(any::<u8>(), 0..120), flags in any::<u8>())| {
            if let Some(b) = bytes.first_mut() { *b = 0x80 | (flags & 0x3F); }
            if let Ok(p) = parse(&bytes) {
                prop_assert!(p.payload.len() + FIXED_HEADER <= bytes.len());
                if let Some(e) = p.extension { let _ = e.elements().count(); }
            }
        });
    }
}
