//! Opening the database: creation and migration of a fresh file, reopening,
//! and the refusal of a file written by a newer sipwake.

mod common;

use common::{binding, db_path, open, submit_wait};
use location_store::{Change, Error, SCHEMA_VERSION, SqliteOptions, SqliteStore, Store, StoredBinding};
use rusqlite::Connection;

#[test]
fn fresh_file_is_created_in_wal_mode_and_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let store = open(&path);
    assert!(path.exists());
    assert!(store.load_bindings().unwrap().is_empty());
    assert!(store.subscribers().unwrap().is_empty());

    let conn = Connection::open(&path).unwrap();
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(tables, ["bindings", "meta", "subscribers", "upstream"]);
}

#[test]
fn reopen_keeps_data_and_does_not_migrate_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let b = binding("b1", "alice@example.com", 1);
    {
        let store = open(&path);
        submit_wait(&store, vec![Change::Upsert(b.clone())]).unwrap();
    }
    for _ in 0..2 {
        let store = open(&path);
        assert_eq!(store.load_bindings().unwrap(), vec![b.clone()]);
    }
    // Two stores on one file at once (server and `sipwake user`).
    let a = open(&path);
    let c = SqliteStore::open(&path, SqliteOptions { synchronous_full: true, ..Default::default() }).unwrap();
    assert_eq!(a.load_bindings().unwrap(), c.load_bindings().unwrap());
}

#[test]
fn newer_schema_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    drop(open(&path));
    let newer = SCHEMA_VERSION + 7;
    Connection::open(&path).unwrap().pragma_update(None, "user_version", newer).unwrap();

    let err = SqliteStore::open(&path, SqliteOptions::default()).unwrap_err();
    assert_eq!(err, Error::SchemaTooNew { path: path.clone(), found: newer, known: SCHEMA_VERSION });
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("schema version {newer}")), "{msg}");
    assert!(msg.contains(&format!("up to {SCHEMA_VERSION}")), "{msg}");
    assert!(msg.contains("newer sipwake"), "{msg}");
    // And the file was left alone.
    let version: u32 = Connection::open(&path).unwrap().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, newer);
}

#[test]
fn missing_directory_names_file_and_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sipwake-data").join("sipwake.db");
    let msg = SqliteStore::open(&path, SqliteOptions::default()).unwrap_err().to_string();
    assert!(msg.starts_with(&format!("cannot open database {}", path.display())), "{msg}");
    assert!(msg.contains("does not exist") && msg.contains("server.data_dir"), "{msg}");
}

#[test]
fn close_leaves_an_empty_wal_and_every_row_in_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let wal = path.with_extension("db-wal");
    let store = open(&path);
    for g in 0..20 {
        let changes = (0..100).map(|i| Change::Upsert(binding(&format!("b{g}-{i}"), "a@example.com", 1))).collect();
        submit_wait(&store, changes).unwrap();
    }
    assert!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 0, "nothing in the WAL to begin with");
    store.close();
    assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0, "the WAL is not empty after close");
    // Still usable after close, and the rows are all there.
    assert_eq!(store.load_bindings().unwrap().len(), 2000);
    drop(store);
    assert_eq!(open(&path).load_bindings().unwrap().len(), 2000);
}

#[test]
fn count_bindings_counts_all_rows_and_those_with_a_push_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(dir.path()));
    assert_eq!(store.count_bindings().unwrap(), Some((0, 0)));
    let mut changes: Vec<Change> = (0..5)
        .map(|i| Change::Upsert(StoredBinding { push_state: None, ..binding(&format!("p{i}"), "a@example.com", 1) }))
        .collect();
    for i in 0..3 {
        let mut b = binding(&format!("q{i}"), "b@example.com", 1);
        b.push_state = Some("v1 pnsreg=0".into());
        changes.push(Change::Upsert(b));
    }
    submit_wait(&store, changes).unwrap();
    assert_eq!(store.count_bindings().unwrap(), Some((8, 3)));
}
