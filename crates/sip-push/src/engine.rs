//! [`PushEngine`]: its state, the refresh schedule and timers, push
//! sending and push results, and the output queue. The same type is
//! extended in `register.rs` (REGISTER side, PURRs, restore), `park.rs`
//! (parking and wake-up) and `stats.rs` (observability).
//!
//! quinn-proto style: `handle_*(…, now)` methods change state and queue
//! [`Output`]s; the core drains [`PushEngine::poll_output`], sleeps until
//! [`PushEngine::poll_timeout`] and calls [`PushEngine::handle_timeout`].
//! No clock is read: every time comes in as `now`.

use crate::bucket::{Parked, PendingPush, PushKind};
use crate::config::{ConfigError, PushConfig};
use crate::output::{BranchEnd, Output, PushError, PushReason, PushRequest};
use crate::purr::{Map, PurrTable, RandomSource};
use crate::schedule::{MIN_GAP, RefreshPlan};
use crate::stats::{PushCounters, Stats};
use crate::timers::{Entry, TimerKind, Timers};
use crate::types::{BindingKey, PnInfo, PushId, RequestId};
use std::collections::VecDeque;
use std::time::Instant;

/// Pushes awaiting a result, per binding; older ones are given up
/// (counted as unanswered) when more are sent. Bounds memory without a
/// timer per push.
pub const MAX_PENDING_PER_BINDING: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    Refresh,
    Expire,
}

pub(crate) struct BindingState {
    pub info: PnInfo,
    pub pnsreg: bool,
    pub expires_at: Instant,
    pub registered_at: Option<Instant>,
    /// Refresh pushes in this expiry cycle.
    pub attempt: u32,
    pub last_push: Option<Instant>,
    pub consecutive_failures: u32,
    pub invalid: bool,
    pub timer: (Instant, u64, Due),
    /// Requests waiting for this binding, in parking order.
    pub parked: Vec<RequestId>,
    /// Its pushes awaiting a result, oldest first.
    pub pending: VecDeque<PushId>,
}

impl BindingState {
    /// A binding tracked from now on, with its first timer.
    pub(crate) fn new(
        info: PnInfo,
        pnsreg: bool,
        expires_at: Instant,
        registered_at: Option<Instant>,
        timer: (Instant, u64, Due),
    ) -> BindingState {
        BindingState {
            info,
            pnsreg,
            expires_at,
            registered_at,
            attempt: 0,
            last_push: None,
            consecutive_failures: 0,
            invalid: false,
            timer,
            parked: Vec::new(),
            pending: VecDeque::new(),
        }
    }
}

/// The sans-IO push-wake engine. See the crate docs.
pub struct PushEngine {
    pub(crate) cfg: PushConfig,
    pub(crate) plan: RefreshPlan,
    pub(crate) rng: Box<dyn RandomSource>,
    pub(crate) bindings: Map<BindingKey, BindingState>,
    pub(crate) requests: Map<RequestId, Parked>,
    pub(crate) pushes: Map<PushId, PendingPush>,
    pub(crate) purrs: PurrTable,
    pub(crate) timers: Timers,
    pub(crate) out: VecDeque<Output>,
    pub(crate) next_push: u64,
    pub(crate) stats: Stats,
}

impl PushEngine {
    /// Validates the configuration; `rng` is the only randomness used
    /// (PURRs, the hash seed).
    pub fn new(cfg: PushConfig, mut rng: impl RandomSource + 'static) -> Result<PushEngine, Vec<ConfigError>> {
        cfg.validate()?;
        let mut seed = [0u8; 8];
        rng.fill(&mut seed);
        let hasher = foldhash::fast::FixedState::with_seed(u64::from_le_bytes(seed));
        Ok(PushEngine {
            plan: RefreshPlan::new(&cfg),
            purrs: PurrTable::new(cfg.purr_key.clone(), hasher.clone()),
            cfg,
            rng: Box::new(rng),
            bindings: Map::with_hasher(hasher.clone()),
            requests: Map::with_hasher(hasher.clone()),
            pushes: Map::with_hasher(hasher),
            timers: Timers::default(),
            out: VecDeque::new(),
            next_push: 0,
            stats: Stats::default(),
        })
    }

    pub fn config(&self) -> &PushConfig {
        &self.cfg
    }

    // ---- push senders -----------------------------------------------------

    /// The sender's result for push `id`. A failure ends the branch of the
    /// request it was for at once (R39/R40); a rejection also invalidates
    /// the binding until it re-registers ([`Output::BindingInvalid`]).
    /// The parked request a push in flight wakes a device for (`None` for
    /// refresh pushes and unknown ids).
    pub fn request_of(&self, id: PushId) -> Option<RequestId> {
        self.pushes.get(&id).and_then(|p| p.request)
    }

    pub fn handle_push_result(&mut self, id: PushId, result: Result<(), PushError>, now: Instant) {
        let Some(p) = self.pushes.remove(&id) else {
            self.stats.late_results += 1;
            return;
        };
        let c = self.counters(p.kind);
        match result {
            Ok(()) => c.ok += 1,
            Err(PushError::Failed) => c.failed += 1,
            Err(PushError::Rejected) => c.rejected += 1,
        }
        let mut invalidated = false;
        if let Some(b) = self.bindings.get_mut(&p.binding) {
            b.pending.retain(|x| *x != id);
            match result {
                Ok(()) => b.consecutive_failures = 0,
                Err(e) => {
                    b.consecutive_failures += 1;
                    if e == PushError::Rejected && !b.invalid && b.info.prid == p.prid {
                        b.invalid = true;
                        invalidated = true;
                    }
                }
            }
        }
        if invalidated {
            self.stats.bindings_invalidated += 1;
            self.out.push_back(Output::BindingInvalid { binding: p.binding.clone() });
        }
        if let (Err(e), Some(r)) = (result, p.request) {
            let why = if e == PushError::Rejected { BranchEnd::PushRejected } else { BranchEnd::PushFailed };
            self.end_branch(r, &p.binding, Err(why), now);
        }
    }

    pub(crate) fn counters(&mut self, kind: PushKind) -> &mut PushCounters {
        match kind {
            PushKind::Refresh => &mut self.stats.refresh,
            PushKind::Initial => &mut self.stats.initial,
            PushKind::MidDialog => &mut self.stats.mid_dialog,
        }
    }

    /// Queues a push to `binding` and remembers it until its result (or
    /// until the binding is gone or has too many newer pushes).
    pub(crate) fn send_push(
        &mut self,
        binding: &BindingKey,
        reason: PushReason,
        request: Option<RequestId>,
        attempt: u32,
        deadline: Instant,
        now: Instant,
    ) -> Option<PushId> {
        self.next_push += 1;
        let id = PushId(self.next_push);
        let b = self.bindings.get_mut(binding)?;
        b.last_push = Some(now);
        let info = b.info.clone();
        b.pending.push_back(id);
        let given_up = (b.pending.len() > MAX_PENDING_PER_BINDING).then(|| b.pending.pop_front()).flatten();
        if let Some(old) = given_up.and_then(|old| self.pushes.remove(&old)) {
            self.counters(old.kind).unanswered += 1;
        }
        let kind = match &reason {
            PushReason::Refresh | PushReason::Test | PushReason::CallEnded { .. } => PushKind::Refresh,
            PushReason::Initial { .. } => PushKind::Initial,
            PushReason::MidDialog { .. } => PushKind::MidDialog,
        };
        self.counters(kind).sent += 1;
        let pending = PendingPush { binding: binding.clone(), prid: info.prid.clone(), request, kind };
        self.pushes.insert(id, pending);
        let ttl = deadline.saturating_duration_since(now).as_secs_f64().ceil().max(1.0);
        self.out.push_back(Output::Push(PushRequest {
            id,
            binding: binding.clone(),
            provider: info.provider,
            prid: info.prid,
            param: info.param,
            reason,
            attempt,
            ttl_secs: ttl.min(f64::from(u32::MAX)) as u32,
            deadline,
        }));
        Some(id)
    }

    // ---- time -------------------------------------------------------------

    /// When [`PushEngine::handle_timeout`] must be called next (may be a
    /// little early: stale timers are discarded then).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Fires everything due at `now`: refresh pushes, binding expiry,
    /// Bucket Timers (R41, per branch), retired PURRs.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(e) = self.timers.pop_due(now) {
            match e.kind {
                TimerKind::Binding(key) => {
                    let Some(b) = self.bindings.get(&key) else { continue };
                    if b.timer.1 != e.generation {
                        continue;
                    }
                    if b.timer.2 == Due::Expire || now >= b.expires_at {
                        self.stats.bindings_expired += 1;
                        self.drop_binding(&key, BranchEnd::BindingGone, now);
                    } else {
                        self.fire_refresh(&key, now);
                    }
                }
                TimerKind::Hold(r) => {
                    if self.requests.get(&r).is_some_and(|p| p.generation == e.generation) {
                        self.hold_expired(r, now);
                    }
                }
                TimerKind::Purr(p) => self.purrs.on_timer(&p, e.generation),
            }
        }
        self.maybe_compact();
    }

    fn fire_refresh(&mut self, key: &BindingKey, now: Instant) {
        let b = self.bindings.get_mut(key).expect("caller checked");
        let expires_at = b.expires_at;
        let send = !b.invalid;
        if send {
            b.attempt += 1;
        }
        let attempt = b.attempt;
        let next =
            if send { self.plan.next(&b.info.provider, expires_at, b.pnsreg, attempt, now + MIN_GAP) } else { None };
        let (at, due) = next.map_or((expires_at, Due::Expire), |t| (t, Due::Refresh));
        let generation = self.timers.arm(at, TimerKind::Binding(key.clone()));
        self.bindings.get_mut(key).expect("exists").timer = (at, generation, due);
        if send {
            self.send_push(key, PushReason::Refresh, None, attempt, expires_at, now);
        }
    }

    /// A refresh push to `binding` now, outside its schedule (which stays
    /// as it is): a mid-registrar whose upstream lost the registration and
    /// challenged the re-sent REGISTER asks the device to re-register with
    /// its own credentials. `false` when the binding is not a push binding
    /// (or its token is known dead).
    pub fn refresh_now(&mut self, binding: &BindingKey, now: Instant) -> bool {
        let Some(b) = self.bindings.get(binding) else { return false };
        if b.invalid {
            return false;
        }
        let expires_at = b.expires_at;
        self.send_push(binding, PushReason::Refresh, None, 1, expires_at, now).is_some()
    }

    /// Ends the binding's parked branches with `why` and forgets it.
    pub(crate) fn drop_binding(&mut self, key: &BindingKey, why: BranchEnd, now: Instant) {
        let Some(b) = self.bindings.get_mut(key) else {
            self.purrs.remove_binding(key);
            return;
        };
        for r in std::mem::take(&mut b.parked) {
            self.end_branch(r, key, Err(why), now);
        }
        self.forget_binding(key);
    }

    pub(crate) fn forget_binding(&mut self, key: &BindingKey) {
        if let Some(b) = self.bindings.remove(key) {
            for id in b.pending {
                if let Some(p) = self.pushes.remove(&id) {
                    self.counters(p.kind).unanswered += 1;
                }
            }
        }
        self.purrs.remove_binding(key);
    }

    /// Drops stale heap entries when they dominate.
    pub(crate) fn maybe_compact(&mut self) {
        let live = self.bindings.len() + self.requests.len() + self.purrs.retired_count();
        if !self.timers.should_compact(live) {
            return;
        }
        let mut entries = Vec::with_capacity(live);
        for (k, b) in &self.bindings {
            entries.push(Entry { at: b.timer.0, generation: b.timer.1, kind: TimerKind::Binding(k.clone()) });
        }
        for (r, p) in &self.requests {
            entries.push(Entry { at: p.timer_at, generation: p.generation, kind: TimerKind::Hold(*r) });
        }
        entries.extend(self.purrs.live_timers());
        self.timers.rebuild(entries);
    }

    // ---- outputs ----

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of these per push binding (plus the map slot's key): a change of
    /// size is a change of the memory a push binding costs at 1M.
    #[test]
    fn sizes_of_per_binding_state() {
        assert_eq!(std::mem::size_of::<BindingState>(), 224);
        assert_eq!(std::mem::size_of::<BindingKey>(), 16);
        assert_eq!(std::mem::size_of::<PnInfo>(), 72);
    }
}
