//! Test helpers: responses parsed from text, virtual time, and views of the
//! action lists.
#![allow(dead_code)]

use bytes::Bytes;
use sip_msg::{Limits, Message, Method, parse_datagram, reason_phrase};
use sip_proxy::{Action, ContextConfig, ProxyContext, Target};
use std::time::{Duration, Instant};

/// A response to `method` (Via already popped by the core), with extra
/// header lines (each ending in CRLF).
pub fn resp_to(code: u16, method: &str, extra: &str) -> Message {
    let text = format!(
        "SIP/2.0 {code} {}\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKupstream\r\n\
From: <sip:alice@example.com>;tag=a1\r\n\
To: <sip:bob@example.com>;tag=b{code}\r\n\
Call-ID: call-1@example.com\r\n\
CSeq: 1 {method}\r\n\
{extra}Content-Length: 0\r\n\r\n",
        reason_phrase(code)
    );
    parse_datagram(Bytes::from(text), &Limits::default()).expect("test response parses")
}

/// A response to INVITE.
pub fn resp(code: u16) -> Message {
    resp_to(code, "INVITE", "")
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The base of virtual time.
pub fn t0() -> Instant {
    Instant::now()
}

pub fn targets(ts: &[(&str, u16)]) -> Vec<Target> {
    ts.iter().map(|&(id, q)| Target::with_q(id, q)).collect()
}

pub fn invite(ts: &[(&str, u16)], now: Instant) -> (ProxyContext, Vec<Action>) {
    ProxyContext::new(Method::Invite, targets(ts), ContextConfig::default(), now)
}

/// `(branch, target)` of every StartBranch.
pub fn starts(a: &[Action]) -> Vec<(u32, String)> {
    a.iter()
        .filter_map(|a| match a {
            Action::StartBranch { branch, target_id } => Some((*branch, target_id.clone())),
            _ => None,
        })
        .collect()
}

pub fn started_ids(a: &[Action]) -> Vec<String> {
    starts(a).into_iter().map(|(_, t)| t).collect()
}

pub fn cancels(a: &[Action]) -> Vec<u32> {
    a.iter()
        .filter_map(|a| match a {
            Action::CancelBranch { branch } => Some(*branch),
            _ => None,
        })
        .collect()
}

/// Status codes of forwarded responses.
pub fn forwarded(a: &[Action]) -> Vec<u16> {
    a.iter()
        .filter_map(|a| match a {
            Action::Forward { response } => response.status(),
            _ => None,
        })
        .collect()
}

/// Status codes of responses the proxy generates.
pub fn responded(a: &[Action]) -> Vec<u16> {
    a.iter()
        .filter_map(|a| match a {
            Action::Respond { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

/// Status codes of everything that goes upstream (forwarded or generated).
pub fn upstream(a: &[Action]) -> Vec<u16> {
    a.iter()
        .filter_map(|a| match a {
            Action::Forward { response } => response.status(),
            Action::Respond { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}
