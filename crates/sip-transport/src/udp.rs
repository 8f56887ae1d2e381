//! UDP: socket setup, the receive threads, and datagram sends.
//!
//! Receiving runs on dedicated OS threads blocked in `recvfrom` rather than
//! on tokio tasks: a SIP datagram is handled start to finish in a few
//! microseconds without awaiting anything, so epoll readiness plus task
//! wake-ups would cost more than the work (measured: over half the CPU went
//! to scheduler wake-ups). Several threads may wait on one socket, which
//! spreads load over cores. Sends use the same socket; `sendto` on UDP does
//! not block in practice (the socket buffer is large).

use crate::Inner;
use crate::types::{SendError, Source, Transport, TransportConfig};
use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(crate) fn bind(addr: SocketAddr, config: &TransportConfig) -> std::io::Result<UdpSocket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    if config.udp_buffer_bytes > 0 {
        let _ = sock.set_recv_buffer_size(config.udp_buffer_bytes);
        let _ = sock.set_send_buffer_size(config.udp_buffer_bytes);
    }
    sock.bind(&addr.into())?;
    // Wake up now and then to notice shutdown.
    sock.set_read_timeout(Some(Duration::from_millis(250)))?;
    Ok(sock.into())
}

/// Starts one receive thread on `sock`. The thread enters `rt` so that the
/// handler may spawn tasks (e.g. a TCP connect).
pub(crate) fn spawn_receiver(inner: Arc<Inner>, sock: Arc<UdpSocket>, rt: tokio::runtime::Handle, n: usize) {
    let name = format!("sip-udp-{n}");
    let res = std::thread::Builder::new().name(name).spawn(move || {
        let _guard = rt.enter();
        recv_loop(&inner, &sock);
    });
    if let Err(e) = res {
        tracing::error!(error = %e, "cannot start a UDP receive thread");
    }
}

fn recv_loop(inner: &Arc<Inner>, sock: &UdpSocket) {
    let Ok(local) = sock.local_addr() else { return };
    let handler = inner.handler.get().expect("handler set before start").clone();
    // One reusable receive buffer; each datagram is copied out into its own
    // exactly-sized `Bytes` (a ~1 KiB copy is far cheaper than zeroing or
    // faulting in a fresh 64 KiB buffer per datagram).
    let mut buf = vec![0u8; 65_536];
    while !inner.stopping.load(Ordering::Relaxed) {
        let (n, remote) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => {
                // ICMP port unreachable surfaces as ECONNREFUSED: not fatal.
                tracing::debug!(error = %e, "udp recv error");
                continue;
            }
        };
        if n == 0 {
            continue;
        }
        inner.counters.received(Transport::Udp, n);
        let data = Bytes::copy_from_slice(&buf[..n]);
        // RFC 5626 §3.5.1: a CRLF-only datagram is a keep-alive; ignore it
        // (STUN keep-alives are not SIP either: first byte 0 or 1).
        if data.iter().all(|&c| c == b'\r' || c == b'\n') || data[0] < 2 {
            continue;
        }
        let src = Source { transport: Transport::Udp, local, remote, conn: None };
        handler.on_raw(&src, &data);
        let parsed = sip_msg::parse_datagram(data, &inner.config.limits);
        handler.on_message(src, parsed);
    }
}

pub(crate) fn send(inner: &Arc<Inner>, remote: SocketAddr, data: Bytes) -> Result<(), SendError> {
    let (_, sock) = inner.udp.iter().find(|(l, _)| l.is_ipv4() == remote.is_ipv4()).ok_or(SendError::NoSocket)?;
    let n = sock.send_to(&data, remote).map_err(|e| SendError::Io(e.to_string()))?;
    inner.counters.sent(Transport::Udp, n);
    Ok(())
}
