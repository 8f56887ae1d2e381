//! The rows of the PostgreSQL tables: the SELECT statements, the checks and
//! encoding of a [`Change`] before it enters a transaction ([`encode`]), and
//! the decoding of rows into [`StoredBinding`], [`StoredUpstream`] and
//! [`Subscriber`]. Paths are stored as a JSON array in `text` (as in
//! SQLite), unix-ms times as `bigint`.
//!
//! Owns the column lists and the value checks. Must not open connections,
//! run transactions or decide the order of statements (that is `apply.rs`
//! and `writer.rs`), or change the schema (that is `migrations.rs`).

use postgres::Row;

use crate::error::{Error, Result};
use crate::types::{Change, StoredBinding, StoredUpstream, Subscriber};

pub(crate) const SELECT_BINDINGS: &str = "SELECT id, aor, contact, q, expires_at_ms, call_id, cseq, instance, reg_id, \
     path, transport, remote, local, user_agent, registered_at_ms, extra, push_state, node FROM bindings ORDER BY aor, id";
pub(crate) const SELECT_BINDINGS_BY_ID: &str = "SELECT id, aor, contact, q, expires_at_ms, call_id, cseq, instance, \
     reg_id, path, transport, remote, local, user_agent, registered_at_ms, extra, push_state, node FROM bindings \
     WHERE id = ANY($1) ORDER BY aor, id";
pub(crate) const SELECT_UPSTREAM: &str =
    "SELECT key, aor, contact, expires_at_ms, call_id, cseq, last_code, last_at_ms FROM upstream ORDER BY aor, key";
pub(crate) const SELECT_SUBSCRIBERS: &str =
    "SELECT username, domain, ha1_md5, ha1_sha256, created_at_ms FROM subscribers ORDER BY domain, username";
pub(crate) const GET_SUBSCRIBER: &str = "SELECT username, domain, ha1_md5, ha1_sha256, created_at_ms FROM subscribers \
     WHERE username = $1 AND domain = $2";
pub(crate) const PUT_SUBSCRIBER: &str = "INSERT INTO subscribers (username, domain, ha1_md5, ha1_sha256, created_at_ms) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username, domain) DO UPDATE SET ha1_md5 = EXCLUDED.ha1_md5, \
     ha1_sha256 = EXCLUDED.ha1_sha256, created_at_ms = EXCLUDED.created_at_ms";
pub(crate) const DELETE_SUBSCRIBER: &str = "DELETE FROM subscribers WHERE username = $1 AND domain = $2";
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

impl Op<'_> {
    /// Whether the change is to the `bindings` table (else to `upstream`).
    pub(crate) fn is_binding(&self) -> bool {
        !matches!(self, Op::UpsertUpstream { .. } | Op::RemoveUpstream(_))
    }
}

/// Check that `change` can be stored and encode it. Runs before the
/// transaction so that a bad value fails its own batch only.
pub(crate) fn encode(change: &Change) -> Result<Op<'_>> {
    Ok(match change {
        Change::Upsert(b) => {
            check_id(&b.id, "binding", || format!("binding of {}", b.aor))?;
            for (name, v) in [
                ("aor", Some(&b.aor)),
                ("contact", Some(&b.contact)),
                ("call_id", Some(&b.call_id)),
                ("instance", b.instance.as_ref()),
                ("transport", Some(&b.transport)),
                ("remote", Some(&b.remote)),
                ("local", Some(&b.local)),
                ("user_agent", b.user_agent.as_ref()),
                ("extra", b.extra.as_ref()),
                ("push_state", b.push_state.as_ref()),
            ] {
                no_nul(v.map(String::as_str), || binding_field(b, name))?;
            }
            for p in &b.path {
                no_nul(Some(p), || binding_field(b, "path"))?;
            }
            Op::Upsert {
                b,
                path_json: serde_json::to_string(&b.path)
                    .map_err(|e| Error::Invalid { what: binding_field(b, "path"), reason: e.to_string() })?,
                expires_at_ms: to_i64(b.expires_at_ms, || binding_field(b, "expires_at_ms"))?,
                registered_at_ms: to_i64(b.registered_at_ms, || binding_field(b, "registered_at_ms"))?,
            }
        }
        Change::Remove { id } => {
            check_id(id, "binding", || "binding removal".to_owned())?;
            Op::Remove(id)
        }
        Change::Expire { id, at } => {
            check_id(id, "binding", || "binding expiry".to_owned())?;
            Op::Expire(id, to_i64(*at, || format!("expiry of binding {id}"))?)
        }
        Change::RemoveAor { aor } => {
            no_nul(Some(aor), || format!("removal of AoR {aor:?}"))?;
            Op::RemoveAor(aor)
        }
        Change::PushState { id, push_state } => {
            check_id(id, "binding", || "push state change".to_owned())?;
            no_nul(push_state.as_deref(), || format!("binding {id}: push_state"))?;
            Op::PushState { id, push_state: push_state.as_deref() }
        }
        Change::UpsertUpstream(u) => {
            for (name, v) in [("key", &u.key), ("aor", &u.aor), ("contact", &u.contact), ("call_id", &u.call_id)] {
                no_nul(Some(v), || upstream_field(u, name))?;
            }
            Op::UpsertUpstream {
                u,
                expires_at_ms: to_i64(u.expires_at_ms, || upstream_field(u, "expires_at_ms"))?,
                last_at_ms: to_i64(u.last_at_ms, || upstream_field(u, "last_at_ms"))?,
            }
        }
        Change::RemoveUpstream { key } => {
            no_nul(Some(key), || "upstream registration removal".to_owned())?;
            Op::RemoveUpstream(key)
        }
    })
}

/// The longest binding id stored (ids travel in notifications of at most
/// 8000 bytes).
pub(crate) const MAX_ID_LEN: usize = 1024;

/// A binding id travels in `\n`-separated notifications and PostgreSQL
/// text cannot hold NUL: both are refused.
/// It must also leave room in a notification payload: at most
/// [`MAX_ID_LEN`] bytes.
fn check_id(id: &str, kind: &str, what: impl FnOnce() -> String) -> Result<()> {
    if id.len() > MAX_ID_LEN {
        return Err(Error::Invalid {
            what: format!("{}: id {}…", what(), id.chars().take(40).collect::<String>()),
            reason: format!("a {kind} id must not be longer than {MAX_ID_LEN} bytes"),
        });
    }
    if id.contains(['\n', '\0']) {
        return Err(Error::Invalid {
            what: format!("{}: id {id:?}", what()),
            reason: format!("a {kind} id must not contain a line break or NUL"),
        });
    }
    Ok(())
}

fn no_nul(v: Option<&str>, what: impl FnOnce() -> String) -> Result<()> {
    match v {
        Some(s) if s.contains('\0') => {
            Err(Error::Invalid { what: what(), reason: "PostgreSQL text cannot hold a NUL character".to_owned() })
        }
        _ => Ok(()),
    }
}

/// A unix-ms time (or another unsigned counter) as stored, or
/// [`Error::Invalid`] naming the field (`what`) if it is beyond `bigint`.
pub(crate) fn to_i64(v: u64, what: impl FnOnce() -> String) -> Result<i64> {
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

/// Decode a row of [`SELECT_BINDINGS`]; on failure, the id (if readable)
/// and what is wrong.
pub(crate) fn binding_from_row(row: &Row) -> std::result::Result<StoredBinding, (String, String)> {
    let id: String = row.try_get(0).map_err(|e| ("<unreadable id>".to_owned(), e.to_string()))?;
    let decode = || -> std::result::Result<StoredBinding, String> {
        let path_json: String = get(row, 9, "path")?;
        let path: Vec<String> =
            serde_json::from_str(&path_json).map_err(|e| format!("path is not a JSON array of strings: {e}"))?;
        let q: Option<i32> = get(row, 3, "q")?;
        let reg_id: Option<i64> = get(row, 8, "reg_id")?;
        Ok(StoredBinding {
            id: id.clone(),
            aor: get(row, 1, "aor")?,
            contact: get(row, 2, "contact")?,
            q: q.map(|v| u16::try_from(v).map_err(|_| format!("q is out of range ({v})"))).transpose()?,
            expires_at_ms: get_u64(row, 4, "expires_at_ms")?,
            call_id: get(row, 5, "call_id")?,
            cseq: get_u32(row, 6, "cseq")?,
            instance: get(row, 7, "instance")?,
            reg_id: reg_id
                .map(|v| u32::try_from(v).map_err(|_| format!("reg_id is out of range ({v})")))
                .transpose()?,
            path,
            transport: get(row, 10, "transport")?,
            remote: get(row, 11, "remote")?,
            local: get(row, 12, "local")?,
            user_agent: get(row, 13, "user_agent")?,
            registered_at_ms: get_u64(row, 14, "registered_at_ms")?,
            extra: get(row, 15, "extra")?,
            push_state: get(row, 16, "push_state")?,
            node: get(row, 17, "node")?,
        })
    };
    decode().map_err(|reason| (id.clone(), reason))
}

/// Decode every row of a bindings query, skipping (and logging) damaged
/// ones: bindings are soft state the phones refresh, and one bad row must
/// not keep a node from starting.
pub(crate) fn bindings_from_rows(rows: &[Row], db: &str) -> Vec<StoredBinding> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        match binding_from_row(row) {
            Ok(b) => out.push(b),
            Err((id, reason)) => tracing::warn!(
                db,
                binding = %id,
                %reason,
                "skipping a damaged binding row; delete it with psql"
            ),
        }
    }
    out
}

/// Decode a row of [`SELECT_UPSTREAM`]; on failure, the key (if readable)
/// and what is wrong.
pub(crate) fn upstream_from_row(row: &Row) -> std::result::Result<StoredUpstream, (String, String)> {
    let key: String = row.try_get(0).map_err(|e| ("<unreadable key>".to_owned(), e.to_string()))?;
    let decode = || -> std::result::Result<StoredUpstream, String> {
        let last_code: i32 = get(row, 6, "last_code")?;
        Ok(StoredUpstream {
            key: key.clone(),
            aor: get(row, 1, "aor")?,
            contact: get(row, 2, "contact")?,
            expires_at_ms: get_u64(row, 3, "expires_at_ms")?,
            call_id: get(row, 4, "call_id")?,
            cseq: get_u32(row, 5, "cseq")?,
            last_code: u16::try_from(last_code).map_err(|_| format!("last_code is out of range ({last_code})"))?,
            last_at_ms: get_u64(row, 7, "last_at_ms")?,
        })
    };
    decode().map_err(|reason| (key.clone(), reason))
}

/// Decode a subscriber row (columns as in [`SELECT_SUBSCRIBERS`]); on
/// failure, which row and what is wrong.
pub(crate) fn subscriber_from_row(row: &Row) -> std::result::Result<Subscriber, (String, String)> {
    let user: String = row.try_get(0).map_err(|e| ("subscriber <unreadable>".to_owned(), e.to_string()))?;
    let domain: String = row.try_get(1).map_err(|e| (format!("subscriber {user}@?"), e.to_string()))?;
    let what = || format!("subscriber {user}@{domain}");
    Ok(Subscriber {
        ha1_md5: get(row, 2, "ha1_md5").map_err(|e| (what(), e))?,
        ha1_sha256: get(row, 3, "ha1_sha256").map_err(|e| (what(), e))?,
        created_at_ms: get_u64(row, 4, "created_at_ms").map_err(|e| (what(), e))?,
        user: user.clone(),
        domain: domain.clone(),
    })
}

/// Check that a subscriber can be stored; its `created_at_ms` as stored.
pub(crate) fn subscriber_created(s: &Subscriber) -> Result<i64> {
    let what = || format!("subscriber {}@{}", s.user, s.domain);
    for v in [&s.user, &s.domain, &s.ha1_md5, &s.ha1_sha256] {
        no_nul(Some(v), what)?;
    }
    i64::try_from(s.created_at_ms).map_err(|_| Error::Invalid {
        what: format!("{}: created_at_ms", what()),
        reason: format!("{} is beyond the largest storable time ({})", s.created_at_ms, i64::MAX),
    })
}

/// A column, with its name in the error.
fn get<'a, T: postgres::types::FromSql<'a>>(row: &'a Row, idx: usize, name: &str) -> std::result::Result<T, String> {
    row.try_get(idx).map_err(|e| format!("{name}: {}", crate::postgres::conn::describe(&e)))
}

/// A unix-ms time column (a non-negative `bigint`).
fn get_u64(row: &Row, idx: usize, name: &str) -> std::result::Result<u64, String> {
    let v: i64 = get(row, idx, name)?;
    u64::try_from(v).map_err(|_| format!("{name} is negative ({v})"))
}

/// A `u32` stored as `bigint`.
fn get_u32(row: &Row, idx: usize, name: &str) -> std::result::Result<u32, String> {
    let v: i64 = get(row, idx, name)?;
    u32::try_from(v).map_err(|_| format!("{name} is out of range ({v})"))
}
