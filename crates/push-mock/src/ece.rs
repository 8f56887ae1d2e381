//! RFC 8291 message decryption (the `aes128gcm` content coding of RFC 8188
//! with the WebPush key derivation), done with aws-lc-rs: how the WebPush
//! mock reads what a sender encrypted for a [`Subscription`].

use crate::keys::Subscription;
use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::agreement::{ECDH_P256, PrivateKey, UnparsedPublicKey, agree};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};

/// Header: salt (16) + record size (4) + key id length (1).
const HEADER: usize = 21;
/// AES-GCM tag length.
const TAG: usize = 16;

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), String> {
    Salt::new(HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&[info], Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| "HKDF failed".to_owned())
}

/// Decrypts `body` (RFC 8188 header, then records) for `sub`.
pub(crate) fn decrypt(sub: &Subscription, body: &[u8]) -> Result<Vec<u8>, String> {
    if body.len() < HEADER {
        return Err(format!("aes128gcm body of {} bytes is shorter than its 21-byte header", body.len()));
    }
    let salt = &body[..16];
    let rs = u32::from_be_bytes([body[16], body[17], body[18], body[19]]) as usize;
    let idlen = usize::from(body[20]);
    if rs <= TAG + 1 {
        return Err(format!("aes128gcm record size {rs} is too small"));
    }
    let Some(as_public) = body.get(HEADER..HEADER + idlen) else {
        return Err("aes128gcm key id runs past the body".to_owned());
    };
    if idlen != 65 {
        return Err(format!("aes128gcm key id is {idlen} bytes, RFC 8291 requires the 65-byte sender public key"));
    }
    let private = PrivateKey::from_private_key(&ECDH_P256, &sub.private_scalar)
        .map_err(|_| "subscription private key unusable".to_owned())?;
    let peer = UnparsedPublicKey::new(&ECDH_P256, as_public);
    let ecdh: Vec<u8> =
        agree(&private, peer, "sender public key (key id) is not a valid P-256 point", |s| Ok(s.to_vec()))
            .map_err(|e: &str| e.to_owned())?;

    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(&sub.public_point);
    key_info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    hkdf(&sub.auth, &ecdh, &key_info, &mut ikm)?;
    let mut cek = [0u8; 16];
    hkdf(salt, &ikm, b"Content-Encoding: aes128gcm\0", &mut cek)?;
    let mut nonce_base = [0u8; 12];
    hkdf(salt, &ikm, b"Content-Encoding: nonce\0", &mut nonce_base)?;
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).map_err(|_| "bad CEK".to_owned())?);

    let records: Vec<&[u8]> = body[HEADER + idlen..].chunks(rs).collect();
    if records.is_empty() {
        return Err("aes128gcm body has no record".to_owned());
    }
    let mut plain = Vec::new();
    for (seq, record) in records.iter().enumerate() {
        let last = seq + 1 == records.len();
        let mut nonce = nonce_base;
        for (n, s) in nonce[4..].iter_mut().zip((seq as u64).to_be_bytes()) {
            *n ^= s;
        }
        let mut buf = record.to_vec();
        let opened = key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .map_err(|_| format!("aes128gcm record {seq} does not decrypt (wrong keys or corrupted)"))?;
        let end = opened.iter().rposition(|b| *b != 0).ok_or(format!("aes128gcm record {seq} has no delimiter"))?;
        match (opened[end], last) {
            (2, true) | (1, false) => plain.extend_from_slice(&opened[..end]),
            (d, _) => return Err(format!("aes128gcm record {seq} has delimiter {d} (last record: {last})")),
        }
    }
    Ok(plain)
}
