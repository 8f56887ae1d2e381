//! `sip-probe phones`: N registered "phones", each on its own UDP socket or
//! its own persistent TLS connection, sending REGISTER refreshes (same
//! Call-ID, next CSeq) at an aggregate target rate. Measures responses/s,
//! REGISTER → response latency and errors of the refreshes only.
//!
//! Protocol with the bench script on stdout: `ready N` once every phone has
//! connected and registered (its first REGISTER is not measured), then one
//! JSON line with the results after the last refresh, printed before the
//! connections are closed (so the script can read the server's CPU between
//! the two lines without the set-up or the tear-down in it).
//!
//! Each phone has one request outstanding at most: phone `i` sends its
//! `k`-th refresh at `start + (k·N + i)/rate`, or as soon as the previous
//! answer arrives when it is late. Only the REGISTER load: no calls, no TLS
//! server side, no statistics beyond this run (`stats.rs`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio_rustls::client::TlsStream;

use crate::stats::{arg, arg_num, json_fields, raise_nofile};
use crate::tls::{self, TlsOptions};

enum Conn {
    Udp(UdpSocket),
    Tls(Box<BufReader<TlsStream<TcpStream>>>),
}

struct Phone {
    conn: Conn,
    target: SocketAddr,
    local: SocketAddr,
    user: String,
    domain: String,
    call_id: String,
    cseq: u32,
    timeout: Duration,
}

/// One phone's tally.
#[derive(Default)]
struct Tally {
    sent: u64,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    lat_us: Vec<u64>,
    last_answer: Option<Instant>,
}

pub fn run(args: &[String]) -> Result<(), String> {
    raise_nofile();
    let target: SocketAddr =
        arg(args, "--target").ok_or("--target IP:PORT is required")?.parse().map_err(|e| format!("--target: {e}"))?;
    let transport = arg(args, "--transport").unwrap_or_else(|| "tls".into());
    let n = arg_num(args, "--phones", 100)?.max(1);
    let rate = arg_num(args, "--rate", 1000)?.max(1);
    let secs = arg_num(args, "--secs", 5)?;
    let timeout = Duration::from_millis(arg_num(args, "--timeout-ms", 5000)?);
    let domain = arg(args, "--domain").unwrap_or_else(|| "127.0.0.1".into());
    let prefix = arg(args, "--user-prefix").unwrap_or_else(|| "phone".into());
    let tls_opts = match transport.as_str() {
        "udp" => None,
        "tls" => Some(TlsOptions {
            ca: arg(args, "--ca").ok_or("--ca FILE is required with --transport tls")?,
            server_name: arg(args, "--server-name"),
            kx: arg(args, "--kx"),
            resume: args.iter().any(|a| a == "--resume"),
        }),
        other => return Err(format!("--transport {other}: udp or tls")),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async move {
        // Set-up: connect and register every phone, 50 at a time.
        let mut phones = Vec::with_capacity(n as usize);
        let mut negotiated = None;
        let connector = tls_opts.as_ref().map(tls::connector).transpose()?;
        let name = tls_opts.as_ref().map(|o| tls::server_name(o, target)).transpose()?;
        let pid = std::process::id();
        let mut i = 0;
        while i < n {
            let mut set = JoinSet::new();
            for j in i..(i + 50).min(n) {
                let connector = connector.clone();
                let name = name.clone();
                let (user, domain) = (format!("{prefix}{j}"), domain.clone());
                set.spawn(async move {
                    let (conn, local, neg) = match (connector, name) {
                        (Some(c), Some(name)) => {
                            let s = tls::connect(&c, &name, target).await?;
                            let local = s.get_ref().0.local_addr().map_err(|e| e.to_string())?;
                            let neg = tls::negotiated(&s);
                            (Conn::Tls(Box::new(BufReader::new(s))), local, Some(neg))
                        }
                        _ => {
                            let bind = if target.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" };
                            let s = UdpSocket::bind(bind).await.map_err(|e| format!("bind: {e}"))?;
                            let local = s.local_addr().map_err(|e| e.to_string())?;
                            (Conn::Udp(s), local, None)
                        }
                    };
                    let call_id = format!("{user}-{pid}");
                    let mut phone = Phone { conn, target, local, user, domain, call_id, cseq: 0, timeout };
                    phone.register().await.map_err(|e| format!("{}: initial REGISTER: {e}", phone.user))?;
                    Ok::<_, String>((j, phone, neg))
                });
            }
            while let Some(r) = set.join_next().await {
                let (j, phone, neg) = r.map_err(|e| format!("set-up task: {e}"))??;
                if negotiated.is_none() {
                    negotiated = neg;
                }
                phones.push((j, phone));
            }
            i += 50;
        }
        phones.sort_by_key(|(j, _)| *j);
        println!("ready {n}");
        use std::io::Write as _;
        let _ = std::io::stdout().flush();

        // Measured phase.
        let start = tokio::time::Instant::now() + Duration::from_millis(200);
        let end = start + Duration::from_secs(secs);
        let step = Duration::from_nanos(1_000_000_000 / rate);
        let mut set = JoinSet::new();
        for (i, mut phone) in phones {
            set.spawn(async move {
                let mut tally = Tally::default();
                let mut k: u64 = 0;
                loop {
                    let at = start + step * (k * n + i) as u32;
                    if at >= end {
                        break;
                    }
                    tokio::time::sleep_until(at).await;
                    tally.sent += 1;
                    match phone.register().await {
                        Ok(lat) => {
                            tally.ok += 1;
                            tally.lat_us.push(lat.as_micros() as u64);
                            tally.last_answer = Some(Instant::now());
                        }
                        Err(e) => {
                            tally.errors += 1;
                            tally.first_error.get_or_insert(e);
                        }
                    }
                    k += 1;
                }
                (tally, phone)
            });
        }
        let begun = start.into_std();
        let mut total = Tally::default();
        let mut keep = Vec::with_capacity(n as usize);
        while let Some(r) = set.join_next().await {
            let (t, phone) = r.map_err(|e| format!("phone task: {e}"))?;
            total.sent += t.sent;
            total.ok += t.ok;
            total.errors += t.errors;
            if total.first_error.is_none() {
                total.first_error = t.first_error;
            }
            total.lat_us.extend(t.lat_us);
            total.last_answer = total.last_answer.max(t.last_answer);
            keep.push(phone);
        }
        let elapsed = total.last_answer.map_or(0.0, |t| t.duration_since(begun).as_secs_f64()).max(secs as f64);
        let neg = negotiated.map_or_else(String::new, |g| {
            format!(",\"tls_version\":\"{}\",\"tls_suite\":\"{}\",\"tls_group\":\"{}\"", g.version, g.suite, g.group)
        });
        let err = total
            .first_error
            .map_or_else(String::new, |e| format!(",\"first_error\":{}", serde_json::Value::String(e)));
        println!(
            "{{\"transport\":\"{transport}\",\"phones\":{n},\"sent\":{},\"answered\":{},\"errors\":{},\"secs\":{elapsed:.3},\"per_sec\":{:.1},{}{neg}{err}}}",
            total.sent,
            total.ok,
            total.errors,
            total.ok as f64 / elapsed,
            json_fields("lat", &mut total.lat_us)
        );
        let _ = std::io::stdout().flush();
        drop(keep);
        Ok(())
    })
}

impl Phone {
    /// Sends the next REGISTER and waits for its final answer: the latency
    /// when it is 2xx, an error otherwise (other status, timeout, I/O).
    async fn register(&mut self) -> Result<Duration, String> {
        self.cseq += 1;
        let (via, contact_param) = match self.conn {
            Conn::Udp(_) => ("UDP", ""),
            Conn::Tls(_) => ("TLS", ";transport=tls"),
        };
        let Phone { local, user, domain, call_id, cseq, .. } = &*self;
        let msg = format!(
            "REGISTER sip:{domain} SIP/2.0\r\nVia: SIP/2.0/{via} {local};branch=z9hG4bK{call_id}-{cseq}\r\nFrom: <sip:{user}@{domain}>;tag={user}\r\nTo: <sip:{user}@{domain}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{local}{contact_param}>\r\nExpires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let want_cseq = format!("{cseq} REGISTER");
        let t0 = Instant::now();
        let status = tokio::time::timeout(self.timeout, async {
            match &mut self.conn {
                Conn::Udp(s) => {
                    s.send_to(msg.as_bytes(), self.target).await.map_err(|e| format!("send: {e}"))?;
                    let mut buf = vec![0u8; 65_536];
                    loop {
                        let n = s.recv(&mut buf).await.map_err(|e| format!("recv: {e}"))?;
                        let text = String::from_utf8_lossy(&buf[..n]);
                        if let Some(code) = final_status(&text, &self.call_id, &want_cseq) {
                            return Ok::<u16, String>(code);
                        }
                    }
                }
                Conn::Tls(s) => {
                    s.write_all(msg.as_bytes()).await.map_err(|e| format!("send: {e}"))?;
                    s.flush().await.map_err(|e| format!("send: {e}"))?;
                    loop {
                        let text = tls::read_message(s.as_mut())
                            .await
                            .map_err(|e| format!("read: {e}"))?
                            .ok_or("connection closed by the server")?;
                        if let Some(code) = final_status(&text, &self.call_id, &want_cseq) {
                            return Ok(code);
                        }
                    }
                }
            }
        })
        .await
        .map_err(|_| format!("no answer within {} ms", self.timeout.as_millis()))??;
        if (200..300).contains(&status) { Ok(t0.elapsed()) } else { Err(format!("answered {status}")) }
    }
}

/// The status code of `msg` when it is a final response to the request
/// with this Call-ID and CSeq.
pub fn final_status(msg: &str, call_id: &str, cseq: &str) -> Option<u16> {
    let code: u16 = msg.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()?;
    let header = |name: &str| {
        msg.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    let ours = header("Call-ID").or_else(|| header("i")) == Some(call_id) && header("CSeq") == Some(cseq);
    (ours && code >= 200).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_final_answers_of_this_request_only() {
        let ok = "SIP/2.0 200 OK\r\nCall-ID: p1-9\r\nCSeq: 3 REGISTER\r\n\r\n";
        assert_eq!(final_status(ok, "p1-9", "3 REGISTER"), Some(200));
        assert_eq!(final_status(ok, "p1-9", "2 REGISTER"), None);
        assert_eq!(final_status(ok, "p2-9", "3 REGISTER"), None);
        let trying = "SIP/2.0 100 Trying\r\ni: p1-9\r\nCSeq: 3 REGISTER\r\n\r\n";
        assert_eq!(final_status(trying, "p1-9", "3 REGISTER"), None);
        let busy = "SIP/2.0 503 Busy\r\ni: p1-9\r\nCSeq: 3 REGISTER\r\n\r\n";
        assert_eq!(final_status(busy, "p1-9", "3 REGISTER"), Some(503));
        assert_eq!(final_status("REGISTER sip:x SIP/2.0\r\n\r\n", "p1-9", "3 REGISTER"), None);
    }
}
