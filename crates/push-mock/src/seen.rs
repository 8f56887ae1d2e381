//! What the mock remembers of one request ([`Seen`]) and what a service
//! handler found while checking it ([`Outcome`]).

use serde_json::Value;

/// One request as the mock received and judged it.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The path and query (`/3/device/<token>`).
    pub path: String,
    /// Every header, names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Vec<u8>,
    /// True when the request came over HTTP/2.
    pub h2: bool,
    /// The HTTP version as text (`HTTP/2.0`, `HTTP/1.1`).
    pub version: String,
    /// The JWT's claims, when the request carried one that decodes.
    pub jwt_claims: Option<Value>,
    /// The JWT's header, when the request carried one that decodes.
    pub jwt_header: Option<Value>,
    /// Each verification failure, in plain words (empty: all checks held).
    pub problems: Vec<String>,
    /// The WebPush plaintext, when the body was `aes128gcm` for a known
    /// subscription and decrypted.
    pub decrypted: Option<Vec<u8>>,
    /// The status the mock answered (or, while stalled, will answer).
    pub status: u16,
}

impl Seen {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// What a handler found: filled in while checking, copied into [`Seen`].
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub jwt_claims: Option<Value>,
    pub jwt_header: Option<Value>,
    pub problems: Vec<String>,
    pub decrypted: Option<Vec<u8>>,
}

impl Outcome {
    /// Records a verification failure.
    pub fn problem(&mut self, text: impl Into<String>) {
        self.problems.push(text.into());
    }
}
