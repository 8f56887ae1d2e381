//! RFC 8291 message encryption for WebPush (`Content-Encoding: aes128gcm`,
//! RFC 8188), with aws-lc-rs (the crypto provider rustls already brings):
//! an ephemeral P-256 key per message, ECDH with the subscription's
//! `p256dh` key, HKDF-SHA256 with its `auth` secret, one AES-128-GCM record.
//!
//! Written here rather than taken from `web-push-native` because its
//! pure-Rust P-256 arithmetic cost ~150 µs per push (85 % of the sender's
//! CPU in `bench/push_senders.sh`); aws-lc-rs does the same work in a few µs.

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{ECDH_P256, EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// The record size we announce; one record holds the whole message.
pub const RECORD_SIZE: u32 = 4096;
/// The largest message that fits one record (delimiter and tag included).
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - 17;

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf(salt: &[u8], ikm: &[u8], info: &[&[u8]], out: &mut [u8]) -> Result<(), &'static str> {
    let prk = Salt::new(HKDF_SHA256, salt).extract(ikm);
    prk.expand(info, Len(out.len())).and_then(|okm| okm.fill(out)).map_err(|_| "HKDF failed")
}

/// Encrypts `message` for the subscription (`ua_public`: the 65-byte
/// uncompressed `p256dh` point; `auth`: the 16-byte secret).
pub fn encrypt(message: &[u8], ua_public: &[u8], auth: &[u8]) -> Result<Vec<u8>, &'static str> {
    if ua_public.len() != 65 || ua_public[0] != 4 {
        return Err("p256dh is not an uncompressed P-256 point");
    }
    if auth.len() != 16 {
        return Err("auth is not 16 bytes");
    }
    if message.len() > MAX_PLAINTEXT {
        return Err("payload too large for one record");
    }
    let rng = SystemRandom::new();
    let eph = EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(|_| "key generation failed")?;
    let as_public = eph.compute_public_key().map_err(|_| "key generation failed")?;
    let as_public = as_public.as_ref().to_vec();
    let peer = UnparsedPublicKey::new(&ECDH_P256, ua_public);
    // RFC 8291 §3.3: IKM = HKDF(auth, ecdh, "WebPush: info" 0 ua_public as_public, 32).
    let mut ikm = [0u8; 32];
    agree_ephemeral(eph, peer, "not a point on P-256", |shared| {
        hkdf(auth, shared, &[b"WebPush: info\0", ua_public, &as_public], &mut ikm)
    })?;
    let mut salt = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| "no randomness")?;
    // RFC 8188 §2.2/§2.3: the content key and nonce.
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    hkdf(&salt, &ikm, &[b"Content-Encoding: aes128gcm\0"], &mut cek)?;
    hkdf(&salt, &ikm, &[b"Content-Encoding: nonce\0"], &mut nonce)?;
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).map_err(|_| "bad key")?);
    let mut record = Vec::with_capacity(message.len() + 17);
    record.extend_from_slice(message);
    record.push(2); // the last (only) record's delimiter
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut record)
        .map_err(|_| "encryption failed")?;
    // Header: salt, record size, key id (our public key), then the record.
    let mut out = Vec::with_capacity(16 + 4 + 1 + 65 + record.len());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    out.push(65);
    out.extend_from_slice(&as_public);
    out.extend_from_slice(&record);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_its_inputs() {
        assert!(encrypt(b"x", &[4; 64], &[0; 16]).is_err());
        assert!(encrypt(b"x", &[4; 65], &[0; 15]).is_err());
        assert!(encrypt(&vec![0; MAX_PLAINTEXT + 1], &[4; 65], &[0; 16]).is_err());
    }

    #[test]
    fn header_layout() {
        let rng = SystemRandom::new();
        let ua = EphemeralPrivateKey::generate(&ECDH_P256, &rng).unwrap();
        let ua_pub = ua.compute_public_key().unwrap();
        let body = encrypt(b"hello", ua_pub.as_ref(), &[7; 16]).unwrap();
        assert_eq!(&body[16..20], &RECORD_SIZE.to_be_bytes());
        assert_eq!(body[20], 65);
        assert_eq!(body.len(), 16 + 4 + 1 + 65 + 5 + 1 + 16);
    }
}
