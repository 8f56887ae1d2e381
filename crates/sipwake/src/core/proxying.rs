//! The core's request routing: what happens to every request that is not a
//! REGISTER — answered here, challenged, or proxied through a
//! `sip_proxy::ProxyContext` on the transaction layer — and how branch
//! responses, CANCELs, ACKs for 2xx, timers and transaction events flow
//! back into the contexts. RFC 3261 §16.3–§16.7.

use super::{Core, Output, State, drain, local, stateless_tag, tag_for, to_peer};
use crate::proxy::branch::{self, BranchTarget};
use crate::proxy::{self as px, Ctx, route};
use sip_auth::{AuthOutcome, Which};
use sip_msg::{HeaderName, Message, Method, Via};
use sip_proxy::{Action, ContextConfig, ProxyContext, Target as PxTarget};
use sip_registrar::Aor;
use sip_transport::{Source, Target, Transport};
use sip_txn::{ClientKey, RequestEvent, ServerKey, TxnEvent, TxnKey};
use std::time::Instant;

/// How a proxied request is handled besides its targets: Record-Route, and
/// the push bindings to wake first.
pub(super) struct Parking {
    record_route: bool,
    bindings: Vec<(String, bool)>,
    aor: Option<Aor>,
    mid_dialog: bool,
}

/// What to do with a request.
pub(super) enum Decision {
    /// Answer it here (OPTIONS to the server, requests to it).
    Local,
    /// Answer with this status (and headers).
    Reject(u16, Option<&'static str>, Vec<(HeaderName, String)>),
    /// Proxy it: the request (after Route processing), its targets, and the
    /// push bindings to wake first (RFC 8599: binding id, flow alive).
    Proxy {
        request: Box<Message>,
        targets: Vec<(String, u16, BranchTarget)>,
        record_route: bool,
        park: Vec<(String, bool)>,
        aor: Option<Aor>,
        /// The push (if any) wakes a device for a mid-dialog request (PURR, RFC 8599 §6).
        mid_dialog: bool,
    },
}

impl Core {
    /// §16.3–§16.5: checks, Route processing, caller authentication, target set.
    pub(super) fn decide(&self, msg: &Message, src: &Source) -> Decision {
        let method = msg.method().cloned().expect("a request");
        let in_dialog = msg.to().ok().is_some_and(|t| t.tag().is_some());
        let mut req = msg.clone();
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
        // Request-URI, or the top Route) goes to a device that may be asleep.
        if in_dialog && let Some(d) = self.purr_decision(&req) {
            return d;
        }
        let Some(ruri) = req.uri().and_then(|u| u.as_sip()).cloned() else {
            if has_route || flow.is_some() {
                // A non-SIP Request-URI can still be routed by Route / flow.
                return self.forward_single(req, has_route, flow, src);
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
        if flow.is_some() || (in_dialog && (has_route || !self.me.serves(&domain))) {
            // Mid-dialog: the route set (or the remote target) decides, no lookup.
            return self.forward_single(req, has_route, flow, src);
        }
        // An initial request: who is calling?
        let from_domain = msg.from().ok().and_then(|f| {
            f.uri.as_sip().map(|u| Aor::from_uri(&sip_msg::SipUri::new(u.host.clone(), None)).to_string())
        });
        let from_local = from_domain.as_deref().is_some_and(|d| self.me.serves(d));
        let local_target = self.me.serves(&domain);
        let mut authenticated = false;
        if !in_dialog && from_local && self.pcfg.authenticate_local_callers && self.registrar.auth_enabled() {
            let realm = from_domain.clone().unwrap_or_default();
            match self.registrar.authenticate(msg, &realm, Which::ProxyAuthorization) {
                Some(AuthOutcome::Authenticated { username }) => {
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
                Some(AuthOutcome::Challenge { stale, .. }) => {
                    return Decision::Reject(
                        407,
                        None,
                        self.registrar.challenge(&realm, Which::ProxyAuthorization, stale),
                    );
                }
                None => {}
            }
        }
        if !local_target || has_route {
            // Another domain, or a pre-loaded route elsewhere: relay only for
            // authenticated local users (no open relay).
            if (authenticated || (from_local && !self.registrar.auth_enabled())) && self.pcfg.relay_for_local_users {
                return self.forward_single(req, has_route, None, src);
            }
            return Decision::Reject(403, Some("Relaying Denied"), Vec::new());
        }
        if !in_dialog && !from_local && !self.pcfg.allow_unauthenticated_inbound {
            return Decision::Reject(403, Some("Forbidden (inbound calls not allowed)"), Vec::new());
        }
        // §16.5: the target set from the location service.
        let aor = Aor::from_uri(&ruri);
        let bindings = self.registrar.lookup(&aor);
        if bindings.is_empty() && in_dialog {
            // A mid-dialog request to one of our AoRs with nobody there.
            return Decision::Reject(481, None, Vec::new());
        }
        if bindings.is_empty() {
            let known = self.registrar.subscriber_exists(aor.user(), aor.domain());
            return if known {
                Decision::Reject(480, None, Vec::new())
            } else {
                Decision::Reject(404, None, Vec::new())
            };
        }
        // RFC 8599 §6: a mid-dialog request without pn-purr is never pushed.
        let push_on = self.registrar.push.is_some() && !in_dialog;
        let push = self.registrar.push.as_ref();
        let (push_bindings, plain): (Vec<_>, Vec<_>) = bindings
            .iter()
            .partition(|b| push_on && b.is_push_capable() && push.is_some_and(|p| p.is_push_binding(&b.id)));
        let park: Vec<(String, bool)> = push_bindings
            .iter()
            .map(|b| (b.id.clone(), b.flow.conn.is_some_and(|c| self.transports.conn_alive(c))))
            .collect();
        let targets = plain.iter().map(|b| (b.id.clone(), b.q.unwrap_or(1000), self.branch_target(b))).collect();
        Decision::Proxy {
            request: Box::new(req),
            targets,
            record_route: self.pcfg.record_route && px::creates_dialog(&method),
            park,
            aor: Some(aor),
            mid_dialog: false,
        }
    }

    fn purr_decision(&self, req: &Message) -> Option<Decision> {
        let push = self.registrar.push.as_ref().filter(|p| p.cfg.purr)?;
        let from_uri = |u: &sip_msg::Uri| u.as_sip().and_then(|s| s.params.value("pn-purr").cloned());
        let purr = req.uri().and_then(from_uri).or_else(|| {
            req.headers
                .get(&HeaderName::Route)
                .and_then(|v| sip_msg::NameAddr::parse(v).ok())
                .and_then(|na| from_uri(&na.uri))
        })?;
        let Some((id, aor)) = push.resolve_purr(&String::from_utf8_lossy(&purr)) else {
            // R50: unknown or forged: no push, the request is routed as usual.
            tracing::debug!("unknown pn-purr; routing normally");
            return None;
        };
        let b = self.registrar.binding(&aor, &id)?;
        let awake = b.flow.conn.is_some_and(|c| self.transports.conn_alive(c));
        Some(Decision::Proxy {
            request: Box::new(req.clone()),
            targets: Vec::new(),
            record_route: false,
            park: vec![(id, awake)],
            aor: Some(aor),
            mid_dialog: true,
        })
    }

    /// How a branch reaches a binding: over its flow, its Path, or its Contact.
    pub(super) fn branch_target(&self, b: &sip_registrar::Binding) -> BranchTarget {
        let flow = if !b.path.is_empty() {
            None
        } else if b.flow.transport.is_reliable() {
            // Over the connection the device opened, while it is open;
            // else to its Contact like any RFC 3261 client.
            b.flow.conn.filter(|c| self.transports.conn_alive(*c)).map(|c| Target {
                transport: Transport::Tcp,
                remote: b.flow.remote,
                conn: Some(c),
            })
        } else {
            // UDP: to the source address of its REGISTER when the device is
            // behind NAT (its Contact names another IP, or it uses outbound);
            // else to its Contact (RFC 3261).
            let contact_ip = b.uri.as_sip().and_then(|u| u.host.ip());
            let natted = b.is_outbound() || contact_ip != Some(b.flow.remote.ip());
            natted.then_some(Target { transport: Transport::Udp, remote: b.flow.remote, conn: None })
        };
        BranchTarget { uri: Some(b.uri.clone()), path: b.path.clone(), flow }
    }

    fn forward_single(&self, req: Message, has_route: bool, flow: Option<Target>, _src: &Source) -> Decision {
        let t = BranchTarget { uri: None, path: Vec::new(), flow: if has_route { None } else { flow } };
        Decision::Proxy {
            request: Box::new(req),
            targets: vec![("next-hop".into(), 1000, t)],
            record_route: false,
            park: Vec::new(),
            aor: None,
            mid_dialog: false,
        }
    }

    /// Requests other than REGISTER, ACK and CANCEL.
    pub(super) fn on_other_request(&self, src: Source, msg: Message, target: Target) {
        let method = msg.method().cloned().expect("a request");
        let decision = self.decide(&msg, &src);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let what = match &decision {
                Decision::Local => "local".to_string(),
                Decision::Reject(c, r, _) => format!("reject {c} {}", r.unwrap_or("")),
                Decision::Proxy { targets, .. } => format!("proxy to {} target(s)", targets.len()),
            };
            tracing::debug!(%method, uri = %msg.uri().map(|u| u.to_string()).unwrap_or_default(), decision = %what, "request routed");
        }
        let (code, reason, headers) = match decision {
            Decision::Local => {
                let a = local::answer(&msg);
                (a.code, a.reason, a.headers)
            }
            Decision::Reject(c, r, h) => (c, r, h),
            Decision::Proxy { request, targets, record_route, park, aor, mid_dialog } => {
                let park = Parking { record_route, bindings: park, aor, mid_dialog };
                self.start_proxy(src, msg, *request, targets, target, park);
                self.drain_push();
                return;
            }
        };
        if method != Method::Invite {
            // Answered at once and idempotently: statelessly (RFC 3261 §8.2.7).
            let resp = self.build_response(&msg, &stateless_tag(&msg), code, reason, &headers);
            self.send(&target, resp.to_bytes());
            return;
        }
        // INVITE: through a server transaction (the non-2xx must be retransmitted until ACKed).
        let now = Instant::now();
        let out = {
            let mut st = self.state.lock().expect("core state");
            match st.txn.on_request(msg, to_peer(&target), now) {
                RequestEvent::New { key, msg, .. } => {
                    let resp = self.build_response(&msg, &tag_for(&key), code, reason, &headers);
                    let _ = st.txn.respond(&key, resp, now);
                }
                RequestEvent::Invalid { error, msg, .. } => {
                    drop(st);
                    self.reply_stateless(&src, &msg.headers, 400, error.reason);
                    return;
                }
                _ => {}
            }
            self.settle(&mut st, now)
        };
        self.flush(out);
    }

    fn start_proxy(
        &self,
        src: Source,
        msg: Message,
        request: Message,
        targets: Vec<(String, u16, BranchTarget)>,
        target: Target,
        parking: Parking,
    ) {
        let Parking { record_route, bindings: park, aor, mid_dialog } = parking;
        let now = Instant::now();
        let out = {
            let mut st = self.state.lock().expect("core state");
            let key = match st.txn.on_request(msg, to_peer(&target), now) {
                RequestEvent::New { key, .. } => key,
                RequestEvent::Invalid { error, msg, .. } => {
                    drop(st);
                    self.reply_stateless(&src, &msg.headers, 400, error.reason);
                    return;
                }
                // Retransmissions are absorbed by the transaction layer.
                _ => return self.flush(self.settle(&mut st, now)),
            };
            let method = request.method().cloned().expect("a request");
            if method == Method::Invite {
                // §16.2: a proxy answers an INVITE with 100 Trying at once.
                let trying = request.response(100, None, None);
                let _ = st.txn.respond(&key, trying, now);
            }
            let px_targets = targets.iter().map(|(id, q, _)| PxTarget { id: id.clone(), q: *q }).collect();
            let cfg = ContextConfig { timer_c: self.pcfg.timer_c, ..ContextConfig::default() };
            // RFC 8599: push the sleeping devices and hold a slot for each.
            let mut push_request = None;
            let mut held = 0;
            if let (Some(push), false) = (&self.registrar.push, park.is_empty()) {
                st.proxy.next_push_request += 1;
                let rid = sip_push::RequestId(st.proxy.next_push_request);
                let parked = push.engine.lock().expect("push engine").handle_park(
                    sip_push::Park {
                        request: rid,
                        method: method.clone(),
                        call_id: request.call_id().map(|c| String::from_utf8_lossy(c).into_owned()).unwrap_or_default(),
                        kind: if mid_dialog { sip_push::ParkKind::MidDialog } else { sip_push::ParkKind::Initial },
                        targets: park
                            .iter()
                            .map(|(id, awake)| sip_push::ParkTarget {
                                binding: sip_push::BindingKey::new(id.as_str()),
                                awake: *awake,
                            })
                            .collect(),
                    },
                    now,
                );
                match parked {
                    Ok(n) if n > 0 => {
                        held = n;
                        push_request = Some(rid);
                        st.proxy.by_push.insert(rid.0, key.clone());
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = ?e, "request not parked"),
                }
            }
            let (proxy, actions) = if held > 0 {
                ProxyContext::new_held(method, px_targets, held, cfg, now)
            } else {
                ProxyContext::new(method, px_targets, cfg, now)
            };
            let hash = route::loop_hash(&request);
            let ctx = Ctx {
                proxy,
                request,
                targets: targets.into_iter().map(|(id, _, t)| (id, t)).collect(),
                branches: Default::default(),
                source: src,
                record_route,
                loop_hash: hash,
                counted: false,
                started: now,
                push_request,
                aor,
            };
            st.proxy.ctxs.insert(key.clone(), ctx);
            self.run_actions(&mut st, &key, actions, now);
            self.settle(&mut st, now)
        };
        self.flush(out);
    }

    /// Carries out a context's actions (and the follow-ups they cause).
    pub(super) fn run_actions(&self, st: &mut State, key: &ServerKey, actions: Vec<Action>, now: Instant) {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        while let Some(a) = queue.pop_front() {
            let Some(ctx) = st.proxy.ctxs.get_mut(key) else { return };
            match a {
                Action::StartBranch { branch, target_id } => {
                    let Some(t) = ctx.targets.get(&target_id).cloned() else {
                        queue.extend(ctx.proxy.on_branch_error(branch, now));
                        continue;
                    };
                    st.proxy.seq += 1;
                    let br = route::branch(&ctx.loop_hash, st.proxy.seq);
                    let src = ctx.source;
                    let rr = |dest: &Target| px::record_route_values(&self.me, &self.tokens, &src, dest);
                    let rr_opt: Option<branch::RecordRouteFn<'_>> = if ctx.record_route { Some(&rr) } else { None };
                    let built = branch::build(&ctx.request, &t, &self.me, &br, rr_opt).map(|(mut m, d)| {
                        if self.registrar.push.is_some() {
                            px::strip_contact_push_params(&mut m);
                        }
                        (m, d)
                    });
                    let sent = built.and_then(|(m, dest)| st.txn.send_request(m, to_peer(&dest), now).ok());
                    let ctx = st.proxy.ctxs.get_mut(key).expect("context");
                    match sent {
                        Some(ckey) => {
                            crate::metrics::branch_started();
                            self.stats.branches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            ctx.branches.insert(branch, ckey.clone());
                            st.proxy.by_client.insert(ckey, (key.clone(), branch));
                        }
                        None => {
                            tracing::debug!(target = %target_id, "no route for a branch");
                            queue.extend(ctx.proxy.on_branch_error(branch, now));
                        }
                    }
                }
                Action::CancelBranch { branch } => {
                    if let Some(ckey) = ctx.branches.get(&branch).cloned() {
                        let _ = st.txn.cancel(&ckey, now);
                    }
                }
                Action::Forward { mut response } => {
                    // RFC 8599 R65: push coordinates never reach the other party.
                    if self.registrar.push.is_some() {
                        px::strip_contact_push_params(&mut response);
                    }
                    let code = response.status().unwrap_or(0);
                    self.stats.count_response(code);
                    count_final(ctx, code);
                    if let Err(e) = st.txn.respond(key, *response, now) {
                        tracing::debug!(code, error = %e, "response not forwarded");
                    }
                }
                Action::Respond { code, reason } => {
                    count_final(ctx, code);
                    let resp = self.build_response(&ctx.request, &tag_for(key), code, reason, &[]);
                    if let Err(e) = st.txn.respond(key, resp, now) {
                        tracing::debug!(code, error = %e, "response not sent");
                    }
                }
            }
        }
        st.proxy.schedule(key);
        if st.proxy.ctxs.get(key).is_some_and(|c| c.proxy.is_done()) {
            self.drop_ctx(st, key);
        }
    }

    fn drop_ctx(&self, st: &mut State, key: &ServerKey) {
        if let Some(ctx) = st.proxy.ctxs.remove(key) {
            for ck in ctx.branches.values() {
                st.proxy.by_client.remove(ck);
            }
            if let Some(rid) = ctx.push_request {
                st.proxy.by_push.remove(&rid.0);
                if let Some(push) = &self.registrar.push {
                    push.engine.lock().expect("push engine").handle_cancel(rid);
                }
            }
        }
    }

    /// Carries out what the push engine decided (RFC 8599): pushes go to the
    /// senders, woken devices become branches, ended waits release slots.
    pub(super) fn drain_push(&self) {
        let Some(push) = self.registrar.push.clone() else { return };
        loop {
            let (outs, next): (Vec<sip_push::Output>, _) = {
                let mut e = push.engine.lock().expect("push engine");
                (std::iter::from_fn(|| e.poll_output()).collect(), e.poll_timeout())
            };
            // A new refresh deadline (a REGISTER re-armed it) wakes the timer task.
            self.maybe_wake_timers(next);
            if outs.is_empty() {
                return;
            }
            for o in outs {
                match o {
                    sip_push::Output::Push(req) => self.send_push(&push, req),
                    sip_push::Output::Fork { request, binding, wake_latency } => {
                        if let Some(l) = wake_latency {
                            crate::metrics::wake_latency(l);
                        }
                        self.push_fork(request, binding.as_str());
                    }
                    sip_push::Output::BranchEnded { request, .. } => self.push_release(request),
                    sip_push::Output::RequestDone { request, .. } => {
                        self.state.lock().expect("core state").proxy.by_push.remove(&request.0);
                    }
                    sip_push::Output::BindingInvalid { binding } => {
                        tracing::info!(binding = binding.as_str(), "push service says the device token is dead");
                    }
                }
            }
        }
    }

    fn send_push(&self, push: &std::sync::Arc<crate::push_svc::PushService>, req: sip_push::PushRequest) {
        let Some(core) = self.weak.get().and_then(std::sync::Weak::upgrade) else { return };
        let push = push.clone();
        self.rt.spawn(async move {
            let reason = req.reason.opensips_reason();
            let aor = push.aor_of(req.binding.as_str());
            let result = push.senders.send_for(&req, aor.as_deref()).await;
            crate::metrics::push(&req.provider, &reason, if result.is_ok() { "ok" } else { "failed" });
            push.engine.lock().expect("push engine").handle_push_result(req.id, result, Instant::now());
            core.drain_push();
        });
    }

    /// A parked request's device registered: its binding becomes a branch.
    fn push_fork(&self, request: sip_push::RequestId, binding: &str) {
        let now = Instant::now();
        let out = {
            let mut st = self.state.lock().expect("core state");
            let Some(skey) = st.proxy.by_push.get(&request.0).cloned() else { return };
            let Some(ctx) = st.proxy.ctxs.get_mut(&skey) else { return };
            let fresh = ctx.aor.as_ref().and_then(|a| self.registrar.binding(a, binding));
            let mut actions = Vec::new();
            if let Some(b) = fresh {
                ctx.targets.insert(b.id.clone(), self.branch_target(&b));
                actions.extend(ctx.proxy.add_targets(vec![PxTarget { id: b.id.clone(), q: b.q.unwrap_or(1000) }], now));
            }
            actions.extend(ctx.proxy.release(1, now));
            self.run_actions(&mut st, &skey, actions, now);
            self.settle(&mut st, now)
        };
        self.flush(out);
    }

    /// A parked request gave up on one device.
    fn push_release(&self, request: sip_push::RequestId) {
        let now = Instant::now();
        let out = {
            let mut st = self.state.lock().expect("core state");
            let Some(skey) = st.proxy.by_push.get(&request.0).cloned() else { return };
            let Some(ctx) = st.proxy.ctxs.get_mut(&skey) else { return };
            let actions = ctx.proxy.release(1, now);
            self.run_actions(&mut st, &skey, actions, now);
            self.settle(&mut st, now)
        };
        self.flush(out);
    }

    /// A response on one of our client transactions.
    pub(super) fn on_branch_response(&self, st: &mut State, ckey: ClientKey, mut msg: Message, now: Instant) {
        let Some((skey, branch)) = st.proxy.by_client.get(&ckey).cloned() else {
            // A late 2xx after the context ended: forward it statelessly (RFC 6026).
            if msg.status().is_some_and(|c| (200..300).contains(&c)) {
                px::pop_top_via(&mut msg);
                if let Some((target, data)) = self.stray_target(&msg) {
                    self.send(&target, data);
                }
            }
            return;
        };
        px::pop_top_via(&mut msg);
        let Some(ctx) = st.proxy.ctxs.get_mut(&skey) else { return };
        let actions = ctx.proxy.on_response(branch, msg, now);
        self.run_actions(st, &skey, actions, now);
    }

    /// Processes transaction events until none is left, then collects what to send.
    pub(super) fn settle(&self, st: &mut State, now: Instant) -> Output {
        let mut out = Output::default();
        loop {
            let mut events = Vec::new();
            while let Some(e) = st.txn.poll_event() {
                events.push(e);
            }
            if events.is_empty() {
                break;
            }
            for ev in events {
                match ev {
                    TxnEvent::Timeout { key } => self.branch_event(st, &key, now, true),
                    TxnEvent::TransportError { key: TxnKey::Client(key) } => self.branch_event(st, &key, now, false),
                    TxnEvent::TransportError { key: TxnKey::Server(_) } => {}
                    TxnEvent::AckTimeout { key } => {
                        tracing::debug!(branch = ?key.branch(), "no ACK for a final response (Timer H)");
                    }
                    TxnEvent::Terminated { key: TxnKey::Client(key) } => {
                        st.proxy.by_client.remove(&key);
                    }
                    TxnEvent::Terminated { key: TxnKey::Server(key) } => {
                        if st.proxy.ctxs.get(&key).is_some_and(|c| c.proxy.is_done()) {
                            self.drop_ctx(st, &key);
                        }
                    }
                }
            }
        }
        let next = self.next_deadline(st);
        let d = drain(&mut st.txn);
        out.transmits = d.transmits;
        self.maybe_wake_timers(next);
        out
    }

    fn branch_event(&self, st: &mut State, ckey: &ClientKey, now: Instant, timeout: bool) {
        let Some((skey, branch)) = st.proxy.by_client.get(ckey).cloned() else { return };
        let Some(ctx) = st.proxy.ctxs.get_mut(&skey) else { return };
        let actions =
            if timeout { ctx.proxy.on_branch_timeout(branch, now) } else { ctx.proxy.on_branch_error(branch, now) };
        self.run_actions(st, &skey, actions, now);
    }

    /// CANCEL (§9.2, §16.10): 200 (or 481), and the pending branches are cancelled.
    pub(super) fn on_cancel(&self, src: Source, msg: Message, target: Target) {
        let now = Instant::now();
        let out = {
            let mut st = self.state.lock().expect("core state");
            match st.txn.on_request(msg, to_peer(&target), now) {
                RequestEvent::Cancel { key, invite, msg, .. } => {
                    let code = if invite.is_some() { 200 } else { 481 };
                    let resp = self.build_response(&msg, &tag_for(&key), code, None, &[]);
                    let _ = st.txn.respond(&key, resp, now);
                    if let Some(inv) = invite
                        && let Some(ctx) = st.proxy.ctxs.get_mut(&inv)
                    {
                        // S3: nothing is delivered to a woken device later.
                        if let (Some(rid), Some(push)) = (ctx.push_request, &self.registrar.push) {
                            push.engine.lock().expect("push engine").handle_cancel(rid);
                        }
                        let actions = ctx.proxy.on_cancel(now);
                        self.run_actions(&mut st, &inv, actions, now);
                    }
                }
                RequestEvent::Invalid { error, msg, .. } => {
                    drop(st);
                    self.reply_stateless(&src, &msg.headers, 400, error.reason);
                    return;
                }
                _ => {}
            }
            self.settle(&mut st, now)
        };
        self.flush(out);
    }

    /// ACK: absorbed when it acknowledges a non-2xx of ours; an ACK for a 2xx
    /// is its own transaction-less request, forwarded statelessly along the
    /// route set (§16.11 rules for stateless forwarding).
    pub(super) fn on_ack(&self, src: Source, msg: Message, target: Target) {
        let now = Instant::now();
        let ack = {
            let mut st = self.state.lock().expect("core state");
            let ev = st.txn.on_request(msg, to_peer(&target), now);
            let out = self.settle(&mut st, now);
            drop(st);
            self.flush(out);
            match ev {
                RequestEvent::Ack { msg, .. } => msg,
                _ => return,
            }
        };
        match self.decide(&ack, &src) {
            Decision::Proxy { request, targets, .. } => {
                let Some((_, _, t)) = targets.into_iter().next() else { return };
                // A stateless proxy's branch: the same for every retransmission (§16.11).
                let via = ack.top_via().ok().and_then(|v| v.branch().cloned()).unwrap_or_default();
                let br = route::stateless_branch(&via);
                if let Some((m, dest)) = branch::build(&request, &t, &self.me, &br, None) {
                    self.send(&dest, m.to_bytes());
                }
            }
            _ => tracing::debug!("ACK with nowhere to go dropped"),
        }
    }

    /// Where a response with no transaction goes: the Via below ours (§16.7 step 9, §18.2.2).
    fn stray_target(&self, resp: &Message) -> Option<(Target, bytes::Bytes)> {
        let via = resp.top_via().ok()?;
        let transport = if via.is_reliable() { Transport::Tcp } else { Transport::Udp };
        let port = match via.rport() {
            Some(Some(p)) => p,
            _ => via.port.unwrap_or(5060),
        };
        let ip = via
            .received()
            .and_then(|r| std::str::from_utf8(r).ok())
            .and_then(|r| r.trim_matches(['[', ']']).parse().ok())
            .or_else(|| via.host.ip())?;
        Some((Target { transport, remote: std::net::SocketAddr::new(ip, port), conn: None }, resp.to_bytes()))
    }

    /// A response that matches no transaction: a 2xx to an INVITE whose
    /// top Via is ours is forwarded statelessly; anything else is dropped
    /// (§18.1.2, RFC 4475 bcast).
    pub(super) fn forward_stray_response(&self, mut msg: Message) {
        let is_2xx_invite = msg.status().is_some_and(|c| (200..300).contains(&c))
            && msg.cseq().is_ok_and(|c| c.method == Method::Invite);
        let ours = msg.top_via().ok().is_some_and(|v: Via| self.me.is_my_via(&v));
        if !(is_2xx_invite && ours) {
            self.stats.stray_responses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        px::pop_top_via(&mut msg);
        if let Some((target, data)) = self.stray_target(&msg) {
            self.send(&target, data);
        }
    }
}

/// Counts the first final status a proxied request got upstream.
fn count_final(ctx: &mut Ctx, code: u16) {
    if code >= 200 && !ctx.counted {
        ctx.counted = true;
        let method = ctx.request.method().map_or("other", super::method_label);
        crate::metrics::proxied(method, code);
        crate::metrics::request_latency(method, ctx.started.elapsed());
    }
}
