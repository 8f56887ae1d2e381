//! Invariants that must hold for any input, shared by the proptest suites,
//! the regression tests and the cargo-fuzz targets (which include this file
//! with `#[path]`). Every function panics when an invariant is broken.
//!
//! Only `sip_msg` and `bytes` are used here, so that the fuzz crate can
//! include the file as it is.

#![allow(dead_code)]

use bytes::Bytes;
use sip_msg::name_addr::{Contact, NameAddr};
use sip_msg::{CSeq, Frame, HeaderName, Limits, Message, Uri, Via, frame_stream, parse_datagram, parse_framed};

/// Limits for re-parsing a serialised message: serialising may lengthen a
/// line a little (a compact name written in long form, an IPv6 address in
/// its canonical text) and the whole message (one line per list element),
/// and it adds a Content-Length when there was none.
pub fn reparse_limits(l: &Limits, wire_len: usize) -> Limits {
    Limits {
        max_message: l.max_message.max(wire_len),
        max_headers: l.max_headers + 1,
        max_header_len: l.max_header_len + 64,
    }
}

/// `a` and `b` are the same message, except for Content-Length, which the
/// serializer always rewrites from the body (and adds when it was absent).
pub fn assert_same_modulo_cl(a: &Message, b: &Message) {
    assert_eq!(a.start, b.start, "start line changed");
    assert_eq!(a.body, b.body, "body changed");
    let strip =
        |m: &Message| m.headers.iter().filter(|h| h.name != HeaderName::ContentLength).cloned().collect::<Vec<_>>();
    assert_eq!(strip(a), strip(b), "headers changed");
}

/// Parses one datagram and checks everything that must hold of the result.
/// Returns the parsed message, if any.
pub fn check_datagram(data: &[u8], limits: &Limits) -> Option<Message> {
    let buf = Bytes::copy_from_slice(data);
    let parsed = parse_datagram(buf.clone(), limits);
    check_framed_agrees(data, limits);
    match parsed {
        Err(f) => {
            let status = f.error.status();
            assert!(matches!(status, 400 | 501 | 505 | 513), "unexpected status {status}");
            if let Some(p) = &f.partial {
                // The server answers from what survived: it must serialise.
                let r = sip_msg::response_from_headers(&p.headers, status, None, Some("t1"));
                let wire = r.to_bytes();
                assert!(wire.starts_with(b"SIP/2.0 "));
            }
            None
        }
        Ok(m) => {
            exercise_accessors(&m);
            check_roundtrip(&m, limits);
            if m.validate().is_ok() && m.is_request() {
                // A response built from a valid request is itself valid.
                let r = m.response(400, None, Some("t1"));
                let wire = r.to_bytes();
                let l = reparse_limits(limits, wire.len());
                let back = parse_datagram(wire, &l).expect("response to a valid request must parse");
                back.validate().expect("response to a valid request must validate");
            }
            Some(m)
        }
    }
}

/// parse(serialize(m)) == m (modulo Content-Length), serialize is idempotent
/// after one round, and validation gives the same verdict.
pub fn check_roundtrip(m: &Message, limits: &Limits) {
    let wire = m.to_bytes();
    let l = reparse_limits(limits, wire.len());
    let again = match parse_datagram(wire.clone(), &l) {
        Ok(a) => a,
        Err(f) => panic!("serialised message does not parse: {} in {:?}", f.error, String::from_utf8_lossy(&wire)),
    };
    assert_same_modulo_cl(m, &again);
    let cls: Vec<&Bytes> = again.headers.get_all(&HeaderName::ContentLength).collect();
    assert_eq!(cls.len(), 1, "exactly one Content-Length after serialising");
    assert_eq!(cls[0].as_ref(), again.body.len().to_string().as_bytes());
    assert_eq!(again.to_bytes(), wire, "serialize is not idempotent");
    assert_eq!(m.validate(), again.validate(), "validation verdict changed by a round trip");
    // The same bytes framed for a stream give the same message.
    match frame_stream(&wire, &l) {
        Ok(Frame::Message { skip: 0, len }) => assert_eq!(len, wire.len()),
        other => panic!("serialised message does not frame: {other:?}"),
    }
    let framed = parse_framed(wire.clone(), &l).expect("serialised message parses as framed");
    assert_eq!(framed, again);
}

/// Every typed accessor on every header must not panic; the typed values
/// that parse must survive their own serialisation.
pub fn exercise_accessors(m: &Message) {
    let _ = m.validate();
    let _ = m.top_via();
    let _ = m.vias();
    let _ = m.cseq();
    let _ = m.from();
    let _ = m.to();
    let _ = m.contacts();
    let _ = m.max_forwards();
    let _ = m.expires();
    let _ = m.call_id();
    let _ = m.tokens(&HeaderName::Supported).count();
    if let Some(u) = m.uri() {
        check_uri(u);
    }
    for h in m.headers.iter() {
        if let Ok(v) = Via::parse(&h.value) {
            let _ = (v.branch(), v.received(), v.rport(), v.maddr(), v.has_rfc3261_branch(), v.is_reliable());
            let again = Via::parse(&v.to_bytes()).expect("a serialised Via parses");
            assert_eq!(again, v, "Via round trip");
        }
        if let Ok(na) = NameAddr::parse(&h.value) {
            let _ = na.tag();
            check_uri(&na.uri);
            let again = NameAddr::parse(&na.to_bytes()).expect("a serialised name-addr parses");
            assert_eq!(again, na, "name-addr round trip");
        }
        let _ = Contact::parse(&h.value);
        if let Ok(c) = CSeq::parse(&h.value) {
            assert_eq!(CSeq::parse(&c.to_bytes()).as_ref(), Ok(&c), "CSeq round trip");
        }
        if let Ok(u) = Uri::parse_bytes(h.value.clone()) {
            check_uri(&u);
        }
    }
}

pub fn check_uri(u: &Uri) {
    let _ = u.scheme();
    let again = Uri::parse_bytes(u.to_bytes()).expect("a serialised URI parses");
    assert_eq!(&again, u, "URI round trip");
    if let Some(s) = u.as_sip() {
        let _ = s.user_unescaped();
        assert!(s.equivalent(s), "a URI is equivalent to itself");
        assert!(again.as_sip().is_some_and(|a| a.equivalent(s)));
    }
}

/// If the stream framer frames `data` as one message, parsing that message
/// as framed agrees with parsing it as a datagram.
pub fn check_framed_agrees(data: &[u8], limits: &Limits) {
    if let Ok(Frame::Message { skip, len }) = frame_stream(data, limits) {
        assert_eq!(skip, 0);
        let one = Bytes::copy_from_slice(&data[..len]);
        let framed = parse_framed(one.clone(), limits);
        let dgram = parse_datagram(one, limits);
        match (framed, dgram) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "framed and datagram parses differ"),
            (Err(a), Err(b)) => assert_eq!(a.error.status(), b.error.status()),
            (a, b) => panic!("framed {:?} vs datagram {:?}", a.map(|_| ()), b.map(|_| ())),
        }
    }
}

/// One event of a stream framer run.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum Event {
    /// A message at this absolute offset, of this length.
    Message(usize, usize),
    /// A ping (double CRLF).
    Ping,
    /// The framer gave up (connection closed).
    Error,
}

/// Runs the framer over `stream` delivered in the given chunks, the way a
/// transport does: append what was read, take every whole frame, wait for
/// more. Plain keep-alives are consumed and not reported.
pub fn frame_events(stream: &[u8], cuts: &[usize], limits: &Limits) -> Vec<Event> {
    let mut events = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut consumed = 0; // absolute offset of buf[0]
    let mut fed = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(stream.len())).collect();
    bounds.sort_unstable();
    bounds.push(stream.len());
    for &b in &bounds {
        if b < fed {
            continue;
        }
        buf.extend_from_slice(&stream[fed..b]);
        fed = b;
        loop {
            match frame_stream(&buf, limits) {
                Ok(Frame::Incomplete) => break,
                Ok(Frame::KeepAlive { len, ping }) => {
                    assert!(len > 0 && len <= buf.len(), "keep-alive of a bad length");
                    assert!(buf[..len].iter().all(|&c| c == b'\r' || c == b'\n'));
                    if ping {
                        events.push(Event::Ping);
                    }
                    buf.drain(..len);
                    consumed += len;
                }
                Ok(Frame::Message { skip, len }) => {
                    assert!(len > 0 && skip + len <= buf.len(), "message beyond the buffer");
                    events.push(Event::Message(consumed + skip, len));
                    buf.drain(..skip + len);
                    consumed += skip + len;
                }
                Err(_) => {
                    events.push(Event::Error);
                    return events;
                }
            }
        }
    }
    events
}
