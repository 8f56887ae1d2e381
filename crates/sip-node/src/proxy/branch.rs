//! Building the request of one branch (RFC 3261 §16.6 steps 1–8): the copy,
//! the new Request-URI, Max-Forwards, Record-Route, the Path as Route, our
//! Via, and the destination.

use crate::proxy::route::{Hop, Me, hop_of, next_hop, strip_push_params};
use sip_msg::Target;
use sip_msg::{HeaderName, Message, SipUri, Uri};

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
    /// Send to this URI's address rather than the Route's or the
    /// Request-URI's (the configured outbound proxy), when the request has
    /// no Route of its own.
    pub hop: Option<SipUri>,
}

/// Makes the Record-Route values for a branch going to a destination.
pub type RecordRouteFn<'a> = &'a dyn Fn(&Target) -> Vec<String>;

/// §16.6 steps 1–7 for one branch: the copy with its new Request-URI,
/// Max-Forwards, Path as Route, strict-router fix-up, and where it goes
/// (an address, or a host name to resolve). `None` when no next hop can be
/// found (the branch then fails like a 503).
pub fn prepare(orig: &Message, t: &BranchTarget) -> Option<(Message, Hop)> {
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
    // §16.6 step 6: a next hop that is a strict router (its Route URI has no
    // `lr`) gets the Request-URI in place of its Route value, and our
    // Request-URI goes to the end of the route set.
    strict_route(&mut m);
    let hop = match (&t.flow, t.path.is_empty(), &t.hop) {
        (Some(f), true, _) => Hop::Addr(*f),
        (_, true, Some(h)) if !m.headers.contains(&HeaderName::Route) => hop_of(h)?,
        _ => next_hop(&m)?,
    };
    Some((m, hop))
}

/// §16.6 steps 4 and 8 once the destination is known: Record-Route and our
/// Via (with `branch`). `None` when we have no listener for its transport.
pub fn finish(
    mut m: Message,
    dest: &Target,
    me: &Me,
    branch: &str,
    record_route: Option<RecordRouteFn<'_>>,
) -> Option<Message> {
    let v6 = dest.remote.is_ipv6();
    // An outbound TLS connection needs no TLS listener of ours: the answers
    // come back over the connection (the Via names our TCP listener).
    let local = me.listener(dest.transport, v6).or_else(|| {
        (dest.transport == sip_msg::Transport::Tls).then(|| me.listener(sip_msg::Transport::Tcp, v6)).flatten()
    })?;
    if let Some(rr) = record_route {
        for v in rr(dest).into_iter().rev() {
            m.headers.push_front(HeaderName::RecordRoute, v);
        }
    }
    let via = format!("SIP/2.0/{} {local};branch={branch};rport", dest.transport.as_via());
    m.headers.push_front(HeaderName::Via, via);
    Some(m)
}

/// [`prepare`] then [`finish`], for a branch whose next hop is an address;
/// `None` for a host name (or no route).
pub fn build(
    orig: &Message,
    t: &BranchTarget,
    me: &Me,
    branch: &str,
    record_route: Option<RecordRouteFn<'_>>,
) -> Option<(Message, Target)> {
    let (m, hop) = prepare(orig, t)?;
    let Hop::Addr(dest) = hop else { return None };
    finish(m, &dest, me, branch, record_route).map(|m| (m, dest))
}

fn strict_route(m: &mut Message) {
    let Some(first) = m.headers.0.iter().position(|h| h.name == HeaderName::Route) else { return };
    let Ok(na) = sip_msg::NameAddr::parse(&m.headers.0[first].value) else { return };
    if na.uri.as_sip().is_none_or(|u| u.params.contains("lr")) {
        return;
    }
    let sip_msg::StartLine::Request { uri, .. } = &mut m.start else { return };
    let old = std::mem::replace(uri, na.uri);
    m.headers.0.remove(first);
    m.headers.push(HeaderName::Route, format!("<{old}>"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sip_msg::{Limits, parse_datagram};

    #[test]
    fn strict_router_next_hop() {
        let s = "BYE sip:callee@192.0.2.5 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nRoute: <sip:192.0.2.1:5070>\r\nRoute: <sip:192.0.2.2;lr>\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
        let mut m = parse_datagram(Bytes::from(s), &Limits::default()).unwrap();
        strict_route(&mut m);
        assert_eq!(m.uri().unwrap().to_string(), "sip:192.0.2.1:5070");
        let routes: Vec<_> = m.headers.get_all(&HeaderName::Route).cloned().collect();
        assert_eq!(
            routes,
            vec![Bytes::from_static(b"<sip:192.0.2.2;lr>"), Bytes::from_static(b"<sip:callee@192.0.2.5>")]
        );
        // A loose router next: nothing changes.
        let mut loose = parse_datagram(
            Bytes::from(s.replace("<sip:192.0.2.1:5070>", "<sip:192.0.2.1:5070;lr>")),
            &Limits::default(),
        )
        .unwrap();
        strict_route(&mut loose);
        assert_eq!(loose.uri().unwrap().to_string(), "sip:callee@192.0.2.5");
    }
}
