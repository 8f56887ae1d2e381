//! UDP: socket setup, the receive threads, and datagram sends.
//!
//! Receiving runs on dedicated OS threads blocked in `recvmmsg` rather than
//! on tokio tasks: a SIP datagram is handled start to finish in a few
//! microseconds without awaiting anything, so epoll readiness plus task
//! wake-ups would cost more than the work (measured: over half the CPU went
//! to scheduler wake-ups). One `recvmmsg` returns every datagram waiting, up
//! to [`BATCH`] (blocking for the first only): an idle server handles each
//! datagram as it comes, a loaded one takes them in batches, one system
//! call each, and the handler hears where a batch begins and ends
//! ([`crate::Handler::on_batch_end`]: one store commit per batch, on this
//! thread when nothing else is waiting). Several
//! threads may wait on one socket, which spreads load over cores. Sends use
//! the same socket; `sendto` on UDP does not block in practice (the socket
//! buffer is large).

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

/// The most datagrams one `recvmmsg` takes.
const BATCH: usize = 32;
/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_536;

fn recv_loop(inner: &Arc<Inner>, sock: &UdpSocket) {
    let Ok(local) = sock.local_addr() else { return };
    let handler = inner.handler.get().expect("handler set before start").clone();
    let mut batch = RecvBatch::new();
    while !inner.stopping.load(Ordering::Relaxed) {
        let n = match batch.recv(sock) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // ICMP port unreachable surfaces as ECONNREFUSED: not fatal.
                tracing::debug!(error = %e, "udp recv error");
                continue;
            }
        };
        handler.on_batch_begin();
        for i in 0..n {
            let Some((data, remote)) = batch.datagram(i) else { continue };
            inner.counters.received(Transport::Udp, data.len());
            // RFC 5626 §3.5.1: a CRLF-only datagram is a keep-alive; ignore it
            // (STUN keep-alives are not SIP either: first byte 0 or 1).
            if data.iter().all(|&c| c == b'\r' || c == b'\n') || data[0] < 2 {
                continue;
            }
            // Each datagram is copied out into its own exactly-sized `Bytes`
            // (a ~1 KiB copy is far cheaper than a fresh 64 KiB buffer).
            let data = Bytes::copy_from_slice(data);
            let src = Source { transport: Transport::Udp, local, remote, conn: None };
            handler.on_raw(&src, &data);
            let parsed = sip_msg::parse_datagram(data, &inner.config.limits);
            handler.on_message(src, parsed);
        }
        handler.on_batch_end(&|| n < BATCH && !pending(sock));
    }
}

/// Reusable buffers and headers of one `recvmmsg` (about 2 MiB of buffers,
/// touched only as far as datagrams fill them).
struct RecvBatch {
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovs` and `hdrs` point into `bufs`, `addrs`
// and `iovs` of the same value, and are only used by the thread that owns it.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    fn new() -> RecvBatch {
        RecvBatch {
            bufs: vec![0u8; BATCH * MAX_DATAGRAM],
            // SAFETY: all-zero is a valid sockaddr_storage.
            addrs: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
            iovs: (0..BATCH).map(|_| libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }).collect(),
            // SAFETY: all-zero is a valid mmsghdr (null pointers, zero
            // lengths); the pointers are set in `recv`.
            hdrs: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
        }
    }

    /// Blocks (up to the socket's read timeout) for one datagram, then takes
    /// every other one already waiting, up to [`BATCH`]; returns how many.
    fn recv(&mut self, sock: &UdpSocket) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        for i in 0..BATCH {
            self.iovs[i] =
                libc::iovec { iov_base: self.bufs[i * MAX_DATAGRAM..].as_mut_ptr().cast(), iov_len: MAX_DATAGRAM };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: `hdrs` holds BATCH valid headers whose buffers (`bufs`,
        // `addrs`) outlive the call and are not aliased during it.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
    }

    /// Datagram `i` of the last `recv`, and its sender.
    fn datagram(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(MAX_DATAGRAM);
        let remote = socket_addr(&self.addrs[i], h.msg_hdr.msg_namelen)?;
        (len > 0).then(|| (&self.bufs[i * MAX_DATAGRAM..i * MAX_DATAGRAM + len], remote))
    }
}

/// Whether a datagram is waiting on `sock` (`FIONREAD`: the size of the
/// next one; an error counts as none).
fn pending(sock: &UdpSocket) -> bool {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::FIONREAD, &mut n) };
    r == 0 && n > 0
}

/// The IPv4 or IPv6 address the kernel wrote into `a` (`len` bytes).
fn socket_addr(a: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    let len = len as usize;
    match libc::c_int::from(a.ss_family) {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says a sockaddr_in was written, and
            // sockaddr_storage is large and aligned enough for it.
            let v4 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(v4.sin_port))))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*(a as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(v6.sin6_port), v6.sin6_flowinfo, v6.sin6_scope_id)))
        }
        _ => None,
    }
}

pub(crate) fn send(inner: &Arc<Inner>, remote: SocketAddr, data: Bytes) -> Result<(), SendError> {
    let (_, sock) = inner.udp.iter().find(|(l, _)| l.is_ipv4() == remote.is_ipv4()).ok_or(SendError::NoSocket)?;
    let n = sock.send_to(&data, remote).map_err(|e| SendError::Io(e.to_string()))?;
    inner.counters.sent(Transport::Udp, n);
    Ok(())
}
