//! RFC 3263 resolution against a real DNS server (dnsmasq): NAPTR → SRV →
//! A, SRV only, A only, explicit port and transport, IPv6, SRV priorities
//! and weights, SRV target ".".

mod common;

use common::{ALL, Dnsmasq, resolver, show};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sip_dns::{DnsError, Query, Resolver, ResolverConfig};
use sip_msg::Transport;

#[tokio::test]
async fn naptr_srv_a_in_order_with_transport_choice() {
    let d = Dnsmasq::start();
    let r = resolver(&d, &ALL).resolve(&Query::sip("example.test")).await.unwrap();
    // SCTP and WebSocket (order 5) are skipped; TLS (10/10), TCP (10/20), UDP (20/10).
    assert_eq!(show(&r), ["tls:127.0.0.11:5061", "tcp:127.0.0.12:5060", "udp:127.0.0.13:5060"]);
    assert_eq!(d.queries_for("NAPTR", "example.test"), 1);
    assert_eq!(d.queries_for("SRV", "_sip._sctp.example.test"), 0, "SCTP is never looked up");

    // A SIPS URI keeps only SIPS+D2T.
    let r = resolver(&d, &ALL).resolve(&Query::sips("example.test")).await.unwrap();
    assert_eq!(show(&r), ["tls:127.0.0.11:5061"]);

    // Unsupported transports are skipped.
    let r = resolver(&d, &[Transport::Udp, Transport::Tcp]).resolve(&Query::sip("example.test")).await.unwrap();
    assert_eq!(show(&r), ["tcp:127.0.0.12:5060", "udp:127.0.0.13:5060"]);
    let r = resolver(&d, &[Transport::Udp, Transport::Ws, Transport::Wss])
        .resolve(&Query::sip("example.test"))
        .await
        .unwrap();
    assert_eq!(show(&r), ["udp:127.0.0.13:5060"]);
    let e = resolver(&d, &[Transport::Udp, Transport::Tcp]).resolve(&Query::sips("example.test")).await.unwrap_err();
    assert!(matches!(e, DnsError::Invalid(_)), "{e:?}");
}

#[tokio::test]
async fn naptr_without_srv_falls_back_to_a_over_its_transport() {
    let d = Dnsmasq::start();
    let r = resolver(&d, &ALL).resolve(&Query::sip("naptronly.test")).await.unwrap();
    assert_eq!(show(&r), ["tcp:127.0.0.35:5060"]);
    assert_eq!(d.queries_for("SRV", "_sip._tcp.naptronly.test"), 1);
    assert_eq!(d.queries_for("SRV", "_sip._udp.naptronly.test"), 0, "NAPTR decided the transport");
}

#[tokio::test]
async fn explicit_transport_skips_naptr() {
    let d = Dnsmasq::start();
    let res = resolver(&d, &ALL);
    let r = res.resolve(&Query::sip("example.test").with_transport(Transport::Tcp)).await.unwrap();
    assert_eq!(show(&r), ["tcp:127.0.0.12:5060"]);
    // sips + transport=tcp is TLS, looked up as _sips._tcp.
    let r = res.resolve(&Query::sips("example.test").with_transport(Transport::Tcp)).await.unwrap();
    assert_eq!(show(&r), ["tls:127.0.0.11:5061"]);
    assert_eq!(d.queries_for("NAPTR", "example.test"), 0);
    let e = res.resolve(&Query::sips("example.test").with_transport(Transport::Udp)).await.unwrap_err();
    assert!(matches!(e, DnsError::Invalid(_)), "{e:?}");
    // An explicit transport with no SRV record falls back to A at its default port.
    let r = res.resolve(&Query::sip("a.test").with_transport(Transport::Tls)).await.unwrap();
    assert_eq!(show(&r), ["tls:127.0.0.30:5061"]);
}

#[tokio::test]
async fn srv_only_then_a_only() {
    let d = Dnsmasq::start();
    let res = resolver(&d, &ALL);
    // No NAPTR: _sips._tcp (absent), _sip._tcp, _sip._udp.
    let r = res.resolve(&Query::sip("srv.test")).await.unwrap();
    assert_eq!(show(&r), ["tcp:127.0.0.21:5070", "udp:127.0.0.22:5080"]);
    assert_eq!(d.queries_for("SRV", "_sips._tcp.srv.test"), 1);
    assert_eq!(d.queries_for("A", "tcp.srv.test"), 0, "the SRV additional section gave the address");
    // SIPS: only _sips._tcp, which is absent → A at 5061 over TLS.
    let r = res.resolve(&Query::sips("srv.test")).await.unwrap();
    assert_eq!(show(&r), ["tls:127.0.0.20:5061"]);
    // No NAPTR, no SRV: A with the default port, UDP for SIP.
    let r = res.resolve(&Query::sip("a.test")).await.unwrap();
    assert_eq!(show(&r), ["udp:127.0.0.30:5060"]);
    let r = res.resolve(&Query::sips("a.test")).await.unwrap();
    assert_eq!(show(&r), ["tls:127.0.0.30:5061"]);
    // UDP unsupported: TCP is the fallback of a SIP URI.
    let r = resolver(&d, &[Transport::Tcp, Transport::Tls]).resolve(&Query::sip("a.test")).await.unwrap();
    assert_eq!(show(&r), ["tcp:127.0.0.30:5060"]);
}

#[tokio::test]
async fn port_given_means_no_naptr_no_srv() {
    let d = Dnsmasq::start();
    let res = resolver(&d, &ALL);
    let r = res.resolve(&Query::sip("srv.test").with_port(5090)).await.unwrap();
    assert_eq!(show(&r), ["udp:127.0.0.20:5090"]);
    let r = res.resolve(&Query::sips("srv.test").with_port(5091)).await.unwrap();
    assert_eq!(show(&r), ["tls:127.0.0.20:5091"]);
    let r = res.resolve(&Query::sip("example.test").with_port(5092).with_transport(Transport::Tcp)).await.unwrap();
    assert_eq!(show(&r), ["tcp:127.0.0.10:5092"]);
    assert_eq!(d.queries_for("NAPTR", "srv.test") + d.queries_for("NAPTR", "example.test"), 0);
    assert_eq!(d.queries_for("SRV", "_sip._udp.srv.test") + d.queries_for("SRV", "_sip._tcp.example.test"), 0);
    assert_eq!(d.queries_for("A", "srv.test"), 2);
}

#[tokio::test]
async fn ip_literals_need_no_dns() {
    let d = Dnsmasq::start();
    let res = resolver(&d, &ALL);
    let r = res.resolve(&Query::sip("192.0.2.7")).await.unwrap();
    assert_eq!(show(&r), ["udp:192.0.2.7:5060"]);
    let r = res.resolve(&Query::sips("[2001:db8::7]").with_port(5071)).await.unwrap();
    assert_eq!(show(&r), ["tls:[2001:db8::7]:5071"]);
    assert_eq!(d.queries(), 0);
}

#[tokio::test]
async fn ipv6_aaaa_and_family_preference() {
    let d = Dnsmasq::start();
    let r = resolver(&d, &ALL).resolve(&Query::sip("v6.test")).await.unwrap();
    assert_eq!(show(&r), ["udp:127.0.0.40:5060", "udp:[fd00::40]:5060"]);
    let cfg = ResolverConfig { prefer_ipv6: true, ..d.config() };
    let r = Resolver::new(cfg, &ALL).unwrap().resolve(&Query::sip("v6.test")).await.unwrap();
    assert_eq!(show(&r), ["udp:[fd00::40]:5060", "udp:127.0.0.40:5060"]);
    let r = resolver(&d, &ALL).resolve(&Query::sips("v6only.test").with_port(5061)).await.unwrap();
    assert_eq!(show(&r), ["tls:[fd00::41]:5061"]);
    assert_eq!(d.queries_for("AAAA", "v6only.test"), 1);
    // Both families of an SRV target, IPv4 first.
    let r = resolver(&d, &ALL).resolve(&Query::sip("v6srv.test")).await.unwrap();
    assert_eq!(show(&r), ["tcp:127.0.0.40:5070", "tcp:[fd00::40]:5070"]);
}

#[tokio::test]
async fn srv_target_looked_up_through_an_alias() {
    let d = Dnsmasq::start();
    let r = resolver(&d, &ALL).resolve(&Query::sip("cn.test")).await.unwrap();
    assert_eq!(show(&r), ["udp:127.0.0.90:5060", "udp:[fd00::90]:5060"]);
    assert_eq!((d.queries_for("A", "alias.cn.test"), d.queries_for("AAAA", "alias.cn.test")), (1, 1));
    assert_eq!(r.ttl, std::time::Duration::from_secs(20), "the alias TTL counts");
}

#[tokio::test]
async fn srv_priorities_and_weights() {
    let d = Dnsmasq::start();
    let primaries = ["udp:127.0.0.50:5060", "udp:127.0.0.51:5060", "udp:127.0.0.52:5060"];
    let backups = ["udp:127.0.0.61:5060", "udp:127.0.0.62:5060"];
    let mut orders = std::collections::HashSet::new();
    let (mut heavy_first, mut zero_last) = (0, 0);
    for seed in 0..40u64 {
        let res = Resolver::with_rng(d.config(), &ALL, StdRng::seed_from_u64(seed)).unwrap();
        let got = show(&res.resolve(&Query::sip("weights.test")).await.unwrap());
        assert_eq!(got.len(), 5, "{got:?}");
        let mut head: Vec<&str> = got[..3].iter().map(String::as_str).collect();
        head.sort();
        assert_eq!(head, primaries, "primaries (priority 10) first: {got:?}");
        let mut tail: Vec<&str> = got[3..].iter().map(String::as_str).collect();
        tail.sort();
        assert_eq!(tail, backups, "backups (priority 20) after: {got:?}");
        heavy_first += usize::from(got[0] == "udp:127.0.0.51:5060");
        zero_last += usize::from(got[2] == "udp:127.0.0.50:5060");
        // The same seed gives the same order.
        let again = Resolver::with_rng(d.config(), &ALL, StdRng::seed_from_u64(seed)).unwrap();
        assert_eq!(show(&again.resolve(&Query::sip("weights.test")).await.unwrap()), got);
        orders.insert(got);
    }
    assert!(orders.len() > 1, "the weighted order must vary with the RNG");
    assert!(heavy_first >= 15, "weight 60 of 100 came first {heavy_first}/40 times");
    assert!(zero_last >= 34, "weight 0 came last among the primaries {zero_last}/40 times");
}

#[tokio::test]
async fn srv_dot_target_means_not_available() {
    let d = Dnsmasq::start();
    let e = resolver(&d, &ALL).resolve(&Query::sip("dot.test")).await.unwrap_err();
    assert!(matches!(e, DnsError::NotFound(_)), "{e:?}");
    assert_eq!(d.queries_for("A", "dot.test"), 0, "an existing SRV set (even '.') stops the A fallback");
}
