//! The non-INVITE server transaction (RFC 3261 §17.2.2): Trying →
//! Proceeding → Completed → Terminated. Request retransmissions re-send the
//! last response (nothing in Trying). Timer J: 64*T1 in Completed on
//! unreliable transports, zero on reliable ones.

use crate::ctx::{Ctx, Fired};
use crate::event::{TxnError, TxnState};
use crate::timers::TimerKind;
use bytes::Bytes;
use sip_msg::Message;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Trying,
    Proceeding,
    Completed,
}

#[derive(Debug)]
pub(crate) struct ServerNonInvite {
    state: State,
    last: Option<Bytes>,
}

impl ServerNonInvite {
    pub fn new() -> ServerNonInvite {
        ServerNonInvite { state: State::Trying, last: None }
    }

    pub fn state(&self) -> TxnState {
        match self.state {
            State::Trying => TxnState::Trying,
            State::Proceeding => TxnState::Proceeding,
            State::Completed => TxnState::Completed,
        }
    }

    pub fn on_retransmit(&mut self, cx: &mut Ctx) {
        if let Some(last) = &self.last {
            cx.send(last.clone());
        }
    }

    /// The TU sends a response. Returns whether the transaction terminated.
    pub fn respond(&mut self, cx: &mut Ctx, msg: &Message, code: u16) -> Result<bool, TxnError> {
        if self.state == State::Completed {
            return Err(TxnError::InvalidState("a final response was already sent"));
        }
        let data = msg.to_bytes();
        cx.send(data.clone());
        self.last = Some(data);
        if code < 200 {
            self.state = State::Proceeding;
            return Ok(false);
        }
        self.state = State::Completed;
        if cx.reliable() {
            return Ok(true);
        }
        cx.arm(TimerKind::J, cx.cfg.t1x64());
        Ok(false)
    }

    pub fn on_timer(&mut self, kind: TimerKind) -> Fired {
        match (kind, self.state) {
            (TimerKind::J, State::Completed) => Fired::Terminate,
            _ => Fired::Continue,
        }
    }
}
