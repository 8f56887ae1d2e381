//! The push audit at node level, in virtual time: the story of a call by
//! Call-ID (held, its push with outcome and latency, the wake-up REGISTER
//! or none, the fork or the 480) and of a binding (refresh pushes and the
//! REGISTER that answered them), and the flagging of a device whose
//! delivered call push got no REGISTER.

mod common;

use common::*;
use sip_msg::Method;
use std::time::Duration;

/// The audit events of a call as (event, outcome-or-code) pairs.
fn story(w: &World, call_id: &str) -> Vec<serde_json::Value> {
    let now = w.node.unix_ms(w.now);
    let audit = w.node.push_audit().expect("push is on");
    audit.call(call_id, now).iter().map(|e| serde_json::to_value(e).unwrap()).collect()
}

fn kinds(events: &[serde_json::Value]) -> Vec<&str> {
    events.iter().map(|e| e["event"].as_str().unwrap()).collect()
}

#[test]
fn a_woken_call_tells_its_push_latency_wake_up_and_fork() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    w.peer(dev).on_push = OnPush::Nothing;
    w.push_mode = PushMode::Hold;
    let invite = w.invite(caller, "dev", 1);
    let call_id = header_of(&invite, "Call-ID").unwrap().to_string();
    // The push service answers in 40 ms; the device registers 800 ms later.
    w.advance(Duration::from_millis(40));
    w.push_result(Ok(()));
    assert!(w.requests(dev, Method::Invite).is_empty());
    w.advance(Duration::from_millis(800));
    w.peer(dev).awake = true;
    w.register(dev);
    assert_eq!(w.requests(dev, Method::Invite).len(), 1, "{}", w.dump());
    assert_eq!(w.finals(caller, Method::Invite), vec![200], "{}", w.dump());

    let events = story(&w, &call_id);
    assert_eq!(kinds(&events), ["parked", "push", "woken", "forked", "answered"], "{events:#?}");
    assert_eq!(events[0]["method"], "INVITE");
    assert_eq!(events[0]["bindings"], 1);
    let push = &events[1];
    assert_eq!((push["reason"].as_str(), push["provider"].as_str()), (Some("call"), Some("apns")));
    assert_eq!((push["outcome"].as_str(), push["latency_ms"].as_u64()), (Some("ok"), Some(40)));
    assert_eq!(push["aor"], "dev@example.com");
    assert_eq!(events[2]["after_push_ms"], 840);
    assert_eq!(events[3]["wake_latency_ms"], 840);
    assert_eq!((events[4]["code"].as_u64(), events[4]["outcome"].as_str()), (Some(200), Some("answered")));
    // The same binding's story holds the push, the wake-up and the fork; its last push is indexed.
    let binding = push["binding"].as_str().unwrap().to_string();
    let audit = w.node.push_audit().unwrap();
    assert_eq!(audit.binding(&binding, w.node.unix_ms(w.now)).len(), 3);
    assert!(audit.last_push(&binding).is_some());
    assert!(w.node.flagged_devices().is_empty());
}

#[test]
fn an_unanswered_call_push_ends_in_480_and_flags_the_device() {
    let mut w = World::default();
    let (dev, caller) = sleeping_dev(&mut w);
    w.peer(dev).on_push = OnPush::Nothing;
    let invite = w.invite(caller, "dev", 1);
    let call_id = header_of(&invite, "Call-ID").unwrap().to_string();
    w.advance(Duration::from_secs(35));
    assert_eq!(w.finals(caller, Method::Invite), vec![480], "{}", w.dump());

    let events = story(&w, &call_id);
    // The last push is the missed-call push (on by default) the device gets.
    assert_eq!(kinds(&events), ["parked", "push", "not-woken", "answered", "push"], "{events:#?}");
    assert_eq!(events[1]["outcome"], "ok");
    assert_eq!((events[3]["code"].as_u64(), events[3]["outcome"].as_str()), (Some(480), Some("timed-out-480")));
    assert_eq!(events[4]["reason"], "missed-call");
    let flagged = w.node.flagged_devices();
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert_eq!(flagged[0].reason, sip_node::audit::FlagReason::CallUnanswered);
    assert_eq!(flagged[0].aor, "dev@example.com");
    // A second unanswered call counts on the same entry.
    w.invite(caller, "dev", 2);
    w.advance(Duration::from_secs(35));
    let flagged = w.node.flagged_devices();
    assert_eq!((flagged.len(), flagged[0].times), (1, 2), "{flagged:?}");
}

#[test]
fn a_failed_push_is_not_the_device_s_fault() {
    let mut w = World::default();
    let (_dev, caller) = sleeping_dev(&mut w);
    w.push_mode = PushMode::Hold;
    let invite = w.invite(caller, "dev", 1);
    let call_id = header_of(&invite, "Call-ID").unwrap().to_string();
    w.advance(Duration::from_millis(250));
    w.push_result(Err(sip_push::PushError::Failed));
    assert_eq!(w.finals(caller, Method::Invite), vec![480], "{}", w.dump());
    let events = story(&w, &call_id);
    assert_eq!(kinds(&events), ["parked", "push", "answered"], "{events:#?}");
    assert_eq!((events[1]["outcome"].as_str(), events[1]["latency_ms"].as_u64()), (Some("failed"), Some(250)));
    assert!(w.node.flagged_devices().is_empty(), "{:?}", w.node.flagged_devices());
}

#[test]
fn a_refresh_push_and_the_register_that_answers_it() {
    let mut w = World::default();
    let dev = w.phone("dev", "dev", "10.0.0.2:5062", "TOKEN-A");
    w.register(dev); // 600 s: the refresh push goes at expiry - 120 s
    w.advance(Duration::from_secs(481));
    assert_eq!(w.pushes.len(), 1);
    // The device (awake on push) answered it with a REGISTER at once.
    let binding = w.pushes[0].1.request.binding.as_str().to_string();
    let audit = w.node.push_audit().unwrap();
    let events: Vec<serde_json::Value> =
        audit.binding(&binding, w.node.unix_ms(w.now)).iter().map(|e| serde_json::to_value(e).unwrap()).collect();
    assert_eq!(kinds(&events), ["push", "woken"], "{events:#?}");
    assert_eq!((events[0]["reason"].as_str(), events[0]["attempt"].as_u64()), (Some("refresh"), Some(1)));
    assert_eq!(events[0]["call_id"], serde_json::Value::Null);
    let recent = audit.recent_pushes(10, w.node.unix_ms(w.now));
    assert_eq!(recent.len(), 1);
}
