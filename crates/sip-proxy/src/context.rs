//! [`ProxyContext`]: the response context of one proxied request (RFC 3261
//! §16.5–§16.10). It starts branches group by group (q-values), forwards
//! provisionals and 2xx, cancels what must be cancelled, and concludes with
//! the best final response once every branch is done.
//!
//! Life of a context:
//!
//! * *searching*: branches run; when every branch of the current q group
//!   has ended without a 2xx or 6xx, the next group starts. Hold slots
//!   ([`ProxyContext::hold`]) count as pending branches of the current group:
//!   neither the next group starts nor the context concludes while any is
//!   held.
//! * *stopped*: a 2xx was forwarded, a 6xx was received, or the upstream
//!   CANCEL came. No branch starts any more (queued targets are dropped,
//!   [`ProxyContext::add_targets`] is refused, hold slots no longer count).
//! * *done* ([`ProxyContext::is_done`]): no branch is pending and the final
//!   answer went upstream (the first 2xx, or the chosen final), or, for a
//!   non-INVITE whose only outcomes were 408s, deliberately nothing (RFC
//!   4320 §4.2). A done context still accepts responses: an INVITE 2xx that
//!   arrives late (RFC 6026) is forwarded. Once it is dropped, a response
//!   matching no context is the core's to forward statelessly (§16.7).

use crate::action::Action;
use crate::branch::Branch;
use crate::config::{ContextConfig, Target};
use crate::queue::TargetQueue;
use crate::select::{Final, conclude};
use sip_msg::{Message, Method};
use std::time::Instant;

/// A branch of a context: its index in the order branches were started.
pub type BranchId = u32;

/// The response context of one proxied request. See the module docs.
#[derive(Debug)]
pub struct ProxyContext {
    invite: bool,
    cfg: ContextConfig,
    branches: Vec<Branch>,
    queue: TargetQueue,
    /// The q of the group started last.
    current_q: Option<u16>,
    held: usize,
    /// Hold slots were used at some point: a synthetic 480 joins the
    /// candidates (what a device that never came gets).
    was_held: bool,
    cancelled: bool,
    got_6xx: bool,
    /// The final status sent upstream (first 2xx, or the chosen final).
    upstream: Option<u16>,
    /// No branch pending and the final decision taken.
    concluded: bool,
    /// Final non-2xx outcomes of branches, in the order they ended.
    finals: Vec<Final>,
}

impl ProxyContext {
    /// A context for a request of `method` (never ACK or CANCEL) with
    /// `targets`; starts the first q group. With no targets it answers 480
    /// at once and is done.
    pub fn new(method: Method, targets: Vec<Target>, cfg: ContextConfig, now: Instant) -> (ProxyContext, Vec<Action>) {
        Self::new_held(method, targets, 0, cfg, now)
    }

    /// Like [`ProxyContext::new`] with `held` hold slots from the start
    /// (branches that do not exist yet, e.g. devices being woken by a push
    /// notification). `targets` may then be empty.
    pub fn new_held(
        method: Method,
        targets: Vec<Target>,
        held: usize,
        cfg: ContextConfig,
        now: Instant,
    ) -> (ProxyContext, Vec<Action>) {
        let mut cx = ProxyContext {
            invite: method == Method::Invite,
            cfg,
            branches: Vec::with_capacity(targets.len()),
            queue: TargetQueue::new(targets, cfg.parallel),
            current_q: None,
            held,
            was_held: held > 0,
            cancelled: false,
            got_6xx: false,
            upstream: None,
            concluded: false,
            finals: Vec::new(),
        };
        let mut out = Vec::new();
        if !cx.start_next_group(now, &mut out) && held == 0 {
            cx.upstream = Some(480);
            cx.concluded = true;
            out.push(Action::Respond { code: 480, reason: None });
        }
        (cx, out)
    }

    /// A response on `branch`, with the proxy's own Via already removed:
    /// what goes upstream as is.
    pub fn on_response(&mut self, branch: BranchId, resp: Message, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(code) = resp.status().filter(|c| (100..=699).contains(c)) else {
            return out;
        };
        let Some(b) = self.branches.get_mut(branch as usize) else {
            return out;
        };
        if !b.is_pending() {
            // After the branch's final: only an INVITE 2xx matters (RFC 6026).
            if self.invite && code / 100 == 2 {
                self.on_invite_2xx(resp, now, &mut out);
                self.advance(now, &mut out);
            }
            return out;
        }
        match code {
            100..=199 => {
                b.on_provisional(code, &self.cfg, now);
                // RFC 4320 §4.1: no provisional but 100 for a non-INVITE.
                if self.invite && code > 100 && self.upstream.is_none() {
                    out.push(Action::Forward { response: Box::new(resp) });
                }
                return out;
            }
            200..=299 => {
                b.finish(code);
                if self.invite {
                    self.on_invite_2xx(resp, now, &mut out);
                } else if self.upstream.is_none() {
                    self.upstream = Some(code);
                    self.queue.clear();
                    out.push(Action::Forward { response: Box::new(resp) });
                }
            }
            _ => {
                b.finish(code);
                if code >= 600 && !self.got_6xx {
                    self.got_6xx = true;
                    self.queue.clear();
                    self.cancel_pending(now, &mut out);
                }
                self.finals.push(Final::received(code, resp));
            }
        }
        self.advance(now, &mut out);
        out
    }

    /// The branch's client transaction timed out (Timer B/F): as if it
    /// received a 408 (§16.7 step 1 / §16.8).
    pub fn on_branch_timeout(&mut self, branch: BranchId, now: Instant) -> Vec<Action> {
        self.fail(branch, 408, now)
    }

    /// The transport failed for the branch: as if it received a 503 (§16.9).
    pub fn on_branch_error(&mut self, branch: BranchId, now: Instant) -> Vec<Action> {
        self.fail(branch, 503, now)
    }

    /// The upstream CANCEL (the core has answered it 200 already): every
    /// pending branch is cancelled, no branch starts any more, and unless a
    /// branch still answers 2xx or 6xx, 487 (or the best answer received)
    /// goes upstream once all branches are done. Nothing happens for a
    /// non-INVITE (§9.2) or once a final response went upstream.
    pub fn on_cancel(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.invite || self.cancelled || self.upstream.is_some() || self.concluded {
            return out;
        }
        self.cancelled = true;
        self.queue.clear();
        self.cancel_pending(now, &mut out);
        self.advance(now, &mut out);
        out
    }

    /// Late forking: new targets for a live context (e.g. a device woken by
    /// a push notification has registered). In parallel mode a target whose
    /// q is at least that of the running group starts now; any other target
    /// joins the queue at its q. Refused (no actions, nothing stored) once
    /// the context is stopped; see [`ProxyContext::accepts_targets`]. Call
    /// it *before* [`ProxyContext::release`] for the slot it fills.
    pub fn add_targets(&mut self, mut targets: Vec<Target>, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.accepts_targets() {
            return out;
        }
        targets.sort_by_key(|t| std::cmp::Reverse(t.q));
        for t in targets {
            let joins = self.current_q.is_none_or(|q| t.q >= q) && (self.cfg.parallel || !self.any_pending());
            if joins {
                self.current_q.get_or_insert(t.q);
                self.start_branch(t, now, &mut out);
            } else {
                self.queue.insert(t);
            }
        }
        self.advance(now, &mut out);
        out
    }

    /// Whether [`ProxyContext::add_targets`] would accept targets: no final
    /// response went upstream, no 6xx arrived, no CANCEL came.
    pub fn accepts_targets(&self) -> bool {
        !self.stopped()
    }

    /// Adds `n` hold slots: branches that do not exist yet. While any is
    /// held a searching context neither concludes nor starts its next q
    /// group. Ignored once the context is stopped.
    pub fn hold(&mut self, n: usize) {
        if n > 0 && !self.stopped() {
            self.held += n;
            self.was_held = true;
        }
    }

    /// Gives back `n` hold slots. If nothing else is pending the context
    /// moves on: the next q group, or the final answer (the best response
    /// received, else 480 Temporarily Unavailable).
    pub fn release(&mut self, n: usize, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.held = self.held.saturating_sub(n);
        self.advance(now, &mut out);
        out
    }

    /// When [`ProxyContext::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.branches.iter().filter_map(Branch::deadline).min()
    }

    /// Fires the timers due at `now`. Timer C (§16.8): a branch that has
    /// seen a provisional is cancelled; one that has not counts as a 408 at
    /// once (and is also cancelled, which the transaction layer carries out
    /// if a provisional ever comes). CANCEL guard: a cancelled branch still
    /// without a final response counts as a 408.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for (i, b) in self.branches.iter_mut().enumerate() {
            if !b.is_pending() {
                continue;
            }
            if b.timer_c.is_some_and(|t| t <= now) {
                b.timer_c = None;
                if b.cancel(&self.cfg, now) {
                    out.push(Action::CancelBranch { branch: i as BranchId });
                }
                if !b.provisional {
                    b.finish(408);
                    self.finals.push(Final::synthetic(408));
                }
            } else if b.cancel_deadline.is_some_and(|t| t <= now) {
                b.finish(408);
                self.finals.push(Final::synthetic(408));
            }
        }
        self.advance(now, &mut out);
        out
    }

    /// The final response went upstream (or, for a non-INVITE with only
    /// 408 outcomes, nothing will) and no branch is pending: the context
    /// can be dropped.
    pub fn is_done(&self) -> bool {
        self.concluded
    }

    /// The status sent upstream as the final answer: the first 2xx, or the
    /// chosen final (500 for a chosen 503).
    pub fn final_status(&self) -> Option<u16> {
        self.upstream
    }

    /// Whether the upstream CANCEL was processed.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }

    /// The target of a branch.
    pub fn target_id(&self, branch: BranchId) -> Option<&str> {
        self.branches.get(branch as usize).map(|b| b.target_id.as_str())
    }

    /// Whether `branch` exists and still waits for its final response.
    pub fn is_pending(&self, branch: BranchId) -> bool {
        self.branches.get(branch as usize).is_some_and(Branch::is_pending)
    }

    /// Branches started so far.
    pub fn branch_count(&self) -> usize {
        self.branches.len()
    }

    /// Hold slots currently held.
    pub fn held(&self) -> usize {
        self.held
    }

    fn stopped(&self) -> bool {
        self.cancelled || self.got_6xx || self.upstream.is_some() || self.concluded
    }

    fn any_pending(&self) -> bool {
        self.branches.iter().any(Branch::is_pending)
    }

    fn fail(&mut self, branch: BranchId, code: u16, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(b) = self.branches.get_mut(branch as usize).filter(|b| b.is_pending()) {
            b.finish(code);
            self.finals.push(Final::synthetic(code));
            self.advance(now, &mut out);
        }
        out
    }

    /// An INVITE 2xx: forwarded, always (§16.7 step 5). The first one is
    /// the final answer: everything else pending is cancelled (step 10).
    fn on_invite_2xx(&mut self, resp: Message, now: Instant, out: &mut Vec<Action>) {
        let first = self.upstream.is_none();
        if first {
            self.upstream = resp.status();
            self.queue.clear();
        }
        out.push(Action::Forward { response: Box::new(resp) });
        if first {
            self.cancel_pending(now, out);
        }
    }

    /// CancelBranch for every pending INVITE branch not cancelled yet.
    fn cancel_pending(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !self.invite {
            return;
        }
        for (i, b) in self.branches.iter_mut().enumerate() {
            if b.cancel(&self.cfg, now) {
                out.push(Action::CancelBranch { branch: i as BranchId });
            }
        }
    }

    fn start_branch(&mut self, t: Target, now: Instant, out: &mut Vec<Action>) {
        let branch = self.branches.len() as BranchId;
        out.push(Action::StartBranch { branch, target_id: t.id.clone() });
        self.branches.push(Branch::start(t, self.invite, &self.cfg, now));
    }

    fn start_next_group(&mut self, now: Instant, out: &mut Vec<Action>) -> bool {
        let group = self.queue.next_group();
        let Some(first) = group.first() else {
            return false;
        };
        self.current_q = Some(first.q);
        for t in group {
            self.start_branch(t, now, out);
        }
        true
    }

    /// Moves on when nothing is pending: the next group while searching,
    /// else the conclusion.
    fn advance(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.concluded || self.any_pending() {
            return;
        }
        if !self.stopped() && (self.held > 0 || self.start_next_group(now, out)) {
            return;
        }
        self.concluded = true;
        self.queue.clear();
        if self.upstream.is_some() {
            return; // a 2xx went upstream already
        }
        let mut finals = std::mem::take(&mut self.finals);
        if self.was_held {
            finals.push(Final::synthetic(480));
        }
        if self.cancelled {
            finals.push(Final::synthetic(487));
        }
        if let Some((code, action)) = conclude(finals, self.invite) {
            self.upstream = Some(code);
            out.push(action);
        }
    }
}
