//! A whole-node test harness in virtual time, in the manner of quinn-proto's
//! `Pair`: one [`sip_node::Node`], a virtual clock, a store that
//! acknowledges (at once, on demand, or with a failure), a push service that
//! records pushes and answers them, and scripted peers (phones over UDP or
//! TCP connections, callers) that build requests and react to what they
//! receive. No sockets, no threads, no sleeps: [`World::settle`] moves
//! everything that can move at the current instant; [`World::advance`]
//! moves the clock from timer to timer.
//!
//! Every message the node sends is kept in [`World::log`] (in order, with
//! the instant and the peer it reached), so tests can assert ordering rules.

#![allow(dead_code)]

use bytes::Bytes;
use sip_msg::{ConnId, HeaderName, Limits, Message, Method, Source, Target, Transport, parse_datagram};
use sip_node::mid::{MidConfig, Throttle, UpstreamReg};
use sip_node::{
    ClusterJob, Lookup, Node, NodeConfig, ProxyConfig, PushJob, Resolution, ResolveError, ResolveJob, Secrets, StoreOp,
    StoreWrite, WriteId,
};
use sip_push::{PushConfig, PushError, PushId};
use sip_registrar::{Aor, Binding, Flow, RegisterInput, Registrar, RegistrarConfig};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The node's listener (UDP and TCP).
pub const SERVER: &str = "127.0.0.1:5060";
/// The served domain.
pub const DOMAIN: &str = "example.com";
/// `pn-param` of the APNs devices.
pub const PN_PARAM: &str = "TEAM1.com.example.voip";
/// Wall clock (unix ms) at the world's start.
pub const UNIX0: u64 = 1_750_000_000_000;

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The default node configuration: UDP+TCP on 127.0.0.1:5060, domain
/// `example.com`, auth off, push on (apns, fcm) with PURRs, Record-Route on.
pub fn config() -> NodeConfig {
    let push = PushConfig { purr: true, ..PushConfig::with_providers(["apns", "fcm"]) };
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
        push: Some(push),
        server_header: "sipwake-test".into(),
        listeners: vec![(Transport::Udp, addr(SERVER)), (Transport::Tcp, addr(SERVER))],
        flow_token_key: [42; 32],
        seed: 7,
        unix_ms: UNIX0,
        call_end_pushes: Vec::new(),
        push_audit: Default::default(),
        mid: None,
        cluster: None,
        defence: Default::default(),
    }
}

/// The upstream registrar peer's address (UDP).
pub const UPSTREAM: &str = "127.0.0.1:5070";

/// The default configuration in the mid-registrar role: upstream at
/// [`UPSTREAM`] over UDP, `upstream_expires` 3600 s, `upstream_timeout`
/// 5 s, keep-alive every 30 s, 50 re-sends per second.
pub fn config_mid(throttle: Throttle) -> NodeConfig {
    let mut c = config();
    c.mid = Some(MidConfig {
        upstream: Target { transport: Transport::Udp, remote: addr(UPSTREAM), conn: None },
        throttle,
        upstream_expires: 3600,
        upstream_timeout: Duration::from_secs(5),
        keepalive: Some(Duration::from_secs(30)),
        resend_per_sec: 50,
        instance_header: None,
    });
    c
}

/// What the store does with a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// Acknowledged at once.
    Ack,
    /// Kept in [`World::held_writes`] until the test calls [`World::commit`].
    Hold,
    /// Failed at once with this error.
    Fail(String),
}

/// What the push service answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushMode {
    /// Delivered: the device (a peer with this `pn-prid`) is woken.
    Ok,
    /// Failed at once.
    Fail(PushError),
    /// Kept in [`World::held_pushes`] until [`World::push_result`].
    Hold,
}

/// What a phone does when a push reaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnPush {
    /// Nothing (the OS never wakes the app).
    Nothing,
    /// Wakes and re-REGISTERs from its current address/connection.
    Register,
    /// Wakes on a new address (and connection, for TCP), then re-REGISTERs.
    MoveAndRegister(SocketAddr, Option<ConnId>),
}

/// How an awake peer answers an INVITE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Nothing at all.
    Silent,
    /// 180 only.
    Ring,
    /// 180, then this final status.
    Final(u16),
}

/// Index of a peer in [`World::peers`].
pub type PeerId = usize;

/// A message seen by a peer, or sent by the node.
#[derive(Clone, Debug)]
pub struct Got {
    /// Virtual time since the start.
    pub at: Duration,
    /// Where the node sent it.
    pub target: Target,
    pub msg: Message,
    pub text: String,
}

impl Got {
    pub fn is_request(&self, m: Method) -> bool {
        self.msg.method() == Some(&m)
    }
    pub fn status(&self) -> Option<u16> {
        self.msg.status()
    }
    pub fn cseq_method(&self) -> Option<Method> {
        self.msg.cseq().ok().map(|c| c.method)
    }
    pub fn call_id(&self) -> String {
        self.msg.call_id().map(|c| String::from_utf8_lossy(c).into_owned()).unwrap_or_default()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        header_of(&self.text, name)
    }
    pub fn headers(&self, name: &str) -> Vec<&str> {
        headers_of(&self.text, name)
    }
    pub fn first_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }
    pub fn branch(&self) -> String {
        self.msg
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(|b| String::from_utf8_lossy(b).into_owned()))
            .unwrap_or_default()
    }
}

/// A transmit in the node's log.
#[derive(Clone, Debug)]
pub struct Sent {
    pub got: Got,
    /// The peer it reached (`None`: nobody at that address).
    pub to: Option<PeerId>,
}

/// A scripted SIP endpoint.
#[derive(Clone, Debug)]
pub struct Peer {
    pub name: String,
    pub user: String,
    pub transport: Transport,
    pub addr: SocketAddr,
    pub conn: Option<ConnId>,
    /// Earlier addresses/connections, still reachable (a suspended app keeps its socket).
    pub old: Vec<(SocketAddr, Option<ConnId>)>,
    /// Asleep: records what arrives, reacts to nothing.
    pub awake: bool,
    pub on_push: OnPush,
    pub answer: Answer,
    /// Push coordinates (`None`: a plain UA).
    pub provider: String,
    pub prid: Option<String>,
    pub instance: Option<String>,
    pub expires: u32,
    pub call_id: String,
    pub cseq: u32,
    /// Everything that reached this peer, in order.
    pub inbox: Vec<Got>,
    /// The last request this peer sent (to retransmit it).
    pub last_sent: Option<String>,
    /// Requests this peer sent, by branch (to build ACK and CANCEL).
    pub sent: HashMap<String, String>,
    /// Answers a 401 to its REGISTER (the upstream peer's test challenge)
    /// by sending it again with CSeq + 1 and an `Authorization` header
    /// (on by default in the mid-registrar role).
    pub answers_challenges: bool,
    /// INVITEs received and not yet answered finally, by branch.
    ringing: HashMap<String, Message>,
    next: u32,
}

impl Peer {
    /// The Contact URI this peer registers (and puts in its dialogs).
    pub fn contact_uri(&self) -> String {
        let mut u = format!("sip:{}@{}", self.user, self.addr);
        if self.transport == Transport::Tcp {
            u += ";transport=tcp";
        }
        if let Some(prid) = &self.prid {
            u += &format!(";pn-provider={};pn-prid={prid}", self.provider);
            if self.provider == "apns" {
                u += &format!(";pn-param={PN_PARAM}");
            }
        }
        u
    }
    /// The Contact header value of its REGISTERs.
    pub fn contact(&self) -> String {
        let mut c = format!("<{}>", self.contact_uri());
        if let Some(i) = &self.instance {
            c += &format!(";+sip.instance=\"<urn:uuid:{i}>\"");
        }
        c
    }
    /// Remembers a request this peer sends (to retransmit it, ACK or CANCEL it, answer its challenge).
    fn remember(&mut self, text: &str) {
        self.last_sent = Some(text.to_string());
        if let Some(b) = text.split("branch=").nth(1).and_then(|s| s.split([';', '\r']).next()) {
            self.sent.insert(b.to_string(), text.to_string());
        }
    }
    /// The REGISTER `orig` again with CSeq + 1, a new branch and credentials.
    fn with_credentials(&mut self, orig: &str) -> String {
        self.cseq += 1;
        let (via, _) = self.via();
        let mut out = String::new();
        for line in orig.split("\r\n") {
            if line.starts_with("Via:") {
                out += &format!("Via: {via}\r\n");
            } else if line.starts_with("CSeq:") {
                out += &format!("CSeq: {} REGISTER\r\n", self.cseq);
            } else if line.starts_with("Content-Length:") {
                out += &format!("{}\r\n{line}\r\n", authorization(&self.user));
            } else {
                out += line;
                out += "\r\n";
            }
        }
        // `split` gave one empty piece per trailing CRLF: the head ends in exactly one blank line.
        let out = out.trim_end_matches("\r\n").to_string() + "\r\n\r\n";
        self.remember(&out);
        out
    }
    fn via(&mut self) -> (String, String) {
        self.next += 1;
        let branch = format!("z9hG4bK-{}-{}", self.name, self.next);
        (format!("SIP/2.0/{} {};branch={branch};rport", self.transport.as_via(), self.addr), branch)
    }
    /// A REGISTER of its Contact for `expires` seconds (CSeq + 1).
    pub fn register_text(&mut self, contacts: &[String], extra: &[&str]) -> String {
        self.cseq += 1;
        let (via, _) = self.via();
        let mut s = format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: {via}\r\nFrom: <sip:{u}@{DOMAIN}>;tag=r{n}\r\nTo: <sip:{u}@{DOMAIN}>\r\nCall-ID: {c}\r\nCSeq: {n} REGISTER\r\nMax-Forwards: 70\r\n",
            u = self.user,
            c = self.call_id,
            n = self.cseq,
        );
        for c in contacts {
            s += &format!("Contact: {c}\r\n");
        }
        for e in extra {
            s += &format!("{e}\r\n");
        }
        s += "Content-Length: 0\r\n\r\n";
        s
    }
    /// A request from this peer (new branch); `extra` header lines are added.
    pub fn request_text(
        &mut self,
        method: &str,
        ruri: &str,
        to: &str,
        call_id: &str,
        cseq: u32,
        extra: &[&str],
    ) -> String {
        let (via, _) = self.via();
        let mut s = format!(
            "{method} {ruri} SIP/2.0\r\nVia: {via}\r\nFrom: <sip:{u}@{DOMAIN}>;tag=f-{tag}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContact: <sip:{u}@{a}>\r\nMax-Forwards: 70\r\n",
            u = self.user,
            a = self.addr,
            cid = call_id,
            tag = call_id.replace('@', "."),
        );
        for e in extra {
            s += &format!("{e}\r\n");
        }
        s += "Content-Length: 0\r\n\r\n";
        s
    }

    /// Replies from the link a message arrived on (may be empty).
    fn react(&mut self, got: &Got) -> Vec<String> {
        if !self.awake {
            return Vec::new();
        }
        let m = &got.msg;
        let mut out = Vec::new();
        if let Some(method) = m.method() {
            let tag = format!("{}-{}", self.name, got.branch());
            match method {
                Method::Invite => match self.answer {
                    Answer::Silent => {}
                    Answer::Ring => {
                        out.push(self.respond(m, 180, &tag));
                        self.ringing.insert(got.branch(), m.clone());
                    }
                    Answer::Final(code) => {
                        out.push(self.respond(m, 180, &tag));
                        out.push(self.respond(m, code, &tag));
                    }
                },
                Method::Ack => {}
                Method::Cancel => {
                    out.push(self.respond(m, 200, &tag));
                    if let Some(inv) = self.ringing.remove(&got.branch()) {
                        out.push(self.respond(&inv, 487, &tag));
                    }
                }
                _ => out.push(self.respond(m, 200, &tag)),
            }
            return out;
        }
        let code = m.status().unwrap_or(0);
        // A challenge to our REGISTER: once more, with credentials.
        if code == 401
            && self.answers_challenges
            && m.cseq().is_ok_and(|c| c.method == Method::Register)
            && let Some(orig) = self.sent.get(&got.branch()).cloned()
            && header_of(&orig, "Authorization").is_none()
        {
            out.push(self.with_credentials(&orig));
            return out;
        }
        // A final non-2xx to our INVITE: ACK it (same branch, §17.1.1.3).
        if code >= 300 && m.cseq().is_ok_and(|c| c.method == Method::Invite) {
            let branch = got.branch();
            if let Some(inv) = self.sent.get(&branch) {
                let ruri = inv.lines().next().unwrap().split(' ').nth(1).unwrap().to_string();
                let mut s = format!("ACK {ruri} SIP/2.0\r\n");
                for name in ["Via", "From", "To", "Call-ID"] {
                    if let Some(v) = got.header(name) {
                        s += &format!("{name}: {v}\r\n");
                    }
                }
                let seq = m.cseq().unwrap().seq;
                s += &format!("CSeq: {seq} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
                out.push(s);
            }
        }
        out
    }

    /// A response of this peer to `req` (with its Contact for an INVITE's 1xx/2xx).
    pub fn respond(&self, req: &Message, code: u16, tag: &str) -> String {
        let mut r = req.response(code, None, Some(tag));
        if code < 300 && req.method() != Some(&Method::Cancel) {
            for rr in req.headers.get_all(&HeaderName::RecordRoute) {
                r.headers.push(HeaderName::RecordRoute, rr.clone());
            }
            if req.method() == Some(&Method::Invite) {
                // Like real apps: the registered Contact, push coordinates included.
                r.headers.push(HeaderName::Contact, format!("<{}>", self.contact_uri()));
            }
        }
        String::from_utf8(r.to_bytes().to_vec()).unwrap()
    }
}

/// A cluster's refresh-claim table: binding → (generation, attempt, winner).
pub type ClaimTable = Rc<RefCell<HashMap<String, (u64, u32, String)>>>;

/// The node, its clock, its store, its push service and its peers.
pub struct World {
    pub t0: Instant,
    pub now: Instant,
    pub cfg: NodeConfig,
    pub node: Node,
    pub peers: Vec<Peer>,
    /// Every transmit of the node, in order.
    pub log: Vec<Sent>,
    /// Every push the node asked for, with its virtual time.
    pub pushes: Vec<(Duration, PushJob)>,
    /// Every store write the node asked for.
    pub writes: Vec<StoreWrite>,
    /// Writes acknowledged Ok, in order (what a store would hold).
    pub committed: Vec<StoreWrite>,
    pub held_writes: Vec<StoreWrite>,
    pub held_pushes: Vec<PushJob>,
    /// Credential lookups the node asked for (answer with [`World::credentials`]).
    pub lookups: Vec<Lookup>,
    pub store: StoreMode,
    pub push_mode: PushMode,
    /// The upstream registrar peer (mid-registrar role), once added.
    pub upstream: Option<Upstream>,
    /// The DNS the driver would ask: host → answer (a host not here does not exist).
    pub dns: HashMap<String, Resolution>,
    /// Every question the node asked, with its virtual time.
    pub resolves: Vec<(Duration, ResolveJob)>,
    /// Questions left unanswered (answer with [`World::answer_dns`]).
    pub held_resolves: Vec<ResolveJob>,
    pub dns_hold: bool,
    /// Cluster jobs the node asked for, with their virtual time.
    pub cluster_jobs: Vec<(Duration, ClusterJob)>,
    /// Lookup barriers left unanswered (answer with [`World::synced`]); else answered at once.
    pub sync_hold: bool,
    pub held_syncs: Vec<u64>,
    /// The refresh-claim table shared by a cluster's worlds (binding →
    /// (generation, attempt, winner)); `None`: every claim wins.
    pub claims: Option<ClaimTable>,
    inbound: VecDeque<(Source, Bytes)>,
}

/// The upstream registrar of the mid-registrar role: a peer at
/// [`UPSTREAM`] that answers REGISTER with a real `sip_registrar::Registrar`
/// (after a 401 to any REGISTER without `Authorization` when `challenge`
/// is on: any credentials are then accepted), OPTIONS with 200, an INVITE
/// to an AoR it has no contact for with 404 (one it has a contact for is
/// proxied there statelessly, its responses relayed back), and can go
/// silent or forget everything (a restart with empty memory).
pub struct Upstream {
    pub peer: PeerId,
    pub registrar: Registrar,
    pub challenge: bool,
    /// Answers nothing at all (down).
    pub silent: bool,
    /// Its 2xx to REGISTER lists no Contact (a registrar, or an SBC in
    /// front of it, that does not echo the bindings as RFC 3261 §10.3 asks).
    pub bare_ok: bool,
    /// Every response it sent (time, text).
    pub replies: Vec<(Duration, String)>,
    /// INVITEs it proxied to a contact it holds.
    pub forwarded: u32,
}

impl Upstream {
    fn reply(&mut self, at: Duration, resp: Message) -> String {
        let text = String::from_utf8(resp.to_bytes().to_vec()).unwrap();
        self.replies.push((at, text.clone()));
        text
    }

    /// Restarts with empty memory.
    pub fn forget(&mut self) {
        self.registrar = Registrar::new(self.registrar.config.clone(), 99);
    }
}

impl Default for World {
    fn default() -> Self {
        World::new(config())
    }
}

impl World {
    pub fn new(cfg: NodeConfig) -> World {
        let t0 = Instant::now();
        let node = Node::new(cfg.clone(), t0).unwrap();
        World {
            t0,
            now: t0,
            cfg,
            node,
            peers: Vec::new(),
            log: Vec::new(),
            pushes: Vec::new(),
            writes: Vec::new(),
            committed: Vec::new(),
            held_writes: Vec::new(),
            held_pushes: Vec::new(),
            lookups: Vec::new(),
            store: StoreMode::Ack,
            push_mode: PushMode::Ok,
            upstream: None,
            dns: HashMap::new(),
            resolves: Vec::new(),
            held_resolves: Vec::new(),
            dns_hold: false,
            cluster_jobs: Vec::new(),
            sync_hold: false,
            held_syncs: Vec::new(),
            claims: None,
            inbound: VecDeque::new(),
        }
    }

    /// A world in the mid-registrar role ([`config_mid`]).
    pub fn mid(throttle: Throttle) -> World {
        World::new(config_mid(throttle))
    }

    /// A world with the default config changed by `f`.
    pub fn with(f: impl FnOnce(&mut NodeConfig)) -> World {
        let mut cfg = config();
        f(&mut cfg);
        World::new(cfg)
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    // ----- peers -----

    fn add_peer(&mut self, name: &str, user: &str, transport: Transport, a: &str, conn: Option<ConnId>) -> PeerId {
        self.peers.push(Peer {
            name: name.into(),
            user: user.into(),
            transport,
            addr: addr(a),
            conn,
            old: Vec::new(),
            awake: true,
            on_push: OnPush::Register,
            answer: Answer::Final(200),
            provider: "apns".into(),
            prid: None,
            instance: None,
            expires: 600,
            call_id: format!("reg-{name}@test"),
            cseq: 0,
            inbox: Vec::new(),
            last_sent: None,
            sent: HashMap::new(),
            answers_challenges: self.cfg.mid.is_some(),
            ringing: HashMap::new(),
            next: 0,
        });
        self.peers.len() - 1
    }

    /// The upstream registrar peer at [`UPSTREAM`] (domain example.com,
    /// default registrar config); `challenge`: REGISTERs without
    /// credentials get 401.
    pub fn upstream(&mut self, challenge: bool) -> PeerId {
        let cfg = RegistrarConfig { domains: vec![DOMAIN.into()], ..RegistrarConfig::default() };
        self.upstream_with(challenge, cfg)
    }

    /// The upstream registrar peer with its registrar's config.
    pub fn upstream_with(&mut self, challenge: bool, cfg: RegistrarConfig) -> PeerId {
        assert!(self.upstream.is_none(), "one upstream");
        let p = self.add_peer("upstream", "carol", Transport::Udp, UPSTREAM, None);
        self.peers[p].answers_challenges = false;
        self.upstream = Some(Upstream {
            peer: p,
            registrar: Registrar::new(cfg, 99),
            challenge,
            silent: false,
            bare_ok: false,
            replies: Vec::new(),
            forwarded: 0,
        });
        p
    }

    /// The upstream registrar.
    pub fn up(&mut self) -> &mut Upstream {
        self.upstream.as_mut().expect("no upstream")
    }

    /// Wall clock (unix ms) now.
    pub fn now_ms(&self) -> u64 {
        UNIX0 + self.elapsed().as_millis() as u64
    }

    /// The contacts the upstream holds for `user@example.com` now.
    pub fn upstream_contacts(&self, user: &str) -> Vec<Binding> {
        let u = self.upstream.as_ref().expect("no upstream");
        let aor = Aor::parse(&format!("{user}@{DOMAIN}")).unwrap();
        u.registrar.location.lookup(&aor, self.now_ms()).cloned().collect()
    }

    /// The REGISTERs the upstream received (a retransmission counted once).
    pub fn upstream_registers(&self) -> Vec<&Got> {
        let u = self.upstream.as_ref().expect("no upstream");
        let mut seen = std::collections::HashSet::new();
        self.peers[u.peer].inbox.iter().filter(|g| g.is_request(Method::Register) && seen.insert(g.branch())).collect()
    }

    /// The upstream sends an INVITE to `ruri` (a new dialog, To `user`); returns its text.
    pub fn upstream_invite(&mut self, up: PeerId, ruri: &str, user: &str, n: u32) -> String {
        let to = format!("<sip:{user}@{DOMAIN}>");
        let cid = format!("up-{user}-{n}@test");
        let t = self.peers[up].request_text("INVITE", ruri, &to, &cid, 1, &[]);
        self.send(up, &t);
        t
    }

    /// The upstream calls `user@example.com`: an INVITE to each contact it
    /// holds for the AoR (one dialog each); returns their texts.
    pub fn upstream_call(&mut self, up: PeerId, user: &str, n: u32) -> Vec<String> {
        let uris: Vec<String> = self.upstream_contacts(user).iter().map(|b| b.uri.to_string()).collect();
        assert!(!uris.is_empty(), "the upstream has no contact for {user}:\n{}", self.dump());
        uris.iter().enumerate().map(|(i, u)| self.upstream_invite(up, u, user, n * 100 + i as u32)).collect()
    }

    /// A plain UA over UDP (answers INVITE with 180 + 200).
    pub fn ua(&mut self, name: &str, user: &str, a: &str) -> PeerId {
        self.add_peer(name, user, Transport::Udp, a, None)
    }

    /// An APNs push phone over UDP with `+sip.instance`: wakes and re-REGISTERs when pushed.
    pub fn phone(&mut self, name: &str, user: &str, a: &str, prid: &str) -> PeerId {
        let p = self.add_peer(name, user, Transport::Udp, a, None);
        self.peers[p].prid = Some(prid.into());
        self.peers[p].instance = Some(format!("6c5f0b8e-0000-4000-8000-{:012x}", p + 1));
        p
    }

    /// An APNs push phone over the TCP connection `conn`.
    pub fn phone_tcp(&mut self, name: &str, user: &str, a: &str, conn: ConnId, prid: &str) -> PeerId {
        let p = self.phone(name, user, a, prid);
        self.peers[p].transport = Transport::Tcp;
        self.peers[p].conn = Some(conn);
        p
    }

    pub fn peer(&mut self, p: PeerId) -> &mut Peer {
        &mut self.peers[p]
    }

    /// Moves a peer to a new address (and connection); the old link stays reachable.
    pub fn move_peer(&mut self, p: PeerId, a: SocketAddr, conn: Option<ConnId>) {
        let peer = &mut self.peers[p];
        peer.old.push((peer.addr, peer.conn));
        peer.addr = a;
        peer.conn = conn;
    }

    fn source_of(&self, p: PeerId) -> Source {
        let peer = &self.peers[p];
        Source { transport: peer.transport, local: addr(SERVER), remote: peer.addr, conn: peer.conn }
    }

    /// Sends raw text from a peer's current link to the node, then settles.
    pub fn send(&mut self, p: PeerId, text: &str) {
        if text.split(' ').next().is_some_and(|m| !m.starts_with("SIP/")) {
            self.peers[p].remember(text);
        }
        let src = self.source_of(p);
        self.inbound.push_back((src, Bytes::from(text.to_string())));
        self.settle();
    }

    /// Sends raw text back over the link `got` arrived on (a reply on an old connection).
    pub fn reply_on(&mut self, got: &Got, text: &str) {
        let t = got.target;
        let src = Source { transport: t.transport, local: addr(SERVER), remote: t.remote, conn: t.conn };
        self.inbound.push_back((src, Bytes::from(text.to_string())));
        self.settle();
    }

    /// Sends the peer's last request again, byte for byte.
    pub fn resend(&mut self, p: PeerId) {
        let t = self.peers[p].last_sent.clone().expect("nothing sent yet");
        self.send(p, &t);
    }

    /// REGISTERs the peer's Contact (for its `expires`) and settles.
    pub fn register(&mut self, p: PeerId) {
        let (c, e) = (self.peers[p].contact(), self.peers[p].expires);
        self.register_with(p, &[c], &[&format!("Expires: {e}")]);
    }

    pub fn register_with(&mut self, p: PeerId, contacts: &[String], extra: &[&str]) {
        let t = self.peers[p].register_text(contacts, extra);
        self.send(p, &t);
    }

    /// Sends a request from `p` to `sip:<user>@example.com` (a new dialog); returns its text.
    pub fn call(&mut self, p: PeerId, method: &str, user: &str, n: u32, extra: &[&str]) -> String {
        let ruri = format!("sip:{user}@{DOMAIN}");
        let to = format!("<{ruri}>");
        let cid = format!("{}-{method}-{n}@test", self.peers[p].name);
        let t = self.peers[p].request_text(method, &ruri, &to, &cid, 1, extra);
        self.send(p, &t);
        t
    }

    /// An INVITE to `sip:<user>@example.com`; returns its text.
    pub fn invite(&mut self, p: PeerId, user: &str, n: u32) -> String {
        self.call(p, "INVITE", user, n, &[])
    }

    /// CANCELs a request `p` sent (same R-URI, Via, From, To, Call-ID).
    pub fn cancel(&mut self, p: PeerId, req: &str) {
        let ruri = req.lines().next().unwrap().split(' ').nth(1).unwrap();
        let mut s = format!("CANCEL {ruri} SIP/2.0\r\n");
        for name in ["Via", "From", "To", "Call-ID"] {
            s += &format!("{name}: {}\r\n", header_of(req, name).unwrap());
        }
        let seq = header_of(req, "CSeq").unwrap().split(' ').next().unwrap();
        s += &format!("CSeq: {seq} CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
        let src = self.source_of(p);
        self.inbound.push_back((src, Bytes::from(s)));
        self.settle();
    }

    // ----- the loop -----

    /// Moves everything that can move at the current instant.
    pub fn settle(&mut self) {
        for _ in 0..100_000 {
            let mut any = false;
            let mut acks: Vec<(WriteId, Result<(), String>)> = Vec::new();
            let mut results: Vec<(PushId, Result<(), PushError>)> = Vec::new();
            let mut woken: Vec<String> = Vec::new();
            while let Some(t) = self.node.poll_transmit() {
                any = true;
                self.on_transmit(t);
            }
            while let Some(w) = self.node.poll_store() {
                any = true;
                self.writes.push(w.clone());
                match &self.store {
                    StoreMode::Ack => {
                        acks.push((w.id, Ok(())));
                        self.committed.push(w);
                    }
                    StoreMode::Fail(e) => acks.push((w.id, Err(e.clone()))),
                    StoreMode::Hold => self.held_writes.push(w),
                }
            }
            while let Some(p) = self.node.poll_push() {
                any = true;
                self.pushes.push((self.elapsed(), p.clone()));
                match self.push_mode {
                    PushMode::Ok => {
                        results.push((p.request.id, Ok(())));
                        woken.push(p.request.prid.clone());
                    }
                    PushMode::Fail(e) => results.push((p.request.id, Err(e))),
                    PushMode::Hold => self.held_pushes.push(p),
                }
            }
            while let Some(l) = self.node.poll_lookup() {
                any = true;
                self.lookups.push(l);
            }
            let mut answers = Vec::new();
            while let Some(j) = self.node.poll_resolve() {
                any = true;
                self.resolves.push((self.elapsed(), j.clone()));
                if self.dns_hold {
                    self.held_resolves.push(j);
                    continue;
                }
                let r = self
                    .dns
                    .get(&j.query.host)
                    .cloned()
                    .unwrap_or(Resolution { targets: Err(ResolveError::NotFound), ttl: Duration::from_secs(30) });
                answers.push((j.id, r));
            }
            for (id, r) in answers {
                self.node.handle_resolved(id, r, self.now);
            }
            while let Some(j) = self.node.poll_cluster() {
                any = true;
                self.cluster_jobs.push((self.elapsed(), j.clone()));
                match j {
                    ClusterJob::Sync(t) if self.sync_hold => self.held_syncs.push(t),
                    ClusterJob::Sync(t) => self.node.handle_synced(t, self.now),
                    ClusterJob::Claim { id, binding, generation, attempt } => {
                        let me = self.cfg.cluster.as_ref().map(|c| c.node_id.clone()).unwrap_or_default();
                        let won = match &self.claims {
                            None => true,
                            Some(t) => {
                                let mut t = t.borrow_mut();
                                let newer = t.get(&binding).is_none_or(|(g, a, _)| (*g, *a) < (generation, attempt));
                                if newer {
                                    t.insert(binding, (generation, attempt, me));
                                }
                                newer
                            }
                        };
                        self.node.handle_claim(id, Ok(won), self.now);
                    }
                }
            }
            for (id, r) in acks {
                self.node.handle_store_result(id, r, self.now);
            }
            for (id, r) in results {
                self.node.handle_push_result(id, r, self.now);
            }
            for prid in woken {
                self.wake(&prid);
            }
            while let Some((src, b)) = self.inbound.pop_front() {
                any = true;
                let msg = parse_datagram(b, &Limits::default());
                self.node.handle_message(src, msg, self.now);
            }
            if !any {
                return;
            }
        }
        panic!("the world does not settle");
    }

    /// Advances virtual time by `d`, firing every timer on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        self.advance_until(end, |_| false);
    }

    /// Advances time (timer by timer) until `stop` holds or `end`; returns whether `stop` held.
    pub fn advance_until(&mut self, end: Instant, mut stop: impl FnMut(&World) -> bool) -> bool {
        self.settle();
        for _ in 0..10_000_000 {
            if stop(self) {
                return true;
            }
            match self.node.poll_timeout() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.node.handle_timeout(self.now);
                    self.settle();
                }
                _ => {
                    self.now = end;
                    self.node.handle_timeout(self.now);
                    self.settle();
                    return stop(self);
                }
            }
        }
        panic!("timers do not advance (poll_timeout stuck at or before now?)");
    }

    fn on_transmit(&mut self, t: sip_node::Transmit) {
        let text = String::from_utf8_lossy(&t.data).into_owned();
        let msg = parse_datagram(t.data.clone(), &Limits::default())
            .unwrap_or_else(|e| panic!("the node sent an unparsable message ({e:?}):\n{text}"));
        let got = Got { at: self.elapsed(), target: t.target, msg, text };
        let to = self.peer_at(&t.target);
        self.log.push(Sent { got: got.clone(), to });
        let Some(p) = to else { return };
        self.peers[p].inbox.push(got.clone());
        let replies = match &self.upstream {
            Some(u) if u.peer == p => self.upstream_react(&got),
            _ => self.peers[p].react(&got),
        };
        for reply in replies {
            let src = Source {
                transport: got.target.transport,
                local: addr(SERVER),
                remote: got.target.remote,
                conn: got.target.conn,
            };
            self.inbound.push_back((src, Bytes::from(reply)));
        }
    }

    /// What the upstream registrar answers.
    fn upstream_react(&mut self, got: &Got) -> Vec<String> {
        let now_ms = self.now_ms();
        let at = self.elapsed();
        let Some(u) = self.upstream.as_mut() else { return Vec::new() };
        if u.silent {
            return Vec::new();
        }
        let m = &got.msg;
        let tag = format!("up-{}", got.branch());
        let resp = match m.method() {
            Some(Method::Register) => {
                if u.challenge && !m.headers.contains(&HeaderName::Authorization) {
                    let mut r = m.response(401, None, Some(&tag));
                    r.headers.push(HeaderName::WwwAuthenticate, format!("Digest realm=\"{DOMAIN}\", nonce=\"n1\""));
                    r
                } else {
                    let flow = Flow {
                        transport: got.target.transport,
                        remote: addr(SERVER),
                        local: addr(UPSTREAM),
                        conn: None,
                    };
                    let out = u.registrar.register(RegisterInput {
                        req: m,
                        flow,
                        now_ms,
                        auth_user: None,
                        fresh_ids: &[],
                        caps: &[],
                        dry_run: false,
                    });
                    let mut r = m.response(out.reply.code, out.reply.reason, Some(&tag));
                    for (n, v) in out.reply.headers {
                        if !(u.bare_ok && n == HeaderName::Contact) {
                            r.headers.push(n, v);
                        }
                    }
                    r
                }
            }
            Some(Method::Options) => m.response(200, None, Some(&tag)),
            Some(Method::Invite) => {
                let aor = m.uri().and_then(|u| u.as_sip()).map(Aor::from_uri);
                let first =
                    aor.and_then(|aor| u.registrar.location.lookup(&aor, now_ms).next().and_then(|b| b.uri.parse()));
                let Some(contact) = first else { return vec![u.reply(at, m.response(404, None, Some(&tag)))] };
                // A proxy: on to the (first) contact, statelessly.
                u.forwarded += 1;
                let mut fwd = m.clone();
                fwd.start = sip_msg::StartLine::Request { method: Method::Invite, uri: contact };
                let via = format!("SIP/2.0/UDP {UPSTREAM};branch=z9hG4bK-upfwd-{}", u.forwarded);
                fwd.headers.push_front(HeaderName::Via, via);
                return vec![String::from_utf8(fwd.to_bytes().to_vec()).unwrap()];
            }
            // A response to a request it proxied: back along the Vias.
            None if got.branch().starts_with("z9hG4bK-upfwd-") => {
                let mut r = m.clone();
                let vias: Vec<Bytes> = r.headers.get_all(&HeaderName::Via).cloned().collect();
                r.headers.remove_all(&HeaderName::Via);
                for v in vias[1..].iter().rev() {
                    r.headers.push_front(HeaderName::Via, v.clone());
                }
                return vec![String::from_utf8(r.to_bytes().to_vec()).unwrap()];
            }
            _ => {
                let p = u.peer;
                return self.peers[p].react(got);
            }
        };
        vec![u.reply(at, resp)]
    }

    /// The peer a target reaches: by connection, else by address.
    pub fn peer_at(&self, t: &Target) -> Option<PeerId> {
        if let Some(c) = t.conn
            && let Some(p) = self.peers.iter().position(|p| p.conn == Some(c) || p.old.iter().any(|o| o.1 == Some(c)))
        {
            return Some(p);
        }
        self.peers.iter().position(|p| p.addr == t.remote || p.old.iter().any(|o| o.0 == t.remote))
    }

    /// A push reached the device with this PRID: it wakes as scripted.
    fn wake(&mut self, prid: &str) {
        let Some(p) = self.peers.iter().position(|p| p.prid.as_deref() == Some(prid)) else { return };
        match self.peers[p].on_push.clone() {
            OnPush::Nothing => {}
            OnPush::Register => {
                self.peers[p].awake = true;
                let (c, e) = (self.peers[p].contact(), self.peers[p].expires);
                let t = self.peers[p].register_text(&[c], &[&format!("Expires: {e}")]);
                self.peers[p].remember(&t);
                let src = self.source_of(p);
                self.inbound.push_back((src, Bytes::from(t)));
            }
            OnPush::MoveAndRegister(a, conn) => {
                self.peers[p].on_push = OnPush::Register;
                self.move_peer(p, a, conn);
                self.wake(prid);
            }
        }
    }

    // ----- store, push service, credentials -----

    /// Acknowledges the oldest held write with `result`.
    pub fn commit(&mut self, result: Result<(), String>) -> WriteId {
        let w = self.held_writes.remove(0);
        let id = w.id;
        if result.is_ok() {
            self.committed.push(w);
        }
        self.node.handle_store_result(id, result, self.now);
        self.settle();
        id
    }

    /// Answers the oldest held push.
    pub fn push_result(&mut self, result: Result<(), PushError>) {
        let p = self.held_pushes.remove(0);
        self.node.handle_push_result(p.request.id, result, self.now);
        if result.is_ok() {
            self.wake(&p.request.prid.clone());
        }
        self.settle();
    }

    /// Answers the oldest held lookup barrier.
    pub fn synced(&mut self) {
        let t = self.held_syncs.remove(0);
        self.node.handle_synced(t, self.now);
        self.settle();
    }

    /// Answers the oldest credential lookup.
    pub fn credentials(&mut self, secrets: Option<Secrets>) {
        let l = self.lookups.remove(0);
        self.node.handle_credentials(l, secrets, self.now);
        self.settle();
    }

    /// The stored rows (binding, push state) as a store holding `committed` would load them.
    pub fn stored_rows(&self) -> Vec<(Binding, Option<String>)> {
        let mut rows: Vec<(String, (Binding, Option<String>))> = Vec::new();
        for w in &self.committed {
            for op in &w.ops {
                match op {
                    StoreOp::Upsert { binding, push_state } => {
                        rows.retain(|(id, _)| *id != binding.id);
                        rows.push((binding.id.clone(), ((**binding).clone(), push_state.clone())));
                    }
                    StoreOp::Remove { id } => rows.retain(|(i, _)| i != id),
                    StoreOp::Expire { id, at } => rows.retain(|(i, (b, _))| i != id || b.expires_at > *at),
                    StoreOp::Upstream(_) | StoreOp::RemoveUpstream { .. } => {}
                }
            }
        }
        rows.into_iter().map(|(_, r)| r).collect()
    }

    /// The upstream registrations as a store holding `committed` would load them.
    pub fn stored_upstream(&self) -> Vec<UpstreamReg> {
        let mut regs: Vec<UpstreamReg> = Vec::new();
        for w in &self.committed {
            for op in &w.ops {
                match op {
                    StoreOp::Upstream(r) => {
                        regs.retain(|x| x.key != r.key);
                        regs.push((**r).clone());
                    }
                    StoreOp::RemoveUpstream { key } => regs.retain(|x| x.key != *key),
                    _ => {}
                }
            }
        }
        regs
    }

    /// Kills the node and starts a new one (same config) on the stored rows
    /// (and upstream registrations, in the mid-registrar role), `after`
    /// later. Returns what `restore` said (kept, push bindings).
    pub fn restart(&mut self, after: Duration) -> (usize, usize) {
        let rows = self.stored_rows();
        let regs = self.stored_upstream();
        self.now += after;
        let mut cfg = self.cfg.clone();
        cfg.unix_ms = UNIX0 + self.elapsed().as_millis() as u64;
        self.node = Node::new(cfg, self.now).unwrap();
        let r = self.node.restore(rows, self.now);
        if self.cfg.mid.is_some() {
            self.node.restore_upstream(regs, self.now);
        }
        self.settle();
        r
    }

    /// As [`World::restart`], but the new node serves with its loading gate
    /// up and nothing restored yet: returns the stored rows, for the test to
    /// feed with [`World::load`] and [`World::finish_loading`].
    pub fn restart_gated(&mut self, after: Duration) -> Vec<(Binding, Option<String>)> {
        let rows = self.stored_rows();
        self.now += after;
        let mut cfg = self.cfg.clone();
        cfg.unix_ms = UNIX0 + self.elapsed().as_millis() as u64;
        self.node = Node::new(cfg, self.now).unwrap();
        self.node.begin_loading();
        self.settle();
        rows
    }

    /// Restores a chunk of stored rows into the gated node.
    pub fn load(&mut self, rows: Vec<(Binding, Option<String>)>) {
        self.node.restore(rows, self.now);
        self.settle();
    }

    /// The location is whole: the gate goes down.
    pub fn finish_loading(&mut self) {
        self.node.finish_loading(self.now);
        self.settle();
    }

    // ----- views -----

    /// Bindings of `user@example.com`.
    pub fn bindings(&self, user: &str) -> Vec<Binding> {
        let aor = format!("{user}@{DOMAIN}");
        self.node.location().aors().filter(|(a, _)| a.to_string() == aor).flat_map(|(_, bs)| bs.to_vec()).collect()
    }

    /// Responses a peer received (in order).
    pub fn responses(&self, p: PeerId) -> Vec<&Got> {
        self.peers[p].inbox.iter().filter(|g| g.msg.status().is_some()).collect()
    }

    /// Final responses (≥ 200) a peer received to requests of `method`.
    pub fn finals(&self, p: PeerId, method: Method) -> Vec<u16> {
        self.responses(p)
            .into_iter()
            .filter(|g| g.status().unwrap() >= 200 && g.cseq_method() == Some(method.clone()))
            .map(|g| g.status().unwrap())
            .collect()
    }

    /// The last response a peer received.
    pub fn last_response(&self, p: PeerId) -> &Got {
        self.responses(p).into_iter().last().expect("no response")
    }

    /// Requests of `method` a peer received.
    pub fn requests(&self, p: PeerId, method: Method) -> Vec<&Got> {
        self.peers[p].inbox.iter().filter(|g| g.is_request(method.clone())).collect()
    }

    /// Index in the log of the first transmit matching `f`.
    pub fn log_pos(&self, f: impl Fn(&Sent) -> bool) -> Option<usize> {
        self.log.iter().position(f)
    }

    /// The PURR the last 200 to a REGISTER of `p` carried.
    pub fn purr(&self, p: PeerId) -> String {
        let r = self
            .responses(p)
            .into_iter()
            .rev()
            .find(|g| g.status() == Some(200) && g.cseq_method() == Some(Method::Register))
            .expect("a 200 to a REGISTER");
        let caps = r.header("Feature-Caps").expect("Feature-Caps");
        caps.split("+sip.pnspurr=\"").nth(1).and_then(|s| s.split('"').next()).expect("a PURR").to_string()
    }

    /// Dumps the log (for assertion messages).
    pub fn dump(&self) -> String {
        self.log
            .iter()
            .map(|s| {
                format!(
                    "{:>9.3}s -> {:?} {} {}",
                    s.got.at.as_secs_f64(),
                    s.to.map(|p| self.peers[p].name.clone()),
                    s.got.target.conn.map(|c| format!("conn {c}")).unwrap_or_else(|| s.got.target.remote.to_string()),
                    s.got.first_line()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The `Authorization` header line a phone answers the upstream peer's challenge with.
pub fn authorization(user: &str) -> String {
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"{DOMAIN}\", nonce=\"n1\", uri=\"sip:{DOMAIN}\", response=\"00\""
    )
}

/// A world with one sleeping push phone `dev` (registered, asleep) and a caller.
pub fn sleeping_dev(w: &mut World) -> (PeerId, PeerId) {
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "TOKEN-A");
    w.register(dev);
    assert_eq!(w.last_response(dev).status(), Some(200), "{}", w.dump());
    w.peer(dev).awake = false;
    let caller = w.ua("caller", "caller", "10.0.0.9:5070");
    (dev, caller)
}

/// One header value of a message text.
pub fn header_of<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    headers_of(text, name).into_iter().next()
}

/// Every value of a header in a message text (one line each).
pub fn headers_of<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}
