//! Calls: answering an INVITE, the dialog that follows, CANCEL, BYE,
//! re-INVITE, INFO, and ending calls.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use sip::dialog::{self, Dialog, DialogId};
use sip::message::{HeaderName, Method, Request, ResponseBuilder, StatusCode};
use sip::sdp::{self, LocalSession, Negotiated};
use sip::transaction::TxId;
use sip::transport::Flow;

use super::ids::{CallSlot, RecordId, SipCallId};
use super::{Action, CallInfo, Core, Party};

/// Binds RTP/RTCP socket pairs from the configured port range.
pub trait PortAllocator {
    /// A bound RTP socket on an even port and its RTCP socket on the next
    /// (RFC 3550 §11), or `None` when the range is exhausted.
    fn allocate(&mut self) -> Option<MediaPorts>;
}

/// A call's media ports: the RTP address we announce in SDP and the bound
/// RTP and RTCP sockets. The core only carries the sockets to the media
/// task; an allocator for the core's own tests has none to give.
#[derive(Debug)]
pub struct MediaPorts {
    /// Our RTP address (RTCP is on the next port).
    pub local: SocketAddr,
    /// The bound RTP and RTCP sockets.
    pub sockets: Option<(std::net::UdpSocket, std::net::UdpSocket)>,
}

/// What a call's media task needs.
#[derive(Debug)]
pub struct CallSetup {
    /// The call.
    pub id: CallSlot,
    /// The SIP Call-ID, for logs.
    pub sip_call_id: SipCallId,
    /// Our RTP and RTCP ports (RTCP is unused with rtcp-mux).
    pub ports: MediaPorts,
    /// Where the caller wants RTP.
    pub remote_rtp: SocketAddr,
    /// The chosen codec.
    pub negotiated: Negotiated,
    /// RTCP shares the RTP port (the offer had a=rtcp-mux, and so does
    /// our answer).
    pub rtcp_mux: bool,
    /// Who is calling, which flow, when (for the log and the CDR).
    pub info: CallInfo,
    /// The dialog is already confirmed (late offer: media starts at the
    /// ACK). Otherwise media waits for [`Action::MediaConfirmed`] or for
    /// the caller's own RTP: nothing is sent to the SDP address of an
    /// INVITE that is never ACKed.
    pub confirmed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallState {
    /// 100 (and maybe 180) sent, 200 pending.
    Ringing,
    /// 200 sent.
    Answered,
    /// The INVITE was refused or cancelled; the record goes when its transaction does.
    Failed,
    /// BYE sent, waiting for its answer.
    Ending,
}

pub(super) struct Call {
    pub(super) state: CallState,
    pub(super) invite_tx: TxId,
    pub(super) invite: Request,
    pub(super) flow: Flow,
    pub(super) local_tag: String,
    pub(super) dialog: Option<Dialog>,
    pub(super) answer_at: Option<Instant>,
    pub(super) scheduled: Option<Instant>,
    pub(super) setup: Option<CallSetup>,
    /// The body of our 200 OK: the answer, or our offer (late offer).
    pub(super) local_sdp: String,
    /// `o=` session id of our SDP.
    pub(super) sdp_id: u64,
    /// What offer/answer agreed (after the ACK, for a late offer).
    pub(super) session: Option<LocalSession>,
    pub(super) media_started: bool,
    /// The ACK of our 2xx arrived.
    pub(super) ack_seen: bool,
    /// Late offer: our RTP/RTCP sockets, waiting for the answer in the ACK.
    pub(super) late_media: Option<MediaPorts>,
    /// `Action::CallEnded` was sent.
    pub(super) reported: bool,
    pub(super) info: CallInfo,
    /// A REFER in this call waiting for the driver's verdict (an agent's
    /// attended transfer sent in its consultation call:
    /// [`Core::answer_call_refer`]).
    pub(super) refer: Option<(TxId, Request)>,
}

impl Call {
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let d = self.dialog.as_ref().and_then(Dialog::poll_timeout);
        match (self.answer_at, d) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    pub(super) fn call_id_text(&self) -> String {
        self.invite
            .call_id()
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .unwrap_or_default()
    }
}

pub(super) fn contact_for(flow: &Flow, user: &str) -> String {
    let t = match flow.transport {
        sip::transport::Transport::Udp => "",
        sip::transport::Transport::Tcp => ";transport=tcp",
        sip::transport::Transport::Tls => ";transport=tls",
    };
    let scheme = if flow.transport == sip::transport::Transport::Tls {
        "sips"
    } else {
        "sip"
    };
    format!("{scheme}:{user}@{}{t}", flow.local)
}

impl Core {
    /// 503 with Retry-After: try again later.
    fn refuse_busy(&mut self, now: Instant, tx: TxId, invite: &Request, reason: &str) {
        let retry = self.settings.retry_after_secs.to_string();
        self.respond(
            now,
            tx,
            invite,
            StatusCode::SERVICE_UNAVAILABLE,
            reason,
            &[(HeaderName::RetryAfter, retry)],
        );
    }

    /// 488 with a Warning saying what was wrong with the offer.
    fn refuse_media(&mut self, now: Instant, tx: TxId, invite: &Request, warning: String) {
        self.respond(
            now,
            tx,
            invite,
            StatusCode::NOT_ACCEPTABLE_HERE,
            "Not Acceptable Here",
            &[(HeaderName::Warning, warning)],
        );
    }

    pub(super) fn new_call(&mut self, now: Instant, tx: TxId, flow: Flow, invite: Request) {
        let call_id_text = invite
            .call_id()
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .unwrap_or_default();
        let ip = flow.remote.ip();
        if !self.pike.is_exempt(ip) {
            let held = self
                .calls
                .values()
                .filter(|c| c.flow.remote.ip() == ip)
                .count();
            if held >= self.pike.limits().calls_per_source {
                if self.peer_log.allow(now, ip) {
                    tracing::info!(call_id = %call_id_text, source = %ip, held, "refusing call: source at its call cap");
                }
                self.refuse_busy(now, tx, &invite, "Service Unavailable");
                return;
            }
        }
        if self.draining || self.calls.len() >= self.settings.max_calls {
            if self.peer_log.allow(now, flow.remote.ip()) {
                tracing::info!(call_id = %call_id_text, "refusing call: at capacity");
            }
            self.refuse_busy(now, tx, &invite, "Service Unavailable");
            return;
        }
        // No Contact at all is an RFC 2543 INVITE: accepted for backward
        // compatibility (RFC 4475 §3.4.1). A Contact that is there but
        // unusable (`*`, garbage) is a 400.
        let contact_absent = invite.headers.get(&HeaderName::Contact).is_none();
        if !contact_absent
            && !matches!(invite.headers.contacts(), Ok(sip::header::Contacts::List(ref l)) if !l.is_empty())
        {
            self.respond(
                now,
                tx,
                &invite,
                StatusCode::BAD_REQUEST,
                "Missing Contact Header",
                &[],
            );
            return;
        }
        let admitted = match self.admission.admit(self.wall(now), flow.remote, &invite) {
            Ok(a) => a,
            Err(r) => {
                if self.peer_log.allow(now, flow.remote.ip()) {
                    tracing::info!(call_id = %call_id_text, remote = %flow.remote, status = %r.status, why = %r.why, "refusing call");
                }
                self.respond(now, tx, &invite, r.status, r.reason, &r.headers);
                return;
            }
        };
        if let Some((agent, code)) = &admitted.feature {
            tracing::info!(call_id = %call_id_text, tenant = %agent.tenant_id, extension = %agent.extension, feature = ?code, "agent feature code");
            self.actions
                .push_back(Action::AgentFeature(agent.clone(), code.clone()));
        }
        let in_tenant = self
            .tenant_calls
            .get(&admitted.tenant)
            .copied()
            .unwrap_or(0);
        if in_tenant >= admitted.max_calls {
            if self.peer_log.allow(now, flow.remote.ip()) {
                tracing::info!(call_id = %call_id_text, tenant = %admitted.tenant_id, "refusing call: tenant at its call limit");
            }
            self.refuse_busy(now, tx, &invite, "Service Unavailable");
            return;
        }
        // Offer/answer (RFC 3264). An INVITE without SDP (late offer) gets
        // our offer in the 200 OK and must answer in the ACK.
        let prefs: Vec<&str> = self.settings.codecs.iter().map(String::as_str).collect();
        let media = if invite.body.is_empty() {
            None
        } else {
            let offer = match sdp::parse_audio_offer(&invite.body) {
                Ok(o) => o,
                Err(e) => {
                    if self.peer_log.allow(now, flow.remote.ip()) {
                        tracing::info!(call_id = %call_id_text, error = %e, "unusable offer");
                    }
                    self.refuse_media(now, tx, &invite, format!("399 dhwani \"{e}\""));
                    return;
                }
            };
            let Some(negotiated) = sdp::negotiate(&offer, &prefs) else {
                if self.peer_log.allow(now, flow.remote.ip()) {
                    tracing::info!(call_id = %call_id_text, "no codec in common");
                }
                let warning = format!(
                    "305 dhwani \"Incompatible media format: we speak {}\"",
                    self.settings.codecs.join(", ")
                );
                self.refuse_media(now, tx, &invite, warning);
                return;
            };
            Some((offer, negotiated))
        };
        let Some(ports) = self.ports.allocate() else {
            tracing::warn!(call_id = %call_id_text, "RTP port range exhausted");
            self.refuse_busy(now, tx, &invite, "No Media Ports");
            return;
        };
        let local_rtp = ports.local;
        let session_id: u64 = rand::Rng::random::<u32>(&mut self.rng).into();
        let session = media
            .as_ref()
            .and_then(|(offer, _)| LocalSession::answer(offer, &prefs, session_id, local_rtp, 20));
        let local_sdp = match &session {
            Some(s) => s.to_sdp(),
            None => sdp::write_offer(session_id, 1, local_rtp, &sdp::offer_formats(&prefs), 20),
        };
        self.next_call += 1;
        let id = CallSlot(self.next_call);
        let invited_at = self.wall(now);
        let info = CallInfo {
            record_id: RecordId(record_id(
                invited_at,
                rand::Rng::random::<u32>(&mut self.rng),
            )),
            sip_call_id: SipCallId(call_id_text.clone()),
            admitted: admitted.clone(),
            invited_at,
            answered_at: None,
        };
        *self.tenant_calls.entry(admitted.tenant).or_insert(0) += 1;
        let local_tag = self.new_tag();
        // 100 Trying at once (§17.2.1: quench INVITE retransmissions).
        let trying = ResponseBuilder::new(&invite, StatusCode::TRYING).build();
        let _ = self.layer.respond(now, tx, trying);
        let answer_at = now + self.settings.answer_after;
        let call = Call {
            state: CallState::Ringing,
            invite_tx: tx,
            invite: invite.clone(),
            flow,
            local_tag: local_tag.clone(),
            dialog: None,
            answer_at: Some(answer_at),
            scheduled: None,
            setup: None,
            late_media: None,
            local_sdp,
            sdp_id: session_id,
            session,
            media_started: false,
            ack_seen: false,
            reported: false,
            refer: None,
            info,
        };
        let mut call = call;
        match media {
            Some((offer, negotiated)) => {
                call.setup = Some(CallSetup {
                    id,
                    sip_call_id: SipCallId(call_id_text.clone()),
                    ports,
                    remote_rtp: offer.rtp,
                    negotiated,
                    rtcp_mux: offer.rtcp_mux,
                    info: call.info.clone(),
                    confirmed: false,
                });
            }
            None => call.late_media = Some(ports),
        }
        tracing::info!(call_id = %call_id_text, record_id = %call.info.record_id, remote = %flow.remote, transport = %flow.transport,
            tenant = %admitted.tenant_id, flow = %admitted.flow.name, from = %crate::redact::number(&admitted.tenant_id, &admitted.caller), to = %admitted.called, "incoming call");
        self.calls.insert(id, call);
        self.by_invite.insert(tx, id);
        if self.settings.answer_after.is_zero() {
            self.answer(now, id);
        } else {
            let ringing = ResponseBuilder::new(&invite, StatusCode::RINGING)
                .to_tag(local_tag.as_bytes())
                .build();
            let _ = self.layer.respond(now, tx, ringing);
            self.reschedule(id);
        }
    }

    fn answer(&mut self, now: Instant, id: CallSlot) {
        let timers = self.settings.timers;
        let wall = self.wall(now);
        let ua = self.settings.user_agent.clone();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.state != CallState::Ringing {
            return;
        }
        call.answer_at = None;
        let contact = contact_for(&call.flow, "dhwani");
        let ok = ResponseBuilder::new(&call.invite, StatusCode::OK)
            .to_tag(call.local_tag.as_bytes())
            .header(HeaderName::Contact, Bytes::from(format!("<{contact}>")))
            .header(HeaderName::Allow, Bytes::from(self.policy.allow_header()))
            .header(HeaderName::Server, Bytes::from(ua))
            .body("application/sdp", Bytes::from(call.local_sdp.clone()))
            .build();
        let dialog = match Dialog::new_uas(
            &call.invite,
            Bytes::from(call.local_tag.clone()),
            timers,
            call.flow.transport.is_reliable(),
            0,
        ) {
            Ok(d) => d,
            Err(e) => {
                tracing::info!(error = %e, "cannot create dialog");
                return;
            }
        };
        let bytes = ok.to_bytes();
        let mut dialog = dialog;
        dialog.accept(now, bytes);
        let did = dialog.id().clone();
        call.dialog = Some(dialog);
        call.state = CallState::Answered;
        let _ = self.layer.respond(now, call.invite_tx, ok);
        call.info.answered_at = Some(wall);
        if let Some(mut setup) = call.setup.take() {
            setup.info.answered_at = Some(wall);
            call.media_started = true;
            self.actions.push_back(Action::StartMedia(Box::new(setup)));
        }
        self.by_dialog.insert(did, id);
        self.stats.calls_answered += 1;
        self.reschedule(id);
    }

    pub(super) fn call_timeout(&mut self, now: Instant, id: CallSlot) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.answer_at.is_some_and(|a| a <= now) {
            self.answer(now, id);
            return;
        }
        let mut outs = Vec::new();
        if let Some(d) = call.dialog.as_mut() {
            d.handle_timeout(now);
            while let Some(o) = d.poll_output() {
                outs.push(o);
            }
        }
        let flow = call.flow;
        for o in outs {
            match o {
                dialog::Output::Transmit(b) => self.actions.push_back(Action::Send(flow, b)),
                dialog::Output::AckTimeout => {
                    if let Some(call) = self.calls.get(&id) {
                        tracing::info!(call_id = %call.call_id_text(), record_id = %call.info.record_id, "no ACK for our 2xx: ending call");
                    }
                    self.send_bye(now, id, Party::System, "no ACK for our 200 OK");
                }
            }
        }
        self.reschedule(id);
    }

    pub(super) fn handle_ack(&mut self, now: Instant, ack: &Request) {
        let Ok(did) = DialogId::for_incoming(ack) else {
            return;
        };
        let Some(&id) = self.by_dialog.get(&did) else {
            return;
        };
        if let Some(call) = self.calls.get_mut(&id) {
            if let Some(d) = call.dialog.as_mut() {
                d.handle_ack(ack);
            }
            // The first ACK of an early-offer call confirms its media.
            if call.media_started && !call.ack_seen {
                self.actions.push_back(Action::MediaConfirmed(id));
            }
            call.ack_seen = true;
        }
        self.late_answer(now, id, ack);
        self.reschedule(id);
    }

    /// Late offer: the ACK carries the answer to the offer in our 200 OK.
    /// An ACK without a usable answer ends the call (RFC 3261 §13.3.1.4).
    fn late_answer(&mut self, now: Instant, id: CallSlot, ack: &Request) {
        let prefs: Vec<&str> = self.settings.codecs.iter().map(String::as_str).collect();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(ports) = call.late_media.take() else {
            return;
        };
        let answer = sdp::parse_audio_offer(&ack.body)
            .map_err(|e| e.to_string())
            .and_then(|a| {
                sdp::negotiate(&a, &prefs)
                    .map(|n| (a, n))
                    .ok_or_else(|| "no codec of our offer".to_owned())
            });
        match answer {
            Ok((a, negotiated)) => {
                call.media_started = true;
                call.session = Some(LocalSession::from_answer(
                    &a,
                    negotiated.clone(),
                    call.sdp_id,
                    ports.local,
                    20,
                ));
                let setup = CallSetup {
                    id,
                    sip_call_id: SipCallId(call.call_id_text()),
                    ports,
                    remote_rtp: a.rtp,
                    negotiated,
                    rtcp_mux: false,
                    info: call.info.clone(),
                    confirmed: true,
                };
                self.actions.push_back(Action::StartMedia(Box::new(setup)));
            }
            Err(e) => {
                tracing::info!(call_id = %call.call_id_text(), record_id = %call.info.record_id, error = %e, "late offer: no usable answer in the ACK");
                self.send_bye(now, id, Party::System, "no usable SDP answer in the ACK");
            }
        }
    }

    pub(super) fn handle_cancel(
        &mut self,
        now: Instant,
        tx: TxId,
        cancels: Option<TxId>,
        cancel: &Request,
    ) {
        let Some(invite_tx) = cancels else {
            self.respond(
                now,
                tx,
                cancel,
                StatusCode::CALL_DOES_NOT_EXIST,
                "Call/Transaction Does Not Exist",
                &[],
            );
            return;
        };
        // §9.2: the CANCEL itself always gets 200 when it matched.
        self.respond(now, tx, cancel, StatusCode::OK, "OK", &[]);
        let Some(&id) = self.by_invite.get(&invite_tx) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.state != CallState::Ringing {
            return; // Already answered: the CANCEL has no effect (§9.2).
        }
        call.state = CallState::Failed;
        call.answer_at = None;
        let resp = ResponseBuilder::new(&call.invite, StatusCode::REQUEST_TERMINATED)
            .to_tag(call.local_tag.as_bytes())
            .build();
        tracing::info!(call_id = %call.call_id_text(), record_id = %call.info.record_id, "call cancelled before answer");
        let _ = self.layer.respond(now, invite_tx, resp);
        self.end_call(id, Party::Caller, "CANCEL before answer (487)");
    }

    pub(super) fn in_dialog(&mut self, now: Instant, tx: TxId, req: Request) {
        let Ok(did) = DialogId::for_incoming(&req) else {
            return;
        };
        let Some(&id) = self.by_dialog.get(&did) else {
            self.respond(
                now,
                tx,
                &req,
                StatusCode::CALL_DOES_NOT_EXIST,
                "Call/Transaction Does Not Exist",
                &[],
            );
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(dialog) = call.dialog.as_mut() else {
            return;
        };
        if let Err(status) = dialog.handle_request(&req) {
            self.respond(now, tx, &req, status, status.canonical_reason(), &[]);
            return;
        }
        match req.method {
            Method::Bye => {
                tracing::info!(call_id = %call.call_id_text(), record_id = %call.info.record_id, "caller hung up");
                self.respond(now, tx, &req, StatusCode::OK, "OK", &[]);
                self.end_call(id, Party::Caller, "BYE from caller");
            }
            Method::Info => {
                // DTMF relay (application/dtmf-relay, application/dtmf) goes
                // to the call's media, which reports it with the others.
                let content_type = req
                    .headers
                    .content_type()
                    .ok()
                    .flatten()
                    .map(|t| {
                        format!(
                            "{}/{}",
                            String::from_utf8_lossy(&t.kind),
                            String::from_utf8_lossy(&t.subtype)
                        )
                    })
                    .unwrap_or_default();
                match media::dtmf::info::parse(&content_type, &req.body) {
                    Some(d) => self.actions.push_back(super::Action::InfoDigit(id, d.key)),
                    None => {
                        tracing::debug!(call_id = %call.call_id_text(), record_id = %call.info.record_id, content_type, "INFO without DTMF")
                    }
                }
                self.respond(now, tx, &req, StatusCode::OK, "OK", &[]);
            }
            Method::Invite => {
                // Re-INVITE (RFC 3264 §8): answer from the agreed session;
                // the media task follows whatever changed.
                let prefs: Vec<&str> = self.settings.codecs.iter().map(String::as_str).collect();
                let Some(session) = call.session.as_mut() else {
                    // Our late offer is still unanswered (§14.2).
                    self.respond(
                        now,
                        tx,
                        &req,
                        StatusCode::REQUEST_PENDING,
                        "Request Pending",
                        &[],
                    );
                    return;
                };
                if !req.body.is_empty() {
                    let update = sdp::parse_audio_offer(&req.body)
                        .map_err(|_| sdp::ReofferError::NotUsable)
                        .and_then(|offer| session.reoffer(&offer, &prefs));
                    match update {
                        Ok(u) => self.actions.push_back(super::Action::MediaUpdate(id, u)),
                        Err(e) => {
                            tracing::info!(call_id = %call.call_id_text(), record_id = %call.info.record_id, error = %e, "re-INVITE refused; the call goes on as it was");
                            let warning = format!("305 dhwani \"{e}\"");
                            self.refuse_media(now, tx, &req, warning);
                            return;
                        }
                    }
                }
                // Without a body the re-INVITE asks for our offer: the
                // current session again (its answer in the ACK is not read).
                let body = session.to_sdp();
                let contact = contact_for(&call.flow, "dhwani");
                let ok = ResponseBuilder::new(&req, StatusCode::OK)
                    .header(HeaderName::Contact, Bytes::from(format!("<{contact}>")))
                    .body("application/sdp", Bytes::from(body))
                    .build();
                let _ = self.layer.respond(now, tx, ok);
            }
            Method::Refer => self.call_refer(now, tx, id, req),
            _ => self.respond(now, tx, &req, StatusCode::OK, "OK", &[]),
        }
    }

    pub(super) fn send_bye(&mut self, now: Instant, id: CallSlot, by: Party, cause: &str) {
        let branch = self.new_branch();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.state != CallState::Answered {
            return;
        }
        let Some(dialog) = call.dialog.as_mut() else {
            return;
        };
        let via = format!(
            "SIP/2.0/{} {};branch={branch};rport",
            call.flow.transport.via_token(),
            call.flow.local
        );
        let contact = contact_for(&call.flow, "dhwani");
        let bye = dialog.make_request(Method::Bye, &via, &contact);
        call.state = CallState::Ending;
        let flow = call.flow;
        report_end(
            &mut self.actions,
            call,
            id,
            by,
            format!("{cause} (we sent BYE)"),
        );
        match self
            .layer
            .send_request(now, bye, flow, flow.transport.is_reliable())
        {
            Ok(tx) => {
                self.by_bye.insert(tx, id);
            }
            Err(_) => self.end_call(id, Party::System, "BYE not sent"),
        }
    }

    pub(super) fn end_call(&mut self, id: CallSlot, by: Party, reason: &str) {
        let Some(mut call) = self.calls.remove(&id) else {
            return;
        };
        let t = call.info.admitted.tenant;
        if let Some(n) = self.tenant_calls.get_mut(&t) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.tenant_calls.remove(&t);
            }
        }
        if let Some(at) = call.scheduled.take() {
            self.schedule.remove(&(at, id));
        }
        if let Some(d) = &call.dialog {
            self.by_dialog.remove(d.id());
        }
        self.by_invite.remove(&call.invite_tx);
        report_end(&mut self.actions, &mut call, id, by, reason.to_owned());
        self.stats.calls_ended += 1;
        tracing::info!(call_id = %call.call_id_text(), record_id = %call.info.record_id, reason, "call ended");
    }
}

/// Tells the driver, once per call, that it is over (with the call's
/// details when no media task was started to write its CDR).
fn report_end(
    actions: &mut std::collections::VecDeque<Action>,
    call: &mut Call,
    id: CallSlot,
    by: Party,
    cause: String,
) {
    if call.reported {
        return;
    }
    call.reported = true;
    let info = (!call.media_started).then(|| Box::new(call.info.clone()));
    actions.push_back(Action::CallEnded {
        id,
        by,
        cause,
        info,
    });
}

/// A call's record id: start time (UTC, sortable) and random bits.
fn record_id(at: std::time::SystemTime, random: u32) -> String {
    let ts = jiff::Timestamp::try_from(at).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{}-{random:08x}", ts.strftime("%Y%m%dT%H%M%SZ"))
}
