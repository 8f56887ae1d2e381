//! [`PushEngine`]: the push bindings, their refresh schedule, PURRs and the
//! output queue. Parking and wake-up live in `park.rs` (same type).
//!
//! quinn-proto style: `handle_*(…, now)` methods change state and queue
//! [`Output`]s; the core drains [`PushEngine::poll_output`], sleeps until
//! [`PushEngine::poll_timeout`] and calls [`PushEngine::handle_timeout`].
//! No clock is read: every time comes in as `now`.

use crate::bucket::{Parked, PendingPush, PushKind};
use crate::caps::FeatureCaps;
use crate::classify::{Classification, ContactInfo, classify};
use crate::config::{ConfigError, PushConfig};
use crate::output::{BranchEnd, Output, PushError, PushReason, PushRequest};
use crate::purr::{Map, PurrRecord, PurrTable, RandomSource};
use crate::schedule::{MIN_GAP, RefreshPlan};
use crate::stats::{BindingView, PushCounters, Stats};
use crate::timers::{Entry, TimerKind, Timers};
use crate::types::{BindingKey, PnInfo, PushId, RequestId};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A successful REGISTER (2xx) of a binding the engine may track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub binding: BindingKey,
    /// `Some`: a push binding ([`Classification::Push`]). `None`: the
    /// binding no longer asks for pushes (requests parked on it are
    /// forked, its schedule and PURRs dropped).
    pub info: Option<PnInfo>,
    /// The granted expiry.
    pub expires: Duration,
    /// `pnsreg` of the classification.
    pub pnsreg: bool,
}

/// A push binding reloaded after a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    pub binding: BindingKey,
    pub info: PnInfo,
    /// Time left until expiry (`expires_at − now`); zero: not restored.
    pub expires_in: Duration,
    pub pnsreg: bool,
    /// Time since its last REGISTER, if known (skip interval).
    pub registered_ago: Option<Duration>,
    /// Its persisted PURRs ([`PushEngine::purr_records`]); may be empty.
    pub purrs: Vec<PurrRecord>,
}

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

    // ---- REGISTER -------------------------------------------------------

    /// Classifies one Contact of a REGISTER (R12–R31).
    pub fn classify(&self, contact: &ContactInfo) -> Classification {
        classify(&self.cfg, contact)
    }

    /// The Feature-Caps fc-values of a REGISTER 2xx: one entry per Contact,
    /// with the binding's PURR for push bindings (from
    /// [`PushEngine::handle_register_ok`] or [`PushEngine::purr_for`]).
    pub fn feature_caps<'a>(
        &self,
        items: impl IntoIterator<Item = (&'a Classification, Option<&'a str>)>,
    ) -> Vec<String> {
        let mut caps = FeatureCaps::new();
        for (class, purr) in items {
            caps.add(&self.cfg, class, purr);
        }
        caps.values()
    }

    /// A REGISTER of `reg.binding` succeeded: (re-)arms its refresh
    /// schedule (a new expiry resets it), records new push coordinates (a
    /// new PRID is fine: matching is by binding key), forks every request
    /// parked on it (once per request and binding, R35/R55) and returns its
    /// current PURR when PURR is on (R51: put it in this 2xx).
    pub fn handle_register_ok(&mut self, reg: Registration, now: Instant) -> Option<String> {
        self.stats.registrations += 1;
        if reg.expires.is_zero() {
            self.handle_removed(&reg.binding, now);
            return None;
        }
        let Some(info) = reg.info else {
            // No longer a push binding: reachable now, never pushed again.
            self.wake(&reg.binding, now);
            self.forget_binding(&reg.binding);
            return None;
        };
        let expires_at = now + reg.expires;
        let (at, due) = match self.plan.next(expires_at, reg.pnsreg, 0, now + MIN_GAP) {
            Some(t) => (t, Due::Refresh),
            None => (expires_at, Due::Expire),
        };
        let generation = self.timers.arm(at, TimerKind::Binding(reg.binding.clone()));
        let timer = (at, generation, due);
        match self.bindings.get_mut(&reg.binding) {
            Some(b) => {
                b.info = info;
                b.pnsreg = reg.pnsreg;
                b.expires_at = expires_at;
                b.registered_at = Some(now);
                b.attempt = 0;
                b.invalid = false;
                b.timer = timer;
            }
            None => {
                let b = BindingState {
                    info,
                    pnsreg: reg.pnsreg,
                    expires_at,
                    registered_at: Some(now),
                    attempt: 0,
                    last_push: None,
                    consecutive_failures: 0,
                    invalid: false,
                    timer,
                    parked: Vec::new(),
                };
                self.bindings.insert(reg.binding.clone(), b);
            }
        }
        self.wake(&reg.binding, now);
        let purr = self.cfg.purr.then(|| self.issue_purr(&reg.binding, now));
        self.maybe_compact();
        purr
    }

    fn issue_purr(&mut self, binding: &BindingKey, now: Instant) -> String {
        let before = self.purrs.count(binding);
        let (rot, hor) = (self.cfg.purr_rotation, self.cfg.purr_horizon);
        let p = self.purrs.issue(binding, now, rot, hor, &mut *self.rng, &mut self.timers);
        if self.purrs.count(binding) > before {
            self.stats.purrs_issued += 1;
        }
        p
    }

    /// The waking REGISTER of `binding` got a final non-2xx `code`: 401 and
    /// 407 keep waiting (a new REGISTER follows, R38); anything else ends
    /// the branches parked on it (R36/R37).
    pub fn handle_register_failed(&mut self, binding: &BindingKey, code: u16, now: Instant) {
        if code < 300 || code == 401 || code == 407 {
            return;
        }
        let Some(b) = self.bindings.get_mut(binding) else { return };
        for r in std::mem::take(&mut b.parked) {
            self.end_branch(r, binding, Err(BranchEnd::RegisterFailed(code)), now);
        }
    }

    /// The binding was removed (de-REGISTER, expiry seen by the registrar,
    /// management, dead token): no push with its PRID ever again (R11);
    /// its parked branches end, its PURRs stop resolving.
    pub fn handle_removed(&mut self, binding: &BindingKey, now: Instant) {
        if self.bindings.contains_key(binding) {
            self.stats.bindings_removed += 1;
        }
        self.drop_binding(binding, BranchEnd::BindingGone, now);
    }

    /// Reloads a push binding after a restart (registrar store): the
    /// schedule is rebuilt (an overdue refresh push goes at once), the
    /// PURRs are reinstated. Returns whether it is tracked.
    pub fn restore(&mut self, r: Restored, now: Instant) -> bool {
        if r.expires_in.is_zero() || self.bindings.contains_key(&r.binding) {
            return false;
        }
        let expires_at = now + r.expires_in;
        let (at, due) = match self.plan.next(expires_at, r.pnsreg, 0, now) {
            Some(t) => (t, Due::Refresh),
            None => (expires_at, Due::Expire),
        };
        let generation = self.timers.arm(at, TimerKind::Binding(r.binding.clone()));
        let state = BindingState {
            info: r.info,
            pnsreg: r.pnsreg,
            expires_at,
            registered_at: r.registered_ago.and_then(|a| now.checked_sub(a)),
            attempt: 0,
            last_push: None,
            consecutive_failures: 0,
            invalid: false,
            timer: (at, generation, due),
            parked: Vec::new(),
        };
        self.bindings.insert(r.binding.clone(), state);
        self.purrs.restore(&r.binding, &r.purrs, now, self.cfg.purr_horizon, &mut self.timers);
        true
    }

    // ---- PURR -----------------------------------------------------------

    /// The binding's current PURR (issued by its last 2xx).
    pub fn purr_for(&self, binding: &str) -> Option<&str> {
        self.purrs.current(binding)
    }

    /// The binding a `pn-purr` value names, if we issued it, it is still
    /// valid and its binding lives. Forged or unknown: `None` (no push).
    pub fn resolve_purr(&mut self, purr: &str, now: Instant) -> Option<BindingKey> {
        let r = self.purrs.resolve(purr, now).filter(|b| self.bindings.contains_key(b));
        match r {
            Some(_) => self.stats.purrs_resolved += 1,
            None => self.stats.purrs_refused += 1,
        }
        r
    }

    /// The binding's PURRs, to persist next to it (for [`Restored::purrs`]).
    pub fn purr_records(&self, binding: &str, now: Instant) -> Vec<PurrRecord> {
        self.purrs.records(binding, now)
    }

    // ---- push senders -----------------------------------------------------

    /// The sender's result for push `id`. A failure ends the branch of the
    /// request it was for at once (R39/R40); a rejection also invalidates
    /// the binding until it re-registers ([`Output::BindingInvalid`]).
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

    /// Queues a push to `binding` and remembers it until its result or
    /// `deadline`.
    pub(crate) fn send_push(
        &mut self,
        binding: &BindingKey,
        reason: PushReason,
        request: Option<RequestId>,
        attempt: u32,
        deadline: Instant,
        now: Instant,
    ) -> Option<PushId> {
        let b = self.bindings.get_mut(binding)?;
        b.last_push = Some(now);
        let info = b.info.clone();
        self.next_push += 1;
        let id = PushId(self.next_push);
        let kind = match &reason {
            PushReason::Refresh => PushKind::Refresh,
            PushReason::Initial { .. } => PushKind::Initial,
            PushReason::MidDialog { .. } => PushKind::MidDialog,
        };
        self.counters(kind).sent += 1;
        let generation = self.timers.arm(deadline, TimerKind::Push(id));
        let pending =
            PendingPush { binding: binding.clone(), prid: info.prid.clone(), request, kind, deadline, generation };
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
    /// Bucket Timers (R41), retired PURRs, unanswered pushes.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(e) = self.timers.pop_due(now) {
            match e.kind {
                TimerKind::Binding(key) => {
                    let Some(b) = self.bindings.get(&key) else { continue };
                    if (b.timer.0, b.timer.1) != (e.at, e.generation) {
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
                TimerKind::Push(id) => {
                    if self.pushes.get(&id).is_some_and(|p| p.generation == e.generation) {
                        let p = self.pushes.remove(&id).expect("checked");
                        self.counters(p.kind).unanswered += 1;
                    }
                }
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
        let next = if send { self.plan.next(expires_at, b.pnsreg, attempt, now + MIN_GAP) } else { None };
        let (at, due) = next.map_or((expires_at, Due::Expire), |t| (t, Due::Refresh));
        let generation = self.timers.arm(at, TimerKind::Binding(key.clone()));
        self.bindings.get_mut(key).expect("exists").timer = (at, generation, due);
        if send {
            self.send_push(key, PushReason::Refresh, None, attempt, expires_at, now);
        }
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

    fn forget_binding(&mut self, key: &BindingKey) {
        self.bindings.remove(key);
        self.purrs.remove_binding(key);
    }

    /// Drops stale heap entries when they dominate.
    fn maybe_compact(&mut self) {
        let live = self.bindings.len() + self.requests.len() + self.purrs.retired_count() + self.pushes.len();
        if !self.timers.should_compact(live) {
            return;
        }
        let mut entries = Vec::with_capacity(live);
        for (k, b) in &self.bindings {
            entries.push(Entry { at: b.timer.0, generation: b.timer.1, kind: TimerKind::Binding(k.clone()) });
        }
        for (r, p) in &self.requests {
            entries.push(Entry { at: p.deadline, generation: p.generation, kind: TimerKind::Hold(*r) });
        }
        for (id, p) in &self.pushes {
            entries.push(Entry { at: p.deadline, generation: p.generation, kind: TimerKind::Push(*id) });
        }
        entries.extend(self.purrs.live_timers());
        self.timers.rebuild(entries);
    }

    // ---- outputs and observability -----------------------------------------

    /// The next thing to do, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Push bindings tracked.
    pub fn binding_count(&self) -> usize {
        self.bindings.len()
    }

    /// Requests parked now.
    pub fn parked_count(&self) -> usize {
        self.requests.len()
    }

    /// Pushes awaiting a result.
    pub fn pending_pushes(&self) -> usize {
        self.pushes.len()
    }

    /// Timer entries held (live and stale), for diagnostics.
    pub fn timer_entries(&self) -> usize {
        self.timers.len()
    }

    /// One binding as `sipwake ctl` shows it.
    pub fn binding_view(&self, key: &str, now: Instant) -> Option<BindingView> {
        let (k, b) = self.bindings.get_key_value(key)?;
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Some(BindingView {
            binding: k.clone(),
            provider: b.info.provider.clone(),
            pnsreg: b.pnsreg,
            expires_in_ms: ms(b.expires_at.saturating_duration_since(now)),
            registered_ago_ms: b.registered_at.map(|t| ms(now.saturating_duration_since(t))),
            next_refresh_in_ms: (b.timer.2 == Due::Refresh).then(|| ms(b.timer.0.saturating_duration_since(now))),
            refresh_attempts: b.attempt,
            last_push_ago_ms: b.last_push.map(|t| ms(now.saturating_duration_since(t))),
            consecutive_failures: b.consecutive_failures,
            invalid: b.invalid,
            parked: b.parked.len(),
            purrs: self.purrs.count(key),
        })
    }

    /// Every binding's view, sorted by key (O(n log n): for management only).
    pub fn binding_views(&self, now: Instant) -> Vec<BindingView> {
        let mut keys: Vec<&BindingKey> = self.bindings.keys().collect();
        keys.sort();
        keys.into_iter().filter_map(|k| self.binding_view(k, now)).collect()
    }
}
