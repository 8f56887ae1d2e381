//! `[push.senders.<provider>]`: how one provider's pushes are delivered
//! (native APNs / FCM / WebPush, webhook or exec), its per-provider policy
//! (hold, skip interval, refresh lead and retries) and payload options, and
//! the validation whose every error names the key as written.
//!
//! Owns no run-time state: it turns the TOML into
//! [`push_senders::SenderConfig`]s, [`sip_push::ProviderPolicy`]s and
//! [`sip_node::CallEndPushes`]. Key files are read by the senders when
//! they are built (start-up and `--check-config`), not here.

use push_senders::{ApnsAuth, ApnsConfig, FcmConfig, HttpOptions, SenderConfig, VoipRefresh, WebPushConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One `[push.senders.<provider>]` table. Its `Debug` form hides the
/// secrets written inline (`certificate_password`, `hmac_secret`, header values).
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SenderSection {
    /// `apns`, `fcm`, `webpush`, `webhook` or `exec`; implied by `webhook`
    /// / `exec`, or by the provider name (`apns…`, `fcm`, `webpush`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// POST a JSON event to this URL.
    pub webhook: Option<String>,
    /// Or run this program (no shell), the event in its environment and on stdin.
    pub exec: Option<Vec<String>>,
    /// Webhook / exec: the whole attempt; native senders: one HTTP request.
    pub timeout_ms: Option<u64>,
    /// Extra HTTP headers for webhooks, e.g. { Authorization = "Bearer ..." }.
    pub headers: BTreeMap<String, String>,
    /// Sign webhook bodies: X-Sipwake-Signature: sha256=HMAC(body).
    pub hmac_secret: Option<String>,

    /// Native senders: "production" / "sandbox" (APNs), or an https:// URL.
    pub endpoint: Option<String>,
    /// Native senders: PEM file of the CAs to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    pub connect_timeout_ms: Option<u64>,
    /// Native senders: HTTP/2 connections to the provider, used in turn (default 1).
    pub connections: Option<usize>,

    /// APNs token auth: the .p8 key, its Key ID and the Team ID.
    pub key_file: Option<PathBuf>,
    pub key_id: Option<String>,
    pub team_id: Option<String>,
    /// APNs certificate auth: a .p12 (or PEM with cert chain and key) and its password.
    pub certificate: Option<PathBuf>,
    pub certificate_password: Option<String>,
    /// APNs: a refresh push for a binding with only a VoIP token: "voip" or "none".
    pub voip_refresh: Option<String>,

    /// FCM: the service-account JSON file.
    pub service_account: Option<PathBuf>,

    /// WebPush: the VAPID private key (P-256 PEM), its `sub` contact, and
    /// the push-service hosts `pn-prid` URLs may point at.
    pub vapid_private_key: Option<PathBuf>,
    pub vapid_subject: Option<String>,
    pub allowed_hosts: Option<Vec<String>>,

    /// Put the caller's name and URI in call pushes (default true).
    pub include_caller: Option<bool>,
    /// Push "stop ringing" when a call is cancelled or answered elsewhere
    /// (default: true for native senders, false for webhook / exec).
    pub cancel_push: Option<bool>,
    /// Push "missed call" when a call ends unanswered (default as `cancel_push`).
    pub missed_call_push: Option<bool>,

    /// Per-provider policy, falling back to `[push]` (then to `"*"`'s).
    pub invite_hold_secs: Option<u64>,
    pub non_invite_hold_secs: Option<u64>,
    pub skip_interval_secs: Option<u64>,
    pub refresh_lead_secs: Option<u64>,
    pub refresh_retries_secs: Option<Vec<u64>>,
}

impl std::fmt::Debug for SenderSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<hidden>");
        f.debug_struct("SenderSection")
            .field("type", &self.kind)
            .field("webhook", &self.webhook)
            .field("exec", &self.exec)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("hmac_secret", &hidden(&self.hmac_secret))
            .field("endpoint", &self.endpoint)
            .field("ca_file", &self.ca_file)
            .field("key_file", &self.key_file)
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .field("certificate", &self.certificate)
            .field("certificate_password", &hidden(&self.certificate_password))
            .field("service_account", &self.service_account)
            .field("vapid_private_key", &self.vapid_private_key)
            .finish_non_exhaustive()
    }
}

/// What kind of sender a table configures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Apns,
    Fcm,
    WebPush,
    Webhook,
    Exec,
}

const KINDS: &str = "\"apns\", \"fcm\", \"webpush\", \"webhook\" or \"exec\"";

impl SenderSection {
    /// The kind: `type`, else `webhook`/`exec`, else the provider's name.
    pub fn kind(&self, raw: &str) -> Result<Kind, String> {
        let name = &toml_name(raw);
        if let Some(t) = &self.kind {
            return match t.as_str() {
                "apns" => Ok(Kind::Apns),
                "fcm" => Ok(Kind::Fcm),
                "webpush" => Ok(Kind::WebPush),
                "webhook" => Ok(Kind::Webhook),
                "exec" => Ok(Kind::Exec),
                _ => Err(format!("push.senders.{name}.type = {t:?} is invalid; allowed: {KINDS}")),
            };
        }
        match (&self.webhook, &self.exec) {
            (Some(_), None) => return Ok(Kind::Webhook),
            (None, Some(_)) => return Ok(Kind::Exec),
            (Some(_), Some(_)) => {
                return Err(format!(
                    "push.senders.{name}: set exactly one of webhook = \"URL\" or exec = [\"/path/to/program\", \"arg\"...]"
                ));
            }
            (None, None) => {}
        }
        let n = raw.to_ascii_lowercase();
        if n == "apns" || n.starts_with("apns.") {
            Ok(Kind::Apns)
        } else if n == "fcm" {
            Ok(Kind::Fcm)
        } else if n == "webpush" {
            Ok(Kind::WebPush)
        } else {
            Err(format!(
                "push.senders.{name}: say how pushes are sent: type = {KINDS}, or webhook = \"URL\", or exec = [\"/path/to/program\"]"
            ))
        }
    }

    /// Checks the table without touching the file system (key files are
    /// read when the senders are built).
    pub fn validate(&self, raw: &str, push: &crate::config::PushSection) -> Result<(), String> {
        let kind = self.kind(raw)?;
        let name = &toml_name(raw);
        let set = |v: bool, key: &str| -> Result<(), String> {
            if v {
                Err(format!(
                    "push.senders.{name}.{key} is not used by a {} sender; remove it",
                    format!("{kind:?}").to_ascii_lowercase()
                ))
            } else {
                Ok(())
            }
        };
        let native = matches!(kind, Kind::Apns | Kind::Fcm | Kind::WebPush);
        set(kind != Kind::Webhook && self.webhook.is_some(), "webhook")?;
        set(kind != Kind::Exec && self.exec.is_some(), "exec")?;
        set(kind != Kind::Webhook && !self.headers.is_empty(), "headers")?;
        set(kind != Kind::Webhook && self.hmac_secret.is_some(), "hmac_secret")?;
        set(!native && self.endpoint.is_some(), "endpoint")?;
        set(!native && self.ca_file.is_some(), "ca_file")?;
        set(!native && self.connect_timeout_ms.is_some(), "connect_timeout_ms")?;
        set(!native && self.include_caller.is_some(), "include_caller")?;
        set(!native && self.connections.is_some(), "connections")?;
        if let Some(n) = self.connections
            && !(1..=16).contains(&n)
        {
            return Err(format!(
                "push.senders.{name}.connections = {n} is out of range; allowed 1..=16 (HTTP/2 connections to the provider)"
            ));
        }
        for (v, key) in [
            (self.key_file.is_some(), "key_file"),
            (self.key_id.is_some(), "key_id"),
            (self.team_id.is_some(), "team_id"),
            (self.certificate.is_some(), "certificate"),
            (self.certificate_password.is_some(), "certificate_password"),
            (self.voip_refresh.is_some(), "voip_refresh"),
        ] {
            set(kind != Kind::Apns && v, key)?;
        }
        set(kind != Kind::Fcm && self.service_account.is_some(), "service_account")?;
        set(kind != Kind::WebPush && self.vapid_private_key.is_some(), "vapid_private_key")?;
        set(kind != Kind::WebPush && self.vapid_subject.is_some(), "vapid_subject")?;
        set(kind != Kind::WebPush && self.allowed_hosts.is_some(), "allowed_hosts")?;
        if let Some(t) = self.timeout_ms
            && !(1..=60_000).contains(&t)
        {
            return Err(format!("push.senders.{name}.timeout_ms = {t} is out of range; allowed 1..=60000"));
        }
        if let Some(t) = self.connect_timeout_ms
            && !(1..=60_000).contains(&t)
        {
            return Err(format!("push.senders.{name}.connect_timeout_ms = {t} is out of range; allowed 1..=60000"));
        }
        match kind {
            Kind::Webhook => {
                let url = self.webhook.as_deref().unwrap_or_default();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!("push.senders.{name}.webhook = {url:?} is not an http:// or https:// URL"));
                }
            }
            Kind::Exec => {
                if self.exec.as_ref().is_none_or(Vec::is_empty) {
                    return Err(format!(
                        "push.senders.{name}.exec is empty; give the program and its arguments, e.g. [\"/usr/local/bin/push-hook\"]"
                    ));
                }
            }
            Kind::Apns => {
                let token = [self.key_file.is_some(), self.key_id.is_some(), self.team_id.is_some()];
                let cert = self.certificate.is_some();
                match (token, cert) {
                    ([true, true, true], false) | ([false, false, false], true) => {}
                    _ => {
                        return Err(format!(
                            "push.senders.{name}: set key_file, key_id and team_id (token auth, an AuthKey_XXXXXXXXXX.p8 from Apple) or certificate (a .p12), not both"
                        ));
                    }
                }
                if let Some(e) = &self.endpoint
                    && !matches!(e.as_str(), "production" | "sandbox")
                    && !e.starts_with("https://")
                {
                    return Err(format!(
                        "push.senders.{name}.endpoint = {e:?} is invalid; allowed: \"production\", \"sandbox\" or an https:// URL"
                    ));
                }
                if let Some(v) = &self.voip_refresh
                    && !matches!(v.as_str(), "voip" | "none")
                {
                    return Err(format!(
                        "push.senders.{name}.voip_refresh = {v:?} is invalid; allowed: \"voip\" (send the refresh as a VoIP push) or \"none\" (let the app refresh by itself)"
                    ));
                }
            }
            Kind::Fcm => {
                if self.service_account.is_none() {
                    return Err(format!(
                        "push.senders.{name}.service_account is missing: the service-account JSON file from the Firebase console"
                    ));
                }
                if let Some(e) = &self.endpoint
                    && !e.starts_with("https://")
                {
                    return Err(format!("push.senders.{name}.endpoint = {e:?} is not an https:// URL"));
                }
            }
            Kind::WebPush => {
                if self.endpoint.is_some() {
                    return Err(format!(
                        "push.senders.{name}.endpoint is not used by webpush: each device's pn-prid is its push URL (see allowed_hosts)"
                    ));
                }
                if self.vapid_private_key.is_some() {
                    let sub = self.vapid_subject.as_deref().unwrap_or_default();
                    if !(sub.starts_with("mailto:") || sub.starts_with("https:")) {
                        return Err(format!(
                            "push.senders.{name}.vapid_subject = {sub:?} is invalid: a mailto: or https: contact is required with a VAPID key (RFC 8292), e.g. \"mailto:ops@example.com\""
                        ));
                    }
                    if !push.vapid_public_key.is_empty() {
                        return Err(format!(
                            "push.vapid_public_key is set and push.senders.{name}.vapid_private_key too: remove push.vapid_public_key, sipwake advertises the key of vapid_private_key"
                        ));
                    }
                }
                if self.allowed_hosts.as_ref().is_some_and(Vec::is_empty) {
                    return Err(format!(
                        "push.senders.{name}.allowed_hosts is empty, so no push could be sent; remove it for the public browser push services"
                    ));
                }
            }
        }
        if raw != "*" && self.has_policy() && !push.providers.iter().any(|p| p.eq_ignore_ascii_case(raw)) {
            return Err(format!(
                "push.senders.{name} sets a policy (hold, skip or refresh) but {raw:?} is not in push.providers; add it there"
            ));
        }
        Ok(())
    }

    fn has_policy(&self) -> bool {
        self.invite_hold_secs.is_some()
            || self.non_invite_hold_secs.is_some()
            || self.skip_interval_secs.is_some()
            || self.refresh_lead_secs.is_some()
            || self.refresh_retries_secs.is_some()
    }

    fn http(&self, default_timeout: Duration) -> HttpOptions {
        let d = HttpOptions::default();
        HttpOptions {
            connect_timeout: self.connect_timeout_ms.map_or(d.connect_timeout, Duration::from_millis),
            request_timeout: self.timeout_ms.map_or(default_timeout, Duration::from_millis),
            ca_file: self.ca_file.clone(),
            connections: self.connections.unwrap_or(d.connections),
        }
    }

    /// The sender this table configures (`None` only for an invalid table).
    pub fn to_sender(&self, name: &str) -> Option<SenderConfig> {
        let include_caller = self.include_caller.unwrap_or(true);
        Some(match self.kind(name).ok()? {
            Kind::Webhook => SenderConfig::Webhook {
                url: self.webhook.clone()?,
                timeout: Duration::from_millis(self.timeout_ms.unwrap_or(5000)),
                headers: self.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                hmac_secret: self.hmac_secret.clone(),
            },
            Kind::Exec => {
                let cmd = self.exec.as_ref()?;
                SenderConfig::Exec {
                    program: cmd.first()?.into(),
                    args: cmd.iter().skip(1).cloned().collect(),
                    timeout: Duration::from_millis(self.timeout_ms.unwrap_or(5000)),
                }
            }
            Kind::Apns => SenderConfig::Apns(ApnsConfig {
                endpoint: match self.endpoint.as_deref() {
                    None | Some("production") => push_senders::apns::PRODUCTION.into(),
                    Some("sandbox") => push_senders::apns::SANDBOX.into(),
                    Some(url) => url.into(),
                },
                auth: match &self.certificate {
                    Some(file) => ApnsAuth::Certificate {
                        file: file.clone(),
                        password: self.certificate_password.clone().unwrap_or_default(),
                    },
                    None => ApnsAuth::Token {
                        key_file: self.key_file.clone()?,
                        key_id: self.key_id.clone()?,
                        team_id: self.team_id.clone()?,
                    },
                },
                voip_refresh: if self.voip_refresh.as_deref() == Some("none") {
                    VoipRefresh::None
                } else {
                    VoipRefresh::Voip
                },
                include_caller,
                http: self.http(Duration::from_secs(5)),
            }),
            Kind::Fcm => SenderConfig::Fcm(FcmConfig {
                service_account: self.service_account.clone()?,
                endpoint: self.endpoint.clone().unwrap_or_else(|| push_senders::fcm::ENDPOINT.into()),
                include_caller,
                http: self.http(Duration::from_secs(5)),
            }),
            Kind::WebPush => SenderConfig::WebPush(WebPushConfig {
                vapid_key_file: self.vapid_private_key.clone(),
                vapid_subject: self.vapid_subject.clone().unwrap_or_default(),
                allowed_hosts: self.allowed_hosts.clone().unwrap_or_else(|| {
                    push_senders::webpush::DEFAULT_ALLOWED_HOSTS.iter().map(|s| (*s).to_owned()).collect()
                }),
                include_caller,
                http: self.http(Duration::from_secs(5)),
            }),
        })
    }

    /// Cancel and missed-call pushes: on by default for native senders;
    /// off for webhook and exec, whose gateway must know the `call_ended`
    /// event before it gets one (else it would wake the app again).
    pub fn call_end_pushes(&self, name: &str) -> sip_node::CallEndPushes {
        let native = matches!(self.kind(name), Ok(Kind::Apns | Kind::Fcm | Kind::WebPush));
        sip_node::CallEndPushes {
            cancel: self.cancel_push.unwrap_or(native),
            missed: self.missed_call_push.unwrap_or(native),
        }
    }

    /// Makes relative file names relative to `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [
            &mut self.ca_file,
            &mut self.key_file,
            &mut self.certificate,
            &mut self.service_account,
            &mut self.vapid_private_key,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

/// Each configured provider's policy: its own table's values, else the
/// `"*"` table's, else (unset) the `[push]` value.
pub fn apply_policies(c: &mut sip_push::PushConfig, senders: &BTreeMap<String, SenderSection>) {
    let star = senders.get("*");
    for p in &mut c.providers {
        let own = senders.iter().find(|(n, _)| n.eq_ignore_ascii_case(&p.name)).map(|(_, s)| s);
        let pick = |f: &dyn Fn(&SenderSection) -> Option<u64>| own.and_then(f).or_else(|| star.and_then(f));
        let secs = |v: Option<u64>| v.map(Duration::from_secs);
        p.policy = sip_push::ProviderPolicy {
            invite_hold: secs(pick(&|s| s.invite_hold_secs)),
            non_invite_hold: secs(pick(&|s| s.non_invite_hold_secs)),
            skip_interval: secs(pick(&|s| s.skip_interval_secs)),
            refresh_lead: secs(pick(&|s| s.refresh_lead_secs)),
            refresh_retry_offsets: own
                .and_then(|s| s.refresh_retries_secs.clone())
                .or_else(|| star.and_then(|s| s.refresh_retries_secs.clone()))
                .map(|v| v.into_iter().map(Duration::from_secs).collect()),
        };
    }
}

/// A provider name as written in a TOML key: bare (`apns`) when it can
/// be, else quoted (`"*"`, `"apns.voip"`).
pub fn toml_name(name: &str) -> String {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}

/// Builds the senders once, reading every key file; an error names the
/// table and the file (start-up and `--check-config` stop on it).
pub fn build_senders(push: &crate::config::PushSection) -> Result<push_senders::Senders, String> {
    push_senders::Senders::build(push.sender_configs()).map_err(|e| match e.provider {
        Some(p) => format!("push.senders.{p}: {}", e.message),
        None => format!("push.senders: {}", e.message),
    })
}
