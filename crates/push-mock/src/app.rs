//! The request path shared by the three services: read the request,
//! hand it to the service's [`Handler`], apply the scripted failures,
//! record it, hold the answer while stalled, answer. Also the
//! `GET /_mock/stats` counters endpoint (for benchmarks).

use crate::reply::Reply;
use crate::seen::{Outcome, Seen};
use crate::state::{LIGHT_KEEP, State};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HOST;
use hyper::{HeaderMap, Method, Request, Response, Version};
use std::sync::Mutex;
use tokio::sync::{Notify, watch};

/// A request as the handlers see it.
#[derive(Debug)]
pub(crate) struct Req {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub version: Version,
    /// `https://<authority the client addressed>`: the request URL's origin.
    pub origin: String,
    /// The TLS client presented a certificate (verified by rustls).
    pub client_cert: bool,
}

impl Req {
    /// Header `name` as text (absent or not text: `None`).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What a request is, for the counters and the scripted failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A push (the scripted failures apply).
    Push,
    /// An OAuth2 token-endpoint request (FCM).
    Token,
    /// Anything else (answered 404 by the services).
    Other,
}

/// One service's rules.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Which kind of request this is.
    fn classify(&self, req: &Req) -> Kind;
    /// Checks the request (recording problems in `out`) and answers it.
    fn handle(&self, state: &Mutex<State>, req: &Req, out: &mut Outcome) -> Reply;
    /// The provider's answer for a scripted failure with `status`.
    fn failure(&self, status: u16) -> Reply;
}

/// A running mock's shared core.
pub(crate) struct App {
    pub state: Mutex<State>,
    /// Woken whenever a push request has been recorded.
    pub pushes: Notify,
    /// True while answers are held back.
    pub stall: watch::Sender<bool>,
    pub handler: Box<dyn Handler>,
    pub base_url: String,
}

impl App {
    pub fn new(handler: Box<dyn Handler>, base_url: String) -> App {
        App {
            state: Mutex::new(State::default()),
            pushes: Notify::new(),
            stall: watch::Sender::new(false),
            handler,
            base_url,
        }
    }

    /// Locks the state (a poisoned lock is still usable: the state is plain data).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Serves one request.
    pub async fn serve(&self, request: Request<Incoming>, client_cert: bool) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let mut out = Outcome::default();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                out.problem(format!("reading the request body failed: {e}"));
                Bytes::new()
            }
        };
        let authority = parts
            .uri
            .authority()
            .map(|a| a.to_string())
            .or_else(|| parts.headers.get(HOST).and_then(|h| h.to_str().ok()).map(str::to_owned));
        let req = Req {
            method: parts.method,
            path: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_else(|| parts.uri.path().to_owned()),
            headers: parts.headers,
            body,
            version: parts.version,
            origin: authority.map(|a| format!("https://{a}")).unwrap_or_else(|| self.base_url.clone()),
            client_cert,
        };
        if req.method == Method::GET && req.path == "/_mock/stats" {
            return self.stats().into_response();
        }

        let kind = self.handler.classify(&req);
        let mut reply = self.handler.handle(&self.state, &req, &mut out);
        if kind == Kind::Push
            && let Some(fail) = self.lock().take_fail()
        {
            reply = self.handler.failure(fail.status);
            if let Some(secs) = fail.retry_after {
                reply = reply.with("retry-after", secs.to_string());
            }
        }
        self.record(kind, &req, out, reply.status);
        let mut stalled = self.stall.subscribe();
        if *stalled.borrow_and_update() {
            let _ = stalled.wait_for(|on| !*on).await;
        }
        reply.into_response()
    }

    fn record(&self, kind: Kind, req: &Req, out: Outcome, status: u16) {
        {
            let mut state = self.lock();
            match kind {
                Kind::Push => state.push_count += 1,
                Kind::Token => state.token_count += 1,
                Kind::Other => {}
            }
            if !out.problems.is_empty() {
                state.problem_count += 1;
            }
            let keep = state.record_all
                || ((kind == Kind::Token || !out.problems.is_empty()) && state.requests.len() < LIGHT_KEEP);
            if keep {
                state.requests.push(seen(req, out, status));
            }
        }
        self.pushes.notify_waiters();
    }

    fn stats(&self) -> Reply {
        let state = self.lock();
        Reply::json(
            200,
            &serde_json::json!({
                "pushes": state.push_count,
                "token_requests": state.token_count,
                "with_problems": state.problem_count,
                "tls_failures": state.tls_failures,
                "kept": state.requests.len(),
            }),
        )
    }
}

fn seen(req: &Req, out: Outcome, status: u16) -> Seen {
    Seen {
        method: req.method.to_string(),
        path: req.path.clone(),
        headers: req
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body: req.body.to_vec(),
        h2: req.version == Version::HTTP_2,
        version: format!("{:?}", req.version),
        jwt_claims: out.jwt_claims,
        jwt_header: out.jwt_header,
        problems: out.problems,
        decrypted: out.decrypted,
        status,
    }
}
