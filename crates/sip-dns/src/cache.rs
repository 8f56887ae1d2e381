//! The answer cache: final results per query, positive ones until their
//! TTL, `NotFound` for the negative TTL. `Failed` and `Invalid` are never
//! stored.
//!
//! Owns expiry and the size bound. Must not resolve anything; the clock is
//! passed in, so it is tested without waiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sip_msg::Transport;

use crate::types::{DnsError, Resolution};

/// A normalised query: host lower case, without brackets or trailing dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub host: String,
    pub port: Option<u16>,
    pub transport: Option<Transport>,
    pub secure: bool,
}

#[derive(Clone, Debug)]
struct Entry {
    result: Result<Resolution, DnsError>,
    expires: Instant,
}

/// A bounded map from query to answer.
#[derive(Debug)]
pub(crate) struct Cache {
    map: Mutex<HashMap<Key, Entry>>,
    capacity: usize,
}

impl Cache {
    pub(crate) fn new(capacity: usize) -> Cache {
        Cache { map: Mutex::new(HashMap::new()), capacity }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        // The map stays consistent whatever a panicking holder did: entries
        // are inserted and removed whole.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live answer for `key` at `now`; a positive answer's TTL is what
    /// is left of it.
    pub(crate) fn get(&self, key: &Key, now: Instant) -> Option<Result<Resolution, DnsError>> {
        let mut map = self.lock();
        let entry = map.get(key)?;
        if entry.expires <= now {
            map.remove(key);
            return None;
        }
        let left = entry.expires - now;
        Some(match &entry.result {
            Ok(r) => Ok(Resolution { targets: r.targets.clone(), ttl: left }),
            Err(e) => Err(e.clone()),
        })
    }

    /// Stores a final answer for `ttl` (nothing for a zero TTL or a
    /// temporary error). When full, expired entries go first, then the one
    /// closest to expiry.
    pub(crate) fn put(&self, key: Key, result: &Result<Resolution, DnsError>, ttl: Duration, now: Instant) {
        if ttl.is_zero() || self.capacity == 0 || matches!(result, Err(DnsError::Failed(_) | DnsError::Invalid(_))) {
            return;
        }
        let mut map = self.lock();
        if map.len() >= self.capacity && !map.contains_key(&key) {
            map.retain(|_, e| e.expires > now);
            if map.len() >= self.capacity {
                let soonest = map.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    map.remove(&k);
                }
            }
        }
        map.insert(key, Entry { result: result.clone(), expires: now + ttl });
    }

    /// How many entries are stored (live or not yet purged).
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Resolved;

    fn key(h: &str) -> Key {
        Key { host: h.into(), port: None, transport: None, secure: false }
    }

    fn res() -> Result<Resolution, DnsError> {
        Ok(Resolution {
            targets: vec![Resolved { transport: Transport::Udp, addr: "192.0.2.1:5060".parse().unwrap() }],
            ttl: Duration::from_secs(60),
        })
    }

    #[test]
    fn positive_until_ttl_with_remaining_ttl() {
        let c = Cache::new(10);
        let t0 = Instant::now();
        c.put(key("a"), &res(), Duration::from_secs(60), t0);
        let hit = c.get(&key("a"), t0 + Duration::from_secs(20)).unwrap().unwrap();
        assert_eq!(hit.ttl, Duration::from_secs(40));
        assert_eq!(hit.targets, res().unwrap().targets);
        assert!(c.get(&key("a"), t0 + Duration::from_secs(60)).is_none());
        assert_eq!(c.len(), 0, "an expired entry is removed when seen");
        assert!(c.get(&key("b"), t0).is_none());
    }

    #[test]
    fn only_final_answers_are_kept() {
        let c = Cache::new(10);
        let t0 = Instant::now();
        c.put(key("nx"), &Err(DnsError::NotFound("nx".into())), Duration::from_secs(30), t0);
        c.put(key("tmp"), &Err(DnsError::Failed("timeout".into())), Duration::from_secs(30), t0);
        c.put(key("bad"), &Err(DnsError::Invalid("bad".into())), Duration::from_secs(30), t0);
        c.put(key("zero"), &res(), Duration::ZERO, t0);
        assert_eq!(c.get(&key("nx"), t0 + Duration::from_secs(29)), Some(Err(DnsError::NotFound("nx".into()))));
        assert!(c.get(&key("tmp"), t0).is_none());
        assert!(c.get(&key("bad"), t0).is_none());
        assert!(c.get(&key("zero"), t0).is_none());
        assert!(c.get(&key("nx"), t0 + Duration::from_secs(30)).is_none());
        c.put(key("nx"), &Err(DnsError::NotFound("nx".into())), Duration::from_secs(30), t0);
        c.clear();
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn bounded() {
        let c = Cache::new(2);
        let t0 = Instant::now();
        c.put(key("short"), &res(), Duration::from_secs(5), t0);
        c.put(key("long"), &res(), Duration::from_secs(50), t0);
        c.put(key("new"), &res(), Duration::from_secs(20), t0);
        assert_eq!(c.len(), 2);
        assert!(c.get(&key("short"), t0).is_none(), "the entry closest to expiry is evicted");
        assert!(c.get(&key("long"), t0).is_some() && c.get(&key("new"), t0).is_some());
        c.put(key("later"), &res(), Duration::from_secs(20), t0 + Duration::from_secs(30));
        assert!(c.get(&key("long"), t0 + Duration::from_secs(30)).is_some(), "the expired entry went first");
    }
}
