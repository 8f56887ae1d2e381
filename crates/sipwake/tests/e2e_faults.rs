//! End-to-end regressions for transport faults found by fault injection,
//! run against the real binary: TCP clients that hang up before their
//! REGISTER is answered must not lock other clients out of TCP.

mod common;

use common::phone::Phone;
use common::*;
use std::time::Duration;

/// The server's open TCP connections, from the management API.
fn tcp_connections(server: &Server) -> u64 {
    let (status, body) = server.api("GET", "/api/v1/stats");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["tcp_connections"].as_u64().unwrap_or_else(|| panic!("no tcp_connections in {body}"))
}

#[test]
fn clients_hanging_up_before_the_200_do_not_exhaust_tcp_connections() {
    let mut server = Server::start_with(&[], Some("[auth]\nenabled = false\n[sip]\nmax_connections = 20\n"));
    // 50 REGISTERs over TCP, each socket closed at once without reading:
    // the 200 (sent from the store writer thread) finds the connection
    // gone and the server tries a new one to the closed port.
    for i in 0..50 {
        let mut p = Phone::tcp(server.tcp, &format!("gone{i}"), "127.0.0.1");
        let contact = format!("<sip:gone{i}@{};transport=tcp>", p.local());
        let msg = p.build(&[&contact], &[], None);
        if let common::phone::Link::Tcp(s) = &mut p.link {
            tcp_send(s, msg.as_bytes());
        }
        drop(p);
        // Paced like the fault report: one client at a time, not a burst
        // the accept loop would refuse at the limit anyway.
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every attempt to reach a gone client ends and gives its slot back.
    let drained = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        tcp_connections(&server) == 0
    });
    assert!(drained, "connections stuck at {}\n{}", tcp_connections(&server), server.log());
    // A fresh client still registers over TCP.
    let mut fresh = Phone::tcp(server.tcp, "fresh", "127.0.0.1");
    let contact = format!("<sip:fresh@{};transport=tcp>", fresh.local());
    let r = fresh.register(&[&contact], &[]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}\n{}", server.log());
    assert!(server.alive(), "server died\n{}", server.log());
    assert_alive(&server, &std::net::UdpSocket::bind("127.0.0.1:0").unwrap(), 1);
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
    // The registrations that were answered into the void still happened.
    assert_eq!(server.bindings("gone49@127.0.0.1").len(), 1, "{log}");
}

/// A counter of `/metrics`: `None` when the server does not export it.
fn metric(server: &Server, line_prefix: &str) -> Option<u64> {
    let (status, m) = server.api("GET", "/metrics");
    assert_eq!(status, 200, "{m}");
    m.lines().find_map(|l| l.strip_prefix(line_prefix)).and_then(|v| v.trim().parse::<f64>().ok()).map(|v| v as u64)
}

/// The server process's resident set size, kB (from /proc).
fn vm_rss_kb(server: &Server) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {s}"))
}

#[test]
fn slowloris_tcp_client_is_disconnected_by_the_message_deadline() {
    use std::io::{Read, Write};
    let server = Server::start_with(&[], Some("[auth]\nenabled = false\n[sip]\ntcp_message_timeout_secs = 1\n"));
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut s = std::net::TcpStream::connect(server.tcp).unwrap();
    let local = s.local_addr().unwrap();
    // A REGISTER long enough never to complete at 5 bytes/s within the test.
    let msg = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-slow-1\r\nFrom: <sip:slow@127.0.0.1>;tag=s1\r\nTo: <sip:slow@127.0.0.1>\r\nCall-ID: slowloris-1@test\r\nCSeq: 1 REGISTER\r\nContact: <sip:slow@{local};transport=tcp>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let t0 = std::time::Instant::now();
    let mut closed_at = None;
    let mut answered_meanwhile = false;
    let mut buf = [0u8; 4096];
    for (i, b) in msg.bytes().enumerate() {
        if t0.elapsed() > Duration::from_secs(6) {
            break;
        }
        if s.write_all(&[b]).is_err() {
            closed_at = Some(t0.elapsed());
            break;
        }
        // The server keeps serving others while this client trickles.
        if i == 2 {
            assert_alive(&server, &udp, 1);
            answered_meanwhile = true;
        }
        // ~200 ms per byte: the read timeout paces the trickle.
        let started = std::time::Instant::now();
        match s.read(&mut buf) {
            Ok(0) => {
                closed_at = Some(t0.elapsed());
                break;
            }
            Ok(n) => panic!("unexpected answer to an incomplete message: {}", String::from_utf8_lossy(&buf[..n])),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => {
                closed_at = Some(t0.elapsed());
                break;
            }
        }
        if let Some(rest) = Duration::from_millis(200).checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let Some(at) = closed_at else {
        panic!("a client trickling one byte every 200 ms was never disconnected\n{}", server.log())
    };
    assert!(answered_meanwhile);
    eprintln!("slowloris: disconnected {at:?} after the first byte");
    assert!(at >= Duration::from_millis(800) && at <= Duration::from_secs(3), "disconnected after {at:?}");
    assert_alive(&server, &udp, 2);
    // The close is counted where the server exports it (the log line below is the firm evidence).
    let counted = metric(&server, "sipwake_tcp_closed_total{reason=\"message_timeout\"} ");
    assert!(counted.is_none_or(|n| n == 1), "message_timeout closes: {counted:?}");
    assert!(server.bindings("slow@127.0.0.1").is_empty());
    let drained = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        tcp_connections(&server) == 0
    });
    assert!(drained, "connection still counted: {}", tcp_connections(&server));
    let log = server.log();
    assert!(log.contains("message not complete in time") && !log.contains("panicked"), "{log}");
}

#[test]
fn tcp_client_that_never_reads_is_disconnected_at_the_queue_limit() {
    use std::io::Write;
    // 65536 is the smallest tcp_max_queued_bytes config.rs accepts.
    let server = Server::start_with(&[], Some("[auth]\nenabled = false\n[sip]\ntcp_max_queued_bytes = 65536\n"));
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_alive(&server, &udp, 1);
    let rss_before = vm_rss_kb(&server);
    // A client with a tiny receive buffer that never reads.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let s = sock.connect(server.tcp).await.unwrap();
        s.into_std().unwrap()
    });
    s.set_nonblocking(false).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = s.local_addr().unwrap();
    // Pipelined OPTIONS to the server itself, 200 per write.
    let t0 = std::time::Instant::now();
    let mut sent = 0u32;
    let mut write_error = None;
    'outer: for chunk in 0..250u32 {
        let mut batch = Vec::with_capacity(200 * 400);
        for j in 0..200 {
            batch.extend_from_slice(&options(local, server.tcp, "TCP", chunk * 200 + j + 10));
        }
        if let Err(e) = s.write_all(&batch) {
            write_error = Some(e);
            break 'outer;
        }
        sent += 200;
        if t0.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    let write_took = t0.elapsed();
    // Closed by the server: writing failed, or reading ends in EOF/reset
    // (after what was buffered for us).
    let closed = write_error
        .as_ref()
        .is_some_and(|e| e.kind() != std::io::ErrorKind::WouldBlock && e.kind() != std::io::ErrorKind::TimedOut)
        || tcp_read_until(&mut s, Duration::from_secs(5), |_| false).1;
    eprintln!("backpressure: {sent} OPTIONS written in {write_took:?}, write error {write_error:?}");
    assert!(closed, "the connection of a client that never reads stayed open after {sent} OPTIONS\n{}", server.log());
    let counted = metric(&server, "sipwake_tcp_closed_total{reason=\"queue_full\"} ");
    assert!(counted.is_none_or(|n| n == 1), "queue_full closes: {counted:?}\n{}", server.log());
    // The server forgot the connection, still answers, and did not buffer the flood.
    let drained = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        tcp_connections(&server) == 0
    });
    assert!(drained, "connection still counted: {}", tcp_connections(&server));
    assert_alive(&server, &udp, 2);
    let rss_after = vm_rss_kb(&server);
    eprintln!("backpressure: VmRSS {rss_before} kB -> {rss_after} kB");
    assert!(rss_after < rss_before + 64 * 1024, "RSS grew from {rss_before} kB to {rss_after} kB");
    let log = server.log();
    assert!(log.contains("write queue full") && !log.contains("panicked"), "{log}");
}

#[test]
fn truncated_udp_invite_and_nul_in_display_name_are_rejected() {
    let server = Server::start_with(&[], Some("[auth]\nenabled = false\n"));
    // A plain device of the AoR: anything forwarded would reach it.
    let mut dev = Phone::udp(server.udp, "dev", "127.0.0.1");
    let r = dev.register(&[&format!("<sip:dev@{}>", dev.local())], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let caller = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = caller.local_addr().unwrap();
    let full = |n: u32, from: &str| {
        format!(
            "INVITE sip:dev@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-trunc-{n}\r\nMax-Forwards: 70\r\nFrom: {from};tag=c{n}\r\nTo: <sip:dev@127.0.0.1>\r\nCall-ID: trunc-{n}@test\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{local}>\r\nContent-Type: application/sdp\r\nContent-Length: 0\r\n\r\n"
        )
    };
    // Every answer for `call_id` within `wait` (status codes).
    let answers = |call_id: &str, wait: Duration| {
        let deadline = std::time::Instant::now() + wait;
        let mut codes = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            caller.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
            let Ok((n, _)) = caller.recv_from(&mut buf) else { break };
            let t = String::from_utf8_lossy(&buf[..n]);
            assert!(t.contains(call_id), "an answer for another request: {t}");
            codes.push(status_of(&buf[..n]));
        }
        codes
    };
    let dev_got = |dev: &mut Phone| {
        let mut got = Vec::new();
        while let Some((t, _)) = dev.next_request(Duration::from_millis(300)) {
            got.push(t);
        }
        got
    };
    // 1. The header section never ends: cut in the middle of a header, no empty line.
    let whole = full(1, "<sip:caller@other.example>");
    let cut = &whole[..whole.find("CSeq: 1 INV").unwrap() + "CSeq: 1 INV".len()];
    caller.send_to(cut.as_bytes(), server.udp).unwrap();
    let codes = answers("trunc-1@test", Duration::from_millis(1500));
    assert!(codes.iter().all(|c| *c == 400), "a truncated INVITE was answered {codes:?}\n{}", server.log());
    let got = dev_got(&mut dev);
    assert!(got.is_empty(), "a truncated INVITE was forwarded: {got:?}");
    eprintln!("truncated INVITE: answers {codes:?}");
    // Also cut right after a complete header line (CRLF but no empty line).
    let whole = full(2, "<sip:caller@other.example>");
    let cut = &whole[..whole.find("Contact:").unwrap()];
    caller.send_to(cut.as_bytes(), server.udp).unwrap();
    let codes = answers("trunc-2@test", Duration::from_millis(1500));
    assert!(codes.iter().all(|c| *c == 400), "an INVITE with no end of headers was answered {codes:?}");
    eprintln!("INVITE without the empty line: answers {codes:?}");
    let got = dev_got(&mut dev);
    assert!(got.is_empty(), "an INVITE with no end of headers was forwarded: {got:?}");
    // 2. A NUL inside the quoted display name of From: 400.
    caller.send_to(full(3, "\"Al\0ice\" <sip:caller@other.example>").as_bytes(), server.udp).unwrap();
    let codes = answers("trunc-3@test", Duration::from_millis(1500));
    assert!(codes.contains(&400), "NUL in a quoted display name: answers {codes:?}\n{}", server.log());
    assert!(codes.iter().all(|c| *c == 400), "NUL in a quoted display name: answers {codes:?}");
    eprintln!("NUL in the display name: answers {codes:?}");
    let got = dev_got(&mut dev);
    assert!(got.is_empty(), "an INVITE with NUL in From was forwarded: {got:?}");
    // Control: the same INVITE without the NUL reaches the device.
    caller.send_to(full(4, "\"Alice\" <sip:caller@other.example>").as_bytes(), server.udp).unwrap();
    let (got, _) = dev.next_request(Duration::from_secs(3)).expect("the well-formed INVITE");
    assert!(got.starts_with("INVITE ") && got.contains("Call-ID: trunc-4@test"), "{got}");
    let mut server = server;
    assert!(server.alive(), "{}", server.log());
    assert_alive(&server, &udp_sock(), 9);
}

fn udp_sock() -> std::net::UdpSocket {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap()
}
