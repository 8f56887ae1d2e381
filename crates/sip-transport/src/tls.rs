//! TLS handshakes on stream connections: the server side for `tls:` and
//! `wss:` listeners (with the handshake deadline, failures counted and
//! logged at debug) and the client side for outbound TLS, verifying the
//! name registered for the address (`Transports::set_server_name`) or else
//! the IP address against the certificate's IP SANs.
//!
//! Each handshake reads the current configs once, so a reload applies to
//! new handshakes and never touches connections already up. It owns no
//! connection state: the connection runs in `stream_conn` or `ws`.

use crate::Inner;
use crate::stats::HandshakeFailure;
use crate::types::Transport;
use rustls_pki_types::ServerName;
use std::net::SocketAddr;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

/// The server handshake; `None` (counted and logged) when it fails or
/// does not finish by `deadline`.
pub(crate) async fn accept(
    inner: &Inner,
    stream: TcpStream,
    remote: SocketAddr,
    transport: Transport,
    deadline: Instant,
) -> Option<server::TlsStream<TcpStream>> {
    let Some(config) = inner.tls.current().server.clone() else {
        // `bind` refuses tls/wss listeners without a certificate.
        tracing::error!(%remote, %transport, "no TLS certificate configured; closing");
        return None;
    };
    match tokio::time::timeout_at(deadline, TlsAcceptor::from(config).accept(stream)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            inner.counters.handshake_failed(transport, HandshakeFailure::Tls);
            tracing::debug!(%remote, %transport, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            inner.counters.handshake_failed(transport, HandshakeFailure::Timeout);
            tracing::debug!(%remote, %transport, "TLS handshake timed out");
            None
        }
    }
}

/// The client handshake on a connected stream; `None` (counted and
/// logged) when it fails or times out.
pub(crate) async fn connect(
    inner: &Inner,
    stream: TcpStream,
    remote: SocketAddr,
    name: ServerName<'static>,
) -> Option<client::TlsStream<TcpStream>> {
    let connector = TlsConnector::from(inner.tls.current().client.clone());
    let res = tokio::time::timeout(inner.config.handshake_timeout, connector.connect(name.clone(), stream)).await;
    match res {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            inner.counters.handshake_failed(Transport::Tls, HandshakeFailure::Tls);
            tracing::debug!(%remote, server_name = ?name, error = %e, "outbound TLS handshake failed");
            None
        }
        Err(_) => {
            inner.counters.handshake_failed(Transport::Tls, HandshakeFailure::Timeout);
            tracing::debug!(%remote, server_name = ?name, "outbound TLS handshake timed out");
            None
        }
    }
}

/// The name a server at `remote` must prove: the registered DNS name, else its IP.
pub(crate) fn server_name(inner: &Inner, remote: SocketAddr) -> ServerName<'static> {
    let names = inner.server_names.read().unwrap_or_else(|e| e.into_inner());
    names.get(&remote).cloned().unwrap_or_else(|| ServerName::IpAddress(remote.ip().into()))
}

/// Parses a DNS name (or IP literal) for `set_server_name`.
pub(crate) fn parse_server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_string()).map_err(|e| format!("{name:?} is not a valid TLS server name: {e}"))
}
