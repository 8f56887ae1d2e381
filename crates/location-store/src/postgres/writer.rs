//! The PostgreSQL writer thread: group commit over one connection, and
//! reconnection.
//!
//! Like the SQLite writer, one thread owns the write connection. It blocks
//! for the first queued batch, drains whatever else is queued (up to
//! [`super::PgOptions::max_group_batches`]), checks every batch (a bad
//! value fails its own batch only), applies the rest in ONE transaction
//! (`apply.rs`: few statements, and the notifications of the changed
//! bindings) and then calls every batch's `done` in submission order. A
//! group of barriers only needs no transaction.
//!
//! Connection loss: every batch of the failing group gets
//! [`Error::Unavailable`]; the connection is dropped and re-opened with
//! backoff (100 ms, doubling up to 2 s), also while idle. Until it is back,
//! groups fail at once with [`Error::Unavailable`] (no batch waits for the
//! server), so every `done` is always called. A connection idle for a few
//! seconds is checked (one round trip) before it commits, so a server
//! restart during a quiet spell costs no failed batch. A deadlock or serialization
//! conflict with another node's transaction is retried (up to three
//! tries). While connected and idle, the thread also sweeps refresh claims
//! of bindings that are gone and nodes not seen for a day.
//!
//! Owns the write connection, its prepared statements and the queue's
//! receiving end. Must not touch the readers, the feed or the schema.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use postgres::Client;

use super::apply::{self, Statements};
use super::conn::{Target, describe, is_conflict, is_connection_error};
use super::rows::{self, Op};
use crate::error::{Error, Result};
use crate::queue::{Counters, Job, encode_group, finish_group};
use crate::store::Health;

/// A commit slower than this is logged as a warning.
const SLOW_COMMIT: Duration = Duration::from_secs(1);
/// First wait before reconnecting; doubles up to [`MAX_BACKOFF`].
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(100);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often the idle writer sweeps stale rows.
const SWEEP_PERIOD: Duration = Duration::from_secs(600);
const SWEEP: &str = "\
DELETE FROM refresh_claims c WHERE claimed_at < now() - interval '1 hour'
    AND NOT EXISTS (SELECT 1 FROM bindings b WHERE b.id = c.binding_id);
DELETE FROM cluster_nodes WHERE seen_at < now() - interval '1 day';";
/// A connection idle for this long is checked before it commits.
const IDLE_CHECK: Duration = Duration::from_secs(5);
/// Tries of a transaction that conflicts with another node's.
const TRIES: usize = 3;

/// What the writer last saw of the server, for [`crate::Store::health`].
pub(crate) type SharedHealth = Arc<Mutex<Health>>;

/// Start the writer thread on `client` (already migrated); returns the
/// queue's sending end.
pub(crate) fn spawn(
    client: Client,
    target: Target,
    node: String,
    max_group: usize,
    counters: Arc<Counters>,
    health: SharedHealth,
) -> Result<(Sender<Job>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let name = target.name.clone();
    let mut writer = Writer {
        conn: None,
        rx,
        target,
        node,
        max_group: max_group.max(1),
        counters,
        health,
        backoff: MIN_BACKOFF,
        next_attempt: Instant::now(),
        last_error: String::new(),
        last_sweep: Instant::now(),
        last_used: Instant::now(),
    };
    writer.adopt(client);
    let handle =
        thread::Builder::new().name("store-pg-writer".into()).spawn(move || writer.run()).map_err(|e| Error::Open {
            path: name.into(),
            reason: format!("cannot start the writer thread: {e}; check the process and thread limits (ulimit -u)"),
        })?;
    Ok((tx, handle))
}

struct Writer {
    conn: Option<(Client, Statements)>,
    rx: Receiver<Job>,
    target: Target,
    node: String,
    max_group: usize,
    counters: Arc<Counters>,
    health: SharedHealth,
    backoff: Duration,
    next_attempt: Instant,
    last_error: String,
    last_sweep: Instant,
    /// When the connection last committed (or was checked).
    last_used: Instant,
}

impl Writer {
    /// Until every sender is gone (the store was dropped) and the queue is
    /// empty.
    fn run(mut self) {
        let mut group = Vec::with_capacity(self.max_group.min(4096));
        loop {
            let wait = if self.conn.is_some() {
                SWEEP_PERIOD.saturating_sub(self.last_sweep.elapsed())
            } else {
                self.next_attempt.saturating_duration_since(Instant::now())
            };
            let first = match self.rx.recv_timeout(wait) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    if self.conn.is_some() {
                        self.sweep();
                    } else {
                        self.reconnect();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            group.push(first);
            while group.len() < self.max_group {
                match self.rx.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            self.process(&mut group);
        }
        tracing::debug!(db = %self.target.name, "location-store writer stopped");
    }

    /// Apply one drained group and complete its batches in order.
    fn process(&mut self, group: &mut Vec<Job>) {
        let db = self.target.name.clone();
        let (verdicts, changes, outcome) = {
            let (verdicts, ops) = encode_group(group, rows::encode, &self.counters, &db);
            let outcome = if ops.is_empty() { Ok(()) } else { self.commit(&ops, group.len()) };
            (verdicts, ops.len(), outcome)
        };
        finish_group(group, verdicts, changes, outcome, &self.counters, &db);
    }

    /// One transaction for the whole group (retried on a conflict with
    /// another node).
    fn commit(&mut self, ops: &[Op<'_>], batches: usize) -> Result<()> {
        self.check_if_idle();
        if self.conn.is_none() && Instant::now() >= self.next_attempt {
            self.reconnect();
        }
        let Some((client, statements)) = self.conn.as_mut() else {
            return Err(Error::Unavailable { what: self.target.name.clone(), reason: self.last_error.clone() });
        };
        let started = Instant::now();
        let mut tries = 0;
        let result = loop {
            tries += 1;
            match apply::apply(client, statements, ops, &self.node) {
                Err(e) if is_conflict(&e) && tries < TRIES => {
                    tracing::debug!(db = %self.target.name, error = %describe(&e), "retrying a conflicting commit");
                }
                other => break other,
            }
        };
        if let Err(e) = result {
            let err = self.target.error(format!("commit of {} changes", ops.len()), &e);
            if is_connection_error(&e) {
                self.lost(describe(&e));
            }
            return Err(err);
        }
        self.last_used = Instant::now();
        let took = started.elapsed();
        if took > SLOW_COMMIT {
            tracing::warn!(
                db = %self.target.name,
                ms = took.as_millis() as u64,
                batches,
                changes = ops.len(),
                "slow commit"
            );
        }
        Ok(())
    }

    /// A connection unused for [`IDLE_CHECK`] may have died unnoticed (a
    /// server restart, a proxy dropping idle connections): check it with one
    /// round trip, so the group about to commit goes to a live connection
    /// (a replacement is made at once) instead of failing.
    fn check_if_idle(&mut self) {
        if self.last_used.elapsed() < IDLE_CHECK {
            return;
        }
        self.last_used = Instant::now();
        let Some((client, _)) = self.conn.as_mut() else { return };
        if let Err(e) = client.is_valid(self.target.connect_timeout()) {
            self.lost(describe(&e));
        }
    }

    /// Use `client` from now on (prepares the statements).
    fn adopt(&mut self, mut client: Client) {
        match Statements::prepare(&mut client) {
            Ok(st) => {
                self.conn = Some((client, st));
                self.backoff = MIN_BACKOFF;
                self.set_health(true, format!("postgres {}: connected", self.target.name));
            }
            Err(e) => {
                let reason = describe(&e);
                self.failed_attempt(format!("preparing statements: {reason}"));
            }
        }
    }

    /// The connection is gone: drop it and reconnect soon.
    fn lost(&mut self, reason: String) {
        tracing::warn!(db = %self.target.name, %reason, "lost the database connection; reconnecting");
        self.conn = None;
        self.backoff = MIN_BACKOFF;
        self.next_attempt = Instant::now();
        self.last_error = reason.clone();
        self.set_health(false, format!("postgres {} unreachable: {reason}", self.target.name));
    }

    fn reconnect(&mut self) {
        match self.target.connect() {
            Ok(client) => {
                tracing::info!(db = %self.target.name, "database connection of the writer is back");
                self.adopt(client);
            }
            Err(e) => {
                let reason = match e {
                    Error::Unavailable { reason, .. } => reason,
                    other => other.to_string(),
                };
                self.failed_attempt(reason);
            }
        }
    }

    fn failed_attempt(&mut self, reason: String) {
        self.conn = None;
        self.next_attempt = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        tracing::debug!(db = %self.target.name, %reason, "cannot reconnect yet");
        self.set_health(false, format!("postgres {} unreachable: {reason}", self.target.name));
        self.last_error = reason;
    }

    fn set_health(&self, ok: bool, detail: String) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        *h = Health { ok, detail };
    }

    fn sweep(&mut self) {
        self.last_sweep = Instant::now();
        let Some((client, _)) = self.conn.as_mut() else { return };
        if let Err(e) = client.batch_execute(SWEEP) {
            tracing::warn!(db = %self.target.name, error = %describe(&e), "sweeping stale claims failed");
            if is_connection_error(&e) {
                self.lost(describe(&e));
            }
        }
    }
}
