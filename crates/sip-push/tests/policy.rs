//! Per-provider policy ([`ProviderPolicy`]): holds per branch, refresh lead
//! and retries, skip interval per provider, fallback to the global knobs,
//! and validation errors keyed by the provider's TOML key.

mod common;
use common::*;
use sip_msg::Method;
use sip_push::*;
use std::time::Duration;

fn fcm(prid: &str) -> PnInfo {
    PnInfo { provider: "fcm".into(), prid: prid.into(), param: Some("project-1".into()) }
}

fn webpush(prid: &str) -> PnInfo {
    PnInfo { provider: "webpush".into(), prid: prid.into(), param: None }
}

/// apns, fcm and webpush, with these overrides for apns and fcm.
fn cfg_with(apns: ProviderPolicy, fcm: ProviderPolicy) -> PushConfig {
    PushConfig {
        providers: vec![
            ProviderConfig::new("apns").with_policy(apns),
            ProviderConfig::new("fcm").with_policy(fcm),
            ProviderConfig::new("webpush"),
        ],
        ..cfg()
    }
}

fn ended(r: u64, b: &str, reason: BranchEnd) -> Output {
    Output::BranchEnded { request: RequestId(r), binding: b.into(), reason }
}

fn done(r: u64, woken: u32) -> Output {
    Output::RequestDone { request: RequestId(r), woken }
}

fn holds(invite: u64, non_invite: u64) -> ProviderPolicy {
    ProviderPolicy {
        invite_hold: Some(secs(invite)),
        non_invite_hold: Some(secs(non_invite)),
        ..ProviderPolicy::default()
    }
}

#[test]
fn per_provider_hold_ends_only_that_providers_branch() {
    let mut h = Harness::new(cfg_with(holds(30, 20), holds(10, 5)));
    h.register("a", apns("tok-a"), 3600);
    h.register("f", fcm("tok-f"), 3600);
    h.run_to(1000);
    assert_eq!(h.park(1, Method::Invite, vec![ParkTarget::push("a"), ParkTarget::push("f")]), Ok(2));
    let out = h.drain();
    let p = pushes(&out);
    let by = |b: &str| p.iter().find(|x| x.binding.as_str() == b).map(|x| (x.deadline, x.ttl_secs));
    assert_eq!(by("a"), Some((h.at(1030), 30)), "APNs push carries its own deadline");
    assert_eq!(by("f"), Some((h.at(1010), 10)), "FCM push carries its own deadline");
    assert_eq!(h.run_to(1010), [(1010, ended(1, "f", BranchEnd::Timeout))], "only the FCM branch ends");
    assert!(h.engine.is_parked(RequestId(1)));
    assert!(h.run_to(1029).is_empty());
    assert_eq!(h.run_to(1030), [(1030, ended(1, "a", BranchEnd::Timeout)), (1030, done(1, 0))]);
    assert_eq!(h.engine.stats().branches_ended.timeout, 2);
}

#[test]
fn the_longer_branch_still_wakes_after_the_shorter_timed_out() {
    let mut h = Harness::new(cfg_with(holds(30, 20), holds(10, 5)));
    h.register("a", apns("tok-a"), 3600);
    h.register("f", fcm("tok-f"), 3600);
    h.park(1, Method::Message, vec![ParkTarget::push("f"), ParkTarget::push("a")]).unwrap();
    h.drain();
    assert_eq!(h.run_to(5), [(5, ended(1, "f", BranchEnd::Timeout))], "non-INVITE hold of FCM");
    h.run_to(12);
    h.register("a", apns("tok-a2"), 3600);
    let fork = Output::Fork { request: RequestId(1), binding: "a".into(), wake_latency: Some(secs(12)) };
    assert_eq!(h.drain(), [fork, done(1, 1)]);
    assert!(h.run_to(100).iter().all(|(_, o)| matches!(o, Output::Push(_))), "no stale Bucket Timer");
}

#[test]
fn an_early_fork_of_the_shorter_branch_leaves_the_longer_deadline() {
    let mut h = Harness::new(cfg_with(holds(30, 20), holds(10, 5)));
    h.register("a", apns("tok-a"), 3600);
    h.register("f", fcm("tok-f"), 3600);
    h.park(1, Method::Invite, vec![ParkTarget::push("a"), ParkTarget::push("f")]).unwrap();
    h.drain();
    h.run_to(2);
    h.register("f", fcm("tok-f"), 3600);
    assert_eq!(h.drain().len(), 1, "FCM forked");
    assert!(h.run_to(29).is_empty(), "its deadline passes silently");
    assert_eq!(h.run_to(30), [(30, ended(1, "a", BranchEnd::Timeout)), (30, done(1, 1))]);
}

#[test]
fn unset_overrides_fall_back_to_the_globals() {
    let cfg = PushConfig {
        invite_hold: secs(25),
        skip_interval: secs(7),
        ..cfg_with(ProviderPolicy { refresh_lead: Some(secs(300)), ..ProviderPolicy::default() }, holds(10, 5))
    };
    assert!(cfg.validate().is_ok());
    for p in ["webpush", "unknown"] {
        assert_eq!(cfg.invite_hold_for(p), secs(25));
        assert_eq!(cfg.non_invite_hold_for(p), secs(10));
        assert_eq!(cfg.skip_interval_for(p), secs(7));
        assert_eq!(cfg.refresh_lead_for(p), secs(120));
        assert_eq!(cfg.refresh_retry_offsets_for(p), [60, 30, 15].map(secs));
    }
    assert_eq!(cfg.refresh_lead_for("APNS"), secs(300), "names compare case-insensitively");
    assert_eq!(cfg.invite_hold_for("apns"), secs(25), "apns only overrides its lead");
    assert_eq!(cfg.branch_hold_for("Fcm", true), secs(10));
    assert_eq!(cfg.branch_hold_for("fcm", false), secs(5));
    assert!(ProviderConfig::new("x").policy.is_empty());

    let mut h = Harness::new(cfg);
    h.register("w", webpush("https://push.example/w"), 3600);
    h.run_to(10);
    h.park(1, Method::Invite, vec![ParkTarget::push("w")]).unwrap();
    assert_eq!(pushes(&h.drain())[0].deadline, h.at(35), "global invite hold");
    assert_eq!(h.run_to(35), [(35, ended(1, "w", BranchEnd::Timeout)), (35, done(1, 0))]);
}

#[test]
fn per_provider_refresh_lead_schedules_at_expiry_minus_that_lead() {
    let fcm_policy = ProviderPolicy { refresh_lead: Some(secs(600)), ..ProviderPolicy::default() };
    let mut h = Harness::new(cfg_with(ProviderPolicy::default(), fcm_policy));
    h.register("a", apns("tok-a"), 3600);
    h.register("f", fcm("tok-f"), 3600);
    let out = h.run_to(3700);
    assert_eq!(refresh_times(&out, "f"), [3000, 3540, 3570, 3585], "FCM: expiry − 600, then global retries");
    assert_eq!(refresh_times(&out, "a"), [3480, 3540, 3570, 3585], "APNs: global lead 120");
    let first_f = out.iter().find_map(|(_, o)| match o {
        Output::Push(p) if p.binding.as_str() == "f" => Some(p.ttl_secs),
        _ => None,
    });
    assert_eq!(first_f, Some(600), "deadline at expiry");
}

#[test]
fn per_provider_lead_raises_that_providers_min_expires() {
    let fcm_policy = ProviderPolicy { refresh_lead: Some(secs(600)), ..ProviderPolicy::default() };
    let cfg = cfg_with(ProviderPolicy::default(), fcm_policy);
    assert_eq!(min_push_expires_for(&cfg, "fcm", false), 601, "R17: above the provider's lead");
    assert_eq!(min_push_expires_for(&cfg, "apns", false), 180);
    assert_eq!(min_push_expires(&cfg, false), 180);
    let c = ContactInfo::new(300)
        .param("pn-provider", Some("fcm"))
        .param("pn-prid", Some("t"))
        .param("pn-param", Some("p"));
    assert_eq!(classify(&cfg, &c), Classification::TooShort { provider: "fcm".into(), min_expires: 601 });
}

#[test]
fn per_provider_retry_offsets() {
    let apns_policy = ProviderPolicy { refresh_retry_offsets: Some(vec![secs(90), secs(45)]), ..Default::default() };
    let fcm_policy = ProviderPolicy { refresh_retry_offsets: Some(vec![]), ..ProviderPolicy::default() };
    let mut h = Harness::new(cfg_with(apns_policy, fcm_policy));
    h.register("a", apns("tok-a"), 300);
    h.register("f", fcm("tok-f"), 300);
    h.register("w", webpush("https://push.example/w"), 300);
    let out = h.run_to(400);
    assert_eq!(refresh_times(&out, "a"), [180, 210, 255], "APNs retries at −90, −45");
    assert_eq!(refresh_times(&out, "f"), [180], "FCM: one push, like OpenSIPS");
    assert_eq!(refresh_times(&out, "w"), [180, 240, 270, 285], "webpush: global retries");
}

#[test]
fn per_provider_retries_also_apply_to_pnsreg_bindings() {
    let apns_policy = ProviderPolicy { refresh_retry_offsets: Some(vec![secs(100)]), ..Default::default() };
    let mut h = Harness::new(PushConfig { min_push_expires: 0, ..cfg_with(apns_policy, ProviderPolicy::default()) });
    h.register_with("a", apns("tok-a"), 600, true);
    assert_eq!(refresh_times(&h.run_to(700), "a"), [480, 500], "R9 fallback at −120, then −100");
}

#[test]
fn per_provider_skip_interval() {
    let apns_policy = ProviderPolicy { skip_interval: Some(secs(60)), ..ProviderPolicy::default() };
    let fcm_policy = ProviderPolicy { skip_interval: Some(Duration::ZERO), ..ProviderPolicy::default() };
    let mut h = Harness::new(PushConfig { skip_interval: secs(45), ..cfg_with(apns_policy, fcm_policy) });
    h.register("a", apns("tok-a"), 3600);
    h.register("f", fcm("tok-f"), 3600);
    h.register("w", webpush("https://push.example/w"), 3600);
    h.run_to(50);
    h.park(1, Method::Invite, vec![ParkTarget::push("a"), ParkTarget::push("f"), ParkTarget::push("w")]).unwrap();
    let out = h.drain();
    let pushed: Vec<&str> = pushes(&out).iter().map(|p| p.binding.as_str()).collect();
    assert_eq!(pushed, ["f", "w"], "APNs registered 50 s ago < 60 s: no push; FCM never skips; webpush 50 ≥ 45");
    assert!(out.contains(&Output::Fork { request: RequestId(1), binding: "a".into(), wake_latency: None }));
    assert_eq!(h.engine.stats().skipped_recent, 1);
}

fn keys(cfg: PushConfig) -> Vec<String> {
    cfg.validate().err().unwrap_or_default().into_iter().map(|e| e.key).collect()
}

fn apns_only(policy: ProviderPolicy) -> PushConfig {
    PushConfig { providers: vec![ProviderConfig::new("apns").with_policy(policy)], ..cfg() }
}

#[test]
fn validation_errors_name_the_provider_key() {
    let d = ProviderPolicy::default;
    let cases: Vec<(PushConfig, &str)> = vec![
        (apns_only(ProviderPolicy { refresh_lead: Some(secs(119)), ..d() }), "senders.apns.refresh_lead_secs"),
        (
            apns_only(ProviderPolicy { refresh_retry_offsets: Some(vec![secs(10), secs(30)]), ..d() }),
            "senders.apns.refresh_retries_secs",
        ),
        (
            apns_only(ProviderPolicy { refresh_retry_offsets: Some(vec![secs(120)]), ..d() }),
            "senders.apns.refresh_retries_secs",
        ),
        (
            apns_only(ProviderPolicy { refresh_retry_offsets: Some(vec![Duration::ZERO]), ..d() }),
            "senders.apns.refresh_retries_secs",
        ),
        (
            PushConfig {
                refresh_lead: secs(600),
                refresh_retry_offsets: vec![secs(300)],
                ..apns_only(ProviderPolicy { refresh_lead: Some(secs(200)), ..d() })
            },
            "senders.apns.refresh_lead_secs",
        ),
        (apns_only(ProviderPolicy { invite_hold: Some(Duration::ZERO), ..d() }), "senders.apns.invite_hold_secs"),
        (apns_only(ProviderPolicy { invite_hold: Some(secs(181)), ..d() }), "senders.apns.invite_hold_secs"),
        (apns_only(ProviderPolicy { non_invite_hold: Some(secs(32)), ..d() }), "senders.apns.non_invite_hold_secs"),
        (
            PushConfig {
                providers: vec![ProviderConfig::new("com.example").with_policy(holds(0, 10))],
                ..PushConfig::with_providers(["x"])
            },
            "senders.\"com.example\".invite_hold_secs",
        ),
    ];
    for (cfg, key) in cases {
        assert_eq!(keys(cfg.clone()), [key], "{cfg:?}");
    }
    let e = apns_only(holds(30, 40)).validate().unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "senders.apns.non_invite_hold_secs: must be above 0 and below 32 s, the sender's Timer F (RFC 4320)"
    );
    let bad = apns_only(ProviderPolicy { refresh_lead: Some(secs(60)), ..d() });
    assert!(PushEngine::new(bad, rng(1)).is_err());
}

#[test]
fn overrides_may_differ_from_the_globals_within_the_rules() {
    let apns_policy = ProviderPolicy {
        refresh_lead: Some(secs(600)),
        refresh_retry_offsets: Some(vec![secs(300), secs(200)]),
        invite_hold: Some(secs(180)),
        non_invite_hold: Some(secs(31)),
        skip_interval: Some(secs(3600)),
    };
    assert!(apns_only(apns_policy).validate().is_ok(), "retries above the global lead are fine below the own lead");
    let inherit = ProviderPolicy { refresh_lead: Some(secs(300)), ..ProviderPolicy::default() };
    assert!(apns_only(inherit).validate().is_ok(), "global retries below the longer lead");
}
