//! The resolver's configuration ([`ResolverConfig`]) and its defaults.
//!
//! Plain data: it owns no I/O and must not know about hickory; the lookup
//! module translates it into hickory's options.

use std::net::SocketAddr;
use std::time::Duration;

/// How the resolver talks to DNS and how long it keeps answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolverConfig {
    /// The DNS servers to ask (UDP, TCP on truncation). Empty means the
    /// system's configuration (`/etc/resolv.conf`, and `/etc/hosts` for
    /// addresses).
    pub servers: Vec<SocketAddr>,
    /// How long one query attempt may take.
    pub timeout: Duration,
    /// How many times one query is sent before it counts as failed (at least 1).
    pub attempts: usize,
    /// The upper bound of any cached answer (and of [`crate::Resolution::ttl`]).
    pub max_cache_ttl: Duration,
    /// How long a `NotFound` answer (NXDOMAIN, no usable records) is cached.
    pub negative_ttl: Duration,
    /// Try the IPv6 addresses of a host before its IPv4 addresses.
    pub prefer_ipv6: bool,
    /// How many distinct queries the cache holds at most.
    pub cache_entries: usize,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            servers: Vec::new(),
            timeout: Duration::from_secs(2),
            attempts: 2,
            max_cache_ttl: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(30),
            prefer_ipv6: false,
            cache_entries: 10_000,
        }
    }
}
