//! End-to-end tests of the TLS, WS and WSS transports of the real binary:
//! sipp (through a socat TCP-to-TLS bridge) and baresip registering over
//! TLS and receiving calls over their own connections; TLS hygiene (garbage
//! instead of a ClientHello, certificate reload on SIGHUP with connections
//! kept, required client certificates); SIP over WSS and WS (subprotocol,
//! Origin, bindings, requests to the browser over its connection); the
//! per-transport metrics.

mod common;

use common::tls::*;
use common::*;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

const NO_AUTH: &str = "[auth]\nenabled = false\n";

fn listener(server: &Server, transport: &str) -> SocketAddr {
    server.listeners.iter().find(|(t, _)| t == transport).unwrap_or_else(|| panic!("no {transport} listener")).1
}

fn check(name: &str, r: (bool, String), server: &Server) {
    assert!(r.0, "{name} failed:\n{}\n--- server log ---\n{}", r.1, server.log());
}

/// The value of a metric line `name{labels} value` (0 when absent).
fn metric(server: &Server, line_prefix: &str) -> u64 {
    let (_, m) = server.api("GET", "/metrics");
    m.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// A REGISTER for `user` over `transport` (Via/Contact), no Content-Length needed on WS.
fn register(user: &str, transport: &str, local: &str, n: u32) -> Vec<u8> {
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bK-reg-{user}-{n}\r\nFrom: <sip:{user}@127.0.0.1>;tag=r{n}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: reg-{user}@test\r\nCSeq: {n} REGISTER\r\nContact: <sip:{user}@{local};transport={t}>\r\nExpires: 600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        t = transport.to_ascii_lowercase()
    )
    .into_bytes()
}

#[test]
fn sipp_registers_over_tls_and_takes_a_call_on_its_connection() {
    let pki = Pki::new();
    let server = Server::start_with(&["--listen", "tls:127.0.0.1:0"], Some(&format!("{NO_AUTH}{}", pki.config(""))));
    let tls = listener(&server, "tls");
    let bridge = Bridge::start(tls, &pki.ca());
    // The callee registers through the bridge and answers on that connection;
    // the caller uses the same Call-ID so that sipp maps the INVITE to it.
    let cid = format!("tls-call-{}@test", std::process::id());
    let callee =
        sipp_start("register_then_answer.xml", bridge.addr(), "t1", 1, None, &["-s", "tina", "-cid_str", &cid]);
    assert!(
        common::tls::wait_for(Duration::from_secs(10), || server.bindings("tina@127.0.0.1").len() == 1),
        "no binding:\n{}",
        server.log()
    );
    let b = &server.bindings("tina@127.0.0.1")[0];
    assert_eq!(b["flow"]["transport"], "tls", "{b}");
    assert_eq!(b["flow"]["alive"], true, "{b}");
    let caller = sipp("uac_call.xml", server.udp, "u1", 1, &["-s", "tina", "-cid_str", &cid]);
    check("caller over udp", caller, &server);
    check("callee over tls", callee.wait(Duration::from_secs(20)), &server);
    assert!(metric(&server, "sipwake_transport_connections_total{transport=\"tls\",direction=\"in\"}") >= 1);
    assert!(metric(&server, "sipwake_transport_bytes_total{transport=\"tls\",direction=\"in\"}") > 0);
    assert!(metric(&server, "sipwake_transport_bytes_total{transport=\"tls\",direction=\"out\"}") > 0);
    // The INVITE went over the registration's connection: sipwake opened none.
    assert_eq!(metric(&server, "sipwake_transport_connections_total{transport=\"tls\",direction=\"out\"}"), 0);
}

#[test]
fn baresip_registers_over_tls_with_digest_and_answers_a_call() {
    let pki = Pki::new();
    // baresip 1.0 answers only MD5 challenges; callers from a served domain are not challenged here.
    let config =
        format!("[auth]\nalgorithms = [\"MD5\"]\n[proxy]\nauthenticate_local_callers = false\n{}", pki.config(""));
    let server = Server::start_with(&["--listen", "tls:127.0.0.1:0"], Some(&config));
    add_user(&server, "alice@127.0.0.1", "s3cret-alice");
    let tls = listener(&server, "tls");
    let ua = Baresip::start("alice@127.0.0.1", "s3cret-alice", tls, &pki.ca());
    let registered = wait_for(Duration::from_secs(15), || server.bindings("alice@127.0.0.1").len() == 1);
    assert!(registered, "baresip did not register:\n{}\n--- server log ---\n{}", ua.log(), server.log());
    let b = &server.bindings("alice@127.0.0.1")[0];
    assert_eq!(b["flow"]["transport"], "tls", "{b}");
    assert!(b["user_agent"].as_str().unwrap_or_default().starts_with("baresip"), "{b}");
    // A UDP caller; baresip auto-answers over its TLS connection; sipp hangs up.
    let caller = sipp("uac_call.xml", server.udp, "u1", 1, &["-s", "alice"]);
    assert!(
        caller.0,
        "call to baresip failed:\n{}\n--- baresip ---\n{}\n--- server ---\n{}",
        caller.1,
        ua.log(),
        server.log()
    );
    assert!(wait_for(Duration::from_secs(5), || ua.log().contains("Call established")), "{}", ua.log());
    // The caller's BYE got baresip's 200 (sipp checked it); baresip saw the call end.
    let ended = |log: String| log.contains("session closed") || log.contains("terminated");
    assert!(wait_for(Duration::from_secs(5), || ended(ua.log())), "{}", ua.log());
    // Only the registration's TLS connection was used: sipwake opened none.
    assert_eq!(metric(&server, "sipwake_transport_connections_total{transport=\"tls\",direction=\"out\"}"), 0);
}

#[test]
fn garbage_instead_of_a_client_hello_is_dropped_counted_and_serving_goes_on() {
    let pki = Pki::new();
    let server = Server::start_with(&["--listen", "tls:127.0.0.1:0"], Some(&format!("{NO_AUTH}{}", pki.config(""))));
    let tls = listener(&server, "tls");
    let mut raw = std::net::TcpStream::connect(tls).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(&options(raw.local_addr().unwrap(), tls, "TLS", 1)).unwrap();
    let (_, closed) = tcp_read_until(&mut raw, Duration::from_secs(5), |_| false);
    assert!(closed, "the server kept a connection that sent no ClientHello");
    let failures = "sipwake_transport_handshake_failures_total{transport=\"tls\",reason=\"tls\"}";
    assert!(common::tls::wait_for(Duration::from_secs(5), || metric(&server, failures) == 1), "{}", server.log());
    let mut c = tls_connect(tls, client_config(&[&pki.ca()], None)).unwrap();
    let local = c.sock.local_addr().unwrap();
    let r = exchange(&mut c, &options(local, tls, "TLS", 2), "\r\n\r\n");
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    assert_alive(&server, &UdpSocket::bind("127.0.0.1:0").unwrap(), 3);
    assert_eq!(metric(&server, "sipwake_transport_connections_open{transport=\"tls\"}"), 1);
}

#[test]
fn sighup_serves_a_new_certificate_and_keeps_open_connections() {
    let pki = Pki::new();
    // Serve copies, so the test can swap them.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(pki.cert(), &cert).unwrap();
    std::fs::copy(pki.key(), &key).unwrap();
    let config = format!("{NO_AUTH}[tls]\ncertificate = {cert:?}\nprivate_key = {key:?}\n");
    let mut server = Server::start_with(&["--listen", "tls:127.0.0.1:0"], Some(&config));
    let tls = listener(&server, "tls");
    let other = Pki::new();
    let trust = client_config(&[&pki.ca(), &other.ca()], None);
    let mut old = tls_connect(tls, trust.clone()).unwrap();
    let old_cert = peer_cert(&old);
    let old_local = old.sock.local_addr().unwrap();
    let pid = server.child.id().to_string();
    let hup = || assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    // A broken key: the reload fails, is logged, and the old certificate stays.
    std::fs::write(&key, "not a key").unwrap();
    hup();
    // (The whole configuration is checked again: nothing changes.)
    assert!(
        wait_for(Duration::from_secs(5), || server.log().contains("reload (SIGHUP) failed, nothing changed")),
        "{}",
        server.log()
    );
    assert!(server.log().contains("key.pem"), "{}", server.log());
    assert_eq!(peer_cert(&tls_connect(tls, trust.clone()).unwrap()), old_cert);
    // The new certificate and key on disk, then SIGHUP.
    std::fs::copy(other.cert(), &cert).unwrap();
    std::fs::copy(other.key(), &key).unwrap();
    hup();
    assert!(wait_for(Duration::from_secs(5), || server
        .log()
        .lines()
        .any(|l| l.contains("reload (SIGHUP)") && l.contains("applied: tls files"))));
    assert!(server.alive(), "SIGHUP stopped the server");
    let mut new = tls_connect(tls, trust).unwrap();
    assert_ne!(peer_cert(&new), old_cert);
    let new_local = new.sock.local_addr().unwrap();
    let r = exchange(&mut new, &options(new_local, tls, "TLS", 1), "\r\n\r\n");
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    // The connection from before the reload still works.
    let r = exchange(&mut old, &options(old_local, tls, "TLS", 2), "\r\n\r\n");
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
}

#[test]
fn required_client_certificates_refuse_strangers_and_admit_peers() {
    let pki = Pki::new();
    let config =
        format!("{NO_AUTH}{}", pki.config(&format!("verify_client = \"required\"\nclient_ca_file = {:?}", pki.ca())));
    let server = Server::start_with(&["--listen", "tls:127.0.0.1:0"], Some(&config));
    let tls = listener(&server, "tls");
    // Without a certificate: TLS 1.3 reports the refusal on the first exchange.
    let refused = tls_connect(tls, client_config(&[&pki.ca()], None)).and_then(|mut c| {
        let local = c.sock.local_addr()?;
        c.write_all(&options(local, tls, "TLS", 1))?;
        c.flush()?;
        let r = read_until(&mut c, "\r\n\r\n", Duration::from_secs(5));
        if r.is_empty() { Err(std::io::Error::other("closed")) } else { Ok(r) }
    });
    assert!(refused.is_err(), "served without a client certificate: {refused:?}");
    let failures = "sipwake_transport_handshake_failures_total{transport=\"tls\",reason=\"tls\"}";
    assert!(wait_for(Duration::from_secs(5), || metric(&server, failures) == 1));
    let mut c = tls_connect(tls, client_config(&[&pki.ca()], Some(&pki.client_pem()))).unwrap();
    let local = c.sock.local_addr().unwrap();
    let r = exchange(&mut c, &options(local, tls, "TLS", 2), "\r\n\r\n");
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
}

#[test]
fn wss_register_binding_and_options_to_the_browser() {
    let pki = Pki::new();
    let config = format!("{NO_AUTH}{}[websocket]\nallowed_origins = [\"https://phone.example.com\"]\n", pki.config(""));
    let server = Server::start_with(&["--listen", "wss:127.0.0.1:0", "--listen", "ws:127.0.0.1:0"], Some(&config));
    let wss = listener(&server, "wss");
    let ws_addr = listener(&server, "ws");
    let trust = client_config(&[&pki.ca()], None);
    let origin = Some("https://phone.example.com");
    // Refused: no `sip` subprotocol (400), another Origin (403).
    let e = ws_handshake(tls_connect(wss, trust.clone()).unwrap(), &format!("wss://{wss}/"), None, origin).unwrap_err();
    assert_eq!(refusal_status(e), 400);
    let e = ws_handshake(
        tls_connect(wss, trust.clone()).unwrap(),
        &format!("wss://{wss}/"),
        Some("sip"),
        Some("https://evil.example"),
    )
    .unwrap_err();
    assert_eq!(refusal_status(e), 403);
    let e =
        ws_handshake(std::net::TcpStream::connect(ws_addr).unwrap(), &format!("ws://{ws_addr}/"), Some("chat"), origin)
            .unwrap_err();
    assert_eq!(refusal_status(e), 400);
    assert!(wait_for(Duration::from_secs(5), || {
        metric(&server, "sipwake_transport_handshake_failures_total{transport=\"wss\",reason=\"ws_protocol\"}") == 1
            && metric(&server, "sipwake_transport_handshake_failures_total{transport=\"wss\",reason=\"origin\"}") == 1
            && metric(&server, "sipwake_transport_handshake_failures_total{transport=\"ws\",reason=\"ws_protocol\"}")
                == 1
    }));
    // A browser-like client: REGISTER over WSS (RFC 7118 Contact with an .invalid host).
    let mut ws = ws_handshake(tls_connect(wss, trust).unwrap(), &format!("wss://{wss}/"), Some("sip"), origin).unwrap();
    ws.send(tungstenite::Message::text(
        String::from_utf8(register("wendy", "WSS", "df7jal23ls0d.invalid", 1)).unwrap(),
    ))
    .unwrap();
    let r = ws_next(&mut ws);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}\n{}", server.log());
    let b = &server.bindings("wendy@127.0.0.1");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["flow"]["transport"], "wss", "{}", b[0]);
    assert_eq!(b[0]["flow"]["alive"], true, "{}", b[0]);
    // OPTIONS from a UDP client to the registered user reaches the browser over its connection.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    let req = format!(
        "OPTIONS sip:wendy@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-o-wendy;rport\r\nFrom: <sip:probe@{local}>;tag=o1\r\nTo: <sip:wendy@127.0.0.1>\r\nCall-ID: o-wendy@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(req.as_bytes(), server.udp).unwrap();
    let got = ws_next(&mut ws);
    assert!(got.starts_with("OPTIONS sip:wendy@df7jal23ls0d.invalid;transport=wss SIP/2.0"), "{got}");
    assert!(got.contains("Call-ID: o-wendy@test"), "{got}");
    assert_eq!(metric(&server, "sipwake_transport_connections_open{transport=\"wss\"}"), 1);
    assert!(metric(&server, "sipwake_transport_connections_total{transport=\"wss\",direction=\"in\"}") >= 3);
}

#[test]
fn tls_files_are_checked_by_check_config_and_listeners_need_a_certificate() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sipwake")).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!("[server]\nlisten = [\"tls:127.0.0.1:5061\", \"wss:127.0.0.1:8443\"]\n{}", pki.config("")),
    )
    .unwrap();
    assert_eq!(run(&["--check-config", good.to_str().unwrap()]).0, Some(0));
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "hello\n").unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, format!("[tls]\ncertificate = {:?}\nprivate_key = {junk:?}\n", pki.cert())).unwrap();
    let (code, err) = run(&["--check-config", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("junk.pem") && err.contains("no PEM private key"), "{err}");
    // The other server's key: does not match the certificate.
    let other = Pki::new();
    std::fs::write(&bad, format!("[tls]\ncertificate = {:?}\nprivate_key = {:?}\n", pki.cert(), other.key())).unwrap();
    let (code, err) = run(&["--check-config", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("does not match"), "{err}");
    // A tls: listener on the command line without [tls].
    let data = dir.path().join("data");
    let (code, err) = run(&["--listen", "tls:127.0.0.1:0", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--listen") && err.contains("tls:127.0.0.1:0") && err.contains("tls.certificate"), "{err}");
}

/// RFC 8599 §13 (R64): with a TLS listener, push coordinates are refused
/// over UDP (403, the reason in a Warning) and accepted over TLS; a plain
/// registration over UDP is not affected; `require_secure_transport = false`
/// turns the check off (and warns at start-up).
#[test]
fn push_coordinates_only_over_tls() {
    let pki = Pki::new();
    let (url, _pushes) = common::webhook::webhook(200);
    let push = format!("[push]\nenable = true\n[push.senders.\"*\"]\nwebhook = \"{url}\"\n");
    let server =
        Server::start_with(&["--listen", "tls:127.0.0.1:0"], Some(&format!("{NO_AUTH}{}{push}", pki.config(""))));
    let pn = ";pn-provider=fcm;pn-prid=TOKEN-1;pn-param=proj";
    let with_pn = |user: &str, transport: &str, local: &str, n: u32| {
        String::from_utf8(register(user, transport, local, n))
            .unwrap()
            .replace(";transport=", &format!("{pn};transport="))
    };
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap().to_string();
    let r =
        udp_exchange(&sock, server.udp, with_pn("pia", "UDP", &local, 1).as_bytes(), Duration::from_secs(3)).unwrap();
    let r = String::from_utf8_lossy(&r);
    assert_eq!(status_of(r.as_bytes()), 403, "{r}");
    assert!(r.contains("Warning: 399") && r.contains("TLS"), "{r}");
    assert!(server.bindings("pia@127.0.0.1").is_empty());
    // Plain over UDP: registered.
    let r = udp_exchange(&sock, server.udp, &register("pat", "UDP", &local, 1), Duration::from_secs(3)).unwrap();
    assert_eq!(status_of(&r), 200, "{}", String::from_utf8_lossy(&r));
    // The push Contact over TLS: registered, with its push coordinates.
    let tls = listener(&server, "tls");
    let mut s = tls_connect(tls, client_config(&[&pki.ca()], None)).unwrap();
    let local = s.sock.local_addr().unwrap().to_string();
    let r = exchange(&mut s, with_pn("pia", "TLS", &local, 2).as_bytes(), "\r\n\r\n");
    assert_eq!(status_of(r.as_bytes()), 200, "{r}\n{}", server.log());
    let b = server.bindings("pia@127.0.0.1");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["flow"]["transport"], "tls", "{}", b[0]);
    drop(server);
    // Turned off: accepted over UDP, with a warning in the log.
    let off = format!(
        "{NO_AUTH}{}[push]\nenable = true\nrequire_secure_transport = false\n[push.senders.\"*\"]\nwebhook = \"{url}\"\n",
        pki.config("")
    );
    let server = Server::start_with(&["--listen", "tls:127.0.0.1:0"], Some(&off));
    let r = udp_exchange(
        &sock,
        server.udp,
        with_pn("pia", "UDP", &sock.local_addr().unwrap().to_string(), 3).as_bytes(),
        Duration::from_secs(3),
    )
    .unwrap();
    assert_eq!(status_of(&r), 200, "{}\n{}", String::from_utf8_lossy(&r), server.log());
    assert!(server.log().contains("require_secure_transport is off"), "{}", server.log());
}
