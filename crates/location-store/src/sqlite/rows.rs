//! The SQL statements on the tables and the encoding of [`StoredBinding`],
//! [`StoredUpstream`] and [`Subscriber`] to and from rows (path as a JSON
//! array of strings, unix-ms times as INTEGER, the opaque push state as
//! TEXT).
//!
//! Owns every DML statement of the SQLite backend and the value checks done
//! before a change enters a transaction. Must not open connections, manage
//! transactions or threads (that is `mod.rs` and `writer.rs`) or change the
//! schema (that is `migrations.rs`).

use rusqlite::types::FromSql;
use rusqlite::{Connection, Row, params};

use crate::error::{Error, Result};
use crate::types::{Change, StoredBinding, StoredUpstream, Subscriber};

const UPSERT_BINDING: &str = "\
INSERT INTO bindings (id, aor, contact, q, expires_at_ms, call_id, cseq, instance, reg_id, path,
                      transport, remote, local, user_agent, registered_at_ms, extra, push_state)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
ON CONFLICT (id) DO UPDATE SET
    aor = excluded.aor, contact = excluded.contact, q = excluded.q, expires_at_ms = excluded.expires_at_ms,
    call_id = excluded.call_id, cseq = excluded.cseq, instance = excluded.instance, reg_id = excluded.reg_id,
    path = excluded.path, transport = excluded.transport, remote = excluded.remote, local = excluded.local,
    user_agent = excluded.user_agent, registered_at_ms = excluded.registered_at_ms, extra = excluded.extra,
    push_state = excluded.push_state";
const UPDATE_PUSH_STATE: &str = "UPDATE bindings SET push_state = ?2 WHERE id = ?1";
const DELETE_BINDING: &str = "DELETE FROM bindings WHERE id = ?1";
const EXPIRE_BINDING: &str = "DELETE FROM bindings WHERE id = ?1 AND expires_at_ms <= ?2";
/// A scan since schema 4 (no index on `aor`): the server removes bindings by
/// id; this serves the `RemoveAor` change of the store's contract only.
const DELETE_AOR: &str = "DELETE FROM bindings WHERE aor = ?1";
pub(crate) const SELECT_BINDINGS: &str = "\
SELECT id, aor, contact, q, expires_at_ms, call_id, cseq, instance, reg_id, path,
       transport, remote, local, user_agent, registered_at_ms, extra, push_state
FROM bindings ORDER BY id";

const UPSERT_UPSTREAM: &str = "\
INSERT INTO upstream (key, aor, contact, expires_at_ms, call_id, cseq, last_code, last_at_ms)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT (key) DO UPDATE SET
    aor = excluded.aor, contact = excluded.contact, expires_at_ms = excluded.expires_at_ms,
    call_id = excluded.call_id, cseq = excluded.cseq, last_code = excluded.last_code,
    last_at_ms = excluded.last_at_ms";
const DELETE_UPSTREAM: &str = "DELETE FROM upstream WHERE key = ?1";
pub(crate) const SELECT_UPSTREAM: &str = "\
SELECT key, aor, contact, expires_at_ms, call_id, cseq, last_code, last_at_ms
FROM upstream ORDER BY aor, key";

pub(crate) const SELECT_SUBSCRIBERS: &str =
    "SELECT user, domain, ha1_md5, ha1_sha256, created_at_ms FROM subscribers ORDER BY domain, user";
pub(crate) const GET_SUBSCRIBER: &str =
    "SELECT user, domain, ha1_md5, ha1_sha256, created_at_ms FROM subscribers WHERE user = ?1 AND domain = ?2";
pub(crate) const PUT_SUBSCRIBER: &str = "\
INSERT INTO subscribers (user, domain, ha1_md5, ha1_sha256, created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (user, domain) DO UPDATE SET
    ha1_md5 = excluded.ha1_md5, ha1_sha256 = excluded.ha1_sha256, created_at_ms = excluded.created_at_ms";
pub(crate) const DELETE_SUBSCRIBER: &str = "DELETE FROM subscribers WHERE user = ?1 AND domain = ?2";
pub(crate) const SUBSCRIBERS_GENERATION: &str = "SELECT value FROM meta WHERE key = 'subscribers_generation'";

/// A [`Change`] checked and encoded, ready to be bound to a statement.
pub(crate) enum Op<'a> {
    Upsert { b: &'a StoredBinding, path_json: String, expires_at_ms: i64, registered_at_ms: i64 },
    Remove(&'a str),
    Expire(&'a str, i64),
    RemoveAor(&'a str),
    PushState { id: &'a str, push_state: Option<&'a str> },
    UpsertUpstream { u: &'a StoredUpstream, expires_at_ms: i64, last_at_ms: i64 },
    RemoveUpstream(&'a str),
}

/// Check that `change` can be stored and encode it. Runs before the
/// transaction so that a bad value fails its own batch only.
pub(crate) fn encode(change: &Change) -> Result<Op<'_>> {
    Ok(match change {
        Change::Upsert(b) => Op::Upsert {
            b,
            path_json: serde_json::to_string(&b.path)
                .map_err(|e| Error::Invalid { what: binding_field(b, "path"), reason: e.to_string() })?,
            expires_at_ms: to_i64(b.expires_at_ms, || binding_field(b, "expires_at_ms"))?,
            registered_at_ms: to_i64(b.registered_at_ms, || binding_field(b, "registered_at_ms"))?,
        },
        Change::Remove { id } => Op::Remove(id),
        Change::Expire { id, at } => Op::Expire(id, to_i64(*at, || format!("expiry of binding {id}"))?),
        Change::RemoveAor { aor } => Op::RemoveAor(aor),
        Change::PushState { id, push_state } => Op::PushState { id, push_state: push_state.as_deref() },
        Change::UpsertUpstream(u) => Op::UpsertUpstream {
            u,
            expires_at_ms: to_i64(u.expires_at_ms, || upstream_field(u, "expires_at_ms"))?,
            last_at_ms: to_i64(u.last_at_ms, || upstream_field(u, "last_at_ms"))?,
        },
        Change::RemoveUpstream { key } => Op::RemoveUpstream(key),
    })
}

/// A unix-ms time as stored, or [`Error::Invalid`] naming the field
/// (`what`) if it is beyond the INTEGER range.
fn to_i64(v: u64, what: impl FnOnce() -> String) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Invalid {
        what: what(),
        reason: format!("{v} is beyond the largest storable time ({})", i64::MAX),
    })
}

fn binding_field(b: &StoredBinding, field: &str) -> String {
    format!("binding {} of {}: {field}", b.id, b.aor)
}

fn upstream_field(u: &StoredUpstream, field: &str) -> String {
    format!("upstream registration {} of {}: {field}", u.key, u.aor)
}

/// Apply one encoded change (inside the caller's transaction), with cached
/// prepared statements.
pub(crate) fn apply(conn: &Connection, op: &Op<'_>) -> rusqlite::Result<()> {
    match op {
        Op::Upsert { b, path_json, expires_at_ms, registered_at_ms } => {
            conn.prepare_cached(UPSERT_BINDING)?.execute(params![
                b.id,
                b.aor,
                b.contact,
                b.q,
                expires_at_ms,
                b.call_id,
                b.cseq,
                b.instance,
                b.reg_id,
                path_json,
                b.transport,
                b.remote,
                b.local,
                b.user_agent,
                registered_at_ms,
                b.extra,
                b.push_state,
            ])?;
        }
        Op::Remove(id) => {
            conn.prepare_cached(DELETE_BINDING)?.execute([id])?;
        }
        Op::Expire(id, at) => {
            conn.prepare_cached(EXPIRE_BINDING)?.execute(params![id, at])?;
        }
        Op::RemoveAor(aor) => {
            conn.prepare_cached(DELETE_AOR)?.execute([aor])?;
        }
        Op::PushState { id, push_state } => {
            conn.prepare_cached(UPDATE_PUSH_STATE)?.execute(params![id, push_state])?;
        }
        Op::UpsertUpstream { u, expires_at_ms, last_at_ms } => {
            conn.prepare_cached(UPSERT_UPSTREAM)?.execute(params![
                u.key,
                u.aor,
                u.contact,
                expires_at_ms,
                u.call_id,
                u.cseq,
                u.last_code,
                last_at_ms,
            ])?;
        }
        Op::RemoveUpstream(key) => {
            conn.prepare_cached(DELETE_UPSTREAM)?.execute([key])?;
        }
    }
    Ok(())
}

/// Decode a row of [`SELECT_BINDINGS`]; on failure, the id (if readable)
/// and what is wrong.
pub(crate) fn binding_from_row(row: &Row<'_>) -> std::result::Result<StoredBinding, (String, String)> {
    let id: String = row.get(0).map_err(|e| ("<unreadable id>".to_owned(), e.to_string()))?;
    let decode = || -> std::result::Result<StoredBinding, String> {
        let path_json: &str = row.get_ref(9).and_then(|v| Ok(v.as_str()?)).map_err(|e| e.to_string())?;
        // Nearly every binding has no Path: no JSON parser for "[]".
        let path: Vec<String> = if path_json == "[]" {
            Vec::new()
        } else {
            serde_json::from_str(path_json).map_err(|e| format!("path is not a JSON array of strings: {e}"))?
        };
        let e = |e: rusqlite::Error| e.to_string();
        Ok(StoredBinding {
            id: String::new(),
            aor: row.get(1).map_err(e)?,
            contact: row.get(2).map_err(e)?,
            q: row.get(3).map_err(e)?,
            expires_at_ms: get_u64(row, 4, "expires_at_ms")?,
            call_id: row.get(5).map_err(e)?,
            cseq: row.get(6).map_err(e)?,
            instance: row.get(7).map_err(e)?,
            reg_id: row.get(8).map_err(e)?,
            path,
            transport: row.get(10).map_err(e)?,
            remote: row.get(11).map_err(e)?,
            local: row.get(12).map_err(e)?,
            user_agent: row.get(13).map_err(e)?,
            registered_at_ms: get_u64(row, 14, "registered_at_ms")?,
            extra: row.get(15).map_err(e)?,
            push_state: row.get(16).map_err(e)?,
            node: None,
        })
    };
    match decode() {
        Ok(b) => Ok(StoredBinding { id, ..b }),
        Err(reason) => Err((id, reason)),
    }
}

/// Decode a row of [`SELECT_UPSTREAM`]; on failure, the key (if readable)
/// and what is wrong.
pub(crate) fn upstream_from_row(row: &Row<'_>) -> std::result::Result<StoredUpstream, (String, String)> {
    let key: String = row.get(0).map_err(|e| ("<unreadable key>".to_owned(), e.to_string()))?;
    let decode = || -> std::result::Result<StoredUpstream, String> {
        Ok(StoredUpstream {
            key: key.clone(),
            aor: get(row, 1, "aor")?,
            contact: get(row, 2, "contact")?,
            expires_at_ms: get_u64(row, 3, "expires_at_ms")?,
            call_id: get(row, 4, "call_id")?,
            cseq: get(row, 5, "cseq")?,
            last_code: get(row, 6, "last_code")?,
            last_at_ms: get_u64(row, 7, "last_at_ms")?,
        })
    };
    decode().map_err(|reason| (key.clone(), reason))
}

/// A column, with its name in the error (a value out of range for the
/// field's type is reported by index only otherwise).
fn get<T: FromSql>(row: &Row<'_>, idx: usize, name: &str) -> std::result::Result<T, String> {
    row.get(idx).map_err(|e| format!("{name}: {e}"))
}

/// A unix-ms time column (stored as a non-negative INTEGER).
fn get_u64(row: &Row<'_>, idx: usize, name: &str) -> std::result::Result<u64, String> {
    let v: i64 = row.get(idx).map_err(|e| format!("{name}: {e}"))?;
    u64::try_from(v).map_err(|_| format!("{name} is negative ({v})"))
}

/// Decode a subscriber row (columns as in [`SELECT_SUBSCRIBERS`]); on
/// failure, which row and what is wrong.
pub(crate) fn subscriber_from_row(row: &Row<'_>) -> std::result::Result<Subscriber, (String, String)> {
    let user: String = row.get(0).map_err(|e| ("subscriber <unreadable>".to_owned(), e.to_string()))?;
    let domain: String = row.get(1).map_err(|e| (format!("subscriber {user}@?"), e.to_string()))?;
    let what = || format!("subscriber {user}@{domain}");
    Ok(Subscriber {
        ha1_md5: row.get(2).map_err(|e| (what(), e.to_string()))?,
        ha1_sha256: row.get(3).map_err(|e| (what(), e.to_string()))?,
        created_at_ms: get_u64(row, 4, "created_at_ms").map_err(|e| (what(), e))?,
        user: user.clone(),
        domain: domain.clone(),
    })
}

/// Check that a subscriber can be stored; its `created_at_ms` as stored.
pub(crate) fn subscriber_created(s: &Subscriber) -> Result<i64> {
    i64::try_from(s.created_at_ms).map_err(|_| Error::Invalid {
        what: format!("subscriber {}@{}: created_at_ms", s.user, s.domain),
        reason: format!("{} is beyond the largest storable time ({})", s.created_at_ms, i64::MAX),
    })
}

/// Insert or replace a subscriber (`created` from [`subscriber_created`]).
pub(crate) fn put_subscriber(conn: &Connection, s: &Subscriber, created: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(PUT_SUBSCRIBER)?.execute(params![s.user, s.domain, s.ha1_md5, s.ha1_sha256, created])?;
    Ok(())
}
