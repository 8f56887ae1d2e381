//! Parser and serializer throughput on three realistic messages:
//! a REGISTER with RFC 8599 `pn-*` Contact parameters and a Digest
//! Authorization, an INVITE with SDP and compact header names, and the
//! 200 OK to the REGISTER.
//!
//! `cargo bench -p sip-msg --bench parse`

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sip_msg::{Limits, Message, parse_datagram};
use std::hint::black_box;

const REGISTER: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/TLS 198.51.100.23:52814;branch=z9hG4bK.QyWn6sA7l;rport;alias\r\n\
Max-Forwards: 70\r\n\
From: \"Alice Liddell\" <sip:alice@example.com>;tag=KpBz~oXe8\r\n\
To: \"Alice Liddell\" <sip:alice@example.com>\r\n\
Call-ID: 5XyG7uXBe6QpF4~oR2p8vQ\r\n\
CSeq: 21 REGISTER\r\n\
Contact: <sip:alice@198.51.100.23:52814;transport=tls;pn-provider=apns;pn-param=ABCD1234.com.example.voip;pn-prid=8d2a31c5e4b7f6a9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3>;+sip.instance=\"<urn:uuid:4bd9d7c2-9b1f-4c3e-8a0e-5d6f7a8b9c0d>\";+sip.pnsreg;expires=600\r\n\
Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"b7c9036dbf357f7683f054aea940e5a1f6e0b3b2\", uri=\"sip:example.com\", response=\"1d19580cd833064324a787ecc81b8d9b\", algorithm=MD5, cnonce=\"c0a8f3e2\", qop=auth, nc=00000001\r\n\
Supported: outbound, path, gruu\r\n\
Expires: 600\r\n\
Content-Length: 0\r\n\r\n";

const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport\r\n\
v: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKnashds8;received=203.0.113.5\r\n\
Max-Forwards: 69\r\n\
f: Alice <sip:alice@example.com>;tag=9fxced76sl\r\n\
t: Bob <sip:bob@example.com>\r\n\
i: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
m: <sip:alice@192.0.2.10:5060;ob>\r\n\
Record-Route: <sip:proxy.example.com;lr>\r\n\
k: timer, 100rel, replaces\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, UPDATE, PRACK\r\n\
c: application/sdp\r\n\
l: 301\r\n\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 9 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
m=video 51372 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\n";

fn parse(b: &'static [u8]) -> Message {
    parse_datagram(Bytes::from_static(b), &Limits::default()).unwrap()
}

fn ok_to_register() -> Vec<u8> {
    let req = parse(REGISTER);
    let mut r = req.response(200, None, Some("a6c85cf"));
    r.headers.push(
        sip_msg::HeaderName::Contact,
        Bytes::from_static(
            b"<sip:alice@198.51.100.23:52814;transport=tls;pn-provider=apns;pn-param=ABCD1234.com.example.voip;pn-prid=8d2a31c5e4b7f6a9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3>;expires=600",
        ),
    );
    r.headers.push(sip_msg::HeaderName::FeatureCaps, Bytes::from_static(b"*;+sip.pns=\"apns\";+sip.pnsreg=\"130\""));
    r.headers.push(
        sip_msg::HeaderName::Other(Bytes::from_static(b"Date")),
        Bytes::from_static(b"Sat, 13 Nov 2026 23:29:00 GMT"),
    );
    r.to_bytes().to_vec()
}

fn bench(c: &mut Criterion) {
    let ok = Box::leak(ok_to_register().into_boxed_slice());
    let msgs: [(&str, &'static [u8]); 3] =
        [("register_pn_digest", REGISTER), ("invite_sdp_compact", INVITE), ("ok_200_register", ok)];
    for (name, raw) in msgs {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(raw.len() as u64));
        // As the transport hands it over: a frozen BytesMut (shared,
        // reference-counted), so every zero-copy slice costs an atomic.
        let buf = bytes::BytesMut::from(raw).freeze();
        g.bench_function("parse", |b| b.iter(|| parse_datagram(black_box(buf.clone()), &Limits::default()).unwrap()));
        g.bench_function("parse+validate", |b| {
            b.iter(|| {
                let m = parse_datagram(black_box(buf.clone()), &Limits::default()).unwrap();
                m.validate().unwrap();
                m
            })
        });
        let m = parse_datagram(buf.clone(), &Limits::default()).unwrap();
        m.validate().unwrap();
        g.bench_function("serialize", |b| b.iter(|| black_box(&m).to_bytes()));
        g.bench_function("top_via+contacts", |b| {
            b.iter(|| {
                let m = black_box(&m);
                (m.top_via().unwrap(), m.contacts().unwrap())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
