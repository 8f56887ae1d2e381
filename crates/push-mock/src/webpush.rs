//! The WebPush mock: a push service's message endpoint (RFC 8030
//! `POST /push/<subscription>`), with the `TTL`/`Urgency`/`Topic` headers,
//! VAPID (RFC 8292 `authorization: vapid t=<JWT>, k=<key>`) and the
//! `aes128gcm` encrypted body (RFC 8291), which it decrypts for the
//! subscriptions it was given.

use crate::app::{Handler, Kind, Req};
use crate::jwt::{Verifier, decode_parts, int_claim, now_secs, str_field};
use crate::keys::{Subscription, b64url, random_bytes};
use crate::reply::Reply;
use crate::seen::Outcome;
use crate::state::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::Method;
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::sync::Mutex;

/// Largest body a push service must accept (RFC 8030 §7.2: 4096 octets).
const MAX_BODY: usize = 4096;
/// RFC 8292 §2: `exp` no more than 24 hours from the request.
const MAX_EXP: i64 = 86_400;
const URGENCIES: &[&str] = &["very-low", "low", "normal", "high"];

/// The WebPush rules: an optional VAPID key and the known subscriptions.
pub(crate) struct WebPush {
    vapid: Option<(String, Verifier)>,
    subscriptions: HashMap<String, Subscription>,
    base_url: String,
}

impl WebPush {
    pub fn new(
        vapid_public_b64url: Option<String>,
        subscriptions: Vec<(String, Subscription)>,
        base_url: String,
    ) -> WebPush {
        let vapid = vapid_public_b64url.map(|k| {
            let point = URL_SAFE_NO_PAD.decode(&k).expect("push-mock: vapid_public_b64url is not base64url");
            (k, Verifier::new(DecodingKey::from_ec_der(&point), Algorithm::ES256))
        });
        WebPush { vapid, subscriptions: subscriptions.into_iter().collect(), base_url }
    }

    /// The `t` and `k` parameters of `authorization: vapid t=..., k=...`.
    fn vapid_params(auth: &str) -> Option<(&str, &str)> {
        let (scheme, params) = auth.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("vapid") {
            return None;
        }
        let mut t = None;
        let mut k = None;
        for param in params.split(',') {
            match param.trim().split_once('=') {
                Some(("t", v)) => t = Some(v.trim()),
                Some(("k", v)) => k = Some(v.trim()),
                _ => {}
            }
        }
        Some((t?, k?))
    }

    /// RFC 8292 checks. `Err` is the answer: 401 when the credentials are
    /// absent or unreadable, 403 when they are present but wrong (§4.2).
    fn check_vapid(&self, req: &Req, out: &mut Outcome) -> Result<(), Reply> {
        let auth = req.header("authorization");
        let params = auth.and_then(Self::vapid_params);
        let Some((expected_k, verifier)) = &self.vapid else {
            // Unrestricted subscription: nothing is required, but a token
            // that is present is still decoded for the test to inspect.
            if let Some(Ok((header, claims))) = params.map(|(t, _)| decode_parts(t)) {
                out.jwt_header = Some(header);
                out.jwt_claims = Some(claims);
            }
            return Ok(());
        };
        let Some((t, k)) = params else {
            out.problem(format!("no `vapid t=<JWT>, k=<key>` authorization: {auth:?}"));
            return Err(Reply::text(401, "VAPID authorization required"));
        };
        let verdict = verifier.check(t);
        let decoded = match verdict.as_ref() {
            Ok(decoded) => decoded,
            Err(e) => {
                out.problem(format!("VAPID token: {e}"));
                return Err(Reply::text(401, "VAPID token unreadable"));
            }
        };
        out.jwt_header = Some(decoded.header.clone());
        out.jwt_claims = Some(decoded.claims.clone());
        let mut wrong = Vec::new();
        if k != expected_k {
            wrong.push(format!("VAPID k {k:?} is not the subscription's application server key {expected_k:?}"));
        }
        if str_field(&decoded.header, "alg") != Some("ES256") || !decoded.signature_ok {
            wrong.push("VAPID JWT signature does not verify (ES256) with k".to_owned());
        }
        let claims = &decoded.claims;
        if str_field(claims, "aud") != Some(req.origin.as_str()) {
            wrong.push(format!(
                "VAPID aud is {:?}, expected the push resource's origin {}",
                claims.get("aud"),
                req.origin
            ));
        }
        let now = now_secs();
        match int_claim(claims, "exp") {
            None => wrong.push("VAPID JWT has no numeric exp".to_owned()),
            Some(exp) if exp <= now => wrong.push(format!("VAPID JWT expired {}s ago", now - exp)),
            Some(exp) if exp - now > MAX_EXP => {
                wrong.push(format!("VAPID exp is {}s ahead, more than 24 h", exp - now))
            }
            Some(_) => {}
        }
        match str_field(claims, "sub") {
            Some(sub) if sub.starts_with("mailto:") || sub.starts_with("https:") => {}
            sub => wrong.push(format!("VAPID sub {sub:?} is not a mailto: or https: URI")),
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            out.problems.extend(wrong);
            Err(Reply::text(403, "VAPID credentials rejected"))
        }
    }

    fn answer(&self, state: &Mutex<State>, req: &Req, out: &mut Outcome) -> Reply {
        if req.method != Method::POST || !req.path.starts_with("/push/") {
            out.problem(format!("{} {} is not POST /push/<subscription>", req.method, req.path));
            return Reply::text(404, "Not Found");
        }
        let ttl = req.header("ttl");
        if !ttl.is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())) {
            out.problem(format!("TTL header is {ttl:?}, RFC 8030 requires a number of seconds"));
            return Reply::text(400, "TTL header required");
        }
        if let Some(urgency) = req.header("urgency")
            && !URGENCIES.contains(&urgency)
        {
            out.problem(format!("Urgency {urgency:?} is not very-low, low, normal or high"));
            return Reply::text(400, "invalid Urgency");
        }
        if let Some(topic) = req.header("topic")
            && (topic.len() > 32 || !topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            out.problem(format!("Topic {topic:?} is not at most 32 base64url characters"));
            return Reply::text(400, "invalid Topic");
        }
        if let Err(reply) = self.check_vapid(req, out) {
            return reply;
        }
        if req.body.len() > MAX_BODY {
            out.problem(format!("body is {} bytes, more than {MAX_BODY}", req.body.len()));
            return Reply::text(413, "Payload Too Large");
        }
        if !req.body.is_empty() {
            let encoding = req.header("content-encoding");
            if encoding != Some("aes128gcm") {
                out.problem(format!("body with content-encoding {encoding:?}, RFC 8291 requires aes128gcm"));
                return Reply::text(400, "content-encoding must be aes128gcm");
            }
            if let Some(sub) = self.subscriptions.get(&req.path) {
                match sub.decrypt(&req.body) {
                    Ok(plain) => out.decrypted = Some(plain),
                    Err(e) => {
                        out.problem(format!("body does not decrypt for the subscription: {e}"));
                        return Reply::text(400, "body does not decrypt");
                    }
                }
            }
        }
        if state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).dead.contains(&req.path) {
            return Reply::text(410, "push subscription has unsubscribed or expired");
        }
        let location = format!("{}/message/{}", self.base_url, b64url(&random_bytes(12)));
        Reply::empty(201).with("location", location).with("ttl", ttl.unwrap_or("0"))
    }
}

impl Handler for WebPush {
    fn classify(&self, req: &Req) -> Kind {
        if req.method == Method::POST && req.path.starts_with("/push/") { Kind::Push } else { Kind::Other }
    }

    fn handle(&self, state: &Mutex<State>, req: &Req, out: &mut Outcome) -> Reply {
        self.answer(state, req, out)
    }

    fn failure(&self, status: u16) -> Reply {
        let text = match status {
            404 => "Not Found",
            410 => "Gone",
            413 => "Payload Too Large",
            429 => "Too Many Requests",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        };
        Reply::text(status, text)
    }
}
