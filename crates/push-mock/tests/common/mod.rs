//! Helpers shared by the integration tests: an HTTP/2 client trusting the
//! test CA, and JWT signing.

#![allow(dead_code)]

use push_mock::TestPki;
use serde_json::Value;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// A reqwest client that trusts the test CA only (HTTP/2 via ALPN).
pub fn client(pki: &TestPki) -> reqwest::Client {
    builder(pki).build().expect("client")
}

pub fn builder(pki: &TestPki) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("CA pem");
    reqwest::Client::builder().tls_certs_only([ca]).timeout(std::time::Duration::from_secs(10))
}

/// Signs `claims` with an ES256 PKCS#8 PEM key file, with `kid` if given.
pub fn es256(pem_path: &Path, kid: Option<&str>, claims: &Value) -> String {
    let pem = std::fs::read(pem_path).expect("read key");
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).expect("EC key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

/// Signs `claims` with the service account's RS256 key (from its JSON).
pub fn rs256(sa_json: &Path, claims: &Value) -> String {
    let sa: Value = serde_json::from_slice(&std::fs::read(sa_json).expect("read sa")).expect("sa json");
    let pem = sa["private_key"].as_str().expect("private_key");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA key");
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256), claims, &key).expect("sign")
}
