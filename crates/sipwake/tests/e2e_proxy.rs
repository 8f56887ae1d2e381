//! End-to-end tests of the proxy: calls between sipp UAs registered with
//! the real binary, over UDP and TCP; forking, CANCEL, 486/603/200 races,
//! re-INVITE, MESSAGE, loops and Max-Forwards, caller authentication, and a
//! TCP-registered callee reached over the connection it opened.

mod common;

use common::phone::{Phone, header_of};
use common::*;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

const NO_AUTH: &str = "[auth]\nenabled = false\n";

/// Registers `user` with sipp from `port` (then free for the callee sipp on the same port).
fn register_sipp(server: SocketAddr, user: &str, transport: &str, port: u16) {
    let (ok, out) =
        sipp_start("register_plain.xml", server, transport, 1, Some(port), &["-s", user]).wait(Duration::from_secs(20));
    assert!(ok, "registering {user} from port {port} failed:\n{out}");
}

/// Starts a callee sipp on a fresh port registered as `user`.
fn callee(server: &Server, user: &str, scenario: &str, transport: &str, extra: &[&str]) -> Sipp {
    let port = free_udp_port();
    let addr = if transport == "t1" { server.tcp } else { server.udp };
    register_sipp(addr, user, transport, port);
    let s = sipp_start(scenario, addr, transport, 1, Some(port), extra);
    std::thread::sleep(Duration::from_millis(300));
    s
}

fn check(name: &str, r: (bool, String), server: &Server) {
    assert!(r.0, "{name} failed:\n{}\n--- server log ---\n{}", r.1, server.log());
}

#[test]
fn basic_call_with_record_route_over_udp_and_tcp() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    for t in ["u1", "t1"] {
        let bob = callee(&server, "bob", "uas_answer.xml", t, &[]);
        let target = if t == "t1" { server.tcp } else { server.udp };
        let caller = sipp("uac_call.xml", target, t, 1, &["-s", "bob"]);
        check(&format!("caller over {t}"), caller, &server);
        check(&format!("callee over {t}"), bob.wait(Duration::from_secs(20)), &server);
    }
    // Calls by final code, branches and transactions are visible in /metrics and ctl stats.
    let (_, m) = server.api("GET", "/metrics");
    assert!(m.contains("sipwake_proxied_total{method=\"INVITE\",code=\"200\"} 2"), "{m}");
    // (Every family is there from start-up: the branches themselves are counted.)
    assert!(!m.contains("sipwake_branches_total 0"), "{m}");
    assert!(m.contains("sipwake_transactions"), "{m}");
    let (_, stats) = server.api("GET", "/api/v1/stats");
    let v: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(v["branches_started"].as_u64().unwrap() >= 4, "{stats}");
    assert!(v.get("proxy_contexts").is_some() && v.get("transactions").is_some(), "{stats}");
}

#[test]
fn two_devices_one_answers_the_other_is_cancelled() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    let ringing = callee(&server, "carol", "uas_ring_cancel.xml", "u1", &[]);
    let answering = callee(&server, "carol", "uas_answer.xml", "u1", &[]);
    assert_eq!(server.bindings("carol@127.0.0.1").len(), 2);
    check("caller", sipp("uac_call.xml", server.udp, "u1", 1, &["-s", "carol"]), &server);
    check("answering device", answering.wait(Duration::from_secs(20)), &server);
    check("cancelled device", ringing.wait(Duration::from_secs(20)), &server);
}

#[test]
fn busy_on_one_device_answer_on_the_other() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    let busy = callee(&server, "dave", &with_code("uas_reject.xml", 486), "u1", &[]);
    let answering = callee(&server, "dave", "uas_answer.xml", "u1", &[]);
    check("caller", sipp("uac_call.xml", server.udp, "u1", 1, &["-s", "dave"]), &server);
    check("answering device", answering.wait(Duration::from_secs(20)), &server);
    check("busy device", busy.wait(Duration::from_secs(20)), &server);
}

/// A copy of a scenario with CODE replaced (sipp checks status codes before substituting keywords).
fn with_code(scenario: &str, code: u16) -> String {
    let text = std::fs::read_to_string(repo().join("tests/sipp").join(scenario)).unwrap();
    let dir = std::env::temp_dir().join(format!("sipwake-scen-{}-{code}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{code}-{scenario}"));
    std::fs::File::create(&p).unwrap().write_all(text.replace("CODE", &code.to_string()).as_bytes()).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn decline_6xx_cancels_the_other_device() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    let ringing = callee(&server, "erin", "uas_ring_cancel.xml", "u1", &[]);
    let declining = callee(&server, "erin", &with_code("uas_reject.xml", 603), "u1", &[]);
    check("caller gets 603", sipp(&with_code("uac_reject.xml", 603), server.udp, "u1", 1, &["-s", "erin"]), &server);
    check("declining device", declining.wait(Duration::from_secs(20)), &server);
    check("cancelled device", ringing.wait(Duration::from_secs(20)), &server);
}

#[test]
fn caller_cancels_while_ringing() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    let ringing = callee(&server, "fay", "uas_ring_cancel.xml", "u1", &[]);
    check("caller CANCEL", sipp("uac_cancel.xml", server.udp, "u1", 1, &["-s", "fay"]), &server);
    check("callee", ringing.wait(Duration::from_secs(20)), &server);
}

#[test]
fn reinvite_mid_call() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    let bob = callee(&server, "gus", "uas_reinvite.xml", "u1", &[]);
    check("caller", sipp("uac_reinvite.xml", server.udp, "u1", 1, &["-s", "gus"]), &server);
    check("callee", bob.wait(Duration::from_secs(20)), &server);
}

#[test]
fn message_to_a_registered_user() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    let dev = callee(&server, "hal", "uas_message.xml", "u1", &[]);
    check("sender", sipp("uac_message.xml", server.udp, "u1", 1, &["-s", "hal"]), &server);
    check("device", dev.wait(Duration::from_secs(20)), &server);
}

#[test]
fn unknown_user_404_and_unregistered_subscriber_480() {
    let server = Server::start();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sipwake"))
        .args(["user", "add", "ida@127.0.0.1", "--data-dir"])
        .arg(server.data_dir())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"pw\n").unwrap();
    assert!(child.wait().unwrap().success());
    // Callers from another domain need no credentials to reach local users.
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    let inv = |user: &str, n: u32| {
        format!(
            "INVITE sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-u-{n}\r\nFrom: <sip:x@other.example>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: u-{n}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let final_of = |msg: &str| {
        sock.send_to(msg.as_bytes(), server.udp).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, _) = sock.recv_from(&mut buf).expect("an answer");
            let code = status_of(&buf[..n]);
            if code >= 200 {
                return code;
            }
        }
    };
    assert_eq!(final_of(&inv("nobody", 1)), 404);
    assert_eq!(final_of(&inv("ida", 2)), 480);
}

#[test]
fn local_callers_are_challenged_and_relaying_is_denied() {
    let server = Server::start();
    let mut p = Phone::udp(server.udp, "jo", "127.0.0.1");
    // An INVITE from a local user without credentials: 407.
    let local = p.local();
    let msg = format!(
        "INVITE sip:someone@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-auth-1\r\nFrom: <sip:jo@127.0.0.1>;tag=1\r\nTo: <sip:someone@127.0.0.1>\r\nCall-ID: auth-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let r = p.exchange(&msg);
    let r = if status_of(r.as_bytes()) == 100 { p.exchange("") } else { r };
    assert_eq!(status_of(r.as_bytes()), 407, "{r}");
    assert!(header_of(&r, "Proxy-Authenticate").is_some_and(|v| v.starts_with("Digest realm=\"127.0.0.1\"")), "{r}");
    // A stranger calling another stranger's domain through us: 403 (no open relay).
    let msg = format!(
        "MESSAGE sip:x@elsewhere.example SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-relay-1\r\nFrom: <sip:y@other.example>;tag=1\r\nTo: <sip:x@elsewhere.example>\r\nCall-ID: relay-1\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let r = p.exchange(&msg);
    assert_eq!(status_of(r.as_bytes()), 403, "{r}");
}

#[test]
fn max_forwards_zero_and_loops() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    // A binding that points back at the proxy itself makes a loop.
    let mut p = Phone::udp(server.udp, "loop", "127.0.0.1");
    let r = p.register(&[&format!("<sip:loop@{}>", server.udp)], &[]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let local = sock.local_addr().unwrap();
    let send = |mf: u32, n: u32| {
        let msg = format!(
            "MESSAGE sip:loop@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-loop-{n}\r\nFrom: <sip:x@other.example>;tag=1\r\nTo: <sip:loop@127.0.0.1>\r\nCall-ID: loop-{n}\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: {mf}\r\nContent-Length: 0\r\n\r\n"
        );
        sock.send_to(msg.as_bytes(), server.udp).unwrap();
        let mut buf = vec![0u8; 65_536];
        let Ok((n, _)) = sock.recv_from(&mut buf) else { panic!("no answer\n{}", server.log()) };
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let r = send(0, 1);
    assert_eq!(status_of(r.as_bytes()), 483, "{r}");
    // The MESSAGE comes back to us with the same Request-URI: a loop, 482.
    let r = send(70, 2);
    assert_eq!(status_of(r.as_bytes()), 482, "{r}\n{}", server.log());
}

#[test]
fn udp_caller_reaches_tcp_callee_over_its_own_connection() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    // The callee registers over TCP and keeps its connection; its Contact
    // names a port where nothing listens (as behind NAT): only the
    // connection it opened reaches it.
    let mut phone = Phone::tcp(server.tcp, "kim", "127.0.0.1");
    let r = phone.register(&["<sip:kim@192.0.2.99:5999;transport=tcp>"], &[]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let caller = sipp_start("uac_call.xml", server.udp, "u1", 1, None, &["-s", "kim"]);
    let common::phone::Link::Tcp(conn) = &mut phone.link else { unreachable!() };
    let read_req = |conn: &mut std::net::TcpStream, what: &str| -> String {
        let (got, _) = tcp_read_until(conn, Duration::from_secs(10), |b| {
            let t = String::from_utf8_lossy(b);
            t.contains(what) && t.contains("\r\n\r\n")
        });
        String::from_utf8_lossy(&got).into_owned()
    };
    let invite = read_req(conn, "INVITE ");
    assert!(invite.starts_with("INVITE sip:kim@192.0.2.99:5999;transport=tcp SIP/2.0"), "{invite}");
    let hdrs: Vec<&str> = invite.split("\r\n").take_while(|l| !l.is_empty()).collect();
    let get = |name: &str| hdrs.iter().filter(|l| l.starts_with(name)).map(|l| l.to_string()).collect::<Vec<_>>();
    assert!(!get("Record-Route:").is_empty(), "{invite}");
    let resp = |code: &str| {
        let mut s = format!("SIP/2.0 {code}\r\n");
        for v in get("Via:") {
            s += &v;
            s += "\r\n";
        }
        for v in get("Record-Route:") {
            s += &v;
            s += "\r\n";
        }
        s += &get("From:")[0];
        s += "\r\n";
        s += &format!("{};tag=kim1\r\n", get("To:")[0]);
        s += &get("Call-ID:")[0];
        s += "\r\n";
        s += &get("CSeq:")[0];
        s += "\r\nContact: <sip:kim@192.0.2.99:5999;transport=tcp>\r\nContent-Length: 0\r\n\r\n";
        s
    };
    let ringing = resp("180 Ringing");
    let ok = resp("200 OK");
    conn.write_all(ringing.as_bytes()).unwrap();
    conn.write_all(ok.as_bytes()).unwrap();
    // The ACK and the BYE come over the same connection, routed by the flow token.
    let ack = read_req(conn, "ACK ");
    assert!(ack.contains("ACK sip:kim@192.0.2.99:5999;transport=tcp SIP/2.0"), "{ack}");
    let bye = read_req(conn, "BYE ");
    let bye_msg = &bye[bye.find("BYE ").unwrap()..];
    let bh: Vec<&str> = bye_msg.split("\r\n").take_while(|l| !l.is_empty()).collect();
    let mut ok_bye = String::from("SIP/2.0 200 OK\r\n");
    for l in bh.iter().skip(1) {
        if l.starts_with("Via:")
            || l.starts_with("From:")
            || l.starts_with("To:")
            || l.starts_with("Call-ID:")
            || l.starts_with("CSeq:")
        {
            ok_bye += l;
            ok_bye += "\r\n";
        }
    }
    ok_bye += "Content-Length: 0\r\n\r\n";
    conn.write_all(ok_bye.as_bytes()).unwrap();
    check("UDP caller", caller.wait(Duration::from_secs(20)), &server);
}
