//! The proxy's data (RFC 3261 §16): one `sip_proxy::ProxyContext` per
//! proxied request with its branches and targets, the table that indexes
//! them, Record-Route values, and the rewriting of forwarded messages.
//!
//! It owns the proxy table (contexts by server transaction, branches by
//! client transaction) and the per-request policy (caller authentication,
//! relaying, Record-Route, flow tokens). Forking and response choice are
//! `sip-proxy`'s; matching and retransmissions are `sip-txn`'s.

pub mod branch;
pub mod flow_token;
pub mod route;

use crate::proxy::branch::BranchTarget;
use crate::proxy::flow_token::{FlowRef, FlowTokens};
use crate::proxy::route::Me;
use sip_msg::{HeaderName, Message, Method};
use sip_msg::{Source, Target};
use sip_proxy::{Action, ProxyContext};
use sip_txn::{ClientKey, ServerKey};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Proxy settings (`[proxy]` in the config).
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub record_route: bool,
    /// Challenge (407) initial requests whose From is in a served domain.
    pub authenticate_local_callers: bool,
    /// Let unauthenticated requests from other domains reach local AoRs.
    pub allow_unauthenticated_inbound: bool,
    /// Forward initial requests of authenticated local users to other domains.
    pub relay_for_local_users: bool,
    pub timer_c: std::time::Duration,
    /// Requests to other domains without a Route of their own go here
    /// (resolved like any next hop) instead of to their Request-URI's host.
    pub outbound_proxy: Option<sip_msg::SipUri>,
}

/// One proxied request.
pub struct Ctx {
    pub proxy: ProxyContext,
    /// The request as received, after Route processing: the base of every branch.
    pub request: Message,
    /// Branch targets by target id.
    pub targets: Map<String, BranchTarget>,
    /// Client transaction of each started branch.
    pub branches: Map<u32, ClientKey>,
    /// Where the request came from (for flow tokens).
    pub source: Source,
    pub record_route: bool,
    pub loop_hash: String,
    /// Whether the final status was counted in the metrics.
    pub counted: bool,
    /// When the request arrived (latency histogram).
    pub started: Instant,
    /// The push engine's name for this request, when devices were pushed (RFC 8599).
    pub push_request: Option<sip_push::RequestId>,
    /// The AoR looked up (to find woken bindings again).
    pub aor: Option<sip_registrar::Aor>,
    /// Push bindings also tried at once over their live flow (RFC 8599: a
    /// live connection is no proof that the app is awake).
    pub live_push: std::collections::HashSet<String>,
    /// Branches that got a response (the device there is awake).
    pub answered: std::collections::HashSet<u32>,
    /// INVITE wake-up pushes whose device has not got the call yet: they
    /// get a cancel or missed-call push if the call ends first.
    pub call_pushes: Vec<crate::io::PushJob>,
    /// The caller sent CANCEL.
    pub cancelled: bool,
    /// The final status sent upstream (0: none yet).
    pub final_code: u16,
    /// Mid-registrar: the AoR of a request a device sent to the upstream
    /// registrar's domain (a 404 there may mean the upstream lost it).
    pub upstream_aor: Option<sip_registrar::Aor>,
    /// Branches whose next hop was a host name: the prepared request and
    /// the addresses left to try (RFC 3263 failover), or none yet while
    /// the name is being resolved.
    pub attempts: Map<u32, Attempt>,
}

/// A branch to a host name's addresses.
pub struct Attempt {
    /// The branch request without our Via and Record-Route.
    pub prepared: Message,
    /// Addresses not tried yet, in order.
    pub rest: std::collections::VecDeque<Target>,
}

/// Contexts and their indexes; lives under the core's state lock.
#[derive(Default)]
pub struct Table {
    pub ctxs: Map<ServerKey, Ctx>,
    pub by_client: Map<ClientKey, (ServerKey, u32)>,
    /// Timer C deadlines: (when, entry) with the context of each entry aside
    /// (server keys are not ordered).
    pub timers: BinaryHeap<Reverse<(Instant, u64)>>,
    pub timer_keys: Map<u64, ServerKey>,
    pub seq: u64,
    /// Contexts by push-engine request id.
    pub by_push: Map<u64, ServerKey>,
    /// The caller (`From`) of each parked request, by Call-ID (for the push payload).
    pub callers: Map<bytes::Bytes, crate::io::Caller>,
    pub next_push_request: u64,
}

impl Table {
    /// Re-arms the context's Timer C in the shared schedule.
    pub fn schedule(&mut self, key: &ServerKey) {
        if let Some(t) = self.ctxs.get(key).and_then(|c| c.proxy.poll_timeout()) {
            self.seq += 1;
            self.timers.push(Reverse((t, self.seq)));
            self.timer_keys.insert(self.seq, key.clone());
        }
    }
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }
    /// Contexts whose timer is due.
    pub fn due(&mut self, now: Instant) -> Vec<ServerKey> {
        let mut out = Vec::new();
        while let Some(Reverse((t, _))) = self.timers.peek() {
            if *t > now {
                break;
            }
            let Reverse((_, seq)) = self.timers.pop().expect("peeked");
            if let Some(k) = self.timer_keys.remove(&seq)
                && !out.contains(&k)
            {
                out.push(k);
            }
        }
        out
    }
}

/// Flow-token Record-Route values for a dialog between `src` and `dest`:
/// one, or two when the transport or address family changes (RFC 5658).
pub fn record_route_values(me: &Me, tokens: &FlowTokens, src: &Source, dest: &Target) -> Vec<String> {
    let in_flow = FlowRef { transport: src.transport, remote: src.remote, conn: src.conn };
    let out_flow = FlowRef { transport: dest.transport, remote: dest.remote, conn: dest.conn };
    let user = tokens.encode(&in_flow, &out_flow);
    let uri = |t: sip_msg::Transport, addr: std::net::SocketAddr| {
        let tp = if t == sip_msg::Transport::Udp { String::new() } else { format!(";transport={t}") };
        format!("<sip:{user}@{addr}{tp};lr>")
    };
    let in_addr = me.listener(src.transport, src.remote.is_ipv6()).unwrap_or(src.local);
    let out_addr = me.listener(dest.transport, dest.remote.is_ipv6()).unwrap_or(in_addr);
    if in_addr == out_addr && src.transport == dest.transport {
        vec![uri(src.transport, in_addr)]
    } else {
        // Top: the side facing the callee; second: the side facing the caller.
        vec![uri(dest.transport, out_addr), uri(src.transport, in_addr)]
    }
}

/// Whether a method creates a dialog we should stay in (Record-Route).
pub fn creates_dialog(m: &Method) -> bool {
    matches!(m, Method::Invite | Method::Subscribe | Method::Refer | Method::Notify)
}

/// Actions of a context, to run by the core (which owns the transaction layer).
pub type Actions = Vec<Action>;

/// Pops our top Via from a branch response (it must be ours: the branch was sent by us).
pub fn pop_top_via(resp: &mut Message) {
    if let Some(i) = resp.headers.0.iter().position(|h| h.name == HeaderName::Via) {
        resp.headers.0.remove(i);
    }
}

/// Removes `pn-provider`, `pn-prid` and `pn-param` from the Contact URIs of a
/// message we forward (RFC 8599 R65: a device that puts its registered
/// Contact in its dialogs must not leak its push token to the other party).
/// `pn-purr` stays: the peer's mid-dialog requests need it (§6).
pub fn strip_contact_push_params(m: &mut Message) {
    for h in m.headers.0.iter_mut().filter(|h| h.name == HeaderName::Contact) {
        let Ok(mut na) = sip_msg::NameAddr::parse(&h.value) else { continue };
        let Some(u) = na.uri.as_sip_mut() else { continue };
        let before = u.params.0.len();
        u.params.0.retain(|(n, _)| {
            !(n.eq_ignore_ascii_case(b"pn-provider")
                || n.eq_ignore_ascii_case(b"pn-prid")
                || n.eq_ignore_ascii_case(b"pn-param"))
        });
        if u.params.0.len() != before {
            h.value = na.to_bytes();
        }
    }
}
