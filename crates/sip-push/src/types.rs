//! Identifiers and small value types shared by the engine's inputs and
//! outputs: [`BindingKey`], [`RequestId`], [`PushId`], [`PnInfo`],
//! [`ParkKind`], [`ParkTarget`].

use serde::{Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// The registrar's opaque, stable name of a binding (e.g. its binding id).
///
/// It must stay the same when the same device instance re-registers (new
/// PRID, new address): the engine wakes parked requests by this key, not by
/// comparing URIs. Cheap to clone: up to [`BindingKey::INLINE`] bytes (a
/// 16-hex-digit binding id) are kept inline, without an allocation; longer
/// keys are shared (`Arc<str>`).
#[derive(Clone)]
pub struct BindingKey(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; BindingKey::INLINE] },
    Shared(Arc<str>),
}

impl BindingKey {
    /// The longest key kept inline.
    pub const INLINE: usize = 22;

    pub fn new(s: impl AsRef<str>) -> BindingKey {
        let s = s.as_ref();
        match u8::try_from(s.len()) {
            Ok(len) if s.len() <= BindingKey::INLINE => {
                let mut buf = [0u8; BindingKey::INLINE];
                buf[..s.len()].copy_from_slice(s.as_bytes());
                BindingKey(Repr::Inline { len, buf })
            }
            _ => BindingKey(Repr::Shared(s.into())),
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            // A whole `str` was copied in: always valid.
            Repr::Inline { len, buf } => std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or_default(),
            Repr::Shared(s) => s,
        }
    }
}

impl PartialEq for BindingKey {
    fn eq(&self, other: &BindingKey) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for BindingKey {}

impl std::hash::Hash for BindingKey {
    // As `str` hashes: maps keyed by `BindingKey` are looked up by `&str`.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for BindingKey {
    fn partial_cmp(&self, other: &BindingKey) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BindingKey {
    fn cmp(&self, other: &BindingKey) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl From<&str> for BindingKey {
    fn from(s: &str) -> BindingKey {
        BindingKey::new(s)
    }
}

impl From<String> for BindingKey {
    fn from(s: String) -> BindingKey {
        BindingKey::new(s)
    }
}

impl Deref for BindingKey {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for BindingKey {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for BindingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for BindingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl Serialize for BindingKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The core's name of a parked request (e.g. its server transaction or
/// proxy context number). Never reused while the request is parked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RequestId(pub u64);

/// The engine's name of one push request; the sender reports its result
/// under it ([`crate::PushEngine::handle_push_result`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PushId(pub u64);

/// The push coordinates of a binding (RFC 8599 §4.1.1), percent-decoded
/// (R62): what a push sender needs to reach the device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PnInfo {
    /// `pn-provider`, as configured (e.g. `apns`).
    pub provider: String,
    /// `pn-prid`: APNs device token, FCM registration token, WebPush URL.
    pub prid: String,
    /// `pn-param` (APNs `<team>.<topic>`, FCM project id); always `None`
    /// for providers whose rule is [`crate::ParamRule::Ignored`] (webpush, R63).
    pub param: Option<String>,
}

/// What kind of request is parked: it decides the push reason and nothing
/// else (mid-dialog requests are woken the same way, R54–R56).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParkKind {
    /// An initial or standalone request toward the AoR (R32).
    Initial,
    /// A mid-dialog request (or an INVITE with Replaces, R59) toward a
    /// device found by its PURR (R54).
    MidDialog,
}

/// One binding a parked request waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkTarget {
    pub binding: BindingKey,
    /// The core knows the device is reachable right now (e.g. its flow is
    /// alive, RFC 5626): no push, the request is forked to it at once (R44).
    pub awake: bool,
}

impl ParkTarget {
    /// A target that needs a push (unless the skip interval applies).
    pub fn push(binding: impl Into<BindingKey>) -> ParkTarget {
        ParkTarget { binding: binding.into(), awake: false }
    }
    /// A target the core knows to be awake.
    pub fn awake(binding: impl Into<BindingKey>) -> ParkTarget {
        ParkTarget { binding: binding.into(), awake: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn binding_keys_inline_or_shared_are_their_text() {
        let id = BindingKey::new("00ff00ff00ff00ff");
        let long = BindingKey::new("a-key-longer-than-twenty-two-bytes");
        assert!(matches!(id.0, Repr::Inline { .. }) && matches!(long.0, Repr::Shared(_)));
        assert_eq!((id.as_str(), &*long), ("00ff00ff00ff00ff", "a-key-longer-than-twenty-two-bytes"));
        let m: HashMap<BindingKey, u8> = [(id.clone(), 1), (long.clone(), 2)].into();
        assert_eq!((m.get("00ff00ff00ff00ff"), m.get("a-key-longer-than-twenty-two-bytes")), (Some(&1), Some(&2)));
        assert!(BindingKey::new("a") < BindingKey::new("b") && BindingKey::new("") == BindingKey::from(String::new()));
    }
}
