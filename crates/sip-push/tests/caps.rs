//! Exact Feature-Caps strings (R5–R7, R21–R24, R29–R31, R51, F1, §6.5,
//! §6.6.1–2, §6.12).

mod common;
use common::*;
use sip_push::*;

fn push(provider: &str, pnsreg: bool) -> Classification {
    let param = (provider != "webpush").then(|| "T.app".to_string());
    Classification::Push { info: PnInfo { provider: provider.into(), prid: "tok".into(), param }, pnsreg }
}

/// F1: `*` then `;+name="value"` caps, nothing else.
fn assert_f1(v: &str) {
    let rest = v.strip_prefix('*').unwrap_or_else(|| panic!("F1: no leading * in {v}"));
    for cap in rest.split(';').skip(1) {
        let (name, value) = cap.split_once('=').unwrap();
        assert!(name.starts_with("+sip."), "{v}");
        assert!(value.starts_with('"') && value.ends_with('"') && value.len() > 2, "{v}");
    }
}

fn caps(cfg: &PushConfig, items: &[(Classification, Option<&str>)]) -> Vec<String> {
    let mut fc = FeatureCaps::new();
    for (c, p) in items {
        fc.add(cfg, c, *p);
    }
    let v = fc.values();
    v.iter().for_each(|x| assert_f1(x));
    v
}

#[test]
fn r21_r51_push_binding_with_purr() {
    let cfg = PushConfig { purr: true, ..cfg() };
    assert_eq!(
        caps(&cfg, &[(push("apns", false), Some("q8Zp3wT2nV0aLx7cR1mJbQ"))]),
        [r#"*;+sip.pns="apns";+sip.pnspurr="q8Zp3wT2nV0aLx7cR1mJbQ""#]
    );
}

#[test]
fn r21_push_binding_without_purr() {
    assert_eq!(caps(&cfg(), &[(push("apns", false), None)]), [r#"*;+sip.pns="apns""#]);
    // PURR off: a PURR handed in by mistake is not advertised.
    assert_eq!(caps(&cfg(), &[(push("apns", false), Some("x"))]), [r#"*;+sip.pns="apns""#]);
}

#[test]
fn r24_pnsreg_only_when_tagged() {
    let cfg = PushConfig { purr: true, ..cfg() };
    assert_eq!(
        caps(&cfg, &[(push("fcm", true), Some("P"))]),
        [r#"*;+sip.pns="fcm";+sip.pnsreg="130";+sip.pnspurr="P""#]
    );
    assert_eq!(caps(&cfg, &[(push("fcm", false), Some("P"))]), [r#"*;+sip.pns="fcm";+sip.pnspurr="P""#]);
}

#[test]
fn r22_r23_vapid_only_where_configured() {
    let mut cfg = PushConfig { purr: true, ..cfg() };
    cfg.providers[2] = ProviderConfig::new("webpush").with_vapid("BA1Hxzyi1RUM");
    assert_eq!(
        caps(&cfg, &[(push("webpush", true), Some("P"))]),
        [r#"*;+sip.pns="webpush";+sip.vapid="BA1Hxzyi1RUM";+sip.pnsreg="130";+sip.pnspurr="P""#]
    );
    assert_eq!(caps(&cfg, &[(push("apns", false), Some("P"))]), [r#"*;+sip.pns="apns";+sip.pnspurr="P""#]);
}

#[test]
fn r5_r30_r31_query_all_one_fc_value_per_provider() {
    let mut cfg = PushConfig { purr: true, ..cfg() };
    cfg.providers[2] = ProviderConfig::new("webpush").with_vapid("BKEY");
    let q = Classification::Query { providers: vec!["apns".into(), "fcm".into(), "webpush".into()] };
    assert_eq!(
        caps(&cfg, &[(q, None)]),
        [r#"*;+sip.pns="apns""#, r#"*;+sip.pns="fcm""#, r#"*;+sip.pns="webpush";+sip.vapid="BKEY""#]
    );
}

#[test]
fn r10_query_gets_no_purr_and_no_pnsreg() {
    let cfg = PushConfig { purr: true, ..cfg() };
    let q = Classification::Query { providers: vec!["fcm".into()] };
    assert_eq!(caps(&cfg, &[(q, Some("P"))]), [r#"*;+sip.pns="fcm""#]);
}

#[test]
fn r6_same_provider_twice_is_one_fc_value_first_purr_wins() {
    let cfg = PushConfig { purr: true, ..cfg() };
    let items =
        [(push("apns", false), Some("FIRST")), (push("apns", true), Some("SECOND")), (push("fcm", false), Some("F"))];
    assert_eq!(
        caps(&cfg, &items),
        [r#"*;+sip.pns="apns";+sip.pnsreg="130";+sip.pnspurr="FIRST""#, r#"*;+sip.pns="fcm";+sip.pnspurr="F""#]
    );
}

#[test]
fn r12_r13_r14_no_caps_for_plain_upstream_unsupported_missing_short_removal() {
    let cfg = PushConfig { purr: true, ..cfg() };
    let none = [
        Classification::Plain,
        Classification::Removal,
        Classification::Upstream { provider: "apns".into() },
        Classification::Unsupported { provider: "acme".into() },
        Classification::MissingInfo { provider: "fcm".into(), missing: "pn-param".into() },
        Classification::TooShort { provider: "apns".into(), min_expires: 180 },
        Classification::Query { providers: vec![] },
    ];
    for c in none {
        assert!(caps(&cfg, &[(c.clone(), Some("P"))]).is_empty(), "{c:?}");
    }
}

#[test]
fn r19_r61_forwarded_register_carries_pns_only() {
    let cfg = PushConfig { purr: true, ..cfg() };
    let mut fc = FeatureCaps::new();
    fc.add(&cfg, &push("apns", true), Some("P"));
    assert_eq!(fc.request_values(), [r#"*;+sip.pns="apns""#]);
}

#[test]
fn engine_feature_caps_with_issued_purr() {
    let cfg = PushConfig { purr: true, ..cfg() };
    let mut h = Harness::new(cfg);
    let contact = ContactInfo::new(3600)
        .param("pn-provider", Some("apns"))
        .param("pn-prid", Some("tok"))
        .param("pn-param", Some("T.a.voip"))
        .pnsreg(true);
    let class = h.engine.classify(&contact);
    let Classification::Push { info, pnsreg } = class.clone() else { panic!() };
    let reg = Registration { binding: "b1".into(), info: Some(info), expires: secs(3600), pnsreg };
    let purr = h.engine.handle_register_ok(reg, h.now).unwrap();
    assert_eq!(purr.len(), 22, "128 bits base64url without padding");
    let v = h.engine.feature_caps([(&class, Some(purr.as_str()))]);
    assert_eq!(v, [format!(r#"*;+sip.pns="apns";+sip.pnsreg="130";+sip.pnspurr="{purr}""#)]);
}
