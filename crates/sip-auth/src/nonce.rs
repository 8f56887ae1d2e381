//! Stateless, tamper-proof nonces and the `opaque` value.
//!
//! Owns the nonce format and its checks. A nonce is
//! `base64url-nopad(ts || rnd || tag)`, 32 bytes → 43 characters, where
//! `ts` is the issue time in Unix milliseconds (8 bytes, big-endian), `rnd`
//! 8 random bytes and `tag` the first 16 bytes of
//! `HMAC-SHA256(secret, ts || rnd || realm)`. Nothing is stored when a nonce
//! is issued; checking recomputes the tag (compared in constant time) and
//! reads the age from `ts`. The realm is under the MAC, so a nonce issued for
//! one realm is refused in another.
//!
//! `opaque` is `base64url-nopad(HMAC-SHA256(secret, "sip-auth opaque\0" ||
//! realm)[..12])`: stable per realm and secret, so it survives restarts and
//! is the same on every instance sharing the secret.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Length of an encoded nonce.
pub const NONCE_LEN: usize = 43;
const RAW_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// Identifies a valid nonce to the replay tracker: its `ts || rnd` bytes
/// (unique with overwhelming probability) and its issue time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NonceId {
    pub key: [u8; 16],
    pub issued_ms: u64,
}

/// The result of checking a nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceStatus {
    /// Ours, for this realm, not older than the TTL.
    Fresh(NonceId),
    /// Ours, for this realm, but older than the TTL.
    Expired(NonceId),
    /// Not ours (bad encoding, bad MAC, other realm) or issued in the
    /// future; the reason is for logs.
    Invalid(&'static str),
}

/// The keyed HMAC that issues and checks nonces.
#[derive(Clone)]
pub struct NonceKey {
    mac: HmacSha256,
}

impl NonceKey {
    pub fn new(secret: &[u8; 32]) -> NonceKey {
        NonceKey { mac: <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length") }
    }

    fn tag(&self, head: &[u8; 16], realm: &str) -> [u8; TAG_LEN] {
        let mut m = self.mac.clone();
        m.update(head);
        m.update(realm.as_bytes());
        let full = m.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// Issues a nonce for `realm` at `now_ms` with the given random bytes.
    pub fn issue(&self, realm: &str, now_ms: u64, random: [u8; 8]) -> String {
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&now_ms.to_be_bytes());
        raw[8..16].copy_from_slice(&random);
        let head: [u8; 16] = raw[..16].try_into().expect("16 bytes");
        raw[16..].copy_from_slice(&self.tag(&head, realm));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a nonce received for `realm` at `now_ms`. It is expired when
    /// `now_ms - issued > ttl_ms`; issued after `now_ms` is invalid.
    pub fn check(&self, realm: &str, nonce: &str, now_ms: u64, ttl_ms: u64) -> NonceStatus {
        if nonce.len() != NONCE_LEN {
            return NonceStatus::Invalid("bad nonce");
        }
        // The engine refuses non-canonical trailing bits, so a nonce has
        // exactly one spelling.
        let raw = match URL_SAFE_NO_PAD.decode(nonce) {
            Ok(r) if r.len() == RAW_LEN => r,
            _ => return NonceStatus::Invalid("bad nonce"),
        };
        let head: [u8; 16] = raw[..16].try_into().expect("16 bytes");
        if !bool::from(self.tag(&head, realm)[..].ct_eq(&raw[16..])) {
            return NonceStatus::Invalid("bad nonce");
        }
        let issued_ms = u64::from_be_bytes(raw[..8].try_into().expect("8 bytes"));
        if issued_ms > now_ms {
            return NonceStatus::Invalid("future nonce");
        }
        let id = NonceId { key: head, issued_ms };
        if now_ms - issued_ms > ttl_ms { NonceStatus::Expired(id) } else { NonceStatus::Fresh(id) }
    }

    /// The `opaque` value for `realm`.
    pub fn opaque(&self, realm: &str) -> String {
        let mut m = self.mac.clone();
        m.update(b"sip-auth opaque\0");
        m.update(realm.as_bytes());
        URL_SAFE_NO_PAD.encode(&m.finalize().into_bytes()[..12])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn key() -> NonceKey {
        NonceKey::new(&[42; 32])
    }

    #[test]
    fn issue_and_check() {
        let k = key();
        let n = k.issue("example.com", T0, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(n.len(), NONCE_LEN);
        assert!(n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        let NonceStatus::Fresh(id) = k.check("example.com", &n, T0 + 1000, 30_000) else { panic!() };
        assert_eq!(id.issued_ms, T0);
        assert_eq!(&id.key[8..], &[1, 2, 3, 4, 5, 6, 7, 8]);
        // Exactly at the TTL still fresh; one millisecond more is expired.
        assert!(matches!(k.check("example.com", &n, T0 + 30_000, 30_000), NonceStatus::Fresh(_)));
        assert_eq!(k.check("example.com", &n, T0 + 30_001, 30_000), NonceStatus::Expired(id));
    }

    #[test]
    fn random_part_changes_nonce() {
        let k = key();
        assert_ne!(k.issue("r", T0, [0; 8]), k.issue("r", T0, [1; 8]));
    }

    #[test]
    fn future_nonce_is_invalid() {
        let k = key();
        let n = k.issue("r", T0 + 1, [0; 8]);
        assert_eq!(k.check("r", &n, T0, 30_000), NonceStatus::Invalid("future nonce"));
    }

    #[test]
    fn other_realm_or_secret_is_invalid() {
        let k = key();
        let n = k.issue("a.example.com", T0, [9; 8]);
        assert_eq!(k.check("b.example.com", &n, T0, 30_000), NonceStatus::Invalid("bad nonce"));
        let other = NonceKey::new(&[43; 32]);
        assert_eq!(other.check("a.example.com", &n, T0, 30_000), NonceStatus::Invalid("bad nonce"));
    }

    #[test]
    fn every_single_character_flip_is_detected() {
        let k = key();
        let n = k.issue("r", T0, [5; 8]);
        for i in 0..n.len() {
            for repl in [b'A', b'z', b'0', b'-', b'_'] {
                let mut b = n.clone().into_bytes();
                if b[i] == repl {
                    continue;
                }
                b[i] = repl;
                let t = String::from_utf8(b).unwrap();
                assert!(matches!(k.check("r", &t, T0, 30_000), NonceStatus::Invalid(_)), "flip at {i}: {t}");
            }
        }
        for bad in ["", "short", &format!("{n}A"), &n[..42], &n.replace('-', "+")] {
            if bad != n {
                assert!(matches!(k.check("r", bad, T0, 30_000), NonceStatus::Invalid(_)), "{bad}");
            }
        }
    }

    #[test]
    fn opaque_is_stable_per_realm() {
        let k = key();
        assert_eq!(k.opaque("r"), key().opaque("r"));
        assert_ne!(k.opaque("r"), k.opaque("s"));
        assert_ne!(k.opaque("r"), NonceKey::new(&[1; 32]).opaque("r"));
        assert_eq!(k.opaque("r").len(), 16);
    }
}
