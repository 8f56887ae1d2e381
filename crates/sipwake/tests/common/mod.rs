//! End-to-end test harness: starts the real `sipwake` binary on free ports
//! (it binds port 0 and prints what it bound), runs `sipp` scenarios against
//! it, and talks raw UDP/TCP to it. Every process it starts is killed by PID
//! when its guard drops.

#![allow(dead_code)]

pub mod browser;
pub mod kamailio;
pub mod phone;
pub mod tls;
pub mod webhook;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A running sipwake.
pub struct Server {
    pub child: Child,
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    /// Every listener the server printed, e.g. ("udp", [::1]:40000).
    pub listeners: Vec<(String, SocketAddr)>,
    /// The management API address.
    pub mgmt: SocketAddr,
    pub dir: tempfile::TempDir,
    pub stderr_log: PathBuf,
}

impl Server {
    /// Starts sipwake with UDP and TCP on 127.0.0.1, free ports, a fresh data dir.
    pub fn start() -> Server {
        Server::start_with(&[], None)
    }

    /// Starts sipwake with extra arguments and an optional config text.
    pub fn start_with(extra: &[&str], config: Option<&str>) -> Server {
        Server::start_in(tempfile::tempdir().unwrap(), extra, config)
    }

    /// Starts sipwake on an existing directory (its data in `dir/data`), e.g. after a crash.
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str], config: Option<&str>) -> Server {
        Server::start_logging(dir, extra, config, true)
    }

    /// [`Server::start_in`]; `rust_log`: false leaves RUST_LOG unset, so
    /// the config's `log.level` decides (and a reload can change it).
    pub fn start_logging(dir: tempfile::TempDir, extra: &[&str], config: Option<&str>, rust_log: bool) -> Server {
        let stderr_log = dir.path().join("sipwake.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sipwake"));
        if let Some(text) = config {
            let p = dir.path().join("sipwake.toml");
            std::fs::write(&p, text).unwrap();
            cmd.arg("--config").arg(p);
        }
        cmd.args(["--listen", "udp:127.0.0.1:0", "--listen", "tcp:127.0.0.1:0", "--management", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).unwrap());
        if rust_log {
            cmd.env("RUST_LOG", std::env::var("SIPWAKE_TEST_LOG").unwrap_or_else(|_| "info".into()));
        } else {
            cmd.env_remove("RUST_LOG");
        }
        let mut child = cmd.spawn().expect("start sipwake");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut udp, mut tcp) = (None, None);
        let mut listeners = Vec::new();
        let mut mgmt = None;
        let want = 2 + extra.iter().filter(|a| **a == "--listen").count();
        let deadline = Instant::now() + Duration::from_secs(20);
        // Ready once the stored location is loaded (it serves before: see e2e_loading).
        let mut loaded = false;
        while listeners.len() < want || mgmt.is_none() || !loaded {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("sipwake did not start: {}", std::fs::read_to_string(&stderr_log).unwrap_or_default())
            });
            if let Some(rest) = line.strip_prefix("sipwake management on http://") {
                mgmt = Some(rest.trim().parse().unwrap());
            }
            loaded |= line.starts_with("sipwake location loaded");
            if let Some(rest) = line.strip_prefix("sipwake listening on ") {
                let (t, a) = rest.split_once(':').unwrap();
                let a: SocketAddr = a.parse().unwrap();
                match t {
                    "udp" => udp = udp.or(Some(a)),
                    "tcp" => tcp = tcp.or(Some(a)),
                    _ => {}
                }
                listeners.push((t.to_string(), a));
            }
        }
        Server { child, udp: udp.unwrap(), tcp: tcp.unwrap(), listeners, mgmt: mgmt.unwrap(), dir, stderr_log }
    }

    /// The server's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        unsafe_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("sipwake did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (no shutdown at all); gives the directory back for a restart.
    pub fn kill9(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// GET a management API path; returns (status, body).
    pub fn api(&self, method: &str, path: &str) -> (u16, String) {
        let client = reqwest::blocking::Client::new();
        let url = format!("http://{}{path}", self.mgmt);
        let rq = match method {
            "DELETE" => client.delete(url),
            _ => client.get(url),
        };
        let resp = rq.send().expect("management API answers");
        let status = resp.status().as_u16();
        (status, resp.text().unwrap_or_default())
    }

    /// The bindings of an AoR as JSON values (empty when none).
    pub fn bindings(&self, aor: &str) -> Vec<serde_json::Value> {
        let (status, body) = self.api("GET", &format!("/api/v1/aors/{aor}"));
        if status == 404 {
            return Vec::new();
        }
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["bindings"].as_array().cloned().unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
}

/// A free local port (bound then released; sipp needs numbers).
pub fn free_udp_port() -> u16 {
    // Free for both UDP and TCP (sipp binds its port with the transport it runs).
    loop {
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A base for sipp's media ports: sipp binds four UDP ports from it (audio
/// RTP and RTCP, video RTP and RTCP), so all four must be free, not only the
/// first.
pub fn free_media_base() -> u16 {
    loop {
        let base = free_udp_port() & !1;
        if !(1024..=u16::MAX - 4).contains(&base) {
            continue;
        }
        let held: Vec<_> = (base..base + 4).map(|p| UdpSocket::bind(("127.0.0.1", p))).collect();
        if held.iter().all(|s| s.is_ok()) {
            return base;
        }
    }
}

/// Runs a sipp scenario from `tests/sipp/` against `target`; returns
/// (success, combined output). `transport` is "u1" or "t1".
pub fn sipp(scenario: &str, target: SocketAddr, transport: &str, calls: u32, extra: &[&str]) -> (bool, String) {
    // The free port picked for sipp can be taken by another process before
    // sipp binds it (parallel test binaries): sipp then does nothing; retry.
    let mut last = (false, String::new());
    for _ in 0..3 {
        last = sipp_start(scenario, target, transport, calls, None, extra).wait(Duration::from_secs(60));
        // ("Unable to bind main socket", or one of its RTP sockets.)
        if last.0 || !last.1.contains("Unable to bind") {
            break;
        }
    }
    last
}

/// A sipp process running in the background.
pub struct Sipp {
    child: Child,
    work: tempfile::TempDir,
    pub port: u16,
}

/// Starts sipp in the background on `port` (or a free one).
pub fn sipp_start(
    scenario: &str,
    target: SocketAddr,
    transport: &str,
    calls: u32,
    port: Option<u16>,
    extra: &[&str],
) -> Sipp {
    let work = tempfile::tempdir().unwrap();
    let scen = repo().join("tests/sipp").join(scenario);
    let port = port.unwrap_or_else(free_udp_port);
    let cport = free_udp_port().to_string();
    let mport = free_media_base().to_string();
    let child = Command::new("sipp")
        .current_dir(work.path())
        .arg(target.to_string())
        .args(["-sf", scen.to_str().unwrap(), "-t", transport, "-m", &calls.to_string()])
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-cp", &cport, "-mp", &mport])
        .args(["-nostdin", "-timeout", "30s", "-timeout_error", "-trace_err"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sipp is installed (apt-get install sip-tester)");
    Sipp { child, work, port }
}

impl Sipp {
    /// Waits for sipp to finish; (success, output including its error log).
    pub fn wait(mut self, limit: Duration) -> (bool, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break Some(st);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut text = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut text);
        }
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut text);
        }
        for entry in std::fs::read_dir(self.work.path()).unwrap().flatten() {
            if entry.file_name().to_string_lossy().ends_with("_errors.log") {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        if status.is_none() {
            text.push_str("\n(sipp killed: it did not finish in time)");
        }
        (status.is_some_and(|s| s.success()), text)
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one datagram and waits for one answer (None on timeout).
pub fn udp_exchange(sock: &UdpSocket, to: SocketAddr, data: &[u8], wait: Duration) -> Option<Vec<u8>> {
    sock.send_to(data, to).unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = vec![0u8; 65_536];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// The status code of a response.
pub fn status_of(resp: &[u8]) -> u16 {
    let s = String::from_utf8_lossy(resp);
    s.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// A well-formed OPTIONS to the server, from `local`.
pub fn options(local: SocketAddr, server: SocketAddr, transport: &str, n: u32) -> Vec<u8> {
    format!(
        "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bK-opt-{n}-{}\r\nFrom: <sip:probe@{local}>;tag=p{n}\r\nTo: <sip:{server}>\r\nCall-ID: opt-{n}-{}@test\r\nCSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        std::process::id(),
        std::process::id()
    )
    .into_bytes()
}

/// Checks the server still answers a valid OPTIONS over UDP.
pub fn assert_alive(server: &Server, sock: &UdpSocket, n: u32) {
    let local = sock.local_addr().unwrap();
    let resp = udp_exchange(sock, server.udp, &options(local, server.udp, "UDP", n), Duration::from_secs(3))
        .unwrap_or_else(|| panic!("server stopped answering OPTIONS\n{}", server.log()));
    assert_eq!(status_of(&resp), 200, "{}", String::from_utf8_lossy(&resp));
}

/// Reads from a TCP stream until `pred` holds on what was read, or the timeout.
pub fn tcp_read_until(s: &mut TcpStream, wait: Duration, pred: impl Fn(&[u8]) -> bool) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let mut closed = false;
    while Instant::now() < deadline && !pred(&got) {
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    (got, closed)
}

pub fn tcp_send(s: &mut TcpStream, data: &[u8]) {
    s.write_all(data).unwrap();
}

/// Adds a subscriber to the server's store (`sipwake user add`, the password on stdin).
pub fn add_user(server: &Server, aor: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipwake"))
        .args(["user", "add", aor, "--data-dir"])
        .arg(server.data_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "user add: {}", String::from_utf8_lossy(&out.stderr));
}

/// The first complete SIP message starting with `start` in a TCP byte stream.
pub fn message_in(buf: &[u8], start: &str) -> Option<String> {
    let t = String::from_utf8_lossy(buf);
    let i = t.find(start)?;
    let rest = &t[i..];
    let end = rest.find("\r\n\r\n")?;
    let cl = rest[..end]
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (rest.len() >= end + 4 + cl).then(|| rest[..end + 4 + cl].to_string())
}

/// Runs the `sipwake` command with `args`, `stdin` on its standard input
/// (a password, say), and no `SIPWAKE_TOKEN` from the test's environment.
pub fn sipwake_cli(args: &[&std::ffi::OsStr], stdin: &str) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sipwake"))
        .args(args)
        .env_remove("SIPWAKE_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    c.wait_with_output().unwrap()
}
