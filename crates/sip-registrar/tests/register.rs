//! REGISTER processing in virtual time.

use bytes::Bytes;
use sip_msg::{HeaderName, Limits, Message, parse_datagram};
use sip_registrar::*;

const T0: u64 = 1_800_000_000_000;

fn cfg() -> RegistrarConfig {
    RegistrarConfig { domains: vec!["example.com".into()], ..RegistrarConfig::default() }
}

fn flow(port: u16, conn: Option<u64>) -> Flow {
    Flow {
        transport: if conn.is_some() { FlowTransport::Tcp } else { FlowTransport::Udp },
        remote: ([192, 0, 2, 1], port).into(),
        local: ([127, 0, 0, 1], 5060).into(),
        conn,
    }
}

struct Req {
    user: &'static str,
    call_id: &'static str,
    cseq: u32,
    contacts: Vec<String>,
    extra: Vec<String>,
    vias: usize,
}

impl Req {
    fn new(call_id: &'static str, cseq: u32) -> Req {
        Req { user: "alice", call_id, cseq, contacts: vec![], extra: vec![], vias: 1 }
    }
    fn contact(mut self, c: &str) -> Req {
        self.contacts.push(c.to_string());
        self
    }
    fn hdr(mut self, h: &str) -> Req {
        self.extra.push(h.to_string());
        self
    }
    fn build(&self) -> Message {
        let mut s = String::from("REGISTER sip:example.com SIP/2.0\r\n");
        for i in 0..self.vias {
            s += &format!("Via: SIP/2.0/UDP 192.0.2.{}:5060;branch=z9hG4bK{}{}\r\n", i + 1, self.call_id, self.cseq);
        }
        s += &format!("From: <sip:{u}@example.com>;tag=f\r\nTo: <sip:{u}@example.com>\r\n", u = self.user);
        s += &format!("Call-ID: {}\r\nCSeq: {} REGISTER\r\nMax-Forwards: 70\r\n", self.call_id, self.cseq);
        for c in &self.contacts {
            s += &format!("Contact: {c}\r\n");
        }
        for h in &self.extra {
            s += &format!("{h}\r\n");
        }
        s += "Content-Length: 0\r\n\r\n";
        let m = parse_datagram(Bytes::from(s), &Limits::default()).unwrap();
        m.validate().unwrap();
        m
    }
}

fn run(r: &mut Registrar, req: &Req, now: u64, f: Flow) -> Outcome {
    let m = req.build();
    r.register(RegisterInput {
        req: &m,
        flow: f,
        now_ms: now,
        auth_user: None,
        fresh_ids: &[],
        caps: &[],
        dry_run: false,
    })
}

fn contacts(o: &Outcome) -> Vec<String> {
    o.reply.headers.iter().filter(|(n, _)| *n == HeaderName::Contact).map(|(_, v)| v.clone()).collect()
}

#[test]
fn add_refresh_remove() {
    let mut r = Registrar::new(cfg(), 1);
    let o =
        run(&mut r, &Req::new("c1", 1).contact("<sip:alice@192.0.2.1:5060>").hdr("Expires: 600"), T0, flow(5060, None));
    assert_eq!(o.reply.code, 200);
    assert_eq!(contacts(&o), vec!["<sip:alice@192.0.2.1:5060>;expires=600"]);
    assert_eq!(o.changes.len(), 1);
    assert!(o.reply.headers.iter().any(|(n, v)| *n == HeaderName::Date && v.ends_with("GMT")));
    let id = match &o.changes[0] {
        Change::Upsert(b) => b.id.clone(),
        c => panic!("{c:?}"),
    };
    // Refresh 100 s later: same binding id, new expiry.
    let o = run(
        &mut r,
        &Req::new("c1", 2).contact("<sip:alice@192.0.2.1:5060>;expires=300"),
        T0 + 100_000,
        flow(5060, None),
    );
    assert_eq!(contacts(&o), vec!["<sip:alice@192.0.2.1:5060>;expires=300"]);
    assert!(matches!(&o.changes[0], Change::Upsert(b) if b.id == id));
    assert_eq!(r.location.len(), 1);
    // Fetch (no Contact) after 50 s shows the remaining time.
    let o = run(&mut r, &Req::new("c9", 1), T0 + 150_000, flow(5060, None));
    assert_eq!(contacts(&o), vec!["<sip:alice@192.0.2.1:5060>;expires=250"]);
    assert!(o.changes.is_empty());
    // Remove with expires=0.
    let o =
        run(&mut r, &Req::new("c1", 3).contact("<sip:alice@192.0.2.1:5060>;expires=0"), T0 + 200_000, flow(5060, None));
    assert_eq!(o.reply.code, 200);
    assert!(contacts(&o).is_empty());
    assert!(matches!(&o.changes[0], Change::Remove { id: i, .. } if *i == id));
    assert!(r.location.is_empty());
}

#[test]
fn expiry_rules() {
    let mut r = Registrar::new(cfg(), 1);
    // No expiry anywhere: default 3600.
    let o = run(&mut r, &Req::new("c1", 1).contact("<sip:a@192.0.2.1>"), T0, flow(1, None));
    assert_eq!(contacts(&o), vec!["<sip:a@192.0.2.1>;expires=3600"]);
    // Param beats header; max is enforced.
    let o = run(
        &mut r,
        &Req::new("c2", 1).contact("<sip:b@192.0.2.1>;expires=99999").hdr("Expires: 100"),
        T0,
        flow(1, None),
    );
    assert!(contacts(&o).contains(&"<sip:b@192.0.2.1>;expires=7200".to_string()));
    // Under the minimum: 423 with Min-Expires, nothing changes.
    let o = run(&mut r, &Req::new("c3", 1).contact("<sip:c@192.0.2.1>").hdr("Expires: 30"), T0, flow(1, None));
    assert_eq!(o.reply.code, 423);
    assert_eq!(o.reply.headers, vec![(HeaderName::MinExpires, "60".to_string())]);
    assert!(o.changes.is_empty());
    assert_eq!(r.location.len(), 2);
    // Overlarge values (RFC 4475 scalar02 style) fall back to the default.
    let o = run(&mut r, &Req::new("c4", 1).contact("<sip:d@192.0.2.1>;expires=4294967296"), T0, flow(1, None));
    assert!(contacts(&o).contains(&"<sip:d@192.0.2.1>;expires=3600".to_string()));
    // Expiry timers remove bindings at the right time.
    assert!(r.expire(T0 + 3_599_000).is_empty());
    let gone = r.expire(T0 + 3_600_000);
    assert_eq!(gone.len(), 2, "{gone:?}");
    assert_eq!(r.location.len(), 1);
}

#[test]
fn star_removes_all() {
    let mut r = Registrar::new(cfg(), 1);
    run(&mut r, &Req::new("c1", 1).contact("<sip:a@192.0.2.1>").contact("<sip:b@192.0.2.1>"), T0, flow(1, None));
    assert_eq!(r.location.len(), 2);
    // '*' needs Expires: 0.
    let o = run(&mut r, &Req::new("c2", 1).contact("*").hdr("Expires: 10"), T0, flow(1, None));
    assert_eq!(o.reply.code, 400);
    let o = run(&mut r, &Req::new("c2", 1).contact("*").contact("<sip:x@y.com>").hdr("Expires: 0"), T0, flow(1, None));
    assert_eq!(o.reply.code, 400);
    // Same Call-ID with a lower CSeq fails; a new Call-ID removes all.
    for cseq in [0, 1] {
        let o = run(&mut r, &Req::new("c1", cseq).contact("*").hdr("Expires: 0"), T0, flow(1, None));
        assert_eq!(o.reply.code, 400, "CSeq {cseq} is not newer than the bindings' 1");
        assert_eq!(r.location.len(), 2);
    }
    let o = run(&mut r, &Req::new("c2", 1).contact("*").hdr("Expires: 0"), T0, flow(1, None));
    assert_eq!(o.reply.code, 200);
    assert_eq!(o.changes.len(), 2);
    assert!(r.location.is_empty());
    // Its retransmission finds nothing left and succeeds.
    let o = run(&mut r, &Req::new("c2", 1).contact("*").hdr("Expires: 0"), T0, flow(1, None));
    assert_eq!(o.reply.code, 200);
    assert!(o.changes.is_empty());
}

#[test]
fn cseq_ordering_and_no_resurrection() {
    let mut r = Registrar::new(cfg(), 1);
    run(&mut r, &Req::new("c1", 5).contact("<sip:a@192.0.2.1>"), T0, flow(1, None));
    // Older CSeq, same Call-ID: refused, binding untouched.
    let o = run(&mut r, &Req::new("c1", 4).contact("<sip:a@192.0.2.1>;expires=100"), T0, flow(1, None));
    assert_eq!((o.reply.code, o.reply.reason), (400, Some("Out Of Order CSeq")));
    assert_eq!(r.location.get(&Aor::parse("alice@example.com").unwrap())[0].cseq, 5);
    // Retransmission (same CSeq): 200, no change.
    let o = run(&mut r, &Req::new("c1", 5).contact("<sip:a@192.0.2.1>"), T0, flow(1, None));
    assert_eq!(o.reply.code, 200);
    assert!(o.changes.is_empty());
    // De-register with CSeq 6, then a delayed CSeq 5 REGISTER must not bring it back.
    run(&mut r, &Req::new("c1", 6).contact("<sip:a@192.0.2.1>;expires=0"), T0 + 1000, flow(1, None));
    assert!(r.location.is_empty());
    // The de-REGISTER retransmitted: 200 again, nothing changes.
    let o = run(&mut r, &Req::new("c1", 6).contact("<sip:a@192.0.2.1>;expires=0"), T0 + 1500, flow(1, None));
    assert_eq!(o.reply.code, 200);
    assert!(o.changes.is_empty());
    let o = run(&mut r, &Req::new("c1", 5).contact("<sip:a@192.0.2.1>"), T0 + 2000, flow(1, None));
    assert_eq!(o.reply.code, 400);
    assert!(r.location.is_empty());
    // A new CSeq (or a new Call-ID) registers again.
    let o = run(&mut r, &Req::new("c1", 7).contact("<sip:a@192.0.2.1>"), T0 + 3000, flow(1, None));
    assert_eq!(o.reply.code, 200);
    assert_eq!(r.location.len(), 1);
}

#[test]
fn different_call_id_replaces() {
    let mut r = Registrar::new(cfg(), 1);
    run(&mut r, &Req::new("c1", 50).contact("<sip:a@192.0.2.1>"), T0, flow(1, None));
    let o = run(&mut r, &Req::new("c2", 1).contact("<sip:a@192.0.2.1>;expires=120"), T0, flow(1, None));
    assert_eq!(o.reply.code, 200);
    assert_eq!(r.location.len(), 1);
    assert_eq!(contacts(&o), vec!["<sip:a@192.0.2.1>;expires=120"]);
}

#[test]
fn max_contacts_reject_and_replace() {
    let mut c = cfg();
    c.max_contacts = 2;
    let mut r = Registrar::new(c.clone(), 1);
    run(&mut r, &Req::new("c1", 1).contact("<sip:a@192.0.2.1>;expires=100"), T0, flow(1, None));
    run(&mut r, &Req::new("c2", 1).contact("<sip:b@192.0.2.1>;expires=200"), T0, flow(1, None));
    let o = run(&mut r, &Req::new("c3", 1).contact("<sip:c@192.0.2.1>"), T0, flow(1, None));
    assert_eq!((o.reply.code, o.reply.reason), (403, Some("Too Many Contacts")));
    assert_eq!(r.location.len(), 2);
    // Refreshing an existing one is always fine.
    assert_eq!(run(&mut r, &Req::new("c1", 2).contact("<sip:a@192.0.2.1>"), T0, flow(1, None)).reply.code, 200);
    c.max_contacts_policy = MaxContactsPolicy::ReplaceOldest;
    let mut r = Registrar::new(c, 1);
    run(&mut r, &Req::new("c1", 1).contact("<sip:a@192.0.2.1>;expires=100"), T0, flow(1, None));
    run(&mut r, &Req::new("c2", 1).contact("<sip:b@192.0.2.1>;expires=200"), T0, flow(1, None));
    let o = run(&mut r, &Req::new("c3", 1).contact("<sip:c@192.0.2.1>"), T0, flow(1, None));
    assert_eq!(o.reply.code, 200);
    let cs = contacts(&o);
    assert_eq!(cs.len(), 2);
    assert!(!cs.iter().any(|c| c.contains("sip:a@")), "the soonest-expiring binding was dropped: {cs:?}");
}

#[test]
fn instance_replaces_binding_from_new_address() {
    let mut r = Registrar::new(cfg(), 1);
    let inst = "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\"";
    let o = run(
        &mut r,
        &Req::new("c1", 1).contact(&format!("<sip:alice@192.0.2.1:5060;transport=tcp>;{inst}")),
        T0,
        flow(40000, Some(7)),
    );
    let Change::Upsert(b1) = &o.changes[0] else { panic!() };
    // The phone comes back from a new address and connection (new Call-ID too).
    let o = run(
        &mut r,
        &Req::new("c2", 1).contact(&format!("<sip:alice@198.51.100.9:6000;transport=tcp>;{inst}")),
        T0 + 10,
        flow(41000, Some(8)),
    );
    assert_eq!(o.reply.code, 200);
    let Change::Upsert(b2) = &o.changes[0] else { panic!() };
    assert_eq!(b1.id, b2.id);
    assert_eq!(r.location.len(), 1);
    assert_eq!(contacts(&o).len(), 1);
    assert!(contacts(&o)[0].contains("198.51.100.9"));
    assert_eq!(r.location.on_conn(8).len(), 1);
    assert!(r.location.on_conn(7).is_empty());
}

#[test]
fn outbound_and_path() {
    let mut r = Registrar::new(cfg(), 1);
    let inst = "+sip.instance=\"<urn:uuid:1>\"";
    // Each flow registers over itself, one Contact per REGISTER (RFC 5626 §6).
    let req = Req::new("c1", 1)
        .contact(&format!("<sip:alice@192.0.2.1;transport=tcp;ob>;{inst};reg-id=1"))
        .hdr("Supported: outbound, path");
    assert_eq!(run(&mut r, &req, T0, flow(40000, Some(3))).reply.code, 200);
    let req = Req::new("c1b", 1)
        .contact(&format!("<sip:alice@192.0.2.1;transport=tcp;ob>;{inst};reg-id=2"))
        .hdr("Supported: outbound, path");
    let o = run(&mut r, &req, T0, flow(40001, Some(4)));
    assert_eq!(o.reply.code, 200);
    assert_eq!(contacts(&o).len(), 2, "two flows of one instance are two bindings");
    assert!(o.reply.headers.contains(&(HeaderName::Require, "outbound".into())));
    // Through an edge proxy with Path (no ;ob): reg-id with Supported: outbound is 439.
    let mut via2 = Req::new("c2", 1)
        .contact(&format!("<sip:alice@192.0.2.1>;{inst};reg-id=1"))
        .hdr("Supported: outbound, path")
        .hdr("Path: <sip:edge.example.com;lr>");
    via2.vias = 2;
    assert_eq!(run(&mut r, &via2, T0, flow(5060, None)).reply.code, 439);
    // With ;ob on the Path: accepted, and the Path is stored and echoed.
    let mut via3 = Req::new("c3", 1)
        .contact("<sip:bob@192.0.2.5>")
        .hdr("Supported: path")
        .hdr("Path: <sip:edge.example.com;lr;ob>, <sip:edge2.example.com;lr>");
    via3.user = "bob";
    via3.vias = 3;
    let o = run(&mut r, &via3, T0, flow(5060, None));
    assert_eq!(o.reply.code, 200);
    let paths: Vec<_> =
        o.reply.headers.iter().filter(|(n, _)| *n == HeaderName::Path).map(|(_, v)| v.as_str()).collect();
    assert_eq!(paths, vec!["<sip:edge.example.com;lr;ob>", "<sip:edge2.example.com;lr>"]);
    let Change::Upsert(b) = &o.changes[0] else { panic!() };
    assert_eq!(b.path.len(), 2);
    // Without Supported: path the Path is stored but not echoed.
    let mut via4 = Req::new("c4", 1).contact("<sip:carol@192.0.2.5>").hdr("Path: <sip:edge.example.com;lr>");
    via4.user = "carol";
    via4.vias = 2;
    let o = run(&mut r, &via4, T0, flow(5060, None));
    assert!(!o.reply.headers.iter().any(|(n, _)| *n == HeaderName::Path));
}

#[test]
fn connection_loss() {
    let mut r = Registrar::new(cfg(), 1);
    let inst = "+sip.instance=\"<urn:uuid:2>\"";
    let plain = Req::new("c1", 1)
        .contact(&format!("<sip:alice@192.0.2.1;transport=tcp>;{inst};reg-id=1"))
        .hdr("Supported: outbound");
    run(&mut r, &plain, T0, flow(40000, Some(11)));
    let push = Req::new("c2", 1)
        .contact("<sip:alice@192.0.2.1;transport=tcp;pn-provider=apns;pn-prid=abc;pn-param=T.app.voip>;+sip.instance=\"<urn:uuid:3>\";reg-id=1")
        .hdr("Supported: outbound");
    run(&mut r, &push, T0, flow(40001, Some(12)));
    let legacy = Req::new("c3", 1).contact("<sip:alice@192.0.2.9;transport=tcp>");
    run(&mut r, &legacy, T0, flow(40002, Some(11)));
    assert_eq!(r.location.len(), 3);
    // Connection 11 dies: the outbound binding goes, the legacy one stays without its flow.
    let ch = r.conn_closed(11, T0 + 5);
    assert_eq!(ch.iter().filter(|c| matches!(c, Change::Remove { .. })).count(), 1);
    assert_eq!(r.location.len(), 2);
    // Connection 12 dies: the push binding stays (flow dead) so a push can wake it.
    r.conn_closed(12, T0 + 6);
    assert_eq!(r.location.len(), 2);
    let aor = Aor::parse("alice@example.com").unwrap();
    assert!(r.location.get(&aor).iter().all(|b| b.flow.conn.is_none()));
    assert!(r.location.get(&aor).iter().any(|b| b.is_push_capable()));
}

#[test]
fn domain_and_aor_checks() {
    let mut r = Registrar::new(cfg(), 1);
    let m = Req::new("c1", 1).contact("<sip:a@192.0.2.1>").build();
    let bad_domain = String::from_utf8(m.to_bytes().to_vec()).unwrap().replacen("sip:example.com", "sip:other.org", 1);
    let m2 = parse_datagram(Bytes::from(bad_domain), &Limits::default()).unwrap();
    let o = r.register(RegisterInput {
        req: &m2,
        flow: flow(1, None),
        now_ms: T0,
        auth_user: None,
        fresh_ids: &[],
        caps: &[],
        dry_run: false,
    });
    assert_eq!((o.reply.code, o.reply.reason), (403, Some("Domain Not Served")));
    // The authenticated user may register only its own AoR.
    let o = r.register(RegisterInput {
        req: &m,
        flow: flow(1, None),
        now_ms: T0,
        auth_user: Some(("bob", "example.com")),
        fresh_ids: &[],
        caps: &[],
        dry_run: false,
    });
    assert_eq!(o.reply.code, 403);
    let o = r.register(RegisterInput {
        req: &m,
        flow: flow(1, None),
        now_ms: T0,
        auth_user: Some(("alice", "example.com")),
        fresh_ids: &[],
        caps: &[],
        dry_run: false,
    });
    assert_eq!(o.reply.code, 200);
    // Unsupported Require: 420.
    let o = run(&mut r, &Req::new("c5", 1).hdr("Require: foo, path"), T0, flow(1, None));
    assert_eq!(o.reply.code, 420);
    assert_eq!(o.reply.headers, vec![(HeaderName::Unsupported, "foo".to_string())]);
}

#[test]
fn q_values_and_bad_params() {
    let mut r = Registrar::new(cfg(), 1);
    let o = run(&mut r, &Req::new("c1", 1).contact("<sip:a@192.0.2.1>;q=0.5"), T0, flow(1, None));
    assert_eq!(contacts(&o), vec!["<sip:a@192.0.2.1>;expires=3600;q=0.5"]);
    assert_eq!(run(&mut r, &Req::new("c2", 1).contact("<sip:b@192.0.2.1>;q=2"), T0, flow(1, None)).reply.code, 400);
}

#[test]
fn a_day_of_refreshes_for_two_thousand_bindings() {
    // 2,000 AoRs registering for 3600 s and refreshing every 1800 s for 24 h
    // of virtual time, with a few that stop refreshing: the index stays exact.
    let mut r = Registrar::new(cfg(), 42);
    let msgs: Vec<Vec<Message>> = (0..2_000)
        .map(|i| {
            (0..1)
                .map(|k| {
                    let s = format!(
                        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK{i}x{k}\r\nFrom: <sip:u{i}@example.com>;tag=f\r\nTo: <sip:u{i}@example.com>\r\nCall-ID: cid{i}\r\nCSeq: {k} REGISTER\r\nContact: <sip:u{i}@192.0.2.1:{p}>;expires=3600\r\nContent-Length: 0\r\n\r\n",
                        p = 1000 + i % 60000
                    );
                    parse_datagram(Bytes::from(s), &Limits::default()).unwrap()
                })
                .collect()
        })
        .collect();
    let mut now = T0;
    let mut expired_total = 0;
    for round in 0..48 {
        for (i, m) in msgs.iter().enumerate() {
            if i % 200 == 0 && round > 10 {
                continue; // these stop refreshing
            }
            let mut req = m[0].clone();
            req.headers.set(HeaderName::CSeq, format!("{} REGISTER", round + 1));
            let o = r.register(RegisterInput {
                req: &req,
                flow: flow(1, None),
                now_ms: now,
                auth_user: None,
                fresh_ids: &[],
                caps: &[],
                dry_run: false,
            });
            assert_eq!(o.reply.code, 200);
        }
        now += 1_800_000;
        expired_total += r.expire(now).len();
    }
    assert_eq!(r.location.len(), 2_000 - 10);
    assert_eq!(expired_total, 10);
}

#[test]
fn malformed_expires_is_400() {
    let mut r = Registrar::new(cfg(), 1);
    // An Expires header that is not delta-seconds is not taken as the default.
    for bad in ["Expires: 600aaaa", "Expires: -1", "Expires: Thu, 01 Dec 1994 16:00:00 GMT"] {
        let o = run(&mut r, &Req::new("c1", 1).contact("<sip:a@192.0.2.1>").hdr(bad), T0, flow(1, None));
        assert_eq!((o.reply.code, o.reply.reason), (400, Some("Invalid Expires Header")), "{bad}");
        assert!(o.changes.is_empty());
    }
    // Even when each Contact has its own expires, and on a fetch.
    let o =
        run(&mut r, &Req::new("c2", 1).contact("<sip:a@192.0.2.1>;expires=600").hdr("Expires: 60x"), T0, flow(1, None));
    assert_eq!(o.reply.code, 400);
    assert_eq!(run(&mut r, &Req::new("c3", 1).hdr("Expires: x"), T0, flow(1, None)).reply.code, 400);
    // A malformed expires Contact parameter.
    for bad in
        ["<sip:a@192.0.2.1>;expires=600aaaa", "<sip:a@192.0.2.1>;expires=\"600\"", "<sip:a@192.0.2.1>;expires=-5"]
    {
        let o = run(&mut r, &Req::new("c4", 1).contact(bad), T0, flow(1, None));
        assert_eq!((o.reply.code, o.reply.reason), (400, Some("Invalid Contact expires Parameter")), "{bad}");
    }
    // Atomic: one bad Contact rejects the whole request.
    let o = run(
        &mut r,
        &Req::new("c5", 1).contact("<sip:a@192.0.2.1>").contact("<sip:b@192.0.2.1>;expires=1e3"),
        T0,
        flow(1, None),
    );
    assert_eq!(o.reply.code, 400);
    assert!(r.location.is_empty());
    // Well-formed values still work, with white space around the header value.
    let o = run(&mut r, &Req::new("c6", 1).contact("<sip:a@192.0.2.1>").hdr("Expires:   600  "), T0, flow(1, None));
    assert_eq!(contacts(&o), vec!["<sip:a@192.0.2.1>;expires=600"]);
}

#[test]
fn rfc5626_several_contacts_with_reg_id_is_400() {
    let mut r = Registrar::new(cfg(), 1);
    let inst = "+sip.instance=\"<urn:uuid:7>\"";
    let two = Req::new("c1", 1)
        .contact(&format!("<sip:alice@192.0.2.1;transport=tcp;ob>;{inst};reg-id=1"))
        .contact("<sip:alice@192.0.2.9>")
        .hdr("Supported: outbound");
    let o = run(&mut r, &two, T0, flow(40000, Some(3)));
    assert_eq!((o.reply.code, o.reply.reason), (400, Some("Several Contacts With reg-id")));
    assert!(o.changes.is_empty() && r.location.is_empty());
    // Also when outbound does not apply (no Supported: outbound): the reg-id is there.
    let two = Req::new("c2", 1)
        .contact(&format!("<sip:alice@192.0.2.1>;{inst};reg-id=1"))
        .contact(&format!("<sip:alice@192.0.2.2>;{inst};reg-id=2"));
    assert_eq!(run(&mut r, &two, T0, flow(1, None)).reply.code, 400);
    // Only Contacts being registered count: a removal alongside is fine.
    let one_plus_removal = Req::new("c3", 1)
        .contact(&format!("<sip:alice@192.0.2.1;transport=tcp;ob>;{inst};reg-id=1"))
        .contact("<sip:alice@192.0.2.9>;expires=0")
        .hdr("Supported: outbound");
    assert_eq!(run(&mut r, &one_plus_removal, T0, flow(40000, Some(3))).reply.code, 200);
    // Several Contacts without reg-id, or one with it: fine.
    let plain = Req::new("c4", 1).contact("<sip:alice@192.0.2.7>").contact("<sip:alice@192.0.2.8>");
    assert_eq!(run(&mut r, &plain, T0, flow(1, None)).reply.code, 200);
    assert_eq!(r.location.len(), 3);
}

#[test]
fn escaped_push_params_binding_is_push_capable() {
    // RFC 3261 §19.1.4: pn%2Dprovider is pn-provider; the binding is as
    // push-capable as the classifier says it is.
    let mut r = Registrar::new(cfg(), 1);
    let req = Req::new("c1", 1).contact(
        "<sip:alice@192.0.2.1;transport=tcp;pn%2Dprovider=webpush;PN%2dPRID=https%3A%2F%2Fpush.example.net%2Fs%2F1;pn%2Dparam=x>",
    );
    assert_eq!(run(&mut r, &req, T0, flow(40000, Some(3))).reply.code, 200);
    let aor = Aor::parse("alice@example.com").unwrap();
    let b = &r.location.get(&aor)[0];
    assert!(b.is_push_capable());
    assert_eq!(
        b.push(),
        Some(PushParams {
            provider: "webpush".into(),
            prid: Some("https://push.example.net/s/1".into()),
            param: Some("x".into())
        })
    );
    // An empty PRID is none (R10: never pushed), as the classifier sees it.
    let req = Req::new("c2", 1).contact("<sip:alice@192.0.2.2;pn-provider=apns;pn-prid=;pn-param=T.a>");
    run(&mut r, &req, T0, flow(1, None));
    let b = r.location.get(&aor).iter().find(|b| b.uri.to_string().contains("192.0.2.2")).unwrap().clone();
    assert!(!b.is_push_capable());
    assert_eq!(b.push().unwrap().prid, None);
}
