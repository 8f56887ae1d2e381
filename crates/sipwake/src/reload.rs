//! Live reload (SIGHUP, `POST /api/v1/reload`, `sipwake ctl reload`): the
//! configuration file is read and checked again as start-up checks it
//! (the command line's overrides applied again), and what can change
//! without dropping a binding, a call or a connection is applied:
//!
//! * `log.level` (unless RUST_LOG overrides it);
//! * `[defence]`: limits, lists, the management lists (blocks in force stay);
//! * `[push.senders]`: keys, service accounts, endpoints (pushes in flight
//!   finish with the old senders);
//! * `push.audit_window_secs`, `push.audit_max_events` (what no longer
//!   fits is dropped at once);
//! * the TLS certificate, key and CA files (re-read; open connections kept);
//! * subscribers (re-read from the store).
//!
//! Any other section that differs is named in the answer as needing a
//! restart, and keeps running as it was; a file that fails a check changes
//! nothing. Owns the comparison and the order of application; must not
//! hold any lock of the node across a file read.

use crate::config::{Config, ConfigError, LogFormat};
use crate::driver::Driver;
use serde::Serialize;
use sip_transport::{ListenSpec, Transports};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

/// The command line's replacements of configuration keys, applied at
/// start-up and again at every reload.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Vec<ListenSpec>,
    pub data_dir: Option<PathBuf>,
    pub management: Option<String>,
    pub log_format: Option<LogFormat>,
}

impl Overrides {
    pub fn apply(&self, config: &mut Config) -> Result<(), ConfigError> {
        if !self.listen.is_empty() {
            config.tls.check_listeners(&self.listen, "--listen").map_err(ConfigError)?;
            config.listen = self.listen.clone();
        }
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(m) = &self.management {
            config.management.listen = m.clone();
        }
        if let Some(f) = self.log_format {
            config.log.format = f;
        }
        Ok(())
    }
}

/// Where the configuration comes from: the file (`None`: the embedded
/// default) and the command line's overrides.
#[derive(Clone, Debug, Default)]
pub struct Source {
    pub path: Option<PathBuf>,
    pub overrides: Overrides,
}

impl Source {
    /// The configuration as start-up builds it, every check run.
    pub fn load(&self) -> Result<(Config, crate::preflight::Checked), ConfigError> {
        let mut config = match &self.path {
            Some(p) => Config::load(p)?,
            None => Config::embedded(),
        };
        self.overrides.apply(&mut config)?;
        config.defence.validate(&config.listen).map_err(ConfigError)?;
        let checked = crate::preflight::check(&config)?;
        Ok((config, checked))
    }
}

/// What a reload did.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Report {
    /// The file read (`embedded default` without `--config`).
    pub config: String,
    /// What was applied (`log.level`, `defence`, `push.senders`, `push.audit`, `tls files`, `subscribers`).
    pub applied: Vec<String>,
    /// Sections or keys that differ from what runs and need a restart to take effect.
    pub restart_required: Vec<String>,
}

/// The management lists, shared with the management listener.
pub type SharedAcl = Arc<RwLock<crate::defence_config::ManagementAcl>>;

/// The reloader of a running server.
pub struct Reloader {
    source: Source,
    /// The configuration running now (sections needing a restart keep their start-up values).
    running: Mutex<Config>,
    driver: Arc<Driver>,
    transports: Transports,
    mgmt_acl: SharedAcl,
}

/// `Debug` text of a section: sections hold plain data, so equal text is an equal section.
fn text<T: std::fmt::Debug>(v: &T) -> String {
    format!("{v:?}")
}

impl Reloader {
    pub fn new(
        source: Source,
        running: Config,
        driver: Arc<Driver>,
        transports: Transports,
        mgmt_acl: SharedAcl,
    ) -> Self {
        Reloader { source, running: Mutex::new(running), driver, transports, mgmt_acl }
    }

    /// Reads, checks and applies all but the log level, which it returns
    /// to apply; `Err` (nothing changed) when the file fails a check.
    fn reload(&self) -> Result<(Report, Option<String>), String> {
        let (new, checked) = self.source.load().map_err(|e| e.0)?;
        let mut level = None;
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut report = Report {
            config: self.source.path.as_ref().map_or("embedded default".into(), |p| p.display().to_string()),
            ..Report::default()
        };
        // What can still fail comes first: past it, nothing fails and
        // everything is applied (never half a reload).
        let rust_log = std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty());
        if new.log.level != running.log.level && !rust_log {
            crate::logging::check_level(&new.log.level)?;
        }
        let (defence_cfg, acl) = new.defence.validate(&new.listen)?;
        let subscribers = self.driver.store.subscribers().map_err(|e| format!("cannot reload subscribers: {e}"))?;
        let tls =
            running.listen.iter().any(|l| l.transport.is_secure()) || !running.tls.certificate.as_os_str().is_empty();
        if tls {
            // Re-read at the configured paths; a failure keeps the old ones whole.
            self.transports.reload_tls()?;
        }
        // log.level: applied last (`reload_logged`), so that the line saying
        // so is written at the level it was asked at.
        if new.log.level != running.log.level {
            if rust_log {
                report.restart_required.push("log.level (RUST_LOG is set and overrides it)".into());
            } else {
                level = Some(new.log.level.clone());
                running.log.level = new.log.level.clone();
                report.applied.push("log.level".into());
            }
        }
        let mut other_log = new.log.clone();
        other_log.level = running.log.level.clone();
        if text(&other_log) != text(&running.log) {
            report.restart_required.push("log (format, timestamps)".into());
        }
        // [defence]
        if text(&new.defence) != text(&running.defence) {
            let node_cfg = crate::defence_config::with_bound_ports(defence_cfg, &self.transports.local_addrs());
            self.driver.with_node(|n, _| n.set_defence(node_cfg));
            *self.mgmt_acl.write().unwrap_or_else(|e| e.into_inner()) = acl;
            running.defence = new.defence.clone();
            report.applied.push("defence".into());
        }
        // [push.senders]: the senders were built by the checks.
        if text(&new.push.senders) != text(&running.push.senders) {
            if new.push.enable && running.push.enable {
                self.driver.set_senders(checked.senders);
                running.push.senders = new.push.senders.clone();
                report.applied.push("push.senders".into());
            } else {
                report.restart_required.push("push.senders (push.enable changed)".into());
            }
        }
        // push.audit_*: how much of the push audit is kept.
        if (new.push.audit_window_secs, new.push.audit_max_events)
            != (running.push.audit_window_secs, running.push.audit_max_events)
        {
            let cfg = new.push.audit();
            self.driver.with_node(|n, _| n.set_push_audit(cfg));
            running.push.audit_window_secs = new.push.audit_window_secs;
            running.push.audit_max_events = new.push.audit_max_events;
            report.applied.push("push.audit".into());
        }
        let mut push_rest = new.push.clone();
        push_rest.senders = running.push.senders.clone();
        if text(&push_rest) != text(&running.push) && !report.restart_required.iter().any(|r| r.starts_with("push")) {
            report.restart_required.push("push".into());
        }
        if text(&new.tls) != text(&running.tls) {
            report.restart_required.push("tls".into());
        }
        if tls {
            report.applied.push("tls files".into());
        }
        self.driver.with_node(|n, _| n.set_subscribers(crate::store_map::secrets(subscribers)));
        report.applied.push("subscribers".into());
        // Everything else: named, not applied.
        let rest: [(&str, String, String); 15] = [
            ("server.listen", text(&new.listen), text(&running.listen)),
            ("server.data_dir", text(&new.data_dir), text(&running.data_dir)),
            ("server.server_header", text(&new.server_header), text(&running.server_header)),
            ("server.mode", text(&new.mode), text(&running.mode)),
            ("sip", text(&new.sip), text(&running.sip)),
            ("registrar", text(&new.registrar), text(&running.registrar)),
            ("auth", text(&new.auth), text(&running.auth)),
            ("store", text(&new.store), text(&running.store)),
            ("cluster", text(&new.cluster), text(&running.cluster)),
            ("management", text(&new.management), text(&running.management)),
            ("proxy", text(&new.proxy), text(&running.proxy)),
            ("dns", text(&new.dns), text(&running.dns)),
            ("mid_registrar", text(&new.mid_section), text(&running.mid_section)),
            ("websocket", text(&new.websocket), text(&running.websocket)),
            ("mid_registrar.upstream", text(&new.mid_upstream_name), text(&running.mid_upstream_name)),
        ];
        for (name, a, b) in rest {
            if a != b && !report.restart_required.iter().any(|r| name.starts_with(r.as_str())) {
                report.restart_required.push(name.into());
            }
        }
        Ok((report, level))
    }

    /// Reads, checks and applies, logged: one INFO line with what was
    /// applied and what needs a restart (then the new log level), or one
    /// ERROR line; `Err` (nothing changed) when the file fails a check.
    /// Blocking (reads files): call off the async threads.
    pub fn reload_logged(&self, why: &str) -> Result<Report, String> {
        let r = self.reload();
        let (r, level) = match r {
            Ok((rep, level)) => (Ok(rep), level),
            Err(e) => (Err(e), None),
        };
        match &r {
            Ok(rep) => tracing::info!(
                "reload ({why}): {}; applied: {}; needs a restart: {}",
                rep.config,
                rep.applied.join(", "),
                if rep.restart_required.is_empty() { "nothing".into() } else { rep.restart_required.join(", ") }
            ),
            Err(e) => tracing::error!("reload ({why}) failed, nothing changed: {e}"),
        }
        if let Some(l) = level
            && let Err(e) = crate::logging::set_level(&l)
        {
            tracing::error!("reload ({why}): log.level {l:?} not applied: {e}");
        }
        r
    }
}
