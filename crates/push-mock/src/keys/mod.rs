//! Test key material, written into a caller-given directory: the TLS PKI
//! ([`TestPki`], [`ClientIdentity`]), the APNs signing key ([`ApnsKey`]),
//! the Google service account ([`ServiceAccount`]), the WebPush VAPID key
//! ([`Vapid`]) and WebPush subscriptions ([`Subscription`]).
//!
//! Everything is freshly generated (nothing is checked in) and in the
//! formats the real providers hand out, so senders read them with the same
//! code they use in production.

mod apns_key;
mod pki;
mod service_account;
mod subscription;
mod vapid;

pub use apns_key::ApnsKey;
pub use pki::{ClientIdentity, TestPki};
pub use service_account::ServiceAccount;
pub use subscription::Subscription;
pub use vapid::Vapid;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::path::{Path, PathBuf};

/// Writes `contents` to `dir/name` (creating `dir`) and returns the path.
pub(crate) fn write_file(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("push-mock: create the key directory");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("push-mock: write a key file");
    path
}

/// `n` random bytes from the system RNG.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut out).expect("push-mock: system RNG");
    out
}

/// A random identifier of `len` characters from `[A-Z0-9]` (the shape of
/// Apple's key and team ids).
pub(crate) fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    random_bytes(len).iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

/// Base64url without padding (JWTs, VAPID keys, WebPush subscription keys).
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
