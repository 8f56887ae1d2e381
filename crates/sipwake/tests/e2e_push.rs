//! End-to-end tests of RFC 8599 push wake-up in registrar mode: the real
//! binary, a scripted sleeping phone, a caller, and a local webhook
//! receiver that plays the push service: on each push it records it and,
//! as a phone's OS would, wakes the phone, which re-REGISTERs.

mod common;

use common::phone::{Phone, header_of};
use common::webhook::{INSTANCE, answer, config, final_response, invite, push_contact, webhook};
use common::*;
use std::net::UdpSocket;
use std::time::Duration;

#[test]
fn call_to_a_sleeping_device_is_delivered_after_wake_up() {
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let contact = push_contact(&dev, "TOKEN-A");
    let r = dev.register(&[&contact], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    assert_eq!(header_of(&r, "Feature-Caps"), Some("*;+sip.pns=\"apns\""), "{r}");
    // The management API shows the binding's push state (sipwake ctl aor --json).
    let b = server.bindings("dev@127.0.0.1");
    assert_eq!(b[0]["push_capable"], true);
    let next = b[0]["push_state"]["next_refresh_in_ms"].as_u64().expect("a refresh scheduled");
    assert!(next > 470_000 && next <= 480_000, "refresh at expiry - 120 s: {next}");
    // The caller's INVITE: 100 Trying, and a push to the device.
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite(server.udp, &caller, 1);
    let push = pushes.recv_timeout(Duration::from_secs(5)).expect("a push");
    assert_eq!(push["provider"], "apns");
    assert_eq!(push["prid"], "TOKEN-A");
    assert_eq!(push["param"], "TEAM1.com.example.voip");
    assert_eq!(push["reason"], "ini-INVITE");
    assert_eq!(push["call_id"], "push-call-1");
    assert_eq!(push["aor"], "dev@127.0.0.1");
    assert!(push["binding"].is_string() && push["attempt"].is_u64() && push["deadline_unix_ms"].is_u64(), "{push}");
    // Nothing reached the sleeping device yet.
    let dsock = dev.udp_socket();
    dsock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = vec![0u8; 65_536];
    assert!(dsock.recv_from(&mut buf).is_err(), "the INVITE went to a sleeping device");
    // The OS wakes the app: it re-REGISTERs (same instance, new PRID), then gets the INVITE.
    let contact2 = push_contact(&dev, "TOKEN-B");
    let r = dev.register(&[&contact2], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let (inv, from) = dev.next_request(Duration::from_secs(5)).expect("the INVITE after wake-up");
    assert!(inv.starts_with(&format!("INVITE sip:dev@{} SIP/2.0", dev.local())), "pn-* must be stripped: {inv}");
    assert!(!inv.lines().next().unwrap().contains("pn-"), "{inv}");
    // The device answers busy; the caller gets it. Like real apps, it puts
    // its registered Contact (push coordinates included) in its answer.
    let answer_contact = format!(
        "Contact: <sip:dev@{};pn-provider=apns;pn-prid=TOKEN-B;pn-param=TEAM1.com.example.voip;pn-purr=p1>\r\n",
        dev.local()
    );
    answer(&dev, &inv, from, "486 Busy Here", &answer_contact);
    let f = final_response(&caller, Duration::from_secs(5)).expect("a final answer");
    assert_eq!(status_of(f.as_bytes()), 486, "{f}");
    // R65: the push token never reaches the caller; pn-purr stays for the dialog.
    assert!(!f.contains("pn-prid") && !f.contains("pn-provider") && !f.contains("pn-param"), "{f}");
    assert!(f.contains("pn-purr=p1"), "{f}");
    // The proxy's ACK for the 486 reaches the device.
    let (ack, _) = dev.next_request(Duration::from_secs(3)).expect("the ACK for the 486");
    assert!(ack.starts_with("ACK "), "{ack}");
    // Exactly one INVITE reached the device (no duplicate per REGISTER).
    let r = dev.register(&[&contact2], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200);
    while let Some((t, _)) = dev.next_request(Duration::from_millis(500)) {
        assert!(!t.starts_with("INVITE"), "a second INVITE: {t}");
    }
    let (_, m) = server.api("GET", "/metrics");
    assert!(m.contains("sipwake_pushes_total{provider=\"apns\",reason=\"ini-INVITE\",result=\"ok\"} 1"), "{m}");
    // (Every family is there from start-up: the wake itself is counted.)
    assert!(m.contains("sipwake_push_wake_latency_seconds_count 1"), "{m}");
    assert!(m.contains("sipwake_push_parked_requests 0"), "{m}");
}

#[test]
fn device_never_wakes_480_and_push_failure_480_at_once() {
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "invite_hold_secs = 2")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    assert_eq!(status_of(dev.register(&[&push_contact(&dev, "T1")], &["Expires: 600"]).as_bytes()), 200);
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t0 = std::time::Instant::now();
    invite(server.udp, &caller, 2);
    pushes.recv_timeout(Duration::from_secs(5)).expect("a push");
    let f = final_response(&caller, Duration::from_secs(6)).expect("an answer");
    assert_eq!(status_of(f.as_bytes()), 480, "{f}");
    assert!(t0.elapsed() >= Duration::from_millis(1900), "480 before the hold time");

    // A push service that fails: 480 at once.
    let (url, _pushes) = webhook(500);
    let server = Server::start_with(&[], Some(&config(&url, "invite_hold_secs = 20")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    assert_eq!(status_of(dev.register(&[&push_contact(&dev, "T2")], &["Expires: 600"]).as_bytes()), 200);
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t0 = std::time::Instant::now();
    invite(server.udp, &caller, 3);
    let f = final_response(&caller, Duration::from_secs(10)).expect("an answer");
    assert_eq!(status_of(f.as_bytes()), 480, "{f}");
    assert!(t0.elapsed() < Duration::from_secs(5), "not at once: {:?}", t0.elapsed());
}

#[test]
fn cancel_while_parked_delivers_nothing_later() {
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    assert_eq!(status_of(dev.register(&[&push_contact(&dev, "T3")], &["Expires: 600"]).as_bytes()), 200);
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = caller.local_addr().unwrap();
    invite(server.udp, &caller, 4);
    pushes.recv_timeout(Duration::from_secs(5)).expect("a push");
    let cancel = format!(
        "CANCEL sip:dev@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-push-4\r\nFrom: <sip:caller@other.example>;tag=c4\r\nTo: <sip:dev@127.0.0.1>\r\nCall-ID: push-call-4\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    caller.send_to(cancel.as_bytes(), server.udp).unwrap();
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
    // The device wakes later: it gets nothing.
    assert_eq!(status_of(dev.register(&[&push_contact(&dev, "T3")], &["Expires: 600"]).as_bytes()), 200);
    while let Some((t, _)) = dev.next_request(Duration::from_millis(500)) {
        assert!(!t.starts_with("INVITE"), "INVITE delivered after CANCEL");
    }
}

#[test]
fn plain_and_push_devices_of_one_aor() {
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "")));
    let mut sleeper = Phone::udp(server.udp, "dev", "127.0.0.1");
    assert_eq!(status_of(sleeper.register(&[&push_contact(&sleeper, "T4")], &["Expires: 600"]).as_bytes()), 200);
    let mut desk = Phone::udp(server.udp, "dev", "127.0.0.1");
    let r = desk.register(&[&format!("<sip:dev@{}>", desk.local())], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200);
    assert!(header_of(&r, "Feature-Caps").is_none(), "a plain binding gets no push indicator: {r}");
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite(server.udp, &caller, 5);
    // The plain device gets the INVITE at once; the push device is pushed.
    let dsock = desk.udp_socket();
    dsock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = vec![0u8; 65_536];
    let (n, _) = dsock.recv_from(&mut buf).expect("INVITE to the plain device");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("INVITE"));
    let push = pushes.recv_timeout(Duration::from_secs(5)).expect("a push for the sleeping one");
    assert_eq!(push["prid"], "T4");
}

#[test]
fn unsupported_provider_and_too_short_expiry() {
    let (url, _) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "reply_555 = true\nvapid_public_key = \"BPubKey-x_1\"")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let c = format!("<sip:dev@{};pn-provider=acme;pn-prid=x;pn-param=y>", dev.local());
    let r = dev.register(&[&c], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 555, "{r}");
    let r = dev.register(&[&push_contact(&dev, "T5")], &["Expires: 100"]);
    assert_eq!(status_of(r.as_bytes()), 423, "{r}");
    assert!(header_of(&r, "Min-Expires").is_some(), "{r}");
    // A query REGISTER (pn-provider without pn-prid) lists what is supported.
    let q = format!("<sip:dev@{};pn-provider=>", dev.local());
    let r = dev.register(&[&q], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let caps: Vec<&str> = r.lines().filter_map(|l| l.strip_prefix("Feature-Caps: ")).collect();
    assert_eq!(
        caps,
        vec!["*;+sip.pns=\"apns\"", "*;+sip.pns=\"fcm\"", "*;+sip.pns=\"webpush\";+sip.vapid=\"BPubKey-x_1\""],
        "{r}"
    );
}

#[test]
fn mid_dialog_bye_with_pn_purr_wakes_the_device_and_forged_purr_does_not() {
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "purr = true")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let r = dev.register(&[&push_contact(&dev, "T6")], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let caps = header_of(&r, "Feature-Caps").expect("Feature-Caps").to_string();
    let purr = caps.split("+sip.pnspurr=\"").nth(1).and_then(|s| s.split('"').next()).expect("a PURR").to_string();
    assert!(caps.starts_with("*;+sip.pns=\"apns\";"), "{caps}");
    assert!(purr.len() >= 22 && purr.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{purr}");
    // A peer sends a BYE in a dialog with the device, to its Contact with the PURR.
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = peer.local_addr().unwrap();
    let dev_addr = dev.local();
    let bye = |p: &str, n: u32| {
        format!(
            "BYE sip:dev@{d};pn-purr={p} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-purr-{n}\r\nFrom: <sip:peer@other.example>;tag=p{n}\r\nTo: <sip:dev@127.0.0.1>;tag=d{n}\r\nCall-ID: purr-{n}\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            d = dev_addr
        )
    };
    peer.send_to(bye(&purr, 1).as_bytes(), server.udp).unwrap();
    let push = pushes.recv_timeout(Duration::from_secs(5)).expect("a push for the mid-dialog BYE");
    assert_eq!(push["reason"], "mid-BYE");
    assert_eq!(push["prid"], "T6");
    // The device wakes and registers; the BYE follows.
    let r = dev.register(&[&push_contact(&dev, "T6")], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}\n{}", server.log());
    let (got, _) = dev.next_request(Duration::from_secs(5)).expect("the BYE after wake-up");
    assert!(got.starts_with("BYE "), "{got}");
    assert!(!got.lines().next().unwrap().contains("pn-purr"), "{got}");
    // A forged PURR never causes a push: the BYE is routed by its Request-URI.
    peer.send_to(bye("AAAAAAAAAAAAAAAAAAAAAA", 2).as_bytes(), server.udp).unwrap();
    // (Retransmissions of the first BYE, which the device did not answer, may come first.)
    loop {
        let (t, _) = dev.next_request(Duration::from_secs(5)).expect("the BYE routed normally");
        if t.contains("Call-ID: purr-2") {
            break;
        }
    }
    assert!(pushes.recv_timeout(Duration::from_millis(500)).is_err(), "a forged PURR caused a push");
}

#[test]
fn message_to_a_sleeping_device() {
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    assert_eq!(status_of(dev.register(&[&push_contact(&dev, "T7")], &["Expires: 600"]).as_bytes()), 200);
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sender.local_addr().unwrap();
    let msg = format!(
        "MESSAGE sip:dev@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-pm-1\r\nFrom: <sip:s@other.example>;tag=s1\r\nTo: <sip:dev@127.0.0.1>\r\nCall-ID: pm-1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
    );
    sender.send_to(msg.as_bytes(), server.udp).unwrap();
    let push = pushes.recv_timeout(Duration::from_secs(5)).expect("a push");
    assert_eq!(push["reason"], "ini-MESSAGE");
    assert_eq!(status_of(dev.register(&[&push_contact(&dev, "T7")], &["Expires: 600"]).as_bytes()), 200);
    let (got, from) = dev.next_request(Duration::from_secs(5)).expect("the MESSAGE after wake-up");
    let dsock = dev.udp_socket();
    assert!(got.starts_with("MESSAGE ") && got.ends_with("hello"), "{got}");
    // The device answers 200; the sender gets it.
    let hdrs: Vec<&str> = got.split("\r\n").take_while(|l| !l.is_empty()).collect();
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for h in &hdrs[1..] {
        if h.starts_with("Via:")
            || h.starts_with("From:")
            || h.starts_with("Call-ID:")
            || h.starts_with("CSeq:")
            || h.starts_with("To:")
        {
            ok += h;
            ok += "\r\n";
        }
    }
    ok += "Content-Length: 0\r\n\r\n";
    dsock.send_to(ok.as_bytes(), from).unwrap();
    let f = final_response(&sender, Duration::from_secs(5)).expect("an answer");
    assert_eq!(status_of(f.as_bytes()), 200, "{f}");
}

#[test]
fn de_registration_stops_pushes() {
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    assert_eq!(status_of(dev.register(&[&push_contact(&dev, "T8")], &["Expires: 600"]).as_bytes()), 200);
    // RFC 8599 §4.1.2: the removal REGISTER has no pn-prid.
    let c = format!("<sip:dev@{};pn-provider=apns>;{INSTANCE};expires=0", dev.local());
    let r = dev.register(&[&c], &[]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    assert!(server.bindings("dev@127.0.0.1").is_empty(), "{r}");
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite(server.udp, &caller, 9);
    let f = final_response(&caller, Duration::from_secs(3)).expect("an answer");
    assert!(matches!(status_of(f.as_bytes()), 404 | 480), "{f}");
    assert!(pushes.recv_timeout(Duration::from_millis(500)).is_err(), "a push after de-registration");
}

#[test]
fn refresh_push_before_expiry_with_retries_and_none_after_refresh() {
    // Expires 127 with the 120 s lead: the refresh push is due after ~7 s;
    // retries at expiry-113 s and expiry-108 s (every ~5 s) while the device
    // does not refresh; after its REGISTER the schedule moves to the new expiry.
    let (url, pushes) = webhook(200);
    let extra = "min_push_expires = 121\nrefresh_retries_secs = [113, 108]";
    let server = Server::start_with(&[], Some(&config(&url, extra)));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let t0 = std::time::Instant::now();
    assert_eq!(status_of(dev.register(&[&push_contact(&dev, "R1")], &["Expires: 127"]).as_bytes()), 200);
    let first = pushes.recv_timeout(Duration::from_secs(15)).expect("a refresh push");
    let at = t0.elapsed();
    assert_eq!(first["reason"], "reg-refresh");
    assert_eq!(first["prid"], "R1");
    assert_eq!(first["attempt"], 1);
    assert!(at >= Duration::from_secs(5) && at < Duration::from_secs(12), "first refresh push at {at:?}");
    let retry = pushes.recv_timeout(Duration::from_secs(12)).expect("a retry: the device did not refresh");
    assert_eq!(retry["reason"], "reg-refresh");
    assert_eq!(retry["attempt"], 2);
    // The device refreshes (for 600 s): no more pushes for a long while.
    assert_eq!(status_of(dev.register(&[&push_contact(&dev, "R1")], &["Expires: 600"]).as_bytes()), 200);
    while let Ok(p) = pushes.recv_timeout(Duration::from_millis(200)) {
        // (a retry already in flight when the REGISTER arrived)
        assert_eq!(p["attempt"], 3, "{p}");
    }
    assert!(pushes.recv_timeout(Duration::from_secs(6)).is_err(), "push after the refresh");
}

#[test]
fn refresh_schedule_survives_a_restart() {
    let (url, pushes) = webhook(200);
    let extra = "min_push_expires = 121\nrefresh_retries_secs = []";
    let cfg = config(&url, extra);
    let server = Server::start_with(&[], Some(&cfg));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    assert_eq!(status_of(dev.register(&[&push_contact(&dev, "S1")], &["Expires: 130"]).as_bytes()), 200);
    // kill -9 before the refresh push is due (at ~10 s), then start again on the same data.
    let dir = server.kill9();
    let t0 = std::time::Instant::now();
    let server = Server::start_in(dir, &[], Some(&cfg));
    let Ok(p) = pushes.recv_timeout(Duration::from_secs(20)) else {
        panic!("no refresh push after the restart\n{}", server.log())
    };
    assert_eq!(p["reason"], "reg-refresh");
    assert_eq!(p["prid"], "S1");
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
}

#[test]
fn ctl_shows_push_state_and_sends_a_test_push() {
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    assert_eq!(status_of(dev.register(&[&push_contact(&dev, "C1")], &["Expires: 600"]).as_bytes()), 200);
    let id = server.bindings("dev@127.0.0.1")[0]["id"].as_str().unwrap().to_string();
    let ctl = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sipwake"))
            .args(["ctl", "--url", &format!("http://{}", server.mgmt)])
            .args(args)
            .output()
            .unwrap()
    };
    let out = ctl(&["--json", "aor", "dev@127.0.0.1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"next_refresh_in_ms\"") && text.contains("\"consecutive_failures\":0"), "{text}");
    let out = ctl(&["push", "dev@127.0.0.1", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "test push: ok");
    let p = pushes.recv_timeout(Duration::from_secs(3)).expect("the test push");
    assert_eq!(p["reason"], "test");
    assert_eq!(p["prid"], "C1");
    assert_eq!(p["aor"], "dev@127.0.0.1");
}

#[test]
fn a_failed_wake_up_register_ends_the_wait_but_a_challenge_does_not() {
    // R36-R38: the woken device's REGISTER is refused (here 423: too short for
    // a push binding): the parked INVITE gets 480 at once, not after the hold.
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "invite_hold_secs = 20")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    assert_eq!(status_of(dev.register(&[&push_contact(&dev, "F1")], &["Expires: 600"]).as_bytes()), 200);
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t0 = std::time::Instant::now();
    invite(server.udp, &caller, 11);
    pushes.recv_timeout(Duration::from_secs(5)).expect("a push");
    let r = dev.register(&[&push_contact(&dev, "F1")], &["Expires: 100"]);
    assert_eq!(status_of(r.as_bytes()), 423, "{r}");
    let Some(f) = final_response(&caller, Duration::from_secs(10)) else { panic!("no answer\n{}", server.log()) };
    assert!(matches!(status_of(f.as_bytes()), 404 | 480), "{f}");
    assert!(t0.elapsed() < Duration::from_secs(5), "the wait did not end at once: {:?}", t0.elapsed());
}

#[test]
fn a_binding_whose_pushes_an_upstream_proxy_handles_is_never_pushed() {
    // R13: the REGISTER already carries +sip.pns for its provider (a proxy
    // nearer the phone handles pushes): a normal binding, no Feature-Caps of
    // ours, and requests go straight to it.
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let r = dev.register(&[&push_contact(&dev, "U1")], &["Expires: 600", "Feature-Caps: *;+sip.pns=\"apns\""]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    assert!(header_of(&r, "Feature-Caps").is_none(), "{r}");
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite(server.udp, &caller, 12);
    let (got, _) = dev.next_request(Duration::from_secs(3)).expect("the INVITE, without a push");
    assert!(got.starts_with("INVITE "), "{got}");
    assert!(pushes.recv_timeout(Duration::from_millis(300)).is_err(), "pushed although an upstream proxy handles it");
}

/// A phone that silently drops off: its app ignores the refresh push and
/// never re-registers. When its registration expires the operator sees it
/// flagged (WARN line with the AoR, metric, `ctl flagged`) before the user
/// notices missed calls. (Takes the shortest push registration: about 2 min.)
#[test]
fn a_device_that_ignores_its_refresh_push_is_flagged_when_it_expires() {
    let (url, pushes) = webhook(200);
    let server = Server::start_with(
        &[],
        Some(&config(&url, "min_push_expires = 121\nrefresh_lead_secs = 120\nrefresh_retries_secs = []\n")),
    );
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let r = dev.register(&[&push_contact(&dev, "TOKEN-F")], &["Expires: 125"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let push = pushes.recv_timeout(Duration::from_secs(15)).expect("a refresh push 120 s before expiry");
    assert_eq!(push["reason"], "reg-refresh");
    // The app ignores it; the binding expires at 125 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(140);
    while !server.log().contains("push device dropped off") {
        assert!(std::time::Instant::now() < deadline, "not flagged:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = server.log();
    let line = log.lines().find(|l| l.contains("push device dropped off")).unwrap();
    assert!(line.contains("WARN") && line.contains("aor=dev@127.0.0.1") && line.contains("provider=apns"), "{line}");
    assert!(line.contains("refresh_pushes=1"), "{line}");
    let (_, metrics) = server.api("GET", "/metrics");
    assert!(metrics.contains("sipwake_push_refresh_missed_total{provider=\"apns\"} 1"), "{metrics}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipwake"))
        .args(["ctl", "flagged", "--url", &format!("http://{}", server.mgmt)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("dev@127.0.0.1") && text.contains("apns") && text.contains("(1 flagged)"), "{text}");
}
