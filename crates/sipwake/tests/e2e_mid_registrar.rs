//! End-to-end tests of mid-registrar mode against a real Kamailio as the
//! upstream registrar: devices register THROUGH sipwake (Contacts
//! rewritten with `ctid=`, Kamailio's challenges relayed), REGISTER
//! throttling per mode, calls from a caller registered at Kamailio, RFC 8599
//! push wake-up in front of a registrar that knows nothing of it, upstream
//! restarts and outages, and a kill -9 of sipwake.
//!
//! Every test starts its own Kamailio (`common::kamailio`) and sipwake on
//! free ports. Devices and callers are sipp scenarios (`tests/sipp/mid_*`)
//! or scripted phones (`common::phone`) where a test must count or time
//! single messages.

mod common;

#[path = "../../sip-dns/tests/common/mod.rs"]
mod dnsmasq;

use common::kamailio::{DOMAIN, Kamailio, KamailioOpts, PASSWORD, authorization, header};
use common::phone::{Link, Phone};
use common::webhook::{INSTANCE, webhook};
use common::*;
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

// ---------------------------------------------------------------------------
// Set-up

/// The sipwake configuration of these tests: mid-registrar in front of
/// `kam`, `throttle` mode, pushes to the webhook `url`; `push_extra` goes
/// into `[push]`.
fn mid_config(kam: &Kamailio, throttle: &str, url: &str, push_extra: &str) -> String {
    format!(
        r#"[server]
mode = "mid-registrar"
listen = ["udp:127.0.0.1:0"]
[sip]
t1_ms = 100
[registrar]
domains = ["{DOMAIN}"]
min_expires = 10
[auth]
enabled = false
[mid_registrar]
upstream = "{upstream}"
throttle = "{throttle}"
upstream_expires = 3600
upstream_timeout_ms = 2000
keepalive_secs = 1
resend_per_sec = 50
instance_header = "X-Instance"
[push]
enable = true
{push_extra}
[push.senders."*"]
webhook = "{url}"
timeout_ms = 2000
"#,
        upstream = kam.uri()
    )
}

/// A Kamailio (auth on or off) and a sipwake in front of it; the webhook's pushes.
fn setup(auth: bool, throttle: &str, push_extra: &str) -> (Kamailio, Server, Receiver<Value>) {
    let kam = Kamailio::start(KamailioOpts { auth });
    let (url, pushes) = webhook(200);
    let sw = Server::start_with(&[], Some(&mid_config(&kam, throttle, &url, push_extra)));
    (kam, sw, pushes)
}

/// Starts sipwake on a given UDP and TCP port (to restart it where it was).
fn start_sipwake_on(dir: tempfile::TempDir, port: u16, config: &str) -> Server {
    use std::io::BufRead;
    let stderr_log = dir.path().join("sipwake.log");
    let cfg = dir.path().join("sipwake.toml");
    std::fs::write(&cfg, config).unwrap();
    let (udp, tcp) = (format!("udp:127.0.0.1:{port}"), format!("tcp:127.0.0.1:{port}"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sipwake"))
        .arg("--config")
        .arg(&cfg)
        .args(["--listen", &udp, "--listen", &tcp, "--management", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", std::env::var("SIPWAKE_TEST_LOG").unwrap_or_else(|_| "info".into()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::options().create(true).append(true).open(&stderr_log).unwrap())
        .spawn()
        .expect("start sipwake");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut listeners = Vec::new();
    let mut mgmt = None;
    let mut loaded = false;
    while listeners.len() < 2 || mgmt.is_none() || !loaded {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            panic!(
                "sipwake did not start on port {port}: {}",
                std::fs::read_to_string(&stderr_log).unwrap_or_default()
            );
        };
        if let Some(rest) = line.strip_prefix("sipwake management on http://") {
            mgmt = Some(rest.trim().parse().unwrap());
        }
        loaded |= line.starts_with("sipwake location loaded");
        if let Some((t, a)) = line.strip_prefix("sipwake listening on ").and_then(|r| r.split_once(':')) {
            listeners.push((t.to_string(), a.parse::<SocketAddr>().unwrap()));
        }
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    Server { child, udp: addr, tcp: addr, listeners, mgmt: mgmt.unwrap(), dir, stderr_log }
}

// ---------------------------------------------------------------------------
// sipp devices and callers

/// A sipp run whose messages are logged (`-trace_msg`) for inspection.
struct Traced {
    ok: bool,
    out: String,
    messages: String,
    port: u16,
}

/// Runs `scenario` from a free port (or `port`) against `target`, logging its messages.
fn sipp_traced(scenario: &str, target: SocketAddr, port: Option<u16>, extra: &[&str]) -> Traced {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("messages.log");
    let mut args = vec!["-trace_msg", "-message_file", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    for _ in 0..3 {
        let p = port.unwrap_or_else(free_udp_port);
        let (ok, out) = sipp_start(scenario, target, "u1", 1, Some(p), &args).wait(Duration::from_secs(30));
        // A free port taken by another test before sipp bound it: try another.
        if !ok && port.is_none() && out.contains("Unable to bind") {
            continue;
        }
        let messages = std::fs::read_to_string(&file).unwrap_or_default();
        return Traced { ok, out, messages, port: p };
    }
    panic!("sipp could not bind a port for {scenario}");
}

/// `user` registers with digest authentication (mid_register_auth.xml) at
/// `target` from a free port; the port is then free for its callee scenario.
fn register_sipp(target: SocketAddr, user: &str, why: &dyn Fn() -> String) -> Traced {
    let t = sipp_traced("mid_register_auth.xml", target, None, &["-s", user, "-au", user, "-ap", PASSWORD]);
    assert!(t.ok, "{user} could not register at {target}:\n{}\n{}\n{}", tail(&t.out), tail(&t.messages), why());
    t
}

/// The messages sipp received, in order (from its `-trace_msg` log).
fn received(messages: &str) -> Vec<String> {
    messages
        .split("-----------------------------------------------")
        .filter_map(|block| {
            let (head, body) = block.split_once("\n\n")?;
            head.contains("message received").then(|| body.trim_start().replace("\r\n", "\n"))
        })
        .collect()
}

/// The Contact values of a message (one per header line).
fn contact_lines(msg: &str) -> Vec<String> {
    msg.lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.trim().eq_ignore_ascii_case("Contact") || n.trim() == "m").then(|| v.trim().to_string())
        })
        .collect()
}

/// A call from carol, registered at Kamailio, to `callee` through Kamailio (mid_uac_call.xml).
fn call_via_kamailio(kam: &Kamailio, callee: &str) -> Sipp {
    register_sipp(kam.addr(), "carol", &|| kam.log());
    sipp_start("mid_uac_call.xml", kam.addr(), "u1", 1, None, &["-s", callee])
}

// ---------------------------------------------------------------------------
// Scripted devices (raw UDP)

/// Sends `msg` from `dev` and reads until a final response (requests that
/// arrive meanwhile are kept in `dev.pending`); None after `wait`.
fn request(dev: &mut Phone, msg: &str, wait: Duration) -> Option<String> {
    let Link::Udp(sock) = &dev.link else { panic!("UDP phones only") };
    let sock = sock.try_clone().unwrap();
    sock.send_to(msg.as_bytes(), dev.server).unwrap();
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 65_536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        sock.set_read_timeout(Some(left)).unwrap();
        let (n, from) = sock.recv_from(&mut buf).ok()?;
        let t = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !t.starts_with("SIP/2.0 ") {
            dev.pending.push_back((t, from));
        } else if status_of(t.as_bytes()) >= 200 {
            return Some(t);
        }
    }
}

/// A REGISTER through sipwake, answering one 401 (Kamailio's MD5 challenge)
/// with the subscriber's password; (the challenge if any, the final response).
fn register_md5(dev: &mut Phone, contacts: &[&str], extra: &[&str]) -> (Option<String>, String) {
    let wait = Duration::from_secs(5);
    let msg = dev.build(contacts, extra, None);
    let first = request(dev, &msg, wait).expect("an answer to the REGISTER");
    if status_of(first.as_bytes()) != 401 {
        return (None, first);
    }
    dev.nc += 1;
    let uri = format!("sip:{}", dev.domain);
    let auth = authorization(&first, &dev.user.clone(), PASSWORD, "REGISTER", &uri, dev.nc);
    let msg = dev.build(contacts, extra, Some(&auth));
    let last = request(dev, &msg, wait).expect("an answer to the REGISTER with credentials");
    (Some(first), last)
}

/// A device of `user`@example.com with a UDP socket, talking to sipwake.
fn device(sw: &Server, user: &str) -> Phone {
    Phone::udp(sw.udp, user, DOMAIN)
}

fn plain_contact(dev: &Phone) -> String {
    format!("<sip:{}@{}>", dev.user, dev.local())
}

/// A push device's Contact (FCM), with the test instance id.
fn fcm_contact(dev: &Phone, prid: &str) -> String {
    format!("<sip:{}@{};pn-provider=fcm;pn-prid={prid};pn-param=proj>;{INSTANCE}", dev.user, dev.local())
}

/// A plain device registered (200) through sipwake, with credentials when challenged.
fn registered_plain(sw: &Server, user: &str) -> Phone {
    let mut dev = device(sw, user);
    let c = plain_contact(&dev);
    let (_, ok) = register_md5(&mut dev, &[&c], &["Expires: 600"]);
    assert_eq!(status_of(ok.as_bytes()), 200, "{ok}\n{}", sw.log());
    dev
}

/// A response to `req` (a request received by a scripted device).
fn response_to(req: &str, status: &str, contact: Option<&str>) -> String {
    let mut s = format!("SIP/2.0 {status}\r\n");
    for l in req.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
        let name = l.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
        match name.as_str() {
            "via" | "v" | "record-route" | "from" | "f" | "call-id" | "i" | "cseq" => s += &format!("{l}\r\n"),
            "to" | "t" if !l.contains("tag=") => s += &format!("{l};tag=dev{}\r\n", std::process::id()),
            "to" | "t" => s += &format!("{l}\r\n"),
            _ => {}
        }
    }
    if let Some(c) = contact {
        s += &format!("Contact: {c}\r\n");
    }
    s + "Content-Length: 0\r\n\r\n"
}

/// The top Via branch of a message.
fn branch(msg: &str) -> String {
    header(msg, "Via")
        .and_then(|v| v.split(";branch=").nth(1))
        .map(|b| b.split(';').next().unwrap().to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Observation

/// `GET /api/v1/upstream` as JSON.
fn upstream(sw: &Server) -> Value {
    let (status, body) = sw.api("GET", "/api/v1/upstream");
    assert_eq!(status, 200, "GET /api/v1/upstream: {body}\n{}", sw.log());
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The upstream registrations of `aor`.
fn registrations(v: &Value, aor: &str) -> Vec<Value> {
    v["registrations"].as_array().into_iter().flatten().filter(|r| r["aor"] == aor).cloned().collect()
}

/// The `ctid` URI parameter of a Contact.
fn ctid(contact: &str) -> Option<String> {
    let rest = &contact[contact.find("ctid=")? + 5..];
    Some(rest.split([';', '>', '?', '&']).next().unwrap().to_string())
}

/// The sum of a Prometheus counter's samples (all label sets).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// How many REGISTERs for `aor` Kamailio received.
fn registers_of(kam: &Kamailio, aor: &str) -> usize {
    kam.registers().iter().filter(|r| r.to.ends_with(&format!(":{aor}"))).count()
}

/// Waits until `cond` holds, polling; whether it did within `limit`.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Both logs (their ends), for assertion messages.
fn logs(kam: &Kamailio, sw: &Server) -> String {
    format!("--- sipwake log ---\n{}\n--- kamailio log ---\n{}", tail(&sw.log()), tail(&kam.log()))
}

/// The last 20,000 bytes of a text (a failure message stays readable).
fn tail(text: &str) -> &str {
    let mut from = text.len().saturating_sub(20_000);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    &text[from..]
}

// ---------------------------------------------------------------------------
// The harness itself (no sipwake): Kamailio authenticates, stores, routes.

#[test]
fn kamailio_harness_authenticates_registers_and_routes_calls() {
    let mut kam = Kamailio::start(KamailioOpts { auth: true });
    let reg = register_sipp(kam.addr(), "alice", &|| kam.log());
    let got = kam.registers();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].authorization.is_none() && got[1].authorization.is_some(), "{got:?}");
    assert!(got[1].contact.contains(&format!("sip:alice@127.0.0.1:{}", reg.port)), "{got:?}");
    assert_eq!(got[1].expires.as_deref(), Some("600"));
    assert!(got[1].feature_caps.is_none(), "{got:?}");
    let c = kam.contacts(ALICE);
    assert_eq!(c, vec![format!("sip:alice@127.0.0.1:{};transport=UDP", reg.port)], "{}", kam.ul_lookup(ALICE));
    assert_eq!(kam.statistic("usrloc:location_contacts"), Some(1));
    // A wrong password is refused.
    let bad = sipp_traced("mid_register_auth.xml", kam.addr(), None, &["-s", "bob", "-au", "bob", "-ap", "wrong"]);
    assert!(!bad.ok, "bob registered with a wrong password:\n{}", bad.messages);
    assert!(kam.contacts(BOB).is_empty());
    // A call from carol (registered too) reaches alice's sipp UAS.
    let callee = sipp_start("uas_answer.xml", kam.addr(), "u1", 1, Some(reg.port), &[]);
    let caller = call_via_kamailio(&kam, "alice");
    let (ok, out) = caller.wait(Duration::from_secs(20));
    assert!(ok, "caller:\n{}\n{}", tail(&out), tail(&kam.log()));
    let (ok, out) = callee.wait(Duration::from_secs(20));
    assert!(ok, "callee:\n{}\n{}", tail(&out), tail(&kam.log()));
    // A restart empties its memory; it answers again on the same port.
    let addr = kam.addr();
    kam.restart();
    assert_eq!(kam.addr(), addr);
    assert!(kam.contacts(ALICE).is_empty(), "{}", kam.ul_lookup(ALICE));
    kam.stop();
    assert!(!kam.running());
}

#[test]
fn kamailio_harness_without_auth_and_scripted_md5_devices() {
    let kam = Kamailio::start(KamailioOpts { auth: false });
    let mut dev = Phone::udp(kam.addr(), "dave", DOMAIN);
    let c = plain_contact(&dev);
    let (chal, ok) = register_md5(&mut dev, &[&c], &["Expires: 600"]);
    assert!(chal.is_none() && status_of(ok.as_bytes()) == 200, "{chal:?}\n{ok}");
    assert_eq!(kam.contacts("dave@example.com").len(), 1);
    // With auth, the scripted device's MD5 answer passes too.
    let kam = Kamailio::start(KamailioOpts { auth: true });
    let mut dev = Phone::udp(kam.addr(), "dave", DOMAIN);
    let c = plain_contact(&dev);
    let (chal, ok) = register_md5(&mut dev, &[&c], &["Expires: 600"]);
    assert!(chal.is_some() && status_of(ok.as_bytes()) == 200, "{chal:?}\n{ok}\n{}", kam.log());
    assert_eq!(kam.contacts("dave@example.com").len(), 1, "{}", kam.ul_lookup("dave@example.com"));
}

/// `mid_registrar.upstream` given by name: resolved per RFC 3263 (SRV
/// `_sip._udp.registrar.test` → Kamailio's port) at start-up, through a
/// real DNS server; devices then register through sipwake at Kamailio.
#[test]
fn upstream_given_by_name_is_resolved_through_dns() {
    let kam = Kamailio::start(KamailioOpts { auth: false });
    let dns = dnsmasq::Dnsmasq::with_args(vec![
        "--local=/test/".into(),
        format!("--srv-host=_sip._udp.registrar.test,kam1.registrar.test,{},0,0", kam.addr().port()),
        "--host-record=kam1.registrar.test,127.0.0.1".into(),
    ]);
    let (url, _pushes) = webhook(200);
    let cfg = mid_config(&kam, "contact", &url, "").replace(&kam.uri(), "sip:registrar.test")
        + &format!("[dns]\nservers = [\"{}\"]\n", dns.addr);
    let sw = Server::start_with(&[], Some(&cfg));
    let _dev = registered_plain(&sw, "alice");
    let (contacts, ok) = kam.wait_contacts(ALICE, Duration::from_secs(5), |c| !c.is_empty());
    assert!(ok, "{contacts:?}\n{}", logs(&kam, &sw));
    assert!(sw.log().contains("upstream registrar resolved"), "{}", sw.log());
    assert!(dns.queries_for("SRV", "_sip._udp.registrar.test") >= 1);
    // A name that does not resolve stops start-up with the key in the message.
    let bad = mid_config(&kam, "contact", &url, "").replace(&kam.uri(), "sip:nowhere.test")
        + &format!("[dns]\nservers = [\"{}\"]\n", dns.addr);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, bad).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipwake"))
        .arg("--config")
        .arg(&p)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--management", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("mid_registrar.upstream") && err.contains("nowhere.test"), "{err}");
}

// ---------------------------------------------------------------------------
// 1. Registration through sipwake, per throttle mode

/// Two sipp devices of alice register through sipwake (Kamailio
/// authenticates them); Kamailio's location then holds sipwake's rewritten
/// Contacts: one per device (mirror, contact) or one for the AoR (aor).
fn devices_register_through_sipwake(throttle: &str) {
    let (kam, sw, _pushes) = setup(true, throttle, "");
    let why = || logs(&kam, &sw);
    let devices = [register_sipp(sw.udp, "alice", &why), register_sipp(sw.udp, "alice", &why)];
    for d in &devices {
        // The challenge was Kamailio's (the scenario checked realm="example.com"), relayed.
        let got = received(&d.messages);
        let challenge = got.iter().find(|m| m.starts_with("SIP/2.0 401")).expect("a 401");
        assert!(
            header(&challenge.replace('\n', "\r\n"), "WWW-Authenticate").is_some_and(|v| v.contains("qop=")),
            "{challenge}"
        );
        // The 200 lists the device's own Contact, not the rewritten one.
        let ok = got.iter().rfind(|m| m.starts_with("SIP/2.0 200")).expect("a 200");
        let own = format!("sip:alice@127.0.0.1:{};transport=udp", d.port);
        let contacts = contact_lines(ok);
        assert!(contacts.iter().any(|c| c.to_ascii_lowercase().contains(&own)), "own Contact {own} missing in:\n{ok}");
        assert!(!ok.contains("ctid="), "the rewritten Contact leaked to the device:\n{ok}");
    }
    // Kamailio authenticated them: a REGISTER without and one with credentials per device.
    let regs = kam.registers();
    assert!(regs.iter().any(|r| r.authorization.is_none()), "{regs:?}");
    assert!(regs.iter().any(|r| r.authorization.is_some()), "{regs:?}");
    for d in &devices {
        let own = format!("127.0.0.1:{}", d.port);
        assert!(regs.iter().all(|r| !r.contact.contains(&own)), "a device Contact reached Kamailio: {regs:?}");
    }
    // Kamailio's location: sipwake's address with a ctid.
    let want = if throttle == "aor" { 1 } else { 2 };
    let at_kam = kam.contacts(ALICE);
    assert_eq!(at_kam.len(), want, "{}\n{}", kam.ul_lookup(ALICE), why());
    let mut ctids = Vec::new();
    for c in &at_kam {
        assert!(
            c.contains(&format!("@{}", sw.udp)) || c.contains(&format!("sip:{}", sw.udp)),
            "not sipwake's address: {c}"
        );
        ctids.push(ctid(c).unwrap_or_else(|| panic!("no ctid= in {c}")));
    }
    ctids.sort();
    ctids.dedup();
    assert_eq!(ctids.len(), want, "{at_kam:?}");
    // The management API shows the mapping and the device bindings.
    let bindings = sw.bindings(ALICE);
    assert_eq!(bindings.len(), 2, "{bindings:?}");
    for d in &devices {
        assert!(
            bindings.iter().any(|b| b["contact"].as_str().unwrap_or("").contains(&format!("127.0.0.1:{}", d.port))),
            "{bindings:?}"
        );
    }
    let up = upstream(&sw);
    assert_eq!(up["upstream"]["up"], true, "{up}");
    assert_eq!(up["upstream"]["throttle"], throttle, "{up}");
    assert!(up["upstream"]["address"].as_str().is_some_and(|a| a.contains(&kam.addr().port().to_string())), "{up}");
    let regs = registrations(&up, ALICE);
    assert_eq!(regs.len(), want, "{up}");
    let mut mapped: Vec<String> = Vec::new();
    for r in &regs {
        assert!(r["key"].is_string(), "{r}");
        assert_eq!(r["last_code"], 200, "{r}");
        let exp = r["expires_in"].as_u64().unwrap_or_else(|| panic!("expires_in: {r}"));
        let asked = if throttle == "mirror" { 600 } else { 3600 };
        assert!(exp > 0 && exp <= asked, "{r}");
        let uc = r["upstream_contact"].as_str().unwrap_or_else(|| panic!("upstream_contact: {r}"));
        assert!(ctids.contains(&ctid(uc).unwrap_or_default()), "{uc} is not at Kamailio: {at_kam:?}");
        for id in r["bindings"].as_array().unwrap_or_else(|| panic!("bindings: {r}")) {
            mapped.push(id.as_str().unwrap().to_string());
        }
    }
    mapped.sort();
    let mut ids: Vec<String> = bindings.iter().map(|b| b["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    assert_eq!(mapped, ids, "every device binding maps to exactly one upstream registration: {up}");
    // Each binding names its upstream registration.
    for b in &bindings {
        let key = b["upstream"]["key"].as_str().unwrap_or_else(|| panic!("no upstream registration in {b}"));
        assert!(
            regs.iter()
                .any(|r| r["key"] == key && ctid(r["upstream_contact"].as_str().unwrap()).as_deref() == Some(key)),
            "{b}\n{up}"
        );
    }
}

#[test]
fn mirror_mode_registers_each_device_at_kamailio() {
    devices_register_through_sipwake("mirror");
}

#[test]
fn contact_mode_registers_each_device_at_kamailio() {
    devices_register_through_sipwake("contact");
}

#[test]
fn aor_mode_registers_one_contact_per_aor_at_kamailio() {
    devices_register_through_sipwake("aor");
}

// ---------------------------------------------------------------------------
// De-registration through sipwake

#[test]
fn de_registration_through_sipwake_removes_the_upstream_contact() {
    let (kam, sw, _pushes) = setup(true, "contact", "");
    let mut dev = registered_plain(&sw, "alice");
    assert_eq!(kam.contacts(ALICE).len(), 1, "{}", kam.ul_lookup(ALICE));
    let c = format!("{};expires=0", plain_contact(&dev));
    let (chal, ok) = register_md5(&mut dev, &[&c], &[]);
    assert!(chal.is_some(), "a removal must reach Kamailio: {ok}");
    assert_eq!(status_of(ok.as_bytes()), 200, "{ok}");
    assert!(kam.contacts(ALICE).is_empty(), "{}", kam.ul_lookup(ALICE));
    assert!(sw.bindings(ALICE).is_empty());
    assert!(registrations(&upstream(&sw), ALICE).is_empty(), "{}", upstream(&sw));
}

#[test]
fn aor_mode_keeps_the_aor_contact_until_its_last_device_leaves() {
    let (kam, sw, _pushes) = setup(false, "aor", "");
    let mut desk = registered_plain(&sw, "alice");
    let mut mobile = registered_plain(&sw, "alice");
    let at_kam = kam.contacts(ALICE);
    assert_eq!(at_kam.len(), 1, "{}", kam.ul_lookup(ALICE));
    for (dev, left) in [(&mut desk, 1), (&mut mobile, 0)] {
        let c = format!("{};expires=0", plain_contact(dev));
        let (_, ok) = register_md5(dev, &[&c], &[]);
        assert_eq!(status_of(ok.as_bytes()), 200, "{ok}");
        assert_eq!(sw.bindings(ALICE).len(), left);
        let (now, ok) = kam.wait_contacts(ALICE, Duration::from_secs(3), |c| c.len() == left);
        assert!(ok, "{left} device(s) left: Kamailio has {now:?}\n{}", logs(&kam, &sw));
        if left == 1 {
            assert_eq!(now, at_kam, "the AoR's Contact changed while a device stayed");
        }
    }
    assert!(registrations(&upstream(&sw), ALICE).is_empty(), "{}", upstream(&sw));
}

// ---------------------------------------------------------------------------
// 2. A call from Kamailio reaches a device registered through sipwake

#[test]
fn call_from_kamailio_reaches_device_registered_through_sipwake() {
    let (kam, sw, _pushes) = setup(true, "contact", "");
    let dev = register_sipp(sw.udp, "alice", &|| logs(&kam, &sw));
    let callee = sipp_start("uas_answer.xml", sw.udp, "u1", 1, Some(dev.port), &[]);
    let caller = call_via_kamailio(&kam, "alice");
    let (ok, out) = caller.wait(Duration::from_secs(25));
    assert!(ok, "caller:\n{}\n{}", tail(&out), logs(&kam, &sw));
    let (ok, out) = callee.wait(Duration::from_secs(10));
    assert!(ok, "callee:\n{}\n{}", tail(&out), logs(&kam, &sw));
}

// ---------------------------------------------------------------------------
// 3. Throttling

/// bob registers (401, 200) then refreshes 5 times with Expires 60
/// (mid_register_refresh.xml: each 200 lists his own Contact with
/// expires=60); returns the REGISTERs Kamailio received.
fn refreshes(throttle: &str) -> Vec<common::kamailio::ReceivedRegister> {
    let (kam, sw, _pushes) = setup(true, throttle, "");
    let t = sipp_traced("mid_register_refresh.xml", sw.udp, None, &["-s", "bob", "-au", "bob", "-ap", PASSWORD]);
    assert!(t.ok, "{}\n{}\n{}", tail(&t.out), tail(&t.messages), logs(&kam, &sw));
    let oks: Vec<String> = received(&t.messages).into_iter().filter(|m| m.starts_with("SIP/2.0 200")).collect();
    assert_eq!(oks.len(), 6, "{}", t.messages);
    let own = format!("sip:bob@127.0.0.1:{};transport=udp", t.port);
    for ok in &oks {
        let c = contact_lines(ok);
        assert!(c.iter().any(|c| c.to_ascii_lowercase().contains(&own) && c.contains("expires=60")), "{ok}");
    }
    // (A REGISTER sipwake would still send now would be counted late: give it a moment.)
    std::thread::sleep(Duration::from_millis(300));
    let regs = kam.registers();
    assert!(!kam.contacts(BOB).is_empty(), "bob is not registered at Kamailio\n{}", logs(&kam, &sw));
    regs
}

#[test]
fn contact_mode_answers_refreshes_without_bothering_kamailio() {
    let regs = refreshes("contact");
    // The first REGISTER (401) and the one with credentials; the 5 refreshes stay at sipwake.
    assert_eq!(regs.len(), 2, "{regs:#?}");
    assert!(regs[0].authorization.is_none() && regs[1].authorization.is_some(), "{regs:#?}");
    // Kamailio is asked for upstream_expires, not the device's 60 s.
    let asked = |r: &common::kamailio::ReceivedRegister| {
        r.expires.as_deref() == Some("3600") || r.contact.contains("expires=3600")
    };
    assert!(asked(&regs[1]), "{regs:#?}");
}

#[test]
fn mirror_mode_forwards_every_refresh() {
    let regs = refreshes("mirror");
    assert_eq!(regs.len(), 7, "{regs:#?}");
    assert!(regs[1..].iter().all(|r| r.authorization.is_some()), "{regs:#?}");
    // Mirror: the device's own expiry.
    let sixty =
        |r: &common::kamailio::ReceivedRegister| r.expires.as_deref() == Some("60") || r.contact.contains("expires=60");
    assert!(regs.iter().all(sixty), "{regs:#?}");
}

// ---------------------------------------------------------------------------
// 4. and 5. RFC 8599 push in front of Kamailio

/// A push device of alice registered (through Kamailio's challenge); checks
/// its Feature-Caps and what Kamailio received. The device then sleeps
/// (its socket is closed when the returned phone drops).
fn registered_push_device(kam: &Kamailio, sw: &Server, prid: &str) -> Phone {
    let mut dev = device(sw, "alice");
    let c = fcm_contact(&dev, prid);
    let (chal, ok) = register_md5(&mut dev, &[&c], &["Expires: 600"]);
    assert!(chal.is_some(), "Kamailio did not challenge: {ok}");
    assert_eq!(status_of(ok.as_bytes()), 200, "{ok}\n{}", logs(kam, sw));
    let fc = header(&ok, "Feature-Caps").unwrap_or_else(|| panic!("no Feature-Caps in {ok}"));
    assert!(fc.starts_with("*;+sip.pns=\"fcm\""), "{ok}");
    let last = kam.registers().pop().expect("Kamailio received the REGISTER");
    assert!(last.authorization.is_some(), "{last:?}");
    assert_eq!(last.feature_caps.as_deref(), Some("*;+sip.pns=\"fcm\""), "{last:?}");
    assert!(!last.contact.contains("pn-"), "push parameters reached Kamailio: {last:?}");
    dev
}

/// The woken device answers the INVITE(s) with 200 and the BYE with 200;
/// the caller must succeed. Returns the INVITE transactions (top Via
/// branches) the device received, counted until things are quiet.
fn answer_the_call(dev: &mut Phone, caller: Sipp, why: &dyn Fn() -> String) -> std::collections::BTreeSet<String> {
    let mut invites = std::collections::BTreeSet::new();
    let me = plain_contact(dev);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut bye = false;
    while !bye && Instant::now() < deadline {
        let Some((req, from)) = dev.next_request(Duration::from_millis(200)) else { continue };
        let sock = dev.udp_socket();
        if req.starts_with("INVITE ") {
            assert!(!req.lines().next().unwrap().contains("pn-"), "{req}");
            invites.insert(branch(&req));
            sock.send_to(response_to(&req, "200 OK", Some(&me)).as_bytes(), from).unwrap();
        } else if req.starts_with("BYE ") {
            sock.send_to(response_to(&req, "200 OK", None).as_bytes(), from).unwrap();
            bye = true;
        }
    }
    assert!(bye, "no BYE reached the device\n{}", why());
    let (ok, out) = caller.wait(Duration::from_secs(10));
    assert!(ok, "caller:\n{}\n{}", tail(&out), why());
    while let Some((req, _)) = dev.next_request(Duration::from_millis(500)) {
        if req.starts_with("INVITE ") {
            invites.insert(branch(&req));
        }
    }
    invites
}

#[test]
fn push_device_woken_by_a_call_through_kamailio_gets_exactly_one_invite() {
    // Mirror: every REGISTER reaches Kamailio, so the wake-up REGISTER is challenged.
    let (kam, sw, pushes) = setup(true, "mirror", "");
    let sleeping = registered_push_device(&kam, &sw, "TOKEN");
    drop(sleeping);
    let caller = call_via_kamailio(&kam, "alice");
    let push = pushes.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no push\n{}", logs(&kam, &sw)));
    assert_eq!(push["provider"], "fcm", "{push}");
    assert_eq!(push["prid"], "TOKEN", "{push}");
    assert_eq!(push["param"], "proj", "{push}");
    assert_eq!(push["reason"], "ini-INVITE", "{push}");
    assert_eq!(push["aor"], ALICE, "{push}");
    // The app wakes on a new socket and re-registers: 401 from Kamailio first.
    let mut dev = device(&sw, "alice");
    let c = fcm_contact(&dev, "TOKEN");
    let first = dev.build(&[&c], &["Expires: 600"], None);
    let chal = request(&mut dev, &first, Duration::from_secs(5)).expect("an answer");
    assert_eq!(status_of(chal.as_bytes()), 401, "{chal}");
    // The challenged REGISTER did not release the INVITE.
    if let Some((m, _)) = dev.next_request(Duration::from_millis(500)) {
        assert!(!m.starts_with("INVITE "), "an INVITE before the REGISTER succeeded: {m}");
    }
    dev.nc += 1;
    let auth = authorization(&chal, "alice", PASSWORD, "REGISTER", "sip:example.com", dev.nc);
    let second = dev.build(&[&c], &["Expires: 600"], Some(&auth));
    let ok = request(&mut dev, &second, Duration::from_secs(5)).expect("an answer");
    assert_eq!(status_of(ok.as_bytes()), 200, "{ok}");
    // The INVITE follows; the device answers; ACK and BYE come.
    let invites = answer_the_call(&mut dev, caller, &|| logs(&kam, &sw));
    assert_eq!(invites.len(), 1, "INVITE transactions at the device: {invites:?}");
}

#[test]
fn contact_mode_wake_up_refresh_answered_by_sipwake_releases_the_invite_once() {
    // Contact mode: the woken device refreshes its registration as it was
    // (same socket, Call-ID and Contact); sipwake answers that itself (no
    // REGISTER reaches Kamailio) and forks the parked INVITE to the device.
    let (kam, sw, pushes) = setup(true, "contact", "");
    let mut dev = registered_push_device(&kam, &sw, "ABSORB");
    let registers = registers_of(&kam, ALICE);
    let caller = call_via_kamailio(&kam, "alice");
    let push = pushes.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("no push\n{}", logs(&kam, &sw)));
    assert_eq!(push["reason"], "ini-INVITE", "{push}");
    if let Some((m, _)) = dev.next_request(Duration::from_millis(300)) {
        assert!(!m.starts_with("INVITE "), "an INVITE to the sleeping device: {m}");
    }
    let c = fcm_contact(&dev, "ABSORB");
    let (chal, ok) = register_md5(&mut dev, &[&c], &["Expires: 600"]);
    assert!(chal.is_none(), "the refresh went to Kamailio: {chal:?}");
    assert_eq!(status_of(ok.as_bytes()), 200, "{ok}");
    assert_eq!(registers_of(&kam, ALICE), registers, "{:#?}", kam.registers());
    let invites = answer_the_call(&mut dev, caller, &|| logs(&kam, &sw));
    assert_eq!(invites.len(), 1, "INVITE transactions at the device: {invites:?}");
}

#[test]
fn nobody_wakes_the_caller_gets_480_after_the_hold() {
    let (kam, sw, pushes) = setup(true, "contact", "invite_hold_secs = 3");
    drop(registered_push_device(&kam, &sw, "SLEEPY"));
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = caller.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:{ALICE} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-mid-480;rport\r\nFrom: <sip:carol@{DOMAIN}>;tag=c480\r\nTo: <sip:{ALICE}>\r\nCall-ID: mid-480@test\r\nCSeq: 1 INVITE\r\nContact: <sip:carol@{local}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let t0 = Instant::now();
    caller.send_to(invite.as_bytes(), kam.addr()).unwrap();
    let push = pushes.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| panic!("no push\n{}", logs(&kam, &sw)));
    assert_eq!(push["reason"], "ini-INVITE", "{push}");
    let f = common::webhook::final_response(&caller, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no final answer\n{}", logs(&kam, &sw)));
    let at = t0.elapsed();
    assert_eq!(status_of(f.as_bytes()), 480, "{f}");
    assert!(at >= Duration::from_millis(2800) && at < Duration::from_secs(6), "480 after {at:?}");
    let to = header(&f, "To").unwrap();
    let ack = format!(
        "ACK sip:{ALICE} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-mid-480;rport\r\nFrom: <sip:carol@{DOMAIN}>;tag=c480\r\nTo: {to}\r\nCall-ID: mid-480@test\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    caller.send_to(ack.as_bytes(), kam.addr()).unwrap();
}

// ---------------------------------------------------------------------------
// 6. and 7. Kamailio restarts (its memory empty)

/// sipwake notices an upstream restart when keep-alives go unanswered
/// (keepalive_secs = 1, upstream_timeout_ms = 2000): this outage is longer.
const OUTAGE: Duration = Duration::from_secs(4);

/// alice and bob registered through sipwake (Kamailio without auth);
/// Kamailio restarts after `down`; their registrations come back at
/// Kamailio without any device doing anything.
fn registrations_come_back_after_restart(down: Duration) {
    let (mut kam, sw, _pushes) = setup(false, "contact", "");
    let _alice = registered_plain(&sw, "alice");
    let _bob = registered_plain(&sw, "bob");
    let before = (kam.contacts(ALICE), kam.contacts(BOB));
    assert!(before.0.len() == 1 && before.1.len() == 1, "{before:?}\n{}", logs(&kam, &sw));
    let registers = kam.registers_received();
    kam.restart_after(down);
    let t0 = Instant::now();
    for aor in [ALICE, BOB] {
        let (c, ok) = kam.wait_contacts(aor, Duration::from_secs(6), |c| !c.is_empty());
        assert!(ok, "{aor} not restored at Kamailio {:?} after its restart\n{}", t0.elapsed(), logs(&kam, &sw));
        assert!(c.iter().all(|c| c.contains(&sw.udp.to_string()) && ctid(c).is_some()), "{c:?}");
    }
    // The same upstream Contacts as before, re-sent by sipwake itself.
    assert_eq!((kam.contacts(ALICE), kam.contacts(BOB)), before);
    assert!(kam.registers_received() >= registers + 2, "{:#?}", kam.registers());
    let up = upstream(&sw);
    assert_eq!(up["upstream"]["up"], true, "{up}");
    for aor in [ALICE, BOB] {
        assert!(registrations(&up, aor).iter().all(|r| r["last_code"] == 200), "{up}");
    }
}

#[test]
fn kamailio_outage_and_restart_gets_every_registration_back() {
    registrations_come_back_after_restart(OUTAGE);
}

#[test]
fn quick_kamailio_restart_gets_every_registration_back() {
    // A plain restart: Kamailio is down for a fraction of a second, so the
    // keep-alive OPTIONS (retransmitted within upstream_timeout_ms) may never
    // go unanswered; the new instance token in its OPTIONS answers
    // (instance_header) tells sipwake, and its registrations come back.
    registrations_come_back_after_restart(Duration::ZERO);
}

#[test]
fn kamailio_restart_with_auth_pushes_push_devices_and_counts_plain_ones() {
    let (mut kam, sw, pushes) = setup(true, "contact", "");
    drop(registered_push_device(&kam, &sw, "RESTORE"));
    let _bob = registered_plain(&sw, "bob");
    while pushes.try_recv().is_ok() {}
    kam.restart_after(OUTAGE);
    // sipwake holds no passwords: the push device is asked to register itself.
    let push =
        pushes.recv_timeout(Duration::from_secs(8)).unwrap_or_else(|_| panic!("no refresh push\n{}", logs(&kam, &sw)));
    assert_eq!(push["prid"], "RESTORE", "{push}");
    assert_eq!(push["aor"], ALICE, "{push}");
    assert_eq!(push["reason"], "reg-refresh", "{push}");
    // The plain device cannot be restored: counted.
    let unrestored = || metric(&sw.api("GET", "/metrics").1, "sipwake_mid_unrestored_total");
    assert!(
        wait_until(Duration::from_secs(8), || unrestored() >= 1.0),
        "sipwake_mid_unrestored_total = {}\n{}",
        unrestored(),
        logs(&kam, &sw)
    );
    // The woken device registers with its credentials: Kamailio has it again.
    let mut dev = device(&sw, "alice");
    let c = fcm_contact(&dev, "RESTORE");
    let (_, ok) = register_md5(&mut dev, &[&c], &["Expires: 600"]);
    assert_eq!(status_of(ok.as_bytes()), 200, "{ok}\n{}", logs(&kam, &sw));
    let (c, ok) = kam.wait_contacts(ALICE, Duration::from_secs(3), |c| !c.is_empty());
    assert!(ok, "alice not back at Kamailio\n{}", logs(&kam, &sw));
    assert!(c.iter().all(|c| ctid(c).is_some() && !c.contains("pn-")), "{c:?}");
}

// ---------------------------------------------------------------------------
// 8. Kamailio down

#[test]
fn kamailio_down_register_gets_503_and_the_binding_stays() {
    let (mut kam, sw, _pushes) = setup(false, "mirror", "");
    let mut dev = registered_plain(&sw, "alice");
    assert_eq!(sw.bindings(ALICE).len(), 1);
    kam.stop();
    let c = plain_contact(&dev);
    let msg = dev.build(&[&c], &["Expires: 600"], None);
    let t0 = Instant::now();
    let r = request(&mut dev, &msg, Duration::from_secs(6)).unwrap_or_else(|| panic!("no answer\n{}", sw.log()));
    let at = t0.elapsed();
    assert_eq!(status_of(r.as_bytes()), 503, "{r}");
    assert!(header(&r, "Retry-After").is_some(), "{r}");
    assert!(at < Duration::from_millis(3000), "503 after {at:?} (upstream_timeout_ms = 2000)");
    let b = sw.bindings(ALICE);
    assert_eq!(b.len(), 1, "{b:?}");
    assert!(b[0]["contact"].as_str().unwrap().contains(&dev.local().to_string()), "{b:?}");
    assert!(wait_until(Duration::from_secs(5), || upstream(&sw)["upstream"]["up"] == false), "{}", upstream(&sw));
}

// ---------------------------------------------------------------------------
// 9. kill -9 of sipwake

#[test]
fn sipwake_kill9_keeps_the_mapping_and_calls_still_arrive() {
    let kam = Kamailio::start(KamailioOpts { auth: true });
    let (url, _pushes) = webhook(200);
    let cfg = mid_config(&kam, "contact", &url, "");
    let port = free_udp_port();
    let sw = start_sipwake_on(tempfile::tempdir().unwrap(), port, &cfg);
    let dev = register_sipp(sw.udp, "alice", &|| logs(&kam, &sw));
    let before = registrations(&upstream(&sw), ALICE);
    assert_eq!(before.len(), 1, "{before:?}");
    let ids: Vec<Value> = sw.bindings(ALICE).iter().map(|b| b["id"].clone()).collect();
    assert_eq!(ids.len(), 1);
    let sw = start_sipwake_on(sw.kill9(), port, &cfg);
    let after = registrations(&upstream(&sw), ALICE);
    assert_eq!(after.len(), 1, "mapping lost: {after:?}\n{}", sw.log());
    assert_eq!(after[0]["upstream_contact"], before[0]["upstream_contact"], "{after:?}");
    assert_eq!(after[0]["bindings"], Value::Array(ids.clone()), "{after:?}");
    let now: Vec<Value> = sw.bindings(ALICE).iter().map(|b| b["id"].clone()).collect();
    assert_eq!(now, ids);
    // `sipwake ctl upstream` shows the same mapping.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipwake"))
        .args(["ctl", "--url", &format!("http://{}", sw.mgmt), "upstream"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let contact = after[0]["upstream_contact"].as_str().unwrap();
    let line = text.lines().find(|l| l.starts_with(ALICE)).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(contact) && line.contains(ids[0].as_str().unwrap()), "{text}");
    assert!(text.contains("throttle contact") && text.contains(" up,"), "{text}");
    // Kamailio still routes to the old upstream Contact: the call arrives.
    let callee = sipp_start("uas_answer.xml", sw.udp, "u1", 1, Some(dev.port), &[]);
    let caller = call_via_kamailio(&kam, "alice");
    let (ok, out) = caller.wait(Duration::from_secs(25));
    assert!(ok, "caller:\n{}\n{}", tail(&out), logs(&kam, &sw));
    let (ok, out) = callee.wait(Duration::from_secs(10));
    assert!(ok, "callee:\n{}\n{}", tail(&out), logs(&kam, &sw));
}
