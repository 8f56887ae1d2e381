//! Shared helpers: a runtime, a recording (optionally echoing) handler, a
//! TCP-only `Transports` on a free loopback port, polling.

use bytes::Bytes;
use sip_msg::{Message, ParseFailure};
use sip_transport::{ConnId, Handler, ListenSpec, Source, Target, TransportConfig, Transports};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Counts what arrives; with `echo` set, answers every message with that
/// many bytes over the connection it came on.
#[derive(Default)]
pub struct Recorder {
    pub messages: AtomicUsize,
    pub closed: AtomicUsize,
    pub echo: Option<usize>,
    pub transports: OnceLock<Transports>,
    pub echo_errors: AtomicUsize,
}

impl Handler for Recorder {
    fn on_message(&self, src: Source, _msg: Result<Message, ParseFailure>) {
        self.messages.fetch_add(1, Ordering::SeqCst);
        if let (Some(n), Some(t)) = (self.echo, self.transports.get())
            && t.send(&Target::from(&src), Bytes::from(vec![b'x'; n])).is_err()
        {
            self.echo_errors.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn on_closed(&self, _conn: ConnId, _remote: SocketAddr) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// Binds TCP on 127.0.0.1:0 on `rt` and starts it with `handler`.
pub fn start(
    rt: &tokio::runtime::Runtime,
    config: TransportConfig,
    handler: Arc<Recorder>,
) -> (Transports, SocketAddr) {
    let spec: ListenSpec = "tcp:127.0.0.1:0".parse().unwrap();
    let t = rt.block_on(Transports::bind(&[spec], config)).unwrap();
    let _ = handler.transports.set(t.clone());
    t.start(handler);
    let addr = t.local_addrs()[0].1;
    (t, addr)
}

/// Polls `pred` until it holds or `wait` passes.
pub fn wait_until(wait: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if pred() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    pred()
}

/// A well-formed OPTIONS.
pub fn options(n: u32) -> Vec<u8> {
    format!(
        "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-{n}\r\nFrom: <sip:p@127.0.0.1>;tag={n}\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c{n}@t\r\nCSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}
