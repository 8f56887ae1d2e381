//! The admin web page (`GET /admin`) in a real browser: headless Chromium
//! (Debian's package), driven by `tests/browser/admin.mjs` through
//! playwright-core, signs in with the management token as an operator
//! would (typing it, clicking "Sign in"), after real registrations over
//! UDP, a pushed call the device woke up for and one it never answered.
//! The test asserts what the page shows (read back from the DOM): live
//! counters, the bindings found by an AoR search with their push state,
//! the recent pushes with outcome and latency, the push audit of the call,
//! the flagged device, a call held while it looks; a wrong token is refused and the API gives no data
//! without the token. The screenshot is kept as a test artifact:
//! `target/test-artifacts/admin.png`.
//!
//! Needs /usr/bin/chromium, node and `tests/browser/node_modules`
//! (scripts/test.sh installs them); without them it skips loudly, except
//! under `CI`, where it fails.

mod common;

use common::browser::{CHROMIUM, kit_dir, tools_or_skip};
use common::phone::Phone;
use common::webhook::{answer, final_response, invite, push_contact, webhook};
use common::*;
use serde_json::{Value, json};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "admin-page-test-token-7c1f";

/// Where test artifacts go: `target/test-artifacts` beside the binary's profile dir.
fn artifacts() -> PathBuf {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_sipwake"));
    let dir = bin.parent().and_then(|p| p.parent()).unwrap().join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `admin.mjs` with `params` (at most 90 s) and returns its JSON line.
fn run_page(params: Value, server: &Server) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let mut params = params;
    params["userDataDir"] = json!(dir.path().join("profile").display().to_string());
    params["chromium"] = json!(CHROMIUM);
    let stderr_log = dir.path().join("admin.stderr.log");
    let mut child = Command::new("node")
        .current_dir(kit_dir())
        .arg(kit_dir().join("admin.mjs"))
        .arg(params.to_string())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_log).unwrap())
        .spawn()
        .expect("node runs");
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("admin.mjs ran over 90 s\n{}", std::fs::read_to_string(&stderr_log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| {
        panic!(
            "no JSON from admin.mjs: {stdout}\n{}\nserver log:\n{}",
            std::fs::read_to_string(&stderr_log).unwrap_or_default(),
            server.log()
        )
    });
    let v: Value = serde_json::from_str(line).unwrap();
    assert!(v.get("error").is_none(), "admin.mjs failed: {v}\nserver log:\n{}", server.log());
    v
}

/// Rows of a section whose column `col` contains `text`.
fn rows_with<'a>(v: &'a Value, section: &str, col: &str, text: &str) -> Vec<&'a Value> {
    v[section]
        .as_array()
        .map(|a| a.iter().filter(|r| r[col].as_str().is_some_and(|s| s.contains(text))).collect())
        .unwrap_or_default()
}

#[test]
fn the_admin_page_shows_bindings_pushes_the_call_audit_and_flagged_devices() {
    if !tools_or_skip("e2e_admin") {
        return;
    }
    let (url, pushes) = webhook(200);
    let cfg = format!(
        "[auth]\nenabled = false\n[management]\ntoken = \"{TOKEN}\"\n[push]\nenable = true\ninvite_hold_secs = 8\n\
         [push.senders.\"*\"]\nwebhook = \"{url}\"\ntimeout_ms = 2000\n"
    );
    let server = Server::start_with(&[], Some(&cfg));
    // A push phone and a plain one.
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let contact = push_contact(&dev, "TOKEN-ADMIN");
    assert_eq!(status_of(dev.register(&[&contact], &["Expires: 600"]).as_bytes()), 200);
    let mut desk = Phone::udp(server.udp, "desk", "127.0.0.1");
    let plain = format!("<sip:desk@{}>", desk.local());
    assert_eq!(status_of(desk.register(&[&plain], &["Expires: 600"]).as_bytes()), 200);
    // Call 1: the device wakes, registers, gets the INVITE and answers busy.
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite(server.udp, &caller, 1);
    pushes.recv_timeout(Duration::from_secs(5)).expect("a push");
    assert_eq!(status_of(dev.register(&[&contact], &["Expires: 600"]).as_bytes()), 200);
    let (inv, from) = dev.next_request(Duration::from_secs(5)).expect("the INVITE after wake-up");
    answer(&dev, &inv, from, "486 Busy Here", "");
    assert_eq!(status_of(final_response(&caller, Duration::from_secs(5)).expect("486").as_bytes()), 486);
    // Call 2 (from another socket: the first gets 486 retransmissions, it
    // never ACKs): the push goes, the device never answers: 480, flagged.
    let caller2 = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite(server.udp, &caller2, 2);
    pushes.recv_timeout(Duration::from_secs(5)).expect("a second push");
    assert_eq!(status_of(final_response(&caller2, Duration::from_secs(12)).expect("480").as_bytes()), 480);

    // Without the token: the page loads (it holds no data), the API refuses.
    let http = reqwest::blocking::Client::new();
    let page = http.get(format!("http://{}/admin", server.mgmt)).send().unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers().get("content-security-policy").map(|v| v.to_str().unwrap().to_owned());
    assert!(csp.as_deref().is_some_and(|c| c.contains("default-src 'self'")), "{csp:?}");
    assert!(page.text().unwrap().contains("<title>"), "not the page");
    let api = http.get(format!("http://{}/api/v1/stats", server.mgmt)).send().unwrap();
    assert_eq!(api.status(), 401);

    // An operator signs in with a wrong token: refused.
    let admin_url = format!("http://{}/admin", server.mgmt);
    let v = run_page(json!({ "url": admin_url, "token": TOKEN, "wrongToken": true }), &server);
    assert_eq!(v["signedIn"], false, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| m.contains("wrong token")), "{v}");

    // Call 3 is held (8 s) while the operator looks.
    let caller3 = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite(server.udp, &caller3, 3);
    pushes.recv_timeout(Duration::from_secs(5)).expect("a third push");

    // With the right one: searches "dev", opens the audit of call 1.
    let shot = artifacts().join("admin.png");
    let _ = std::fs::remove_file(&shot);
    let v = run_page(
        json!({
            "url": admin_url, "token": TOKEN, "aor": "dev", "callId": "push-call-1",
            "screenshot": shot.display().to_string(),
            "waitFor": { "bindings": 1, "pushes": 3, "callEvents": 5, "flagged": 1, "parked": 1 }
        }),
        &server,
    );
    let dump = format!("{v:#}\nserver log:\n{}", server.log());
    assert_eq!(v["signedIn"], true, "{dump}");
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(0), "page errors: {dump}");
    // Live counters.
    assert_eq!(v["counters"]["bindings"], "2", "{dump}");
    assert_eq!(v["counters"]["push_bindings"], "1", "{dump}");
    assert_eq!(v["counters"]["pushes_sent"], "3", "{dump}");
    assert_eq!(v["counters"]["parked_requests"], "1", "{dump}");
    assert_eq!(v["counters"]["flagged_devices"], "1", "{dump}");
    // The search found the push phone (not the plain one), with its push state.
    let b = v["bindings"].as_array().unwrap();
    assert_eq!(b.len(), 1, "{dump}");
    assert!(b[0]["aor"].as_str().is_some_and(|a| a.contains("dev@127.0.0.1")), "{dump}");
    assert!(b[0]["provider"].as_str().is_some_and(|p| p.contains("apns")), "{dump}");
    let state = b[0]["push"].as_str().unwrap_or_default();
    assert!(state.contains("refresh in") && state.contains("last push"), "push state: {state}\n{dump}");
    // Recent pushes: both calls, delivered (outcome ok) with a latency.
    for cid in ["push-call-1", "push-call-2"] {
        let p = rows_with(&v, "pushes", "callId", cid);
        assert_eq!(p.len(), 1, "{cid}: {dump}");
        assert_eq!(p[0]["outcome"], "ok", "{dump}");
        assert!(p[0]["latency"].as_str().is_some_and(|l| l.contains("ms") || l.contains(" s")), "{dump}");
        assert!(p[0]["aor"].as_str().is_some_and(|a| a.contains("dev@127.0.0.1")), "{dump}");
    }
    // The audit of call 1, in order: held, pushed, woken, forked, answered 486.
    let events: Vec<&str> = v["callEvents"].as_array().unwrap().iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(events, ["parked", "push", "woken", "forked", "answered"], "{dump}");
    let last = v["callEvents"].as_array().unwrap().last().unwrap();
    assert!(last.to_string().contains("486"), "{dump}");
    // The device that let call 2's push go unanswered.
    let f = rows_with(&v, "flagged", "aor", "dev@127.0.0.1");
    assert_eq!(f.len(), 1, "{dump}");
    assert!(f[0]["reason"].as_str().is_some_and(|r| r.contains("call-unanswered")), "{dump}");
    // Call 3, held now, waiting for the device.
    let parked = rows_with(&v, "parked", "callId", "push-call-3");
    assert_eq!(parked.len(), 1, "{dump}");
    assert!(parked[0]["method"].as_str().is_some_and(|m| m.contains("INVITE")), "{dump}");
    assert!(parked[0]["bindings"].as_str().is_some_and(|b| b.contains("1 waiting")), "{dump}");
    // The screenshot, kept.
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "screenshot {} is {size} bytes", shot.display());
    eprintln!("admin page screenshot: {}", shot.display());
}
