//! End-to-end tests of registrar mode: the real binary, sipp and scripted
//! phones over UDP and TCP, the management API, the `user` and `ctl` CLIs,
//! and a kill -9 restart.

mod common;

use common::phone::{Phone, contacts_of, header_of};
use common::*;
use std::process::Command;
use std::time::Duration;

const NO_AUTH: &str = "[auth]\nenabled = false\n";

#[test]
fn sipp_registers_with_digest_over_udp_and_tcp() {
    // sipp 3.6 answers only the first challenge and knows only MD5: offer MD5 first.
    let server = Server::start_with(&[], Some("[auth]\nalgorithms = [\"MD5\", \"SHA-256\"]\n"));
    add_user(&server, "alice@127.0.0.1", "s3cret!");
    for (t, addr) in [("u1", server.udp), ("t1", server.tcp)] {
        let (ok, out) = sipp("register_auth.xml", addr, t, 3, &["-s", "alice", "-au", "alice", "-ap", "s3cret!"]);
        assert!(ok, "sipp REGISTER with auth over {t} failed:\n{out}\n{}", server.log());
        let (ok, out) = sipp("register_auth_fail.xml", addr, t, 1, &["-s", "alice", "-au", "alice", "-ap", "wrong"]);
        assert!(ok, "wrong password over {t} was not refused:\n{out}");
    }
    // The two sipp phones (UDP and TCP) are two bindings of alice.
    let b = server.bindings("alice@127.0.0.1");
    assert_eq!(b.len(), 2, "{b:?}");
    let transports: Vec<&str> = b.iter().map(|x| x["flow"]["transport"].as_str().unwrap()).collect();
    assert!(transports.contains(&"udp") && transports.contains(&"tcp"), "{transports:?}");
    // Auth failures are counted.
    let (_, metrics) = server.api("GET", "/metrics");
    assert!(metrics.contains("sipwake_auth_failures_total{reason=\"wrong password\"}"), "{metrics}");
    assert!(metrics.contains("sipwake_registrations_total{result=\"ok\"}"), "{metrics}");
}

#[test]
fn digest_rules_wrong_user_replay_stale_and_foreign_aor() {
    let server = Server::start();
    add_user(&server, "alice@127.0.0.1", "pw-alice");
    add_user(&server, "bob@127.0.0.1", "pw-bob");
    let mut p = Phone::udp(server.udp, "alice", "127.0.0.1");
    let contact = format!("<sip:alice@{}>", p.local());
    // No credentials: 401 with a SHA-256 challenge first, then MD5 (RFC 8760).
    let msg = p.build(&[&contact], &[], None);
    let r = p.exchange(&msg);
    assert_eq!(status_of(r.as_bytes()), 401, "{r}");
    let chals: Vec<&str> = r.lines().filter(|l| l.starts_with("WWW-Authenticate:")).collect();
    assert_eq!(chals.len(), 2, "{r}");
    assert!(chals[0].contains("algorithm=SHA-256") && chals[1].contains("algorithm=MD5"), "{r}");
    // Right password: 200.
    p.password = Some("pw-alice".into());
    let auth = p.answer(&r, "REGISTER");
    let msg = p.build(&[&contact], &[], Some(&auth));
    let ok = p.exchange(&msg);
    assert_eq!(status_of(ok.as_bytes()), 200, "{ok}\n{}", server.log());
    // The very same request again (a UDP retransmission after a lost 200):
    // the same answer, not a challenge, although its nonce-count was used.
    let again = p.exchange(&msg);
    assert_eq!(status_of(again.as_bytes()), 200, "{again}");
    // The same Authorization (same nonce, same nc) again: a replay, refused with stale=true.
    let msg = p.build(&[&contact], &[], Some(&auth));
    let r2 = p.exchange(&msg);
    assert_eq!(status_of(r2.as_bytes()), 401, "{r2}");
    assert!(r2.contains("stale=true"), "{r2}");
    // A higher nc on the same nonce is fine.
    let auth2 = p.answer(&r, "REGISTER");
    let msg = p.build(&[&contact], &[], Some(&auth2));
    assert_eq!(status_of(p.exchange(&msg).as_bytes()), 200);
    // Unknown user: 401 (never 404: no user enumeration).
    let mut ghost = Phone::udp(server.udp, "ghost", "127.0.0.1");
    ghost.password = Some("x".into());
    let r = ghost.register(&["<sip:ghost@127.0.0.1:9>"], &[]);
    assert_eq!(status_of(r.as_bytes()), 401, "{r}");
    // An unknown Authorization scheme (RFC 4475 regaut01) gets a fresh Digest challenge.
    let mut q = Phone::udp(server.udp, "alice", "127.0.0.1");
    let msg = q.build(&[&contact], &["Authorization: NoOneKnowsThisScheme opaque-data=here"], None);
    let r = q.exchange(&msg);
    assert_eq!(status_of(r.as_bytes()), 401, "{r}");
    assert!(r.contains("WWW-Authenticate: Digest"), "{r}");
    assert_eq!(server.bindings("alice@127.0.0.1").len(), 1);
}

#[test]
fn bob_credentials_cannot_register_alice() {
    let server = Server::start();
    add_user(&server, "bob@127.0.0.1", "pw-bob");
    // A phone that authenticates as bob but puts alice in To.
    let mut p = Phone::udp(server.udp, "alice", "127.0.0.1");
    let msg = p.build(&["<sip:alice@192.0.2.1>"], &[], None);
    let chal = p.exchange(&msg);
    p.user = "bob".into();
    p.password = Some("pw-bob".into());
    let auth = p.answer(&chal, "REGISTER");
    p.user = "alice".into();
    let msg = p.build(&["<sip:alice@192.0.2.1>"], &[], Some(&auth));
    let r = p.exchange(&msg);
    assert_eq!(status_of(r.as_bytes()), 403, "{r}\n{}", server.log());
    assert!(server.bindings("alice@127.0.0.1").is_empty());
}

#[test]
fn expiry_star_cseq_order_and_fetch() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    let mut p = Phone::udp(server.udp, "carol", "127.0.0.1");
    let c1 = format!("<sip:carol@{}>", p.local());
    // 423 with Min-Expires.
    let r = p.register(&[&c1], &["Expires: 30"]);
    assert_eq!(status_of(r.as_bytes()), 423, "{r}");
    assert_eq!(header_of(&r, "Min-Expires"), Some("60"));
    // Two contacts; the 200 lists both with their expiry, plus a Date.
    let r = p.register(&[&format!("{c1};expires=300"), "<sip:carol@192.0.2.50:5060>;q=0.5"], &["Expires: 1200"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let cs = contacts_of(&r);
    assert_eq!(cs.len(), 2, "{r}");
    assert!(cs.iter().any(|c| c.ends_with(";expires=300")), "{cs:?}");
    assert!(cs.iter().any(|c| c.contains(";expires=1200;q=0.5")), "{cs:?}");
    assert!(header_of(&r, "Date").is_some_and(|d| d.ends_with("GMT")));
    // A fetch (no Contact) lists them.
    let mut f = Phone::udp(server.udp, "carol", "127.0.0.1");
    let r = f.register(&[], &[]);
    assert_eq!(contacts_of(&r).len(), 2, "{r}");
    // Out-of-order CSeq on the same Call-ID: refused, bindings untouched.
    let cseq = p.cseq;
    p.cseq = cseq - 2;
    let r = p.register(&[&format!("{c1};expires=0")], &[]);
    assert_eq!(status_of(r.as_bytes()), 400, "{r}");
    assert!(r.contains("Out Of Order CSeq"), "{r}");
    p.cseq = cseq;
    assert_eq!(server.bindings("carol@127.0.0.1").len(), 2);
    // Contact: * needs Expires: 0.
    let r = p.register(&["*"], &["Expires: 5"]);
    assert_eq!(status_of(r.as_bytes()), 400, "{r}");
    let r = p.register(&["*"], &["Expires: 0"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    assert!(contacts_of(&r).is_empty(), "{r}");
    assert!(server.bindings("carol@127.0.0.1").is_empty());
    // Domains not served: 403; an AoR of another domain than the Request-URI's: 404.
    let mut x = Phone::udp(server.udp, "carol", "not-served.example");
    let r = x.register(&[&c1], &[]);
    assert_eq!(status_of(r.as_bytes()), 403, "{r}");
    let mut y = Phone::udp(server.udp, "carol", "127.0.0.1");
    let msg = y.build(&[&c1], &[], None).replace("To: <sip:carol@127.0.0.1>", "To: <sip:carol@localhost>");
    let r = y.exchange(&msg);
    assert_eq!(status_of(r.as_bytes()), 404, "{r}");
}

#[test]
fn instance_replacement_and_tcp_flows() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    let inst = "+sip.instance=\"<urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020100>\"";
    let mut a = Phone::tcp(server.tcp, "dave", "127.0.0.1");
    let ca = format!("<sip:dave@{};transport=tcp>;{inst}", a.local());
    assert_eq!(status_of(a.register(&[&ca], &[]).as_bytes()), 200);
    let b = server.bindings("dave@127.0.0.1");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["flow"]["transport"], "tcp");
    assert_eq!(b[0]["flow"]["alive"], true);
    assert_eq!(b[0]["flow"]["remote"], a.local().to_string());
    assert!(b[0]["flow"]["connection"].is_u64());
    let id = b[0]["id"].as_str().unwrap().to_string();
    // The phone comes back on a new connection, from a new port, with a new Call-ID:
    // same instance, so its binding is replaced, not duplicated.
    let mut a2 = Phone::tcp(server.tcp, "dave", "127.0.0.1");
    let ca2 = format!("<sip:dave@{};transport=tcp>;{inst}", a2.local());
    let r = a2.register(&[&ca2], &[]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    assert_eq!(contacts_of(&r).len(), 1, "{r}");
    let b = server.bindings("dave@127.0.0.1");
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["id"], id.as_str());
    assert_eq!(b[0]["flow"]["remote"], a2.local().to_string());
    // The connection closes: a plain (non-outbound) binding stays, its flow dead.
    drop(a2);
    let mut dead = false;
    for _ in 0..50 {
        let b = server.bindings("dave@127.0.0.1");
        if b.len() == 1 && b[0]["flow"]["alive"] == false {
            dead = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(dead, "flow not marked dead: {:?}", server.bindings("dave@127.0.0.1"));
    // Outbound (reg-id, Supported: outbound, first hop): Require: outbound in the
    // 200, and the binding goes when its flow dies (RFC 5626).
    let mut o = Phone::tcp(server.tcp, "erin", "127.0.0.1");
    let co = format!("<sip:erin@{};transport=tcp;ob>;{inst};reg-id=1", o.local());
    let r = o.register(&[&co], &["Supported: outbound, path"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    assert_eq!(header_of(&r, "Require"), Some("outbound"), "{r}");
    let b = server.bindings("erin@127.0.0.1");
    assert_eq!(b[0]["reg_id"], 1);
    drop(o);
    let mut gone = false;
    for _ in 0..50 {
        if server.bindings("erin@127.0.0.1").is_empty() {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gone, "outbound binding kept after its flow died");
    // A push binding on an outbound flow is kept when the flow dies (RFC 8599 phones sleep).
    let mut pp = Phone::tcp(server.tcp, "frank", "127.0.0.1");
    let cp = format!(
        "<sip:frank@{};transport=tcp;ob;pn-provider=apns;pn-prid=ZTY4ZDJlMzM;pn-param=TEAM.com.example.voip>;{inst};reg-id=1",
        pp.local()
    );
    assert_eq!(status_of(pp.register(&[&cp], &["Supported: outbound"]).as_bytes()), 200);
    drop(pp);
    std::thread::sleep(Duration::from_millis(500));
    let b = server.bindings("frank@127.0.0.1");
    assert_eq!(b.len(), 1, "push binding dropped with its flow");
    assert_eq!(b[0]["flow"]["alive"], false);
    assert_eq!(b[0]["push_capable"], true);
    assert_eq!(b[0]["push"]["provider"], "apns");
    assert_eq!(b[0]["push"]["prid"], "ZTY4ZDJlMzM");
}

#[test]
fn path_is_stored_and_returned() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    let mut p = Phone::udp(server.udp, "gina", "127.0.0.1");
    // The test plays an edge proxy relaying a phone's REGISTER: its own Via on
    // top (answers come back to it), the phone's Via below, and a Path.
    let msg = p
        .build(&["<sip:gina@192.0.2.30:5060>"], &["Supported: path", "Path: <sip:edge.example.net;lr>"], None)
        .replacen(";rport\r\n", ";rport\r\nVia: SIP/2.0/UDP 192.0.2.30:5060;branch=z9hG4bKphone\r\n", 1);
    let r = p.exchange(&msg);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    assert_eq!(header_of(&r, "Path"), Some("<sip:edge.example.net;lr>"), "{r}");
    let b = server.bindings("gina@127.0.0.1");
    assert_eq!(b[0]["path"][0], "<sip:edge.example.net;lr>");
}

#[test]
fn max_contacts_is_enforced() {
    let server = Server::start_with(&[], Some("[auth]\nenabled = false\n[registrar]\nmax_contacts = 2\n"));
    let mut p = Phone::udp(server.udp, "hank", "127.0.0.1");
    assert_eq!(status_of(p.register(&["<sip:hank@192.0.2.1>", "<sip:hank@192.0.2.2>"], &[]).as_bytes()), 200);
    let r = p.register(&["<sip:hank@192.0.2.3>"], &[]);
    assert_eq!(status_of(r.as_bytes()), 403, "{r}");
    assert!(r.contains("Too Many Contacts"), "{r}");
    assert_eq!(server.bindings("hank@127.0.0.1").len(), 2);
}

#[test]
fn restart_after_kill_keeps_every_acknowledged_binding() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    let n: u32 = 300;
    // Sent in chunks of 50: a group commit answers a whole chunk at once, and
    // a burst of 300 datagrams can overflow this one client socket's
    // receive buffer (the server sent them; the kernel dropped them here).
    let mut acked = std::collections::HashMap::new();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = vec![0u8; 65_536];
    for chunk in 0..n / 50 {
        for i in chunk * 50..(chunk + 1) * 50 {
            let expires = 600 + i;
            let msg = format!(
                "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-rs-{i}\r\nFrom: <sip:u{i}@127.0.0.1>;tag=r{i}\r\nTo: <sip:u{i}@127.0.0.1>\r\nCall-ID: rs-{i}\r\nCSeq: 1 REGISTER\r\nContact: <sip:u{i}@{local}>;expires={expires}\r\nContent-Length: 0\r\n\r\n"
            );
            sock.send_to(msg.as_bytes(), server.udp).unwrap();
        }
        while acked.len() < ((chunk + 1) * 50) as usize {
            let Ok((len, _)) = sock.recv_from(&mut buf) else { break };
            let r = String::from_utf8_lossy(&buf[..len]).into_owned();
            if status_of(r.as_bytes()) == 200 {
                let cid = header_of(&r, "Call-ID").unwrap().to_string();
                let i: u32 = cid.trim_start_matches("rs-").parse().unwrap();
                acked.insert(i, std::time::Instant::now());
            }
        }
    }
    assert_eq!(acked.len(), n as usize, "not every REGISTER was answered 200");
    // kill -9: no shutdown, no flush.
    let dir = server.kill9();
    let server = Server::start_in(dir, &[], Some(NO_AUTH));
    let (_, body) = server.api("GET", "/api/v1/stats");
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stats["bindings"], n, "{body}");
    for i in (0..n).step_by(7) {
        let b = server.bindings(&format!("u{i}@127.0.0.1"));
        assert_eq!(b.len(), 1, "u{i} lost");
        let left = b[0]["expires_in_secs"].as_u64().unwrap();
        let want = u64::from(600 + i);
        assert!(left <= want && left + 15 >= want, "u{i}: {left} s left, registered for {want}");
    }
}

#[test]
fn expired_bindings_are_removed_by_timer() {
    let server =
        Server::start_with(&[], Some("[auth]\nenabled = false\n[registrar]\nmin_expires = 1\ndefault_expires = 60\n"));
    let mut p = Phone::udp(server.udp, "ivy", "127.0.0.1");
    assert_eq!(status_of(p.register(&["<sip:ivy@192.0.2.1>;expires=1"], &[]).as_bytes()), 200);
    assert_eq!(server.bindings("ivy@127.0.0.1").len(), 1);
    std::thread::sleep(Duration::from_millis(2600));
    let (_, body) = server.api("GET", "/api/v1/stats");
    assert!(body.contains("\"bindings\":0"), "{body}");
}

#[test]
fn management_api_and_ctl() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    let mut p = Phone::udp(server.udp, "jack", "127.0.0.1");
    let r = p.register(&["<sip:jack@192.0.2.1>", "<sip:jack@192.0.2.2>"], &["User-Agent: TestPhone/1.0"]);
    assert_eq!(status_of(r.as_bytes()), 200);
    let (st, body) = server.api("GET", "/api/v1/aors");
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["total"], 1);
    let b = &v["aors"][0]["bindings"][0];
    for key in [
        "id",
        "contact",
        "expires_in_secs",
        "call_id",
        "cseq",
        "path",
        "flow",
        "instance",
        "push_capable",
        "user_agent",
    ] {
        assert!(b.get(key).is_some(), "missing {key} in {b}");
    }
    assert_eq!(b["user_agent"], "TestPhone/1.0");
    // ctl prints a table and JSON.
    let ctl = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sipwake"))
            .args(["ctl", "--url", &format!("http://{}", server.mgmt)])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "ctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let table = ctl(&["aors"]);
    assert!(table.contains("jack@127.0.0.1") && table.contains("sip:jack@192.0.2.2"), "{table}");
    let stats = ctl(&["--json", "stats"]);
    assert!(stats.contains("\"bindings\":2"), "{stats}");
    assert!(stats.contains("\"responses_5xx\":0"), "a successful REGISTER counted as a 5xx: {stats}");
    // Delete one binding, then the AoR.
    let id = b["id"].as_str().unwrap();
    let out = ctl(&["rm", "jack@127.0.0.1", id]);
    assert!(out.contains("removed 1"), "{out}");
    assert_eq!(server.bindings("jack@127.0.0.1").len(), 1);
    let (st, _) = server.api("DELETE", "/api/v1/aors/jack@127.0.0.1");
    assert_eq!(st, 200);
    assert!(server.bindings("jack@127.0.0.1").is_empty());
    let (st, _) = server.api("GET", "/api/v1/aors/jack@127.0.0.1");
    assert_eq!(st, 404);
    // Metrics.
    let (st, m) = server.api("GET", "/metrics");
    assert_eq!(st, 200);
    for name in [
        "sipwake_registrations_total",
        "sipwake_bindings",
        "sipwake_request_duration_seconds_bucket",
        "sipwake_requests_total",
    ] {
        assert!(m.contains(name), "{name} missing from /metrics:\n{m}");
    }
}

#[test]
fn management_token_is_enforced() {
    let token = "0123456789abcdef-token";
    let server = Server::start_with(&[], Some(&format!("[management]\ntoken = \"{token}\"\n")));
    let (st, _) = server.api("GET", "/api/v1/stats");
    assert_eq!(st, 401);
    let (st, _) = server.api("GET", "/health");
    assert_eq!(st, 200);
    let out = Command::new(env!("CARGO_BIN_EXE_sipwake"))
        .args(["ctl", "--url", &format!("http://{}", server.mgmt), "--token", token, "stats"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn user_cli_add_list_del() {
    let dir = tempfile::tempdir().unwrap();
    // The users' domain must be one the server serves.
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cfg.path(), "[registrar]\ndomains = [\"example.com\"]\n").unwrap();
    let run = |args: &[&str], stdin: &str| {
        let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        all.extend([std::ffi::OsStr::new("--config"), cfg.path().as_os_str()]);
        all.extend([std::ffi::OsStr::new("--data-dir"), dir.path().as_os_str()]);
        sipwake_cli(&all, stdin)
    };
    assert!(run(&["user", "add", "kim@example.com"], "pw\n").status.success());
    let out = run(&["user", "import", "-"], "lee@example.com a b\n# comment\nmay@example.com pw2\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["user", "list"], "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "kim@example.com\nlee@example.com\nmay@example.com\n");
    assert!(run(&["user", "del", "kim@example.com"], "").status.success());
    let out = run(&["user", "del", "kim@example.com"], "");
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["user", "add", "not-an-aor"], "pw\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("USER@DOMAIN"));
    // Passwords are not stored: only hashes.
    let db = std::fs::read(dir.path().join("sipwake.db")).unwrap();
    assert!(!db.windows(3).any(|w| w == b"pw2"));
}

#[test]
fn auth_off_logs_a_warning() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    std::thread::sleep(Duration::from_millis(200));
    assert!(server.log().contains("auth.enabled = false"), "{}", server.log());
}
