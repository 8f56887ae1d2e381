//! REGISTER in the registrar role at node level, in virtual time: a 200
//! leaves only once its store write is acknowledged (500 when it fails), and
//! digest credentials that are not in the subscriber cache are looked up
//! without blocking (one `poll_lookup`, the request waits, then is processed
//! with the secrets, or challenged when there are none or the password is wrong);
//! 555 for missing push information (R15), 400 for several Contacts with a
//! reg-id (RFC 5626 §6), and escaped pn-* parameter names.

mod common;

use common::*;
use sip_auth::{Algorithm, AuthConfig};
use sip_msg::Method;
use sip_node::{Lookup, Secrets};

fn secrets(user: &str, password: &str) -> Secrets {
    Secrets {
        ha1_md5: sip_auth::ha1(Algorithm::Md5, user, DOMAIN, password),
        ha1_sha256: sip_auth::ha1(Algorithm::Sha256, user, DOMAIN, password),
    }
}

/// The Authorization value answering the SHA-256 challenge of `resp`.
fn authorization(resp: &Got, user: &str, password: &str, nc: u32) -> String {
    let chal = resp
        .headers("WWW-Authenticate")
        .into_iter()
        .find(|c| c.contains("algorithm=SHA-256"))
        .expect("a SHA-256 challenge")
        .to_string();
    let get = |k: &str| {
        let i = chal.find(&format!("{k}=\"")).unwrap() + k.len() + 2;
        chal[i..chal[i..].find('"').unwrap() + i].to_string()
    };
    let (realm, nonce, opaque) = (get("realm"), get("nonce"), get("opaque"));
    let ha1 = sip_auth::ha1(Algorithm::Sha256, user, &realm, password);
    let uri = format!("sip:{DOMAIN}");
    let cnonce = format!("cn{nc}");
    let qop = sip_auth::Qop { nc, cnonce: &cnonce, qop: "auth" };
    let response = sip_auth::response(Algorithm::Sha256, &ha1, b"REGISTER", &uri, &nonce, Some(qop));
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=SHA-256, cnonce=\"{cnonce}\", opaque=\"{opaque}\", qop=auth, nc={nc:08x}"
    )
}

fn auth_world() -> World {
    World::with(|c| c.auth = Some(AuthConfig::new([9; 32])))
}

/// Challenged first, then a REGISTER with credentials for a user the cache does not know.
fn register_with_credentials(w: &mut World, password: &str) -> PeerId {
    let dev = w.ua("alice", "alice", "10.0.0.5:5060");
    w.register(dev);
    assert_eq!(w.finals(dev, Method::Register), vec![401]);
    assert!(w.lookups.is_empty(), "a lookup without credentials");
    let chal = w.last_response(dev).clone();
    let auth = authorization(&chal, "alice", password, 1);
    let c = w.peers[dev].contact();
    w.register_with(dev, &[c], &["Expires: 600", &auth]);
    dev
}

#[test]
fn unknown_user_waits_for_one_lookup_then_registers() {
    let mut w = auth_world();
    let dev = register_with_credentials(&mut w, "s3cret");
    assert_eq!(w.lookups, vec![Lookup { user: "alice".into(), domain: DOMAIN.into() }]);
    assert_eq!(w.finals(dev, Method::Register), vec![401], "answered before the lookup");
    // A retransmission while waiting: no second lookup.
    w.resend(dev);
    assert_eq!(w.lookups.len(), 1);
    w.credentials(Some(secrets("alice", "s3cret")));
    let f = w.finals(dev, Method::Register);
    assert_eq!(f[1], 200, "{}", w.dump());
    assert_eq!(w.bindings("alice").len(), 1);
    // Now cached: the next REGISTER needs no lookup.
    let chal = w.responses(dev).into_iter().find(|g| g.status() == Some(401)).unwrap().clone();
    let auth = authorization(&chal, "alice", "s3cret", 2);
    let c = w.peers[dev].contact();
    w.register_with(dev, &[c], &["Expires: 600", &auth]);
    assert!(w.lookups.is_empty());
    assert_eq!(w.last_response(dev).status(), Some(200), "{}", w.dump());
}

#[test]
fn wrong_password_is_challenged_after_the_lookup() {
    let mut w = auth_world();
    let dev = register_with_credentials(&mut w, "wrong");
    assert_eq!(w.lookups.len(), 1);
    assert_eq!(w.finals(dev, Method::Register), vec![401]);
    w.credentials(Some(secrets("alice", "s3cret")));
    assert_eq!(w.finals(dev, Method::Register), vec![401, 401], "{}", w.dump());
    assert!(w.bindings("alice").is_empty());
}

#[test]
fn no_such_subscriber_is_refused_after_the_lookup() {
    let mut w = auth_world();
    let dev = register_with_credentials(&mut w, "s3cret");
    w.credentials(None);
    let f = w.finals(dev, Method::Register);
    assert_eq!(f.len(), 2, "{}", w.dump());
    assert!(matches!(f[1], 401 | 403), "{f:?}");
    assert!(w.bindings("alice").is_empty());
}

#[test]
fn the_200_waits_for_the_store_and_a_failed_write_is_500() {
    let mut w = World::default();
    w.store = StoreMode::Hold;
    let ua = w.ua("bob", "bob", "10.0.0.6:5060");
    w.register(ua);
    assert!(w.responses(ua).is_empty(), "a 200 before the write is durable");
    assert_eq!(w.node.pending_writes(), 1);
    w.commit(Ok(()));
    assert_eq!(w.finals(ua, Method::Register), vec![200]);
    w.register(ua);
    w.commit(Err("io error".into()));
    assert_eq!(w.finals(ua, Method::Register), vec![200, 500]);
    assert!(w.last_response(ua).header("Retry-After").is_some());
}

#[test]
fn r15_missing_push_information_is_555_with_reply_555() {
    let mut w = World::with(|c| {
        if let Some(p) = &mut c.push {
            p.reply_555 = true;
        }
    });
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "T1");
    // apns needs pn-param: without it the REGISTER gets 555 and no binding.
    w.register_with(dev, &["<sip:dev@10.0.0.2:5062;pn-provider=apns;pn-prid=T1>".into()], &["Expires: 600"]);
    assert_eq!(w.last_response(dev).status(), Some(555), "{}", w.dump());
    assert!(w.bindings("dev").is_empty());
}

#[test]
fn rfc5626_several_contacts_with_a_reg_id_is_400() {
    let mut w = World::default();
    let ua = w.ua("bob", "bob", "10.0.0.6:5060");
    let contacts = [
        "<sip:bob@10.0.0.6:5060;ob>;reg-id=1;+sip.instance=\"<urn:uuid:00000000-0000-4000-8000-000000000001>\""
            .to_string(),
        "<sip:bob@10.0.0.6:5061>".to_string(),
    ];
    w.register_with(ua, &contacts, &["Expires: 600", "Supported: outbound"]);
    assert_eq!(w.last_response(ua).status(), Some(400), "{}", w.dump());
    assert!(w.bindings("bob").is_empty());
}

#[test]
fn escaped_pn_names_make_a_push_binding_that_is_pushed() {
    let mut w = World::default();
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "T2");
    let c = format!("<sip:dev@10.0.0.2:5062;pn%2Dprovider=apns;pn%2Dprid=T2;pn%2Dparam={PN_PARAM}>");
    w.register_with(dev, &[c], &["Expires: 600"]);
    let r = w.last_response(dev).clone();
    assert_eq!(r.status(), Some(200), "{}", w.dump());
    assert!(r.header("Feature-Caps").is_some_and(|f| f.contains("+sip.pns=\"apns\"")), "{}", r.text);
    w.peer(dev).awake = false;
    w.peer(dev).on_push = OnPush::Nothing;
    let caller = w.ua("caller", "caller", "10.0.0.9:5070");
    w.invite(caller, "dev", 1);
    assert_eq!(w.pushes.len(), 1, "{}", w.dump());
    assert_eq!(w.pushes[0].1.request.prid, "T2");
    assert!(w.requests(dev, Method::Invite).is_empty(), "INVITE sent to a sleeping device:\n{}", w.dump());
}

#[test]
fn a_flood_of_unknown_users_costs_a_bounded_number_of_lookups() {
    let mut w = auth_world();
    // Credentials for 100 names the cache does not know, none answered yet.
    for i in 0..100 {
        let user = format!("u{i}");
        let p = w.ua(&user, &user, &format!("10.0.1.{}:5060", i + 1));
        w.register(p);
        let chal = w.last_response(p).clone();
        let auth = authorization(&chal, &user, "guess", 1);
        let c = w.peers[p].contact();
        w.register_with(p, &[c], &["Expires: 600", &auth]);
    }
    assert_eq!(w.lookups.len(), sip_node::MAX_LOOKUPS, "lookups in flight are bounded");
    // Beyond the bound the cache's answer stands: challenged at once, not parked.
    let last = w.peers.len() - 1;
    assert_eq!(w.finals(last, Method::Register), vec![401, 401], "{}", w.dump());
}
