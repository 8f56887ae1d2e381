//! Digest credentials without blocking: the subscribers the driver loaded
//! (and reloads when the database changes), a short negative cache, and
//! requests that wait for a lookup (a user added a moment ago by the CLI
//! works at once; a flood of unknown names costs one lookup per name and
//! per [`NEGATIVE_TTL`], never a query on the receive path).
//!
//! Owns the cache and the waiting requests; the checks themselves are
//! `sip-auth`'s.

use crate::io::{Lookup, Secrets};
use crate::node::Node;
use sip_auth::{Algorithm, AuthOutcome, Which};
use sip_msg::{HeaderName, Message, Source, Target};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long "no such subscriber" is believed.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(2);
/// Requests that may wait for one lookup, and for all lookups together.
const MAX_WAITING_PER_KEY: usize = 16;
const MAX_WAITING: usize = 10_000;
/// Lookups in flight at most: beyond, the cache (reloaded whenever the
/// subscribers change) is taken as the whole truth, so a flood of unknown
/// names costs no more than this many queries at a time.
pub const MAX_LOOKUPS: usize = 64;

/// The result of checking a request's credentials.
pub(crate) enum Creds {
    /// Its user is not known yet: the request waits for a lookup.
    Wait,
    Outcome(AuthOutcome),
}

#[derive(Default)]
pub(crate) struct Credentials {
    /// (user, lower-case domain) → secrets, or "none" until the instant given.
    map: HashMap<(String, String), Result<Secrets, Instant>>,
    /// Requests waiting for a lookup, by the lookup.
    waiting: HashMap<Lookup, Vec<(Source, Message, Target)>>,
    waiting_total: usize,
    /// The lookup the last `authenticate` call wanted.
    want: Option<Lookup>,
}

impl Credentials {
    /// Whether `user@domain` is a subscriber: `None` when the cache cannot
    /// tell now (a lookup is needed).
    pub(crate) fn exists(&self, user: &str, domain: &str, now: Instant) -> Option<bool> {
        match self.map.get(&(user.to_string(), domain.to_ascii_lowercase())) {
            Some(Ok(_)) => Some(true),
            Some(Err(until)) if *until > now => Some(false),
            _ => None,
        }
    }

    /// Asks for a lookup of `user@domain` (the request then waits); `false`
    /// when too many lookups are in flight (the cache's answer stands).
    pub(crate) fn want(&mut self, user: &str, domain: &str) -> bool {
        let l = Lookup { user: user.to_string(), domain: domain.to_ascii_lowercase() };
        if self.waiting.len() >= MAX_LOOKUPS && !self.waiting.contains_key(&l) {
            return false;
        }
        self.want = Some(l);
        true
    }

    fn ha1(&self, user: &str, realm: &str, alg: Algorithm) -> Option<String> {
        match self.map.get(&(user.to_string(), realm.to_ascii_lowercase()))? {
            Ok(s) => Some(match alg {
                Algorithm::Md5 => s.ha1_md5.clone(),
                Algorithm::Sha256 => s.ha1_sha256.clone(),
            }),
            Err(_) => None,
        }
    }

    /// Whether the cache can answer for this user now.
    fn known(&self, user: &str, realm: &str, now: Instant) -> bool {
        match self.map.get(&(user.to_string(), realm.to_ascii_lowercase())) {
            Some(Ok(_)) => true,
            Some(Err(until)) => *until > now,
            None => false,
        }
    }
}

impl Node {
    /// Checks a request's credentials (Authorization or Proxy-Authorization)
    /// for `realm`. The request must wait when its user is not in the cache.
    /// A failure (other than "no credentials yet" or a stale nonce) is
    /// logged at WARN in the format `fail2ban` matches; one that is not a
    /// stale or missing credential also counts against the source
    /// (`defence`: blocking after repeated failures).
    pub(crate) fn authenticate(
        &mut self,
        req: &Message,
        src: &Source,
        realm: &str,
        which: Which,
        now: Instant,
    ) -> Creds {
        let Some(auth) = &self.auth else {
            return Creds::Outcome(AuthOutcome::Authenticated { username: String::new() });
        };
        let user = req
            .headers
            .get_all(&which.credentials_header())
            .filter_map(|v| sip_auth::parse_credentials(v).ok().flatten())
            .find(|c| c.realm == realm)
            .map(|c| c.username);
        if let Some(user) = &user
            && !self.creds.known(user, realm, now)
            && self.creds.want(user, realm)
        {
            return Creds::Wait;
        }
        let now_ms = self.unix_ms(now);
        let creds = &self.creds;
        let out = auth.check(req, realm, which, now_ms, |user, realm, alg| creds.ha1(user, realm, alg));
        if let AuthOutcome::Challenge { reason, stale } = &out
            && *reason != sip_auth::reason::NO_CREDENTIALS
        {
            crate::metrics::auth_failure(reason);
            if !stale {
                crate::oplog::auth_failed(req, user.as_deref(), realm, src.remote, reason);
            }
            if crate::defence::counts_against_source(reason) {
                self.source_failed_auth(src, now);
            }
        }
        Creds::Outcome(out)
    }

    /// Challenge header values (WWW-/Proxy-Authenticate) for a realm.
    pub(crate) fn challenge(&self, realm: &str, which: Which, stale: bool, now: Instant) -> Vec<(HeaderName, String)> {
        let now_ms = self.unix_ms(now);
        self.auth
            .as_ref()
            .map(|a| a.challenge(realm, now_ms, stale).into_iter().map(|c| (which.challenge_header(), c)).collect())
            .unwrap_or_default()
    }

    /// Parks a request until the lookup `authenticate` asked for is answered.
    pub(crate) fn wait_for_credentials(&mut self, src: Source, msg: Message, target: Target) {
        let Some(want) = self.creds.want.take() else { return };
        if self.creds.waiting_total >= MAX_WAITING {
            tracing::warn!(remote = %src.remote, "too many requests wait for credential lookups; dropped");
            return;
        }
        let first = !self.creds.waiting.contains_key(&want);
        let list = self.creds.waiting.entry(want.clone()).or_default();
        if list.len() >= MAX_WAITING_PER_KEY {
            return; // A retransmission storm for one user: one lookup answers them.
        }
        list.push((src, msg, target));
        self.creds.waiting_total += 1;
        if first {
            self.lookups.push_back(want);
        }
    }

    /// A credential lookup finished (`None`: no such subscriber, or the lookup
    /// failed); the requests waiting for it are processed now.
    pub fn handle_credentials(&mut self, lookup: Lookup, secrets: Option<Secrets>, now: Instant) {
        let key = (lookup.user.clone(), lookup.domain.to_ascii_lowercase());
        self.creds.map.insert(key, secrets.ok_or(now + NEGATIVE_TTL));
        let waiting = self.creds.waiting.remove(&lookup).unwrap_or_default();
        self.creds.waiting_total -= waiting.len();
        for (src, msg, target) in waiting {
            self.redispatch(src, msg, target, now);
        }
        self.settle(now);
    }

    /// Replaces the subscriber cache (start-up, and whenever the database says
    /// the subscribers changed): negative entries are forgotten.
    pub fn set_subscribers(&mut self, list: impl IntoIterator<Item = (String, String, Secrets)>) {
        self.creds.map = list.into_iter().map(|(u, d, s)| ((u, d.to_ascii_lowercase()), Ok(s))).collect();
    }

    /// Subscribers in the cache.
    pub fn subscriber_count(&self) -> usize {
        self.creds.map.values().filter(|v| v.is_ok()).count()
    }
}
