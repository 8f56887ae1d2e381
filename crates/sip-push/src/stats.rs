//! Observability: counters ([`Stats`]) and the per-binding view
//! ([`BindingView`]) that `sipwake ctl` shows. Wake latency is not
//! aggregated here: each [`crate::Output::Fork`] carries it, for the core's
//! histogram.

use crate::engine::{Due, PushEngine};
use crate::types::BindingKey;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Counters of one push reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PushCounters {
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    /// The PNS said the token is dead.
    pub rejected: u64,
    /// Never answered: the binding went away, or
    /// [`crate::engine::MAX_PENDING_PER_BINDING`] newer pushes were sent.
    pub unanswered: u64,
}

/// Why parked branches ended without a fork.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EndCounters {
    pub push_failed: u64,
    pub push_rejected: u64,
    pub register_failed: u64,
    pub timeout: u64,
    pub binding_gone: u64,
    pub unknown_binding: u64,
}

/// Monotonic counters since start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub refresh: PushCounters,
    pub initial: PushCounters,
    pub mid_dialog: PushCounters,
    /// Push results for unknown or forgotten push ids.
    pub late_results: u64,
    /// Requests parked.
    pub parked: u64,
    /// Forks after a push and a REGISTER.
    pub woken: u64,
    /// Forks without a push: the core said the device is awake (R44).
    pub skipped_awake: u64,
    /// Forks without a push: registered within `skip_interval` (R44).
    pub skipped_recent: u64,
    pub branches_ended: EndCounters,
    pub requests_done: u64,
    /// Requests done with no fork at all (they get 480).
    pub requests_unreached: u64,
    pub requests_cancelled: u64,
    pub purrs_issued: u64,
    pub purrs_resolved: u64,
    pub purrs_refused: u64,
    pub registrations: u64,
    pub bindings_expired: u64,
    pub bindings_removed: u64,
    pub bindings_invalidated: u64,
}

/// One push binding as the engine sees it (times relative to the `now`
/// the view was taken at, in ms). No PRID: the view may be shown to
/// operators only, but there is no need to spread tokens (R65).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BindingView {
    pub binding: BindingKey,
    pub provider: String,
    pub pnsreg: bool,
    pub expires_in_ms: u64,
    pub registered_ago_ms: Option<u64>,
    /// When the next refresh push goes (`None`: none before expiry).
    pub next_refresh_in_ms: Option<u64>,
    /// Refresh pushes sent since the last registration.
    pub refresh_attempts: u32,
    pub last_push_ago_ms: Option<u64>,
    /// Push failures since the last successful push.
    pub consecutive_failures: u32,
    /// The PNS rejected the token; no pushes until it re-registers.
    pub invalid: bool,
    /// Requests parked on it.
    pub parked: usize,
    /// PURRs that resolve to it (current and replaced).
    pub purrs: usize,
    /// How long ago its current PURR was issued.
    pub purr_age_ms: Option<u64>,
}

/// A request held now while its devices are woken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParkedView {
    pub request: u64,
    pub call_id: String,
    pub method: String,
    /// `initial` or `mid-dialog`.
    pub kind: &'static str,
    pub age_ms: u64,
    /// The bindings it still waits for.
    pub waiting: Vec<String>,
    /// Devices that woke up for it so far.
    pub woken: u32,
}

impl PushEngine {
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Room for `n` more push bindings (start-up: the tables grow once).
    pub fn reserve(&mut self, n: usize) {
        self.bindings.reserve(n);
        self.timers.reserve(n);
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
    /// Whether the engine tracks this binding (it registered push
    /// coordinates the engine pushes): the cheap question, no view built.
    pub fn tracks(&self, key: &str) -> bool {
        self.bindings.contains_key(key)
    }

    pub fn binding_view(&self, key: &str, now: Instant) -> Option<BindingView> {
        let b = self.bindings.get(key)?;
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let timer = b.timer();
        Some(BindingView {
            binding: BindingKey::new(b.key()),
            provider: b.provider().to_owned(),
            pnsreg: b.pnsreg(),
            expires_in_ms: ms(b.expires_at().saturating_duration_since(now)),
            registered_ago_ms: b.registered_at().map(|t| ms(now.saturating_duration_since(t))),
            next_refresh_in_ms: (timer.2 == Due::Refresh).then(|| ms(timer.0.saturating_duration_since(now))),
            refresh_attempts: b.attempt(),
            last_push_ago_ms: b.last_push().map(|t| ms(now.saturating_duration_since(t))),
            consecutive_failures: b.consecutive_failures(),
            invalid: b.invalid(),
            parked: b.parked_len(),
            purrs: self.purrs.count(key),
            purr_age_ms: self.purrs.current_age(key, now).map(ms),
        })
    }

    /// The requests parked now, oldest first (O(n log n): for management only).
    pub fn parked_views(&self, now: Instant) -> Vec<ParkedView> {
        let mut v: Vec<(Instant, ParkedView)> = self
            .requests
            .iter()
            .map(|(r, p)| {
                let view = ParkedView {
                    request: r.0,
                    call_id: p.call_id.clone(),
                    method: p.method.clone(),
                    kind: match p.kind {
                        crate::types::ParkKind::Initial => "initial",
                        crate::types::ParkKind::MidDialog => "mid-dialog",
                    },
                    age_ms: u64::try_from(now.saturating_duration_since(p.parked_at).as_millis()).unwrap_or(u64::MAX),
                    waiting: p
                        .branches
                        .iter()
                        .filter(|b| b.waiting.is_some())
                        .map(|b| b.binding.as_str().to_owned())
                        .collect(),
                    woken: p.woken,
                };
                (p.parked_at, view)
            })
            .collect();
        v.sort_by_key(|(at, view)| (*at, view.request));
        v.into_iter().map(|(_, view)| view).collect()
    }

    /// Every binding's view, sorted by key (O(n log n): for management only).
    pub fn binding_views(&self, now: Instant) -> Vec<BindingView> {
        let mut keys: Vec<&str> = self.bindings.iter().map(|b| b.key()).collect();
        keys.sort_unstable();
        keys.into_iter().filter_map(|k| self.binding_view(k, now)).collect()
    }
}
