//! The INVITE server transaction (RFC 3261 §17.2.1 as updated by RFC 6026):
//! Proceeding → Completed (non-2xx) → Confirmed (ACK) → Terminated, or
//! Proceeding → Accepted (2xx) → Terminated.
//!
//! Timers: the 100 Trying delay, G (non-2xx retransmit, unreliable only,
//! doubling up to T2), H (64*T1 wait for ACK), I (T4 after the ACK; zero on
//! reliable transports), L (64*T1 in Accepted). In Accepted the INVITE
//! retransmissions are absorbed and 2xx retransmissions are the TU's job.

use crate::build::{trying, trying_headers};
use crate::ctx::{Ctx, Fired};
use crate::event::{TxnError, TxnState};
use crate::timers::TimerKind;
use bytes::Bytes;
use sip_msg::{Headers, Message};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

#[derive(Debug)]
pub(crate) struct ServerInvite {
    state: State,
    /// The most recent provisional (Proceeding) or the final (Completed).
    last: Option<Bytes>,
    /// Headers for the automatic 100, until any provisional is sent.
    trying: Option<Headers>,
    interval_g: Duration,
    /// RFC 2543 matching: the To tag of the final response, which the ACK carries.
    final_to_tag: Option<Bytes>,
    rfc2543: bool,
}

/// What an ACK did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AckStep {
    /// Absorbed; `done` when the transaction terminated (Timer I of zero).
    Absorbed { done: bool },
    /// Accepted state: the ACK belongs to the TU.
    ToTu,
}

impl ServerInvite {
    /// Sends 100 Trying now if the delay is zero, else arms the delay.
    pub fn start(cx: &mut Ctx, req: &Message, rfc2543: bool) -> ServerInvite {
        let mut t = ServerInvite {
            state: State::Proceeding,
            last: None,
            trying: None,
            interval_g: cx.cfg.t1,
            final_to_tag: None,
            rfc2543,
        };
        let headers = trying_headers(req);
        if cx.cfg.trying_delay.is_zero() {
            let r = trying(&headers);
            cx.send(r.clone());
            t.last = Some(r);
        } else {
            t.trying = Some(headers);
            cx.arm(TimerKind::Trying, cx.cfg.trying_delay);
        }
        t
    }

    pub fn state(&self) -> TxnState {
        match self.state {
            State::Proceeding => TxnState::Proceeding,
            State::Completed => TxnState::Completed,
            State::Confirmed => TxnState::Confirmed,
            State::Accepted => TxnState::Accepted,
        }
    }

    pub fn final_to_tag(&self) -> Option<&Bytes> {
        self.final_to_tag.as_ref()
    }

    /// A retransmitted INVITE: re-send the last provisional (Proceeding) or
    /// the final response (Completed); absorb it otherwise.
    pub fn on_retransmit(&mut self, cx: &mut Ctx) {
        if matches!(self.state, State::Proceeding | State::Completed)
            && let Some(last) = &self.last
        {
            cx.send(last.clone());
        }
    }

    /// The TU sends a response. Returns whether the transaction terminated.
    pub fn respond(&mut self, cx: &mut Ctx, msg: &Message, code: u16) -> Result<bool, TxnError> {
        match (self.state, code) {
            (State::Proceeding, 100..=199) => {
                self.trying = None;
                cx.disarm(TimerKind::Trying);
                let data = msg.to_bytes();
                cx.send(data.clone());
                self.last = Some(data);
            }
            (State::Proceeding, 200..=299) => {
                self.trying = None;
                cx.disarm_all();
                cx.send(msg.to_bytes());
                self.last = None;
                self.state = State::Accepted;
                cx.arm(TimerKind::L, cx.cfg.t1x64());
            }
            (State::Proceeding, _) => {
                self.trying = None;
                cx.disarm_all();
                let data = msg.to_bytes();
                cx.send(data.clone());
                self.last = Some(data);
                if self.rfc2543 {
                    self.final_to_tag = msg.to().ok().and_then(|t| t.tag().cloned());
                }
                self.state = State::Completed;
                if !cx.reliable() {
                    cx.arm(TimerKind::G, self.interval_g);
                }
                cx.arm(TimerKind::H, cx.cfg.t1x64());
            }
            // RFC 6026 §8.5: 2xx retransmissions (and other forks' 2xx)
            // from the TU go out unchanged.
            (State::Accepted, 200..=299) => cx.send(msg.to_bytes()),
            (State::Accepted, _) => {
                return Err(TxnError::InvalidState("only 2xx may follow a 2xx"));
            }
            (State::Completed | State::Confirmed, _) => {
                return Err(TxnError::InvalidState("a final response was already sent"));
            }
        }
        Ok(false)
    }

    pub fn on_ack(&mut self, cx: &mut Ctx) -> AckStep {
        match self.state {
            State::Completed => {
                cx.disarm_all();
                self.state = State::Confirmed;
                let done = cx.reliable();
                if !done {
                    cx.arm(TimerKind::I, cx.cfg.t4);
                }
                AckStep::Absorbed { done }
            }
            State::Accepted => AckStep::ToTu,
            State::Proceeding | State::Confirmed => AckStep::Absorbed { done: false },
        }
    }

    pub fn on_timer(&mut self, cx: &mut Ctx, kind: TimerKind) -> Fired {
        match (kind, self.state) {
            (TimerKind::Trying, State::Proceeding) => {
                if let Some(h) = self.trying.take() {
                    let r = trying(&h);
                    cx.send(r.clone());
                    self.last = Some(r);
                }
                Fired::Continue
            }
            (TimerKind::G, State::Completed) => {
                if let Some(last) = &self.last {
                    cx.send(last.clone());
                }
                self.interval_g = (self.interval_g * 2).min(cx.cfg.t2);
                cx.arm(TimerKind::G, self.interval_g);
                Fired::Continue
            }
            (TimerKind::H, State::Completed) => Fired::AckTimeout,
            (TimerKind::I, State::Confirmed) | (TimerKind::L, State::Accepted) => Fired::Terminate,
            _ => Fired::Continue,
        }
    }
}
