//! Per-provider push policy: [`ProviderPolicy`], the optional overrides of
//! the five timing knobs of [`PushConfig`] for one PNS, the effective
//! values the engine uses for a binding of that provider
//! ([`PushConfig::invite_hold_for`] and friends), and their validation.
//!
//! Why per provider: an iOS cold start through APNs (CallKit) can take
//! 10–15 s, an FCM high-priority wake-up of an Android app a few seconds;
//! one global hold is either too short for one or makes callers wait too
//! long for the other (OpenSIPS #2968).
//!
//! Every unset override falls back to the global knob. The overrides obey
//! the same rules as the global knobs; their [`ConfigError`] keys name the
//! TOML key of sipwake's `[push.senders.<provider>]` table, e.g.
//! `senders.apns.invite_hold_secs` (sipwake prints it as
//! `push.senders.apns.invite_hold_secs`), see [`policy_key`].

use crate::config::{ConfigError, MIN_REFRESH_LEAD, PushConfig, TIMER_F};
use std::time::Duration;

/// The longest INVITE hold, global or per provider.
pub(crate) const MAX_INVITE_HOLD: Duration = Duration::from_secs(180);

/// Overrides of the global timing knobs for one provider; `None` = the
/// global value of [`PushConfig`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderPolicy {
    /// Hold of a parked INVITE branch to a binding of this provider.
    pub invite_hold: Option<Duration>,
    /// Hold of a parked non-INVITE branch (below 32 s, R42).
    pub non_invite_hold: Option<Duration>,
    /// Skip the push when the binding registered less than this ago (R44).
    pub skip_interval: Option<Duration>,
    /// First refresh push at expiry − this (≥ 120 s, R8).
    pub refresh_lead: Option<Duration>,
    /// Refresh retries, offsets before expiry, strictly decreasing and
    /// below the effective lead.
    pub refresh_retry_offsets: Option<Vec<Duration>>,
}

impl ProviderPolicy {
    /// Whether any override is set.
    pub fn is_empty(&self) -> bool {
        *self == ProviderPolicy::default()
    }
}

/// The [`ConfigError`] key of the per-provider knob `toml_key` of
/// `provider`: `senders.<provider>.<toml_key>`, the provider quoted as TOML
/// wants when it is not a bare key (e.g. `senders."com.example".…`).
pub fn policy_key(provider: &str, toml_key: &str) -> String {
    let bare = !provider.is_empty() && provider.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
    if bare { format!("senders.{provider}.{toml_key}") } else { format!("senders.{provider:?}.{toml_key}") }
}

impl PushConfig {
    /// The overrides of `provider` (case-insensitive), if configured.
    fn policy(&self, provider: &str) -> Option<&ProviderPolicy> {
        self.provider(provider).map(|p| &p.policy)
    }

    /// The INVITE hold of a branch to a binding of `provider`.
    pub fn invite_hold_for(&self, provider: &str) -> Duration {
        self.policy(provider).and_then(|p| p.invite_hold).unwrap_or(self.invite_hold)
    }

    /// The non-INVITE hold of a branch to a binding of `provider`.
    pub fn non_invite_hold_for(&self, provider: &str) -> Duration {
        self.policy(provider).and_then(|p| p.non_invite_hold).unwrap_or(self.non_invite_hold)
    }

    /// The hold of a branch to a binding of `provider` for an INVITE
    /// (`invite`) or any other method.
    pub fn branch_hold_for(&self, provider: &str, invite: bool) -> Duration {
        if invite { self.invite_hold_for(provider) } else { self.non_invite_hold_for(provider) }
    }

    /// The skip interval (R44) of bindings of `provider`.
    pub fn skip_interval_for(&self, provider: &str) -> Duration {
        self.policy(provider).and_then(|p| p.skip_interval).unwrap_or(self.skip_interval)
    }

    /// The refresh lead (R8) of bindings of `provider`.
    pub fn refresh_lead_for(&self, provider: &str) -> Duration {
        self.policy(provider).and_then(|p| p.refresh_lead).unwrap_or(self.refresh_lead)
    }

    /// The refresh retry offsets of bindings of `provider`.
    pub fn refresh_retry_offsets_for(&self, provider: &str) -> &[Duration] {
        self.policy(provider).and_then(|p| p.refresh_retry_offsets.as_deref()).unwrap_or(&self.refresh_retry_offsets)
    }

    /// The errors of every provider's overrides, appended to `errs`.
    pub(crate) fn validate_policies(&self, errs: &mut Vec<ConfigError>) {
        for p in &self.providers {
            let pol = &p.policy;
            let mut err = |toml_key: &str, message: String| {
                errs.push(ConfigError { key: policy_key(&p.name, toml_key), message });
            };
            let lead = pol.refresh_lead.unwrap_or(self.refresh_lead);
            if pol.refresh_lead.is_some_and(|l| l < MIN_REFRESH_LEAD) {
                err("refresh_lead_secs", "must be at least 120 s (RFC 8599 §5.5)".into());
            }
            match &pol.refresh_retry_offsets {
                Some(offs) => {
                    if offs.iter().any(|o| o.is_zero() || *o >= lead) {
                        let l = lead.as_secs();
                        err(
                            "refresh_retries_secs",
                            format!("every offset must be above 0 and below the refresh lead ({l} s)"),
                        );
                    }
                    if offs.windows(2).any(|w| w[0] <= w[1]) {
                        err("refresh_retries_secs", "offsets must be strictly decreasing".into());
                    }
                }
                None if pol.refresh_lead.is_some() && self.refresh_retry_offsets.iter().any(|o| *o >= lead) => {
                    err(
                        "refresh_lead_secs",
                        "must be above every global refresh retry offset it inherits (or set refresh_retries_secs)"
                            .into(),
                    );
                }
                None => {}
            }
            if pol.invite_hold.is_some_and(|h| h.is_zero() || h > MAX_INVITE_HOLD) {
                err("invite_hold_secs", "must be above 0 and at most 180 s".into());
            }
            if pol.non_invite_hold.is_some_and(|h| h.is_zero() || h >= TIMER_F) {
                err("non_invite_hold_secs", "must be above 0 and below 32 s, the sender's Timer F (RFC 4320)".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_quote_names_that_are_not_bare_toml_keys() {
        assert_eq!(policy_key("apns", "invite_hold_secs"), "senders.apns.invite_hold_secs");
        assert_eq!(policy_key("com.example", "x"), "senders.\"com.example\".x");
    }
}
