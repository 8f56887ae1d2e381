//! `sip-auth`: server-side HTTP Digest authentication for SIP (RFC 3261
//! §22, RFC 7616, RFC 8760), sans-IO: no sockets, no clock reads (callers
//! pass `now_ms`), no database (callers pass a `lookup` closure returning the
//! stored HA1).
//!
//! Modules and what each owns:
//! - [`algorithm`]: MD5 / SHA-256, the HA1 / HA2 / response formulas, hex.
//! - [`nonce`]: stateless, HMAC-protected nonces (issue, verify, age) and the
//!   `opaque` value.
//! - [`header`]: parsing `Authorization` / `Proxy-Authorization` values into
//!   [`Credentials`], and formatting `WWW-Authenticate` /
//!   `Proxy-Authenticate` challenge values.
//! - [`tracker`]: the nonce-count replay guard (bounded, O(1) per request).
//! - [`verify`]: the [`Authenticator`], which ties the above together into
//!   the server's decision for one request.
//!
//! This module holds the configuration and the small shared types.
//!
//! Typical use (registrar, 401):
//! ```
//! use sip_auth::{AuthConfig, AuthOutcome, Authenticator, Which};
//! # let req = sip_msg::Message::request(sip_msg::Method::Register,
//! #     sip_msg::Uri::parse_bytes(&b"sip:example.com"[..]).unwrap());
//! let auth = Authenticator::new(AuthConfig::new([7; 32]));
//! let now_ms = 1_700_000_000_000;
//! match auth.check(&req, "example.com", Which::Authorization, now_ms, |_user, _realm, _alg| None) {
//!     AuthOutcome::Authenticated { username } => println!("{username} is in"),
//!     AuthOutcome::Challenge { stale, reason } => {
//!         let mut resp = req.response(Which::Authorization.status(), None, Some("totag"));
//!         auth.add_challenges(&mut resp, "example.com", Which::Authorization, now_ms, stale);
//!         let _ = reason; // for logs / metrics
//!     }
//! }
//! ```

pub mod algorithm;
pub mod header;
pub mod nonce;
pub mod tracker;
pub mod verify;

pub use algorithm::{Algorithm, Qop, ha1, response};
pub use header::{AuthError, Credentials, DigestParams, format_challenge, parse_credentials, parse_digest_params};
pub use nonce::{NonceId, NonceKey, NonceStatus};
pub use tracker::{NcVerdict, NonceTracker};
pub use verify::{Authenticator, reason};

use sip_msg::HeaderName;
use std::fmt;
use std::time::Duration;

/// Configuration of an [`Authenticator`].
#[derive(Clone)]
pub struct AuthConfig {
    /// The server secret keying the nonce HMAC and the opaque value. Every
    /// instance that must accept another's nonces shares it.
    pub realm_secret: [u8; 32],
    /// How long a nonce is accepted; an older one whose response is right
    /// earns a fresh challenge with `stale=true`.
    pub nonce_ttl: Duration,
    /// Algorithms offered and accepted, in challenge order (RFC 8760 §2.4:
    /// preferred first); an empty list means SHA-256 then MD5.
    pub algorithms: Vec<Algorithm>,
    /// Upper bound on the nonces whose nonce-count is tracked (memory bound
    /// of the replay guard). At least 1 is used.
    pub max_tracked_nonces: usize,
    /// Accept RFC 2069-style responses without `qop` (each nonce then works
    /// once only). Off by default; challenges always ask for `qop="auth"`.
    pub allow_no_qop: bool,
}

impl AuthConfig {
    /// Defaults: nonce TTL 300 s, SHA-256 and MD5, 100 000 tracked nonces,
    /// `qop` required.
    pub fn new(realm_secret: [u8; 32]) -> AuthConfig {
        AuthConfig {
            realm_secret,
            nonce_ttl: Duration::from_secs(300),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            max_tracked_nonces: 100_000,
            allow_no_qop: false,
        }
    }

    /// A fresh random secret (for a single instance that need not accept
    /// nonces issued before a restart).
    pub fn random_secret() -> [u8; 32] {
        use rand::RngExt;
        let mut rng = rand::rng();
        let mut s = [0u8; 32];
        for chunk in s.chunks_mut(8) {
            chunk.copy_from_slice(&rng.random::<u64>().to_le_bytes());
        }
        s
    }
}

/// The secret is never printed.
impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("realm_secret", &"<redacted>")
            .field("nonce_ttl", &self.nonce_ttl)
            .field("algorithms", &self.algorithms)
            .field("max_tracked_nonces", &self.max_tracked_nonces)
            .field("allow_no_qop", &self.allow_no_qop)
            .finish()
    }
}

/// Which side of authentication: a registrar / UAS (`Authorization`, 401,
/// `WWW-Authenticate`) or a proxy (`Proxy-Authorization`, 407,
/// `Proxy-Authenticate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Which {
    Authorization,
    ProxyAuthorization,
}

impl Which {
    /// The request header carrying the credentials.
    pub fn credentials_header(self) -> HeaderName {
        match self {
            Which::Authorization => HeaderName::Authorization,
            Which::ProxyAuthorization => HeaderName::ProxyAuthorization,
        }
    }
    /// The response header carrying a challenge.
    pub fn challenge_header(self) -> HeaderName {
        match self {
            Which::Authorization => HeaderName::WwwAuthenticate,
            Which::ProxyAuthorization => HeaderName::ProxyAuthenticate,
        }
    }
    /// The status code of a challenge: 401 or 407.
    pub fn status(self) -> u16 {
        match self {
            Which::Authorization => 401,
            Which::ProxyAuthorization => 407,
        }
    }
}

/// The decision for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The credentials are right and fresh.
    Authenticated { username: String },
    /// Answer with a fresh challenge (401/407). `stale` is true when the
    /// client proved it knows the password but the nonce can no longer be
    /// used (expired, nonce-count replayed, or no longer tracked), so it may
    /// retry without asking its user. `reason` is for logs and metrics only;
    /// never send it to the client.
    Challenge { stale: bool, reason: &'static str },
}

impl AuthOutcome {
    pub fn is_authenticated(&self) -> bool {
        matches!(self, AuthOutcome::Authenticated { .. })
    }
}
