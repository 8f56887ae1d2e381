//! `sip-transport`: the network edge of sipwake — UDP and TCP listeners on
//! IPv4 and IPv6, stream framing, RFC 5626 CRLF keep-alive, and the
//! connection (flow) table that lets a later request reuse the TCP
//! connection a phone opened.
//!
//! It owns sockets and tasks only. It parses each message with `sip-msg`
//! (framing needs it) and hands the result to a [`Handler`]; it never looks
//! at what a message means, and it never decides where a response goes
//! (that is RFC 3261 §18.2.2 logic in the server core).

mod conn;
mod tcp;
mod types;
mod udp;

pub use conn::ConnTable;
pub use types::{ConnId, Handler, ListenSpec, SendError, Source, Target, Transport, TransportConfig};

use bytes::Bytes;
use std::net::SocketAddr;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
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
}

impl Transports {
    /// Binds every listener (port 0 picks a free port; see [`Transports::local_addrs`]).
    pub async fn bind(specs: &[ListenSpec], config: TransportConfig) -> std::io::Result<Transports> {
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
            }),
        })
    }

    /// The addresses actually bound, with their transports.
    pub fn local_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        let mut v: Vec<_> = self.inner.udp.iter().map(|(a, _)| (Transport::Udp, *a)).collect();
        v.extend(self.inner.tcp_local.iter().map(|&a| (Transport::Tcp, a)));
        v
    }

    /// Starts the receive threads and accept loops; every message goes to
    /// `handler`. Must be called from within a tokio runtime.
    pub fn start(&self, handler: Arc<dyn Handler>) {
        if self.inner.handler.set(handler).is_err() {
            return;
        }
        let rt = tokio::runtime::Handle::current();
        for (_, sock) in &self.inner.udp {
            for n in 0..self.inner.config.udp_tasks.max(1) {
                udp::spawn_receiver(self.inner.clone(), sock.clone(), rt.clone(), n);
            }
        }
        let listeners = std::mem::take(&mut *self.inner.tcp.lock().expect("tcp listeners"));
        for l in listeners {
            tokio::spawn(tcp::accept_loop(self.inner.clone(), l));
        }
    }

    /// Sends one serialized message. UDP goes out at once from the socket of
    /// the right address family; TCP goes over `target.conn` when it is
    /// alive, else over any live connection to the same address, else over
    /// a new connection (opened in the background).
    pub fn send(&self, target: &Target, data: Bytes) -> Result<(), SendError> {
        match target.transport {
            Transport::Udp => udp::send(&self.inner, target.remote, data),
            Transport::Tcp => tcp::send(&self.inner, target, data),
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

    /// Stops accepting and receiving and closes every connection.
    pub fn shutdown(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.shutdown.notify_waiters();
        self.inner.conns.close_all();
    }
}
