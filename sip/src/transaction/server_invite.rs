//! INVITE server transaction (RFC 3261 §17.2.1, with the Accepted state of
//! RFC 6026 §7.1).
//!
//! ```text
//!                |INVITE  (TU is told; 100 Trying sent by the TU)
//!                V
//!   +--------- Proceeding <---- INVITE / resend last provisional
//!   |  1xx from TU: send        |
//!   |  2xx from TU: send        | 300-699 from TU: send, arm G (unreliable), H
//!   V                           V
//! Accepted  (Timer L)        Completed <--- INVITE / resend final
//!   | 2xx from TU: send         |  G fires: resend, G=min(2G,T2)
//!   | INVITE: absorbed          |  H fires: tell TU "no ACK", Terminated
//!   V L fires                   | ACK: arm I (T4; 0 on reliable)
//! Terminated                Confirmed --(I fires)--> Terminated
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::timer::{TimerName, TimerTable, Timers};
use super::{Output, TxEvent};

/// States of §17.2.1 and RFC 6026.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for the TU's final answer.
    Proceeding,
    /// A 2xx was sent; the dialog layer retransmits it (RFC 6026).
    Accepted,
    /// A failure was sent; waiting for the ACK.
    Completed,
    /// The ACK came; absorbing its retransmissions.
    Confirmed,
    /// Done.
    Terminated,
}

/// Inputs of the machine.
#[derive(Debug, Clone)]
pub enum Input {
    /// The INVITE was received again.
    Retransmission,
    /// An ACK matched this transaction (non-2xx ACK).
    Ack,
    /// The TU sends a response (`status`, wire bytes).
    Respond(u16, Bytes),
    /// A deadline passed.
    Timeout,
}

/// The machine.
#[derive(Debug)]
pub struct ServerInvite {
    state: State,
    timers: Timers,
    reliable: bool,
    table: TimerTable,
    last_response: Option<Bytes>,
    g_interval: Duration,
    out: VecDeque<Output>,
}

impl ServerInvite {
    /// A new transaction for a received INVITE.
    pub fn new(timers: Timers, reliable: bool) -> ServerInvite {
        ServerInvite {
            state: State::Proceeding,
            timers,
            reliable,
            table: TimerTable::default(),
            last_response: None,
            g_interval: timers.t1,
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
            (State::Proceeding, Input::Respond(code, bytes)) => {
                self.out.push_back(Output::Transmit(bytes.clone()));
                self.last_response = Some(bytes);
                if (200..300).contains(&code) {
                    self.state = State::Accepted;
                    self.table.set(TimerName::L, now + self.timers.t1x64());
                } else if code >= 300 {
                    self.state = State::Completed;
                    if !self.reliable {
                        self.table.set(TimerName::G, now + self.g_interval);
                    }
                    self.table.set(TimerName::H, now + self.timers.t1x64());
                }
            }
            (State::Accepted, Input::Respond(code, bytes)) if (200..300).contains(&code) => {
                self.out.push_back(Output::Transmit(bytes));
            }
            (State::Completed, Input::Ack) => {
                self.state = State::Confirmed;
                self.table.clear(TimerName::G);
                self.table.clear(TimerName::H);
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    self.timers.t4
                };
                self.table.set(TimerName::I, now + wait);
            }
            (_, Input::Timeout) => self.on_timeout(now),
            // Everything else is absorbed: ACKs in Confirmed, INVITEs in
            // Accepted (RFC 6026 §8.7), late responses from the TU.
            _ => {}
        }
        if self.state == State::Confirmed || self.state == State::Accepted {
            // nothing further to resend
        }
    }

    fn on_timeout(&mut self, now: Instant) {
        if self.table.take_due(TimerName::G, now) && self.state == State::Completed {
            if let Some(r) = &self.last_response {
                self.out.push_back(Output::Transmit(r.clone()));
            }
            self.g_interval = (self.g_interval * 2).min(self.timers.t2);
            self.table.set(TimerName::G, now + self.g_interval);
        }
        if self.table.take_due(TimerName::H, now) {
            self.terminate(Some(TxEvent::Timeout));
        }
        if self.table.take_due(TimerName::I, now) || self.table.take_due(TimerName::L, now) {
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

    /// When to call `handle_input(now, Input::Timeout)`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.table.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(tx: &mut ServerInvite) -> Vec<Output> {
        std::iter::from_fn(|| tx.poll_output()).collect()
    }

    #[test]
    fn a_failure_is_retransmitted_at_t1_doubling_to_t2_until_timer_h_without_ack() {
        let t0 = Instant::now();
        let timers = Timers::default();
        let mut tx = ServerInvite::new(timers, false);
        tx.handle_input(t0, Input::Respond(486, Bytes::from_static(b"486")));
        assert_eq!(drain(&mut tx).len(), 1);
        let mut now = t0;
        let mut intervals = vec![];
        while tx.state() == State::Completed {
            let next = tx.poll_timeout().unwrap();
            intervals.push(next - now);
            now = next;
            tx.handle_input(now, Input::Timeout);
            drain(&mut tx);
        }
        let ms: Vec<u128> = intervals.iter().map(|d| d.as_millis()).collect();
        // G: 500, 1000, 2000, 4000, 4000, ... and H at 32 s ends it.
        assert_eq!(&ms[..5], &[500, 1000, 2000, 4000, 4000]);
        assert_eq!(now - t0, Duration::from_secs(32));
        assert_eq!(tx.state(), State::Terminated);
    }

    #[test]
    fn timer_h_reports_a_lost_ack() {
        let t0 = Instant::now();
        let mut tx = ServerInvite::new(Timers::default(), true);
        tx.handle_input(t0, Input::Respond(487, Bytes::from_static(b"487")));
        drain(&mut tx);
        assert_eq!(
            tx.poll_timeout(),
            Some(t0 + Duration::from_secs(32)),
            "no G on reliable transports"
        );
        tx.handle_input(t0 + Duration::from_secs(32), Input::Timeout);
        let out = drain(&mut tx);
        assert!(matches!(out[0], Output::Event(TxEvent::Timeout)));
        assert!(matches!(out[1], Output::Event(TxEvent::Terminated)));
    }

    #[test]
    fn the_ack_stops_retransmission_and_timer_i_absorbs_its_copies() {
        let t0 = Instant::now();
        let mut tx = ServerInvite::new(Timers::default(), false);
        tx.handle_input(t0, Input::Respond(404, Bytes::from_static(b"404")));
        drain(&mut tx);
        tx.handle_input(t0 + Duration::from_millis(100), Input::Ack);
        assert_eq!(tx.state(), State::Confirmed);
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_millis(5100)));
        tx.handle_input(t0 + Duration::from_millis(200), Input::Ack);
        assert!(drain(&mut tx).is_empty());
        tx.handle_input(t0 + Duration::from_millis(5100), Input::Timeout);
        assert_eq!(tx.state(), State::Terminated);
    }

    #[test]
    fn an_invite_retransmission_gets_the_last_response_again() {
        let t0 = Instant::now();
        let mut tx = ServerInvite::new(Timers::default(), false);
        tx.handle_input(t0, Input::Respond(100, Bytes::from_static(b"100")));
        drain(&mut tx);
        tx.handle_input(t0, Input::Retransmission);
        match drain(&mut tx).as_slice() {
            [Output::Transmit(b)] => assert_eq!(&b[..], b"100"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_2xx_moves_to_accepted_and_timer_l_ends_it() {
        let t0 = Instant::now();
        let mut tx = ServerInvite::new(Timers::default(), false);
        tx.handle_input(t0, Input::Respond(200, Bytes::from_static(b"200")));
        assert_eq!(tx.state(), State::Accepted);
        drain(&mut tx);
        tx.handle_input(t0, Input::Retransmission);
        assert!(
            drain(&mut tx).is_empty(),
            "INVITE retransmissions are absorbed in Accepted"
        );
        tx.handle_input(t0 + Duration::from_secs(32), Input::Timeout);
        assert_eq!(tx.state(), State::Terminated);
    }
}
