//! End-to-end: the modes of what the server keeps on disk. `sipwake.db`
//! holds the subscribers' password hashes: the real binary creates its data
//! directory 0700 and its database files 0600 whatever the umask, and sets
//! a world-readable database found at start-up back to 0600 with a warning
//! naming the file. `sipwake user add` on a fresh directory does the same.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

/// The database files that exist, each with its mode.
fn db_modes(data: &Path) -> Vec<(String, u32)> {
    ["sipwake.db", "sipwake.db-wal", "sipwake.db-shm"]
        .iter()
        .map(|n| data.join(n))
        .filter(|p| p.exists())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), mode(&p)))
        .collect()
}

#[test]
fn the_server_creates_its_data_0700_and_0600_and_repairs_a_world_readable_db() {
    let server = Server::start();
    let data = server.data_dir();
    assert_eq!(mode(&data), 0o700, "data dir");
    let modes = db_modes(&data);
    assert!(modes.iter().any(|(n, _)| n == "sipwake.db"), "{modes:?}");
    assert!(modes.iter().all(|(_, m)| *m == 0o600), "{modes:?}");
    assert!(!server.log().contains("database file was mode"), "{}", server.log());

    // A copy restored with the wrong mode (cp without -p, an old sipwake).
    let dir = server.kill9();
    let data = dir.path().join("data");
    for (name, _) in db_modes(&data) {
        std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let server = Server::start_in(dir, &[], None);
    let modes = db_modes(&server.data_dir());
    assert!(modes.iter().all(|(_, m)| *m == 0o600), "{modes:?}");
    let log = server.log();
    assert!(
        log.contains("database file was mode 0644") && log.contains("sipwake.db"),
        "no warning naming the file:\n{log}"
    );
    assert!(server.terminate().success());
}

#[test]
fn sipwake_user_add_on_a_fresh_directory_creates_it_0700_and_0600() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("new").join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipwake"))
        .arg("--data-dir")
        .arg(&data)
        .args(["user", "add", "alice@localhost"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"secret-password\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&data), 0o700, "data dir");
    let modes = db_modes(&data);
    assert!(modes.iter().any(|(n, _)| n == "sipwake.db") && modes.iter().all(|(_, m)| *m == 0o600), "{modes:?}");
}
