//! The SQLite schema and its migrations, applied by the program itself at
//! open: no manual upgrade step.
//!
//! The schema version is `PRAGMA user_version` (transactional, stored in
//! the file header). [`MIGRATIONS`] is an ordered list: entry `i` takes the
//! schema from version `i` to `i + 1`. All pending ones run in one
//! `BEGIN IMMEDIATE` transaction, so two processes opening a fresh file at
//! once (server and `sipwake user`) cannot both migrate, and a failure
//! leaves the file unchanged. A file newer than [`SCHEMA_VERSION`] is
//! refused.
//!
//! Owns the DDL. Rules: never edit a released entry, only append; keep each
//! entry valid for a file at the previous version. Must not touch data rows
//! except to transform them in a migration.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::conn::describe;
use crate::error::{Error, Result};

/// Version 1: bindings, subscribers, and a subscriber generation counter
/// bumped by triggers (so any writer, this crate or a sqlite3 shell, makes
/// [`crate::Store::subscribers_version`] change).
const V1: &str = r#"
CREATE TABLE bindings (
    id               TEXT PRIMARY KEY NOT NULL,
    aor              TEXT NOT NULL,
    contact          TEXT NOT NULL,
    q                INTEGER,
    expires_at_ms    INTEGER NOT NULL,
    call_id          TEXT NOT NULL,
    cseq             INTEGER NOT NULL,
    instance         TEXT,
    reg_id           INTEGER,
    path             TEXT NOT NULL DEFAULT '[]',
    transport        TEXT NOT NULL,
    remote           TEXT NOT NULL,
    local            TEXT NOT NULL,
    user_agent       TEXT,
    registered_at_ms INTEGER NOT NULL,
    extra            TEXT
);
CREATE INDEX bindings_aor ON bindings (aor);

CREATE TABLE subscribers (
    user          TEXT NOT NULL,
    domain        TEXT NOT NULL,
    ha1_md5       TEXT NOT NULL,
    ha1_sha256    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (user, domain)
) WITHOUT ROWID;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('subscribers_generation', 0);

CREATE TRIGGER subscribers_generation_insert AFTER INSERT ON subscribers BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'subscribers_generation';
END;
CREATE TRIGGER subscribers_generation_update AFTER UPDATE ON subscribers BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'subscribers_generation';
END;
CREATE TRIGGER subscribers_generation_delete AFTER DELETE ON subscribers BEGIN
    UPDATE meta SET value = value + 1 WHERE key = 'subscribers_generation';
END;
"#;

/// Version 2: the push state of a binding (RFC 8599 `+sip.pnsreg` and
/// PURRs), an opaque text of the push engine; existing rows get NULL.
const V2: &str = r#"
ALTER TABLE bindings ADD COLUMN push_state TEXT;
"#;

/// Version 3: the upstream registrations of mid-registrar mode (the Contact
/// sipwake registered at the upstream registrar for a binding, or for an
/// AoR), keyed by an opaque key (the binding id, or an AoR key).
const V3: &str = r#"
CREATE TABLE upstream (
    key           TEXT PRIMARY KEY NOT NULL,
    aor           TEXT NOT NULL,
    contact       TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    call_id       TEXT NOT NULL,
    cseq          INTEGER NOT NULL,
    last_code     INTEGER NOT NULL,
    last_at_ms    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX upstream_aor ON upstream (aor);
"#;

/// Version 4: bindings in ONE B-tree keyed by id (`WITHOUT ROWID`), with no
/// index on `aor`. A REGISTER's upsert used to modify three B-trees (the
/// rowid table, the automatic index on `id` and `bindings_aor`), each a
/// 4 KiB page written to the WAL at commit; it now modifies one. The server
/// never looks bindings up or removes them by AoR in the database (it
/// removes each binding by id), and start-up reads them in id order, so the
/// index only served a `RemoveAor` no caller sends (now a table scan).
const V4: &str = r#"
CREATE TABLE bindings_v4 (
    id               TEXT PRIMARY KEY NOT NULL,
    aor              TEXT NOT NULL,
    contact          TEXT NOT NULL,
    q                INTEGER,
    expires_at_ms    INTEGER NOT NULL,
    call_id          TEXT NOT NULL,
    cseq             INTEGER NOT NULL,
    instance         TEXT,
    reg_id           INTEGER,
    path             TEXT NOT NULL DEFAULT '[]',
    transport        TEXT NOT NULL,
    remote           TEXT NOT NULL,
    local            TEXT NOT NULL,
    user_agent       TEXT,
    registered_at_ms INTEGER NOT NULL,
    extra            TEXT,
    push_state       TEXT
) WITHOUT ROWID;
INSERT INTO bindings_v4 (id, aor, contact, q, expires_at_ms, call_id, cseq, instance, reg_id, path, transport,
                         remote, local, user_agent, registered_at_ms, extra, push_state)
    SELECT id, aor, contact, q, expires_at_ms, call_id, cseq, instance, reg_id, path, transport,
           remote, local, user_agent, registered_at_ms, extra, push_state FROM bindings;
DROP TABLE bindings;
ALTER TABLE bindings_v4 RENAME TO bindings;
"#;

/// Every migration, in order; index `i` goes from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The schema version this program writes (the number of migrations).
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Bring the database to [`SCHEMA_VERSION`], or refuse a newer one.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    migrate_with(conn, path, MIGRATIONS)
}

/// [`migrate`] with an explicit list (tests use longer or broken ones).
pub(crate) fn migrate_with(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<()> {
    let known = u32::try_from(migrations.len()).unwrap_or(u32::MAX);
    let open_err = |e: rusqlite::Error| Error::Open { path: path.to_owned(), reason: describe(&e) };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(open_err)?;
    let raw: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(open_err)?;
    let found = u32::try_from(raw).map_err(|_| Error::Open {
        path: path.to_owned(),
        reason: format!("its schema version (user_version) is {raw}: not a sipwake database; move it away"),
    })?;
    if found > known {
        return Err(Error::SchemaTooNew { path: path.to_owned(), found, known });
    }
    if found == known {
        return Ok(()); // dropping `tx` ends the read-only transaction
    }
    for (i, sql) in migrations.iter().enumerate().skip(found as usize) {
        let to = i as u32 + 1;
        tx.execute_batch(sql).map_err(|e| Error::Migrate {
            path: path.to_owned(),
            from: found,
            to,
            reason: describe(&e),
        })?;
    }
    let fail =
        |e: rusqlite::Error| Error::Migrate { path: path.to_owned(), from: found, to: known, reason: describe(&e) };
    tx.pragma_update(None, "user_version", known).map_err(fail)?;
    tx.commit().map_err(fail)?;
    tracing::info!(db = %path.display(), from = found, to = known, "migrated database schema");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
    }

    #[test]
    fn fresh_file_gets_every_migration_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &path).unwrap();
        assert_eq!(user_version(&conn), i64::from(SCHEMA_VERSION));
        migrate(&mut conn, &path).unwrap(); // idempotent
        assert_eq!(user_version(&conn), i64::from(SCHEMA_VERSION));
    }

    #[test]
    fn bindings_move_to_one_btree_keyed_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate_with(&mut conn, &path, &MIGRATIONS[..3]).unwrap();
        conn.execute_batch(
            "INSERT INTO bindings (id, aor, contact, expires_at_ms, call_id, cseq, transport, remote, local,
                                   registered_at_ms, push_state)
             VALUES ('b1', 'sip:a@example.com', 'sip:a@192.0.2.1', 99, 'c1', 7, 'UDP', '192.0.2.1:5060',
                     '192.0.2.2:5060', 1, 'state');",
        )
        .unwrap();
        migrate(&mut conn, &path).unwrap();
        assert_eq!(user_version(&conn), i64::from(SCHEMA_VERSION));
        let (aor, cseq, state): (String, i64, String) = conn
            .query_row("SELECT aor, cseq, push_state FROM bindings WHERE id = 'b1'", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!((aor.as_str(), cseq, state.as_str()), ("sip:a@example.com", 7, "state"));
        // WITHOUT ROWID, and no index left on aor.
        assert!(conn.prepare("SELECT rowid FROM bindings").is_err());
        let indexes: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'bindings'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(indexes, 0, "the primary key is the table itself; no other index");
    }

    #[test]
    fn later_migration_applies_on_top() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &path).unwrap();
        let mut longer = MIGRATIONS.to_vec();
        longer.push("ALTER TABLE bindings ADD COLUMN future TEXT;");
        migrate_with(&mut conn, &path, &longer).unwrap();
        assert_eq!(user_version(&conn), longer.len() as i64);
        conn.execute_batch("SELECT future FROM bindings").unwrap();
    }

    #[test]
    fn failing_migration_leaves_file_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        let broken = [V1, "CREATE TABLE ok_table (x); THIS IS NOT SQL;"];
        let err = migrate_with(&mut conn, &path, &broken).unwrap_err();
        assert!(matches!(err, Error::Migrate { from: 0, to: 2, .. }), "{err:?}");
        assert!(err.to_string().contains("m.db"), "{err}");
        assert_eq!(user_version(&conn), 0);
        let tables: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0)).unwrap();
        assert_eq!(tables, 0, "rolled back");
    }
}
