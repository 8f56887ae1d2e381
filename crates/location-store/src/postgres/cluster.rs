//! The statements behind [`crate::Cluster`] on PostgreSQL, run on the
//! reader pool: sync tokens, heartbeats and membership, refresh claims,
//! shared secrets.
//!
//! Owns those statements only. Must not touch the bindings or the
//! subscribers, the writer or the feed (`feed.rs` listens for the sync
//! tokens sent here).

use std::time::Duration;

use super::feed::sync_channel;
use super::pool::{OpError, Pool};
use super::rows::to_i64;
use crate::cluster::Member;
use crate::error::{Error, Result};

const HEARTBEAT: &str = "\
WITH me AS (
    INSERT INTO cluster_nodes (id, sip_addr, seen_at) VALUES ($1, $2, now())
    ON CONFLICT (id) DO UPDATE SET sip_addr = EXCLUDED.sip_addr, seen_at = EXCLUDED.seen_at
    RETURNING id, sip_addr
)
SELECT id, sip_addr FROM me
UNION ALL
SELECT id, sip_addr FROM cluster_nodes WHERE id <> $1 AND seen_at >= now() - make_interval(secs => $3)
ORDER BY id";
const CLAIM: &str = "\
INSERT INTO refresh_claims (binding_id, generation, attempt, node, claimed_at) VALUES ($1, $2, $3, $4, now())
ON CONFLICT (binding_id) DO UPDATE SET
    generation = EXCLUDED.generation, attempt = EXCLUDED.attempt, node = EXCLUDED.node, claimed_at = EXCLUDED.claimed_at
WHERE (refresh_claims.generation, refresh_claims.attempt) < (EXCLUDED.generation, EXCLUDED.attempt)
RETURNING node";
const ADD_SECRET: &str = "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
const GET_SECRET: &str = "SELECT value FROM secrets WHERE name = $1";

/// Send `token` on this node's sync channel (autocommit: it is delivered
/// after everything committed before).
pub(crate) fn sync(pool: &Pool, node: &str, token: u64) -> Result<()> {
    let channel = sync_channel(node);
    let payload = token.to_string();
    pool.run("sending a sync token", |c| {
        c.execute("SELECT pg_notify($1, $2)", &[&channel, &payload])?;
        Ok(())
    })
}

pub(crate) fn heartbeat(pool: &Pool, node: &str, sip_addr: &str, live_within: Duration) -> Result<Vec<Member>> {
    if sip_addr.contains('\0') {
        return Err(Error::Invalid {
            what: format!("heartbeat of node {node}: sip_addr"),
            reason: "PostgreSQL text cannot hold a NUL character".to_owned(),
        });
    }
    let secs = live_within.as_secs_f64();
    pool.run("recording a heartbeat", |c| {
        let rows = c.query(HEARTBEAT, &[&node, &sip_addr, &secs])?;
        rows.iter()
            .map(|r| Ok(Member { id: r.try_get(0)?, sip_addr: r.try_get(1)? }))
            .collect::<std::result::Result<Vec<_>, postgres::Error>>()
            .map_err(OpError::Pg)
    })
}

pub(crate) fn claim_refresh(pool: &Pool, node: &str, binding: &str, generation: u64, attempt: u32) -> Result<bool> {
    let what = || format!("refresh claim of binding {binding}: generation");
    let generation = to_i64(generation, what)?;
    if binding.contains('\0') {
        return Err(Error::Invalid {
            what: format!("refresh claim of binding {binding:?}"),
            reason: "PostgreSQL text cannot hold a NUL character".to_owned(),
        });
    }
    let attempt = i64::from(attempt);
    pool.run(&format!("claiming the refresh of binding {binding}"), |c| {
        Ok(!c.query(CLAIM, &[&binding, &generation, &attempt, &node])?.is_empty())
    })
}

pub(crate) fn shared_secret(pool: &Pool, name: &str) -> Result<[u8; 32]> {
    let fresh: [u8; 32] = rand::random();
    let db = pool.target().name.clone();
    pool.run(&format!("reading the shared secret {name}"), |c| {
        c.execute(ADD_SECRET, &[&name, &&fresh[..]])?;
        let value: Vec<u8> = c.query_one(GET_SECRET, &[&name])?.try_get(0)?;
        <[u8; 32]>::try_from(value.as_slice()).map_err(|_| {
            OpError::Store(Error::Postgres {
                db: db.clone(),
                op: format!("reading the shared secret {name}"),
                reason: format!(
                    "it holds {} bytes instead of 32; delete the row of table secrets with psql and restart every node",
                    value.len()
                ),
            })
        })
    })
}
