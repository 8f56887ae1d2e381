//! A real Kamailio as the upstream registrar of the mid-registrar tests:
//! a generated config (in-memory usrloc, db_text subscribers with
//! plaintext passwords, optional digest authentication of REGISTERs), free
//! UDP and TCP ports on 127.0.0.1, a ctl socket for `kamcmd`, and one log
//! line per REGISTER it receives so that tests can count and inspect them.
//! Kamailio runs in a process group of its own; the group is killed by its
//! id when the guard drops.

#![allow(dead_code)]

use super::*;
use std::os::unix::process::CommandExt;

/// The subscribers every Kamailio of the tests knows, all in `DOMAIN` with `PASSWORD`.
pub const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
pub const DOMAIN: &str = "example.com";
pub const PASSWORD: &str = "secret";

/// The marker of the line logged for every REGISTER received.
const REG_MARK: &str = "KAMREG|";

#[derive(Clone, Copy, Debug, Default)]
pub struct KamailioOpts {
    /// Every REGISTER must pass digest authentication (401 otherwise);
    /// other requests are never challenged.
    pub auth: bool,
}

/// A running (or stopped) Kamailio.
pub struct Kamailio {
    child: Option<Child>,
    port: u16,
    pub opts: KamailioOpts,
    dir: tempfile::TempDir,
}

/// What Kamailio logged about one REGISTER it received.
#[derive(Clone, Debug)]
pub struct ReceivedRegister {
    /// The To URI (the AoR).
    pub to: String,
    pub call_id: String,
    pub cseq: String,
    /// The source address (ip:port).
    pub source: String,
    /// `None` when the header was absent.
    pub expires: Option<String>,
    pub feature_caps: Option<String>,
    pub authorization: Option<String>,
    /// Every Contact header value.
    pub contact: String,
}

impl Kamailio {
    /// Starts Kamailio on free ports; returns once it answers OPTIONS.
    pub fn start(opts: KamailioOpts) -> Kamailio {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::create_dir_all(&db).unwrap();
        std::fs::write(db.join("version"), "table_name(string) table_version(int) \nsubscriber:7\nversion:1\n")
            .unwrap();
        let mut subscribers = String::from(
            "id(int,auto) username(string) domain(string) password(string) ha1(string,null) ha1b(string,null) \n",
        );
        for (i, u) in USERS.iter().enumerate() {
            subscribers += &format!("{}:{u}:{DOMAIN}:{PASSWORD}:::\n", i + 1);
        }
        std::fs::write(db.join("subscriber"), subscribers).unwrap();
        std::fs::write(dir.path().join("kamailio.cfg"), config(dir.path(), opts.auth)).unwrap();
        let mut k = Kamailio { child: None, port: free_udp_port(), opts, dir };
        k.spawn();
        k
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(d.join("kamailio.log")).unwrap();
        let child = Command::new("kamailio")
            .arg("-f")
            .arg(d.join("kamailio.cfg"))
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-n", "2"])
            .args(["-l", &format!("udp:127.0.0.1:{}", self.port), "-l", &format!("tcp:127.0.0.1:{}", self.port)])
            .arg("-Y")
            .arg(d)
            .arg("-P")
            .arg(d.join("kamailio.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group: its children are killed with it, by the group's id.
            .process_group(0)
            .spawn()
            .expect("kamailio is installed (apt-get install kamailio)");
        self.child = Some(child);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let local = sock.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        for n in 1.. {
            let answer =
                udp_exchange(&sock, self.addr(), &options(local, self.addr(), "UDP", n), Duration::from_millis(200));
            if answer.is_some_and(|r| status_of(&r) == 200) {
                return;
            }
            let exited = self.child.as_mut().unwrap().try_wait().unwrap().is_some();
            if exited || Instant::now() > deadline {
                self.kill();
                panic!("kamailio did not start on port {}:\n{}", self.port, self.log());
            }
        }
    }

    /// Its UDP (and TCP) address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `sip:127.0.0.1:PORT;transport=udp`, the mid-registrar's `upstream`.
    pub fn uri(&self) -> String {
        format!("sip:{};transport=udp", self.addr())
    }

    /// Everything it logged so far (across restarts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }

    /// Every REGISTER it received so far (across restarts), oldest first.
    pub fn registers(&self) -> Vec<ReceivedRegister> {
        self.log().lines().filter_map(|l| l.split_once(REG_MARK)).map(|(_, rest)| parse_register_line(rest)).collect()
    }

    pub fn registers_received(&self) -> usize {
        self.registers().len()
    }

    /// Runs a kamcmd RPC command over the ctl socket; its output (stdout and stderr).
    pub fn rpc(&self, args: &[&str]) -> String {
        let out = Command::new("kamcmd")
            .arg("-s")
            .arg(format!("unix:{}", self.dir.path().join("ctl").display()))
            .args(args)
            .output()
            .expect("kamcmd is installed");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// `kamcmd ul.lookup location AOR`, as text (for assertion messages).
    pub fn ul_lookup(&self, aor: &str) -> String {
        self.rpc(&["ul.lookup", "location", aor])
    }

    /// The Contact addresses (URIs) usrloc holds for `aor`; empty when none.
    pub fn contacts(&self, aor: &str) -> Vec<String> {
        self.ul_lookup(aor)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Address: "))
            .map(|a| a.trim().to_string())
            .collect()
    }

    /// One statistic, e.g. `usrloc:location_contacts` (`stats.get_statistics`).
    pub fn statistic(&self, name: &str) -> Option<u64> {
        // kamcmd takes the bare name and prints it with its group.
        let bare = name.rsplit(':').next().unwrap();
        let out = self.rpc(&["stats.get_statistics", bare]);
        out.lines()
            .find_map(|l| l.trim().strip_prefix(name).and_then(|r| r.trim().strip_prefix('=')))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Waits until `pred` holds on the contacts of `aor`; the last contacts seen, and whether it held.
    pub fn wait_contacts(&self, aor: &str, limit: Duration, pred: impl Fn(&[String]) -> bool) -> (Vec<String>, bool) {
        let deadline = Instant::now() + limit;
        loop {
            let c = self.contacts(aor);
            if pred(&c) {
                return (c, true);
            }
            if Instant::now() > deadline {
                return (c, false);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops it (SIGTERM; it takes Kamailio about a second) and starts it
    /// again on the same port, its memory empty; returns once it answers OPTIONS.
    pub fn restart(&mut self) {
        self.restart_after(Duration::ZERO);
    }

    /// [`Kamailio::restart`] with an outage: it stays down for `down` first.
    pub fn restart_after(&mut self, down: Duration) {
        self.kill();
        std::thread::sleep(down);
        self.spawn();
    }

    /// Kills it; it stays stopped (its port no longer answers).
    pub fn stop(&mut self) {
        self.kill();
    }

    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    fn kill(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // SIGTERM: the main process stops and reaps its workers (usrloc is in
        // memory: nothing survives). Then SIGKILL to the group this harness
        // created (process_group(0): its id is the main PID), for stragglers.
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).stderr(Stdio::null()).status();
        let _ = child.kill();
        let _ = child.wait();
        // Its workers hold the port until they are gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while UdpSocket::bind(self.addr()).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.kill();
    }
}

fn parse_register_line(rest: &str) -> ReceivedRegister {
    let mut r = ReceivedRegister {
        to: String::new(),
        call_id: String::new(),
        cseq: String::new(),
        source: String::new(),
        expires: None,
        feature_caps: None,
        authorization: None,
        contact: String::new(),
    };
    let opt = |v: &str| (v != "<null>" && !v.is_empty()).then(|| v.to_string());
    // `ct=` comes last: a Contact may hold anything but a newline.
    let (fields, contact) = rest.split_once("|ct=").unwrap_or((rest, ""));
    r.contact = contact.to_string();
    for f in fields.split('|') {
        let Some((k, v)) = f.split_once('=') else { continue };
        match k {
            "to" => r.to = v.to_string(),
            "ci" => r.call_id = v.to_string(),
            "cs" => r.cseq = v.to_string(),
            "src" => r.source = v.to_string(),
            "exp" => r.expires = opt(v),
            "fc" => r.feature_caps = opt(v),
            "auth" => r.authorization = opt(v),
            _ => {}
        }
    }
    r
}

/// The Kamailio configuration: in-memory usrloc, db_text subscribers, the
/// ctl socket in `dir`, REGISTERs authenticated when `auth`.
fn config(dir: &Path, auth: bool) -> String {
    let auth_block = if auth {
        r#"        if (!auth_check("$td", "subscriber", "1")) {
            auth_challenge("$td", "1");
            exit;
        }
"#
    } else {
        ""
    };
    format!(
        r#"#!KAMAILIO
# Generated by crates/sipwake/tests/common/kamailio.rs: the upstream registrar of the mid-registrar tests.
debug=2
log_stderror=yes
auto_aliases=no
alias="{DOMAIN}"
tcp_children=1
dns=no
rev_dns=no
use_dns_cache=no

mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "kex.so"
loadmodule "ctl.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "cfgutils.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "db_text.so"
loadmodule "auth.so"
loadmodule "auth_db.so"

modparam("ctl", "binrpc", "unix:{dir}/ctl")
modparam("pv", "shvset", "instance=i:0")
modparam("usrloc", "db_mode", 0)
modparam("usrloc", "use_domain", 1)
modparam("registrar", "max_expires", 7200)
modparam("registrar", "default_expires", 3600)
modparam("auth_db", "db_url", "text://{dir}/db")
modparam("auth_db", "calculate_ha1", 1)
modparam("auth_db", "password_column", "password")
modparam("auth_db", "use_domain", 1)

event_route[core:worker-one-init] {{
    $shv(instance) = $RANDOM;
}}

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (is_method("OPTIONS") && $rU == $null) {{
        # Names this running instance (sipwake's mid_registrar.instance_header):
        # a restart, however quick, answers with a new value.
        append_to_reply("X-Instance: $shv(instance)\r\n");
        options_reply();
        exit;
    }}
    if (is_method("REGISTER")) {{
        xlog("L_NOTICE", "{REG_MARK}to=$tu|ci=$ci|cs=$cs|src=$si:$sp|exp=$hdr(Expires)|fc=$(hdr(Feature-Caps)[*])|auth=$hdr(Authorization)|ct=$(hdr(Contact)[*])\n");
{auth_block}        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("INVITE")) {{
        record_route();
    }}
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    t_relay();
}}
"#,
        dir = dir.display()
    )
}

/// The value of header `name` (case-insensitive) in a message.
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n").take_while(|l| !l.is_empty()).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The Authorization value answering the (MD5, qop=auth) challenge in
/// `resp` (a 401 from Kamailio, possibly relayed), for request `uri`.
pub fn authorization(resp: &str, user: &str, password: &str, method: &str, uri: &str, nc: u32) -> String {
    let chal = header(resp, "WWW-Authenticate").unwrap_or_else(|| panic!("no challenge in:\n{resp}"));
    let param = |k: &str| -> Option<String> {
        let rest = chal.trim_start_matches("Digest").trim();
        rest.split(',').find_map(|p| {
            let (n, v) = p.trim().split_once('=')?;
            n.trim().eq_ignore_ascii_case(k).then(|| v.trim().trim_matches('"').to_string())
        })
    };
    let (realm, nonce) = (param("realm").expect("realm"), param("nonce").expect("nonce"));
    let alg = sip_auth::Algorithm::Md5;
    let ha1 = sip_auth::ha1(alg, user, &realm, password);
    let cnonce = format!("c{nc:x}");
    let qop = param("qop").map(|_| sip_auth::Qop { nc, cnonce: &cnonce, qop: "auth" });
    let response = sip_auth::response(alg, &ha1, method.as_bytes(), uri, &nonce, qop);
    let mut a = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5"
    );
    if qop.is_some() {
        a += &format!(", cnonce=\"{cnonce}\", qop=auth, nc={nc:08x}");
    }
    if let Some(o) = param("opaque") {
        a += &format!(", opaque=\"{o}\"");
    }
    a
}
