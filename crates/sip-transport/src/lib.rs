//! `sip-transport`: the network edge of sipwake — UDP and TCP listeners on
//! IPv4 and IPv6, stream framing, RFC 5626 CRLF keep-alive, and the
//! connection (flow) table that lets a later request reuse the TCP
//! connection a phone opened.
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
mod tcp;
mod tcp_conn;
mod types;
mod udp;

pub use conn::ConnTable;
pub use types::{ConnId, Handler, ListenSpec, SendError, Source, Target, Transport, TransportConfig};

use bytes::Bytes;
use std::net::SocketAddr;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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
    tcp: Mutex<Vec<TcpListener>>,
    pub(crate) tcp_local: Vec<SocketAddr>,
    pub(crate) conns: ConnTable,
    pub(crate) handler: OnceLock<Arc<dyn Handler>>,
    pub(crate) shutdown: Notify,
    pub(crate) stopping: AtomicBool,
    /// The runtime every task is spawned on (captured at bind, so that
    /// sends work from threads outside the runtime).
    pub(crate) rt: tokio::runtime::Handle,
    pub(crate) stats: Stats,
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
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        let mut tcp_local = Vec::new();
        for spec in specs {
            match spec.transport {
                Transport::Udp => {
                    let s = udp::bind(spec.addr, &config)?;
                    udp.push((s.local_addr()?, Arc::new(s)));
                }
                Transport::Tcp => {
                    let l = tcp::bind(spec.addr)?;
                    tcp_local.push(l.local_addr()?);
                    tcp.push(l);
                }
                t => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::Unsupported,
                        format!("{t} listeners are not supported yet"),
                    ));
                }
            }
        }
        Ok(Transports {
            inner: Arc::new(Inner {
                config,
                udp,
                tcp: Mutex::new(tcp),
                tcp_local,
                conns: ConnTable::default(),
                handler: OnceLock::new(),
                shutdown: Notify::new(),
                stopping: AtomicBool::new(false),
                rt,
                stats: Stats::default(),
            }),
        })
    }

    /// The addresses actually bound, with their transports.
    pub fn local_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        let mut v: Vec<_> = self.inner.udp.iter().map(|(a, _)| (Transport::Udp, *a)).collect();
        v.extend(self.inner.tcp_local.iter().map(|&a| (Transport::Tcp, a)));
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
        let listeners = std::mem::take(&mut *self.inner.tcp.lock().expect("tcp listeners"));
        for l in listeners {
            rt.spawn(tcp::accept_loop(self.inner.clone(), l));
        }
    }

    /// Sends one serialized message. UDP goes out at once from the socket of
    /// the right address family; TCP goes over `target.conn` when it is
    /// alive, else over any live connection to the same address, else over
    /// a new connection (opened in the background). Callable from any
    /// thread. A TCP send that would queue more than
    /// [`TransportConfig::max_queued_bytes`] on a connection closes it and
    /// fails with [`SendError::QueueFull`].
    pub fn send(&self, target: &Target, data: Bytes) -> Result<(), SendError> {
        match target.transport {
            Transport::Udp => udp::send(&self.inner, target.remote, data),
            Transport::Tcp => tcp::send(&self.inner, target, data),
            // Never downgraded to plain TCP.
            t => Err(SendError::Unsupported(t)),
        }
    }

    /// Whether a connection is still open.
    pub fn conn_alive(&self, id: ConnId) -> bool {
        self.inner.conns.get(id).is_some()
    }

    /// Number of open connections.
    pub fn conn_count(&self) -> usize {
        self.inner.conns.len()
    }

    /// Bytes queued for writing over all TCP connections.
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
