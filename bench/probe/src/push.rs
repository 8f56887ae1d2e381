//! RFC 8599 push modes of the probe. Both run the push service themselves:
//! a webhook receiver on a local `TcpListener` (`--webhook IP:PORT`, the
//! address the server's `[push.senders."*"] webhook` URL points at) that
//! reads each HTTP POST, answers `200 OK` and hands the JSON body's `aor`
//! and `call_id` to the main thread.
//!
//! `--push-wake N`: one device registers a push Contact (`pn-provider=apns;
//! pn-prid=..;pn-param=..` and a `+sip.instance`), then N times, one call at
//! a time: a caller socket sends an INVITE to the device's AoR; when the push
//! arrives the device sends its re-REGISTER (timestamp), and when the parked
//! INVITE reaches the device socket (timestamp) the latency is the
//! difference: REGISTER in → parked INVITE out, the REGISTER's processing and
//! commit included (`e2e_*`: INVITE sent by the caller → INVITE received by
//! the device, the whole wake-up). The device answers 486 (to the address the
//! INVITE came from), the caller ACKs it, the device drains the proxy's ACK.
//! Prints one JSON line with p50/p90/p99/p999/max (`reg200_*`: REGISTER
//! sent → its 200 OK at the device). The device's REGISTERs
//! (the first one and every wake-up) go to `reg_target`
//! (`--register-target`, default `--target`), the caller's INVITEs and ACKs
//! to `target`: with two cluster nodes, the call is parked on node A and the
//! device wakes up at node B, so A forks the INVITE through B.
//!
//! `--push-flood M --rate R`: registers M devices (distinct AoRs, push
//! Contacts, all pointing at one socket) that never wake, then sends one
//! INVITE to each at R/s (open loop). Counts pushes per second at the
//! webhook, the INVITE → push delay, and the callers' final answers (480
//! when `invite_hold_secs` runs out), ACKing each. Prints "registered" on
//! stdout when the INVITEs start (the script samples the server's CPU there)
//! and one JSON line at the end.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::header;

/// A push the webhook received: (when, aor, call_id).
type Push = (Instant, String, String);

/// Starts the webhook receiver on `addr`; every push goes to the channel.
fn webhook(addr: &str) -> mpsc::Receiver<Push> {
    webhook_on(TcpListener::bind(addr).expect("bind the webhook address"))
}

/// The receiver on a listener already bound (`sip-probe webhook-sink`).
pub(crate) fn webhook_on(l: TcpListener) -> mpsc::Receiver<Push> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = conn.set_nodelay(true);
                let mut r = BufReader::new(conn.try_clone().expect("clone"));
                let mut w = conn;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    let got = Instant::now();
                    let body = String::from_utf8_lossy(&body);
                    let _ = tx.send((got, json_str(&body, "aor"), json_str(&body, "call_id")));
                    if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").is_err() {
                        return;
                    }
                }
            });
        }
    });
    rx
}

/// The string value of `"key":"..."` in a flat JSON object (no escapes in
/// the values the bench uses).
fn json_str(body: &str, key: &str) -> String {
    let pat = format!("\"{key}\":\"");
    body.find(&pat).map(|i| &body[i + pat.len()..]).and_then(|s| s.split('"').next()).unwrap_or("").to_string()
}

fn push_register(user: &str, domain: &str, local: SocketAddr, call_id: &str, cseq: u32, instance: u64) -> String {
    format!(
        "REGISTER sip:{domain} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}-{cseq}\r\nFrom: <sip:{user}@{domain}>;tag=r{cseq}\r\nTo: <sip:{user}@{domain}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local};pn-provider=apns;pn-prid=PRID{instance:012};pn-param=TEAM1.com.example.voip>;+sip.instance=\"<urn:uuid:6c5f0b8e-0000-4000-8000-{instance:012}>\"\r\nExpires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn invite(user: &str, domain: &str, local: SocketAddr, call_id: &str, n: u64) -> String {
    format!(
        "INVITE sip:{user}@{domain} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}\r\nFrom: <sip:caller@bench.example>;tag=c{n}\r\nTo: <sip:{user}@{domain}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The ACK for a non-2xx final answer to our INVITE (same branch, the answer's To).
fn ack_for(resp: &str, target: SocketAddr, local: SocketAddr) -> String {
    let via_branch =
        header(resp, "Via").and_then(|v| v.split("branch=").nth(1)).map(|b| b.split(';').next().unwrap_or(b));
    format!(
        "ACK sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        via_branch.unwrap_or(""),
        header(resp, "From").unwrap_or(""),
        header(resp, "To").unwrap_or(""),
        header(resp, "Call-ID").unwrap_or("")
    )
}

fn status(msg: &str) -> u16 {
    msg.strip_prefix("SIP/2.0 ").and_then(|s| s.get(..3)).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn recv(sock: &UdpSocket, buf: &mut [u8]) -> Option<(String, SocketAddr)> {
    let (n, from) = sock.recv_from(buf).ok()?;
    Some((String::from_utf8_lossy(&buf[..n]).into_owned(), from))
}

fn pct(v: &[u64], p: f64) -> u64 {
    if v.is_empty() { 0 } else { v[((v.len() as f64 - 1.0) * p).round() as usize] }
}

fn pcts(v: &mut [u64], name: &str) -> String {
    v.sort_unstable();
    format!(
        "\"{name}p50_us\":{},\"{name}p90_us\":{},\"{name}p99_us\":{},\"{name}p999_us\":{},\"{name}max_us\":{}",
        pct(v, 0.5),
        pct(v, 0.9),
        pct(v, 0.99),
        pct(v, 0.999),
        v.last().copied().unwrap_or(0)
    )
}

/// Registers `users` (push Contacts on `dev`'s address); returns how many got a 200.
fn register_all(dev: &UdpSocket, target: SocketAddr, domain: &str, users: &[String], tag: &str) -> usize {
    let local = dev.local_addr().expect("local");
    let mut buf = vec![0u8; 65_536];
    let mut ok = 0;
    dev.set_read_timeout(Some(Duration::from_millis(2000))).expect("timeout");
    // Windows of 100 REGISTERs, each window awaited, so nothing is lost to overload.
    for (w, chunk) in users.chunks(100).enumerate() {
        for (i, u) in chunk.iter().enumerate() {
            let n = (w * 100 + i) as u64;
            let _ = dev.send_to(push_register(u, domain, local, &format!("{tag}-reg-{n}"), 1, n).as_bytes(), target);
        }
        let mut got = 0;
        while got < chunk.len() {
            let Some((t, _)) = recv(dev, &mut buf) else { break };
            if t.contains("REGISTER") && status(&t) >= 200 {
                got += 1;
                if status(&t) == 200 {
                    ok += 1;
                }
            }
        }
    }
    ok
}

pub fn wake(target: SocketAddr, reg_target: SocketAddr, domain: &str, hook: &str, n: u64, gap: Duration) {
    let pushes = webhook(hook);
    let dev = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let caller = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let (dl, cl) = (dev.local_addr().expect("local"), caller.local_addr().expect("local"));
    let pid = std::process::id();
    let user = format!("wake{pid}");
    let reg_cid = format!("wake{pid}-reg-0"); // the initial REGISTER's Call-ID (register_all)
    let ok = register_all(&dev, reg_target, domain, std::slice::from_ref(&user), &format!("wake{pid}"));
    assert_eq!(ok, 1, "the device did not register");
    let mut buf = vec![0u8; 65_536];
    let mut lat = Vec::with_capacity(n as usize);
    let mut push_lat = Vec::with_capacity(n as usize);
    let mut e2e = Vec::with_capacity(n as usize);
    let mut reg_ok = Vec::with_capacity(n as usize);
    let (mut no_push, mut no_invite, mut wrong) = (0u64, 0u64, 0u64);
    let mut cseq = 1u32;
    let t_start = Instant::now();
    for i in 0..n {
        if i > 0 && !gap.is_zero() {
            std::thread::sleep(gap);
        }
        let cid = format!("wake-{pid}-{i}");
        let sent = Instant::now();
        let _ = caller.send_to(invite(&user, domain, cl, &cid, i).as_bytes(), target);
        // The push.
        let push = loop {
            match pushes.recv_timeout(Duration::from_secs(5)) {
                Ok(p) if p.2 == cid => break Some(p),
                Ok(_) => continue,
                Err(_) => break None,
            }
        };
        let Some(push) = push else {
            no_push += 1;
            continue;
        };
        push_lat.push(push.0.duration_since(sent).as_micros() as u64);
        // The device wakes at once and re-registers (same instance, same Contact).
        cseq += 1;
        let reg = push_register(&user, domain, dl, &reg_cid, cseq, 0);
        let _ = dev.send_to(reg.as_bytes(), reg_target);
        let t0 = Instant::now();
        dev.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut inv = None;
        // Both the REGISTER's 200 and the parked INVITE, in whichever order they come.
        let mut ok_at = None;
        let want_cseq = format!("{cseq} REGISTER");
        while let Some((t, from)) = recv(&dev, &mut buf) {
            let got = Instant::now();
            if t.starts_with("INVITE ") {
                if header(&t, "Call-ID") == Some(cid.as_str()) {
                    inv = Some((t, from, got));
                } else {
                    wrong += 1;
                }
            } else if status(&t) == 200 && header(&t, "CSeq") == Some(want_cseq.as_str()) {
                ok_at = Some(got);
            }
            if inv.is_some() && ok_at.is_some() {
                break;
            }
        }
        if let Some(at) = ok_at {
            reg_ok.push(at.duration_since(t0).as_micros() as u64);
        }
        let Some((inv, from, got)) = inv else {
            no_invite += 1;
            continue;
        };
        lat.push(got.duration_since(t0).as_micros() as u64);
        e2e.push(got.duration_since(sent).as_micros() as u64);
        // 486 back; the caller ACKs it; the device drains the proxy's ACK.
        let mut resp = String::from("SIP/2.0 486 Busy Here\r\n");
        for h in inv.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
            let name = h.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
            if matches!(name.as_str(), "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq") {
                resp += h;
                resp += "\r\n";
            } else if name == "to" || name == "t" {
                resp += &format!("{h};tag=dev{i}\r\n");
            }
        }
        resp += "Content-Length: 0\r\n\r\n";
        let _ = dev.send_to(resp.as_bytes(), from);
        caller.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        while let Some((t, _)) = recv(&caller, &mut buf) {
            if status(&t) >= 200 {
                let _ = caller.send_to(ack_for(&t, target, cl).as_bytes(), target);
                if status(&t) != 486 {
                    wrong += 1;
                }
                break;
            }
        }
        dev.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        while let Some((t, _)) = recv(&dev, &mut buf) {
            if t.starts_with("ACK ") {
                break;
            }
        }
    }
    let elapsed = t_start.elapsed().as_secs_f64();
    println!(
        "{{\"calls\":{n},\"woken\":{},\"no_push\":{no_push},\"no_invite\":{no_invite},\"unexpected\":{wrong},\"secs\":{elapsed:.3},{},{},{},{}}}",
        lat.len(),
        pcts(&mut lat, ""),
        pcts(&mut reg_ok, "reg200_"),
        pcts(&mut push_lat, "push_"),
        pcts(&mut e2e, "e2e_")
    );
}

pub fn flood(target: SocketAddr, domain: &str, hook: &str, m: u64, rate: u64, wait_secs: u64) {
    let pushes = webhook(hook);
    let dev = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let caller = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let cl = caller.local_addr().expect("local");
    let pid = std::process::id();
    let users: Vec<String> = (0..m).map(|i| format!("flood{pid}x{i}")).collect();
    let registered = register_all(&dev, target, domain, &users, &format!("flood{pid}"));
    println!("registered {registered}");
    let _ = std::io::stdout().flush();
    caller.set_read_timeout(Some(Duration::from_millis(1))).expect("timeout");
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let start = Instant::now();
    let mut sent_at: HashMap<String, Instant> = HashMap::with_capacity(m as usize);
    let mut finals: HashMap<u16, u64> = HashMap::new();
    let mut answered = 0u64;
    let mut push_times: Vec<Instant> = Vec::with_capacity(m as usize);
    let mut push_lat: Vec<u64> = Vec::with_capacity(m as usize);
    let mut hold_lat: Vec<u64> = Vec::with_capacity(m as usize);
    let mut buf = vec![0u8; 65_536];
    let mut next = 0u64;
    let end_at = start + interval * m as u32 + Duration::from_secs(wait_secs);
    while Instant::now() < end_at && (next < m || answered < m || (push_times.len() as u64) < m) {
        let now = Instant::now();
        while next < m && start + interval * next as u32 <= now {
            let cid = format!("flood-{pid}-{next}");
            let _ = caller.send_to(invite(&users[next as usize], domain, cl, &cid, next).as_bytes(), target);
            sent_at.insert(cid, Instant::now());
            next += 1;
        }
        while let Ok(p) = pushes.try_recv() {
            if let Some(t) = sent_at.get(&p.2) {
                push_lat.push(p.0.duration_since(*t).as_micros() as u64);
            }
            push_times.push(p.0);
        }
        if let Some((t, _)) = recv(&caller, &mut buf) {
            let s = status(&t);
            if s >= 200 && header(&t, "CSeq").is_some_and(|c| c.ends_with("INVITE")) {
                let _ = caller.send_to(ack_for(&t, target, cl).as_bytes(), target);
                if let Some(t0) = header(&t, "Call-ID").and_then(|c| sent_at.get(c)) {
                    hold_lat.push(t0.elapsed().as_micros() as u64);
                    *finals.entry(s).or_default() += 1;
                    answered += 1;
                    sent_at.remove(header(&t, "Call-ID").unwrap_or(""));
                }
            }
        }
    }
    let send_secs = (interval * m as u32).as_secs_f64();
    // Pushes per whole second since the first INVITE.
    let mut per_sec: Vec<u64> = Vec::new();
    for t in &push_times {
        let s = t.duration_since(start).as_secs() as usize;
        if per_sec.len() <= s {
            per_sec.resize(s + 1, 0);
        }
        per_sec[s] += 1;
    }
    let span = match (push_times.iter().min(), push_times.iter().max()) {
        (Some(a), Some(b)) => b.duration_since(*a).as_secs_f64(),
        _ => 0.0,
    };
    let mut codes: Vec<_> = finals.iter().collect();
    codes.sort();
    let codes: Vec<String> = codes.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    println!(
        "{{\"devices\":{m},\"registered\":{registered},\"invites\":{next},\"send_secs\":{send_secs:.3},\"pushes\":{},\"push_span_secs\":{span:.3},\"per_sec\":{:?},\"finals\":{{{}}},\"unanswered\":{},{},{}}}",
        push_times.len(),
        per_sec,
        codes.join(","),
        next - answered,
        pcts(&mut push_lat, "push_"),
        pcts(&mut hold_lat, "final_")
    );
}
