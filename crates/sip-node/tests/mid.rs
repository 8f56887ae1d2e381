//! The mid-registrar role at node level, in virtual time, against an
//! upstream registrar peer that runs a real `sip_registrar::Registrar`
//! (`World::upstream`): REGISTERs forwarded with rewritten Contacts in each
//! throttling mode, REGISTERs the local checks refuse never leaving,
//! challenges relayed (nothing written before the upstream's 2xx), refreshes
//! absorbed and forwarded again near the upstream's expiry, retransmissions
//! answered by their transaction (never absorbed), one AoR Contact in `aor`
//! mode (OpenSIPS #2615), requests the upstream sends to a `ctid` Contact
//! woken and forked exactly once after the waking REGISTER's durable 200
//! (challenged or absorbed), 480 when nobody wakes, 404 / 480 for unknown /
//! expired `ctid`s, 503 when the upstream is down (and no orphan left by a
//! 2xx after it), re-sends after an upstream restart (refresh pushes when it
//! challenges them; once each when its 2xx lists no Contact), devices'
//! requests to the upstream and re-sends after its 404, de-REGISTERs at
//! local expiry and at a restart, R20 (a grant too short for pushes),
//! restart from the store, and the store-before-200 rule.

mod common;

use common::*;
use sip_msg::Method;
use sip_node::StoreOp;
use sip_node::mid::{Throttle, UpstreamReg, aor_key};
use sip_push::PushReason;
use sip_registrar::RegistrarConfig;
use std::time::Duration;

/// A world in the mid-registrar role with its upstream registrar.
fn mid_world(throttle: Throttle, challenge: bool) -> (World, PeerId) {
    let mut w = World::mid(throttle);
    let up = w.upstream(challenge);
    (w, up)
}

/// The `ctid` of a Contact value or URI.
fn ctid(contact: &str) -> String {
    contact.split("ctid=").nth(1).expect("a ctid").split(['>', ';']).next().unwrap().to_string()
}

/// The upstream registration key of a device's (only) binding.
fn key_of(w: &World, user: &str) -> String {
    let bs = w.bindings(user);
    assert_eq!(bs.len(), 1, "{bs:#?}");
    match w.node.mid().unwrap().cfg.throttle {
        Throttle::Aor => aor_key(&bs[0].aor),
        _ => bs[0].id.clone(),
    }
}

fn upstream_reg(w: &World, key: &str) -> Option<UpstreamReg> {
    w.node.mid().unwrap().registration(key).cloned()
}

/// The store operations of every write so far.
fn ops(w: &World) -> Vec<&StoreOp> {
    w.writes.iter().flat_map(|wr| wr.ops.iter()).collect()
}

/// The last REGISTER the upstream received.
fn last_upstream_register(w: &World) -> Got {
    w.upstream_registers().last().copied().cloned().expect("a REGISTER upstream")
}

/// Position in the log of the last 200 to a REGISTER of `p`.
fn last_register_ok(w: &World, p: PeerId) -> usize {
    w.log
        .iter()
        .rposition(|s| s.to == Some(p) && s.got.status() == Some(200) && s.got.cseq_method() == Some(Method::Register))
        .expect("a 200 to a REGISTER")
}

// ----- 1. rewriting, per throttling mode -----

fn rewrites_in(throttle: Throttle) {
    let (mut w, _up) = mid_world(throttle, false);
    let want_expires: u32 = if throttle == Throttle::Mirror { 600 } else { 3600 };

    // A plain UA, behind an edge proxy's Path.
    let ua = w.ua("alice", "alice", "10.0.0.5:5060");
    let c = w.peers[ua].contact();
    w.register_with(ua, &[c], &["Expires: 600", "Path: <sip:edge.example.net;lr>"]);
    let ok = w.last_response(ua).clone();
    assert_eq!(ok.status(), Some(200), "{}", w.dump());
    let key = key_of(&w, "alice");
    if throttle == Throttle::Aor {
        assert!(key.starts_with('a'), "{key}");
    }
    let r = last_upstream_register(&w);
    assert_eq!(w.upstream_registers().len(), 1);
    assert_eq!(r.headers("Contact"), vec![format!("<sip:alice@127.0.0.1:5060;ctid={key}>;expires={want_expires}")]);
    assert!(r.headers("Via")[0].starts_with("SIP/2.0/UDP 127.0.0.1:5060;branch="), "{}", r.text);
    assert!(r.header("Path").is_none(), "Path went upstream: {}", r.text);
    assert!(r.header("Expires").is_none(), "{}", r.text);
    assert!(!r.text.contains("pn-"), "{}", r.text);
    assert!(r.header("Feature-Caps").is_none(), "a plain UA got a push indicator upstream: {}", r.text);
    // The device's 200: its own Contact, the upstream's To tag, no push indicator.
    let contacts = ok.headers("Contact");
    assert_eq!(contacts.len(), 1, "{}", ok.text);
    assert!(contacts[0].starts_with("<sip:alice@10.0.0.5:5060>") && contacts[0].contains("expires=600"), "{}", ok.text);
    assert!(!ok.text.contains("ctid"), "{}", ok.text);
    assert!(ok.header("Feature-Caps").is_none(), "{}", ok.text);
    assert_eq!(ok.headers("Server"), vec!["sipwake-test"], "{}", ok.text);
    let up_ok = w.up().replies.last().unwrap().1.clone();
    assert!(up_ok.starts_with("SIP/2.0 200"), "{up_ok}");
    assert_eq!(header_of(&up_ok, "To"), ok.header("To"), "the upstream's To tag is not kept");
    // The upstream and the node agree on the registration.
    let held = w.upstream_contacts("alice");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].uri.to_string(), format!("sip:alice@127.0.0.1:5060;ctid={key}"));
    let reg = upstream_reg(&w, &key).expect("the upstream registration");
    assert_eq!(reg.contact, held[0].uri.to_string());
    assert_eq!(reg.expires_at, w.now_ms() + u64::from(want_expires) * 1000);
    assert_eq!(reg.last_code, 200);

    // A push phone, with a Feature-Caps of its own.
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "TOKEN-A");
    let c = w.peers[dev].contact();
    w.register_with(dev, &[c], &["Expires: 600", "Feature-Caps: *;+sip.foo"]);
    let ok = w.last_response(dev).clone();
    assert_eq!(ok.status(), Some(200), "{}", w.dump());
    let key = key_of(&w, "dev");
    let r = last_upstream_register(&w);
    assert_eq!(r.call_id(), "reg-dev@test");
    assert_eq!(r.headers("Contact"), vec![format!("<sip:dev@127.0.0.1:5060;ctid={key}>;expires={want_expires}")]);
    assert!(!r.text.contains("pn-"), "push coordinates went upstream: {}", r.text);
    assert!(!r.text.contains("+sip.instance"), "{}", r.text);
    let fcs = r.headers("Feature-Caps");
    assert_eq!(fcs.first().copied(), Some("*;+sip.pns=\"apns\""), "ours first (F2): {}", r.text);
    assert!(fcs.contains(&"*;+sip.foo"), "{}", r.text);
    for fc in &fcs {
        assert!(!fc.contains("pnspurr") && !fc.contains("vapid") && !fc.contains("pnsreg"), "R61: {}", r.text);
    }
    let contacts = ok.headers("Contact");
    assert_eq!(contacts.len(), 1, "{}", ok.text);
    assert!(contacts[0].contains("pn-provider=apns") && contacts[0].contains("pn-prid=TOKEN-A"), "{}", ok.text);
    assert!(!ok.text.contains("ctid"), "{}", ok.text);
    let caps = ok.header("Feature-Caps").expect("Feature-Caps in the device's 200");
    assert!(caps.contains("+sip.pns=\"apns\"") && caps.contains("+sip.pnspurr=\""), "{caps}");
    let up_ok = w.up().replies.last().unwrap().1.clone();
    assert_eq!(header_of(&up_ok, "To"), ok.header("To"), "the upstream's To tag is not kept");
    assert_eq!(w.upstream_contacts("dev").len(), 1);
}

#[test]
fn mirror_mode_rewrites_contacts_with_the_device_expiry() {
    rewrites_in(Throttle::Mirror);
}

#[test]
fn contact_mode_rewrites_contacts_with_the_upstream_expiry() {
    rewrites_in(Throttle::Contact);
}

#[test]
fn aor_mode_rewrites_contacts_to_the_aor_key() {
    rewrites_in(Throttle::Aor);
}

// ----- 2. challenges -----

#[test]
fn a_challenge_is_relayed_and_writes_nothing_until_the_authenticated_retry() {
    let (mut w, _up) = mid_world(Throttle::Contact, true);
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "TOKEN-A");
    w.peer(dev).answers_challenges = false;
    w.register(dev);
    assert_eq!(w.finals(dev, Method::Register), vec![401], "{}", w.dump());
    let chal = w.last_response(dev).clone();
    assert_eq!(chal.header("WWW-Authenticate"), Some("Digest realm=\"example.com\", nonce=\"n1\""), "{}", chal.text);
    assert!(chal.header("Feature-Caps").is_none(), "{}", chal.text);
    let up_401 = w.up().replies.last().unwrap().1.clone();
    assert!(up_401.starts_with("SIP/2.0 401"));
    assert_eq!(header_of(&up_401, "To"), chal.header("To"), "not the upstream's 401");
    assert!(w.bindings("dev").is_empty(), "a binding before the upstream's 2xx");
    assert!(w.writes.is_empty(), "a store write before the upstream's 2xx: {:?}", w.writes);
    assert_eq!(w.node.mid().unwrap().registrations().count(), 0);
    assert_eq!(w.node.mid().unwrap().in_flight(), 0);
    // The retry with credentials.
    let c = w.peers[dev].contact();
    w.register_with(dev, &[c], &["Expires: 600", &authorization("dev")]);
    assert_eq!(w.finals(dev, Method::Register), vec![401, 200], "{}", w.dump());
    let r = last_upstream_register(&w);
    assert!(r.header("Authorization").is_some_and(|a| a.contains("username=\"dev\"")), "{}", r.text);
    assert_eq!(w.bindings("dev").len(), 1);
    let key = key_of(&w, "dev");
    assert!(ops(&w).iter().any(|o| matches!(o, StoreOp::Upsert { .. })));
    assert!(ops(&w).iter().any(|o| matches!(o, StoreOp::Upstream(r) if r.key == key)));
    assert!(w.last_response(dev).header("Feature-Caps").is_some());
}

#[test]
fn a_register_the_local_checks_refuse_never_goes_upstream() {
    let (mut w, _up) = mid_world(Throttle::Contact, false);
    // Too short for a push binding (RFC 8599 precheck).
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "TOKEN-A");
    let c = w.peers[dev].contact();
    w.register_with(dev, &[c], &["Expires: 100"]);
    // Below the registrar's min_expires.
    let ua = w.ua("alice", "alice", "10.0.0.5:5060");
    let c = w.peers[ua].contact();
    w.register_with(ua, std::slice::from_ref(&c), &["Expires: 30"]);
    // Several Contacts with a reg-id (RFC 5626).
    let c2 = "<sip:alice@10.0.0.5:5062>;reg-id=1;+sip.instance=\"<urn:uuid:1>\"".to_string();
    w.register_with(ua, &[c, c2], &["Expires: 600"]);
    assert_eq!(w.finals(dev, Method::Register), vec![423]);
    assert_eq!(w.finals(ua, Method::Register), vec![423, 400], "{}", w.dump());
    assert!(w.upstream_registers().is_empty(), "{}", w.dump());
    assert!(w.writes.is_empty());
}

// ----- 3. throttling -----

#[test]
fn contact_mode_absorbs_identical_refreshes_and_forwards_changes() {
    let (mut w, _up) = mid_world(Throttle::Contact, false);
    let ua = w.ua("alice", "alice", "10.0.0.5:5060");
    w.register(ua);
    assert_eq!(w.upstream_registers().len(), 1);
    for _ in 0..5 {
        w.advance(Duration::from_secs(60));
        w.register(ua);
        let ok = w.last_response(ua).clone();
        assert_eq!(ok.status(), Some(200), "{}", w.dump());
        assert!(ok.header("Contact").is_some_and(|c| c.contains("expires=600")), "{}", ok.text);
    }
    assert_eq!(w.upstream_registers().len(), 1, "refreshes went upstream:\n{}", w.dump());
    assert_eq!(w.finals(ua, Method::Register), vec![200; 6]);
    assert_eq!(w.bindings("alice")[0].expires_at, w.now_ms() + 600_000, "an absorbed refresh did not refresh");
    // The same Contact from a new address (the NAT binding changed): forwarded.
    let c = w.peers[ua].contact();
    w.move_peer(ua, addr("10.0.0.6:5060"), None);
    w.register_with(ua, std::slice::from_ref(&c), &["Expires: 600"]);
    assert_eq!(w.last_response(ua).status(), Some(200));
    assert_eq!(w.upstream_registers().len(), 2, "a refresh from a new address was absorbed:\n{}", w.dump());
    assert_eq!(w.bindings("alice")[0].flow.remote, addr("10.0.0.6:5060"));
    // An identical refresh from there: absorbed again.
    w.register_with(ua, std::slice::from_ref(&c), &["Expires: 600"]);
    assert_eq!(w.upstream_registers().len(), 2);
    // A changed Contact from the same address: forwarded.
    let c2 = w.peers[ua].contact();
    assert_ne!(c, c2);
    w.register_with(ua, &[c2], &["Expires: 600"]);
    assert_eq!(w.last_response(ua).status(), Some(200));
    assert_eq!(w.upstream_registers().len(), 3, "a changed Contact was absorbed:\n{}", w.dump());
    assert_eq!(w.upstream_contacts("alice").len(), 2);
}

#[test]
fn a_retransmitted_register_gets_its_transactions_answer_not_an_absorbed_one() {
    let (mut w, _up) = mid_world(Throttle::Contact, false);
    let ua = w.ua("alice", "alice", "10.0.0.5:5060");
    w.register(ua);
    let first = w.last_response(ua).clone();
    // The 200 was lost: the device sends the same REGISTER again (RFC 3261 §17.1.2.2).
    w.advance(Duration::from_millis(500));
    w.resend(ua);
    assert_eq!(w.finals(ua, Method::Register), vec![200, 200], "{}", w.dump());
    let again = w.last_response(ua).clone();
    // §17.2.2: the server transaction answers it with the same response (the
    // upstream's, with its To tag and headers), not a 200 made up here.
    assert_eq!(again.header("To"), first.header("To"), "{}", again.text);
    assert_eq!(again.text, first.text);
    assert_eq!(w.upstream_registers().len(), 1, "{}", w.dump());
    // A refresh (a new CSeq) is still absorbed.
    w.advance(Duration::from_secs(60));
    w.register(ua);
    assert_eq!(w.last_response(ua).status(), Some(200));
    assert_eq!(w.upstream_registers().len(), 1, "{}", w.dump());
    // A push phone's absorbed refresh, retransmitted: answered again, with
    // the same Feature-Caps (R51), the binding unchanged.
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "TOKEN-A");
    w.register(dev);
    w.advance(Duration::from_secs(60));
    w.register(dev);
    assert_eq!(w.upstream_registers().len(), 2, "{}", w.dump());
    let absorbed = w.last_response(dev).clone();
    let caps = absorbed.header("Feature-Caps").expect("Feature-Caps").to_string();
    let binding = w.bindings("dev");
    w.advance(Duration::from_millis(500));
    w.resend(dev);
    assert_eq!(w.finals(dev, Method::Register), vec![200, 200, 200], "{}", w.dump());
    let again = w.last_response(dev).clone();
    assert_eq!(again.header("Feature-Caps"), Some(caps.as_str()), "{}", again.text);
    assert!(again.header("Contact").is_some_and(|c| c.contains("pn-prid=TOKEN-A")), "{}", again.text);
    assert_eq!(w.bindings("dev"), binding);
    // Answered by the absorbed refresh's own transaction: the same response,
    // and nothing sent upstream for it (issue 10's left-out, fixed).
    assert_eq!(again.text, absorbed.text);
    assert_eq!(w.upstream_registers().len(), 2, "a retransmitted absorbed refresh went upstream:\n{}", w.dump());
}

#[test]
fn contact_mode_forwards_a_refresh_again_when_the_upstream_registration_nears_its_end() {
    let (mut w, _up) = mid_world(Throttle::Contact, false);
    let ua = w.ua("alice", "alice", "10.0.0.5:5060");
    w.register(ua);
    let key = key_of(&w, "alice");
    let until = upstream_reg(&w, &key).unwrap().expires_at;
    // Refreshes every 550 s: the upstream still holds it for longer than the device asks.
    for _ in 0..5 {
        w.advance(Duration::from_secs(550));
        w.register(ua);
        assert_eq!(w.last_response(ua).status(), Some(200));
    }
    assert_eq!(w.upstream_registers().len(), 1, "{}", w.dump());
    // At 3100 s the upstream has 500 s left, less than the 600 s asked: forwarded.
    w.advance(Duration::from_secs(350));
    assert_eq!(until - w.now_ms(), 500_000);
    w.register(ua);
    assert_eq!(w.last_response(ua).status(), Some(200));
    assert_eq!(w.upstream_registers().len(), 2, "{}", w.dump());
    let r = last_upstream_register(&w);
    assert_eq!(r.call_id(), "reg-alice@test", "not the device's REGISTER");
    let until = upstream_reg(&w, &key).unwrap().expires_at;
    assert_eq!(until, w.now_ms() + 3_600_000);
    assert_eq!(w.bindings("alice")[0].expires_at, w.now_ms() + 600_000);
    // Absorbed again, until the upstream has 640 s left: more than the 600 s
    // asked, but without a margin for the device's next refresh: forwarded.
    for _ in 0..5 {
        w.advance(Duration::from_secs(550));
        w.register(ua);
    }
    assert_eq!(w.upstream_registers().len(), 2, "{}", w.dump());
    w.advance(Duration::from_secs(210));
    assert_eq!(until - w.now_ms(), 640_000);
    w.register(ua);
    assert_eq!(w.upstream_registers().len(), 3, "{}", w.dump());
    assert_eq!(w.finals(ua, Method::Register), vec![200; 13]);
}

#[test]
fn mirror_mode_forwards_every_refresh() {
    let (mut w, _up) = mid_world(Throttle::Mirror, false);
    let ua = w.ua("alice", "alice", "10.0.0.5:5060");
    w.register(ua);
    for _ in 0..3 {
        w.advance(Duration::from_secs(60));
        w.register(ua);
        assert_eq!(w.last_response(ua).status(), Some(200));
    }
    let regs = w.upstream_registers();
    assert_eq!(regs.len(), 4, "{}", w.dump());
    for r in regs {
        assert!(r.headers("Contact")[0].ends_with(";expires=600"), "{}", r.text);
    }
}

// ----- 4. aor mode -----

#[test]
fn aor_mode_keeps_one_upstream_contact_and_removes_it_with_the_last_device() {
    let (mut w, _up) = mid_world(Throttle::Aor, false);
    let a1 = w.ua("alice1", "alice", "10.0.0.5:5060");
    let a2 = w.ua("alice2", "alice", "10.0.0.6:5060");
    w.register(a1);
    w.register(a2);
    assert_eq!(w.finals(a1, Method::Register), vec![200]);
    assert_eq!(w.finals(a2, Method::Register), vec![200]);
    assert_eq!(w.bindings("alice").len(), 2);
    let held = w.upstream_contacts("alice");
    assert_eq!(held.len(), 1, "{held:#?}");
    let key = aor_key(&w.bindings("alice")[0].aor);
    assert_eq!(ctid(&held[0].uri.to_string()), key);
    assert_eq!(w.node.mid().unwrap().registrations().count(), 1);
    // One device goes: the AoR's Contact stays registered (OpenSIPS #2615).
    let c = w.peers[a1].contact();
    w.register_with(a1, &[c], &["Expires: 0"]);
    assert_eq!(w.last_response(a1).status(), Some(200), "{}", w.dump());
    let r = last_upstream_register(&w);
    assert_eq!(r.headers("Contact"), vec![format!("<sip:alice@127.0.0.1:5060;ctid={key}>;expires=3600")]);
    assert_eq!(w.upstream_contacts("alice").len(), 1);
    assert_eq!(w.bindings("alice").len(), 1);
    assert!(upstream_reg(&w, &key).is_some());
    assert!(!ops(&w).iter().any(|o| matches!(o, StoreOp::RemoveUpstream { .. })));
    // The last one goes: the AoR's Contact goes too.
    let c = w.peers[a2].contact();
    w.register_with(a2, &[c], &["Expires: 0"]);
    assert_eq!(w.last_response(a2).status(), Some(200), "{}", w.dump());
    let r = last_upstream_register(&w);
    assert_eq!(r.headers("Contact"), vec![format!("<sip:alice@127.0.0.1:5060;ctid={key}>;expires=0")]);
    assert!(w.upstream_contacts("alice").is_empty());
    assert!(w.bindings("alice").is_empty());
    assert!(upstream_reg(&w, &key).is_none());
    assert!(ops(&w).iter().any(|o| matches!(o, StoreOp::RemoveUpstream { key: k } if *k == key)));
}

// ----- 5–7. requests from the upstream -----

/// A push phone registered through a challenging upstream, then asleep.
fn sleeping_phone(w: &mut World) -> PeerId {
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "TOKEN-A");
    w.register(dev);
    assert_eq!(w.finals(dev, Method::Register), vec![401, 200], "{}", w.dump());
    w.peer(dev).awake = false;
    dev
}

#[test]
fn a_call_from_the_upstream_wakes_a_device_whose_wake_up_register_is_challenged() {
    let (mut w, up) = mid_world(Throttle::Contact, true);
    let dev = sleeping_phone(&mut w);
    w.peer(dev).on_push = OnPush::MoveAndRegister(addr("10.0.0.22:5062"), None);
    let before = w.upstream_registers().len();
    w.store = StoreMode::Hold;
    let inv = w.upstream_call(up, "dev", 1);
    assert_eq!(inv.len(), 1);
    assert!(inv[0].starts_with("INVITE sip:dev@127.0.0.1:5060;ctid="), "{}", inv[0]);
    assert_eq!(w.pushes.len(), 1, "{}", w.dump());
    let job = &w.pushes[0].1;
    assert!(matches!(&job.request.reason, PushReason::Initial { method, .. } if method == "INVITE"));
    assert_eq!(job.request.prid, "TOKEN-A");
    // Woken on a new address: its REGISTER went upstream, was challenged, sent again
    // with credentials, accepted; the 200 waits for the store, the INVITE for the 200.
    assert_eq!(w.upstream_registers().len(), before + 2, "{}", w.dump());
    assert_eq!(w.finals(dev, Method::Register), vec![401, 200, 401], "{}", w.dump());
    assert!(w.requests(dev, Method::Invite).is_empty(), "forked before the 200:\n{}", w.dump());
    assert_eq!(w.held_writes.len(), 1, "{:?}", w.held_writes);
    w.advance(Duration::from_secs(1));
    assert!(w.requests(dev, Method::Invite).is_empty());
    w.store = StoreMode::Ack;
    w.commit(Ok(()));
    assert_eq!(w.finals(dev, Method::Register), vec![401, 200, 401, 200], "{}", w.dump());
    let invs = w.requests(dev, Method::Invite);
    assert_eq!(invs.len(), 1, "{}", w.dump());
    assert_eq!(invs[0].target.remote, addr("10.0.0.22:5062"));
    assert!(!invs[0].first_line().contains("ctid"), "{}", invs[0].text);
    let inv_pos = w.log_pos(|s| s.to == Some(dev) && s.got.is_request(Method::Invite)).unwrap();
    assert!(last_register_ok(&w, dev) < inv_pos, "{}", w.dump());
    assert_eq!(w.finals(up, Method::Invite), vec![200], "{}", w.dump());
    assert_eq!(w.bindings("dev")[0].flow.remote, addr("10.0.0.22:5062"));
    // Nothing more later.
    w.advance(Duration::from_secs(40));
    assert_eq!(w.requests(dev, Method::Invite).len(), 1, "{}", w.dump());
}

#[test]
fn a_call_from_the_upstream_wakes_a_device_whose_wake_up_register_is_absorbed() {
    let (mut w, up) = mid_world(Throttle::Contact, true);
    let dev = sleeping_phone(&mut w);
    w.peer(dev).on_push = OnPush::Register;
    let before = w.upstream_registers().len();
    w.advance(Duration::from_secs(10));
    w.upstream_call(up, "dev", 1);
    assert_eq!(w.pushes.len(), 1, "{}", w.dump());
    assert_eq!(w.upstream_registers().len(), before, "the wake-up REGISTER went upstream:\n{}", w.dump());
    assert_eq!(w.finals(dev, Method::Register), vec![401, 200, 200], "{}", w.dump());
    let invs = w.requests(dev, Method::Invite);
    assert_eq!(invs.len(), 1, "{}", w.dump());
    let inv_pos = w.log_pos(|s| s.to == Some(dev) && s.got.is_request(Method::Invite)).unwrap();
    assert!(last_register_ok(&w, dev) < inv_pos, "{}", w.dump());
    assert_eq!(w.finals(up, Method::Invite), vec![200], "{}", w.dump());
    w.advance(Duration::from_secs(40));
    assert_eq!(w.requests(dev, Method::Invite).len(), 1, "{}", w.dump());
}

#[test]
fn nobody_wakes_the_upstream_caller_gets_480_after_the_hold() {
    let (mut w, up) = mid_world(Throttle::Contact, true);
    let dev = sleeping_phone(&mut w);
    w.peer(dev).on_push = OnPush::Nothing;
    let t = w.now;
    w.upstream_call(up, "dev", 1);
    assert_eq!(w.pushes.len(), 1);
    w.advance(Duration::from_secs(29));
    assert!(w.finals(up, Method::Invite).is_empty(), "{}", w.dump());
    let end = w.now + Duration::from_secs(6);
    assert!(w.advance_until(end, |w| !w.finals(up, Method::Invite).is_empty()));
    assert_eq!(w.finals(up, Method::Invite), vec![480], "{}", w.dump());
    assert!(w.now - t >= Duration::from_secs(30));
    assert!(w.requests(dev, Method::Invite).is_empty());
    w.advance(Duration::from_secs(300));
    assert_eq!(w.finals(up, Method::Invite), vec![480], "{}", w.dump());
}

#[test]
fn an_unknown_ctid_is_404_and_an_expired_binding_480() {
    let (mut w, up) = mid_world(Throttle::Contact, false);
    w.upstream_invite(up, "sip:alice@127.0.0.1:5060;ctid=nosuchkey", "alice", 1);
    assert_eq!(w.finals(up, Method::Invite), vec![404], "{}", w.dump());
    let r = w.responses(up).into_iter().find(|g| g.status() == Some(404)).unwrap();
    assert_eq!(r.first_line(), "SIP/2.0 404 Not Found (no such registration)", "not answered here: {}", r.text);
    assert!(w.requests(up, Method::Invite).is_empty(), "sent back upstream:\n{}", w.dump());
    let ua = w.ua("alice", "alice", "10.0.0.5:5060");
    w.register(ua);
    let key = key_of(&w, "alice");
    // At the binding's expiry, before the expiry timer ran: the ctid is known, nobody is there.
    w.now = w.t0 + Duration::from_secs(600);
    assert!(upstream_reg(&w, &key).is_some());
    w.upstream_invite(up, &format!("sip:alice@127.0.0.1:5060;ctid={key}"), "alice", 2);
    assert_eq!(w.finals(up, Method::Invite), vec![404, 480], "{}", w.dump());
    assert!(w.requests(ua, Method::Invite).is_empty());
}

// ----- 8–9. the upstream down, restarted -----

#[test]
fn a_silent_upstream_gives_503_within_the_timeout_and_leaves_the_binding() {
    let (mut w, _up) = mid_world(Throttle::Mirror, false);
    let ua = w.ua("alice", "alice", "10.0.0.5:5060");
    w.register(ua);
    let before = w.bindings("alice");
    let writes = w.writes.len();
    w.advance(Duration::from_secs(100));
    w.up().silent = true;
    let t = w.now;
    w.register(ua);
    assert_eq!(w.finals(ua, Method::Register), vec![200]);
    let end = w.now + Duration::from_secs(10);
    assert!(w.advance_until(end, |w| w.finals(ua, Method::Register).len() == 2), "{}", w.dump());
    let r = w.last_response(ua).clone();
    assert_eq!(r.status(), Some(503), "{}", w.dump());
    assert!(r.header("Retry-After").is_some(), "{}", r.text);
    assert!(w.now - t <= Duration::from_secs(5), "503 after {:?}", w.now - t);
    assert!(w.now - t >= Duration::from_millis(4900), "503 after {:?}", w.now - t);
    assert_eq!(w.bindings("alice"), before, "the binding changed");
    assert_eq!(w.writes.len(), writes, "{:?}", &w.writes[writes..]);
    // One unanswered REGISTER makes the keep-alive probe at once (it alone
    // would not make the upstream down); the unanswered probe does.
    assert!(w.node.mid().unwrap().upstream_up());
    let probe = w.log.len();
    let end = w.now + Duration::from_secs(6);
    assert!(w.advance_until(end, |w| !w.node.mid().unwrap().upstream_up()), "{}", w.dump());
    assert!(w.log[probe..].iter().any(|s| s.got.is_request(Method::Options)), "no keep-alive probe");
}

#[test]
fn a_late_2xx_after_the_503_leaves_no_registration_sipwake_does_not_hold() {
    let (mut w, _up) = mid_world(Throttle::Contact, false);
    let ua = w.ua("alice", "alice", "10.0.0.5:5060");
    w.register(ua);
    let old = w.upstream_contacts("alice");
    assert_eq!(old.len(), 1);
    w.advance(Duration::from_secs(100));
    // The upstream stalls: the device, from a new address (a new binding), gets 503.
    w.up().silent = true;
    w.move_peer(ua, addr("10.0.0.6:5060"), None);
    w.register(ua);
    w.advance(Duration::from_secs(6));
    assert_eq!(w.finals(ua, Method::Register), vec![200, 503], "{}", w.dump());
    assert_eq!(w.bindings("alice").len(), 1, "a binding without the upstream's 2xx");
    // It comes back and accepts a retransmission of that REGISTER: the
    // registration it made for a binding that does not exist is removed.
    w.up().silent = false;
    w.advance(Duration::from_secs(10));
    let late = w
        .up()
        .replies
        .iter()
        .any(|(_, r)| r.starts_with("SIP/2.0 200") && header_of(r, "Call-ID") == Some("reg-alice@test"));
    assert!(late, "the upstream never accepted the retransmission:\n{}", w.dump());
    let held: Vec<String> = w.upstream_contacts("alice").iter().map(|b| b.uri.to_string()).collect();
    assert_eq!(held, vec![old[0].uri.to_string()], "{}", w.dump());
    let dereg = w.upstream_registers().into_iter().any(|r| {
        r.call_id().ends_with("@sipwake")
            && r.headers("Contact").first().is_some_and(|c| c.ends_with(";expires=0") && !c.contains(&ctid(&held[0])))
    });
    assert!(dereg, "{}", w.dump());
    assert_eq!(w.node.mid().unwrap().registrations().count(), 1);
    // Calls from the upstream reach the device.
    w.advance(Duration::from_secs(60));
    let up = w.upstream.as_ref().unwrap().peer;
    w.upstream_call(up, "alice", 1);
    assert_eq!(w.finals(up, Method::Invite), vec![200], "{}", w.dump());
}

/// alice (plain) and dev (push) registered; the upstream goes silent past a
/// failed keep-alive, then answers again with empty memory.
fn upstream_restart(challenge: bool) -> (World, PeerId, PeerId, usize) {
    let (mut w, _up) = mid_world(Throttle::Contact, challenge);
    let ua = w.ua("alice", "alice", "10.0.0.5:5060");
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "TOKEN-A");
    w.register(ua);
    w.register(dev);
    assert_eq!(w.last_response(ua).status(), Some(200), "{}", w.dump());
    assert_eq!(w.last_response(dev).status(), Some(200), "{}", w.dump());
    w.up().silent = true;
    w.advance(Duration::from_secs(40));
    assert!(!w.node.mid().unwrap().upstream_up(), "a failed keep-alive went unnoticed:\n{}", w.dump());
    w.up().forget();
    w.up().silent = false;
    assert!(w.upstream_contacts("alice").is_empty());
    let n = w.upstream_registers().len();
    w.advance(Duration::from_secs(35));
    assert!(w.node.mid().unwrap().upstream_up(), "{}", w.dump());
    (w, ua, dev, n)
}

#[test]
fn after_an_upstream_restart_every_registration_is_sent_again() {
    let (w, _ua, _dev, n) = upstream_restart(false);
    let resent: Vec<Got> = w.upstream_registers()[n..].iter().map(|g| (*g).clone()).collect();
    assert_eq!(resent.len(), 2, "{}", w.dump());
    for user in ["alice", "dev"] {
        let key = key_of(&w, user);
        let reg = upstream_reg(&w, &key).unwrap();
        let r = resent.iter().find(|r| r.call_id() == reg.call_id).expect("a re-sent REGISTER");
        assert!(r.call_id().ends_with("@sipwake"), "{}", r.text);
        assert_eq!(r.headers("Contact"), vec![format!("<{}>;expires=3600", reg.contact)]);
        let held = w.upstream_contacts(user);
        assert_eq!(held.len(), 1, "{user} not restored upstream");
        assert_eq!(held[0].uri.to_string(), reg.contact);
        assert_eq!(reg.last_code, 200);
        assert!(reg.expires_at > w.now_ms() + 3_500_000);
    }
    // The push phone's re-send carries its push indicator, the plain UA's none.
    let dev_key = key_of(&w, "dev");
    let r = resent.iter().find(|r| r.text.contains(&dev_key)).unwrap();
    assert_eq!(r.header("Feature-Caps"), Some("*;+sip.pns=\"apns\""), "{}", r.text);
    let alice_key = key_of(&w, "alice");
    let r = resent.iter().find(|r| r.text.contains(&alice_key)).unwrap();
    assert!(r.header("Feature-Caps").is_none(), "{}", r.text);
    assert!(w.pushes.is_empty(), "{:?}", w.pushes);
}

#[test]
fn after_an_upstream_restart_that_challenges_the_push_phone_gets_a_refresh_push() {
    let (w, _ua, dev, n) = upstream_restart(true);
    // Both re-sends were challenged; the push phone was asked to re-register.
    let pushes: Vec<_> = w.pushes.iter().map(|(_, p)| (p.request.prid.clone(), p.request.reason.clone())).collect();
    assert_eq!(pushes, vec![("TOKEN-A".to_string(), PushReason::Refresh)], "{}", w.dump());
    assert!(w.upstream_registers().len() >= n + 2 + 2, "{}", w.dump());
    // It did, through us, with its credentials: the upstream holds it again.
    assert_eq!(w.upstream_contacts("dev").len(), 1, "{}", w.dump());
    assert_eq!(*w.finals(dev, Method::Register).last().unwrap(), 200);
    let key = key_of(&w, "dev");
    assert_eq!(upstream_reg(&w, &key).unwrap().last_code, 200);
    // The plain UA cannot be restored without its credentials.
    assert!(w.upstream_contacts("alice").is_empty());
    let key = key_of(&w, "alice");
    assert_eq!(upstream_reg(&w, &key).unwrap().last_code, 401);
}

#[test]
fn an_upstream_that_lists_no_contacts_in_its_2xx_gets_each_re_send_once() {
    let (mut w, _up) = mid_world(Throttle::Contact, false);
    w.up().bare_ok = true;
    let ua = w.ua("alice", "alice", "10.0.0.5:5060");
    w.register(ua);
    assert_eq!(w.last_response(ua).status(), Some(200), "{}", w.dump());
    let key = key_of(&w, "alice");
    // What was asked stands for the grant.
    assert_eq!(upstream_reg(&w, &key).unwrap().expires_at, w.now_ms() + 3_600_000);
    w.up().silent = true;
    w.advance(Duration::from_secs(40));
    w.up().forget();
    w.up().silent = false;
    let n = w.upstream_registers().len();
    w.advance(Duration::from_secs(60));
    assert_eq!(w.upstream_registers().len(), n + 1, "{}", w.dump());
    assert_eq!(w.upstream_contacts("alice").len(), 1);
    let reg = upstream_reg(&w, &key).unwrap();
    assert_eq!(reg.last_code, 200);
    assert!(reg.expires_at > w.now_ms() + 3_500_000, "{reg:?}");
}

// ----- 10. devices' requests go to the upstream -----

#[test]
fn a_device_calls_through_the_upstream_and_its_404_triggers_a_re_send() {
    let (mut w, up) = mid_world(Throttle::Contact, false);
    let alice = w.ua("alice", "alice", "10.0.0.5:5060");
    w.register(alice);
    w.invite(alice, "bob", 1);
    let inv = w.requests(up, Method::Invite);
    assert_eq!(inv.len(), 1, "{}", w.dump());
    assert_eq!(inv[0].target.remote, addr(UPSTREAM));
    assert_eq!(inv[0].first_line(), "INVITE sip:bob@example.com SIP/2.0");
    let rr = inv[0].header("Record-Route").expect("Record-Route");
    assert!(rr.contains("127.0.0.1:5060") && rr.contains(";lr"), "{rr}");
    assert_eq!(w.finals(alice, Method::Invite), vec![404], "{}", w.dump());
    // bob is nobody we registered: no re-send.
    w.advance(Duration::from_secs(1));
    assert_eq!(w.upstream_registers().len(), 1);
    // bob registers through us; later the upstream restarts unnoticed (quickly).
    let bob = w.ua("bob", "bob", "10.0.0.7:5060");
    w.register(bob);
    assert_eq!(w.upstream_registers().len(), 2);
    w.advance(Duration::from_secs(45));
    w.up().forget();
    w.invite(alice, "bob", 2);
    assert_eq!(w.finals(alice, Method::Invite), vec![404, 404], "{}", w.dump());
    w.advance(Duration::from_secs(1));
    let regs = w.upstream_registers();
    assert_eq!(regs.len(), 3, "no re-send after the 404:\n{}", w.dump());
    let key = key_of(&w, "bob");
    let reg = upstream_reg(&w, &key).unwrap();
    assert_eq!(regs[2].call_id(), reg.call_id);
    assert_eq!(w.upstream_contacts("bob").len(), 1);
    assert!(w.upstream_contacts("alice").is_empty(), "only bob was re-sent");
    // Now bob is found.
    // Now bob is found: the upstream proxies the call to his Contact, that is to us.
    w.invite(alice, "bob", 3);
    assert_eq!(w.finals(alice, Method::Invite), vec![404, 404, 200], "{}", w.dump());
    let invs = w.requests(bob, Method::Invite);
    assert_eq!(invs.len(), 1, "{}", w.dump());
    assert_eq!(invs[0].first_line(), "INVITE sip:bob@10.0.0.7:5060 SIP/2.0");
    assert_eq!(invs[0].headers("Record-Route").len(), 2, "{}", invs[0].text);
}

// ----- 11. local expiry -----

#[test]
fn local_expiry_de_registers_upstream_in_contact_mode() {
    let (mut w, _up) = mid_world(Throttle::Contact, false);
    let ua = w.ua("alice", "alice", "10.0.0.5:5060");
    w.register(ua);
    let key = key_of(&w, "alice");
    let reg = upstream_reg(&w, &key).unwrap();
    // A refresh from a new address goes upstream; the registration keeps its own dialog.
    w.advance(Duration::from_secs(100));
    let c = w.peers[ua].contact();
    w.move_peer(ua, addr("10.0.0.6:5060"), None);
    w.register_with(ua, &[c], &["Expires: 600"]);
    assert_eq!(w.upstream_registers().len(), 2, "{}", w.dump());
    let refreshed = upstream_reg(&w, &key).unwrap();
    assert_eq!((refreshed.call_id.as_str(), refreshed.cseq), (reg.call_id.as_str(), reg.cseq));
    w.advance(Duration::from_secs(599));
    assert_eq!(w.upstream_registers().len(), 2);
    w.advance(Duration::from_secs(2));
    assert!(w.bindings("alice").is_empty());
    assert_eq!(w.upstream_registers().len(), 3, "{}", w.dump());
    let r = last_upstream_register(&w);
    assert_eq!(r.call_id(), reg.call_id);
    assert_eq!(r.msg.cseq().unwrap().seq, reg.cseq + 1);
    assert_eq!(r.headers("Contact"), vec![format!("<{}>;expires=0", reg.contact)]);
    assert!(w.upstream_contacts("alice").is_empty());
    assert!(upstream_reg(&w, &key).is_none());
    assert!(ops(&w).iter().any(|o| matches!(o, StoreOp::RemoveUpstream { key: k } if *k == key)));
    assert!(w.stored_upstream().is_empty());
}

// ----- 12. R20 -----

#[test]
fn r20_a_grant_too_short_for_pushes_makes_a_plain_binding() {
    let mut w = World::mid(Throttle::Contact);
    let cfg = RegistrarConfig { domains: vec![DOMAIN.into()], max_expires: 60, ..RegistrarConfig::default() };
    let up = w.upstream_with(false, cfg);
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "TOKEN-A");
    w.register(dev);
    let ok = w.last_response(dev).clone();
    assert_eq!(ok.status(), Some(200), "{}", w.dump());
    assert!(ok.header("Feature-Caps").is_none(), "push advertised on a 60 s grant: {}", ok.text);
    assert!(ok.header("Contact").unwrap().contains("expires=60"), "{}", ok.text);
    w.peer(dev).awake = false;
    w.advance(Duration::from_secs(10));
    w.upstream_call(up, "dev", 1);
    assert!(w.pushes.is_empty(), "R20: pushed:\n{}", w.dump());
    assert_eq!(w.requests(dev, Method::Invite).len(), 1, "{}", w.dump());
}

// ----- 13. restart -----

#[test]
fn restart_restores_upstream_registrations_and_calls_still_arrive() {
    let (mut w, up) = mid_world(Throttle::Contact, false);
    let ua = w.ua("alice", "alice", "10.0.0.5:5060");
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "TOKEN-A");
    w.register(ua);
    w.register(dev);
    let mut before: Vec<UpstreamReg> = w.node.mid().unwrap().registrations().cloned().collect();
    before.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(before.len(), 2);
    w.advance(Duration::from_secs(20));
    let n = w.upstream_registers().len();
    let (kept, pushed) = w.restart(Duration::from_secs(10));
    assert_eq!((kept, pushed), (2, 1));
    let mut after: Vec<UpstreamReg> = w.node.mid().unwrap().registrations().cloned().collect();
    after.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(after, before);
    w.advance(Duration::from_secs(1));
    assert_eq!(w.upstream_registers().len(), n, "REGISTERs after a restart:\n{}", w.dump());
    w.upstream_call(up, "alice", 1);
    assert_eq!(w.requests(ua, Method::Invite).len(), 1, "{}", w.dump());
    assert_eq!(w.finals(up, Method::Invite), vec![200], "{}", w.dump());
    // An absorbed refresh still works on the restored registration.
    w.register(ua);
    assert_eq!(w.last_response(ua).status(), Some(200));
    assert_eq!(w.upstream_registers().len(), n);
}

#[test]
fn restart_de_registers_what_expired_while_down() {
    let (mut w, _up) = mid_world(Throttle::Contact, false);
    let ua = w.ua("alice", "alice", "10.0.0.5:5060");
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "TOKEN-A");
    w.peer(dev).expires = 3600;
    w.register(ua);
    w.register(dev);
    let gone = key_of(&w, "alice");
    let kept = key_of(&w, "dev");
    let contact = upstream_reg(&w, &gone).unwrap().contact;
    let n = w.upstream_registers().len();
    // Down for 700 s: alice's 600 s binding ran out meanwhile.
    let (bindings, _) = w.restart(Duration::from_secs(700));
    assert_eq!(bindings, 1);
    assert!(upstream_reg(&w, &gone).is_none());
    assert!(upstream_reg(&w, &kept).is_some());
    let regs = w.upstream_registers();
    assert_eq!(regs.len(), n + 1, "{}", w.dump());
    assert_eq!(regs[n].headers("Contact"), vec![format!("<{contact}>;expires=0")]);
    assert!(w.upstream_contacts("alice").is_empty());
    assert_eq!(w.upstream_contacts("dev").len(), 1);
    let stored: Vec<String> = w.stored_upstream().into_iter().map(|r| r.key).collect();
    assert_eq!(stored, vec![kept]);
}

// ----- 14. store before the 200 -----

#[test]
fn the_devices_200_waits_for_the_store() {
    let (mut w, _up) = mid_world(Throttle::Contact, false);
    let ua = w.ua("alice", "alice", "10.0.0.5:5060");
    w.store = StoreMode::Hold;
    w.register(ua);
    assert_eq!(w.upstream_registers().len(), 1);
    assert!(w.up().replies.last().unwrap().1.starts_with("SIP/2.0 200"));
    assert!(w.finals(ua, Method::Register).is_empty(), "a 200 before the write is durable:\n{}", w.dump());
    assert_eq!(w.held_writes.len(), 1);
    let key = key_of(&w, "alice");
    let held = &w.held_writes[0].ops;
    assert!(held.iter().any(|o| matches!(o, StoreOp::Upsert { .. })), "{held:?}");
    assert!(held.iter().any(|o| matches!(o, StoreOp::Upstream(r) if r.key == key)), "{held:?}");
    w.advance(Duration::from_secs(2));
    assert!(w.finals(ua, Method::Register).is_empty());
    w.store = StoreMode::Ack;
    w.commit(Ok(()));
    assert_eq!(w.finals(ua, Method::Register), vec![200], "{}", w.dump());
    // A failed write: 500, never the 200.
    w.store = StoreMode::Fail("disk full".into());
    let c = w.peers[ua].contact();
    w.move_peer(ua, addr("10.0.0.6:5060"), None);
    w.register_with(ua, &[c], &["Expires: 600"]);
    assert_eq!(w.finals(ua, Method::Register), vec![200, 500], "{}", w.dump());
}

// ----- the upstream's qualify pings -----

#[test]
fn an_options_ping_from_the_upstream_is_answered_without_waking_the_phone() {
    let (mut w, up) = mid_world(Throttle::Contact, true);
    let dev = sleeping_phone(&mut w);
    let pushes = w.pushes.len();
    let key = key_of(&w, "dev");
    let ruri = format!("sip:dev@127.0.0.1:5060;ctid={key}");
    let t = w.peers[up].request_text("OPTIONS", &ruri, "<sip:dev@example.com>", "qualify-1@test", 1, &[]);
    w.send(up, &t);
    let answers: Vec<u16> = w
        .responses(up)
        .iter()
        .filter(|g| g.cseq_method() == Some(Method::Options))
        .filter_map(|g| g.status())
        .collect();
    assert_eq!(answers, vec![200], "{}", w.dump());
    assert_eq!(w.pushes.len(), pushes, "an OPTIONS ping pushed the phone");
    assert!(w.peer(dev).inbox.iter().all(|g| !g.is_request(Method::Options)));
    // A ctid we do not hold: 404, still no push.
    let t = w.peers[up].request_text(
        "OPTIONS",
        "sip:dev@127.0.0.1:5060;ctid=nosuchkey",
        "<sip:dev@example.com>",
        "qualify-2@test",
        1,
        &[],
    );
    w.send(up, &t);
    assert_eq!(w.last_response(up).status(), Some(404), "{}", w.dump());
    assert_eq!(w.pushes.len(), pushes);
}
