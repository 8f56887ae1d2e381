//! The rules for subscribers, shared by `sipwake user` (offline, on the
//! store) and the management API's users routes (online): how a
//! `user@domain` is parsed, that its domain must be one the server serves,
//! and that only the digest HA1 hashes are stored, never the password.
//!
//! Owns no I/O: the callers read and write the store.

use crate::config::Config;
use location_store::Subscriber;

/// Splits `user@domain` (an optional `sip:` prefix allowed); the domain
/// lower-cased.
pub fn split(aor: &str) -> Result<(String, String), String> {
    let aor = aor.strip_prefix("sip:").unwrap_or(aor);
    match aor.rsplit_once('@') {
        Some((u, d)) if !u.is_empty() && !d.is_empty() && !d.contains([':', '/']) => {
            Ok((u.to_string(), d.to_ascii_lowercase()))
        }
        _ => Err(format!("{aor:?} is not USER@DOMAIN (e.g. alice@example.com)")),
    }
}

/// The subscriber row for a password: the MD5 and SHA-256 HA1 hashes
/// (RFC 8760); the password itself is not kept.
pub fn with_password(user: &str, domain: &str, password: &str, now_ms: u64) -> Subscriber {
    Subscriber {
        ha1_md5: sip_auth::ha1(sip_auth::Algorithm::Md5, user, domain, password),
        ha1_sha256: sip_auth::ha1(sip_auth::Algorithm::Sha256, user, domain, password),
        user: user.to_string(),
        domain: domain.to_string(),
        created_at_ms: now_ms,
    }
}

/// The domains a configuration serves, as the server computes them before
/// it binds: `registrar.domains`, plus the listener IPs when
/// `registrar.serve_listen_addresses` is on.
pub fn served_domains(config: &Config) -> Vec<String> {
    let mut domains: Vec<String> = config.registrar.domains.iter().map(|d| d.to_ascii_lowercase()).collect();
    if config.registrar.serve_listen_addresses {
        for l in &config.listen {
            for ip in crate::server::served_ips(l.addr) {
                if !domains.contains(&ip) {
                    domains.push(ip);
                }
            }
        }
    }
    domains
}

/// `Ok` when `domain` is one of `served`; else a message naming the key
/// that lists the domains and what to write there.
pub fn check_domain(served: &[String], domain: &str) -> Result<(), String> {
    if served.iter().any(|d| d == domain) {
        return Ok(());
    }
    Err(format!(
        "{domain} is not a domain this server serves (served: {}); add \"{domain}\" to registrar.domains in the configuration file, or give a user of a served domain",
        served.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_check() {
        assert_eq!(split("sip:Al@Example.COM").unwrap(), ("Al".into(), "example.com".into()));
        assert!(split("nope").unwrap_err().contains("USER@DOMAIN"));
        let served = vec!["example.com".to_string()];
        assert!(check_domain(&served, "example.com").is_ok());
        let e = check_domain(&served, "other.org").unwrap_err();
        assert!(e.contains("registrar.domains") && e.contains("other.org"), "{e}");
    }

    #[test]
    fn only_hashes_are_kept() {
        let s = with_password("al", "example.com", "pw-secret", 1);
        assert_eq!(s.ha1_md5, sip_auth::ha1(sip_auth::Algorithm::Md5, "al", "example.com", "pw-secret"));
        assert!(!format!("{s:?}").contains("pw-secret"));
    }
}
