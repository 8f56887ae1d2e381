//! PURRs (R46–R51, R58): issue, format, rotation, horizon, forged values,
//! MAC protection, death with the binding, persistence.

mod common;
use common::*;
use sip_push::*;

fn purr_cfg() -> PushConfig {
    PushConfig { purr: true, purr_rotation: secs(3600), purr_horizon: secs(86_400), ..cfg() }
}

fn token_and_pvalue_safe(p: &str) -> bool {
    p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

#[test]
fn r47_r50_purrs_are_128_bit_base64url_unique_and_opaque() {
    let mut h = Harness::new(purr_cfg());
    let mut seen = std::collections::HashSet::new();
    for i in 0..1000 {
        let key = format!("binding-{i}");
        let p = h.register(&key, apns(&format!("prid{i}")), 3600).unwrap();
        assert_eq!(p.len(), 22);
        assert!(token_and_pvalue_safe(&p), "§6.10: {p}");
        assert!(!p.contains(&key) && !p.contains("prid"));
        assert!(seen.insert(p));
    }
    assert_eq!(h.engine.stats().purrs_issued, 1000);
}

#[test]
fn r51_every_2xx_carries_the_current_purr() {
    let mut h = Harness::new(purr_cfg());
    let p1 = h.register("b1", apns("t"), 3600).unwrap();
    assert_eq!(h.engine.purr_for("b1"), Some(p1.as_str()));
    h.run_to(1800);
    assert_eq!(h.register("b1", apns("t"), 3600).unwrap(), p1, "within the rotation period");
    assert_eq!(h.engine.resolve_purr(&p1, h.now), Some("b1".into()));
}

#[test]
fn purr_off_issues_nothing() {
    let mut h = Harness::new(cfg());
    assert_eq!(h.register("b1", apns("t"), 3600), None);
    assert_eq!(h.engine.purr_for("b1"), None);
}

#[test]
fn r48_r49_rotation_keeps_old_purr_until_horizon() {
    let mut h = Harness::new(purr_cfg());
    let p1 = h.register("b1", apns("t"), 7200).unwrap();
    h.run_to(3601);
    let p2 = h.register("b1", apns("t"), 7200).unwrap();
    assert_ne!(p1, p2, "R48: rotated at the first 2xx after the period");
    assert_eq!(h.engine.purr_for("b1"), Some(p2.as_str()));
    assert_eq!(h.engine.resolve_purr(&p1, h.now), Some("b1".into()), "R49: old dialogs still work");
    assert_eq!(h.engine.binding_view("b1", h.now).unwrap().purrs, 2);
    // Keep the binding alive past the horizon.
    for t in (7000..=84_000).step_by(7000) {
        h.run_to(t);
        h.register("b1", apns("t"), 7200);
    }
    h.run_to(3601 + 86_399);
    assert_eq!(h.engine.resolve_purr(&p1, h.now), Some("b1".into()));
    h.run_to(3601 + 86_400);
    assert_eq!(h.engine.resolve_purr(&p1, h.now), None, "past the horizon");
    assert!(h.engine.resolve_purr(h.engine.purr_for("b1").unwrap().to_string().as_str(), h.now).is_some());
}

#[test]
fn r50_forged_or_unknown_purr_never_resolves() {
    let mut h = Harness::new(purr_cfg());
    let p = h.register("b1", apns("t"), 3600).unwrap();
    let mut forged = p.clone().into_bytes();
    forged[21] = if forged[21] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for bad in [forged.as_str(), "", "AAAAAAAAAAAAAAAAAAAAAA", "0a1.2b3c4.5d6e7f80", "b1", "not base64!"] {
        assert_eq!(h.engine.resolve_purr(bad, h.now), None, "{bad}");
    }
    assert_eq!(h.engine.stats().purrs_refused, 6);
}

#[test]
fn r11_purrs_die_with_the_binding() {
    let mut h = Harness::new(purr_cfg());
    let p = h.register("b1", apns("t"), 3600).unwrap();
    h.engine.handle_removed(&"b1".into(), h.now);
    assert_eq!(h.engine.resolve_purr(&p, h.now), None);
    let p = h.register("b2", apns("t"), 300).unwrap();
    h.run_to(301);
    assert_eq!(h.engine.resolve_purr(&p, h.now), None, "expired binding");
}

#[test]
fn mac_protected_purrs() {
    let cfg = PushConfig { purr_key: Some(b"0123456789abcdef-secret".to_vec()), ..purr_cfg() };
    let mut h = Harness::new(cfg.clone());
    let p = h.register("b1", apns("t"), 3600).unwrap();
    assert_eq!(p.len(), 35, "16 random bytes + 10-byte tag, base64url");
    assert!(token_and_pvalue_safe(&p));
    assert_eq!(h.engine.resolve_purr(&p, h.now), Some("b1".into()));
    // Persist and restore into a fresh engine with the same key.
    let records = h.engine.purr_records("b1", h.now);
    let mut h2 = Harness::with_seed(cfg.clone(), 2);
    let restored = Restored {
        binding: "b1".into(),
        info: apns("t"),
        expires_in: secs(3600),
        pnsreg: false,
        registered_ago: None,
        purrs: records.clone(),
    };
    assert!(h2.engine.restore(restored.clone(), h2.now));
    assert_eq!(h2.engine.resolve_purr(&p, h2.now), Some("b1".into()));
    // A tampered store cannot move a PURR to another binding, nor can a
    // different key validate it.
    let mut h3 = Harness::with_seed(cfg, 3);
    assert!(h3.engine.restore(Restored { binding: "victim".into(), ..restored.clone() }, h3.now));
    assert_eq!(h3.engine.resolve_purr(&p, h3.now), None);
    let mut h4 = Harness::with_seed(PushConfig { purr_key: Some(b"another-key-0123456".to_vec()), ..purr_cfg() }, 4);
    assert!(h4.engine.restore(restored, h4.now));
    assert_eq!(h4.engine.resolve_purr(&p, h4.now), None);
}

#[test]
fn records_and_restore_keep_current_and_retired_purrs() {
    let mut h = Harness::new(purr_cfg());
    let p1 = h.register("b1", apns("t"), 7200).unwrap();
    h.run_to(4000);
    let p2 = h.register("b1", apns("t"), 7200).unwrap();
    h.run_to(5000);
    let records = h.engine.purr_records("b1", h.now);
    assert_eq!(
        records,
        [
            PurrRecord { purr: p1.clone(), age: secs(5000), retired: Some(secs(1000)) },
            PurrRecord { purr: p2.clone(), age: secs(1000), retired: None },
        ]
    );
    let mut h2 = Harness::with_seed(purr_cfg(), 99);
    let r = Restored {
        binding: "b1".into(),
        info: apns("t"),
        expires_in: secs(100_000),
        pnsreg: false,
        registered_ago: Some(secs(1000)),
        purrs: records,
    };
    assert!(h2.engine.restore(r, h2.now));
    assert_eq!(h2.engine.purr_for("b1"), Some(p2.as_str()));
    assert_eq!(h2.engine.resolve_purr(&p1, h2.now), Some("b1".into()));
    // The retired one keeps its remaining validity: 86 400 − 1 000 s.
    h2.run_to(86_399 - 1000);
    assert_eq!(h2.engine.resolve_purr(&p1, h2.now), Some("b1".into()));
    h2.run_to(86_400 - 1000);
    assert_eq!(h2.engine.resolve_purr(&p1, h2.now), None);
    // The restored current one rotates by its restored age (1000 s + now).
    let p3 = h2.register("b1", apns("t"), 7200).unwrap();
    assert!(p3 != p2 && p3 != p1);
}
