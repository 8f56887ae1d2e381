//! Where responses go, and what the server writes into a received top Via:
//! RFC 3261 §18.2.1 (`received`), RFC 3581 (`rport`), §18.2.2 (response
//! routing). Pure functions, no I/O.

use sip_msg::{HeaderName, Host, Message, Via};
use sip_msg::{Source, Target, Transport};
use std::net::{IpAddr, SocketAddr};

/// Adds `received` (sent-by differs from the source address) and fills an
/// empty `rport` with the source port, rewriting the top Via in place.
/// Returns the stamped top Via, or `None` when the message has no parsable Via.
pub fn stamp_top_via(msg: &mut Message, src: &Source) -> Option<Via> {
    let idx = msg.headers.0.iter().position(|h| h.name == HeaderName::Via)?;
    let mut via = Via::parse(&msg.headers.0[idx].value).ok()?;
    let src_ip = src.remote.ip();
    let same_ip = via.host.ip().is_some_and(|ip| canonical(ip) == canonical(src_ip));
    let wants_rport = matches!(via.rport(), Some(None));
    if !same_ip || wants_rport {
        via.params.set("received", Some(ip_param(src_ip).into()));
    }
    if wants_rport {
        via.params.set("rport", Some(src.remote.port().to_string().into()));
    }
    if !same_ip || wants_rport {
        msg.headers.0[idx].value = via.to_bytes();
    }
    Some(via)
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// `received` carries a bare IPv6 address (RFC 3261 grammar; RFC 5118 §4.5).
fn ip_param(ip: IpAddr) -> String {
    sip_msg::chars::ip_string(ip)
}

/// Parses a `received`/`maddr` value, with or without IPv6 brackets.
fn parse_ip(v: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(v).ok()?;
    let s = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(s);
    s.parse().ok()
}

/// RFC 3261 §18.2.2 with RFC 3581, for a response to a request that came
/// from `src` with (stamped) top Via `via`.
pub fn response_target(via: Option<&Via>, src: &Source) -> Target {
    let Some(via) = via else {
        // No usable Via: answer the source (only used for stateless 400s).
        return Target::from(src);
    };
    let transport = if src.transport.is_reliable() { src.transport } else { Transport::Udp };
    let default_port = 5060;
    let sent_by_port = via.port.unwrap_or(default_port);
    let port = match via.rport() {
        Some(Some(p)) => p,
        _ => sent_by_port,
    };
    if src.transport.is_reliable() {
        // Over the connection the request came on; if it is gone, to the source IP.
        return Target { transport, remote: SocketAddr::new(src.remote.ip(), port), conn: src.conn };
    }
    if let Some(maddr) = via.maddr().and_then(|m| parse_ip(m)) {
        return Target { transport, remote: SocketAddr::new(maddr, sent_by_port), conn: None };
    }
    if let Some(ip) = via.received().and_then(|r| parse_ip(r)) {
        return Target { transport, remote: SocketAddr::new(ip, port), conn: None };
    }
    match via.host {
        Host::V4(a) => Target { transport, remote: SocketAddr::new(a.into(), port), conn: None },
        Host::V6(a) => Target { transport, remote: SocketAddr::new(a.into(), port), conn: None },
        // A name without `received` cannot happen after stamping; use the source.
        Host::Name(_) => Target { transport, remote: SocketAddr::new(src.remote.ip(), port), conn: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sip_msg::{Limits, parse_datagram};

    fn msg(via: &str) -> Message {
        let s = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: {via}\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        parse_datagram(Bytes::from(s), &Limits::default()).unwrap()
    }
    fn udp(remote: &str) -> Source {
        Source {
            transport: Transport::Udp,
            local: "127.0.0.1:5060".parse().unwrap(),
            remote: remote.parse().unwrap(),
            conn: None,
        }
    }

    #[test]
    fn stamps_received_and_rport() {
        let mut m = msg("SIP/2.0/UDP phone.example.com:5062;branch=z9hG4bK1;rport");
        let src = udp("192.0.2.7:40000");
        let v = stamp_top_via(&mut m, &src).unwrap();
        assert_eq!(v.received().unwrap(), "192.0.2.7");
        assert_eq!(v.rport(), Some(Some(40000)));
        assert_eq!(m.top_via().unwrap(), v);
        let t = response_target(Some(&v), &src);
        assert_eq!(t.remote, "192.0.2.7:40000".parse().unwrap());
    }

    #[test]
    fn no_stamp_when_same_ip() {
        let mut m = msg("SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bK1");
        let before = m.clone();
        let src = udp("192.0.2.7:5062");
        let v = stamp_top_via(&mut m, &src).unwrap();
        assert_eq!(m, before);
        assert_eq!(response_target(Some(&v), &src).remote, "192.0.2.7:5062".parse().unwrap());
    }

    #[test]
    fn received_without_rport_uses_sent_by_port() {
        let mut m = msg("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1");
        let src = udp("192.0.2.7:40000");
        let v = stamp_top_via(&mut m, &src).unwrap();
        assert_eq!(response_target(Some(&v), &src).remote, "192.0.2.7:5060".parse().unwrap());
    }

    #[test]
    fn ipv6_received() {
        let mut m = msg("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;rport");
        let src = udp("[::1]:41000");
        let v = stamp_top_via(&mut m, &src).unwrap();
        assert_eq!(v.received().unwrap(), "::1");
        assert_eq!(response_target(Some(&v), &src).remote, "[::1]:41000".parse().unwrap());
    }

    #[test]
    fn tcp_uses_connection() {
        let mut m = msg("SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bK1");
        let src = Source {
            transport: Transport::Tcp,
            local: "127.0.0.1:5060".parse().unwrap(),
            remote: "192.0.2.7:50000".parse().unwrap(),
            conn: Some(9),
        };
        let v = stamp_top_via(&mut m, &src).unwrap();
        let t = response_target(Some(&v), &src);
        assert_eq!(t.conn, Some(9));
        assert_eq!(t.transport, Transport::Tcp);
    }
}
