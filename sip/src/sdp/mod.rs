//! The slice of SDP (RFC 4566) and offer/answer (RFC 3264) a media UAS needs:
//! read the audio stream of an offer, choose a codec, write the answer.
//!
//! ```text
//! v=0
//! o=<username> <sess-id> <sess-version> IN IP4 <address>
//! s=<session name>
//! c=IN IP4 <address>
//! t=0 0
//! m=audio <port> RTP/AVP <fmt list>
//! a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]
//! ```
//! Unknown lines are ignored, as RFC 4566 §5 asks of a receiver.

use std::net::{IpAddr, SocketAddr};

use crate::{Error, Result};

mod session;

pub use session::{LocalSession, MediaUpdate, ReofferError};

/// Media direction attributes (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// a=sendrecv (the default)
    SendRecv,
    /// a=sendonly
    SendOnly,
    /// a=recvonly
    RecvOnly,
    /// a=inactive
    Inactive,
}

impl Direction {
    /// We may send.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
    /// We may receive.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
    /// The answer's direction for an offered one (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }
    /// The attribute's name (`sendrecv`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// One payload format of a media line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// RTP payload type.
    pub payload_type: u8,
    /// Encoding name (`PCMU`, `telephone-event`), from rtpmap or the static table.
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// The fmtp parameters, verbatim.
    pub fmtp: Option<String>,
}

/// The audio stream of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioOffer {
    /// Where the offerer wants RTP (connection address and media port).
    pub rtp: SocketAddr,
    /// Transport profile (`RTP/AVP`).
    pub proto: String,
    /// Formats in the offerer's order of preference.
    pub formats: Vec<Format>,
    /// Direction.
    pub direction: Direction,
    /// a=rtcp-mux was offered.
    pub rtcp_mux: bool,
    /// a=ptime, in ms.
    pub ptime: Option<u32>,
}

/// Static payload types of RFC 3551 §6 that a telephony server meets.
fn static_format(pt: u8) -> Option<(&'static str, u32)> {
    match pt {
        0 => Some(("PCMU", 8000)),
        8 => Some(("PCMA", 8000)),
        9 => Some(("G722", 8000)),
        3 => Some(("GSM", 8000)),
        18 => Some(("G729", 8000)),
        _ => None,
    }
}

/// Caps on what we read from a peer's SDP.
const MAX_SDP_BYTES: usize = 16 * 1024;
const MAX_FORMATS: usize = 64;

/// Parses an SDP body and returns its first audio stream.
pub fn parse_audio_offer(body: &[u8]) -> Result<AudioOffer> {
    if body.len() > MAX_SDP_BYTES {
        return Err(Error::MalformedSdp("body too large"));
    }
    let text = std::str::from_utf8(body).map_err(|_| Error::MalformedSdp("not UTF-8"))?;
    let mut session_addr: Option<IpAddr> = None;
    let mut media_addr: Option<IpAddr> = None;
    let mut in_audio = false;
    let mut seen_audio = false;
    let mut port = 0u16;
    let mut proto = String::new();
    let mut formats: Vec<Format> = Vec::new();
    let mut direction = Direction::SendRecv;
    let mut session_direction = Direction::SendRecv;
    let mut rtcp_mux = false;
    let mut ptime = None;
    let mut saw_version = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let Some((kind, value)) = line.split_once('=') else {
            if line.is_empty() {
                continue;
            }
            return Err(Error::MalformedSdp("line is not <type>=<value>"));
        };
        match kind {
            "v" => saw_version = value == "0",
            "c" => {
                let addr = parse_connection(value)?;
                if in_audio {
                    media_addr = Some(addr);
                } else if !seen_audio {
                    session_addr = Some(addr);
                }
            }
            "m" => {
                if seen_audio {
                    in_audio = false;
                    continue;
                }
                let mut it = value.split_ascii_whitespace();
                let media = it.next().unwrap_or_default();
                if media != "audio" {
                    in_audio = false;
                    continue;
                }
                port = it
                    .next()
                    .and_then(|p| p.split('/').next())
                    .and_then(|p| p.parse().ok())
                    .ok_or(Error::MalformedSdp("bad media port"))?;
                proto = it.next().unwrap_or_default().to_owned();
                for pt in it.take(MAX_FORMATS) {
                    let pt: u8 = pt
                        .parse()
                        .ok()
                        .filter(|p| *p < 128)
                        .ok_or(Error::MalformedSdp("bad payload type"))?;
                    let (encoding, clock_rate) = static_format(pt).unwrap_or(("", 0));
                    formats.push(Format {
                        payload_type: pt,
                        encoding: encoding.to_owned(),
                        clock_rate,
                        fmtp: None,
                    });
                }
                in_audio = true;
                seen_audio = true;
            }
            "a" => {
                let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                let dir = match name {
                    "sendrecv" => Some(Direction::SendRecv),
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                if let Some(d) = dir {
                    if in_audio {
                        direction = d;
                    } else if !seen_audio {
                        session_direction = d;
                        direction = d;
                    }
                    continue;
                }
                if !in_audio {
                    continue;
                }
                match name {
                    "rtpmap" => {
                        let (pt, rest) = arg
                            .split_once(' ')
                            .ok_or(Error::MalformedSdp("bad rtpmap"))?;
                        let pt: u8 = pt.parse().map_err(|_| Error::MalformedSdp("bad rtpmap"))?;
                        let mut parts = rest.trim().split('/');
                        let enc = parts.next().unwrap_or_default();
                        let rate: u32 = parts
                            .next()
                            .and_then(|r| r.parse().ok())
                            .ok_or(Error::MalformedSdp("bad rtpmap clock rate"))?;
                        if let Some(f) = formats.iter_mut().find(|f| f.payload_type == pt) {
                            f.encoding = enc.to_owned();
                            f.clock_rate = rate;
                        }
                    }
                    "fmtp" => {
                        if let Some((pt, rest)) = arg.split_once(' ')
                            && let Ok(pt) = pt.parse::<u8>()
                            && let Some(f) = formats.iter_mut().find(|f| f.payload_type == pt)
                        {
                            f.fmtp = Some(rest.trim().to_owned());
                        }
                    }
                    "rtcp-mux" => rtcp_mux = true,
                    "ptime" => ptime = arg.trim().parse().ok(),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if !saw_version {
        return Err(Error::MalformedSdp("missing v=0"));
    }
    if !seen_audio {
        return Err(Error::MalformedSdp("no audio stream"));
    }
    let _ = session_direction;
    let ip = media_addr
        .or(session_addr)
        .ok_or(Error::MalformedSdp("no connection address"))?;
    Ok(AudioOffer {
        rtp: SocketAddr::new(ip, port),
        proto,
        formats,
        direction,
        rtcp_mux,
        ptime,
    })
}

fn parse_connection(value: &str) -> Result<IpAddr> {
    let mut it = value.split_ascii_whitespace();
    let (net, _kind, addr) = (it.next(), it.next(), it.next());
    if net != Some("IN") {
        return Err(Error::MalformedSdp("bad c= line"));
    }
    addr.and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
        .ok_or(Error::MalformedSdp("bad c= address"))
}

/// What we chose from an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The audio codec.
    pub codec: Format,
    /// telephone-event at the codec's clock rate, if offered.
    pub telephone_event: Option<Format>,
}

/// Picks the first codec of `preference` (encoding names, case-insensitive)
/// the offer contains, and telephone-event at that codec's rate.
/// `None` means nothing is shared: answer 488.
pub fn negotiate(offer: &AudioOffer, preference: &[&str]) -> Option<Negotiated> {
    if !offer.proto.eq_ignore_ascii_case("RTP/AVP") && !offer.proto.eq_ignore_ascii_case("RTP/AVPF")
    {
        return None;
    }
    // Every codec we speak has an 8 kHz RTP clock (G.722 included, RFC
    // 3551 §4.5.2); an L16/16000 or L16/44100 offer is not ours.
    let codec = preference.iter().find_map(|want| {
        offer
            .formats
            .iter()
            .find(|f| f.encoding.eq_ignore_ascii_case(want) && f.clock_rate == 8000)
    })?;
    let telephone_event = offer
        .formats
        .iter()
        .find(|f| {
            f.encoding.eq_ignore_ascii_case("telephone-event") && f.clock_rate == codec.clock_rate
        })
        .cloned();
    Some(Negotiated {
        codec: codec.clone(),
        telephone_event,
    })
}

/// Our formats for an offer (late offer: the INVITE had no SDP): the
/// codecs named in `codecs`, in that order, with their static payload types
/// (L16/8000 on dynamic 96), then telephone-event on 101.
pub fn offer_formats(codecs: &[&str]) -> Vec<Format> {
    let mut out: Vec<Format> = codecs
        .iter()
        .filter_map(|c| {
            let (pt, name) = match c.to_ascii_uppercase().as_str() {
                "PCMU" => (0, "PCMU"),
                "PCMA" => (8, "PCMA"),
                "G722" => (9, "G722"),
                "L16" => (96, "L16"),
                _ => return None,
            };
            Some(Format {
                payload_type: pt,
                encoding: name.to_owned(),
                clock_rate: 8000,
                fmtp: None,
            })
        })
        .collect();
    out.push(Format {
        payload_type: 101,
        encoding: "telephone-event".to_owned(),
        clock_rate: 8000,
        fmtp: Some("0-16".to_owned()),
    });
    out
}

/// Writes an SDP offer for one audio stream with `formats`.
pub fn write_offer(
    session_id: u64,
    version: u64,
    local_rtp: SocketAddr,
    formats: &[Format],
    ptime_ms: u32,
) -> String {
    let ip = local_rtp.ip();
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let pts: Vec<String> = formats.iter().map(|f| f.payload_type.to_string()).collect();
    let mut attrs = String::new();
    for f in formats {
        attrs.push_str(&format!(
            "a=rtpmap:{} {}/{}\r\n",
            f.payload_type, f.encoding, f.clock_rate
        ));
        if let Some(p) = &f.fmtp {
            attrs.push_str(&format!("a=fmtp:{} {p}\r\n", f.payload_type));
        }
    }
    format!(
        "v=0\r\no=dhwani {session_id} {version} IN {fam} {ip}\r\ns=dhwani\r\nc=IN {fam} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {pts}\r\n{attrs}a=ptime:{ptime_ms}\r\na=sendrecv\r\n",
        port = local_rtp.port(),
        pts = pts.join(" "),
    )
}

/// Writes an SDP answer for one audio stream.
pub fn write_answer(
    session_id: u64,
    version: u64,
    local_rtp: SocketAddr,
    chosen: &Negotiated,
    direction: Direction,
    ptime_ms: u32,
) -> String {
    let ip = local_rtp.ip();
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut pts = chosen.codec.payload_type.to_string();
    let mut attrs = format!(
        "a=rtpmap:{} {}/{}\r\n",
        chosen.codec.payload_type, chosen.codec.encoding, chosen.codec.clock_rate
    );
    if let Some(te) = &chosen.telephone_event {
        pts.push_str(&format!(" {}", te.payload_type));
        attrs.push_str(&format!(
            "a=rtpmap:{} telephone-event/{}\r\na=fmtp:{} 0-16\r\n",
            te.payload_type, te.clock_rate, te.payload_type
        ));
    }
    format!(
        "v=0\r\no=dhwani {session_id} {version} IN {fam} {ip}\r\ns=dhwani\r\nc=IN {fam} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {pts}\r\n{attrs}a=ptime:{ptime_ms}\r\na={dir}\r\n",
        port = local_rtp.port(),
        dir = direction.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

    #[test]
    fn our_offer_reads_back_and_an_answer_to_it_negotiates() {
        let formats = offer_formats(&["PCMU", "G722", "bogus"]);
        let text = write_offer(7, 1, "127.0.0.1:4000".parse().unwrap(), &formats, 20);
        let o = parse_audio_offer(text.as_bytes()).unwrap();
        let names: Vec<_> = o.formats.iter().map(|f| f.encoding.as_str()).collect();
        assert_eq!(names, ["PCMU", "G722", "telephone-event"]);
        assert_eq!(o.rtp.port(), 4000);
        // The peer answers with G.722 only.
        let answer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 9 101\r\na=rtpmap:101 telephone-event/8000\r\n";
        let a = parse_audio_offer(answer.as_bytes()).unwrap();
        let n = negotiate(&a, &["PCMU", "G722"]).unwrap();
        assert_eq!(n.codec.encoding, "G722");
        assert_eq!(n.telephone_event.map(|t| t.payload_type), Some(101));
    }

    #[test]
    fn an_offer_is_read_in_the_offerers_order() {
        let o = parse_audio_offer(OFFER.as_bytes()).unwrap();
        assert_eq!(o.rtp, "127.0.0.1:6000".parse().unwrap());
        let names: Vec<_> = o.formats.iter().map(|f| f.encoding.as_str()).collect();
        assert_eq!(names, ["PCMA", "PCMU", "telephone-event"]);
        assert_eq!(o.formats[2].fmtp.as_deref(), Some("0-15"));
    }

    #[test]
    fn negotiation_follows_our_preference_and_adds_telephone_event() {
        let o = parse_audio_offer(OFFER.as_bytes()).unwrap();
        let n = negotiate(&o, &["PCMU", "PCMA"]).unwrap();
        assert_eq!(n.codec.payload_type, 0);
        assert_eq!(n.telephone_event.unwrap().payload_type, 101);
        let answer = write_answer(
            1,
            1,
            "127.0.0.1:10000".parse().unwrap(),
            &negotiate(&o, &["PCMA"]).unwrap(),
            Direction::SendRecv,
            20,
        );
        assert!(
            answer.contains("m=audio 10000 RTP/AVP 8 101\r\n"),
            "{answer}"
        );
        let back = parse_audio_offer(answer.as_bytes()).unwrap();
        assert_eq!(back.formats[0].encoding, "PCMA");
    }

    #[test]
    fn nothing_shared_means_no_answer() {
        let offer = OFFER.replace("8 0 101", "18 101");
        let o = parse_audio_offer(offer.as_bytes()).unwrap();
        assert!(negotiate(&o, &["PCMU", "PCMA"]).is_none());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "",
            "v=0\r\nm=audio x RTP/AVP 0\r\n",
            "v=0\r\nc=IN IP4 nope\r\nm=audio 1 RTP/AVP 0\r\n",
            "hello",
            "v=0\r\nm=audio 5 RTP/AVP 300\r\n",
        ] {
            assert!(parse_audio_offer(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
