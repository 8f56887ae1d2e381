//! RFC 3263 next hops by name, seen from the sans-IO node: the questions it
//! asks its driver ([`ResolveJob`], polled with [`Node::poll_resolve`]),
//! the answers it keeps until their TTL, and what waits for an answer (a
//! proxy branch, a stateless ACK).
//!
//! The node never resolves anything itself: the driver runs the RFC 3263
//! procedure (NAPTR → SRV → A/AAAA, crate `sip-dns`) off the receive path
//! and feeds the ordered targets back with [`Node::handle_resolved`]. One
//! question is asked once however many requests wait for it. A name in the
//! `.invalid` TLD (RFC 6761; e.g. the Contact host of WebSocket clients,
//! RFC 7118 §5.2) is never asked: it does not exist. Failover between the
//! targets of an answer (timeout, 503, transport error) is `proxying`'s.

use crate::node::Node;
use crate::proxy::route::NameQuery;
use sip_msg::{Message, Target};
use sip_txn::ServerKey;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Names one question; its answer comes back through [`Node::handle_resolved`].
pub type ResolveId = u64;

/// A host name for the driver to resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveJob {
    pub id: ResolveId,
    pub query: NameQuery,
}

/// Why a name gave no target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// The name does not exist or has no usable records (cached for the
    /// answer's TTL).
    NotFound,
    /// Timeout, SERVFAIL, refused: temporary, never cached.
    Failed,
}

/// The driver's answer to a [`ResolveJob`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The targets in the order to try them (RFC 3263 §4.4), or why none.
    pub targets: Result<Vec<Target>, ResolveError>,
    /// How long the answer may be reused.
    pub ttl: Duration,
}

/// An answer the driver owes is given up after this (the resolver has its
/// own, shorter timeouts: this only guards against a lost answer).
pub const RESOLVE_DEADLINE: Duration = Duration::from_secs(32);

/// Cached answers beyond this make the cache drop its expired entries.
const CACHE_PRUNE_AT: usize = 4096;

/// What waits for an answer.
pub(crate) enum Waiter {
    /// A branch of a proxied request; its prepared request is in the
    /// context's `attempts`.
    Branch { skey: ServerKey, branch: u32 },
    /// An ACK for a 2xx, forwarded statelessly once the name is resolved:
    /// the request without our Via, and the Via branch to use.
    Ack { msg: Box<Message>, branch: String },
}

struct Pending {
    query: NameQuery,
    waiters: Vec<Waiter>,
    deadline: Instant,
}

/// The node's DNS state.
#[derive(Default)]
pub(crate) struct Dns {
    cache: HashMap<NameQuery, (Result<Vec<Target>, ResolveError>, Instant)>,
    asked: HashMap<NameQuery, ResolveId>,
    pending: HashMap<ResolveId, Pending>,
    jobs: VecDeque<ResolveJob>,
    next: ResolveId,
}

impl Dns {
    /// A cached answer still valid at `now`.
    pub(crate) fn cached(&self, q: &NameQuery, now: Instant) -> Option<Result<Vec<Target>, ResolveError>> {
        if q.host.ends_with(".invalid") || q.host == "invalid" {
            return Some(Err(ResolveError::NotFound));
        }
        let (answer, until) = self.cache.get(q)?;
        (now < *until).then(|| answer.clone())
    }

    /// Waits for `q`'s answer, asking the driver unless it was asked already.
    pub(crate) fn wait(&mut self, q: NameQuery, w: Waiter, now: Instant) {
        if let Some(id) = self.asked.get(&q)
            && let Some(p) = self.pending.get_mut(id)
        {
            p.waiters.push(w);
            return;
        }
        self.next += 1;
        let id = self.next;
        self.asked.insert(q.clone(), id);
        self.jobs.push_back(ResolveJob { id, query: q.clone() });
        self.pending.insert(id, Pending { query: q, waiters: vec![w], deadline: now + RESOLVE_DEADLINE });
    }

    /// Takes the waiters of an answered question and caches the answer.
    fn answered(&mut self, id: ResolveId, r: &Resolution, now: Instant) -> Vec<Waiter> {
        let Some(p) = self.pending.remove(&id) else { return Vec::new() };
        self.asked.remove(&p.query);
        if r.targets != Err(ResolveError::Failed) && !r.ttl.is_zero() {
            if self.cache.len() >= CACHE_PRUNE_AT {
                self.cache.retain(|_, (_, until)| *until > now);
            }
            self.cache.insert(p.query, (r.targets.clone(), now + r.ttl));
        }
        p.waiters
    }

    pub(crate) fn poll_job(&mut self) -> Option<ResolveJob> {
        self.jobs.pop_front()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Questions whose answer is overdue.
    fn overdue(&self, now: Instant) -> Vec<ResolveId> {
        self.pending.iter().filter(|(_, p)| p.deadline <= now).map(|(id, _)| *id).collect()
    }

    /// Questions asked and not answered.
    pub(crate) fn pending_count(&self) -> usize {
        self.pending.len()
    }
}

impl Node {
    /// The next host name to resolve (then call [`Node::handle_resolved`]).
    pub fn poll_resolve(&mut self) -> Option<ResolveJob> {
        self.dns.poll_job()
    }

    /// The driver resolved a name: what waited for it goes on (or fails).
    pub fn handle_resolved(&mut self, id: ResolveId, r: Resolution, now: Instant) {
        let waiters = self.dns.answered(id, &r, now);
        for w in waiters {
            self.resume(w, r.targets.clone(), now);
        }
        self.settle(now);
    }

    /// Gives up on answers the driver still owes past their deadline.
    pub(crate) fn dns_timeouts(&mut self, now: Instant) {
        for id in self.dns.overdue(now) {
            tracing::warn!("no DNS answer in time; failing what waits for it");
            let r = Resolution { targets: Err(ResolveError::Failed), ttl: Duration::ZERO };
            for w in self.dns.answered(id, &r, now) {
                self.resume(w, r.targets.clone(), now);
            }
        }
    }

    /// Host-name questions asked and not yet answered.
    pub fn resolving(&self) -> usize {
        self.dns.pending_count()
    }

    fn resume(&mut self, w: Waiter, targets: Result<Vec<Target>, ResolveError>, now: Instant) {
        match w {
            Waiter::Branch { skey, branch } => self.branch_resolved(&skey, branch, targets, now),
            Waiter::Ack { msg, branch } => {
                if let Ok(list) = targets {
                    self.send_ack(*msg, &branch, &list);
                }
            }
        }
    }
}
