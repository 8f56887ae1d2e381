//! Layer-wide behaviour: stray and invalid responses, stateless sends,
//! transport errors, poll_timeout, and scale (many transactions, timers
//! that cost nothing per idle tick).

mod common;
use common::*;
use sip_msg::{HeaderName, Method};
use sip_txn::{ClientKey, RequestEvent, ResponseEvent, ServerKey, TxnEvent, TxnKey, TxnLayer};
use std::time::{Duration, Instant};

#[test]
fn stray_and_invalid_responses() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite("z9hG4bKs1", "UDP");
    let ok = reply(&inv, 200, Some("x"));
    assert!(
        matches!(l.on_response(ok.clone(), udp(), t0), ResponseEvent::Stray { msg, from } if msg == ok && from == udp())
    );
    let mut no_branch = ok.clone();
    no_branch.headers.set(HeaderName::Via, "SIP/2.0/UDP h");
    assert!(matches!(l.on_response(no_branch, udp(), t0), ResponseEvent::Invalid { .. }));
    assert!(matches!(l.on_response(inv, udp(), t0), ResponseEvent::Invalid { .. }));
    assert!(l.is_empty());
    assert!(drain_tx(&mut l).is_empty());
}

#[test]
fn send_stateless_queues_without_state() {
    let mut l = layer();
    let ack = ack_for_invite("z9hG4bKack", "t");
    l.send_stateless(&ack, udp());
    let tx = drain_tx(&mut l);
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].txn, None);
    assert_eq!(parse_bytes(&tx[0].data), parse_bytes(&ack.to_bytes()));
    assert!(l.is_empty());
}

#[test]
fn transport_errors_destroy_transactions() {
    let t0 = Instant::now();
    let mut l = layer();
    let ck = l.send_request(invite("z9hG4bKt1", "UDP"), udp(), t0).unwrap();
    let failed = drain_tx(&mut l).remove(0).txn.unwrap();
    assert_eq!(failed, TxnKey::Client(ck.clone()));
    assert!(l.on_transport_error(&failed, t0));
    assert_eq!(
        drain_ev(&mut l),
        [TxnEvent::TransportError { key: failed.clone() }, TxnEvent::Terminated { key: failed.clone() }]
    );
    assert!(!l.on_transport_error(&failed, t0));
    // Its timers are gone with it.
    assert!(run(&mut l, t0, ms(60_000)).is_empty());
    assert!(drain_ev(&mut l).is_empty());

    let req = request("BYE", "z9hG4bKt2", "TCP");
    let RequestEvent::New { key, .. } = l.on_request(req.clone(), tcp(), t0) else { panic!() };
    l.respond(&key, reply(&req, 180, None), t0).unwrap();
    let sk = drain_tx(&mut l).remove(0).txn.unwrap();
    assert!(l.on_transport_error(&sk, t0));
    assert_eq!(drain_ev(&mut l)[0], TxnEvent::TransportError { key: key.into() });
    assert!(l.is_empty());
}

#[test]
fn poll_timeout_tracks_the_earliest_live_timer() {
    let t0 = Instant::now();
    let mut l = layer();
    assert_eq!(l.poll_timeout(), None);
    let inv = invite("z9hG4bKp1", "UDP");
    l.send_request(inv.clone(), udp(), t0).unwrap();
    assert_eq!(l.poll_timeout(), Some(t0 + ms(500)));
    l.on_response(reply(&inv, 180, Some("a")), udp(), t0 + ms(100));
    // A and B were cancelled: at worst an early wake-up, which then clears them.
    if let Some(t) = l.poll_timeout() {
        l.handle_timeout(t);
    }
    assert_eq!(l.poll_timeout(), None);
    assert_eq!(l.stats().timer_entries, 0);
}

#[test]
fn timers_are_deterministic() {
    let go = || {
        let t0 = Instant::now();
        let mut l = layer();
        for i in 0..50 {
            l.send_request(request("OPTIONS", &format!("z9hG4bKd{i}"), "UDP"), udp(), t0 + ms(i)).unwrap();
        }
        run(&mut l, t0, ms(40_000))
    };
    assert_eq!(go(), go());
}

/// 100k transactions (50k client, 50k server) created, driven to the end by
/// their timers, and the table empties. Idle ticks with 100k live
/// transactions pop nothing, and the total heap work is proportional to
/// the timers armed, not to ticks × transactions.
#[test]
fn many_transactions_expire_without_scanning() {
    const N: usize = 50_000;
    let t0 = Instant::now();
    let mut l = layer();
    let template = request("OPTIONS", "z9hG4bKx", "UDP");
    let mut server_keys: Vec<ServerKey> = Vec::with_capacity(N);
    for i in 0..N {
        let mut c = template.clone();
        c.headers.set(HeaderName::Via, format!("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKc{i}"));
        l.send_request(c, udp(), t0).unwrap();
        let mut s = template.clone();
        s.headers.set(HeaderName::Via, format!("SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKs{i}"));
        let RequestEvent::New { key, .. } = l.on_request(s, udp(), t0) else { panic!() };
        server_keys.push(key);
    }
    for key in &server_keys {
        l.respond(key, reply(&template, 200, Some("t")), t0).unwrap();
    }
    assert_eq!(l.len(), 2 * N);
    assert_eq!(drain_tx(&mut l).len(), 2 * N);

    // Idle ticks before the first deadline do no timer work at all.
    let before = l.stats();
    for i in 0..10_000u32 {
        l.handle_timeout(t0 + Duration::from_micros(u64::from(i)));
    }
    assert_eq!(l.stats().timer_pops, before.timer_pops);
    assert_eq!(l.len(), 2 * N);

    // Tick every 10 ms for 40 s of virtual time (4000 ticks).
    let mut timeouts = 0;
    let mut terminated = 0;
    let mut now = t0;
    while now < t0 + Duration::from_secs(40) {
        now += ms(10);
        l.handle_timeout(now);
        while l.poll_transmit().is_some() {}
        for ev in std::iter::from_fn(|| l.poll_event()) {
            match ev {
                TxnEvent::Timeout { key } => {
                    assert_eq!(key.method(), &Method::Options);
                    timeouts += 1;
                }
                TxnEvent::Terminated { .. } => terminated += 1,
                e => panic!("{e:?}"),
            }
        }
    }
    assert_eq!(timeouts, N);
    assert_eq!(terminated, 2 * N);
    assert!(l.is_empty());
    let s = l.stats();
    assert_eq!((s.timers_armed, s.timer_entries), (0, 0));
    assert_eq!(l.poll_timeout(), None);
    // Client: 10 E + F; server: J.
    assert_eq!(s.timers_fired, (N * 11 + N) as u64);
    // Each heap entry is popped once: the fired ones, plus the E each
    // client had armed when F ended it.
    assert_eq!(s.timer_pops, s.timers_fired + N as u64);
    // An O(n)-per-tick design would have visited 4000 × 100k entries.
    assert!(s.timer_pops < 4000 * 2 * N as u64 / 100);
}

#[test]
fn stale_timers_are_compacted() {
    let t0 = Instant::now();
    let mut l = layer();
    let template = invite("z9hG4bKx", "UDP");
    let mut keys: Vec<ClientKey> = Vec::new();
    for i in 0..5_000 {
        let mut c = template.clone();
        c.headers.set(HeaderName::Via, format!("SIP/2.0/UDP h:5060;branch=z9hG4bKc{i}"));
        keys.push(l.send_request(c, udp(), t0).unwrap());
    }
    // All answered with 200: A and B become stale, M is armed.
    for k in &keys {
        let mut ok = reply(&template, 200, Some("t"));
        ok.headers.set(HeaderName::Via, format!("SIP/2.0/UDP h:5060;branch={}", String::from_utf8_lossy(k.branch())));
        assert!(matches!(l.on_response(ok, udp(), t0 + ms(10)), ResponseEvent::Response { .. }));
    }
    assert_eq!(l.stats().timers_armed, 5_000);
    assert_eq!(l.stats().timer_entries, 15_000);
    l.handle_timeout(t0 + ms(20));
    // Stale entries outnumber live ones 2:1 (under the 4:1 compaction
    // threshold). Handling timeouts drops the stale ones that reach the top
    // (the As when due, then the Bs behind them), so that the next deadline
    // is exactly Timer M.
    l.handle_timeout(t0 + ms(500));
    assert_eq!(l.stats().timer_entries, 5_000);
    assert_eq!(l.poll_timeout(), Some(t0 + ms(32_010)));
    l.handle_timeout(t0 + ms(32_010));
    assert!(l.is_empty());
    assert_eq!(l.stats().timer_entries, 0);
}

#[test]
fn heap_is_compacted_when_stale_entries_dominate() {
    let t0 = Instant::now();
    let mut l = layer();
    // One live transaction whose timers stay at the top of the heap...
    l.send_request(request("OPTIONS", "z9hG4bKlive", "UDP"), udp(), t0).unwrap();
    // ...and 5000 INVITEs whose A and B become stale on a provisional.
    let template = invite("z9hG4bKx", "UDP");
    for i in 0..5_000 {
        let mut c = template.clone();
        let via = format!("SIP/2.0/UDP h:5060;branch=z9hG4bKc{i}");
        c.headers.set(HeaderName::Via, via.clone());
        l.send_request(c, udp(), t0 + ms(1)).unwrap();
        let mut trying = reply(&template, 100, None);
        trying.headers.set(HeaderName::Via, via);
        l.on_response(trying, udp(), t0 + ms(1));
    }
    assert_eq!(l.stats().timers_armed, 2);
    assert_eq!(l.stats().timer_entries, 10_002);
    l.handle_timeout(t0 + ms(2));
    assert_eq!(l.stats().timer_entries, 2);
    assert_eq!(l.stats().timer_pops, 10_000);
    assert_eq!(l.len(), 5_001);
}

#[test]
fn retransmission_updates_the_response_path() {
    let t0 = Instant::now();
    let mut l = layer();
    let req = request("MESSAGE", "z9hG4bKm", "TCP");
    let RequestEvent::New { key, .. } = l.on_request(req.clone(), tcp(), t0) else { panic!() };
    l.respond(&key, reply(&req, 100, None), t0).unwrap();
    assert_eq!(drain_tx(&mut l)[0].to.conn, Some(7));
    let reconnected = sip_txn::Peer { conn: Some(8), ..tcp() };
    l.on_request(req.clone(), reconnected, t0 + ms(500));
    assert_eq!(drain_tx(&mut l)[0].to.conn, Some(8));
    l.respond(&key, reply(&req, 200, Some("x")), t0 + ms(600)).unwrap();
    assert_eq!(drain_tx(&mut l)[0].to, reconnected);
}

#[test]
fn one_layer_serves_both_sides_of_a_proxy() {
    // A proxy: server transaction upstream, client transaction downstream.
    let t0 = Instant::now();
    let mut l = TxnLayer::new(Default::default());
    let up = invite("z9hG4bKup", "UDP");
    let RequestEvent::New { key: skey, msg, .. } = l.on_request(up, udp(), t0) else { panic!() };
    let mut down = msg.clone();
    down.headers.push_front(HeaderName::Via, format!("SIP/2.0/TCP proxy.example.com;branch={}", sip_txn::new_branch()));
    let ckey = l.send_request(down.clone(), tcp(), t0).unwrap();
    assert_eq!(ckey.method(), &Method::Invite);
    drain_tx(&mut l);
    let mut ringing = reply(&down, 180, Some("b"));
    let ResponseEvent::Response { msg: r, .. } = l.on_response(ringing.clone(), tcp(), t0 + ms(50)) else { panic!() };
    ringing = r;
    ringing.headers.remove_first(&HeaderName::Via);
    l.respond(&skey, ringing, t0 + ms(50)).unwrap();
    let tx = drain_tx(&mut l);
    assert_eq!(summary(&tx), ["180"]);
    assert_eq!(tx[0].to, udp());
    assert_eq!(l.len(), 2);
}
