//! `sip-probe`: measures request → response latency of a SIP server with
//! microsecond resolution (sipp's response times have 1 ms resolution,
//! which is too coarse for a server that answers in tens of µs).
//!
//! It sends `--rate` requests per second for `--secs` seconds from one UDP
//! socket (open loop: sends do not wait for answers), matches answers by
//! Call-ID, and prints one JSON line: sent, answered, p50/p90/p99/p999/max
//! in µs. Requests are OPTIONS by default; `--register DOMAIN` sends
//! REGISTERs for distinct AoRs instead (`{--user-prefix}{N}@DOMAIN`, N
//! counting from `--first`, default `probe` and 0).
//!
//! With `--password PW` as well, each REGISTER goes through digest
//! authentication: the 401 is answered with a second REGISTER carrying
//! `Authorization` (MD5, `qop=auth` when offered), and the latency is taken
//! from the first REGISTER to the 200 (the whole exchange, two round trips);
//! `leg_p50_us`/`leg_p99_us`/`leg_p999_us` give the second leg alone
//! (authenticated REGISTER → 200).
//!
//! With `--call USER` it places calls instead: INVITE `sip:USER@target`
//! (the proxy routes it to USER's registered contact), and on the 200 an
//! ACK and a BYE along the Record-Route set, to the 200's Contact. The
//! latency is INVITE → 200 (the callee's answer through the proxy: both
//! hops, the callee's own reaction included); `leg_p50_us`/`leg_p99_us`/
//! `leg_p999_us` give BYE → 200, and `answered` counts completed calls
//! (BYE answered 200).
//!
//! For refreshes of registrations made earlier (mid-registrar benchmark):
//! `--bind IP:PORT` (the socket, so the Contact is the same in both runs),
//! `--call-id-prefix P` (Call-IDs `P-N` instead of `probe-PID-N`) and
//! `--cseq N` (default 1): a second run with the same `--first`, bind and
//! prefix and a higher CSeq refreshes each earlier binding in its dialog.
//!
//! `--push-wake N` and `--push-flood M` (with `--webhook IP:PORT`, the
//! address of the push service the probe plays) measure RFC 8599 push
//! wake-up; see `push.rs`. With `--push-wake`, `--register-target IP:PORT`
//! sends the device's REGISTERs to another server than the INVITEs
//! (`--target`): cluster node B while the calls go to node A. `--pn` adds
//! push parameters (`pn-provider`, `pn-prid`, `pn-param`) and a
//! `+sip.instance` to the REGISTER mode's Contacts.
//!
//! `--gap-ms G` spaces the `--push-wake` calls G ms apart (the server idle in
//! between, as where real phones live) instead of back to back.
//!
//! `sip-probe udp-floor [--listen IP:PORT]` is the benchmark's physical
//! floor: a UDP echo that answers each request with its own headers under a
//! `200 OK` status line (`floor.rs`).
//!
//! `sip-probe phones` (N phones refreshing their registrations over UDP or
//! persistent TLS connections, `phones.rs`) and `sip-probe handshakes` (a new
//! TLS connection per REGISTER, `handshakes.rs`) are the TLS benchmark's load.
//!
//! It is a benchmark tool only: it sends to the address it is given, which
//! the bench script sets to loopback.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

mod floor;
mod handshakes;
mod phones;
mod push;
mod senders;
mod stats;
mod tls;

struct Pending {
    first: Instant,
    /// When the authenticated REGISTER left (auth mode only).
    second: Option<Instant>,
    user: String,
    /// When the BYE left (call mode only).
    bye: Option<Instant>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("push-senders") => return senders::run(&args[2..]),
        Some("webhook-sink") => return senders::sink(),
        Some("udp-floor") => return floor::run(&args[2..]),
        Some(mode @ ("phones" | "handshakes")) => {
            let run = if mode == "phones" { phones::run } else { handshakes::run };
            if let Err(e) = run(&args[2..]) {
                eprintln!("sip-probe {mode}: {e}");
                std::process::exit(2);
            }
            return;
        }
        _ => {}
    }
    let get = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let target: SocketAddr = get("--target").expect("--target IP:PORT").parse().expect("--target IP:PORT");
    let rate: u64 = get("--rate").map_or(200, |r| r.parse().expect("--rate N"));
    let secs: u64 = get("--secs").map_or(5, |r| r.parse().expect("--secs N"));
    let register = get("--register");
    let prefix = get("--user-prefix").unwrap_or_else(|| "probe".into());
    let first: u64 = get("--first").map_or(0, |r| r.parse().expect("--first N"));
    let password = get("--password");
    let call = get("--call");
    let pn = args.iter().any(|a| a == "--pn");
    let domain = get("--domain").unwrap_or_else(|| "127.0.0.1".into());
    if let Some(n) = get("--push-wake") {
        let hook = get("--webhook").expect("--webhook IP:PORT");
        let reg_target: SocketAddr =
            get("--register-target").map_or(target, |t| t.parse().expect("--register-target IP:PORT"));
        let gap = Duration::from_millis(get("--gap-ms").map_or(0, |g| g.parse().expect("--gap-ms MS")));
        return push::wake(target, reg_target, &domain, &hook, n.parse().expect("--push-wake N"), gap);
    }
    if let Some(m) = get("--push-flood") {
        let hook = get("--webhook").expect("--webhook IP:PORT");
        let wait = get("--wait").map_or(10, |w| w.parse().expect("--wait SECS"));
        return push::flood(target, &domain, &hook, m.parse().expect("--push-flood M"), rate, wait);
    }
    let bind = get("--bind").unwrap_or_else(|| if target.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }.into());
    let sock = UdpSocket::bind(bind.as_str()).expect("bind");
    let cid_prefix = get("--call-id-prefix").unwrap_or_else(|| format!("probe-{}", std::process::id()));
    let cseq: u32 = get("--cseq").map_or(1, |c| c.parse().expect("--cseq N"));
    let local = sock.local_addr().expect("local addr");
    sock.set_read_timeout(Some(Duration::from_millis(1))).expect("timeout");
    let total = rate * secs;
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let start = Instant::now();
    let mut pending: HashMap<String, Pending> = HashMap::with_capacity(total as usize);
    let mut lat: Vec<u64> = Vec::with_capacity(total as usize);
    let mut leg: Vec<u64> = Vec::new();
    let mut sent = 0usize;
    let mut done = 0usize;
    let mut buf = [0u8; 65_536];
    let mut next = 0u64;
    let end_at = start + interval * total as u32 + Duration::from_secs(2);
    while Instant::now() < end_at && (next < total || done < sent) {
        let now = Instant::now();
        while next < total && start + interval * next as u32 <= now {
            let call_id = format!("{cid_prefix}-{next}");
            let user = format!("{prefix}{}", first + next);
            let msg = match &register {
                None if call.is_some() => invite_msg(call.as_deref().unwrap_or(""), target, local, &call_id, next),
                None => format!(
                    "OPTIONS sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}\r\nFrom: <sip:probe@{local}>;tag={next}\r\nTo: <sip:{target}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                ),
                Some(domain) => register_msg(domain, &user, local, &call_id, next, cseq, None, password.is_some(), pn),
            };
            if sock.send_to(msg.as_bytes(), target).is_ok() {
                pending.insert(call_id, Pending { first: Instant::now(), second: None, user, bye: None });
                sent += 1;
            }
            next += 1;
        }
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let got = Instant::now();
            let text = String::from_utf8_lossy(&buf[..n]);
            let Some(cid) = header(&text, "Call-ID") else { continue };
            if text.starts_with("SIP/2.0 401")
                && let (Some(domain), Some(pw)) = (&register, &password)
                && let Some(p) = pending.get_mut(cid)
                && p.second.is_none()
            {
                let Some(auth) = authorization(&text, &p.user, pw, &format!("sip:{domain}")) else { continue };
                let tag: u64 = cid.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                let msg = register_msg(domain, &p.user, local, cid, tag, cseq + 1, Some(&auth), true, pn);
                if sock.send_to(msg.as_bytes(), target).is_ok() {
                    p.second = Some(Instant::now());
                }
                continue;
            }
            if !text.starts_with("SIP/2.0 2") {
                continue;
            }
            if call.is_some() {
                let Some(p) = pending.get_mut(cid) else { continue };
                let cseq = header(&text, "CSeq").unwrap_or("");
                if cseq.ends_with("INVITE") {
                    // A retransmitted 200 (our ACK was lost) is answered again; timed once.
                    if p.bye.is_none() {
                        lat.push(got.duration_since(p.first).as_micros() as u64);
                    }
                    let (ack, bye) = in_dialog(&text, local, cid);
                    let _ = sock.send_to(ack.as_bytes(), target);
                    if p.bye.is_none() && sock.send_to(bye.as_bytes(), target).is_ok() {
                        p.bye = Some(Instant::now());
                    }
                } else if cseq.ends_with("BYE")
                    && let Some(t2) = p.bye
                {
                    leg.push(got.duration_since(t2).as_micros() as u64);
                    pending.remove(cid);
                    done += 1;
                }
                continue;
            }
            if let Some(p) = pending.get(cid) {
                done += 1;
                lat.push(got.duration_since(p.first).as_micros() as u64);
                if let Some(t2) = p.second {
                    leg.push(got.duration_since(t2).as_micros() as u64);
                }
            }
        }
    }
    lat.sort_unstable();
    leg.sort_unstable();
    let pct = |v: &[u64], p: f64| -> u64 {
        if v.is_empty() {
            return 0;
        }
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    let mut out = format!(
        "{{\"sent\":{},\"answered\":{},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}",
        sent,
        if call.is_some() { done } else { lat.len() },
        pct(&lat, 0.50),
        pct(&lat, 0.90),
        pct(&lat, 0.99),
        pct(&lat, 0.999),
        lat.last().copied().unwrap_or(0)
    );
    if password.is_some() || call.is_some() {
        out.push_str(&format!(
            ",\"leg_p50_us\":{},\"leg_p99_us\":{},\"leg_p999_us\":{}",
            pct(&leg, 0.50),
            pct(&leg, 0.99),
            pct(&leg, 0.999)
        ));
    }
    out.push('}');
    println!("{out}");
}

/// INVITE `sip:{user}@{target}` with a small SDP body.
fn invite_msg(user: &str, target: SocketAddr, local: SocketAddr, call_id: &str, tag: u64) -> String {
    let ip = local.ip();
    let sdp = format!("v=0\r\no=probe 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n");
    format!(
        "INVITE sip:{user}@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}-1\r\nFrom: <sip:probe@bench.example>;tag={tag}\r\nTo: <sip:{user}@{target}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:probe@{local}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// ACK and BYE for the dialog a 200 to our INVITE established: Request-URI
/// = the 200's Contact, Route = its Record-Route set reversed, To with the
/// callee's tag. Both go to the proxy (the bench's proxies record-route).
fn in_dialog(ok: &str, local: SocketAddr, call_id: &str) -> (String, String) {
    let to = header(ok, "To").unwrap_or("");
    let from = header(ok, "From").unwrap_or("");
    let contact = header(ok, "Contact").unwrap_or("");
    let uri = contact.split_once('<').and_then(|(_, r)| r.split_once('>')).map_or(contact, |(u, _)| u);
    let mut rr: Vec<&str> = ok
        .lines()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case("Record-Route").then(|| v.trim())
        })
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    rr.reverse();
    let route = if rr.is_empty() { String::new() } else { format!("Route: {}\r\n", rr.join(", ")) };
    let msg = |method: &str, cseq: u32| {
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}-{method}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n{route}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    (msg("ACK", 1), msg("BYE", 2))
}

#[allow(clippy::too_many_arguments)]
fn register_msg(
    domain: &str,
    user: &str,
    local: SocketAddr,
    call_id: &str,
    tag: u64,
    cseq: u32,
    auth: Option<&str>,
    bench_auth: bool,
    pn: bool,
) -> String {
    // Push parameters (RFC 8599) and an instance ID per AoR, as a phone sends them.
    let pn = if pn {
        format!(
            ";pn-provider=apns;pn-prid=PRID{tag};pn-param=TEAM1.com.example.voip>;+sip.instance=\"<urn:uuid:6c5f0b8e-0000-4000-8000-{tag:012}>\""
        )
    } else {
        ">".into()
    };
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    // X-Bench-Auth makes bench/kamailio.cfg authenticate (sipwake ignores it).
    let x = if bench_auth { "X-Bench-Auth: 1\r\n" } else { "" };
    format!(
        "REGISTER sip:{domain} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}-{cseq}\r\nFrom: <sip:{user}@{domain}>;tag={tag}\r\nTo: <sip:{user}@{domain}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local}{pn}\r\n{auth}{x}Expires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The value of the first header `name` (full form, case-insensitive).
fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// An `Authorization` value answering the MD5 challenge of a 401 (or the
/// challenge without algorithm, which means MD5).
fn authorization(msg: &str, user: &str, password: &str, uri: &str) -> Option<String> {
    let challenge = msg.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        if !n.trim().eq_ignore_ascii_case("WWW-Authenticate") {
            return None;
        }
        let p = params(v.trim().strip_prefix("Digest")?);
        let alg = p.iter().find(|(k, _)| k == "algorithm").map(|(_, v)| v.as_str());
        matches!(alg, None | Some("MD5") | Some("md5")).then_some(p)
    })?;
    let get = |k: &str| challenge.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let realm = get("realm")?;
    let nonce = get("nonce")?;
    let qop_auth = get("qop").is_some_and(|q| q.split(',').any(|q| q.trim() == "auth"));
    let ha1 = md5_hex(format!("{user}:{realm}:{password}").as_bytes());
    let ha2 = md5_hex(format!("REGISTER:{uri}").as_bytes());
    let cnonce = "0a4f113b";
    let mut out = format!("Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\"");
    if qop_auth {
        let response = md5_hex(format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}").as_bytes());
        out.push_str(&format!(", qop=auth, nc=00000001, cnonce=\"{cnonce}\", response=\"{response}\""));
    } else {
        let response = md5_hex(format!("{ha1}:{nonce}:{ha2}").as_bytes());
        out.push_str(&format!(", response=\"{response}\""));
    }
    out.push_str(", algorithm=MD5");
    if let Some(o) = get("opaque") {
        out.push_str(&format!(", opaque=\"{o}\""));
    }
    Some(out)
}

/// `k=v` / `k="v"` parameters of a challenge, names lower-cased.
fn params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let k0 = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = s[k0..i].trim().to_ascii_lowercase();
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                val.push(b[i] as char);
                i += 1;
            }
            i += 1;
        } else {
            let v0 = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = s[v0..i].trim().to_string();
        }
        out.push((key, val));
    }
    out
}

/// MD5 (RFC 1321) as lower-case hex; digest auth needs nothing else.
fn md5_hex(data: &[u8]) -> String {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14,
        20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6,
        10, 15, 21,
    ];
    let k: Vec<u32> = (0..64).map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32).collect();
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_le_bytes());
    let (mut a0, mut b0, mut c0, mut d0) = (0x6745_2301u32, 0xefcd_ab89u32, 0x98ba_dcfeu32, 0x1032_5476u32);
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk.chunks(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    [a0, b0, c0, d0].iter().flat_map(|w| w.to_le_bytes()).map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_vectors() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            md5_hex(b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    #[test]
    fn answers_md5_challenge() {
        let msg = "SIP/2.0 401 Unauthorized\r\nCall-ID: x\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\", opaque=\"o\", algorithm=SHA-256, qop=\"auth\"\r\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\", opaque=\"o\", algorithm=MD5, qop=\"auth\"\r\n\r\n";
        let a = authorization(msg, "u", "p", "sip:d").unwrap();
        assert!(a.contains("qop=auth") && a.contains("opaque=\"o\"") && a.contains("algorithm=MD5"), "{a}");
        assert_eq!(header(msg, "call-id"), Some("x"));
    }
}
