//! The flattened answer: every address of the first target, then of the
//! next, as (transport, address) pairs without duplicates, and the smallest
//! TTL of every record that led there.
//!
//! Pure accumulator. Must not do lookups or read the clock.

use std::net::SocketAddr;
use std::time::Duration;

use sip_msg::Transport;

use super::AddrRecord;
use crate::types::{Resolution, Resolved};

/// Orders one host's addresses by family, keeping the DNS order within a
/// family: IPv4 first unless `prefer_ipv6`.
pub(crate) fn by_family(addrs: &[AddrRecord], prefer_ipv6: bool) -> Vec<AddrRecord> {
    let (mut first, second): (Vec<AddrRecord>, Vec<AddrRecord>) =
        addrs.iter().partition(|a| a.ip.is_ipv6() == prefer_ipv6);
    first.extend(second);
    first
}

/// Collects targets in try order and the minimum TTL.
#[derive(Debug, Default)]
pub(crate) struct Flat {
    targets: Vec<Resolved>,
    min_ttl: Option<u32>,
}

impl Flat {
    pub(crate) fn new() -> Flat {
        Flat::default()
    }

    /// Counts a record (NAPTR, SRV, CNAME) in the TTL.
    pub(crate) fn ttl(&mut self, ttl: u32) {
        self.min_ttl = Some(self.min_ttl.map_or(ttl, |m| m.min(ttl)));
    }

    /// Appends one host's addresses at `port` over `transport`, ordered by
    /// family; pairs already present are skipped. Every address counts in
    /// the TTL.
    pub(crate) fn add(&mut self, transport: Transport, port: u16, addrs: &[AddrRecord], prefer_ipv6: bool) {
        for a in by_family(addrs, prefer_ipv6) {
            self.ttl(a.ttl);
            let r = Resolved { transport, addr: SocketAddr::new(a.ip, port) };
            if !self.targets.contains(&r) {
                self.targets.push(r);
            }
        }
    }

    /// The resolution, or `None` when no target was found. The TTL is the
    /// minimum seen, capped by `max_ttl` (`max_ttl` when no record was used).
    pub(crate) fn finish(self, max_ttl: Duration) -> Option<Resolution> {
        if self.targets.is_empty() {
            return None;
        }
        let ttl = self.min_ttl.map_or(max_ttl, |t| Duration::from_secs(u64::from(t)).min(max_ttl));
        Some(Resolution { targets: self.targets, ttl })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn a(ip: &str, ttl: u32) -> AddrRecord {
        AddrRecord { ip: ip.parse::<IpAddr>().unwrap(), ttl }
    }

    #[test]
    fn families_in_preferred_order() {
        let addrs = [a("2001:db8::1", 1), a("192.0.2.1", 1), a("2001:db8::2", 1), a("192.0.2.2", 1)];
        let ips = |v: Vec<AddrRecord>| v.iter().map(|x| x.ip.to_string()).collect::<Vec<_>>();
        assert_eq!(ips(by_family(&addrs, false)), ["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"]);
        assert_eq!(ips(by_family(&addrs, true)), ["2001:db8::1", "2001:db8::2", "192.0.2.1", "192.0.2.2"]);
    }

    #[test]
    fn flattened_in_order_deduplicated_with_min_ttl() {
        let mut f = Flat::new();
        f.ttl(300);
        f.add(Transport::Tls, 5061, &[a("192.0.2.1", 120), a("2001:db8::1", 90)], false);
        f.add(Transport::Tls, 5061, &[a("192.0.2.1", 200)], false);
        f.add(Transport::Tcp, 5060, &[a("192.0.2.1", 200)], false);
        let r = f.finish(Duration::from_secs(3600)).unwrap();
        let got: Vec<String> = r.targets.iter().map(|t| format!("{}:{}", t.transport, t.addr)).collect();
        assert_eq!(got, ["tls:192.0.2.1:5061", "tls:[2001:db8::1]:5061", "tcp:192.0.2.1:5060"]);
        assert_eq!(r.ttl, Duration::from_secs(90));
    }

    #[test]
    fn ttl_capped_and_empty_is_none() {
        let mut f = Flat::new();
        f.add(Transport::Udp, 5060, &[a("192.0.2.1", 86_400)], false);
        assert_eq!(f.finish(Duration::from_secs(300)).unwrap().ttl, Duration::from_secs(300));
        let mut f = Flat::new();
        f.ttl(10);
        assert!(f.finish(Duration::from_secs(300)).is_none());
    }
}
