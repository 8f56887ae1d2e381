//! The wire form of one push, shared by both senders: the JSON document a
//! webhook receives as its body and an exec program reads on stdin
//! ([`Payload`]), and the `SIPWAKE_*` environment of an exec program
//! ([`env_vars`]). Pure data; no I/O.

use crate::content::deadline_unix_ms;
use serde::Serialize;
use sip_push::{PushReason, PushRequest};

/// The JSON body (webhook) / stdin document (exec) of one push.
///
/// Every field is always present (absent values are `null`), so receivers
/// see one stable schema:
///
/// ```json
/// {"event":"push","id":7,"provider":"apns","prid":"00fc13adff78512",
///  "param":"DEF123GHIJ.com.example.app.voip","reason":"ini-INVITE",
///  "reason_kind":"initial","method":"INVITE","call_id":"a84b4c76e66710",
///  "binding":"b-42","attempt":1,"ttl_secs":30,"deadline_unix_ms":1767225600000}
/// ```
///
/// * `reason` is the OpenSIPS-style reason ([`PushReason::opensips_reason`]:
///   `reg-refresh`, `ini-<METHOD>`, `mid-<METHOD>`, and for call-end pushes
///   `call-cancelled`, `call-answered-elsewhere`, `missed-call`);
///   `reason_kind` keeps the structured one (`refresh`, `initial`,
///   `mid_dialog`, `test`, `call_ended`).
/// * `method`/`call_id` are `null` for refresh pushes.
/// * `id` is the engine's [`sip_push::PushId`]; receivers may use it to
///   de-duplicate (the engine may send several pushes per binding).
/// * `deadline_unix_ms` is [`PushRequest::deadline`] mapped onto wall-clock
///   time (ms since the Unix epoch) when the payload is built.
/// * `aor` is the binding's address-of-record when the server passed it
///   ([`crate::Senders::send_for`]), else `null`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Payload<'a> {
    pub event: &'static str,
    pub id: u64,
    pub provider: &'a str,
    pub prid: &'a str,
    pub param: Option<&'a str>,
    pub reason: String,
    pub reason_kind: &'static str,
    pub method: Option<&'a str>,
    pub call_id: Option<&'a str>,
    pub binding: &'a str,
    /// The binding's address-of-record, when the caller knows it.
    pub aor: Option<&'a str>,
    pub attempt: u32,
    pub ttl_secs: u32,
    pub deadline_unix_ms: u64,
}

impl<'a> Payload<'a> {
    pub fn new(req: &'a PushRequest) -> Payload<'a> {
        let (reason_kind, method, call_id) = match &req.reason {
            PushReason::Refresh => ("refresh", None, None),
            PushReason::Test => ("test", None, None),
            PushReason::Initial { method, call_id } => ("initial", Some(method.as_str()), Some(call_id.as_str())),
            PushReason::MidDialog { method, call_id } => ("mid_dialog", Some(method.as_str()), Some(call_id.as_str())),
            PushReason::CallEnded { method, call_id, .. } => {
                ("call_ended", Some(method.as_str()), Some(call_id.as_str()))
            }
        };
        Payload {
            event: "push",
            id: req.id.0,
            provider: &req.provider,
            prid: &req.prid,
            param: req.param.as_deref(),
            reason: req.reason.opensips_reason(),
            reason_kind,
            method,
            call_id,
            binding: req.binding.as_str(),
            aor: None,
            attempt: req.attempt,
            ttl_secs: req.ttl_secs,
            deadline_unix_ms: deadline_unix_ms(req.deadline),
        }
    }

    /// The JSON bytes. Cannot fail for this type (only strings and numbers).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

/// The environment of an exec program: `SIPWAKE_PROVIDER`, `SIPWAKE_PRID`,
/// `SIPWAKE_PARAM`, `SIPWAKE_REASON` (OpenSIPS-style), `SIPWAKE_REASON_KIND`,
/// `SIPWAKE_CALL_ID`, `SIPWAKE_METHOD`, `SIPWAKE_BINDING`, `SIPWAKE_ATTEMPT`,
/// `SIPWAKE_TTL` (seconds), `SIPWAKE_PUSH_ID`, `SIPWAKE_DEADLINE_UNIX_MS`.
/// Absent values are empty strings (so `set -u` scripts work).
pub fn env_vars(p: &Payload<'_>) -> Vec<(&'static str, String)> {
    vec![
        ("SIPWAKE_PROVIDER", p.provider.to_owned()),
        ("SIPWAKE_PRID", p.prid.to_owned()),
        ("SIPWAKE_PARAM", p.param.unwrap_or("").to_owned()),
        ("SIPWAKE_REASON", p.reason.clone()),
        ("SIPWAKE_REASON_KIND", p.reason_kind.to_owned()),
        ("SIPWAKE_CALL_ID", p.call_id.unwrap_or("").to_owned()),
        ("SIPWAKE_METHOD", p.method.unwrap_or("").to_owned()),
        ("SIPWAKE_BINDING", p.binding.to_owned()),
        ("SIPWAKE_AOR", p.aor.unwrap_or_default().to_owned()),
        ("SIPWAKE_ATTEMPT", p.attempt.to_string()),
        ("SIPWAKE_TTL", p.ttl_secs.to_string()),
        ("SIPWAKE_PUSH_ID", p.id.to_string()),
        ("SIPWAKE_DEADLINE_UNIX_MS", p.deadline_unix_ms.to_string()),
    ]
}

/// At most `max` bytes of `bytes`, lossily decoded, control characters
/// replaced, for log lines.
pub(crate) fn excerpt(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    let mut s: String = String::from_utf8_lossy(cut).chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if bytes.len() > max {
        s.push('…');
    }
    s
}
