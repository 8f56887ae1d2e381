//! End-to-end: one server per data directory. A second server started on
//! the directory of a running one stops at once, naming the directory, the
//! lock file, the PID that holds it and the fix; the first keeps serving,
//! and `sipwake user` still works beside it. Once the first dies (even by
//! SIGKILL) the kernel drops its lock and a new server starts there.

mod common;

use common::*;
use std::io::Read;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Starts a server on `data` and waits for it to exit: (status, stderr, time taken).
fn run_second(data: &Path) -> (ExitStatus, String, Duration) {
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipwake"))
        .args(["--listen", "udp:127.0.0.1:0", "--listen", "tcp:127.0.0.1:0", "--management", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sipwake");
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a second server on {} did not stop", data.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status, err, t0.elapsed())
}

fn lock_pid(data: &Path) -> String {
    std::fs::read_to_string(data.join("sipwake.lock")).unwrap().trim().to_string()
}

#[test]
fn a_second_server_on_the_same_data_dir_is_refused_until_the_first_dies() {
    let first = Server::start();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_alive(&first, &sock, 1);
    let data = first.data_dir();
    assert_eq!(lock_pid(&data), first.child.id().to_string(), "the lock file names its owner");

    let (status, err, took) = run_second(&data);
    assert!(!status.success(), "the second server must fail: {err}");
    assert!(took < Duration::from_secs(5), "it took {took:?}: {err}");
    let lock = data.join("sipwake.lock");
    for part in [
        "server.data_dir".to_string(),
        lock.display().to_string(),
        format!("PID {}", first.child.id()),
        "stop that server, or give this one another server.data_dir".to_string(),
    ] {
        assert!(err.contains(&part), "{part:?} missing in: {err}");
    }
    assert_alive(&first, &sock, 2);
    assert_eq!(lock_pid(&data), first.child.id().to_string(), "the refused server left the PID alone");

    // `sipwake user` opens the database beside the running server (no lock).
    add_user(&first, "alice@127.0.0.1", "s3cret");
    assert_alive(&first, &sock, 3);

    // SIGKILL: no shutdown at all, yet the kernel drops the lock.
    let dir = first.kill9();
    let next = Server::start_in(dir, &[], None);
    assert_alive(&next, &sock, 4);
    assert_eq!(lock_pid(&next.data_dir()), next.child.id().to_string());
    let log = next.log();
    assert!(!log.contains("panicked"), "{log}");
}
