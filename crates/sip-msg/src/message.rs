//! The message model: start line, headers, body; typed accessors, the
//! RFC 3261 validity checks a server applies before acting on a message, the
//! serializer, and the builder of responses.
//!
//! Accessors parse a header value each time they are called; they are cheap
//! (no allocation for the common headers), and a message that a proxy edits
//! never holds a stale typed copy.

use crate::chars::{parse_u32, trim};
use crate::error::{Error, Result};
use crate::header::{HeaderName, Headers};
use crate::method::Method;
use crate::name_addr::{Contact, NameAddr};
use crate::uri::Uri;
use crate::via::Via;
use bytes::{BufMut, Bytes, BytesMut};

/// Request-Line or Status-Line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request { method: Method, uri: Uri },
    Response { code: u16, reason: Bytes },
}

/// A parsed SIP message. Header values and the body are slices of the
/// buffer the message arrived in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    pub headers: Headers,
    pub body: Bytes,
}

/// The CSeq header value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(v: &[u8]) -> Result<CSeq> {
        let v = trim(v);
        let sp = v.iter().position(|&c| c == b' ' || c == b'\t').ok_or(Error::bad("CSeq without method"))?;
        let seq = parse_u32(&v[..sp]).ok_or(Error::bad("CSeq number is not a 32-bit number"))?;
        let m = trim(&v[sp..]);
        if !crate::chars::all_token(m) {
            return Err(Error::bad("invalid CSeq method"));
        }
        Ok(CSeq { seq, method: Method::from_bytes(m) })
    }
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(format!("{} {}", self.seq, self.method))
    }
}

impl Message {
    /// A request with no headers yet.
    pub fn request(method: Method, uri: Uri) -> Message {
        Message { start: StartLine::Request { method, uri }, headers: Headers::with_capacity(12), body: Bytes::new() }
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }
    pub fn uri(&self) -> Option<&Uri> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// The topmost Via.
    pub fn top_via(&self) -> Result<Via> {
        Via::parse(self.headers.get(&HeaderName::Via).ok_or(Error::bad("missing Via"))?)
    }
    /// Every Via, top first.
    pub fn vias(&self) -> Result<Vec<Via>> {
        self.headers.get_all(&HeaderName::Via).map(Via::parse).collect()
    }
    pub fn call_id(&self) -> Option<&Bytes> {
        self.headers.get(&HeaderName::CallId)
    }
    pub fn cseq(&self) -> Result<CSeq> {
        CSeq::parse(self.headers.get(&HeaderName::CSeq).ok_or(Error::bad("missing CSeq"))?)
    }
    pub fn from(&self) -> Result<NameAddr> {
        NameAddr::parse(self.headers.get(&HeaderName::From).ok_or(Error::bad("missing From"))?)
    }
    pub fn to(&self) -> Result<NameAddr> {
        NameAddr::parse(self.headers.get(&HeaderName::To).ok_or(Error::bad("missing To"))?)
    }
    /// Max-Forwards when present (0..=255).
    pub fn max_forwards(&self) -> Result<Option<u8>> {
        match self.headers.get(&HeaderName::MaxForwards) {
            None => Ok(None),
            Some(v) => parse_u32(trim(v))
                .filter(|&n| n <= 255)
                .map(|n| Some(n as u8))
                .ok_or(Error::bad("Max-Forwards is not a number from 0 to 255")),
        }
    }
    /// Every Contact value.
    pub fn contacts(&self) -> Result<Vec<Contact>> {
        self.headers.get_all(&HeaderName::Contact).map(Contact::parse).collect()
    }
    /// The Expires header as delta-seconds, when present and well-formed
    /// (lenient: a malformed value reads as absent; see [`Message::try_expires`]).
    pub fn expires(&self) -> Option<u32> {
        self.headers.get(&HeaderName::Expires).and_then(|v| parse_u32(trim(v)))
    }
    /// The Expires header for a server that answers 400 to a malformed one:
    /// an error when it is present but not `delta-seconds = 1*DIGIT` (RFC
    /// 3261 §20.19, §25.1: `600aaaa`, `-1`, a date), else [`Message::expires`]
    /// (a well-formed value above 2³²−1 reads as absent, as RFC 4475
    /// scalar02 allows: the default applies).
    pub fn try_expires(&self) -> Result<Option<u32>> {
        match self.headers.get(&HeaderName::Expires) {
            Some(v) if !crate::chars::is_delta_seconds(trim(v)) => Err(Error::bad("Expires is not delta-seconds")),
            _ => Ok(self.expires()),
        }
    }
    /// Values of a token-list header such as Require or Supported.
    pub fn tokens<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.get_all(name).map(|v| trim(v))
    }

    /// The checks RFC 3261 §8.2 / §16.3 asks for before a server acts on a
    /// message: the mandatory headers are there once each and parse, CSeq's
    /// method matches the request line, Max-Forwards is a number. Unknown
    /// methods whose CSeq disagrees are reported as 501 (RFC 4475 mismatch02).
    pub fn validate(&self) -> Result<()> {
        let h = &self.headers;
        // One pass: which mandatory headers are there, and whether a
        // single-valued one is repeated (multi01).
        let mut present = [false; 5];
        let mut singles: [Option<std::mem::Discriminant<HeaderName>>; 16] = [None; 16];
        let mut repeated = false;
        for hd in h.iter() {
            match hd.name {
                HeaderName::Via => present[0] = true,
                HeaderName::From => present[1] = true,
                HeaderName::To => present[2] = true,
                HeaderName::CallId => present[3] = true,
                HeaderName::CSeq => present[4] = true,
                _ => {}
            }
            if hd.name.is_single() {
                let d = std::mem::discriminant(&hd.name);
                match singles.iter_mut().find(|s| s.is_none() || **s == Some(d)) {
                    Some(slot) if slot.is_some() => repeated = true,
                    Some(slot) => *slot = Some(d),
                    None => {}
                }
            }
        }
        const MISSING: [&str; 5] = ["missing Via", "missing From", "missing To", "missing Call-ID", "missing CSeq"];
        if let Some(i) = present.iter().position(|&p| !p) {
            return Err(Error::bad(MISSING[i]));
        }
        if repeated {
            return Err(Error::bad("a header that may appear once appears more than once"));
        }
        for v in h.get_all(&HeaderName::Via) {
            Via::parse(v)?;
        }
        let cseq = self.cseq()?;
        self.from()?;
        self.to()?;
        if self.call_id().is_some_and(|c| c.is_empty() || c.iter().any(|&b| b <= b' ')) {
            return Err(Error::bad("invalid Call-ID"));
        }
        self.max_forwards()?;
        if let StartLine::Request { method, uri } = &self.start {
            if &cseq.method != method {
                return Err(if method.is_known() {
                    Error::bad("CSeq method does not match the request method")
                } else {
                    Error::not_implemented("unknown method with mismatched CSeq")
                });
            }
            if uri.as_sip().is_some_and(|u| u.headers.is_some()) {
                return Err(Error::bad("headers are not allowed in a Request-URI"));
            }
            for v in h.get_all(&HeaderName::Contact) {
                Contact::parse(v)?;
            }
            for name in [HeaderName::Route, HeaderName::RecordRoute, HeaderName::Path] {
                for v in h.get_all(&name) {
                    NameAddr::parse(v)?;
                }
            }
        }
        Ok(())
    }

    /// Serialises the message. Content-Length is always written from the
    /// body (in place of a received one, or after the last header).
    pub fn write(&self, out: &mut BytesMut) {
        match &self.start {
            StartLine::Request { method, uri } => {
                out.put_slice(method.as_bytes());
                out.put_u8(b' ');
                uri.write(out);
                out.put_slice(b" SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                out.put_slice(b"SIP/2.0 ");
                crate::chars::put_decimal(out, u64::from(*code));
                out.put_u8(b' ');
                out.put_slice(reason);
                out.put_slice(b"\r\n");
            }
        }
        let mut wrote_cl = false;
        for hd in self.headers.iter() {
            if hd.name == HeaderName::ContentLength {
                if !wrote_cl {
                    write_cl(out, self.body.len());
                    wrote_cl = true;
                }
                continue;
            }
            out.put_slice(hd.name.as_str().as_bytes());
            out.put_slice(b": ");
            out.put_slice(&hd.value);
            out.put_slice(b"\r\n");
        }
        if !wrote_cl {
            write_cl(out, self.body.len());
        }
        out.put_slice(b"\r\n");
        out.put_slice(&self.body);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.wire_len_hint());
        self.write(&mut b);
        b.freeze()
    }

    /// About the serialised size (exact but for the start line's URI and the
    /// Content-Length digits), so that [`Message::to_bytes`] allocates once.
    fn wire_len_hint(&self) -> usize {
        let start = match &self.start {
            StartLine::Request { method, .. } => method.as_bytes().len() + 128,
            StartLine::Response { reason, .. } => reason.len() + 14,
        };
        let headers: usize = self.headers.iter().map(|h| h.name.as_str().len() + h.value.len() + 4).sum();
        start + headers + 24 + 2 + self.body.len()
    }
}

fn write_cl(out: &mut BytesMut, n: usize) {
    out.put_slice(b"Content-Length: ");
    crate::chars::put_decimal(out, n as u64);
    out.put_slice(b"\r\n");
}

/// The default reason phrase of a status code.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        555 => "Push Notification Service Not Supported",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}

/// Builds a response to a request from its headers (RFC 3261 §8.2.6):
/// Via (all), From, To (with `to_tag` added when the request's To has none
/// and the code is not 100), Call-ID and CSeq are copied; Timestamp is
/// echoed in a 100. Works on raw header values so that it can answer a
/// request whose other headers did not parse.
pub fn response_from_headers(req: &Headers, code: u16, reason: Option<&str>, to_tag: Option<&str>) -> Message {
    let mut headers = Headers::with_capacity(8);
    for hd in req.iter() {
        match hd.name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => headers.0.push(hd.clone()),
            HeaderName::To => {
                let mut value = hd.value.clone();
                if code != 100
                    && let Some(tag) = to_tag
                    && let Ok(mut to) = NameAddr::parse(&hd.value)
                    && to.tag().is_none()
                {
                    to.params.set("tag", Some(Bytes::copy_from_slice(tag.as_bytes())));
                    value = to.to_bytes();
                }
                headers.push(HeaderName::To, value);
            }
            HeaderName::Timestamp if code == 100 => headers.0.push(hd.clone()),
            _ => {}
        }
    }
    let reason = reason.unwrap_or_else(|| reason_phrase(code));
    Message {
        start: StartLine::Response { code, reason: Bytes::copy_from_slice(reason.as_bytes()) },
        headers,
        body: Bytes::new(),
    }
}

impl Message {
    /// A response to this request; see [`response_from_headers`].
    pub fn response(&self, code: u16, reason: Option<&str>, to_tag: Option<&str>) -> Message {
        response_from_headers(&self.headers, code, reason, to_tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::{Limits, parse_datagram};

    const REG: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport\r\n\
v: SIP/2.0/TCP proxy.example.com, SIP/2.0/UDP [::1]:5070;branch=z9hG4bK2\r\n\
Max-Forwards: 70\r\n\
To: <sip:alice@example.com>\r\n\
f: \"Alice\" <sip:alice@example.com>;tag=456\r\n\
i: abc@host\r\n\
CSeq: 1 REGISTER\r\n\
m: <sip:alice@192.0.2.1;pn-provider=apns;pn-prid=ab:cd;pn-param=TEAM.app.voip>;expires=3600,\r\n <sip:alice@[::1]>;q=0.5\r\n\
X-Custom: a,b;;c\r\n\
l: 0\r\n\r\n";

    #[test]
    fn parses_register() {
        let m = parse_datagram(Bytes::from_static(REG), &Limits::default()).unwrap();
        m.validate().unwrap();
        assert_eq!(m.method(), Some(&Method::Register));
        assert_eq!(m.vias().unwrap().len(), 3);
        assert_eq!(m.top_via().unwrap().branch().unwrap(), "z9hG4bKabc");
        assert_eq!(m.cseq().unwrap(), CSeq { seq: 1, method: Method::Register });
        assert_eq!(m.call_id().unwrap(), "abc@host");
        assert_eq!(m.from().unwrap().tag().unwrap(), "456");
        let c = m.contacts().unwrap();
        assert_eq!(c.len(), 2);
        let Contact::Addr(a) = &c[0] else { panic!() };
        assert_eq!(a.uri.as_sip().unwrap().params.value("pn-prid").unwrap(), "ab:cd");
        assert_eq!(a.params.value("expires").unwrap(), "3600");
        assert_eq!(m.headers.get(&HeaderName::from_bytes(b"x-custom")).unwrap(), "a,b;;c");
        assert_eq!(m.max_forwards().unwrap(), Some(70));
    }

    #[test]
    fn expires_strict_and_lenient() {
        let with = |v: &str| {
            let mut m = Message::request(Method::Register, Uri::parse_bytes("sip:example.com").unwrap());
            m.headers.push(HeaderName::Expires, Bytes::from(v.to_string()));
            m
        };
        assert_eq!(with(" 600 ").try_expires(), Ok(Some(600)));
        assert_eq!(with("0").expires(), Some(0));
        for bad in ["600aaaa", "-1", "", "6 0", "Thu, 01 Dec 1994 16:00:00 GMT"] {
            assert!(with(bad).try_expires().is_err(), "{bad:?}");
            assert_eq!(with(bad).expires(), None, "{bad:?}");
        }
        // Well-formed but above 2^32-1: absent (the default applies), not an error.
        assert_eq!(with("4294967296").try_expires(), Ok(None));
        let none = Message::request(Method::Register, Uri::parse_bytes("sip:example.com").unwrap());
        assert_eq!(none.try_expires(), Ok(None));
    }
    #[test]
    fn roundtrip() {
        let m = parse_datagram(Bytes::from_static(REG), &Limits::default()).unwrap();
        let again = parse_datagram(m.to_bytes(), &Limits::default()).unwrap();
        assert_eq!(m, again);
    }

    #[test]
    fn response_builder() {
        let m = parse_datagram(Bytes::from_static(REG), &Limits::default()).unwrap();
        let r = m.response(200, None, Some("xyz"));
        assert_eq!(r.status(), Some(200));
        assert_eq!(r.to().unwrap().tag().unwrap(), "xyz");
        assert_eq!(r.vias().unwrap().len(), 3);
        let wire = r.to_bytes();
        assert!(wire.starts_with(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport\r\n"));
        assert!(wire.ends_with(b"Content-Length: 0\r\n\r\n"));
        let trying = m.response(100, None, Some("xyz"));
        assert!(trying.to().unwrap().tag().is_none());
    }
}
