//! The HTTP/2 transport of the native senders: kept-alive HTTP/2
//! connections, one by default, used in turn ([`Pool`]: one HTTP/2
//! connection carries at most the provider's stream limit — about 1,000 at
//! Apple — so at 50 ms per round trip one connection caps a sender near
//! 20,000 pushes/s; more cost CPU per push on a fast link, as
//! `bench/push_senders.sh` shows), one request/answer exchange that reads at most
//! [`BODY_LIMIT`] bytes of the answer ([`exchange`]), and the reading of
//! `Retry-After`. Nothing provider-specific lives here.

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Certificate, Client, Identity, RequestBuilder, StatusCode};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How many bytes of an answer body are read at most (error bodies are
/// small JSON documents; anything longer is cut).
pub const BODY_LIMIT: usize = 4096;

/// Transport settings common to every native sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpOptions {
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// One request's timeout (capped by the push's deadline).
    pub request_timeout: Duration,
    /// A PEM file of CAs to trust instead of the built-in roots (private
    /// gateways, tests).
    pub ca_file: Option<std::path::PathBuf>,
    /// HTTP/2 connections to the provider, used in turn (1..=16).
    pub connections: usize,
}

/// Default number of connections per native sender.
pub const DEFAULT_CONNECTIONS: usize = 1;

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            ca_file: None,
            connections: DEFAULT_CONNECTIONS,
        }
    }
}

/// `connections` clients (each holds one HTTP/2 connection to a host),
/// taken in turn. Auth tokens live in the sender, shared by all of them.
#[derive(Debug)]
pub struct Pool {
    clients: Vec<Client>,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(opts: &HttpOptions, identity: Option<Identity>) -> Result<Pool, String> {
        if !(1..=16).contains(&opts.connections) {
            return Err(format!("connections = {} is out of range; allowed 1..=16", opts.connections));
        }
        let clients = (0..opts.connections).map(|_| client(opts, identity.clone())).collect::<Result<Vec<_>, _>>()?;
        Ok(Pool { clients, next: AtomicUsize::new(0) })
    }

    /// The next client in turn.
    pub fn get(&self) -> &Client {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        &self.clients[i]
    }
}

/// One client: its own connection pool, HTTP/2 by ALPN with keep-alive
/// PINGs, no redirects, timeouts from `opts`; `identity` for TLS client
/// authentication (APNs certificates).
pub fn client(opts: &HttpOptions, identity: Option<Identity>) -> Result<Client, String> {
    let mut b = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sipwake-push/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.request_timeout)
        .pool_idle_timeout(Duration::from_secs(600))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(10))
        .http2_keep_alive_while_idle(true)
        .tcp_nodelay(true);
    if let Some(path) = &opts.ca_file {
        b = b.tls_certs_only(read_ca(path)?);
    }
    if let Some(id) = identity {
        b = b.identity(id);
    }
    b.build().map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// The certificates of a PEM CA file.
fn read_ca(path: &Path) -> Result<Vec<Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
    let certs = Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("ca_file {} is not a PEM certificate bundle: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("ca_file {} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// An answer: status, headers, at most [`BODY_LIMIT`] bytes of body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// `Retry-After` in seconds (an HTTP date is ignored: the caller backs off).
    pub fn retry_after(&self) -> Option<Duration> {
        let v = self.headers.get(RETRY_AFTER)?.to_str().ok()?;
        v.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s.min(3600)))
    }
}

/// Sends the request; reads the status, headers and the start of the body.
pub async fn exchange(rb: RequestBuilder) -> Result<Answer, reqwest::Error> {
    let mut resp = rb.send().await?;
    let status = resp.status();
    let headers = std::mem::take(resp.headers_mut());
    let mut body = Vec::new();
    while body.len() < BODY_LIMIT {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c[..c.len().min(BODY_LIMIT - body.len())]),
            // Read errors after the status line don't change the outcome.
            Ok(None) | Err(_) => break,
        }
    }
    Ok(Answer { status, headers, body })
}

/// An HTTP status as a bounded failure label (`http_404`, `http_5xx`…),
/// for answers that carry no documented reason.
pub fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "http_400",
        401 => "http_401",
        403 => "http_403",
        404 => "http_404",
        410 => "http_410",
        413 => "http_413",
        429 => "http_429",
        500..=599 => "http_5xx",
        _ => "http_other",
    }
}

/// A transport error as a short failure reason (`timeout`, `connect`, `request`).
pub fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "request"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_takes_its_clients_in_turn_and_checks_its_size() {
        let p = Pool::new(&HttpOptions { connections: 3, ..HttpOptions::default() }, None).unwrap();
        let a: Vec<*const Client> = (0..6).map(|_| p.get() as *const Client).collect();
        assert_eq!(a[0], a[3]);
        assert!(a[0] != a[1] && a[1] != a[2] && a[0] != a[2]);
        assert!(Pool::new(&HttpOptions { connections: 0, ..HttpOptions::default() }, None).is_err());
    }
}
