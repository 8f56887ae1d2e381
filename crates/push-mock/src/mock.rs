//! [`Mock`]: one running service on a real TCP port of 127.0.0.1, its
//! public controls (what it saw, scripted behaviour, stop/restart), and
//! [`MockPort`], the port reservation that lets key material name the
//! mock's URL before the mock starts.

use crate::app::{App, Handler};
use crate::keys::{Subscription, TestPki};
use crate::seen::Seen;
use crate::state::Fail;
use crate::{apns, fcm, server, webpush};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::AbortHandle;
use tokio_rustls::TlsAcceptor;

/// Which provider API a [`Mock`] speaks, with what it verifies against.
#[derive(Clone, Debug)]
pub enum Service {
    /// Apple APNs (`POST /3/device/<token>`).
    Apns {
        /// Expected JWT `iss`.
        team_id: String,
        /// Expected JWT `kid`.
        key_id: String,
        /// The `.p8` key's public half (SPKI PEM).
        key_public_pem: String,
        /// Certificate auth: TLS requires a client certificate from the
        /// test CA, and the `authorization` header is not required.
        require_client_cert: bool,
    },
    /// Google FCM HTTP v1 (`POST /v1/projects/<id>/messages:send`) and
    /// the OAuth2 token endpoint (`POST /token`).
    Fcm {
        /// The project the sends must address.
        project_id: String,
        /// Expected JWT `iss` at the token endpoint.
        client_email: String,
        /// The service account's public key (SPKI PEM).
        sa_public_pem: String,
    },
    /// WebPush (RFC 8030 / 8292 / 8291), `POST /push/<anything>`.
    WebPush {
        /// `None`: accept unauthenticated pushes; `Some`: require VAPID
        /// with this key (base64url uncompressed point).
        vapid_public_b64url: Option<String>,
        /// Subscriptions by path (`/push/abc`), used to decrypt bodies.
        subscriptions: Vec<(String, Subscription)>,
    },
}

/// A bound, not yet serving, port on 127.0.0.1 (chosen by binding port 0).
#[derive(Debug)]
pub struct MockPort {
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

impl MockPort {
    /// Binds a free port on 127.0.0.1.
    pub fn reserve() -> MockPort {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("push-mock: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("push-mock: local address");
        MockPort { listener, addr }
    }

    /// The reserved address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// `https://127.0.0.1:PORT/token`: the FCM mock's OAuth2 token endpoint.
    pub fn token_uri(&self) -> String {
        format!("{}/token", self.base_url())
    }
}

/// A running mock service.
pub struct Mock {
    /// Where it listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    app: Arc<App>,
    acceptor: TlsAcceptor,
    runtime: tokio::runtime::Handle,
    task: Mutex<Option<AbortHandle>>,
}

impl std::fmt::Debug for Mock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mock").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Mock {
    /// Starts `service` on a free port of 127.0.0.1, on the current tokio
    /// runtime.
    pub async fn start(pki: &TestPki, service: Service) -> Mock {
        Mock::start_on(MockPort::reserve(), pki, service).await
    }

    /// Starts `service` on a port reserved beforehand (when key material,
    /// e.g. the service account's `token_uri`, must name the URL first).
    pub async fn start_on(port: MockPort, pki: &TestPki, service: Service) -> Mock {
        let addr = port.addr;
        let base_url = port.base_url();
        let require_client_cert = matches!(service, Service::Apns { require_client_cert: true, .. });
        let handler: Box<dyn Handler> = match service {
            Service::Apns { team_id, key_id, key_public_pem, require_client_cert } => {
                Box::new(apns::Apns::new(team_id, key_id, &key_public_pem, require_client_cert))
            }
            Service::Fcm { project_id, client_email, sa_public_pem } => {
                Box::new(fcm::Fcm::new(project_id, client_email, &sa_public_pem, port.token_uri()))
            }
            Service::WebPush { vapid_public_b64url, subscriptions } => {
                Box::new(webpush::WebPush::new(vapid_public_b64url, subscriptions, base_url.clone()))
            }
        };
        let app = Arc::new(App::new(handler, base_url));
        let acceptor = TlsAcceptor::from(Arc::new(pki.server_config(require_client_cert)));
        port.listener.set_nonblocking(true).expect("push-mock: non-blocking listener");
        let listener = tokio::net::TcpListener::from_std(port.listener).expect("push-mock: tokio listener");
        let task = server::spawn(listener, acceptor.clone(), Arc::clone(&app));
        Mock { addr, app, acceptor, runtime: tokio::runtime::Handle::current(), task: Mutex::new(Some(task)) }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// `https://127.0.0.1:PORT/token` (FCM's OAuth2 token endpoint).
    pub fn token_uri(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// Every request kept, in arrival order (all of them unless
    /// [`Mock::set_record_all`] turned that off).
    pub fn requests(&self) -> Vec<Seen> {
        self.app.lock().requests.clone()
    }

    /// The push requests kept (everything but the token endpoint).
    pub fn push_requests(&self) -> Vec<Seen> {
        self.requests().into_iter().filter(|s| s.path != "/token").collect()
    }

    /// The FCM OAuth2 token-endpoint requests kept.
    pub fn token_requests(&self) -> Vec<Seen> {
        self.requests().into_iter().filter(|s| s.path == "/token").collect()
    }

    /// Push requests received (counted even when not kept).
    pub fn count(&self) -> usize {
        self.app.lock().push_count
    }

    /// Token-endpoint requests received.
    pub fn token_count(&self) -> usize {
        self.app.lock().token_count
    }

    /// Requests received that had at least one problem.
    pub fn problem_count(&self) -> usize {
        self.app.lock().problem_count
    }

    /// Every problem of the kept requests, prefixed with the request path.
    pub fn problems(&self) -> Vec<String> {
        self.requests().iter().flat_map(|s| s.problems.iter().map(move |p| format!("{}: {p}", s.path))).collect()
    }

    /// TLS handshakes that failed (e.g. a client without a certificate
    /// when one is required).
    pub fn tls_failures(&self) -> usize {
        self.app.lock().tls_failures
    }

    /// Waits until at least `n` push requests have been received; false
    /// if `timeout` passed first.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.app.pushes.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.count() >= n;
            }
        }
    }

    /// Answers pushes to this device token (APNs, FCM) or subscription
    /// path or URL (WebPush) as gone: APNs 410 `Unregistered`, FCM 404
    /// `UNREGISTERED`, WebPush 410.
    pub fn dead_token(&self, token_or_path: &str) {
        self.app.lock().dead.insert(key_of(token_or_path));
    }

    /// Answers pushes to this device token as malformed: APNs 400
    /// `BadDeviceToken`, FCM 400 `INVALID_ARGUMENT`.
    pub fn bad_token(&self, token: &str) {
        self.app.lock().bad.insert(key_of(token));
    }

    /// Answers the next `n` push requests with `status` and the provider's
    /// error body for it, with `Retry-After: <secs>` when given.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u32>) {
        self.app.lock().fail = (n > 0).then_some(Fail { remaining: n, status, retry_after });
    }

    /// While on, requests are received and recorded but not answered.
    pub fn stall(&self, on: bool) {
        self.app.stall.send_replace(on);
    }

    /// FCM: the `expires_in` (seconds) of access tokens issued from now on.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.app.lock().token_lifetime = secs;
    }

    /// APNs: the least time between two new provider tokens before the
    /// mock answers 429 `TooManyProviderTokenUpdates` (Apple: 20 min).
    pub fn set_token_refresh_min(&self, min: Duration) {
        self.app.lock().apns_refresh_min = min;
    }

    /// Keep every request (the default) or, when false, only those with
    /// problems and the token-endpoint hits (light mode, for benchmarks).
    pub fn set_record_all(&self, all: bool) {
        self.app.lock().record_all = all;
    }

    /// Forgets the requests kept (counters stay).
    pub fn clear(&self) {
        self.app.lock().requests.clear();
    }

    /// Stops listening and drops every open connection: new connections
    /// are refused until [`Mock::restart`].
    pub fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            task.abort();
        }
    }

    /// Listens again on the same port (state and script are kept).
    pub fn restart(&self) -> std::io::Result<()> {
        self.stop();
        let _runtime = self.runtime.enter();
        let listener = server::bind(self.addr)?;
        let task = server::spawn(listener, self.acceptor.clone(), Arc::clone(&self.app));
        *self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
        Ok(())
    }

    /// True while listening.
    pub fn is_running(&self) -> bool {
        self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The key a token or WebPush subscription is scripted under: a URL is
/// reduced to its path.
fn key_of(token_or_url: &str) -> String {
    match token_or_url.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| rest[i..].to_owned()).unwrap_or_else(|| "/".to_owned()),
        None => token_or_url.to_owned(),
    }
}
