//! REGISTER in the registrar role at node level, in virtual time: a 200
//! leaves only once its store write is acknowledged (500 when it fails), and
//! digest credentials that are not in the subscriber cache are looked up
//! without blocking (one `poll_lookup`, the request waits, then is processed
//! with the secrets, or challenged when there are none or the password is wrong).

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
