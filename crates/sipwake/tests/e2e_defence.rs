//! `[defence]` through the running server, as an attacker and an operator
//! meet it: a flood from one source is cut off while other sources are
//! served, password guessing blocks its source while the real user
//! registers, allow/deny lists per listener and for the management API,
//! the management view of blocked sources, metrics and log lines.
//!
//! Sources are distinct loopback addresses (127.0.0.0/8 is all loopback on
//! Linux), so each test has attackers and users of its own.

mod common;
use common::phone::{Link, Phone};
use common::*;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

fn udp_from(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind(format!("{ip}:0")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

fn tcp_from(ip: &str, to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(ip.parse().unwrap(), 0).into()).unwrap();
    s.connect(&to.into()).unwrap();
    s.into()
}

/// The value of a metric sample (`name{labels}` as printed), 0 when absent.
fn metric(server: &Server, sample: &str) -> f64 {
    let (_, text) = server.api("GET", "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn wait_log(server: &Server, needle: &str) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if server.log().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

const LISTEN: &str = "[server]\nlisten = [\"udp:127.0.0.1:0\", \"tcp:127.0.0.1:0\"]\n";

#[test]
fn a_flood_from_one_source_is_cut_off_and_other_sources_are_served() {
    let config = format!(
        "{LISTEN}[auth]\nenabled = false\n[defence]\nrate_limit_requests = 50\nrate_limit_window_secs = 2\nrate_limit_block_secs = 3\n"
    );
    let server = Server::start_with(&[], Some(&config));
    let attacker = udp_from("127.0.0.11");
    attacker.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let local = attacker.local_addr().unwrap();
    for n in 0..200 {
        attacker.send_to(&options(local, server.udp, "UDP", n), server.udp).unwrap();
    }
    let mut answered = 0;
    let mut buf = vec![0u8; 65_536];
    while attacker.recv_from(&mut buf).is_ok() {
        answered += 1;
    }
    assert_eq!(answered, 50, "the first 50 requests of the window are answered, the rest dropped");
    assert!(
        wait_log(&server, "source blocked: src=127.0.0.11 reason=rate-limit count=51 block_secs=3"),
        "{}",
        server.log()
    );
    // Another source is served at once.
    let user = udp_from("127.0.0.12");
    assert_alive(&server, &user, 1);
    // The attacker stays blocked, however slowly it now sends.
    let r = udp_exchange(&attacker, server.udp, &options(local, server.udp, "UDP", 500), Duration::from_millis(500));
    assert!(r.is_none(), "a blocked source gets no answer");
    assert!(metric(&server, "sipwake_defence_dropped_total{reason=\"blocked\"}") >= 151.0);
    assert_eq!(metric(&server, "sipwake_defence_blocks_total{reason=\"rate-limit\"}"), 1.0);
    assert_eq!(metric(&server, "sipwake_defence_blocked_sources"), 1.0);
    let (st, body) = server.api("GET", "/api/v1/defence/blocked");
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["blocked"][0]["source"], "127.0.0.11", "{body}");
    assert_eq!(v["blocked"][0]["reason"], "rate-limit", "{body}");
    // The block ends after rate_limit_block_secs.
    std::thread::sleep(Duration::from_millis(3200));
    assert_alive(&server, &attacker, 600);
}

#[test]
fn password_guessing_blocks_its_source_while_the_user_registers() {
    let config =
        format!("{LISTEN}[defence]\nauth_failures = 5\nauth_failures_window_secs = 60\nauth_block_secs = 120\n");
    let server = Server::start_with(&[], Some(&config));
    add_user(&server, "alice@127.0.0.1", "right-password");
    let mut guesser = Phone::udp(server.udp, "alice", "127.0.0.1");
    guesser.link = Link::Udp(udp_from("127.0.0.21"));
    let contact = "<sip:alice@127.0.0.21:5999>";
    for guess in 0..5 {
        guesser.password = Some(format!("guess-{guess}"));
        let r = guesser.register(&[contact], &[]);
        assert_eq!(status_of(r.as_bytes()), 401, "guess {guess}: {r}\n{}", server.log());
    }
    assert!(
        wait_log(&server, "source blocked: src=127.0.0.21 reason=auth-failures count=5 block_secs=120"),
        "{}",
        server.log()
    );
    // The right password from the guessing source is not even looked at now.
    guesser.password = Some("right-password".into());
    let msg = guesser.build(&[contact], &[], None);
    assert_eq!(guesser.exchange(&msg), "", "a blocked source gets no answer");
    // The real user, from elsewhere, registers.
    let mut alice = Phone::udp(server.udp, "alice", "127.0.0.1");
    alice.password = Some("right-password".into());
    let ok = alice.register(&[&format!("<sip:alice@{}>", alice.local())], &[]);
    assert_eq!(status_of(ok.as_bytes()), 200, "{ok}");
    assert_eq!(metric(&server, "sipwake_defence_blocks_total{reason=\"auth-failures\"}"), 1.0);
    // The operator lifts the block; the source is served again.
    let (st, body) = server.api("DELETE", "/api/v1/defence/blocked/127.0.0.21");
    assert_eq!(st, 200, "{body}");
    let (st, _) = server.api("DELETE", "/api/v1/defence/blocked/127.0.0.21");
    assert_eq!(st, 404, "not blocked any more");
    let ok = guesser.register(&[contact], &[]);
    assert_eq!(status_of(ok.as_bytes()), 200, "{ok}");
}

#[test]
fn allow_and_deny_lists_per_listener_and_for_the_management_api() {
    let config = format!(
        "{LISTEN}[auth]\nenabled = false\n[defence]\ndeny = [\"127.0.0.31\"]\nmanagement_deny = [\"127.0.0.36\"]\n\
         [[defence.listener]]\nlisten = \"tcp:127.0.0.1:0\"\nallow = [\"127.0.0.35/32\"]\n"
    );
    let server = Server::start_with(&[], Some(&config));
    // Denied everywhere.
    let denied = udp_from("127.0.0.31");
    let local = denied.local_addr().unwrap();
    assert!(
        udp_exchange(&denied, server.udp, &options(local, server.udp, "UDP", 1), Duration::from_millis(500)).is_none()
    );
    // UDP has no list of its own: anyone else is served.
    assert_alive(&server, &udp_from("127.0.0.32"), 2);
    // The TCP listener admits only 127.0.0.35: others are closed at accept.
    for (ip, served) in [("127.0.0.33", false), ("127.0.0.35", true)] {
        let mut s = tcp_from(ip, server.tcp);
        let local = s.local_addr().unwrap();
        // A write to a connection the server already closed may fail: that is the refusal.
        let _ = std::io::Write::write_all(&mut s, &options(local, server.tcp, "TCP", 3));
        let (got, _) = tcp_read_until(&mut s, Duration::from_millis(800), |b| b.windows(4).any(|w| w == b"\r\n\r\n"));
        assert_eq!(status_of(&got) == 200, served, "{ip}: {}", String::from_utf8_lossy(&got));
    }
    // Closed by the server at once, not left open and ignored.
    let mut s = tcp_from("127.0.0.34", server.tcp);
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let r = std::io::Read::read(&mut s, &mut [0u8; 16]);
    assert!(
        matches!(&r, Ok(0)) || r.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "a refused connection is closed at accept: {r:?}"
    );
    assert_eq!(metric(&server, "sipwake_defence_dropped_total{reason=\"denied\"}"), 1.0);
    assert_eq!(metric(&server, "sipwake_defence_dropped_total{reason=\"not-allowed\"}"), 2.0);
    // The management API refuses 127.0.0.36 at accept.
    let mut s = tcp_from("127.0.0.36", server.mgmt);
    std::io::Write::write_all(&mut s, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let (got, _) = tcp_read_until(&mut s, Duration::from_secs(1), |b| b.ends_with(b"\r\n\r\n"));
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert!(wait_log(&server, "management connection refused: src=127.0.0.36:"), "{}", server.log());
    assert_eq!(metric(&server, "sipwake_defence_management_refused_total"), 1.0);
    // The operator blocks a source by hand, then lifts the block.
    let user = udp_from("127.0.0.37");
    assert_alive(&server, &user, 4);
    let post = |body: &str| {
        let r = reqwest::blocking::Client::new()
            .post(format!("http://{}/api/v1/defence/blocked", server.mgmt))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(post(r#"{"source": "127.0.0.37", "secs": 0}"#).0, 400);
    assert_eq!(post(r#"{"source": "not-an-ip", "secs": 60}"#).0, 400);
    let (st, body) = post(r#"{"source": "127.0.0.37", "secs": 60}"#);
    assert_eq!(st, 200, "{body}");
    let local = user.local_addr().unwrap();
    assert!(
        udp_exchange(&user, server.udp, &options(local, server.udp, "UDP", 5), Duration::from_millis(500)).is_none()
    );
    assert!(wait_log(&server, "source blocked: src=127.0.0.37 reason=manual block_secs=60"), "{}", server.log());
    let (_, list) = server.api("GET", "/api/v1/defence/blocked");
    assert!(list.contains(r#""reason":"manual""#), "{list}");
    assert_eq!(server.api("DELETE", "/api/v1/defence/blocked/127.0.0.37").0, 200);
    assert_alive(&server, &user, 6);
}

#[test]
fn bad_defence_values_stop_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("[defence]\ndeny = [\"10.0.0.0/33\"]\n", "defence.deny[0] = \"10.0.0.0/33\""),
        ("[defence]\nrate_limit_window_secs = 0\n", "defence.rate_limit_window_secs = 0"),
        (
            "[[defence.listener]]\nlisten = \"udp:192.0.2.1:5060\"\n",
            "defence.listener[0].listen = \"udp:192.0.2.1:5060\"",
        ),
    ] {
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, text).unwrap();
        for args in
            [vec!["--check-config".into(), p.display().to_string()], vec!["--config".into(), p.display().to_string()]]
        {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipwake"))
                .args(&args)
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.contains(key), "{args:?}: {err}");
        }
    }
}
