//! Test harness: a real DNS server (dnsmasq, Debian `dnsmasq-base`) on a
//! free loopback port in a temp dir, with the test zone below, and a guard
//! that kills it by PID. Also query counting through dnsmasq's query log.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sip_dns::{Resolution, Resolver, ResolverConfig};
use sip_msg::Transport;

/// The test zone, as dnsmasq options. Local data only: `--local=/test/`
/// makes every other name under `test` NXDOMAIN.
pub fn zone() -> Vec<String> {
    [
        "--local=/test/",
        "--local-ttl=300",
        // example.test: NAPTR → SRV → A. Order 5 holds services we must skip
        // (SCTP, WebSocket); TLS and TCP share order 10, UDP comes at 20.
        "--naptr-record=example.test,20,10,S,SIP+D2U,,_sip._udp.example.test",
        "--naptr-record=example.test,10,20,S,SIP+D2T,,_sip._tcp.example.test",
        "--naptr-record=example.test,10,10,S,SIPS+D2T,,_sips._tcp.example.test",
        "--naptr-record=example.test,5,10,S,SIP+D2S,,_sip._sctp.example.test",
        "--naptr-record=example.test,5,20,S,SIPS+D2W,,_sips._ws.example.test",
        "--srv-host=_sips._tcp.example.test,tls1.example.test,5061,0,0",
        "--srv-host=_sip._tcp.example.test,tcp1.example.test,5060,0,0",
        "--srv-host=_sip._udp.example.test,udp1.example.test,5060,0,0",
        "--srv-host=_sip._sctp.example.test,sctp1.example.test,5060,0,0",
        "--srv-host=_sips._ws.example.test,ws1.example.test,443,0,0",
        "--host-record=example.test,127.0.0.10",
        "--host-record=tls1.example.test,127.0.0.11",
        "--host-record=tcp1.example.test,127.0.0.12",
        "--host-record=udp1.example.test,127.0.0.13",
        "--host-record=sctp1.example.test,127.0.0.14",
        "--host-record=ws1.example.test,127.0.0.15",
        // srv.test: SRV only (TCP and UDP), and an A record of its own.
        "--srv-host=_sip._tcp.srv.test,tcp.srv.test,5070,0,0",
        "--srv-host=_sip._udp.srv.test,udp.srv.test,5080,0,0",
        "--host-record=srv.test,127.0.0.20",
        "--host-record=tcp.srv.test,127.0.0.21",
        "--host-record=udp.srv.test,127.0.0.22",
        // naptronly.test: NAPTR to an SRV name that does not exist → A/AAAA
        // of the host over the NAPTR's transport.
        "--naptr-record=naptronly.test,10,10,S,SIP+D2T,,_sip._tcp.naptronly.test",
        "--host-record=naptronly.test,127.0.0.35",
        // a.test: A only.
        "--host-record=a.test,127.0.0.30",
        // v6.test: A and AAAA; v6only.test: AAAA only.
        "--host-record=v6.test,127.0.0.40,fd00::40",
        "--host-record=v6only.test,fd00::41",
        // v6srv.test: SRV to the dual-stack v6.test.
        "--srv-host=_sip._tcp.v6srv.test,v6.test,5070,0,0",
        // cn.test: SRV to an alias (TTL 20) that dnsmasq leaves out of the
        // additional section, so the target is looked up.
        "--srv-host=_sip._udp.cn.test,alias.cn.test,5060,0,0",
        "--cname=alias.cn.test,real.cn.test,20",
        "--host-record=real.cn.test,127.0.0.90,fd00::90",
        // weights.test: three primaries (60, 40, 0) and two backups.
        "--srv-host=_sip._udp.weights.test,p1.weights.test,5060,10,60",
        "--srv-host=_sip._udp.weights.test,p2.weights.test,5060,10,40",
        "--srv-host=_sip._udp.weights.test,p0.weights.test,5060,10,0",
        "--srv-host=_sip._udp.weights.test,b1.weights.test,5060,20,10",
        "--srv-host=_sip._udp.weights.test,b2.weights.test,5060,20,10",
        "--host-record=p1.weights.test,127.0.0.51",
        "--host-record=p2.weights.test,127.0.0.52",
        "--host-record=p0.weights.test,127.0.0.50",
        "--host-record=b1.weights.test,127.0.0.61",
        "--host-record=b2.weights.test,127.0.0.62",
        // dot.test: SRV target "." (service not available) next to an A record.
        "--srv-host=_sip._udp.dot.test",
        "--host-record=dot.test,127.0.0.70",
        // ttl.test: SRV (TTL 300) to a host with TTL 7; long.test TTL 3600;
        // short.test TTL 1.
        "--srv-host=_sip._udp.ttl.test,t1.ttl.test,5060,0,0",
        "--host-record=t1.ttl.test,127.0.0.80,7",
        "--host-record=long.test,127.0.0.81,3600",
        "--host-record=short.test,127.0.0.82,1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A running dnsmasq; killed (by PID) and reaped on drop.
pub struct Dnsmasq {
    child: Option<Child>,
    pub addr: SocketAddr,
    log: PathBuf,
    args: Vec<String>,
    _dir: tempfile::TempDir,
}

/// A port free for both UDP and TCP on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("udp addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn dnsmasq_bin() -> String {
    for p in ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"] {
        if std::path::Path::new(p).exists() {
            return p.to_string();
        }
    }
    "dnsmasq".to_string()
}

impl Dnsmasq {
    /// Starts dnsmasq with the test zone.
    pub fn start() -> Dnsmasq {
        Dnsmasq::with_args(zone())
    }

    /// Starts dnsmasq with these record options, on a free port, and waits
    /// until it serves.
    pub fn with_args(args: Vec<String>) -> Dnsmasq {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("dnsmasq.log");
        let mut d = Dnsmasq { child: None, addr: SocketAddr::from(([127, 0, 0, 1], 0)), log, args, _dir: dir };
        for _ in 0..10 {
            d.addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            if d.spawn() {
                return d;
            }
        }
        panic!("dnsmasq did not start (is dnsmasq-base installed? scripts/test.sh installs it)");
    }

    fn spawn(&mut self) -> bool {
        let _ = std::fs::remove_file(&self.log);
        let child = Command::new(dnsmasq_bin())
            .args([
                "--keep-in-foreground",
                "--no-daemon",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--user=root",
                "--pid-file=",
                "--log-queries",
            ])
            .arg(format!("--port={}", self.addr.port()))
            .arg(format!("--log-facility={}", self.log.display()))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dnsmasq");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut()
                && c.try_wait().expect("try_wait").is_some()
            {
                self.child = None;
                return false;
            }
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains("started, version") && log.contains("cleared cache") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    /// Kills dnsmasq by its PID and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (after [`Dnsmasq::stop`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        assert!(self.spawn(), "dnsmasq did not restart on port {}", self.addr.port());
    }

    /// How many queries dnsmasq has logged so far.
    pub fn queries(&self) -> usize {
        self.count_lines(": query[")
    }

    /// How many queries of this type for this name dnsmasq has logged.
    pub fn queries_for(&self, rtype: &str, name: &str) -> usize {
        self.count_lines(&format!(": query[{rtype}] {name} from"))
    }

    /// Counts log lines containing `needle` once the log has settled (the
    /// same count twice, 100 ms apart; at most 3 s).
    fn count_lines(&self, needle: &str) -> usize {
        let count = || {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            log.lines().filter(|l| l.contains(needle)).count()
        };
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut last = count();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = count();
            if now == last || Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }

    /// A resolver configuration that asks only this server.
    pub fn config(&self) -> ResolverConfig {
        ResolverConfig {
            servers: vec![self.addr],
            timeout: Duration::from_millis(500),
            attempts: 2,
            ..ResolverConfig::default()
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
    }
}

pub const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

pub fn resolver(d: &Dnsmasq, supported: &[Transport]) -> Resolver {
    Resolver::new(d.config(), supported).expect("resolver")
}

/// `transport:addr` strings, in order.
pub fn show(r: &Resolution) -> Vec<String> {
    r.targets.iter().map(|t| format!("{}:{}", t.transport, t.addr)).collect()
}
