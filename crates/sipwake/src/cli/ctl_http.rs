//! `sipwake ctl`'s HTTP side: one call to the management API, and what a
//! failure means for the operator: a one-line message (the API's JSON
//! `error` text and the status) and the exit code (1 not found, 2 usage or
//! configuration error, 3 server unreachable or server error).
//!
//! Owns no printing of results and no argument parsing.

use std::fmt;

/// Why a `ctl` command failed; decides the exit code.
#[derive(Debug)]
pub enum Fail {
    /// The AoR, binding or user does not exist (exit 1).
    NotFound(String),
    /// Bad arguments or configuration, refused by the API as such, or a wrong token (exit 2).
    Usage(String),
    /// The server cannot be reached, failed, or a push it sent failed (exit 3).
    Server(String),
}

impl Fail {
    pub fn exit_code(&self) -> u8 {
        match self {
            Fail::NotFound(_) => 1,
            Fail::Usage(_) => 2,
            Fail::Server(_) => 3,
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::NotFound(m) | Fail::Usage(m) | Fail::Server(m) => f.write_str(m),
        }
    }
}

/// A client of one management API.
pub struct Api {
    client: reqwest::blocking::Client,
    base: String,
    token: Option<String>,
}

/// The error chain of a request that got no answer, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

/// The message of an error answer: its JSON `error` text, else its body
/// (first line), else the status's name.
pub fn error_message(status: reqwest::StatusCode, body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
    let text = from_json
        .or_else(|| body.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_owned))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    format!("{text} ({})", status.as_u16())
}

/// The failure an error status stands for.
pub fn classify(status: reqwest::StatusCode, body: &str) -> Fail {
    let msg = error_message(status, body);
    if status == reqwest::StatusCode::NOT_FOUND {
        Fail::NotFound(msg)
    } else if status == reqwest::StatusCode::UNAUTHORIZED {
        Fail::Usage(format!("{msg}; give the token with --token, $SIPWAKE_TOKEN or management.token"))
    } else if status.is_client_error() {
        Fail::Usage(msg)
    } else {
        Fail::Server(msg)
    }
}

impl Api {
    pub fn new(base: String, token: Option<String>) -> Result<Api, Fail> {
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| Fail::Usage(chain(&e)))?;
        Ok(Api { client, base: base.trim_end_matches('/').to_string(), token })
    }

    /// One call; `ok_too` lists error statuses whose body the caller reads
    /// (e.g. 502 of a test push that failed).
    pub fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        ok_too: &[u16],
    ) -> Result<(u16, String), Fail> {
        let mut rq = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            rq = rq.bearer_auth(t);
        }
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let resp = rq
            .send()
            .map_err(|e| Fail::Server(format!("cannot reach the management API at {}: {}", self.base, chain(&e))))?;
        let status = resp.status();
        let text = resp.text().map_err(|e| Fail::Server(format!("reading the answer: {}", chain(&e))))?;
        if status.is_success() || ok_too.contains(&status.as_u16()) {
            return Ok((status.as_u16(), text));
        }
        Err(classify(status, &text))
    }

    /// A GET/DELETE/… whose answer must be a success.
    pub fn ok(&self, method: reqwest::Method, path: &str) -> Result<String, Fail> {
        self.call(method, path, None, &[]).map(|(_, b)| b)
    }
}

/// Decodes an answer (a mismatch is the server's fault: exit 3).
pub fn decode<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, Fail> {
    serde_json::from_str(body).map_err(|e| Fail::Server(format!("unexpected answer from the server: {e}")))
}

/// Percent-encodes what a path segment must not carry raw.
pub fn enc(s: &str) -> String {
    s.replace('%', "%25").replace('/', "%2F").replace('?', "%3F").replace('#', "%23").replace(' ', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn errors_are_one_line_with_their_status() {
        let f = classify(StatusCode::NOT_FOUND, r#"{"error":"no AoR x@y"}"#);
        assert_eq!((f.to_string().as_str(), f.exit_code()), ("no AoR x@y (404)", 1));
        let f = classify(StatusCode::BAD_REQUEST, r#"{"error":"bad"}"#);
        assert_eq!(f.exit_code(), 2);
        let f = classify(StatusCode::INTERNAL_SERVER_ERROR, "");
        assert_eq!((f.to_string().as_str(), f.exit_code()), ("Internal Server Error (500)", 3));
        let f = classify(StatusCode::SERVICE_UNAVAILABLE, "unhealthy: store\nmore\n");
        assert_eq!(f.to_string(), "unhealthy: store (503)");
    }
}
