//! Binding changes: upsert, remove and remove-aor are applied in order and
//! `load_bindings` returns exactly what was committed; failures are
//! confined (a bad value fails its own batch, a failed commit fails its
//! group and the writer goes on); callbacks may panic; dropping the store
//! finishes the queue.

mod common;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use common::{binding, db_path, hold_writer, open, submit_wait};
use location_store::{Change, Error, SqliteOptions, SqliteStore, Store, StoredBinding};
use rusqlite::Connection;

fn sorted(mut v: Vec<StoredBinding>) -> Vec<StoredBinding> {
    v.sort_by(|a, b| (&a.aor, &a.id).cmp(&(&b.aor, &b.id)));
    v
}

#[test]
fn load_returns_exactly_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let store = open(&path);
    // A model of what the table must hold, updated alongside.
    let mut model: BTreeMap<String, StoredBinding> = BTreeMap::new();

    let batch1: Vec<StoredBinding> = (0..6)
        .map(|i| binding(&format!("a{i}"), "alice@example.com", i))
        .chain((0..4).map(|i| binding(&format!("b{i}"), "bob@example.com", i)))
        .chain((0..3).map(|i| binding(&format!("c{i}"), "carol@example.com", i)))
        .collect();
    for b in &batch1 {
        model.insert(b.id.clone(), b.clone());
    }
    submit_wait(&store, batch1.into_iter().map(Change::Upsert).collect()).unwrap();
    assert_eq!(store.load_bindings().unwrap(), sorted(model.values().cloned().collect()));

    // Within one batch, later changes to the same id win; remove and
    // re-insert; remove a whole AoR; remove something that does not exist.
    let mut a1 = binding("a1", "alice@example.com", 41);
    a1.contact = "<sip:a1@203.0.113.9:5070;transport=tcp>".into();
    let a1_last = binding("a1", "alice@example.com", 42);
    let b0_again = binding("b0", "bob@example.com", 7);
    let changes = vec![
        Change::Upsert(a1),
        Change::Upsert(a1_last.clone()),
        Change::Remove { id: "a2".into() },
        Change::Remove { id: "b0".into() },
        Change::RemoveAor { aor: "bob@example.com".into() },
        Change::Upsert(b0_again.clone()),
        Change::Remove { id: "no-such-binding".into() },
        Change::RemoveAor { aor: "nobody@example.com".into() },
        Change::Remove { id: "c2".into() },
    ];
    submit_wait(&store, changes).unwrap();
    model.insert("a1".into(), a1_last);
    model.remove("a2");
    model.retain(|_, b| b.aor != "bob@example.com");
    model.insert("b0".into(), b0_again);
    model.remove("c2");
    let want = sorted(model.values().cloned().collect());
    assert_eq!(store.load_bindings().unwrap(), want);

    // Across batches submitted back to back (likely one group): order holds.
    for cseq in 100..110 {
        store.submit(vec![Change::Upsert(binding("c0", "carol@example.com", cseq))], Box::new(|r| r.unwrap()));
    }
    store.submit(vec![Change::Remove { id: "c1".into() }], Box::new(|r| r.unwrap()));
    store.flush();
    model.insert("c0".into(), binding("c0", "carol@example.com", 109));
    model.remove("c1");
    let want = sorted(model.values().cloned().collect());
    assert_eq!(store.load_bindings().unwrap(), want);

    // And a fresh process sees the same.
    drop(store);
    assert_eq!(open(&path).load_bindings().unwrap(), want);
}

#[test]
fn unstorable_value_fails_only_its_own_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(dir.path()));
    let (tx, rx) = mpsc::channel();
    // Hold the writer in a callback so that the three batches form one group.
    let gate = hold_writer(&store);
    let mut bad = binding("bad", "alice@example.com", 1);
    bad.expires_at_ms = u64::MAX;
    for (n, changes) in [
        vec![Change::Upsert(binding("ok1", "alice@example.com", 1))],
        vec![Change::Upsert(binding("ok2", "alice@example.com", 2)), Change::Upsert(bad)],
        vec![Change::Upsert(binding("ok3", "alice@example.com", 3))],
    ]
    .into_iter()
    .enumerate()
    {
        let tx = tx.clone();
        store.submit(changes, Box::new(move |r| tx.send((n, r)).unwrap()));
    }
    drop(gate);
    let results: Vec<_> = (0..3).map(|_| rx.recv().unwrap()).collect();
    assert_eq!(results[0], (0, Ok(())));
    assert_eq!(results[2], (2, Ok(())));
    let (1, Err(err)) = &results[1] else { panic!("{results:?}") };
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("binding bad of alice@example.com: expires_at_ms"), "{err}");
    let ids: Vec<String> = store.load_bindings().unwrap().into_iter().map(|b| b.id).collect();
    assert_eq!(ids, ["ok1", "ok3"], "the bad batch was not applied at all");
    assert_eq!(store.stats().commits, 1);
}

#[test]
fn failed_commit_fails_its_group_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let store =
        SqliteStore::open(&path, SqliteOptions { busy_timeout: Duration::from_millis(50), ..SqliteOptions::default() })
            .unwrap();
    // Another process (say a sqlite3 shell) holds the write lock.
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();

    let err = submit_wait(&store, vec![Change::Upsert(binding("b1", "alice@example.com", 1))]).unwrap_err();
    assert!(matches!(err, Error::Sqlite { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("database is locked") && msg.contains("busy timeout"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert_eq!(store.stats().failed_commits, 1);

    other.execute_batch("COMMIT").unwrap();
    submit_wait(&store, vec![Change::Upsert(binding("b2", "alice@example.com", 2))]).unwrap();
    let ids: Vec<String> = store.load_bindings().unwrap().into_iter().map(|b| b.id).collect();
    assert_eq!(ids, ["b2"]);
}

#[test]
fn panicking_callback_does_not_stop_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(dir.path()));
    store.submit(vec![Change::Upsert(binding("b1", "alice@example.com", 1))], Box::new(|_| panic!("callback bug")));
    submit_wait(&store, vec![Change::Upsert(binding("b2", "alice@example.com", 2))]).unwrap();
    assert_eq!(store.load_bindings().unwrap().len(), 2);
}

#[test]
fn drop_finishes_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let store = open(&path);
    let (tx, rx) = mpsc::channel();
    for i in 0..500 {
        let tx = tx.clone();
        store.submit(
            vec![Change::Upsert(binding(&format!("b{i}"), "alice@example.com", i))],
            Box::new(move |r| tx.send(r).unwrap()),
        );
    }
    drop(tx);
    drop(store);
    let results: Vec<_> = rx.iter().collect();
    assert_eq!(results.len(), 500);
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(open(&path).load_bindings().unwrap().len(), 500);
}

#[test]
fn store_dropped_inside_its_own_callback_does_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(open(&db_path(dir.path())));
    let (tx, rx) = mpsc::channel();
    let inner = store.clone();
    store.submit(
        vec![],
        Box::new(move |_| {
            inner.flush(); // refused (logged), must not hang
            drop(inner);
            tx.send(()).unwrap();
        }),
    );
    drop(store); // the callback may hold the last reference
    rx.recv_timeout(Duration::from_secs(30)).expect("callback ran");
}

#[test]
fn push_state_round_trips_and_updates_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(dir.path()));
    let mut with = binding("p1", "alice@example.com", 1);
    with.push_state = Some("v1 pnsreg=1".into());
    let mut without = binding("p2", "alice@example.com", 2);
    without.push_state = None;
    submit_wait(&store, vec![Change::Upsert(with.clone()), Change::Upsert(without.clone())]).unwrap();
    assert_eq!(store.load_bindings().unwrap(), vec![with.clone(), without.clone()]);

    // Only the push state changes; an unknown id is no error and no row.
    submit_wait(
        &store,
        vec![
            Change::PushState { id: "p1".into(), push_state: Some("v1 pnsreg=0 purr=x:1".into()) },
            Change::PushState { id: "p2".into(), push_state: Some("v1 pnsreg=1".into()) },
            Change::PushState { id: "no-such-binding".into(), push_state: Some("v1 pnsreg=1".into()) },
        ],
    )
    .unwrap();
    with.push_state = Some("v1 pnsreg=0 purr=x:1".into());
    without.push_state = Some("v1 pnsreg=1".into());
    assert_eq!(store.load_bindings().unwrap(), vec![with.clone(), without.clone()]);

    // Clearing it, and an Upsert replaces it like every other field
    // (a later change to the same id wins, also across kinds of change).
    let mut replaced = binding("p2", "alice@example.com", 4);
    replaced.push_state = Some("v1 pnsreg=0".into());
    submit_wait(
        &store,
        vec![
            Change::PushState { id: "p1".into(), push_state: None },
            Change::Upsert(replaced.clone()),
            Change::PushState { id: "p2".into(), push_state: Some("v1 pnsreg=1 last".into()) },
        ],
    )
    .unwrap();
    with.push_state = None;
    replaced.push_state = Some("v1 pnsreg=1 last".into());
    assert_eq!(store.load_bindings().unwrap(), vec![with, replaced.clone()]);
    submit_wait(&store, vec![Change::Upsert(StoredBinding { push_state: None, ..replaced.clone() })]).unwrap();
    assert_eq!(store.load_bindings().unwrap()[1].push_state, None);

    // Survives a reopen.
    drop(store);
    let store = open(&db_path(dir.path()));
    assert_eq!(store.load_bindings().unwrap().len(), 2);
}
