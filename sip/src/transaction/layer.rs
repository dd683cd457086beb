//! Matching messages to transactions (RFC 3261 §17.1.3, §17.2.3) and
//! driving all of them from one schedule.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::client_invite::ClientInvite;
use super::client_non_invite::ClientNonInvite;
use super::server_invite::{self, ServerInvite};
use super::server_non_invite::{self, ServerNonInvite};
use super::{Output, Timers, TxEvent};
use crate::message::{Method, Request, Response};
use crate::{Error, Result};

/// Identifies one transaction inside a [`Layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

/// The matching key of §17.2.3: branch, sent-by and method (ACK counts as
/// INVITE). Requests without the magic cookie (RFC 2543 peers) are keyed
/// by Request-URI, From tag, Call-ID, CSeq number and top Via instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    branch: Bytes,
    sent_by: Bytes,
    method: Method,
    server: bool,
}

impl Key {
    /// The key of a received request.
    pub fn for_request(req: &Request) -> Result<Key> {
        let via = req.top_via()?;
        let method = match &req.method {
            Method::Ack => Method::Invite,
            m => m.clone(),
        };
        let branch = if via.has_rfc3261_branch() {
            via.branch().unwrap_or_default()
        } else {
            // RFC 2543 matching (§17.2.3, last paragraphs).
            let mut b = BytesMut::new();
            b.extend_from_slice(b"2543|");
            b.extend_from_slice(req.uri.as_bytes());
            b.extend_from_slice(b"|");
            b.extend_from_slice(&req.from()?.tag().unwrap_or_default());
            b.extend_from_slice(b"|");
            b.extend_from_slice(&req.call_id()?);
            b.extend_from_slice(format!("|{}|", req.cseq()?.seq).as_bytes());
            b.extend_from_slice(&via.sent_by);
            b.freeze()
        };
        Ok(Key {
            branch,
            sent_by: via.sent_by.clone(),
            method,
            server: true,
        })
    }

    /// The key of a received response (for client transactions, §17.1.3).
    pub fn for_response(resp: &Response) -> Result<Key> {
        let via = resp.top_via()?;
        Ok(Key {
            branch: via.branch().unwrap_or_default(),
            sent_by: Bytes::new(),
            method: resp.cseq()?.method,
            server: false,
        })
    }

    fn for_client(req: &Request) -> Result<Key> {
        let via = req.top_via()?;
        Ok(Key {
            branch: via.branch().unwrap_or_default(),
            sent_by: Bytes::new(),
            method: req.method.clone(),
            server: false,
        })
    }

    fn with_method(&self, method: Method) -> Key {
        Key {
            method,
            ..self.clone()
        }
    }
}

/// A request the transaction user must act on.
#[derive(Debug, Clone)]
pub struct TuRequest {
    /// Its server transaction (respond through [`Layer::respond`]).
    pub id: TxId,
    /// The request.
    pub request: Request,
    /// For CANCEL: the INVITE transaction it cancels, if still there.
    pub cancels: Option<TxId>,
    /// §8.2.2.2: a request with no To tag that repeats the From tag,
    /// Call-ID and CSeq of a live transaction but arrived on another
    /// branch (a forked copy). Answer it 482.
    pub merged: bool,
}

/// What the layer emits.
#[derive(Debug, Clone)]
pub enum LayerOutput<A> {
    /// Bytes to send to a peer.
    Transmit {
        /// Where.
        peer: A,
        /// What.
        bytes: Bytes,
    },
    /// Something for the transaction user.
    Event {
        /// Which transaction.
        id: TxId,
        /// What happened.
        event: TxEvent,
    },
}

// Variants are named after the RFC's four machines; the INVITE client one
// is the largest because it keeps the INVITE to build the ACK.
#[allow(clippy::large_enum_variant, clippy::enum_variant_names)]
#[derive(Debug)]
enum Machine {
    ServerInvite(ServerInvite),
    ServerNonInvite(ServerNonInvite),
    ClientInvite(ClientInvite),
    ClientNonInvite(ClientNonInvite),
}

type MergeKey = (Bytes, Bytes, u32, Method);

#[derive(Debug)]
struct Entry<A> {
    key: Key,
    peer: A,
    machine: Machine,
    scheduled: Option<Instant>,
    merge_key: Option<MergeKey>,
}

/// All transactions of one endpoint.
#[derive(Debug)]
pub struct Layer<A> {
    timers: Timers,
    max_transactions: usize,
    next_id: u64,
    by_key: HashMap<Key, TxId>,
    /// Boxed: a state machine is about a kilobyte, and a table sized for
    /// a load peak keeps its buckets; pointers keep that small.
    entries: HashMap<TxId, Box<Entry<A>>>,
    merged: HashMap<MergeKey, TxId>,
    schedule: BTreeSet<(Instant, TxId)>,
    out: VecDeque<LayerOutput<A>>,
}

impl<A: Clone> Layer<A> {
    /// An empty layer holding at most `max_transactions` at once; new
    /// requests beyond that are refused with [`Error::TooManyTransactions`]
    /// so the driver can answer 503.
    pub fn new(timers: Timers, max_transactions: usize) -> Layer<A> {
        Layer {
            timers,
            max_transactions,
            next_id: 0,
            by_key: HashMap::new(),
            entries: HashMap::new(),
            merged: HashMap::new(),
            schedule: BTreeSet::new(),
            out: VecDeque::new(),
        }
    }

    /// The timer values.
    pub fn timers(&self) -> Timers {
        self.timers
    }

    /// Live transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No live transactions.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when `request` belongs to a live transaction (a retransmission,
    /// or the ACK of a failure): handing it to [`Layer::handle_request`]
    /// creates nothing new.
    pub fn matches(&self, request: &Request) -> bool {
        Key::for_request(request).is_ok_and(|k| self.by_key.contains_key(&k))
    }

    /// Takes a received request. Returns `Ok(Some(_))` when the TU must act
    /// (a new request, a CANCEL, or an ACK that matched no transaction, that
    /// is the ACK of a 2xx), `Ok(None)` when a transaction absorbed it
    /// (a retransmission, the ACK of a failure).
    pub fn handle_request(
        &mut self,
        now: Instant,
        request: Request,
        peer: A,
        reliable: bool,
    ) -> Result<Option<TuRequest>> {
        let key = Key::for_request(&request)?;
        if let Some(&id) = self.by_key.get(&key)
            && let Some(e) = self.entries.get_mut(&id)
        {
            // A retransmission or the ACK of a failure.
            match (&mut e.machine, &request.method) {
                (Machine::ServerInvite(m), Method::Ack) => {
                    if m.state() == super::state::ServerInvite::Accepted {
                        // The ACK of our 2xx is for the dialog, not us.
                        return Ok(Some(TuRequest {
                            id,
                            request,
                            cancels: None,
                            merged: false,
                        }));
                    }
                    m.handle_input(now, server_invite::Input::Ack)
                }
                (Machine::ServerInvite(m), _) => {
                    m.handle_input(now, server_invite::Input::Retransmission)
                }
                (Machine::ServerNonInvite(m), _) => {
                    m.handle_input(now, server_non_invite::Input::Retransmission)
                }
                _ => {}
            }
            self.after_input(id);
            return Ok(None);
        }
        if request.method == Method::Ack {
            // No transaction: the ACK of a 2xx (§17.2.3 / §13.3.1.4), for the TU.
            return Ok(Some(TuRequest {
                id: TxId(u64::MAX),
                request,
                cancels: None,
                merged: false,
            }));
        }
        if self.entries.len() >= self.max_transactions {
            return Err(Error::TooManyTransactions {
                limit: self.max_transactions,
            });
        }
        let cancels = if request.method == Method::Cancel {
            self.by_key.get(&key.with_method(Method::Invite)).copied()
        } else {
            None
        };
        let mut merged = false;
        let to_tag = request.to().ok().and_then(|t| t.tag());
        let from_tag = request.from().ok().and_then(|f| f.tag());
        let merge_key = match (to_tag, from_tag, request.call_id(), request.cseq()) {
            (None, Some(from_tag), Ok(call_id), Ok(cseq)) if request.method != Method::Cancel => {
                let mk = (from_tag, call_id, cseq.seq, request.method.clone());
                if self.merged.contains_key(&mk) {
                    merged = true;
                    None
                } else {
                    Some(mk)
                }
            }
            _ => None,
        };
        let id = self.alloc_id();
        let machine = if request.method == Method::Invite {
            Machine::ServerInvite(ServerInvite::new(self.timers, reliable))
        } else {
            Machine::ServerNonInvite(ServerNonInvite::new(self.timers, reliable))
        };
        if let Some(mk) = &merge_key {
            self.merged.insert(mk.clone(), id);
        }
        self.by_key.insert(key.clone(), id);
        self.entries.insert(
            id,
            Box::new(Entry {
                key,
                peer,
                machine,
                scheduled: None,
                merge_key,
            }),
        );
        Ok(Some(TuRequest {
            id,
            request,
            cancels,
            merged,
        }))
    }

    /// Sends a response through a server transaction.
    pub fn respond(&mut self, now: Instant, id: TxId, response: Response) -> Result<()> {
        let e = self.entries.get_mut(&id).ok_or(Error::UnknownTransaction)?;
        let code = response.status.as_u16();
        let bytes = response.to_bytes();
        match &mut e.machine {
            Machine::ServerInvite(m) => {
                m.handle_input(now, server_invite::Input::Respond(code, bytes))
            }
            Machine::ServerNonInvite(m) => {
                m.handle_input(now, server_non_invite::Input::Respond(code, bytes))
            }
            _ => return Err(Error::UnknownTransaction),
        }
        self.after_input(id);
        Ok(())
    }

    /// The state of a server INVITE transaction, if it is one and alive.
    pub fn server_invite_state(&self, id: TxId) -> Option<super::state::ServerInvite> {
        match self.entries.get(&id).map(|e| &e.machine) {
            Some(Machine::ServerInvite(m)) => Some(m.state()),
            _ => None,
        }
    }

    /// Starts a client transaction for `request` (its top Via must carry a
    /// fresh branch).
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        peer: A,
        reliable: bool,
    ) -> Result<TxId> {
        let key = Key::for_client(&request)?;
        let id = self.alloc_id();
        let machine = if request.method == Method::Invite {
            Machine::ClientInvite(ClientInvite::new(now, self.timers, reliable, request))
        } else {
            Machine::ClientNonInvite(ClientNonInvite::new(
                now,
                self.timers,
                reliable,
                request.to_bytes(),
            ))
        };
        self.by_key.insert(key.clone(), id);
        self.entries.insert(
            id,
            Box::new(Entry {
                key,
                peer,
                machine,
                scheduled: None,
                merge_key: None,
            }),
        );
        self.after_input(id);
        Ok(id)
    }

    /// Takes a received response. Returns `false` for a stray response
    /// (no client transaction), which §17.1.3 says to drop.
    pub fn handle_response(&mut self, now: Instant, response: Response) -> bool {
        let Ok(key) = Key::for_response(&response) else {
            return false;
        };
        let Some(&id) = self.by_key.get(&key) else {
            return false;
        };
        match self.entries.get_mut(&id).map(|e| &mut e.machine) {
            Some(Machine::ClientInvite(m)) => m.handle_response(now, &response),
            Some(Machine::ClientNonInvite(m)) => m.handle_response(now, &response),
            _ => return false,
        }
        self.after_input(id);
        true
    }

    /// Fires every deadline that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.schedule.first() {
            if at > now {
                break;
            }
            self.schedule.remove(&(at, id));
            if let Some(e) = self.entries.get_mut(&id) {
                e.scheduled = None;
                match &mut e.machine {
                    Machine::ServerInvite(m) => m.handle_input(now, server_invite::Input::Timeout),
                    Machine::ServerNonInvite(m) => {
                        m.handle_input(now, server_non_invite::Input::Timeout)
                    }
                    Machine::ClientInvite(m) => m.handle_timeout(now),
                    Machine::ClientNonInvite(m) => m.handle_timeout(now),
                }
                self.after_input(id);
            }
        }
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<LayerOutput<A>> {
        self.out.pop_front()
    }

    /// The earliest deadline of any transaction.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.schedule.first().map(|(at, _)| *at)
    }

    fn alloc_id(&mut self) -> TxId {
        self.next_id += 1;
        TxId(self.next_id)
    }

    /// Moves a machine's outputs to the layer queue and reschedules it.
    fn after_input(&mut self, id: TxId) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let mut terminated = false;
        loop {
            let o = match &mut e.machine {
                Machine::ServerInvite(m) => m.poll_output(),
                Machine::ServerNonInvite(m) => m.poll_output(),
                Machine::ClientInvite(m) => m.poll_output(),
                Machine::ClientNonInvite(m) => m.poll_output(),
            };
            match o {
                None => break,
                Some(Output::Transmit(bytes)) => self.out.push_back(LayerOutput::Transmit {
                    peer: e.peer.clone(),
                    bytes,
                }),
                Some(Output::Event(event)) => {
                    terminated |= matches!(event, TxEvent::Terminated);
                    self.out.push_back(LayerOutput::Event { id, event });
                }
            }
        }
        let next = match &e.machine {
            Machine::ServerInvite(m) => m.poll_timeout(),
            Machine::ServerNonInvite(m) => m.poll_timeout(),
            Machine::ClientInvite(m) => m.poll_timeout(),
            Machine::ClientNonInvite(m) => m.poll_timeout(),
        };
        if let Some(old) = e.scheduled.take() {
            self.schedule.remove(&(old, id));
        }
        if terminated {
            if let Some(e) = self.entries.remove(&id) {
                self.by_key.remove(&e.key);
                if let Some(mk) = e.merge_key {
                    self.merged.remove(&mk);
                }
            }
            if self.entries.len() * 4 < self.entries.capacity() {
                crate::shrink::sparse(&mut self.entries);
                crate::shrink::sparse(&mut self.by_key);
                crate::shrink::sparse(&mut self.merged);
            }
            return;
        }
        if let Some(at) = next {
            e.scheduled = Some(at);
            self.schedule.insert((at, id));
        }
    }
}
