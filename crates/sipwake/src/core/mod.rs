//! The server core: receives every message from the transports, applies the
//! RFC 3261 checks that precede any processing (validation, `received` /
//! `rport` stamping), feeds the sans-IO transaction layer, hands new server
//! transactions to the request handler, and sends what the transaction
//! layer emits. It also runs the transaction timers.
//!
//! It owns the glue and the locking: the transaction layer sits behind one
//! mutex, held only while feeding it and draining its output; sends happen
//! after the lock is released. It must not hold protocol rules of its own
//! beyond §18 (transport-layer) ones: those live in `sip-txn`, `routing`
//! and `local`.

pub mod local;
mod proxying;
pub mod routing;
mod stats;

pub use stats::Stats;

use crate::config::Config;
use crate::metrics;
use crate::registrar_svc::RegistrarService;
use bytes::Bytes;
use rand::RngExt;
use sip_msg::{HeaderName, Message, ParseFailure, response_from_headers};
use sip_transport::{Handler, Source, Target, Transport, Transports};
use sip_txn::{Peer, ResponseEvent, ServerKey, TxnEvent, TxnLayer};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What sits behind the core's one lock: the transaction layer and the
/// proxy contexts that drive it.
pub(crate) struct State {
    pub txn: TxnLayer,
    pub proxy: crate::proxy::Table,
}

/// The server core; shared by every receive task and the timer task.
pub struct Core {
    transports: Transports,
    state: Mutex<State>,
    me: crate::proxy::route::Me,
    tokens: crate::proxy::flow_token::FlowTokens,
    pcfg: crate::proxy::ProxyConfig,
    /// Wakes the timer task when a deadline earlier than the one it sleeps on appears.
    timer_wake: Notify,
    /// The deadline the timer task sleeps until, as nanoseconds since `epoch` (u64::MAX = none).
    timer_at: AtomicU64,
    epoch: Instant,
    server_header: Bytes,
    stopping: AtomicBool,
    pub stats: Stats,
    pub registrar: Arc<RegistrarService>,
    /// A handle on the Arc this core lives in (set by the server at start):
    /// push deliveries run as tasks that report back to the core.
    pub weak: std::sync::OnceLock<std::sync::Weak<Core>>,
    rt: tokio::runtime::Handle,
}

impl Core {
    pub fn new(config: &Config, transports: Transports, registrar: Arc<RegistrarService>) -> Core {
        let s = &config.sip;
        let tcfg = sip_txn::Config {
            t1: s.t1(),
            t2: s.t2(),
            t4: s.t4(),
            trying_delay: Duration::from_millis(s.trying_delay_ms),
            ..sip_txn::Config::default()
        };
        let me = crate::proxy::route::Me { listeners: transports.local_addrs(), domains: registrar.domains() };
        let p = &config.proxy;
        let pcfg = crate::proxy::ProxyConfig {
            record_route: p.record_route,
            authenticate_local_callers: p.authenticate_local_callers,
            allow_unauthenticated_inbound: p.allow_unauthenticated_inbound,
            relay_for_local_users: p.relay_for_local_users,
            timer_c: Duration::from_secs(p.timer_c_secs),
        };
        Core {
            transports,
            state: Mutex::new(State { txn: TxnLayer::new(tcfg), proxy: Default::default() }),
            me,
            tokens: crate::proxy::flow_token::FlowTokens::new(rand::random()),
            pcfg,
            timer_wake: Notify::new(),
            timer_at: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            server_header: Bytes::from(config.server_header.clone()),
            stopping: AtomicBool::new(false),
            stats: Stats::default(),
            registrar,
            weak: std::sync::OnceLock::new(),
            rt: tokio::runtime::Handle::current(),
        }
    }

    /// Stops handling new requests.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.timer_wake.notify_one();
    }

    /// Live transactions.
    pub fn transactions(&self) -> usize {
        self.state.lock().expect("core state").txn.len()
    }

    /// Requests being proxied.
    pub fn proxy_contexts(&self) -> usize {
        self.state.lock().expect("core state").proxy.ctxs.len()
    }

    fn next_deadline(&self, st: &State) -> Option<Instant> {
        let push = self.registrar.push.as_ref().and_then(|p| p.engine.lock().expect("push engine").poll_timeout());
        [st.txn.poll_timeout(), st.proxy.next_deadline(), push].into_iter().flatten().min()
    }

    /// Runs the transaction timers until shutdown.
    pub async fn run_timers(self: Arc<Self>) {
        loop {
            if self.stopping.load(Ordering::Relaxed) {
                return;
            }
            let next = self.next_deadline(&self.state.lock().expect("core state"));
            let at = next.map_or(u64::MAX, |t| self.nanos(t));
            self.timer_at.store(at, Ordering::SeqCst);
            // Re-check after publishing, so a deadline added in between is not missed.
            let next2 = self.next_deadline(&self.state.lock().expect("core state"));
            if next2 != next {
                continue;
            }
            match next {
                Some(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t.into()) => {}
                        _ = self.timer_wake.notified() => continue,
                    }
                }
                None => self.timer_wake.notified().await,
            }
            let out = {
                let mut st = self.state.lock().expect("core state");
                let now = Instant::now();
                st.txn.handle_timeout(now);
                for key in st.proxy.due(now) {
                    let actions = match st.proxy.ctxs.get_mut(&key) {
                        Some(c) => c.proxy.handle_timeout(now),
                        None => continue,
                    };
                    self.run_actions(&mut st, &key, actions, now);
                }
                self.settle(&mut st, now)
            };
            self.flush(out);
            if let Some(push) = &self.registrar.push {
                push.engine.lock().expect("push engine").handle_timeout(Instant::now());
                self.drain_push();
            }
        }
    }

    fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos().min(u128::from(u64::MAX - 1)) as u64
    }

    /// Wakes the timer task if the layer's next deadline is earlier than the one it sleeps on.
    fn maybe_wake_timers(&self, next: Option<Instant>) {
        if let Some(t) = next
            && self.nanos(t) < self.timer_at.load(Ordering::SeqCst)
        {
            self.timer_wake.notify_one();
        }
    }

    fn flush(&self, out: Output) {
        for (target, data) in out.transmits {
            self.send(&target, data);
        }
    }

    fn send(&self, target: &Target, data: Bytes) {
        tracing::trace!(remote = %target.remote, transport = %target.transport, len = data.len(), "send");
        if let Err(e) = self.transports.send(target, data) {
            self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(remote = %target.remote, error = %e, "send failed");
        }
    }

    /// Answers a request statelessly (malformed requests: 400/505/513).
    fn reply_stateless(&self, src: &Source, headers: &sip_msg::Headers, code: u16, warning: &str) {
        let mut resp = response_from_headers(headers, code, None, Some(&new_tag()));
        resp.headers.push(HeaderName::Server, self.server_header.clone());
        resp.headers.push(HeaderName::Warning, format!("399 sipwake \"{}\"", warning.replace('"', "'")));
        let via = routing::stamp_top_via(&mut resp, src);
        let target = routing::response_target(via.as_ref(), src);
        self.send(&target, resp.to_bytes());
    }

    fn on_parse_failure(&self, src: Source, f: ParseFailure) {
        self.stats.parse_errors.fetch_add(1, Ordering::Relaxed);
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

    fn on_request(&self, src: Source, mut msg: Message) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let method = msg.method().cloned().expect("a request");
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
        let via = routing::stamp_top_via(&mut msg, &src);
        let target = routing::response_target(via.as_ref(), &src);
        // Non-INVITE requests the server answers itself, at once and
        // idempotently, are answered statelessly (RFC 3261 §8.2.7), as
        // Kamailio's and OpenSIPS's sl replies are: a retransmission is
        // answered again with the same response (the To tag is derived from
        // the request), and no transaction is kept for 64*T1 per request.
        // INVITE (whose non-2xx final must be retransmitted until ACKed),
        // ACK (which may match such an INVITE) and CANCEL (which must find
        // its INVITE) go through the transaction layer.
        if self.stopping.load(Ordering::Relaxed) && method != sip_msg::Method::Ack {
            let resp = self.build_response(&msg, &stateless_tag(&msg), 503, None, &[]);
            self.send(&target, resp.to_bytes());
            return;
        }
        match method {
            sip_msg::Method::Register if !has_unsupported_proxy_require(&msg) => {
                let build = |req: &Message, code: u16, reason: Option<&str>, extra: &[(HeaderName, String)]| {
                    self.build_response(req, &stateless_tag(req), code, reason, extra)
                };
                // A woken device's REGISTER releases the requests parked for it,
                // once its 200 OK is out.
                let weak = self.weak.get().cloned();
                let after = move || {
                    if let Some(core) = weak.and_then(|w| w.upgrade()) {
                        core.drain_push();
                    }
                };
                self.registrar.handle(&msg, &src, target, build, after);
            }
            sip_msg::Method::Ack => self.on_ack(src, msg, target),
            sip_msg::Method::Cancel => self.on_cancel(src, msg, target),
            _ => self.on_other_request(src, msg, target),
        }
    }

    fn build_response(
        &self,
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
        resp.headers.push(HeaderName::Server, self.server_header.clone());
        self.stats.count_response(code);
        metrics::response(code);
        resp
    }

    fn on_response(&self, src: Source, msg: Message) {
        let now = Instant::now();
        let peer = to_peer(&Target::from(&src));
        let mut stray = None;
        let out = {
            let mut st = self.state.lock().expect("core state");
            match st.txn.on_response(msg, peer, now) {
                ResponseEvent::Stray { msg, .. } => stray = Some(msg),
                ResponseEvent::Invalid { .. } => {
                    self.stats.stray_responses.fetch_add(1, Ordering::Relaxed);
                }
                ResponseEvent::Response { key, msg, .. } => self.on_branch_response(&mut st, key, msg, now),
                ResponseEvent::Absorbed { .. } => {}
            }
            self.settle(&mut st, now)
        };
        self.flush(out);
        if let Some(m) = stray {
            self.forward_stray_response(m);
        }
    }
}

impl Handler for Core {
    fn on_message(&self, src: Source, msg: Result<Message, ParseFailure>) {
        match msg {
            Err(f) => self.on_parse_failure(src, f),
            Ok(m) if m.is_request() => self.on_request(src, m),
            Ok(m) => self.on_response(src, m),
        }
    }

    fn on_closed(&self, conn: sip_transport::ConnId, _remote: std::net::SocketAddr) {
        self.registrar.conn_closed(conn);
    }
}

/// A bounded label for the method metric (unknown methods share one).
pub(crate) fn method_label(m: &sip_msg::Method) -> &'static str {
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

/// Proxy-Require names extensions a proxy must support (§16.3 step 4); the
/// registrar checks Require itself. A REGISTER with an unsupported
/// Proxy-Require is answered 420 by the local handler.
fn has_unsupported_proxy_require(req: &Message) -> bool {
    req.tokens(&HeaderName::ProxyRequire).next().is_some()
}

/// What the transaction layer produced during one call.
#[derive(Default)]
pub(crate) struct Output {
    transmits: Vec<(Target, Bytes)>,
    events: Vec<TxnEvent>,
}

pub(crate) fn drain(txn: &mut TxnLayer) -> Output {
    let mut out = Output::default();
    while let Some(t) = txn.poll_transmit() {
        out.transmits.push((from_peer(&t.to), t.data));
    }
    while let Some(e) = txn.poll_event() {
        out.events.push(e);
    }
    out
}

fn to_peer(t: &Target) -> Peer {
    let transport = match t.transport {
        Transport::Udp => sip_txn::Transport::Udp,
        Transport::Tcp => sip_txn::Transport::Tcp,
    };
    Peer { transport, addr: t.remote, conn: t.conn }
}

fn from_peer(p: &Peer) -> Target {
    let transport = match p.transport {
        sip_txn::Transport::Udp => Transport::Udp,
        _ => Transport::Tcp,
    };
    Target { transport, remote: p.addr, conn: p.conn }
}

/// A random tag (RFC 3261 §19.3: at least 32 bits of randomness).
fn new_tag() -> String {
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

/// The To tag of a stateless response: derived from what identifies the
/// request (Call-ID, From tag, top Via branch), so a retransmission gets
/// the same tag.
fn stateless_tag(req: &Message) -> String {
    use std::hash::BuildHasher;
    let id = (
        req.call_id(),
        req.from().ok().and_then(|f| f.tag().cloned()),
        req.top_via().ok().and_then(|v| v.branch().cloned()),
    );
    format!("{:016x}", seed().hash_one(id))
}

fn seed() -> &'static std::collections::hash_map::RandomState {
    static SEED: std::sync::OnceLock<std::collections::hash_map::RandomState> = std::sync::OnceLock::new();
    SEED.get_or_init(Default::default)
}

/// The To tag of our responses on a transaction: derived from its branch so
/// every response of the transaction carries the same one.
fn tag_for(key: &ServerKey) -> String {
    use std::hash::BuildHasher;
    format!("{:016x}", seed().hash_one(key))
}
