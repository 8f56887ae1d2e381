//! Addresses of record: the canonical key of the location service.

use sip_msg::{Host, SipUri};
use std::fmt;

/// A canonical AoR: `user@domain` with the user %-unescaped (case kept,
/// RFC 3261 §19.1.4) and the domain lower-cased; `sip:` and `sips:` map to
/// the same AoR. Users with characters that do not survive as text are kept
/// %-escaped. Kept as a `Box<str>` (16 bytes; it is in every binding, map
/// key and schedule entry).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aor(Box<str>);

impl Aor {
    /// The AoR of a SIP URI (To of a REGISTER, Request-URI of a call).
    pub fn from_uri(uri: &SipUri) -> Aor {
        let domain = match &uri.host {
            Host::Name(n) => String::from_utf8_lossy(n).to_ascii_lowercase(),
            h => h.to_string(),
        };
        match uri.user_unescaped() {
            Some(u) => {
                let user = match String::from_utf8(u) {
                    Ok(s) if !s.contains(['@', '\0']) && !s.chars().any(char::is_control) => s,
                    _ => String::from_utf8_lossy(uri.user.as_deref().unwrap_or_default()).into_owned(),
                };
                Aor(format!("{user}@{domain}").into_boxed_str())
            }
            None => Aor(domain.into_boxed_str()),
        }
    }
    /// Parses the text form (`alice@example.com`, also with a `sip:` prefix).
    pub fn parse(s: &str) -> Option<Aor> {
        let s = s.strip_prefix("sip:").or_else(|| s.strip_prefix("sips:")).unwrap_or(s);
        let uri = sip_msg::Uri::parse_bytes(format!("sip:{s}")).ok()?;
        Some(Aor::from_uri(uri.as_sip()?))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The user part (before the last `@`).
    pub fn user(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(u, _)| u)
    }
    /// The domain part.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or(&self.0, |(_, d)| d)
    }
    /// Rebuilds from stored text without re-parsing.
    pub fn from_stored(s: String) -> Aor {
        Aor(s.into_boxed_str())
    }
}

impl fmt::Display for Aor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn canonical() {
        let a = Aor::parse("sip:%61lice@EXAMPLE.com").unwrap();
        assert_eq!(a.as_str(), "alice@example.com");
        assert_eq!(Aor::parse("sips:alice@example.com").unwrap(), a);
        assert_ne!(Aor::parse("ALICE@example.com").unwrap(), a);
        assert_eq!(a.user(), "alice");
        assert_eq!(a.domain(), "example.com");
        // Escaped NULs stay escaped: two distinct AoRs (RFC 4475 escnull).
        let n1 = Aor::parse("null-%00-null@example.com").unwrap();
        assert_eq!(n1.as_str(), "null-%00-null@example.com");
    }
}
