//! The pieces of the write queue shared by the backends' writer threads:
//! [`Job`] (one submitted batch), the [`Counters`] behind
//! [`crate::Store::stats`], and [`complete`], which calls a group's `done`
//! callbacks in order.
//!
//! Owns no thread and no connection, and must not touch any storage
//! engine: `sqlite/writer.rs` and `postgres/writer.rs` drive the queue.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Result;
use crate::store::{Done, StoreStats};
use crate::types::Change;

/// One submitted batch.
pub(crate) struct Job {
    pub(crate) changes: Vec<Change>,
    pub(crate) done: Done,
}

/// Counters shared by the store handle and the writer thread.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) batches_submitted: AtomicU64,
    pub(crate) batches_done: AtomicU64,
    pub(crate) changes_committed: AtomicU64,
    pub(crate) groups: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) failed_commits: AtomicU64,
    pub(crate) largest_group: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> StoreStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StoreStats {
            batches_submitted: get(&self.batches_submitted),
            batches_done: get(&self.batches_done),
            changes_committed: get(&self.changes_committed),
            groups: get(&self.groups),
            commits: get(&self.commits),
            failed_commits: get(&self.failed_commits),
            largest_group: get(&self.largest_group),
        }
    }
}

/// Call every job's `done` with its result, in order. A panicking callback
/// is caught and logged (naming the database `db`); the rest still run.
pub(crate) fn complete(jobs: impl IntoIterator<Item = (Job, Result<()>)>, counters: &Counters, db: &str) {
    for (job, result) in jobs {
        counters.batches_done.fetch_add(1, Ordering::Relaxed);
        let done = job.done;
        if catch_unwind(AssertUnwindSafe(move || done(result))).is_err() {
            tracing::error!(db, "a done callback of the location store panicked");
        }
    }
}
