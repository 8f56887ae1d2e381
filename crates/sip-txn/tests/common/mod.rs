//! Shared helpers of the integration tests: message text, peers, virtual
//! time, and draining the layer's queues.
#![allow(dead_code)]

use bytes::Bytes;
use sip_msg::{HeaderName, Limits, Message, parse_datagram};
use sip_txn::{Config, Peer, Transmit, Transport, TxnEvent, TxnLayer};
use std::time::{Duration, Instant};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn parse(s: &str) -> Message {
    parse_datagram(Bytes::from(s.to_owned()), &Limits::default()).expect("test message parses")
}

pub fn parse_bytes(b: &Bytes) -> Message {
    parse_datagram(b.clone(), &Limits::default()).expect("transmitted message parses")
}

pub fn udp() -> Peer {
    Peer::new(Transport::Udp, "192.0.2.10:5060".parse().unwrap())
}

pub fn tcp() -> Peer {
    Peer { transport: Transport::Tcp, addr: "192.0.2.10:5060".parse().unwrap(), conn: Some(7) }
}

pub fn layer() -> TxnLayer {
    TxnLayer::new(Config::default())
}

/// An INVITE as a UA would send it, with two Route headers.
pub fn invite(branch: &str, transport: &str) -> Message {
    parse(&format!(
        "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/{transport} pc33.atlanta.example.com:5060;branch={branch}\r\n\
Max-Forwards: 70\r\n\
Route: <sip:p1.example.com;lr>\r\n\
Route: <sip:p2.example.com;lr>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Timestamp: 54\r\n\
Content-Length: 0\r\n\r\n"
    ))
}

/// A non-INVITE request.
pub fn request(method: &str, branch: &str, transport: &str) -> Message {
    parse(&format!(
        "{method} sip:registrar.biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/{transport} bobspc.biloxi.example.com:5060;branch={branch}\r\n\
Max-Forwards: 70\r\n\
From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: 843817637684230@998sdasdh09\r\n\
CSeq: 1826 {method}\r\n\
Content-Length: 0\r\n\r\n"
    ))
}

/// A CANCEL for [`invite`].
pub fn cancel_for_invite(branch: &str) -> Message {
    parse(&format!(
        "CANCEL sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch={branch}\r\n\
Max-Forwards: 70\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 1 CANCEL\r\n\
Content-Length: 0\r\n\r\n"
    ))
}

/// An ACK for [`invite`] with a given branch and To tag.
pub fn ack_for_invite(branch: &str, to_tag: &str) -> Message {
    parse(&format!(
        "ACK sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch={branch}\r\n\
Max-Forwards: 70\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: Bob <sip:bob@biloxi.example.com>;tag={to_tag}\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 1 ACK\r\n\
Content-Length: 0\r\n\r\n"
    ))
}

/// The response a server would send to `req`.
pub fn reply(req: &Message, code: u16, to_tag: Option<&str>) -> Message {
    req.response(code, None, to_tag)
}

pub fn drain_tx(l: &mut TxnLayer) -> Vec<Transmit> {
    std::iter::from_fn(|| l.poll_transmit()).collect()
}

pub fn drain_ev(l: &mut TxnLayer) -> Vec<TxnEvent> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

/// The status codes (responses) or methods (requests) of transmits.
pub fn summary(tx: &[Transmit]) -> Vec<String> {
    tx.iter()
        .map(|t| {
            let m = parse_bytes(&t.data);
            match m.status() {
                Some(c) => c.to_string(),
                None => m.method().unwrap().to_string(),
            }
        })
        .collect()
}

/// Runs the timers from `from` to `to` in `step`s, recording (elapsed ms
/// since `t0`, summary) of everything transmitted.
pub fn run(l: &mut TxnLayer, t0: Instant, to: Duration) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    while let Some(at) = l.poll_timeout() {
        if at > t0 + to {
            break;
        }
        l.handle_timeout(at);
        for s in summary(&drain_tx(l)) {
            out.push(((at - t0).as_millis() as u64, s));
        }
    }
    out
}

/// The raw header values of `name` in `m`.
pub fn values(m: &Message, name: HeaderName) -> Vec<String> {
    m.headers.get_all(&name).map(|v| String::from_utf8_lossy(v).into_owned()).collect()
}
