//! Proxied requests on the transaction layer: starting a
//! `sip_proxy::ProxyContext` for a decision, carrying out its actions
//! (branches, CANCELs, responses upstream), feeding it branch responses,
//! timeouts and CANCELs, forking to devices the push engine woke, and the
//! stateless paths (ACK for 2xx, stray responses). RFC 3261 §16.6–§16.11.
//!
//! Routing decisions are `decide`'s; push decisions the `pn` module's.

use crate::decide::{Decision, Proxied, TargetSpec};
use crate::dns::Waiter;
use crate::local;
use crate::node::{Node, stateless_tag, tag_for};
use crate::proxy::branch;
use crate::proxy::route::Hop;
use crate::proxy::{self as px, Attempt, Ctx, route};
use sip_msg::{Message, Method, Source, Target, Transport, Via};
use sip_proxy::{Action, ContextConfig, ProxyContext, Target as PxTarget};
use sip_txn::{ClientKey, Peer, RequestEvent, ServerKey, TxnEvent, TxnKey};
use std::collections::VecDeque;
use std::time::Instant;

impl Node {
    /// Requests other than REGISTER, ACK and CANCEL.
    pub(crate) fn on_other_request(&mut self, src: Source, msg: Message, target: Target, now: Instant) {
        let Some(method) = msg.method().cloned() else { return };
        // In a cluster, a lookup first waits for what other nodes committed.
        if self.cluster.is_some() && self.cluster_hold(&src, &msg, &target, now) {
            return;
        }
        let decision = self.decide(&msg, &src, now);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let what = match &decision {
                Decision::Local => "local".to_string(),
                Decision::Wait => "waiting for credentials".to_string(),
                Decision::Reject(c, r, _) => format!("reject {c} {}", r.unwrap_or("")),
                Decision::Proxy(p) => format!("proxy to {} target(s), {} to wake", p.targets.len(), p.park.len()),
            };
            tracing::debug!(%method, uri = %msg.uri().map(|u| u.to_string()).unwrap_or_default(), decision = %what, "request routed");
        }
        let (code, reason, headers) = match decision {
            Decision::Wait => return self.wait_for_credentials(src, msg, target),
            Decision::Local => {
                let a = local::answer(&msg);
                (a.code, a.reason, a.headers)
            }
            Decision::Reject(c, r, h) => (c, r, h),
            Decision::Proxy(p) => return self.start_proxy(src, msg, *p, target, now),
        };
        if method != Method::Invite {
            // Answered at once and idempotently: statelessly (RFC 3261 §8.2.7).
            let resp = self.build_response(&msg, &stateless_tag(&msg), code, reason, &headers);
            self.send(target, resp.to_bytes());
            return;
        }
        // INVITE: through a server transaction (the non-2xx must be retransmitted until ACKed).
        match self.txn.on_request(msg, Peer::from(target), now) {
            RequestEvent::New { key, msg, .. } => {
                let resp = self.build_response(&msg, &tag_for(&key), code, reason, &headers);
                let _ = self.txn.respond(&key, resp, now);
            }
            RequestEvent::Invalid { error, msg, .. } => self.reply_stateless(&src, &msg.headers, 400, error.reason),
            _ => {}
        }
    }

    fn start_proxy(&mut self, src: Source, msg: Message, p: Proxied, target: Target, now: Instant) {
        let Proxied { request, targets, record_route, park, aor, mid_dialog, upstream_aor } = p;
        let key = match self.txn.on_request(msg, Peer::from(target), now) {
            RequestEvent::New { key, .. } => key,
            RequestEvent::Invalid { error, msg, .. } => {
                return self.reply_stateless(&src, &msg.headers, 400, error.reason);
            }
            // Retransmissions are absorbed by the transaction layer.
            _ => return,
        };
        let Some(method) = request.method().cloned() else { return };
        if method == Method::Invite {
            // §16.2: a proxy answers an INVITE with 100 Trying at once.
            let trying = request.response(100, None, None);
            let _ = self.txn.respond(&key, trying, now);
        }
        // Live flows of push bindings are tried at once, beside the push.
        let mut all: Vec<TargetSpec> = targets;
        let mut live = Vec::new();
        for (id, spec) in &park {
            if let Some(s) = spec {
                live.push(id.clone());
                all.push(s.clone());
            }
        }
        let px_targets = all.iter().map(|(id, q, _)| PxTarget { id: id.clone(), q: *q }).collect();
        let cfg = ContextConfig { timer_c: self.pcfg.timer_c, ..ContextConfig::default() };
        // RFC 8599: push the sleeping devices and hold a slot for each.
        let park_ids: Vec<String> = park.into_iter().map(|(id, _)| id).collect();
        let (push_request, held) = self.pn_park(&key, &request, &park_ids, mid_dialog, now);
        let (proxy, actions) = if held > 0 {
            ProxyContext::new_held(method, px_targets, held, cfg, now)
        } else {
            ProxyContext::new(method, px_targets, cfg, now)
        };
        let hash = route::loop_hash(&request);
        let ctx = Ctx {
            proxy,
            request,
            targets: all.into_iter().map(|(id, _, t)| (id, t)).collect(),
            branches: Default::default(),
            source: src,
            record_route,
            loop_hash: hash,
            counted: false,
            started: now,
            push_request,
            aor,
            live_push: live.into_iter().collect(),
            answered: Default::default(),
            call_pushes: Vec::new(),
            cancelled: false,
            final_code: 0,
            upstream_aor,
            attempts: Default::default(),
        };
        self.proxy.ctxs.insert(key.clone(), ctx);
        self.run_actions(&key, actions, now);
    }

    /// Carries out a context's actions (and the follow-ups they cause).
    pub(crate) fn run_actions(&mut self, key: &ServerKey, actions: Vec<Action>, now: Instant) {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        let strip = self.pn.is_some();
        let now_ms = self.unix_ms(now);
        let mut suspects = Vec::new();
        while let Some(a) = queue.pop_front() {
            let Some(ctx) = self.proxy.ctxs.get_mut(key) else { return };
            match a {
                Action::StartBranch { branch, target_id } => {
                    let Some(t) = ctx.targets.get(&target_id) else {
                        queue.extend(ctx.proxy.on_branch_error(branch, now));
                        continue;
                    };
                    let Some((prepared, hop)) = branch::prepare(&ctx.request, t) else {
                        tracing::debug!(target = %target_id, "no route for a branch");
                        queue.extend(ctx.proxy.on_branch_error(branch, now));
                        continue;
                    };
                    let list = match hop {
                        Hop::Addr(dest) => VecDeque::from([dest]),
                        Hop::Name(q) => match self.dns.cached(&q, now) {
                            Some(Ok(list)) => list.into(),
                            Some(Err(_)) => {
                                tracing::debug!(host = %q.host, "next hop does not resolve");
                                queue.extend(ctx.proxy.on_branch_error(branch, now));
                                continue;
                            }
                            None => {
                                // Held until the driver resolved the name (RFC 3263).
                                ctx.attempts.insert(branch, Attempt { prepared, rest: VecDeque::new() });
                                self.dns.wait(q, Waiter::Branch { skey: key.clone(), branch }, now);
                                continue;
                            }
                        },
                    };
                    if !self.attempt(key, branch, prepared, list, now) {
                        tracing::debug!(target = %target_id, "no route for a branch");
                        if let Some(ctx) = self.proxy.ctxs.get_mut(key) {
                            queue.extend(ctx.proxy.on_branch_error(branch, now));
                        }
                    }
                }
                Action::CancelBranch { branch } => {
                    if let Some(ckey) = ctx.branches.get(&branch).cloned() {
                        let _ = self.txn.cancel(&ckey, now);
                    }
                }
                Action::Forward { mut response } => {
                    // RFC 8599 R65: push coordinates never reach the other party.
                    if strip {
                        px::strip_contact_push_params(&mut response);
                    }
                    let code = response.status().unwrap_or(0);
                    self.stats.count_response(code);
                    count_final(ctx, code, now, self.pn.as_mut().map(|p| &mut p.audit), now_ms);
                    // Mid-registrar: the upstream does not know a device we registered there?
                    if code == 404
                        && let Some(a) = ctx.upstream_aor.clone()
                    {
                        suspects.push(a);
                    }
                    if let Err(e) = self.txn.respond(key, *response, now) {
                        tracing::debug!(code, error = %e, "response not forwarded");
                    }
                }
                Action::Respond { code, reason } => {
                    count_final(ctx, code, now, self.pn.as_mut().map(|p| &mut p.audit), now_ms);
                    let resp = crate::node::build_response(
                        &self.server_header,
                        &self.stats,
                        &ctx.request,
                        &tag_for(key),
                        code,
                        reason,
                        &[],
                    );
                    if let Err(e) = self.txn.respond(key, resp, now) {
                        tracing::debug!(code, error = %e, "response not sent");
                    }
                }
            }
        }
        self.proxy.schedule(key);
        if self.proxy.ctxs.get(key).is_some_and(|c| c.proxy.is_done()) {
            self.drop_ctx(key, now);
        }
        for a in suspects {
            self.mid_suspect(&a, now);
        }
    }

    /// Sends a branch's request to the first of `rest` that takes it
    /// (§16.6 steps 4 and 8: Record-Route and our Via for that destination,
    /// on a new client transaction); the others stay for failover (RFC 3263
    /// §4.3). `false` when none took it.
    fn attempt(
        &mut self,
        key: &ServerKey,
        branch: u32,
        prepared: Message,
        mut rest: VecDeque<Target>,
        now: Instant,
    ) -> bool {
        let strip = self.pn.is_some();
        let mut prepared = Some(prepared);
        while let Some(dest) = rest.pop_front() {
            let Some(ctx) = self.proxy.ctxs.get_mut(key) else { return true };
            let msg = if rest.is_empty() { prepared.take() } else { prepared.clone() };
            let Some(msg) = msg else { return false };
            self.proxy.seq += 1;
            let br = route::branch(&ctx.loop_hash, self.proxy.seq);
            let src = ctx.source;
            let (me, tokens) = (&self.me, &self.tokens);
            let rr = |d: &Target| px::record_route_values(me, tokens, &src, d);
            let rr_opt: Option<branch::RecordRouteFn<'_>> = if ctx.record_route { Some(&rr) } else { None };
            let built = branch::finish(msg, &dest, me, &br, rr_opt).map(|mut m| {
                if strip {
                    px::strip_contact_push_params(&mut m);
                }
                m
            });
            let Some(sent) = built.and_then(|m| self.txn.send_request(m, Peer::from(dest), now).ok()) else {
                continue;
            };
            let Some(ctx) = self.proxy.ctxs.get_mut(key) else { return true };
            crate::metrics::branch_started();
            self.stats.count(|s| &s.branches);
            if let Some(old) = ctx.branches.insert(branch, sent.clone()) {
                // A failover: the earlier attempt's late answers are ignored.
                self.proxy.by_client.remove(&old);
            }
            self.proxy.by_client.insert(sent, (key.clone(), branch));
            match prepared.take() {
                Some(p) if !rest.is_empty() => {
                    ctx.attempts.insert(branch, Attempt { prepared: p, rest });
                }
                _ => {
                    ctx.attempts.remove(&branch);
                }
            }
            return true;
        }
        if let Some(ctx) = self.proxy.ctxs.get_mut(key) {
            ctx.attempts.remove(&branch);
        }
        false
    }

    /// The next hop's name of a branch resolved: the branch starts (or fails).
    pub(crate) fn branch_resolved(
        &mut self,
        key: &ServerKey,
        branch: u32,
        targets: Result<Vec<Target>, crate::dns::ResolveError>,
        now: Instant,
    ) {
        let Some(ctx) = self.proxy.ctxs.get_mut(key) else { return };
        let Some(a) = ctx.attempts.remove(&branch) else { return };
        let started = match targets {
            // A CANCEL (or Timer C) came while the name was being resolved.
            Ok(_) if ctx.cancelled || !ctx.proxy.is_pending(branch) => false,
            Ok(list) => self.attempt(key, branch, a.prepared, list.into(), now),
            Err(e) => {
                tracing::debug!(error = ?e, "next hop does not resolve");
                false
            }
        };
        if !started && let Some(ctx) = self.proxy.ctxs.get_mut(key) {
            let actions = ctx.proxy.on_branch_error(branch, now);
            self.run_actions(key, actions, now);
        }
    }

    /// RFC 3263 §4.3: a branch whose destination timed out, failed or
    /// answered 503 goes to the next address of its name, if any is left.
    fn failover(&mut self, ckey: &ClientKey, now: Instant) -> bool {
        let Some((skey, branch)) = self.proxy.by_client.get(ckey).cloned() else { return false };
        let Some(ctx) = self.proxy.ctxs.get_mut(&skey) else { return false };
        if ctx.cancelled || !ctx.proxy.is_pending(branch) {
            return false;
        }
        let Some(a) = ctx.attempts.remove(&branch) else { return false };
        tracing::debug!(left = a.rest.len(), "next hop failed; trying the next address (RFC 3263)");
        self.stats.count(|s| &s.failovers);
        self.attempt(&skey, branch, a.prepared, a.rest, now)
    }

    /// Forwards an ACK for a 2xx statelessly to the first address of its next hop.
    pub(crate) fn send_ack(&mut self, msg: Message, branch: &str, list: &[Target]) {
        for dest in list {
            if let Some(m) = branch::finish(msg.clone(), dest, &self.me, branch, None) {
                self.send(*dest, m.to_bytes());
                return;
            }
        }
    }

    fn drop_ctx(&mut self, key: &ServerKey, now: Instant) {
        if let Some(mut ctx) = self.proxy.ctxs.remove(key) {
            if !ctx.call_pushes.is_empty() {
                let end = if ctx.cancelled {
                    sip_push::CallEnd::Cancelled
                } else if (200..300).contains(&ctx.final_code) {
                    sip_push::CallEnd::AnsweredElsewhere
                } else {
                    sip_push::CallEnd::Missed
                };
                self.call_end_pushes(std::mem::take(&mut ctx.call_pushes), end, now);
            }
            for ck in ctx.branches.values() {
                self.proxy.by_client.remove(ck);
            }
            if let Some(rid) = ctx.push_request {
                self.proxy.by_push.remove(&rid.0);
                if let Some(cid) = ctx.request.call_id() {
                    self.proxy.callers.remove(cid);
                }
                if let Some(pn) = &mut self.pn {
                    pn.engine.handle_cancel(rid);
                }
            }
        }
    }

    /// A parked request's device registered (and its 200 OK is durable and
    /// sent): its binding becomes a branch over its fresh flow. A branch
    /// already tried over the device's old live flow that got no answer is
    /// cancelled first: never more than one live branch per binding.
    pub(crate) fn push_fork(&mut self, request: sip_push::RequestId, binding: &str, now: Instant) {
        let Some(skey) = self.proxy.by_push.get(&request.0).cloned() else { return };
        let fresh = {
            let Some(ctx) = self.proxy.ctxs.get(&skey) else { return };
            ctx.aor.as_ref().and_then(|a| self.registrar.location.binding(a, binding)).cloned()
        };
        let fresh_target = fresh.as_ref().map(|b| self.branch_target(b));
        let Some(ctx) = self.proxy.ctxs.get_mut(&skey) else { return };
        let mut actions = Vec::new();
        if let (Some(b), Some(t)) = (fresh, fresh_target) {
            let mut fork = true;
            // The device was also tried over its live flow: keep that branch when
            // it answered (the app was awake) or when the fresh flow is the same
            // one; else cancel it if still pending (the CANCEL leaves once it has
            // a provisional, RFC 3261 §9.1) and fork on the fresh flow.
            let old = ctx.live_push.contains(binding).then(|| {
                ctx.branches.iter().find(|(br, _)| ctx.proxy.target_id(**br) == Some(binding)).map(|(br, k)| (*br, k))
            });
            if let Some((br, ckey)) = old.flatten() {
                let same_flow = t.flow.is_some() && ctx.targets.get(binding).is_some_and(|o| o.flow == t.flow);
                if ctx.answered.contains(&br) || same_flow {
                    fork = false;
                } else if ctx.proxy.is_pending(br) {
                    let _ = self.txn.cancel(ckey, now);
                }
            }
            if fork {
                let id = format!("{}~{}", b.id, ctx.branches.len());
                ctx.targets.insert(id.clone(), t);
                actions.extend(ctx.proxy.add_targets(vec![PxTarget { id, q: b.q.unwrap_or(1000) }], now));
            }
        }
        actions.extend(ctx.proxy.release(1, now));
        self.run_actions(&skey, actions, now);
    }

    /// A parked request gave up on one device.
    pub(crate) fn push_release(&mut self, request: sip_push::RequestId, now: Instant) {
        let Some(skey) = self.proxy.by_push.get(&request.0).cloned() else { return };
        let Some(ctx) = self.proxy.ctxs.get_mut(&skey) else { return };
        let actions = ctx.proxy.release(1, now);
        self.run_actions(&skey, actions, now);
    }

    /// A response on one of our client transactions.
    pub(crate) fn on_branch_response(&mut self, ckey: ClientKey, msg: Message, now: Instant) {
        let mut msg = match self.mid {
            Some(_) => match self.mid_response(&ckey, msg, now) {
                Some(m) => m,
                None => return,
            },
            None => msg,
        };
        let Some((skey, branch)) = self.proxy.by_client.get(&ckey).cloned() else {
            // A late 2xx after the context ended: forward it statelessly (RFC 6026).
            if msg.status().is_some_and(|c| (200..300).contains(&c)) {
                px::pop_top_via(&mut msg);
                if let Some((target, data)) = stray_target(&msg) {
                    self.send(target, data);
                }
            }
            return;
        };
        if msg.status() == Some(503) && self.failover(&ckey, now) {
            return;
        }
        px::pop_top_via(&mut msg);
        let Some(ctx) = self.proxy.ctxs.get_mut(&skey) else { return };
        ctx.answered.insert(branch);
        // A push device tried over its live flow answered: it got the call,
        // so no cancel or missed-call push goes to it when the call ends.
        if let Some(id) = ctx.proxy.target_id(branch)
            && ctx.live_push.contains(id)
        {
            let id = id.to_string();
            ctx.call_pushes.retain(|j| j.request.binding.as_str() != id);
        }
        let actions = ctx.proxy.on_response(branch, msg, now);
        self.run_actions(&skey, actions, now);
    }

    /// After every input: processes transaction events until none is left,
    /// carries out what the push engine decided, and moves the transaction
    /// layer's transmits to the outbox.
    pub(crate) fn settle(&mut self, now: Instant) {
        loop {
            let mut events = Vec::new();
            while let Some(e) = self.txn.poll_event() {
                events.push(e);
            }
            let pushed = self.drain_push(now);
            if events.is_empty() && !pushed {
                break;
            }
            for ev in events {
                match ev {
                    TxnEvent::Timeout { key } => self.branch_event(&key, now, true),
                    TxnEvent::TransportError { key: TxnKey::Client(key) } => self.branch_event(&key, now, false),
                    TxnEvent::TransportError { key: TxnKey::Server(_) } => {}
                    TxnEvent::AckTimeout { key } => {
                        tracing::debug!(branch = ?key.branch(), "no ACK for a final response (Timer H)");
                    }
                    TxnEvent::Terminated { key: TxnKey::Client(key) } => {
                        self.proxy.by_client.remove(&key);
                        if let Some(m) = &mut self.mid {
                            m.forwards.remove(&key);
                            if m.own.remove(&key).is_some()
                                && m.keepalive_pending.as_ref().is_some_and(|(k, _)| *k == key)
                            {
                                m.keepalive_pending = None;
                            }
                        }
                    }
                    TxnEvent::Terminated { key: TxnKey::Server(key) } => {
                        if self.proxy.ctxs.get(&key).is_some_and(|c| c.proxy.is_done()) {
                            self.drop_ctx(&key, now);
                        }
                    }
                }
            }
        }
        while let Some(t) = self.txn.poll_transmit() {
            self.send(Target::from(&t.to), t.data);
        }
    }

    fn branch_event(&mut self, ckey: &ClientKey, now: Instant, timeout: bool) {
        if self.mid.is_some() && self.mid_txn_failed(ckey, now) {
            return;
        }
        if self.failover(ckey, now) {
            return;
        }
        let Some((skey, branch)) = self.proxy.by_client.get(ckey).cloned() else { return };
        let Some(ctx) = self.proxy.ctxs.get_mut(&skey) else { return };
        let actions =
            if timeout { ctx.proxy.on_branch_timeout(branch, now) } else { ctx.proxy.on_branch_error(branch, now) };
        self.run_actions(&skey, actions, now);
    }

    /// CANCEL (§9.2, §16.10): 200 (or 481), and the pending branches are cancelled.
    pub(crate) fn on_cancel(&mut self, src: Source, msg: Message, target: Target, now: Instant) {
        match self.txn.on_request(msg, Peer::from(target), now) {
            RequestEvent::Cancel { key, invite, msg, .. } => {
                let code = if invite.is_some() { 200 } else { 481 };
                let resp = self.build_response(&msg, &tag_for(&key), code, None, &[]);
                let _ = self.txn.respond(&key, resp, now);
                if let Some(inv) = invite
                    && let Some(ctx) = self.proxy.ctxs.get_mut(&inv)
                {
                    ctx.cancelled = true;
                    // S3: nothing is delivered to a woken device later.
                    if let (Some(rid), Some(pn)) = (ctx.push_request, &mut self.pn) {
                        pn.engine.handle_cancel(rid);
                    }
                    let actions = ctx.proxy.on_cancel(now);
                    self.run_actions(&inv, actions, now);
                }
            }
            RequestEvent::Invalid { error, msg, .. } => self.reply_stateless(&src, &msg.headers, 400, error.reason),
            _ => {}
        }
    }

    /// ACK: absorbed when it acknowledges a non-2xx of ours; an ACK for a 2xx
    /// is its own transaction-less request, forwarded statelessly along the
    /// route set (§16.11 rules for stateless forwarding).
    pub(crate) fn on_ack(&mut self, src: Source, msg: Message, target: Target, now: Instant) {
        let ack = match self.txn.on_request(msg, Peer::from(target), now) {
            RequestEvent::Ack { msg, .. } => msg,
            _ => return,
        };
        match self.decide(&ack, &src, now) {
            Decision::Proxy(p) => {
                let Some((_, _, t)) = p.targets.into_iter().next() else { return };
                // A stateless proxy's branch: the same for every retransmission (§16.11).
                let via = ack.top_via().ok().and_then(|v| v.branch().cloned()).unwrap_or_default();
                let br = route::stateless_branch(&via);
                let Some((m, hop)) = branch::prepare(&p.request, &t) else { return };
                match hop {
                    Hop::Addr(dest) => self.send_ack(m, &br, &[dest]),
                    Hop::Name(q) => match self.dns.cached(&q, now) {
                        Some(Ok(list)) => self.send_ack(m, &br, &list),
                        Some(Err(_)) => tracing::debug!(host = %q.host, "ACK: next hop does not resolve"),
                        None => self.dns.wait(q, Waiter::Ack { msg: Box::new(m), branch: br }, now),
                    },
                }
            }
            _ => tracing::debug!("ACK with nowhere to go dropped"),
        }
    }

    /// A response that matches no transaction: a 2xx to an INVITE whose
    /// top Via is ours is forwarded statelessly; anything else is dropped
    /// (§18.1.2, RFC 4475 bcast).
    pub(crate) fn forward_stray_response(&mut self, mut msg: Message) {
        let is_2xx_invite = msg.status().is_some_and(|c| (200..300).contains(&c))
            && msg.cseq().is_ok_and(|c| c.method == Method::Invite);
        let ours = msg.top_via().ok().is_some_and(|v: Via| self.me.is_my_via(&v));
        if !(is_2xx_invite && ours) {
            self.stats.count(|s| &s.stray_responses);
            return;
        }
        px::pop_top_via(&mut msg);
        if let Some((target, data)) = stray_target(&msg) {
            self.send(target, data);
        }
    }
}

/// Where a response with no transaction goes: the Via below ours (§16.7 step 9, §18.2.2).
fn stray_target(resp: &Message) -> Option<(Target, bytes::Bytes)> {
    let via = resp.top_via().ok()?;
    let transport = Transport::from_via(&via.transport).unwrap_or(Transport::Udp);
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

/// Counts the first final status a proxied request got upstream (and,
/// for a parked request, logs it and adds it to the push audit).
fn count_final(ctx: &mut Ctx, code: u16, now: Instant, audit: Option<&mut crate::audit::PushAudit>, now_ms: u64) {
    if code >= 200 && !ctx.counted {
        ctx.counted = true;
        ctx.final_code = code;
        if let Some(rid) = ctx.push_request {
            let outcome = crate::oplog::parked_ended(rid.0, ctx.request.method(), ctx.cancelled, code);
            if let Some(a) = audit {
                let cid = ctx.request.call_id().map(|c| String::from_utf8_lossy(c).into_owned());
                a.answered(now_ms, cid.as_deref(), rid.0, code, outcome);
            }
        }
        let method = ctx.request.method().map_or("other", crate::node::method_label);
        crate::metrics::proxied(method, code);
        crate::metrics::request_latency(method, now.saturating_duration_since(ctx.started));
    }
}
