//! What the mid-registrar sends the upstream on its own, and what it learns
//! from the answers: de-REGISTERs for devices that went away (or that the
//! upstream accepted only after their device was answered 503), re-sent
//! REGISTERs after the upstream lost its registrations (it answered a
//! keep-alive again after missing some, answered 404 for a device we hold
//! there, or a registration nears its upstream expiry while its devices
//! live), paced at `resend_per_sec`, and the OPTIONS keep-alive.
//!
//! sipwake holds no passwords: a re-sent REGISTER the upstream challenges
//! cannot be answered. Push devices then get a refresh push (they
//! re-register with their own credentials, through us); plain devices are
//! logged and counted (`sipwake_mid_unrestored_total`).

use super::rewrite::{self, OwnRegister};
use super::{Own, OwnPurpose, Throttle, UpstreamReg};
use crate::io::StoreOp;
use crate::metrics;
use crate::node::{Node, PendingWrite};
use sip_msg::Message;
use sip_registrar::{Aor, Binding};
use sip_txn::{ClientKey, Peer};
use std::time::{Duration, Instant};

/// A Call-ID for the REGISTERs sipwake sends itself for one registration.
pub(crate) fn new_call_id() -> String {
    use rand::RngExt;
    let n: u128 = rand::rng().random();
    format!("{n:032x}@sipwake")
}

/// How long after an answer a 404 is not taken as a sign the upstream forgot.
const SUSPECT_QUIET: u64 = 30_000;

impl Node {
    /// The local bindings an upstream registration stands for.
    pub(crate) fn mid_behind(&self, reg: &UpstreamReg) -> Vec<&Binding> {
        let Some(mid) = &self.mid else { return Vec::new() };
        match mid.cfg.throttle {
            Throttle::Aor => self.registrar.location.get(&reg.aor).iter().collect(),
            Throttle::Mirror | Throttle::Contact => {
                self.registrar.location.binding(&reg.aor, &reg.key).into_iter().collect()
            }
        }
    }

    /// Timers of the mid-registrar (called from [`Node::handle_timeout`]).
    pub(crate) fn mid_timeout(&mut self, now: Instant) {
        // Forwarded REGISTERs the upstream did not answer in time.
        loop {
            let Some(mid) = self.mid.as_mut() else { return };
            let Some((&(t, s), _)) = mid.deadlines.iter().next() else { break };
            if t > now {
                break;
            }
            let Some(ck) = mid.deadlines.remove(&(t, s)) else { break };
            if let Some(f) = mid.forwards.get_mut(&ck) {
                f.deadline = (now, 0);
            }
            self.mid_forward_timeout(&ck, now);
        }
        let Some(mid) = self.mid.as_mut() else { return };
        // Keep-alive.
        if let Some((_, t)) = mid.keepalive_pending
            && t <= now
        {
            mid.keepalive_pending = None;
            self.mid_upstream_unreachable(now);
        }
        let Some(mid) = self.mid.as_mut() else { return };
        if mid.keepalive_pending.is_none()
            && let (Some(at), Some(every)) = (mid.keepalive_at, mid.cfg.keepalive)
            && at <= now
        {
            mid.keepalive_at = Some(now + every);
            self.send_keepalive(now);
        }
        // Safety refreshes: registrations nearing their upstream expiry while devices live.
        let now_ms = self.unix_ms(now);
        let mut due = Vec::new();
        if let Some(mid) = self.mid.as_mut() {
            while let Some((at, key)) = mid.refresh.first().cloned() {
                if at > now_ms {
                    break;
                }
                mid.refresh.remove(&(at, key.clone()));
                due.push(key);
            }
        }
        for key in due {
            let Some(reg) = self.mid.as_ref().and_then(|m| m.regs.get(&key)) else { continue };
            if self.mid_behind(reg).iter().any(|b| b.expires_at > reg.expires_at) {
                tracing::debug!(key, "upstream registration nears its expiry while its devices live; refreshing");
                if let Some(m) = self.mid.as_mut() {
                    m.queue_resend([key]);
                }
            }
        }
        // Paced re-sends.
        loop {
            let Some(mid) = self.mid.as_mut() else { return };
            if mid.next_resend > now {
                break;
            }
            let Some(key) = mid.resend.pop_front() else { break };
            mid.resend_queued.remove(&key);
            let gap = Duration::from_secs_f64(1.0 / f64::from(mid.cfg.resend_per_sec.max(1)));
            mid.next_resend = mid.next_resend.max(now.checked_sub(Duration::from_secs(1)).unwrap_or(now)) + gap;
            let Some(reg) = mid.regs.get(&key).cloned() else { continue };
            self.own_register(reg, OwnPurpose::Resend, now);
        }
    }

    fn send_keepalive(&mut self, now: Instant) {
        let Some(mid) = self.mid.as_mut() else { return };
        let up = mid.cfg.upstream;
        let Some(local) = self.me.listener(up.transport, up.remote.is_ipv6()) else { return };
        let seq = mid.next_seq();
        let Some(m) = rewrite::keepalive(up.remote, local, up.transport, &sip_txn::new_branch(), seq) else { return };
        match self.txn.send_request(m, Peer::from(up), now) {
            Ok(ck) => {
                let Some(mid) = self.mid.as_mut() else { return };
                mid.keepalive_pending = Some((ck.clone(), now + mid.cfg.upstream_timeout));
                mid.own.insert(ck, Own::Keepalive);
            }
            Err(e) => tracing::debug!(error = %e, "keep-alive not sent"),
        }
    }

    /// Sends a REGISTER of sipwake's own for an upstream registration.
    pub(crate) fn own_register(&mut self, mut reg: UpstreamReg, purpose: OwnPurpose, now: Instant) {
        let Some(mid) = self.mid.as_ref() else { return };
        let (up, throttle, upstream_expires) = (mid.cfg.upstream, mid.cfg.throttle, mid.cfg.upstream_expires);
        let Some(local) = self.me.listener(up.transport, up.remote.is_ipv6()) else { return };
        let now_ms = self.unix_ms(now);
        let behind = self.mid_behind(&reg);
        let expires = match (purpose, throttle) {
            (OwnPurpose::Deregister, _) => 0,
            (OwnPurpose::Resend, Throttle::Mirror) => {
                let left = behind.iter().map(|b| b.expires_at.saturating_sub(now_ms)).max().unwrap_or(0);
                u32::try_from(left.div_ceil(1000)).unwrap_or(u32::MAX)
            }
            (OwnPurpose::Resend, _) => upstream_expires,
        };
        if expires == 0 && purpose == OwnPurpose::Resend {
            return;
        }
        let mut providers: Vec<String> = Vec::new();
        if let Some(pn) = &self.pn {
            for b in &behind {
                if let Some(c) = pn.coordinates(b).filter(|_| pn.is_push_binding(b))
                    && !providers.contains(&c.provider)
                {
                    providers.push(c.provider);
                }
            }
        }
        let indicators: Vec<String> = providers.iter().map(|p| format!("*;+sip.pns=\"{p}\"")).collect();
        reg.cseq = reg.cseq.wrapping_add(1);
        let branch = sip_txn::new_branch();
        let Some(m) = rewrite::own_register(&OwnRegister {
            aor: reg.aor.as_str(),
            contact: &reg.contact,
            expires,
            call_id: &reg.call_id,
            cseq: reg.cseq,
            local,
            transport: up.transport,
            branch: &branch,
            indicators: &indicators,
            user_agent: &self.server_header,
        }) else {
            tracing::warn!(key = reg.key, "cannot build a REGISTER for the upstream");
            return;
        };
        let key = reg.key.clone();
        if purpose == OwnPurpose::Resend
            && let Some(mid) = self.mid.as_mut()
        {
            mid.put(reg.clone());
            // The CSeq it used is durable before the answer: after a restart
            // the next one is higher (an upstream refuses an old CSeq).
            self.write_ops(vec![StoreOp::Upstream(Box::new(reg.clone()))], now);
        }
        match self.txn.send_request(m, Peer::from(up), now) {
            Ok(ck) => {
                if let Some(mid) = self.mid.as_mut() {
                    mid.own.insert(ck, Own::Register { key, purpose, reg: Box::new(reg), expires });
                }
            }
            Err(e) => tracing::debug!(error = %e, key, "REGISTER not sent upstream"),
        }
    }

    /// A final answer to something sipwake sent the upstream itself.
    pub(crate) fn own_response(&mut self, ckey: &ClientKey, msg: Message, now: Instant) {
        let code = msg.status().unwrap_or(0);
        if code < 200 {
            return;
        }
        let Some(mid) = self.mid.as_mut() else { return };
        let Some(own) = mid.own.remove(ckey) else { return };
        if mid.keepalive_pending.as_ref().is_some_and(|(k, _)| k == ckey) {
            mid.keepalive_pending = None;
        }
        if matches!(own, Own::Keepalive) {
            self.keepalive_answered(&msg);
        }
        self.mid_upstream_alive(now);
        let Own::Register { key, purpose, reg, expires } = own else { return };
        metrics::mid_upstream(if purpose == OwnPurpose::Deregister { "deregister" } else { "resend" }, code);
        if purpose == OwnPurpose::Deregister {
            if code == 401 || code == 407 {
                tracing::info!(
                    key,
                    code,
                    "the upstream challenged a de-REGISTER; its registration stays until it expires"
                );
            }
            return;
        }
        let now_ms = self.unix_ms(now);
        let mut reg = *reg;
        // A registration removed meanwhile (its devices went) stays removed.
        if self.mid.as_ref().is_none_or(|m| !m.regs.contains_key(&key)) {
            return;
        }
        reg.last_code = code;
        reg.last_at = now_ms;
        if (200..300).contains(&code) {
            // What we asked, if it lists none (as for a device's REGISTER).
            let granted = rewrite::grants(&msg).get(&key).copied().unwrap_or(expires);
            reg.expires_at = now_ms + u64::from(granted) * 1000;
            tracing::debug!(key, granted, "upstream registration restored");
        } else if code == 401 || code == 407 {
            self.mid_unauthorized(&reg, now);
        } else {
            tracing::warn!(key, code, aor = %reg.aor, "the upstream refused a re-sent REGISTER");
        }
        if let Some(mid) = self.mid.as_mut() {
            mid.put(reg.clone());
        }
        self.write_ops(vec![StoreOp::Upstream(Box::new(reg))], now);
    }

    /// The upstream challenged a re-sent REGISTER: push devices are asked
    /// to re-register themselves; plain ones cannot be restored.
    fn mid_unauthorized(&mut self, reg: &UpstreamReg, now: Instant) {
        let ids: Vec<String> = self.mid_behind(reg).iter().map(|b| b.id.clone()).collect();
        for id in ids {
            let pushed =
                self.pn.as_mut().is_some_and(|p| p.engine.refresh_now(&sip_push::BindingKey::new(id.as_str()), now));
            if pushed {
                metrics::mid_restore("push");
                tracing::info!(aor = %reg.aor, binding = id, "upstream challenged the re-sent REGISTER; refresh push sent");
            } else {
                metrics::mid_restore("unrestored");
                tracing::warn!(
                    aor = %reg.aor, binding = id,
                    "upstream challenged the re-sent REGISTER and the device has no push: it stays unreachable until it re-registers"
                );
            }
        }
    }

    /// A client transaction of the mid-registrar timed out or failed to
    /// send; `false` when it is not the mid-registrar's.
    pub(crate) fn mid_txn_failed(&mut self, ckey: &ClientKey, now: Instant) -> bool {
        let Some(mid) = self.mid.as_mut() else { return false };
        if let Some(f) = mid.forwards.get(ckey) {
            if !f.answered {
                self.mid_forward_timeout(ckey, now);
            }
            if let Some(m) = self.mid.as_mut() {
                m.forwards.remove(ckey);
            }
            return true;
        }
        let Some(own) = mid.own.remove(ckey) else { return false };
        if mid.keepalive_pending.as_ref().is_some_and(|(k, _)| k == ckey) {
            mid.keepalive_pending = None;
        }
        match own {
            Own::Keepalive => self.mid_upstream_unreachable(now),
            Own::Register { .. } => self.mid_no_answer(now),
        }
        true
    }

    /// A REGISTER got no answer: with a keep-alive, it probes the upstream
    /// now (one lost request does not make it down: its return would
    /// re-send every registration); without one, the upstream is down.
    pub(crate) fn mid_no_answer(&mut self, now: Instant) {
        let Some(mid) = self.mid.as_mut() else { return };
        if mid.cfg.keepalive.is_none() {
            return self.mid_upstream_unreachable(now);
        }
        if mid.keepalive_pending.is_none() {
            mid.keepalive_at = Some(now);
        }
    }

    /// A keep-alive answer: a new instance (`instance_header`) means the
    /// upstream restarted, however quickly: every registration is re-sent.
    fn keepalive_answered(&mut self, msg: &Message) {
        let Some(mid) = self.mid.as_mut() else { return };
        let Some(name) = mid.cfg.instance_header.as_deref() else { return };
        let Some(value) = msg.headers.get(&sip_msg::HeaderName::from_bytes(name.as_bytes())).cloned() else { return };
        let before = mid.instance.replace(value.clone());
        if before.is_none_or(|b| b == value) {
            return;
        }
        tracing::warn!(
            header = name,
            instance = %String::from_utf8_lossy(&value),
            "the upstream registrar restarted (a new instance answers the keep-alive); re-sending every registration"
        );
        self.resend_live();
    }

    /// Queues a re-send of every registration that still has devices behind it.
    fn resend_live(&mut self) {
        let Some(mid) = self.mid.as_ref() else { return };
        let live: Vec<String> =
            mid.regs.values().filter(|r| !self.mid_behind(r).is_empty()).map(|r| r.key.clone()).collect();
        if let Some(mid) = self.mid.as_mut() {
            mid.queue_resend(live);
        }
    }

    /// The upstream answered something: if it was considered down, every
    /// registration is re-sent (it may have restarted with empty memory).
    pub(crate) fn mid_upstream_alive(&mut self, _now: Instant) {
        let Some(mid) = self.mid.as_mut() else { return };
        if mid.up {
            return;
        }
        mid.up = true;
        metrics::mid_up(true);
        let keys: Vec<String> = mid.regs.keys().cloned().collect();
        let live: Vec<String> = keys
            .into_iter()
            .filter(|k| self.mid.as_ref().and_then(|m| m.regs.get(k)).is_some_and(|r| !self.mid_behind(r).is_empty()))
            .collect();
        tracing::warn!(
            registrations = live.len(),
            "the upstream registrar answers again; re-sending every registration"
        );
        if let Some(mid) = self.mid.as_mut() {
            mid.queue_resend(live);
        }
    }

    /// The upstream did not answer.
    pub(crate) fn mid_upstream_unreachable(&mut self, _now: Instant) {
        let Some(mid) = self.mid.as_mut() else { return };
        if !mid.up {
            return;
        }
        // Without keep-alive nothing would notice its return: probe it now.
        if mid.cfg.keepalive.is_none() {
            return;
        }
        mid.up = false;
        metrics::mid_up(false);
        tracing::warn!(upstream = %mid.cfg.upstream.remote, "the upstream registrar does not answer");
    }

    /// The upstream answered 404 to a request for an AoR whose devices we
    /// registered there: it may have lost them; re-send (at most every 30 s).
    pub(crate) fn mid_suspect(&mut self, aor: &Aor, now: Instant) {
        let now_ms = self.unix_ms(now);
        let Some(mid) = self.mid.as_ref() else { return };
        let keys: Vec<String> = match mid.cfg.throttle {
            Throttle::Aor => vec![super::aor_key(aor)],
            _ => self.registrar.location.get(aor).iter().map(|b| b.id.clone()).collect(),
        };
        let keys: Vec<String> = keys
            .into_iter()
            .filter(|k| mid.regs.get(k).is_some_and(|r| now_ms.saturating_sub(r.last_at) > SUSPECT_QUIET))
            .collect();
        if keys.is_empty() {
            return;
        }
        tracing::info!(aor = %aor, "the upstream answered 404 for devices registered there; re-sending their registrations");
        if let Some(mid) = self.mid.as_mut() {
            mid.queue_resend(keys);
        }
    }

    /// A local binding went without a REGISTER through us (expiry,
    /// management, dead push token, lost flow, registrar limits): its
    /// upstream registration goes too (in `aor` mode, with the AoR's last
    /// device). Returns the store operations.
    pub(crate) fn mid_binding_gone(&mut self, aor: &Aor, id: &str, now: Instant) -> Vec<StoreOp> {
        let now_ms = self.unix_ms(now);
        let Some(mid) = self.mid.as_mut() else { return Vec::new() };
        let throttle = mid.cfg.throttle;
        let key = match throttle {
            Throttle::Aor if !self.registrar.location.get(aor).is_empty() => return Vec::new(),
            Throttle::Aor => super::aor_key(aor),
            Throttle::Mirror | Throttle::Contact => id.to_string(),
        };
        let Some(reg) = mid.take(&key) else { return Vec::new() };
        // Mirror mode: the upstream's registration runs out with ours.
        if throttle != Throttle::Mirror || reg.expires_at > now_ms + 5000 {
            self.own_register(reg, OwnPurpose::Deregister, now);
        }
        vec![StoreOp::RemoveUpstream { key }]
    }

    /// Writes store operations no request waits for.
    pub(crate) fn write_ops(&mut self, ops: Vec<StoreOp>, now: Instant) {
        if !ops.is_empty() {
            self.write(ops, PendingWrite { reply: None, bindings: Vec::new(), forks: Vec::new(), started: now });
        }
    }

    /// Loads the upstream registrations at start-up (after the bindings):
    /// those with no device left are de-registered, those the upstream has
    /// let lapse are re-sent. Returns how many were kept.
    pub fn restore_upstream(&mut self, regs: Vec<UpstreamReg>, now: Instant) -> usize {
        let now_ms = self.unix_ms(now);
        let Some(mid) = self.mid.as_mut() else { return 0 };
        for r in regs {
            mid.put(r);
        }
        let keys: Vec<String> = mid.regs.keys().cloned().collect();
        let mut kept = 0;
        let mut ops = Vec::new();
        for k in keys {
            let Some(reg) = self.mid.as_ref().and_then(|m| m.regs.get(&k)).cloned() else { continue };
            if self.mid_behind(&reg).is_empty() {
                if let Some(m) = self.mid.as_mut() {
                    m.take(&k);
                }
                ops.push(StoreOp::RemoveUpstream { key: k });
                if reg.expires_at > now_ms {
                    self.own_register(reg, OwnPurpose::Deregister, now);
                }
                continue;
            }
            kept += 1;
            if reg.expires_at <= now_ms + 60_000
                && let Some(m) = self.mid.as_mut()
            {
                m.queue_resend([k]);
            }
        }
        self.write_ops(ops, now);
        self.settle(now);
        kept
    }
}
