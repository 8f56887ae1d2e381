//! The sans-IO rules of RFC 3263 §4 (client side) and RFC 2782: which
//! transport and which lookups a query needs ([`plan`]), which NAPTR
//! records apply and in what order ([`naptr`]), the weighted SRV order
//! ([`srv`]), and the flattening of everything into one deduplicated target
//! list with its TTL ([`flatten`]).
//!
//! Pure functions over plain records: no DNS, no clock, no hickory types, so
//! every rule is unit-tested without a server. The lookups live in
//! `crate::lookup`, the sequencing in `crate::resolver`.

pub(crate) mod flatten;
pub(crate) mod naptr;
pub(crate) mod plan;
pub(crate) mod srv;

use std::net::IpAddr;

use sip_msg::Transport;

/// A NAPTR record as the rules need it (RFC 3403 §4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NaptrRecord {
    pub order: u16,
    pub preference: u16,
    pub flags: String,
    pub services: String,
    pub regexp: String,
    /// The replacement domain, lower case, without the trailing dot (`""` for `.`).
    pub replacement: String,
    pub ttl: u32,
}

/// An SRV record (RFC 2782).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// The target host, lower case, without the trailing dot (`""` for `.`).
    pub target: String,
    pub ttl: u32,
}

/// An A or AAAA record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AddrRecord {
    pub ip: IpAddr,
    pub ttl: u32,
}

/// The default port of a transport (RFC 3261 §19.1.2): 5061 for TLS, 5060 otherwise.
pub fn default_port(transport: Transport) -> u16 {
    match transport {
        Transport::Tls | Transport::Wss => 5061,
        Transport::Udp | Transport::Tcp | Transport::Ws => 5060,
    }
}

/// The SRV owner name of a transport at a domain (RFC 3263 §4.2): `_sips._tcp`
/// for TLS, `_sip._tcp` for TCP, `_sip._udp` for UDP; `None` for WS/WSS,
/// which have no SRV service of their own.
pub(crate) fn srv_name(transport: Transport, domain: &str) -> Option<String> {
    let prefix = match transport {
        Transport::Tls => "_sips._tcp",
        Transport::Tcp => "_sip._tcp",
        Transport::Udp => "_sip._udp",
        Transport::Ws | Transport::Wss => return None,
    };
    Some(format!("{prefix}.{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_and_srv_names() {
        assert_eq!(default_port(Transport::Udp), 5060);
        assert_eq!(default_port(Transport::Tcp), 5060);
        assert_eq!(default_port(Transport::Tls), 5061);
        assert_eq!(srv_name(Transport::Tls, "example.org").as_deref(), Some("_sips._tcp.example.org"));
        assert_eq!(srv_name(Transport::Tcp, "example.org").as_deref(), Some("_sip._tcp.example.org"));
        assert_eq!(srv_name(Transport::Udp, "example.org").as_deref(), Some("_sip._udp.example.org"));
        assert_eq!(srv_name(Transport::Ws, "example.org"), None);
    }
}
