//! RFC 8599 in one place, shared by every REGISTER role (registrar and
//! mid-registrar), as OpenSIPS's `lib/reg/pn.c` is: the push engine,
//! the classification of a REGISTER's Contacts (555 / 423), Feature-Caps of
//! the 2xx (R51: retransmissions too), PURR resolution (Request-URI or top
//! Route, R54), the push state stored with a binding (PURRs and
//! `+sip.pnsreg` survive a restart), parking a request on push bindings, and
//! carrying out the engine's outputs (pushes, forks once the waking
//! REGISTER is durable, releases).
//!
//! Owns the `sip_push::PushEngine`; the AoR of each push binding is kept by
//! the engine with the binding (`PushEngine::set_owner`), not in a map of
//! its own. It must not route or answer anything itself: the node's
//! proxying does.

use crate::io::{CallEndPushes, Caller, PushJob};
use crate::node::Node;
use sip_msg::{Contact, HeaderName, Message};
use sip_push::{BindingKey, Classification, ContactInfo, PushConfig, PushEngine, Registration, Rejection};
use sip_registrar::location::Change;
use sip_registrar::{Aor, Binding, Location};
use std::time::{Duration, Instant};

/// The push module of a node.
pub struct Pn {
    pub engine: PushEngine,
    pub cfg: PushConfig,
    /// The story of pushes and parked requests, and the flagged devices.
    pub audit: crate::audit::PushAudit,
    /// Call-end pushes per provider (`"*"`: the others).
    call_end: Vec<(String, CallEndPushes)>,
}

/// A push in flight: what a dead-token answer must match before the
/// binding goes, and whether the engine knows the push.
pub(crate) struct InFlight {
    pub binding: String,
    pub provider: String,
    pub prid: String,
    /// Sent by the node (test, cancel, missed call), not by the engine.
    pub own: bool,
    /// When it was handed to the sender.
    pub sent: Instant,
}

/// The Contact parameters that are push coordinates or ours, not extras.
const CORE_PN_PARAMS: &[&str] = &["pn-provider", "pn-prid", "pn-param", "pn-purr"];

/// What the REGISTER hooks decided before the registrar runs.
pub(crate) enum Precheck {
    /// Answer with this status (and headers) instead of registering.
    Reject(u16, Option<&'static str>, Vec<(HeaderName, String)>),
    /// Register; these are the classifications of the Contacts (URI text, class).
    Go(Vec<(String, Classification)>),
}

/// Unanswered refresh pushes in one registration cycle after which a
/// still-registered device is flagged (`refresh-unanswered`): with the
/// default plan (expiry - 120, - 60, - 30, - 15 s) the third push flags it,
/// 60 s before its registration would expire.
pub const UNANSWERED_REFRESH_FLAG: u32 = 2;

impl Pn {
    pub(crate) fn new(
        cfg: PushConfig,
        call_end: Vec<(String, CallEndPushes)>,
        audit: crate::audit::AuditConfig,
    ) -> Result<Pn, String> {
        // PURRs are secrets (R47: ≥ 128 bits): drawn from the OS generator.
        let engine = PushEngine::new(cfg.clone(), |buf: &mut [u8]| rand::fill(buf)).map_err(|errs| {
            format!(
                "invalid [push] configuration: {}",
                errs.iter().map(|e| format!("push.{}: {}", e.key, e.message)).collect::<Vec<_>>().join("; ")
            )
        })?;
        Ok(Pn { engine, cfg, audit: crate::audit::PushAudit::new(audit), call_end })
    }

    /// Classifies every Contact of a REGISTER (RFC 8599 §5.6.1) and decides
    /// whether it gets 555 or 423 instead of a registration.
    pub(crate) fn precheck(&self, req: &Message, default_expires: u32, transport: sip_msg::Transport) -> Precheck {
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
                Some(Rejection::PnsNotSupported) => return Precheck::Reject(555, None, Vec::new()),
                Some(Rejection::IntervalTooBrief { min_expires }) => {
                    return Precheck::Reject(423, None, vec![(HeaderName::MinExpires, min_expires.to_string())]);
                }
                None => {}
            }
            // R64: push coordinates travel only over TLS (or WSS) when so configured.
            if self.cfg.require_secure_transport
                && !transport.is_secure()
                && matches!(class, sip_push::Classification::Push { .. })
            {
                let warning =
                    "399 sipwake \"push coordinates must be registered over TLS or WSS (RFC 8599 section 13)\"";
                return Precheck::Reject(403, Some("Push Requires TLS"), vec![(HeaderName::Warning, warning.into())]);
            }
            classes.push((na.uri.to_string(), class));
        }
        Precheck::Go(classes)
    }

    /// The Feature-Caps a mid-registrar puts topmost in the REGISTER it
    /// forwards (R19, R25, R29, F2): `+sip.pns` only, one per PNS type of
    /// the push and query Contacts (response-only indicators stay out, R61;
    /// nothing for a PNS a proxy closer to the UA handles, R13/R26).
    pub(crate) fn request_indicators(&self, classes: &[(String, Classification)]) -> Vec<String> {
        let mut caps = sip_push::FeatureCaps::new();
        for (_, class) in classes {
            caps.add(&self.cfg, class, None);
        }
        caps.request_values()
    }

    /// R20: the upstream granted `expires` seconds; below what a push
    /// binding of its provider needs, the binding is registered plain (no
    /// Feature-Caps, never pushed).
    pub(crate) fn downgrade_if_short(&self, class: &mut Classification, expires: u32) {
        if let Classification::Push { info, pnsreg } = class
            && expires < sip_push::min_push_expires_for(&self.cfg, &info.provider, *pnsreg)
        {
            tracing::debug!(provider = %info.provider, expires, "upstream grant too short for pushes (R20)");
            *class = Classification::Plain;
        }
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
                    let Some(i) = classes.iter().position(|(u, _)| *u == b.uri.as_str()) else { continue };
                    let expires = Duration::from_millis(b.expires_at.saturating_sub(now_ms));
                    let (info, pnsreg) = match &classes[i].1 {
                        Classification::Push { info, pnsreg } => (Some(info.clone()), *pnsreg),
                        _ => (None, false),
                    };
                    let had_push = info.is_some();
                    let purr = self.engine.handle_register_ok(
                        Registration { binding: BindingKey::new(b.id.as_str()), info, expires, pnsreg },
                        now,
                    );
                    if had_push {
                        self.engine.set_owner(&b.id, b.aor.as_str());
                        purrs.push((i, purr));
                    }
                    if self.audit.awaits(&b.id) {
                        self.audit.registered(now_ms, &b.id);
                    }
                }
                Change::Remove { id, .. } => {
                    self.engine.handle_removed(&BindingKey::new(id.as_str()), now);
                    self.audit.removed(id);
                }
            }
        }
        // R51: a Contact with no change (already applied) keeps its binding's PURR.
        for (i, (uri, class)) in classes.iter().enumerate() {
            if !matches!(class, Classification::Push { .. }) || purrs.iter().any(|(j, _)| *j == i) {
                continue;
            }
            let existing = aor.map(|a| location.get(a)).unwrap_or_default().iter().find(|b| b.uri.as_str() == *uri);
            if let Some(b) = existing
                && self.engine.tracks(&b.id)
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
        let Classification::Push { info, pnsreg } = self.classify_stored(b) else { return false };
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
            self.engine.set_owner(&b.id, b.aor.as_str());
        }
        restored
    }

    /// A binding another node of the cluster committed (`fresh`: a new
    /// REGISTER of the device): the engine follows its expiry and stored
    /// PURRs, and forks what is parked here for it when fresh.
    pub(crate) fn replicated(&mut self, b: &Binding, push_state: Option<&str>, fresh: bool, now: Instant, now_ms: u64) {
        let left = b.expires_at.saturating_sub(now_ms);
        let Classification::Push { info, pnsreg } = self.classify_stored(b) else {
            // No longer a push binding: what waits for it goes to its Contact.
            if self.engine.tracks(&b.id) && fresh {
                let key = BindingKey::new(b.id.as_str());
                let reg =
                    Registration { binding: key, info: None, expires: Duration::from_millis(left), pnsreg: false };
                self.engine.handle_register_ok(reg, now);
            }
            return;
        };
        let (pnsreg, purrs) = match push_state.map(|s| sip_push::decode_push_state(s, now_ms, self.cfg.purr_horizon)) {
            Some(Ok((flag, purrs))) => (flag || pnsreg, purrs),
            Some(Err(e)) => {
                tracing::warn!(binding = %b.id, error = %e, "unreadable replicated push state");
                (pnsreg, Vec::new())
            }
            None => (pnsreg, Vec::new()),
        };
        let r = sip_push::Restored {
            binding: BindingKey::new(b.id.as_str()),
            info,
            expires_in: Duration::from_millis(left),
            pnsreg,
            registered_ago: Some(Duration::from_millis(now_ms.saturating_sub(b.registered_at))),
            purrs,
        };
        if self.engine.handle_replicated(r, fresh, now) {
            self.engine.set_owner(&b.id, b.aor.as_str());
        }
    }

    /// The binding a PURR names, if it is one of ours and alive (R50: a
    /// forged or unknown PURR resolves to nothing and never causes a push).
    pub(crate) fn resolve_purr(&mut self, purr: &str, now: Instant) -> Option<String> {
        if !self.cfg.purr {
            return None;
        }
        let key = self.engine.resolve_purr(purr, now)?;
        self.engine.owner(key.as_str()).is_some().then(|| key.as_str().to_string())
    }

    /// Whether the engine pushes this binding (it registered push coordinates
    /// we handle: not a query, an unsupported provider or one an upstream proxy
    /// already handles, R13/R14).
    pub fn is_push_binding(&self, b: &Binding) -> bool {
        self.engine.tracks(&b.id)
    }

    /// The AoR of a push binding (the engine keeps it with the binding).
    pub fn aor_of(&self, binding: &str) -> Option<Aor> {
        self.engine.owner(binding).map(|a| Aor::from_stored(a.to_owned()))
    }

    /// Which call-end pushes `provider`'s devices get.
    pub fn call_end_for(&self, provider: &str) -> CallEndPushes {
        let find = |n: &str| self.call_end.iter().find(|(p, _)| p.eq_ignore_ascii_case(n)).map(|(_, c)| *c);
        find(provider).or_else(|| find("*")).unwrap_or_default()
    }

    /// The push coordinates a binding has now (`None`: not a push binding).
    pub fn coordinates(&self, b: &Binding) -> Option<sip_push::PnInfo> {
        match self.classify_stored(b) {
            Classification::Push { info, .. } => Some(info),
            _ => None,
        }
    }

    /// A stored binding's Contact classified as at registration (the
    /// expiry check already passed then).
    fn classify_stored(&self, b: &Binding) -> Classification {
        let Some(uri) = b.uri.parse() else { return Classification::Plain };
        self.engine.classify(&ContactInfo::from_name_addr(&sip_msg::NameAddr::new(uri), u32::MAX, &[]))
    }

    /// A test push to a binding now (`sipwake ctl push`), outside the
    /// engine's schedule; `None` when the binding has no push coordinates.
    pub fn test_push(&self, b: &Binding, now: Instant) -> Option<PushJob> {
        let info = self.coordinates(b)?;
        let request = sip_push::PushRequest {
            id: own_push_id(),
            binding: BindingKey::new(b.id.as_str()),
            provider: info.provider,
            prid: info.prid,
            param: info.param,
            reason: sip_push::PushReason::Test,
            attempt: 1,
            ttl_secs: 30,
            deadline: now + Duration::from_secs(30),
        };
        Some(PushJob { request, aor: Some(b.aor.to_string()), caller: None, pn_extra: pn_extra(b) })
    }
}

/// Ids of pushes the node sends itself (test, cancel, missed call), in a
/// range the engine never reaches.
fn own_push_id() -> sip_push::PushId {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 62);
    sip_push::PushId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// The binding's `pn-*` Contact parameters other than the coordinates, unescaped.
fn pn_extra(b: &Binding) -> Vec<(String, String)> {
    let Some(uri) = b.uri.parse() else { return Vec::new() };
    let Some(u) = uri.as_sip() else { return Vec::new() };
    if !u.params.0.iter().any(|(n, _)| n.len() > 3 && n[..3].eq_ignore_ascii_case(b"pn-")) {
        return Vec::new();
    }
    sip_msg::pn::decode_all(&u.params)
        .into_iter()
        .filter(|(n, _)| {
            n.len() > 3
                && n[..3].eq_ignore_ascii_case("pn-")
                && !CORE_PN_PARAMS.iter().any(|c| c.eq_ignore_ascii_case(n))
        })
        .map(|(n, v)| (n.to_ascii_lowercase(), v.unwrap_or_default()))
        .collect()
}

/// The caller of a request: its `From` display name (unquoted) and URI.
pub(crate) fn caller_of(req: &Message) -> Option<Caller> {
    let na = sip_msg::NameAddr::parse(req.headers.get(&HeaderName::From)?).ok()?;
    let display_name = na
        .display
        .as_ref()
        .map(|d| String::from_utf8_lossy(&sip_msg::params::unquote(d)).trim().to_owned())
        .filter(|d| !d.is_empty());
    Some(Caller { display_name, uri: na.uri.to_string() })
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
                let now_ms = self.unix_ms(now);
                if let Some(pn) = &mut self.pn {
                    let cid = request.call_id().map(|c| String::from_utf8_lossy(c).into_owned()).unwrap_or_default();
                    let method = request.method().map(ToString::to_string).unwrap_or_default();
                    pn.audit.parked(now_ms, &cid, &method, rid.0, bindings);
                }
                self.proxy.by_push.insert(rid.0, key.clone());
                if let (Some(cid), Some(caller)) = (request.call_id(), caller_of(request)) {
                    self.proxy.callers.insert(cid.clone(), caller);
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
                    // In a cluster, one node sends each refresh push.
                    let request = if request.reason == sip_push::PushReason::Refresh {
                        match self.cluster_refresh(request, now) {
                            Some(r) => r,
                            None => continue,
                        }
                    } else {
                        request
                    };
                    let job = self.push_job(request);
                    self.note_call_push(&job);
                    self.send_push_job(job, false, now);
                }
                sip_push::Output::Fork { request, binding, wake_latency } => {
                    if let Some(l) = wake_latency {
                        crate::metrics::wake_latency(l);
                    }
                    crate::oplog::forked(request.0, binding.as_str(), wake_latency);
                    let (now_ms, cid) = (self.unix_ms(now), self.call_id_of(request));
                    if let Some(pn) = &mut self.pn {
                        pn.audit.forked(now_ms, cid.as_deref(), binding.as_str(), request.0, wake_latency);
                    }
                    let id = binding.as_str().to_string();
                    // The device gets the request itself (and a CANCEL if need be).
                    self.forget_call_push(request, &id);
                    // Never before the waking REGISTER's 200 is durable and sent.
                    match self.uncommitted.get(&id).and_then(|w| self.pending.get_mut(w)) {
                        Some(p) => p.forks.push((request, id)),
                        None => self.push_fork(request, &id, now),
                    }
                }
                sip_push::Output::BranchEnded { request, binding, reason } => {
                    // A device the push never reached has nothing to stop ringing.
                    if reason != sip_push::BranchEnd::Timeout {
                        self.forget_call_push(request, binding.as_str());
                    } else {
                        self.not_woken(request, binding.as_str(), now);
                    }
                    self.push_release(request, now);
                }
                // The context keeps its push request id until it ends (forks of
                // this request may still wait for a store write).
                sip_push::Output::RequestDone { .. } => {}
                // The binding goes when the rejected push's result comes
                // back ([`Node::handle_push_result`]), if its token is unchanged.
                sip_push::Output::BindingInvalid { binding } => {
                    tracing::debug!(binding = binding.as_str(), "push engine marked a binding invalid");
                }
            }
        }
        true
    }

    /// A push of the engine as a job for the sender: with the AoR, the
    /// caller of a call push and the binding's extra `pn-*` parameters.
    pub(crate) fn push_job(&self, request: sip_push::PushRequest) -> PushJob {
        let aor = self.pn.as_ref().and_then(|p| p.aor_of(request.binding.as_str()));
        let pn_extra = aor
            .as_ref()
            .and_then(|a| self.registrar.location.binding(a, request.binding.as_str()))
            .map(pn_extra)
            .unwrap_or_default();
        let caller = match &request.reason {
            sip_push::PushReason::Initial { call_id, .. } | sip_push::PushReason::MidDialog { call_id, .. } => {
                self.proxy.callers.get(call_id.as_bytes()).cloned()
            }
            _ => None,
        };
        PushJob { request, aor: aor.map(|a| a.to_string()), caller, pn_extra }
    }

    /// Queues a push for the sender and remembers it until its result; a
    /// refresh push that repeats [`UNANSWERED_REFRESH_FLAG`] unanswered
    /// ones flags its device.
    pub(crate) fn send_push_job(&mut self, job: PushJob, own: bool, now: Instant) {
        if !own
            && job.request.reason == sip_push::PushReason::Refresh
            && job.request.attempt == UNANSWERED_REFRESH_FLAG + 1
        {
            self.flag(job.request.binding.as_str(), crate::audit::FlagReason::RefreshUnanswered, now);
        }
        let r = &job.request;
        self.in_flight.insert(
            r.id,
            crate::pn::InFlight {
                binding: r.binding.as_str().to_owned(),
                provider: r.provider.clone(),
                prid: r.prid.clone(),
                own,
                sent: now,
            },
        );
        let now_ms = self.unix_ms(now);
        if let Some(pn) = &mut self.pn {
            pn.audit.push_sent(now_ms, &job.request, job.aor.as_deref());
        }
        self.pushes.push_back(job);
    }

    /// The Call-ID of a parked request (while its context lives).
    pub(crate) fn call_id_of(&self, request: sip_push::RequestId) -> Option<String> {
        let key = self.proxy.by_push.get(&request.0)?;
        let cid = self.proxy.ctxs.get(key)?.request.call_id()?;
        Some(String::from_utf8_lossy(cid).into_owned())
    }

    /// A parked request's hold ended before `binding` registered: the
    /// audit says so, and a device whose push the push service accepted
    /// is flagged (`call-unanswered`).
    fn not_woken(&mut self, request: sip_push::RequestId, binding: &str, now: Instant) {
        let (now_ms, cid) = (self.unix_ms(now), self.call_id_of(request));
        let Some(pn) = &mut self.pn else { return };
        let delivered = pn
            .audit
            .last_push(binding)
            .is_some_and(|e| matches!(&e.what, crate::audit::What::Push(p) if p.outcome == "ok"));
        pn.audit.not_woken(now_ms, cid.as_deref(), binding, request.0);
        if delivered {
            self.flag(binding, crate::audit::FlagReason::CallUnanswered, now);
        }
    }

    /// Flags a still-registered push device that lets pushes go
    /// unanswered: a WARN line with its AoR, `sipwake_push_unanswered_total`
    /// and the flagged list (expired devices: [`Node::pn_expired`]).
    fn flag(&mut self, binding: &str, reason: crate::audit::FlagReason, now: Instant) {
        let now_ms = self.unix_ms(now);
        let Some(pn) = &mut self.pn else { return };
        let Some(v) = pn.engine.binding_view(binding, now) else { return };
        let aor = pn.engine.owner(binding).unwrap_or("-").to_owned();
        let times = pn.audit.flag(crate::audit::FlaggedDevice {
            aor: aor.clone(),
            binding: binding.to_owned(),
            provider: v.provider.clone(),
            reason,
            refresh_pushes: v.refresh_attempts,
            times: 1,
            at_ms: now_ms,
        });
        tracing::warn!(
            "push device not answering: aor={aor} binding={binding} provider={} reason={} refresh_pushes={} \
             times={times}",
            v.provider,
            reason.as_str(),
            v.refresh_attempts
        );
        crate::metrics::unanswered(&v.provider, reason.as_str());
    }

    /// A call wake-up push: its context remembers it, for a cancel or
    /// missed-call push should the call end before the device gets it.
    fn note_call_push(&mut self, job: &PushJob) {
        let sip_push::PushReason::Initial { method, .. } = &job.request.reason else { return };
        if method != "INVITE" {
            return;
        }
        let Some(rid) = self.pn.as_ref().and_then(|p| p.engine.request_of(job.request.id)) else { return };
        let Some(key) = self.proxy.by_push.get(&rid.0) else { return };
        if let Some(ctx) = self.proxy.ctxs.get_mut(key)
            && !ctx.call_pushes.iter().any(|j| j.request.binding == job.request.binding)
        {
            ctx.call_pushes.push(job.clone());
        }
    }

    fn forget_call_push(&mut self, request: sip_push::RequestId, binding: &str) {
        let Some(key) = self.proxy.by_push.get(&request.0) else { return };
        if let Some(ctx) = self.proxy.ctxs.get_mut(key) {
            ctx.call_pushes.retain(|j| j.request.binding.as_str() != binding);
        }
    }

    /// A call ended while devices woken for it had not got it: each gets a
    /// cancel or missed-call push, as its provider is configured.
    pub(crate) fn call_end_pushes(&mut self, jobs: Vec<PushJob>, end: sip_push::CallEnd, now: Instant) {
        let Some(pn) = &self.pn else { return };
        let mut out = Vec::new();
        for job in jobs {
            let c = pn.call_end_for(&job.request.provider);
            if !(if end == sip_push::CallEnd::Missed { c.missed } else { c.cancel }) {
                continue;
            }
            let sip_push::PushReason::Initial { method, call_id } = job.request.reason else { continue };
            let request = sip_push::PushRequest {
                id: own_push_id(),
                reason: sip_push::PushReason::CallEnded { method, call_id, end },
                attempt: 1,
                ttl_secs: 30,
                deadline: now + Duration::from_secs(30),
                ..job.request
            };
            tracing::debug!(binding = %request.binding, end = end.as_str(), "call-end push");
            out.push(PushJob { request, ..job });
        }
        for j in out {
            self.send_push_job(j, true, now);
        }
    }

    /// A push's result: the engine learns it (unless the node sent it), and
    /// a dead token removes its binding if the binding still has that token.
    pub(crate) fn pn_push_result(
        &mut self,
        id: sip_push::PushId,
        result: Result<(), sip_push::PushError>,
        now: Instant,
    ) {
        let f = self.in_flight.remove(&id);
        if let Some(p) = &mut self.pn {
            if let Some(f) = &f {
                p.audit.push_result(id.0, result, now.saturating_duration_since(f.sent));
            }
            if !f.as_ref().is_some_and(|f| f.own) {
                p.engine.handle_push_result(id, result, now);
            }
        }
        if result == Err(sip_push::PushError::Rejected)
            && let Some(f) = f
        {
            self.remove_dead(&f, now);
        }
    }

    /// A push the node did not hand out (`sipwake ctl push`) found the
    /// token dead: the binding goes as for any other push.
    pub fn handle_dead_token(&mut self, job: &PushJob, now: Instant) {
        let r = &job.request;
        let f = InFlight {
            binding: r.binding.as_str().to_owned(),
            provider: r.provider.clone(),
            prid: r.prid.clone(),
            own: true,
            sent: now,
        };
        self.remove_dead(&f, now);
        self.settle(now);
    }

    /// Removes a binding whose token the push service declared dead, unless
    /// it re-registered with another token meanwhile.
    fn remove_dead(&mut self, f: &InFlight, now: Instant) {
        let Some(pn) = &self.pn else { return };
        let Some(aor) = pn.aor_of(&f.binding) else { return };
        let Some(b) = self.registrar.location.binding(&aor, &f.binding) else { return };
        if pn.coordinates(b).is_none_or(|c| c.prid != f.prid) {
            return;
        }
        let now_ms = self.unix_ms(now);
        let changes: Vec<Change> = self.registrar.remove_binding(&aor, &f.binding, now_ms).into_iter().collect();
        if changes.is_empty() {
            return;
        }
        crate::metrics::bindings(self.registrar.location.len());
        crate::metrics::dead_token(&f.provider);
        tracing::info!(
            aor = %aor, binding = %f.binding, provider = %f.provider,
            "push service says the device token is dead; binding removed"
        );
        self.pn_removed(&changes, now);
        self.write_changes(&changes, now);
    }

    /// Bindings removed without a REGISTER (expiry, management, lost flows).
    pub(crate) fn pn_removed(&mut self, changes: &[Change], now: Instant) {
        let Some(pn) = &mut self.pn else { return };
        for ch in changes {
            if let Change::Remove { id, .. } = ch {
                pn.engine.handle_removed(&BindingKey::new(id.as_str()), now);
                pn.audit.removed(id);
            }
        }
    }

    /// Bindings expired: forgotten by the push engine; a push device
    /// that let its refresh pushes go unanswered is flagged (`expired`:
    /// WARN line, `sipwake_push_refresh_missed_total`, [`Node::flagged_devices`]).
    pub(crate) fn pn_expired(&mut self, changes: &[Change], now: Instant) {
        let unix_ms = self.unix_ms(now);
        let Some(pn) = &mut self.pn else { return };
        for ch in changes {
            let Change::Remove { aor, id } = ch else { continue };
            pn.audit.removed(id);
            if let Some((provider, pushes)) = pn.engine.handle_expired(&BindingKey::new(id.as_str()), now) {
                tracing::warn!(
                    "push device dropped off: aor={aor} binding={id} provider={provider} refresh_pushes={pushes} \
                     (its registration expired although refresh pushes were sent)"
                );
                crate::metrics::refresh_missed(&provider);
                pn.audit.flag(crate::audit::FlaggedDevice {
                    aor: aor.to_string(),
                    binding: id.clone(),
                    provider,
                    reason: crate::audit::FlagReason::Expired,
                    refresh_pushes: pushes,
                    times: 1,
                    at_ms: unix_ms,
                });
            }
        }
    }

    /// Push devices flagged (most recent last, the last
    /// [`crate::audit::MAX_FLAGGED`]): registrations that expired although
    /// refresh pushes were sent, refresh pushes repeated, call pushes
    /// delivered and unanswered.
    pub fn flagged_devices(&self) -> Vec<crate::audit::FlaggedDevice> {
        self.pn.as_ref().map(|p| p.audit.flagged().cloned().collect()).unwrap_or_default()
    }

    /// The caller of a parked call (`"Name" <uri>` or the URI), from its
    /// From header, while its context lives.
    pub fn caller_of_call(&self, call_id: &str) -> Option<String> {
        let c = self.proxy.callers.get(call_id.as_bytes())?;
        Some(match &c.display_name {
            Some(d) => format!("{d:?} <{}>", c.uri),
            None => c.uri.clone(),
        })
    }

    /// How much of the push audit is kept from now on (reload).
    pub fn set_push_audit(&mut self, cfg: crate::audit::AuditConfig) {
        if let Some(p) = &mut self.pn {
            p.audit.set_config(cfg);
        }
    }

    /// The push audit (`None`: push is off).
    pub fn push_audit(&self) -> Option<&crate::audit::PushAudit> {
        self.pn.as_ref().map(|p| &p.audit)
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
