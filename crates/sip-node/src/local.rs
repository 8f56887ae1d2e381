//! What the server answers to a request it handles itself, until the
//! registrar and proxy take over: OPTIONS gets 200; a request the server
//! cannot serve gets the 4xx/5xx RFC 3261 asks for, never silence.
//!
//! A pure function of the request: it decides, the core sends.

use sip_msg::{HeaderName, Message, Method};

/// Methods this server understands (RFC 3261 §20.5 Allow).
pub const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, SUBSCRIBE, NOTIFY, INFO, UPDATE, PRACK, REFER, PUBLISH";
/// Option tags this server supports (none yet: extensions come with the registrar).
pub const SUPPORTED: &[&str] = &[];

/// The answer to a request.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub code: u16,
    pub reason: Option<&'static str>,
    /// Extra headers (name, value).
    pub headers: Vec<(HeaderName, String)>,
}

impl Answer {
    pub fn new(code: u16) -> Answer {
        Answer { code, reason: None, headers: Vec::new() }
    }
    fn with(mut self, name: HeaderName, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }
}

/// Decides the answer to a valid (already `validate()`d) request that opened
/// a server transaction. ACK and CANCEL never get here.
pub fn answer(req: &Message) -> Answer {
    let method = req.method().cloned().unwrap_or(Method::Options);
    let uri = req.uri().expect("a request");
    // §16.3 step 1 / §8.2.2.1: only sip and sips are served.
    if uri.as_sip().is_none() {
        return Answer::new(416);
    }
    // §16.3 step 2: Max-Forwards 0 is the end of the road, except that an OPTIONS may be answered.
    if req.max_forwards().ok().flatten() == Some(0) && method != Method::Options {
        return Answer::new(483);
    }
    // §16.3 step 4 / §8.2.2.3: extensions we do not support (Proxy-Require as a proxy, Require as the UAS).
    let mut unsupported: Vec<String> = Vec::new();
    for name in [HeaderName::ProxyRequire, HeaderName::Require] {
        for tag in req.tokens(&name) {
            let tag = String::from_utf8_lossy(tag).into_owned();
            if !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(&tag)) && !unsupported.contains(&tag) {
                unsupported.push(tag);
            }
        }
    }
    if !unsupported.is_empty() {
        return Answer::new(420).with(HeaderName::Unsupported, unsupported.join(", "));
    }
    let in_dialog = req.to().ok().is_some_and(|t| t.tag().is_some());
    match method {
        Method::Options => Answer::new(200)
            .with(HeaderName::Allow, ALLOW)
            .with(HeaderName::Accept, "application/sdp")
            .with(HeaderName::AcceptEncoding, "identity")
            .with(HeaderName::AcceptLanguage, "en"),
        Method::Other(_) => Answer::new(501).with(HeaderName::Allow, ALLOW),
        _ if in_dialog => Answer::new(481),
        // Until the proxy routes requests to registered users (next issue), no target exists.
        _ => Answer::new(404),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sip_msg::{Limits, parse_datagram};

    fn req(method: &str, uri: &str, extra: &str) -> Message {
        let s = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>{extra}\r\nCall-ID: c\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        );
        parse_datagram(Bytes::from(s), &Limits::default()).unwrap()
    }

    #[test]
    fn decisions() {
        assert_eq!(answer(&req("OPTIONS", "sip:127.0.0.1", "")).code, 200);
        assert_eq!(answer(&req("INVITE", "sip:bob@127.0.0.1", "")).code, 404);
        assert_eq!(answer(&req("BYE", "sip:bob@127.0.0.1", ";tag=9")).code, 481);
        assert_eq!(answer(&req("INVITE", "tel:+1234", "")).code, 416);
        assert_eq!(answer(&req("FOO", "sip:bob@127.0.0.1", "")).code, 501);
        let a = answer(&req("INVITE", "sip:bob@127.0.0.1", "\r\nProxy-Require: noodles\r\nRequire: nothing"));
        assert_eq!(a.code, 420);
        assert_eq!(a.headers, vec![(HeaderName::Unsupported, "noodles, nothing".to_string())]);
        assert_eq!(answer(&req("INVITE", "sip:bob@127.0.0.1", "\r\nMax-Forwards: 0")).code, 483);
        assert_eq!(answer(&req("OPTIONS", "sip:127.0.0.1", "\r\nMax-Forwards: 0")).code, 200);
    }
}
