//! The PostgreSQL backend against a real server ([`pg::TestPg`], one per
//! test): the backend-neutral scenarios, values and validation, the change
//! feed between two nodes, the cluster calls (claims, secrets,
//! heartbeats), a server crash and restart, migrations, and the time of a
//! group of 1000 upserts.

mod common;
mod pg;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{binding, hold_writer, scenarios, submit_wait, upstream};
use location_store::{
    Change, Cluster, Error, FeedEvent, Member, PG_SCHEMA_VERSION, PgOptions, PgStore, Store, StoredBinding,
};
use pg::TestPg;

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

fn open_url(url: &str, node: &str) -> PgStore {
    PgStore::open(PgOptions::new(url, node)).expect("open the PostgreSQL store")
}

fn open(pg: &TestPg, node: &str) -> PgStore {
    open_url(&pg.url(), node)
}

fn client(pg: &TestPg) -> postgres::Client {
    postgres::Client::connect(&pg.url(), postgres::NoTls).expect("connect to the test server")
}

fn follow(store: &PgStore) -> Receiver<FeedEvent> {
    let (tx, rx) = mpsc::channel();
    store
        .follow(Box::new(move |e| {
            let _ = tx.send(e);
        }))
        .unwrap();
    rx
}

fn next(rx: &Receiver<FeedEvent>) -> FeedEvent {
    rx.recv_timeout(EVENT_TIMEOUT).expect("a feed event in time")
}

fn ids(v: &[StoredBinding]) -> Vec<&str> {
    v.iter().map(|b| b.id.as_str()).collect()
}

#[test]
fn shared_scenarios_hold_on_postgres() {
    let pg = TestPg::start();
    let mut n = 0;
    scenarios::all(|| {
        n += 1;
        let db = format!("s{n}");
        pg.create_database(&db);
        Box::new(open_url(&pg.url_of(&db), "n1")) as Box<dyn Store>
    });
}

#[test]
fn values_round_trip_and_bad_ones_are_refused() {
    let pg = TestPg::start();
    let store = open(&pg, "node-1_a");
    let mut extreme = binding("x1", "alice@example.com", u32::MAX);
    extreme.q = Some(u16::MAX);
    extreme.reg_id = Some(u32::MAX);
    extreme.expires_at_ms = i64::MAX as u64;
    extreme.registered_at_ms = 0;
    extreme.node = Some("ignored: the committing node is recorded".into());
    let plain = binding("x2", "alice@example.com", 2);
    submit_wait(&store, vec![Change::Upsert(extreme.clone()), Change::Upsert(plain.clone())]).unwrap();
    let want = vec![
        StoredBinding { node: Some("node-1_a".into()), ..extreme.clone() },
        StoredBinding { node: Some("node-1_a".into()), ..plain.clone() },
    ];
    assert_eq!(store.load_bindings().unwrap(), want);
    drop(store);
    // Another node replacing a binding takes it over.
    let other = open(&pg, "node-2");
    assert_eq!(other.load_bindings().unwrap(), want);
    submit_wait(&other, vec![Change::Upsert(plain.clone())]).unwrap();
    assert_eq!(other.load_bindings().unwrap()[1].node.as_deref(), Some("node-2"));

    // Values PostgreSQL (or the notifications) cannot carry fail their batch.
    let mut nl = binding("bad\nid", "alice@example.com", 1);
    let err = submit_wait(&other, vec![Change::Upsert(nl.clone())]).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }) && err.to_string().contains("line break"), "{err}");
    nl.id = "ok".into();
    nl.user_agent = Some("nul\0inside".into());
    let err = submit_wait(&other, vec![Change::Upsert(nl)]).unwrap_err();
    assert!(err.to_string().contains("binding ok of alice@example.com: user_agent"), "{err}");
    let err = submit_wait(&other, vec![Change::Remove { id: "x".repeat(2000) }]).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    let up = upstream("k\0", "alice@example.com", 1);
    assert!(matches!(submit_wait(&other, vec![Change::UpsertUpstream(up)]), Err(Error::Invalid { .. })));
    assert_eq!(other.load_bindings().unwrap().len(), 2);

    // Bad node ids, and a server that is not there (the password never
    // shows).
    for bad in ["", "n 1", "n\"1", &"n".repeat(51)] {
        let err = PgStore::open(PgOptions::new(pg.url(), bad)).unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{bad:?}: {err}");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://sipwake:hunter2@127.0.0.1:{port}/sipwake");
    let err = PgStore::open(PgOptions::new(&url, "n1")).unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("postgres://sipwake@127.0.0.1:{port}/sipwake unreachable")), "{msg}");
    assert!(!msg.contains("hunter2") && !format!("{err:?}").contains("hunter2"), "{msg}");
    let opts = PgOptions::new(&url, "n1");
    assert!(!format!("{opts:?}").contains("hunter2"));
    // A database that does not exist is named, with what to do.
    let err = PgStore::open(PgOptions::new(pg.url_of("nope"), "n1")).unwrap_err();
    assert!(matches!(err, Error::Open { .. }) && err.to_string().contains("createdb"), "{err}");
    assert!(other.health().ok, "{:?}", other.health());
    assert!(other.cluster().is_some());
}

#[test]
fn feed_carries_one_nodes_commits_to_the_other() {
    let pg = TestPg::start();
    let n1 = open(&pg, "n1");
    let n2 = open(&pg, "n2");
    let rx1 = follow(&n1);
    let rx2 = follow(&n2);
    assert!(n1.follow(Box::new(|_| {})).is_err(), "follow starts once");

    submit_wait(
        &n1,
        vec![
            Change::Upsert(binding("b1", "alice@example.com", 1)),
            Change::Upsert(binding("b2", "alice@example.com", 2)),
        ],
    )
    .unwrap();
    let FeedEvent::Bindings { upserted, removed } = next(&rx2) else { panic!("expected bindings") };
    assert_eq!(ids(&upserted), ["b1", "b2"]);
    assert!(removed.is_empty());
    assert_eq!(upserted[0], StoredBinding { node: Some("n1".into()), ..binding("b1", "alice@example.com", 1) });
    // n1 does not hear its own commit: its next event is its sync token.
    n1.sync(1).unwrap();
    assert_eq!(next(&rx1), FeedEvent::Synced(1));

    // Removal, push state, removal of an AoR.
    submit_wait(&n1, vec![Change::Remove { id: "b1".into() }]).unwrap();
    assert_eq!(next(&rx2), FeedEvent::Bindings { upserted: vec![], removed: vec!["b1".into()] });
    submit_wait(&n1, vec![Change::PushState { id: "b2".into(), push_state: Some("v1 pnsreg=1".into()) }]).unwrap();
    let FeedEvent::Bindings { upserted, .. } = next(&rx2) else { panic!("expected bindings") };
    assert_eq!(upserted[0].push_state.as_deref(), Some("v1 pnsreg=1"));
    submit_wait(&n1, vec![Change::RemoveAor { aor: "alice@example.com".into() }]).unwrap();
    assert_eq!(next(&rx2), FeedEvent::Bindings { upserted: vec![], removed: vec!["b2".into()] });
    // Changes that change nothing announce nothing.
    submit_wait(&n1, vec![Change::Remove { id: "b2".into() }, Change::PushState { id: "zz".into(), push_state: None }])
        .unwrap();

    // sync: everything n1 committed before n2.sync(7) arrives before Synced(7).
    let (tx, done) = mpsc::channel();
    for i in 0..50 {
        let tx = tx.clone();
        n1.submit(
            vec![Change::Upsert(binding(&format!("s{i:02}"), "bob@example.com", i))],
            Box::new(move |r| tx.send(r).unwrap()),
        );
    }
    for _ in 0..50 {
        done.recv().unwrap().unwrap();
    }
    n2.sync(7).unwrap();
    let mut seen = HashSet::new();
    loop {
        match next(&rx2) {
            FeedEvent::Bindings { upserted, removed } => {
                assert!(removed.is_empty(), "{removed:?}");
                seen.extend(upserted.into_iter().map(|b| b.id));
            }
            FeedEvent::Synced(7) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen.len(), 50, "every commit before the sync was delivered before Synced: {seen:?}");

    // And the other way round; subscriber changes reach both feeds.
    submit_wait(&n2, vec![Change::Upsert(binding("c1", "carol@example.com", 1))]).unwrap();
    let FeedEvent::Bindings { upserted, .. } = next(&rx1) else { panic!("expected bindings") };
    assert_eq!((upserted[0].id.as_str(), upserted[0].node.as_deref()), ("c1", Some("n2")));
    n1.put_subscriber(&common::subscriber("alice", "example.com")).unwrap();
    for rx in [&rx1, &rx2] {
        loop {
            match next(rx) {
                FeedEvent::Subscribers => break,
                FeedEvent::Bindings { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    n2.sync(8).unwrap();
    assert_eq!(next(&rx2), FeedEvent::Synced(8));
}

#[test]
fn claims_secrets_and_heartbeats() {
    let pg = TestPg::start();
    let n1 = Arc::new(open(&pg, "n1"));
    let n2 = Arc::new(open(&pg, "n2"));

    // Two nodes race for the same claim 200 times: one winner each time.
    const ROUNDS: usize = 200;
    let barrier = Arc::new(Barrier::new(2));
    let racers: Vec<_> = [n1.clone(), n2.clone()]
        .into_iter()
        .map(|store| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                (0..ROUNDS)
                    .map(|i| {
                        barrier.wait();
                        store.claim_refresh(&format!("b{i}"), 3, 1).unwrap()
                    })
                    .collect::<Vec<bool>>()
            })
        })
        .collect();
    let wins: Vec<Vec<bool>> = racers.into_iter().map(|h| h.join().unwrap()).collect();
    for (i, (a, b)) in wins[0].iter().zip(&wins[1]).enumerate() {
        assert!(a ^ b, "round {i}: exactly one winner, got {a} and {b}");
    }
    let n1_wins = wins[0].iter().filter(|w| **w).count();
    eprintln!("claim race: n1 won {n1_wins} of {ROUNDS}, n2 {}", ROUNDS - n1_wins);

    // Only a later (generation, attempt) wins again, once.
    assert!(!n1.claim_refresh("b0", 3, 1).unwrap());
    assert!(!n2.claim_refresh("b0", 3, 0).unwrap());
    assert!(!n2.claim_refresh("b0", 2, 9).unwrap());
    assert!(n2.claim_refresh("b0", 3, 2).unwrap());
    assert!(!n1.claim_refresh("b0", 3, 2).unwrap());
    assert!(n1.claim_refresh("b0", 4, 0).unwrap());
    assert!(n2.claim_refresh("b0", u64::try_from(i64::MAX).unwrap(), u32::MAX).unwrap());
    assert!(matches!(n2.claim_refresh("b0", u64::MAX, 0), Err(Error::Invalid { .. })));

    // Removing a binding drops its claim in the same transaction.
    submit_wait(&*n1, vec![Change::Upsert(binding("b1", "alice@example.com", 1))]).unwrap();
    let mut raw = client(&pg);
    let claims = |raw: &mut postgres::Client, id: &str| -> i64 {
        raw.query_one("SELECT count(*) FROM refresh_claims WHERE binding_id = $1", &[&id]).unwrap().get(0)
    };
    assert_eq!(claims(&mut raw, "b1"), 1);
    submit_wait(&*n1, vec![Change::RemoveAor { aor: "alice@example.com".into() }]).unwrap();
    assert_eq!(claims(&mut raw, "b1"), 0);
    assert!(n2.claim_refresh("b1", 1, 0).unwrap(), "a fresh claim after the removal");

    // Shared secrets: the same bytes on every node, one per name.
    let s1 = n1.shared_secret("nonce").unwrap();
    let s2 = n2.shared_secret("nonce").unwrap();
    assert_eq!(s1, s2);
    assert_eq!(n1.shared_secret("nonce").unwrap(), s1);
    let other = n2.shared_secret("flow-token").unwrap();
    assert_ne!(other, s1);
    assert_eq!(n1.shared_secret("flow-token").unwrap(), other);

    // Heartbeats: both listed; a node silent for too long is not.
    let live = Duration::from_secs(30);
    let m = |id: &str, addr: &str| Member { id: id.into(), sip_addr: addr.into() };
    assert_eq!(n1.heartbeat("10.0.0.1:5060", live).unwrap(), [m("n1", "10.0.0.1:5060")]);
    assert_eq!(n2.heartbeat("10.0.0.2:5060", live).unwrap(), [m("n1", "10.0.0.1:5060"), m("n2", "10.0.0.2:5060")]);
    raw.execute("UPDATE cluster_nodes SET seen_at = now() - interval '1 minute' WHERE id = 'n2'", &[]).unwrap();
    assert_eq!(n1.heartbeat("10.0.0.1:5070", live).unwrap(), [m("n1", "10.0.0.1:5070")]);
    assert_eq!(
        n1.heartbeat("10.0.0.1:5070", Duration::from_secs(120)).unwrap(),
        [m("n1", "10.0.0.1:5070"), m("n2", "10.0.0.2:5060")]
    );
    assert_eq!(n2.heartbeat("10.0.0.2:5060", live).unwrap().len(), 2, "back once it beats again");
    assert_eq!(n1.node_id(), "n1");
}

#[test]
fn server_crash_fails_batches_then_everything_recovers() {
    let mut pg = TestPg::start();
    let store = Arc::new(open(&pg, "n1"));
    let rx = follow(&store);
    submit_wait(&*store, vec![Change::Upsert(binding("before", "alice@example.com", 1))]).unwrap();

    // Submit steadily while the server is killed.
    let stop = Arc::new(AtomicBool::new(false));
    let submitted = Arc::new(AtomicU64::new(0));
    let results: Arc<Mutex<Vec<location_store::Result<()>>>> = Arc::default();
    let submitter = {
        let (store, stop, submitted, results) = (store.clone(), stop.clone(), submitted.clone(), results.clone());
        thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let results = results.clone();
                store.submit(
                    vec![Change::Upsert(binding(&format!("d{}", i % 50), "alice@example.com", i))],
                    Box::new(move |r| results.lock().unwrap().push(r)),
                );
                submitted.fetch_add(1, Ordering::SeqCst);
                i += 1;
                thread::sleep(Duration::from_millis(2));
            }
        })
    };
    thread::sleep(Duration::from_millis(300));
    pg.kill9();
    thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::SeqCst);
    submitter.join().unwrap();

    // Every done is called, without a hang.
    let (tx, flushed) = mpsc::channel();
    let s = store.clone();
    thread::spawn(move || {
        s.flush();
        tx.send(()).unwrap();
    });
    flushed.recv_timeout(Duration::from_secs(20)).expect("flush returns while the server is down");
    let results = std::mem::take(&mut *results.lock().unwrap());
    assert_eq!(results.len() as u64, submitted.load(Ordering::SeqCst));
    let failed: Vec<&Error> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(!failed.is_empty(), "some batches failed while the server was down");
    for e in &failed {
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        assert!(e.to_string().contains("sipwake retries by itself"), "{e}");
    }
    eprintln!("while down: {} of {} batches failed with Unavailable", failed.len(), results.len());
    assert!(!store.health().ok, "{:?}", store.health());
    assert!(matches!(store.load_bindings(), Err(Error::Unavailable { .. })));
    match next(&rx) {
        FeedEvent::Down(reason) => eprintln!("feed down: {reason}"),
        FeedEvent::Bindings { .. } => panic!("no other node writes"),
        other => panic!("expected Down, got {other:?}"),
    }

    // Back: new batches succeed (after the reconnect backoff), the feed
    // resynchronizes, the readers reconnect.
    let down_at = Instant::now();
    pg.restart();
    let restarted = down_at.elapsed();
    let back = Instant::now();
    loop {
        match submit_wait(&*store, vec![Change::Upsert(binding("after", "alice@example.com", 2))]) {
            Ok(()) => break,
            Err(Error::Unavailable { .. }) if back.elapsed() < Duration::from_secs(15) => {
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("still failing {:?} after the restart: {e}", back.elapsed()),
        }
    }
    eprintln!("server restarted in {restarted:?}; writes succeed again {:?} later", back.elapsed());
    let all = loop {
        match next(&rx) {
            FeedEvent::Resync { all } => break all,
            FeedEvent::Down(_) => {} // a reconnect attempt may fail while the server starts
            other => panic!("expected Resync, got {other:?}"),
        }
    };
    assert!(all.iter().any(|b| b.id == "before"), "{:?}", ids(&all));
    let loaded = store.load_bindings().unwrap();
    assert!(loaded.iter().any(|b| b.id == "after"));
    assert!(store.health().ok, "{:?}", store.health());
    assert!(store.shared_secret("k").is_ok());

    // A restart during a quiet spell costs no batch: the writer checks a
    // connection idle for a while before committing on it.
    pg.stop();
    pg.restart();
    thread::sleep(Duration::from_millis(5200));
    submit_wait(&*store, vec![Change::Upsert(binding("quiet", "alice@example.com", 3))]).unwrap();
    assert!(store.load_bindings().unwrap().iter().any(|b| b.id == "quiet"));
}

#[test]
fn migrations_run_once_and_newer_schemas_are_refused() {
    let pg = TestPg::start();
    // Several nodes starting at once on a fresh database.
    let barrier = Arc::new(Barrier::new(4));
    let url = pg.url();
    let openers: Vec<_> = (0..4)
        .map(|i| {
            let (barrier, url) = (barrier.clone(), url.clone());
            thread::spawn(move || {
                barrier.wait();
                PgStore::open(PgOptions::new(url, format!("n{i}"))).map(|_| ())
            })
        })
        .collect();
    for h in openers {
        h.join().unwrap().unwrap();
    }
    let version = |raw: &mut postgres::Client| -> i32 {
        raw.query_one("SELECT version FROM sipwake_schema", &[]).unwrap().get(0)
    };
    let mut raw = client(&pg);
    assert_eq!(version(&mut raw), PG_SCHEMA_VERSION as i32);
    // And again, one after the other, keeping the data.
    for _ in 0..2 {
        let store = open(&pg, "n1");
        submit_wait(&store, vec![Change::Upsert(binding("b1", "alice@example.com", 1))]).unwrap();
        assert_eq!(store.load_bindings().unwrap().len(), 1);
    }
    let tables: Vec<String> = raw
        .query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        tables,
        ["bindings", "cluster_nodes", "meta", "refresh_claims", "secrets", "sipwake_schema", "subscribers", "upstream"]
    );

    let newer = PG_SCHEMA_VERSION + 7;
    raw.execute("UPDATE sipwake_schema SET version = $1", &[&(newer as i32)]).unwrap();
    let err = PgStore::open(PgOptions::new(pg.url(), "n1")).unwrap_err();
    let Error::SchemaTooNew { found, known, .. } = &err else { panic!("{err:?}") };
    assert_eq!((*found, *known), (newer, PG_SCHEMA_VERSION));
    let msg = err.to_string();
    assert!(msg.contains(&pg.url()) && msg.contains("newer sipwake"), "{msg}");
    assert_eq!(version(&mut raw), newer as i32, "left alone");
}

/// The time of one group of 1000 upserts (one UNNEST statement), next to
/// the same 1000 rows written one statement each, in one transaction; and
/// group commit under concurrent submitters keeps every thread's order.
#[test]
fn group_of_1000_upserts_and_concurrent_order() {
    let pg = TestPg::start();
    let store = Arc::new(open(&pg, "n1"));
    let rows: Vec<StoredBinding> =
        (0..1000).map(|i| binding(&format!("g{i:04}"), &format!("u{}@example.com", i % 200), i)).collect();
    let mut timings = Vec::new();
    for round in 0..3 {
        let gate = hold_writer(&*store);
        for b in &rows {
            let b = StoredBinding { cseq: b.cseq + round, ..b.clone() };
            store.submit(vec![Change::Upsert(b)], Box::new(|r| r.unwrap()));
        }
        let commits = store.stats().commits;
        let started = Instant::now();
        drop(gate);
        store.flush();
        timings.push(started.elapsed());
        assert_eq!(store.stats().commits, commits + 1, "one transaction for the group");
    }
    assert_eq!(store.load_bindings().unwrap().len(), 1000);

    let mut raw = client(&pg);
    let st = raw
        .prepare(
            "INSERT INTO bindings (id, aor, contact, q, expires_at_ms, call_id, cseq, instance, reg_id, path, transport, \
             remote, local, user_agent, registered_at_ms, extra, push_state, node) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
             ON CONFLICT (id) DO UPDATE SET cseq = EXCLUDED.cseq, contact = EXCLUDED.contact",
        )
        .unwrap();
    let mut baseline = Vec::new();
    for round in 0..3i64 {
        let started = Instant::now();
        let mut tx = raw.transaction().unwrap();
        for b in &rows {
            let q = b.q.map(i32::from);
            let reg_id = b.reg_id.map(i64::from);
            tx.execute(
                &st,
                &[
                    &b.id,
                    &b.aor,
                    &b.contact,
                    &q,
                    &(b.expires_at_ms as i64),
                    &b.call_id,
                    &(i64::from(b.cseq) + round),
                    &b.instance,
                    &reg_id,
                    &"[]",
                    &b.transport,
                    &b.remote,
                    &b.local,
                    &b.user_agent,
                    &(b.registered_at_ms as i64),
                    &b.extra,
                    &b.push_state,
                    &"n1",
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        baseline.push(started.elapsed());
    }
    eprintln!(
        "group of 1000 upserts (one UNNEST statement + notify + commit): {timings:?}; \
         the same 1000 rows as 1000 prepared statements in one transaction: {baseline:?}"
    );

    // Concurrent submitters: callbacks in each thread's order, last write wins.
    const THREADS: u32 = 4;
    const PER_THREAD: u32 = 1000;
    let seen: Vec<Arc<Mutex<Vec<u32>>>> = (0..THREADS).map(|_| Arc::default()).collect();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, seen) = (store.clone(), seen[t as usize].clone());
            thread::spawn(move || {
                for i in 0..PER_THREAD {
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
    let commits = store.stats().commits;
    let started = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    store.flush();
    let took = started.elapsed();
    for (t, s) in seen.iter().enumerate() {
        let s = s.lock().unwrap();
        assert_eq!(s.len(), PER_THREAD as usize);
        assert!(s.windows(2).all(|w| w[0] < w[1]), "thread {t}: callbacks out of order");
    }
    let loaded = store.load_bindings().unwrap();
    for b in loaded.iter().filter(|b| b.id.starts_with('t')) {
        let slot: u32 = b.id.rsplit('-').next().unwrap().parse().unwrap();
        assert_eq!(b.cseq, PER_THREAD - 100 + slot, "{}", b.id);
    }
    let stats = store.stats();
    eprintln!(
        "{} single-upsert batches from {THREADS} threads in {took:?}: {} commits; {stats:?}",
        THREADS * PER_THREAD,
        stats.commits - commits
    );
    assert!((stats.commits - commits) * 5 <= u64::from(THREADS * PER_THREAD), "group commit happened: {stats:?}");
}

/// TLS to the database: `verify-full` (and `require`) against the CA of
/// `ca_file` or the URL's `sslrootcert`, by IP address or host name; the
/// server accepts TLS only, so plain `disable` is refused, and so is a
/// certificate the system roots do not vouch for.
#[test]
fn tls_verifies_the_server_against_the_given_ca() {
    let pg = TestPg::start_tls();
    let ca = pg.ca_file();
    let port = pg.port();
    for (url, ca_file) in [
        (format!("postgres://sipwake@127.0.0.1:{port}/sipwake?sslmode=verify-full"), Some(ca.clone())),
        (format!("postgres://sipwake@localhost:{port}/sipwake?sslmode=require"), Some(ca.clone())),
        (format!("postgres://sipwake@127.0.0.1:{port}/sipwake?sslmode=verify-full&sslrootcert={}", ca.display()), None),
    ] {
        let store = PgStore::open(PgOptions { ca_file, ..PgOptions::new(&url, "n1") }).unwrap();
        submit_wait(&store, vec![Change::Upsert(binding("t1", "alice@example.com", 1))]).unwrap();
        assert_eq!(store.load_bindings().unwrap().len(), 1, "{url}");
        let rx = follow(&store);
        store.sync(3).unwrap();
        assert_eq!(next(&rx), FeedEvent::Synced(3), "the feed connects over TLS too");
    }
    let plain = format!("postgres://sipwake@127.0.0.1:{port}/sipwake?sslmode=disable");
    let err = PgStore::open(PgOptions::new(&plain, "n1")).unwrap_err();
    assert!(matches!(err, Error::Open { .. }) && err.to_string().contains("no encryption"), "{err}");
    let unknown_ca = format!("postgres://sipwake@127.0.0.1:{port}/sipwake?sslmode=verify-full");
    let err = PgStore::open(PgOptions::new(&unknown_ca, "n1")).unwrap_err();
    assert!(matches!(err, Error::Open { .. }) && err.to_string().contains("TLS"), "{err}");
    eprintln!("untrusted certificate: {err}");
}

/// Called from inside an async runtime (say, a tokio task), the store does
/// not panic: the synchronous driver moves to a thread of its own.
#[test]
fn usable_from_inside_an_async_runtime() {
    let pg = TestPg::start();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let url = pg.url();
    let store = rt.block_on(async move { PgStore::open(PgOptions::new(url, "n1")).unwrap() });
    rt.block_on(async {
        assert!(store.load_bindings().unwrap().is_empty());
        store.put_subscriber(&common::subscriber("alice", "example.com")).unwrap();
        assert_eq!(store.subscribers().unwrap().len(), 1);
        assert!(store.claim_refresh("b", 1, 0).unwrap());
        store.follow(Box::new(|_| {})).unwrap();
    });
    rt.block_on(async move { drop(store) });
}
