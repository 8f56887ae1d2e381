//! The connection (flow) table: open TCP connections by id and by remote
//! address, each with the sender side of its writer queue.

use crate::types::ConnId;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc::UnboundedSender;

/// A message for a connection's writer task; `None` closes it.
pub(crate) type Outgoing = Option<Bytes>;

#[derive(Clone)]
pub(crate) struct ConnHandle {
    pub remote: SocketAddr,
    pub tx: UnboundedSender<Outgoing>,
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
    /// The most recent connection to each remote address.
    by_remote: HashMap<SocketAddr, ConnId>,
}

impl ConnTable {
    pub(crate) fn insert(&self, remote: SocketAddr, tx: UnboundedSender<Outgoing>) -> ConnId {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut m = self.inner.lock().expect("conn table");
        m.by_id.insert(id, ConnHandle { remote, tx });
        m.by_remote.insert(remote, id);
        id
    }
    pub(crate) fn remove(&self, id: ConnId) {
        let mut m = self.inner.lock().expect("conn table");
        if let Some(h) = m.by_id.remove(&id)
            && m.by_remote.get(&h.remote) == Some(&id)
        {
            m.by_remote.remove(&h.remote);
        }
    }
    pub(crate) fn get(&self, id: ConnId) -> Option<ConnHandle> {
        self.inner.lock().expect("conn table").by_id.get(&id).cloned()
    }
    pub(crate) fn by_remote(&self, remote: &SocketAddr) -> Option<(ConnId, ConnHandle)> {
        let m = self.inner.lock().expect("conn table");
        let id = *m.by_remote.get(remote)?;
        m.by_id.get(&id).map(|h| (id, h.clone()))
    }
    pub fn len(&self) -> usize {
        self.inner.lock().expect("conn table").by_id.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub(crate) fn close_all(&self) {
        let m = self.inner.lock().expect("conn table");
        for h in m.by_id.values() {
            let _ = h.tx.send(None);
        }
    }
}
