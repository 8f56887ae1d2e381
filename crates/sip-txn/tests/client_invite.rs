//! INVITE client transaction: Timers A, B, D, M, the ACK for non-2xx,
//! RFC 6026 Accepted, CANCEL (§9.1), reliable vs unreliable.

mod common;
use common::*;
use sip_msg::{HeaderName, Method};
use sip_txn::{ClientKey, ResponseEvent, TxnError, TxnEvent, TxnKey, TxnState};
use std::time::Instant;

const BR: &str = "z9hG4bKnashds8";

#[test]
fn timer_a_doubles_and_timer_b_times_out() {
    let t0 = Instant::now();
    let mut l = layer();
    let key = l.send_request(invite(BR, "UDP"), udp(), t0).unwrap();
    assert_eq!(key, ClientKey::new(BR, Method::Invite));
    let first = drain_tx(&mut l);
    assert_eq!(summary(&first), ["INVITE"]);
    assert_eq!(first[0].to, udp());
    assert_eq!(first[0].txn, Some(TxnKey::Client(key.clone())));
    assert_eq!(l.client_state(&key), Some(TxnState::Calling));
    let sent = run(&mut l, t0, ms(40_000));
    let at: Vec<u64> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(at, [500, 1500, 3500, 7500, 15500, 31500]);
    assert!(sent.iter().all(|(_, m)| m == "INVITE"));
    assert_eq!(drain_ev(&mut l), [TxnEvent::Timeout { key: key.clone() }, TxnEvent::Terminated { key: key.into() }]);
    assert!(l.is_empty());
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn timer_b_fires_at_64_t1() {
    let t0 = Instant::now();
    let mut l = layer();
    let key = l.send_request(invite(BR, "TCP"), tcp(), t0).unwrap();
    drain_tx(&mut l);
    l.handle_timeout(t0 + ms(31_999));
    assert!(drain_ev(&mut l).is_empty());
    l.handle_timeout(t0 + ms(32_000));
    assert_eq!(drain_ev(&mut l)[0], TxnEvent::Timeout { key });
}

#[test]
fn reliable_has_no_timer_a() {
    let t0 = Instant::now();
    let mut l = layer();
    l.send_request(invite(BR, "TCP"), tcp(), t0).unwrap();
    assert_eq!(drain_tx(&mut l)[0].to.conn, Some(7));
    assert!(run(&mut l, t0, ms(40_000)).is_empty());
    assert!(l.is_empty());
}

#[test]
fn provisional_stops_retransmissions_and_timer_b() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "UDP");
    let key = l.send_request(inv.clone(), udp(), t0).unwrap();
    drain_tx(&mut l);
    let ev = l.on_response(reply(&inv, 180, Some("a")), udp(), t0 + ms(100));
    assert!(matches!(ev, ResponseEvent::Response { key: k, .. } if k == key));
    assert_eq!(l.client_state(&key), Some(TxnState::Proceeding));
    // More provisionals go to the TU too.
    assert!(matches!(l.on_response(reply(&inv, 183, Some("a")), udp(), t0 + ms(200)), ResponseEvent::Response { .. }));
    assert!(run(&mut l, t0, ms(100_000)).is_empty());
    assert!(drain_ev(&mut l).is_empty());
    assert_eq!(l.client_state(&key), Some(TxnState::Proceeding));
}

#[test]
fn ack_for_non_2xx_is_built_exactly_and_resent() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "UDP");
    let key = l.send_request(inv.clone(), udp(), t0).unwrap();
    drain_tx(&mut l);
    let busy = reply(&inv, 486, Some("314159"));
    let ev = l.on_response(busy.clone(), udp(), t0 + ms(300));
    assert!(matches!(ev, ResponseEvent::Response { msg, .. } if msg.status() == Some(486)));
    let tx = drain_tx(&mut l);
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].to, udp());
    let expected = "ACK sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds8\r\n\
Route: <sip:p1.example.com;lr>\r\n\
Route: <sip:p2.example.com;lr>\r\n\
Max-Forwards: 70\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag=314159\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 1 ACK\r\n\
Content-Length: 0\r\n\r\n";
    assert_eq!(String::from_utf8_lossy(&tx[0].data), expected);
    let ack = parse_bytes(&tx[0].data);
    ack.validate().unwrap();
    assert_eq!(values(&ack, HeaderName::To), values(&busy, HeaderName::To));
    assert_eq!(l.client_state(&key), Some(TxnState::Completed));

    // Each retransmission of the 486 is absorbed and re-ACKed.
    for i in 0..3 {
        let ev = l.on_response(busy.clone(), udp(), t0 + ms(1000 + i));
        assert_eq!(ev_key_absorbed(ev), Some(key.clone()));
        let tx = drain_tx(&mut l);
        assert_eq!(String::from_utf8_lossy(&tx[0].data), expected);
    }
    // No INVITE retransmission any more; Timer D = 32 s ends it.
    l.handle_timeout(t0 + ms(32_299));
    assert!(drain_tx(&mut l).is_empty());
    assert_eq!(l.client_state(&key), Some(TxnState::Completed));
    l.handle_timeout(t0 + ms(32_300));
    assert_eq!(drain_ev(&mut l), [TxnEvent::Terminated { key: key.into() }]);
    assert!(l.is_empty());
}

fn ev_key_absorbed(ev: ResponseEvent) -> Option<ClientKey> {
    match ev {
        ResponseEvent::Absorbed { key } => Some(key),
        _ => None,
    }
}

#[test]
fn reliable_non_2xx_terminates_at_once_timer_d_zero() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "TCP");
    let key = l.send_request(inv.clone(), tcp(), t0).unwrap();
    drain_tx(&mut l);
    let ev = l.on_response(reply(&inv, 404, Some("x")), tcp(), t0 + ms(10));
    assert!(matches!(ev, ResponseEvent::Response { .. }));
    assert_eq!(summary(&drain_tx(&mut l)), ["ACK"]);
    assert_eq!(drain_ev(&mut l), [TxnEvent::Terminated { key: key.into() }]);
    assert!(l.is_empty());
}

#[test]
fn accepted_state_passes_every_2xx_and_timer_m_ends_it() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "UDP");
    let key = l.send_request(inv.clone(), udp(), t0).unwrap();
    drain_tx(&mut l);
    let ok = reply(&inv, 200, Some("fork1"));
    assert!(matches!(l.on_response(ok.clone(), udp(), t0 + ms(50)), ResponseEvent::Response { .. }));
    assert_eq!(l.client_state(&key), Some(TxnState::Accepted));
    // The transaction sends no ACK for a 2xx (the TU does) and no retransmission.
    assert!(drain_tx(&mut l).is_empty());
    // A retransmitted 2xx and a 2xx from another fork both reach the TU.
    assert!(matches!(l.on_response(ok, udp(), t0 + ms(600)), ResponseEvent::Response { .. }));
    assert!(matches!(
        l.on_response(reply(&inv, 200, Some("fork2")), udp(), t0 + ms(700)),
        ResponseEvent::Response { msg, .. } if msg.to().unwrap().tag().unwrap() == "fork2"
    ));
    // Late provisional / non-2xx responses are absorbed.
    assert!(matches!(l.on_response(reply(&inv, 180, Some("x")), udp(), t0 + ms(800)), ResponseEvent::Absorbed { .. }));
    assert!(matches!(l.on_response(reply(&inv, 500, Some("x")), udp(), t0 + ms(800)), ResponseEvent::Absorbed { .. }));
    assert!(drain_tx(&mut l).is_empty());
    // Timer M = 64*T1 from the first 2xx.
    l.handle_timeout(t0 + ms(32_049));
    assert_eq!(l.client_state(&key), Some(TxnState::Accepted));
    l.handle_timeout(t0 + ms(32_050));
    assert_eq!(drain_ev(&mut l), [TxnEvent::Terminated { key: key.into() }]);
    assert!(l.is_empty());
    // Later 2xx are stray: a proxy forwards them statelessly.
    assert!(matches!(
        l.on_response(reply(&inv, 200, Some("fork3")), udp(), t0 + ms(40_000)),
        ResponseEvent::Stray { .. }
    ));
}

#[test]
fn accepted_on_reliable_transport_still_waits_timer_m() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "TCP");
    let key = l.send_request(inv.clone(), tcp(), t0).unwrap();
    l.on_response(reply(&inv, 200, Some("a")), tcp(), t0);
    assert_eq!(l.client_state(&key), Some(TxnState::Accepted));
    l.handle_timeout(t0 + ms(32_000));
    assert!(l.is_empty());
}

const EXPECTED_CANCEL: &str = "CANCEL sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds8\r\n\
Route: <sip:p1.example.com;lr>\r\n\
Route: <sip:p2.example.com;lr>\r\n\
Max-Forwards: 70\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 1 CANCEL\r\n\
Content-Length: 0\r\n\r\n";

#[test]
fn cancel_after_provisional_is_sent_at_once() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "UDP");
    let key = l.send_request(inv.clone(), udp(), t0).unwrap();
    drain_tx(&mut l);
    l.on_response(reply(&inv, 180, Some("b")), udp(), t0 + ms(100));
    let ck = l.cancel(&key, t0 + ms(200)).unwrap();
    assert_eq!(ck, ClientKey::new(BR, Method::Cancel));
    let tx = drain_tx(&mut l);
    assert_eq!(tx.len(), 1);
    assert_eq!(String::from_utf8_lossy(&tx[0].data), EXPECTED_CANCEL);
    assert_eq!(tx[0].txn, Some(TxnKey::Client(ck.clone())));
    assert_eq!(l.len(), 2);
    // The CANCEL is a non-INVITE client transaction: Timer E retransmits it.
    l.handle_timeout(t0 + ms(700));
    assert_eq!(summary(&drain_tx(&mut l)), ["CANCEL"]);
    // Its 200 and the INVITE's 487 match their own transactions.
    let cancel_msg = parse(EXPECTED_CANCEL);
    let ev = l.on_response(reply(&cancel_msg, 200, Some("b")), udp(), t0 + ms(800));
    assert!(matches!(ev, ResponseEvent::Response { key, .. } if key == ck));
    assert_eq!(l.client_state(&ck), Some(TxnState::Completed));
    assert_eq!(l.client_state(&key), Some(TxnState::Proceeding));
    let ev = l.on_response(reply(&inv, 487, Some("b")), udp(), t0 + ms(810));
    assert!(matches!(ev, ResponseEvent::Response { key: k, .. } if k == key));
    assert_eq!(summary(&drain_tx(&mut l)), ["ACK"]);
    // A second cancel is refused: the INVITE is finished.
    assert!(matches!(l.cancel(&key, t0 + ms(900)), Err(TxnError::InvalidState(_))));
}

#[test]
fn cancel_before_provisional_waits_for_one() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "UDP");
    let key = l.send_request(inv.clone(), udp(), t0).unwrap();
    drain_tx(&mut l);
    let ck = l.cancel(&key, t0 + ms(10)).unwrap();
    assert!(drain_tx(&mut l).is_empty());
    assert_eq!(l.client_state(&ck), None);
    // Cancelling twice is harmless.
    assert_eq!(l.cancel(&key, t0 + ms(20)).unwrap(), ck);
    l.handle_timeout(t0 + ms(500));
    assert_eq!(summary(&drain_tx(&mut l)), ["INVITE"]);
    l.on_response(reply(&inv, 100, None), udp(), t0 + ms(600));
    let tx = drain_tx(&mut l);
    assert_eq!(String::from_utf8_lossy(&tx[0].data), EXPECTED_CANCEL);
    assert_eq!(l.client_state(&ck), Some(TxnState::Trying));
    // A further provisional does not send a second CANCEL.
    l.on_response(reply(&inv, 180, Some("x")), udp(), t0 + ms(650));
    assert!(drain_tx(&mut l).is_empty());
}

#[test]
fn deferred_cancel_is_dropped_when_a_final_response_comes_first() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "UDP");
    let key = l.send_request(inv.clone(), udp(), t0).unwrap();
    drain_tx(&mut l);
    l.cancel(&key, t0).unwrap();
    l.on_response(reply(&inv, 200, Some("x")), udp(), t0 + ms(100));
    assert!(drain_tx(&mut l).is_empty());
    assert_eq!(l.len(), 1);
}

#[test]
fn cancel_errors() {
    let t0 = Instant::now();
    let mut l = layer();
    assert_eq!(l.cancel(&ClientKey::new("z9hG4bKnone", Method::Invite), t0), Err(TxnError::NoSuchTransaction));
    let k = l.send_request(request("OPTIONS", "z9hG4bKo", "UDP"), udp(), t0).unwrap();
    assert!(matches!(l.cancel(&k, t0), Err(TxnError::InvalidState(_))));
}

#[test]
fn a_response_for_the_other_method_does_not_match() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "UDP");
    l.send_request(inv.clone(), udp(), t0).unwrap();
    // Same branch, CSeq method CANCEL: there is no CANCEL transaction.
    let r = parse_bytes(&cancel_for_invite(BR).response(200, None, None).to_bytes());
    assert!(matches!(l.on_response(r, udp(), t0), ResponseEvent::Stray { .. }));
}
