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
//! The senders, chosen per `pn-provider` ([`SenderConfig`]):
//! * [`SenderConfig::Apns`], [`SenderConfig::Fcm`], [`SenderConfig::WebPush`]:
//!   native clients of Apple's, Google's and the browsers' push services
//!   over HTTP/2 ([`apns`], [`fcm`], [`webpush`]), each with its own
//!   connection pool and auth tokens. A transient failure (429, 5xx,
//!   connection error) is retried with back-off, honouring `Retry-After`,
//!   as long as the push's deadline allows ([`retry`]); a dead token is
//!   `Rejected`.
//! * [`SenderConfig::Webhook`]: `POST` the [`Payload`] JSON to a URL
//!   (see [`webhook`]): 2xx → `Ok`, 404/410 → `Rejected`, else `Failed`;
//!   one attempt.
//! * [`SenderConfig::Exec`]: run a program with `SIPWAKE_*` env vars and
//!   the JSON on stdin (see [`exec`]): exit 0 → `Ok`, 2 → `Rejected`,
//!   else `Failed`; one attempt.
//!
//! Whether another *push* follows a failed one (refresh retries) is the
//! engine's schedule, not ours. A push whose [`PushRequest::deadline`] has
//! passed is not sent (it is useless, see its docs) and yields `Failed`;
//! every timeout is capped to the time left until the deadline.

pub mod apns;
pub mod content;
pub mod ece;
pub mod exec;
pub mod fcm;
pub mod http;
pub mod jwt;
pub mod payload;
pub mod retry;
pub mod telemetry;
pub mod webhook;
pub mod webpush;

pub use apns::{ApnsAuth, ApnsConfig, VoipRefresh};
pub use content::{Caller, Kind, PushMeta};
pub use fcm::FcmConfig;
pub use http::HttpOptions;
pub use payload::{Payload, env_vars};
pub use telemetry::{describe, register_zero};
pub use webhook::{PUSH_ID_HEADER, SIGNATURE_HEADER, signature};
pub use webpush::WebPushConfig;

use sip_push::{PushError, PushRequest};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why [`Senders::build`] failed: the provider whose sender could not be
/// built (none for errors of the whole set), and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError {
    pub provider: Option<String>,
    pub message: String,
}

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
    /// Apple Push Notification service.
    Apns(ApnsConfig),
    /// Firebase Cloud Messaging HTTP v1.
    Fcm(FcmConfig),
    /// WebPush (RFC 8030) with VAPID.
    WebPush(WebPushConfig),
}

#[derive(Debug)]
enum Sender {
    Webhook(webhook::Webhook),
    Exec(exec::Exec),
    Apns(apns::Apns),
    Fcm(fcm::Fcm),
    WebPush(webpush::WebPush),
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
        Senders::build(map).map_err(|e| match e.provider {
            Some(p) => format!("provider {p:?}: {}", e.message),
            None => e.message,
        })
    }

    /// [`Senders::new`] with the error's provider apart, so that a caller
    /// can name the configuration key it came from.
    pub fn build(map: Vec<(String, SenderConfig)>) -> Result<Senders, BuildError> {
        let plain = |message: String| BuildError { provider: None, message };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("sipwake-push/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| plain(format!("cannot build the HTTP client: {e}")))?;
        let mut senders: Vec<(String, Sender)> = Vec::with_capacity(map.len());
        for (provider, cfg) in map {
            let provider = provider.trim().to_owned();
            if provider.is_empty() {
                return Err(plain("push sender with an empty provider name".into()));
            }
            let named = |message: String| BuildError { provider: Some(provider.clone()), message };
            if senders.iter().any(|(p, _)| p.eq_ignore_ascii_case(&provider)) {
                return Err(named("more than one sender".into()));
            }
            let sender = match cfg {
                SenderConfig::Webhook { url, timeout, headers, hmac_secret } => {
                    webhook::Webhook::new(&url, timeout, &headers, hmac_secret.as_deref()).map(Sender::Webhook)
                }
                SenderConfig::Exec { program, args, timeout } => {
                    exec::Exec::new(program, args, timeout).map(Sender::Exec)
                }
                SenderConfig::Apns(c) => apns::Apns::new(&provider, c).map(Sender::Apns),
                SenderConfig::Fcm(c) => fcm::Fcm::new(&provider, c).map(Sender::Fcm),
                SenderConfig::WebPush(c) => webpush::WebPush::new(&provider, c).map(Sender::WebPush),
            }
            .map_err(named)?;
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

    /// The VAPID public key of the WebPush sender serving `provider`, if
    /// it has one (what `+sip.vapid` must advertise, R22).
    pub fn vapid_public_key(&self, provider: &str) -> Option<String> {
        match self.find(provider) {
            Some(Sender::WebPush(w)) => w.vapid_public_key(),
            _ => None,
        }
    }

    /// Delivers one push (see the crate docs for retries). Never panics.
    /// `Failed` when no sender serves the provider or the deadline has passed.
    pub async fn send(&self, req: &PushRequest) -> Result<(), PushError> {
        self.send_with(req, &PushMeta::default()).await
    }

    /// [`Senders::send`] with the AoR of the binding, which the event then carries.
    pub async fn send_for(&self, req: &PushRequest, aor: Option<&str>) -> Result<(), PushError> {
        self.send_with(req, &PushMeta { aor, ..PushMeta::default() }).await
    }

    /// [`Senders::send`] with what the core knows beyond the request: the
    /// AoR, the caller, the binding's extra `pn-*` parameters.
    pub async fn send_with(&self, req: &PushRequest, meta: &PushMeta<'_>) -> Result<(), PushError> {
        let Some(sender) = self.find(&req.provider) else {
            tracing::warn!(push = req.id.0, provider = %req.provider, "no push sender for provider");
            telemetry::failure(&req.provider, "no_sender");
            return Err(PushError::Failed);
        };
        let left = req.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::warn!(push = req.id.0, provider = %req.provider, "push deadline passed; not sent");
            telemetry::failure(&req.provider, "deadline");
            return Err(PushError::Failed);
        }
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + left;
        let payload = || Payload { aor: meta.aor, ..Payload::new(req) };
        let result = match sender {
            Sender::Webhook(w) => one_attempt(req, left, w.send(&self.inner.client, req, payload().to_json())).await,
            Sender::Exec(x) => {
                let p = payload();
                one_attempt(req, left, x.send(req, &p, p.to_json())).await
            }
            Sender::Apns(a) => self.native(req, deadline, |l| a.attempt(req, meta, l)).await,
            Sender::Fcm(f) => self.native(req, deadline, |l| f.attempt(req, meta, l)).await,
            Sender::WebPush(w) => self.native(req, deadline, |l| w.attempt(req, meta, l)).await,
        };
        telemetry::latency(&req.provider, started.elapsed());
        result
    }

    async fn native<F, Fut>(
        &self,
        req: &PushRequest,
        deadline: tokio::time::Instant,
        attempt: F,
    ) -> Result<(), PushError>
    where
        F: FnMut(Duration) -> Fut,
        Fut: std::future::Future<Output = retry::Attempt>,
    {
        let out = retry::deliver(deadline, attempt).await;
        match out.result {
            Ok(()) => {
                tracing::debug!(push = req.id.0, provider = %req.provider, attempts = out.attempts, outcome = out.reason, "push delivered")
            }
            Err(e) => {
                telemetry::failure(&req.provider, out.reason);
                tracing::warn!(
                    push = req.id.0, provider = %req.provider, binding = %req.binding, attempts = out.attempts,
                    reason = out.reason, dead = e == PushError::Rejected, "push not delivered"
                );
            }
        }
        out.result
    }
}

/// One webhook / exec attempt, ended at the push's deadline.
async fn one_attempt(
    req: &PushRequest,
    left: Duration,
    fut: impl std::future::Future<Output = Result<(), PushError>>,
) -> Result<(), PushError> {
    match tokio::time::timeout(left, fut).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!(push = req.id.0, provider = %req.provider, "push deadline reached while sending");
            Err(PushError::Failed)
        }
    }
}
