//! Validation of the whole `[push]` section, enabled or not: the engine's
//! rules (reworded with the TOML keys as written in the file, the bad
//! value and what to write), every `[push.senders.<name>]` table, and,
//! when push is enabled, a sender for every provider in `push.providers`
//! (else phones would be told pushes work and their calls get 480).
//!
//! Reads no files (key files and exec programs are checked by
//! `preflight`, which builds the senders); owns no run-time state.

use crate::config::PushSection;

/// The longest push audit window: a week.
const MAX_AUDIT_WINDOW_SECS: u64 = 7 * 24 * 3600;
/// The most audit events kept (about 2 GB).
const MAX_AUDIT_EVENTS: usize = 10_000_000;

/// Every check of `[push]` that needs no file; the first error, worded
/// for the operator.
pub fn validate(p: &PushSection) -> Result<(), String> {
    if let Err(errs) = p.to_engine_config().validate()
        && let Some(e) = errs.first()
    {
        return Err(engine_error(p, &e.key, &e.message));
    }
    for (name, s) in &p.senders {
        s.validate(name, p)?;
    }
    if !(1..=MAX_AUDIT_WINDOW_SECS).contains(&p.audit_window_secs) {
        return Err(format!(
            "push.audit_window_secs = {} is out of range; write a number of seconds from 1 to {MAX_AUDIT_WINDOW_SECS} (7 days), e.g. 3600",
            p.audit_window_secs
        ));
    }
    if p.audit_max_events > MAX_AUDIT_EVENTS {
        return Err(format!(
            "push.audit_max_events = {} is too large (each event takes about 200 bytes); write at most {MAX_AUDIT_EVENTS}, or 0 to keep no audit",
            p.audit_max_events
        ));
    }
    if p.enable {
        if p.senders.is_empty() {
            return Err(
                "push.enable = true but no [push.senders.<provider>] is configured; add e.g. [push.senders.\"*\"] webhook = \"https://push-gateway.example/sip\", or set push.enable = false".into(),
            );
        }
        let star = p.senders.contains_key("*");
        for (i, prov) in p.providers.iter().enumerate() {
            if !star && !p.senders.keys().any(|n| n.eq_ignore_ascii_case(prov)) {
                return Err(format!(
                    "push.providers[{i}] = {prov:?} has no sender, so phones would be told pushes work and their calls would get 480; add a [push.senders.{}] table (or [push.senders.\"*\"] for all providers), or remove {prov:?} from push.providers",
                    crate::push_config::toml_name(prov)
                ));
            }
        }
    }
    Ok(())
}

/// An engine error (`key` in the engine's names) as the operator reads it.
fn engine_error(p: &PushSection, key: &str, message: &str) -> String {
    let list = |v: &[u64]| format!("{v:?}");
    let (toml_key, value): (String, Option<String>) = match key {
        "providers" => ("push.providers".into(), Some(format!("{:?}", p.providers))),
        "providers.vapid" => ("push.vapid_public_key".into(), Some(format!("{:?}", p.vapid_public_key))),
        "ct_match_params" => ("push.ct_match_params".into(), Some(format!("{:?}", p.ct_match_params))),
        "pnsreg_interval" => ("push.pnsreg_interval".into(), Some(p.pnsreg_interval.to_string())),
        "refresh_lead" => ("push.refresh_lead_secs".into(), Some(p.refresh_lead_secs.to_string())),
        "refresh_retry_offsets" => ("push.refresh_retries_secs".into(), Some(list(&p.refresh_retries_secs))),
        "skip_interval" => ("push.skip_interval_secs".into(), Some(p.skip_interval_secs.to_string())),
        "invite_hold" => ("push.invite_hold_secs".into(), Some(p.invite_hold_secs.to_string())),
        "non_invite_hold" => ("push.non_invite_hold_secs".into(), Some(p.non_invite_hold_secs.to_string())),
        "purr_rotation" => ("push.purr_rotation_secs".into(), Some(p.purr_rotation_secs.to_string())),
        "purr_horizon" => ("push.purr_horizon_secs".into(), Some(p.purr_horizon_secs.to_string())),
        // `senders.<name>.<key>_secs`: a per-provider policy.
        k if k.starts_with("senders.") => (format!("push.{k}"), sender_value(p, k)),
        k => (format!("push.{k}"), None),
    };
    match value {
        Some(v) => format!("{toml_key} = {v}: {message}"),
        None => format!("{toml_key}: {message}"),
    }
}

/// The value of a per-provider policy key `senders.<name>.<key>`.
fn sender_value(p: &PushSection, key: &str) -> Option<String> {
    let rest = key.strip_prefix("senders.")?;
    let (name, field) = rest.rsplit_once('.')?;
    let name = name.trim_matches('"');
    let s = p.senders.iter().find(|(n, _)| n.as_str() == name).map(|(_, s)| s)?;
    let secs = |v: Option<u64>| v.map(|x| x.to_string());
    match field {
        "invite_hold_secs" => secs(s.invite_hold_secs),
        "non_invite_hold_secs" => secs(s.non_invite_hold_secs),
        "skip_interval_secs" => secs(s.skip_interval_secs),
        "refresh_lead_secs" => secs(s.refresh_lead_secs),
        "refresh_retries_secs" => s.refresh_retries_secs.as_ref().map(|v| format!("{v:?}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::err;

    #[test]
    fn engine_errors_name_the_toml_key_and_value() {
        let e = err("[push]\nrefresh_lead_secs = 60\n");
        assert!(e.contains("push.refresh_lead_secs = 60: must") && e.contains("at least 120"), "{e}");
        let e = err("[push]\nnon_invite_hold_secs = 40\n");
        assert!(e.contains("push.non_invite_hold_secs = 40") && !e.contains("R42"), "{e}");
        let e = err("[push]\nvapid_public_key = \"not base64!\"\n");
        assert!(e.contains("push.vapid_public_key = \"not base64!\""), "{e}");
        let e =
            err("[push]\nproviders = [\"apns\"]\n[push.senders.apns]\ncertificate = \"c.p12\"\ninvite_hold_secs = 0\n");
        assert!(e.contains("push.senders.apns.invite_hold_secs = 0"), "{e}");
    }

    #[test]
    fn a_provider_without_a_sender_is_refused_when_push_is_on() {
        let e = err(
            "[push]\nenable = true\nproviders = [\"apns\", \"fcm\"]\n[push.senders.apns]\ncertificate = \"c.p12\"\n",
        );
        assert!(e.contains("push.providers[1] = \"fcm\"") && e.contains("[push.senders.fcm]"), "{e}");
        assert!(e.contains("remove \"fcm\" from push.providers"), "{e}");
        // Off: not used, so not an error.
        crate::config::Config::parse(
            "[push]\nproviders = [\"apns\", \"fcm\"]\n[push.senders.apns]\ncertificate = \"c.p12\"\n",
        )
        .unwrap();
    }
}
