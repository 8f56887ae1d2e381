//! The mid-registrar role (OpenSIPS `mid_registrar`, RFC 8599's "SIP
//! proxy" in front of a registrar the operator cannot replace): REGISTERs
//! go to the upstream registrar with rewritten Contacts, the local location
//! service keeps the devices' own Contacts (so push wake-up works exactly
//! as in registrar mode, through the one `pn` module), and the upstream
//! sees fewer REGISTERs (throttling).
//!
//! Owns the upstream registrations (one per device binding in `mirror` and
//! `contact` modes, one per AoR in `aor` mode; key = the `ctid` URI
//! parameter of the Contact registered upstream), the REGISTERs in flight
//! upstream, the REGISTERs and OPTIONS sipwake sends itself (de-register,
//! re-send after an upstream restart, keep-alive), and the re-send queue.
//! Rules: a local binding is written only after the upstream accepted it
//! (or, for an absorbed refresh, after it accepted the very same
//! registration); no push logic here (RFC 8599 is `pn`'s); no routing of
//! other requests (that is `decide`'s, which asks [`Mid::lookup_key`]).
//!
//! Modules: `register` (a device's REGISTER: absorb or forward, the
//! upstream's answer), `upstream` (what sipwake sends itself and its
//! answers, keep-alive, re-send), `rewrite` (pure message building).

mod register;
pub mod rewrite;
mod upstream;

use sip_msg::{Target, Transport};
use sip_registrar::Aor;
use sip_txn::{ClientKey, ServerKey};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How REGISTERs reach the upstream (OpenSIPS `mode` 0/1/2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Throttle {
    /// Every REGISTER is forwarded, with the device's expiry.
    Mirror,
    /// One upstream registration per device, asked with `upstream_expires`;
    /// a device's refreshes inside it are answered here.
    Contact,
    /// One upstream registration per AoR, whatever the number of devices.
    Aor,
}

impl Throttle {
    pub fn as_str(self) -> &'static str {
        match self {
            Throttle::Mirror => "mirror",
            Throttle::Contact => "contact",
            Throttle::Aor => "aor",
        }
    }
}

/// The mid-registrar's settings (`[mid_registrar]`).
#[derive(Clone, Debug)]
pub struct MidConfig {
    /// Where the upstream registrar is.
    pub upstream: Target,
    pub throttle: Throttle,
    /// The expiry asked of the upstream in `contact` and `aor` modes, seconds.
    pub upstream_expires: u32,
    /// A device's REGISTER the upstream does not answer within this gets 503.
    pub upstream_timeout: Duration,
    /// OPTIONS keep-alive to the upstream (`None`: off).
    pub keepalive: Option<Duration>,
    /// REGISTERs per second sipwake re-sends after the upstream lost its registrations.
    pub resend_per_sec: u32,
    /// A header of the upstream's keep-alive answers whose value names its
    /// running instance (e.g. a token Kamailio draws at start-up): a new
    /// value means it restarted, even too quickly for a keep-alive to miss.
    pub instance_header: Option<String>,
}

/// One registration sipwake holds at the upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamReg {
    /// The `ctid` of its Contact: the binding id, or an AoR key in `aor` mode.
    pub key: String,
    pub aor: Aor,
    /// The Contact URI registered upstream.
    pub contact: String,
    /// When the upstream registration expires, unix ms (0: not registered).
    pub expires_at: u64,
    /// The dialog of the REGISTERs sipwake sends itself for it.
    pub call_id: String,
    pub cseq: u32,
    /// The upstream's last final answer about it, and when (unix ms).
    pub last_code: u16,
    pub last_at: u64,
}

/// A device's REGISTER waiting for the upstream's answer.
pub(crate) struct Forward {
    pub skey: ServerKey,
    pub req: sip_msg::Message,
    pub flow: sip_registrar::Flow,
    pub auth_user: Option<(String, String)>,
    pub aor: Aor,
    /// By Contact index: the binding the Contact touches (dry run).
    pub contact_ids: Vec<Option<String>>,
    /// By Contact index: the device's requested expiry.
    pub requested: Vec<u32>,
    pub classes: Vec<(String, sip_push::Classification)>,
    /// What went upstream: (key, Contact URI, expires).
    pub sent: Vec<(String, String, u32)>,
    pub star: bool,
    pub deadline: (Instant, u64),
    /// Answered already (the upstream timed out): a late answer is dropped.
    pub answered: bool,
    pub started: Instant,
}

/// Why sipwake sent a REGISTER of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnPurpose {
    /// The upstream lost it (restart) or it nears expiry while devices live.
    Resend,
    /// The devices behind it are gone.
    Deregister,
}

pub(crate) enum Own {
    /// `expires`: what it asked (the grant when the 2xx lists none).
    Register {
        key: String,
        purpose: OwnPurpose,
        reg: Box<UpstreamReg>,
        expires: u32,
    },
    Keepalive,
}

/// The mid-registrar's state.
pub struct Mid {
    pub cfg: MidConfig,
    pub(crate) regs: HashMap<String, UpstreamReg>,
    pub(crate) forwards: HashMap<ClientKey, Forward>,
    /// Upstream answer deadlines of forwarded REGISTERs.
    pub(crate) deadlines: BTreeMap<(Instant, u64), ClientKey>,
    pub(crate) own: HashMap<ClientKey, Own>,
    pub(crate) seq: u64,
    /// The upstream answered its last keep-alive (or nothing says otherwise yet).
    pub(crate) up: bool,
    pub(crate) keepalive_at: Option<Instant>,
    pub(crate) keepalive_pending: Option<(ClientKey, Instant)>,
    pub(crate) resend: VecDeque<String>,
    pub(crate) resend_queued: HashSet<String>,
    pub(crate) next_resend: Instant,
    /// Safety refreshes: (unix ms, key) of registrations nearing their upstream expiry.
    pub(crate) refresh: BTreeSet<(u64, String)>,
    /// The upstream's instance, as its keep-alive answers last named it.
    pub(crate) instance: Option<bytes::Bytes>,
}

/// A view of one upstream registration (management).
#[derive(Clone, Debug)]
pub struct RegView<'a> {
    pub reg: &'a UpstreamReg,
    /// The local bindings behind it.
    pub bindings: Vec<String>,
}

impl Mid {
    pub fn new(cfg: MidConfig, now: Instant) -> Mid {
        crate::metrics::mid_up(true);
        // The first keep-alive at once: it learns the upstream's instance.
        let keepalive_at = cfg.keepalive.map(|_| now);
        Mid {
            cfg,
            regs: HashMap::new(),
            forwards: HashMap::new(),
            deadlines: BTreeMap::new(),
            own: HashMap::new(),
            seq: 0,
            up: true,
            keepalive_at,
            keepalive_pending: None,
            resend: VecDeque::new(),
            resend_queued: HashSet::new(),
            next_resend: now,
            refresh: BTreeSet::new(),
            instance: None,
        }
    }

    /// The upstream key of a device binding.
    pub fn key_for(&self, aor: &Aor, binding: &str) -> String {
        match self.cfg.throttle {
            Throttle::Aor => aor_key(aor),
            Throttle::Mirror | Throttle::Contact => binding.to_string(),
        }
    }

    /// Whether the upstream answers (as far as the keep-alive knows).
    pub fn upstream_up(&self) -> bool {
        self.up
    }

    /// The upstream registrations.
    pub fn registrations(&self) -> impl Iterator<Item = &UpstreamReg> {
        self.regs.values()
    }

    /// One upstream registration.
    pub fn registration(&self, key: &str) -> Option<&UpstreamReg> {
        self.regs.get(key)
    }

    /// REGISTERs waiting for the upstream.
    pub fn in_flight(&self) -> usize {
        self.forwards.len()
    }

    /// The upstream registration a request's Request-URI names (its `ctid`).
    pub fn lookup_key(&self, ruri: &sip_msg::SipUri) -> Option<Result<&UpstreamReg, ()>> {
        let ctid = ruri.params.value("ctid")?;
        let key = std::str::from_utf8(ctid).ok()?;
        Some(self.regs.get(key).ok_or(()))
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Records a registration (and its safety-refresh time).
    pub(crate) fn put(&mut self, reg: UpstreamReg) {
        if let Some(old) = self.regs.get(&reg.key) {
            self.refresh.remove(&(refresh_at(old), old.key.clone()));
        }
        if reg.expires_at > 0 {
            self.refresh.insert((refresh_at(&reg), reg.key.clone()));
        }
        self.regs.insert(reg.key.clone(), reg);
    }

    pub(crate) fn take(&mut self, key: &str) -> Option<UpstreamReg> {
        let reg = self.regs.remove(key)?;
        self.refresh.remove(&(refresh_at(&reg), reg.key.clone()));
        Some(reg)
    }

    /// When [`crate::Node::handle_timeout`] is due for the mid-registrar.
    pub(crate) fn poll_timeout(&self, instant_of: impl Fn(u64) -> Instant) -> Option<Instant> {
        let deadline = self.deadlines.keys().next().map(|(t, _)| *t);
        let resend = (!self.resend.is_empty()).then_some(self.next_resend);
        let ka = self.keepalive_pending.as_ref().map(|(_, t)| *t).or(self.keepalive_at);
        let refresh = self.refresh.iter().next().map(|(ms, _)| instant_of(*ms));
        [deadline, resend, ka, refresh].into_iter().flatten().min()
    }

    /// Queues registrations for a re-send (each once until sent).
    pub(crate) fn queue_resend(&mut self, keys: impl IntoIterator<Item = String>) {
        for k in keys {
            if self.resend_queued.insert(k.clone()) {
                self.resend.push_back(k);
            }
        }
    }
}

/// When a registration gets its safety refresh: a quarter of its upstream
/// lifetime (at most a minute) before it runs out.
fn refresh_at(reg: &UpstreamReg) -> u64 {
    let life = reg.expires_at.saturating_sub(reg.last_at);
    reg.expires_at.saturating_sub((life / 4).min(60_000))
}

/// The key of an AoR's one upstream registration in `aor` mode: a stable
/// hash of the AoR (FNV-1a, 64 bits), as a URI-safe token.
pub fn aor_key(aor: &Aor) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in aor.as_str().bytes() {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("a{h:016x}")
}

/// The transport parameter of our upstream Contacts.
pub(crate) fn transport_param(t: Transport) -> Option<&'static str> {
    match t {
        Transport::Udp => None,
        other => Some(other.as_str()),
    }
}
