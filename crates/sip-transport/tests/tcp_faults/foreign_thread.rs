//! `send` from a plain OS thread (not a runtime thread) to a peer that
//! refuses connections: no panic, and every table entry is given back.

use crate::common::*;
use sip_transport::{SendError, Target, Transport, TransportConfig};
use std::sync::Arc;
use std::time::Duration;

/// An address nobody listens on (bound, then released).
fn refusing_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[test]
fn send_from_plain_thread_to_refusing_peer_frees_every_entry() {
    let rt = runtime();
    let config = TransportConfig { max_connections: 5, ..TransportConfig::default() };
    let handler = Arc::new(Recorder::default());
    let (t, addr) = start(&rt, config, handler.clone());
    let target = Target { transport: Transport::Tcp, remote: refusing_addr(), conn: None };
    // A burst: some may find the table full while connects are pending, none may panic.
    let t2 = t.clone();
    let burst = std::thread::spawn(move || {
        (0..50).map(|i| t2.send(&target, bytes::Bytes::from(options(i)))).filter(|r| r.is_ok()).count()
    });
    let ok = burst.join().expect("send from a plain thread must not panic");
    assert!(ok >= 5, "only {ok} sends were accepted");
    assert!(wait_until(Duration::from_secs(5), || t.conn_count() == 0), "entries leaked: {}", t.conn_count());
    // One at a time, four times the limit: each entry must come back.
    let t3 = t.clone();
    std::thread::spawn(move || {
        for i in 0..20 {
            assert_eq!(t3.send(&target, bytes::Bytes::from(options(i))), Ok(()), "send {i}: table exhausted");
            assert!(wait_until(Duration::from_secs(5), || t3.conn_count() == 0), "entry {i} leaked");
        }
    })
    .join()
    .expect("no panic");
    // The limit is not exhausted: a client still gets in and is heard.
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(&mut c, &options(99)).unwrap();
    assert!(wait_until(Duration::from_secs(5), || handler.messages.load(std::sync::atomic::Ordering::SeqCst) == 1));
    assert_eq!(t.conn_count(), 1);
}

#[test]
fn send_after_the_runtime_stopped_leaves_no_entry() {
    let rt = runtime();
    let config = TransportConfig { max_connections: 3, ..TransportConfig::default() };
    let (t, _addr) = start(&rt, config, Arc::new(Recorder::default()));
    drop(rt);
    let target = Target { transport: Transport::Tcp, remote: refusing_addr(), conn: None };
    let t2 = t.clone();
    std::thread::spawn(move || {
        for i in 0..10 {
            // The task cannot run; its entry must go at once.
            let r = t2.send(&target, bytes::Bytes::from(options(i)));
            assert!(matches!(r, Ok(()) | Err(SendError::ConnectionLimit)), "{r:?}");
            assert_eq!(t2.conn_count(), 0, "send {i} left an entry");
        }
    })
    .join()
    .expect("no panic");
}
