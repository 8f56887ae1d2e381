//! REGISTER classification (RFC 8599 §5.6.1, flows §4.1/§4.2): what one
//! Contact of a REGISTER asks for, decided in the RFC's order: plain →
//! removal → handled upstream (R13) → unsupported (R14/R15) → query
//! (R25–R30) → missing information (R14) → too short (R16–R18) → push.
//!
//! Pure functions of the configuration and a [`ContactInfo`]; the engine's
//! [`crate::PushEngine::classify`] calls [`classify`].

use crate::config::{ParamRule, PushConfig};
use crate::types::PnInfo;
use sip_msg::{NameAddr, PnParams};

/// What the classifier needs to know about one Contact of a REGISTER.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactInfo {
    /// The Contact URI's parameters, values percent-decoded (R62);
    /// `None` = present without a value (`;pn-provider`).
    pub uri_params: Vec<(String, Option<String>)>,
    /// The Contact header field carries the `+sip.pnsreg` media feature
    /// tag (outside the `<>`; the `sip.pnsreq` typo is accepted, §6.1).
    pub pnsreg_tag: bool,
    /// The expiry the registrar grants, seconds (after its own clamping;
    /// for a mid-registrar, the one the upstream 2xx granted, R20).
    pub expires: u32,
    /// PNS types some proxy closer to the UA already handles: the
    /// `+sip.pns` values of the REGISTER's Feature-Caps (R13, R26). See
    /// [`upstream_pns`].
    pub upstream_pns: Vec<String>,
}

impl ContactInfo {
    /// A Contact without parameters, for `expires` seconds.
    pub fn new(expires: u32) -> ContactInfo {
        ContactInfo { expires, ..ContactInfo::default() }
    }

    /// Adds a URI parameter (builder).
    pub fn param(mut self, name: &str, value: Option<&str>) -> ContactInfo {
        self.uri_params.push((name.to_string(), value.map(str::to_string)));
        self
    }

    /// Sets the `+sip.pnsreg` tag (builder).
    pub fn pnsreg(mut self, tag: bool) -> ContactInfo {
        self.pnsreg_tag = tag;
        self
    }

    /// Sets the upstream-handled PNS types (builder).
    pub fn upstream(mut self, pns: Vec<String>) -> ContactInfo {
        self.upstream_pns = pns;
        self
    }

    /// From a parsed Contact of a REGISTER. Parameters are decoded by
    /// `sip_msg::pn`, the reader the registrar's bindings use too.
    pub fn from_name_addr(na: &NameAddr, expires: u32, upstream_pns: &[String]) -> ContactInfo {
        let uri_params = na.uri.as_sip().map(|u| sip_msg::pn::decode_all(&u.params)).unwrap_or_default();
        ContactInfo {
            uri_params,
            pnsreg_tag: na.params.contains("+sip.pnsreg") || na.params.contains("+sip.pnsreq"),
            expires,
            upstream_pns: upstream_pns.to_vec(),
        }
    }

    /// `None`: absent; `Some(None)`: present without value (or empty).
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        sip_msg::pn::find(&self.uri_params, name)
    }

    /// The RFC 8599 push parameters (`pn-provider`, `pn-prid`, `pn-param`).
    pub fn pn(&self) -> PnParams {
        PnParams::from_decoded(&self.uri_params)
    }
}

/// The `+sip.pns` values of a request's Feature-Caps header values (each
/// may hold several comma-separated fc-values). Lenient: a missing leading
/// `*` (as OpenSIPS sends) is accepted.
pub fn upstream_pns<'a, I: IntoIterator<Item = &'a [u8]>>(feature_caps: I) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in feature_caps {
        for fc in split_unquoted(value, b',') {
            for cap in split_unquoted(fc, b';') {
                let cap = sip_msg::chars::trim(cap);
                let Some(eq) = cap.iter().position(|&c| c == b'=') else { continue };
                if !sip_msg::chars::trim(&cap[..eq]).eq_ignore_ascii_case(b"+sip.pns") {
                    continue;
                }
                let v = String::from_utf8_lossy(&sip_msg::params::unquote(&cap[eq + 1..])).into_owned();
                if !v.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(&v)) {
                    out.push(v);
                }
            }
        }
    }
    out
}

/// Splits at `sep` outside double quotes.
fn split_unquoted(s: &[u8], sep: u8) -> Vec<&[u8]> {
    let (mut parts, mut start, mut quoted, mut i) = (Vec::new(), 0, false, 0);
    while i < s.len() {
        match s[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&s[start.min(s.len())..]);
    parts
}

/// What a Contact of a REGISTER asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classification {
    /// No `pn-provider` (or push disabled): normal registration, no
    /// Feature-Caps (R12).
    Plain,
    /// Expiry 0 of a `pn-provider` Contact: a removal; no Feature-Caps
    /// (a removed binding has nothing to advertise, F4), and the core calls
    /// [`crate::PushEngine::handle_removed`] for the removed binding (R11).
    Removal,
    /// A proxy closer to the UA already handles this PNS (R13, R26):
    /// normal, no Feature-Caps of ours, never pushed.
    Upstream { provider: String },
    /// `pn-provider` without `pn-prid` (R25, R29): normal binding, never
    /// pushed (R10); the 2xx lists these providers (R30, R31). An empty
    /// list: everything we support is handled upstream already.
    Query { providers: Vec<String> },
    /// A push binding.
    Push {
        info: PnInfo,
        /// The Contact had `+sip.pnsreg` and we advertise an interval:
        /// the UA refreshes by itself, the push is a fallback (R9, R24).
        pnsreg: bool,
    },
    /// A PNS we do not support: normal without Feature-Caps (R14), or 555
    /// with `reply_555` (R15, R27, R28).
    Unsupported { provider: String },
    /// A required parameter is missing or empty (R14): normal, no
    /// Feature-Caps, never pushed; or 555 with `reply_555` (R15).
    MissingInfo { provider: String, missing: String },
    /// The expiry is at most the lead time (R17) or below policy (R18):
    /// 423 with `Min-Expires` (R16, S1). For a mid-registrar looking at the
    /// upstream's 2xx: relay it without PN indicators (R20).
    TooShort { provider: String, min_expires: u32 },
}

/// A REGISTER the engine's rules reject before the registrar sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// `555 Push Notification Service Not Supported` (RFC 8599 §8.1).
    PnsNotSupported,
    /// `423 Interval Too Brief` with `Min-Expires`.
    IntervalTooBrief { min_expires: u32 },
}

impl Rejection {
    pub fn status(&self) -> u16 {
        match self {
            Rejection::PnsNotSupported => 555,
            Rejection::IntervalTooBrief { .. } => 423,
        }
    }
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::PnsNotSupported => "Push Notification Service Not Supported",
            Rejection::IntervalTooBrief { .. } => "Interval Too Brief",
        }
    }
    /// The `Min-Expires` header value of a 423.
    pub fn min_expires(&self) -> Option<u32> {
        match self {
            Rejection::IntervalTooBrief { min_expires } => Some(*min_expires),
            Rejection::PnsNotSupported => None,
        }
    }
}

impl Classification {
    /// Whether the REGISTER must be answered with an error instead of being
    /// processed. Everything else proceeds normally.
    pub fn rejection(&self, cfg: &PushConfig) -> Option<Rejection> {
        match self {
            // R15: 555 instead of a plain binding, for an unsupported PNS
            // and for a supported one whose required information is missing
            // (R14 lists both); without `reply_555` both register normally.
            Classification::Unsupported { .. } | Classification::MissingInfo { .. } if cfg.reply_555 => {
                Some(Rejection::PnsNotSupported)
            }
            Classification::TooShort { min_expires, .. } => {
                Some(Rejection::IntervalTooBrief { min_expires: *min_expires })
            }
            _ => None,
        }
    }

    /// The push coordinates when this is a push binding.
    pub fn pn_info(&self) -> Option<&PnInfo> {
        match self {
            Classification::Push { info, .. } => Some(info),
            _ => None,
        }
    }

    pub fn is_push(&self) -> bool {
        matches!(self, Classification::Push { .. })
    }
}

/// The smallest expiry a push binding may have: above the lead (R17),
/// above the advertised pnsreg interval for self-refreshing UAs, and at
/// least the policy minimum (R18). With the global lead; a binding of a
/// provider with its own lead: [`min_push_expires_for`].
pub fn min_push_expires(cfg: &PushConfig, pnsreg: bool) -> u32 {
    min_expires_with_lead(cfg, cfg.refresh_lead, pnsreg)
}

/// [`min_push_expires`] for a binding of `provider` (its effective lead).
pub fn min_push_expires_for(cfg: &PushConfig, provider: &str, pnsreg: bool) -> u32 {
    min_expires_with_lead(cfg, cfg.refresh_lead_for(provider), pnsreg)
}

fn min_expires_with_lead(cfg: &PushConfig, lead: std::time::Duration, pnsreg: bool) -> u32 {
    let lead = u32::try_from(lead.as_secs()).unwrap_or(u32::MAX);
    let mut min = lead.saturating_add(1).max(cfg.min_push_expires);
    if pnsreg {
        min = min.max(cfg.pnsreg_interval.saturating_add(1));
    }
    min
}

/// Classifies one Contact of a REGISTER. See the module docs for the order.
pub fn classify(cfg: &PushConfig, c: &ContactInfo) -> Classification {
    let pn = c.pn();
    let Some(provider) = pn.provider.as_ref().map(Option::as_deref).filter(|_| cfg.enable) else {
        return Classification::Plain;
    };
    if c.expires == 0 {
        return Classification::Removal;
    }
    let upstream = |p: &str| c.upstream_pns.iter().any(|u| u.eq_ignore_ascii_case(p));
    let Some(provider) = provider else {
        // `;pn-provider` without a value: every type we support (R29).
        let providers = cfg.providers.iter().filter(|p| !upstream(&p.name)).map(|p| p.name.clone()).collect();
        return Classification::Query { providers };
    };
    if upstream(provider) {
        return Classification::Upstream { provider: provider.to_string() };
    }
    let Some(pc) = cfg.provider(provider) else {
        return Classification::Unsupported { provider: provider.to_string() };
    };
    let name = pc.name.clone();
    let prid = match &pn.prid {
        None => return Classification::Query { providers: vec![name] },
        Some(None) => return Classification::MissingInfo { provider: name, missing: sip_msg::pn::PN_PRID.into() },
        Some(Some(p)) => p.clone(),
    };
    let rule = cfg.param_rule(pc);
    for m in &cfg.ct_match_params {
        let is_param = m.eq_ignore_ascii_case("pn-param");
        let needed = if is_param { rule == ParamRule::Required } else { true };
        if needed && c.get(m).flatten().is_none() {
            return Classification::MissingInfo { provider: name, missing: m.clone() };
        }
    }
    let param = match rule {
        ParamRule::Ignored => None,
        _ => pn.param().map(str::to_string),
    };
    let pnsreg = c.pnsreg_tag && cfg.pnsreg_interval > 0;
    let min = min_push_expires_for(cfg, &name, pnsreg);
    if c.expires < min {
        return Classification::TooShort { provider: name, min_expires: min };
    }
    Classification::Push { info: PnInfo { provider: name, prid, param }, pnsreg }
}
