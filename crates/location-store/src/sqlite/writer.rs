//! The writer and group commit.
//!
//! One write connection, behind a mutex, commits everything. Submitted
//! batches wait in one FIFO queue; whoever holds the connection takes up to
//! [`super::SqliteOptions::max_group_batches`] of them off the front, applies
//! them in ONE `BEGIN IMMEDIATE … COMMIT`, calls every batch's `done` in
//! submission order, and repeats until the queue is empty. Under load
//! thousands of batches share one commit (so durability does not cap
//! throughput); without load the latency is one commit.
//!
//! Two kinds of thread hold the connection:
//! * the writer thread, woken by [`Shared::push`] with `wake` (every
//!   [`crate::Store::submit`]);
//! * a caller of [`Shared::commit_queued`] (a UDP receive thread at the end of
//!   its batch of datagrams, when no other datagram is waiting): it commits its own batches, and any queued
//!   before, on its own thread, so a REGISTER's 200 OK leaves without a
//!   hand-off to another thread (a cold wake-up costs tens of µs when the
//!   server is idle). If the connection is busy it wakes the writer thread
//!   instead, so nothing queued waits for a next call.
//!
//! Rules kept here:
//! * strict order: batches are taken off the queue, applied and completed
//!   in queue order by one holder of the connection at a time, so a later
//!   change to the same id (or upstream key) wins, and a barrier (empty
//!   batch) completes only after everything queued before it;
//! * binding and upstream-registration changes share the transaction, in
//!   submission order, so a batch mixing them commits or fails as a whole;
//! * a group of barriers only needs no transaction;
//! * a batch with a value that cannot be stored fails alone (checked before
//!   the transaction); a failed commit fails every batch of its group, is
//!   logged, and the next group goes on;
//! * a panicking callback is caught and logged; the committer survives it.
//!
//! Owns the write connection and the queue. Must not touch the read
//! connection or the schema.

use std::cell::Cell;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
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

thread_local! {
    /// Set while this thread runs `done` callbacks (on the writer thread or
    /// in [`Shared::commit_queued`]): a callback must not wait for the queue.
    static IN_DONE: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is running a `done` callback of this store.
pub(crate) fn in_done_callback() -> bool {
    IN_DONE.with(Cell::get)
}

/// The queue and the write connection, shared by the store handle, the
/// writer thread and [`Shared::commit_queued`] callers.
pub(crate) struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is pushed with `wake` or the queue closes.
    ready: Condvar,
    writer: Mutex<Writer>,
    max_group: usize,
}

struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
    /// The writer thread sleeps on `ready` (a notify is only sent then).
    writer_waiting: bool,
}

/// Start the writer thread on `conn`; returns the shared queue.
pub(crate) fn spawn(
    conn: Connection,
    path: PathBuf,
    max_group: usize,
    counters: Arc<Counters>,
) -> Result<(Arc<Shared>, JoinHandle<()>)> {
    let max_group = max_group.max(1);
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue { jobs: VecDeque::new(), closed: false, writer_waiting: false }),
        ready: Condvar::new(),
        writer: Mutex::new(Writer { conn, path: path.clone(), counters, group: Vec::new() }),
        max_group,
    });
    let s = shared.clone();
    let handle =
        thread::Builder::new().name("store-writer".into()).spawn(move || s.run()).map_err(|e| Error::Open {
            path,
            reason: format!("cannot start the writer thread: {e}; check the process and thread limits (ulimit -u)"),
        })?;
    Ok((shared, handle))
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue a job; `wake`: have the writer thread commit it (otherwise the
    /// caller promises a [`Shared::commit_queued`]). Gives the job back once
    /// the queue is closed.
    pub(crate) fn push(&self, job: Job, wake: bool) -> std::result::Result<(), Job> {
        let mut q = self.queue();
        if q.closed {
            return Err(job);
        }
        q.jobs.push_back(job);
        if wake && q.writer_waiting {
            q.writer_waiting = false;
            self.ready.notify_one();
        }
        Ok(())
    }

    /// `here`: commit what is queued on this thread if the connection is
    /// free; otherwise (or if the connection is busy: whoever holds it may
    /// already have looked at the queue for the last time) wake the writer
    /// thread.
    pub(crate) fn commit_queued(&self, here: bool) {
        if !here || in_done_callback() {
            return self.wake();
        }
        match self.writer.try_lock() {
            Ok(mut w) => self.drain(&mut w),
            Err(TryLockError::Poisoned(p)) => self.drain(&mut p.into_inner()),
            Err(TryLockError::WouldBlock) => self.wake(),
        }
    }

    fn wake(&self) {
        let mut q = self.queue();
        if q.writer_waiting && !q.jobs.is_empty() {
            q.writer_waiting = false;
            self.ready.notify_one();
        }
    }

    /// No more jobs: the writer thread finishes the queue and ends.
    pub(crate) fn close(&self) {
        let mut q = self.queue();
        q.closed = true;
        q.writer_waiting = false;
        self.ready.notify_all();
    }

    /// The writer thread: until the queue is closed and empty, pending work
    /// is finished before the thread ends.
    fn run(&self) {
        loop {
            {
                let mut q = self.queue();
                while q.jobs.is_empty() && !q.closed {
                    q.writer_waiting = true;
                    q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
                }
                q.writer_waiting = false;
                if q.jobs.is_empty() {
                    break; // closed
                }
            }
            let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            self.drain(&mut w);
        }
        let w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        tracing::debug!(db = %w.path.display(), "location-store writer stopped");
    }

    /// With the connection held: commit groups off the front of the queue
    /// until it is empty.
    fn drain(&self, w: &mut Writer) {
        let mut group = std::mem::take(&mut w.group);
        loop {
            {
                let mut q = self.queue();
                let n = q.jobs.len().min(self.max_group);
                group.extend(q.jobs.drain(..n));
            }
            if group.is_empty() {
                break;
            }
            let was = IN_DONE.with(|f| f.replace(true));
            w.process(&mut group);
            IN_DONE.with(|f| f.set(was));
            group.clear();
        }
        w.group = group;
    }
}

struct Writer {
    conn: Connection,
    path: PathBuf,
    counters: Arc<Counters>,
    /// The group being committed (kept for its allocation).
    group: Vec<Job>,
}

impl Writer {
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
