//! End-to-end tests of RFC 3263 routing through the real binary, against a
//! real DNS server (dnsmasq, started by the test on a free port): a call to
//! a domain given by name follows its SRV records, fails over to the backup
//! target on 503 and on a silent primary, a name that does not exist is
//! answered at once, requests to other domains go through the configured
//! outbound proxy, and a `sips:` domain is reached over TLS only after its
//! certificate proved that domain (RFC 5922), the SRV target's name or
//! address being no proof.

mod common;

#[path = "../../sip-dns/tests/common/mod.rs"]
mod dnsmasq;

use common::*;
use dnsmasq::Dnsmasq;
use std::io::Write;
use std::time::{Duration, Instant};

/// A copy of a sipp scenario with `from` replaced by `to` (sipp checks
/// status codes and reads Request-URIs before substituting keywords).
fn scenario_with(scenario: &str, pairs: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(repo().join("tests/sipp").join(scenario)).unwrap();
    for (from, to) in pairs {
        text = text.replace(from, to);
    }
    let dir = tempfile::Builder::new().prefix("sipwake-dns-scen").tempdir().unwrap().keep();
    let p = dir.join(scenario);
    std::fs::File::create(&p).unwrap().write_all(text.as_bytes()).unwrap();
    p.to_string_lossy().into_owned()
}

/// The caller's scenario: INVITE `sip:[service]@DOMAIN` through sipwake.
fn caller_to(domain: &str) -> String {
    let to = format!("sip:[service]@{domain}");
    scenario_with("uac_call.xml", &[("sip:[service]@[remote_ip]:[remote_port]", &to)])
}

/// dnsmasq with `gw.test`: SRV priority 10 → gw1 at `p1`, priority 20 →
/// gw2 at `p2` (both 127.0.0.1); everything else under `.test` NXDOMAIN.
fn gateways(p1: u16, p2: u16) -> Dnsmasq {
    Dnsmasq::with_args(vec![
        "--local=/test/".into(),
        format!("--srv-host=_sip._udp.gw.test,gw1.gw.test,{p1},10,0"),
        format!("--srv-host=_sip._udp.gw.test,gw2.gw.test,{p2},20,0"),
        "--host-record=gw1.gw.test,127.0.0.1".into(),
        "--host-record=gw2.gw.test,127.0.0.1".into(),
        format!("--host-record=edge.test,127.0.0.1"),
        format!("--srv-host=_sip._udp.edge.test,edge.test,{p2},0,0"),
    ])
}

fn config(dns: &Dnsmasq, extra: &str) -> String {
    format!(
        "[auth]\nenabled = false\n[sip]\nt1_ms = 50\n[dns]\nservers = [\"{}\"]\ntimeout_ms = 500\n{extra}",
        dns.addr
    )
}

fn check(name: &str, r: (bool, String), server: &Server) {
    assert!(r.0, "{name} failed:\n{}\n--- sipwake log ---\n{}", r.1, server.log());
}

#[test]
fn a_call_follows_srv_and_fails_over_to_the_backup_on_503() {
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let dns = gateways(p1, p2);
    let server = Server::start_with(&[], Some(&config(&dns, "")));
    let target = server.udp;
    let busy = sipp_start(&scenario_with("uas_reject.xml", &[("CODE", "503")]), target, "u1", 1, Some(p1), &[]);
    let gw2 = sipp_start("uas_answer.xml", target, "u1", 1, Some(p2), &[]);
    let caller = sipp_start(&caller_to("gw.test"), target, "u1", 1, None, &["-s", "carol"]);
    check("caller", caller.wait(Duration::from_secs(30)), &server);
    check("primary (503)", busy.wait(Duration::from_secs(10)), &server);
    check("backup (answers)", gw2.wait(Duration::from_secs(10)), &server);
    // The name was asked of the DNS server: SRV for UDP, then the targets' addresses.
    assert!(dns.queries_for("SRV", "_sip._udp.gw.test") >= 1, "no SRV query");
}

#[test]
fn a_silent_primary_fails_over_after_the_transaction_timeout() {
    // Nobody listens on p1.
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let dns = gateways(p1, p2);
    let server = Server::start_with(&[], Some(&config(&dns, "")));
    let gw2 = sipp_start("uas_answer.xml", server.udp, "u1", 1, Some(p2), &[]);
    let started = Instant::now();
    let caller = sipp_start(&caller_to("gw.test"), server.udp, "u1", 1, None, &["-s", "carol"]);
    check("caller", caller.wait(Duration::from_secs(30)), &server);
    check("backup (answers)", gw2.wait(Duration::from_secs(10)), &server);
    // Timer B at T1 = 50 ms is 3.2 s: the backup got the call after it, not before.
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(3), "failed over too early: {took:?}");
}

#[test]
fn a_name_that_does_not_exist_is_answered_at_once_and_cached() {
    let dns = gateways(free_udp_port(), free_udp_port());
    let server = Server::start_with(&[], Some(&config(&dns, "")));
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    for n in 0..2 {
        let invite = format!(
            "INVITE sip:carol@nowhere.test SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKnx{n};rport\r\nFrom: <sip:alice@127.0.0.1>;tag=a{n}\r\nTo: <sip:carol@nowhere.test>\r\nCall-ID: nx{n}@test\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        sock.send_to(invite.as_bytes(), server.udp).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut code = 0;
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline && (code == 0 || code == 100) {
            if let Ok(len) = sock.recv(&mut buf) {
                code = status_of(&buf[..len]);
            }
        }
        assert!(code >= 400, "INVITE to a name that does not exist: got {code}\n{}", server.log());
    }
    // Asked once: the second call used the cached NXDOMAIN.
    let asked = dns.queries_for("SRV", "_sip._udp.nowhere.test") + dns.queries_for("NAPTR", "nowhere.test");
    assert!((1..=2).contains(&asked), "asked {asked} times");
    // (a fresh socket: the unacknowledged finals above are retransmitted to the old one)
    assert_alive(&server, &std::net::UdpSocket::bind("127.0.0.1:0").unwrap(), 9);
}

#[test]
fn requests_to_other_domains_go_through_the_outbound_proxy() {
    let (p1, p2) = (free_udp_port(), free_udp_port());
    let dns = gateways(p1, p2);
    // edge.test's SRV points at p2: the edge proxy (a sipp UAS) gets the call
    // for far.example.org, whose name is never looked up.
    let server = Server::start_with(&[], Some(&config(&dns, "[proxy]\noutbound_proxy = \"sip:edge.test\"\n")));
    let edge = sipp_start("uas_answer.xml", server.udp, "u1", 1, Some(p2), &[]);
    let caller = sipp_start(&caller_to("far.example.org"), server.udp, "u1", 1, None, &["-s", "carol"]);
    check("caller", caller.wait(Duration::from_secs(30)), &server);
    check("edge proxy", edge.wait(Duration::from_secs(10)), &server);
    assert_eq!(dns.queries_for("NAPTR", "far.example.org") + dns.queries_for("A", "far.example.org"), 0);
}

/// A TLS server for `names` in front of a TCP sipp callee: socat terminates
/// TLS (certificate for `names`, from the test CA) and relays to sipp.
struct TlsFront {
    socat: std::process::Child,
    port: u16,
}

impl TlsFront {
    fn start(pki: &common::tls::Pki, names: &[&str], to_port: u16) -> TlsFront {
        let (cert, key) = pki.pki.server_identity(pki.dir.path(), names[0], names);
        let port = free_udp_port();
        let socat = std::process::Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
                cert.display(),
                key.display()
            ))
            .arg(format!("TCP:127.0.0.1:{to_port}"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("socat is installed");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < deadline, "socat did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsFront { socat, port }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
    }
}

fn metric(server: &Server, name: &str) -> f64 {
    let (_, text) = server.api("GET", "/metrics");
    text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
}

/// An INVITE from a scripted UDP caller; the final status it gets (0: none within `wait`).
fn invite_status(server: &Server, ruri: &str, wait: Duration) -> u16 {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    let invite = format!(
        "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKtls1;rport\r\nFrom: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <{ruri}>\r\nCall-ID: tls-name@test\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(invite.as_bytes(), server.udp).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(len) = sock.recv(&mut buf) {
            let code = status_of(&buf[..len]);
            if code >= 200 {
                return code;
            }
        }
    }
    0
}

#[test]
fn a_sips_domain_is_reached_over_tls_with_its_certificate_checked() {
    let pki = common::tls::Pki::new();
    // The callee (a TCP sipp behind socat) answers for tls.test only;
    // wrong.test's SRV points at the same server.
    let sipp_port = free_udp_port();
    let front = TlsFront::start(&pki, &["tls.test"], sipp_port);
    let dns = Dnsmasq::with_args(vec![
        "--local=/test/".into(),
        format!("--srv-host=_sips._tcp.tls.test,sip1.tls.test,{},0,0", front.port),
        "--host-record=sip1.tls.test,127.0.0.1".into(),
        format!("--srv-host=_sips._tcp.wrong.test,sip1.tls.test,{},0,0", front.port),
    ]);
    // sipwake trusts the test CA for next hops ([tls] ca_file).
    let server = Server::start_with(&["--listen", "tls:127.0.0.1:0"], Some(&config(&dns, &pki.config(""))));
    let nobody = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    let callee = sipp_start("uas_answer.xml", nobody, "t1", 1, Some(sipp_port), &[]);
    // sips:carol@tls.test → SRV _sips._tcp → TLS; the certificate names tls.test.
    let caller = sipp_start(
        &scenario_with("uac_call.xml", &[("sip:[service]@[remote_ip]:[remote_port]", "sips:[service]@tls.test")]),
        server.udp,
        "u1",
        1,
        None,
        &["-s", "carol"],
    );
    check("caller to sips:carol@tls.test", caller.wait(Duration::from_secs(30)), &server);
    check("callee behind TLS", callee.wait(Duration::from_secs(10)), &server);
    let out = "sipwake_transport_connections_total{transport=\"tls\",direction=\"out\"}";
    assert!(metric(&server, out) >= 1.0, "{}", server.log());
    // sips:carol@wrong.test reaches the same server, whose certificate does
    // not name wrong.test: the handshake is refused, nothing is delivered,
    // and the caller gets an error once the transaction times out (T1 = 50 ms).
    let code = invite_status(&server, "sips:carol@wrong.test", Duration::from_secs(15));
    assert!(code >= 400, "INVITE to a domain the certificate does not name: {code}\n{}", server.log());
    let failed = metric(&server, "sipwake_transport_handshake_failures_total{transport=\"tls\",reason=\"tls\"}");
    assert!(failed >= 1.0, "no failed handshake counted\n{}", server.log());
}
