//! TCP: listeners, per-connection reader/writer tasks, stream framing,
//! CRLF keep-alive (RFC 5626 §4.4.1), idle close, and outbound connects.

use crate::Inner;
use crate::conn::Outgoing;
use crate::types::{ConnId, SendError, Source, Target, Transport};
use bytes::{Buf, Bytes, BytesMut};
use sip_msg::Frame;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

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
                if inner.conns.len() >= inner.config.max_connections {
                    tracing::warn!(%remote, "connection limit reached; refusing");
                    continue;
                }
                let (tx, rx) = mpsc::unbounded_channel();
                let id = inner.conns.insert(remote, tx);
                tokio::spawn(run_conn(inner.clone(), stream, id, remote, rx));
            }
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

pub(crate) fn send(inner: &Arc<Inner>, target: &Target, data: Bytes) -> Result<(), SendError> {
    let existing = target
        .conn
        .and_then(|id| inner.conns.get(id))
        .or_else(|| inner.conns.by_remote(&target.remote).map(|(_, h)| h));
    if let Some(h) = existing
        && h.tx.send(Some(data.clone())).is_ok()
    {
        return Ok(());
    }
    if inner.conns.len() >= inner.config.max_connections {
        return Err(SendError::ConnectionLimit);
    }
    // Open a new connection; queue the message until it is up.
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = tx.send(Some(data));
    let remote = target.remote;
    let id = inner.conns.insert(remote, tx);
    let inner = inner.clone();
    tokio::spawn(async move {
        let connect = tokio::time::timeout(std::time::Duration::from_secs(10), TcpStream::connect(remote)).await;
        match connect {
            Ok(Ok(stream)) => run_conn(inner, stream, id, remote, rx).await,
            Ok(Err(e)) => {
                tracing::debug!(%remote, error = %e, "tcp connect failed");
                close(&inner, id, remote);
            }
            Err(_) => {
                tracing::debug!(%remote, "tcp connect timed out");
                close(&inner, id, remote);
            }
        }
    });
    Ok(())
}

fn close(inner: &Arc<Inner>, id: ConnId, remote: SocketAddr) {
    inner.conns.remove(id);
    if let Some(h) = inner.handler.get() {
        h.on_closed(id, remote);
    }
}

async fn run_conn(
    inner: Arc<Inner>,
    stream: TcpStream,
    id: ConnId,
    remote: SocketAddr,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let _ = stream.set_nodelay(true);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return close(&inner, id, remote),
    };
    let (mut rd, mut wr) = stream.into_split();
    let handler = inner.handler.get().expect("handler set before start").clone();
    let pong_tx = inner.conns.get(id).map(|h| h.tx);
    let writer = tokio::spawn(async move {
        while let Some(Some(data)) = rx.recv().await {
            if wr.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let src = Source { transport: Transport::Tcp, local, remote, conn: Some(id) };
    let limits = inner.config.limits;
    let idle = inner.config.tcp_idle_timeout;
    let mut buf = BytesMut::with_capacity(8192);
    'outer: loop {
        let read = tokio::select! {
            r = tokio::time::timeout(idle, rd.read_buf(&mut buf)) => r,
            _ = inner.shutdown.notified() => break,
        };
        match read {
            Err(_) => {
                tracing::debug!(%remote, "closing idle tcp connection");
                break;
            }
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
        }
        if inner.stopping.load(Ordering::Relaxed) {
            break;
        }
        loop {
            match sip_msg::frame_stream(&buf, &limits) {
                Ok(Frame::Incomplete) => break,
                Ok(Frame::KeepAlive { len, ping }) => {
                    buf.advance(len);
                    if ping && let Some(tx) = &pong_tx {
                        let _ = tx.send(Some(Bytes::from_static(b"\r\n")));
                    }
                }
                Ok(Frame::Message { skip, len }) => {
                    buf.advance(skip);
                    let data = buf.split_to(len).freeze();
                    handler.on_raw(&src, &data);
                    handler.on_message(src, sip_msg::parse_framed(data, &limits));
                }
                Err(e) => {
                    // The framing is lost: nothing after this can be trusted (RFC 4475 §3.1.2.2/3.3.9).
                    tracing::info!(%remote, reason = e.reason, "closing tcp connection on framing error");
                    break 'outer;
                }
            }
        }
    }
    if let Some(tx) = pong_tx {
        let _ = tx.send(None);
    }
    let _ = writer.await;
    close(&inner, id, remote);
}
