//! End-to-end conformance tests (RFC 8599 push wake-up, RFC 3261/5626
//! registrar rules) against the real binary: a scripted phone, a peer, and a
//! local webhook receiver playing the push service (as in e2e_push.rs).

mod common;

use common::phone::{Phone, header_of};
use common::webhook::{INSTANCE, config, final_response, invite, push_contact, webhook};
use common::*;
use std::net::UdpSocket;
use std::time::Duration;

const NO_AUTH: &str = "[auth]\nenabled = false\n";
/// The PURR of a REGISTER 200's Feature-Caps (`+sip.pnspurr="..."`).
fn purr_of(resp: &str) -> String {
    let caps = header_of(resp, "Feature-Caps").unwrap_or_else(|| panic!("no Feature-Caps: {resp}"));
    caps.split("+sip.pnspurr=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no +sip.pnspurr in {caps}"))
        .to_string()
}

/// Waits for the next request with `method` (skipping retransmissions of others).
fn next_of(dev: &mut Phone, method: &str, call_id: &str, wait: Duration) -> Option<String> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        let (t, _) = dev.next_request(left)?;
        if t.starts_with(&format!("{method} ")) && t.contains(&format!("Call-ID: {call_id}\r\n")) {
            return Some(t);
        }
    }
}

#[test]
fn r51_retransmitted_register_gets_the_same_feature_caps() {
    let (url, _pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "purr = true")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let contact = push_contact(&dev, "R51");
    let msg = dev.build(&[&contact], &["Expires: 600"], None);
    let r1 = dev.exchange(&msg);
    // The very same bytes again (same Call-ID, CSeq, Via branch): a retransmission.
    let r2 = dev.exchange(&msg);
    assert_eq!(status_of(r1.as_bytes()), 200, "{r1}");
    assert_eq!(status_of(r2.as_bytes()), 200, "{r2}");
    let c1 = header_of(&r1, "Feature-Caps").unwrap_or_else(|| panic!("first: no Feature-Caps: {r1}"));
    let c2 = header_of(&r2, "Feature-Caps").unwrap_or_else(|| panic!("retransmission: no Feature-Caps: {r2}"));
    assert!(c1.contains("+sip.pnspurr=\""), "{c1}");
    assert_eq!(c1, c2, "a retransmitted REGISTER got another PURR\n{r1}\n{r2}");
    assert_eq!(server.bindings("dev@127.0.0.1").len(), 1);
}

#[test]
fn r54_purr_in_top_route_wakes_the_device() {
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "purr = true")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let r = dev.register(&[&push_contact(&dev, "R54")], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let purr = purr_of(&r);
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = peer.local_addr().unwrap();
    // The Request-URI has no pn-purr; the topmost Route (the proxy's
    // Record-Route as the device's peer saw it) carries it.
    let bye = format!(
        "BYE sip:dev@{d} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-r54-1\r\nRoute: <sip:{s};lr;pn-purr={purr}>\r\nFrom: <sip:peer@other.example>;tag=p54\r\nTo: <sip:dev@127.0.0.1>;tag=d54\r\nCall-ID: r54-1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        d = dev.local(),
        s = server.udp
    );
    peer.send_to(bye.as_bytes(), server.udp).unwrap();
    let Ok(push) = pushes.recv_timeout(Duration::from_secs(5)) else {
        panic!("no push for a PURR in the top Route\n{}", server.log())
    };
    assert_eq!(push["prid"], "R54", "{push}");
    assert_eq!(push["reason"], "mid-BYE", "{push}");
    let r = dev.register(&[&push_contact(&dev, "R54")], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let got = next_of(&mut dev, "BYE", "r54-1", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("the BYE after wake-up\n{}", server.log()));
    assert!(!got.lines().next().unwrap().contains("pn-purr"), "{got}");
}

#[test]
fn r58_r59_invite_with_replaces_to_the_contact_uri_wakes_the_device() {
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "purr = true")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let contact = |p: &Phone| {
        format!(
            "<sip:devcontact@{};pn-provider=apns;pn-prid=R58;pn-param=TEAM1.com.example.voip>;{INSTANCE}",
            p.local()
        )
    };
    let r = dev.register(&[&contact(&dev)], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let purr = purr_of(&r);
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = caller.local_addr().unwrap();
    let inv = format!(
        "INVITE sip:devcontact@{d};pn-purr={purr} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-r58-1\r\nFrom: <sip:caller@other.example>;tag=c58\r\nTo: <sip:dev@127.0.0.1>\r\nCall-ID: r58-1\r\nCSeq: 1 INVITE\r\nReplaces: x;to-tag=a;from-tag=b\r\nContact: <sip:caller@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        d = dev.local()
    );
    caller.send_to(inv.as_bytes(), server.udp).unwrap();
    let Ok(push) = pushes.recv_timeout(Duration::from_secs(5)) else {
        let early = final_response(&caller, Duration::from_millis(500));
        panic!("no push for INVITE/Replaces to the Contact URI; caller got {early:?}\n{}", server.log())
    };
    assert_eq!(push["prid"], "R58", "{push}");
    let r = dev.register(&[&contact(&dev)], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let got = next_of(&mut dev, "INVITE", "r58-1", Duration::from_secs(5)).unwrap_or_else(|| {
        let f = final_response(&caller, Duration::from_millis(500));
        panic!("the INVITE never reached the device; caller got {f:?}\n{}", server.log())
    });
    assert!(got.starts_with(&format!("INVITE sip:devcontact@{}", dev.local())), "{got}");
    assert!(got.contains("Replaces: x;to-tag=a;from-tag=b"), "{got}");
}

#[test]
fn r4_push_device_without_instance_re_registers_from_a_new_port() {
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let contact =
        |p: &Phone| format!("<sip:dev@{};pn-provider=apns;pn-prid=R4TOKEN;pn-param=TEAM1.com.example.voip>", p.local());
    let r = dev.register(&[&contact(&dev)], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    assert_eq!(server.bindings("dev@127.0.0.1").len(), 1);
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite(server.udp, &caller, 4);
    let push = pushes.recv_timeout(Duration::from_secs(5)).expect("a push");
    assert_eq!(push["prid"], "R4TOKEN");
    // Woken, the app re-REGISTERs from a new socket: same Call-ID, CSeq+1, same pn-*.
    let mut woke = Phone::udp(server.udp, "dev", "127.0.0.1");
    woke.call_id = dev.call_id.clone();
    woke.cseq = dev.cseq;
    assert_ne!(woke.local(), dev.local());
    let r = woke.register(&[&contact(&woke)], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let b = server.bindings("dev@127.0.0.1");
    assert_eq!(b.len(), 1, "R4: the same push device got two bindings: {b:#?}");
    let got = next_of(&mut woke, "INVITE", "push-call-4", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("the parked INVITE did not reach the new socket\n{}", server.log()));
    assert!(got.starts_with(&format!("INVITE sip:dev@{}", woke.local())), "{got}");
}

#[test]
fn rfc5626_two_contacts_one_with_reg_id_is_400() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    let mut dev = Phone::udp(server.udp, "ob", "127.0.0.1");
    let a = format!("<sip:ob@{}>;reg-id=1;{INSTANCE}", dev.local());
    let b = format!("<sip:ob2@{}>", dev.local());
    let r = dev.register(&[&a, &b], &["Expires: 600", "Supported: outbound"]);
    assert_eq!(status_of(r.as_bytes()), 400, "{r}");
    eprintln!("5626 answer: {}", r.lines().next().unwrap());
    assert!(server.bindings("ob@127.0.0.1").is_empty());
    // Control: the reg-id Contact alone is accepted, so the 400 was for the pair.
    let r = dev.register(&[&a], &["Expires: 600", "Supported: outbound"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    assert_eq!(server.bindings("ob@127.0.0.1").len(), 1);
}

#[test]
fn malformed_expires_is_400() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    let mut dev = Phone::udp(server.udp, "bad", "127.0.0.1");
    let c = format!("<sip:bad@{}>", dev.local());
    let r = dev.register(&[&c], &["Expires: 600aaaa"]);
    assert_eq!(status_of(r.as_bytes()), 400, "{r}");
    eprintln!("Expires answer: {}", r.lines().next().unwrap());
    assert!(server.bindings("bad@127.0.0.1").is_empty());
    // Control: the same REGISTER with a well-formed Expires is accepted.
    let r = dev.register(&[&c], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    assert_eq!(server.bindings("bad@127.0.0.1").len(), 1);
}

#[test]
fn purr_survives_a_restart() {
    let (url, pushes) = webhook(200);
    let cfg = config(&url, "purr = true");
    let server = Server::start_with(&[], Some(&cfg));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let r = dev.register(&[&push_contact(&dev, "RST")], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let purr = purr_of(&r);
    let dir = server.kill9();
    let server = Server::start_in(dir, &[], Some(&cfg));
    assert_eq!(server.bindings("dev@127.0.0.1").len(), 1, "the binding was lost\n{}", server.log());
    // Drain anything the restart itself pushed (none expected, but not the point here).
    while pushes.recv_timeout(Duration::from_millis(200)).is_ok() {}
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = peer.local_addr().unwrap();
    let bye = format!(
        "BYE sip:dev@{d};pn-purr={purr} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-rst-1\r\nFrom: <sip:peer@other.example>;tag=pr\r\nTo: <sip:dev@127.0.0.1>;tag=dr\r\nCall-ID: rst-1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        d = dev.local()
    );
    peer.send_to(bye.as_bytes(), server.udp).unwrap();
    let Ok(push) = pushes.recv_timeout(Duration::from_secs(5)) else {
        panic!("the old PURR caused no push after a restart\n{}", server.log())
    };
    assert_eq!(push["prid"], "RST", "{push}");
    assert_eq!(push["reason"], "mid-BYE", "{push}");
}

#[test]
fn escaped_pn_parameter_names_make_a_push_binding() {
    // RFC 3261 §19.1.4: URI parameter names compare after unescaping, so
    // `pn%2Dprovider` is `pn-provider` (R62).
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let contact = |p: &Phone| {
        format!("<sip:dev@{};pn%2Dprovider=apns;pn%2Dprid=TOK;pn%2Dparam=TEAM.com.example.voip>;{INSTANCE}", p.local())
    };
    let r = dev.register(&[&contact(&dev)], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    assert_eq!(header_of(&r, "Feature-Caps"), Some("*;+sip.pns=\"apns\""), "not a push binding: {r}");
    let b = server.bindings("dev@127.0.0.1");
    assert_eq!(b.len(), 1, "{b:#?}");
    assert_eq!(b[0]["push_capable"], true, "{b:#?}");
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite(server.udp, &caller, 40);
    let Ok(push) = pushes.recv_timeout(Duration::from_secs(5)) else {
        let f = final_response(&caller, Duration::from_millis(500));
        panic!("no push for escaped pn-* names; caller got {f:?}\n{}", server.log())
    };
    assert_eq!(push["provider"], "apns", "{push}");
    assert_eq!(push["prid"], "TOK", "{push}");
    assert_eq!(push["param"], "TEAM.com.example.voip", "{push}");
    assert_eq!(push["reason"], "ini-INVITE", "{push}");
    // Nothing went to the sleeping device, and the caller got no final answer (no 408).
    assert!(dev.next_request(Duration::from_millis(300)).is_none(), "the INVITE went to a sleeping device");
    assert!(final_response(&caller, Duration::from_millis(300)).is_none(), "the caller got a final answer already");
    // Woken, the device re-registers: the INVITE follows.
    let r = dev.register(&[&contact(&dev)], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let got = next_of(&mut dev, "INVITE", "push-call-40", Duration::from_secs(5)).unwrap_or_else(|| {
        let f = final_response(&caller, Duration::from_millis(500));
        panic!("the INVITE never reached the woken device; caller got {f:?}\n{}", server.log())
    });
    assert!(got.starts_with(&format!("INVITE sip:dev@{}", dev.local())), "{got}");
    // The push coordinates are stripped however their names were spelt.
    let rl = got.lines().next().unwrap().to_ascii_lowercase();
    assert!(!rl.contains("pn-") && !rl.contains("pn%2d") && !rl.contains("tok"), "{rl}");
}

#[test]
fn r15_apns_contact_without_pn_param_gets_555_and_no_binding() {
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "reply_555 = true")));
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let c = format!("<sip:dev@{};pn-provider=apns;pn-prid=TOK>;{INSTANCE}", dev.local());
    let r = dev.register(&[&c], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 555, "apns without pn-param (R14/R15): {r}");
    assert!(header_of(&r, "Feature-Caps").is_none(), "{r}");
    assert!(server.bindings("dev@127.0.0.1").is_empty(), "a binding was created\n{r}");
    // Nothing to call either: no push, no INVITE anywhere.
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite(server.udp, &caller, 15);
    let f = final_response(&caller, Duration::from_secs(3)).expect("an answer");
    assert!(matches!(status_of(f.as_bytes()), 404 | 480), "{f}");
    assert!(pushes.recv_timeout(Duration::from_millis(300)).is_err(), "a push for a rejected REGISTER");
    // Control: with pn-param the same REGISTER is a push binding.
    let r = dev.register(&[&push_contact(&dev, "TOK")], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    assert_eq!(server.bindings("dev@127.0.0.1").len(), 1);
}

#[test]
fn live_tcp_connection_is_no_proof_of_being_awake() {
    use common::phone::Link;
    let (url, pushes) = webhook(200);
    let server = Server::start_with(&[], Some(&config(&url, "")));
    let contact = |p: &Phone| {
        format!(
            "<sip:dev@{};transport=tcp;pn-provider=apns;pn-prid=LIVE;pn-param=TEAM1.com.example.voip>;{INSTANCE}",
            p.local()
        )
    };
    // The device registers over TCP and keeps the connection open (iOS
    // suspends the app with its socket open: nothing answers on it).
    let mut old = Phone::tcp(server.tcp, "dev", "127.0.0.1");
    let r = old.register(&[&contact(&old)], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    assert_eq!(header_of(&r, "Feature-Caps"), Some("*;+sip.pns=\"apns\""), "{r}");
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sent_at = std::time::Instant::now();
    invite(server.udp, &caller, 60);
    // Both at once: a push, and the INVITE over the open connection.
    let Ok(push) = pushes.recv_timeout(Duration::from_secs(5)) else {
        panic!("no push for a device with a live TCP connection\n{}", server.log())
    };
    assert_eq!(push["prid"], "LIVE", "{push}");
    let Link::Tcp(os) = &mut old.link else { unreachable!() };
    let (got, _) = tcp_read_until(os, Duration::from_secs(3), |b| message_in(b, "INVITE ").is_some());
    let inv = message_in(&got, "INVITE ").unwrap_or_else(|| {
        panic!("no INVITE over the live connection: {:?}\n{}", String::from_utf8_lossy(&got), server.log())
    });
    assert!(inv.contains("Call-ID: push-call-60\r\n"), "{inv}");
    assert!(sent_at.elapsed() < Duration::from_secs(2), "not at once: {:?}", sent_at.elapsed());
    // Woken, the app re-registers over a NEW connection (same Call-ID, next CSeq).
    let mut new = Phone::tcp(server.tcp, "dev", "127.0.0.1");
    new.call_id = old.call_id.clone();
    new.cseq = old.cseq;
    let msg = new.build(&[&contact(&new)], &["Expires: 600"], None);
    let new_addr = new.local();
    let Link::Tcp(ns) = &mut new.link else { unreachable!() };
    tcp_send(ns, msg.as_bytes());
    // The 200 comes first on the new connection; the INVITE follows on it.
    let (got, _) = tcp_read_until(ns, Duration::from_secs(5), |b| message_in(b, "INVITE ").is_some());
    assert_eq!(status_of(&got), 200, "{}", String::from_utf8_lossy(&got));
    let inv = message_in(&got, "INVITE ").unwrap_or_else(|| {
        panic!("no INVITE on the new connection: {:?}\n{}", String::from_utf8_lossy(&got), server.log())
    });
    assert!(inv.contains("Call-ID: push-call-60\r\n"), "{inv}");
    let rl = inv.lines().next().unwrap();
    assert!(rl.starts_with(&format!("INVITE sip:dev@{new_addr}")) && !rl.contains("pn-"), "{rl}");
    // The device answers 200 on the new connection.
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for h in inv.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
        let name = h.split(':').next().unwrap_or("");
        match name {
            "Via" | "From" | "Call-ID" | "CSeq" | "Record-Route" => ok += &format!("{h}\r\n"),
            "To" => ok += &format!("{h};tag=dev60\r\n"),
            _ => {}
        }
    }
    ok += &format!("Contact: <sip:dev@{};transport=tcp>\r\nContent-Length: 0\r\n\r\n", new_addr);
    tcp_send(ns, ok.as_bytes());
    // The caller gets that 200, exactly once.
    caller.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = vec![0u8; 65_536];
    let mut finals = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut first_200 = None;
    while std::time::Instant::now() < deadline {
        if first_200.is_some_and(|t: std::time::Instant| t.elapsed() > Duration::from_millis(1500)) {
            break;
        }
        let Ok((n, _)) = caller.recv_from(&mut buf) else { continue };
        let t = String::from_utf8_lossy(&buf[..n]).into_owned();
        let code = status_of(t.as_bytes());
        if code >= 200 {
            if code == 200 && first_200.is_none() {
                first_200 = Some(std::time::Instant::now());
            }
            finals.push(t);
        }
    }
    let codes: Vec<u16> = finals.iter().map(|f| status_of(f.as_bytes())).collect();
    assert_eq!(codes, vec![200], "the caller's final answers: {finals:#?}\n{}", server.log());
    assert!(finals[0].contains("tag=dev60"), "not the device's 200: {}", finals[0]);
    // Whatever reached the old connection afterwards is at most a CANCEL of its branch.
    let Link::Tcp(os) = &mut old.link else { unreachable!() };
    let (later, _) = tcp_read_until(os, Duration::from_millis(500), |_| false);
    let later = String::from_utf8_lossy(&later);
    assert!(!later.contains("INVITE sip:"), "a second INVITE on the old connection: {later}");
    eprintln!("old connection after the wake-up: {:?}", later.lines().next());
}
