//! The native APNs sender (Apple Push Notification service, HTTP/2):
//! provider-token (`.p8`, ES256) or certificate (`.p12`/PEM) auth, the
//! RFC 8599 `pn-param`/`pn-prid` forms including Linphone's two-token
//! binding, and the mapping of Apple's answers onto an [`Attempt`].
//!
//! What each push becomes ([`plan`]):
//!
//! | push | `voip` token | else `remote` token |
//! |---|---|---|
//! | call (INVITE, other initial, PURR mid-dialog) | VoIP push: `apns-push-type: voip`, topic `<bundle>.voip`, priority 10 | alert push, priority 10 |
//! | refresh, test | only if no `remote` token: VoIP push (`voip_refresh = "voip"`) or nothing (`"none"`) | background push: `content-available`, topic `<bundle>`, priority 5 |
//! | cancel | VoIP push (the app reports and ends the call) | background push |
//! | missed call | VoIP push | alert push |
//!
//! Refresh pushes never go as VoIP pushes when a `remote` token exists:
//! since iOS 13 an app that gets a VoIP push without reporting a call to
//! CallKit is killed. `apns-expiration` is the push's deadline (the hold of
//! the parked request, or the binding's expiry for a refresh).
//!
//! Answers ([`classify`]): 200 delivered; 410 `Unregistered` and 400
//! `BadDeviceToken` dead; 429 and 5xx retried; 403 `ExpiredProviderToken`
//! renews the provider token (never more than once per 20 min, Apple's
//! limit) and retries; anything else fails.

use crate::content::{Kind, PushMeta, fields, json_object};
use crate::http::{self, Answer, HttpOptions};
use crate::jwt::{Cached, Es256Key, unix_now};
use crate::retry::Attempt;
use crate::telemetry;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::json;
use sip_push::PushRequest;
use std::path::PathBuf;
use std::time::Duration;

/// Apple's production endpoint.
pub const PRODUCTION: &str = "https://api.push.apple.com";
/// Apple's development (sandbox) endpoint.
pub const SANDBOX: &str = "https://api.sandbox.push.apple.com";
/// A provider token is re-signed after this long: Apple rejects tokens
/// older than 60 min and refreshes more frequent than every 20 min.
pub const TOKEN_MAX_AGE: Duration = Duration::from_secs(40 * 60);
/// The shortest age at which an `ExpiredProviderToken` answer may renew it.
pub const TOKEN_MIN_AGE: Duration = Duration::from_secs(20 * 60);

/// How sipwake authenticates to APNs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApnsAuth {
    /// A provider token signed with the `.p8` key (Key ID, Team ID).
    Token { key_file: PathBuf, key_id: String, team_id: String },
    /// A TLS client certificate: a `.p12` (with its password) or a PEM
    /// file holding the certificate chain and its private key.
    Certificate { file: PathBuf, password: String },
}

/// What a refresh push does for a binding that has only a VoIP token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoipRefresh {
    /// Send it as a VoIP push (the app must report a call or end one).
    Voip,
    /// Send nothing: the app refreshes its registration by itself.
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApnsConfig {
    /// `https://api.push.apple.com` ([`PRODUCTION`]), [`SANDBOX`], or a gateway.
    pub endpoint: String,
    pub auth: ApnsAuth,
    pub voip_refresh: VoipRefresh,
    /// Put the caller's name and URI in call pushes.
    pub include_caller: bool,
    pub http: HttpOptions,
}

pub(crate) struct Apns {
    provider: String,
    base: String,
    client: http::Pool,
    /// Token auth (`None`: certificate auth).
    token: Option<ProviderToken>,
    voip_refresh: VoipRefresh,
    include_caller: bool,
}

/// Token auth: the `.p8` key, its Key ID, the Team ID and the cached token.
struct ProviderToken {
    key: Es256Key,
    key_id: String,
    team_id: String,
    cache: Cached,
}

impl ProviderToken {
    /// The bearer token, and whether it was just signed.
    fn get(&self) -> Result<(String, bool), String> {
        self.cache.get(|| self.key.sign(Some(&self.key_id), &json!({ "iss": self.team_id, "iat": unix_now() })))
    }
}

impl std::fmt::Debug for Apns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apns").field("base", &self.base).finish_non_exhaustive()
    }
}

impl Apns {
    pub(crate) fn new(provider: &str, cfg: ApnsConfig) -> Result<Apns, String> {
        let base = cfg.endpoint.trim_end_matches('/').to_owned();
        if !base.starts_with("https://") {
            return Err(format!("endpoint {base:?} must be an https:// URL (or \"production\" / \"sandbox\")"));
        }
        let (identity, token) = match cfg.auth {
            ApnsAuth::Token { key_file, key_id, team_id } => {
                let key = Es256Key::from_pem_file(&key_file).map_err(|e| format!("key_file: {e}"))?;
                if key_id.len() != 10 || team_id.len() != 10 {
                    return Err(format!(
                        "key_id {key_id:?} and team_id {team_id:?} must be Apple's 10-character identifiers"
                    ));
                }
                (None, Some(ProviderToken { key, key_id, team_id, cache: Cached::new(TOKEN_MAX_AGE) }))
            }
            ApnsAuth::Certificate { file, password } => (Some(identity(&file, &password)?), None),
        };
        let client = http::Pool::new(&cfg.http, identity)?;
        Ok(Apns {
            provider: provider.to_owned(),
            base,
            client,
            token,
            voip_refresh: cfg.voip_refresh,
            include_caller: cfg.include_caller,
        })
    }

    /// The provider token (cached; re-signed when older than [`TOKEN_MAX_AGE`]).
    fn bearer(&self) -> Result<Option<String>, String> {
        let Some(token) = &self.token else { return Ok(None) };
        let (t, fresh) = token.get()?;
        if fresh {
            telemetry::token_refresh(&self.provider, "apns_provider");
        }
        Ok(Some(t))
    }

    /// One attempt.
    pub(crate) async fn attempt(&self, req: &PushRequest, meta: &PushMeta<'_>, left: Duration) -> Attempt {
        let plan = match plan(req, self.voip_refresh) {
            Ok(Some(p)) => p,
            Ok(None) => return Attempt::Skipped,
            Err(reason) => return Attempt::Dead(reason),
        };
        let bearer = match self.bearer() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(provider = %self.provider, error = %e, "cannot sign the APNs provider token");
                return Attempt::Fail("token_signing");
            }
        };
        let body = payload(&plan, req, meta, self.include_caller);
        let mut rb = self
            .client
            .get()
            .post(format!("{}/3/device/{}", self.base, plan.token))
            .timeout(left)
            .header(CONTENT_TYPE, "application/json")
            .header("apns-topic", &plan.topic)
            .header("apns-push-type", plan.push_type)
            .header("apns-priority", plan.priority)
            .header("apns-expiration", unix_now() + u64::from(req.ttl_secs));
        if plan.kind == Kind::Refresh {
            rb = rb.header("apns-collapse-id", "sipwake-refresh");
        }
        if let Some(b) = &bearer {
            rb = rb.header(AUTHORIZATION, format!("bearer {b}"));
        }
        match http::exchange(rb.body(body)).await {
            Ok(a) => {
                let r = classify(&a);
                if let (Attempt::Retry { reason: "ExpiredProviderToken", .. }, Some(b), Some(token)) =
                    (&r, &bearer, &self.token)
                {
                    // Renew only a token old enough: Apple throttles renewals.
                    if token.cache.age().is_some_and(|a| a >= TOKEN_MIN_AGE) {
                        token.cache.invalidate(b);
                    } else {
                        return Attempt::Fail("ExpiredProviderToken");
                    }
                }
                if !matches!(r, Attempt::Delivered) {
                    tracing::warn!(
                        push = req.id.0, provider = %self.provider, binding = %req.binding,
                        status = a.status.as_u16(), body = %crate::payload::excerpt(&a.body, 256),
                        "APNs refused a push"
                    );
                }
                r
            }
            Err(e) => {
                tracing::warn!(push = req.id.0, provider = %self.provider, error = %e, "APNs request failed");
                Attempt::Retry { reason: http::error_kind(&e), after: None }
            }
        }
    }
}

/// The client identity of certificate authentication.
fn identity(file: &std::path::Path, password: &str) -> Result<reqwest::Identity, String> {
    let data = std::fs::read(file).map_err(|e| format!("cannot read certificate {}: {e}", file.display()))?;
    let pem = if data.starts_with(b"-----BEGIN") || data.windows(10).any(|w| w == b"-----BEGIN") {
        data
    } else {
        let ks = p12_keystore::KeyStore::from_pkcs12(&data, password, p12_keystore::Pkcs12ImportPolicy::Relaxed)
            .map_err(|e| format!("certificate {} is not a readable .p12 (wrong password?): {e}", file.display()))?;
        let (_, chain) = ks
            .private_key_chain()
            .ok_or_else(|| format!("certificate {} holds no private key with its certificate", file.display()))?;
        let mut pem = crate::jwt::pem_encode("PRIVATE KEY", chain.key().as_der());
        for c in chain.certs() {
            pem.push_str(&crate::jwt::pem_encode("CERTIFICATE", c.as_der()));
        }
        pem.into_bytes()
    };
    reqwest::Identity::from_pem(&pem)
        .map_err(|e| format!("certificate {} is not a certificate with its private key: {e}", file.display()))
}

/// A binding's APNs coordinates: `pn-param = <team>.<bundle>.<services>`
/// and `pn-prid = <token>` or `<token>:voip&<token>:remote` (any order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coordinates {
    pub bundle: String,
    pub voip: Option<String>,
    pub remote: Option<String>,
}

/// Reads the coordinates; `Err` names what is wrong (as Apple would).
pub fn coordinates(prid: &str, param: Option<&str>) -> Result<Coordinates, &'static str> {
    let param = param.ok_or("MissingTopic")?;
    let topic = param.split_once('.').map(|(_, t)| t).ok_or("MissingTopic")?;
    let (bundle, services) = match topic.rsplit_once('.') {
        Some((b, s)) if s.split('&').all(|x| matches!(x, "voip" | "remote")) => (b, s),
        // No service suffix: the topic is the bundle, pushed as "remote".
        _ => (topic, "remote"),
    };
    if bundle.is_empty() {
        return Err("MissingTopic");
    }
    let (mut voip, mut remote) = (None, None);
    if prid.contains(':') {
        for part in prid.split('&') {
            match part.split_once(':') {
                Some((t, "voip")) => voip = Some(token(t)?),
                Some((t, "remote")) => remote = Some(token(t)?),
                _ => return Err("BadDeviceToken"),
            }
        }
    } else if services.split('&').any(|s| s == "voip") {
        voip = Some(token(prid)?);
    } else {
        remote = Some(token(prid)?);
    }
    Ok(Coordinates { bundle: bundle.to_owned(), voip, remote })
}

/// A device token: hex only (it goes into the request path).
fn token(t: &str) -> Result<String, &'static str> {
    if (8..=200).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(t.to_ascii_lowercase())
    } else {
        Err("BadDeviceToken")
    }
}

/// One APNs request to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub kind: Kind,
    pub token: String,
    pub topic: String,
    pub push_type: &'static str,
    pub priority: &'static str,
}

/// What to send for `req` (see the module table); `Ok(None)`: nothing.
pub fn plan(req: &PushRequest, voip_refresh: VoipRefresh) -> Result<Option<Plan>, &'static str> {
    let c = coordinates(&req.prid, req.param.as_deref())?;
    let kind = Kind::of(&req.reason);
    let voip = |t: &String| Plan {
        kind,
        token: t.clone(),
        topic: format!("{}.voip", c.bundle),
        push_type: "voip",
        priority: "10",
    };
    let remote = |t: &String, alert: bool| Plan {
        kind,
        token: t.clone(),
        topic: c.bundle.clone(),
        push_type: if alert { "alert" } else { "background" },
        priority: if alert { "10" } else { "5" },
    };
    Ok(match (kind, &c.voip, &c.remote) {
        (Kind::Call, Some(v), _) => Some(voip(v)),
        (Kind::Call, None, Some(r)) | (Kind::MissedCall, _, Some(r)) => Some(remote(r, true)),
        (Kind::Refresh | Kind::Test | Kind::Cancel, _, Some(r)) => Some(remote(r, false)),
        (Kind::Refresh, Some(v), None) => (voip_refresh == VoipRefresh::Voip).then(|| voip(v)),
        (Kind::Test | Kind::Cancel | Kind::MissedCall, Some(v), None) => Some(voip(v)),
        (_, None, None) => return Err("BadDeviceToken"),
    })
}

/// The JSON body: `aps` plus the [`crate::content`] fields.
fn payload(plan: &Plan, req: &PushRequest, meta: &PushMeta<'_>, include_caller: bool) -> Vec<u8> {
    let f = fields(req, meta, include_caller);
    let caller = f
        .iter()
        .find(|(k, _)| *k == "caller_name")
        .or_else(|| f.iter().find(|(k, _)| *k == "caller_uri"))
        .map(|(_, v)| v.clone());
    let aps = match (plan.push_type, plan.kind) {
        ("background", _) => json!({ "content-available": 1 }),
        ("alert", Kind::MissedCall) => {
            json!({ "alert": { "title": "Missed call", "body": caller.unwrap_or_default() }, "sound": "default" })
        }
        ("alert", _) => json!({
            "alert": { "title": "Incoming call", "body": caller.unwrap_or_default() },
            "sound": "default", "interruption-level": "time-sensitive"
        }),
        _ => json!({}),
    };
    let mut doc = json_object(&f);
    doc.insert("aps".into(), aps);
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// Apple's answer as an [`Attempt`].
pub fn classify(a: &Answer) -> Attempt {
    let reason = serde_json::from_slice::<serde_json::Value>(&a.body)
        .ok()
        .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned))
        .unwrap_or_default();
    let r = known_reason(&reason, a.status);
    match a.status {
        s if s.is_success() => Attempt::Delivered,
        StatusCode::GONE => Attempt::Dead(r),
        StatusCode::BAD_REQUEST if reason == "BadDeviceToken" => Attempt::Dead(r),
        StatusCode::FORBIDDEN if reason == "ExpiredProviderToken" => Attempt::Retry { reason: r, after: None },
        StatusCode::TOO_MANY_REQUESTS => Attempt::Retry { reason: r, after: a.retry_after() },
        s if s.is_server_error() => Attempt::Retry { reason: r, after: a.retry_after() },
        _ => Attempt::Fail(r),
    }
}

/// Apple's documented reasons as static strings (metric labels stay bounded).
fn known_reason(reason: &str, status: StatusCode) -> &'static str {
    const KNOWN: &[&str] = &[
        "BadCollapseId",
        "BadDeviceToken",
        "BadExpirationDate",
        "BadMessageId",
        "BadPriority",
        "BadTopic",
        "DeviceTokenNotForTopic",
        "DuplicateHeaders",
        "IdleTimeout",
        "InvalidPushType",
        "MissingDeviceToken",
        "MissingTopic",
        "PayloadEmpty",
        "TopicDisallowed",
        "BadCertificate",
        "BadCertificateEnvironment",
        "ExpiredProviderToken",
        "Forbidden",
        "InvalidProviderToken",
        "MissingProviderToken",
        "BadPath",
        "MethodNotAllowed",
        "ExpiredToken",
        "Unregistered",
        "PayloadTooLarge",
        "TooManyProviderTokenUpdates",
        "TooManyRequests",
        "InternalServerError",
        "ServiceUnavailable",
        "Shutdown",
    ];
    KNOWN.iter().find(|k| **k == reason).copied().unwrap_or_else(|| http::status_label(status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_push::{BindingKey, PushId, PushReason};
    use std::time::Instant;

    const V: &str = "aaaa0000aaaa0000";
    const R: &str = "bbbb1111bbbb1111";

    fn req(reason: PushReason, prid: &str, param: &str) -> PushRequest {
        PushRequest {
            id: PushId(1),
            binding: BindingKey::new("b"),
            provider: "apns".into(),
            prid: prid.into(),
            param: Some(param.into()),
            reason,
            attempt: 1,
            ttl_secs: 30,
            deadline: Instant::now() + Duration::from_secs(30),
        }
    }
    fn call() -> PushReason {
        PushReason::Initial { method: "INVITE".into(), call_id: "c".into() }
    }

    #[test]
    fn linphone_two_token_form_either_order() {
        for (prid, param) in [
            (format!("{V}:voip&{R}:remote"), "ABCDE12345.org.linphone.phone.voip&remote"),
            (format!("{R}:remote&{V}:voip"), "ABCDE12345.org.linphone.phone.remote&voip"),
        ] {
            let c = coordinates(&prid, Some(param)).unwrap();
            assert_eq!(c.bundle, "org.linphone.phone");
            assert_eq!((c.voip.as_deref(), c.remote.as_deref()), (Some(V), Some(R)));
        }
    }

    #[test]
    fn calls_are_voip_refreshes_are_background_on_the_remote_token() {
        let prid = format!("{V}:voip&{R}:remote");
        let p = "ABCDE12345.org.linphone.phone.voip&remote";
        let c = plan(&req(call(), &prid, p), VoipRefresh::Voip).unwrap().unwrap();
        assert_eq!(
            (c.token.as_str(), c.topic.as_str(), c.push_type, c.priority),
            (V, "org.linphone.phone.voip", "voip", "10")
        );
        let r = plan(&req(PushReason::Refresh, &prid, p), VoipRefresh::Voip).unwrap().unwrap();
        assert_eq!(
            (r.token.as_str(), r.topic.as_str(), r.push_type, r.priority),
            (R, "org.linphone.phone", "background", "5")
        );
    }

    #[test]
    fn voip_only_refresh_follows_the_setting() {
        let p = "ABCDE12345.com.example.app.voip";
        let r = plan(&req(PushReason::Refresh, V, p), VoipRefresh::Voip).unwrap().unwrap();
        assert_eq!(r.push_type, "voip");
        assert_eq!(plan(&req(PushReason::Refresh, V, p), VoipRefresh::None).unwrap(), None);
    }

    #[test]
    fn bad_tokens_never_reach_the_path() {
        assert_eq!(coordinates("../../x", Some("T.b.voip")), Err("BadDeviceToken"));
        assert_eq!(coordinates("abcd1234abcd/x", Some("T.b.voip")), Err("BadDeviceToken"));
        assert_eq!(coordinates(V, None), Err("MissingTopic"));
    }

    #[test]
    fn answers() {
        let a = |s: u16, body: &str| Answer {
            status: StatusCode::from_u16(s).unwrap(),
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        };
        assert_eq!(classify(&a(200, "")), Attempt::Delivered);
        assert_eq!(classify(&a(410, r#"{"reason":"Unregistered","timestamp":1}"#)), Attempt::Dead("Unregistered"));
        assert_eq!(classify(&a(400, r#"{"reason":"BadDeviceToken"}"#)), Attempt::Dead("BadDeviceToken"));
        assert_eq!(classify(&a(400, r#"{"reason":"BadTopic"}"#)), Attempt::Fail("BadTopic"));
        assert_eq!(
            classify(&a(429, r#"{"reason":"TooManyRequests"}"#)),
            Attempt::Retry { reason: "TooManyRequests", after: None }
        );
        assert_eq!(classify(&a(503, "")), Attempt::Retry { reason: "http_5xx", after: None });
        assert_eq!(classify(&a(403, r#"{"reason":"InvalidProviderToken"}"#)), Attempt::Fail("InvalidProviderToken"));
    }
}
