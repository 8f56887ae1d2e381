//! A throw-away PostgreSQL server for tests: [`TestPg`].
//!
//! `TestPg::start()` runs `initdb` in a fresh temporary directory and starts
//! `postgres` on a free 127.0.0.1 port (its socket in that directory too;
//! `fsync=off`), waits until it accepts connections and creates the
//! database `sipwake`, owned by the superuser `sipwake` (trust
//! authentication). It never touches a server of the machine (5432).
//! Parallel tests each get their own directory and port.
//!
//! The binaries come from `SIPWAKE_PG_BIN`, or else the highest version in
//! `/usr/lib/postgresql/*/bin`; if none is installed this panics saying to
//! install `postgresql` (scripts/test.sh does). PostgreSQL refuses to run
//! as root, so as root the directory is given to the `postgres` user and
//! `initdb`/`postgres` run through `setpriv` (which execs: the PID is the
//! server's). The server runs in a process group of its own, and gets
//! SIGQUIT when the thread that started it ends (`setpriv --pdeathsig`), so
//! a killed test run leaves no server behind.
//!
//! [`TestPg::start_tls`] starts one that speaks TLS only, with a
//! certificate signed by a fresh CA (made with the `openssl` command).
//!
//! Reusable from other crates' tests (it needs only `tempfile` and std):
//! `#[path = "../../location-store/tests/pg/mod.rs"] mod pg;`
#![allow(dead_code)] // each test binary uses a different subset

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running test server; stopped (by PID) when dropped.
pub struct TestPg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
    as_postgres: bool,
    /// More server arguments (TLS).
    extra: Vec<String>,
}

impl TestPg {
    /// initdb in a fresh directory, start the server, create `sipwake`.
    pub fn start() -> TestPg {
        Self::start_inner(false)
    }

    /// Like [`TestPg::start`], but the server speaks TLS only (`hostssl` in
    /// pg_hba.conf: plain connections are refused) with a certificate for
    /// `localhost` and `127.0.0.1` signed by a fresh CA ([`TestPg::ca_file`]).
    /// Needs the `openssl` command.
    pub fn start_tls() -> TestPg {
        Self::start_inner(true)
    }

    /// The CA certificate (PEM) of a [`TestPg::start_tls`] server.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn start_inner(tls: bool) -> TestPg {
        let bin = pg_bin();
        let dir = tempfile::Builder::new().prefix("sipwake-pg-").tempdir().expect("create a temporary directory");
        let as_postgres = is_root();
        if as_postgres {
            run_ok(Command::new("chown").arg("-R").arg("postgres:postgres").arg(dir.path()), "chown");
        }
        let mut init = wrap(as_postgres, &bin.join("initdb"));
        init.arg("-D").arg(dir.path().join("data")).args([
            "-U",
            "sipwake",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        run_ok(&mut init, "initdb");
        let mut extra = Vec::new();
        if tls {
            make_certificates(dir.path(), as_postgres);
            let data = dir.path().join("data");
            std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
                .expect("write pg_hba.conf");
            for (k, file) in [("ssl_cert_file", "server.pem"), ("ssl_key_file", "server.key")] {
                extra.push("-c".to_owned());
                extra.push(format!("{k}={}", dir.path().join(file).display()));
            }
            extra.extend(["-c".to_owned(), "ssl=on".to_owned()]);
        }
        let mut pg = TestPg { dir, bin, port: 0, child: None, as_postgres, extra };
        // A free port can be taken by someone else before the server binds
        // it: try a few.
        for attempt in 0.. {
            pg.port = free_port();
            match pg.spawn() {
                Ok(()) => break,
                Err(log) if attempt < 5 && log.contains("could not") => continue,
                Err(log) => panic!("postgres did not start:\n{log}"),
            }
        }
        pg.create_database("sipwake");
        pg
    }

    /// `postgres://sipwake@127.0.0.1:PORT/sipwake`
    pub fn url(&self) -> String {
        self.url_of("sipwake")
    }

    /// The URL of another database of this server (see
    /// [`TestPg::create_database`]).
    pub fn url_of(&self, db: &str) -> String {
        format!("postgres://sipwake@127.0.0.1:{}/{db}", self.port)
    }

    /// Create another database (tests sharing a server keep apart this way).
    pub fn create_database(&self, name: &str) {
        let mut cmd = Command::new(self.bin.join("createdb"));
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "sipwake", name]);
        run_ok(&mut cmd, "createdb");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's PID (the postmaster), if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stop the server (fast shutdown: SIGINT by PID, so open client
    /// connections do not hold it up) and wait for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        signal(&format!("{}", child.id()), "INT");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            if Instant::now() > deadline {
                signal(&format!("-{}", child.id()), "KILL");
                let _ = child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Crash the server: SIGKILL to its process group (postmaster and
    /// backends), then wait for it.
    pub fn kill9(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        signal(&format!("-{}", child.id()), "KILL");
        let _ = child.wait();
        // The backends are gone with their group; wait until no process of
        // it is left, so a restart finds the shared memory free.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && group_alive(child.id()) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start the server again (same directory and port) after
    /// [`TestPg::stop`] or [`TestPg::kill9`].
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(log) if Instant::now() < deadline => {
                    eprintln!("postgres restart failed, retrying:\n{log}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(log) => panic!("postgres did not restart:\n{log}"),
            }
        }
    }

    /// `pg_isready`: the server accepts connections.
    fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "sipwake", "-d", "postgres"])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Start `postgres` and wait until it accepts connections; on failure,
    /// its log.
    fn spawn(&mut self) -> Result<(), String> {
        let log_path = self.dir.path().join("postgres.log");
        let log = std::fs::File::create(&log_path).expect("create the server log");
        if self.as_postgres {
            run_ok(Command::new("chown").arg("postgres:postgres").arg(&log_path), "chown");
        }
        let mut cmd = wrap(self.as_postgres, &self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-p", &self.port.to_string()])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().expect("spawn postgres");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("postgres exited with {status}:\n{log}"));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() && self.ready() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                signal(&format!("-{}", child.id()), "KILL");
                let _ = child.wait();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("postgres did not accept connections within {START_TIMEOUT:?}:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The directory of `initdb`, `postgres`, `createdb` and `pg_isready`.
fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("SIPWAKE_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            let complete = ["postgres", "initdb", "createdb", "pg_isready"].iter().all(|b| bin.join(b).exists());
            complete.then_some((v, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server found in /usr/lib/postgresql/*/bin: install the Debian package `postgresql` \
             (scripts/test.sh does), or point SIPWAKE_PG_BIN at the directory of initdb and postgres"
        ),
    }
}

/// A command running `program`, as the `postgres` user when we are root,
/// and signalled with SIGQUIT when the thread that started it ends.
fn wrap(as_postgres: bool, program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    if as_postgres {
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
    }
    cmd.args(["--pdeathsig", "QUIT", "--"]).arg(program);
    cmd
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `kill -SIG target` (a PID, or `-PGID` for a process group).
fn signal(target: &str, sig: &str) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg("--").arg(target).stderr(Stdio::null()).status();
}

/// Whether any process of group `pgid` is left.
fn group_alive(pgid: u32) -> bool {
    Command::new("kill")
        .args(["-0", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A CA (`ca.pem`) and a server certificate it signed for `localhost` and
/// `127.0.0.1` (`server.pem`, `server.key`, the key readable by the server
/// only) in `dir`.
fn make_certificates(dir: &Path, as_postgres: bool) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = Command::new("openssl");
    ca.current_dir(dir).args(["req", "-x509"]).args(ec).args(["-keyout", "ca.key", "-out", "ca.pem", "-days", "3"]);
    ca.args(["-subj", "/CN=sipwake test CA", "-addext", "basicConstraints=critical,CA:TRUE"]);
    ca.args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    run_ok(&mut ca, "openssl (CA)");
    let mut csr = Command::new("openssl");
    csr.current_dir(dir).arg("req").args(ec).args(["-keyout", "server.key", "-out", "server.csr"]);
    csr.args(["-subj", "/CN=localhost"]);
    run_ok(&mut csr, "openssl (server key)");
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    let mut sign = Command::new("openssl");
    sign.current_dir(dir).args(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key"]);
    sign.args(["-CAcreateserial", "-out", "server.pem", "-days", "3", "-extfile", "server.ext"]);
    run_ok(&mut sign, "openssl (server certificate)");
    run_ok(Command::new("chmod").arg("600").arg(dir.join("server.key")), "chmod");
    if as_postgres {
        run_ok(Command::new("chown").arg("-R").arg("postgres:postgres").arg(dir), "chown");
    }
}

/// A port nobody listens on now (never 5432).
fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = l.local_addr().expect("local addr").port();
        if port != 5432 {
            return port;
        }
    }
}
