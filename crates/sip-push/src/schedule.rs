//! When refresh pushes go (R8–R11, OpenSIPS #2873): a list of offsets
//! before expiry, the first one the lead (≥ 120 s) and the rest retries
//! while the binding is not refreshed. With the defaults: expiry − 120,
//! − 60, − 30, − 15 s.
//!
//! * A binding with the `+sip.pnsreg` tag refreshes itself before expiry −
//!   `pnsreg_interval`; its first push is the RFC's fallback at expiry −
//!   120 s (R9), then the retries below 120 s.
//! * Never at or after expiry, never in the past: an overdue first push
//!   (restore after downtime) goes at `not_before`, i.e. at once; a fresh
//!   registration's first push is never sooner than [`MIN_GAP`] after it.
//! * Lead and retries are those of the binding's provider when it has its
//!   own ([`crate::ProviderPolicy`]), else the global ones.
//! * Retries are never closer than [`MIN_GAP`] to the previous push; retry
//!   points already passed are skipped.

use crate::config::{MIN_REFRESH_LEAD, PushConfig};
use std::time::{Duration, Instant};

/// Minimum time between a REGISTER and its first refresh push, and between
/// two refresh pushes of one binding.
pub const MIN_GAP: Duration = Duration::from_secs(5);

/// The offsets of both kinds of binding, computed once from the config:
/// the global ones and those of each provider with its own lead or
/// retries ([`crate::ProviderPolicy`]).
#[derive(Clone, Debug)]
pub(crate) struct RefreshPlan {
    global: Offsets,
    /// Providers whose lead or retries differ from the global ones.
    providers: Vec<(String, Offsets)>,
}

#[derive(Clone, Debug)]
struct Offsets {
    normal: Vec<Duration>,
    pnsreg: Vec<Duration>,
}

impl Offsets {
    fn new(lead: Duration, retry_offsets: &[Duration]) -> Offsets {
        let retries = |below: Duration| retry_offsets.iter().copied().filter(move |o| *o < below);
        Offsets {
            normal: std::iter::once(lead).chain(retries(lead)).collect(),
            pnsreg: std::iter::once(MIN_REFRESH_LEAD).chain(retries(MIN_REFRESH_LEAD)).collect(),
        }
    }
}

impl RefreshPlan {
    pub fn new(cfg: &PushConfig) -> RefreshPlan {
        let providers = cfg
            .providers
            .iter()
            .filter(|p| p.policy.refresh_lead.is_some() || p.policy.refresh_retry_offsets.is_some())
            .map(|p| {
                let offsets = Offsets::new(cfg.refresh_lead_for(&p.name), cfg.refresh_retry_offsets_for(&p.name));
                (p.name.clone(), offsets)
            })
            .collect();
        RefreshPlan { global: Offsets::new(cfg.refresh_lead, &cfg.refresh_retry_offsets), providers }
    }

    /// The next refresh push of a binding of `provider` expiring at
    /// `expires_at` that has had `sent` refresh pushes in this cycle, not
    /// before `not_before`; `None`: no more pushes, let it expire.
    pub fn next(
        &self,
        provider: &str,
        expires_at: Instant,
        pnsreg: bool,
        sent: u32,
        not_before: Instant,
    ) -> Option<Instant> {
        let o = self.providers.iter().find(|(n, _)| n.eq_ignore_ascii_case(provider)).map_or(&self.global, |(_, o)| o);
        let offsets = if pnsreg { &o.pnsreg } else { &o.normal };
        if sent == 0 {
            let p = expires_at.checked_sub(offsets[0]).map_or(not_before, |p| p.max(not_before));
            return (p < expires_at).then_some(p);
        }
        offsets[1..].iter().filter_map(|o| expires_at.checked_sub(*o)).find(|p| *p >= not_before && *p < expires_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RefreshPlan {
        RefreshPlan::new(&PushConfig::with_providers(["apns"]))
    }

    #[test]
    fn points_of_a_normal_and_a_pnsreg_binding() {
        let t0 = Instant::now();
        let e = t0 + Duration::from_secs(3600);
        let p = plan();
        let s = |t: Option<Instant>| t.map(|t| (t - t0).as_secs());
        assert_eq!(s(p.next("apns", e, false, 0, t0)), Some(3480));
        assert_eq!(s(p.next("apns", e, false, 1, t0 + Duration::from_secs(3485))), Some(3540));
        assert_eq!(s(p.next("apns", e, false, 2, t0 + Duration::from_secs(3545))), Some(3570));
        assert_eq!(s(p.next("apns", e, false, 3, t0 + Duration::from_secs(3575))), Some(3585));
        assert_eq!(s(p.next("apns", e, false, 4, t0 + Duration::from_secs(3590))), None, "never at or after expiry");
        assert_eq!(s(p.next("apns", e, true, 0, t0)), Some(3480));
    }

    #[test]
    fn overdue_first_point_goes_at_not_before_and_never_past_expiry() {
        let t0 = Instant::now();
        let e = t0 + Duration::from_secs(50);
        assert_eq!(plan().next("apns", e, false, 0, t0), Some(t0));
        assert_eq!(plan().next("apns", e, false, 0, e), None);
    }
}
