//! Opening and configuring SQLite connections, and turning SQLite errors
//! into [`Error`]s that say what to fix.
//!
//! Owns the connection settings (open flags, WAL, `synchronous`,
//! `busy_timeout`, `foreign_keys`) and the error wording for SQLite result
//! codes. Must not touch the schema (that is `migrations.rs`) or run any
//! query on the tables.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::SqliteOptions;
use crate::error::{Error, Result};

/// WAL files larger than this are truncated back after a checkpoint (a burst
/// of registrations must not leave a huge `-wal` file behind forever).
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Open (creating if needed) the connection the writer thread owns, switch
/// the database to WAL mode and apply the per-connection settings.
pub(crate) fn open_write(path: &Path, opts: &SqliteOptions) -> Result<Connection> {
    // Mode 0600 before SQLite creates anything: it gives -wal and -shm the
    // database file's mode.
    super::perms::secure(path);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| Error::Open { path: path.to_owned(), reason: diagnose_open(path, &e) })?;
    let open_err = |e: rusqlite::Error| Error::Open { path: path.to_owned(), reason: describe(&e) };
    // Settings first: switching to WAL may have to wait for another process.
    configure(&conn, opts).map_err(open_err)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Open {
            path: path.to_owned(),
            reason: format!(
                "cannot switch it to WAL mode (SQLite kept journal_mode={mode}); put server.data_dir on a local \
                 file system (WAL needs shared memory, which network file systems lack)"
            ),
        });
    }
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT).map_err(open_err)?;
    // Checkpoints (and their fsyncs) run on the checkpointer thread, never
    // inside the writer's commit path: a commit must not wait for a disk flush
    // of the main database file.
    conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(open_err)?;
    Ok(conn)
}

/// Open the connection used for reads and subscriber writes. The file
/// exists by then (`open_write` created it).
pub(crate) fn open_read(path: &Path, opts: &SqliteOptions) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| Error::Open { path: path.to_owned(), reason: diagnose_open(path, &e) })?;
    configure(&conn, opts).map_err(|e| Error::Open { path: path.to_owned(), reason: describe(&e) })?;
    Ok(conn)
}

/// Per-connection settings (`synchronous` and `busy_timeout` are not stored
/// in the file, so every connection needs them).
fn configure(conn: &Connection, opts: &SqliteOptions) -> rusqlite::Result<()> {
    conn.busy_timeout(opts.busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", false)?;
    conn.pragma_update(None, "synchronous", if opts.synchronous_full { "FULL" } else { "NORMAL" })?;
    Ok(())
}

/// A [`Error::Sqlite`] for a failed operation.
pub(crate) fn sqlite_err(path: &Path, op: impl Into<String>, e: &rusqlite::Error) -> Error {
    Error::Sqlite { path: path.to_owned(), op: op.into(), reason: describe(e) }
}

/// SQLite's message plus what to do about it.
pub(crate) fn describe(e: &rusqlite::Error) -> String {
    let hint = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "another connection (`sipwake user`, a sqlite3 shell, a backup) kept the database locked for longer \
             than the busy timeout; close it and retry"
        }
        Some(ErrorCode::DiskFull) => "the disk is full; free space on the file system of server.data_dir",
        Some(ErrorCode::ReadOnly) => {
            "the database is read-only; check the permissions of the file, of its -wal and -shm files and of \
             server.data_dir"
        }
        Some(ErrorCode::PermissionDenied | ErrorCode::CannotOpen) => {
            "check that server.data_dir exists and that the user sipwake runs as may write there"
        }
        Some(ErrorCode::NotADatabase) => {
            "the file is not a SQLite database; move it away or point server.data_dir elsewhere"
        }
        Some(ErrorCode::DatabaseCorrupt) => {
            "the database file is damaged; restore a backup or move it away (bindings come back as phones \
             re-register, subscribers must be created again)"
        }
        Some(ErrorCode::SystemIoFailure) => "an I/O error; check the disk and the kernel log",
        Some(ErrorCode::OutOfMemory) => "SQLite ran out of memory",
        _ => "",
    };
    if hint.is_empty() { e.to_string() } else { format!("{e}; {hint}") }
}

/// Why opening `path` failed, found by looking at the directory and the file
/// ourselves: SQLite only says "unable to open database file".
fn diagnose_open(path: &Path, e: &rusqlite::Error) -> String {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return format!("directory {} does not exist; create it or check server.data_dir", dir.display());
        }
        Err(err) => {
            return format!(
                "cannot access directory {}: {}; check server.data_dir and its permissions",
                dir.display(),
                io_reason(&err)
            );
        }
        Ok(m) if !m.is_dir() => {
            return format!("{} is not a directory; check server.data_dir", dir.display());
        }
        Ok(_) => {}
    }
    if path.is_dir() {
        return "it is a directory, not a database file; check server.data_dir".to_owned();
    }
    if path.exists()
        && let Err(err) = OpenOptions::new().read(true).write(true).open(path)
    {
        return format!(
            "{}; check server.data_dir and that the file belongs to the user sipwake runs as",
            io_reason(&err)
        );
    }
    describe(e)
}

/// `permission denied` rather than `Permission denied (os error 13)`.
fn io_reason(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("sipwake.db");
        let err = open_write(&path, &SqliteOptions::default()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("cannot open database") && msg.contains("does not exist"), "{msg}");
        assert!(msg.contains("server.data_dir"), "{msg}");
    }

    #[test]
    fn directory_as_database_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_write(dir.path(), &SqliteOptions::default()).unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
    }

    #[test]
    fn not_a_database_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sipwake.db");
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let err = open_write(&path, &SqliteOptions::default()).unwrap_err();
        assert!(err.to_string().contains("not a SQLite database"), "{err}");
    }

    #[test]
    fn a_new_database_and_its_wal_and_shm_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sipwake.db");
        let conn = open_write(&path, &SqliteOptions::default()).unwrap();
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);").unwrap();
        for name in ["sipwake.db", "sipwake.db-wal", "sipwake.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }
}
