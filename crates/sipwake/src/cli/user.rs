//! `sipwake user add|del|list`: subscribers in the server's database (the
//! same store the server uses: `server.data_dir/sipwake.db`, or the
//! PostgreSQL database of `[store]` in a cluster; a running
//! server picks changes up within a second). Passwords are never stored:
//! only the MD5 and SHA-256 HA1 hashes (RFC 8760). Users of domains the
//! server does not serve are refused (`crate::subscribers`: the same rules
//! as the management API's users routes); `list` and `del` never create a
//! missing database. Touches no running server: only the store.

use clap::Subcommand;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use crate::config::Config;
use crate::subscribers::{check_domain, served_domains, split, with_password};

#[derive(Subcommand, Debug)]
pub enum UserAction {
    /// Add a subscriber or change its password. The password is read from
    /// standard input when it is not a terminal, else prompted for.
    Add {
        /// user@domain
        aor: String,
    },
    /// Delete a subscriber.
    Del {
        /// user@domain
        aor: String,
    },
    /// List subscribers.
    List,
    /// Add or update many subscribers at once from a file (or `-` for
    /// standard input) of `user@domain password` lines (one transaction).
    Import {
        /// The file, or `-` for standard input.
        file: String,
    },
}

/// The password: read from standard input when it is not a terminal, else
/// prompted for twice.
pub(crate) fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let p1 = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let p2 = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if p1 != p2 {
            return Err("the passwords differ".into());
        }
        Ok(p1)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| e.to_string())?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

pub fn run(config: &Config, action: UserAction) -> ExitCode {
    match run_inner(config, action) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Only `add` and `import` create the SQLite database (and its data
/// directory): reading or deleting in a directory that holds none is a
/// mistake (a wrong `--data-dir` or `server.data_dir`), said as such.
fn open(config: &Config, creates: bool) -> Result<std::sync::Arc<dyn location_store::Store>, String> {
    if !creates && !crate::store_open::is_postgres(config) {
        let db = config.data_dir.join("sipwake.db");
        if !db.exists() {
            return Err(format!(
                "no sipwake database at {} (server.data_dir = {:?}); give the server's data directory with --data-dir or server.data_dir",
                db.display(),
                config.data_dir.display().to_string()
            ));
        }
    }
    crate::store_open::open(config, "cli").map_err(|e| format!("{e:#}"))
}

/// The subscribers of an import file (`-`: standard input) of
/// `user@domain password` lines, every domain checked.
fn read_import(file: &str, served: &[String]) -> Result<Vec<location_store::Subscriber>, String> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| e.to_string())?
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?
    };
    let now = crate::server::now_ms();
    let mut subs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (aor, password) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{file}:{}: expected `user@domain password`", n + 1))?;
        let (user, domain) = split(aor).map_err(|e| format!("{file}:{}: {e}", n + 1))?;
        check_domain(served, &domain).map_err(|e| format!("{file}:{}: {e}", n + 1))?;
        subs.push(with_password(&user, &domain, password.trim(), now));
    }
    Ok(subs)
}

fn run_inner(config: &Config, action: UserAction) -> Result<(), String> {
    let creates = matches!(action, UserAction::Add { .. } | UserAction::Import { .. });
    let served = served_domains(config);
    // The user names are checked before anything is created or read.
    let mut imported = Vec::new();
    match &action {
        UserAction::Add { aor } => check_domain(&served, &split(aor)?.1)?,
        UserAction::Import { file } => imported = read_import(file, &served)?,
        _ => {}
    }
    let store = open(config, creates)?;
    let path = crate::store_open::describe(config);
    match action {
        UserAction::Add { aor } => {
            let (user, domain) = split(&aor)?;
            let password = read_password()?;
            if password.is_empty() {
                return Err("empty password".into());
            }
            let s = with_password(&user, &domain, &password, crate::server::now_ms());
            store.put_subscriber(&s).map_err(|e| e.to_string())?;
            println!("{user}@{domain} saved in {}", path);
        }
        UserAction::Del { aor } => {
            let (user, domain) = split(&aor)?;
            if store.delete_subscriber(&user, &domain).map_err(|e| e.to_string())? {
                println!("{user}@{domain} deleted");
            } else {
                return Err(format!("no subscriber {user}@{domain} in {}", path));
            }
        }
        UserAction::Import { .. } => {
            store.put_subscribers(&imported).map_err(|e| e.to_string())?;
            println!("{} subscribers saved in {}", imported.len(), path);
        }
        UserAction::List => {
            let mut list = store.subscribers().map_err(|e| e.to_string())?;
            list.sort_by(|a, b| (&a.domain, &a.user).cmp(&(&b.domain, &b.user)));
            for s in list {
                println!("{}@{}", s.user, s.domain);
            }
        }
    }
    Ok(())
}
