//! The nonce-count replay guard.
//!
//! Owns, per nonce that has been used successfully, the highest nonce-count
//! (`nc`) accepted, and the rule that a request must bring a greater one
//! (RFC 7616 §3.4: the server "SHOULD check that the nc-value is greater than
//! the last one seen"). Without `qop` a nonce may be used once only.
//!
//! Only requests whose response was already verified reach the tracker, so
//! only clients that know a password can fill it. Memory is bounded by
//! `max_entries`: entries sit in a map and in a queue in the order they were
//! first used. Each call does O(1) work: it drops at most a few expired
//! entries from the front of the queue (each entry is queued and dropped
//! once), and when full it evicts the oldest entry; the whole map is never
//! scanned.
//!
//! Evicting an entry whose nonce has not expired would forget its `nc`, and
//! a replay would pass. So the tracker keeps a floor: the latest issue time
//! of any such evicted nonce. An untracked nonce issued at or before the
//! floor is answered [`NcVerdict::Forgotten`] (the caller re-challenges with
//! `stale=true`), never accepted. Under memory pressure some clients thus
//! get one extra challenge; no replay is ever accepted.
//!
//! The tracker is its own struct so that it can be sharded (one per hash
//! bucket of [`NonceId::key`]) behind separate locks later.

use crate::nonce::NonceId;
use std::collections::{HashMap, VecDeque};

/// How many expired entries one call may drop from the queue.
const EXPIRE_PER_CALL: usize = 4;

/// The tracker's decision for one use of a nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NcVerdict {
    /// The nonce-count is greater than any accepted before (now recorded).
    Accepted,
    /// The nonce-count is not greater than one accepted before, or a
    /// nonce used without qop is used again.
    Replay,
    /// The nonce may have been used and evicted for room: refuse it.
    Forgotten,
}

/// Highest accepted nonce-count per nonce; see the module docs.
#[derive(Debug)]
pub struct NonceTracker {
    /// Nonce key → highest nc accepted (`u32::MAX` once used without qop).
    map: HashMap<[u8; 16], u32>,
    /// Keys in the order they entered the map, with their issue times.
    order: VecDeque<([u8; 16], u64)>,
    max_entries: usize,
    ttl_ms: u64,
    /// Latest issue time of an evicted, not yet expired nonce.
    floor_ms: Option<u64>,
}

impl NonceTracker {
    /// A tracker holding at most `max_entries` nonces (at least 1), for
    /// nonces valid `ttl_ms` milliseconds.
    pub fn new(max_entries: usize, ttl_ms: u64) -> NonceTracker {
        NonceTracker {
            map: HashMap::new(),
            order: VecDeque::new(),
            max_entries: max_entries.max(1),
            ttl_ms,
            floor_ms: None,
        }
    }

    fn expired(&self, issued_ms: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(issued_ms) > self.ttl_ms
    }

    /// Checks a use of the nonce `id` with nonce-count `nc` (`None`: no
    /// qop), and records it when accepted.
    pub fn check_and_record(&mut self, id: &NonceId, nc: Option<u32>, now_ms: u64) -> NcVerdict {
        self.drop_expired(now_ms);
        if let Some(last) = self.map.get_mut(&id.key) {
            return match nc {
                Some(nc) if nc > *last => {
                    *last = nc;
                    NcVerdict::Accepted
                }
                _ => NcVerdict::Replay,
            };
        }
        if self.floor_ms.is_some_and(|f| id.issued_ms <= f) {
            return NcVerdict::Forgotten;
        }
        let value = match nc {
            Some(0) => return NcVerdict::Replay,
            Some(nc) => nc,
            None => u32::MAX,
        };
        while self.map.len() >= self.max_entries {
            self.evict_oldest(now_ms);
        }
        self.map.insert(id.key, value);
        self.order.push_back((id.key, id.issued_ms));
        NcVerdict::Accepted
    }

    fn drop_expired(&mut self, now_ms: u64) {
        for _ in 0..EXPIRE_PER_CALL {
            match self.order.front() {
                Some(&(_, issued)) if self.expired(issued, now_ms) => self.evict_oldest(now_ms),
                _ => break,
            }
        }
    }

    fn evict_oldest(&mut self, now_ms: u64) {
        if let Some((key, issued)) = self.order.pop_front() {
            self.map.remove(&key);
            if !self.expired(issued, now_ms) {
                self.floor_ms = Some(self.floor_ms.map_or(issued, |f| f.max(issued)));
            }
        }
    }

    /// Nonces currently tracked.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;
    const TTL: u64 = 300_000;

    fn id(n: u64, issued_ms: u64) -> NonceId {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&issued_ms.to_be_bytes());
        key[8..].copy_from_slice(&n.to_be_bytes());
        NonceId { key, issued_ms }
    }

    #[test]
    fn nc_must_increase() {
        let mut t = NonceTracker::new(10, TTL);
        let a = id(1, T0);
        assert_eq!(t.check_and_record(&a, Some(1), T0), NcVerdict::Accepted);
        assert_eq!(t.check_and_record(&a, Some(1), T0), NcVerdict::Replay);
        assert_eq!(t.check_and_record(&a, Some(2), T0), NcVerdict::Accepted);
        assert_eq!(t.check_and_record(&a, Some(5), T0), NcVerdict::Accepted);
        assert_eq!(t.check_and_record(&a, Some(4), T0), NcVerdict::Replay);
        assert_eq!(t.check_and_record(&a, Some(5), T0), NcVerdict::Replay);
        assert_eq!(t.check_and_record(&a, Some(6), T0), NcVerdict::Accepted);
        // Another nonce has its own count.
        assert_eq!(t.check_and_record(&id(2, T0), Some(1), T0), NcVerdict::Accepted);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn nc_zero_is_never_accepted() {
        let mut t = NonceTracker::new(10, TTL);
        assert_eq!(t.check_and_record(&id(1, T0), Some(0), T0), NcVerdict::Replay);
        assert!(t.is_empty());
    }

    #[test]
    fn without_qop_once_only() {
        let mut t = NonceTracker::new(10, TTL);
        let a = id(1, T0);
        assert_eq!(t.check_and_record(&a, None, T0), NcVerdict::Accepted);
        assert_eq!(t.check_and_record(&a, None, T0), NcVerdict::Replay);
        assert_eq!(t.check_and_record(&a, Some(u32::MAX), T0), NcVerdict::Replay);
        assert_eq!(t.check_and_record(&a, Some(7), T0), NcVerdict::Replay);
        let b = id(2, T0);
        assert_eq!(t.check_and_record(&b, Some(1), T0), NcVerdict::Accepted);
        assert_eq!(t.check_and_record(&b, None, T0), NcVerdict::Replay);
    }

    #[test]
    fn expired_entries_leave_without_raising_the_floor() {
        let mut t = NonceTracker::new(100, TTL);
        for n in 0..10 {
            t.check_and_record(&id(n, T0), Some(1), T0);
        }
        assert_eq!(t.len(), 10);
        // After the TTL each call drops a few expired entries.
        let later = T0 + TTL + 1;
        for n in 0..3 {
            t.check_and_record(&id(100 + n, later), Some(1), later);
        }
        assert_eq!(t.len(), 3);
        assert_eq!(t.floor_ms, None);
    }

    #[test]
    fn evicted_live_nonce_is_forgotten_not_accepted() {
        let mut t = NonceTracker::new(2, TTL);
        let (a, b, c) = (id(1, T0), id(2, T0 + 1), id(3, T0 + 2));
        assert_eq!(t.check_and_record(&a, Some(1), T0 + 2), NcVerdict::Accepted);
        assert_eq!(t.check_and_record(&b, Some(1), T0 + 2), NcVerdict::Accepted);
        assert_eq!(t.check_and_record(&c, Some(1), T0 + 2), NcVerdict::Accepted); // evicts a
        assert_eq!(t.len(), 2);
        // a's replay is not accepted although a is no longer tracked.
        assert_eq!(t.check_and_record(&a, Some(1), T0 + 3), NcVerdict::Forgotten);
        assert_eq!(t.check_and_record(&a, Some(2), T0 + 3), NcVerdict::Forgotten);
        // b and c are still tracked exactly.
        assert_eq!(t.check_and_record(&b, Some(1), T0 + 3), NcVerdict::Replay);
        assert_eq!(t.check_and_record(&c, Some(2), T0 + 3), NcVerdict::Accepted);
        // A nonce issued after the floor is fine.
        assert_eq!(t.check_and_record(&id(4, T0 + 10), Some(1), T0 + 10), NcVerdict::Accepted);
    }

    /// 1M distinct nonces through a tracker capped at 10 000 entries: the
    /// entry count stays at the cap (tests/tracker_memory.rs measures the
    /// bytes).
    #[test]
    fn bounded_under_a_million_nonces() {
        const MAX: usize = 10_000;
        let mut t = NonceTracker::new(MAX, TTL);
        for n in 0..1_000_000u64 {
            // Issue times advance 1 ms per nonce, so nonces are still live
            // when evicted (the capacity path, not the expiry path).
            let now = T0 + n;
            assert_eq!(t.check_and_record(&id(n, now), Some(1), now), NcVerdict::Accepted);
            assert!(t.len() <= MAX);
        }
        assert_eq!(t.len(), MAX);
        assert_eq!(t.order.len(), MAX);
        // The most recent nonce is tracked; the first is refused, not accepted.
        let last = id(999_999, T0 + 999_999);
        assert_eq!(t.check_and_record(&last, Some(1), T0 + 999_999), NcVerdict::Replay);
        assert_eq!(t.check_and_record(&id(0, T0), Some(2), T0 + 999_999), NcVerdict::Forgotten);
    }
}
