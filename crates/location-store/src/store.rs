//! The backend-neutral interface: the [`Store`] trait that the registrar
//! programs against (SQLite and PostgreSQL implement it), the [`Done`]
//! callback type, [`StoreStats`] and [`Health`].
//!
//! Owns the contract only (ordering, durability, threading). Must not touch
//! any storage engine; implementations live in their own modules
//! (`sqlite/`, `postgres/`).

use crate::cluster::Cluster;
use crate::error::Result;
use crate::types::{Change, StoredBinding, StoredUpstream, Subscriber};

/// Completion callback of [`Store::submit`]: called exactly once, with
/// `Ok(())` once the batch is durable or with the error that prevented it.
///
/// It runs on the store's writer thread (or, if that thread is gone, on the
/// submitting thread, with an error): keep it short (hand the result to
/// the thread that waits for it) and never block on the store from inside it
/// ([`Store::flush`] from a callback would wait for itself). Calling
/// [`Store::submit`] from it is fine.
pub type Done = Box<dyn FnOnce(Result<()>) + Send + 'static>;

/// Durable storage of the registrar: bindings and, in mid-registrar mode,
/// upstream registrations (both written asynchronously through
/// [`Store::submit`], with group commit) and subscribers (written
/// synchronously; rare).
///
/// Methods are callable from any number of OS threads at once.
pub trait Store: Send + Sync {
    /// Every stored binding, including expired ones (the registrar drops
    /// those). Called at start-up.
    fn load_bindings(&self) -> Result<Vec<StoredBinding>>;

    /// How many bindings are stored, and how many of them with a push
    /// state (the push bindings), if the backend can say cheaply: the
    /// start-up load sizes its tables with it. The default: unknown.
    fn count_bindings(&self) -> Result<Option<(usize, usize)>> {
        Ok(None)
    }

    /// [`Store::load_bindings`], one row at a time as it is read (start-up
    /// of a large location: no table-sized buffer, and the caller works on
    /// the rows while the rest are read).
    fn load_bindings_with(&self, each: &mut dyn FnMut(StoredBinding)) -> Result<()> {
        for b in self.load_bindings()? {
            each(b);
        }
        Ok(())
    }

    /// Every stored upstream registration (mid-registrar mode), including
    /// expired ones (the mid-registrar decides what to refresh or drop).
    /// Called at start-up. Written with [`Change::UpsertUpstream`] and
    /// [`Change::RemoveUpstream`].
    ///
    /// The default returns none, for backends that do not store them yet: a
    /// mid-registrar on such a backend forgets its upstream registrations
    /// when it restarts.
    fn load_upstream(&self) -> Result<Vec<StoredUpstream>> {
        Ok(Vec::new())
    }

    /// Queue a batch of changes without blocking on I/O. `done` is called
    /// (from the writer thread, or the thread in [`Store::commit_deferred`]) once the batch is durable — committed, and
    /// fsynced as far as the backend's sync setting promises — or failed.
    ///
    /// Ordering: batches are applied, and their `done` called, in the order
    /// `submit` was called (a later change to the same id, or upstream key,
    /// wins). An empty `changes` is a barrier: its `done` fires once
    /// everything submitted before it is done.
    ///
    /// A batch is atomic: all of its changes, binding and upstream
    /// registration alike, become durable, or none of them.
    fn submit(&self, changes: Vec<Change>, done: Done);

    /// [`Store::submit`] for a thread that calls [`Store::commit_deferred`]
    /// next (a UDP receive thread, at the end of its batch of datagrams):
    /// nothing is woken for this batch yet. Same ordering and durability as
    /// `submit`. The default is `submit`.
    fn submit_deferred(&self, changes: Vec<Change>, done: Done) {
        self.submit(changes, done);
    }

    /// Have what [`Store::submit_deferred`] queued committed. `here`: the
    /// calling thread has nothing else to do (no datagram waiting), so it
    /// commits the queue itself, `done` callbacks included, unless a commit
    /// is in progress elsewhere; that saves the hand-off to the writer thread
    /// (a cold wake-up when the server is idle). Otherwise the writer thread
    /// is woken and commits while the caller goes on receiving. Must not be
    /// called from a [`Done`] callback or with a lock the callbacks take.
    /// The default does nothing (`submit_deferred` woke the writer).
    fn commit_deferred(&self, _here: bool) {}

    /// Every subscriber.
    fn subscribers(&self) -> Result<Vec<Subscriber>>;

    /// One subscriber, if present.
    fn get_subscriber(&self, user: &str, domain: &str) -> Result<Option<Subscriber>>;

    /// Insert or replace a subscriber; durable when this returns.
    fn put_subscriber(&self, s: &Subscriber) -> Result<()>;

    /// Insert or replace many subscribers in one transaction (bulk import);
    /// durable when this returns. The default calls [`Store::put_subscriber`] for each.
    fn put_subscribers(&self, list: &[Subscriber]) -> Result<()> {
        list.iter().try_for_each(|s| self.put_subscriber(s))
    }

    /// Delete a subscriber; `true` if there was one.
    fn delete_subscriber(&self, user: &str, domain: &str) -> Result<bool>;

    /// A cheap counter that changes whenever the subscribers changed, also
    /// when another process (the `sipwake user` CLI) changed them, so the
    /// server knows when to reload its cache. Only equality is meaningful.
    fn subscribers_version(&self) -> Result<u64>;

    /// Block until everything submitted so far is done (shutdown, tests).
    /// Must not be called from a [`Done`] callback.
    fn flush(&self);

    /// Shutdown: [`Store::flush`], then leave the storage compact for the
    /// next start (SQLite: an empty WAL). The store stays usable.
    fn close(&self) {
        self.flush();
    }

    /// Counters of the write path (for metrics and tests).
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    /// Whether the backend can write now (for a health endpoint). Cheap: no
    /// I/O. The default (an embedded database) is always ok.
    fn health(&self) -> Health {
        Health { ok: true, detail: "sqlite".to_owned() }
    }

    /// The cluster side of a backend shared by several sipwake nodes (the
    /// change feed, membership, refresh claims, shared secrets); `None` for
    /// a backend of one node only (SQLite).
    fn cluster(&self) -> Option<&dyn Cluster> {
        None
    }
}

/// What [`Store::health`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// The backend can take writes now (as far as it last saw).
    pub ok: bool,
    /// A line for humans: the backend, and why it is not ok.
    pub detail: String,
}

/// Counters of the write path since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Batches handed to [`Store::submit`] (barriers included).
    pub batches_submitted: u64,
    /// Batches whose `done` has been called.
    pub batches_done: u64,
    /// Individual [`Change`]s committed.
    pub changes_committed: u64,
    /// Groups of batches the writer took off the queue at once.
    pub groups: u64,
    /// Transactions committed (groups of barriers only need none).
    pub commits: u64,
    /// Transactions that failed (every batch in them got the error).
    pub failed_commits: u64,
    /// The largest group drained, in batches.
    pub largest_group: u64,
}
