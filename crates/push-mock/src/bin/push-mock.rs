//! `push-mock --service apns|fcm|webpush --dir DIR [--cert-auth] [--record-all]`:
//! generates the key material into DIR, starts the mock on a free port of
//! 127.0.0.1, prints one JSON line (port, URLs, key paths and ids) on
//! stdout, then serves until killed. By default only requests with
//! problems are kept (benchmark mode); `GET <base_url>/_mock/stats` gives
//! the counters.

use push_mock::{ApnsKey, Mock, MockPort, Service, ServiceAccount, Subscription, TestPki, Vapid};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

const USAGE: &str =
    "usage: push-mock --service apns|fcm|webpush --dir DIR [--cert-auth] [--record-all] [--project-id ID]";

struct Args {
    service: String,
    dir: PathBuf,
    cert_auth: bool,
    record_all: bool,
    project_id: String,
}

fn parse() -> Result<Args, String> {
    let mut service = None;
    let mut dir = None;
    let mut args = Args {
        service: String::new(),
        dir: PathBuf::new(),
        cert_auth: false,
        record_all: false,
        project_id: "push-mock-project".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--service" => service = it.next(),
            "--dir" => dir = it.next().map(PathBuf::from),
            "--project-id" => args.project_id = it.next().ok_or("--project-id needs a value")?,
            "--cert-auth" => args.cert_auth = true,
            "--record-all" => args.record_all = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    args.service = service.ok_or(USAGE)?;
    args.dir = dir.ok_or(USAGE)?;
    Ok(args)
}

#[tokio::main]
async fn main() {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let pki = TestPki::new(&args.dir);
    let port = MockPort::reserve();
    let mut info = json!({
        "service": args.service,
        "port": port.addr().port(),
        "base_url": port.base_url(),
        "stats_url": format!("{}/_mock/stats", port.base_url()),
        "ca_file": pki.ca_file,
    });
    let service = match args.service.as_str() {
        "apns" => {
            let key = ApnsKey::generate(&args.dir);
            let identity = pki.client_identity(&args.dir, "push-mock");
            info["key_id"] = json!(key.key_id);
            info["team_id"] = json!(key.team_id);
            info["p8_path"] = json!(key.p8_path);
            info["cert_auth"] = json!(args.cert_auth);
            info["p12_path"] = json!(identity.p12_path);
            info["p12_password"] = json!(identity.p12_password);
            info["client_pem_path"] = json!(identity.pem_path);
            Service::Apns {
                team_id: key.team_id,
                key_id: key.key_id,
                key_public_pem: key.public_pem,
                require_client_cert: args.cert_auth,
            }
        }
        "fcm" => {
            let sa = ServiceAccount::generate(&args.dir, &port.token_uri(), &args.project_id);
            info["project_id"] = json!(sa.project_id);
            info["service_account_json"] = json!(sa.json_path);
            info["client_email"] = json!(sa.client_email);
            info["token_uri"] = json!(port.token_uri());
            Service::Fcm { project_id: sa.project_id, client_email: sa.client_email, sa_public_pem: sa.public_pem }
        }
        "webpush" => {
            let vapid = Vapid::generate(&args.dir);
            let sub = Subscription::generate();
            info["vapid_private_pem_path"] = json!(vapid.private_pem_path);
            info["vapid_public_b64url"] = json!(vapid.public_b64url);
            info["subscription"] = json!({
                "endpoint": format!("{}/push/sub1", port.base_url()),
                "keys": { "p256dh": sub.p256dh_b64url, "auth": sub.auth_b64url },
            });
            Service::WebPush {
                vapid_public_b64url: Some(vapid.public_b64url),
                subscriptions: vec![("/push/sub1".to_owned(), sub)],
            }
        }
        other => {
            eprintln!("unknown service {other:?}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let mock = Mock::start_on(port, &pki, service).await;
    mock.set_record_all(args.record_all);
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{info}");
    let _ = stdout.flush();
    drop(stdout);
    std::future::pending::<()>().await;
}
