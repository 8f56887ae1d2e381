//! Step one of RFC 3263 §4.1/§4.2: from a [`Query`], decide the transport
//! (when the URI decides it) and which lookups are needed.
//!
//! Owns the host syntax check and normalisation. Must not do lookups.

use std::net::{IpAddr, SocketAddr};

use sip_msg::Transport;

use super::default_port;
use crate::types::{DnsError, Query, Resolved};

/// What to do for a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The host is an IP address: the answer, with no DNS traffic.
    Literal(Resolved),
    /// A port is given: A/AAAA on the host, at that port (§4.2).
    Address { host: String, transport: Transport, port: u16 },
    /// The transport is given, no port: SRV for that transport, then A/AAAA
    /// at its default port (§4.2).
    Srv { host: String, transport: Transport },
    /// Neither: NAPTR, else SRV for every supported transport, else A/AAAA (§4.1).
    Naptr { host: String },
}

/// The host of a query, once normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Host {
    Ip(IpAddr),
    /// Lower case, without brackets or a trailing dot.
    Name(String),
}

/// Normalises a URI host: IPv6 brackets and a trailing dot are dropped,
/// names are lower-cased and must be valid DNS names (letters, digits,
/// `-`, `_`; labels of 1 to 63 characters; at most 253 in all).
pub(crate) fn normalize_host(host: &str) -> Result<Host, DnsError> {
    let h = host.trim();
    let bare = h.strip_prefix('[').and_then(|s| s.strip_suffix(']'));
    if let Some(inner) = bare {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|ip| Host::Ip(IpAddr::V6(ip)))
            .map_err(|_| DnsError::Invalid(format!("bad IPv6 reference {host:?}")));
    }
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let name = h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(DnsError::Invalid(format!("bad host name {host:?}")));
    }
    Ok(Host::Name(name))
}

/// The transport an explicit `transport` parameter means (RFC 3261 §26.2:
/// a SIPS URI over TCP is TLS; SIPS over UDP is an error).
fn explicit_transport(t: Transport, secure: bool) -> Result<Transport, DnsError> {
    if !secure {
        return Ok(t);
    }
    match t {
        Transport::Udp => Err(DnsError::Invalid("a SIPS URI cannot use transport=udp".into())),
        Transport::Tcp | Transport::Tls => Ok(Transport::Tls),
        Transport::Ws | Transport::Wss => Ok(Transport::Wss),
    }
}

fn require(t: Transport, supported: &[Transport]) -> Result<Transport, DnsError> {
    if supported.contains(&t) {
        Ok(t)
    } else {
        Err(DnsError::Invalid(format!("transport {t} is not supported for outbound requests")))
    }
}

/// Decides the transport (when the URI does) and the lookups (RFC 3263
/// §4.1, §4.2). `supported` holds the transports we can send on.
pub(crate) fn plan(q: &Query, supported: &[Transport]) -> Result<Plan, DnsError> {
    let host = normalize_host(&q.host)?;
    let chosen = match (q.transport, q.port, &host) {
        (Some(t), _, _) => Some(explicit_transport(t, q.secure)?),
        // §4.1: a numeric host or an explicit port means UDP for SIP and
        // TCP (TLS) for SIPS.
        (None, Some(_), _) | (None, None, Host::Ip(_)) => Some(if q.secure { Transport::Tls } else { Transport::Udp }),
        (None, None, Host::Name(_)) => None,
    };
    let chosen = chosen.map(|t| require(t, supported)).transpose()?;
    match (host, chosen) {
        (Host::Ip(ip), Some(t)) => {
            let port = q.port.unwrap_or_else(|| default_port(t));
            Ok(Plan::Literal(Resolved { transport: t, addr: SocketAddr::new(ip, port) }))
        }
        (Host::Name(host), Some(transport)) => match q.port {
            Some(port) => Ok(Plan::Address { host, transport, port }),
            None => Ok(Plan::Srv { host, transport }),
        },
        (Host::Name(host), None) => {
            if srv_candidates(q.secure, supported).is_empty() {
                let need = if q.secure { "TLS" } else { "UDP, TCP or TLS" };
                return Err(DnsError::Invalid(format!("resolving {host} needs {need}, which is not supported")));
            }
            Ok(Plan::Naptr { host })
        }
        // An IP host always gets a transport above.
        (Host::Ip(ip), None) => Err(DnsError::Invalid(format!("no transport for {ip}"))),
    }
}

/// The SRV services to try when a domain has no usable NAPTR records, in
/// preference order (§4.1): `_sips._tcp`, `_sip._tcp`, `_sip._udp`; only
/// `_sips._tcp` for a SIPS URI; only supported transports.
pub(crate) fn srv_candidates(secure: bool, supported: &[Transport]) -> Vec<Transport> {
    let all: &[Transport] = if secure { &[Transport::Tls] } else { &[Transport::Tls, Transport::Tcp, Transport::Udp] };
    all.iter().copied().filter(|t| supported.contains(t)).collect()
}

/// The transport of an A/AAAA fallback when a domain has neither NAPTR nor
/// SRV records (§4.2 with §4.1): TLS for SIPS, UDP for SIP (TCP, then TLS,
/// when UDP is not supported).
pub(crate) fn fallback_transport(secure: bool, supported: &[Transport]) -> Option<Transport> {
    let order: &[Transport] =
        if secure { &[Transport::Tls] } else { &[Transport::Udp, Transport::Tcp, Transport::Tls] };
    order.iter().copied().find(|t| supported.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

    fn q(host: &str) -> Query {
        Query::sip(host)
    }

    #[test]
    fn ip_literals_resolve_without_dns() {
        let lit = |p: Plan| match p {
            Plan::Literal(r) => (r.transport, r.addr.to_string()),
            other => panic!("not a literal: {other:?}"),
        };
        assert_eq!(lit(plan(&q("192.0.2.1"), &ALL).unwrap()), (Transport::Udp, "192.0.2.1:5060".into()));
        assert_eq!(lit(plan(&Query::sips("192.0.2.1"), &ALL).unwrap()), (Transport::Tls, "192.0.2.1:5061".into()));
        assert_eq!(
            lit(plan(&q("[2001:db8::1]").with_port(5070), &ALL).unwrap()),
            (Transport::Udp, "[2001:db8::1]:5070".into())
        );
        assert_eq!(lit(plan(&q("2001:db8::1"), &ALL).unwrap()), (Transport::Udp, "[2001:db8::1]:5060".into()));
        assert_eq!(
            lit(plan(&q("192.0.2.1").with_transport(Transport::Tcp), &ALL).unwrap()),
            (Transport::Tcp, "192.0.2.1:5060".into())
        );
        assert_eq!(
            lit(plan(&Query::sips("192.0.2.1").with_transport(Transport::Tcp), &ALL).unwrap()),
            (Transport::Tls, "192.0.2.1:5061".into())
        );
        assert_eq!(
            lit(plan(&q("192.0.2.1").with_transport(Transport::Tls), &ALL).unwrap()),
            (Transport::Tls, "192.0.2.1:5061".into())
        );
    }

    #[test]
    fn names_choose_the_lookups() {
        assert_eq!(plan(&q("Example.ORG."), &ALL).unwrap(), Plan::Naptr { host: "example.org".into() });
        assert_eq!(
            plan(&q("example.org").with_port(5080), &ALL).unwrap(),
            Plan::Address { host: "example.org".into(), transport: Transport::Udp, port: 5080 }
        );
        assert_eq!(
            plan(&Query::sips("example.org").with_port(5081), &ALL).unwrap(),
            Plan::Address { host: "example.org".into(), transport: Transport::Tls, port: 5081 }
        );
        assert_eq!(
            plan(&q("example.org").with_transport(Transport::Tcp), &ALL).unwrap(),
            Plan::Srv { host: "example.org".into(), transport: Transport::Tcp }
        );
        assert_eq!(
            plan(&Query::sips("example.org").with_transport(Transport::Tcp), &ALL).unwrap(),
            Plan::Srv { host: "example.org".into(), transport: Transport::Tls }
        );
        assert_eq!(
            plan(&q("example.org").with_transport(Transport::Udp).with_port(5090), &ALL).unwrap(),
            Plan::Address { host: "example.org".into(), transport: Transport::Udp, port: 5090 }
        );
    }

    #[test]
    fn invalid_queries() {
        let invalid = |r: Result<Plan, DnsError>| matches!(r, Err(DnsError::Invalid(_)));
        assert!(invalid(plan(&Query::sips("example.org").with_transport(Transport::Udp), &ALL)));
        assert!(invalid(plan(&Query::sips("192.0.2.1").with_transport(Transport::Udp), &ALL)));
        assert!(invalid(plan(&q("example.org").with_transport(Transport::Ws), &ALL)));
        assert!(invalid(plan(&q("example.org").with_transport(Transport::Tls), &[Transport::Udp])));
        assert!(invalid(plan(&Query::sips("example.org"), &[Transport::Udp, Transport::Tcp])));
        assert!(invalid(plan(&q("example.org"), &[Transport::Ws])));
        assert!(invalid(plan(&q("exa mple.org"), &ALL)));
        assert!(invalid(plan(&q("a..b"), &ALL)));
        assert!(invalid(plan(&q(""), &ALL)));
        assert!(invalid(plan(&q("[example.org]"), &ALL)));
        assert!(invalid(plan(&q(&"a".repeat(64)), &ALL)));
        assert!(invalid(plan(&q("192.0.2.1").with_port(5060), &[Transport::Tcp])));
    }

    #[test]
    fn srv_candidates_and_fallback() {
        use Transport::*;
        assert_eq!(srv_candidates(false, &ALL), vec![Tls, Tcp, Udp]);
        assert_eq!(srv_candidates(true, &ALL), vec![Tls]);
        assert_eq!(srv_candidates(false, &[Udp, Tcp]), vec![Tcp, Udp]);
        assert!(srv_candidates(true, &[Udp, Tcp]).is_empty());
        assert_eq!(fallback_transport(false, &ALL), Some(Udp));
        assert_eq!(fallback_transport(true, &ALL), Some(Tls));
        assert_eq!(fallback_transport(false, &[Tcp, Tls]), Some(Tcp));
        assert_eq!(fallback_transport(true, &[Udp]), None);
    }
}
