//! # push-senders
//!
//! The async edge that delivers the [`sip_push::PushRequest`]s the sans-IO
//! push engine emits ([`sip_push::Output::Push`]) and classifies the result
//! as the engine's [`sip_push::PushError`]. This crate owns **delivery
//! only**: which push to send, when, and whether to retry is the engine's
//! schedule, not ours.
//!
//! **No retries happen here.** [`Senders::send`] makes exactly one attempt
//! (one HTTP request, or one program run) and reports its outcome; the core
//! hands that to `PushEngine::handle_push_result`, and the engine schedules
//! any further push.
//!
//! Two kinds of sender, chosen per `pn-provider` ([`SenderConfig`]):
//! * [`SenderConfig::Webhook`]: `POST` the [`Payload`] JSON to a URL
//!   (see [`webhook`]): 2xx → `Ok`, 404/410 → `Rejected`, else `Failed`.
//! * [`SenderConfig::Exec`]: run a program with `SIPWAKE_*` env vars and
//!   the JSON on stdin (see [`exec`]): exit 0 → `Ok`, 2 → `Rejected`,
//!   else `Failed`.
//!
//! A push whose [`PushRequest::deadline`] has passed is not sent (it is
//! useless, see its docs) and yields `Failed`; the per-sender timeout is
//! also capped to the time left until the deadline.

pub mod exec;
pub mod payload;
pub mod webhook;

pub use payload::{Payload, env_vars};
pub use webhook::{PUSH_ID_HEADER, SIGNATURE_HEADER, signature};

use sip_push::{PushError, PushRequest};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How one provider's pushes are delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SenderConfig {
    /// HTTP `POST` of the [`Payload`] JSON to `url` (http: or https:).
    Webhook {
        url: String,
        /// Whole-request timeout (connect, send, answer).
        timeout: Duration,
        /// Extra request headers, e.g. `("Authorization", "Bearer …")`.
        headers: Vec<(String, String)>,
        /// If set, every request carries
        /// `X-Sipwake-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
        hmac_secret: Option<String>,
    },
    /// Run `program` (no shell) with `args` as-is, the `SIPWAKE_*`
    /// environment and the JSON on stdin; killed after `timeout`.
    Exec { program: PathBuf, args: Vec<String>, timeout: Duration },
}

#[derive(Debug)]
enum Sender {
    Webhook(webhook::Webhook),
    Exec(exec::Exec),
}

#[derive(Debug)]
struct Inner {
    /// (provider, sender); `"*"` is the default.
    senders: Vec<(String, Sender)>,
    /// One shared client: connection pooling, HTTP/1.1 and HTTP/2 (ALPN).
    client: reqwest::Client,
}

/// Provider name → sender. Cheap to clone (one `Arc`); share it between
/// tasks.
#[derive(Clone, Debug)]
pub struct Senders {
    inner: Arc<Inner>,
}

impl Senders {
    /// Builds the senders. Provider names match `pn-provider`
    /// case-insensitively; `"*"` is the sender for providers not listed.
    ///
    /// Errors (naming the provider): empty or duplicate provider, bad URL,
    /// header or timeout, missing exec program, HTTP client setup.
    pub fn new(map: Vec<(String, SenderConfig)>) -> Result<Senders, String> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("sipwake-push/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let mut senders: Vec<(String, Sender)> = Vec::with_capacity(map.len());
        for (provider, cfg) in map {
            let provider = provider.trim().to_owned();
            if provider.is_empty() {
                return Err("push sender with an empty provider name".into());
            }
            if senders.iter().any(|(p, _)| p.eq_ignore_ascii_case(&provider)) {
                return Err(format!("provider {provider:?}: more than one sender"));
            }
            let sender = match cfg {
                SenderConfig::Webhook { url, timeout, headers, hmac_secret } => {
                    webhook::Webhook::new(&url, timeout, &headers, hmac_secret.as_deref()).map(Sender::Webhook)
                }
                SenderConfig::Exec { program, args, timeout } => {
                    exec::Exec::new(program, args, timeout).map(Sender::Exec)
                }
            }
            .map_err(|e| format!("provider {provider:?}: {e}"))?;
            senders.push((provider, sender));
        }
        Ok(Senders { inner: Arc::new(Inner { senders, client }) })
    }

    /// Whether some sender (or the `"*"` default) serves `provider`.
    pub fn serves(&self, provider: &str) -> bool {
        self.find(provider).is_some()
    }

    fn find(&self, provider: &str) -> Option<&Sender> {
        let s = &self.inner.senders;
        s.iter()
            .find(|(p, _)| p.eq_ignore_ascii_case(provider))
            .or_else(|| s.iter().find(|(p, _)| p == "*"))
            .map(|(_, s)| s)
    }

    /// Delivers one push: exactly one attempt, no retries (the engine
    /// schedules those). Never panics. `Failed` when no sender serves the
    /// provider or the deadline has passed.
    pub async fn send(&self, req: &PushRequest) -> Result<(), PushError> {
        self.send_for(req, None).await
    }

    /// [`Senders::send`] with the AoR of the binding, which the event then carries.
    pub async fn send_for(&self, req: &PushRequest, aor: Option<&str>) -> Result<(), PushError> {
        let Some(sender) = self.find(&req.provider) else {
            tracing::warn!(push = req.id.0, provider = %req.provider, "no push sender for provider");
            return Err(PushError::Failed);
        };
        let left = req.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::warn!(push = req.id.0, provider = %req.provider, "push deadline passed; not sent");
            return Err(PushError::Failed);
        }
        let mut payload = Payload::new(req);
        payload.aor = aor;
        let body = payload.to_json();
        let fut = async {
            match sender {
                Sender::Webhook(w) => w.send(&self.inner.client, req, body).await,
                Sender::Exec(x) => x.send(req, &payload, body).await,
            }
        };
        match tokio::time::timeout(left, fut).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(push = req.id.0, provider = %req.provider, "push deadline reached while sending");
                Err(PushError::Failed)
            }
        }
    }
}
