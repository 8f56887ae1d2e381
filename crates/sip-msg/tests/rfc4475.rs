//! RFC 4475 torture messages, each sent through the parser as one UDP
//! datagram: `parse_datagram` then `Message::validate`.
//!
//! The expected verdict of every file lives in ONE table,
//! `tests/data/rfc4475/verdicts.tsv`, which the server's end-to-end test
//! reads too. Each per-file test checks the table's verdict (accept, or the
//! layer and status of the rejection), then what the RFC says about the
//! values of that message.

mod common;

use bytes::Bytes;
use common::invariants;
use sip_msg::name_addr::{Contact, NameAddr};
use sip_msg::{
    CSeq, Error, HeaderName, Headers, Host, Limits, Message, Method, ParseFailure, StartLine, Uri, parse_datagram,
    response_from_headers,
};
use std::collections::BTreeMap;

const DIR: &str = "rfc4475";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    accept: bool,
    server_status: String,
    layer: String,
    error_status: Option<u16>,
}

fn verdicts() -> BTreeMap<String, Verdict> {
    let text = String::from_utf8(common::read(DIR, "verdicts.tsv")).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        assert!(f.len() >= 5, "verdicts.tsv: short line {line:?}");
        let accept = match f[1] {
            "accept" => true,
            "reject" => false,
            other => panic!("verdicts.tsv: bad parser_verdict {other:?}"),
        };
        let error_status = (f[4] != "-").then(|| f[4].parse().expect("error_status is a number"));
        let v = Verdict { accept, server_status: f[2].into(), layer: f[3].into(), error_status };
        assert!(out.insert(f[0].to_string(), v).is_none(), "verdicts.tsv: {} twice", f[0]);
    }
    out
}

/// What the parser made of one file.
enum Outcome {
    Accepted(Message),
    ParseError(ParseFailure),
    Invalid(Message, Error),
}

/// Runs one file through the parser and checks it against its row of the table.
fn run(name: &str) -> Outcome {
    let file = format!("{name}.dat");
    let table = verdicts();
    let v = table.get(&file).unwrap_or_else(|| panic!("{file} is not in verdicts.tsv"));
    let bytes = common::read(DIR, &file);
    // Whatever the verdict, the invariants that the fuzzer checks hold here too.
    invariants::check_datagram(&bytes, &Limits::default());
    let outcome = match parse_datagram(Bytes::from(bytes), &Limits::default()) {
        Err(f) => Outcome::ParseError(f),
        Ok(m) => match m.validate() {
            Ok(()) => Outcome::Accepted(m),
            Err(e) => Outcome::Invalid(m, e),
        },
    };
    match (&outcome, v.accept) {
        (Outcome::Accepted(_), true) => {
            assert_eq!(v.layer, "-", "{file}: accepted files have no layer");
        }
        (Outcome::ParseError(f), false) => {
            assert_eq!(v.layer, "parse", "{file}: rejected by the parser ({}), table says {}", f.error, v.layer);
            assert_eq!(Some(f.error.status()), v.error_status, "{file}: {}", f.error);
        }
        (Outcome::Invalid(_, e), false) => {
            assert_eq!(v.layer, "validate", "{file}: rejected by validate ({e}), table says {}", v.layer);
            assert_eq!(Some(e.status()), v.error_status, "{file}: {e}");
        }
        (Outcome::Accepted(_), false) => panic!("{file}: accepted, table says reject"),
        (Outcome::ParseError(f), true) => panic!("{file}: parse error {}, table says accept", f.error),
        (Outcome::Invalid(_, e), true) => panic!("{file}: invalid ({e}), table says accept"),
    }
    // What the server does because of the parser.
    let is_response = match &outcome {
        Outcome::Accepted(m) | Outcome::Invalid(m, _) => !m.is_request(),
        Outcome::ParseError(f) => f.partial.is_none(),
    };
    match v.server_status.as_str() {
        "any" => assert!(v.accept, "{file}: a rejected message needs a server_status"),
        "drop" => assert!(
            !v.accept && is_response,
            "{file}: only a rejected response (or an unanswerable request) is dropped"
        ),
        s => {
            let s: u16 = s.parse().unwrap_or_else(|_| panic!("{file}: bad server_status {s}"));
            assert!(!v.accept && !is_response, "{file}: server_status {s} needs a rejected request");
            assert_eq!(Some(s), v.error_status, "{file}: the server answers the parser's status");
            // The answer can be built: the request's Via, CSeq and (when it had
            // them) From, To and Call-ID are there for response_from_headers.
            let headers = match &outcome {
                Outcome::ParseError(f) => &f.partial.as_ref().unwrap().headers,
                Outcome::Invalid(m, _) => &m.headers,
                Outcome::Accepted(_) => unreachable!(),
            };
            assert_answerable(&file, headers, s);
        }
    }
    outcome
}

/// Builds the response the server would send from `headers` and checks that
/// it carries every Via, From, To, Call-ID and CSeq the request had.
fn assert_answerable(file: &str, req: &Headers, status: u16) {
    let r = response_from_headers(req, status, None, Some("srv1"));
    assert_eq!(r.status(), Some(status));
    assert!(req.contains(&HeaderName::Via), "{file}: no Via to answer to");
    for name in [HeaderName::Via, HeaderName::From, HeaderName::To, HeaderName::CallId, HeaderName::CSeq] {
        assert_eq!(req.count(&name), r.headers.count(&name), "{file}: {} not carried into the {status}", name.as_str());
    }
    // Serialised, it is a response that parses, with the same Vias.
    let back = parse_datagram(r.to_bytes(), &Limits::default()).unwrap_or_else(|f| panic!("{file}: {}", f.error));
    assert_eq!(back.status(), Some(status));
    assert_eq!(
        back.headers.get_all(&HeaderName::Via).collect::<Vec<_>>(),
        req.get_all(&HeaderName::Via).collect::<Vec<_>>()
    );
}

fn accepted(name: &str) -> Message {
    match run(name) {
        Outcome::Accepted(m) => m,
        _ => unreachable!("run() checked the verdict"),
    }
}
fn parse_error(name: &str) -> ParseFailure {
    match run(name) {
        Outcome::ParseError(f) => f,
        _ => unreachable!("run() checked the verdict"),
    }
}
fn invalid(name: &str) -> (Message, Error) {
    match run(name) {
        Outcome::Invalid(m, e) => (m, e),
        _ => unreachable!("run() checked the verdict"),
    }
}

fn other(name: &str) -> HeaderName {
    HeaderName::from_bytes(name.as_bytes())
}
fn sip(u: &Uri) -> &sip_msg::SipUri {
    u.as_sip().expect("a SIP URI")
}
fn na(m: &Message, name: &HeaderName) -> NameAddr {
    NameAddr::parse(m.headers.get(name).expect("header present")).unwrap()
}
fn contact_addrs(m: &Message) -> Vec<NameAddr> {
    m.contacts()
        .unwrap()
        .into_iter()
        .map(|c| match c {
            Contact::Addr(a) => a,
            Contact::Star => panic!("unexpected *"),
        })
        .collect()
}
fn raw_line_value(name: &str, header: &str) -> Vec<u8> {
    let bytes = common::read(DIR, &format!("{name}.dat"));
    let prefix = format!("{header}: ");
    let line = bytes
        .split(|&c| c == b'\n')
        .find(|l| l.starts_with(prefix.as_bytes()))
        .unwrap_or_else(|| panic!("{name}: no {header} line"));
    line[prefix.len()..].strip_suffix(b"\r").unwrap().to_vec()
}

// ---------------------------------------------------------------------------
// The table and the files.

#[test]
fn sha256sums_match() {
    let names = common::check_sha256sums(DIR);
    assert_eq!(names.len(), 49, "RFC 4475 has 49 messages");
}

#[test]
fn sha256_implementation() {
    use common::{sha256, to_hex};
    assert_eq!(to_hex(&sha256(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(to_hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    let two_blocks = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_eq!(to_hex(&sha256(two_blocks)), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

#[test]
fn table_covers_every_file_once() {
    let table = verdicts();
    let mut files: Vec<String> = common::check_sha256sums(DIR);
    files.sort();
    assert_eq!(table.keys().cloned().collect::<Vec<_>>(), files);
    // The choices the lead made where RFC 4475 allows either.
    for f in
        ["quotbal", "ltgtruri", "lwsruri", "lwsstart", "trws", "escruri", "regbadct", "badaspec", "baddn", "mismatch01"]
    {
        let v = &table[&format!("{f}.dat")];
        assert!(!v.accept && v.server_status == "400", "{f}: the lead chose reject (400)");
    }
    assert!(table["baddate.dat"].accept, "baddate: Date is ignored");
    assert_eq!(table["badvers.dat"].server_status, "505");
    assert_eq!(table["scalarlg.dat"].server_status, "drop");
    assert_eq!(table["bigcode.dat"].server_status, "drop");
    assert_eq!(table.values().filter(|v| v.accept).count(), 28);
}

// ---------------------------------------------------------------------------
// 3.1.1 Valid messages.

#[test]
fn wsinv() {
    let m = accepted("wsinv");
    assert_eq!(m.method(), Some(&Method::Invite));
    let ruri = sip(m.uri().unwrap());
    assert_eq!(ruri.user.as_deref(), Some(&b"vivekg"[..]));
    assert!(ruri.params.contains("unknownparam"));
    // Three Vias: one folded over three lines, two in a folded compact list.
    let vias = m.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!((&vias[0].transport[..], vias[0].host.to_string().as_str()), (&b"UDP"[..], "192.0.2.2"));
    assert_eq!(vias[0].branch().unwrap(), "390skdjuw");
    assert_eq!((&vias[1].transport[..], vias[1].host.to_string().as_str()), (&b"TCP"[..], "spindle.example.com"));
    assert_eq!(vias[1].branch().unwrap(), "z9hG4bK9ikj8");
    assert_eq!((&vias[2].transport[..], vias[2].host.to_string().as_str()), (&b"UDP"[..], "192.168.255.111"));
    assert_eq!(vias[2].branch().unwrap(), "z9hG4bK30239");
    // Leading zeros.
    assert_eq!(m.max_forwards().unwrap(), Some(68));
    assert_eq!(m.cseq().unwrap(), CSeq { seq: 9, method: Method::Invite });
    // The unknown header is one opaque value, never split.
    let unusual = other("UnknownHeaderWithUnusualValue");
    assert_eq!(m.headers.get_all(&unusual).collect::<Vec<_>>(), vec![&Bytes::from_static(b";;,,;;,;")]);
    assert_eq!(m.headers.get(&other("newfangledheader")).unwrap(), "newfangled value continued newfangled value");
    assert_eq!(m.headers.get(&HeaderName::Subject).unwrap(), "");
    assert_eq!(m.call_id().unwrap(), "wsinv.ndaksdj@192.0.2.1");
    // The folded To, with LWS around ';' and '='.
    let to = m.to().unwrap();
    assert_eq!(to.uri.to_string(), "sip:vivekg@chair-dnrc.example.com");
    assert_eq!(to.tag().unwrap(), "1918181833n");
    let from = m.from().unwrap();
    assert_eq!(from.display.as_deref(), Some(&br#""J Rosenberg \\\"""#[..]));
    assert_eq!(from.tag().unwrap(), "98asjd8");
    let c = contact_addrs(&m);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].display.as_deref(), Some(&br#""Quoted string \"\"""#[..]));
    assert_eq!(c[0].params.value("newparam").unwrap(), "newvalue");
    assert!(c[0].params.contains("secondparam"));
    assert_eq!(c[0].params.value("q").unwrap(), "0.33");
    let route = na(&m, &HeaderName::Route);
    assert!(sip(&route.uri).params.contains("unknown-no-value"));
    assert_eq!(sip(&route.uri).params.value("unknownwith").unwrap(), "value");
    assert_eq!(m.headers.get(&HeaderName::ContentType).unwrap(), "application/sdp");
    assert_eq!(m.body.len(), 150);
}

#[test]
fn intmeth() {
    let m = accepted("intmeth");
    let method = Method::Other(Bytes::from_static(b"!interesting-Method0123456789_*+`.%indeed'~"));
    assert_eq!(m.method(), Some(&method));
    assert_eq!(m.cseq().unwrap().method, method);
    let u = sip(m.uri().unwrap());
    assert_eq!(u.user.as_deref(), Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..]));
    assert_eq!(u.password.as_deref(), Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..]));
    assert_eq!(u.host, Host::Name(Bytes::from_static(b"example.com")));
    assert!(u.params.is_empty() && u.headers.is_none());
    // The quoted display name holds escaped BEL, NUL and DEL.
    let to = m.to().unwrap();
    assert_eq!(to.display.as_deref(), Some(&b"\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\""[..]));
    let from = m.from().unwrap();
    assert_eq!(from.display.as_deref(), Some(&b"token1~` token2'+_ token3*%!.-"[..]));
    assert_eq!(from.tag().unwrap(), "_token~1'+`*%!-.");
    assert!(from.params.value("fromParam''~+*_!.-%").unwrap().starts_with(b"\""));
    assert_eq!(m.call_id().unwrap(), &b"intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"[..]);
    assert_eq!(m.max_forwards().unwrap(), Some(255));
    let ext = m.headers.get(&other("extensionHeader-!.%*+_`'~")).unwrap();
    assert!(std::str::from_utf8(ext).is_ok() && !ext.is_empty());
}

#[test]
fn esc01() {
    let m = accepted("esc01");
    let r = sip(m.uri().unwrap());
    assert_eq!(r.user_unescaped().unwrap(), b"sips:user@example.com");
    assert_eq!(r.host, Host::Name(Bytes::from_static(b"example.net")));
    let to = m.to().unwrap();
    assert_eq!(sip(&to.uri).user_unescaped().unwrap(), b"user");
    assert!(sip(&to.uri).equivalent(sip(&Uri::parse_bytes("sip:user@example.com").unwrap())));
    assert_eq!(sip(&m.from().unwrap().uri).user_unescaped().unwrap(), b"I have spaces");
    let c = &contact_addrs(&m)[0];
    let cu = sip(&c.uri);
    assert_eq!(cu.user_unescaped().unwrap(), b"caller");
    // `n%61me=v%61lue%25%34%31` is name=value%41, not name=valueA.
    let same = Uri::parse_bytes("sip:caller@host5.example.net;lr;name=value%2541").unwrap();
    let not_same = Uri::parse_bytes("sip:caller@host5.example.net;lr;name=valueA").unwrap();
    assert!(cu.equivalent(sip(&same)));
    assert!(!cu.equivalent(sip(&not_same)));
    assert_eq!(m.headers.get(&HeaderName::ContentType).unwrap(), "application/sdp");
}

#[test]
fn escnull() {
    let m = accepted("escnull");
    assert_eq!(m.method(), Some(&Method::Register));
    assert_eq!(sip(&m.to().unwrap().uri).user_unescaped().unwrap(), b"null-\0-null");
    let c = contact_addrs(&m);
    assert_eq!(c.len(), 2);
    let (a, b) = (sip(&c[0].uri), sip(&c[1].uri));
    assert_eq!(a.user_unescaped().unwrap(), b"\0");
    assert_eq!(b.user_unescaped().unwrap(), b"\0\0");
    assert!(!a.equivalent(b), "two distinct contacts");
}

#[test]
fn esc02() {
    let m = accepted("esc02");
    let method = Method::Other(Bytes::from_static(b"RE%47IST%45R"));
    assert_eq!(m.method(), Some(&method));
    assert_ne!(m.method(), Some(&Method::Register));
    // `C%6Fntact` is an unknown header, not Contact: 2 Contact values, not 3.
    assert_eq!(m.contacts().unwrap().len(), 2);
    assert_eq!(m.headers.count(&other("C%6Fntact")), 1);
    assert_eq!(m.to().unwrap().display.as_deref(), Some(&b"\"%Z%45\""[..]));
    assert_eq!(m.top_via().unwrap().branch().unwrap(), "z9hG4bK209%fzsnel234");
}

#[test]
fn lwsdisp() {
    let m = accepted("lwsdisp");
    let from = m.from().unwrap();
    assert_eq!(from.display.as_deref(), Some(&b"caller"[..]));
    assert_eq!(from.uri.to_string(), "sip:caller@example.com");
    assert_eq!(from.tag().unwrap(), "323");
}

#[test]
fn longreq() {
    let m = accepted("longreq");
    // Every long value arrives whole.
    assert_eq!(m.headers.get(&HeaderName::To).unwrap(), &raw_line_value("longreq", "To")[..]);
    assert_eq!(m.headers.get(&HeaderName::From).unwrap(), &raw_line_value("longreq", "F")[..]);
    assert_eq!(m.call_id().unwrap(), &raw_line_value("longreq", "Call-ID")[..]);
    let to = m.to().unwrap();
    let display = to.display.unwrap();
    assert!(display.starts_with(b"\"I have a user name of extreme") && display.ends_with(b" proportion\""));
    assert_eq!(sip(&to.uri).port, Some(6000));
    let from = m.from().unwrap();
    assert!(from.tag().unwrap().len() > 100);
    let vias = m.vias().unwrap();
    assert_eq!(vias.len(), 34);
    for (i, v) in vias.iter().take(33).enumerate() {
        assert_eq!(v.host.to_string(), format!("sip{}.example.com", 33 - i));
    }
    assert!(vias[33].branch().unwrap().ends_with(b"branchvalue"));
    assert_eq!(vias[33].received().unwrap(), "192.0.2.5");
    let unknown = m.headers.iter().find(|h| matches!(h.name, HeaderName::Other(_))).unwrap();
    assert!(unknown.name.as_str().starts_with("Unknown-LongLong"));
    assert!(unknown.value.ends_with(b"-parameter-value"));
    assert_eq!(m.body.len(), 150);
}

#[test]
fn dblreq() {
    let m = accepted("dblreq");
    assert_eq!(m.method(), Some(&Method::Register));
    assert!(m.body.is_empty(), "Content-Length 0: the INVITE after it is not the body");
    assert!(!m.headers.contains(&HeaderName::ContentType), "no header of the trailing INVITE");
    assert_eq!(m.call_id().unwrap(), "dblreq.0ha0isndaksdj99sdfafnl3lk233412");
    assert_eq!(m.headers.count(&HeaderName::Via), 1);
    // Forwarded, the trailing octets are gone.
    assert!(!m.to_bytes().windows(6).any(|w| w == b"INVITE"));
}

#[test]
fn semiuri() {
    let m = accepted("semiuri");
    let u = sip(m.uri().unwrap());
    assert_eq!(u.user.as_deref(), Some(&b"user;par=u%40example.net"[..]));
    assert_eq!(u.user_unescaped().unwrap(), b"user;par=u@example.net");
    assert_eq!(u.host, Host::Name(Bytes::from_static(b"example.com")));
    assert!(u.params.is_empty());
    let accept: Vec<&[u8]> = m.tokens(&HeaderName::Accept).collect();
    assert_eq!(accept.len(), 6);
    assert_eq!(accept[5], b"message/sipfrag");
}

#[test]
fn transports() {
    let m = accepted("transports");
    let vias = m.vias().unwrap();
    let got: Vec<(&[u8], String, bool)> =
        vias.iter().map(|v| (&v.transport[..], v.host.to_string(), v.is_reliable())).collect();
    assert_eq!(
        got,
        vec![
            (&b"UDP"[..], "t1.example.com".to_string(), false),
            (&b"SCTP"[..], "t2.example.com".to_string(), true),
            (&b"TLS"[..], "t3.example.com".to_string(), true),
            (&b"UNKNOWN"[..], "t4.example.com".to_string(), true),
            (&b"TCP"[..], "t5.example.com".to_string(), true),
        ]
    );
    assert_eq!(m.call_id().unwrap(), "transports.kijh4akdnaqjkwendsasfdj");
}

#[test]
fn mpart01() {
    let m = accepted("mpart01");
    assert_eq!(m.method(), Some(&Method::Message));
    assert_eq!(m.body.len(), 553);
    assert!(m.body.contains(&0), "the binary part has NULs");
    assert!(m.headers.get(&HeaderName::ContentType).unwrap().starts_with(b"multipart/mixed;boundary="));
    let raw = common::read(DIR, "mpart01.dat");
    assert!(raw.ends_with(&m.body), "the body is the last 553 octets");
}

#[test]
fn unreason() {
    let m = accepted("unreason");
    let StartLine::Response { code, reason } = &m.start else { panic!("a response") };
    assert_eq!(*code, 200);
    let text = std::str::from_utf8(reason).expect("UTF-8 reason phrase");
    assert_eq!(text, "= 2**3 * 5**2 но сто девяносто девять - простое");
    assert_eq!(m.body.len(), 154);
}

#[test]
fn noreason() {
    let m = accepted("noreason");
    let StartLine::Response { code, reason } = &m.start else { panic!("a response") };
    assert_eq!((*code, reason.len()), (100, 0));
    assert!(m.to_bytes().starts_with(b"SIP/2.0 100 \r\n"), "the SP before the empty phrase is kept");
}

// ---------------------------------------------------------------------------
// 3.1.2 Invalid messages.

#[test]
fn badinv01() {
    let f = parse_error("badinv01");
    let p = f.partial.unwrap();
    assert_eq!(p.method, Method::Invite);
    assert!(p.headers.get(&HeaderName::Via).unwrap().starts_with(b"SIP/2.0/UDP 192.0.2.15"));
}

#[test]
fn clerr() {
    let f = parse_error("clerr");
    assert!(f.error.reason.contains("Content-Length"), "{}", f.error);
    assert_eq!(f.partial.unwrap().headers.get(&HeaderName::ContentLength).unwrap(), "9999");
}

#[test]
fn ncl() {
    let f = parse_error("ncl");
    assert!(f.error.reason.contains("Content-Length"), "{}", f.error);
    assert_eq!(f.partial.unwrap().headers.get(&HeaderName::ContentLength).unwrap(), "-999");
}

#[test]
fn scalar02() {
    let (m, e) = invalid("scalar02");
    assert!(e.reason.contains("CSeq"), "{e}");
    assert!(m.max_forwards().is_err(), "Max-Forwards 300");
    assert_eq!(m.expires(), None, "Expires > 2^32-1 reads as absent");
    let c = &contact_addrs(&m)[0];
    assert_eq!(c.params.value("expires").unwrap(), "280297596632815");
}

#[test]
fn scalarlg() {
    let (m, e) = invalid("scalarlg");
    assert_eq!(m.status(), Some(503));
    assert!(e.reason.contains("CSeq"), "{e}");
}

#[test]
fn quotbal() {
    let (m, e) = invalid("quotbal");
    assert!(e.reason.contains("quoted"), "{e}");
    assert!(m.to().is_err());
}

#[test]
fn ltgtruri() {
    let f = parse_error("ltgtruri");
    assert_eq!(f.partial.unwrap().method, Method::Invite);
}

#[test]
fn lwsruri() {
    let f = parse_error("lwsruri");
    assert_eq!(f.partial.unwrap().method, Method::Invite);
}

#[test]
fn lwsstart() {
    let f = parse_error("lwsstart");
    assert_eq!(f.partial.unwrap().method, Method::Invite);
}

#[test]
fn trws() {
    let f = parse_error("trws");
    assert_eq!(f.partial.unwrap().method, Method::Options);
}

#[test]
fn escruri() {
    let (m, e) = invalid("escruri");
    assert!(e.reason.contains("Request-URI"), "{e}");
    assert_eq!(sip(m.uri().unwrap()).headers.as_deref(), Some(&b"Route=%3Csip:example.com%3E"[..]));
}

#[test]
fn baddate() {
    let m = accepted("baddate");
    assert_eq!(m.headers.get(&HeaderName::Date).unwrap(), "Fri, 01 Jan 2010 16:00:00 EST");
}

#[test]
fn regbadct() {
    let (m, e) = invalid("regbadct");
    assert!(e.reason.contains("<>"), "{e}");
    assert!(m.contacts().is_err());
}

#[test]
fn badaspec() {
    let (m, _) = invalid("badaspec");
    assert!(m.to().is_err());
    assert!(m.from().is_ok(), "a quoted display name may hold a comma");
}

#[test]
fn baddn() {
    assert_eq!(common::read(DIR, "baddn.dat").len(), 331, "the archive copy has no final empty line");
    // A datagram must hold the end of its header section: 400 from the parser,
    // with what is needed to answer it.
    let f = parse_error("baddn");
    assert!(f.error.reason.contains("empty line"), "{}", f.error);
    assert_eq!(f.partial.expect("a 400 needs the request's headers").method, Method::Options);
    // With its empty line, the display name is what RFC 4475 rejects it for.
    let mut whole = common::read(DIR, "baddn.dat");
    whole.extend_from_slice(b"\r\n");
    let m = parse_datagram(Bytes::from(whole), &Limits::default()).expect("parses with its empty line");
    let e = m.validate().unwrap_err();
    assert!(e.reason.contains("display name"), "{e}");
    assert!(m.body.is_empty());
}

#[test]
fn badvers() {
    let f = parse_error("badvers");
    assert_eq!(f.error.status(), 505);
    let p = f.partial.expect("505 needs the request's headers");
    assert_eq!(p.method, Method::Options);
    assert_eq!(p.headers.get(&HeaderName::CallId).unwrap(), "badvers.31417@c.example.com");
}

#[test]
fn mismatch01() {
    let (m, e) = invalid("mismatch01");
    assert_eq!(m.method(), Some(&Method::Options));
    assert_eq!(m.cseq().unwrap().method, Method::Invite);
    assert_eq!(e.status(), 400);
}

#[test]
fn mismatch02() {
    let (m, e) = invalid("mismatch02");
    assert_eq!(m.method(), Some(&Method::Other(Bytes::from_static(b"NEWMETHOD"))));
    assert_eq!(e.status(), 501);
}

#[test]
fn bigcode() {
    let f = parse_error("bigcode");
    assert!(f.partial.is_none(), "a response: nothing to answer, dropped");
}

// ---------------------------------------------------------------------------
// 3.2 / 3.3 / 3.4: well-formed; what follows is the server's business.

#[test]
fn badbranch() {
    let m = accepted("badbranch");
    let v = m.top_via().unwrap();
    assert_eq!(v.branch().unwrap(), "z9hG4bK");
    assert!(!v.has_rfc3261_branch(), "the cookie alone is no RFC 3261 branch");
}

#[test]
fn insuf() {
    let (m, e) = invalid("insuf");
    assert!(e.reason.starts_with("missing"), "{e}");
    for h in [HeaderName::CallId, HeaderName::From, HeaderName::To] {
        assert!(!m.headers.contains(&h));
    }
}

#[test]
fn unkscm() {
    let m = accepted("unkscm");
    let u = m.uri().unwrap();
    assert!(u.as_sip().is_none());
    assert_eq!(u.scheme(), "nobodyknowsthisscheme");
    assert_eq!(u.to_string(), "nobodyKnowsThisScheme:totallyopaquecontent");
}

#[test]
fn novelsc() {
    let m = accepted("novelsc");
    assert_eq!(m.uri().unwrap().scheme(), "soap.beep");
    assert!(m.uri().unwrap().as_sip().is_none());
}

#[test]
fn unksm2() {
    let m = accepted("unksm2");
    assert_eq!(m.method(), Some(&Method::Register));
    // The registrar answers 400: To is no SIP/SIPS AOR.
    assert_eq!(m.to().unwrap().uri.scheme(), "isbn");
    assert_eq!(m.from().unwrap().uri.scheme(), "http");
    assert_eq!(contact_addrs(&m)[0].uri.scheme(), "name");
}

#[test]
fn bext01() {
    let m = accepted("bext01");
    let req: Vec<&[u8]> = m.tokens(&HeaderName::Require).collect();
    assert_eq!(req, vec![&b"nothingSupportsThis"[..], b"nothingSupportsThisEither"]);
    let preq: Vec<&[u8]> = m.tokens(&HeaderName::ProxyRequire).collect();
    assert_eq!(preq, vec![&b"noProxiesSupportThis"[..], b"norDoAnyProxiesSupportThis"]);
}

#[test]
fn invut() {
    let m = accepted("invut");
    assert_eq!(m.headers.get(&HeaderName::ContentType).unwrap(), "application/unknownformat");
    assert_eq!(m.body.len(), 40);
}

#[test]
fn regaut01() {
    let m = accepted("regaut01");
    assert_eq!(m.headers.get(&HeaderName::Authorization).unwrap(), "NoOneKnowsThisScheme opaque-data=here");
}

#[test]
fn multi01() {
    let (m, e) = invalid("multi01");
    assert!(e.reason.contains("more than once"), "{e}");
    for h in [HeaderName::CallId, HeaderName::To, HeaderName::From, HeaderName::CSeq, HeaderName::MaxForwards] {
        assert_eq!(m.headers.count(&h), 2, "{}", h.as_str());
    }
}

#[test]
fn mcl01() {
    let f = parse_error("mcl01");
    assert!(f.error.reason.contains("Content-Length"), "{}", f.error);
    assert_eq!(f.partial.unwrap().headers.count(&HeaderName::ContentLength), 2);
}

#[test]
fn bcast() {
    let m = accepted("bcast");
    assert_eq!(m.status(), Some(200));
    let vias = m.vias().unwrap();
    assert_eq!(vias[1].host, Host::V4(std::net::Ipv4Addr::BROADCAST));
}

#[test]
fn zeromf() {
    let m = accepted("zeromf");
    assert_eq!(m.max_forwards().unwrap(), Some(0));
}

#[test]
fn cparam01() {
    let m = accepted("cparam01");
    let c = &contact_addrs(&m)[0];
    assert!(c.params.contains("unknownparam"), "a contact parameter");
    assert!(sip(&c.uri).params.is_empty(), "not a URI parameter");
    assert_eq!(c.uri.to_string(), "sip:+19725552222@gw1.example.net");
}

#[test]
fn cparam02() {
    let m = accepted("cparam02");
    let c = &contact_addrs(&m)[0];
    assert!(c.params.is_empty(), "not a contact parameter");
    assert!(sip(&c.uri).params.contains("unknownparam"), "a URI parameter");
    assert_eq!(c.uri.to_string(), "sip:+19725552222@gw1.example.net;unknownparam");
}

#[test]
fn regescrt() {
    let m = accepted("regescrt");
    let c = &contact_addrs(&m)[0];
    let u = sip(&c.uri);
    assert_eq!(u.headers.as_deref(), Some(&b"Route=%3Csip:sip.example.com%3E"[..]));
    // A later fetch returns it inside the Contact URI, escaped as received.
    assert_eq!(c.to_bytes(), "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>");
}

#[test]
fn sdp01() {
    let m = accepted("sdp01");
    assert_eq!(m.headers.get(&HeaderName::Accept).unwrap(), "text/nobodyKnowsThis");
    assert_eq!(m.body.len(), 150);
}

#[test]
fn inv2543() {
    let m = accepted("inv2543");
    assert!(!m.headers.contains(&HeaderName::ContentLength));
    assert!(!m.headers.contains(&HeaderName::MaxForwards));
    assert!(m.top_via().unwrap().branch().is_none());
    assert!(m.from().unwrap().tag().is_none());
    // With no Content-Length, the body is the rest of the datagram.
    let raw = common::read(DIR, "inv2543.dat");
    let body_at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(&m.body[..], &raw[body_at..]);
    assert_eq!(m.body.len(), 105);
}

// ---------------------------------------------------------------------------
// Beyond the table: size limits (513) and framing of the same files.

#[test]
fn too_large_is_513_and_answerable() {
    let raw = Bytes::from(common::read(DIR, "longreq.dat"));
    // A header field over the limit.
    let l = Limits { max_header_len: 300, ..Limits::default() };
    let f = parse_datagram(raw.clone(), &l).unwrap_err();
    assert_eq!(f.error.status(), 513);
    let p = f.partial.expect("513 is answered");
    assert_eq!(p.method, Method::Invite);
    // Via, Call-ID and CSeq are short enough to be kept; the long To and From are not.
    assert_eq!(p.headers.count(&HeaderName::Via), 34);
    assert!(p.headers.contains(&HeaderName::CallId) && p.headers.contains(&HeaderName::CSeq));
    assert!(!p.headers.contains(&HeaderName::From));
    // Too many header fields.
    let l = Limits { max_headers: 20, ..Limits::default() };
    let f = parse_datagram(raw.clone(), &l).unwrap_err();
    assert_eq!(f.error.status(), 513);
    assert_eq!(f.partial.unwrap().headers.len(), 20);
    // The whole message over the limit.
    let l = Limits { max_message: 1000, ..Limits::default() };
    let f = parse_datagram(raw.clone(), &l).unwrap_err();
    assert_eq!(f.error.status(), 513);
    assert!(f.partial.unwrap().headers.contains(&HeaderName::CSeq));
    // A response over the limit is dropped (nothing to answer).
    let resp = Bytes::from(common::read(DIR, "unreason.dat"));
    let f = parse_datagram(resp, &Limits { max_message: 100, ..Limits::default() }).unwrap_err();
    assert_eq!(f.error.status(), 513);
    assert!(f.partial.is_none());
}

#[test]
fn every_file_frames_on_a_stream_as_it_parses() {
    // Over TCP, the same bytes: the framer must agree with the datagram parse
    // wherever Content-Length is right, and fail (close) where it is not.
    for (file, v) in verdicts() {
        let raw = common::read(DIR, &file);
        let r = sip_msg::frame_stream(&raw, &Limits::default());
        match file.as_str() {
            "mcl01.dat" | "ncl.dat" => assert!(r.is_err(), "{file}: framing error, close"),
            "clerr.dat" => assert_eq!(r, Ok(sip_msg::Frame::Incomplete), "{file}: waits for 9999 octets"),
            "inv2543.dat" => assert!(r.is_err(), "{file}: no Content-Length on a stream"),
            "baddn.dat" => assert_eq!(r, Ok(sip_msg::Frame::Incomplete), "{file}: no end of headers yet"),
            _ => {
                let Ok(sip_msg::Frame::Message { skip: 0, len }) = r else { panic!("{file}: {r:?}") };
                let framed = sip_msg::parse_framed(Bytes::copy_from_slice(&raw[..len]), &Limits::default());
                if file == "dblreq.dat" {
                    assert_eq!(len, raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4);
                }
                let dgram = parse_datagram(Bytes::from(raw), &Limits::default());
                match (framed, dgram) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{file}"),
                    (Err(a), Err(b)) => assert_eq!(a.error, b.error, "{file}"),
                    (a, b) => {
                        panic!("{file}: framed {:?}, datagram {:?}", a.err().map(|f| f.error), b.err().map(|f| f.error))
                    }
                }
                let _ = v;
            }
        }
    }
}
