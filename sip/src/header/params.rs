//! `;name=value` parameter lists (URI parameters, header parameters).

use bytes::Bytes;

use super::{is_token_char, quoted_end, trim};
use crate::{Error, Result};

/// A list of `;name[=value]` parameters in wire order. Names compare
/// case-insensitively; values are verbatim (quotes kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(Bytes, Option<Bytes>)>);

impl Params {
    /// Parses `*( ";" name [ "=" value ] )` (leading `;` required when not
    /// empty). Whitespace around `;` and `=` is allowed (header params).
    pub fn parse(raw: &Bytes) -> Result<Params> {
        let raw = trim(raw);
        let mut out = Vec::new();
        if raw.is_empty() {
            return Ok(Params(out));
        }
        if raw.first() != Some(&b';') {
            return Err(Error::MalformedHeader {
                header: "parameter",
            });
        }
        let mut pos = 1;
        while pos <= raw.len() {
            // Find the end of this parameter (next ';' outside quotes).
            let mut i = pos;
            while let Some(&c) = raw.get(i) {
                if c == b'"' {
                    let q = quoted_end(raw.get(i..).unwrap_or_default()).ok_or(
                        Error::MalformedHeader {
                            header: "parameter",
                        },
                    )?;
                    i += q;
                    continue;
                }
                if c == b';' {
                    break;
                }
                i += 1;
            }
            let part = trim(&raw.slice(pos..i.min(raw.len())));
            if part.is_empty() {
                return Err(Error::MalformedHeader {
                    header: "parameter",
                });
            }
            let (name, value) = match memchr::memchr(b'=', &part) {
                Some(eq) => (trim(&part.slice(..eq)), Some(trim(&part.slice(eq + 1..)))),
                None => (part, None),
            };
            let name_ok = !name.is_empty()
                && name.iter().all(|&c| {
                    is_token_char(c) || matches!(c, b'[' | b']' | b'/' | b':' | b'&' | b'$')
                });
            if !name_ok || value.as_ref().is_some_and(|v| v.is_empty()) {
                return Err(Error::MalformedHeader {
                    header: "parameter",
                });
            }
            out.push((name, value));
            pos = i + 1;
        }
        Ok(Params(out))
    }

    /// `Some(value)` when the parameter is present (`Some(None)` for a
    /// flag such as `lr` or `rport`).
    pub fn get(&self, name: &[u8]) -> Option<Option<Bytes>> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    /// All parameters.
    pub fn iter(&self) -> impl Iterator<Item = &(Bytes, Option<Bytes>)> {
        self.0.iter()
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No parameters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
