//! Process lifecycle: bind the listeners, start the core and its timer task,
//! print the bound addresses, reload on SIGHUP (`reload`), wait for
//! SIGTERM/SIGINT, shut down gracefully.

use crate::config::Config;
use crate::config::MaxContactsPolicyName;
use crate::driver::Driver;
use crate::management::MgmtState;
use anyhow::Context;
use location_store::Store;
use sip_msg::Limits;
use sip_registrar::{MaxContactsPolicy, RegistrarConfig};
use sip_transport::{TransportConfig, Transports};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// Runs the server with `checked`: what [`crate::preflight::check`] built
/// from this `config` (the caller runs it first and stops on its error, as
/// `--check-config` does).
pub async fn run(
    config: Config,
    checked: crate::preflight::Checked,
    source: crate::reload::Source,
) -> anyhow::Result<()> {
    let started_with = config.clone();
    // Install the signal handlers first: a SIGTERM that arrives while the
    // server starts must still mean "stop cleanly".
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    config.tls.check_listeners(&config.listen, "--listen").map_err(|e| anyhow::anyhow!(e))?;
    let tls = checked.tls;
    if !tls.verify_server {
        tracing::warn!(
            "tls.verify_server = false: outbound TLS accepts any server certificate (no protection against impersonation)"
        );
    }
    crate::data_dir::create(&config.data_dir)?;
    // One server per SQLite database: held until `run` returns (the kernel
    // drops it when the process dies, even by SIGKILL).
    let _data_dir_lock = match config.store.backend {
        crate::config::StoreBackend::Sqlite => lock_data_dir(&config.data_dir)?,
        crate::config::StoreBackend::Postgres => None,
    };
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
        tls,
        ws_allowed_origins: config.websocket.allowed_origins.clone(),
        ..TransportConfig::default()
    };
    let transports = Transports::bind(&config.listen, tconf).await.with_context(|| {
        let l: Vec<String> = config.listen.iter().map(|l| l.to_string()).collect();
        format!("cannot bind listeners [{}] (server.listen / --listen)", l.join(", "))
    })?;
    let metrics = crate::metrics::install();
    crate::metrics::register_all(&config.push.providers);
    let senders = checked.senders;
    let resolver = crate::resolve::build(&config.dns);
    // A mid-registrar's upstream given by name: its address before anything starts.
    let mut config = config;
    let mut follow = None;
    if let (Some(q), Some(mid)) = (config.mid_upstream_name.clone(), config.mid.as_mut()) {
        let (t, ttl) = crate::resolve::upstream(resolver.as_ref(), &q)
            .await
            .map_err(|e| anyhow::anyhow!("mid_registrar.upstream = {:?}: {e}", config.mid_section.upstream))?;
        tracing::info!(upstream = %q.host, address = %t.remote, transport = %t.transport, "upstream registrar resolved");
        if t.transport == sip_msg::Transport::Tls {
            transports.set_server_name(t.remote, &q.host);
        }
        mid.upstream = t;
        follow = Some((q, ttl));
    }
    let membership = crate::store_open::is_postgres(&config).then(|| membership(&config, &transports)).transpose()?;
    // [defence] against the listeners as finally given (--listen replaces server.listen).
    let (defence, acl) = config.defence.validate(&config.listen).map_err(|e| anyhow::anyhow!(e))?;
    let defence = crate::defence_config::with_bound_ports(defence, &transports.local_addrs());
    let (store, node, relay) = open_node(&config, &transports, senders.as_ref(), membership.as_ref(), defence)?;
    let negative_ttl = Duration::from_secs(config.dns.negative_cache_secs);
    let driver = Driver::start(node, transports.clone(), store.clone(), senders, resolver, negative_ttl);
    // A cluster follows the change feed once the snapshot is loaded (the
    // feed buffers what comes meanwhile).
    let after_load: Option<crate::loader::AfterLoad> = match (membership, relay) {
        (Some((_, m)), Some(relay)) => Some(Box::new(move |d: &Arc<Driver>| d.start_cluster(m, &relay))),
        _ => None,
    };
    if let Some((q, ttl)) = follow {
        tokio::spawn(driver.clone().follow_upstream(q, ttl, Duration::from_secs(config.dns.max_cache_secs)));
    }
    transports.start(driver.clone());
    let mgmt_acl: crate::reload::SharedAcl = Arc::new(std::sync::RwLock::new(acl));
    let reloader = Arc::new(crate::reload::Reloader::new(
        source,
        started_with,
        driver.clone(),
        transports.clone(),
        mgmt_acl.clone(),
    ));
    let mgmt_addr = if config.management.enabled {
        let listener = tokio::net::TcpListener::bind(&config.management.listen).await.with_context(|| {
            format!("cannot bind the management API on {} (management.listen)", config.management.listen)
        })?;
        let addr = listener.local_addr()?;
        let state = MgmtState {
            driver: driver.clone(),
            store: store.clone(),
            transports: transports.clone(),
            metrics,
            token: Some(config.management.token.clone()).filter(|t| !t.is_empty()),
            started: std::time::Instant::now(),
            reloader: reloader.clone(),
        };
        let app = crate::management::router(state);
        let listener = crate::mgmt_acl::Guarded::new(listener, mgmt_acl);
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
    let (load_tx, mut load_rx) = tokio::sync::oneshot::channel();
    crate::loader::spawn(driver.clone(), store.clone(), after_load, load_tx)?;
    let mut loading = true;
    let mut failed = None;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            r = &mut load_rx, if loading => {
                loading = false;
                match r {
                    Ok(Ok(l)) => {
                        driver.location_loaded();
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "sipwake location loaded: {} bindings ({} push)", l.kept, l.push);
                        let _ = out.flush();
                    }
                    Ok(Err(e)) => {
                        failed = Some(e);
                        break;
                    }
                    Err(_) => {
                        failed = Some(anyhow::anyhow!("the location loader stopped without a result"));
                        break;
                    }
                }
            }
            _ = hup.recv() => {
                // Reads files: off the async threads; the next SIGHUP waits for it.
                let r = reloader.clone();
                let _ = tokio::task::spawn_blocking(move || r.reload_logged("SIGHUP")).await;
            }
        }
    }
    tracing::info!("shutting down");
    transports.shutdown();
    driver.shutdown();
    // Everything acknowledged is already durable; wait for what is in flight.
    let st = store.clone();
    let _ = tokio::task::spawn_blocking(move || st.close()).await;
    // Let writers flush what is queued.
    tokio::time::sleep(Duration::from_millis(100)).await;
    if let Some(e) = failed {
        return Err(e);
    }
    tracing::info!("stopped");
    Ok(())
}

/// The lock file in `server.data_dir`, holding the PID of the server that owns the directory.
pub const LOCK_FILE: &str = "sipwake.lock";

/// Takes the exclusive lock on `<dir>/sipwake.lock` (`flock`) and writes
/// our PID into it, or fails naming the PID that holds it. Only servers
/// take it: `sipwake user` opens the database beside a running server. A
/// file system without locks (some network file systems) gets a warning.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<Option<std::fs::File>> {
    use std::io::Read;
    let path = dir.join(LOCK_FILE);
    // Not truncated before it is ours: it holds the PID of its owner.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {} (server.data_dir)", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)
                .and_then(|()| writeln!(&file, "{}", std::process::id()))
                .with_context(|| format!("cannot write our PID into {} (server.data_dir)", path.display()))?;
            Ok(Some(file))
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!("another sipwake server (PID {pid})"),
                // It has the lock but has not written its PID yet.
                Err(_) => "another sipwake server (its PID is not written yet)".to_string(),
            };
            anyhow::bail!(
                "server.data_dir = {:?} is in use: {} is locked by {holder}; stop that server, or give this one another server.data_dir (or --data-dir)",
                dir.display().to_string(),
                path.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            tracing::warn!(
                lock = %path.display(),
                "server.data_dir is on a file system without file locks: nothing stops a second server on this directory"
            );
            Ok(None)
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {} (server.data_dir)", path.display()))
        }
    }
}

/// Unix time in ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The store, the node built on it, and (in a cluster) the feed relay.
type Opened = (Arc<dyn Store>, sip_node::Node, Option<Arc<crate::cluster::FeedRelay>>);

/// Opens the store, builds the node from the configuration with its loading
/// gate up (the bindings are restored by `loader` once it serves) and the
/// subscribers.
fn open_node(
    config: &Config,
    transports: &Transports,
    senders: Option<&push_senders::Senders>,
    membership: Option<&(String, crate::cluster::Membership)>,
    defence: sip_node::defence::DefenceConfig,
) -> anyhow::Result<Opened> {
    let node_id = membership.map_or("single", |(id, _)| id.as_str());
    let store = crate::store_open::open(config, node_id)?;
    // The feed listens before the bindings are read: nothing committed in between is missed.
    let relay = store.cluster().map(crate::cluster::follow).transpose()?;
    // A cluster shares its secrets: a nonce, a flow token or a PURR issued by
    // one node is accepted by every other.
    let secret = |name: &str| -> anyhow::Result<Option<[u8; 32]>> {
        match store.cluster() {
            Some(c) => {
                Ok(Some(c.shared_secret(name).with_context(|| format!("cannot read the cluster secret {name:?}"))?))
            }
            None => Ok(None),
        }
    };
    let nonce_secret = secret("digest-nonce")?;
    let flow_token_key = secret("flow-token")?.unwrap_or_else(rand::random);
    let purr_key = secret("purr")?;
    let mut domains: Vec<String> = config.registrar.domains.iter().map(|d| d.to_ascii_lowercase()).collect();
    if config.registrar.serve_listen_addresses {
        for (_, addr) in transports.local_addrs() {
            for ip in served_ips(addr) {
                if !domains.contains(&ip) {
                    domains.push(ip);
                }
            }
        }
    }
    let r = &config.registrar;
    let rcfg = RegistrarConfig {
        domains,
        default_expires: r.default_expires,
        min_expires: r.min_expires,
        max_expires: r.max_expires,
        max_contacts: r.max_contacts,
        max_contacts_policy: match r.max_contacts_policy {
            MaxContactsPolicyName::Reject => MaxContactsPolicy::Reject,
            MaxContactsPolicyName::ReplaceOldest => MaxContactsPolicy::ReplaceOldest,
        },
        ..RegistrarConfig::default()
    };
    tracing::info!(domains = ?rcfg.domains, "registrar domains");
    let auth = if config.auth.enabled_in(config.mode) {
        let mut acfg = sip_auth::AuthConfig::new(nonce_secret.unwrap_or_else(sip_auth::AuthConfig::random_secret));
        acfg.nonce_ttl = Duration::from_secs(config.auth.nonce_ttl_secs);
        acfg.algorithms = config.auth.algorithms.iter().filter_map(|a| sip_auth::Algorithm::from_name(a)).collect();
        Some(acfg)
    } else if config.mid.is_some() {
        tracing::info!("mid-registrar: REGISTERs are authenticated by the upstream registrar");
        None
    } else {
        tracing::warn!("auth.enabled = false: anyone can register any AoR of the served domains");
        None
    };
    let s = &config.sip;
    let p = &config.proxy;
    let ncfg = sip_node::NodeConfig {
        txn: sip_txn::Config {
            t1: s.t1(),
            t2: s.t2(),
            t4: s.t4(),
            trying_delay: Duration::from_millis(s.trying_delay_ms),
            ..sip_txn::Config::default()
        },
        registrar: rcfg,
        proxy: sip_node::ProxyConfig {
            record_route: p.record_route,
            authenticate_local_callers: p.authenticate_local_callers,
            allow_unauthenticated_inbound: p.allow_unauthenticated_inbound,
            relay_for_local_users: p.relay_for_local_users,
            timer_c: Duration::from_secs(p.timer_c_secs),
            outbound_proxy: p.outbound_uri(),
        },
        auth,
        push: config.push.enable.then(|| {
            let mut c = config.push.to_engine_config();
            c.require_secure_transport = require_secure_transport(config);
            if let Some(k) = purr_key {
                c.purr_key = Some(k.to_vec());
            }
            // +sip.vapid advertises the key the WebPush sender signs with (R22).
            for p in &mut c.providers {
                if let Some(k) = senders.and_then(|s| s.vapid_public_key(&p.name)) {
                    p.vapid = Some(k);
                }
            }
            c
        }),
        call_end_pushes: config.push.call_end_pushes(),
        push_audit: config.push.audit(),
        server_header: config.server_header.clone(),
        listeners: transports.local_addrs(),
        flow_token_key,
        seed: rand::random(),
        unix_ms: now_ms(),
        mid: config.mid.clone(),
        defence,
        cluster: membership.map(|(id, m)| sip_node::ClusterConfig {
            node_id: id.clone(),
            advertise: m.advertise,
            takeover_grace: Duration::from_millis(config.cluster.takeover_grace_ms),
            sync_timeout: Duration::from_millis(500),
            lookup_barrier: config.cluster.lookup_barrier,
        }),
    };
    let mut node = sip_node::Node::new(ncfg, std::time::Instant::now()).map_err(|e| anyhow::anyhow!(e))?;
    // The bindings are loaded once the node serves (`loader`): until then
    // what depends on them waits behind the gate.
    node.begin_loading();
    let subscribers = store.subscribers().context("cannot load subscribers")?;
    node.set_subscribers(crate::store_map::secrets(subscribers));
    Ok((store, node, relay))
}

/// This node's id and how it takes part in the cluster: the advertised
/// address is `cluster.advertise`, else the first UDP listener.
fn membership(config: &Config, transports: &Transports) -> anyhow::Result<(String, crate::cluster::Membership)> {
    let c = &config.cluster;
    let node = c.resolve(&transports.local_addrs()).map_err(|e| anyhow::anyhow!(e))?;
    tracing::info!(node = %node.node_id, advertise = %node.advertise, "cluster member");
    let m = crate::cluster::Membership {
        advertise: node.advertise,
        heartbeat: Duration::from_millis(c.heartbeat_ms),
        dead_after: Duration::from_millis(c.dead_after_ms),
    };
    Ok((node.node_id, m))
}

/// RFC 8599 §13 (R64): whether push coordinates must come over TLS/WSS:
/// as configured, else on when the server has a TLS or WSS listener.
fn require_secure_transport(config: &Config) -> bool {
    let secure_listener = config.listen.iter().any(|l| l.transport.is_secure());
    let on = config.push.require_secure_transport.unwrap_or(secure_listener);
    if !on {
        tracing::warn!(
            "push.require_secure_transport is off: push tokens (pn-prid) may arrive over UDP/TCP in clear text; RFC 8599 section 13 wants TLS (add a tls: or wss: listener, or set it to true)"
        );
    }
    on
}

/// The domains a listener address stands for: its IP, or for a wildcard
/// address the loopback of its family.
pub(crate) fn served_ips(addr: std::net::SocketAddr) -> Vec<String> {
    let ip = addr.ip();
    if ip.is_unspecified() {
        if ip.is_ipv4() { vec!["127.0.0.1".into()] } else { vec!["[::1]".into()] }
    } else if ip.is_ipv6() {
        vec![format!("[{ip}]")]
    } else {
        vec![ip.to_string()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_lock_is_exclusive_and_names_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_data_dir(dir.path()).unwrap().expect("this file system has locks");
        let pid = std::process::id().to_string();
        assert_eq!(std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap().trim(), pid);
        // flock is per open file: a second open, even in this process, is refused.
        let e = format!("{:#}", lock_data_dir(dir.path()).unwrap_err());
        assert!(e.contains("server.data_dir") && e.contains(LOCK_FILE) && e.contains(&format!("PID {pid}")), "{e}");
        assert!(e.contains("stop that server, or give this one another server.data_dir"), "{e}");
        drop(held);
        assert!(lock_data_dir(dir.path()).unwrap().is_some(), "released with its file");
    }
}
