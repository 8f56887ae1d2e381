//! TLS configuration: reads the PEM files named by [`TlsSettings`], builds
//! the rustls server and client configurations (aws-lc-rs provider), and
//! keeps them behind a lock so that a reload swaps both at once while
//! handshakes in progress and connections already up keep what they had.
//!
//! Owns no sockets and no connections; every error names the file and what
//! is wrong with it.

use crate::types::{TlsSettings, VerifyClient};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::path::Path;
use std::sync::{Arc, RwLock};

/// The server config (when a certificate is configured) and the client config.
pub(crate) struct TlsConfigs {
    pub server: Option<Arc<ServerConfig>>,
    pub client: Arc<ClientConfig>,
}

/// The current configs, swapped whole by a reload.
pub(crate) struct TlsState {
    settings: TlsSettings,
    current: RwLock<Arc<TlsConfigs>>,
}

impl TlsState {
    /// Reads every file; an error names the file and what is wrong.
    pub(crate) fn load(settings: TlsSettings) -> Result<TlsState, String> {
        let configs = build(&settings)?;
        Ok(TlsState { settings, current: RwLock::new(Arc::new(configs)) })
    }

    /// The configs for a new handshake.
    pub(crate) fn current(&self) -> Arc<TlsConfigs> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads every file and swaps the configs; on error the old ones stay.
    pub(crate) fn reload(&self) -> Result<(), String> {
        let configs = build(&self.settings)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(configs);
        Ok(())
    }
}

impl TlsSettings {
    /// Reads every file these settings name and builds the TLS configs, as
    /// binding does; the error names the file and what is wrong with it.
    pub fn check(&self) -> Result<(), String> {
        build(self).map(|_| ())
    }

    /// Whether a server certificate (needed by `tls:` and `wss:` listeners) is configured.
    pub fn has_certificate(&self) -> bool {
        self.certificate.is_some() && self.private_key.is_some()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn build(s: &TlsSettings) -> Result<TlsConfigs, String> {
    let provider = provider();
    let own = match (&s.certificate, &s.private_key) {
        (Some(c), Some(k)) => Some(certified_key(c, k, &provider)?),
        (None, None) => None,
        (Some(c), None) => return Err(format!("TLS certificate {} is given without its private key", c.display())),
        (None, Some(k)) => return Err(format!("TLS private key {} is given without its certificate", k.display())),
    };
    let server = match &own {
        Some(key) => Some(Arc::new(server_config(s, key.clone(), &provider)?)),
        None => None,
    };
    let client_key = match (&s.client_certificate, &s.client_private_key) {
        (Some(c), Some(k)) => Some(certified_key(c, k, &provider)?),
        (None, None) => own,
        (Some(c), None) => {
            return Err(format!("TLS client certificate {} is given without its private key", c.display()));
        }
        (None, Some(k)) => {
            return Err(format!("TLS client private key {} is given without its certificate", k.display()));
        }
    };
    let client = Arc::new(client_config(s, client_key, &provider)?);
    Ok(TlsConfigs { server, client })
}

/// Reads a certificate chain and its key and checks that they belong together.
fn certified_key(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, String> {
    let chain = read_certs(cert)?;
    let der = read_key(key)?;
    let ck = CertifiedKey::from_der(chain, der, provider).map_err(|e| {
        format!("TLS private key {} does not match the certificate {}: {e}", key.display(), cert.display())
    })?;
    Ok(Arc::new(ck))
}

/// Every certificate in a PEM file (at least one).
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a valid PEM file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => format!(
            "{} holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)",
            path.display()
        ),
        e => format!("{} is not a valid PEM private key file: {e}", path.display()),
    })
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(path)? {
        roots.add(c).map_err(|e| format!("{}: a certificate is not a usable CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

fn server_config(
    s: &TlsSettings,
    key: Arc<CertifiedKey>,
    provider: &Arc<CryptoProvider>,
) -> Result<ServerConfig, String> {
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match s.verify_client {
        VerifyClient::Off => builder.with_no_client_auth(),
        mode => {
            let path = s
                .client_ca_file
                .as_deref()
                .ok_or_else(|| "TLS client verification is on but no client CA file is configured".to_string())?;
            let roots = Arc::new(roots_from_file(path)?);
            let v = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let v = if mode == VerifyClient::Optional { v.allow_unauthenticated() } else { v };
            builder.with_client_cert_verifier(v.build().map_err(|e| format!("client CA file {}: {e}", path.display()))?)
        }
    };
    Ok(builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key))))
}

fn client_config(
    s: &TlsSettings,
    key: Option<Arc<CertifiedKey>>,
    provider: &Arc<CryptoProvider>,
) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = if s.verify_server {
        let roots = match &s.ca_file {
            Some(p) => roots_from_file(p)?,
            None => system_roots(),
        };
        builder.with_root_certificates(roots)
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyServerCert(provider.clone())))
    };
    Ok(match key {
        Some(k) => builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(k))),
        None => builder.with_no_client_auth(),
    })
}

/// The system's trust store (what it holds that parses; problems are logged).
fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "reading the system CA certificates");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!(ignored, "no system CA certificates found: outbound TLS cannot verify any server");
    }
    roots
}

/// `verify_server = false`: any certificate is accepted (signatures are
/// still checked, so the handshake itself stays sound).
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn cert_and_key() -> (String, String) {
        let k = rcgen::KeyPair::generate().unwrap();
        let c = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&k).unwrap();
        (c.pem(), k.serialize_pem())
    }

    fn settings(cert: &Path, key: &Path) -> TlsSettings {
        TlsSettings { certificate: Some(cert.into()), private_key: Some(key.into()), ..TlsSettings::default() }
    }

    #[test]
    fn good_files_load_and_reload() {
        let d = tempfile::tempdir().unwrap();
        let (c, k) = cert_and_key();
        let s = settings(&write(d.path(), "c.pem", &c), &write(d.path(), "k.pem", &k));
        let st = TlsState::load(s).unwrap();
        assert!(st.current().server.is_some());
        let before = st.current();
        st.reload().unwrap();
        assert!(!Arc::ptr_eq(&before, &st.current()));
    }

    #[test]
    fn bad_files_name_the_path_and_the_problem() {
        let d = tempfile::tempdir().unwrap();
        let (c, k) = cert_and_key();
        let (_, other_key) = cert_and_key();
        let cert = write(d.path(), "c.pem", &c);
        let key = write(d.path(), "k.pem", &k);
        let junk = write(d.path(), "junk.pem", "hello\n");
        let e = TlsState::load(settings(&junk, &key)).err().unwrap();
        assert!(e.contains("junk.pem") && e.contains("no PEM certificate"), "{e}");
        let e = TlsState::load(settings(&cert, &junk)).err().unwrap();
        assert!(e.contains("junk.pem") && e.contains("no PEM private key"), "{e}");
        let e = TlsState::load(settings(&cert, &write(d.path(), "other.pem", &other_key))).err().unwrap();
        assert!(e.contains("other.pem") && e.contains("does not match"), "{e}");
        let e = TlsState::load(settings(&d.path().join("missing.pem"), &key)).err().unwrap();
        assert!(e.contains("missing.pem") && e.contains("cannot read"), "{e}");
        let s = TlsSettings { verify_client: VerifyClient::Required, ..settings(&cert, &key) };
        let e = TlsState::load(s).err().unwrap();
        assert!(e.contains("client CA"), "{e}");
        // A failed reload keeps the old configs.
        let st = TlsState::load(settings(&cert, &key)).unwrap();
        let before = st.current();
        std::fs::write(&key, "garbage").unwrap();
        assert!(st.reload().is_err());
        assert!(Arc::ptr_eq(&before, &st.current()));
    }
}
