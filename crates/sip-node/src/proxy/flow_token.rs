//! Flow tokens (RFC 5626 §5.2 style) carried in the user part of our
//! Record-Route URIs, so that in-dialog requests reach phones behind NAT
//! over the very flow (connection or UDP source address) their dialog was
//! set up on, in both directions.
//!
//! A token names two flows: the one the dialog-creating request arrived on
//! and the one it left on. A later request that arrives over one of them is
//! sent over the other. Tokens are HMAC-SHA256 protected with a per-process
//! key: a forged or altered token is ignored (the request is then routed by
//! its Request-URI), so nobody can inject requests into another user's flow.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use sip_msg::{Target, Transport};
use std::net::{IpAddr, SocketAddr};

const MAC_LEN: usize = 10;
/// Prefix of a token in a URI user part.
pub const PREFIX: &str = "fl-";

/// One flow: transport, remote address and (for streams) the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRef {
    pub transport: Transport,
    pub remote: SocketAddr,
    pub conn: Option<u64>,
}

impl FlowRef {
    pub fn target(&self) -> Target {
        Target { transport: self.transport, remote: self.remote, conn: self.conn }
    }
    /// Whether a request from `remote` over `conn` came over this flow.
    pub fn matches(&self, transport: Transport, remote: SocketAddr, conn: Option<u64>) -> bool {
        self.transport == transport
            && match (self.conn, conn) {
                (Some(a), Some(b)) => a == b,
                _ => self.remote == remote,
            }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(Transport::ALL.iter().position(|t| *t == self.transport).unwrap_or(0) as u8);
        match self.remote.ip() {
            IpAddr::V4(a) => {
                out.push(4);
                out.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                out.push(6);
                out.extend_from_slice(&a.octets());
            }
        }
        out.extend_from_slice(&self.remote.port().to_be_bytes());
        out.extend_from_slice(&self.conn.unwrap_or(0).to_be_bytes());
    }
    fn decode(b: &[u8]) -> Option<(FlowRef, &[u8])> {
        let transport = *Transport::ALL.get(usize::from(*b.first()?))?;
        let (ip, rest): (IpAddr, &[u8]) = match *b.get(1)? {
            4 => (<[u8; 4]>::try_from(b.get(2..6)?).ok()?.into(), &b[6..]),
            6 => (<[u8; 16]>::try_from(b.get(2..18)?).ok()?.into(), &b[18..]),
            _ => return None,
        };
        let port = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
        let conn = u64::from_be_bytes(rest.get(2..10)?.try_into().ok()?);
        Some((FlowRef { transport, remote: SocketAddr::new(ip, port), conn: (conn != 0).then_some(conn) }, &rest[10..]))
    }
}

/// Makes and checks tokens.
pub struct FlowTokens {
    key: [u8; 32],
}

impl FlowTokens {
    pub fn new(key: [u8; 32]) -> FlowTokens {
        FlowTokens { key }
    }

    fn mac(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("any key length");
        m.update(data);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// The URI user part for a dialog between flow `a` (where the request came from) and `b` (where it went).
    pub fn encode(&self, a: &FlowRef, b: &FlowRef) -> String {
        let mut raw = Vec::with_capacity(64);
        a.encode(&mut raw);
        b.encode(&mut raw);
        let mac = self.mac(&raw);
        raw.extend_from_slice(&mac);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// The two flows of a token, if it is one of ours and intact.
    pub fn decode(&self, user: &str) -> Option<(FlowRef, FlowRef)> {
        let raw = URL_SAFE_NO_PAD.decode(user.strip_prefix(PREFIX)?).ok()?;
        if raw.len() <= MAC_LEN {
            return None;
        }
        let (data, mac) = raw.split_at(raw.len() - MAC_LEN);
        let want = self.mac(data);
        if want.iter().zip(mac).fold(0u8, |acc, (x, y)| acc | (x ^ y)) != 0 {
            return None;
        }
        let (a, rest) = FlowRef::decode(data)?;
        let (b, rest) = FlowRef::decode(rest)?;
        rest.is_empty().then_some((a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip_and_tamper() {
        let t = FlowTokens::new([3; 32]);
        let a = FlowRef { transport: Transport::Udp, remote: "192.0.2.1:5060".parse().unwrap(), conn: None };
        let b = FlowRef { transport: Transport::Tcp, remote: "[2001:db8::1]:40000".parse().unwrap(), conn: Some(77) };
        let s = t.encode(&a, &b);
        assert!(s.starts_with(PREFIX));
        assert!(s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(t.decode(&s), Some((a, b)));
        let mut bad = s.clone().into_bytes();
        let i = bad.len() / 2;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(t.decode(&String::from_utf8(bad).unwrap()), None);
        assert_eq!(FlowTokens::new([4; 32]).decode(&s), None);
        assert_eq!(t.decode("alice"), None);
        assert!(a.matches(Transport::Udp, "192.0.2.1:5060".parse().unwrap(), None));
        assert!(b.matches(Transport::Tcp, "[2001:db8::1]:1".parse().unwrap(), Some(77)));
        assert!(!b.matches(Transport::Tcp, "[2001:db8::1]:40000".parse().unwrap(), Some(78)));
    }
}
