//! A measurement, not a check (ignored by default): memory per TCP
//! connection and whether it comes back after the connections close.
//! Opens N idle connections, closes them, three times, and prints VmRSS,
//! the connection table's map capacities, and VmRSS after glibc
//! `malloc_trim(0)`. With `SEND=1` each client first sends one request
//! (like a phone that registered and then idles).
//!
//! `CONNS=9000 SEND=1 cargo test -p sip-transport --release --test conn_memory -- --ignored --nocapture`

use sip_msg::{Message, ParseFailure};
use sip_transport::{Handler, ListenSpec, Source, TransportConfig, Transports};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Count(AtomicUsize);
impl Handler for Count {
    fn on_message(&self, _src: Source, _msg: Result<Message, ParseFailure>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

const OPTIONS: &[u8] = b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK-1\r\nFrom: <sip:p@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c1@t\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

unsafe extern "C" {
    /// glibc: gives free heap memory back to the kernel.
    fn malloc_trim(pad: usize) -> i32;
}

fn rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches(" kB").parse().unwrap()
}

fn wait(t: &Transports, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while t.conn_count() != n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(t.conn_count(), n);
}

#[test]
#[ignore = "a measurement; run by hand"]
fn memory_per_connection_and_after_close() {
    let n: usize = std::env::var("CONNS").ok().and_then(|v| v.parse().ok()).unwrap_or(8000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let spec: ListenSpec = "tcp:127.0.0.1:0".parse().unwrap();
    let t = rt.block_on(Transports::bind(&[spec], TransportConfig::default())).unwrap();
    let count = Arc::new(Count::default());
    t.start(count.clone());
    let send = std::env::var("SEND").is_ok_and(|v| v == "1");
    let addr = t.local_addrs()[0].1;
    let base = rss_kb();
    println!("baseline: VmRSS {base} kB");
    for round in 1..=3 {
        let mut clients: Vec<_> = (0..n).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        wait(&t, n);
        if send {
            let before = count.0.load(Ordering::SeqCst);
            for c in &mut clients {
                c.write_all(OPTIONS).unwrap();
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            while count.0.load(Ordering::SeqCst) < before + n && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let open = rss_kb();
        drop(clients);
        wait(&t, 0);
        std::thread::sleep(Duration::from_millis(300));
        let closed = rss_kb();
        println!(
            "round {round}: {n} open: VmRSS {open} kB (+{:.1} kB/conn over baseline); all closed: VmRSS {closed} kB; table capacity (by_id, by_remote) {:?}",
            (open - base) as f64 / n as f64,
            t.conn_table_capacity()
        );
    }
    let before = rss_kb();
    let released = unsafe { malloc_trim(0) };
    println!("malloc_trim(0) -> {released}: VmRSS {before} -> {} kB", rss_kb());
}
