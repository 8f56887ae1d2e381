//! The in-memory location index: bindings by AoR, the expiry schedule, the
//! bindings of each connection, and tombstones of removed bindings.
//!
//! Every operation costs O(bindings of one AoR) or O(log n) for the
//! schedule, never O(all bindings): a REGISTER at a million bindings costs
//! what it costs at ten.

use crate::aor::Aor;
use crate::binding::Binding;
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A change the store must make durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Upsert(Box<Binding>),
    Remove { aor: Aor, id: String },
}

/// What a removed binding leaves behind for `tombstone_secs`.
#[derive(Clone, Debug)]
struct Tombstone {
    call_id: Box<[u8]>,
    cseq: u32,
    until: u64,
}

/// One entry of the expiry schedule: when, and which binding (its id and
/// AoR in one allocation; 32 bytes inline).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: u64,
    id_len: u16,
    /// The id, then the AoR.
    text: Box<str>,
}

impl Due {
    fn new(at: u64, aor: &Aor, id: &str) -> Due {
        // Ids are 16 hex characters. One over 64 KiB (only a hand-edited
        // store could hold it) is not found again: its entry is skipped.
        let mut text = String::with_capacity(id.len() + aor.as_str().len());
        text.push_str(id);
        text.push_str(aor.as_str());
        Due { at, id_len: u16::try_from(id.len()).unwrap_or(u16::MAX), text: text.into_boxed_str() }
    }

    /// (id, AoR).
    fn parts(&self) -> (&str, &str) {
        self.text.split_at_checked(usize::from(self.id_len)).unwrap_or((&self.text, ""))
    }
}

/// The bindings of every AoR.
#[derive(Default)]
pub struct Location {
    aors: Map<Aor, Vec<Binding>>,
    /// Expiries: entries whose binding changed are stale and skipped.
    schedule: BinaryHeap<Reverse<Due>>,
    by_conn: Map<u64, Vec<(Aor, String)>>,
    /// Removed bindings by AoR: (match key, tombstone), see [`Location::match_key`].
    tombstones: Map<Aor, Vec<(String, Tombstone)>>,
    tomb_schedule: BinaryHeap<Reverse<(u64, Aor, String)>>,
    count: usize,
}

impl Location {
    /// Room for `n` more bindings of distinct AoRs (start-up, from the stored
    /// count): the table and the schedule grow once, not twenty times.
    pub fn reserve(&mut self, n: usize) {
        self.aors.reserve(n);
        self.schedule.reserve(n);
    }

    pub fn new() -> Location {
        Location::default()
    }

    /// The bindings of an AoR (expired ones may linger until [`Location::expire`] runs).
    pub fn get(&self, aor: &Aor) -> &[Binding] {
        self.aors.get(aor).map_or(&[], |v| v.as_slice())
    }

    /// Live bindings of an AoR at `now_ms`.
    pub fn lookup(&self, aor: &Aor, now_ms: u64) -> impl Iterator<Item = &Binding> {
        self.get(aor).iter().filter(move |b| b.expires_at > now_ms)
    }

    pub fn binding(&self, aor: &Aor, id: &str) -> Option<&Binding> {
        self.get(aor).iter().find(|b| b.id == id)
    }

    /// Number of bindings.
    pub fn len(&self) -> usize {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// Number of AoRs with at least one binding.
    pub fn aor_count(&self) -> usize {
        self.aors.len()
    }
    /// Every AoR (unordered).
    pub fn aors(&self) -> impl Iterator<Item = (&Aor, &[Binding])> {
        self.aors.iter().map(|(a, b)| (a, b.as_slice()))
    }

    /// Inserts or replaces (by id) a binding.
    pub fn upsert(&mut self, b: Binding) {
        self.schedule.push(Reverse(Due::new(b.expires_at, &b.aor, &b.id)));
        if let Some(conn) = b.flow.conn {
            let v = self.by_conn.entry(conn).or_default();
            if !v.iter().any(|(a, i)| a == &b.aor && i == &b.id) {
                v.push((b.aor.clone(), b.id.clone()));
            }
        }
        // Most AoRs have one binding: do not let Vec round the first allocation up to 4.
        let list = self.aors.entry(b.aor.clone()).or_insert_with(|| Vec::with_capacity(1));
        match list.iter_mut().find(|x| x.id == b.id) {
            Some(x) => {
                if let Some(old) = x.flow.conn
                    && Some(old) != b.flow.conn
                {
                    remove_conn_ref(&mut self.by_conn, old, &b.aor, &b.id);
                }
                *x = b;
            }
            None => {
                list.push(b);
                self.count += 1;
            }
        }
        self.maybe_compact();
    }

    /// Removes a binding, leaving a tombstone until `now_ms + tombstone_ms`:
    /// the Call-ID and CSeq of the request that removed it (`by`), or the
    /// binding's own when no request did. Returns it.
    pub fn remove(
        &mut self,
        aor: &Aor,
        id: &str,
        now_ms: u64,
        tombstone_ms: u64,
        by: Option<(&Bytes, u32)>,
    ) -> Option<Binding> {
        let list = self.aors.get_mut(aor)?;
        let pos = list.iter().position(|b| b.id == id)?;
        let b = list.swap_remove(pos);
        if list.is_empty() {
            self.aors.remove(aor);
        }
        self.count -= 1;
        if let Some(conn) = b.flow.conn {
            remove_conn_ref(&mut self.by_conn, conn, aor, id);
        }
        if tombstone_ms > 0 {
            let key = Location::match_key(&b);
            let until = now_ms + tombstone_ms;
            let (call_id, cseq) = by.map_or((b.call_id.clone(), b.cseq), |(c, s)| (Box::from(&c[..]), s));
            let list = self.tombstones.entry(aor.clone()).or_insert_with(|| Vec::with_capacity(1));
            list.retain(|(k, _)| *k != key);
            list.push((key.clone(), Tombstone { call_id, cseq, until }));
            self.tomb_schedule.push(Reverse((until, aor.clone(), key)));
        }
        Some(b)
    }

    /// The identity a REGISTER contact is matched on: the instance (and
    /// reg-id) when present, else the contact URI text.
    pub fn match_key(b: &Binding) -> String {
        match (&b.instance, b.reg_id) {
            (Some(i), Some(r)) => format!("i:{i}#{r}"),
            (Some(i), None) => format!("i:{i}"),
            _ => format!("u:{}", b.uri),
        }
    }

    /// The CSeq of the request that removed this binding, if it was removed
    /// recently by a request with this Call-ID.
    pub fn tombstone(&self, aor: &Aor, key: &str, call_id: &[u8], now_ms: u64) -> Option<u32> {
        self.tombstones
            .get(aor)?
            .iter()
            .find(|(k, t)| k == key && t.until > now_ms && *t.call_id == *call_id)
            .map(|(_, t)| t.cseq)
    }

    /// Whether this AoR's state was written by a REGISTER with this Call-ID
    /// and CSeq (a binding, or a tombstone, carries them): a retransmission of
    /// a request already processed.
    pub fn processed(&self, aor: &Aor, call_id: &[u8], cseq: u32, now_ms: u64) -> bool {
        self.get(aor).iter().any(|b| *b.call_id == *call_id && b.cseq == cseq)
            || self
                .tombstones
                .get(aor)
                .is_some_and(|l| l.iter().any(|(_, t)| t.until > now_ms && *t.call_id == *call_id && t.cseq == cseq))
    }

    /// The earliest expiry of any binding (may be a stale entry: harmless, it only wakes early).
    pub fn next_expiry(&self) -> Option<u64> {
        self.schedule.peek().map(|Reverse(d)| d.at)
    }

    /// Removes every binding expired at `now_ms`; returns them.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Binding> {
        let mut out = Vec::new();
        while let Some(Reverse(d)) = self.schedule.peek() {
            if d.at > now_ms {
                break;
            }
            let Some(Reverse(d)) = self.schedule.pop() else { break };
            let (id, aor) = d.parts();
            let aor = Aor::from_stored(aor.to_owned());
            let current = self.binding(&aor, id).map(|b| b.expires_at);
            if current == Some(d.at)
                && let Some(b) = self.remove(&aor, id, now_ms, 0, None)
            {
                out.push(b);
            }
        }
        while let Some(Reverse((t, _, _))) = self.tomb_schedule.peek() {
            if *t > now_ms {
                break;
            }
            let Reverse((t, aor, key)) = self.tomb_schedule.pop().expect("peeked");
            if let Some(list) = self.tombstones.get_mut(&aor) {
                list.retain(|(k, x)| !(*k == key && x.until == t));
                if list.is_empty() {
                    self.tombstones.remove(&aor);
                }
            }
        }
        out
    }

    /// The bindings registered over a connection.
    pub fn on_conn(&self, conn: u64) -> Vec<(Aor, String)> {
        self.by_conn.get(&conn).cloned().unwrap_or_default()
    }

    /// Forgets the connection of its bindings (the flow is dead) and returns them.
    pub fn conn_closed(&mut self, conn: u64) -> Vec<(Aor, String)> {
        let refs = self.by_conn.remove(&conn).unwrap_or_default();
        for (aor, id) in &refs {
            if let Some(b) = self.aors.get_mut(aor).and_then(|l| l.iter_mut().find(|b| &b.id == id))
                && b.flow.conn == Some(conn)
            {
                b.flow.conn = None;
            }
        }
        refs
    }

    /// Rebuilds the schedule when stale entries dominate (refreshes leave one each).
    fn maybe_compact(&mut self) {
        if self.schedule.len() > 1024 && self.schedule.len() > 3 * self.count {
            let mut fresh = BinaryHeap::with_capacity(self.count * 2);
            for (aor, list) in &self.aors {
                for b in list {
                    fresh.push(Reverse(Due::new(b.expires_at, aor, &b.id)));
                }
            }
            self.schedule = fresh;
        }
    }
}

fn remove_conn_ref(by_conn: &mut Map<u64, Vec<(Aor, String)>>, conn: u64, aor: &Aor, id: &str) {
    if let Some(v) = by_conn.get_mut(&conn) {
        v.retain(|(a, i)| !(a == aor && i == id));
        if v.is_empty() {
            by_conn.remove(&conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_entries_are_small_and_name_their_binding() {
        assert_eq!(std::mem::size_of::<Due>(), 32);
        let d = Due::new(7, &Aor::from_stored("alice@example.com".into()), "00ff00ff00ff00ff");
        assert_eq!((d.at, d.parts()), (7, ("00ff00ff00ff00ff", "alice@example.com")));
    }
}
