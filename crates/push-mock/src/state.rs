//! The state a running mock shares between its connections and its test:
//! the requests seen, the counters, and the scripted behaviour. Held in a
//! `std::sync::Mutex` that is only ever locked for a few lines of
//! synchronous code (never across an `.await`).

use crate::seen::Seen;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// In light mode (see [`crate::Mock::set_record_all`]) at most this many
/// requests (those with problems, and token-endpoint hits) are kept.
pub(crate) const LIGHT_KEEP: usize = 10_000;

/// Scripted failures: the next `remaining` push requests get `status`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fail {
    pub remaining: usize,
    pub status: u16,
    pub retry_after: Option<u32>,
}

/// Everything behind the mock's mutex.
#[derive(Debug)]
pub(crate) struct State {
    /// Requests kept, in arrival order.
    pub requests: Vec<Seen>,
    /// Keep every request (true) or only those with problems (false).
    pub record_all: bool,
    /// Push requests received (whether kept or not).
    pub push_count: usize,
    /// Token-endpoint requests received.
    pub token_count: usize,
    /// Requests that had at least one problem.
    pub problem_count: usize,
    /// TLS handshakes that failed (e.g. no client certificate).
    pub tls_failures: usize,
    /// Device tokens (APNs, FCM) or paths (WebPush) answered as gone.
    pub dead: HashSet<String>,
    /// Device tokens answered as malformed.
    pub bad: HashSet<String>,
    /// Pending scripted failures.
    pub fail: Option<Fail>,
    /// FCM: `expires_in` of the access tokens issued from now on.
    pub token_lifetime: u64,
    /// FCM: access tokens issued, with their expiry.
    pub issued: HashMap<String, Instant>,
    /// APNs: the provider token most recently adopted, and when.
    pub apns_current: Option<(String, Instant)>,
    /// APNs: provider tokens adopted so far.
    pub apns_known: HashSet<String>,
    /// APNs: the least time between two new provider tokens (Apple: 20 min).
    pub apns_refresh_min: Duration,
}

impl Default for State {
    fn default() -> State {
        State {
            requests: Vec::new(),
            record_all: true,
            push_count: 0,
            token_count: 0,
            problem_count: 0,
            tls_failures: 0,
            dead: HashSet::new(),
            bad: HashSet::new(),
            fail: None,
            token_lifetime: 3599,
            issued: HashMap::new(),
            apns_current: None,
            apns_known: HashSet::new(),
            apns_refresh_min: Duration::from_secs(20 * 60),
        }
    }
}

impl State {
    /// Takes one scripted failure, if any is pending.
    pub fn take_fail(&mut self) -> Option<Fail> {
        let fail = self.fail?;
        self.fail = (fail.remaining > 1).then(|| Fail { remaining: fail.remaining - 1, ..fail });
        Some(fail)
    }
}
