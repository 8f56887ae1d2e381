//! Subscribers: insert/replace/get/list/delete, and `subscribers_version`
//! changing when this or another connection or process changes them (and
//! only then).

mod common;

use common::{binding, db_path, open, submit_wait, subscriber};
use location_store::{Change, Error, Store, Subscriber};
use rusqlite::Connection;

#[test]
fn crud() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(dir.path()));
    assert_eq!(store.get_subscriber("alice", "example.com").unwrap(), None);

    let alice = subscriber("alice", "example.com");
    let alice_b = subscriber("alice", "b.example.org"); // same user, other domain
    let bob = subscriber("bob", "example.com");
    for s in [&alice, &alice_b, &bob] {
        store.put_subscriber(s).unwrap();
    }
    assert_eq!(store.get_subscriber("alice", "example.com").unwrap(), Some(alice.clone()));
    assert_eq!(store.get_subscriber("alice", "b.example.org").unwrap(), Some(alice_b.clone()));
    assert_eq!(store.subscribers().unwrap(), vec![alice_b.clone(), alice.clone(), bob.clone()]);

    // Replace.
    let alice2 = Subscriber { ha1_md5: "1".repeat(32), ha1_sha256: "2".repeat(64), created_at_ms: 5, ..alice.clone() };
    store.put_subscriber(&alice2).unwrap();
    assert_eq!(store.get_subscriber("alice", "example.com").unwrap(), Some(alice2.clone()));
    assert_eq!(store.subscribers().unwrap().len(), 3);

    // Delete.
    assert!(store.delete_subscriber("alice", "example.com").unwrap());
    assert!(!store.delete_subscriber("alice", "example.com").unwrap());
    assert_eq!(store.get_subscriber("alice", "example.com").unwrap(), None);
    assert_eq!(store.subscribers().unwrap(), vec![alice_b, bob]);

    // Unstorable value.
    let bad = Subscriber { created_at_ms: u64::MAX, ..subscriber("eve", "example.com") };
    let err = store.put_subscriber(&bad).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }) && err.to_string().contains("eve@example.com"), "{err}");

    // Survives reopening.
    let path = store.path().to_owned();
    drop(store);
    assert_eq!(open(&path).subscribers().unwrap().len(), 2);
}

#[test]
fn version_changes_on_every_subscriber_write_from_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let store = open(&path);
    let v0 = store.subscribers_version().unwrap();
    assert_eq!(store.subscribers_version().unwrap(), v0, "stable without changes");

    // Own write.
    store.put_subscriber(&subscriber("alice", "example.com")).unwrap();
    let v1 = store.subscribers_version().unwrap();
    assert_ne!(v1, v0);

    // Binding commits do not count as subscriber changes.
    submit_wait(&store, vec![Change::Upsert(binding("b1", "alice@example.com", 1))]).unwrap();
    assert_eq!(store.subscribers_version().unwrap(), v1);

    // Another process using this crate (the `sipwake user` CLI).
    let cli = open(&path);
    cli.put_subscriber(&subscriber("bob", "example.com")).unwrap();
    let v2 = store.subscribers_version().unwrap();
    assert_ne!(v2, v1);
    assert_eq!(store.subscribers_version().unwrap(), v2);
    assert!(cli.delete_subscriber("bob", "example.com").unwrap());
    let v3 = store.subscribers_version().unwrap();
    assert_ne!(v3, v2);

    // A plain SQLite connection (a sqlite3 shell): the triggers still count.
    let raw = Connection::open(&path).unwrap();
    raw.execute(
        "INSERT INTO subscribers (user, domain, ha1_md5, ha1_sha256, created_at_ms) VALUES ('carol', 'example.com', 'x', 'y', 1)",
        [],
    )
    .unwrap();
    let v4 = store.subscribers_version().unwrap();
    assert_ne!(v4, v3);
    assert_eq!(store.get_subscriber("carol", "example.com").unwrap().unwrap().ha1_md5, "x");
    raw.execute("UPDATE subscribers SET ha1_md5 = 'z' WHERE user = 'carol'", []).unwrap();
    let v5 = store.subscribers_version().unwrap();
    assert_ne!(v5, v4);
    assert_eq!(store.subscribers_version().unwrap(), v5);

    // A damaged row is reported, naming it.
    raw.execute("UPDATE subscribers SET created_at_ms = -1 WHERE user = 'carol'", []).unwrap();
    let err = store.get_subscriber("carol", "example.com").unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("subscriber carol@example.com"), "{err}");
}
