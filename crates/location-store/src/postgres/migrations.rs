//! The PostgreSQL schema and its migrations, applied by sipwake itself when
//! a store opens: no manual upgrade step.
//!
//! The schema version is the single row of `sipwake_schema`. All pending
//! migrations run in one transaction that first takes
//! `pg_advisory_xact_lock(`[`MIGRATION_LOCK`]`)`, so several nodes starting
//! together migrate once (the others wait, then find the schema current),
//! and a failure leaves the database unchanged. A database newer than
//! [`PG_SCHEMA_VERSION`] is refused with [`Error::SchemaTooNew`].
//!
//! Owns the DDL. Rules: never edit a released entry, only append; keep each
//! entry valid for a database at the previous version. Must not touch data
//! rows except to transform them in a migration.

use std::path::PathBuf;

use postgres::Client;

use super::conn::{Target, describe, is_connection_error};
use crate::error::{Error, Result};

/// The key of the advisory lock that serializes migrations ("sipwake" in
/// ASCII).
pub(crate) const MIGRATION_LOCK: i64 = 0x0073_6970_7761_6b65;

/// Version 1: every table of the cluster backend.
///
/// * `bindings`, `upstream`: as in SQLite, plus `bindings.node` (the node
///   that committed the binding).
/// * `subscribers` (`username`, since `user` is reserved) with `meta`'s
///   `subscribers_generation` counter, bumped by a trigger on every changed
///   row (so psql edits count too), which also notifies
///   `sipwake_subscribers`.
/// * `cluster_nodes` (heartbeats), `refresh_claims` (one winner per binding,
///   generation and attempt), `secrets` (shared random keys).
const V1: &str = r#"
CREATE TABLE bindings (
    id               text PRIMARY KEY,
    aor              text NOT NULL,
    contact          text NOT NULL,
    q                integer,
    expires_at_ms    bigint NOT NULL,
    call_id          text NOT NULL,
    cseq             bigint NOT NULL,
    instance         text,
    reg_id           bigint,
    path             text NOT NULL DEFAULT '[]',
    transport        text NOT NULL,
    remote           text NOT NULL,
    local            text NOT NULL,
    user_agent       text,
    registered_at_ms bigint NOT NULL,
    extra            text,
    push_state       text,
    node             text
);
CREATE INDEX bindings_aor ON bindings (aor);

CREATE TABLE upstream (
    key           text PRIMARY KEY,
    aor           text NOT NULL,
    contact       text NOT NULL,
    expires_at_ms bigint NOT NULL,
    call_id       text NOT NULL,
    cseq          bigint NOT NULL,
    last_code     integer NOT NULL,
    last_at_ms    bigint NOT NULL
);
CREATE INDEX upstream_aor ON upstream (aor);

CREATE TABLE subscribers (
    username      text NOT NULL,
    domain        text NOT NULL,
    ha1_md5       text NOT NULL,
    ha1_sha256    text NOT NULL,
    created_at_ms bigint NOT NULL,
    PRIMARY KEY (username, domain)
);

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO meta (key, value) VALUES ('subscribers_generation', 0);

CREATE FUNCTION sipwake_subscribers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'subscribers_generation';
    PERFORM pg_notify('sipwake_subscribers', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER subscribers_changed_rows AFTER INSERT OR UPDATE OR DELETE ON subscribers
    FOR EACH ROW EXECUTE FUNCTION sipwake_subscribers_changed();
CREATE TRIGGER subscribers_changed_truncate AFTER TRUNCATE ON subscribers
    FOR EACH STATEMENT EXECUTE FUNCTION sipwake_subscribers_changed();

CREATE TABLE cluster_nodes (
    id       text PRIMARY KEY,
    sip_addr text NOT NULL,
    seen_at  timestamptz NOT NULL
);

CREATE TABLE refresh_claims (
    binding_id text PRIMARY KEY,
    generation bigint NOT NULL,
    attempt    bigint NOT NULL,
    node       text NOT NULL,
    claimed_at timestamptz NOT NULL
);

CREATE TABLE secrets (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);
"#;

/// Every migration, in order; index `i` goes from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[V1];

/// The schema version of the PostgreSQL backend this program writes.
pub const PG_SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Bring the database to [`PG_SCHEMA_VERSION`], or refuse a newer one.
pub(crate) fn migrate(client: &mut Client, target: &Target) -> Result<()> {
    migrate_with(client, target, MIGRATIONS)
}

/// [`migrate`] with an explicit list (tests use longer ones).
pub(crate) fn migrate_with(client: &mut Client, target: &Target, migrations: &[&str]) -> Result<()> {
    let known = u32::try_from(migrations.len()).unwrap_or(u32::MAX);
    let name = &target.name;
    let open_err = |e: postgres::Error| {
        if is_connection_error(&e) {
            Error::Unavailable { what: name.clone(), reason: describe(&e) }
        } else {
            Error::Open { path: PathBuf::from(name), reason: format!("reading the schema version: {}", describe(&e)) }
        }
    };
    let mut tx = client.transaction().map_err(open_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(open_err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS sipwake_schema (id integer PRIMARY KEY CHECK (id = 1), version integer NOT NULL);
         INSERT INTO sipwake_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;",
    )
    .map_err(open_err)?;
    let raw: i32 = tx.query_one("SELECT version FROM sipwake_schema WHERE id = 1", &[]).map_err(open_err)?.get(0);
    let found = u32::try_from(raw).map_err(|_| Error::Open {
        path: PathBuf::from(name),
        reason: format!("its schema version (sipwake_schema) is {raw}: not a sipwake database; use another database"),
    })?;
    if found > known {
        return Err(Error::SchemaTooNew { path: PathBuf::from(name), found, known });
    }
    if found == known {
        return tx.commit().map_err(open_err);
    }
    for (i, sql) in migrations.iter().enumerate().skip(found as usize) {
        let to = i as u32 + 1;
        tx.batch_execute(sql).map_err(|e| Error::Migrate {
            path: PathBuf::from(name),
            from: found,
            to,
            reason: describe(&e),
        })?;
    }
    let fail =
        |e: postgres::Error| Error::Migrate { path: PathBuf::from(name), from: found, to: known, reason: describe(&e) };
    let version = i32::try_from(known).unwrap_or(i32::MAX);
    tx.execute("UPDATE sipwake_schema SET version = $1 WHERE id = 1", &[&version]).map_err(fail)?;
    tx.commit().map_err(fail)?;
    tracing::info!(db = %name, from = found, to = known, "migrated database schema");
    Ok(())
}
