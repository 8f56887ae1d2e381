//! The push service of the end-to-end tests: a local webhook receiver that
//! records every push (a phone's OS would wake the app), and the `[push]`
//! configuration that points sipwake at it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

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
