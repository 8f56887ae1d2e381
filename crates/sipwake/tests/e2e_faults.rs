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
