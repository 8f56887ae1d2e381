//! `location-store`: the durable storage of the sipwake registrar — the
//! bindings of the location service, the upstream registrations of
//! mid-registrar mode (which Contact sipwake registered at the upstream
//! registrar for each binding or AoR) and the subscribers (digest
//! credentials) — with SQLite in WAL mode as the embedded default backend,
//! and PostgreSQL as the backend several sipwake nodes share.
//!
//! The registrar converts its SIP types to the plain data of [`types`]
//! ([`StoredBinding`], [`StoredUpstream`], [`Change`], [`Subscriber`]) and
//! talks to a [`Store`] trait object. This crate parses no SIP and starts no
//! async runtime of its own (the PostgreSQL driver runs a small one inside
//! each connection): the server calls it from OS threads on its hot path.
//!
//! A shared backend also implements [`Cluster`] ([`Store::cluster`]): a
//! feed of the bindings other nodes commit ([`FeedEvent`]), sync tokens,
//! heartbeats ([`Member`]), refresh claims with exactly one winner, and
//! secrets common to every node.
//!
//! Writing bindings never blocks the caller: [`Store::submit`] queues a batch
//! and returns; a writer thread applies whatever is queued in one
//! transaction (group commit) and then calls every batch's `done` in
//! submission order. A registrar answers the REGISTER from `done`, so a 200
//! OK is only sent once the binding is durable, and at high rates thousands
//! of REGISTERs share one commit. Upstream registrations
//! ([`Change::UpsertUpstream`], [`Change::RemoveUpstream`]) take the same
//! path, so a batch that changes a binding and its upstream registration
//! is durable as a whole or not at all; [`Store::load_upstream`] reads them
//! back at start-up.
//!
//! ```
//! use location_store::{Change, SqliteOptions, SqliteStore, Store, StoredBinding};
//! use std::sync::mpsc;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = SqliteStore::open(&dir.path().join("sipwake.db"), SqliteOptions::default()).unwrap();
//! let binding = StoredBinding {
//!     id: "b1".into(),
//!     aor: "alice@example.com".into(),
//!     contact: "<sip:alice@192.0.2.1:5060>".into(),
//!     q: None,
//!     expires_at_ms: 1_700_003_600_000,
//!     call_id: "c1".into(),
//!     cseq: 1,
//!     instance: None,
//!     reg_id: None,
//!     path: vec![],
//!     transport: "udp".into(),
//!     remote: "192.0.2.1:5060".into(),
//!     local: "198.51.100.1:5060".into(),
//!     user_agent: None,
//!     registered_at_ms: 1_700_000_000_000,
//!     extra: None,
//!     push_state: None,
//!     node: None,
//! };
//! let (tx, rx) = mpsc::channel();
//! store.submit(vec![Change::Upsert(binding.clone())], Box::new(move |r| tx.send(r).unwrap()));
//! rx.recv().unwrap().unwrap(); // durable now: answer 200 OK
//! assert_eq!(store.load_bindings().unwrap(), vec![binding]);
//! ```
//!
//! Modules: [`types`] (the data), [`store`] (the [`Store`] trait, [`Done`],
//! [`StoreStats`], [`Health`]), [`cluster`] (the [`Cluster`] trait,
//! [`FeedEvent`], [`Member`]), [`error`] ([`Error`]), `queue` (the batch
//! queue's jobs, counters and completion, shared by the writers),
//! [`sqlite`] ([`SqliteStore`]: its connections, migrations, row encoding
//! and writer thread), [`postgres`] ([`PgStore`], [`PgOptions`]: URL and
//! TLS, migrations, rows, the writer with group commit and notifications,
//! the reader pool, the change feed and the cluster statements).

pub mod cluster;
pub mod error;
pub mod postgres;
mod queue;
pub mod sqlite;
pub mod store;
pub mod types;

pub use cluster::{Cluster, FeedEvent, Member};
pub use error::{Error, Result};
pub use postgres::{PG_SCHEMA_VERSION, PgOptions, PgStore};
pub use sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore};
pub use store::{Done, Health, Store, StoreStats};
pub use types::{Change, StoredBinding, StoredUpstream, Subscriber};
