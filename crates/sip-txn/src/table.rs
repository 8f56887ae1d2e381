//! Transaction storage: a generational slab of transactions plus the two
//! hash indexes (client key, server key) that matching uses.
//!
//! Owns insertion, lookup and removal; keeps the indexes and the slab in
//! step. Knows nothing of states or timers beyond holding each
//! transaction's timer slots.

use crate::client_invite::ClientInvite;
use crate::client_non_invite::ClientNonInvite;
use crate::config::Peer;
use crate::key::{ClientKey, ServerKey, TxnKey};
use crate::server_invite::ServerInvite;
use crate::server_non_invite::ServerNonInvite;
use crate::timers::{Armed, TxnId};
use std::collections::HashMap;

/// foldhash: fast, and seeded per process, so keys chosen by a peer (branch
/// values) cannot be aimed at one bucket.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug)]
pub(crate) enum Machine {
    InviteClient(ClientInvite),
    NonInviteClient(ClientNonInvite),
    InviteServer(ServerInvite),
    NonInviteServer(ServerNonInvite),
}

#[derive(Debug)]
pub(crate) struct Txn {
    pub key: TxnKey,
    pub peer: Peer,
    pub armed: Armed,
    pub machine: Machine,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    txn: Option<Txn>,
}

#[derive(Debug, Default)]
pub(crate) struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    clients: Map<ClientKey, TxnId>,
    servers: Map<ServerKey, TxnId>,
}

impl Table {
    pub fn len(&self) -> usize {
        self.clients.len() + self.servers.len()
    }

    /// Reserves a slot for a transaction that is about to be built (its
    /// machine needs the id to arm timers).
    pub fn reserve(&mut self) -> TxnId {
        match self.free.pop() {
            Some(idx) => TxnId { idx, generation: self.slots[idx as usize].generation },
            None => {
                self.slots.push(Slot::default());
                TxnId { idx: (self.slots.len() - 1) as u32, generation: 0 }
            }
        }
    }

    /// Fills a reserved slot and indexes the key.
    pub fn insert(&mut self, id: TxnId, txn: Txn) {
        match &txn.key {
            TxnKey::Client(k) => self.clients.insert(k.clone(), id),
            TxnKey::Server(k) => self.servers.insert(k.clone(), id),
        };
        self.slots[id.idx as usize].txn = Some(txn);
    }

    pub fn client(&self, key: &ClientKey) -> Option<TxnId> {
        self.clients.get(key).copied()
    }
    pub fn server(&self, key: &ServerKey) -> Option<TxnId> {
        self.servers.get(key).copied()
    }
    pub fn find(&self, key: &TxnKey) -> Option<TxnId> {
        match key {
            TxnKey::Client(k) => self.client(k),
            TxnKey::Server(k) => self.server(k),
        }
    }

    pub fn get(&self, id: TxnId) -> Option<&Txn> {
        self.slots.get(id.idx as usize).filter(|s| s.generation == id.generation).and_then(|s| s.txn.as_ref())
    }
    pub fn get_mut(&mut self, id: TxnId) -> Option<&mut Txn> {
        self.slots.get_mut(id.idx as usize).filter(|s| s.generation == id.generation).and_then(|s| s.txn.as_mut())
    }

    /// Removes a transaction, unindexes it and frees its slot.
    pub fn remove(&mut self, id: TxnId) -> Option<Txn> {
        let slot = self.slots.get_mut(id.idx as usize).filter(|s| s.generation == id.generation)?;
        let txn = slot.txn.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.idx);
        match &txn.key {
            TxnKey::Client(k) => self.clients.remove(k),
            TxnKey::Server(k) => self.servers.remove(k),
        };
        Some(txn)
    }
}
