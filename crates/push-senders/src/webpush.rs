//! The native WebPush sender (RFC 8030): a `POST` to the push resource URL
//! the browser registered as `pn-prid` (unescaped, R62), with `TTL` (the
//! push's deadline), `Urgency: high` and VAPID (RFC 8292: an ES256 JWT
//! with `aud` = the URL's origin, `exp` 12 h ahead, `sub` from the config,
//! in `Authorization: vapid t=…, k=…`).
//!
//! **No body** unless the binding carries its subscription keys (sipwake's
//! `pn-webpush-p256dh` and `pn-webpush-auth` Contact parameters,
//! base64url): then the [`crate::content`] fields travel as JSON,
//! encrypted per RFC 8291 (`Content-Encoding: aes128gcm`). RFC 8599 itself
//! defines no payload (R45).
//!
//! **SSRF**: `pn-prid` is chosen by whoever registers, so the URL must be
//! `https://` on a host of the allow-list ([`DEFAULT_ALLOWED_HOSTS`]:
//! the public browser push services); anything else is refused with a log
//! line and the `host_not_allowed` failure metric, and never dialled.
//!
//! Answers ([`classify`]): 2xx delivered; 404/410 dead (expired or
//! unsubscribed); 429 and 5xx retried; anything else fails.

use crate::content::{PushMeta, fields, json_object};
use crate::http::{self, Answer, HttpOptions};
use crate::jwt::{Es256Key, unix_now};
use crate::retry::Attempt;
use crate::telemetry;
use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde_json::json;
use sip_push::PushRequest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Push services of the major browsers (Chrome/Edge via FCM, Firefox,
/// Safari, Windows). `*.` matches any subdomain.
pub const DEFAULT_ALLOWED_HOSTS: &[&str] = &[
    "fcm.googleapis.com",
    "updates.push.services.mozilla.com",
    "*.push.services.mozilla.com",
    "web.push.apple.com",
    "*.push.apple.com",
    "*.notify.windows.com",
];

/// A VAPID JWT lives this long (RFC 8292 allows at most 24 h) and is
/// re-signed after half of it.
pub const VAPID_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The subscription-key Contact parameters (base64url).
pub const P256DH_PARAM: &str = "pn-webpush-p256dh";
pub const AUTH_PARAM: &str = "pn-webpush-auth";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebPushConfig {
    /// The VAPID private key (P-256 PEM); `None`: no VAPID.
    pub vapid_key_file: Option<PathBuf>,
    /// The VAPID `sub` claim: `mailto:` or `https:` contact of the operator.
    pub vapid_subject: String,
    /// Hosts push resource URLs may point at (`host`, `host:port`, `*.domain`).
    pub allowed_hosts: Vec<String>,
    /// Put the caller's name and URI in an (encrypted) call push.
    pub include_caller: bool,
    pub http: HttpOptions,
}

pub(crate) struct WebPush {
    provider: String,
    client: http::Pool,
    vapid: Option<Es256Key>,
    subject: String,
    allowed: Vec<String>,
    include_caller: bool,
    /// origin → (`Authorization` value, signed at).
    jwts: Mutex<HashMap<String, (String, Instant)>>,
}

impl std::fmt::Debug for WebPush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebPush").field("allowed", &self.allowed).finish_non_exhaustive()
    }
}

impl WebPush {
    pub(crate) fn new(provider: &str, cfg: WebPushConfig) -> Result<WebPush, String> {
        let vapid = match &cfg.vapid_key_file {
            Some(p) => Some(Es256Key::from_pem_file(p).map_err(|e| format!("vapid_private_key: {e}"))?),
            None => None,
        };
        if vapid.is_some() && !(cfg.vapid_subject.starts_with("mailto:") || cfg.vapid_subject.starts_with("https:")) {
            return Err(format!(
                "vapid_subject {:?} must be a mailto: or https: URI (RFC 8292 §2.1), e.g. \"mailto:ops@example.com\"",
                cfg.vapid_subject
            ));
        }
        if cfg.allowed_hosts.is_empty() {
            return Err("allowed_hosts is empty: no push could ever be sent".into());
        }
        Ok(WebPush {
            provider: provider.to_owned(),
            client: http::Pool::new(&cfg.http, None)?,
            vapid,
            subject: cfg.vapid_subject,
            allowed: cfg.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            include_caller: cfg.include_caller,
            jwts: Mutex::new(HashMap::new()),
        })
    }

    /// The VAPID public key (base64url), what `+sip.vapid` advertises.
    pub(crate) fn vapid_public_key(&self) -> Option<String> {
        self.vapid.as_ref().map(Es256Key::public_b64url)
    }

    /// The `Authorization` value for `origin` (cached whole per origin).
    fn vapid_header(&self, origin: &str) -> Result<Option<String>, String> {
        let Some(key) = &self.vapid else { return Ok(None) };
        let mut map = self.jwts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((h, at)) = map.get(origin)
            && at.elapsed() < VAPID_LIFETIME / 2
        {
            return Ok(Some(h.clone()));
        }
        let claims = json!({ "aud": origin, "exp": unix_now() + VAPID_LIFETIME.as_secs(), "sub": self.subject });
        let h = format!("vapid t={}, k={}", key.sign(None, &claims)?, key.public_b64url());
        if map.len() >= 10_000 {
            map.clear();
        }
        map.insert(origin.to_owned(), (h.clone(), Instant::now()));
        telemetry::token_refresh(&self.provider, "vapid");
        Ok(Some(h))
    }

    pub(crate) async fn attempt(&self, req: &PushRequest, meta: &PushMeta<'_>, left: Duration) -> Attempt {
        let url = match allowed_url(&req.prid, &self.allowed) {
            Ok(u) => u,
            Err(why) => {
                tracing::warn!(
                    push = req.id.0, provider = %self.provider, binding = %req.binding, aor = meta.aor.unwrap_or(""),
                    reason = why, "push resource URL refused (not an allowed push service); nothing sent"
                );
                return Attempt::Fail("host_not_allowed");
            }
        };
        let origin = url.origin().ascii_serialization();
        let auth = match self.vapid_header(&origin) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(provider = %self.provider, error = %e, "cannot sign the VAPID JWT");
                return Attempt::Fail("token_signing");
            }
        };
        let mut rb =
            self.client.get().post(url).timeout(left).header("ttl", req.ttl_secs.to_string()).header("urgency", "high");
        if let Some(a) = auth {
            rb = rb.header(AUTHORIZATION, a);
        }
        rb = match encrypted_body(req, meta, self.include_caller) {
            Ok(Some(body)) => {
                rb.header(CONTENT_ENCODING, "aes128gcm").header(CONTENT_TYPE, "application/octet-stream").body(body)
            }
            Ok(None) => rb.header(reqwest::header::CONTENT_LENGTH, "0").body(Vec::new()),
            Err(why) => {
                tracing::warn!(push = req.id.0, provider = %self.provider, binding = %req.binding, why, "bad subscription keys; pushing without a body");
                rb.header(reqwest::header::CONTENT_LENGTH, "0").body(Vec::new())
            }
        };
        match http::exchange(rb).await {
            Ok(a) => {
                let r = classify(&a);
                if !matches!(r, Attempt::Delivered) {
                    tracing::warn!(
                        push = req.id.0, provider = %self.provider, binding = %req.binding,
                        status = a.status.as_u16(), body = %crate::payload::excerpt(&a.body, 256),
                        "push service refused a push"
                    );
                }
                r
            }
            Err(e) => {
                tracing::warn!(push = req.id.0, provider = %self.provider, error = %e, "WebPush request failed");
                Attempt::Retry { reason: http::error_kind(&e), after: None }
            }
        }
    }
}

/// The push resource URL, if it is `https://` on an allowed host.
pub fn allowed_url(prid: &str, allowed: &[String]) -> Result<Url, &'static str> {
    let url = Url::parse(prid).map_err(|_| "not a URL")?;
    if url.scheme() != "https" {
        return Err("not https");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL");
    }
    let host = url.host_str().ok_or("no host")?.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let port = url.port();
    let ok = allowed.iter().any(|entry| {
        let (h, p) = split_entry(entry);
        let host_ok = match h.strip_prefix("*.") {
            Some(suffix) => host.strip_suffix(suffix).is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => host == h,
        };
        host_ok && port == p
    });
    if ok { Ok(url) } else { Err("host not in allowed_hosts") }
}

/// An allow-list entry as (host, port): `host`, `host:port`, `[v6]:port`, `*.domain`.
fn split_entry(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (rest, None),
        };
    }
    match entry.split_once(':') {
        Some((h, p)) if !p.contains(':') => (h, p.parse().ok()),
        _ => (entry, None),
    }
}

/// The RFC 8291 body, when the binding carries its subscription keys.
fn encrypted_body(
    req: &PushRequest,
    meta: &PushMeta<'_>,
    include_caller: bool,
) -> Result<Option<Vec<u8>>, &'static str> {
    let (Some(p256dh), Some(auth)) = (meta.extra(P256DH_PARAM), meta.extra(AUTH_PARAM)) else { return Ok(None) };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let key = b64.decode(p256dh.trim_end_matches('=')).map_err(|_| "p256dh is not base64url")?;
    let auth = b64.decode(auth.trim_end_matches('=')).map_err(|_| "auth is not base64url")?;
    let body = serde_json::to_vec(&json_object(&fields(req, meta, include_caller))).unwrap_or_default();
    crate::ece::encrypt(&body, &key, &auth).map(Some)
}

/// The push service's answer as an [`Attempt`].
pub fn classify(a: &Answer) -> Attempt {
    let r = http::status_label(a.status);
    match a.status {
        s if s.is_success() => Attempt::Delivered,
        StatusCode::NOT_FOUND | StatusCode::GONE => Attempt::Dead(r),
        StatusCode::TOO_MANY_REQUESTS => Attempt::Retry { reason: r, after: a.retry_after() },
        s if s.is_server_error() => Attempt::Retry { reason: r, after: a.retry_after() },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Attempt::Fail("vapid_refused"),
        _ => Attempt::Fail(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn allow_list() {
        let d = allow(DEFAULT_ALLOWED_HOSTS);
        assert!(allowed_url("https://fcm.googleapis.com/fcm/send/abc", &d).is_ok());
        assert!(allowed_url("https://updates.push.services.mozilla.com/wpush/v2/x", &d).is_ok());
        assert!(allowed_url("https://wns2-db5p.notify.windows.com/w/?token=x", &d).is_ok());
        assert!(allowed_url("http://fcm.googleapis.com/fcm/send/abc", &d).is_err(), "https only");
        assert!(allowed_url("https://169.254.169.254/latest/meta-data", &d).is_err());
        assert!(allowed_url("https://evilnotify.windows.com/x", &d).is_err());
        assert!(allowed_url("https://notify.windows.com.evil.example/x", &d).is_err());
        assert!(allowed_url("https://fcm.googleapis.com:8443/x", &d).is_err(), "other port needs an entry");
        assert!(allowed_url("https://user:pw@fcm.googleapis.com/x", &d).is_err());
        let t = allow(&["127.0.0.1:8443"]);
        assert!(allowed_url("https://127.0.0.1:8443/push/1", &t).is_ok());
        assert!(allowed_url("https://127.0.0.1:8444/push/1", &t).is_err());
        assert!(allowed_url("https://127.0.0.1/push/1", &t).is_err());
    }

    #[test]
    fn answers() {
        let a = |s: u16| Answer { status: StatusCode::from_u16(s).unwrap(), headers: Default::default(), body: vec![] };
        assert_eq!(classify(&a(201)), Attempt::Delivered);
        assert_eq!(classify(&a(410)), Attempt::Dead("http_410"));
        assert_eq!(classify(&a(404)), Attempt::Dead("http_404"));
        assert_eq!(classify(&a(403)), Attempt::Fail("vapid_refused"));
        assert_eq!(classify(&a(503)), Attempt::Retry { reason: "http_5xx", after: None });
    }
}
