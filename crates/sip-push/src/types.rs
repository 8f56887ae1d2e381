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
/// comparing URIs. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BindingKey(Arc<str>);

impl BindingKey {
    pub fn new(s: impl Into<Arc<str>>) -> BindingKey {
        BindingKey(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for BindingKey {
    fn from(s: &str) -> BindingKey {
        BindingKey(s.into())
    }
}

impl From<String> for BindingKey {
    fn from(s: String) -> BindingKey {
        BindingKey(s.into())
    }
}

impl Deref for BindingKey {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for BindingKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BindingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BindingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl Serialize for BindingKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
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
