//! Plain data types stored by the location store: [`StoredBinding`] (one
//! registered contact of an AoR, with its opaque push state),
//! [`StoredUpstream`] (one registration sipwake holds at an upstream
//! registrar in mid-registrar mode), [`Change`] (what
//! [`crate::Store::submit`] applies) and [`Subscriber`] (digest
//! credentials).
//!
//! Owns only the shape of the data. No SIP parsing happens here (the
//! registrar converts its typed headers to and from these strings), and no
//! storage-engine detail (column types, JSON encoding) leaks in: that belongs
//! to the backends, e.g. `sqlite/rows.rs`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One binding of the location service: a Contact registered for an AoR
/// (RFC 3261 §10), with what the registrar needs to route to it again after a
/// restart.
///
/// Times are unix milliseconds. Values of `expires_at_ms` and
/// `registered_at_ms` above `i64::MAX` are rejected by both backends (the
/// batch carrying them fails, the rest of its commit group does not). The
/// PostgreSQL backend also rejects NUL characters in any text, and line
/// breaks in the id (binding ids travel in `\n`-separated notifications).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBinding {
    /// Stable binding id (opaque, unique); the primary key. A later
    /// [`Change::Upsert`] with the same id replaces the whole binding.
    pub id: String,
    /// Canonical AoR, e.g. `alice@example.com`.
    pub aor: String,
    /// The Contact URI as registered (serialized), possibly with `pn-*`
    /// parameters (RFC 8599).
    pub contact: String,
    /// q-value × 1000 (`q=0.5` is `Some(500)`); `None` when absent.
    pub q: Option<u16>,
    /// When the binding expires, unix ms.
    pub expires_at_ms: u64,
    /// Call-ID of the REGISTER that created or last refreshed it.
    pub call_id: String,
    /// CSeq number of that REGISTER.
    pub cseq: u32,
    /// `+sip.instance` (RFC 5626), as given.
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626).
    pub reg_id: Option<u32>,
    /// Path header values (RFC 3327), in order.
    pub path: Vec<String>,
    /// Transport the REGISTER came over: `"udp"`, `"tcp"`, ...
    pub transport: String,
    /// Source `IP:port` of the REGISTER.
    pub remote: String,
    /// Local `IP:port` it arrived on.
    pub local: String,
    /// User-Agent header, if any.
    pub user_agent: Option<String>,
    /// When the binding was first registered, unix ms.
    pub registered_at_ms: u64,
    /// JSON blob for later features. Stored and returned verbatim; not
    /// validated.
    pub extra: Option<String>,
    /// The binding's push state (RFC 8599: the `+sip.pnsreg` flag and its
    /// PURRs), an opaque text owned by the push engine (`sip-push`'s
    /// `persist` encoding). Stored and returned verbatim; never interpreted
    /// here. `None` for bindings without push state and for rows written
    /// before schema version 2. Update it alone with [`Change::PushState`].
    #[serde(default)]
    pub push_state: Option<String>,
    /// The id of the cluster node that committed the binding (the node that
    /// holds the device's flow), as the PostgreSQL backend records it: it
    /// stores its own [`crate::PgOptions::node_id`] with every
    /// [`Change::Upsert`] (whatever this field says) and returns it on
    /// load. The SQLite backend stores nothing and returns `None`.
    #[serde(default)]
    pub node: Option<String>,
}

/// One registration sipwake holds at an upstream registrar (mid-registrar
/// mode): the Contact it registered there for one device binding
/// (per-contact modes) or for a whole AoR (AoR mode). Kept so that after a
/// restart sipwake still knows which upstream registration each binding
/// maps to, and can refresh or de-register it.
///
/// Independent of the bindings table: removing a binding (or its AoR) does
/// not remove its upstream row; the mid-registrar removes both, in one batch.
///
/// Times are unix milliseconds. Values of `expires_at_ms` and `last_at_ms`
/// above `i64::MAX` are rejected by both backends (the batch carrying
/// them fails, the rest of its commit group does not).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredUpstream {
    /// Key (primary key): the binding id, or an AoR key in AoR mode. Opaque
    /// here. A later [`Change::UpsertUpstream`] with the same key replaces
    /// the whole row.
    pub key: String,
    /// Canonical AoR, e.g. `alice@example.com`.
    pub aor: String,
    /// The Contact URI registered upstream (serialized).
    pub contact: String,
    /// When the upstream registration expires, unix ms (0 = not registered
    /// upstream).
    pub expires_at_ms: u64,
    /// Call-ID of the REGISTERs sipwake itself sends for it (refresh,
    /// re-send, de-register).
    pub call_id: String,
    /// CSeq number of the last of those REGISTERs.
    pub cseq: u32,
    /// Status code of the upstream's last final answer about it (0 = none
    /// yet).
    pub last_code: u16,
    /// When that answer came, unix ms (0 = none yet).
    pub last_at_ms: u64,
}

/// One change to the bindings or to the upstream registrations, applied in
/// submission order. Both kinds go through the same queue and group commit:
/// a batch mixing them is applied in one transaction, all or nothing.
///
/// Neither payload is boxed: the upserts are the common cases, and boxing
/// would cost an allocation per change (hence the allowed size difference).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Insert the binding, or replace the one with the same `id`.
    Upsert(StoredBinding),
    /// Remove the binding with this id (no error if there is none).
    Remove {
        /// Binding id.
        id: String,
    },
    /// Remove the binding with this id only if its stored expiry is at or
    /// before `at` (unix ms): it expired, and nobody refreshed it since
    /// (in a cluster, another node may have; its registration stays). No
    /// error if there is no such binding.
    Expire {
        /// Binding id.
        id: String,
        /// The expiry time seen, unix ms.
        at: u64,
    },
    /// Remove every binding of this AoR (`REGISTER` with `Contact: *`).
    /// Upstream registrations of the AoR are left alone.
    RemoveAor {
        /// Canonical AoR.
        aor: String,
    },
    /// Replace only the push state ([`StoredBinding::push_state`]) of the
    /// binding with this id, leaving every other field as it is (PURRs
    /// rotate without a REGISTER). No error, and no row created, if there
    /// is no such binding.
    PushState {
        /// Binding id.
        id: String,
        /// The new push state; `None` clears it.
        push_state: Option<String>,
    },
    /// Insert the upstream registration, or replace the one with the same
    /// `key`.
    UpsertUpstream(StoredUpstream),
    /// Remove the upstream registration with this key (no error if there is
    /// none).
    RemoveUpstream {
        /// Upstream registration key ([`StoredUpstream::key`]).
        key: String,
    },
}

/// A subscriber's digest credentials: HA1 = H(user:realm:password) in MD5
/// and SHA-256 (RFC 8760), lowercase hex. The realm is the domain.
///
/// `Debug` redacts the hashes: they are password equivalents.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscriber {
    /// User part of the AoR, e.g. `alice`.
    pub user: String,
    /// Domain (and digest realm), e.g. `example.com`.
    pub domain: String,
    /// MD5 HA1, lowercase hex.
    pub ha1_md5: String,
    /// SHA-256 HA1, lowercase hex.
    pub ha1_sha256: String,
    /// When the subscriber was created, unix ms.
    pub created_at_ms: u64,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("user", &self.user)
            .field("domain", &self.domain)
            .field("ha1_md5", &"<redacted>")
            .field("ha1_sha256", &"<redacted>")
            .field("created_at_ms", &self.created_at_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriber_debug_redacts_hashes() {
        let s = Subscriber {
            user: "alice".into(),
            domain: "example.com".into(),
            ha1_md5: "deadbeef".into(),
            ha1_sha256: "cafebabe".into(),
            created_at_ms: 1,
        };
        let d = format!("{s:?}");
        assert!(d.contains("alice") && !d.contains("deadbeef") && !d.contains("cafebabe"), "{d}");
    }
}
