//! name-addr / addr-spec values: From, To, Contact, Route, Record-Route
//! (RFC 3261 §20.10, §25.1).
//!
//! ```text
//! name-addr    = [ display-name ] LAQUOT addr-spec RAQUOT
//! display-name = *(token LWS) / quoted-string
//! from-spec    = ( name-addr / addr-spec ) *( SEMI from-param )
//! ```
//! In the addr-spec form everything after the first `;` is a header
//! parameter, never a URI parameter (§20.10).

use bytes::Bytes;

use super::{Params, quoted_end, trim, unquote};
use crate::uri::Uri;
use crate::{Error, Result};

/// A URI with an optional display name and header parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name (unquoted), if any.
    pub display: Option<Bytes>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters (`tag`, `expires`, `q`, ...).
    pub params: Params,
}

impl NameAddr {
    /// Parses a single name-addr or addr-spec with parameters.
    pub fn parse(v: &Bytes) -> Result<NameAddr> {
        let bad = Error::MalformedHeader {
            header: "name-addr",
        };
        let v = trim(v);
        let (display, uri_raw, rest) = if v.first() == Some(&b'"') {
            let q = quoted_end(&v).ok_or(bad.clone())?;
            let display = unquote(&v.slice(..q));
            let after = trim(&v.slice(q..));
            if after.first() != Some(&b'<') {
                return Err(bad);
            }
            let close = memchr::memchr(b'>', &after).ok_or(bad.clone())?;
            (
                Some(display),
                after.slice(1..close),
                after.slice(close + 1..),
            )
        } else if let Some(lt) = memchr::memchr(b'<', &v) {
            let display = trim(&v.slice(..lt));
            if !display
                .iter()
                .all(|&c| super::is_token_char(c) || c == b' ' || c == b'\t')
            {
                return Err(bad);
            }
            let close =
                lt + memchr::memchr(b'>', v.get(lt..).unwrap_or_default()).ok_or(bad.clone())?;
            let display = (!display.is_empty()).then_some(display);
            (display, v.slice(lt + 1..close), v.slice(close + 1..))
        } else {
            let semi = memchr::memchr(b';', &v).unwrap_or(v.len());
            (None, trim(&v.slice(..semi)), v.slice(semi..))
        };
        let uri = Uri::parse(&uri_raw)?;
        let params = Params::parse(&rest)?;
        Ok(NameAddr {
            display,
            uri,
            params,
        })
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<Bytes> {
        self.params.get(b"tag").flatten()
    }
}

/// Contact values: `*` (REGISTER only) or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// `Contact: *`
    Star,
    /// Zero or more name-addrs.
    List(Vec<NameAddr>),
}

impl Contacts {
    /// Parses every Contact line.
    pub fn parse<'a>(lines: impl Iterator<Item = &'a Bytes>) -> Result<Contacts> {
        let mut list = Vec::new();
        let mut star = false;
        for line in lines {
            for v in super::split_commas(line) {
                if &v[..] == b"*" {
                    star = true;
                } else {
                    list.push(
                        NameAddr::parse(&v)
                            .map_err(|_| Error::MalformedHeader { header: "Contact" })?,
                    );
                }
            }
        }
        match (star, list.is_empty()) {
            (true, true) => Ok(Contacts::Star),
            (true, false) => Err(Error::MalformedHeader { header: "Contact" }),
            (false, _) => Ok(Contacts::List(list)),
        }
    }

    /// The first contact, if a list.
    pub fn first(&self) -> Option<&NameAddr> {
        match self {
            Contacts::Star => None,
            Contacts::List(l) => l.first(),
        }
    }
}
