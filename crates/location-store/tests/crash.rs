//! "Acknowledged ⇒ durable": a child process (this test binary, started
//! again with an environment variable) submits bindings, each with its
//! upstream registration in the same batch (as the mid-registrar does),
//! from several threads and prints each one once its `done` fired; the
//! parent kills it with SIGKILL at a random moment and checks that the
//! reopened database holds every acknowledged change, and that a binding
//! and its upstream row were never torn apart. Three rounds on the same
//! file: twice with `synchronous=NORMAL`, once with `FULL`.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{binding, db_path, open, upstream};
use location_store::{Change, SqliteOptions, SqliteStore, Store};

const CHILD_DB: &str = "LOCATION_STORE_CRASH_CHILD_DB";
const CHILD_ROUND: &str = "LOCATION_STORE_CRASH_CHILD_ROUND";
const CHILD_FULL: &str = "LOCATION_STORE_CRASH_CHILD_FULL";
const THREADS: u32 = 4;
const IDS_PER_THREAD: u32 = 300;
const ROUND_STRIDE: u32 = 10_000_000;

fn aor_of(t: u32) -> String {
    format!("user{t}@example.com")
}

/// Child entry point: runs (and never returns) only when started by
/// [`acknowledged_changes_survive_kill_9`]; a no-op in a normal test run.
#[test]
fn crash_child_entry() {
    let Ok(path) = std::env::var(CHILD_DB) else { return };
    let round: u32 = std::env::var(CHILD_ROUND).unwrap().parse().unwrap();
    let opts = SqliteOptions { synchronous_full: std::env::var_os(CHILD_FULL).is_some(), ..SqliteOptions::default() };
    let store = Arc::new(SqliteStore::open(path.as_ref(), opts).unwrap());
    let in_flight = Arc::new(AtomicU64::new(0));
    for t in 0..THREADS {
        let store = store.clone();
        let in_flight = in_flight.clone();
        thread::spawn(move || {
            for i in 0.. {
                let id = format!("t{t}-{}", i % IDS_PER_THREAD);
                let cseq = round * ROUND_STRIDE + i;
                // Bound the queue so acknowledgements keep flowing.
                while in_flight.load(Ordering::Relaxed) > 4_000 {
                    thread::sleep(Duration::from_micros(200));
                }
                in_flight.fetch_add(1, Ordering::Relaxed);
                let in_flight = in_flight.clone();
                store.submit(
                    vec![
                        Change::Upsert(binding(&id, &aor_of(t), cseq)),
                        Change::UpsertUpstream(upstream(&id, &aor_of(t), cseq)),
                    ],
                    Box::new(move |r| {
                        r.unwrap();
                        // Printed (written to the pipe) only once durable.
                        println!("ACK {id} {cseq}");
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                    }),
                );
            }
        });
    }
    loop {
        thread::park();
    }
}

/// Kills the child if the test fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A small xorshift, seeded from the clock (printed, to replay a failure).
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn acknowledged_changes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let mut seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("crash test seed {seed}");
    let exe = std::env::current_exe().unwrap();

    for round in 1..=3u32 {
        let mut cmd = Command::new(&exe);
        cmd.args(["--exact", "crash_child_entry", "--nocapture", "--test-threads=1"])
            .env(CHILD_DB, &path)
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if round == 3 {
            cmd.env(CHILD_FULL, "1");
        }
        let mut child = KillOnDrop(cmd.spawn().unwrap());
        let stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });

        // Wait until it is acknowledging, then kill it at a random moment.
        let mut lines = Vec::new();
        loop {
            let line = rx.recv_timeout(Duration::from_secs(60)).expect("child produced no acknowledgement");
            let started = line.starts_with("ACK ");
            lines.push(line);
            if started {
                break;
            }
        }
        let delay = Duration::from_millis(next(&mut seed) % 400);
        thread::sleep(delay);
        assert!(child.0.try_wait().unwrap().is_none(), "child exited by itself; its output: {lines:?}");
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());

        // Every acknowledged change must be there (or a later one to the
        // same id, which replaces it entirely).
        let mut acked: HashMap<String, u32> = HashMap::new();
        for line in &lines {
            let Some(rest) = line.strip_prefix("ACK ") else { continue };
            let (id, cseq) = rest.split_once(' ').unwrap();
            let cseq: u32 = cseq.parse().unwrap();
            let slot = acked.entry(id.to_owned()).or_insert(cseq);
            *slot = (*slot).max(cseq);
        }
        let store = open(&path);
        let stored: HashMap<String, _> =
            store.load_bindings().unwrap().into_iter().map(|b| (b.id.clone(), b)).collect();
        let stored_upstream: HashMap<String, _> =
            store.load_upstream().unwrap().into_iter().map(|u| (u.key.clone(), u)).collect();
        for (id, &cseq) in &acked {
            let b = stored.get(id).unwrap_or_else(|| panic!("round {round}: acknowledged binding {id} lost"));
            assert!(b.cseq >= cseq, "round {round}: {id} acknowledged at cseq {cseq} but stored {}", b.cseq);
            // The whole row is the one written for that cseq (no torn rows).
            let t: u32 = id[1..].split('-').next().unwrap().parse().unwrap();
            assert_eq!(*b, binding(id, &aor_of(t), b.cseq));
            // Its upstream row came in the same batch, so it is from the
            // very same cseq (one transaction), and whole too.
            let u = stored_upstream
                .get(id)
                .unwrap_or_else(|| panic!("round {round}: acknowledged upstream registration {id} lost"));
            assert_eq!(*u, upstream(id, &aor_of(t), b.cseq), "round {round}: {id} torn from its binding");
        }
        // And nothing committed is torn either, acknowledged or not.
        assert_eq!(stored.len(), stored_upstream.len(), "round {round}");
        for (id, b) in &stored {
            assert_eq!(stored_upstream.get(id).map(|u| u.cseq), Some(b.cseq), "round {round}: {id} torn");
        }
        let total: usize = lines.iter().filter(|l| l.starts_with("ACK ")).count();
        eprintln!(
            "round {round}: killed after {delay:?}, {total} acknowledgements for {} ids, all durable",
            acked.len()
        );
        assert!(!acked.is_empty());
    }
}
