//! The `sipwake` command: starts the server, checks a configuration file,
//! manages subscribers (`sipwake user`) and talks to a running server's
//! management API (`sipwake ctl`).

use clap::{Parser, Subcommand};
use sip_transport::ListenSpec;
use sipwake::config::{Config, LogFormat};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: a REGISTER makes about 120 small
/// allocations (parsed headers, the binding, its stored row, the 200 OK),
/// and glibc spent some 150 instructions on each malloc/free pair, 17% of
/// the instructions of a REGISTER (callgrind); mimalloc's thread-local free
/// lists take a fraction of that, and its size classes carry no per-chunk
/// header, which also shrinks the memory of a million bindings.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// SIP registrar and proxy that wakes sleeping phones with push notifications (RFC 8599).
#[derive(Parser, Debug)]
#[command(name = "sipwake", version, about, args_conflicts_with_subcommands = false)]
struct Cli {
    /// Configuration file (TOML). Without it, the embedded default is used:
    /// UDP and TCP on 127.0.0.1:5060, data in ./sipwake-data.
    #[arg(short, long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Validate a configuration file and exit (0 = valid).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["config", "listen"])]
    check_config: Option<PathBuf>,
    /// Listener, replacing the configured ones: udp:, tcp:, tls:, ws: or
    /// wss: then HOST:PORT (repeat for several; port 0 picks a free port;
    /// tls: and wss: need [tls] certificate and private_key).
    #[arg(long, value_name = "SPEC")]
    listen: Vec<ListenSpec>,
    /// Data directory, replacing server.data_dir.
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Management API address (IP:PORT), replacing management.listen.
    #[arg(long, value_name = "ADDR")]
    management: Option<String>,
    /// Log format, replacing log.format.
    #[arg(long, value_name = "plain|json")]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Manage subscribers (digest credentials) in the server's database.
    User {
        #[command(subcommand)]
        action: sipwake::cli::user::UserAction,
    },
    /// Query or change a running server through its management API.
    Ctl(sipwake::cli::ctl::CtlArgs),
    /// Print the manual page (roff) rendered from this command line
    /// (packaging/man/sipwake.1 is its output).
    #[command(hide = true)]
    Man,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Man)) {
        return sipwake::cli::man::print(<Cli as clap::CommandFactory>::command());
    }
    if let Some(path) = &cli.check_config {
        // Every check start-up runs before it binds: the same functions.
        return match Config::load(path).and_then(|c| sipwake::preflight::check(&c).map(|_| c)) {
            Ok(_) => {
                println!("{}: configuration is valid", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let mut config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::embedded(),
    };
    if !cli.listen.is_empty() {
        if let Err(e) = config.tls.check_listeners(&cli.listen, "--listen") {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        config.listen = cli.listen.clone();
    }
    if let Some(d) = &cli.data_dir {
        config.data_dir = d.clone();
    }
    if let Some(m) = &cli.management {
        if m.parse::<std::net::SocketAddr>().is_err() {
            eprintln!("error: --management {m:?} is not IP:PORT, e.g. 127.0.0.1:8060");
            return ExitCode::from(2);
        }
        config.management.listen = m.clone();
    }
    if let Some(f) = &cli.log_format {
        config.log.format = match f.as_str() {
            "plain" => LogFormat::Plain,
            "json" => LogFormat::Json,
            other => {
                eprintln!("error: --log-format {other:?} is invalid; allowed: plain, json");
                return ExitCode::from(2);
            }
        };
    }
    match cli.command {
        Some(Command::User { action }) => return sipwake::cli::user::run(&config, action),
        Some(Command::Ctl(args)) => return sipwake::cli::ctl::run(&config, args),
        Some(Command::Man) | None => {}
    }
    // The checks --check-config runs (files read, senders built): a
    // configuration error stops start-up with exit code 2, as there.
    let checked = match sipwake::preflight::check(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    sipwake::logging::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A reload (SIGHUP, `ctl reload`) reads the same file and applies the same overrides.
    let source = sipwake::reload::Source {
        path: cli.config.clone(),
        overrides: sipwake::reload::Overrides {
            listen: cli.listen.clone(),
            data_dir: cli.data_dir.clone(),
            management: cli.management.clone(),
            log_format: cli.log_format.as_ref().map(|_| config.log.format),
        },
    };
    match runtime.block_on(sipwake::server::run(config, checked, source)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
