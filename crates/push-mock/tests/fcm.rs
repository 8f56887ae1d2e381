//! The FCM mock (OAuth2 token endpoint + HTTP v1 send) driven by reqwest.

mod common;

use common::{client, now, rs256};
use push_mock::{FCM_SCOPE, Mock, MockPort, Service, ServiceAccount, TestPki};
use serde_json::{Value, json};
use std::time::Duration;

struct Fixture {
    _dir: tempfile::TempDir,
    pki: TestPki,
    sa: ServiceAccount,
    mock: Mock,
    c: reqwest::Client,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path());
    let port = MockPort::reserve();
    let sa = ServiceAccount::generate(dir.path(), &port.token_uri(), "proj-1");
    let service = Service::Fcm {
        project_id: sa.project_id.clone(),
        client_email: sa.client_email.clone(),
        sa_public_pem: sa.public_pem.clone(),
    };
    let mock = Mock::start_on(port, &pki, service).await;
    let c = client(&pki);
    Fixture { _dir: dir, pki, sa, mock, c }
}

fn assertion(f: &Fixture, claims_patch: Value) -> String {
    let mut claims = json!({
        "iss": f.sa.client_email,
        "scope": FCM_SCOPE,
        "aud": f.mock.token_uri(),
        "iat": now(),
        "exp": now() + 3600,
    });
    if let (Some(c), Some(p)) = (claims.as_object_mut(), claims_patch.as_object()) {
        c.extend(p.clone());
    }
    rs256(&f.sa.json_path, &claims)
}

async fn token_request(f: &Fixture, assertion: &str) -> (u16, Value) {
    let r =
        f.c.post(f.mock.token_uri())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"))
            .send()
            .await
            .expect("send");
    (r.status().as_u16(), r.json().await.expect("json"))
}

async fn access_token(f: &Fixture) -> String {
    let (status, body) = token_request(f, &assertion(f, json!({}))).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("access_token").to_owned()
}

fn message(token: &str) -> Value {
    json!({ "message": { "token": token, "data": { "call-id": "x" }, "android": { "priority": "high", "ttl": "30s" } } })
}

async fn send(f: &Fixture, bearer: &str, project: &str, body: &Value) -> (u16, Value) {
    let r =
        f.c.post(format!("{}/v1/projects/{project}/messages:send", f.mock.base_url()))
            .bearer_auth(bearer)
            .json(body)
            .send()
            .await
            .expect("send");
    (r.status().as_u16(), r.json().await.expect("json"))
}

#[tokio::test]
async fn token_flow_then_send() {
    let f = fixture().await;
    let sa: Value = serde_json::from_slice(&std::fs::read(&f.sa.json_path).expect("read")).expect("json");
    assert_eq!(sa["token_uri"], f.mock.token_uri().as_str());
    let (status, body) = token_request(&f, &assertion(&f, json!({}))).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    let bearer = body["access_token"].as_str().expect("token");
    let (status, body) = send(&f, bearer, "proj-1", &message("dev-token")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["name"].as_str().expect("name").starts_with("projects/proj-1/messages/"));
    assert_eq!(f.mock.count(), 1);
    assert_eq!(f.mock.token_count(), 1);
    let tokens = f.mock.token_requests();
    assert_eq!(tokens[0].jwt_claims.as_ref().expect("claims")["iss"], f.sa.client_email.as_str());
    let pushes = f.mock.push_requests();
    assert!(pushes[0].h2);
    assert!(pushes[0].problems.is_empty(), "{:?}", pushes[0].problems);
}

#[tokio::test]
async fn wrong_bearer_gets_401_and_wrong_project_403() {
    let f = fixture().await;
    let (status, body) = send(&f, "ya29.not-issued", "proj-1", &message("t")).await;
    assert_eq!((status, body["error"]["status"].as_str()), (401, Some("UNAUTHENTICATED")));
    let bearer = access_token(&f).await;
    let (status, body) = send(&f, &bearer, "other", &message("t")).await;
    assert_eq!((status, body["error"]["status"].as_str()), (403, Some("PERMISSION_DENIED")));
}

#[tokio::test]
async fn bad_assertions_get_invalid_grant() {
    let f = fixture().await;
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = ServiceAccount::generate(other_dir.path(), &f.mock.token_uri(), "proj-1");
    let forged = rs256(
        &other.json_path,
        &json!({ "iss": f.sa.client_email, "scope": FCM_SCOPE, "aud": f.mock.token_uri(), "iat": now(), "exp": now() + 3600 }),
    );
    let (status, body) = token_request(&f, &forged).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let (status, body) = token_request(&f, &assertion(&f, json!({ "aud": "https://example.com/token" }))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let (status, body) = token_request(&f, &assertion(&f, json!({ "exp": now() + 7200 }))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    let (status, body) =
        token_request(&f, &assertion(&f, json!({ "scope": "https://www.googleapis.com/auth/cloud-platform" }))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")));
    assert_eq!(f.mock.token_count(), 4);
    assert!(f.mock.token_requests().iter().all(|s| !s.problems.is_empty()));
}

#[tokio::test]
async fn dead_and_bad_tokens_and_malformed_messages() {
    let f = fixture().await;
    let bearer = access_token(&f).await;
    f.mock.dead_token("gone");
    let (status, body) = send(&f, &bearer, "proj-1", &message("gone")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    assert_eq!(body["error"]["details"][0]["@type"], "type.googleapis.com/google.firebase.fcm.v1.FcmError");
    assert_eq!(body["error"]["details"][0]["errorCode"], "UNREGISTERED");
    f.mock.bad_token("junk");
    let (status, body) = send(&f, &bearer, "proj-1", &message("junk")).await;
    assert_eq!((status, body["error"]["details"][0]["errorCode"].as_str()), (400, Some("INVALID_ARGUMENT")));

    let numeric = json!({ "message": { "token": "t", "data": { "n": 1 }, "android": { "priority": "high" } } });
    let (status, body) = send(&f, &bearer, "proj-1", &numeric).await;
    assert_eq!((status, body["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")));
    let bad_ttl = json!({ "message": { "token": "t", "android": { "priority": "high", "ttl": "30" } } });
    assert_eq!(send(&f, &bearer, "proj-1", &bad_ttl).await.0, 400);
    let normal = json!({ "message": { "token": "t", "android": { "priority": "normal", "ttl": "0.5s" } } });
    assert_eq!(send(&f, &bearer, "proj-1", &normal).await.0, 200);
    let problems = f.mock.problems();
    assert!(problems.iter().any(|p| p.contains("must be strings")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("ttl")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("priority is normal")), "{problems:?}");
}

#[tokio::test]
async fn access_tokens_expire_after_the_configured_lifetime() {
    let f = fixture().await;
    f.mock.set_token_lifetime(1);
    let (_, body) = token_request(&f, &assertion(&f, json!({}))).await;
    assert_eq!(body["expires_in"], 1);
    let bearer = body["access_token"].as_str().expect("token").to_owned();
    assert_eq!(send(&f, &bearer, "proj-1", &message("t")).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = send(&f, &bearer, "proj-1", &message("t")).await;
    assert_eq!((status, body["error"]["status"].as_str()), (401, Some("UNAUTHENTICATED")));
    let renewed = access_token(&f).await;
    assert_eq!(send(&f, &renewed, "proj-1", &message("t")).await.0, 200);
}

#[tokio::test]
async fn fail_next_uses_fcm_error_bodies() {
    let f = fixture().await;
    let bearer = access_token(&f).await;
    f.mock.fail_next(1, 429, Some(30));
    let r =
        f.c.post(format!("{}/v1/projects/proj-1/messages:send", f.mock.base_url()))
            .bearer_auth(&bearer)
            .json(&message("t"))
            .send()
            .await
            .expect("send");
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers().get("retry-after").expect("retry-after"), "30");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["details"][0]["errorCode"], "QUOTA_EXCEEDED");
    f.mock.fail_next(1, 503, None);
    let (status, body) = send(&f, &bearer, "proj-1", &message("t")).await;
    assert_eq!((status, body["error"]["status"].as_str()), (503, Some("UNAVAILABLE")));
    // The token endpoint is not a push: scripted failures leave it alone.
    f.mock.fail_next(1, 500, None);
    let _ = access_token(&f).await;
    let (status, body) = send(&f, &bearer, "proj-1", &message("t")).await;
    assert_eq!((status, body["error"]["status"].as_str()), (500, Some("INTERNAL")));
    let _ = &f.pki;
}
