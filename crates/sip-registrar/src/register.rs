//! REGISTER processing: RFC 3261 §10.3 steps 1–8, RFC 3327 Path, RFC 5626
//! outbound (§6), with CSeq ordering that a replayed or delayed REGISTER
//! cannot get around.
//!
//! Works on a message the core has already validated and authenticated; the
//! decision is atomic: either every Contact of the request is applied or none.

use crate::aor::Aor;
use crate::binding::{Binding, ContactUri, Flow};
use crate::config::{MaxContactsPolicy, RegistrarConfig};
use crate::location::{Change, Location};
use crate::reply::{Reply, contact_value, date_value, parse_q};
use bytes::Bytes;
use sip_msg::{Contact, HeaderName, Message, NameAddr, Uri};

/// Option tags the registrar supports.
pub const SUPPORTED: &[&str] = &["path", "outbound"];

/// What the core hands the registrar for one REGISTER.
pub struct RegisterInput<'a> {
    pub req: &'a Message,
    /// The flow it arrived on.
    pub flow: Flow,
    /// Unix time, ms.
    pub now_ms: u64,
    /// The authenticated (user, domain), or `None` when authentication is off.
    pub auth_user: Option<(&'a str, &'a str)>,
    /// By Contact index: the id a new binding for that Contact gets (a
    /// mid-registrar names the binding upstream before it exists locally);
    /// empty or `None`: a fresh id.
    pub fresh_ids: &'a [Option<String>],
    /// By Contact index: the longest expiry to grant (what an upstream
    /// registrar granted); empty or `None`: no cap beyond `max_expires`.
    pub caps: &'a [Option<u32>],
    /// Decide without changing anything: the outcome's `contact_ids` and
    /// reply code say what the request would do (a mid-registrar checks a
    /// REGISTER before it forwards it); `changes` stays empty.
    pub dry_run: bool,
}

/// The registrar's answer: the reply, and what must be durable before it is sent.
#[derive(Debug)]
pub struct Outcome {
    pub reply: Reply,
    pub changes: Vec<Change>,
    /// The AoR concerned (when the request got that far).
    pub aor: Option<Aor>,
    /// By Contact index: the binding the Contact updates, creates or
    /// removes (`None`: a removal of nothing, or `Contact: *`).
    pub contact_ids: Vec<Option<String>>,
}

impl Outcome {
    fn reject(reply: Reply) -> Outcome {
        Outcome { reply, changes: Vec::new(), aor: None, contact_ids: Vec::new() }
    }
}

/// The registrar: its configuration and the location index.
pub struct Registrar {
    pub config: RegistrarConfig,
    pub location: Location,
    id_state: u64,
}

/// One Contact of the request, decoded.
struct Wanted {
    uri: Uri,
    expires: u32,
    q: Option<u16>,
    instance: Option<String>,
    reg_id: Option<u32>,
    /// The Contact carries a reg-id, whether or not outbound applies.
    has_reg_id: bool,
}

impl Registrar {
    /// `seed` makes binding ids unique across restarts (the server passes a random value).
    pub fn new(config: RegistrarConfig, seed: u64) -> Registrar {
        Registrar { config, location: Location::new(), id_state: seed }
    }

    fn new_id(&mut self) -> String {
        // splitmix64: distinct for every call, unpredictable enough for an opaque id.
        self.id_state = self.id_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.id_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        format!("{:016x}", z ^ (z >> 31))
    }

    /// Removes expired bindings; the changes to persist.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Change> {
        self.location.expire(now_ms).into_iter().map(|b| Change::Remove { aor: b.aor, id: b.id }).collect()
    }

    /// A connection closed: outbound bindings on it are removed (RFC 5626:
    /// the flow is the binding), except those that carry push parameters,
    /// which stay with their flow marked dead so that a push can wake the
    /// device (RFC 8599 phones lose their connection by design when the OS
    /// suspends them). Other bindings keep their contact and lose the flow.
    pub fn conn_closed(&mut self, conn: u64, now_ms: u64) -> Vec<Change> {
        let refs = self.location.conn_closed(conn);
        let mut changes = Vec::new();
        for (aor, id) in refs {
            let Some(b) = self.location.binding(&aor, &id) else { continue };
            if b.is_outbound() && !b.is_push_capable() {
                let tomb = u64::from(self.config.tombstone_secs) * 1000;
                if let Some(b) = self.location.remove(&aor, &id, now_ms, tomb, None) {
                    changes.push(Change::Remove { aor: b.aor, id: b.id });
                }
            } else {
                changes.push(Change::Upsert(Box::new(b.clone())));
            }
        }
        changes
    }

    /// Removes one binding (management API).
    pub fn remove_binding(&mut self, aor: &Aor, id: &str, now_ms: u64) -> Option<Change> {
        let tomb = u64::from(self.config.tombstone_secs) * 1000;
        self.location.remove(aor, id, now_ms, tomb, None).map(|b| Change::Remove { aor: b.aor, id: b.id })
    }

    /// Removes every binding of an AoR (management API).
    pub fn remove_aor(&mut self, aor: &Aor, now_ms: u64) -> Vec<Change> {
        let ids: Vec<String> = self.location.get(aor).iter().map(|b| b.id.clone()).collect();
        ids.iter().filter_map(|id| self.remove_binding(aor, id, now_ms)).collect()
    }

    /// Processes a REGISTER.
    pub fn register(&mut self, input: RegisterInput<'_>) -> Outcome {
        let req = input.req;
        let now = input.now_ms;
        // Step 1: the domain of the Request-URI must be ours.
        let Some(ruri) = req.uri().and_then(Uri::as_sip) else {
            return Outcome::reject(Reply::new(416));
        };
        let rdomain = Aor::from_uri(&sip_msg::SipUri::new(ruri.host.clone(), None)).to_string();
        if !self.config.serves(&rdomain) {
            return Outcome::reject(Reply::new(403).reason("Domain Not Served"));
        }
        // Step 2: extensions.
        let unsupported: Vec<String> = req
            .tokens(&HeaderName::Require)
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .filter(|t| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() {
            return Outcome::reject(Reply::new(420).header(HeaderName::Unsupported, unsupported.join(", ")));
        }
        // Step 5: the AoR (To) must be a SIP URI of the Request-URI's domain.
        let to = match req.to() {
            Ok(t) => t,
            Err(_) => return Outcome::reject(Reply::new(400)),
        };
        let Some(to_uri) = to.uri.as_sip() else {
            return Outcome::reject(Reply::new(400).reason("To Is Not A SIP URI"));
        };
        let aor = Aor::from_uri(to_uri);
        if !aor.domain().eq_ignore_ascii_case(&rdomain) || aor.user().is_empty() {
            return Outcome::reject(Reply::new(404).reason("Not Found (AoR not in this domain)"));
        }
        // Steps 3–4: the authenticated user may only register its own AoR.
        if let Some((user, domain)) = input.auth_user
            && (aor.user() != user || !aor.domain().eq_ignore_ascii_case(domain))
        {
            return Outcome::reject(
                Reply::new(403).reason("Forbidden (AoR does not belong to the authenticated user)"),
            );
        }
        let call_id = req.call_id().cloned().unwrap_or_default();
        let cseq = match req.cseq() {
            Ok(c) => c.seq,
            Err(_) => return Outcome::reject(Reply::new(400)),
        };
        let contacts = match req.contacts() {
            Ok(c) => c,
            Err(_) => return Outcome::reject(Reply::new(400)),
        };
        // A malformed Expires is not taken as the default: the UA would believe
        // in an interval it never asked for.
        if req.try_expires().is_err() {
            return Outcome::reject(Reply::new(400).reason("Invalid Expires Header"));
        }
        let supported = |tag: &str| req.tokens(&HeaderName::Supported).any(|t| t.eq_ignore_ascii_case(tag.as_bytes()));
        let path: Vec<String> =
            req.headers.get_all(&HeaderName::Path).map(|v| String::from_utf8_lossy(v).into_owned()).collect();
        let mut outcome =
            Outcome { reply: Reply::new(200), changes: Vec::new(), aor: Some(aor.clone()), contact_ids: Vec::new() };

        if contacts.iter().any(|c| matches!(c, Contact::Star)) {
            // Step 6: `Contact: *` removes everything, with Expires: 0 and nothing else.
            if contacts.len() != 1 || req.expires() != Some(0) {
                return Outcome::reject(Reply::new(400).reason("Contact * Needs Expires 0 And No Other Contact"));
            }
            let existing: Vec<Binding> = self.location.get(&aor).to_vec();
            // A binding with this Call-ID and a CSeq not lower than ours was written
            // by a later request (a retransmission of this one finds nothing left).
            if existing.iter().any(|b| b.call_id[..] == call_id[..] && cseq <= b.cseq) {
                return Outcome::reject(Reply::new(400).reason("Out Of Order CSeq"));
            }
            if input.dry_run {
                return outcome;
            }
            let tomb = u64::from(self.config.tombstone_secs) * 1000;
            for b in existing {
                if let Some(b) = self.location.remove(&aor, &b.id, now, tomb, Some((&call_id, cseq))) {
                    outcome.changes.push(Change::Remove { aor: b.aor, id: b.id });
                }
            }
        } else if !contacts.is_empty() {
            // Step 7: decode every Contact first, so that the request applies atomically.
            let first_hop = req.headers.count(&HeaderName::Via) == 1
                || path
                    .first()
                    .and_then(|p| NameAddr::parse(&Bytes::from(p.clone())).ok())
                    .is_some_and(|p| p.uri.as_sip().is_some_and(|u| u.params.contains("ob")));
            let mut wanted = Vec::with_capacity(contacts.len());
            for c in &contacts {
                let Contact::Addr(na) = c else { unreachable!("star handled above") };
                match self.decode(req, na, first_hop && supported("outbound")) {
                    Ok(w) => wanted.push(w),
                    Err(r) => return Outcome::reject(r),
                }
            }
            // RFC 5626 §6: a reg-id names one flow of one instance, so it can
            // only come with a single Contact being registered.
            if wanted.iter().filter(|w| w.expires > 0).count() > 1 && wanted.iter().any(|w| w.has_reg_id) {
                return Outcome::reject(Reply::new(400).reason("Several Contacts With reg-id"));
            }
            if let Some(w) = wanted.iter().find(|w| w.expires > 0 && w.expires < self.config.min_expires) {
                let _ = w;
                return Outcome::reject(
                    Reply::new(423).header(HeaderName::MinExpires, self.config.min_expires.to_string()),
                );
            }
            if !first_hop
                && supported("outbound")
                && contacts.iter().any(|c| matches!(c, Contact::Addr(na) if na.params.contains("reg-id")))
            {
                return Outcome::reject(Reply::new(439).reason("First Hop Lacks Outbound Support"));
            }
            let existing: Vec<Binding> = self.location.get(&aor).to_vec();
            let mut upserts: Vec<Binding> = Vec::new();
            let mut removes: Vec<String> = Vec::new();
            for (i, w) in wanted.into_iter().enumerate() {
                let found = existing.iter().find(|b| matches(b, &w)).or_else(|| {
                    // RFC 8599 R4: a device without an instance that comes back from a new
                    // address with the same Call-ID and the same push coordinates is the
                    // same device: its binding is updated, not doubled.
                    existing.iter().find(|b| b.call_id[..] == call_id[..] && same_push_device(b, &w))
                });
                if let Some(b) = found {
                    if b.call_id[..] == call_id[..] && cseq <= b.cseq {
                        if cseq == b.cseq {
                            outcome.contact_ids.push(Some(b.id.clone()));
                            continue; // retransmission: already applied
                        }
                        return Outcome::reject(Reply::new(400).reason("Out Of Order CSeq"));
                    }
                } else {
                    let probe = probe_binding(&aor, &w);
                    match self.location.tombstone(&aor, &Location::match_key(&probe), &call_id, now) {
                        // The request that removed it, again: already applied.
                        Some(t) if t == cseq => {
                            outcome.contact_ids.push(None);
                            continue;
                        }
                        // An older request of the same Call-ID must not bring it back.
                        Some(t) if cseq < t => return Outcome::reject(Reply::new(400).reason("Out Of Order CSeq")),
                        _ => {}
                    }
                }
                let cap = input.caps.get(i).copied().flatten().unwrap_or(u32::MAX);
                if w.expires == 0 || cap == 0 {
                    outcome.contact_ids.push(found.map(|b| b.id.clone()));
                    if let Some(b) = found
                        && !removes.contains(&b.id)
                    {
                        removes.push(b.id.clone());
                    }
                    continue;
                }
                let expires = w.expires.min(self.config.max_expires).min(cap);
                let id = match found {
                    Some(b) => b.id.clone(),
                    None => match upserts.iter().find(|u| same_key(u, &w)) {
                        Some(u) => u.id.clone(),
                        None => match input.fresh_ids.get(i).cloned().flatten() {
                            Some(id) => id,
                            None => self.new_id(),
                        },
                    },
                };
                outcome.contact_ids.push(Some(id.clone()));
                upserts.retain(|u| u.id != id);
                upserts.push(Binding {
                    id,
                    aor: aor.clone(),
                    // Own copies: slices of the request would keep the whole
                    // datagram alive for the binding's lifetime.
                    uri: ContactUri::new(&w.uri),
                    q: w.q,
                    expires_at: now + u64::from(expires) * 1000,
                    call_id: Box::from(&call_id[..]),
                    cseq,
                    instance: w.instance.map(String::into_boxed_str),
                    reg_id: w.reg_id,
                    path: path.clone(),
                    flow: input.flow.clone(),
                    user_agent: req.headers.get(&HeaderName::UserAgent).map(|v| String::from_utf8_lossy(v).into()),
                    registered_at: now,
                });
            }
            // The per-AoR limit.
            let kept = existing.iter().filter(|b| !removes.contains(&b.id) && !upserts.iter().any(|u| u.id == b.id));
            let new_count = kept.clone().count() + upserts.len();
            if self.config.max_contacts > 0 && new_count > self.config.max_contacts {
                match self.config.max_contacts_policy {
                    MaxContactsPolicy::Reject => {
                        return Outcome::reject(Reply::new(403).reason("Too Many Contacts").header(
                            HeaderName::Warning,
                            format!("399 sipwake \"at most {} contacts per AoR\"", self.config.max_contacts),
                        ));
                    }
                    MaxContactsPolicy::ReplaceOldest => {
                        let mut victims: Vec<&Binding> = kept.collect();
                        victims.sort_by_key(|b| b.expires_at);
                        let excess = new_count - self.config.max_contacts;
                        for v in victims.into_iter().take(excess) {
                            removes.push(v.id.clone());
                        }
                    }
                }
            }
            if input.dry_run {
                return outcome;
            }
            let tomb = u64::from(self.config.tombstone_secs) * 1000;
            for id in removes {
                if let Some(b) = self.location.remove(&aor, &id, now, tomb, Some((&call_id, cseq))) {
                    outcome.changes.push(Change::Remove { aor: b.aor, id: b.id });
                }
            }
            for b in upserts {
                self.location.upsert(b.clone());
                outcome.changes.push(Change::Upsert(Box::new(b)));
            }
        }
        // Step 8: the 200 lists every current binding.
        let mut reply = Reply::new(200);
        let mut outbound = false;
        for b in self.location.lookup(&aor, now) {
            outbound |= b.reg_id.is_some() && b.flow == input.flow;
            reply.headers.push((HeaderName::Contact, contact_value(b, now)));
        }
        if outbound && supported("outbound") {
            reply.headers.push((HeaderName::Require, "outbound".into()));
        }
        if !path.is_empty() && supported("path") {
            for p in &path {
                reply.headers.push((HeaderName::Path, p.clone()));
            }
        }
        reply.headers.push((HeaderName::Supported, SUPPORTED.join(", ")));
        reply.headers.push((HeaderName::Date, date_value(now)));
        outcome.reply = reply;
        outcome
    }

    /// Decodes one Contact of a REGISTER.
    /// The ids of the existing bindings a REGISTER's Contacts refer to, by
    /// the same rule the registrar applies (the one binding matcher).
    pub fn bindings_named_by(&self, req: &Message) -> Vec<String> {
        let Some(aor) = req.to().ok().and_then(|t| t.uri.as_sip().map(Aor::from_uri)) else { return Vec::new() };
        let call_id = req.call_id().cloned().unwrap_or_default();
        let existing = self.location.get(&aor);
        let mut out = Vec::new();
        for c in req.contacts().unwrap_or_default() {
            let Contact::Addr(na) = c else { continue };
            let Ok(w) = self.decode(req, &na, true) else { continue };
            let found = existing
                .iter()
                .filter(|b| matches(b, &w) || (b.call_id[..] == call_id[..] && same_push_device(b, &w)))
                .map(|b| b.id.clone());
            for id in found {
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        out
    }

    fn decode(&self, req: &Message, na: &NameAddr, outbound: bool) -> Result<Wanted, Reply> {
        // RFC 3261 §10.3 step 6: the Contact's expires, else Expires (checked
        // well-formed by the caller), else the default. A malformed value is a
        // 400, not the default: the UA would believe in an interval it never
        // asked for.
        let expires = match na.params.get("expires") {
            Some(Some(v)) if !sip_msg::chars::is_delta_seconds(v) => {
                return Err(Reply::new(400).reason("Invalid Contact expires Parameter"));
            }
            // Well-formed but above 2^32-1: the default (RFC 4475 scalar02).
            Some(Some(v)) => sip_msg::chars::parse_u32(v).unwrap_or(self.config.default_expires),
            Some(None) => return Err(Reply::new(400).reason("Contact expires Without Value")),
            None => req.expires().unwrap_or(self.config.default_expires),
        };
        let q = match na.params.get("q") {
            Some(Some(v)) => Some(parse_q(v).ok_or_else(|| Reply::new(400).reason("Invalid q-value"))?),
            Some(None) => return Err(Reply::new(400).reason("Invalid q-value")),
            None => None,
        };
        let instance = na
            .params
            .value("+sip.instance")
            .map(|v| String::from_utf8_lossy(&sip_msg::params::unquote(v)).into_owned());
        let reg_id = match na.params.get("reg-id") {
            Some(Some(v)) => {
                Some(sip_msg::chars::parse_u32(v).ok_or_else(|| Reply::new(400).reason("Invalid reg-id"))?)
            }
            Some(None) => return Err(Reply::new(400).reason("Invalid reg-id")),
            None => None,
        };
        // RFC 5626 §6: reg-id counts only with an instance and when outbound applies.
        let has_reg_id = reg_id.is_some();
        let reg_id = if outbound && instance.is_some() { reg_id } else { None };
        Ok(Wanted { uri: na.uri.clone(), expires, q, instance, reg_id, has_reg_id })
    }
}

/// A copy of a URI that owns its bytes (one small buffer).
/// Whether an existing binding is the one a Contact of the request refers to:
/// the same instance (and reg-id) when the Contact has an instance, else
/// the same URI (RFC 3261 §19.1.4 comparison).
fn matches(b: &Binding, w: &Wanted) -> bool {
    match &w.instance {
        Some(i) => {
            (b.instance.as_deref() == Some(i.as_str()) && b.reg_id == w.reg_id)
                || (b.instance.is_none() && uri_eq(&b.uri, &w.uri))
        }
        None => uri_eq(&b.uri, &w.uri),
    }
}

/// RFC 8599 R4: no instance on either side, and the same pn-provider,
/// pn-prid and pn-param (a push device known by its push coordinates).
fn same_push_device(b: &Binding, w: &Wanted) -> bool {
    if b.instance.is_some() || w.instance.is_some() {
        return false;
    }
    let Some(stored) = b.uri.parse() else { return false };
    let (Some(x), Some(y)) = (stored.as_sip(), w.uri.as_sip()) else { return false };
    x.params.value("pn-provider").is_some()
        && ["pn-provider", "pn-prid", "pn-param"].iter().all(|n| x.params.value(n) == y.params.value(n))
}

fn same_key(b: &Binding, w: &Wanted) -> bool {
    match &w.instance {
        Some(i) => b.instance.as_deref() == Some(i.as_str()) && b.reg_id == w.reg_id,
        None => b.instance.is_none() && uri_eq(&b.uri, &w.uri),
    }
}

/// A stored Contact against one of the request (parsed: RFC 3261 §19.1.4).
fn uri_eq(stored: &ContactUri, b: &Uri) -> bool {
    let parsed = stored.parse();
    match (parsed.as_ref().and_then(Uri::as_sip), b.as_sip()) {
        (Some(x), Some(y)) => x.equivalent(y),
        _ => stored.as_str().eq_ignore_ascii_case(&b.to_string()),
    }
}

/// A stand-in binding to compute the match key of a Contact (tombstone lookup).
fn probe_binding(aor: &Aor, w: &Wanted) -> Binding {
    Binding {
        id: String::new(),
        aor: aor.clone(),
        uri: ContactUri::new(&w.uri),
        q: None,
        expires_at: 0,
        call_id: Box::default(),
        cseq: 0,
        instance: w.instance.as_deref().map(Box::from),
        reg_id: w.reg_id,
        path: Vec::new(),
        flow: Flow {
            transport: crate::binding::FlowTransport::Udp,
            remote: ([0, 0, 0, 0], 0).into(),
            local: ([0, 0, 0, 0], 0).into(),
            conn: None,
        },
        user_agent: None,
        registered_at: 0,
    }
}
