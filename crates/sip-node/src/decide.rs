//! What happens to a request that is not a REGISTER, ACK or CANCEL (RFC 3261
//! §16.3–§16.5): answered here, rejected, challenged, or proxied to a target
//! set, with the push bindings to wake first (RFC 8599, through `pn`).
//!
//! Pure decisions over the node's state: nothing is sent from here.

use crate::credentials::Creds;
use crate::node::Node;
use crate::proxy::branch::BranchTarget;
use crate::proxy::{self as px, route};
use sip_auth::{AuthOutcome, Which};
use sip_msg::{HeaderName, Message, Source, Target, Transport};
use sip_registrar::Aor;
use std::time::Instant;

/// A target of a proxied request: id, q×1000, how to reach it.
pub(crate) type TargetSpec = (String, u16, BranchTarget);

/// What to do with a request.
pub(crate) enum Decision {
    /// Answer it here (OPTIONS to the server, requests to it).
    Local,
    /// Answer with this status (and headers).
    Reject(u16, Option<&'static str>, Vec<(HeaderName, String)>),
    /// The caller's credentials must be looked up first (the request waits).
    Wait,
    /// Proxy it.
    Proxy(Box<Proxied>),
}

/// A request to proxy: the request after Route processing, its targets, and
/// the push bindings to wake (RFC 8599).
pub(crate) struct Proxied {
    pub request: Message,
    pub targets: Vec<TargetSpec>,
    pub record_route: bool,
    /// Push bindings to wake: (binding id, live flow over which it is also tried at once).
    pub park: Vec<(String, Option<TargetSpec>)>,
    pub aor: Option<Aor>,
    /// The push (if any) wakes a device for a mid-dialog request (PURR, RFC 8599 §6).
    pub mid_dialog: bool,
    /// Mid-registrar: a device's request going to the upstream (its Request-URI's AoR).
    pub upstream_aor: Option<Aor>,
}

impl Node {
    /// §16.3–§16.5: checks, Route processing, caller authentication, target set.
    pub(crate) fn decide(&mut self, msg: &Message, src: &Source, now: Instant) -> Decision {
        let Some(method) = msg.method().cloned() else { return Decision::Reject(400, None, Vec::new()) };
        let in_dialog = msg.to().ok().is_some_and(|t| t.tag().is_some());
        let mut req = msg.clone();
        // RFC 8599 R54: a PURR may be in the topmost Route (ours or not); read it
        // before our own Route values are popped.
        // Only mid-dialog requests and INVITEs with Replaces can carry one (R54, R58).
        let purr_route = self.pn.is_some() && (in_dialog || req.headers.contains(&HeaderName::Replaces));
        let top_route_purr = if purr_route { crate::pn::purr_in_top_route(&req) } else { None };
        // Route processing (§16.4): a strict router before us, then our own Route values.
        let mut users: Vec<String> = route::undo_strict_routing(&mut req, &self.me).into_iter().collect();
        users.extend(route::pop_my_routes(&mut req, &self.me));
        let flow = users.iter().find_map(|u| self.tokens.decode(u)).and_then(|(a, b)| {
            if a.matches(src.transport, src.remote, src.conn) {
                Some(b.target())
            } else if b.matches(src.transport, src.remote, src.conn) {
                Some(a.target())
            } else {
                None
            }
        });
        let has_route = req.headers.contains(&HeaderName::Route);
        // RFC 8599 §6: a mid-dialog request carrying one of our PURRs (in the
        // Request-URI or the top Route), or an INVITE with Replaces to a PURR
        // Contact (R58/R59), goes to a device that may be asleep.
        if purr_route && let Some(d) = self.purr_decision(&req, top_route_purr, in_dialog, now) {
            return d;
        }
        let Some(ruri) = req.uri().and_then(|u| u.as_sip()).cloned() else {
            if has_route || flow.is_some() {
                // A non-SIP Request-URI can still be routed by Route / flow.
                return self.forward_single(req, has_route, flow);
            }
            return Decision::Reject(416, None, Vec::new());
        };
        let domain = Aor::from_uri(&sip_msg::SipUri::new(ruri.host.clone(), None)).to_string();
        // Addressed to the server itself (no user part): answered here. With a
        // user part, our address is a domain like any other (sip:alice@IP).
        let to_us =
            !has_route && flow.is_none() && ruri.user.is_none() && (self.me.is_me(&ruri) || self.me.serves(&domain));
        if to_us {
            return Decision::Local;
        }
        // §16.3 step 3: Max-Forwards.
        if msg.max_forwards().ok().flatten() == Some(0) {
            return Decision::Reject(483, None, Vec::new());
        }
        // §16.3 step 4: loops (RFC 5393: a spiral is not a loop).
        let hash = route::loop_hash(msg);
        if route::is_loop(msg, &self.me, &hash) {
            return Decision::Reject(482, None, Vec::new());
        }
        // §16.3 step 5: Proxy-Require (we support no proxy extension).
        let unsupported: Vec<String> =
            msg.tokens(&HeaderName::ProxyRequire).map(|t| String::from_utf8_lossy(t).into_owned()).collect();
        if !unsupported.is_empty() {
            return Decision::Reject(420, None, vec![(HeaderName::Unsupported, unsupported.join(", "))]);
        }
        if self.mid.is_some() {
            return self.mid_decision(req, &ruri, has_route, flow, in_dialog, &method, now);
        }
        if flow.is_some() || (in_dialog && (has_route || !self.me.serves(&domain))) {
            // Mid-dialog: the route set (or the remote target) decides, no lookup.
            return self.forward_single(req, has_route, flow);
        }
        // An initial request: who is calling?
        let from_domain = msg.from().ok().and_then(|f| {
            f.uri.as_sip().map(|u| Aor::from_uri(&sip_msg::SipUri::new(u.host.clone(), None)).to_string())
        });
        let from_local = from_domain.as_deref().is_some_and(|d| self.me.serves(d));
        let local_target = self.me.serves(&domain);
        let mut authenticated = false;
        if !in_dialog && from_local && self.pcfg.authenticate_local_callers && self.auth.is_some() {
            let realm = from_domain.clone().unwrap_or_default();
            match self.authenticate(msg, &realm, Which::ProxyAuthorization, src.remote, now) {
                Creds::Wait => return Decision::Wait,
                Creds::Outcome(AuthOutcome::Authenticated { username }) => {
                    let from_user = msg.from().ok().and_then(|f| f.uri.as_sip().and_then(|u| u.user_unescaped()));
                    if from_user.as_deref() != Some(username.as_bytes()) {
                        return Decision::Reject(
                            403,
                            Some("Forbidden (From does not match the credentials)"),
                            Vec::new(),
                        );
                    }
                    authenticated = true;
                }
                Creds::Outcome(AuthOutcome::Challenge { stale, .. }) => {
                    return Decision::Reject(407, None, self.challenge(&realm, Which::ProxyAuthorization, stale, now));
                }
            }
        }
        if !local_target || has_route {
            // Another domain, or a pre-loaded route elsewhere: relay only for
            // authenticated local users (no open relay).
            if (authenticated || (from_local && self.auth.is_none())) && self.pcfg.relay_for_local_users {
                return self.forward_single(req, has_route, None);
            }
            return Decision::Reject(403, Some("Relaying Denied"), Vec::new());
        }
        if !in_dialog && !from_local && !self.pcfg.allow_unauthenticated_inbound {
            return Decision::Reject(403, Some("Forbidden (inbound calls not allowed)"), Vec::new());
        }
        // §16.5: the target set from the location service.
        let aor = Aor::from_uri(&ruri);
        let now_ms = self.unix_ms(now);
        let bindings: Vec<sip_registrar::Binding> = self.registrar.location.lookup(&aor, now_ms).cloned().collect();
        if bindings.is_empty() && in_dialog {
            // A mid-dialog request to one of our AoRs with nobody there.
            return Decision::Reject(481, None, Vec::new());
        }
        if bindings.is_empty() {
            // 480 for a subscriber (not reachable now), 404 for nobody; a user
            // the cache does not know yet is looked up first.
            return match self.creds.exists(aor.user(), aor.domain(), now) {
                Some(true) => Decision::Reject(480, None, Vec::new()),
                Some(false) => Decision::Reject(404, None, Vec::new()),
                None if self.creds.want(aor.user(), aor.domain()) => Decision::Wait,
                None => Decision::Reject(404, None, Vec::new()),
            };
        }
        let (targets, park) = self.lookup_targets(&bindings, in_dialog);
        Decision::Proxy(Box::new(Proxied {
            request: req,
            targets,
            record_route: self.pcfg.record_route && px::creates_dialog(&method),
            park,
            aor: Some(aor),
            mid_dialog: false,
            upstream_aor: None,
        }))
    }

    /// The branches of a lookup: plain bindings to try now, push bindings
    /// to wake (RFC 8599 §6: a mid-dialog request without pn-purr is never
    /// pushed).
    fn lookup_targets(
        &self,
        bindings: &[sip_registrar::Binding],
        in_dialog: bool,
    ) -> (Vec<TargetSpec>, Vec<(String, Option<TargetSpec>)>) {
        let mut targets = Vec::new();
        let mut park = Vec::new();
        for b in bindings {
            let spec = (b.id.clone(), b.q.unwrap_or(1000), self.branch_target(b));
            if !in_dialog && self.pn.as_ref().is_some_and(|p| p.is_push_binding(b)) {
                // A live connection is no proof that the app is awake (iOS
                // suspends apps with their sockets open): push, and try the
                // live flow at once as well.
                let live = self.live_flow(b).map(|_| spec);
                park.push((b.id.clone(), live));
            } else {
                targets.push(spec);
            }
        }
        (targets, park)
    }

    /// Mid-registrar routing: a request the upstream sends to one of the
    /// Contacts we registered there (its `ctid`) goes to the devices behind
    /// it (push and park as in registrar mode); mid-dialog requests follow
    /// their route set; any other request of a device goes to the upstream,
    /// which authenticates and routes it (we stay in its dialog, so
    /// mid-dialog requests to a sleeping device reach us, RFC 8599 §6).
    #[expect(clippy::too_many_arguments, reason = "the parts `decide` already took apart")]
    fn mid_decision(
        &self,
        req: Message,
        ruri: &sip_msg::SipUri,
        has_route: bool,
        flow: Option<Target>,
        in_dialog: bool,
        method: &sip_msg::Method,
        now: Instant,
    ) -> Decision {
        let Some(mid) = &self.mid else { return Decision::Reject(500, None, Vec::new()) };
        if !has_route
            && self.me.is_me(&sip_msg::SipUri { user: None, ..ruri.clone() })
            && let Some(found) = mid.lookup_key(ruri)
        {
            let Ok(reg) = found else {
                return Decision::Reject(404, Some("Not Found (no such registration)"), Vec::new());
            };
            let now_ms = self.unix_ms(now);
            let bindings: Vec<sip_registrar::Binding> =
                self.mid_behind(reg).into_iter().filter(|b| b.expires_at > now_ms).cloned().collect();
            if bindings.is_empty() {
                return Decision::Reject(480, None, Vec::new());
            }
            // The upstream's qualify / NAT pings of the Contact we registered
            // there are answered here: pushing a sleeping phone every 30 s
            // to answer an OPTIONS would drain it.
            if *method == sip_msg::Method::Options && !in_dialog {
                return Decision::Local;
            }
            let (targets, park) = self.lookup_targets(&bindings, in_dialog);
            return Decision::Proxy(Box::new(Proxied {
                request: req,
                targets,
                record_route: self.pcfg.record_route && px::creates_dialog(method),
                park,
                aor: Some(reg.aor.clone()),
                mid_dialog: false,
                upstream_aor: None,
            }));
        }
        if flow.is_some() || in_dialog || has_route {
            return self.forward_single(req, has_route, flow);
        }
        let t = BranchTarget { uri: None, path: Vec::new(), flow: Some(mid.cfg.upstream), hop: None };
        Decision::Proxy(Box::new(Proxied {
            request: req,
            targets: vec![("upstream".into(), 1000, t)],
            record_route: self.pcfg.record_route && px::creates_dialog(method),
            park: Vec::new(),
            aor: None,
            mid_dialog: false,
            upstream_aor: Some(Aor::from_uri(ruri)),
        }))
    }

    /// RFC 8599 §6 / R46–R59: a request carrying one of our PURRs wakes the
    /// device it names. `None`: no PURR, or an unknown or forged one (R50:
    /// never pushed; the request is routed as usual).
    fn purr_decision(
        &mut self,
        req: &Message,
        top_route_purr: Option<String>,
        in_dialog: bool,
        now: Instant,
    ) -> Option<Decision> {
        let pn = self.pn.as_mut()?;
        let purr = crate::pn::purr_in_uri(req).or(top_route_purr).or_else(|| crate::pn::purr_in_top_route(req))?;
        let Some(id) = pn.resolve_purr(&purr, now) else {
            tracing::debug!("unknown pn-purr; routing normally");
            return None;
        };
        // The AoR from the push module's index: no scan of the location.
        let aor = pn.aor_of(&id)?;
        let b = self.registrar.location.binding(&aor, &id)?.clone();
        let method = req.method().cloned()?;
        let spec = (b.id.clone(), b.q.unwrap_or(1000), self.branch_target(&b));
        let live = self.live_flow(&b).map(|_| spec);
        Some(Decision::Proxy(Box::new(Proxied {
            request: req.clone(),
            targets: Vec::new(),
            record_route: !in_dialog && self.pcfg.record_route && px::creates_dialog(&method),
            park: vec![(id, live)],
            aor: Some(aor),
            mid_dialog: true,
            upstream_aor: None,
        })))
    }

    /// The live connection of a binding's flow, if any.
    pub(crate) fn live_flow(&self, b: &sip_registrar::Binding) -> Option<u64> {
        b.flow.conn.filter(|c| self.conns.contains(c))
    }

    /// How a branch reaches a binding: over its flow, its Path, or its Contact.
    pub(crate) fn branch_target(&self, b: &sip_registrar::Binding) -> BranchTarget {
        // A device whose flow another live node of the cluster holds: through it.
        if let Some(t) = self.cluster_route(b) {
            return t;
        }
        let uri = b.uri.parse();
        let flow = if !b.path.is_empty() {
            None
        } else if b.flow.transport.is_reliable() {
            // Over the connection the device opened, while it is open;
            // else to its Contact like any RFC 3261 client.
            self.live_flow(b).map(|c| Target { transport: b.flow.transport, remote: b.flow.remote, conn: Some(c) })
        } else {
            // UDP: to the source address of its REGISTER when the device is
            // behind NAT (its Contact names another IP, or it uses outbound);
            // else to its Contact (RFC 3261).
            let contact_ip = uri.as_ref().and_then(sip_msg::Uri::as_sip).and_then(|u| u.host.ip());
            let natted = b.is_outbound() || contact_ip != Some(b.flow.remote.ip());
            natted.then_some(Target { transport: Transport::Udp, remote: b.flow.remote, conn: None })
        };
        BranchTarget { uri, path: b.path.clone(), flow, hop: None }
    }
}

impl Node {
    /// One branch to wherever the request's Route, flow or Request-URI
    /// leads; a request to another domain with no Route of its own goes to
    /// the outbound proxy when one is configured.
    fn forward_single(&self, req: Message, has_route: bool, flow: Option<Target>) -> Decision {
        let foreign = || {
            req.uri().and_then(|u| u.as_sip()).is_some_and(|u| {
                let domain = Aor::from_uri(&sip_msg::SipUri::new(u.host.clone(), None)).to_string();
                !self.me.serves(&domain) && !self.me.is_me(u)
            })
        };
        let hop = match &self.pcfg.outbound_proxy {
            Some(p) if !has_route && flow.is_none() && foreign() => Some(p.clone()),
            _ => None,
        };
        // An initial request that creates a dialog (a call relayed to another
        // domain): we stay in its dialog like in our own users' calls.
        let initial = req.to().ok().is_some_and(|t| t.tag().is_none());
        let record_route =
            initial && self.pcfg.record_route && req.method().is_some_and(px::creates_dialog) && flow.is_none();
        let t = BranchTarget { uri: None, path: Vec::new(), flow: if has_route { None } else { flow }, hop };
        Decision::Proxy(Box::new(Proxied {
            request: req,
            targets: vec![("next-hop".into(), 1000, t)],
            record_route,
            park: Vec::new(),
            aor: None,
            mid_dialog: false,
            upstream_aor: None,
        }))
    }
}
