//! Non-INVITE server transaction (RFC 3261 §17.2.2).
//!
//! ```text
//!   Trying --1xx from TU--> Proceeding --final from TU--> Completed --J--> Terminated
//!     |                        ^  request: resend 1xx        | request: resend final
//!     +------final from TU-----|---------------------------->+
//! ```
//! Timer J is 64*T1 on unreliable transports and zero on reliable ones.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::timer::{TimerName, TimerTable, Timers};
use super::{Output, TxEvent};

/// States of §17.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Request received, no response yet.
    Trying,
    /// A provisional response was sent.
    Proceeding,
    /// A final response was sent.
    Completed,
    /// Done.
    Terminated,
}

/// Inputs of the machine.
#[derive(Debug, Clone)]
pub enum Input {
    /// The request was received again.
    Retransmission,
    /// The TU sends a response.
    Respond(u16, Bytes),
    /// A deadline passed.
    Timeout,
}

/// The machine.
#[derive(Debug)]
pub struct ServerNonInvite {
    state: State,
    timers: Timers,
    reliable: bool,
    table: TimerTable,
    last_response: Option<Bytes>,
    out: VecDeque<Output>,
}

impl ServerNonInvite {
    /// A new transaction for a received request.
    pub fn new(timers: Timers, reliable: bool) -> ServerNonInvite {
        ServerNonInvite {
            state: State::Trying,
            timers,
            reliable,
            table: TimerTable::default(),
            last_response: None,
            out: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Feeds one input.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match (self.state, input) {
            (State::Proceeding | State::Completed, Input::Retransmission) => {
                if let Some(r) = &self.last_response {
                    self.out.push_back(Output::Transmit(r.clone()));
                }
            }
            (State::Trying | State::Proceeding, Input::Respond(code, bytes)) => {
                self.out.push_back(Output::Transmit(bytes.clone()));
                self.last_response = Some(bytes);
                if code >= 200 {
                    self.state = State::Completed;
                    let wait = if self.reliable {
                        Duration::ZERO
                    } else {
                        self.timers.t1x64()
                    };
                    self.table.set(TimerName::J, now + wait);
                } else {
                    self.state = State::Proceeding;
                }
            }
            (_, Input::Timeout) if self.table.take_due(TimerName::J, now) => {
                self.state = State::Terminated;
                self.table.clear_all();
                self.out.push_back(Output::Event(TxEvent::Terminated));
            }
            _ => {}
        }
    }

    /// Takes the next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to call `handle_input(now, Input::Timeout)`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.table.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmissions_get_the_final_response_until_timer_j() {
        let t0 = Instant::now();
        let mut tx = ServerNonInvite::new(Timers::default(), false);
        tx.handle_input(t0, Input::Retransmission);
        assert!(tx.poll_output().is_none(), "nothing to resend in Trying");
        tx.handle_input(t0, Input::Respond(200, Bytes::from_static(b"200")));
        assert!(matches!(tx.poll_output(), Some(Output::Transmit(_))));
        tx.handle_input(t0 + Duration::from_secs(1), Input::Retransmission);
        assert!(matches!(tx.poll_output(), Some(Output::Transmit(b)) if &b[..] == b"200"));
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        tx.handle_input(t0 + Duration::from_secs(32), Input::Timeout);
        assert_eq!(tx.state(), State::Terminated);
    }

    #[test]
    fn timer_j_is_zero_on_reliable_transports() {
        let t0 = Instant::now();
        let mut tx = ServerNonInvite::new(Timers::default(), true);
        tx.handle_input(t0, Input::Respond(180, Bytes::from_static(b"180")));
        assert_eq!(tx.state(), State::Proceeding);
        tx.handle_input(t0, Input::Respond(200, Bytes::from_static(b"200")));
        assert_eq!(tx.poll_timeout(), Some(t0));
    }
}
