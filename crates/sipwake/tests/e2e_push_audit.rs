//! The push audit through the real binary, as an operator uses it after a
//! user says "my phone did not ring": `GET /api/v1/push/calls/{call_id}`
//! and `sipwake ctl call` tell the story of a call (held, the push with
//! its outcome and latency, the wake-up REGISTER or none, the fork or the
//! 480), `ctl pushes` and `ctl aor` the recent pushes and a binding's last
//! push, `ctl parked` what is held now; a device whose delivered call push
//! got no REGISTER is flagged (WARN line, metric, `ctl flagged`).
//! The push service is the local webhook receiver of `common::webhook`.

mod common;

use common::phone::Phone;
use common::webhook::{answer, config, final_response, invite, push_contact, webhook};
use common::*;
use std::net::UdpSocket;
use std::time::Duration;

fn ctl(server: &Server, args: &[&str]) -> (bool, String) {
    let url = format!("http://{}", server.mgmt);
    let mut all: Vec<&std::ffi::OsStr> = vec!["ctl".as_ref()];
    all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
    all.extend(["--url".as_ref(), std::ffi::OsStr::new(&url)]);
    let out = sipwake_cli(&all, "");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn events(server: &Server, call_id: &str) -> Vec<serde_json::Value> {
    let (status, body) = server.api("GET", &format!("/api/v1/push/calls/{call_id}"));
    assert_eq!(status, 200, "{body}\n{}", server.log());
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["events"].as_array().unwrap().clone()
}

fn kinds(events: &[serde_json::Value]) -> Vec<&str> {
    events.iter().map(|e| e["event"].as_str().unwrap_or("?")).collect()
}

#[test]
fn the_story_of_a_woken_call_by_call_id() {
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let contact = push_contact(&dev, "TOKEN-A");
    assert_eq!(status_of(dev.register(&[&contact], &["Expires: 600"]).as_bytes()), 200);
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite(server.udp, &caller, 1);
    pushes.recv_timeout(Duration::from_secs(5)).expect("a push");
    // While it is held: `ctl parked` shows it.
    let (ok, text) = ctl(&server, &["parked"]);
    assert!(ok && text.contains("push-call-1") && text.contains("INVITE") && text.contains("(1 parked)"), "{text}");
    // The app wakes 300 ms later and registers; it gets the INVITE and answers 486.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(status_of(dev.register(&[&contact], &["Expires: 600"]).as_bytes()), 200);
    let (inv, from) = dev.next_request(Duration::from_secs(5)).expect("the INVITE after wake-up");
    answer(&dev, &inv, from, "486 Busy Here", "");
    let f = final_response(&caller, Duration::from_secs(5)).expect("a final answer");
    assert_eq!(status_of(f.as_bytes()), 486, "{f}");

    let ev = events(&server, "push-call-1");
    assert_eq!(kinds(&ev), ["parked", "push", "woken", "forked", "answered"], "{ev:#?}");
    let push = &ev[1];
    assert_eq!((push["reason"].as_str(), push["provider"].as_str()), (Some("call"), Some("apns")), "{push}");
    assert_eq!((push["outcome"].as_str(), push["attempt"].as_u64()), (Some("ok"), Some(1)), "{push}");
    assert!(push["latency_ms"].as_u64().is_some_and(|l| l < 2000), "{push}");
    assert_eq!(push["aor"], "dev@127.0.0.1");
    let woke = ev[2]["after_push_ms"].as_u64().unwrap();
    assert!((250..5000).contains(&woke), "{woke}");
    assert_eq!((ev[4]["code"].as_u64(), ev[4]["outcome"].as_str()), (Some(486), Some("answered")));
    // The same through ctl, as a table.
    let (ok, text) = ctl(&server, &["call", "push-call-1"]);
    assert!(ok, "{text}");
    for want in
        ["push audit of Call-ID push-call-1", "parked", "call INVITE via apns, attempt 1: ok", "wake-up REGISTER"]
    {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    assert!(text.contains("final answer 486 (answered)"), "{text}");
    // Recent pushes, and the binding's last push in `ctl aor`.
    let (ok, text) = ctl(&server, &["pushes"]);
    assert!(
        ok && text.contains("push-call-1") && text.contains("dev@127.0.0.1") && text.contains("(1 pushes)"),
        "{text}"
    );
    let (ok, text) = ctl(&server, &["aor", "dev@127.0.0.1"]);
    assert!(ok && text.contains("last push: call INVITE via apns, attempt 1: ok"), "{text}");
    let b = server.bindings("dev@127.0.0.1");
    assert_eq!(b[0]["last_push"]["call_id"], "push-call-1", "{}", b[0]);
    let id = b[0]["id"].as_str().unwrap();
    let (ok, text) = ctl(&server, &["pushes", "--binding", id]);
    assert!(ok && text.contains("wake-up REGISTER"), "{text}");
    // A Call-ID with no story: exit 1, said in one line.
    let (ok, text) = ctl(&server, &["call", "no-such-call"]);
    assert!(!ok && text.contains("no push audit for Call-ID no-such-call"), "{text}");
    let (status, _) = server.api("GET", "/api/v1/push/calls/no-such-call");
    assert_eq!(status, 404);
}

#[test]
fn a_call_push_the_device_never_answers_ends_in_480_and_flags_it() {
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "invite_hold_secs = 2")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    assert_eq!(status_of(dev.register(&[&push_contact(&dev, "T1")], &["Expires: 600"]).as_bytes()), 200);
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite(server.udp, &caller, 7);
    pushes.recv_timeout(Duration::from_secs(5)).expect("a push");
    let f = final_response(&caller, Duration::from_secs(6)).expect("an answer");
    assert_eq!(status_of(f.as_bytes()), 480, "{f}");

    let ev = events(&server, "push-call-7");
    assert_eq!(kinds(&ev), ["parked", "push", "not-woken", "answered"], "{ev:#?}");
    assert_eq!((ev[3]["code"].as_u64(), ev[3]["outcome"].as_str()), (Some(480), Some("timed-out-480")));
    let (ok, text) = ctl(&server, &["call", "push-call-7"]);
    assert!(ok && text.contains("no REGISTER before the hold ended") && text.contains("final answer 480"), "{text}");
    // Flagged while still registered: WARN line with the AoR, metric, ctl.
    let log = server.log();
    let line = log.lines().find(|l| l.contains("push device not answering")).unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("WARN") && line.contains("aor=dev@127.0.0.1") && line.contains("reason=call-unanswered"),
        "{line}"
    );
    let (_, m) = server.api("GET", "/metrics");
    assert!(m.contains("sipwake_push_unanswered_total{provider=\"apns\",reason=\"call-unanswered\"} 1"), "{m}");
    assert!(m.contains("sipwake_push_unanswered_total{provider=\"apns\",reason=\"refresh-unanswered\"} 0"), "{m}");
    let (ok, text) = ctl(&server, &["flagged"]);
    assert!(
        ok && text.contains("dev@127.0.0.1") && text.contains("call-unanswered") && text.contains("(1 flagged)"),
        "{text}"
    );
    let (_, body) = server.api("GET", "/api/v1/stats");
    let s: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((s["pushes_sent"].as_u64(), s["flagged_devices"].as_u64()), (Some(1), Some(1)), "{s}");
    assert!(!server.bindings("dev@127.0.0.1").is_empty(), "still registered");
}
