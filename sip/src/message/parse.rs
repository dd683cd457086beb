//! The zero-copy message parser (RFC 3261 §7 and the ABNF of §25.1).
//!
//! ```text
//! SIP-message   = Request / Response
//! Request       = Request-Line *( message-header ) CRLF [ message-body ]
//! Request-Line  = Method SP Request-URI SP SIP-Version CRLF
//! Status-Line   = SIP-Version SP Status-Code SP Reason-Phrase CRLF
//! message-header= field-name HCOLON field-value CRLF   ; HCOLON = *( SP / HTAB ) ":" SWS
//! ```
//!
//! Values are slices of the input [`Bytes`]; only a folded header (a line
//! continued by leading whitespace) is copied, to join its lines with one SP.
//! Leading CRLFs before the start line are skipped (§7.5). Bare LF line ends
//! are accepted, as most deployed stacks do.

use bytes::Bytes;

use super::{HeaderName, Headers, Message, Method, Request, Response, StatusCode};
use crate::header::{is_token_char, split_commas};
use crate::uri::Uri;
use crate::{Error, Result};

/// Caps applied while parsing hostile input. The defaults suit a public
/// SIP trunk; every one is a config key of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole message, headers plus body, in bytes.
    pub max_message_bytes: usize,
    /// Header field lines.
    pub max_headers: usize,
    /// One physical header line, in bytes.
    pub max_header_line_bytes: usize,
    /// Via values in total.
    pub max_vias: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_bytes: 65_535,
            max_headers: 128,
            max_header_line_bytes: 4096,
            max_vias: 70,
        }
    }
}

/// Parses one datagram: [`parse_message`], except that a datagram whose
/// header section ends with its last header line's CRLF, without the
/// empty line, is read as having no body. A datagram is one whole message
/// (§18.3), so nothing more can come, and RFC 4475's own `baddn` message
/// ends that way; over a stream the empty line is still awaited.
pub fn parse_datagram(buf: Bytes, limits: &Limits) -> Result<Message> {
    match parse_message(buf.clone(), limits) {
        Err(Error::Incomplete)
            if buf.ends_with(b"\r\n") && buf.len() < limits.max_message_bytes =>
        {
            let mut whole = Vec::with_capacity(buf.len() + 2);
            whole.extend_from_slice(&buf);
            whole.extend_from_slice(b"\r\n");
            parse_message(Bytes::from(whole), limits)
        }
        other => other,
    }
}

/// Parses one complete message. `buf` holds exactly one datagram or one
/// stream frame; the body is what follows the header section, cut to
/// Content-Length when that is smaller (§18.3: extra datagram bytes are
/// discarded), an error when larger.
pub fn parse_message(buf: Bytes, limits: &Limits) -> Result<Message> {
    if buf.len() > limits.max_message_bytes {
        return Err(Error::MessageTooLarge {
            size: buf.len(),
            limit: limits.max_message_bytes,
        });
    }
    let mut pos = 0usize;
    // §7.5: implementations processing SIP messages over stream-oriented
    // transports MUST ignore any CRLF appearing before the start-line.
    while let Some(&c) = buf.get(pos) {
        if c == b'\r' || c == b'\n' {
            pos += 1;
        } else {
            break;
        }
    }
    let (start_end, next) = line_end(&buf, pos).ok_or(Error::Incomplete)?;
    if start_end - pos > limits.max_header_line_bytes {
        return Err(Error::HeaderLineTooLong {
            limit: limits.max_header_line_bytes,
        });
    }
    let start = buf.slice(pos..start_end);
    let (headers, body_start) = parse_headers(&buf, next, limits)?;
    let content_length = headers.content_length()?;
    let rest = buf.len().saturating_sub(body_start);
    let body = match content_length {
        Some(n) if n > rest => {
            return Err(Error::BodyLengthMismatch {
                declared: n,
                present: rest,
            });
        }
        Some(n) => buf.slice(body_start..body_start + n),
        None => buf.slice(body_start..),
    };
    if start.len() >= 4
        && start
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
    {
        parse_status_line(&start).map(|(status, reason)| {
            Message::Response(Response {
                status,
                reason,
                headers,
                body,
            })
        })
    } else {
        let (method, uri) = parse_request_line(&start)?;
        Ok(Message::Request(Request {
            method,
            uri,
            headers,
            body,
        }))
    }
}

/// Finds where the header section of `buf` ends and what Content-Length it
/// declares, without building a message. `Ok(None)` means more bytes are
/// needed. Used by the stream codec for framing.
pub fn scan_headers(buf: &[u8], limits: &Limits) -> Result<Option<(usize, Option<usize>)>> {
    let mut pos = 0usize;
    let mut content_length = None;
    let mut lines = 0usize;
    loop {
        let Some(nl) = memchr::memchr(b'\n', buf.get(pos..).unwrap_or_default()) else {
            if buf.len() - pos > limits.max_header_line_bytes {
                return Err(Error::HeaderLineTooLong {
                    limit: limits.max_header_line_bytes,
                });
            }
            if buf.len() > limits.max_message_bytes {
                return Err(Error::MessageTooLarge {
                    size: buf.len(),
                    limit: limits.max_message_bytes,
                });
            }
            return Ok(None);
        };
        let line_end = pos + nl;
        let mut content_end = line_end;
        if content_end > pos && buf.get(content_end - 1) == Some(&b'\r') {
            content_end -= 1;
        }
        if line_end - pos > limits.max_header_line_bytes {
            return Err(Error::HeaderLineTooLong {
                limit: limits.max_header_line_bytes,
            });
        }
        let line = buf.get(pos..content_end).unwrap_or_default();
        pos = line_end + 1;
        if line.is_empty() {
            if lines == 0 {
                // A CRLF before the start line (keep-alive or padding).
                continue;
            }
            return Ok(Some((pos, content_length)));
        }
        lines += 1;
        if lines > limits.max_headers + 1 {
            return Err(Error::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        if let Some(colon) = memchr::memchr(b':', line) {
            let name = trim_end_ws(line.get(..colon).unwrap_or_default());
            if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
                let v = crate::header::trim_slice(line.get(colon + 1..).unwrap_or_default());
                let n = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok())
                    .ok_or(Error::MalformedHeader {
                        header: "Content-Length",
                    })?;
                content_length = Some(n);
            }
        }
    }
}

fn trim_end_ws(s: &[u8]) -> &[u8] {
    let mut end = s.len();
    while end > 0 && matches!(s.get(end - 1), Some(b' ' | b'\t')) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Returns (end of line content, start of next line) for the line at `pos`.
fn line_end(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    let nl = pos + memchr::memchr(b'\n', buf.get(pos..)?)?;
    let end = if nl > pos && buf.get(nl - 1) == Some(&b'\r') {
        nl - 1
    } else {
        nl
    };
    Some((end, nl + 1))
}

fn parse_headers(buf: &Bytes, mut pos: usize, limits: &Limits) -> Result<(Headers, usize)> {
    let mut headers = Headers::with_capacity(16);
    let mut vias = 0usize;
    let mut line_no = 1usize;
    loop {
        let (end, next) = line_end(buf, pos).ok_or(Error::Incomplete)?;
        line_no += 1;
        if end - pos > limits.max_header_line_bytes {
            return Err(Error::HeaderLineTooLong {
                limit: limits.max_header_line_bytes,
            });
        }
        if end == pos {
            return Ok((headers, next));
        }
        let line = buf.get(pos..end).unwrap_or_default();
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // A continuation without a header to continue.
            return Err(Error::MalformedHeaderLine { line: line_no });
        }
        let colon =
            memchr::memchr(b':', line).ok_or(Error::MalformedHeaderLine { line: line_no })?;
        let name_raw = trim_end_ws(line.get(..colon).unwrap_or_default());
        if name_raw.is_empty() || !name_raw.iter().all(|&c| is_token_char(c)) {
            return Err(Error::MalformedHeaderLine { line: line_no });
        }
        let name = HeaderName::from_bytes(buf.slice_ref(name_raw));
        let value_start = pos + colon + 1;
        let mut value_end = end;
        // Folded continuation lines (§7.3.1).
        let mut cont = next;
        let mut folded = false;
        while let Some(&c) = buf.get(cont) {
            if c != b' ' && c != b'\t' {
                break;
            }
            let (e, n) = line_end(buf, cont).ok_or(Error::Incomplete)?;
            if e - cont > limits.max_header_line_bytes {
                return Err(Error::HeaderLineTooLong {
                    limit: limits.max_header_line_bytes,
                });
            }
            if e == cont {
                break;
            }
            folded = true;
            value_end = e;
            cont = n;
            line_no += 1;
        }
        let value = if folded {
            unfold(buf.get(value_start..value_end).unwrap_or_default())
        } else {
            crate::header::trim(&buf.slice(value_start..value_end))
        };
        if name == HeaderName::Via {
            vias += split_commas(&value).count();
            if vias > limits.max_vias {
                return Err(Error::TooManyVias {
                    limit: limits.max_vias,
                });
            }
        }
        if headers.len() >= limits.max_headers {
            return Err(Error::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        headers.push(name, value);
        pos = cont;
    }
}

/// Joins folded lines: every CRLF followed by whitespace becomes one SP.
fn unfold(raw: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(raw.len());
    let lines = raw.split(|&c| c == b'\n').peekable();
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let t = crate::header::trim_slice(line);
        if !t.is_empty() {
            if !out.is_empty() {
                out.push(b' ');
            }
            out.extend_from_slice(t);
        }
    }
    Bytes::from(out)
}

fn parse_version(v: &[u8]) -> Result<()> {
    if v.eq_ignore_ascii_case(b"SIP/2.0") {
        return Ok(());
    }
    // SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT: well-formed but another version.
    let well_formed = v.len() > 4
        && v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
        && v.get(4..).is_some_and(|rest| {
            let mut parts = rest.split(|&c| c == b'.');
            let a = parts.next().unwrap_or_default();
            let b = parts.next().unwrap_or_default();
            parts.next().is_none()
                && !a.is_empty()
                && !b.is_empty()
                && a.iter().all(u8::is_ascii_digit)
                && b.iter().all(u8::is_ascii_digit)
        });
    if well_formed {
        Err(Error::UnsupportedVersion)
    } else {
        Err(Error::MalformedStartLine)
    }
}

fn parse_request_line(line: &Bytes) -> Result<(Method, Uri)> {
    // Exactly one SP between the elements (§25.1); anything else is malformed.
    let sp1 = memchr::memchr(b' ', line).ok_or(Error::MalformedStartLine)?;
    let sp2 = memchr::memrchr(b' ', line).ok_or(Error::MalformedStartLine)?;
    if sp2 <= sp1 + 1 {
        return Err(Error::MalformedStartLine);
    }
    let method_raw = line.get(..sp1).unwrap_or_default();
    if method_raw.is_empty() || !method_raw.iter().all(|&c| is_token_char(c)) {
        return Err(Error::MalformedStartLine);
    }
    let uri_raw = line.slice(sp1 + 1..sp2);
    if uri_raw.iter().any(|&c| c == b' ' || c == b'\t') {
        // Whitespace inside the Request-URI (RFC 4475 §3.1.2.11 "lwsruri").
        return Err(Error::MalformedUri);
    }
    parse_version(line.get(sp2 + 1..).unwrap_or_default())?;
    let method = Method::from_bytes(line.slice(..sp1));
    let uri = Uri::parse(&uri_raw)?;
    Ok((method, uri))
}

fn parse_status_line(line: &Bytes) -> Result<(StatusCode, Bytes)> {
    let sp1 = memchr::memchr(b' ', line).ok_or(Error::MalformedStartLine)?;
    parse_version(line.get(..sp1).unwrap_or_default())?;
    let code = line
        .get(sp1 + 1..sp1 + 4)
        .ok_or(Error::MalformedStartLine)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(Error::MalformedStartLine);
    }
    let n = code
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    let status = StatusCode::new(n).ok_or(Error::MalformedStartLine)?;
    match line.get(sp1 + 4) {
        None => Ok((status, Bytes::new())),
        Some(b' ') => Ok((status, line.slice(sp1 + 5..))),
        Some(_) => Err(Error::MalformedStartLine),
    }
}
