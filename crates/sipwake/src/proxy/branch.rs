//! Building the request of one branch (RFC 3261 §16.6 steps 1–8): the copy,
//! the new Request-URI, Max-Forwards, Record-Route, the Path as Route, our
//! Via, and the destination.

use crate::proxy::route::{Me, next_hop, strip_push_params};
use sip_msg::{HeaderName, Message, Uri};
use sip_transport::Target;

/// What a branch goes to.
#[derive(Clone, Debug)]
pub struct BranchTarget {
    /// New Request-URI (None: keep the request's, as for in-dialog requests).
    pub uri: Option<Uri>,
    /// Route values to put first (the binding's Path, RFC 3327).
    pub path: Vec<String>,
    /// Where to send, when known without looking at Route / Request-URI
    /// (a registered flow, a flow token).
    pub flow: Option<Target>,
}

/// Makes the Record-Route values for a branch going to a destination.
pub type RecordRouteFn<'a> = &'a dyn Fn(&Target) -> Vec<String>;

/// Builds the branch request and its destination; `None` when no next hop
/// can be found (the branch then fails like a 503).
pub fn build(
    orig: &Message,
    t: &BranchTarget,
    me: &Me,
    branch: &str,
    record_route: Option<RecordRouteFn<'_>>,
) -> Option<(Message, Target)> {
    let mut m = orig.clone();
    if let Some(uri) = &t.uri
        && let sip_msg::StartLine::Request { uri: u, .. } = &mut m.start
    {
        *u = strip_push_params(uri);
    }
    // Max-Forwards: decrement (the caller checked it is not 0), or add 70.
    let mf = m.max_forwards().ok().flatten().map_or(70, |n| n.saturating_sub(1));
    m.headers.set(HeaderName::MaxForwards, mf.to_string());
    // Path values become the first Route values, in order.
    for p in t.path.iter().rev() {
        m.headers.push_front(HeaderName::Route, p.clone());
    }
    let dest = match (&t.flow, t.path.is_empty()) {
        (Some(f), true) => *f,
        _ => next_hop(&m)?,
    };
    let local = me.listener(dest.transport, dest.remote.is_ipv6())?;
    if let Some(rr) = record_route {
        for v in rr(&dest).into_iter().rev() {
            m.headers.push_front(HeaderName::RecordRoute, v);
        }
    }
    let via = format!("SIP/2.0/{} {local};branch={branch};rport", dest.transport.as_via());
    m.headers.push_front(HeaderName::Via, via);
    Some((m, dest))
}
