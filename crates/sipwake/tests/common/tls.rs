//! TLS and WebSocket helpers for the end-to-end tests: a throw-away PKI
//! (push-mock's test CA and a certificate for 127.0.0.1/localhost), the
//! `[tls]` config naming it, blocking rustls clients (optionally with a
//! client certificate), WebSocket clients over them, and a socat bridge
//! that lets a plain-TCP tool (sipp) speak TLS.

use push_mock::TestPki;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A test CA with a server certificate, in its own temp dir.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub pki: TestPki,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new(dir.path());
        Pki { dir, pki }
    }
    pub fn ca(&self) -> PathBuf {
        self.pki.ca_file.clone()
    }
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
    /// A client certificate signed by this CA: one PEM with the chain and the key.
    pub fn client_pem(&self) -> PathBuf {
        self.pki.client_identity(self.dir.path(), "pw").pem_path
    }
    /// The `[tls]` section serving this certificate.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "[tls]\ncertificate = {:?}\nprivate_key = {:?}\nca_file = {:?}\n{extra}\n",
            self.cert(),
            self.key(),
            self.ca()
        )
    }
}

/// A client config trusting `cas` (and presenting the identity in `pem`).
pub fn client_config(cas: &[&Path], identity: Option<&Path>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        for c in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some(pem) => {
            let chain = CertificateDer::pem_file_iter(pem).unwrap().map(|c| c.unwrap()).collect();
            b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(pem).unwrap()).unwrap()
        }
        None => b.with_no_client_auth(),
    })
}

/// Connects and completes the handshake (verifying the IP address).
pub fn tls_connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> std::io::Result<TlsStream> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let conn = rustls::ClientConnection::new(config, ServerName::IpAddress(addr.ip().into()))
        .map_err(std::io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// The certificate the server presented.
pub fn peer_cert(s: &TlsStream) -> Vec<u8> {
    s.conn.peer_certificates().unwrap()[0].to_vec()
}

/// Reads until `needle` is in the data, the peer closes, or `wait` passes.
pub fn read_until<S: Read>(s: &mut S, needle: &str, wait: Duration) -> String {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline && !String::from_utf8_lossy(&got).contains(needle) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Sends `data` and reads the answer that contains `needle`.
pub fn exchange<S: Read + Write>(s: &mut S, data: &[u8], needle: &str) -> String {
    s.write_all(data).unwrap();
    s.flush().unwrap();
    read_until(s, needle, Duration::from_secs(5))
}

/// A WebSocket client handshake with `Sec-WebSocket-Protocol: protocol` and `Origin`.
pub fn ws_handshake<S: Read + Write>(
    stream: S,
    url: &str,
    protocol: Option<&str>,
    origin: Option<&str>,
) -> Result<tungstenite::WebSocket<S>, tungstenite::Error> {
    use tungstenite::client::IntoClientRequest;
    let mut r = url.into_client_request().unwrap();
    if let Some(p) = protocol {
        r.headers_mut().insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    if let Some(o) = origin {
        r.headers_mut().insert("Origin", o.parse().unwrap());
    }
    match tungstenite::client::client(r, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Err(tungstenite::HandshakeError::Interrupted(_)) => Err(tungstenite::Error::ConnectionClosed),
    }
}

/// The HTTP status of a refused WebSocket handshake.
pub fn refusal_status(e: tungstenite::Error) -> u16 {
    match e {
        tungstenite::Error::Http(r) => r.status().as_u16(),
        e => panic!("expected an HTTP refusal, got {e}"),
    }
}

/// The next text or binary WebSocket message as text.
pub fn ws_next<S: Read + Write>(ws: &mut tungstenite::WebSocket<S>) -> String {
    loop {
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) => return t.to_string(),
            tungstenite::Message::Binary(b) => return String::from_utf8_lossy(&b).into_owned(),
            _ => {}
        }
    }
}

/// `socat` forwarding plain TCP on a free port to TLS at `tls` (verifying
/// the server against `ca`); killed by PID on drop.
pub struct Bridge {
    child: Child,
    pub port: u16,
}

impl Bridge {
    pub fn start(tls: SocketAddr, ca: &Path) -> Bridge {
        let port = super::free_udp_port();
        let child = Command::new("socat")
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
            .arg(format!("OPENSSL:{tls},cafile={},verify=1", ca.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat is installed");
        // Wait until it listens (probing by bind: a connection would reach sipwake).
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < deadline, "socat did not start listening on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Bridge { child, port }
    }
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `pred` until it holds or `wait` passes.
pub fn wait_for(wait: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if pred() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    pred()
}

/// A baresip user agent (headless, auto-answer) in its own config dir,
/// registering over TLS through `registrar`; killed by PID on drop.
pub struct Baresip {
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Baresip {
    /// `aor` like `alice@127.0.0.1`; the CA in `ca` verifies the server.
    pub fn start(aor: &str, password: &str, registrar: SocketAddr, ca: &Path) -> Baresip {
        let dir = tempfile::tempdir().unwrap();
        // baresip listens on PORT (UDP, TCP) and PORT+1 (TLS).
        let port = loop {
            let p = super::free_udp_port();
            if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
                break p;
            }
        };
        let config = format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{port}\nsip_cafile {ca}\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aubridge.so\n\
             module_app account.so\nmodule_app menu.so\n\
             audio_player aubridge,play\naudio_source aubridge,play\naudio_alert aubridge,alert\n\
             rtp_ports 42000-42999\n",
            ca = ca.display()
        );
        std::fs::write(dir.path().join("config"), config).unwrap();
        let account = format!(
            "<sip:{aor};transport=tls>;auth_pass={password};answermode=auto;regint=60;outbound=\"sip:{registrar};transport=tls\"\n"
        );
        std::fs::write(dir.path().join("accounts"), account).unwrap();
        let log = std::fs::File::create(dir.path().join("baresip.log")).unwrap();
        let child = Command::new("baresip")
            .arg("-f")
            .arg(dir.path())
            .args(["-n", "127.0.0.1", "-t", "120"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("baresip is installed (apt-get install baresip)");
        Baresip { child, dir }
    }

    /// What baresip printed so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.path().join("baresip.log")).unwrap_or_default()).into_owned()
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
