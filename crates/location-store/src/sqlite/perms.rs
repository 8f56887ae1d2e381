//! File modes of the SQLite database: `sipwake.db` holds the subscribers'
//! password hashes, so it and its `-wal`, `-shm` and `-journal` files are
//! readable by their owner only (0600).
//!
//! Owns creating a missing database file with mode 0600 before SQLite opens
//! it (SQLite then gives its `-wal` and `-shm` files the same mode), and
//! taking group and other bits off existing files, with a warning. Must
//! not open connections or touch the contents of any file.

use std::fs::{OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of every database file.
pub(crate) const FILE_MODE: u32 = 0o600;

/// The database file and the files SQLite keeps beside it.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![path.to_owned()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        out.push(PathBuf::from(name));
    }
    out
}

/// Creates `path` empty with mode 0600 when it does not exist (an empty
/// file is an empty SQLite database), and takes group and other bits off
/// the database files that exist. A mode that cannot be changed (a file of
/// another user) is only warned about: opening then succeeds or fails as
/// before.
pub(crate) fn secure(path: &Path) {
    // An error means the file exists (the usual case), or the directory is
    // missing or not writable, which opening then reports with its diagnosis.
    let _created = OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(path);
    for file in files(path) {
        let mode = match std::fs::metadata(&file) {
            Ok(m) if m.is_file() => m.permissions().mode() & 0o777,
            _ => continue,
        };
        if mode & 0o077 == 0 {
            continue;
        }
        match std::fs::set_permissions(&file, Permissions::from_mode(mode & 0o700)) {
            Ok(()) => tracing::warn!(
                file = %file.display(),
                "database file was mode {mode:04o} (readable by other users; it holds password hashes): set to {:04o}",
                mode & 0o700
            ),
            Err(e) => tracing::warn!(
                file = %file.display(),
                "database file is mode {mode:04o} (readable by other users; it holds password hashes) and cannot be \
                 changed: {e}; chmod 600 it"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_database_file_is_created_0600() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sipwake.db");
        secure(&db);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);
    }

    #[test]
    fn world_readable_database_files_lose_group_and_other_bits() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sipwake.db");
        let wal = dir.path().join("sipwake.db-wal");
        for p in [&db, &wal] {
            std::fs::write(p, b"x").unwrap();
            std::fs::set_permissions(p, Permissions::from_mode(0o644)).unwrap();
        }
        secure(&db);
        assert_eq!((mode(&db), mode(&wal)), (0o600, 0o600));
        assert_eq!(std::fs::read(&db).unwrap(), b"x", "contents untouched");
    }
}
