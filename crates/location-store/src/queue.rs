//! The pieces of the write queue shared by the backends' writer threads:
//! [`Job`] (one submitted batch), the [`Counters`] behind
//! [`crate::Store::stats`], [`encode_group`] (each batch checked before the
//! transaction, so a bad value fails its own batch only), [`finish_group`]
//! (the counters and the group's results) and [`complete`], which calls a
//! group's `done` callbacks in order.
//!
//! Owns no thread and no connection, and must not touch any storage
//! engine: `sqlite/writer.rs` and `postgres/writer.rs` drive the queue.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
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

/// The encoded changes of a drained group and, per batch, the error that
/// rejected it (its changes are left out; the others still commit). Counts
/// the group.
pub(crate) fn encode_group<'a, Op>(
    group: &'a [Job],
    encode: impl Fn(&'a Change) -> Result<Op>,
    counters: &Counters,
    db: &str,
) -> (Vec<Option<Error>>, Vec<Op>) {
    counters.groups.fetch_add(1, Ordering::Relaxed);
    counters.largest_group.fetch_max(group.len() as u64, Ordering::Relaxed);
    let mut verdicts = Vec::with_capacity(group.len());
    let mut ops = Vec::new();
    for job in group {
        let start = ops.len();
        let mut verdict = None;
        for change in &job.changes {
            match encode(change) {
                Ok(op) => ops.push(op),
                Err(e) => {
                    tracing::warn!(db, error = %e, "rejected a batch of changes");
                    ops.truncate(start);
                    verdict = Some(e);
                    break;
                }
            }
        }
        verdicts.push(verdict);
    }
    (verdicts, ops)
}

/// Counts the commit of `changes` changes with `outcome` and completes the
/// group: a rejected batch gets its own error, the others the outcome.
pub(crate) fn finish_group(
    group: &mut Vec<Job>,
    verdicts: Vec<Option<Error>>,
    changes: usize,
    outcome: Result<()>,
    counters: &Counters,
    db: &str,
) {
    match &outcome {
        Ok(()) if changes > 0 => {
            counters.commits.fetch_add(1, Ordering::Relaxed);
            counters.changes_committed.fetch_add(changes as u64, Ordering::Relaxed);
        }
        Ok(()) => {}
        Err(e) => {
            counters.failed_commits.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                db,
                batches = group.len(),
                changes,
                error = %e,
                "group commit failed; every batch in it was answered with the error"
            );
        }
    }
    let results = verdicts.into_iter().map(|verdict| match verdict {
        Some(e) => Err(e),
        None => outcome.clone(),
    });
    complete(group.drain(..).zip(results), counters, db);
}
