//! Push state across a restart: engine A issues PURRs, its push state is
//! encoded as the store keeps it, and engine B (a new process, a later wall
//! clock) restores it, so a dialog set up with an old PURR still wakes the
//! device and the `+sip.pnsreg` flag still shapes the schedule.

mod common;
use common::*;
use sip_push::*;
use std::time::Duration;

const T0_MS: u64 = 1_700_000_000_000;

fn purr_cfg() -> PushConfig {
    PushConfig {
        purr: true,
        purr_rotation: secs(3600),
        purr_horizon: secs(86_400),
        purr_key: Some(b"0123456789abcdef-secret".to_vec()),
        ..cfg()
    }
}

/// Wall-clock ms of harness time `h.now` (A and B both start at T0_MS).
fn wall(h: &Harness) -> u64 {
    T0_MS + u64::try_from((h.now - h.t0).as_millis()).unwrap()
}

#[test]
fn purrs_and_pnsreg_survive_a_restart_through_the_stored_text() {
    // Engine A: a push binding registers twice; the second 2xx rotates.
    let mut a = Harness::new(purr_cfg());
    let old = a.register_with("b1", apns("t"), 7200, true).unwrap();
    a.run_to(4000);
    let current = a.register_with("b1", apns("t"), 7200, true).unwrap();
    assert_ne!(old, current);
    a.run_to(5000);
    let records = a.engine.purr_records("b1", a.now);
    let text = encode_push_state(true, &records, wall(&a));
    assert_eq!(a.engine.push_state("b1", a.now, wall(&a)).as_deref(), Some(text.as_str()));
    assert_eq!(a.engine.push_state("unknown", a.now, wall(&a)), None);
    assert!(!text.contains("b1") && !text.contains("apns"), "only flag and PURRs: {text}");

    // Engine B starts 10 minutes (wall clock) later from the stored text.
    let mut b = Harness::with_seed(purr_cfg(), 2);
    let restart_ms = wall(&a) + 600_000;
    let (pnsreg, purrs) = decode_push_state(&text, restart_ms, b.engine.config().purr_horizon).unwrap();
    assert!(pnsreg);
    assert_eq!(purrs.len(), 2);
    assert_eq!(purrs[0].age, records[0].age + Duration::from_secs(600));
    let restored = Restored {
        binding: "b1".into(),
        info: apns("t"),
        expires_in: secs(7200 - 1000 - 600),
        pnsreg,
        registered_ago: Some(secs(1600)),
        purrs,
    };
    assert!(b.engine.restore(restored, b.now));
    assert_eq!(b.engine.resolve_purr(&old, b.now), Some("b1".into()), "the replaced PURR still resolves");
    assert_eq!(b.engine.resolve_purr(&current, b.now), Some("b1".into()));
    assert_eq!(b.engine.purr_for("b1"), Some(current.as_str()), "the current one stays current");
    assert!(b.engine.binding_view("b1", b.now).unwrap().pnsreg);

    // A mid-dialog request carrying the old PURR parks on the binding and
    // pushes to wake it.
    let key = b.engine.resolve_purr(&old, b.now).unwrap();
    let park = Park {
        request: RequestId(1),
        method: sip_msg::Method::Invite,
        call_id: "dialog".into(),
        kind: ParkKind::MidDialog,
        targets: vec![ParkTarget::push(key.as_str())],
    };
    assert_eq!(b.engine.handle_park(park, b.now), Ok(1));
    assert_eq!(pushes(&b.drain()).len(), 1);

    // B's state encodes again the same way: nothing is lost by a second
    // restart (the replaced PURR keeps its original replacement time).
    let again = b.engine.push_state("b1", b.now, restart_ms).unwrap();
    let (_, twice) = decode_push_state(&again, restart_ms, secs(86_400)).unwrap();
    let (_, once) = decode_push_state(&text, restart_ms, secs(86_400)).unwrap();
    assert_eq!(twice, once);
}

#[test]
fn a_restart_after_the_horizon_drops_the_replaced_purr() {
    let mut a = Harness::new(purr_cfg());
    let old = a.register("b1", apns("t"), 200_000).unwrap();
    a.run_to(4000);
    let current = a.register("b1", apns("t"), 200_000).unwrap();
    let text = a.engine.push_state("b1", a.now, wall(&a)).unwrap();

    let mut b = Harness::with_seed(purr_cfg(), 3);
    let later_ms = wall(&a) + 86_400_000;
    let (pnsreg, purrs) = decode_push_state(&text, later_ms, b.engine.config().purr_horizon).unwrap();
    assert!(!pnsreg);
    assert_eq!(purrs.len(), 1, "the replaced one expired while we were down");
    let restored = Restored {
        binding: "b1".into(),
        info: apns("t"),
        expires_in: secs(100_000),
        pnsreg,
        registered_ago: None,
        purrs,
    };
    assert!(b.engine.restore(restored, b.now));
    assert_eq!(b.engine.resolve_purr(&old, b.now), None);
    assert_eq!(b.engine.resolve_purr(&current, b.now), Some("b1".into()));
}
