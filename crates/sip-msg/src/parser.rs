//! The zero-copy message parser and the stream framer.
//!
//! Owns framing (datagram: the whole datagram, Content-Length may be absent
//! and trailing octets are ignored; stream: Content-Length is mandatory and
//! exact), the start line, header line splitting with folding and comma
//! lists, and the hard limits, which are checked before anything is
//! allocated. Header *values* are typed lazily by the accessors on
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

/// A message that could not be parsed. When the start line was a request and
/// the headers could be indexed, `partial` holds what is needed to answer it
/// (its method and headers), so a server can send 400/505 instead of silence.
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

/// Parses one datagram (UDP): the message is the datagram; with no
/// Content-Length the body is the rest of it; octets after the body are ignored.
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
    /// Only CRLFs: `ping` is true when a double CRLF (RFC 5626 ping) was seen.
    KeepAlive { len: usize, ping: bool },
    /// More octets are needed.
    Incomplete,
}

/// Frames the next message in a stream buffer by its Content-Length.
/// Errors (missing, repeated, negative or oversized Content-Length, header
/// section over the limit) mean the stream cannot be resynchronised and the
/// connection must be closed.
pub fn frame_stream(buf: &[u8], limits: &Limits) -> Result<Frame> {
    let skip = buf.iter().position(|&c| c != b'\r' && c != b'\n').unwrap_or(buf.len());
    if skip == buf.len() {
        if skip == 0 {
            return Ok(Frame::Incomplete);
        }
        let ping = buf.windows(4).any(|w| w == b"\r\n\r\n");
        // Keep a lone CR that may start the next CRLF.
        let len = if buf.ends_with(b"\r") { skip - 1 } else { skip };
        return if len == 0 { Ok(Frame::Incomplete) } else { Ok(Frame::KeepAlive { len, ping }) };
    }
    if skip > 0 {
        let ping = buf[..skip].windows(4).any(|w| w == b"\r\n\r\n");
        return Ok(Frame::KeepAlive { len: skip, ping });
    }
    let Some(hdr_end) = find_header_end(buf) else {
        if buf.len() > limits.max_message {
            return Err(Error::too_large("header section larger than the message limit"));
        }
        return Ok(Frame::Incomplete);
    };
    let mut cl: Option<usize> = None;
    let head = &buf[..hdr_end];
    let mut lines = head.split(|&c| c == b'\n');
    lines.next(); // start line
    let mut prev_cl = false;
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|&c| is_ws(c)) {
            if prev_cl {
                return Err(Error::bad("folded Content-Length"));
            }
            continue;
        }
        prev_cl = false;
        let Some(colon) = memchr::memchr(b':', line) else { continue };
        let name = trim(&line[..colon]);
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            if cl.is_some() {
                return Err(Error::bad("more than one Content-Length"));
            }
            let v = trim(&line[colon + 1..]);
            let n = parse_u32(v).ok_or(Error::bad("Content-Length is not a non-negative number"))?;
            cl = Some(n as usize);
            prev_cl = true;
        }
    }
    let cl = cl.ok_or(Error::bad("Content-Length is mandatory on stream transports"))?;
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

fn parse(buf: Bytes, stream: bool, limits: &Limits) -> std::result::Result<Message, ParseFailure> {
    if buf.len() > limits.max_message {
        return Err(Error::too_large("message larger than the limit").into());
    }
    let b = &buf[..];
    let mut pos = b.iter().position(|&c| c != b'\r' && c != b'\n').unwrap_or(b.len());
    if pos == b.len() {
        return Err(Error::bad("empty message").into());
    }
    // Start line.
    let sl_end = memchr::memchr(b'\n', &b[pos..]).map(|p| pos + p).ok_or(Error::bad("no end of start line"))?;
    let sl = strip_cr(&b[pos..sl_end]);
    if sl.len() > limits.max_header_len {
        return Err(Error::too_large("start line too long").into());
    }
    let sl_off = pos;
    pos = sl_end + 1;

    // Header lines: (start, end) of each logical header (folded lines joined).
    let mut headers = Headers::with_capacity(16);
    let body_start;
    let mut header_error: Option<Error> = None;
    let mut cur: Option<(usize, usize, bool)> = None; // start, end (excl. line break), folded
    loop {
        if pos >= b.len() {
            // A datagram may end without the empty line (RFC 4475 baddn).
            if stream {
                return Err(Error::bad("header section not terminated").into());
            }
            if let Some((s, e, f)) = cur.take() {
                add_header(&buf, s, e, f, &mut headers, limits, &mut header_error);
            }
            body_start = b.len();
            break;
        }
        let lf = memchr::memchr(b'\n', &b[pos..]).map_or(b.len(), |p| pos + p);
        let line = strip_cr(&b[pos..lf]);
        let line_end = pos + line.len();
        if line.is_empty() {
            if let Some((s, e, f)) = cur.take() {
                add_header(&buf, s, e, f, &mut headers, limits, &mut header_error);
            }
            body_start = (lf + 1).min(b.len());
            break;
        }
        if is_ws(line[0]) {
            match cur.as_mut() {
                Some(c) => {
                    c.1 = line_end;
                    c.2 = true;
                }
                None => header_error = header_error.or(Some(Error::bad("continuation line before any header"))),
            }
        } else {
            if let Some((s, e, f)) = cur.take() {
                add_header(&buf, s, e, f, &mut headers, limits, &mut header_error);
            }
            cur = Some((pos, line_end, false));
        }
        if cur.is_some_and(|c| c.1 - c.0 > limits.max_header_len) {
            return Err(Error::too_large("header field too long").into());
        }
        if headers.len() > limits.max_headers {
            return Err(Error::too_large("too many header fields").into());
        }
        pos = lf + 1;
    }
    if headers.len() > limits.max_headers {
        return Err(Error::too_large("too many header fields").into());
    }

    let start = parse_start_line(&buf, sl, sl_off);
    let fail = |error: Error, start: &std::result::Result<StartLine, (Option<Method>, Error)>, headers: Headers| {
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
    let cl_count = headers.count(&HeaderName::ContentLength);
    let cl_val = headers.get(&HeaderName::ContentLength).cloned();
    if cl_count > 1 {
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
    let name = HeaderName::from_bytes(name_raw);
    let value: Bytes = if folded {
        Bytes::from(unfold(&line[colon + 1..]))
    } else {
        let v = trim(&line[colon + 1..]);
        let off = v.as_ptr() as usize - buf.as_ptr() as usize;
        buf.slice(off..off + v.len())
    };
    if name.is_list() {
        let strict = matches!(
            name,
            HeaderName::Via | HeaderName::Contact | HeaderName::Route | HeaderName::RecordRoute | HeaderName::Path
        );
        match split_list(&value) {
            Ok(parts) => {
                for (s, e) in parts {
                    if s == e {
                        if strict {
                            *err = err.take().or(Some(Error::bad("empty element in header list")));
                            return;
                        }
                        continue;
                    }
                    if headers.len() > limits.max_headers {
                        return;
                    }
                    headers.0.push(Header { name: name.clone(), value: value.slice(s..e) });
                }
            }
            Err(e) => *err = err.take().or(Some(e)),
        }
    } else {
        headers.0.push(Header { name, value });
    }
}

/// Replaces every line break with the white space after it by one SP.
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

/// Splits a comma list, respecting quoted strings and `<...>`; returns the
/// trimmed (start, end) of each element.
fn split_list(v: &[u8]) -> Result<Vec<(usize, usize)>> {
    let mut out = Vec::with_capacity(2);
    let mut i = 0;
    let mut st = 0;
    let mut angle = false;
    let push = |out: &mut Vec<(usize, usize)>, s: usize, e: usize| {
        let t = trim(&v[s..e]);
        let ts = if t.is_empty() { s } else { t.as_ptr() as usize - v.as_ptr() as usize };
        out.push((ts, ts + t.len()));
    };
    while i < v.len() {
        match v[i] {
            b'"' if !angle => {
                i = crate::params::skip_quoted(v, i)?;
                continue;
            }
            b'<' => angle = true,
            b'>' => angle = false,
            b',' if !angle => {
                push(&mut out, st, i);
                st = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if angle {
        return Err(Error::bad("unterminated <> in header list"));
    }
    if !(out.is_empty() && trim(&v[st..]).is_empty()) {
        push(&mut out, st, v.len());
    }
    Ok(out)
}

type StartResult = std::result::Result<StartLine, (Option<Method>, Error)>;

fn parse_start_line(buf: &Bytes, sl: &[u8], off: usize) -> StartResult {
    let bad = |r| Err((None, Error::bad(r)));
    if sl.len() >= 4 && sl[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let mut it = sl.splitn(3, |&c| c == b' ');
        let ver = it.next().unwrap_or_default();
        let code = it.next().unwrap_or_default();
        if !ver.eq_ignore_ascii_case(b"SIP/2.0") {
            return Err((None, Error { kind: ErrorKind::VersionNotSupported, reason: "unsupported SIP version" }));
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
        let ro = off + (sl.len() - reason.len());
        return Ok(StartLine::Response { code, reason: buf.slice(ro..ro + reason.len()) });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version (exactly single SPs).
    let parts: Vec<&[u8]> = sl.split(|&c| c == b' ').collect();
    let method = parts.first().filter(|m| all_token(m)).map(|m| Method::from_bytes(m));
    let Some(method) = method else { return bad("invalid method") };
    if parts.len() != 3 {
        return Err((Some(method), Error::bad("request line is not METHOD SP URI SP VERSION")));
    }
    let version = parts[2];
    if !(version.len() >= 5 && version[..4].eq_ignore_ascii_case(b"SIP/")) {
        return Err((Some(method), Error::bad("invalid SIP version")));
    }
    if !version.eq_ignore_ascii_case(b"SIP/2.0") {
        return Err((Some(method), Error { kind: ErrorKind::VersionNotSupported, reason: "unsupported SIP version" }));
    }
    match Uri::parse(buf, parts[1]) {
        Ok(uri) => Ok(StartLine::Request { method, uri }),
        Err(e) => Err((Some(method), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const L: Limits = Limits { max_message: 65_535, max_headers: 256, max_header_len: 16_384 };

    #[test]
    fn frames_by_content_length() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nl: 4\r\n\r\nabcdOPTIONS";
        assert_eq!(frame_stream(m, &L).unwrap(), Frame::Message { skip: 0, len: m.len() - 7 });
        assert_eq!(frame_stream(&m[..20], &L).unwrap(), Frame::Incomplete);
        assert_eq!(frame_stream(&m[..m.len() - 9], &L).unwrap(), Frame::Incomplete);
        assert!(frame_stream(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n", &L).is_err());
        assert!(frame_stream(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", &L).is_err());
        assert!(frame_stream(b"X sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r\nab", &L).is_err());
        let huge = b"X sip:a@b SIP/2.0\r\nContent-Length: 4294967295\r\n\r\n";
        assert_eq!(frame_stream(huge, &L).unwrap_err().kind, ErrorKind::TooLarge);
    }

    #[test]
    fn keepalives() {
        assert_eq!(frame_stream(b"\r\n\r\n", &L).unwrap(), Frame::KeepAlive { len: 4, ping: true });
        assert_eq!(frame_stream(b"\r\n", &L).unwrap(), Frame::KeepAlive { len: 2, ping: false });
        assert_eq!(frame_stream(b"\r\n\r", &L).unwrap(), Frame::KeepAlive { len: 2, ping: false });
        assert_eq!(frame_stream(b"\r\nINV", &L).unwrap(), Frame::KeepAlive { len: 2, ping: false });
        assert_eq!(frame_stream(b"", &L).unwrap(), Frame::Incomplete);
    }

    #[test]
    fn splits_lists() {
        let v = b"<sip:a@b>;x=\"1,2\", sip:c@d ,\"q,\" <sip:e@f>";
        let parts = split_list(v).unwrap();
        let got: Vec<&[u8]> = parts.iter().map(|&(s, e)| &v[s..e]).collect();
        assert_eq!(got, vec![&b"<sip:a@b>;x=\"1,2\""[..], b"sip:c@d", b"\"q,\" <sip:e@f>"]);
        assert_eq!(split_list(b"").unwrap(), vec![]);
        assert_eq!(split_list(b"a,,b").unwrap().len(), 3);
    }

    #[test]
    fn unfolds() {
        assert_eq!(unfold(b" a\r\n  b\r\n\tc"), b"a b c");
    }
}
