//! What crosses the node's boundary: the work it asks its drivers to do
//! (send bytes, make bindings durable, deliver pushes, look up
//! credentials) and the answers they feed back. Plain data, no I/O.

use bytes::Bytes;
use sip_msg::Target;
use sip_push::PushRequest;
use sip_registrar::Binding;

/// Bytes to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub target: Target,
    pub data: Bytes,
}

/// Names one store write; its result comes back through
/// [`crate::Node::handle_store_result`].
pub type WriteId = u64;

/// One change of the location service to make durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// Insert or replace a binding, with its RFC 8599 push state (PURRs,
    /// `+sip.pnsreg`) encoded by the push module, when it has one.
    Upsert { binding: Box<Binding>, push_state: Option<String> },
    /// Remove a binding.
    Remove { id: String },
    /// Remove a binding that expired, only if its stored expiry is at or
    /// before `at` (unix ms): in a cluster another node may have refreshed
    /// it meanwhile, and that registration must stay.
    Expire { id: String, at: u64 },
    /// Insert or replace a mid-registrar's upstream registration.
    Upstream(Box<crate::mid::UpstreamReg>),
    /// Remove an upstream registration.
    RemoveUpstream { key: String },
}

/// Changes to commit together; the node answers the REGISTER that caused
/// them only once [`crate::Node::handle_store_result`] says they are durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreWrite {
    pub id: WriteId,
    pub ops: Vec<StoreOp>,
}

/// A push to deliver; its outcome comes back through
/// [`crate::Node::handle_push_result`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushJob {
    pub request: PushRequest,
    /// The AoR of the binding (for the sender's payload and logs).
    pub aor: Option<String>,
    /// The caller (the request's `From`), for call, cancel and missed-call pushes.
    pub caller: Option<Caller>,
    /// The binding's other `pn-*` Contact parameters, unescaped (e.g. the
    /// WebPush subscription keys `pn-webpush-p256dh` / `pn-webpush-auth`).
    pub pn_extra: Vec<(String, String)>,
}

/// The caller of a call push, from the request's `From`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// The display name, unquoted, when the From had one.
    pub display_name: Option<String>,
    /// The From URI.
    pub uri: String,
}

/// Which call-end pushes a provider's devices get ([`crate::NodeConfig::call_end_pushes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallEndPushes {
    /// A cancel push when a call the device was woken for is cancelled by
    /// the caller or answered elsewhere before the device got it.
    pub cancel: bool,
    /// A missed-call push when such a call ends unanswered.
    pub missed: bool,
}

impl Default for CallEndPushes {
    fn default() -> Self {
        CallEndPushes { cancel: true, missed: true }
    }
}

/// A subscriber's digest secrets (HA1 hashes, never the password).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secrets {
    pub ha1_md5: String,
    pub ha1_sha256: String,
}

/// A credential lookup the node waits for: the subscriber `user@domain`.
/// Answer with [`crate::Node::handle_credentials`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lookup {
    pub user: String,
    pub domain: String,
}
