//! Next hops by name, in virtual time: the node asks its driver to resolve
//! a host name (RFC 3263), holds the branch meanwhile, tries the addresses
//! in order and fails over on 503 and on timeout, reuses answers until their
//! TTL, and sends requests to other domains through an outbound proxy. And
//! RFC 8599 §13 (R64): push coordinates only over TLS when so configured.

mod common;
use common::*;
use sip_msg::{Method, Target, Transport};
use sip_node::{Resolution, ResolveError};
use std::time::Duration;

const GW1: &str = "127.0.0.1:5091";
const GW2: &str = "127.0.0.1:5092";

fn target(a: &str) -> Target {
    Target { transport: Transport::Udp, remote: addr(a), conn: None }
}

/// A world that relays its users' calls to other domains, with two
/// gateways behind `gw.example.test`.
fn world() -> (World, PeerId, PeerId, PeerId) {
    let mut w = World::with(|c| c.proxy.relay_for_local_users = true);
    w.dns.insert(
        "gw.example.test".into(),
        Resolution { targets: Ok(vec![target(GW1), target(GW2)]), ttl: Duration::from_secs(60) },
    );
    let alice = w.ua("alice", "alice", "127.0.0.1:6001");
    let gw1 = w.ua("gw1", "gw", GW1);
    let gw2 = w.ua("gw2", "gw", GW2);
    (w, alice, gw1, gw2)
}

/// `from` calls `ruri` (a new dialog); returns the request text.
fn call_to(w: &mut World, from: PeerId, ruri: &str, n: u32) -> String {
    let cid = format!("dns-{n}@test");
    let t = w.peers[from].request_text("INVITE", ruri, &format!("<{ruri}>"), &cid, 1, &[]);
    w.send(from, &t);
    t
}

#[test]
fn a_name_is_resolved_once_and_its_first_address_gets_the_call() {
    let (mut w, alice, gw1, gw2) = world();
    call_to(&mut w, alice, "sip:carol@gw.example.test", 1);
    w.settle();
    assert_eq!(w.resolves.len(), 1);
    let q = &w.resolves[0].1.query;
    assert_eq!((q.host.as_str(), q.port, q.transport, q.secure), ("gw.example.test", None, None, false));
    assert_eq!(w.requests(gw1, Method::Invite).len(), 1);
    assert!(w.requests(gw2, Method::Invite).is_empty());
    assert_eq!(w.finals(alice, Method::Invite), vec![200]);
    // Within the TTL the answer is reused: no second question.
    w.advance(Duration::from_secs(30));
    call_to(&mut w, alice, "sip:carol@gw.example.test", 2);
    w.settle();
    assert_eq!(w.resolves.len(), 1);
    assert_eq!(w.requests(gw1, Method::Invite).len(), 2);
    // After it, asked again.
    w.advance(Duration::from_secs(31));
    call_to(&mut w, alice, "sip:carol@gw.example.test", 3);
    w.settle();
    assert_eq!(w.resolves.len(), 2);
}

#[test]
fn a_503_fails_over_to_the_next_address() {
    let (mut w, alice, gw1, gw2) = world();
    w.peers[gw1].answer = Answer::Final(503);
    call_to(&mut w, alice, "sip:carol@gw.example.test", 1);
    w.settle();
    assert_eq!(w.requests(gw1, Method::Invite).len(), 1);
    // The 503 was ACKed by our client transaction, not passed to the caller.
    assert_eq!(w.requests(gw1, Method::Ack).len(), 1);
    assert_eq!(w.requests(gw2, Method::Invite).len(), 1);
    assert_eq!(w.finals(alice, Method::Invite), vec![200]);
    // A fresh Via branch for the second attempt.
    let b1 = w.requests(gw1, Method::Invite)[0].branch();
    let b2 = w.requests(gw2, Method::Invite)[0].branch();
    assert_ne!(b1, b2);
}

#[test]
fn a_silent_address_fails_over_on_timeout_and_the_last_503_is_the_answer() {
    let (mut w, alice, gw1, gw2) = world();
    w.peers[gw1].answer = Answer::Silent;
    w.peers[gw2].answer = Answer::Final(503);
    call_to(&mut w, alice, "sip:carol@gw.example.test", 1);
    w.settle();
    assert!(w.requests(gw2, Method::Invite).is_empty());
    // Timer B (64×T1 = 32 s) ends the first attempt.
    w.advance(Duration::from_secs(33));
    assert_eq!(w.requests(gw2, Method::Invite).len(), 1);
    // No address left: the 503 becomes the answer (500 upstream, §16.7 step 6).
    let finals = w.finals(alice, Method::Invite);
    assert_eq!(finals.len(), 1, "{}", w.dump());
    assert!(finals[0] == 500 || finals[0] == 503, "{finals:?}");
}

#[test]
fn an_unknown_name_fails_the_branch_and_invalid_names_are_never_asked() {
    let (mut w, alice, _, _) = world();
    call_to(&mut w, alice, "sip:carol@nowhere.example.test", 1);
    w.settle();
    assert_eq!(w.resolves.len(), 1);
    let f = w.finals(alice, Method::Invite);
    assert_eq!(f.len(), 1);
    assert!(f[0] >= 400, "{f:?}");
    // The NXDOMAIN is cached too.
    call_to(&mut w, alice, "sip:carol@nowhere.example.test", 2);
    w.settle();
    assert_eq!(w.resolves.len(), 1);
    // RFC 6761 .invalid (a WebSocket client's Contact host): never asked.
    call_to(&mut w, alice, "sip:x@df7jal23ls0d.invalid;transport=ws", 3);
    w.settle();
    assert_eq!(w.resolves.len(), 1);
    assert_eq!(w.finals(alice, Method::Invite).len(), 3);
}

#[test]
fn requests_wait_for_the_answer_and_one_question_serves_them_all() {
    let (mut w, alice, gw1, _) = world();
    w.dns_hold = true;
    call_to(&mut w, alice, "sip:carol@gw.example.test", 1);
    call_to(&mut w, alice, "sip:dave@gw.example.test", 2);
    w.settle();
    assert_eq!(w.resolves.len(), 1);
    assert!(w.requests(gw1, Method::Invite).is_empty());
    let job = w.held_resolves.pop().unwrap();
    let r = w.dns["gw.example.test"].clone();
    w.node.handle_resolved(job.id, r, w.now);
    w.settle();
    assert_eq!(w.requests(gw1, Method::Invite).len(), 2);
    assert_eq!(w.finals(alice, Method::Invite), vec![200, 200]);
}

#[test]
fn a_cancel_while_resolving_sends_nothing_and_a_lost_answer_is_given_up() {
    let (mut w, alice, gw1, _) = world();
    w.dns_hold = true;
    let inv = call_to(&mut w, alice, "sip:carol@gw.example.test", 1);
    w.settle();
    w.cancel(alice, &inv);
    let job = w.held_resolves.pop().unwrap();
    let r = w.dns["gw.example.test"].clone();
    w.node.handle_resolved(job.id, r, w.now);
    w.settle();
    assert!(w.requests(gw1, Method::Invite).is_empty(), "{}", w.dump());
    assert_eq!(w.finals(alice, Method::Invite), vec![487]);
    // A question the driver never answers fails its request after the deadline.
    call_to(&mut w, alice, "sip:carol@other.example.test", 2);
    w.settle();
    assert_eq!(w.node.resolving(), 1);
    w.advance(sip_node::dns::RESOLVE_DEADLINE + Duration::from_secs(1));
    assert_eq!(w.node.resolving(), 0);
    assert_eq!(w.finals(alice, Method::Invite).len(), 2);
}

#[test]
fn requests_to_other_domains_go_through_the_outbound_proxy() {
    let mut w = World::with(|c| {
        c.proxy.relay_for_local_users = true;
        let u = sip_msg::Uri::parse_bytes("sip:edge.example.test;transport=tcp").unwrap();
        c.proxy.outbound_proxy = u.as_sip().cloned();
    });
    let edge = Target { transport: Transport::Tcp, remote: addr(GW1), conn: None };
    w.dns.insert("edge.example.test".into(), Resolution { targets: Ok(vec![edge]), ttl: Duration::from_secs(60) });
    let alice = w.ua("alice", "alice", "127.0.0.1:6001");
    let proxy = w.ua("edge", "edge", GW1);
    call_to(&mut w, alice, "sip:carol@far.example.org", 1);
    w.settle();
    let q = &w.resolves[0].1.query;
    assert_eq!((q.host.as_str(), q.transport), ("edge.example.test", Some(Transport::Tcp)));
    let got = w.requests(proxy, Method::Invite);
    assert_eq!(got.len(), 1);
    // The Request-URI is the callee's; only the next hop is the proxy's.
    assert_eq!(got[0].first_line(), "INVITE sip:carol@far.example.org SIP/2.0");
    assert_eq!(got[0].target.transport, Transport::Tcp);
    // A call to one of our own users is not sent there.
    let bob = w.ua("bob", "bob", "127.0.0.1:6002");
    w.register(bob);
    w.invite(alice, "bob", 2);
    w.settle();
    assert_eq!(w.requests(bob, Method::Invite).len(), 1);
    assert_eq!(w.requests(proxy, Method::Invite).len(), 1);
}

#[test]
fn sips_next_hops_leave_over_tls_only() {
    let mut w = World::with(|c| {
        c.proxy.relay_for_local_users = true;
        c.listeners.push((Transport::Tls, addr("127.0.0.1:5061")));
    });
    let alice = w.ua("alice", "alice", "127.0.0.1:6001");
    call_to(&mut w, alice, "sips:carol@192.0.2.44", 1);
    w.settle();
    let sent: Vec<_> = w.log.iter().filter(|s| s.got.is_request(Method::Invite)).collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].got.target.transport, Transport::Tls);
    assert_eq!(sent[0].got.target.remote, addr("192.0.2.44:5061"));
    assert!(sent[0].got.header("Via").unwrap().starts_with("SIP/2.0/TLS 127.0.0.1:5061;"));
    // sips over UDP cannot be honoured: refused, not downgraded.
    call_to(&mut w, alice, "sips:carol@192.0.2.44;transport=udp", 2);
    w.settle();
    assert_eq!(w.log.iter().filter(|s| s.got.is_request(Method::Invite)).count(), 1);
    // (the first call rings nowhere: nobody is at 192.0.2.44)
    let f = w.finals(alice, Method::Invite);
    assert_eq!(f.len(), 1);
    assert!(f[0] >= 500, "{f:?}");
}

#[test]
fn push_coordinates_are_refused_over_unprotected_transports_when_required() {
    let mut w = World::with(|c| {
        if let Some(p) = &mut c.push {
            p.require_secure_transport = true;
        }
        c.listeners.push((Transport::Tls, addr("127.0.0.1:5061")));
    });
    let udp = w.phone("udp-phone", "bob", "127.0.0.1:6010", "tok-udp");
    w.register(udp);
    let r = w.last_response(udp);
    assert_eq!(r.status(), Some(403), "{}", r.text);
    assert!(r.text.contains("TLS"), "{}", r.text);
    assert!(w.bindings("bob").is_empty());
    // The same phone over TLS registers.
    let tls = w.phone_tcp("tls-phone", "bob", "127.0.0.1:6011", 77, "tok-tls");
    w.peers[tls].transport = Transport::Tls;
    w.register(tls);
    assert_eq!(w.last_response(tls).status(), Some(200), "{}", w.dump());
    assert_eq!(w.bindings("bob").len(), 1);
    // A plain (push-less) registration over UDP is not affected.
    let plain = w.ua("plain", "carol", "127.0.0.1:6012");
    w.register(plain);
    assert_eq!(w.last_response(plain).status(), Some(200));
}

#[test]
fn a_failed_dns_answer_is_not_cached() {
    let (mut w, alice, gw1, _) = world();
    let good = w.dns.remove("gw.example.test").unwrap();
    w.dns.insert("gw.example.test".into(), Resolution { targets: Err(ResolveError::Failed), ttl: Duration::ZERO });
    call_to(&mut w, alice, "sip:carol@gw.example.test", 1);
    w.settle();
    assert!(w.finals(alice, Method::Invite)[0] >= 500);
    w.dns.insert("gw.example.test".into(), good);
    call_to(&mut w, alice, "sip:carol@gw.example.test", 2);
    w.settle();
    assert_eq!(w.resolves.len(), 2);
    assert_eq!(w.requests(gw1, Method::Invite).len(), 1);
}
