//! The native FCM sender (Firebase Cloud Messaging HTTP v1): a Google
//! service account, the OAuth 2.0 JWT-bearer grant (RFC 7523) for an access
//! token shared by every request and renewed shortly before it expires,
//! and `POST /v1/projects/<pn-param>/messages:send` with a high-priority
//! data message whose `ttl` is the push's deadline.
//!
//! Answers ([`classify`]): 200 delivered; 404 / `UNREGISTERED` dead;
//! 401 drops the access token and retries with a new one; 429 and 5xx
//! retried (honouring `Retry-After`); anything else fails.

use crate::content::{PushMeta, fields, json_object};
use crate::http::{self, Answer, HttpOptions};
use crate::jwt::{Rs256Key, unix_now};
use crate::retry::Attempt;
use crate::telemetry;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::json;
use sip_push::PushRequest;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Google's FCM endpoint.
pub const ENDPOINT: &str = "https://fcm.googleapis.com";
/// The OAuth scope of FCM sends.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// An access token is renewed this long before it expires.
pub const RENEW_BEFORE: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FcmConfig {
    /// The service-account JSON file (Firebase console → Service accounts).
    pub service_account: PathBuf,
    /// `https://fcm.googleapis.com` ([`ENDPOINT`]) or a gateway.
    pub endpoint: String,
    /// Put the caller's name and URI in call pushes.
    pub include_caller: bool,
    pub http: HttpOptions,
}

/// The fields of a service-account file we use.
#[derive(Deserialize)]
struct ServiceAccount {
    #[serde(rename = "type")]
    kind: Option<String>,
    project_id: String,
    private_key_id: Option<String>,
    private_key: String,
    client_email: String,
    token_uri: String,
}

pub(crate) struct Fcm {
    provider: String,
    base: String,
    client: http::Pool,
    key: Rs256Key,
    key_id: Option<String>,
    client_email: String,
    token_uri: String,
    project_id: String,
    include_caller: bool,
    /// The access token and when to renew it; the async lock makes one
    /// task fetch while the others wait for its result.
    access: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for Fcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fcm").field("base", &self.base).field("project_id", &self.project_id).finish_non_exhaustive()
    }
}

impl Fcm {
    pub(crate) fn new(provider: &str, cfg: FcmConfig) -> Result<Fcm, String> {
        let path = &cfg.service_account;
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read service_account {}: {e}", path.display()))?;
        let sa: ServiceAccount = serde_json::from_str(&text).map_err(|e| {
            format!("service_account {} is not a Google service-account JSON file: {e}", path.display())
        })?;
        if sa.kind.as_deref().is_some_and(|k| k != "service_account") {
            return Err(format!("service_account {}: \"type\" must be \"service_account\"", path.display()));
        }
        let key =
            Rs256Key::from_pem(&sa.private_key).map_err(|e| format!("service_account {}: {e}", path.display()))?;
        if !sa.token_uri.starts_with("https://") {
            return Err(format!("service_account {}: token_uri must be an https:// URL", path.display()));
        }
        let base = cfg.endpoint.trim_end_matches('/').to_owned();
        if !base.starts_with("https://") {
            return Err(format!("endpoint {base:?} must be an https:// URL"));
        }
        Ok(Fcm {
            provider: provider.to_owned(),
            base,
            client: http::Pool::new(&cfg.http, None)?,
            key,
            key_id: sa.private_key_id,
            client_email: sa.client_email,
            token_uri: sa.token_uri,
            project_id: sa.project_id,
            include_caller: cfg.include_caller,
            access: tokio::sync::Mutex::new(None),
        })
    }

    /// The shared access token, fetched when missing or near expiry.
    async fn access_token(&self, left: Duration) -> Result<String, Attempt> {
        let mut slot = self.access.lock().await;
        if let Some((t, renew_at)) = &*slot
            && Instant::now() < *renew_at
        {
            return Ok(t.clone());
        }
        let now = unix_now();
        let claims = json!({
            "iss": self.client_email, "scope": SCOPE, "aud": self.token_uri, "iat": now, "exp": now + 3600,
        });
        let assertion = self.key.sign(self.key_id.as_deref(), &claims).map_err(|e| {
            tracing::error!(provider = %self.provider, error = %e, "cannot sign the OAuth assertion");
            Attempt::Fail("token_signing")
        })?;
        let body = format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}");
        let rb = self
            .client
            .get()
            .post(&self.token_uri)
            .timeout(left)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        let a = http::exchange(rb).await.map_err(|e| {
            tracing::warn!(provider = %self.provider, error = %e, "OAuth token request failed");
            Attempt::Retry { reason: "oauth_unreachable", after: None }
        })?;
        if !a.status.is_success() {
            tracing::error!(
                provider = %self.provider, status = a.status.as_u16(), body = %crate::payload::excerpt(&a.body, 256),
                "Google refused the service account's token request"
            );
            return Err(if a.status.is_server_error() || a.status == StatusCode::TOO_MANY_REQUESTS {
                Attempt::Retry { reason: "oauth_unavailable", after: a.retry_after() }
            } else {
                Attempt::Fail("oauth_refused")
            });
        }
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
            expires_in: u64,
        }
        let t: Token = serde_json::from_slice(&a.body).map_err(|_| Attempt::Fail("oauth_bad_answer"))?;
        let life = Duration::from_secs(t.expires_in);
        let renew = if life > 2 * RENEW_BEFORE { life - RENEW_BEFORE } else { life / 2 };
        telemetry::token_refresh(&self.provider, "fcm_oauth");
        *slot = Some((t.access_token.clone(), Instant::now() + renew));
        Ok(t.access_token)
    }

    async fn drop_token(&self, token: &str) {
        let mut slot = self.access.lock().await;
        if slot.as_ref().is_some_and(|(t, _)| t == token) {
            *slot = None;
        }
    }

    pub(crate) async fn attempt(&self, req: &PushRequest, meta: &PushMeta<'_>, left: Duration) -> Attempt {
        let project = req.param.as_deref().unwrap_or(&self.project_id);
        if project.is_empty() || !project.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Attempt::Fail("bad_project_id");
        }
        let token = match self.access_token(left).await {
            Ok(t) => t,
            Err(a) => return a,
        };
        let body = json!({ "message": {
            "token": req.prid,
            "data": json_object(&fields(req, meta, self.include_caller)),
            "android": { "priority": "high", "ttl": format!("{}s", req.ttl_secs) },
        }});
        let rb = self
            .client
            .get()
            .post(format!("{}/v1/projects/{project}/messages:send", self.base))
            .timeout(left)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default());
        match http::exchange(rb).await {
            Ok(a) => {
                let r = classify(&a);
                if a.status == StatusCode::UNAUTHORIZED {
                    self.drop_token(&token).await;
                }
                if !matches!(r, Attempt::Delivered) {
                    tracing::warn!(
                        push = req.id.0, provider = %self.provider, binding = %req.binding,
                        status = a.status.as_u16(), body = %crate::payload::excerpt(&a.body, 256),
                        "FCM refused a push"
                    );
                }
                r
            }
            Err(e) => {
                tracing::warn!(push = req.id.0, provider = %self.provider, error = %e, "FCM request failed");
                Attempt::Retry { reason: http::error_kind(&e), after: None }
            }
        }
    }
}

/// FCM's answer as an [`Attempt`].
pub fn classify(a: &Answer) -> Attempt {
    if a.status.is_success() {
        return Attempt::Delivered;
    }
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
    let err = &v["error"];
    let code = err["details"]
        .as_array()
        .and_then(|d| d.iter().find_map(|x| x["errorCode"].as_str()))
        .or_else(|| err["status"].as_str())
        .unwrap_or("");
    let r = known_reason(code, a.status);
    match a.status {
        StatusCode::NOT_FOUND => Attempt::Dead(r),
        _ if code == "UNREGISTERED" => Attempt::Dead(r),
        StatusCode::UNAUTHORIZED => Attempt::Retry { reason: r, after: None },
        StatusCode::TOO_MANY_REQUESTS => Attempt::Retry { reason: r, after: a.retry_after() },
        s if s.is_server_error() => Attempt::Retry { reason: r, after: a.retry_after() },
        _ => Attempt::Fail(r),
    }
}

fn known_reason(code: &str, status: StatusCode) -> &'static str {
    const KNOWN: &[&str] = &[
        "UNSPECIFIED_ERROR",
        "INVALID_ARGUMENT",
        "UNREGISTERED",
        "SENDER_ID_MISMATCH",
        "QUOTA_EXCEEDED",
        "UNAVAILABLE",
        "INTERNAL",
        "THIRD_PARTY_AUTH_ERROR",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "NOT_FOUND",
        "RESOURCE_EXHAUSTED",
    ];
    KNOWN.iter().find(|k| **k == code).copied().unwrap_or_else(|| http::status_label(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: u16, body: &str) -> Answer {
        Answer { status: StatusCode::from_u16(s).unwrap(), headers: Default::default(), body: body.as_bytes().to_vec() }
    }

    #[test]
    fn answers() {
        let unreg = r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND",
            "details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#;
        assert_eq!(classify(&a(200, r#"{"name":"projects/p/messages/1"}"#)), Attempt::Delivered);
        assert_eq!(classify(&a(404, unreg)), Attempt::Dead("UNREGISTERED"));
        assert_eq!(
            classify(&a(
                429,
                r#"{"error":{"status":"RESOURCE_EXHAUSTED","details":[{"errorCode":"QUOTA_EXCEEDED"}]}}"#
            )),
            Attempt::Retry { reason: "QUOTA_EXCEEDED", after: None }
        );
        assert_eq!(classify(&a(503, "")), Attempt::Retry { reason: "http_5xx", after: None });
        assert_eq!(
            classify(&a(401, r#"{"error":{"status":"UNAUTHENTICATED"}}"#)),
            Attempt::Retry { reason: "UNAUTHENTICATED", after: None }
        );
        assert_eq!(classify(&a(400, r#"{"error":{"status":"INVALID_ARGUMENT"}}"#)), Attempt::Fail("INVALID_ARGUMENT"));
    }
}
