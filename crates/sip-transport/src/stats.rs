//! Per-transport counters (connections, handshake failures, bytes) and the
//! plain snapshot [`TransportStats`] handed to whoever renders metrics.
//!
//! Owns only atomics: it never touches sockets or the connection table
//! (the open-connection gauge is read from the table at snapshot time).

use crate::types::Transport;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a TLS or WebSocket handshake failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The TLS handshake failed (not TLS, bad certificate, no shared cipher...).
    Tls,
    /// The WebSocket upgrade failed or did not ask for the `sip` subprotocol.
    WsProtocol,
    /// The WebSocket `Origin` is not allowed.
    Origin,
    /// The handshake did not finish in time.
    Timeout,
}

impl HandshakeFailure {
    /// Every reason, in a stable order.
    pub const ALL: [HandshakeFailure; 4] =
        [HandshakeFailure::Tls, HandshakeFailure::WsProtocol, HandshakeFailure::Origin, HandshakeFailure::Timeout];

    /// The metric label (`tls`, `ws_protocol`, `origin`, `timeout`).
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::Tls => "tls",
            HandshakeFailure::WsProtocol => "ws_protocol",
            HandshakeFailure::Origin => "origin",
            HandshakeFailure::Timeout => "timeout",
        }
    }
}

/// A snapshot of one transport's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Connections accepted by our listeners.
    pub connections_accepted: u64,
    /// Connections we opened (counted once connected and, for TLS, handshaken).
    pub connections_opened: u64,
    /// Connections open now (including those still handshaking).
    pub connections_open: u64,
    /// Failed handshakes, in [`HandshakeFailure::ALL`] order.
    pub handshake_failures: [u64; 4],
    /// SIP bytes received (after TLS decryption, without WebSocket framing).
    pub bytes_received: u64,
    /// SIP bytes sent (before TLS encryption, without WebSocket framing).
    pub bytes_sent: u64,
}

impl TransportStats {
    /// Failed handshakes for one reason.
    pub fn handshake_failures(&self, reason: HandshakeFailure) -> u64 {
        self.handshake_failures[reason as usize]
    }
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    opened: AtomicU64,
    failures: [AtomicU64; 4],
    rx: AtomicU64,
    tx: AtomicU64,
}

/// The live counters of every transport.
#[derive(Default)]
pub(crate) struct TransportCounters {
    by_transport: [Counters; 5],
}

/// The slot of a transport in [`Transport::ALL`] order.
pub(crate) fn index(t: Transport) -> usize {
    match t {
        Transport::Udp => 0,
        Transport::Tcp => 1,
        Transport::Tls => 2,
        Transport::Ws => 3,
        Transport::Wss => 4,
    }
}

impl TransportCounters {
    fn of(&self, t: Transport) -> &Counters {
        &self.by_transport[index(t)]
    }
    pub(crate) fn accepted(&self, t: Transport) {
        self.of(t).accepted.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn opened(&self, t: Transport) {
        self.of(t).opened.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn handshake_failed(&self, t: Transport, why: HandshakeFailure) {
        self.of(t).failures[why as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn received(&self, t: Transport, n: usize) {
        self.of(t).rx.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn sent(&self, t: Transport, n: usize) {
        self.of(t).tx.fetch_add(n as u64, Ordering::Relaxed);
    }
    /// Every transport's counters, with `open` connections per transport.
    pub(crate) fn snapshot(&self, open: [usize; 5]) -> Vec<(Transport, TransportStats)> {
        Transport::ALL
            .into_iter()
            .map(|t| {
                let c = self.of(t);
                let s = TransportStats {
                    connections_accepted: c.accepted.load(Ordering::Relaxed),
                    connections_opened: c.opened.load(Ordering::Relaxed),
                    connections_open: open[index(t)] as u64,
                    handshake_failures: std::array::from_fn(|i| c.failures[i].load(Ordering::Relaxed)),
                    bytes_received: c.rx.load(Ordering::Relaxed),
                    bytes_sent: c.tx.load(Ordering::Relaxed),
                };
                (t, s)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_land_in_their_transport_and_reason() {
        let c = TransportCounters::default();
        c.accepted(Transport::Tls);
        c.handshake_failed(Transport::Wss, HandshakeFailure::Origin);
        c.handshake_failed(Transport::Wss, HandshakeFailure::Origin);
        c.received(Transport::Ws, 10);
        c.sent(Transport::Udp, 7);
        let snap = c.snapshot([0, 0, 3, 0, 1]);
        let get = |t| snap.iter().find(|(x, _)| *x == t).map(|(_, s)| s.clone()).unwrap();
        assert_eq!(get(Transport::Tls).connections_accepted, 1);
        assert_eq!(get(Transport::Tls).connections_open, 3);
        assert_eq!(get(Transport::Wss).handshake_failures(HandshakeFailure::Origin), 2);
        assert_eq!(get(Transport::Wss).handshake_failures(HandshakeFailure::Tls), 0);
        assert_eq!(get(Transport::Ws).bytes_received, 10);
        assert_eq!(get(Transport::Udp).bytes_sent, 7);
        assert_eq!(get(Transport::Tcp), TransportStats::default());
    }
}
