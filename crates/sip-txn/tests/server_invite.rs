//! INVITE server transaction: 100 Trying delay, Timers G, H, I, L,
//! retransmission absorption per state, RFC 6026 Accepted, CANCEL and ACK
//! matching, RFC 2543 fallback matching.

mod common;
use common::*;
use sip_msg::{HeaderName, Message, Method};
use sip_txn::{Config, RequestEvent, ServerKey, TxnError, TxnEvent, TxnLayer, TxnState};
use std::time::Instant;

const BR: &str = "z9hG4bK74bf9";

fn new_invite(l: &mut TxnLayer, inv: &Message, t: Instant) -> ServerKey {
    match l.on_request(inv.clone(), udp(), t) {
        RequestEvent::New { key, msg, from } => {
            assert_eq!(&msg, inv);
            assert_eq!(from, udp());
            assert_eq!(key.method(), &Method::Invite);
            key
        }
        other => panic!("expected New, got {other:?}"),
    }
}

fn is_retransmission(ev: RequestEvent, key: &ServerKey) -> bool {
    matches!(ev, RequestEvent::Retransmission { key: k } if &k == key)
}

#[test]
fn trying_is_sent_at_200ms_and_resent_on_retransmission() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "UDP");
    let key = new_invite(&mut l, &inv, t0);
    assert_eq!(l.server_state(&key), Some(TxnState::Proceeding));
    assert!(drain_tx(&mut l).is_empty());
    // A retransmission before any response re-sends nothing.
    assert!(is_retransmission(l.on_request(inv.clone(), udp(), t0 + ms(100)), &key));
    assert!(drain_tx(&mut l).is_empty());
    assert_eq!(l.poll_timeout(), Some(t0 + ms(200)));
    l.handle_timeout(t0 + ms(199));
    assert!(drain_tx(&mut l).is_empty());
    l.handle_timeout(t0 + ms(200));
    let tx = drain_tx(&mut l);
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].to, udp());
    let trying = parse_bytes(&tx[0].data);
    assert_eq!(trying.status(), Some(100));
    for h in
        [HeaderName::Via, HeaderName::From, HeaderName::To, HeaderName::CallId, HeaderName::CSeq, HeaderName::Timestamp]
    {
        assert_eq!(values(&trying, h.clone()), values(&inv, h));
    }
    assert!(values(&trying, HeaderName::Route).is_empty());
    // Now a retransmitted INVITE gets the 100 again.
    assert!(is_retransmission(l.on_request(inv, udp(), t0 + ms(500)), &key));
    assert_eq!(summary(&drain_tx(&mut l)), ["100"]);
}

#[test]
fn no_automatic_trying_when_the_tu_answers_first() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "UDP");
    let key = new_invite(&mut l, &inv, t0);
    l.respond(&key, reply(&inv, 180, Some("b")), t0 + ms(50)).unwrap();
    assert_eq!(summary(&drain_tx(&mut l)), ["180"]);
    assert!(run(&mut l, t0, ms(1_000)).is_empty());
    // The last provisional is what a retransmission gets.
    l.on_request(inv.clone(), udp(), t0 + ms(500));
    assert_eq!(summary(&drain_tx(&mut l)), ["180"]);
    l.respond(&key, reply(&inv, 183, Some("b")), t0 + ms(600)).unwrap();
    drain_tx(&mut l);
    l.on_request(inv, udp(), t0 + ms(1500));
    assert_eq!(summary(&drain_tx(&mut l)), ["183"]);
}

#[test]
fn zero_trying_delay_sends_100_immediately() {
    let t0 = Instant::now();
    let mut l = TxnLayer::new(Config { trying_delay: ms(0), ..Config::default() });
    let inv = invite(BR, "UDP");
    new_invite(&mut l, &inv, t0);
    assert_eq!(summary(&drain_tx(&mut l)), ["100"]);
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn non_2xx_timer_g_until_timer_h() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "UDP");
    let key = new_invite(&mut l, &inv, t0);
    l.respond(&key, reply(&inv, 486, Some("b")), t0).unwrap();
    assert_eq!(summary(&drain_tx(&mut l)), ["486"]);
    assert_eq!(l.server_state(&key), Some(TxnState::Completed));
    // A retransmitted INVITE gets the final response again.
    assert!(is_retransmission(l.on_request(inv.clone(), udp(), t0 + ms(100)), &key));
    assert_eq!(summary(&drain_tx(&mut l)), ["486"]);
    let sent = run(&mut l, t0, ms(40_000));
    let at: Vec<u64> = sent.iter().map(|(t, _)| *t).collect();
    assert_eq!(at, [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
    assert!(sent.iter().all(|(_, s)| s == "486"));
    assert_eq!(drain_ev(&mut l), [TxnEvent::AckTimeout { key: key.clone() }, TxnEvent::Terminated { key: key.into() }]);
    assert!(l.is_empty());
}

#[test]
fn ack_confirms_and_timer_i_ends() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "UDP");
    let key = new_invite(&mut l, &inv, t0);
    l.respond(&key, reply(&inv, 404, Some("b")), t0).unwrap();
    drain_tx(&mut l);
    l.handle_timeout(t0 + ms(500));
    assert_eq!(summary(&drain_tx(&mut l)), ["404"]);
    let ack = ack_for_invite(BR, "b");
    assert!(matches!(l.on_request(ack.clone(), udp(), t0 + ms(600)), RequestEvent::AckAbsorbed { key: k } if k == key));
    assert_eq!(l.server_state(&key), Some(TxnState::Confirmed));
    // Confirmed absorbs ACK and INVITE retransmissions silently; G stopped.
    assert!(matches!(l.on_request(ack, udp(), t0 + ms(700)), RequestEvent::AckAbsorbed { .. }));
    assert!(is_retransmission(l.on_request(inv, udp(), t0 + ms(800)), &key));
    assert!(drain_tx(&mut l).is_empty());
    // Timer I = T4 from the ACK.
    assert!(run(&mut l, t0, ms(5_599)).is_empty());
    assert_eq!(l.server_state(&key), Some(TxnState::Confirmed));
    l.handle_timeout(t0 + ms(5_600));
    assert_eq!(drain_ev(&mut l), [TxnEvent::Terminated { key: key.into() }]);
    assert!(l.is_empty());
}

#[test]
fn reliable_no_timer_g_and_zero_timer_i() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "TCP");
    let key = match l.on_request(inv.clone(), tcp(), t0) {
        RequestEvent::New { key, .. } => key,
        e => panic!("{e:?}"),
    };
    l.respond(&key, reply(&inv, 603, Some("b")), t0).unwrap();
    let tx = drain_tx(&mut l);
    assert_eq!(tx[0].to, tcp());
    assert!(run(&mut l, t0, ms(1_000)).is_empty());
    let ack = ack_for_invite(BR, "b");
    let ack = parse(&String::from_utf8_lossy(&ack.to_bytes()).replace("/UDP", "/TCP"));
    assert!(matches!(l.on_request(ack, tcp(), t0 + ms(1_000)), RequestEvent::AckAbsorbed { .. }));
    assert_eq!(drain_ev(&mut l), [TxnEvent::Terminated { key: key.into() }]);
}

#[test]
fn reliable_timer_h_still_applies() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "TCP");
    let RequestEvent::New { key, .. } = l.on_request(inv.clone(), tcp(), t0) else { panic!() };
    l.respond(&key, reply(&inv, 480, Some("b")), t0).unwrap();
    drain_tx(&mut l);
    assert!(run(&mut l, t0, ms(40_000)).is_empty());
    assert_eq!(drain_ev(&mut l)[0], TxnEvent::AckTimeout { key });
}

#[test]
fn accepted_absorbs_invites_passes_acks_and_ends_on_timer_l() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "UDP");
    let key = new_invite(&mut l, &inv, t0);
    let ok = reply(&inv, 200, Some("b"));
    l.respond(&key, ok.clone(), t0 + ms(100)).unwrap();
    assert_eq!(summary(&drain_tx(&mut l)), ["200"]);
    assert_eq!(l.server_state(&key), Some(TxnState::Accepted));
    // No retransmission of the 2xx by the transaction, no automatic 100.
    assert!(run(&mut l, t0, ms(10_000)).is_empty());
    // INVITE retransmissions are absorbed and not re-answered.
    assert!(is_retransmission(l.on_request(inv.clone(), udp(), t0 + ms(600)), &key));
    assert!(drain_tx(&mut l).is_empty());
    // The TU retransmits the 2xx through the transaction.
    l.respond(&key, ok.clone(), t0 + ms(600)).unwrap();
    assert_eq!(summary(&drain_tx(&mut l)), ["200"]);
    assert!(matches!(l.respond(&key, reply(&inv, 500, Some("b")), t0), Err(TxnError::InvalidState(_))));
    assert!(matches!(l.respond(&key, reply(&inv, 180, Some("b")), t0), Err(TxnError::InvalidState(_))));
    // The ACK for the 2xx (new branch) is the TU's, outside any transaction.
    let ack = ack_for_invite("z9hG4bKack2xx", "b");
    assert!(matches!(l.on_request(ack, udp(), t0 + ms(700)), RequestEvent::Ack { invite: None, .. }));
    // An ACK that does match the transaction in Accepted also goes to the TU.
    let ack = ack_for_invite(BR, "b");
    assert!(matches!(l.on_request(ack, udp(), t0 + ms(700)), RequestEvent::Ack { invite: Some(k), .. } if k == key));
    // Timer L = 64*T1 from the 2xx.
    l.handle_timeout(t0 + ms(32_099));
    assert_eq!(l.len(), 1);
    l.handle_timeout(t0 + ms(32_100));
    assert_eq!(drain_ev(&mut l), [TxnEvent::Terminated { key: key.clone().into() }]);
    assert_eq!(l.respond(&key, ok, t0 + ms(33_000)), Err(TxnError::NoSuchTransaction));
}

#[test]
fn respond_errors() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "UDP");
    let key = new_invite(&mut l, &inv, t0);
    assert_eq!(l.respond(&key, inv.clone(), t0), Err(TxnError::WrongKind));
    l.respond(&key, reply(&inv, 404, Some("b")), t0).unwrap();
    assert!(matches!(l.respond(&key, reply(&inv, 404, Some("b")), t0), Err(TxnError::InvalidState(_))));
    assert!(matches!(l.respond(&key, reply(&inv, 200, Some("b")), t0), Err(TxnError::InvalidState(_))));
}

#[test]
fn cancel_matches_its_invite() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = invite(BR, "UDP");
    let key = new_invite(&mut l, &inv, t0);
    l.handle_timeout(t0 + ms(200));
    let cancel = cancel_for_invite(BR);
    let (ck, target) = match l.on_request(cancel.clone(), udp(), t0 + ms(300)) {
        RequestEvent::Cancel { key, invite, .. } => (key, invite),
        e => panic!("{e:?}"),
    };
    assert_eq!(ck.method(), &Method::Cancel);
    assert_eq!(target, Some(key.clone()));
    assert_ne!(ck, key);
    assert_eq!(l.len(), 2);
    // The TU answers the CANCEL and the INVITE separately.
    l.respond(&ck, reply(&cancel, 200, Some("b")), t0 + ms(301)).unwrap();
    l.respond(&key, reply(&inv, 487, Some("b")), t0 + ms(301)).unwrap();
    let tx = drain_tx(&mut l);
    assert_eq!(summary(&tx), ["100", "200", "487"]);
    assert_eq!(parse_bytes(&tx[1].data).cseq().unwrap().method, Method::Cancel);
    // A retransmitted CANCEL hits the CANCEL transaction.
    assert!(is_retransmission(l.on_request(cancel, udp(), t0 + ms(800)), &ck));
    assert_eq!(summary(&drain_tx(&mut l)), ["200"]);
}

#[test]
fn cancel_without_invite() {
    let t0 = Instant::now();
    let mut l = layer();
    match l.on_request(cancel_for_invite("z9hG4bKnoinvite"), udp(), t0) {
        RequestEvent::Cancel { invite: None, key, .. } => assert_eq!(l.server_state(&key), Some(TxnState::Trying)),
        e => panic!("{e:?}"),
    }
}

#[test]
fn same_branch_other_sent_by_is_another_transaction() {
    let t0 = Instant::now();
    let mut l = layer();
    let a = invite(BR, "UDP");
    let b = parse(
        &String::from_utf8_lossy(&a.to_bytes())
            .replace("pc33.atlanta.example.com:5060", "pc34.atlanta.example.com:5060"),
    );
    let ka = new_invite(&mut l, &a, t0);
    let kb = new_invite(&mut l, &b, t0);
    assert_ne!(ka, kb);
    // sent-by host compares case-insensitively.
    let c = parse(
        &String::from_utf8_lossy(&a.to_bytes())
            .replace("pc33.atlanta.example.com:5060", "PC33.Atlanta.example.com:5060"),
    );
    assert!(is_retransmission(l.on_request(c, udp(), t0), &ka));
}

fn rfc2543_invite(to: &str) -> Message {
    parse(&format!(
        "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP old.example.com:5060\r\n\
From: <sip:carol@example.com>;tag=c1\r\n\
To: {to}\r\n\
Call-ID: old-1@example.com\r\n\
CSeq: 7 INVITE\r\n\
Content-Length: 0\r\n\r\n"
    ))
}

fn rfc2543_ack(to: &str) -> Message {
    parse(&format!(
        "ACK sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP old.example.com:5060\r\n\
From: <sip:carol@example.com>;tag=c1\r\n\
To: {to}\r\n\
Call-ID: old-1@example.com\r\n\
CSeq: 7 ACK\r\n\
Content-Length: 0\r\n\r\n"
    ))
}

#[test]
fn rfc2543_matching() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = rfc2543_invite("<sip:bob@biloxi.example.com>");
    let key = new_invite(&mut l, &inv, t0);
    assert!(key.is_rfc2543());
    assert_eq!(key.branch(), None);
    assert!(is_retransmission(l.on_request(inv.clone(), udp(), t0 + ms(100)), &key));
    // Another CSeq is another transaction.
    let other = parse(&String::from_utf8_lossy(&inv.to_bytes()).replace("CSeq: 7", "CSeq: 8"));
    assert!(matches!(l.on_request(other, udp(), t0), RequestEvent::New { .. }));
    l.respond(&key, reply(&inv, 486, Some("srv")), t0 + ms(200)).unwrap();
    // An ACK with another To tag is not for this transaction.
    let wrong = rfc2543_ack("<sip:bob@biloxi.example.com>;tag=other");
    assert!(matches!(l.on_request(wrong, udp(), t0 + ms(300)), RequestEvent::Ack { invite: None, .. }));
    let ack = rfc2543_ack("<sip:bob@biloxi.example.com>;tag=srv");
    assert!(matches!(l.on_request(ack, udp(), t0 + ms(300)), RequestEvent::AckAbsorbed { key: k } if k == key));
    assert_eq!(l.server_state(&key), Some(TxnState::Confirmed));
}

#[test]
fn rfc2543_reinvite_and_cancel() {
    let t0 = Instant::now();
    let mut l = layer();
    let inv = rfc2543_invite("<sip:bob@biloxi.example.com>;tag=dlg");
    let key = new_invite(&mut l, &inv, t0);
    let cancel = parse(&String::from_utf8_lossy(&inv.to_bytes()).replace("INVITE", "CANCEL"));
    assert!(matches!(l.on_request(cancel, udp(), t0), RequestEvent::Cancel { invite: Some(k), .. } if k == key));
    l.respond(&key, reply(&inv, 488, None), t0).unwrap();
    let ack = rfc2543_ack("<sip:bob@biloxi.example.com>;tag=dlg");
    assert!(matches!(l.on_request(ack, udp(), t0), RequestEvent::AckAbsorbed { .. }));
}

#[test]
fn invalid_requests_create_nothing() {
    let t0 = Instant::now();
    let mut l = layer();
    let no_cseq = parse("INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n");
    assert!(matches!(l.on_request(no_cseq, udp(), t0), RequestEvent::Invalid { .. }));
    let no_via = parse("OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n");
    assert!(matches!(l.on_request(no_via, udp(), t0), RequestEvent::Invalid { .. }));
    let response = reply(&invite(BR, "UDP"), 200, None);
    assert!(matches!(l.on_request(response, udp(), t0), RequestEvent::Invalid { .. }));
    assert!(l.is_empty());
}
