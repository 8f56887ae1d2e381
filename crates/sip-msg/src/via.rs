//! The Via header value (RFC 3261 §20.42, §18.2.2; RFC 3581 rport).

use crate::chars::{is_token, is_ws, trim};
use crate::error::{Error, Result};
use crate::params::{Params, parse_header_params};
use crate::uri::Host;
use bytes::{BufMut, Bytes, BytesMut};

/// The branch prefix that marks RFC 3261 transaction ids.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// The transport in upper case as received (`UDP`, `TCP`, `TLS`, `SCTP`, ...).
    pub transport: Bytes,
    pub host: Host,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    /// Parses one (already list-split) Via value.
    pub fn parse(value: &Bytes) -> Result<Via> {
        let s = trim(value);
        let mut i = 0;
        let mut parts: [&[u8]; 3] = [&[]; 3];
        for (k, part) in parts.iter_mut().enumerate() {
            while i < s.len() && is_ws(s[i]) {
                i += 1;
            }
            let st = i;
            while i < s.len() && is_token(s[i]) {
                i += 1;
            }
            *part = &s[st..i];
            while i < s.len() && is_ws(s[i]) {
                i += 1;
            }
            if k < 2 {
                if s.get(i) != Some(&b'/') {
                    return Err(Error::bad("malformed Via protocol"));
                }
                i += 1;
            }
        }
        if !parts[0].eq_ignore_ascii_case(b"SIP") || parts[1] != b"2.0" || parts[2].is_empty() {
            return Err(Error::bad("Via protocol is not SIP/2.0/<transport>"));
        }
        let base = s.as_ptr() as usize - value.as_ptr() as usize;
        let transport =
            value.slice(base + (parts[2].as_ptr() as usize - s.as_ptr() as usize)..).slice(..parts[2].len());
        // sent-by ends at ';' (params); LWS is allowed around its ':' only.
        let sb_end = s[i..].iter().position(|&c| c == b';').map_or(s.len(), |p| p + i);
        let (h, port) = split_sent_by(trim(&s[i..sb_end]))?;
        let host = Host::parse(value, h)?;
        let params = parse_header_params(value, &s[sb_end..])?;
        Ok(Via { transport, host, port, params })
    }

    pub fn branch(&self) -> Option<&Bytes> {
        self.params.value("branch")
    }
    pub fn received(&self) -> Option<&Bytes> {
        self.params.value("received")
    }
    /// `Some(None)` when `rport` is present without a value (asked for).
    /// A value that is not a port number reads as `Some(None)`.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params.get("rport").map(|v| v.and_then(|v| crate::chars::parse_u32(v)).and_then(|p| u16::try_from(p).ok()))
    }
    pub fn maddr(&self) -> Option<&Bytes> {
        self.params.value("maddr")
    }
    /// Whether the branch carries the RFC 3261 magic cookie (and something after it).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE.as_bytes()))
    }
    /// Whether the transport is reliable (stream-based).
    pub fn is_reliable(&self) -> bool {
        !self.transport.eq_ignore_ascii_case(b"UDP")
    }

    pub fn write(&self, out: &mut BytesMut) {
        out.put_slice(b"SIP/2.0/");
        out.put_slice(&self.transport);
        out.put_u8(b' ');
        crate::chars::put_host(out, &self.host);
        if let Some(p) = self.port {
            out.put_u8(b':');
            crate::chars::put_decimal(out, u64::from(p));
        }
        self.params.write(out);
    }
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(80);
        self.write(&mut b);
        b.freeze()
    }
}

/// Splits a sent-by (`host [ SWS ":" SWS port ]`, already trimmed).
fn split_sent_by(s: &[u8]) -> Result<(&[u8], Option<u16>)> {
    let (host, port) = if s.first() == Some(&b'[') {
        let close = memchr::memchr(b']', s).ok_or(Error::bad("unterminated IPv6 reference"))?;
        let after = trim(&s[close + 1..]);
        match after.split_first() {
            None => return Ok((s, None)),
            Some((b':', p)) => (&s[..=close], p),
            Some(_) => return Err(Error::bad("garbage after IPv6 reference in Via")),
        }
    } else {
        match memchr::memchr(b':', s) {
            None => return Ok((s, None)),
            Some(c) => (trim(&s[..c]), &s[c + 1..]),
        }
    };
    let port = crate::chars::parse_u32(trim(port))
        .and_then(|p| u16::try_from(p).ok())
        .ok_or(Error::bad("invalid port in Via"))?;
    Ok((host, Some(port)))
}

#[cfg(test)]
mod tests {
    use super::*;
    fn via(s: &'static str) -> Result<Via> {
        Via::parse(&Bytes::from_static(s.as_bytes()))
    }
    #[test]
    fn parses() {
        let v = via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch().unwrap(), "z9hG4bK776");
        assert_eq!(v.rport(), Some(None));
        assert!(v.has_rfc3261_branch());
        let v = via("SIP  /  2.0 / TCP  example.com : 5061 ; branch = z9hG4bKx").unwrap();
        assert_eq!(v.transport, "TCP");
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.branch().unwrap(), "z9hG4bKx");
        let v = via("SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111").unwrap();
        assert_eq!(v.received().unwrap(), "[2001:db8::9:255]");
        assert!(via("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(via(";").is_err());
        assert!(via("").is_err());
        assert!(!via("SIP/2.0/UDP h;branch=z9hG4bK").unwrap().has_rfc3261_branch());
        // LWS only around the ':' of sent-by, never inside the host or port.
        assert!(via("SIP/2.0/UDP host junk;branch=z9hG4bKx").is_err());
        assert!(via("SIP/2.0/UDP 192.0.2.1:50 60").is_err());
        let v = via("SIP/2.0/UDP [::1] : 5070 ;rport=70000").unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.rport(), Some(None));
        assert!(via("SIP/2.0/UDP [::1]x").is_err());
        assert!(via("SIP/2.0/UDP host:").is_err());
        assert!(via("SIP/2.0/UDP host:65536").is_err());
    }
    #[test]
    fn roundtrip() {
        let v = via("SIP/2.0/TLS [::1]:5061;branch=z9hG4bK1;rport=5").unwrap();
        assert_eq!(v.to_bytes(), "SIP/2.0/TLS [::1]:5061;branch=z9hG4bK1;rport=5");
    }
}
