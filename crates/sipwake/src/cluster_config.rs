//! `[store]` and `[cluster]`: where bindings and subscribers are kept (the
//! embedded SQLite database in `server.data_dir`, or a PostgreSQL database
//! shared by a cluster of sipwake nodes) and how the nodes of a cluster
//! name themselves and watch each other, with their validation. Every
//! error names the key as written (or `SIPWAKE_STORE_URL`), the value and
//! the fix; a database password is never shown.
//!
//! Owns nothing at run time: it opens no database and binds nothing. Once
//! the listeners are bound, the server turns `[cluster]` into this node's
//! identity with [`ClusterSection::resolve`].

use serde::Deserialize;
use sip_msg::Transport;
use sip_transport::ListenSpec;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable that overrides `store.url` (so that the
/// database password can stay out of the configuration file).
pub const STORE_URL_ENV: &str = "SIPWAKE_STORE_URL";

/// A URL to copy from, in error messages.
const URL_EXAMPLE: &str = "\"postgres://sipwake:PASSWORD@db.example.com:5432/sipwake?sslmode=verify-full\"";

/// `store.backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreBackend {
    /// The embedded database, `server.data_dir/sipwake.db` (one node).
    Sqlite,
    /// A PostgreSQL database shared by the nodes of a cluster.
    Postgres,
}

/// `[store]`, validated.
#[derive(Clone)]
pub struct StoreSection {
    pub backend: StoreBackend,
    /// SQLite only: "normal" (survives a process crash) or "full" (fsync on
    /// every commit; survives power loss). PostgreSQL's durability is the
    /// database server's (`synchronous_commit`).
    pub synchronous: String,
    /// PostgreSQL only: the libpq URL, `SIPWAKE_STORE_URL` when that is set
    /// (validated: `postgres://` or `postgresql://`, a host, a known
    /// `sslmode`); "" with SQLite. Contains the password: log
    /// [`StoreSection::url_redacted`] instead.
    pub url: String,
    /// Whether `url` came from `SIPWAKE_STORE_URL`.
    pub url_from_env: bool,
    /// PostgreSQL only: reader connections (the writer has its own).
    pub pool_size: usize,
    /// PostgreSQL only: the roots the database's certificate must chain to
    /// (PEM) instead of the system store; checked by [`crate::config::Config::load`].
    pub ca_file: Option<PathBuf>,
    /// PostgreSQL only: how long connecting may take, milliseconds.
    pub connect_timeout_ms: u64,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            backend: StoreBackend::Sqlite,
            synchronous: "normal".into(),
            url: String::new(),
            url_from_env: false,
            pool_size: 4,
            ca_file: None,
            connect_timeout_ms: 5000,
        }
    }
}

impl std::fmt::Debug for StoreSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSection")
            .field("backend", &self.backend)
            .field("synchronous", &self.synchronous)
            .field("url", &self.url_redacted())
            .field("url_from_env", &self.url_from_env)
            .field("pool_size", &self.pool_size)
            .field("ca_file", &self.ca_file)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .finish()
    }
}

impl StoreSection {
    /// `url` with its password replaced by `***` (for logs and errors).
    pub fn url_redacted(&self) -> String {
        redact_url(&self.url)
    }

    /// Where `url` was given: "store.url" or "SIPWAKE_STORE_URL" (for errors).
    pub fn url_key(&self) -> &'static str {
        if self.url_from_env { STORE_URL_ENV } else { "store.url" }
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// Makes a relative `ca_file` relative to `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(p) = &mut self.ca_file
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
    }

    /// Checks that `ca_file` is a readable file holding a PEM certificate.
    pub fn check_files(&self) -> Result<(), String> {
        let Some(p) = &self.ca_file else { return Ok(()) };
        let text = std::fs::read(p).map_err(|e| {
            format!("store.ca_file = {p:?} cannot be read: {e}; give the PEM file of the CA that signs the database's certificate")
        })?;
        if !text.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(format!(
                "store.ca_file = {p:?} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the CA that signs the database's certificate"
            ));
        }
        Ok(())
    }
}

/// `[store]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StoreFile {
    backend: String,
    synchronous: String,
    url: Option<String>,
    pool_size: Option<u64>,
    ca_file: Option<PathBuf>,
    connect_timeout_ms: Option<u64>,
}

impl Default for StoreFile {
    fn default() -> Self {
        StoreFile {
            backend: "sqlite".into(),
            synchronous: "normal".into(),
            url: None,
            pool_size: None,
            ca_file: None,
            connect_timeout_ms: None,
        }
    }
}

impl std::fmt::Debug for StoreFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreFile")
            .field("backend", &self.backend)
            .field("url", &self.url.as_deref().map(redact_url))
            .finish_non_exhaustive()
    }
}

/// `[cluster]`, validated (its defaults when the backend is SQLite).
#[derive(Clone, Debug)]
pub struct ClusterSection {
    /// This node's name in the cluster, as written; "" = derived from the
    /// advertised address at start-up (`n-192-0-2-10-5060`).
    pub node_id: String,
    /// The UDP address other nodes send requests for this node's devices
    /// to; None = the first UDP listener (its bound port when it is 0).
    pub advertise: Option<SocketAddr>,
    /// How often this node says it is alive, milliseconds.
    pub heartbeat_ms: u64,
    /// A node silent this long is dead, milliseconds (more than 2 heartbeats).
    pub dead_after_ms: u64,
    /// How long after a refresh push was due the other nodes wait before
    /// sending it for a node that died, milliseconds (more than `dead_after_ms`).
    pub takeover_grace_ms: u64,
    /// Whether an initial request waits for a lookup barrier through the
    /// change feed (one database round trip) so that it never misses a
    /// binding another node committed before it arrived. Off: routed from
    /// the cache at once (the feed lags by about a millisecond).
    pub lookup_barrier: bool,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            node_id: String::new(),
            advertise: None,
            heartbeat_ms: 1000,
            dead_after_ms: 5000,
            takeover_grace_ms: 8000,
            lookup_barrier: true,
        }
    }
}

/// This node in the cluster, once the listeners are bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNode {
    /// `cluster.node_id`, or derived from `advertise`.
    pub node_id: String,
    /// Where the other nodes send requests for this node's devices (UDP).
    pub advertise: SocketAddr,
}

impl ClusterNode {
    /// The advertised address as other nodes read it: `udp:IP:PORT`.
    pub fn sip_addr(&self) -> String {
        ListenSpec { transport: Transport::Udp, addr: self.advertise }.to_string()
    }
}

impl ClusterSection {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }
    pub fn dead_after(&self) -> Duration {
        Duration::from_millis(self.dead_after_ms)
    }
    pub fn takeover_grace(&self) -> Duration {
        Duration::from_millis(self.takeover_grace_ms)
    }

    /// This node's identity from the bound listeners
    /// (`Transports::local_addrs`): `cluster.advertise` must be one of the
    /// UDP listeners (an address of a wildcard listener counts), else the
    /// first UDP listener is advertised; an empty `cluster.node_id` is
    /// derived from the advertised address. Call it at start-up, after the
    /// listeners are bound (`--listen` may have replaced `server.listen`,
    /// and port 0 is known only then).
    pub fn resolve(&self, bound: &[(Transport, SocketAddr)]) -> Result<ClusterNode, String> {
        let udp: Vec<SocketAddr> = bound.iter().filter(|(t, _)| *t == Transport::Udp).map(|(_, a)| *a).collect();
        let advertise = self.pick_advertise(&udp, "the listeners bound")?;
        let node_id = if self.node_id.is_empty() { node_id_of(advertise) } else { self.node_id.clone() };
        Ok(ClusterNode { node_id, advertise })
    }

    /// The advertised address among `udp` (the UDP listeners; a port 0
    /// there stands for the port it will be bound to).
    fn pick_advertise(&self, udp: &[SocketAddr], what: &str) -> Result<SocketAddr, String> {
        let listed = || {
            let v: Vec<String> =
                udp.iter().map(|a| ListenSpec { transport: Transport::Udp, addr: *a }.to_string()).collect();
            v.join(", ")
        };
        if udp.is_empty() {
            return Err(format!(
                "store.backend = \"postgres\" needs a udp: listener (none in {what}): the other cluster nodes send requests for this node's devices to it (cluster.advertise); add e.g. \"udp:192.0.2.10:5060\" to server.listen (or --listen)"
            ));
        }
        match self.advertise {
            Some(a) => {
                let ok = udp.iter().any(|l| {
                    l.port() == a.port()
                        && (l.ip() == a.ip() || (l.ip().is_unspecified() && l.is_ipv4() == a.is_ipv4()))
                });
                if !ok {
                    return Err(format!(
                        "cluster.advertise = \"{}\" is not a UDP listener of this server ({what}: {}); give one of them, or an address of this host on the port of a 0.0.0.0 / [::] listener",
                        ListenSpec { transport: Transport::Udp, addr: a },
                        listed()
                    ));
                }
                Ok(a)
            }
            None => {
                let first = udp[0];
                if first.ip().is_unspecified() {
                    return Err(format!(
                        "cluster.advertise is not set and the first UDP listener, udp:{first}, is a wildcard address the other nodes cannot send to; set cluster.advertise = \"udp:<this host's address>:{}\"",
                        if first.port() == 0 { "PORT".to_string() } else { first.port().to_string() }
                    ));
                }
                Ok(first)
            }
        }
    }
}

/// `n-192-0-2-10-5060`: a node id made of an address.
fn node_id_of(a: SocketAddr) -> String {
    let ip: String = a.ip().to_string().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    format!("n-{ip}-{}", a.port())
}

/// `[cluster]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ClusterFile {
    node_id: Option<String>,
    advertise: Option<String>,
    heartbeat_ms: Option<u64>,
    dead_after_ms: Option<u64>,
    takeover_grace_ms: Option<u64>,
    lookup_barrier: Option<bool>,
}

impl ClusterFile {
    /// The keys written, as `cluster.<key>`.
    fn keys_set(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (set, k) in [
            (self.node_id.is_some(), "cluster.node_id"),
            (self.advertise.is_some(), "cluster.advertise"),
            (self.heartbeat_ms.is_some(), "cluster.heartbeat_ms"),
            (self.dead_after_ms.is_some(), "cluster.dead_after_ms"),
            (self.takeover_grace_ms.is_some(), "cluster.takeover_grace_ms"),
            (self.lookup_barrier.is_some(), "cluster.lookup_barrier"),
        ] {
            if set {
                v.push(k);
            }
        }
        v
    }
}

/// Validates `[store]` and `[cluster]`. `env_url` is `SIPWAKE_STORE_URL`
/// (None when unset); `listen` the configured listeners (`server.listen`).
pub(crate) fn validate(
    store: StoreFile,
    cluster: ClusterFile,
    mode: crate::mid_config::Mode,
    listen: &[ListenSpec],
    env_url: Option<OsString>,
) -> Result<(StoreSection, ClusterSection), String> {
    let backend = match store.backend.as_str() {
        "sqlite" => StoreBackend::Sqlite,
        "postgres" => StoreBackend::Postgres,
        other => {
            return Err(format!(
                "store.backend = {other:?} is not available; allowed: \"sqlite\" (embedded, one node) or \"postgres\" (a database shared by a cluster)"
            ));
        }
    };
    if !["normal", "full"].contains(&store.synchronous.as_str()) {
        return Err(format!(
            "store.synchronous = {:?} is invalid; allowed: \"normal\" (survives a crash) or \"full\" (also survives power loss)",
            store.synchronous
        ));
    }
    // An empty variable counts as unset.
    let env_url = env_url.filter(|v| !v.is_empty());
    if backend == StoreBackend::Sqlite {
        let fix = "set store.backend = \"postgres\" or remove the key";
        if let Some(u) = &store.url {
            return Err(format!(
                "store.url = {:?} is set but store.backend = \"sqlite\" (the embedded database, one node); {fix}",
                redact_url(u)
            ));
        }
        if let Some(n) = store.pool_size {
            return Err(format!("store.pool_size = {n} needs store.backend = \"postgres\" (it is \"sqlite\"); {fix}"));
        }
        if let Some(p) = &store.ca_file {
            return Err(format!("store.ca_file = {p:?} needs store.backend = \"postgres\" (it is \"sqlite\"); {fix}"));
        }
        if let Some(n) = store.connect_timeout_ms {
            return Err(format!(
                "store.connect_timeout_ms = {n} needs store.backend = \"postgres\" (it is \"sqlite\"); {fix}"
            ));
        }
        if env_url.is_some() {
            return Err(format!(
                "the {STORE_URL_ENV} environment variable is set but store.backend = \"sqlite\": this node would keep its own database and not join the cluster; set store.backend = \"postgres\" or unset {STORE_URL_ENV}"
            ));
        }
        let keys = cluster.keys_set();
        if let Some(first) = keys.first() {
            return Err(format!(
                "[cluster] sets {} but store.backend = \"sqlite\": a cluster needs store.backend = \"postgres\" (a database shared by the nodes); set that, or remove {first}",
                keys.join(", ")
            ));
        }
        return Ok((
            StoreSection { backend, synchronous: store.synchronous, ..StoreSection::default() },
            ClusterSection::default(),
        ));
    }
    if mode == crate::mid_config::Mode::MidRegistrar {
        return Err(
            "store.backend = \"postgres\" with server.mode = \"mid-registrar\": mid-registrar mode keeps its upstream registrations on one node; the PostgreSQL cluster backend supports mode = \"registrar\" only (for now); use store.backend = \"sqlite\""
                .into(),
        );
    }
    let (url, url_from_env, key) = match env_url {
        Some(v) => {
            let v = v.into_string().map_err(|_| {
                format!("the {STORE_URL_ENV} environment variable is not valid UTF-8; write e.g. {URL_EXAMPLE}")
            })?;
            (v, true, STORE_URL_ENV)
        }
        None => match store.url {
            Some(u) if !u.is_empty() => (u, false, "store.url"),
            _ => {
                return Err(format!(
                    "store.backend = \"postgres\" needs store.url (or the {STORE_URL_ENV} environment variable, which keeps the password out of this file); write e.g. url = {URL_EXAMPLE}"
                ));
            }
        },
    };
    let parsed =
        PgUrl::parse(&url).map_err(|why| format!("{key} = {:?} {why}; write e.g. {URL_EXAMPLE}", redact_url(&url)))?;
    let pool_size = store.pool_size.unwrap_or(4);
    range("store.pool_size", pool_size, 1, 64, "reader connections per node; default 4")?;
    let connect_timeout_ms = store.connect_timeout_ms.unwrap_or(5000);
    range("store.connect_timeout_ms", connect_timeout_ms, 100, 120_000, "milliseconds; default 5000")?;
    if let Some(p) = &store.ca_file {
        if p.as_os_str().is_empty() {
            return Err("store.ca_file = \"\" is empty; give the PEM file of the CA that signs the database's certificate, or remove the key (the system roots are used)".into());
        }
        if !matches!(parsed.sslmode.as_deref(), Some("require" | "verify-full")) {
            return Err(format!(
                "store.ca_file = {p:?} is set but {key} does not ask for TLS (sslmode = {}); add ?sslmode=verify-full to the URL, or remove store.ca_file",
                parsed.sslmode.as_deref().unwrap_or("not set: prefer, which sipwake treats as no TLS")
            ));
        }
    }
    let store = StoreSection {
        backend,
        synchronous: store.synchronous,
        url,
        url_from_env,
        pool_size: pool_size as usize,
        ca_file: store.ca_file,
        connect_timeout_ms,
    };
    Ok((store, validate_cluster(cluster, listen)?))
}

fn validate_cluster(c: ClusterFile, listen: &[ListenSpec]) -> Result<ClusterSection, String> {
    let d = ClusterSection::default();
    let node_id = c.node_id.unwrap_or_default();
    let valid_char = |ch: char| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-';
    if !node_id.is_empty() && (node_id.len() > 48 || !node_id.chars().all(valid_char)) {
        return Err(format!(
            "cluster.node_id = {node_id:?} is invalid; allowed: 1 to 48 of A-Z a-z 0-9 _ - (e.g. \"sip-a\"), or \"\" to derive it from cluster.advertise"
        ));
    }
    let advertise = match c.advertise {
        None => None,
        Some(s) => {
            let fix = "write the UDP address the other nodes reach this one on, in the --listen syntax, e.g. \"udp:192.0.2.10:5060\" (unset = the first UDP listener)";
            let spec: ListenSpec =
                s.parse().map_err(|e| format!("cluster.advertise = {s:?} is not udp:IP:PORT ({e}); {fix}"))?;
            if spec.transport != Transport::Udp {
                return Err(format!(
                    "cluster.advertise = {s:?} is a {} address; the nodes of a cluster send each other requests over UDP: {fix}",
                    spec.transport
                ));
            }
            if spec.addr.ip().is_unspecified() || spec.addr.port() == 0 {
                return Err(format!(
                    "cluster.advertise = {s:?} is not an address the other nodes can send to (no wildcard IP, no port 0); {fix}"
                ));
            }
            Some(spec.addr)
        }
    };
    let heartbeat_ms = c.heartbeat_ms.unwrap_or(d.heartbeat_ms);
    range("cluster.heartbeat_ms", heartbeat_ms, 100, 10_000, "milliseconds; default 1000")?;
    let dead_after_ms = c.dead_after_ms.unwrap_or(d.dead_after_ms);
    range(
        "cluster.dead_after_ms",
        dead_after_ms,
        2 * heartbeat_ms + 1,
        59_999,
        &format!(
            "milliseconds, more than 2 × cluster.heartbeat_ms = {heartbeat_ms}: a node is dead only once it missed two heartbeats; default 5000"
        ),
    )?;
    let takeover_grace_ms = c.takeover_grace_ms.unwrap_or(d.takeover_grace_ms);
    range(
        "cluster.takeover_grace_ms",
        takeover_grace_ms,
        dead_after_ms + 1,
        60_000,
        &format!(
            "milliseconds, more than cluster.dead_after_ms = {dead_after_ms} (a node is known dead before its refresh pushes are taken over) and at most 60000 (the push must still precede the binding's expiry, push.refresh_lead_secs >= 120); default 8000"
        ),
    )?;
    let lookup_barrier = c.lookup_barrier.unwrap_or(d.lookup_barrier);
    let section = ClusterSection { node_id, advertise, heartbeat_ms, dead_after_ms, takeover_grace_ms, lookup_barrier };
    let udp: Vec<SocketAddr> = listen.iter().filter(|l| l.transport == Transport::Udp).map(|l| l.addr).collect();
    section.pick_advertise(&udp, "server.listen")?;
    Ok(section)
}

fn range(key: &str, v: u64, min: u64, max: u64, what: &str) -> Result<(), String> {
    if v < min || v > max {
        return Err(format!("{key} = {v} is out of range; allowed {min}..={max} ({what})"));
    }
    Ok(())
}

/// What the checks need of a libpq URL
/// (`postgres://[USER[:PASSWORD]@]HOST[:PORT][,HOST[:PORT]...][/DATABASE][?KEY=VALUE&...]`).
#[derive(Debug, PartialEq, Eq)]
struct PgUrl {
    /// `sslmode`, when given.
    sslmode: Option<String>,
}

impl PgUrl {
    /// Checks the URL's shape; the error says what is wrong (never the password).
    fn parse(s: &str) -> Result<PgUrl, String> {
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err("is not a postgres:// URL".into());
        };
        if !scheme.eq_ignore_ascii_case("postgres") && !scheme.eq_ignore_ascii_case("postgresql") {
            return Err(format!("has the scheme {scheme:?}; allowed: \"postgres\" or \"postgresql\""));
        }
        let (_, after_user) = split_user(rest);
        let (before_query, query) = after_user.split_once('?').unwrap_or((after_user, ""));
        let (hosts, _database) = before_query.split_once('/').unwrap_or((before_query, ""));
        let mut sslmode = None;
        let mut host_param = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| format!("has the parameter {pair:?} without a value"))?;
            match k {
                "sslmode" => {
                    if !["disable", "prefer", "require", "verify-full"].contains(&v) {
                        return Err(format!(
                            "has sslmode={v}; allowed: disable, prefer (no TLS in sipwake), require (TLS, any certificate) or verify-full (TLS, the certificate checked against the system roots or store.ca_file)"
                        ));
                    }
                    sslmode = Some(v.to_string());
                }
                "host" | "hostaddr" if !v.is_empty() => host_param = true,
                _ => {}
            }
        }
        if hosts.is_empty() {
            if host_param {
                return Ok(PgUrl { sslmode });
            }
            return Err("names no host".into());
        }
        for h in hosts.split(',') {
            let (host, port) = if let Some(v6) = h.strip_prefix('[') {
                let (ip, after) =
                    v6.split_once(']').ok_or_else(|| format!("has the host {h:?} without its closing ]"))?;
                if ip.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(format!("has the host {h:?}, which is not an IPv6 address"));
                }
                match after.strip_prefix(':') {
                    Some(p) => (ip, Some(p)),
                    None if after.is_empty() => (ip, None),
                    None => return Err(format!("has the host {h:?}, which is not [IPv6]:PORT")),
                }
            } else {
                match h.split_once(':') {
                    Some((host, p)) => (host, Some(p)),
                    None => (h, None),
                }
            };
            let host_ok = !host.is_empty()
                && (host.contains(':')
                    || host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '%')));
            if !host_ok {
                return Err(format!("has the host {host:?}, which is not a host name or IP address"));
            }
            if let Some(p) = port
                && !p.parse::<u16>().is_ok_and(|p| p != 0)
            {
                return Err(format!("has the port {p:?}; write a number from 1 to 65535 (default 5432)"));
            }
        }
        Ok(PgUrl { sslmode })
    }
}

/// `url` with the password of its user part, and of a `password=`
/// parameter, replaced by `***`. Works on malformed text too (a missing
/// scheme, several `@`), so that an error can show what was written.
pub fn redact_url(url: &str) -> String {
    let (prefix, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let (userinfo, after_user) = split_user(rest);
    let mut out = String::from(prefix);
    if let Some(u) = userinfo {
        match u.split_once(':') {
            Some((user, _)) => {
                out.push_str(user);
                out.push_str(":***@");
            }
            None => {
                out.push_str(u);
                out.push('@');
            }
        }
    }
    let (before_query, query) = after_user.split_once('?').unwrap_or((after_user, ""));
    out.push_str(before_query);
    if after_user.contains('?') {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some(("password", _)) => "password=***".to_string(),
                _ => p.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

/// Splits `USER[:PASSWORD]@REST` at its last `@` (a password written
/// without percent-encoding may hold `@`, `/` or `?`: it is never shown,
/// whatever else is misread).
fn split_user(rest: &str) -> (Option<&str>, &str) {
    match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::tests::err;

    const PG: &str = "[store]\nbackend = \"postgres\"\nurl = \"postgres://sipwake:s3cret@db.example.com:5432/sipwake?sslmode=verify-full\"\n";

    /// The error of a config text with `SIPWAKE_STORE_URL` = `env`.
    fn err_env(text: &str, env: &str) -> String {
        Config::parse_env(text, Some(env.into())).unwrap_err().0
    }

    #[test]
    fn sqlite_stays_the_default() {
        let c = Config::embedded();
        assert_eq!(c.store.backend, StoreBackend::Sqlite);
        assert_eq!((c.store.synchronous.as_str(), c.store.url.as_str()), ("normal", ""));
        let c = Config::parse("[store]\nsynchronous = \"full\"\n").unwrap();
        assert_eq!((c.store.backend, c.store.synchronous.as_str()), (StoreBackend::Sqlite, "full"));
        let e = err("[store]\nbackend = \"mysql\"\n");
        assert!(e.contains("store.backend = \"mysql\"") && e.contains("\"postgres\""), "{e}");
    }

    #[test]
    fn postgres_keys_and_defaults() {
        let c = Config::parse(PG).unwrap();
        let s = &c.store;
        assert_eq!(s.backend, StoreBackend::Postgres);
        assert_eq!((s.pool_size, s.connect_timeout(), s.ca_file.as_ref()), (4, Duration::from_secs(5), None));
        assert_eq!(s.url_key(), "store.url");
        assert_eq!(s.url_redacted(), "postgres://sipwake:***@db.example.com:5432/sipwake?sslmode=verify-full");
        assert!(!format!("{c:?}").contains("s3cret"), "Debug shows no password");
        let c = Config::parse(&format!("{PG}pool_size = 16\nconnect_timeout_ms = 1500\nca_file = \"db-ca.pem\"\n"))
            .unwrap();
        assert_eq!(
            (c.store.pool_size, c.store.connect_timeout_ms, c.store.ca_file),
            (16, 1500, Some(PathBuf::from("db-ca.pem")))
        );
        let e = err(&format!("{PG}pool_size = 0\n"));
        assert!(e.contains("store.pool_size = 0") && e.contains("1..=64"), "{e}");
        let e = err(&format!("{PG}pool_size = 65\n"));
        assert!(e.contains("store.pool_size = 65"), "{e}");
        let e = err(&format!("{PG}connect_timeout_ms = 0\n"));
        assert!(e.contains("store.connect_timeout_ms = 0") && e.contains("default 5000"), "{e}");
        let e = err(&format!("{PG}ca_file = \"\"\n"));
        assert!(e.contains("store.ca_file = \"\""), "{e}");
        let e = err(&format!("{PG}poolsize = 3\n"));
        assert!(e.contains("poolsize"), "{e}");
        // synchronous is the SQLite file's; with PostgreSQL it changes nothing.
        assert!(Config::parse(&format!("{PG}synchronous = \"full\"\n")).is_ok());
    }

    #[test]
    fn the_url_is_required_and_checked_without_showing_the_password() {
        let e = err("[store]\nbackend = \"postgres\"\n");
        assert!(e.contains("store.url") && e.contains(STORE_URL_ENV) && e.contains("postgres://"), "{e}");
        let e = err("[store]\nbackend = \"postgres\"\nurl = \"\"\n");
        assert!(e.contains("needs store.url"), "{e}");
        for (url, why) in [
            ("mysql://u:pw1@db/x", "scheme \"mysql\""),
            ("u:pw1@db/x", "not a postgres:// URL"),
            ("postgres://u:pw1@/x", "names no host"),
            ("postgres://u:pw1@db:99999/x", "port \"99999\""),
            ("postgres://u:pw1@db:0/x", "port \"0\""),
            ("postgres://u:pw1@db/x?sslmode=verify-ca", "sslmode=verify-ca"),
            ("postgres://u:pw1@db/x?sslmode", "without a value"),
            ("postgres://u:pw1@[::1/x", "closing ]"),
            ("postgres://u:pw1@db host/x", "\"db host\""),
        ] {
            let e = err(&format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"));
            assert!(e.starts_with("store.url = \"") && e.contains(why), "{url}: {e}");
            assert!(!e.contains("pw1") && e.contains("u:***@"), "{url}: {e}");
        }
        for url in [
            "postgresql://db.example.com/sipwake",
            "postgres://sipwake@127.0.0.1:5433/sipwake",
            "postgres://u:p%40ss@[2001:db8::1]:5432/sipwake?sslmode=require&application_name=sipwake",
            "postgres://u:pw@db1:5432,db2:5433/sipwake?target_session_attrs=read-write",
            "postgres:///sipwake?host=/var/run/postgresql",
        ] {
            let c = Config::parse(&format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"));
            assert!(c.is_ok(), "{url}: {:?}", c.err());
        }
    }

    #[test]
    fn the_environment_overrides_store_url() {
        let url = "postgres://env:pw2@10.0.0.5/sipwake";
        let c = Config::parse_env("[store]\nbackend = \"postgres\"\n", Some(url.into())).unwrap();
        assert_eq!((c.store.url.as_str(), c.store.url_key()), (url, STORE_URL_ENV));
        let c = Config::parse_env(PG, Some(url.into())).unwrap();
        assert_eq!(c.store.url, url, "the environment wins over the file");
        assert!(c.store.url_from_env);
        // Empty = unset.
        let c = Config::parse_env(PG, Some("".into())).unwrap();
        assert_eq!(c.store.url_key(), "store.url");
        let e = err_env(PG, "mysql://env:pw2@db/x");
        assert!(e.starts_with("SIPWAKE_STORE_URL = \"mysql://env:***@db/x\"") && !e.contains("pw2"), "{e}");
        // With SQLite the variable would go unused: this node would not join the cluster.
        let e = err_env("", url);
        assert!(e.contains(STORE_URL_ENV) && e.contains("store.backend = \"postgres\""), "{e}");
        // The embedded default never reads it.
        assert_eq!(Config::embedded().store.backend, StoreBackend::Sqlite);
    }

    #[test]
    fn postgres_keys_need_the_postgres_backend() {
        for (key, line) in [
            ("store.url = \"postgres://u:***@db/x\"", "url = \"postgres://u:pw3@db/x\""),
            ("store.pool_size = 8", "pool_size = 8"),
            ("store.ca_file = \"ca.pem\"", "ca_file = \"ca.pem\""),
            ("store.connect_timeout_ms = 100", "connect_timeout_ms = 100"),
        ] {
            let e = err(&format!("[store]\n{line}\n"));
            assert!(e.contains(key) && e.contains("store.backend = \"postgres\""), "{line}: {e}");
            assert!(!e.contains("pw3"), "{e}");
        }
    }

    #[test]
    fn ca_file_needs_tls_and_must_be_a_pem_file() {
        let e = err("[store]\nbackend = \"postgres\"\nurl = \"postgres://u@db/x\"\nca_file = \"/etc/ssl/db-ca.pem\"\n");
        assert!(e.contains("store.ca_file") && e.contains("sslmode=verify-full"), "{e}");
        let e = err(
            "[store]\nbackend = \"postgres\"\nurl = \"postgres://u@db/x?sslmode=disable\"\nca_file = \"db-ca.pem\"\n",
        );
        assert!(e.contains("sslmode = disable"), "{e}");
        // Config::load finds the file beside the config file and reads it.
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("sipwake.toml");
        std::fs::write(&cfg, format!("{PG}ca_file = \"db-ca.pem\"\n")).unwrap();
        let e = Config::load(&cfg).unwrap_err().0;
        assert!(e.contains("store.ca_file") && e.contains("db-ca.pem") && e.contains("cannot be read"), "{e}");
        std::fs::write(dir.path().join("db-ca.pem"), "not a certificate").unwrap();
        let e = Config::load(&cfg).unwrap_err().0;
        assert!(e.contains("holds no PEM certificate"), "{e}");
        std::fs::write(dir.path().join("db-ca.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
            .unwrap();
        let c = Config::load(&cfg).unwrap();
        assert_eq!(c.store.ca_file, Some(dir.path().join("db-ca.pem")));
    }

    #[test]
    fn mid_registrar_refuses_postgres() {
        let e =
            err(&format!("[server]\nmode = \"mid-registrar\"\n[mid_registrar]\nupstream = \"sip:192.0.2.10\"\n{PG}"));
        assert!(
            e.contains("mid-registrar mode keeps its upstream registrations on one node; the PostgreSQL cluster backend supports mode = \"registrar\" only (for now)"),
            "{e}"
        );
    }

    #[test]
    fn cluster_keys_need_postgres() {
        let e = err("[cluster]\nnode_id = \"a\"\nheartbeat_ms = 500\n");
        assert!(
            e.contains("[cluster] sets cluster.node_id, cluster.heartbeat_ms")
                && e.contains("store.backend = \"postgres\""),
            "{e}"
        );
        // An empty table changes nothing.
        assert!(Config::parse("[cluster]\n").is_ok());
    }

    #[test]
    fn cluster_defaults() {
        let c = Config::parse(PG).unwrap();
        let k = &c.cluster;
        assert_eq!((k.node_id.as_str(), k.advertise), ("", None));
        assert_eq!(
            (k.heartbeat(), k.dead_after(), k.takeover_grace()),
            (Duration::from_secs(1), Duration::from_secs(5), Duration::from_secs(8))
        );
        assert!(k.lookup_barrier);
        let off = Config::parse(&format!("{PG}[cluster]\nlookup_barrier = false\n")).unwrap();
        assert!(!off.cluster.lookup_barrier);
        // The first UDP listener, with the port it was bound to.
        let bound =
            [(Transport::Tcp, "127.0.0.1:5070".parse().unwrap()), (Transport::Udp, "127.0.0.1:40123".parse().unwrap())];
        let n = k.resolve(&bound).unwrap();
        assert_eq!((n.node_id.as_str(), n.sip_addr()), ("n-127-0-0-1-40123", "udp:127.0.0.1:40123".to_string()));
        let n = k.resolve(&[(Transport::Udp, "[2001:db8::1]:5060".parse().unwrap())]).unwrap();
        assert_eq!(n.node_id, "n-2001-db8--1-5060");
        assert!(n.node_id.len() <= 48);
    }

    #[test]
    fn cluster_node_id_and_timers_are_checked() {
        let c = Config::parse(&format!("{PG}[cluster]\nnode_id = \"sip-a_1\"\n")).unwrap();
        let n = c.cluster.resolve(&[(Transport::Udp, "127.0.0.1:5060".parse().unwrap())]).unwrap();
        assert_eq!(n.node_id, "sip-a_1");
        for bad in ["sip a", "a.b", &"x".repeat(49), "ü"] {
            let e = err(&format!("{PG}[cluster]\nnode_id = \"{bad}\"\n"));
            assert!(e.contains("cluster.node_id = ") && e.contains("A-Z a-z 0-9 _ -"), "{bad}: {e}");
        }
        let e = err(&format!("{PG}[cluster]\nheartbeat_ms = 10\n"));
        assert!(e.contains("cluster.heartbeat_ms = 10") && e.contains("100..=10000"), "{e}");
        let e = err(&format!("{PG}[cluster]\nheartbeat_ms = 2500\n"));
        assert!(
            e.contains("cluster.dead_after_ms = 5000") && e.contains("more than 2 × cluster.heartbeat_ms = 2500"),
            "{e}"
        );
        let e = err(&format!("{PG}[cluster]\ndead_after_ms = 2000\n"));
        assert!(e.contains("cluster.dead_after_ms = 2000") && e.contains("allowed 2001..="), "{e}");
        let e = err(&format!("{PG}[cluster]\ndead_after_ms = 9000\n"));
        assert!(
            e.contains("cluster.takeover_grace_ms = 8000") && e.contains("more than cluster.dead_after_ms = 9000"),
            "{e}"
        );
        let e = err(&format!("{PG}[cluster]\ntakeover_grace_ms = 5000\n"));
        assert!(e.contains("cluster.takeover_grace_ms = 5000") && e.contains("allowed 5001..=60000"), "{e}");
        let e = err(&format!("{PG}[cluster]\ntakeover_grace_ms = 120000\n"));
        assert!(e.contains("cluster.takeover_grace_ms = 120000"), "{e}");
        let c = Config::parse(&format!(
            "{PG}[cluster]\nheartbeat_ms = 200\ndead_after_ms = 1000\ntakeover_grace_ms = 1500\n"
        ))
        .unwrap();
        assert_eq!((c.cluster.heartbeat_ms, c.cluster.dead_after_ms, c.cluster.takeover_grace_ms), (200, 1000, 1500));
        let e = err(&format!("{PG}[cluster]\nheartbeat = 200\n"));
        assert!(e.contains("heartbeat"), "{e}");
    }

    #[test]
    fn cluster_advertise_must_be_a_udp_listener() {
        let listen = "[server]\nlisten = [\"udp:0.0.0.0:5060\", \"tcp:0.0.0.0:5060\", \"udp:127.0.0.1:5070\"]\n";
        // An address of this host on the port of a wildcard listener, or a listener itself.
        for ok in ["udp:192.0.2.10:5060", "udp:127.0.0.1:5070"] {
            let c = Config::parse(&format!("{listen}{PG}[cluster]\nadvertise = \"{ok}\"\n")).unwrap();
            let bound: Vec<_> = c.listen.iter().map(|l| (l.transport, l.addr)).collect();
            assert_eq!(c.cluster.resolve(&bound).unwrap().sip_addr(), ok);
        }
        let e = err(&format!("{listen}{PG}[cluster]\nadvertise = \"udp:192.0.2.10:5080\"\n"));
        assert!(
            e.contains("cluster.advertise = \"udp:192.0.2.10:5080\" is not a UDP listener of this server")
                && e.contains("udp:0.0.0.0:5060, udp:127.0.0.1:5070"),
            "{e}"
        );
        let e = err(&format!("{listen}{PG}[cluster]\nadvertise = \"tcp:192.0.2.10:5060\"\n"));
        assert!(e.contains("cluster.advertise = \"tcp:192.0.2.10:5060\"") && e.contains("over UDP"), "{e}");
        let e = err(&format!("{listen}{PG}[cluster]\nadvertise = \"udp:0.0.0.0:5060\"\n"));
        assert!(e.contains("no wildcard IP"), "{e}");
        let e = err(&format!("{listen}{PG}[cluster]\nadvertise = \"192.0.2.10:5060\"\n"));
        assert!(e.contains("cluster.advertise = \"192.0.2.10:5060\" is not udp:IP:PORT"), "{e}");
        let e = err(&format!("{listen}{PG}[cluster]\nadvertise = \"udp:db.example.com:5060\"\n"));
        assert!(e.contains("cluster.advertise"), "{e}");
        // Unset: the first UDP listener, which must then be an address others can reach.
        let e = err(&format!("{listen}{PG}"));
        assert!(e.contains("cluster.advertise is not set") && e.contains("udp:0.0.0.0:5060"), "{e}");
        let e = err(&format!("[server]\nlisten = [\"tcp:127.0.0.1:5060\"]\n{PG}"));
        assert!(e.contains("needs a udp: listener"), "{e}");
        // The listeners actually bound (--listen replaces server.listen) decide at start-up.
        let c = Config::parse(&format!("{PG}[cluster]\nadvertise = \"udp:127.0.0.1:5060\"\n")).unwrap();
        let e = c.cluster.resolve(&[(Transport::Udp, "127.0.0.1:41000".parse().unwrap())]).unwrap_err();
        assert!(e.contains("not a UDP listener") && e.contains("udp:127.0.0.1:41000"), "{e}");
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_url("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=x&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
        assert_eq!(redact_url("u:secret@h"), "u:***@h");
        assert_eq!(redact_url(""), "");
    }
}
