//! The error type of the location store: [`Error`] and [`Result`].
//!
//! Owns the wording of every failure the store reports. Each message names
//! the database file and says what to fix (a directory, a permission, the
//! disk, a newer sipwake), because it ends up in the server log or on the
//! terminal of `sipwake user`. Errors are `Clone` so that one failed commit
//! can be handed to every `done` callback of its group.
//!
//! Must not touch storage: backends build these values (see
//! `sqlite/conn.rs` for the translation of SQLite error codes and
//! `postgres/conn.rs` for PostgreSQL's). The PostgreSQL backend names its
//! database by its URL with the password removed (the `path` of the
//! variants shared with SQLite holds that URL then): no message ever
//! carries a password.

use std::path::PathBuf;

/// What went wrong, with a hint on what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database could not be opened, created or configured.
    #[error("cannot open database {}: {reason}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// The cause and what to fix.
        reason: String,
    },
    /// The database was written by a newer sipwake whose schema this one
    /// does not know.
    #[error(
        "database {} has schema version {found}, but this sipwake knows versions up to {known} only: \
         it was written by a newer sipwake; run that version, or restore a backup made before the upgrade",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Newest version this program knows.
        known: u32,
    },
    /// Applying an embedded schema migration failed; the transaction was
    /// rolled back, so the file is still at version `from`.
    #[error(
        "cannot migrate database {} from schema version {from} to {to}: {reason}; the file was left unchanged",
        path.display()
    )]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// Version before the migration.
        from: u32,
        /// Version the migration would have reached.
        to: u32,
        /// The cause and what to fix.
        reason: String,
    },
    /// A statement or commit failed.
    #[error("database {}: {op} failed: {reason}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done, e.g. `"commit of 120 changes"`.
        op: String,
        /// The cause and what to fix.
        reason: String,
    },
    /// A stored row cannot be decoded (edited by hand, or damaged).
    #[error(
        "database {}: {what} is corrupt: {reason}; fix or delete that row with the sqlite3 shell",
        path.display()
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Which row, e.g. `subscriber alice@example.com`.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A value handed to the store cannot be stored (e.g. a timestamp beyond
    /// `i64::MAX`); only the batch carrying it fails.
    #[error("cannot store {what}: {reason}")]
    Invalid {
        /// Which value, e.g. `binding b1: expires_at_ms`.
        what: String,
        /// Why.
        reason: String,
    },
    /// The database server cannot be reached, or the connection to it was
    /// lost (PostgreSQL). Transient: the store reconnects by itself, with
    /// backoff, and later operations succeed once the server is back.
    #[error("database {what} unreachable: {reason}; sipwake retries by itself")]
    Unavailable {
        /// The database (URL without password).
        what: String,
        /// The cause.
        reason: String,
    },
    /// A statement or transaction failed on a reachable PostgreSQL server.
    #[error("database {db}: {op} failed: {reason}")]
    Postgres {
        /// The database (URL without password).
        db: String,
        /// What was being done, e.g. `"commit of 120 changes"`.
        op: String,
        /// The cause and what to fix.
        reason: String,
    },
    /// The writer thread is gone (it can only stop after a panic in the
    /// store itself); nothing more can be written.
    #[error(
        "the writer thread of database {} has stopped, so nothing more can be written; restart sipwake \
         and report the panic logged before this",
        path.display()
    )]
    WriterStopped {
        /// The database file.
        path: PathBuf,
    },
}

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
