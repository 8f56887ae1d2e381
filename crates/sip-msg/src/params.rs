//! Generic `;name[=value]` parameter lists, for header fields (Via, Contact,
//! To/From, Feature-Caps) and for URIs.
//!
//! Owns parsing and serialising of parameter lists and case-insensitive
//! lookup; it knows nothing about what any parameter means.
//!
//! URI parameter names are stored in one canonical form: the URI parser
//! decodes every `%HH` escape of a character that may stand unescaped in a
//! name (RFC 3261 §19.1.4: `;pn%2Dprovider` is `;pn-provider`). So lookup by
//! name (`get`, `value`, `contains`, `remove`), URI comparison and any code
//! that walks the list agree on escaped names without unescaping again.
//! Header parameter names are tokens, where `%` is a plain character.

use crate::chars::{is_token, is_uri_param, is_ws, trim, unescape};
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
/// starts at `s[start] == '"'`: the one quoted-string parser (RFC 3261
/// §25.1). `qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII`, so a
/// raw control character (NUL included; HTAB is LWS) is malformed;
/// `quoted-pair = "\\" (%x00-09 / %x0B-0C / %x0E-7F)` may escape any of
/// them except CR and LF.
pub fn skip_quoted(s: &[u8], start: usize) -> Result<usize> {
    let mut i = start + 1;
    while i < s.len() {
        match s[i] {
            b'\\' => match s.get(i + 1) {
                Some(b'\r' | b'\n') => return Err(Error::bad("line break in quoted string")),
                _ => i += 2,
            },
            b'"' => return Ok(i + 1),
            b'\r' | b'\n' => return Err(Error::bad("line break in quoted string")),
            b'\t' => i += 1,
            c if c < 0x20 || c == 0x7f => return Err(Error::bad("control character in quoted string")),
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
        let name_end = eq.unwrap_or(i);
        let name = canonical_name(src.slice_ref(&s[start..name_end]));
        params.0.push((name, eq.map(|eq| src.slice_ref(&s[eq + 1..i]))));
        if i >= s.len() {
            break;
        }
        i += 1;
    }
    Ok(params)
}

/// The canonical form of a URI parameter name (escapes already validated):
/// escapes of characters that are legal unescaped in a name are decoded;
/// others (`%3B`, `%25`, non-ASCII) stay escaped, so that the name still
/// serialises to a valid, equivalent parameter. Names without `%` are the
/// received slice (no copy).
fn canonical_name(name: Bytes) -> Bytes {
    if memchr::memchr(b'%', &name).is_none() {
        return name;
    }
    let mut out = Vec::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        if name[i] == b'%' && i + 2 < name.len() {
            let decoded = unescape(&name[i..i + 3]);
            match decoded.first() {
                Some(&c) if c != b'%' && is_uri_param(c) => out.push(c),
                _ => out.extend_from_slice(&name[i..i + 3]),
            }
            i += 3;
        } else {
            out.push(name[i]);
            i += 1;
        }
    }
    Bytes::from(out)
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
        assert_eq!(p.value("pn-prid").unwrap(), "ab%3Acd", "values are kept as received");
        for bad in [&b";"[..], b";a b", b";a==b"] {
            let bad = Bytes::from_static(bad);
            assert!(parse_uri_params(&bad, &bad[..]).is_err());
        }
    }
    #[test]
    fn escaped_uri_param_names_are_found() {
        let b = Bytes::from_static(b";pn%2Dprovider=apns;PN%2dPrid=tok;%6C%72;a%3Bb=1;x%25y");
        let mut p = parse_uri_params(&b, &b[..]).unwrap();
        // RFC 3261 §19.1.4: escaped and unescaped names are the same name,
        // and parameter names compare case-insensitively.
        assert_eq!(p.value("pn-provider").unwrap(), "apns");
        assert_eq!(p.value("PN-PROVIDER").unwrap(), "apns");
        assert_eq!(p.value("pn-prid").unwrap(), "tok");
        assert_eq!(p.get("lr"), Some(None));
        assert!(p.contains("LR"));
        // Escapes of characters a name cannot hold unescaped stay escaped.
        assert_eq!(p.value("a%3Bb").unwrap(), "1");
        assert!(p.contains("x%25y"));
        // Serialises to valid, equivalent parameters that parse the same.
        let mut out = BytesMut::new();
        p.write(&mut out);
        assert_eq!(&out[..], b";pn-provider=apns;PN-Prid=tok;lr;a%3Bb=1;x%25y");
        let again = Bytes::from(out.to_vec());
        assert_eq!(parse_uri_params(&again, &again[..]).unwrap(), p);
        assert!(p.remove("pn-prid"));
        assert!(!p.contains("pn%2Dprid"));
        // Header parameter names are tokens: '%' is literal there.
        let h = Bytes::from_static(b";ex%70ires=10");
        assert!(!parse_header_params(&h, &h[..]).unwrap().contains("expires"));
    }
    #[test]
    fn quoted_strings() {
        assert_eq!(skip_quoted(b"\"a\\\"b\" x", 0).unwrap(), 6);
        // RFC 3261 qdtext excludes control characters; quoted-pair may escape
        // them, but not CR or LF.
        assert!(skip_quoted(b"\"a\0b\"", 0).is_err());
        assert!(skip_quoted(b"\"a\x07b\"", 0).is_err());
        assert!(skip_quoted(b"\"a\x7fb\"", 0).is_err());
        assert!(skip_quoted(b"\"a\\\0b\"", 0).is_ok());
        assert!(skip_quoted(b"\"a\tb \xc3\xa9\"", 0).is_ok());
        assert!(skip_quoted(b"\"a\\\rb\"", 0).is_err());
        let nul = Bytes::from_static(b";x=\"a\0b\"");
        assert!(parse_header_params(&nul, &nul[..]).is_err());
    }
    #[test]
    fn unquoting() {
        assert_eq!(unquote(b"\"a\\\"b\""), b"a\"b");
        assert_eq!(unquote(b"plain"), b"plain");
    }
}
