//! The REGISTER side of the engine: classification and Feature-Caps of a
//! REGISTER, the lifecycle of push bindings (registered, failed, removed,
//! restored after a restart) and their PURRs.

use crate::caps::FeatureCaps;
use crate::classify::{Classification, ContactInfo, classify};
use crate::engine::{BindingState, Due, PushEngine};
use crate::output::BranchEnd;
use crate::purr::PurrRecord;
use crate::schedule::MIN_GAP;
use crate::timers::TimerKind;
use crate::types::{BindingKey, PnInfo};
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

impl PushEngine {
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
    /// schedule (a new expiry resets it; lead and retries of its provider), records new push coordinates (a
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
        let timer = self.arm(&reg.binding, &info.provider, expires_at, reg.pnsreg, now + MIN_GAP);
        match self.bindings.get_mut(&reg.binding) {
            Some(b) => {
                b.set_info(&info);
                b.set_pnsreg(reg.pnsreg);
                b.set_expires_at(expires_at);
                b.set_registered_at(Some(now));
                b.set_attempt(0);
                b.set_invalid(false);
                b.set_timer(timer);
            }
            None => {
                let b = BindingState::new(&reg.binding, &info, reg.pnsreg, expires_at, Some(now), timer);
                self.bindings.insert(b);
            }
        }
        self.wake(&reg.binding, now);
        let purr = self.cfg.purr.then(|| self.issue_purr(&reg.binding, now));
        self.maybe_compact();
        purr
    }

    /// Arms a binding's next timer: its first refresh push (not before
    /// `floor`), else its expiry.
    fn arm(
        &mut self,
        binding: &BindingKey,
        provider: &str,
        expires_at: Instant,
        pnsreg: bool,
        floor: Instant,
    ) -> (Instant, u64, Due) {
        let (at, due) = match self.plan.next(provider, expires_at, pnsreg, 0, floor) {
            Some(t) => (t, Due::Refresh),
            None => (expires_at, Due::Expire),
        };
        (at, self.timers.arm(at, TimerKind::Binding(binding.clone())), due)
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
        for r in b.take_parked() {
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

    /// A binding expired (neither refreshed nor removed by a REGISTER or by
    /// hand): forgotten as [`PushEngine::handle_removed`] does. `Some`
    /// (its provider, the refresh pushes sent) when refresh pushes went
    /// out in its last cycle and none brought the device back: the way a
    /// phone silently drops off a push registrar (its app killed, its
    /// token stale, its OS throttling pushes).
    pub fn handle_expired(&mut self, binding: &BindingKey, now: Instant) -> Option<(String, u32)> {
        let missed =
            self.bindings.get(binding).and_then(|b| (b.attempt() > 0).then(|| (b.provider().to_owned(), b.attempt())));
        self.handle_removed(binding, now);
        missed
    }

    /// Reloads a push binding after a restart (registrar store): the
    /// schedule is rebuilt (an overdue refresh push goes at once), the
    /// PURRs are reinstated. Returns whether it is tracked.
    pub fn restore(&mut self, r: Restored, now: Instant) -> bool {
        if r.expires_in.is_zero() || self.bindings.contains_key(&r.binding) {
            return false;
        }
        let expires_at = now + r.expires_in;
        let timer = self.arm(&r.binding, &r.info.provider, expires_at, r.pnsreg, now);
        let registered_at = r.registered_ago.and_then(|a| now.checked_sub(a));
        let state = BindingState::new(&r.binding, &r.info, r.pnsreg, expires_at, registered_at, timer);
        self.bindings.insert(state);
        self.purrs.restore(&r.binding, &r.purrs, now, self.cfg.purr_horizon, &mut self.timers);
        true
    }

    /// A push binding written by another node of a cluster, read back from
    /// the shared store: its schedule follows the stored expiry, its PURRs
    /// become the stored ones (so a PURR issued by any node resolves on
    /// every node). `fresh`: the row records a new REGISTER of the device
    /// (another Call-ID or CSeq than the one this engine last saw), so the
    /// requests parked on it are forked, exactly as
    /// [`PushEngine::handle_register_ok`] would. Returns whether it is tracked.
    ///
    /// The engine still schedules refresh pushes for such a binding; whether
    /// this node sends them is the caller's decision (one node per due time).
    pub fn handle_replicated(&mut self, r: Restored, fresh: bool, now: Instant) -> bool {
        if r.expires_in.is_zero() {
            self.handle_removed(&r.binding, now);
            return false;
        }
        let expires_at = now + r.expires_in;
        let registered_at = r.registered_ago.and_then(|a| now.checked_sub(a));
        let rearm = fresh || self.bindings.get(&r.binding).is_none_or(|b| b.expires_at() != expires_at);
        if rearm {
            let floor = if fresh { now + MIN_GAP } else { now };
            let timer = self.arm(&r.binding, &r.info.provider, expires_at, r.pnsreg, floor);
            match self.bindings.get_mut(&r.binding) {
                Some(b) => {
                    b.set_expires_at(expires_at);
                    b.set_registered_at(registered_at);
                    b.set_attempt(0);
                    b.set_invalid(false);
                    b.set_timer(timer);
                }
                None => {
                    let state = BindingState::new(&r.binding, &r.info, r.pnsreg, expires_at, registered_at, timer);
                    self.bindings.insert(state);
                }
            }
        }
        if let Some(b) = self.bindings.get_mut(&r.binding) {
            b.set_info(&r.info);
            b.set_pnsreg(r.pnsreg);
        }
        self.purrs.restore(&r.binding, &r.purrs, now, self.cfg.purr_horizon, &mut self.timers);
        if fresh {
            self.stats.registrations += 1;
            self.wake(&r.binding, now);
        }
        self.maybe_compact();
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

    /// The push state of a tracked push binding as text to store next to
    /// it: its `pnsreg` flag and [`PushEngine::purr_records`], encoded with
    /// [`crate::encode_push_state`] against `now_ms`, the wall-clock time
    /// (unix ms) of `now`. `None` when the engine does not track it.
    /// Restore with [`crate::decode_push_state`] and [`PushEngine::restore`].
    pub fn push_state(&self, binding: &str, now: Instant, now_ms: u64) -> Option<String> {
        let b = self.bindings.get(binding)?;
        Some(crate::persist::encode_push_state(b.pnsreg(), &self.purrs.records(binding, now), now_ms))
    }
}
