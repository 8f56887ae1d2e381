//! Timer configuration (RFC 3261 §17.1.1.1 Table 4) and the transport-facing
//! address type [`Peer`].
//!
//! Owns the timer base values and the notion of reliable vs unreliable
//! transport; nothing here knows about transaction states.

use std::net::SocketAddr;
use std::time::Duration;

/// Timer values. Defaults are the RFC 3261 ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// RTT estimate (T1), default 500 ms. Timers A, B, E, F, G, H, J, L, M derive from it.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (T2), default 4 s.
    pub t2: Duration,
    /// Maximum duration a message remains in the network (T4), default 5 s (timers I, K).
    pub t4: Duration,
    /// How long an INVITE server transaction waits for the TU to send a
    /// provisional response before it sends `100 Trying` itself (§17.2.1).
    /// Default 200 ms; zero sends the 100 as soon as the INVITE arrives.
    pub trying_delay: Duration,
    /// Timer D (wait for response retransmissions after a non-2xx to an
    /// INVITE, unreliable transports only). Default 32 s ("> 32 s" in RFC 3261).
    pub timer_d: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            trying_delay: Duration::from_millis(200),
            timer_d: Duration::from_secs(32),
        }
    }
}

impl Config {
    /// 64*T1: timers B, F, H, J, L and M.
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }
}

pub use sip_msg::Transport;

/// Where a message goes or came from. Opaque to this crate: it is stored
/// with the transaction and copied into every [`crate::Transmit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// Flow / connection id of the transport layer, if any.
    pub conn: Option<u64>,
}

impl Peer {
    pub fn new(transport: Transport, addr: SocketAddr) -> Peer {
        Peer { transport, addr, conn: None }
    }
    pub fn is_reliable(&self) -> bool {
        self.transport.is_reliable()
    }
}

impl From<sip_msg::Target> for Peer {
    fn from(t: sip_msg::Target) -> Peer {
        Peer { transport: t.transport, addr: t.remote, conn: t.conn }
    }
}

impl From<&Peer> for sip_msg::Target {
    fn from(p: &Peer) -> sip_msg::Target {
        sip_msg::Target { transport: p.transport, remote: p.addr, conn: p.conn }
    }
}
