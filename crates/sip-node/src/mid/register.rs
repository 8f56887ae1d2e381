//! A device's REGISTER in the mid-registrar role: checked by the local
//! registrar without changing anything (a REGISTER it would refuse never
//! leaves), then either absorbed (an identical refresh, with a new CSeq,
//! of a registration the upstream still holds long enough: answered here,
//! `contact` and `aor` modes) or forwarded upstream through a server and a
//! client transaction (which also answers the request's retransmissions). Only the upstream's 2xx writes local state: the bindings
//! with their expiry capped by the upstream's grant (R20: a grant too short
//! for pushes makes a plain binding), the upstream registrations, then the
//! answer once durable, then the forks of requests parked for the woken
//! device (one per device: a challenged REGISTER releases nothing, R38).
//! Any other answer is relayed; no answer in time is a 503 (and a 2xx
//! that comes after it has what it registered and sipwake does not hold
//! de-registered at once: the device was told it failed).

use super::rewrite::{self, Forwarding};
use super::{Forward, Throttle, UpstreamReg};
use crate::io::StoreOp;
use crate::metrics;
use crate::node::{Node, ReplyTo, stateless_tag, tag_for};
use sip_msg::{Contact, HeaderName, Message, Source, Target};
use sip_push::Classification;
use sip_registrar::location::Change;
use sip_registrar::{Aor, Flow, RegisterInput};
use sip_txn::{ClientKey, Peer, RequestEvent};
use std::time::Instant;

impl Node {
    /// A REGISTER (authenticated locally if auth is on, prechecked by `pn`)
    /// in the mid-registrar role.
    pub(crate) fn mid_register(
        &mut self,
        src: Source,
        req: Message,
        target: Target,
        auth_user: Option<(String, String)>,
        classes: Vec<(String, Classification)>,
        now: Instant,
    ) {
        let now_ms = self.unix_ms(now);
        let flow = Flow { transport: src.transport, remote: src.remote, local: src.local, conn: src.conn };
        // What the registrar would do, without doing it.
        let dry = self.registrar.register(RegisterInput {
            req: &req,
            flow: flow.clone(),
            now_ms,
            auth_user: auth_user.as_ref().map(|(u, d)| (u.as_str(), d.as_str())),
            fresh_ids: &[],
            caps: &[],
            dry_run: true,
        });
        let Some(aor) = dry.aor.clone().filter(|_| dry.reply.code == 200) else {
            let r = dry.reply;
            metrics::registration("rejected");
            let resp = self.build_response(&req, &stateless_tag(&req), r.code, r.reason, &r.headers);
            self.send(target, resp.to_bytes());
            return;
        };
        let requested =
            requested_expiries(&req, self.registrar.config.default_expires, self.registrar.config.max_expires);
        if let Some(caps) = self.absorbable(&req, &src, &aor, &dry.contact_ids, &requested, now_ms) {
            metrics::mid_register("absorbed");
            return self.mid_absorb(req, target, flow, auth_user, classes, caps, now);
        }
        self.mid_forward(src, req, target, flow, auth_user, aor, dry.contact_ids, requested, classes, now);
    }

    /// `contact` and `aor` modes: whether this REGISTER only refreshes, from
    /// the same place, registrations the upstream accepted and still holds
    /// for longer than the device asks (OpenSIPS modes 1/2, without their
    /// hole: nothing new, removed or changed is ever absorbed, #2536). A
    /// retransmission (the CSeq that wrote the binding) is no refresh: it
    /// goes on to `mid_forward`, whose server transaction answers it again
    /// when the original went upstream (RFC 3261 §17.2.2). The caps to
    /// apply (what the upstream has left), by Contact index.
    fn absorbable(
        &self,
        req: &Message,
        src: &Source,
        aor: &Aor,
        ids: &[Option<String>],
        requested: &[u32],
        now_ms: u64,
    ) -> Option<Vec<Option<u32>>> {
        let mid = self.mid.as_ref()?;
        if mid.cfg.throttle == Throttle::Mirror {
            return None;
        }
        let contacts = req.contacts().ok()?;
        if contacts.is_empty() || ids.len() != contacts.len() {
            return None;
        }
        let call_id = req.call_id()?;
        let cseq = req.cseq().ok()?.seq;
        let mut caps = Vec::with_capacity(ids.len());
        for ((c, id), want) in contacts.iter().zip(ids).zip(requested) {
            let Contact::Addr(na) = c else { return None };
            let b = self.registrar.location.binding(aor, id.as_ref()?)?;
            let same = b.call_id[..] == call_id[..]
                && b.cseq < cseq
                && b.uri.as_str() == na.uri.to_string()
                && b.flow.transport == src.transport
                && b.flow.remote.ip() == src.remote.ip();
            if !same || *want == 0 {
                return None;
            }
            let reg = mid.regs.get(&mid.key_for(aor, &b.id))?;
            if !(200..300).contains(&reg.last_code) {
                return None;
            }
            let left = reg.expires_at.saturating_sub(now_ms);
            let need = u64::from(*want) * 1000;
            if left <= need + need / 10 + 2000 {
                return None;
            }
            caps.push(Some(u32::try_from(left / 1000).unwrap_or(u32::MAX)));
        }
        Some(caps)
    }

    /// Answers an absorbed refresh here, as the registrar role would.
    #[expect(clippy::too_many_arguments, reason = "one REGISTER's parts, passed on once")]
    fn mid_absorb(
        &mut self,
        req: Message,
        target: Target,
        flow: Flow,
        auth_user: Option<(String, String)>,
        classes: Vec<(String, Classification)>,
        caps: Vec<Option<u32>>,
        now: Instant,
    ) {
        // Through a server transaction: a retransmission of this refresh (its
        // 200 lost) is answered again by the transaction layer; it would
        // otherwise look like no refresh (same CSeq) and go upstream.
        let key = match self.txn.on_request(req.clone(), Peer::from(target), now) {
            RequestEvent::New { key, .. } => key,
            RequestEvent::Invalid { error, msg, .. } => {
                let src =
                    Source { transport: target.transport, local: flow.local, remote: target.remote, conn: target.conn };
                return self.reply_stateless(&src, &msg.headers, 400, error.reason);
            }
            _ => return,
        };
        let au = auth_user.as_ref().map(|(u, d)| (u.as_str(), d.as_str()));
        let (outcome, headers) = self.run_registrar(&req, flow, au, &classes, &[], &caps, now);
        let resp = self.build_response(&req, &tag_for(&key), outcome.reply.code, outcome.reply.reason, &headers);
        self.finish_register(&req, outcome, resp, ReplyTo::Txn(key), Vec::new(), now, now);
    }

    #[expect(clippy::too_many_arguments, reason = "one REGISTER's parts, passed on once")]
    fn mid_forward(
        &mut self,
        src: Source,
        req: Message,
        target: Target,
        flow: Flow,
        auth_user: Option<(String, String)>,
        aor: Aor,
        contact_ids: Vec<Option<String>>,
        requested: Vec<u32>,
        classes: Vec<(String, Classification)>,
        now: Instant,
    ) {
        let skey = match self.txn.on_request(req.clone(), Peer::from(target), now) {
            RequestEvent::New { key, .. } => key,
            RequestEvent::Invalid { error, msg, .. } => {
                return self.reply_stateless(&src, &msg.headers, 400, error.reason);
            }
            // A retransmission: the transaction layer answers it.
            _ => return,
        };
        if req.max_forwards().ok().flatten() == Some(0) {
            let resp = self.build_response(&req, &tag_for(&skey), 483, None, &[]);
            let _ = self.txn.respond(&skey, resp, now);
            return;
        }
        let Some(mid) = self.mid.as_ref() else { return };
        let (throttle, up) = (mid.cfg.throttle, mid.cfg.upstream);
        let keys: Vec<Option<String>> =
            contact_ids.iter().map(|id| id.as_ref().map(|id| mid.key_for(&aor, id))).collect();
        // `aor` mode: the AoR's Contact goes when no device is left after this request.
        let aor_expires = if throttle == Throttle::Aor && !self.aor_keeps_devices(&aor, &contact_ids, &requested) {
            0
        } else {
            mid.cfg.upstream_expires
        };
        let indicators = self.pn.as_ref().map(|p| p.request_indicators(&classes)).unwrap_or_default();
        let Some(local) = self.me.listener(up.transport, up.remote.is_ipv6()) else {
            tracing::error!(transport = %up.transport.as_str(), "no listener for the upstream registrar's transport");
            return self.mid_fail(&skey, &req, 500, "no listener for the upstream's transport", now);
        };
        let aor_user = req.to().ok().and_then(|t| t.uri.as_sip().and_then(|u| u.user.clone())).unwrap_or_default();
        let branch = sip_txn::new_branch();
        let (upstream_req, sent) = rewrite::forward_register(
            &req,
            &Forwarding {
                throttle,
                local,
                transport: up.transport,
                aor_user: &aor_user,
                keys: &keys,
                requested: &requested,
                upstream_expires: self.mid.as_ref().map_or(0, |m| m.cfg.upstream_expires),
                aor_expires,
                indicators: &indicators,
                branch: &branch,
            },
        );
        let ckey = match self.txn.send_request(upstream_req, Peer::from(up), now) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "REGISTER not sent upstream");
                return self.mid_fail(&skey, &req, 503, "the upstream registrar cannot be reached", now);
            }
        };
        metrics::mid_register("forwarded");
        let Some(mid) = self.mid.as_mut() else { return };
        let seq = mid.next_seq();
        let deadline = (now + mid.cfg.upstream_timeout, seq);
        mid.deadlines.insert(deadline, ckey.clone());
        let star = req.contacts().unwrap_or_default().iter().any(|c| matches!(c, Contact::Star));
        mid.forwards.insert(
            ckey,
            Forward {
                skey,
                req,
                flow,
                auth_user,
                aor,
                contact_ids,
                requested,
                classes,
                sent,
                star,
                deadline,
                answered: false,
                started: now,
            },
        );
    }

    /// Whether an AoR keeps a device after a REGISTER that touches these bindings.
    fn aor_keeps_devices(&self, aor: &Aor, ids: &[Option<String>], requested: &[u32]) -> bool {
        let removed: Vec<&str> =
            ids.iter().zip(requested).filter(|(_, r)| **r == 0).filter_map(|(id, _)| id.as_deref()).collect();
        let added = ids.iter().zip(requested).any(|(id, r)| id.is_some() && *r > 0);
        added || self.registrar.location.get(aor).iter().any(|b| !removed.contains(&b.id.as_str()))
    }

    /// The device's REGISTER fails here (no upstream answer to relay).
    fn mid_fail(&mut self, skey: &sip_txn::ServerKey, req: &Message, code: u16, why: &str, now: Instant) {
        let mut headers = vec![(HeaderName::Warning, format!("399 sipwake \"{why}\""))];
        if code == 503 {
            headers.push((HeaderName::RetryAfter, "30".to_string()));
        }
        let resp = self.build_response(req, &tag_for(skey), code, None, &headers);
        let _ = self.txn.respond(skey, resp, now);
        metrics::registration("rejected");
        // R36: a waking device's REGISTER that failed ends what waits for it.
        self.pn_register_failed(req, code, now);
    }

    /// A response on a client transaction of the mid-registrar; the
    /// response back when the transaction is not the mid-registrar's.
    pub(crate) fn mid_response(&mut self, ckey: &ClientKey, mut msg: Message, now: Instant) -> Option<Message> {
        let Some(mid) = self.mid.as_mut() else { return Some(msg) };
        if mid.own.contains_key(ckey) {
            self.own_response(ckey, msg, now);
            return None;
        }
        let Some(f) = mid.forwards.get(ckey) else { return Some(msg) };
        let code = msg.status().unwrap_or(0);
        if code < 200 {
            return None;
        }
        if f.answered {
            let f = mid.forwards.remove(ckey)?;
            tracing::debug!(code, "late upstream answer to a REGISTER already answered 503");
            if (200..300).contains(&code) {
                self.mid_late_accepted(f, &msg, now);
            }
            return None;
        }
        let f = mid.forwards.remove(ckey)?;
        mid.deadlines.remove(&f.deadline);
        metrics::mid_upstream("device", code);
        crate::proxy::pop_top_via(&mut msg);
        if (200..300).contains(&code) {
            self.mid_accepted(f, msg, now);
            return None;
        }
        if code == 423
            && f.sent.iter().any(|(_, _, e)| *e > 0)
            && self.mid.as_ref().is_some_and(|m| m.cfg.throttle != Throttle::Mirror)
        {
            tracing::warn!(
                min_expires = ?msg.headers.get(&HeaderName::MinExpires),
                "the upstream registrar wants a longer expiry than mid_registrar.upstream_expires; raise it"
            );
        }
        metrics::registration(if code == 401 || code == 407 { "challenged" } else { "rejected" });
        self.stats.count_response(code);
        let _ = self.txn.respond(&f.skey, msg, now);
        // R36–R38: 401/407 keep the parked requests waiting; anything else ends them.
        self.pn_register_failed(&f.req, code, now);
        None
    }

    /// The upstream accepted: the local bindings, capped by its grants, and
    /// the upstream registrations are written; the device's 2xx leaves once
    /// they are durable.
    fn mid_accepted(&mut self, f: Forward, upstream: Message, now: Instant) {
        let now_ms = self.unix_ms(now);
        let grants = rewrite::grants(&upstream);
        let Some(mid) = self.mid.as_ref() else { return };
        let throttle = mid.cfg.throttle;
        // By Contact index: what the upstream granted for its key (what we asked, if it lists none).
        let granted: Vec<Option<u32>> = f
            .contact_ids
            .iter()
            .map(|id| {
                let key = mid.key_for(&f.aor, id.as_deref()?);
                let asked = f.sent.iter().find(|(k, _, _)| *k == key).map(|(_, _, e)| *e);
                grants.get(&key).copied().or(asked)
            })
            .collect();
        // R20: a binding whose expiry the upstream cut below the push lead
        // time is registered without push (no Feature-Caps, never pushed).
        let mut classes = f.classes.clone();
        if let Some(pn) = &self.pn {
            for (i, want) in f.requested.iter().enumerate() {
                let effective = granted.get(i).copied().flatten().map_or(*want, |g| g.min(*want));
                if let Some((_, class)) = classes.get_mut(i) {
                    pn.downgrade_if_short(class, effective);
                }
            }
        }
        let au = f.auth_user.as_ref().map(|(u, d)| (u.as_str(), d.as_str()));
        let (outcome, headers) =
            self.run_registrar(&f.req, f.flow.clone(), au, &classes, &f.contact_ids, &granted, now);
        if outcome.reply.code != 200 {
            // The location changed meanwhile (a concurrent REGISTER): its answer.
            let resp =
                self.build_response(&f.req, &tag_for(&f.skey), outcome.reply.code, outcome.reply.reason, &headers);
            return self.finish_register(
                &f.req,
                outcome,
                resp,
                ReplyTo::Txn(f.skey.clone()),
                Vec::new(),
                f.started,
                now,
            );
        }
        // The upstream registrations this answer creates, refreshes or ends.
        let mut ops = Vec::new();
        let Some(mid) = self.mid.as_mut() else { return };
        let code = upstream.status().unwrap_or(200);
        for (key, contact, expires) in &f.sent {
            let granted = grants.get(key).copied().unwrap_or(*expires);
            if *expires == 0 || granted == 0 {
                if mid.take(key).is_some() {
                    ops.push(StoreOp::RemoveUpstream { key: key.clone() });
                }
                continue;
            }
            let (call_id, cseq) = match mid.regs.get(key) {
                Some(r) => (r.call_id.clone(), r.cseq),
                None => (super::upstream::new_call_id(), 0),
            };
            let reg = UpstreamReg {
                key: key.clone(),
                aor: f.aor.clone(),
                contact: contact.clone(),
                expires_at: now_ms + u64::from(granted) * 1000,
                call_id,
                cseq,
                last_code: code,
                last_at: now_ms,
            };
            mid.put(reg.clone());
            ops.push(StoreOp::Upstream(Box::new(reg)));
        }
        // `Contact: *` (or removals by the registrar's own rules): the
        // upstream registrations of bindings that went.
        let mut gone = Vec::new();
        for ch in &outcome.changes {
            if let Change::Remove { id, .. } = ch {
                let key = mid.key_for(&f.aor, id);
                if f.star && throttle != Throttle::Aor {
                    if mid.take(&key).is_some() {
                        ops.push(StoreOp::RemoveUpstream { key });
                    }
                } else if !f.sent.iter().any(|(k, _, _)| *k == key) {
                    gone.push(id.clone());
                }
            }
        }
        if f.star && throttle == Throttle::Aor {
            let key = super::aor_key(&f.aor);
            if mid.take(&key).is_some() {
                ops.push(StoreOp::RemoveUpstream { key });
            }
        }
        // Bindings the registrar dropped by its own rules (max_contacts) leave the upstream too.
        for id in gone {
            ops.extend(self.mid_binding_gone(&f.aor, &id, now));
        }
        let server = self.server_header.clone();
        let resp = rewrite::device_response(upstream, &headers, &server);
        self.stats.count_response(200);
        metrics::response(200);
        self.finish_register(&f.req, outcome, resp, ReplyTo::Txn(f.skey.clone()), ops, f.started, now);
    }

    /// The upstream accepted a REGISTER whose device was answered 503: the
    /// registrations it created there that sipwake does not hold (and that
    /// no REGISTER in flight is about to create) would route calls to a
    /// `ctid` we answer 404 for, until they expire: de-registered now.
    fn mid_late_accepted(&mut self, f: Forward, upstream: &Message, now: Instant) {
        let now_ms = self.unix_ms(now);
        let grants = rewrite::grants(upstream);
        let code = upstream.status().unwrap_or(200);
        let Some(mid) = self.mid.as_ref() else { return };
        let orphans: Vec<UpstreamReg> = f
            .sent
            .iter()
            .filter(|(key, _, e)| {
                *e > 0
                    && !mid.regs.contains_key(key)
                    && !mid.forwards.values().any(|o| o.sent.iter().any(|(k, _, _)| k == key))
            })
            .map(|(key, contact, e)| UpstreamReg {
                key: key.clone(),
                aor: f.aor.clone(),
                contact: contact.clone(),
                expires_at: now_ms + u64::from(grants.get(key).copied().unwrap_or(*e)) * 1000,
                call_id: super::upstream::new_call_id(),
                cseq: 0,
                last_code: code,
                last_at: now_ms,
            })
            .collect();
        for reg in orphans {
            tracing::info!(key = reg.key, "de-registering what the upstream accepted after its device got 503");
            self.own_register(reg, super::OwnPurpose::Deregister, now);
        }
    }

    /// The upstream did not answer a forwarded REGISTER in time: 503.
    pub(crate) fn mid_forward_timeout(&mut self, ckey: &ClientKey, now: Instant) {
        let Some(mid) = self.mid.as_mut() else { return };
        let Some(f) = mid.forwards.get_mut(ckey) else { return };
        if f.answered {
            return;
        }
        f.answered = true;
        let (skey, req, deadline) = (f.skey.clone(), f.req.clone(), f.deadline);
        mid.deadlines.remove(&deadline);
        metrics::mid_upstream("device", 0);
        tracing::warn!(upstream = %mid.cfg.upstream.remote, "the upstream registrar did not answer a REGISTER");
        self.mid_no_answer(now);
        self.mid_fail(&skey, &req, 503, "the upstream registrar did not answer", now);
    }
}

/// By Contact index: the expiry the device asks (its `expires`, else the
/// Expires header, else the default), at most `max`.
fn requested_expiries(req: &Message, default: u32, max: u32) -> Vec<u32> {
    let header = req.expires();
    req.contacts()
        .unwrap_or_default()
        .iter()
        .map(|c| match c {
            Contact::Star => 0,
            Contact::Addr(na) => na
                .params
                .value("expires")
                .and_then(|v| sip_msg::chars::parse_u32(v))
                .or(header)
                .unwrap_or(default)
                .min(max),
        })
        .collect()
}
