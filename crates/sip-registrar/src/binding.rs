//! A binding of the location service, the flow it arrived on, and its
//! Contact URI ([`ContactUri`]: kept as text, parsed when needed).

use crate::aor::Aor;
use bytes::Bytes;
use sip_msg::{PnParams, Uri};
use std::fmt;
use std::net::SocketAddr;

/// A binding's Contact URI, kept once: its canonical text in one exact
/// allocation (what the store keeps too). The parsed form ([`Uri`]) is
/// made on demand with [`ContactUri::parse`]; a million bindings do not
/// keep a million parsed indexes of their push parameters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ContactUri(Box<str>);

impl ContactUri {
    /// The canonical text of `uri`.
    pub fn new(uri: &Uri) -> ContactUri {
        ContactUri(uri.to_string().into_boxed_str())
    }

    /// Stored text, parsed once to check it is a URI (`None`: it is not).
    pub fn from_text(text: &str) -> Option<ContactUri> {
        Uri::parse_bytes(Bytes::copy_from_slice(text.as_bytes())).ok().map(|u| ContactUri::new(&u))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The parsed URI (its own copy of the text). `None` only if the text
    /// is not a URI, which [`ContactUri::new`] and [`ContactUri::from_text`]
    /// never produce.
    pub fn parse(&self) -> Option<Uri> {
        Uri::parse_bytes(Bytes::copy_from_slice(self.0.as_bytes())).ok()
    }
}

impl From<&Uri> for ContactUri {
    fn from(u: &Uri) -> ContactUri {
        ContactUri::new(u)
    }
}

impl fmt::Display for ContactUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ContactUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// The transport of a flow: the one transport type of sipwake.
pub use sip_msg::Transport as FlowTransport;

/// Where a REGISTER came from: what a request to this binding is sent over
/// (RFC 5626 flow; for a phone behind NAT, the only way back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub transport: FlowTransport,
    /// Source address of the REGISTER (after NAT).
    pub remote: SocketAddr,
    /// Local address it arrived on.
    pub local: SocketAddr,
    /// The connection (stream transports), while it is open.
    pub conn: Option<u64>,
}

/// RFC 8599 push coordinates taken from the Contact URI (decoded values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushParams {
    pub provider: String,
    pub prid: Option<String>,
    pub param: Option<String>,
}

/// One binding: an AoR reachable at a contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Stable id (store primary key, management API handle).
    pub id: String,
    pub aor: Aor,
    /// The Contact URI as registered (pn-* parameters included).
    pub uri: ContactUri,
    /// q-value × 1000.
    pub q: Option<u16>,
    /// Unix time, ms.
    pub expires_at: u64,
    /// Its own exact copy (a `Bytes` clone would share a refcount block).
    pub call_id: Box<[u8]>,
    pub cseq: u32,
    /// `+sip.instance` (the value without quotes, e.g. `<urn:uuid:...>`).
    pub instance: Option<Box<str>>,
    /// RFC 5626 reg-id (only when outbound applies).
    pub reg_id: Option<u32>,
    /// Path header values (RFC 3327), in order.
    pub path: Vec<String>,
    pub flow: Flow,
    pub user_agent: Option<Box<str>>,
    /// Unix time, ms, of the REGISTER that last refreshed it.
    pub registered_at: u64,
}

impl Binding {
    /// Seconds left at `now_ms` (0 when expired).
    pub fn remaining_secs(&self, now_ms: u64) -> u64 {
        self.expires_at.saturating_sub(now_ms).div_ceil(1000)
    }
    /// Whether outbound (RFC 5626) applies: the binding has a reg-id.
    pub fn is_outbound(&self) -> bool {
        self.reg_id.is_some()
    }
    /// RFC 8599 push parameters, when the Contact URI has a `pn-provider`
    /// value. Read by `sip_msg::pn` (the reader the push classifier uses):
    /// escaped names count, values are percent-decoded, empty ones are absent.
    pub fn push(&self) -> Option<PushParams> {
        let uri = self.uri.parse()?;
        let pn = PnParams::from_params(&uri.as_sip()?.params);
        Some(PushParams {
            provider: pn.provider()?.to_string(),
            prid: pn.prid().map(str::to_string),
            param: pn.param().map(str::to_string),
        })
    }
    /// Push-capable: has a provider and a PRID (RFC 8599 R10: never push without a PRID).
    pub fn is_push_capable(&self) -> bool {
        self.uri.parse().is_some_and(|u| u.as_sip().is_some_and(|u| PnParams::from_params(&u.params).has_coordinates()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One `Binding` per binding, inline in its AoR's list: a change of size
    /// is a change of the memory every binding costs.
    #[test]
    fn sizes_of_a_binding() {
        assert_eq!(std::mem::size_of::<Binding>(), 248);
        assert_eq!(std::mem::size_of::<Aor>(), 16);
        assert_eq!(std::mem::size_of::<ContactUri>(), 16);
        assert_eq!(std::mem::size_of::<Flow>(), 88);
    }
}
