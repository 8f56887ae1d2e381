//! The embedded SQLite backend: [`SqliteStore`] and [`SqliteOptions`].
//!
//! One database file (WAL mode) with two connections:
//! * the write connection (`writer.rs`), which applies submitted changes
//!   (bindings, upstream registrations) with group commit, on the writer
//!   thread or on a thread that commits its own deferred batches
//!   ([`Store::commit_deferred`]);
//! * the read connection, behind a mutex, for the rare reads (start-up
//!   loads, subscribers), for subscriber writes, and for
//!   [`Store::subscribers_version`].
//!
//! Opening creates the file if needed and migrates the schema
//! (`migrations.rs`); `sipwake user` opens the same file concurrently, which
//! WAL and the busy timeout allow.
//!
//! Owns the store handle and its lifecycle (dropping it finishes the queued
//! work and joins the writer). Must not touch SQL of the tables directly
//! (that is `rows.rs`) or connection settings (that is `conn.rs`).

mod checkpoint;
mod conn;
mod migrations;
mod perms;
mod rows;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

pub use migrations::SCHEMA_VERSION;

use crate::error::{Error, Result};
use crate::queue::{Counters, Job};
use crate::store::{Done, Store, StoreStats};
use crate::types::{Change, StoredBinding, StoredUpstream, Subscriber};
use conn::sqlite_err;

/// Settings of a [`SqliteStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// `synchronous=FULL` instead of the default `NORMAL`.
    ///
    /// Durability trade-off, in WAL mode:
    /// * `NORMAL` (false, the default): a commit is written to the WAL file
    ///   (handed to the kernel) but not fsynced; the WAL is fsynced at
    ///   checkpoints. An acknowledged change survives a crash or `kill -9`
    ///   of sipwake, but the last commits before a power loss or kernel
    ///   crash may be lost (the database stays consistent). Registrations
    ///   are refreshed by the phones, so this is the usual choice.
    /// * `FULL` (true): the WAL is fsynced at every commit, so an
    ///   acknowledged change also survives a power loss. Each group commit
    ///   then costs one fsync; group commit keeps throughput up, but the
    ///   latency of one REGISTER is at least one fsync.
    pub synchronous_full: bool,
    /// How long a connection waits for a lock held by another connection
    /// (e.g. `sipwake user` writing) before failing. Default 5 s.
    pub busy_timeout: Duration,
    /// The most batches one group commit takes off the queue (0 counts as
    /// 1). Default 1000. Larger groups mean fewer commits but a longer
    /// wait for the first batch of a group.
    pub max_group_batches: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { synchronous_full: false, busy_timeout: Duration::from_secs(5), max_group_batches: 1000 }
    }
}

/// The SQLite [`Store`]. Cheap to share behind an `Arc`; every method may be
/// called from any thread.
///
/// Dropping it stops accepting work, finishes what is queued (every `done`
/// is called) and joins the writer thread.
pub struct SqliteStore {
    path: PathBuf,
    queue: Arc<writer::Shared>,
    writer: Option<JoinHandle<()>>,
    writer_id: ThreadId,
    read: Mutex<ReadSide>,
    counters: Arc<Counters>,
    checkpointer: Option<checkpoint::Checkpointer>,
    synchronous_full: bool,
}

/// The read connection and the cache behind [`Store::subscribers_version`].
struct ReadSide {
    conn: Connection,
    /// `PRAGMA data_version` when `generation` was read; `None` after this
    /// connection wrote (its own writes do not change its data_version).
    data_version: Option<i64>,
    generation: u64,
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`, migrate its schema
    /// and start the writer thread.
    ///
    /// Fails with a message naming the file and what to fix: the directory
    /// is missing or not writable, the file is not a database, or it has a
    /// newer schema than this program knows ([`Error::SchemaTooNew`]).
    pub fn open(path: &Path, opts: SqliteOptions) -> Result<Self> {
        let mut write_conn = conn::open_write(path, &opts)?;
        migrations::migrate(&mut write_conn, path)?;
        let frames = Arc::new(std::sync::atomic::AtomicI64::new(checkpoint::CHECKPOINT_FRAMES));
        let seen = frames.clone();
        write_conn
            .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: std::ffi::c_int| {
                seen.store(i64::from(pages), std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }))
            .map_err(|e| Error::Open { path: path.to_owned(), reason: conn::describe(&e) })?;
        let read_conn = conn::open_read(path, &opts)?;
        let counters = Arc::new(Counters::default());
        let (queue, writer) = writer::spawn(write_conn, path.to_owned(), opts.max_group_batches, counters.clone())?;
        let checkpointer = checkpoint::spawn(conn::open_read(path, &opts)?, path.to_owned(), frames)?;
        tracing::debug!(db = %path.display(), synchronous_full = opts.synchronous_full, "location store open");
        Ok(Self {
            path: path.to_owned(),
            queue,
            writer_id: writer.thread().id(),
            writer: Some(writer),
            read: Mutex::new(ReadSide { conn: read_conn, data_version: None, generation: 0 }),
            counters,
            checkpointer: Some(checkpointer),
            synchronous_full: opts.synchronous_full,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counters of the write path (same as [`Store::stats`]).
    pub fn stats(&self) -> StoreStats {
        self.counters.snapshot()
    }

    /// The read connection. A panic while it was held cannot leave it in a
    /// state worse than an open transaction, which the next statement would
    /// surface, so a poisoned lock is taken over.
    fn read(&self) -> MutexGuard<'_, ReadSide> {
        self.read.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Run `f` in a `BEGIN IMMEDIATE` transaction on the read connection
    /// (immediate, so that waiting for the writer uses the busy timeout
    /// instead of failing on a stale snapshot).
    fn write_on_read_conn<T>(&self, op: String, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut side = self.read();
        let result = (|| {
            let tx = rusqlite::Transaction::new_unchecked(&side.conn, TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })();
        side.data_version = None;
        result.map_err(|e| sqlite_err(&self.path, op, &e))
    }
}

impl Store for SqliteStore {
    fn load_bindings(&self) -> Result<Vec<StoredBinding>> {
        let mut out = Vec::new();
        self.load_bindings_with(&mut |b| out.push(b))?;
        Ok(out)
    }

    fn count_bindings(&self) -> Result<Option<(usize, usize)>> {
        let side = self.read();
        let (all, push): (i64, i64) = side
            .conn
            .query_row("SELECT count(*), count(push_state) FROM bindings", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| sqlite_err(&self.path, "counting the bindings", &e))?;
        let n = |v: i64| usize::try_from(v).unwrap_or(0);
        Ok(Some((n(all), n(push))))
    }

    fn load_bindings_with(&self, each: &mut dyn FnMut(StoredBinding)) -> Result<()> {
        let side = self.read();
        let err = |e: rusqlite::Error| sqlite_err(&self.path, "loading the bindings", &e);
        let mut stmt = side.conn.prepare_cached(rows::SELECT_BINDINGS).map_err(err)?;
        let mut rows = stmt.query([]).map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            match rows::binding_from_row(row) {
                Ok(b) => each(b),
                // Bindings are soft state the phones refresh: one damaged row
                // must not keep the registrar from starting.
                Err((id, reason)) => tracing::warn!(
                    db = %self.path.display(),
                    binding = %id,
                    %reason,
                    "skipping a damaged binding row; delete it with the sqlite3 shell"
                ),
            }
        }
        Ok(())
    }

    fn load_upstream(&self) -> Result<Vec<StoredUpstream>> {
        let side = self.read();
        let err = |e: rusqlite::Error| sqlite_err(&self.path, "loading the upstream registrations", &e);
        let mut stmt = side.conn.prepare_cached(rows::SELECT_UPSTREAM).map_err(err)?;
        let mut rows = stmt.query([]).map_err(err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(err)? {
            match rows::upstream_from_row(row) {
                Ok(u) => out.push(u),
                // Soft state like the bindings: a forgotten upstream
                // registration expires upstream, or is registered again
                // when its device refreshes.
                Err((key, reason)) => tracing::warn!(
                    db = %self.path.display(),
                    upstream = %key,
                    %reason,
                    "skipping a damaged upstream registration row; delete it with the sqlite3 shell"
                ),
            }
        }
        Ok(out)
    }

    fn submit(&self, changes: Vec<Change>, done: Done) {
        self.enqueue(Job { changes, done }, true);
    }

    fn submit_deferred(&self, changes: Vec<Change>, done: Done) {
        self.enqueue(Job { changes, done }, false);
    }

    fn commit_deferred(&self, here: bool) {
        // With synchronous = FULL a commit waits for an fsync: a receive
        // thread must not, so the writer thread commits.
        self.queue.commit_queued(here && !self.synchronous_full);
    }

    fn subscribers(&self) -> Result<Vec<Subscriber>> {
        let side = self.read();
        let err = |e: rusqlite::Error| sqlite_err(&self.path, "loading the subscribers", &e);
        let mut stmt = side.conn.prepare_cached(rows::SELECT_SUBSCRIBERS).map_err(err)?;
        let mut rows = stmt.query([]).map_err(err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(err)? {
            out.push(rows::subscriber_from_row(row).map_err(|(what, reason)| self.corrupt(what, reason))?);
        }
        Ok(out)
    }

    fn get_subscriber(&self, user: &str, domain: &str) -> Result<Option<Subscriber>> {
        let side = self.read();
        let err = |e: rusqlite::Error| sqlite_err(&self.path, format!("reading subscriber {user}@{domain}"), &e);
        let mut stmt = side.conn.prepare_cached(rows::GET_SUBSCRIBER).map_err(err)?;
        let mut rows = stmt.query([user, domain]).map_err(err)?;
        match rows.next().map_err(err)? {
            Some(row) => rows::subscriber_from_row(row).map(Some).map_err(|(what, reason)| self.corrupt(what, reason)),
            None => Ok(None),
        }
    }

    fn put_subscriber(&self, s: &Subscriber) -> Result<()> {
        let created = rows::subscriber_created(s)?;
        self.write_on_read_conn(format!("saving subscriber {}@{}", s.user, s.domain), |conn| {
            rows::put_subscriber(conn, s, created)
        })
    }

    fn put_subscribers(&self, list: &[Subscriber]) -> Result<()> {
        let created: Vec<_> = list.iter().map(rows::subscriber_created).collect::<Result<_>>()?;
        self.write_on_read_conn(format!("saving {} subscribers", list.len()), |conn| {
            for (s, c) in list.iter().zip(created) {
                rows::put_subscriber(conn, s, c)?;
            }
            Ok(())
        })
    }

    fn delete_subscriber(&self, user: &str, domain: &str) -> Result<bool> {
        self.write_on_read_conn(format!("deleting subscriber {user}@{domain}"), |conn| {
            Ok(conn.prepare_cached(rows::DELETE_SUBSCRIBER)?.execute([user, domain])? > 0)
        })
    }

    /// A generation counter kept in the database by triggers on the
    /// subscribers table, so it changes for writes by any process. The fast
    /// path is one `PRAGMA data_version` on the read connection: the counter
    /// is only re-read when some other connection committed anything.
    fn subscribers_version(&self) -> Result<u64> {
        let mut side = self.read();
        let err = |e: rusqlite::Error| sqlite_err(&self.path, "reading the subscribers version", &e);
        let data_version: i64 = side.conn.pragma_query_value(None, "data_version", |r| r.get(0)).map_err(err)?;
        if side.data_version == Some(data_version) {
            return Ok(side.generation);
        }
        let raw: i64 = side
            .conn
            .prepare_cached(rows::SUBSCRIBERS_GENERATION)
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => {
                    self.corrupt("meta row subscribers_generation".into(), "it is missing".into())
                }
                e => err(e),
            })?;
        let generation = u64::try_from(raw)
            .map_err(|_| self.corrupt("meta row subscribers_generation".into(), format!("negative value {raw}")))?;
        side.data_version = Some(data_version);
        side.generation = generation;
        Ok(generation)
    }

    fn flush(&self) {
        if writer::in_done_callback() {
            tracing::error!(
                db = %self.path.display(),
                "flush() called from a done callback would wait for itself; ignored"
            );
            return;
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(
            Vec::new(),
            Box::new(move |_| {
                let _ = tx.send(());
            }),
        );
        // An error means the callback was dropped uncalled (writer gone):
        // nothing more will complete, so there is nothing to wait for.
        let _ = rx.recv();
    }

    fn close(&self) {
        self.flush();
        // Everything committed goes into the database file and the WAL is
        // emptied: the next start reads one file, not a WAL of hundreds of MiB.
        let side = self.read();
        if let Err(e) = side.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
            tracing::warn!(db = %self.path.display(), error = %e, "could not empty the WAL at shutdown");
        }
    }

    fn stats(&self) -> StoreStats {
        self.counters.snapshot()
    }
}

impl SqliteStore {
    fn enqueue(&self, job: Job, wake: bool) {
        self.counters.batches_submitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Err(rejected) = self.queue.push(job, wake) {
            self.counters.batches_done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (rejected.done)(Err(Error::WriterStopped { path: self.path.clone() }));
        }
    }

    fn corrupt(&self, what: String, reason: String) -> Error {
        Error::Corrupt { path: self.path.clone(), what, reason }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(c) = self.checkpointer.take() {
            c.stop();
        }
        self.queue.close(); // the writer finishes the queue, then ends
        if let Some(writer) = self.writer.take() {
            if thread::current().id() == self.writer_id || writer::in_done_callback() {
                return; // dropped from a done callback: the writer ends by itself
            }
            if writer.join().is_err() {
                tracing::error!(db = %self.path.display(), "the location-store writer thread panicked");
            }
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).field("stats", &self.stats()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file written by the previous release (schema version 1, without
    /// `push_state`) is upgraded in place at open: its rows load unchanged
    /// (no push state) and the new column is writable.
    #[test]
    fn version_1_file_upgrades_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            migrations::migrate_with(&mut conn, &path, &migrations::MIGRATIONS[..1]).unwrap();
            conn.execute_batch(
                r#"INSERT INTO bindings (id, aor, contact, q, expires_at_ms, call_id, cseq, instance, reg_id, path,
                                     transport, remote, local, user_agent, registered_at_ms, extra)
                   VALUES ('b1', 'alice@example.com', '<sip:alice@192.0.2.1:5060;pn-provider=apns>', 500,
                           1700003600000, 'c1', 7, '<urn:uuid:1>', 1, '["<sip:edge.example.com;lr>"]',
                           'tcp', '192.0.2.1:40000', '198.51.100.1:5060', 'UA/1', 1700000000000, '{"k":1}'),
                          ('b2', 'bob@example.com', '<sip:bob@192.0.2.2>', NULL, 1700003600000, 'c2', 1,
                           NULL, NULL, '[]', 'udp', '192.0.2.2:5060', '198.51.100.1:5060', NULL,
                           1700000000000, NULL);
                   INSERT INTO subscribers VALUES ('alice', 'example.com', 'md5', 'sha', 1);"#,
            )
            .unwrap();
            let v: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
            assert_eq!(v, 1);
        }

        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let loaded = store.load_bindings().unwrap();
        let b1 = StoredBinding {
            id: "b1".into(),
            aor: "alice@example.com".into(),
            contact: "<sip:alice@192.0.2.1:5060;pn-provider=apns>".into(),
            q: Some(500),
            expires_at_ms: 1_700_003_600_000,
            call_id: "c1".into(),
            cseq: 7,
            instance: Some("<urn:uuid:1>".into()),
            reg_id: Some(1),
            path: vec!["<sip:edge.example.com;lr>".into()],
            transport: "tcp".into(),
            remote: "192.0.2.1:40000".into(),
            local: "198.51.100.1:5060".into(),
            user_agent: Some("UA/1".into()),
            registered_at_ms: 1_700_000_000_000,
            extra: Some(r#"{"k":1}"#.into()),
            push_state: None,
            node: None,
        };
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0], b1);
        assert_eq!((loaded[1].id.as_str(), loaded[1].q, &loaded[1].push_state), ("b2", None, &None));
        assert_eq!(store.subscribers().unwrap().len(), 1);

        let (tx, rx) = mpsc::channel();
        store.submit(
            vec![Change::PushState { id: "b1".into(), push_state: Some("v1 pnsreg=1".into()) }],
            Box::new(move |r| tx.send(r).unwrap()),
        );
        rx.recv().unwrap().unwrap();
        drop(store);

        let conn = Connection::open(&path).unwrap();
        let v: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let loaded = store.load_bindings().unwrap();
        assert_eq!(loaded[0], StoredBinding { push_state: Some("v1 pnsreg=1".into()), ..b1 });
    }

    /// A file written by the previous release (schema version 2, without
    /// the upstream table) is upgraded in place at open: its bindings load
    /// unchanged (push state included), and upstream registrations can be
    /// written, and read back after a reopen.
    #[test]
    fn version_2_file_upgrades_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            migrations::migrate_with(&mut conn, &path, &migrations::MIGRATIONS[..2]).unwrap();
            conn.execute_batch(
                r#"INSERT INTO bindings (id, aor, contact, q, expires_at_ms, call_id, cseq, instance, reg_id, path,
                                     transport, remote, local, user_agent, registered_at_ms, extra, push_state)
                   VALUES ('b1', 'alice@example.com', '<sip:alice@192.0.2.1:5060;pn-provider=apns>', 500,
                           1700003600000, 'c1', 7, '<urn:uuid:1>', 1, '["<sip:edge.example.com;lr>"]',
                           'tcp', '192.0.2.1:40000', '198.51.100.1:5060', 'UA/1', 1700000000000, '{"k":1}',
                           'v1 pnsreg=1');
                   INSERT INTO subscribers VALUES ('alice', 'example.com', 'md5', 'sha', 1);"#,
            )
            .unwrap();
            let v: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
            assert_eq!(v, 2);
            let upstream: i64 =
                conn.query_row("SELECT count(*) FROM sqlite_master WHERE name = 'upstream'", [], |r| r.get(0)).unwrap();
            assert_eq!(upstream, 0);
        }

        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let b1 = StoredBinding {
            id: "b1".into(),
            aor: "alice@example.com".into(),
            contact: "<sip:alice@192.0.2.1:5060;pn-provider=apns>".into(),
            q: Some(500),
            expires_at_ms: 1_700_003_600_000,
            call_id: "c1".into(),
            cseq: 7,
            instance: Some("<urn:uuid:1>".into()),
            reg_id: Some(1),
            path: vec!["<sip:edge.example.com;lr>".into()],
            transport: "tcp".into(),
            remote: "192.0.2.1:40000".into(),
            local: "198.51.100.1:5060".into(),
            user_agent: Some("UA/1".into()),
            registered_at_ms: 1_700_000_000_000,
            extra: Some(r#"{"k":1}"#.into()),
            push_state: Some("v1 pnsreg=1".into()),
            node: None,
        };
        assert_eq!(store.load_bindings().unwrap(), vec![b1.clone()]);
        assert_eq!(store.subscribers().unwrap().len(), 1);
        assert_eq!(store.load_upstream().unwrap(), vec![]);

        let up = StoredUpstream {
            key: "b1".into(),
            aor: "alice@example.com".into(),
            contact: "<sip:b1@198.51.100.1:5060>".into(),
            expires_at_ms: 1_700_003_600_000,
            call_id: "up-1".into(),
            cseq: 3,
            last_code: 200,
            last_at_ms: 1_700_000_000_500,
        };
        let (tx, rx) = mpsc::channel();
        store.submit(vec![Change::UpsertUpstream(up.clone())], Box::new(move |r| tx.send(r).unwrap()));
        rx.recv().unwrap().unwrap();
        drop(store);

        let conn = Connection::open(&path).unwrap();
        let v: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let index: String = conn
            .query_row("SELECT tbl_name FROM sqlite_master WHERE type = 'index' AND name = 'upstream_aor'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(index, "upstream");
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        assert_eq!(store.load_bindings().unwrap(), vec![b1]);
        assert_eq!(store.load_upstream().unwrap(), vec![up]);
    }
}
