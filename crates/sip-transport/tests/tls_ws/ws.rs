//! SIP over WebSocket (RFC 7118): the `sip` subprotocol, the Origin list,
//! one SIP message per frame each way, requests to the browser over its own
//! connection, WSS (TLS then WebSocket), no outbound WebSocket connections.

use crate::common::*;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use sip_transport::{HandshakeFailure, SendError, Target, Transport, TransportConfig};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{WebSocketStream, client_async};

const WAIT: Duration = Duration::from_secs(5);

fn request_for(url: &str, protocol: Option<&str>, origin: Option<&str>) -> tungstenite::handshake::client::Request {
    let mut r = url.into_client_request().unwrap();
    if let Some(p) = protocol {
        r.headers_mut().insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    if let Some(o) = origin {
        r.headers_mut().insert("Origin", o.parse().unwrap());
    }
    r
}

async fn ws_connect(
    addr: std::net::SocketAddr,
    protocol: Option<&str>,
    origin: Option<&str>,
) -> Result<WebSocketStream<tokio::net::TcpStream>, tungstenite::Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (ws, resp) = client_async(request_for(&format!("ws://{addr}/"), protocol, origin), tcp).await?;
    assert_eq!(resp.headers().get("Sec-WebSocket-Protocol").unwrap(), "sip");
    Ok(ws)
}

/// The next text or binary message.
async fn next_message<S>(ws: &mut WebSocketStream<S>) -> Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let m = tokio::time::timeout(WAIT, ws.next()).await.expect("no message").unwrap().unwrap();
        if matches!(m, Message::Text(_) | Message::Binary(_)) {
            return m;
        }
    }
}

fn status_of(e: tungstenite::Error) -> u16 {
    match e {
        tungstenite::Error::Http(r) => r.status().as_u16(),
        e => panic!("expected an HTTP refusal, got {e}"),
    }
}

#[tokio::test]
async fn ws_carries_one_message_per_frame_and_requests_reach_the_browser() {
    let (t, h) = start(&["ws:127.0.0.1:0", "udp:127.0.0.1:0"], TransportConfig::default()).await;
    let a = addr(&t, Transport::Ws);
    let mut ws = ws_connect(a, Some("sip"), Some("https://anywhere.example")).await.unwrap();
    // No Content-Length (allowed on WS), a CRLF keep-alive that is ignored.
    ws.send(Message::text("\r\n\r\n")).await.unwrap();
    ws.send(Message::text(String::from_utf8(request("REGISTER", 1, false)).unwrap())).await.unwrap();
    let m = next_message(&mut ws).await;
    let Message::Text(text) = m else { panic!("expected a text frame, got {m:?}") };
    assert!(text.starts_with("SIP/2.0 200 OK") && text.contains("Call-ID: c1@t"), "{text}");
    assert!(wait_until(WAIT, || h.count() == 1).await);
    let seen = h.last().unwrap();
    assert!(seen.data.starts_with(b"REGISTER sip:a@127.0.0.1"));
    let src = seen.src;
    assert_eq!(src.transport, Transport::Ws);
    let conn = src.conn.unwrap();
    // Binary frames are accepted too.
    ws.send(Message::binary(request("OPTIONS", 2, true))).await.unwrap();
    assert!(wait_until(WAIT, || h.count() == 2).await);
    next_message(&mut ws).await;
    // A request to the browser goes over its connection, found by id or by address.
    for target in [
        Target { transport: Transport::Ws, remote: src.remote, conn: Some(conn) },
        Target { transport: Transport::Ws, remote: src.remote, conn: None },
    ] {
        t.send(&target, Bytes::from(request("OPTIONS", 3, true))).unwrap();
        let Message::Text(text) = next_message(&mut ws).await else { panic!("binary") };
        assert!(text.starts_with("OPTIONS sip:a@127.0.0.1"), "{text}");
    }
    // Non-UTF-8 goes as binary.
    t.send(&Target::from(&src), Bytes::from_static(b"SIP/2.0 200 OK\r\nX: \xff\r\n\r\n")).unwrap();
    assert!(matches!(next_message(&mut ws).await, Message::Binary(_)));
    let s = stats(&t, Transport::Ws);
    assert_eq!((s.connections_accepted, s.connections_open), (1, 1));
    assert!(s.bytes_received > 0 && s.bytes_sent > 0);
    // Once the browser leaves, nothing can reach it: no outbound WebSocket.
    ws.close(None).await.unwrap();
    assert!(wait_until(WAIT, || !t.conn_alive(conn)).await);
    let e = t.send(&Target::from(&src), Bytes::from(request("OPTIONS", 4, true))).unwrap_err();
    assert_eq!(e, SendError::NoConnection(Transport::Ws));
}

#[tokio::test]
async fn ws_handshakes_without_sip_or_from_other_origins_are_refused() {
    let config =
        TransportConfig { ws_allowed_origins: vec!["https://phone.example.com".into()], ..TransportConfig::default() };
    let (t, h) = start(&["ws:127.0.0.1:0"], config).await;
    let a = addr(&t, Transport::Ws);
    let e = ws_connect(a, None, Some("https://phone.example.com")).await.err().unwrap();
    assert_eq!(status_of(e), 400);
    let e = ws_connect(a, Some("chat"), Some("https://phone.example.com")).await.err().unwrap();
    assert_eq!(status_of(e), 400);
    let e = ws_connect(a, Some("sip"), Some("https://evil.example.com")).await.err().unwrap();
    assert_eq!(status_of(e), 403);
    let e = ws_connect(a, Some("sip"), None).await.err().unwrap();
    assert_eq!(status_of(e), 403);
    assert!(
        wait_until(WAIT, || {
            let s = stats(&t, Transport::Ws);
            s.handshake_failures(HandshakeFailure::WsProtocol) == 2
                && s.handshake_failures(HandshakeFailure::Origin) == 2
        })
        .await
    );
    // The allowed origin with the subprotocol in a list is served (any case
    // is accepted: see the unit test; this client wants its own spelling back).
    let mut ws = ws_connect(a, Some("foo, sip"), Some("https://phone.example.com")).await.unwrap();
    ws.send(Message::text(String::from_utf8(request("OPTIONS", 1, true)).unwrap())).await.unwrap();
    next_message(&mut ws).await;
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn wss_is_tls_then_websocket() {
    let pki = Pki::new("a");
    let config = TransportConfig { tls: pki.server_settings(), ..TransportConfig::default() };
    let (t, h) = start(&["wss:127.0.0.1:0"], config).await;
    let a = addr(&t, Transport::Wss);
    let tls = tls_connect(a, client_config(&pki.ca_file, None)).await.unwrap();
    let (mut ws, resp) = client_async(request_for(&format!("wss://{a}/"), Some("sip"), None), tls).await.unwrap();
    assert_eq!(resp.headers().get("Sec-WebSocket-Protocol").unwrap(), "sip");
    ws.send(Message::text(String::from_utf8(request("REGISTER", 1, false)).unwrap())).await.unwrap();
    let Message::Text(text) = next_message(&mut ws).await else { panic!("binary") };
    assert!(text.contains("Call-ID: c1@t"));
    let src = h.last().unwrap().src;
    assert_eq!(src.transport, Transport::Wss);
    t.send(
        &Target { transport: Transport::Wss, remote: src.remote, conn: None },
        Bytes::from(request("OPTIONS", 2, true)),
    )
    .unwrap();
    let Message::Text(text) = next_message(&mut ws).await else { panic!("binary") };
    assert!(text.starts_with("OPTIONS "));
    // Plain WebSocket at a WSS listener is a failed TLS handshake.
    assert!(ws_connect(a, Some("sip"), None).await.is_err());
    assert!(wait_until(WAIT, || stats(&t, Transport::Wss).handshake_failures(HandshakeFailure::Tls) == 1).await);
    // WSS without a connection cannot be sent to.
    let e =
        t.send(&Target { transport: Transport::Wss, remote: "127.0.0.1:9".parse().unwrap(), conn: None }, Bytes::new());
    assert_eq!(e.unwrap_err(), SendError::NoConnection(Transport::Wss));
}
