//! `[defence]`: the TOML keys of the source-address defence (allow and deny
//! lists, the per-source rate limit, blocking after failed logins, the
//! management API's lists), their defaults and validation, and their
//! translation into the node's [`sip_node::defence::DefenceConfig`] once
//! the listeners are bound.
//!
//! Owns nothing at run time. Must not enforce anything: the node's
//! `defence` module does, and the management listener checks its own list
//! (`management.rs`).

use ipnet::IpNet;
use serde::Deserialize;
use sip_node::defence::{AuthLimit, DefenceConfig, ListenerAcl, RateLimit};
use sip_transport::ListenSpec;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// `[defence]` as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefenceSection {
    /// Requests from one source (IPv4 address, IPv6 /64) within
    /// `rate_limit_window_secs` past which it is blocked; 0 = no limit.
    pub rate_limit_requests: u32,
    pub rate_limit_window_secs: u64,
    /// How long a source over the rate limit is dropped, seconds.
    pub rate_limit_block_secs: u64,
    /// Failed authentications (wrong password, unknown user, forged
    /// credentials) from one source within `auth_failures_window_secs`
    /// past which it is blocked; 0 = never.
    pub auth_failures: u32,
    pub auth_failures_window_secs: u64,
    /// How long a source blocked for failed authentications is dropped, seconds.
    pub auth_block_secs: u64,
    /// Sources never rate-limited or blocked (IP or CIDR).
    pub exempt: Vec<String>,
    /// Every SIP listener: only these sources (empty: any).
    pub allow: Vec<String>,
    /// Every SIP listener: never these sources.
    pub deny: Vec<String>,
    /// The management API: only these sources (empty: any).
    pub management_allow: Vec<String>,
    /// The management API: never these sources.
    pub management_deny: Vec<String>,
    /// Most sources tracked at once.
    pub max_tracked_sources: usize,
    /// Lists of single listeners (`[[defence.listener]]`).
    pub listener: Vec<ListenerSection>,
}

/// `[[defence.listener]]`: the lists of one `server.listen` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSection {
    /// The listener as written in `server.listen` (e.g. `"udp:0.0.0.0:5060"`).
    pub listen: String,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

impl Default for DefenceSection {
    fn default() -> Self {
        let d = DefenceConfig::default();
        let r = d.rate.unwrap_or(RateLimit { max_requests: 0, window: Duration::ZERO, block: Duration::ZERO });
        let a = d.auth.unwrap_or(AuthLimit { max_failures: 0, window: Duration::ZERO, block: Duration::ZERO });
        DefenceSection {
            rate_limit_requests: r.max_requests,
            rate_limit_window_secs: r.window.as_secs(),
            rate_limit_block_secs: r.block.as_secs(),
            auth_failures: a.max_failures,
            auth_failures_window_secs: a.window.as_secs(),
            auth_block_secs: a.block.as_secs(),
            exempt: Vec::new(),
            allow: Vec::new(),
            deny: Vec::new(),
            management_allow: Vec::new(),
            management_deny: Vec::new(),
            max_tracked_sources: d.max_tracked,
            listener: Vec::new(),
        }
    }
}

/// The management API's lists, checked per connection.
#[derive(Clone, Debug, Default)]
pub struct ManagementAcl {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl ManagementAcl {
    /// Whether `ip` may use the management API.
    pub fn admits(&self, ip: IpAddr) -> bool {
        use sip_node::defence::contains;
        !contains(&self.deny, ip) && (self.allow.is_empty() || contains(&self.allow, ip))
    }
}

/// One list entry: an IP address (a host) or a CIDR.
fn net(key: &str, i: usize, s: &str) -> Result<IpNet, String> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    Err(format!(
        "{key}[{i}] = {s:?} is not an IP address or CIDR; write e.g. \"203.0.113.7\", \"10.0.0.0/8\" or \"2001:db8::/32\""
    ))
}

fn nets(key: &str, list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter().enumerate().map(|(i, s)| net(key, i, s)).collect()
}

fn secs(key: &str, v: u64, min: u64, max: u64, what: &str) -> Result<Duration, String> {
    if !(min..=max).contains(&v) {
        return Err(format!("{key} = {v} is out of range; write a value from {min} to {max} ({what})"));
    }
    Ok(Duration::from_secs(v))
}

impl DefenceSection {
    /// Checks every key (whatever is enabled) against `listen`, the
    /// configured listeners; the node's configuration with the listeners'
    /// addresses as configured (see [`DefenceConfig`] for bound ports).
    pub fn validate(&self, listen: &[ListenSpec]) -> Result<(DefenceConfig, ManagementAcl), String> {
        let rate = if self.rate_limit_requests == 0 {
            None
        } else {
            Some(RateLimit {
                max_requests: self.rate_limit_requests,
                window: secs(
                    "defence.rate_limit_window_secs",
                    self.rate_limit_window_secs,
                    1,
                    3600,
                    "seconds; default 2",
                )?,
                block: secs(
                    "defence.rate_limit_block_secs",
                    self.rate_limit_block_secs,
                    1,
                    86_400,
                    "seconds; default 60",
                )?,
            })
        };
        let auth = if self.auth_failures == 0 {
            None
        } else {
            Some(AuthLimit {
                max_failures: self.auth_failures,
                window: secs(
                    "defence.auth_failures_window_secs",
                    self.auth_failures_window_secs,
                    1,
                    86_400,
                    "seconds; default 60",
                )?,
                block: secs("defence.auth_block_secs", self.auth_block_secs, 1, 86_400 * 30, "seconds; default 600")?,
            })
        };
        if !(1..=10_000_000).contains(&self.max_tracked_sources) {
            return Err(format!(
                "defence.max_tracked_sources = {} is out of range; write a value from 1 to 10000000 (default 100000)",
                self.max_tracked_sources
            ));
        }
        let mut listeners = Vec::new();
        for (i, l) in self.listener.iter().enumerate() {
            let key = format!("defence.listener[{i}]");
            let spec =
                l.listen.parse::<ListenSpec>().map_err(|e| format!("{key}.listen = {:?} is invalid: {e}", l.listen))?;
            if !listen.contains(&spec) {
                let known: Vec<String> = listen.iter().map(|s| format!("\"{s}\"")).collect();
                return Err(format!(
                    "{key}.listen = {:?} is not one of the listeners (server.listen / --listen: {}); write one of those",
                    l.listen,
                    known.join(", ")
                ));
            }
            listeners.push(ListenerAcl {
                transport: spec.transport,
                addr: spec.addr,
                allow: nets(&format!("{key}.allow"), &l.allow)?,
                deny: nets(&format!("{key}.deny"), &l.deny)?,
            });
        }
        let node = DefenceConfig {
            rate,
            auth,
            exempt: nets("defence.exempt", &self.exempt)?,
            allow: nets("defence.allow", &self.allow)?,
            deny: nets("defence.deny", &self.deny)?,
            listeners,
            max_tracked: self.max_tracked_sources,
        };
        let mgmt = ManagementAcl {
            allow: nets("defence.management_allow", &self.management_allow)?,
            deny: nets("defence.management_deny", &self.management_deny)?,
        };
        Ok((node, mgmt))
    }
}

/// `cfg` with each listener's configured port 0 replaced by the port it
/// was bound to (`bound`: the bound listeners), when one bound listener
/// has its transport and address.
pub fn with_bound_ports(mut cfg: DefenceConfig, bound: &[(sip_msg::Transport, SocketAddr)]) -> DefenceConfig {
    for l in &mut cfg.listeners {
        if l.addr.port() != 0 {
            continue;
        }
        let mut same = bound.iter().filter(|(t, a)| *t == l.transport && a.ip() == l.addr.ip());
        if let (Some((_, a)), None) = (same.next(), same.next()) {
            l.addr.set_port(a.port());
        }
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<(DefenceConfig, ManagementAcl), String> {
        let s: DefenceSection = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        s.validate(&["udp:0.0.0.0:5060".parse().unwrap(), "tcp:127.0.0.1:5060".parse().unwrap()])
    }

    #[test]
    fn defaults_limit_rate_and_failed_logins() {
        let (c, m) = parse("").unwrap();
        assert_eq!(c, DefenceConfig::default());
        assert!(m.admits("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let (c, _) = parse("rate_limit_requests = 0\nauth_failures = 0").unwrap();
        assert_eq!((c.rate, c.auth), (None, None));
    }

    #[test]
    fn lists_take_addresses_and_cidrs() {
        let (c, m) = parse(
            "deny = [\"192.0.2.7\", \"10.0.0.0/8\", \"2001:db8::/32\"]\nmanagement_allow = [\"127.0.0.1\"]\n\
             [[listener]]\nlisten = \"udp:0.0.0.0:5060\"\nallow = [\"203.0.113.0/24\"]",
        )
        .unwrap();
        assert_eq!(c.deny.len(), 3);
        assert_eq!(c.listeners[0].allow[0].to_string(), "203.0.113.0/24");
        assert!(m.admits("127.0.0.1".parse().unwrap()));
        assert!(m.admits("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!m.admits("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let e = parse("deny = [\"10.0.0.0/33\"]").unwrap_err();
        assert!(e.contains("defence.deny[0] = \"10.0.0.0/33\""), "{e}");
        let e = parse("rate_limit_window_secs = 0").unwrap_err();
        assert!(e.contains("defence.rate_limit_window_secs = 0") && e.contains("from 1 to 3600"), "{e}");
        let e = parse("[[listener]]\nlisten = \"udp:0.0.0.0:5080\"").unwrap_err();
        assert!(e.contains("defence.listener[0].listen") && e.contains("\"udp:0.0.0.0:5060\""), "{e}");
        let e = parse("[[listener]]\nlisten = \"tcp:127.0.0.1:5060\"\nallow = [\"x\"]").unwrap_err();
        assert!(e.contains("defence.listener[0].allow[0] = \"x\""), "{e}");
    }

    #[test]
    fn port_zero_listeners_get_their_bound_port() {
        let listen: Vec<ListenSpec> = vec!["udp:127.0.0.1:0".parse().unwrap()];
        let s: DefenceSection =
            toml::from_str("[[listener]]\nlisten = \"udp:127.0.0.1:0\"\ndeny = [\"192.0.2.1\"]").unwrap();
        let (c, _) = s.validate(&listen).unwrap();
        let c = with_bound_ports(c, &[(sip_msg::Transport::Udp, "127.0.0.1:40000".parse().unwrap())]);
        assert_eq!(c.listeners[0].addr, "127.0.0.1:40000".parse().unwrap());
    }
}
