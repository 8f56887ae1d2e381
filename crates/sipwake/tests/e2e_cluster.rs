//! End-to-end tests of the PostgreSQL cluster: a real PostgreSQL started by
//! the test (initdb in a temp dir, a free port), two or three real
//! `sipwake` nodes on loopback sharing it, scripted phones and callers, and
//! the webhook receiver as the push service.

mod common;
#[path = "../../location-store/tests/pg/mod.rs"]
mod pg;

use common::phone::{Link, Phone};
use common::webhook::{final_response, invite, push_contact, webhook};
use common::*;
use pg::TestPg;
use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A node's configuration: auth off (unless `auth`), pushes to the webhook,
/// the shared store, fast heartbeats so a dead node is noticed in ~1.5 s.
fn node_config(pg: &TestPg, id: &str, hook: &str, push_extra: &str, auth: bool) -> String {
    format!(
        "[auth]\nenabled = {auth}\n[push]\nenable = true\n{push_extra}\n[push.senders.\"*\"]\nwebhook = \"{hook}\"\ntimeout_ms = 2000\n\
         [store]\nbackend = \"postgres\"\nurl = \"{}\"\n\
         [cluster]\nnode_id = \"{id}\"\nheartbeat_ms = 300\ndead_after_ms = 1500\ntakeover_grace_ms = 2500\n",
        pg.url()
    )
}

fn start_nodes(pg: &TestPg, n: usize, hook: &str, push_extra: &str, auth: bool) -> Vec<Server> {
    (1..=n).map(|i| Server::start_with(&[], Some(&node_config(pg, &format!("n{i}"), hook, push_extra, auth)))).collect()
}

/// Polls until `f` holds (or panics after `limit`).
fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The 486 a phone answers an INVITE with.
fn busy(inv: &str) -> String {
    let mut resp = String::from("SIP/2.0 486 Busy Here\r\n");
    for h in inv.split("\r\n").take_while(|l| !l.is_empty()).skip(1) {
        if h.starts_with("Via:") || h.starts_with("From:") || h.starts_with("Call-ID:") || h.starts_with("CSeq:") {
            resp += h;
            resp += "\r\n";
        } else if h.starts_with("To:") {
            resp += &format!("{h};tag=dev1\r\n");
        }
    }
    resp + "Content-Length: 0\r\n\r\n"
}

#[test]
fn a_call_at_node_2_wakes_a_device_of_node_1_that_re_registers_at_node_3() {
    let pg = TestPg::start();
    let (hook, pushes) = webhook(200);
    let nodes = start_nodes(&pg, 3, &hook, "", false);
    let mut dev = Phone::udp(nodes[0].udp, "dev", "127.0.0.1");
    let r = dev.register(&[&push_contact(&dev, "TOKEN-A")], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    // Node 2 follows node 1's commit.
    eventually(Duration::from_secs(3), "node 2 to see the binding", || !nodes[1].bindings("dev@127.0.0.1").is_empty());
    // The call arrives at node 2: it pushes the device and parks the INVITE.
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    invite(nodes[1].udp, &caller, 1);
    let push = pushes.recv_timeout(Duration::from_secs(5)).expect("a call push");
    assert_eq!(push["reason"], "ini-INVITE");
    assert_eq!(push["prid"], "TOKEN-A");
    // The woken app comes back on another socket and registers at node 3.
    let mut dev3 = Phone::udp(nodes[2].udp, "dev", "127.0.0.1");
    let t0 = Instant::now();
    let r = dev3.register(&[&push_contact(&dev3, "TOKEN-A")], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    // Node 2 forks the INVITE once, through node 3, which holds the new flow.
    let (inv, from) = dev3.next_request(Duration::from_secs(5)).unwrap_or_else(|| {
        panic!("no INVITE after the wake-up\nnode2:\n{}\nnode3:\n{}", nodes[1].log(), nodes[2].log())
    });
    let latency = t0.elapsed();
    assert!(inv.starts_with("INVITE "), "{inv}");
    assert_eq!(
        from,
        nodes[2].udp,
        "sent by node 3 (it holds the device's flow); nodes {:?}\nnode1:\n{}\nnode2:\n{}\nnode3:\n{}",
        nodes.iter().map(|n| n.udp).collect::<Vec<_>>(),
        nodes[0].log(),
        nodes[1].log(),
        nodes[2].log()
    );
    eprintln!("cross-node wake: REGISTER at node 3 → INVITE at the device in {latency:?}");
    let Link::Udp(s) = &dev3.link else { panic!("Phone::udp gives a UDP link") };
    s.send_to(busy(&inv).as_bytes(), from).unwrap();
    let f = final_response(&caller, Duration::from_secs(5)).expect("the caller's final answer");
    assert_eq!(status_of(f.as_bytes()), 486, "{f}");
    // Exactly one INVITE reached the device, none its old socket.
    while let Some((t, _)) = dev3.next_request(Duration::from_millis(500)) {
        assert!(!t.starts_with("INVITE"), "a second INVITE: {t}");
    }
    assert!(dev.next_request(Duration::from_millis(200)).is_none_or(|(t, _)| !t.starts_with("INVITE")));
    let (_, m) = nodes[1].api("GET", "/metrics");
    assert!(m.contains("sipwake_cluster_members 3"), "{m}");
    assert!(m.contains("sipwake_cluster_feed_up 1"), "{m}");
}

#[test]
fn a_call_at_node_2_reaches_a_tcp_device_over_its_connection_to_node_1() {
    let pg = TestPg::start();
    let (hook, _pushes) = webhook(200);
    let nodes = start_nodes(&pg, 2, &hook, "", false);
    // A plain device (no push) on a TCP connection to node 1.
    let mut dev = Phone::tcp(nodes[0].tcp, "tcpdev", "127.0.0.1");
    let contact = format!("<sip:tcpdev@{};transport=tcp>", dev.local());
    let r = dev.register(&[&contact], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    // The call arrives at node 2 (it has no connection to the device).
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = caller.local_addr().unwrap();
    let inv = format!(
        "INVITE sip:tcpdev@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-tcp-1\r\nFrom: <sip:caller@other.example>;tag=c1\r\nTo: <sip:tcpdev@127.0.0.1>\r\nCall-ID: tcp-call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    caller.send_to(inv.as_bytes(), nodes[1].udp).unwrap();
    // Node 2 sends it through node 1, which uses the device's own connection.
    let Link::Tcp(s) = &mut dev.link else { panic!("Phone::tcp gives a TCP link") };
    let (got, _) = tcp_read_until(s, Duration::from_secs(5), |b| message_in(b, "INVITE ").is_some());
    let inv = message_in(&got, "INVITE ").unwrap_or_else(|| {
        panic!("no INVITE on the device's connection\nnode1:\n{}\nnode2:\n{}", nodes[0].log(), nodes[1].log())
    });
    assert!(inv.contains("Call-ID: tcp-call-1\r\n"), "{inv}");
    tcp_send(s, busy(&inv).as_bytes());
    let f = final_response(&caller, Duration::from_secs(5)).expect("the caller's final answer");
    assert_eq!(status_of(f.as_bytes()), 486, "{f}");
}

/// A REGISTER of `user@127.0.0.1` from `sock` (its own Call-ID).
fn register_msg(sock: &UdpSocket, user: &str, expires: u32) -> String {
    let l = sock.local_addr().unwrap();
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bK-{user}-{}\r\nFrom: <sip:{user}@127.0.0.1>;tag=f{user}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: reg-{user}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@{l}>\r\nExpires: {expires}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        l.port()
    )
}

#[test]
fn kill_9_of_a_node_under_register_load_loses_no_acknowledged_binding() {
    let pg = TestPg::start();
    let (hook, _pushes) = webhook(200);
    let mut nodes = start_nodes(&pg, 2, &hook, "", false);
    let targets = [nodes[0].udp, nodes[1].udp];
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut threads = Vec::new();
    for t in 0..4 {
        let acked = acked.clone();
        let sent = sent.clone();
        threads.push(std::thread::spawn(move || {
            for k in 0..150 {
                let user = format!("u{t}x{k}");
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                let to: SocketAddr = targets[k % 2];
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(resp) =
                    udp_exchange(&sock, to, register_msg(&sock, &user, 3600).as_bytes(), Duration::from_millis(500))
                    && status_of(&resp) == 200
                {
                    acked.lock().unwrap().push(user);
                }
            }
        }));
    }
    // Node 1 dies with REGISTERs in flight.
    eventually(Duration::from_secs(20), "the load to start", || sent.load(std::sync::atomic::Ordering::Relaxed) > 200);
    let killed = nodes.remove(0);
    let _ = killed.kill9();
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 300, "only {} REGISTERs acknowledged", acked.len());
    // Every acknowledged binding is in the shared store: the survivor has it,
    // and a node started afterwards loads it.
    let fresh = Server::start_with(&[], Some(&node_config(&pg, "n9", &hook, "", false)));
    for u in &acked {
        let aor = format!("{u}@127.0.0.1");
        assert_eq!(nodes[0].bindings(&aor).len(), 1, "{aor} acknowledged but not on the survivor");
        assert_eq!(fresh.bindings(&aor).len(), 1, "{aor} acknowledged but not in the store");
    }
}

#[test]
fn refresh_pushes_of_a_killed_node_come_once_from_the_survivors() {
    let pg = TestPg::start();
    let (hook, pushes) = webhook(200);
    // Expires 127 with a 120 s lead: the refresh push is due ~7 s after the REGISTER.
    let extra = "min_push_expires = 121\nrefresh_retries_secs = []";
    let mut nodes = start_nodes(&pg, 3, &hook, extra, false);
    let mut phones = Vec::new();
    for k in 0..4 {
        let mut p = Phone::udp(nodes[0].udp, &format!("dev{k}"), "127.0.0.1");
        let c = format!("<sip:dev{k}@{};pn-provider=apns;pn-prid=REF-{k};pn-param=TEAM1.com.example.voip>", p.local());
        assert_eq!(status_of(p.register(&[&c], &["Expires: 127"]).as_bytes()), 200);
        phones.push(p);
    }
    eventually(Duration::from_secs(3), "the survivors to see the bindings", || {
        (0..4).all(|k| !nodes[1].bindings(&format!("dev{k}@127.0.0.1")).is_empty())
            && (0..4).all(|k| !nodes[2].bindings(&format!("dev{k}@127.0.0.1")).is_empty())
    });
    let killed = nodes.remove(0);
    let _ = killed.kill9();
    let t0 = Instant::now();
    let mut got: HashMap<String, usize> = HashMap::new();
    while t0.elapsed() < Duration::from_secs(20) {
        if let Ok(p) = pushes.recv_timeout(Duration::from_millis(200))
            && p["reason"] == "reg-refresh"
        {
            *got.entry(p["prid"].as_str().unwrap().to_string()).or_default() += 1;
        }
        if got.len() == 4 && t0.elapsed() > Duration::from_secs(14) {
            break;
        }
    }
    let want: HashSet<String> = (0..4).map(|k| format!("REF-{k}")).collect();
    assert_eq!(got.keys().cloned().collect::<HashSet<_>>(), want, "refresh pushes after node 1 died: {got:?}");
    assert!(got.values().all(|n| *n == 1), "duplicate refresh pushes: {got:?}");
    let (_, m1) = nodes[0].api("GET", "/metrics");
    let (_, m2) = nodes[1].api("GET", "/metrics");
    assert!(m1.contains("sipwake_cluster_members 2") && m2.contains("sipwake_cluster_members 2"), "{m1}");
}

#[test]
fn store_down_means_500_with_retry_after_and_an_unhealthy_node_until_it_is_back() {
    let mut pg = TestPg::start();
    let (hook, _pushes) = webhook(200);
    let nodes = start_nodes(&pg, 1, &hook, "", false);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ok = udp_exchange(&sock, nodes[0].udp, register_msg(&sock, "before", 600).as_bytes(), Duration::from_secs(2));
    assert_eq!(ok.as_deref().map(status_of), Some(200));
    assert_eq!(nodes[0].api("GET", "/health").0, 200);
    pg.stop();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let r = udp_exchange(&sock, nodes[0].udp, register_msg(&sock, "during", 600).as_bytes(), Duration::from_secs(10))
        .expect("an answer while the database is down");
    let text = String::from_utf8_lossy(&r).into_owned();
    assert_eq!(status_of(&r), 500, "{text}");
    assert!(text.contains("Retry-After:"), "{text}");
    eventually(Duration::from_secs(5), "/health to say unhealthy", || nodes[0].api("GET", "/health").0 == 503);
    pg.restart();
    // It reconnects by itself: REGISTERs succeed again, /health recovers.
    eventually(Duration::from_secs(20), "REGISTER to succeed again", || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp_exchange(&sock, nodes[0].udp, register_msg(&sock, "after", 600).as_bytes(), Duration::from_secs(1))
            .is_some_and(|r| status_of(&r) == 200)
    });
    eventually(Duration::from_secs(10), "/health to recover", || nodes[0].api("GET", "/health").0 == 200);
    let before = nodes[0].bindings("before@127.0.0.1");
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(!nodes[0].bindings("after@127.0.0.1").is_empty());
}

#[test]
fn a_nonce_issued_by_one_node_is_accepted_by_another() {
    let pg = TestPg::start();
    let (hook, _pushes) = webhook(200);
    let nodes = start_nodes(&pg, 2, &hook, "", true);
    // `sipwake user add` writes the shared subscribers table.
    let cfg = nodes[0].dir.path().join("sipwake.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipwake"))
        .args(["user", "add", "alice@127.0.0.1", "--config"])
        .arg(&cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "user add: {}", String::from_utf8_lossy(&out.stderr));
    let mut alice = Phone::udp(nodes[0].udp, "alice", "127.0.0.1");
    alice.password = Some("s3cret".into());
    let contact = format!("<sip:alice@{}>", alice.local());
    // The challenge comes from node 1 ...
    let msg = alice.build(&[&contact], &["Expires: 600"], None);
    let chal = alice.exchange(&msg);
    assert_eq!(status_of(chal.as_bytes()), 401, "{chal}");
    // ... the answer goes to node 2, which accepts node 1's nonce.
    let auth = alice.answer(&chal, "REGISTER");
    alice.server = nodes[1].udp;
    let msg = alice.build(&[&contact], &["Expires: 600"], Some(&auth));
    let mut ok = alice.exchange(&msg);
    // The subscriber may not have reached node 2's cache yet: it looks it up.
    if status_of(ok.as_bytes()) != 200 {
        std::thread::sleep(Duration::from_millis(700));
        let auth = alice.answer(&chal, "REGISTER");
        let msg = alice.build(&[&contact], &["Expires: 600"], Some(&auth));
        ok = alice.exchange(&msg);
    }
    assert_eq!(status_of(ok.as_bytes()), 200, "{ok}\n{}", nodes[1].log());
}
