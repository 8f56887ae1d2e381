//! What a native push tells the app: one flat list of string fields shared
//! by APNs (custom keys beside `aps`), FCM (the `data` map, whose values
//! must be strings) and WebPush (the encrypted JSON body, when the
//! subscription keys are known). Pure data; no I/O.
//!
//! | field | value |
//! |---|---|
//! | `type` | `call`, `refresh`, `cancel`, `missed_call`, `test` |
//! | `call_id` | the request's Call-ID (calls, cancel, missed call) |
//! | `method` | the parked request's method (calls) |
//! | `caller_name` | the From display name, when there is one and `include_caller` |
//! | `caller_uri` | the From URI, when `include_caller` |
//! | `cause` | cancel: `cancelled` or `answered_elsewhere` |
//! | `reason` | the OpenSIPS-style reason (`ini-INVITE`, `reg-refresh`…) |
//! | `aor` | the binding's address-of-record |
//! | `push_id` | the engine's push id (de-duplication) |
//! | `expires_at` | unix seconds after which the push is useless |
//!
//! CallKit needs the call's identity at once (an iOS 13+ app must report a
//! call for every VoIP push before it has registered), which is why the
//! caller and Call-ID travel in the push.

use sip_push::{CallEnd, PushReason, PushRequest};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The caller of a call push: the From header, parsed by the core.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// The display name, unquoted (absent when the From had none).
    pub display_name: Option<String>,
    /// The From URI, without its parameters' tag.
    pub uri: String,
}

/// What the core knows about a push beyond the engine's request.
#[derive(Clone, Copy, Debug, Default)]
pub struct PushMeta<'a> {
    /// The binding's address-of-record.
    pub aor: Option<&'a str>,
    /// The caller, for call, cancel and missed-call pushes.
    pub caller: Option<&'a Caller>,
    /// The binding's other `pn-*` Contact parameters (unescaped), e.g. the
    /// WebPush subscription keys `pn-webpush-p256dh` / `pn-webpush-auth`.
    pub pn_extra: &'a [(String, String)],
}

impl<'a> PushMeta<'a> {
    /// The value of one extra `pn-*` parameter.
    pub fn extra(&self, name: &str) -> Option<&'a str> {
        self.pn_extra.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The kind of a push, which decides how each provider delivers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Wake the device for a parked request (VoIP push on iOS).
    Call,
    /// Make the device re-register before its binding expires.
    Refresh,
    /// Stop ringing: the call was cancelled or answered elsewhere.
    Cancel,
    /// The call ended unanswered.
    MissedCall,
    /// An operator's test push.
    Test,
}

impl Kind {
    pub fn of(reason: &PushReason) -> Kind {
        match reason {
            PushReason::Initial { .. } | PushReason::MidDialog { .. } => Kind::Call,
            PushReason::Refresh => Kind::Refresh,
            PushReason::Test => Kind::Test,
            PushReason::CallEnded { end: CallEnd::Missed, .. } => Kind::MissedCall,
            PushReason::CallEnded { .. } => Kind::Cancel,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Call => "call",
            Kind::Refresh => "refresh",
            Kind::Cancel => "cancel",
            Kind::MissedCall => "missed_call",
            Kind::Test => "test",
        }
    }
}

/// The fields of one push, in a stable order.
pub fn fields(req: &PushRequest, meta: &PushMeta<'_>, include_caller: bool) -> Vec<(&'static str, String)> {
    let kind = Kind::of(&req.reason);
    let mut f: Vec<(&'static str, String)> = Vec::with_capacity(11);
    f.push(("type", kind.as_str().to_owned()));
    match &req.reason {
        PushReason::Initial { method, call_id } | PushReason::MidDialog { method, call_id } => {
            f.push(("call_id", call_id.clone()));
            f.push(("method", method.clone()));
        }
        PushReason::CallEnded { method, call_id, end } => {
            f.push(("call_id", call_id.clone()));
            f.push(("method", method.clone()));
            if *end != CallEnd::Missed {
                f.push(("cause", end.as_str().to_owned()));
            }
        }
        PushReason::Refresh | PushReason::Test => {}
    }
    if include_caller && let Some(c) = meta.caller {
        if let Some(n) = &c.display_name {
            f.push(("caller_name", n.clone()));
        }
        f.push(("caller_uri", c.uri.clone()));
    }
    f.push(("reason", req.reason.opensips_reason()));
    if let Some(aor) = meta.aor {
        f.push(("aor", aor.to_owned()));
    }
    f.push(("push_id", req.id.0.to_string()));
    f.push(("expires_at", (deadline_unix_ms(req.deadline) / 1000).to_string()));
    f
}

/// [`fields`] as a JSON object of strings.
pub fn json_object(fields: &[(&'static str, String)]) -> serde_json::Map<String, serde_json::Value> {
    fields.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone()))).collect()
}

/// `deadline` on the wall clock (now + time left), in ms since the Unix epoch.
pub fn deadline_unix_ms(deadline: Instant) -> u64 {
    let left = deadline.saturating_duration_since(Instant::now());
    let at = SystemTime::now() + left;
    at.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_push::{BindingKey, PushId};
    use std::time::Duration;

    fn req(reason: PushReason) -> PushRequest {
        PushRequest {
            id: PushId(7),
            binding: BindingKey::new("b"),
            provider: "fcm".into(),
            prid: "tok".into(),
            param: None,
            reason,
            attempt: 1,
            ttl_secs: 30,
            deadline: Instant::now() + Duration::from_secs(30),
        }
    }

    #[test]
    fn call_fields_carry_the_caller_only_when_asked() {
        let caller = Caller { display_name: Some("Alice".into()), uri: "sip:alice@example.com".into() };
        let meta = PushMeta { aor: Some("sip:bob@example.com"), caller: Some(&caller), pn_extra: &[] };
        let r = req(PushReason::Initial { method: "INVITE".into(), call_id: "c1".into() });
        let f = fields(&r, &meta, true);
        let get = |k: &str| f.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("type"), Some("call"));
        assert_eq!(get("call_id"), Some("c1"));
        assert_eq!(get("caller_name"), Some("Alice"));
        assert_eq!(get("caller_uri"), Some("sip:alice@example.com"));
        assert_eq!(get("reason"), Some("ini-INVITE"));
        assert_eq!(get("aor"), Some("sip:bob@example.com"));
        let f = fields(&r, &meta, false);
        assert!(!f.iter().any(|(n, _)| n.starts_with("caller")));
    }

    #[test]
    fn cancel_and_missed_call() {
        let r = req(PushReason::CallEnded {
            method: "INVITE".into(),
            call_id: "c".into(),
            end: CallEnd::AnsweredElsewhere,
        });
        let f = fields(&r, &PushMeta::default(), true);
        assert_eq!(f[0].1, "cancel");
        assert!(f.contains(&("cause", "answered_elsewhere".into())));
        let r = req(PushReason::CallEnded { method: "INVITE".into(), call_id: "c".into(), end: CallEnd::Missed });
        let f = fields(&r, &PushMeta::default(), true);
        assert_eq!(f[0].1, "missed_call");
        assert!(!f.iter().any(|(n, _)| *n == "cause"));
    }
}
