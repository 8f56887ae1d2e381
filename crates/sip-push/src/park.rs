//! Parking requests and waking them (RFC 8599 §5.6.2 and §6.2.3: R32–R45,
//! R54–R57, S2–S4).
//!
//! Every distinct target of a parked request ends exactly once, with an
//! [`Output::Fork`] (the device registered, or needs no push) or an
//! [`Output::BranchEnded`] (push failed, REGISTER failed, Bucket Timer,
//! binding gone), followed by one [`Output::RequestDone`] when no target is
//! left. A cancelled request ends silently. Waking is keyed by binding:
//! however many REGISTERs, challenges or 2xx arrive, a (request, binding)
//! pair forks at most once (the OpenSIPS duplicate-INVITE bugs #2858,
//! #3471 cannot happen).

use crate::bucket::{Branch, Parked};
use crate::engine::PushEngine;
use crate::output::{BranchEnd, Output, PushReason};
use crate::timers::TimerKind;
use crate::types::{BindingKey, ParkKind, ParkTarget, RequestId};
use sip_msg::Method;
use std::time::Instant;

/// A request to park until its devices wake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Park {
    pub request: RequestId,
    pub method: Method,
    /// Its Call-ID (the push reason carries it, e.g. for CallKit payloads).
    pub call_id: String,
    pub kind: ParkKind,
    /// The push bindings to wake (duplicates are merged; `awake` wins).
    pub targets: Vec<ParkTarget>,
}

/// Why a request could not be parked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParkError {
    /// This request id is parked already.
    AlreadyParked,
    /// ACK and CANCEL are never parked (no response / hop-by-hop).
    NotParkable,
}

impl std::fmt::Display for ParkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ParkError::AlreadyParked => "request already parked",
            ParkError::NotParkable => "ACK and CANCEL cannot be parked",
        })
    }
}

impl std::error::Error for ParkError {}

impl PushEngine {
    /// Parks a request on its push targets and starts its Bucket Timer
    /// (R41/R42): each branch ends with `Timeout` at park time + the hold
    /// of its binding's provider (`invite_hold` for an INVITE, else
    /// `non_invite_hold`, per provider or global), independently of the
    /// others; its wake-up push carries that deadline. For each target, in
    /// order: awake (the core says so) or registered within its provider's
    /// `skip_interval` → [`Output::Fork`] at once, no push (R44); unknown →
    /// `BranchEnded(UnknownBinding)`; token rejected → `BranchEnded
    /// (PushRejected)`; else one [`Output::Push`] (R32). Returns the number
    /// of distinct targets = the hold slots the proxy context needs; each
    /// gets exactly one Fork or BranchEnded. No targets: `RequestDone` at
    /// once.
    pub fn handle_park(&mut self, park: Park, now: Instant) -> Result<usize, ParkError> {
        if self.requests.contains_key(&park.request) {
            return Err(ParkError::AlreadyParked);
        }
        if matches!(park.method, Method::Ack | Method::Cancel) {
            return Err(ParkError::NotParkable);
        }
        let r = park.request;
        let mut targets: Vec<ParkTarget> = Vec::with_capacity(park.targets.len());
        for t in park.targets {
            match targets.iter_mut().find(|x| x.binding == t.binding) {
                Some(x) => x.awake |= t.awake,
                None => targets.push(t),
            }
        }
        self.stats.parked += 1;
        if targets.is_empty() {
            self.stats.requests_done += 1;
            self.stats.requests_unreached += 1;
            self.out.push_back(Output::RequestDone { request: r, woken: 0 });
            return Ok(0);
        }
        let invite = park.method == Method::Invite;
        let branches = targets
            .iter()
            .map(|t| {
                let hold = match self.bindings.get(&t.binding) {
                    Some(b) => self.cfg.branch_hold_for(b.provider(), invite),
                    None => self.cfg.hold_for(invite),
                };
                Branch { binding: t.binding.clone(), deadline: now + hold, waiting: Some(None) }
            })
            .collect();
        let method = park.method.to_string();
        // Armed below, once the branches that end at once have ended.
        let parked = Parked {
            method,
            call_id: park.call_id,
            kind: park.kind,
            parked_at: now,
            timer_at: now,
            generation: 0,
            branches,
            woken: 0,
        };
        self.requests.insert(r, parked);
        let n = targets.len();
        for t in targets {
            self.park_one(r, t, now);
        }
        self.arm_hold(r);
        Ok(n)
    }

    /// Arms the hold timer of `r` at its earliest waiting branch deadline.
    fn arm_hold(&mut self, r: RequestId) {
        let Some(p) = self.requests.get_mut(&r) else { return };
        let Some(at) = p.next_deadline() else { return };
        p.generation = self.timers.arm(at, TimerKind::Hold(r));
        p.timer_at = at;
    }

    fn park_one(&mut self, r: RequestId, t: ParkTarget, now: Instant) {
        if t.awake {
            self.stats.skipped_awake += 1;
            return self.end_branch(r, &t.binding, Ok(()), now);
        }
        let Some(b) = self.bindings.get(&t.binding) else {
            return self.end_branch(r, &t.binding, Err(BranchEnd::UnknownBinding), now);
        };
        if b.invalid() {
            return self.end_branch(r, &t.binding, Err(BranchEnd::PushRejected), now);
        }
        let skip = self.cfg.skip_interval_for(b.provider());
        if !skip.is_zero() && b.registered_at().is_some_and(|at| now.saturating_duration_since(at) < skip) {
            self.stats.skipped_recent += 1;
            return self.end_branch(r, &t.binding, Ok(()), now);
        }
        let Some(p) = self.requests.get(&r) else { return };
        let Some(deadline) = p.branch(&t.binding).map(|br| br.deadline) else { return };
        let (method, call_id) = (p.method.clone(), p.call_id.clone());
        let reason = match p.kind {
            ParkKind::Initial => PushReason::Initial { method, call_id },
            ParkKind::MidDialog => PushReason::MidDialog { method, call_id },
        };
        self.send_push(&t.binding, reason, Some(r), 1, deadline, now);
        if let Some(br) = self.requests.get_mut(&r).and_then(|p| p.branch_mut(&t.binding)) {
            br.waiting = Some(Some(now));
        }
        if let Some(b) = self.bindings.get_mut(&t.binding) {
            b.active().parked.push(r);
        }
    }

    /// The upstream CANCEL came (S3) or the core gave up on the request:
    /// all its state is dropped and nothing about it is output any more
    /// (queued Fork/BranchEnded/RequestDone included; pushes already
    /// queued still go). Returns whether it was parked.
    pub fn handle_cancel(&mut self, request: RequestId) -> bool {
        let Some(p) = self.requests.remove(&request) else { return false };
        for br in p.branches.iter().filter(|b| b.waiting.is_some()) {
            if let Some(b) = self.bindings.get_mut(&br.binding) {
                b.unpark(request);
            }
        }
        self.stats.requests_cancelled += 1;
        self.out.retain(|o| match o {
            Output::Fork { request: x, .. }
            | Output::BranchEnded { request: x, .. }
            | Output::RequestDone { request: x, .. } => *x != request,
            _ => true,
        });
        true
    }

    /// Whether the request is parked (some target still waits).
    pub fn is_parked(&self, request: RequestId) -> bool {
        self.requests.contains_key(&request)
    }

    /// Forks every request parked on `binding` (it registered).
    pub(crate) fn wake(&mut self, binding: &BindingKey, now: Instant) {
        let Some(b) = self.bindings.get_mut(binding) else { return };
        for r in b.take_parked() {
            self.end_branch(r, binding, Ok(()), now);
        }
    }

    /// The Bucket Timer of `r` fired: every waiting branch whose deadline
    /// has come ends (R41); the timer is re-armed for the others.
    pub(crate) fn hold_expired(&mut self, r: RequestId, now: Instant) {
        let Some(p) = self.requests.get(&r) else { return };
        let due: Vec<BindingKey> =
            p.branches.iter().filter(|b| b.waiting.is_some() && b.deadline <= now).map(|b| b.binding.clone()).collect();
        for binding in due {
            self.end_branch(r, &binding, Err(BranchEnd::Timeout), now);
        }
        self.arm_hold(r);
    }

    /// Ends one (request, binding) branch, if it still waits: `Ok` forks
    /// it, `Err` reports why not. Then `RequestDone` if it was the last.
    pub(crate) fn end_branch(
        &mut self,
        r: RequestId,
        binding: &BindingKey,
        result: Result<(), BranchEnd>,
        now: Instant,
    ) {
        let Some(p) = self.requests.get_mut(&r) else { return };
        let Some(pushed) = p.branch_mut(binding).and_then(|b| b.waiting.take()) else { return };
        match result {
            Ok(()) => {
                p.woken += 1;
                if pushed.is_some() {
                    self.stats.woken += 1;
                }
                let wake_latency = pushed.map(|t| now.saturating_duration_since(t));
                self.out.push_back(Output::Fork { request: r, binding: binding.clone(), wake_latency });
            }
            Err(reason) => {
                let e = &mut self.stats.branches_ended;
                *match reason {
                    BranchEnd::PushFailed => &mut e.push_failed,
                    BranchEnd::PushRejected => &mut e.push_rejected,
                    BranchEnd::RegisterFailed(_) => &mut e.register_failed,
                    BranchEnd::Timeout => &mut e.timeout,
                    BranchEnd::BindingGone => &mut e.binding_gone,
                    BranchEnd::UnknownBinding => &mut e.unknown_binding,
                } += 1;
                self.out.push_back(Output::BranchEnded { request: r, binding: binding.clone(), reason });
            }
        }
        if let Some(b) = self.bindings.get_mut(binding) {
            b.unpark(r);
        }
        if self.requests[&r].all_done() {
            let p = self.requests.remove(&r).expect("present");
            self.stats.requests_done += 1;
            if p.woken == 0 {
                self.stats.requests_unreached += 1;
            }
            self.out.push_back(Output::RequestDone { request: r, woken: p.woken });
        }
    }
}
