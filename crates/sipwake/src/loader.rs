//! Start-up load of the stored location into a node that already serves.
//!
//! The listeners start with the node's loading gate up
//! (`sip_node::loading`): OPTIONS and whatever does not read the location
//! is answered from the first millisecond, the rest is held. Meanwhile two
//! threads load the table: a reader scans the store
//! ([`Store::load_bindings_with`], rows decoded as they come) and hands
//! chunks of rows to a restorer, which converts them (contact URI parse,
//! addresses) outside the node's lock and feeds them to the node one chunk
//! per lock hold, so answers keep flowing between chunks. Expired and
//! unreadable rows are removed from the store. Then the upstream
//! registrations (mid-registrar), the owners (cluster), the gate goes down
//! (held requests are dispatched in order), and in a cluster the change
//! feed and heartbeat start — after the load, so no replicated change is
//! overwritten by an older row of the snapshot.
//!
//! This module owns the order of the start-up steps; what a restored row
//! means is the node's business (`Node::restore`).

use crate::driver::Driver;
use location_store::{Change, Store, StoredBinding};
use std::sync::Arc;
use std::time::Instant;

/// Rows per chunk: one lock hold of the node (a few ms).
const CHUNK: usize = 2048;
/// Chunks read ahead of the restorer.
const AHEAD: usize = 8;

/// What a finished load reports.
#[derive(Debug, Default, Clone, Copy)]
pub struct Loaded {
    pub rows: usize,
    pub kept: usize,
    pub push: usize,
    pub dropped: usize,
}

/// The cluster's start, run once the location is whole.
pub type AfterLoad = Box<dyn FnOnce(&Arc<Driver>) + Send>;

/// Starts the load on its own threads; the result (or what failed) is sent
/// on `done` once the gate is down.
pub fn spawn(
    driver: Arc<Driver>,
    store: Arc<dyn Store>,
    after: Option<AfterLoad>,
    done: tokio::sync::oneshot::Sender<anyhow::Result<Loaded>>,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("location-load".into())
        .spawn(move || {
            let r = load(&driver, &*store);
            if r.is_ok()
                && let Some(f) = after
            {
                let _rt = driver.rt.enter();
                f(&driver);
            }
            let _ = done.send(r);
        })
        .map_err(|e| anyhow::anyhow!("cannot start the location loader thread: {e}"))?;
    Ok(())
}

fn load(driver: &Arc<Driver>, store: &dyn Store) -> anyhow::Result<Loaded> {
    let t0 = Instant::now();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<StoredBinding>>(AHEAD);
    let d = driver.clone();
    let restorer = std::thread::Builder::new()
        .name("location-restore".into())
        .spawn(move || {
            // In a cluster another node may be refreshing an expired row right
            // now: it is removed only if still expired.
            let cluster = d.store.cluster().is_some();
            restore_chunks(&d, cluster, rx)
        })
        .map_err(|e| anyhow::anyhow!("cannot start the location restore thread: {e}"))?;
    // Tables sized once from the stored count (a rough count is fine: the
    // rows read are what is restored).
    match store.count_bindings() {
        Ok(Some((all, push))) => driver.with_node(|node, _| node.reserve_bindings(all, push)),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot count the stored bindings; loading without sizing the tables"),
    }
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut rows = 0usize;
    let scanned = store.load_bindings_with(&mut |b| {
        rows += 1;
        chunk.push(b);
        if chunk.len() == CHUNK {
            // The restorer stopped only if it panicked: the join below says so.
            let _ = tx.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)));
        }
    });
    if !chunk.is_empty() {
        let _ = tx.send(chunk);
    }
    drop(tx);
    let read = t0.elapsed();
    let (kept, push, dead) = restorer.join().map_err(|_| anyhow::anyhow!("the location restore thread panicked"))?;
    scanned.map_err(|e| anyhow::anyhow!("cannot load bindings from the store: {e}"))?;
    let dropped = dead.len();
    if !dead.is_empty() {
        store.submit(dead, Box::new(|_| {}));
    }
    if driver.read(|n| n.mid().is_some()) {
        let rows = store.load_upstream().map_err(|e| anyhow::anyhow!("cannot load the upstream registrations: {e}"))?;
        let regs: Vec<_> = rows.into_iter().map(crate::store_map::upstream_from_row).collect();
        let n = regs.len();
        let kept = driver.with_node(|node, now| node.restore_upstream(regs, now));
        tracing::info!(loaded = n, kept, "upstream registrations restored from the store");
    }
    driver.with_node(|n, now| n.finish_loading(now));
    tracing::info!(
        loaded = kept,
        dropped,
        push,
        read_ms = read.as_millis() as u64,
        total_ms = t0.elapsed().as_millis() as u64,
        "bindings restored from the store"
    );
    Ok(Loaded { rows, kept, push, dropped })
}

/// The restorer: converts each chunk outside the node's lock, restores it
/// under one lock hold. Returns (kept, push bindings, removals of expired
/// and unreadable rows).
fn restore_chunks(
    driver: &Driver,
    cluster: bool,
    rx: std::sync::mpsc::Receiver<Vec<StoredBinding>>,
) -> (usize, usize, Vec<Change>) {
    let (mut kept, mut push) = (0, 0);
    let mut dead = Vec::new();
    let now_ms = crate::server::now_ms();
    let gone = |id: String| if cluster { Change::Expire { id, at: now_ms } } else { Change::Remove { id } };
    for rows in rx {
        let mut bindings = Vec::with_capacity(rows.len());
        let mut owners = Vec::new();
        for row in rows {
            if let Some(o) = &row.node {
                owners.push((row.id.clone(), o.clone(), sip_registrar::Aor::from_stored(row.aor.clone())));
            }
            if row.expires_at_ms <= now_ms {
                dead.push(gone(row.id));
                continue;
            }
            match crate::store_map::from_row(row) {
                Ok(b) => bindings.push(b),
                Err((id, e)) => {
                    tracing::warn!(binding = %id, error = %e, "dropping an unreadable stored binding");
                    dead.push(gone(id));
                }
            }
        }
        let (k, p) = driver.with_node(|n, now| {
            if !owners.is_empty() {
                n.set_owners(owners);
            }
            n.restore(bindings, now)
        });
        kept += k;
        push += p;
    }
    (kept, push, dead)
}
