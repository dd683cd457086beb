//! Outbound legs (the B2BUA side): INVITEs we send to agents' phones,
//! with RFC 3261 §17.1 client transactions from the transaction layer.
//!
//! One *attempt* (the ACD's ring of one agent) forks to every registered
//! phone of the agent, each its own leg. The first 2xx wins the attempt
//! ([`Action::LegAnswered`]); the other forks get CANCEL, or ACK and BYE
//! when their own 2xx races in. An attempt fails ([`Action::LegFailed`])
//! only when all its forks failed. Stopping an attempt CANCELs forks that
//! ring (after their first provisional response, §9.1; before it, the
//! CANCEL waits for one, and a 2xx that comes instead is ACKed and BYEd),
//! and BYEs an answered one.
//!
//! INVITEs go over the flow the agent's REGISTER came on, to the Contact
//! as Request-URI, through its Path: never to the address the Contact
//! names.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use sip::dialog::{Dialog, DialogId};
use sip::message::{HeaderName, Headers, Method, Request, Response, StatusCode};
use sip::sdp::{self, Negotiated};
use sip::transaction::TxId;
use sip::transport::Flow;

use super::registrar::Binding;
use super::{Action, CallSlot, Core, MediaPorts};

/// Names an attempt to the driver (the ACD's attempt number).
pub type AttemptKey = u64;

/// An answered agent leg's media, for the caller's task.
#[derive(Debug)]
pub struct LegMedia {
    /// Our RTP/RTCP sockets of this leg.
    pub ports: MediaPorts,
    /// Where the agent's phone wants RTP.
    pub remote_rtp: std::net::SocketAddr,
    /// The codec agreed.
    pub negotiated: Negotiated,
    /// RTCP on the RTP port.
    pub rtcp_mux: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ForkState {
    /// INVITE sent, nothing heard.
    Calling,
    /// A provisional response came.
    Early,
    /// 2xx, ACKed, ours.
    Answered,
    /// Over (failed, cancelled, or BYE sent).
    Done,
}

pub(super) struct Fork {
    attempt: AttemptKey,
    call: CallSlot,
    invite: Request,
    tx: TxId,
    flow: Flow,
    state: ForkState,
    /// Stop was asked before a provisional response: CANCEL when one comes.
    cancel_wanted: bool,
    dialog: Option<Dialog>,
    ports: Option<MediaPorts>,
    /// The best failure seen (for the attempt's report).
    status: Option<StatusCode>,
    /// A REFER from the agent waiting for the driver's verdict.
    refer: Option<(TxId, Request)>,
    /// Digest credentials for a trunk's 401/407 (agents get none).
    credentials: Option<(String, String)>,
    /// The INVITE was re-sent with credentials once already.
    authenticated: bool,
}

/// A call out through an outbound trunk (a flow's or an agent's transfer
/// to a number).
#[derive(Debug, Clone)]
pub struct TrunkDial {
    /// Our socket and the trunk's address.
    pub flow: Flow,
    /// The number dialled (the Request-URI's and the To's user).
    pub number: String,
    /// The From user the trunk sees.
    pub caller_id: String,
    /// Digest username and password for the trunk's challenges.
    pub credentials: Option<(String, String)>,
    /// A SIP URI on another host (`tenants::sip_targets`) for the
    /// Request-URI and the To, instead of `number` at the trunk's address.
    pub uri: Option<String>,
}

/// After a transfer is accepted the agent's phone normally hangs up on
/// the final NOTIFY; if it has not after this long, we send the BYE.
pub const TRANSFEROR_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Default)]
pub(super) struct Legs {
    forks: Vec<Option<Fork>>,
    by_tx: HashMap<TxId, usize>,
    by_dialog: HashMap<DialogId, usize>,
    by_attempt: HashMap<AttemptKey, Vec<usize>>,
    /// BYEs we sent on agent legs.
    byes: HashMap<TxId, usize>,
    /// NOTIFYs (transfer progress) we sent on agent legs.
    notifies: HashMap<TxId, usize>,
    /// Transferred legs to hang up if their phone does not: when, which
    /// fork, and its attempt (a reused slot is not hung up).
    byes_due: std::collections::BTreeSet<(Instant, usize, AttemptKey)>,
    free: Vec<usize>,
}

impl Legs {
    fn insert(&mut self, f: Fork) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.forks[i] = Some(f);
                i
            }
            None => {
                self.forks.push(Some(f));
                self.forks.len() - 1
            }
        }
    }

    pub(super) fn owns_tx(&self, tx: TxId) -> bool {
        self.by_tx.contains_key(&tx)
            || self.byes.contains_key(&tx)
            || self.notifies.contains_key(&tx)
    }

    /// When [`Core::legs_timeout`] is due.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.byes_due.first().map(|(at, _, _)| *at)
    }

    pub(super) fn owns_dialog(&self, d: &DialogId) -> bool {
        self.by_dialog.contains_key(d)
    }

    /// Live forks (for tests and stats).
    pub(super) fn live(&self) -> usize {
        self.forks
            .iter()
            .flatten()
            .filter(|f| f.state != ForkState::Done)
            .count()
    }
}

impl Core {
    /// Rings an agent for `call` at each of its phones. False when there
    /// is nothing to ring (no binding, no media ports).
    pub fn ring_agent(
        &mut self,
        now: Instant,
        call: CallSlot,
        attempt: AttemptKey,
        extension: &str,
        bindings: &[Binding],
    ) -> bool {
        let caller = self
            .calls
            .get(&call)
            .map(|c| c.info.admitted.caller.clone())
            .unwrap_or_default();
        // The agent sees the caller's number (what a contact centre's
        // screen pops); no other personal data goes to the phone.
        let from_user: String = caller
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '+')
            .collect();
        let mut rung = 0;
        for b in bindings {
            let Ok(uri) = sip::uri::Uri::parse(&Bytes::from(b.contact.clone())) else {
                continue;
            };
            let to = format!("<sip:{extension}@{}>", b.flow.local.ip());
            if self.send_leg_invite(
                now,
                (call, attempt),
                b.flow,
                uri,
                (&from_user, &to),
                &b.path,
                None,
            ) {
                rung += 1;
            }
        }
        self.pump(now);
        rung > 0
    }

    /// What `call` was admitted as (its caller, tenant, trunk).
    pub fn call_info(&self, call: CallSlot) -> Option<&super::CallInfo> {
        self.calls.get(&call).map(|c| &c.info)
    }

    /// The number the caller of `call` dialled (the tenant's own number).
    pub fn called_number(&self, call: CallSlot) -> Option<String> {
        self.calls
            .get(&call)
            .map(|c| c.info.admitted.called.clone())
    }

    /// Calls `d.number` through an outbound trunk for `call`. False when
    /// the INVITE could not be sent (no media ports, a bad number).
    pub fn ring_trunk(
        &mut self,
        now: Instant,
        call: CallSlot,
        attempt: AttemptKey,
        d: &TrunkDial,
    ) -> bool {
        let user: String = d
            .number
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        let text = match &d.uri {
            Some(u) => u.clone(),
            None => format!("sip:{user}@{}", d.flow.remote),
        };
        let Ok(uri) = sip::uri::Uri::parse(&Bytes::from(text.clone())) else {
            return false;
        };
        let to = format!("<{text}>");
        let sent = self.send_leg_invite(
            now,
            (call, attempt),
            d.flow,
            uri,
            (&d.caller_id, &to),
            &[],
            d.credentials.clone(),
        );
        self.pump(now);
        sent
    }

    /// Sends one leg's INVITE (with our SDP offer on fresh media ports)
    /// and records its fork.
    #[allow(clippy::too_many_arguments)]
    fn send_leg_invite(
        &mut self,
        now: Instant,
        (call, attempt): (CallSlot, AttemptKey),
        flow: Flow,
        uri: sip::uri::Uri,
        (from_user, to): (&str, &str),
        path: &[String],
        credentials: Option<(String, String)>,
    ) -> bool {
        let prefs: Vec<&str> = self.settings.codecs.iter().map(String::as_str).collect();
        let formats = sdp::offer_formats(&prefs);
        let Some(ports) = self.ports.allocate() else {
            tracing::warn!("RTP port range exhausted: leg not started");
            return false;
        };
        let session_id: u64 = rand::Rng::random::<u32>(&mut self.rng).into();
        let body = sdp::write_offer(session_id, 1, ports.local, &formats, 20);
        let branch = self.new_branch();
        let tag = self.new_tag();
        let call_id = format!(
            "{:016x}{:08x}",
            rand::Rng::random::<u64>(&mut self.rng),
            attempt
        );
        let mut h = Headers::with_capacity(12);
        h.push(
            HeaderName::Via,
            Bytes::from(format!(
                "SIP/2.0/{} {};branch={branch};rport",
                flow.transport.via_token(),
                flow.local
            )),
        );
        for p in path {
            h.push(HeaderName::Route, Bytes::from(p.clone()));
        }
        h.push(HeaderName::MaxForwards, Bytes::from_static(b"70"));
        let from_user = if from_user.is_empty() {
            "anonymous"
        } else {
            from_user
        };
        h.push(
            HeaderName::From,
            Bytes::from(format!("<sip:{from_user}@{}>;tag={tag}", flow.local)),
        );
        h.push(HeaderName::To, Bytes::from(to.to_owned()));
        h.push(HeaderName::CallId, Bytes::from(call_id));
        h.push(HeaderName::CSeq, Bytes::from_static(b"1 INVITE"));
        h.push(
            HeaderName::Contact,
            Bytes::from(format!("<{}>", super::calls::contact_for(&flow, "dhwani"))),
        );
        h.push(HeaderName::Allow, Bytes::from(self.policy.allow_header()));
        h.push(
            HeaderName::UserAgent,
            Bytes::from(self.settings.user_agent.clone()),
        );
        h.push(
            HeaderName::ContentType,
            Bytes::from_static(b"application/sdp"),
        );
        let invite = Request {
            method: Method::Invite,
            uri,
            headers: h,
            body: Bytes::from(body),
        };
        let Ok(tx) =
            self.layer
                .send_request(now, invite.clone(), flow, flow.transport.is_reliable())
        else {
            // The sockets close as `ports` drops.
            return false;
        };
        let i = self.legs.insert(Fork {
            attempt,
            call,
            invite,
            tx,
            flow,
            state: ForkState::Calling,
            cancel_wanted: false,
            dialog: None,
            ports: Some(ports),
            status: None,
            refer: None,
            credentials,
            authenticated: false,
        });
        self.legs.by_tx.insert(tx, i);
        self.legs.by_attempt.entry(attempt).or_default().push(i);
        true
    }

    /// A trunk's 401/407 to our INVITE: the INVITE again, once, with the
    /// digest answer (RFC 3261 §22.2, §22.3). False when there is nothing
    /// to answer with (an agent leg, a second challenge, a challenge we
    /// cannot read).
    fn retry_with_credentials(&mut self, now: Instant, i: usize, resp: &Response) -> bool {
        let branch = self.new_branch();
        let cnonce = format!("{:016x}", rand::Rng::random::<u64>(&mut self.rng));
        let Some(f) = self.legs.forks.get_mut(i).and_then(Option::as_mut) else {
            return false;
        };
        let Some((user, password)) = f.credentials.clone() else {
            return false;
        };
        if f.authenticated || f.cancel_wanted {
            return false;
        }
        let (challenge_name, answer_name) = if resp.status.as_u16() == 407 {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        } else {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        };
        let uri = f.invite.uri.to_string();
        let answer = resp.headers.get_all(&challenge_name).find_map(|v| {
            let ch = sip::header::AuthParams::parse(v).ok()?;
            sip::auth::authorization(&ch, "INVITE", &uri, &user, &password, &cnonce, 1).ok()
        });
        let Some(answer) = answer else {
            return false;
        };
        let mut invite = f.invite.clone();
        invite.headers.set(
            HeaderName::Via,
            Bytes::from(format!(
                "SIP/2.0/{} {};branch={branch};rport",
                f.flow.transport.via_token(),
                f.flow.local
            )),
        );
        invite
            .headers
            .set(HeaderName::CSeq, Bytes::from_static(b"2 INVITE"));
        invite.headers.push(answer_name, Bytes::from(answer));
        let flow = f.flow;
        let Ok(tx) =
            self.layer
                .send_request(now, invite.clone(), flow, flow.transport.is_reliable())
        else {
            return false;
        };
        f.invite = invite;
        f.tx = tx;
        f.authenticated = true;
        f.state = ForkState::Calling;
        self.legs.by_tx.insert(tx, i);
        self.pump(now);
        true
    }

    /// Stops an attempt: CANCEL what rings, BYE what was answered.
    pub fn stop_attempt(&mut self, now: Instant, attempt: AttemptKey) {
        let forks = self.legs.by_attempt.remove(&attempt).unwrap_or_default();
        for i in forks {
            self.stop_fork(now, i);
        }
        self.pump(now);
    }

    fn stop_fork(&mut self, now: Instant, i: usize) {
        let Some(f) = self.legs.forks.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        match f.state {
            ForkState::Calling => f.cancel_wanted = true,
            ForkState::Early => {
                f.cancel_wanted = true;
                self.send_cancel(now, i);
            }
            ForkState::Answered => self.send_leg_bye(now, i),
            ForkState::Done => {}
        }
    }

    /// §9.1: CANCEL with the INVITE's Request-URI, Call-ID, From, To,
    /// CSeq number and top Via.
    fn send_cancel(&mut self, now: Instant, i: usize) {
        let Some(f) = self.legs.forks.get(i).and_then(Option::as_ref) else {
            return;
        };
        let mut h = Headers::with_capacity(8);
        for name in [HeaderName::Via, HeaderName::Route] {
            for v in f.invite.headers.get_all(&name) {
                h.push(name.clone(), v.clone());
                if name == HeaderName::Via {
                    break;
                }
            }
        }
        for name in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
            if let Some(v) = f.invite.headers.get(&name) {
                h.push(name, v.clone());
            }
        }
        // The INVITE's CSeq number (2 after a digest retry), §9.1.
        let seq = f.invite.cseq().map(|c| c.seq).unwrap_or(1);
        h.push(HeaderName::CSeq, Bytes::from(format!("{seq} CANCEL")));
        h.push(HeaderName::MaxForwards, Bytes::from_static(b"70"));
        let cancel = Request {
            method: Method::Cancel,
            uri: f.invite.uri.clone(),
            headers: h,
            body: Bytes::new(),
        };
        let flow = f.flow;
        let _ = self
            .layer
            .send_request(now, cancel, flow, flow.transport.is_reliable());
    }

    fn send_leg_bye(&mut self, now: Instant, i: usize) {
        let branch = self.new_branch();
        let Some(f) = self.legs.forks.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let Some(d) = f.dialog.as_mut() else {
            return;
        };
        let via = format!(
            "SIP/2.0/{} {};branch={branch};rport",
            f.flow.transport.via_token(),
            f.flow.local
        );
        let contact = super::calls::contact_for(&f.flow, "dhwani");
        let bye = d.make_request(Method::Bye, &via, &contact);
        f.state = ForkState::Done;
        let flow = f.flow;
        if let Ok(tx) = self
            .layer
            .send_request(now, bye, flow, flow.transport.is_reliable())
        {
            self.legs.byes.insert(tx, i);
        } else {
            self.forget_fork(i);
        }
    }

    fn ack_2xx(&mut self, i: usize, resp: &Response) {
        let branch = self.new_branch();
        let timers = self.settings.timers;
        let Some(f) = self.legs.forks.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        if f.dialog.is_none() {
            match Dialog::new_uac(&f.invite, resp, timers, f.flow.transport.is_reliable()) {
                Ok(d) => {
                    self.legs.by_dialog.insert(d.id().clone(), i);
                    f.dialog = Some(d);
                }
                Err(e) => {
                    tracing::info!(error = %e, "agent's 200 OK makes no dialog");
                    return;
                }
            }
        }
        let via = format!(
            "SIP/2.0/{} {};branch={branch};rport",
            f.flow.transport.via_token(),
            f.flow.local
        );
        if let Some(d) = f.dialog.as_mut() {
            let ack = d.make_ack(&via);
            self.actions.push_back(Action::Send(f.flow, ack.to_bytes()));
        }
    }

    /// A response to one of our agent INVITEs (or their CANCEL/BYE).
    pub(super) fn leg_event(&mut self, now: Instant, tx: TxId, event: sip::transaction::TxEvent) {
        use sip::transaction::TxEvent;
        if let Some(&i) = self.legs.byes.get(&tx) {
            if matches!(event, TxEvent::Terminated | TxEvent::Timeout)
                || matches!(&event, TxEvent::Response(r) if r.status.is_final())
            {
                self.legs.byes.remove(&tx);
                self.forget_fork(i);
            }
            return;
        }
        if self.legs.notifies.contains_key(&tx) {
            if matches!(event, TxEvent::Terminated | TxEvent::Timeout)
                || matches!(&event, TxEvent::Response(r) if r.status.is_final())
            {
                self.legs.notifies.remove(&tx);
            }
            return;
        }
        let Some(&i) = self.legs.by_tx.get(&tx) else {
            return;
        };
        match event {
            TxEvent::Response(resp) => self.leg_response(now, i, &resp),
            TxEvent::Timeout => self.fork_failed(i, StatusCode::REQUEST_TIMEOUT),
            TxEvent::Terminated => {
                self.legs.by_tx.remove(&tx);
                if self
                    .legs
                    .forks
                    .get(i)
                    .and_then(Option::as_ref)
                    .is_some_and(|f| f.state == ForkState::Done && f.dialog.is_none())
                {
                    self.forget_fork(i);
                }
            }
        }
    }

    fn leg_response(&mut self, now: Instant, i: usize, resp: &Response) {
        let Some(f) = self.legs.forks.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let (attempt, call) = (f.attempt, f.call);
        if resp.status.is_provisional() {
            if f.state == ForkState::Calling && resp.status.as_u16() > 100 {
                f.state = ForkState::Early;
                if f.cancel_wanted {
                    self.send_cancel(now, i);
                } else if resp.status == StatusCode::RINGING {
                    self.actions.push_back(Action::LegRinging { call, attempt });
                }
            } else if f.state == ForkState::Calling && f.cancel_wanted {
                // 100 Trying is a provisional response too (§9.1).
                f.state = ForkState::Early;
                self.send_cancel(now, i);
            } else if f.state == ForkState::Calling {
                f.state = ForkState::Early;
            }
            return;
        }
        if resp.status.is_success() {
            let first = f.state != ForkState::Answered && f.state != ForkState::Done;
            let wanted = first && !f.cancel_wanted;
            self.ack_2xx(i, resp);
            let Some(f) = self.legs.forks.get_mut(i).and_then(Option::as_mut) else {
                return;
            };
            if !first {
                return; // A retransmitted 2xx: ACKed again above.
            }
            if !wanted {
                // Stopped meanwhile (another fork or agent won, the caller
                // left): ACK then BYE (§15).
                f.state = ForkState::Answered;
                self.send_leg_bye(now, i);
                return;
            }
            let prefs: Vec<&str> = self.settings.codecs.iter().map(String::as_str).collect();
            let answer = sdp::parse_audio_offer(&resp.body)
                .ok()
                .and_then(|a| sdp::negotiate(&a, &prefs).map(|n| (a.rtp, n, a.rtcp_mux)));
            let Some((remote_rtp, negotiated, rtcp_mux)) = answer else {
                tracing::info!("agent answered without a usable SDP answer: hanging up that leg");
                f.state = ForkState::Answered;
                self.send_leg_bye(now, i);
                self.fork_failed(i, StatusCode::NOT_ACCEPTABLE_HERE);
                return;
            };
            f.state = ForkState::Answered;
            let ports = f.ports.take();
            // The other forks of the attempt stop.
            let others: Vec<usize> = self
                .legs
                .by_attempt
                .get(&attempt)
                .map(|v| v.iter().copied().filter(|j| *j != i).collect())
                .unwrap_or_default();
            self.legs.by_attempt.insert(attempt, vec![i]);
            for j in others {
                self.stop_fork(now, j);
            }
            if let Some(ports) = ports {
                self.actions.push_back(Action::LegAnswered {
                    call,
                    attempt,
                    media: Box::new(LegMedia {
                        ports,
                        remote_rtp,
                        negotiated,
                        rtcp_mux,
                    }),
                });
            }
            return;
        }
        // 3xx-6xx: the transaction ACKed it (§17.1.1.3). A trunk's
        // challenge is answered once.
        if matches!(resp.status.as_u16(), 401 | 407) && self.retry_with_credentials(now, i, resp) {
            return;
        }
        self.fork_failed(i, resp.status);
    }

    /// A fork ended without an answer; its attempt fails when no fork is left.
    fn fork_failed(&mut self, i: usize, status: StatusCode) {
        let Some(f) = self.legs.forks.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        if f.state == ForkState::Answered && f.dialog.is_some() && status.is_success() {
            return;
        }
        let was_done = f.state == ForkState::Done;
        f.state = ForkState::Done;
        f.status = Some(status);
        let (attempt, call) = (f.attempt, f.call);
        let cancelled = f.cancel_wanted;
        let forget = f.dialog.is_none();
        let mut report = false;
        if !was_done
            && !cancelled
            && let Some(list) = self.legs.by_attempt.get_mut(&attempt)
        {
            list.retain(|j| *j != i);
            let left = list.iter().any(|j| {
                self.legs
                    .forks
                    .get(*j)
                    .and_then(Option::as_ref)
                    .is_some_and(|f| f.state != ForkState::Done)
            });
            if !left {
                self.legs.by_attempt.remove(&attempt);
                report = true;
            }
        }
        if forget {
            self.forget_fork(i);
        }
        if report {
            self.actions.push_back(Action::LegFailed {
                call,
                attempt,
                status: status.as_u16(),
            });
        }
    }

    fn forget_fork(&mut self, i: usize) {
        if let Some(f) = self.legs.forks.get_mut(i).and_then(Option::take) {
            // Every INVITE transaction of the fork (a digest retry makes a
            // second one).
            self.legs.by_tx.retain(|_, j| *j != i);
            if let Some(d) = &f.dialog {
                self.legs.by_dialog.remove(d.id());
            }
            if let Some(list) = self.legs.by_attempt.get_mut(&f.attempt) {
                list.retain(|j| *j != i);
                if list.is_empty() {
                    self.legs.by_attempt.remove(&f.attempt);
                }
            }
            // A BYE or NOTIFY of ours still in flight must not, when its
            // answer comes, touch the fork that reuses this slot.
            self.legs.byes.retain(|_, j| *j != i);
            self.legs.notifies.retain(|_, j| *j != i);
            self.legs.free.push(i);
        }
    }

    /// A request inside an agent leg's dialog: BYE ends it, a re-INVITE
    /// (hold) is answered from our offer and reported.
    pub(super) fn leg_request(&mut self, now: Instant, tx: TxId, req: Request) {
        let Ok(did) = DialogId::for_incoming(&req) else {
            return;
        };
        let Some(&i) = self.legs.by_dialog.get(&did) else {
            return;
        };
        let Some(f) = self.legs.forks.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let (attempt, call) = (f.attempt, f.call);
        if let Some(d) = f.dialog.as_mut()
            && let Err(status) = d.handle_request(&req)
        {
            self.respond(now, tx, &req, status, status.canonical_reason(), &[]);
            return;
        }
        match req.method {
            Method::Bye => {
                let was_answered = f.state == ForkState::Answered;
                f.state = ForkState::Done;
                self.respond(now, tx, &req, StatusCode::OK, "OK", &[]);
                self.forget_fork(i);
                if was_answered {
                    self.actions.push_back(Action::LegEnded { call, attempt });
                }
            }
            Method::Invite => {
                let prefs: Vec<&str> = self.settings.codecs.iter().map(String::as_str).collect();
                let offer = sdp::parse_audio_offer(&req.body).ok();
                let negotiated = offer.as_ref().and_then(|o| sdp::negotiate(o, &prefs));
                let (Some(o), Some(n)) = (offer, negotiated) else {
                    self.respond(
                        now,
                        tx,
                        &req,
                        StatusCode::NOT_ACCEPTABLE_HERE,
                        "Not Acceptable Here",
                        &[],
                    );
                    return;
                };
                let flow = f.flow;
                let local = f.invite.body.clone();
                let local_rtp = sdp::parse_audio_offer(&local).map(|l| l.rtp).ok();
                let Some(local_rtp) = local_rtp else {
                    return;
                };
                let Some(session) = sdp::LocalSession::answer(&o, &prefs, 1, local_rtp, 20) else {
                    return;
                };
                let body = session.to_sdp();
                let contact = super::calls::contact_for(&flow, "dhwani");
                let ok = sip::message::ResponseBuilder::new(&req, StatusCode::OK)
                    .header(HeaderName::Contact, Bytes::from(format!("<{contact}>")))
                    .body("application/sdp", Bytes::from(body))
                    .build();
                let _ = self.layer.respond(now, tx, ok);
                let update = sip::sdp::MediaUpdate {
                    remote: o.rtp,
                    moved: false,
                    payload_type: n.codec.payload_type,
                    telephone_event: n.telephone_event.as_ref().map(|t| t.payload_type),
                    direction: o.direction.answer(),
                };
                self.actions.push_back(Action::LegUpdate {
                    call,
                    attempt,
                    update,
                });
            }
            Method::Refer => self.leg_refer(now, tx, i, req),
            _ => self.respond(now, tx, &req, StatusCode::OK, "OK", &[]),
        }
    }

    /// A REFER from the agent (RFC 3515): a blind transfer of its caller.
    /// Checked here for its form; where the target is and whether it may
    /// be reached is the driver's (the ACD's) to say, by
    /// [`Core::answer_refer`].
    fn leg_refer(&mut self, now: Instant, tx: TxId, i: usize, req: Request) {
        let Some(f) = self.legs.forks.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let (attempt, call) = (f.attempt, f.call);
        let refused = |status: StatusCode, reason: &'static str| Some((status, reason));
        let refer_to: Vec<&Bytes> = req.headers.get_all(&HeaderName::ReferTo).collect();
        let verdict = if f.state != ForkState::Answered {
            refused(
                StatusCode::CALL_DOES_NOT_EXIST,
                "Call/Transaction Does Not Exist",
            )
        } else if f.refer.is_some() {
            refused(StatusCode::REQUEST_PENDING, "Request Pending")
        } else if refer_to.len() != 1 {
            // §2.4.1: exactly one Refer-To.
            refused(StatusCode::BAD_REQUEST, "Exactly One Refer-To Is Needed")
        } else {
            None
        };
        if let Some((status, reason)) = verdict {
            self.respond(now, tx, &req, status, reason, &[]);
            return;
        }
        let target = refer_to
            .first()
            .and_then(|v| sip::header::NameAddr::parse(v).ok());
        let Some(target) = target else {
            self.respond(
                now,
                tx,
                &req,
                StatusCode::BAD_REQUEST,
                "Malformed Refer-To",
                &[],
            );
            return;
        };
        // An attended transfer: Refer-To with `?Replaces=` (RFC 3891)
        // naming the agent's own consultation call to us, a dialog in
        // which its phone is the UAC (the to-tag is ours, the from-tag
        // its own).
        let replaces = match target.uri.headers.as_deref().map(replaces_dialog) {
            None => None,
            Some(None) => {
                self.respond(
                    now,
                    tx,
                    &req,
                    StatusCode::BAD_REQUEST,
                    "Malformed Replaces In Refer-To",
                    &[],
                );
                return;
            }
            Some(Some(did)) => match self.by_dialog.get(&did) {
                Some(&k) if k != call => Some(k),
                _ => {
                    self.respond(
                        now,
                        tx,
                        &req,
                        StatusCode::CALL_DOES_NOT_EXIST,
                        "Replaced Dialog Does Not Exist",
                        &[],
                    );
                    return;
                }
            },
        };
        let user = target
            .uri
            .user_unescaped()
            .map(|u| String::from_utf8_lossy(&u).into_owned())
            .filter(|u| {
                !u.is_empty()
                    && u.len() <= 64
                    && u.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-_.*#".contains(&b))
            });
        let Some(user) = user else {
            self.respond(
                now,
                tx,
                &req,
                StatusCode::NOT_FOUND,
                "Refer-To Names No Extension Or Queue",
                &[],
            );
            return;
        };
        if let Some(f) = self.legs.forks.get_mut(i).and_then(Option::as_mut) {
            f.refer = Some((tx, req));
        }
        self.actions.push_back(Action::LegRefer {
            call,
            attempt,
            target: user,
            uri: target.uri.to_string(),
            replaces,
        });
    }

    /// A REFER in a call to us. Only an agent's attended transfer sent in
    /// its consultation call is taken: exactly one Refer-To whose
    /// `Replaces` names an answered agent leg of another call (in which our
    /// tag is the to-tag, the phone's the from-tag) goes to the driver
    /// ([`Action::ConsultRefer`]), who checks that the leg is this caller's
    /// and answers by [`Core::answer_call_refer`]. A Replaces naming no leg
    /// of ours gets 481; anything else 403 (a caller cannot send itself,
    /// or us, elsewhere).
    pub(super) fn call_refer(&mut self, now: Instant, tx: TxId, id: CallSlot, req: Request) {
        let refer_to: Vec<&Bytes> = req.headers.get_all(&HeaderName::ReferTo).collect();
        let replaces = match refer_to.as_slice() {
            [one] => sip::header::NameAddr::parse(one)
                .ok()
                .and_then(|t| t.uri.headers.as_deref().and_then(replaces_dialog)),
            _ => None,
        };
        let Some(did) = replaces else {
            self.respond(
                now,
                tx,
                &req,
                StatusCode::FORBIDDEN,
                "Transfers Are Made By Agents",
                &[],
            );
            return;
        };
        let leg = self
            .legs
            .by_dialog
            .get(&did)
            .and_then(|&i| self.legs.forks.get(i)?.as_ref())
            .filter(|f| f.state == ForkState::Answered && f.call != id)
            .map(|f| (f.call, f.attempt));
        let Some((call, attempt)) = leg else {
            self.respond(
                now,
                tx,
                &req,
                StatusCode::CALL_DOES_NOT_EXIST,
                "Replaced Dialog Does Not Exist",
                &[],
            );
            return;
        };
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if c.refer.is_some() {
            self.respond(
                now,
                tx,
                &req,
                StatusCode::REQUEST_PENDING,
                "Request Pending",
                &[],
            );
            return;
        }
        c.refer = Some((tx, req));
        self.actions.push_back(Action::ConsultRefer {
            consult: id,
            call,
            attempt,
        });
    }

    /// The driver's verdict on a [`Action::ConsultRefer`]: 202 and one
    /// final NOTIFY in the consultation call, as [`Core::answer_refer`]
    /// does in a leg. Accepted, the replaced leg gets our BYE after
    /// [`TRANSFEROR_GRACE`] unless the phone hangs it up first.
    pub fn answer_call_refer(
        &mut self,
        now: Instant,
        consult: CallSlot,
        replaced: AttemptKey,
        verdict: Result<(), u16>,
    ) {
        let branch = self.new_branch();
        let Some(c) = self.calls.get_mut(&consult) else {
            return;
        };
        let Some((tx, req)) = c.refer.take() else {
            return;
        };
        let flow = c.flow;
        let notify = c
            .dialog
            .as_mut()
            .map(|d| refer_notify(d, &flow, &branch, &req, verdict));
        self.accept_refer(now, (tx, &req), flow, notify);
        if verdict.is_ok() {
            for &i in self.legs.by_attempt.get(&replaced).into_iter().flatten() {
                self.legs
                    .byes_due
                    .insert((now + TRANSFEROR_GRACE, i, replaced));
            }
        }
        self.pump(now);
    }

    /// Moves an answered agent leg to another call (an attended transfer:
    /// the agent the consultation reached now talks to the caller): its
    /// BYE, re-INVITEs and REFERs are reported for `to` from now on.
    pub fn move_attempt(&mut self, attempt: AttemptKey, to: CallSlot) {
        for &i in self.legs.by_attempt.get(&attempt).into_iter().flatten() {
            if let Some(f) = self.legs.forks.get_mut(i).and_then(Option::as_mut) {
                f.call = to;
            }
        }
    }

    /// The driver's verdict on an agent's REFER, answered 202 and then
    /// with one NOTIFY that ends the implicit subscription: `Ok` NOTIFYs
    /// `SIP/2.0 200 OK` (the caller is in our hands now), then the agent's
    /// phone hangs up, or we do after [`TRANSFEROR_GRACE`]; `Err(status)`
    /// NOTIFYs that status and the call stays with the agent.
    pub fn answer_refer(&mut self, now: Instant, attempt: AttemptKey, verdict: Result<(), u16>) {
        let i = self.legs.by_attempt.get(&attempt).and_then(|v| {
            v.iter().copied().find(|j| {
                self.legs
                    .forks
                    .get(*j)
                    .and_then(Option::as_ref)
                    .is_some_and(|f| f.refer.is_some())
            })
        });
        let Some(i) = i else {
            return;
        };
        let branch = self.new_branch();
        let Some(f) = self.legs.forks.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let Some((tx, req)) = f.refer.take() else {
            return;
        };
        // Accepted either way (§2.4.2); the NOTIFY says how it went. A
        // final error to the REFER itself would be as correct, but
        // baresip 1.x hangs its call up on one, and the agent would lose
        // the caller over a mistyped extension.
        let flow = f.flow;
        let notify = f
            .dialog
            .as_mut()
            .map(|d| refer_notify(d, &flow, &branch, &req, verdict));
        if let Some(ntx) = self.accept_refer(now, (tx, &req), flow, notify) {
            self.legs.notifies.insert(ntx, i);
        }
        if verdict.is_ok() {
            self.legs
                .byes_due
                .insert((now + TRANSFEROR_GRACE, i, attempt));
        }
        self.pump(now);
    }

    /// A REFER answered 202, then its final NOTIFY sent over `flow`
    /// (whose transaction is returned).
    fn accept_refer(
        &mut self,
        now: Instant,
        (tx, req): (TxId, &Request),
        flow: Flow,
        notify: Option<Request>,
    ) -> Option<TxId> {
        self.respond(now, tx, req, StatusCode::ACCEPTED, "Accepted", &[]);
        let n = notify?;
        self.layer
            .send_request(now, n, flow, flow.transport.is_reliable())
            .ok()
    }

    /// Transferred legs whose phone did not hang up get our BYE.
    pub(super) fn legs_timeout(&mut self, now: Instant) {
        while let Some(&(at, i, attempt)) = self.legs.byes_due.first() {
            if at > now {
                break;
            }
            self.legs.byes_due.remove(&(at, i, attempt));
            let ours = self
                .legs
                .forks
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(|f| f.attempt == attempt && f.state == ForkState::Answered);
            if ours {
                self.send_leg_bye(now, i);
            }
        }
    }

    /// Agent legs with a live INVITE or dialog.
    pub fn live_legs(&self) -> usize {
        self.legs.live()
    }
}

/// The dialog a Refer-To's `Replaces` header names (RFC 3891 §6.1:
/// `callid;to-tag=T;from-tag=F`, escaped in the URI's headers), as our
/// dialog id: the to-tag is the local tag (the dialog's UAS is us), the
/// from-tag the remote one. `None` if it is not there or malformed.
/// The one NOTIFY that ends a REFER's implicit subscription (RFC 3515
/// §2.4.4-2.4.5): in `dialog`, `Event: refer;id=CSEQ`, its sipfrag the
/// transfer's outcome.
fn refer_notify(
    dialog: &mut sip::dialog::Dialog,
    flow: &Flow,
    branch: &str,
    refer: &Request,
    verdict: Result<(), u16>,
) -> Request {
    let frag = match verdict {
        Ok(()) => "SIP/2.0 200 OK\r\n".to_owned(),
        Err(s) => {
            let code = StatusCode::new(s).unwrap_or(StatusCode::SERVER_INTERNAL_ERROR);
            format!("SIP/2.0 {} {}\r\n", code.as_u16(), code.canonical_reason())
        }
    };
    let via = format!(
        "SIP/2.0/{} {};branch={branch};rport",
        flow.transport.via_token(),
        flow.local
    );
    let contact = super::calls::contact_for(flow, "dhwani");
    let mut n = dialog.make_request(Method::Notify, &via, &contact);
    let cseq = refer.cseq().map(|c| c.seq).unwrap_or(0);
    n.headers
        .push(HeaderName::Event, Bytes::from(format!("refer;id={cseq}")));
    n.headers.push(
        HeaderName::SubscriptionState,
        Bytes::from_static(b"terminated;reason=noresource"),
    );
    n.headers.push(
        HeaderName::ContentType,
        Bytes::from_static(b"message/sipfrag;version=2.0"),
    );
    n.body = Bytes::from(frag);
    n
}

pub(super) fn replaces_dialog(headers: &[u8]) -> Option<DialogId> {
    let value = headers.split(|b| *b == b'&').find_map(|h| {
        let eq = h.iter().position(|b| *b == b'=')?;
        h[..eq]
            .eq_ignore_ascii_case(b"replaces")
            .then(|| sip::uri::unescape(&h[eq + 1..]).into_owned())
    })?;
    let text = std::str::from_utf8(&value).ok()?;
    let mut parts = text.split(';').map(str::trim);
    let call_id = parts.next().filter(|c| !c.is_empty() && c.len() <= 256)?;
    let (mut to, mut from) = (None, None);
    for p in parts {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "to-tag" => to = Some(v.trim()),
            "from-tag" => from = Some(v.trim()),
            _ => {}
        }
    }
    let (to, from) = (
        to.filter(|t| !t.is_empty())?,
        from.filter(|t| !t.is_empty())?,
    );
    Some(DialogId {
        call_id: Bytes::copy_from_slice(call_id.as_bytes()),
        local_tag: Bytes::copy_from_slice(to.as_bytes()),
        remote_tag: Bytes::copy_from_slice(from.as_bytes()),
    })
}

#[cfg(test)]
mod replaces_tests {
    use super::replaces_dialog;

    #[test]
    fn a_refer_tos_replaces_names_our_dialog_with_its_tags_swapped_to_ours() {
        // RFC 5589 §7.1's Refer-To (escaped as in its example).
        let d = replaces_dialog(
            b"Replaces=090459243588173445%40192.0.2.1%3Bto-tag%3D7553452%3Bfrom-tag%3D31431",
        )
        .expect("parsed");
        assert_eq!(&d.call_id[..], b"090459243588173445@192.0.2.1");
        assert_eq!(&d.local_tag[..], b"7553452", "the to-tag is ours");
        assert_eq!(&d.remote_tag[..], b"31431");
        // Other headers beside it, any case, early-only ignored.
        let d = replaces_dialog(b"X=1&replaces=abc%3Bfrom-tag%3Df%3Bearly-only%3Bto-tag%3Dt")
            .expect("parsed");
        assert_eq!(
            (&d.local_tag[..], &d.remote_tag[..]),
            (&b"t"[..], &b"f"[..])
        );
        for bad in [
            &b"Replaces=abc%3Bto-tag%3Dt"[..],
            b"Replaces=%3Bto-tag%3Dt%3Bfrom-tag%3Df",
            b"Replaces=abc%3Bto-tag%3D%3Bfrom-tag%3Df",
            b"Other=1",
            b"Replaces=\xff%3Bto-tag%3Dt%3Bfrom-tag%3Df",
        ] {
            assert!(
                replaces_dialog(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
