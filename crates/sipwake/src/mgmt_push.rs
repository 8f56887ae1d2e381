//! The management API's push views: the push audit (recent pushes, the
//! story of a call by Call-ID or of a binding), the requests parked now
//! and the flagged devices. Read-only: each handler copies what it shows
//! out of the node under its lock (a scan of the audit ring at most) and
//! serialises outside it.
//!
//! Owns only these routes' JSON shapes; the audit itself lives in
//! `sip_node::audit`, the routes are listed in `management::routes`.

use crate::management::MgmtState;
use crate::server::now_ms;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The answer of the push routes when push is off.
fn push_off() -> Response {
    (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "push is off (push.enable = false): no push audit"})))
        .into_response()
}

#[derive(Deserialize)]
pub struct RecentQuery {
    pub limit: Option<usize>,
}

/// `GET /api/v1/push/recent?limit=N`: the newest pushes (50 by default,
/// at most 1,000), newest first, each with its outcome and latency.
pub async fn recent(State(st): State<MgmtState>, Query(q): Query<RecentQuery>) -> Response {
    let limit = q.limit.unwrap_or(50).min(1000);
    let now = now_ms();
    match st.driver.read(|n| n.push_audit().map(|a| a.recent_pushes(limit, now))) {
        Some(pushes) => Json(serde_json::json!({ "pushes": pushes })).into_response(),
        None => push_off(),
    }
}

/// `GET /api/v1/push/calls/{call_id}`: every event of a call, oldest first.
pub async fn call(State(st): State<MgmtState>, Path(call_id): Path<String>) -> Response {
    let now = now_ms();
    let events = st.driver.read(|n| n.push_audit().map(|a| a.call(&call_id, now)));
    story(events, "call_id", "Call-ID", call_id)
}

/// `GET /api/v1/push/bindings/{id}`: every event of a binding, oldest first.
pub async fn binding(State(st): State<MgmtState>, Path(id): Path<String>) -> Response {
    let now = now_ms();
    let events = st.driver.read(|n| n.push_audit().map(|a| a.binding(&id, now)));
    story(events, "binding", "binding", id)
}

/// A story's answer: `{<field>: key, events}`, 404 when none is kept
/// (`what`: how the error names the key), or push is off.
fn story(events: Option<Vec<sip_node::audit::AuditEvent>>, field: &str, what: &str, key: String) -> Response {
    match events {
        None => push_off(),
        Some(events) if events.is_empty() => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "error": format!("no push audit for {what} {key} (none, or older than push.audit_window_secs)")
            })),
        )
            .into_response(),
        Some(events) => {
            let mut body = serde_json::json!({ "events": events });
            body[field] = serde_json::Value::String(key);
            Json(body).into_response()
        }
    }
}

/// `GET /api/v1/push/parked`: the requests held now, oldest first.
pub async fn parked(State(st): State<MgmtState>) -> Response {
    let list = st.driver.read(|n| {
        let p = n.push()?;
        let views = p.engine.parked_views(std::time::Instant::now());
        // The caller, from the parked request's context.
        Some(
            views
                .into_iter()
                .map(|v| {
                    let caller = n.caller_of_call(&v.call_id);
                    let mut j = serde_json::to_value(&v).unwrap_or_default();
                    j["caller"] = caller.map_or(serde_json::Value::Null, serde_json::Value::String);
                    j
                })
                .collect::<Vec<_>>(),
        )
    });
    match list {
        Some(parked) => Json(serde_json::json!({ "parked": parked })).into_response(),
        None => push_off(),
    }
}

/// Flagged push devices, newest first.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct FlaggedList {
    pub flagged: Vec<FlaggedView>,
}

/// One flagged push device.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct FlaggedView {
    pub aor: String,
    pub binding: String,
    pub provider: String,
    /// `expired` (its registration expired although refresh pushes were
    /// sent), `refresh-unanswered` (refresh pushes repeated while it is
    /// registered) or `call-unanswered` (a delivered call push got no REGISTER).
    #[serde(default)]
    pub reason: String,
    pub refresh_pushes: u32,
    /// How many times it was flagged for this reason.
    #[serde(default)]
    pub times: u32,
    /// When it was last flagged (unix ms).
    pub at_ms: u64,
}

/// `GET /api/v1/push/flagged`: push devices that let pushes go unanswered
/// (the last 1,000, newest first).
pub async fn flagged(State(st): State<MgmtState>) -> Json<FlaggedList> {
    let list = st.driver.read(|node| node.flagged_devices());
    Json(FlaggedList {
        flagged: list
            .into_iter()
            .rev()
            .map(|f| FlaggedView {
                aor: f.aor,
                binding: f.binding,
                provider: f.provider,
                reason: f.reason.as_str().into(),
                refresh_pushes: f.refresh_pushes,
                times: f.times,
                at_ms: f.at_ms,
            })
            .collect(),
    })
}
