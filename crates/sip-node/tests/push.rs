//! RFC 8599 push wake-up at node level, in virtual time: the twins of the
//! end-to-end push scenarios (`crates/sipwake/tests/e2e_push.rs`) plus the
//! ordering rules only a sans-IO node can check exactly: a parked request is
//! forked only after the waking REGISTER's 200 is durable and sent; a failed
//! write forks nothing; 480 (never 408) when nobody wakes; CANCEL while
//! parked; plain + push bindings of one AoR; Feature-Caps on retransmitted
//! REGISTERs (R51); PURR wake-ups (Request-URI, top Route, Replaces);
//! R4 re-registration from a new address; a live TCP flow is no proof of
//! being awake; refresh pushes over a day; restart from stored rows;
//! retransmitted INVITEs while parked; 555/423/query REGISTERs, MESSAGE to a
//! sleeping device, de-registration, a refused wake-up REGISTER, and a
//! binding an upstream proxy pushes (R13).

mod common;

use common::*;
use sip_msg::Method;
use sip_push::{PushError, PushReason};
use std::time::Duration;

fn reason_of(w: &World, i: usize) -> &PushReason {
    &w.pushes[i].1.request.reason
}

#[test]
fn call_to_a_sleeping_device_is_forked_after_its_200() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    let r = w.last_response(dev).clone();
    let caps = r.header("Feature-Caps").expect("Feature-Caps");
    assert!(caps.starts_with("*;+sip.pns=\"apns\";+sip.pnspurr=\""), "{caps}");
    // Do not wake on the push yet: check the INVITE is parked.
    w.peer(dev).on_push = OnPush::Nothing;
    w.invite(caller, "dev", 1);
    assert_eq!(w.responses(caller).iter().map(|g| g.status().unwrap()).collect::<Vec<_>>(), vec![100]);
    assert_eq!(w.pushes.len(), 1);
    let job = &w.pushes[0].1;
    assert_eq!(job.request.provider, "apns");
    assert_eq!(job.request.prid, "TOKEN-A");
    assert_eq!(job.request.param.as_deref(), Some(PN_PARAM));
    assert_eq!(job.aor.as_deref(), Some("dev@example.com"));
    assert!(job.caller.as_ref().is_some_and(|c| c.uri == "sip:caller@example.com"), "{:?}", job.caller);
    assert!(matches!(reason_of(&w, 0), PushReason::Initial { method, .. } if method == "INVITE"));
    assert!(w.requests(dev, Method::Invite).is_empty(), "INVITE sent to a sleeping device:\n{}", w.dump());
    // The device wakes a second later and re-REGISTERs.
    w.advance(Duration::from_secs(1));
    w.peer(dev).awake = true;
    w.register(dev);
    let ok = w
        .log_pos(|s| s.to == Some(dev) && s.got.status() == Some(200) && s.got.cseq_method() == Some(Method::Register))
        .map(|_| {
            // the last 200 to a REGISTER of dev
            w.log
                .iter()
                .rposition(|s| {
                    s.to == Some(dev) && s.got.status() == Some(200) && s.got.cseq_method() == Some(Method::Register)
                })
                .unwrap()
        })
        .unwrap();
    let inv = w.log_pos(|s| s.to == Some(dev) && s.got.is_request(Method::Invite)).expect("INVITE forked");
    assert!(ok < inv, "the INVITE left before the waking REGISTER's 200:\n{}", w.dump());
    let invite = &w.log[inv].got;
    assert!(!invite.first_line().contains("pn-"), "pn-* in the forked Request-URI: {}", invite.text);
    assert_eq!(w.requests(dev, Method::Invite).len(), 1);
    // The device answers 200 with its registered Contact (push coordinates included):
    // R65: the caller never sees them.
    assert_eq!(w.finals(caller, Method::Invite), vec![200], "{}", w.dump());
    let f = w.responses(caller).into_iter().find(|g| g.status() == Some(200)).unwrap();
    let contact = f.header("Contact").unwrap();
    assert!(
        !contact.contains("pn-prid") && !contact.contains("pn-provider") && !contact.contains("pn-param"),
        "{contact}"
    );
    assert!(contact.contains("sip:dev@10.0.0.2:5062"), "{contact}");
}

#[test]
fn held_store_write_holds_the_200_and_the_fork() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    w.store = StoreMode::Hold;
    w.invite(caller, "dev", 1);
    assert_eq!(w.pushes.len(), 1);
    // The push woke the device: its REGISTER went in, its write is held.
    assert_eq!(w.held_writes.len(), 1, "{}", w.dump());
    let regs = w.finals(dev, Method::Register).len();
    assert_eq!(regs, 1, "a 200 before the write is durable:\n{}", w.dump());
    assert!(w.requests(dev, Method::Invite).is_empty(), "forked before the write is durable:\n{}", w.dump());
    // Time passes (less than the hold): still nothing.
    w.advance(Duration::from_secs(5));
    assert!(w.requests(dev, Method::Invite).is_empty());
    assert_eq!(w.finals(dev, Method::Register).len(), 1);
    let before = w.log.len();
    w.commit(Ok(()));
    let ok = w.log[before..]
        .iter()
        .position(|s| s.to == Some(dev) && s.got.status() == Some(200) && s.got.cseq_method() == Some(Method::Register))
        .expect("the 200 after the commit");
    let inv = w.log[before..]
        .iter()
        .position(|s| s.to == Some(dev) && s.got.is_request(Method::Invite))
        .expect("the INVITE after the commit");
    assert!(ok < inv, "{}", w.dump());
    w.store = StoreMode::Ack;
    w.settle();
    assert_eq!(w.finals(caller, Method::Invite), vec![200], "{}", w.dump());
}

#[test]
fn failed_store_write_gives_500_and_forks_nothing() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    w.store = StoreMode::Hold;
    w.invite(caller, "dev", 1);
    assert_eq!(w.held_writes.len(), 1);
    w.commit(Err("disk full".into()));
    assert_eq!(w.finals(dev, Method::Register), vec![200, 500], "{}", w.dump());
    let r500 = w.last_response(dev);
    assert!(r500.header("Contact").is_none() && r500.header("Feature-Caps").is_none(), "{}", r500.text);
    assert!(w.requests(dev, Method::Invite).is_empty(), "forked although the write failed:\n{}", w.dump());
    // The caller gets 480 (at once, or at the latest after the hold), never 408.
    let end = w.now + Duration::from_secs(31);
    assert!(w.advance_until(end, |w| !w.finals(caller, Method::Invite).is_empty()), "{}", w.dump());
    assert_eq!(w.finals(caller, Method::Invite), vec![480], "{}", w.dump());
    assert!(w.requests(dev, Method::Invite).is_empty());
}

#[test]
fn device_never_wakes_480_after_the_hold_never_408() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    w.peer(dev).on_push = OnPush::Nothing;
    let t = w.now;
    w.invite(caller, "dev", 1);
    assert_eq!(w.pushes.len(), 1);
    let hold = Duration::from_secs(30);
    w.advance(hold - Duration::from_millis(10));
    assert!(w.finals(caller, Method::Invite).is_empty(), "an answer before the hold ended:\n{}", w.dump());
    let end = w.now + Duration::from_secs(5);
    assert!(w.advance_until(end, |w| !w.finals(caller, Method::Invite).is_empty()), "{}", w.dump());
    assert_eq!(w.finals(caller, Method::Invite), vec![480], "{}", w.dump());
    assert!(w.now - t >= hold);
    // The 480 is ACKed; nothing more, ever (no 408 at Timer C).
    w.advance(Duration::from_secs(400));
    assert_eq!(w.finals(caller, Method::Invite), vec![480], "{}", w.dump());
    assert!(w.requests(dev, Method::Invite).is_empty());
    assert_eq!(w.node.proxy_contexts(), 0);
}

#[test]
fn push_failure_480_at_once() {
    let mut w = World::default();
    let (_dev, caller) = sleeping_dev(&mut w);
    w.push_mode = PushMode::Hold;
    w.invite(caller, "dev", 1);
    assert_eq!(w.held_pushes.len(), 1);
    w.advance(Duration::from_millis(300));
    assert!(w.finals(caller, Method::Invite).is_empty());
    w.push_result(Err(PushError::Failed));
    assert_eq!(w.finals(caller, Method::Invite), vec![480], "not at once:\n{}", w.dump());
}

#[test]
fn cancel_while_parked_200_487_and_a_later_register_forks_nothing() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    w.peer(dev).on_push = OnPush::Nothing;
    let inv = w.invite(caller, "dev", 1);
    assert_eq!(w.pushes.len(), 1);
    w.advance(Duration::from_secs(2));
    w.cancel(caller, &inv);
    let mut got = w.finals(caller, Method::Cancel);
    got.extend(w.finals(caller, Method::Invite));
    got.sort();
    assert_eq!(got, vec![200, 487], "{}", w.dump());
    // The device wakes later: nothing reaches it.
    w.peer(dev).awake = true;
    w.register(dev);
    w.advance(Duration::from_secs(40));
    assert!(w.requests(dev, Method::Invite).is_empty(), "INVITE after CANCEL:\n{}", w.dump());
    assert!(w.requests(dev, Method::Cancel).is_empty());
}

#[test]
fn plain_device_forked_at_once_push_device_parked() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    w.peer(dev).on_push = OnPush::Nothing;
    let desk = w.ua("desk", "dev", "10.0.0.3:5060");
    w.register(desk);
    let r = w.last_response(desk);
    assert_eq!(r.status(), Some(200));
    assert!(r.header("Feature-Caps").is_none(), "a plain binding gets no push indicator: {}", r.text);
    w.peer(desk).answer = Answer::Ring;
    w.invite(caller, "dev", 1);
    assert_eq!(w.requests(desk, Method::Invite).len(), 1, "{}", w.dump());
    assert!(w.requests(dev, Method::Invite).is_empty());
    assert_eq!(w.pushes.len(), 1);
    assert_eq!(w.pushes[0].1.request.prid, "TOKEN-A");
    // The push device wakes: forked too, now two branches ring.
    w.peer(dev).awake = true;
    w.peer(dev).answer = Answer::Ring;
    w.register(dev);
    assert_eq!(w.requests(dev, Method::Invite).len(), 1, "{}", w.dump());
}

#[test]
fn r51_retransmitted_register_gets_the_same_feature_caps() {
    let mut w = World::default();
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "TOKEN-A");
    w.register(dev);
    let first = w.last_response(dev).clone();
    let caps = first.header("Feature-Caps").expect("Feature-Caps").to_string();
    assert!(caps.contains("+sip.pnspurr="), "{caps}");
    w.advance(Duration::from_millis(500));
    w.resend(dev);
    let again = w.last_response(dev).clone();
    assert_eq!(w.finals(dev, Method::Register), vec![200, 200]);
    assert_eq!(again.header("Feature-Caps"), Some(caps.as_str()), "{}", again.text);
    assert_eq!(again.header("Contact"), first.header("Contact"));
    assert_eq!(w.bindings("dev").len(), 1);
}

/// A BYE in a dialog with the device: to its Contact, with `extra` lines.
fn bye(w: &mut World, peer: PeerId, ruri: &str, n: u32, extra: &[&str]) -> String {
    let cid = format!("dlg-{n}@test");
    let t = w.peer(peer).request_text("BYE", ruri, &format!("<sip:dev@{DOMAIN}>;tag=d{n}"), &cid, 2, extra);
    w.send(peer, &t);
    t
}

#[test]
fn purr_in_the_request_uri_wakes_the_device_and_a_forged_one_does_not() {
    let mut w = World::default();
    let (dev, peer) = sleeping_dev(&mut w);
    let purr = w.purr(dev);
    assert!(purr.len() >= 22, "{purr}");
    bye(&mut w, peer, &format!("sip:dev@10.0.0.2:5062;pn-purr={purr}"), 1, &[]);
    assert_eq!(w.pushes.len(), 1, "{}", w.dump());
    assert!(matches!(reason_of(&w, 0), PushReason::MidDialog { method, .. } if method == "BYE"));
    // It woke, registered, and got the BYE (pn-purr stripped from the Request-URI).
    let byes = w.requests(dev, Method::Bye);
    assert_eq!(byes.len(), 1, "{}", w.dump());
    assert!(!byes[0].first_line().contains("pn-purr"), "{}", byes[0].text);
    assert_eq!(w.finals(peer, Method::Bye), vec![200]);
    // A forged PURR: no push; routed by its Request-URI.
    w.peer(dev).awake = true;
    bye(&mut w, peer, "sip:dev@10.0.0.2:5062;pn-purr=AAAAAAAAAAAAAAAAAAAAAA", 2, &[]);
    assert_eq!(w.pushes.len(), 1, "a forged PURR caused a push");
    assert_eq!(w.requests(dev, Method::Bye).len(), 2, "{}", w.dump());
}

#[test]
fn r54_purr_only_in_the_top_route_wakes_the_device() {
    let mut w = World::default();
    let (dev, peer) = sleeping_dev(&mut w);
    let purr = w.purr(dev);
    let route = format!("Route: <sip:{SERVER};lr;pn-purr={purr}>");
    bye(&mut w, peer, "sip:dev@10.0.0.2:5062", 1, &[&route]);
    assert_eq!(w.pushes.len(), 1, "{}", w.dump());
    assert!(matches!(reason_of(&w, 0), PushReason::MidDialog { .. }));
    assert_eq!(w.requests(dev, Method::Bye).len(), 1, "{}", w.dump());
}

#[test]
fn r58_invite_with_replaces_to_a_purr_contact_wakes_the_device() {
    let mut w = World::default();
    let (dev, peer) = sleeping_dev(&mut w);
    let purr = w.purr(dev);
    w.peer(dev).on_push = OnPush::Nothing;
    // The Contact URI of a dialog the device is in: its user part is not the AoR's.
    let ruri = format!("sip:x-7f3a@10.0.0.2:5062;pn-purr={purr}");
    let t = w.peer(peer).request_text(
        "INVITE",
        &ruri,
        "<sip:x-7f3a@10.0.0.2>",
        "replacing@test",
        1,
        &["Replaces: old-call@test;to-tag=a1;from-tag=b2"],
    );
    w.send(peer, &t);
    assert_eq!(w.pushes.len(), 1, "{}", w.dump());
    assert!(w.requests(dev, Method::Invite).is_empty(), "delivered to a sleeping device:\n{}", w.dump());
    w.advance(Duration::from_secs(3));
    w.peer(dev).awake = true;
    w.register(dev);
    let invs = w.requests(dev, Method::Invite);
    assert_eq!(invs.len(), 1, "{}", w.dump());
    assert!(invs[0].header("Replaces").is_some());
    assert_eq!(w.finals(peer, Method::Invite), vec![200], "{}", w.dump());
}

#[test]
fn r4_device_without_instance_re_registers_from_a_new_address() {
    let mut w = World::default();
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "TOKEN-A");
    w.peer(dev).instance = None;
    w.register(dev);
    assert_eq!(w.last_response(dev).status(), Some(200));
    w.peer(dev).awake = false;
    w.peer(dev).on_push = OnPush::MoveAndRegister(addr("10.0.0.77:6000"), None);
    let caller = w.ua("caller", "caller", "10.0.0.9:5070");
    w.invite(caller, "dev", 1);
    assert_eq!(w.pushes.len(), 1);
    let bs = w.bindings("dev");
    assert_eq!(bs.len(), 1, "R4: one binding, not two: {bs:#?}");
    assert_eq!(bs[0].flow.remote, addr("10.0.0.77:6000"));
    let invs = w.requests(dev, Method::Invite);
    assert_eq!(invs.len(), 1, "{}", w.dump());
    assert_eq!(invs[0].target.remote, addr("10.0.0.77:6000"), "{}", w.dump());
    assert_eq!(w.finals(caller, Method::Invite), vec![200]);
}

#[test]
fn live_tcp_flow_is_no_proof_of_being_awake() {
    let mut w = World::default();
    let dev = w.phone_tcp("dev", "dev", "10.0.0.3:40001", 7, "TOKEN-T");
    w.register(dev);
    assert_eq!(w.last_response(dev).status(), Some(200));
    assert!(w.node.conn_alive(7));
    // Suspended with its socket open; when pushed it comes back on a new connection.
    w.peer(dev).awake = false;
    w.peer(dev).on_push = OnPush::Nothing;
    let caller = w.ua("caller", "caller", "10.0.0.9:5070");
    w.invite(caller, "dev", 1);
    let on7 = w.log_pos(|s| s.got.is_request(Method::Invite) && s.got.target.conn == Some(7));
    assert!(on7.is_some(), "the INVITE is tried over the live flow at once:\n{}", w.dump());
    assert_eq!(w.pushes.len(), 1, "and a push goes out too");
    w.advance(Duration::from_secs(2));
    w.peer(dev).awake = true;
    w.move_peer(dev, addr("10.0.0.3:40002"), Some(8));
    w.register(dev);
    let ok8 = w
        .log_pos(|s| s.got.status() == Some(200) && s.got.target.conn == Some(8))
        .unwrap_or_else(|| panic!("200 over conn 8:\n{}", w.dump()));
    let on8 = w
        .log_pos(|s| s.got.is_request(Method::Invite) && s.got.target.conn == Some(8))
        .unwrap_or_else(|| panic!("the INVITE is forked over conn 8:\n{}", w.dump()));
    assert!(ok8 < on8, "{}", w.dump());
    // The branch on conn 7 got no response at all, so its CANCEL waits for a
    // provisional (RFC 3261 §9.1): it must go the moment one arrives.
    assert!(w.log_pos(|s| s.got.is_request(Method::Cancel)).is_none(), "CANCEL before any 1xx:\n{}", w.dump());
    let old =
        w.log.iter().find(|s| s.got.is_request(Method::Invite) && s.got.target.conn == Some(7)).unwrap().got.clone();
    let ringing = w.peers[dev].respond(&old.msg, 180, "late");
    w.reply_on(&old, &ringing);
    let cancel7 = w
        .log_pos(|s| s.got.is_request(Method::Cancel) && s.got.target.conn == Some(7))
        .unwrap_or_else(|| panic!("the branch on conn 7 is cancelled:\n{}", w.dump()));
    assert!(on8 < cancel7);
    assert_eq!(w.finals(caller, Method::Invite), vec![200], "{}", w.dump());
    let invs: Vec<_> = w.log.iter().filter(|s| s.got.is_request(Method::Invite)).collect();
    assert_eq!(invs.len(), 2, "{}", w.dump());
}

#[test]
fn refresh_push_before_expiry_and_none_after_a_refresh() {
    let mut w = World::default();
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "TOKEN-R");
    w.peer(dev).on_push = OnPush::Nothing;
    w.register(dev); // 600 s
    w.advance(Duration::from_secs(479));
    assert!(w.pushes.is_empty(), "a refresh push too early");
    w.advance(Duration::from_secs(2));
    assert_eq!(w.pushes.len(), 1, "no refresh push at expiry - 120 s");
    let (at, job) = &w.pushes[0];
    assert!(*at >= Duration::from_secs(480) && *at < Duration::from_secs(481), "{at:?}");
    assert_eq!(job.request.reason, PushReason::Refresh);
    assert_eq!(job.request.attempt, 1);
    // No refresh: retries at expiry - 60, - 30, - 15 s.
    w.advance(Duration::from_secs(109));
    let at: Vec<(u64, u32)> = w.pushes.iter().map(|(t, p)| (t.as_secs(), p.request.attempt)).collect();
    assert_eq!(at, vec![(480, 1), (540, 2), (570, 3), (585, 4)]);
    // The device refreshes now (10 s before expiry): nothing until the new expiry - 120 s.
    w.register(dev);
    let n = w.pushes.len();
    w.advance(Duration::from_secs(479));
    assert_eq!(w.pushes.len(), n, "push after a refresh");
    w.advance(Duration::from_secs(2));
    assert_eq!(w.pushes.len(), n + 1);
}

#[test]
fn a_device_that_ignores_its_refresh_pushes_is_flagged_when_it_expires() {
    use sip_node::audit::FlagReason;
    let mut w = World::default();
    let quiet = w.phone("quiet", "quiet", "10.0.0.2:5062", "TOKEN-Q");
    let awake = w.phone("awake", "awake", "10.0.0.3:5062", "TOKEN-A");
    w.peer(quiet).on_push = OnPush::Nothing;
    w.peer(awake).on_push = OnPush::Nothing;
    w.register(quiet); // 600 s
    w.register(awake);
    let expired = |w: &World| -> Vec<sip_node::audit::FlaggedDevice> {
        w.node.flagged_devices().into_iter().filter(|f| f.reason == FlagReason::Expired).collect()
    };
    // Two refresh pushes unanswered (expiry - 120, - 60 s): the third
    // (- 30 s) flags both while they are still registered.
    w.advance(Duration::from_secs(569));
    assert!(w.node.flagged_devices().is_empty(), "{:?}", w.node.flagged_devices());
    w.advance(Duration::from_secs(2));
    let early: Vec<(String, FlagReason, u32)> =
        w.node.flagged_devices().into_iter().map(|f| (f.aor, f.reason, f.refresh_pushes)).collect();
    assert_eq!(
        early,
        [
            ("quiet@example.com".to_string(), FlagReason::RefreshUnanswered, 3),
            ("awake@example.com".to_string(), FlagReason::RefreshUnanswered, 3)
        ]
    );
    // The awake device answers its refresh pushes late but in time: never flagged as expired.
    w.advance(Duration::from_secs(19));
    w.register(awake);
    assert!(expired(&w).is_empty());
    // The quiet one got 4 refresh pushes (expiry - 120, - 60, - 30, - 15 s) and expires.
    w.advance(Duration::from_secs(20));
    let flagged = expired(&w);
    assert_eq!(flagged.len(), 1, "{flagged:?}\n{}", w.dump());
    assert_eq!(flagged[0].aor, "quiet@example.com");
    assert_eq!((flagged[0].provider.as_str(), flagged[0].refresh_pushes), ("apns", 4));
    // A binding removed by its own REGISTER (Expires: 0) is not flagged.
    w.advance(Duration::from_secs(500));
    let c = w.peer(awake).contact();
    w.register_with(awake, &[c], &["Expires: 0"]);
    w.advance(Duration::from_secs(700));
    assert_eq!(expired(&w).len(), 1, "{:?}", w.node.flagged_devices());
}

#[test]
fn a_day_of_refresh_cycles_in_virtual_time() {
    let mut w = World::default();
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "TOKEN-D");
    w.register(dev); // 600 s; re-REGISTERs whenever pushed
    let wall = std::time::Instant::now();
    w.advance(Duration::from_secs(24 * 3600));
    assert!(wall.elapsed() < Duration::from_secs(20), "slow: {:?}", wall.elapsed());
    let n = w.pushes.len();
    // A push every 480 s: 180 in a day, each answered by a REGISTER.
    assert!((179..=181).contains(&n), "{n} refresh pushes");
    assert!(w.pushes.iter().all(|(_, p)| p.request.attempt == 1 && p.request.reason == PushReason::Refresh));
    assert_eq!(w.bindings("dev").len(), 1, "the binding expired");
    assert_eq!(w.finals(dev, Method::Register).len(), n + 1);
}

#[test]
fn restart_rebuilds_the_refresh_schedule_and_old_purrs_still_wake() {
    let mut w = World::default();
    let (dev, peer) = sleeping_dev(&mut w);
    let purr = w.purr(dev);
    w.advance(Duration::from_secs(100));
    assert!(w.pushes.is_empty());
    let (kept, pushed) = w.restart(Duration::from_secs(10));
    assert_eq!((kept, pushed), (1, 1));
    assert!(w.node.poll_timeout().is_some());
    // The refresh push at expiry - 120 s = 480 s after the REGISTER (we are at 110 s).
    w.advance(Duration::from_secs(369));
    assert!(w.pushes.is_empty(), "early: {:?}", w.pushes);
    // An old PURR wakes the device (the push wakes it; its REGISTER lets the BYE through).
    bye(&mut w, peer, &format!("sip:dev@10.0.0.2:5062;pn-purr={purr}"), 1, &[]);
    assert_eq!(w.pushes.len(), 1, "the old PURR did not wake the device:\n{}", w.dump());
    assert!(matches!(reason_of(&w, 0), PushReason::MidDialog { .. }));
    assert_eq!(w.requests(dev, Method::Bye).len(), 1, "{}", w.dump());
}

#[test]
fn restart_refresh_push_fires_on_schedule() {
    let mut w = World::default();
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "TOKEN-S");
    w.peer(dev).on_push = OnPush::Nothing;
    w.register(dev);
    w.restart(Duration::from_secs(100));
    w.advance(Duration::from_secs(379));
    assert!(w.pushes.is_empty());
    w.advance(Duration::from_secs(2));
    assert_eq!(w.pushes.len(), 1, "no refresh push after the restart");
    assert_eq!(w.pushes[0].1.request.reason, PushReason::Refresh);
    assert_eq!(w.pushes[0].1.request.prid, "TOKEN-S");
}

#[test]
fn retransmitted_invite_while_parked_gets_no_second_push() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    w.peer(dev).on_push = OnPush::Nothing;
    w.invite(caller, "dev", 1);
    assert_eq!(w.pushes.len(), 1);
    for _ in 0..4 {
        w.advance(Duration::from_millis(500));
        w.resend(caller);
    }
    assert_eq!(w.pushes.len(), 1, "a retransmission pushed again");
    // Each retransmission gets the 100 again, nothing else.
    assert!(w.finals(caller, Method::Invite).is_empty());
    assert_eq!(w.node.proxy_contexts(), 1);
}

// ----- twins of the remaining end-to-end push scenarios -----

#[test]
fn unsupported_provider_555_and_too_short_expiry_423() {
    let mut w = World::with(|c| {
        if let Some(p) = &mut c.push {
            p.reply_555 = true;
        }
    });
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "T5");
    let c = format!("<sip:dev@{};pn-provider=acme;pn-prid=x;pn-param=y>", "10.0.0.2:5062");
    w.register_with(dev, &[c], &["Expires: 600"]);
    assert_eq!(w.last_response(dev).status(), Some(555), "{}", w.dump());
    let c = w.peer(dev).contact();
    w.register_with(dev, &[c], &["Expires: 100"]);
    let r = w.last_response(dev).clone();
    assert_eq!(r.status(), Some(423), "{}", w.dump());
    assert!(r.header("Min-Expires").is_some());
    assert!(w.bindings("dev").is_empty(), "a refused REGISTER wrote a binding");
    // A query (pn-provider without pn-prid) lists what is supported.
    w.register_with(dev, &["<sip:dev@10.0.0.2:5062;pn-provider=>".into()], &["Expires: 600"]);
    let r = w.last_response(dev).clone();
    assert_eq!(r.status(), Some(200), "{}", w.dump());
    let caps = r.headers("Feature-Caps").join(",");
    assert!(caps.contains("apns") && caps.contains("fcm"), "{caps}");
}

#[test]
fn message_to_a_sleeping_device_is_delivered_after_wake_up() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    w.call(caller, "MESSAGE", "dev", 1, &["Content-Type: text/plain"]);
    assert_eq!(w.pushes.len(), 1, "{}", w.dump());
    assert!(matches!(reason_of(&w, 0), PushReason::Initial { method, .. } if method == "MESSAGE"));
    // The default phone wakes on the push and re-REGISTERs; the MESSAGE follows its 200.
    assert_eq!(w.requests(dev, Method::Message).len(), 1, "{}", w.dump());
    assert_eq!(w.finals(caller, Method::Message), vec![200], "{}", w.dump());
}

#[test]
fn de_registration_stops_refresh_pushes() {
    let mut w = World::default();
    let (dev, _caller) = sleeping_dev(&mut w);
    let c = w.peer(dev).contact();
    w.register_with(dev, &[c], &["Expires: 0"]);
    assert_eq!(w.last_response(dev).status(), Some(200), "{}", w.dump());
    assert!(w.bindings("dev").is_empty());
    let before = w.pushes.len();
    w.advance(Duration::from_secs(7200));
    assert_eq!(w.pushes.len(), before, "a refresh push after de-registration:\n{}", w.dump());
}

#[test]
fn a_refused_wake_up_register_ends_the_wait_at_once_but_a_challenge_does_not() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    w.peer(dev).on_push = OnPush::Nothing;
    w.invite(caller, "dev", 1);
    assert_eq!(w.pushes.len(), 1);
    // The woken device's REGISTER is refused (423: too short for a push binding).
    let c = w.peer(dev).contact();
    w.register_with(dev, &[c], &["Expires: 100"]);
    assert_eq!(w.last_response(dev).status(), Some(423));
    assert_eq!(w.finals(caller, Method::Invite), vec![480], "the wait did not end at once:\n{}", w.dump());
}

#[test]
fn a_binding_whose_pushes_an_upstream_proxy_handles_is_never_pushed() {
    let mut w = World::default();
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "U1");
    let c = w.peer(dev).contact();
    w.register_with(dev, &[c], &["Expires: 600", "Feature-Caps: *;+sip.pns=\"apns\""]);
    let r = w.last_response(dev).clone();
    assert_eq!(r.status(), Some(200));
    assert!(r.header("Feature-Caps").is_none(), "{}", r.text);
    w.peer(dev).awake = false;
    let caller = w.ua("caller", "caller", "10.0.0.9:5070");
    w.invite(caller, "dev", 1);
    assert!(w.pushes.is_empty(), "R13: pushed a binding an upstream proxy handles:\n{}", w.dump());
    assert_eq!(w.requests(dev, Method::Invite).len(), 1, "{}", w.dump());
}
