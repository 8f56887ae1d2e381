//! `sip-transport`: the network edge of sipwake — UDP, TCP, TLS, WS and WSS
//! (RFC 7118) listeners on IPv4 and IPv6, outbound TCP and TLS, stream
//! framing, RFC 5626 CRLF keep-alive, per-transport counters, and the
//! connection (flow) table that lets a later request reuse the connection a
//! phone (or a browser) opened.
//!
//! It owns sockets and tasks only. It parses each message with `sip-msg`
//! (framing needs it) and hands the result to a [`Handler`]; it never looks
//! at what a message means, and it never decides where a response goes
//! (that is RFC 3261 §18.2.2 logic in the server core).
//!
//! [`Transports`] may be used from any thread (a tokio worker, a UDP
//! receive thread, a store writer thread): tasks are spawned through the
//! runtime handle captured by [`Transports::bind`].

mod conn;
mod stats;
mod stream;
mod stream_conn;
mod tls;
mod tls_config;
mod types;
mod udp;
mod ws;

pub use conn::ConnTable;
pub use stats::{HandshakeFailure, TransportStats};
pub use types::{
    ConnId, Handler, ListenSpec, SendError, Source, Target, TlsSettings, Transport, TransportConfig, VerifyClient,
};

use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The bound listeners and the connection table. Cheap to clone.
#[derive(Clone)]
pub struct Transports {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: TransportConfig,
    /// Each UDP socket with its bound address (looked up once, not per send).
    pub(crate) udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    /// Stream listeners until `start` takes them.
    listeners: Mutex<Vec<(Transport, TcpListener)>>,
    /// Each stream listener's transport and bound address.
    stream_local: Vec<(Transport, SocketAddr)>,
    /// TLS configs (server and client), swapped by `reload_tls`.
    pub(crate) tls: tls_config::TlsState,
    /// The DNS name each outbound TLS peer must prove.
    pub(crate) server_names: RwLock<HashMap<SocketAddr, rustls_pki_types::ServerName<'static>>>,
    pub(crate) conns: ConnTable,
    pub(crate) handler: OnceLock<Arc<dyn Handler>>,
    pub(crate) shutdown: Notify,
    pub(crate) stopping: AtomicBool,
    /// The runtime every task is spawned on (captured at bind, so that
    /// sends work from threads outside the runtime).
    pub(crate) rt: tokio::runtime::Handle,
    pub(crate) stats: Stats,
    pub(crate) counters: stats::TransportCounters,
}

/// Event counters.
#[derive(Default)]
pub(crate) struct Stats {
    /// Connections closed because their write queue overflowed.
    pub queue_overflows: AtomicU64,
    /// Connections closed because a message did not complete in time.
    pub message_timeouts: AtomicU64,
}

impl Transports {
    /// Binds every listener (port 0 picks a free port; see [`Transports::local_addrs`]).
    /// The runtime it runs on is the one every later task is spawned on.
    pub async fn bind(specs: &[ListenSpec], config: TransportConfig) -> std::io::Result<Transports> {
        let rt = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let tls = tls_config::TlsState::load(config.tls.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mut udp = Vec::new();
        let mut listeners = Vec::new();
        let mut stream_local = Vec::new();
        for spec in specs {
            if matches!(spec.transport, Transport::Tls | Transport::Wss) && tls.current().server.is_none() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("listener {spec} needs a TLS certificate and private key, and none is configured"),
                ));
            }
            match spec.transport {
                Transport::Udp => {
                    let s = udp::bind(spec.addr, &config)?;
                    udp.push((s.local_addr()?, Arc::new(s)));
                }
                t => {
                    let l = stream::bind(spec.addr)?;
                    stream_local.push((t, l.local_addr()?));
                    listeners.push((t, l));
                }
            }
        }
        Ok(Transports {
            inner: Arc::new(Inner {
                config,
                udp,
                listeners: Mutex::new(listeners),
                stream_local,
                tls,
                server_names: RwLock::default(),
                conns: ConnTable::default(),
                handler: OnceLock::new(),
                shutdown: Notify::new(),
                stopping: AtomicBool::new(false),
                rt,
                stats: Stats::default(),
                counters: stats::TransportCounters::default(),
            }),
        })
    }

    /// The addresses actually bound, with their transports.
    pub fn local_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        let mut v: Vec<_> = self.inner.udp.iter().map(|(a, _)| (Transport::Udp, *a)).collect();
        v.extend(self.inner.stream_local.iter().copied());
        v
    }

    /// Starts the receive threads and accept loops (on the runtime of
    /// [`Transports::bind`]); every message goes to `handler`.
    pub fn start(&self, handler: Arc<dyn Handler>) {
        if self.inner.handler.set(handler).is_err() {
            return;
        }
        let rt = self.inner.rt.clone();
        for (_, sock) in &self.inner.udp {
            for n in 0..self.inner.config.udp_tasks.max(1) {
                udp::spawn_receiver(self.inner.clone(), sock.clone(), rt.clone(), n);
            }
        }
        let listeners = std::mem::take(&mut *self.inner.listeners.lock().unwrap_or_else(|e| e.into_inner()));
        for (t, l) in listeners {
            rt.spawn(stream::accept_loop(self.inner.clone(), l, t));
        }
    }

    /// Sends one serialized message. UDP goes out at once from the socket of
    /// the right address family. TCP, TLS, WS and WSS go over `target.conn`
    /// when it is alive and of the target's transport, else over the latest
    /// live connection of that transport to the same address; else TCP and
    /// TLS open a new connection in the background (TLS handshakes first;
    /// never downgraded to TCP), and WS/WSS fail with
    /// [`SendError::NoConnection`]. Callable from any thread. A send that
    /// would queue more than [`TransportConfig::max_queued_bytes`] on a
    /// connection closes it and fails with [`SendError::QueueFull`].
    pub fn send(&self, target: &Target, data: Bytes) -> Result<(), SendError> {
        match target.transport {
            Transport::Udp => udp::send(&self.inner, target.remote, data),
            _ => stream::send(&self.inner, target, data),
        }
    }

    /// Registers the DNS name the TLS server at `remote` must prove on our
    /// outbound connections (without one, its IP address is checked
    /// against the certificate's IP SANs). An invalid name is logged and
    /// ignored.
    pub fn set_server_name(&self, remote: SocketAddr, name: &str) {
        match tls::parse_server_name(name) {
            Ok(n) => {
                self.inner.server_names.write().unwrap_or_else(|e| e.into_inner()).insert(remote, n);
            }
            Err(e) => tracing::warn!(%remote, "ignoring TLS server name: {e}"),
        }
    }

    /// Re-reads the TLS certificate, key and CA files and swaps the
    /// configs: new handshakes use them, connections already up stay. On
    /// error (naming the file and the problem) the old configs stay.
    pub fn reload_tls(&self) -> Result<(), String> {
        self.inner.tls.reload()
    }

    /// Counters of every transport, in [`Transport::ALL`] order.
    pub fn transport_stats(&self) -> Vec<(Transport, TransportStats)> {
        self.inner.counters.snapshot(self.inner.conns.count_by_transport())
    }

    /// Whether a connection is still open.
    pub fn conn_alive(&self, id: ConnId) -> bool {
        self.inner.conns.get(id).is_some()
    }

    /// Number of open connections.
    pub fn conn_count(&self) -> usize {
        self.inner.conns.len()
    }

    /// Bytes queued for writing over all connections.
    pub fn queued_bytes(&self) -> usize {
        self.inner.conns.queued_bytes()
    }

    /// Slots allocated in the connection table's maps (by id, by remote).
    pub fn conn_table_capacity(&self) -> (usize, usize) {
        self.inner.conns.capacity()
    }

    /// Connections closed because the peer did not read (write queue full).
    pub fn queue_overflows(&self) -> u64 {
        self.inner.stats.queue_overflows.load(Ordering::Relaxed)
    }

    /// Connections closed because a message did not arrive whole in time.
    pub fn message_timeouts(&self) -> u64 {
        self.inner.stats.message_timeouts.load(Ordering::Relaxed)
    }

    /// Stops accepting and receiving and closes every connection.
    pub fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.shutdown.notify_waiters();
        self.inner.conns.close_all();
    }
}
