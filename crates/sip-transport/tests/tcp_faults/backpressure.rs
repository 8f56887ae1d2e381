//! A client that pipelines requests and never reads the (large) answers:
//! the server's queue for it stays bounded and the connection is closed.

use crate::common::*;
use sip_transport::TransportConfig;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[test]
fn a_peer_that_never_reads_is_closed_with_bounded_queue() {
    const LIMIT: usize = 256 << 10;
    const ANSWER: usize = 64 << 10;
    let rt = runtime();
    let config = TransportConfig { max_queued_bytes: LIMIT, ..TransportConfig::default() };
    let handler = Arc::new(Recorder { echo: Some(ANSWER), ..Recorder::default() });
    let (t, addr) = start(&rt, config, handler.clone());
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut c = c.try_clone().unwrap();
        let done = done.clone();
        // Up to 4000 requests = 256 MB of answers without a bound.
        std::thread::spawn(move || {
            let mut sent = 0;
            for i in 0..4000 {
                if done.load(Ordering::SeqCst) || c.write_all(&options(i)).is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        })
    };
    let mut peak = 0;
    let closed = wait_until(Duration::from_secs(20), || {
        peak = peak.max(t.queued_bytes());
        t.queue_overflows() == 1 && t.conn_count() == 0
    });
    done.store(true, Ordering::SeqCst);
    let sent = writer.join().unwrap();
    assert!(
        closed,
        "not closed: conns {} overflows {} queued {}",
        t.conn_count(),
        t.queue_overflows(),
        t.queued_bytes()
    );
    assert!(peak <= LIMIT + ANSWER, "queue grew to {peak} bytes (limit {LIMIT})");
    assert!(handler.echo_errors.load(Ordering::SeqCst) >= 1, "the caller was not told");
    assert!(sent > 0);
    // The client sees the connection end (after whatever the kernel held).
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let ended = loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break true,
            Ok(_) => {}
        }
    };
    assert!(ended);
    assert_eq!(t.queued_bytes(), 0);
}

#[test]
fn a_reading_peer_that_pipelines_within_the_limit_gets_every_answer() {
    const ANSWER: usize = 64 << 10;
    let rt = runtime();
    let config = TransportConfig { max_queued_bytes: 256 << 10, ..TransportConfig::default() };
    let handler = Arc::new(Recorder { echo: Some(ANSWER), ..Recorder::default() });
    let (t, addr) = start(&rt, config, handler.clone());
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    // Three requests in flight at a time (192 KiB of answers), 60 rounds.
    for round in 0..60 {
        let batch: Vec<u8> = (0..3).flat_map(|i| options(round * 3 + i)).collect();
        c.write_all(&batch).unwrap();
        let mut got = 0;
        while got < 3 * ANSWER {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => panic!("closed in round {round} after {got} bytes"),
                Ok(n) => got += n,
            }
        }
    }
    assert_eq!(t.queue_overflows(), 0);
    assert_eq!(t.conn_count(), 1);
}
