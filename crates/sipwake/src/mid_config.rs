//! `[server] mode` and the `[mid_registrar]` section: the role sipwake
//! plays (the registrar of its domains, or a mid-registrar in front of a
//! registrar the operator keeps) and the mid-registrar's settings, with
//! their defaults and validation (every error names the key as written and
//! what is allowed).
//!
//! Owns the schema and its translation into `sip_node::mid::MidConfig`;
//! nothing at run time.

use serde::Deserialize;
use sip_msg::{Target, Transport};
use sip_node::NameQuery;
use sip_node::mid::{MidConfig, Throttle};
use sip_node::proxy::route::{Hop, hop_of};
use std::time::Duration;

/// `[mid_registrar]` (OpenSIPS `mid_registrar` names in brackets).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MidSection {
    /// The upstream registrar: `sip:IP:PORT;transport=udp|tcp`.
    pub upstream: String,
    /// "mirror" (mode 0), "contact" (mode 1) or "aor" (mode 2).
    pub throttle: String,
    /// Expiry asked of the upstream in contact/aor modes (outgoing_expires), seconds.
    pub upstream_expires: u32,
    /// A device's REGISTER the upstream leaves unanswered this long gets 503, milliseconds.
    pub upstream_timeout_ms: u64,
    /// OPTIONS keep-alive to the upstream, seconds (0 = off).
    pub keepalive_secs: u64,
    /// Registrations re-sent per second after the upstream lost them.
    pub resend_per_sec: u32,
    /// A header of the upstream's keep-alive answers naming its running
    /// instance; a change means it restarted ("" = none).
    pub instance_header: String,
}

impl Default for MidSection {
    fn default() -> Self {
        MidSection {
            upstream: String::new(),
            throttle: "contact".into(),
            upstream_expires: 3600,
            upstream_timeout_ms: 5000,
            keepalive_secs: 30,
            resend_per_sec: 50,
            instance_header: String::new(),
        }
    }
}

/// The role (`server.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Registrar,
    MidRegistrar,
}

/// Parses `server.mode`.
pub fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "registrar" => Ok(Mode::Registrar),
        "mid-registrar" => Ok(Mode::MidRegistrar),
        other => Err(format!(
            "server.mode = {other:?} is invalid; allowed: \"registrar\" (sipwake is the registrar) or \"mid-registrar\" (in front of [mid_registrar] upstream)"
        )),
    }
}

impl MidSection {
    /// Validates the section for mid-registrar mode and builds the node's
    /// settings, with the upstream's host name when it has one (its address
    /// must then be resolved before the node starts).
    pub fn to_node(&self) -> Result<(MidConfig, Option<NameQuery>), String> {
        let (upstream, name) = parse_upstream(&self.upstream)?;
        let throttle = match self.throttle.as_str() {
            "mirror" => Throttle::Mirror,
            "contact" => Throttle::Contact,
            "aor" => Throttle::Aor,
            other => {
                return Err(format!(
                    "mid_registrar.throttle = {other:?} is invalid; allowed: \"mirror\" (every REGISTER forwarded), \"contact\" (one upstream registration per device) or \"aor\" (one per AoR)"
                ));
            }
        };
        if !(60..=604_800).contains(&self.upstream_expires) {
            return Err(format!(
                "mid_registrar.upstream_expires = {} is out of range; allowed: 60 to 604800 seconds (default 3600)",
                self.upstream_expires
            ));
        }
        if !(100..=60_000).contains(&self.upstream_timeout_ms) {
            return Err(format!(
                "mid_registrar.upstream_timeout_ms = {} is out of range; allowed: 100 to 60000 (default 5000; keep it under the devices' 32 s)",
                self.upstream_timeout_ms
            ));
        }
        if self.keepalive_secs > 3600 {
            return Err(format!(
                "mid_registrar.keepalive_secs = {} is out of range; allowed: 0 (off) to 3600 (default 30)",
                self.keepalive_secs
            ));
        }
        if !(1..=100_000).contains(&self.resend_per_sec) {
            return Err(format!(
                "mid_registrar.resend_per_sec = {} is out of range; allowed: 1 to 100000 (default 50)",
                self.resend_per_sec
            ));
        }
        let h = &self.instance_header;
        if !h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&b)) {
            return Err(format!(
                "mid_registrar.instance_header = {h:?} is not a header name; give a name like \"X-Instance\" (or \"\" for none)"
            ));
        }
        Ok((
            MidConfig {
                upstream,
                throttle,
                upstream_expires: self.upstream_expires,
                upstream_timeout: Duration::from_millis(self.upstream_timeout_ms),
                keepalive: (self.keepalive_secs > 0).then(|| Duration::from_secs(self.keepalive_secs)),
                resend_per_sec: self.resend_per_sec,
                instance_header: (!h.is_empty()).then(|| h.clone()),
            },
            name,
        ))
    }
}

/// The upstream registrar's URI → where to send: an address, or a host
/// name resolved per RFC 3263 at start-up and again at its TTL (then the
/// target's address is unspecified until resolved).
fn parse_upstream(s: &str) -> Result<(Target, Option<NameQuery>), String> {
    let bad = |why: &str| {
        format!(
            "mid_registrar.upstream = {s:?} {why}; give the upstream registrar as a SIP URI without a user part, e.g. \"sip:192.0.2.10:5060\", \"sip:registrar.example.com;transport=tcp\" or \"sips:registrar.example.com\""
        )
    };
    if s.is_empty() {
        return Err("mid_registrar.upstream is not set; server.mode = \"mid-registrar\" needs the upstream registrar, e.g. upstream = \"sip:192.0.2.10:5060;transport=udp\"".into());
    }
    let uri =
        sip_msg::Uri::parse_bytes(bytes::Bytes::copy_from_slice(s.as_bytes())).map_err(|_| bad("is not a SIP URI"))?;
    let sip = uri.as_sip().ok_or_else(|| bad("is not a sip: URI"))?;
    if sip.user.is_some() {
        return Err(bad("has a user part"));
    }
    let hop = hop_of(sip).ok_or_else(|| bad("has a transport we cannot use (sips needs tls; udp, tcp or tls)"))?;
    let transport = match &hop {
        Hop::Addr(t) => t.transport,
        Hop::Name(q) => q.transport.unwrap_or(if q.secure { Transport::Tls } else { Transport::Udp }),
    };
    if !matches!(transport, Transport::Udp | Transport::Tcp | Transport::Tls) {
        return Err(bad("has a transport other than udp, tcp or tls"));
    }
    Ok(match hop {
        Hop::Addr(t) => (t, None),
        Hop::Name(q) => {
            let unresolved = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
            (Target { transport, remote: unresolved, conn: None }, Some(q))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_forms() {
        let (t, n) = parse_upstream("sip:127.0.0.1:5070;transport=tcp").unwrap();
        assert_eq!((t.transport, t.remote.to_string(), n), (Transport::Tcp, "127.0.0.1:5070".into(), None));
        let (t, _) = parse_upstream("sip:[::1]").unwrap();
        assert_eq!((t.transport, t.remote.to_string()), (Transport::Udp, "[::1]:5060".into()));
        let (t, _) = parse_upstream("sips:127.0.0.1").unwrap();
        assert_eq!((t.transport, t.remote.to_string()), (Transport::Tls, "127.0.0.1:5061".into()));
        let (t, n) = parse_upstream("sip:Registrar.Example.com;transport=tcp").unwrap();
        let n = n.unwrap();
        assert_eq!(
            (t.transport, n.host.as_str(), n.transport),
            (Transport::Tcp, "registrar.example.com", Some(Transport::Tcp))
        );
        let (t, n) = parse_upstream("sips:registrar.example.com").unwrap();
        assert_eq!((t.transport, n.unwrap().secure), (Transport::Tls, true));
        for bad in [
            "",
            "sips:127.0.0.1;transport=udp",
            "sip:127.0.0.1;transport=ws",
            "sip:bob@127.0.0.1",
            "http://x",
            "sip:127.0.0.1;transport=sctp",
        ] {
            let e = parse_upstream(bad).unwrap_err();
            assert!(e.contains("mid_registrar.upstream"), "{e}");
        }
    }

    #[test]
    fn section_errors_name_keys() {
        let mut s = MidSection { upstream: "sip:127.0.0.1:5070".into(), ..MidSection::default() };
        assert!(s.to_node().is_ok());
        s.throttle = "sometimes".into();
        assert!(s.to_node().unwrap_err().contains("mid_registrar.throttle = \"sometimes\""));
        s.throttle = "aor".into();
        s.upstream_expires = 5;
        assert!(s.to_node().unwrap_err().contains("mid_registrar.upstream_expires = 5"));
        assert!(parse_mode("proxy").unwrap_err().contains("server.mode = \"proxy\""));
    }
}
