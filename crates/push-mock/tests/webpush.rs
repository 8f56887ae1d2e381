//! The WebPush mock (RFC 8030 / 8292 / 8291) driven by reqwest, with
//! bodies encrypted by web-push-native (an independent RFC 8291 encoder).

mod common;

use common::{client, es256, now};
use push_mock::{Mock, Service, Subscription, TestPki, Vapid};
use serde_json::json;
use web_push_native::{Auth, p256};

struct Fixture {
    _dir: tempfile::TempDir,
    vapid: Vapid,
    sub: Subscription,
    mock: Mock,
    c: reqwest::Client,
}

async fn fixture(with_vapid: bool) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path());
    let vapid = Vapid::generate(dir.path());
    let sub = Subscription::generate();
    let service = Service::WebPush {
        vapid_public_b64url: with_vapid.then(|| vapid.public_b64url.clone()),
        subscriptions: vec![("/push/sub1".to_owned(), sub.clone())],
    };
    let mock = Mock::start(&pki, service).await;
    let c = client(&pki);
    Fixture { _dir: dir, vapid, sub, mock, c }
}

fn vapid_header(f: &Fixture, aud: &str) -> String {
    let jwt = es256(
        &f.vapid.private_pem_path,
        None,
        &json!({ "aud": aud, "exp": now() + 3600, "sub": "mailto:ops@example.org" }),
    );
    format!("vapid t={jwt}, k={}", f.vapid.public_b64url)
}

fn encrypt(sub: &Subscription, plain: &[u8]) -> Vec<u8> {
    let public = p256::PublicKey::from_sec1_bytes(sub.p256dh()).expect("p256dh");
    let auth = Auth::clone_from_slice(sub.auth());
    web_push_native::encrypt(plain.to_vec(), &public, &auth).expect("encrypt")
}

#[tokio::test]
async fn valid_vapid_and_encrypted_body_gets_201_and_is_decrypted() {
    let f = fixture(true).await;
    let body = encrypt(&f.sub, b"{\"call\":\"wake up\"}");
    let r =
        f.c.post(format!("{}/push/sub1", f.mock.base_url()))
            .header("ttl", "30")
            .header("urgency", "high")
            .header("content-encoding", "aes128gcm")
            .header("authorization", vapid_header(&f, &f.mock.base_url()))
            .body(body)
            .send()
            .await
            .expect("send");
    assert_eq!(r.status(), 201);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let location = r.headers().get("location").expect("location").to_str().expect("text");
    assert!(location.starts_with(&format!("{}/message/", f.mock.base_url())));
    let seen = f.mock.requests();
    assert!(seen[0].problems.is_empty(), "{:?}", seen[0].problems);
    assert_eq!(seen[0].decrypted.as_deref(), Some(&b"{\"call\":\"wake up\"}"[..]));
    assert_eq!(seen[0].jwt_claims.as_ref().expect("claims")["sub"], "mailto:ops@example.org");
}

#[tokio::test]
async fn empty_body_is_accepted() {
    let f = fixture(true).await;
    let r =
        f.c.post(format!("{}/push/other", f.mock.base_url()))
            .header("ttl", "0")
            .header("authorization", vapid_header(&f, &f.mock.base_url()))
            .send()
            .await
            .expect("send");
    assert_eq!(r.status(), 201);
    assert!(f.mock.requests()[0].body.is_empty());
}

#[tokio::test]
async fn bad_aud_missing_auth_wrong_key_and_missing_ttl_are_rejected() {
    let f = fixture(true).await;
    let url = format!("{}/push/sub1", f.mock.base_url());
    let r =
        f.c.post(&url).header("ttl", "30").header("authorization", vapid_header(&f, "https://push.example.net")).send();
    assert_eq!(r.await.expect("send").status(), 403);
    let r = f.c.post(&url).header("ttl", "30").send();
    assert_eq!(r.await.expect("send").status(), 401);
    let other = Vapid::generate(f._dir.path().join("other").as_path());
    let jwt = es256(
        &other.private_pem_path,
        None,
        &json!({ "aud": f.mock.base_url(), "exp": now() + 60, "sub": "https://example.org" }),
    );
    let r =
        f.c.post(&url).header("ttl", "30").header("authorization", format!("vapid t={jwt}, k={}", other.public_b64url));
    assert_eq!(r.send().await.expect("send").status(), 403);
    let r = f.c.post(&url).header("authorization", vapid_header(&f, &f.mock.base_url())).send();
    assert_eq!(r.await.expect("send").status(), 400);
    let r =
        f.c.post(&url)
            .header("ttl", "30")
            .header("urgency", "urgent")
            .header("authorization", vapid_header(&f, &f.mock.base_url()));
    assert_eq!(r.send().await.expect("send").status(), 400);
    let problems = f.mock.problems();
    assert!(problems.iter().any(|p| p.contains("aud")), "{problems:?}");
    assert_eq!(f.mock.problem_count(), 5);
}

#[tokio::test]
async fn corrupted_body_is_a_problem_and_dead_subscription_gets_410() {
    let f = fixture(false).await;
    let url = format!("{}/push/sub1", f.mock.base_url());
    let mut body = encrypt(&f.sub, b"hello");
    let last = body.len() - 1;
    body[last] ^= 1;
    let r = f.c.post(&url).header("ttl", "30").header("content-encoding", "aes128gcm").body(body).send();
    assert_eq!(r.await.expect("send").status(), 400);
    assert!(f.mock.problems()[0].contains("decrypt"));
    f.mock.dead_token(&url);
    let r = f.c.post(&url).header("ttl", "30").send();
    assert_eq!(r.await.expect("send").status(), 410);
}

#[tokio::test]
async fn unauthenticated_mode_and_fail_next() {
    let f = fixture(false).await;
    let url = format!("{}/push/sub1", f.mock.base_url());
    f.mock.fail_next(1, 429, Some(3));
    let r = f.c.post(&url).header("ttl", "30").send().await.expect("send");
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers().get("retry-after").expect("retry-after"), "3");
    let r = f.c.post(&url).header("ttl", "30").send().await.expect("send");
    assert_eq!(r.status(), 201);
    assert!(f.mock.wait_for(2, std::time::Duration::from_secs(1)).await);
}
