//! Connecting to PostgreSQL: the URL (libpq style), its `sslmode`, TLS with
//! rustls, the redacted name of the database used in every message, the
//! translation of driver errors into [`Error`]s, and [`blocking`], which
//! keeps the synchronous driver off async runtime threads.
//!
//! Owns the connection settings and the error wording. Must not run any
//! query on the tables (that is `rows.rs`, `writer.rs`, `feed.rs`,
//! `cluster.rs`) or change the schema (that is `migrations.rs`).
//!
//! `sslmode`: `disable`, `allow` and `prefer` connect in plain text (so
//! `prefer`, libpq's default, never tries TLS here); `require`, `verify-ca`
//! and `verify-full` require TLS **and** verify the server's certificate and
//! host name against the system roots, or against `ca_file` (or the URL's
//! `sslrootcert`) when given — stricter than libpq's `require`, which
//! skips verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use postgres::config::{Host, SslMode};
use postgres::{Client, Config, NoTls};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgOptions;
use crate::error::{Error, Result};

/// Where and how to connect: parsed once at open, used for every
/// connection (writer, feed, readers, reconnects).
#[derive(Clone)]
pub(crate) struct Target {
    config: Config,
    tls: Option<MakeRustlsConnect>,
    /// The database as messages name it: the URL without password.
    pub(crate) name: String,
}

impl Target {
    /// Parse `opts.url` and prepare TLS. Fails with [`Error::Open`] (naming
    /// the redacted URL) on a malformed URL, an unknown `sslmode` or an
    /// unreadable CA file.
    pub(crate) fn new(opts: &PgOptions) -> Result<Self> {
        let (cleaned, sslmode, rootcert) = split_ssl_params(&opts.url);
        let open_err = |reason: String| Error::Open { path: PathBuf::from(redact(&opts.url)), reason };
        let mut config: Config = cleaned.parse().map_err(|e: postgres::Error| {
            open_err(format!("{}; expected postgres://user:password@host:port/database?sslmode=require", describe(&e)))
        })?;
        let name = display_name(&config);
        let tls_required = match sslmode.as_deref() {
            None | Some("disable" | "allow" | "prefer") => false,
            Some("require" | "verify-ca" | "verify-full") => true,
            Some(other) => {
                return Err(open_err(format!(
                    "unknown sslmode {other:?}; use disable, prefer, require or verify-full"
                )));
            }
        };
        let tls = if tls_required {
            let ca = opts.ca_file.clone().or(rootcert.map(PathBuf::from));
            Some(tls_connector(ca.as_deref()).map_err(|reason| Error::Open { path: PathBuf::from(&name), reason })?)
        } else {
            None
        };
        config
            .ssl_mode(if tls_required { SslMode::Require } else { SslMode::Disable })
            .connect_timeout(opts.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .tcp_user_timeout(Duration::from_secs(30))
            .application_name("sipwake");
        Ok(Self { config, tls, name })
    }

    /// One new connection. A server that cannot be reached gives
    /// [`Error::Unavailable`]; one that refuses us (authentication, missing
    /// database, TLS verification) gives [`Error::Open`] with what to fix.
    pub(crate) fn connect(&self) -> Result<Client> {
        let result = match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        };
        result.map_err(|e| self.connect_error(&e))
    }

    /// The connect timeout (also the limit of a liveness check).
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.config.get_connect_timeout().copied().unwrap_or(Duration::from_secs(5))
    }

    fn connect_error(&self, e: &postgres::Error) -> Error {
        let reason = describe(e);
        let open = |hint: &str| Error::Open { path: PathBuf::from(&self.name), reason: format!("{reason}; {hint}") };
        if let Some(db) = e.as_db_error() {
            let code = db.code().code();
            if code.starts_with("28") {
                return open("check the user and password of the database URL, and pg_hba.conf");
            }
            if code == "3D000" {
                return open("create the database (createdb), or fix the database name of the URL");
            }
        }
        if reason.starts_with("error performing TLS handshake") {
            return open(
                "check the server's certificate and host name, or give the CA that signed it (ca_file, sslrootcert)",
            );
        }
        if reason.starts_with("invalid configuration") {
            return open("check the database URL");
        }
        Error::Unavailable { what: self.name.clone(), reason }
    }

    /// A failed statement or transaction as an [`Error`]: a lost or
    /// unusable connection is [`Error::Unavailable`], anything else
    /// [`Error::Postgres`].
    pub(crate) fn error(&self, op: impl Into<String>, e: &postgres::Error) -> Error {
        if is_connection_error(e) {
            Error::Unavailable { what: self.name.clone(), reason: describe(e) }
        } else {
            Error::Postgres { db: self.name.clone(), op: op.into(), reason: describe(e) }
        }
    }
}

/// Whether `e` means the connection is lost or unusable (rather than a
/// statement failing on a healthy connection).
pub(crate) fn is_connection_error(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        // connection_exception, admin/crash shutdown, cannot_connect_now,
        // too_many_connections, read-only after a failover.
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "25006");
    }
    let text = e.to_string();
    [
        "error communicating with the server",
        "connection closed",
        "error connecting to server",
        "timeout waiting for server",
        "unexpected message from server",
        "error parsing response from server",
        "error performing TLS handshake",
    ]
    .iter()
    .any(|p| text.starts_with(p))
}

/// Whether `e` is a transient conflict with another node's transaction
/// (deadlock, serialization failure): retrying the transaction is right.
pub(crate) fn is_conflict(e: &postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| matches!(db.code().code(), "40P01" | "40001"))
}

/// The driver's error with its cause (its `Display` alone says only
/// "db error" or "error connecting to server").
pub(crate) fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            s.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = db.hint() {
            s.push_str(&format!("; hint: {hint}"));
        }
        return s;
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// The database as messages name it, from the parsed configuration:
/// `postgres://user@host:port/database`, never the password.
fn display_name(config: &Config) -> String {
    let user = config.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let hosts = if hosts.is_empty() { "localhost".to_owned() } else { hosts.join(",") };
    let db = config.get_dbname().map(|d| format!("/{d}")).unwrap_or_default();
    format!("postgres://{user}{hosts}{db}")
}

/// `url` without its password, for messages about a URL that does not even
/// parse: the password of the user-info part (`user:secret@`) and any
/// `password=` parameter are replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..].find(['/', '?']).map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("password=") {
        let value_start = i + "password=".len();
        result.push_str(&rest[..value_start]);
        result.push_str("***");
        let value_end = rest[value_start..].find(['&', ' ']).map_or(rest.len(), |j| value_start + j);
        rest = &rest[value_end..];
    }
    result.push_str(rest);
    result
}

/// Take `sslmode` and `sslrootcert` out of the URL (the driver knows
/// neither `verify-full` nor `sslrootcert`): the rest of the URL, and their
/// values. Works on both the URL and the `key=value` forms.
fn split_ssl_params(url: &str) -> (String, Option<String>, Option<String>) {
    let mut sslmode = None;
    let mut rootcert = None;
    let mut take = |kv: &str| -> bool {
        if let Some(v) = kv.strip_prefix("sslmode=") {
            sslmode = Some(v.to_owned());
            true
        } else if let Some(v) = kv.strip_prefix("sslrootcert=") {
            rootcert = Some(v.to_owned());
            true
        } else {
            false
        }
    };
    let cleaned = if url.contains("://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let kept: Vec<&str> = query.split('&').filter(|kv| !kv.is_empty() && !take(kv)).collect();
                if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
            }
            None => url.to_owned(),
        }
    } else {
        url.split_whitespace().filter(|kv| !take(kv)).collect::<Vec<_>>().join(" ")
    };
    (cleaned, sslmode, rootcert)
}

/// A rustls connector (aws-lc-rs) verifying against `ca_file`, or the
/// system roots without one.
fn tls_connector(ca_file: Option<&Path>) -> std::result::Result<MakeRustlsConnect, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(path).and_then(|it| it.collect::<std::result::Result<_, _>>()).map_err(
                    |e| format!("cannot read the CA file {}: {e}; give a PEM file of certificates", path.display()),
                )?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("the CA file {} holds no usable certificate", path.display()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "no system root certificates found for sslmode=require; install ca-certificates or set ca_file"
                        .to_owned(),
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Run `f`, which uses the synchronous driver, where that is allowed: the
/// driver runs a small runtime of its own per connection and would panic
/// inside another async runtime's context, so from there `f` runs on a
/// short-lived thread of its own (and the caller waits for it).
pub(crate) fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_removes_passwords() {
        assert_eq!(
            redact("postgres://u:s3cr3t@h:5432/db?sslmode=require"),
            "postgres://u:***@h:5432/db?sslmode=require"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db?password=abc&x=1"), "postgres://h/db?password=***&x=1");
        assert_eq!(redact("host=h password=abc user=u"), "host=h password=*** user=u");
        assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn ssl_params_are_taken_out() {
        let (u, m, r) = split_ssl_params("postgres://u:p@h/db?sslmode=verify-full&application_name=x&sslrootcert=/ca");
        assert_eq!(u, "postgres://u:p@h/db?application_name=x");
        assert_eq!((m.as_deref(), r.as_deref()), (Some("verify-full"), Some("/ca")));
        let (u, m, _) = split_ssl_params("postgres://h/db?sslmode=require");
        assert_eq!((u.as_str(), m.as_deref()), ("postgres://h/db", Some("require")));
        let (u, m, _) = split_ssl_params("host=h sslmode=disable dbname=d");
        assert_eq!((u.as_str(), m.as_deref()), ("host=h dbname=d", Some("disable")));
    }

    #[test]
    fn name_never_shows_the_password() {
        let opts = PgOptions::new("postgres://alice:hunter2@db.example.com:6543/sip?sslmode=disable", "n1");
        let t = Target::new(&opts).unwrap();
        assert_eq!(t.name, "postgres://alice@db.example.com:6543/sip");
        let opts = PgOptions::new("postgres://alice:hunter2@db.example.com/sip?sslmode=bogus", "n1");
        let err = Target::new(&opts).err().unwrap().to_string();
        assert!(err.contains("sslmode") && !err.contains("hunter2"), "{err}");
        let opts = PgOptions::new("postgres://alice:hunter2@db.example.com:notaport/sip", "n1");
        let err = Target::new(&opts).err().unwrap().to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn missing_ca_file_is_named() {
        let mut opts = PgOptions::new("postgres://u@h/db?sslmode=verify-full", "n1");
        opts.ca_file = Some("/nonexistent/ca.pem".into());
        let err = Target::new(&opts).err().unwrap().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
