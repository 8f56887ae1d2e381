//! End-to-end tests of the management API through the real binary: the
//! route index and JSON 404s, the OpenAPI document against the routes the
//! server serves, the users API (a REGISTER with the new password), every
//! metric family at start-up, and the shipped Grafana dashboard.

mod common;

use common::phone::Phone;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

/// One call with any method and an optional JSON body: (status, body).
fn call(server: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
    let client = reqwest::blocking::Client::new();
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rq = client.request(m, format!("http://{}{path}", server.mgmt));
    if let Some(b) = body {
        rq = rq.json(&b);
    }
    let resp = rq.send().expect("management API answers");
    (resp.status().as_u16(), resp.text().unwrap_or_default())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

#[test]
fn index_lists_the_routes_and_unknown_paths_get_a_json_404() {
    let server = Server::start();
    let (st, body) = call(&server, "GET", "/api/v1", None);
    assert_eq!(st, 200, "{body}");
    let index = json(&body);
    assert_eq!(index["openapi"], "/api/v1/openapi.json");
    let routes = index["routes"].as_array().expect("routes");
    for (m, p) in [("GET", "/api/v1/aors"), ("PUT", "/api/v1/users/{user}"), ("GET", "/health"), ("GET", "/metrics")] {
        let r = routes.iter().find(|r| r["method"] == m && r["path"] == p).unwrap_or_else(|| panic!("{m} {p}: {body}"));
        let summary = r["summary"].as_str().unwrap();
        assert!(!summary.is_empty() && !summary.contains('\n') && summary != "(not described)", "{r}");
    }
    for (m, p) in [("GET", "/api/v2/aors"), ("GET", "/api"), ("GET", "/nothing"), ("PATCH", "/api/v1/aors")] {
        let (st, body) = call(&server, m, p, None);
        assert_eq!(st, 404, "{m} {p}: {body}");
        let e = json(&body);
        let msg = e["error"].as_str().unwrap_or_else(|| panic!("{m} {p}: {body}"));
        assert!(msg.contains(p) && msg.contains("GET /api/v1"), "{msg}");
    }
}

/// A path of the document with its parameters filled in.
fn fill(path: &str) -> String {
    path.replace("{aor}", "nobody@127.0.0.1").replace("{id}", "no-such-binding").replace("{user}", "nobody@127.0.0.1")
}

#[test]
fn the_openapi_document_describes_exactly_the_served_routes() {
    let server = Server::start();
    let (st, body) = call(&server, "GET", "/api/v1/openapi.json", None);
    assert_eq!(st, 200);
    let doc = json(&body);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut described = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            assert!(op["summary"].is_string() && op["responses"].is_object(), "{method} {path}: {op}");
            // Path parameters are declared.
            for name in path.split('{').skip(1).filter_map(|s| s.split_once('}')).map(|(n, _)| n) {
                let params: Vec<&Value> =
                    item["parameters"].as_array().into_iter().chain(op["parameters"].as_array()).flatten().collect();
                assert!(params.iter().any(|p| p["name"] == name && p["in"] == "path"), "{method} {path}: {name}");
            }
            described.insert((method.to_uppercase(), path.clone()));
        }
    }
    // The index is built from the router's own route table: both ways equal.
    let (_, index) = call(&server, "GET", "/api/v1", None);
    let served: BTreeSet<(String, String)> = json(&index)["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["method"].as_str().unwrap().to_string(), r["path"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(served, described, "served routes vs the OpenAPI document");
    // And the server answers every described operation itself (not the
    // unknown-route fallback, which names the route it did not find).
    for (m, p) in &described {
        let path = fill(p);
        let (st, body) = call(&server, m, &path, None);
        assert!(!body.contains("no route"), "{m} {path} is described but not served: {st} {body}");
        assert_ne!(st, 405, "{m} {path}");
    }
    // Every schema reference resolves.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for r in body.split("\"$ref\":\"").skip(1).filter_map(|s| s.split('"').next()) {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{r}"));
        assert!(schemas.contains_key(name), "unresolved {r}");
    }
    // The stats schema names exactly the fields the server sends.
    let (_, stats) = call(&server, "GET", "/api/v1/stats", None);
    let sent: BTreeSet<String> = json(&stats).as_object().unwrap().keys().cloned().collect();
    let documented: BTreeSet<String> =
        schemas["StatsView"]["properties"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(sent, documented);
}

#[test]
fn users_api_round_trip_and_register_with_the_new_password() {
    let server = Server::start();
    let (st, body) =
        call(&server, "PUT", "/api/v1/users/carol@127.0.0.1", Some(serde_json::json!({"password": "pw-carol-77"})));
    assert_eq!(st, 201, "{body}");
    assert_eq!(json(&body)["created"], true);
    // Her REGISTER with that password succeeds at once.
    let mut carol = Phone::udp(server.udp, "carol", "127.0.0.1");
    carol.password = Some("pw-carol-77".into());
    let contact = format!("<sip:carol@{}>", carol.local());
    let r = carol.register(&[&contact], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}\n{}", server.log());
    // The binding's fields are the documented ones.
    let (_, doc) = call(&server, "GET", "/api/v1/openapi.json", None);
    let doc = json(&doc);
    let b = &server.bindings("carol@127.0.0.1")[0];
    let sent: BTreeSet<&String> = b.as_object().unwrap().keys().collect();
    let documented: BTreeSet<&String> =
        doc["components"]["schemas"]["BindingView"]["properties"].as_object().unwrap().keys().collect();
    assert_eq!(sent, documented);
    // A new password replaces the old one (200, not created).
    let (st, body) =
        call(&server, "PUT", "/api/v1/users/carol@127.0.0.1", Some(serde_json::json!({"password": "pw-2"})));
    assert_eq!((st, json(&body)["created"].clone()), (200, Value::Bool(false)), "{body}");
    // The list shows users, never secrets.
    let (st, body) = call(&server, "GET", "/api/v1/users", None);
    assert_eq!(st, 200);
    let users = json(&body);
    assert_eq!(users["users"][0]["user"], "carol@127.0.0.1", "{body}");
    assert!(!body.contains("ha1") && !body.contains("pw-2"), "{body}");
    // A domain the server does not serve, a missing password: 400 with the reason.
    let (st, body) =
        call(&server, "PUT", "/api/v1/users/dan@elsewhere.example", Some(serde_json::json!({"password": "x"})));
    assert_eq!(st, 400, "{body}");
    assert!(json(&body)["error"].as_str().unwrap().contains("registrar.domains"), "{body}");
    let (st, body) = call(&server, "PUT", "/api/v1/users/dan@127.0.0.1", None);
    assert_eq!(st, 400, "{body}");
    assert!(json(&body)["error"].is_string());
    // Only hashes are stored.
    let db = std::fs::read(server.data_dir().join("sipwake.db")).unwrap();
    assert!(!db.windows(4).any(|w| w == b"pw-2"), "a password in the database");
    // Deleted: her next REGISTER is refused at once; a second delete is 404.
    let (st, _) = call(&server, "DELETE", "/api/v1/users/carol@127.0.0.1", None);
    assert_eq!(st, 200);
    let (st, body) = call(&server, "DELETE", "/api/v1/users/carol@127.0.0.1", None);
    assert_eq!(st, 404, "{body}");
    assert_eq!(json(&body)["error"], "no user carol@127.0.0.1");
    let mut carol = Phone::udp(server.udp, "carol", "127.0.0.1");
    carol.password = Some("pw-2".into());
    let r = carol.register(&[&contact], &["Expires: 600"]);
    assert_ne!(status_of(r.as_bytes()), 200, "a deleted user registered: {r}");
}

/// Every family a dashboard or alert may use.
const FAMILIES: &[&str] = &[
    "sipwake_requests_total",
    "sipwake_responses_total",
    "sipwake_parse_errors_total",
    "sipwake_registrations_total",
    "sipwake_auth_failures_total",
    "sipwake_bindings",
    "sipwake_location_loading",
    "sipwake_held_while_loading_total",
    "sipwake_request_duration_seconds",
    "sipwake_proxied_total",
    "sipwake_branches_total",
    "sipwake_transactions",
    "sipwake_proxy_contexts",
    "sipwake_tcp_connections",
    "sipwake_tcp_closed_total",
    "sipwake_pushes_total",
    "sipwake_push_dead_tokens_total",
    "sipwake_push_parked_requests",
    "sipwake_push_wake_latency_seconds",
    "sipwake_push_failures_total",
    "sipwake_push_send_seconds",
    "sipwake_push_token_refreshes_total",
    "sipwake_mid_registers_total",
    "sipwake_mid_upstream_answers_total",
    "sipwake_mid_restores_total",
    "sipwake_mid_unrestored_total",
    "sipwake_mid_upstream_up",
    "sipwake_transport_connections_open",
    "sipwake_transport_connections_total",
    "sipwake_transport_handshake_failures_total",
    "sipwake_transport_bytes_total",
    "sipwake_cluster_members",
    "sipwake_cluster_feed_up",
    "sipwake_cluster_replicated_total",
    "sipwake_cluster_barriers_total",
    "sipwake_cluster_refresh_claims_total",
];

/// The families (`# TYPE` lines) and series names of a scrape.
fn scrape(server: &Server) -> (BTreeSet<String>, BTreeSet<String>) {
    let (st, text) = call(server, "GET", "/metrics", None);
    assert_eq!(st, 200);
    let families = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let series = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    (families, series)
}

#[test]
fn every_metric_family_is_present_right_after_start() {
    let server = Server::start();
    let (families, _) = scrape(&server);
    let missing: Vec<&&str> = FAMILIES.iter().filter(|f| !families.contains(**f)).collect();
    assert!(missing.is_empty(), "families missing at start-up: {missing:?}\nhave: {families:?}");
}

/// Every `sipwake_…` name in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("sipwake_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| exprs(x, out)),
        _ => {}
    }
}

#[test]
fn the_grafana_dashboard_queries_only_metrics_a_fresh_server_exposes() {
    let text = std::fs::read_to_string(repo().join("packaging/grafana/sipwake.json")).unwrap();
    let dash = json(&text);
    let mut all = Vec::new();
    exprs(&dash, &mut all);
    assert!(all.len() >= 20, "the dashboard has {} queries", all.len());
    let server = Server::start();
    let (_, series) = scrape(&server);
    let mut used = BTreeSet::new();
    for e in &all {
        let names = metric_names(e);
        assert!(!names.is_empty(), "a query with no sipwake metric: {e}");
        used.extend(names);
    }
    let missing: Vec<&String> = used.iter().filter(|n| !series.contains(*n)).collect();
    assert!(missing.is_empty(), "the dashboard queries metrics a fresh scrape lacks: {missing:?}");
}
