//! Answering a request we could not parse (RFC 3261 §8.2: 400 "where a
//! response is possible").
//!
//! A response needs the request's Via, From, To, Call-ID and CSeq. When the
//! message as a whole did not parse, those lines may still be intact: this
//! scans the raw header lines for them and copies them verbatim. The reply
//! is never much larger than the request (a reflection amplifier is what an
//! attacker would want).

use std::fmt::Write as _;

use bytes::Bytes;

use super::StatusCode;

/// Builds `SIP/2.0 <status> <reason>` for the raw bytes of a request, or
/// `None` when it is a response, has no request line, or lacks one of Via,
/// From, To, Call-ID, CSeq.
pub fn reply_to_raw(raw: &[u8], status: StatusCode, reason: &str) -> Option<Bytes> {
    let raw = raw.get(..raw.len().min(16 * 1024))?;
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let start = lines.by_ref().find(|l| !l.is_empty())?;
    if start.len() < 8 || start.get(..4)?.eq_ignore_ascii_case("SIP/") || !start.contains(' ') {
        return None;
    }
    let wanted = [
        ("via", "v", "Via"),
        ("from", "f", "From"),
        ("to", "t", "To"),
        ("call-id", "i", "Call-ID"),
        ("cseq", "", "CSeq"),
    ];
    let mut found: [Vec<&str>; 5] = Default::default();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        for (i, (full, compact, _)) in wanted.iter().enumerate() {
            if (name == *full || (!compact.is_empty() && name == *compact))
                && let Some(slot) = found.get_mut(i)
            {
                slot.push(value.trim());
            }
        }
    }
    if found.iter().any(Vec::is_empty) {
        return None;
    }
    let reason: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let mut out = String::with_capacity(raw.len().min(2048));
    let _ = write!(out, "SIP/2.0 {status} {reason}\r\n");
    for (i, (_, _, canon)) in wanted.iter().enumerate() {
        for v in found.get(i).into_iter().flatten() {
            let v: String = v.chars().filter(|c| !c.is_control()).collect();
            let _ = write!(out, "{canon}: {v}\r\n");
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_the_five_headers_of_a_broken_request() {
        let raw = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: zz\r\n\r\n";
        let r = reply_to_raw(
            raw,
            StatusCode::BAD_REQUEST,
            "Malformed Content-Length Header",
        )
        .unwrap();
        let t = std::str::from_utf8(&r).unwrap();
        assert!(t.starts_with("SIP/2.0 400 Malformed Content-Length Header\r\n"));
        assert!(t.contains("From: <sip:x@y>;tag=1\r\n"));
        assert!(r.len() <= raw.len() + 40);
    }

    #[test]
    fn no_reply_without_the_headers_or_to_a_response() {
        assert!(
            reply_to_raw(
                b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n",
                StatusCode::BAD_REQUEST,
                "x"
            )
            .is_none()
        );
        assert!(
            reply_to_raw(
                b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n",
                StatusCode::BAD_REQUEST,
                "x"
            )
            .is_none()
        );
        assert!(reply_to_raw(b"\xff\xfe garbage", StatusCode::BAD_REQUEST, "x").is_none());
    }
}
