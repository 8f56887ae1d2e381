//! The targets not started yet, ordered by q-value (highest first, ties in
//! the order they were given), and how they are taken off in groups:
//! every target of the highest q at once (parallel) or one at a time
//! (sequential).

use crate::config::{Q_MAX, Target};

#[derive(Debug)]
pub(crate) struct TargetQueue {
    /// Sorted by q, descending; stable.
    waiting: Vec<Target>,
    parallel: bool,
}

impl TargetQueue {
    pub fn new(targets: Vec<Target>, parallel: bool) -> TargetQueue {
        let mut q = TargetQueue { waiting: Vec::with_capacity(targets.len()), parallel };
        for t in targets {
            q.insert(t);
        }
        q
    }

    /// Adds a target after every waiting target of the same or higher q.
    pub fn insert(&mut self, mut t: Target) {
        t.q = t.q.min(Q_MAX);
        let at = self.waiting.partition_point(|w| w.q >= t.q);
        self.waiting.insert(at, t);
    }

    /// Takes the next group off the queue (empty when nothing waits).
    pub fn next_group(&mut self) -> Vec<Target> {
        let Some(first) = self.waiting.first() else {
            return Vec::new();
        };
        let q = first.q;
        let n = if self.parallel { self.waiting.partition_point(|w| w.q == q) } else { 1 };
        self.waiting.drain(..n).collect()
    }

    pub fn clear(&mut self) {
        self.waiting.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(g: &[Target]) -> Vec<&str> {
        g.iter().map(|t| t.id.as_str()).collect()
    }

    #[test]
    fn groups_by_q_descending_stable() {
        let ts = vec![Target::with_q("c", 500), Target::new("a"), Target::with_q("d", 500), Target::new("b")];
        let mut q = TargetQueue::new(ts, true);
        assert_eq!(ids(&q.next_group()), ["a", "b"]);
        q.insert(Target::with_q("e", 700));
        assert_eq!(ids(&q.next_group()), ["e"]);
        assert_eq!(ids(&q.next_group()), ["c", "d"]);
        assert!(q.next_group().is_empty());
    }

    #[test]
    fn sequential_takes_one() {
        let mut q = TargetQueue::new(vec![Target::new("a"), Target::new("b")], false);
        assert_eq!(ids(&q.next_group()), ["a"]);
        assert_eq!(ids(&q.next_group()), ["b"]);
    }
}
