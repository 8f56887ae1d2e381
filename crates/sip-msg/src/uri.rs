//! URIs: SIP/SIPS URIs parsed into parts (RFC 3261 §19.1, §25.1, RFC 5118
//! IPv6 references), every other scheme (tel, unknown) kept as an opaque
//! absolute URI so that the message still parses and the core can answer 416.
//!
//! Owns URI parsing, serialising and RFC 3261 §19.1.4 comparison.

use crate::chars::{escapes_valid, is_hostname, is_opaque, is_uri_header, is_user, unescape};
use crate::error::{Error, Result};
use crate::params::{Params, parse_uri_params};
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The host part of a SIP URI or Via sent-by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    Name(Bytes),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Host {
    /// Parses `example.com`, `192.0.2.1` or `[2001:db8::1]`.
    pub fn parse(src: &Bytes, s: &[u8]) -> Result<Host> {
        if !crate::chars::within(src, s) {
            let own = Bytes::copy_from_slice(s);
            return Host::parse(&own, &own);
        }
        if s.first() == Some(&b'[') {
            if s.last() != Some(&b']') {
                return Err(Error::bad("unterminated IPv6 reference"));
            }
            let txt = std::str::from_utf8(&s[1..s.len() - 1]).map_err(|_| Error::bad("bad IPv6 reference"))?;
            return txt.parse().map(Host::V6).map_err(|_| Error::bad("invalid IPv6 address"));
        }
        if s.is_empty() {
            return Err(Error::bad("empty host"));
        }
        // One pass: what characters, how many dots, any "..".
        let (mut dots, mut numeric, mut name_chars, mut double_dot) = (0, true, true, false);
        let mut prev = 0u8;
        for &c in s {
            if c == b'.' {
                dots += 1;
                double_dot |= prev == b'.';
            } else if !c.is_ascii_digit() {
                numeric = false;
            }
            name_chars &= is_hostname(c);
            prev = c;
        }
        if numeric && dots == 3 {
            return parse_v4(s).map(Host::V4).ok_or(Error::bad("invalid IPv4 address"));
        }
        if !name_chars || s[0] == b'.' || s[0] == b'-' || double_dot {
            return Err(Error::bad("invalid host name"));
        }
        Ok(Host::Name(src.slice_ref(s)))
    }
    /// The IP address, when the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::V4(a) => Some(IpAddr::V4(*a)),
            Host::V6(a) => Some(IpAddr::V6(*a)),
            Host::Name(_) => None,
        }
    }
    /// Case-insensitive host comparison.
    pub fn eq_host(&self, other: &Host) -> bool {
        match (self, other) {
            (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        }
    }
}

/// RFC 3261 IPv4address: four groups of 1*3DIGIT, each at most 255. Leading
/// zeros are decimal (`192.0.002.1` is 192.0.2.1), as the grammar allows
/// them; `std` refuses them.
fn parse_v4(s: &[u8]) -> Option<Ipv4Addr> {
    let mut out = [0u8; 4];
    let mut n = 0;
    for part in s.split(|&c| c == b'.') {
        if n == 4 || part.is_empty() || part.len() > 3 {
            return None;
        }
        out[n] = u8::try_from(crate::chars::parse_u32(part)?).ok()?;
        n += 1;
    }
    (n == 4).then(|| Ipv4Addr::from(out))
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Host::V4(a),
            IpAddr::V6(a) => Host::V6(a),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(&String::from_utf8_lossy(n)),
            Host::V4(a) => f.write_str(crate::chars::Ipv4Text::new(*a).as_str()),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A `sip:` or `sips:` URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipUri {
    pub secure: bool,
    /// The user part, still %-escaped as received.
    pub user: Option<Bytes>,
    pub password: Option<Bytes>,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
    /// The `?h=v&...` part without the `?`, still escaped.
    pub headers: Option<Bytes>,
}

/// Any URI that can stand in a request line or a name-addr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uri {
    Sip(SipUri),
    /// tel: and every other scheme: the scheme (lower-cased on compare) and
    /// the rest after the colon, both as received.
    Other {
        scheme: Bytes,
        rest: Bytes,
    },
}

impl Uri {
    /// Parses a URI occupying all of `s` (a slice of `src`).
    pub fn parse(src: &Bytes, s: &[u8]) -> Result<Uri> {
        if !crate::chars::within(src, s) {
            let own = Bytes::copy_from_slice(s);
            return Uri::parse(&own, &own);
        }
        let colon = memchr::memchr(b':', s).ok_or(Error::bad("URI without scheme"))?;
        let scheme = &s[..colon];
        if scheme.is_empty()
            || !scheme[0].is_ascii_alphabetic()
            || !scheme.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        {
            return Err(Error::bad("invalid URI scheme"));
        }
        let rest = &s[colon + 1..];
        if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
            return SipUri::parse_rest(src, rest, scheme.len() == 4).map(Uri::Sip);
        }
        if rest.is_empty() || !rest.iter().all(|&c| is_opaque(c)) || !escapes_valid(rest) {
            return Err(Error::bad("invalid character in URI"));
        }
        let off = s.as_ptr() as usize - src.as_ptr() as usize;
        Ok(Uri::Other { scheme: src.slice(off..off + colon), rest: src.slice(off + colon + 1..off + s.len()) })
    }

    /// Parses a URI from a standalone byte string.
    pub fn parse_bytes(b: impl Into<Bytes>) -> Result<Uri> {
        let b = b.into();
        Uri::parse(&b, &b[..])
    }

    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other { .. } => None,
        }
    }
    pub fn as_sip_mut(&mut self) -> Option<&mut SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other { .. } => None,
        }
    }
    /// The scheme in lower case (`sip`, `sips`, `tel`, ...).
    pub fn scheme(&self) -> String {
        match self {
            Uri::Sip(u) if u.secure => "sips".into(),
            Uri::Sip(_) => "sip".into(),
            Uri::Other { scheme, .. } => String::from_utf8_lossy(scheme).to_ascii_lowercase(),
        }
    }
    pub fn write(&self, out: &mut BytesMut) {
        match self {
            Uri::Sip(u) => u.write(out),
            Uri::Other { scheme, rest } => {
                out.put_slice(scheme);
                out.put_u8(b':');
                out.put_slice(rest);
            }
        }
    }
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.len_hint());
        self.write(&mut b);
        b.freeze()
    }

    /// The length of [`Uri::write`]'s output, exact except for an IPv6 host
    /// (at most its longest form): one allocation for [`Uri::to_bytes`].
    pub fn len_hint(&self) -> usize {
        match self {
            Uri::Sip(u) => u.len_hint(),
            Uri::Other { scheme, rest } => scheme.len() + 1 + rest.len(),
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.to_bytes();
        match std::str::from_utf8(&b) {
            Ok(s) => f.write_str(s),
            Err(_) => f.write_str(&String::from_utf8_lossy(&b)),
        }
    }
}

impl SipUri {
    fn parse_rest(src: &Bytes, s: &[u8], secure: bool) -> Result<SipUri> {
        let off = s.as_ptr() as usize - src.as_ptr() as usize;
        let slice = |a: usize, b: usize| src.slice(off + a..off + b);
        // userinfo ends at the first '@' ('@' is never legal unescaped after it).
        let (user, password, hp_start) = match memchr::memchr(b'@', s) {
            Some(at) => {
                let ui = &s[..at];
                if ui.is_empty() || !ui.iter().all(|&c| is_user(c)) || !escapes_valid(ui) {
                    return Err(Error::bad("invalid user part in SIP URI"));
                }
                match memchr::memchr(b':', ui) {
                    Some(c) => (Some(slice(0, c)), Some(slice(c + 1, at)), at + 1),
                    None => (Some(slice(0, at)), None, at + 1),
                }
            }
            None => (None, None, 0),
        };
        let rest = &s[hp_start..];
        let hp_end = rest.iter().position(|&c| c == b';' || c == b'?').unwrap_or(rest.len());
        let hostport = &rest[..hp_end];
        let (host_s, port) = split_hostport(hostport)?;
        let host = Host::parse(src, host_s)?;
        let after = &rest[hp_end..];
        let q = memchr::memchr(b'?', after).unwrap_or(after.len());
        let params = parse_uri_params(src, &after[..q])?;
        let headers = if q < after.len() {
            let h = &after[q + 1..];
            if h.is_empty() || !h.iter().all(|&c| is_uri_header(c)) || !escapes_valid(h) {
                return Err(Error::bad("invalid URI headers"));
            }
            let hoff = hp_start + hp_end + q + 1;
            Some(slice(hoff, hoff + h.len()))
        } else {
            None
        };
        Ok(SipUri { secure, user, password, host, port, params, headers })
    }

    /// A URI `sip:host[:port]` with nothing else.
    pub fn new(host: Host, port: Option<u16>) -> SipUri {
        SipUri { secure: false, user: None, password: None, host, port, params: Params::default(), headers: None }
    }

    /// The user part with %-escapes decoded.
    pub fn user_unescaped(&self) -> Option<Vec<u8>> {
        self.user.as_ref().map(|u| unescape(u))
    }

    /// See [`Uri::len_hint`].
    pub fn len_hint(&self) -> usize {
        let user = self.user.as_ref().map_or(0, |u| u.len() + 1 + self.password.as_ref().map_or(0, |p| p.len() + 1));
        let host = match &self.host {
            Host::Name(n) => n.len(),
            Host::V4(_) => 15,
            Host::V6(_) => 41,
        };
        let params: usize =
            self.params.0.iter().map(|(n, v)| 1 + n.len() + v.as_ref().map_or(0, |v| v.len() + 1)).sum();
        4 + usize::from(self.secure)
            + user
            + host
            + if self.port.is_some() { 6 } else { 0 }
            + params
            + self.headers.as_ref().map_or(0, |h| h.len() + 1)
    }

    pub fn write(&self, out: &mut BytesMut) {
        out.put_slice(if self.secure { b"sips:" } else { b"sip:" });
        if let Some(u) = &self.user {
            out.put_slice(u);
            if let Some(p) = &self.password {
                out.put_u8(b':');
                out.put_slice(p);
            }
            out.put_u8(b'@');
        }
        crate::chars::put_host(out, &self.host);
        if let Some(p) = self.port {
            out.put_u8(b':');
            crate::chars::put_decimal(out, u64::from(p));
        }
        self.params.write(out);
        if let Some(h) = &self.headers {
            out.put_u8(b'?');
            out.put_slice(h);
        }
    }

    /// RFC 3261 §19.1.4 URI equality.
    pub fn equivalent(&self, o: &SipUri) -> bool {
        if self.secure != o.secure
            || self.user_unescaped() != o.user_unescaped()
            || self.password.as_ref().map(|p| unescape(p)) != o.password.as_ref().map(|p| unescape(p))
            || !self.host.eq_host(&o.host)
            || self.port != o.port
        {
            return false;
        }
        // Parameter names and values compare case-insensitively after
        // unescaping (`;%6C%72` is `;lr`, `n%61me=v%61lue` is `name=value`).
        let norm = |p: &Params| -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
            p.0.iter()
                .map(|(n, v)| (unescape(n).to_ascii_lowercase(), v.as_ref().map(|v| unescape(v).to_ascii_lowercase())))
                .collect()
        };
        let (mine, theirs) = (norm(&self.params), norm(&o.params));
        let find =
            |ps: &[(Vec<u8>, Option<Vec<u8>>)], name: &[u8]| ps.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        // user, ttl, method, maddr and transport must match when in either one.
        for name in [&b"user"[..], b"ttl", b"method", b"maddr", b"transport"] {
            if find(&mine, name) != find(&theirs, name) {
                return false;
            }
        }
        // Any other parameter present in both must match (the first of a
        // repeated name counts, as for `Params::get`).
        for (i, (n, v)) in mine.iter().enumerate() {
            if mine[..i].iter().any(|(m, _)| m == n) {
                continue;
            }
            if let Some(ov) = find(&theirs, n)
                && &ov != v
            {
                return false;
            }
        }
        let hdrs = |h: &Option<Bytes>| {
            let mut v: Vec<Vec<u8>> = h
                .as_ref()
                .map(|h| h.split(|&c| c == b'&').map(|x| unescape(x).to_ascii_lowercase()).collect())
                .unwrap_or_default();
            v.sort();
            v
        };
        hdrs(&self.headers) == hdrs(&o.headers)
    }
}

/// Splits `host[:port]`, honouring `[v6]` references (RFC 5118 §4.3: inside
/// brackets a trailing `:5070` is part of the address, never a port).
pub fn split_hostport(s: &[u8]) -> Result<(&[u8], Option<u16>)> {
    let port_at = if s.first() == Some(&b'[') {
        let close = memchr::memchr(b']', s).ok_or(Error::bad("unterminated IPv6 reference"))?;
        match s.get(close + 1) {
            None => None,
            Some(b':') => Some(close + 1),
            Some(_) => return Err(Error::bad("garbage after IPv6 reference")),
        }
    } else {
        memchr::memchr(b':', s)
    };
    match port_at {
        None => Ok((s, None)),
        Some(c) => {
            let p = &s[c + 1..];
            let port =
                crate::chars::parse_u32(p).filter(|&p| p <= u32::from(u16::MAX)).ok_or(Error::bad("invalid port"))?;
            Ok((&s[..c], Some(port as u16)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn sip(s: &'static str) -> SipUri {
        match Uri::parse_bytes(s).unwrap() {
            Uri::Sip(u) => u,
            _ => panic!("not sip"),
        }
    }
    #[test]
    fn parses_parts() {
        let u = sip("sip:alice:pw@example.com:5070;transport=tcp;lr?subject=x%20y");
        assert_eq!(u.user.as_deref(), Some(&b"alice"[..]));
        assert_eq!(u.password.as_deref(), Some(&b"pw"[..]));
        assert_eq!(u.host, Host::Name(Bytes::from_static(b"example.com")));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.params.value("transport").unwrap(), "tcp");
        assert_eq!(u.headers.as_deref(), Some(&b"subject=x%20y"[..]));
        assert_eq!(Uri::Sip(u).to_string(), "sip:alice:pw@example.com:5070;transport=tcp;lr?subject=x%20y");
    }
    #[test]
    fn ipv6() {
        assert_eq!(sip("sip:[2001:db8::10]").host, Host::V6("2001:db8::10".parse().unwrap()));
        let u = sip("sip:[2001:db8::10]:5070");
        assert_eq!(u.port, Some(5070));
        let amb = sip("sip:[2001:db8::10:5070]");
        assert_eq!(amb.port, None);
        assert!(Uri::parse_bytes("sip:2001:db8::10").is_err());
        assert!(Uri::parse_bytes("sip:[2001:db8:::192.0.2.1]").is_err());
        assert!(Uri::parse_bytes("sip:[2001:db8::192.0.2.1]").is_ok());
        assert!(Uri::parse_bytes("sip:[2001:db8::10]x").is_err());
        assert!(Uri::parse_bytes("sip:[2001:db8::10]:").is_err());
        assert!(Uri::parse_bytes("sip:[2001:db8::10]:65536").is_err());
    }
    #[test]
    fn ipv4() {
        assert_eq!(sip("sip:192.0.2.1").host, Host::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(sip("sip:192.0.002.001").host, Host::V4(Ipv4Addr::new(192, 0, 2, 1)));
        for bad in ["sip:256.0.0.1", "sip:1..2.3", "sip:1.2.3.", "sip:1.2.3.0001"] {
            assert!(Uri::parse_bytes(bad).is_err(), "{bad}");
        }
    }
    #[test]
    fn foreign_slices() {
        // A slice that is not inside `src` is copied, never mis-sliced.
        let src = Bytes::from_static(b"unrelated");
        let u = Uri::parse(&src, b"sip:alice@example.com;lr").unwrap();
        assert_eq!(u.as_sip().unwrap().user.as_deref(), Some(&b"alice"[..]));
        assert!(Host::parse(&src, b"example.com").is_ok());
    }
    #[test]
    fn odd_users() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user.as_deref(), Some(&b"user;par=u%40example.net"[..]));
        assert!(u.params.is_empty());
        let u = sip("sip:null-%00-null@example.com");
        assert_eq!(u.user_unescaped().unwrap(), b"null-\0-null");
        assert!(Uri::parse_bytes("sip:bad%zz@example.com").is_err());
    }
    #[test]
    fn other_schemes() {
        assert_eq!(Uri::parse_bytes("tel:+1-201-555-0123").unwrap().scheme(), "tel");
        assert_eq!(Uri::parse_bytes("soap.beep://192.0.2.103:3002").unwrap().scheme(), "soap.beep");
        assert!(Uri::parse_bytes("<sip:a@b>").is_err());
        assert!(Uri::parse_bytes("nocolon").is_err());
        assert!(Uri::parse_bytes("sip:a b@c").is_err());
    }
    #[test]
    fn equality() {
        assert!(sip("sip:%61lice@ATLANTA.com;transport=TCP").equivalent(&sip("sip:alice@AtLanTa.CoM;Transport=tcp")));
        assert!(!sip("sip:alice@atlanta.com").equivalent(&sip("sip:ALICE@atlanta.com")));
        assert!(!sip("sip:bob@biloxi.com").equivalent(&sip("sip:bob@biloxi.com:5060")));
        assert!(!sip("sip:bob@biloxi.com;transport=udp").equivalent(&sip("sip:bob@biloxi.com")));
        assert!(sip("sip:carol@chicago.com;newparam=5").equivalent(&sip("sip:carol@chicago.com;security=on")));
        // Escaped parameter names and values (RFC 4475 esc01).
        let esc = sip("sip:caller@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31");
        assert!(esc.equivalent(&sip("sip:caller@host5.example.net;lr;name=value%2541")));
        assert!(!esc.equivalent(&sip("sip:caller@host5.example.net;lr;name=valueA")));
        assert!(!sip("sip:a@b;%74ransport=tcp").equivalent(&sip("sip:a@b;transport=udp")));
        assert!(!sip("sip:a@b;%74ransport=tcp").equivalent(&sip("sip:a@b")));
    }
}

#[cfg(test)]
mod len_hint_tests {
    use super::*;

    #[test]
    fn len_hint_is_never_short_and_exact_without_an_ip_or_port() {
        for text in [
            "sip:alice@example.com",
            "sips:alice:secret@example.com;transport=tls;lr?subject=hi",
            "sip:u1@127.0.0.1:5070;pn-provider=apns;pn-prid=PRID-u1-0123;pn-param=TEAM1.com.example.voip",
            "sip:[2001:db8::1]:5060;maddr=[2001:db8::2]",
            "sip:255.255.255.255:65535",
            "tel:+15551234567;phone-context=example.com",
        ] {
            let u = Uri::parse_bytes(Bytes::from(text)).unwrap();
            let written = u.to_bytes();
            assert!(u.len_hint() >= written.len(), "{text}: {} < {}", u.len_hint(), written.len());
            assert_eq!(u.to_string(), std::str::from_utf8(&written).unwrap());
        }
        let u = Uri::parse_bytes(Bytes::from_static(b"sips:alice@example.com;transport=tls?x=y")).unwrap();
        assert_eq!(u.len_hint(), u.to_bytes().len());
    }
}
