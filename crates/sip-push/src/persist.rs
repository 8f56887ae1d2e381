//! A stable, versioned text encoding of one binding's push state — its
//! `+sip.pnsreg` flag and its PURRs ([`PurrRecord`]) — so they survive a
//! restart next to the binding in the registrar store (which keeps the
//! text verbatim and never interprets it).
//!
//! [`Instant`](std::time::Instant)s cannot be stored, so times are wall-clock unix ms: a
//! [`PurrRecord`] taken at some `now` is encoded against the wall-clock
//! `now_ms` of that same moment (issue and replacement times become
//! absolute), and decoded against the wall-clock `now_ms` of the moment the
//! records are handed to [`crate::PushEngine::restore`] (they become ages
//! again). A wall clock that went backwards yields age zero, never a panic.
//!
//! # Format, version 1
//!
//! One line of space-separated fields, the version first:
//!
//! ```text
//! v1 pnsreg=1 purr=<token>:<issued_ms> purr=<token>:<issued_ms>:<replaced_ms>
//! ```
//!
//! * `pnsreg=0|1`: exactly once.
//! * `purr=`: zero or more, oldest first (as [`crate::PushEngine::purr_records`]
//!   returns them); `<replaced_ms>` only for a replaced PURR.
//!
//! Compatibility: a reader skips `key=value` fields it does not know (a
//! later writer may add some within version 1); an incompatible change
//! bumps the version, which older readers refuse
//! ([`PushStateError::UnsupportedVersion`]) instead of misreading.
//!
//! Decoding never panics on any input: malformed text is an error. PURR
//! tokens are secrets (whoever holds one can wake the device): neither this
//! module nor its errors ever log or echo them or the input.

use crate::purr::PurrRecord;
use std::fmt;
use std::time::Duration;

/// The version [`encode_push_state`] writes.
pub const PUSH_STATE_VERSION: u32 = 1;

/// The longest text [`decode_push_state`] accepts, in bytes.
pub const MAX_PUSH_STATE_LEN: usize = 8 * 1024;

/// The most PURR records [`decode_push_state`] accepts.
pub const MAX_PURR_RECORDS: usize = 64;

/// The longest PURR token accepted (issued ones have 22 or 35 chars).
const MAX_TOKEN_LEN: usize = 128;

/// Why a push state could not be decoded. Never contains the input.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushStateError {
    /// The text is empty or blank.
    Empty,
    /// Longer than [`MAX_PUSH_STATE_LEN`].
    TooLong(usize),
    /// Written by a newer (or unknown) format version.
    UnsupportedVersion(u32),
    /// Not a push state of a known shape: what is wrong (no input echoed).
    Malformed(&'static str),
}

impl fmt::Display for PushStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushStateError::Empty => write!(f, "empty push state"),
            PushStateError::TooLong(n) => {
                write!(f, "push state of {n} bytes is longer than the limit of {MAX_PUSH_STATE_LEN}")
            }
            PushStateError::UnsupportedVersion(v) => write!(
                f,
                "push state format version {v} is not supported (this program knows up to {PUSH_STATE_VERSION})"
            ),
            PushStateError::Malformed(what) => write!(f, "malformed push state: {what}"),
        }
    }
}

impl std::error::Error for PushStateError {}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Encodes a binding's `pnsreg` flag and PURR records (as
/// [`crate::PushEngine::purr_records`] returned them at some moment) against
/// the wall-clock time `now_ms` (unix ms) of that same moment.
///
/// Tokens that could not be decoded back (outside the base64url alphabet,
/// empty or too long; the engine never issues such) are left out, as are
/// records beyond [`MAX_PURR_RECORDS`] (the oldest go first).
pub fn encode_push_state(pnsreg: bool, records: &[PurrRecord], now_ms: u64) -> String {
    let mut out = format!("v{PUSH_STATE_VERSION} pnsreg={}", u8::from(pnsreg));
    let valid: Vec<&PurrRecord> = records.iter().filter(|r| valid_token(&r.purr)).collect();
    let skip = valid.len().saturating_sub(MAX_PURR_RECORDS);
    for r in valid.into_iter().skip(skip) {
        let issued = now_ms.saturating_sub(ms(r.age));
        out.push_str(" purr=");
        out.push_str(&r.purr);
        out.push(':');
        out.push_str(&issued.to_string());
        if let Some(ago) = r.retired {
            // Replaced after it was issued, even if `age` was clamped.
            let replaced = now_ms.saturating_sub(ms(ago)).max(issued);
            out.push(':');
            out.push_str(&replaced.to_string());
        }
    }
    out
}

/// Decodes a push state written by [`encode_push_state`] (of this or an
/// earlier version) at the wall-clock time `now_ms` (unix ms): the
/// `pnsreg` flag and the PURR records, with ages relative to `now_ms`,
/// ready for [`crate::Restored`] (`pnsreg`, `purrs`) and
/// [`crate::PushEngine::restore`] at the `Instant` matching `now_ms`.
///
/// Replaced PURRs whose `horizon` (normally
/// [`crate::PushConfig::purr_horizon`] of the engine that restores them)
/// has passed are dropped. Any malformed input is an error, never a panic.
pub fn decode_push_state(s: &str, now_ms: u64, horizon: Duration) -> Result<(bool, Vec<PurrRecord>), PushStateError> {
    if s.len() > MAX_PUSH_STATE_LEN {
        return Err(PushStateError::TooLong(s.len()));
    }
    let mut fields = s.split_ascii_whitespace();
    let version = fields.next().ok_or(PushStateError::Empty)?;
    let version: u32 = version
        .strip_prefix('v')
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(PushStateError::Malformed("it does not start with a version (v1)"))?
        .parse()
        .map_err(|_| PushStateError::Malformed("version number out of range"))?;
    if version != PUSH_STATE_VERSION {
        return Err(PushStateError::UnsupportedVersion(version));
    }
    let mut pnsreg = None;
    let mut records = Vec::new();
    let mut purrs = 0usize;
    for field in fields {
        let (key, value) = field.split_once('=').ok_or(PushStateError::Malformed("a field is not key=value"))?;
        match key {
            "pnsreg" => {
                let flag = match value {
                    "0" => false,
                    "1" => true,
                    _ => return Err(PushStateError::Malformed("pnsreg is not 0 or 1")),
                };
                if pnsreg.replace(flag).is_some() {
                    return Err(PushStateError::Malformed("pnsreg given twice"));
                }
            }
            "purr" => {
                purrs += 1;
                if purrs > MAX_PURR_RECORDS {
                    return Err(PushStateError::Malformed("too many PURR records"));
                }
                if let Some(r) = decode_purr(value, now_ms, horizon)? {
                    records.push(r);
                }
            }
            "" => return Err(PushStateError::Malformed("a field has an empty name")),
            _ => {} // a later writer's field: skip it
        }
    }
    let pnsreg = pnsreg.ok_or(PushStateError::Malformed("pnsreg is missing"))?;
    Ok((pnsreg, records))
}

/// One `purr=` value; `None` when it is a replaced PURR past `horizon`.
fn decode_purr(value: &str, now_ms: u64, horizon: Duration) -> Result<Option<PurrRecord>, PushStateError> {
    let mut parts = value.split(':');
    let token = parts.next().unwrap_or_default();
    if !valid_token(token) {
        return Err(PushStateError::Malformed("a PURR token is empty, too long or not base64url"));
    }
    let time = |p: Option<&str>| -> Result<Option<u64>, PushStateError> {
        p.map(|t| {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(PushStateError::Malformed("a PURR time is not a number of ms"));
            }
            t.parse::<u64>().map_err(|_| PushStateError::Malformed("a PURR time is out of range"))
        })
        .transpose()
    };
    let issued = time(parts.next())?.ok_or(PushStateError::Malformed("a PURR record has no issue time"))?;
    let replaced = time(parts.next())?;
    if parts.next().is_some() {
        return Err(PushStateError::Malformed("a PURR record has too many parts"));
    }
    if replaced.is_some_and(|r| r < issued) {
        return Err(PushStateError::Malformed("a PURR was replaced before it was issued"));
    }
    let retired = replaced.map(|r| Duration::from_millis(now_ms.saturating_sub(r)));
    if retired.is_some_and(|ago| ago >= horizon) {
        return Ok(None);
    }
    Ok(Some(PurrRecord { purr: token.to_owned(), age: Duration::from_millis(now_ms.saturating_sub(issued)), retired }))
}

/// Non-empty, bounded, base64url alphabet (what the engine issues).
fn valid_token(t: &str) -> bool {
    !t.is_empty() && t.len() <= MAX_TOKEN_LEN && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_MS: u64 = 1_700_000_000_000;
    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn rec(purr: &str, age_s: u64, retired_s: Option<u64>) -> PurrRecord {
        PurrRecord { purr: purr.into(), age: Duration::from_secs(age_s), retired: retired_s.map(Duration::from_secs) }
    }

    #[test]
    fn round_trip_at_the_same_and_a_later_time() {
        let records = vec![rec("AAAAAAAAAAAAAAAAAAAAAA", 7200, Some(3600)), rec("b-_9xyzXYZ0123456789ab", 3600, None)];
        for pnsreg in [false, true] {
            let s = encode_push_state(pnsreg, &records, NOW_MS);
            assert!(s.starts_with("v1 "), "{s}");
            assert!(!s.contains('\n'));
            assert_eq!(decode_push_state(&s, NOW_MS, DAY).unwrap(), (pnsreg, records.clone()));
            // Restarted 10 min later: every record is 10 min older.
            let later = decode_push_state(&s, NOW_MS + 600_000, DAY).unwrap();
            let aged: Vec<PurrRecord> = records
                .iter()
                .map(|r| PurrRecord {
                    purr: r.purr.clone(),
                    age: r.age + Duration::from_secs(600),
                    retired: r.retired.map(|d| d + Duration::from_secs(600)),
                })
                .collect();
            assert_eq!(later, (pnsreg, aged));
        }
        assert_eq!(decode_push_state(&encode_push_state(true, &[], NOW_MS), NOW_MS, DAY).unwrap(), (true, vec![]));
    }

    #[test]
    fn expired_replaced_purrs_are_dropped_on_decode() {
        let records = vec![rec("old", 90_000, Some(80_000)), rec("mid", 50_000, Some(3600)), rec("cur", 3600, None)];
        let s = encode_push_state(false, &records, NOW_MS);
        // 80 000 s + 10 000 s ≥ 24 h: gone; the current one never expires.
        let (_, got) = decode_push_state(&s, NOW_MS + 10_000_000, DAY).unwrap();
        let names: Vec<&str> = got.iter().map(|r| r.purr.as_str()).collect();
        assert_eq!(names, ["mid", "cur"]);
        // Exactly at the horizon counts as expired (as the engine's restore).
        let (_, got) = decode_push_state(&s, NOW_MS, Duration::from_secs(3600)).unwrap();
        assert_eq!(got.iter().map(|r| r.purr.as_str()).collect::<Vec<_>>(), ["cur"]);
    }

    #[test]
    fn clock_going_backwards_gives_age_zero() {
        let s = encode_push_state(true, &[rec("tok", 10, Some(5))], NOW_MS);
        let (_, got) = decode_push_state(&s, NOW_MS - 3_600_000, DAY).unwrap();
        assert_eq!(got, vec![rec("tok", 0, Some(0))]);
        // Ages beyond the wall clock's origin clamp too.
        let s = encode_push_state(false, &[rec("tok", u64::MAX, None)], 5);
        assert_eq!(
            decode_push_state(&s, 5, DAY).unwrap().1,
            vec![PurrRecord { age: Duration::from_millis(5), ..rec("tok", 0, None) }]
        );
    }

    #[test]
    fn unknown_fields_are_skipped_and_unknown_versions_refused() {
        let (flag, got) = decode_push_state("v1 future=x pnsreg=1 purr=abc:5 more=1:2", 10, DAY).unwrap();
        assert!(flag);
        assert_eq!(got, vec![PurrRecord { purr: "abc".into(), age: Duration::from_millis(5), retired: None }]);
        assert_eq!(decode_push_state("v2 whatever", 10, DAY), Err(PushStateError::UnsupportedVersion(2)));
        assert_eq!(decode_push_state("v0 pnsreg=1", 10, DAY), Err(PushStateError::UnsupportedVersion(0)));
    }

    #[test]
    fn encode_leaves_out_what_it_could_not_read_back() {
        let s = encode_push_state(false, &[rec("bad token", 1, None), rec("", 1, None), rec("ok", 1, None)], NOW_MS);
        assert_eq!(decode_push_state(&s, NOW_MS, DAY).unwrap().1, vec![rec("ok", 1, None)]);
        let many: Vec<PurrRecord> = (0..100).map(|i| rec(&format!("t{i}"), 1, None)).collect();
        let (_, got) = decode_push_state(&encode_push_state(false, &many, NOW_MS), NOW_MS, DAY).unwrap();
        assert_eq!(got.len(), MAX_PURR_RECORDS);
        assert_eq!(got[0].purr, "t36", "the newest are kept");
    }

    #[test]
    fn garbage_is_rejected_without_echoing_it() {
        let long = format!("v1 pnsreg=1 {}", "x=y ".repeat(MAX_PUSH_STATE_LEN));
        let too_many = format!("v1 pnsreg=1{}", " purr=a:1".repeat(MAX_PURR_RECORDS + 1));
        let cases = [
            "",
            "   ",
            "pnsreg=1",
            "v",
            "vx pnsreg=1",
            "v-1 pnsreg=1",
            "v99999999999999999999 pnsreg=1",
            "v1",
            "v1 pnsreg=2",
            "v1 pnsreg=1 pnsreg=1",
            "v1 pnsreg",
            "v1 pnsreg=1 =x",
            "v1 pnsreg=1 purr=",
            "v1 pnsreg=1 purr=SECRETTOKEN",
            "v1 pnsreg=1 purr=SECRETTOKEN:",
            "v1 pnsreg=1 purr=SECRETTOKEN:-5",
            "v1 pnsreg=1 purr=SECRETTOKEN:+5",
            "v1 pnsreg=1 purr=SECRETTOKEN:1e3",
            "v1 pnsreg=1 purr=SECRETTOKEN:99999999999999999999",
            "v1 pnsreg=1 purr=SECRETTOKEN:1:2:3",
            "v1 pnsreg=1 purr=SECRETTOKEN:10:5",
            "v1 pnsreg=1 purr=SECRET/TOKEN:1",
            "v1 pnsreg=1 purr=SECRETTOKËN:1",
            "v1 pnsreg=1 purr=:1",
            "\u{0}\u{1}\u{ffff}",
            "{\"pnsreg\":true}",
            long.as_str(),
            too_many.as_str(),
        ];
        for input in cases {
            let err = decode_push_state(input, NOW_MS, DAY).expect_err(input);
            let msg = err.to_string();
            assert!(!msg.contains("SECRET") && !msg.is_empty(), "{input:?}: {msg}");
        }
        assert!(matches!(decode_push_state(&long, NOW_MS, DAY), Err(PushStateError::TooLong(_))));
        let too_long_token = format!("v1 pnsreg=1 purr={}:1", "a".repeat(MAX_TOKEN_LEN + 1));
        assert!(decode_push_state(&too_long_token, NOW_MS, DAY).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // splitmix64 over a few thousand inputs mixing the format's own
        // characters with random ones.
        let mut s = 42u64;
        let mut next = || {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let alphabet: Vec<char> = "v1 pnsreg=01purr:9aZ-_\u{e9}\t\n=:".chars().collect();
        for _ in 0..5000 {
            let len = (next() % 40) as usize;
            let text: String = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 8 == 0 {
                        char::from_u32((r >> 8) as u32 % 0x11_0000).unwrap_or('?')
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            let _ = decode_push_state(&text, next(), Duration::from_millis(next()));
            let _ = decode_push_state(&format!("v1 pnsreg=1 purr={text}"), NOW_MS, DAY);
        }
    }
}
