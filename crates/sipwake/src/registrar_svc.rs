//! The registrar service of the server: authenticates REGISTERs, runs the
//! sans-IO registrar, and makes every change durable before the 200 OK
//! leaves (the store's group commit calls back, and the callback sends).
//! It also expires bindings on a timer, forgets flows of closed
//! connections, and keeps the subscriber cache in step with the database
//! (the `sipwake user` CLI writes it from another process).
//!
//! Owns the locking around the registrar and the auth state. It must not
//! parse or route anything itself: the core hands it validated requests and
//! the address to answer.

use crate::config::{Config, MaxContactsPolicyName};
use crate::metrics;
use crate::store_map;
use anyhow::Context;
use location_store::{SqliteOptions, SqliteStore, Store, Subscriber};
use sip_auth::{AuthConfig, AuthOutcome, Authenticator, Which};
use sip_msg::{HeaderName, Message};
use sip_registrar::{Aor, Flow, FlowTransport, MaxContactsPolicy, RegisterInput, Registrar, RegistrarConfig, Reply};
use sip_transport::{Source, Target, Transport, Transports};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Unix time in ms.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub struct RegistrarService {
    pub registrar: Mutex<Registrar>,
    pub store: Arc<dyn Store>,
    auth: Option<Authenticator>,
    users: UserCache,
    transports: Transports,
    /// RFC 8599 push support (when `push.enable`).
    pub push: Option<Arc<crate::push_svc::PushService>>,
}

impl RegistrarService {
    /// Opens the store, loads the bindings (dropping expired ones) and
    /// prepares authentication.
    pub fn open(config: &Config, transports: Transports) -> anyhow::Result<RegistrarService> {
        let path = config.data_dir.join("sipwake.db");
        let opts = SqliteOptions { synchronous_full: config.store.synchronous == "full", ..SqliteOptions::default() };
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&path, opts).with_context(|| format!("cannot open the store {}", path.display()))?,
        );
        let mut domains: Vec<String> = config.registrar.domains.iter().map(|d| d.to_ascii_lowercase()).collect();
        if config.registrar.serve_listen_addresses {
            for (_, addr) in transports.local_addrs() {
                for ip in served_ips(addr) {
                    if !domains.contains(&ip) {
                        domains.push(ip);
                    }
                }
            }
        }
        let r = &config.registrar;
        let rcfg = RegistrarConfig {
            domains,
            default_expires: r.default_expires,
            min_expires: r.min_expires,
            max_expires: r.max_expires,
            max_contacts: r.max_contacts,
            max_contacts_policy: match r.max_contacts_policy {
                MaxContactsPolicyName::Reject => MaxContactsPolicy::Reject,
                MaxContactsPolicyName::ReplaceOldest => MaxContactsPolicy::ReplaceOldest,
            },
            ..RegistrarConfig::default()
        };
        tracing::info!(domains = ?rcfg.domains, "registrar domains");
        let mut registrar = Registrar::new(rcfg, rand::random());
        let rows = store.load_bindings().context("cannot load bindings from the store")?;
        let now = now_ms();
        let total = rows.len();
        let mut bindings = Vec::with_capacity(total);
        let mut dead = Vec::new();
        for row in rows {
            let id = row.id.clone();
            if row.expires_at_ms <= now {
                dead.push(location_store::Change::Remove { id });
                continue;
            }
            match store_map::from_row(row) {
                Ok(b) => bindings.push(b),
                Err(e) => {
                    tracing::warn!(binding = %id, error = %e, "dropping an unreadable stored binding");
                    dead.push(location_store::Change::Remove { id });
                }
            }
        }
        let kept = registrar.restore(bindings, now);
        tracing::info!(loaded = kept, dropped = dead.len(), "bindings restored from the store");
        if !dead.is_empty() {
            store.submit(dead, Box::new(|_| {}));
        }
        let auth = if config.auth.enabled {
            let mut acfg = AuthConfig::new(AuthConfig::random_secret());
            acfg.nonce_ttl = Duration::from_secs(config.auth.nonce_ttl_secs);
            acfg.algorithms = config.auth.algorithms.iter().filter_map(|a| sip_auth::Algorithm::from_name(a)).collect();
            Some(Authenticator::new(acfg))
        } else {
            tracing::warn!("auth.enabled = false: anyone can register any AoR of the served domains");
            None
        };
        let users = UserCache::new(store.clone());
        metrics::bindings(registrar.location.len());
        let push = if config.push.enable {
            let p = crate::push_svc::PushService::new(&config.push)?;
            // The refresh schedule survives a restart: rebuilt from the stored bindings.
            let restored = p.restore(registrar.location.aors().flat_map(|(_, bs)| bs.iter()), now);
            tracing::info!(restored, "push bindings scheduled for refresh");
            Some(Arc::new(p))
        } else {
            None
        };
        Ok(RegistrarService { registrar: Mutex::new(registrar), store, auth, users, transports, push })
    }

    /// Handles one validated REGISTER from `src`; the answer goes to `target`.
    /// `build` makes a response with the core's conventions (To tag, Server
    /// header); `after` runs once the answer is sent (after the commit for a
    /// 200): the core then forks requests parked for the device (RFC 8599), so
    /// a woken phone sees its 200 OK before the INVITE.
    pub fn handle<F, A>(&self, req: &Message, src: &Source, target: Target, build: F, after: A)
    where
        F: Fn(&Message, u16, Option<&str>, &[(HeaderName, String)]) -> Message,
        A: FnOnce() + Send + 'static,
    {
        let started = Instant::now();
        let now = now_ms();
        let mut auth_user: Option<(String, String)> = None;
        if let Some(auth) = &self.auth {
            let realm = realm_of(req);
            let outcome =
                auth.check(req, &realm, Which::Authorization, now, |user, realm, alg| self.users.ha1(user, realm, alg));
            match outcome {
                AuthOutcome::Authenticated { username } => auth_user = Some((username, realm)),
                // A retransmission of a REGISTER already processed (its 200 was lost
                // or late): the nonce-count was used, but the password was right
                // (stale) and the registrar holds the state this very request wrote.
                // Answer it like the original, not with a challenge.
                AuthOutcome::Challenge { stale: true, reason }
                    if reason == sip_auth::reason::REPLAYED_NONCE && self.already_processed(req, now) =>
                {
                    let user = req
                        .headers
                        .get_all(&HeaderName::Authorization)
                        .filter_map(|v| sip_auth::parse_credentials(v).ok().flatten())
                        .find(|c| c.realm == realm)
                        .map(|c| c.username)
                        .unwrap_or_default();
                    auth_user = Some((user, realm));
                }
                AuthOutcome::Challenge { stale, reason } => {
                    if reason != sip_auth::reason::NO_CREDENTIALS {
                        metrics::auth_failure(reason);
                        tracing::debug!(reason, remote = %src.remote, "REGISTER authentication failed");
                    }
                    let headers: Vec<(HeaderName, String)> = auth
                        .challenge(&realm, now, stale)
                        .into_iter()
                        .map(|c| (HeaderName::WwwAuthenticate, c))
                        .collect();
                    metrics::registration("challenged");
                    self.send(&target, build(req, 401, None, &headers));
                    metrics::request_latency("REGISTER", started.elapsed());
                    after();
                    return;
                }
            }
        }
        let flow = Flow {
            transport: match src.transport {
                Transport::Udp => FlowTransport::Udp,
                Transport::Tcp => FlowTransport::Tcp,
            },
            remote: src.remote,
            local: src.local,
            conn: src.conn,
        };
        // RFC 8599: classify the Contacts; 555 / 423 come before any change.
        // (The registrar lock must not be held across the match: the arms take it.)
        let default_expires = self.registrar.lock().expect("registrar").config.default_expires;
        let classes = match &self.push {
            Some(p) => match p.precheck(req, default_expires) {
                crate::push_svc::Precheck::Reject(code, headers) => {
                    metrics::registration("rejected");
                    self.send(&target, build(req, code, None, &headers));
                    for id in self.bindings_named_by(req) {
                        p.register_failed(&id, code);
                    }
                    after();
                    return;
                }
                crate::push_svc::Precheck::Go(c) => c,
            },
            None => Vec::new(),
        };
        let outcome = {
            let mut reg = self.registrar.lock().expect("registrar");
            let o = reg.register(RegisterInput {
                req,
                flow,
                now_ms: now,
                auth_user: auth_user.as_ref().map(|(u, d)| (u.as_str(), d.as_str())),
            });
            metrics::bindings(reg.location.len());
            o
        };
        let Reply { code, reason, mut headers } = outcome.reply;
        if code == 200
            && let Some(p) = &self.push
        {
            for fc in p.registered(&classes, &outcome.changes, now) {
                headers.push((HeaderName::FeatureCaps, fc));
            }
        }
        let resp = build(req, code, reason, &headers);
        metrics::registration(if code == 200 { "ok" } else { "rejected" });
        if code != 200 {
            self.send(&target, resp);
            metrics::request_latency("REGISTER", started.elapsed());
            // R36: a waking device's REGISTER that failed (not a challenge) ends
            // the requests parked for it at once.
            if let Some(p) = &self.push {
                for id in self.bindings_named_by(req) {
                    p.register_failed(&id, code);
                }
            }
            after();
            return;
        }
        // Every 200 goes through the store queue, so it leaves only once this
        // change — and every change before it — is durable.
        let changes: Vec<location_store::Change> = outcome.changes.iter().map(store_map::to_store).collect();
        let transports = self.transports.clone();
        self.store.submit(
            changes,
            Box::new(move |res| {
                let msg = match res {
                    Ok(()) => resp,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot persist a registration; answering 500");
                        store_failure(resp)
                    }
                };
                if let Err(e) = transports.send(&target, msg.to_bytes()) {
                    tracing::debug!(error = %e, "cannot send a REGISTER response");
                }
                metrics::request_latency("REGISTER", started.elapsed());
                after();
            }),
        );
    }

    /// The existing bindings a REGISTER's Contacts refer to (same instance, or same URI).
    fn bindings_named_by(&self, req: &Message) -> Vec<String> {
        let Some(aor) = req.to().ok().and_then(|t| t.uri.as_sip().map(Aor::from_uri)) else { return Vec::new() };
        let reg = self.registrar.lock().expect("registrar");
        let existing = reg.location.get(&aor);
        let mut out = Vec::new();
        for c in req.contacts().unwrap_or_default() {
            let sip_msg::Contact::Addr(na) = c else { continue };
            let inst = na
                .params
                .value("+sip.instance")
                .map(|v| String::from_utf8_lossy(&sip_msg::params::unquote(v)).into_owned());
            for b in existing {
                let same = match (&inst, &b.instance) {
                    (Some(i), Some(bi)) => i == bi,
                    _ => b.uri.to_string() == na.uri.to_string(),
                };
                if same && !out.contains(&b.id) {
                    out.push(b.id.clone());
                }
            }
        }
        out
    }

    /// Whether this REGISTER (its Call-ID and CSeq) already wrote its AoR's state.
    fn already_processed(&self, req: &Message, now: u64) -> bool {
        let (Some(call_id), Ok(cseq), Ok(to)) = (req.call_id(), req.cseq(), req.to()) else { return false };
        let Some(uri) = to.uri.as_sip() else { return false };
        let aor = Aor::from_uri(uri);
        self.registrar.lock().expect("registrar").location.processed(&aor, call_id, cseq.seq, now)
    }

    fn send(&self, target: &Target, msg: Message) {
        if let Err(e) = self.transports.send(target, msg.to_bytes()) {
            tracing::debug!(error = %e, "cannot send a REGISTER response");
        }
    }

    /// Whether digest authentication is on.
    pub fn auth_enabled(&self) -> bool {
        self.auth.is_some()
    }

    /// Checks credentials (Authorization or Proxy-Authorization) against the
    /// subscribers; `None` when authentication is off.
    pub fn authenticate(&self, req: &Message, realm: &str, which: Which) -> Option<AuthOutcome> {
        let auth = self.auth.as_ref()?;
        let out = auth.check(req, realm, which, now_ms(), |user, realm, alg| self.users.ha1(user, realm, alg));
        if let AuthOutcome::Challenge { reason, .. } = &out
            && *reason != sip_auth::reason::NO_CREDENTIALS
        {
            metrics::auth_failure(reason);
        }
        Some(out)
    }

    /// Challenge header values (WWW-/Proxy-Authenticate) for a realm.
    pub fn challenge(&self, realm: &str, which: Which, stale: bool) -> Vec<(HeaderName, String)> {
        self.auth
            .as_ref()
            .map(|a| a.challenge(realm, now_ms(), stale).into_iter().map(|c| (which.challenge_header(), c)).collect())
            .unwrap_or_default()
    }

    /// Whether `user@domain` is a provisioned subscriber.
    pub fn subscriber_exists(&self, user: &str, domain: &str) -> bool {
        self.users.exists(user, domain)
    }

    /// The served domains.
    pub fn domains(&self) -> Vec<String> {
        self.registrar.lock().expect("registrar").config.domains.clone()
    }

    /// One binding, as it is now.
    pub fn binding(&self, aor: &Aor, id: &str) -> Option<sip_registrar::Binding> {
        self.registrar.lock().expect("registrar").location.binding(aor, id).cloned()
    }

    /// Live bindings of an AoR.
    pub fn lookup(&self, aor: &Aor) -> Vec<sip_registrar::Binding> {
        let now = now_ms();
        self.registrar.lock().expect("registrar").location.lookup(aor, now).cloned().collect()
    }

    /// Removes expired bindings (called by the timer task).
    pub fn expire(&self) {
        let changes = {
            let mut reg = self.registrar.lock().expect("registrar");
            let c = reg.expire(now_ms());
            metrics::bindings(reg.location.len());
            c
        };
        if let Some(p) = &self.push {
            p.removed(&changes);
        }
        if !changes.is_empty() {
            tracing::debug!(count = changes.len(), "bindings expired");
            self.store.submit(changes.iter().map(store_map::to_store).collect(), Box::new(|_| {}));
        }
    }

    /// A connection closed: see [`Registrar::conn_closed`].
    pub fn conn_closed(&self, conn: u64) {
        let changes = {
            let mut reg = self.registrar.lock().expect("registrar");
            let c = reg.conn_closed(conn, now_ms());
            metrics::bindings(reg.location.len());
            c
        };
        if let Some(p) = &self.push {
            p.removed(&changes);
        }
        if !changes.is_empty() {
            self.store.submit(changes.iter().map(store_map::to_store).collect(), Box::new(|_| {}));
        }
    }

    /// Removes one binding or a whole AoR (management API); returns how many went.
    pub fn remove(&self, aor: &Aor, id: Option<&str>) -> usize {
        let now = now_ms();
        let changes = {
            let mut reg = self.registrar.lock().expect("registrar");
            let c: Vec<_> = match id {
                Some(id) => reg.remove_binding(aor, id, now).into_iter().collect(),
                None => reg.remove_aor(aor, now),
            };
            metrics::bindings(reg.location.len());
            c
        };
        if let Some(p) = &self.push {
            p.removed(&changes);
        }
        let n = changes.len();
        if n > 0 {
            let (tx, rx) = std::sync::mpsc::channel();
            self.store.submit(
                changes.iter().map(store_map::to_store).collect(),
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
        n
    }

    /// Waits until everything submitted is durable.
    pub fn flush(&self) {
        self.store.flush();
    }
}

/// The 500 sent instead of a 200 when the store failed: the same response
/// with another status, no bindings, and Retry-After (built only on failure).
fn store_failure(mut resp: Message) -> Message {
    resp.start = sip_msg::StartLine::Response { code: 500, reason: bytes::Bytes::from_static(b"Store Unavailable") };
    resp.headers.remove_all(&HeaderName::Contact);
    resp.headers.push(HeaderName::RetryAfter, "5");
    metrics::response(500);
    resp
}

/// The realm of a REGISTER: the domain of its To (the AoR's domain).
fn realm_of(req: &Message) -> String {
    req.to()
        .ok()
        .and_then(|t| t.uri.as_sip().map(|u| Aor::from_uri(&sip_msg::SipUri::new(u.host.clone(), None)).to_string()))
        .unwrap_or_default()
}

/// The domains a listener address stands for: its IP, or for a wildcard
/// address the loopback of its family.
fn served_ips(addr: SocketAddr) -> Vec<String> {
    let ip = addr.ip();
    if ip.is_unspecified() {
        if ip.is_ipv4() { vec!["127.0.0.1".into()] } else { vec!["[::1]".into()] }
    } else if ip.is_ipv6() {
        vec![format!("[{ip}]")]
    } else {
        vec![ip.to_string()]
    }
}

/// Subscribers in memory, reloaded when the database says they changed:
/// checked at most every 500 ms on a hit (so a changed password takes effect
/// within half a second), and on every miss (a user just added by the CLI
/// works at once). The check is one `PRAGMA data_version`; the table is
/// reloaded only when it really changed.
struct UserCache {
    store: Arc<dyn Store>,
    map: RwLock<HashMap<(String, String), Subscriber>>,
    state: Mutex<(Option<u64>, Instant)>,
}

impl UserCache {
    fn new(store: Arc<dyn Store>) -> UserCache {
        let c = UserCache {
            store,
            map: RwLock::new(HashMap::new()),
            state: Mutex::new((None, Instant::now() - Duration::from_secs(10))),
        };
        c.refresh(true);
        c
    }

    fn refresh(&self, force: bool) {
        let mut st = self.state.lock().expect("user cache");
        if !force && st.0.is_some() && st.1.elapsed() < Duration::from_millis(500) {
            return;
        }
        st.1 = Instant::now();
        let version = match self.store.subscribers_version() {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the subscribers version");
                return;
            }
        };
        if st.0 == Some(version) {
            return;
        }
        match self.store.subscribers() {
            Ok(list) => {
                let map = list.into_iter().map(|s| ((s.user.clone(), s.domain.to_ascii_lowercase()), s)).collect();
                *self.map.write().expect("user cache") = map;
                st.0 = Some(version);
            }
            Err(e) => tracing::warn!(error = %e, "cannot load subscribers"),
        }
    }

    fn exists(&self, user: &str, domain: &str) -> bool {
        self.refresh(false);
        let key = (user.to_string(), domain.to_ascii_lowercase());
        if self.map.read().expect("user cache").contains_key(&key) {
            return true;
        }
        self.refresh(true);
        self.map.read().expect("user cache").contains_key(&key)
    }

    fn ha1(&self, user: &str, realm: &str, alg: sip_auth::Algorithm) -> Option<String> {
        self.refresh(false);
        let key = (user.to_string(), realm.to_ascii_lowercase());
        let get = |m: &HashMap<(String, String), Subscriber>| {
            m.get(&key).map(|s| match alg {
                sip_auth::Algorithm::Md5 => s.ha1_md5.clone(),
                sip_auth::Algorithm::Sha256 => s.ha1_sha256.clone(),
            })
        };
        if let Some(h) = get(&self.map.read().expect("user cache")) {
            return Some(h);
        }
        self.refresh(true);
        get(&self.map.read().expect("user cache"))
    }
}
