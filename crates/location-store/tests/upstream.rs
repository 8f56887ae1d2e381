//! Upstream registrations (mid-registrar mode): upsert, replace and remove
//! are applied in order and `load_upstream` returns exactly what was
//! committed; they share the group-commit transaction with binding
//! changes (a mixed batch commits or fails as a whole); they survive
//! reopening the file; a damaged row is skipped, not fatal.

mod common;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use common::{binding, db_path, hold_writer, open, submit_wait, upstream};
use location_store::{Change, Error, SqliteOptions, SqliteStore, Store, StoredUpstream};
use rusqlite::Connection;

fn sorted(mut v: Vec<StoredUpstream>) -> Vec<StoredUpstream> {
    v.sort_by(|a, b| (&a.aor, &a.key).cmp(&(&b.aor, &b.key)));
    v
}

#[test]
fn upsert_replace_remove_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let store = open(&path);
    assert!(store.load_upstream().unwrap().is_empty());
    // A model of what the table must hold, updated alongside.
    let mut model: BTreeMap<String, StoredUpstream> = BTreeMap::new();

    let batch1: Vec<StoredUpstream> = (0..4)
        .map(|i| upstream(&format!("a{i}"), "alice@example.com", i))
        .chain((0..3).map(|i| upstream(&format!("b{i}"), "bob@example.com", i)))
        // AoR mode: one row keyed by the AoR.
        .chain([upstream("aor:carol@example.com", "carol@example.com", 1)])
        .collect();
    for u in &batch1 {
        model.insert(u.key.clone(), u.clone());
    }
    submit_wait(&store, batch1.into_iter().map(Change::UpsertUpstream).collect()).unwrap();
    assert_eq!(store.load_upstream().unwrap(), sorted(model.values().cloned().collect()));

    // Within one batch, later changes to the same key win; replace every
    // field (also the AoR); remove and re-insert; remove what does not
    // exist; extreme but storable values.
    let mut a1 = upstream("a1", "alice@example.com", 41);
    a1.contact = "<sip:a1@203.0.113.9:5070>".into();
    let a1_last = upstream("a1", "alice@example.com", 42);
    let mut moved = upstream("b1", "dave@example.com", 7);
    moved.contact = "<sip:moved@203.0.113.10>".into();
    moved.call_id = "other-call-id".into();
    moved.last_code = 503;
    moved.last_at_ms = 1_700_000_123_456;
    let b2_again = upstream("b2", "bob@example.com", 9);
    let extreme = StoredUpstream {
        key: "x".into(),
        aor: "x@example.com".into(),
        contact: String::new(),
        expires_at_ms: i64::MAX as u64,
        call_id: String::new(),
        cseq: u32::MAX,
        last_code: u16::MAX,
        last_at_ms: i64::MAX as u64,
    };
    let changes = vec![
        Change::UpsertUpstream(a1),
        Change::UpsertUpstream(a1_last.clone()),
        Change::UpsertUpstream(moved.clone()),
        Change::RemoveUpstream { key: "b2".into() },
        Change::UpsertUpstream(b2_again.clone()),
        Change::RemoveUpstream { key: "a3".into() },
        Change::RemoveUpstream { key: "no-such-key".into() },
        Change::UpsertUpstream(extreme.clone()),
    ];
    submit_wait(&store, changes).unwrap();
    model.insert("a1".into(), a1_last);
    model.insert("b1".into(), moved);
    model.insert("b2".into(), b2_again);
    model.remove("a3");
    model.insert("x".into(), extreme);
    let want = sorted(model.values().cloned().collect());
    assert_eq!(store.load_upstream().unwrap(), want);

    // Across batches submitted back to back (likely one group): order holds.
    for cseq in 100..110 {
        store.submit(vec![Change::UpsertUpstream(upstream("a0", "alice@example.com", cseq))], Box::new(|r| r.unwrap()));
    }
    store.submit(vec![Change::RemoveUpstream { key: "b0".into() }], Box::new(|r| r.unwrap()));
    store.flush();
    model.insert("a0".into(), upstream("a0", "alice@example.com", 109));
    model.remove("b0");
    let want = sorted(model.values().cloned().collect());
    assert_eq!(store.load_upstream().unwrap(), want);

    // Removing everything leaves an empty table; bindings were never touched.
    submit_wait(&store, model.keys().map(|key| Change::RemoveUpstream { key: key.clone() }).collect()).unwrap();
    assert!(store.load_upstream().unwrap().is_empty());
    assert!(store.load_bindings().unwrap().is_empty());
}

#[test]
fn rows_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let rows: Vec<StoredUpstream> = (0..50).map(|i| upstream(&format!("k{i:02}"), "alice@example.com", i)).collect();
    {
        let store = open(&path);
        submit_wait(&store, rows.iter().cloned().map(Change::UpsertUpstream).collect()).unwrap();
        submit_wait(&store, vec![Change::RemoveUpstream { key: "k07".into() }]).unwrap();
    }
    let want: Vec<StoredUpstream> = rows.into_iter().filter(|u| u.key != "k07").collect();
    for _ in 0..2 {
        assert_eq!(open(&path).load_upstream().unwrap(), want);
    }
    // Also seen by a second store open on the same file at once.
    let a = open(&path);
    let b = SqliteStore::open(&path, SqliteOptions { synchronous_full: true, ..Default::default() }).unwrap();
    submit_wait(&b, vec![Change::RemoveUpstream { key: "k00".into() }]).unwrap();
    assert_eq!(a.load_upstream().unwrap(), want[1..]);
}

/// The mid-registrar writes a binding and its upstream registration in one
/// batch: they share one transaction with each other and with the rest of
/// the group, in submission order.
#[test]
fn upstream_and_binding_changes_commit_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let store = open(&path);

    // Hold the writer so that the batches below form one group.
    let gate = hold_writer(&store);
    let (tx, rx) = mpsc::channel();
    let batches = vec![
        vec![
            Change::Upsert(binding("b1", "alice@example.com", 1)),
            Change::UpsertUpstream(upstream("b1", "alice@example.com", 1)),
        ],
        vec![Change::UpsertUpstream(upstream("b2", "alice@example.com", 2))],
        // Order across kinds within a batch, and across batches of a group.
        vec![
            Change::RemoveUpstream { key: "b2".into() },
            Change::Upsert(binding("b2", "alice@example.com", 3)),
            Change::UpsertUpstream(upstream("b2", "alice@example.com", 3)),
            Change::UpsertUpstream(upstream("b1", "alice@example.com", 4)),
        ],
    ];
    for (n, changes) in batches.into_iter().enumerate() {
        let tx = tx.clone();
        store.submit(changes, Box::new(move |r| tx.send((n, r)).unwrap()));
    }
    drop(gate);
    let results: Vec<_> = (0..3).map(|_| rx.recv().unwrap()).collect();
    assert_eq!(results, [(0, Ok(())), (1, Ok(())), (2, Ok(()))]);
    let stats = store.stats();
    assert_eq!((stats.commits, stats.changes_committed), (1, 7), "one transaction for all of it: {stats:?}");
    assert_eq!(
        store.load_upstream().unwrap(),
        [upstream("b1", "alice@example.com", 4), upstream("b2", "alice@example.com", 3)]
    );
    assert_eq!(
        store.load_bindings().unwrap(),
        [binding("b1", "alice@example.com", 1), binding("b2", "alice@example.com", 3)]
    );

    // Removing a binding, or its whole AoR, leaves the upstream rows alone:
    // the mid-registrar removes them itself, in the same batch.
    submit_wait(&store, vec![Change::RemoveAor { aor: "alice@example.com".into() }]).unwrap();
    assert!(store.load_bindings().unwrap().is_empty());
    assert_eq!(store.load_upstream().unwrap().len(), 2);
    submit_wait(
        &store,
        vec![
            Change::Upsert(binding("b3", "alice@example.com", 5)),
            Change::Remove { id: "b3".into() },
            Change::RemoveUpstream { key: "b1".into() },
        ],
    )
    .unwrap();
    assert!(store.load_bindings().unwrap().is_empty());
    assert_eq!(store.load_upstream().unwrap(), [upstream("b2", "alice@example.com", 3)]);
}

#[test]
fn unstorable_upstream_value_fails_its_whole_batch_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(dir.path()));
    let (tx, rx) = mpsc::channel();
    let gate = hold_writer(&store);
    let mut bad_expiry = upstream("bad1", "alice@example.com", 1);
    bad_expiry.expires_at_ms = i64::MAX as u64 + 1;
    let mut bad_answer = upstream("bad2", "bob@example.com", 1);
    bad_answer.last_at_ms = u64::MAX;
    for (n, changes) in [
        vec![Change::UpsertUpstream(upstream("ok1", "alice@example.com", 1))],
        // The binding of a batch with a bad upstream value is not stored either.
        vec![Change::Upsert(binding("b1", "alice@example.com", 1)), Change::UpsertUpstream(bad_expiry)],
        vec![Change::UpsertUpstream(upstream("ok2", "alice@example.com", 2)), Change::UpsertUpstream(bad_answer)],
        vec![Change::UpsertUpstream(upstream("ok3", "alice@example.com", 3))],
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        store.submit(changes, Box::new(move |r| tx.send((n, r)).unwrap()));
    }
    drop(gate);
    let results: Vec<_> = (0..4).map(|_| rx.recv().unwrap()).collect();
    assert_eq!(results[0], (0, Ok(())));
    assert_eq!(results[3], (3, Ok(())));
    for (i, what) in [
        (1, "upstream registration bad1 of alice@example.com: expires_at_ms"),
        (2, "upstream registration bad2 of bob@example.com: last_at_ms"),
    ] {
        let (n, Err(err)) = &results[i] else { panic!("{results:?}") };
        assert_eq!(*n, i);
        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(what) && msg.contains("beyond the largest storable time"), "{msg}");
    }
    let keys: Vec<String> = store.load_upstream().unwrap().into_iter().map(|u| u.key).collect();
    assert_eq!(keys, ["ok1", "ok3"], "the bad batches were not applied at all");
    assert!(store.load_bindings().unwrap().is_empty());
    assert_eq!(store.stats().commits, 1);
}

#[test]
fn failed_commit_fails_binding_and_upstream_changes_alike() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let store =
        SqliteStore::open(&path, SqliteOptions { busy_timeout: Duration::from_millis(50), ..SqliteOptions::default() })
            .unwrap();
    // Another process (say a sqlite3 shell) holds the write lock.
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mixed = vec![
        Change::Upsert(binding("b1", "alice@example.com", 1)),
        Change::UpsertUpstream(upstream("b1", "alice@example.com", 1)),
    ];
    let err = submit_wait(&store, mixed.clone()).unwrap_err();
    assert!(matches!(err, Error::Sqlite { .. }), "{err:?}");
    other.execute_batch("COMMIT").unwrap();
    assert!(store.load_bindings().unwrap().is_empty());
    assert!(store.load_upstream().unwrap().is_empty());

    submit_wait(&store, mixed).unwrap();
    assert_eq!(store.load_bindings().unwrap().len(), 1);
    assert_eq!(store.load_upstream().unwrap(), [upstream("b1", "alice@example.com", 1)]);
}

#[test]
fn damaged_row_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let store = open(&path);
    let good = upstream("good", "alice@example.com", 1);
    submit_wait(&store, vec![Change::UpsertUpstream(good.clone())]).unwrap();
    // Edited by hand: a negative time, and a status code beyond u16.
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "INSERT INTO upstream VALUES ('neg', 'alice@example.com', '<sip:x>', -1, 'c', 1, 200, 0);
             INSERT INTO upstream VALUES ('code', 'alice@example.com', '<sip:y>', 1, 'c', 1, 70000, 0);",
        )
        .unwrap();
    assert_eq!(store.load_upstream().unwrap(), [good]);
}
