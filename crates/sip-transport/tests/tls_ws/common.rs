//! Shared helpers: a throw-away PKI written to a temp dir, a handler that
//! records every message and answers each request over the flow it came on,
//! `Transports` on free loopback ports, TLS clients, polling.

use bytes::Bytes;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sip_msg::{Message, ParseFailure};
use sip_transport::{ConnId, Handler, ListenSpec, Source, Target, TlsSettings, Transport, TransportConfig, Transports};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A CA and certificates it signs, as PEM files in a temp dir.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_file: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Pki { dir, ca_file, ca }
    }

    /// Writes `NAME.pem` (leaf then CA) and `NAME.key`; returns their paths.
    pub fn issue(&self, name: &str, sans: &[&str], client: bool) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages =
            vec![if client { ExtendedKeyUsagePurpose::ClientAuth } else { ExtendedKeyUsagePurpose::ServerAuth }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let c = self.dir.path().join(format!("{name}.pem"));
        let k = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&c, format!("{}{}", cert.pem(), self.ca.pem())).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// Server settings with a fresh certificate for 127.0.0.1 and localhost.
    pub fn server_settings(&self) -> TlsSettings {
        let (c, k) = self.issue("server", &["127.0.0.1", "localhost"], false);
        TlsSettings {
            certificate: Some(c),
            private_key: Some(k),
            ca_file: Some(self.ca_file.clone()),
            ..TlsSettings::default()
        }
    }
}

/// One received message.
#[derive(Clone, Debug)]
pub struct Seen {
    pub src: Source,
    pub data: Bytes,
}

/// Records every message; answers requests with a 200 over their flow.
#[derive(Default)]
pub struct Echo {
    pub seen: Mutex<Vec<Seen>>,
    pub closed: Mutex<Vec<ConnId>>,
    pub transports: OnceLock<Transports>,
}

impl Handler for Echo {
    fn on_message(&self, src: Source, msg: Result<Message, ParseFailure>) {
        let Ok(msg) = msg else { return };
        self.seen.lock().unwrap().push(Seen { src, data: msg.to_bytes() });
        if msg.is_request()
            && let Some(t) = self.transports.get()
        {
            let _ = t.send(&Target::from(&src), Bytes::from(ok_for(&msg)));
        }
    }
    fn on_closed(&self, conn: ConnId, _remote: SocketAddr) {
        self.closed.lock().unwrap().push(conn);
    }
}

impl Echo {
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    pub fn last(&self) -> Option<Seen> {
        self.seen.lock().unwrap().last().cloned()
    }
}

/// A minimal 200 answering `req` (Call-ID echoed so tests can match).
pub fn ok_for(req: &Message) -> Vec<u8> {
    let call_id = req.call_id().map(|c| String::from_utf8_lossy(c).into_owned()).unwrap_or_default();
    format!("SIP/2.0 200 OK\r\nCall-ID: {call_id}\r\nContent-Length: 0\r\n\r\n").into_bytes()
}

/// Binds `specs` on loopback with `config`, started with a fresh [`Echo`].
pub async fn start(specs: &[&str], config: TransportConfig) -> (Transports, Arc<Echo>) {
    let specs: Vec<ListenSpec> = specs.iter().map(|s| s.parse().unwrap()).collect();
    let t = Transports::bind(&specs, config).await.unwrap();
    let h = Arc::new(Echo::default());
    let _ = h.transports.set(t.clone());
    t.start(h.clone());
    (t, h)
}

/// The bound address of the listener of `transport`.
pub fn addr(t: &Transports, transport: Transport) -> SocketAddr {
    t.local_addrs().into_iter().find(|(x, _)| *x == transport).unwrap().1
}

/// A well-formed request (no Content-Length when `cl` is false: WS allows that).
pub fn request(method: &str, n: u32, cl: bool) -> Vec<u8> {
    let cl = if cl { "Content-Length: 0\r\n" } else { "" };
    format!(
        "{method} sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bK-{n}\r\nFrom: <sip:p@127.0.0.1>;tag={n}\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c{n}@t\r\nCSeq: {n} {method}\r\nMax-Forwards: 70\r\n{cl}\r\n"
    )
    .into_bytes()
}

/// A TLS client config trusting `ca` (and presenting `identity` when given).
pub fn client_config(ca: &Path, identity: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some((c, k)) => {
            let chain = CertificateDer::pem_file_iter(c).unwrap().map(|c| c.unwrap()).collect();
            b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(k).unwrap()).unwrap()
        }
        None => b.with_no_client_auth(),
    })
}

/// Connects and handshakes as a TLS client to `addr` (verifying 127.0.0.1).
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    TlsConnector::from(config).connect(name, tcp).await
}

/// Polls `pred` until it holds or `wait` passes.
pub async fn wait_until(wait: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if pred() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pred()
}

/// The counters of one transport.
pub fn stats(t: &Transports, transport: Transport) -> sip_transport::TransportStats {
    t.transport_stats().into_iter().find(|(x, _)| *x == transport).unwrap().1
}
