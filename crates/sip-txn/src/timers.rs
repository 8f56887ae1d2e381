//! The timer queue: one binary heap of `(deadline, transaction, timer)`
//! entries with lazy deletion.
//!
//! Owns deadlines only. Each transaction has two timer slots ([`Armed`]):
//! a *retransmit* slot (A, E, G, and the 100 Trying delay) and a *lifetime*
//! slot (B, D, F, K, H, I, J, L, M); the timers sharing a slot are never
//! running together. A heap entry is live only while its transaction still
//! holds exactly that `(deadline, timer)` in the slot, so cancelling a timer
//! is O(1) and firing is O(log n) per due entry: nothing ever scans the
//! transaction table. Stale entries are dropped when they reach the top of
//! the heap, and the heap is compacted when they outnumber live ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// The RFC 3261 / RFC 6026 timers, plus the 100 Trying delay of §17.2.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKind {
    /// INVITE request retransmit (client, unreliable).
    A,
    /// INVITE transaction timeout (client).
    B,
    /// Wait for response retransmissions after a non-2xx (INVITE client).
    D,
    /// Non-INVITE request retransmit (client, unreliable).
    E,
    /// Non-INVITE transaction timeout (client).
    F,
    /// Wait for response retransmissions (non-INVITE client).
    K,
    /// INVITE final response retransmit (server, unreliable).
    G,
    /// Wait for ACK (INVITE server).
    H,
    /// Wait for ACK retransmissions (INVITE server).
    I,
    /// Wait for request retransmissions (non-INVITE server).
    J,
    /// Accepted state: wait for INVITE retransmissions (RFC 6026, server).
    L,
    /// Accepted state: wait for 2xx retransmissions (RFC 6026, client).
    M,
    /// Send 100 Trying if the TU has not answered (INVITE server).
    Trying,
}

impl TimerKind {
    fn slot(self) -> usize {
        match self {
            TimerKind::A | TimerKind::E | TimerKind::G | TimerKind::Trying => 0,
            _ => 1,
        }
    }
}

/// Internal transaction handle: slab index plus generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TxnId {
    pub idx: u32,
    pub generation: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub at: Instant,
    pub id: TxnId,
    pub kind: TimerKind,
}

/// The two timer slots of one transaction.
#[derive(Debug, Default)]
pub(crate) struct Armed([Option<(Instant, TimerKind)>; 2]);

impl Armed {
    /// Whether `e` is the timer currently armed in its slot.
    pub fn is_current(&self, e: &Entry) -> bool {
        self.0[e.kind.slot()] == Some((e.at, e.kind))
    }
}

#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Armed slots over all transactions (= live heap entries).
    live: usize,
}

impl TimerQueue {
    /// Arms `kind` at `at`, replacing whatever its slot held.
    pub fn arm(&mut self, armed: &mut Armed, id: TxnId, kind: TimerKind, at: Instant) {
        let slot = &mut armed.0[kind.slot()];
        if slot.is_none() {
            self.live += 1;
        }
        *slot = Some((at, kind));
        self.heap.push(Reverse(Entry { at, id, kind }));
    }

    /// Disarms the slot of `kind` if `kind` is what it holds.
    pub fn disarm(&mut self, armed: &mut Armed, kind: TimerKind) {
        let slot = &mut armed.0[kind.slot()];
        if slot.is_some_and(|(_, k)| k == kind) {
            *slot = None;
            self.live -= 1;
        }
    }

    /// Disarms both slots (the transaction is leaving or being destroyed).
    pub fn disarm_all(&mut self, armed: &mut Armed) {
        for slot in &mut armed.0 {
            if slot.take().is_some() {
                self.live -= 1;
            }
        }
    }

    /// Clears the slot of a fired entry (which must be current).
    pub fn fired(&mut self, armed: &mut Armed, e: &Entry) {
        debug_assert!(armed.is_current(e));
        armed.0[e.kind.slot()] = None;
        self.live -= 1;
    }

    /// The earliest deadline in the heap. It may belong to a cancelled
    /// timer, which only costs an early wake-up.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Pops the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        match self.heap.peek() {
            Some(Reverse(e)) if e.at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Pops stale entries off the top so that `next_deadline` is exact.
    pub fn drop_stale_top(&mut self, is_live: impl Fn(&Entry) -> bool) {
        while let Some(Reverse(e)) = self.heap.peek() {
            if is_live(e) {
                break;
            }
            self.heap.pop();
        }
    }

    /// Rebuilds the heap without stale entries once they dominate it
    /// (amortised O(1) per timer armed).
    pub fn maybe_compact(&mut self, is_live: impl Fn(&Entry) -> bool) {
        if self.heap.len() > 1024 && self.heap.len() > 4 * self.live {
            self.heap.retain(|Reverse(e)| is_live(e));
        }
    }

    /// Heap entries, live and stale.
    pub fn entries(&self) -> usize {
        self.heap.len()
    }
    /// Armed timers.
    pub fn live(&self) -> usize {
        self.live
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lazy_deletion() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        let mut a = Armed::default();
        let id = TxnId { idx: 0, generation: 0 };
        q.arm(&mut a, id, TimerKind::A, t0 + Duration::from_millis(500));
        q.arm(&mut a, id, TimerKind::B, t0 + Duration::from_secs(32));
        assert_eq!(q.live(), 2);
        // Re-arming A replaces it: the old entry becomes stale.
        q.arm(&mut a, id, TimerKind::A, t0 + Duration::from_secs(1));
        assert_eq!((q.live(), q.entries()), (2, 3));
        let e = q.pop_due(t0 + Duration::from_secs(1)).unwrap();
        assert!(!a.is_current(&e));
        let e = q.pop_due(t0 + Duration::from_secs(1)).unwrap();
        assert!(a.is_current(&e));
        q.fired(&mut a, &e);
        assert!(q.pop_due(t0 + Duration::from_secs(1)).is_none());
        q.disarm(&mut a, TimerKind::A); // not armed: no-op
        assert_eq!(q.live(), 1);
        q.disarm_all(&mut a);
        assert_eq!(q.live(), 0);
        q.drop_stale_top(|e| a.is_current(e));
        assert_eq!(q.next_deadline(), None);
    }
}
