//! Defence by source address: IP allow and deny lists (for every listener
//! and per listener), a per-source request-rate limit in the manner of
//! Kamailio's `pike` module, and a temporary block after repeated failed
//! digest authentications (online password guessing), as fail2ban would
//! impose from the logs, but at once and without a firewall.
//!
//! Sans-IO: [`Guard`] is fed the source of each message and `now`, and
//! answers pass or drop; the node calls it before any parsing result is
//! used, so a blocked or denied source costs one hash lookup. What it drops
//! is dropped silently (an answer would feed the flood and tell a scanner
//! it found a SIP server); every drop is counted in metrics and every block
//! logged once, at warning, with the source and the reason.
//!
//! Sources are tracked by IP address, IPv6 by its /64 (one host may use
//! a whole /64; tracking each address would let it rotate past the limit).
//! The table of tracked sources is bounded ([`DefenceConfig::max_tracked`])
//! and swept of idle entries, so a flood from spoofed addresses cannot grow
//! it without bound.
//!
//! Owns the per-source counters and blocks. Must not touch messages,
//! transactions or the location: the node decides what to feed it.

use ipnet::IpNet;
use sip_msg::{Source, Transport};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// A per-source request-rate limit: more than `max_requests` requests in
/// one `window` blocks the source for `block`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub max_requests: u32,
    pub window: Duration,
    pub block: Duration,
}

/// Failed digest authentications from one source: `max_failures` within
/// `window` blocks it for `block`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthLimit {
    pub max_failures: u32,
    pub window: Duration,
    pub block: Duration,
}

/// Allow and deny lists of one listener, matched by transport and local
/// address (an unspecified listener address matches any local address on
/// its port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerAcl {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// Only these sources (empty: any).
    pub allow: Vec<IpNet>,
    /// Never these sources.
    pub deny: Vec<IpNet>,
}

/// What the guard enforces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefenceConfig {
    /// `None`: no rate limit.
    pub rate: Option<RateLimit>,
    /// `None`: no blocking after failed authentications.
    pub auth: Option<AuthLimit>,
    /// Sources never rate-limited or blocked (trunks, SBCs, the upstream
    /// registrar); allow and deny lists still apply to them.
    pub exempt: Vec<IpNet>,
    /// Every listener: only these sources (empty: any).
    pub allow: Vec<IpNet>,
    /// Every listener: never these sources.
    pub deny: Vec<IpNet>,
    /// Lists of single listeners, checked after the global ones.
    pub listeners: Vec<ListenerAcl>,
    /// Most sources tracked at once; past it new sources pass untracked
    /// (counted) until a sweep frees room.
    pub max_tracked: usize,
}

impl Default for DefenceConfig {
    /// The defaults of `[defence]`: a limit no single phone, nor a NAT with
    /// hundreds behind it, comes near (a phone sends a few requests per
    /// call and one REGISTER per refresh), and a block after 20 failed
    /// logins in a minute.
    fn default() -> Self {
        DefenceConfig {
            rate: Some(RateLimit {
                max_requests: 2000,
                window: Duration::from_secs(2),
                block: Duration::from_secs(60),
            }),
            auth: Some(AuthLimit {
                max_failures: 20,
                window: Duration::from_secs(60),
                block: Duration::from_secs(600),
            }),
            exempt: Vec::new(),
            allow: Vec::new(),
            deny: Vec::new(),
            listeners: Vec::new(),
            max_tracked: 100_000,
        }
    }
}

/// Why a message was dropped (the metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// The source is in a deny list.
    Denied,
    /// An allow list exists and the source is not in it.
    NotAllowed,
    /// The source is blocked (rate limit or failed authentications).
    Blocked,
}

impl Drop {
    pub fn label(self) -> &'static str {
        match self {
            Drop::Denied => "denied",
            Drop::NotAllowed => "not-allowed",
            Drop::Blocked => "blocked",
        }
    }
}

/// Why a source is blocked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockReason {
    RateLimit,
    AuthFailures,
    /// Blocked by the operator (management API).
    Manual,
}

impl BlockReason {
    pub fn label(self) -> &'static str {
        match self {
            BlockReason::RateLimit => "rate-limit",
            BlockReason::AuthFailures => "auth-failures",
            BlockReason::Manual => "manual",
        }
    }
}

/// A blocked source, as the management API lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// The address (IPv6: its /64, as `2001:db8::/64`).
    pub source: String,
    pub reason: BlockReason,
    /// Time left.
    pub remaining: Duration,
}

/// One tracked source.
#[derive(Clone, Debug)]
struct Track {
    window_start: Instant,
    requests: u32,
    auth_window_start: Instant,
    auth_failures: u32,
    blocked: Option<(Instant, BlockReason)>,
    last_seen: Instant,
}

/// The key a source is tracked by: the IPv4 address, or the IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key(IpAddr);

impl Key {
    fn of(ip: IpAddr) -> Key {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Key(IpAddr::V4(v4)),
                None => Key(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1)))),
            },
            v4 => Key(v4),
        }
    }

    fn text(self) -> String {
        match self.0 {
            IpAddr::V6(v6) => format!("{v6}/64"),
            v4 => v4.to_string(),
        }
    }
}

/// The guard: lists, counters and blocks.
pub struct Guard {
    cfg: DefenceConfig,
    sources: HashMap<Key, Track, foldhash::fast::RandomState>,
    /// When idle entries were last dropped.
    last_sweep: Option<Instant>,
}

/// A source that just became blocked (for the node to log and count).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBlock {
    pub source: String,
    pub reason: BlockReason,
    /// Requests or failures counted in the window that crossed the limit.
    pub count: u32,
    pub block: Duration,
}

/// Whether `ip` (an IPv4-mapped IPv6 address as its IPv4 address) is in
/// one of `nets`: the one matcher of every allow, deny and exempt list.
pub fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    nets.iter().any(|n| n.contains(&ip))
}

impl Guard {
    pub fn new(cfg: DefenceConfig) -> Guard {
        Guard { cfg, sources: HashMap::default(), last_sweep: None }
    }

    /// A new configuration (reload): tracked sources and blocks in force
    /// stay; new limits apply from the next request.
    pub fn reconfigure(&mut self, cfg: DefenceConfig) {
        self.cfg = cfg;
    }

    /// The allow and deny lists, for any message (requests and responses).
    pub fn check_lists(&self, src: &Source) -> Result<(), Drop> {
        let ip = src.remote.ip();
        if contains(&self.cfg.deny, ip) {
            return Err(Drop::Denied);
        }
        if !self.cfg.allow.is_empty() && !contains(&self.cfg.allow, ip) {
            return Err(Drop::NotAllowed);
        }
        for l in &self.cfg.listeners {
            let same_addr =
                l.addr.port() == src.local.port() && (l.addr.ip().is_unspecified() || l.addr.ip() == src.local.ip());
            if l.transport == src.transport && same_addr {
                if contains(&l.deny, ip) {
                    return Err(Drop::Denied);
                }
                if !l.allow.is_empty() && !contains(&l.allow, ip) {
                    return Err(Drop::NotAllowed);
                }
            }
        }
        Ok(())
    }

    /// Counts one request (or undecodable datagram) from `ip`: `Err` when
    /// the source is blocked (it may become blocked by this very request;
    /// the block is then returned as well, to be logged once).
    pub fn check_request(&mut self, ip: IpAddr, now: Instant) -> (Result<(), Drop>, Option<NewBlock>) {
        if self.cfg.rate.is_none() && self.sources.is_empty() {
            return (Ok(()), None);
        }
        self.maybe_sweep(now);
        let key = Key::of(ip);
        let Some(t) = self.sources.get_mut(&key) else {
            if self.cfg.rate.is_none() || contains(&self.cfg.exempt, ip) || !self.room() {
                return (Ok(()), None);
            }
            self.sources.insert(key, Track::new(now));
            return (Ok(()), None);
        };
        t.last_seen = now;
        if let Some((until, _)) = t.blocked {
            if now < until {
                return (Err(Drop::Blocked), None);
            }
            t.blocked = None;
            t.window_start = now;
            t.requests = 0;
        }
        let Some(rate) = &self.cfg.rate else { return (Ok(()), None) };
        if now.saturating_duration_since(t.window_start) >= rate.window {
            t.window_start = now;
            t.requests = 0;
        }
        t.requests += 1;
        if t.requests <= rate.max_requests {
            return (Ok(()), None);
        }
        let count = t.requests;
        t.blocked = Some((now + rate.block, BlockReason::RateLimit));
        let nb = NewBlock { source: key.text(), reason: BlockReason::RateLimit, count, block: rate.block };
        (Err(Drop::Blocked), Some(nb))
    }

    /// A failed digest authentication (wrong password, unknown user,
    /// malformed credentials or ones for another realm or URI) from `ip`:
    /// `Some` when the source becomes blocked.
    pub fn auth_failed(&mut self, ip: IpAddr, now: Instant) -> Option<NewBlock> {
        let limit = self.cfg.auth.clone()?;
        if contains(&self.cfg.exempt, ip) {
            return None;
        }
        let key = Key::of(ip);
        if !self.sources.contains_key(&key) {
            if !self.room() {
                return None;
            }
            self.sources.insert(key, Track::new(now));
        }
        let t = self.sources.get_mut(&key)?;
        t.last_seen = now;
        if t.blocked.is_some_and(|(until, _)| now < until) {
            return None;
        }
        if now.saturating_duration_since(t.auth_window_start) >= limit.window {
            t.auth_window_start = now;
            t.auth_failures = 0;
        }
        t.auth_failures += 1;
        if t.auth_failures < limit.max_failures {
            return None;
        }
        let count = t.auth_failures;
        t.auth_failures = 0;
        t.blocked = Some((now + limit.block, BlockReason::AuthFailures));
        Some(NewBlock { source: key.text(), reason: BlockReason::AuthFailures, count, block: limit.block })
    }

    /// Whether `ip` is blocked at `now`.
    pub fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.sources.get(&Key::of(ip)).and_then(|t| t.blocked).is_some_and(|(until, _)| now < until)
    }

    /// The sources blocked at `now`.
    pub fn blocked(&self, now: Instant) -> Vec<Blocked> {
        let mut v: Vec<Blocked> = self
            .sources
            .iter()
            .filter_map(|(k, t)| {
                let (until, reason) = t.blocked?;
                (now < until).then(|| Blocked { source: k.text(), reason, remaining: until - now })
            })
            .collect();
        v.sort_by(|a, b| a.source.cmp(&b.source));
        v
    }

    /// How many sources are blocked at `now`.
    pub fn blocked_count(&self, now: Instant) -> usize {
        self.sources.values().filter(|t| t.blocked.is_some_and(|(until, _)| now < until)).count()
    }

    /// Blocks `ip` (its /64 for IPv6) for `d`, by the operator's hand;
    /// exempt sources too (the operator asked).
    pub fn block(&mut self, ip: IpAddr, d: Duration, now: Instant) {
        let t = self.sources.entry(Key::of(ip)).or_insert_with(|| Track::new(now));
        t.blocked = Some((now + d, BlockReason::Manual));
        t.last_seen = now;
    }

    /// Lifts the block of `ip`; whether it was blocked.
    pub fn unblock(&mut self, ip: IpAddr, now: Instant) -> bool {
        let Some(t) = self.sources.get_mut(&Key::of(ip)) else { return false };
        let was = t.blocked.is_some_and(|(until, _)| now < until);
        t.blocked = None;
        t.requests = 0;
        t.auth_failures = 0;
        was
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    fn room(&mut self) -> bool {
        self.sources.len() < self.cfg.max_tracked
    }

    /// Drops idle, unblocked entries once per longest window (a source
    /// whose windows all ended carries no state worth keeping), and at most
    /// once a second while the table is full.
    fn maybe_sweep(&mut self, now: Instant) {
        let Some(last) = self.last_sweep else {
            self.last_sweep = Some(now);
            return;
        };
        let idle = self.idle_after();
        let since = now.saturating_duration_since(last);
        let full = self.sources.len() >= self.cfg.max_tracked;
        if since < idle && !(full && since >= Duration::from_secs(1)) {
            return;
        }
        self.last_sweep = Some(now);
        self.sources.retain(|_, t| {
            t.blocked.is_some_and(|(until, _)| now < until) || now.saturating_duration_since(t.last_seen) < idle
        });
    }

    fn idle_after(&self) -> Duration {
        let r = self.cfg.rate.as_ref().map_or(Duration::ZERO, |r| r.window);
        let a = self.cfg.auth.as_ref().map_or(Duration::ZERO, |a| a.window);
        r.max(a).max(Duration::from_secs(1))
    }
}

impl Track {
    fn new(now: Instant) -> Track {
        Track {
            window_start: now,
            requests: 1,
            auth_window_start: now,
            auth_failures: 0,
            blocked: None,
            last_seen: now,
        }
    }
}

/// Whether a failed authentication counts against its source: wrong
/// passwords, unknown users and forged or malformed credentials do; a
/// missing, stale, replayed or forgotten nonce does not (every client meets
/// those in normal work: a retransmission, a nonce past its lifetime, a
/// restart of the server).
pub fn counts_against_source(reason: &str) -> bool {
    use sip_auth::reason as r;
    [
        r::WRONG_PASSWORD,
        r::UNKNOWN_USER,
        r::BAD_NONCE,
        r::MALFORMED,
        r::REALM_MISMATCH,
        r::URI_MISMATCH,
        r::OPAQUE_MISMATCH,
    ]
    .contains(&reason)
}

impl crate::Node {
    /// The guard's verdict on a message from `src` before the node uses it:
    /// lists for every message, the rate limit and blocks for requests and
    /// undecodable datagrams (`request`). `false`: dropped (counted).
    pub(crate) fn admit(&mut self, src: &Source, request: bool, now: Instant) -> bool {
        if let Err(d) = self.guard.check_lists(src) {
            crate::metrics::defence_dropped(d.label());
            return false;
        }
        if !request {
            return true;
        }
        let (verdict, new_block) = self.guard.check_request(src.remote.ip(), now);
        if let Some(b) = new_block {
            self.announce_block(&b, now);
        }
        match verdict {
            Ok(()) => true,
            Err(d) => {
                crate::metrics::defence_dropped(d.label());
                false
            }
        }
    }

    /// Whether to keep a connection just accepted from `src`: refused (and
    /// counted) when the lists refuse its source or it is blocked, before
    /// any TLS or WebSocket handshake is spent on it.
    pub fn admit_connection(&mut self, src: &Source, now: Instant) -> bool {
        let verdict = match self.guard.check_lists(src) {
            Err(d) => Err(d),
            Ok(()) if self.guard.is_blocked(src.remote.ip(), now) => Err(Drop::Blocked),
            Ok(()) => Ok(()),
        };
        match verdict {
            Ok(()) => true,
            Err(d) => {
                crate::metrics::defence_dropped(d.label());
                false
            }
        }
    }

    /// A failed authentication from `src` (see [`counts_against_source`]).
    pub(crate) fn source_failed_auth(&mut self, src: &Source, now: Instant) {
        if let Some(b) = self.guard.auth_failed(src.remote.ip(), now) {
            self.announce_block(&b, now);
        }
    }

    fn announce_block(&self, b: &NewBlock, now: Instant) {
        tracing::warn!(
            "source blocked: src={} reason={} count={} block_secs={}",
            b.source,
            b.reason.label(),
            b.count,
            b.block.as_secs()
        );
        crate::metrics::defence_blocked(b.reason.label(), self.guard.blocked_count(now));
    }

    /// A new `[defence]` (reload); blocks in force stay.
    pub fn set_defence(&mut self, cfg: DefenceConfig) {
        self.guard.reconfigure(cfg);
    }

    /// The sources blocked now (management).
    pub fn blocked_sources(&self, now: Instant) -> Vec<Blocked> {
        self.guard.blocked(now)
    }

    /// Blocks a source by the operator's hand for `d` (management).
    pub fn block_source(&mut self, ip: IpAddr, d: Duration, now: Instant) {
        self.guard.block(ip, d, now);
        tracing::warn!("source blocked: src={} reason=manual block_secs={}", Key::of(ip).text(), d.as_secs());
        crate::metrics::defence_blocked(BlockReason::Manual.label(), self.guard.blocked_count(now));
    }

    /// Lifts a block (management); whether the source was blocked.
    pub fn unblock_source(&mut self, ip: IpAddr, now: Instant) -> bool {
        let was = self.guard.unblock(ip, now);
        if was {
            tracing::info!("source unblocked: src={}", Key::of(ip).text());
        }
        crate::metrics::defence_blocked_sources(self.guard.blocked_count(now));
        was
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(ip: &str, port: u16) -> Source {
        Source {
            transport: Transport::Udp,
            local: "127.0.0.1:5060".parse().unwrap(),
            remote: SocketAddr::new(ip.parse().unwrap(), port),
            conn: None,
        }
    }

    fn cfg() -> DefenceConfig {
        DefenceConfig {
            rate: Some(RateLimit { max_requests: 10, window: Duration::from_secs(1), block: Duration::from_secs(5) }),
            auth: Some(AuthLimit { max_failures: 3, window: Duration::from_secs(60), block: Duration::from_secs(30) }),
            ..DefenceConfig::default()
        }
    }

    #[test]
    fn a_flood_is_blocked_for_the_block_time_and_then_passes() {
        let mut g = Guard::new(cfg());
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(g.check_request(ip, t0).0, Ok(()));
        }
        let (v, nb) = g.check_request(ip, t0);
        assert_eq!(v, Err(Drop::Blocked));
        let nb = nb.unwrap();
        assert_eq!((nb.source.as_str(), nb.reason, nb.count), ("192.0.2.1", BlockReason::RateLimit, 11));
        // Still blocked, not announced again.
        assert_eq!(g.check_request(ip, t0 + Duration::from_secs(4)), (Err(Drop::Blocked), None));
        assert_eq!(g.blocked_count(t0 + Duration::from_secs(4)), 1);
        // Another source is not affected.
        assert_eq!(g.check_request("192.0.2.2".parse().unwrap(), t0).0, Ok(()));
        // After the block, a fresh window.
        assert_eq!(g.check_request(ip, t0 + Duration::from_secs(5)).0, Ok(()));
        assert_eq!(g.blocked_count(t0 + Duration::from_secs(5)), 0);
    }

    #[test]
    fn a_steady_rate_under_the_limit_passes_forever() {
        let mut g = Guard::new(cfg());
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..1000u64 {
            // 9 per second.
            let (v, _) = g.check_request(ip, t0 + Duration::from_millis(i * 111));
            assert_eq!(v, Ok(()), "request {i}");
        }
    }

    #[test]
    fn failed_logins_block_the_source_even_at_a_low_rate() {
        let mut g = Guard::new(cfg());
        let t0 = Instant::now();
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(g.auth_failed(ip, t0), None);
        assert_eq!(g.auth_failed(ip, t0 + Duration::from_secs(10)), None);
        let nb = g.auth_failed(ip, t0 + Duration::from_secs(20)).unwrap();
        assert_eq!((nb.reason, nb.count, nb.block), (BlockReason::AuthFailures, 3, Duration::from_secs(30)));
        assert_eq!(g.check_request(ip, t0 + Duration::from_secs(21)).0, Err(Drop::Blocked));
        let b = g.blocked(t0 + Duration::from_secs(21));
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].remaining, Duration::from_secs(29));
        assert!(g.unblock(ip, t0 + Duration::from_secs(22)));
        assert_eq!(g.check_request(ip, t0 + Duration::from_secs(22)).0, Ok(()));
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_block() {
        let mut g = Guard::new(cfg());
        let t0 = Instant::now();
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        for i in 0..10u64 {
            assert_eq!(g.auth_failed(ip, t0 + Duration::from_secs(i * 31)), None, "failure {i}");
        }
    }

    #[test]
    fn exempt_sources_are_never_blocked() {
        let mut c = cfg();
        c.exempt = vec!["10.0.0.0/8".parse().unwrap()];
        let mut g = Guard::new(c);
        let t0 = Instant::now();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        for _ in 0..100 {
            assert_eq!(g.check_request(ip, t0).0, Ok(()));
            assert_eq!(g.auth_failed(ip, t0), None);
        }
        assert_eq!(g.tracked(), 0);
    }

    #[test]
    fn ipv6_sources_are_tracked_by_their_64() {
        let mut g = Guard::new(cfg());
        let t0 = Instant::now();
        for i in 0..10u32 {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            assert_eq!(g.check_request(ip, t0).0, Ok(()));
        }
        let (v, nb) = g.check_request("2001:db8:1:2:ffff::1".parse().unwrap(), t0);
        assert_eq!(v, Err(Drop::Blocked));
        assert_eq!(nb.unwrap().source, "2001:db8:1:2::/64");
        assert_eq!(g.check_request("2001:db8:1:3::1".parse().unwrap(), t0).0, Ok(()));
    }

    #[test]
    fn lists_global_and_per_listener() {
        let mut c = cfg();
        c.deny = vec!["192.0.2.0/24".parse().unwrap()];
        c.listeners = vec![ListenerAcl {
            transport: Transport::Udp,
            addr: "0.0.0.0:5060".parse().unwrap(),
            allow: vec!["203.0.113.0/24".parse().unwrap()],
            deny: vec!["203.0.113.66/32".parse().unwrap()],
        }];
        let g = Guard::new(c);
        assert_eq!(g.check_lists(&src("192.0.2.9", 5060)), Err(Drop::Denied));
        assert_eq!(g.check_lists(&src("203.0.113.5", 5060)), Ok(()));
        assert_eq!(g.check_lists(&src("203.0.113.66", 5060)), Err(Drop::Denied));
        assert_eq!(g.check_lists(&src("198.51.100.1", 5060)), Err(Drop::NotAllowed));
        // Another listener (TCP, or another port) is not restricted by it.
        let mut s = src("198.51.100.1", 5060);
        s.transport = Transport::Tcp;
        assert_eq!(g.check_lists(&s), Ok(()));
        s.transport = Transport::Udp;
        s.local = "127.0.0.1:5080".parse().unwrap();
        assert_eq!(g.check_lists(&s), Ok(()));
        // IPv4-mapped IPv6 sources match IPv4 lists.
        assert_eq!(g.check_lists(&src("::ffff:192.0.2.9", 5060)), Err(Drop::Denied));
    }

    #[test]
    fn the_table_is_bounded_and_swept() {
        let mut c = cfg();
        c.max_tracked = 100;
        let mut g = Guard::new(c);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(g.check_request(ip, t0).0, Ok(()));
        }
        assert_eq!(g.tracked(), 100);
        // Idle entries go once their windows end.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(g.check_request("192.0.2.1".parse().unwrap(), later).0, Ok(()));
        assert!(g.tracked() <= 1, "{}", g.tracked());
    }
}
