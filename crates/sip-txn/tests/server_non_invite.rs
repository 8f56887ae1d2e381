//! Non-INVITE server transaction: retransmission absorption in Trying,
//! Proceeding and Completed; Timer J on unreliable and reliable transports.

mod common;
use common::*;
use sip_msg::Method;
use sip_txn::{RequestEvent, ServerKey, TxnError, TxnEvent, TxnLayer, TxnState};
use std::time::Instant;

const BR: &str = "z9hG4bKnashds7";

fn new_request(l: &mut TxnLayer, transport: &str, t: Instant) -> (ServerKey, sip_msg::Message) {
    let req = request("REGISTER", BR, transport);
    let from = if transport == "UDP" { udp() } else { tcp() };
    match l.on_request(req.clone(), from, t) {
        RequestEvent::New { key, .. } => {
            assert_eq!(key.method(), &Method::Register);
            assert_eq!(key.branch().unwrap(), BR);
            (key, req)
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn retransmissions_in_each_state() {
    let t0 = Instant::now();
    let mut l = layer();
    let (key, req) = new_request(&mut l, "UDP", t0);
    assert_eq!(l.server_state(&key), Some(TxnState::Trying));
    // No automatic 100 for non-INVITE, and nothing to re-send in Trying.
    assert_eq!(l.poll_timeout(), None);
    assert!(matches!(l.on_request(req.clone(), udp(), t0 + ms(500)), RequestEvent::Retransmission { .. }));
    assert!(drain_tx(&mut l).is_empty());
    // Proceeding: the last provisional is re-sent.
    l.respond(&key, reply(&req, 100, None), t0 + ms(600)).unwrap();
    assert_eq!(l.server_state(&key), Some(TxnState::Proceeding));
    assert_eq!(summary(&drain_tx(&mut l)), ["100"]);
    l.on_request(req.clone(), udp(), t0 + ms(1500));
    assert_eq!(summary(&drain_tx(&mut l)), ["100"]);
    // Completed: the final response is re-sent.
    l.respond(&key, reply(&req, 200, Some("r")), t0 + ms(2000)).unwrap();
    assert_eq!(l.server_state(&key), Some(TxnState::Completed));
    assert_eq!(summary(&drain_tx(&mut l)), ["200"]);
    for i in 0..3 {
        assert!(matches!(l.on_request(req.clone(), udp(), t0 + ms(3000 + i)), RequestEvent::Retransmission { .. }));
        assert_eq!(summary(&drain_tx(&mut l)), ["200"]);
    }
    // Nothing is retransmitted on a timer; J = 64*T1 from the final response.
    assert!(run(&mut l, t0, ms(33_999)).is_empty());
    assert_eq!(l.len(), 1);
    l.handle_timeout(t0 + ms(34_000));
    assert_eq!(drain_ev(&mut l), [TxnEvent::Terminated { key: key.clone().into() }]);
    // After J a retransmission is a new request.
    assert!(matches!(l.on_request(req, udp(), t0 + ms(34_001)), RequestEvent::New { .. }));
}

#[test]
fn reliable_timer_j_is_zero() {
    let t0 = Instant::now();
    let mut l = layer();
    let (key, req) = new_request(&mut l, "TCP", t0);
    l.respond(&key, reply(&req, 200, Some("r")), t0).unwrap();
    let tx = drain_tx(&mut l);
    assert_eq!(tx[0].to, tcp());
    assert_eq!(drain_ev(&mut l), [TxnEvent::Terminated { key: key.into() }]);
    assert!(l.is_empty());
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn respond_after_final_is_refused() {
    let t0 = Instant::now();
    let mut l = layer();
    let (key, req) = new_request(&mut l, "UDP", t0);
    l.respond(&key, reply(&req, 403, Some("r")), t0).unwrap();
    assert!(matches!(l.respond(&key, reply(&req, 200, Some("r")), t0), Err(TxnError::InvalidState(_))));
    assert!(matches!(l.respond(&key, reply(&req, 100, None), t0), Err(TxnError::InvalidState(_))));
    assert_eq!(summary(&drain_tx(&mut l)), ["403"]);
}

#[test]
fn same_branch_other_method_is_another_transaction() {
    let t0 = Instant::now();
    let mut l = layer();
    let (key, _) = new_request(&mut l, "UDP", t0);
    match l.on_request(request("OPTIONS", BR, "UDP"), udp(), t0) {
        RequestEvent::New { key: k, .. } => assert_ne!(k, key),
        e => panic!("{e:?}"),
    }
    assert_eq!(l.len(), 2);
}
