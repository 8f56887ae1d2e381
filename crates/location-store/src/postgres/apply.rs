//! Applying one commit group in one PostgreSQL transaction, in few round
//! trips, with the same result as applying its changes one by one in order.
//!
//! How: binding changes and upstream changes touch different tables, so
//! each table's changes are applied in their own order, one after the
//! other. Within a table, consecutive changes of the same kind form a
//! *run*, applied by ONE statement over arrays (`UNNEST`, `= ANY`). Inside a
//! run a later change to the same id replaces an earlier one entirely (an
//! upsert replaces the whole row, a push-state change the whole push state,
//! a removal is a removal), so only the last change per id is kept: no
//! statement touches a row twice (`ON CONFLICT DO UPDATE` would refuse to),
//! and order across runs is kept by running them in sequence. Each run's
//! rows are sorted by id, so two nodes writing the same bindings lock them
//! in the same order. A group of 1000 upserts is one statement.
//!
//! In the same transaction: the refresh claims of removed bindings are
//! dropped, and `pg_notify('sipwake_changes', …)` announces every binding id
//! the group upserted, removed or changed the push state of (payload:
//! `<node id>\n<id>\n<id>…`, split below [`MAX_PAYLOAD`] bytes).
//!
//! Owns the statements of the write path. Must not manage the connection,
//! the queue or the callbacks (that is `writer.rs`), or check values (that
//! is `rows.rs`, before the transaction).

use std::collections::{HashMap, HashSet};

use postgres::types::ToSql;
use postgres::{Client, Statement, Transaction};

use super::rows::Op;

/// PostgreSQL refuses notification payloads of 8000 bytes or more.
pub(crate) const MAX_PAYLOAD: usize = 7900;

/// The channel of binding changes.
pub(crate) const CHANGES_CHANNEL: &str = "sipwake_changes";

const UPSERT_BINDINGS: &str = "\
INSERT INTO bindings (id, aor, contact, q, expires_at_ms, call_id, cseq, instance, reg_id, path,
                      transport, remote, local, user_agent, registered_at_ms, extra, push_state, node)
SELECT u.*, $18::text FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::int8[], $6::text[], $7::int8[],
                                  $8::text[], $9::int8[], $10::text[], $11::text[], $12::text[], $13::text[],
                                  $14::text[], $15::int8[], $16::text[], $17::text[]) AS u
ON CONFLICT (id) DO UPDATE SET
    aor = EXCLUDED.aor, contact = EXCLUDED.contact, q = EXCLUDED.q, expires_at_ms = EXCLUDED.expires_at_ms,
    call_id = EXCLUDED.call_id, cseq = EXCLUDED.cseq, instance = EXCLUDED.instance, reg_id = EXCLUDED.reg_id,
    path = EXCLUDED.path, transport = EXCLUDED.transport, remote = EXCLUDED.remote, local = EXCLUDED.local,
    user_agent = EXCLUDED.user_agent, registered_at_ms = EXCLUDED.registered_at_ms, extra = EXCLUDED.extra,
    push_state = EXCLUDED.push_state, node = EXCLUDED.node";
const REMOVE_BINDINGS: &str = "DELETE FROM bindings WHERE id = ANY($1::text[]) RETURNING id";
const EXPIRE_BINDINGS: &str = "\
DELETE FROM bindings AS b USING UNNEST($1::text[], $2::int8[]) AS u (id, at)
WHERE b.id = u.id AND b.expires_at_ms <= u.at RETURNING b.id";
const REMOVE_AORS: &str = "DELETE FROM bindings WHERE aor = ANY($1::text[]) RETURNING id";
const SET_PUSH_STATES: &str = "\
UPDATE bindings AS b SET push_state = u.push_state
FROM UNNEST($1::text[], $2::text[]) AS u (id, push_state)
WHERE b.id = u.id RETURNING b.id";
const UPSERT_UPSTREAM: &str = "\
INSERT INTO upstream (key, aor, contact, expires_at_ms, call_id, cseq, last_code, last_at_ms)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::int8[], $7::int4[], $8::int8[])
ON CONFLICT (key) DO UPDATE SET
    aor = EXCLUDED.aor, contact = EXCLUDED.contact, expires_at_ms = EXCLUDED.expires_at_ms,
    call_id = EXCLUDED.call_id, cseq = EXCLUDED.cseq, last_code = EXCLUDED.last_code,
    last_at_ms = EXCLUDED.last_at_ms";
const REMOVE_UPSTREAM: &str = "DELETE FROM upstream WHERE key = ANY($1::text[])";
const DROP_CLAIMS: &str = "DELETE FROM refresh_claims WHERE binding_id = ANY($1::text[])";
const NOTIFY: &str = "SELECT pg_notify('sipwake_changes', p) FROM UNNEST($1::text[]) AS p";

/// The write path's statements, prepared once per connection.
pub(crate) struct Statements {
    upsert: Statement,
    remove: Statement,
    remove_aor: Statement,
    expire: Statement,
    push_state: Statement,
    upsert_upstream: Statement,
    remove_upstream: Statement,
    drop_claims: Statement,
    notify: Statement,
}

impl Statements {
    pub(crate) fn prepare(client: &mut Client) -> Result<Self, postgres::Error> {
        Ok(Self {
            upsert: client.prepare(UPSERT_BINDINGS)?,
            remove: client.prepare(REMOVE_BINDINGS)?,
            remove_aor: client.prepare(REMOVE_AORS)?,
            expire: client.prepare(EXPIRE_BINDINGS)?,
            push_state: client.prepare(SET_PUSH_STATES)?,
            upsert_upstream: client.prepare(UPSERT_UPSTREAM)?,
            remove_upstream: client.prepare(REMOVE_UPSTREAM)?,
            drop_claims: client.prepare(DROP_CLAIMS)?,
            notify: client.prepare(NOTIFY)?,
        })
    }
}

/// Apply `ops` (already checked) in one transaction and commit; `node` is
/// recorded in upserted bindings and heads the notifications.
pub(crate) fn apply(client: &mut Client, st: &Statements, ops: &[Op<'_>], node: &str) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    let mut changed: Vec<String> = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    for run in runs(ops.iter().filter(|op| op.is_binding())) {
        apply_binding_run(&mut tx, st, &run, node, &mut changed, &mut removed)?;
    }
    for run in runs(ops.iter().filter(|op| !op.is_binding())) {
        apply_upstream_run(&mut tx, st, &run)?;
    }
    if !removed.is_empty() {
        tx.execute(&st.drop_claims, &[&removed])?;
    }
    if !changed.is_empty() {
        tx.execute(&st.notify, &[&payloads(node, &changed)])?;
    }
    tx.commit()
}

fn apply_binding_run(
    tx: &mut Transaction<'_>,
    st: &Statements,
    run: &[&Op<'_>],
    node: &str,
    changed: &mut Vec<String>,
    removed: &mut Vec<String>,
) -> Result<(), postgres::Error> {
    let returned_ids = |rows: Vec<postgres::Row>| -> Result<Vec<String>, postgres::Error> {
        rows.iter().map(|r| r.try_get::<_, String>(0)).collect()
    };
    match run.first() {
        Some(Op::Upsert { .. }) => {
            let mut c = UpsertColumns::default();
            for op in run {
                if let Op::Upsert { b, path_json, expires_at_ms, registered_at_ms } = op {
                    c.id.push(&b.id);
                    c.aor.push(&b.aor);
                    c.contact.push(&b.contact);
                    c.q.push(b.q.map(i32::from));
                    c.expires.push(*expires_at_ms);
                    c.call_id.push(&b.call_id);
                    c.cseq.push(i64::from(b.cseq));
                    c.instance.push(b.instance.as_deref());
                    c.reg_id.push(b.reg_id.map(i64::from));
                    c.path.push(path_json);
                    c.transport.push(&b.transport);
                    c.remote.push(&b.remote);
                    c.local.push(&b.local);
                    c.user_agent.push(b.user_agent.as_deref());
                    c.registered.push(*registered_at_ms);
                    c.extra.push(b.extra.as_deref());
                    c.push_state.push(b.push_state.as_deref());
                }
            }
            let params: [&(dyn ToSql + Sync); 18] = [
                &c.id,
                &c.aor,
                &c.contact,
                &c.q,
                &c.expires,
                &c.call_id,
                &c.cseq,
                &c.instance,
                &c.reg_id,
                &c.path,
                &c.transport,
                &c.remote,
                &c.local,
                &c.user_agent,
                &c.registered,
                &c.extra,
                &c.push_state,
                &node,
            ];
            tx.execute(&st.upsert, &params)?;
            changed.extend(c.id.iter().map(|id| (*id).to_owned()));
        }
        Some(Op::Remove(_)) => {
            let ids: Vec<&str> = run.iter().map(|op| key(op)).collect();
            let gone = returned_ids(tx.query(&st.remove, &[&ids])?)?;
            changed.extend(gone.iter().cloned());
            removed.extend(gone);
        }
        Some(Op::Expire(..)) => {
            let mut ids = Vec::with_capacity(run.len());
            let mut at = Vec::with_capacity(run.len());
            for op in run {
                if let Op::Expire(id, t) = op {
                    ids.push(*id);
                    at.push(*t);
                }
            }
            let gone = returned_ids(tx.query(&st.expire, &[&ids, &at])?)?;
            changed.extend(gone.iter().cloned());
            removed.extend(gone);
        }
        Some(Op::RemoveAor(_)) => {
            let aors: Vec<&str> = run.iter().map(|op| key(op)).collect();
            let gone = returned_ids(tx.query(&st.remove_aor, &[&aors])?)?;
            changed.extend(gone.iter().cloned());
            removed.extend(gone);
        }
        Some(Op::PushState { .. }) => {
            let mut ids = Vec::with_capacity(run.len());
            let mut states = Vec::with_capacity(run.len());
            for op in run {
                if let Op::PushState { id, push_state } = op {
                    ids.push(*id);
                    states.push(*push_state);
                }
            }
            changed.extend(returned_ids(tx.query(&st.push_state, &[&ids, &states])?)?);
        }
        Some(Op::UpsertUpstream { .. } | Op::RemoveUpstream(_)) | None => {}
    }
    Ok(())
}

fn apply_upstream_run(tx: &mut Transaction<'_>, st: &Statements, run: &[&Op<'_>]) -> Result<(), postgres::Error> {
    match run.first() {
        Some(Op::UpsertUpstream { .. }) => {
            let mut key = Vec::with_capacity(run.len());
            let mut aor = Vec::with_capacity(run.len());
            let mut contact = Vec::with_capacity(run.len());
            let mut expires = Vec::with_capacity(run.len());
            let mut call_id = Vec::with_capacity(run.len());
            let mut cseq = Vec::with_capacity(run.len());
            let mut last_code = Vec::with_capacity(run.len());
            let mut last_at = Vec::with_capacity(run.len());
            for op in run {
                if let Op::UpsertUpstream { u, expires_at_ms, last_at_ms } = op {
                    key.push(u.key.as_str());
                    aor.push(u.aor.as_str());
                    contact.push(u.contact.as_str());
                    expires.push(*expires_at_ms);
                    call_id.push(u.call_id.as_str());
                    cseq.push(i64::from(u.cseq));
                    last_code.push(i32::from(u.last_code));
                    last_at.push(*last_at_ms);
                }
            }
            tx.execute(&st.upsert_upstream, &[&key, &aor, &contact, &expires, &call_id, &cseq, &last_code, &last_at])?;
        }
        Some(Op::RemoveUpstream(_)) => {
            let keys: Vec<&str> = run.iter().map(|op| key(op)).collect();
            tx.execute(&st.remove_upstream, &[&keys])?;
        }
        _ => {}
    }
    Ok(())
}

/// The column arrays of one upsert run.
#[derive(Default)]
struct UpsertColumns<'a> {
    id: Vec<&'a str>,
    aor: Vec<&'a str>,
    contact: Vec<&'a str>,
    q: Vec<Option<i32>>,
    expires: Vec<i64>,
    call_id: Vec<&'a str>,
    cseq: Vec<i64>,
    instance: Vec<Option<&'a str>>,
    reg_id: Vec<Option<i64>>,
    path: Vec<&'a str>,
    transport: Vec<&'a str>,
    remote: Vec<&'a str>,
    local: Vec<&'a str>,
    user_agent: Vec<Option<&'a str>>,
    registered: Vec<i64>,
    extra: Vec<Option<&'a str>>,
    push_state: Vec<Option<&'a str>>,
}

/// Which statement applies an op; consecutive ops of one kind form a run.
fn kind(op: &Op<'_>) -> u8 {
    match op {
        Op::Upsert { .. } => 0,
        Op::Remove(_) => 1,
        Op::RemoveAor(_) => 2,
        Op::PushState { .. } => 3,
        Op::UpsertUpstream { .. } => 4,
        Op::RemoveUpstream(_) => 5,
        Op::Expire(..) => 6,
    }
}

/// The row an op addresses (the AoR for a removal of an AoR).
fn key<'a>(op: &'a Op<'_>) -> &'a str {
    match op {
        Op::Upsert { b, .. } => &b.id,
        Op::Remove(id) | Op::RemoveAor(id) | Op::PushState { id, .. } | Op::RemoveUpstream(id) | Op::Expire(id, _) => {
            id
        }
        Op::UpsertUpstream { u, .. } => &u.key,
    }
}

/// Split `ops` into runs of one kind, keep only the last op per key in each
/// run, and sort each run by key.
fn runs<'o, 'a: 'o>(ops: impl Iterator<Item = &'o Op<'a>>) -> Vec<Vec<&'o Op<'a>>> {
    let mut out: Vec<Vec<&'o Op<'a>>> = Vec::new();
    for op in ops {
        match out.last_mut() {
            Some(run) if run.first().is_some_and(|first| kind(first) == kind(op)) => run.push(op),
            _ => out.push(vec![op]),
        }
    }
    for run in &mut out {
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(run.len());
        for (i, op) in run.iter().enumerate() {
            last.insert(key(op), i);
        }
        if last.len() < run.len() {
            let mut i = 0;
            run.retain(|op| {
                let keep = last.get(key(op)) == Some(&i);
                i += 1;
                keep
            });
        }
        run.sort_by(|a, b| key(a).cmp(key(b)));
    }
    out
}

/// Notification payloads `<node>\n<id>\n<id>…` naming every id of `ids`
/// once, each below [`MAX_PAYLOAD`] bytes.
pub(crate) fn payloads(node: &str, ids: &[String]) -> Vec<String> {
    let mut seen: HashSet<&str> = HashSet::with_capacity(ids.len());
    let mut out = Vec::new();
    let mut current = String::new();
    for id in ids {
        if !seen.insert(id) {
            continue;
        }
        if !current.is_empty() && current.len() + 1 + id.len() > MAX_PAYLOAD {
            out.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            current.push_str(node);
        }
        current.push('\n');
        current.push_str(id);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::StoredUpstream;

    #[test]
    fn runs_keep_the_last_change_per_key_and_split_on_kind() {
        let ops = [
            Op::Remove("b"),
            Op::Remove("a"),
            Op::Remove("b"),
            Op::RemoveAor("x@example.com"),
            Op::PushState { id: "c", push_state: Some("1") },
            Op::PushState { id: "c", push_state: Some("2") },
            Op::Remove("c"),
        ];
        let runs = runs(ops.iter());
        let shape: Vec<Vec<(u8, &str)>> =
            runs.iter().map(|r| r.iter().map(|op| (kind(op), key(op))).collect()).collect();
        assert_eq!(shape, vec![vec![(1, "a"), (1, "b")], vec![(2, "x@example.com")], vec![(3, "c")], vec![(1, "c")]]);
        let Op::PushState { push_state, .. } = runs[2][0] else { panic!() };
        assert_eq!(*push_state, Some("2"), "the later push state wins");
    }

    #[test]
    fn runs_of_upstream_upserts_keep_the_last() {
        let u = |cseq| StoredUpstream {
            key: "k".into(),
            aor: "a@example.com".into(),
            contact: String::new(),
            expires_at_ms: 0,
            call_id: String::new(),
            cseq,
            last_code: 0,
            last_at_ms: 0,
        };
        let (u1, u2) = (u(1), u(2));
        let ops = [
            Op::UpsertUpstream { u: &u1, expires_at_ms: 0, last_at_ms: 0 },
            Op::UpsertUpstream { u: &u2, expires_at_ms: 0, last_at_ms: 0 },
        ];
        let runs = runs(ops.iter());
        assert_eq!(runs.len(), 1);
        let Op::UpsertUpstream { u, .. } = runs[0][0] else { panic!() };
        assert_eq!((runs[0].len(), u.cseq), (1, 2));
    }

    #[test]
    fn payloads_stay_small_and_name_each_id_once() {
        let ids: Vec<String> = (0..3000).map(|i| format!("binding-{i:06}")).chain(["binding-000001".into()]).collect();
        let p = payloads("n1", &ids);
        assert!(p.len() > 1);
        let mut all = Vec::new();
        for payload in &p {
            assert!(payload.len() < MAX_PAYLOAD, "{}", payload.len());
            let mut lines = payload.split('\n');
            assert_eq!(lines.next(), Some("n1"));
            all.extend(lines.map(str::to_owned));
        }
        assert_eq!(all, ids[..3000]);
        assert!(payloads("n1", &[]).is_empty());
    }
}
