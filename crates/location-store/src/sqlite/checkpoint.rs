//! The checkpointer thread: moves committed pages from the WAL into the
//! database file (`PRAGMA wal_checkpoint(PASSIVE)`) every half second, on a
//! connection of its own.
//!
//! Owns checkpointing only. The writer connection has automatic
//! checkpoints turned off, so the fsyncs of a checkpoint never stall a
//! commit (and so never delay a 200 OK); a PASSIVE checkpoint does not block
//! the writer either. Must not write to any table.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, Result};

const PERIOD: Duration = Duration::from_millis(500);

pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Checkpointer {
    /// Stops the thread after a last checkpoint.
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.thread().unpark();
        let _ = self.handle.join();
    }
}

pub(crate) fn spawn(conn: Connection, path: PathBuf) -> Result<Checkpointer> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let p = path.clone();
    let handle = thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            loop {
                let stopping = flag.load(Ordering::SeqCst);
                let res: rusqlite::Result<(i64, i64, i64)> =
                    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)));
                if let Err(e) = res {
                    tracing::warn!(db = %p.display(), error = %e, "WAL checkpoint failed; will retry");
                }
                if stopping {
                    return;
                }
                thread::park_timeout(PERIOD);
            }
        })
        .map_err(|e| Error::Open { path, reason: format!("cannot start the checkpoint thread: {e}") })?;
    Ok(Checkpointer { stop, handle })
}
