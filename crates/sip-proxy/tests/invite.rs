//! INVITE response processing: provisionals, 2xx, 6xx, best-response
//! choice, challenge aggregation, timeouts, transport errors, late 2xx.

mod common;

use common::*;
use sip_msg::{HeaderName, Method};
use sip_proxy::{Action, ContextConfig, ProxyContext};

#[test]
fn no_targets_answers_480() {
    let (cx, a) = invite(&[], t0());
    assert_eq!(a, vec![Action::Respond { code: 480, reason: None }]);
    assert!(cx.is_done());
    assert_eq!(cx.final_status(), Some(480));
}

#[test]
fn trying_is_absorbed_other_provisionals_forwarded() {
    let t = t0();
    let (mut cx, a) = invite(&[("a", 1000)], t);
    assert_eq!(starts(&a), vec![(0, "a".to_string())]);
    assert!(cx.on_response(0, resp(100), t).is_empty());
    let a = cx.on_response(0, resp(180), t);
    assert_eq!(forwarded(&a), [180]);
    let a = cx.on_response(0, resp(183), t);
    assert_eq!(a, vec![Action::Forward { response: Box::new(resp(183)) }], "forwarded unchanged");
    assert!(!cx.is_done());
}

#[test]
fn busy_and_ok_forwards_only_the_200() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000), ("b", 1000)], t);
    assert!(cx.on_response(0, resp(486), t).is_empty(), "stored, b still pending");
    let a = cx.on_response(1, resp(200), t);
    assert_eq!(upstream(&a), [200]);
    assert!(cancels(&a).is_empty(), "nothing left to cancel");
    assert!(cx.is_done());
    assert_eq!(cx.final_status(), Some(200));
}

#[test]
fn every_forked_2xx_is_forwarded_and_the_first_cancels_the_rest() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000), ("b", 1000), ("c", 1000)], t);
    cx.on_response(0, resp(180), t);
    cx.on_response(1, resp(180), t);
    let a = cx.on_response(0, resp(200), t);
    assert_eq!(forwarded(&a), [200]);
    assert_eq!(cancels(&a), [1, 2]);
    assert!(!cx.is_done(), "cancelled branches still pending");
    // b answered 200 before the CANCEL reached it: forwarded too.
    let a = cx.on_response(1, resp(200), t);
    assert_eq!(a, vec![Action::Forward { response: Box::new(resp(200)) }]);
    // c ends with 487: nothing goes upstream, the context is done.
    assert!(cx.on_response(2, resp(487), t).is_empty());
    assert!(cx.is_done());
    assert_eq!(cx.final_status(), Some(200));
    // A further 2xx on an ended branch (RFC 6026) still goes upstream.
    assert_eq!(forwarded(&cx.on_response(0, resp(200), t)), [200]);
}

#[test]
fn provisional_after_the_final_is_not_forwarded() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000), ("b", 1000)], t);
    cx.on_response(0, resp(200), t);
    assert!(cx.on_response(1, resp(180), t).is_empty());
}

#[test]
fn six_xx_cancels_the_others_and_wins_after_they_end() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000), ("b", 1000)], t);
    cx.on_response(1, resp(180), t);
    let a = cx.on_response(0, resp(603), t);
    assert_eq!(a, vec![Action::CancelBranch { branch: 1 }], "603 is held back");
    let a = cx.on_response(1, resp(487), t);
    assert_eq!(forwarded(&a), [603]);
    assert!(cx.is_done());
}

#[test]
fn responses_after_a_branch_final_are_ignored_except_2xx() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000), ("b", 1000)], t);
    cx.on_response(0, resp(486), t);
    assert!(cx.on_response(0, resp(180), t).is_empty());
    assert!(cx.on_response(0, resp(404), t).is_empty());
    let a = cx.on_response(0, resp(200), t);
    assert_eq!(forwarded(&a), [200]);
    assert_eq!(cancels(&a), [1]);
}

#[test]
fn lowest_class_is_chosen() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000), ("b", 1000), ("c", 1000)], t);
    cx.on_response(0, resp(500), t);
    cx.on_response(1, resp(486), t);
    let a = cx.on_response(2, resp(302), t);
    assert_eq!(upstream(&a), [302]);
}

#[test]
fn challenges_of_401_and_407_are_merged_into_one_407() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000), ("b", 1000), ("c", 1000)], t);
    let www = "WWW-Authenticate: Digest realm=\"a.example\", nonce=\"n1\"\r\n";
    let proxy = "Proxy-Authenticate: Digest realm=\"b.example\", nonce=\"n2\"\r\n";
    cx.on_response(0, resp_to(401, "INVITE", www), t);
    cx.on_response(1, resp(486), t);
    let a = cx.on_response(2, resp_to(407, "INVITE", proxy), t);
    let [Action::Forward { response }] = a.as_slice() else { panic!("{a:?}") };
    assert_eq!(response.status(), Some(407));
    let p: Vec<_> = response.headers.get_all(&HeaderName::ProxyAuthenticate).collect();
    let w: Vec<_> = response.headers.get_all(&HeaderName::WwwAuthenticate).collect();
    assert_eq!(p, ["Digest realm=\"b.example\", nonce=\"n2\""]);
    assert_eq!(w, ["Digest realm=\"a.example\", nonce=\"n1\""]);
    // The merged challenge sits right after the 407's own.
    let names: Vec<_> = response.headers.iter().map(|h| h.name.as_str()).collect();
    let i = names.iter().position(|n| *n == "Proxy-Authenticate").unwrap();
    assert_eq!(names[i + 1], "WWW-Authenticate");
}

#[test]
fn a_chosen_503_becomes_500() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000)], t);
    let a = cx.on_response(0, resp_to(503, "INVITE", "Retry-After: 30\r\n"), t);
    assert_eq!(a, vec![Action::Respond { code: 500, reason: None }]);
    assert_eq!(cx.final_status(), Some(500));
}

#[test]
fn transport_error_counts_as_503() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000), ("b", 1000)], t);
    assert!(cx.on_branch_error(0, t).is_empty());
    assert_eq!(responded(&cx.on_branch_error(1, t)), [500]);
}

#[test]
fn all_branches_time_out_gives_408() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000), ("b", 1000)], t);
    assert!(cx.on_branch_timeout(0, t + secs(32)).is_empty());
    let a = cx.on_branch_timeout(1, t + secs(32));
    assert_eq!(a, vec![Action::Respond { code: 408, reason: None }]);
    assert!(cx.is_done());
}

#[test]
fn a_timeout_loses_to_a_received_response() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000), ("b", 1000)], t);
    cx.on_branch_timeout(0, t);
    assert_eq!(forwarded(&cx.on_response(1, resp(486), t)), [486]);
}

#[test]
fn timeout_or_error_on_an_ended_branch_is_ignored() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000), ("b", 1000)], t);
    cx.on_response(0, resp(486), t);
    assert!(cx.on_branch_timeout(0, t).is_empty());
    assert!(cx.on_branch_error(0, t).is_empty());
    assert!(cx.on_branch_timeout(7, t).is_empty(), "unknown branch");
    assert_eq!(forwarded(&cx.on_response(1, resp(404), t)), [486]);
}

#[test]
fn target_ids_are_kept_per_branch() {
    let (cx, _) = ProxyContext::new(Method::Invite, targets(&[("x", 500), ("y", 900)]), ContextConfig::default(), t0());
    assert_eq!(cx.target_id(0), Some("y"));
    assert_eq!(cx.target_id(1), None, "the 0.5 group has not started");
    assert!(cx.is_pending(0));
    assert_eq!(cx.branch_count(), 1);
}
