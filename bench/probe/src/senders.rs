//! `sip-probe push-senders`: push throughput of one sender of the
//! `push-senders` crate, the same code sipwake runs, against a push service
//! played by another process (so that its CPU is not counted here).
//!
//! ```text
//! sip-probe push-senders --sender apns|fcm|webpush|webhook --concurrency N --seconds S
//!     [--mock-info JSON] [--mock-pid PID] [--url URL] [--warmup S] [--threads T] [--encrypt] [--clients K]
//! ```
//!
//! It builds a real [`push_senders::Senders`] with one sender:
//! * `apns`, `fcm`, `webpush`: pointed at a `push-mock --service ...`
//!   process, configured from the one JSON line that process prints
//!   (`--mock-info`): `ca_file` as the trusted CA, APNs token auth with the
//!   generated `.p8` (key id, team id), FCM with the generated service
//!   account (its `token_uri` is the mock's OAuth endpoint), WebPush with
//!   the generated VAPID key, `allowed_hosts = ["127.0.0.1:PORT"]` and
//!   `pn-prid` = the mock's subscription endpoint (`--encrypt`: the
//!   binding also carries the subscription's keys, so every push gets an
//!   RFC 8291 encrypted body);
//! * `webhook`: `POST`s to `--url`, e.g. a `sip-probe webhook-sink` process.
//!
//! N tasks on a tokio runtime of T worker threads (default: the number of
//! CPUs) each send one push after the other (closed loop): a call push
//! (`Initial INVITE`, a caller, the AoR; deadline 60 s ahead) through
//! `Senders::send_with`. After `--warmup` seconds (connections, TLS, auth
//! tokens, FCM's OAuth exchange) come S measured seconds: every push that
//! completes inside them counts, with its latency (call → result). CPU:
//! this process's `getrusage(RUSAGE_SELF)` (all threads) and, with
//! `--mock-pid`, the mock's utime + stime from `/proc/PID/stat`, both taken
//! at the start and the end of the measured window. Prints one JSON line.
//!
//! `--clients K` (default 1, what sipwake has) builds K independent
//! `Senders` and deals the tasks out between them: each has its own HTTP
//! client, hence its own HTTP/2 connection (an experiment: APNs refuses
//! the second client's new provider token within 20 min, 429).
//!
//! `sip-probe webhook-sink`: the probe's webhook receiver (see `push.rs`)
//! alone, on a free port of 127.0.0.1: prints `{"port": P, "url": ...}` and
//! answers every POST `200 OK` until killed.

use push_senders::{
    ApnsAuth, ApnsConfig, Caller, FcmConfig, HttpOptions, PushMeta, SenderConfig, Senders, VoipRefresh, WebPushConfig,
};
use serde_json::{Value, json};
use sip_push::{BindingKey, PushError, PushId, PushReason, PushRequest};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A 32-byte APNs device token, hex.
const APNS_TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
/// An FCM registration token (the mock accepts any).
const FCM_TOKEN: &str = "dGVzdC1mY20tdG9rZW4tZm9yLWJlbmNobWFya3M6QVBBOTFiSGJlbmNobWFya3Rva2Vu";

struct Opts {
    sender: String,
    concurrency: usize,
    secs: f64,
    warmup: f64,
    threads: usize,
    info: Value,
    mock_pid: Option<u32>,
    url: Option<String>,
    encrypt: bool,
    clients: usize,
}

fn opts(args: &[String]) -> Opts {
    let get = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    Opts {
        sender: get("--sender").expect("--sender apns|fcm|webpush|webhook"),
        concurrency: get("--concurrency").map_or(64, |v| v.parse().expect("--concurrency N")),
        secs: get("--seconds").map_or(10.0, |v| v.parse().expect("--seconds S")),
        warmup: get("--warmup").map_or(1.0, |v| v.parse().expect("--warmup S")),
        threads: get("--threads").map_or(cpus, |v| v.parse().expect("--threads T")),
        info: get("--mock-info").map_or(Value::Null, |v| serde_json::from_str(&v).expect("--mock-info JSON")),
        mock_pid: get("--mock-pid").map(|v| v.parse().expect("--mock-pid PID")),
        url: get("--url"),
        encrypt: args.iter().any(|a| a == "--encrypt"),
        clients: get("--clients").map_or(1, |v| v.parse().expect("--clients K")),
    }
}

fn s(info: &Value, key: &str) -> String {
    match &info[key] {
        Value::String(v) => v.clone(),
        Value::Null => panic!("--mock-info has no {key:?}"),
        v => v.to_string(),
    }
}

/// The sender, the request template and the extra `pn-*` parameters for `o.sender`.
fn setup(o: &Opts) -> (SenderConfig, PushRequest, Vec<(String, String)>) {
    let info = &o.info;
    let http = || HttpOptions { ca_file: Some(s(info, "ca_file").into()), ..HttpOptions::default() };
    let now = Instant::now();
    let mut req = PushRequest {
        id: PushId(0),
        binding: BindingKey::new("sip:bench@example.com|urn:uuid:00000000-0000-4000-8000-000000000001"),
        provider: o.sender.clone(),
        prid: String::new(),
        param: None,
        reason: PushReason::Initial { method: "INVITE".into(), call_id: "bench-call-id@127.0.0.1".into() },
        attempt: 1,
        ttl_secs: 60,
        deadline: now + Duration::from_secs(60),
    };
    let mut extra = Vec::new();
    let cfg = match o.sender.as_str() {
        "apns" => {
            req.prid = APNS_TOKEN.into();
            req.param = Some(format!("{}.org.example.softphone.voip", s(info, "team_id")));
            SenderConfig::Apns(ApnsConfig {
                endpoint: s(info, "base_url"),
                auth: ApnsAuth::Token {
                    key_file: s(info, "p8_path").into(),
                    key_id: s(info, "key_id"),
                    team_id: s(info, "team_id"),
                },
                voip_refresh: VoipRefresh::Voip,
                include_caller: true,
                http: http(),
            })
        }
        "fcm" => {
            req.prid = FCM_TOKEN.into();
            req.param = Some(s(info, "project_id"));
            SenderConfig::Fcm(FcmConfig {
                service_account: s(info, "service_account_json").into(),
                endpoint: s(info, "base_url"),
                include_caller: true,
                http: http(),
            })
        }
        "webpush" => {
            let sub = &info["subscription"];
            req.prid = sub["endpoint"].as_str().expect("--mock-info has no subscription.endpoint").to_owned();
            if o.encrypt {
                let key = |k: &str| sub["keys"][k].as_str().expect("subscription key").to_owned();
                extra.push((push_senders::webpush::P256DH_PARAM.to_owned(), key("p256dh")));
                extra.push((push_senders::webpush::AUTH_PARAM.to_owned(), key("auth")));
            }
            SenderConfig::WebPush(WebPushConfig {
                vapid_key_file: Some(s(info, "vapid_private_pem_path").into()),
                vapid_subject: "mailto:ops@example.com".into(),
                allowed_hosts: vec![format!("127.0.0.1:{}", s(info, "port"))],
                include_caller: true,
                http: http(),
            })
        }
        "webhook" => {
            req.prid = APNS_TOKEN.into();
            req.param = Some("ABCDE12345.org.example.softphone.voip".into());
            SenderConfig::Webhook {
                url: o.url.clone().expect("--url http://127.0.0.1:PORT/push"),
                timeout: Duration::from_secs(5),
                headers: Vec::new(),
                hmac_secret: None,
            }
        }
        other => panic!("--sender {other:?}: apns, fcm, webpush or webhook"),
    };
    (cfg, req, extra)
}

/// CPU seconds of this process (all threads), µs resolution.
fn self_cpu() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU seconds (utime + stime) of another process, from `/proc/PID/stat`.
fn proc_cpu(pid: u32) -> Option<f64> {
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = st[st.rfind(')')? + 2..].split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Some(ticks as f64 / hz as f64)
}

#[derive(Default)]
struct Tally {
    ok: u64,
    rejected: u64,
    failed: u64,
    lat_us: Vec<u32>,
}

pub fn run(args: &[String]) {
    let o = opts(args);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let out = rt.block_on(drive(&o));
    println!("{out}");
}

async fn drive(o: &Opts) -> Value {
    let (cfg, template, extra) = setup(o);
    // One `Senders` is what sipwake runs; more (`--clients K`) each have their
    // own HTTP client, so their own connection to the service.
    let all_senders: Vec<Senders> = (0..o.clients.max(1))
        .map(|_| {
            Senders::new(vec![(o.sender.clone(), cfg.clone())])
                .unwrap_or_else(|e| panic!("cannot build the sender: {e}"))
        })
        .collect();
    let extra = Arc::new(extra);
    let template = Arc::new(template);
    let start = Instant::now();
    let t0 = start + Duration::from_secs_f64(o.warmup);
    let t1 = t0 + Duration::from_secs_f64(o.secs);
    let ids = Arc::new(AtomicU64::new(1));
    let warm_errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(o.concurrency);
    for i in 0..o.concurrency {
        let senders = &all_senders[i % all_senders.len()];
        let (senders, template, extra, ids, warm_errors) =
            (senders.clone(), template.clone(), extra.clone(), ids.clone(), warm_errors.clone());
        tasks.push(tokio::spawn(async move {
            let caller = Caller { display_name: Some("Alice Example".into()), uri: "sip:alice@example.com".into() };
            let meta = PushMeta { aor: Some("sip:bench@example.com"), caller: Some(&caller), pn_extra: &extra };
            let mut t = Tally { lat_us: Vec::with_capacity(4096), ..Tally::default() };
            loop {
                let sent = Instant::now();
                if sent >= t1 {
                    break;
                }
                let mut req = (*template).clone();
                req.id = PushId(ids.fetch_add(1, Ordering::Relaxed));
                req.deadline = sent + Duration::from_secs(60);
                let r = senders.send_with(&req, &meta).await;
                let done = Instant::now();
                if done < t0 {
                    if r.is_err() {
                        warm_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                if done > t1 {
                    break;
                }
                match r {
                    Ok(()) => t.ok += 1,
                    Err(PushError::Rejected) => t.rejected += 1,
                    Err(PushError::Failed) => t.failed += 1,
                }
                t.lat_us.push(done.duration_since(sent).as_micros().min(u32::MAX as u128) as u32);
            }
            t
        }));
    }
    tokio::time::sleep_until(t0.into()).await;
    let (c0, m0, w0) = (self_cpu(), o.mock_pid.and_then(proc_cpu), Instant::now());
    tokio::time::sleep_until(t1.into()).await;
    let (c1, m1, w1) = (self_cpu(), o.mock_pid.and_then(proc_cpu), Instant::now());
    let mut all = Tally::default();
    let mut unfinished = 0;
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(15), task).await {
            Ok(Ok(t)) => {
                all.ok += t.ok;
                all.rejected += t.rejected;
                all.failed += t.failed;
                all.lat_us.extend(t.lat_us);
            }
            _ => unfinished += 1,
        }
    }
    all.lat_us.sort_unstable();
    let pct = |p: f64| -> u32 {
        if all.lat_us.is_empty() {
            return 0;
        }
        all.lat_us[((all.lat_us.len() - 1) as f64 * p).round() as usize]
    };
    let wall = w1.duration_since(w0).as_secs_f64();
    let n = all.ok + all.rejected + all.failed;
    let per = |cpu: f64| if n > 0 { Some(1e6 * cpu / n as f64) } else { None };
    let mock_cpu = m0.zip(m1).map(|(a, b)| b - a);
    json!({
        "sender": o.sender,
        "encrypt": o.encrypt,
        "concurrency": o.concurrency,
        "threads": o.threads,
        "clients": o.clients,
        "secs": wall,
        "pushes": n,
        "ok": all.ok,
        "rejected": all.rejected,
        "failed": all.failed,
        "warmup_errors": warm_errors.load(Ordering::Relaxed),
        "unfinished_tasks": unfinished,
        "pushes_per_sec": n as f64 / wall,
        "p50_us": pct(0.50),
        "p90_us": pct(0.90),
        "p99_us": pct(0.99),
        "p999_us": pct(0.999),
        "max_us": all.lat_us.last().copied().unwrap_or(0),
        "cpu_secs": c1 - c0,
        "cpu_us_per_push": per(c1 - c0),
        "mock_cpu_secs": mock_cpu,
        "mock_cpu_us_per_push": mock_cpu.and_then(per),
    })
}

/// `sip-probe webhook-sink`: the webhook receiver alone, until killed.
pub fn sink() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = l.local_addr().expect("local addr").port();
    let rx = crate::push::webhook_on(l);
    println!("{}", json!({ "port": port, "url": format!("http://127.0.0.1:{port}/push") }));
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    // Drain what the receiver hands over (the channel would grow otherwise).
    for _ in rx {}
}
