//! Refresh pushes (R8–R11, §4.3, OpenSIPS #2873): timing, retries with
//! backoff, reset on refresh, nothing after removal or expiry, the pnsreg
//! fallback, never in the past.

mod common;
use common::*;
use sip_push::*;

#[test]
fn r8_first_push_at_expiry_minus_lead_then_retries_then_nothing() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 300);
    let out = h.run_to(10_000);
    assert_eq!(refresh_times(&out, "b1"), [180, 240, 270, 285], "lead 120, retries at -60/-30/-15");
    let attempts: Vec<u32> =
        pushes(&out.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>()).iter().map(|p| p.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
    assert_eq!(h.engine.binding_count(), 0, "expired at 300");
    assert_eq!(h.engine.stats().bindings_expired, 1);
}

#[test]
fn r8_single_push_like_opensips_when_retries_are_off() {
    let mut h = Harness::new(PushConfig { refresh_retry_offsets: vec![], ..cfg() });
    h.register("b1", apns("tok"), 300);
    assert_eq!(refresh_times(&h.run_to(1000), "b1"), [180]);
}

#[test]
fn refresh_push_carries_coordinates_and_deadline_at_expiry() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 300);
    let out = h.run_to(180);
    let Output::Push(p) = &out[0].1 else { panic!("{out:?}") };
    assert_eq!((p.provider.as_str(), p.prid.as_str()), ("apns", "tok"));
    assert_eq!(p.param.as_deref(), Some("TEAM.com.example.app.voip"));
    assert_eq!(p.reason, PushReason::Refresh);
    assert_eq!(p.deadline, h.at(300));
    assert_eq!(p.ttl_secs, 120);
}

#[test]
fn r8_refresh_resets_the_schedule() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 300);
    let first = h.run_to(182);
    assert_eq!(refresh_times(&first, "b1"), [180]);
    // The device wakes and re-registers (new PRID is fine: same binding key).
    h.register("b1", apns("tok2"), 300);
    let out = h.run_to(600);
    assert_eq!(refresh_times(&out, "b1"), [362, 422, 452, 467], "re-armed from the new expiry, old retries gone");
    let out: Vec<Output> = out.into_iter().map(|(_, o)| o).collect();
    assert!(pushes(&out).iter().all(|p| p.prid == "tok2"));
    assert_eq!(pushes(&out)[0].attempt, 1, "attempts restart");
}

#[test]
fn r11_no_push_after_removal() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 300);
    h.run_to(100);
    h.engine.handle_removed(&"b1".into(), h.now);
    assert!(h.run_to(10_000).is_empty());
    assert_eq!(h.engine.binding_count(), 0);
    assert_eq!(h.engine.stats().refresh.sent, 0);
}

#[test]
fn r11_removal_by_expires_zero_registration() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 300);
    h.register("b1", apns("tok"), 0);
    assert!(h.run_to(10_000).is_empty());
}

#[test]
fn r10_binding_that_stops_asking_for_push_is_never_pushed() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 300);
    let reg = Registration { binding: "b1".into(), info: None, expires: secs(300), pnsreg: false };
    assert_eq!(h.engine.handle_register_ok(reg, h.now), None);
    assert!(h.run_to(10_000).is_empty());
}

#[test]
fn r11_no_push_after_expiry_and_parking_finds_nothing() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 300);
    h.run_to(301);
    assert_eq!(h.engine.binding_count(), 0);
    h.park(1, sip_msg::Method::Invite, vec![ParkTarget::push("b1")]).unwrap();
    let out = h.drain();
    assert!(pushes(&out).is_empty());
    assert!(out.contains(&Output::BranchEnded {
        request: RequestId(1),
        binding: "b1".into(),
        reason: BranchEnd::UnknownBinding
    }));
    assert!(h.run_to(10_000).is_empty());
}

#[test]
fn r9_pnsreg_binding_gets_only_the_fallback_at_expiry_minus_120() {
    let cfg = PushConfig { refresh_lead: secs(300), refresh_retry_offsets: vec![secs(60)], ..cfg() };
    let mut h = Harness::new(cfg);
    h.register_with("self", apns("a"), 3600, true);
    h.register_with("plain", apns("b"), 3600, false);
    let out = h.run_to(4000);
    assert_eq!(refresh_times(&out, "plain"), [3300, 3540]);
    assert_eq!(refresh_times(&out, "self"), [3480, 3540], "fallback at E-120, then retries below 120");
}

#[test]
fn r9_pnsreg_binding_that_refreshes_itself_gets_no_push() {
    let mut h = Harness::new(cfg());
    h.register_with("self", apns("a"), 3600, true);
    // The UA refreshes at E - 130 (the advertised pnsreg interval), every cycle.
    let mut out = h.run_to(3470);
    h.register_with("self", apns("a"), 3600, true);
    out.extend(h.run_to(3470 + 3470));
    h.register_with("self", apns("a"), 3600, true);
    out.extend(h.run_to(3 * 3470));
    assert!(refresh_times(&out, "self").is_empty());
}

#[test]
fn expiry_barely_above_lead_first_push_after_min_gap() {
    let mut h = Harness::new(PushConfig { min_push_expires: 0, ..cfg() });
    h.run_to(1000);
    h.register("b1", apns("tok"), 122);
    let out = h.run_to(2000);
    assert_eq!(refresh_times(&out, "b1"), [1005, 1062, 1092, 1107], "not at 1002, never in the past, never >= 1122");
}

#[test]
fn late_timer_call_sends_one_push_not_a_burst() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 300);
    h.now = h.at(290);
    h.engine.handle_timeout(h.now);
    let out = h.drain();
    assert_eq!(pushes(&out).len(), 1);
    assert!(h.run_to(10_000).is_empty(), "no retry point left before expiry");
}

#[test]
fn retries_never_closer_than_min_gap() {
    let cfg = PushConfig { refresh_retry_offsets: vec![secs(60), secs(58), secs(20)], ..cfg() };
    let mut h = Harness::new(cfg);
    h.register("b1", apns("tok"), 300);
    assert_eq!(refresh_times(&h.run_to(1000), "b1"), [180, 240, 280]);
}

#[test]
fn custom_backoff_list() {
    let cfg = PushConfig { refresh_lead: secs(600), refresh_retry_offsets: vec![secs(300), secs(150)], ..cfg() };
    let mut h = Harness::new(cfg);
    h.register("b1", apns("tok"), 3600);
    assert_eq!(refresh_times(&h.run_to(4000), "b1"), [3000, 3300, 3450]);
}

#[test]
fn rejected_token_stops_refresh_pushes_until_reregistration() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("dead"), 300);
    let out = h.run_to(180);
    let Output::Push(p) = &out[0].1 else { panic!() };
    h.engine.handle_push_result(p.id, Err(PushError::Rejected), h.now);
    assert_eq!(h.drain(), [Output::BindingInvalid { binding: "b1".into() }]);
    assert!(h.engine.binding_view("b1", h.now).unwrap().invalid);
    assert!(refresh_times(&h.run_to(250), "b1").is_empty(), "no retry at 240");
    // A new token: valid again, pushed again.
    h.register("b1", apns("fresh"), 300);
    assert_eq!(refresh_times(&h.run_to(430), "b1"), [430]);
}

#[test]
fn rejection_of_an_old_token_does_not_invalidate_the_new_one() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("old"), 300);
    let out = h.run_to(180);
    let Output::Push(p) = &out[0].1 else { panic!() };
    h.register("b1", apns("new"), 300);
    h.engine.handle_push_result(p.id, Err(PushError::Rejected), h.now);
    assert!(h.drain().is_empty());
    assert!(!h.engine.binding_view("b1", h.now).unwrap().invalid);
}

#[test]
fn binding_view_for_ctl() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 300);
    let v = h.engine.binding_view("b1", h.now).unwrap();
    assert_eq!((v.expires_in_ms, v.next_refresh_in_ms, v.last_push_ago_ms), (300_000, Some(180_000), None));
    let out = h.run_to(181);
    let Output::Push(p) = &out[0].1 else { panic!() };
    h.engine.handle_push_result(p.id, Err(PushError::Failed), h.now);
    let v = h.engine.binding_view("b1", h.now).unwrap();
    assert_eq!(v.refresh_attempts, 1);
    assert_eq!(v.last_push_ago_ms, Some(1000));
    assert_eq!(v.next_refresh_in_ms, Some(59_000));
    assert_eq!(v.consecutive_failures, 1);
    assert_eq!(v.registered_ago_ms, Some(181_000));
    let out = h.run_to(240);
    let Output::Push(p) = &out[0].1 else { panic!() };
    h.engine.handle_push_result(p.id, Ok(()), h.now);
    assert_eq!(h.engine.binding_view("b1", h.now).unwrap().consecutive_failures, 0);
    assert_eq!(h.engine.binding_views(h.now).len(), 1);
    let s = h.engine.stats();
    assert_eq!((s.refresh.sent, s.refresh.ok, s.refresh.failed), (2, 1, 1));
}

#[test]
fn unanswered_pushes_are_given_up_with_the_binding() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 300);
    let out = h.run_to(200);
    let Output::Push(p) = &out[0].1 else { panic!() };
    assert_eq!(h.engine.pending_pushes(), 1);
    h.run_to(301);
    assert_eq!(h.engine.pending_pushes(), 0);
    assert_eq!(h.engine.stats().refresh.unanswered, 4);
    h.engine.handle_push_result(p.id, Ok(()), h.now);
    assert_eq!(h.engine.stats().late_results, 1);
}
