//! Routing rules of the proxy that are pure functions of a request: which
//! URIs are ours (Route / Request-URI checks, RFC 3261 §16.4), loop
//! detection (§16.3 step 4, RFC 5393: loops vs spirals), the branch we put
//! in our Via, Request-URI clean-up, and where the next hop is (§16.6
//! steps 6–7: an address, or an RFC 3263 question for a host name, which the
//! node asks its driver to resolve; see `dns`).

use sip_msg::{HeaderName, Host, Message, NameAddr, SipUri, Uri, Via};
use sip_msg::{Target, Transport};
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};

/// Our identity: listener addresses and served domains.
#[derive(Clone, Debug)]
pub struct Me {
    /// (transport, address we advertise in Via / Record-Route).
    pub listeners: Vec<(Transport, SocketAddr)>,
    /// Served domains (lower case; IPv6 in brackets).
    pub domains: Vec<String>,
}

impl Me {
    /// Whether a URI designates this proxy: one of our listener addresses
    /// (port 5060 when absent), or a served domain without a user part.
    pub fn is_me(&self, uri: &SipUri) -> bool {
        let port = uri.port.unwrap_or(if uri.secure { 5061 } else { 5060 });
        match &uri.host {
            Host::Name(n) => {
                let n = String::from_utf8_lossy(n).to_ascii_lowercase();
                self.domains.contains(&n) && uri.port.is_none_or(|p| self.listeners.iter().any(|(_, a)| a.port() == p))
            }
            h => {
                let ip = h.ip().expect("an IP host");
                self.listeners.iter().any(|(_, a)| a.port() == port && (a.ip() == ip || a.ip().is_unspecified()))
            }
        }
    }
    /// Whether a domain is served (the registrar's domains, fixed at start-up:
    /// checked here without taking the registrar lock on every request).
    pub fn serves(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }

    /// Whether a Via was put by us (its sent-by is one of our listeners).
    pub fn is_my_via(&self, v: &Via) -> bool {
        let Some(ip) = v.host.ip() else { return false };
        let port = v.port.unwrap_or(5060);
        self.listeners.iter().any(|(_, a)| a.ip() == ip && a.port() == port)
    }
    /// The listener we send from (and advertise) for a transport and address family.
    pub fn listener(&self, transport: Transport, v6: bool) -> Option<SocketAddr> {
        self.listeners.iter().find(|(t, a)| *t == transport && a.is_ipv6() == v6).map(|(_, a)| *a)
    }
}

fn seed() -> &'static std::collections::hash_map::RandomState {
    static SEED: std::sync::OnceLock<std::collections::hash_map::RandomState> = std::sync::OnceLock::new();
    SEED.get_or_init(Default::default)
}

/// RFC 3261 §16.6 step 8 / RFC 5393: a hash of what stays the same when a
/// request comes back to us unchanged (a loop) but differs on a spiral
/// (the Request-URI was retargeted).
pub fn loop_hash(req: &Message) -> String {
    let mut h = seed().build_hasher();
    if let Some(u) = req.uri() {
        h.write(&u.to_bytes());
    }
    h.write(b"|");
    if let Ok(t) = req.to()
        && let Some(tag) = t.tag()
    {
        h.write(tag);
    }
    h.write(b"|");
    if let Ok(f) = req.from()
        && let Some(tag) = f.tag()
    {
        h.write(tag);
    }
    h.write(b"|");
    if let Some(c) = req.call_id() {
        h.write(c);
    }
    if let Ok(c) = req.cseq() {
        h.write(&c.seq.to_be_bytes());
    }
    for name in [HeaderName::ProxyRequire, HeaderName::ProxyAuthorization] {
        for v in req.headers.get_all(&name) {
            h.write(v);
        }
    }
    format!("{:016x}", h.finish())
}

/// Our branch: the magic cookie, a marker, the loop hash and a counter.
pub fn branch(hash: &str, n: u64) -> String {
    format!("z9hG4bKsw{hash}.{n:x}")
}

/// The branch of a statelessly forwarded request (ACK for 2xx): derived
/// from the incoming branch, so a retransmission gets the same one.
pub fn stateless_branch(incoming: &[u8]) -> String {
    format!("z9hG4bKswack{:016x}", seed().hash_one(incoming))
}

/// Whether the request already went through us with the same hash (a loop,
/// 482), as opposed to a spiral (through us, but retargeted).
pub fn is_loop(req: &Message, me: &Me, hash: &str) -> bool {
    let marker = format!("z9hG4bKsw{hash}.");
    req.headers
        .get_all(&HeaderName::Via)
        .filter_map(|v| Via::parse(v).ok())
        .any(|v| me.is_my_via(&v) && v.branch().is_some_and(|b| b.starts_with(marker.as_bytes())))
}

/// The Request-URI of a branch: the contact without RFC 8599 parameters
/// (`pn-*`, which never go to the device or anyone else, RFC 8599 §5.2)
/// and without URI headers (`?h=v` never appears in a Request-URI,
/// RFC 3261 §19.1.5; RFC 4475 regescrt/escruri).
pub fn strip_push_params(uri: &Uri) -> Uri {
    let mut u = uri.clone();
    if let Some(s) = u.as_sip_mut() {
        s.params.0.retain(|(n, _)| !(n.len() >= 3 && n[..3].eq_ignore_ascii_case(b"pn-")));
        s.headers = None;
    }
    u
}

/// Pops the Route values that designate us from the top (§16.4), and
/// returns the user parts of the popped URIs (flow tokens).
pub fn pop_my_routes(req: &mut Message, me: &Me) -> Vec<String> {
    let mut users = Vec::new();
    while let Some(idx) = req.headers.0.iter().position(|h| h.name == HeaderName::Route) {
        let Ok(na) = NameAddr::parse(&req.headers.0[idx].value) else { break };
        let Some(u) = na.uri.as_sip() else { break };
        if !me.is_me(u) {
            break;
        }
        if let Some(user) = &u.user {
            users.push(String::from_utf8_lossy(user).into_owned());
        }
        req.headers.0.remove(idx);
    }
    users
}

/// §16.4: a Request-URI that is one of our Record-Route URIs means the
/// previous hop was a strict router: the real Request-URI is the last Route.
/// Returns the user part of our URI (a flow token) when this happened.
pub fn undo_strict_routing(req: &mut Message, me: &Me) -> Option<String> {
    let uri = req.uri()?.as_sip()?.clone();
    let user = String::from_utf8_lossy(uri.user.as_deref()?).into_owned();
    if !me.is_me(&uri) || !user.starts_with(crate::proxy::flow_token::PREFIX) {
        return None;
    }
    let last = req.headers.0.iter().rposition(|h| h.name == HeaderName::Route)?;
    let na = NameAddr::parse(&req.headers.0[last].value).ok()?;
    req.headers.0.remove(last);
    if let sip_msg::StartLine::Request { uri, .. } = &mut req.start {
        *uri = na.uri;
    }
    Some(user)
}

/// An RFC 3263 question: the next hop is a host name, to be resolved
/// (NAPTR → SRV → A/AAAA) by the driver before the request can leave.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NameQuery {
    /// The host name, lower case.
    pub host: String,
    /// The port of the URI, when it has one (no SRV lookup then).
    pub port: Option<u16>,
    /// The `transport` parameter, when the URI has one (no NAPTR lookup then).
    pub transport: Option<Transport>,
    /// A `sips:` URI: TLS (or WSS) only, never downgraded.
    pub secure: bool,
}

/// The next hop of a request, as far as its URIs tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hop {
    /// An address (an IP literal, `localhost`, a flow).
    Addr(Target),
    /// A host name to resolve first.
    Name(NameQuery),
}

/// The transport a URI asks for: its `transport` parameter, TLS for `sips:`
/// (RFC 3261 §26.2: `sips` over TCP means TLS; over WS means WSS), or
/// `None` when it names one we cannot honour (`sips` with UDP, an unknown
/// transport): the hop then fails rather than be downgraded.
fn uri_transport(sip: &SipUri) -> Option<Option<Transport>> {
    let Some(t) = sip.params.value("transport") else {
        return Some(None);
    };
    let t = Transport::from_via(t)?;
    if !sip.secure {
        return Some(Some(t));
    }
    match t {
        Transport::Tcp | Transport::Tls => Some(Some(Transport::Tls)),
        Transport::Ws | Transport::Wss => Some(Some(Transport::Wss)),
        Transport::Udp => None,
    }
}

/// Where a request for `uri` goes (RFC 3263 §4 for IP literals; a host name
/// gives a [`NameQuery`]). `maddr`, `transport` and the port are honoured.
pub fn hop_of(sip: &SipUri) -> Option<Hop> {
    let explicit = uri_transport(sip)?;
    let transport = explicit.unwrap_or(if sip.secure { Transport::Tls } else { Transport::Udp });
    let default_port = if transport.is_secure() { 5061 } else { 5060 };
    let host: Host = match sip.params.value("maddr").and_then(|m| std::str::from_utf8(m).ok()) {
        Some(m) => match m.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => Host::V4(a),
            Ok(IpAddr::V6(a)) => Host::V6(a),
            Err(_) => Host::Name(m.as_bytes().to_vec().into()),
        },
        None => sip.host.clone(),
    };
    let ip: IpAddr = match &host {
        Host::V4(a) => (*a).into(),
        Host::V6(a) => (*a).into(),
        Host::Name(n) if n.eq_ignore_ascii_case(b"localhost") => IpAddr::from([127, 0, 0, 1]),
        Host::Name(n) => {
            return Some(Hop::Name(NameQuery {
                host: String::from_utf8_lossy(n).to_ascii_lowercase(),
                port: sip.port,
                transport: explicit,
                secure: sip.secure,
            }));
        }
    };
    let port = sip.port.unwrap_or(default_port);
    Some(Hop::Addr(Target { transport, remote: SocketAddr::new(ip, port), conn: None }))
}

/// Where a request goes: the first Route if any (§16.6 step 7), else the
/// Request-URI. `None` when neither is a SIP URI we can route.
pub fn next_hop(req: &Message) -> Option<Hop> {
    let route_uri = req.headers.get(&HeaderName::Route).and_then(|v| NameAddr::parse(v).ok()).map(|na| na.uri);
    let uri = route_uri.as_ref().or(req.uri())?;
    hop_of(uri.as_sip()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sip_msg::{Limits, parse_datagram};

    fn me() -> Me {
        Me {
            listeners: vec![
                (Transport::Udp, "127.0.0.1:5070".parse().unwrap()),
                (Transport::Tcp, "127.0.0.1:5071".parse().unwrap()),
            ],
            domains: vec!["example.com".into()],
        }
    }
    fn msg(s: &str) -> Message {
        parse_datagram(Bytes::from(s.replace('\n', "\r\n")), &Limits::default()).unwrap()
    }
    const INV: &str = "INVITE sip:bob@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\nRoute: <sip:127.0.0.1:5070;lr>\nRoute: <sip:fl-abc@127.0.0.1:5071;transport=tcp;lr>\nRoute: <sip:edge.example.net;lr>\nFrom: <sip:a@example.com>;tag=1\nTo: <sip:bob@example.com>\nCall-ID: c\nCSeq: 1 INVITE\nContent-Length: 0\n\n";

    #[test]
    fn ours() {
        let m = me();
        let u = |s: &str| Uri::parse_bytes(s.to_string()).unwrap().as_sip().unwrap().clone();
        assert!(m.is_me(&u("sip:127.0.0.1:5070")));
        assert!(!m.is_me(&u("sip:127.0.0.1")));
        assert!(m.is_me(&u("sip:example.com;lr")));
        assert!(!m.is_me(&u("sip:other.com")));
    }

    #[test]
    fn route_popping() {
        let mut r = msg(INV);
        let users = pop_my_routes(&mut r, &me());
        assert_eq!(users, vec!["fl-abc".to_string()]);
        assert_eq!(r.headers.count(&HeaderName::Route), 1);
        assert_eq!(r.headers.get(&HeaderName::Route).unwrap(), "<sip:edge.example.net;lr>");
    }

    #[test]
    fn loops_and_spirals() {
        let m = me();
        let r = msg(INV);
        let h = loop_hash(&r);
        assert!(!is_loop(&r, &m, &h));
        let looped =
            INV.replacen("Via: ", &format!("Via: SIP/2.0/UDP 127.0.0.1:5070;branch={}\nVia: ", branch(&h, 1)), 1);
        assert!(is_loop(&msg(&looped), &m, &h));
        // Retargeted: a different Request-URI gives a different hash (a spiral).
        let spiral = looped.replacen("INVITE sip:bob@example.com", "INVITE sip:bob@192.0.2.9", 1);
        let s = msg(&spiral);
        assert!(!is_loop(&s, &m, &loop_hash(&s)));
    }

    #[test]
    fn push_params_stripped() {
        let u = Uri::parse_bytes("sip:bob@192.0.2.1;transport=tcp;pn-provider=apns;pn-prid=x;PN-param=y").unwrap();
        assert_eq!(strip_push_params(&u).to_string(), "sip:bob@192.0.2.1;transport=tcp");
        let u = Uri::parse_bytes("sip:user@example.com?Route=%3Csip:sip.example.com%3E").unwrap();
        assert_eq!(strip_push_params(&u).to_string(), "sip:user@example.com");
    }

    #[test]
    fn next_hops() {
        let r = msg(
            "OPTIONS sip:bob@192.0.2.7:5062;transport=tcp SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:b@c>\nCall-ID: c\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n",
        );
        let Hop::Addr(t) = next_hop(&r).unwrap() else { panic!() };
        assert_eq!((t.transport, t.remote), (Transport::Tcp, "192.0.2.7:5062".parse().unwrap()));
        let r = msg(
            "OPTIONS sip:bob@[2001:db8::1] SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nRoute: <sip:192.0.2.8:5080;lr>\nFrom: <sip:a@b>;tag=1\nTo: <sip:b@c>\nCall-ID: c\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n",
        );
        let Hop::Addr(t) = next_hop(&r).unwrap() else { panic!() };
        assert_eq!(t.remote, "192.0.2.8:5080".parse().unwrap());
    }

    fn hop(uri: &str) -> Option<Hop> {
        let u = Uri::parse_bytes(uri.to_string()).unwrap();
        hop_of(u.as_sip().unwrap())
    }
    fn addr_hop(uri: &str) -> (Transport, SocketAddr) {
        match hop(uri) {
            Some(Hop::Addr(t)) => (t.transport, t.remote),
            h => panic!("{uri}: {h:?}"),
        }
    }

    #[test]
    fn secure_and_stream_transports_are_honoured() {
        // sips: TLS on 5061, never plain TCP (RFC 3261 §26.2).
        assert_eq!(addr_hop("sips:bob@192.0.2.7"), (Transport::Tls, "192.0.2.7:5061".parse().unwrap()));
        assert_eq!(addr_hop("sips:bob@192.0.2.7:5071;transport=tcp").0, Transport::Tls);
        assert_eq!(addr_hop("sip:bob@192.0.2.7;transport=tls"), (Transport::Tls, "192.0.2.7:5061".parse().unwrap()));
        assert_eq!(addr_hop("sip:bob@192.0.2.7:8443;transport=wss").0, Transport::Wss);
        assert_eq!(addr_hop("sips:bob@192.0.2.7:8443;transport=ws").0, Transport::Wss);
        assert_eq!(addr_hop("sip:bob@192.0.2.7:8080;transport=WS").0, Transport::Ws);
        // sips over UDP cannot be honoured; an unknown transport neither.
        assert_eq!(hop("sips:bob@192.0.2.7;transport=udp"), None);
        assert_eq!(hop("sip:bob@192.0.2.7;transport=sctp"), None);
    }

    #[test]
    fn host_names_become_questions() {
        let q = |uri: &str| match hop(uri) {
            Some(Hop::Name(q)) => q,
            h => panic!("{uri}: {h:?}"),
        };
        let n = q("sip:bob@Gw.Example.TEST");
        assert_eq!((n.host.as_str(), n.port, n.transport, n.secure), ("gw.example.test", None, None, false));
        let n = q("sips:bob@example.test:5081");
        assert_eq!((n.port, n.transport, n.secure), (Some(5081), None, true));
        let n = q("sip:bob@example.test;transport=tcp");
        assert_eq!(n.transport, Some(Transport::Tcp));
        // maddr overrides the host, name or IP.
        assert_eq!(q("sip:bob@192.0.2.1;maddr=edge.example.test").host, "edge.example.test");
        assert_eq!(addr_hop("sip:bob@example.test;maddr=192.0.2.9").1, "192.0.2.9:5060".parse().unwrap());
        assert_eq!(addr_hop("sip:bob@localhost:5070").1, "127.0.0.1:5070".parse().unwrap());
    }
}
