//! RFC 8599 in one place, shared by every REGISTER role (registrar now,
//! mid-registrar next), as OpenSIPS's `lib/reg/pn.c` is: the push engine,
//! the classification of a REGISTER's Contacts (555 / 423), Feature-Caps of
//! the 2xx (R51: retransmissions too), PURR resolution (Request-URI or top
//! Route, R54), the push state stored with a binding (PURRs and
//! `+sip.pnsreg` survive a restart), parking a request on push bindings, and
//! carrying out the engine's outputs (pushes, forks once the waking
//! REGISTER is durable, releases).
//!
//! Owns the `sip_push::PushEngine` and the AoR of each push binding. It
//! must not route or answer anything itself: the node's proxying does.

use crate::io::PushJob;
use crate::node::Node;
use sip_msg::{Contact, HeaderName, Message};
use sip_push::{BindingKey, Classification, ContactInfo, PushConfig, PushEngine, Registration, Rejection};
use sip_registrar::location::Change;
use sip_registrar::{Aor, Binding, Location};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The push module of a node.
pub struct Pn {
    pub engine: PushEngine,
    pub cfg: PushConfig,
    /// The AoR of each push binding (the engine knows bindings by id only).
    aors: HashMap<String, Aor>,
}

/// What the REGISTER hooks decided before the registrar runs.
pub(crate) enum Precheck {
    /// Answer with this status (and headers) instead of registering.
    Reject(u16, Vec<(HeaderName, String)>),
    /// Register; these are the classifications of the Contacts (URI text, class).
    Go(Vec<(String, Classification)>),
}

impl Pn {
    pub(crate) fn new(cfg: PushConfig) -> Result<Pn, String> {
        // PURRs are secrets (R47: ≥ 128 bits): drawn from the OS generator.
        let engine = PushEngine::new(cfg.clone(), |buf: &mut [u8]| rand::fill(buf)).map_err(|errs| {
            format!(
                "invalid [push] configuration: {}",
                errs.iter().map(|e| format!("push.{}: {}", e.key, e.message)).collect::<Vec<_>>().join("; ")
            )
        })?;
        Ok(Pn { engine, cfg, aors: HashMap::new() })
    }

    /// Classifies every Contact of a REGISTER (RFC 8599 §5.6.1) and decides
    /// whether it gets 555 or 423 instead of a registration.
    pub(crate) fn precheck(&self, req: &Message, default_expires: u32) -> Precheck {
        let upstream = sip_push::upstream_pns(req.headers.get_all(&HeaderName::FeatureCaps).map(|v| &v[..]));
        let header_expires = req.expires();
        let mut classes = Vec::new();
        for c in req.contacts().unwrap_or_default() {
            let Contact::Addr(na) = c else { continue };
            let expires = na
                .params
                .value("expires")
                .and_then(|v| sip_msg::chars::parse_u32(v))
                .or(header_expires)
                .unwrap_or(default_expires);
            let class = self.engine.classify(&ContactInfo::from_name_addr(&na, expires, &upstream));
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
    /// wrote and returns the Feature-Caps values for the 200 OK. A Contact
    /// the registrar found already applied (a retransmission, R51) gets the
    /// same Feature-Caps from its binding's current PURR.
    pub(crate) fn registered(
        &mut self,
        classes: &[(String, Classification)],
        changes: &[Change],
        location: &Location,
        aor: Option<&Aor>,
        now: Instant,
        now_ms: u64,
    ) -> Vec<String> {
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
                        self.aors.insert(b.id.clone(), b.aor.clone());
                    } else {
                        // No longer a push binding (re-registered plain).
                        self.aors.remove(&b.id);
                    }
                    let purr = self.engine.handle_register_ok(
                        Registration { binding: BindingKey::new(b.id.as_str()), info, expires, pnsreg },
                        now,
                    );
                    if had_push {
                        purrs.push((i, purr));
                    }
                }
                Change::Remove { id, .. } => {
                    self.engine.handle_removed(&BindingKey::new(id.as_str()), now);
                    self.aors.remove(id);
                }
            }
        }
        // R51: a Contact with no change (already applied) keeps its binding's PURR.
        for (i, (uri, class)) in classes.iter().enumerate() {
            if !matches!(class, Classification::Push { .. }) || purrs.iter().any(|(j, _)| *j == i) {
                continue;
            }
            let existing = aor.map(|a| location.get(a)).unwrap_or_default().iter().find(|b| b.uri.to_string() == *uri);
            if let Some(b) = existing
                && self.aors.contains_key(&b.id)
            {
                purrs.push((i, self.engine.purr_for(&b.id).map(str::to_string)));
            }
        }
        let items = classes.iter().enumerate().filter_map(|(i, (_, class))| match class {
            Classification::Push { .. } => purrs.iter().find(|(j, _)| *j == i).map(|(_, p)| (class, p.as_deref())),
            Classification::Query { .. } => Some((class, None)),
            _ => None,
        });
        self.engine.feature_caps(items)
    }

    /// Re-arms a stored push binding (start-up), with its stored push state
    /// (PURRs, `+sip.pnsreg`); returns whether it is a push binding.
    pub(crate) fn restore(&mut self, b: &Binding, push_state: Option<&str>, now: Instant, now_ms: u64) -> bool {
        let left = b.expires_at.saturating_sub(now_ms);
        // Classified as at registration (the expiry check already passed then).
        let info = ContactInfo::from_name_addr(&sip_msg::NameAddr::new(b.uri.clone()), u32::MAX, &[]);
        let Classification::Push { info, pnsreg } = self.engine.classify(&info) else { return false };
        let (pnsreg, purrs) = match push_state.map(|s| sip_push::decode_push_state(s, now_ms, self.cfg.purr_horizon)) {
            Some(Ok((flag, purrs))) => (flag || pnsreg, purrs),
            Some(Err(e)) => {
                tracing::warn!(binding = %b.id, error = %e, "unreadable stored push state; PURRs start afresh");
                (pnsreg, Vec::new())
            }
            None => (pnsreg, Vec::new()),
        };
        let restored = self.engine.restore(
            sip_push::Restored {
                binding: BindingKey::new(b.id.as_str()),
                info,
                expires_in: Duration::from_millis(left),
                pnsreg,
                registered_ago: Some(Duration::from_millis(now_ms.saturating_sub(b.registered_at))),
                purrs,
            },
            now,
        );
        if restored {
            self.aors.insert(b.id.clone(), b.aor.clone());
        }
        restored
    }

    /// The binding a PURR names, if it is one of ours and alive (R50: a
    /// forged or unknown PURR resolves to nothing and never causes a push).
    pub(crate) fn resolve_purr(&mut self, purr: &str, now: Instant) -> Option<String> {
        if !self.cfg.purr {
            return None;
        }
        let key = self.engine.resolve_purr(purr, now)?;
        self.aors.contains_key(key.as_str()).then(|| key.as_str().to_string())
    }

    /// Whether the engine pushes this binding (it registered push coordinates
    /// we handle: not a query, an unsupported provider or one an upstream proxy
    /// already handles, R13/R14).
    pub fn is_push_binding(&self, b: &Binding) -> bool {
        self.engine.tracks(&b.id)
    }

    /// The AoR of a push binding.
    pub fn aor_of(&self, binding: &str) -> Option<&Aor> {
        self.aors.get(binding)
    }

    /// A test push to a binding now (`sipwake ctl push`), outside the
    /// engine's schedule; `None` when the binding has no push coordinates.
    pub fn test_push(&self, b: &Binding, now: Instant) -> Option<PushJob> {
        let na = sip_msg::NameAddr::new(b.uri.clone());
        let Classification::Push { info, .. } = self.engine.classify(&ContactInfo::from_name_addr(&na, u32::MAX, &[]))
        else {
            return None;
        };
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 62);
        let request = sip_push::PushRequest {
            id: sip_push::PushId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
            binding: BindingKey::new(b.id.as_str()),
            provider: info.provider,
            prid: info.prid,
            param: info.param,
            reason: sip_push::PushReason::Test,
            attempt: 1,
            ttl_secs: 30,
            deadline: now + Duration::from_secs(30),
        };
        Some(PushJob { request, aor: Some(b.aor.to_string()), caller: None })
    }
}

/// The `pn-purr` of a URI (SIP or SIPS).
fn purr_of(u: &sip_msg::Uri) -> Option<String> {
    u.as_sip().and_then(|s| s.params.value("pn-purr")).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The `pn-purr` in a request's Request-URI.
pub(crate) fn purr_in_uri(req: &Message) -> Option<String> {
    req.uri().and_then(purr_of)
}

/// The `pn-purr` in a request's topmost Route URI (R54).
pub(crate) fn purr_in_top_route(req: &Message) -> Option<String> {
    let v = req.headers.get(&HeaderName::Route)?;
    purr_of(&sip_msg::NameAddr::parse(v).ok()?.uri)
}

impl Node {
    /// Parks a request on push bindings: pushes them and returns (the
    /// engine's request id, the number of hold slots the context needs).
    pub(crate) fn pn_park(
        &mut self,
        key: &sip_txn::ServerKey,
        request: &Message,
        bindings: &[String],
        mid_dialog: bool,
        now: Instant,
    ) -> (Option<sip_push::RequestId>, usize) {
        let Some(pn) = &mut self.pn else { return (None, 0) };
        if bindings.is_empty() {
            return (None, 0);
        }
        let Some(method) = request.method().cloned() else { return (None, 0) };
        self.proxy.next_push_request += 1;
        let rid = sip_push::RequestId(self.proxy.next_push_request);
        let parked = pn.engine.handle_park(
            sip_push::Park {
                request: rid,
                method,
                call_id: request.call_id().map(|c| String::from_utf8_lossy(c).into_owned()).unwrap_or_default(),
                kind: if mid_dialog { sip_push::ParkKind::MidDialog } else { sip_push::ParkKind::Initial },
                targets: bindings
                    .iter()
                    .map(|id| sip_push::ParkTarget { binding: BindingKey::new(id.as_str()), awake: false })
                    .collect(),
            },
            now,
        );
        match parked {
            Ok(n) if n > 0 => {
                self.proxy.by_push.insert(rid.0, key.clone());
                if let (Some(cid), Some(from)) = (request.call_id(), request.headers.get(&HeaderName::From)) {
                    self.proxy.callers.insert(cid.clone(), String::from_utf8_lossy(from).into_owned());
                }
                (Some(rid), n)
            }
            Ok(_) => (None, 0),
            Err(e) => {
                tracing::debug!(error = ?e, "request not parked");
                (None, 0)
            }
        }
    }

    /// Carries out what the push engine decided: pushes go to the outbox,
    /// woken devices become branches once their REGISTER is durable, ended
    /// waits release slots. Returns whether there was anything.
    pub(crate) fn drain_push(&mut self, now: Instant) -> bool {
        let Some(pn) = &mut self.pn else { return false };
        let outs: Vec<sip_push::Output> = std::iter::from_fn(|| pn.engine.poll_output()).collect();
        if outs.is_empty() {
            return false;
        }
        for o in outs {
            match o {
                sip_push::Output::Push(request) => {
                    let aor = self.pn.as_ref().and_then(|p| p.aor_of(request.binding.as_str())).map(Aor::to_string);
                    let caller = self.caller_of(&request);
                    self.pushes.push_back(PushJob { request, aor, caller });
                }
                sip_push::Output::Fork { request, binding, wake_latency } => {
                    if let Some(l) = wake_latency {
                        crate::metrics::wake_latency(l);
                    }
                    let id = binding.as_str().to_string();
                    // Never before the waking REGISTER's 200 is durable and sent.
                    match self.uncommitted.get(&id).and_then(|w| self.pending.get_mut(w)) {
                        Some(p) => p.forks.push((request, id)),
                        None => self.push_fork(request, &id, now),
                    }
                }
                sip_push::Output::BranchEnded { request, .. } => self.push_release(request, now),
                // The context keeps its push request id until it ends (forks of
                // this request may still wait for a store write).
                sip_push::Output::RequestDone { .. } => {}
                sip_push::Output::BindingInvalid { binding } => {
                    tracing::info!(binding = binding.as_str(), "push service says the device token is dead");
                }
            }
        }
        true
    }

    /// The caller of the request a push is for: `From` as sent (display name and URI).
    fn caller_of(&self, req: &sip_push::PushRequest) -> Option<String> {
        match &req.reason {
            sip_push::PushReason::Initial { call_id, .. } | sip_push::PushReason::MidDialog { call_id, .. } => {
                self.proxy.callers.get(call_id.as_bytes()).cloned()
            }
            _ => None,
        }
    }

    /// Bindings removed without a REGISTER (expiry, management, lost flows).
    pub(crate) fn pn_removed(&mut self, changes: &[Change], now: Instant) {
        let Some(pn) = &mut self.pn else { return };
        for ch in changes {
            if let Change::Remove { id, .. } = ch {
                pn.engine.handle_removed(&BindingKey::new(id.as_str()), now);
                pn.aors.remove(id);
            }
        }
    }

    /// A REGISTER naming these bindings was refused (R36–R38: 401/407 keep waiting).
    pub(crate) fn pn_register_failed(&mut self, req: &Message, code: u16, now: Instant) {
        if self.pn.is_none() {
            return;
        }
        let ids = self.registrar.bindings_named_by(req);
        if let Some(pn) = &mut self.pn {
            for id in ids {
                tracing::debug!(binding = %id, code, "a push binding's REGISTER failed");
                pn.engine.handle_register_failed(&BindingKey::new(id.as_str()), code, now);
            }
        }
    }
}
