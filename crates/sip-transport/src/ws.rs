//! SIP over WebSocket (RFC 7118) on an accepted stream (plain TCP for
//! `ws:`, TLS for `wss:`): the upgrade (the `sip` subprotocol is required
//! and echoed, the `Origin` checked against the allowed list), then one SIP
//! message per WebSocket message each way (text frames when the message is
//! UTF-8, else binary), the idle timeout, and the connection's send queue.
//!
//! Never opens a connection (a browser accepts none) and never frames a
//! byte stream: each WebSocket message is parsed as a whole, like a datagram.

use crate::Inner;
use crate::conn::{ConnGuard, ConnHandle, ConnShared, Outgoing};
use crate::stats::HandshakeFailure;
use crate::stream_conn::Stream;
use crate::types::{Source, Transport};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{WebSocketStream, accept_hdr_async_with_config};

/// Why an upgrade request is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub why: HandshakeFailure,
    pub status: StatusCode,
    pub text: &'static str,
}

/// Checks an upgrade request: `Sec-WebSocket-Protocol` lists `sip`
/// (any case), and `Origin` is allowed (`allowed` empty = any).
pub(crate) fn check_request(req: &Request, allowed: &[String]) -> Result<(), Refusal> {
    let sip = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("sip"));
    if !sip {
        return Err(Refusal {
            why: HandshakeFailure::WsProtocol,
            status: StatusCode::BAD_REQUEST,
            text: "Sec-WebSocket-Protocol must include sip (RFC 7118)",
        });
    }
    if !allowed.is_empty() {
        let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
        if !origin.is_some_and(|o| allowed.iter().any(|a| a == o)) {
            return Err(Refusal {
                why: HandshakeFailure::Origin,
                status: StatusCode::FORBIDDEN,
                text: "Origin not allowed",
            });
        }
    }
    Ok(())
}

/// Upgrades and runs the connection until it closes; a refused or failed
/// upgrade is counted, logged at debug, and closes the connection.
pub(crate) async fn accept_and_run<S: Stream>(
    conn: ConnGuard,
    stream: S,
    local: SocketAddr,
    handle: ConnHandle,
    rx: mpsc::UnboundedReceiver<Outgoing>,
    deadline: Instant,
) {
    let inner = conn.inner.clone();
    let transport = handle.transport;
    let remote = conn.remote;
    let mut refused: Option<HandshakeFailure> = None;
    let allowed = &inner.config.ws_allowed_origins;
    // The signature is tungstenite's `Callback`: its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        match check_request(req, allowed) {
            Ok(()) => {
                resp.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("sip"));
                Ok(resp)
            }
            Err(r) => {
                refused = Some(r.why);
                let mut e = ErrorResponse::new(Some(r.text.to_string()));
                *e.status_mut() = r.status;
                Err(e)
            }
        }
    };
    let max = inner.config.limits.max_message;
    let wsconf = WebSocketConfig::default().max_message_size(Some(max)).max_frame_size(Some(max));
    let res = tokio::time::timeout_at(deadline, accept_hdr_async_with_config(stream, callback, Some(wsconf))).await;
    let ws = match res {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            let why = refused.unwrap_or(HandshakeFailure::WsProtocol);
            inner.counters.handshake_failed(transport, why);
            tracing::debug!(%remote, %transport, reason = why.as_str(), error = %e, "WebSocket handshake refused");
            return;
        }
        Err(_) => {
            inner.counters.handshake_failed(transport, HandshakeFailure::Timeout);
            tracing::debug!(%remote, %transport, "WebSocket handshake timed out");
            return;
        }
    };
    run(conn, ws, local, handle, rx).await;
}

async fn run<S: Stream>(
    conn: ConnGuard,
    ws: WebSocketStream<S>,
    local: SocketAddr,
    handle: ConnHandle,
    rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let inner = conn.inner.clone();
    let transport = handle.transport;
    let (sink, stream) = ws.split();
    let mut writer = inner.rt.spawn(write_loop(inner.clone(), transport, sink, rx, handle.shared.clone()));
    let src = Source { transport, local, remote: conn.remote, conn: Some(conn.id) };
    let killed = read_loop(&inner, stream, src, &handle).await;
    crate::stream_conn::close(&inner, &handle, &mut writer, killed).await;
    drop(conn);
}

async fn write_loop<S: Stream>(
    inner: Arc<Inner>,
    transport: Transport,
    mut sink: futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<ConnShared>,
) {
    while let Some(Some(data)) = rx.recv().await {
        let len = data.len();
        let res = sink.send(to_message(data)).await;
        shared.queued.fetch_sub(len, Ordering::AcqRel);
        if res.is_err() {
            break;
        }
        inner.counters.sent(transport, len);
    }
    let _ = sink.close().await;
}

/// One SIP message as one WebSocket message: text when it is UTF-8.
pub(crate) fn to_message(data: Bytes) -> Message {
    match Utf8Bytes::try_from(data.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(data),
    }
}

/// Reads until the peer closes, an error, the idle timeout or shutdown;
/// `true` when the write queue overflowed (drop everything at once).
async fn read_loop<S: Stream>(
    inner: &Inner,
    mut stream: futures_util::stream::SplitStream<WebSocketStream<S>>,
    src: Source,
    handle: &ConnHandle,
) -> bool {
    let Some(handler) = inner.handler.get().cloned() else { return false };
    let remote = src.remote;
    loop {
        let next = tokio::select! {
            r = tokio::time::timeout(inner.config.tcp_idle_timeout, stream.next()) => r,
            _ = inner.shutdown.notified() => return false,
            _ = handle.shared.kill.notified() => return true,
        };
        let data: Bytes = match next {
            Err(_) => {
                tracing::debug!(%remote, transport = %src.transport, "closing idle connection");
                return false;
            }
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return false,
            Ok(Some(Ok(Message::Text(t)))) => t.into(),
            Ok(Some(Ok(Message::Binary(b)))) => b,
            // Pings are answered by the WebSocket layer.
            Ok(Some(Ok(_))) => continue,
        };
        if inner.stopping.load(Ordering::Relaxed) {
            return false;
        }
        inner.counters.received(src.transport, data.len());
        // CR/LF-only messages are keep-alives.
        if data.iter().all(|&c| c == b'\r' || c == b'\n') {
            continue;
        }
        handler.on_raw(&src, &data);
        handler.on_message(src, sip_msg::parse_datagram(data, &inner.config.limits));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request {
        let mut b = Request::builder().uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn subprotocol_and_origin_rules() {
        assert!(check_request(&req(&[("Sec-WebSocket-Protocol", "SIP")]), &[]).is_ok());
        assert!(check_request(&req(&[("Sec-WebSocket-Protocol", "chat, sip")]), &[]).is_ok());
        let e = check_request(&req(&[("Sec-WebSocket-Protocol", "sipx")]), &[]).unwrap_err();
        assert_eq!((e.why, e.status), (HandshakeFailure::WsProtocol, StatusCode::BAD_REQUEST));
        assert!(check_request(&req(&[]), &[]).is_err());
        let allowed = vec!["https://phone.example.com".to_string()];
        let ok = req(&[("Sec-WebSocket-Protocol", "sip"), ("Origin", "https://phone.example.com")]);
        assert!(check_request(&ok, &allowed).is_ok());
        let bad = req(&[("Sec-WebSocket-Protocol", "sip"), ("Origin", "https://evil.example.com")]);
        let e = check_request(&bad, &allowed).unwrap_err();
        assert_eq!((e.why, e.status), (HandshakeFailure::Origin, StatusCode::FORBIDDEN));
        let e = check_request(&req(&[("Sec-WebSocket-Protocol", "sip")]), &allowed).unwrap_err();
        assert_eq!(e.why, HandshakeFailure::Origin);
    }

    #[test]
    fn text_frames_for_utf8_binary_otherwise() {
        assert!(matches!(to_message(Bytes::from_static(b"OPTIONS sip:a SIP/2.0\r\n")), Message::Text(_)));
        assert!(matches!(to_message(Bytes::from_static(b"\xff\xfe")), Message::Binary(_)));
    }
}
