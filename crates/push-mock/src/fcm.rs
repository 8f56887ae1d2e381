//! The FCM mock: Google's OAuth2 token endpoint for service accounts
//! (`POST /token`, RS256 JWT-bearer assertion → access token) and the FCM
//! HTTP v1 send API (`POST /v1/projects/<id>/messages:send`), with
//! Google's error bodies (`{"error":{"code","message","status","details"}}`
//! for FCM, `{"error","error_description"}` for OAuth2).

use crate::app::{Handler, Kind, Req};
use crate::jwt::{Verifier, int_claim, now_secs, str_field};
use crate::keys::{b64url, random_bytes};
use crate::reply::Reply;
use crate::seen::Outcome;
use crate::state::State;
use hyper::Method;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Value, json};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The scope a service account must ask for to send with FCM.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google's limit on an assertion's lifetime (`exp - iat`).
const MAX_ASSERTION_LIFETIME: i64 = 3600;
const SKEW: i64 = 60;
const FCM_ERROR_TYPE: &str = "type.googleapis.com/google.firebase.fcm.v1.FcmError";

/// The FCM rules for one project and service account.
pub(crate) struct Fcm {
    project_id: String,
    client_email: String,
    token_uri: String,
    verifier: Verifier,
}

/// An FCM v1 error body; `error_code` adds the `FcmError` detail.
fn fcm_error(code: u16, status: &str, message: &str, error_code: Option<&str>) -> Reply {
    let mut error = json!({ "code": code, "message": message, "status": status });
    if let Some(error_code) = error_code {
        error["details"] = json!([{ "@type": FCM_ERROR_TYPE, "errorCode": error_code }]);
    }
    Reply::json(code, &json!({ "error": error }))
}

/// Google's OAuth2 error body.
fn oauth_error(error: &str, description: &str) -> Reply {
    Reply::json(400, &json!({ "error": error, "error_description": description }))
}

fn unauthenticated() -> Reply {
    fcm_error(
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        None,
    )
    .with("www-authenticate", "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"")
}

fn invalid_argument(message: &str) -> Reply {
    fcm_error(400, "INVALID_ARGUMENT", message, Some("INVALID_ARGUMENT"))
}

/// `application/x-www-form-urlencoded` decoding of one component.
fn form_decode(s: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form_field(body: &str, name: &str) -> Option<String> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| form_decode(k) == name)
        .map(|(_, v)| form_decode(v))
}

/// A protobuf `Duration` in JSON: `"<seconds>s"` with up to 9 decimals.
fn is_duration(s: &str) -> bool {
    let Some(number) = s.strip_suffix('s') else { return false };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 9
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(number.contains('.') && frac.is_empty())
}

impl Fcm {
    pub fn new(project_id: String, client_email: String, sa_public_pem: &str, token_uri: String) -> Fcm {
        let key = DecodingKey::from_rsa_pem(sa_public_pem.as_bytes())
            .expect("push-mock: FCM sa_public_pem is not an RSA public key PEM");
        Fcm { project_id, client_email, token_uri, verifier: Verifier::new(key, Algorithm::RS256) }
    }

    /// `POST /token`: the JWT-bearer grant.
    fn token(&self, state: &Mutex<State>, req: &Req, out: &mut Outcome) -> Reply {
        if !req.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
            out.problem(format!("token request content-type is {:?}, not a form", req.header("content-type")));
        }
        let body = String::from_utf8_lossy(&req.body);
        let grant_type = form_field(&body, "grant_type");
        if grant_type.as_deref() != Some(GRANT_TYPE) {
            out.problem(format!("grant_type is {grant_type:?}, expected {GRANT_TYPE}"));
            return oauth_error(
                "unsupported_grant_type",
                &format!("Invalid grant_type: {}", grant_type.unwrap_or_default()),
            );
        }
        let Some(assertion) = form_field(&body, "assertion") else {
            out.problem("no assertion in the token request");
            return oauth_error("invalid_request", "Missing required parameter: assertion");
        };
        let verdict = self.verifier.check(&assertion);
        let decoded = match verdict.as_ref() {
            Ok(decoded) => decoded,
            Err(e) => {
                out.problem(format!("assertion: {e}"));
                return oauth_error("invalid_grant", "Invalid JWT: malformed");
            }
        };
        out.jwt_header = Some(decoded.header.clone());
        out.jwt_claims = Some(decoded.claims.clone());
        let claims = &decoded.claims;
        if str_field(&decoded.header, "alg") != Some("RS256") || !decoded.signature_ok {
            out.problem("assertion signature does not verify (RS256) with the service account key");
            return oauth_error("invalid_grant", "Invalid JWT Signature.");
        }
        if str_field(claims, "iss") != Some(self.client_email.as_str()) {
            out.problem(format!("assertion iss is {:?}, expected {}", str_field(claims, "iss"), self.client_email));
            return oauth_error("invalid_grant", "Invalid grant: account not found");
        }
        if str_field(claims, "aud") != Some(self.token_uri.as_str()) {
            out.problem(format!("assertion aud is {:?}, expected {}", claims.get("aud"), self.token_uri));
            return oauth_error(
                "invalid_grant",
                &format!("Invalid JWT: Failed audience check. The right audience is {}", self.token_uri),
            );
        }
        let now = now_secs();
        let (iat, exp) = (int_claim(claims, "iat"), int_claim(claims, "exp"));
        let timing = match (iat, exp) {
            (Some(iat), Some(exp)) if exp - iat > MAX_ASSERTION_LIFETIME => {
                Some(format!("exp - iat is {}s, more than 3600", exp - iat))
            }
            (Some(_), Some(exp)) if exp <= now => Some(format!("assertion expired {}s ago", now - exp)),
            (Some(iat), Some(_)) if iat > now + SKEW => Some(format!("assertion iat is {}s in the future", iat - now)),
            (Some(_), Some(_)) => None,
            _ => Some("assertion lacks a numeric iat or exp".to_owned()),
        };
        if let Some(timing) = timing {
            out.problem(timing);
            return oauth_error(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            );
        }
        let scopes = str_field(claims, "scope").unwrap_or_default();
        if !scopes.split(' ').any(|s| s == FCM_SCOPE) {
            out.problem(format!("assertion scope {scopes:?} lacks {FCM_SCOPE}"));
            return oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.");
        }
        let access_token = format!("ya29.mock-{}", b64url(&random_bytes(24)));
        let mut state = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let lifetime = state.token_lifetime;
        let now = Instant::now();
        state.issued.retain(|_, expiry| *expiry > now);
        state.issued.insert(access_token.clone(), now + Duration::from_secs(lifetime));
        Reply::json(200, &json!({ "access_token": access_token, "expires_in": lifetime, "token_type": "Bearer" }))
    }

    /// `POST /v1/projects/<id>/messages:send`.
    fn send(&self, state: &Mutex<State>, req: &Req, out: &mut Outcome) -> Reply {
        let bearer = req.header("authorization").and_then(|a| {
            a.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")).map(|(_, t)| t.trim())
        });
        let Some(bearer) = bearer else {
            out.problem(format!("no `Bearer <access token>` authorization: {:?}", req.header("authorization")));
            return unauthenticated();
        };
        {
            let state = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match state.issued.get(bearer) {
                None => {
                    out.problem("access token was not issued by this mock's /token");
                    return unauthenticated();
                }
                Some(expiry) if *expiry <= Instant::now() => {
                    out.problem("access token has expired");
                    return unauthenticated();
                }
                Some(_) => {}
            }
        }
        let project =
            req.path.strip_prefix("/v1/projects/").and_then(|p| p.strip_suffix("/messages:send")).unwrap_or_default();
        if project != self.project_id {
            out.problem(format!("project {project:?} in the URL, the service account's is {}", self.project_id));
            let message = format!(
                "Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/{project}' (or it may not exist)."
            );
            return fcm_error(403, "PERMISSION_DENIED", &message, None);
        }
        if !req.header("content-type").is_some_and(|c| c.starts_with("application/json")) {
            out.problem(format!("content-type is {:?}, not application/json", req.header("content-type")));
        }
        let body: Value = match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(e) => {
                out.problem(format!("body is not JSON: {e}"));
                return fcm_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.", None);
            }
        };
        let Some(message) = body.get("message").filter(|m| m.is_object()) else {
            out.problem("body has no `message` object");
            return invalid_argument("Request contains an invalid argument.");
        };
        let Some(token) = message.get("token").and_then(Value::as_str) else {
            out.problem("message has no `token` string");
            return invalid_argument("Request contains an invalid argument.");
        };
        if let Some(reply) = self.check_message(message, out) {
            return reply;
        }
        let state = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.dead.contains(token) {
            return fcm_error(404, "NOT_FOUND", "Requested entity was not found.", Some("UNREGISTERED"));
        }
        if state.bad.contains(token) {
            return invalid_argument("The registration token is not a valid FCM registration token");
        }
        let id = u64::from_be_bytes(random_bytes(8).try_into().unwrap_or([0; 8]));
        Reply::json(200, &json!({ "name": format!("projects/{}/messages/0:{id}%{id:x}", self.project_id) }))
    }

    /// `data` (string → string), `android.priority`, `android.ttl`.
    fn check_message(&self, message: &Value, out: &mut Outcome) -> Option<Reply> {
        if let Some(data) = message.get("data") {
            let Some(data) = data.as_object() else {
                out.problem("message.data is not an object");
                return Some(invalid_argument(
                    "Invalid value at 'message.data' (type.googleapis.com/google.firebase.fcm.v1.Message.DataEntry)",
                ));
            };
            if let Some((i, (k, v))) = data.iter().enumerate().find(|(_, (_, v))| !v.is_string()) {
                out.problem(format!("message.data[{k:?}] is {v}, FCM data values must be strings"));
                return Some(invalid_argument(&format!(
                    "Invalid value at 'message.data[{i}].value' (TYPE_STRING), {v}"
                )));
            }
        }
        let android = message.get("android");
        match android.and_then(|a| a.get("priority")).map(|p| p.as_str().map(str::to_ascii_lowercase)) {
            Some(Some(p)) if p == "high" => {}
            Some(Some(p)) if p == "normal" => out.problem("android.priority is normal; waking a phone needs high"),
            None => out
                .problem("no android.priority; waking a phone needs high (FCM's default is normal for data messages)"),
            Some(p) => {
                out.problem(format!("android.priority {p:?} is not normal or high"));
                return Some(invalid_argument(
                    "Invalid value at 'message.android.priority' (type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority)",
                ));
            }
        }
        if let Some(ttl) = android.and_then(|a| a.get("ttl"))
            && !ttl.as_str().is_some_and(is_duration)
        {
            out.problem(format!("android.ttl {ttl} is not a duration like \"30s\""));
            return Some(invalid_argument(
                "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), Illegal duration format; duration must end with 's'",
            ));
        }
        None
    }
}

impl Handler for Fcm {
    fn classify(&self, req: &Req) -> Kind {
        match (&req.method, req.path.as_str()) {
            (&Method::POST, "/token") => Kind::Token,
            (&Method::POST, p) if p.starts_with("/v1/projects/") && p.ends_with("/messages:send") => Kind::Push,
            _ => Kind::Other,
        }
    }

    fn handle(&self, state: &Mutex<State>, req: &Req, out: &mut Outcome) -> Reply {
        match self.classify(req) {
            Kind::Token => self.token(state, req, out),
            Kind::Push => self.send(state, req, out),
            Kind::Other => {
                out.problem(format!("{} {} is not an FCM endpoint", req.method, req.path));
                fcm_error(404, "NOT_FOUND", "The requested URL was not found on this server.", None)
            }
        }
    }

    fn failure(&self, status: u16) -> Reply {
        match status {
            400 => invalid_argument("Request contains an invalid argument."),
            401 => unauthenticated(),
            403 => fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch", Some("SENDER_ID_MISMATCH")),
            404 => fcm_error(404, "NOT_FOUND", "Requested entity was not found.", Some("UNREGISTERED")),
            429 => fcm_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute'.",
                Some("QUOTA_EXCEEDED"),
            ),
            503 => fcm_error(503, "UNAVAILABLE", "The service is currently unavailable.", Some("UNAVAILABLE")),
            s => fcm_error(s, "INTERNAL", "Internal error encountered.", Some("INTERNAL")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{form_decode, form_field, is_duration};

    #[test]
    fn form_and_duration_parsing() {
        assert_eq!(form_decode("a%3Ab+c%2"), "a:b c%2");
        assert_eq!(form_field("x=1&grant_type=urn%3Aietf", "grant_type").as_deref(), Some("urn:ietf"));
        for ok in ["0s", "30s", "2419200s", "0.5s", "1.123456789s"] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in ["30", "s", "-1s", "1.s", "1.1234567890s", "30 s"] {
            assert!(!is_duration(bad), "{bad}");
        }
    }
}
