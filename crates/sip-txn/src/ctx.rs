//! The context a state machine acts through: the current time, the
//! configuration, its own key, peer and timer slots, the timer queue and the
//! transmit queue.
//!
//! Owns the only ways a state machine has effects (send, arm, disarm), so
//! each machine stays a plain `match` on (state, input).

use crate::config::{Config, Peer};
use crate::event::Transmit;
use crate::key::TxnKey;
use crate::timers::{Armed, TimerKind, TimerQueue, TxnId};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub(crate) struct Ctx<'a> {
    pub cfg: &'a Config,
    pub now: Instant,
    pub id: TxnId,
    pub key: &'a TxnKey,
    pub peer: &'a Peer,
    pub armed: &'a mut Armed,
    pub timers: &'a mut TimerQueue,
    pub out: &'a mut VecDeque<Transmit>,
}

impl Ctx<'_> {
    pub fn reliable(&self) -> bool {
        self.peer.is_reliable()
    }
    /// Queues `data` for the transaction's peer.
    pub fn send(&mut self, data: Bytes) {
        self.out.push_back(Transmit { to: *self.peer, data, txn: Some(self.key.clone()) });
    }
    pub fn arm(&mut self, kind: TimerKind, after: Duration) {
        self.timers.arm(self.armed, self.id, kind, self.now + after);
    }
    pub fn disarm(&mut self, kind: TimerKind) {
        self.timers.disarm(self.armed, kind);
    }
    pub fn disarm_all(&mut self) {
        self.timers.disarm_all(self.armed);
    }
}

/// What a timer firing did to a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fired {
    /// The transaction lives on.
    Continue,
    /// Normal end (D, I, J, K, L, M).
    Terminate,
    /// Timer B or F: tell the TU, then terminate.
    Timeout,
    /// Timer H: tell the TU, then terminate.
    AckTimeout,
}
