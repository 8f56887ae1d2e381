//! Non-INVITE requests: no CANCEL, no Timer C, the first 2xx is final at
//! once, no provisional but 100 upstream, never a 408 upstream (RFC 4320).

mod common;

use common::*;
use sip_msg::Method;
use sip_proxy::{Action, ContextConfig, ProxyContext};

fn message(ts: &[(&str, u16)]) -> ProxyContext {
    ProxyContext::new(Method::Message, targets(ts), ContextConfig::default(), t0()).0
}

fn ok(code: u16) -> sip_msg::Message {
    resp_to(code, "MESSAGE", "")
}

#[test]
fn first_2xx_is_final_and_the_others_finish_unheard() {
    let t = t0();
    let mut cx = message(&[("a", 1000), ("b", 1000), ("c", 1000)]);
    let a = cx.on_response(0, ok(200), t);
    assert_eq!(a, vec![Action::Forward { response: Box::new(ok(200)) }]);
    assert!(cancels(&a).is_empty());
    assert!(!cx.is_done());
    assert!(cx.on_response(1, ok(202), t).is_empty(), "a second 2xx is discarded");
    assert!(cx.on_response(2, ok(404), t).is_empty());
    assert!(cx.is_done());
    assert_eq!(cx.final_status(), Some(200));
}

#[test]
fn no_timer_c_and_no_provisional_forwarding() {
    let t = t0();
    let mut cx = message(&[("a", 1000)]);
    assert_eq!(cx.poll_timeout(), None);
    assert!(cx.on_response(0, ok(100), t).is_empty());
    assert!(cx.on_response(0, ok(180), t).is_empty());
    assert_eq!(cx.poll_timeout(), None);
}

#[test]
fn cancel_has_no_effect() {
    let mut cx = message(&[("a", 1000)]);
    assert!(cx.on_cancel(t0()).is_empty());
    assert!(!cx.is_cancelled());
}

#[test]
fn six_xx_does_not_cancel_and_waits_for_the_rest() {
    let t = t0();
    let mut cx = message(&[("a", 1000), ("b", 1000), ("low", 10)]);
    assert!(cx.on_response(0, ok(603), t).is_empty());
    let a = cx.on_response(1, ok(404), t);
    assert_eq!(forwarded(&a), [603]);
    assert!(starts(&a).is_empty());
}

#[test]
fn only_timeouts_send_nothing_upstream() {
    let t = t0();
    let mut cx = message(&[("a", 1000), ("b", 1000)]);
    cx.on_branch_timeout(0, t);
    assert!(cx.on_branch_timeout(1, t).is_empty());
    assert!(cx.is_done());
    assert_eq!(cx.final_status(), None);
}

#[test]
fn a_408_is_passed_over_for_another_answer() {
    let t = t0();
    let mut cx = message(&[("a", 1000), ("b", 1000)]);
    cx.on_branch_timeout(0, t);
    assert_eq!(responded(&cx.on_branch_error(1, t)), [500]);
}
