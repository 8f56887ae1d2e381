//! The cluster role of a node: several sipwake nodes serving one domain
//! from one shared store (PostgreSQL), each with the whole location service
//! in memory.
//!
//! What it owns, and nothing more:
//! - **Who holds each binding's flow** (`owners`): the node that committed
//!   its last REGISTER. A request for a binding another live node holds is
//!   sent through that node, with a flow-token Route (the same tokens as our
//!   Record-Route, with a key shared by the cluster), so NAT pinholes and
//!   TCP/TLS/WS connections keep working.
//! - **Replicated changes**: rows other nodes committed, fed back by the
//!   driver's change feed, applied to the registrar's location and to the
//!   push engine (a fresh REGISTER forks what is parked for the device here:
//!   cross-node wake-up, exactly once, since a request is parked on one
//!   node only).
//! - **Lookup barriers**: an initial request waits until the feed has
//!   delivered every change committed before it arrived ([`ClusterJob::Sync`];
//!   PostgreSQL delivers notifications in commit order). If the barrier does
//!   not come back in time (database down), the request goes on with what the
//!   cache knows.
//! - **Refresh pushes, once per due time**: every node's engine schedules
//!   them; the owner claims and sends, the others wait `takeover_grace` and
//!   send only if the owner is no longer a live member and their claim wins
//!   ([`ClusterJob::Claim`]: one winner per binding, registration and attempt).
//!
//! It must not touch storage or sockets (the driver does, through
//! [`Node::poll_cluster`] and the `handle_*` inputs), nor decide routing or
//! push policy beyond the above: `decide`, `pn` and the push engine do.

use crate::node::Node;
use crate::proxy::branch::BranchTarget;
use crate::proxy::flow_token::FlowRef;
use sip_msg::{Message, Source, Target, Transport};
use sip_registrar::Binding;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How a node takes part in a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// This node's id (as stored with the bindings it commits).
    pub node_id: String,
    /// The UDP address other nodes send requests for this node's devices
    /// to, and the one this node sends such requests from.
    pub advertise: SocketAddr,
    /// How long after a refresh push is due other nodes wait before
    /// sending it for an owner that is no longer a live member.
    pub takeover_grace: Duration,
    /// How long an initial request waits for its lookup barrier before it
    /// is routed with what the cache knows.
    pub sync_timeout: Duration,
    /// Whether initial requests wait for lookup barriers at all (off: routed
    /// from the cache at once, which the feed keeps about a millisecond behind).
    pub lookup_barrier: bool,
}

/// Work for the driver's cluster side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterJob {
    /// Send a barrier token through the change feed; answer with
    /// [`Node::handle_synced`] when it comes back.
    Sync(u64),
    /// Claim the refresh push of `binding` for its registration
    /// `generation` (its expiry, unix ms) and `attempt`; answer with
    /// [`Node::handle_claim`] (`true`: this node won and sends it).
    Claim { id: sip_push::PushId, binding: String, generation: u64, attempt: u32 },
}

/// A binding as another node committed it.
#[derive(Clone, Debug)]
pub struct Replicated {
    pub binding: Binding,
    /// Its push state (PURRs, `+sip.pnsreg`), as stored.
    pub push_state: Option<String>,
    /// The node that holds its flow.
    pub owner: Option<String>,
}

/// Counters of the cluster role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterStats {
    pub replicated_upserts: u64,
    pub replicated_removals: u64,
    pub syncs: u64,
    pub sync_timeouts: u64,
    pub claims_won: u64,
    pub claims_lost: u64,
    pub refreshes_left_to_owner: u64,
}

type Held = (Source, Message, Target);

/// The cluster state of a node.
pub(crate) struct Cluster {
    pub cfg: ClusterConfig,
    /// Binding id → the node holding its flow (absent: unknown, treated as
    /// ours) and the binding's AoR (a removal names the id only).
    owners: HashMap<String, (String, sip_registrar::Aor)>,
    /// Live members: id → SIP address (this node included).
    members: HashMap<String, SocketAddr>,
    jobs: VecDeque<ClusterJob>,
    next_token: u64,
    /// The barrier in flight: token, deadline, the requests it releases.
    inflight: Option<(u64, Instant, Vec<Held>)>,
    /// Requests that arrived after the barrier in flight was sent: they need the next one.
    queued: Vec<Held>,
    /// Refresh pushes of bindings another node holds, looked at again at
    /// the instant given, with the registration (expiry, unix ms) they were for.
    deferred: VecDeque<(Instant, sip_push::PushRequest, u64)>,
    /// Refresh pushes waiting for their claim.
    claims: HashMap<sip_push::PushId, sip_push::PushRequest>,
    /// Set while held requests are dispatched again (they passed their barrier).
    pub bypass: bool,
    pub stats: ClusterStats,
}

/// Requests held for barriers at most (beyond: routed from the cache at once).
const MAX_HELD: usize = 10_000;

impl Cluster {
    pub fn new(cfg: ClusterConfig) -> Cluster {
        let mut members = HashMap::new();
        members.insert(cfg.node_id.clone(), cfg.advertise);
        Cluster {
            cfg,
            owners: HashMap::new(),
            members,
            jobs: VecDeque::new(),
            next_token: 0,
            inflight: None,
            queued: Vec::new(),
            deferred: VecDeque::new(),
            claims: HashMap::new(),
            bypass: false,
            stats: ClusterStats::default(),
        }
    }

    fn is_mine(&self, binding: &str) -> bool {
        self.owners.get(binding).is_none_or(|(o, _)| *o == self.cfg.node_id)
    }

    /// The live member holding `binding`'s flow, when it is not this node.
    fn remote_owner(&self, binding: &str) -> Option<SocketAddr> {
        let (o, _) = self.owners.get(binding)?;
        if *o == self.cfg.node_id {
            return None;
        }
        let m = self.members.get(o).copied();
        if m.is_none() {
            tracing::debug!(binding, owner = %o, "the node holding this binding's flow is not a live member; routing directly");
        }
        m
    }

    fn start_barrier(&mut self, held: Vec<Held>, now: Instant) {
        self.next_token += 1;
        let t = self.next_token;
        self.stats.syncs += 1;
        self.jobs.push_back(ClusterJob::Sync(t));
        self.inflight = Some((t, now + self.cfg.sync_timeout, held));
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let sync = self.inflight.as_ref().map(|(_, d, _)| *d);
        let deferred = self.deferred.front().map(|(t, _, _)| *t);
        [sync, deferred].into_iter().flatten().min()
    }

    fn held_count(&self) -> usize {
        self.queued.len() + self.inflight.as_ref().map_or(0, |(_, _, h)| h.len())
    }
}

impl Node {
    /// The next job of the cluster role (none when it is off).
    pub fn poll_cluster(&mut self) -> Option<ClusterJob> {
        self.cluster.as_mut()?.jobs.pop_front()
    }

    /// The node holding a binding's flow, as this node knows it.
    pub fn owner_of(&self, binding: &str) -> Option<&str> {
        self.cluster.as_ref()?.owners.get(binding).map(|(o, _)| o.as_str())
    }

    /// Counters of the cluster role.
    pub fn cluster_stats(&self) -> Option<ClusterStats> {
        self.cluster.as_ref().map(|c| c.stats)
    }

    /// The live members (id, SIP address), this node included; the driver
    /// calls this after each heartbeat.
    pub fn set_members(&mut self, members: impl IntoIterator<Item = (String, SocketAddr)>) {
        let Some(c) = &mut self.cluster else { return };
        c.members = members.into_iter().collect();
        c.members.insert(c.cfg.node_id.clone(), c.cfg.advertise);
    }

    /// Whether `id` is a live member (this node included).
    pub fn is_member(&self, id: &str) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.members.contains_key(id))
    }

    /// The ids of the live members.
    pub fn members(&self) -> Vec<String> {
        let mut v: Vec<String> = self.cluster.iter().flat_map(|c| c.members.keys().cloned()).collect();
        v.sort();
        v
    }

    /// Who holds the flows of bindings restored at start-up: (binding id,
    /// owner node, AoR).
    pub fn set_owners(&mut self, owners: impl IntoIterator<Item = (String, String, sip_registrar::Aor)>) {
        let Some(c) = &mut self.cluster else { return };
        for (id, owner, aor) in owners {
            c.owners.insert(id, (owner, aor));
        }
    }

    /// This node wrote these changes: it holds their flows.
    pub(crate) fn cluster_wrote(&mut self, ops: &[crate::io::StoreOp]) {
        let Some(c) = &mut self.cluster else { return };
        for op in ops {
            match op {
                crate::io::StoreOp::Upsert { binding, .. } => {
                    c.owners.insert(binding.id.clone(), (c.cfg.node_id.clone(), binding.aor.clone()));
                }
                crate::io::StoreOp::Remove { id } | crate::io::StoreOp::Expire { id, .. } => {
                    c.owners.remove(id);
                }
                _ => {}
            }
        }
    }

    /// Whether an initial request must wait for a lookup barrier; if so it
    /// is held (and `true` returned).
    pub(crate) fn cluster_hold(&mut self, src: &Source, msg: &Message, target: &Target, now: Instant) -> bool {
        let Some(c) = &mut self.cluster else { return false };
        if !c.cfg.lookup_barrier || c.bypass || msg.to().ok().is_some_and(|t| t.tag().is_some()) {
            return false;
        }
        // Only lookups in our domains need the barrier.
        let Some(u) = msg.uri().and_then(|u| u.as_sip()) else { return false };
        if u.user.is_none() {
            return false;
        }
        let domain = sip_registrar::Aor::from_uri(&sip_msg::SipUri::new(u.host.clone(), None)).to_string();
        if !self.me.serves(&domain) || c.held_count() >= MAX_HELD {
            return false;
        }
        let held = (*src, msg.clone(), *target);
        if c.inflight.is_some() {
            c.queued.push(held);
        } else {
            c.start_barrier(vec![held], now);
        }
        true
    }

    /// A lookup barrier came back through the change feed: every change
    /// committed before it was sent has been applied; the requests it held
    /// are routed now.
    pub fn handle_synced(&mut self, token: u64, now: Instant) {
        let Some(c) = &mut self.cluster else { return };
        if c.inflight.as_ref().is_none_or(|(t, _, _)| *t != token) {
            return;
        }
        self.release_barrier(now);
        self.settle(now);
    }

    fn release_barrier(&mut self, now: Instant) {
        let Some(c) = &mut self.cluster else { return };
        let Some((_, _, held)) = c.inflight.take() else { return };
        let queued = std::mem::take(&mut c.queued);
        if !queued.is_empty() {
            c.start_barrier(queued, now);
        }
        for (src, msg, target) in held {
            self.redispatch(src, msg, target, now);
        }
    }

    /// Dispatches a request that already passed its lookup barrier (it
    /// waited for the barrier, or for a credential lookup after it).
    pub(crate) fn redispatch(&mut self, src: Source, msg: Message, target: Target, now: Instant) {
        let before = self.cluster.as_ref().is_some_and(|c| c.bypass);
        if let Some(c) = &mut self.cluster {
            c.bypass = true;
        }
        self.dispatch(src, msg, target, now);
        if let Some(c) = &mut self.cluster {
            c.bypass = before;
        }
    }

    /// Rows other nodes committed (`upserted`: as they are now) and binding
    /// ids they removed. A binding this node is still writing keeps its own
    /// newer state.
    pub fn handle_replicated(&mut self, upserted: Vec<Replicated>, removed: Vec<String>, now: Instant) {
        if self.cluster.is_none() {
            return;
        }
        let now_ms = self.unix_ms(now);
        for r in upserted {
            let id = r.binding.id.clone();
            if self.uncommitted.contains_key(&id) {
                continue;
            }
            let prev = self.registrar.location.binding(&r.binding.aor, &id).cloned();
            if r.binding.expires_at <= now_ms {
                if let Some(p) = prev {
                    self.drop_replicated(&p.aor, &id, now);
                }
                continue;
            }
            // Another AoR under the same id cannot happen (ids are unique); a
            // stale entry under another AoR is dropped anyway.
            let fresh = prev.as_ref().is_none_or(|p| p.call_id != r.binding.call_id || p.cseq != r.binding.cseq);
            if let Some(c) = &mut self.cluster {
                c.stats.replicated_upserts += 1;
                match &r.owner {
                    Some(o) => c.owners.insert(id.clone(), (o.clone(), r.binding.aor.clone())),
                    None => c.owners.remove(&id),
                };
            }
            let mut b = r.binding;
            // A flow held here stays usable when this node owns it.
            if let Some(p) = &prev
                && p.flow.transport == b.flow.transport
                && p.flow.remote == b.flow.remote
            {
                b.flow.conn = p.flow.conn;
            }
            self.registrar.location.upsert(b.clone());
            if let Some(pn) = &mut self.pn {
                pn.replicated(&b, r.push_state.as_deref(), fresh, now, now_ms);
            }
        }
        for id in removed {
            if self.uncommitted.contains_key(&id) {
                continue;
            }
            let aor = self.cluster.as_ref().and_then(|c| c.owners.get(&id)).map(|(_, a)| a.clone());
            if let Some(aor) = aor {
                self.drop_replicated(&aor, &id, now);
            }
        }
        crate::metrics::bindings(self.registrar.location.len());
        self.settle(now);
    }

    fn drop_replicated(&mut self, aor: &sip_registrar::Aor, id: &str, now: Instant) {
        let now_ms = self.unix_ms(now);
        let changes: Vec<_> = self.registrar.remove_binding(aor, id, now_ms).into_iter().collect();
        self.pn_removed(&changes, now);
        if let Some(c) = &mut self.cluster {
            c.stats.replicated_removals += 1;
            c.owners.remove(id);
        }
    }

    /// The change feed was interrupted and is back: `all` is every binding
    /// now. Bindings the cache has and the store no longer has go (unless
    /// this node is still writing them); the rest is applied as replicated.
    pub fn handle_resync(&mut self, all: Vec<Replicated>, now: Instant) {
        if self.cluster.is_none() {
            return;
        }
        let keep: std::collections::HashSet<&str> = all.iter().map(|r| r.binding.id.as_str()).collect();
        let gone: Vec<String> = self
            .registrar
            .location
            .aors()
            .flat_map(|(_, bs)| bs.iter().map(|b| b.id.clone()))
            .filter(|id| !keep.contains(id.as_str()))
            .collect();
        self.handle_replicated(all, gone, now);
    }

    /// How a branch reaches a binding another live node holds: through
    /// that node, with a flow-token Route naming the device's flow there.
    pub(crate) fn cluster_route(&self, b: &Binding) -> Option<BranchTarget> {
        let c = self.cluster.as_ref()?;
        let via = c.remote_owner(&b.id)?;
        let from_us = FlowRef { transport: Transport::Udp, remote: c.cfg.advertise, conn: None };
        let device = FlowRef { transport: b.flow.transport, remote: b.flow.remote, conn: None };
        let user = self.tokens.encode(&from_us, &device);
        let mut path = vec![format!("<sip:{user}@{via};lr>")];
        path.extend(b.path.iter().cloned());
        Some(BranchTarget {
            uri: b.uri.parse(),
            path,
            flow: Some(Target { transport: Transport::Udp, remote: via, conn: None }),
            hop: None,
        })
    }

    /// A refresh push the engine wants to send: in a cluster, the owner
    /// claims it now; the others look again after the takeover grace.
    /// Returns the request when the node sends it as usual (no cluster).
    pub(crate) fn cluster_refresh(
        &mut self,
        request: sip_push::PushRequest,
        now: Instant,
    ) -> Option<sip_push::PushRequest> {
        if self.cluster.is_none() {
            return Some(request);
        }
        let generation = self.generation_of(request.binding.as_str());
        let Some(c) = &mut self.cluster else { return Some(request) };
        if c.is_mine(request.binding.as_str()) {
            self.claim(request, generation);
        } else {
            let at = now + c.cfg.takeover_grace;
            c.deferred.push_back((at, request, generation));
        }
        None
    }

    /// The registration a binding is at: its expiry (unix ms), the same on every node.
    fn generation_of(&self, binding: &str) -> u64 {
        self.pn
            .as_ref()
            .and_then(|p| p.aor_of(binding))
            .and_then(|a| self.registrar.location.binding(&a, binding))
            .map_or(0, |b| b.expires_at)
    }

    fn claim(&mut self, request: sip_push::PushRequest, generation: u64) {
        let Some(c) = &mut self.cluster else { return };
        c.jobs.push_back(ClusterJob::Claim {
            id: request.id,
            binding: request.binding.as_str().to_string(),
            generation,
            attempt: request.attempt,
        });
        c.claims.insert(request.id, request);
    }

    /// The outcome of a refresh claim: won, the push goes; lost (another
    /// node sent it), the engine is told it went. When the store cannot be
    /// asked, the owner sends it and the others do not.
    pub fn handle_claim(&mut self, id: sip_push::PushId, won: Result<bool, String>, now: Instant) {
        let Some(c) = &mut self.cluster else { return };
        let Some(request) = c.claims.remove(&id) else { return };
        let send = match won {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(binding = %request.binding, error = %e, "cannot claim a refresh push; the owner sends it");
                c.is_mine(request.binding.as_str())
            }
        };
        if send {
            c.stats.claims_won += 1;
            let job = self.push_job(request);
            self.send_push_job(job, false, now);
        } else {
            c.stats.claims_lost += 1;
            if let Some(p) = &mut self.pn {
                p.engine.handle_push_result(id, Ok(()), now);
            }
        }
        self.settle(now);
    }

    /// Deferred refresh pushes and barriers whose time has come.
    pub(crate) fn cluster_timeout(&mut self, now: Instant) {
        let Some(c) = &mut self.cluster else { return };
        if c.inflight.as_ref().is_some_and(|(_, d, _)| *d <= now) {
            c.stats.sync_timeouts += 1;
            tracing::warn!("cluster lookup barrier timed out (database or change feed down?); routing from the cache");
            self.release_barrier(now);
        }
        loop {
            let Some(c) = &mut self.cluster else { return };
            if c.deferred.front().is_none_or(|(t, _, _)| *t > now) {
                break;
            }
            let Some((_, request, generation)) = c.deferred.pop_front() else { break };
            let owner_alive = c.owners.get(request.binding.as_str()).is_some_and(|(o, _)| c.members.contains_key(o));
            let mine = c.is_mine(request.binding.as_str());
            // Re-registered meanwhile: nothing to refresh any more.
            let refreshed = self.generation_of(request.binding.as_str()) != generation;
            if refreshed || (owner_alive && !mine) {
                // (Or the owner is alive: it sent, or will retry, this one.)
                if let Some(c) = &mut self.cluster {
                    c.stats.refreshes_left_to_owner += 1;
                }
                if let Some(p) = &mut self.pn {
                    p.engine.handle_push_result(request.id, Ok(()), now);
                }
            } else {
                self.claim(request, generation);
            }
        }
    }
}
