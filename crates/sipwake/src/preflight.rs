//! The checks that read the file system, shared by start-up (`main`,
//! before `server::run`, which takes what they built) and `--check-config`
//! so that they can never disagree:
//! the TLS certificate, key and CA files; every `[push.senders.<name>]`
//! table's sender built (key files, service accounts, exec programs),
//! whether push is enabled or not; and `server.data_dir` not being a file.
//! [`Config::load`] has already run every check that needs no file.
//!
//! Owns no run-time state: it returns what start-up uses (the TLS settings
//! and, when push is enabled, the senders) and binds no socket.

use crate::config::{Config, ConfigError};
use std::path::Path;

/// What the checks built, for start-up to use.
pub struct Checked {
    /// The transports' TLS settings (their files were read and parsed).
    pub tls: sip_transport::TlsSettings,
    /// The push senders (`None` when push is disabled).
    pub senders: Option<push_senders::Senders>,
}

/// Runs every check that reads files; the first error, naming the key as
/// written in the file and what to write instead.
pub fn check(config: &Config) -> Result<Checked, ConfigError> {
    let tls = config.tls.to_settings();
    tls.check().map_err(|e| ConfigError(tls_error(config, &e)))?;
    if config.data_dir.exists() && !config.data_dir.is_dir() {
        return Err(ConfigError(format!(
            "server.data_dir = {:?} is a file, not a directory; give a directory (it is created if missing)",
            config.data_dir.display().to_string()
        )));
    }
    for (name, s) in &config.push.senders {
        if let Some(prog) = s.exec.as_ref().and_then(|e| e.first()) {
            check_program(name, prog).map_err(ConfigError)?;
        }
    }
    // Built even when push is off: a table in the file must work the day
    // push.enable is turned on.
    let senders = if config.push.enable || !config.push.senders.is_empty() {
        Some(crate::push_config::build_senders(&config.push).map_err(ConfigError)?)
    } else {
        None
    };
    Ok(Checked { tls, senders: senders.filter(|_| config.push.enable) })
}

/// A TLS file error with the key that names the file.
fn tls_error(config: &Config, e: &str) -> String {
    let t = &config.tls;
    for (key, path) in [
        // A key that does not match its certificate names both: the key first.
        ("tls.private_key", &t.private_key),
        ("tls.certificate", &t.certificate),
        ("tls.ca_file", &t.ca_file),
        ("tls.client_ca_file", &t.client_ca_file),
        ("tls.client_private_key", &t.client_private_key),
        ("tls.client_certificate", &t.client_certificate),
    ] {
        let shown = path.display().to_string();
        if !shown.is_empty() && e.contains(&shown) {
            return format!("{key} = {shown:?}: {e}; give a readable PEM file that belongs with the others of [tls]");
        }
    }
    format!("[tls]: {e}")
}

/// An exec sender's program must be an executable file: a path, or a
/// name found on PATH.
fn check_program(name: &str, prog: &str) -> Result<(), String> {
    let key = format!("push.senders.{}.exec[0] = {prog:?}", crate::push_config::toml_name(name));
    let fix = "give the path of an executable program, e.g. [\"/usr/local/bin/push-hook\"]";
    let p = Path::new(prog);
    if prog.contains('/') {
        if !p.is_file() {
            return Err(format!("{key}: no such file; {fix}"));
        }
        if !is_executable(p) {
            return Err(format!("{key}: the file is not executable (chmod +x it); {fix}"));
        }
        return Ok(());
    }
    let found = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|d| d.join(p).is_file() && is_executable(&d.join(p))))
        .unwrap_or(false);
    if found { Ok(()) } else { Err(format!("{key}: no such program on PATH; {fix}")) }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_programs_must_exist_and_run() {
        let e = check_program("gw", "/nonexistent/push-hook").unwrap_err();
        assert!(e.contains("push.senders.gw.exec[0] = \"/nonexistent/push-hook\": no such file"), "{e}");
        assert!(check_program("gw", "/bin/sh").is_ok());
        assert!(check_program("gw", "sh").is_ok());
        assert!(check_program("gw", "no-such-program-sipwake").unwrap_err().contains("on PATH"));
    }
}
