//! A `tokio_util::codec` Decoder/Encoder for SIP over stream transports
//! (RFC 3261 §18.3: framing by Content-Length) with the CRLF keep-alives of
//! RFC 5626 §3.5.1 (a "ping" is CRLFCRLF, the "pong" a single CRLF).
//!
//! The decoder only frames: it yields the raw bytes of one message, which
//! the caller parses with [`crate::message::parse_message`] exactly as it
//! parses a datagram. A framing error (an over-long header line, an
//! over-size message, a Content-Length that is missing or not a number) is
//! an `Err`, after which the connection cannot be resynchronised and must be
//! closed.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::Error;
use crate::message::{Limits, scan_headers};

/// One unit read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The bytes of one complete message.
    Message(Bytes),
    /// A keep-alive ping (CRLFCRLF); answer with [`PONG`].
    Ping,
}

/// The keep-alive answer of RFC 5626 §3.5.1.
pub const PONG: &[u8] = b"\r\n";

/// The codec.
#[derive(Debug, Clone, Default)]
pub struct SipCodec {
    limits: Limits,
}

impl SipCodec {
    /// A codec applying these limits.
    pub fn new(limits: Limits) -> SipCodec {
        SipCodec { limits }
    }
}

impl Decoder for SipCodec {
    type Item = Frame;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Error> {
        // Leading CRLFs: a CRLFCRLF is a ping, a lone CRLF a pong or padding.
        loop {
            if src.starts_with(b"\r\n\r\n") {
                src.advance(4);
                return Ok(Some(Frame::Ping));
            }
            if b"\r\n\r\n".starts_with(src) {
                // Empty, or a prefix of a ping: wait for more.
                return Ok(None);
            }
            if src.starts_with(b"\r\n") {
                src.advance(2);
                continue;
            }
            break;
        }
        let Some((header_len, content_length)) = scan_headers(src, &self.limits)? else {
            return Ok(None);
        };
        let body = content_length.ok_or(Error::MissingContentLength)?;
        let total = header_len.checked_add(body).ok_or(Error::MessageTooLarge {
            size: usize::MAX,
            limit: self.limits.max_message_bytes,
        })?;
        if total > self.limits.max_message_bytes {
            return Err(Error::MessageTooLarge {
                size: total,
                limit: self.limits.max_message_bytes,
            });
        }
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        Ok(Some(Frame::Message(src.split_to(total).freeze())))
    }
}

impl Encoder<Bytes> for SipCodec {
    type Error = Error;
    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), Error> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn frames_by_content_length_across_arbitrary_splits() {
        let mut stream = Vec::new();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(MSG);
        for chunk in 1..stream.len() {
            let mut codec = SipCodec::default();
            let mut buf = BytesMut::new();
            let mut frames = vec![];
            for piece in stream.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some(f) = codec.decode(&mut buf).unwrap() {
                    frames.push(f);
                }
            }
            assert_eq!(frames.len(), 3, "chunk size {chunk}");
            assert_eq!(frames[0], Frame::Ping);
            assert_eq!(frames[1], Frame::Message(Bytes::from_static(MSG)));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn a_missing_content_length_is_a_framing_error() {
        let mut codec = SipCodec::default();
        let mut buf = BytesMut::from(&b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"[..]);
        assert_eq!(codec.decode(&mut buf), Err(Error::MissingContentLength));
    }

    #[test]
    fn an_endless_header_line_is_refused_before_the_buffer_grows_unbounded() {
        let mut codec = SipCodec::new(Limits {
            max_header_line_bytes: 100,
            ..Limits::default()
        });
        let mut buf = BytesMut::from(&[b'a'; 200][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(Error::HeaderLineTooLong { .. })
        ));
    }

    #[test]
    fn a_huge_content_length_is_refused() {
        let mut codec = SipCodec::default();
        let mut buf =
            BytesMut::from(&b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(Error::MessageTooLarge { .. })
        ));
    }
}
