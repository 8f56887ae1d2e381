//! The writer thread and group commit.
//!
//! One thread owns the write connection. It blocks for the first queued
//! batch, then drains whatever else is queued (up to
//! [`super::SqliteOptions::max_group_batches`]), applies all of it in ONE
//! `BEGIN IMMEDIATE … COMMIT`, and then calls every batch's `done` in
//! submission order. Under load thousands of batches share one commit (so
//! durability does not cap throughput); without load the latency is one
//! commit.
//!
//! Rules kept here:
//! * strict order: batches are applied and completed in queue order, so a
//!   later change to the same id (or upstream key) wins, and a barrier
//!   (empty batch) completes only after everything queued before it;
//! * binding and upstream-registration changes share the transaction, in
//!   submission order, so a batch mixing them commits or fails as a whole;
//! * a group of barriers only needs no transaction;
//! * a batch with a value that cannot be stored fails alone (checked before
//!   the transaction); a failed commit fails every batch of its group, is
//!   logged, and the thread goes on with the next group;
//! * a panicking callback is caught and logged; the thread survives it.
//!
//! Owns the write connection and the queue's receiving end.
//! Must not touch the read connection or the schema.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::conn::sqlite_err;
use super::rows::{self, Op};
use crate::error::{Error, Result};
use crate::queue::{Counters, Job, encode_group, finish_group};

/// A commit slower than this is logged as a warning (a slow disk, or another
/// process holding the lock).
const SLOW_COMMIT: Duration = Duration::from_secs(1);

/// Start the writer thread on `conn`; returns the queue's sending end.
pub(crate) fn spawn(
    conn: Connection,
    path: PathBuf,
    max_group: usize,
    counters: Arc<Counters>,
) -> Result<(Sender<Job>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let writer = Writer { conn, rx, path: path.clone(), max_group: max_group.max(1), counters };
    let handle =
        thread::Builder::new().name("store-writer".into()).spawn(move || writer.run()).map_err(|e| Error::Open {
            path,
            reason: format!("cannot start the writer thread: {e}; check the process and thread limits (ulimit -u)"),
        })?;
    Ok((tx, handle))
}

struct Writer {
    conn: Connection,
    rx: Receiver<Job>,
    path: PathBuf,
    max_group: usize,
    counters: Arc<Counters>,
}

impl Writer {
    /// Until every sender is gone (the store was dropped), and the queue is
    /// empty: pending work is finished before the thread ends.
    fn run(mut self) {
        let mut group = Vec::with_capacity(self.max_group.min(4096));
        while let Ok(first) = self.rx.recv() {
            group.push(first);
            while group.len() < self.max_group {
                match self.rx.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            self.process(&mut group);
        }
        tracing::debug!(db = %self.path.display(), "location-store writer stopped");
    }

    /// Apply one drained group and complete its batches in order.
    fn process(&mut self, group: &mut Vec<Job>) {
        let db = self.path.display().to_string();
        let (verdicts, changes, outcome) = {
            let (verdicts, ops) = encode_group(group, rows::encode, &self.counters, &db);
            let outcome = if ops.is_empty() { Ok(()) } else { self.commit(&ops, group.len()) };
            (verdicts, ops.len(), outcome)
        };
        finish_group(group, verdicts, changes, outcome, &self.counters, &db);
    }

    /// One transaction for the whole group.
    fn commit(&mut self, ops: &[Op<'_>], batches: usize) -> Result<()> {
        let started = Instant::now();
        let conn = &self.conn;
        let result = (|| -> rusqlite::Result<()> {
            conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            for op in ops {
                rows::apply(conn, op)?;
            }
            conn.prepare_cached("COMMIT")?.execute([])?;
            Ok(())
        })();
        if let Err(e) = result {
            if !conn.is_autocommit()
                && let Err(rollback) = conn.execute_batch("ROLLBACK")
            {
                tracing::warn!(db = %self.path.display(), error = %rollback, "rollback after a failed commit failed");
            }
            return Err(sqlite_err(&self.path, format!("commit of {} changes", ops.len()), &e));
        }
        let took = started.elapsed();
        if took > SLOW_COMMIT {
            tracing::warn!(
                db = %self.path.display(),
                ms = took.as_millis() as u64,
                batches,
                changes = ops.len(),
                "slow commit"
            );
        }
        Ok(())
    }
}
