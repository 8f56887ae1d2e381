//! The [`Node`]: one sans-IO state machine that owns the transaction layer,
//! the proxy contexts, the registrar's location service, the RFC 8599 push
//! engine and the digest authenticator, driven through `&mut self` with
//! `now` (in the manner of quinn-proto's `Endpoint`).
//!
//! Inputs are the `handle_*` methods; outputs are polled (`poll_transmit`,
//! `poll_store`, `poll_push`, `poll_lookup`, `poll_timeout`). The node never
//! reads a clock, touches a socket, a database or an HTTP client: the
//! drivers of the binary do, and feed the results back. This module owns the
//! entry points, the transport-level checks that precede any processing
//! (RFC 3261 §18: validation, `received`/`rport`), the outbox and the
//! clock; request routing is in `proxying`, REGISTER in `registrar` (and
//! `mid` in the mid-registrar role), RFC 8599 in `pn`, credentials in
//! `credentials`.

use crate::credentials::Credentials;
use crate::io::{Lookup, PushJob, StoreOp, StoreWrite, Transmit, WriteId};
use crate::pn::Pn;
use crate::proxy::flow_token::FlowTokens;
use crate::proxy::route::Me;
use crate::proxy::{ProxyConfig, Table};
use crate::stats::Stats;
use crate::{metrics, via};
use bytes::Bytes;
use sip_auth::{AuthConfig, Authenticator};
use sip_msg::{ConnId, HeaderName, Message, ParseFailure, Source, Target, Transport, response_from_headers};
use sip_push::PushConfig;
use sip_registrar::{Registrar, RegistrarConfig, location::Change};
use sip_txn::{ResponseEvent, ServerKey, TxnLayer};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Everything a node is built from.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub txn: sip_txn::Config,
    pub registrar: RegistrarConfig,
    pub proxy: ProxyConfig,
    /// Digest authentication (`None`: off).
    pub auth: Option<AuthConfig>,
    /// RFC 8599 push (`None`: off).
    pub push: Option<PushConfig>,
    /// The `Server` header value of our responses.
    pub server_header: String,
    /// Listener addresses (what Via / Record-Route advertise, what "us" is).
    pub listeners: Vec<(Transport, SocketAddr)>,
    /// Key of the HMAC of Record-Route flow tokens.
    pub flow_token_key: [u8; 32],
    /// Seed of the registrar's binding ids (PURRs come from the OS generator).
    pub seed: u64,
    /// Wall-clock time (unix ms) at the `now` the node is created with.
    pub unix_ms: u64,
    /// Cancel and missed-call pushes per provider (`"*"`: the others);
    /// providers not listed get [`CallEndPushes::default`] (both on).
    pub call_end_pushes: Vec<(String, crate::io::CallEndPushes)>,
    /// The mid-registrar role (`None`: registrar role).
    pub mid: Option<crate::mid::MidConfig>,
    /// The cluster role (`None`: a single node).
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// Allow/deny lists, rate limits and blocks by source.
    pub defence: crate::defence::DefenceConfig,
    /// How much of the push audit is kept (with push on).
    pub push_audit: crate::audit::AuditConfig,
}

/// Where a REGISTER's answer goes: straight to the client (answered at
/// once and idempotently, RFC 3261 §8.2.7), or through its server
/// transaction (it waited for an upstream registrar).
pub(crate) enum ReplyTo {
    Direct(Target),
    Txn(sip_txn::ServerKey),
}

/// A REGISTER whose answer waits for its store write.
pub(crate) struct PendingWrite {
    /// The answer and where it goes (none for writes no request waits on).
    pub reply: Option<(ReplyTo, Message)>,
    /// Bindings the write touches (their forks wait for it).
    pub bindings: Vec<String>,
    /// Parked requests whose woken device is in this write: forked once it is durable.
    pub forks: Vec<(sip_push::RequestId, String)>,
    pub started: Instant,
}

/// The sans-IO node.
pub struct Node {
    pub(crate) me: Me,
    pub(crate) tokens: FlowTokens,
    pub(crate) pcfg: ProxyConfig,
    pub(crate) server_header: Bytes,
    pub(crate) txn: TxnLayer,
    pub(crate) proxy: Table,
    pub(crate) registrar: Registrar,
    pub(crate) auth: Option<Authenticator>,
    pub(crate) creds: Credentials,
    pub(crate) pn: Option<Pn>,
    pub(crate) mid: Option<crate::mid::Mid>,
    pub(crate) cluster: Option<crate::cluster::Cluster>,
    /// Allow/deny lists, rate limits and blocks by source (`defence`).
    pub(crate) guard: crate::defence::Guard,
    /// Counters (atomics), shared with the drivers so they count without the node's lock.
    pub(crate) stats: std::sync::Arc<Stats>,
    /// Connections we received from and that are not closed.
    pub(crate) conns: HashSet<ConnId>,
    pub(crate) pending: HashMap<WriteId, PendingWrite>,
    /// Binding id → the newest write not yet durable that touches it.
    pub(crate) uncommitted: HashMap<String, WriteId>,
    next_write: WriteId,
    pub(crate) stopping: bool,
    /// Set while the stored location is loaded (start-up): the gate that
    /// holds what depends on it (`loading`).
    pub(crate) loading: Option<Box<crate::loading::LoadGate>>,
    /// (Instant, unix ms) at creation: the wall clock is derived from `now`.
    clock: (Instant, u64),
    transmits: VecDeque<Transmit>,
    writes: VecDeque<StoreWrite>,
    pub(crate) pushes: VecDeque<PushJob>,
    /// Pushes handed out and not yet answered.
    pub(crate) in_flight: HashMap<sip_push::PushId, crate::pn::InFlight>,
    pub(crate) lookups: VecDeque<Lookup>,
    /// Host names asked of the driver, their answers and what waits for them.
    pub(crate) dns: crate::dns::Dns,
}

impl Node {
    /// Builds a node; fails on an invalid push configuration (naming the key).
    pub fn new(cfg: NodeConfig, now: Instant) -> Result<Node, String> {
        let me = Me { listeners: cfg.listeners.clone(), domains: cfg.registrar.domains.clone() };
        let pn = match cfg.push {
            Some(p) => Some(Pn::new(p, cfg.call_end_pushes.clone(), cfg.push_audit.clone())?),
            None => None,
        };
        Ok(Node {
            me,
            tokens: FlowTokens::new(cfg.flow_token_key),
            pcfg: cfg.proxy,
            server_header: Bytes::from(cfg.server_header),
            txn: TxnLayer::new(cfg.txn),
            proxy: Table::default(),
            registrar: Registrar::new(cfg.registrar, cfg.seed),
            auth: cfg.auth.map(Authenticator::new),
            creds: Credentials::default(),
            pn,
            mid: cfg.mid.map(|m| crate::mid::Mid::new(m, now)),
            cluster: cfg.cluster.map(crate::cluster::Cluster::new),
            guard: crate::defence::Guard::new(cfg.defence),
            stats: std::sync::Arc::new(Stats::default()),
            conns: HashSet::new(),
            pending: HashMap::new(),
            uncommitted: HashMap::new(),
            next_write: 0,
            stopping: false,
            loading: None,
            clock: (now, cfg.unix_ms),
            transmits: VecDeque::new(),
            writes: VecDeque::new(),
            pushes: VecDeque::new(),
            in_flight: HashMap::new(),
            lookups: VecDeque::new(),
            dns: Default::default(),
        })
    }

    // ----- clock -----

    /// Wall-clock unix ms at `now`.
    pub fn unix_ms(&self, now: Instant) -> u64 {
        let (t0, ms0) = self.clock;
        if now >= t0 {
            ms0 + now.duration_since(t0).as_millis() as u64
        } else {
            ms0.saturating_sub(t0.duration_since(now).as_millis() as u64)
        }
    }

    /// The `Instant` of a wall-clock unix ms.
    pub(crate) fn instant_of(&self, ms: u64) -> Instant {
        let (t0, ms0) = self.clock;
        if ms >= ms0 { t0 + Duration::from_millis(ms - ms0) } else { t0 }
    }

    // ----- outputs -----

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next store write to carry out (then call [`Node::handle_store_result`]).
    pub fn poll_store(&mut self) -> Option<StoreWrite> {
        self.writes.pop_front()
    }

    /// The next push to deliver (then call [`Node::handle_push_result`]).
    pub fn poll_push(&mut self) -> Option<PushJob> {
        self.pushes.pop_front()
    }

    /// The next credential lookup (then call [`Node::handle_credentials`]).
    pub fn poll_lookup(&mut self) -> Option<Lookup> {
        self.lookups.pop_front()
    }

    /// When [`Node::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let expiry = self.registrar.location.next_expiry().map(|ms| self.instant_of(ms));
        let push = self.pn.as_ref().and_then(|p| p.engine.poll_timeout());
        let mid = self.mid.as_ref().and_then(|m| m.poll_timeout(|ms| self.instant_of(ms)));
        let cluster = self.cluster.as_ref().and_then(|c| c.next_deadline());
        let loading = self.loading.as_ref().and_then(|g| g.next_deadline());
        [
            self.txn.poll_timeout(),
            self.proxy.next_deadline(),
            push,
            expiry,
            mid,
            self.dns.next_deadline(),
            cluster,
            loading,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(crate) fn send(&mut self, target: Target, data: Bytes) {
        self.transmits.push_back(Transmit { target, data });
    }

    /// Sends a REGISTER's answer where it goes.
    pub(crate) fn reply_to(&mut self, to: ReplyTo, resp: Message, now: Instant) {
        match to {
            ReplyTo::Direct(target) => self.send(target, resp.to_bytes()),
            ReplyTo::Txn(key) => {
                if let Err(e) = self.txn.respond(&key, resp, now) {
                    tracing::debug!(error = %e, "REGISTER answer not sent (transaction gone)");
                }
            }
        }
    }

    /// Queues a store write; returns its id.
    pub(crate) fn write(&mut self, ops: Vec<StoreOp>, pending: PendingWrite) -> WriteId {
        self.cluster_wrote(&ops);
        self.next_write += 1;
        let id = self.next_write;
        for b in &pending.bindings {
            self.uncommitted.insert(b.clone(), id);
        }
        self.pending.insert(id, pending);
        self.writes.push_back(StoreWrite { id, ops });
        id
    }

    /// Store operations for registrar changes (with the push state of each upserted binding).
    pub(crate) fn store_ops(&self, changes: &[Change], now: Instant) -> Vec<StoreOp> {
        let now_ms = self.unix_ms(now);
        changes
            .iter()
            .map(|c| match c {
                Change::Upsert(b) => StoreOp::Upsert {
                    binding: b.clone(),
                    push_state: self.pn.as_ref().and_then(|p| p.engine.push_state(&b.id, now, now_ms)),
                },
                Change::Remove { id, .. } => StoreOp::Remove { id: id.clone() },
            })
            .collect()
    }

    /// Writes changes no request waits for (closed flows, management, dead tokens).
    pub(crate) fn write_changes(&mut self, changes: &[Change], now: Instant) -> Option<WriteId> {
        self.write_unawaited(changes, None, now)
    }

    /// Writes the removal of bindings that expired by `now_ms`: each goes
    /// only if the store still has it expiring by then (in a cluster another
    /// node may have refreshed it meanwhile).
    fn write_expired(&mut self, changes: &[Change], now_ms: u64, now: Instant) {
        self.write_unawaited(changes, Some(now_ms), now);
    }

    fn write_unawaited(&mut self, changes: &[Change], expired_at: Option<u64>, now: Instant) -> Option<WriteId> {
        if changes.is_empty() {
            return None;
        }
        let mut ops = self.store_ops(changes, now);
        if let Some(at) = expired_at {
            for op in &mut ops {
                if let StoreOp::Remove { id } = op {
                    *op = StoreOp::Expire { id: std::mem::take(id), at };
                }
            }
        }
        if self.mid.is_some() {
            for c in changes {
                if let Change::Remove { aor, id } = c {
                    ops.extend(self.mid_binding_gone(aor, id, now));
                }
            }
        }
        Some(self.write(ops, PendingWrite { reply: None, bindings: Vec::new(), forks: Vec::new(), started: now }))
    }

    // ----- inputs -----

    /// A message (or what failed to parse of one) arrived.
    pub fn handle_message(&mut self, src: Source, msg: Result<Message, ParseFailure>, now: Instant) {
        let request = !matches!(&msg, Ok(m) if !m.is_request());
        if !self.admit(&src, request, now) {
            return;
        }
        if let Some(c) = src.conn {
            self.conns.insert(c);
        }
        match msg {
            Err(f) => self.on_parse_failure(src, f),
            Ok(m) if m.is_request() => self.on_request(src, m, now),
            Ok(m) => self.on_response(src, m, now),
        }
        self.settle(now);
    }

    /// Timers are due (call at [`Node::poll_timeout`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.txn.handle_timeout(now);
        for key in self.proxy.due(now) {
            let actions = match self.proxy.ctxs.get_mut(&key) {
                Some(c) => c.proxy.handle_timeout(now),
                None => continue,
            };
            self.run_actions(&key, actions, now);
        }
        let now_ms = self.unix_ms(now);
        if self.registrar.location.next_expiry().is_some_and(|t| t <= now_ms) {
            let changes = self.registrar.expire(now_ms);
            metrics::bindings(self.registrar.location.len());
            if !changes.is_empty() {
                tracing::debug!(count = changes.len(), "bindings expired");
                crate::oplog::removed_all(&changes, "expired");
                self.pn_expired(&changes, now);
                self.write_expired(&changes, now_ms, now);
            }
        }
        if let Some(p) = &mut self.pn {
            p.engine.handle_timeout(now);
        }
        if self.mid.is_some() {
            self.mid_timeout(now);
        }
        if self.dns.next_deadline().is_some_and(|t| t <= now) {
            self.dns_timeouts(now);
        }
        if self.cluster.as_ref().and_then(|c| c.next_deadline()).is_some_and(|t| t <= now) {
            self.cluster_timeout(now);
        }
        if self.loading.as_ref().and_then(|g| g.next_deadline()).is_some_and(|t| t <= now) {
            self.loading_timeout(now);
        }
        self.settle(now);
    }

    /// A store write finished: the answers waiting for it leave now (a 500
    /// when it failed), then the requests parked for the devices it
    /// registered are forked (RFC 8599: never before the 200 is durable and sent).
    pub fn handle_store_result(&mut self, id: WriteId, result: Result<(), String>, now: Instant) {
        let Some(p) = self.pending.remove(&id) else { return };
        for b in &p.bindings {
            if self.uncommitted.get(b) == Some(&id) {
                self.uncommitted.remove(b);
            }
        }
        let ok = result.is_ok();
        if let Some((to, resp)) = p.reply {
            let resp = match &result {
                Ok(()) => resp,
                Err(e) => {
                    tracing::error!(error = %e, "cannot persist a registration; answering 500");
                    store_failure(resp)
                }
            };
            self.reply_to(to, resp, now);
            metrics::request_latency("REGISTER", now.saturating_duration_since(p.started));
        } else if let Err(e) = &result {
            tracing::error!(error = %e, "a store write failed");
        }
        for (request, binding) in p.forks {
            if ok {
                self.push_fork(request, &binding, now);
            } else {
                self.push_release(request, now);
            }
        }
        self.settle(now);
    }

    /// A push was delivered or failed.
    pub fn handle_push_result(&mut self, id: sip_push::PushId, result: Result<(), sip_push::PushError>, now: Instant) {
        self.pn_push_result(id, result, now);
        self.settle(now);
    }

    /// A connection closed (by either side, idle timeout or error).
    pub fn handle_conn_closed(&mut self, conn: ConnId, now: Instant) {
        self.conns.remove(&conn);
        let changes = self.registrar.conn_closed(conn, self.unix_ms(now));
        metrics::bindings(self.registrar.location.len());
        if !changes.is_empty() {
            crate::oplog::removed_all(&changes, "flow-closed");
            self.pn_removed(&changes, now);
            self.write_changes(&changes, now);
        }
        self.settle(now);
    }

    /// Stops taking new requests (they get 503).
    pub fn shutdown(&mut self) {
        self.stopping = true;
    }

    // ----- §18 checks -----

    /// Answers a request statelessly (malformed requests: 400/505/513).
    pub(crate) fn reply_stateless(&mut self, src: &Source, headers: &sip_msg::Headers, code: u16, warning: &str) {
        let mut resp = response_from_headers(headers, code, None, Some(&new_tag()));
        resp.headers.push(HeaderName::Server, self.server_header.clone());
        resp.headers.push(HeaderName::Warning, format!("399 sipwake \"{}\"", warning.replace('"', "'")));
        let via = via::stamp_top_via(&mut resp, src);
        let target = via::response_target(via.as_ref(), src);
        self.send(target, resp.to_bytes());
    }

    fn on_parse_failure(&mut self, src: Source, f: ParseFailure) {
        self.stats.count(|s| &s.parse_errors);
        metrics::parse_error();
        match f.partial {
            // RFC 3261 §16.3 / RFC 4475: a request we can route an answer for gets one.
            Some(p) if p.method != sip_msg::Method::Ack && p.headers.contains(&HeaderName::Via) => {
                tracing::debug!(remote = %src.remote, reason = f.error.reason, "malformed request");
                self.reply_stateless(&src, &p.headers, f.error.status(), f.error.reason);
            }
            // Malformed responses and unanswerable garbage are dropped (§18.1.2, RFC 4475 §3.1.2.5).
            _ => tracing::debug!(remote = %src.remote, reason = f.error.reason, "dropped malformed message"),
        }
    }

    pub(crate) fn on_request(&mut self, src: Source, mut msg: Message, now: Instant) {
        self.stats.count(|s| &s.requests);
        let Some(method) = msg.method().cloned() else { return };
        metrics::request(method_label(&method));
        if let Err(e) = msg.validate() {
            if method == sip_msg::Method::Ack {
                return;
            }
            // RFC 4475 mismatch02: an unknown method is "not implemented" before it is "bad".
            let code = if method.is_known() { e.status() } else { 501 };
            tracing::debug!(remote = %src.remote, reason = e.reason, code, "rejected request");
            self.reply_stateless(&src, &msg.headers, code, e.reason);
            return;
        }
        let via = via::stamp_top_via(&mut msg, &src);
        let target = via::response_target(via.as_ref(), &src);
        // Non-INVITE requests the server answers itself, at once and
        // idempotently, are answered statelessly (RFC 3261 §8.2.7), as
        // Kamailio's and OpenSIPS's sl replies are. INVITE, ACK and CANCEL
        // go through the transaction layer.
        if self.stopping && method != sip_msg::Method::Ack {
            let resp = self.build_response(&msg, &stateless_tag(&msg), 503, None, &[]);
            self.send(target, resp.to_bytes());
            return;
        }
        if self.loading.is_some() && self.loading_hold(&src, &msg, &target, now) {
            return;
        }
        self.dispatch(src, msg, target, now);
    }

    /// Hands a checked request to its handler (also used when a request that
    /// waited for a credential lookup goes on).
    pub(crate) fn dispatch(&mut self, src: Source, msg: Message, target: Target, now: Instant) {
        let Some(method) = msg.method().cloned() else { return };
        match method {
            sip_msg::Method::Register if msg.tokens(&HeaderName::ProxyRequire).next().is_none() => {
                self.on_register(src, msg, target, now)
            }
            sip_msg::Method::Ack => self.on_ack(src, msg, target, now),
            sip_msg::Method::Cancel => self.on_cancel(src, msg, target, now),
            _ => self.on_other_request(src, msg, target, now),
        }
    }

    pub(crate) fn build_response(
        &self,
        req: &Message,
        tag: &str,
        code: u16,
        reason: Option<&str>,
        extra: &[(HeaderName, String)],
    ) -> Message {
        build_response(&self.server_header, &self.stats, req, tag, code, reason, extra)
    }

    fn on_response(&mut self, src: Source, msg: Message, now: Instant) {
        let peer = sip_txn::Peer::from(Target::from(&src));
        match self.txn.on_response(msg, peer, now) {
            ResponseEvent::Stray { msg, .. } => self.forward_stray_response(msg),
            ResponseEvent::Invalid { .. } => self.stats.count(|s| &s.stray_responses),
            ResponseEvent::Response { key, msg, .. } => self.on_branch_response(key, msg, now),
            ResponseEvent::Absorbed { .. } => {}
        }
    }

    // ----- views (management) -----

    /// The location service.
    pub fn location(&self) -> &sip_registrar::Location {
        &self.registrar.location
    }
    /// The served domains.
    pub fn domains(&self) -> &[String] {
        &self.registrar.config.domains
    }
    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
    /// The counters, for a driver to keep (e.g. send errors counted off the lock).
    pub fn shared_stats(&self) -> std::sync::Arc<Stats> {
        self.stats.clone()
    }
    /// Live transactions.
    pub fn transactions(&self) -> usize {
        self.txn.len()
    }
    /// Requests being proxied.
    pub fn proxy_contexts(&self) -> usize {
        self.proxy.ctxs.len()
    }
    /// Whether a connection we received from is still open.
    pub fn conn_alive(&self, conn: ConnId) -> bool {
        self.conns.contains(&conn)
    }
    /// Whether authentication is on.
    pub fn auth_enabled(&self) -> bool {
        self.auth.is_some()
    }
    /// The push module, when push is on.
    pub fn push(&self) -> Option<&Pn> {
        self.pn.as_ref()
    }
    /// The mid-registrar, in that role.
    pub fn mid(&self) -> Option<&crate::mid::Mid> {
        self.mid.as_ref()
    }
    /// The mid-registrar's upstream moved (its host name resolved to another
    /// address): what is sent from now on goes there. Returns whether it changed.
    pub fn set_mid_upstream(&mut self, upstream: Target) -> bool {
        match &mut self.mid {
            Some(m) if m.cfg.upstream != upstream => {
                tracing::info!(from = %m.cfg.upstream.remote, to = %upstream.remote, transport = %upstream.transport, "upstream registrar address changed");
                m.cfg.upstream = upstream;
                true
            }
            _ => false,
        }
    }
    /// The mid-registrar's upstream registrations, each with the ids of
    /// the local bindings behind it.
    pub fn upstream_registrations(&self) -> Vec<(&crate::mid::UpstreamReg, Vec<String>)> {
        let Some(mid) = &self.mid else { return Vec::new() };
        mid.registrations().map(|r| (r, self.mid_behind(r).iter().map(|b| b.id.clone()).collect())).collect()
    }
    /// Store writes not yet acknowledged.
    pub fn pending_writes(&self) -> usize {
        self.pending.len()
    }
}

/// Builds a response with the node's conventions (To tag, Server header), counted.
pub(crate) fn build_response(
    server: &Bytes,
    stats: &Stats,
    req: &Message,
    tag: &str,
    code: u16,
    reason: Option<&str>,
    extra: &[(HeaderName, String)],
) -> Message {
    let mut resp = req.response(code, reason, Some(tag));
    for (n, v) in extra {
        resp.headers.push(n.clone(), v.clone());
    }
    resp.headers.push(HeaderName::Server, server.clone());
    stats.count_response(code);
    metrics::response(code);
    resp
}

/// The 500 sent instead of a 200 when the store failed: the same response
/// with another status, no bindings, and Retry-After.
fn store_failure(mut resp: Message) -> Message {
    resp.start = sip_msg::StartLine::Response { code: 500, reason: Bytes::from_static(b"Store Unavailable") };
    resp.headers.remove_all(&HeaderName::Contact);
    resp.headers.remove_all(&HeaderName::FeatureCaps);
    resp.headers.push(HeaderName::RetryAfter, "5");
    metrics::response(500);
    resp
}

/// A bounded label for the method metric (unknown methods share one).
pub fn method_label(m: &sip_msg::Method) -> &'static str {
    use sip_msg::Method::*;
    match m {
        Invite => "INVITE",
        Ack => "ACK",
        Bye => "BYE",
        Cancel => "CANCEL",
        Register => "REGISTER",
        Options => "OPTIONS",
        Prack => "PRACK",
        Subscribe => "SUBSCRIBE",
        Notify => "NOTIFY",
        Publish => "PUBLISH",
        Info => "INFO",
        Refer => "REFER",
        Message => "MESSAGE",
        Update => "UPDATE",
        Other(_) => "other",
    }
}

/// A random tag (RFC 3261 §19.3: at least 32 bits of randomness).
pub(crate) fn new_tag() -> String {
    use rand::RngExt;
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

/// The To tag of a stateless response: derived from what identifies the
/// request (Call-ID, From tag, top Via branch), so a retransmission gets
/// the same tag.
pub(crate) fn stateless_tag(req: &Message) -> String {
    use std::hash::{BuildHasher, Hasher};
    // The raw header values, not parsed ones: a retransmission is the same
    // bytes, and parsing From and Via again cost more than the rest of the
    // reply.
    let mut h = seed().build_hasher();
    for name in [HeaderName::CallId, HeaderName::From, HeaderName::Via] {
        h.write(req.headers.get(&name).map_or(&[][..], |v| &v[..]));
        h.write_u8(0xff);
    }
    hex16(h.finish())
}

/// `v` as 16 lower-case hex digits (what `format!("{v:016x}")` writes, without it).
pub(crate) fn hex16(v: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(16);
    for i in (0..16).rev() {
        s.push(char::from(HEX[((v >> (i * 4)) & 0xf) as usize]));
    }
    s
}

fn seed() -> &'static std::collections::hash_map::RandomState {
    static SEED: std::sync::OnceLock<std::collections::hash_map::RandomState> = std::sync::OnceLock::new();
    SEED.get_or_init(Default::default)
}

/// The To tag of our responses on a transaction: derived from its branch so
/// every response of the transaction carries the same one.
pub(crate) fn tag_for(key: &ServerKey) -> String {
    use std::hash::BuildHasher;
    hex16(seed().hash_one(key))
}
