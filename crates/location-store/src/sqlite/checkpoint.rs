//! The checkpointer thread: moves committed pages from the WAL into the
//! database file (`PRAGMA wal_checkpoint(PASSIVE)`), on a connection of its
//! own, once the WAL holds [`CHECKPOINT_FRAMES`] pages (looked at every
//! half second; the writer's WAL hook counts them), and once more at stop.
//!
//! Not more often: the first commit after a complete checkpoint starts the
//! WAL over, and SQLite then fsyncs the new WAL header inside that commit
//! (about 0.4 ms here). Checkpointing every half second made nearly every
//! REGISTER of an idle server pay that fsync; at 1000 pages (SQLite's own
//! auto-checkpoint size, 4 MiB) one commit in hundreds does.
//!
//! Under a steady stream of commits a PASSIVE checkpoint never finds the WAL
//! wholly copied (new frames arrive while it runs), so the WAL never starts
//! over and grows without bound (750 MiB after a million REGISTERs at
//! 8,000/s, read through at every start-up). A RESTART checkpoint lets the
//! next commit start the WAL over (and `journal_size_limit` trim the file),
//! but it holds commits back while it runs, and a commit held back is a
//! 200 OK held back (measured: p99 of REGISTER 0.6 → 100 ms at 10,000/s).
//! So it runs when the WAL holds [`RESTART_FRAMES`] pages and no commit came
//! for a whole period (nothing to hold back), and under load only past
//! [`FORCE_RESTART_FRAMES`] (1 GiB: a bound, reached after minutes of
//! sustained load). At stop, a TRUNCATE checkpoint leaves an empty WAL for
//! the next start.
//!
//! Owns checkpointing only. The writer connection has automatic
//! checkpoints turned off, so the fsyncs of a checkpoint never stall a
//! commit (and so never delay a 200 OK); a PASSIVE checkpoint does not block
//! the writer either. Must not write to any table.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, Result};

const PERIOD: Duration = Duration::from_millis(500);
/// WAL pages that call for a checkpoint.
pub(crate) const CHECKPOINT_FRAMES: i64 = 1000;
/// WAL pages (4 KiB each: 64 MiB) past which an idle moment is used to start the WAL over.
pub(crate) const RESTART_FRAMES: i64 = 16_384;
/// WAL pages (1 GiB) past which the WAL is started over even under load.
pub(crate) const FORCE_RESTART_FRAMES: i64 = 262_144;

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

/// `frames`: the pages in the WAL after the last commit (the writer
/// connection's WAL hook stores it).
pub(crate) fn spawn(conn: Connection, path: PathBuf, frames: Arc<AtomicI64>) -> Result<Checkpointer> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let p = path.clone();
    let handle = thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            // WAL pages at the previous look, at the last checkpoint, at the last RESTART.
            let (mut seen, mut done_at, mut restarted_at) = (-1i64, -1i64, -1i64);
            loop {
                let stopping = flag.load(Ordering::SeqCst);
                // The WAL's size after the last commit (the writer's WAL hook): unchanged
                // over a whole period means no commit came meanwhile.
                let in_wal = frames.load(Ordering::Relaxed);
                let idle = in_wal == seen;
                seen = in_wal;
                let mode = if stopping {
                    Some("TRUNCATE")
                } else if restarted_at != in_wal
                    && (in_wal >= FORCE_RESTART_FRAMES || (idle && in_wal >= RESTART_FRAMES))
                {
                    Some("RESTART")
                } else if in_wal >= CHECKPOINT_FRAMES && in_wal != done_at {
                    Some("PASSIVE")
                } else {
                    None
                };
                if let Some(mode) = mode {
                    done_at = in_wal;
                    if mode == "RESTART" {
                        restarted_at = in_wal;
                    }
                    let res: rusqlite::Result<(i64, i64, i64)> =
                        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        });
                    match res {
                        Err(e) => {
                            tracing::warn!(db = %p.display(), error = %e, mode, "WAL checkpoint failed; will retry");
                            done_at = -1;
                            restarted_at = -1;
                        }
                        Ok((1, log, done)) if mode != "PASSIVE" => tracing::debug!(
                            db = %p.display(),
                            mode,
                            log,
                            done,
                            "WAL checkpoint could not start the WAL over (busy); will retry"
                        ),
                        Ok(_) => {}
                    }
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
