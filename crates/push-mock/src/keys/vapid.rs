//! The WebPush application-server (VAPID, RFC 8292) key pair: a P-256
//! private key in PKCS#8 PEM and its public point in the form that goes in
//! the `k=` parameter and the subscription's `applicationServerKey`.

use super::{b64url, write_file};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use std::path::{Path, PathBuf};

/// A generated VAPID key pair.
#[derive(Clone, Debug)]
pub struct Vapid {
    /// `DIR/vapid_private.pem`: `-----BEGIN PRIVATE KEY-----` (PKCS#8, P-256).
    pub private_pem_path: PathBuf,
    /// The uncompressed public point (65 bytes, `0x04 || X || Y`), base64url
    /// without padding.
    pub public_b64url: String,
}

impl Vapid {
    /// Generates a key pair and writes its private key into `dir`.
    pub fn generate(dir: &Path) -> Vapid {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("push-mock: generate the VAPID P-256 key");
        let private_pem_path = write_file(dir, "vapid_private.pem", key.serialize_pem().as_bytes());
        Vapid { private_pem_path, public_b64url: b64url(key.public_key_raw()) }
    }
}
