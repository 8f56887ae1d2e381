//! Tests of the TLS, WS and WSS transports over loopback: handshakes and
//! their failures (counted), outbound TLS with server-name verification,
//! certificate reload with open connections kept, mutual TLS, and SIP over
//! WebSocket (subprotocol, Origin, one message per frame).

mod common;
mod tls;
mod ws;
