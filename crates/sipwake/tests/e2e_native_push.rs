//! End-to-end tests of the native push senders (APNs, FCM, WebPush): the
//! real binary configured with `[push.senders.<provider>]` tables pointing
//! at the `push-mock` servers (HTTP/2 over TLS, real provider APIs, a test
//! CA), a scripted sleeping phone that wakes when the mock receives its
//! push, and a caller.
//!
//! The mocks are async: each test owns a multi-thread tokio runtime that
//! runs them while the test's synchronous SIP I/O blocks the test thread.

mod common;

use common::phone::{Phone, header_of};
use common::webhook::final_response;
use common::*;
use push_mock::{ApnsKey, Mock, MockPort, Seen, Service, ServiceAccount, Subscription, TestPki, Vapid};
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

// ---------------------------------------------------------------- helpers

/// A multi-thread runtime for the mocks (kept alive for the whole test).
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// An APNs mock with its key material (token auth).
struct ApnsFixture {
    // Field order = drop order: the mock before the runtime and the keys.
    mock: Mock,
    key: ApnsKey,
    pki: TestPki,
    dir: tempfile::TempDir,
    rt: Runtime,
}

impl ApnsFixture {
    fn new() -> ApnsFixture {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new(dir.path());
        let key = ApnsKey::generate(dir.path());
        let service = Service::Apns {
            team_id: key.team_id.clone(),
            key_id: key.key_id.clone(),
            key_public_pem: key.public_pem.clone(),
            require_client_cert: false,
        };
        let mock = rt.block_on(Mock::start(&pki, service));
        ApnsFixture { mock, key, pki, dir, rt }
    }

    /// The sipwake config: `[push]` with `push_extra`, and the APNs sender
    /// table with `sender_extra`.
    fn config(&self, push_extra: &str, sender_extra: &str) -> String {
        format!(
            "[auth]\nenabled = false\n[push]\nenable = true\nproviders = [\"apns\"]\n{push_extra}\n[push.senders.apns]\nendpoint = \"{url}\"\nca_file = \"{ca}\"\nkey_file = \"{p8}\"\nkey_id = \"{kid}\"\nteam_id = \"{team}\"\ntimeout_ms = 2000\nconnect_timeout_ms = 1000\n{sender_extra}\n",
            url = self.mock.base_url(),
            ca = self.pki.ca_file.display(),
            p8 = self.key.p8_path.display(),
            kid = self.key.key_id,
            team = self.key.team_id,
        )
    }

    /// `pn-param` of a VoIP-only binding.
    fn voip_param(&self) -> String {
        format!("{}.com.example.app.voip", self.key.team_id)
    }

    fn wait_for(&self, n: usize, secs: u64) -> bool {
        self.rt.block_on(self.mock.wait_for(n, Duration::from_secs(secs)))
    }
}

/// A device token (hex, as APNs issues them), distinct per call.
fn hex_token(tag: u8) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{tag:02x}{:030x}{:032x}", nanos, std::process::id())
}

fn instance(n: u32) -> String {
    format!("+sip.instance=\"<urn:uuid:6c5f0b8e-0000-4000-8000-{n:012}>\"")
}

/// A push Contact: `pn` is the `pn-*` parameters (`pn-provider=...;...`).
fn pn_contact(p: &Phone, pn: &str, inst: u32) -> String {
    format!("<sip:{}@{};{pn}>;{}", p.user, p.local(), instance(inst))
}

fn apns_contact(p: &Phone, prid: &str, param: &str) -> String {
    pn_contact(p, &format!("pn-provider=apns;pn-prid={prid};pn-param={param}"), 1)
}

/// Registers and expects 200; returns the response.
fn register_ok(p: &mut Phone, contact: &str, expires: u32) -> String {
    let r = p.register(&[contact], &[&format!("Expires: {expires}")]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    r
}

/// An INVITE from `sock` to `user@127.0.0.1` (Call-ID `np-call-<n>`).
fn invite_to(server: SocketAddr, sock: &UdpSocket, user: &str, n: u32) -> String {
    let local = sock.local_addr().unwrap();
    let m = format!(
        "INVITE sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-np-{n}\r\nFrom: \"Alice\" <sip:caller@other.example>;tag=c{n}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: np-call-{n}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(m.as_bytes(), server).unwrap();
    m
}

/// The CANCEL of [`invite_to`]'s INVITE `n`.
fn cancel_to(server: SocketAddr, sock: &UdpSocket, user: &str, n: u32) {
    let local = sock.local_addr().unwrap();
    let m = format!(
        "CANCEL sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-np-{n}\r\nFrom: \"Alice\" <sip:caller@other.example>;tag=c{n}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: np-call-{n}\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(m.as_bytes(), server).unwrap();
}

/// The phone answers a request it received from `from` with `code`.
fn respond(dev: &Phone, req: &str, from: SocketAddr, code: u16, reason: &str) {
    let hdrs: Vec<&str> = req.split("\r\n").take_while(|l| !l.is_empty()).collect();
    let mut resp = format!("SIP/2.0 {code} {reason}\r\n");
    for h in &hdrs[1..] {
        if h.starts_with("Via:") || h.starts_with("From:") || h.starts_with("Call-ID:") || h.starts_with("CSeq:") {
            resp += h;
            resp += "\r\n";
        } else if h.starts_with("To:") {
            resp += &format!("{h};tag=dev{code}\r\n");
        }
    }
    resp += &format!("Contact: <sip:{}@{}>\r\nContent-Length: 0\r\n\r\n", dev.user, dev.local());
    let sock = dev.udp_socket();
    sock.send_to(resp.as_bytes(), from).unwrap();
}

/// The woken phone re-REGISTERs with `contact`, gets the INVITE and
/// answers it with `code`; returns the INVITE it got.
fn wake_and_answer(dev: &mut Phone, contact: &str, code: u16) -> String {
    register_ok(dev, contact, 600);
    loop {
        let (req, from) = dev.next_request(Duration::from_secs(5)).expect("the INVITE after wake-up");
        if req.starts_with("INVITE ") {
            respond(dev, &req, from, code, if code == 200 { "OK" } else { "Busy Here" });
            return req;
        }
    }
}

/// Asserts nothing reaches the (sleeping) phone for a little while.
fn assert_asleep(dev: &Phone) {
    let sock = dev.udp_socket();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = vec![0u8; 65_536];
    assert!(sock.recv_from(&mut buf).is_err(), "a request went to a sleeping device");
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
}

fn json_body(s: &Seen) -> Value {
    serde_json::from_slice(&s.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {s:?}"))
}

fn assert_no_problems(mock: &Mock, log: &str) {
    let p = mock.problems();
    assert!(p.is_empty(), "the mock found problems: {p:#?}\n{log}");
}

/// Runs the sipwake binary (not a server) with `args`.
fn sipwake(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sipwake")).args(args).output().unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

// ---------------------------------------------------------------- APNs

#[test]
fn apns_call_wakes_the_device_with_a_voip_push() {
    let f = ApnsFixture::new();
    let server = Server::start_with(&[], Some(&f.config("", "")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let tok = hex_token(1);
    let contact = apns_contact(&dev, &tok, &f.voip_param());
    register_ok(&mut dev, &contact, 600);
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite_to(server.udp, &caller, "dev", 1);
    assert!(f.wait_for(1, 5), "no push reached the APNs mock\n{}", server.log());
    assert_asleep(&dev);
    let seen = &f.mock.push_requests()[0];
    assert!(seen.h2, "not HTTP/2: {}", seen.version);
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, format!("/3/device/{tok}"));
    assert_eq!(seen.header("apns-push-type"), Some("voip"));
    assert_eq!(seen.header("apns-topic"), Some("com.example.app.voip"));
    assert_eq!(seen.header("apns-priority"), Some("10"));
    assert!(seen.problems.is_empty(), "{:?}", seen.problems);
    let claims = seen.jwt_claims.as_ref().expect("a provider token");
    assert_eq!(claims["iss"], f.key.team_id.as_str());
    assert_eq!(seen.jwt_header.as_ref().unwrap()["kid"], f.key.key_id.as_str());
    assert_eq!(seen.jwt_header.as_ref().unwrap()["alg"], "ES256");
    let body = json_body(seen);
    assert_eq!(body["type"], "call", "{body}");
    assert_eq!(body["call_id"], "np-call-1", "{body}");
    assert_eq!(body["caller_uri"], "sip:caller@other.example", "{body}");
    assert_eq!(body["caller_name"], "Alice", "{body}");
    assert!(body["aps"].is_object(), "{body}");
    // The app wakes, registers and takes the call.
    let inv = wake_and_answer(&mut dev, &contact, 200);
    assert!(!inv.lines().next().unwrap().contains("pn-"), "{inv}");
    let fr = final_response(&caller, Duration::from_secs(5)).expect("a final answer");
    assert_eq!(status_of(fr.as_bytes()), 200, "{fr}\n{}", server.log());
    assert_eq!(f.mock.count(), 1, "one push only");
    let (_, m) = server.api("GET", "/metrics");
    assert!(m.contains("sipwake_pushes_total{provider=\"apns\",reason=\"ini-INVITE\",result=\"ok\"} 1"), "{m}");
}

#[test]
fn apns_linphone_two_tokens_refresh_is_background_and_call_is_voip() {
    let f = ApnsFixture::new();
    // Expires 125 with the 120 s lead: the refresh push is due ~5 s after a REGISTER.
    let cfg = f.config("min_push_expires = 121\nrefresh_retries_secs = []", "");
    let server = Server::start_with(&[], Some(&cfg));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let (voip, remote) = (hex_token(2), hex_token(3));
    let prid = format!("{voip}:voip&{remote}:remote");
    let param = format!("{}.org.linphone.phone.voip&remote", f.key.team_id);
    let contact = apns_contact(&dev, &prid, &param);
    register_ok(&mut dev, &contact, 125);
    // A call: a VoIP push to the voip token.
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite_to(server.udp, &caller, "dev", 2);
    assert!(f.wait_for(1, 5), "no call push\n{}", server.log());
    let call = f.mock.push_requests()[0].clone();
    assert_eq!(call.path, format!("/3/device/{voip}"));
    assert_eq!(call.header("apns-push-type"), Some("voip"));
    assert_eq!(call.header("apns-topic"), Some("org.linphone.phone.voip"));
    assert_eq!(call.header("apns-priority"), Some("10"));
    assert_eq!(json_body(&call)["type"], "call");
    // It wakes (registering again for 125 s) and answers busy.
    let t0 = Instant::now();
    register_ok(&mut dev, &contact, 125);
    let (inv, from) = dev.next_request(Duration::from_secs(5)).expect("the INVITE");
    assert!(inv.starts_with("INVITE "), "{inv}");
    respond(&dev, &inv, from, 486, "Busy Here");
    let fr = final_response(&caller, Duration::from_secs(5)).expect("a final answer");
    assert_eq!(status_of(fr.as_bytes()), 486, "{fr}");
    // The refresh push: a background push to the remote token.
    assert!(f.wait_for(2, 12), "no refresh push\n{}", server.log());
    let at = t0.elapsed();
    assert!(at >= Duration::from_secs(3) && at < Duration::from_secs(10), "refresh push at {at:?}");
    let refresh = f.mock.push_requests()[1].clone();
    assert_eq!(refresh.path, format!("/3/device/{remote}"), "{refresh:?}");
    assert_eq!(refresh.header("apns-push-type"), Some("background"));
    assert_eq!(refresh.header("apns-topic"), Some("org.linphone.phone"));
    assert_eq!(refresh.header("apns-priority"), Some("5"));
    let body = json_body(&refresh);
    assert_eq!(body["type"], "refresh", "{body}");
    assert_eq!(body["aps"]["content-available"], 1, "{body}");
    assert_no_problems(&f.mock, &server.log());
}

#[test]
fn apns_dead_token_fails_the_call_at_once_and_removes_the_binding_for_good() {
    let f = ApnsFixture::new();
    let cfg = f.config("invite_hold_secs = 30", "");
    let server = Server::start_with(&[], Some(&cfg));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let tok = hex_token(4);
    let c = apns_contact(&dev, &tok, &f.voip_param());
    register_ok(&mut dev, &c, 600);
    assert_eq!(server.bindings("dev@127.0.0.1").len(), 1);
    f.mock.dead_token(&tok);
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t0 = Instant::now();
    invite_to(server.udp, &caller, "dev", 5);
    let fr = final_response(&caller, Duration::from_secs(10)).expect("a final answer");
    assert!(matches!(status_of(fr.as_bytes()), 404 | 480), "{fr}");
    assert!(t0.elapsed() < Duration::from_secs(5), "not at once: {:?}", t0.elapsed());
    assert_eq!(f.mock.push_requests()[0].status, 410);
    assert_eq!(f.mock.count(), 1, "a dead token is not retried");
    assert!(server.bindings("dev@127.0.0.1").is_empty(), "the dead binding stayed\n{}", server.log());
    let (_, m) = server.api("GET", "/metrics");
    assert!(m.contains("sipwake_push_dead_tokens_total{provider=\"apns\"} 1"), "{m}");
    // It stays gone after a restart on the same data (the store write of
    // the removal is asynchronous: give it a moment before the kill -9).
    std::thread::sleep(Duration::from_millis(300));
    let dir = server.kill9();
    let server = Server::start_in(dir, &[], Some(&cfg));
    assert!(server.bindings("dev@127.0.0.1").is_empty(), "the dead binding came back after a restart");
    assert_no_problems(&f.mock, &server.log());
}

#[test]
fn apns_outage_refused_then_stalled_ends_with_480_at_the_hold_and_keeps_the_binding() {
    let f = ApnsFixture::new();
    let hold = 4;
    let cfg = f
        .config("", &format!("invite_hold_secs = {hold}"))
        .replace("timeout_ms = 2000\nconnect_timeout_ms = 1000", "timeout_ms = 1500\nconnect_timeout_ms = 500");
    let server = Server::start_with(&[], Some(&cfg));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let c = apns_contact(&dev, &hex_token(5), &f.voip_param());
    register_ok(&mut dev, &c, 600);
    let limit = Duration::from_secs(hold) + Duration::from_millis(1500);
    // 1. Connection refused.
    f.mock.stop();
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t0 = Instant::now();
    invite_to(server.udp, &caller, "dev", 6);
    let fr = final_response(&caller, Duration::from_secs(10)).expect("a final answer (refused)");
    let took = t0.elapsed();
    assert_eq!(status_of(fr.as_bytes()), 480, "{fr}");
    assert!(took <= limit, "480 after {took:?} (hold {hold} s)\n{}", server.log());
    eprintln!("refused: 480 after {took:?}");
    assert_eq!(server.bindings("dev@127.0.0.1").len(), 1, "an outage removed the binding");
    // 2. The service accepts connections but never answers.
    f.mock.restart().unwrap();
    f.mock.stall(true);
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t0 = Instant::now();
    invite_to(server.udp, &caller, "dev", 7);
    let fr = final_response(&caller, Duration::from_secs(10)).expect("a final answer (stalled)");
    let took = t0.elapsed();
    assert_eq!(status_of(fr.as_bytes()), 480, "{fr}");
    assert!(took <= limit, "480 after {took:?} (hold {hold} s)\n{}", server.log());
    eprintln!("stalled: 480 after {took:?}");
    assert!(f.mock.count() >= 1, "the stalled mock saw no push\n{}", server.log());
    assert_eq!(server.bindings("dev@127.0.0.1").len(), 1, "an outage removed the binding");
    f.mock.stall(false);
}

#[test]
fn apns_429_with_retry_after_is_retried_and_the_call_completes() {
    let f = ApnsFixture::new();
    let server = Server::start_with(&[], Some(&f.config("invite_hold_secs = 20", "")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let tok = hex_token(6);
    let contact = apns_contact(&dev, &tok, &f.voip_param());
    register_ok(&mut dev, &contact, 600);
    f.mock.fail_next(1, 429, Some(1));
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite_to(server.udp, &caller, "dev", 8);
    assert!(f.wait_for(1, 5), "no push\n{}", server.log());
    let t1 = Instant::now();
    assert!(f.wait_for(2, 5), "the 429 was not retried\n{}", server.log());
    let gap = t1.elapsed();
    assert!(gap >= Duration::from_millis(800), "retried after {gap:?}, before Retry-After: 1");
    let seen = f.mock.push_requests();
    assert_eq!((seen[0].status, seen[1].status), (429, 200));
    assert_eq!(seen[1].path, format!("/3/device/{tok}"));
    wake_and_answer(&mut dev, &contact, 200);
    let fr = final_response(&caller, Duration::from_secs(5)).expect("a final answer");
    assert_eq!(status_of(fr.as_bytes()), 200, "{fr}");
    assert_no_problems(&f.mock, &server.log());
}

#[test]
fn apns_cancel_while_asleep_sends_a_cancel_voip_push() {
    let f = ApnsFixture::new();
    let server = Server::start_with(&[], Some(&f.config("", "cancel_push = true")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let tok = hex_token(7);
    let c = apns_contact(&dev, &tok, &f.voip_param());
    register_ok(&mut dev, &c, 600);
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite_to(server.udp, &caller, "dev", 9);
    assert!(f.wait_for(1, 5), "no call push\n{}", server.log());
    cancel_to(server.udp, &caller, "dev", 9);
    let mut codes = Vec::new();
    caller.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = vec![0u8; 65_536];
    while codes.len() < 2 {
        let Ok((n, _)) = caller.recv_from(&mut buf) else { break };
        let c = status_of(&buf[..n]);
        if c >= 200 {
            codes.push(c);
        }
    }
    codes.sort();
    assert_eq!(codes, vec![200, 487]);
    assert!(f.wait_for(2, 5), "no cancel push\n{}", server.log());
    let cancel = f.mock.push_requests()[1].clone();
    assert_eq!(cancel.path, format!("/3/device/{tok}"));
    assert_eq!(cancel.header("apns-push-type"), Some("voip"), "a VoIP-only binding gets its cancel as VoIP");
    assert_eq!(cancel.header("apns-topic"), Some("com.example.app.voip"));
    let body = json_body(&cancel);
    assert_eq!(body["type"], "cancel", "{body}");
    assert_eq!(body["call_id"], "np-call-9", "{body}");
    assert_eq!(body["cause"], "cancelled", "{body}");
    assert_no_problems(&f.mock, &server.log());
}

#[test]
fn ctl_push_sends_a_test_push_through_apns() {
    let f = ApnsFixture::new();
    let server = Server::start_with(&[], Some(&f.config("", "")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let tok = hex_token(8);
    let c = apns_contact(&dev, &tok, &f.voip_param());
    register_ok(&mut dev, &c, 600);
    let id = server.bindings("dev@127.0.0.1")[0]["id"].as_str().unwrap().to_string();
    let url = format!("http://{}", server.mgmt);
    let out = sipwake(&["ctl", "--url", &url, "push", "dev@127.0.0.1", &id]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), server.log());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "test push: ok");
    assert!(f.wait_for(1, 3), "the mock got no test push");
    let seen = f.mock.push_requests()[0].clone();
    assert_eq!(seen.path, format!("/3/device/{tok}"));
    assert_eq!(seen.status, 200);
    assert_eq!(json_body(&seen)["type"], "test");
    // A dead token: the ctl command says so and fails.
    f.mock.dead_token(&tok);
    let out = sipwake(&["ctl", "--url", &url, "push", "dev@127.0.0.1", &id]);
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // ... and the binding goes, as after any push the service calls dead.
    assert!(server.bindings("dev@127.0.0.1").is_empty(), "{}", server.log());
    assert_no_problems(&f.mock, &server.log());
}

#[test]
fn check_config_names_the_sender_and_the_missing_key_file() {
    let f = ApnsFixture::new();
    let good = write(f.dir.path(), "good.toml", &f.config("", ""));
    let out = sipwake(&["--check-config", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let missing = f.dir.path().join("AuthKey_NOPE123456.p8");
    let text = f.config("", "").replace(&f.key.p8_path.display().to_string(), &missing.display().to_string());
    let bad = write(f.dir.path(), "bad.toml", &text);
    let out = sipwake(&["--check-config", &bad]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("push.senders.apns"), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

// ---------------------------------------------------------------- FCM

#[test]
fn fcm_call_wakes_the_device_with_a_high_priority_data_message() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let port = MockPort::reserve();
    let sa = ServiceAccount::generate(dir.path(), &port.token_uri(), "proj-1");
    let service = Service::Fcm {
        project_id: sa.project_id.clone(),
        client_email: sa.client_email.clone(),
        sa_public_pem: sa.public_pem.clone(),
    };
    let mock = rt.block_on(Mock::start_on(port, &pki, service));
    let hold = 20;
    let cfg = format!(
        "[auth]\nenabled = false\n[push]\nenable = true\nproviders = [\"fcm\"]\n[push.senders.fcm]\nservice_account = \"{sa}\"\nendpoint = \"{url}\"\nca_file = \"{ca}\"\ntimeout_ms = 2000\ninvite_hold_secs = {hold}\n",
        sa = sa.json_path.display(),
        url = mock.base_url(),
        ca = pki.ca_file.display(),
    );
    let server = Server::start_with(&[], Some(&cfg));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let tok = "fcm-token_ABC:123";
    let contact = pn_contact(&dev, &format!("pn-provider=fcm;pn-prid={tok};pn-param=proj-1"), 1);
    let r = register_ok(&mut dev, &contact, 600);
    assert_eq!(header_of(&r, "Feature-Caps"), Some("*;+sip.pns=\"fcm\""), "{r}");
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite_to(server.udp, &caller, "dev", 10);
    assert!(rt.block_on(mock.wait_for(1, Duration::from_secs(5))), "no push\n{}", server.log());
    assert_asleep(&dev);
    let tokens = mock.token_requests();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert!(tokens[0].problems.is_empty(), "{:?}", tokens[0].problems);
    let claims = tokens[0].jwt_claims.as_ref().expect("an OAuth assertion");
    assert_eq!(claims["iss"], sa.client_email.as_str());
    assert_eq!(tokens[0].jwt_header.as_ref().unwrap()["alg"], "RS256");
    let seen = mock.push_requests()[0].clone();
    assert!(seen.h2);
    assert_eq!(seen.path, "/v1/projects/proj-1/messages:send");
    assert!(seen.problems.is_empty(), "{:?}", seen.problems);
    let body = json_body(&seen);
    let msg = &body["message"];
    assert_eq!(msg["token"], tok, "{body}");
    assert_eq!(msg["data"]["type"], "call", "{body}");
    assert_eq!(msg["data"]["call_id"], "np-call-10", "{body}");
    assert_eq!(msg["data"]["caller_uri"], "sip:caller@other.example", "{body}");
    assert_eq!(msg["android"]["priority"], "high", "{body}");
    let ttl = msg["android"]["ttl"].as_str().expect("a ttl");
    let secs: u64 = ttl.strip_suffix('s').and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("ttl {ttl:?}"));
    assert!(secs > 0 && secs <= hold, "ttl {ttl} with a {hold} s hold");
    wake_and_answer(&mut dev, &contact, 200);
    let fr = final_response(&caller, Duration::from_secs(5)).expect("a final answer");
    assert_eq!(status_of(fr.as_bytes()), 200, "{fr}");
    // A second call reuses the access token.
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite_to(server.udp, &caller, "dev", 11);
    assert!(rt.block_on(mock.wait_for(2, Duration::from_secs(5))), "no second push\n{}", server.log());
    assert_eq!(mock.token_count(), 1, "the access token was not reused");
    assert_no_problems(&mock, &server.log());
}

// ---------------------------------------------------------------- WebPush

#[test]
fn webpush_call_with_vapid_encrypted_with_keys_and_empty_without() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(dir.path());
    let vapid = Vapid::generate(dir.path());
    let sub = Subscription::generate();
    let service = Service::WebPush {
        vapid_public_b64url: Some(vapid.public_b64url.clone()),
        subscriptions: vec![("/push/sub1".to_owned(), sub.clone())],
    };
    let mock = rt.block_on(Mock::start(&pki, service));
    let cfg = format!(
        "[auth]\nenabled = false\n[push]\nenable = true\nproviders = [\"webpush\"]\n[push.senders.webpush]\nvapid_private_key = \"{key}\"\nvapid_subject = \"mailto:ops@example.com\"\nallowed_hosts = [\"{host}\"]\nca_file = \"{ca}\"\ntimeout_ms = 2000\n",
        key = vapid.private_pem_path.display(),
        host = mock.addr,
        ca = pki.ca_file.display(),
    );
    let server = Server::start_with(&[], Some(&cfg));
    let esc = |path: &str| format!("https%3A%2F%2F127.0.0.1%3A{}%2Fpush%2F{path}", mock.addr.port());
    // Two devices of one AoR: a browser that gave its subscription keys, one that did not.
    let mut keyed = Phone::udp(server.udp, "dev", "127.0.0.1");
    let c1 = pn_contact(
        &keyed,
        &format!(
            "pn-provider=webpush;pn-prid={};pn-webpush-p256dh={};pn-webpush-auth={}",
            esc("sub1"),
            sub.p256dh_b64url,
            sub.auth_b64url
        ),
        1,
    );
    let r = register_ok(&mut keyed, &c1, 600);
    let caps = format!("*;+sip.pns=\"webpush\";+sip.vapid=\"{}\"", vapid.public_b64url);
    assert_eq!(header_of(&r, "Feature-Caps"), Some(caps.as_str()), "{r}");
    let mut bare = Phone::udp(server.udp, "dev", "127.0.0.1");
    let c2 = pn_contact(&bare, &format!("pn-provider=webpush;pn-prid={}", esc("sub2")), 2);
    register_ok(&mut bare, &c2, 600);
    assert_eq!(server.bindings("dev@127.0.0.1").len(), 2);
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite_to(server.udp, &caller, "dev", 12);
    assert!(rt.block_on(mock.wait_for(2, Duration::from_secs(5))), "not both pushed\n{}", server.log());
    let seen = mock.push_requests();
    let by_path =
        |p: &str| seen.iter().find(|s| s.path == p).cloned().unwrap_or_else(|| panic!("no push to {p}: {seen:?}"));
    let (s1, s2) = (by_path("/push/sub1"), by_path("/push/sub2"));
    for s in [&s1, &s2] {
        assert!(s.h2, "{s:?}");
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        let claims = s.jwt_claims.as_ref().expect("a VAPID JWT");
        assert_eq!(claims["aud"], mock.base_url().as_str());
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        assert_eq!(s.header("urgency"), Some("high"));
        assert!(s.header("ttl").and_then(|t| t.parse::<u64>().ok()).is_some_and(|t| t > 0 && t <= 30), "{s:?}");
    }
    assert_eq!(s1.header("content-encoding"), Some("aes128gcm"));
    let plain = s1.decrypted.as_ref().expect("the mock decrypted the body");
    let v: Value = serde_json::from_slice(plain).unwrap();
    assert_eq!(v["type"], "call", "{v}");
    assert_eq!(v["call_id"], "np-call-12", "{v}");
    assert!(s2.body.is_empty(), "a push without subscription keys has no body: {s2:?}");
    // The keyed browser wakes and answers.
    wake_and_answer(&mut keyed, &c1, 200);
    let fr = final_response(&caller, Duration::from_secs(5)).expect("a final answer");
    assert_eq!(status_of(fr.as_bytes()), 200, "{fr}");
    assert_no_problems(&mock, &server.log());
}
