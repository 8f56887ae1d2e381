//! Virtual-time harness shared by the integration tests: a seeded RNG, an
//! engine, a clock that only moves when told, and helpers to register
//! bindings and collect outputs.
#![allow(dead_code)]

use sip_msg::Method;
use sip_push::*;
use std::time::{Duration, Instant};

/// splitmix64 as a byte source: deterministic, good enough for tests.
pub fn rng(seed: u64) -> impl FnMut(&mut [u8]) + Send + 'static {
    let mut s = seed;
    move |buf: &mut [u8]| {
        for chunk in buf.chunks_mut(8) {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn cfg() -> PushConfig {
    PushConfig::with_providers(["apns", "fcm", "webpush"])
}

pub fn apns(prid: &str) -> PnInfo {
    PnInfo { provider: "apns".into(), prid: prid.into(), param: Some("TEAM.com.example.app.voip".into()) }
}

pub struct Harness {
    pub engine: PushEngine,
    pub t0: Instant,
    pub now: Instant,
}

impl Harness {
    pub fn new(cfg: PushConfig) -> Harness {
        Harness::with_seed(cfg, 7)
    }

    /// A harness whose RNG starts at `seed` (a restarted process draws
    /// different random numbers).
    pub fn with_seed(cfg: PushConfig, seed: u64) -> Harness {
        let engine = PushEngine::new(cfg, rng(seed)).expect("valid config");
        let t0 = Instant::now();
        Harness { engine, t0, now: t0 }
    }

    /// `t0 + s` seconds.
    pub fn at(&self, s: u64) -> Instant {
        self.t0 + secs(s)
    }

    /// Seconds since t0 (for assertions on when something happened).
    pub fn t(&self) -> u64 {
        (self.now - self.t0).as_secs()
    }

    pub fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.engine.poll_output()).collect()
    }

    /// Runs every timer up to `t0 + s`, in order, moving the clock to each
    /// timer; returns `(seconds since t0, output)` pairs.
    pub fn run_to(&mut self, s: u64) -> Vec<(u64, Output)> {
        let end = self.at(s);
        let mut got = Vec::new();
        while let Some(t) = self.engine.poll_timeout().filter(|t| *t <= end) {
            self.now = self.now.max(t);
            self.engine.handle_timeout(self.now);
            let when = self.t();
            got.extend(self.drain().into_iter().map(|o| (when, o)));
        }
        self.now = end;
        got
    }

    pub fn register(&mut self, key: &str, info: PnInfo, expires: u64) -> Option<String> {
        self.register_with(key, info, expires, false)
    }

    pub fn register_with(&mut self, key: &str, info: PnInfo, expires: u64, pnsreg: bool) -> Option<String> {
        let reg = Registration { binding: key.into(), info: Some(info), expires: secs(expires), pnsreg };
        self.engine.handle_register_ok(reg, self.now)
    }

    pub fn park(&mut self, id: u64, method: Method, targets: Vec<ParkTarget>) -> Result<usize, ParkError> {
        let park =
            Park { request: RequestId(id), method, call_id: format!("call-{id}"), kind: ParkKind::Initial, targets };
        self.engine.handle_park(park, self.now)
    }
}

/// The push requests among outputs.
pub fn pushes(out: &[Output]) -> Vec<&PushRequest> {
    out.iter()
        .filter_map(|o| match o {
            Output::Push(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// When (seconds since t0) each refresh push of `key` went.
pub fn refresh_times(out: &[(u64, Output)], key: &str) -> Vec<u64> {
    out.iter()
        .filter_map(|(t, o)| match o {
            Output::Push(p) if p.binding.as_str() == key && p.reason == PushReason::Refresh => Some(*t),
            _ => None,
        })
        .collect()
}
