//! The start-up loading gate at node level, in virtual time: while the
//! stored location is restored, OPTIONS to the server and requests that do
//! not read the location are answered at once; REGISTERs, lookups and
//! requests naming a push device are held (their retransmissions absorbed)
//! and dispatched in order once the location is whole, never answered from
//! half of it; a request held too long, or beyond the cap, gets 503 with a
//! Retry-After.

mod common;

use common::*;
use sip_msg::Method;
use std::time::Duration;

/// OPTIONS to the server itself, from `p`.
fn options_to_server(w: &mut World, p: PeerId, n: u32) {
    let cid = format!("ping-{n}@test");
    let t = w.peer(p).request_text("OPTIONS", &format!("sip:{DOMAIN}"), &format!("<sip:{DOMAIN}>"), &cid, 1, &[]);
    w.send(p, &t);
}

#[test]
fn options_answered_while_loading_and_register_and_invite_wait_for_the_whole_location() {
    let mut w = World::default();
    let alice = w.ua("alice", "alice", "10.0.0.5:5060");
    let bob = w.ua("bob", "bob", "10.0.0.6:5060");
    w.register(alice);
    w.register(bob);
    let caller = w.ua("caller", "caller", "10.0.0.9:5070");
    let rows = w.restart_gated(Duration::from_secs(5));
    assert_eq!(rows.len(), 2);
    assert!(w.node.is_loading());

    // The server answers its own OPTIONS while nothing is loaded.
    options_to_server(&mut w, caller, 1);
    assert_eq!(w.finals(caller, Method::Options), vec![200], "{}", w.dump());

    // A call to bob and bob's refresh wait: no 404/480 from an empty location.
    w.invite(caller, "bob", 1);
    w.register(bob);
    assert!(w.finals(caller, Method::Invite).is_empty(), "{}", w.dump());
    assert_eq!(w.finals(bob, Method::Register), vec![200], "only the first REGISTER's 200: {}", w.dump());
    assert_eq!(w.node.held_while_loading(), 2);

    // Half the location: still nothing leaves for bob.
    let (first, second): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(b, _)| b.aor.as_str().starts_with("alice"));
    w.load(first);
    assert!(w.requests(bob, Method::Invite).is_empty(), "{}", w.dump());
    w.load(second);
    assert!(w.requests(bob, Method::Invite).is_empty(), "dispatched before the gate went down");
    w.finish_loading();
    assert!(!w.node.is_loading());

    // The refresh replaced bob's stored binding (no duplicate), and the call reached him.
    assert_eq!(w.finals(bob, Method::Register), vec![200, 200], "{}", w.dump());
    assert_eq!(w.bindings("bob").len(), 1, "{:?}", w.bindings("bob"));
    assert_eq!(w.requests(bob, Method::Invite).len(), 1, "{}", w.dump());
    assert_eq!(w.node.held_while_loading(), 0);
}

#[test]
fn retransmissions_of_a_held_request_are_absorbed() {
    let mut w = World::default();
    let bob = w.ua("bob", "bob", "10.0.0.6:5060");
    w.register(bob);
    let caller = w.ua("caller", "caller", "10.0.0.9:5070");
    let rows = w.restart_gated(Duration::from_secs(1));
    w.invite(caller, "bob", 1);
    for _ in 0..3 {
        w.advance(Duration::from_millis(500));
        w.resend(caller);
    }
    assert_eq!(w.node.held_while_loading(), 1, "a retransmission was held twice");
    w.load(rows);
    w.finish_loading();
    assert_eq!(w.requests(bob, Method::Invite).len(), 1, "{}", w.dump());
}

#[test]
fn a_cancel_follows_its_held_invite() {
    let mut w = World::default();
    let bob = w.ua("bob", "bob", "10.0.0.6:5060");
    w.peer(bob).answer = Answer::Ring;
    w.register(bob);
    let caller = w.ua("caller", "caller", "10.0.0.9:5070");
    let rows = w.restart_gated(Duration::from_secs(1));
    let inv = w.invite(caller, "bob", 1);
    w.cancel(caller, &inv);
    // Not a 481 for an INVITE the node has not seen yet: held behind it.
    assert!(w.finals(caller, Method::Cancel).is_empty(), "{}", w.dump());
    w.load(rows);
    w.finish_loading();
    assert_eq!(w.finals(caller, Method::Cancel), vec![200], "{}", w.dump());
    assert_eq!(w.finals(caller, Method::Invite), vec![487], "{}", w.dump());
}

#[test]
fn a_request_held_too_long_gets_503_with_retry_after_and_is_not_dispatched_later() {
    let mut w = World::default();
    let bob = w.ua("bob", "bob", "10.0.0.6:5060");
    w.register(bob);
    let caller = w.ua("caller", "caller", "10.0.0.9:5070");
    let rows = w.restart_gated(Duration::from_secs(1));
    w.call(caller, "MESSAGE", "bob", 1, &[]);
    w.advance(sip_node::loading::MAX_WAIT - Duration::from_millis(1));
    assert!(w.finals(caller, Method::Message).is_empty());
    w.advance(Duration::from_millis(2));
    assert_eq!(w.finals(caller, Method::Message), vec![503], "{}", w.dump());
    let retry: u32 = w.last_response(caller).header("Retry-After").expect("Retry-After").parse().unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    w.load(rows);
    w.finish_loading();
    assert!(w.requests(bob, Method::Message).is_empty(), "answered 503 and then delivered too");
}

#[test]
fn requests_for_other_domains_and_in_dialog_requests_pass_the_gate() {
    let mut w = World::default();
    let caller = w.ua("caller", "caller", "10.0.0.9:5070");
    let far = w.ua("far", "far", "10.0.0.77:5060");
    let _rows = w.restart_gated(Duration::from_secs(1));
    // In dialog, routed by its Request-URI (the remote target): not a lookup.
    let t = w.peer(caller).request_text(
        "BYE",
        "sip:far@10.0.0.77:5060",
        &format!("<sip:far@{DOMAIN}>;tag=x1"),
        "dlg-9@test",
        2,
        &[],
    );
    w.send(caller, &t);
    assert_eq!(w.requests(far, Method::Bye).len(), 1, "{}", w.dump());
    assert_eq!(w.node.held_while_loading(), 0);
}

#[test]
fn a_push_device_woken_after_loading_gets_its_call() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    let rows = w.restart_gated(Duration::from_secs(1));
    w.invite(caller, "dev", 1);
    assert!(w.pushes.is_empty(), "pushed from a half-loaded location");
    w.load(rows);
    w.finish_loading();
    assert_eq!(w.pushes.len(), 1, "{}", w.dump());
    assert_eq!(w.requests(dev, Method::Invite).len(), 1, "{}", w.dump());
}
