//! UAS dialogs (RFC 3261 §12, §13.3.1.4, §14, §15).
//!
//! A [`Dialog`] is created from an INVITE we answer with 2xx. It owns what
//! the RFC says a dialog holds (Call-ID, tags, remote target, route set,
//! CSeq numbers) and the one timer-driven duty of a UAS dialog: retransmit
//! the 2xx at T1, 2T1, ... capped at T2 until the ACK arrives, and give up
//! after 64*T1, telling the TU to send BYE (§13.3.1.4).
//!
//! ```text
//!   accept(2xx) ---> Confirmed, awaiting ACK --ACK--> Confirmed
//!                       | 2xx resent at T1, 2T1, .. T2
//!                       | 64*T1 without ACK: event AckTimeout (send BYE)
//! ```
//! Sans-IO: `now` is passed in; the dialog returns bytes, never sends.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::message::{HeaderName, Headers, Method, Request, StatusCode};
use crate::transaction::Timers;
use crate::uri::Uri;
use crate::{Error, Result};

/// Identifies a dialog: Call-ID, local tag, remote tag (§12).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: Bytes,
    /// Our tag (the To tag of our 2xx).
    pub local_tag: Bytes,
    /// The peer's tag (From tag of the INVITE).
    pub remote_tag: Bytes,
}

impl DialogId {
    /// The id a request received within a dialog carries (§12.2.2):
    /// the To tag is ours, the From tag theirs.
    pub fn for_incoming(req: &Request) -> Result<DialogId> {
        Ok(DialogId {
            call_id: req.call_id()?,
            local_tag: req.to()?.tag().unwrap_or_default(),
            remote_tag: req.from()?.tag().unwrap_or_default(),
        })
    }
}

/// What a dialog emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes (a 2xx retransmission) to the peer.
    Transmit(Bytes),
    /// 64*T1 passed without an ACK: the TU must end the call with BYE.
    AckTimeout,
}

/// A UAS dialog.
#[derive(Debug)]
pub struct Dialog {
    id: DialogId,
    timers: Timers,
    reliable: bool,
    local_uri: Bytes,
    remote_uri: Bytes,
    remote_target: Uri,
    route_set: Vec<Bytes>,
    remote_cseq: u32,
    local_cseq: u32,
    invite_cseq: u32,
    pending_2xx: Option<Pending2xx>,
    out: VecDeque<Output>,
}

#[derive(Debug)]
struct Pending2xx {
    bytes: Bytes,
    interval: Duration,
    next: Option<Instant>,
    give_up: Instant,
}

impl Dialog {
    /// Creates the dialog of a 2xx to `invite` (§12.1.1). `local_tag` is the
    /// To tag of our 2xx; `local_cseq` the first CSeq we will use.
    pub fn new_uas(
        invite: &Request,
        local_tag: Bytes,
        timers: Timers,
        reliable: bool,
        local_cseq: u32,
    ) -> Result<Dialog> {
        let from = invite.from()?;
        // An RFC 2543 INVITE may have no Contact: then the remote target is
        // the From URI, as RFC 2543 had it (RFC 4475 §3.4.1, `inv2543`).
        let remote_target = match invite.headers.contacts()?.first() {
            Some(c) => c.uri.clone(),
            None if invite.headers.get(&HeaderName::Contact).is_none() => from.uri.clone(),
            None => return Err(Error::MissingHeader { header: "Contact" }),
        };
        // §12.1.1: the route set is the Record-Route list, in order.
        let route_set = invite
            .headers
            .get_all(&HeaderName::RecordRoute)
            .flat_map(crate::header::split_commas)
            .collect();
        let to = invite
            .headers
            .get(&HeaderName::To)
            .cloned()
            .unwrap_or_default();
        let mut local_uri = Vec::with_capacity(to.len() + 5 + local_tag.len());
        local_uri.extend_from_slice(&to);
        local_uri.extend_from_slice(b";tag=");
        local_uri.extend_from_slice(&local_tag);
        let cseq = invite.cseq()?.seq;
        Ok(Dialog {
            id: DialogId {
                call_id: invite.call_id()?,
                local_tag,
                remote_tag: from.tag().unwrap_or_default(),
            },
            timers,
            reliable,
            local_uri: Bytes::from(local_uri),
            remote_uri: invite
                .headers
                .get(&HeaderName::From)
                .cloned()
                .unwrap_or_default(),
            remote_target,
            route_set,
            remote_cseq: cseq,
            local_cseq,
            invite_cseq: cseq,
            pending_2xx: None,
            out: VecDeque::new(),
        })
    }

    /// Creates the dialog of a 2xx `response` to our `invite` (§12.1.2):
    /// the route set is the response's Record-Route reversed, the remote
    /// target its Contact, our CSeq continues from the INVITE's.
    pub fn new_uac(
        invite: &Request,
        response: &crate::message::Response,
        timers: Timers,
        reliable: bool,
    ) -> Result<Dialog> {
        let to = response.to()?;
        let remote_target = match response.headers.contacts()?.first() {
            Some(c) => c.uri.clone(),
            None => return Err(Error::MissingHeader { header: "Contact" }),
        };
        let mut route_set: Vec<Bytes> = response
            .headers
            .get_all(&HeaderName::RecordRoute)
            .flat_map(crate::header::split_commas)
            .collect();
        route_set.reverse();
        let from = invite.from()?;
        let cseq = invite.cseq()?.seq;
        Ok(Dialog {
            id: DialogId {
                call_id: invite.call_id()?,
                local_tag: from.tag().unwrap_or_default(),
                remote_tag: to.tag().unwrap_or_default(),
            },
            timers,
            reliable,
            local_uri: invite
                .headers
                .get(&HeaderName::From)
                .cloned()
                .unwrap_or_default(),
            remote_uri: response
                .headers
                .get(&HeaderName::To)
                .cloned()
                .unwrap_or_default(),
            remote_target,
            route_set,
            remote_cseq: 0,
            local_cseq: cseq,
            invite_cseq: cseq,
            pending_2xx: None,
            out: VecDeque::new(),
        })
    }

    /// The ACK of our 2xx-answered INVITE (§13.2.2.4): the INVITE's CSeq
    /// number, a fresh branch in `via`, the route set, to the remote target.
    pub fn make_ack(&mut self, via: &str) -> Request {
        let cseq = self.local_cseq;
        let saved = self.local_cseq;
        self.local_cseq = self.invite_cseq.saturating_sub(1);
        let mut ack = self.make_request(Method::Ack, via, "");
        self.local_cseq = saved.max(cseq);
        ack.headers.remove(&HeaderName::Contact);
        ack
    }

    /// The dialog id.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// The remote target (Contact of the peer).
    pub fn remote_target(&self) -> &Uri {
        &self.remote_target
    }

    /// Is the 2xx still waiting for its ACK?
    pub fn is_awaiting_ack(&self) -> bool {
        self.pending_2xx.is_some()
    }

    /// We sent the 2xx (`bytes`); retransmit it until the ACK (§13.3.1.4).
    /// On reliable transports the transport itself retransmits, so only the
    /// 64*T1 give-up applies.
    pub fn accept(&mut self, now: Instant, bytes: Bytes) {
        let next = (!self.reliable).then_some(now + self.timers.t1);
        self.pending_2xx = Some(Pending2xx {
            bytes,
            interval: self.timers.t1,
            next,
            give_up: now + self.timers.t1x64(),
        });
    }

    /// An ACK for this dialog arrived.
    pub fn handle_ack(&mut self, ack: &Request) {
        if ack.cseq().map(|c| c.seq) == Ok(self.invite_cseq) {
            self.pending_2xx = None;
        }
    }

    /// An in-dialog request (not ACK) arrived: checks CSeq ordering
    /// (§12.2.2: lower than the last one gets 500) and refreshes the
    /// remote target on re-INVITE (§12.2.2 target refresh).
    pub fn handle_request(&mut self, req: &Request) -> std::result::Result<(), StatusCode> {
        let cseq = req.cseq().map_err(|_| StatusCode::BAD_REQUEST)?.seq;
        if cseq <= self.remote_cseq && req.method != Method::Cancel {
            return Err(StatusCode::SERVER_INTERNAL_ERROR);
        }
        self.remote_cseq = cseq;
        if req.method == Method::Invite || req.method == Method::Update {
            if let Ok(Some(c)) = req.headers.contacts().map(|c| c.first().cloned()) {
                self.remote_target = c.uri;
            }
            self.invite_cseq = cseq;
        }
        Ok(())
    }

    /// A deadline passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(p) = &mut self.pending_2xx else {
            return;
        };
        if now >= p.give_up {
            self.pending_2xx = None;
            self.out.push_back(Output::AckTimeout);
            return;
        }
        if p.next.is_some_and(|n| n <= now) {
            self.out.push_back(Output::Transmit(p.bytes.clone()));
            p.interval = (p.interval * 2).min(self.timers.t2);
            p.next = Some(now + p.interval);
        }
    }

    /// Next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Next deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending_2xx
            .as_ref()
            .map(|p| p.next.map_or(p.give_up, |n| n.min(p.give_up)))
    }

    /// Builds an in-dialog request (§12.2.1.1) such as BYE. `via` is the
    /// full Via value (with a fresh branch) of the transport that sends it;
    /// `contact` our Contact URI.
    pub fn make_request(&mut self, method: Method, via: &str, contact: &str) -> Request {
        self.local_cseq = self.local_cseq.saturating_add(1);
        let mut headers = Headers::with_capacity(10);
        headers.push(HeaderName::Via, Bytes::from(via.to_owned()));
        headers.push(HeaderName::MaxForwards, Bytes::from_static(b"70"));
        headers.push(HeaderName::From, self.local_uri.clone());
        headers.push(HeaderName::To, self.remote_uri.clone());
        headers.push(HeaderName::CallId, self.id.call_id.clone());
        headers.push(
            HeaderName::CSeq,
            Bytes::from(format!("{} {}", self.local_cseq, method)),
        );
        // §12.2.1.1: loose routing keeps the target as Request-URI; a strict
        // first route becomes the Request-URI and the target goes last.
        let first_route = self
            .route_set
            .first()
            .and_then(|r| crate::header::NameAddr::parse(r).ok());
        let uri = match first_route {
            Some(r) if !r.uri.is_loose_router() => {
                for route in self.route_set.iter().skip(1) {
                    headers.push(HeaderName::Route, route.clone());
                }
                headers.push(
                    HeaderName::Route,
                    Bytes::from(format!("<{}>", self.remote_target)),
                );
                r.uri
            }
            _ => {
                for route in &self.route_set {
                    headers.push(HeaderName::Route, route.clone());
                }
                self.remote_target.clone()
            }
        };
        headers.push(HeaderName::Contact, Bytes::from(format!("<{contact}>")));
        Request {
            method,
            uri,
            headers,
            body: Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Limits, Message, parse_message};

    fn invite(extra: &str) -> Request {
        let raw = format!(
            "INVITE sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa\r\n{extra}From: <sip:caller@127.0.0.1>;tag=remote\r\nTo: <sip:1000@127.0.0.1>\r\nCall-ID: call-1\r\nCSeq: 5 INVITE\r\nContact: <sip:caller@127.0.0.1:5070>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        match parse_message(Bytes::from(raw), &Limits::default()).unwrap() {
            Message::Request(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_2xx_is_resent_until_ack_and_gives_up_after_64_t1() {
        let t0 = Instant::now();
        let mut d = Dialog::new_uas(
            &invite(""),
            Bytes::from_static(b"local"),
            Timers::default(),
            false,
            1,
        )
        .unwrap();
        d.accept(t0, Bytes::from_static(b"200"));
        let mut now = t0;
        let mut sends = vec![];
        let mut timed_out = false;
        while let Some(next) = d.poll_timeout() {
            now = next;
            d.handle_timeout(now);
            while let Some(o) = d.poll_output() {
                match o {
                    Output::Transmit(_) => sends.push((now - t0).as_millis()),
                    Output::AckTimeout => timed_out = true,
                }
            }
        }
        assert!(timed_out);
        assert_eq!(now - t0, Duration::from_secs(32));
        assert_eq!(&sends[..5], &[500, 1500, 3500, 7500, 11500]);
    }

    #[test]
    fn the_ack_stops_retransmission() {
        let t0 = Instant::now();
        let inv = invite("");
        let mut d = Dialog::new_uas(
            &inv,
            Bytes::from_static(b"local"),
            Timers::default(),
            false,
            1,
        )
        .unwrap();
        d.accept(t0, Bytes::from_static(b"200"));
        let raw = "ACK sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKb\r\nFrom: <sip:caller@127.0.0.1>;tag=remote\r\nTo: <sip:1000@127.0.0.1>;tag=local\r\nCall-ID: call-1\r\nCSeq: 5 ACK\r\nContent-Length: 0\r\n\r\n";
        let Message::Request(ack) = parse_message(Bytes::from(raw), &Limits::default()).unwrap()
        else {
            unreachable!()
        };
        assert_eq!(DialogId::for_incoming(&ack).unwrap(), *d.id());
        d.handle_ack(&ack);
        assert!(d.poll_timeout().is_none());
    }

    #[test]
    fn a_bye_follows_the_route_set_and_targets_the_contact() {
        let inv = invite("Record-Route: <sip:p1.local;lr>, <sip:p2.local;lr>\r\n");
        let mut d = Dialog::new_uas(
            &inv,
            Bytes::from_static(b"local"),
            Timers::default(),
            false,
            1,
        )
        .unwrap();
        let bye = d.make_request(
            Method::Bye,
            "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKbye",
            "sip:dhwani@127.0.0.1:5060",
        );
        let text = String::from_utf8(bye.to_bytes().to_vec()).unwrap();
        assert!(
            text.starts_with("BYE sip:caller@127.0.0.1:5070 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains("Route: <sip:p1.local;lr>\r\nRoute: <sip:p2.local;lr>\r\n"));
        assert!(text.contains("From: <sip:1000@127.0.0.1>;tag=local\r\n"));
        assert!(text.contains("To: <sip:caller@127.0.0.1>;tag=remote\r\n"));
        assert!(text.contains("CSeq: 2 BYE\r\n"));
    }

    #[test]
    fn an_out_of_order_cseq_is_refused_with_500() {
        let inv = invite("");
        let mut d = Dialog::new_uas(
            &inv,
            Bytes::from_static(b"local"),
            Timers::default(),
            false,
            1,
        )
        .unwrap();
        let mk = |n: u32| {
            let raw = format!(
                "BYE sip:1000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{n}\r\nFrom: <sip:caller@127.0.0.1>;tag=remote\r\nTo: <sip:1000@127.0.0.1>;tag=local\r\nCall-ID: call-1\r\nCSeq: {n} BYE\r\nContent-Length: 0\r\n\r\n"
            );
            match parse_message(Bytes::from(raw), &Limits::default()).unwrap() {
                Message::Request(r) => r,
                _ => unreachable!(),
            }
        };
        assert_eq!(
            d.handle_request(&mk(4)),
            Err(StatusCode::SERVER_INTERNAL_ERROR)
        );
        assert_eq!(d.handle_request(&mk(6)), Ok(()));
    }
}
