//! Via (RFC 3261 §20.42, §18.2.1, RFC 3581 rport).
//!
//! ```text
//! via-parm          = sent-protocol LWS sent-by *( SEMI via-params )
//! sent-protocol     = protocol-name SLASH protocol-version SLASH transport
//! sent-by           = host [ COLON port ]
//! ```

use bytes::Bytes;

use super::{Params, is_token, trim};
use crate::uri::{Host, parse_port};
use crate::{Error, Result};

/// The magic cookie that marks an RFC 3261 branch (§8.1.1.7).
pub const MAGIC_COOKIE: &[u8] = b"z9hG4bK";

/// One Via value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token (`UDP`, `TCP`, `TLS`, `WS`, ...), as received.
    pub transport: Bytes,
    /// sent-by host.
    pub host: Host,
    /// sent-by port.
    pub port: Option<u16>,
    /// Parameters (`branch`, `received`, `rport`, `maddr`, `ttl`).
    pub params: Params,
    /// The `host[:port]` text as received.
    pub sent_by: Bytes,
}

impl Via {
    /// Parses one Via value (no commas).
    pub fn parse(v: &Bytes) -> Result<Via> {
        let bad = Error::MalformedHeader { header: "Via" };
        let v = trim(v);
        let mut pos = 0usize;
        let mut parts: [Bytes; 3] = Default::default();
        for (i, part) in parts.iter_mut().enumerate() {
            let end = if i < 2 {
                pos + memchr::memchr(b'/', v.get(pos..).unwrap_or_default()).ok_or(bad.clone())?
            } else {
                // Transport ends at the LWS before sent-by.
                let s = v.get(pos..).unwrap_or_default();
                let lead = s.iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
                pos + lead
                    + s.get(lead..)
                        .unwrap_or_default()
                        .iter()
                        .position(|&c| c == b' ' || c == b'\t')
                        .ok_or(bad.clone())?
            };
            *part = trim(&v.slice(pos..end));
            if !is_token(part) {
                return Err(bad);
            }
            pos = end + usize::from(i < 2);
        }
        let [name, version, transport] = parts;
        if !name.eq_ignore_ascii_case(b"SIP") || &version[..] != b"2.0" {
            return Err(bad);
        }
        let rest = trim(&v.slice(pos..));
        let semi = memchr::memchr(b';', &rest).unwrap_or(rest.len());
        let sent_by = trim(&rest.slice(..semi));
        let (host_raw, port) = if sent_by.first() == Some(&b'[') {
            let close = memchr::memchr(b']', &sent_by).ok_or(bad.clone())?;
            let port = match sent_by.get(close + 1) {
                None => None,
                Some(b':') => Some(
                    parse_port(trim(&sent_by.slice(close + 2..)).as_ref()).ok_or(bad.clone())?,
                ),
                Some(_) => return Err(bad),
            };
            (sent_by.slice(..close + 1), port)
        } else {
            match memchr::memchr(b':', &sent_by) {
                Some(c) => (
                    trim(&sent_by.slice(..c)),
                    Some(parse_port(trim(&sent_by.slice(c + 1..)).as_ref()).ok_or(bad.clone())?),
                ),
                None => (sent_by.clone(), None),
            }
        };
        let host = Host::parse(&host_raw).map_err(|_| bad.clone())?;
        let params = Params::parse(&rest.slice(semi..)).map_err(|_| bad.clone())?;
        if let Some(Some(r)) = params.get(b"rport") {
            parse_port(&r).ok_or(bad)?;
        }
        Ok(Via {
            transport,
            host,
            port,
            params,
            sent_by,
        })
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<Bytes> {
        self.params.get(b"branch").flatten()
    }

    /// Does the branch carry the RFC 3261 magic cookie?
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    /// `Some(None)` when `rport` is present without a value (RFC 3581 §3).
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get(b"rport")
            .map(|v| v.and_then(|p| parse_port(&p)))
    }
}
