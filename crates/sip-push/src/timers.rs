//! The timer heap: a min-heap of `(when, generation, slot)` with lazy
//! deletion. Re-arming pushes a new entry with a fresh generation; the
//! owner remembers its live generation and entries that no longer match
//! are skipped when they come up. O(log n) per arm and per fire; nothing
//! ever scans all bindings. Stale entries are dropped when the heap grows
//! well past the live count ([`Timers::should_compact`]).
//!
//! What a timer is for ([`TimerKind`]) sits in a slab beside the heap, so
//! that heap entries stay small (32 bytes) and cheap to move. Generations
//! are unique, so entries never tie and the firing order is fully
//! deterministic.

use crate::types::{BindingKey, RequestId};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

/// What a timer is for.
#[derive(Clone, Debug)]
pub(crate) enum TimerKind {
    /// The binding's next refresh push, or its expiry.
    Binding(BindingKey),
    /// A parked request's next branch deadline (Bucket Timer): one entry
    /// per request at a time, re-armed at the next deadline when it fires.
    Hold(RequestId),
    /// A retired PURR stops resolving.
    Purr(Arc<str>),
}

/// A fired (or live, for compaction) timer.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub at: Instant,
    pub generation: u64,
    pub kind: TimerKind,
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    slab: Vec<Option<TimerKind>>,
    free: Vec<u32>,
    next_generation: u64,
}

impl Timers {
    /// Room for `n` more timers.
    pub fn reserve(&mut self, n: usize) {
        self.heap.reserve(n);
        self.slab.reserve(n);
    }

    /// Arms a timer; returns its generation (the owner keeps it).
    pub fn arm(&mut self, at: Instant, kind: TimerKind) -> u64 {
        self.next_generation += 1;
        self.insert(at, self.next_generation, kind);
        self.next_generation
    }

    fn insert(&mut self, at: Instant, generation: u64, kind: TimerKind) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(kind);
                s
            }
            None => {
                self.slab.push(Some(kind));
                u32::try_from(self.slab.len() - 1).expect("fewer than 2^32 timers")
            }
        };
        self.heap.push(Reverse((at, generation, slot)));
    }

    /// The earliest entry's time (possibly stale: then it only wakes early).
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Pops the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        if self.heap.peek().is_none_or(|Reverse((at, _, _))| *at > now) {
            return None;
        }
        let Reverse((at, generation, slot)) = self.heap.pop()?;
        let kind = self.slab[slot as usize].take().expect("live slot");
        self.free.push(slot);
        Some(Entry { at, generation, kind })
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether stale entries dominate (`live` = entries still wanted).
    pub fn should_compact(&self, live: usize) -> bool {
        self.heap.len() > 1024 && self.heap.len() > 4 * live
    }

    /// Replaces the heap by the live entries (generations kept).
    pub fn rebuild(&mut self, live: Vec<Entry>) {
        self.heap.clear();
        self.slab.clear();
        self.free.clear();
        for e in live {
            self.insert(e.at, e.generation, e.kind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_time_then_generation_order_and_reuses_slots() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let g1 = t.arm(t0 + Duration::from_secs(2), TimerKind::Hold(RequestId(1)));
        let g2 = t.arm(t0 + Duration::from_secs(1), TimerKind::Hold(RequestId(2)));
        let g3 = t.arm(t0 + Duration::from_secs(1), TimerKind::Hold(RequestId(3)));
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert!(t.pop_due(t0).is_none());
        let order: Vec<u64> =
            std::iter::from_fn(|| t.pop_due(t0 + Duration::from_secs(5))).map(|e| e.generation).collect();
        assert_eq!(order, [g2, g3, g1]);
        t.arm(t0, TimerKind::Hold(RequestId(4)));
        assert_eq!(t.slab.len(), 3, "freed slots are reused");
    }
}
