//! The start-up loading gate: the node serves while the stored location is
//! restored into it, and never answers from a half-loaded location as if it
//! were whole.
//!
//! While the gate is up ([`Node::begin_loading`] until
//! [`Node::finish_loading`]):
//! - requests that do not read the location are served at once: OPTIONS and
//!   other requests to the server itself, ACK, in-dialog requests routed by
//!   their Route set, requests for domains this node does not serve;
//! - requests whose answer depends on the location are **held**, in arrival
//!   order: every REGISTER (a REGISTER for an AoR not loaded yet would miss
//!   its stored bindings: duplicate bindings, wrong `max_contacts`, a 200
//!   listing too few contacts, then the loader resurrecting what the
//!   REGISTER replaced), initial requests for a user of a served domain
//!   (a lookup would answer 480/404 for a device that is registered), any
//!   request naming a push device (`pn-*` or a PURR, RFC 8599 §6), and a
//!   CANCEL for a held INVITE. Retransmissions of a held request are
//!   absorbed (same top Via branch and method).
//! - When the load ends, the held requests are dispatched in order, as if
//!   they had just arrived. A request held longer than [`MAX_WAIT`], or one
//!   that finds [`MAX_HELD`] requests already held, is answered 503 with a
//!   `Retry-After` of 1–5 s (spread over the Call-ID), as a stopping node
//!   answers.
//!
//! This module owns the gate and its queue; it does not restore bindings
//! (`registrar::restore` does, chunk by chunk, fed by the driver) and does
//! not route (`dispatch` does, once the gate is down).

use crate::metrics;
use crate::node::{Node, stateless_tag};
use bytes::Bytes;
use sip_msg::{HeaderName, Message, Method, Source, Target};
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Requests held at most while loading; beyond, 503.
pub const MAX_HELD: usize = 50_000;
/// How long a request is held at most; then 503. Longer than loading a
/// million bindings takes on a small machine, and 12 s short of the 32 s
/// after which a UDP client gives up (Timer B/F).
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// A held request: when it came, where from, the request (Via stamped),
/// where its answers go.
struct Held {
    at: Instant,
    src: Source,
    msg: Message,
    target: Target,
}

/// The gate's state while the location loads.
#[derive(Default)]
pub(crate) struct LoadGate {
    held: VecDeque<Held>,
    /// (top Via branch, method) of the held requests: retransmissions and CANCELs match them.
    keys: HashSet<(Bytes, Method)>,
    /// Held requests answered 503 (too long, or beyond the cap).
    rejected: u64,
}

impl LoadGate {
    pub fn next_deadline(&self) -> Option<Instant> {
        self.held.front().map(|h| h.at + MAX_WAIT)
    }
}

/// What the gate did with a request.
#[derive(Debug, PartialEq, Eq)]
enum Gate {
    Pass,
    Hold,
    /// A retransmission of a held request.
    Absorb,
}

impl Node {
    /// Raises the gate: from now until [`Node::finish_loading`], requests
    /// that depend on the location wait for it (see the module doc).
    pub fn begin_loading(&mut self) {
        self.loading = Some(Box::default());
        metrics::loading(true);
    }

    /// Whether the location is still being loaded.
    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    /// Requests held by the gate right now.
    pub fn held_while_loading(&self) -> usize {
        self.loading.as_ref().map_or(0, |g| g.held.len())
    }

    /// The location is whole: the gate goes down and the held requests are
    /// dispatched in arrival order.
    pub fn finish_loading(&mut self, now: Instant) {
        let Some(gate) = self.loading.take() else { return };
        metrics::loading(false);
        let n = gate.held.len();
        for h in gate.held {
            self.dispatch(h.src, h.msg, h.target, now);
        }
        metrics::held_while_loading("released", n as u64);
        tracing::info!(released = n, rejected = gate.rejected, "location loaded; requests held meanwhile dispatched");
        self.settle(now);
    }

    /// Holds `msg` if its answer depends on the location (and the gate is
    /// up); `true` if the gate took it (held, absorbed or answered 503).
    pub(crate) fn loading_hold(&mut self, src: &Source, msg: &Message, target: &Target, now: Instant) -> bool {
        let Some(gate) = &self.loading else { return false };
        let verdict = self.gate_verdict(gate, msg);
        let Some(gate) = &mut self.loading else { return false };
        match verdict {
            Gate::Pass => false,
            Gate::Absorb => true,
            Gate::Hold if gate.held.len() >= MAX_HELD => {
                gate.rejected += 1;
                self.reject_loading(msg, *target);
                true
            }
            Gate::Hold => {
                if let Some(k) = hold_key(msg) {
                    gate.keys.insert(k);
                }
                gate.held.push_back(Held { at: now, src: *src, msg: msg.clone(), target: *target });
                true
            }
        }
    }

    /// Requests held longer than [`MAX_WAIT`] get their 503.
    pub(crate) fn loading_timeout(&mut self, now: Instant) {
        let mut late = Vec::new();
        if let Some(gate) = &mut self.loading {
            while gate.held.front().is_some_and(|h| h.at + MAX_WAIT <= now) {
                if let Some(h) = gate.held.pop_front() {
                    if let Some(k) = hold_key(&h.msg) {
                        gate.keys.remove(&k);
                    }
                    gate.rejected += 1;
                    late.push(h);
                }
            }
        }
        if !late.is_empty() {
            tracing::warn!(count = late.len(), "requests held for longer than the location load allows: answered 503");
        }
        for h in late {
            self.reject_loading(&h.msg, h.target);
        }
    }

    fn reject_loading(&mut self, msg: &Message, target: Target) {
        metrics::held_while_loading("rejected", 1);
        if msg.method() == Some(&Method::Ack) {
            return;
        }
        let retry =
            1 + msg.call_id().map_or(0, |c| c.iter().fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(*b as u32))) % 5;
        let resp = self.build_response(
            msg,
            &stateless_tag(msg),
            503,
            Some("Loading Location"),
            &[(HeaderName::RetryAfter, retry.to_string())],
        );
        self.send(target, resp.to_bytes());
    }

    /// Whether a request needs the location (see the module doc).
    fn gate_verdict(&self, gate: &LoadGate, msg: &Message) -> Gate {
        let Some(method) = msg.method() else { return Gate::Pass };
        if let Some(k) = hold_key(msg)
            && gate.keys.contains(&k)
        {
            return Gate::Absorb;
        }
        match method {
            Method::Register => return Gate::Hold,
            Method::Ack => return Gate::Pass,
            Method::Cancel => {
                // A CANCEL follows its INVITE: held when the INVITE is.
                let invite = msg.top_via().ok().and_then(|v| v.branch().cloned()).map(|b| (b, Method::Invite));
                return if invite.is_some_and(|k| gate.keys.contains(&k)) { Gate::Hold } else { Gate::Pass };
            }
            _ => {}
        }
        let Some(uri) = msg.uri().and_then(|u| u.as_sip()) else { return Gate::Pass };
        // A push device named in the Request-URI, or a PURR (RFC 8599 §6).
        let names_device = uri.params.0.iter().any(|(k, _)| k.len() > 3 && k[..3].eq_ignore_ascii_case(b"pn-"));
        if self.pn.is_some()
            && (names_device
                || crate::pn::purr_in_top_route(msg).is_some()
                || msg.headers.contains(&HeaderName::Replaces))
        {
            return Gate::Hold;
        }
        let in_dialog = msg.to().ok().is_some_and(|t| t.tag().is_some());
        if in_dialog || uri.user.is_none() {
            return Gate::Pass;
        }
        // An initial request for a user: a lookup when we serve its domain
        // (a mid-registrar's devices are reached through this node too).
        let domain = sip_registrar::Aor::from_uri(&sip_msg::SipUri::new(uri.host.clone(), None)).to_string();
        if self.me.serves(&domain) || self.mid.is_some() { Gate::Hold } else { Gate::Pass }
    }
}

/// (top Via branch, method) of a request: what its retransmissions share.
fn hold_key(msg: &Message) -> Option<(Bytes, Method)> {
    let branch = msg.top_via().ok()?.branch()?.clone();
    Some((branch, msg.method()?.clone()))
}
