//! The RFC 4475 and RFC 5118 torture messages, sent byte-exact as UDP
//! datagrams to the running server; each must get the answer in the table
//! below (the parser-level verdicts come from sip-msg's `verdicts.tsv`, the
//! one source of truth shared with the unit tests), and the server must keep
//! answering a valid OPTIONS after every one.
//!
//! The messages' Vias name hosts such as 192.0.2.15:5060, and RFC 3261
//! §18.2.2 sends the answer to the `received` address (127.0.0.1) at the
//! sent-by port (5060 and others). To receive those answers without taking
//! fixed ports on the machine, the test re-runs itself inside a network
//! namespace of its own (`unshare --net`, loopback only), where it can bind
//! any port; nothing in that namespace can reach another host.

mod common;

use common::*;
use std::collections::HashMap;
use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

const ENV: &str = "SIPWAKE_TORTURE_IN_NETNS";

#[test]
fn torture_messages_through_the_server() {
    if std::env::var(ENV).is_ok() {
        return inside_netns();
    }
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "ip link set lo up && exec '{}' --exact torture_messages_through_the_server --nocapture --test-threads=1",
        exe.display()
    );
    let status = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", &script])
        .env(ENV, "1")
        .status()
        .expect("unshare (util-linux) runs");
    assert!(status.success(), "torture run inside the network namespace failed (see its output above)");
}

/// What the server answers each message with, where the parser does not
/// already decide it (`any` in verdicts.tsv). "drop" = no answer. The server
/// runs with `example.com` served and authentication off (RFC 4475 §3.3.7:
/// a registrar that does not authenticate ignores the Authorization header
/// and registers), and does not relay initial requests to other domains
/// (403). Requests to `example.com` users who are not registered get 404;
/// in-dialog requests are proxied to their Request-URI, which here is
/// unreachable (a host name, or an IPv6 address with no IPv6 listener), so
/// the proxy answers 500 (§16.9: a failed branch counts as 503, which
/// §16.7 turns into 500 upstream).
fn server_verdicts() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        // wsinv's To carries a tag: an in-dialog request, proxied to its
        // (unreachable) Request-URI.
        ("wsinv.dat", "500"),
        ("intmeth.dat", "404"),
        ("esc01.dat", "403"),
        ("escnull.dat", "200"),
        ("esc02.dat", "403"),
        ("lwsdisp.dat", "404"),
        ("longreq.dat", "404"),
        ("dblreq.dat", "200"),
        ("semiuri.dat", "404"),
        ("transports.dat", "404"),
        ("mpart01.dat", "403"),
        ("unreason.dat", "drop"),
        ("noreason.dat", "drop"),
        ("baddate.dat", "404"),
        ("badbranch.dat", "404"),
        ("unkscm.dat", "416"),
        ("novelsc.dat", "416"),
        ("unksm2.dat", "400"),
        ("bext01.dat", "420"),
        ("invut.dat", "404"),
        ("regaut01.dat", "200"),
        ("bcast.dat", "drop"),
        ("zeromf.dat", "483"),
        ("cparam01.dat", "200"),
        ("cparam02.dat", "200"),
        ("regescrt.dat", "200"),
        ("sdp01.dat", "404"),
        ("inv2543.dat", "404"),
        // RFC 5118 (wire copies).
        // INVITE sip:user@example.com: regescrt registered that AoR earlier,
        // so the INVITE is proxied to its binding, which never answers (the
        // final, 408, would come after Timer B).
        ("ipv4-mapped-ipv6.sip", "drop"),
        ("ipv6-bad.sip", "400"),
        ("ipv6-bug-abnf-3-colons.sip", "400"),
        ("ipv6-correct-abnf-2-colons.sip", "403"),
        // REGISTERs for sip:[2001:db8::10], a domain this server does not serve.
        ("ipv6-good.sip", "403"),
        ("ipv6-in-sdp.sip", "403"),
        ("mult-ip-in-header.sip", "500"),
        ("mult-ip-in-sdp.sip", "403"),
        ("port-ambiguous.sip", "403"),
        ("port-unambiguous.sip", "403"),
        ("via-received-param-no-delim.sip", "403"),
        ("via-received-param-with-delim.sip", "500"),
    ])
}

fn header<'a>(msg: &'a str, long: &str, compact: &str) -> Option<&'a str> {
    msg.split("\r\n").take_while(|l| !l.is_empty()).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        let n = n.trim();
        (n.eq_ignore_ascii_case(long) || n.eq_ignore_ascii_case(compact)).then(|| v.trim())
    })
}

/// The port a response to this message goes to: the top Via's sent-by port or 5060.
fn via_port(msg: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(msg);
    let Some(via) = header(&text, "Via", "v") else { return 5060 };
    let top = via.split(',').next().unwrap_or("");
    let sent_by = top.split(';').next().unwrap_or("").split_whitespace().last().unwrap_or("");
    let port = if let Some(end) = sent_by.rfind(']') {
        sent_by[end + 1..].strip_prefix(':')
    } else {
        sent_by.split(':').nth(1)
    };
    port.and_then(|p| p.trim().parse().ok()).unwrap_or(5060)
}

fn inside_netns() {
    let server = Server::start_with(
        &[],
        Some(
            "[auth]\nenabled = false\n[registrar]\ndomains = [\"example.com\"]\n[proxy]\nrelay_for_local_users = false\n",
        ),
    );
    let data = repo().join("crates/sip-msg/tests/data");
    let verdicts = std::fs::read_to_string(data.join("rfc4475/verdicts.tsv")).unwrap();
    let mut expected: Vec<(std::path::PathBuf, String)> = Vec::new();
    let local = server_verdicts();
    for line in verdicts.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, server_status) = (cols[0], cols[2]);
        let want = if server_status == "any" {
            local.get(file).unwrap_or_else(|| panic!("no server verdict for {file}")).to_string()
        } else {
            server_status.to_string()
        };
        expected.push((data.join("rfc4475").join(file), want));
    }
    assert_eq!(expected.len(), 49, "verdicts.tsv lists all 49 RFC 4475 messages");
    for entry in std::fs::read_dir(data.join("rfc5118/wire")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".sip") {
            let want = local.get(name.as_str()).unwrap_or_else(|| panic!("no server verdict for {name}"));
            expected.push((entry.path(), want.to_string()));
        }
    }
    assert_eq!(expected.len(), 49 + 12);

    let mut socks: HashMap<u16, UdpSocket> = HashMap::new();
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut failures = Vec::new();
    for (i, (path, want)) in expected.iter().enumerate() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let msg = std::fs::read(path).unwrap();
        let port = via_port(&msg);
        let sock = socks.entry(port).or_insert_with(|| {
            let s = UdpSocket::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            s
        });
        // Forget answers still arriving for earlier messages (INVITE final retransmissions).
        let mut buf = vec![0u8; 65_536];
        while sock.recv_from(&mut buf).is_ok() {}
        sock.send_to(&msg, server.udp).unwrap();
        // Unfold continuation lines so the test can read the folded headers of wsinv.
        let text = String::from_utf8_lossy(&msg).replace("\r\n ", " ").replace("\r\n\t", " ");
        let call_id = header(&text, "Call-ID", "i").map(str::to_string);
        let cseq_of = |t: &str| {
            header(t, "CSeq", "CSeq").map(|c| {
                let mut it = c.split_whitespace();
                (it.next().and_then(|n| n.parse::<u64>().ok()), it.next().map(str::to_string))
            })
        };
        let cseq = cseq_of(&text);
        let wait = if want == "drop" { Duration::from_millis(400) } else { Duration::from_secs(3) };
        let deadline = Instant::now() + wait;
        let mut got: Option<(u16, String)> = None;
        let branch_of = |t: &str| {
            header(t, "Via", "v")
                .and_then(|v| v.split(';').find_map(|p| p.trim().strip_prefix("branch=")).map(str::to_string))
        };
        let my_branch = branch_of(&text);
        let mut same_branch = false;
        while Instant::now() < deadline && got.is_none() {
            for s in socks.values() {
                if let Ok((n, _)) = s.recv_from(&mut buf) {
                    let resp = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let code = status_of(resp.as_bytes());
                    same_branch |= code >= 200 && my_branch.is_some() && branch_of(&resp) == my_branch;
                    if code >= 200
                        && header(&resp, "Call-ID", "i").map(str::to_string) == call_id
                        && cseq_of(&resp) == cseq
                    {
                        got = Some((code, resp));
                        break;
                    }
                }
            }
        }
        // The corpus reuses branch values: an INVITE with the branch and
        // sent-by of an earlier one is, by RFC 3261 §17.2.3, a retransmission
        // of that transaction and gets its answer again.
        let retransmission = got.is_none() && same_branch && want != "drop";
        let ok = retransmission
            || match (&got, want.as_str()) {
                (None, "drop") => true,
                (Some((code, _)), w) => w.parse::<u16>().ok() == Some(*code),
                _ => false,
            };
        let shown = if retransmission {
            "the answer of an earlier transaction with the same branch".to_string()
        } else {
            got.as_ref().map_or("no answer".to_string(), |(c, _)| c.to_string())
        };
        println!("{name:<40} expected {want:<5} got {shown}");
        if !ok {
            failures.push(format!("{name}: expected {want}, got {shown}\n{}", got.map(|g| g.1).unwrap_or_default()));
        }
        if name == "dblreq.dat" {
            // Only the REGISTER is answered; the INVITE-looking trailing bytes are ignored.
            std::thread::sleep(Duration::from_millis(300));
            let trailing = "dblreq.0ha0isnda977644900765@192.0.2.15";
            let extra = socks
                .values()
                .filter(|s| {
                    let mut b = vec![0u8; 65_536];
                    s.recv_from(&mut b).is_ok_and(|(n, _)| String::from_utf8_lossy(&b[..n]).contains(trailing))
                })
                .count();
            assert_eq!(extra, 0, "dblreq: the trailing bytes were answered");
        }
        assert_alive(&server, &probe, 1000 + i as u32);
    }
    assert!(
        failures.is_empty(),
        "{} torture verdicts wrong:\n{}\n--- server log ---\n{}",
        failures.len(),
        failures.join("\n"),
        server.log()
    );
    // What the REGISTERs left in the location service (RFC 4475 §3.1.1.4, §3.3.12–14).
    let contacts = |aor: &str| -> Vec<String> {
        server.bindings(aor).iter().map(|b| b["contact"].as_str().unwrap().to_string()).collect()
    };
    let mut nul = contacts("null-%2500-null@example.com");
    nul.sort();
    assert_eq!(
        nul,
        vec!["sip:%00%00@host5.example.com", "sip:%00@host5.example.com"],
        "escnull: two distinct contacts"
    );
    assert_eq!(
        contacts("watson@example.com"),
        vec!["sip:+19725552222@gw1.example.net;unknownparam"],
        "cparam02 URI parameter"
    );
    assert_eq!(contacts("user@example.com"), vec!["sip:user@example.com?Route=%3Csip:sip.example.com%3E"], "regescrt");
    assert_eq!(contacts("j.user@example.com").len(), 1, "dblreq/regaut01");
}
