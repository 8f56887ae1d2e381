//! name-addr / addr-spec values: From, To, Contact, Route, Record-Route, Path
//! (RFC 3261 §20, §25.1).
//!
//! The rule that decides whether a `;param` belongs to the URI or to the
//! header lives here: inside `<>` it is the URI's, after an addr-spec it is
//! the header's (RFC 4475 cparam01/cparam02).

use crate::chars::{is_token, is_ws, trim};
use crate::error::{Error, Result};
use crate::params::{Params, parse_header_params, skip_quoted};
use crate::uri::Uri;
use bytes::{BufMut, Bytes, BytesMut};

/// `[display-name] <uri> ;params` or `uri ;params`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name as received (quoted strings keep their quotes).
    pub display: Option<Bytes>,
    pub uri: Uri,
    pub params: Params,
}

impl NameAddr {
    /// Parses one (already list-split) header value.
    pub fn parse(value: &Bytes) -> Result<NameAddr> {
        let s = trim(&value[..]);
        if s.is_empty() {
            return Err(Error::bad("empty name-addr"));
        }
        let base = s.as_ptr() as usize - value.as_ptr() as usize;
        let sl = |a: usize, b: usize| value.slice(base + a..base + b);
        let (display, lt) = if s[0] == b'"' {
            let end = skip_quoted(s, 0)?;
            let mut i = end;
            while i < s.len() && is_ws(s[i]) {
                i += 1;
            }
            if s.get(i) != Some(&b'<') {
                return Err(Error::bad("quoted display name not followed by <"));
            }
            (Some(sl(0, end)), Some(i))
        } else {
            // A token display name runs up to '<'; an addr-spec's scheme up to
            // ':'. Whichever comes first decides (a '<' later on, inside a
            // quoted parameter value, is no name-addr).
            let special = s.iter().position(|&c| !(is_token(c) || is_ws(c)));
            match special.map(|p| (p, s[p])) {
                Some((p, b'<')) => {
                    let lt = p;
                    let d = trim(&s[..lt]);
                    let display = if d.is_empty() {
                        None
                    } else {
                        let o = d.as_ptr() as usize - s.as_ptr() as usize;
                        Some(sl(o, o + d.len()))
                    };
                    (display, Some(lt))
                }
                Some((_, b':')) | None => (None, None),
                Some(_) if memchr::memchr(b'<', s).is_some() => {
                    return Err(Error::bad("display name is neither tokens nor a quoted string"));
                }
                Some(_) => (None, None),
            }
        };
        match lt {
            Some(lt) => {
                let gt = memchr::memchr(b'>', &s[lt..]).ok_or(Error::bad("missing > in name-addr"))? + lt;
                let uri = Uri::parse(value, &s[lt + 1..gt])?;
                let params = parse_header_params(value, &s[gt + 1..])?;
                Ok(NameAddr { display, uri, params })
            }
            None => {
                // addr-spec: the URI ends at the first ';' and may hold no '?' or ','.
                let end = s.iter().position(|&c| c == b';' || is_ws(c)).unwrap_or(s.len());
                let u = &s[..end];
                if u.iter().any(|&c| c == b'?' || c == b',') {
                    return Err(Error::bad("URI with headers must be enclosed in <>"));
                }
                let uri = Uri::parse(value, u)?;
                let params = parse_header_params(value, &s[end..])?;
                Ok(NameAddr { display: None, uri, params })
            }
        }
    }

    /// A name-addr with just a URI.
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr { display: None, uri, params: Params::default() }
    }

    /// The `tag` parameter (From/To).
    pub fn tag(&self) -> Option<&Bytes> {
        self.params.value("tag")
    }

    /// Serialises, always in the `<uri>` form (which is never ambiguous).
    pub fn write(&self, out: &mut BytesMut) {
        if let Some(d) = &self.display {
            out.put_slice(d);
            out.put_u8(b' ');
        }
        out.put_u8(b'<');
        self.uri.write(out);
        out.put_u8(b'>');
        self.params.write(out);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(96);
        self.write(&mut b);
        b.freeze()
    }
}

/// A Contact value: `*` or a name-addr.
#[derive(Clone, Debug, PartialEq, Eq)]
// Boxing the name-addr would change the public API; `*` is rare and a
// Contact lives on the stack only while a REGISTER is handled.
#[allow(clippy::large_enum_variant)]
pub enum Contact {
    Star,
    Addr(NameAddr),
}

impl Contact {
    pub fn parse(value: &Bytes) -> Result<Contact> {
        if trim(value) == b"*" { Ok(Contact::Star) } else { NameAddr::parse(value).map(Contact::Addr) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn na(s: &'static str) -> Result<NameAddr> {
        NameAddr::parse(&Bytes::from_static(s.as_bytes()))
    }
    #[test]
    fn forms() {
        let a = na("\"Alice \\\"A\\\"\" <sip:alice@example.com;transport=tcp>;tag=1928").unwrap();
        assert_eq!(a.display.as_deref(), Some(&b"\"Alice \\\"A\\\"\""[..]));
        assert_eq!(a.tag().unwrap(), "1928");
        assert!(a.uri.as_sip().unwrap().params.contains("transport"));
        let b = na("caller<sip:caller@example.com>;tag=3").unwrap();
        assert_eq!(b.display.as_deref(), Some(&b"caller"[..]));
        let c = na("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert!(c.params.contains("unknownparam"));
        assert!(c.uri.as_sip().unwrap().params.is_empty());
        // A '<' inside a quoted parameter of an addr-spec.
        let e = na("tel:+1-2 ;x=\" a<b\";q=0.5").unwrap();
        assert_eq!(e.uri.to_string(), "tel:+1-2");
        assert_eq!(e.params.value("x").unwrap(), "\" a<b\"");
        let d = na("<sip:+19725552222@gw1.example.net;unknownparam>").unwrap();
        assert!(d.params.is_empty());
        assert!(d.uri.as_sip().unwrap().params.contains("unknownparam"));
    }
    #[test]
    fn rejects() {
        assert!(na("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(na("Bell, Alexander <sip:a.g.bell@bell-tel.com>;tag=43").is_err());
        assert!(na("\"Mr. J. User <sip:j.user@example.com>").is_err());
        assert!(na("< sip:user@example.com >").is_err());
        assert!(na("\"Joe\" <sip:joe@example.org>;;;;").is_err());
    }
    #[test]
    fn star() {
        assert_eq!(Contact::parse(&Bytes::from_static(b" * ")).unwrap(), Contact::Star);
    }
}
