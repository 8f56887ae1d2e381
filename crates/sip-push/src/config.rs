//! [`PushConfig`]: every knob of the engine, with OpenSIPS's names and
//! defaults where OpenSIPS has the knob, and [`PushConfig::validate`].
//!
//! | Knob | OpenSIPS | Default |
//! |---|---|---|
//! | `enable` | `pn_enable` | false |
//! | `purr` | `pn_enable_purr` | false |
//! | `providers` | `pn_providers` | none (required when enabled) |
//! | `ct_match_params` | `pn_ct_match_params` | `pn-provider, pn-prid, pn-param` |
//! | `pnsreg_interval` | `pn_pnsreg_interval` | 130 s (0 = never advertise) |
//! | `refresh_lead` | `pn_trigger_interval` | 120 s (never below 120) |
//! | `refresh_retry_offsets` | – (OpenSIPS pushes once, #2873) | 60, 30, 15 s before expiry |
//! | `skip_interval` | `pn_skip_pn_interval` | 0 (always push) |
//! | `invite_hold` | `pn_refresh_timeout` (6 s, one bucket for all) | 30 s |
//! | `non_invite_hold` | same | 10 s (must be < 32 s, R42) |
//! | `reply_555` | – (OpenSIPS always 555) | false (R14 SHOULD) |
//! | `min_push_expires` | – | 180 s |
//! | `purr_rotation` / `purr_horizon` / `purr_key` | – | 12 h / 24 h / none |
//!
//! Per provider: `invite_hold`, `non_invite_hold`, `skip_interval`,
//! `refresh_lead` and `refresh_retry_offsets` can be overridden in
//! [`ProviderConfig::policy`] ([`ProviderPolicy`]); unset ones fall back to
//! the global knob above. The engine always uses the effective value of a
//! binding's provider ([`PushConfig::invite_hold_for`] etc.): a request
//! parked on an APNs and an FCM binding holds each branch as long as its
//! provider says. Overrides obey the same rules; their errors are keyed
//! `senders.<provider>.<knob>_secs` (see [`crate::policy`]).
//!
//! Why these hold times: the RFC measured about 2 s from push to REGISTER,
//! but iOS cold starts plus APNs latency reach 10–15 s, and OpenSIPS's 6 s
//! is a known complaint. An INVITE has no transaction deadline upstream
//! (Timer C is 3 minutes), so 30 s bounds only how long a caller hears
//! nothing. A non-INVITE must get its 480 before the sender's Timer F
//! (64·T1 = 32 s, RFC 4320) *and* leave time for the woken device to
//! answer the forked request, so 10 s.
//!
//! Why `min_push_expires` = 180 s: RFC 8599 only requires expiry > lead
//! (R17), but a binding of 121 s gets its first refresh push one second
//! after registering, a push loop. 180 s leaves at least a minute between
//! a REGISTER and its refresh push, and still accepts the usual 300 s.

use crate::policy::{MAX_INVITE_HOLD, ProviderPolicy};
use std::fmt;
use std::time::Duration;

/// RFC 8599 §5.5: the refresh push goes at least 120 s before expiry; and
/// the fallback push of a `+sip.pnsreg` binding goes at expiry − 120 s (R9).
pub const MIN_REFRESH_LEAD: Duration = Duration::from_secs(120);

/// Non-INVITE client transactions give up after Timer F = 64·T1 = 32 s.
pub const TIMER_F: Duration = Duration::from_secs(32);

/// Whether `pn-param` is needed for a provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamRule {
    /// A Contact without `pn-param` is "missing information" (R14): apns, fcm.
    Required,
    /// Used when present, not needed.
    Optional,
    /// Never used, even when present (webpush, R63).
    Ignored,
}

/// One supported PNS type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderConfig {
    /// The `pn-provider` value (compared case-insensitively), e.g. `apns`.
    pub name: String,
    /// `None`: `Ignored` for webpush, else `Required` when `pn-param` is in
    /// `ct_match_params`, else `Optional`.
    pub param: Option<ParamRule>,
    /// Our VAPID public key (base64url, no padding) when this PNS supports
    /// VAPID (R22/R23): advertised as `+sip.vapid`.
    pub vapid: Option<String>,
    /// Overrides of the global timing knobs for this provider (holds, skip
    /// interval, refresh lead and retries); default: none.
    pub policy: ProviderPolicy,
}

impl ProviderConfig {
    pub fn new(name: impl Into<String>) -> ProviderConfig {
        ProviderConfig { name: name.into(), param: None, vapid: None, policy: ProviderPolicy::default() }
    }
    pub fn with_param(mut self, rule: ParamRule) -> ProviderConfig {
        self.param = Some(rule);
        self
    }
    pub fn with_vapid(mut self, key: impl Into<String>) -> ProviderConfig {
        self.vapid = Some(key.into());
        self
    }
    /// Sets the per-provider overrides (see [`ProviderPolicy`]).
    pub fn with_policy(mut self, policy: ProviderPolicy) -> ProviderConfig {
        self.policy = policy;
        self
    }
}

/// The engine's configuration. See the module docs for defaults.
#[derive(Clone, PartialEq, Eq)]
pub struct PushConfig {
    /// Master switch: when off every Contact classifies as plain.
    pub enable: bool,
    /// Hand out PURRs (`+sip.pnspurr`) and allow mid-dialog wake-ups (§6).
    pub purr: bool,
    pub providers: Vec<ProviderConfig>,
    /// URI parameters a Contact needs to be a push binding (and that the
    /// registrar compares, R3). Must contain `pn-provider` and `pn-prid`;
    /// `pn-param` follows each provider's [`ParamRule`].
    pub ct_match_params: Vec<String>,
    /// `+sip.pnsreg="N"` sent to UAs that carry the `+sip.pnsreg` tag
    /// (R24); 0 = never advertise (always wake by push). Else > 120.
    pub pnsreg_interval: u32,
    /// First refresh push at expiry − this (R8). At least 120 s.
    pub refresh_lead: Duration,
    /// Retries of the refresh push while the binding is not refreshed, as
    /// offsets before expiry, strictly decreasing and below the lead.
    pub refresh_retry_offsets: Vec<Duration>,
    /// Bindings registered less than this ago are woken without a push (R44).
    pub skip_interval: Duration,
    /// How long a parked INVITE waits for its devices (Bucket Timer, R41).
    pub invite_hold: Duration,
    /// How long a parked non-INVITE waits (R42: well under 32 s).
    pub non_invite_hold: Duration,
    /// Answer 555 to REGISTERs naming an unsupported PNS (R15/R27), or a
    /// supported one without the information it requires (R15: empty
    /// `pn-prid`, APNs without `pn-param`); only when no other proxy on the
    /// path could support it. Off: both register as plain bindings (R14).
    pub reply_555: bool,
    /// Policy floor for the expiry of a push binding (R18), seconds.
    pub min_push_expires: u32,
    /// A binding gets a new PURR at its first 2xx after this (R48).
    pub purr_rotation: Duration,
    /// How long a replaced PURR keeps resolving: the longest dialog (R49).
    pub purr_horizon: Duration,
    /// MAC key: PURRs carry an HMAC-SHA256 tag, so that they stay
    /// unforgeable even with a weak RNG, and restored PURR records are
    /// checked (≥ 16 bytes). `None`: plain 128-bit random PURRs.
    pub purr_key: Option<Vec<u8>>,
    /// RFC 8599 §13 (R64): push coordinates are secrets; a REGISTER that
    /// carries them over a transport without TLS (UDP, TCP, WS) is refused
    /// (403) instead of registered.
    pub require_secure_transport: bool,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            enable: false,
            purr: false,
            providers: Vec::new(),
            ct_match_params: ["pn-provider", "pn-prid", "pn-param"].map(String::from).to_vec(),
            pnsreg_interval: 130,
            refresh_lead: MIN_REFRESH_LEAD,
            refresh_retry_offsets: [60, 30, 15].map(Duration::from_secs).to_vec(),
            skip_interval: Duration::ZERO,
            invite_hold: Duration::from_secs(30),
            non_invite_hold: Duration::from_secs(10),
            reply_555: false,
            min_push_expires: 180,
            purr_rotation: Duration::from_secs(12 * 3600),
            purr_horizon: Duration::from_secs(24 * 3600),
            purr_key: None,
            require_secure_transport: false,
        }
    }
}

impl fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushConfig")
            .field("enable", &self.enable)
            .field("purr", &self.purr)
            .field("providers", &self.providers)
            .field("ct_match_params", &self.ct_match_params)
            .field("pnsreg_interval", &self.pnsreg_interval)
            .field("refresh_lead", &self.refresh_lead)
            .field("refresh_retry_offsets", &self.refresh_retry_offsets)
            .field("skip_interval", &self.skip_interval)
            .field("invite_hold", &self.invite_hold)
            .field("non_invite_hold", &self.non_invite_hold)
            .field("reply_555", &self.reply_555)
            .field("min_push_expires", &self.min_push_expires)
            .field("purr_rotation", &self.purr_rotation)
            .field("purr_horizon", &self.purr_horizon)
            .field("purr_key", &self.purr_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A configuration error, naming the offending key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// RFC 3840 token-nobang: what `+sip.pns`/`+sip.vapid` values must be.
pub(crate) fn is_token_nobang(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"-.%*_+`'~".contains(&c))
}

impl PushConfig {
    /// Enabled, with these providers and every other knob at its default.
    pub fn with_providers<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> PushConfig {
        PushConfig {
            enable: true,
            providers: names.into_iter().map(ProviderConfig::new).collect(),
            ..PushConfig::default()
        }
    }

    /// The configured provider named `name` (case-insensitive).
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The effective `pn-param` rule of a provider.
    pub fn param_rule(&self, p: &ProviderConfig) -> ParamRule {
        p.param.unwrap_or(if p.name.eq_ignore_ascii_case("webpush") {
            ParamRule::Ignored
        } else if self.ct_match_params.iter().any(|m| m.eq_ignore_ascii_case("pn-param")) {
            ParamRule::Required
        } else {
            ParamRule::Optional
        })
    }

    /// The global hold time (Bucket Timer) of a request; a branch to a
    /// binding uses its provider's, [`PushConfig::branch_hold_for`].
    pub fn hold_for(&self, invite: bool) -> Duration {
        if invite { self.invite_hold } else { self.non_invite_hold }
    }

    /// Every error of the configuration (empty = valid).
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errs = Vec::new();
        let mut err = |key: &str, message: String| errs.push(ConfigError { key: key.to_string(), message });
        if self.enable && self.providers.is_empty() {
            err("providers", "at least one provider is required when push is enabled".into());
        }
        for (i, p) in self.providers.iter().enumerate() {
            if !is_token_nobang(&p.name) {
                err("providers", format!("provider name {:?} is not a token (RFC 3840 token-nobang)", p.name));
            }
            // The engine keeps a binding's provider name with a one-byte length.
            if p.name.len() > 255 {
                err("providers", format!("provider name {:?} is longer than 255 bytes", p.name));
            }
            if self.providers[..i].iter().any(|q| q.name.eq_ignore_ascii_case(&p.name)) {
                err("providers", format!("provider {:?} is listed twice", p.name));
            }
            if let Some(v) = &p.vapid
                && !is_token_nobang(v)
            {
                err("providers.vapid", format!("VAPID key of {:?} must be base64url without padding", p.name));
            }
        }
        for m in ["pn-provider", "pn-prid"] {
            if !self.ct_match_params.iter().any(|x| x.eq_ignore_ascii_case(m)) {
                err("ct_match_params", format!("must contain {m}"));
            }
        }
        if self.ct_match_params.iter().any(|m| m.is_empty() || !sip_msg::chars::all_token(m.as_bytes())) {
            err("ct_match_params", "parameter names must be non-empty tokens".into());
        }
        if self.pnsreg_interval != 0 && self.pnsreg_interval <= 120 {
            err("pnsreg_interval", "must be 0 (never advertise) or more than 120 s (RFC 8599 §5.6.1.1)".into());
        }
        if self.refresh_lead < MIN_REFRESH_LEAD {
            err("refresh_lead", "must be at least 120 s (RFC 8599 §5.5)".into());
        }
        let offs = &self.refresh_retry_offsets;
        if offs.iter().any(|o| o.is_zero() || *o >= self.refresh_lead) {
            err("refresh_retry_offsets", "every offset must be above 0 and below refresh_lead".into());
        }
        if offs.windows(2).any(|w| w[0] <= w[1]) {
            err("refresh_retry_offsets", "offsets must be strictly decreasing".into());
        }
        if self.invite_hold.is_zero() || self.invite_hold > MAX_INVITE_HOLD {
            err("invite_hold", "must be above 0 and at most 180 s".into());
        }
        if self.non_invite_hold.is_zero() || self.non_invite_hold >= TIMER_F {
            err("non_invite_hold", "must be above 0 and below 32 s, the sender's Timer F (RFC 4320)".into());
        }
        if self.purr && self.purr_rotation.is_zero() {
            err("purr_rotation", "must be above 0".into());
        }
        if self.purr && self.purr_horizon.is_zero() {
            err("purr_horizon", "must be above 0".into());
        }
        if self.purr_key.as_ref().is_some_and(|k| k.len() < 16) {
            err("purr_key", "must be at least 16 bytes".into());
        }
        self.validate_policies(&mut errs);
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }
}
