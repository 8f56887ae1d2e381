//! `[dns]`: how next hops given by name are resolved (RFC 3263: NAPTR →
//! SRV → A/AAAA, by the `sip-dns` crate), with its validation. Every error
//! names the key as written and what to write instead.
//!
//! Owns nothing at run time: it produces the resolver's configuration.

use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// `[dns]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSection {
    /// Name servers, "IP:PORT"; empty = the system's (/etc/resolv.conf).
    pub servers: Vec<String>,
    /// How long one query may take, milliseconds.
    pub timeout_ms: u64,
    /// How many times a query is tried.
    pub attempts: usize,
    /// Longest time an answer is reused, whatever its TTL, seconds.
    pub max_cache_secs: u64,
    /// How long "no such name" is remembered, seconds.
    pub negative_cache_secs: u64,
    /// Try IPv6 addresses of a target before its IPv4 ones.
    pub prefer_ipv6: bool,
}

impl Default for DnsSection {
    fn default() -> Self {
        DnsSection {
            servers: Vec::new(),
            timeout_ms: 2000,
            attempts: 2,
            max_cache_secs: 300,
            negative_cache_secs: 30,
            prefer_ipv6: false,
        }
    }
}

impl DnsSection {
    /// The name servers (validated by [`validate`]).
    pub fn server_addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().filter_map(|s| parse_server(s)).collect()
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// "IP:PORT", or a bare IP (port 53).
fn parse_server(s: &str) -> Option<SocketAddr> {
    s.parse()
        .ok()
        .or_else(|| s.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

/// Checks every `[dns]` value.
pub fn validate(d: &DnsSection) -> Result<(), String> {
    for (i, s) in d.servers.iter().enumerate() {
        if parse_server(s).is_none() {
            return Err(format!(
                "dns.servers[{i}] = {s:?} is not an IP address with an optional port; write e.g. \"192.0.2.53\", \"127.0.0.1:5353\" or \"[::1]:53\""
            ));
        }
    }
    if !(50..=30_000).contains(&d.timeout_ms) {
        return Err(format!("dns.timeout_ms = {} is out of range; write 50 to 30000 (default 2000)", d.timeout_ms));
    }
    if !(1..=5).contains(&d.attempts) {
        return Err(format!("dns.attempts = {} is out of range; write 1 to 5 (default 2)", d.attempts));
    }
    if !(1..=86_400).contains(&d.max_cache_secs) {
        return Err(format!(
            "dns.max_cache_secs = {} is out of range; write 1 to 86400 (default 300)",
            d.max_cache_secs
        ));
    }
    if d.negative_cache_secs > 3600 {
        return Err(format!(
            "dns.negative_cache_secs = {} is out of range; write 0 to 3600 (default 30)",
            d.negative_cache_secs
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::tests::err;

    #[test]
    fn dns_values_are_checked() {
        let c = Config::parse("[dns]\nservers = [\"127.0.0.1:5353\", \"192.0.2.53\"]\n").unwrap();
        assert_eq!(c.dns.server_addrs(), vec!["127.0.0.1:5353".parse().unwrap(), "192.0.2.53:53".parse().unwrap()]);
        let e = err("[dns]\nservers = [\"ns1.example.com\"]\n");
        assert!(e.contains("dns.servers[0]") && e.contains("127.0.0.1:5353"), "{e}");
        assert!(err("[dns]\ntimeout_ms = 0\n").contains("dns.timeout_ms"));
        assert!(err("[dns]\nattempts = 0\n").contains("dns.attempts"));
        assert!(err("[dns]\nmax_cache_secs = 0\n").contains("dns.max_cache_secs"));
        assert!(err("[dns]\nnegative_cache_secs = 99999\n").contains("dns.negative_cache_secs"));
        assert!(err("[dns]\nserver = []\n").contains("server"));
    }

    #[test]
    fn outbound_proxy_is_checked() {
        let c = Config::parse("[proxy]\noutbound_proxy = \"sip:edge.example.com;transport=tcp\"\n").unwrap();
        let u = c.proxy.outbound_uri().unwrap();
        assert_eq!(u.host.to_string(), "edge.example.com");
        assert_eq!(u.params.value("transport").map(|v| &v[..]), Some(&b"tcp"[..]));
        assert!(Config::parse("").unwrap().proxy.outbound_uri().is_none());
        let e = err("[proxy]\noutbound_proxy = \"edge.example.com\"\n");
        assert!(e.contains("proxy.outbound_proxy") && e.contains("sip:edge.example.com"), "{e}");
        let e = err("[proxy]\noutbound_proxy = \"sips:192.0.2.1;transport=udp\"\n");
        assert!(e.contains("proxy.outbound_proxy"), "{e}");
    }
}
