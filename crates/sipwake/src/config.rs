//! The TOML configuration: its schema with every default, the embedded
//! default used when no file is given, and validation whose every error
//! names the key, the bad value and what is allowed.
//!
//! Owns nothing at run time: it produces a validated [`Config`] and stops.

use serde::Deserialize;
use sip_transport::ListenSpec;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration a server runs with (validated).
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: Vec<ListenSpec>,
    pub data_dir: PathBuf,
    pub server_header: String,
    pub log: LogConfig,
    pub sip: SipConfig,
    pub registrar: RegistrarSection,
    pub auth: AuthSection,
    pub store: StoreSection,
    /// `[cluster]` (used with `store.backend = "postgres"`; its defaults otherwise).
    pub cluster: crate::cluster_config::ClusterSection,
    pub management: ManagementSection,
    pub proxy: ProxySection,
    /// `[dns]`: the RFC 3263 resolver of next hops by name.
    pub dns: crate::dns_config::DnsSection,
    pub push: PushSection,
    /// The role: registrar, or mid-registrar (then `mid` is set).
    pub mode: crate::mid_config::Mode,
    /// `[mid_registrar]`, validated (mid-registrar mode only).
    pub mid: Option<sip_node::mid::MidConfig>,
    /// The upstream registrar's host name, when `mid_registrar.upstream`
    /// names one: `mid`'s upstream address is resolved from it at start-up.
    pub mid_upstream_name: Option<sip_node::NameQuery>,
    pub mid_section: crate::mid_config::MidSection,
    /// `[tls]` (validated; files are read at start-up and by `--check-config`).
    pub tls: crate::tls_config::TlsSection,
    /// `[websocket]`.
    pub websocket: crate::tls_config::WebSocketSection,
    /// `[defence]` (validated against `listen` again at start-up, after `--listen`).
    pub defence: crate::defence_config::DefenceSection,
}

/// `[push]`: RFC 8599 push notifications (OpenSIPS names in brackets).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushSection {
    /// Wake devices with pushes (pn_enable; off by default, as in OpenSIPS).
    pub enable: bool,
    /// Hand out PURRs for mid-dialog wake-ups (pn_enable_purr).
    pub purr: bool,
    /// A binding gets a new PURR this often; old ones stay valid for `purr_horizon_secs`, seconds.
    pub purr_rotation_secs: u64,
    /// How long a replaced PURR still wakes its device (the longest dialog), seconds.
    pub purr_horizon_secs: u64,
    /// Supported `pn-provider` values (pn_providers).
    pub providers: Vec<String>,
    /// Our VAPID public key (RFC 8292, base64url), advertised to webpush
    /// devices as `+sip.vapid` (RFC 8599 R22/R23/R31); empty = none.
    pub vapid_public_key: String,
    /// Contact parameters that make a binding push-capable (pn_ct_match_params).
    pub ct_match_params: Vec<String>,
    /// The `+sip.pnsreg` value (pn_pnsreg_interval), seconds.
    pub pnsreg_interval: u32,
    /// Refresh push this long before expiry (pn_trigger_interval), seconds, at least 120.
    pub refresh_lead_secs: u64,
    /// Retries of an unanswered refresh push, seconds before expiry ([] = one push only).
    pub refresh_retries_secs: Vec<u64>,
    /// No push for a device that registered this recently (pn_skip_pn_interval), seconds.
    pub skip_interval_secs: u64,
    /// How long a parked INVITE waits for its device (pn_refresh_timeout), seconds.
    pub invite_hold_secs: u64,
    /// How long a parked non-INVITE waits (under 32 s), seconds.
    pub non_invite_hold_secs: u64,
    /// Answer 555 to REGISTERs for providers not in `providers`.
    pub reply_555: bool,
    /// Shortest expiry accepted for a push binding (423 below it), seconds.
    pub min_push_expires: u32,
    /// RFC 8599 §13: refuse (403) a REGISTER that carries push coordinates
    /// over a transport without TLS (UDP, TCP, WS). Unset: on when a `tls:`
    /// or `wss:` listener is configured, else off (with a warning).
    pub require_secure_transport: Option<bool>,
    /// How pushes are delivered, per provider (or "*" for all).
    pub senders: std::collections::BTreeMap<String, SenderSection>,
    /// How long the push audit keeps the story of pushes and parked
    /// requests (`GET /api/v1/push/calls/{call_id}`, `sipwake ctl call`), seconds.
    pub audit_window_secs: u64,
    /// At most this many audit events are kept (oldest go first; 0: no audit).
    pub audit_max_events: usize,
}

pub use crate::push_config::SenderSection;

impl Default for PushSection {
    fn default() -> Self {
        let d = sip_push::PushConfig::default();
        PushSection {
            enable: false,
            purr: false,
            purr_rotation_secs: d.purr_rotation.as_secs(),
            purr_horizon_secs: d.purr_horizon.as_secs(),
            providers: vec!["apns".into(), "fcm".into(), "webpush".into()],
            vapid_public_key: String::new(),
            ct_match_params: d.ct_match_params.clone(),
            pnsreg_interval: d.pnsreg_interval,
            refresh_lead_secs: d.refresh_lead.as_secs(),
            refresh_retries_secs: d.refresh_retry_offsets.iter().map(|x| x.as_secs()).collect(),
            skip_interval_secs: d.skip_interval.as_secs(),
            invite_hold_secs: d.invite_hold.as_secs(),
            non_invite_hold_secs: d.non_invite_hold.as_secs(),
            reply_555: d.reply_555,
            min_push_expires: d.min_push_expires,
            require_secure_transport: None,
            senders: Default::default(),
            audit_window_secs: sip_node::audit::AuditConfig::default().window.as_secs(),
            audit_max_events: sip_node::audit::AuditConfig::default().max_events,
        }
    }
}

impl PushSection {
    /// The engine's configuration.
    pub fn to_engine_config(&self) -> sip_push::PushConfig {
        let mut c = sip_push::PushConfig::with_providers(self.providers.iter().map(String::as_str));
        c.enable = self.enable;
        c.purr = self.purr;
        if !self.vapid_public_key.is_empty() {
            for p in c.providers.iter_mut().filter(|p| p.name.eq_ignore_ascii_case("webpush")) {
                p.vapid = Some(self.vapid_public_key.clone());
            }
        }
        c.purr_rotation = Duration::from_secs(self.purr_rotation_secs);
        c.purr_horizon = Duration::from_secs(self.purr_horizon_secs);
        c.ct_match_params = self.ct_match_params.clone();
        c.pnsreg_interval = self.pnsreg_interval;
        c.refresh_lead = Duration::from_secs(self.refresh_lead_secs);
        c.refresh_retry_offsets = self.refresh_retries_secs.iter().map(|s| Duration::from_secs(*s)).collect();
        c.skip_interval = Duration::from_secs(self.skip_interval_secs);
        c.invite_hold = Duration::from_secs(self.invite_hold_secs);
        c.non_invite_hold = Duration::from_secs(self.non_invite_hold_secs);
        c.reply_555 = self.reply_555;
        c.min_push_expires = self.min_push_expires;
        crate::push_config::apply_policies(&mut c, &self.senders);
        c
    }

    /// The senders' configuration (validated by [`Config::parse`]).
    pub fn sender_configs(&self) -> Vec<(String, push_senders::SenderConfig)> {
        self.senders.iter().filter_map(|(name, s)| s.to_sender(name).map(|c| (name.clone(), c))).collect()
    }

    /// What the push audit keeps.
    pub fn audit(&self) -> sip_node::audit::AuditConfig {
        sip_node::audit::AuditConfig {
            window: Duration::from_secs(self.audit_window_secs),
            max_events: self.audit_max_events,
        }
    }

    /// Cancel and missed-call pushes per provider.
    pub fn call_end_pushes(&self) -> Vec<(String, sip_node::CallEndPushes)> {
        self.senders.iter().map(|(name, s)| (name.clone(), s.call_end_pushes(name))).collect()
    }
}

/// `[proxy]`: how requests to and from registered users are routed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySection {
    /// Stay in the dialogs of calls through this server (Record-Route).
    pub record_route: bool,
    /// Challenge (407) initial requests whose From is in a served domain, so
    /// the server is no open relay (only when `auth.enabled`).
    pub authenticate_local_callers: bool,
    /// Let unauthenticated requests from other domains reach local AoRs
    /// (how calls come in from outside).
    pub allow_unauthenticated_inbound: bool,
    /// Forward initial requests of authenticated local users to other domains.
    pub relay_for_local_users: bool,
    /// Timer C: an INVITE branch with no final answer this long after its
    /// last provisional is cancelled, seconds (RFC 3261: more than 180).
    pub timer_c_secs: u64,
    /// Requests to other domains (without a Route of their own) go to this
    /// SIP URI, resolved per RFC 3263 like any next hop; "" = straight to
    /// their Request-URI's host.
    pub outbound_proxy: String,
}

impl ProxySection {
    /// The outbound proxy's URI (validated by [`Config::parse`]).
    pub fn outbound_uri(&self) -> Option<sip_msg::SipUri> {
        if self.outbound_proxy.is_empty() {
            return None;
        }
        sip_msg::Uri::parse_bytes(self.outbound_proxy.clone()).ok()?.as_sip().cloned()
    }
}

impl Default for ProxySection {
    fn default() -> Self {
        ProxySection {
            record_route: true,
            authenticate_local_callers: true,
            allow_unauthenticated_inbound: true,
            relay_for_local_users: true,
            timer_c_secs: 181,
            outbound_proxy: String::new(),
        }
    }
}

/// `[registrar]`: the domains served and the REGISTER rules.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarSection {
    /// Domains whose AoRs this server keeps bindings for.
    pub domains: Vec<String>,
    /// Also serve the IP addresses of the listeners as domains (so that
    /// `sip:alice@127.0.0.1` works out of the box).
    pub serve_listen_addresses: bool,
    pub default_expires: u32,
    pub min_expires: u32,
    pub max_expires: u32,
    /// Most bindings per AoR; 0 = unlimited.
    pub max_contacts: usize,
    /// `reject` (403 Too Many Contacts) or `replace_oldest`.
    pub max_contacts_policy: MaxContactsPolicyName,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MaxContactsPolicyName {
    Reject,
    ReplaceOldest,
}

impl Default for RegistrarSection {
    fn default() -> Self {
        RegistrarSection {
            domains: vec!["localhost".into()],
            serve_listen_addresses: true,
            default_expires: 3600,
            min_expires: 60,
            max_expires: 7200,
            max_contacts: 10,
            max_contacts_policy: MaxContactsPolicyName::Reject,
        }
    }
}

/// `[auth]`: digest authentication of REGISTER (RFC 3261 §22, RFC 8760).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// sipwake authenticates REGISTERs itself: on by default in registrar
    /// mode (turning it off logs a warning at start-up), off by default in
    /// mid-registrar mode (the upstream authenticates).
    pub enabled: Option<bool>,
    /// Offered algorithms, preferred first: "SHA-256", "MD5".
    pub algorithms: Vec<String>,
    /// A nonce older than this gets `stale=true`, seconds.
    pub nonce_ttl_secs: u64,
}

impl AuthSection {
    /// Whether sipwake authenticates REGISTERs itself in `mode`.
    pub fn enabled_in(&self, mode: crate::mid_config::Mode) -> bool {
        self.enabled.unwrap_or(mode == crate::mid_config::Mode::Registrar)
    }
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection { enabled: None, algorithms: vec!["SHA-256".into(), "MD5".into()], nonce_ttl_secs: 300 }
    }
}

/// `[store]`: where bindings and subscribers are kept (validated; see
/// `cluster_config`).
pub use crate::cluster_config::{StoreBackend, StoreSection};

/// `[management]`: the HTTP management API, `/metrics` and `sipwake ctl`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManagementSection {
    pub enabled: bool,
    /// IP:PORT; port 0 picks a free port (printed at start-up).
    pub listen: String,
    /// Bearer token; required when `listen` is not a loopback address.
    pub token: String,
}

impl Default for ManagementSection {
    fn default() -> Self {
        ManagementSection { enabled: true, listen: "127.0.0.1:8060".into(), token: String::new() }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `plain` or `json`.
    pub format: LogFormat,
    /// A tracing filter (`info`, `sipwake=debug,info`, ...); RUST_LOG overrides it.
    pub level: String,
    /// Start each line with the time. Unset: yes, unless stderr goes to
    /// the systemd journal (`JOURNAL_STREAM` set), which stamps lines itself.
    pub timestamps: Option<bool>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Plain, level: "info".into(), timestamps: None }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Plain,
    Json,
}

/// SIP protocol and transport tuning.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// RFC 3261 T1 (RTT estimate), milliseconds.
    pub t1_ms: u64,
    /// RFC 3261 T2 (maximum retransmit interval for non-INVITE), milliseconds.
    pub t2_ms: u64,
    /// RFC 3261 T4 (maximum time a message stays in the network), milliseconds.
    pub t4_ms: u64,
    /// An INVITE server transaction sends 100 Trying if nothing else was sent within this, milliseconds.
    pub trying_delay_ms: u64,
    /// Largest accepted message, bytes.
    pub max_message_bytes: usize,
    /// Most header fields in one message.
    pub max_headers: usize,
    /// A TCP connection idle for this long is closed, seconds.
    pub tcp_idle_timeout_secs: u64,
    /// Once a message's first byte is in, all of it must arrive within this, seconds.
    pub tcp_message_timeout_secs: u64,
    /// Most bytes queued for writing on one TCP connection before it is closed.
    pub tcp_max_queued_bytes: usize,
    /// Most simultaneous TCP connections.
    pub max_connections: usize,
    /// Receive threads per UDP socket; 0 = one per CPU core.
    pub udp_workers: usize,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            trying_delay_ms: 200,
            max_message_bytes: 65_535,
            max_headers: 256,
            tcp_idle_timeout_secs: 900,
            tcp_message_timeout_secs: 20,
            tcp_max_queued_bytes: 2 << 20,
            max_connections: 100_000,
            udp_workers: 1,
        }
    }
}

impl SipConfig {
    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.t1_ms)
    }
    pub fn t2(&self) -> Duration {
        Duration::from_millis(self.t2_ms)
    }
    pub fn t4(&self) -> Duration {
        Duration::from_millis(self.t4_ms)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ServerFile {
    mode: String,
    listen: Vec<String>,
    data_dir: PathBuf,
    server_header: String,
}

impl Default for ServerFile {
    fn default() -> Self {
        ServerFile {
            mode: "registrar".into(),
            listen: vec!["udp:127.0.0.1:5060".into(), "tcp:127.0.0.1:5060".into()],
            data_dir: PathBuf::from("./sipwake-data"),
            server_header: format!("sipwake/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ConfigFile {
    server: ServerFile,
    log: LogConfig,
    sip: SipConfig,
    registrar: RegistrarSection,
    auth: AuthSection,
    store: crate::cluster_config::StoreFile,
    cluster: crate::cluster_config::ClusterFile,
    management: ManagementSection,
    proxy: ProxySection,
    push: PushSection,
    mid_registrar: crate::mid_config::MidSection,
    tls: crate::tls_config::TlsSection,
    websocket: crate::tls_config::WebSocketSection,
    dns: crate::dns_config::DnsSection,
    defence: crate::defence_config::DefenceSection,
}

/// The configuration used when no `--config` is given (also shipped as
/// `sipwake.example.toml`, which documents every key).
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../sipwake.example.toml");

/// A configuration error, already worded for the operator.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        let mut c = Config::parse(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))?;
        // Key files named relative to the config file are found beside it.
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        for s in c.push.senders.values_mut() {
            s.resolve_paths(base);
        }
        c.tls.resolve_paths(base);
        c.store.resolve_paths(base);
        c.store.check_files().map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Ok(c)
    }

    /// The embedded default (it never reads `SIPWAKE_STORE_URL`: it is the
    /// SQLite single node).
    pub fn embedded() -> Config {
        Config::parse_env(EMBEDDED_DEFAULT, None).expect("the embedded default config is valid")
    }

    /// Parses and validates TOML text; the `SIPWAKE_STORE_URL` environment
    /// variable, when set (and not empty), overrides `store.url`.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_env(text, std::env::var_os(crate::cluster_config::STORE_URL_ENV))
    }

    /// [`Config::parse`] with `store_url_env` standing for `SIPWAKE_STORE_URL`.
    pub fn parse_env(text: &str, store_url_env: Option<std::ffi::OsString>) -> Result<Config, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError(describe_toml_error(&e)))?;
        let mode = crate::mid_config::parse_mode(&file.server.mode).map_err(ConfigError)?;
        let (mid, mid_upstream_name) = match mode {
            crate::mid_config::Mode::MidRegistrar => {
                let (m, name) = file.mid_registrar.to_node().map_err(ConfigError)?;
                (Some(m), name)
            }
            crate::mid_config::Mode::Registrar => {
                // Not used in this mode, but checked all the same (an unset
                // upstream is no mistake here: a stand-in takes its place).
                let mut m = file.mid_registrar.clone();
                if m.upstream.is_empty() {
                    m.upstream = "sip:192.0.2.1".into();
                }
                m.to_node().map_err(ConfigError)?;
                (None, None)
            }
        };
        let mut listen = Vec::new();
        for (i, s) in file.server.listen.iter().enumerate() {
            let spec = s.parse::<ListenSpec>().map_err(|e| {
                ConfigError(format!(
                    "server.listen[{i}] = {s:?} is invalid: {e}; allowed: \"udp:HOST:PORT\", \"tcp:HOST:PORT\", \"tls:HOST:PORT\", \"ws:HOST:PORT\" or \"wss:HOST:PORT\" with an IP address, e.g. \"udp:0.0.0.0:5060\""
                ))
            })?;
            if listen.contains(&spec) {
                return Err(ConfigError(format!("server.listen[{i}] = {s:?} is listed twice; remove one")));
            }
            listen.push(spec);
        }
        if listen.is_empty() {
            return Err(ConfigError(
                "server.listen = [] is empty; give at least one listener, e.g. [\"udp:0.0.0.0:5060\"]".into(),
            ));
        }
        file.tls.validate().map_err(ConfigError)?;
        file.tls.check_listeners(&listen, "server.listen").map_err(ConfigError)?;
        file.websocket.validate().map_err(ConfigError)?;
        file.defence.validate(&listen).map_err(ConfigError)?;
        if file.server.data_dir.as_os_str().is_empty() {
            return Err(ConfigError("server.data_dir = \"\" is empty; give a directory path".into()));
        }
        if file.server.server_header.chars().any(|c| c.is_control()) {
            return Err(ConfigError("server.server_header contains control characters; use plain text".into()));
        }
        let s = &file.sip;
        range("sip.t1_ms", s.t1_ms, 1, 60_000, "milliseconds; RFC 3261 default 500")?;
        range("sip.t2_ms", s.t2_ms, s.t1_ms, 600_000, "milliseconds, at least sip.t1_ms; RFC 3261 default 4000")?;
        range("sip.t4_ms", s.t4_ms, 1, 600_000, "milliseconds; RFC 3261 default 5000")?;
        range("sip.trying_delay_ms", s.trying_delay_ms, 0, 200, "milliseconds; RFC 3261 §17.2.1 says 200 at most")?;
        range("sip.max_message_bytes", s.max_message_bytes as u64, 1500, 1 << 20, "bytes; default 65535")?;
        range("sip.max_headers", s.max_headers as u64, 16, 10_000, "header fields; default 256")?;
        range("sip.tcp_idle_timeout_secs", s.tcp_idle_timeout_secs, 10, 86_400 * 7, "seconds; default 900")?;
        range("sip.tcp_message_timeout_secs", s.tcp_message_timeout_secs, 1, 3600, "seconds; default 20")?;
        range(
            "sip.tcp_max_queued_bytes",
            s.tcp_max_queued_bytes as u64,
            65_536,
            1 << 30,
            "bytes per connection; default 2097152",
        )?;
        range("sip.max_connections", s.max_connections as u64, 1, 10_000_000, "connections; default 100000")?;
        range(
            "sip.udp_workers",
            s.udp_workers as u64,
            0,
            256,
            "receive threads per UDP socket; 0 = one per core; default 1",
        )?;
        crate::logging::check_level(&file.log.level).map_err(ConfigError)?;
        let r = &file.registrar;
        for (i, d) in r.domains.iter().enumerate() {
            let ipv6_literal =
                d.starts_with('[') && d.ends_with(']') && d[1..d.len() - 1].parse::<std::net::Ipv6Addr>().is_ok();
            if d.is_empty() || (!ipv6_literal && d.contains(['@', ':', '/', ' '])) {
                return Err(ConfigError(format!(
                    "registrar.domains[{i}] = {d:?} is not a domain name; give bare domains like \"example.com\", \"192.0.2.1\" or \"[2001:db8::1]\" (no user, scheme or port)"
                )));
            }
        }
        if r.domains.is_empty() && !r.serve_listen_addresses {
            return Err(ConfigError(
                "registrar.domains = [] and registrar.serve_listen_addresses = false: the registrar would serve nothing; list at least one domain".into(),
            ));
        }
        range("registrar.min_expires", u64::from(r.min_expires), 1, 86_400, "seconds; default 60")?;
        range(
            "registrar.max_expires",
            u64::from(r.max_expires),
            u64::from(r.min_expires),
            604_800,
            "seconds, at least registrar.min_expires; default 7200",
        )?;
        range(
            "registrar.default_expires",
            u64::from(r.default_expires),
            u64::from(r.min_expires),
            u64::from(r.max_expires),
            "seconds, between registrar.min_expires and registrar.max_expires; default 3600",
        )?;
        range(
            "registrar.max_contacts",
            r.max_contacts as u64,
            0,
            10_000,
            "bindings per AoR; 0 = unlimited; default 10",
        )?;
        let a = &file.auth;
        if a.algorithms.is_empty() {
            return Err(ConfigError("auth.algorithms = [] is empty; allowed values: \"SHA-256\", \"MD5\"".into()));
        }
        for (i, alg) in a.algorithms.iter().enumerate() {
            if !["SHA-256", "MD5"].iter().any(|x| x.eq_ignore_ascii_case(alg)) {
                return Err(ConfigError(format!(
                    "auth.algorithms[{i}] = {alg:?} is not supported; allowed: \"SHA-256\", \"MD5\""
                )));
            }
        }
        range("auth.nonce_ttl_secs", a.nonce_ttl_secs, 10, 86_400, "seconds; default 300")?;
        let (store, cluster) = crate::cluster_config::validate(file.store, file.cluster, mode, &listen, store_url_env)
            .map_err(ConfigError)?;
        crate::push_check::validate(&file.push).map_err(ConfigError)?;
        range(
            "proxy.timer_c_secs",
            file.proxy.timer_c_secs,
            1,
            3600,
            "seconds; RFC 3261 wants more than 180; default 181",
        )?;
        if !file.proxy.outbound_proxy.is_empty() {
            let ok = file.proxy.outbound_uri().is_some_and(|u| sip_node::proxy::route::hop_of(&u).is_some());
            if !ok {
                return Err(ConfigError(format!(
                    "proxy.outbound_proxy = {:?} is not a SIP URI we can send to; write e.g. \"sip:edge.example.com\", \"sip:192.0.2.10:5060;transport=tcp\" or \"sips:edge.example.com\" (\"\" = none)",
                    file.proxy.outbound_proxy
                )));
            }
        }
        crate::dns_config::validate(&file.dns).map_err(ConfigError)?;
        let m = &file.management;
        // Checked even when the API is off (it may be turned on later).
        let addr: std::net::SocketAddr = m.listen.parse().map_err(|_| {
            ConfigError(format!("management.listen = {:?} is not IP:PORT, e.g. \"127.0.0.1:8060\"", m.listen))
        })?;
        if m.enabled && !addr.ip().is_loopback() && m.token.len() < 16 {
            return Err(ConfigError(format!(
                "management.listen = {:?} is not a loopback address, so management.token must be set (at least 16 characters; or listen on 127.0.0.1)",
                m.listen
            )));
        }
        Ok(Config {
            listen,
            data_dir: file.server.data_dir,
            server_header: file.server.server_header,
            log: file.log,
            sip: file.sip,
            registrar: file.registrar,
            auth: file.auth,
            store,
            cluster,
            management: file.management,
            proxy: file.proxy,
            dns: file.dns,
            push: file.push,
            mode,
            mid,
            mid_upstream_name,
            mid_section: file.mid_registrar,
            tls: file.tls,
            websocket: file.websocket,
            defence: file.defence,
        })
    }
}

fn range(key: &str, v: u64, min: u64, max: u64, what: &str) -> Result<(), ConfigError> {
    if v < min || v > max {
        return Err(ConfigError(format!("{key} = {v} is out of range; allowed {min}..={max} ({what})")));
    }
    Ok(())
}

/// Words a TOML/serde error: the toml crate already names the key and shows
/// the line; we add what to do about unknown keys.
fn describe_toml_error(e: &toml::de::Error) -> String {
    let msg = e.to_string();
    if msg.contains("unknown field") {
        format!("{msg}\n(remove or rename the key; sipwake.example.toml lists every key with its default)")
    } else {
        msg
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.data_dir, PathBuf::from("./sipwake-data"));
        assert_eq!(c.sip.t1_ms, 500);
        let d = SipConfig::default();
        assert_eq!(c.sip.tcp_message_timeout_secs, d.tcp_message_timeout_secs);
        assert_eq!(c.sip.tcp_max_queued_bytes, d.tcp_max_queued_bytes);
    }

    #[test]
    fn tcp_fault_limits_are_checked() {
        let e = err("[sip]\ntcp_message_timeout_secs = 0\n");
        assert!(e.contains("sip.tcp_message_timeout_secs = 0") && e.contains("allowed 1..=3600"), "{e}");
        let e = err("[sip]\ntcp_max_queued_bytes = 1000\n");
        assert!(e.contains("sip.tcp_max_queued_bytes = 1000") && e.contains("allowed 65536..="), "{e}");
        let c = Config::parse("[sip]\ntcp_message_timeout_secs = 5\ntcp_max_queued_bytes = 65536\n").unwrap();
        assert_eq!((c.sip.tcp_message_timeout_secs, c.sip.tcp_max_queued_bytes), (5, 65_536));
    }

    #[test]
    fn empty_file_gets_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.listen[0].to_string(), "udp:127.0.0.1:5060");
        assert_eq!(c.log.format, LogFormat::Plain);
    }

    /// The error a config text gets (shared by the section modules' tests).
    pub(crate) fn err(text: &str) -> String {
        Config::parse(text).unwrap_err().0
    }

    #[test]
    fn mid_registrar_mode() {
        let e = err("[server]\nmode = \"mid-registrar\"\n");
        assert!(e.contains("mid_registrar.upstream is not set"), "{e}");
        // Checked in registrar mode too.
        let e = err("[mid_registrar]\nthrottle = \"sometimes\"\n");
        assert!(e.contains("mid_registrar.throttle = \"sometimes\""), "{e}");
        let e = err("[server]\nmode = \"edge\"\n");
        assert!(e.contains("server.mode = \"edge\""), "{e}");
        // A host name is resolved at start-up (RFC 3263).
        let c =
            Config::parse("[server]\nmode = \"mid-registrar\"\n[mid_registrar]\nupstream = \"sip:pbx.example.com\"\n")
                .unwrap();
        assert_eq!(c.mid_upstream_name.as_ref().map(|q| q.host.as_str()), Some("pbx.example.com"));
        let e = err(
            "[server]\nmode = \"mid-registrar\"\n[mid_registrar]\nupstream = \"sip:pbx.example.com;transport=ws\"\n",
        );
        assert!(e.contains("mid_registrar.upstream = \"sip:pbx.example.com;transport=ws\""), "{e}");
        let c = Config::parse("[server]\nmode = \"mid-registrar\"\n[mid_registrar]\nupstream = \"sip:192.0.2.10\"\n")
            .unwrap();
        let m = c.mid.as_ref().unwrap();
        assert_eq!(
            (m.upstream.remote.to_string(), m.throttle),
            ("192.0.2.10:5060".into(), sip_node::mid::Throttle::Contact)
        );
        // The upstream authenticates: sipwake's own digest auth is off unless asked for.
        assert!(!c.auth.enabled_in(c.mode));
        assert!(Config::embedded().auth.enabled_in(Config::embedded().mode));
        assert!(Config::embedded().mid.is_none());
    }

    #[test]
    fn errors_name_key_value_and_fix() {
        let e = err("[sip]\nt1_ms = 0\n");
        assert!(e.contains("sip.t1_ms = 0") && e.contains("allowed 1..=60000"), "{e}");
        let e = err("[server]\nlisten = [\"udp:127.0.0.1:5060\", \"sctp:1.2.3.4:5060\"]\n");
        assert!(e.contains("server.listen[1]") && e.contains("sctp") && e.contains("udp:HOST:PORT"), "{e}");
        let e = err("[server]\nlisten = [\"udp:localhost:5060\"]\n");
        assert!(e.contains("not an IP address"), "{e}");
        let e = err("[sip]\nt1 = 5\n");
        assert!(e.contains("unknown field `t1`") && e.contains("t1_ms"), "{e}");
        let e = err("[log]\nformat = \"xml\"\n");
        assert!(e.contains("format") && e.contains("plain") && e.contains("json"), "{e}");
        let e = err("[sip]\nt1_ms = \"fast\"\n");
        assert!(e.contains("t1_ms"), "{e}");
        let e = err("[sip]\nt1_ms = 1000\nt2_ms = 500\n");
        assert!(e.contains("sip.t2_ms = 500") && e.contains("at least sip.t1_ms"), "{e}");
        let e = err("[server]\nlisten = []\n");
        assert!(e.contains("server.listen"), "{e}");
        let e = err("[log]\nlevel = \"[[[\"\n");
        assert!(e.contains("log.level"), "{e}");
        let e = err("[registrar]\ndomains = [\"sip:alice@example.com\"]\n");
        assert!(e.contains("registrar.domains[0]"), "{e}");
        let e = err("[registrar]\nmin_expires = 5000\n");
        assert!(e.contains("registrar.max_expires") || e.contains("registrar.default_expires"), "{e}");
        let e = err("[registrar]\nmax_contacts_policy = \"evict\"\n");
        assert!(e.contains("max_contacts_policy") && e.contains("reject"), "{e}");
        let e = err("[auth]\nalgorithms = [\"SHA-512\"]\n");
        assert!(e.contains("auth.algorithms[0]") && e.contains("SHA-256"), "{e}");
        let e = err("[management]\nlisten = \"0.0.0.0:8060\"\n");
        assert!(e.contains("management.token"), "{e}");
        let e = err("[store]\nsynchronous = \"sometimes\"\n");
        assert!(e.contains("store.synchronous"), "{e}");
        let e = err("[push]\nenable = true\n");
        assert!(e.contains("push.senders"), "{e}");
        let e = err(
            "[push]\nenable = true\nrefresh_lead_secs = 60\n[push.senders.\"*\"]\nwebhook = \"http://127.0.0.1:9/x\"\n",
        );
        assert!(e.contains("refresh_lead"), "{e}");
        let e = err("[push.senders.apns]\nwebhook = \"ftp://x\"\n");
        assert!(e.contains("push.senders.apns.webhook"), "{e}");
    }

    #[test]
    fn native_sender_tables_name_the_key_and_the_fix() {
        let e = err("[push.senders.apns]
key_file = \"k.p8\"\n");
        assert!(e.contains("push.senders.apns") && e.contains("key_id") && e.contains("certificate"), "{e}");
        let e = err("[push.senders.apns]\ncertificate = \"c.p12\"\nendpoint = \"staging\"\n");
        assert!(e.contains("push.senders.apns.endpoint") && e.contains("sandbox"), "{e}");
        let e = err("[push.senders.apns]\ncertificate = \"c.p12\"\nvoip_refresh = \"maybe\"\n");
        assert!(e.contains("push.senders.apns.voip_refresh") && e.contains("\"none\""), "{e}");
        let e = err("[push.senders.fcm]\n");
        assert!(e.contains("push.senders.fcm.service_account"), "{e}");
        let e = err("[push.senders.fcm]\nservice_account = \"sa.json\"\nkey_id = \"X\"\n");
        assert!(e.contains("push.senders.fcm.key_id is not used by a fcm sender"), "{e}");
        let e = err("[push.senders.webpush]\nvapid_private_key = \"v.pem\"\n");
        assert!(e.contains("push.senders.webpush.vapid_subject") && e.contains("mailto:"), "{e}");
        let e = err("[push.senders.fcm]\nservice_account = \"sa.json\"\nconnections = 0\n");
        assert!(e.contains("push.senders.fcm.connections"), "{e}");
        let e = err("[push]\naudit_window_secs = 0\n");
        assert!(e.contains("push.audit_window_secs = 0") && e.contains("3600"), "{e}");
        let e = err("[push]\naudit_max_events = 20000000\n");
        assert!(e.contains("push.audit_max_events = 20000000") && e.contains("or 0"), "{e}");
        let c = Config::parse("[push]\naudit_window_secs = 600\naudit_max_events = 0\n").unwrap();
        assert_eq!(c.push.audit(), sip_node::audit::AuditConfig { window: Duration::from_secs(600), max_events: 0 });
        let e = err("[push.senders.webpush]\nallowed_hosts = []\n");
        assert!(e.contains("push.senders.webpush.allowed_hosts"), "{e}");
        let e = err("[push.senders.gw]\ntimeout_ms = 10\n");
        assert!(e.contains("push.senders.gw") && e.contains("type ="), "{e}");
        let e = err("[push.senders.gw]\ntype = \"apn\"\n");
        assert!(e.contains("push.senders.gw.type") && e.contains("\"apns\""), "{e}");
        let e = err("[push.senders.huawei]\nwebhook = \"http://x/\"\ninvite_hold_secs = 20\n");
        assert!(e.contains("push.senders.huawei") && e.contains("push.providers"), "{e}");
        let e = err("[push]\nenable = true\n[push.senders.apns]\ncertificate = \"c.p12\"\ninvite_hold_secs = 900\n");
        assert!(e.contains("push.senders.apns.invite_hold_secs"), "{e}");
    }

    #[test]
    fn per_provider_policy_falls_back_to_star_then_push() {
        let c = Config::parse(
            "[push]\ninvite_hold_secs = 30\n[push.senders.\"*\"]\nwebhook = \"http://x/\"\nskip_interval_secs = 5\n\
             [push.senders.apns]\ncertificate = \"c.p12\"\ninvite_hold_secs = 45\ncancel_push = false\n",
        )
        .unwrap();
        let e = c.push.to_engine_config();
        assert_eq!(e.invite_hold_for("apns"), Duration::from_secs(45));
        assert_eq!(e.invite_hold_for("fcm"), Duration::from_secs(30));
        assert_eq!(e.skip_interval_for("apns"), Duration::from_secs(5));
        assert_eq!(e.skip_interval_for("fcm"), Duration::from_secs(5));
        let ce = c.push.call_end_pushes();
        let apns = ce.iter().find(|(n, _)| n == "apns").unwrap().1;
        assert!(!apns.cancel && apns.missed);
        let kinds: Vec<_> = c.push.sender_configs().into_iter().map(|(n, _)| n).collect();
        assert_eq!(kinds, vec!["*", "apns"]);
    }
}
