//! Conversions between the registrar's bindings and the store's rows.
//!
//! Owns the mapping only: no I/O, no policy.

use location_store::StoredBinding;
use sip_registrar::{Aor, Binding, Flow, FlowTransport, location::Change};

/// A registrar change as a store change.
pub fn to_store(c: &Change) -> location_store::Change {
    match c {
        Change::Upsert(b) => location_store::Change::Upsert(to_row(b)),
        Change::Remove { id, .. } => location_store::Change::Remove { id: id.clone() },
    }
}

pub fn to_row(b: &Binding) -> StoredBinding {
    StoredBinding {
        id: b.id.clone(),
        aor: b.aor.to_string(),
        contact: b.uri.to_string(),
        q: b.q,
        expires_at_ms: b.expires_at,
        call_id: String::from_utf8_lossy(&b.call_id).into_owned(),
        cseq: b.cseq,
        instance: b.instance.clone(),
        reg_id: b.reg_id,
        path: b.path.clone(),
        transport: b.flow.transport.as_str().to_string(),
        remote: b.flow.remote.to_string(),
        local: b.flow.local.to_string(),
        user_agent: b.user_agent.clone(),
        registered_at_ms: b.registered_at,
        extra: None,
        push_state: None,
    }
}

/// A stored row as a binding; `None` (with the reason) when the row cannot
/// be understood any more (it is then dropped at start-up, with a warning).
pub fn from_row(r: StoredBinding) -> Result<Binding, String> {
    let uri = sip_msg::Uri::parse_bytes(r.contact.clone()).map_err(|e| format!("contact {:?}: {e}", r.contact))?;
    let transport = FlowTransport::parse(&r.transport).ok_or_else(|| format!("transport {:?}", r.transport))?;
    let remote = r.remote.parse().map_err(|_| format!("remote {:?}", r.remote))?;
    let local = r.local.parse().map_err(|_| format!("local {:?}", r.local))?;
    Ok(Binding {
        id: r.id,
        aor: Aor::from_stored(r.aor),
        uri,
        q: r.q,
        expires_at: r.expires_at_ms,
        call_id: r.call_id.into(),
        cseq: r.cseq,
        instance: r.instance,
        reg_id: r.reg_id,
        path: r.path,
        // Connections do not survive a restart.
        flow: Flow { transport, remote, local, conn: None },
        user_agent: r.user_agent,
        registered_at: r.registered_at_ms,
    })
}
