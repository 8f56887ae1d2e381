//! The push service of the server: the sans-IO `sip_push::PushEngine`
//! behind a lock, its REGISTER-side hooks (classification, 555/423,
//! Feature-Caps, binding updates), and the senders that deliver its pushes.
//!
//! Owns the engine's lock and the mapping of configuration onto the
//! engine. The core carries out the engine's outputs (forks, releases) on
//! its proxy contexts; this module must not touch them.

use crate::config::PushSection;
use sip_msg::{Contact, HeaderName, Message};
use sip_push::{BindingKey, Classification, ContactInfo, PushConfig, PushEngine, Registration, Rejection};
use sip_registrar::location::Change;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct PushService {
    pub engine: Mutex<PushEngine>,
    pub cfg: PushConfig,
    pub senders: push_senders::Senders,
    /// The AoR of each push binding (the engine knows bindings by id only).
    aors: Mutex<std::collections::HashMap<String, sip_registrar::Aor>>,
}

/// What the REGISTER hooks decided before the registrar runs.
pub enum Precheck {
    /// Answer with this status (and headers) instead of registering.
    Reject(u16, Vec<(HeaderName, String)>),
    /// Register; these are the classifications of the Contacts (URI text, class).
    Go(Vec<(String, Classification)>),
}

impl PushService {
    pub fn new(sec: &PushSection) -> anyhow::Result<PushService> {
        let cfg = sec.to_engine_config();
        let engine = PushEngine::new(cfg.clone(), |buf: &mut [u8]| rand::fill(buf)).map_err(|errs| {
            anyhow::anyhow!(
                "invalid [push] configuration: {}",
                errs.iter().map(|e| format!("push.{}: {}", e.key, e.message)).collect::<Vec<_>>().join("; ")
            )
        })?;
        let senders =
            push_senders::Senders::new(sec.sender_configs()).map_err(|e| anyhow::anyhow!("[push.senders]: {e}"))?;
        Ok(PushService { engine: Mutex::new(engine), cfg, senders, aors: Mutex::new(Default::default()) })
    }

    /// Classifies every Contact of a REGISTER (RFC 8599 §5.6.1) and decides
    /// whether it gets 555 or 423 instead of a registration.
    pub fn precheck(&self, req: &Message, default_expires: u32) -> Precheck {
        let upstream = sip_push::upstream_pns(req.headers.get_all(&HeaderName::FeatureCaps).map(|v| &v[..]));
        let header_expires = req.expires();
        let mut classes = Vec::new();
        let engine = self.engine.lock().expect("push engine");
        for c in req.contacts().unwrap_or_default() {
            let Contact::Addr(na) = c else { continue };
            let expires = na
                .params
                .value("expires")
                .and_then(|v| sip_msg::chars::parse_u32(v))
                .or(header_expires)
                .unwrap_or(default_expires);
            let class = engine.classify(&ContactInfo::from_name_addr(&na, expires, &upstream));
            match class.rejection(&self.cfg) {
                Some(Rejection::PnsNotSupported) => return Precheck::Reject(555, Vec::new()),
                Some(Rejection::IntervalTooBrief { min_expires }) => {
                    return Precheck::Reject(423, vec![(HeaderName::MinExpires, min_expires.to_string())]);
                }
                None => {}
            }
            classes.push((na.uri.to_string(), class));
        }
        Precheck::Go(classes)
    }

    /// After a successful REGISTER: tells the engine about the bindings it
    /// wrote and returns the Feature-Caps values for the 200 OK.
    pub fn registered(&self, classes: &[(String, Classification)], changes: &[Change], now_ms: u64) -> Vec<String> {
        let now = Instant::now();
        let mut engine = self.engine.lock().expect("push engine");
        let mut purrs: Vec<(usize, Option<String>)> = Vec::new();
        for ch in changes {
            match ch {
                Change::Upsert(b) => {
                    let uri = b.uri.to_string();
                    let Some(i) = classes.iter().position(|(u, _)| *u == uri) else { continue };
                    let expires = Duration::from_millis(b.expires_at.saturating_sub(now_ms));
                    let (info, pnsreg) = match &classes[i].1 {
                        Classification::Push { info, pnsreg } => (Some(info.clone()), *pnsreg),
                        _ => (None, false),
                    };
                    let had_push = info.is_some();
                    if had_push {
                        self.aors.lock().expect("push aors").insert(b.id.clone(), b.aor.clone());
                    }
                    let purr = engine.handle_register_ok(
                        Registration { binding: BindingKey::new(b.id.as_str()), info, expires, pnsreg },
                        now,
                    );
                    if had_push {
                        purrs.push((i, purr));
                    }
                }
                Change::Remove { id, .. } => {
                    engine.handle_removed(&BindingKey::new(id.as_str()), now);
                    self.aors.lock().expect("push aors").remove(id);
                }
            }
        }
        let items = classes.iter().enumerate().filter_map(|(i, (_, class))| match class {
            Classification::Push { .. } => purrs.iter().find(|(j, _)| *j == i).map(|(_, p)| (class, p.as_deref())),
            Classification::Query { .. } => Some((class, None)),
            _ => None,
        });
        engine.feature_caps(items)
    }

    /// Re-arms the refresh schedule of stored push bindings (start-up);
    /// returns how many were restored. PURRs are not persisted: a device
    /// gets a new one at its next REGISTER.
    pub fn restore<'a>(&self, bindings: impl Iterator<Item = &'a sip_registrar::Binding>, now_ms: u64) -> usize {
        let now = Instant::now();
        let mut engine = self.engine.lock().expect("push engine");
        let mut n = 0;
        for b in bindings {
            let left = b.expires_at.saturating_sub(now_ms);
            // Classified as at registration (the expiry check already passed then).
            let info = ContactInfo::from_name_addr(&sip_msg::NameAddr::new(b.uri.clone()), u32::MAX, &[]);
            if let Classification::Push { info, pnsreg } = engine.classify(&info) {
                let restored = engine.restore(
                    sip_push::Restored {
                        binding: BindingKey::new(b.id.as_str()),
                        info,
                        expires_in: Duration::from_millis(left),
                        pnsreg,
                        registered_ago: Some(Duration::from_millis(now_ms.saturating_sub(b.registered_at))),
                        purrs: Vec::new(),
                    },
                    now,
                );
                if restored {
                    self.aors.lock().expect("push aors").insert(b.id.clone(), b.aor.clone());
                }
                n += usize::from(restored);
            }
        }
        n
    }

    /// The binding (id, AoR) a PURR names, if it is one of ours and alive (R50:
    /// a forged or unknown PURR resolves to nothing and never causes a push).
    pub fn resolve_purr(&self, purr: &str) -> Option<(String, sip_registrar::Aor)> {
        let key = self.engine.lock().expect("push engine").resolve_purr(purr, Instant::now())?;
        let aor = self.aors.lock().expect("push aors").get(key.as_str()).cloned()?;
        Some((key.as_str().to_string(), aor))
    }

    /// Sends a test push to a binding now (`sipwake ctl push`), outside the
    /// engine's schedule; `None` when the binding has no push coordinates.
    pub async fn test_push(&self, b: &sip_registrar::Binding) -> Option<Result<(), sip_push::PushError>> {
        let na = sip_msg::NameAddr::new(b.uri.clone());
        let class = self.engine.lock().expect("push engine").classify(&ContactInfo::from_name_addr(&na, u32::MAX, &[]));
        let Classification::Push { info, .. } = class else { return None };
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 62);
        let req = sip_push::PushRequest {
            id: sip_push::PushId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
            binding: BindingKey::new(b.id.as_str()),
            provider: info.provider,
            prid: info.prid,
            param: info.param,
            reason: sip_push::PushReason::Test,
            attempt: 1,
            ttl_secs: 30,
            deadline: Instant::now() + Duration::from_secs(30),
        };
        let aor = b.aor.to_string();
        Some(self.senders.send_for(&req, Some(&aor)).await)
    }

    /// A REGISTER for this binding was refused (R36–R38: 401/407 keep waiting).
    pub fn register_failed(&self, binding: &str, code: u16) {
        tracing::debug!(binding, code, "a push binding's REGISTER failed");
        self.engine.lock().expect("push engine").handle_register_failed(
            &BindingKey::new(binding),
            code,
            Instant::now(),
        );
    }

    /// Whether the engine pushes this binding (it registered push coordinates
    /// we handle: not a query, an unsupported provider or one an upstream proxy
    /// already handles, R13/R14).
    pub fn is_push_binding(&self, binding: &str) -> bool {
        self.engine.lock().expect("push engine").binding_view(binding, Instant::now()).is_some()
    }

    /// The AoR of a push binding.
    pub fn aor_of(&self, binding: &str) -> Option<String> {
        self.aors.lock().expect("push aors").get(binding).map(|a| a.to_string())
    }

    /// Bindings removed without a REGISTER (expiry, management, lost flows).
    pub fn removed(&self, changes: &[Change]) {
        let now = Instant::now();
        let mut engine = self.engine.lock().expect("push engine");
        for ch in changes {
            if let Change::Remove { id, .. } = ch {
                engine.handle_removed(&BindingKey::new(id.as_str()), now);
                self.aors.lock().expect("push aors").remove(id);
            }
        }
    }
}
