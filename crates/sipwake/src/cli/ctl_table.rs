//! `sipwake ctl`'s tables: bindings (with the push engine's state when push
//! is on), upstream registrations, statistics, users. Pure formatting of
//! the management API's views; no I/O but standard output.

use crate::management::{BindingView, StatsView, UpstreamList};
use crate::mgmt_users::UserList;

/// Milliseconds as a short duration: `45s`, `12m05s`, `3h20m`.
pub fn dur(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The push engine's state of a binding in one line: next refresh, last
/// push and its outcome, failures, parked requests.
pub fn push_state(v: &serde_json::Value) -> String {
    let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
    if v.get("invalid").and_then(serde_json::Value::as_bool) == Some(true) {
        return "token rejected by the push service: no pushes until the device registers again".into();
    }
    let mut parts = Vec::new();
    parts.push(match n("next_refresh_in_ms") {
        Some(ms) => format!("next refresh in {}", dur(ms)),
        None => "no refresh push before expiry".into(),
    });
    let failures = n("consecutive_failures").unwrap_or(0);
    parts.push(match n("last_push_ago_ms") {
        None => "never pushed".into(),
        Some(ms) if failures > 0 => format!("last push {} ago failed", dur(ms)),
        Some(ms) => format!("last push {} ago", dur(ms)),
    });
    if failures > 0 {
        parts.push(format!("{failures} failure(s) in a row"));
    }
    if let Some(r) = n("refresh_attempts").filter(|r| *r > 0) {
        parts.push(format!("{r} refresh push(es) since it registered"));
    }
    if let Some(p) = n("parked").filter(|p| *p > 0) {
        parts.push(format!("{p} request(s) parked"));
    }
    parts.join(", ")
}

/// Bindings, one line each; a push binding the push engine follows (push
/// enabled) shows its provider and, below, its push state.
pub fn bindings<'a>(bindings: impl Iterator<Item = &'a BindingView>) {
    println!(
        "{:<28} {:<16} {:>7} {:<5} {:<22} {:<6} {:<8} CONTACT",
        "AOR", "BINDING", "EXPIRES", "TRANS", "REMOTE", "FLOW", "PUSH"
    );
    for b in bindings {
        // The provider only when the node pushes (push enabled, binding followed).
        let provider = match (&b.push_state, &b.push) {
            (Some(_), Some(p)) => p.provider.as_str(),
            (Some(s), None) => s.get("provider").and_then(|p| p.as_str()).unwrap_or("yes"),
            (None, _) => "-",
        };
        println!(
            "{:<28} {:<16} {:>7} {:<5} {:<22} {:<6} {:<8} {}",
            b.aor,
            b.id,
            b.expires_in_secs,
            b.flow.transport,
            b.flow.remote,
            if b.flow.alive { "alive" } else { "dead" },
            provider,
            b.contact
        );
        if let Some(s) = &b.push_state {
            println!("{:<28} push: {}", "", push_state(s));
        }
    }
}

pub fn upstream(l: &UpstreamList) {
    let u = &l.upstream;
    println!(
        "upstream {} ({}, throttle {}) {}, {} REGISTER(s) in flight",
        u.address,
        u.transport,
        u.throttle,
        if u.up { "up" } else { "DOWN" },
        u.in_flight
    );
    println!("{:<28} {:<18} {:>7} {:>4} {:<34} UPSTREAM CONTACT", "AOR", "KEY", "EXPIRES", "LAST", "BINDINGS");
    for r in &l.registrations {
        println!(
            "{:<28} {:<18} {:>7} {:>4} {:<34} {}",
            r.aor,
            r.key,
            r.expires_in,
            r.last_code,
            r.bindings.join(","),
            r.upstream_contact
        );
    }
    println!("({} registration(s))", l.registrations.len());
}

pub fn stats(s: &StatsView) {
    if let Ok(serde_json::Value::Object(obj)) = serde_json::to_value(s) {
        for (k, v) in obj {
            println!("{k:<22} {v}");
        }
    }
}

pub fn users(l: &UserList) {
    for u in &l.users {
        println!("{}", u.user);
    }
    println!("({} user(s))", l.users.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_state_line() {
        let v = serde_json::json!({"next_refresh_in_ms": 3_480_000, "last_push_ago_ms": 12_000, "consecutive_failures": 2, "invalid": false, "parked": 0, "refresh_attempts": 0});
        assert_eq!(push_state(&v), "next refresh in 58m00s, last push 12s ago failed, 2 failure(s) in a row");
        let v = serde_json::json!({"next_refresh_in_ms": null, "last_push_ago_ms": null, "invalid": false});
        assert_eq!(push_state(&v), "no refresh push before expiry, never pushed");
        assert!(push_state(&serde_json::json!({"invalid": true})).starts_with("token rejected"));
        assert_eq!(dur(7_500_000), "2h05m");
    }
}
