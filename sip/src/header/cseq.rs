//! CSeq (RFC 3261 §20.16): `CSeq: 1*DIGIT LWS Method`.

use bytes::Bytes;

use super::{is_token, trim};
use crate::message::Method;
use crate::{Error, Result};

/// A CSeq value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number (less than 2**31, §8.1.1.5).
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl CSeq {
    /// Parses a CSeq value.
    pub fn parse(v: &Bytes) -> Result<CSeq> {
        let bad = Error::MalformedHeader { header: "CSeq" };
        let v = trim(v);
        let sp = v
            .iter()
            .position(|&c| c == b' ' || c == b'\t')
            .ok_or(bad.clone())?;
        let num = v.get(..sp).unwrap_or_default();
        if num.is_empty() || num.len() > 10 || !num.iter().all(u8::is_ascii_digit) {
            return Err(bad);
        }
        let seq: u64 = std::str::from_utf8(num)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(bad.clone())?;
        if seq >= 1 << 31 {
            return Err(bad);
        }
        let method = trim(&v.slice(sp..));
        if !is_token(&method) {
            return Err(bad);
        }
        Ok(CSeq {
            seq: seq as u32,
            method: Method::from_bytes(method),
        })
    }
}

impl std::fmt::Display for CSeq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}
