//! Restart: the schedule is rebuilt from (binding key, push params,
//! expiry, pnsreg flag) alone and matches what the old process would have
//! done; overdue pushes go at once; expired bindings never come back (R11).

mod common;
use common::*;
use sip_push::*;

fn restored(key: &str, expires_in: u64, pnsreg: bool) -> Restored {
    Restored {
        binding: key.into(),
        info: apns(key),
        expires_in: secs(expires_in),
        pnsreg,
        registered_ago: None,
        purrs: vec![],
    }
}

#[test]
fn restored_schedule_equals_the_uninterrupted_one() {
    // Process A runs uninterrupted; process B restarts at t = 1000 from the
    // store (remaining lifetimes only).
    let mut a = Harness::new(cfg());
    a.register("x", apns("x"), 3600);
    a.register_with("y", apns("y"), 3600, true);
    a.register("z", apns("z"), 1100);
    let mut ua: Vec<(u64, Output)> = a.run_to(1000);
    let mut b = Harness::with_seed(cfg(), 1);
    b.run_to(1000);
    for (k, left, pnsreg) in [("x", 2600, false), ("y", 2600, true), ("z", 100, false)] {
        assert!(b.engine.restore(restored(k, left, pnsreg), b.now));
    }
    ua.retain(|(t, _)| *t >= 1000);
    ua.extend(a.run_to(10_000));
    let ub = b.run_to(10_000);
    for k in ["x", "y", "z"] {
        let (ta, tb) = (refresh_times(&ua, k), refresh_times(&ub, k));
        if k == "z" {
            // z's lead point (980) passed during the "downtime": pushed at
            // once, then the remaining retries as if nothing happened.
            assert_eq!(tb, [1000, 1040, 1070, 1085]);
            assert_eq!(ta, [1040, 1070, 1085]);
        } else {
            assert_eq!(ta, tb, "{k}");
        }
    }
    assert_eq!(refresh_times(&ub, "x"), [3480, 3540, 3570, 3585]);
}

#[test]
fn overdue_restored_binding_is_pushed_at_once_never_in_the_past() {
    let mut h = Harness::new(cfg());
    assert!(h.engine.restore(restored("b", 50, false), h.now));
    assert_eq!(h.engine.poll_timeout(), Some(h.now), "at once");
    assert_eq!(refresh_times(&h.run_to(1000), "b"), [0, 20, 35]);
    let mut h = Harness::new(cfg());
    h.engine.restore(restored("c", 4, false), h.now);
    assert_eq!(refresh_times(&h.run_to(1000), "c"), [0], "one push, then it expires");
}

#[test]
fn r11_expired_bindings_are_not_restored_and_live_state_wins() {
    let mut h = Harness::new(cfg());
    assert!(!h.engine.restore(restored("gone", 0, false), h.now));
    assert!(h.run_to(10_000).is_empty());
    h.register("live", apns("live"), 3600);
    assert!(!h.engine.restore(restored("live", 10, false), h.now));
}

#[test]
fn restored_binding_wakes_parked_requests_and_honours_skip_interval() {
    let mut h = Harness::new(PushConfig { skip_interval: secs(60), ..cfg() });
    let mut r = restored("b", 3000, false);
    r.registered_ago = Some(secs(10));
    h.engine.restore(r, h.now);
    h.park(1, sip_msg::Method::Invite, vec![ParkTarget::push("b")]).unwrap();
    assert!(pushes(&h.drain()).is_empty(), "registered 10 s ago: skip");
    h.run_to(100);
    h.park(2, sip_msg::Method::Invite, vec![ParkTarget::push("b")]).unwrap();
    assert_eq!(pushes(&h.drain()).len(), 1);
    h.register("b", apns("b"), 3000);
    assert!(h.drain().iter().any(|o| matches!(o, Output::Fork { request: RequestId(2), .. })));
}
