//! The Bucket (RFC 8599 §5.6.2): the state of parked requests (one
//! deadline per branch, from its provider's hold) and of the pushes
//! awaiting a result. Data only; the rules live in `park.rs`.

use crate::types::{BindingKey, ParkKind, RequestId};
use std::time::Instant;

/// One parked request.
pub(crate) struct Parked {
    pub method: String,
    pub call_id: String,
    pub kind: ParkKind,
    /// When it was parked.
    pub parked_at: Instant,
    /// When its hold timer (Bucket Timer) fires: the earliest deadline of
    /// its waiting branches when it was armed (that branch may have ended
    /// since: the timer then only re-arms).
    pub timer_at: Instant,
    /// Generation of its hold timer.
    pub generation: u64,
    /// One per distinct target, in the order given.
    pub branches: Vec<Branch>,
    pub woken: u32,
}

pub(crate) struct Branch {
    pub binding: BindingKey,
    /// Park time + the hold of its binding's provider for the method.
    pub deadline: Instant,
    /// `Some`: still waiting; the time its push went out (if one did).
    pub waiting: Option<Option<Instant>>,
}

impl Parked {
    pub fn branch(&self, binding: &BindingKey) -> Option<&Branch> {
        self.branches.iter().find(|b| &b.binding == binding)
    }
    pub fn branch_mut(&mut self, binding: &BindingKey) -> Option<&mut Branch> {
        self.branches.iter_mut().find(|b| &b.binding == binding)
    }
    /// The earliest deadline of a waiting branch.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.branches.iter().filter(|b| b.waiting.is_some()).map(|b| b.deadline).min()
    }
    pub fn all_done(&self) -> bool {
        self.branches.iter().all(|b| b.waiting.is_none())
    }
}

/// What a push is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PushKind {
    Refresh,
    Initial,
    MidDialog,
}

impl From<ParkKind> for PushKind {
    fn from(k: ParkKind) -> PushKind {
        match k {
            ParkKind::Initial => PushKind::Initial,
            ParkKind::MidDialog => PushKind::MidDialog,
        }
    }
}

/// A push whose result is awaited.
pub(crate) struct PendingPush {
    pub binding: BindingKey,
    /// The PRID it went to: a rejection of an old token does not
    /// invalidate a binding that re-registered with a new one.
    pub prid: String,
    pub request: Option<RequestId>,
    pub kind: PushKind,
}
