//! Group commit: under concurrent load many batches share one transaction,
//! while every thread's callbacks fire in its submission order; barriers
//! (empty batches) complete in order and need no transaction.

mod common;

use std::sync::{Arc, Mutex};
use std::thread;

use common::{binding, db_path, hold_writer, open};
use location_store::{Change, SqliteOptions, SqliteStore, Store};

const THREADS: u32 = 4;
const PER_THREAD: u32 = 2_500;

type Seen = Vec<Arc<Mutex<Vec<u32>>>>;

/// Submit PER_THREAD single-change batches from each of THREADS threads and
/// wait until everything is done; returns, per thread, the sequence numbers
/// in the order their callbacks fired.
fn hammer(store: &Arc<SqliteStore>) -> Vec<Vec<u32>> {
    let seen = submit_all(store);
    store.flush();
    collect(seen)
}

fn collect(seen: Seen) -> Vec<Vec<u32>> {
    seen.iter().map(|s| s.lock().unwrap().clone()).collect()
}

/// The submitting half of [`hammer`]: returns once every batch is queued.
fn submit_all(store: &Arc<SqliteStore>) -> Seen {
    let seen: Vec<Arc<Mutex<Vec<u32>>>> = (0..THREADS).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let seen = seen[t as usize].clone();
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    // Ids repeat within a thread, so later upserts overwrite.
                    let b = binding(&format!("t{t}-{}", i % 100), &format!("user{t}@example.com"), i);
                    let seen = seen.clone();
                    store.submit(
                        vec![Change::Upsert(b)],
                        Box::new(move |r| {
                            r.unwrap();
                            seen.lock().unwrap().push(i);
                        }),
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    seen
}

fn check_result(store: &SqliteStore, seen: &[Vec<u32>]) {
    for (t, s) in seen.iter().enumerate() {
        assert_eq!(s.len(), PER_THREAD as usize, "thread {t}: every callback fired");
        assert!(s.windows(2).all(|w| w[0] < w[1]), "thread {t}: callbacks out of submission order");
    }
    // The last write of each id won.
    let loaded = store.load_bindings().unwrap();
    assert_eq!(loaded.len(), (THREADS * 100) as usize);
    for b in loaded {
        let slot: u32 = b.id.rsplit('-').next().unwrap().parse().unwrap();
        assert_eq!(b.cseq, PER_THREAD - 100 + slot, "{}", b.id);
    }
}

#[test]
fn concurrent_submitters_share_commits_and_keep_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&db_path(dir.path())));
    let seen = hammer(&store);
    check_result(&store, &seen);

    let stats = store.stats();
    let batches = u64::from(THREADS * PER_THREAD);
    assert_eq!(stats.batches_submitted, batches + 1, "{stats:?}"); // + flush barrier
    assert_eq!(stats.batches_done, stats.batches_submitted, "{stats:?}");
    assert_eq!(stats.changes_committed, batches, "{stats:?}");
    assert_eq!(stats.failed_commits, 0, "{stats:?}");
    // Group commit happened: far fewer transactions than batches.
    assert!(stats.commits * 10 <= batches, "too many commits for {batches} batches: {stats:?}");
    assert!(stats.largest_group > 10, "{stats:?}");
    eprintln!("{stats:?}");
}

#[test]
fn queued_batches_go_into_few_commits_bounded_by_max_group() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions { max_group_batches: 1000, ..SqliteOptions::default() };
    let store = Arc::new(SqliteStore::open(&db_path(dir.path()), opts).unwrap());
    // Hold the writer inside a callback while all batches are queued: then
    // the group sizes are deterministic.
    let gate = hold_writer(&*store);
    let seen = submit_all(&store);
    drop(gate);
    store.flush();
    let seen = collect(seen);
    check_result(&store, &seen);

    let stats = store.stats();
    // 10k queued batches in groups of at most 1000: exactly 10 commits (the
    // gate's group and the flush barrier's need none).
    assert_eq!(stats.commits, 10, "{stats:?}");
    assert_eq!(stats.largest_group, 1000, "{stats:?}");
}

#[test]
fn barriers_complete_in_order_without_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(dir.path()));
    let order = Arc::new(Mutex::new(Vec::new()));
    for i in 0..200u32 {
        let order = order.clone();
        store.submit(
            vec![],
            Box::new(move |r| {
                r.unwrap();
                order.lock().unwrap().push(i);
            }),
        );
    }
    store.flush();
    assert_eq!(*order.lock().unwrap(), (0..200).collect::<Vec<_>>());
    let stats = store.stats();
    assert_eq!(stats.commits, 0, "barriers alone need no transaction: {stats:?}");
    assert_eq!(stats.batches_done, 201);

    // Barriers interleaved with changes: each fires after the change before
    // it is durable, and they all keep their place.
    order.lock().unwrap().clear();
    for i in 0..100u32 {
        let o = order.clone();
        let changes =
            if i % 2 == 0 { vec![Change::Upsert(binding(&format!("b{i}"), "a@example.com", i))] } else { vec![] };
        let check = store.path().to_owned();
        store.submit(
            changes,
            Box::new(move |r| {
                r.unwrap();
                if i % 2 == 1 {
                    // The previous change is readable from another connection.
                    let conn = rusqlite::Connection::open(&check).unwrap();
                    let n: i64 = conn
                        .query_row("SELECT count(*) FROM bindings WHERE id = ?1", [format!("b{}", i - 1)], |r| r.get(0))
                        .unwrap();
                    assert_eq!(n, 1);
                }
                o.lock().unwrap().push(i);
            }),
        );
    }
    store.flush();
    assert_eq!(*order.lock().unwrap(), (0..100).collect::<Vec<_>>());
}

/// Receive threads defer their batches and commit them themselves at the
/// end of each "datagram batch" (`commit_deferred(true)`, or hand them to the
/// writer with `false`), while other threads submit as usual: every callback
/// fires once, each thread's in its submission order, and the last write of
/// each id wins, whoever held the connection.
#[test]
fn deferred_commits_on_submitting_threads_keep_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&db_path(dir.path())));
    let seen: Vec<Arc<Mutex<Vec<u32>>>> = (0..THREADS).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let seen = seen[t as usize].clone();
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let b = binding(&format!("t{t}-{}", i % 100), &format!("user{t}@example.com"), i);
                    let seen = seen.clone();
                    let done: location_store::Done = Box::new(move |r| {
                        r.unwrap();
                        seen.lock().unwrap().push(i);
                    });
                    if t % 2 == 0 {
                        store.submit_deferred(vec![Change::Upsert(b)], done);
                        // A "datagram batch" ends every 1 to 7 batches; every
                        // third end finds more datagrams waiting.
                        if i % 7 == (t + i / 7) % 7 || i == PER_THREAD - 1 {
                            store.commit_deferred(i % 3 != 0);
                        }
                    } else {
                        store.submit(vec![Change::Upsert(b)], done);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    store.flush();
    check_result(&store, &collect(seen));
}

/// On an idle store `commit_deferred(true)` commits on the calling thread:
/// the callback runs there, before the call returns; a callback that
/// submits more work (the node sending a fork that writes again) neither
/// deadlocks nor loses it.
#[test]
fn an_idle_store_commits_deferred_work_on_the_calling_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&db_path(dir.path())));
    let me = thread::current().id();
    let ran_on = Arc::new(Mutex::new(None));
    let (tx, rx) = std::sync::mpsc::channel();
    let (r, s) = (ran_on.clone(), store.clone());
    store.submit_deferred(
        vec![Change::Upsert(binding("a", "a@example.com", 1))],
        Box::new(move |res| {
            res.unwrap();
            *r.lock().unwrap() = Some(thread::current().id());
            s.submit(
                vec![Change::Upsert(binding("b", "b@example.com", 1))],
                Box::new(move |res| tx.send(res.is_ok()).unwrap()),
            );
        }),
    );
    store.commit_deferred(true);
    assert_eq!(*ran_on.lock().unwrap(), Some(me), "committed on the calling thread");
    assert!(rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap(), "the nested write committed");
    assert_eq!(store.load_bindings().unwrap().len(), 2);
}
