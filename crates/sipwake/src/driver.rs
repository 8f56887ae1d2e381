//! The driver of the sans-IO [`sip_node::Node`]: the only place where the
//! node meets sockets, the store, push senders and clocks.
//!
//! The node sits behind one mutex, held only while an input is fed and its
//! outputs are drained; the I/O they ask for runs after the lock is
//! released. Push deliveries and credential lookups finish on other threads
//! and come back as completions through one channel, handled by a tokio
//! task; a store commit is fed back right after the commit, when the store
//! holds no lock, on the thread that committed: the store's writer thread,
//! or the UDP receive thread itself. A receive thread defers its writes to
//! the end of its batch of datagrams (`on_batch_end`): a lightly loaded
//! server commits them there in one group, so it answers a REGISTER, and
//! forks what it released, with no hand-off to another thread; under load
//! the writer thread commits them while the receive thread goes on. No lock
//! is ever held across two layers.

use crate::{metrics, store_map};
use bytes::Bytes;
use location_store::Store;
use sip_msg::{ConnId, Message, ParseFailure, Source};
use sip_node::{Lookup, Node, Secrets, WriteId};
use sip_transport::{Handler, Transports};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, oneshot};

thread_local! {
    /// This thread hands over a batch of datagrams and commits the writes it
    /// asked for at the end (`Handler::on_batch_end`): `NO_BATCH`, `BATCH`,
    /// or `BATCH_WROTE` once a write was deferred.
    static IN_BATCH: std::cell::Cell<u8> = const { std::cell::Cell::new(NO_BATCH) };
}
const NO_BATCH: u8 = 0;
const BATCH: u8 = 1;
const BATCH_WROTE: u8 = 2;

/// Work finished off the node, fed back to it.
enum Completion {
    Push(sip_push::PushId, Result<(), sip_push::PushError>),
    Credentials(Lookup, Option<Secrets>),
    Resolved(sip_node::ResolveId, sip_node::Resolution),
    /// A refresh-push claim (cluster): won, lost, or the store could not say.
    Claim(sip_push::PushId, Result<bool, String>),
}

/// What one input asked for.
#[derive(Default)]
struct Work {
    transmits: Vec<sip_node::Transmit>,
    writes: Vec<sip_node::StoreWrite>,
    pushes: Vec<sip_node::PushJob>,
    lookups: Vec<Lookup>,
    resolves: Vec<sip_node::ResolveJob>,
    cluster: Vec<sip_node::ClusterJob>,
    next: Option<Instant>,
}

pub struct Driver {
    node: Mutex<Node>,
    /// The node's counters (atomics), counted without its lock.
    stats: Arc<sip_node::Stats>,
    transports: Transports,
    pub(crate) store: Arc<dyn Store>,
    /// Swapped whole by a reload (pushes in flight keep their clone).
    senders: std::sync::RwLock<Option<push_senders::Senders>>,
    /// RFC 3263 resolution of next hops given by name (`None`: none configured).
    resolver: Option<sip_dns::Resolver>,
    /// How long "no such name" is remembered by the node.
    negative_ttl: Duration,
    pub(crate) rt: tokio::runtime::Handle,
    done: mpsc::UnboundedSender<Completion>,
    /// Management calls waiting for a store write.
    waiters: Mutex<HashMap<WriteId, oneshot::Sender<Result<(), String>>>>,
    /// Wakes the timer task when a deadline earlier than the one it sleeps on appears.
    timer_wake: Notify,
    /// The deadline the timer task sleeps until, in ns since `epoch` (u64::MAX = none).
    timer_at: AtomicU64,
    epoch: Instant,
    pub(crate) stopping: AtomicBool,
    pub(crate) me: std::sync::OnceLock<Weak<Driver>>,
    /// How this node takes part in a cluster (set once the cluster starts).
    pub(crate) membership: std::sync::OnceLock<crate::cluster::Membership>,
    /// `true` once the stored location is loaded (management views wait for it).
    pub(crate) loaded: tokio::sync::watch::Sender<bool>,
    /// The cluster job thread's queue (started on the first job).
    pub(crate) cluster_jobs: std::sync::OnceLock<std::sync::mpsc::Sender<sip_node::ClusterJob>>,
}

impl Driver {
    /// Starts the driver's tasks (completions, timers, subscriber reloads).
    pub fn start(
        node: Node,
        transports: Transports,
        store: Arc<dyn Store>,
        senders: Option<push_senders::Senders>,
        resolver: Option<sip_dns::Resolver>,
        negative_ttl: Duration,
    ) -> Arc<Driver> {
        let (tx, rx) = mpsc::unbounded_channel();
        let d = Arc::new(Driver {
            stats: node.shared_stats(),
            node: Mutex::new(node),
            transports,
            store,
            senders: std::sync::RwLock::new(senders),
            resolver,
            negative_ttl,
            rt: tokio::runtime::Handle::current(),
            done: tx,
            waiters: Mutex::new(HashMap::new()),
            timer_wake: Notify::new(),
            timer_at: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            stopping: AtomicBool::new(false),
            me: std::sync::OnceLock::new(),
            membership: std::sync::OnceLock::new(),
            cluster_jobs: std::sync::OnceLock::new(),
            loaded: tokio::sync::watch::Sender::new(false),
        });
        let _ = d.me.set(Arc::downgrade(&d));
        tokio::spawn(d.clone().run_completions(rx));
        tokio::spawn(d.clone().run_timers());
        tokio::spawn(d.clone().run_subscriber_reload());
        d
    }

    /// Feeds the node (under its lock) and carries out what it asked for
    /// (after the lock is released).
    pub fn with_node<R>(&self, f: impl FnOnce(&mut Node, Instant) -> R) -> R {
        self.with_node_then(f, |_| ())
    }

    /// [`Driver::with_node`], with `before` run on the result once the lock
    /// is released and before the I/O is carried out (e.g. to register a
    /// waiter for a store write the call queued).
    fn with_node_then<R>(&self, f: impl FnOnce(&mut Node, Instant) -> R, before: impl FnOnce(&R)) -> R {
        let (r, work) = {
            let mut n = self.node.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let r = f(&mut n, now);
            let mut w = Work::default();
            while let Some(t) = n.poll_transmit() {
                w.transmits.push(t);
            }
            while let Some(s) = n.poll_store() {
                w.writes.push(s);
            }
            while let Some(p) = n.poll_push() {
                w.pushes.push(p);
            }
            while let Some(l) = n.poll_lookup() {
                w.lookups.push(l);
            }
            while let Some(r) = n.poll_resolve() {
                w.resolves.push(r);
            }
            while let Some(j) = n.poll_cluster() {
                w.cluster.push(j);
            }
            w.next = n.poll_timeout();
            (r, w)
        };
        before(&r);
        self.perform(work);
        r
    }

    /// The loader finished: the location is whole.
    pub fn location_loaded(&self) {
        self.loaded.send_replace(true);
    }

    /// Waits (at most `limit`) for the location to be whole; `false` if it
    /// is still loading.
    pub async fn wait_loaded(&self, limit: Duration) -> bool {
        let mut rx = self.loaded.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|l| *l)).await.is_ok_and(|r| r.is_ok())
    }

    /// Reads the node under its lock (management views).
    pub fn read<R>(&self, f: impl FnOnce(&Node) -> R) -> R {
        f(&self.node.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn perform(&self, w: Work) {
        for t in w.transmits {
            self.send(&t.target, t.data);
        }
        let in_batch = !w.writes.is_empty()
            && IN_BATCH.with(|b| {
                let on = b.get() != NO_BATCH;
                if on {
                    b.set(BATCH_WROTE);
                }
                on
            });
        for s in w.writes {
            let me = self.me.get().cloned();
            let id = s.id;
            let changes = s.ops.into_iter().map(store_map::op_to_store).collect();
            // Handled on the store's writer thread, right after the commit (no
            // store lock is held then): the 200 OK and the forks it releases
            // leave without another thread hand-off. Every I/O the node asks
            // for is safe from any thread (the transports and the push and
            // lookup tasks spawn through runtime handles).
            let done: location_store::Done = Box::new(move |res| {
                if let Some(d) = me.and_then(|w| w.upgrade()) {
                    d.store_done(id, res.map_err(|e| e.to_string()));
                }
            });
            if in_batch {
                self.store.submit_deferred(changes, done);
            } else {
                self.store.submit(changes, done);
            }
        }
        for job in w.pushes {
            self.deliver(job);
        }
        for l in w.lookups {
            let store = self.store.clone();
            let tx = self.done.clone();
            self.rt.spawn_blocking(move || {
                let found = match store.get_subscriber(&l.user, &l.domain) {
                    Ok(s) => s.map(|s| Secrets { ha1_md5: s.ha1_md5, ha1_sha256: s.ha1_sha256 }),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot look up a subscriber");
                        None
                    }
                };
                let _ = tx.send(Completion::Credentials(l, found));
            });
        }
        for job in w.resolves {
            let resolver = self.resolver.clone();
            let tx = self.done.clone();
            let negative_ttl = self.negative_ttl;
            let transports = self.transports.clone();
            self.rt.spawn(async move {
                let r = crate::resolve::resolve(resolver.as_ref(), &job.query, negative_ttl).await;
                name_tls_targets(&transports, &job.query.host, &r);
                let _ = tx.send(Completion::Resolved(job.id, r));
            });
        }
        for job in w.cluster {
            self.cluster_job(job);
        }
        if let Some(t) = w.next
            && self.nanos(t) < self.timer_at.load(Ordering::SeqCst)
        {
            self.timer_wake.notify_one();
        }
    }

    /// The push senders now.
    fn senders(&self) -> Option<push_senders::Senders> {
        self.senders.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// New push senders (reload): the next push uses them.
    pub fn set_senders(&self, senders: Option<push_senders::Senders>) {
        *self.senders.write().unwrap_or_else(|e| e.into_inner()) = senders;
    }

    fn send(&self, target: &sip_msg::Target, data: Bytes) {
        tracing::trace!(remote = %target.remote, transport = %target.transport, len = data.len(), "send");
        if let Err(e) = self.transports.send(target, data) {
            self.stats.count(|s| &s.send_errors);
            tracing::debug!(remote = %target.remote, error = %e, "send failed");
        }
    }

    fn deliver(&self, job: sip_node::PushJob) {
        let tx = self.done.clone();
        let Some(senders) = self.senders() else {
            let _ = tx.send(Completion::Push(job.request.id, Err(sip_push::PushError::Failed)));
            return;
        };
        self.rt.spawn(async move {
            let result = send_job(&senders, &job).await;
            let _ = tx.send(Completion::Push(job.request.id, result));
        });
    }

    /// A store write finished: the node answers and forks, then a management
    /// call waiting for the write (if any) is told.
    fn store_done(&self, id: WriteId, res: Result<(), String>) {
        let waiter = self.waiters.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        self.with_node(|n, now| n.handle_store_result(id, res.clone(), now));
        if let Some(w) = waiter {
            let _ = w.send(res);
        }
    }

    async fn run_completions(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Completion>) {
        while let Some(c) = rx.recv().await {
            match c {
                Completion::Push(id, res) => self.with_node(|n, now| n.handle_push_result(id, res, now)),
                Completion::Credentials(l, s) => self.with_node(|n, now| n.handle_credentials(l, s, now)),
                Completion::Resolved(id, r) => self.with_node(|n, now| n.handle_resolved(id, r, now)),
                Completion::Claim(id, won) => self.with_node(|n, now| n.handle_claim(id, won, now)),
            }
        }
    }

    fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos().min(u128::from(u64::MAX - 1)) as u64
    }

    /// Runs the node's timers until shutdown.
    async fn run_timers(self: Arc<Self>) {
        loop {
            if self.stopping.load(Ordering::Relaxed) {
                return;
            }
            let next = self.read(|n| n.poll_timeout());
            self.timer_at.store(next.map_or(u64::MAX, |t| self.nanos(t)), Ordering::SeqCst);
            // Re-check after publishing, so a deadline added in between is not missed.
            if self.read(|n| n.poll_timeout()) != next {
                continue;
            }
            match next {
                Some(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t.into()) => {}
                        _ = self.timer_wake.notified() => continue,
                    }
                }
                None => {
                    self.timer_wake.notified().await;
                    continue;
                }
            }
            self.with_node(|n, now| n.handle_timeout(now));
        }
    }

    /// Follows the subscribers table (the `sipwake user` CLI writes it from
    /// another process): reloaded when SQLite's data version changes.
    async fn run_subscriber_reload(self: Arc<Self>) {
        let mut seen: Option<u64> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if self.stopping.load(Ordering::Relaxed) {
                return;
            }
            let store = self.store.clone();
            let last = seen;
            let loaded = tokio::task::spawn_blocking(move || {
                let v = store.subscribers_version().ok()?;
                if Some(v) == last {
                    return Some((v, None));
                }
                let list = store.subscribers().ok()?;
                Some((v, Some(list)))
            })
            .await
            .ok()
            .flatten();
            if let Some((v, list)) = loaded {
                seen = Some(v);
                if let Some(list) = list {
                    self.with_node(|n, _| n.set_subscribers(crate::store_map::secrets(list)));
                }
            }
        }
    }

    /// Removes a binding or an AoR and waits until the removal is durable.
    pub async fn remove(&self, aor: &sip_registrar::Aor, id: Option<&str>) -> usize {
        let (tx, rx) = oneshot::channel();
        let mut tx = Some(tx);
        // The write is in this call's own work: the waiter is registered
        // before it is submitted, so its completion cannot be missed.
        let (n, write) = self.with_node_then(
            |node, now| node.remove(aor, id, now),
            |(_, w)| {
                if let (Some(w), Some(tx)) = (w, tx.take()) {
                    self.waiters.lock().unwrap_or_else(|e| e.into_inner()).insert(*w, tx);
                }
            },
        );
        if write.is_some() {
            let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
        }
        n
    }

    /// A test push to a binding (management): delivered now, outside the schedule.
    pub async fn test_push(
        &self,
        aor: &sip_registrar::Aor,
        id: &str,
    ) -> Result<Result<(), sip_push::PushError>, &'static str> {
        let job = self.read(|n| {
            let b = n.location().binding(aor, id)?.clone();
            Some(n.push().map(|p| p.test_push(&b, Instant::now())))
        });
        let job = match job {
            None => return Err("no such binding"),
            Some(None) => return Err("push is disabled ([push] enable = false)"),
            Some(Some(None)) => return Err("the binding has no push coordinates"),
            Some(Some(Some(j))) => j,
        };
        let Some(senders) = self.senders() else { return Err("no push sender") };
        let result = send_job(&senders, &job).await;
        if result == Err(sip_push::PushError::Rejected) {
            self.with_node(|n, now| n.handle_dead_token(&job, now));
        }
        Ok(result)
    }

    /// Stops taking new requests and stops the timers.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.with_node(|n, _| n.shutdown());
        self.timer_wake.notify_one();
    }

    /// Follows the mid-registrar's upstream host name: re-resolved when its
    /// answer expires (at least every 30 s, at most every `max`), the node
    /// told when the address changes. A failed lookup keeps the old address.
    pub async fn follow_upstream(self: Arc<Self>, q: sip_node::NameQuery, first_ttl: Duration, max: Duration) {
        let mut wait = first_ttl.clamp(Duration::from_secs(30), max.max(Duration::from_secs(30)));
        loop {
            tokio::time::sleep(wait).await;
            if self.stopping.load(Ordering::Relaxed) {
                return;
            }
            match crate::resolve::upstream(self.resolver.as_ref(), &q).await {
                Ok((t, ttl)) => {
                    if t.transport == sip_msg::Transport::Tls {
                        self.transports.set_server_name(t.remote, &q.host);
                    }
                    self.with_node(|n, _| n.set_mid_upstream(t));
                    wait = ttl.clamp(Duration::from_secs(30), max.max(Duration::from_secs(30)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot re-resolve the upstream registrar; keeping its address");
                    wait = Duration::from_secs(30);
                }
            }
        }
    }

    /// Reports a refresh-push claim's outcome to the node (from any thread).
    pub(crate) fn claimed(&self, id: sip_push::PushId, won: Result<bool, String>) {
        let _ = self.done.send(Completion::Claim(id, won));
    }

    /// Whether a connection is open.
    pub fn conn_alive(&self, c: ConnId) -> bool {
        self.transports.conn_alive(c)
    }
}

impl Handler for Driver {
    fn on_message(&self, src: Source, msg: Result<Message, ParseFailure>) {
        self.with_node(|n, now| n.handle_message(src, msg, now));
    }

    fn on_closed(&self, conn: ConnId, _remote: std::net::SocketAddr) {
        self.with_node(|n, now| n.handle_conn_closed(conn, now));
    }

    fn admit_connection(&self, src: &Source) -> bool {
        self.with_node(|n, now| n.admit_connection(src, now))
    }

    fn on_batch_begin(&self) {
        IN_BATCH.with(|b| b.set(BATCH));
    }

    /// The batch's writes as one group: committed here when the thread is
    /// idle (the 200 OKs and released forks leave from this thread, with no
    /// hand-off), else by the writer thread while this one goes on receiving.
    fn on_batch_end(&self, idle: &dyn Fn() -> bool) {
        if IN_BATCH.with(|b| b.replace(NO_BATCH)) == BATCH_WROTE {
            self.store.commit_deferred(idle());
        }
    }
}

/// RFC 5922 §4: a TLS connection to an address found by resolving a SIP
/// domain must present a certificate for that domain (not for the SRV
/// target's name or the address).
fn name_tls_targets(transports: &Transports, host: &str, r: &sip_node::Resolution) {
    if let Ok(list) = &r.targets {
        for t in list.iter().filter(|t| t.transport == sip_msg::Transport::Tls) {
            transports.set_server_name(t.remote, host);
        }
    }
}

/// Hands one push to its sender with what the node knows about it, and
/// counts the outcome.
async fn send_job(senders: &push_senders::Senders, job: &sip_node::PushJob) -> Result<(), sip_push::PushError> {
    let caller =
        job.caller.as_ref().map(|c| push_senders::Caller { display_name: c.display_name.clone(), uri: c.uri.clone() });
    let meta = push_senders::PushMeta { aor: job.aor.as_deref(), caller: caller.as_ref(), pn_extra: &job.pn_extra };
    let started = std::time::Instant::now();
    let result = senders.send_with(&job.request, &meta).await;
    let label = match result {
        Ok(()) => "ok",
        Err(sip_push::PushError::Rejected) => "rejected",
        Err(sip_push::PushError::Failed) => "failed",
    };
    let reason = job.request.reason.opensips_reason();
    metrics::push(&job.request.provider, &reason, label);
    // One INFO line per push (the README documents its fields).
    tracing::info!(
        provider = %job.request.provider,
        reason = %reason,
        outcome = label,
        latency_ms = started.elapsed().as_millis() as u64,
        aor = %job.aor.as_deref().unwrap_or("-"),
        binding = %job.request.binding.as_str(),
        "push sent: {label}"
    );
    result
}
