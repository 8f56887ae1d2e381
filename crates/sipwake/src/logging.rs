//! Log set-up: plain or JSON lines on stderr, filtered by the config's
//! `log.level` unless RUST_LOG is set. Colour only when stderr is a
//! terminal and NO_COLOR is not set; no timestamps when
//! `log.timestamps = false`, or when it is unset and stderr goes to the
//! systemd journal (`JOURNAL_STREAM`), which stamps lines itself.
//!
//! Owns the global subscriber (and its filter, which a reload replaces) only; what is logged is decided where it
//! happens. JSON lines are written by [`crate::log_json`].

use crate::config::{LogConfig, LogFormat};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init(cfg: &LogConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(&cfg.level));
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let ansi = std::io::stderr().is_terminal() && env("NO_COLOR").is_none();
    let timestamps = cfg.timestamps.unwrap_or_else(|| env("JOURNAL_STREAM").is_none());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    // Each shape keeps a handle on its filter, for `set_level` (reload).
    macro_rules! init_reloadable {
        ($b:expr) => {{
            let b = $b.with_filter_reloading();
            let h = b.reload_handle();
            let _ = SET_FILTER.set(Box::new(move |f| h.reload(f).map_err(|e| e.to_string())));
            b.try_init()
        }};
    }
    let _ = match (cfg.format, timestamps) {
        (LogFormat::Plain, true) => init_reloadable!(builder),
        (LogFormat::Plain, false) => init_reloadable!(builder.without_time()),
        (LogFormat::Json, _) => init_reloadable!(builder.event_format(crate::log_json::Json { timestamps })),
    };
}

type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// Replaces the running filter (set by [`init`]).
static SET_FILTER: std::sync::OnceLock<SetFilter> = std::sync::OnceLock::new();

/// Applies a new `log.level` to the running server (checked as start-up checks it).
pub fn set_level(level: &str) -> Result<(), String> {
    check_level(level)?;
    let filter = EnvFilter::try_new(level).map_err(|e| format!("log.level = {level:?}: {e}"))?;
    match SET_FILTER.get() {
        Some(set) => set(filter),
        None => Err("logging is not initialised".into()),
    }
}

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Checks `log.level`: a level (`trace`, `debug`, `info`, `warn`, `error`,
/// `off`) or a comma-separated list of directives, each a level or
/// `target=level` (e.g. `sipwake=debug,info`). A bare word that is not a
/// level (`verbose`) would parse as a target name and silence every log
/// line, so it is refused.
pub fn check_level(level: &str) -> Result<(), String> {
    let allowed = "allowed: \"error\", \"warn\", \"info\", \"debug\", \"trace\" or \"off\", or directives like \"sipwake=debug,info\"";
    if level.trim().is_empty() {
        return Err(format!("log.level = \"\" is empty; {allowed} (default \"info\")"));
    }
    for d in level.split(',').map(str::trim) {
        let lvl = match d.rsplit_once('=') {
            Some((target, lvl)) if !target.trim().is_empty() => lvl,
            Some(_) => d,
            None => d,
        };
        if d.is_empty() || !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(lvl.trim())) {
            return Err(format!("log.level = {level:?}: {d:?} is not a level; {allowed}"));
        }
    }
    EnvFilter::try_new(level).map_err(|e| format!("log.level = {level:?} is not a valid filter ({e}); {allowed}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_level;

    #[test]
    fn levels_and_directives() {
        for ok in ["info", "DEBUG", "warn", "sipwake=debug,info", "sip_node::oplog=warn,error", "off"] {
            assert!(check_level(ok).is_ok(), "{ok}");
        }
        let e = check_level("verbose").unwrap_err();
        assert!(e.contains("log.level = \"verbose\"") && e.contains("\"trace\""), "{e}");
        assert!(check_level("sipwake=loud").is_err());
        assert!(check_level("info,").is_err());
        assert!(check_level("").is_err());
    }
}
