//! The reply the registrar wants sent, and how bindings are written into it.

use crate::binding::Binding;
use sip_msg::HeaderName;
use std::time::{Duration, UNIX_EPOCH};

/// A response to send: status, optional reason phrase, extra headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub reason: Option<&'static str>,
    pub headers: Vec<(HeaderName, String)>,
}

impl Reply {
    pub fn new(code: u16) -> Reply {
        Reply { code, reason: None, headers: Vec::new() }
    }
    pub fn reason(mut self, reason: &'static str) -> Reply {
        self.reason = Some(reason);
        self
    }
    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// q × 1000 as a q-value (`1`, `0.5`, `0.125`).
pub fn format_q(q: u16) -> String {
    if q >= 1000 {
        return "1".into();
    }
    if q == 0 {
        return "0".into();
    }
    let s = format!("0.{q:03}");
    s.trim_end_matches('0').to_string()
}

/// Parses a q-value (`0`, `1`, `0.5`, `1.000`, at most 3 decimals) into q × 1000.
pub fn parse_q(v: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(v).ok()?;
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let frac_val: u16 = if frac.is_empty() { 0 } else { format!("{frac:0<3}").parse().ok()? };
    match int {
        "0" => Some(frac_val),
        "1" if frac_val == 0 => Some(1000),
        _ => None,
    }
}

/// One Contact value of a 200 OK: `<uri>;expires=N[;q=..][;+sip.instance=".."][;reg-id=N]`.
pub fn contact_value(b: &Binding, now_ms: u64) -> String {
    let mut s = format!("<{}>;expires={}", b.uri, b.remaining_secs(now_ms));
    if let Some(q) = b.q {
        s.push_str(";q=");
        s.push_str(&format_q(q));
    }
    if let Some(i) = &b.instance {
        s.push_str(&format!(";+sip.instance=\"{i}\""));
    }
    if let Some(r) = b.reg_id {
        s.push_str(&format!(";reg-id={r}"));
    }
    s
}

/// The Date header value (RFC 3261 §20.17: RFC 1123 date in GMT).
pub fn date_value(now_ms: u64) -> String {
    thread_local! {
        /// The last second formatted on this thread: a busy registrar formats it once a second.
        static LAST: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let sec = now_ms / 1000;
    LAST.with_borrow_mut(|(at, text)| {
        if *at != sec {
            *text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(sec));
            *at = sec;
        }
        text.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn q_values() {
        assert_eq!(parse_q(b"0.5"), Some(500));
        assert_eq!(parse_q(b"1"), Some(1000));
        assert_eq!(parse_q(b"1.000"), Some(1000));
        assert_eq!(parse_q(b"0"), Some(0));
        assert_eq!(parse_q(b"0.125"), Some(125));
        assert_eq!(parse_q(b"1.5"), None);
        assert_eq!(parse_q(b"0.1234"), None);
        assert_eq!(parse_q(b"abc"), None);
        assert_eq!(format_q(500), "0.5");
        assert_eq!(format_q(125), "0.125");
        assert_eq!(format_q(1000), "1");
        assert_eq!(format_q(0), "0");
    }
    #[test]
    fn date() {
        assert_eq!(date_value(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(date_value(999), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(date_value(86_400_000 + 1500), "Fri, 02 Jan 1970 00:00:01 GMT");
        assert_eq!(date_value(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
