//! The probe's TLS client side and SIP framing over a byte stream: the
//! client configuration (roots = the throw-away CA the bench script made,
//! optionally one key-exchange group, no session resumption unless asked),
//! opening a TLS connection, and reading one SIP message from a TCP/TLS
//! stream (headers up to the blank line, then `Content-Length` bytes).
//! It does not build SIP requests nor keep statistics (`phones.rs`,
//! `handshakes.rs`, `stats.rs`).

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Options of the TLS modes, from the command line.
pub struct TlsOptions {
    /// PEM file of the CA that signed the server's certificate.
    pub ca: String,
    /// Name or IP the certificate must be valid for (default: the target's IP).
    pub server_name: Option<String>,
    /// Offer only this key-exchange group (rustls name, e.g. `X25519`); default: rustls' defaults.
    pub kx: Option<String>,
    /// Keep rustls' client session cache (TLS 1.3 tickets); off by default: full handshakes.
    pub resume: bool,
}

/// What a connection negotiated, for the report.
pub struct Negotiated {
    pub version: String,
    pub suite: String,
    pub group: String,
}

/// A connector for `opts`.
pub fn connector(opts: &TlsOptions) -> Result<TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&opts.ca).map_err(|e| format!("--ca {}: {e}", opts.ca))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("--ca {}: {e}", opts.ca))?;
        roots.add(cert).map_err(|e| format!("--ca {}: {e}", opts.ca))?;
    }
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if let Some(name) = &opts.kx {
        let known: Vec<String> = provider.kx_groups.iter().map(|g| format!("{:?}", g.name())).collect();
        provider.kx_groups.retain(|g| format!("{:?}", g.name()).eq_ignore_ascii_case(name));
        if provider.kx_groups.is_empty() {
            return Err(format!("--kx {name}: not a group of this rustls build; known: {}", known.join(", ")));
        }
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS client configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !opts.resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The name the server's certificate is checked against.
pub fn server_name(opts: &TlsOptions, target: SocketAddr) -> Result<ServerName<'static>, String> {
    let name = opts.server_name.clone().unwrap_or_else(|| target.ip().to_string());
    ServerName::try_from(name.clone()).map_err(|e| format!("--server-name {name}: {e}"))
}

/// TCP connect (Nagle off, as a SIP stack does) and the TLS handshake.
pub async fn connect(
    connector: &TlsConnector,
    name: &ServerName<'static>,
    target: SocketAddr,
) -> Result<TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(target).await.map_err(|e| format!("connect {target}: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| format!("TCP_NODELAY: {e}"))?;
    connector.connect(name.clone(), tcp).await.map_err(|e| format!("TLS handshake with {target}: {e}"))
}

/// What `stream` negotiated.
pub fn negotiated(stream: &TlsStream<TcpStream>) -> Negotiated {
    let conn = stream.get_ref().1;
    Negotiated {
        version: conn.protocol_version().map_or_else(|| "?".into(), |v| format!("{v:?}")),
        suite: conn.negotiated_cipher_suite().map_or_else(|| "?".into(), |s| format!("{:?}", s.suite())),
        group: conn.negotiated_key_exchange_group().map_or_else(|| "?".into(), |g| format!("{:?}", g.name())),
    }
}

/// Reads one SIP message from a stream: CRLF keep-alives before it are
/// skipped; the body (`Content-Length`, compact form `l`) is read and
/// dropped. Returns the start line and headers, or `None` at end of stream.
pub async fn read_message<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<String>> {
    let mut head = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        if line.trim().is_empty() {
            if head.is_empty() {
                continue; // keep-alive CRLF between messages
            }
            break;
        }
        head.push_str(&line);
    }
    let len = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            let n = n.trim();
            (n.eq_ignore_ascii_case("Content-Length") || n.eq_ignore_ascii_case("l")).then(|| v.trim().parse::<u64>())
        })
        .transpose()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("Content-Length: {e}")))?
        .unwrap_or(0);
    if len > 0 {
        let mut body = r.take(len);
        let copied = tokio::io::copy(&mut body, &mut tokio::io::sink()).await?;
        if copied < len {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "body cut short"));
        }
    }
    Ok(Some(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn frames_messages_with_bodies_and_keepalives() {
        let data: &[u8] =
            b"\r\n\r\nSIP/2.0 200 OK\r\nCall-ID: a\r\nContent-Length: 4\r\n\r\nabcdSIP/2.0 401 X\r\nl: 0\r\n\r\n";
        let mut r = tokio::io::BufReader::new(data);
        let first = read_message(&mut r).await.unwrap().unwrap();
        assert!(first.starts_with("SIP/2.0 200") && first.contains("Call-ID: a"), "{first}");
        let second = read_message(&mut r).await.unwrap().unwrap();
        assert!(second.starts_with("SIP/2.0 401"), "{second}");
        assert!(read_message(&mut r).await.unwrap().is_none());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn short_body_is_an_error() {
        let data: &[u8] = b"SIP/2.0 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        let mut r = tokio::io::BufReader::new(data);
        assert!(read_message(&mut r).await.is_err());
    }
}
