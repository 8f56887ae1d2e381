//! The one transport type of sipwake, and the addressing of a message on
//! the wire: where it came from ([`Source`]) and where it goes ([`Target`]).
//!
//! Every crate uses these (the transaction layer, the transports, the
//! registrar's flows, the node): there is no second transport enum. Plain
//! data, no I/O.

use std::fmt;
use std::net::SocketAddr;

/// A SIP transport protocol (RFC 3261 §18, RFC 7118 for WS/WSS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    /// Every transport, in a stable order.
    pub const ALL: [Transport; 5] = [Transport::Udp, Transport::Tcp, Transport::Tls, Transport::Ws, Transport::Wss];

    /// The Via transport token (`SIP/2.0/UDP`).
    pub fn as_via(&self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }
    /// The lower-case name (`transport=` URI parameter, config, store rows).
    pub fn as_str(&self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }
    /// Parses a name or Via token, case-insensitively.
    pub fn parse(s: &str) -> Option<Transport> {
        Transport::from_via(s.as_bytes())
    }
    /// Maps a Via transport token or `transport=` value (case-insensitive).
    pub fn from_via(t: &[u8]) -> Option<Transport> {
        Transport::ALL.into_iter().find(|x| t.eq_ignore_ascii_case(x.as_str().as_bytes()))
    }
    /// Connection-oriented (no retransmission timers, flows are connections).
    pub fn is_reliable(&self) -> bool {
        !matches!(self, Transport::Udp)
    }
    /// Protected by TLS (RFC 8599 §13 wants push coordinates over these).
    pub fn is_secure(&self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one connection for its lifetime (never reused).
pub type ConnId = u64;

/// Where a message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The connection it arrived on (stream transports).
    pub conn: Option<ConnId>,
}

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub transport: Transport,
    pub remote: SocketAddr,
    /// A connection to prefer (the one the peer opened).
    pub conn: Option<ConnId>,
}

impl From<&Source> for Target {
    fn from(s: &Source) -> Self {
        Target { transport: s.transport, remote: s.remote, conn: s.conn }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Transport::ALL {
            assert_eq!(Transport::parse(t.as_str()), Some(t));
            assert_eq!(Transport::from_via(t.as_via().as_bytes()), Some(t));
        }
        assert_eq!(Transport::parse("sctp"), None);
        assert!(Transport::Wss.is_secure() && Transport::Wss.is_reliable());
        assert!(!Transport::Udp.is_reliable());
    }
}
