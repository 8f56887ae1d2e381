//! The plain data types shared by the transports and their users.

use bytes::Bytes;
use sip_msg::{Limits, Message, ParseFailure};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use sip_msg::{ConnId, Source, Target, Transport};

/// A listener: `udp:`, `tcp:`, `tls:`, `ws:` or `wss:` then `HOST:PORT`
/// (`[v6]` for IPv6 hosts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenSpec {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl FromStr for ListenSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (t, a) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: expected TRANSPORT:HOST:PORT, e.g. udp:0.0.0.0:5060 or tls:0.0.0.0:5061"))?;
        let transport = Transport::parse(t)
            .ok_or_else(|| format!("`{s}`: transport `{t}` is not one of udp, tcp, tls, ws, wss"))?;
        let addr = a
            .parse()
            .map_err(|_| format!("`{s}`: `{a}` is not an IP address and port (e.g. 127.0.0.1:5060 or [::1]:5060)"))?;
        Ok(ListenSpec { transport, addr })
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

/// Transport tuning.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    pub limits: Limits,
    /// A TCP connection with no traffic for this long is closed.
    pub tcp_idle_timeout: Duration,
    /// Once the first byte of a message (not a CR/LF keep-alive) is in, the
    /// whole message must arrive within this, or the connection is closed
    /// (slowloris defence; the idle timeout restarts on every byte).
    pub message_timeout: Duration,
    /// Most bytes queued for writing on one TCP connection; a send beyond
    /// it closes the connection (a peer that does not read).
    pub max_queued_bytes: usize,
    /// How many threads receive on each UDP socket (spreads work over cores).
    pub udp_tasks: usize,
    /// Connections beyond this are refused.
    pub max_connections: usize,
    /// SO_RCVBUF / SO_SNDBUF for UDP sockets, in bytes (0 = system default).
    pub udp_buffer_bytes: usize,
    /// A TLS or WebSocket handshake (both, for WSS) must finish within this.
    pub handshake_timeout: Duration,
    /// Certificates and verification for TLS and WSS.
    pub tls: TlsSettings,
    /// `Origin` values a WebSocket handshake may carry; empty = any.
    pub ws_allowed_origins: Vec<String>,
}

/// Whether TLS clients must present a certificate signed by
/// [`TlsSettings::client_ca_file`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VerifyClient {
    /// No client certificate is asked for.
    #[default]
    Off,
    /// One is asked for and verified when sent; clients without one are served.
    Optional,
    /// Clients without a valid certificate are refused.
    Required,
}

/// TLS files and verification policy (PEM files, read at bind and by
/// `Transports::reload_tls`).
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// Our certificate chain (leaf first); needed by `tls:` and `wss:` listeners.
    pub certificate: Option<PathBuf>,
    /// The private key of `certificate`.
    pub private_key: Option<PathBuf>,
    /// Roots that servers we connect to must chain to; `None` = the system store.
    pub ca_file: Option<PathBuf>,
    /// Verify the certificates of servers we connect to (false = accept any).
    pub verify_server: bool,
    /// Roots that client certificates must chain to (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
    pub verify_client: VerifyClient,
    /// The certificate we present on outbound connections; `None` = `certificate`.
    pub client_certificate: Option<PathBuf>,
    /// The key of `client_certificate`.
    pub client_private_key: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            certificate: None,
            private_key: None,
            ca_file: None,
            verify_server: true,
            client_ca_file: None,
            verify_client: VerifyClient::Off,
            client_certificate: None,
            client_private_key: None,
        }
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            limits: Limits::default(),
            tcp_idle_timeout: Duration::from_secs(900),
            message_timeout: Duration::from_secs(20),
            max_queued_bytes: 2 << 20,
            udp_tasks: 2,
            max_connections: 100_000,
            udp_buffer_bytes: 4 << 20,
            handshake_timeout: Duration::from_secs(10),
            tls: TlsSettings::default(),
            ws_allowed_origins: Vec::new(),
        }
    }
}

/// Why a send failed.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// No socket of the address family of the target.
    NoSocket,
    /// The kernel refused the datagram.
    Io(String),
    /// Too many connections.
    ConnectionLimit,
    /// The connection's write queue is full (the peer does not read); it is being closed.
    QueueFull,
    /// The transport cannot carry this message.
    Unsupported(Transport),
    /// WS/WSS: no live connection to the target, and none can be opened
    /// (a browser accepts no connections).
    NoConnection(Transport),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NoSocket => f.write_str("no listener of the target's address family"),
            SendError::Io(e) => write!(f, "send failed: {e}"),
            SendError::ConnectionLimit => f.write_str("connection limit reached"),
            SendError::QueueFull => f.write_str("connection write queue full; connection closed"),
            SendError::Unsupported(t) => write!(f, "no {t} transport"),
            SendError::NoConnection(t) => write!(f, "no open {t} connection to the target (none can be opened)"),
        }
    }
}

impl std::error::Error for SendError {}

/// Receives everything the transports read.
pub trait Handler: Send + Sync + 'static {
    /// A message (or what failed to parse of one) arrived.
    fn on_message(&self, src: Source, msg: Result<Message, ParseFailure>);
    /// A connection closed (by either side, idle timeout or error).
    fn on_closed(&self, _conn: ConnId, _remote: SocketAddr) {}
    /// Whether to keep a connection just accepted from `src` (`src.conn`
    /// is `None`): refused ones are closed before any handshake.
    fn admit_connection(&self, _src: &Source) -> bool {
        true
    }
    /// Raw bytes are also given for tracing when the log level asks; default none.
    fn on_raw(&self, _src: &Source, _data: &Bytes) {}
    /// A UDP receive thread is about to hand over a batch of datagrams (one
    /// `recvmmsg`), each through `on_message`, on this thread.
    fn on_batch_begin(&self) {}
    /// The batch `on_batch_begin` announced has been handed over: work the
    /// handler deferred for it (one commit for the batch) can run now.
    /// `idle()`: no other datagram is waiting on the socket, so the thread
    /// would only sleep; otherwise it goes on receiving at once (asked only
    /// when needed: it costs a system call).
    fn on_batch_end(&self, _idle: &dyn Fn() -> bool) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn listen_specs() {
        let s: ListenSpec = "udp:127.0.0.1:5060".parse().unwrap();
        assert_eq!(s.transport, Transport::Udp);
        let s: ListenSpec = "TCP:[::1]:5070".parse().unwrap();
        assert_eq!(s.addr.port(), 5070);
        assert!("sctp:1.2.3.4:5".parse::<ListenSpec>().is_err());
        for (text, t) in [
            ("tls:127.0.0.1:5061", Transport::Tls),
            ("ws:[::1]:80", Transport::Ws),
            ("WSS:0.0.0.0:443", Transport::Wss),
        ] {
            let s: ListenSpec = text.parse().unwrap();
            assert_eq!(s.transport, t, "{text}");
        }
        assert!("udp:localhost:5060".parse::<ListenSpec>().is_err());
        assert!("udp".parse::<ListenSpec>().is_err());
    }
}
