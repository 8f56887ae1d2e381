//! The management routes of the defence: the sources blocked now (by the
//! rate limit, failed logins or the operator), blocking a source by hand
//! and lifting a block. Behind the management token like every API route.
//!
//! Owns these three handlers (listed in `management::routes`); the node's guard decides and keeps the
//! state (`sip_node::defence`). Must not touch other routes.

use crate::management::MgmtState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// One blocked source.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct BlockedView {
    /// The address (IPv6 sources are blocked by their /64: `2001:db8::/64`).
    pub source: String,
    /// `rate-limit`, `auth-failures` or `manual`.
    pub reason: String,
    pub remaining_secs: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct BlockedList {
    pub blocked: Vec<BlockedView>,
}

/// `POST /api/v1/defence/blocked`: block `source` for `secs` seconds.
#[derive(Deserialize, Debug)]
pub struct BlockRequest {
    source: String,
    secs: u64,
}

fn error(status: StatusCode, msg: String) -> Response {
    (status, Json(serde_json::json!({ "error": msg }))).into_response()
}

/// The address of a source as written (an IPv6 /64 as listed,
/// `2001:db8::/64`, stands for its first address), or a 400.
fn ip(text: &str) -> Result<IpAddr, Box<Response>> {
    let addr = text.strip_suffix("/64").unwrap_or(text);
    addr.parse().map_err(|_| Box::new(error(StatusCode::BAD_REQUEST, format!("{text:?} is not an IP address"))))
}

/// `GET /api/v1/defence/blocked`.
pub async fn list(State(st): State<MgmtState>) -> Json<BlockedList> {
    let blocked = st.driver.with_node(|node, now| node.blocked_sources(now));
    Json(BlockedList {
        blocked: blocked
            .into_iter()
            .map(|b| BlockedView {
                source: b.source,
                reason: b.reason.label().into(),
                remaining_secs: b.remaining.as_secs_f64().ceil() as u64,
            })
            .collect(),
    })
}

/// `POST /api/v1/defence/blocked`.
pub async fn block(State(st): State<MgmtState>, Json(rq): Json<BlockRequest>) -> Response {
    let addr = match ip(&rq.source) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    if !(1..=86_400 * 30).contains(&rq.secs) {
        return error(StatusCode::BAD_REQUEST, format!("secs = {} is out of range; give 1 to 2592000", rq.secs));
    }
    st.driver.with_node(|node, now| node.block_source(addr, Duration::from_secs(rq.secs), now));
    (StatusCode::OK, Json(serde_json::json!({ "blocked": rq.source, "secs": rq.secs }))).into_response()
}

/// `DELETE /api/v1/defence/blocked/{source}`.
pub async fn unblock(State(st): State<MgmtState>, Path(source): Path<String>) -> Response {
    let addr = match ip(&source) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    if st.driver.with_node(|node, now| node.unblock_source(addr, now)) {
        (StatusCode::OK, Json(serde_json::json!({ "unblocked": source }))).into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("{source} is not blocked"))
    }
}
