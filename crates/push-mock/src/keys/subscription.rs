//! A WebPush subscription (RFC 8291): the user agent's P-256 ECDH key pair
//! and authentication secret. The public halves go to the sender; the mock
//! keeps the private half to decrypt what it receives.

use super::{b64url, random_bytes};
use aws_lc_rs::agreement::{ECDH_P256, PrivateKey};
use aws_lc_rs::encoding::{AsBigEndian, EcPrivateKeyBin};

/// A generated subscription's keys.
#[derive(Clone)]
pub struct Subscription {
    /// The user agent's public key (uncompressed point, 65 bytes),
    /// base64url without padding: the subscription's `keys.p256dh`.
    pub p256dh_b64url: String,
    /// The 16-byte authentication secret, base64url without padding: the
    /// subscription's `keys.auth`.
    pub auth_b64url: String,
    pub(crate) private_scalar: Vec<u8>,
    pub(crate) public_point: Vec<u8>,
    pub(crate) auth: Vec<u8>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("p256dh_b64url", &self.p256dh_b64url)
            .field("auth_b64url", &self.auth_b64url)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Generates a key pair and an authentication secret.
    pub fn generate() -> Subscription {
        let key = PrivateKey::generate(&ECDH_P256).expect("push-mock: generate the subscription's P-256 key");
        let public_point = key.compute_public_key().expect("push-mock: subscription public key").as_ref().to_vec();
        let private_scalar = AsBigEndian::<EcPrivateKeyBin>::as_be_bytes(&key)
            .expect("push-mock: subscription private key bytes")
            .as_ref()
            .to_vec();
        let auth = random_bytes(16);
        Subscription {
            p256dh_b64url: b64url(&public_point),
            auth_b64url: b64url(&auth),
            private_scalar,
            public_point,
            auth,
        }
    }

    /// The uncompressed public point (65 bytes).
    pub fn p256dh(&self) -> &[u8] {
        &self.public_point
    }

    /// The authentication secret (16 bytes).
    pub fn auth(&self) -> &[u8] {
        &self.auth
    }

    /// Decrypts an `aes128gcm` push message body sent to this subscription
    /// (RFC 8291 over RFC 8188); the error says what was wrong.
    pub fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        crate::ece::decrypt(self, body)
    }
}
