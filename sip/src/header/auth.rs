//! Authorization, WWW-Authenticate and their Proxy- variants
//! (RFC 3261 §20.7, §20.44; RFC 7616 §3.3-3.4):
//! `scheme LWS auth-param *(COMMA auth-param)`.

use bytes::Bytes;

use super::{is_token, quoted_end, trim, unquote};
use crate::{Error, Result};

/// A scheme and its comma-separated `name=value` parameters, values
/// unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParams {
    /// The scheme (`Digest`).
    pub scheme: Bytes,
    /// Parameters in wire order.
    pub params: Vec<(Bytes, Bytes)>,
}

/// Credentials from Authorization / Proxy-Authorization.
pub type Credentials = AuthParams;
/// A challenge from WWW-Authenticate / Proxy-Authenticate.
pub type Challenge = AuthParams;

impl AuthParams {
    /// Parses the header value.
    pub fn parse(v: &Bytes) -> Result<AuthParams> {
        let bad = Error::MalformedHeader {
            header: "Authorization",
        };
        let v = trim(v);
        let sp = v
            .iter()
            .position(|&c| c == b' ' || c == b'\t')
            .unwrap_or(v.len());
        let scheme = v.slice(..sp);
        if !is_token(&scheme) {
            return Err(bad);
        }
        let mut params = Vec::new();
        let mut pos = sp;
        let len = v.len();
        while pos < len {
            // Skip separators.
            while matches!(v.get(pos), Some(b' ' | b'\t' | b',')) {
                pos += 1;
            }
            if pos >= len {
                break;
            }
            let eq =
                pos + memchr::memchr(b'=', v.get(pos..).unwrap_or_default()).ok_or(bad.clone())?;
            let name = trim(&v.slice(pos..eq));
            if !is_token(&name) {
                return Err(bad);
            }
            let mut vs = eq + 1;
            while matches!(v.get(vs), Some(b' ' | b'\t')) {
                vs += 1;
            }
            let (value, next) = if v.get(vs) == Some(&b'"') {
                let q = quoted_end(v.get(vs..).unwrap_or_default()).ok_or(bad.clone())?;
                (unquote(&v.slice(vs..vs + q)), vs + q)
            } else {
                let end = v
                    .get(vs..)
                    .unwrap_or_default()
                    .iter()
                    .position(|&c| c == b',')
                    .map_or(len, |p| vs + p);
                (trim(&v.slice(vs..end)), end)
            };
            params.push((name, value));
            pos = next;
            while matches!(v.get(pos), Some(b' ' | b'\t')) {
                pos += 1;
            }
            match v.get(pos) {
                None => break,
                Some(b',') => pos += 1,
                Some(_) => return Err(bad),
            }
        }
        Ok(AuthParams { scheme, params })
    }

    /// A parameter's value (name case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
}
