//! Operator log lines: at INFO one line per registration change (added,
//! refreshed, removed, expired) and per parked-request outcome, at WARN
//! one per failed digest authentication (the fail2ban format), with the
//! field names the README documents (`aor`, `binding`, `contact`,
//! `expires`, `src`, `action`, `outcome`, ...). Numbers are recorded as
//! numbers, so JSON logs carry them typed.
//!
//! Owns only the wording of these lines, the redaction of push tokens in
//! Contact URIs and the escaping of user-supplied names; it never changes
//! state. The hot path pays nothing when INFO is off for this module's
//! target (`sip_node::oplog`): every line is a tracing macro, which checks
//! the level before it formats, and the look-ups done for a line only are
//! behind `tracing::enabled!`.

use sip_registrar::location::Change;
use sip_registrar::{Aor, Binding, Location};
use std::fmt;

/// The ids of the bindings of a REGISTER's AoR (its To) before it changes
/// them (`None` when INFO is off: then nothing is collected).
pub(crate) fn before(location: &Location, req: &sip_msg::Message) -> Option<Vec<String>> {
    if !tracing::enabled!(tracing::Level::INFO) {
        return None;
    }
    let aor = req.to().ok().and_then(|t| t.uri.as_sip().map(Aor::from_uri));
    Some(aor.map(|a| location.get(&a).iter().map(|b| b.id.clone()).collect()).unwrap_or_default())
}

/// One line per change a REGISTER from `src` made; `before`: what
/// [`before`] returned.
pub(crate) fn registered(changes: &[Change], before: Option<&[String]>, src: std::net::SocketAddr, now_ms: u64) {
    let Some(before) = before else { return };
    for c in changes {
        match c {
            Change::Upsert(b) => {
                let action = if before.contains(&b.id) { "refreshed" } else { "added" };
                binding_line(b, action, Some(src), now_ms);
            }
            Change::Remove { aor, id } => removed(aor, id, "removed", Some(src)),
        }
    }
}

/// A binding written: added or refreshed.
fn binding_line(b: &Binding, action: &str, src: Option<std::net::SocketAddr>, now_ms: u64) {
    let provider = b.push().map(|p| p.provider);
    tracing::info!(
        aor = %b.aor,
        binding = %b.id,
        contact = %Contact(b.uri.as_str()),
        expires = b.remaining_secs(now_ms),
        src = %OrDash(src),
        push = %provider.as_deref().unwrap_or("-"),
        action,
        "registration {action}"
    );
}

/// A binding removed: by its REGISTER (`src` set), by expiry or by management.
pub(crate) fn removed(aor: &Aor, id: &str, action: &str, src: Option<std::net::SocketAddr>) {
    tracing::info!(aor = %aor, binding = %id, src = %OrDash(src), action, "registration {action}");
}

/// Removals without a REGISTER (`action`: `expired`, `removed` by
/// management, `flow-closed` for an outbound binding whose connection closed).
pub(crate) fn removed_all(changes: &[Change], action: &str) {
    if !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    for c in changes {
        if let Change::Remove { aor, id } = c {
            removed(aor, id, action, None);
        }
    }
}

/// A parked request's device registered: the request goes to it.
pub(crate) fn forked(request: u64, binding: &str, wake_latency: Option<std::time::Duration>) {
    tracing::info!(
        request,
        binding,
        wake_latency_ms = wake_latency.map_or(0, |d| d.as_millis() as u64),
        outcome = "forked",
        "parked request forked to the woken device"
    );
}

/// A parked request got its final answer `code` (sent upstream):
/// `cancelled` by its caller, else answered (480: no device woke in time).
/// Returns the outcome as logged.
pub(crate) fn parked_ended(request: u64, method: Option<&sip_msg::Method>, cancelled: bool, code: u16) -> &'static str {
    let outcome = if cancelled {
        "cancelled"
    } else if code == 480 {
        "timed-out-480"
    } else {
        "answered"
    };
    tracing::info!(
        request,
        method = %method.map_or_else(|| "-".to_string(), ToString::to_string),
        code = u64::from(code),
        outcome,
        "parked request {outcome}"
    );
    outcome
}

/// A Contact URI with push secrets hidden: the values of `pn-prid`,
/// `pn-param`, `pn-purr` and any other `pn-*` parameter but `pn-provider`
/// are written as `*` (RFC 8599 §13: push coordinates are secrets).
pub(crate) struct Contact<'a>(pub &'a str);

impl fmt::Display for Contact<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = self.0.split(';');
        f.write_str(parts.next().unwrap_or_default())?;
        for p in parts {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            let n = name.trim().to_ascii_lowercase();
            if n.starts_with("pn-") && n != "pn-provider" && !value.is_empty() {
                write!(f, ";{name}=*")?;
            } else {
                write!(f, ";{p}")?;
            }
        }
        Ok(())
    }
}

/// An address, or `-`.
struct OrDash(Option<std::net::SocketAddr>);

impl fmt::Display for OrDash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("-"),
        }
    }
}

/// The WARN line of a failed digest authentication, in a stable format that
/// `packaging/fail2ban/filter.d/sipwake.conf` matches (documented in the
/// README; change both together). Plain:
/// `WARN sip_node::oplog: auth failed aor=USER@REALM src=IP:PORT reason=REASON method=METHOD`;
/// JSON: the same fields. The reason is `sip_auth`'s with dashes for spaces
/// (`wrong-password`, `unknown-user`, `bad-nonce`, ...); a request without
/// a username gets `aor=-@REALM`. Nothing is formatted unless WARN is on.
pub(crate) fn auth_failed(
    req: &sip_msg::Message,
    user: Option<&str>,
    realm: &str,
    remote: std::net::SocketAddr,
    reason: &str,
) {
    tracing::warn!(
        aor = %AorField(user.unwrap_or("-"), realm),
        src = %remote,
        reason = %Dashed(reason),
        method = %req.method().map_or_else(|| "-".to_string(), ToString::to_string),
        "auth failed"
    );
}

/// `user@realm` with characters that could forge another field (spaces,
/// `=`, quotes, controls) written as `?`.
struct AorField<'a>(&'a str, &'a str);

impl std::fmt::Display for AorField<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        let clean = |s: &str, f: &mut std::fmt::Formatter<'_>| -> std::fmt::Result {
            for c in s.chars() {
                f.write_char(if c.is_ascii_graphic() && !matches!(c, '=' | '"' | '\\') { c } else { '?' })?;
            }
            Ok(())
        };
        clean(self.0, f)?;
        f.write_char('@')?;
        clean(self.1, f)
    }
}

/// A reason with dashes for spaces (`wrong password` → `wrong-password`).
struct Dashed<'a>(&'a str);

impl std::fmt::Display for Dashed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        self.0.chars().try_for_each(|c| f.write_char(if c == ' ' { '-' } else { c }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_secrets_are_hidden_in_contacts() {
        let c = Contact("sip:alice@192.0.2.1:5060;transport=tcp;pn-provider=apns;pn-prid=SECRET;pn-param=X.voip");
        assert_eq!(c.to_string(), "sip:alice@192.0.2.1:5060;transport=tcp;pn-provider=apns;pn-prid=*;pn-param=*");
        assert_eq!(Contact("sip:bob@h").to_string(), "sip:bob@h");
    }

    #[test]
    fn names_in_the_auth_line_cannot_forge_fields() {
        assert_eq!(AorField("al ice src=1.2.3.4", "example.com").to_string(), "al?ice?src?1.2.3.4@example.com");
        assert_eq!(Dashed("wrong password").to_string(), "wrong-password");
    }
}
