//! The PostgreSQL backend: [`PgStore`] and [`PgOptions`], a [`Store`] that
//! several sipwake nodes share, and the [`Cluster`] they cooperate through.
//!
//! Connections (each a synchronous `postgres` client with its own small
//! runtime):
//! * the writer's (`writer.rs`), which applies submitted changes with
//!   group commit, one transaction per group (`apply.rs`), and announces
//!   the changed bindings with `pg_notify`;
//! * the readers' (`pool.rs`, [`PgOptions::pool_size`] of them), for
//!   start-up loads, subscribers and the cluster calls (`cluster.rs`);
//! * the feed's (`feed.rs`), once [`Cluster::follow`] is called.
//!
//! Opening connects, migrates the schema (`migrations.rs`) and starts the
//! writer. The URL, TLS and the wording of errors are `conn.rs`'s; rows are
//! `rows.rs`'s. Every message names the database by its URL without the
//! password.
//!
//! Owns the store handle and its lifecycle (dropping it stops the feed,
//! finishes the queued work, joins the writer and closes the readers). Must
//! not contain SQL of the tables or connection settings.

mod apply;
mod cluster;
mod conn;
mod feed;
mod migrations;
mod pool;
mod rows;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SendError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

pub use migrations::PG_SCHEMA_VERSION;

use crate::cluster::{Cluster, FeedEvent, Member};
use crate::error::{Error, Result};
use crate::queue::{Counters, Job};
use crate::store::{Done, Health, Store, StoreStats};
use crate::types::{Change, StoredBinding, StoredUpstream, Subscriber};
use conn::{Target, blocking};
use pool::{OpError, Pool};

/// The longest node id (it is part of a channel name, at most 63 bytes).
const MAX_NODE_ID: usize = 50;

/// Settings of a [`PgStore`].
///
/// `Debug` shows the URL without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// libpq-style URL, e.g.
    /// `postgres://sipwake:secret@db.example.com:5432/sipwake?sslmode=require`
    /// (the `key=value` form works too). `sslmode`: `disable` or `prefer`
    /// (the default) connect in plain text — `prefer` never tries TLS here;
    /// `require`, `verify-ca` and `verify-full` require TLS and verify the
    /// server's certificate and name against the system roots or
    /// [`PgOptions::ca_file`] (so `require` is stricter than libpq's).
    pub url: String,
    /// Reader connections (default 4; at least 1).
    pub pool_size: usize,
    /// PEM file of the CA certificates to trust instead of the system roots
    /// (also settable as `sslrootcert` in the URL).
    pub ca_file: Option<PathBuf>,
    /// This node's id, unique in the cluster: 1 to 50 of `A-Z a-z 0-9 _ -`.
    pub node_id: String,
    /// How long establishing one connection may take (default 5 s).
    pub connect_timeout: Duration,
    /// The most batches one group commit takes off the queue (0 counts as
    /// 1). Default 1000.
    pub max_group_batches: usize,
}

impl PgOptions {
    /// Options with the defaults for everything but the URL and node id.
    pub fn new(url: impl Into<String>, node_id: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 4,
            ca_file: None,
            node_id: node_id.into(),
            connect_timeout: Duration::from_secs(5),
            max_group_batches: 1000,
        }
    }
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &conn::redact(&self.url))
            .field("pool_size", &self.pool_size)
            .field("ca_file", &self.ca_file)
            .field("node_id", &self.node_id)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_group_batches", &self.max_group_batches)
            .finish()
    }
}

/// The PostgreSQL [`Store`] (and [`Cluster`]). Cheap to share behind an
/// `Arc`; every method may be called from any thread (those that talk to the
/// database move off an async runtime's thread by themselves).
///
/// Dropping it stops the feed, stops accepting work, finishes what is
/// queued (every `done` is called) and joins the writer thread.
pub struct PgStore {
    name: String,
    node: String,
    target: Target,
    queue: Option<Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    writer_id: ThreadId,
    pool: Pool,
    counters: Arc<Counters>,
    health: writer::SharedHealth,
    feed: Mutex<FeedSlot>,
}

/// The feed: not started, running, or stopped by the drop.
enum FeedSlot {
    Idle,
    Running(feed::Feed),
}

impl PgStore {
    /// Connect, migrate the schema (or refuse a newer one with
    /// [`Error::SchemaTooNew`]) and start the writer thread.
    ///
    /// Fails with [`Error::Unavailable`] when the server cannot be reached,
    /// [`Error::Open`] when it refuses us (authentication, missing
    /// database, TLS) or the options are wrong, and [`Error::Invalid`] for
    /// a malformed node id.
    pub fn open(opts: PgOptions) -> Result<Self> {
        check_node_id(&opts.node_id)?;
        let target = Target::new(&opts)?;
        blocking(move || {
            let mut write_client = target.connect()?;
            migrations::migrate(&mut write_client, &target)?;
            let reader = target.connect()?;
            let counters = Arc::new(Counters::default());
            let health = Arc::new(Mutex::new(Health { ok: true, detail: format!("postgres {}", target.name) }));
            let (queue, writer) = writer::spawn(
                write_client,
                target.clone(),
                opts.node_id.clone(),
                opts.max_group_batches,
                counters.clone(),
                health.clone(),
            )?;
            tracing::debug!(db = %target.name, node = %opts.node_id, "location store open");
            Ok(Self {
                name: target.name.clone(),
                node: opts.node_id,
                pool: Pool::new(target.clone(), opts.pool_size, Some(reader)),
                target,
                queue: Some(queue),
                writer_id: writer.thread().id(),
                writer: Some(writer),
                counters,
                health,
                feed: Mutex::new(FeedSlot::Idle),
            })
        })
    }

    /// The database, as messages name it (URL without password).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counters of the write path (same as [`Store::stats`]).
    pub fn stats(&self) -> StoreStats {
        self.counters.snapshot()
    }

    fn corrupt(&self, op: &str, what: String, reason: String) -> OpError {
        OpError::Store(Error::Postgres {
            db: self.name.clone(),
            op: op.to_owned(),
            reason: format!("{what} is corrupt: {reason}; fix or delete that row with psql"),
        })
    }
}

/// Node ids go into channel names and quoted identifiers.
fn check_node_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_NODE_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            what: format!("node id {id:?}"),
            reason: format!("use 1 to {MAX_NODE_ID} of the characters A-Z a-z 0-9 _ -"),
        })
    }
}

impl Store for PgStore {
    fn load_bindings(&self) -> Result<Vec<StoredBinding>> {
        self.pool.run("loading the bindings", |c| {
            Ok(rows::bindings_from_rows(&c.query(rows::SELECT_BINDINGS, &[])?, &self.name))
        })
    }

    fn load_upstream(&self) -> Result<Vec<StoredUpstream>> {
        self.pool.run("loading the upstream registrations", |c| {
            let mut out = Vec::new();
            for row in c.query(rows::SELECT_UPSTREAM, &[])? {
                match rows::upstream_from_row(&row) {
                    Ok(u) => out.push(u),
                    // Soft state, like the bindings.
                    Err((key, reason)) => tracing::warn!(
                        db = %self.name,
                        upstream = %key,
                        %reason,
                        "skipping a damaged upstream registration row; delete it with psql"
                    ),
                }
            }
            Ok(out)
        })
    }

    fn submit(&self, changes: Vec<Change>, done: Done) {
        self.counters.batches_submitted.fetch_add(1, Ordering::Relaxed);
        let job = Job { changes, done };
        let rejected = match &self.queue {
            Some(queue) => match queue.send(job) {
                Ok(()) => return,
                Err(SendError(job)) => job,
            },
            None => job,
        };
        self.counters.batches_done.fetch_add(1, Ordering::Relaxed);
        (rejected.done)(Err(Error::WriterStopped { path: PathBuf::from(&self.name) }));
    }

    fn subscribers(&self) -> Result<Vec<Subscriber>> {
        let op = "loading the subscribers";
        self.pool.run(op, |c| {
            c.query(rows::SELECT_SUBSCRIBERS, &[])?
                .iter()
                .map(|row| rows::subscriber_from_row(row).map_err(|(what, reason)| self.corrupt(op, what, reason)))
                .collect()
        })
    }

    fn get_subscriber(&self, user: &str, domain: &str) -> Result<Option<Subscriber>> {
        let op = format!("reading subscriber {user}@{domain}");
        self.pool.run(&op, |c| match c.query_opt(rows::GET_SUBSCRIBER, &[&user, &domain])? {
            Some(row) => {
                rows::subscriber_from_row(&row).map(Some).map_err(|(what, reason)| self.corrupt(&op, what, reason))
            }
            None => Ok(None),
        })
    }

    fn put_subscriber(&self, s: &Subscriber) -> Result<()> {
        self.put_subscribers(std::slice::from_ref(s))
    }

    fn put_subscribers(&self, list: &[Subscriber]) -> Result<()> {
        let created: Vec<i64> = list.iter().map(rows::subscriber_created).collect::<Result<_>>()?;
        let op = match list {
            [s] => format!("saving subscriber {}@{}", s.user, s.domain),
            _ => format!("saving {} subscribers", list.len()),
        };
        self.pool.run(&op, |c| {
            let mut tx = c.transaction()?;
            let st = tx.prepare(rows::PUT_SUBSCRIBER)?;
            for (s, created) in list.iter().zip(&created) {
                tx.execute(&st, &[&s.user, &s.domain, &s.ha1_md5, &s.ha1_sha256, created])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn delete_subscriber(&self, user: &str, domain: &str) -> Result<bool> {
        self.pool.run(&format!("deleting subscriber {user}@{domain}"), |c| {
            Ok(c.execute(rows::DELETE_SUBSCRIBER, &[&user, &domain])? > 0)
        })
    }

    /// The `meta` counter bumped by a trigger on every changed subscriber
    /// row (whoever changed it). One round trip.
    fn subscribers_version(&self) -> Result<u64> {
        let op = "reading the subscribers version";
        self.pool.run(op, |c| {
            let raw: i64 = match c.query_opt(rows::SUBSCRIBERS_GENERATION, &[])? {
                Some(row) => row.try_get(0)?,
                None => {
                    return Err(self.corrupt(op, "meta row subscribers_generation".into(), "it is missing".into()));
                }
            };
            u64::try_from(raw).map_err(|_| {
                self.corrupt(op, "meta row subscribers_generation".into(), format!("negative value {raw}"))
            })
        })
    }

    fn flush(&self) {
        if thread::current().id() == self.writer_id {
            tracing::error!(db = %self.name, "flush() called from a done callback would wait for itself; ignored");
            return;
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(
            Vec::new(),
            Box::new(move |_| {
                let _ = tx.send(());
            }),
        );
        // An error means the callback was dropped uncalled (writer gone).
        let _ = rx.recv();
    }

    fn stats(&self) -> StoreStats {
        self.counters.snapshot()
    }

    fn health(&self) -> Health {
        self.health.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn cluster(&self) -> Option<&dyn Cluster> {
        Some(self)
    }
}

impl Cluster for PgStore {
    fn node_id(&self) -> &str {
        &self.node
    }

    fn follow(&self, sink: Box<dyn FnMut(FeedEvent) + Send>) -> Result<()> {
        let mut slot = self.feed.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*slot, FeedSlot::Running(_)) {
            return Err(Error::Invalid {
                what: format!("the change feed of node {}", self.node),
                reason: "it is already started; call follow once per store".to_owned(),
            });
        }
        let target = self.target.clone();
        let node = self.node.clone();
        let feed = blocking(move || feed::start(target, node, sink))?;
        *slot = FeedSlot::Running(feed);
        Ok(())
    }

    fn sync(&self, token: u64) -> Result<()> {
        cluster::sync(&self.pool, &self.node, token)
    }

    fn heartbeat(&self, sip_addr: &str, live_within: Duration) -> Result<Vec<Member>> {
        cluster::heartbeat(&self.pool, &self.node, sip_addr, live_within)
    }

    fn claim_refresh(&self, binding: &str, generation: u64, attempt: u32) -> Result<bool> {
        cluster::claim_refresh(&self.pool, &self.node, binding, generation, attempt)
    }

    fn shared_secret(&self, name: &str) -> Result<[u8; 32]> {
        cluster::shared_secret(&self.pool, name)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        let feed = {
            let mut slot = self.feed.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *slot, FeedSlot::Idle)
        };
        if let FeedSlot::Running(feed) = feed {
            let own = thread::current().id() == feed.thread_id();
            feed.stop();
            if own {
                tracing::debug!(db = %self.name, "store dropped from its feed's sink");
            }
        }
        drop(self.queue.take()); // the writer finishes the queue, then ends
        if let Some(writer) = self.writer.take()
            && thread::current().id() != self.writer_id
            && writer.join().is_err()
        {
            tracing::error!(db = %self.name, "the location-store writer thread panicked");
        }
        self.pool.close();
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("db", &self.name)
            .field("node", &self.node)
            .field("stats", &self.stats())
            .finish()
    }
}
