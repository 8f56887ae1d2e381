//! TCP: listeners, the accept loop, and sends (over an open connection or a
//! new outbound one). What happens on one connection once it is up lives in
//! `tcp_conn`.
//!
//! [`send`] may be called from any thread, inside a tokio runtime or not:
//! tasks are spawned through the runtime handle captured at bind time.

use crate::Inner;
use crate::conn::{ConnGuard, ConnHandle, Enqueue};
use crate::tcp_conn;
use crate::types::{SendError, Target};
use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long an outbound connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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

pub(crate) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let res = tokio::select! {
            r = listener.accept() => r,
            _ = inner.shutdown.notified() => return,
        };
        match res {
            Ok((stream, remote)) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let Some((id, handle)) = inner.conns.try_insert(remote, tx, inner.config.max_connections) else {
                    tracing::warn!(%remote, "connection limit reached; refusing");
                    continue;
                };
                let guard = ConnGuard { inner: inner.clone(), id, remote };
                inner.rt.spawn(tcp_conn::run(guard, stream, handle, rx));
            }
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
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
            limit = inner.config.max_queued_bytes,
            "closing tcp connection: peer does not read (write queue full)"
        );
    }
    res
}

pub(crate) fn send(inner: &Arc<Inner>, target: &Target, data: Bytes) -> Result<(), SendError> {
    if let Some(h) = target.conn.and_then(|id| inner.conns.get(id))
        && let Some(res) = try_queue(inner, &h, &data)
    {
        return res;
    }
    if let Some((_, h)) = inner.conns.by_remote(&target.remote)
        && let Some(res) = try_queue(inner, &h, &data)
    {
        return res;
    }
    // Open a new connection; queue the message until it is up.
    let remote = target.remote;
    let (tx, rx) = mpsc::unbounded_channel();
    let (id, handle) =
        inner.conns.try_insert(remote, tx, inner.config.max_connections).ok_or(SendError::ConnectionLimit)?;
    // From here the guard owns the entry: if the task fails, times out, or
    // never runs (runtime stopping), dropping it removes the entry.
    let guard = ConnGuard { inner: inner.clone(), id, remote };
    let _ = queue(inner, &handle, data);
    inner.rt.spawn(async move {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote)).await {
            Ok(Ok(stream)) => tcp_conn::run(guard, stream, handle, rx).await,
            Ok(Err(e)) => tracing::debug!(%remote, error = %e, "tcp connect failed"),
            Err(_) => tracing::debug!(%remote, "tcp connect timed out"),
        }
    });
    Ok(())
}
