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
        if let Some(p) = &b.last_push {
            println!("{:<28} last push: {}", "", push_line(p));
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

/// A push of the audit in a few words: `call INVITE via apns, attempt 1: ok in 42 ms`.
pub fn push_line(p: &serde_json::Value) -> String {
    let t = |k: &str| p.get(k).and_then(serde_json::Value::as_str).unwrap_or("-");
    let method = p.get("method").and_then(serde_json::Value::as_str).map(|m| format!(" {m}")).unwrap_or_default();
    let latency =
        p.get("latency_ms").and_then(serde_json::Value::as_u64).map(|l| format!(" in {l} ms")).unwrap_or_default();
    let attempt = p.get("attempt").and_then(serde_json::Value::as_u64).unwrap_or(1);
    format!("{}{method} via {}, attempt {attempt}: {}{latency}", t("reason"), t("provider"), t("outcome"))
}

/// Wall-clock time of a unix ms, `HH:MM:SS.mmm` (UTC).
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}.{:03}", (s / 3600) % 24, (s / 60) % 60, s % 60, ms % 1000)
}

/// One audit event's details.
fn event_detail(e: &serde_json::Value) -> String {
    let n = |k: &str| e.get(k).and_then(serde_json::Value::as_u64);
    let t = |k: &str| e.get(k).and_then(serde_json::Value::as_str).unwrap_or("-").to_owned();
    match e.get("event").and_then(serde_json::Value::as_str).unwrap_or("") {
        "parked" => format!("{} held for {} push device(s)", t("method"), n("bindings").unwrap_or(0)),
        "push" => push_line(e),
        "woken" => format!("wake-up REGISTER {} ms after the push", n("after_push_ms").unwrap_or(0)),
        "not-woken" => "no REGISTER before the hold ended".into(),
        "forked" => match n("wake_latency_ms") {
            Some(l) => format!("request sent to the device (woken in {l} ms)"),
            None => "request sent to the device (awake, no push needed)".into(),
        },
        "answered" => format!("final answer {} ({})", n("code").unwrap_or(0), t("outcome")),
        other => other.to_owned(),
    }
}

/// The events of a call's or a binding's push audit, oldest first, with
/// the time since the first.
pub fn events(events: &[serde_json::Value]) {
    let t0 = events.first().and_then(|e| e.get("at_ms")).and_then(serde_json::Value::as_u64).unwrap_or(0);
    println!("{:<12} {:>8} {:<10} {:<18} DETAIL", "TIME (UTC)", "+MS", "EVENT", "BINDING");
    for e in events {
        let at = e.get("at_ms").and_then(serde_json::Value::as_u64).unwrap_or(0);
        let s = |k: &str| e.get(k).and_then(serde_json::Value::as_str).unwrap_or("-");
        println!(
            "{:<12} {:>8} {:<10} {:<18} {}",
            clock(at),
            at.saturating_sub(t0),
            s("event"),
            s("binding"),
            event_detail(e)
        );
    }
}

/// Recent pushes, newest first.
pub fn pushes(pushes: &[serde_json::Value]) {
    println!(
        "{:<12} {:<28} {:<18} {:<9} {:<11} {:>3} {:<8} {:>7}  CALL-ID",
        "TIME (UTC)", "AOR", "BINDING", "PROVIDER", "REASON", "#", "OUTCOME", "MS"
    );
    for p in pushes {
        let s = |k: &str| p.get(k).and_then(serde_json::Value::as_str).unwrap_or("-");
        let n = |k: &str| p.get(k).and_then(serde_json::Value::as_u64);
        println!(
            "{:<12} {:<28} {:<18} {:<9} {:<11} {:>3} {:<8} {:>7}  {}",
            clock(n("at_ms").unwrap_or(0)),
            s("aor"),
            s("binding"),
            s("provider"),
            s("reason"),
            n("attempt").unwrap_or(1),
            s("outcome"),
            n("latency_ms").map_or_else(|| "-".into(), |l| l.to_string()),
            s("call_id")
        );
    }
    println!("({} pushes)", pushes.len());
}

/// Requests held now.
pub fn parked(parked: &[serde_json::Value]) {
    println!(
        "{:>7} {:<8} {:<11} {:>8} {:>6}  {:<32} WAITING FOR",
        "REQUEST", "METHOD", "KIND", "AGE", "WOKEN", "CALL-ID"
    );
    for p in parked {
        let s = |k: &str| p.get(k).and_then(serde_json::Value::as_str).unwrap_or("-");
        let n = |k: &str| p.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let waiting: Vec<&str> = p
            .get("waiting")
            .and_then(serde_json::Value::as_array)
            .map(|a| a.iter().filter_map(serde_json::Value::as_str).collect())
            .unwrap_or_default();
        println!(
            "{:>7} {:<8} {:<11} {:>8} {:>6}  {:<32} {}",
            n("request"),
            s("method"),
            s("kind"),
            dur(n("age_ms")),
            n("woken"),
            s("call_id"),
            waiting.join(" ")
        );
    }
    println!("({} parked)", parked.len());
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
