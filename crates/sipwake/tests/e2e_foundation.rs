//! End-to-end tests of the foundation: the real binary, driven by sipp and
//! by raw sockets, over UDP and TCP, IPv4 and IPv6.

mod common;

use common::*;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

#[test]
fn sipp_options_over_udp_and_tcp() {
    let server = Server::start();
    let (ok, out) = sipp("options_uac.xml", server.udp, "u1", 20, &["-r", "50"]);
    assert!(ok, "sipp OPTIONS over UDP failed:\n{out}\n{}", server.log());
    let (ok, out) = sipp("options_uac.xml", server.tcp, "t1", 20, &["-r", "50"]);
    assert!(ok, "sipp OPTIONS over TCP failed:\n{out}\n{}", server.log());
}

#[test]
fn sipp_invite_gets_final_answer_and_ack_stops_retransmissions() {
    let server = Server::start();
    let (ok, out) = sipp("invite_uac_reject.xml", server.udp, "u1", 5, &["-r", "10"]);
    assert!(ok, "sipp INVITE over UDP failed:\n{out}\n{}", server.log());
    let (ok, out) = sipp("invite_uac_reject.xml", server.tcp, "t1", 5, &["-r", "10"]);
    assert!(ok, "sipp INVITE over TCP failed:\n{out}\n{}", server.log());
}

#[test]
fn udp_final_response_is_retransmitted_until_ack() {
    let server = Server::start();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:nobody@{s} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-retx-1\r\nFrom: <sip:a@caller.example>;tag=1\r\nTo: <sip:nobody@{s}>\r\nCall-ID: retx-1\r\nCSeq: 7 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        s = server.udp
    );
    sock.send_to(invite.as_bytes(), server.udp).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(2500))).unwrap();
    let mut finals = Vec::new();
    let mut buf = [0u8; 4096];
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(2200) {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let code = status_of(&buf[..n]);
            if code >= 200 {
                finals.push((start.elapsed(), buf[..n].to_vec()));
            }
        }
    }
    // Timer G: 0, +500 ms, +1 s (at 1.5 s) within 2.2 s => 3 copies, all identical.
    assert!(finals.len() >= 3, "expected the 404 to be retransmitted (Timer G), got {}", finals.len());
    assert!(finals.iter().all(|f| f.1 == finals[0].1), "retransmissions differ");
    assert_eq!(status_of(&finals[0].1), 404);
    // A retransmitted INVITE gets the same final response again.
    let again = udp_exchange(&sock, server.udp, invite.as_bytes(), Duration::from_secs(2)).unwrap();
    assert_eq!(again, finals[0].1);
    // ACK it; then nothing more arrives.
    let to = String::from_utf8_lossy(&finals[0].1).lines().find(|l| l.starts_with("To:")).unwrap().to_string();
    let ack = format!(
        "ACK sip:nobody@{s} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-retx-1\r\nFrom: <sip:a@caller.example>;tag=1\r\n{to}\r\nCall-ID: retx-1\r\nCSeq: 7 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        s = server.udp
    );
    sock.send_to(ack.as_bytes(), server.udp).unwrap();
    // Drain anything already in flight, then expect silence for > 2 Timer G periods.
    std::thread::sleep(Duration::from_millis(100));
    sock.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    while sock.recv_from(&mut buf).is_ok() {}
    sock.set_read_timeout(Some(Duration::from_millis(2500))).unwrap();
    assert!(sock.recv_from(&mut buf).is_err(), "response retransmitted after ACK");
}

#[test]
fn requests_get_the_right_final_answers() {
    let server = Server::start();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    let s = server.udp;
    let req = |method: &str, uri: &str, extra: &str, n: u32| {
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-ans-{n}\r\nFrom: <sip:a@caller.example>;tag=1\r\nTo: <sip:b@{s}>{extra}\r\nCall-ID: ans-{n}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let cases: Vec<(String, u16)> = vec![
        (req("OPTIONS", &format!("sip:{s}"), "", 1), 200),
        (req("MESSAGE", &format!("sip:bob@{s}"), "", 2), 404),
        (req("BYE", &format!("sip:bob@{s}"), ";tag=x", 3), 481),
        (req("CANCEL", &format!("sip:bob@{s}"), "", 4), 481),
        (req("FOO", &format!("sip:{s}"), "", 5), 501),
        (req("FOO", &format!("sip:bob@{s}"), "", 10), 404),
        (req("INVITE", "tel:+15551234", "", 6), 416),
        (req("OPTIONS", &format!("sip:{s}"), "\r\nProxy-Require: x-unknown", 7), 420),
        (req("REGISTER", &format!("sip:{s}"), "", 8), 401),
        (req("OPTIONS", &format!("sip:{s} SIP/2.0"), "", 9), 400),
    ];
    for (msg, want) in cases {
        let resp = udp_exchange(&sock, s, msg.as_bytes(), Duration::from_secs(3))
            .unwrap_or_else(|| panic!("no answer to\n{msg}\n{}", server.log()));
        assert_eq!(status_of(&resp), want, "request:\n{msg}\nresponse:\n{}", String::from_utf8_lossy(&resp));
        let text = String::from_utf8_lossy(&resp);
        assert!(text.contains("Call-ID: ans-"), "{text}");
        if want == 420 {
            assert!(text.contains("Unsupported: x-unknown"), "{text}");
        }
        if want == 400 {
            assert!(text.contains("Warning: 399 sipwake"), "{text}");
        }
    }
}

#[test]
fn cancel_matching_an_answered_invite_gets_200() {
    // §9.2: a CANCEL that matches an INVITE server transaction gets 200 even
    // when the INVITE already has its final answer (the CANCEL then has no
    // effect); one that matches nothing gets 481 (tested elsewhere).
    let server = Server::start();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    let s = server.udp;
    let invite = format!(
        "INVITE sip:bob@{s} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-can-1\r\nFrom: <sip:a@caller.example>;tag=1\r\nTo: <sip:bob@{s}>\r\nCall-ID: can-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let resp = udp_exchange(&sock, s, invite.as_bytes(), Duration::from_secs(3)).unwrap();
    assert_eq!(status_of(&resp), 404);
    let cancel = format!(
        "CANCEL sip:bob@{s} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-can-1\r\nFrom: <sip:a@caller.example>;tag=1\r\nTo: <sip:bob@{s}>\r\nCall-ID: can-1\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(cancel.as_bytes(), s).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("an answer to CANCEL");
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        if text.contains("CSeq: 1 CANCEL") {
            assert_eq!(status_of(&buf[..n]), 200, "{text}");
            break;
        }
    }
}

#[test]
fn malformed_messages_get_400_or_are_dropped_and_server_survives() {
    let server = Server::start();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    let s = server.udp;
    // Negative Content-Length: 400.
    let bad = format!(
        "OPTIONS sip:{s} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-bad-1\r\nFrom: <sip:a@caller.example>;tag=1\r\nTo: <sip:{s}>\r\nCall-ID: bad-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: -5\r\n\r\n"
    );
    let resp = udp_exchange(&sock, s, bad.as_bytes(), Duration::from_secs(3)).unwrap();
    assert_eq!(status_of(&resp), 400);
    // Wrong version: 505.
    let v7 = bad.replacen("SIP/2.0\r\n", "SIP/7.0\r\n", 1).replace("-5", "0").replace("bad-1", "bad-2");
    let resp = udp_exchange(&sock, s, v7.as_bytes(), Duration::from_secs(3)).unwrap();
    assert_eq!(status_of(&resp), 505, "{}", String::from_utf8_lossy(&resp));
    // Garbage and a malformed response: dropped, no answer.
    for junk in [&b"\x00\x01garbage"[..], b"hello world\r\n\r\n", b"SIP/2.0 999999 Huge\r\nVia: SIP/2.0/UDP x\r\n\r\n"]
    {
        assert!(udp_exchange(&sock, s, junk, Duration::from_millis(300)).is_none());
    }
    // Oversized datagram (but under 64 KiB): 513 or 400, never silence or a crash.
    let big_hdr = "X-Big: ".to_string() + &"a".repeat(20_000) + "\r\n";
    let big = bad.replace("Content-Length: -5\r\n", &(big_hdr + "Content-Length: 0\r\n")).replace("bad-1", "bad-3");
    let resp = udp_exchange(&sock, s, big.as_bytes(), Duration::from_secs(3)).unwrap();
    assert_eq!(status_of(&resp), 513, "{}", String::from_utf8_lossy(&resp));
    assert_alive(&server, &sock, 99);
}

#[test]
fn tcp_keepalive_framing_and_reuse() {
    let server = Server::start();
    let mut s = TcpStream::connect(server.tcp).unwrap();
    let local = s.local_addr().unwrap();
    // RFC 5626 §4.4.1: double-CRLF ping gets a CRLF pong.
    tcp_send(&mut s, b"\r\n\r\n");
    let (got, _) = tcp_read_until(&mut s, Duration::from_secs(2), |b| b.len() >= 2);
    assert_eq!(got, b"\r\n");
    // Two requests in one write, then one split across writes: each answered on this connection.
    let mut two = options(local, server.tcp, "TCP", 1);
    two.extend(options(local, server.tcp, "TCP", 2));
    tcp_send(&mut s, &two);
    let third = options(local, server.tcp, "TCP", 3);
    tcp_send(&mut s, &third[..40]);
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    tcp_send(&mut s, &third[40..]);
    let (got, closed) = tcp_read_until(&mut s, Duration::from_secs(3), |b| {
        String::from_utf8_lossy(b).matches("SIP/2.0 200 OK").count() >= 3
    });
    assert!(!closed);
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("SIP/2.0 200 OK").count(), 3, "{text}");
    for n in 1..=3 {
        assert!(text.contains(&format!("CSeq: {n} OPTIONS")), "{text}");
    }
    // A framing error (negative Content-Length) closes the connection.
    tcp_send(&mut s, b"OPTIONS sip:x SIP/2.0\r\nContent-Length: -1\r\n\r\n");
    let (_, closed) = tcp_read_until(&mut s, Duration::from_secs(3), |_| false);
    assert!(closed, "connection not closed after a framing error");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_alive(&server, &sock, 5);
}

#[test]
fn ipv6_udp_and_tcp() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine; skipping");
        return;
    }
    let server = Server::start_with(&["--listen", "udp:[::1]:0", "--listen", "tcp:[::1]:0"], None);
    let udp6 = server.listeners.iter().find(|(t, a)| t == "udp" && a.is_ipv6()).unwrap().1;
    let tcp6 = server.listeners.iter().find(|(t, a)| t == "tcp" && a.is_ipv6()).unwrap().1;
    let sock = UdpSocket::bind("[::1]:0").unwrap();
    let local = sock.local_addr().unwrap();
    let resp = udp_exchange(&sock, udp6, &options(local, udp6, "UDP", 1), Duration::from_secs(3)).unwrap();
    assert_eq!(status_of(&resp), 200, "{}", String::from_utf8_lossy(&resp));
    let mut s = TcpStream::connect(tcp6).unwrap();
    let local = s.local_addr().unwrap();
    tcp_send(&mut s, &options(local, tcp6, "TCP", 2));
    let (got, _) = tcp_read_until(&mut s, Duration::from_secs(3), |b| b.windows(4).any(|w| w == b"\r\n\r\n"));
    assert_eq!(status_of(&got), 200, "{}", String::from_utf8_lossy(&got));
}

#[test]
fn sigterm_stops_cleanly() {
    let server = Server::start();
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn check_config_reports_key_value_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[sip]\nt1_ms = 0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sipwake")).arg("--check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sip.t1_ms = 0") && err.contains("allowed 1..=60000"), "{err}");
    let good = repo().join("sipwake.example.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_sipwake")).arg("--check-config").arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A bad value stops start-up too, with the same message.
    std::fs::write(&bad, "[server]\nlisten = [\"udp:nowhere:5060\"]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sipwake")).arg("--config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.listen[0]") && err.contains("udp:HOST:PORT"), "{err}");
}
