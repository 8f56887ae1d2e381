//! The generated key material is in the providers' formats.

use push_mock::{ApnsKey, ServiceAccount, Subscription, TestPki, Vapid};
use serde_json::Value;

#[test]
fn p12_client_identity_reads_back_with_p12_keystore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path());
    let id = pki.client_identity(dir.path(), "s3cret");
    let der = std::fs::read(&id.p12_path).expect("read p12");
    let store = p12_keystore::KeyStore::from_pkcs12(&der, "s3cret", p12_keystore::Pkcs12ImportPolicy::Strict)
        .expect("p12-keystore reads it");
    let (_, chain) = store.private_key_chain().expect("a key chain");
    assert_eq!(chain.certs().len(), 2);
    assert!(chain.certs()[0].subject().contains(&id.subject_cn), "{}", chain.certs()[0].subject());
    assert!(p12_keystore::KeyStore::from_pkcs12(&der, "wrong", p12_keystore::Pkcs12ImportPolicy::Strict).is_err());
    let pem = std::fs::read_to_string(&id.pem_path).expect("pem");
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(pem.contains("BEGIN PRIVATE KEY"));
    assert!(std::fs::read_to_string(&pki.ca_file).expect("ca").contains("BEGIN CERTIFICATE"));
}

#[test]
fn apns_key_vapid_and_service_account_formats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = ApnsKey::generate(dir.path());
    assert_eq!((key.key_id.len(), key.team_id.len()), (10, 10));
    assert!(key.p8_path.ends_with(format!("AuthKey_{}.p8", key.key_id)));
    let p8 = std::fs::read(&key.p8_path).expect("p8");
    assert!(jsonwebtoken::EncodingKey::from_ec_pem(&p8).is_ok());

    let vapid = Vapid::generate(dir.path());
    assert_eq!(vapid.public_b64url.len(), 87, "65 bytes base64url unpadded");
    assert!(std::fs::read_to_string(&vapid.private_pem_path).expect("pem").starts_with("-----BEGIN PRIVATE KEY-----"));

    let sa = ServiceAccount::generate(dir.path(), "https://127.0.0.1:1/token", "p");
    let json: Value = serde_json::from_slice(&std::fs::read(&sa.json_path).expect("json")).expect("parse");
    for field in
        ["type", "project_id", "private_key_id", "private_key", "client_email", "client_id", "auth_uri", "token_uri"]
    {
        assert!(json[field].is_string(), "{field}");
    }
    assert_eq!(json["type"], "service_account");
    assert_eq!(json["client_email"], sa.client_email.as_str());
    assert!(jsonwebtoken::EncodingKey::from_rsa_pem(json["private_key"].as_str().expect("key").as_bytes()).is_ok());
}

#[test]
fn subscription_decrypts_what_web_push_native_encrypts() {
    let sub = Subscription::generate();
    assert_eq!(sub.p256dh().len(), 65);
    assert_eq!(sub.auth().len(), 16);
    let public = web_push_native::p256::PublicKey::from_sec1_bytes(sub.p256dh()).expect("p256dh");
    let auth = web_push_native::Auth::clone_from_slice(sub.auth());
    let body = web_push_native::encrypt(b"wake".to_vec(), &public, &auth).expect("encrypt");
    assert_eq!(sub.decrypt(&body).expect("decrypt"), b"wake");
    assert!(Subscription::generate().decrypt(&body).is_err(), "another subscription cannot read it");
}
