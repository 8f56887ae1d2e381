//! The fake Google service account: an RSA-2048 key in a service-account
//! JSON file with the real field names, whose `token_uri` points at the
//! mock's OAuth2 token endpoint.

use super::{random_bytes, write_file};
use rcgen::{KeyPair, PKCS_RSA_SHA256, RsaKeySize};
use std::path::{Path, PathBuf};

/// A generated service account.
#[derive(Clone, Debug)]
pub struct ServiceAccount {
    /// `DIR/service-account.json`.
    pub json_path: PathBuf,
    /// `push-mock@<project_id>.iam.gserviceaccount.com` (the JWT's `iss`).
    pub client_email: String,
    /// The Firebase project id.
    pub project_id: String,
    /// The public key (SPKI PEM), for the mock's signature check.
    pub public_pem: String,
}

impl ServiceAccount {
    /// Generates a key and writes the JSON file into `dir`; `token_uri` is
    /// the mock's token endpoint (`<base_url>/token`, see
    /// [`crate::Mock::token_uri`]).
    pub fn generate(dir: &Path, token_uri: &str, project_id: &str) -> ServiceAccount {
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
            .expect("push-mock: generate the service account's RSA-2048 key");
        let client_email = format!("push-mock@{project_id}.iam.gserviceaccount.com");
        let hex = |b: Vec<u8>| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let client_id: String = random_bytes(10).iter().map(|b| char::from(b'0' + b % 10)).collect();
        let json = serde_json::json!({
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": hex(random_bytes(20)),
            "private_key": key.serialize_pem(),
            "client_email": client_email,
            "client_id": format!("1{client_id}"),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": format!(
                "https://www.googleapis.com/robot/v1/metadata/x509/push-mock%40{project_id}.iam.gserviceaccount.com"
            ),
            "universe_domain": "googleapis.com",
        });
        let text = serde_json::to_string_pretty(&json).expect("push-mock: serialise the service account");
        let json_path = write_file(dir, "service-account.json", text.as_bytes());
        ServiceAccount { json_path, client_email, project_id: project_id.to_owned(), public_pem: key.public_key_pem() }
    }
}
