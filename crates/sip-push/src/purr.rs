//! PURRs (RFC 8599 §6.2.1, R46–R59): opaque references from a token the
//! UA echoes as `pn-purr` to the push binding it belongs to.
//!
//! * 128 bits from the injected [`RandomSource`], base64url without padding
//!   (22 chars: a valid RFC 3840 token-nobang *and* URI `pvalue`, §6.10).
//!   With a `purr_key`, a 80-bit HMAC-SHA256 tag over (nonce, binding) is
//!   appended (35 chars): unforgeable even if the RNG is weak, and PURR
//!   records restored from a store are checked (a tampered store cannot
//!   point a PURR at another binding).
//! * Unique within the engine, contains nothing about the AoR, PRID or
//!   binding (R47, R50).
//! * Issued on the first 2xx of a push binding and rotated at the first 2xx
//!   after `purr_rotation` (R48; a PURR only reaches the UA in a 2xx). A
//!   replaced PURR resolves for `purr_horizon` more (R49). All PURRs of a
//!   binding die with it (R11).
//! * An unknown, expired or forged PURR resolves to nothing: no push.

use crate::timers::{Entry, TimerKind, Timers};
use crate::types::BindingKey;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) type Map<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// The engine's only source of randomness (PURRs, hash seeds). In
/// production a CSPRNG (e.g. `|b: &mut [u8]| rand::fill(b)`); in tests a
/// seeded generator. Any `FnMut(&mut [u8]) + Send` closure implements it.
pub trait RandomSource: Send {
    fn fill(&mut self, buf: &mut [u8]);
}

impl<F: FnMut(&mut [u8]) + Send> RandomSource for F {
    fn fill(&mut self, buf: &mut [u8]) {
        self(buf)
    }
}

const NONCE: usize = 16;
const TAG: usize = 10;
const DOMAIN: &[u8] = b"sipwake-purr-v1\0";

/// One PURR of a binding, for persistence next to the binding (see
/// [`crate::PushEngine::purr_records`] and [`crate::Restored::purrs`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PurrRecord {
    pub purr: String,
    /// Time since it was issued.
    pub age: Duration,
    /// `None`: the current PURR. `Some(d)`: replaced `d` ago.
    pub retired: Option<Duration>,
}

struct PurrEntry {
    binding: BindingKey,
    issued_at: Instant,
    /// (replaced at, resolves until, timer generation).
    retired: Option<(Instant, Instant, u64)>,
}

pub(crate) struct PurrTable {
    map: Map<Arc<str>, PurrEntry>,
    /// PURRs of each binding, oldest first; the current one (if any) last.
    by_binding: Map<BindingKey, Vec<Arc<str>>>,
    key: Option<Vec<u8>>,
    retired: usize,
}

impl PurrTable {
    pub fn new(key: Option<Vec<u8>>, hasher: foldhash::fast::FixedState) -> PurrTable {
        PurrTable { map: Map::with_hasher(hasher.clone()), by_binding: Map::with_hasher(hasher), key, retired: 0 }
    }

    fn tag(&self, nonce: &[u8], binding: &str) -> Option<Hmac<Sha256>> {
        let key = self.key.as_ref()?;
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(DOMAIN);
        m.update(nonce);
        m.update(binding.as_bytes());
        Some(m)
    }

    /// Whether `purr` is well-formed for `binding` (the MAC, when keyed).
    fn authentic(&self, purr: &str, binding: &str) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(purr) else { return false };
        match self.tag(raw.get(..NONCE).unwrap_or_default(), binding) {
            None => raw.len() == NONCE,
            Some(m) => raw.len() == NONCE + TAG && m.verify_truncated_left(&raw[NONCE..]).is_ok(),
        }
    }

    fn mint(&self, binding: &str, rng: &mut dyn RandomSource) -> Arc<str> {
        loop {
            let mut raw = vec![0u8; NONCE];
            rng.fill(&mut raw);
            if let Some(m) = self.tag(&raw, binding) {
                raw.extend_from_slice(&m.finalize().into_bytes()[..TAG]);
            }
            let purr: Arc<str> = URL_SAFE_NO_PAD.encode(&raw).into();
            if !self.map.contains_key(&purr) {
                return purr;
            }
        }
    }

    /// The binding's current PURR.
    pub fn current(&self, binding: &str) -> Option<&str> {
        let last = self.by_binding.get(binding)?.last()?;
        self.map.get(last).filter(|e| e.retired.is_none()).map(|_| &**last)
    }

    /// The PURR for a 2xx of `binding` at `now`: the current one, or a new
    /// one if there is none or it is older than `rotation` (R48).
    pub fn issue(
        &mut self,
        binding: &BindingKey,
        now: Instant,
        rotation: Duration,
        horizon: Duration,
        rng: &mut dyn RandomSource,
        timers: &mut Timers,
    ) -> String {
        let last = self.by_binding.get(binding).and_then(|l| l.last()).cloned();
        if let Some(cur) = last
            && let Some(e) = self.map.get(&cur)
            && e.retired.is_none()
        {
            if now.saturating_duration_since(e.issued_at) < rotation {
                return cur.to_string();
            }
            self.retire(&cur, now, now + horizon, timers);
        }
        let purr = self.mint(binding, rng);
        self.map.insert(purr.clone(), PurrEntry { binding: binding.clone(), issued_at: now, retired: None });
        self.by_binding.entry(binding.clone()).or_default().push(purr.clone());
        purr.to_string()
    }

    fn retire(&mut self, purr: &Arc<str>, at: Instant, until: Instant, timers: &mut Timers) {
        let generation = timers.arm(until, TimerKind::Purr(purr.clone()));
        if let Some(e) = self.map.get_mut(purr) {
            if e.retired.is_none() {
                self.retired += 1;
            }
            e.retired = Some((at, until, generation));
        }
    }

    /// The binding a PURR belongs to, if it is ours and still valid.
    pub fn resolve(&self, purr: &str, now: Instant) -> Option<BindingKey> {
        let e = self.map.get(purr)?;
        if e.retired.is_some_and(|(_, until, _)| until <= now) || !self.authentic(purr, &e.binding) {
            return None;
        }
        Some(e.binding.clone())
    }

    /// Drops every PURR of a binding (it is gone, R11).
    pub fn remove_binding(&mut self, binding: &str) {
        for p in self.by_binding.remove(binding).unwrap_or_default() {
            if let Some(e) = self.map.remove(&p)
                && e.retired.is_some()
            {
                self.retired -= 1;
            }
        }
    }

    /// A retired PURR's timer fired.
    pub fn on_timer(&mut self, purr: &Arc<str>, generation: u64) {
        let Some(e) = self.map.get(purr) else { return };
        if e.retired.is_none_or(|(_, _, g)| g != generation) {
            return;
        }
        let binding = e.binding.clone();
        self.map.remove(purr);
        self.retired -= 1;
        if let Some(list) = self.by_binding.get_mut(&binding) {
            list.retain(|p| p != purr);
            if list.is_empty() {
                self.by_binding.remove(&binding);
            }
        }
    }

    /// The binding's PURRs, oldest first, for persistence.
    pub fn records(&self, binding: &str, now: Instant) -> Vec<PurrRecord> {
        let list = self.by_binding.get(binding).map(Vec::as_slice).unwrap_or_default();
        list.iter()
            .filter_map(|p| {
                let e = self.map.get(p)?;
                Some(PurrRecord {
                    purr: p.to_string(),
                    age: now.saturating_duration_since(e.issued_at),
                    retired: e.retired.map(|(at, _, _)| now.saturating_duration_since(at)),
                })
            })
            .collect()
    }

    /// Reinstates persisted PURRs of a binding; skips malformed, forged
    /// (MAC), foreign and expired ones. Returns how many were kept.
    pub fn restore(
        &mut self,
        binding: &BindingKey,
        records: &[PurrRecord],
        now: Instant,
        horizon: Duration,
        timers: &mut Timers,
    ) -> usize {
        self.remove_binding(binding);
        let mut kept = 0;
        let mut current: Option<Arc<str>> = None;
        for r in records {
            if !self.authentic(&r.purr, binding) || r.retired.is_some_and(|d| d >= horizon) {
                continue;
            }
            let purr: Arc<str> = r.purr.as_str().into();
            if self.map.get(&purr).is_some_and(|e| &e.binding != binding) {
                continue;
            }
            let issued_at = now.checked_sub(r.age).unwrap_or(now);
            self.map.insert(purr.clone(), PurrEntry { binding: binding.clone(), issued_at, retired: None });
            let list = self.by_binding.entry(binding.clone()).or_default();
            list.retain(|p| *p != purr);
            list.push(purr.clone());
            match r.retired {
                Some(ago) => self.retire(&purr, now.checked_sub(ago).unwrap_or(now), now + (horizon - ago), timers),
                None => {
                    if let Some(old) = current.replace(purr) {
                        self.retire(&old, now, now + horizon, timers);
                    }
                }
            }
            kept += 1;
        }
        // Keep the current PURR last.
        if let (Some(cur), Some(list)) = (current, self.by_binding.get_mut(binding)) {
            list.retain(|p| *p != cur);
            list.push(cur);
        }
        kept
    }

    pub fn retired_count(&self) -> usize {
        self.retired
    }

    pub fn count(&self, binding: &str) -> usize {
        self.by_binding.get(binding).map_or(0, Vec::len)
    }

    /// How long ago the binding's current PURR (the newest) was issued.
    pub fn current_age(&self, binding: &str, now: Instant) -> Option<Duration> {
        let newest = self.by_binding.get(binding)?.last()?;
        self.map.get(newest).map(|e| now.saturating_duration_since(e.issued_at))
    }

    /// The live timer entries (for heap compaction).
    pub fn live_timers(&self) -> impl Iterator<Item = Entry> + '_ {
        self.map.iter().filter_map(|(p, e)| {
            e.retired.map(|(_, until, generation)| Entry { at: until, generation, kind: TimerKind::Purr(p.clone()) })
        })
    }
}
