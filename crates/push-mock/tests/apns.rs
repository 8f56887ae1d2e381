//! The APNs mock driven by a real HTTP/2 client (reqwest over rustls).

mod common;

use common::{builder, client, es256, now};
use push_mock::{ApnsKey, Mock, Service, TestPki};
use serde_json::{Value, json};
use std::time::Duration;

const TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

struct Fixture {
    _dir: tempfile::TempDir,
    pki: TestPki,
    key: ApnsKey,
    mock: Mock,
}

async fn fixture(require_client_cert: bool) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path());
    let key = ApnsKey::generate(dir.path());
    let service = Service::Apns {
        team_id: key.team_id.clone(),
        key_id: key.key_id.clone(),
        key_public_pem: key.public_pem.clone(),
        require_client_cert,
    };
    let mock = Mock::start(&pki, service).await;
    Fixture { _dir: dir, pki, key, mock }
}

fn jwt(key: &ApnsKey, iat: i64) -> String {
    es256(&key.p8_path, Some(&key.key_id), &json!({ "iss": key.team_id, "iat": iat }))
}

fn push(c: &reqwest::Client, f: &Fixture, token: &str, jwt: Option<&str>) -> reqwest::RequestBuilder {
    let mut rb = c
        .post(format!("{}/3/device/{token}", f.mock.base_url()))
        .header("apns-topic", "org.example.app.voip")
        .header("apns-push-type", "voip")
        .header("apns-priority", "10")
        .header("apns-expiration", "0")
        .json(&json!({ "aps": {}, "call-id": "abc" }));
    if let Some(jwt) = jwt {
        rb = rb.header("authorization", format!("bearer {jwt}"));
    }
    rb
}

async fn reason(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.expect("json body"))
}

#[tokio::test]
async fn valid_token_push_gets_200_and_apns_id_over_h2() {
    let f = fixture(false).await;
    let c = client(&f.pki);
    let r = push(&c, &f, TOKEN, Some(&jwt(&f.key, now()))).send().await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let id = r.headers().get("apns-id").expect("apns-id").to_str().expect("text").to_owned();
    assert_eq!(id.len(), 36);
    assert!(r.bytes().await.expect("body").is_empty());
    let seen = f.mock.requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].h2);
    assert!(seen[0].problems.is_empty(), "{:?}", seen[0].problems);
    assert_eq!(seen[0].jwt_claims.as_ref().expect("claims")["iss"], f.key.team_id.as_str());
    assert_eq!(seen[0].jwt_header.as_ref().expect("header")["kid"], f.key.key_id.as_str());
    assert_eq!(seen[0].header("apns-push-type"), Some("voip"));
    assert_eq!(f.mock.count(), 1);
}

#[tokio::test]
async fn bad_signature_missing_and_expired_tokens_get_403() {
    let f = fixture(false).await;
    let c = client(&f.pki);
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = ApnsKey::generate(other_dir.path());
    let forged = es256(&other.p8_path, Some(&f.key.key_id), &json!({ "iss": f.key.team_id, "iat": now() }));
    let (status, body) = reason(push(&c, &f, TOKEN, Some(&forged)).send().await.expect("send")).await;
    assert_eq!((status, body["reason"].as_str()), (403, Some("InvalidProviderToken")));

    let (status, body) = reason(push(&c, &f, TOKEN, None).send().await.expect("send")).await;
    assert_eq!((status, body["reason"].as_str()), (403, Some("MissingProviderToken")));

    let old = jwt(&f.key, now() - 3700);
    let (status, body) = reason(push(&c, &f, TOKEN, Some(&old)).send().await.expect("send")).await;
    assert_eq!((status, body["reason"].as_str()), (403, Some("ExpiredProviderToken")));

    let seen = f.mock.requests();
    assert!(seen[0].problems.iter().any(|p| p.contains("signature")), "{:?}", seen[0].problems);
    assert!(seen.iter().all(|s| !s.problems.is_empty()));
}

#[tokio::test]
async fn dead_and_bad_tokens() {
    let f = fixture(false).await;
    let c = client(&f.pki);
    let token = jwt(&f.key, now());
    f.mock.dead_token(TOKEN);
    let (status, body) = reason(push(&c, &f, TOKEN, Some(&token)).send().await.expect("send")).await;
    assert_eq!((status, body["reason"].as_str()), (410, Some("Unregistered")));
    assert!(body["timestamp"].as_i64().expect("timestamp") > 1_600_000_000_000);

    let bad = "ffff";
    f.mock.bad_token(bad);
    let (status, body) = reason(push(&c, &f, bad, Some(&token)).send().await.expect("send")).await;
    assert_eq!((status, body["reason"].as_str()), (400, Some("BadDeviceToken")));
}

#[tokio::test]
async fn header_rules() {
    let f = fixture(false).await;
    let c = client(&f.pki);
    let token = jwt(&f.key, now());
    let url = format!("{}/3/device/{TOKEN}", f.mock.base_url());
    let auth = format!("bearer {token}");
    let r = c
        .post(&url)
        .header("authorization", &auth)
        .header("apns-topic", "org.example.app")
        .header("apns-push-type", "voip")
        .json(&json!({ "aps": {} }))
        .send()
        .await
        .expect("send");
    assert_eq!(reason(r).await, (400, json!({ "reason": "DeviceTokenNotForTopic" })));
    let r = c
        .post(&url)
        .header("authorization", &auth)
        .header("apns-topic", "org.example.app")
        .header("apns-push-type", "background")
        .header("apns-priority", "10")
        .json(&json!({ "aps": { "content-available": 1 } }))
        .send()
        .await
        .expect("send");
    assert_eq!(reason(r).await, (400, json!({ "reason": "BadPriority" })));
    let r = c
        .post(&url)
        .header("authorization", &auth)
        .header("apns-topic", "org.example.app")
        .header("apns-push-type", "background")
        .header("apns-priority", "5")
        .json(&json!({ "aps": { "content-available": 1 } }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = c.post(&url).header("authorization", &auth).header("apns-push-type", "alert").send().await.expect("send");
    assert_eq!(reason(r).await, (400, json!({ "reason": "MissingTopic" })));
}

#[tokio::test]
async fn a_second_new_provider_token_within_20_minutes_gets_429() {
    let f = fixture(false).await;
    let c = client(&f.pki);
    let first = jwt(&f.key, now() - 10);
    assert_eq!(push(&c, &f, TOKEN, Some(&first)).send().await.expect("send").status(), 200);
    let second = jwt(&f.key, now());
    let (status, body) = reason(push(&c, &f, TOKEN, Some(&second)).send().await.expect("send")).await;
    assert_eq!((status, body["reason"].as_str()), (429, Some("TooManyProviderTokenUpdates")));
    // The first one stays usable; with the rule relaxed the new one is adopted.
    assert_eq!(push(&c, &f, TOKEN, Some(&first)).send().await.expect("send").status(), 200);
    f.mock.set_token_refresh_min(Duration::ZERO);
    assert_eq!(push(&c, &f, TOKEN, Some(&second)).send().await.expect("send").status(), 200);
}

#[tokio::test]
async fn fail_next_answers_with_retry_after_then_recovers() {
    let f = fixture(false).await;
    let c = client(&f.pki);
    let token = jwt(&f.key, now());
    f.mock.fail_next(2, 429, Some(7));
    for _ in 0..2 {
        let r = push(&c, &f, TOKEN, Some(&token)).send().await.expect("send");
        assert_eq!(r.headers().get("retry-after").expect("retry-after"), "7");
        assert_eq!(reason(r).await, (429, json!({ "reason": "TooManyRequests" })));
    }
    f.mock.fail_next(1, 503, None);
    let r = push(&c, &f, TOKEN, Some(&token)).send().await.expect("send");
    assert!(r.headers().get("retry-after").is_none());
    assert_eq!(reason(r).await, (503, json!({ "reason": "ServiceUnavailable" })));
    assert_eq!(push(&c, &f, TOKEN, Some(&token)).send().await.expect("send").status(), 200);
}

#[tokio::test]
async fn stall_holds_the_answer_until_released() {
    let f = fixture(false).await;
    let c = client(&f.pki);
    let token = jwt(&f.key, now());
    f.mock.stall(true);
    let pending = tokio::spawn(push(&c, &f, TOKEN, Some(&token)).send());
    assert!(f.mock.wait_for(1, Duration::from_secs(5)).await, "the request arrives");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "no answer while stalled");
    f.mock.stall(false);
    let r = pending.await.expect("join").expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn stop_refuses_connections_and_restart_serves_again() {
    let f = fixture(false).await;
    let c = client(&f.pki);
    let token = jwt(&f.key, now());
    f.mock.stop();
    let err = push(&c, &f, TOKEN, Some(&token)).send().await.expect_err("refused");
    assert!(err.is_connect(), "{err:?}");
    f.mock.restart().expect("restart");
    let c = client(&f.pki);
    assert_eq!(push(&c, &f, TOKEN, Some(&token)).send().await.expect("send").status(), 200);
}

#[tokio::test]
async fn http1_is_recorded_as_a_problem() {
    let f = fixture(false).await;
    let c = builder(&f.pki).http1_only().build().expect("client");
    let r = push(&c, &f, TOKEN, Some(&jwt(&f.key, now()))).send().await.expect("send");
    assert_eq!(r.status(), 505);
    let seen = f.mock.requests();
    assert!(!seen[0].h2);
    assert!(seen[0].problems[0].contains("HTTP/2"), "{:?}", seen[0].problems);
}

#[tokio::test]
async fn certificate_auth_needs_a_client_certificate_not_a_token() {
    let f = fixture(true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let id = f.pki.client_identity(dir.path(), "secret");
    let pem = std::fs::read(&id.pem_path).expect("pem");
    let c = builder(&f.pki).identity(reqwest::Identity::from_pem(&pem).expect("identity")).build().expect("client");
    let r = push(&c, &f, TOKEN, None).send().await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);

    let anonymous = client(&f.pki);
    assert!(push(&anonymous, &f, TOKEN, None).send().await.is_err(), "no client certificate: handshake fails");
    assert!(f.mock.tls_failures() >= 1);
    assert_eq!(f.mock.count(), 1);
}
