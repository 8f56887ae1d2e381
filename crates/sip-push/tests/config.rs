//! Configuration defaults and validation errors that name the key.

use sip_push::*;
use std::time::Duration;

fn keys(cfg: PushConfig) -> Vec<String> {
    cfg.validate().err().unwrap_or_default().into_iter().map(|e| e.key).collect()
}

#[test]
fn defaults_follow_opensips_where_it_has_the_knob() {
    let d = PushConfig::default();
    assert!(!d.enable && !d.purr && !d.reply_555);
    assert_eq!(d.ct_match_params, ["pn-provider", "pn-prid", "pn-param"]);
    assert_eq!(d.pnsreg_interval, 130);
    assert_eq!(d.refresh_lead, Duration::from_secs(120));
    assert_eq!(d.skip_interval, Duration::ZERO);
    assert_eq!((d.invite_hold, d.non_invite_hold), (Duration::from_secs(30), Duration::from_secs(10)));
    assert!(d.validate().is_ok());
    assert!(PushConfig::with_providers(["apns", "fcm", "webpush"]).validate().is_ok());
}

#[test]
fn each_error_names_its_key() {
    let base = PushConfig::with_providers(["apns"]);
    let cases: Vec<(PushConfig, &str)> = vec![
        (PushConfig { providers: vec![], ..base.clone() }, "providers"),
        (PushConfig::with_providers(["apns", "APNS"]), "providers"),
        (PushConfig::with_providers(["ap ns"]), "providers"),
        (
            PushConfig { providers: vec![ProviderConfig::new("webpush").with_vapid("a=b")], ..base.clone() },
            "providers.vapid",
        ),
        (PushConfig { ct_match_params: vec!["pn-provider".into()], ..base.clone() }, "ct_match_params"),
        (PushConfig { pnsreg_interval: 120, ..base.clone() }, "pnsreg_interval"),
        (PushConfig { refresh_lead: Duration::from_secs(119), ..base.clone() }, "refresh_lead"),
        (PushConfig { refresh_retry_offsets: vec![Duration::from_secs(120)], ..base.clone() }, "refresh_retry_offsets"),
        (
            PushConfig {
                refresh_retry_offsets: vec![Duration::from_secs(10), Duration::from_secs(30)],
                ..base.clone()
            },
            "refresh_retry_offsets",
        ),
        (PushConfig { invite_hold: Duration::ZERO, ..base.clone() }, "invite_hold"),
        (PushConfig { non_invite_hold: Duration::from_secs(32), ..base.clone() }, "non_invite_hold"),
        (PushConfig { purr: true, purr_rotation: Duration::ZERO, ..base.clone() }, "purr_rotation"),
        (PushConfig { purr: true, purr_horizon: Duration::ZERO, ..base.clone() }, "purr_horizon"),
        (PushConfig { purr_key: Some(vec![1; 8]), ..base.clone() }, "purr_key"),
    ];
    for (cfg, key) in cases {
        assert_eq!(keys(cfg.clone()), [key], "{cfg:?}");
    }
    let e = PushConfig { non_invite_hold: Duration::from_secs(40), ..base }.validate().unwrap_err();
    assert!(e[0].to_string().starts_with("non_invite_hold: "), "{}", e[0]);
}

#[test]
fn pnsreg_zero_disables_and_is_valid() {
    assert!(PushConfig { pnsreg_interval: 0, ..PushConfig::with_providers(["fcm"]) }.validate().is_ok());
}

#[test]
fn engine_refuses_an_invalid_config_and_redacts_the_key() {
    let cfg = PushConfig { refresh_lead: Duration::from_secs(60), ..PushConfig::with_providers(["apns"]) };
    assert!(PushEngine::new(cfg, |b: &mut [u8]| b.fill(1)).is_err());
    let cfg = PushConfig { purr_key: Some(b"super-secret-key-123".to_vec()), ..PushConfig::default() };
    assert!(!format!("{cfg:?}").contains("super-secret"));
}

#[test]
fn engine_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<PushEngine>();
}
