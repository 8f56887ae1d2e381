//! The APNs mock: Apple's provider API, `POST /3/device/<hex token>` over
//! HTTP/2, with token auth (ES256 JWT from a `.p8` key) or certificate
//! auth (TLS client certificate), the `apns-*` headers, the JSON payload,
//! and Apple's error answers (`{"reason": ...}`, 410 with `timestamp`).

use crate::app::{Handler, Kind, Req};
use crate::jwt::{Verifier, int_claim, now_secs, str_field};
use crate::reply::{Reply, uuid_v4};
use crate::seen::Outcome;
use crate::state::State;
use hyper::{Method, Version};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::sync::Mutex;
use std::time::Instant;

/// Push types Apple documents for `apns-push-type`.
const PUSH_TYPES: &[&str] = &[
    "alert",
    "background",
    "location",
    "voip",
    "complication",
    "fileprovider",
    "mdm",
    "liveactivity",
    "pushtotalk",
    "widgets",
];
/// Largest payload Apple accepts (VoIP: 5120).
const MAX_PAYLOAD: usize = 4096;
const MAX_VOIP_PAYLOAD: usize = 5120;
/// A provider token is valid for one hour after its `iat`.
const TOKEN_MAX_AGE: i64 = 3600;
/// Clock skew tolerated for an `iat` in the future.
const SKEW: i64 = 60;

/// The APNs rules for one key (token auth) or the test CA (cert auth).
pub(crate) struct Apns {
    team_id: String,
    key_id: String,
    verifier: Verifier,
    cert_auth: bool,
}

/// Apple's error answer: `{"reason": reason}`.
fn reason(status: u16, reason: &str) -> Reply {
    Reply::json(status, &serde_json::json!({ "reason": reason }))
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Apns {
    pub fn new(team_id: String, key_id: String, key_public_pem: &str, cert_auth: bool) -> Apns {
        let key = DecodingKey::from_ec_pem(key_public_pem.as_bytes())
            .expect("push-mock: APNs key_public_pem is not an EC public key PEM");
        Apns { team_id, key_id, verifier: Verifier::new(key, Algorithm::ES256), cert_auth }
    }

    /// Token auth: the `authorization: bearer <JWT>` checks and Apple's
    /// 20-minute token refresh rule. `Err` is the answer to give.
    fn check_token(&self, state: &Mutex<State>, req: &Req, out: &mut Outcome) -> Result<(), Reply> {
        let Some(auth) = req.header("authorization") else {
            out.problem("no authorization header (token auth needs `bearer <JWT>`)");
            return Err(reason(403, "MissingProviderToken"));
        };
        let token = match auth.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                out.problem(format!("authorization header is not `bearer <JWT>`: {auth:?}"));
                return Err(reason(403, "InvalidProviderToken"));
            }
        };
        let verdict = self.verifier.check(token);
        let decoded = match verdict.as_ref() {
            Ok(decoded) => decoded,
            Err(e) => {
                out.problem(format!("provider token: {e}"));
                return Err(reason(403, "InvalidProviderToken"));
            }
        };
        out.jwt_header = Some(decoded.header.clone());
        out.jwt_claims = Some(decoded.claims.clone());
        let mut invalid = Vec::new();
        if str_field(&decoded.header, "alg") != Some("ES256") {
            invalid.push(format!("JWT alg is {:?}, APNs requires ES256", str_field(&decoded.header, "alg")));
        }
        if str_field(&decoded.header, "kid") != Some(self.key_id.as_str()) {
            invalid.push(format!(
                "JWT kid is {:?}, expected the key id {}",
                str_field(&decoded.header, "kid"),
                self.key_id
            ));
        }
        if !decoded.signature_ok {
            invalid.push("JWT signature does not verify with the APNs key".to_owned());
        }
        if str_field(&decoded.claims, "iss") != Some(self.team_id.as_str()) {
            invalid.push(format!(
                "JWT iss is {:?}, expected the team id {}",
                str_field(&decoded.claims, "iss"),
                self.team_id
            ));
        }
        let now = now_secs();
        match int_claim(&decoded.claims, "iat") {
            None => invalid.push("JWT has no numeric iat".to_owned()),
            Some(iat) if iat > now + SKEW => invalid.push(format!("JWT iat is {}s in the future", iat - now)),
            Some(iat) if iat < now - TOKEN_MAX_AGE => {
                out.problem(format!("JWT iat is {}s old, APNs accepts at most one hour", now - iat));
                return Err(reason(403, "ExpiredProviderToken"));
            }
            Some(_) => {}
        }
        if !invalid.is_empty() {
            out.problems.extend(invalid);
            return Err(reason(403, "InvalidProviderToken"));
        }

        let mut state = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !state.apns_known.contains(token) {
            if let Some((current, at)) = &state.apns_current
                && current != token
                && at.elapsed() < state.apns_refresh_min
            {
                out.problem(format!(
                    "new provider token {}s after the previous new one; Apple allows one per {}s",
                    at.elapsed().as_secs(),
                    state.apns_refresh_min.as_secs()
                ));
                return Err(reason(429, "TooManyProviderTokenUpdates"));
            }
            state.apns_known.insert(token.to_owned());
            state.apns_current = Some((token.to_owned(), Instant::now()));
        }
        Ok(())
    }

    /// The `apns-*` headers and the payload. `Err` is the answer to give.
    fn check_request(&self, req: &Req, out: &mut Outcome) -> Result<(), Reply> {
        let topic = req.header("apns-topic");
        if topic.is_none() && !self.cert_auth {
            out.problem("no apns-topic header (required with token auth)");
            return Err(reason(400, "MissingTopic"));
        }
        let push_type = req.header("apns-push-type");
        match push_type {
            None => {
                out.problem("no apns-push-type header");
                return Err(reason(400, "InvalidPushType"));
            }
            Some(t) if !PUSH_TYPES.contains(&t) => {
                out.problem(format!("apns-push-type {t:?} is not one Apple documents"));
                return Err(reason(400, "InvalidPushType"));
            }
            Some(_) => {}
        }
        if push_type == Some("voip") && !topic.is_some_and(|t| t.ends_with(".voip")) {
            // Apple has no reason code for "voip push to a non-.voip topic"
            // as such; it answers DeviceTokenNotForTopic (the VoIP token is
            // registered for `<bundle>.voip`), the closest documented one.
            out.problem(format!("apns-push-type voip needs an apns-topic ending in .voip, got {topic:?}"));
            return Err(reason(400, "DeviceTokenNotForTopic"));
        }
        let priority = req.header("apns-priority").unwrap_or("10");
        if !["10", "5", "1"].contains(&priority) {
            out.problem(format!("apns-priority {priority:?} is not 10, 5 or 1"));
            return Err(reason(400, "BadPriority"));
        }
        if push_type == Some("background") && priority != "5" {
            out.problem(format!("background pushes need apns-priority 5, got {priority}"));
            return Err(reason(400, "BadPriority"));
        }
        if let Some(exp) = req.header("apns-expiration")
            && exp.parse::<u64>().is_err()
        {
            out.problem(format!("apns-expiration {exp:?} is not a unix time"));
            return Err(reason(400, "BadExpirationDate"));
        }
        if let Some(id) = req.header("apns-id")
            && !is_uuid(id)
        {
            out.problem(format!("apns-id {id:?} is not a UUID"));
            return Err(reason(400, "BadMessageId"));
        }

        let max = if push_type == Some("voip") { MAX_VOIP_PAYLOAD } else { MAX_PAYLOAD };
        if req.body.len() > max {
            out.problem(format!("payload is {} bytes, the limit is {max}", req.body.len()));
            return Err(reason(413, "PayloadTooLarge"));
        }
        // Apple documents no reason for a malformed payload; PayloadEmpty
        // is the only documented payload-content reason, so it is used for
        // an empty body, non-JSON, and JSON without an `aps` object.
        if req.body.is_empty() {
            out.problem("empty payload");
            return Err(reason(400, "PayloadEmpty"));
        }
        let payload: serde_json::Value = match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(e) => {
                out.problem(format!("payload is not JSON: {e}"));
                return Err(reason(400, "PayloadEmpty"));
            }
        };
        let Some(aps) = payload.get("aps").filter(|a| a.is_object()) else {
            out.problem("payload has no `aps` object");
            return Err(reason(400, "PayloadEmpty"));
        };
        if push_type == Some("background") && aps.get("content-available").and_then(|v| v.as_i64()) != Some(1) {
            // Apple accepts this but never delivers it: a problem, not an error.
            out.problem(
                "background push without aps.content-available = 1 (Apple accepts it, the device never gets it)",
            );
        }
        Ok(())
    }
}

impl Handler for Apns {
    fn classify(&self, req: &Req) -> Kind {
        if req.method == Method::POST && req.path.starts_with("/3/device/") { Kind::Push } else { Kind::Other }
    }

    fn handle(&self, state: &Mutex<State>, req: &Req, out: &mut Outcome) -> Reply {
        let apns_id = req.header("apns-id").filter(|id| is_uuid(id)).map(str::to_owned).unwrap_or_else(uuid_v4);
        self.answer(state, req, out).with("apns-id", apns_id)
    }

    fn failure(&self, status: u16) -> Reply {
        let r = match status {
            400 => "BadDeviceToken",
            403 => "Forbidden",
            404 => "BadPath",
            410 => "Unregistered",
            413 => "PayloadTooLarge",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            _ => "InternalServerError",
        };
        reason(status, r).with("apns-id", uuid_v4())
    }
}

impl Apns {
    fn answer(&self, state: &Mutex<State>, req: &Req, out: &mut Outcome) -> Reply {
        let Some(token) = req.path.strip_prefix("/3/device/") else {
            out.problem(format!("path {} is not /3/device/<token>", req.path));
            return reason(404, "BadPath");
        };
        if req.method != Method::POST {
            out.problem(format!("method {} (APNs takes POST)", req.method));
            return reason(405, "MethodNotAllowed");
        }
        if req.version != Version::HTTP_2 {
            // Apple's servers speak HTTP/2 only; there is no JSON answer.
            out.problem(format!("request over {:?}; APNs requires HTTP/2", req.version));
            return Reply::text(505, "APNs requires HTTP/2");
        }
        if token.is_empty() {
            out.problem("empty device token");
            return reason(400, "MissingDeviceToken");
        }
        if !token.bytes().all(|b| b.is_ascii_hexdigit()) || token.len() % 2 != 0 {
            out.problem(format!("device token {token:?} is not hex"));
            return reason(400, "BadDeviceToken");
        }
        if !self.cert_auth
            && let Err(reply) = self.check_token(state, req, out)
        {
            return reply;
        }
        if self.cert_auth && !req.client_cert {
            out.problem("certificate auth but the connection has no client certificate");
            return reason(403, "BadCertificate");
        }
        if let Err(reply) = self.check_request(req, out) {
            return reply;
        }
        let state = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.dead.contains(token) {
            let ms = now_secs() * 1000;
            return Reply::json(410, &serde_json::json!({ "reason": "Unregistered", "timestamp": ms }));
        }
        if state.bad.contains(token) {
            return reason(400, "BadDeviceToken");
        }
        Reply::empty(200)
    }
}
