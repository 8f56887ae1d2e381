//! Parking and wake-up (R32–R45, R54–R57, S2–S4) and the 1:1 mapping of
//! the events onto a proxy context's hold/release/add_targets.

mod common;
use common::*;
use sip_msg::Method;
use sip_push::*;

fn fork(r: u64, b: &str, latency: Option<u64>) -> Output {
    Output::Fork { request: RequestId(r), binding: b.into(), wake_latency: latency.map(secs) }
}
fn ended(r: u64, b: &str, reason: BranchEnd) -> Output {
    Output::BranchEnded { request: RequestId(r), binding: b.into(), reason }
}
fn done(r: u64, woken: u32) -> Output {
    Output::RequestDone { request: RequestId(r), woken }
}

/// A stand-in for `sip_proxy::ProxyContext`'s hold accounting: plain
/// targets start at once, held slots wait, the final answer is 480 when
/// the last slot goes and no branch exists (what the real context does
/// with its synthetic 480).
struct FakeContext {
    held: usize,
    branches: Vec<String>,
    final_status: Option<u16>,
}

impl FakeContext {
    fn new_held(plain: &[&str], held: usize) -> FakeContext {
        let branches: Vec<String> = plain.iter().map(|s| s.to_string()).collect();
        let final_status = (branches.is_empty() && held == 0).then_some(480);
        FakeContext { held, branches, final_status }
    }
    /// Applies one engine output, as the core would.
    fn apply(&mut self, o: &Output) {
        match o {
            Output::Fork { binding, .. } => {
                if self.final_status.is_none() {
                    self.branches.push(binding.to_string()); // add_targets
                }
                self.release(1);
            }
            Output::BranchEnded { .. } => self.release(1),
            _ => {}
        }
    }
    fn release(&mut self, n: usize) {
        self.held -= n;
        if self.held == 0 && self.branches.is_empty() && self.final_status.is_none() {
            self.final_status = Some(480);
        }
    }
}

#[test]
fn r32_r35_r38_park_push_then_one_fork_despite_three_registers_and_a_401() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 3600);
    h.run_to(1000);
    assert_eq!(h.park(1, Method::Invite, vec![ParkTarget::push("b1")]), Ok(1));
    let out = h.drain();
    let p = pushes(&out);
    assert_eq!(p.len(), 1, "R32: one push");
    assert_eq!(p[0].reason, PushReason::Initial { method: "INVITE".into(), call_id: "call-1".into() });
    assert_eq!(p[0].deadline, h.at(1030), "INVITE hold 30 s");
    let id = p[0].id;
    h.run_to(1001);
    h.engine.handle_push_result(id, Ok(()), h.now);
    h.engine.handle_register_failed(&"b1".into(), 401, h.now);
    assert!(h.drain().is_empty(), "R38: a challenge keeps waiting");
    h.run_to(1002);
    h.register("b1", apns("tok-new"), 3600);
    assert_eq!(h.drain(), [fork(1, "b1", Some(2)), done(1, 1)], "R35, wake latency = push → REGISTER ok");
    for _ in 0..2 {
        h.register("b1", apns("tok-new"), 3600);
    }
    assert!(h.drain().is_empty(), "once per (request, binding)");
    assert!(h.run_to(2000).is_empty(), "no Bucket Timer after delivery");
    assert_eq!(h.engine.stats().woken, 1);
}

#[test]
fn r38_407_also_keeps_waiting() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 3600);
    h.park(1, Method::Invite, vec![ParkTarget::push("b1")]).unwrap();
    h.drain();
    h.engine.handle_register_failed(&"b1".into(), 407, h.now);
    assert!(h.drain().is_empty());
    assert!(h.engine.is_parked(RequestId(1)));
}

#[test]
fn r36_r37_other_register_failure_ends_the_branch_now() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 3600);
    h.park(1, Method::Invite, vec![ParkTarget::push("b1")]).unwrap();
    h.drain();
    h.engine.handle_register_failed(&"b1".into(), 403, h.now);
    let out = h.drain();
    assert_eq!(out, [ended(1, "b1", BranchEnd::RegisterFailed(403)), done(1, 0)]);
    assert_eq!(out[1].fallback_status(), Some(480));
    assert_eq!(h.engine.binding_count(), 1, "a failed REGISTER does not remove the binding");
}

#[test]
fn r39_r40_push_failure_ends_the_branch_at_once_with_480() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 3600);
    h.park(1, Method::Invite, vec![ParkTarget::push("b1")]).unwrap();
    let id = pushes(&h.drain())[0].id;
    h.run_to(1);
    h.engine.handle_push_result(id, Err(PushError::Failed), h.now);
    let out = h.drain();
    assert_eq!(out, [ended(1, "b1", BranchEnd::PushFailed), done(1, 0)]);
    assert_eq!(out[1].fallback_status(), Some(UNREACHABLE_STATUS));
    assert!(h.run_to(100).is_empty(), "well before the Bucket Timer, and nothing after");
}

#[test]
fn r39_rejected_token_while_parked() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 3600);
    h.park(1, Method::Invite, vec![ParkTarget::push("b1")]).unwrap();
    let id = pushes(&h.drain())[0].id;
    h.engine.handle_push_result(id, Err(PushError::Rejected), h.now);
    assert_eq!(
        h.drain(),
        [Output::BindingInvalid { binding: "b1".into() }, ended(1, "b1", BranchEnd::PushRejected), done(1, 0)]
    );
    // The next request does not push a dead token again.
    h.park(2, Method::Invite, vec![ParkTarget::push("b1")]).unwrap();
    assert_eq!(h.drain(), [ended(2, "b1", BranchEnd::PushRejected), done(2, 0)]);
}

#[test]
fn r41_invite_bucket_timer_gives_480() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 3600);
    h.park(1, Method::Invite, vec![ParkTarget::push("b1")]).unwrap();
    h.drain();
    let out = h.run_to(29);
    assert!(out.is_empty());
    let out = h.run_to(31);
    assert_eq!(out, [(30, ended(1, "b1", BranchEnd::Timeout)), (30, done(1, 0))]);
    assert_eq!(out[1].1.fallback_status(), Some(480));
    h.register("b1", apns("tok"), 3600);
    assert!(h.drain().is_empty(), "a REGISTER after the timeout delivers nothing");
}

#[test]
fn r42_s4_non_invite_bucket_timer_is_short_and_480_never_408() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 3600);
    h.park(1, Method::Message, vec![ParkTarget::push("b1")]).unwrap();
    let p = h.drain();
    assert_eq!(pushes(&p)[0].reason, PushReason::Initial { method: "MESSAGE".into(), call_id: "call-1".into() });
    assert_eq!(pushes(&p)[0].ttl_secs, 10);
    let out = h.run_to(60);
    assert_eq!(out, [(10, ended(1, "b1", BranchEnd::Timeout)), (10, done(1, 0))]);
    assert_eq!(out[1].1.fallback_status(), Some(480));
    assert!(h.engine.config().non_invite_hold < TIMER_F);
}

#[test]
fn s3_cancel_drops_everything_nothing_later() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 3600);
    h.park(1, Method::Invite, vec![ParkTarget::push("b1")]).unwrap();
    let id = pushes(&h.drain())[0].id;
    assert!(h.engine.handle_cancel(RequestId(1)));
    assert!(!h.engine.is_parked(RequestId(1)));
    h.engine.handle_push_result(id, Err(PushError::Failed), h.now);
    h.register("b1", apns("tok"), 3600);
    assert!(h.drain().is_empty());
    assert!(h.run_to(100).is_empty(), "no Bucket Timer event");
    assert!(!h.engine.handle_cancel(RequestId(1)));
    assert_eq!(h.engine.stats().requests_cancelled, 1);
}

#[test]
fn s3_cancel_also_drops_queued_events_of_the_request() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 3600);
    h.park(1, Method::Invite, vec![ParkTarget::awake("b2"), ParkTarget::push("b1")]).unwrap();
    h.engine.handle_cancel(RequestId(1));
    let out = h.drain();
    assert_eq!(out.len(), 1, "the queued Fork is gone: {out:?}");
    assert!(matches!(out[0], Output::Push(_)));
}

#[test]
fn r44_skip_interval_forks_without_push() {
    let mut h = Harness::new(PushConfig { skip_interval: secs(30), ..cfg() });
    h.register("b1", apns("tok"), 3600);
    h.run_to(10);
    h.park(1, Method::Invite, vec![ParkTarget::push("b1")]).unwrap();
    assert_eq!(h.drain(), [fork(1, "b1", None), done(1, 1)]);
    h.run_to(40);
    h.park(2, Method::Invite, vec![ParkTarget::push("b1")]).unwrap();
    assert_eq!(pushes(&h.drain()).len(), 1, "registered 40 s ago: push");
    assert_eq!(h.engine.stats().skipped_recent, 1);
}

#[test]
fn r44_awake_flag_forks_without_push() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 3600);
    h.park(1, Method::Invite, vec![ParkTarget::awake("b1")]).unwrap();
    assert_eq!(h.drain(), [fork(1, "b1", None), done(1, 1)]);
    assert_eq!(h.engine.stats().initial.sent, 0);
}

#[test]
fn two_bindings_of_one_aor_plain_forked_by_core_push_parked() {
    // The AoR has a plain binding "p" (the core forks it at once) and a
    // push binding "b1" (parked). The engine only sees "b1".
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 3600);
    let n = h.park(1, Method::Invite, vec![ParkTarget::push("b1")]).unwrap();
    let mut cx = FakeContext::new_held(&["p"], n);
    let out = h.drain();
    assert_eq!(pushes(&out).len(), 1);
    out.iter().for_each(|o| cx.apply(o));
    assert_eq!((cx.held, cx.branches.len()), (1, 1));
    h.run_to(3);
    h.register("b1", apns("tok"), 3600);
    h.drain().iter().for_each(|o| cx.apply(o));
    assert_eq!(cx.branches, ["p", "b1"]);
    assert_eq!((cx.held, cx.final_status), (0, None));
}

#[test]
fn all_branches_failing_releases_every_slot_and_the_context_answers_480() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("t1"), 3600);
    h.register("b2", apns("t2"), 3600);
    let targets = vec![ParkTarget::push("b1"), ParkTarget::push("b2"), ParkTarget::push("gone")];
    let n = h.park(1, Method::Invite, targets).unwrap();
    assert_eq!(n, 3);
    let mut cx = FakeContext::new_held(&[], n);
    let out = h.drain();
    out.iter().for_each(|o| cx.apply(o));
    assert!(out.contains(&ended(1, "gone", BranchEnd::UnknownBinding)));
    let ids: Vec<PushId> = pushes(&out).iter().map(|p| p.id).collect();
    h.engine.handle_push_result(ids[0], Err(PushError::Failed), h.now);
    let now = h.drain();
    assert_eq!(now, [ended(1, "b1", BranchEnd::PushFailed)]);
    now.iter().for_each(|o| cx.apply(o));
    assert_eq!((cx.held, cx.final_status), (1, None));
    let out = h.run_to(100);
    assert_eq!(out, [(30, ended(1, "b2", BranchEnd::Timeout)), (30, done(1, 0))]);
    out.iter().for_each(|(_, o)| cx.apply(o));
    assert_eq!((cx.held, cx.final_status), (0, Some(480)));
}

#[test]
fn one_device_wakes_the_other_times_out() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("t1"), 3600);
    h.register("b2", apns("t2"), 3600);
    h.park(1, Method::Invite, vec![ParkTarget::push("b1"), ParkTarget::push("b2")]).unwrap();
    assert_eq!(pushes(&h.drain()).len(), 2);
    h.run_to(4);
    h.register("b2", apns("t2"), 3600);
    assert_eq!(h.drain(), [fork(1, "b2", Some(4))]);
    let out = h.run_to(60);
    assert_eq!(out, [(30, ended(1, "b1", BranchEnd::Timeout)), (30, done(1, 1))]);
    assert_eq!(out[1].1.fallback_status(), None, "something was delivered: the context decides");
}

#[test]
fn r11_binding_removed_while_parked() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 3600);
    h.park(1, Method::Invite, vec![ParkTarget::push("b1")]).unwrap();
    h.drain();
    h.engine.handle_removed(&"b1".into(), h.now);
    assert_eq!(h.drain(), [ended(1, "b1", BranchEnd::BindingGone), done(1, 0)]);
}

#[test]
fn two_requests_on_one_binding_one_register_wakes_both() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 3600);
    h.park(1, Method::Invite, vec![ParkTarget::push("b1")]).unwrap();
    h.park(2, Method::Message, vec![ParkTarget::push("b1")]).unwrap();
    assert_eq!(pushes(&h.drain()).len(), 2, "one push per request: each carries its own Call-ID");
    h.register("b1", apns("tok"), 3600);
    assert_eq!(h.drain(), [fork(1, "b1", Some(0)), done(1, 1), fork(2, "b1", Some(0)), done(2, 1)]);
}

#[test]
fn park_errors_and_edge_cases() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 3600);
    assert_eq!(h.park(1, Method::Ack, vec![ParkTarget::push("b1")]), Err(ParkError::NotParkable));
    assert_eq!(h.park(1, Method::Cancel, vec![ParkTarget::push("b1")]), Err(ParkError::NotParkable));
    assert_eq!(h.park(1, Method::Invite, vec![ParkTarget::push("b1"), ParkTarget::push("b1")]), Ok(1));
    assert_eq!(pushes(&h.drain()).len(), 1, "duplicate targets merged");
    assert_eq!(h.park(1, Method::Invite, vec![ParkTarget::push("b1")]), Err(ParkError::AlreadyParked));
    assert_eq!(h.park(2, Method::Invite, vec![]), Ok(0));
    assert_eq!(h.drain(), [done(2, 0)]);
    // A duplicate with `awake` wins.
    assert_eq!(h.park(3, Method::Invite, vec![ParkTarget::push("b1"), ParkTarget::awake("b1")]), Ok(1));
    assert_eq!(h.drain(), [fork(3, "b1", None), done(3, 1)]);
}

#[test]
fn r54_r55_r56_mid_dialog_wake_by_purr() {
    let mut h = Harness::new(PushConfig { purr: true, ..cfg() });
    let purr = h.register("b1", apns("tok"), 3600).unwrap();
    h.run_to(600);
    let binding = h.engine.resolve_purr(&purr, h.now).expect("R54: our PURR resolves");
    let park = Park {
        request: RequestId(9),
        method: Method::Bye,
        call_id: "dialog-1".into(),
        kind: ParkKind::MidDialog,
        targets: vec![ParkTarget::push(binding)],
    };
    assert_eq!(h.engine.handle_park(park, h.now), Ok(1));
    let out = h.drain();
    let p = pushes(&out)[0];
    assert_eq!(p.reason, PushReason::MidDialog { method: "BYE".into(), call_id: "dialog-1".into() });
    assert_eq!(p.reason.opensips_reason(), "mid-BYE");
    h.run_to(602);
    h.register("b1", apns("tok"), 3600);
    assert_eq!(h.drain(), [fork(9, "b1", Some(2)), done(9, 1)], "R55");
}

#[test]
fn r57_mid_dialog_timeout_is_480() {
    let mut h = Harness::new(PushConfig { purr: true, ..cfg() });
    let purr = h.register("b1", apns("tok"), 3600).unwrap();
    let b = h.engine.resolve_purr(&purr, h.now).unwrap();
    let park = Park {
        request: RequestId(9),
        method: Method::Update,
        call_id: "d".into(),
        kind: ParkKind::MidDialog,
        targets: vec![ParkTarget::push(b)],
    };
    h.engine.handle_park(park, h.now).unwrap();
    h.drain();
    let out = h.run_to(20);
    assert_eq!(out.last().unwrap().1.fallback_status(), Some(480));
    assert_eq!(out.last().unwrap().0, 10, "non-INVITE hold");
}

#[test]
fn push_request_json_is_what_a_webhook_posts() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 3600);
    h.park(1, Method::Invite, vec![ParkTarget::push("b1")]).unwrap();
    let out = h.drain();
    let json = serde_json::to_value(pushes(&out)[0]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "id": 1, "binding": "b1", "provider": "apns", "prid": "tok",
            "param": "TEAM.com.example.app.voip", "reason": "initial",
            "method": "INVITE", "call_id": "call-1", "attempt": 1, "ttl_secs": 30
        })
    );
    let mut h = Harness::new(cfg());
    h.register("w", PnInfo { provider: "webpush".into(), prid: "https://p.example/s".into(), param: None }, 300);
    let out: Vec<Output> = h.run_to(180).into_iter().map(|(_, o)| o).collect();
    let json = serde_json::to_value(pushes(&out)[0]).unwrap();
    assert_eq!(json["reason"], "refresh");
    assert!(json.get("param").is_none() && json.get("method").is_none());
}

#[test]
fn stats_count_parking_outcomes() {
    let mut h = Harness::new(cfg());
    h.register("b1", apns("tok"), 3600);
    h.park(1, Method::Invite, vec![ParkTarget::push("b1")]).unwrap();
    h.park(2, Method::Invite, vec![ParkTarget::push("nope")]).unwrap();
    h.register("b1", apns("tok"), 3600);
    h.drain();
    let s = h.engine.stats();
    assert_eq!((s.parked, s.requests_done, s.requests_unreached, s.woken), (2, 2, 1, 1));
    assert_eq!((s.initial.sent, s.branches_ended.unknown_binding), (1, 1));
    assert_eq!(h.engine.parked_count(), 0);
}
