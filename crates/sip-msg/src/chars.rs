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

/// Appends the decimal form of `n` (no allocation).
pub(crate) fn put_decimal(out: &mut bytes::BytesMut, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    bytes::BufMut::put_slice(out, &buf[i..]);
}

/// Appends a host as it is written in a URI or Via (IPv6 in brackets).
pub(crate) fn put_host(out: &mut bytes::BytesMut, h: &crate::uri::Host) {
    use std::fmt::Write;
    match h {
        crate::uri::Host::Name(n) => bytes::BufMut::put_slice(out, n),
        crate::uri::Host::V4(a) => {
            let _ = write!(out, "{a}");
        }
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
