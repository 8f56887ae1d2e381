//! One branch of a context: its target, whether it still waits for a final
//! response, whether it saw a provisional, and its two timers — Timer C
//! (§16.6 step 11, INVITE only) and the guard that bounds the wait for the
//! final response once the branch was cancelled (§9.1).

use crate::config::{ContextConfig, Target};
use std::time::Instant;

#[derive(Debug)]
pub(crate) struct Branch {
    pub target_id: String,
    /// The final status that ended the branch (received, or 408/503 as if
    /// received); `None` while pending.
    pub final_code: Option<u16>,
    /// A provisional (100 included) was received.
    pub provisional: bool,
    /// Timer C deadline (INVITE branches, until cancelled or ended).
    pub timer_c: Option<Instant>,
    /// CancelBranch was emitted for this branch.
    pub cancelled: bool,
    /// When a cancelled branch stops waiting for its final response. Armed
    /// once the CANCEL can actually have gone out (a provisional was seen).
    pub cancel_deadline: Option<Instant>,
}

impl Branch {
    pub fn start(target: Target, invite: bool, cfg: &ContextConfig, now: Instant) -> Branch {
        Branch {
            target_id: target.id,
            final_code: None,
            provisional: false,
            timer_c: invite.then(|| now + cfg.timer_c),
            cancelled: false,
            cancel_deadline: None,
        }
    }

    pub fn is_pending(&self) -> bool {
        self.final_code.is_none()
    }

    /// The earliest timer of a pending branch.
    pub fn deadline(&self) -> Option<Instant> {
        if !self.is_pending() {
            return None;
        }
        match (self.timer_c, self.cancel_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A provisional arrived: Timer C restarts on anything but 100 (§16.7
    /// step 2); a deferred CANCEL goes out now, so its guard starts.
    pub fn on_provisional(&mut self, code: u16, cfg: &ContextConfig, now: Instant) {
        self.provisional = true;
        if code > 100 && self.timer_c.is_some() {
            self.timer_c = Some(now + cfg.timer_c);
        }
        if self.cancelled && self.cancel_deadline.is_none() {
            self.cancel_deadline = Some(now + cfg.cancel_timeout);
        }
    }

    /// Marks the branch cancelled; `false` if it already was or has ended.
    pub fn cancel(&mut self, cfg: &ContextConfig, now: Instant) -> bool {
        if !self.is_pending() || self.cancelled {
            return false;
        }
        self.cancelled = true;
        self.timer_c = None;
        if self.provisional {
            self.cancel_deadline = Some(now + cfg.cancel_timeout);
        }
        true
    }

    pub fn finish(&mut self, code: u16) {
        self.final_code = Some(code);
        self.timer_c = None;
        self.cancel_deadline = None;
    }
}
