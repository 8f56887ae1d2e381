//! Inputs that once broke an invariant (found by the fuzz targets in
//! `fuzz/`, by the property tests, or by review), kept as regression tests.
//! Each runs the same invariant checks as the fuzzer.

mod common;

use bytes::Bytes;
use common::invariants::{self, Event, frame_events};
use sip_msg::{Limits, SipUri, Uri, parse_datagram};

fn tight() -> Limits {
    Limits { max_message: 1024, max_headers: 12, max_header_len: 128 }
}

fn check(data: &[u8]) {
    invariants::check_datagram(data, &Limits::default());
    invariants::check_datagram(data, &tight());
}

fn sip(s: &str) -> SipUri {
    Uri::parse_bytes(s.to_string()).unwrap().as_sip().unwrap().clone()
}

/// fuzz parse_datagram: a URI with a repeated parameter name was not
/// equivalent to itself (the second `tag` was compared with the first).
#[test]
fn uri_repeated_param_is_equivalent_to_itself() {
    check(b"V s:u SIP/2.0\no:sip:m;tag=;tag");
    let u = sip("sip:m;tag=;tag");
    assert!(u.equivalent(&u));
    assert!(u.equivalent(&sip("sip:m;tag=")));
}

/// proptest roundtrip: an addr-spec whose quoted parameter value holds a
/// '<' was taken for a name-addr (the '<' inside the quotes started it).
#[test]
fn addr_spec_with_angle_in_quoted_param() {
    let msg = b"OPTIONS sip:a@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
From: <sip:b@example.com>;tag=1\r\n\
To: <sip:a@example.com>\r\n\
Call-ID: c1\r\n\
CSeq: 1 OPTIONS\r\n\
Contact: tel:+9-8-41 ;q=0.5;f=\" NJ<y\", <sip:c@example.com>\r\n\
Content-Length: 0\r\n\r\n";
    check(msg);
    let m = parse_datagram(Bytes::from_static(msg), &Limits::default()).unwrap();
    m.validate().unwrap();
    assert_eq!(m.contacts().unwrap().len(), 2);
}

/// proptest frame_stream_any_split: a folded Content-Length, which the
/// datagram parser reads, made the stream framer close the connection.
#[test]
fn folded_content_length_frames() {
    let msg = b"OPTIONS sip:a@example.com SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n\
From: <sip:b@example.com>;tag=1\r\n\
To: <sip:a@example.com>\r\n\
Call-ID: c1\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length:\r\n 3\r\n\r\nabcOPTIONS";
    check(msg);
    let len = msg.len() - "OPTIONS".len();
    assert_eq!(frame_events(msg, &[], &Limits::default()), vec![Event::Message(0, len)]);
    let m = sip_msg::parse_framed(Bytes::copy_from_slice(&msg[..len]), &Limits::default()).unwrap();
    assert_eq!(&m.body[..], b"abc");
}

/// Review: a double-CRLF ping split over two reads was seen as two plain
/// keep-alives, so the pong depended on TCP segmentation.
#[test]
fn ping_split_over_reads() {
    let stream = b"\r\n\r\n";
    for cut in 0..=stream.len() {
        assert_eq!(frame_events(stream, &[cut], &Limits::default()), vec![Event::Ping], "cut at {cut}");
    }
    let every: Vec<usize> = (1..4).collect();
    assert_eq!(frame_events(b"\r\n\r\n\r\n\r\n", &every, &Limits::default()), vec![Event::Ping, Event::Ping]);
}

/// Review: the Via sent-by had all white space removed, so
/// `host junk` read as the host `hostjunk` and `50 60` as port 5060.
#[test]
fn via_sent_by_white_space() {
    let via = |s: &'static str| sip_msg::Via::parse(&Bytes::from_static(s.as_bytes()));
    assert!(via("SIP/2.0/UDP host junk;branch=z9hG4bKx").is_err());
    assert!(via("SIP/2.0/UDP 192.0.2.1:50 60").is_err());
    let v = via("SIP/2.0/UDP  host.example.com : 5060 ;branch=z9hG4bKx").unwrap();
    assert_eq!(v.port, Some(5060));
}

/// Review: `rport=70000` was truncated to 4464.
#[test]
fn rport_out_of_range() {
    let v = sip_msg::Via::parse(&Bytes::from_static(b"SIP/2.0/UDP h;rport=70000")).unwrap();
    assert_eq!(v.rport(), Some(None));
    let v = sip_msg::Via::parse(&Bytes::from_static(b"SIP/2.0/UDP h;rport=5060")).unwrap();
    assert_eq!(v.rport(), Some(Some(5060)));
}

/// Review: IPv4 addresses with leading zeros (allowed by RFC 3261's
/// `1*3DIGIT`) were refused by `std`'s parser.
#[test]
fn ipv4_leading_zeros() {
    let u = sip("sip:a@192.0.002.010:5060");
    assert_eq!(u.host, sip_msg::Host::V4(std::net::Ipv4Addr::new(192, 0, 2, 10)));
    assert!(Uri::parse_bytes("sip:a@192.0.2.256").is_err());
}

/// Review: a CR inside a header line was kept in the value and forwarded;
/// a peer that ends lines at a bare CR would see a different header.
#[test]
fn bare_cr_in_header_section() {
    let msg = b"OPTIONS sip:a@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
From: <sip:b@example.com>;tag=1\r\n\
To: <sip:a@example.com>\r\n\
Call-ID: c1\r\n\
CSeq: 1 OPTIONS\r\n\
Subject: hello\rRoute: <sip:evil.example.com;lr>\r\n\
Content-Length: 0\r\n\r\n";
    check(msg);
    let f = parse_datagram(Bytes::from_static(msg), &Limits::default()).unwrap_err();
    assert_eq!(f.error.status(), 400);
    assert!(f.partial.is_some(), "answered with 400");
    // In the start line too (not a 505 for "SIP/2.0\r").
    let msg = b"OPTIONS sip:a@example.com SIP/2.0\r\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\r\n";
    check(msg);
    let f = parse_datagram(Bytes::from_static(msg), &Limits::default()).unwrap_err();
    assert_eq!(f.error.status(), 400);
    assert!(f.partial.is_some());
}

/// Review: `validate` said (in its doc) that an unknown method with a
/// mismatched CSeq is a 501, but returned a 400 (RFC 4475 mismatch02).
#[test]
fn unknown_method_cseq_mismatch_is_501() {
    let msg = b"FOO sip:a@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
From: <sip:b@example.com>;tag=1\r\n\
To: <sip:a@example.com>\r\n\
Call-ID: c1\r\n\
CSeq: 1 BAR\r\n\
Content-Length: 0\r\n\r\n";
    check(msg);
    let m = parse_datagram(Bytes::from_static(msg), &Limits::default()).unwrap();
    assert_eq!(m.validate().unwrap_err().status(), 501);
}

/// Review: URI parameter names were compared as received, so `;%6C%72`
/// was not `;lr` and `n%61me=x` did not clash with `name=y` (RFC 4475 esc01).
#[test]
fn escaped_uri_param_names_compare_unescaped() {
    assert!(!sip("sip:a@b;n%61me=x").equivalent(&sip("sip:a@b;name=y")));
    assert!(sip("sip:a@b;%6C%72").equivalent(&sip("sip:a@b;lr")));
    assert!(!sip("sip:a@b;%74ransport=tcp").equivalent(&sip("sip:a@b;transport=udp")));
}

/// Review: the public slice-taking parsers did pointer arithmetic on a
/// slice that might not lie in `src` (overflow panic in debug, garbage in
/// release); such a slice is now copied.
#[test]
fn foreign_slices_are_copied() {
    let src = Bytes::from_static(b"x");
    let p = sip_msg::params::parse_header_params(&src, b";tag=1;lr").unwrap();
    assert_eq!(p.value("tag").unwrap(), "1");
    let p = sip_msg::params::parse_uri_params(&src, b";lr;x=1").unwrap();
    assert_eq!(p.value("x").unwrap(), "1");
    assert!(sip_msg::params::parse_uri_params(&src, b"lr").is_err(), "must start with ';'");
}

/// Review: a 513 (message, header field or header count over the limit)
/// carried no `partial`, so a request over a limit could not be answered.
#[test]
fn too_large_request_is_answerable() {
    let msg = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
From: <sip:b@example.com>;tag=1\r\n\
To: <sip:b@example.com>\r\n\
Call-ID: c1\r\n\
CSeq: 1 REGISTER\r\n\
X-Big: 01234567890123456789012345678901234567890123456789\r\n\
Content-Length: 0\r\n\r\n";
    let l = Limits { max_header_len: 50, ..Limits::default() };
    let f = parse_datagram(Bytes::from_static(msg), &l).unwrap_err();
    assert_eq!(f.error.status(), 513);
    let p = f.partial.unwrap();
    let r = sip_msg::response_from_headers(&p.headers, 513, None, None);
    let wire = r.to_bytes();
    let back = parse_datagram(wire, &Limits::default()).unwrap();
    back.validate().unwrap();
    assert_eq!(back.status(), Some(513));
}
