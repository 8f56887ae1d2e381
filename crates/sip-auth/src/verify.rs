//! The [`Authenticator`]: challenges and the decision for one request.
//!
//! Owns the policy that ties the other modules together. For a request it:
//! 1. takes the `Authorization` (or `Proxy-Authorization`) headers, ignores
//!    non-Digest ones, and uses the first Digest one whose realm is ours
//!    (with an algorithm we enable);
//! 2. checks `qop` (`auth`, or none only if `allow_no_qop`), the `uri`, the
//!    `opaque`, and the nonce's MAC (nothing is looked up for a forged one);
//! 3. looks up the stored HA1 and compares the response in constant time
//!    (an unknown user is compared against a dummy HA1, so it costs the same);
//! 4. only then looks at the nonce's age (expired → `stale=true`) and at the
//!    nonce-count tracker (replay → `stale=true`, since the client proved it
//!    knows the password: RFC 7616 §3.3 asks for stale when "the nonce is
//!    invalid but with a valid digest").
//!
//! Every failure is `AuthOutcome::Challenge` with a fixed [`reason`]; the
//! caller answers 401/407 with [`Authenticator::challenge`] values.
//!
//! URI check: the `uri` parameter, trimmed, must equal the Request-URI as
//! sip-msg serialises it. As sip-msg normalises a few spellings when it
//! parses (scheme case, IPv6 text, port digits), a `uri` that differs as a
//! string is parsed and re-serialised the same way and compared again; no
//! other equivalence (RFC 3261 §19.1.4) is applied.
//!
//! Thread safety: `check` takes `&self`; the only mutable state, the
//! [`NonceTracker`], sits behind its own mutex that is held for one O(1)
//! tracker call, after all hashing and the HA1 lookup.

use crate::algorithm::{self, Algorithm, Qop};
use crate::header::{self, Credentials, format_challenge};
use crate::nonce::{NonceKey, NonceStatus};
use crate::tracker::{NcVerdict, NonceTracker};
use crate::{AuthConfig, AuthOutcome, Which};
use bytes::Bytes;
use sip_msg::{Message, Uri};
use std::sync::{Mutex, MutexGuard};
use subtle::ConstantTimeEq;

/// The fixed reasons of [`AuthOutcome::Challenge`], for logs and metrics.
pub mod reason {
    /// No Digest credentials (none at all, or only other schemes).
    pub const NO_CREDENTIALS: &str = "no credentials";
    /// Digest credentials, but none for our realm.
    pub const REALM_MISMATCH: &str = "realm mismatch";
    /// The credentials header does not parse or lacks a parameter.
    pub const MALFORMED: &str = "malformed credentials";
    /// An algorithm we do not implement or do not enable.
    pub const UNSUPPORTED_ALGORITHM: &str = "unsupported algorithm";
    /// `qop` other than `auth`.
    pub const UNSUPPORTED_QOP: &str = "unsupported qop";
    /// No `qop` while `allow_no_qop` is off.
    pub const MISSING_QOP: &str = "missing qop";
    /// `uri` differs from the Request-URI.
    pub const URI_MISMATCH: &str = "uri mismatch";
    /// `opaque` missing or not ours.
    pub const OPAQUE_MISMATCH: &str = "opaque mismatch";
    /// The nonce is not ours (bad encoding or MAC, other realm).
    pub const BAD_NONCE: &str = "bad nonce";
    /// The nonce carries an issue time later than now.
    pub const FUTURE_NONCE: &str = "future nonce";
    /// No HA1 stored for this user (and algorithm).
    pub const UNKNOWN_USER: &str = "unknown user";
    /// The response does not match.
    pub const WRONG_PASSWORD: &str = "wrong password";
    /// Right response, nonce older than the TTL (stale).
    pub const EXPIRED_NONCE: &str = "expired nonce";
    /// Right response, nonce-count not greater than an accepted one (stale).
    pub const REPLAYED_NONCE: &str = "replayed nonce";
    /// Right response, nonce possibly used and evicted from the tracker (stale).
    pub const FORGOTTEN_NONCE: &str = "forgotten nonce";
    /// `check` was given a response, not a request.
    pub const NOT_A_REQUEST: &str = "not a request";
}

/// Issues challenges and checks credentials. `Send + Sync`; share it.
pub struct Authenticator {
    key: NonceKey,
    ttl_ms: u64,
    /// Enabled algorithms, most preferred first.
    algorithms: Vec<Algorithm>,
    allow_no_qop: bool,
    tracker: Mutex<NonceTracker>,
}

fn challenge(stale: bool, reason: &'static str) -> AuthOutcome {
    AuthOutcome::Challenge { stale, reason }
}

impl Authenticator {
    pub fn new(cfg: AuthConfig) -> Authenticator {
        let ttl_ms = u64::try_from(cfg.nonce_ttl.as_millis()).unwrap_or(u64::MAX);
        // Challenge order is the configured order: RFC 8760 §2.4 wants the
        // preferred algorithm first (SHA-256 by default), but clients that read
        // only the first challenge and know only MD5 (sipp 3.6, older phones)
        // need MD5 first, and that is the operator's call.
        let mut algorithms: Vec<Algorithm> = Vec::new();
        for a in &cfg.algorithms {
            if !algorithms.contains(a) {
                algorithms.push(*a);
            }
        }
        if algorithms.is_empty() {
            algorithms = Algorithm::PREFERENCE.to_vec();
        }
        Authenticator {
            key: NonceKey::new(&cfg.realm_secret),
            ttl_ms,
            algorithms,
            allow_no_qop: cfg.allow_no_qop,
            tracker: Mutex::new(NonceTracker::new(cfg.max_tracked_nonces, ttl_ms)),
        }
    }

    /// The enabled algorithms, in challenge order.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// Challenge header values for a 401/407, one per enabled algorithm,
    /// SHA-256 first (RFC 8760 §2.4), sharing one fresh nonce.
    pub fn challenge(&self, realm: &str, now_ms: u64, stale: bool) -> Vec<String> {
        use rand::RngExt;
        let random: u64 = rand::rng().random();
        self.challenge_with_random(realm, now_ms, stale, random.to_le_bytes())
    }

    /// [`Authenticator::challenge`] with the nonce's random bytes given.
    pub fn challenge_with_random(&self, realm: &str, now_ms: u64, stale: bool, random: [u8; 8]) -> Vec<String> {
        let nonce = self.key.issue(realm, now_ms, random);
        let opaque = self.key.opaque(realm);
        self.algorithms.iter().map(|&a| format_challenge(realm, &nonce, &opaque, a, stale)).collect()
    }

    /// Appends the challenge headers (`WWW-Authenticate` or
    /// `Proxy-Authenticate`) to a 401/407 response built by the caller.
    pub fn add_challenges(&self, resp: &mut Message, realm: &str, which: Which, now_ms: u64, stale: bool) {
        for v in self.challenge(realm, now_ms, stale) {
            resp.headers.push(which.challenge_header(), Bytes::from(v));
        }
    }

    /// Checks a request's credentials for `realm`. `lookup(username, realm,
    /// alg)` returns the stored HA1 (hex) or `None` for an unknown user.
    pub fn check(
        &self,
        req: &Message,
        realm: &str,
        which: Which,
        now_ms: u64,
        lookup: impl Fn(&str, &str, Algorithm) -> Option<String>,
    ) -> AuthOutcome {
        let (Some(method), Some(uri)) = (req.method(), req.uri()) else {
            return challenge(false, reason::NOT_A_REQUEST);
        };
        let name = which.credentials_header();
        let mut ours_err: Option<&'static str> = None;
        let mut parse_err = false;
        let mut other_realm = false;
        let mut chosen = None;
        for v in req.headers.get_all(&name) {
            match header::parse_digest_params(v) {
                Err(_) => parse_err = true,
                Ok(None) => {}
                Ok(Some(p)) if p.get("realm") != Some(realm) => other_realm = true,
                Ok(Some(p)) => match Credentials::from_params(&p) {
                    Ok(c) if self.algorithms.contains(&c.algorithm) => {
                        chosen = Some(c);
                        break;
                    }
                    Ok(_) => {
                        ours_err.get_or_insert(reason::UNSUPPORTED_ALGORITHM);
                    }
                    Err(e) => {
                        ours_err.get_or_insert(e.reason());
                    }
                },
            }
        }
        let Some(creds) = chosen else {
            let r = match (ours_err, parse_err, other_realm) {
                (Some(r), _, _) => r,
                (None, true, _) => reason::MALFORMED,
                (None, false, true) => reason::REALM_MISMATCH,
                (None, false, false) => reason::NO_CREDENTIALS,
            };
            return challenge(false, r);
        };
        self.check_credentials(&creds, method.as_bytes(), uri, realm, now_ms, lookup)
    }

    /// The checks of [`Authenticator::check`] on credentials already parsed,
    /// for the request `method` and `request_uri`.
    pub fn check_credentials(
        &self,
        c: &Credentials,
        method: &[u8],
        request_uri: &Uri,
        realm: &str,
        now_ms: u64,
        lookup: impl Fn(&str, &str, Algorithm) -> Option<String>,
    ) -> AuthOutcome {
        if c.realm != realm {
            return challenge(false, reason::REALM_MISMATCH);
        }
        if !self.algorithms.contains(&c.algorithm) {
            return challenge(false, reason::UNSUPPORTED_ALGORITHM);
        }
        let qop = match (&c.qop, c.nc, &c.cnonce) {
            (Some(q), Some(nc), Some(cnonce)) if q.eq_ignore_ascii_case("auth") => Some(Qop { nc, cnonce, qop: q }),
            (Some(q), _, _) if !q.eq_ignore_ascii_case("auth") => return challenge(false, reason::UNSUPPORTED_QOP),
            (Some(_), _, _) => return challenge(false, reason::MALFORMED),
            (None, _, _) if !self.allow_no_qop => return challenge(false, reason::MISSING_QOP),
            (None, _, _) => None,
        };
        if !uri_matches(&c.uri, request_uri) {
            return challenge(false, reason::URI_MISMATCH);
        }
        if c.opaque.as_deref() != Some(self.key.opaque(realm).as_str()) {
            return challenge(false, reason::OPAQUE_MISMATCH);
        }
        let (id, expired) = match self.key.check(realm, &c.nonce, now_ms, self.ttl_ms) {
            NonceStatus::Fresh(id) => (id, false),
            NonceStatus::Expired(id) => (id, true),
            // "bad nonce" or "future nonce" (the same texts as `reason`).
            NonceStatus::Invalid(r) => return challenge(false, r),
        };
        let stored = lookup(&c.username, realm, c.algorithm);
        let known = stored.is_some();
        let ha1 = match stored {
            Some(h) => h.to_ascii_lowercase(),
            None => "0".repeat(c.algorithm.hex_len()),
        };
        let expected = algorithm::response(c.algorithm, &ha1, method, &c.uri, &c.nonce, qop);
        let given = c.response.to_ascii_lowercase();
        let right: bool = expected.as_bytes().ct_eq(given.as_bytes()).into();
        if !known {
            return challenge(false, reason::UNKNOWN_USER);
        }
        if !right {
            return challenge(false, reason::WRONG_PASSWORD);
        }
        if expired {
            return challenge(true, reason::EXPIRED_NONCE);
        }
        match self.tracker().check_and_record(&id, qop.map(|q| q.nc), now_ms) {
            NcVerdict::Accepted => AuthOutcome::Authenticated { username: c.username.clone() },
            NcVerdict::Replay => challenge(true, reason::REPLAYED_NONCE),
            NcVerdict::Forgotten => challenge(true, reason::FORGOTTEN_NONCE),
        }
    }

    fn tracker(&self) -> MutexGuard<'_, NonceTracker> {
        // The tracker cannot be left half-updated by a panic; use it anyway.
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many nonces the replay tracker holds.
    pub fn tracked_nonces(&self) -> usize {
        self.tracker().len()
    }
}

/// Whether the credentials' `uri` names the Request-URI; see the module docs.
fn uri_matches(cred_uri: &str, request_uri: &Uri) -> bool {
    let cred = cred_uri.trim_matches(|c| c == ' ' || c == '\t');
    let req = request_uri.to_bytes();
    if cred.as_bytes() == &req[..] {
        return true;
    }
    Uri::parse_bytes(Bytes::copy_from_slice(cred.as_bytes())).is_ok_and(|u| u.to_bytes() == req)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        Uri::parse_bytes(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    #[test]
    fn uri_comparison() {
        let r = uri("sip:alice@example.com;transport=tcp");
        assert!(uri_matches("sip:alice@example.com;transport=tcp", &r));
        assert!(uri_matches("  sip:alice@example.com;transport=tcp\t", &r));
        assert!(uri_matches("SIP:alice@example.com;transport=tcp", &r));
        assert!(!uri_matches("sip:alice@example.com", &r));
        assert!(!uri_matches("sip:bob@example.com;transport=tcp", &r));
        assert!(!uri_matches("sip:alice@example.com;transport=TCP", &r));
        assert!(!uri_matches("", &r));
        let v6 = uri("sip:[2001:DB8::1]:5060");
        assert!(uri_matches("sip:[2001:db8::1]:5060", &v6));
        assert!(uri_matches("sip:[2001:DB8::1]:5060", &v6));
        let tel = uri("tel:+1-201-555-0123");
        assert!(uri_matches("tel:+1-201-555-0123", &tel));
        assert!(!uri_matches("tel:+12015550123", &tel));
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Authenticator>();
    }
}
