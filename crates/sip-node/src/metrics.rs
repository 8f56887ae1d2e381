//! Metrics the node records: names and labels in one place, through the
//! `metrics` facade (a no-op until the binary installs a recorder), so the
//! node stays free of I/O and hot paths only bump atomics.
//!
//! The families every request touches (requests by method, responses by
//! class, registrations by result, request duration) keep their handles
//! once [`describe`] has run (the recorder is installed by then): looking a
//! handle up in the recorder by name and labels hashes and allocates, about
//! 600 instructions, three or four times per REGISTER.

use std::sync::OnceLock;
use std::time::Duration;

/// Handles of one family by label value (a handful each: a linear scan).
struct Family<T>(Vec<(&'static str, T)>);

impl<T> Family<T> {
    fn get(&self, label: &str) -> Option<&T> {
        self.0.iter().find(|(l, _)| *l == label).map(|(_, h)| h)
    }
}

struct Hot {
    requests: Family<metrics::Counter>,
    responses: Family<metrics::Counter>,
    registrations: Family<metrics::Counter>,
    durations: Family<metrics::Histogram>,
}

static HOT: OnceLock<Hot> = OnceLock::new();

const METHODS: [&str; 14] = [
    "REGISTER",
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "INFO",
    "UPDATE",
    "PRACK",
    "MESSAGE",
    "NOTIFY",
    "SUBSCRIBE",
    "REFER",
    "PUBLISH",
];
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];
const RESULTS: [&str; 3] = ["ok", "rejected", "challenged"];

fn hot() -> Hot {
    Hot {
        requests: Family(
            METHODS.iter().map(|&m| (m, metrics::counter!("sipwake_requests_total", "method" => m))).collect(),
        ),
        responses: Family(
            CLASSES.iter().map(|&c| (c, metrics::counter!("sipwake_responses_total", "class" => c))).collect(),
        ),
        registrations: Family(
            RESULTS.iter().map(|&r| (r, metrics::counter!("sipwake_registrations_total", "result" => r))).collect(),
        ),
        durations: Family(
            METHODS
                .iter()
                .map(|&m| (m, metrics::histogram!("sipwake_request_duration_seconds", "method" => m)))
                .collect(),
        ),
    }
}

/// Describes every metric family (called once the recorder is installed).
pub fn describe() {
    metrics::describe_counter!("sipwake_requests_total", "SIP requests received, by method");
    metrics::describe_counter!("sipwake_responses_total", "Responses sipwake generated, by status class");
    metrics::describe_counter!("sipwake_parse_errors_total", "Messages that failed to parse");
    metrics::describe_counter!("sipwake_registrations_total", "REGISTER outcomes: ok, rejected, challenged");
    metrics::describe_counter!("sipwake_auth_failures_total", "Failed digest authentications, by reason");
    metrics::describe_counter!(
        "sipwake_defence_dropped_total",
        "Messages dropped by [defence], by reason (denied, not-allowed, blocked)"
    );
    metrics::describe_counter!(
        "sipwake_defence_blocks_total",
        "Sources blocked by [defence], by reason (rate-limit, auth-failures, manual)"
    );
    metrics::describe_gauge!("sipwake_defence_blocked_sources", "Sources blocked now by [defence]");
    metrics::describe_counter!(
        "sipwake_push_refresh_missed_total",
        "Push devices that dropped off: registrations that expired although refresh pushes were sent, by provider"
    );
    metrics::describe_counter!(
        "sipwake_push_unanswered_total",
        "Still-registered push devices flagged for unanswered pushes, by provider and reason \
         (refresh-unanswered, call-unanswered)"
    );
    metrics::describe_counter!(
        "sipwake_defence_management_refused_total",
        "Management API connections refused by defence.management_allow / management_deny"
    );
    metrics::describe_gauge!("sipwake_bindings", "Bindings in the location service");
    metrics::describe_gauge!(
        "sipwake_location_loading",
        "1 while the stored location is being loaded at start-up (requests that depend on it are held)"
    );
    metrics::describe_counter!(
        "sipwake_held_while_loading_total",
        "Requests held while the location loaded: released (dispatched once it was whole) or rejected (503)"
    );
    metrics::describe_histogram!("sipwake_request_duration_seconds", "Request in to final response out, by method");
    metrics::describe_counter!(
        "sipwake_proxied_total",
        "Proxied requests by method and the final status sent upstream"
    );
    metrics::describe_counter!("sipwake_branches_total", "Branches (forwarded copies of a request) started");
    metrics::describe_gauge!("sipwake_transactions", "SIP transactions in progress");
    metrics::describe_gauge!("sipwake_proxy_contexts", "Requests being proxied");
    metrics::describe_gauge!("sipwake_tcp_connections", "Open TCP connections");
    metrics::describe_counter!(
        "sipwake_tcp_closed_total",
        "TCP connections closed by sipwake: peer not reading (queue_full) or too slow (message_timeout)"
    );
    metrics::describe_counter!("sipwake_pushes_total", "Pushes by provider, reason and result");
    metrics::describe_counter!(
        "sipwake_push_dead_tokens_total",
        "Bindings removed because their push service said the token or subscription is dead, by provider"
    );
    metrics::describe_gauge!("sipwake_push_parked_requests", "Requests held while their devices are woken");
    metrics::describe_histogram!("sipwake_push_wake_latency_seconds", "Push sent to the woken device's REGISTER");
    metrics::describe_counter!(
        "sipwake_mid_registers_total",
        "Mid-registrar: device REGISTERs forwarded upstream or absorbed (answered here)"
    );
    metrics::describe_counter!(
        "sipwake_mid_upstream_answers_total",
        "Mid-registrar: upstream final answers by origin (device, resend, deregister) and code (0: none in time)"
    );
    metrics::describe_counter!(
        "sipwake_mid_restores_total",
        "Mid-registrar: devices behind a re-sent REGISTER the upstream challenged: refresh push sent, or unrestored"
    );
    metrics::describe_counter!(
        "sipwake_mid_unrestored_total",
        "Mid-registrar: plain devices the upstream lost and sipwake could not re-register (no credentials, no push)"
    );
    metrics::describe_gauge!("sipwake_mid_upstream_up", "Mid-registrar: 1 while the upstream registrar answers");
    let _ = HOT.set(hot());
}

/// Registers every family this crate records, at zero, so a scrape right
/// after start-up shows them all (a family appears only with a series).
/// Families with open-ended labels get one zero series of common values;
/// `providers` are the configured `pn-provider` values.
pub fn register_zero(providers: &[String]) {
    use sip_auth::reason as r;
    metrics::counter!("sipwake_parse_errors_total").increment(0);
    for reason in [
        r::REALM_MISMATCH,
        r::MALFORMED,
        r::UNSUPPORTED_ALGORITHM,
        r::UNSUPPORTED_QOP,
        r::MISSING_QOP,
        r::URI_MISMATCH,
        r::OPAQUE_MISMATCH,
        r::BAD_NONCE,
        r::FUTURE_NONCE,
        r::UNKNOWN_USER,
        r::WRONG_PASSWORD,
        r::EXPIRED_NONCE,
        r::REPLAYED_NONCE,
        r::FORGOTTEN_NONCE,
    ] {
        metrics::counter!("sipwake_auth_failures_total", "reason" => reason).increment(0);
    }
    for g in [
        "sipwake_bindings",
        "sipwake_location_loading",
        "sipwake_transactions",
        "sipwake_proxy_contexts",
        "sipwake_tcp_connections",
        "sipwake_push_parked_requests",
        "sipwake_mid_upstream_up",
    ] {
        metrics::gauge!(g).increment(0.0);
    }
    for outcome in ["released", "rejected"] {
        metrics::counter!("sipwake_held_while_loading_total", "outcome" => outcome).increment(0);
    }
    metrics::counter!("sipwake_proxied_total", "method" => "INVITE", "code" => "200").increment(0);
    metrics::counter!("sipwake_branches_total").increment(0);
    for reason in ["queue_full", "message_timeout"] {
        metrics::counter!("sipwake_tcp_closed_total", "reason" => reason).increment(0);
    }
    for p in providers {
        for reason in ["reg-refresh", "ini-INVITE"] {
            for result in ["ok", "rejected", "failed"] {
                metrics::counter!("sipwake_pushes_total", "provider" => p.clone(), "reason" => reason, "result" => result)
                    .increment(0);
            }
        }
        metrics::counter!("sipwake_push_dead_tokens_total", "provider" => p.clone()).increment(0);
        metrics::counter!("sipwake_push_refresh_missed_total", "provider" => p.clone()).increment(0);
        for reason in ["refresh-unanswered", "call-unanswered"] {
            metrics::counter!("sipwake_push_unanswered_total", "provider" => p.clone(), "reason" => reason)
                .increment(0);
        }
    }
    let _ = metrics::histogram!("sipwake_push_wake_latency_seconds");
    for reason in ["denied", "not-allowed", "blocked"] {
        metrics::counter!("sipwake_defence_dropped_total", "reason" => reason).increment(0);
    }
    for reason in ["rate-limit", "auth-failures", "manual"] {
        metrics::counter!("sipwake_defence_blocks_total", "reason" => reason).increment(0);
    }
    metrics::gauge!("sipwake_defence_blocked_sources").increment(0.0);
    metrics::counter!("sipwake_defence_management_refused_total").increment(0);
    for action in ["absorbed", "forwarded"] {
        metrics::counter!("sipwake_mid_registers_total", "action" => action).increment(0);
    }
    for origin in ["device", "resend", "deregister"] {
        metrics::counter!("sipwake_mid_upstream_answers_total", "origin" => origin, "code" => "200").increment(0);
    }
    for result in ["push", "unrestored"] {
        metrics::counter!("sipwake_mid_restores_total", "result" => result).increment(0);
    }
    metrics::counter!("sipwake_mid_unrestored_total").increment(0);
}

pub fn mid_register(action: &'static str) {
    metrics::counter!("sipwake_mid_registers_total", "action" => action).increment(1);
}

pub fn mid_upstream(origin: &'static str, code: u16) {
    metrics::counter!("sipwake_mid_upstream_answers_total", "origin" => origin, "code" => code.to_string())
        .increment(1);
}

pub fn mid_restore(result: &'static str) {
    metrics::counter!("sipwake_mid_restores_total", "result" => result).increment(1);
    if result == "unrestored" {
        metrics::counter!("sipwake_mid_unrestored_total").increment(1);
    }
}

pub fn mid_up(up: bool) {
    metrics::gauge!("sipwake_mid_upstream_up").set(if up { 1.0 } else { 0.0 });
}

pub fn request(method: &str) {
    match HOT.get().and_then(|h| h.requests.get(method)) {
        Some(c) => c.increment(1),
        None => metrics::counter!("sipwake_requests_total", "method" => method.to_string()).increment(1),
    }
}

pub fn response(code: u16) {
    let class = match code {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "6xx",
    };
    match HOT.get().and_then(|h| h.responses.get(class)) {
        Some(c) => c.increment(1),
        None => metrics::counter!("sipwake_responses_total", "class" => class).increment(1),
    }
}

pub fn parse_error() {
    metrics::counter!("sipwake_parse_errors_total").increment(1);
}

pub fn registration(result: &'static str) {
    match HOT.get().and_then(|h| h.registrations.get(result)) {
        Some(c) => c.increment(1),
        None => metrics::counter!("sipwake_registrations_total", "result" => result).increment(1),
    }
}

pub fn auth_failure(reason: &'static str) {
    metrics::counter!("sipwake_auth_failures_total", "reason" => reason).increment(1);
}

pub fn loading(on: bool) {
    metrics::gauge!("sipwake_location_loading").set(if on { 1.0 } else { 0.0 });
}

pub fn held_while_loading(outcome: &'static str, n: u64) {
    metrics::counter!("sipwake_held_while_loading_total", "outcome" => outcome).increment(n);
}

pub fn bindings(n: usize) {
    metrics::gauge!("sipwake_bindings").set(n as f64);
}

pub fn request_latency(method: &'static str, d: Duration) {
    match HOT.get().and_then(|h| h.durations.get(method)) {
        Some(h) => h.record(d.as_secs_f64()),
        None => metrics::histogram!("sipwake_request_duration_seconds", "method" => method).record(d.as_secs_f64()),
    }
}

pub fn proxied(method: &'static str, code: u16) {
    metrics::counter!("sipwake_proxied_total", "method" => method, "code" => code.to_string()).increment(1);
}

pub fn branch_started() {
    metrics::counter!("sipwake_branches_total").increment(1);
}

/// Gauges read from the server state when /metrics is scraped.
pub fn state(transactions: usize, contexts: usize, connections: usize) {
    metrics::gauge!("sipwake_transactions").set(transactions as f64);
    metrics::gauge!("sipwake_proxy_contexts").set(contexts as f64);
    metrics::gauge!("sipwake_tcp_connections").set(connections as f64);
}

/// TCP connections closed because their peer did not read (write queue full)
/// or sent a message too slowly (whole-message deadline), since start-up.
pub fn tcp_faults(queue_overflows: u64, message_timeouts: u64) {
    metrics::counter!("sipwake_tcp_closed_total", "reason" => "queue_full").absolute(queue_overflows);
    metrics::counter!("sipwake_tcp_closed_total", "reason" => "message_timeout").absolute(message_timeouts);
}

pub fn wake_latency(d: Duration) {
    metrics::histogram!("sipwake_push_wake_latency_seconds").record(d.as_secs_f64());
}

pub fn push(provider: &str, reason: &str, result: &'static str) {
    metrics::counter!("sipwake_pushes_total", "provider" => provider.to_string(), "reason" => reason.to_string(), "result" => result)
        .increment(1);
}

pub fn parked(n: usize) {
    metrics::gauge!("sipwake_push_parked_requests").set(n as f64);
}

pub fn dead_token(provider: &str) {
    metrics::counter!("sipwake_push_dead_tokens_total", "provider" => provider.to_string()).increment(1);
}

/// A message dropped by the defence (`reason`: denied, not-allowed, blocked).
pub fn defence_dropped(reason: &'static str) {
    metrics::counter!("sipwake_defence_dropped_total", "reason" => reason).increment(1);
}

/// A source became blocked (`reason`: rate-limit, auth-failures, manual);
/// `blocked`: sources blocked now.
pub fn defence_blocked(reason: &'static str, blocked: usize) {
    metrics::counter!("sipwake_defence_blocks_total", "reason" => reason).increment(1);
    defence_blocked_sources(blocked);
}

/// Sources blocked now.
pub fn defence_blocked_sources(blocked: usize) {
    metrics::gauge!("sipwake_defence_blocked_sources").set(blocked as f64);
}

/// A push device dropped off: its registration expired although refresh pushes were sent.
pub fn refresh_missed(provider: &str) {
    metrics::counter!("sipwake_push_refresh_missed_total", "provider" => provider.to_owned()).increment(1);
}

/// A still-registered push device let pushes go unanswered (`reason`:
/// `refresh-unanswered` or `call-unanswered`).
pub fn unanswered(provider: &str, reason: &'static str) {
    metrics::counter!("sipwake_push_unanswered_total", "provider" => provider.to_owned(), "reason" => reason)
        .increment(1);
}
