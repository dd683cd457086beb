//! DTMF in SIP INFO bodies: `application/dtmf-relay` (`Signal=5` and
//! `Duration=160` lines, as Cisco and most PBXes send) and
//! `application/dtmf` (the bare key).

use std::time::Duration;

use super::rfc4733::{Digit, code_of};

/// Longest body we look at.
const MAX_BODY: usize = 512;

/// The digit in an INFO body of `content_type`, if any.
pub fn parse(content_type: &str, body: &[u8]) -> Option<Digit> {
    let body = std::str::from_utf8(body.get(..body.len().min(MAX_BODY))?).ok()?;
    let ct = content_type.split(';').next()?.trim().to_ascii_lowercase();
    match ct.as_str() {
        "application/dtmf-relay" => {
            let mut key = None;
            let mut duration = Duration::from_millis(250);
            for line in body.lines() {
                let Some((name, value)) = line.split_once('=') else {
                    continue;
                };
                let value = value.trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "signal" => key = signal_key(value),
                    "duration" => {
                        if let Ok(ms) = value.parse::<u64>() {
                            duration = Duration::from_millis(ms.min(10_000));
                        }
                    }
                    _ => {}
                }
            }
            key.map(|key| Digit { key, duration })
        }
        "application/dtmf" => signal_key(body.trim()).map(|key| Digit {
            key,
            duration: Duration::from_millis(250),
        }),
        _ => None,
    }
}

/// `5`, `*`, `#`, `A`, or the event number (`10` = `*`, `11` = `#`).
fn signal_key(v: &str) -> Option<char> {
    let mut chars = v.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if code_of(c).is_some() => Some(c.to_ascii_uppercase()),
        _ => match v.parse::<u8>() {
            Ok(10) => Some('*'),
            Ok(11) => Some('#'),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_relay_and_plain_dtmf() {
        let d = parse("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n");
        assert_eq!(
            d,
            Some(Digit {
                key: '5',
                duration: Duration::from_millis(160)
            })
        );
        assert_eq!(
            parse("Application/DTMF-Relay; x=y", b"Signal= #\nDuration=100").map(|d| d.key),
            Some('#')
        );
        assert_eq!(
            parse("application/dtmf-relay", b"Signal=11\r\n").map(|d| d.key),
            Some('#')
        );
        assert_eq!(
            parse("application/dtmf", b"7\r\n").map(|d| d.key),
            Some('7')
        );
        assert_eq!(parse("application/dtmf", b"a").map(|d| d.key), Some('A'));
        assert_eq!(parse("application/dtmf-relay", b"Signal=x"), None);
        assert_eq!(parse("text/plain", b"Signal=5"), None);
        assert_eq!(parse("application/dtmf", &[0xff, 0xfe]), None);
    }
}
