//! The INVITE client transaction (RFC 3261 §17.1.1 as updated by RFC 6026):
//! Calling → Proceeding → Completed (non-2xx, ACK sent here) or Accepted
//! (2xx) → Terminated. Timers A (retransmit, unreliable only, doubling),
//! B (64*T1 timeout in Calling), D (Completed; zero on reliable transports),
//! M (64*T1 in Accepted).
//!
//! Also owns the CANCEL decision of §9.1: a CANCEL is only sent once a
//! provisional response has arrived.

use crate::build::RequestTemplate;
use crate::ctx::{Ctx, Fired};
use crate::event::{TxnError, TxnState};
use crate::timers::TimerKind;
use bytes::Bytes;
use sip_msg::Message;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Calling,
    Proceeding,
    Completed,
    Accepted,
}

#[derive(Debug)]
pub(crate) struct ClientInvite {
    state: State,
    request: Bytes,
    interval_a: Duration,
    template: Box<RequestTemplate>,
    /// The ACK for the non-2xx, re-sent on each retransmission of it.
    ack: Option<Bytes>,
    cancel_pending: bool,
}

/// What to do with a response after the machine saw it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Step {
    /// Pass it to the TU (else it was absorbed).
    pub to_tu: bool,
    /// The transaction has terminated.
    pub done: bool,
    /// A deferred CANCEL must be sent now.
    pub send_cancel: bool,
}

/// What `cancel` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CancelNow {
    /// A provisional was received: send the CANCEL now.
    Send,
    /// Still Calling: sent once a provisional arrives.
    Deferred,
}

impl ClientInvite {
    /// Sends the INVITE and arms A (unreliable) and B.
    pub fn start(cx: &mut Ctx, request: Bytes, template: RequestTemplate) -> ClientInvite {
        cx.send(request.clone());
        if !cx.reliable() {
            cx.arm(TimerKind::A, cx.cfg.t1);
        }
        cx.arm(TimerKind::B, cx.cfg.t1x64());
        ClientInvite {
            state: State::Calling,
            request,
            interval_a: cx.cfg.t1,
            template: Box::new(template),
            ack: None,
            cancel_pending: false,
        }
    }

    pub fn state(&self) -> TxnState {
        match self.state {
            State::Calling => TxnState::Calling,
            State::Proceeding => TxnState::Proceeding,
            State::Completed => TxnState::Completed,
            State::Accepted => TxnState::Accepted,
        }
    }

    pub fn template(&self) -> &RequestTemplate {
        &self.template
    }

    pub fn on_response(&mut self, cx: &mut Ctx, msg: &Message, code: u16) -> Step {
        let live = matches!(self.state, State::Calling | State::Proceeding);
        match code {
            100..=199 if live => {
                if self.state == State::Calling {
                    cx.disarm_all();
                    self.state = State::Proceeding;
                }
                let send_cancel = std::mem::take(&mut self.cancel_pending);
                Step { to_tu: true, done: false, send_cancel }
            }
            200..=299 if live => {
                cx.disarm_all();
                self.cancel_pending = false;
                self.state = State::Accepted;
                cx.arm(TimerKind::M, cx.cfg.t1x64());
                Step { to_tu: true, ..Step::default() }
            }
            300..=699 if live => {
                cx.disarm_all();
                self.cancel_pending = false;
                let ack = self.template.ack(msg).to_bytes();
                cx.send(ack.clone());
                self.ack = Some(ack);
                self.state = State::Completed;
                let done = cx.reliable();
                if !done {
                    cx.arm(TimerKind::D, cx.cfg.timer_d);
                }
                Step { to_tu: true, done, send_cancel: false }
            }
            300..=699 if self.state == State::Completed => {
                if let Some(ack) = &self.ack {
                    cx.send(ack.clone());
                }
                Step::default()
            }
            // RFC 6026 §8.4: every 2xx in Accepted goes to the TU.
            200..=299 if self.state == State::Accepted => Step { to_tu: true, ..Step::default() },
            _ => Step::default(),
        }
    }

    pub fn on_timer(&mut self, cx: &mut Ctx, kind: TimerKind) -> Fired {
        match (kind, self.state) {
            (TimerKind::A, State::Calling) => {
                cx.send(self.request.clone());
                self.interval_a *= 2;
                cx.arm(TimerKind::A, self.interval_a);
                Fired::Continue
            }
            (TimerKind::B, State::Calling) => Fired::Timeout,
            (TimerKind::D, State::Completed) | (TimerKind::M, State::Accepted) => Fired::Terminate,
            _ => Fired::Continue,
        }
    }

    pub fn cancel(&mut self) -> Result<CancelNow, TxnError> {
        match self.state {
            State::Calling => {
                self.cancel_pending = true;
                Ok(CancelNow::Deferred)
            }
            State::Proceeding => Ok(CancelNow::Send),
            State::Completed | State::Accepted => {
                Err(TxnError::InvalidState("the INVITE already has a final response"))
            }
        }
    }
}
