//! Typed header values (RFC 3261 §20 and the ABNF of §25.1), parsed on
//! demand from the verbatim bytes a [`crate::message::Headers`] keeps.

mod auth;
mod cseq;
mod media_type;
mod name_addr;
mod params;
mod via;

use bytes::Bytes;

pub use auth::{AuthParams, Challenge, Credentials};
pub use cseq::CSeq;
pub use media_type::MediaType;
pub use name_addr::{Contacts, NameAddr};
pub use params::Params;
pub use via::Via;

/// `token` characters of RFC 3261 §25.1.
pub fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Is every byte a token character (and at least one)?
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&c| is_token_char(c))
}

/// Trims SP, HTAB, CR and LF from both ends of a slice.
pub fn trim_slice(s: &[u8]) -> &[u8] {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let start = s.iter().position(|c| !ws(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !ws(c)).map_or(start, |e| e + 1);
    s.get(start..end).unwrap_or_default()
}

/// Trims whitespace from both ends, sharing the buffer.
pub fn trim(b: &Bytes) -> Bytes {
    let t = trim_slice(b);
    if t.is_empty() {
        Bytes::new()
    } else {
        b.slice_ref(t)
    }
}

/// Parses a decimal `u32` (surrounding whitespace allowed).
pub fn parse_u32(v: &[u8]) -> Option<u32> {
    let t = trim_slice(v);
    if t.is_empty() || t.len() > 10 || !t.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(t).ok()?.parse().ok()
}

/// Splits a header value at the commas that separate values (§7.3.1),
/// ignoring commas inside quoted strings and `<...>`. Each part is trimmed.
pub fn split_commas(v: &Bytes) -> SplitCommas {
    SplitCommas {
        v: v.clone(),
        pos: 0,
    }
}

/// Iterator of [`split_commas`].
#[derive(Debug)]
pub struct SplitCommas {
    v: Bytes,
    pos: usize,
}

impl Iterator for SplitCommas {
    type Item = Bytes;
    fn next(&mut self) -> Option<Bytes> {
        if self.pos >= self.v.len() {
            return None;
        }
        let start = self.pos;
        let mut quoted = false;
        let mut angle = false;
        let mut i = start;
        while let Some(&c) = self.v.get(i) {
            match c {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b'<' if !quoted => angle = true,
                b'>' if !quoted => angle = false,
                b',' if !quoted && !angle => break,
                _ => {}
            }
            i += 1;
        }
        let end = i.min(self.v.len());
        self.pos = end + 1;
        Some(trim(&self.v.slice(start..end)))
    }
}

/// Finds the end of a quoted string starting at `s[0] == '"'`; returns the
/// index just past the closing quote.
pub(crate) fn quoted_end(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while let Some(&c) = s.get(i) {
        match c {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Removes the quotes and `\` escapes of a quoted string; returns the
/// input unchanged when it is not quoted.
pub fn unquote(v: &Bytes) -> Bytes {
    if v.len() < 2 || v.first() != Some(&b'"') || v.last() != Some(&b'"') {
        return v.clone();
    }
    let inner = v.slice(1..v.len() - 1);
    if !inner.contains(&b'\\') {
        return inner;
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut it = inner.iter();
    while let Some(&c) = it.next() {
        if c == b'\\' {
            if let Some(&n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    Bytes::from(out)
}
