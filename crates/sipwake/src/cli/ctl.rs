//! `sipwake ctl`: a client of the management API that prints tables (or
//! the API's JSON with `--json`). The global flags (`--json`, `--url`,
//! `--token`) go anywhere on the line; failures are one line on standard
//! error and a documented exit code (`ctl_http::Fail`).
//!
//! Owns the command line of `ctl` and which call each command makes; the
//! HTTP and error side is `ctl_http`, the tables `ctl_table`.

use super::ctl_http::{Api, Fail, decode, enc};
use super::ctl_table as table;
use crate::config::Config;
use crate::management::{AorList, AorView, PushResult, Removed, StatsView, UpstreamList};
use crate::mgmt_users::{UserList, UserSaved};
use clap::{Args, Subcommand};
use reqwest::Method;
use std::process::ExitCode;

const EXIT_CODES: &str = "Exit codes:
  0  done
  1  not found (no such AoR, binding or user)
  2  usage or configuration error (bad arguments, wrong or missing token, a request the server refuses as invalid)
  3  the server cannot be reached, or it failed (including a test push the push service did not accept)";

#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct CtlArgs {
    /// Base URL of the management API (default: from management.listen).
    #[arg(long, global = true)]
    url: Option<String>,
    /// Bearer token (default: management.token, or $SIPWAKE_TOKEN).
    #[arg(long, env = "SIPWAKE_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: CtlCmd,
}

#[derive(Subcommand, Debug)]
enum CtlCmd {
    /// List AoRs and their bindings (with their push state when push is on).
    Aors {
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Only AoRs starting with this text.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Show one AoR (user@domain).
    Aor { aor: String },
    /// Delete one binding (with its id) or every binding of an AoR; exit 1 when there is none.
    Rm { aor: String, binding: Option<String> },
    /// Send a test push to one binding (RFC 8599 push coordinates).
    Push { aor: String, binding: String },
    /// Server statistics.
    Stats,
    /// Push devices that let pushes go unanswered: expired although refresh pushes were sent,
    /// refresh pushes repeated while registered, or a delivered call push with no REGISTER.
    Flagged,
    /// The push audit of a call: held, each push (outcome, latency), the wake-up REGISTER
    /// (or none), the fork or the final answer. Exit 1 when nothing is kept for it.
    Call { call_id: String },
    /// Recent pushes with their outcome and latency (newest first), or one binding's push audit.
    Pushes {
        /// How many recent pushes (at most 1000; not used with --binding).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The audit of this binding (its id, as `ctl aors` shows it) instead.
        #[arg(long)]
        binding: Option<String>,
    },
    /// Requests held now while their devices are woken.
    Parked,
    /// Reload the configuration file as SIGHUP does; prints what was applied and what needs a restart
    /// (exit 2, nothing changed, when the file fails a check).
    Reload,
    /// Mid-registrar: the upstream registrar and the registrations held there.
    Upstream,
    /// Subscribers through the API (the rules of `sipwake user`: a served domain, hashes only).
    Users {
        #[command(subcommand)]
        action: Option<UsersCmd>,
    },
}

#[derive(Subcommand, Debug)]
enum UsersCmd {
    /// List subscribers (the default).
    List,
    /// Add a subscriber or change its password (read from standard input
    /// when it is not a terminal, else prompted for).
    Add { user: String },
    /// Delete a subscriber.
    Rm { user: String },
}

pub fn run(config: &Config, args: CtlArgs) -> ExitCode {
    match run_inner(config, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run_inner(config: &Config, args: CtlArgs) -> Result<(), Fail> {
    let base = args.url.clone().unwrap_or_else(|| format!("http://{}", config.management.listen));
    let token = args.token.clone().or_else(|| Some(config.management.token.clone()).filter(|t| !t.is_empty()));
    let api = Api::new(base, token)?;
    let json = args.json;
    // With --json the API's answer as it is; else `show` prints a table.
    let out = |body: &str, show: &dyn Fn(&str) -> Result<(), Fail>| -> Result<(), Fail> {
        if json {
            println!("{}", body.trim_end());
            Ok(())
        } else {
            show(body)
        }
    };
    match &args.cmd {
        CtlCmd::Aors { limit, offset, prefix } => {
            let mut path = format!("/api/v1/aors?limit={limit}&offset={offset}");
            if let Some(p) = prefix {
                path.push_str(&format!("&prefix={}", enc(p).replace('&', "%26").replace('+', "%2B")));
            }
            out(&api.ok(Method::GET, &path)?, &|b| {
                let list: AorList = decode(b)?;
                table::bindings(list.aors.iter().flat_map(|a| a.bindings.iter()));
                println!("({} of {} AoRs)", list.aors.len(), list.total);
                Ok(())
            })
        }
        CtlCmd::Aor { aor } => out(&api.ok(Method::GET, &format!("/api/v1/aors/{}", enc(aor)))?, &|b| {
            let v: AorView = decode(b)?;
            table::bindings(v.bindings.iter());
            Ok(())
        }),
        CtlCmd::Rm { aor, binding } => {
            let path = match binding {
                Some(id) => format!("/api/v1/aors/{}/bindings/{}", enc(aor), enc(id)),
                None => format!("/api/v1/aors/{}", enc(aor)),
            };
            out(&api.ok(Method::DELETE, &path)?, &|b| {
                let r: Removed = decode(b)?;
                println!("removed {} binding(s)", r.removed);
                Ok(())
            })
        }
        CtlCmd::Push { aor, binding } => {
            let path = format!("/api/v1/aors/{}/bindings/{}/push", enc(aor), enc(binding));
            let (_, body) = api.call(Method::POST, &path, None, &[502])?;
            let r: PushResult = decode(&body)?;
            out(&body, &|_| {
                println!("test push: {}", r.result);
                Ok(())
            })?;
            if r.result != "ok" {
                return Err(Fail::Server(format!("the push service answered: {} (502)", r.result)));
            }
            Ok(())
        }
        CtlCmd::Upstream => out(&api.ok(Method::GET, "/api/v1/upstream")?, &|b| {
            table::upstream(&decode::<UpstreamList>(b)?);
            Ok(())
        }),
        CtlCmd::Flagged => out(&api.ok(Method::GET, "/api/v1/push/flagged")?, &|b| {
            let list: crate::mgmt_push::FlaggedList = decode(b)?;
            println!(
                "{:<32} {:<18} {:<9} {:<18} {:>7} {:>5}  LAST",
                "AOR", "BINDING", "PROVIDER", "REASON", "PUSHES", "TIMES"
            );
            let now = crate::server::now_ms();
            for f in &list.flagged {
                let ago = now.saturating_sub(f.at_ms) / 1000;
                println!(
                    "{:<32} {:<18} {:<9} {:<18} {:>7} {:>5}  {ago} s ago",
                    f.aor, f.binding, f.provider, f.reason, f.refresh_pushes, f.times
                );
            }
            println!("({} flagged)", list.flagged.len());
            Ok(())
        }),
        CtlCmd::Call { call_id } => out(&api.ok(Method::GET, &format!("/api/v1/push/calls/{}", enc(call_id)))?, &|b| {
            let v: serde_json::Value = decode(b)?;
            println!("push audit of Call-ID {call_id}");
            table::events(v.get("events").and_then(serde_json::Value::as_array).map_or(&[], Vec::as_slice));
            Ok(())
        }),
        CtlCmd::Pushes { binding: Some(id), .. } => {
            out(&api.ok(Method::GET, &format!("/api/v1/push/bindings/{}", enc(id)))?, &|b| {
                let v: serde_json::Value = decode(b)?;
                println!("push audit of binding {id}");
                table::events(v.get("events").and_then(serde_json::Value::as_array).map_or(&[], Vec::as_slice));
                Ok(())
            })
        }
        CtlCmd::Pushes { limit, binding: None } => {
            out(&api.ok(Method::GET, &format!("/api/v1/push/recent?limit={limit}"))?, &|b| {
                let v: serde_json::Value = decode(b)?;
                table::pushes(v.get("pushes").and_then(serde_json::Value::as_array).map_or(&[], Vec::as_slice));
                Ok(())
            })
        }
        CtlCmd::Parked => out(&api.ok(Method::GET, "/api/v1/push/parked")?, &|b| {
            let v: serde_json::Value = decode(b)?;
            table::parked(v.get("parked").and_then(serde_json::Value::as_array).map_or(&[], Vec::as_slice));
            Ok(())
        }),
        CtlCmd::Reload => {
            let (_, body) = api.call(Method::POST, "/api/v1/reload", None, &[])?;
            out(&body, &|b| {
                let r: crate::reload::Report = decode(b)?;
                println!("reloaded {}", r.config);
                println!("applied: {}", r.applied.join(", "));
                if r.restart_required.is_empty() {
                    println!("needs a restart: nothing");
                } else {
                    println!("needs a restart: {} (still running as before)", r.restart_required.join(", "));
                }
                Ok(())
            })
        }
        CtlCmd::Stats => out(&api.ok(Method::GET, "/api/v1/stats")?, &|b| {
            table::stats(&decode::<StatsView>(b)?);
            Ok(())
        }),
        CtlCmd::Users { action } => match action.as_ref().unwrap_or(&UsersCmd::List) {
            UsersCmd::List => out(&api.ok(Method::GET, "/api/v1/users")?, &|b| {
                table::users(&decode::<UserList>(b)?);
                Ok(())
            }),
            UsersCmd::Add { user } => {
                let password = super::user::read_password().map_err(Fail::Usage)?;
                if password.is_empty() {
                    return Err(Fail::Usage("empty password".into()));
                }
                let body = serde_json::json!({ "password": password });
                let (_, answer) = api.call(Method::PUT, &format!("/api/v1/users/{}", enc(user)), Some(body), &[])?;
                out(&answer, &|b| {
                    let s: UserSaved = decode(b)?;
                    println!("{} {}", s.user, if s.created { "added" } else { "password changed" });
                    Ok(())
                })
            }
            UsersCmd::Rm { user } => out(&api.ok(Method::DELETE, &format!("/api/v1/users/{}", enc(user)))?, &|_| {
                println!("{user} deleted");
                Ok(())
            }),
        },
    }
}
