//! The non-INVITE client transaction (RFC 3261 §17.1.2): Trying →
//! Proceeding → Completed → Terminated. Timers E (retransmit, unreliable
//! only: doubling up to T2, T2 once a provisional arrived), F (64*T1
//! timeout), K (T4 in Completed; zero on reliable transports).

use crate::ctx::{Ctx, Fired};
use crate::event::TxnState;
use crate::timers::TimerKind;
use bytes::Bytes;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Trying,
    Proceeding,
    Completed,
}

#[derive(Debug)]
pub(crate) struct ClientNonInvite {
    state: State,
    request: Bytes,
    interval_e: Duration,
}

/// What to do with a response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Step {
    pub to_tu: bool,
    pub done: bool,
}

impl ClientNonInvite {
    /// Sends the request and arms E (unreliable) and F.
    pub fn start(cx: &mut Ctx, request: Bytes) -> ClientNonInvite {
        cx.send(request.clone());
        if !cx.reliable() {
            cx.arm(TimerKind::E, cx.cfg.t1);
        }
        cx.arm(TimerKind::F, cx.cfg.t1x64());
        ClientNonInvite { state: State::Trying, request, interval_e: cx.cfg.t1 }
    }

    pub fn state(&self) -> TxnState {
        match self.state {
            State::Trying => TxnState::Trying,
            State::Proceeding => TxnState::Proceeding,
            State::Completed => TxnState::Completed,
        }
    }

    pub fn on_response(&mut self, cx: &mut Ctx, code: u16) -> Step {
        match (self.state, code) {
            (State::Trying | State::Proceeding, 100..=199) => {
                self.state = State::Proceeding;
                Step { to_tu: true, done: false }
            }
            (State::Trying | State::Proceeding, _) => {
                cx.disarm_all();
                self.state = State::Completed;
                let done = cx.reliable();
                if !done {
                    cx.arm(TimerKind::K, cx.cfg.t4);
                }
                Step { to_tu: true, done }
            }
            (State::Completed, _) => Step::default(),
        }
    }

    pub fn on_timer(&mut self, cx: &mut Ctx, kind: TimerKind) -> Fired {
        match (kind, self.state) {
            (TimerKind::E, State::Trying | State::Proceeding) => {
                cx.send(self.request.clone());
                self.interval_e =
                    if self.state == State::Proceeding { cx.cfg.t2 } else { (self.interval_e * 2).min(cx.cfg.t2) };
                cx.arm(TimerKind::E, self.interval_e);
                Fired::Continue
            }
            (TimerKind::F, State::Trying | State::Proceeding) => Fired::Timeout,
            (TimerKind::K, State::Completed) => Fired::Terminate,
            _ => Fired::Continue,
        }
    }
}
