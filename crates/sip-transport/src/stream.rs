//! Stream listeners (TCP, TLS, WS, WSS): binding, the accept loop, and
//! sends over an open connection or, for TCP and TLS, a new outbound one.
//! What happens on a connection once it is up lives in `stream_conn`
//! (TCP/TLS) and `ws` (WS/WSS); the TLS handshakes in `tls`.
//!
//! [`send`] may be called from any thread, inside a tokio runtime or not:
//! tasks are spawned through the runtime handle captured at bind time.
//! A message for TLS never leaves over plain TCP, and none for WS/WSS opens
//! a connection.

use crate::Inner;
use crate::conn::{ConnGuard, ConnHandle, Enqueue, Outgoing};
use crate::types::{SendError, Source, Target, Transport};
use crate::{stream_conn, tls, ws};
use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long an outbound connect may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    TcpListener::from_std(sock.into())
}

pub(crate) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener, transport: Transport) {
    loop {
        let res = tokio::select! {
            r = listener.accept() => r,
            _ = inner.shutdown.notified() => return,
        };
        match res {
            Ok((stream, remote)) => {
                if let (Some(h), Ok(local)) = (inner.handler.get(), stream.local_addr()) {
                    let src = Source { transport, local, remote, conn: None };
                    if !h.admit_connection(&src) {
                        tracing::debug!(%remote, %transport, "connection refused by the handler");
                        continue;
                    }
                }
                let (tx, rx) = mpsc::unbounded_channel();
                let Some((id, handle)) = inner.conns.try_insert(transport, remote, tx, inner.config.max_connections)
                else {
                    tracing::warn!(%remote, %transport, "connection limit reached; refusing");
                    continue;
                };
                inner.counters.accepted(transport);
                let guard = ConnGuard { inner: inner.clone(), id, remote };
                inner.rt.spawn(serve_accepted(guard, stream, handle, rx));
            }
            Err(e) => {
                tracing::warn!(error = %e, %transport, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Handshakes an accepted connection as its listener's transport asks,
/// then runs it. A failed handshake ends here (counted by the handshake).
async fn serve_accepted(
    guard: ConnGuard,
    stream: TcpStream,
    handle: ConnHandle,
    rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else { return };
    let inner = guard.inner.clone();
    let deadline = Instant::now() + inner.config.handshake_timeout;
    match handle.transport {
        Transport::Tcp => stream_conn::run(guard, stream, local, handle, rx).await,
        Transport::Tls => {
            if let Some(s) = tls::accept(&inner, stream, guard.remote, Transport::Tls, deadline).await {
                stream_conn::run(guard, s, local, handle, rx).await;
            }
        }
        Transport::Ws => ws::accept_and_run(guard, stream, local, handle, rx, deadline).await,
        Transport::Wss => {
            if let Some(s) = tls::accept(&inner, stream, guard.remote, Transport::Wss, deadline).await {
                ws::accept_and_run(guard, s, local, handle, rx, deadline).await;
            }
        }
        Transport::Udp => {}
    }
}

/// Queues `data` on `h`; `None` when the connection is closing (try another).
fn try_queue(inner: &Inner, h: &ConnHandle, data: &Bytes) -> Option<Result<(), SendError>> {
    match queue(inner, h, data.clone()) {
        Enqueue::Queued => Some(Ok(())),
        Enqueue::Overflow => Some(Err(SendError::QueueFull)),
        Enqueue::Closed => None,
    }
}

/// Queues on a connection with the configured limit; an overflow is logged
/// and counted once per connection.
pub(crate) fn queue(inner: &Inner, h: &ConnHandle, data: Bytes) -> Enqueue {
    let (res, first) = h.enqueue(data, inner.config.max_queued_bytes);
    if first {
        inner.stats.queue_overflows.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            remote = %h.remote,
            transport = %h.transport,
            limit = inner.config.max_queued_bytes,
            "closing connection: peer does not read (write queue full)"
        );
    }
    res
}

/// Queues on `target.conn` when it is alive and of the target's transport,
/// else on the latest live connection of that transport to the address.
fn send_existing(inner: &Inner, target: &Target, data: &Bytes) -> Option<Result<(), SendError>> {
    if let Some(h) = target.conn.and_then(|id| inner.conns.get(id)).filter(|h| h.transport == target.transport)
        && let Some(res) = try_queue(inner, &h, data)
    {
        return Some(res);
    }
    let (_, h) = inner.conns.by_remote(target.transport, target.remote)?;
    // An outbound TLS connection proved one name: a target that must prove
    // another (a second domain on the same address) gets its own (RFC 5922).
    if let Some(proved) = h.shared.tls_name.get()
        && *proved != tls::server_name(inner, target.remote)
    {
        return None;
    }
    try_queue(inner, &h, data)
}

/// Sends over a stream transport (TCP, TLS, WS, WSS).
pub(crate) fn send(inner: &Arc<Inner>, target: &Target, data: Bytes) -> Result<(), SendError> {
    if let Some(res) = send_existing(inner, target, &data) {
        return res;
    }
    let transport = target.transport;
    if matches!(transport, Transport::Ws | Transport::Wss | Transport::Udp) {
        return Err(SendError::NoConnection(transport));
    }
    // Open a new connection; queue the message until it is up.
    let remote = target.remote;
    let (tx, rx) = mpsc::unbounded_channel();
    let (id, handle) = inner
        .conns
        .try_insert(transport, remote, tx, inner.config.max_connections)
        .ok_or(SendError::ConnectionLimit)?;
    // From here the guard owns the entry: if the task fails, times out, or
    // never runs (runtime stopping), dropping it removes the entry.
    let guard = ConnGuard { inner: inner.clone(), id, remote };
    let name = (transport == Transport::Tls).then(|| tls::server_name(inner, remote));
    if let Some(n) = &name {
        let _ = handle.shared.tls_name.set(n.clone());
    }
    let _ = queue(inner, &handle, data);
    let inner = inner.clone();
    inner.rt.clone().spawn(async move {
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return tracing::debug!(%remote, %transport, error = %e, "connect failed"),
            Err(_) => return tracing::debug!(%remote, %transport, "connect timed out"),
        };
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else { return };
        if transport == Transport::Tls {
            let Some(name) = name else { return };
            let Some(s) = tls::connect(&inner, stream, remote, name).await else { return };
            inner.counters.opened(transport);
            stream_conn::run(guard, s, local, handle, rx).await;
        } else {
            inner.counters.opened(transport);
            stream_conn::run(guard, stream, local, handle, rx).await;
        }
    });
    Ok(())
}
