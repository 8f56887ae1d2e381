//! Retrying one push within its deadline: what an attempt can end in
//! ([`Attempt`]) and the loop ([`deliver`]) that backs off exponentially
//! (or as long as the provider's `Retry-After` says) after a throttled or
//! failed attempt, and gives up when the next try could not finish before
//! the push's deadline (the parked request's hold, R39/R41).
//!
//! Only transient failures are retried here (429, 5xx, connection errors,
//! timeouts, an expired auth token). Whether another *push* is sent later
//! (refresh retries) stays the engine's decision.

use sip_push::PushError;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How one attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The provider took the push.
    Delivered,
    /// Nothing to send (e.g. a refresh for a VoIP-only APNs binding when
    /// configured so): counts as delivered.
    Skipped,
    /// The token or subscription is dead: the binding should go.
    Dead(&'static str),
    /// Worth another try, after `after` if the provider said so.
    Retry { reason: &'static str, after: Option<Duration> },
    /// Will not succeed by retrying (bad request, refused by policy…).
    Fail(&'static str),
}

/// First back-off step; doubled per retry, at most [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
pub const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// The final outcome with the reason of the last failure (for metrics).
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub result: Result<(), PushError>,
    /// `ok`, `skipped`, or the last failure's reason.
    pub reason: &'static str,
    pub attempts: u32,
}

/// Runs `attempt` until it is final or the deadline leaves no room for
/// another try. `attempt` gets the time left.
pub async fn deliver<F, Fut>(deadline: Instant, mut attempt: F) -> Outcome
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Attempt>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut attempts = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome { result: Err(PushError::Failed), reason: "deadline", attempts };
        }
        attempts += 1;
        let reason = match tokio::time::timeout(left, attempt(left)).await {
            Err(_) => return Outcome { result: Err(PushError::Failed), reason: "deadline", attempts },
            Ok(Attempt::Delivered) => return Outcome { result: Ok(()), reason: "ok", attempts },
            Ok(Attempt::Skipped) => return Outcome { result: Ok(()), reason: "skipped", attempts },
            Ok(Attempt::Dead(r)) => return Outcome { result: Err(PushError::Rejected), reason: r, attempts },
            Ok(Attempt::Fail(r)) => return Outcome { result: Err(PushError::Failed), reason: r, attempts },
            Ok(Attempt::Retry { reason, after }) => {
                let wait = after.unwrap_or(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                if Instant::now() + wait >= deadline {
                    return Outcome { result: Err(PushError::Failed), reason, attempts };
                }
                tokio::time::sleep(wait).await;
                reason
            }
        };
        tracing::debug!(reason, attempts, "push attempt failed; retrying");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn retries_until_delivered_honouring_retry_after() {
        let n = AtomicU32::new(0);
        let start = Instant::now();
        let out = deliver(start + Duration::from_secs(10), |_| {
            let i = n.fetch_add(1, Ordering::SeqCst);
            async move {
                match i {
                    0 => Attempt::Retry { reason: "429", after: Some(Duration::from_secs(2)) },
                    1 => Attempt::Retry { reason: "503", after: None },
                    _ => Attempt::Delivered,
                }
            }
        })
        .await;
        assert_eq!(out, Outcome { result: Ok(()), reason: "ok", attempts: 3 });
        // The back-off grows with every retry, whoever chose the first wait.
        assert_eq!(Instant::now() - start, Duration::from_secs(2) + FIRST_BACKOFF * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_when_the_wait_would_pass_the_deadline() {
        let start = Instant::now();
        let out = deliver(start + Duration::from_secs(3), |_| async {
            Attempt::Retry { reason: "429", after: Some(Duration::from_secs(5)) }
        })
        .await;
        assert_eq!(out, Outcome { result: Err(PushError::Failed), reason: "429", attempts: 1 });
        assert_eq!(Instant::now(), start, "no pointless sleep");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_attempt_ends_at_the_deadline() {
        let start = Instant::now();
        let out = deliver(start + Duration::from_secs(3), |_| std::future::pending::<Attempt>()).await;
        assert_eq!(out.result, Err(PushError::Failed));
        assert_eq!(out.reason, "deadline");
        assert_eq!(Instant::now() - start, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn dead_and_failed_are_final() {
        let d = Instant::now() + Duration::from_secs(3);
        assert_eq!(deliver(d, |_| async { Attempt::Dead("Unregistered") }).await.result, Err(PushError::Rejected));
        let o = deliver(d, |_| async { Attempt::Fail("400") }).await;
        assert_eq!((o.result, o.attempts), (Err(PushError::Failed), 1));
    }
}
