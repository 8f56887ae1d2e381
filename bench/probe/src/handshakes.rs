//! `sip-probe handshakes`: new TLS connections at a target rate, each one
//! TCP connect + full TLS handshake (no session resumption unless
//! `--resume`) + one REGISTER of a new AoR + close (close_notify, FIN). It
//! measures the cost of a connection: completed connections/s, connect →
//! handshake done and connect → 200 latency, errors.
//!
//! Same stdout protocol as `phones.rs`: `ready 0` when the load starts, then
//! one JSON line with the results (printed once every connection has ended).
//! At most `--max-inflight` connections are open at once (default 2000);
//! when the server falls behind, new connections wait and the achieved
//! rate drops below the offered one. Only the load: no server side.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::phones::final_status;
use crate::stats::{arg, arg_num, json_fields, raise_nofile};
use crate::tls::{self, TlsOptions};

/// Latencies of one connection (µs), or its error.
type Outcome = Result<(u64, u64, Option<tls::Negotiated>), String>;

pub fn run(args: &[String]) -> Result<(), String> {
    raise_nofile();
    let target: SocketAddr =
        arg(args, "--target").ok_or("--target IP:PORT is required")?.parse().map_err(|e| format!("--target: {e}"))?;
    let rate = arg_num(args, "--rate", 200)?.max(1);
    let secs = arg_num(args, "--secs", 5)?;
    let timeout = Duration::from_millis(arg_num(args, "--timeout-ms", 5000)?);
    let inflight = arg_num(args, "--max-inflight", 2000)?.max(1) as usize;
    let domain = arg(args, "--domain").unwrap_or_else(|| "127.0.0.1".into());
    let prefix = arg(args, "--user-prefix").unwrap_or_else(|| "hs".into());
    let opts = TlsOptions {
        ca: arg(args, "--ca").ok_or("--ca FILE is required")?,
        server_name: arg(args, "--server-name"),
        kx: arg(args, "--kx"),
        resume: args.iter().any(|a| a == "--resume"),
    };
    let connector = tls::connector(&opts)?;
    let name = tls::server_name(&opts, target)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async move {
        use std::io::Write as _;
        println!("ready 0");
        let _ = std::io::stdout().flush();
        let gate = Arc::new(Semaphore::new(inflight));
        let total = rate * secs;
        let step = Duration::from_nanos(1_000_000_000 / rate);
        let start = tokio::time::Instant::now();
        let begun = Instant::now();
        let pid = std::process::id();
        let mut set: JoinSet<Outcome> = JoinSet::new();
        let (mut ok, mut errors) = (0u64, 0u64);
        let (mut hs_us, mut all_us) = (Vec::new(), Vec::new());
        let mut negotiated = None;
        let mut first_error = None;
        let mut tally = |r: Result<Outcome, tokio::task::JoinError>| match r {
            Ok(Ok((hs, all, neg))) => {
                ok += 1;
                hs_us.push(hs);
                all_us.push(all);
                if negotiated.is_none() {
                    negotiated = neg;
                }
            }
            Ok(Err(e)) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("task: {e}"));
            }
        };
        for k in 0..total {
            tokio::time::sleep_until(start + step * k as u32).await;
            let permit = gate.clone().acquire_owned().await.map_err(|e| format!("semaphore: {e}"))?;
            while let Some(r) = set.try_join_next() {
                tally(r);
            }
            let (connector, name) = (connector.clone(), name.clone());
            let user = format!("{prefix}{k}");
            let domain = domain.clone();
            set.spawn(async move {
                let _permit = permit;
                let t0 = Instant::now();
                let work = async {
                    let s = tls::connect(&connector, &name, target).await?;
                    let hs = t0.elapsed().as_micros() as u64;
                    let neg = (k == 0).then(|| tls::negotiated(&s));
                    let local = s.get_ref().0.local_addr().map_err(|e| e.to_string())?;
                    let call_id = format!("{user}-{pid}");
                    let msg = format!(
                        "REGISTER sip:{domain} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bK{call_id}-1\r\nFrom: <sip:{user}@{domain}>;tag={user}\r\nTo: <sip:{user}@{domain}>\r\nCall-ID: {call_id}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@{local};transport=tls>\r\nExpires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                    );
                    let mut s = BufReader::new(s);
                    s.write_all(msg.as_bytes()).await.map_err(|e| format!("send: {e}"))?;
                    s.flush().await.map_err(|e| format!("send: {e}"))?;
                    let code = loop {
                        let text = tls::read_message(&mut s)
                            .await
                            .map_err(|e| format!("read: {e}"))?
                            .ok_or("connection closed by the server")?;
                        if let Some(code) = final_status(&text, &call_id, "1 REGISTER") {
                            break code;
                        }
                    };
                    let all = t0.elapsed().as_micros() as u64;
                    // close_notify then FIN; the server's own close is not awaited.
                    let _ = s.get_mut().shutdown().await;
                    if (200..300).contains(&code) { Ok((hs, all, neg)) } else { Err(format!("answered {code}")) }
                };
                tokio::time::timeout(timeout, work)
                    .await
                    .map_err(|_| format!("not done within {} ms", timeout.as_millis()))?
            });
        }
        let sending = begun.elapsed().as_secs_f64();
        while let Some(r) = set.join_next().await {
            tally(r);
        }
        let elapsed = begun.elapsed().as_secs_f64().max(secs as f64);
        let neg = negotiated.map_or_else(String::new, |g| {
            format!(",\"tls_version\":\"{}\",\"tls_suite\":\"{}\",\"tls_group\":\"{}\"", g.version, g.suite, g.group)
        });
        let err = first_error.map_or_else(String::new, |e| format!(",\"first_error\":{}", serde_json::Value::String(e)));
        println!(
            "{{\"transport\":\"tls\",\"sent\":{total},\"answered\":{ok},\"errors\":{errors},\"secs\":{elapsed:.3},\"send_secs\":{sending:.3},\"per_sec\":{:.1},{},{}{neg}{err}}}",
            ok as f64 / elapsed,
            json_fields("hs", &mut hs_us),
            json_fields("lat", &mut all_us)
        );
        let _ = std::io::stdout().flush();
        Ok(())
    })
}
