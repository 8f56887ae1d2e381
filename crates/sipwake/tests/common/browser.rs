//! The browser side of the end-to-end tests: `tests/browser/phone.mjs`
//! (JsSIP in the system's headless Chromium, driven by playwright-core) as a
//! child process with its JSON-line events and commands, the check that the
//! tools it needs are installed, and the throw-away CA + WSS server
//! certificate whose SPKI hash Chromium is told to trust. It starts and
//! kills only its own node and Chromium processes, by PID.

#![allow(dead_code)]

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData,
};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The browser binary (Debian's `chromium` package).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The browser kit's directory (`tests/browser`).
pub fn kit_dir() -> PathBuf {
    super::repo().join("tests/browser")
}

/// What the browser test needs and is not installed (empty: all there).
pub fn missing_tools() -> Vec<String> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!("{CHROMIUM} (apt-get install chromium)"));
    }
    let node = Command::new("node").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !node.is_ok_and(|s| s.success()) {
        missing.push("node (Node.js 20)".into());
    }
    for pkg in ["jssip", "playwright-core", "esbuild"] {
        if !kit_dir().join("node_modules").join(pkg).join("package.json").exists() {
            missing.push(format!("tests/browser/node_modules/{pkg} (npm ci --prefix tests/browser)"));
        }
    }
    missing
}

/// True when the browser test can run. With a tool missing it says so
/// loudly and returns false, unless `CI` is set: there (scripts/test.sh
/// installs everything) a missing tool fails the test.
pub fn tools_or_skip(test: &str) -> bool {
    let missing = missing_tools();
    if missing.is_empty() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!ci, "{test}: CI is set and the browser test's tools are missing: {}", missing.join(", "));
    eprintln!("\n*** SKIPPED {test}: missing {}; scripts/test.sh installs them ***\n", missing.join(", "));
    false
}

/// A CA and a server certificate for 127.0.0.1 signed by it, written as PEM.
pub struct ServerCert {
    /// The server certificate then the CA (the `[tls] certificate` chain).
    pub chain_file: PathBuf,
    /// The server's PKCS#8 key.
    pub key_file: PathBuf,
    /// The CA alone.
    pub ca_file: PathBuf,
    /// base64 of the SHA-256 of the server certificate's SubjectPublicKeyInfo,
    /// for Chromium's `--ignore-certificate-errors-spki-list`.
    pub spki_sha256_b64: String,
}

impl ServerCert {
    pub fn generate(dir: &Path) -> ServerCert {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "sipwake browser test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()).unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let write = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let spki = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &key.subject_public_key_info());
        ServerCert {
            chain_file: write("wss-chain.pem", format!("{}{}", cert.pem(), ca.pem())),
            key_file: write("wss-key.pem", key.serialize_pem()),
            ca_file: write("wss-ca.pem", ca.pem()),
            spki_sha256_b64: base64::engine::general_purpose::STANDARD.encode(spki.as_ref()),
        }
    }
}

/// One event the phone printed, with when the test read it.
#[derive(Clone, Debug)]
pub struct Event {
    pub at: Instant,
    pub v: Value,
}

impl Event {
    pub fn name(&self) -> &str {
        self.v["event"].as_str().unwrap_or("")
    }
}

/// A running `phone.mjs`: node, and the Chromium it launched.
pub struct Browser {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: mpsc::Receiver<Event>,
    /// Every event so far, in arrival order.
    pub events: Vec<Event>,
    /// Chromium's main process (from the `launched` event).
    pub chromium_pid: Option<u32>,
    profile: PathBuf,
    stderr_log: PathBuf,
}

impl Browser {
    /// Starts the phone with `params` (see phone.mjs); Chromium's profile and
    /// node's stderr go under `dir`.
    pub fn start(dir: &Path, mut params: Value) -> Browser {
        let profile = dir.join("chromium-profile");
        std::fs::create_dir_all(&profile).unwrap();
        params["userDataDir"] = Value::String(profile.display().to_string());
        params["chromium"] = Value::String(CHROMIUM.into());
        let stderr_log = dir.join("phone.stderr.log");
        let mut child = Command::new("node")
            .current_dir(kit_dir())
            .arg(kit_dir().join("phone.mjs"))
            .arg(params.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).unwrap())
            .spawn()
            .expect("start node phone.mjs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "event": "stdout", "text": line }));
                if tx.send(Event { at: Instant::now(), v }).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Browser { child, stdin, rx, events: Vec::new(), chromium_pid: None, profile, stderr_log }
    }

    fn take(&mut self, e: Event) {
        if e.name() == "launched" {
            self.chromium_pid = e.v["chromiumPid"].as_u64().and_then(|p| u32::try_from(p).ok());
        }
        self.events.push(e);
    }

    /// Reads what arrives within `wait`.
    pub fn poll(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while let Ok(e) = self.rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            self.take(e);
        }
    }

    /// The first `name` event at index `from` or later, waiting up to `wait`;
    /// Err with everything seen when it does not come.
    pub fn wait_for(&mut self, name: &str, from: usize, wait: Duration) -> Result<Event, String> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(e) = self.events.iter().skip(from).find(|e| e.name() == name) {
                return Ok(e.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(e) => self.take(e),
                Err(_) => return Err(format!("the browser did not report {name:?} in {wait:?}\n{}", self.report())),
            }
        }
    }

    /// Every event so far and node's stderr, for failure messages.
    pub fn report(&self) -> String {
        let mut s = String::from("browser events:\n");
        for e in &self.events {
            let mut v = e.v.clone();
            if let Some(raw) = v.get_mut("raw") {
                *raw = Value::String(format!("({} bytes)", raw.as_str().map_or(0, str::len)));
            }
            s += &format!("  {v}\n");
        }
        s += "phone.mjs stderr:\n";
        s += &std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        s
    }

    /// Sends one command line (`{"cmd":"register"}`).
    pub fn send(&mut self, cmd: &Value) {
        let stdin = self.stdin.as_mut().expect("the phone's stdin is open");
        writeln!(stdin, "{cmd}").expect("write a command to the phone");
        stdin.flush().unwrap();
    }

    /// Quits (closing the browser) and waits up to `wait` for node to exit.
    pub fn quit(&mut self, wait: Duration) -> bool {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "{}", serde_json::json!({ "cmd": "quit" }));
        }
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Whether Chromium's main process is still running (its command line
    /// names this phone's profile: a reused PID is not ours).
    pub fn chromium_running(&self) -> bool {
        let Some(pid) = self.chromium_pid else { return false };
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*self.profile.to_string_lossy()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A graceful close first; then node by PID, and Chromium by PID when
        // it outlived node (it normally exits when its DevTools pipe closes).
        if !self.quit(Duration::from_secs(5)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.chromium_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.chromium_running()
            && let Some(pid) = self.chromium_pid
        {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}
