//! The whole-message deadline (slowloris) and the idle timeout, with
//! CR/LF keep-alives that must not start the message clock.

use crate::common::*;
use sip_transport::TransportConfig;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn config() -> TransportConfig {
    TransportConfig {
        message_timeout: Duration::from_millis(1000),
        tcp_idle_timeout: Duration::from_millis(2500),
        ..TransportConfig::default()
    }
}

/// Whether the server closed `c` (EOF or reset) within `wait`.
fn closed_within(c: &mut TcpStream, wait: Duration) -> bool {
    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 256];
    while Instant::now() < deadline {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn a_trickled_message_is_cut_off_at_the_message_deadline() {
    let rt = runtime();
    let handler = Arc::new(Recorder::default());
    let (t, addr) = start(&rt, config(), handler.clone());
    let mut c = TcpStream::connect(addr).unwrap();
    // Leading keep-alives do not start the clock.
    c.write_all(b"\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let msg = options(1);
    let started = Instant::now();
    let mut closed_at = None;
    // One byte every 100 ms: never idle, but the message would need 30 s.
    for b in &msg {
        if c.write_all(&[*b]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if t.conn_count() == 0 {
            closed_at = Some(started.elapsed());
            break;
        }
    }
    let closed_at = closed_at.expect("a trickling client was never closed");
    assert!(closed_at >= Duration::from_millis(900), "closed too early: {closed_at:?}");
    assert!(closed_at < Duration::from_millis(2400), "closed late: {closed_at:?}");
    assert!(closed_within(&mut c, Duration::from_secs(2)));
    assert_eq!(t.message_timeouts(), 1);
    assert_eq!(handler.messages.load(Ordering::SeqCst), 0);
}

#[test]
fn keepalives_keep_a_connection_open_until_it_idles() {
    let rt = runtime();
    let handler = Arc::new(Recorder::default());
    let (t, addr) = start(&rt, config(), handler.clone());
    let mut c = TcpStream::connect(addr).unwrap();
    // 3.5 s of pings: over three message timeouts, over the idle timeout.
    let mut pongs = 0;
    for _ in 0..7 {
        c.write_all(b"\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(500));
        c.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let mut buf = [0u8; 64];
        if let Ok(n) = c.read(&mut buf) {
            assert!(n > 0, "closed while sending keep-alives");
            pongs += buf[..n].windows(2).filter(|w| w == b"\r\n").count();
        }
    }
    assert!(pongs >= 6, "{pongs} pongs");
    assert_eq!(t.conn_count(), 1, "closed while sending keep-alives");
    assert_eq!(t.message_timeouts(), 0);
    // A message sent in two parts within the deadline is delivered.
    let msg = options(2);
    c.write_all(&msg[..40]).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    c.write_all(&msg[40..]).unwrap();
    assert!(wait_until(Duration::from_secs(2), || handler.messages.load(Ordering::SeqCst) == 1));
    assert_eq!(t.conn_count(), 1);
    // Silence: the idle timeout still closes it.
    let quiet = Instant::now();
    assert!(closed_within(&mut c, Duration::from_secs(5)), "idle connection not closed");
    assert!(quiet.elapsed() >= Duration::from_millis(2000), "closed before the idle timeout");
    assert!(wait_until(Duration::from_secs(2), || t.conn_count() == 0));
    assert_eq!(t.message_timeouts(), 0);
}
