//! The test PKI: a self-signed CA, a server certificate for `localhost`,
//! `127.0.0.1` and `::1` signed by it, the rustls server configuration the
//! mocks serve with, and client identities (`.p12` and PEM) for APNs
//! certificate auth.

use super::{random_bytes, write_file};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The CA and the server certificate, generated into a directory.
pub struct TestPki {
    /// `DIR/ca.pem`: the CA certificate, for a client's "trusted CA" setting.
    pub ca_file: PathBuf,
    /// The same CA certificate as PEM text.
    pub ca_pem: String,
    ca: CertifiedIssuer<'static, KeyPair>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki").field("ca_file", &self.ca_file).finish_non_exhaustive()
    }
}

/// A client certificate (signed by the test CA) and its key, for APNs
/// certificate-based auth.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    /// `DIR/<cn>.p12`: PKCS#12 with the key, the client certificate and the CA.
    pub p12_path: PathBuf,
    /// The `.p12`'s password.
    pub p12_password: String,
    /// `DIR/<cn>.pem`: client certificate, CA certificate, then the PKCS#8 key.
    pub pem_path: PathBuf,
    /// The certificate's subject common name.
    pub subject_cn: String,
}

/// The rustls crypto provider every TLS piece of the mock uses.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn p256_key() -> KeyPair {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("push-mock: generate a P-256 key")
}

impl TestPki {
    /// Generates the CA and the server certificate and writes `ca.pem`,
    /// `server.pem` and `server.key` into `dir`.
    pub fn new(dir: &Path) -> TestPki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("push-mock: CA parameters");
        params.distinguished_name.push(DnType::CommonName, "push-mock test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(params, p256_key()).expect("push-mock: self-sign the CA");
        let ca_pem = ca.pem();
        let ca_file = write_file(dir, "ca.pem", ca_pem.as_bytes());

        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        let mut params = CertificateParams::new(names).expect("push-mock: server certificate parameters");
        params.distinguished_name.push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = p256_key();
        let cert = params.signed_by(&key, &ca).expect("push-mock: sign the server certificate");
        write_file(dir, "server.pem", format!("{}{}", cert.pem(), ca_pem).as_bytes());
        write_file(dir, "server.key", key.serialize_pem().as_bytes());
        let server_chain = vec![cert.der().clone(), ca.der().clone()];
        TestPki { ca_file, ca_pem, ca, server_chain, server_key: key.serialize_der() }
    }

    /// The rustls server configuration (ALPN `h2`, `http/1.1`); with
    /// `require_client_cert`, the handshake fails unless the client
    /// presents a certificate signed by the test CA.
    pub fn server_config(&self, require_client_cert: bool) -> ServerConfig {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("push-mock: TLS versions");
        let builder = if require_client_cert {
            let mut roots = RootCertStore::empty();
            roots.add(self.ca.der().clone()).expect("push-mock: trust the test CA");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .expect("push-mock: client certificate verifier");
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        let mut config =
            builder.with_single_cert(self.server_chain.clone(), key).expect("push-mock: server certificate and key");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses)
    /// and writes its chain as `DIR/<stem>.pem` and its key as
    /// `DIR/<stem>.key`; returns both paths.
    pub fn server_identity(&self, dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("push-mock: server certificate parameters");
        params.distinguished_name.push(DnType::CommonName, names.first().map_or("server", String::as_str));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = p256_key();
        let cert = params.signed_by(&key, &self.ca).expect("push-mock: sign the server certificate");
        let chain = write_file(dir, &format!("{stem}.pem"), format!("{}{}", cert.pem(), self.ca_pem).as_bytes());
        let key = write_file(dir, &format!("{stem}.key"), key.serialize_pem().as_bytes());
        (chain, key)
    }

    /// Issues a client certificate (CN `push-mock client <n>`) and writes it
    /// as `DIR/client.p12` (protected by `password`) and `DIR/client.pem`.
    pub fn client_identity(&self, dir: &Path, password: &str) -> ClientIdentity {
        let subject_cn = format!("push-mock client {}", super::random_id(6));
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("push-mock: client parameters");
        params.distinguished_name.push(DnType::CommonName, subject_cn.as_str());
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = p256_key();
        let cert = params.signed_by(&key, &self.ca).expect("push-mock: sign the client certificate");
        let pem = format!("{}{}{}", cert.pem(), self.ca_pem, key.serialize_pem());
        let pem_path = write_file(dir, "client.pem", pem.as_bytes());

        let p12_key = p12_keystore::PrivateKey::from_der(&key.serialize_der()).expect("push-mock: p12 private key");
        let certs = [cert.der().as_ref(), self.ca.der().as_ref()]
            .map(|der| p12_keystore::Certificate::from_der(der).expect("push-mock: p12 certificate"));
        let chain = p12_keystore::PrivateKeyChain::new(random_bytes(20), p12_key, certs);
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry("client", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
        let p12 = store.writer(password).write().expect("push-mock: write the .p12");
        let p12_path = write_file(dir, "client.p12", &p12);
        ClientIdentity { p12_path, p12_password: password.to_owned(), pem_path, subject_cn }
    }
}
