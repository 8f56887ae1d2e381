//! Opens the configured store (`[store] backend`): the embedded SQLite file
//! in `server.data_dir`, or the shared PostgreSQL database of a cluster.
//! Used by the server and by the `sipwake user` CLI, so both always open
//! the same store.
//!
//! Owns only the choice and the options; what a store does is
//! `location-store`'s.

use crate::config::Config;
use anyhow::Context;
use location_store::{PgOptions, PgStore, SqliteOptions, SqliteStore, Store};
use std::sync::Arc;

/// Whether the configuration asks for the PostgreSQL cluster backend.
pub fn is_postgres(config: &Config) -> bool {
    config.store.backend == crate::cluster_config::StoreBackend::Postgres
}

/// Where the store is, for messages: the SQLite file, or the database URL
/// without its password.
pub fn describe(config: &Config) -> String {
    if is_postgres(config) {
        config.store.url_redacted()
    } else {
        config.data_dir.join("sipwake.db").display().to_string()
    }
}

/// Opens the store; `node_id` names this process in a cluster (its
/// bindings, heartbeats and claims).
pub fn open(config: &Config, node_id: &str) -> anyhow::Result<Arc<dyn Store>> {
    if is_postgres(config) {
        let s = &config.store;
        let opts = PgOptions {
            pool_size: s.pool_size,
            ca_file: s.ca_file.clone(),
            connect_timeout: s.connect_timeout(),
            ..PgOptions::new(s.url.clone(), node_id)
        };
        let store = PgStore::open(opts)
            .with_context(|| format!("cannot open the PostgreSQL store {} ({})", s.url_redacted(), s.url_key()))?;
        return Ok(Arc::new(store));
    }
    crate::data_dir::create(&config.data_dir)?;
    let path = config.data_dir.join("sipwake.db");
    let opts = SqliteOptions { synchronous_full: config.store.synchronous == "full", ..SqliteOptions::default() };
    let store = SqliteStore::open(&path, opts).with_context(|| format!("cannot open the store {}", path.display()))?;
    Ok(Arc::new(store))
}
