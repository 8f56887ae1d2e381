//! Character classes of the RFC 3261 §25 grammar, as lookup tables.
//!
//! Owns nothing but pure functions over bytes; every other module asks here
//! instead of writing its own `matches!` so the grammar lives in one place.

const fn table(chars: &[u8], alnum: bool) -> [bool; 256] {
    let mut t = [false; 256];
    if alnum {
        let mut c = b'0';
        while c <= b'9' {
            t[c as usize] = true;
            c += 1;
        }
        c = b'a';
        while c <= b'z' {
            t[c as usize] = true;
            t[(c - 32) as usize] = true;
            c += 1;
        }
    }
    let mut i = 0;
    while i < chars.len() {
        t[chars[i] as usize] = true;
        i += 1;
    }
    t
}

/// token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
static TOKEN: [bool; 256] = table(b"-.!%*_+`'~", true);
/// unreserved / escaped-start / user-unreserved / password chars, used for the
/// userinfo of SIP URIs.
static USER: [bool; 256] = table(b"-_.!~*'()%&=+$,;?/:", true);
/// paramchar plus what may stand in a header value of a URI.
static URI_PARAM: [bool; 256] = table(b"[]/:&+$-_.!~*'()%", true);
static URI_HEADER: [bool; 256] = table(b"[]/?:+$-_.!~*'()%=&", true);
/// Host names: alphanum, "-", ".", and "_" (seen in the wild; harmless).
static HOSTNAME: [bool; 256] = table(b"-._", true);
/// Characters of a generic (non-SIP) absolute URI after the scheme.
static OPAQUE: [bool; 256] = table(b";/?:@&=+$,-_.!~*'()%[]#", true);

#[inline]
pub fn is_token(c: u8) -> bool {
    TOKEN[c as usize]
}
#[inline]
pub fn is_user(c: u8) -> bool {
    USER[c as usize]
}
#[inline]
pub fn is_uri_param(c: u8) -> bool {
    URI_PARAM[c as usize]
}
#[inline]
pub fn is_uri_header(c: u8) -> bool {
    URI_HEADER[c as usize]
}
#[inline]
pub fn is_hostname(c: u8) -> bool {
    HOSTNAME[c as usize]
}
#[inline]
pub fn is_opaque(c: u8) -> bool {
    OPAQUE[c as usize]
}
#[inline]
pub fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Whether `s` is a non-empty token.
pub fn all_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&c| is_token(c))
}

/// Trims SP / HTAB at both ends.
pub fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&c| !is_ws(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|&c| !is_ws(c)).map_or(start, |e| e + 1);
    &s[start..end]
}

/// Validates `%HH` escapes: every `%` must be followed by two hex digits.
pub fn escapes_valid(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if i + 2 >= s.len() || !(s[i + 1].is_ascii_hexdigit() && s[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Decodes `%HH` escapes (the input must have passed [`escapes_valid`]).
pub fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            let h = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(h(s[i + 1]) * 16 + h(s[i + 2]));
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

/// Whether `s` lies inside `src` (so that `src.slice_ref(s)` and offset
/// arithmetic between the two are valid).
pub fn within(src: &[u8], s: &[u8]) -> bool {
    let (a, b) = (src.as_ptr() as usize, s.as_ptr() as usize);
    b >= a && b + s.len() <= a + src.len()
}

/// The decimal digits of `n` in `buf[i..]`; returns `i`.
fn decimal_digits(mut n: u64, buf: &mut [u8; 20]) -> usize {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return i;
        }
    }
}

/// Appends the decimal form of `n` (no allocation).
pub(crate) fn put_decimal(out: &mut bytes::BytesMut, n: u64) {
    let mut buf = [0u8; 20];
    let i = decimal_digits(n, &mut buf);
    bytes::BufMut::put_slice(out, &buf[i..]);
}

/// The dotted-quad text of an IPv4 address, written without the formatting
/// machinery: `Ipv4Addr`'s `Display` costs about 1,100 instructions (four
/// padded integers through `fmt::write`), this about a tenth, and a REGISTER
/// writes addresses some ten times (Via `received`, Contact, the 200's
/// headers, the stored row).
#[derive(Clone, Copy)]
pub struct Ipv4Text {
    buf: [u8; 21],
    len: u8,
}

impl Ipv4Text {
    pub fn new(a: std::net::Ipv4Addr) -> Ipv4Text {
        let mut t = Ipv4Text { buf: [0; 21], len: 0 };
        for (i, o) in a.octets().into_iter().enumerate() {
            if i > 0 {
                t.push(b'.');
            }
            t.push_u16(u16::from(o));
        }
        t
    }

    /// `a:port`, as a socket address is written.
    pub fn with_port(a: std::net::Ipv4Addr, port: u16) -> Ipv4Text {
        let mut t = Ipv4Text::new(a);
        t.push(b':');
        t.push_u16(port);
        t
    }

    fn push(&mut self, c: u8) {
        self.buf[usize::from(self.len)] = c;
        self.len += 1;
    }

    fn push_u16(&mut self, n: u16) {
        let mut digits = [0u8; 20];
        let i = decimal_digits(u64::from(n), &mut digits);
        for &d in &digits[i..] {
            self.push(d);
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits, dots and a colon were written.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// A socket address as text (`a.b.c.d:port` or `[v6]:port`), IPv4 without
/// the formatting machinery.
pub fn socket_addr_string(a: std::net::SocketAddr) -> String {
    match a {
        std::net::SocketAddr::V4(v4) => Ipv4Text::with_port(*v4.ip(), v4.port()).as_str().to_owned(),
        v6 => v6.to_string(),
    }
}

/// An IP address as text, IPv4 without the formatting machinery.
pub fn ip_string(a: std::net::IpAddr) -> String {
    match a {
        std::net::IpAddr::V4(v4) => Ipv4Text::new(v4).as_str().to_owned(),
        v6 => v6.to_string(),
    }
}

/// Appends a host as it is written in a URI or Via (IPv6 in brackets).
pub(crate) fn put_host(out: &mut bytes::BytesMut, h: &crate::uri::Host) {
    use std::fmt::Write;
    match h {
        crate::uri::Host::Name(n) => bytes::BufMut::put_slice(out, n),
        crate::uri::Host::V4(a) => bytes::BufMut::put_slice(out, Ipv4Text::new(*a).as_bytes()),
        crate::uri::Host::V6(a) => {
            let _ = write!(out, "[{a}]");
        }
    }
}

/// Whether `s` is `delta-seconds = 1*DIGIT` (RFC 3261 §25.1), of any size.
pub fn is_delta_seconds(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(u8::is_ascii_digit)
}

/// Parses a decimal number of at most `u32` range; leading zeros allowed.
pub fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
        if v > u64::from(u32::MAX) {
            return None;
        }
    }
    Some(v as u32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ipv4_text_matches_display() {
        use std::net::{IpAddr, Ipv4Addr, SocketAddr};
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut addrs =
            vec![Ipv4Addr::new(0, 0, 0, 0), Ipv4Addr::new(255, 255, 255, 255), Ipv4Addr::new(10, 0, 9, 100)];
        for _ in 0..10_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            addrs.push(Ipv4Addr::from(seed as u32));
        }
        for (n, a) in addrs.into_iter().enumerate() {
            assert_eq!(super::Ipv4Text::new(a).as_str(), a.to_string());
            let port = [0u16, 9, 10, 5060, 65535][n % 5];
            let sa = SocketAddr::from((a, port));
            assert_eq!(super::socket_addr_string(sa), sa.to_string());
            assert_eq!(super::ip_string(IpAddr::V4(a)), a.to_string());
        }
        let v6: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
        assert_eq!(super::socket_addr_string(v6), "[2001:db8::1]:5060");
    }

    use super::*;
    #[test]
    fn escapes() {
        assert!(escapes_valid(b"a%41b"));
        assert!(!escapes_valid(b"a%4"));
        assert!(!escapes_valid(b"%"));
        assert!(!escapes_valid(b"%zz"));
        assert_eq!(unescape(b"null-%00-null"), b"null-\0-null");
        assert_eq!(unescape(b"%41%42c"), b"ABc");
    }
    #[test]
    fn numbers() {
        assert_eq!(parse_u32(b"0009"), Some(9));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b""), None);
        assert!(is_delta_seconds(b"4294967296"));
        assert!(!is_delta_seconds(b"600aaaa") && !is_delta_seconds(b"") && !is_delta_seconds(b"-1"));
    }
    #[test]
    fn decimals() {
        for n in [0u64, 7, 10, 65535, u64::from(u32::MAX), u64::MAX] {
            let mut b = bytes::BytesMut::new();
            put_decimal(&mut b, n);
            assert_eq!(&b[..], n.to_string().as_bytes());
        }
    }
    #[test]
    fn trimming() {
        assert_eq!(trim(b"  a b \t"), b"a b");
        assert_eq!(trim(b"   "), b"");
    }
}
