//! SIP, SIPS and tel URIs (RFC 3261 §19.1 and §25.1, RFC 3966).
//!
//! ```text
//! SIP-URI  = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
//! userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"
//! hostport = host [ ":" port ]
//! host     = hostname / IPv4address / IPv6reference      ; "[" IPv6address "]"
//! ```
//!
//! A [`Uri`] keeps its verbatim bytes (written back unchanged) and slices of
//! its parts. Escapes (`%41`) stay escaped in the slices; use
//! [`unescape`] for comparison.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::Bytes;

use crate::header::Params;
use crate::{Error, Result};

/// The URI scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
    /// Any other absolute URI scheme; a UAS answers 416 (§8.2.2.1).
    Other(Bytes),
}

/// The host part of a URI or Via.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A DNS name.
    Domain(Bytes),
    /// A dotted IPv4 address.
    V4(Ipv4Addr),
    /// A bracketed IPv6 reference.
    V6(Ipv6Addr),
}

impl Host {
    /// Parses `hostname / IPv4address / "[" IPv6address "]"`.
    pub fn parse(raw: &Bytes) -> Result<Host> {
        if raw.first() == Some(&b'[') {
            let inner = raw
                .get(1..raw.len().saturating_sub(1))
                .filter(|_| raw.last() == Some(&b']'))
                .ok_or(Error::MalformedUri)?;
            let s = std::str::from_utf8(inner).map_err(|_| Error::MalformedUri)?;
            return s.parse().map(Host::V6).map_err(|_| Error::MalformedUri);
        }
        if raw.is_empty() {
            return Err(Error::MalformedUri);
        }
        if raw.iter().all(|c| c.is_ascii_digit() || *c == b'.') {
            let s = std::str::from_utf8(raw).map_err(|_| Error::MalformedUri)?;
            return s.parse().map(Host::V4).map_err(|_| Error::MalformedUri);
        }
        // hostname = *( domainlabel "." ) toplabel [ "." ]
        let ok = raw
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_')
            && raw.first().is_some_and(u8::is_ascii_alphanumeric);
        if ok {
            Ok(Host::Domain(raw.clone()))
        } else {
            Err(Error::MalformedUri)
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(&String::from_utf8_lossy(d)),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A parsed URI with its verbatim text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    raw: Bytes,
    /// The scheme.
    pub scheme: Scheme,
    /// The user part (escaped as on the wire), or the tel number.
    pub user: Option<Bytes>,
    /// The password of the userinfo (deprecated, kept for completeness).
    pub password: Option<Bytes>,
    /// The host (absent for `tel:` and unknown schemes).
    pub host: Option<Host>,
    /// The port, if given.
    pub port: Option<u16>,
    /// `;name=value` URI parameters.
    pub params: Params,
    /// `?name=value&...` headers, verbatim without the `?`.
    pub headers: Option<Bytes>,
}

impl Uri {
    /// Parses an absolute URI.
    pub fn parse(raw: &Bytes) -> Result<Uri> {
        let colon = memchr::memchr(b':', raw).ok_or(Error::MalformedUri)?;
        let scheme_raw = raw.get(..colon).unwrap_or_default();
        if scheme_raw.is_empty()
            || !scheme_raw.first().is_some_and(u8::is_ascii_alphabetic)
            || !scheme_raw
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        {
            return Err(Error::MalformedUri);
        }
        let scheme = if scheme_raw.eq_ignore_ascii_case(b"sip") {
            Scheme::Sip
        } else if scheme_raw.eq_ignore_ascii_case(b"sips") {
            Scheme::Sips
        } else if scheme_raw.eq_ignore_ascii_case(b"tel") {
            Scheme::Tel
        } else {
            Scheme::Other(raw.slice(..colon))
        };
        if raw
            .iter()
            .any(|&c| c <= b' ' || c == 0x7f || c == b'<' || c == b'>' || c == b'"')
        {
            return Err(Error::MalformedUri);
        }
        let rest = raw.slice(colon + 1..);
        let mut uri = Uri {
            raw: raw.clone(),
            scheme,
            user: None,
            password: None,
            host: None,
            port: None,
            params: Params::default(),
            headers: None,
        };
        match uri.scheme {
            Scheme::Sip | Scheme::Sips => parse_sip_rest(&mut uri, rest)?,
            Scheme::Tel => {
                let semi = memchr::memchr(b';', &rest).unwrap_or(rest.len());
                let number = rest.slice(..semi);
                if number.is_empty()
                    || !number.iter().all(|&c| {
                        c.is_ascii_hexdigit()
                            || matches!(c, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
                    })
                {
                    return Err(Error::MalformedUri);
                }
                uri.user = Some(number);
                uri.params = Params::parse(&rest.slice(semi..))?;
            }
            Scheme::Other(_) => {
                if rest.is_empty() {
                    return Err(Error::MalformedUri);
                }
            }
        }
        Ok(uri)
    }

    /// The verbatim text.
    pub fn as_bytes(&self) -> &Bytes {
        &self.raw
    }

    /// The user part with `%XX` escapes decoded.
    pub fn user_unescaped(&self) -> Option<Cow<'_, [u8]>> {
        self.user.as_deref().map(unescape)
    }

    /// The `transport` URI parameter, lower-cased.
    pub fn transport_param(&self) -> Option<String> {
        self.params
            .get(b"transport")
            .flatten()
            .map(|v| String::from_utf8_lossy(&v).to_ascii_lowercase())
    }

    /// Has the `lr` parameter (a loose router, RFC 3261 §16.12).
    pub fn is_loose_router(&self) -> bool {
        self.params.get(b"lr").is_some()
    }
}

impl std::fmt::Display for Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.raw))
    }
}

fn parse_sip_rest(uri: &mut Uri, rest: Bytes) -> Result<()> {
    // Userinfo ends at the first '@': no character after it may be '@'
    // unescaped, so the first one is the delimiter.
    let after_user = match memchr::memchr(b'@', &rest) {
        Some(at) => {
            let userinfo = rest.slice(..at);
            let (user, password) = match memchr::memchr(b':', &userinfo) {
                Some(c) => (userinfo.slice(..c), Some(userinfo.slice(c + 1..))),
                None => (userinfo, None),
            };
            if user.is_empty() || !valid_escapes(&user) {
                return Err(Error::MalformedUri);
            }
            uri.user = Some(user);
            uri.password = password;
            rest.slice(at + 1..)
        }
        None => rest,
    };
    let host_end = if after_user.first() == Some(&b'[') {
        memchr::memchr(b']', &after_user).ok_or(Error::MalformedUri)? + 1
    } else {
        after_user
            .iter()
            .position(|&c| matches!(c, b':' | b';' | b'?'))
            .unwrap_or(after_user.len())
    };
    uri.host = Some(Host::parse(&after_user.slice(..host_end))?);
    let mut pos = host_end;
    if after_user.get(pos) == Some(&b':') {
        let port_end = after_user
            .get(pos + 1..)
            .unwrap_or_default()
            .iter()
            .position(|&c| !c.is_ascii_digit())
            .map_or(after_user.len(), |p| p + pos + 1);
        let digits = after_user.get(pos + 1..port_end).unwrap_or_default();
        uri.port = Some(parse_port(digits).ok_or(Error::MalformedUri)?);
        pos = port_end;
    }
    let tail = after_user.slice(pos..);
    let q = memchr::memchr(b'?', &tail);
    let params = tail.slice(..q.unwrap_or(tail.len()));
    if !params.is_empty() && params.first() != Some(&b';') {
        return Err(Error::MalformedUri);
    }
    uri.params = Params::parse(&params)?;
    if let Some(q) = q {
        uri.headers = Some(tail.slice(q + 1..));
    }
    Ok(())
}

/// Parses a decimal port number (1-5 digits, at most 65535).
pub(crate) fn parse_port(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn valid_escapes(s: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        if c == b'%' {
            let ok = s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Decodes `%XX` escapes; borrows when there are none.
pub fn unescape(s: &[u8]) -> Cow<'_, [u8]> {
    if !s.contains(&b'%') {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        let hex = |j: usize| s.get(j).and_then(|d| (*d as char).to_digit(16));
        if c == b'%'
            && let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(c);
        i += 1;
    }
    Cow::Owned(out)
}
