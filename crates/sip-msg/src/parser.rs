//! The zero-copy message parser and the stream framer.
//!
//! Owns framing (datagram: the whole datagram, which must hold the empty
//! line ending the header section; Content-Length may be absent and trailing
//! octets are ignored; stream: Content-Length is mandatory and
//! exact), the start line, header line splitting with folding and comma
//! lists, and the hard limits, which are checked before anything is
//! allocated.
//!
//! Line ends: CRLF, or a bare LF (RFC 5118's archive files have those); a
//! CR anywhere else in the start line or header section is a 400, since a
//! peer that ends lines at a bare CR would read different headers. Header *values* are typed lazily by the accessors on
//! [`Message`]; this module only indexes them.
//!
//! Written by hand (see `shared/docs/dependencies.md` §1): no published
//! parser frames Content-Length correctly and splits comma-list Vias.

use crate::chars::{all_token, is_ws, parse_u32, trim};
use crate::error::{Error, ErrorKind, Result};
use crate::header::{Header, HeaderName, Headers};
use crate::message::{Message, StartLine};
use crate::method::Method;
use crate::uri::Uri;
use bytes::Bytes;

/// Hard limits on what the parser accepts.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest whole message (start line, headers and body), in octets.
    pub max_message: usize,
    /// Most header field values (after splitting comma lists).
    pub max_headers: usize,
    /// Longest single header field (folded lines included), in octets.
    pub max_header_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_message: 65_535, max_headers: 256, max_header_len: 16_384 }
    }
}

/// A message that could not be parsed. When the start line was a request,
/// `partial` holds what is needed to answer it (its method and headers), so a
/// server can send 400/505/513 instead of silence: all the headers for a
/// 400/505, and for a 513 (a size limit) only Via, From, To, Call-ID and
/// CSeq, each within the limits. A response gets no `partial`: it is dropped.
#[derive(Debug)]
pub struct ParseFailure {
    pub error: Error,
    pub partial: Option<Box<Partial>>,
}

/// What survived of a request that failed to parse.
#[derive(Debug)]
pub struct Partial {
    pub method: Method,
    pub headers: Headers,
}

impl From<Error> for ParseFailure {
    fn from(error: Error) -> Self {
        ParseFailure { error, partial: None }
    }
}

/// Parses one datagram (UDP): the message is the datagram, and it must hold
/// the empty line that ends the header section (else a 400 failure, with
/// `partial` for a request); with no Content-Length the body is the rest of
/// it; octets after the body are ignored.
pub fn parse_datagram(buf: Bytes, limits: &Limits) -> std::result::Result<Message, ParseFailure> {
    parse(buf, false, limits)
}

/// Parses one message already framed by [`frame_stream`] (TCP/TLS).
pub fn parse_framed(buf: Bytes, limits: &Limits) -> std::result::Result<Message, ParseFailure> {
    parse(buf, true, limits)
}

/// Result of looking for one message at the start of a stream buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// `skip` octets of CRLF keep-alive precede a message of `len` octets.
    Message { skip: usize, len: usize },
    /// `len` octets of CR/LF keep-alive to skip. `ping` is true when they end
    /// with a double CRLF (an RFC 5626 ping, answered with one CRLF); each
    /// ping is reported once, however the stream was cut into reads.
    KeepAlive { len: usize, ping: bool },
    /// More octets are needed.
    Incomplete,
}

/// Frames the next message in a stream buffer by its Content-Length.
/// Errors (missing, repeated, negative or oversized Content-Length, header
/// section over the limit) mean the stream cannot be resynchronised and the
/// connection must be closed.
///
/// The result does not depend on how the stream was cut into reads: a
/// message is only reported once all of it is there, and CR/LF keep-alives
/// are consumed so that a double-CRLF ping (RFC 5626 §4.4.1) is reported
/// once, whether its four octets arrived together or one by one. Octets
/// that may still become part of a ping are left in the buffer
/// ([`Frame::Incomplete`]) until the next octet tells.
pub fn frame_stream(buf: &[u8], limits: &Limits) -> Result<Frame> {
    const PING: &[u8] = b"\r\n\r\n";
    let run = buf.iter().position(|&c| c != b'\r' && c != b'\n').unwrap_or(buf.len());
    if run > 0 {
        let crlf = &buf[..run];
        if let Some(p) = memchr::memmem::find(crlf, PING) {
            return Ok(Frame::KeepAlive { len: p + PING.len(), ping: true });
        }
        if run < buf.len() {
            // A message follows: the whole run is a plain keep-alive.
            return Ok(Frame::KeepAlive { len: run, ping: false });
        }
        // Keep the longest tail that may still grow into a ping.
        let keep = (1..PING.len()).rev().find(|&k| crlf.ends_with(&PING[..k])).unwrap_or(0);
        let len = run - keep;
        return Ok(if len == 0 { Frame::Incomplete } else { Frame::KeepAlive { len, ping: false } });
    }
    if buf.is_empty() {
        return Ok(Frame::Incomplete);
    }
    let Some(hdr_end) = find_header_end(buf) else {
        if buf.len() > limits.max_message {
            return Err(Error::too_large("header section larger than the message limit"));
        }
        return Ok(Frame::Incomplete);
    };
    // Content-Length, read as the parser reads it: the value may be folded
    // onto continuation lines, and after unfolding it is one number.
    let head = &buf[..hdr_end];
    let mut lines = head.split(|&c| c == b'\n');
    lines.next(); // start line
    let mut seen = false;
    let mut in_cl = false;
    let mut value: Option<&[u8]> = None;
    let mut pieces = 0;
    for line in lines {
        let line = strip_cr(line);
        if line.first().is_some_and(|&c| is_ws(c)) {
            if in_cl && !trim(line).is_empty() {
                value = Some(trim(line));
                pieces += 1;
            }
            continue;
        }
        in_cl = false;
        let Some(colon) = memchr::memchr(b':', line) else { continue };
        let name = trim(&line[..colon]);
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            if seen {
                return Err(Error::bad("more than one Content-Length"));
            }
            seen = true;
            in_cl = true;
            let v = trim(&line[colon + 1..]);
            if !v.is_empty() {
                value = Some(v);
                pieces += 1;
            }
        }
    }
    if !seen {
        return Err(Error::bad("Content-Length is mandatory on stream transports"));
    }
    let cl = value
        .filter(|_| pieces == 1)
        .and_then(parse_u32)
        .ok_or(Error::bad("Content-Length is not a non-negative number"))? as usize;
    let len = hdr_end.checked_add(cl).ok_or(Error::too_large("Content-Length overflow"))?;
    if len > limits.max_message {
        return Err(Error::too_large("message larger than the limit"));
    }
    if buf.len() < len { Ok(Frame::Incomplete) } else { Ok(Frame::Message { skip: 0, len }) }
}

/// Offset just past the empty line that ends the header section.
fn find_header_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = memchr::memchr(b'\n', &buf[from..]) {
        let lf = from + p;
        let next = lf + 1;
        if buf.get(next) == Some(&b'\n') {
            return Some(next + 1);
        }
        if buf.get(next) == Some(&b'\r') && buf.get(next + 1) == Some(&b'\n') {
            return Some(next + 2);
        }
        from = next;
    }
    None
}

/// The header section of a message, indexed.
struct Index {
    headers: Headers,
    body_start: usize,
    /// The first malformed header line, if any (the rest are still indexed,
    /// so that a 400 can be built from them).
    error: Option<Error>,
}

fn parse(buf: Bytes, stream: bool, limits: &Limits) -> std::result::Result<Message, ParseFailure> {
    let b = &buf[..];
    let sl_off = b.iter().position(|&c| c != b'\r' && c != b'\n').unwrap_or(b.len());
    if buf.len() > limits.max_message {
        return Err(too_large(&buf, sl_off, Error::too_large("message larger than the limit"), limits));
    }
    if sl_off == b.len() {
        return Err(Error::bad("empty message").into());
    }
    // Start line.
    let sl_end = memchr::memchr(b'\n', &b[sl_off..]).map(|p| sl_off + p).ok_or(Error::bad("no end of start line"))?;
    let sl = strip_cr(&b[sl_off..sl_end]);
    if sl.len() > limits.max_header_len {
        return Err(too_large(&buf, sl_off, Error::too_large("start line too long"), limits));
    }
    let Index { headers, body_start, error: header_error } = match index_headers(&buf, sl_end + 1, stream, limits) {
        Ok(i) => i,
        Err(e) if e.kind == ErrorKind::TooLarge => return Err(too_large(&buf, sl_off, e, limits)),
        Err(e) => return Err(e.into()),
    };

    let start = parse_start_line(&buf, sl);
    let fail = |error: Error, start: &StartResult, headers: Headers| {
        let method = match start {
            Ok(StartLine::Request { method, .. }) => Some(method.clone()),
            Err((m, _)) => m.clone(),
            Ok(StartLine::Response { .. }) => None,
        };
        ParseFailure { error, partial: method.map(|method| Box::new(Partial { method, headers })) }
    };
    if let Err((_, e)) = &start {
        let e = e.clone();
        return Err(fail(e, &start, headers));
    }
    if let Some(e) = header_error {
        return Err(fail(e, &start, headers));
    }

    // Content-Length and body.
    let (cl_val, more_cl) = {
        let mut cl_vals = headers.get_all(&HeaderName::ContentLength);
        (cl_vals.next().cloned(), cl_vals.next().is_some())
    };
    if more_cl {
        return Err(fail(Error::bad("more than one Content-Length"), &start, headers));
    }
    let avail = b.len() - body_start;
    let body = match cl_val {
        Some(v) => match parse_u32(trim(&v)) {
            None => return Err(fail(Error::bad("Content-Length is not a non-negative number"), &start, headers)),
            Some(n) if n as usize > avail => {
                return Err(fail(Error::bad("Content-Length larger than the message"), &start, headers));
            }
            Some(n) if stream && n as usize != avail => {
                return Err(fail(Error::bad("Content-Length does not match the framed body"), &start, headers));
            }
            Some(n) => buf.slice(body_start..body_start + n as usize),
        },
        None if stream => return Err(fail(Error::bad("Content-Length is mandatory on streams"), &start, headers)),
        None => buf.slice(body_start..),
    };
    let start = start.unwrap_or_else(|_| unreachable!("checked above"));
    Ok(Message { start, headers, body })
}

/// Indexes the header lines from `pos` up to and including the empty line.
/// Fails only on a size limit or an unterminated header section on a stream;
/// a malformed line, or a datagram without the empty line, is reported in
/// [`Index::error`].
fn index_headers(buf: &Bytes, mut pos: usize, stream: bool, limits: &Limits) -> Result<Index> {
    let b = &buf[..];
    let mut idx = Index { headers: Headers::with_capacity(16), body_start: b.len(), error: None };
    // (start, end excluding the line break, folded) of the logical header being read.
    let mut cur: Option<(usize, usize, bool)> = None;
    loop {
        if pos >= b.len() {
            // A stream waits for more; a datagram is all there is, so one
            // whose header section never ends is truncated or malformed
            // (RFC 3261 §7: the empty line is mandatory, also without a
            // body). Still indexed, so that a request gets its 400.
            if stream {
                return Err(Error::bad("header section not terminated"));
            }
            idx.error = idx.error.or(Some(Error::bad("datagram without the empty line ending the header section")));
            break;
        }
        let lf = memchr::memchr(b'\n', &b[pos..]).map_or(b.len(), |p| pos + p);
        let line = strip_cr(&b[pos..lf]);
        let line_end = pos + line.len();
        if line.is_empty() {
            idx.body_start = (lf + 1).min(b.len());
            break;
        }
        if memchr::memchr(b'\r', line).is_some() {
            // A CR that does not end a line: some peers would take it as a line
            // break, so forwarding it could smuggle a header past them.
            idx.error = idx.error.or(Some(Error::bad("bare CR in header section")));
        }
        if is_ws(line[0]) {
            match cur.as_mut() {
                Some(c) => {
                    c.1 = line_end;
                    c.2 = true;
                }
                None => idx.error = idx.error.or(Some(Error::bad("continuation line before any header"))),
            }
        } else {
            if let Some((s, e, f)) = cur.take() {
                add_header(buf, s, e, f, &mut idx.headers, limits, &mut idx.error);
            }
            cur = Some((pos, line_end, false));
        }
        if cur.is_some_and(|c| c.1 - c.0 > limits.max_header_len) {
            return Err(Error::too_large("header field too long"));
        }
        if idx.headers.len() > limits.max_headers {
            return Err(Error::too_large("too many header fields"));
        }
        pos = lf + 1;
    }
    if let Some((s, e, f)) = cur.take() {
        add_header(buf, s, e, f, &mut idx.headers, limits, &mut idx.error);
    }
    if idx.headers.len() > limits.max_headers {
        return Err(Error::too_large("too many header fields"));
    }
    Ok(idx)
}

/// A size-limit failure. When the start line is a request, what is needed to
/// answer 513 (Via, From, To, Call-ID, CSeq, each within the limits) is
/// salvaged into `partial`, so that the sender hears why.
fn too_large(buf: &Bytes, sl_off: usize, error: Error, limits: &Limits) -> ParseFailure {
    let b = &buf[..];
    let sl_end = memchr::memchr(b'\n', &b[sl_off..]).map_or(b.len(), |p| sl_off + p);
    let Some(method) = request_method(strip_cr(&b[sl_off..sl_end])) else {
        return error.into();
    };
    let mut headers = Headers::with_capacity(8);
    let mut pos = sl_end + 1;
    let mut cur: Option<(usize, usize, bool)> = None;
    let keep = |cur: Option<(usize, usize, bool)>, headers: &mut Headers| {
        let Some((s, e, f)) = cur else { return };
        let line = &b[s..e];
        if e - s > limits.max_header_len {
            return;
        }
        let Some(colon) = memchr::memchr(b':', line) else { return };
        let Some(name) = HeaderName::known(trim(&line[..colon])) else { return };
        if matches!(name, HeaderName::Via | HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::CSeq) {
            let mut one = Headers::default();
            let mut err = None;
            add_header(buf, s, e, f, &mut one, limits, &mut err);
            for h in one.0 {
                if headers.len() < limits.max_headers {
                    headers.0.push(h);
                }
            }
        }
    };
    while pos < b.len() {
        let lf = memchr::memchr(b'\n', &b[pos..]).map_or(b.len(), |p| pos + p);
        let line = strip_cr(&b[pos..lf]);
        if line.is_empty() {
            break;
        }
        if is_ws(line[0]) {
            if let Some(c) = cur.as_mut() {
                c.1 = pos + line.len();
                c.2 = true;
            }
        } else {
            keep(cur.take(), &mut headers);
            cur = Some((pos, pos + line.len(), false));
        }
        pos = lf + 1;
    }
    keep(cur.take(), &mut headers);
    ParseFailure { error, partial: Some(Box::new(Partial { method, headers })) }
}

/// The method of a start line that looks like a request line.
fn request_method(sl: &[u8]) -> Option<Method> {
    if sl.len() >= 4 && sl[..4].eq_ignore_ascii_case(b"SIP/") {
        return None;
    }
    let m = &sl[..memchr::memchr(b' ', sl)?];
    all_token(m).then(|| Method::from_bytes(m))
}

fn strip_cr(s: &[u8]) -> &[u8] {
    s.strip_suffix(b"\r").unwrap_or(s)
}

fn add_header(
    buf: &Bytes,
    start: usize,
    end: usize,
    folded: bool,
    headers: &mut Headers,
    limits: &Limits,
    err: &mut Option<Error>,
) {
    let line = &buf[start..end];
    let Some(colon) = memchr::memchr(b':', line) else {
        *err = err.take().or(Some(Error::bad("header line without a colon")));
        return;
    };
    let name_raw = trim(&line[..colon]);
    if !all_token(name_raw) {
        *err = err.take().or(Some(Error::bad("invalid header name")));
        return;
    }
    let name = HeaderName::known(name_raw).unwrap_or_else(|| HeaderName::Other(buf.slice_ref(name_raw)));
    let value: Bytes =
        if folded { Bytes::from(unfold(&line[colon + 1..])) } else { buf.slice_ref(trim(&line[colon + 1..])) };
    if name.is_list() {
        let strict = matches!(
            name,
            HeaderName::Via | HeaderName::Contact | HeaderName::Route | HeaderName::RecordRoute | HeaderName::Path
        );
        let res = split_list(&value, |s, e| {
            if s == e {
                if strict {
                    return Err(Error::bad("empty element in header list"));
                }
                return Ok(());
            }
            if headers.len() <= limits.max_headers {
                headers.0.push(Header { name: name.clone(), value: value.slice(s..e) });
            }
            Ok(())
        });
        if let Err(e) = res {
            *err = err.take().or(Some(e));
        }
    } else {
        headers.0.push(Header { name, value });
    }
}

/// Replaces every line break with the white space around it by one SP.
fn unfold(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        if c == b'\r' || c == b'\n' {
            while i < v.len() && (v[i] == b'\r' || v[i] == b'\n' || is_ws(v[i])) {
                i += 1;
            }
            while out.last().is_some_and(|&c| is_ws(c)) {
                out.pop();
            }
            out.push(b' ');
            continue;
        }
        out.push(c);
        i += 1;
    }
    trim(&out).to_vec()
}

/// Splits a comma list, respecting quoted strings and `<...>`, and calls
/// `each` with the trimmed (start, end) of every element, empty ones
/// included (start == end). Stops at the first error.
fn split_list(v: &[u8], mut each: impl FnMut(usize, usize) -> Result<()>) -> Result<()> {
    let mut i = 0;
    let mut st = 0;
    let mut angle = false;
    let mut any = false;
    let mut emit = |s: usize, e: usize| {
        let t = trim(&v[s..e]);
        let ts = if t.is_empty() { s } else { t.as_ptr() as usize - v.as_ptr() as usize };
        each(ts, ts + t.len())
    };
    while i < v.len() {
        // Jump to the next octet that matters in the current state.
        let next = if angle { memchr::memchr(b'>', &v[i..]) } else { memchr::memchr3(b'"', b'<', b',', &v[i..]) };
        let Some(n) = next else { break };
        i += n;
        match v[i] {
            b'"' => {
                i = crate::params::skip_quoted(v, i)?;
                continue;
            }
            b'<' => angle = true,
            b'>' => angle = false,
            _ => {
                emit(st, i)?;
                any = true;
                st = i + 1;
            }
        }
        i += 1;
    }
    if angle {
        return Err(Error::bad("unterminated <> in header list"));
    }
    if any || !trim(&v[st..]).is_empty() {
        emit(st, v.len())?;
    }
    Ok(())
}

type StartResult = std::result::Result<StartLine, (Option<Method>, Error)>;

fn parse_start_line(buf: &Bytes, sl: &[u8]) -> StartResult {
    let bad = |r| Err((None, Error::bad(r)));
    if memchr::memchr(b'\r', sl).is_some() {
        return Err((request_method(sl), Error::bad("bare CR in start line")));
    }
    if sl.len() >= 4 && sl[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let mut it = sl.splitn(3, |&c| c == b' ');
        let ver = it.next().unwrap_or_default();
        let code = it.next().unwrap_or_default();
        if !ver.eq_ignore_ascii_case(b"SIP/2.0") {
            return Err((None, Error::version("unsupported SIP version")));
        }
        let Some(reason) = it.next() else { return bad("status line without reason phrase") };
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
            return bad("status code is not three digits");
        }
        let code = parse_u32(code).unwrap_or(0) as u16;
        if !(100..=699).contains(&code) {
            return bad("status code out of range");
        }
        if reason.iter().any(|&c| c < 0x20 && c != b'\t') {
            return bad("control character in reason phrase");
        }
        return Ok(StartLine::Response { code, reason: buf.slice_ref(reason) });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version (exactly single SPs).
    let mut parts = sl.split(|&c| c == b' ');
    let m = parts.next().unwrap_or_default();
    if !all_token(m) {
        return bad("invalid method");
    }
    let method = Method::from_bytes(m);
    let (Some(uri), Some(version), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err((Some(method), Error::bad("request line is not METHOD SP URI SP VERSION")));
    };
    if !(version.len() >= 5 && version[..4].eq_ignore_ascii_case(b"SIP/")) {
        return Err((Some(method), Error::bad("invalid SIP version")));
    }
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        return Err((Some(method), Error::version("unsupported SIP version")));
    }
    match Uri::parse(buf, uri) {
        Ok(uri) => Ok(StartLine::Request { method, uri }),
        Err(e) => Err((Some(method), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const L: Limits = Limits { max_message: 65_535, max_headers: 256, max_header_len: 16_384 };

    const INVITE_HEAD: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
Max-Forwards: 70\r\n";

    #[test]
    fn datagram_without_end_of_headers_is_a_400_with_partial() {
        let mut whole = INVITE_HEAD.to_vec();
        whole.extend_from_slice(b"\r\n");
        assert!(parse_datagram(Bytes::from(whole), &L).unwrap().validate().is_ok());
        // Truncated after a complete line, in the middle of one, or right
        // after the start line: never processed.
        let cut_line = &INVITE_HEAD[..INVITE_HEAD.len() - 10];
        let start_only = b"INVITE sip:bob@example.com SIP/2.0\r\n";
        for cut in [INVITE_HEAD, cut_line, &start_only[..]] {
            let f = parse_datagram(Bytes::copy_from_slice(cut), &L).unwrap_err();
            assert_eq!(f.error.status(), 400, "{}", f.error);
            assert!(f.error.reason.contains("empty line"), "{}", f.error);
            let p = f.partial.expect("a request keeps what it needs for a 400");
            assert_eq!(p.method, Method::Invite);
        }
        let f = parse_datagram(Bytes::copy_from_slice(INVITE_HEAD), &L).unwrap_err();
        assert_eq!(f.partial.unwrap().headers.get(&HeaderName::CallId).unwrap(), "c1");
        // A response without it is dropped (no partial).
        let resp = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nCSeq: 1 INVITE\r\n";
        assert!(parse_datagram(Bytes::from_static(resp), &L).unwrap_err().partial.is_none());
        // Bare-LF line ends still count.
        let lf = b"OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\n\n";
        assert!(parse_datagram(Bytes::from_static(lf), &L).is_ok());
    }

    #[test]
    fn nul_in_a_quoted_string_is_a_400() {
        for extra in [
            &b"Subject: x\r\nFrom: \"Al\0\" <sip:alice@example.com>;tag=1"[..],
            b"Contact: \"x\0\" <sip:bob@192.0.2.2>",
        ] {
            let mut m = INVITE_HEAD.to_vec();
            if extra.starts_with(b"Subject") {
                // Replace the From of the template.
                let at = m.windows(5).position(|w| w == b"From:").unwrap();
                let end = at + m[at..].windows(2).position(|w| w == b"\r\n").unwrap() + 2;
                m.drain(at..end);
            }
            m.extend_from_slice(extra);
            m.extend_from_slice(b"\r\n\r\n");
            let err = match parse_datagram(Bytes::from(m), &L) {
                Err(f) => f.error,
                Ok(m) => m.validate().unwrap_err(),
            };
            assert_eq!(err.status(), 400, "{err}");
            assert!(err.reason.contains("control character"), "{err}");
        }
        // Escaped as a quoted-pair it is legal (RFC 4475 intmeth).
        let mut m = INVITE_HEAD.to_vec();
        m.extend_from_slice(b"Contact: \"x\\\0\" <sip:bob@192.0.2.2>\r\n\r\n");
        assert!(parse_datagram(Bytes::from(m), &L).unwrap().validate().is_ok());
    }

    #[test]
    fn frames_by_content_length() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nl: 4\r\n\r\nabcdOPTIONS";
        assert_eq!(frame_stream(m, &L).unwrap(), Frame::Message { skip: 0, len: m.len() - 7 });
        assert_eq!(frame_stream(&m[..20], &L).unwrap(), Frame::Incomplete);
        assert_eq!(frame_stream(&m[..m.len() - 9], &L).unwrap(), Frame::Incomplete);
        assert!(frame_stream(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n", &L).is_err());
        assert!(frame_stream(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", &L).is_err());
        assert!(frame_stream(b"X sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r\nab", &L).is_err());
        // A folded value is read as the parser reads it (unfolded, one number).
        let folded = b"X sip:a@b SIP/2.0\r\nContent-Length:\r\n  2\r\n\r\nab";
        assert_eq!(frame_stream(folded, &L).unwrap(), Frame::Message { skip: 0, len: folded.len() });
        assert!(frame_stream(b"X sip:a@b SIP/2.0\r\nl: 1\r\n 2\r\n\r\nab", &L).is_err());
        assert!(frame_stream(b"X sip:a@b SIP/2.0\r\nl:\r\n\r\nab", &L).is_err());
        let huge = b"X sip:a@b SIP/2.0\r\nContent-Length: 4294967295\r\n\r\n";
        assert_eq!(frame_stream(huge, &L).unwrap_err().kind, ErrorKind::TooLarge);
    }

    #[test]
    fn keepalives() {
        assert_eq!(frame_stream(b"\r\n\r\n", &L).unwrap(), Frame::KeepAlive { len: 4, ping: true });
        // A CRLF that may be the first half of a ping waits for the next octets.
        assert_eq!(frame_stream(b"\r\n", &L).unwrap(), Frame::Incomplete);
        assert_eq!(frame_stream(b"\r\n\r", &L).unwrap(), Frame::Incomplete);
        assert_eq!(frame_stream(b"\n\r\n", &L).unwrap(), Frame::KeepAlive { len: 1, ping: false });
        assert_eq!(frame_stream(b"\r\n\r\n\r\n", &L).unwrap(), Frame::KeepAlive { len: 4, ping: true });
        assert_eq!(frame_stream(b"\n\n\n", &L).unwrap(), Frame::KeepAlive { len: 3, ping: false });
        assert_eq!(frame_stream(b"\r\nINV", &L).unwrap(), Frame::KeepAlive { len: 2, ping: false });
        assert_eq!(frame_stream(b"", &L).unwrap(), Frame::Incomplete);
    }

    fn split_vec(v: &[u8]) -> Result<Vec<(usize, usize)>> {
        let mut out = Vec::new();
        split_list(v, |s, e| {
            out.push((s, e));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn splits_lists() {
        let v = b"<sip:a@b>;x=\"1,2\", sip:c@d ,\"q,\" <sip:e@f>";
        let parts = split_vec(v).unwrap();
        let got: Vec<&[u8]> = parts.iter().map(|&(s, e)| &v[s..e]).collect();
        assert_eq!(got, vec![&b"<sip:a@b>;x=\"1,2\""[..], b"sip:c@d", b"\"q,\" <sip:e@f>"]);
        assert_eq!(split_vec(b"").unwrap(), vec![]);
        assert_eq!(split_vec(b"a,,b").unwrap().len(), 3);
        assert_eq!(split_vec(b" , ").unwrap().len(), 2);
        assert!(split_vec(b"<sip:a@b").is_err());
        assert!(split_vec(b"\"a,b").is_err());
    }

    #[test]
    fn unfolds() {
        assert_eq!(unfold(b" a\r\n  b\r\n\tc"), b"a b c");
    }
}
