//! Messages the transaction layer builds itself: the ACK for a non-2xx
//! final response (§17.1.1.3), CANCEL (§9.1), and 100 Trying (§17.2.1).
//!
//! Owns the header recipes only; when to send them is the state machines'.

use bytes::Bytes;
use sip_msg::{CSeq, HeaderName, Headers, Message, Method, Uri, response_from_headers};

/// What an INVITE client transaction keeps of its request to build an ACK
/// or a CANCEL.
#[derive(Debug)]
pub(crate) struct RequestTemplate {
    uri: Uri,
    via: Bytes,
    routes: Vec<Bytes>,
    from: Bytes,
    to: Bytes,
    call_id: Bytes,
    cseq: u32,
}

impl RequestTemplate {
    pub fn of(req: &Message) -> Result<RequestTemplate, sip_msg::Error> {
        let h = &req.headers;
        let need = |n: HeaderName, what: &'static str| h.get(&n).cloned().ok_or(sip_msg::Error::bad(what));
        Ok(RequestTemplate {
            uri: req.uri().ok_or(sip_msg::Error::bad("not a request"))?.clone(),
            via: need(HeaderName::Via, "missing Via")?,
            routes: h.get_all(&HeaderName::Route).cloned().collect(),
            from: need(HeaderName::From, "missing From")?,
            to: need(HeaderName::To, "missing To")?,
            call_id: need(HeaderName::CallId, "missing Call-ID")?,
            cseq: req.cseq()?.seq,
        })
    }

    fn build(&self, method: Method, to: Bytes) -> Message {
        let mut m = Message::request(method.clone(), self.uri.clone());
        let h = &mut m.headers;
        h.push(HeaderName::Via, self.via.clone());
        for r in &self.routes {
            h.push(HeaderName::Route, r.clone());
        }
        h.push(HeaderName::MaxForwards, Bytes::from_static(b"70"));
        h.push(HeaderName::From, self.from.clone());
        h.push(HeaderName::To, to);
        h.push(HeaderName::CallId, self.call_id.clone());
        h.push(HeaderName::CSeq, CSeq { seq: self.cseq, method }.to_bytes());
        m
    }

    /// The ACK for a 3xx-6xx response (§17.1.1.3): Request-URI, Call-ID,
    /// From and the top Via of the request, To of the response (with its
    /// tag), the request's CSeq number with method ACK, its Route headers.
    pub fn ack(&self, response: &Message) -> Message {
        let to = response.headers.get(&HeaderName::To).cloned().unwrap_or_else(|| self.to.clone());
        self.build(Method::Ack, to)
    }

    /// The CANCEL of the request (§9.1): same Request-URI, Call-ID, From,
    /// To, CSeq number, top Via and Route headers.
    pub fn cancel(&self) -> Message {
        self.build(Method::Cancel, self.to.clone())
    }
}

/// The headers of a request that a 100 Trying copies (Via, From, To,
/// Call-ID, CSeq, Timestamp), kept until the 100 is sent.
pub(crate) fn trying_headers(req: &Message) -> Headers {
    let mut h = Headers::with_capacity(8);
    for hd in req.headers.iter() {
        if matches!(
            hd.name,
            HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::Timestamp
        ) {
            h.0.push(hd.clone());
        }
    }
    h
}

/// A 100 Trying built from [`trying_headers`].
pub(crate) fn trying(headers: &Headers) -> Bytes {
    response_from_headers(headers, 100, None, None).to_bytes()
}
