//! `sipwake ctl`: a client of the management API that prints tables (or
//! JSON with `--json`).

use crate::config::Config;
use crate::management::{AorList, AorView, BindingView, Removed, StatsView, UpstreamList};
use clap::{Args, Subcommand};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct CtlArgs {
    /// Base URL of the management API (default: from management.listen).
    #[arg(long)]
    url: Option<String>,
    /// Bearer token (default: management.token, or $SIPWAKE_TOKEN).
    #[arg(long, env = "SIPWAKE_TOKEN")]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    cmd: CtlCmd,
}

#[derive(Subcommand, Debug)]
enum CtlCmd {
    /// List AoRs and their bindings.
    Aors {
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Only AoRs starting with this text.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Show one AoR.
    Aor { aor: String },
    /// Delete one binding (with its id) or every binding of an AoR.
    Rm { aor: String, binding: Option<String> },
    /// Send a test push to one binding (RFC 8599 push coordinates).
    Push { aor: String, binding: String },
    /// Server statistics.
    Stats,
    /// Mid-registrar: the upstream registrar and the registrations held there.
    Upstream,
}

pub fn run(config: &Config, args: CtlArgs) -> ExitCode {
    match run_inner(config, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(config: &Config, args: CtlArgs) -> Result<(), String> {
    let base = args.url.clone().unwrap_or_else(|| format!("http://{}", config.management.listen));
    let token = args.token.clone().or_else(|| Some(config.management.token.clone()).filter(|t| !t.is_empty()));
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let call = |method: reqwest::Method, path: &str| -> Result<String, String> {
        let accept_502 = path.ends_with("/push");
        let mut rq = client.request(method, format!("{base}{path}"));
        if let Some(t) = &token {
            rq = rq.bearer_auth(t);
        }
        let resp = rq.send().map_err(|e| format!("cannot reach the management API at {base}: {e}"))?;
        let status = resp.status();
        let body = resp.text().map_err(|e| e.to_string())?;
        if !(status.is_success() || (accept_502 && status == reqwest::StatusCode::BAD_GATEWAY)) {
            return Err(format!("{status}: {}", body.trim()));
        }
        Ok(body)
    };
    let enc = |s: &str| s.replace('%', "%25").replace('/', "%2F").replace('?', "%3F").replace('#', "%23");
    match &args.cmd {
        CtlCmd::Aors { limit, offset, prefix } => {
            let mut path = format!("/api/v1/aors?limit={limit}&offset={offset}");
            if let Some(p) = prefix {
                path.push_str(&format!("&prefix={}", enc(p)));
            }
            let body = call(reqwest::Method::GET, &path)?;
            if args.json {
                println!("{body}");
            } else {
                let list: AorList = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                print_bindings(list.aors.iter().flat_map(|a| a.bindings.iter()));
                println!("({} of {} AoRs)", list.aors.len(), list.total);
            }
        }
        CtlCmd::Aor { aor } => {
            let body = call(reqwest::Method::GET, &format!("/api/v1/aors/{}", enc(aor)))?;
            if args.json {
                println!("{body}");
            } else {
                let v: AorView = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                print_bindings(v.bindings.iter());
            }
        }
        CtlCmd::Rm { aor, binding } => {
            let path = match binding {
                Some(id) => format!("/api/v1/aors/{}/bindings/{}", enc(aor), enc(id)),
                None => format!("/api/v1/aors/{}", enc(aor)),
            };
            let body = call(reqwest::Method::DELETE, &path)?;
            if args.json {
                println!("{body}");
            } else {
                let r: Removed = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                println!("removed {} binding(s)", r.removed);
            }
        }
        CtlCmd::Push { aor, binding } => {
            let body =
                call(reqwest::Method::POST, &format!("/api/v1/aors/{}/bindings/{}/push", enc(aor), enc(binding)))?;
            if args.json {
                println!("{body}");
            } else {
                let r: crate::management::PushResult = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                println!("test push: {}", r.result);
                if r.result != "ok" {
                    return Err(format!("the push service answered: {}", r.result));
                }
            }
        }
        CtlCmd::Upstream => {
            let body = call(reqwest::Method::GET, "/api/v1/upstream")?;
            if args.json {
                println!("{body}");
            } else {
                let l: UpstreamList = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                let u = &l.upstream;
                println!(
                    "upstream {} ({}, throttle {}) {}, {} REGISTER(s) in flight",
                    u.address,
                    u.transport,
                    u.throttle,
                    if u.up { "up" } else { "DOWN" },
                    u.in_flight
                );
                println!(
                    "{:<28} {:<18} {:>7} {:>4} {:<34} UPSTREAM CONTACT",
                    "AOR", "KEY", "EXPIRES", "LAST", "BINDINGS"
                );
                for r in &l.registrations {
                    println!(
                        "{:<28} {:<18} {:>7} {:>4} {:<34} {}",
                        r.aor,
                        r.key,
                        r.expires_in,
                        r.last_code,
                        r.bindings.join(","),
                        r.upstream_contact
                    );
                }
                println!("({} registration(s))", l.registrations.len());
            }
        }
        CtlCmd::Stats => {
            let body = call(reqwest::Method::GET, "/api/v1/stats")?;
            if args.json {
                println!("{body}");
            } else {
                let s: StatsView = serde_json::from_str(&body).map_err(|e| e.to_string())?;
                let v = serde_json::to_value(&s).map_err(|e| e.to_string())?;
                if let Some(obj) = v.as_object() {
                    for (k, v) in obj {
                        println!("{k:<22} {v}");
                    }
                }
            }
        }
    }
    Ok(())
}

fn print_bindings<'a>(bindings: impl Iterator<Item = &'a BindingView>) {
    println!(
        "{:<28} {:<16} {:>7} {:<5} {:<22} {:<6} {:<5} CONTACT",
        "AOR", "BINDING", "EXPIRES", "TRANS", "REMOTE", "FLOW", "PUSH"
    );
    for b in bindings {
        println!(
            "{:<28} {:<16} {:>7} {:<5} {:<22} {:<6} {:<5} {}",
            b.aor,
            b.id,
            b.expires_in_secs,
            b.flow.transport,
            b.flow.remote,
            if b.flow.alive { "alive" } else { "dead" },
            if b.push_capable { b.push.as_ref().map_or("yes", |p| p.provider.as_str()) } else { "-" },
            b.contact
        );
    }
}
