//! Several nodes sharing one store, in virtual time: each [`World`] is one
//! node; a [`Mesh`] plays the shared database (the rows every node
//! committed, with the node that committed them), its change feed (each
//! commit is fed to the other nodes as `handle_replicated`), the
//! refresh-claim table, and the UDP links between nodes (what a node sends
//! to another node's advertised address arrives there).

mod common;

use common::*;
use sip_msg::{Method, Source, Transport, parse_datagram};
use sip_node::{ClusterConfig, Replicated, StoreOp};
use sip_push::PushReason;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

fn node_addr(i: usize) -> SocketAddr {
    addr(&format!("127.0.0.1:{}", 5160 + i))
}

struct Mesh {
    w: Vec<World>,
    /// The shared store: binding id → the row as last committed.
    rows: HashMap<String, Replicated>,
    /// How many committed writes of each node were replicated.
    seen: Vec<usize>,
    /// Nodes that are down (killed): no input, no clock.
    dead: Vec<bool>,
    /// The peer standing for node j in world i, by (i, j).
    links: HashMap<(usize, usize), PeerId>,
    /// Inbox entries of link peers already delivered.
    delivered: HashMap<(usize, usize), usize>,
}

impl Mesh {
    fn new(n: usize) -> Mesh {
        Mesh::with(n, true)
    }

    fn with(n: usize, lookup_barrier: bool) -> Mesh {
        let claims = Rc::new(RefCell::new(HashMap::new()));
        let mut w: Vec<World> = (0..n)
            .map(|i| {
                let mut world = World::with(|c| {
                    c.listeners = vec![(Transport::Udp, node_addr(i)), (Transport::Tcp, node_addr(i))];
                    if let Some(p) = &mut c.push {
                        p.purr_key = Some(vec![9; 32]);
                    }
                    c.seed = 100 + i as u64;
                    c.cluster = Some(ClusterConfig {
                        node_id: format!("n{i}"),
                        advertise: node_addr(i),
                        takeover_grace: Duration::from_secs(8),
                        sync_timeout: Duration::from_secs(1),
                        lookup_barrier,
                    });
                });
                world.claims = Some(claims.clone());
                world
            })
            .collect();
        let mut links = HashMap::new();
        for (i, world) in w.iter_mut().enumerate() {
            let members: Vec<(String, SocketAddr)> = (0..n).map(|j| (format!("n{j}"), node_addr(j))).collect();
            world.node.set_members(members);
            for j in (0..n).filter(|j| *j != i) {
                let p = world.ua(&format!("node{j}"), "node", &node_addr(j).to_string());
                world.peer(p).awake = false;
                links.insert((i, j), p);
            }
        }
        Mesh { w, rows: HashMap::new(), seen: vec![0; n], dead: vec![false; n], links, delivered: HashMap::new() }
    }

    fn alive(&self) -> Vec<usize> {
        (0..self.w.len()).filter(|i| !self.dead[*i]).collect()
    }

    /// Moves commits to the other nodes and messages between nodes until nothing moves.
    fn flow(&mut self) {
        for _ in 0..1000 {
            let mut any = false;
            for i in self.alive() {
                let new: Vec<_> = self.w[i].committed[self.seen[i]..].to_vec();
                self.seen[i] = self.w[i].committed.len();
                let mut ids = Vec::new();
                for write in new {
                    for op in write.ops {
                        match op {
                            StoreOp::Upsert { binding, push_state } => {
                                ids.push(binding.id.clone());
                                let r = Replicated { binding: *binding, push_state, owner: Some(format!("n{i}")) };
                                self.rows.insert(r.binding.id.clone(), r);
                            }
                            StoreOp::Remove { id } => {
                                self.rows.remove(&id);
                                ids.push(id);
                            }
                            StoreOp::Expire { id, at }
                                if self.rows.get(&id).is_some_and(|r| r.binding.expires_at <= at) =>
                            {
                                self.rows.remove(&id);
                                ids.push(id);
                            }
                            _ => {}
                        }
                    }
                }
                if ids.is_empty() {
                    continue;
                }
                any = true;
                let up: Vec<Replicated> = ids.iter().filter_map(|id| self.rows.get(id).cloned()).collect();
                let gone: Vec<String> = ids.iter().filter(|id| !self.rows.contains_key(*id)).cloned().collect();
                for j in self.alive().into_iter().filter(|j| *j != i) {
                    let now = self.w[j].now;
                    self.w[j].node.handle_replicated(up.clone(), gone.clone(), now);
                    self.w[j].settle();
                }
            }
            for ((i, j), p) in self.links.clone() {
                if self.dead[i] || self.dead[j] {
                    continue;
                }
                let from = self.delivered.get(&(i, j)).copied().unwrap_or(0);
                let msgs: Vec<Got> = self.w[i].peers[p].inbox[from..].to_vec();
                self.delivered.insert((i, j), from + msgs.len());
                for g in msgs {
                    any = true;
                    let src =
                        Source { transport: Transport::Udp, local: node_addr(j), remote: node_addr(i), conn: None };
                    let msg = parse_datagram(bytes::Bytes::from(g.text.clone()), &sip_msg::Limits::default());
                    let now = self.w[j].now;
                    self.w[j].node.handle_message(src, msg, now);
                    self.w[j].settle();
                }
            }
            if !any {
                return;
            }
        }
        panic!("the mesh does not settle");
    }

    /// Advances every live node by `d`, in steps of `step`, with the feed flowing in between.
    fn advance(&mut self, d: Duration, step: Duration) {
        let mut left = d;
        while !left.is_zero() {
            let s = step.min(left);
            for i in self.alive() {
                self.w[i].advance(s);
            }
            self.flow();
            left -= s;
        }
    }

    /// A node dies: the others stop seeing it as a member.
    fn kill(&mut self, k: usize) {
        self.dead[k] = true;
        let members: Vec<(String, SocketAddr)> =
            self.alive().iter().map(|j| (format!("n{j}"), node_addr(*j))).collect();
        for i in self.alive() {
            self.w[i].node.set_members(members.clone());
        }
    }

    /// The same device (a copy of `p` of world `from`) in world `to`.
    fn carry(&mut self, from: usize, p: PeerId, to: usize) -> PeerId {
        let peer = self.w[from].peers[p].clone();
        self.w[to].peers.push(peer);
        self.w[to].peers.len() - 1
    }

    /// Refresh pushes sent by any node for a PRID: (node, virtual time).
    fn refresh_pushes(&self, prid: &str) -> Vec<(usize, Duration)> {
        let mut v: Vec<(usize, Duration)> = self
            .w
            .iter()
            .enumerate()
            .flat_map(|(i, w)| {
                w.pushes
                    .iter()
                    .filter(|(_, j)| j.request.prid == prid && j.request.reason == PushReason::Refresh)
                    .map(move |(t, _)| (i, *t))
            })
            .collect();
        v.sort_by_key(|(_, t)| *t);
        v
    }
}

#[test]
fn a_device_registered_at_one_node_is_known_to_the_others() {
    let mut m = Mesh::new(3);
    let dev = m.w[0].phone("dev", "dev", "10.0.0.2:5062", "TOKEN-A");
    m.w[0].register(dev);
    assert_eq!(m.w[0].last_response(dev).status(), Some(200));
    m.flow();
    for i in 1..3 {
        let b = m.w[i].bindings("dev");
        assert_eq!(b.len(), 1, "node {i}");
        let id = b[0].id.clone();
        assert_eq!(m.w[i].node.owner_of(&id), Some("n0"));
    }
}

/// A PURR issued by one node (its 200 OK's Feature-Caps) wakes the device
/// when a mid-dialog request carrying it reaches another node: the PURR key
/// is shared and the push state (the PURRs) is replicated with the binding.
#[test]
fn a_purr_issued_by_one_node_wakes_the_device_through_another() {
    let mut m = Mesh::new(2);
    let dev = m.w[0].phone("dev", "dev", "10.0.0.2:5062", "TOKEN-A");
    m.w[0].register(dev);
    let purr = m.w[0].purr(dev);
    assert!(purr.len() >= 22, "{purr}");
    m.w[0].peer(dev).awake = false;
    m.flow();
    let peer = m.w[1].ua("peer", "peer", "10.0.0.9:5070");
    let ruri = format!("sip:dev@10.0.0.2:5062;pn-purr={purr}");
    let t = m.w[1].peer(peer).request_text("BYE", &ruri, &format!("<sip:dev@{DOMAIN}>;tag=d1"), "dlg-1@test", 2, &[]);
    m.w[1].send(peer, &t);
    m.flow();
    let mid: Vec<_> = m.w[1]
        .pushes
        .iter()
        .filter(|(_, j)| matches!(&j.request.reason, PushReason::MidDialog { method, .. } if method == "BYE"))
        .collect();
    assert_eq!(mid.len(), 1, "{}", m.w[1].dump());
    // A forged PURR does not.
    let t = m.w[1].peer(peer).request_text(
        "BYE",
        "sip:dev@10.0.0.2:5062;pn-purr=AAAAAAAAAAAAAAAAAAAAAA",
        &format!("<sip:dev@{DOMAIN}>;tag=d2"),
        "dlg-2@test",
        2,
        &[],
    );
    m.w[1].send(peer, &t);
    m.flow();
    assert_eq!(m.w[1].pushes.len(), 1);
}

#[test]
fn a_call_at_one_node_wakes_a_device_that_re_registers_at_another() {
    let mut m = Mesh::new(3);
    let dev = m.w[0].phone("dev", "dev", "10.0.0.2:5062", "TOKEN-A");
    m.w[0].register(dev);
    m.w[0].peer(dev).awake = false;
    m.flow();
    // A call arrives at n1: n1 waits for its lookup barrier, finds the device
    // (registered at n0), pushes it and parks the INVITE.
    let caller = m.w[1].ua("caller", "caller", "10.0.0.9:5070");
    m.w[1].invite(caller, "dev", 1);
    m.flow();
    assert!(m.w[1].cluster_jobs.iter().any(|(_, j)| matches!(j, sip_node::ClusterJob::Sync(_))));
    let call_pushes: Vec<_> =
        m.w[1].pushes.iter().filter(|(_, j)| matches!(j.request.reason, PushReason::Initial { .. })).collect();
    assert_eq!(call_pushes.len(), 1, "{}", m.w[1].dump());
    // The woken device re-registers at n2 (another address: the app came back on another network).
    let d2 = m.carry(0, dev, 2);
    m.w[2].move_peer(d2, addr("10.0.0.3:6000"), None);
    m.w[2].peer(d2).awake = true;
    m.w[2].register(d2);
    assert_eq!(m.w[2].last_response(d2).status(), Some(200), "{}", m.w[2].dump());
    m.flow();
    // n1 forked the INVITE once, through n2 (which holds the device's new flow), and the device got it once.
    let via_n2: Vec<_> = m.w[1].requests(m.links[&(1, 2)], Method::Invite);
    assert_eq!(via_n2.len(), 1, "{}", m.w[1].dump());
    assert!(via_n2[0].text.contains(";lr>") && via_n2[0].header("Route").is_some_and(|r| r.contains("fl-")));
    let got = m.w[2].requests(d2, Method::Invite);
    assert_eq!(got.len(), 1, "{}", m.w[2].dump());
    assert_eq!(got[0].target.remote, addr("10.0.0.3:6000"));
    // The device's 200 travels back through n2 and n1 to the caller.
    assert!(m.w[1].finals(caller, Method::Invite).contains(&200), "{}", m.w[1].dump());
    // Nobody else sent the INVITE to the device's old address.
    assert!(m.w[0].requests(dev, Method::Invite).is_empty());
}

#[test]
fn a_lookup_waits_for_its_barrier_and_sees_what_was_committed_before() {
    let mut m = Mesh::new(2);
    m.w[1].sync_hold = true;
    let ua = m.w[0].ua("bob", "bob", "10.0.0.5:5060");
    m.w[0].register(ua);
    // n1 has not seen the commit yet when the INVITE arrives.
    let caller = m.w[1].ua("caller", "caller", "10.0.0.9:5070");
    m.w[1].invite(caller, "bob", 1);
    assert_eq!(m.w[1].held_syncs.len(), 1);
    assert!(m.w[1].finals(caller, Method::Invite).is_empty(), "held, not answered 404");
    // The feed delivers the commit, then the barrier.
    m.flow();
    m.w[1].synced();
    m.flow();
    // bob's binding is n0's: the INVITE goes through n0.
    assert_eq!(m.w[1].requests(m.links[&(1, 0)], Method::Invite).len(), 1, "{}", m.w[1].dump());
    assert_eq!(m.w[0].requests(ua, Method::Invite).len(), 1, "{}", m.w[0].dump());
    assert!(m.w[1].finals(caller, Method::Invite).contains(&200));
}

#[test]
fn without_lookup_barriers_a_call_is_routed_from_the_cache_at_once() {
    let mut m = Mesh::with(2, false);
    m.w[1].sync_hold = true;
    let ua = m.w[0].ua("bob", "bob", "10.0.0.5:5060");
    m.w[0].register(ua);
    m.flow();
    let caller = m.w[1].ua("caller", "caller", "10.0.0.9:5070");
    m.w[1].invite(caller, "bob", 1);
    m.flow();
    assert!(m.w[1].cluster_jobs.is_empty(), "no barrier: {:?}", m.w[1].cluster_jobs);
    assert_eq!(m.w[0].requests(ua, Method::Invite).len(), 1, "{}", m.w[0].dump());
}

#[test]
fn a_barrier_that_never_returns_routes_from_the_cache_after_the_timeout() {
    let mut m = Mesh::new(2);
    m.w[1].sync_hold = true;
    let caller = m.w[1].ua("caller", "caller", "10.0.0.9:5070");
    m.w[1].invite(caller, "nobody", 1);
    assert!(m.w[1].finals(caller, Method::Invite).is_empty());
    m.w[1].advance(Duration::from_millis(1100));
    // Routed now: nobody is registered, so the subscriber is looked up (no such user).
    m.w[1].credentials(None);
    assert_eq!(m.w[1].finals(caller, Method::Invite), vec![404], "{}", m.w[1].dump());
    assert_eq!(m.w[1].node.cluster_stats().unwrap().sync_timeouts, 1);
}

/// Devices registered at the three nodes for an hour (600 s registrations,
/// re-registering when pushed): every refresh push is sent once, by the node
/// that holds the device, and no registration lapses.
#[test]
fn refresh_pushes_go_once_per_due_time_over_an_hour() {
    let mut m = Mesh::new(3);
    let mut devs = Vec::new();
    for k in 0..9 {
        let i = k % 3;
        let p = m.w[i].phone(&format!("d{k}"), &format!("u{k}"), &format!("10.0.1.{k}:5062"), &format!("TOK-{k}"));
        m.w[i].register(p);
        devs.push((i, p, format!("TOK-{k}"), format!("u{k}")));
    }
    m.flow();
    m.advance(Duration::from_secs(3600), Duration::from_millis(500));
    for (i, _, prid, user) in &devs {
        let pushes = m.refresh_pushes(prid);
        assert!(pushes.len() >= 5, "{prid}: {pushes:?}");
        assert!(pushes.iter().all(|(n, _)| n == i), "{prid}: pushed by a node that does not hold it: {pushes:?}");
        for pair in pushes.windows(2) {
            assert!(pair[1].1 - pair[0].1 > Duration::from_secs(60), "{prid}: two pushes for one due time: {pushes:?}");
        }
        for w in &m.w {
            assert_eq!(w.bindings(user).len(), 1, "{user} lapsed");
        }
    }
}

/// A node dies: the refresh pushes of the devices it held come from one
/// survivor each (after the takeover grace), once; the devices re-register
/// at a survivor, which holds them from then on.
#[test]
fn a_dead_nodes_refresh_pushes_come_from_one_survivor() {
    let mut m = Mesh::new(3);
    let mut devs = Vec::new();
    for k in 0..6 {
        let p = m.w[0].phone(&format!("d{k}"), &format!("u{k}"), &format!("10.0.2.{k}:5062"), &format!("TOK-{k}"));
        m.w[0].register(p);
        devs.push((p, format!("TOK-{k}"), format!("u{k}")));
    }
    m.flow();
    m.advance(Duration::from_secs(10), Duration::from_millis(500));
    m.kill(0);
    // The devices live on: when a survivor pushes them they re-register at it.
    for (p, _, _) in &devs {
        for s in 1..3 {
            let d = m.carry(0, *p, s);
            m.w[s].peer(d).awake = true;
        }
    }
    m.advance(Duration::from_secs(1800), Duration::from_millis(500));
    for (_, prid, user) in &devs {
        let pushes = m.refresh_pushes(prid);
        let after: Vec<_> = pushes.iter().filter(|(n, _)| *n != 0).collect();
        assert!(!after.is_empty(), "{prid}: no refresh push after n0 died: {pushes:?}");
        for pair in pushes.windows(2) {
            assert!(pair[1].1 - pair[0].1 > Duration::from_secs(60), "{prid}: duplicate refresh push: {pushes:?}");
        }
        for s in 1..3 {
            assert_eq!(m.w[s].bindings(user).len(), 1, "{user} lapsed on n{s}");
        }
    }
    let lost: u64 = (1..3).map(|s| m.w[s].node.cluster_stats().unwrap().claims_lost).sum();
    let won: u64 = (1..3).map(|s| m.w[s].node.cluster_stats().unwrap().claims_won).sum();
    assert!(won > 0 && lost > 0, "won {won} lost {lost}: both survivors tried, one won each time");
}
