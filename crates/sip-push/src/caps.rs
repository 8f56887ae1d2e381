//! Feature-Caps fc-values (RFC 6809 §6.2.1, RFC 8599 §8.2–8.6).
//!
//! * Every fc-value starts with `*` (F1; OpenSIPS forgets it, §6.6.1).
//! * One fc-value per PNS type (R5); that type's extra indicators go into
//!   the same fc-value (R6) and never appear without `+sip.pns` (R7).
//! * Order inside an fc-value: `+sip.pns`, `+sip.vapid`, `+sip.pnsreg`,
//!   `+sip.pnspurr`; values quoted.
//! * `+sip.vapid` only for providers configured with a key (R22/R23, R31).
//! * `+sip.pnsreg` only when the Contact carried the tag (R24, §6.6.2).
//! * `+sip.pnspurr` on every 2xx of a push binding when PURR is on (R51).
//! * Several Contacts of one type in one REGISTER: one fc-value, the first
//!   PURR wins (§6.5).

use crate::classify::Classification;
use crate::config::PushConfig;

/// Builds the Feature-Caps of one REGISTER 2xx (or, with
/// [`FeatureCaps::request_values`], of the REGISTER a mid-registrar
/// forwards: `+sip.pns` only, R19/R25/R29, §6.12).
#[derive(Clone, Debug, Default)]
pub struct FeatureCaps {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug)]
struct Entry {
    provider: String,
    vapid: Option<String>,
    pnsreg: Option<u32>,
    purr: Option<String>,
}

impl FeatureCaps {
    pub fn new() -> FeatureCaps {
        FeatureCaps::default()
    }

    /// Adds what one Contact's classification advertises. `purr`: the
    /// binding's current PURR ([`crate::PushEngine::purr_for`]), used for
    /// push bindings only.
    pub fn add(&mut self, cfg: &PushConfig, class: &Classification, purr: Option<&str>) {
        match class {
            Classification::Push { info, pnsreg } => {
                let e = self.entry(cfg, &info.provider);
                if *pnsreg && cfg.pnsreg_interval > 0 {
                    e.pnsreg = Some(cfg.pnsreg_interval);
                }
                if cfg.purr
                    && e.purr.is_none()
                    && let Some(p) = purr
                {
                    e.purr = Some(p.to_string());
                }
            }
            Classification::Query { providers } => {
                for p in providers {
                    self.entry(cfg, p);
                }
            }
            _ => {}
        }
    }

    fn entry(&mut self, cfg: &PushConfig, provider: &str) -> &mut Entry {
        let pos = match self.entries.iter().position(|e| e.provider.eq_ignore_ascii_case(provider)) {
            Some(i) => i,
            None => {
                let vapid = cfg.provider(provider).and_then(|p| p.vapid.clone());
                self.entries.push(Entry { provider: provider.to_string(), vapid, pnsreg: None, purr: None });
                self.entries.len() - 1
            }
        };
        &mut self.entries[pos]
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The fc-values for the 2xx, one per PNS type: send each as its own
    /// `Feature-Caps` header field (or join them with `", "`).
    pub fn values(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|e| {
                let mut s = format!("*;+sip.pns=\"{}\"", e.provider);
                if let Some(v) = &e.vapid {
                    s.push_str(&format!(";+sip.vapid=\"{v}\""));
                }
                if let Some(n) = e.pnsreg {
                    s.push_str(&format!(";+sip.pnsreg=\"{n}\""));
                }
                if let Some(p) = &e.purr {
                    s.push_str(&format!(";+sip.pnspurr=\"{p}\""));
                }
                s
            })
            .collect()
    }

    /// The fc-values a mid-registrar adds (topmost, F2) to the REGISTER it
    /// forwards: `+sip.pns` only (vapid, pnsreg and pnspurr are
    /// response-only, R61).
    pub fn request_values(&self) -> Vec<String> {
        self.entries.iter().map(|e| format!("*;+sip.pns=\"{}\"", e.provider)).collect()
    }
}
