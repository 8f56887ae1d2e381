//! The timer heap: a min-heap of `(when, generation, what)` with lazy
//! deletion. Re-arming pushes a new entry with a fresh generation; the
//! owner remembers its live `(when, generation)` and entries that no longer
//! match are skipped when they come up. O(log n) per arm and per fire;
//! nothing ever scans all bindings. Stale entries are dropped when the
//! heap grows well past the live count ([`Timers::should_compact`]).
//!
//! Generations are unique, so entries never tie and the firing order is
//! fully deterministic.

use crate::types::BindingKey;
use crate::types::{PushId, RequestId};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

/// What a timer is for.
#[derive(Clone, Debug)]
pub(crate) enum TimerKind {
    /// The binding's next refresh push, or its expiry.
    Binding(BindingKey),
    /// A parked request's hold deadline (Bucket Timer).
    Hold(RequestId),
    /// A retired PURR stops resolving.
    Purr(Arc<str>),
    /// A push result is no longer awaited.
    Push(PushId),
}

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub at: Instant,
    pub generation: u64,
    pub kind: TimerKind,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.generation) == (o.at, o.generation)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.at, self.generation).cmp(&(o.at, o.generation))
    }
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    next_generation: u64,
}

impl Timers {
    /// Arms a timer; returns its generation (the owner keeps it).
    pub fn arm(&mut self, at: Instant, kind: TimerKind) -> u64 {
        self.next_generation += 1;
        let generation = self.next_generation;
        self.heap.push(Reverse(Entry { at, generation, kind }));
        generation
    }

    /// The earliest entry's time (possibly stale: then it only wakes early).
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Pops the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        if self.heap.peek().is_some_and(|Reverse(e)| e.at <= now) { self.heap.pop().map(|Reverse(e)| e) } else { None }
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
        self.heap = live.into_iter().map(Reverse).collect();
    }
}
