//! The management listener's allow and deny lists (`defence.management_allow`,
//! `defence.management_deny`), enforced at accept: a connection from a source
//! the lists refuse is closed before a byte of HTTP is read, counted in
//! `sipwake_defence_management_refused_total` and logged at warning.
//!
//! Owns the accept loop's filter only. Must not touch routes or the token
//! check (`management.rs`).

use crate::reload::SharedAcl;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};

/// A TCP listener that hands axum only the connections the lists admit.
pub struct Guarded {
    inner: TcpListener,
    /// Replaced by a reload.
    acl: SharedAcl,
}

impl Guarded {
    pub fn new(inner: TcpListener, acl: SharedAcl) -> Guarded {
        Guarded { inner, acl }
    }
}

impl axum::serve::Listener for Guarded {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
            if self.acl.read().unwrap_or_else(|e| e.into_inner()).admits(addr.ip()) {
                return (stream, addr);
            }
            metrics::counter!("sipwake_defence_management_refused_total").increment(1);
            tracing::warn!("management connection refused: src={addr} reason=not-allowed");
            drop(stream);
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
