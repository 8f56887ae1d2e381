#![allow(dead_code)]

use sip_push::{BindingKey, PushId, PushReason, PushRequest};
use std::time::{Duration, Instant};

pub fn initial(provider: &str) -> PushRequest {
    PushRequest {
        id: PushId(7),
        binding: BindingKey::from("b-42"),
        provider: provider.into(),
        prid: "00fc13adff78512".into(),
        param: Some("DEF123GHIJ.com.example.app.voip".into()),
        reason: PushReason::Initial { method: "INVITE".into(), call_id: "a84b4c76e66710@pc33".into() },
        attempt: 1,
        ttl_secs: 30,
        deadline: Instant::now() + Duration::from_secs(30),
    }
}

pub fn refresh(provider: &str) -> PushRequest {
    PushRequest {
        id: PushId(9),
        binding: BindingKey::from("b-43"),
        provider: provider.into(),
        prid: "tok; rm -rf / $(id) `x`".into(),
        param: None,
        reason: PushReason::Refresh,
        attempt: 3,
        ttl_secs: 120,
        deadline: Instant::now() + Duration::from_secs(120),
    }
}
