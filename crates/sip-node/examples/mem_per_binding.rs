//! Live heap per binding, deterministically: N REGISTERs of distinct AoRs
//! fed to a sans-IO [`sip_node::Node`] (push on, `purr = false`, as the
//! binary's default), every store write acknowledged at once, then the
//! clock moved past the transactions' lifetime so only the location
//! service and the push engine hold memory. A counting `#[global_allocator]`
//! around the system allocator reports the live heap before and after.
//!
//! The REGISTERs are those of `bench/sipp/register_push.xml` (push: pn-*
//! Contact and `+sip.instance`) and `bench/sipp/register.xml` (plain).
//!
//! ```text
//! cargo run --release -p sip-node --example mem_per_binding -- [N]   # default 100000
//! ```
//!
//! Columns: `B/binding` = requested bytes, `usable B` = glibc
//! `malloc_usable_size` (the chunks handed out, without the 8-byte chunk
//! header), `allocs` = live allocations, each per binding.

use sip_msg::{Limits, Source, Transport, parse_datagram};
use sip_node::{Node, NodeConfig, ProxyConfig};
use sip_push::PushConfig;
use sip_registrar::RegistrarConfig;
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

struct Counting;

static BYTES: AtomicIsize = AtomicIsize::new(0);
static USABLE: AtomicIsize = AtomicIsize::new(0);
static COUNT: AtomicIsize = AtomicIsize::new(0);

unsafe extern "C" {
    fn malloc_usable_size(p: *mut u8) -> usize;
}

fn usable(p: *mut u8, layout: Layout) -> isize {
    // Over-aligned layouts do not come from plain malloc; count what was asked.
    if p.is_null() || layout.align() > 16 {
        return layout.size() as isize;
    }
    // SAFETY: `p` is a live block from the system allocator (malloc family).
    unsafe { malloc_usable_size(p) as isize }
}

// SAFETY: forwards to `System`; the counters have no effect on the blocks.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            BYTES.fetch_add(layout.size() as isize, Relaxed);
            USABLE.fetch_add(usable(p, layout), Relaxed);
            COUNT.fetch_add(1, Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        BYTES.fetch_sub(layout.size() as isize, Relaxed);
        USABLE.fetch_sub(usable(p, layout), Relaxed);
        COUNT.fetch_sub(1, Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(p, layout) }
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let before = usable(p, layout);
        // SAFETY: the caller's contract, forwarded.
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            BYTES.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
            let new_layout = Layout::from_size_align(new_size, layout.align()).unwrap_or(layout);
            USABLE.fetch_add(usable(q, new_layout) - before, Relaxed);
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

fn snapshot() -> (isize, isize, isize) {
    (BYTES.load(Relaxed), USABLE.load(Relaxed), COUNT.load(Relaxed))
}

const SERVER: &str = "127.0.0.1:5060";
const DOMAIN: &str = "127.0.0.1";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn config(push: bool) -> NodeConfig {
    NodeConfig {
        txn: sip_txn::Config::default(),
        registrar: RegistrarConfig { domains: vec![DOMAIN.into()], ..RegistrarConfig::default() },
        proxy: ProxyConfig {
            record_route: true,
            authenticate_local_callers: false,
            allow_unauthenticated_inbound: true,
            relay_for_local_users: false,
            timer_c: Duration::from_secs(180),
            outbound_proxy: None,
        },
        auth: None,
        push: push.then(|| PushConfig::with_providers(["apns", "fcm"])),
        server_header: "sipwake-mem".into(),
        listeners: vec![(Transport::Udp, addr(SERVER))],
        flow_token_key: [42; 32],
        seed: 7,
        unix_ms: 1_750_000_000_000,
        call_end_pushes: Vec::new(),
        push_audit: Default::default(),
        mid: None,
        cluster: None,
        defence: Default::default(),
    }
}

/// The i-th REGISTER, as sipp sends `register_push.xml` / `register.xml`.
fn register(i: usize, push: bool) -> String {
    let user = format!("u{i:07}");
    let port = 10_000 + (i % 50_000);
    let local = format!("10.0.{}.{}:{port}", (i / 250) % 250, i % 250);
    let contact = if push {
        format!(
            "<sip:{user}@{local};pn-provider=apns;pn-prid=PRID-{user}-0123456789abcdef0123456789abcdef;\
             pn-param=TEAM1.com.example.voip>;+sip.instance=\"<urn:uuid:6c5f0b8e-0000-4000-8000-{:012}>\"",
            i
        )
    } else {
        format!("<sip:{user}@{local}>")
    };
    format!(
        "REGISTER sip:{SERVER} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{i}-1;rport\r\n\
         From: <sip:{user}@{DOMAIN}>;tag=4242r{i}\r\n\
         To: <sip:{user}@{DOMAIN}>\r\n\
         Call-ID: {i}-4242@10.0.0.1\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: {contact}\r\n\
         Expires: 3600\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Drains every output; store writes succeed at once.
fn settle(node: &mut Node, now: Instant) -> usize {
    let mut ok = 0;
    loop {
        let mut any = false;
        while let Some(t) = node.poll_transmit() {
            any = true;
            if t.data.starts_with(b"SIP/2.0 200") {
                ok += 1;
            }
        }
        let mut acks = Vec::new();
        while let Some(w) = node.poll_store() {
            any = true;
            acks.push(w.id);
        }
        for id in acks {
            node.handle_store_result(id, Ok(()), now);
        }
        while node.poll_push().is_some() {
            any = true;
        }
        while node.poll_lookup().is_some() {
            any = true;
        }
        if !any {
            return ok;
        }
    }
}

struct Row {
    kind: &'static str,
    bytes: f64,
    usable: f64,
    allocs: f64,
    ok: usize,
}

fn run(n: usize, push: bool) -> Row {
    let t0 = Instant::now();
    let mut now = t0;
    let mut node = Node::new(config(push), now).expect("node");
    settle(&mut node, now);
    let before = snapshot();
    let mut ok = 0;
    for i in 0..n {
        let text = register(i, push);
        let local = format!("10.0.{}.{}:{}", (i / 250) % 250, i % 250, 10_000 + (i % 50_000));
        let src = Source { transport: Transport::Udp, local: addr(SERVER), remote: addr(&local), conn: None };
        node.handle_message(src, parse_datagram(bytes::Bytes::from(text), &Limits::default()), now);
        ok += settle(&mut node, now);
        // 1000 REGISTERs per virtual second.
        if i % 1000 == 999 {
            now += Duration::from_secs(1);
            node.handle_timeout(now);
            settle(&mut node, now);
        }
    }
    // Past every transaction's lifetime (Timer J: 32 s), well before any
    // refresh push (expiry − 120 s).
    let end = now + Duration::from_secs(60);
    while let Some(t) = node.poll_timeout().filter(|t| *t <= end) {
        now = t.max(now);
        node.handle_timeout(now);
        settle(&mut node, now);
    }
    node.handle_timeout(end);
    settle(&mut node, end);
    let after = snapshot();
    assert_eq!(node.location().len(), n, "every binding registered");
    if push {
        let tracked = node.push().map_or(0, |p| p.engine.binding_count());
        assert_eq!(tracked, n, "every binding is a push binding");
    }
    let per = |a: isize, b: isize| (a - b) as f64 / n as f64;
    let r = Row {
        kind: if push { "push" } else { "plain" },
        bytes: per(after.0, before.0),
        usable: per(after.1, before.1),
        allocs: per(after.2, before.2),
        ok,
    };
    drop(node);
    r
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    println!("{:<6} {:>9} {:>10} {:>10} {:>8} {:>8}", "kind", "bindings", "B/binding", "usable B", "allocs", "200s");
    for push in [true, false] {
        let r = run(n, push);
        println!("{:<6} {:>9} {:>10.1} {:>10.1} {:>8.2} {:>8}", r.kind, n, r.bytes, r.usable, r.allocs, r.ok);
    }
}
