//! Backend-neutral scenarios of the [`Store`] contract, run against SQLite
//! (tests/scenarios.rs) and PostgreSQL (tests/postgres.rs): each takes a
//! fresh, empty store. Rows are compared without [`StoredBinding::node`]
//! (only PostgreSQL records it).

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use location_store::{Change, Error, Store, StoredBinding, StoredUpstream, Subscriber};

use super::{binding, hold_writer, submit_wait, subscriber, upstream};

/// `load_bindings` without the node of each row, which only PostgreSQL
/// records.
pub fn loaded(store: &dyn Store) -> Vec<StoredBinding> {
    store.load_bindings().unwrap().into_iter().map(|b| StoredBinding { node: None, ..b }).collect()
}

fn sorted(mut v: Vec<StoredBinding>) -> Vec<StoredBinding> {
    v.sort_by(|a, b| (&a.aor, &a.id).cmp(&(&b.aor, &b.id)));
    v
}

/// Upserts, removals and AoR removals in one batch and across batches of
/// one group: later changes to the same id win. Returns what the table
/// holds at the end.
pub fn bindings_apply_in_order(store: &dyn Store) -> Vec<StoredBinding> {
    let mut model: BTreeMap<String, StoredBinding> = BTreeMap::new();
    let batch1: Vec<StoredBinding> = (0..6)
        .map(|i| binding(&format!("a{i}"), "alice@example.com", i))
        .chain((0..4).map(|i| binding(&format!("b{i}"), "bob@example.com", i)))
        .chain((0..3).map(|i| binding(&format!("c{i}"), "carol@example.com", i)))
        .collect();
    for b in &batch1 {
        model.insert(b.id.clone(), b.clone());
    }
    submit_wait(store, batch1.into_iter().map(Change::Upsert).collect()).unwrap();
    assert_eq!(loaded(store), sorted(model.values().cloned().collect()));

    let mut a1 = binding("a1", "alice@example.com", 41);
    a1.contact = "<sip:a1@203.0.113.9:5070;transport=tcp>".into();
    let a1_last = binding("a1", "alice@example.com", 42);
    let b0_again = binding("b0", "bob@example.com", 7);
    let moved = binding("c1", "dave@example.com", 8); // the same id under another AoR
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
        Change::Upsert(moved.clone()),
        Change::RemoveAor { aor: "carol@example.com".into() },
        Change::Remove { id: "a3".into() },
        Change::Upsert(binding("a3", "alice@example.com", 9)),
        Change::Remove { id: "a3".into() },
    ];
    submit_wait(store, changes).unwrap();
    model.insert("a1".into(), a1_last);
    model.remove("a2");
    model.retain(|_, b| b.aor != "bob@example.com");
    model.insert("b0".into(), b0_again);
    model.remove("c2");
    model.insert("c1".into(), moved);
    model.retain(|_, b| b.aor != "carol@example.com");
    model.remove("a3");
    assert_eq!(loaded(store), sorted(model.values().cloned().collect()));

    // Across batches of one group (the writer held while they queue).
    let gate = hold_writer(store);
    for cseq in 100..110 {
        store.submit(vec![Change::Upsert(binding("c0", "carol@example.com", cseq))], Box::new(|r| r.unwrap()));
    }
    store.submit(vec![Change::Remove { id: "a4".into() }], Box::new(|r| r.unwrap()));
    store.submit(vec![Change::Upsert(binding("a4", "alice@example.com", 77))], Box::new(|r| r.unwrap()));
    store.submit(vec![Change::RemoveAor { aor: "alice@example.com".into() }], Box::new(|r| r.unwrap()));
    store.submit(vec![Change::Upsert(binding("a5", "alice@example.com", 78))], Box::new(|r| r.unwrap()));
    drop(gate);
    store.flush();
    model.insert("c0".into(), binding("c0", "carol@example.com", 109));
    model.retain(|_, b| b.aor != "alice@example.com");
    model.insert("a5".into(), binding("a5", "alice@example.com", 78));
    let want = sorted(model.values().cloned().collect());
    assert_eq!(loaded(store), want);
    want
}

/// The push state changes alone, an unknown id is no error, and an Upsert
/// replaces it like every other field.
pub fn push_state_updates_alone(store: &dyn Store) {
    let mut with = binding("p1", "alice@example.com", 1);
    with.push_state = Some("v1 pnsreg=1".into());
    let mut without = binding("p2", "alice@example.com", 2);
    without.push_state = None;
    submit_wait(store, vec![Change::Upsert(with.clone()), Change::Upsert(without.clone())]).unwrap();
    submit_wait(
        store,
        vec![
            Change::PushState { id: "p1".into(), push_state: Some("v1 pnsreg=0 purr=x:1".into()) },
            Change::PushState { id: "p2".into(), push_state: Some("v1 pnsreg=1".into()) },
            Change::PushState { id: "p2".into(), push_state: Some("v1 pnsreg=1 second".into()) },
            Change::PushState { id: "no-such-binding".into(), push_state: Some("v1 pnsreg=1".into()) },
        ],
    )
    .unwrap();
    with.push_state = Some("v1 pnsreg=0 purr=x:1".into());
    without.push_state = Some("v1 pnsreg=1 second".into());
    assert_eq!(loaded(store), vec![with.clone(), without.clone()]);

    let mut replaced = binding("p2", "alice@example.com", 4);
    replaced.push_state = Some("v1 pnsreg=0".into());
    submit_wait(
        store,
        vec![
            Change::PushState { id: "p1".into(), push_state: None },
            Change::Upsert(replaced.clone()),
            Change::PushState { id: "p2".into(), push_state: Some("v1 pnsreg=1 last".into()) },
        ],
    )
    .unwrap();
    with.push_state = None;
    replaced.push_state = Some("v1 pnsreg=1 last".into());
    assert_eq!(loaded(store), vec![with, replaced]);
}

/// Upstream registrations: order within a batch and across a group, and
/// independence from the bindings table.
pub fn upstream_apply_in_order(store: &dyn Store) {
    assert!(store.load_upstream().unwrap().is_empty());
    let mut model: BTreeMap<String, StoredUpstream> = BTreeMap::new();
    let batch1: Vec<StoredUpstream> = (0..4)
        .map(|i| upstream(&format!("a{i}"), "alice@example.com", i))
        .chain([upstream("aor:carol@example.com", "carol@example.com", 1)])
        .collect();
    for u in &batch1 {
        model.insert(u.key.clone(), u.clone());
    }
    submit_wait(store, batch1.into_iter().map(Change::UpsertUpstream).collect()).unwrap();
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
        Change::UpsertUpstream(upstream("a1", "alice@example.com", 41)),
        Change::UpsertUpstream(upstream("a1", "alice@example.com", 42)),
        Change::RemoveUpstream { key: "a2".into() },
        Change::UpsertUpstream(upstream("a2", "alice@example.com", 9)),
        Change::RemoveUpstream { key: "a3".into() },
        Change::RemoveUpstream { key: "no-such-key".into() },
        Change::UpsertUpstream(extreme.clone()),
        // Binding changes in between do not disturb the upstream order.
        Change::Upsert(binding("a1", "alice@example.com", 1)),
        Change::RemoveUpstream { key: "a0".into() },
        Change::UpsertUpstream(upstream("a0", "alice@example.com", 5)),
    ];
    submit_wait(store, changes).unwrap();
    model.insert("a1".into(), upstream("a1", "alice@example.com", 42));
    model.insert("a2".into(), upstream("a2", "alice@example.com", 9));
    model.remove("a3");
    model.insert("x".into(), extreme);
    model.insert("a0".into(), upstream("a0", "alice@example.com", 5));
    let mut want: Vec<StoredUpstream> = model.values().cloned().collect();
    want.sort_by(|a, b| (&a.aor, &a.key).cmp(&(&b.aor, &b.key)));
    assert_eq!(store.load_upstream().unwrap(), want);
    // Removing the binding's AoR leaves the upstream rows alone.
    submit_wait(store, vec![Change::RemoveAor { aor: "alice@example.com".into() }]).unwrap();
    assert!(store.load_bindings().unwrap().is_empty());
    assert_eq!(store.load_upstream().unwrap(), want);
}

/// A batch with an unstorable value fails alone; the rest of its group
/// commits in one transaction.
pub fn unstorable_value_fails_only_its_batch(store: &dyn Store) {
    let commits_before = store.stats().commits;
    let (tx, rx) = mpsc::channel();
    let gate = hold_writer(store);
    let mut bad = binding("bad", "alice@example.com", 1);
    bad.expires_at_ms = u64::MAX;
    let mut bad_up = upstream("bad-up", "alice@example.com", 1);
    bad_up.last_at_ms = i64::MAX as u64 + 1;
    for (n, changes) in [
        vec![Change::Upsert(binding("ok1", "alice@example.com", 1))],
        vec![Change::Upsert(binding("ok2", "alice@example.com", 2)), Change::Upsert(bad)],
        vec![Change::Upsert(binding("b1", "alice@example.com", 1)), Change::UpsertUpstream(bad_up)],
        vec![Change::Upsert(binding("ok3", "alice@example.com", 3))],
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
    for (i, what) in
        [(1, "binding bad of alice@example.com: expires_at_ms"), (2, "bad-up of alice@example.com: last_at_ms")]
    {
        let (n, Err(err)) = &results[i] else { panic!("{results:?}") };
        assert_eq!(*n, i);
        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
        assert!(err.to_string().contains(what), "{err}");
    }
    let ids: Vec<String> = store.load_bindings().unwrap().into_iter().map(|b| b.id).collect();
    assert_eq!(ids, ["ok1", "ok3"], "the bad batches were not applied at all");
    assert!(store.load_upstream().unwrap().is_empty());
    assert_eq!(store.stats().commits, commits_before + 1);
}

/// Barriers complete in order, alone and between changes, without a
/// transaction of their own.
pub fn barriers_complete_in_order(store: &dyn Store) {
    let commits_before = store.stats().commits;
    let order = Arc::new(Mutex::new(Vec::new()));
    for i in 0..100u32 {
        let o = order.clone();
        let changes =
            if i % 2 == 0 { vec![Change::Upsert(binding(&format!("b{i}"), "a@example.com", i))] } else { vec![] };
        store.submit(
            changes,
            Box::new(move |r| {
                r.unwrap();
                o.lock().unwrap().push(i);
            }),
        );
    }
    store.flush();
    assert_eq!(*order.lock().unwrap(), (0..100).collect::<Vec<_>>());
    assert_eq!(store.load_bindings().unwrap().len(), 50);
    let commits = store.stats().commits - commits_before;
    assert!((1..=50).contains(&commits), "{commits}");
    let before = store.stats().commits;
    for _ in 0..20 {
        store.submit(vec![], Box::new(|r| r.unwrap()));
    }
    store.flush();
    assert_eq!(store.stats().commits, before, "barriers alone need no transaction");
}

/// Subscribers: insert, replace, get, list, delete, bulk; the version
/// changes on every write and only then.
pub fn subscribers_crud_and_version(store: &dyn Store) {
    let v0 = store.subscribers_version().unwrap();
    assert_eq!(store.subscribers_version().unwrap(), v0, "stable without changes");
    assert_eq!(store.get_subscriber("alice", "example.com").unwrap(), None);
    let alice = subscriber("alice", "example.com");
    let alice_b = subscriber("alice", "b.example.org");
    let bob = subscriber("bob", "example.com");
    for s in [&alice, &alice_b, &bob] {
        store.put_subscriber(s).unwrap();
    }
    let v1 = store.subscribers_version().unwrap();
    assert_ne!(v1, v0);
    assert_eq!(store.get_subscriber("alice", "example.com").unwrap(), Some(alice.clone()));
    assert_eq!(store.subscribers().unwrap(), vec![alice_b.clone(), alice.clone(), bob.clone()]);

    // Binding commits do not count as subscriber changes.
    submit_wait(store, vec![Change::Upsert(binding("b1", "alice@example.com", 1))]).unwrap();
    assert_eq!(store.subscribers_version().unwrap(), v1);

    let alice2 = Subscriber { ha1_md5: "1".repeat(32), ha1_sha256: "2".repeat(64), created_at_ms: 5, ..alice.clone() };
    store.put_subscriber(&alice2).unwrap();
    let v2 = store.subscribers_version().unwrap();
    assert_ne!(v2, v1);
    assert_eq!(store.get_subscriber("alice", "example.com").unwrap(), Some(alice2));
    assert!(store.delete_subscriber("alice", "example.com").unwrap());
    assert!(!store.delete_subscriber("alice", "example.com").unwrap());
    assert_ne!(store.subscribers_version().unwrap(), v2);
    assert_eq!(store.subscribers().unwrap(), vec![alice_b, bob]);

    let bulk: Vec<Subscriber> = (0..50).map(|i| subscriber(&format!("u{i:02}"), "bulk.example.com")).collect();
    store.put_subscribers(&bulk).unwrap();
    assert_eq!(store.subscribers().unwrap().len(), 52);

    let bad = Subscriber { created_at_ms: u64::MAX, ..subscriber("eve", "example.com") };
    let err = store.put_subscriber(&bad).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }) && err.to_string().contains("eve@example.com"), "{err}");
}

/// An expiry removes a binding only while its stored expiry is at or before
/// the time given: a binding refreshed meanwhile (by another node) stays.
pub fn expiry_removes_only_what_is_still_expired(store: &dyn Store) {
    let old = binding("x1", "xena@example.com", 1); // expires at T0 + 1 s
    let refreshed = binding("x2", "xena@example.com", 9); // expires at T0 + 9 s
    submit_wait(store, vec![Change::Upsert(old), Change::Upsert(refreshed.clone())]).unwrap();
    let at = 1_700_000_000_000 + 5_000;
    submit_wait(store, vec![Change::Expire { id: "x1".into(), at }, Change::Expire { id: "x2".into(), at }]).unwrap();
    assert_eq!(loaded(store), vec![refreshed]);
    // An expiry of an unknown id is no error; one beyond the storable range fails its batch.
    submit_wait(store, vec![Change::Expire { id: "nope".into(), at }]).unwrap();
    let err = submit_wait(store, vec![Change::Expire { id: "x2".into(), at: u64::MAX }]).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
}

/// Every scenario, each on a fresh store from `fresh`.
pub fn all(mut fresh: impl FnMut() -> Box<dyn Store>) {
    bindings_apply_in_order(&*fresh());
    push_state_updates_alone(&*fresh());
    upstream_apply_in_order(&*fresh());
    unstorable_value_fails_only_its_batch(&*fresh());
    barriers_complete_in_order(&*fresh());
    subscribers_crud_and_version(&*fresh());
    expiry_removes_only_what_is_still_expired(&*fresh());
}
