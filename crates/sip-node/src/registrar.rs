//! REGISTER in the registrar role: digest authentication, the RFC 8599
//! checks before any change (through `pn`), the sans-IO registrar, and the
//! ordering rule that a 200 OK leaves only once its changes (and every change
//! before them) are durable: the answer waits in a store write, and forks
//! for devices it woke wait with it. Restoring stored bindings at start-up
//! and removals asked by management are here too.
//!
//! The mid-registrar role (`mid`) shares the authentication, the `pn`
//! precheck, [`Node::run_registrar`] and [`Node::finish_register`] with
//! this one; neither holds push logic of its own.

use crate::credentials::Creds;
use crate::io::{StoreOp, WriteId};
use crate::node::{Node, PendingWrite, ReplyTo, stateless_tag};
use crate::pn::Precheck;
use crate::{metrics, metrics::registration};
use sip_auth::{AuthOutcome, Which};
use sip_msg::{HeaderName, Message, Source, Target};
use sip_push::Classification;
use sip_registrar::location::Change;
use sip_registrar::{Aor, Binding, Flow, Outcome, RegisterInput};
use std::time::Instant;

impl Node {
    /// Handles one validated REGISTER from `src`; the answer goes to `target`.
    pub(crate) fn on_register(&mut self, src: Source, req: Message, target: Target, now: Instant) {
        let now_ms = self.unix_ms(now);
        let mut auth_user: Option<(String, String)> = None;
        if self.auth.is_some() {
            let realm = realm_of(&req);
            match self.authenticate(&req, &src, &realm, Which::Authorization, now) {
                Creds::Wait => return self.wait_for_credentials(src, req, target),
                Creds::Outcome(AuthOutcome::Authenticated { username }) => auth_user = Some((username, realm)),
                // A retransmission of a REGISTER already processed (its 200 was lost
                // or late): the nonce-count was used, but the password was right
                // (stale) and the registrar holds the state this very request wrote.
                // Answer it like the original, not with a challenge.
                Creds::Outcome(AuthOutcome::Challenge { stale: true, reason })
                    if reason == sip_auth::reason::REPLAYED_NONCE && self.already_processed(&req, now_ms) =>
                {
                    let user = req
                        .headers
                        .get_all(&HeaderName::Authorization)
                        .filter_map(|v| sip_auth::parse_credentials(v).ok().flatten())
                        .find(|c| c.realm == realm)
                        .map(|c| c.username)
                        .unwrap_or_default();
                    auth_user = Some((user, realm));
                }
                Creds::Outcome(AuthOutcome::Challenge { stale, .. }) => {
                    let headers = self.challenge(&realm, Which::Authorization, stale, now);
                    registration("challenged");
                    let resp = self.build_response(&req, &stateless_tag(&req), 401, None, &headers);
                    self.send(target, resp.to_bytes());
                    return;
                }
            }
        }
        let flow = Flow { transport: src.transport, remote: src.remote, local: src.local, conn: src.conn };
        // RFC 8599: classify the Contacts; 555 / 423 come before any change.
        let classes = match &self.pn {
            Some(p) => match p.precheck(&req, self.registrar.config.default_expires, src.transport) {
                Precheck::Reject(code, reason, headers) => {
                    registration("rejected");
                    let resp = self.build_response(&req, &stateless_tag(&req), code, reason, &headers);
                    self.send(target, resp.to_bytes());
                    self.pn_register_failed(&req, code, now);
                    return;
                }
                Precheck::Go(c) => c,
            },
            None => Vec::new(),
        };
        if self.mid.is_some() {
            return self.mid_register(src, req, target, auth_user, classes, now);
        }
        let au = auth_user.as_ref().map(|(u, d)| (u.as_str(), d.as_str()));
        let (outcome, headers) = self.run_registrar(&req, flow, au, &classes, &[], &[], now);
        let resp = self.build_response(&req, &stateless_tag(&req), outcome.reply.code, outcome.reply.reason, &headers);
        self.finish_register(&req, outcome, resp, ReplyTo::Direct(target), Vec::new(), now, now);
    }

    /// Runs the registrar on a REGISTER (authenticated and prechecked) and
    /// tells the push module which bindings it wrote: the outcome, and the
    /// headers of the answer (a 200 gets the Feature-Caps, R51 on
    /// retransmissions too). `fresh_ids` and `caps` by Contact index, as
    /// [`RegisterInput`] takes them.
    #[expect(clippy::too_many_arguments, reason = "the registrar's inputs, passed on once")]
    pub(crate) fn run_registrar(
        &mut self,
        req: &Message,
        flow: Flow,
        auth_user: Option<(&str, &str)>,
        classes: &[(String, Classification)],
        fresh_ids: &[Option<String>],
        caps: &[Option<u32>],
        now: Instant,
    ) -> (Outcome, Vec<(HeaderName, String)>) {
        let now_ms = self.unix_ms(now);
        let before = crate::oplog::before(&self.registrar.location, req);
        let src = flow.remote;
        let mut outcome =
            self.registrar.register(RegisterInput { req, flow, now_ms, auth_user, fresh_ids, caps, dry_run: false });
        crate::oplog::registered(&outcome.changes, before.as_deref(), src, now_ms);
        metrics::bindings(self.registrar.location.len());
        // Moved out, not copied: the hot path of every REGISTER.
        let mut headers = std::mem::take(&mut outcome.reply.headers);
        if outcome.reply.code == 200
            && let Some(p) = &mut self.pn
        {
            let aor = outcome.aor.as_ref();
            for fc in p.registered(classes, &outcome.changes, &self.registrar.location, aor, now, now_ms) {
                headers.push((HeaderName::FeatureCaps, fc));
            }
        }
        (outcome, headers)
    }

    /// Sends a REGISTER's answer: a refusal at once (ending what waits for
    /// a waking device whose REGISTER failed, R36), a 200 only once its
    /// changes and `extra` (and every change before them) are durable; the
    /// forks of requests parked for these devices wait for it too.
    /// `started`: when the REGISTER arrived (latency histogram).
    #[expect(clippy::too_many_arguments, reason = "one REGISTER's answer and its context, passed on once")]
    pub(crate) fn finish_register(
        &mut self,
        req: &Message,
        outcome: Outcome,
        resp: Message,
        to: ReplyTo,
        extra: Vec<StoreOp>,
        started: Instant,
        now: Instant,
    ) {
        let code = outcome.reply.code;
        registration(if code == 200 { "ok" } else { "rejected" });
        if code != 200 {
            self.reply_to(to, resp, now);
            self.pn_register_failed(req, code, now);
            return;
        }
        let bindings = outcome
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::Upsert(b) => Some(b.id.clone()),
                Change::Remove { .. } => None,
            })
            .collect();
        // (The push module saw this REGISTER's removals in `registered`.)
        let mut ops = self.store_ops(&outcome.changes, now);
        ops.extend(extra);
        self.write(ops, PendingWrite { reply: Some((to, resp)), bindings, forks: Vec::new(), started });
    }

    /// Whether this REGISTER (its Call-ID and CSeq) already wrote its AoR's state.
    fn already_processed(&self, req: &Message, now_ms: u64) -> bool {
        let (Some(call_id), Ok(cseq), Ok(to)) = (req.call_id(), req.cseq(), req.to()) else { return false };
        let Some(uri) = to.uri.as_sip() else { return false };
        self.registrar.location.processed(&Aor::from_uri(uri), call_id, cseq.seq, now_ms)
    }

    /// Room for the stored bindings about to be restored (start-up): `all`
    /// of them, `push` of them push bindings.
    pub fn reserve_bindings(&mut self, all: usize, push: usize) {
        self.registrar.location.reserve(all);
        if let Some(pn) = &mut self.pn {
            pn.engine.reserve(push);
        }
    }

    /// Loads stored bindings (start-up) with their push state; expired ones
    /// are skipped. Returns (bindings kept, push bindings re-armed).
    pub fn restore(&mut self, rows: Vec<(Binding, Option<String>)>, now: Instant) -> (usize, usize) {
        let now_ms = self.unix_ms(now);
        let (mut kept, mut pushed) = (0, 0);
        // Row by row (ids are unique: no row replaces another), with no map
        // of the push states on the side: a million rows at start-up.
        for (b, state) in rows {
            if b.expires_at <= now_ms {
                continue;
            }
            if let Some(pn) = &mut self.pn {
                pushed += usize::from(pn.restore(&b, state.as_deref(), now, now_ms));
            }
            self.registrar.location.upsert(b);
            kept += 1;
        }
        metrics::bindings(self.registrar.location.len());
        (kept, pushed)
    }

    /// Removes one binding or a whole AoR (management API): returns how many
    /// went and the store write that makes it durable.
    pub fn remove(&mut self, aor: &Aor, id: Option<&str>, now: Instant) -> (usize, Option<WriteId>) {
        let now_ms = self.unix_ms(now);
        let changes: Vec<Change> = match id {
            Some(id) => self.registrar.remove_binding(aor, id, now_ms).into_iter().collect(),
            None => self.registrar.remove_aor(aor, now_ms),
        };
        metrics::bindings(self.registrar.location.len());
        crate::oplog::removed_all(&changes, "removed");
        self.pn_removed(&changes, now);
        let w = self.write_changes(&changes, now);
        self.settle(now);
        (changes.len(), w)
    }
}

/// The realm of a REGISTER: the domain of its To (the AoR's domain).
fn realm_of(req: &Message) -> String {
    req.to()
        .ok()
        .and_then(|t| t.uri.as_sip().map(|u| Aor::from_uri(&sip_msg::SipUri::new(u.host.clone(), None)).to_string()))
        .unwrap_or_default()
}
