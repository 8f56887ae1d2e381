//! JWT reading and signature checking for the three services, with a
//! per-token verdict cache: a token string is decoded and its signature
//! verified once, later requests carrying the same string reuse the
//! verdict (the time-dependent checks — `iat`, `exp` — are each service's,
//! done on every request, since they change with the clock).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A decoded JWT: its header and claims, and whether the signature holds.
#[derive(Clone, Debug)]
pub(crate) struct Decoded {
    pub header: Value,
    pub claims: Value,
    pub signature_ok: bool,
}

/// How many verdicts are kept before the cache is emptied (a bound, not a
/// policy: real senders reuse one token for tens of minutes).
const CACHE_MAX: usize = 4096;

/// Checks JWT signatures against one key, remembering each token's verdict.
pub(crate) struct Verifier {
    key: DecodingKey,
    alg: Algorithm,
    cache: Mutex<HashMap<String, Arc<Result<Decoded, String>>>>,
}

impl Verifier {
    pub fn new(key: DecodingKey, alg: Algorithm) -> Verifier {
        Verifier { key, alg, cache: Mutex::new(HashMap::new()) }
    }

    /// Decodes `token` and checks its signature (cached per token string).
    /// `Err` when it is not a JWT at all (not three base64url JSON parts).
    pub fn check(&self, token: &str) -> Arc<Result<Decoded, String>> {
        if let Some(hit) = self.cache.lock().expect("jwt cache lock").get(token) {
            return Arc::clone(hit);
        }
        let verdict = Arc::new(self.verify(token));
        let mut cache = self.cache.lock().expect("jwt cache lock");
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(token.to_owned(), Arc::clone(&verdict));
        verdict
    }

    fn verify(&self, token: &str) -> Result<Decoded, String> {
        let (header, claims) = decode_parts(token)?;
        let signature_ok = match token.rsplit_once('.') {
            Some((message, signature)) => {
                header.get("alg").and_then(Value::as_str) == Some(alg_name(self.alg))
                    && jsonwebtoken::crypto::verify(signature, message.as_bytes(), &self.key, self.alg).unwrap_or(false)
            }
            None => false,
        };
        Ok(Decoded { header, claims, signature_ok })
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        _ => "ES256",
    }
}

/// The header and claims of a JWT, without checking anything else.
pub(crate) fn decode_parts(token: &str) -> Result<(Value, Value), String> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err("the JWT does not have three dot-separated parts".to_owned());
    };
    let json = |part: &str, what: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| format!("the JWT {what} is not base64url"))?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| format!("the JWT {what} is not JSON"))?;
        if value.is_object() { Ok(value) } else { Err(format!("the JWT {what} is not a JSON object")) }
    };
    Ok((json(h, "header")?, json(c, "claims")?))
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// A numeric claim (`iat`, `exp`), if present and an integer.
pub(crate) fn int_claim(claims: &Value, name: &str) -> Option<i64> {
    claims.get(name).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

/// A string claim or header field.
pub(crate) fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}
