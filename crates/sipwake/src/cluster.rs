//! The cluster side of the driver (store backend `postgres`): the change
//! feed of the shared store fed to the node (other nodes' commits, lookup
//! barriers, a rebuild after the feed was interrupted), the node's cluster
//! jobs carried out against the store (barriers, refresh-push claims), and
//! the heartbeat that keeps the list of live members.
//!
//! Owns no state of its own beyond the feed's health flag: what the cluster
//! knows lives in the node (`sip_node::cluster`) and in the database. Every
//! store call runs off the tokio workers (blocking pool or the store's own
//! feed thread), and the node's lock is only taken to feed it.

use crate::driver::Driver;
use location_store::{Cluster, FeedEvent, StoredBinding};
use sip_node::{ClusterJob, Replicated};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Whether the change feed is connected (for `/health`).
pub static FEED_UP: AtomicBool = AtomicBool::new(false);

/// Carries feed events to the driver; buffers them until the driver exists
/// (the feed must listen before the bindings are loaded at start-up, or a
/// commit in between would be missed).
#[derive(Default)]
pub struct FeedRelay {
    driver: std::sync::OnceLock<std::sync::Weak<Driver>>,
    early: std::sync::Mutex<Vec<FeedEvent>>,
}

/// Starts the change feed of a cluster store (before the bindings are
/// loaded); its events reach the driver once [`Driver::start_cluster`] ran.
pub fn follow(c: &dyn Cluster) -> anyhow::Result<Arc<FeedRelay>> {
    let relay = Arc::new(FeedRelay::default());
    let r = relay.clone();
    c.follow(Box::new(move |ev| {
        // Delivered under the relay's lock, so the early events keep their order.
        let mut early = r.early.lock().unwrap_or_else(|e| e.into_inner());
        match r.driver.get().and_then(|w| w.upgrade()) {
            Some(d) => d.on_feed(ev),
            None => early.push(ev),
        }
    }))
    .map_err(|e| anyhow::anyhow!("cannot follow the change feed of the store: {e}"))?;
    FEED_UP.store(true, Ordering::Relaxed);
    Ok(relay)
}

/// How a node takes part, from `[cluster]`.
#[derive(Clone, Debug)]
pub struct Membership {
    /// The SIP address other nodes reach this node's devices through.
    pub advertise: SocketAddr,
    pub heartbeat: Duration,
    pub dead_after: Duration,
}

impl Driver {
    /// Carries out one cluster job of the node, on the cluster's own
    /// worker thread: a plain OS thread outside the tokio runtime, so the
    /// synchronous PostgreSQL client runs there directly (from a runtime's
    /// blocking pool it would need a thread of its own per call).
    pub(crate) fn cluster_job(&self, job: ClusterJob) {
        let tx = self.cluster_jobs.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<ClusterJob>();
            let store = self.store.clone();
            let me = self.me.get().cloned();
            let spawned = std::thread::Builder::new().name("cluster-jobs".into()).spawn(move || {
                while let Ok(job) = rx.recv() {
                    run_job(&*store, me.as_ref(), job);
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the cluster job thread");
            }
            tx
        });
        let _ = tx.send(job);
    }

    /// Starts the cluster's work once the node runs: feed events that came
    /// while the node was being built are applied now (in order), later
    /// ones as they come; the heartbeat starts.
    pub fn start_cluster(self: &Arc<Self>, m: Membership, relay: &FeedRelay) {
        let _ = self.membership.set(m.clone());
        {
            let mut early = relay.early.lock().unwrap_or_else(|e| e.into_inner());
            let _ = relay.driver.set(Arc::downgrade(self));
            for ev in early.drain(..) {
                self.on_feed(ev);
            }
        }
        tokio::spawn(self.clone().run_heartbeat(m));
    }

    fn on_feed(&self, ev: FeedEvent) {
        match ev {
            FeedEvent::Bindings { upserted, removed } => {
                let rows: Vec<Replicated> = upserted.into_iter().filter_map(replicated).collect();
                // A node that joined since our last heartbeat holds some of these:
                // learn its address now, so requests for them go through it.
                let unknown = self.read(|n| rows.iter().any(|r| r.owner.as_ref().is_some_and(|o| !n.is_member(o))));
                if unknown {
                    self.refresh_members();
                }
                self.with_node(|n, now| n.handle_replicated(rows, removed, now));
            }
            FeedEvent::Synced(token) => self.with_node(|n, now| n.handle_synced(token, now)),
            // The subscriber reload task follows the subscribers' version.
            FeedEvent::Subscribers => {}
            FeedEvent::Down(reason) => {
                FEED_UP.store(false, Ordering::Relaxed);
                tracing::error!(%reason, "lost the change feed of the store; reconnecting (lookups route from the cache meanwhile)");
            }
            FeedEvent::Resync { all } => {
                FEED_UP.store(true, Ordering::Relaxed);
                let n = all.len();
                let rows: Vec<Replicated> = all.into_iter().filter_map(replicated).collect();
                self.with_node(|node, now| node.handle_resync(rows, now));
                tracing::info!(bindings = n, "change feed back; location cache rebuilt from the store");
            }
        }
    }

    /// Writes this node's heartbeat and reads the live members, every `heartbeat`.
    async fn run_heartbeat(self: Arc<Self>, m: Membership) {
        let mut tick = tokio::time::interval(m.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.stopping.load(Ordering::Relaxed) {
                return;
            }
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.refresh_members()).await;
        }
    }

    /// One heartbeat (blocking): this node is alive; the node learns who else is.
    fn refresh_members(&self) {
        let (Some(c), Some(m)) = (self.store.cluster(), self.membership.get()) else { return };
        match c.heartbeat(&m.advertise.to_string(), m.dead_after) {
            Ok(members) => {
                let list: Vec<(String, SocketAddr)> =
                    members.into_iter().filter_map(|mb| Some((mb.id, mb.sip_addr.parse().ok()?))).collect();
                self.with_node(|n, _| n.set_members(list));
            }
            Err(e) => tracing::warn!(error = %e, "cluster heartbeat failed"),
        }
    }
}

/// One cluster job against the store (blocking), its outcome fed back.
fn run_job(store: &dyn location_store::Store, me: Option<&std::sync::Weak<Driver>>, job: ClusterJob) {
    let Some(c) = store.cluster() else { return };
    match job {
        ClusterJob::Sync(token) => {
            if let Err(e) = c.sync(token) {
                // The node's barrier times out and it routes from its cache.
                tracing::warn!(error = %e, "cannot send a lookup barrier through the change feed");
            }
        }
        ClusterJob::Claim { id, binding, generation, attempt } => {
            let won = c.claim_refresh(&binding, generation, attempt).map_err(|e| e.to_string());
            if let Some(d) = me.and_then(|w| w.upgrade()) {
                d.claimed(id, won);
            }
        }
    }
}

/// A row another node committed, as the node takes it (`None`: unreadable, skipped).
pub fn replicated(row: StoredBinding) -> Option<Replicated> {
    let owner = row.node.clone();
    match crate::store_map::from_row(row) {
        Ok((binding, push_state)) => Some(Replicated { binding, push_state, owner }),
        Err((id, e)) => {
            tracing::warn!(binding = %id, error = %e, "skipping an unreadable replicated binding");
            None
        }
    }
}
