//! The push side of the end-to-end tests: a local webhook receiver that
//! records every push (a phone's OS would wake the app), the `[push]`
//! configuration that points sipwake at it, a push device's Contact, a
//! caller's INVITE and final response, and the woken device's answer.

use super::phone::Phone;
use super::status_of;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

/// A local webhook receiver: every POST body goes to the channel; answers `status`.
pub fn webhook(status: u16) -> (String, mpsc::Receiver<serde_json::Value>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/push", l.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut w = conn;
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
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
                    if let Ok(v) = serde_json::from_slice(&body) {
                        let _ = tx.send(v);
                    }
                    let reason = if status == 200 { "OK" } else { "Error" };
                    let _ = w.write_all(format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n\r\n").as_bytes());
                }
            });
        }
    });
    (url, rx)
}

pub fn config(url: &str, extra: &str) -> String {
    format!(
        "[auth]\nenabled = false\n[push]\nenable = true\n{extra}\n[push.senders.\"*\"]\nwebhook = \"{url}\"\ntimeout_ms = 2000\n"
    )
}

pub const INSTANCE: &str = "+sip.instance=\"<urn:uuid:6c5f0b8e-0000-4000-8000-00000000a001>\"";

pub fn push_contact(p: &Phone, prid: &str) -> String {
    format!("<sip:dev@{};pn-provider=apns;pn-prid={prid};pn-param=TEAM1.com.example.voip>;{INSTANCE}", p.local())
}

/// Reads datagrams on the caller socket until a final response (>= 200) arrives.
pub fn final_response(sock: &UdpSocket, wait: Duration) -> Option<String> {
    sock.set_read_timeout(Some(wait)).unwrap();
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, _) = sock.recv_from(&mut buf).ok()?;
        let t = String::from_utf8_lossy(&buf[..n]).into_owned();
        if status_of(t.as_bytes()) >= 200 {
            return Some(t);
        }
    }
}

/// The woken device answers the INVITE `inv` (received from `from`) with
/// `status_line` (e.g. `486 Busy Here`), To-tagged `dev1`; `extra`: more
/// header lines, each ending in CRLF.
pub fn answer(dev: &Phone, inv: &str, from: std::net::SocketAddr, status_line: &str, extra: &str) {
    let hdrs: Vec<&str> = inv.split("\r\n").take_while(|l| !l.is_empty()).collect();
    let mut resp = format!("SIP/2.0 {status_line}\r\n");
    for h in &hdrs[1..] {
        if ["Via:", "From:", "Call-ID:", "CSeq:"].iter().any(|p| h.starts_with(p)) {
            resp += &format!("{h}\r\n");
        } else if h.starts_with("To:") {
            resp += &format!("{h};tag=dev1\r\n");
        }
    }
    resp += extra;
    resp += "Content-Length: 0\r\n\r\n";
    dev.udp_socket().send_to(resp.as_bytes(), from).unwrap();
}

/// An INVITE from `sock` to `dev@127.0.0.1`; returns its text.
pub fn invite(server: std::net::SocketAddr, sock: &UdpSocket, n: u32) -> String {
    let local = sock.local_addr().unwrap();
    let m = format!(
        "INVITE sip:dev@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-push-{n}\r\nFrom: <sip:caller@other.example>;tag=c{n}\r\nTo: <sip:dev@127.0.0.1>\r\nCall-ID: push-call-{n}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(m.as_bytes(), server).unwrap();
    m
}
