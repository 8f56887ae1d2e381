//! Process lifecycle: bind the listeners, start the core and its timer task,
//! print the bound addresses, wait for SIGTERM/SIGINT, shut down gracefully.

use crate::config::Config;
use crate::core::Core;
use anyhow::Context;
use sip_msg::Limits;
use sip_transport::{TransportConfig, Transports};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {} (server.data_dir)", config.data_dir.display()))?;
    let s = &config.sip;
    let tconf = TransportConfig {
        limits: Limits { max_message: s.max_message_bytes, max_headers: s.max_headers, max_header_len: 16_384 },
        tcp_idle_timeout: Duration::from_secs(s.tcp_idle_timeout_secs),
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
    let core = Arc::new(Core::new(&config, transports.clone()));
    transports.start(core.clone());
    let timers = tokio::spawn(core.clone().run_timers());
    {
        let mut out = std::io::stdout().lock();
        for (t, a) in transports.local_addrs() {
            let _ = writeln!(out, "sipwake listening on {t}:{a}");
            tracing::info!(listener = %format!("{t}:{a}"), "listening");
        }
        let _ = out.flush();
    }
    tracing::info!(version = env!("CARGO_PKG_VERSION"), data_dir = %config.data_dir.display(), "sipwake ready");
    wait_for_signal().await;
    tracing::info!("shutting down");
    transports.shutdown();
    core.shutdown();
    // Let writers flush what is queued.
    tokio::time::sleep(Duration::from_millis(100)).await;
    timers.abort();
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
