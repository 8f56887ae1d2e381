//! The senders' metrics, through the `metrics` facade (a no-op until the
//! binary installs a recorder): names and labels in one place.

use std::time::Duration;

/// Describes the senders' metric families (called once by the binary).
pub fn describe() {
    metrics::describe_counter!(
        "sipwake_push_failures_total",
        "Push attempts that failed, by provider and reason (the provider's error reason, an HTTP status, timeout, connect, host_not_allowed…)"
    );
    metrics::describe_histogram!(
        "sipwake_push_send_seconds",
        "Push handed to the sender to the provider's final answer (retries included), by provider"
    );
    metrics::describe_counter!(
        "sipwake_push_token_refreshes_total",
        "Auth tokens signed or fetched: APNs provider tokens, FCM OAuth access tokens, VAPID JWTs"
    );
}

/// Registers the senders' families at zero for the configured providers
/// (a scrape right after start-up shows them all).
pub fn register_zero(providers: &[String]) {
    for p in providers {
        metrics::counter!("sipwake_push_failures_total", "provider" => p.clone(), "reason" => "timeout").increment(0);
        let _ = metrics::histogram!("sipwake_push_send_seconds", "provider" => p.clone());
        let token = match p.as_str() {
            "fcm" => "fcm_oauth",
            "webpush" => "vapid",
            _ => "apns_provider",
        };
        metrics::counter!("sipwake_push_token_refreshes_total", "provider" => p.clone(), "token" => token).increment(0);
    }
}

pub fn failure(provider: &str, reason: &str) {
    metrics::counter!("sipwake_push_failures_total", "provider" => provider.to_owned(), "reason" => reason.to_owned())
        .increment(1);
}

pub fn latency(provider: &str, d: Duration) {
    metrics::histogram!("sipwake_push_send_seconds", "provider" => provider.to_owned()).record(d.as_secs_f64());
}

pub fn token_refresh(provider: &str, token: &'static str) {
    metrics::counter!("sipwake_push_token_refreshes_total", "provider" => provider.to_owned(), "token" => token)
        .increment(1);
}
