//! `sip-probe`: measures request → response latency of a SIP server with
//! microsecond resolution (sipp's response times have 1 ms resolution,
//! which is too coarse for a server that answers in tens of µs).
//!
//! It sends `--rate` requests per second for `--secs` seconds from one UDP
//! socket (open loop: sends do not wait for answers), matches answers by
//! Call-ID, and prints one JSON line: sent, answered, p50/p90/p99/p999/max
//! in µs. Requests are OPTIONS by default; `--register DOMAIN` sends
//! REGISTERs for distinct AoRs instead. It is a benchmark tool only: it
//! sends to the address it is given, which the bench script sets to
//! loopback.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let target: SocketAddr = get("--target").expect("--target IP:PORT").parse().expect("--target IP:PORT");
    let rate: u64 = get("--rate").map_or(200, |r| r.parse().expect("--rate N"));
    let secs: u64 = get("--secs").map_or(5, |r| r.parse().expect("--secs N"));
    let register = get("--register");
    let sock = UdpSocket::bind(if target.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }).expect("bind");
    let local = sock.local_addr().expect("local addr");
    sock.set_read_timeout(Some(Duration::from_millis(1))).expect("timeout");
    let total = rate * secs;
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let start = Instant::now();
    let mut sent_at: HashMap<String, Instant> = HashMap::with_capacity(total as usize);
    let mut lat: Vec<u64> = Vec::with_capacity(total as usize);
    let mut buf = [0u8; 65_536];
    let mut next = 0u64;
    let pid = std::process::id();
    let end_at = start + interval * total as u32 + Duration::from_secs(2);
    while Instant::now() < end_at && (next < total || lat.len() < sent_at.len()) {
        let now = Instant::now();
        while next < total && start + interval * next as u32 <= now {
            let call_id = format!("probe-{pid}-{next}");
            let msg = match &register {
                None => format!(
                    "OPTIONS sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}\r\nFrom: <sip:probe@{local}>;tag={next}\r\nTo: <sip:{target}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                ),
                Some(domain) => format!(
                    "REGISTER sip:{domain} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}\r\nFrom: <sip:probe{next}@{domain}>;tag={next}\r\nTo: <sip:probe{next}@{domain}>\r\nCall-ID: {call_id}\r\nCSeq: 1 REGISTER\r\nContact: <sip:probe{next}@{local}>\r\nExpires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                ),
            };
            if sock.send_to(msg.as_bytes(), target).is_ok() {
                sent_at.insert(call_id, Instant::now());
            }
            next += 1;
        }
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let got = Instant::now();
            let text = String::from_utf8_lossy(&buf[..n]);
            if !text.starts_with("SIP/2.0 2") {
                continue;
            }
            if let Some(cid) = text.lines().find_map(|l| l.strip_prefix("Call-ID: ")).map(str::trim)
                && let Some(t0) = sent_at.get(cid)
            {
                lat.push(got.duration_since(*t0).as_micros() as u64);
            }
        }
    }
    lat.sort_unstable();
    let pct = |p: f64| -> u64 {
        if lat.is_empty() {
            return 0;
        }
        lat[((lat.len() as f64 - 1.0) * p).round() as usize]
    };
    println!(
        "{{\"sent\":{},\"answered\":{},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}",
        sent_at.len(),
        lat.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        lat.last().copied().unwrap_or(0)
    );
}
