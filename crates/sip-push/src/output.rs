//! What the engine asks the core to do ([`Output`]), and what push senders
//! report back ([`PushError`]). Data only.
//!
//! The events of a parked request map 1:1 onto a `sip_proxy::ProxyContext`:
//!
//! | Output | ProxyContext |
//! |---|---|
//! | (park returned `n`) | `new_held(method, plain_targets, n, ..)` or `hold(n)` |
//! | [`Output::Fork`] | `add_targets([binding])` then `release(1)` |
//! | [`Output::BranchEnded`] | `release(1)` |
//! | [`Output::RequestDone`] | nothing: forget the mapping |
//!
//! Every target handed to `park` gets exactly one `Fork` or one
//! `BranchEnded`, unless the request is cancelled first; then nothing.

use crate::types::{BindingKey, PushId, RequestId};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Why a push is sent. Serialized as `"reason": "refresh" | "initial" |
/// "mid_dialog"`, plus `method` and `call_id` for wake-ups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum PushReason {
    /// Keep-alive: the binding nears expiry (R8/R9).
    Refresh,
    /// A parked initial/standalone request (R32).
    Initial { method: String, call_id: String },
    /// A parked mid-dialog request found by PURR (R54).
    MidDialog { method: String, call_id: String },
    /// An operator's test push (`sipwake ctl push`), outside the engine's schedule.
    Test,
    /// A call this device was woken for ended before it reached the device:
    /// the app should stop ringing (cancel) or show a missed call. Sent by
    /// the core, outside the engine's schedule, when configured.
    CallEnded { method: String, call_id: String, end: CallEnd },
}

/// How a call ended for a device that was pushed but never got it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallEnd {
    /// The caller cancelled it (CANCEL) while the device was waking.
    Cancelled,
    /// Another device of the AoR answered it.
    AnsweredElsewhere,
    /// Nobody answered: the hold ended or every branch failed.
    Missed,
}

impl CallEnd {
    /// `cancelled`, `answered_elsewhere`, `missed`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallEnd::Cancelled => "cancelled",
            CallEnd::AnsweredElsewhere => "answered_elsewhere",
            CallEnd::Missed => "missed",
        }
    }
}

impl PushReason {
    /// The OpenSIPS `E_UL_CONTACT_REFRESH` reason: `reg-refresh`,
    /// `ini-<METHOD>`, `mid-<METHOD>`.
    pub fn opensips_reason(&self) -> String {
        match self {
            PushReason::Refresh => "reg-refresh".into(),
            PushReason::Test => "test".into(),
            PushReason::Initial { method, .. } => format!("ini-{method}"),
            PushReason::MidDialog { method, .. } => format!("mid-{method}"),
            PushReason::CallEnded { end: CallEnd::Missed, .. } => "missed-call".into(),
            PushReason::CallEnded { end, .. } => format!("call-{}", end.as_str().replace('_', "-")),
        }
    }
}

/// One push request, exactly what a webhook sender POSTs as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PushRequest {
    pub id: PushId,
    pub binding: BindingKey,
    pub provider: String,
    /// Percent-decoded (R62). For webpush: the push resource URL; the
    /// sender must apply its SSRF allow-list (§6.9).
    pub prid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    #[serde(flatten)]
    pub reason: PushReason,
    /// 1 for wake-ups; 1, 2, 3… for the refresh pushes of one expiry cycle.
    pub attempt: u32,
    /// Seconds until [`PushRequest::deadline`], at least 1: APNs
    /// expiration / WebPush `TTL` / FCM `ttl`.
    pub ttl_secs: u32,
    /// After this the push is useless (the hold of this branch ends, per
    /// the binding's provider, or the binding expires): the sender may
    /// drop it if still queued.
    #[serde(skip)]
    pub deadline: Instant,
}

/// Why a parked branch ended without a fork.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BranchEnd {
    /// The push failed (R39).
    PushFailed,
    /// The PNS rejected the token (R39; the binding is invalid).
    PushRejected,
    /// The waking REGISTER got this final non-2xx (not 401/407) (R36).
    RegisterFailed(u16),
    /// The Bucket Timer fired (R41).
    Timeout,
    /// The binding was removed or expired meanwhile (R11).
    BindingGone,
    /// The engine does not know this binding as a push binding.
    UnknownBinding,
}

/// How a push failed, as the sender classifies the PNS answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// The PNS says the token/subscription is dead: APNs 410 `Unregistered`
    /// or 400 `BadDeviceToken`, FCM 404 `UNREGISTERED`, WebPush 404/410.
    /// The engine stops pushing to the binding until it re-registers and
    /// emits [`Output::BindingInvalid`].
    Rejected,
    /// Anything else: network error, timeout, 5xx, 429, auth failure (W1, V3).
    Failed,
}

/// What the core must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this push (hand it to the sender of `provider`), then report
    /// the result with `handle_push_result(id, ..)`.
    Push(PushRequest),
    /// Deliver the parked request to the binding now (R35/R55): as a new
    /// branch of its proxy context, over the binding's current flow and
    /// Path (P5, O6), with pn-* stripped from the Request-URI (§2.8) and a
    /// Record-Route when PURR is on (R53). Then release one hold slot.
    /// `wake_latency`: push sent → REGISTER ok (`None`: no push was needed).
    Fork { request: RequestId, binding: BindingKey, wake_latency: Option<Duration> },
    /// This (request, binding) branch will never be delivered: release one
    /// hold slot. When the last slot goes and nothing answered, the proxy
    /// context answers 480 (R37/R40/R41/R57).
    BranchEnded { request: RequestId, binding: BindingKey, reason: BranchEnd },
    /// The engine holds nothing more for this request. `woken`: how many
    /// Forks it got. A core not using a proxy context answers 480 when
    /// `woken == 0` (never 408, S4).
    RequestDone { request: RequestId, woken: u32 },
    /// The PNS rejected the binding's token: the core may remove the
    /// binding (§4.3 step 4) and then call `handle_removed`.
    BindingInvalid { binding: BindingKey },
}

/// The status a parked request gets when no device could be reached
/// (R41; transaction-only for mid-dialog requests, R57).
pub const UNREACHABLE_STATUS: u16 = 480;

impl Output {
    /// The status to answer when this is a `RequestDone` with no fork.
    pub fn fallback_status(&self) -> Option<u16> {
        match self {
            Output::RequestDone { woken: 0, .. } => Some(UNREACHABLE_STATUS),
            _ => None,
        }
    }
}
