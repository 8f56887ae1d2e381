//! Creating `server.data_dir`: mode 0700 (owner only), because it holds
//! the SQLite store with the subscribers' password hashes.
//!
//! Owns only the creation of the directory and its parents; an existing
//! directory keeps its mode (the Debian package makes /var/lib/sipwake
//! 0750 root-readable by the sipwake group; the database files themselves
//! are 0600, see location-store's `sqlite/perms.rs`). Must not touch the
//! files inside.

use anyhow::Context;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// Mode of a data directory sipwake creates.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and missing parents) with mode 0700; nothing when it exists.
pub fn create(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .with_context(|| format!("cannot create data directory {} (server.data_dir)", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_data_dir_is_0700_and_an_existing_one_keeps_its_mode() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a").join("data");
        create(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        create(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o750);
    }
}
