//! The push audit: the story of every push and every parked request, kept
//! for a configurable window so an operator can answer "why did this call
//! not ring?" by Call-ID or by binding — each push sent (reason, provider,
//! attempt), its outcome and latency, the device's wake-up REGISTER (or
//! none), the fork or the final answer (480 when no device woke) — and the
//! devices that let pushes go unanswered (flagged).
//!
//! Owns the event log (a ring bounded by age and by count), the per-binding
//! index of last pushes and the flagged-device list. It is fed by the push
//! module ([`crate::pn`]) and the proxy contexts with wall-clock unix ms
//! derived from the node's `now`; it decides nothing and must not change
//! routing, push scheduling or the location. Nothing here runs per
//! REGISTER unless a push is awaiting that binding's wake-up: the audit
//! costs one look-up in an empty map on the REGISTER path otherwise.
//!
//! Queries by Call-ID or binding scan the ring (at most
//! [`AuditConfig::max_events`], 100,000 by default: about a millisecond);
//! recent pushes read it from the newest end; a binding's last push is
//! indexed.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// How much of the story is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    /// Events older than this are forgotten (`push.audit_window`).
    pub window: Duration,
    /// At most this many events are kept, the oldest go first
    /// (`push.audit_max_events`; 0: no audit).
    pub max_events: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { window: Duration::from_secs(3600), max_events: 100_000 }
    }
}

/// Flagged push devices kept for the management view.
pub const MAX_FLAGGED: usize = 1000;

/// Why a push device was flagged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlagReason {
    /// Its registration expired although refresh pushes were sent.
    Expired,
    /// A refresh push had to be repeated: the one before got no REGISTER.
    RefreshUnanswered,
    /// A call push the push service accepted got no REGISTER before the
    /// call's hold ended.
    CallUnanswered,
}

impl FlagReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagReason::Expired => "expired",
            FlagReason::RefreshUnanswered => "refresh-unanswered",
            FlagReason::CallUnanswered => "call-unanswered",
        }
    }
}

/// A push device that lets pushes go unanswered: the way phones silently
/// drop off a push registrar.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlaggedDevice {
    pub aor: String,
    pub binding: String,
    pub provider: String,
    pub reason: FlagReason,
    /// Refresh pushes sent in its current (or, when expired, last)
    /// registration cycle.
    pub refresh_pushes: u32,
    /// How many times it was flagged for this reason (one entry per
    /// device and reason; the newest time wins).
    pub times: u32,
    /// When it was last flagged (unix ms).
    pub at_ms: u64,
}

/// One push as the audit tells it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PushRecord {
    /// The push id (the engine's, or the node's own for test and call-end pushes).
    pub id: u64,
    pub provider: String,
    /// `call`, `mid-dialog`, `refresh`, `test`, `cancel` or `missed-call`.
    pub reason: &'static str,
    /// The parked request's method (call and call-end pushes).
    pub method: Option<String>,
    pub attempt: u32,
    /// `pending` until the push service answers, then `ok`, `rejected`
    /// (the token is dead) or `failed`.
    pub outcome: &'static str,
    /// Sent → the push service's answer.
    pub latency_ms: Option<u64>,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum What {
    /// A request was held for its push devices.
    Parked { method: String, request: u64, bindings: usize },
    /// A push was sent (updated in place with its outcome).
    Push(PushRecord),
    /// The device registered after a push: its wake-up REGISTER.
    Woken { after_push_ms: u64 },
    /// The device did not register before the request's hold ended.
    NotWoken { request: u64 },
    /// The held request went to the woken (or already awake) device.
    Forked { request: u64, wake_latency_ms: Option<u64> },
    /// The held request got its final answer upstream.
    Answered { request: u64, code: u16, outcome: &'static str },
}

/// One event of the story.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub at_ms: u64,
    pub call_id: Option<String>,
    pub binding: Option<String>,
    pub aor: Option<String>,
    #[serde(flatten)]
    pub what: What,
}

/// A push whose device has not registered since.
struct Awaiting {
    at_ms: u64,
    call_id: Option<String>,
    aor: Option<String>,
}

/// The push audit of a node.
pub struct PushAudit {
    cfg: AuditConfig,
    events: VecDeque<AuditEvent>,
    /// Sequence number of `events[0]`.
    first_seq: u64,
    /// Push id → its event, until the push service answers.
    pending: HashMap<u64, u64>,
    /// Binding → the event of its newest push.
    last_push: HashMap<String, u64>,
    /// Binding → the push it has not answered with a REGISTER yet.
    awaiting: HashMap<String, Awaiting>,
    flagged: VecDeque<FlaggedDevice>,
}

impl PushAudit {
    pub fn new(cfg: AuditConfig) -> PushAudit {
        PushAudit {
            cfg,
            events: VecDeque::new(),
            first_seq: 0,
            pending: HashMap::new(),
            last_push: HashMap::new(),
            awaiting: HashMap::new(),
            flagged: VecDeque::new(),
        }
    }

    /// A new window or bound (reload): what no longer fits goes at once.
    pub fn set_config(&mut self, cfg: AuditConfig) {
        self.cfg = cfg;
        while self.events.len() > self.cfg.max_events {
            self.pop_oldest();
        }
    }

    fn record(&mut self, now_ms: u64, ev: AuditEvent) -> Option<u64> {
        self.forget_old(now_ms);
        if self.cfg.max_events == 0 {
            return None;
        }
        while self.events.len() >= self.cfg.max_events {
            self.pop_oldest();
        }
        self.events.push_back(ev);
        Some(self.first_seq + self.events.len() as u64 - 1)
    }

    /// Drops events older than the window.
    pub fn forget_old(&mut self, now_ms: u64) {
        let window = u64::try_from(self.cfg.window.as_millis()).unwrap_or(u64::MAX);
        while self.events.front().is_some_and(|e| e.at_ms.saturating_add(window) < now_ms) {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        let Some(e) = self.events.pop_front() else { return };
        let seq = self.first_seq;
        self.first_seq += 1;
        if let What::Push(p) = &e.what {
            if self.pending.get(&p.id) == Some(&seq) {
                self.pending.remove(&p.id);
            }
            if let Some(b) = &e.binding
                && self.last_push.get(b) == Some(&seq)
            {
                self.last_push.remove(b);
            }
        }
    }

    fn get(&self, seq: u64) -> Option<&AuditEvent> {
        self.events.get(usize::try_from(seq.checked_sub(self.first_seq)?).ok()?)
    }

    fn get_mut(&mut self, seq: u64) -> Option<&mut AuditEvent> {
        let i = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        self.events.get_mut(i)
    }

    /// A request held for `bindings`.
    pub fn parked(&mut self, now_ms: u64, call_id: &str, method: &str, request: u64, bindings: &[String]) {
        let ev = AuditEvent {
            at_ms: now_ms,
            call_id: Some(call_id.to_owned()),
            binding: None,
            aor: None,
            what: What::Parked { method: method.to_owned(), request, bindings: bindings.len() },
        };
        self.record(now_ms, ev);
    }

    /// A push handed to its sender.
    pub fn push_sent(&mut self, now_ms: u64, request: &sip_push::PushRequest, aor: Option<&str>) {
        let (reason, method, call_id) = describe(&request.reason);
        let binding = request.binding.as_str().to_owned();
        // A wake-up is expected from call, mid-dialog and refresh pushes.
        if matches!(reason, "call" | "mid-dialog" | "refresh") {
            let keep_call = self.awaiting.get(&binding).and_then(|a| a.call_id.clone());
            self.awaiting.insert(
                binding.clone(),
                Awaiting {
                    at_ms: now_ms,
                    // A refresh push while a call waits does not hide the call.
                    call_id: call_id.clone().or(keep_call),
                    aor: aor.map(str::to_owned),
                },
            );
        }
        let ev = AuditEvent {
            at_ms: now_ms,
            call_id,
            binding: Some(binding.clone()),
            aor: aor.map(str::to_owned),
            what: What::Push(PushRecord {
                id: request.id.0,
                provider: request.provider.clone(),
                reason,
                method,
                attempt: request.attempt,
                outcome: "pending",
                latency_ms: None,
            }),
        };
        if let Some(seq) = self.record(now_ms, ev) {
            self.pending.insert(request.id.0, seq);
            self.last_push.insert(binding, seq);
        }
    }

    /// The push service answered push `id`, `latency` after it was sent.
    pub fn push_result(&mut self, id: u64, result: Result<(), sip_push::PushError>, latency: Duration) {
        let Some(seq) = self.pending.remove(&id) else { return };
        if let Some(AuditEvent { what: What::Push(p), .. }) = self.get_mut(seq) {
            p.outcome = match result {
                Ok(()) => "ok",
                Err(sip_push::PushError::Rejected) => "rejected",
                Err(sip_push::PushError::Failed) => "failed",
            };
            p.latency_ms = Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
        }
    }

    /// Whether a push waits for this binding's REGISTER (the cheap check of
    /// the REGISTER path).
    pub fn awaits(&self, binding: &str) -> bool {
        !self.awaiting.is_empty() && self.awaiting.contains_key(binding)
    }

    /// The binding registered: if a push waited for it, this was its wake-up REGISTER.
    pub fn registered(&mut self, now_ms: u64, binding: &str) {
        let Some(a) = self.awaiting.remove(binding) else { return };
        let ev = AuditEvent {
            at_ms: now_ms,
            call_id: a.call_id,
            binding: Some(binding.to_owned()),
            aor: a.aor,
            what: What::Woken { after_push_ms: now_ms.saturating_sub(a.at_ms) },
        };
        self.record(now_ms, ev);
    }

    /// The binding is gone: nothing waits for it any more.
    pub fn removed(&mut self, binding: &str) {
        self.awaiting.remove(binding);
        self.last_push.remove(binding);
    }

    /// The held request `request` (Call-ID `call_id`) went to `binding`.
    pub fn forked(&mut self, now_ms: u64, call_id: Option<&str>, binding: &str, request: u64, wake: Option<Duration>) {
        let ev = AuditEvent {
            at_ms: now_ms,
            call_id: call_id.map(str::to_owned),
            binding: Some(binding.to_owned()),
            aor: self.aor_of(binding),
            what: What::Forked {
                request,
                wake_latency_ms: wake.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            },
        };
        self.record(now_ms, ev);
    }

    /// `binding` did not register before the request's hold ended.
    pub fn not_woken(&mut self, now_ms: u64, call_id: Option<&str>, binding: &str, request: u64) {
        let ev = AuditEvent {
            at_ms: now_ms,
            call_id: call_id.map(str::to_owned),
            binding: Some(binding.to_owned()),
            aor: self.aor_of(binding),
            what: What::NotWoken { request },
        };
        self.record(now_ms, ev);
    }

    /// The held request got its final answer upstream.
    pub fn answered(&mut self, now_ms: u64, call_id: Option<&str>, request: u64, code: u16, outcome: &'static str) {
        let ev = AuditEvent {
            at_ms: now_ms,
            call_id: call_id.map(str::to_owned),
            binding: None,
            aor: None,
            what: What::Answered { request, code, outcome },
        };
        self.record(now_ms, ev);
    }

    fn aor_of(&self, binding: &str) -> Option<String> {
        self.last_push.get(binding).and_then(|s| self.get(*s)).and_then(|e| e.aor.clone())
    }

    /// The newest push to `binding` (while it is kept).
    pub fn last_push(&self, binding: &str) -> Option<&AuditEvent> {
        self.last_push.get(binding).and_then(|s| self.get(*s))
    }

    /// The events still inside the window at `now_ms` (the ring is trimmed
    /// when events are added; a quiet node may hold older ones).
    fn kept(&self, now_ms: u64) -> impl DoubleEndedIterator<Item = &AuditEvent> {
        let window = u64::try_from(self.cfg.window.as_millis()).unwrap_or(u64::MAX);
        self.events.iter().filter(move |e| e.at_ms.saturating_add(window) >= now_ms)
    }

    /// Every event of a call, oldest first.
    pub fn call(&self, call_id: &str, now_ms: u64) -> Vec<AuditEvent> {
        self.kept(now_ms).filter(|e| e.call_id.as_deref() == Some(call_id)).cloned().collect()
    }

    /// Every event of a binding, oldest first.
    pub fn binding(&self, binding: &str, now_ms: u64) -> Vec<AuditEvent> {
        self.kept(now_ms).filter(|e| e.binding.as_deref() == Some(binding)).cloned().collect()
    }

    /// The newest `limit` pushes, newest first.
    pub fn recent_pushes(&self, limit: usize, now_ms: u64) -> Vec<AuditEvent> {
        self.kept(now_ms).rev().filter(|e| matches!(e.what, What::Push(_))).take(limit).cloned().collect()
    }

    /// Events held now.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Flags a device (one entry per device and reason, moved to the
    /// newest end each time); returns how many times it has been flagged for it.
    pub fn flag(&mut self, mut d: FlaggedDevice) -> u32 {
        if let Some(i) = self.flagged.iter().position(|f| f.binding == d.binding && f.reason == d.reason) {
            if let Some(old) = self.flagged.remove(i) {
                d.times = old.times + 1;
            }
        } else if self.flagged.len() >= MAX_FLAGGED {
            self.flagged.pop_front();
        }
        let times = d.times;
        self.flagged.push_back(d);
        times
    }

    /// Flagged devices, most recent last.
    pub fn flagged(&self) -> impl Iterator<Item = &FlaggedDevice> {
        self.flagged.iter()
    }
}

/// (reason, method, Call-ID) of a push.
fn describe(reason: &sip_push::PushReason) -> (&'static str, Option<String>, Option<String>) {
    use sip_push::PushReason as R;
    match reason {
        R::Refresh => ("refresh", None, None),
        R::Test => ("test", None, None),
        R::Initial { method, call_id } => ("call", Some(method.clone()), Some(call_id.clone())),
        R::MidDialog { method, call_id } => ("mid-dialog", Some(method.clone()), Some(call_id.clone())),
        R::CallEnded { method, call_id, end } => {
            let r = if *end == sip_push::CallEnd::Missed { "missed-call" } else { "cancel" };
            (r, Some(method.clone()), Some(call_id.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn push(id: u64, binding: &str, reason: sip_push::PushReason, attempt: u32) -> sip_push::PushRequest {
        sip_push::PushRequest {
            id: sip_push::PushId(id),
            binding: sip_push::BindingKey::new(binding),
            provider: "apns".into(),
            prid: "T".into(),
            param: None,
            reason,
            attempt,
            ttl_secs: 30,
            deadline: Instant::now(),
        }
    }

    fn call(cid: &str) -> sip_push::PushReason {
        sip_push::PushReason::Initial { method: "INVITE".into(), call_id: cid.into() }
    }

    #[test]
    fn a_call_story_in_order_with_outcome_and_latency() {
        let mut a = PushAudit::new(AuditConfig::default());
        a.parked(1_000, "c1", "INVITE", 7, &["b1".into()]);
        a.push_sent(1_001, &push(1, "b1", call("c1"), 1), Some("alice@example.com"));
        assert!(a.awaits("b1"));
        a.push_result(1, Ok(()), Duration::from_millis(42));
        a.registered(1_900, "b1");
        assert!(!a.awaits("b1"));
        a.forked(1_901, Some("c1"), "b1", 7, Some(Duration::from_millis(899)));
        a.answered(3_000, Some("c1"), 7, 200, "answered");
        // Another call and a refresh are not in this story.
        a.push_sent(3_500, &push(2, "b2", call("c2"), 1), None);
        a.push_sent(3_600, &push(3, "b1", sip_push::PushReason::Refresh, 1), Some("alice@example.com"));

        let story = a.call("c1", 3_600);
        let kinds: Vec<String> =
            story.iter().map(|e| serde_json::to_value(e).unwrap()["event"].as_str().unwrap().to_owned()).collect();
        assert_eq!(kinds, ["parked", "push", "woken", "forked", "answered"]);
        let p = serde_json::to_value(&story[1]).unwrap();
        assert_eq!(p["outcome"], "ok");
        assert_eq!(p["latency_ms"], 42);
        assert_eq!(p["aor"], "alice@example.com");
        assert_eq!(p["reason"], "call");
        assert_eq!(serde_json::to_value(&story[2]).unwrap()["after_push_ms"], 899);
        assert_eq!(a.binding("b1", 3_600).len(), 4);
        assert!(a.call("c1", 3_700_000).is_empty(), "out of the window");
        assert_eq!(
            a.recent_pushes(2, 3_600).iter().map(|e| e.binding.clone().unwrap()).collect::<Vec<_>>(),
            ["b1", "b2"]
        );
        let last = a.last_push("b1").unwrap();
        assert!(matches!(&last.what, What::Push(p) if p.reason == "refresh" && p.outcome == "pending"));
    }

    #[test]
    fn the_window_and_the_count_bound_what_is_kept() {
        let mut a = PushAudit::new(AuditConfig { window: Duration::from_secs(10), max_events: 3 });
        for i in 0..5 {
            a.push_sent(i * 1000, &push(i, "b1", sip_push::PushReason::Refresh, 1), None);
        }
        assert_eq!(a.len(), 3);
        // The result of a push no longer kept is ignored; a kept one lands.
        a.push_result(0, Ok(()), Duration::ZERO);
        a.push_result(4, Err(sip_push::PushError::Rejected), Duration::from_millis(5));
        assert!(matches!(&a.last_push("b1").unwrap().what, What::Push(p) if p.outcome == "rejected"));
        a.forget_old(60_000);
        assert!(a.is_empty());
        assert!(a.last_push("b1").is_none());
        // max_events 0: nothing is kept.
        let mut off = PushAudit::new(AuditConfig { window: Duration::from_secs(10), max_events: 0 });
        off.push_sent(0, &push(1, "b1", sip_push::PushReason::Refresh, 1), None);
        assert!(off.is_empty());
    }

    #[test]
    fn a_device_is_flagged_once_per_reason_and_counted() {
        let mut a = PushAudit::new(AuditConfig::default());
        let d = |reason, at_ms| FlaggedDevice {
            aor: "a@x".into(),
            binding: "b1".into(),
            provider: "apns".into(),
            reason,
            refresh_pushes: 2,
            times: 1,
            at_ms,
        };
        assert_eq!(a.flag(d(FlagReason::RefreshUnanswered, 1)), 1);
        assert_eq!(a.flag(d(FlagReason::Expired, 2)), 1);
        assert_eq!(a.flag(d(FlagReason::RefreshUnanswered, 3)), 2);
        let list: Vec<_> = a.flagged().map(|f| (f.reason, f.times, f.at_ms)).collect();
        assert_eq!(list, [(FlagReason::Expired, 1, 2), (FlagReason::RefreshUnanswered, 2, 3)]);
    }
}
