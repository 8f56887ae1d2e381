//! The connection (flow) table: open stream connections (TCP, TLS, WS, WSS)
//! by id and by transport and remote address, each with the sender side of its writer queue and the state the
//! writer shares with senders (queued bytes, the kill signal).
//!
//! Entries are added only through [`ConnTable::try_insert`], which enforces
//! the connection limit under the table lock, and removed by the
//! [`ConnGuard`] that owns each connection's lifetime, so that no failure
//! path (connect error, timeout, a task dropped by a stopping runtime) can
//! leave an entry behind. The maps are shrunk when they become mostly empty
//! so that a burst of connections does not pin their buckets forever.
//!
//! The by-remote index is keyed by transport too: a TCP and a TLS flow to
//! the same address are never mixed up. It does not touch sockets.

use crate::Inner;
use crate::types::{ConnId, Transport};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;

/// A message for a connection's writer task; `None` closes it.
pub(crate) type Outgoing = Option<Bytes>;

/// What senders and a connection's tasks share.
#[derive(Default)]
pub(crate) struct ConnShared {
    /// Bytes queued for the writer and not yet written to the socket.
    pub queued: AtomicUsize,
    /// Set once the queue overflowed (logged and counted once).
    pub overflowed: AtomicBool,
    /// Closes the connection at once, dropping what is queued.
    pub kill: Notify,
    /// An outbound TLS connection: the name its server had to prove. It
    /// carries requests only for targets that must prove the same name.
    pub tls_name: std::sync::OnceLock<rustls_pki_types::ServerName<'static>>,
}

#[derive(Clone)]
pub(crate) struct ConnHandle {
    pub transport: Transport,
    pub remote: SocketAddr,
    pub tx: UnboundedSender<Outgoing>,
    pub shared: Arc<ConnShared>,
}

/// The outcome of queueing bytes on a connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Enqueue {
    Queued,
    /// The writer is gone (the connection is closing).
    Closed,
    /// The queue would exceed its limit: the connection is being killed.
    Overflow,
}

impl ConnHandle {
    /// Queues `data` unless that would put more than `limit` bytes in the
    /// queue (one message is always accepted on an empty queue). On
    /// overflow the connection is told to close at once; `true` in the
    /// second field means this call is the first to see the overflow.
    pub(crate) fn enqueue(&self, data: Bytes, limit: usize) -> (Enqueue, bool) {
        let len = data.len();
        let before = self.shared.queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before.saturating_add(len) > limit {
            self.shared.queued.fetch_sub(len, Ordering::AcqRel);
            self.shared.kill.notify_one();
            let first = !self.shared.overflowed.swap(true, Ordering::AcqRel);
            return (Enqueue::Overflow, first);
        }
        if self.tx.send(Some(data)).is_err() {
            self.shared.queued.fetch_sub(len, Ordering::AcqRel);
            return (Enqueue::Closed, false);
        }
        (Enqueue::Queued, false)
    }
}

/// Open connections, indexed both ways. Lock held only for map operations.
#[derive(Default)]
pub struct ConnTable {
    next: AtomicU64,
    inner: Mutex<Maps>,
}

#[derive(Default)]
struct Maps {
    by_id: HashMap<ConnId, ConnHandle>,
    /// The most recent connection of each transport to each remote address.
    by_remote: HashMap<(Transport, SocketAddr), ConnId>,
}

/// Maps keep at least this many slots; below it shrinking is not worth it.
const MIN_CAPACITY: usize = 64;

fn shrink<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>) {
    if m.capacity() > MIN_CAPACITY && m.len() * 4 < m.capacity() {
        m.shrink_to((m.len() * 2).max(MIN_CAPACITY));
    }
}

impl ConnTable {
    /// Adds a connection unless `max` are already open.
    pub(crate) fn try_insert(
        &self,
        transport: Transport,
        remote: SocketAddr,
        tx: UnboundedSender<Outgoing>,
        max: usize,
    ) -> Option<(ConnId, ConnHandle)> {
        let mut m = self.inner.lock().expect("conn table");
        if m.by_id.len() >= max {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let h = ConnHandle { transport, remote, tx, shared: Arc::default() };
        m.by_id.insert(id, h.clone());
        m.by_remote.insert((transport, remote), id);
        Some((id, h))
    }
    pub(crate) fn remove(&self, id: ConnId) {
        let mut m = self.inner.lock().expect("conn table");
        if let Some(h) = m.by_id.remove(&id)
            && m.by_remote.get(&(h.transport, h.remote)) == Some(&id)
        {
            m.by_remote.remove(&(h.transport, h.remote));
        }
        shrink(&mut m.by_id);
        shrink(&mut m.by_remote);
    }
    pub(crate) fn get(&self, id: ConnId) -> Option<ConnHandle> {
        self.inner.lock().expect("conn table").by_id.get(&id).cloned()
    }
    pub(crate) fn by_remote(&self, transport: Transport, remote: SocketAddr) -> Option<(ConnId, ConnHandle)> {
        let m = self.inner.lock().expect("conn table");
        let id = *m.by_remote.get(&(transport, remote))?;
        m.by_id.get(&id).map(|h| (id, h.clone()))
    }
    pub fn len(&self) -> usize {
        self.inner.lock().expect("conn table").by_id.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Slots allocated in the two maps (by id, by remote), for diagnostics.
    pub fn capacity(&self) -> (usize, usize) {
        let m = self.inner.lock().expect("conn table");
        (m.by_id.capacity(), m.by_remote.capacity())
    }
    /// Bytes queued for writing over all connections.
    pub fn queued_bytes(&self) -> usize {
        let m = self.inner.lock().expect("conn table");
        m.by_id.values().map(|h| h.shared.queued.load(Ordering::Relaxed)).sum()
    }
    /// Open connections per transport, in [`Transport::ALL`] order.
    pub(crate) fn count_by_transport(&self) -> [usize; 5] {
        let m = self.inner.lock().expect("conn table");
        let mut n = [0; 5];
        for h in m.by_id.values() {
            n[crate::stats::index(h.transport)] += 1;
        }
        n
    }
    pub(crate) fn close_all(&self) {
        let m = self.inner.lock().expect("conn table");
        for h in m.by_id.values() {
            let _ = h.tx.send(None);
        }
    }
}

/// Owns a table entry: dropping it removes the entry and tells the handler
/// the connection closed. Every connection task holds one, so the entry
/// goes away however the task ends (even if it never runs).
pub(crate) struct ConnGuard {
    pub inner: Arc<Inner>,
    pub id: ConnId,
    pub remote: SocketAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.inner.conns.remove(self.id);
        if let Some(h) = self.inner.handler.get() {
            h.on_closed(self.id, self.remote);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_remote_keeps_transports_apart() {
        let t = ConnTable::default();
        let remote: SocketAddr = "192.0.2.1:5061".parse().unwrap();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let (tls, _) = t.try_insert(Transport::Tls, remote, tx.clone(), 10).unwrap();
        assert!(t.by_remote(Transport::Tcp, remote).is_none());
        let (tcp, _) = t.try_insert(Transport::Tcp, remote, tx, 10).unwrap();
        assert_eq!(t.by_remote(Transport::Tls, remote).map(|(id, _)| id), Some(tls));
        assert_eq!(t.by_remote(Transport::Tcp, remote).map(|(id, _)| id), Some(tcp));
        assert_eq!(t.count_by_transport(), [0, 1, 1, 0, 0]);
        t.remove(tls);
        assert!(t.by_remote(Transport::Tls, remote).is_none());
        assert_eq!(t.by_remote(Transport::Tcp, remote).map(|(id, _)| id), Some(tcp));
    }
}
