//! Message building of the mid-registrar, pure functions: the REGISTER a
//! device's REGISTER becomes upstream (Contacts rewritten to point at us
//! with a `ctid`, expiries per throttling mode, Path removed, our
//! `+sip.pns` indicators topmost, R19/F2), the expiries the upstream
//! granted, the device's 2xx built from the upstream's, and the REGISTER
//! and OPTIONS sipwake sends on its own.
//!
//! No state, no I/O: the caller decides what to send and records it.

use crate::mid::{Throttle, transport_param};
use bytes::Bytes;
use sip_msg::{Contact, HeaderName, Message, Transport};
use std::collections::HashMap;
use std::net::SocketAddr;

/// How one device REGISTER goes upstream.
pub struct Forwarding<'a> {
    pub throttle: Throttle,
    /// Our address toward the upstream, and its transport.
    pub local: SocketAddr,
    pub transport: Transport,
    /// The AoR's user part as in the To URI (still escaped).
    pub aor_user: &'a [u8],
    /// By Contact index: the upstream key (`None`: the Contact removes
    /// nothing we know; it is left out).
    pub keys: &'a [Option<String>],
    /// By Contact index: the device's requested expiry.
    pub requested: &'a [u32],
    pub upstream_expires: u32,
    /// `aor` mode: the expiry of the AoR's Contact (0 when its last device goes).
    pub aor_expires: u32,
    /// Feature-Caps fc-values to put topmost (RFC 8599 R19, RFC 6809 F2).
    pub indicators: &'a [String],
    /// The branch of our Via.
    pub branch: &'a str,
}

/// The Contact URI we register upstream for a key.
pub fn upstream_contact(user: &[u8], local: SocketAddr, transport: Transport, key: &str) -> String {
    let host = match local {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    let user = if user.is_empty() { String::new() } else { format!("{}@", String::from_utf8_lossy(user)) };
    match transport_param(transport) {
        Some(t) => format!("sip:{user}{host};transport={t};ctid={key}"),
        None => format!("sip:{user}{host};ctid={key}"),
    }
}

/// The REGISTER to send upstream, and what it registers there: (key,
/// Contact URI, expires) per Contact sent.
pub fn forward_register(req: &Message, f: &Forwarding<'_>) -> (Message, Vec<(String, String, u32)>) {
    let mut m = req.clone();
    let contacts = req.contacts().unwrap_or_default();
    let star = contacts.iter().any(|c| matches!(c, Contact::Star));
    let mut sent: Vec<(String, String, u32)> = Vec::new();
    if !star && !contacts.is_empty() {
        m.headers.remove_all(&HeaderName::Contact);
        m.headers.remove_all(&HeaderName::Expires);
        for (i, c) in contacts.iter().enumerate() {
            let Contact::Addr(na) = c else { continue };
            let Some(Some(key)) = f.keys.get(i) else { continue };
            let requested = f.requested.get(i).copied().unwrap_or(0);
            let (expires, user) = match f.throttle {
                Throttle::Mirror => (requested, contact_user(na, f.aor_user)),
                Throttle::Contact => {
                    (if requested == 0 { 0 } else { f.upstream_expires }, contact_user(na, f.aor_user))
                }
                Throttle::Aor => (f.aor_expires, f.aor_user.to_vec()),
            };
            if sent.iter().any(|(k, _, _)| k == key) {
                continue; // aor mode: one Contact for the AoR
            }
            let uri = upstream_contact(&user, f.local, f.transport, key);
            m.headers.push(HeaderName::Contact, format!("<{uri}>;expires={expires}"));
            sent.push((key.clone(), uri, expires));
        }
    }
    // The devices' Path stays here: the upstream reaches us by the Contact.
    m.headers.remove_all(&HeaderName::Path);
    // Ours above the device's (F2), where Feature-Caps fields are (after the Vias).
    let at = m.headers.0.iter().position(|h| h.name == HeaderName::FeatureCaps).unwrap_or(m.headers.0.len());
    for (i, fc) in f.indicators.iter().enumerate() {
        m.headers.0.insert(at + i, sip_msg::Header { name: HeaderName::FeatureCaps, value: Bytes::from(fc.clone()) });
    }
    let mf = m.max_forwards().ok().flatten().map_or(70, |n| n.saturating_sub(1));
    m.headers.set(HeaderName::MaxForwards, mf.to_string());
    let via = format!("SIP/2.0/{} {};branch={};rport", f.transport.as_via(), via_host(f.local), f.branch);
    m.headers.push_front(HeaderName::Via, via);
    (m, sent)
}

fn contact_user(na: &sip_msg::NameAddr, aor_user: &[u8]) -> Vec<u8> {
    na.uri.as_sip().and_then(|u| u.user.as_ref()).map_or_else(|| aor_user.to_vec(), |u| u.to_vec())
}

fn via_host(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

/// The expiry the upstream granted to each of our Contacts in its 2xx, by
/// key (`ctid`): the Contact's `expires`, else the response's Expires.
pub fn grants(resp: &Message) -> HashMap<String, u32> {
    let header = resp.expires();
    let mut out = HashMap::new();
    for c in resp.contacts().unwrap_or_default() {
        let Contact::Addr(na) = c else { continue };
        let Some(key) = na.uri.as_sip().and_then(|u| u.params.value("ctid")) else { continue };
        let expires = na.params.value("expires").and_then(|v| sip_msg::chars::parse_u32(v)).or(header);
        if let Some(e) = expires {
            out.insert(String::from_utf8_lossy(key).into_owned(), e);
        }
    }
    out
}

/// Headers of the upstream's 2xx that describe the upstream's own view of
/// the registration (its Contacts, expiries, extensions): replaced by ours.
const REPLACED: &[HeaderName] = &[
    HeaderName::Contact,
    HeaderName::Expires,
    HeaderName::Path,
    HeaderName::Require,
    HeaderName::Supported,
    HeaderName::Date,
    HeaderName::Server,
    HeaderName::FeatureCaps,
    HeaderName::MinExpires,
];

/// The device's 2xx: the upstream's (its To tag, Service-Route, P-Associated-URI,
/// Authentication-Info, ... kept), with the local registrar's Contacts and
/// headers and our Feature-Caps in place of the upstream's view.
pub fn device_response(mut upstream: Message, local: &[(HeaderName, String)], server: &Bytes) -> Message {
    for h in REPLACED {
        upstream.headers.remove_all(h);
    }
    for (n, v) in local {
        upstream.headers.push(n.clone(), v.clone());
    }
    upstream.headers.push(HeaderName::Server, server.clone());
    upstream
}

/// A REGISTER sipwake sends itself for one upstream registration.
pub struct OwnRegister<'a> {
    pub aor: &'a str,
    pub contact: &'a str,
    pub expires: u32,
    pub call_id: &'a str,
    pub cseq: u32,
    pub local: SocketAddr,
    pub transport: Transport,
    pub branch: &'a str,
    pub indicators: &'a [String],
    pub user_agent: &'a [u8],
}

/// Builds a REGISTER of sipwake's own (re-send, de-register).
pub fn own_register(r: &OwnRegister<'_>) -> Option<Message> {
    let domain = r.aor.rsplit_once('@').map_or(r.aor, |(_, d)| d);
    let tag = &r.call_id[..r.call_id.len().min(16)];
    let mut s = format!(
        "REGISTER sip:{domain} SIP/2.0\r\nVia: SIP/2.0/{} {};branch={};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:{aor}>;tag={tag}\r\nTo: <sip:{aor}>\r\nCall-ID: {}\r\nCSeq: {} REGISTER\r\n\
         Contact: <{}>;expires={}\r\n",
        r.transport.as_via(),
        via_host(r.local),
        r.branch,
        r.call_id,
        r.cseq,
        r.contact,
        r.expires,
        aor = r.aor,
    );
    for fc in r.indicators {
        s.push_str(&format!("Feature-Caps: {fc}\r\n"));
    }
    s.push_str(&format!("User-Agent: {}\r\nContent-Length: 0\r\n\r\n", String::from_utf8_lossy(r.user_agent)));
    sip_msg::parse_datagram(Bytes::from(s), &sip_msg::Limits::default()).ok()
}

/// The keep-alive OPTIONS to the upstream.
pub fn keepalive(
    upstream: SocketAddr,
    local: SocketAddr,
    transport: Transport,
    branch: &str,
    seq: u64,
) -> Option<Message> {
    let host = via_host(upstream);
    let me = via_host(local);
    let t = transport_param(transport).map(|t| format!(";transport={t}")).unwrap_or_default();
    let s = format!(
        "OPTIONS sip:{host}{t} SIP/2.0\r\nVia: SIP/2.0/{} {me};branch={branch};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:keepalive@{me}>;tag=ka{seq:x}\r\nTo: <sip:{host}>\r\nCall-ID: ka{seq:x}.{branch}\r\n\
         CSeq: {seq} OPTIONS\r\nContent-Length: 0\r\n\r\n",
        transport.as_via(),
    );
    sip_msg::parse_datagram(Bytes::from(s), &sip_msg::Limits::default()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_msg::{Limits, parse_datagram};

    fn parse(s: &str) -> Message {
        parse_datagram(Bytes::from(s.replace('\n', "\r\n")), &Limits::default()).unwrap()
    }

    fn register() -> Message {
        parse(
            "REGISTER sip:example.com SIP/2.0\n\
             Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKdev;received=192.0.2.10;rport=5060\n\
             Max-Forwards: 70\n\
             From: <sip:alice@example.com>;tag=1\n\
             To: <sip:alice@example.com>\n\
             Call-ID: c1\n\
             CSeq: 2 REGISTER\n\
             Path: <sip:edge.example.com;lr>\n\
             Feature-Caps: *;+sip.foo\n\
             Contact: <sip:alice@192.0.2.10:5060;pn-provider=fcm;pn-prid=T;pn-param=p>;+sip.instance=\"<urn:uuid:1>\"\n\
             Contact: <sip:alice@192.0.2.10:5062>;expires=0\n\
             Expires: 600\n\
             Authorization: Digest username=\"alice\"\n\
             Content-Length: 0\n\n",
        )
    }

    #[test]
    fn contact_mode_rewrites_contacts_and_expiry() {
        let req = register();
        let keys = [Some("b1".to_string()), Some("b2".to_string())];
        let ind = ["*;+sip.pns=\"fcm\"".to_string()];
        let f = Forwarding {
            throttle: Throttle::Contact,
            local: "198.51.100.1:5060".parse().unwrap(),
            transport: Transport::Udp,
            aor_user: b"alice",
            keys: &keys,
            requested: &[600, 0],
            upstream_expires: 3600,
            aor_expires: 3600,
            indicators: &ind,
            branch: "z9hG4bKmid",
        };
        let (m, sent) = forward_register(&req, &f);
        let s = String::from_utf8(m.to_bytes().to_vec()).unwrap();
        assert!(
            s.starts_with(
                "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKmid;rport\r\n"
            ),
            "{s}"
        );
        let contacts: Vec<_> = m.headers.get_all(&HeaderName::Contact).collect();
        assert_eq!(
            contacts,
            vec![
                &Bytes::from_static(b"<sip:alice@198.51.100.1:5060;ctid=b1>;expires=3600"),
                &Bytes::from_static(b"<sip:alice@198.51.100.1:5060;ctid=b2>;expires=0"),
            ]
        );
        assert!(!s.contains("pn-"), "{s}");
        assert!(!s.contains("Path:"));
        assert!(!s.contains("Expires: 600"));
        assert!(s.contains("Authorization: Digest"));
        let fcs: Vec<_> = m.headers.get_all(&HeaderName::FeatureCaps).collect();
        assert_eq!(fcs[0], &Bytes::from_static(b"*;+sip.pns=\"fcm\""), "ours topmost (F2)");
        let names: Vec<&HeaderName> = m.headers.iter().map(|h| &h.name).collect();
        let last_via = names.iter().rposition(|n| **n == HeaderName::Via).unwrap();
        let first_fc = names.iter().position(|n| **n == HeaderName::FeatureCaps).unwrap();
        assert!(first_fc > last_via, "Feature-Caps among the Vias:\n{s}");
        assert_eq!(m.max_forwards().unwrap(), Some(69));
        assert_eq!(sent.len(), 2);
    }

    #[test]
    fn aor_mode_collapses_contacts() {
        let req = register();
        let keys = [Some("akey".to_string()), Some("akey".to_string())];
        let f = Forwarding {
            throttle: Throttle::Aor,
            local: "198.51.100.1:5070".parse().unwrap(),
            transport: Transport::Tcp,
            aor_user: b"alice",
            keys: &keys,
            requested: &[600, 0],
            upstream_expires: 3600,
            aor_expires: 3600,
            indicators: &[],
            branch: "z9hG4bKmid",
        };
        let (m, sent) = forward_register(&req, &f);
        let contacts: Vec<_> = m.headers.get_all(&HeaderName::Contact).collect();
        assert_eq!(
            contacts,
            vec![&Bytes::from_static(b"<sip:alice@198.51.100.1:5070;transport=tcp;ctid=akey>;expires=3600")]
        );
        assert_eq!(sent, vec![("akey".into(), "sip:alice@198.51.100.1:5070;transport=tcp;ctid=akey".into(), 3600)]);
    }

    #[test]
    fn grants_and_device_response() {
        let resp = parse(
            "SIP/2.0 200 OK\n\
             Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKdev\n\
             From: <sip:alice@example.com>;tag=1\n\
             To: <sip:alice@example.com>;tag=up\n\
             Call-ID: c1\n\
             CSeq: 2 REGISTER\n\
             Contact: <sip:alice@198.51.100.1:5060;ctid=b1>;expires=1800, <sip:other@203.0.113.9>;expires=60\n\
             Contact: <sip:alice@198.51.100.1:5060;ctid=b3>\n\
             Expires: 900\n\
             Service-Route: <sip:orig@scscf.example.com;lr>\n\
             Content-Length: 0\n\n",
        );
        let g = grants(&resp);
        assert_eq!(g.get("b1"), Some(&1800));
        assert_eq!(g.get("b3"), Some(&900));
        assert_eq!(g.len(), 2);
        let local = [(HeaderName::Contact, "<sip:alice@192.0.2.10:5060>;expires=600".to_string())];
        let out = device_response(resp, &local, &Bytes::from_static(b"sipwake"));
        let s = String::from_utf8(out.to_bytes().to_vec()).unwrap();
        assert!(s.contains("Service-Route: <sip:orig@scscf.example.com;lr>"));
        assert!(s.contains("To: <sip:alice@example.com>;tag=up"));
        assert!(!s.contains("ctid"), "{s}");
        assert!(!s.contains("Expires: 900"));
        assert!(s.contains("Contact: <sip:alice@192.0.2.10:5060>;expires=600"));
    }

    #[test]
    fn own_messages_parse() {
        let r = own_register(&OwnRegister {
            aor: "alice@example.com",
            contact: "sip:alice@198.51.100.1:5060;ctid=b1",
            expires: 0,
            call_id: "0123456789abcdef0123@sipwake",
            cseq: 7,
            local: "198.51.100.1:5060".parse().unwrap(),
            transport: Transport::Udp,
            branch: "z9hG4bKown",
            indicators: &["*;+sip.pns=\"apns\"".to_string()],
            user_agent: b"sipwake",
        })
        .unwrap();
        assert_eq!(r.cseq().unwrap().seq, 7);
        assert_eq!(r.uri().unwrap().to_string(), "sip:example.com");
        assert!(r.validate().is_ok());
        let o = keepalive(
            "127.0.0.1:5070".parse().unwrap(),
            "127.0.0.1:5060".parse().unwrap(),
            Transport::Udp,
            "z9hG4bKka",
            3,
        )
        .unwrap();
        assert!(o.validate().is_ok());
        assert_eq!(o.uri().unwrap().to_string(), "sip:127.0.0.1:5070");
    }
}
