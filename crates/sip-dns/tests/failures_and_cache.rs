//! Negative answers, failures and the cache against a real DNS server
//! (dnsmasq): NXDOMAIN is `NotFound` and negatively cached, a silent or
//! refusing server is `Failed` within timeout × attempts and never cached,
//! the TTL is the minimum of the records used, and a cached answer comes
//! back without a query.

mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use common::{ALL, Dnsmasq, free_port, resolver, show};
use sip_dns::{DnsError, Query, Resolver, ResolverConfig};

#[tokio::test]
async fn nxdomain_is_not_found_and_negatively_cached() {
    let d = Dnsmasq::start();
    let cfg = ResolverConfig { negative_ttl: Duration::from_secs(1), ..d.config() };
    let res = Resolver::new(cfg, &ALL).unwrap();
    let e = res.resolve(&Query::sip("nope.test")).await.unwrap_err();
    assert!(matches!(e, DnsError::NotFound(_)), "{e:?}");
    let asked = d.queries();
    // NAPTR, three SRV, A and AAAA.
    assert_eq!(asked, 6, "queries for nope.test");
    let again = res.resolve(&Query::sip("nope.test")).await.unwrap_err();
    assert_eq!(again, e);
    assert_eq!(d.queries(), asked, "the negative answer came from the cache");
    // Other forms of the same name share the entry.
    assert!(res.resolve(&Query::sip("NOPE.test.")).await.is_err());
    assert_eq!(d.queries(), asked);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(res.resolve(&Query::sip("nope.test")).await, Err(DnsError::NotFound(_))));
    assert_eq!(d.queries(), asked * 2, "after negative_ttl the name is asked again");
    // A name with a port: only A/AAAA.
    let e = res.resolve(&Query::sip("nope.test").with_port(5060)).await.unwrap_err();
    assert!(matches!(e, DnsError::NotFound(_)), "{e:?}");
}

#[tokio::test]
async fn silent_server_fails_within_timeout_times_attempts() {
    // A UDP socket and a TCP listener that never answer.
    let (udp, _tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
            break (udp, tcp);
        }
    };
    let cfg = ResolverConfig {
        servers: vec![udp.local_addr().unwrap()],
        timeout: Duration::from_millis(300),
        attempts: 2,
        ..ResolverConfig::default()
    };
    let res = Resolver::new(cfg, &ALL).unwrap();
    let t0 = Instant::now();
    let e = res.resolve(&Query::sip("example.test")).await.unwrap_err();
    let took = t0.elapsed();
    assert!(matches!(e, DnsError::Failed(_)), "{e:?}");
    assert!(took >= Duration::from_millis(300), "gave up after {took:?}, before one timeout");
    assert!(took <= Duration::from_millis(600 + 250), "took {took:?}, more than timeout × attempts");
    assert_eq!(res.cached_entries(), 0, "a failure is not cached");
    // The request reached the silent server.
    let mut buf = [0u8; 512];
    udp.set_nonblocking(true).unwrap();
    assert!(udp.recv_from(&mut buf).is_ok(), "no query reached the server");
}

#[tokio::test]
async fn nobody_listening_fails_fast() {
    let port = free_port();
    let cfg = ResolverConfig {
        servers: vec![SocketAddr::from(([127, 0, 0, 1], port))],
        timeout: Duration::from_millis(300),
        attempts: 2,
        ..ResolverConfig::default()
    };
    let t0 = Instant::now();
    let e = Resolver::new(cfg, &ALL).unwrap().resolve(&Query::sip("a.test").with_port(5060)).await.unwrap_err();
    assert!(matches!(e, DnsError::Failed(_)), "{e:?}");
    assert!(t0.elapsed() <= Duration::from_millis(850), "took {:?}", t0.elapsed());
}

#[tokio::test]
async fn refused_is_failed_and_a_failure_is_not_cached() {
    let mut d = Dnsmasq::start();
    let res = resolver(&d, &ALL);
    // Outside the local zone, with no upstream, dnsmasq refuses.
    let e = res.resolve(&Query::sip("example.org")).await.unwrap_err();
    assert!(matches!(e, DnsError::Failed(_)), "{e:?}");
    // Server down: a.test fails; back up: the same query now resolves.
    d.stop();
    let e = res.resolve(&Query::sip("a.test")).await.unwrap_err();
    assert!(matches!(e, DnsError::Failed(_)), "{e:?}");
    d.restart();
    let r = res.resolve(&Query::sip("a.test")).await.unwrap();
    assert_eq!(show(&r), ["udp:127.0.0.30:5060"]);
}

#[tokio::test]
async fn ttl_is_the_minimum_and_capped() {
    let d = Dnsmasq::start();
    let res = resolver(&d, &ALL);
    // SRV at 300 s (--local-ttl), its target at 7 s.
    let r = res.resolve(&Query::sip("ttl.test")).await.unwrap();
    assert_eq!(show(&r), ["udp:127.0.0.80:5060"]);
    assert_eq!(r.ttl, Duration::from_secs(7));
    // NAPTR and SRV at 300 s, A at 300 s: 300.
    let r = res.resolve(&Query::sip("example.test")).await.unwrap();
    assert_eq!(r.ttl, Duration::from_secs(300));
    // 3600 s capped by max_cache_ttl.
    let cfg = ResolverConfig { max_cache_ttl: Duration::from_secs(60), ..d.config() };
    let r = Resolver::new(cfg, &ALL).unwrap().resolve(&Query::sip("long.test")).await.unwrap();
    assert_eq!(r.ttl, Duration::from_secs(60));
    let r = res.resolve(&Query::sip("long.test")).await.unwrap();
    assert_eq!(r.ttl, Duration::from_secs(300), "default max_cache_ttl is 300 s");
}

#[tokio::test]
async fn cached_answer_is_served_without_a_query() {
    let mut d = Dnsmasq::start();
    let res = resolver(&d, &ALL);
    let first = res.resolve(&Query::sip("ttl.test")).await.unwrap();
    let asked = d.queries();
    assert!(asked >= 3, "NAPTR, SRV and A/AAAA were asked: {asked}");
    let clone = res.clone();
    let second = clone.resolve(&Query::sip("ttl.test")).await.unwrap();
    assert_eq!(second.targets, first.targets);
    assert!(second.ttl <= first.ttl);
    assert_eq!(d.queries(), asked, "served from the cache shared by clones");
    // Even with the server gone.
    d.stop();
    let third = res.resolve(&Query::sip("ttl.test")).await.unwrap();
    assert_eq!(third.targets, first.targets);
    // Another query is not in the cache: it fails.
    assert!(matches!(res.resolve(&Query::sip("a.test")).await, Err(DnsError::Failed(_))));
}

#[tokio::test]
async fn cached_answer_expires_with_its_ttl() {
    let d = Dnsmasq::start();
    let res = resolver(&d, &ALL);
    let q = Query::sip("short.test").with_port(5060);
    let r = res.resolve(&q).await.unwrap();
    assert_eq!(r.ttl, Duration::from_secs(1));
    let asked = d.queries_for("A", "short.test");
    assert_eq!(asked, 1);
    res.resolve(&q).await.unwrap();
    assert_eq!(d.queries_for("A", "short.test"), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    res.resolve(&q).await.unwrap();
    assert_eq!(d.queries_for("A", "short.test"), 2, "asked again once the TTL ran out");
}
