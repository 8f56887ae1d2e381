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
    /// The caller, for call pushes (display name, URI), when known.
    pub caller: Option<String>,
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
