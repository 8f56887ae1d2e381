//! The backend-neutral cluster interface: what several sipwake nodes
//! sharing one store need besides the [`crate::Store`] itself — the
//! [`Cluster`] trait, the [`FeedEvent`]s of the change feed and the
//! [`Member`]s of the membership list.
//!
//! Owns the contract only (what each call promises, in which order feed
//! events arrive). Must not touch any storage engine: the PostgreSQL
//! backend implements it in `postgres/` (reached through
//! [`crate::Store::cluster`]); SQLite, a store of one node, does not.

use std::time::Duration;

use crate::error::Result;
use crate::types::StoredBinding;

/// One event of the change feed started by [`Cluster::follow`], delivered
/// in order on the feed's own thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedEvent {
    /// Bindings another node committed: `upserted` holds their rows as
    /// they are now (possibly newer than the notification), `removed` the
    /// ids that no longer exist. Changes committed by this node itself are
    /// not reported.
    Bindings {
        /// Current rows of the changed bindings.
        upserted: Vec<StoredBinding>,
        /// Ids of changed bindings that are gone.
        removed: Vec<String>,
    },
    /// The subscribers changed (by any node, or by `sipwake user`): reload
    /// them.
    Subscribers,
    /// The token given to [`Cluster::sync`]: every change committed before
    /// that call has been delivered (as [`FeedEvent::Bindings`]) before
    /// this event.
    Synced(u64),
    /// The feed lost its database connection (the reason); it reconnects by
    /// itself, with backoff, and then sends [`FeedEvent::Resync`]. Changes
    /// committed in between are not reported one by one.
    Down(String),
    /// The feed is back after [`FeedEvent::Down`]: every binding as it is
    /// now, so the follower can rebuild its cache. Changes committed after
    /// this snapshot are reported as usual.
    Resync {
        /// Every stored binding.
        all: Vec<StoredBinding>,
    },
}

/// A live node of the cluster, as [`Cluster::heartbeat`] lists them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    /// Node id ([`Cluster::node_id`] of that node).
    pub id: String,
    /// The SIP address the node gave in its last heartbeat (where other
    /// nodes reach it, e.g. `10.0.0.2:5060`).
    pub sip_addr: String,
}

/// What several sipwake nodes sharing one store use to cooperate. Methods
/// are callable from any OS thread (not from inside an async runtime's
/// worker; use `spawn_blocking`), and each one that talks to the database
/// may block for a round trip.
pub trait Cluster: Send + Sync {
    /// This node's id (unique in the cluster).
    fn node_id(&self) -> &str;

    /// Start the change feed (once per store; a second call fails): `sink`
    /// is called on the feed's own thread with every [`FeedEvent`], in
    /// order. The feed is listening when this returns, so a change
    /// committed afterwards is never missed: load the bindings after
    /// calling it. If the database cannot be reached now, the feed starts
    /// with [`FeedEvent::Down`] and reconnects by itself.
    fn follow(&self, sink: Box<dyn FnMut(FeedEvent) + Send>) -> Result<()>;

    /// Ask the feed to deliver [`FeedEvent::Synced`]`(token)` once every
    /// change committed before this call (by any node) has been delivered.
    fn sync(&self, token: u64) -> Result<()>;

    /// Record that this node is alive, reachable at `sip_addr`, and list the
    /// nodes (this one included) whose last heartbeat is within
    /// `live_within` of the database's clock, sorted by id.
    fn heartbeat(&self, sip_addr: &str, live_within: Duration) -> Result<Vec<Member>>;

    /// Claim the refresh (push, re-registration, ...) of `binding` for its
    /// `generation` and `attempt`: `true` for exactly one caller in the
    /// whole cluster per (binding, generation, attempt), whatever the
    /// concurrency, and only while no claim of a later (generation,
    /// attempt) exists.
    fn claim_refresh(&self, binding: &str, generation: u64, attempt: u32) -> Result<bool>;

    /// A random 32-byte secret shared by every node (created by whichever
    /// node asks first), e.g. the key of digest nonces and flow tokens.
    fn shared_secret(&self, name: &str) -> Result<[u8; 32]>;
}
