//! The webhook sender: one HTTP `POST` of the [`crate::Payload`] JSON to an
//! operator-configured URL, and the mapping of the answer onto
//! [`PushError`]. Delivery only: no retries, no schedule (the engine
//! decides whether and when to push again).
//!
//! Outcome: 2xx → `Ok`; 404/410 → [`PushError::Rejected`] (the device token
//! is dead); any other status, a timeout or a connection error →
//! [`PushError::Failed`].
//!
//! SSRF (RFC 8599 notes §6.9): the request goes only to the configured
//! `url`; `pn-prid` (which for webpush is a client-chosen URL) is sent as
//! data, never dialled. Redirects are not followed, and at most
//! [`BODY_EXCERPT`] bytes of an answer body are read.

use crate::payload::excerpt;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, StatusCode, Url};
use sha2::Sha256;
use sip_push::{PushError, PushRequest};
use std::time::Duration;

/// How many bytes of an answer body are read (and logged) at most.
pub const BODY_EXCERPT: usize = 256;

/// Header carrying `sha256=<hex HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "x-sipwake-signature";
/// Header carrying the engine's push id (for receiver-side de-duplication).
pub const PUSH_ID_HEADER: &str = "x-sipwake-push-id";

#[derive(Debug)]
pub(crate) struct Webhook {
    url: Url,
    timeout: Duration,
    headers: HeaderMap,
    hmac_secret: Option<Vec<u8>>,
}

impl Webhook {
    pub(crate) fn new(
        url: &str,
        timeout: Duration,
        headers: &[(String, String)],
        hmac_secret: Option<&str>,
    ) -> Result<Webhook, String> {
        let url = Url::parse(url).map_err(|e| format!("invalid webhook url {url:?}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("webhook url {url} must be http: or https:"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("webhook url {url} has no host"));
        }
        if timeout.is_zero() {
            return Err("webhook timeout must be > 0".into());
        }
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name {name:?}"))?;
            if n == CONTENT_TYPE || n.as_str() == SIGNATURE_HEADER || n.as_str() == PUSH_ID_HEADER {
                return Err(format!("header {name:?} is set by the sender"));
            }
            let mut v = HeaderValue::from_str(value).map_err(|_| format!("invalid value for header {name:?}"))?;
            v.set_sensitive(true);
            map.append(n, v);
        }
        let hmac_secret = match hmac_secret {
            Some("") => return Err("hmac_secret must not be empty".into()),
            Some(s) => Some(s.as_bytes().to_vec()),
            None => None,
        };
        Ok(Webhook { url, timeout, headers: map, hmac_secret })
    }

    pub(crate) async fn send(&self, client: &Client, req: &PushRequest, body: Vec<u8>) -> Result<(), PushError> {
        let mut rb = client
            .post(self.url.clone())
            .timeout(self.timeout)
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(PUSH_ID_HEADER, req.id.0);
        if let Some(secret) = &self.hmac_secret {
            rb = rb.header(SIGNATURE_HEADER, signature(secret, &body));
        }
        // Backstop: the whole exchange, body excerpt included, ends in time.
        let slack = Duration::from_millis(100);
        match tokio::time::timeout(self.timeout + slack, exchange(rb.body(body))).await {
            Ok(Ok((status, _))) if status.is_success() => {
                tracing::debug!(push = req.id.0, provider = %req.provider, %status, "webhook push delivered");
                Ok(())
            }
            Ok(Ok((status, body))) => {
                let rejected = matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE);
                tracing::warn!(
                    push = req.id.0, provider = %req.provider, binding = %req.binding,
                    status = status.as_u16(), body = %excerpt(&body, BODY_EXCERPT),
                    rejected, "webhook push failed"
                );
                Err(if rejected { PushError::Rejected } else { PushError::Failed })
            }
            Ok(Err(e)) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "request"
                };
                tracing::warn!(
                    push = req.id.0, provider = %req.provider, binding = %req.binding,
                    kind, error = %e, "webhook push failed"
                );
                Err(PushError::Failed)
            }
            Err(_) => {
                tracing::warn!(
                    push = req.id.0, provider = %req.provider, binding = %req.binding,
                    kind = "timeout", timeout_ms = self.timeout.as_millis() as u64,
                    "webhook push failed"
                );
                Err(PushError::Failed)
            }
        }
    }
}

/// Sends the request and reads at most [`BODY_EXCERPT`] bytes of the body.
async fn exchange(rb: reqwest::RequestBuilder) -> Result<(StatusCode, Vec<u8>), reqwest::Error> {
    let mut resp = rb.send().await?;
    let status = resp.status();
    let mut body = Vec::new();
    // Read errors after the status line don't change the outcome.
    while body.len() <= BODY_EXCERPT {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c[..c.len().min(BODY_EXCERPT + 1 - body.len())]),
            Ok(None) | Err(_) => break,
        }
    }
    Ok((status, body))
}

/// `sha256=<lowercase hex of HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(body);
    let tag = m.finalize().into_bytes();
    let mut s = String::with_capacity(7 + 2 * tag.len());
    s.push_str("sha256=");
    for b in tag {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}
