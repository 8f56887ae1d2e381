//! The management HTTP API (axum), on its own listener: list and show AoRs
//! with every attribute of their bindings (flow, Path, instance, expiry,
//! push parameters — what OpenSIPS users get from `ul_dump`), delete a
//! binding or an AoR, subscribers (`crate::mgmt_users`), the push audit,
//! parked requests and flagged devices (`crate::mgmt_push`), the admin
//! page (`crate::admin`, `GET /admin`), server
//! statistics, Prometheus `/metrics`, `/health`, the route index
//! (`GET /api/v1`) and the OpenAPI document (`crate::openapi`). Unknown
//! routes get a JSON 404.
//!
//! Bound to 127.0.0.1 by default; when a token is configured every route
//! but `/health` and `/admin` (a page with no data in it) needs `Authorization: Bearer <token>` (the config refuses a
//! non-loopback address without a token). Read-only views take the
//! registrar lock briefly and copy out; nothing here blocks the SIP path
//! for long.

use crate::driver::Driver;
use crate::server::now_ms;
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use axum::{Json, Router};
use location_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use sip_registrar::{Aor, Binding};
use sip_transport::Transports;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

#[derive(Clone)]
pub struct MgmtState {
    pub driver: Arc<Driver>,
    pub store: Arc<dyn Store>,
    pub transports: Transports,
    pub metrics: PrometheusHandle,
    pub token: Option<String>,
    pub started: Instant,
    /// Live reload (`POST /api/v1/reload`).
    pub reloader: Arc<crate::reload::Reloader>,
}

/// One binding as the API shows it.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct BindingView {
    pub id: String,
    pub aor: String,
    pub contact: String,
    pub q: Option<String>,
    pub expires_in_secs: u64,
    pub expires_at_ms: u64,
    pub call_id: String,
    pub cseq: u32,
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    pub path: Vec<String>,
    pub flow: FlowView,
    pub user_agent: Option<String>,
    pub registered_at_ms: u64,
    pub push_capable: bool,
    pub push: Option<PushView>,
    /// The push engine's view (next refresh, last push, failures, parked requests), when push is on.
    pub push_state: Option<serde_json::Value>,
    /// Mid-registrar: the upstream registration this binding maps to.
    #[serde(default)]
    pub upstream: Option<UpstreamView>,
    /// Its newest push in the push audit (reason, outcome, latency), when kept.
    #[serde(default)]
    pub last_push: Option<serde_json::Value>,
}

/// One registration sipwake holds at the upstream registrar (mid-registrar mode).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct UpstreamView {
    /// The `ctid` of the upstream Contact (binding id, or AoR key in `aor` mode).
    pub key: String,
    pub aor: String,
    /// The Contact registered upstream (points at sipwake).
    pub upstream_contact: String,
    /// Seconds until the upstream registration expires (0: not registered there).
    pub expires_in: u64,
    pub expires_at_ms: u64,
    /// The upstream's last final answer about it (0: none yet), and when.
    pub last_code: u16,
    pub last_at_ms: u64,
    /// The local bindings behind it.
    pub bindings: Vec<String>,
}

/// The upstream registrar and what sipwake holds there (`GET /api/v1/upstream`).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct UpstreamList {
    pub upstream: UpstreamInfo,
    pub registrations: Vec<UpstreamView>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct UpstreamInfo {
    pub address: String,
    pub transport: String,
    pub throttle: String,
    /// Whether it answers (keep-alive).
    pub up: bool,
    /// Device REGISTERs waiting for its answer.
    pub in_flight: usize,
}

fn upstream_view(r: &sip_node::mid::UpstreamReg, bindings: Vec<String>, now: u64) -> UpstreamView {
    UpstreamView {
        key: r.key.clone(),
        aor: r.aor.to_string(),
        upstream_contact: r.contact.clone(),
        expires_in: r.expires_at.saturating_sub(now) / 1000,
        expires_at_ms: r.expires_at,
        last_code: r.last_code,
        last_at_ms: r.last_at,
        bindings,
    }
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct FlowView {
    pub transport: String,
    pub remote: String,
    pub local: String,
    /// The connection id while the connection the device registered on is open.
    pub connection: Option<u64>,
    /// Whether a request can reuse the flow now (UDP: always; TCP: while connected).
    pub alive: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct PushView {
    pub provider: String,
    pub prid: Option<String>,
    pub param: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct AorView {
    pub aor: String,
    pub bindings: Vec<BindingView>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct AorList {
    pub total: usize,
    pub offset: usize,
    pub aors: Vec<AorView>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Removed {
    pub removed: usize,
}

#[derive(Deserialize)]
pub struct ListQuery {
    pub offset: Option<usize>,
    pub limit: Option<usize>,
    /// Only AoRs starting with this text.
    pub prefix: Option<String>,
}

fn view(b: &Binding, now: u64, transports: &Transports, node: &sip_node::Node) -> BindingView {
    let push = node.push();
    let upstream = node.mid().and_then(|m| {
        let key = m.key_for(&b.aor, &b.id);
        m.registration(&key).map(|r| upstream_view(r, vec![b.id.clone()], now))
    });
    let push_state = push.and_then(|p| {
        p.engine.binding_view(&b.id, std::time::Instant::now()).and_then(|v| serde_json::to_value(v).ok())
    });
    let last_push = push.and_then(|p| p.audit.last_push(&b.id)).and_then(|e| serde_json::to_value(e).ok());
    let alive = match b.flow.conn {
        Some(c) => transports.conn_alive(c),
        None => !b.flow.transport.is_reliable(),
    };
    BindingView {
        id: b.id.clone(),
        aor: b.aor.to_string(),
        contact: b.uri.to_string(),
        q: b.q.map(sip_registrar::reply::format_q),
        expires_in_secs: b.remaining_secs(now),
        expires_at_ms: b.expires_at,
        call_id: String::from_utf8_lossy(&b.call_id).into_owned(),
        cseq: b.cseq,
        instance: b.instance.as_deref().map(str::to_owned),
        reg_id: b.reg_id,
        path: b.path.clone(),
        flow: FlowView {
            transport: b.flow.transport.as_str().into(),
            remote: b.flow.remote.to_string(),
            local: b.flow.local.to_string(),
            connection: b.flow.conn,
            alive,
        },
        user_agent: b.user_agent.as_deref().map(str::to_owned),
        registered_at_ms: b.registered_at,
        push_capable: b.is_push_capable(),
        push: b.push().map(|p| PushView { provider: p.provider, prid: p.prid, param: p.param }),
        push_state,
        upstream,
        last_push,
    }
}

// ----- routes -----
// One table serves the router, the index (`GET /api/v1`) and the check
// against the OpenAPI document (`crate::openapi`): a route added here and
// not described there fails `every_route_is_described`.

/// Every route behind the token, as (METHOD, path, handler).
fn routes() -> Vec<(&'static str, &'static str, MethodRouter<MgmtState>)> {
    use axum::routing::{delete, post, put};
    vec![
        ("GET", "/metrics", get(metrics_route)),
        ("GET", "/api/v1", get(index)),
        ("GET", "/api/v1/openapi.json", get(openapi)),
        ("GET", "/api/v1/stats", get(stats)),
        ("GET", "/api/v1/upstream", get(upstream)),
        ("GET", "/api/v1/aors", get(list_aors)),
        ("GET", "/api/v1/aors/{aor}", get(show_aor)),
        ("DELETE", "/api/v1/aors/{aor}", delete(delete_aor)),
        ("DELETE", "/api/v1/aors/{aor}/bindings/{id}", delete(delete_binding)),
        ("POST", "/api/v1/aors/{aor}/bindings/{id}/push", post(test_push)),
        ("GET", "/api/v1/users", get(crate::mgmt_users::list)),
        ("PUT", "/api/v1/users/{user}", put(crate::mgmt_users::put)),
        ("DELETE", "/api/v1/users/{user}", delete(crate::mgmt_users::delete)),
        ("POST", "/api/v1/reload", post(reload)),
        ("GET", "/api/v1/push/flagged", get(crate::mgmt_push::flagged)),
        ("GET", "/api/v1/push/recent", get(crate::mgmt_push::recent)),
        ("GET", "/api/v1/push/calls/{call_id}", get(crate::mgmt_push::call)),
        ("GET", "/api/v1/push/bindings/{id}", get(crate::mgmt_push::binding)),
        ("GET", "/api/v1/push/parked", get(crate::mgmt_push::parked)),
        ("GET", "/api/v1/defence/blocked", get(crate::mgmt_defence::list)),
        ("POST", "/api/v1/defence/blocked", post(crate::mgmt_defence::block)),
        ("DELETE", "/api/v1/defence/blocked/{source}", delete(crate::mgmt_defence::unblock)),
    ]
}

/// Every route served, as (METHOD, path): `/health` and `/admin` (no
/// token: the admin page holds no data, it asks for the token) and [`routes`].
pub fn served_routes() -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<_> = routes().into_iter().map(|(m, p, _)| (m, p)).collect();
    all.push(("GET", "/health"));
    all.push(("GET", "/admin"));
    all.sort();
    all
}

pub fn router(state: MgmtState) -> Router {
    let mut api = Router::new();
    for (_, path, handler) in routes() {
        // Several methods of one path merge into one route.
        api = api.route(path, handler);
    }
    let api = api
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new().route("/health", get(health)).route("/admin", get(crate::admin::page)).merge(api).with_state(state)
}

/// Unknown paths and methods: a JSON 404 pointing at the index.
async fn no_route(method: Method, uri: Uri) -> Response {
    let msg = format!("no route {method} {}; GET /api/v1 lists the routes", uri.path());
    (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": msg }))).into_response()
}

/// `GET /api/v1`: every route and its one-line summary (from the OpenAPI document).
async fn index() -> Response {
    let doc = crate::openapi::document();
    let mut served = served_routes();
    served.sort_by_key(|(m, p)| (*p, *m));
    let routes: Vec<serde_json::Value> = served
        .into_iter()
        .map(|(m, p)| {
            let summary = crate::openapi::summary(&doc, m, p).unwrap_or("(not described)");
            serde_json::json!({ "method": m, "path": p, "summary": summary })
        })
        .collect();
    Json(serde_json::json!({ "openapi": "/api/v1/openapi.json", "routes": routes })).into_response()
}

async fn openapi() -> Response {
    Json(crate::openapi::document()).into_response()
}

/// `200 ok` while the store (and, in a cluster, its change feed) works;
/// `503` with what is wrong otherwise, so a load balancer stops sending
/// REGISTERs to a node that would answer them 500.
async fn health(State(st): State<MgmtState>) -> Response {
    let store = st.store.clone();
    let h = tokio::task::spawn_blocking(move || store.health()).await;
    let mut problems = Vec::new();
    match h {
        Ok(h) if h.ok => {}
        Ok(h) => problems.push(format!("store: {}", h.detail)),
        Err(_) => problems.push("store: health check failed".to_string()),
    }
    if !*st.driver.loaded.borrow() {
        problems.push("loading the location from the store".to_string());
    }
    if st.store.cluster().is_some() && !crate::cluster::FEED_UP.load(std::sync::atomic::Ordering::Relaxed) {
        problems.push("cluster: the change feed is down".to_string());
    }
    if problems.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {}\n", problems.join("; "))).into_response()
    }
}

/// Location views and changes wait for the start-up load (at most 20 s,
/// then 503): a half-loaded location is never shown or changed as if whole.
async fn loaded(st: &MgmtState) -> Result<(), Box<Response>> {
    if st.driver.wait_loaded(std::time::Duration::from_secs(20)).await {
        return Ok(());
    }
    Err(Box::new(
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": "the location is still being loaded from the store; try again shortly"})),
        )
            .into_response(),
    ))
}

async fn require_token(State(st): State<MgmtState>, req: Request, next: Next) -> Response {
    if let Some(token) = &st.token {
        let ok = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| constant_eq(t.as_bytes(), token.as_bytes()));
        if !ok {
            return (StatusCode::UNAUTHORIZED, Json(serde_json::json!({"error": "missing or wrong bearer token"})))
                .into_response();
        }
    }
    next.run(req).await
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics_route(State(st): State<MgmtState>) -> impl IntoResponse {
    let (txns, ctxs, parked, cluster) = st.driver.read(|n| {
        let cluster = n.cluster_stats().map(|s| (s, n.members().len()));
        (n.transactions(), n.proxy_contexts(), n.push().map(|p| p.engine.parked_count()), cluster)
    });
    if let Some((s, members)) = cluster {
        crate::metrics::cluster(&s, members, crate::cluster::FEED_UP.load(std::sync::atomic::Ordering::Relaxed));
    }
    crate::metrics::state(txns, ctxs, st.transports.conn_count());
    crate::metrics::tcp_faults(st.transports.queue_overflows(), st.transports.message_timeouts());
    crate::metrics::transports(&st.transports.transport_stats());
    if let Some(p) = parked {
        crate::metrics::parked(p);
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.metrics.render())
}

fn not_found(what: String) -> Response {
    (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": what }))).into_response()
}

fn parse_aor(s: &str) -> Result<Aor, Box<Response>> {
    Aor::parse(s).ok_or_else(|| {
        Box::new(
            (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": format!("{s:?} is not an AoR (user@domain)")})))
                .into_response(),
        )
    })
}

async fn list_aors(State(st): State<MgmtState>, Query(q): Query<ListQuery>) -> Response {
    if let Err(r) = loaded(&st).await {
        return *r;
    }
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(100).min(10_000);
    let now = now_ms();
    st.driver.read(|node| {
        let mut names: Vec<&Aor> = node
            .location()
            .aors()
            .map(|(a, _)| a)
            .filter(|a| q.prefix.as_deref().is_none_or(|p| a.as_str().starts_with(p)))
            .collect();
        names.sort();
        let total = names.len();
        let aors = names
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|a| AorView {
                aor: a.to_string(),
                bindings: node.location().get(a).iter().map(|b| view(b, now, &st.transports, node)).collect(),
            })
            .collect();
        Json(AorList { total, offset, aors }).into_response()
    })
}

async fn show_aor(State(st): State<MgmtState>, Path(aor): Path<String>) -> Response {
    if let Err(r) = loaded(&st).await {
        return *r;
    }
    let aor = match parse_aor(&aor) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let now = now_ms();
    let bindings: Vec<BindingView> =
        st.driver.read(|node| node.location().get(&aor).iter().map(|b| view(b, now, &st.transports, node)).collect());
    if bindings.is_empty() {
        return not_found(format!("no AoR {aor}"));
    }
    Json(AorView { aor: aor.to_string(), bindings }).into_response()
}

async fn upstream(State(st): State<MgmtState>) -> Response {
    if let Err(r) = loaded(&st).await {
        return *r;
    }
    let now = now_ms();
    let list = st.driver.read(|node| {
        let mid = node.mid()?;
        let mut registrations: Vec<UpstreamView> =
            node.upstream_registrations().into_iter().map(|(r, b)| upstream_view(r, b, now)).collect();
        registrations.sort_by(|a, b| (&a.aor, &a.key).cmp(&(&b.aor, &b.key)));
        Some(UpstreamList {
            upstream: UpstreamInfo {
                address: mid.cfg.upstream.remote.to_string(),
                transport: mid.cfg.upstream.transport.as_str().into(),
                throttle: mid.cfg.throttle.as_str().into(),
                up: mid.upstream_up(),
                in_flight: mid.in_flight(),
            },
            registrations,
        })
    });
    match list {
        Some(l) => Json(l).into_response(),
        None => not_found("not in mid-registrar mode (server.mode = \"registrar\")".into()),
    }
}

async fn delete_aor(State(st): State<MgmtState>, Path(aor): Path<String>) -> Response {
    if let Err(r) = loaded(&st).await {
        return *r;
    }
    let aor = match parse_aor(&aor) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let n = st.driver.remove(&aor, None).await;
    if n == 0 {
        return not_found(format!("no AoR {aor}"));
    }
    Json(Removed { removed: n }).into_response()
}

async fn delete_binding(State(st): State<MgmtState>, Path((aor, id)): Path<(String, String)>) -> Response {
    if let Err(r) = loaded(&st).await {
        return *r;
    }
    let aor = match parse_aor(&aor) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let n = st.driver.remove(&aor, Some(&id)).await;
    if n == 0 {
        return not_found(format!("no binding {id} in AoR {aor}"));
    }
    Json(Removed { removed: n }).into_response()
}

/// The outcome of a test push.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct PushResult {
    /// "ok", "rejected" (the push service says the token is dead) or "failed".
    pub result: String,
}

async fn test_push(State(st): State<MgmtState>, Path((aor, id)): Path<(String, String)>) -> Response {
    if let Err(r) = loaded(&st).await {
        return *r;
    }
    let aor = match parse_aor(&aor) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    match st.driver.test_push(&aor, &id).await {
        Err("no such binding") => not_found(format!("no binding {id} in AoR {aor}")),
        Err(e) => (StatusCode::CONFLICT, Json(serde_json::json!({ "error": e }))).into_response(),
        Ok(r) => {
            let (code, result) = match r {
                Ok(()) => (StatusCode::OK, "ok"),
                Err(sip_push::PushError::Rejected) => (StatusCode::BAD_GATEWAY, "rejected"),
                Err(_) => (StatusCode::BAD_GATEWAY, "failed"),
            };
            (code, Json(PushResult { result: result.into() })).into_response()
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct StatsView {
    pub version: String,
    pub uptime_secs: u64,
    /// The stored location is still being loaded (start-up): the counts
    /// below are what is loaded so far.
    #[serde(default)]
    pub loading: bool,
    pub aors: usize,
    pub bindings: usize,
    /// Push bindings the push engine follows (with `[push] enable = false`:
    /// bindings whose Contact carries push coordinates).
    pub push_bindings: usize,
    pub transactions: usize,
    pub proxy_contexts: usize,
    pub branches_started: u64,
    pub tcp_connections: usize,
    pub requests: u64,
    pub parse_errors: u64,
    pub responses_2xx: u64,
    pub responses_4xx: u64,
    pub responses_5xx: u64,
    pub store_commits: u64,
    pub store_batches: u64,
    pub store_failed_commits: u64,
    /// Requests held now while their devices are woken.
    #[serde(default)]
    pub parked_requests: usize,
    /// Pushes sent since start (refresh and call wake-ups), and how many failed or were rejected.
    #[serde(default)]
    pub pushes_sent: u64,
    #[serde(default)]
    pub pushes_failed: u64,
    /// Devices flagged for unanswered pushes (kept now).
    #[serde(default)]
    pub flagged_devices: usize,
}

async fn stats(State(st): State<MgmtState>) -> Json<StatsView> {
    let (aors, bindings, push_bindings, transactions, proxy_contexts, s, pushes) = st.driver.read(|n| {
        let l = n.location();
        // The engine's count: O(1) under the node's lock (a scan would parse
        // every stored Contact, a million at scale).
        let push = match n.push() {
            Some(p) => p.engine.binding_count(),
            None => l.aors().flat_map(|(_, bs)| bs.iter()).filter(|b| b.is_push_capable()).count(),
        };
        let s = n.stats();
        let c = |x: &std::sync::atomic::AtomicU64| x.load(Ordering::Relaxed);
        let counters = [
            c(&s.branches),
            c(&s.requests),
            c(&s.parse_errors),
            c(&s.responses_2xx),
            c(&s.responses_4xx),
            c(&s.responses_5xx),
        ];
        // Pushes: (parked now, sent, failed or rejected, flagged devices).
        let pushes = n.push().map_or((0, 0, 0, 0), |p| {
            let st = p.engine.stats();
            let all = [&st.refresh, &st.initial, &st.mid_dialog];
            (
                p.engine.parked_count(),
                all.iter().map(|c| c.sent).sum(),
                all.iter().map(|c| c.failed + c.rejected).sum(),
                p.audit.flagged().count(),
            )
        });
        (l.aor_count(), l.len(), push, n.transactions(), n.proxy_contexts(), counters, pushes)
    });
    let store = st.store.stats();
    Json(StatsView {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_secs: st.started.elapsed().as_secs(),
        loading: !*st.driver.loaded.borrow(),
        aors,
        bindings,
        push_bindings,
        transactions,
        proxy_contexts,
        branches_started: s[0],
        tcp_connections: st.transports.conn_count(),
        requests: s[1],
        parse_errors: s[2],
        responses_2xx: s[3],
        responses_4xx: s[4],
        responses_5xx: s[5],
        store_commits: store.commits,
        store_batches: store.batches_done,
        store_failed_commits: store.failed_commits,
        parked_requests: pushes.0,
        pushes_sent: pushes.1,
        pushes_failed: pushes.2,
        flagged_devices: pushes.3,
    })
}

/// `POST /api/v1/reload`: what SIGHUP does, answered with what was applied
/// and what needs a restart; 400 (nothing changed) when the file fails a check.
async fn reload(State(st): State<MgmtState>) -> Response {
    let r = st.reloader.clone();
    match tokio::task::spawn_blocking(move || r.reload_logged("management API")).await {
        Ok(Ok(report)) => Json(report).into_response(),
        Ok(Err(e)) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": format!("the configuration was not reloaded, nothing changed: {e}") })),
        )
            .into_response(),
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_described() {
        let doc = crate::openapi::document();
        let described = crate::openapi::operations(&doc);
        let served: Vec<(String, String)> =
            super::served_routes().into_iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        assert_eq!(served, described, "the router and the OpenAPI document differ");
        for (m, p) in &served {
            assert!(crate::openapi::summary(&doc, m, p).is_some_and(|s| !s.is_empty()), "{m} {p} has no summary");
        }
    }
}
