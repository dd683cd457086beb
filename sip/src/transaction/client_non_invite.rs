//! Non-INVITE client transaction (RFC 3261 §17.1.2).
//!
//! ```text
//!  Trying --(E fires: resend, E=min(2E,T2))--+     F fires: "timeout"
//!    | 1xx: to TU -> Proceeding (E fires: resend, E=T2)
//!    | final: to TU, arm K (T4; 0 on reliable) -> Completed --K--> Terminated
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::timer::{TimerName, TimerTable, Timers};
use super::{Output, TxEvent};
use crate::message::Response;

/// States of §17.1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Request sent, nothing heard.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// A final response arrived.
    Completed,
    /// Done.
    Terminated,
}

/// The machine.
#[derive(Debug)]
pub struct ClientNonInvite {
    state: State,
    timers: Timers,
    reliable: bool,
    table: TimerTable,
    request: Bytes,
    e_interval: Duration,
    out: VecDeque<Output>,
}

impl ClientNonInvite {
    /// Starts the transaction: the request is output at once.
    pub fn new(now: Instant, timers: Timers, reliable: bool, request: Bytes) -> ClientNonInvite {
        let mut tx = ClientNonInvite {
            state: State::Trying,
            timers,
            reliable,
            table: TimerTable::default(),
            request: request.clone(),
            e_interval: timers.t1,
            out: VecDeque::new(),
        };
        tx.out.push_back(Output::Transmit(request));
        if !reliable {
            tx.table.set(TimerName::E, now + timers.t1);
        }
        tx.table.set(TimerName::F, now + timers.t1x64());
        tx
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// A response matched this transaction.
    pub fn handle_response(&mut self, now: Instant, response: &Response) {
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return;
        }
        self.out
            .push_back(Output::Event(TxEvent::Response(response.clone())));
        if response.status.is_final() {
            self.state = State::Completed;
            self.table.clear(TimerName::E);
            self.table.clear(TimerName::F);
            let wait = if self.reliable {
                Duration::ZERO
            } else {
                self.timers.t4
            };
            self.table.set(TimerName::K, now + wait);
        } else {
            self.state = State::Proceeding;
        }
    }

    /// A deadline passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.table.take_due(TimerName::E, now) {
            self.out.push_back(Output::Transmit(self.request.clone()));
            self.e_interval = if self.state == State::Proceeding {
                self.timers.t2
            } else {
                (self.e_interval * 2).min(self.timers.t2)
            };
            self.table.set(TimerName::E, now + self.e_interval);
        }
        if self.table.take_due(TimerName::F, now) {
            self.finish(Some(TxEvent::Timeout));
        }
        if self.table.take_due(TimerName::K, now) {
            self.finish(None);
        }
    }

    fn finish(&mut self, event: Option<TxEvent>) {
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

    /// When to call [`ClientNonInvite::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.table.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmits_at_t1_doubling_capped_at_t2_and_times_out_with_timer_f() {
        let t0 = Instant::now();
        let mut tx = ClientNonInvite::new(t0, Timers::default(), false, Bytes::from_static(b"BYE"));
        let mut sends = vec![];
        let mut timed_out = false;
        let mut now = t0;
        loop {
            while let Some(o) = tx.poll_output() {
                match o {
                    Output::Transmit(_) => sends.push((now - t0).as_millis()),
                    Output::Event(TxEvent::Timeout) => timed_out = true,
                    Output::Event(_) => {}
                }
            }
            let Some(next) = tx.poll_timeout() else { break };
            now = next;
            tx.handle_timeout(now);
        }
        assert!(timed_out);
        assert_eq!(now - t0, Duration::from_secs(32));
        assert_eq!(&sends[..6], &[0, 500, 1500, 3500, 7500, 11500]);
        assert!(sends.windows(2).skip(4).all(|w| w[1] - w[0] == 4000));
    }

    #[test]
    fn no_retransmission_on_reliable_transports() {
        let t0 = Instant::now();
        let tx = ClientNonInvite::new(t0, Timers::default(), true, Bytes::from_static(b"BYE"));
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    }
}
