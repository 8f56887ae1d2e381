//! The browser end-to-end test: a real WebRTC softphone (JsSIP in the
//! system's headless Chromium, `tests/browser/phone.mjs`) registers over
//! WSS with RFC 8599 WebPush parameters and digest auth; a sipp caller on
//! UDP calls it; sipwake pushes through its WebPush sender (VAPID, RFC 8291
//! encryption) to the push-mock's WebPush service and holds the INVITE; the
//! browser registers again, as its service worker would on the push, gets
//! the INVITE over its WSS connection, answers, and the caller's BYE reaches
//! it through the Record-Route that bridges UDP and WSS.
//!
//! It needs /usr/bin/chromium, node and `tests/browser/node_modules`
//! (scripts/test.sh installs them); without them it skips loudly, except
//! under `CI`, where it fails.

mod common;

use common::browser::{Browser, Event, ServerCert, tools_or_skip};
use common::*;
use push_mock::{Mock, Service, Subscription, TestPki, Vapid};
use serde_json::{Value, json};

use std::time::{Duration, Instant};

/// The server's WSS listener.
fn wss_addr(server: &Server) -> std::net::SocketAddr {
    server
        .listeners
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case("wss"))
        .map(|(_, a)| *a)
        .unwrap_or_else(|| panic!("no wss listener among {:?}\n{}", server.listeners, server.log()))
}

/// Fails the test with what the browser and the server saw.
fn fail(phone: &Browser, server: &Server, what: String) -> ! {
    panic!("{what}\n{}\nserver log:\n{}", phone.report(), server.log())
}

/// The WebPush service (push-mock, its own test CA) with the browser's
/// subscription, and sipwake with a WSS listener (a throw-away CA's
/// certificate), the WebPush sender pointed at the mock, and the subscriber.
struct Fixture {
    // Field order = drop order: the processes before the runtime and the files.
    server: Server,
    mock: Mock,
    cert: ServerCert,
    vapid: Vapid,
    sub: Subscription,
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::new(dir.path());
        let vapid = Vapid::generate(dir.path());
        let sub = Subscription::generate();
        let service = Service::WebPush {
            vapid_public_b64url: Some(vapid.public_b64url.clone()),
            subscriptions: vec![("/push/browser1".to_owned(), sub.clone())],
        };
        let mock = rt.block_on(Mock::start(&pki, service));
        let cert = ServerCert::generate(dir.path());
        // The default challenges (SHA-256, then MD5): JsSIP 3.x keeps only the
        // last WWW-Authenticate and knows only MD5, so this order serves it.
        let cfg = format!(
            "[tls]\ncertificate = \"{chain}\"\nprivate_key = \"{key}\"\n\
             [websocket]\nallowed_origins = []\n\
             [push]\nenable = true\nproviders = [\"webpush\"]\n\
             [push.senders.webpush]\nvapid_private_key = \"{vkey}\"\nvapid_subject = \"mailto:ops@example.com\"\n\
             allowed_hosts = [\"{host}\"]\nca_file = \"{ca}\"\ntimeout_ms = 2000\ninvite_hold_secs = 20\n",
            chain = cert.chain_file.display(),
            key = cert.key_file.display(),
            vkey = vapid.private_pem_path.display(),
            host = mock.addr,
            ca = pki.ca_file.display(),
        );
        let server = Server::start_with(&["--listen", "wss:127.0.0.1:0"], Some(&cfg));
        add_user(&server, "browser@127.0.0.1", "s3cret-browser");
        Fixture { server, mock, cert, vapid, sub, rt, dir }
    }

    /// The subscription URL as it goes in `pn-prid` (escaped).
    fn prid(&self) -> String {
        format!("https%3A%2F%2F127.0.0.1%3A{}%2Fpush%2Fbrowser1", self.mock.addr.port())
    }

    /// Starts the browser phone for `browser@127.0.0.1` with the WebPush
    /// subscription, telling Chromium to trust the certificate whose SPKI
    /// hash is `spki`.
    fn start_browser(&self, spki: &str) -> Browser {
        let wss = wss_addr(&self.server);
        Browser::start(
            self.dir.path(),
            json!({
                "wss": format!("wss://127.0.0.1:{}", wss.port()),
                "uri": "sip:browser@127.0.0.1",
                "password": "s3cret-browser",
                "spki": spki,
                "pn": {
                    "provider": "webpush",
                    "prid": self.prid(),
                    "p256dh": self.sub.p256dh_b64url,
                    "auth": self.sub.auth_b64url,
                },
            }),
        )
    }

    /// Starts the browser phone trusting sipwake's certificate; returns it
    /// once registered, with the 200's event.
    fn register_browser(&self) -> (Browser, Event) {
        let mut phone = self.start_browser(&self.cert.spki_sha256_b64);
        let reg =
            phone.wait_for("registered", 0, Duration::from_secs(30)).unwrap_or_else(|e| fail(&phone, &self.server, e));
        let caps = reg.v["featureCaps"].as_str().unwrap_or_default().to_owned();
        assert!(caps.contains("+sip.pns=\"webpush\""), "Feature-Caps {caps:?}");
        assert!(caps.contains(&format!("+sip.vapid=\"{}\"", self.vapid.public_b64url)), "Feature-Caps {caps:?}");
        (phone, reg)
    }

    /// Waits for `n` pushes at the mock and checks the last: VAPID JWT
    /// verified by the mock, the encrypted call payload.
    fn expect_push(&self, n: usize, phone: &Browser) -> Instant {
        if !self.rt.block_on(self.mock.wait_for(n, Duration::from_secs(10))) {
            fail(phone, &self.server, format!("push {n} did not reach the WebPush mock"));
        }
        let at = Instant::now();
        let seen = self.mock.push_requests()[n - 1].clone();
        assert!(seen.problems.is_empty(), "{:?}", seen.problems);
        assert_eq!(seen.path, "/push/browser1");
        let claims = seen.jwt_claims.as_ref().expect("a VAPID JWT the mock verified");
        assert_eq!(claims["aud"], self.mock.base_url().as_str());
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        assert_eq!(seen.header("content-encoding"), Some("aes128gcm"));
        let payload: Value = serde_json::from_slice(seen.decrypted.as_ref().expect("a decrypted payload")).unwrap();
        assert_eq!(payload["type"], "call", "{payload}");
        at
    }

    /// What must hold at the end of every test.
    fn assert_clean(&self, phone: &Browser) {
        let problems = self.mock.problems();
        assert!(problems.is_empty(), "the mock found problems: {problems:#?}");
        let errors: Vec<_> = phone.events.iter().filter(|e| e.name() == "error").map(|e| e.v.to_string()).collect();
        assert!(errors.is_empty(), "the phone reported errors: {errors:#?}");
        let log = self.server.log();
        assert!(!log.contains("panicked"), "{log}");
    }
}

/// The INVITE the browser got (its `incoming` event): from the caller,
/// through sipwake's WSS hop, Record-Routed, without any pn-* parameter.
fn check_incoming(inc: &Event) {
    assert_eq!(inc.v["displayName"], "Caller", "{}", inc.v);
    assert!(inc.v["from"].as_str().is_some_and(|f| f.starts_with("sip:caller@")), "{}", inc.v);
    let raw = inc.v["raw"].as_str().unwrap_or_default();
    assert!(raw.starts_with("INVITE sip:"), "{raw}");
    assert!(!raw.contains("pn-"), "pn-* parameters reached the browser:\n{raw}");
    let via = raw.lines().find(|l| l.to_ascii_lowercase().starts_with("via:")).unwrap_or_default();
    assert!(via.to_ascii_uppercase().contains("SIP/2.0/WSS"), "top Via {via:?} is not sipwake's WSS hop");
    assert!(raw.lines().any(|l| l.to_ascii_lowercase().starts_with("record-route:")), "no Record-Route:\n{raw}");
}

#[test]
fn browser_over_wss_is_woken_by_webpush_and_takes_a_call_from_udp() {
    if !tools_or_skip("browser_over_wss_is_woken_by_webpush_and_takes_a_call_from_udp") {
        return;
    }
    let t0 = Instant::now();
    let f = Fixture::new();
    let server = &f.server;

    // a. The browser registers over WSS with its WebPush subscription.
    let (mut phone, _) = f.register_browser();
    let registered_after = t0.elapsed();
    let bindings = server.bindings("browser@127.0.0.1");
    assert_eq!(bindings.len(), 1, "{bindings:#?}");
    let b = &bindings[0];
    assert!(b["flow"]["transport"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("wss")), "{b:#}");
    assert_eq!(b["flow"]["local"].as_str(), Some(wss_addr(server).to_string().as_str()), "{b:#}");
    assert_eq!(b["push"]["provider"], "webpush", "{b:#}");
    // The subscription URL, as sent (escaped) or as the sender uses it.
    let url = format!("https://127.0.0.1:{}/push/browser1", f.mock.addr.port());
    assert!(b["push"]["prid"].as_str().is_some_and(|p| p == url || p == f.prid()), "{b:#}");
    assert!(b["user_agent"].as_str().is_some_and(|u| u.starts_with("JsSIP")), "{b:#}");

    // The tab goes to sleep: its WebSocket closes, the binding stays (a
    // push binding is how a sleeping browser is reached).
    let mark = phone.events.len();
    phone.send(&json!({ "cmd": "sleep" }));
    phone.wait_for("asleep", mark, Duration::from_secs(10)).unwrap_or_else(|e| fail(&phone, server, e));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let b = server.bindings("browser@127.0.0.1");
        assert_eq!(b.len(), 1, "the binding went with its connection: {b:#?}\n{}", server.log());
        if b[0]["flow"]["alive"] == false {
            break;
        }
        if Instant::now() > deadline {
            fail(&phone, server, format!("the closed WSS connection still counts as alive: {b:#?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // b. The caller on UDP: sipwake pushes and holds the INVITE.
    let mark = phone.events.len();
    let caller = sipp_start("browser_call.xml", server.udp, "u1", 1, None, &["-s", "browser"]);
    let push_at = f.expect_push(1, &phone);
    // Held: the caller gets no final answer while the tab sleeps (sipp
    // fails on anything but 200, which can only come from the woken page),
    // and nothing reaches the browser until it registers again.
    phone.poll(Duration::from_millis(500));
    if phone.events[mark..].iter().any(|e| e.name() == "incoming") {
        fail(&phone, server, "the INVITE reached the browser before it re-registered".into());
    }
    // The service worker got the push: the app opens and registers, on a new connection.
    let reg_mark = phone.events.len();
    phone.send(&json!({ "cmd": "register" }));
    let rereg =
        phone.wait_for("registered", reg_mark, Duration::from_secs(20)).unwrap_or_else(|e| fail(&phone, server, e));
    let inc = phone.wait_for("incoming", mark, Duration::from_secs(10)).unwrap_or_else(|e| fail(&phone, server, e));
    let confirmed =
        phone.wait_for("confirmed", mark, Duration::from_secs(10)).unwrap_or_else(|e| fail(&phone, server, e));
    let ended = phone.wait_for("ended", mark, Duration::from_secs(15)).unwrap_or_else(|e| fail(&phone, server, e));
    let (ok, out) = caller.wait(Duration::from_secs(30));
    if !ok {
        fail(&phone, server, format!("sipp caller failed:\n{out}"));
    }

    // c. The order, and what reached the browser.
    assert!(push_at <= inc.at, "the browser saw the INVITE before the push arrived");
    assert!(rereg.at <= inc.at, "the INVITE came before the wake-up REGISTER's 200");
    assert!(inc.at <= confirmed.at && confirmed.at <= ended.at, "{}", phone.report());
    assert_eq!(ended.v["originator"], "remote", "the browser hung up itself: {}", phone.report());
    check_incoming(&inc);
    let b = server.bindings("browser@127.0.0.1");
    assert_eq!(b.len(), 1, "the woken page's REGISTER did not replace the binding: {b:#?}");
    assert_eq!(b[0]["flow"]["alive"], true, "{b:#?}");
    assert_eq!(f.mock.count(), 1, "one push only");
    f.assert_clean(&phone);
    assert!(phone.quit(Duration::from_secs(10)), "the phone did not quit");
    let names: Vec<&str> = phone.events.iter().map(|e| e.name()).collect();
    eprintln!("browser events: {}", names.join(" "));
    eprintln!(
        "browser e2e: registered after {registered_after:?}, push to incoming {:?}, whole test {:?}",
        inc.at - push_at,
        t0.elapsed()
    );
}

#[test]
fn browser_with_its_connection_open_gets_the_invite_at_once_and_a_push_too() {
    if !tools_or_skip("browser_with_its_connection_open_gets_the_invite_at_once_and_a_push_too") {
        return;
    }
    let f = Fixture::new();
    let server = &f.server;
    // A frozen tab keeps its socket open: an open connection is no proof
    // that the app is awake, so sipwake tries it at once and pushes too.
    let (mut phone, _) = f.register_browser();
    let mark = phone.events.len();
    let caller = sipp_start("browser_call.xml", server.udp, "u1", 1, None, &["-s", "browser"]);
    let inc = phone.wait_for("incoming", mark, Duration::from_secs(10)).unwrap_or_else(|e| fail(&phone, server, e));
    f.expect_push(1, &phone);
    phone.wait_for("confirmed", mark, Duration::from_secs(10)).unwrap_or_else(|e| fail(&phone, server, e));
    let ended = phone.wait_for("ended", mark, Duration::from_secs(15)).unwrap_or_else(|e| fail(&phone, server, e));
    let (ok, out) = caller.wait(Duration::from_secs(30));
    if !ok {
        fail(&phone, server, format!("sipp caller failed:\n{out}"));
    }
    assert!(
        !phone.events[mark..].iter().any(|e| e.name() == "registered"),
        "the INVITE needed no new registration: {}",
        phone.report()
    );
    assert_eq!(ended.v["originator"], "remote", "the browser hung up itself: {}", phone.report());
    check_incoming(&inc);
    let bodies: Vec<String> = f
        .mock
        .push_requests()
        .iter()
        .map(|s| String::from_utf8_lossy(s.decrypted.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(f.mock.count(), 1, "one push only: {bodies:#?}");
    f.assert_clean(&phone);
    assert!(phone.quit(Duration::from_secs(10)), "the phone did not quit");
}

#[test]
fn browser_refuses_the_wss_certificate_it_was_not_told_to_trust() {
    if !tools_or_skip("browser_refuses_the_wss_certificate_it_was_not_told_to_trust") {
        return;
    }
    let f = Fixture::new();
    // Another key's SPKI hash: the test CA stays unknown to Chromium, so the
    // trust the other tests rely on comes from the flag alone.
    let other_dir = f.dir.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = ServerCert::generate(&other_dir);
    let mut phone = f.start_browser(&other.spki_sha256_b64);
    let refused =
        phone.wait_for("disconnected", 0, Duration::from_secs(30)).unwrap_or_else(|e| fail(&phone, &f.server, e));
    assert_eq!(refused.v["error"], true, "{}", phone.report());
    phone.poll(Duration::from_millis(500));
    let console: Vec<String> =
        phone.events.iter().filter(|e| e.name() == "console").map(|e| e.v["text"].to_string()).collect();
    assert!(console.iter().any(|t| t.contains("ERR_CERT_AUTHORITY_INVALID")), "{}", phone.report());
    assert!(!phone.events.iter().any(|e| e.name() == "registered"), "{}", phone.report());
    assert!(f.server.bindings("browser@127.0.0.1").is_empty());
    // sipwake saw the handshake fail (Chromium aborts it on the unknown CA).
    let (_, m) = f.server.api("GET", "/metrics");
    let failures = "sipwake_transport_handshake_failures_total{transport=\"wss\",reason=\"tls\"}";
    let n = m.lines().find_map(|l| l.strip_prefix(failures)).and_then(|v| v.trim().parse::<f64>().ok());
    assert!(n.is_some_and(|n| n >= 1.0), "{failures} = {n:?}");
    assert!(phone.quit(Duration::from_secs(10)), "the phone did not quit");
}
