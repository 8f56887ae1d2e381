//! Live reload as an operator does it: edit the file, `kill -HUP` (or
//! `sipwake ctl reload`), and the running server takes the new log level,
//! `[defence]` lists and subscribers without losing a binding or a
//! connection; what needs a restart is named; a broken file changes nothing.

mod common;
use common::phone::Phone;
use common::*;
use std::io::Write;
use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

const BASE: &str = "[server]\nlisten = [\"udp:127.0.0.1:0\", \"tcp:127.0.0.1:0\"]\n";

fn config(level: &str, extra: &str) -> String {
    format!("{BASE}[log]\nlevel = \"{level}\"\n{extra}")
}

/// Waits for the n-th occurrence of `needle` in the log.
fn wait_log_count(server: &Server, needle: &str, n: usize) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if server.log().matches(needle).count() >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn hup(server: &Server) {
    let st = Command::new("kill").arg("-HUP").arg(server.child.id().to_string()).status().unwrap();
    assert!(st.success());
}

fn ctl_reload(server: &Server) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sipwake"))
        .args(["ctl", "reload", "--url", &format!("http://{}", server.mgmt)])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sighup_and_ctl_reload_apply_what_they_can_and_keep_bindings_and_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sipwake.toml");
    let mut server = Server::start_logging(dir, &[], Some(&config("info", "")), false);
    add_user(&server, "alice@127.0.0.1", "pw-alice");
    add_user(&server, "bob@127.0.0.1", "pw-bob");
    // Alice registers over TCP: a binding and an open connection.
    let mut alice = Phone::tcp(server.tcp, "alice", "127.0.0.1");
    alice.password = Some("pw-alice".into());
    let contact = format!("<sip:alice@{};transport=tcp>", alice.local());
    assert_eq!(status_of(alice.register(&[&contact], &[]).as_bytes()), 200);
    assert!(server.log().contains("registration added"), "{}", server.log());

    // Edit: quieter log, a deny list, a registrar change (needs a restart). SIGHUP.
    std::fs::write(&path, config("warn", "[registrar]\nmax_contacts = 3\n[defence]\ndeny = [\"127.0.0.41\"]\n"))
        .unwrap();
    hup(&server);
    assert!(wait_log_count(&server, "reload (SIGHUP)", 1), "{}", server.log());
    let log = server.log();
    let line = log.lines().find(|l| l.contains("reload (SIGHUP)")).unwrap();
    // Logged at INFO before the new level applies.
    assert!(line.contains("applied: log.level, defence"), "{line}");
    assert!(line.contains("needs a restart: registrar"), "{line}");
    assert!(server.alive(), "SIGHUP must not stop the server");
    // The deny list is in force; others are served.
    let denied = UdpSocket::bind("127.0.0.41:0").unwrap();
    let local = denied.local_addr().unwrap();
    assert!(
        udp_exchange(&denied, server.udp, &options(local, server.udp, "UDP", 1), Duration::from_millis(500)).is_none()
    );
    assert_alive(&server, &UdpSocket::bind("127.0.0.42:0").unwrap(), 2);
    // Alice's binding and connection survived: she refreshes on the same connection.
    assert_eq!(server.bindings("alice@127.0.0.1").len(), 1);
    assert_eq!(status_of(alice.register(&[&contact], &[]).as_bytes()), 200);
    // At warn, a new registration is not logged any more.
    let added = server.log().matches("registration added").count();
    let mut bob = Phone::udp(server.udp, "bob", "127.0.0.1");
    bob.password = Some("pw-bob".into());
    assert_eq!(status_of(bob.register(&[&format!("<sip:bob@{}>", bob.local())], &[]).as_bytes()), 200);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.log().matches("registration added").count(), added, "{}", server.log());

    // A broken file: nothing changes, the server says why and runs on.
    std::fs::write(&path, config("info", "[defence]\ndeny = [\"not-an-address\"]\n")).unwrap();
    hup(&server);
    assert!(wait_log_count(&server, "reload (SIGHUP) failed, nothing changed", 1), "{}", server.log());
    assert!(server.log().contains("defence.deny[0] = \"not-an-address\""), "{}", server.log());
    let (code, _, err) = ctl_reload(&server);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nothing changed") && err.contains("defence.deny[0]"), "{err}");
    assert!(server.alive());
    assert!(
        udp_exchange(&denied, server.udp, &options(local, server.udp, "UDP", 3), Duration::from_millis(500)).is_none(),
        "the previous deny list is still in force"
    );

    // Fixed, and reloaded with ctl: info again, the deny list gone.
    std::fs::write(&path, config("info", "[registrar]\nmax_contacts = 3\n")).unwrap();
    let (code, out, err) = ctl_reload(&server);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("applied: log.level, defence"), "{out}");
    assert!(out.contains("needs a restart: registrar"), "{out}");
    assert_alive(&server, &denied, 4);
    let mut carol = Phone::udp(server.udp, "bob", "127.0.0.1");
    carol.password = Some("pw-bob".into());
    assert_eq!(status_of(carol.register(&[&format!("<sip:bob@{}>", carol.local())], &[]).as_bytes()), 200);
    assert!(wait_log_count(&server, "registration added", added + 1), "{}", server.log());

    // A user added while the server runs is known after a reload at once.
    add_user(&server, "dave@127.0.0.1", "pw-dave");
    let (code, out, _) = ctl_reload(&server);
    assert_eq!(code, 0);
    assert!(out.contains("subscribers"), "{out}");
    let mut dave = Phone::udp(server.udp, "dave", "127.0.0.1");
    dave.password = Some("pw-dave".into());
    assert_eq!(status_of(dave.register(&[&format!("<sip:dave@{}>", dave.local())], &[]).as_bytes()), 200);
    // The TCP connection is still the one alice opened.
    assert!(tcp_still_open(&mut alice));
}

/// An OPTIONS on the phone's own TCP connection is answered.
fn tcp_still_open(p: &mut Phone) -> bool {
    let common::phone::Link::Tcp(s) = &mut p.link else { return false };
    let local = s.local_addr().unwrap();
    let server = s.peer_addr().unwrap();
    s.write_all(&options(local, server, "TCP", 9)).unwrap();
    let (got, _) = tcp_read_until(s, Duration::from_secs(2), |b| b.windows(4).any(|w| w == b"\r\n\r\n"));
    status_of(&got) == 200
}
