//! [`Resolver`]: RFC 3263 §4 end to end. Plans the query, runs the
//! NAPTR → SRV → A/AAAA lookups (concurrently where the RFC allows), orders
//! with the rules, flattens, and caches the final answer.
//!
//! Owns the sequencing, the cache policy and the RNG. Must not parse DNS
//! (that is `lookup`) nor hold a rule of its own (that is `rules`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::future::join_all;
use rand::rngs::StdRng;
use sip_msg::Transport;

use crate::cache::{Cache, Key};
use crate::config::ResolverConfig;
use crate::lookup::{Dns, LookupError, SrvAnswer};
use crate::rules::flatten::Flat;
use crate::rules::plan::{Host, Plan, fallback_transport, normalize_host, plan, srv_candidates};
use crate::rules::{AddrRecord, SrvRecord, default_port, naptr, srv, srv_name};
use crate::types::{DnsError, Query, Resolution};

/// An RFC 3263 resolver with a cache. Cheap to clone; clones share the
/// cache. Must be used inside a Tokio runtime.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ResolverConfig,
    supported: Vec<Transport>,
    dns: Dns,
    cache: Cache,
    rng: Mutex<StdRng>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").field("cfg", &self.inner.cfg).field("supported", &self.inner.supported).finish()
    }
}

/// The lookups' outcome before it becomes a [`Resolution`]: the targets so
/// far, and whether some lookup failed on the way (then the answer may be
/// incomplete and is not cached).
struct Run {
    flat: Flat,
    failure: Option<String>,
}

impl Run {
    fn new() -> Run {
        Run { flat: Flat::new(), failure: None }
    }
    fn fail(&mut self, why: String) {
        self.failure.get_or_insert(why);
    }
}

/// What a set of SRV lookups found.
enum SrvSet {
    /// At least one SRV record set exists (possibly only `.` targets).
    Found,
    /// Every lookup said "no records".
    None,
}

impl Resolver {
    /// A resolver for `supported` transports (WS and WSS are dropped: they
    /// are never resolved for outbound requests). SRV weights use an RNG
    /// seeded from the operating system.
    pub fn new(cfg: ResolverConfig, supported: &[Transport]) -> Result<Resolver, String> {
        Resolver::with_rng(cfg, supported, rand::make_rng())
    }

    /// As [`Resolver::new`], with the RNG of the SRV weighted selection
    /// given (a seeded one makes the order reproducible).
    pub fn with_rng(cfg: ResolverConfig, supported: &[Transport], rng: StdRng) -> Result<Resolver, String> {
        let supported: Vec<Transport> = supported
            .iter()
            .copied()
            .filter(|t| matches!(t, Transport::Udp | Transport::Tcp | Transport::Tls))
            .collect();
        if supported.is_empty() {
            return Err("no supported transport (UDP, TCP or TLS) to resolve for".into());
        }
        let dns = Dns::new(&cfg)?;
        let cache = Cache::new(cfg.cache_entries);
        Ok(Resolver { inner: Arc::new(Inner { cfg, supported, dns, cache, rng: Mutex::new(rng) }) })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ResolverConfig {
        &self.inner.cfg
    }

    /// How many answers the cache holds.
    pub fn cached_entries(&self) -> usize {
        self.inner.cache.len()
    }

    /// Forgets every cached answer.
    pub fn clear_cache(&self) {
        self.inner.cache.clear();
    }

    /// Resolves a query into the ordered targets (RFC 3263 §4). An IP
    /// literal answers at once (TTL `max_cache_ttl`); otherwise a live cached answer is returned,
    /// or DNS is asked and a final answer cached (positive for its TTL,
    /// `NotFound` for `negative_ttl`).
    pub async fn resolve(&self, q: &Query) -> Result<Resolution, DnsError> {
        let inner = &self.inner;
        let plan = plan(q, &inner.supported)?;
        let host = match &plan {
            Plan::Literal(r) => return Ok(Resolution { targets: vec![*r], ttl: inner.cfg.max_cache_ttl }),
            Plan::Address { host, .. } | Plan::Srv { host, .. } | Plan::Naptr { host } => host.clone(),
        };
        let key = Key { host, port: q.port, transport: q.transport, secure: q.secure };
        if let Some(hit) = inner.cache.get(&key, Instant::now()) {
            tracing::trace!(host = %key.host, "DNS answer from cache");
            return hit;
        }
        let (result, complete) = self.run(plan, q.secure).await;
        match &result {
            Ok(r) => tracing::debug!(host = %key.host, targets = r.targets.len(), ttl = ?r.ttl, complete, "resolved"),
            Err(e) => tracing::debug!(host = %key.host, error = %e, "not resolved"),
        }
        if complete {
            let ttl = match &result {
                Ok(r) => r.ttl,
                Err(_) => inner.cfg.negative_ttl,
            };
            inner.cache.put(key, &result, ttl, Instant::now());
        }
        result
    }

    async fn run(&self, plan: Plan, secure: bool) -> (Result<Resolution, DnsError>, bool) {
        let mut run = Run::new();
        let what = match plan {
            Plan::Literal(r) => {
                return (Ok(Resolution { targets: vec![r], ttl: self.inner.cfg.max_cache_ttl }), true);
            }
            Plan::Address { host, transport, port } => {
                if let Err(e) = self.addresses(&mut run, &host, transport, port).await {
                    return (Err(e), false);
                }
                host
            }
            Plan::Srv { host, transport } => {
                let services: Vec<(Transport, String)> =
                    srv_name(transport, &host).into_iter().map(|n| (transport, n)).collect();
                if let Err(e) = self.srv_or_addresses(&mut run, &host, services, transport).await {
                    return (Err(e), false);
                }
                host
            }
            Plan::Naptr { host } => {
                if let Err(e) = self.naptr_path(&mut run, &host, secure).await {
                    return (Err(e), false);
                }
                host
            }
        };
        let Run { flat, failure } = run;
        match (flat.finish(self.inner.cfg.max_cache_ttl), failure) {
            (Some(r), failure) => (Ok(r), failure.is_none()),
            (None, Some(why)) => (Err(DnsError::Failed(why)), false),
            (None, None) => (Err(DnsError::NotFound(format!("{what}: no reachable SIP target"))), true),
        }
    }

    /// §4.1: NAPTR first; the applicable records lead to SRV; without any,
    /// the SRV services of every supported transport; without SRV, A/AAAA.
    async fn naptr_path(&self, run: &mut Run, host: &str, secure: bool) -> Result<(), DnsError> {
        let supported = &self.inner.supported;
        let choices = match self.inner.dns.naptr(host).await {
            Ok(answer) => {
                let choices = naptr::select(&answer.records, secure, supported);
                if !choices.is_empty() {
                    answer.alias_ttls.iter().for_each(|t| run.flat.ttl(*t));
                    choices.iter().for_each(|c| run.flat.ttl(c.ttl));
                }
                choices
            }
            Err(LookupError::NoRecords { .. }) => Vec::new(),
            Err(LookupError::Failed(why)) => return Err(DnsError::Failed(format!("NAPTR {host}: {why}"))),
            Err(LookupError::BadName(why)) => return Err(DnsError::Invalid(why)),
        };
        if let Some(first) = choices.first() {
            let fallback = first.transport;
            let services = choices.into_iter().map(|c| (c.transport, c.srv_name)).collect();
            return self.srv_or_addresses(run, host, services, fallback).await;
        }
        let services = srv_candidates(secure, supported)
            .into_iter()
            .filter_map(|t| srv_name(t, host).map(|n| (t, n)))
            .collect::<Vec<_>>();
        let fallback = fallback_transport(secure, supported)
            .ok_or_else(|| DnsError::Invalid(format!("{host}: no transport to fall back to")))?;
        self.srv_or_addresses(run, host, services, fallback).await
    }

    /// §4.2: the SRV services, in the given order; when none exists and
    /// none failed, A/AAAA on the host at the fallback transport's default port.
    async fn srv_or_addresses(
        &self,
        run: &mut Run,
        host: &str,
        services: Vec<(Transport, String)>,
        fallback: Transport,
    ) -> Result<(), DnsError> {
        match self.srv_set(run, services).await {
            SrvSet::Found => Ok(()),
            SrvSet::None if run.failure.is_some() => Ok(()),
            SrvSet::None => self.addresses(run, host, fallback, default_port(fallback)).await,
        }
    }

    /// A/AAAA on a host, every address at `port`.
    async fn addresses(&self, run: &mut Run, host: &str, transport: Transport, port: u16) -> Result<(), DnsError> {
        match self.inner.dns.addrs(host).await {
            Ok((answer, partial)) => {
                answer.alias_ttls.iter().for_each(|t| run.flat.ttl(*t));
                run.flat.add(transport, port, &answer.records, self.inner.cfg.prefer_ipv6);
                if partial {
                    run.fail(format!("{host}: one address family failed"));
                }
                Ok(())
            }
            Err(LookupError::NoRecords { .. }) => Ok(()),
            Err(LookupError::Failed(why)) => {
                run.fail(format!("A/AAAA {host}: {why}"));
                Ok(())
            }
            Err(LookupError::BadName(why)) => Err(DnsError::Invalid(why)),
        }
    }

    /// Looks the SRV services up at the same time, orders each set (RFC
    /// 2782), resolves every target not in an additional section (at the
    /// same time), and appends the addresses in order.
    async fn srv_set(&self, run: &mut Run, services: Vec<(Transport, String)>) -> SrvSet {
        let dns = &self.inner.dns;
        let answers = join_all(services.iter().map(|(_, name)| dns.srv(name))).await;
        let mut found = false;
        // (transport, record) in try order, and the addresses known so far.
        let mut ordered: Vec<(Transport, SrvRecord)> = Vec::new();
        let mut known: HashMap<String, Vec<AddrRecord>> = HashMap::new();
        for ((transport, name), answer) in services.iter().zip(answers) {
            match answer {
                Ok(SrvAnswer { srv: set, additional }) => {
                    found = true;
                    set.alias_ttls.iter().for_each(|t| run.flat.ttl(*t));
                    if srv::unavailable(&set.records) {
                        tracing::debug!(%name, "SRV says the service is not available");
                        continue;
                    }
                    let order = {
                        let mut rng = self.inner.rng.lock().unwrap_or_else(|p| p.into_inner());
                        srv::order(&set.records, &mut *rng)
                    };
                    for (owner, addr) in additional {
                        if order.iter().any(|r| r.target == owner) {
                            known.entry(owner).or_default().push(addr);
                        }
                    }
                    ordered.extend(order.into_iter().map(|r| (*transport, r)));
                }
                Err(LookupError::NoRecords { .. }) => {}
                Err(LookupError::Failed(why)) => run.fail(format!("SRV {name}: {why}")),
                Err(LookupError::BadName(why)) => tracing::debug!(%name, %why, "skipping a bad SRV name"),
            }
        }
        let mut missing: Vec<String> = Vec::new();
        for (_, r) in &ordered {
            if !known.contains_key(&r.target) && !missing.contains(&r.target) {
                missing.push(r.target.clone());
            }
        }
        let lookups = join_all(missing.iter().map(|t| resolve_target(dns, t))).await;
        for (target, result) in missing.into_iter().zip(lookups) {
            match result {
                Ok((answer, partial)) => {
                    answer.alias_ttls.iter().for_each(|t| run.flat.ttl(*t));
                    if partial {
                        run.fail(format!("{target}: one address family failed"));
                    }
                    known.insert(target, answer.records);
                }
                Err(LookupError::Failed(why)) => run.fail(format!("A/AAAA {target}: {why}")),
                Err(LookupError::NoRecords { .. } | LookupError::BadName(_)) => {}
            }
        }
        for (transport, r) in &ordered {
            run.flat.ttl(r.ttl);
            if let Some(addrs) = known.get(&r.target) {
                run.flat.add(*transport, r.port, addrs, self.inner.cfg.prefer_ipv6);
            }
        }
        if found { SrvSet::Found } else { SrvSet::None }
    }
}

/// The addresses of an SRV target: an IP literal target (not allowed by
/// RFC 2782, but seen) is taken as is, a name is looked up.
async fn resolve_target(dns: &Dns, target: &str) -> Result<(crate::lookup::Answer<AddrRecord>, bool), LookupError> {
    match normalize_host(target) {
        Ok(Host::Ip(ip)) => {
            Ok((crate::lookup::Answer { records: vec![AddrRecord { ip, ttl: u32::MAX }], alias_ttls: vec![] }, false))
        }
        _ => dns.addrs(target).await,
    }
}
