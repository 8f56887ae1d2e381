//! What happens after a push, at node level in virtual time: a dead-token
//! answer removes the binding (durably) unless the device re-registered
//! with another token meanwhile; a call that ends before a pushed device
//! got it sends that device a cancel push (caller CANCEL, answered
//! elsewhere) or a missed-call push (nobody answered), as configured; a
//! device that got the INVITE itself gets none.

mod common;

use common::*;
use sip_msg::Method;
use sip_node::{CallEndPushes, StoreOp};
use sip_push::{CallEnd, PushError, PushReason};
use std::time::Duration;

fn call_ends(w: &World) -> Vec<CallEnd> {
    w.pushes
        .iter()
        .filter_map(|(_, j)| match &j.request.reason {
            PushReason::CallEnded { end, .. } => Some(*end),
            _ => None,
        })
        .collect()
}

#[test]
fn dead_token_removes_the_binding_durably() {
    let mut w = World::default();
    let (_dev, caller) = sleeping_dev(&mut w);
    let id = w.bindings("dev")[0].id.clone();
    w.push_mode = PushMode::Hold;
    w.invite(caller, "dev", 1);
    w.push_result(Err(PushError::Rejected));
    assert_eq!(w.finals(caller, Method::Invite), vec![480], "{}", w.dump());
    assert!(w.bindings("dev").is_empty(), "the dead binding is still there");
    let removed = w.committed.iter().flat_map(|c| &c.ops).any(|op| matches!(op, StoreOp::Remove { id: x } if *x == id));
    assert!(removed, "no store removal of {id}");
    assert!(w.stored_rows().iter().all(|(b, _)| b.id != id));
    // Nothing more is pushed to it.
    let n = w.pushes.len();
    w.advance(Duration::from_secs(3600));
    assert_eq!(w.pushes.len(), n);
}

#[test]
fn dead_answer_for_an_old_token_keeps_the_re_registered_binding() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    w.push_mode = PushMode::Hold;
    w.peer(dev).on_push = OnPush::Nothing;
    w.invite(caller, "dev", 1);
    // The app re-installs: it registers with a new token before the answer.
    w.peer(dev).prid = Some("TOKEN-B".into());
    w.peer(dev).awake = true;
    w.register(dev);
    w.push_result(Err(PushError::Rejected));
    let b = w.bindings("dev");
    assert_eq!(b.len(), 1, "{}", w.dump());
    assert!(b[0].uri.to_string().contains("TOKEN-B"));
}

#[test]
fn caller_cancel_sends_a_cancel_push_with_the_caller() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    w.peer(dev).on_push = OnPush::Nothing;
    let inv = w.invite(caller, "dev", 1);
    w.advance(Duration::from_secs(2));
    w.cancel(caller, &inv);
    assert_eq!(call_ends(&w), vec![CallEnd::Cancelled], "{}", w.dump());
    let job = &w.pushes.last().unwrap().1;
    assert_eq!(job.request.prid, "TOKEN-A");
    assert_eq!(job.request.param.as_deref(), Some(PN_PARAM));
    assert!(job.caller.as_ref().is_some_and(|c| c.uri == "sip:caller@example.com"), "{:?}", job.caller);
    let PushReason::CallEnded { call_id, method, .. } = &job.request.reason else { unreachable!() };
    assert_eq!(method, "INVITE");
    assert_eq!(Some(call_id), call_id_of(&w.pushes[0].1.request));
}

#[test]
fn a_call_nobody_answers_sends_a_missed_call_push() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    w.peer(dev).on_push = OnPush::Nothing;
    w.invite(caller, "dev", 1);
    w.advance(Duration::from_secs(35));
    assert_eq!(w.finals(caller, Method::Invite), vec![480]);
    assert_eq!(call_ends(&w), vec![CallEnd::Missed], "{}", w.dump());
}

#[test]
fn answered_elsewhere_sends_a_cancel_push() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    w.peer(dev).on_push = OnPush::Nothing;
    let desk = w.ua("desk", "dev", "10.0.0.3:5060");
    w.register(desk);
    w.invite(caller, "dev", 1);
    assert_eq!(w.finals(caller, Method::Invite), vec![200], "{}", w.dump());
    assert_eq!(call_ends(&w), vec![CallEnd::AnsweredElsewhere], "{}", w.dump());
}

#[test]
fn a_device_that_got_the_invite_gets_no_call_end_push() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    w.peer(dev).answer = Answer::Final(486);
    w.invite(caller, "dev", 1);
    assert_eq!(w.requests(dev, Method::Invite).len(), 1, "{}", w.dump());
    assert_eq!(w.finals(caller, Method::Invite), vec![486]);
    w.advance(Duration::from_secs(40));
    assert!(call_ends(&w).is_empty(), "{}", w.dump());
}

#[test]
fn call_end_pushes_follow_the_provider_setting() {
    let mut w = World::with(|c| {
        c.call_end_pushes = vec![("apns".into(), CallEndPushes { cancel: false, missed: true })];
    });
    let (dev, caller) = sleeping_dev(&mut w);
    w.peer(dev).on_push = OnPush::Nothing;
    let inv = w.invite(caller, "dev", 1);
    w.cancel(caller, &inv);
    w.invite(caller, "dev", 2);
    w.advance(Duration::from_secs(35));
    assert_eq!(call_ends(&w), vec![CallEnd::Missed], "{}", w.dump());
}

fn call_id_of(r: &sip_push::PushRequest) -> Option<&String> {
    match &r.reason {
        PushReason::Initial { call_id, .. } => Some(call_id),
        _ => None,
    }
}

#[test]
fn a_device_that_answered_over_its_live_flow_gets_no_cancel_push() {
    let mut w = World::default();
    // Awake with its connection open (a browser tab, an app in the foreground):
    // tried over the flow at once and pushed too; it answers over the flow.
    let dev = w.phone_tcp("dev", "dev", "10.0.0.3:40001", 7, "TOKEN-T");
    w.register(dev);
    w.peer(dev).on_push = OnPush::Nothing;
    let caller = w.ua("caller", "caller", "10.0.0.9:5070");
    w.invite(caller, "dev", 1);
    assert_eq!(w.finals(caller, Method::Invite), vec![200], "{}", w.dump());
    assert_eq!(w.pushes.len(), 1, "{}", w.dump());
    w.advance(Duration::from_secs(40));
    assert!(call_ends(&w).is_empty(), "the device that answered got a call-end push:\n{}", w.dump());
}
