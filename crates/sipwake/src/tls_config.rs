//! The `[tls]` and `[websocket]` configuration sections: their schema with
//! defaults, validation that names the key and the fix, and the mapping to
//! `sip_transport::TlsSettings`.
//!
//! Owns nothing at run time; reading the files is `TlsSettings::check`'s
//! (at start-up and by `--check-config`) and reloading is the server's.

use serde::Deserialize;
use sip_transport::{ListenSpec, TlsSettings, Transport, VerifyClient};
use std::path::{Path, PathBuf};

/// `[tls]`: certificates for `tls:` and `wss:` listeners and outbound TLS.
/// Empty strings mean "not set".
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// Our certificate chain, PEM, leaf first.
    pub certificate: PathBuf,
    /// Its private key, PEM.
    pub private_key: PathBuf,
    /// Roots for servers we connect to; "" = the system store.
    pub ca_file: PathBuf,
    /// Verify the certificates of servers we connect to.
    pub verify_server: bool,
    /// "off", "optional" or "required": client certificates (mutual TLS).
    pub verify_client: String,
    /// Roots client certificates must chain to; required unless verify_client = "off".
    pub client_ca_file: PathBuf,
    /// Certificate presented on our outbound TLS connections; "" = `certificate`.
    pub client_certificate: PathBuf,
    /// Its private key.
    pub client_private_key: PathBuf,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            certificate: PathBuf::new(),
            private_key: PathBuf::new(),
            ca_file: PathBuf::new(),
            verify_server: true,
            verify_client: "off".into(),
            client_ca_file: PathBuf::new(),
            client_certificate: PathBuf::new(),
            client_private_key: PathBuf::new(),
        }
    }
}

/// `[websocket]`: SIP over WebSocket (RFC 7118) listeners.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketSection {
    /// `Origin` values a browser may connect from; empty = any.
    pub allowed_origins: Vec<String>,
}

fn set(p: &Path) -> Option<PathBuf> {
    (!p.as_os_str().is_empty()).then(|| p.to_path_buf())
}

impl TlsSection {
    /// Checks the values (not the files).
    pub fn validate(&self) -> Result<(), String> {
        let mode = self.verify_client_mode()?;
        for (a, b, ka, kb) in [
            (&self.certificate, &self.private_key, "tls.certificate", "tls.private_key"),
            (&self.client_certificate, &self.client_private_key, "tls.client_certificate", "tls.client_private_key"),
        ] {
            match (set(a), set(b)) {
                (Some(a), None) => return Err(format!("{ka} = {a:?} is set but {kb} is not; give both or neither")),
                (None, Some(b)) => return Err(format!("{kb} = {b:?} is set but {ka} is not; give both or neither")),
                _ => {}
            }
        }
        if mode != VerifyClient::Off && set(&self.client_ca_file).is_none() {
            return Err(format!(
                "tls.verify_client = {:?} needs tls.client_ca_file (the CA that signs the client certificates); set it or use verify_client = \"off\"",
                self.verify_client
            ));
        }
        if mode != VerifyClient::Off && set(&self.certificate).is_none() {
            return Err(format!(
                "tls.verify_client = {:?} but tls.certificate is not set: client certificates are only asked for by tls: and wss: listeners",
                self.verify_client
            ));
        }
        Ok(())
    }

    fn verify_client_mode(&self) -> Result<VerifyClient, String> {
        match self.verify_client.to_ascii_lowercase().as_str() {
            "off" => Ok(VerifyClient::Off),
            "optional" => Ok(VerifyClient::Optional),
            "required" => Ok(VerifyClient::Required),
            _ => Err(format!(
                "tls.verify_client = {:?} is invalid; allowed: \"off\", \"optional\" or \"required\"",
                self.verify_client
            )),
        }
    }

    /// Checks that every `tls:` and `wss:` listener has a certificate.
    pub fn check_listeners(&self, listen: &[ListenSpec], key: &str) -> Result<(), String> {
        if set(&self.certificate).is_some() {
            return Ok(());
        }
        match listen.iter().find(|l| matches!(l.transport, Transport::Tls | Transport::Wss)) {
            Some(l) => Err(format!(
                "{key} has {l}, which needs tls.certificate and tls.private_key (PEM files); set them in [tls] or remove the listener"
            )),
            None => Ok(()),
        }
    }

    /// Makes relative file names relative to `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [
            &mut self.certificate,
            &mut self.private_key,
            &mut self.ca_file,
            &mut self.client_ca_file,
            &mut self.client_certificate,
            &mut self.client_private_key,
        ] {
            if !p.as_os_str().is_empty() && p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The transport's settings (call after [`TlsSection::validate`]).
    pub fn to_settings(&self) -> TlsSettings {
        TlsSettings {
            certificate: set(&self.certificate),
            private_key: set(&self.private_key),
            ca_file: set(&self.ca_file),
            verify_server: self.verify_server,
            client_ca_file: set(&self.client_ca_file),
            verify_client: self.verify_client_mode().unwrap_or_default(),
            client_certificate: set(&self.client_certificate),
            client_private_key: set(&self.client_private_key),
        }
    }
}

impl WebSocketSection {
    /// Each origin must be `scheme://host[:port]` as browsers send it.
    pub fn validate(&self) -> Result<(), String> {
        for (i, o) in self.allowed_origins.iter().enumerate() {
            let ok = o.split_once("://").is_some_and(|(scheme, rest)| {
                !scheme.is_empty() && !rest.is_empty() && !rest.contains('/') && !o.contains(char::is_whitespace)
            });
            if !ok {
                return Err(format!(
                    "websocket.allowed_origins[{i}] = {o:?} is not an origin; write it as the browser sends it, e.g. \"https://phone.example.com\" (no path, no trailing slash)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::tests::err;

    #[test]
    fn tls_and_websocket_errors_name_the_key_and_the_fix() {
        let e = err("[server]\nlisten = [\"udp:127.0.0.1:5060\", \"tls:127.0.0.1:5061\"]\n");
        assert!(
            e.contains("server.listen") && e.contains("tls:127.0.0.1:5061") && e.contains("tls.certificate"),
            "{e}"
        );
        let e = err("[server]\nlisten = [\"wss:127.0.0.1:8443\"]\n");
        assert!(e.contains("wss:127.0.0.1:8443") && e.contains("tls.private_key"), "{e}");
        let e = err("[tls]\ncertificate = \"c.pem\"\n");
        assert!(e.contains("tls.certificate = \"c.pem\"") && e.contains("tls.private_key is not"), "{e}");
        let e = err("[tls]\nprivate_key = \"k.pem\"\n");
        assert!(e.contains("tls.private_key = \"k.pem\"") && e.contains("both or neither"), "{e}");
        let e = err("[tls]\nclient_certificate = \"c.pem\"\n");
        assert!(e.contains("tls.client_certificate") && e.contains("tls.client_private_key"), "{e}");
        let e = err("[tls]\nverify_client = \"sometimes\"\n");
        assert!(e.contains("tls.verify_client = \"sometimes\"") && e.contains("\"required\""), "{e}");
        let e = err("[tls]\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\nverify_client = \"required\"\n");
        assert!(e.contains("tls.client_ca_file"), "{e}");
        let e = err("[tls]\nverify_client = \"optional\"\nclient_ca_file = \"ca.pem\"\n");
        assert!(e.contains("tls.certificate is not set"), "{e}");
        let e = err("[tls]\nverify_server = \"no\"\n");
        assert!(e.contains("verify_server"), "{e}");
        let e = err("[tls]\ncert = \"c.pem\"\n");
        assert!(e.contains("unknown field `cert`"), "{e}");
        let e = err("[websocket]\nallowed_origins = [\"phone.example.com\"]\n");
        assert!(e.contains("websocket.allowed_origins[0]") && e.contains("https://"), "{e}");
        let e = err("[websocket]\nallowed_origins = [\"https://phone.example.com/\"]\n");
        assert!(e.contains("websocket.allowed_origins[0]") && e.contains("no trailing slash"), "{e}");
    }

    #[test]
    fn tls_and_websocket_settings_map_to_the_transport() {
        let c = Config::parse(
            "[server]\nlisten = [\"tls:127.0.0.1:5061\", \"ws:127.0.0.1:8080\", \"wss:127.0.0.1:8443\"]\n\
             [tls]\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\nverify_client = \"Optional\"\nclient_ca_file = \"ca.pem\"\nverify_server = false\n\
             [websocket]\nallowed_origins = [\"https://phone.example.com\", \"http://localhost:3000\"]\n",
        )
        .unwrap();
        let s = c.tls.to_settings();
        assert_eq!(s.certificate.as_deref(), Some(std::path::Path::new("c.pem")));
        assert_eq!(s.verify_client, sip_transport::VerifyClient::Optional);
        assert!(!s.verify_server && s.ca_file.is_none() && s.client_certificate.is_none());
        assert_eq!(c.websocket.allowed_origins.len(), 2);
        let d = Config::parse("").unwrap().tls.to_settings();
        assert!(d.verify_server && d.certificate.is_none() && d.verify_client == sip_transport::VerifyClient::Off);
    }
}
