//! RFC 5118 IPv6 torture messages.
//!
//! `wire/*.sip` (CRLF, send-ready) are checked against INDEX.md. The archive
//! `*.dat` files have bare LF line ends; the parser takes a bare LF as a line
//! end, so each must give the same verdict and the same headers as its wire
//! twin, except where the archive bytes themselves differ:
//!
//! - `ipv6-in-sdp.dat` (Content-Length 268, body 242) and `mult-ip-in-sdp.dat`
//!   (181 for 180): Content-Length larger than the datagram is a 400, the
//!   same rule as RFC 4475 clerr. The wire copies have recounted lengths.
//! - `ipv6-bug-abnf-3-colons.dat` and `ipv6-correct-abnf-2-colons.dat` end
//!   without the empty line (an artefact of the RFC's text): a datagram must
//!   hold the end of its header section, so both are 400s as datagrams. The
//!   first is a 400 for its R-URI anyway (the start line is checked first);
//!   the second parses as its wire twin once its empty line is restored.

mod common;

use bytes::Bytes;
use common::invariants;
use sip_msg::name_addr::Contact;
use sip_msg::{HeaderName, Host, Limits, Message, ParseFailure, parse_datagram};
use std::net::{Ipv4Addr, Ipv6Addr};

const NAMES: [&str; 12] = [
    "ipv4-mapped-ipv6",
    "ipv6-bad",
    "ipv6-bug-abnf-3-colons",
    "ipv6-correct-abnf-2-colons",
    "ipv6-good",
    "ipv6-in-sdp",
    "mult-ip-in-header",
    "mult-ip-in-sdp",
    "port-ambiguous",
    "port-unambiguous",
    "via-received-param-no-delim",
    "via-received-param-with-delim",
];

fn v6(s: &str) -> Host {
    Host::V6(s.parse::<Ipv6Addr>().unwrap())
}

fn parse(dir: &str, file: &str) -> Result<Message, ParseFailure> {
    let bytes = common::read(dir, file);
    invariants::check_datagram(&bytes, &Limits::default());
    parse_datagram(Bytes::from(bytes), &Limits::default()).and_then(|m| match m.validate() {
        Ok(()) => Ok(m),
        Err(e) => Err(ParseFailure { error: e, partial: None }),
    })
}

fn wire(name: &str) -> Result<Message, ParseFailure> {
    parse("rfc5118/wire", &format!("{name}.sip"))
}

fn ok(name: &str) -> Message {
    wire(name).unwrap_or_else(|f| panic!("{name}: {}", f.error))
}

fn ruri_host_port(m: &Message) -> (Host, Option<u16>) {
    let u = m.uri().unwrap().as_sip().unwrap();
    (u.host.clone(), u.port)
}

#[test]
fn sha256sums_match() {
    let mut dat = common::check_sha256sums("rfc5118");
    let mut sip = common::check_sha256sums("rfc5118/wire");
    dat.sort();
    sip.sort();
    let expect: Vec<String> = NAMES.iter().map(|n| format!("{n}.dat")).collect();
    assert_eq!(dat, expect);
    let expect: Vec<String> = NAMES.iter().map(|n| format!("{n}.sip")).collect();
    assert_eq!(sip, expect);
}

#[test]
fn ipv6_good() {
    let m = ok("ipv6-good");
    assert_eq!(ruri_host_port(&m), (v6("2001:db8::10"), None));
    assert_eq!(m.top_via().unwrap().host, v6("2001:db8::9:1"));
    let Contact::Addr(c) = &m.contacts().unwrap()[0] else { panic!() };
    assert_eq!(c.uri.as_sip().unwrap().host, v6("2001:db8::1"));
}

#[test]
fn ipv6_bad() {
    // sip:2001:db8::10 with no brackets: 400, and answerable.
    let f = wire("ipv6-bad").unwrap_err();
    assert_eq!(f.error.status(), 400);
    let p = f.partial.expect("a request: answered with 400");
    assert!(p.headers.contains(&HeaderName::Via) && p.headers.contains(&HeaderName::CSeq));
}

#[test]
fn port_ambiguous() {
    // [2001:db8::10:5070] is one address; 5070 is never the port.
    let m = ok("port-ambiguous");
    assert_eq!(ruri_host_port(&m), (v6("2001:db8::10:5070"), None));
}

#[test]
fn port_unambiguous() {
    let m = ok("port-unambiguous");
    assert_eq!(ruri_host_port(&m), (v6("2001:db8::10"), Some(5070)));
}

#[test]
fn via_received_with_and_without_brackets() {
    let with = ok("via-received-param-with-delim").top_via().unwrap();
    let without = ok("via-received-param-no-delim").top_via().unwrap();
    assert_eq!(with.received().unwrap(), "[2001:db8::9:255]");
    assert_eq!(without.received().unwrap(), "2001:db8::9:255");
    // Both name the same address.
    let ip = |b: &Bytes| {
        let s = std::str::from_utf8(b).unwrap();
        s.trim_start_matches('[').trim_end_matches(']').parse::<Ipv6Addr>().unwrap()
    };
    assert_eq!(ip(with.received().unwrap()), ip(without.received().unwrap()));
    assert_eq!(with.branch().unwrap(), "z9hG4bKas3-111");
    assert_eq!(without.branch().unwrap(), "z9hG4bKas3");
}

#[test]
fn ipv6_in_sdp() {
    let m = ok("ipv6-in-sdp");
    assert_eq!(m.body.len(), 251);
    assert!(m.body.windows(19).any(|w| w == b"IN IP6 2001:db8::20"));
    assert_eq!(ruri_host_port(&m), (v6("2001:db8::10"), None));
}

#[test]
fn mult_ip_in_header() {
    let m = ok("mult-ip-in-header");
    let vias = m.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!((vias[0].host.clone(), vias[0].port), (v6("2001:db8::9:1"), Some(6050)));
    assert_eq!((vias[1].host.clone(), vias[1].port), (Host::V4(Ipv4Addr::new(192, 0, 2, 1)), None));
    assert_eq!(vias[2].host, v6("2001:db8::9:255"));
    assert_eq!(vias[2].transport, "TCP");
    assert_eq!(vias[2].received().unwrap(), "192.0.2.200");
}

#[test]
fn mult_ip_in_sdp() {
    let m = ok("mult-ip-in-sdp");
    assert_eq!(m.body.len(), 189);
    assert!(m.body.windows(7).any(|w| w == b"IN IP4 ") && m.body.windows(7).any(|w| w == b"IN IP6 "));
}

#[test]
fn ipv4_mapped_ipv6() {
    let m = ok("ipv4-mapped-ipv6");
    let vias = m.vias().unwrap();
    assert_eq!((vias[0].host.clone(), vias[0].port), (v6("::ffff:192.0.2.10"), Some(19823)));
    assert_eq!(vias[1].host, v6("::ffff:192.0.2.2"));
    let Contact::Addr(c) = &m.contacts().unwrap()[0] else { panic!() };
    assert_eq!(c.uri.as_sip().unwrap().host, v6("::ffff:192.0.2.2"));
    assert_eq!(m.body.len(), 245);
}

#[test]
fn ipv6_bug_abnf_3_colons() {
    // [2001:db8:::192.0.2.1] is not an IPv6 address (RFC 5954): we choose 400.
    let f = wire("ipv6-bug-abnf-3-colons").unwrap_err();
    assert_eq!(f.error.status(), 400);
    assert!(f.partial.is_some(), "answered with 400");
}

#[test]
fn ipv6_correct_abnf_2_colons() {
    let m = ok("ipv6-correct-abnf-2-colons");
    assert_eq!(ruri_host_port(&m), (v6("2001:db8::192.0.2.1"), None));
    assert_eq!(m.to().unwrap().uri.as_sip().unwrap().host, v6("2001:db8::c000:201"));
}

/// The bare-LF archive files parse as their CRLF twins do.
#[test]
fn bare_lf_archive_files() {
    for name in NAMES {
        let dat = parse("rfc5118", &format!("{name}.dat"));
        let sip = wire(name);
        match name {
            "ipv6-in-sdp" | "mult-ip-in-sdp" => {
                let f = dat.expect_err(name);
                assert_eq!(f.error.status(), 400, "{name}: {}", f.error);
                assert!(f.error.reason.contains("Content-Length"), "{name}: {}", f.error);
                assert!(sip.is_ok(), "{name}: the wire copy has the right length");
                // The request is still answerable.
                let raw = Bytes::from(common::read("rfc5118", &format!("{name}.dat")));
                assert!(parse_datagram(raw, &Limits::default()).unwrap_err().partial.is_some());
                continue;
            }
            "ipv6-correct-abnf-2-colons" => {
                let f = dat.expect_err(name);
                assert_eq!(f.error.status(), 400, "{name}: {}", f.error);
                assert!(f.error.reason.contains("empty line"), "{name}: {}", f.error);
                let mut raw = common::read("rfc5118", &format!("{name}.dat"));
                assert!(parse_datagram(Bytes::from(raw.clone()), &Limits::default()).unwrap_err().partial.is_some());
                raw.push(b'\n');
                let d = parse_datagram(Bytes::from(raw), &Limits::default()).expect("parses with its empty line");
                let s = sip.expect(name);
                assert_eq!(d.start, s.start, "{name}");
                assert!(d.body.is_empty());
                continue;
            }
            _ => {}
        }
        match (dat, sip) {
            (Ok(d), Ok(s)) => {
                assert_eq!(d.start, s.start, "{name}");
                let strip = |m: &Message| {
                    m.headers.iter().filter(|h| h.name != HeaderName::ContentLength).cloned().collect::<Vec<_>>()
                };
                assert_eq!(strip(&d), strip(&s), "{name}");
                let lf_body: Vec<u8> =
                    s.body.split(|&c| c == b'\r').flat_map(|p| p.iter().copied()).collect::<Vec<u8>>();
                assert_eq!(&d.body[..], &lf_body[..], "{name}: the body is the LF body");
            }
            (Err(d), Err(s)) => {
                assert_eq!(d.error, s.error, "{name}");
            }
            (d, s) => panic!("{name}: .dat {:?} vs .sip {:?}", d.err().map(|f| f.error), s.err().map(|f| f.error)),
        }
    }
    // The two files without the final empty line.
    for name in ["ipv6-bug-abnf-3-colons", "ipv6-correct-abnf-2-colons"] {
        let raw = common::read("rfc5118", &format!("{name}.dat"));
        assert!(!raw.ends_with(b"\n\n"), "{name}: archive bytes");
    }
    let f = parse("rfc5118", "ipv6-bug-abnf-3-colons.dat").unwrap_err();
    assert!(f.error.reason.contains("IPv6"), "the start line is checked first: {}", f.error);
}
