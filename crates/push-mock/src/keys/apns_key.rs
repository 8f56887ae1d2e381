//! The APNs token-auth signing key: an EC P-256 private key in PKCS#8 PEM,
//! as Apple hands it out (`AuthKey_<KEYID>.p8`), with its key and team ids.

use super::{random_id, write_file};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use std::path::{Path, PathBuf};

/// A generated APNs `.p8` key.
#[derive(Clone, Debug)]
pub struct ApnsKey {
    /// `DIR/AuthKey_<key_id>.p8`: `-----BEGIN PRIVATE KEY-----` (PKCS#8, P-256).
    pub p8_path: PathBuf,
    /// The 10-character key id (the JWT header's `kid`).
    pub key_id: String,
    /// The 10-character team id (the JWT's `iss`).
    pub team_id: String,
    /// The public key (SPKI PEM), for the mock's signature check.
    pub public_pem: String,
}

impl ApnsKey {
    /// Generates a key and writes its `.p8` into `dir`.
    pub fn generate(dir: &Path) -> ApnsKey {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("push-mock: generate the APNs P-256 key");
        let key_id = random_id(10);
        let p8_path = write_file(dir, &format!("AuthKey_{key_id}.p8"), key.serialize_pem().as_bytes());
        ApnsKey { p8_path, key_id, team_id: random_id(10), public_pem: key.public_key_pem() }
    }
}
