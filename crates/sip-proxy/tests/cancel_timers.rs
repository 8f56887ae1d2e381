//! Upstream CANCEL (§16.10), Timer C (§16.6 step 11, §16.8) and the guard
//! on cancelled branches that never answer (§9.1).

mod common;

use common::*;
use sip_proxy::{Action, ContextConfig};

#[test]
fn cancel_during_ringing_cancels_all_and_487_goes_up() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000), ("b", 1000), ("c", 500)], t);
    cx.on_response(0, resp(180), t);
    cx.on_response(1, resp(180), t);
    let a = cx.on_cancel(t + secs(5));
    assert_eq!(cancels(&a), [0, 1]);
    assert!(upstream(&a).is_empty());
    assert!(cx.is_cancelled());
    assert!(!cx.accepts_targets());
    assert!(cx.on_response(0, resp(487), t + secs(5)).is_empty());
    let a = cx.on_response(1, resp(487), t + secs(5));
    assert_eq!(forwarded(&a), [487]);
    assert!(starts(&a).is_empty(), "the 0.5 group never starts");
    assert!(cx.is_done());
    assert!(cx.on_cancel(t + secs(6)).is_empty(), "a second CANCEL does nothing");
}

#[test]
fn cancel_before_any_provisional_still_emits_cancel_branch() {
    // The transaction layer defers the CANCEL until a provisional (§9.1).
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000)], t);
    assert_eq!(cx.on_cancel(t), vec![Action::CancelBranch { branch: 0 }]);
    // No provisional ever came: Timer B → as if 408; upstream gets 487.
    let a = cx.on_branch_timeout(0, t + secs(32));
    assert_eq!(a, vec![Action::Respond { code: 487, reason: None }]);
}

#[test]
fn late_2xx_after_cancel_is_forwarded_and_no_487_follows() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000), ("b", 1000)], t);
    cx.on_response(0, resp(180), t);
    cx.on_response(1, resp(180), t);
    cx.on_cancel(t);
    let a = cx.on_response(0, resp(200), t);
    assert_eq!(a, vec![Action::Forward { response: Box::new(resp(200)) }]);
    assert!(cx.on_response(1, resp(487), t).is_empty());
    assert!(cx.is_done());
    assert_eq!(cx.final_status(), Some(200));
}

#[test]
fn cancel_after_the_final_does_nothing() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000)], t);
    cx.on_response(0, resp(200), t);
    assert!(cx.on_cancel(t).is_empty());
    assert!(!cx.is_cancelled());
}

#[test]
fn timer_c_fires_cancel_and_is_reset_by_provisionals() {
    let t = t0();
    let c = ContextConfig::default().timer_c;
    let (mut cx, _) = invite(&[("a", 1000)], t);
    assert_eq!(cx.poll_timeout(), Some(t + c));
    // 100 does not reset Timer C; 180 does.
    cx.on_response(0, resp(100), t + secs(10));
    assert_eq!(cx.poll_timeout(), Some(t + c));
    cx.on_response(0, resp(180), t + secs(100));
    assert_eq!(cx.poll_timeout(), Some(t + secs(100) + c));
    assert!(cx.handle_timeout(t + c).is_empty(), "the old deadline no longer fires");
    let a = cx.handle_timeout(t + secs(100) + c);
    assert_eq!(a, vec![Action::CancelBranch { branch: 0 }]);
    // The branch then ends with a 487, which is what goes upstream.
    let a = cx.on_response(0, resp(487), t + secs(100) + c);
    assert_eq!(forwarded(&a), [487]);
    assert!(cx.is_done());
    assert_eq!(cx.poll_timeout(), None);
}

#[test]
fn timer_c_without_provisional_counts_as_408() {
    let t = t0();
    let cfg = ContextConfig { timer_c: secs(20), ..ContextConfig::default() };
    let (mut cx, _) = sip_proxy::ProxyContext::new(sip_msg::Method::Invite, targets(&[("a", 1000)]), cfg, t);
    let a = cx.handle_timeout(t + secs(20));
    assert_eq!(cancels(&a), [0], "the txn layer cancels if a provisional ever comes");
    assert_eq!(responded(&a), [408]);
    assert!(cx.is_done());
}

#[test]
fn timer_c_408_moves_on_to_the_next_group() {
    let t = t0();
    let cfg = ContextConfig { timer_c: secs(20), ..ContextConfig::default() };
    let (mut cx, _) =
        sip_proxy::ProxyContext::new(sip_msg::Method::Invite, targets(&[("a", 1000), ("b", 500)]), cfg, t);
    let a = cx.handle_timeout(t + secs(20));
    assert_eq!(starts(&a), [(1, "b".to_string())]);
    assert!(upstream(&a).is_empty());
}

#[test]
fn cancelled_branch_that_never_answers_is_given_up() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000)], t);
    cx.on_response(0, resp(180), t);
    cx.on_cancel(t + secs(1));
    let guard = t + secs(1) + ContextConfig::default().cancel_timeout;
    assert_eq!(cx.poll_timeout(), Some(guard));
    let a = cx.handle_timeout(guard);
    assert_eq!(responded(&a), [487], "the upstream CANCEL's 487 beats the synthetic 408");
    assert!(cx.is_done());
}

#[test]
fn cancel_guard_starts_when_the_deferred_cancel_goes_out() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000)], t);
    cx.on_cancel(t);
    assert_eq!(cx.poll_timeout(), None, "no Timer C after cancel, no guard before a provisional");
    cx.on_response(0, resp(100), t + secs(2));
    assert_eq!(cx.poll_timeout(), Some(t + secs(2) + ContextConfig::default().cancel_timeout));
}
