//! Non-INVITE client transaction: Timers E, F, K, reliable vs unreliable,
//! absorption of response retransmissions.

mod common;
use common::*;
use sip_msg::Method;
use sip_txn::{ClientKey, ResponseEvent, TxnError, TxnEvent, TxnState};
use std::time::Instant;

const BR: &str = "z9hG4bKreg1";

#[test]
fn timer_e_doubles_to_t2_until_timer_f() {
    let t0 = Instant::now();
    let mut l = layer();
    let key = l.send_request(request("REGISTER", BR, "UDP"), udp(), t0).unwrap();
    assert_eq!(key, ClientKey::new(BR, Method::Register));
    assert_eq!(summary(&drain_tx(&mut l)), ["REGISTER"]);
    assert_eq!(l.client_state(&key), Some(TxnState::Trying));
    let at: Vec<u64> = run(&mut l, t0, ms(60_000)).into_iter().map(|(t, _)| t).collect();
    assert_eq!(at, [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
    assert_eq!(drain_ev(&mut l), [TxnEvent::Timeout { key: key.clone() }, TxnEvent::Terminated { key: key.into() }]);
    assert!(l.is_empty());
}

#[test]
fn timer_e_is_t2_in_proceeding() {
    let t0 = Instant::now();
    let mut l = layer();
    let req = request("OPTIONS", BR, "UDP");
    let key = l.send_request(req.clone(), udp(), t0).unwrap();
    drain_tx(&mut l);
    l.handle_timeout(t0 + ms(500));
    assert_eq!(drain_tx(&mut l).len(), 1);
    let ev = l.on_response(reply(&req, 100, None), udp(), t0 + ms(600));
    assert!(matches!(ev, ResponseEvent::Response { .. }));
    assert_eq!(l.client_state(&key), Some(TxnState::Proceeding));
    let at: Vec<u64> = run(&mut l, t0, ms(60_000)).into_iter().map(|(t, _)| t).collect();
    // The E armed in Trying (at 1500) fires, then every T2.
    assert_eq!(at, [1500, 5500, 9500, 13500, 17500, 21500, 25500, 29500]);
    // Timer F still applies in Proceeding.
    assert_eq!(drain_ev(&mut l)[0], TxnEvent::Timeout { key });
}

#[test]
fn final_response_then_timer_k_absorbs_retransmissions() {
    let t0 = Instant::now();
    let mut l = layer();
    let req = request("REGISTER", BR, "UDP");
    let key = l.send_request(req.clone(), udp(), t0).unwrap();
    drain_tx(&mut l);
    let ok = reply(&req, 200, Some("x"));
    assert!(matches!(l.on_response(ok.clone(), udp(), t0 + ms(100)), ResponseEvent::Response { .. }));
    assert_eq!(l.client_state(&key), Some(TxnState::Completed));
    assert!(matches!(l.on_response(ok.clone(), udp(), t0 + ms(200)), ResponseEvent::Absorbed { .. }));
    assert!(matches!(l.on_response(reply(&req, 100, None), udp(), t0 + ms(300)), ResponseEvent::Absorbed { .. }));
    // No retransmission in Completed, and K = T4 = 5 s.
    assert!(run(&mut l, t0, ms(5_099)).is_empty());
    assert_eq!(l.client_state(&key), Some(TxnState::Completed));
    l.handle_timeout(t0 + ms(5_100));
    assert_eq!(drain_ev(&mut l), [TxnEvent::Terminated { key: key.into() }]);
    assert!(l.is_empty());
}

#[test]
fn reliable_has_no_timer_e_and_zero_timer_k() {
    let t0 = Instant::now();
    let mut l = layer();
    let req = request("REGISTER", BR, "TCP");
    let key = l.send_request(req.clone(), tcp(), t0).unwrap();
    drain_tx(&mut l);
    assert!(run(&mut l, t0, ms(31_999)).is_empty());
    assert!(matches!(
        l.on_response(reply(&req, 401, Some("x")), tcp(), t0 + ms(31_000)),
        ResponseEvent::Response { .. }
    ));
    assert_eq!(drain_ev(&mut l), [TxnEvent::Terminated { key: key.into() }]);
    assert!(l.is_empty());
    // A retransmission after K = 0 is stray.
    assert!(matches!(l.on_response(reply(&req, 401, Some("x")), tcp(), t0 + ms(31_001)), ResponseEvent::Stray { .. }));
}

#[test]
fn reliable_timer_f() {
    let t0 = Instant::now();
    let mut l = layer();
    let key = l.send_request(request("MESSAGE", BR, "TCP"), tcp(), t0).unwrap();
    l.handle_timeout(t0 + ms(32_000));
    assert_eq!(drain_ev(&mut l)[0], TxnEvent::Timeout { key });
}

#[test]
fn send_request_errors() {
    let t0 = Instant::now();
    let mut l = layer();
    l.send_request(request("OPTIONS", BR, "UDP"), udp(), t0).unwrap();
    assert_eq!(l.send_request(request("OPTIONS", BR, "UDP"), udp(), t0), Err(TxnError::Exists));
    assert_eq!(l.send_request(ack_for_invite("z9hG4bKa", "t"), udp(), t0), Err(TxnError::AckIsNotATransaction));
    let resp = reply(&request("OPTIONS", "z9hG4bKr", "UDP"), 200, None);
    assert_eq!(l.send_request(resp, udp(), t0), Err(TxnError::WrongKind));
    let no_branch = parse("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCSeq: 1 OPTIONS\r\n\r\n");
    assert!(matches!(l.send_request(no_branch, udp(), t0), Err(TxnError::Malformed(_))));
    // An INVITE needs what its ACK and CANCEL will copy.
    let bare = parse("INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKi\r\nCSeq: 1 INVITE\r\n\r\n");
    assert!(matches!(l.send_request(bare, udp(), t0), Err(TxnError::Malformed(_))));
    assert_eq!(l.len(), 1);
}
