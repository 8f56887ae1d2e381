//! Webhook sender against a real local HTTP server (axum on 127.0.0.1:0).

mod common;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use push_senders::{SenderConfig, Senders, signature};
use sip_push::PushError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Mock {
    status: u16,
    delay: Duration,
    seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

async fn handler(State(m): State<Mock>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    m.seen.lock().unwrap().push((headers, body));
    tokio::time::sleep(m.delay).await;
    (StatusCode::from_u16(m.status).unwrap(), "x".repeat(10_000))
}

/// Starts a server answering `status` after `delay`; returns its URL and
/// the recorded requests.
async fn server(status: u16, delay: Duration) -> (String, Arc<Mutex<Vec<(HeaderMap, Bytes)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new().route("/push", post(handler)).with_state(Mock { status, delay, seen: seen.clone() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/push"), seen)
}

fn webhook(url: &str, timeout: Duration, secret: Option<&str>) -> Senders {
    Senders::new(vec![(
        "apns".into(),
        SenderConfig::Webhook {
            url: url.into(),
            timeout,
            headers: vec![("Authorization".into(), "Bearer s3cret".into())],
            hmac_secret: secret.map(Into::into),
        },
    )])
    .unwrap()
}

#[tokio::test]
async fn ok_200_posts_exact_json() {
    let (url, seen) = server(200, Duration::ZERO).await;
    let s = webhook(&url, Duration::from_secs(5), None);
    let req = common::initial("apns");
    assert_eq!(s.send(&req).await, Ok(()));

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "exactly one attempt, no retries");
    let (h, body) = &seen[0];
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["authorization"], "Bearer s3cret");
    assert_eq!(h["x-sipwake-push-id"], "7");
    assert!(h.get("x-sipwake-signature").is_none());
    let mut v: serde_json::Value = serde_json::from_slice(body).unwrap();
    let deadline = v.as_object_mut().unwrap().remove("deadline_unix_ms").unwrap().as_u64().unwrap();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(deadline > now_ms + 25_000 && deadline <= now_ms + 30_000, "{deadline} vs {now_ms}");
    assert_eq!(
        v,
        serde_json::json!({
            "event": "push",
            "id": 7,
            "provider": "apns",
            "prid": "00fc13adff78512",
            "param": "DEF123GHIJ.com.example.app.voip",
            "reason": "ini-INVITE",
            "reason_kind": "initial",
            "method": "INVITE",
            "call_id": "a84b4c76e66710@pc33",
            "binding": "b-42",
            "aor": null,
            "attempt": 1,
            "ttl_secs": 30,
        })
    );
}

#[tokio::test]
async fn refresh_json_has_nulls() {
    let (url, seen) = server(204, Duration::ZERO).await;
    let s = Senders::new(vec![(
        "*".into(),
        SenderConfig::Webhook { url, timeout: Duration::from_secs(5), headers: vec![], hmac_secret: None },
    )])
    .unwrap();
    assert_eq!(s.send(&common::refresh("webpush")).await, Ok(()));
    let seen = seen.lock().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&seen[0].1).unwrap();
    assert_eq!(v["reason"], "reg-refresh");
    assert_eq!(v["reason_kind"], "refresh");
    assert_eq!(v["provider"], "webpush");
    assert!(v["param"].is_null() && v["method"].is_null() && v["call_id"].is_null());
    assert_eq!(v["attempt"], 3);
    assert_eq!(v["ttl_secs"], 120);
}

#[tokio::test]
async fn gone_410_and_404_are_rejected() {
    for status in [410, 404] {
        let (url, _) = server(status, Duration::ZERO).await;
        let s = webhook(&url, Duration::from_secs(5), None);
        assert_eq!(s.send(&common::initial("apns")).await, Err(PushError::Rejected), "{status}");
    }
}

#[tokio::test]
async fn other_statuses_fail() {
    for status in [500, 503, 429, 400, 401, 302] {
        let (url, seen) = server(status, Duration::ZERO).await;
        let s = webhook(&url, Duration::from_secs(5), None);
        assert_eq!(s.send(&common::initial("apns")).await, Err(PushError::Failed), "{status}");
        assert_eq!(seen.lock().unwrap().len(), 1, "no retry after {status}");
    }
}

#[tokio::test]
async fn slow_server_times_out() {
    let (url, _) = server(200, Duration::from_secs(10)).await;
    let s = webhook(&url, Duration::from_millis(300), None);
    let t0 = Instant::now();
    assert_eq!(s.send(&common::initial("apns")).await, Err(PushError::Failed));
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(290) && took < Duration::from_millis(1000), "{took:?}");
}

#[tokio::test]
async fn connection_refused_fails() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let s = webhook(&format!("http://{addr}/push"), Duration::from_secs(5), None);
    let t0 = Instant::now();
    assert_eq!(s.send(&common::initial("apns")).await, Err(PushError::Failed));
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn hmac_signature_header() {
    let (url, seen) = server(200, Duration::ZERO).await;
    let s = webhook(&url, Duration::from_secs(5), Some("k3y"));
    assert_eq!(s.send(&common::initial("apns")).await, Ok(()));
    let seen = seen.lock().unwrap();
    let (h, body) = &seen[0];
    let sig = h["x-sipwake-signature"].to_str().unwrap();
    assert_eq!(sig, signature(b"k3y", body));
    assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
    assert_ne!(sig, signature(b"other", body));
}

#[test]
fn hmac_known_vector() {
    // RFC 4231 test case 2.
    assert_eq!(
        signature(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[tokio::test]
async fn provider_routing_and_default() {
    let (url_a, seen_a) = server(200, Duration::ZERO).await;
    let (url_d, seen_d) = server(200, Duration::ZERO).await;
    let cfg = |url: String| SenderConfig::Webhook {
        url,
        timeout: Duration::from_secs(5),
        headers: vec![],
        hmac_secret: None,
    };
    let s = Senders::new(vec![("APNs".into(), cfg(url_a)), ("*".into(), cfg(url_d))]).unwrap();
    let s2 = s.clone();
    assert_eq!(s2.send(&common::initial("apns")).await, Ok(()));
    assert_eq!(s2.send(&common::initial("fcm")).await, Ok(()));
    assert_eq!(seen_a.lock().unwrap().len(), 1);
    assert_eq!(seen_d.lock().unwrap().len(), 1);

    let only = webhook("http://127.0.0.1:9/push", Duration::from_secs(1), None);
    assert!(!only.serves("fcm"));
    assert_eq!(only.send(&common::initial("fcm")).await, Err(PushError::Failed));
}

#[tokio::test]
async fn past_deadline_is_not_sent() {
    let (url, seen) = server(200, Duration::ZERO).await;
    let s = webhook(&url, Duration::from_secs(5), None);
    let mut req = common::initial("apns");
    req.deadline = Instant::now();
    assert_eq!(s.send(&req).await, Err(PushError::Failed));
    assert!(seen.lock().unwrap().is_empty());
}

#[test]
fn config_errors_name_the_provider() {
    let wh = |url: &str| SenderConfig::Webhook {
        url: url.into(),
        timeout: Duration::from_secs(1),
        headers: vec![],
        hmac_secret: None,
    };
    let e = Senders::new(vec![("apns".into(), wh("ftp://x/"))]).unwrap_err();
    assert!(e.contains("apns") && e.contains("http"), "{e}");
    let e = Senders::new(vec![("fcm".into(), wh("not a url"))]).unwrap_err();
    assert!(e.contains("fcm"), "{e}");
    let e = Senders::new(vec![("a".into(), wh("http://x/")), ("A".into(), wh("http://y/"))]).unwrap_err();
    assert!(e.contains("more than one"), "{e}");
    let e = Senders::new(vec![(
        "apns".into(),
        SenderConfig::Webhook { url: "http://x/".into(), timeout: Duration::ZERO, headers: vec![], hmac_secret: None },
    )])
    .unwrap_err();
    assert!(e.contains("apns") && e.contains("timeout"), "{e}");
    let e = Senders::new(vec![(
        "apns".into(),
        SenderConfig::Webhook {
            url: "http://x/".into(),
            timeout: Duration::from_secs(1),
            headers: vec![("Bad Name".into(), "v".into())],
            hmac_secret: None,
        },
    )])
    .unwrap_err();
    assert!(e.contains("apns") && e.contains("header"), "{e}");
    let e = Senders::new(vec![(
        "x".into(),
        SenderConfig::Exec { program: "/nonexistent/hook".into(), args: vec![], timeout: Duration::from_secs(1) },
    )])
    .unwrap_err();
    assert!(e.contains("\"x\"") && e.contains("/nonexistent/hook"), "{e}");
}
