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
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

/// Pushes awaiting a result, per binding; older ones are given up
/// (counted as unanswered) when more are sent. Bounds memory without a
/// timer per push.
pub const MAX_PENDING_PER_BINDING: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    Refresh,
    Expire,
}

/// Pushes and parked requests of one binding: rarely any, so out of line.
#[derive(Default)]
pub(crate) struct Active {
    /// Requests waiting for this binding, in parking order.
    pub parked: Vec<RequestId>,
    /// Its pushes awaiting a result, oldest first.
    pub pending: VecDeque<PushId>,
}

const PNSREG: u8 = 1;
const INVALID: u8 = 2;
const DUE_EXPIRE: u8 = 4;
const HAS_PARAM: u8 = 8;
/// An offset that stands for "no such time".
const NONE: u32 = u32::MAX;

/// One push binding, kept small (one per binding at a million): its texts
/// in one allocation, every time but its expiry as milliseconds before
/// it, what is rarely there ([`Active`]) out of line.
pub(crate) struct BindingState {
    expires_at: Instant,
    timer_generation: u64,
    /// Its key, the owner ([`PushEngine::set_owner`]), `pn-provider`,
    /// `pn-prid` and `pn-param`, one after the other.
    text: Box<str>,
    active: Option<Box<Active>>,
    /// ms before `expires_at` ([`NONE`]: unknown / never).
    registered: u32,
    last_push: u32,
    timer: u32,
    prid_len: u32,
    key_len: u16,
    owner_len: u16,
    /// Provider names are at most 255 bytes (config validation).
    provider_len: u8,
    /// Push failures since the last success (saturating).
    failures: u8,
    /// Refresh pushes in this expiry cycle (saturating).
    attempt: u8,
    flags: u8,
}

/// `t` as milliseconds before `exp` (0 when after it; saturating).
fn before(exp: Instant, t: Instant) -> u32 {
    u32::try_from(exp.saturating_duration_since(t).as_millis()).unwrap_or(NONE - 1).min(NONE - 1)
}

fn at(exp: Instant, ms: u32) -> Instant {
    exp.checked_sub(Duration::from_millis(u64::from(ms))).unwrap_or(exp)
}

impl BindingState {
    /// A binding tracked from now on, with its first timer.
    pub(crate) fn new(
        key: &str,
        info: &PnInfo,
        pnsreg: bool,
        expires_at: Instant,
        registered_at: Option<Instant>,
        timer: (Instant, u64, Due),
    ) -> BindingState {
        let mut b = BindingState {
            expires_at,
            timer_generation: 0,
            text: Box::from(""),
            active: None,
            registered: NONE,
            last_push: NONE,
            timer: 0,
            prid_len: 0,
            key_len: 0,
            owner_len: 0,
            provider_len: 0,
            failures: 0,
            attempt: 0,
            flags: 0,
        };
        b.pack(key, "", &info.provider, &info.prid, info.param.as_deref());
        b.set_flag(PNSREG, pnsreg);
        b.set_registered_at(registered_at);
        b.set_timer(timer);
        b
    }

    fn set_flag(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    /// Rewrites the texts (lengths beyond the inline counters cannot be
    /// sliced back: never the case for an AoR, a provider name, a token or
    /// a URL, all within one SIP message).
    fn pack(&mut self, key: &str, owner: &str, provider: &str, prid: &str, param: Option<&str>) {
        let parts = [key, owner, provider, prid, param.unwrap_or_default()];
        let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        for part in parts {
            s.push_str(part);
        }
        self.text = s.into_boxed_str();
        self.key_len = u16::try_from(key.len()).unwrap_or(u16::MAX);
        self.owner_len = u16::try_from(owner.len()).unwrap_or(u16::MAX);
        self.provider_len = u8::try_from(provider.len()).unwrap_or(u8::MAX);
        self.prid_len = u32::try_from(prid.len()).unwrap_or(u32::MAX);
        self.set_flag(HAS_PARAM, param.is_some());
    }

    /// New push coordinates (no allocation when they did not change).
    pub(crate) fn set_info(&mut self, info: &PnInfo) {
        let (key, owner, provider, prid, param) = self.split();
        if provider == info.provider && prid == info.prid && param == info.param.as_deref() {
            return;
        }
        let (key, owner) = (key.to_owned(), owner.to_owned());
        self.pack(&key, &owner, &info.provider, &info.prid, info.param.as_deref());
    }

    /// The core's text for this binding; `false` when too long to keep.
    pub(crate) fn set_owner(&mut self, owner: &str) -> bool {
        if owner.len() > usize::from(u16::MAX) {
            return false;
        }
        let (key, old, provider, prid, param) = self.split();
        if old != owner {
            let (key, provider, prid) = (key.to_owned(), provider.to_owned(), prid.to_owned());
            let param = param.map(str::to_owned);
            self.pack(&key, owner, &provider, &prid, param.as_deref());
        }
        true
    }

    fn split(&self) -> (&str, &str, &str, &str, Option<&str>) {
        fn cut(s: &str, n: usize) -> (&str, &str) {
            s.split_at_checked(n.min(s.len())).unwrap_or((s, ""))
        }
        let (key, rest) = cut(&self.text, usize::from(self.key_len));
        let (owner, rest) = cut(rest, usize::from(self.owner_len));
        let (provider, rest) = cut(rest, usize::from(self.provider_len));
        let (prid, param) = cut(rest, usize::try_from(self.prid_len).unwrap_or(usize::MAX));
        (key, owner, provider, prid, (self.flags & HAS_PARAM != 0).then_some(param))
    }

    /// `None`: none set (an empty owner is none).
    pub(crate) fn owner(&self) -> Option<&str> {
        (self.owner_len > 0).then(|| self.split().1)
    }

    /// The binding's key.
    pub(crate) fn key(&self) -> &str {
        self.split().0
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        u32::from(self.failures)
    }

    pub(crate) fn set_failures(&mut self, n: u32) {
        self.failures = u8::try_from(n).unwrap_or(u8::MAX);
    }

    pub(crate) fn provider(&self) -> &str {
        self.split().2
    }

    pub(crate) fn prid(&self) -> &str {
        self.split().3
    }

    pub(crate) fn param(&self) -> Option<&str> {
        self.split().4
    }

    /// The coordinates as the push request carries them.
    pub(crate) fn info(&self) -> PnInfo {
        PnInfo {
            provider: self.provider().to_owned(),
            prid: self.prid().to_owned(),
            param: self.param().map(str::to_owned),
        }
    }

    pub(crate) fn pnsreg(&self) -> bool {
        self.flags & PNSREG != 0
    }

    pub(crate) fn set_pnsreg(&mut self, on: bool) {
        self.set_flag(PNSREG, on);
    }

    pub(crate) fn invalid(&self) -> bool {
        self.flags & INVALID != 0
    }

    pub(crate) fn set_invalid(&mut self, on: bool) {
        self.set_flag(INVALID, on);
    }

    pub(crate) fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// A new expiry; the other times stay what they were.
    pub(crate) fn set_expires_at(&mut self, t: Instant) {
        let (registered, last_push, timer) = (self.registered_at(), self.last_push(), self.timer());
        self.expires_at = t;
        self.set_registered_at(registered);
        self.last_push = last_push.map_or(NONE, |p| before(t, p));
        self.set_timer(timer);
    }

    pub(crate) fn registered_at(&self) -> Option<Instant> {
        (self.registered != NONE).then(|| at(self.expires_at, self.registered))
    }

    pub(crate) fn set_registered_at(&mut self, t: Option<Instant>) {
        self.registered = t.map_or(NONE, |t| before(self.expires_at, t));
    }

    pub(crate) fn last_push(&self) -> Option<Instant> {
        (self.last_push != NONE).then(|| at(self.expires_at, self.last_push))
    }

    pub(crate) fn set_last_push(&mut self, t: Instant) {
        self.last_push = before(self.expires_at, t);
    }

    /// Refresh pushes sent in this expiry cycle.
    pub(crate) fn attempt(&self) -> u32 {
        u32::from(self.attempt)
    }

    pub(crate) fn set_attempt(&mut self, n: u32) {
        self.attempt = u8::try_from(n).unwrap_or(u8::MAX);
    }

    /// The binding's live timer: (when, generation, what for).
    pub(crate) fn timer(&self) -> (Instant, u64, Due) {
        let due = if self.flags & DUE_EXPIRE != 0 { Due::Expire } else { Due::Refresh };
        (at(self.expires_at, self.timer), self.timer_generation, due)
    }

    pub(crate) fn set_timer(&mut self, (t, generation, due): (Instant, u64, Due)) {
        self.timer = before(self.expires_at, t);
        self.timer_generation = generation;
        self.set_flag(DUE_EXPIRE, due == Due::Expire);
    }

    pub(crate) fn timer_generation(&self) -> u64 {
        self.timer_generation
    }

    /// The parked requests and pending pushes, created on first use.
    pub(crate) fn active(&mut self) -> &mut Active {
        self.active.get_or_insert_with(Box::default)
    }

    /// Drops the out-of-line part once it holds nothing.
    pub(crate) fn shrink(&mut self) {
        if self.active.as_ref().is_some_and(|a| a.parked.is_empty() && a.pending.is_empty()) {
            self.active = None;
        }
    }

    pub(crate) fn parked_len(&self) -> usize {
        self.active.as_ref().map_or(0, |a| a.parked.len())
    }

    /// Takes the parked requests (none left).
    pub(crate) fn take_parked(&mut self) -> Vec<RequestId> {
        let parked = self.active.as_mut().map(|a| std::mem::take(&mut a.parked)).unwrap_or_default();
        self.shrink();
        parked
    }

    pub(crate) fn unpark(&mut self, r: RequestId) {
        if let Some(a) = &mut self.active {
            a.parked.retain(|x| *x != r);
        }
        self.shrink();
    }

    /// Takes the pending pushes (none left).
    pub(crate) fn take_pending(&mut self) -> VecDeque<PushId> {
        let pending = self.active.as_mut().map(|a| std::mem::take(&mut a.pending)).unwrap_or_default();
        self.shrink();
        pending
    }

    pub(crate) fn push_done(&mut self, id: PushId) {
        if let Some(a) = &mut self.active {
            a.pending.retain(|x| *x != id);
        }
        self.shrink();
    }
}

/// The push bindings by key. The key lives in the state's own text
/// allocation, so a table slot is the state alone (no key beside it).
pub(crate) struct Bindings {
    table: hashbrown::HashTable<BindingState>,
    hasher: foldhash::fast::FixedState,
}

impl Bindings {
    fn new(hasher: foldhash::fast::FixedState) -> Bindings {
        Bindings { table: hashbrown::HashTable::new(), hasher }
    }

    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(crate) fn reserve(&mut self, n: usize) {
        let h = self.hasher.clone();
        self.table.reserve(n, |b| h.hash_one(b.key()));
    }

    pub(crate) fn get(&self, key: &str) -> Option<&BindingState> {
        self.table.find(self.hash(key), |b| b.key() == key)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut BindingState> {
        let h = self.hash(key);
        self.table.find_mut(h, |b| b.key() == key)
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Inserts (or replaces) the state under its key.
    pub(crate) fn insert(&mut self, state: BindingState) {
        let h = self.hash(state.key());
        let hasher = &self.hasher;
        let entry = self.table.entry(h, |b| b.key() == state.key(), |b| hasher.hash_one(b.key()));
        match entry {
            hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = state,
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(state);
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<BindingState> {
        let h = self.hash(key);
        self.table.find_entry(h, |b| b.key() == key).ok().map(|e| e.remove().0)
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &BindingState> {
        self.table.iter()
    }
}

/// The sans-IO push-wake engine. See the crate docs.
pub struct PushEngine {
    pub(crate) cfg: PushConfig,
    pub(crate) plan: RefreshPlan,
    pub(crate) rng: Box<dyn RandomSource>,
    pub(crate) bindings: Bindings,
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
            bindings: Bindings::new(hasher.clone()),
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

    /// Attaches the core's own text to a tracked push binding (sip-node:
    /// its AoR), kept in the allocation of its coordinates: the core needs
    /// no map of its own from binding to owner. Kept until the binding is
    /// forgotten. `false` when the engine does not track the binding (or
    /// the text is over 64 KiB).
    pub fn set_owner(&mut self, binding: &str, owner: &str) -> bool {
        self.bindings.get_mut(binding).is_some_and(|b| b.set_owner(owner))
    }

    /// The text [`PushEngine::set_owner`] attached to a tracked binding.
    pub fn owner(&self, binding: &str) -> Option<&str> {
        self.bindings.get(binding)?.owner()
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
            b.push_done(id);
            match result {
                Ok(()) => b.set_failures(0),
                Err(e) => {
                    b.set_failures(b.consecutive_failures().saturating_add(1));
                    if e == PushError::Rejected && !b.invalid() && b.prid() == p.prid {
                        b.set_invalid(true);
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
        b.set_last_push(now);
        let info = b.info();
        let pending = &mut b.active().pending;
        pending.push_back(id);
        let given_up = (pending.len() > MAX_PENDING_PER_BINDING).then(|| pending.pop_front()).flatten();
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
                    if b.timer_generation() != e.generation {
                        continue;
                    }
                    if b.timer().2 == Due::Expire || now >= b.expires_at() {
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
        let Some(b) = self.bindings.get_mut(key) else { return };
        let expires_at = b.expires_at();
        let send = !b.invalid();
        if send {
            b.set_attempt(b.attempt() + 1);
        }
        let attempt = b.attempt();
        let next =
            if send { self.plan.next(b.provider(), expires_at, b.pnsreg(), attempt, now + MIN_GAP) } else { None };
        let (at, due) = next.map_or((expires_at, Due::Expire), |t| (t, Due::Refresh));
        let generation = self.timers.arm(at, TimerKind::Binding(key.clone()));
        b.set_timer((at, generation, due));
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
        if b.invalid() {
            return false;
        }
        let expires_at = b.expires_at();
        self.send_push(binding, PushReason::Refresh, None, 1, expires_at, now).is_some()
    }

    /// Ends the binding's parked branches with `why` and forgets it.
    pub(crate) fn drop_binding(&mut self, key: &BindingKey, why: BranchEnd, now: Instant) {
        let Some(b) = self.bindings.get_mut(key) else {
            self.purrs.remove_binding(key);
            return;
        };
        for r in b.take_parked() {
            self.end_branch(r, key, Err(why), now);
        }
        self.forget_binding(key);
    }

    pub(crate) fn forget_binding(&mut self, key: &BindingKey) {
        if let Some(mut b) = self.bindings.remove(key) {
            for id in b.take_pending() {
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
        for b in self.bindings.iter() {
            let (at, generation, _) = b.timer();
            entries.push(Entry { at, generation, kind: TimerKind::Binding(BindingKey::new(b.key())) });
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
        assert_eq!(std::mem::size_of::<BindingState>(), 72);
        assert_eq!(std::mem::size_of::<Option<Box<Active>>>(), 8);
        assert_eq!(std::mem::size_of::<BindingKey>(), 24);
        assert_eq!(std::mem::size_of::<Option<crate::timers::TimerKind>>(), 24);
        assert_eq!(std::mem::size_of::<PnInfo>(), 72);
    }

    #[test]
    fn binding_state_keeps_coordinates_and_times() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let info = |param: Option<&str>| PnInfo {
            provider: "apns".into(),
            prid: "tok%00en".into(),
            param: param.map(str::to_string),
        };
        let mut b =
            BindingState::new("k1", &info(Some("T.x")), true, t0 + s(3600), Some(t0), (t0 + s(3480), 7, Due::Refresh));
        assert_eq!(b.info(), info(Some("T.x")));
        assert_eq!((b.registered_at(), b.last_push(), b.timer()), (Some(t0), None, (t0 + s(3480), 7, Due::Refresh)));
        assert!(b.pnsreg() && !b.invalid());
        b.set_info(&info(Some("")));
        assert_eq!(b.param(), Some(""));
        assert_eq!(b.owner(), None);
        assert!(b.set_owner("alice@example.com"));
        b.set_info(&info(None));
        assert_eq!(b.info(), info(None));
        assert_eq!(b.owner(), Some("alice@example.com"), "the owner survives new coordinates");
        assert!(b.set_owner("bob@example.com"));
        assert_eq!((b.owner(), b.info(), b.key()), (Some("bob@example.com"), info(None), "k1"));
        b.set_last_push(t0 + s(3480));
        b.set_expires_at(t0 + s(7200));
        assert_eq!(b.last_push(), Some(t0 + s(3480)), "times survive a new expiry");
        assert_eq!(b.timer(), (t0 + s(3480), 7, Due::Refresh));
        b.active().parked.push(RequestId(1));
        b.unpark(RequestId(1));
        assert!(b.active.is_none(), "an empty out-of-line part is dropped");
    }
}
