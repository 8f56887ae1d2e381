//! UDP: socket setup, the receive loops, and datagram sends.

use crate::Inner;
use crate::types::{SendError, Source, Transport, TransportConfig};
use bytes::{Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::UdpSocket;

pub(crate) fn bind(addr: SocketAddr, config: &TransportConfig) -> std::io::Result<UdpSocket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    if config.udp_buffer_bytes > 0 {
        let _ = sock.set_recv_buffer_size(config.udp_buffer_bytes);
        let _ = sock.set_send_buffer_size(config.udp_buffer_bytes);
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

pub(crate) async fn recv_loop(inner: Arc<Inner>, sock: Arc<UdpSocket>) {
    let local = match sock.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let handler = inner.handler.get().expect("handler set before start").clone();
    let mut buf = BytesMut::with_capacity(256 * 1024);
    loop {
        if buf.capacity() < 65_536 {
            buf = BytesMut::with_capacity(256 * 1024);
        }
        buf.resize(65_536, 0);
        let res = tokio::select! {
            r = sock.recv_from(&mut buf[..]) => r,
            _ = inner.shutdown.notified() => return,
        };
        if inner.stopping.load(Ordering::Relaxed) {
            return;
        }
        let (n, remote) = match res {
            Ok(x) => x,
            Err(e) => {
                // ICMP port unreachable surfaces as ECONNREFUSED on some systems: not fatal.
                tracing::debug!(error = %e, "udp recv error");
                continue;
            }
        };
        let data = buf.split_to(n).freeze();
        buf.clear();
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
    let sock = inner
        .udp
        .iter()
        .find(|s| s.local_addr().is_ok_and(|l| l.is_ipv4() == remote.is_ipv4()))
        .ok_or(SendError::NoSocket)?;
    match sock.try_send_to(&data, remote) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            let sock = sock.clone();
            tokio::spawn(async move {
                if let Err(e) = sock.send_to(&data, remote).await {
                    tracing::debug!(%remote, error = %e, "udp send failed");
                }
            });
            Ok(())
        }
        Err(e) => Err(SendError::Io(e.to_string())),
    }
}
