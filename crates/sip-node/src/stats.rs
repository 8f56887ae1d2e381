//! Counters the node keeps (read by the management API).

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default, Debug)]
pub struct Stats {
    pub requests: AtomicU64,
    pub parse_errors: AtomicU64,
    pub stray_responses: AtomicU64,
    pub send_errors: AtomicU64,
    pub responses_2xx: AtomicU64,
    pub responses_4xx: AtomicU64,
    pub responses_5xx: AtomicU64,
    pub responses_other: AtomicU64,
    pub branches: AtomicU64,
    /// Branches sent on to the next address of their host name (RFC 3263 §4.3).
    pub failovers: AtomicU64,
}

impl Stats {
    pub fn count_response(&self, code: u16) {
        let c = match code {
            200..=299 => &self.responses_2xx,
            400..=499 => &self.responses_4xx,
            500..=599 => &self.responses_5xx,
            _ => &self.responses_other,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

impl Stats {
    /// Adds one to a counter.
    pub fn count(&self, f: impl Fn(&Stats) -> &AtomicU64) {
        f(self).fetch_add(1, Ordering::Relaxed);
    }
}
