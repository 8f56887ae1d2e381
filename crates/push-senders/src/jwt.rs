//! The JWTs the native senders sign, and PEM in and out: ES256 keys read from PEM files
//! ([`Es256Key`]: the APNs `.p8` provider key, the VAPID key) and a cache
//! that re-signs a token only when it is older than its refresh age
//! ([`Cached`]), so that every request of a sender shares one token.
//!
//! Secrets never reach a log line: errors name the file, not its content.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// An ECDSA P-256 private key, for ES256.
pub struct Es256Key {
    enc: EncodingKey,
    /// The public key, uncompressed SEC1 (65 bytes).
    public: Vec<u8>,
}

impl std::fmt::Debug for Es256Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Es256Key").field("public", &self.public_b64url()).finish_non_exhaustive()
    }
}

impl Es256Key {
    /// Reads a PKCS#8 (`BEGIN PRIVATE KEY`, Apple's `.p8`) or SEC1
    /// (`BEGIN EC PRIVATE KEY`, `openssl ecparam -genkey`) P-256 key.
    pub fn from_pem_file(path: &Path) -> Result<Es256Key, String> {
        let pem = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Es256Key::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_pem(pem: &str) -> Result<Es256Key, String> {
        let (label, der) = pem_decode(pem).ok_or("not a PEM file")?;
        let what = match label.as_str() {
            "PRIVATE KEY" => "not a P-256 private key (PKCS#8 PEM, \"BEGIN PRIVATE KEY\")",
            "EC PRIVATE KEY" => "not a P-256 EC private key (SEC1 PEM)",
            _ => "not a P-256 private key (PKCS#8 \"BEGIN PRIVATE KEY\" or SEC1 \"BEGIN EC PRIVATE KEY\" PEM)",
        };
        let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).map_err(|_| what)?;
        let pkcs8 = pair.to_pkcs8v1().map_err(|_| "cannot re-encode the key".to_owned())?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(Es256Key { enc: EncodingKey::from_ec_der(pkcs8.as_ref()), public })
    }

    /// The public key as base64url without padding (VAPID `k=`, `+sip.vapid`).
    pub fn public_b64url(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.public)
    }

    /// Signs `claims` with `{alg: ES256, kid}`.
    pub fn sign(&self, kid: Option<&str>, claims: &impl Serialize) -> Result<String, String> {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&h, claims, &self.enc).map_err(|e| format!("cannot sign a JWT: {e}"))
    }
}

/// An RSA private key, for RS256 (Google service accounts).
pub struct Rs256Key {
    enc: EncodingKey,
}

impl std::fmt::Debug for Rs256Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rs256Key")
    }
}

impl Rs256Key {
    pub fn from_pem(pem: &str) -> Result<Rs256Key, String> {
        EncodingKey::from_rsa_pem(pem.as_bytes())
            .map(|enc| Rs256Key { enc })
            .map_err(|_| "private_key is not an RSA private key in PEM".to_owned())
    }

    pub fn sign(&self, kid: Option<&str>, claims: &impl Serialize) -> Result<String, String> {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&h, claims, &self.enc).map_err(|e| format!("cannot sign a JWT: {e}"))
    }
}

/// `der` as one PEM block with `label`.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(line));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// The label and bytes of the first PEM block of `text`.
fn pem_decode(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + 11..];
    let (label, rest) = rest.split_once("-----")?;
    let end = rest.find(&format!("-----END {label}-----"))?;
    let b64: String = rest[..end].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some((label.to_owned(), der))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// One cached token, re-made when older than `max_age`.
#[derive(Debug)]
pub struct Cached {
    max_age: Duration,
    slot: Mutex<Option<(String, Instant)>>,
}

impl Cached {
    pub fn new(max_age: Duration) -> Cached {
        Cached { max_age, slot: Mutex::new(None) }
    }

    /// The cached token, or a new one from `make` (then `true`).
    pub fn get(&self, make: impl FnOnce() -> Result<String, String>) -> Result<(String, bool), String> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, at)) = &*slot
            && at.elapsed() < self.max_age
        {
            return Ok((t.clone(), false));
        }
        let t = make()?;
        *slot = Some((t.clone(), Instant::now()));
        Ok((t, true))
    }

    /// How old the cached token is.
    pub fn age(&self) -> Option<Duration> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(_, at)| at.elapsed())
    }

    /// Drops the token if it is still `token` (another task may have
    /// renewed it meanwhile).
    pub fn invalidate(&self, token: &str) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|(t, _)| t == token) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_renews_only_when_old() {
        let c = Cached::new(Duration::from_secs(60));
        let (a, fresh) = c.get(|| Ok("a".into())).unwrap();
        assert!(fresh);
        let (b, fresh) = c.get(|| Ok("b".into())).unwrap();
        assert_eq!((a.as_str(), b.as_str(), fresh), ("a", "a", false));
        c.invalidate("x");
        assert_eq!(c.get(|| Ok("c".into())).unwrap().0, "a");
        c.invalidate("a");
        assert_eq!(c.get(|| Ok("c".into())).unwrap(), ("c".into(), true));
    }

    #[test]
    fn bad_pem_is_a_clear_error() {
        let e = Es256Key::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap_err();
        assert!(e.contains("P-256"), "{e}");
    }
}
