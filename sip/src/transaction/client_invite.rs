//! INVITE client transaction (RFC 3261 §17.1.1, with RFC 6026's Accepted).
//!
//! ```text
//!  Calling --(A fires: resend, A=2A)--+   B fires: tell TU "timeout"
//!    | 1xx: to TU                      |
//!    V                                 |
//!  Proceeding <--- 1xx: to TU          |
//!    | 300-699: send ACK, to TU, arm D (32 s; 0 on reliable) -> Completed
//!    | 2xx: to TU, arm M (64*T1) -> Accepted (2xx copies go to the TU)
//!  Completed: final again -> resend ACK;  D fires -> Terminated
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::timer::{TimerName, TimerTable, Timers};
use super::{Output, TxEvent};
use crate::message::{HeaderName, Headers, Method, Request, Response};

/// States of §17.1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// INVITE sent, nothing heard.
    Calling,
    /// A provisional response arrived.
    Proceeding,
    /// A 2xx arrived (RFC 6026).
    Accepted,
    /// A failure arrived and was ACKed.
    Completed,
    /// Done.
    Terminated,
}

/// The machine.
#[derive(Debug)]
pub struct ClientInvite {
    state: State,
    timers: Timers,
    reliable: bool,
    table: TimerTable,
    request: Request,
    request_bytes: Bytes,
    a_interval: Duration,
    ack: Option<Bytes>,
    out: VecDeque<Output>,
}

impl ClientInvite {
    /// Starts the transaction: the INVITE is output at once.
    pub fn new(now: Instant, timers: Timers, reliable: bool, request: Request) -> ClientInvite {
        let request_bytes = request.to_bytes();
        let mut tx = ClientInvite {
            state: State::Calling,
            timers,
            reliable,
            table: TimerTable::default(),
            request,
            request_bytes: request_bytes.clone(),
            a_interval: timers.t1,
            ack: None,
            out: VecDeque::new(),
        };
        tx.out.push_back(Output::Transmit(request_bytes));
        if !reliable {
            tx.table.set(TimerName::A, now + timers.t1);
        }
        tx.table.set(TimerName::B, now + timers.t1x64());
        tx
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// A response matched this transaction.
    pub fn handle_response(&mut self, now: Instant, response: &Response) {
        let code = response.status.as_u16();
        match self.state {
            State::Calling | State::Proceeding => {
                self.table.clear(TimerName::A);
                if code < 200 {
                    self.state = State::Proceeding;
                    self.out
                        .push_back(Output::Event(TxEvent::Response(response.clone())));
                } else if code < 300 {
                    self.state = State::Accepted;
                    self.table.clear(TimerName::B);
                    self.table.set(TimerName::M, now + self.timers.t1x64());
                    self.out
                        .push_back(Output::Event(TxEvent::Response(response.clone())));
                } else {
                    self.state = State::Completed;
                    self.table.clear(TimerName::B);
                    let ack = ack_for_failure(&self.request, response).to_bytes();
                    self.out.push_back(Output::Transmit(ack.clone()));
                    self.ack = Some(ack);
                    let wait = if self.reliable {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(32)
                    };
                    self.table.set(TimerName::D, now + wait);
                    self.out
                        .push_back(Output::Event(TxEvent::Response(response.clone())));
                }
            }
            State::Accepted if (200..300).contains(&code) => {
                self.out
                    .push_back(Output::Event(TxEvent::Response(response.clone())));
            }
            State::Completed if code >= 300 => {
                if let Some(a) = &self.ack {
                    self.out.push_back(Output::Transmit(a.clone()));
                }
            }
            _ => {}
        }
    }

    /// A deadline passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.table.take_due(TimerName::A, now) && self.state == State::Calling {
            self.out
                .push_back(Output::Transmit(self.request_bytes.clone()));
            self.a_interval *= 2;
            self.table.set(TimerName::A, now + self.a_interval);
        }
        if self.table.take_due(TimerName::B, now) {
            self.terminate(Some(TxEvent::Timeout));
        }
        if self.table.take_due(TimerName::D, now) || self.table.take_due(TimerName::M, now) {
            self.terminate(None);
        }
    }

    fn terminate(&mut self, event: Option<TxEvent>) {
        if self.state == State::Terminated {
            return;
        }
        self.state = State::Terminated;
        self.table.clear_all();
        if let Some(e) = event {
            self.out.push_back(Output::Event(e));
        }
        self.out.push_back(Output::Event(TxEvent::Terminated));
    }

    /// Takes the next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to call [`ClientInvite::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.table.next()
    }
}

/// The ACK for a non-2xx final response (§17.1.1.3): Request-URI, Call-ID,
/// From, CSeq number and the top Via of the INVITE, To of the response,
/// Route of the INVITE.
pub fn ack_for_failure(invite: &Request, response: &Response) -> Request {
    let mut headers = Headers::with_capacity(8);
    if let Some(v) = invite.headers.get(&HeaderName::Via) {
        let top = crate::header::split_commas(v).next().unwrap_or_default();
        headers.push(HeaderName::Via, top);
    }
    for name in [HeaderName::From, HeaderName::CallId] {
        if let Some(v) = invite.headers.get(&name) {
            headers.push(name.clone(), v.clone());
        }
    }
    if let Some(v) = response.headers.get(&HeaderName::To) {
        headers.push(HeaderName::To, v.clone());
    }
    let seq = invite.cseq().map(|c| c.seq).unwrap_or(1);
    headers.push(HeaderName::CSeq, format!("{seq} ACK"));
    for r in invite.headers.get_all(&HeaderName::Route) {
        headers.push(HeaderName::Route, r.clone());
    }
    headers.push(HeaderName::MaxForwards, Bytes::from_static(b"70"));
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        headers,
        body: Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Limits, Message, parse_message};

    fn invite() -> Request {
        let raw = b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKc1\r\nFrom: <sip:a@127.0.0.1>;tag=a\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: x\r\nCSeq: 7 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        match parse_message(Bytes::from_static(raw), &Limits::default()).unwrap() {
            Message::Request(r) => r,
            _ => unreachable!(),
        }
    }
    fn response(code: u16) -> Response {
        let raw = format!(
            "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKc1\r\nFrom: <sip:a@127.0.0.1>;tag=a\r\nTo: <sip:bob@127.0.0.1>;tag=b\r\nCall-ID: x\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        match parse_message(Bytes::from(raw), &Limits::default()).unwrap() {
            Message::Response(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn timer_a_doubles_without_cap_until_timer_b_times_out() {
        let t0 = Instant::now();
        let mut tx = ClientInvite::new(t0, Timers::default(), false, invite());
        let mut sends = vec![];
        let mut now = t0;
        loop {
            while let Some(o) = tx.poll_output() {
                match o {
                    Output::Transmit(_) => sends.push((now - t0).as_millis()),
                    Output::Event(TxEvent::Timeout) => {
                        assert_eq!(now - t0, Duration::from_secs(32));
                    }
                    Output::Event(_) => {}
                }
            }
            let Some(next) = tx.poll_timeout() else { break };
            now = next;
            tx.handle_timeout(now);
        }
        assert_eq!(sends, [0, 500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(tx.state(), State::Terminated);
    }

    #[test]
    fn a_failure_is_acked_and_its_retransmission_acked_again() {
        let t0 = Instant::now();
        let mut tx = ClientInvite::new(t0, Timers::default(), false, invite());
        tx.poll_output();
        tx.handle_response(t0, &response(486));
        let ack = match tx.poll_output() {
            Some(Output::Transmit(b)) => b,
            o => panic!("{o:?}"),
        };
        let text = String::from_utf8_lossy(&ack);
        assert!(text.starts_with("ACK sip:bob@127.0.0.1 SIP/2.0\r\n"));
        assert!(text.contains("CSeq: 7 ACK"));
        assert!(text.contains("tag=b"));
        assert!(matches!(
            tx.poll_output(),
            Some(Output::Event(TxEvent::Response(_)))
        ));
        tx.handle_response(t0, &response(486));
        assert!(matches!(tx.poll_output(), Some(Output::Transmit(_))));
        assert!(tx.poll_output().is_none(), "the TU hears a failure once");
        tx.handle_timeout(t0 + Duration::from_secs(32));
        assert_eq!(tx.state(), State::Terminated);
    }
}
