//! REGISTER classification table (RFC 8599 §5.6.1, R12–R31, R62, R63) and
//! the rejections it leads to (R15, R16, S1).

mod common;
use bytes::Bytes;
use common::*;
use sip_msg::NameAddr;
use sip_push::*;

fn push_contact(provider: &str, prid: &str, param: Option<&str>, expires: u32) -> ContactInfo {
    let c = ContactInfo::new(expires).param("pn-provider", Some(provider)).param("pn-prid", Some(prid));
    match param {
        Some(p) => c.param("pn-param", Some(p)),
        None => c,
    }
}

#[test]
fn r12_plain_contact_is_plain() {
    let c = ContactInfo::new(3600).param("transport", Some("tcp"));
    assert_eq!(classify(&cfg(), &c), Classification::Plain);
}

#[test]
fn disabled_engine_classifies_everything_plain() {
    let c = push_contact("apns", "tok", Some("T.app.voip"), 3600);
    let off = PushConfig { enable: false, ..cfg() };
    assert_eq!(classify(&off, &c), Classification::Plain);
}

#[test]
fn push_binding_apns() {
    let c = push_contact("apns", "00fc13adff78512", Some("DEF123GHIJ.com.example.app.voip"), 3600);
    assert_eq!(
        classify(&cfg(), &c),
        Classification::Push {
            info: PnInfo {
                provider: "apns".into(),
                prid: "00fc13adff78512".into(),
                param: Some("DEF123GHIJ.com.example.app.voip".into())
            },
            pnsreg: false
        }
    );
}

#[test]
fn provider_name_is_case_insensitive_and_echoed_as_configured() {
    let c = push_contact("APNS", "tok", Some("T.a.voip"), 3600);
    assert_eq!(classify(&cfg(), &c).pn_info().unwrap().provider, "apns");
}

#[test]
fn r63_webpush_needs_no_param_and_ignores_one() {
    let url = "https://push.example.net/sub/abc";
    let c = push_contact("webpush", url, None, 3600);
    let want = PnInfo { provider: "webpush".into(), prid: url.into(), param: None };
    assert_eq!(classify(&cfg(), &c), Classification::Push { info: want.clone(), pnsreg: false });
    let with_param = push_contact("webpush", url, Some("x"), 3600);
    assert_eq!(classify(&cfg(), &with_param), Classification::Push { info: want, pnsreg: false });
}

#[test]
fn r14_apns_and_fcm_without_param_are_missing_info() {
    for p in ["apns", "fcm"] {
        let c = push_contact(p, "tok", None, 3600);
        assert_eq!(
            classify(&cfg(), &c),
            Classification::MissingInfo { provider: p.into(), missing: "pn-param".into() },
            "{p}"
        );
        assert_eq!(classify(&cfg(), &c).rejection(&cfg()), None, "R14: normal registration, no 555");
    }
}

#[test]
fn r14_param_rule_is_configurable_per_provider() {
    let mut cfg = cfg();
    cfg.providers[1] = ProviderConfig::new("fcm").with_param(ParamRule::Optional);
    let c = push_contact("fcm", "tok", None, 3600);
    assert!(classify(&cfg, &c).is_push());
    // Dropping pn-param from ct_match_params makes it optional for everyone.
    let mut cfg2 = common::cfg();
    cfg2.ct_match_params = vec!["pn-provider".into(), "pn-prid".into()];
    assert!(classify(&cfg2, &push_contact("apns", "tok", None, 3600)).is_push());
}

#[test]
fn r14_custom_match_param_must_be_present() {
    let mut cfg = cfg();
    cfg.ct_match_params.push("pn-app".into());
    let c = push_contact("apns", "tok", Some("T.a.voip"), 3600);
    assert_eq!(classify(&cfg, &c), Classification::MissingInfo { provider: "apns".into(), missing: "pn-app".into() });
    assert!(classify(&cfg, &c.param("pn-app", Some("x"))).is_push());
}

#[test]
fn r14_empty_prid_is_missing_info_not_a_wildcard() {
    // OpenSIPS treats an empty filter value as "match anything" (§2.5); we refuse it.
    let c =
        ContactInfo::new(3600).param("pn-provider", Some("apns")).param("pn-prid", None).param("pn-param", Some("T.a"));
    assert_eq!(
        classify(&cfg(), &c),
        Classification::MissingInfo { provider: "apns".into(), missing: "pn-prid".into() }
    );
}

#[test]
fn r14_r15_unsupported_provider() {
    let c = push_contact("acme", "tok", Some("p"), 3600);
    let class = classify(&cfg(), &c);
    assert_eq!(class, Classification::Unsupported { provider: "acme".into() });
    assert_eq!(class.rejection(&cfg()), None, "R14 default: normal registration");
    let strict = PushConfig { reply_555: true, ..cfg() };
    let r = class.rejection(&strict).unwrap();
    assert_eq!((r.status(), r.reason()), (555, "Push Notification Service Not Supported"));
}

#[test]
fn r13_upstream_proxy_already_handles_the_provider() {
    let c = push_contact("apns", "tok", Some("T.a.voip"), 3600).upstream(vec!["apns".into()]);
    assert_eq!(classify(&cfg(), &c), Classification::Upstream { provider: "apns".into() });
    // Another provider upstream does not matter.
    let c = push_contact("apns", "tok", Some("T.a.voip"), 3600).upstream(vec!["fcm".into()]);
    assert!(classify(&cfg(), &c).is_push());
}

#[test]
fn r25_query_one_provider() {
    let c = ContactInfo::new(3600).param("pn-provider", Some("fcm"));
    assert_eq!(classify(&cfg(), &c), Classification::Query { providers: vec!["fcm".into()] });
}

#[test]
fn r29_query_all_with_empty_provider() {
    let c = ContactInfo::new(3600).param("pn-provider", None);
    let all = vec!["apns".to_string(), "fcm".into(), "webpush".into()];
    assert_eq!(classify(&cfg(), &c), Classification::Query { providers: all });
    // `pn-provider=` (empty value) is the same query.
    let c = ContactInfo::new(3600).param("pn-provider", Some(""));
    assert!(matches!(classify(&cfg(), &c), Classification::Query { providers } if providers.len() == 3));
    // Providers handled upstream are left out (R26).
    let c = ContactInfo::new(3600).param("pn-provider", None).upstream(vec!["fcm".into()]);
    assert_eq!(classify(&cfg(), &c), Classification::Query { providers: vec!["apns".into(), "webpush".into()] });
}

#[test]
fn r26_r27_r28_query_for_unsupported_provider() {
    let c = ContactInfo::new(3600).param("pn-provider", Some("acme"));
    let class = classify(&cfg(), &c);
    assert_eq!(class, Classification::Unsupported { provider: "acme".into() });
    assert_eq!(class.rejection(&cfg()), None, "R28: never 555 without the knob");
    assert_eq!(class.rejection(&PushConfig { reply_555: true, ..cfg() }).map(|r| r.status()), Some(555));
    // R26: with a Feature-Caps naming it upstream, just forward.
    let c = c.upstream(vec!["acme".into()]);
    assert_eq!(classify(&cfg(), &c), Classification::Upstream { provider: "acme".into() });
}

#[test]
fn r16_r17_too_short_at_or_below_lead() {
    for e in [60, 120] {
        let class = classify(&cfg(), &push_contact("apns", "t", Some("T.a"), e));
        assert!(matches!(class, Classification::TooShort { .. }), "{e}");
        let r = class.rejection(&cfg()).unwrap();
        assert_eq!(r.status(), 423);
        assert!(r.min_expires().unwrap() > 120, "S1/R16: Min-Expires above the lead");
    }
    assert!(classify(&cfg(), &push_contact("apns", "t", Some("T.a"), 600)).is_push(), "R17: 600 accepted");
}

#[test]
fn r17_boundary_with_policy_minimum_off() {
    let cfg = PushConfig { min_push_expires: 0, ..cfg() };
    let c = |e| classify(&cfg, &push_contact("apns", "t", Some("T.a"), e));
    assert_eq!(c(120), Classification::TooShort { provider: "apns".into(), min_expires: 121 });
    assert!(c(121).is_push());
}

#[test]
fn r18_policy_minimum_sets_min_expires() {
    let cfg = PushConfig { min_push_expires: 600, ..cfg() };
    let class = classify(&cfg, &push_contact("apns", "t", Some("T.a"), 300));
    assert_eq!(class.rejection(&cfg), Some(Rejection::IntervalTooBrief { min_expires: 600 }));
    assert!(classify(&cfg, &push_contact("apns", "t", Some("T.a"), 600)).is_push());
}

#[test]
fn r24_pnsreg_binding_needs_expiry_above_pnsreg_interval() {
    let cfg = PushConfig { min_push_expires: 0, pnsreg_interval: 200, ..cfg() };
    let c = push_contact("apns", "t", Some("T.a"), 150).pnsreg(true);
    assert_eq!(classify(&cfg, &c), Classification::TooShort { provider: "apns".into(), min_expires: 201 });
    assert!(classify(&cfg, &push_contact("apns", "t", Some("T.a"), 150)).is_push(), "no tag: lead rule only");
}

#[test]
fn r24_pnsreg_flag_follows_tag_and_config() {
    let c = push_contact("apns", "t", Some("T.a"), 3600).pnsreg(true);
    assert!(matches!(classify(&cfg(), &c), Classification::Push { pnsreg: true, .. }));
    let never = PushConfig { pnsreg_interval: 0, ..cfg() };
    assert!(matches!(classify(&never, &c), Classification::Push { pnsreg: false, .. }));
}

#[test]
fn removal_is_not_too_short() {
    let c = push_contact("apns", "t", Some("T.a"), 0);
    assert_eq!(classify(&cfg(), &c), Classification::Removal);
    assert_eq!(classify(&cfg(), &c).rejection(&cfg()), None);
    // §4.1.2: the removal REGISTER has no pn-prid.
    let c = ContactInfo::new(0).param("pn-provider", Some("apns"));
    assert_eq!(classify(&cfg(), &c), Classification::Removal);
}

#[test]
fn r62_from_name_addr_unescapes_and_reads_the_tag() {
    let na = NameAddr::parse(&Bytes::from_static(
        b"<sip:alice@198.51.100.7:5060;pn-provider=apns;pn-prid=abc%2Bdef%3D%3D;pn-param=T.com.x.voip>;+sip.pnsreg;expires=600",
    ))
    .unwrap();
    let c = ContactInfo::from_name_addr(&na, 600, &[]);
    assert!(c.pnsreg_tag);
    let class = classify(&cfg(), &c);
    assert_eq!(class.pn_info().unwrap().prid, "abc+def==");
    assert!(matches!(class, Classification::Push { pnsreg: true, .. }));
    // The §6.1 typo `sip.pnsreq` is accepted on input.
    let na =
        NameAddr::parse(&Bytes::from_static(b"<sip:a@h;pn-provider=apns;pn-prid=x;pn-param=T.a>;+sip.pnsreq")).unwrap();
    assert!(ContactInfo::from_name_addr(&na, 600, &[]).pnsreg_tag);
}

#[test]
fn r13_upstream_pns_parsing() {
    let v: [&[u8]; 3] = [
        b"*;+sip.pns=\"apns\";+sip.pnspurr=\"x;y\"",
        b"*;+sip.pns=\"fcm\", *;+sip.pns=\"webpush\"",
        b"+sip.pns=\"APNS\"",
    ];
    assert_eq!(upstream_pns(v), vec!["apns".to_string(), "fcm".into(), "webpush".into()]);
    assert!(upstream_pns([b"*;+sip.pnsreg=\"130\"".as_slice()]).is_empty());
}

#[test]
fn classification_table_summary() {
    // One line per row of §4.1/§4.2, as a quick map for readers.
    let cfg = cfg();
    let rows: Vec<(ContactInfo, &str)> = vec![
        (ContactInfo::new(3600), "plain"),
        (push_contact("apns", "t", Some("T.a"), 3600).upstream(vec!["apns".into()]), "upstream"),
        (ContactInfo::new(3600).param("pn-provider", Some("apns")), "query"),
        (ContactInfo::new(3600).param("pn-provider", None), "query"),
        (push_contact("apns", "t", Some("T.a"), 3600), "push"),
        (push_contact("webpush", "https://p/x", None, 3600), "push"),
        (push_contact("acme", "t", None, 3600), "unsupported"),
        (push_contact("fcm", "t", None, 3600), "missing"),
        (push_contact("apns", "t", Some("T.a"), 100), "too_short"),
        (push_contact("apns", "t", Some("T.a"), 0), "removal"),
    ];
    for (c, want) in rows {
        let got = match classify(&cfg, &c) {
            Classification::Plain => "plain",
            Classification::Removal => "removal",
            Classification::Upstream { .. } => "upstream",
            Classification::Query { .. } => "query",
            Classification::Push { .. } => "push",
            Classification::Unsupported { .. } => "unsupported",
            Classification::MissingInfo { .. } => "missing",
            Classification::TooShort { .. } => "too_short",
        };
        assert_eq!(got, want, "{c:?}");
    }
}

#[test]
fn r15_missing_info_gets_555_with_reply_555() {
    let strict = PushConfig { reply_555: true, ..cfg() };
    let missing = [
        // APNs without pn-param.
        push_contact("apns", "tok", None, 3600),
        // Empty pn-prid, present without value or `pn-prid=`.
        ContactInfo::new(3600).param("pn-provider", Some("apns")).param("pn-prid", None).param("pn-param", Some("T.a")),
        ContactInfo::new(3600)
            .param("pn-provider", Some("fcm"))
            .param("pn-prid", Some(""))
            .param("pn-param", Some("p")),
        // Empty pn-param where it is required.
        push_contact("apns", "tok", Some(""), 3600),
    ];
    for c in missing {
        let class = classify(&strict, &c);
        assert!(matches!(class, Classification::MissingInfo { .. }), "{c:?}: {class:?}");
        let r = class.rejection(&strict).expect("R15: 555, no binding");
        assert_eq!((r.status(), r.reason()), (555, "Push Notification Service Not Supported"));
        assert_eq!(r.min_expires(), None);
    }
    // R25 still comes first: no pn-prid at all is a query, answered 200.
    let query = ContactInfo::new(3600).param("pn-provider", Some("apns"));
    assert_eq!(classify(&strict, &query).rejection(&strict), None);
    // Complete coordinates are never refused.
    assert_eq!(classify(&strict, &push_contact("apns", "tok", Some("T.a.voip"), 3600)).rejection(&strict), None);
}

#[test]
fn r14_missing_info_registers_plain_without_reply_555() {
    let c = push_contact("apns", "tok", None, 3600);
    let class = classify(&cfg(), &c);
    assert_eq!(class, Classification::MissingInfo { provider: "apns".into(), missing: "pn-param".into() });
    assert_eq!(class.rejection(&cfg()), None, "R14 default: a normal binding");
    assert!(!class.is_push() && class.pn_info().is_none(), "never pushed");
}

#[test]
fn r62_escaped_param_names_are_classified_as_push() {
    // RFC 3261 §19.1.4: `pn%2Dprovider` is `pn-provider`; the registrar's
    // Binding::push() reads the same sip_msg::pn parser.
    let na = NameAddr::parse(&Bytes::from_static(
        b"<sip:alice@198.51.100.7;pn%2Dprovider=apns;PN%2dPRID=abc%2Bdef;pn%2Dparam=T.com.x.voip>;expires=600",
    ))
    .unwrap();
    let c = ContactInfo::from_name_addr(&na, 600, &[]);
    assert_eq!(c.get("pn-provider"), Some(Some("apns")));
    let class = classify(&cfg(), &c);
    assert_eq!(
        class,
        Classification::Push {
            info: PnInfo { provider: "apns".into(), prid: "abc+def".into(), param: Some("T.com.x.voip".into()) },
            pnsreg: false
        }
    );
    let uri = na.uri.as_sip().unwrap();
    assert_eq!(sip_msg::PnParams::from_params(&uri.params), c.pn());
    assert!(c.pn().has_coordinates());
}
