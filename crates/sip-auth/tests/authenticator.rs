//! End-to-end checks of the public API: a server challenges, a client
//! computes its answer with the RFC 7616 formulas, the server decides.

use bytes::Bytes;
use sip_auth::{
    Algorithm, AuthConfig, AuthOutcome, Authenticator, DigestParams, Qop, Which, ha1, parse_digest_params, reason,
    response,
};
use sip_msg::{HeaderName, Limits, Message, Method, Uri, parse_datagram};
use std::time::Duration;

const REALM: &str = "sip.example.com";
const T0: u64 = 1_700_000_000_000;
const TTL_MS: u64 = 60_000;

fn cfg() -> AuthConfig {
    let mut c = AuthConfig::new([0x5a; 32]);
    c.nonce_ttl = Duration::from_millis(TTL_MS);
    c
}

fn server() -> Authenticator {
    Authenticator::new(cfg())
}

/// The subscriber store: alice / "correct horse", bob / "hunter2".
fn lookup(user: &str, realm: &str, alg: Algorithm) -> Option<String> {
    match user {
        "alice" => Some(ha1(alg, user, realm, "correct horse")),
        "bob" => Some(ha1(alg, user, realm, "hunter2")),
        _ => None,
    }
}

fn register(ruri: &str) -> Message {
    Message::request(Method::Register, Uri::parse_bytes(Bytes::copy_from_slice(ruri.as_bytes())).unwrap())
}

fn with_header(mut m: Message, which: Which, value: &str) -> Message {
    m.headers.push(which.credentials_header(), Bytes::copy_from_slice(value.as_bytes()));
    m
}

fn challenge_params(v: &str) -> DigestParams {
    parse_digest_params(v.as_bytes()).unwrap().unwrap()
}

/// What a client sends after a challenge.
struct Client<'a> {
    user: &'a str,
    password: &'a str,
    method: &'a str,
    uri: &'a str,
    nc: u32,
    cnonce: &'a str,
    /// `None` leaves the algorithm parameter out.
    alg: Option<Algorithm>,
    qop: bool,
}

impl Default for Client<'_> {
    fn default() -> Self {
        Client {
            user: "alice",
            password: "correct horse",
            method: "REGISTER",
            uri: "sip:sip.example.com",
            nc: 1,
            cnonce: "0a4f113b",
            alg: Some(Algorithm::Sha256),
            qop: true,
        }
    }
}

impl Client<'_> {
    /// The Authorization value answering `challenge` (realm, nonce, opaque
    /// taken from it).
    fn answer(&self, challenge: &str) -> String {
        let p = challenge_params(challenge);
        let (realm, nonce, opaque) = (p.get("realm").unwrap(), p.get("nonce").unwrap(), p.get("opaque").unwrap());
        self.answer_with(realm, nonce, opaque)
    }
    fn answer_with(&self, realm: &str, nonce: &str, opaque: &str) -> String {
        let alg = self.alg.unwrap_or(Algorithm::Md5);
        let h = ha1(alg, self.user, realm, self.password);
        let q = self.qop.then_some(Qop { nc: self.nc, cnonce: self.cnonce, qop: "auth" });
        let r = response(alg, &h, self.method.as_bytes(), self.uri, nonce, q);
        let mut v = format!(
            "Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{}\", response=\"{r}\", opaque=\"{opaque}\"",
            self.user, self.uri
        );
        if let Some(a) = self.alg {
            v.push_str(&format!(", algorithm={a}"));
        }
        if self.qop {
            v.push_str(&format!(", qop=auth, nc={:08x}, cnonce=\"{}\"", self.nc, self.cnonce));
        }
        v
    }
}

fn check(s: &Authenticator, req: &Message, now: u64) -> AuthOutcome {
    s.check(req, REALM, Which::Authorization, now, lookup)
}

fn authenticated(user: &str) -> AuthOutcome {
    AuthOutcome::Authenticated { username: user.into() }
}

fn rejected(stale: bool, reason: &'static str) -> AuthOutcome {
    AuthOutcome::Challenge { stale, reason }
}

/// Challenge at T0, answer by `client`, checked at `now`.
fn round(s: &Authenticator, client: &Client<'_>, now: u64) -> AuthOutcome {
    let ch = s.challenge(REALM, T0, false);
    let idx = if client.alg == Some(Algorithm::Md5) || client.alg.is_none() { 1 } else { 0 };
    let req = with_header(register(client.uri), Which::Authorization, &client.answer(&ch[idx]));
    check(s, &req, now)
}

#[test]
fn round_trip_both_algorithms() {
    let s = server();
    for alg in [Algorithm::Sha256, Algorithm::Md5] {
        let c = Client { alg: Some(alg), ..Client::default() };
        assert_eq!(round(&s, &c, T0 + 10), authenticated("alice"), "{alg}");
    }
    assert_eq!(s.tracked_nonces(), 2);
}

#[test]
fn round_trip_from_the_wire() {
    let s = server();
    let ch = s.challenge(REALM, T0, false);
    let auth = Client::default().answer(&ch[0]);
    let raw = format!(
        "REGISTER sip:sip.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:alice@sip.example.com>\r\n\
         From: <sip:alice@sip.example.com>;tag=1\r\n\
         Call-ID: c1\r\n\
         CSeq: 2 REGISTER\r\n\
         Authorization: {}\r\n\
         Content-Length: 0\r\n\r\n",
        auth.replacen(", ", ",\r\n ", 3)
    );
    let req = parse_datagram(Bytes::from(raw), &Limits::default()).unwrap();
    assert_eq!(check(&s, &req, T0 + 1), authenticated("alice"));
}

#[test]
fn proxy_authorization() {
    let s = server();
    let ch = s.challenge(REALM, T0, false);
    let c = Client { method: "INVITE", uri: "sip:carol@example.net", ..Client::default() };
    let mut req = Message::request(Method::Invite, Uri::parse_bytes(&b"sip:carol@example.net"[..]).unwrap());
    req.headers.push(HeaderName::ProxyAuthorization, Bytes::from(c.answer(&ch[0])));
    assert_eq!(s.check(&req, REALM, Which::ProxyAuthorization, T0, lookup), authenticated("alice"));
    // The same credentials in the other header do not count.
    let mut req2 = Message::request(Method::Invite, Uri::parse_bytes(&b"sip:carol@example.net"[..]).unwrap());
    req2.headers.push(HeaderName::Authorization, Bytes::from(Client { nc: 2, ..c }.answer(&ch[0])));
    assert_eq!(s.check(&req2, REALM, Which::ProxyAuthorization, T0, lookup), rejected(false, reason::NO_CREDENTIALS));
}

#[test]
fn method_is_under_the_response() {
    let s = server();
    let ch = s.challenge(REALM, T0, false);
    let c = Client { method: "INVITE", ..Client::default() };
    let req = with_header(register(c.uri), Which::Authorization, &c.answer(&ch[0]));
    assert_eq!(check(&s, &req, T0), rejected(false, reason::WRONG_PASSWORD));
}

#[test]
fn wrong_password() {
    let s = server();
    let c = Client { password: "wrong", ..Client::default() };
    assert_eq!(round(&s, &c, T0), rejected(false, reason::WRONG_PASSWORD));
    assert_eq!(s.tracked_nonces(), 0);
}

#[test]
fn unknown_user() {
    let s = server();
    let c = Client { user: "mallory", ..Client::default() };
    assert_eq!(round(&s, &c, T0), rejected(false, reason::UNKNOWN_USER));
    // A user without a stored HA1 for this algorithm is unknown too.
    let only_md5 = |u: &str, r: &str, a: Algorithm| (a == Algorithm::Md5).then(|| lookup(u, r, a)).flatten();
    let ch = s.challenge(REALM, T0, false);
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &Client::default().answer(&ch[0]));
    assert_eq!(s.check(&req, REALM, Which::Authorization, T0, only_md5), rejected(false, reason::UNKNOWN_USER));
}

#[test]
fn replayed_nonce_count() {
    let s = server();
    let ch = s.challenge(REALM, T0, false);
    let req1 = with_header(register("sip:sip.example.com"), Which::Authorization, &Client::default().answer(&ch[0]));
    assert_eq!(check(&s, &req1, T0), authenticated("alice"));
    // The very same request again is a replay; the client knows the
    // password, so it gets a stale challenge.
    assert_eq!(check(&s, &req1, T0 + 1), rejected(true, reason::REPLAYED_NONCE));
    // Increasing nc is accepted, each once.
    for nc in [2, 3, 7] {
        let c = Client { nc, ..Client::default() };
        let req = with_header(register(c.uri), Which::Authorization, &c.answer(&ch[0]));
        assert_eq!(check(&s, &req, T0 + 2), authenticated("alice"), "nc={nc}");
        assert_eq!(check(&s, &req, T0 + 2), rejected(true, reason::REPLAYED_NONCE), "nc={nc} again");
    }
    // A lower nc than the last accepted one is a replay.
    let c = Client { nc: 5, ..Client::default() };
    let req = with_header(register(c.uri), Which::Authorization, &c.answer(&ch[0]));
    assert_eq!(check(&s, &req, T0 + 3), rejected(true, reason::REPLAYED_NONCE));
    // nc=0 is never accepted.
    let ch2 = s.challenge(REALM, T0, false);
    let c = Client { nc: 0, ..Client::default() };
    let req = with_header(register(c.uri), Which::Authorization, &c.answer(&ch2[0]));
    assert_eq!(check(&s, &req, T0 + 3), rejected(true, reason::REPLAYED_NONCE));
}

#[test]
fn expired_nonce_is_stale_only_with_the_right_password() {
    let s = server();
    let late = T0 + TTL_MS + 1;
    assert_eq!(round(&s, &Client::default(), T0 + TTL_MS), authenticated("alice"));
    assert_eq!(round(&s, &Client::default(), late), rejected(true, reason::EXPIRED_NONCE));
    let wrong = Client { password: "nope", ..Client::default() };
    assert_eq!(round(&s, &wrong, late), rejected(false, reason::WRONG_PASSWORD));
    let unknown = Client { user: "mallory", ..Client::default() };
    assert_eq!(round(&s, &unknown, late), rejected(false, reason::UNKNOWN_USER));
}

#[test]
fn tampered_nonce_is_rejected_without_stale() {
    let s = server();
    let ch = s.challenge(REALM, T0, false);
    let p = challenge_params(&ch[0]);
    let nonce = p.get("nonce").unwrap();
    let opaque = p.get("opaque").unwrap();
    for i in [0, 7, 20, nonce.len() - 1] {
        let mut b = nonce.as_bytes().to_vec();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(b).unwrap();
        // The client computes a right response over the tampered nonce.
        let v = Client::default().answer_with(REALM, &tampered, opaque);
        let req = with_header(register("sip:sip.example.com"), Which::Authorization, &v);
        assert_eq!(check(&s, &req, T0), rejected(false, reason::BAD_NONCE), "flip at {i}");
    }
    // A nonce from another server secret, or for another realm.
    let other = Authenticator::new(AuthConfig::new([1; 32]));
    let foreign = challenge_params(&other.challenge(REALM, T0, false)[0]).get("nonce").unwrap().to_owned();
    let v = Client::default().answer_with(REALM, &foreign, opaque);
    assert_eq!(
        check(&s, &with_header(register("sip:sip.example.com"), Which::Authorization, &v), T0),
        rejected(false, reason::BAD_NONCE)
    );
    let other_realm =
        challenge_params(&s.challenge("other.example.com", T0, false)[0]).get("nonce").unwrap().to_owned();
    let v = Client::default().answer_with(REALM, &other_realm, opaque);
    assert_eq!(
        check(&s, &with_header(register("sip:sip.example.com"), Which::Authorization, &v), T0),
        rejected(false, reason::BAD_NONCE)
    );
}

#[test]
fn nonce_from_the_future_is_rejected_without_stale() {
    let s = server();
    let ch = s.challenge(REALM, T0 + 5_000, false);
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &Client::default().answer(&ch[0]));
    assert_eq!(check(&s, &req, T0), rejected(false, reason::FUTURE_NONCE));
}

#[test]
fn realm_mismatch() {
    let s = server();
    let ch = s.challenge("other.example.com", T0, false);
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &Client::default().answer(&ch[0]));
    assert_eq!(check(&s, &req, T0), rejected(false, reason::REALM_MISMATCH));
    // The realm compares exactly.
    let ch = s.challenge(&REALM.to_uppercase(), T0, false);
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &Client::default().answer(&ch[0]));
    assert_eq!(check(&s, &req, T0), rejected(false, reason::REALM_MISMATCH));
}

#[test]
fn uri_mismatch() {
    let s = server();
    let ch = s.challenge(REALM, T0, false);
    let c = Client { uri: "sip:other.example.com", ..Client::default() };
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &c.answer(&ch[0]));
    assert_eq!(check(&s, &req, T0), rejected(false, reason::URI_MISMATCH));
    // Surrounding white space inside the quotes is trimmed; the response is
    // computed over the uri as sent.
    let c = Client { uri: " sip:sip.example.com ", ..Client::default() };
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &c.answer(&ch[0]));
    assert_eq!(check(&s, &req, T0), authenticated("alice"));
}

#[test]
fn algorithm_absent_means_md5() {
    let s = server();
    let c = Client { alg: None, ..Client::default() };
    assert!(!c.answer(&s.challenge(REALM, T0, false)[1]).contains("algorithm"));
    assert_eq!(round(&s, &c, T0), authenticated("alice"));
    // With MD5 disabled, the same answer is refused.
    let s = Authenticator::new(AuthConfig { algorithms: vec![Algorithm::Sha256], ..cfg() });
    let ch = s.challenge(REALM, T0, false);
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &c.answer(&ch[0]));
    assert_eq!(check(&s, &req, T0), rejected(false, reason::UNSUPPORTED_ALGORITHM));
}

#[test]
fn sess_algorithms_are_refused() {
    let s = server();
    let ch = s.challenge(REALM, T0, false);
    let v = Client::default().answer(&ch[0]).replace("algorithm=SHA-256", "algorithm=SHA-256-sess");
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &v);
    assert_eq!(check(&s, &req, T0), rejected(false, reason::UNSUPPORTED_ALGORITHM));
}

#[test]
fn challenge_order_and_format() {
    // The configured order is the challenge order.
    let md5_first = Authenticator::new(AuthConfig { algorithms: vec![Algorithm::Md5, Algorithm::Sha256], ..cfg() });
    let ch = md5_first.challenge_with_random(REALM, T0, false, [7; 8]);
    assert!(ch[0].contains("algorithm=MD5") && ch[1].contains("algorithm=SHA-256"));
    let s = Authenticator::new(AuthConfig { algorithms: vec![Algorithm::Sha256, Algorithm::Md5], ..cfg() });
    let ch = s.challenge_with_random(REALM, T0, false, [7; 8]);
    assert_eq!(ch.len(), 2);
    let p0 = challenge_params(&ch[0]);
    let p1 = challenge_params(&ch[1]);
    assert_eq!(p0.get("algorithm"), Some("SHA-256"));
    assert_eq!(p1.get("algorithm"), Some("MD5"));
    let (nonce, opaque) = (p0.get("nonce").unwrap(), p0.get("opaque").unwrap());
    assert_eq!(p1.get("nonce"), Some(nonce));
    assert_eq!(
        ch[0],
        format!(
            "Digest realm=\"sip.example.com\", nonce=\"{nonce}\", opaque=\"{opaque}\", algorithm=SHA-256, qop=\"auth\""
        )
    );
    assert_eq!(
        ch[1],
        format!(
            "Digest realm=\"sip.example.com\", nonce=\"{nonce}\", opaque=\"{opaque}\", algorithm=MD5, qop=\"auth\""
        )
    );
    let stale = s.challenge(REALM, T0, true);
    assert!(stale.iter().all(|c| c.ends_with(", stale=true")));
    // Fresh nonces each time.
    assert_ne!(challenge_params(&stale[0]).get("nonce"), Some(nonce));
    // One algorithm, one header.
    let md5 = Authenticator::new(AuthConfig { algorithms: vec![Algorithm::Md5], ..cfg() });
    let ch = md5.challenge(REALM, T0, false);
    assert_eq!(ch.len(), 1);
    assert!(ch[0].contains("algorithm=MD5"));
    assert_eq!(md5.algorithms(), &[Algorithm::Md5]);
}

#[test]
fn add_challenges_builds_401_and_407() {
    let s = server();
    let req = register("sip:sip.example.com");
    for which in [Which::Authorization, Which::ProxyAuthorization] {
        let mut resp = req.response(which.status(), None, Some("totag"));
        s.add_challenges(&mut resp, REALM, which, T0, true);
        assert_eq!(resp.headers.count(&which.challenge_header()), 2);
        let name = which.challenge_header();
        let values: Vec<&str> = resp.headers.get_all(&name).map(|v| std::str::from_utf8(v).unwrap()).collect();
        assert!(values[0].contains("algorithm=SHA-256") && values[0].ends_with("stale=true"));
        assert!(values[1].contains("algorithm=MD5"));
    }
    assert_eq!(Which::Authorization.status(), 401);
    assert_eq!(Which::ProxyAuthorization.status(), 407);
    assert_eq!(Which::Authorization.credentials_header(), HeaderName::Authorization);
    assert_eq!(Which::ProxyAuthorization.credentials_header(), HeaderName::ProxyAuthorization);
    assert_eq!(Which::Authorization.challenge_header(), HeaderName::WwwAuthenticate);
    assert_eq!(Which::ProxyAuthorization.challenge_header(), HeaderName::ProxyAuthenticate);
}

#[test]
fn no_credentials_and_other_schemes() {
    let s = server();
    assert_eq!(check(&s, &register("sip:sip.example.com"), T0), rejected(false, reason::NO_CREDENTIALS));
    // RFC 4475 regaut01: an unknown scheme is answered with a Digest challenge.
    let req =
        with_header(register("sip:sip.example.com"), Which::Authorization, "NoOneKnowsThisScheme opaque-data=here");
    assert_eq!(check(&s, &req, T0), rejected(false, reason::NO_CREDENTIALS));
    // Another scheme next to good Digest credentials does not get in the way.
    let ch = s.challenge(REALM, T0, false);
    let req = with_header(req, Which::Authorization, &Client::default().answer(&ch[0]));
    assert_eq!(check(&s, &req, T0), authenticated("alice"));
}

#[test]
fn malformed_credentials() {
    let s = server();
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, "Digest username=\"alice");
    assert_eq!(check(&s, &req, T0), rejected(false, reason::MALFORMED));
    let ch = s.challenge(REALM, T0, false);
    let dup = format!("{}, nonce=\"x\"", Client::default().answer(&ch[0]));
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &dup);
    assert_eq!(check(&s, &req, T0), rejected(false, reason::MALFORMED));
}

#[test]
fn multiple_authorization_headers_pick_our_realm() {
    let s = server();
    let theirs = s.challenge("other.example.com", T0, false);
    let ours = s.challenge(REALM, T0, false);
    let mut req = register("sip:sip.example.com");
    req = with_header(req, Which::Authorization, &Client::default().answer(&theirs[0]));
    req = with_header(req, Which::Authorization, "Digest garbage");
    req = with_header(req, Which::Authorization, &Client::default().answer(&ours[0]));
    assert_eq!(check(&s, &req, T0), authenticated("alice"));
    // The other realm's credentials are right for that realm.
    assert_eq!(s.check(&req, "other.example.com", Which::Authorization, T0, lookup), authenticated("alice"));
}

#[test]
fn opaque_must_be_echoed() {
    let s = server();
    let ch = s.challenge(REALM, T0, false);
    let v = Client::default().answer(&ch[0]);
    let p = challenge_params(&ch[0]);
    let opaque = p.get("opaque").unwrap();
    let missing = v.replace(&format!(", opaque=\"{opaque}\""), "");
    assert!(!missing.contains("opaque"));
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &missing);
    assert_eq!(check(&s, &req, T0), rejected(false, reason::OPAQUE_MISMATCH));
    let changed = v.replace(opaque, "AAAAAAAAAAAAAAAA");
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &changed);
    assert_eq!(check(&s, &req, T0), rejected(false, reason::OPAQUE_MISMATCH));
}

#[test]
fn qop_rules() {
    let s = server();
    let legacy = Client { qop: false, ..Client::default() };
    assert_eq!(round(&s, &legacy, T0), rejected(false, reason::MISSING_QOP));
    let ch = s.challenge(REALM, T0, false);
    let v = Client::default().answer(&ch[0]).replace("qop=auth", "qop=auth-int");
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &v);
    assert_eq!(check(&s, &req, T0), rejected(false, reason::UNSUPPORTED_QOP));
    // qop compares case-insensitively; the response covers it as sent.
    let c = Client::default();
    let p = challenge_params(&ch[0]);
    let (nonce, opaque) = (p.get("nonce").unwrap(), p.get("opaque").unwrap());
    let h = ha1(Algorithm::Sha256, "alice", REALM, "correct horse");
    let r =
        response(Algorithm::Sha256, &h, b"REGISTER", c.uri, nonce, Some(Qop { nc: 1, cnonce: c.cnonce, qop: "AUTH" }));
    let v = format!(
        "Digest username=\"alice\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{}\", response=\"{}\", \
         opaque=\"{opaque}\", algorithm=SHA-256, qop=AUTH, nc=00000001, cnonce=\"{}\"",
        c.uri,
        r.to_uppercase(),
        c.cnonce
    );
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &v);
    assert_eq!(check(&s, &req, T0), authenticated("alice"));
}

#[test]
fn without_qop_when_allowed_a_nonce_works_once() {
    let s = Authenticator::new(AuthConfig { allow_no_qop: true, ..cfg() });
    let ch = s.challenge(REALM, T0, false);
    let legacy = Client { qop: false, ..Client::default() };
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &legacy.answer(&ch[0]));
    assert_eq!(check(&s, &req, T0), authenticated("alice"));
    assert_eq!(check(&s, &req, T0), rejected(true, reason::REPLAYED_NONCE));
    // The same nonce with qop afterwards is refused too.
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &Client::default().answer(&ch[0]));
    assert_eq!(check(&s, &req, T0), rejected(true, reason::REPLAYED_NONCE));
    // qop still works on fresh nonces.
    assert_eq!(round(&s, &Client::default(), T0), authenticated("alice"));
}

#[test]
fn not_a_request() {
    let s = server();
    let resp = register("sip:sip.example.com").response(200, None, None);
    assert_eq!(check(&s, &resp, T0), rejected(false, reason::NOT_A_REQUEST));
}

#[test]
fn tracker_is_bounded_in_the_authenticator() {
    let s = Authenticator::new(AuthConfig { max_tracked_nonces: 3, ..cfg() });
    let mut nonces = Vec::new();
    for i in 0..5u64 {
        let ch = s.challenge(REALM, T0 + i, false);
        let req = with_header(register("sip:sip.example.com"), Which::Authorization, &Client::default().answer(&ch[0]));
        assert_eq!(check(&s, &req, T0 + 10), authenticated("alice"));
        nonces.push(ch);
        assert!(s.tracked_nonces() <= 3);
    }
    // The first nonce was evicted while live: refused (stale), never replayed.
    let c = Client { nc: 2, ..Client::default() };
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &c.answer(&nonces[0][0]));
    assert_eq!(check(&s, &req, T0 + 11), rejected(true, reason::FORGOTTEN_NONCE));
    // The last one is still tracked exactly.
    let req = with_header(register("sip:sip.example.com"), Which::Authorization, &c.answer(&nonces[4][0]));
    assert_eq!(check(&s, &req, T0 + 11), authenticated("alice"));
}

#[test]
fn shared_across_threads() {
    let s = std::sync::Arc::new(server());
    let ch = s.challenge(REALM, T0, false);
    let handles: Vec<_> = (1..=8u32)
        .map(|nc| {
            let s = s.clone();
            let v = Client { nc, ..Client::default() }.answer(&ch[0]);
            std::thread::spawn(move || {
                let req = with_header(register("sip:sip.example.com"), Which::Authorization, &v);
                (check(&s, &req, T0).is_authenticated(), check(&s, &req, T0).is_authenticated())
            })
        })
        .collect();
    let mut firsts = 0;
    for h in handles {
        let (first, again) = h.join().unwrap();
        // A request's second use is always a replay; its first may lose to
        // a higher nc that got there earlier, but some first use wins.
        assert!(!again);
        firsts += usize::from(first);
    }
    assert!(firsts >= 1);
    assert_eq!(s.tracked_nonces(), 1);
}
