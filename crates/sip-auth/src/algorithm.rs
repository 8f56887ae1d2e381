//! Digest algorithms and the RFC 7616 formulas.
//!
//! Owns: the [`Algorithm`] enum (MD5 and SHA-256; the `-sess` variants are
//! refused, see below), `H(a:b:...)` as lower-case hex, [`ha1`] (what the
//! subscriber store keeps instead of a password) and [`response`] (the
//! `response` value a client must send).
//!
//! `-sess` variants (`MD5-sess`, `SHA-256-sess`) are not accepted: our
//! challenges never offer them and a client must answer with an algorithm
//! from the challenge (RFC 7616 §3.4), so a `-sess` response is answered with
//! a fresh challenge ("unsupported algorithm"). SHA-512-256 is refused the
//! same way.

use md5::Digest;
use std::fmt;

/// A digest algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// Every supported algorithm, most preferred first (RFC 8760 §2.4).
    pub const PREFERENCE: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

    /// The token used in the `algorithm` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses an `algorithm` parameter value (case-insensitive). `-sess`
    /// variants and any other algorithm give `None`.
    pub fn from_name(s: &str) -> Option<Algorithm> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// Length of a hash in lower-case hex (32 or 64).
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }

    /// `H(parts[0] ":" parts[1] ":" ...)` in lower-case hex.
    pub fn hash_hex(self, parts: &[&[u8]]) -> String {
        match self {
            Algorithm::Md5 => joined_hex::<md5::Md5>(parts),
            Algorithm::Sha256 => joined_hex::<sha2::Sha256>(parts),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn joined_hex<D: Digest>(parts: &[&[u8]]) -> String {
    let mut d = D::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            d.update(b":");
        }
        d.update(p);
    }
    hex(&d.finalize())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// `HA1 = H(username ":" realm ":" password)` in lower-case hex (RFC 7616
/// §3.4.2), all three as UTF-8. This is what the subscriber store keeps, one
/// per algorithm (`ha1_md5`, `ha1_sha256`); a change of realm needs new HA1s.
pub fn ha1(alg: Algorithm, user: &str, realm: &str, password: &str) -> String {
    alg.hash_hex(&[user.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// The `qop=auth` inputs of a response: nonce-count, client nonce and the
/// `qop` value exactly as the client sent them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Qop<'a> {
    pub nc: u32,
    pub cnonce: &'a str,
    pub qop: &'a str,
}

/// The expected `response` (RFC 7616 §3.4.1), lower-case hex:
/// - with qop: `H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)`, `nc` as
///   8 lower-case hex digits;
/// - without qop (RFC 2069 compatibility): `H(HA1 ":" nonce ":" HA2)`;
///
/// where `HA2 = H(method ":" digest-uri)` (qop=auth). `ha1` is lower-case hex.
pub fn response(alg: Algorithm, ha1: &str, method: &[u8], uri: &str, nonce: &str, qop: Option<Qop<'_>>) -> String {
    let ha2 = alg.hash_hex(&[method, uri.as_bytes()]);
    match qop {
        Some(q) => {
            let nc = format!("{:08x}", q.nc);
            alg.hash_hex(&[
                ha1.as_bytes(),
                nonce.as_bytes(),
                nc.as_bytes(),
                q.cnonce.as_bytes(),
                q.qop.as_bytes(),
                ha2.as_bytes(),
            ])
        }
        None => alg.hash_hex(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const RFC_REALM: &str = "http-auth@example.org";

    fn rfc7616(alg: Algorithm) -> (String, String) {
        let h = ha1(alg, "Mufasa", RFC_REALM, "Circle of Life");
        let q = Qop { nc: 1, cnonce: RFC_CNONCE, qop: "auth" };
        let r = response(alg, &h, b"GET", "/dir/index.html", RFC_NONCE, Some(q));
        (h, r)
    }

    /// RFC 7616 §3.9.1, MD5.
    #[test]
    fn rfc7616_md5_vector() {
        let (h, r) = rfc7616(Algorithm::Md5);
        assert_eq!(h, "3d78807defe7de2157e2b0b6573a855f");
        assert_eq!(r, "8ca523f5e9506fed4657c9700eebdbec");
    }

    /// RFC 7616 §3.9.1, SHA-256.
    #[test]
    fn rfc7616_sha256_vector() {
        let (h, r) = rfc7616(Algorithm::Sha256);
        assert_eq!(h, "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232");
        assert_eq!(r, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
    }

    /// A SIP REGISTER, computed independently (Python hashlib).
    #[test]
    fn sip_register_vector() {
        let nonce = "AAABj8vJ4QBDJvvC8DMmKI6a8x2dXqVrMZdOGSe8pg0";
        let q = Some(Qop { nc: 1, cnonce: "0a4f113b", qop: "auth" });
        let h = ha1(Algorithm::Md5, "alice", "sip.example.com", "correct horse");
        assert_eq!(h, "76c0b5a051b7e1bc30c9d6904abc69c6");
        assert_eq!(
            response(Algorithm::Md5, &h, b"REGISTER", "sip:sip.example.com", nonce, q),
            "462706d9ac6a41a1e2ab6badb298ebc3"
        );
        assert_eq!(
            response(Algorithm::Md5, &h, b"REGISTER", "sip:sip.example.com", nonce, None),
            "d70a33bf3660a4c74371042d56b6a045"
        );
        let h = ha1(Algorithm::Sha256, "alice", "sip.example.com", "correct horse");
        assert_eq!(h, "6a85336b0c4b2c77c650636c5e0673ac18cc1213999a3c041f664841816acef9");
        assert_eq!(
            response(Algorithm::Sha256, &h, b"REGISTER", "sip:sip.example.com", nonce, q),
            "b9f7ec046e53949bf8a0def648b6bc4f072daa86e92f99ff0d60d9d1fa02c66c"
        );
        assert_eq!(
            response(Algorithm::Sha256, &h, b"REGISTER", "sip:sip.example.com", nonce, None),
            "e98486ab541c65b7114fa75aa27041a739c8ad15895a0da1d82867b9ca0698f6"
        );
    }

    #[test]
    fn names() {
        assert_eq!(Algorithm::from_name("md5"), Some(Algorithm::Md5));
        assert_eq!(Algorithm::from_name("sha-256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::from_name("MD5-sess"), None);
        assert_eq!(Algorithm::from_name("SHA-256-sess"), None);
        assert_eq!(Algorithm::from_name("SHA-512-256"), None);
        assert_eq!(Algorithm::Sha256.to_string(), "SHA-256");
        for a in Algorithm::PREFERENCE {
            assert_eq!(ha1(a, "u", "r", "p").len(), a.hex_len());
        }
    }

    /// Non-ASCII input is hashed as UTF-8 (RFC 7616 §4; vector computed
    /// with Python hashlib).
    #[test]
    fn utf8_vector() {
        let (user, realm, pass) = ("J\u{e4}s\u{f8}n Doe", "api@example.org", "Secret, or not?");
        assert_eq!(ha1(Algorithm::Md5, user, realm, pass), "83a3f7f6b83f71c5c2eb7c6dd2dd4c4b");
        assert_eq!(
            ha1(Algorithm::Sha256, user, realm, pass),
            "fd0be3939dca4b5c2d46e8fa6a3d16dbea82474cb9a588d4cb149c54f37cff37"
        );
    }
}
