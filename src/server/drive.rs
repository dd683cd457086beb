//! The SIP core's event loop: every decision is the UA core's or the
//! ACD's; this only moves bytes, runs call tasks, stores what they report
//! and wakes up on time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sip::transport::{self, Event};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{claims, clock_now};
use crate::acd::{self, Acd, AgentCommand, AttemptId, RingFailure};
use crate::call::core::{QueueEvent, SipEvent, TransferTo};
use crate::call::task::{self as call_task, CallEvent, HangupRequest, Shared, ToCore};
use crate::store::agents::AgentEventRow;
use crate::tenants::sip_targets::{Refused, Target, UriTargets};
use crate::ua::legs::LegMedia;
use crate::ua::registrar::Binding;
use crate::ua::{Action, AgentRef, CallSlot, Core, Feature, Party};

/// Where the loop's side effects go.
pub(super) struct Sinks {
    /// Registration changes, in order.
    pub bindings: mpsc::UnboundedSender<(AgentRef, Vec<Binding>)>,
    /// Agent state changes, in order.
    pub agent_events: mpsc::UnboundedSender<AgentEventRow>,
    /// State changes for the other nodes sharing the store (`login`,
    /// `logout`, `pause`, `unpause`, with a reason).
    pub agent_commands: mpsc::UnboundedSender<crate::store::agents::AgentCommandRow>,
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A tenant's way out to numbers: its outbound trunk and what it may dial.
#[derive(Debug, Clone)]
pub(super) struct Outbound {
    /// The trunk's name (for logs and the timeline).
    pub trunk: String,
    /// Our UDP socket and the trunk's address.
    pub flow: sip::transport::Flow,
    /// The From user (None: the number the caller dialled).
    pub caller_id: Option<String>,
    /// Digest credentials for its challenges.
    pub credentials: Option<(String, String)>,
    /// Number prefixes a transfer may dial.
    pub allow: Vec<String>,
}

impl Outbound {
    /// True when `number` (digits, an optional leading `+`) is one the
    /// tenant's transfers may dial.
    pub fn allows(&self, number: &str) -> bool {
        let digits = number.strip_prefix('+').unwrap_or(number);
        !digits.is_empty()
            && digits.len() <= 20
            && digits.bytes().all(|b| b.is_ascii_digit())
            && self.allow.iter().any(|p| number.starts_with(p.as_str()))
    }
}

/// Where calls out go: each tenant's trunk and other SIP hosts (by
/// tenant index), and our UDP listeners.
pub(super) struct OutRoutes {
    /// Each tenant's outbound trunk.
    pub trunks: Vec<Option<Outbound>>,
    /// Each tenant's `transfer_hosts`.
    pub uri_targets: Vec<Arc<UriTargets>>,
    /// Our UDP listeners' addresses.
    pub udp_locals: Vec<std::net::SocketAddr>,
    /// The phones other nodes' agents registered through a proxy, each
    /// time they change (`bindings::watch_elsewhere`).
    pub elsewhere: mpsc::Receiver<super::bindings::Elsewhere>,
}

/// The first trunk-leg attempt number: far above the ACD's, so the two
/// never meet.
const TRUNK_ATTEMPTS: u64 = 1 << 48;

/// Everything the loop holds between events.
struct Loop {
    core: Core,
    acd: Acd,
    transports: Arc<transport::TransportHandle>,
    shared: Arc<Shared>,
    sinks: Sinks,
    calls: HashMap<CallSlot, mpsc::Sender<CallEvent>>,
    tasks: tokio::task::JoinSet<()>,
    to_core: mpsc::Sender<ToCore>,
    /// Answered agent legs waiting for the ACD's verdict.
    answered: HashMap<u64, Box<LegMedia>>,
    /// The agent attempt each bridged call holds.
    bridged: HashMap<CallSlot, u64>,
    /// The agent each bridged call is with (for a supervisor's code).
    bridged_agent: HashMap<CallSlot, AgentRef>,
    /// Supervisors' calls: the call each joined, and its CDR row so far.
    supervising: HashMap<CallSlot, (CallSlot, crate::ua::CallInfo, String)>,
    /// Each tenant's outbound trunk, by tenant index.
    outbound: Vec<Option<Outbound>>,
    /// Calls out through a trunk still ringing: attempt -> the caller's
    /// call and what it dialled.
    trunk_calls: HashMap<u64, TrunkCall>,
    next_trunk_attempt: u64,
    /// Claims on agents in the store (`server::claims`), in order.
    claims: mpsc::UnboundedSender<claims::Op>,
    /// Rings waiting for their claim: attempt -> the caller and agent.
    claiming: HashMap<u64, (CallSlot, AgentRef)>,
    /// Attended transfers under way: the caller's call -> the consulted
    /// agent's attempt (coming over) and where the caller waits if not.
    handing_over: HashMap<CallSlot, (u64, acd::Fallback)>,
    /// Each tenant's other SIP hosts its transfers may call (by index).
    uri_targets: Vec<Arc<UriTargets>>,
    /// Our UDP listeners: a call to another host goes out from the first
    /// of its address family.
    udp_locals: Vec<std::net::SocketAddr>,
    /// Transfers to other hosts report here once their host resolved.
    resolved_tx: mpsc::UnboundedSender<Resolved>,
    /// Phones registered at other nodes through a proxy, rung from here
    /// too (`bindings::elsewhere`).
    elsewhere: super::bindings::Elsewhere,
}

/// Where an attended transfer's REFER came in: in the agent's leg of the
/// caller's call (RFC 5589 §7.1), or the other way round in its
/// consultation call to us (Refer-To the caller, Replaces its leg).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReferIn {
    Leg,
    Consultation,
}

/// A transfer to a SIP URI on another host, its name resolved (off the
/// loop: a slow DNS server holds up no other call).
struct Resolved {
    call: CallSlot,
    target: Target,
    fallback: Option<acd::Fallback>,
    addrs: Result<Vec<std::net::SocketAddr>, Refused>,
}

/// A call out through a trunk, still ringing.
struct TrunkCall {
    /// The caller's call.
    call: CallSlot,
    /// What it dialled.
    number: String,
    /// An agent's transfer: where the caller waits again if the number
    /// does not answer (a flow's transfer takes `on failure` instead).
    fallback: Option<acd::Fallback>,
}

impl Loop {
    fn tell(&self, call: CallSlot, ev: CallEvent) {
        if let Some((joined, _, _)) = self.supervising.get(&call) {
            // A supervisor's dialog: its leg runs in the call it joined.
            if let (Some(tx), CallEvent::Sip(ev)) = (self.calls.get(joined), ev) {
                let _ = tx.try_send(CallEvent::SupervisorSip(ev));
            }
            return;
        }
        if let Some(tx) = self.calls.get(&call) {
            let _ = tx.try_send(ev);
        }
    }

    /// The tenant's trunk, if it may dial `number`; else why not, with
    /// the status a REFER's NOTIFY gives for it.
    fn trunk_for(&self, tenant: usize, number: &str) -> Result<Outbound, (u16, String)> {
        let Some(out) = self.outbound.get(tenant).cloned().flatten() else {
            return Err((
                404,
                "no agent of this tenant has that extension, and it has no transfer_trunk for numbers"
                    .into(),
            ));
        };
        if !out.allows(number) {
            tracing::warn!(target: "security", event = "transfer_refused", tenant, trunk = %out.trunk, "a transfer to a number outside the tenant's transfer_allow was refused");
            return Err((
                403,
                "that number is not in the tenant's transfer_allow".into(),
            ));
        }
        Ok(out)
    }

    /// Calls `number` for `call` through the tenant's outbound trunk; if
    /// it does not answer, the caller goes back to `fallback`'s queue (an
    /// agent's transfer) or the flow takes `on failure` (a flow's).
    fn dial_out(
        &mut self,
        now: std::time::Instant,
        call: CallSlot,
        tenant: usize,
        number: &str,
        fallback: Option<acd::Fallback>,
    ) -> Result<(), String> {
        let out = self.trunk_for(tenant, number).map_err(|(_, why)| why)?;
        let caller_id = match &out.caller_id {
            Some(c) => c.clone(),
            None => self.core.called_number(call).unwrap_or_default(),
        };
        let attempt = self.next_trunk_attempt;
        self.next_trunk_attempt += 1;
        let dial = crate::ua::legs::TrunkDial {
            flow: out.flow,
            number: number.to_owned(),
            caller_id,
            credentials: out.credentials.clone(),
            uri: None,
        };
        if !self.core.ring_trunk(now, call, attempt, &dial) {
            return Err("the trunk call could not start".into());
        }
        tracing::info!(slot = call.0, trunk = %out.trunk, "transfer to a number through the outbound trunk");
        self.trunk_calls.insert(
            attempt,
            TrunkCall {
                call,
                number: number.to_owned(),
                fallback,
            },
        );
        Ok(())
    }

    /// Calls `target` (a SIP URI on one of the tenant's `transfer_hosts`)
    /// for `call`: its host is resolved off the loop, then
    /// [`Loop::on_resolved`] sends the INVITE. Failing, like [`Loop::dial_out`].
    fn dial_uri(
        &mut self,
        call: CallSlot,
        tenant: usize,
        target: Target,
        fallback: Option<acd::Fallback>,
    ) {
        let rules = self.uri_targets.get(tenant).cloned().unwrap_or_default();
        let tx = self.resolved_tx.clone();
        self.tasks.spawn(async move {
            let addrs = rules.resolve(&target).await;
            let _ = tx.send(Resolved {
                call,
                target,
                fallback,
                addrs,
            });
        });
    }

    /// A transfer to another host resolved: the INVITE goes to the first
    /// address we have a UDP listener for.
    fn on_resolved(&mut self, r: Resolved) {
        let now = clock_now();
        if !self.calls.contains_key(&r.call) {
            return;
        }
        let flow = r.addrs.map_err(|e| e.0).and_then(|addrs| {
            addrs
                .iter()
                .find_map(|remote| {
                    let local = self
                        .udp_locals
                        .iter()
                        .find(|l| l.is_ipv4() == remote.is_ipv4())?;
                    Some(sip::transport::Flow {
                        transport: sip::transport::Transport::Udp,
                        local: *local,
                        remote: *remote,
                        conn: None,
                    })
                })
                .ok_or_else(|| "no UDP listener of the host's address family".to_owned())
        });
        let flow = match flow {
            Ok(f) => f,
            Err(why) => return self.outside_failed(now, r.call, r.fallback, why),
        };
        let attempt = self.next_trunk_attempt;
        self.next_trunk_attempt += 1;
        let dial = crate::ua::legs::TrunkDial {
            flow,
            number: String::new(),
            caller_id: self.core.called_number(r.call).unwrap_or_default(),
            credentials: None,
            uri: Some(r.target.uri.clone()),
        };
        if !self.core.ring_trunk(now, r.call, attempt, &dial) {
            return self.outside_failed(now, r.call, r.fallback, "the call could not start".into());
        }
        tracing::info!(slot = r.call.0, "transfer to a SIP URI on another host");
        self.trunk_calls.insert(
            attempt,
            TrunkCall {
                call: r.call,
                number: r.target.uri,
                fallback: r.fallback,
            },
        );
    }

    /// A call out (a number or another host) failed: an agent's transfer
    /// puts the caller back in its queue, a flow's takes `on failure`.
    fn outside_failed(
        &mut self,
        now: std::time::Instant,
        call: CallSlot,
        fallback: Option<acd::Fallback>,
        why: String,
    ) {
        match fallback {
            Some(back) => {
                tracing::info!(slot = call.0, why = %why, queue = %back.queue, "transfer out failed; the caller waits in the queue again");
                self.tell(
                    call,
                    SipEvent::Queue(QueueEvent::Timeline {
                        event: "transfer failed".into(),
                        agent: None,
                    })
                    .into(),
                );
                self.acd.return_to_queue(now, call, &back);
            }
            None => self.tell(
                call,
                SipEvent::Queue(QueueEvent::TransferFailed { why }).into(),
            ),
        }
    }

    /// An agent's transfer was accepted: its leg is no longer the call's,
    /// the REFER is answered (202, NOTIFY 200), the caller told.
    fn transferred(
        &mut self,
        now: std::time::Instant,
        call: CallSlot,
        attempt: u64,
        to: String,
        kind: TransferTo,
    ) {
        self.core.answer_refer(now, attempt, Ok(()));
        self.handed_on(call, to, kind);
    }

    /// A transfer was accepted and answered: the caller's agent is gone.
    fn handed_on(&mut self, call: CallSlot, to: String, kind: TransferTo) {
        self.bridged.remove(&call);
        self.bridged_agent.remove(&call);
        self.tell(
            call,
            SipEvent::Queue(QueueEvent::Transferred { to, kind }).into(),
        );
    }

    /// Answers an attended transfer's REFER where it came in.
    fn answer_attended(
        &mut self,
        now: std::time::Instant,
        by: ReferIn,
        (attempt, consult): (u64, CallSlot),
        verdict: Result<(), u16>,
    ) {
        match by {
            ReferIn::Leg => self.core.answer_refer(now, attempt, verdict),
            ReferIn::Consultation => self.core.answer_call_refer(now, consult, attempt, verdict),
        }
    }

    /// An attended transfer (the REFER in leg `attempt` of `call`, or in
    /// the consultation call `consult`: `by`): the agent on `call` REFERs
    /// its caller to the agent it consulted on its own call `consult`. The
    /// consulted agent's leg moves to `call` (its task hands the sockets
    /// over: [`Loop::handed_over`]), the consultation call ends, and the
    /// transferring agent wraps up. Refused (481) unless `consult` is this
    /// agent's own call to another agent of its tenant, bridged now.
    fn attended(
        &mut self,
        now: std::time::Instant,
        call: CallSlot,
        attempt: u64,
        consult: CallSlot,
        by: ReferIn,
    ) {
        let from = self.bridged_agent.get(&call).cloned();
        let to_attempt = self.bridged.get(&consult).copied();
        let theirs = match (&from, self.core.call_info(consult)) {
            (Some(a), Some(info)) => {
                info.admitted.trunk == "agent"
                    && info.admitted.tenant == a.tenant
                    && info.admitted.caller == a.extension
                    && info.admitted.feature.is_none()
            }
            _ => false,
        };
        let (Some(to_attempt), true, true) = (
            to_attempt,
            theirs,
            self.bridged.get(&call) == Some(&attempt),
        ) else {
            tracing::info!(
                slot = call.0,
                "attended transfer refused: the replaced call is not this agent's call to another agent"
            );
            self.answer_attended(now, by, (attempt, consult), Err(481));
            return;
        };
        let (to, back) = match self.acd.attended(now, call, consult) {
            Ok(v) => v,
            Err(why) => {
                self.answer_attended(now, by, (attempt, consult), Err(why.status()));
                return;
            }
        };
        self.core.move_attempt(to_attempt, call);
        self.bridged.remove(&consult);
        self.bridged_agent.remove(&consult);
        self.handing_over.insert(call, (to_attempt, back));
        self.answer_attended(now, by, (attempt, consult), Ok(()));
        self.handed_on(call, to.extension.clone(), TransferTo::Attended);
        self.bridged.insert(call, to_attempt);
        self.bridged_agent.insert(call, to);
        // A consultation task that is gone (its call ending) cannot hand
        // the leg over: the caller must not wait for it.
        let sent = self
            .calls
            .get(&consult)
            .is_some_and(|tx| tx.try_send(CallEvent::HandOver { to: call }).is_ok());
        if !sent {
            self.handed_over(now, call, None);
        }
    }

    /// The consultation call's task gave up the agent leg for `to`: it
    /// joins the caller's call. Without it (the leg ended meanwhile) the
    /// caller waits in its queue again.
    fn handed_over(
        &mut self,
        now: std::time::Instant,
        to: CallSlot,
        leg: Option<(Box<LegMedia>, String)>,
    ) {
        let Some((attempt, back)) = self.handing_over.remove(&to) else {
            return;
        };
        match (leg, self.calls.get(&to)) {
            (Some((media, agent)), Some(tx)) => {
                let _ = tx.try_send(CallEvent::AgentAnswered {
                    media,
                    agent,
                    outside: false,
                });
            }
            (_, Some(_)) => {
                self.bridged.remove(&to);
                self.bridged_agent.remove(&to);
                self.core.stop_attempt(now, attempt);
                self.acd.call_ended(now, to);
                self.acd.return_to_queue(now, to, &back);
            }
            // The caller is gone too: the agent's leg ends.
            (_, None) => self.core.stop_attempt(now, attempt),
        }
    }

    /// An agent's blind transfer to a number: refused (403, 404) when the
    /// tenant's trunk may not dial it; else the agent's part ends and the
    /// number is rung through the trunk while the caller hears the hold
    /// music; unanswered, the caller waits in its queue again.
    fn refer_to_number(
        &mut self,
        now: std::time::Instant,
        call: CallSlot,
        attempt: u64,
        number: String,
    ) {
        let Some(tenant) = self.bridged_agent.get(&call).map(|a| a.tenant) else {
            self.core.answer_refer(now, attempt, Err(481));
            return;
        };
        if let Err((status, why)) = self.trunk_for(tenant, &number) {
            tracing::info!(slot = call.0, why = %why, "transfer to a number refused");
            self.core.answer_refer(now, attempt, Err(status));
            return;
        }
        let Some(back) = self.transfer_out(now, call, attempt) else {
            return;
        };
        self.transferred(now, call, attempt, number.clone(), TransferTo::Number);
        if let Err(why) = self.dial_out(now, call, tenant, &number, Some(back.clone())) {
            tracing::info!(slot = call.0, why = %why, "transfer to a number could not start; the caller waits in the queue again");
            self.acd.return_to_queue(now, call, &back);
        }
    }

    /// The ACD lets the agent's caller go out of the centre (to a number,
    /// another host); refused, the REFER is answered with why.
    fn transfer_out(
        &mut self,
        now: std::time::Instant,
        call: CallSlot,
        attempt: u64,
    ) -> Option<acd::Fallback> {
        match self.acd.transfer_out(now, call) {
            Ok(back) => Some(back),
            Err(why) => {
                self.core.answer_refer(now, attempt, Err(why.status()));
                None
            }
        }
    }

    /// An agent's blind transfer to a SIP URI on one of the tenant's
    /// other hosts: refused (403) when it cannot be called (`sips:`, a
    /// transport other than UDP, a `maddr`); else like
    /// [`Loop::refer_to_number`], the host resolved first.
    fn refer_to_uri(
        &mut self,
        now: std::time::Instant,
        call: CallSlot,
        attempt: u64,
        tenant: usize,
        target: Result<Target, Refused>,
    ) {
        if self.bridged.get(&call) != Some(&attempt) {
            self.core.answer_refer(now, attempt, Err(481));
            return;
        }
        let target = match target {
            Ok(t) => t,
            Err(why) => {
                tracing::info!(slot = call.0, why = %why, "transfer to another host refused");
                self.core.answer_refer(now, attempt, Err(403));
                return;
            }
        };
        let Some(back) = self.transfer_out(now, call, attempt) else {
            return;
        };
        self.transferred(now, call, attempt, target.uri.clone(), TransferTo::Uri);
        self.dial_uri(call, tenant, target, Some(back));
    }

    /// The call agent `extension` of `tenant` is bridged to.
    fn call_of_agent(&self, tenant: usize, extension: &str) -> Option<CallSlot> {
        self.bridged_agent
            .iter()
            .find(|(_, a)| a.tenant == tenant && a.extension == extension)
            .map(|(c, _)| *c)
    }

    /// Tells the other nodes an agent's state change made here.
    fn publish(&self, agent: &AgentRef, command: &str, reason: &str) {
        let _ = self
            .sinks
            .agent_commands
            .send(crate::store::agents::AgentCommandRow {
                tenant: agent.tenant_id.to_string(),
                extension: agent.extension.clone(),
                command: command.into(),
                reason: reason.into(),
                at_ms: ms(SystemTime::now()),
                id: String::new(),
                origin: String::new(),
            });
    }

    /// Runs the UA core's actions and the ACD's outputs until both are quiet.
    fn pump(&mut self) {
        loop {
            let mut busy = false;
            while let Some(action) = self.core.poll_action() {
                busy = true;
                self.action(action);
            }
            while let Some(out) = self.acd.poll_output() {
                busy = true;
                self.acd_output(out);
            }
            if !busy {
                break;
            }
        }
    }

    fn action(&mut self, action: Action) {
        let now = clock_now();
        match action {
            Action::Send(flow, bytes) => {
                if let Err(e) = self.transports.send(&flow, bytes) {
                    tracing::debug!(remote = %flow.remote, error = %e, "send failed");
                }
            }
            Action::StartMedia(setup) => {
                if let Some((sup, Feature::Supervise { mode, target })) =
                    &setup.info.admitted.feature
                    && let Some(joined) = self.call_of_agent(sup.tenant, target)
                    && let Some(tx) = self.calls.get(&joined)
                {
                    // The supervisor's leg runs in the agent's call; its
                    // own flow ("not on a call") is only for a miss.
                    let (id, mode) = (setup.id, *mode);
                    let outcome = format!("supervised: {} {target}", mode.name());
                    let extension = sup.extension.clone();
                    self.supervising
                        .insert(id, (joined, setup.info.clone(), outcome));
                    let _ = tx.try_send(CallEvent::Supervise {
                        setup,
                        mode,
                        extension,
                    });
                    return;
                }
                let (tx, rx) = mpsc::channel(64);
                let id = setup.id;
                self.calls.insert(id, tx);
                let info = setup.info.clone();
                let task = tokio::spawn(call_task::run(
                    *setup,
                    Arc::clone(&self.shared),
                    rx,
                    self.to_core.clone(),
                ));
                let to_core = self.to_core.clone();
                let log = self.shared.log.clone();
                self.tasks.spawn(async move {
                    if let Err(e) = task.await
                        && e.is_panic()
                    {
                        // One call's bug ends that call only.
                        tracing::error!(call_id = %info.sip_call_id, "call task panicked; ending the call");
                        let r = crate::call::core::failed_record(&info, SystemTime::now());
                        log.send(crate::store::writer::Record::Call(Box::new(r)));
                        let _ = to_core
                            .send(ToCore::Hangup(HangupRequest {
                                id,
                                by: Party::System,
                                reason: "internal error".into(),
                            }))
                            .await;
                    }
                });
            }
            Action::CallEnded {
                id,
                by,
                cause,
                info,
            } => {
                if let Some((joined, info, outcome)) = self.supervising.remove(&id) {
                    self.tell(
                        joined,
                        CallEvent::SupervisorSip(SipEvent::Ended {
                            by,
                            cause: cause.clone(),
                        }),
                    );
                    let mut r = crate::call::cdr::call_record(&info);
                    let end = SystemTime::now();
                    let answered = info.answered_at.unwrap_or(info.invited_at);
                    r.end_ms = Some(crate::call::cdr::ms(end));
                    r.duration_ms = Some(
                        end.duration_since(answered)
                            .map(|d| d.as_millis() as i64)
                            .unwrap_or(0),
                    );
                    r.hangup_by = Some(by.name().into());
                    r.hangup_cause = Some(cause);
                    r.outcome = Some(outcome);
                    self.shared
                        .log
                        .send(crate::store::writer::Record::Call(Box::new(r)));
                    return;
                }
                // Its queue place, its rings, its agent's leg end too.
                self.acd.abandon(now, id);
                let ringing: Vec<u64> = self
                    .trunk_calls
                    .iter()
                    .filter(|(_, t)| t.call == id)
                    .map(|(a, _)| *a)
                    .collect();
                for a in ringing {
                    self.trunk_calls.remove(&a);
                    self.core.stop_attempt(now, a);
                }
                self.bridged_agent.remove(&id);
                if let Some(attempt) = self.bridged.remove(&id) {
                    self.core.stop_attempt(now, attempt);
                }
                match self.calls.remove(&id) {
                    Some(tx) => {
                        let _ = tx.try_send(SipEvent::Ended { by, cause }.into());
                    }
                    None => {
                        if let Some(info) = info {
                            call_task::write_unanswered(&self.shared.log, &info, by, &cause);
                        }
                    }
                }
            }
            Action::MediaConfirmed(id) => self.tell(id, SipEvent::Confirmed.into()),
            Action::InfoDigit(id, key) => self.tell(id, SipEvent::InfoDigit(key).into()),
            Action::MediaUpdate(id, update) => self.tell(id, SipEvent::MediaUpdate(update).into()),
            Action::Bindings(agent, list) => {
                let live = !self.phones(&agent, now).is_empty();
                self.acd.reachable(now, &agent, live);
                let _ = self.sinks.bindings.send((agent, list));
            }
            Action::AgentFeature(agent, feature) => {
                let cmd = match feature {
                    Feature::LogIn => Some(AgentCommand::LogIn),
                    Feature::LogOut => Some(AgentCommand::LogOut),
                    Feature::Pause => Some(AgentCommand::Pause("from the phone".into())),
                    Feature::Unpause => Some(AgentCommand::Unpause),
                    Feature::Supervise { .. } | Feature::Unknown => None,
                };
                // The other nodes apply it too (their ACDs offer the agent
                // to their callers).
                match &cmd {
                    Some(AgentCommand::LogIn) => self.publish(&agent, "login", ""),
                    Some(AgentCommand::LogOut) => self.publish(&agent, "logout", ""),
                    Some(AgentCommand::Pause(r)) => self.publish(&agent, "pause", r),
                    Some(AgentCommand::Unpause) => self.publish(&agent, "unpause", ""),
                    _ => {}
                }
                if let Some(cmd) = cmd
                    && !self.acd.command(now, &agent, cmd)
                {
                    tracing::info!(tenant = %agent.tenant_id, extension = %agent.extension, "feature code from an agent in no queue: nothing to change");
                }
            }
            Action::LegRinging { .. } => {}
            Action::LegAnswered { attempt, media, .. } => {
                if let Some(TrunkCall { call, number, .. }) = self.trunk_calls.remove(&attempt) {
                    match self.calls.get(&call) {
                        Some(tx) => {
                            self.bridged.insert(call, attempt);
                            let _ = tx.try_send(CallEvent::AgentAnswered {
                                media,
                                agent: number,
                                outside: true,
                            });
                        }
                        None => self.core.stop_attempt(now, attempt),
                    }
                    return;
                }
                self.answered.insert(attempt, media);
                self.acd.answered(now, AttemptId(attempt));
            }
            Action::LegFailed {
                attempt, status, ..
            } if self.trunk_calls.contains_key(&attempt) => {
                if let Some(t) = self.trunk_calls.remove(&attempt) {
                    let why = match status {
                        486 | 600 => "busy".to_owned(),
                        408 | 480 | 487 => "no answer".to_owned(),
                        s => format!("the far end refused the call (SIP {s})"),
                    };
                    self.outside_failed(now, t.call, t.fallback, why);
                }
            }
            Action::LegFailed {
                attempt, status, ..
            } => {
                let why = match status {
                    486 | 600 | 603 => RingFailure::Busy,
                    408 | 480 | 487 => RingFailure::NoAnswer,
                    s => RingFailure::Failed(format!("SIP {s}")),
                };
                self.acd.ring_failed(now, AttemptId(attempt), why);
            }
            // A leg the caller was transferred away from is no longer its
            // agent: its BYE or re-INVITE does not touch the call.
            Action::LegEnded { call, attempt } => {
                if self.bridged.get(&call) == Some(&attempt) {
                    self.tell(call, SipEvent::Queue(QueueEvent::AgentLeft).into());
                }
            }
            Action::LegUpdate {
                call,
                attempt,
                update,
            } => {
                if self.bridged.get(&call) == Some(&attempt) {
                    self.tell(call, SipEvent::Queue(QueueEvent::AgentMedia(update)).into());
                }
            }
            Action::LegRefer {
                call,
                attempt,
                replaces: Some(consult),
                ..
            } => self.attended(now, call, attempt, consult, ReferIn::Leg),
            Action::ConsultRefer {
                consult,
                call,
                attempt,
            } => self.attended(now, call, attempt, consult, ReferIn::Consultation),
            Action::LegRefer {
                call,
                attempt,
                target,
                uri,
                replaces: None,
            } => {
                let other_host = self
                    .bridged_agent
                    .get(&call)
                    .and_then(|a| Some((a.tenant, self.uri_targets.get(a.tenant)?.target(&uri)?)));
                if let Some((tenant, t)) = other_host {
                    return self.refer_to_uri(now, call, attempt, tenant, t);
                }
                let verdict = if self.bridged.get(&call) == Some(&attempt) {
                    self.acd.transfer(now, call, &target)
                } else {
                    Err(acd::TransferRefused::NotBridged)
                };
                match verdict {
                    Ok(to) => {
                        let (to, kind) = match to {
                            acd::TransferTarget::Queue(q) => (q, TransferTo::Queue),
                            acd::TransferTarget::Agent(a) => (a, TransferTo::Agent),
                        };
                        self.transferred(now, call, attempt, to, kind);
                    }
                    Err(acd::TransferRefused::NoSuchTarget) if looks_like_number(&target) => {
                        self.refer_to_number(now, call, attempt, target);
                    }
                    Err(why) => {
                        // The target may be a phone number: not logged.
                        tracing::info!(slot = call.0, why = ?why, "transfer refused");
                        self.core.answer_refer(now, attempt, Err(why.status()));
                    }
                }
            }
        }
    }

    fn acd_output(&mut self, out: acd::Output) {
        let now = clock_now();
        match out {
            // The agent is claimed in the store first (another node
            // sharing it may hold the agent); rung when the claim is ours.
            acd::Output::Ring {
                call,
                attempt,
                agent,
            } => {
                self.claiming.insert(attempt.0, (call, agent.clone()));
                let _ = self.claims.send(claims::Op::Claim {
                    attempt: attempt.0,
                    tenant: agent.tenant_id.to_string(),
                    extension: agent.extension.clone(),
                });
            }
            acd::Output::StopRing { attempt } => {
                // Not rung yet (its claim is on the way): nothing to stop.
                if self.claiming.remove(&attempt.0).is_none() {
                    self.answered.remove(&attempt.0);
                    self.core.stop_attempt(now, attempt.0);
                }
            }
            acd::Output::Bridge {
                call,
                attempt,
                agent,
            } => match (self.answered.remove(&attempt.0), self.calls.get(&call)) {
                (Some(media), Some(tx)) => {
                    self.bridged.insert(call, attempt.0);
                    self.bridged_agent.insert(call, agent.clone());
                    let _ = tx.try_send(CallEvent::AgentAnswered {
                        media,
                        agent: agent.extension.clone(),
                        outside: false,
                    });
                }
                _ => {
                    self.core.stop_attempt(now, attempt.0);
                    self.acd.call_ended(now, call);
                }
            },
            acd::Output::DirectFailed { call, why } => self.tell(
                call,
                SipEvent::Queue(QueueEvent::TransferFailed {
                    why: format!("the agent did not take the call ({why})"),
                })
                .into(),
            ),
            acd::Output::Overflow { call, why } => self.tell(
                call,
                SipEvent::Queue(QueueEvent::Overflow {
                    why: why.name().into(),
                })
                .into(),
            ),
            acd::Output::Position {
                call,
                position,
                estimated_wait,
            } => self.tell(
                call,
                SipEvent::Queue(QueueEvent::Position {
                    position,
                    estimated_wait_secs: estimated_wait.map(|d| d.as_secs()),
                })
                .into(),
            ),
            acd::Output::Timeline { call, event, agent } => self.tell(
                call,
                SipEvent::Queue(QueueEvent::Timeline {
                    event: event.into(),
                    agent,
                })
                .into(),
            ),
            acd::Output::AgentState {
                agent,
                from,
                to,
                reason,
                at,
            } => {
                tracing::info!(tenant = %agent.tenant_id, extension = %agent.extension, from = from.name(), to = to.name(), reason = %reason, "agent state");
                // The claim is held from the ring to the end of wrap-up,
                // so no other node rings the agent meanwhile.
                let held = |s: &acd::State| {
                    matches!(
                        s,
                        acd::State::Ringing | acd::State::OnCall | acd::State::WrapUp
                    )
                };
                let (tenant, extension) = (agent.tenant_id.to_string(), agent.extension.clone());
                if to == acd::State::OnCall || to == acd::State::WrapUp {
                    let state = if to == acd::State::OnCall {
                        "on-call"
                    } else {
                        "wrap-up"
                    };
                    let _ = self.claims.send(claims::Op::OnCall {
                        tenant,
                        extension,
                        state,
                    });
                } else if held(&from) && !held(&to) {
                    let _ = self.claims.send(claims::Op::Release { tenant, extension });
                }
                // A pause the ACD made itself (a ring left unanswered) is
                // the agent's state on every node: the others are told.
                if matches!(&to, acd::State::Paused(_)) && reason == "no answer" {
                    self.publish(&agent, "pause", "no answer");
                }
                let reason = match &to {
                    acd::State::Paused(r) => r.clone(),
                    _ => reason,
                };
                let _ = self.sinks.agent_events.send(AgentEventRow {
                    seq: 0,
                    tenant: agent.tenant_id.to_string(),
                    extension: agent.extension.clone(),
                    at_ms: ms(at),
                    from_state: from.name().into(),
                    to_state: to.name().into(),
                    reason,
                });
            }
        }
    }

    /// An agent's phones: those registered here, then those registered at
    /// other nodes through a proxy (a contact registered here is not
    /// taken twice), all unexpired.
    fn phones(&self, agent: &AgentRef, now: std::time::Instant) -> Vec<Binding> {
        let mut phones = self.core.agent_bindings(agent, now);
        let wall = SystemTime::now();
        if let Some(there) = self.elsewhere.get(agent) {
            for b in there {
                if b.expires > wall && !phones.iter().any(|p| p.contact == b.contact) {
                    phones.push(b.clone());
                }
            }
        }
        phones
    }

    /// A new set of phones registered at other nodes: agents that gained
    /// or lost their only phones become reachable or unreachable here.
    fn elsewhere_changed(&mut self, set: super::bindings::Elsewhere) {
        let now = clock_now();
        let old = std::mem::replace(&mut self.elsewhere, set);
        let mut agents: Vec<AgentRef> = old.into_keys().collect();
        agents.extend(self.elsewhere.keys().cloned());
        agents.sort_by(|a, b| (a.tenant, &a.extension).cmp(&(b.tenant, &b.extension)));
        agents.dedup();
        for agent in agents {
            let live = !self.phones(&agent, now).is_empty();
            self.acd.reachable(now, &agent, live);
        }
    }

    /// The store's answer to a claim: ring the agent's phones, or, if
    /// another node holds the agent, tell the ACD (the next agent is
    /// tried). A ring stopped meanwhile is not started.
    fn claimed(&mut self, attempt: u64, ok: bool) {
        let now = clock_now();
        let Some((call, agent)) = self.claiming.remove(&attempt) else {
            return;
        };
        if !ok {
            tracing::info!(tenant = %agent.tenant_id, extension = %agent.extension, "agent held by another node; not rung");
            self.acd
                .ring_failed(now, AttemptId(attempt), RingFailure::Elsewhere);
            return;
        }
        let phones = self.phones(&agent, now);
        if !self
            .core
            .ring_agent(now, call, attempt, &agent.extension, &phones)
        {
            self.acd.ring_failed(
                now,
                AttemptId(attempt),
                RingFailure::Failed("no phone to ring".into()),
            );
        }
    }

    fn call_request(&mut self, req: ToCore) {
        let now = clock_now();
        match req {
            ToCore::Hangup(r) => self.core.hangup(now, r.id, r.by, &r.reason),
            ToCore::LeaveQueue(id) => self.acd.left_by_key(now, id),
            ToCore::Transfer { id, tenant, target } => {
                // A SIP URI on one of the tenant's other hosts is called
                // there.
                match self.uri_targets.get(tenant).and_then(|u| u.target(&target)) {
                    Some(Ok(t)) => return self.dial_uri(id, tenant, t, None),
                    Some(Err(why)) => {
                        return self.tell(
                            id,
                            SipEvent::Queue(QueueEvent::TransferFailed { why: why.0 }).into(),
                        );
                    }
                    None => {}
                }
                // Else `sip:EXT@host` or `EXT`: an agent of the tenant, or
                // a number through its trunk.
                let ext = target
                    .strip_prefix("sip:")
                    .or_else(|| target.strip_prefix("sips:"))
                    .map_or(target.as_str(), |u| u.split('@').next().unwrap_or(u));
                let why = match self.acd.connect_to_agent(now, id, tenant, ext) {
                    Ok(()) => return,
                    Err(acd::TransferRefused::Unavailable) => {
                        "the agent is not available".to_owned()
                    }
                    // Not an agent: a number, through the tenant's trunk.
                    Err(_) => match self.dial_out(now, id, tenant, ext, None) {
                        Ok(()) => return,
                        Err(why) => why,
                    },
                };
                self.tell(
                    id,
                    SipEvent::Queue(QueueEvent::TransferFailed { why }).into(),
                );
            }
            ToCore::HandedOver { to, leg } => self.handed_over(now, to, leg),
            ToCore::AgentNotNeeded(id) => {
                if let Some(attempt) = self.bridged.remove(&id) {
                    self.core.stop_attempt(now, attempt);
                }
                self.acd.call_ended(now, id);
            }
            ToCore::Enqueue {
                id,
                tenant,
                name,
                max_wait,
                priority,
                announce_every,
            } => self.acd.enqueue_announced(
                now,
                id,
                (tenant, &name),
                priority,
                max_wait,
                announce_every,
            ),
        }
    }
}

/// A REFER's target that no queue or agent has might be a number to dial
/// out: digits, with an optional leading `+`.
fn looks_like_number(target: &str) -> bool {
    let digits = target.strip_prefix('+').unwrap_or(target);
    (3..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Runs the loop until shutdown and drain are over.
#[allow(clippy::too_many_arguments)]
pub(super) async fn drive(
    core: Core,
    acd: Acd,
    transports: transport::TransportHandle,
    mut events: mpsc::Receiver<Event>,
    shutdown: CancellationToken,
    shared: Arc<Shared>,
    drain: Duration,
    sinks: Sinks,
    mut agent_cmds: mpsc::Receiver<(AgentRef, AgentCommand)>,
    routes: OutRoutes,
    (claims, mut claim_replies): (
        mpsc::UnboundedSender<claims::Op>,
        mpsc::UnboundedReceiver<claims::Reply>,
    ),
) {
    let (to_core_tx, mut to_core_rx) = mpsc::channel::<ToCore>(1024);
    let (resolved_tx, mut resolved_rx) = mpsc::unbounded_channel::<Resolved>();
    let mut elsewhere_rx = routes.elsewhere;
    let mut l = Loop {
        core,
        acd,
        transports: Arc::new(transports),
        shared,
        sinks,
        calls: HashMap::new(),
        tasks: tokio::task::JoinSet::new(),
        to_core: to_core_tx,
        answered: HashMap::new(),
        bridged: HashMap::new(),
        bridged_agent: HashMap::new(),
        supervising: HashMap::new(),
        outbound: routes.trunks,
        uri_targets: routes.uri_targets,
        udp_locals: routes.udp_locals,
        resolved_tx,
        elsewhere: Default::default(),
        trunk_calls: HashMap::new(),
        next_trunk_attempt: TRUNK_ATTEMPTS,
        claims,
        claiming: HashMap::new(),
        handing_over: HashMap::new(),
    };
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Draining: until the first deadline calls may finish; at it, BYE;
    // at the second, stop regardless.
    let mut drain_deadlines: Option<(tokio::time::Instant, tokio::time::Instant)> = None;
    let mut byes_sent = false;
    loop {
        l.pump();
        while l.tasks.try_join_next().is_some() {}
        if let Some((bye_at, stop_at)) = drain_deadlines {
            let now = tokio::time::Instant::now();
            // Calls whose BYE or failure is sent are over; but after the
            // drain's own BYEs, their answers are awaited (until
            // `stop_at`) so the BYEs are retransmitted if lost.
            let done = if byes_sent {
                l.core.call_count() == 0
            } else {
                l.core.live_call_count() == 0
            };
            if done || now >= stop_at {
                break;
            }
            if now >= bye_at && !byes_sent {
                byes_sent = true;
                tracing::info!(
                    calls = l.core.live_call_count(),
                    "drain time over: ending calls"
                );
                l.core.drain(clock_now());
                continue;
            }
        }
        let wake = [l.core.poll_timeout(), l.acd.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let wake = match drain_deadlines {
            Some((b, s)) if !byes_sent => wake.min(b).min(s),
            Some((_, s)) => wake.min(s),
            None => wake,
        };
        tokio::select! {
            ev = events.recv() => match ev {
                Some(Event::Message(m)) => l.core.handle_bytes(clock_now(), m.flow, m.bytes),
                Some(Event::Rejected { .. }) => {}
                None => break,
            },
            Some(req) = to_core_rx.recv() => l.call_request(req),
            Some(r) = resolved_rx.recv() => l.on_resolved(r),
            Some(set) = elsewhere_rx.recv() => l.elsewhere_changed(set),
            Some(reply) = claim_replies.recv() => match reply {
                claims::Reply::Claimed { attempt, ok } => l.claimed(attempt, ok),
                claims::Reply::Elsewhere(held) => l.acd.held_elsewhere(clock_now(), &held),
            },
            _ = heartbeat.tick() => {
                let _ = l.claims.send(claims::Op::Heartbeat { held: l.acd.held_here() });
                let st = l.core.stats();
                l.shared.metrics.sip(
                    crate::metrics::SipFigures {
                        malformed: st.malformed,
                        bans: st.bans,
                        flood_drops: st.flood_drops,
                        registrations_accepted: st.registrations,
                        calls_in_core: l.core.live_call_count() as u64,
                        bindings: l.core.binding_count() as u64,
                    },
                    &l.acd.state_counts(),
                );
            }
            Some((agent, cmd)) = agent_cmds.recv() => {
                let skills = matches!(cmd, AgentCommand::SetSkills(_));
                if !l.acd.command(clock_now(), &agent, cmd) && !skills {
                    tracing::info!(tenant = %agent.tenant_id, extension = %agent.extension, "state change for an agent in no queue ignored");
                }
            }
            _ = tokio::time::sleep_until(wake) => {
                let now = clock_now();
                l.core.handle_timeout(now);
                l.acd.handle_timeout(now);
            }
            _ = shutdown.cancelled(), if drain_deadlines.is_none() => {
                tracing::info!(calls = l.core.live_call_count(), drain_secs = drain.as_secs(), "shutting down: no new calls; waiting for calls to finish");
                l.core.stop_accepting();
                let now = tokio::time::Instant::now();
                drain_deadlines = Some((now + drain, now + drain + Duration::from_secs(3)));
            }
        }
    }
    // Calls still open (their BYE unanswered): end their tasks so each
    // writes its CDR.
    for (_, tx) in l.calls.drain() {
        let _ = tx.try_send(
            SipEvent::Ended {
                by: Party::Dhwani,
                cause: "server shutting down".into(),
            }
            .into(),
        );
    }
    drop(l.to_core);
    let mut tasks = l.tasks;
    let wait_tasks = async { while tasks.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(5), wait_tasks).await;
}

#[cfg(test)]
mod tests {
    use super::Outbound;

    #[test]
    fn a_transfer_dials_only_numbers_under_the_tenants_prefixes() {
        let o = Outbound {
            trunk: "carrier".into(),
            flow: sip::transport::Flow {
                transport: sip::transport::Transport::Udp,
                local: "127.0.0.1:5060".parse().expect("addr"),
                remote: "127.0.0.1:5070".parse().expect("addr"),
                conn: None,
            },
            caller_id: None,
            credentials: None,
            allow: vec!["+9198".into(), "1800".into()],
        };
        for yes in ["+919812345678", "18001234567"] {
            assert!(o.allows(yes), "{yes}");
        }
        for no in [
            "+14155550100",
            "00919812345678",
            "+9198123;user=phone",
            "+9198 12345",
            "",
            "+919812345678901234567890",
        ] {
            assert!(!o.allows(no), "{no}");
        }
    }
}
