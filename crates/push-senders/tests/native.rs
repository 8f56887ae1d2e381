//! The native senders against local HTTP/2 + TLS servers that speak the
//! real APNs, FCM (with its OAuth token endpoint) and WebPush APIs
//! (`push-mock`): the JWTs they sign are verified there, the headers,
//! paths and payloads checked, and real error bodies answered.

mod common;

use push_mock::{ApnsKey, Mock, MockPort, Service, ServiceAccount, Subscription, TestPki, Vapid};
use push_senders::{
    ApnsAuth, ApnsConfig, Caller, FcmConfig, HttpOptions, PushMeta, SenderConfig, Senders, VoipRefresh, WebPushConfig,
};
use sip_push::{PushError, PushReason, PushRequest};
use std::time::{Duration, Instant};

const VOIP: &str = "aaaa0000aaaa0000aaaa0000aaaa0000";
const REMOTE: &str = "bbbb1111bbbb1111bbbb1111bbbb1111";

fn http(pki: &TestPki) -> HttpOptions {
    HttpOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        ca_file: Some(pki.ca_file.clone()),
        connections: 2,
    }
}

fn call(provider: &str, prid: &str, param: Option<&str>, hold: Duration) -> PushRequest {
    let mut r = common::initial(provider);
    r.prid = prid.into();
    r.param = param.map(str::to_owned);
    r.deadline = Instant::now() + hold;
    r.ttl_secs = hold.as_secs().max(1) as u32;
    r
}

fn refresh(provider: &str, prid: &str, param: Option<&str>) -> PushRequest {
    let mut r = call(provider, prid, param, Duration::from_secs(60));
    r.reason = PushReason::Refresh;
    r
}

/// The APNs mock, trusting `key` (and, with `client_cert`, requiring a client certificate).
async fn apns_mock(pki: &TestPki, key: &ApnsKey, client_cert: bool) -> Mock {
    let service = Service::Apns {
        team_id: key.team_id.clone(),
        key_id: key.key_id.clone(),
        key_public_pem: key.public_pem.clone(),
        require_client_cert: client_cert,
    };
    Mock::start(pki, service).await
}

struct Apns {
    _dir: tempfile::TempDir,
    mock: Mock,
    senders: Senders,
    key: ApnsKey,
}

async fn apns(voip_refresh: VoipRefresh) -> Apns {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let key = ApnsKey::generate(dir.path());
    let mock = apns_mock(&pki, &key, false).await;
    let cfg = ApnsConfig {
        endpoint: mock.base_url(),
        auth: ApnsAuth::Token {
            key_file: key.p8_path.clone(),
            key_id: key.key_id.clone(),
            team_id: key.team_id.clone(),
        },
        voip_refresh,
        include_caller: true,
        http: http(&pki),
    };
    let senders = Senders::new(vec![("apns".into(), SenderConfig::Apns(cfg))]).unwrap();
    Apns { _dir: dir, mock, senders, key }
}

fn param(key: &ApnsKey, services: &str) -> String {
    format!("{}.com.example.phone.{services}", key.team_id)
}

#[tokio::test]
async fn apns_call_is_a_voip_push_with_the_caller_over_h2() {
    let a = apns(VoipRefresh::Voip).await;
    let p = param(&a.key, "voip");
    let caller = Caller { display_name: Some("Alice".into()), uri: "sip:alice@example.com".into() };
    let meta = PushMeta { aor: Some("sip:bob@example.com"), caller: Some(&caller), pn_extra: &[] };
    let req = call("apns", VOIP, Some(&p), Duration::from_secs(30));
    assert_eq!(a.senders.send_with(&req, &meta).await, Ok(()));
    a.senders.send_with(&req, &meta).await.unwrap();
    let seen = a.mock.push_requests();
    assert_eq!(seen.len(), 2);
    let s = &seen[0];
    assert!(s.h2, "APNs needs HTTP/2");
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(s.path, format!("/3/device/{VOIP}"));
    assert_eq!(s.header("apns-push-type"), Some("voip"));
    assert_eq!(s.header("apns-topic"), Some("com.example.phone.voip"));
    assert_eq!(s.header("apns-priority"), Some("10"));
    let exp: u64 = s.header("apns-expiration").unwrap().parse().unwrap();
    let now = push_senders::jwt::unix_now();
    assert!((now + 25..=now + 31).contains(&exp), "expiration {exp} vs now {now}: the hold, not more");
    let body: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(body["type"], "call");
    assert_eq!(body["call_id"], "a84b4c76e66710@pc33");
    assert_eq!(body["caller_name"], "Alice");
    assert_eq!(body["caller_uri"], "sip:alice@example.com");
    assert_eq!(body["aor"], "sip:bob@example.com");
    assert!(body["aps"].is_object());
    let claims = s.jwt_claims.as_ref().unwrap();
    assert_eq!(claims["iss"], a.key.team_id.as_str());
    assert_eq!(s.jwt_header.as_ref().unwrap()["kid"], a.key.key_id.as_str());
    // One provider token for both pushes (Apple throttles renewals).
    assert_eq!(seen[0].header("authorization"), seen[1].header("authorization"));
}

#[tokio::test]
async fn apns_linphone_two_tokens_refresh_is_background_on_the_remote_token() {
    let a = apns(VoipRefresh::Voip).await;
    let prid = format!("{VOIP}:voip&{REMOTE}:remote");
    let p = param(&a.key, "voip&remote");
    a.senders.send(&refresh("apns", &prid, Some(&p))).await.unwrap();
    a.senders.send(&call("apns", &prid, Some(&p), Duration::from_secs(30))).await.unwrap();
    let seen = a.mock.push_requests();
    let (r, c) = (&seen[0], &seen[1]);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.path, format!("/3/device/{REMOTE}"));
    assert_eq!(r.header("apns-push-type"), Some("background"));
    assert_eq!(r.header("apns-priority"), Some("5"));
    assert_eq!(r.header("apns-topic"), Some("com.example.phone"));
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["aps"]["content-available"], 1);
    assert_eq!(body["type"], "refresh");
    assert_eq!(c.path, format!("/3/device/{VOIP}"));
    assert_eq!(c.header("apns-push-type"), Some("voip"));
}

#[tokio::test]
async fn apns_voip_only_refresh_can_be_turned_off() {
    let a = apns(VoipRefresh::None).await;
    let p = param(&a.key, "voip");
    assert_eq!(a.senders.send(&refresh("apns", VOIP, Some(&p))).await, Ok(()));
    assert_eq!(a.mock.count(), 0, "no VoIP push for a refresh when voip_refresh = none");
}

#[tokio::test]
async fn apns_dead_and_bad_tokens_are_rejected() {
    let a = apns(VoipRefresh::Voip).await;
    let p = param(&a.key, "voip");
    a.mock.dead_token(VOIP);
    let r = a.senders.send(&call("apns", VOIP, Some(&p), Duration::from_secs(5))).await;
    assert_eq!(r, Err(PushError::Rejected));
    a.mock.bad_token(REMOTE);
    let r = a.senders.send(&call("apns", REMOTE, Some(&p), Duration::from_secs(5))).await;
    assert_eq!(r, Err(PushError::Rejected));
    // A token that is no token never reaches Apple.
    let n = a.mock.count();
    assert_eq!(a.senders.send(&call("apns", "../x", Some(&p), Duration::from_secs(5))).await, Err(PushError::Rejected));
    assert_eq!(a.mock.count(), n);
}

#[tokio::test]
async fn apns_429_with_retry_after_is_retried_within_the_hold() {
    let a = apns(VoipRefresh::Voip).await;
    let p = param(&a.key, "voip");
    a.mock.fail_next(1, 429, Some(1));
    let t = Instant::now();
    assert_eq!(a.senders.send(&call("apns", VOIP, Some(&p), Duration::from_secs(10))).await, Ok(()));
    assert!(t.elapsed() >= Duration::from_secs(1), "Retry-After not honoured");
    assert_eq!(a.mock.count(), 2);
    // Retry-After beyond the hold: no pointless wait, a failure now.
    a.mock.fail_next(1, 503, Some(30));
    let t = Instant::now();
    assert_eq!(a.senders.send(&call("apns", VOIP, Some(&p), Duration::from_secs(5))).await, Err(PushError::Failed));
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn apns_outage_ends_by_the_deadline() {
    let a = apns(VoipRefresh::Voip).await;
    let p = param(&a.key, "voip");
    a.mock.stall(true);
    let t = Instant::now();
    let r = a.senders.send(&call("apns", VOIP, Some(&p), Duration::from_secs(3))).await;
    assert_eq!(r, Err(PushError::Failed));
    let took = t.elapsed();
    assert!(took >= Duration::from_secs(2) && took < Duration::from_millis(3500), "{took:?}");
    a.mock.stall(false);
    a.mock.stop();
    let t = Instant::now();
    let r = a.senders.send(&call("apns", VOIP, Some(&p), Duration::from_secs(2))).await;
    assert_eq!(r, Err(PushError::Failed));
    assert!(t.elapsed() < Duration::from_millis(2500));
    a.mock.restart().unwrap();
    assert_eq!(a.senders.send(&call("apns", VOIP, Some(&p), Duration::from_secs(5))).await, Ok(()));
}

#[tokio::test]
async fn apns_certificate_auth_with_a_p12() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let id = pki.client_identity(dir.path(), "secret");
    let key = ApnsKey::generate(dir.path());
    let mock = apns_mock(&pki, &key, true).await;
    let cfg = |file, password: &str| ApnsConfig {
        endpoint: mock.base_url(),
        auth: ApnsAuth::Certificate { file, password: password.into() },
        voip_refresh: VoipRefresh::Voip,
        include_caller: true,
        http: http(&pki),
    };
    let s = Senders::new(vec![("apns".into(), SenderConfig::Apns(cfg(id.p12_path.clone(), "secret")))]).unwrap();
    let p = param(&key, "voip");
    assert_eq!(s.send(&call("apns", VOIP, Some(&p), Duration::from_secs(5))).await, Ok(()));
    let seen = mock.push_requests();
    assert!(seen[0].header("authorization").is_none());
    assert!(seen[0].problems.is_empty(), "{:?}", seen[0].problems);
    // The PEM form too; a wrong password is a start-up error naming the file.
    let s = Senders::new(vec![("apns".into(), SenderConfig::Apns(cfg(id.pem_path.clone(), "")))]).unwrap();
    assert_eq!(s.send(&call("apns", VOIP, Some(&p), Duration::from_secs(5))).await, Ok(()));
    let e = Senders::new(vec![("apns".into(), SenderConfig::Apns(cfg(id.p12_path.clone(), "wrong")))]).unwrap_err();
    assert!(e.contains("client.p12") || e.contains(".p12"), "{e}");
}

#[tokio::test]
async fn apns_unreadable_key_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ApnsConfig {
        endpoint: "https://127.0.0.1:1".into(),
        auth: ApnsAuth::Token {
            key_file: dir.path().join("AuthKey_MISSING.p8"),
            key_id: "ABCDEFGHIJ".into(),
            team_id: "KLMNOPQRST".into(),
        },
        voip_refresh: VoipRefresh::Voip,
        include_caller: true,
        http: HttpOptions::default(),
    };
    let e = Senders::new(vec![("apns".into(), SenderConfig::Apns(cfg))]).unwrap_err();
    assert!(e.contains("key_file") && e.contains("AuthKey_MISSING.p8"), "{e}");
}

struct Fcm {
    _dir: tempfile::TempDir,
    mock: Mock,
    senders: Senders,
    project: String,
}

async fn fcm() -> Fcm {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let port = MockPort::reserve();
    let sa = ServiceAccount::generate(dir.path(), &port.token_uri(), "sipwake-test");
    let mock = Mock::start_on(
        port,
        &pki,
        Service::Fcm {
            project_id: sa.project_id.clone(),
            client_email: sa.client_email.clone(),
            sa_public_pem: sa.public_pem.clone(),
        },
    )
    .await;
    let cfg = FcmConfig {
        service_account: sa.json_path.clone(),
        endpoint: mock.base_url(),
        include_caller: true,
        http: http(&pki),
    };
    let senders = Senders::new(vec![("fcm".into(), SenderConfig::Fcm(cfg))]).unwrap();
    Fcm { _dir: dir, mock, senders, project: sa.project_id }
}

#[tokio::test]
async fn fcm_data_message_high_priority_one_access_token() {
    let f = fcm().await;
    let req = call("fcm", "fcm-token-1", Some(&f.project), Duration::from_secs(20));
    for _ in 0..3 {
        assert_eq!(f.senders.send(&req).await, Ok(()));
    }
    assert_eq!(f.mock.token_count(), 1, "the access token is shared and cached");
    let s = &f.mock.push_requests()[0];
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(s.path, format!("/v1/projects/{}/messages:send", f.project));
    let v: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    let m = &v["message"];
    assert_eq!(m["token"], "fcm-token-1");
    assert_eq!(m["android"]["priority"], "high");
    assert_eq!(m["android"]["ttl"], "20s");
    assert_eq!(m["data"]["type"], "call");
    assert_eq!(m["data"]["call_id"], "a84b4c76e66710@pc33");
    let t = &f.mock.token_requests()[0];
    assert!(t.problems.is_empty(), "{:?}", t.problems);
}

#[tokio::test]
async fn fcm_token_is_renewed_before_it_expires() {
    let f = fcm().await;
    f.mock.set_token_lifetime(2);
    let req = call("fcm", "fcm-token-1", Some(&f.project), Duration::from_secs(20));
    f.senders.send(&req).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    f.senders.send(&req).await.unwrap();
    assert_eq!(f.mock.token_count(), 2, "a 2 s token is renewed at half its life");
    assert_eq!(f.mock.problem_count(), 0, "{:?}", f.mock.problems());
}

#[tokio::test]
async fn fcm_unregistered_is_rejected_and_quota_retried() {
    let f = fcm().await;
    f.mock.dead_token("gone");
    let r = f.senders.send(&call("fcm", "gone", Some(&f.project), Duration::from_secs(5))).await;
    assert_eq!(r, Err(PushError::Rejected));
    f.mock.fail_next(2, 503, None);
    let r = f.senders.send(&call("fcm", "ok", Some(&f.project), Duration::from_secs(10))).await;
    assert_eq!(r, Ok(()), "5xx retried with back-off");
    // The project comes from pn-param, else from the service account.
    let r = f.senders.send(&call("fcm", "ok", None, Duration::from_secs(5))).await;
    assert_eq!(r, Ok(()));
}

struct Web {
    _dir: tempfile::TempDir,
    mock: Mock,
    senders: Senders,
    sub: Subscription,
    vapid: Vapid,
}

async fn webpush(allowed: Option<Vec<String>>) -> Web {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let vapid = Vapid::generate(dir.path());
    let sub = Subscription::generate();
    let mock = Mock::start(
        &pki,
        Service::WebPush {
            vapid_public_b64url: Some(vapid.public_b64url.clone()),
            subscriptions: vec![("/push/sub1".into(), sub.clone())],
        },
    )
    .await;
    let cfg = WebPushConfig {
        vapid_key_file: Some(vapid.private_pem_path.clone()),
        vapid_subject: "mailto:ops@example.com".into(),
        allowed_hosts: allowed.unwrap_or_else(|| vec![format!("127.0.0.1:{}", mock.addr.port())]),
        include_caller: true,
        http: http(&pki),
    };
    let senders = Senders::new(vec![("webpush".into(), SenderConfig::WebPush(cfg))]).unwrap();
    Web { _dir: dir, mock, senders, sub, vapid }
}

#[tokio::test]
async fn webpush_vapid_and_no_body_without_keys() {
    let w = webpush(None).await;
    assert_eq!(w.senders.vapid_public_key("webpush"), Some(w.vapid.public_b64url.clone()));
    let url = format!("{}/push/sub1", w.mock.base_url());
    assert_eq!(w.senders.send(&call("webpush", &url, None, Duration::from_secs(25))).await, Ok(()));
    let s = &w.mock.push_requests()[0];
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert!(s.body.is_empty(), "RFC 8599 R45: no payload without subscription keys");
    assert_eq!(s.header("ttl"), Some("25"));
    assert_eq!(s.header("urgency"), Some("high"));
    let c = s.jwt_claims.as_ref().unwrap();
    assert_eq!(c["aud"], w.mock.base_url().as_str());
    assert!(c["sub"].as_str().unwrap().starts_with("mailto:"));
    let exp = c["exp"].as_u64().unwrap();
    assert!(exp <= push_senders::jwt::unix_now() + 86_400);
}

#[tokio::test]
async fn webpush_encrypted_payload_when_the_keys_are_known() {
    let w = webpush(None).await;
    let url = format!("{}/push/sub1", w.mock.base_url());
    let extra = vec![
        ("pn-webpush-p256dh".to_owned(), w.sub.p256dh_b64url.clone()),
        ("pn-webpush-auth".to_owned(), w.sub.auth_b64url.clone()),
    ];
    let meta = PushMeta { aor: Some("sip:web@example.com"), caller: None, pn_extra: &extra };
    assert_eq!(w.senders.send_with(&call("webpush", &url, None, Duration::from_secs(25)), &meta).await, Ok(()));
    let s = &w.mock.push_requests()[0];
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(s.header("content-encoding"), Some("aes128gcm"));
    let plain: serde_json::Value = serde_json::from_slice(s.decrypted.as_ref().expect("decrypted")).unwrap();
    assert_eq!(plain["type"], "call");
    assert_eq!(plain["aor"], "sip:web@example.com");
}

#[tokio::test]
async fn webpush_refuses_hosts_off_the_allow_list_and_drops_dead_subscriptions() {
    let w = webpush(Some(vec!["fcm.googleapis.com".into()])).await;
    let url = format!("{}/push/sub1", w.mock.base_url());
    let r = w.senders.send(&call("webpush", &url, None, Duration::from_secs(5))).await;
    assert_eq!(r, Err(PushError::Failed));
    assert_eq!(w.mock.count(), 0, "an address off the allow-list was dialled");
    let w = webpush(None).await;
    w.mock.dead_token("/push/sub1");
    let url = format!("{}/push/sub1", w.mock.base_url());
    assert_eq!(w.senders.send(&call("webpush", &url, None, Duration::from_secs(5))).await, Err(PushError::Rejected));
}
