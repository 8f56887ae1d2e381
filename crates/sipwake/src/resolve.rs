//! The DNS driver: runs the node's RFC 3263 questions on the `sip-dns`
//! resolver (off the receive path, on tokio) and turns the answers into the
//! node's terms; resolves the mid-registrar's upstream by name at start-up
//! and follows it at its TTL.
//!
//! Owns the resolver; never the node (answers go back through the driver's
//! completion channel, like push results).

use crate::dns_config::DnsSection;
use sip_msg::{Target, Transport};
use sip_node::{NameQuery, Resolution, ResolveError};
use std::time::Duration;

/// The transports a resolved next hop may use: never WS/WSS (a WebSocket
/// peer is reached over the connection it opened, RFC 7118).
pub const RESOLVABLE: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

/// Builds the resolver; `None` (logged) when the system has no usable
/// resolver configuration and none is given in `[dns] servers`.
pub fn build(d: &DnsSection) -> Option<sip_dns::Resolver> {
    let cfg = sip_dns::ResolverConfig {
        servers: d.server_addrs(),
        timeout: d.timeout(),
        attempts: d.attempts,
        max_cache_ttl: Duration::from_secs(d.max_cache_secs),
        negative_ttl: Duration::from_secs(d.negative_cache_secs),
        prefer_ipv6: d.prefer_ipv6,
        ..sip_dns::ResolverConfig::default()
    };
    match sip_dns::Resolver::new(cfg, &RESOLVABLE) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "no DNS resolver: next hops given by name will fail (set [dns] servers)");
            None
        }
    }
}

fn query(q: &NameQuery) -> sip_dns::Query {
    sip_dns::Query { host: q.host.clone(), port: q.port, transport: q.transport, secure: q.secure }
}

/// Resolves one question for the node. Every answer has a TTL for the
/// node's cache: the records' (bounded by the resolver), the negative TTL
/// for a name that does not exist, none for a failure.
pub async fn resolve(r: Option<&sip_dns::Resolver>, q: &NameQuery, negative_ttl: Duration) -> Resolution {
    let Some(r) = r else {
        return Resolution { targets: Err(ResolveError::Failed), ttl: Duration::ZERO };
    };
    match r.resolve(&query(q)).await {
        Ok(res) if !res.targets.is_empty() => {
            let targets =
                res.targets.iter().map(|t| Target { transport: t.transport, remote: t.addr, conn: None }).collect();
            tracing::debug!(host = %q.host, ttl = ?res.ttl, "resolved");
            Resolution { targets: Ok(targets), ttl: res.ttl }
        }
        Ok(_) => Resolution { targets: Err(ResolveError::NotFound), ttl: negative_ttl },
        Err(sip_dns::DnsError::NotFound(m)) | Err(sip_dns::DnsError::Invalid(m)) => {
            tracing::info!(host = %q.host, reason = %m, "next hop does not resolve");
            Resolution { targets: Err(ResolveError::NotFound), ttl: negative_ttl }
        }
        Err(e) => {
            tracing::warn!(host = %q.host, error = %e, "DNS lookup failed");
            Resolution { targets: Err(ResolveError::Failed), ttl: Duration::ZERO }
        }
    }
}

/// The mid-registrar's upstream address from its name (the first target
/// of the RFC 3263 order) and how long it holds.
pub async fn upstream(r: Option<&sip_dns::Resolver>, q: &NameQuery) -> Result<(Target, Duration), String> {
    let res = resolve(r, q, Duration::ZERO).await;
    match res.targets {
        Ok(list) => list.first().map(|t| (*t, res.ttl)).ok_or_else(|| "no address".to_string()),
        Err(ResolveError::NotFound) => Err(format!("{} does not resolve (no NAPTR, SRV or A/AAAA records)", q.host)),
        Err(ResolveError::Failed) => Err(format!("DNS lookup of {} failed", q.host)),
    }
}
