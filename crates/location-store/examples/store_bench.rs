//! A quick manual measurement of group commit (not a test; nothing here is
//! asserted):
//!
//! ```text
//! cargo run --release -p location-store --example store_bench [DIR]
//! ```
//!
//! DIR (default: the system temp dir) should be on the disk the server will
//! use: on tmpfs, fsync is free and the `FULL` numbers mean nothing.
//!
//! Two loads, each with `synchronous=NORMAL` and `FULL`:
//! * open loop: 4 threads submit single-upsert batches as fast as they can
//!   (at most 20 000 queued), like a burst of REGISTERs;
//! * closed loop: N clients each submit the next upsert only when the
//!   previous one was acknowledged, like N phones waiting for their 200 OK.
//!   With N = 1 no grouping is possible: that is the per-commit latency.
//!
//! Owns nothing the crate uses; touches only a database it creates in DIR.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use location_store::{Change, SqliteOptions, SqliteStore, Store, StoreStats, StoredBinding};

const DISTINCT_IDS: u64 = 100_000;

fn binding(n: u64) -> StoredBinding {
    let id = n % DISTINCT_IDS;
    StoredBinding {
        id: format!("b{id:06}"),
        aor: format!("user{}@example.com", id / 2),
        contact: format!(
            "<sip:u{id}@10.1.{}.{}:5060;transport=tcp;pn-provider=apns;pn-prid=00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0;pn-param=ABCD1234.com.example.voip>",
            (id >> 8) & 255,
            id & 255
        ),
        q: None,
        expires_at_ms: 1_700_000_000_000 + n,
        call_id: format!("{n:016x}@phone"),
        cseq: n as u32,
        instance: Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>".into()),
        reg_id: Some(1),
        path: vec!["<sip:edge.example.com;lr;ob>".into()],
        transport: "tcp".into(),
        remote: "203.0.113.9:40000".into(),
        local: "198.51.100.1:5060".into(),
        user_agent: Some("Bench/1.0".into()),
        registered_at_ms: 1_700_000_000_000,
        extra: None,
        push_state: None,
        node: None,
    }
}

fn fresh_store(dir: &Path, name: &str, full: bool) -> Arc<SqliteStore> {
    let path = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(PathBuf::from(format!("{}{suffix}", path.display())));
    }
    Arc::new(SqliteStore::open(&path, SqliteOptions { synchronous_full: full, ..SqliteOptions::default() }).unwrap())
}

fn open_loop(store: &Arc<SqliteStore>, total: u64) -> Duration {
    const THREADS: u64 = 4;
    let in_flight = Arc::new((Mutex::new(0u64), Condvar::new()));
    let started = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let in_flight = in_flight.clone();
            thread::spawn(move || {
                for i in 0..total / THREADS {
                    {
                        let (lock, cv) = &*in_flight;
                        let mut n = lock.lock().unwrap();
                        if *n >= 20_000 {
                            while *n > 10_000 {
                                n = cv.wait(n).unwrap();
                            }
                        }
                        *n += 1;
                    }
                    let in_flight = in_flight.clone();
                    store.submit(
                        vec![Change::Upsert(binding(i * THREADS + t))],
                        Box::new(move |r| {
                            r.unwrap();
                            let (lock, cv) = &*in_flight;
                            let mut n = lock.lock().unwrap();
                            *n -= 1;
                            // Wake the submitters only when the queue has
                            // drained to half (no wake-up storm per ack).
                            if *n == 10_000 {
                                cv.notify_all();
                            }
                        }),
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    store.flush();
    started.elapsed()
}

fn closed_loop(store: &Arc<SqliteStore>, clients: u64, total: u64) -> Duration {
    struct Ctx {
        store: Arc<SqliteStore>,
        remaining: AtomicI64,
        seq: AtomicU64,
        finished: Mutex<mpsc::Sender<()>>,
    }
    fn issue(ctx: Arc<Ctx>) {
        if ctx.remaining.fetch_sub(1, Ordering::Relaxed) <= 0 {
            let _ = ctx.finished.lock().unwrap().send(());
            return;
        }
        let n = ctx.seq.fetch_add(1, Ordering::Relaxed);
        let next = ctx.clone();
        ctx.store.submit(
            vec![Change::Upsert(binding(n))],
            Box::new(move |r| {
                r.unwrap();
                issue(next);
            }),
        );
    }
    let (tx, rx) = mpsc::channel();
    let ctx = Arc::new(Ctx {
        store: store.clone(),
        remaining: AtomicI64::new(total as i64),
        seq: AtomicU64::new(0),
        finished: Mutex::new(tx),
    });
    let started = Instant::now();
    for _ in 0..clients {
        issue(ctx.clone());
    }
    for _ in 0..clients {
        rx.recv().unwrap();
    }
    started.elapsed()
}

fn report(what: &str, total: u64, took: Duration, before: StoreStats, after: StoreStats) {
    let commits = after.commits - before.commits;
    println!(
        "{what:<44} {total:>8} upserts in {:>7.3} s = {:>9.0} upserts/s, {commits:>6} commits ({:.1} upserts/commit, {:.3} ms/commit)",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64(),
        total as f64 / commits.max(1) as f64,
        took.as_secs_f64() * 1000.0 / commits.max(1) as f64,
    );
}

fn main() {
    let dir = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = dir.join(format!("location-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("database directory: {}", dir.display());

    for full in [false, true] {
        let sync = if full { "FULL" } else { "NORMAL" };
        let store = fresh_store(&dir, &format!("bench-{sync}.db"), full);
        let total = if full { 100_000 } else { 400_000 };
        let before = store.stats();
        let took = open_loop(&store, total);
        report(&format!("synchronous={sync} open loop, 4 threads"), total, took, before, store.stats());
        for clients in [1u64, 10, 100, 1000] {
            let total = match (full, clients) {
                (true, 1) => 500,
                (true, _) => 20_000.max(clients * 20),
                (false, 1) => 5_000,
                (false, _) => 100_000,
            };
            let before = store.stats();
            let took = closed_loop(&store, clients, total);
            report(&format!("synchronous={sync} closed loop, {clients} clients"), total, took, before, store.stats());
        }
        println!("  largest group: {} batches", store.stats().largest_group);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
