//! `sipwake user add|del|list`: subscribers in the server's database (the
//! same store the server uses: `server.data_dir/sipwake.db`, or the
//! PostgreSQL database of `[store]` in a cluster; a running
//! server picks changes up within a second). Passwords are never stored:
//! only the MD5 and SHA-256 HA1 hashes (RFC 8760).

use clap::Subcommand;
use location_store::Subscriber;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use crate::config::Config;

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

fn split(aor: &str) -> Result<(String, String), String> {
    let aor = aor.strip_prefix("sip:").unwrap_or(aor);
    match aor.rsplit_once('@') {
        Some((u, d)) if !u.is_empty() && !d.is_empty() && !d.contains([':', '/']) => {
            Ok((u.to_string(), d.to_ascii_lowercase()))
        }
        _ => Err(format!("{aor:?} is not USER@DOMAIN (e.g. alice@example.com)")),
    }
}

fn read_password() -> Result<String, String> {
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

fn run_inner(config: &Config, action: UserAction) -> Result<(), String> {
    let store = crate::store_open::open(config, "cli").map_err(|e| format!("{e:#}"))?;
    let path = crate::store_open::describe(config);
    match action {
        UserAction::Add { aor } => {
            let (user, domain) = split(&aor)?;
            let password = read_password()?;
            if password.is_empty() {
                return Err("empty password".into());
            }
            let s = Subscriber {
                ha1_md5: sip_auth::ha1(sip_auth::Algorithm::Md5, &user, &domain, &password),
                ha1_sha256: sip_auth::ha1(sip_auth::Algorithm::Sha256, &user, &domain, &password),
                user: user.clone(),
                domain: domain.clone(),
                created_at_ms: crate::server::now_ms(),
            };
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
        UserAction::Import { file } => {
            let text = if file == "-" {
                std::io::read_to_string(std::io::stdin()).map_err(|e| e.to_string())?
            } else {
                std::fs::read_to_string(&file).map_err(|e| format!("cannot read {file}: {e}"))?
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
                let password = password.trim();
                subs.push(Subscriber {
                    ha1_md5: sip_auth::ha1(sip_auth::Algorithm::Md5, &user, &domain, password),
                    ha1_sha256: sip_auth::ha1(sip_auth::Algorithm::Sha256, &user, &domain, password),
                    user,
                    domain,
                    created_at_ms: now,
                });
            }
            store.put_subscribers(&subs).map_err(|e| e.to_string())?;
            println!("{} subscribers saved in {}", subs.len(), path);
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
