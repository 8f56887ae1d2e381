//! q-value groups, sequential forking, late targets (RFC 8599 push) and
//! hold slots.

mod common;

use common::*;
use sip_msg::Method;
use sip_proxy::{ContextConfig, ProxyContext};

#[test]
fn q_groups_are_tried_in_sequence() {
    let t = t0();
    let (mut cx, a) = invite(&[("low", 500), ("a", 1000), ("b", 1000)], t);
    assert_eq!(started_ids(&a), ["a", "b"]);
    assert!(cx.on_response(0, resp(486), t).is_empty());
    let a = cx.on_response(1, resp(480), t);
    assert_eq!(starts(&a), [(2, "low".to_string())], "0.5 only after both 1.0 failed");
    assert!(upstream(&a).is_empty());
    let a = cx.on_response(2, resp(404), t);
    assert_eq!(forwarded(&a), [486], "best over all groups");
}

#[test]
fn a_2xx_or_6xx_ends_the_search() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000), ("low", 500)], t);
    let a = cx.on_response(0, resp(200), t);
    assert!(starts(&a).is_empty());
    assert!(cx.is_done());

    let (mut cx, _) = invite(&[("a", 1000), ("low", 500)], t);
    let a = cx.on_response(0, resp(600), t);
    assert!(starts(&a).is_empty());
    assert_eq!(forwarded(&a), [600]);
}

#[test]
fn sequential_mode_tries_one_target_at_a_time() {
    let t = t0();
    let cfg = ContextConfig { parallel: false, ..ContextConfig::default() };
    let (mut cx, a) = ProxyContext::new(Method::Invite, targets(&[("a", 1000), ("b", 1000)]), cfg, t);
    assert_eq!(started_ids(&a), ["a"]);
    let a = cx.on_branch_timeout(0, t);
    assert_eq!(started_ids(&a), ["b"]);
}

#[test]
fn late_target_after_push_wake_up_joins_the_running_group() {
    let t = t0();
    let (mut cx, _) = invite(&[("desk", 1000), ("voicemail", 100)], t);
    cx.hold(1); // push sent to the phone
    cx.on_response(0, resp(180), t);
    // The phone registered: its branch starts at once, beside the desk.
    let a = cx.add_targets(targets(&[("phone", 1000)]), t + secs(3));
    assert_eq!(starts(&a), [(1, "phone".to_string())]);
    assert!(cx.release(1, t + secs(3)).is_empty());
    let a = cx.on_response(1, resp(200), t + secs(5));
    assert_eq!(forwarded(&a), [200]);
    assert_eq!(cancels(&a), [0]);
}

#[test]
fn late_target_of_lower_q_waits_for_its_group() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000)], t);
    assert!(cx.add_targets(targets(&[("low", 300)]), t).is_empty());
    let a = cx.on_response(0, resp(486), t);
    assert_eq!(started_ids(&a), ["low"]);
}

#[test]
fn add_targets_is_refused_once_stopped() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000), ("b", 1000)], t);
    cx.on_cancel(t);
    assert!(cx.add_targets(targets(&[("c", 1000)]), t).is_empty());

    let (mut cx, _) = invite(&[("a", 1000), ("b", 1000)], t);
    cx.on_response(0, resp(200), t);
    assert!(!cx.accepts_targets());
    assert!(cx.add_targets(targets(&[("c", 1000)]), t).is_empty());

    let (mut cx, _) = invite(&[("a", 1000), ("b", 1000)], t);
    cx.on_response(0, resp(603), t);
    assert!(cx.add_targets(targets(&[("c", 1000)]), t).is_empty());
    assert_eq!(cx.branch_count(), 2);
}

#[test]
fn held_context_does_not_conclude_then_release_gives_480() {
    let t = t0();
    let (mut cx, _) = invite(&[("desk", 1000)], t);
    cx.hold(1);
    // The only branch fails while a woken device may still register.
    assert!(cx.on_branch_timeout(0, t + secs(32)).is_empty());
    assert!(!cx.is_done());
    // The device never registered.
    let a = cx.release(1, t + secs(40));
    assert_eq!(responded(&a), [480]);
    assert!(cx.is_done());
}

#[test]
fn release_prefers_a_received_answer_over_480() {
    let t = t0();
    let (mut cx, _) = invite(&[("desk", 1000)], t);
    cx.hold(1);
    assert!(cx.on_response(0, resp(486), t).is_empty());
    assert_eq!(forwarded(&cx.release(1, t)), [486]);
}

#[test]
fn release_after_a_late_branch_answered_200_adds_nothing() {
    let t = t0();
    let (mut cx, _) = invite(&[("desk", 1000)], t);
    cx.hold(1);
    cx.on_response(0, resp(486), t);
    let a = cx.add_targets(targets(&[("phone", 1000)]), t + secs(2));
    assert_eq!(started_ids(&a), ["phone"]);
    assert_eq!(forwarded(&cx.on_response(1, resp(200), t + secs(4))), [200]);
    assert!(cx.release(1, t + secs(4)).is_empty());
    assert!(cx.is_done());
}

#[test]
fn hold_blocks_the_next_group() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000), ("voicemail", 100)], t);
    cx.hold(1);
    assert!(cx.on_response(0, resp(486), t).is_empty());
    assert_eq!(started_ids(&cx.release(1, t)), ["voicemail"]);
}

#[test]
fn push_only_context_waits_for_the_device() {
    let t = t0();
    let (mut cx, a) = ProxyContext::new_held(Method::Invite, Vec::new(), 1, ContextConfig::default(), t);
    assert!(a.is_empty());
    assert!(!cx.is_done());
    let a = cx.add_targets(targets(&[("phone", 1000)]), t + secs(3));
    assert_eq!(starts(&a), [(0, "phone".to_string())]);
    assert!(cx.release(1, t + secs(3)).is_empty());
    assert_eq!(forwarded(&cx.on_response(0, resp(486), t + secs(4))), [486]);
}

#[test]
fn cancel_while_only_held_answers_487() {
    let t = t0();
    let (mut cx, _) = ProxyContext::new_held(Method::Invite, Vec::new(), 1, ContextConfig::default(), t);
    assert_eq!(responded(&cx.on_cancel(t)), [487]);
    assert!(cx.is_done());
}

#[test]
fn six_xx_concludes_despite_hold() {
    let t = t0();
    let (mut cx, _) = invite(&[("a", 1000)], t);
    cx.hold(2);
    assert_eq!(forwarded(&cx.on_response(0, resp(603), t)), [603]);
}

#[test]
fn late_2xx_on_a_timed_out_branch_while_held_ends_the_context() {
    let t = t0();
    let (mut cx, _) = invite(&[("desk", 1000)], t);
    cx.hold(1);
    assert!(cx.on_branch_timeout(0, t + secs(32)).is_empty());
    assert_eq!(forwarded(&cx.on_response(0, resp(200), t + secs(33))), [200]);
    assert!(cx.is_done(), "nothing pending, the 2xx went upstream");
    assert!(cx.release(1, t + secs(40)).is_empty());
}
