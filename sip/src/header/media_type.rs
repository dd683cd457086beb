//! Content-Type (RFC 3261 §20.15): `m-type SLASH m-subtype *(SEMI m-parameter)`.

use bytes::Bytes;

use super::{Params, is_token, trim};
use crate::{Error, Result};

/// A media type such as `application/sdp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// The type (`application`).
    pub kind: Bytes,
    /// The subtype (`sdp`).
    pub subtype: Bytes,
    /// Parameters (`;charset=...`).
    pub params: Params,
}

impl MediaType {
    /// Parses a media type.
    pub fn parse(v: &Bytes) -> Result<MediaType> {
        let bad = Error::MalformedHeader {
            header: "Content-Type",
        };
        let v = trim(v);
        let slash = memchr::memchr(b'/', &v).ok_or(bad.clone())?;
        let semi = memchr::memchr(b';', &v).unwrap_or(v.len());
        if semi < slash {
            return Err(bad);
        }
        let kind = trim(&v.slice(..slash));
        let subtype = trim(&v.slice(slash + 1..semi));
        if !is_token(&kind) || !is_token(&subtype) {
            return Err(bad);
        }
        let params = Params::parse(&v.slice(semi..)).map_err(|_| bad)?;
        Ok(MediaType {
            kind,
            subtype,
            params,
        })
    }

    /// Is this `type/subtype` (case-insensitive)?
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind.as_bytes())
            && self.subtype.eq_ignore_ascii_case(subtype.as_bytes())
    }
}
