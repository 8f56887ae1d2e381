//! Generic `;name[=value]` parameter lists, for header fields (Via, Contact,
//! To/From, Feature-Caps) and for URIs.
//!
//! Owns parsing and serialising of parameter lists and case-insensitive
//! lookup; it knows nothing about what any parameter means.

use crate::chars::{is_token, is_uri_param, is_ws, trim};
use crate::error::{Error, Result};
use bytes::{BufMut, Bytes, BytesMut};

/// An ordered list of parameters; names compare case-insensitively.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(Bytes, Option<Bytes>)>);

impl Params {
    /// The value of `name`: `None` if absent, `Some(None)` if present without value.
    pub fn get(&self, name: &str) -> Option<Option<&Bytes>> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v.as_ref())
    }
    /// The value of `name` when present with a value.
    pub fn value(&self, name: &str) -> Option<&Bytes> {
        self.get(name).flatten()
    }
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    /// Sets (replacing) or adds a parameter.
    pub fn set(&mut self, name: &str, value: Option<Bytes>) {
        if let Some(e) = self.0.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())) {
            e.1 = value;
        } else {
            self.0.push((Bytes::copy_from_slice(name.as_bytes()), value));
        }
    }
    /// Removes a parameter; returns whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name.as_bytes()));
        before != self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Writes `;name=value` for each parameter.
    pub fn write(&self, out: &mut BytesMut) {
        for (n, v) in &self.0 {
            out.put_u8(b';');
            out.put_slice(n);
            if let Some(v) = v {
                out.put_u8(b'=');
                out.put_slice(v);
            }
        }
    }
}

/// Parses header-field parameters from `s`, which starts at a `;` or is empty
/// (after trimming). LWS is allowed around `;` and `=`. Values are tokens,
/// quoted strings (kept with their quotes) or bracketed IPv6 references.
pub fn parse_header_params(src: &Bytes, s: &[u8]) -> Result<Params> {
    if !crate::chars::within(src, s) {
        let own = Bytes::copy_from_slice(s);
        return parse_header_params(&own, &own);
    }
    let mut params = Params::default();
    let base = s.as_ptr() as usize - src.as_ptr() as usize;
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && is_ws(s[*i]) {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    while i < s.len() {
        if s[i] != b';' {
            return Err(Error::bad("unexpected character in header parameters"));
        }
        i += 1;
        skip_ws(&mut i);
        let ns = i;
        while i < s.len() && is_token(s[i]) {
            i += 1;
        }
        if ns == i {
            return Err(Error::bad("empty header parameter name"));
        }
        let name = src.slice(base + ns..base + i);
        skip_ws(&mut i);
        let mut value = None;
        if i < s.len() && s[i] == b'=' {
            i += 1;
            skip_ws(&mut i);
            let vs = i;
            if i < s.len() && s[i] == b'"' {
                i = skip_quoted(s, i)?;
            } else if i < s.len() && s[i] == b'[' {
                while i < s.len() && s[i] != b']' {
                    i += 1;
                }
                if i == s.len() {
                    return Err(Error::bad("unterminated IPv6 reference in parameter"));
                }
                i += 1;
            } else {
                while i < s.len() && (is_token(s[i]) || s[i] == b':') {
                    i += 1;
                }
                if vs == i {
                    return Err(Error::bad("empty header parameter value"));
                }
            }
            value = Some(src.slice(base + vs..base + i));
            skip_ws(&mut i);
        }
        params.0.push((name, value));
    }
    Ok(params)
}

/// Returns the index just past the closing quote of the quoted string that
/// starts at `s[start] == '"'`.
pub fn skip_quoted(s: &[u8], start: usize) -> Result<usize> {
    let mut i = start + 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            b'\r' | b'\n' => return Err(Error::bad("line break in quoted string")),
            _ => i += 1,
        }
    }
    Err(Error::bad("unterminated quoted string"))
}

/// Parses URI parameters from `s` (which starts at `;`): no white space.
pub fn parse_uri_params(src: &Bytes, s: &[u8]) -> Result<Params> {
    if !crate::chars::within(src, s) {
        let own = Bytes::copy_from_slice(s);
        return parse_uri_params(&own, &own);
    }
    let mut params = Params::default();
    if s.is_empty() {
        return Ok(params);
    }
    if s[0] != b';' {
        return Err(Error::bad("URI parameters must start with ';'"));
    }
    // One pass: paramchar / escapes, at most one '=' and not first.
    let mut i = 1;
    loop {
        let start = i;
        let mut eq = None;
        while i < s.len() && s[i] != b';' {
            match s[i] {
                b'=' if eq.is_some() || i == start => return Err(Error::bad("malformed URI parameter")),
                b'=' => eq = Some(i),
                b'%' => {
                    if !(s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                        && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                    {
                        return Err(Error::bad("invalid escape in URI parameter"));
                    }
                    i += 2;
                }
                c if !is_uri_param(c) => return Err(Error::bad("invalid character in URI parameter")),
                _ => {}
            }
            i += 1;
        }
        if start == i {
            return Err(Error::bad("empty URI parameter"));
        }
        params.0.push(match eq {
            Some(eq) => (src.slice_ref(&s[start..eq]), Some(src.slice_ref(&s[eq + 1..i]))),
            None => (src.slice_ref(&s[start..i]), None),
        });
        if i >= s.len() {
            break;
        }
        i += 1;
    }
    Ok(params)
}

/// Unquotes a quoted string (`"a\"b"` → `a"b`); returns the input if not quoted.
pub fn unquote(v: &[u8]) -> Vec<u8> {
    let v = trim(v);
    if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
        let mut out = Vec::with_capacity(v.len() - 2);
        let mut i = 1;
        while i < v.len() - 1 {
            if v[i] == b'\\' && i + 1 < v.len() - 1 {
                i += 1;
            }
            out.push(v[i]);
            i += 1;
        }
        out
    } else {
        v.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn header_params() {
        let b = Bytes::from_static(b" ; tag = abc ;lr; q=0.5;x=\"a;b\";received=[2001:db8::9:255]");
        let p = parse_header_params(&b, &b[..]).unwrap();
        assert_eq!(p.value("TAG").unwrap(), "abc");
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.value("x").unwrap(), "\"a;b\"");
        assert_eq!(p.value("received").unwrap(), "[2001:db8::9:255]");
        let bad = Bytes::from_static(b";;");
        assert!(parse_header_params(&bad, &bad[..]).is_err());
        let bad = Bytes::from_static(b";x=\"open");
        assert!(parse_header_params(&bad, &bad[..]).is_err());
    }
    #[test]
    fn uri_params() {
        let b = Bytes::from_static(b";transport=tcp;lr;pn-prid=ab%3Acd");
        let p = parse_uri_params(&b, &b[..]).unwrap();
        assert_eq!(p.value("transport").unwrap(), "tcp");
        assert!(p.contains("lr"));
        for bad in [&b";"[..], b";a b", b";a==b"] {
            let bad = Bytes::from_static(bad);
            assert!(parse_uri_params(&bad, &bad[..]).is_err());
        }
    }
    #[test]
    fn unquoting() {
        assert_eq!(unquote(b"\"a\\\"b\""), b"a\"b");
        assert_eq!(unquote(b"plain"), b"plain");
    }
}
