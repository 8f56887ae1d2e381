//! Conversions between the registrar's bindings and the store's rows.
//!
//! Owns the mapping only: no I/O, no policy.

use location_store::{StoredBinding, StoredUpstream};
use sip_node::mid::UpstreamReg;
use sip_node::{Secrets, StoreOp};
use sip_registrar::{Aor, Binding, ContactUri, Flow, FlowTransport};

/// A node's store operation as a store change.
pub fn op_to_store(op: StoreOp) -> location_store::Change {
    match op {
        StoreOp::Upsert { binding, push_state } => {
            let mut row = to_row(&binding);
            row.push_state = push_state;
            location_store::Change::Upsert(row)
        }
        StoreOp::Remove { id } => location_store::Change::Remove { id },
        StoreOp::Expire { id, at } => location_store::Change::Expire { id, at },
        StoreOp::Upstream(r) => location_store::Change::UpsertUpstream(upstream_to_row(&r)),
        StoreOp::RemoveUpstream { key } => location_store::Change::RemoveUpstream { key },
    }
}

/// A mid-registrar's upstream registration as a row.
pub fn upstream_to_row(r: &UpstreamReg) -> StoredUpstream {
    StoredUpstream {
        key: r.key.clone(),
        aor: r.aor.to_string(),
        contact: r.contact.clone(),
        expires_at_ms: r.expires_at,
        call_id: r.call_id.clone(),
        cseq: r.cseq,
        last_code: r.last_code,
        last_at_ms: r.last_at,
    }
}

/// A stored upstream registration.
pub fn upstream_from_row(r: StoredUpstream) -> UpstreamReg {
    UpstreamReg {
        key: r.key,
        aor: Aor::from_stored(r.aor),
        contact: r.contact,
        expires_at: r.expires_at_ms,
        call_id: r.call_id,
        cseq: r.cseq,
        last_code: r.last_code,
        last_at: r.last_at_ms,
    }
}

/// Subscribers as the node's credential cache takes them.
pub fn secrets(list: Vec<location_store::Subscriber>) -> Vec<(String, String, Secrets)> {
    list.into_iter().map(|s| (s.user, s.domain, Secrets { ha1_md5: s.ha1_md5, ha1_sha256: s.ha1_sha256 })).collect()
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
        instance: b.instance.as_deref().map(str::to_owned),
        reg_id: b.reg_id,
        path: b.path.clone(),
        transport: b.flow.transport.as_str().to_string(),
        remote: sip_msg::chars::socket_addr_string(b.flow.remote),
        local: sip_msg::chars::socket_addr_string(b.flow.local),
        user_agent: b.user_agent.as_deref().map(str::to_owned),
        registered_at_ms: b.registered_at,
        extra: None,
        push_state: None,
        node: None,
    }
}

/// A stored row as a binding and its push state; `Err((id, reason))` when
/// the row cannot be understood any more (it is then dropped at start-up,
/// with a warning). Moves the row's strings (a million rows at start-up).
pub fn from_row(r: StoredBinding) -> Result<(Binding, Option<String>), (String, String)> {
    let fail = |what: String| Err((r.id.clone(), what));
    let uri = match sip_msg::Uri::parse_bytes(bytes::Bytes::copy_from_slice(r.contact.as_bytes())) {
        // Checked, kept as text (canonical: as the registrar writes it).
        Ok(u) => ContactUri::new(&u),
        Err(e) => return fail(format!("contact {:?}: {e}", r.contact)),
    };
    let Some(transport) = FlowTransport::parse(&r.transport) else {
        return fail(format!("transport {:?}", r.transport));
    };
    let Ok(remote) = r.remote.parse() else { return fail(format!("remote {:?}", r.remote)) };
    let Ok(local) = r.local.parse() else { return fail(format!("local {:?}", r.local)) };
    let push_state = r.push_state;
    Ok((
        Binding {
            id: r.id,
            aor: Aor::from_stored(r.aor),
            uri,
            q: r.q,
            expires_at: r.expires_at_ms,
            call_id: r.call_id.into_bytes().into_boxed_slice(),
            cseq: r.cseq,
            instance: r.instance.map(String::into_boxed_str),
            reg_id: r.reg_id,
            path: r.path,
            // Connections do not survive a restart.
            flow: Flow { transport, remote, local, conn: None },
            user_agent: r.user_agent.map(String::into_boxed_str),
            registered_at: r.registered_at_ms,
        },
        push_state,
    ))
}
