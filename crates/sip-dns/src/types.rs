//! What a caller asks ([`Query`]) and what it gets back ([`Resolution`],
//! [`DnsError`]).
//!
//! Plain data shared by the rules, the cache and the resolver; no I/O here.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use sip_msg::Transport;

/// The parts of a SIP or SIPS URI that RFC 3263 resolution looks at: the
/// host (a name or an IP literal, IPv6 with or without brackets), the port,
/// the `transport` parameter and the scheme.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Query {
    pub host: String,
    pub port: Option<u16>,
    pub transport: Option<Transport>,
    /// A SIPS URI (only TLS targets are acceptable).
    pub secure: bool,
}

impl Query {
    /// A query for `sip:host` (no port, no transport parameter).
    pub fn sip(host: impl Into<String>) -> Query {
        Query { host: host.into(), port: None, transport: None, secure: false }
    }
    /// A query for `sips:host`.
    pub fn sips(host: impl Into<String>) -> Query {
        Query { host: host.into(), port: None, transport: None, secure: true }
    }
    /// The same query with an explicit port.
    pub fn with_port(mut self, port: u16) -> Query {
        self.port = Some(port);
        self
    }
    /// The same query with an explicit `transport` parameter.
    pub fn with_transport(mut self, transport: Transport) -> Query {
        self.transport = Some(transport);
        self
    }
}

/// One place to send the request: a transport and an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Resolved {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// The outcome of a successful resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// Every target, in the order to try them (never empty, no duplicates).
    pub targets: Vec<Resolved>,
    /// How long the answer stays valid: the smallest TTL of every record
    /// used, capped by [`crate::ResolverConfig::max_cache_ttl`].
    pub ttl: Duration,
}

/// Why a query has no targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// The name does not exist or has no usable records (NXDOMAIN, no
    /// record of a supported transport, SRV target `.`): a final answer,
    /// cached for `negative_ttl`.
    NotFound(String),
    /// DNS did not answer usefully (timeout, SERVFAIL, REFUSED, network
    /// error): temporary, never cached.
    Failed(String),
    /// The query itself cannot be resolved whatever DNS says: a SIPS URI
    /// with `transport=udp`, an unsupported transport, a malformed host.
    Invalid(String),
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::NotFound(m) => write!(f, "not found: {m}"),
            DnsError::Failed(m) => write!(f, "DNS failure: {m}"),
            DnsError::Invalid(m) => write!(f, "invalid query: {m}"),
        }
    }
}

impl std::error::Error for DnsError {}
