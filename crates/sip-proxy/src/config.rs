//! The inputs of a context: targets with their q-values, and the settings
//! of one context (Timer C, parallel or sequential forking, CANCEL guard).

use std::time::Duration;

/// The highest q-value, 1.0, in thousandths.
pub const Q_MAX: u16 = 1000;

/// A place the request may be forwarded to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Opaque to the context (e.g. a binding id); echoed in
    /// [`crate::Action::StartBranch`].
    pub id: String,
    /// The q-value in thousandths (0..=1000); larger values are tried first.
    pub q: u16,
}

impl Target {
    /// A target with q = 1.0.
    pub fn new(id: impl Into<String>) -> Target {
        Target { id: id.into(), q: Q_MAX }
    }
    /// A target with the given q (thousandths, clamped to 1000).
    pub fn with_q(id: impl Into<String>, q: u16) -> Target {
        Target { id: id.into(), q: q.min(Q_MAX) }
    }
}

/// Settings of one context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextConfig {
    /// Timer C (§16.6 step 11): how long an INVITE branch may stay without a
    /// final response, reset by each provisional other than 100. RFC 3261
    /// requires more than 3 minutes.
    pub timer_c: Duration,
    /// `true`: all targets of the same q start at once (parallel within a
    /// group, sequential between groups of decreasing q). `false`: every
    /// target is tried alone, in q order.
    pub parallel: bool,
    /// How long a cancelled INVITE branch that has seen a provisional (so
    /// its CANCEL went out) may wait for its final response before the
    /// context gives up on it (§9.1: 64*T1) and counts it as a 408.
    pub cancel_timeout: Duration,
}

impl ContextConfig {
    /// 181 s: the smallest whole number of seconds that is "larger than 3
    /// minutes" (§16.6 step 11).
    pub const DEFAULT_TIMER_C: Duration = Duration::from_secs(181);
    /// 64*T1 with T1 = 500 ms.
    pub const DEFAULT_CANCEL_TIMEOUT: Duration = Duration::from_secs(32);
}

impl Default for ContextConfig {
    fn default() -> Self {
        ContextConfig { timer_c: Self::DEFAULT_TIMER_C, parallel: true, cancel_timeout: Self::DEFAULT_CANCEL_TIMEOUT }
    }
}
