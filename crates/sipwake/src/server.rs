//! Process lifecycle: bind the listeners, start the core and its timer task,
//! print the bound addresses, wait for SIGTERM/SIGINT, shut down gracefully.

use crate::config::Config;
use crate::core::Core;
use crate::management::MgmtState;
use crate::registrar_svc::RegistrarService;
use anyhow::Context;
use sip_msg::Limits;
use sip_transport::{TransportConfig, Transports};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(config: Config) -> anyhow::Result<()> {
    // Install the signal handlers first: a SIGTERM that arrives while the
    // server starts must still mean "stop cleanly".
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {} (server.data_dir)", config.data_dir.display()))?;
    let s = &config.sip;
    let tconf = TransportConfig {
        limits: Limits { max_message: s.max_message_bytes, max_headers: s.max_headers, max_header_len: 16_384 },
        tcp_idle_timeout: Duration::from_secs(s.tcp_idle_timeout_secs),
        message_timeout: Duration::from_secs(s.tcp_message_timeout_secs),
        max_queued_bytes: s.tcp_max_queued_bytes,
        udp_tasks: if s.udp_workers == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
        } else {
            s.udp_workers
        },
        max_connections: s.max_connections,
        ..TransportConfig::default()
    };
    let transports = Transports::bind(&config.listen, tconf).await.with_context(|| {
        let l: Vec<String> = config.listen.iter().map(|l| l.to_string()).collect();
        format!("cannot bind listeners [{}] (server.listen / --listen)", l.join(", "))
    })?;
    let metrics = crate::metrics::install();
    let registrar = Arc::new(RegistrarService::open(&config, transports.clone())?);
    let core = Arc::new(Core::new(&config, transports.clone(), registrar.clone()));
    let _ = core.weak.set(Arc::downgrade(&core));
    transports.start(core.clone());
    let timers = tokio::spawn(core.clone().run_timers());
    let expiry = {
        let registrar = registrar.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let r = registrar.clone();
                let _ = tokio::task::spawn_blocking(move || r.expire()).await;
            }
        })
    };
    let mgmt_addr = if config.management.enabled {
        let listener = tokio::net::TcpListener::bind(&config.management.listen).await.with_context(|| {
            format!("cannot bind the management API on {} (management.listen)", config.management.listen)
        })?;
        let addr = listener.local_addr()?;
        let state = MgmtState {
            registrar: registrar.clone(),
            core: core.clone(),
            transports: transports.clone(),
            metrics,
            token: Some(config.management.token.clone()).filter(|t| !t.is_empty()),
            started: std::time::Instant::now(),
        };
        let app = crate::management::router(state);
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "management API stopped");
            }
        });
        Some(addr)
    } else {
        None
    };
    {
        let mut out = std::io::stdout().lock();
        for (t, a) in transports.local_addrs() {
            let _ = writeln!(out, "sipwake listening on {t}:{a}");
            tracing::info!(listener = %format!("{t}:{a}"), "listening");
        }
        if let Some(a) = mgmt_addr {
            let _ = writeln!(out, "sipwake management on http://{a}");
            tracing::info!(%a, "management API listening");
        }
        let _ = out.flush();
    }
    tracing::info!(version = env!("CARGO_PKG_VERSION"), data_dir = %config.data_dir.display(), "sipwake ready");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
    transports.shutdown();
    core.shutdown();
    expiry.abort();
    // Everything acknowledged is already durable; wait for what is in flight.
    let r = registrar.clone();
    let _ = tokio::task::spawn_blocking(move || r.flush()).await;
    // Let writers flush what is queued.
    tokio::time::sleep(Duration::from_millis(100)).await;
    timers.abort();
    tracing::info!("stopped");
    Ok(())
}
