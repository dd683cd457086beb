//! The user-agent core: what Dhwani does with each SIP message.
//!
//! It owns the transaction layer and the dialogs, applies the UAS rules of
//! RFC 3261 §8.2, answers calls (100, optionally 180, then 200 with an SDP
//! answer), handles CANCEL, BYE, OPTIONS, INFO and re-INVITE, and ends calls
//! with BYE when asked. It does no IO itself: every step returns
//! [`Action`]s that the driver in [`crate::server`] carries out (send bytes,
//! start or stop a call's media task). `now` is passed in.

mod admission;
mod calls;
pub mod ids;
pub mod legs;
pub mod log_limit;
pub mod pike;
mod register;
pub mod registrar;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use sip::dialog::DialogId;
use sip::message::{
    HeaderName, Limits, Message, Method, Request, Response, ResponseBuilder, StatusCode,
    parse_message, reply_to_raw,
};
use sip::transaction::{Layer, LayerOutput, Timers, TxEvent, TxId};
use sip::transport::Flow;
use sip::uas::Policy;

pub use admission::{
    Admission, Admitted, AgentRef, CallInfo, Feature, Party, Refusal, SuperviseMode,
};
use calls::{Call, CallState};
pub use calls::{CallSetup, MediaPorts, PortAllocator};
pub use ids::{CallSlot, RecordId, SipCallId};

/// What the driver must do.
#[derive(Debug)]
pub enum Action {
    /// Send bytes along a flow.
    Send(Flow, Bytes),
    /// Start a call's media (the RTP socket is already bound).
    StartMedia(Box<CallSetup>),
    /// The call is over (or its media must stop: we sent BYE). `info` is
    /// there when no media task was started (the call was never
    /// answered), so the driver writes the CDR itself.
    CallEnded {
        /// The call.
        id: CallSlot,
        /// Who ended it.
        by: Party,
        /// Why, with the SIP cause.
        cause: String,
        /// The call's details when it never reached a media task.
        info: Option<Box<CallInfo>>,
    },
    /// The ACK of the call's 200 OK arrived: its media may start sending.
    MediaConfirmed(CallSlot),
    /// A DTMF key arrived in a SIP INFO request of the call.
    InfoDigit(CallSlot, char),
    /// A re-INVITE changed the call's media (address, payload types or
    /// direction): the media task follows.
    MediaUpdate(CallSlot, sip::sdp::MediaUpdate),
    /// An agent's registrations changed (registered, refreshed,
    /// unregistered, lapsed): store them. Empty: the agent has no phone.
    Bindings(AgentRef, Vec<registrar::Binding>),
    /// An agent dialled a feature code (it is answered with a
    /// confirmation prompt as a call).
    AgentFeature(AgentRef, Feature),
    /// An agent's phone rings (180) for `call`.
    LegRinging {
        /// The caller's call.
        call: CallSlot,
        /// The attempt.
        attempt: legs::AttemptKey,
    },
    /// An agent answered: bridge its media to the caller's.
    LegAnswered {
        /// The caller's call.
        call: CallSlot,
        /// The attempt.
        attempt: legs::AttemptKey,
        /// The agent leg's sockets and codec.
        media: Box<legs::LegMedia>,
    },
    /// No phone of the agent answered (the best final status).
    LegFailed {
        /// The caller's call.
        call: CallSlot,
        /// The attempt.
        attempt: legs::AttemptKey,
        /// The SIP status (408 for no response at all).
        status: u16,
    },
    /// The agent hung up (BYE) an answered leg.
    LegEnded {
        /// The caller's call.
        call: CallSlot,
        /// The attempt.
        attempt: legs::AttemptKey,
    },
    /// The agent asked to transfer its caller (a REFER): answer with
    /// [`Core::answer_refer`].
    LegRefer {
        /// The caller's call.
        call: CallSlot,
        /// The agent's attempt.
        attempt: legs::AttemptKey,
        /// The Refer-To's user part: an extension, a queue's name, a
        /// number.
        target: String,
        /// The whole Refer-To URI (a URI on another host is called there
        /// when the tenant's `transfer_hosts` lists it).
        uri: String,
        /// An attended transfer: the agent's consultation call (its own
        /// call to us, named by the Refer-To's `Replaces`), whose other
        /// party takes over the caller.
        replaces: Option<CallSlot>,
    },
    /// An agent's attended transfer sent the other way round (RFC 5589
    /// §7.3 allows either): the REFER came in its consultation call to us
    /// (`consult`), its Refer-To's `Replaces` naming the agent's answered
    /// leg `attempt` of `call`. Answer with [`Core::answer_call_refer`].
    ConsultRefer {
        /// The consultation call (the agent's own call to us).
        consult: CallSlot,
        /// The caller's call whose agent leg is replaced.
        call: CallSlot,
        /// That agent leg.
        attempt: legs::AttemptKey,
    },
    /// The agent's re-INVITE changed its leg's media (hold, unhold, move).
    LegUpdate {
        /// The caller's call.
        call: CallSlot,
        /// The attempt.
        attempt: legs::AttemptKey,
        /// What changed.
        update: sip::sdp::MediaUpdate,
    },
}

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Parser limits.
    pub limits: Limits,
    /// RFC 3261 timers.
    pub timers: Timers,
    /// Transaction cap.
    pub max_transactions: usize,
    /// Call cap (503 beyond).
    pub max_calls: usize,
    /// Retry-After of a 503.
    pub retry_after_secs: u32,
    /// Ring this long before answering.
    pub answer_after: Duration,
    /// Codec preference.
    pub codecs: Vec<String>,
    /// Server header / Contact user.
    pub user_agent: String,
    /// Budgets of log lines caused by a peer's input, per source.
    pub peer_log: log_limit::Limits,
    /// Per-source rates, bans and caps.
    pub flood: pike::Limits,
    /// Registration expiries and caps.
    pub registrar: registrar::Limits,
}

/// Counters an operator (and the tests) can read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages that did not parse.
    pub malformed: u64,
    /// Responses nobody was waiting for.
    pub stray_responses: u64,
    /// Calls answered.
    pub calls_answered: u64,
    /// Calls ended (any reason).
    pub calls_ended: u64,
    /// Sources banned for flooding.
    pub bans: u64,
    /// Messages dropped unanswered: banned source, or over its
    /// transaction cap.
    pub flood_drops: u64,
    /// REGISTERs accepted.
    pub registrations: u64,
}

/// The core.
pub struct Core {
    settings: Settings,
    policy: Policy,
    layer: Layer<Flow>,
    calls: HashMap<CallSlot, Call>,
    by_dialog: HashMap<DialogId, CallSlot>,
    by_invite: HashMap<TxId, CallSlot>,
    by_bye: HashMap<TxId, CallSlot>,
    schedule: BTreeSet<(Instant, CallSlot)>,
    next_call: u64,
    ports: Box<dyn PortAllocator + Send>,
    admission: Box<dyn Admission>,
    tenant_calls: HashMap<usize, usize>,
    epoch: (Instant, std::time::SystemTime),
    rng: rand::rngs::StdRng,
    actions: VecDeque<Action>,
    draining: bool,
    stats: Stats,
    peer_log: log_limit::LogLimiter,
    pike: pike::Pike,
    /// The source of each live server transaction, and how many each
    /// source holds.
    tx_source: HashMap<TxId, std::net::IpAddr>,
    tx_per_source: HashMap<std::net::IpAddr, usize>,
    registrar: registrar::Registrar,
    legs: legs::Legs,
}

impl Core {
    /// A core with its port allocator and RNG seed (tests pass a fixed seed).
    /// `epoch` maps the `Instant`s passed in to wall-clock time (for CDRs).
    pub fn new(
        settings: Settings,
        ports: Box<dyn PortAllocator + Send>,
        admission: Box<dyn Admission>,
        epoch: (Instant, std::time::SystemTime),
        seed: u64,
    ) -> Core {
        use rand::SeedableRng;
        Core {
            peer_log: log_limit::LogLimiter::new(settings.peer_log),
            pike: pike::Pike::new(settings.flood.clone()),
            tx_source: HashMap::new(),
            tx_per_source: HashMap::new(),
            registrar: registrar::Registrar::new(settings.registrar),
            legs: legs::Legs::default(),
            layer: Layer::new(settings.timers, settings.max_transactions),
            settings,
            policy: policy(),
            calls: HashMap::new(),
            by_dialog: HashMap::new(),
            by_invite: HashMap::new(),
            by_bye: HashMap::new(),
            schedule: BTreeSet::new(),
            next_call: 0,
            ports,
            admission,
            tenant_calls: HashMap::new(),
            epoch,
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            actions: VecDeque::new(),
            draining: false,
            stats: Stats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Agent registrations (bindings) held.
    pub fn binding_count(&self) -> usize {
        self.registrar.len()
    }

    /// Calls in progress.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Calls still in progress: ringing or answered. A call whose BYE we
    /// sent, or whose INVITE failed, is over (its CDR is written); only
    /// its transaction is left, absorbing retransmissions, and it does not
    /// hold a drain.
    pub fn live_call_count(&self) -> usize {
        self.calls
            .values()
            .filter(|c| {
                matches!(
                    c.state,
                    calls::CallState::Ringing | calls::CallState::Answered
                )
            })
            .count()
    }

    /// Next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`Core::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let calls = self.schedule.first().map(|(at, _)| *at);
        let expiry = self.registrar.poll_timeout().map(|w| self.instant(w));
        [
            self.layer.poll_timeout(),
            calls,
            self.peer_log.poll_timeout(),
            expiry,
            self.legs.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Bytes arrived on a flow.
    pub fn handle_bytes(&mut self, now: Instant, flow: Flow, bytes: Bytes) {
        // A banned source costs no parsing and gets no reply.
        if !self.admit_message(now, flow.remote.ip(), false) {
            return;
        }
        let parsed = if flow.transport.is_reliable() {
            parse_message(bytes.clone(), &self.settings.limits)
        } else {
            sip::message::parse_datagram(bytes.clone(), &self.settings.limits)
        };
        match parsed {
            Ok(Message::Request(req)) => self.handle_request(now, flow, req),
            Ok(Message::Response(resp)) => self.handle_response(now, resp),
            Err(e) => {
                self.stats.malformed += 1;
                if self.peer_log.allow(now, flow.remote.ip()) {
                    tracing::info!(remote = %flow.remote, transport = %flow.transport, error = %e, "malformed message");
                }
                if let Some(status) = e.status_code()
                    && let Some(reply) = reply_to_raw(&bytes, status, &e.reason_phrase())
                {
                    self.actions
                        .push_back(Action::Send(reply_flow_raw(&flow), reply));
                }
            }
        }
        self.pump(now);
    }

    /// A deadline passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        // Tables a flood grew give their room back (a check when full).
        sip::shrink::sparse(&mut self.tx_source);
        sip::shrink::sparse(&mut self.tx_per_source);
        sip::shrink::sparse(&mut self.calls);
        sip::shrink::sparse(&mut self.by_dialog);
        sip::shrink::sparse(&mut self.by_invite);
        sip::shrink::sparse(&mut self.by_bye);
        self.legs_timeout(now);
        for (source, suppressed) in self.peer_log.poll_summaries(now) {
            match source {
                log_limit::Source::Addr(ip) => {
                    tracing::info!(source = %ip, suppressed, "log lines caused by this source were suppressed")
                }
                log_limit::Source::Others => tracing::info!(
                    suppressed,
                    "log lines caused by untracked sources were suppressed"
                ),
            }
        }
        let wall = self.wall(now);
        for agent in self.registrar.expire(wall) {
            tracing::info!(tenant = %agent.tenant_id, extension = %agent.extension, "registration lapsed");
            let left = self.registrar.all_bindings(&agent).to_vec();
            self.actions.push_back(Action::Bindings(agent, left));
        }
        while let Some(&(at, id)) = self.schedule.first() {
            if at > now {
                break;
            }
            self.schedule.remove(&(at, id));
            if let Some(c) = self.calls.get_mut(&id) {
                c.scheduled = None;
            }
            self.call_timeout(now, id);
        }
        self.pump(now);
    }

    /// The call's task asks to end it (the flow hung up, max duration
    /// reached, media timeout).
    pub fn hangup(&mut self, now: Instant, id: CallSlot, by: Party, reason: &str) {
        if let Some(call) = self.calls.get(&id) {
            tracing::info!(call_id = %call.call_id_text(), record_id = %call.info.record_id, reason, "hanging up");
        }
        self.send_bye(now, id, by, reason);
        self.pump(now);
    }

    /// Stop taking calls: new INVITEs get 503 from now on.
    pub fn stop_accepting(&mut self) {
        self.draining = true;
    }

    /// Stop taking calls (503) and end the ones in progress with BYE.
    pub fn drain(&mut self, now: Instant) {
        self.draining = true;
        let ids: Vec<CallSlot> = self.calls.keys().copied().collect();
        for id in ids {
            self.send_bye(now, id, Party::Dhwani, "server shutting down");
        }
        self.pump(now);
    }

    /// The flood check for one message (or new INVITE) from `ip`: false
    /// when it must be dropped without a reply.
    fn admit_message(&mut self, now: Instant, ip: std::net::IpAddr, invite: bool) -> bool {
        let verdict = if invite {
            self.pike.invite(now, ip)
        } else {
            self.pike.message(now, ip)
        };
        match verdict {
            pike::Verdict::Pass => true,
            pike::Verdict::Drop => {
                self.stats.flood_drops += 1;
                false
            }
            pike::Verdict::Banned(until) => {
                self.stats.bans += 1;
                self.stats.flood_drops += 1;
                let secs = until.saturating_duration_since(now).as_secs();
                let what = if invite { "INVITEs" } else { "messages" };
                tracing::warn!(target: "security", event = "flood_ban", source = %ip, what, ban_secs = secs, "source banned: too many {what} per second");
                false
            }
        }
    }

    /// Puts back a binding read from the store (at startup).
    pub fn restore_binding(&mut self, agent: AgentRef, binding: registrar::Binding) {
        self.registrar.restore(agent, binding);
    }

    /// An agent's registered phones at `now`.
    pub fn agent_bindings(&self, agent: &AgentRef, now: Instant) -> Vec<registrar::Binding> {
        self.registrar
            .bindings(agent, self.wall(now))
            .into_iter()
            .cloned()
            .collect()
    }

    /// The `Instant` of wall-clock time `w`.
    fn instant(&self, w: std::time::SystemTime) -> Instant {
        let (i, e) = self.epoch;
        match w.duration_since(e) {
            Ok(d) => i + d,
            Err(back) => i.checked_sub(back.duration()).unwrap_or(i),
        }
    }

    /// Wall-clock time of `now`.
    fn wall(&self, now: Instant) -> std::time::SystemTime {
        let (i, w) = self.epoch;
        match now.checked_duration_since(i) {
            Some(d) => w + d,
            None => w - i.duration_since(now),
        }
    }

    /// Moves layer outputs into actions.
    fn pump(&mut self, now: Instant) {
        while let Some(out) = self.layer.poll_output() {
            match out {
                LayerOutput::Transmit { peer, bytes } => {
                    self.actions.push_back(Action::Send(peer, bytes))
                }
                LayerOutput::Event { id, event } => self.tx_event(now, id, event),
            }
        }
    }

    fn tx_event(&mut self, now: Instant, id: TxId, event: TxEvent) {
        if self.legs.owns_tx(id) {
            self.leg_event(now, id, event);
            return;
        }
        match event {
            TxEvent::Response(resp) => {
                if let Some(call) = self.by_bye.get(&id).copied()
                    && resp.status.is_final()
                {
                    self.by_bye.remove(&id);
                    self.end_call(call, Party::Dhwani, "BYE answered");
                }
            }
            TxEvent::Timeout => {
                if let Some(call) = self.by_bye.remove(&id) {
                    self.end_call(call, Party::Dhwani, "BYE timed out");
                }
            }
            TxEvent::Terminated => {
                self.by_bye.remove(&id);
                if let Some(ip) = self.tx_source.remove(&id)
                    && let Some(n) = self.tx_per_source.get_mut(&ip)
                {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.tx_per_source.remove(&ip);
                    }
                }
                if let Some(call) = self.by_invite.remove(&id) {
                    // A call that never got past the INVITE transaction.
                    if self
                        .calls
                        .get(&call)
                        .is_some_and(|c| c.state == CallState::Failed)
                    {
                        self.end_call(call, Party::System, "INVITE failed");
                    }
                }
            }
        }
        let _ = now;
    }

    fn handle_response(&mut self, now: Instant, resp: Response) {
        if !self.layer.handle_response(now, resp) {
            // §17.1.3 / RFC 4475 §3.3: a response with no transaction is dropped.
            self.stats.stray_responses += 1;
        }
    }

    fn handle_request(&mut self, now: Instant, flow: Flow, mut req: Request) {
        let reply_flow = match stamp_via(&mut req, &flow) {
            Some(f) => f,
            None => {
                // Without a usable Via there is nowhere to answer (§18.2.2).
                self.stats.malformed += 1;
                if self.peer_log.allow(now, flow.remote.ip()) {
                    tracing::info!(remote = %flow.remote, "request without a usable Via dropped");
                }
                if let Some(r) = reply_to_raw(
                    &req.to_bytes(),
                    StatusCode::BAD_REQUEST,
                    "Malformed Via Header",
                ) {
                    self.actions
                        .push_back(Action::Send(reply_flow_raw(&flow), r));
                }
                return;
            }
        };
        let ip = flow.remote.ip();
        let new_tx = !self.layer.matches(&req) && req.method != Method::Ack;
        if new_tx && !self.pike.is_exempt(ip) {
            let is_new_invite =
                req.method == Method::Invite && req.to().ok().and_then(|t| t.tag()).is_none();
            if is_new_invite && !self.admit_message(now, ip, true) {
                return;
            }
            let held = self.tx_per_source.get(&ip).copied().unwrap_or(0);
            if held >= self.pike.limits().transactions_per_source {
                // Over its share of the table: dropped, no state, no reply.
                self.stats.flood_drops += 1;
                if self.peer_log.allow(now, ip) {
                    tracing::info!(source = %ip, held, "source at its transaction cap: request dropped");
                }
                return;
            }
        }
        let before = self.layer.len();
        let tu = match self
            .layer
            .handle_request(now, req, reply_flow, flow.transport.is_reliable())
        {
            Ok(Some(tu)) => tu,
            Ok(None) => return,
            Err(e) => {
                if self.peer_log.allow(now, flow.remote.ip()) {
                    tracing::info!(remote = %flow.remote, error = %e, "request refused by transaction layer");
                }
                return;
            }
        };
        if self.layer.len() > before {
            self.tx_source.insert(tu.id, ip);
            *self.tx_per_source.entry(ip).or_default() += 1;
        }
        let req = &tu.request;
        if req.method == Method::Ack {
            self.handle_ack(now, req);
            return;
        }
        if tu.merged {
            self.respond(
                now,
                tu.id,
                req,
                StatusCode::LOOP_DETECTED,
                "Loop Detected",
                &[],
            );
            return;
        }
        if let Err(rej) = sip::uas::check_request(req, &self.policy) {
            if self.peer_log.allow(now, flow.remote.ip()) {
                tracing::info!(remote = %flow.remote, status = %rej.status, reason = %rej.reason, method = %req.method, "request rejected");
            }
            let tag = self.new_tag();
            let resp = rej.to_response(req, tag.as_bytes());
            let _ = self.layer.respond(now, tu.id, resp);
            return;
        }
        let in_dialog = req.to().ok().and_then(|t| t.tag()).is_some();
        match (&req.method, in_dialog) {
            (Method::Invite, false) => self.new_call(now, tu.id, flow, req.clone()),
            (Method::Options, _) => {
                let allow = self.policy.allow_header();
                let accept = self.policy.accept_header(Some(&Method::Invite));
                let supported = self.policy.supported_header();
                let headers = [
                    (HeaderName::Allow, allow),
                    (HeaderName::Accept, accept),
                    (HeaderName::Supported, supported),
                    (HeaderName::AcceptEncoding, "identity".to_owned()),
                    (HeaderName::AcceptLanguage, "en".to_owned()),
                ];
                self.respond(now, tu.id, req, StatusCode::OK, "OK", &headers);
            }
            (Method::Cancel, _) => self.handle_cancel(now, tu.id, tu.cancels, req),
            (Method::Register, _) => self.handle_register(now, tu.id, flow, req.clone()),
            (_, true) if DialogId::for_incoming(req).is_ok_and(|d| self.legs.owns_dialog(&d)) => {
                self.leg_request(now, tu.id, req.clone())
            }
            (_, true) => self.in_dialog(now, tu.id, req.clone()),
            (_, false) => {
                // BYE, INFO... outside any dialog.
                self.respond(
                    now,
                    tu.id,
                    req,
                    StatusCode::CALL_DOES_NOT_EXIST,
                    "Call/Transaction Does Not Exist",
                    &[],
                );
            }
        }
    }

    fn respond(
        &mut self,
        now: Instant,
        tx: TxId,
        req: &Request,
        status: StatusCode,
        reason: &str,
        headers: &[(HeaderName, String)],
    ) {
        let tag = self.new_tag();
        let mut b = ResponseBuilder::new(req, status)
            .reason(reason)
            .to_tag(tag.as_bytes())
            .header(
                HeaderName::Server,
                Bytes::from(self.settings.user_agent.clone()),
            );
        for (n, v) in headers {
            b = b.header(n.clone(), Bytes::from(v.clone()));
        }
        if let Err(e) = self.layer.respond(now, tx, b.build()) {
            tracing::debug!(error = %e, "response not sent");
        }
    }

    fn new_tag(&mut self) -> String {
        format!("{:016x}", self.rng.random::<u64>())
    }

    fn new_branch(&mut self) -> String {
        format!("z9hG4bK{:016x}", self.rng.random::<u64>())
    }

    fn reschedule(&mut self, id: CallSlot) {
        let Some(c) = self.calls.get_mut(&id) else {
            return;
        };
        if let Some(old) = c.scheduled.take() {
            self.schedule.remove(&(old, id));
        }
        if let Some(at) = c.next_deadline() {
            c.scheduled = Some(at);
            self.schedule.insert((at, id));
        }
    }
}

/// What this UAS answers: the UAS methods of [`Policy::default`] and
/// REGISTER (the registrar), with Path (RFC 3327).
fn policy() -> Policy {
    let mut p = Policy::default();
    p.allow.push(Method::Register);
    // Agents transfer their callers (RFC 3515); a caller's REFER is refused
    // unless it is an agent's attended transfer from its consultation call.
    p.allow.push(Method::Refer);
    p.supported.push("path");
    p
}

/// Adds `received` and `rport` to the top Via (RFC 3261 §18.2.1, RFC 3581
/// §4) and returns the flow a response must take (§18.2.2): for UDP the
/// source address when `rport` was asked for, else the source IP with the
/// sent-by port; for streams the connection itself.
///
/// A `maddr` in Via is deliberately not honoured: sending responses to an
/// address named by the request would make us a reflector toward third
/// parties. Responses always go back to where the request came from.
fn stamp_via(req: &mut Request, flow: &Flow) -> Option<Flow> {
    let via = req.top_via().ok()?;
    let first_line = req.headers.first_mut(&HeaderName::Via)?;
    let mut values = sip::header::split_commas(&first_line.value);
    let top = values.next()?;
    let rest: Vec<Bytes> = values.collect();
    let src_ip = flow.remote.ip();
    let host_matches = match &via.host {
        sip::uri::Host::V4(a) => std::net::IpAddr::V4(*a) == src_ip,
        sip::uri::Host::V6(a) => std::net::IpAddr::V6(*a) == src_ip,
        sip::uri::Host::Domain(_) => false,
    };
    let wants_rport = via.rport().is_some();
    let mut parts: Vec<String> = Vec::new();
    for (i, p) in String::from_utf8_lossy(&top).split(';').enumerate() {
        let name = p.split('=').next().unwrap_or_default().trim();
        if i > 0 && name.eq_ignore_ascii_case("received") {
            continue;
        }
        if i > 0 && name.eq_ignore_ascii_case("rport") {
            parts.push(format!("rport={}", flow.remote.port()));
        } else {
            parts.push(p.to_owned());
        }
    }
    if !host_matches || wants_rport {
        parts.push(format!("received={src_ip}"));
    }
    let stamped = parts.join(";");
    let mut value = stamped;
    for r in rest {
        value.push_str(", ");
        value.push_str(&String::from_utf8_lossy(&r));
    }
    first_line.value = Bytes::from(value);
    let mut reply = *flow;
    if !flow.transport.is_reliable() && !wants_rport {
        reply.remote = SocketAddr::new(src_ip, via.port.unwrap_or(5060));
    }
    Some(reply)
}

/// The flow for a reply to something we could not parse: straight back to
/// the source.
fn reply_flow_raw(flow: &Flow) -> Flow {
    *flow
}

#[cfg(test)]
mod tests;
