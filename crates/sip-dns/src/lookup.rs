//! The DNS queries of RFC 3263 through hickory-resolver: NAPTR, SRV (with
//! the additional-section addresses) and A+AAAA, turned into the plain
//! records of [`crate::rules`] and a three-way outcome (records, none,
//! failure).
//!
//! Owns the hickory resolver and its configuration. Must not order, filter
//! or cache anything: that is the rules' and the resolver's job. hickory's
//! own cache is switched off so every TTL comes from the wire and
//! [`crate::Resolver`]'s cache is the only one.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig as HickoryConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

use crate::config::ResolverConfig;
use crate::rules::{AddrRecord, NaptrRecord, SrvRecord};

/// Why a lookup has no records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LookupError {
    /// A final negative answer: NXDOMAIN, or NOERROR without records of the type.
    NoRecords { nxdomain: bool },
    /// No usable answer: timeout, SERVFAIL, REFUSED, network error.
    Failed(String),
    /// The name is not a valid DNS name.
    BadName(String),
}

/// Records of one type, with the TTLs of the CNAMEs that led to them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Answer<T> {
    pub records: Vec<T>,
    /// TTLs of the alias (CNAME) records followed on the way.
    pub alias_ttls: Vec<u32>,
}

/// An SRV answer and the addresses its additional section carries, by owner
/// name (lower case, no trailing dot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SrvAnswer {
    pub srv: Answer<SrvRecord>,
    pub additional: Vec<(String, AddrRecord)>,
}

/// The hickory resolver, set up from a [`ResolverConfig`].
#[derive(Clone)]
pub(crate) struct Dns {
    resolver: TokioResolver,
    /// The hard limit of one lookup: `timeout × attempts`.
    budget: Duration,
}

/// A domain name's text form as the rules use it: lower case, no trailing dot.
pub(crate) fn name_text(name: &Name) -> String {
    let s = name.to_ascii().to_ascii_lowercase();
    match s.strip_suffix('.') {
        Some(t) => t.to_owned(),
        None => s,
    }
}

fn bytes_text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn map_error(e: NetError) -> LookupError {
    match e {
        NetError::Dns(HickoryDnsError::NoRecordsFound(nr)) => {
            LookupError::NoRecords { nxdomain: nr.response_code == ResponseCode::NXDomain }
        }
        other => LookupError::Failed(other.to_string()),
    }
}

impl Dns {
    /// Builds the resolver: `cfg.servers` over UDP and TCP (TCP for truncated
    /// answers), or the system's configuration when empty.
    pub(crate) fn new(cfg: &ResolverConfig) -> Result<Dns, String> {
        let attempts = cfg.attempts.max(1);
        let provider = TokioRuntimeProvider::default();
        let mut builder = if cfg.servers.is_empty() {
            TokioResolver::builder(provider).map_err(|e| format!("system DNS configuration: {e}"))?
        } else {
            let servers = cfg
                .servers
                .iter()
                .map(|s| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = s.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = s.port();
                    NameServerConfig::new(s.ip(), true, vec![udp, tcp])
                })
                .collect();
            let mut b = TokioResolver::builder_with_config(HickoryConfig::from_parts(None, vec![], servers), provider);
            b.options_mut().use_hosts_file = ResolveHosts::Never;
            b
        };
        let opts = builder.options_mut();
        opts.timeout = cfg.timeout;
        // hickory counts retries after the first try.
        opts.attempts = attempts - 1;
        opts.cache_size = 0;
        opts.preserve_intermediates = true;
        let resolver = builder.build().map_err(|e| format!("DNS resolver: {e}"))?;
        let budget = cfg.timeout.saturating_mul(u32::try_from(attempts).unwrap_or(u32::MAX));
        Ok(Dns { resolver, budget })
    }

    async fn query(&self, name: &str, rtype: RecordType) -> Result<(Vec<Record>, Vec<Record>), LookupError> {
        let name = Name::from_ascii(name).map_err(|e| LookupError::BadName(format!("{name:?}: {e}")))?;
        match tokio::time::timeout(self.budget, self.resolver.lookup(name, rtype)).await {
            Err(_) => Err(LookupError::Failed(format!("{rtype} lookup timed out after {:?}", self.budget))),
            Ok(Err(e)) => Err(map_error(e)),
            Ok(Ok(lookup)) => Ok((lookup.answers().to_vec(), lookup.additionals().to_vec())),
        }
    }

    fn answer<T>(records: &[Record], pick: impl Fn(&Record) -> Option<T>) -> Result<Answer<T>, LookupError> {
        let mut out = Answer { records: Vec::new(), alias_ttls: Vec::new() };
        for r in records {
            if let Some(x) = pick(r) {
                out.records.push(x);
            } else if matches!(r.data, RData::CNAME(_)) {
                out.alias_ttls.push(r.ttl);
            }
        }
        if out.records.is_empty() {
            return Err(LookupError::NoRecords { nxdomain: false });
        }
        Ok(out)
    }

    /// The NAPTR records of `name`.
    pub(crate) async fn naptr(&self, name: &str) -> Result<Answer<NaptrRecord>, LookupError> {
        let (answers, _) = self.query(name, RecordType::NAPTR).await?;
        Dns::answer(&answers, |r| match &r.data {
            RData::NAPTR(n) => Some(NaptrRecord {
                order: n.order,
                preference: n.preference,
                flags: bytes_text(&n.flags),
                services: bytes_text(&n.services),
                regexp: bytes_text(&n.regexp),
                replacement: name_text(&n.replacement),
                ttl: r.ttl,
            }),
            _ => None,
        })
    }

    /// The SRV records of `name` and the addresses in the additional section.
    pub(crate) async fn srv(&self, name: &str) -> Result<SrvAnswer, LookupError> {
        let (answers, additionals) = self.query(name, RecordType::SRV).await?;
        let srv = Dns::answer(&answers, |r| match &r.data {
            RData::SRV(s) => Some(SrvRecord {
                priority: s.priority,
                weight: s.weight,
                port: s.port,
                target: name_text(&s.target),
                ttl: r.ttl,
            }),
            _ => None,
        })?;
        let additional = additionals.iter().filter_map(|r| addr_of(r).map(|a| (name_text(&r.name), a))).collect();
        Ok(SrvAnswer { srv, additional })
    }

    /// The A and AAAA records of `name`, asked at the same time. One family
    /// failing while the other has addresses still gives those addresses
    /// (`partial` is then true).
    pub(crate) async fn addrs(&self, name: &str) -> Result<(Answer<AddrRecord>, bool), LookupError> {
        let pick = |r: &Record| addr_of(r);
        let (v4, v6) = tokio::join!(self.query(name, RecordType::A), self.query(name, RecordType::AAAA));
        let v4 = v4.and_then(|(a, _)| Dns::answer(&a, pick));
        let v6 = v6.and_then(|(a, _)| Dns::answer(&a, pick));
        match (v4, v6) {
            (Ok(mut a), Ok(b)) => {
                a.records.extend(b.records);
                a.alias_ttls.extend(b.alias_ttls);
                Ok((a, false))
            }
            (Ok(a), Err(e)) | (Err(e), Ok(a)) => Ok((a, matches!(e, LookupError::Failed(_)))),
            (Err(e @ (LookupError::Failed(_) | LookupError::BadName(_))), _)
            | (_, Err(e @ (LookupError::Failed(_) | LookupError::BadName(_)))) => Err(e),
            (Err(LookupError::NoRecords { nxdomain: a }), Err(LookupError::NoRecords { nxdomain: b })) => {
                Err(LookupError::NoRecords { nxdomain: a || b })
            }
        }
    }
}

fn addr_of(r: &Record) -> Option<AddrRecord> {
    let ip = match &r.data {
        RData::A(a) => IpAddr::V4(a.0),
        RData::AAAA(a) => IpAddr::V6(a.0),
        _ => return None,
    };
    Some(AddrRecord { ip, ttl: r.ttl })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_case_without_the_root_dot() {
        assert_eq!(name_text(&Name::from_ascii("Sip1.Example.ORG.").unwrap()), "sip1.example.org");
        assert_eq!(name_text(&Name::from_ascii("_sip._udp.example.org").unwrap()), "_sip._udp.example.org");
        assert_eq!(name_text(&Name::root()), "");
    }

    #[test]
    fn errors_map_to_outcomes() {
        assert_eq!(map_error(NetError::Timeout), LookupError::Failed("request timed out".into()));
        assert!(matches!(
            map_error(NetError::Dns(HickoryDnsError::ResponseCode(ResponseCode::ServFail))),
            LookupError::Failed(_)
        ));
    }
}
