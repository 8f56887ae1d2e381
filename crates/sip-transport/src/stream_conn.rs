//! One byte-stream connection (TCP, or TLS over TCP) once it is up: the
//! reader (stream framing, CRLF keep-alive per RFC 5626 §4.4.1, idle and
//! whole-message deadlines) and the writer (the connection's send queue).
//! Generic over the stream, so TCP and TLS share every rule; it never
//! handshakes (see `tls`) and never speaks WebSocket (see `ws`).
//!
//! Two clocks guard a connection: the idle timeout restarts on every read,
//! and the message deadline starts when the first byte of a message is
//! buffered (CR/LF keep-alives do not start it) and ends when the whole
//! message is in; a peer that trickles a message slower than that
//! (slowloris) is closed even though it is never idle.

use crate::Inner;
use crate::conn::{ConnGuard, ConnHandle, ConnShared, Outgoing};
use crate::stream::queue;
use crate::types::{Source, Transport};
use bytes::{Buf, Bytes, BytesMut};
use sip_msg::Frame;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Why the reader stopped.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The peer closed, an error, a framing error, a timeout or shutdown:
    /// let the writer flush what is queued.
    Graceful,
    /// The write queue overflowed: drop everything at once.
    Killed,
}

/// A stream a connection runs over.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for S {}

/// Runs the connection until it closes; `conn` removes the table entry when
/// dropped. `local` is our address of the connection.
pub(crate) async fn run<S: Stream>(
    conn: ConnGuard,
    stream: S,
    local: SocketAddr,
    handle: ConnHandle,
    rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let inner = conn.inner.clone();
    let transport = handle.transport;
    let (rd, wr) = tokio::io::split(stream);
    let mut writer = inner.rt.spawn(write_loop(inner.clone(), transport, wr, rx, handle.shared.clone()));
    let src = Source { transport, local, remote: conn.remote, conn: Some(conn.id) };
    let end = read_loop(&conn, rd, src, &handle).await;
    close(&inner, &handle, &mut writer, end == End::Killed).await;
    drop(conn);
}

/// Ends a connection once its reader stopped: the writer is stopped at once
/// when the connection was killed (write queue overflow), else it is told to
/// flush what is queued and close, within the message timeout (a peer that
/// stopped reading must not keep it forever). Shared by stream and
/// WebSocket connections.
pub(crate) async fn close(inner: &Inner, handle: &ConnHandle, writer: &mut tokio::task::JoinHandle<()>, killed: bool) {
    if killed {
        writer.abort();
        return;
    }
    let _ = handle.tx.send(None);
    if tokio::time::timeout(inner.config.message_timeout, &mut *writer).await.is_err() {
        writer.abort();
    }
}

async fn write_loop<S: Stream>(
    inner: Arc<Inner>,
    transport: Transport,
    mut wr: WriteHalf<S>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<ConnShared>,
) {
    while let Some(Some(data)) = rx.recv().await {
        let res = wr.write_all(&data).await;
        shared.queued.fetch_sub(data.len(), Ordering::AcqRel);
        if res.is_ok() {
            inner.counters.sent(transport, data.len());
        }
        if res.is_err() {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

async fn read_loop<S: Stream>(conn: &ConnGuard, mut rd: ReadHalf<S>, src: Source, handle: &ConnHandle) -> End {
    let inner = &conn.inner;
    let remote = conn.remote;
    let Some(handler) = inner.handler.get().cloned() else { return End::Graceful };
    let limits = inner.config.limits;
    let idle = inner.config.tcp_idle_timeout;
    let mut buf = BytesMut::with_capacity(8192);
    // When the message being received must be complete.
    let mut msg_deadline: Option<Instant> = None;
    loop {
        let idle_at = Instant::now() + idle;
        let (at, for_message) = match msg_deadline {
            Some(d) if d < idle_at => (d, true),
            _ => (idle_at, false),
        };
        let read = tokio::select! {
            r = tokio::time::timeout_at(at, rd.read_buf(&mut buf)) => r,
            _ = inner.shutdown.notified() => return End::Graceful,
            _ = handle.shared.kill.notified() => return End::Killed,
        };
        match read {
            Err(_) if for_message => {
                inner.stats.message_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%remote, buffered = buf.len(), transport = %src.transport, "closing connection: message not complete in time");
                return End::Graceful;
            }
            Err(_) => {
                tracing::debug!(%remote, transport = %src.transport, "closing idle connection");
                return End::Graceful;
            }
            Ok(Ok(0)) | Ok(Err(_)) => return End::Graceful,
            Ok(Ok(n)) => inner.counters.received(src.transport, n),
        }
        if inner.stopping.load(Ordering::Relaxed) {
            return End::Graceful;
        }
        let mut completed = false;
        loop {
            match sip_msg::frame_stream(&buf, &limits) {
                Ok(Frame::Incomplete) => break,
                Ok(Frame::KeepAlive { len, ping }) => {
                    buf.advance(len);
                    if ping {
                        let _ = queue(inner, handle, Bytes::from_static(b"\r\n"));
                    }
                }
                Ok(Frame::Message { skip, len }) => {
                    buf.advance(skip);
                    let data = buf.split_to(len).freeze();
                    completed = true;
                    handler.on_raw(&src, &data);
                    handler.on_message(src, sip_msg::parse_framed(data, &limits));
                }
                Err(e) => {
                    // The framing is lost: nothing after this can be trusted (RFC 4475 §3.1.2.2/3.3.9).
                    tracing::info!(%remote, reason = e.reason, transport = %src.transport, "closing connection on framing error");
                    return End::Graceful;
                }
            }
        }
        // Framing consumed leading CR/LFs unless nothing else is buffered, so
        // a non-CR/LF first byte means a message has begun.
        msg_deadline = match buf.first() {
            None | Some(b'\r' | b'\n') => None,
            // The rest began in this read, after a message that completed.
            Some(_) if completed || msg_deadline.is_none() => Some(Instant::now() + inner.config.message_timeout),
            Some(_) => msg_deadline,
        };
    }
}
