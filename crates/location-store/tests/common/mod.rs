//! Helpers shared by the integration tests: sample data, a blocking
//! submit, and backend-neutral scenarios (`scenarios.rs`). Owns no test of
//! its own.
#![allow(dead_code)] // each test binary uses a different subset

pub mod scenarios;

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use location_store::{Change, Result, SqliteOptions, SqliteStore, Store, StoredBinding, StoredUpstream, Subscriber};

/// A binding with every field set (optional ones depend on `cseq` parity, so
/// both `Some` and `None` round-trip).
pub fn binding(id: &str, aor: &str, cseq: u32) -> StoredBinding {
    let odd = cseq % 2 == 1;
    StoredBinding {
        id: id.to_owned(),
        aor: aor.to_owned(),
        contact: format!(
            "<sip:{id}@192.0.2.7:5060;pn-provider=apns;pn-prid=00fc13adff78512;pn-param=ABCD.com.example.voip>"
        ),
        q: odd.then_some(500),
        expires_at_ms: 1_700_000_000_000 + u64::from(cseq) * 1000,
        call_id: format!("call-{id}"),
        cseq,
        instance: odd.then(|| "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>".to_owned()),
        reg_id: odd.then_some(1),
        path: if odd {
            vec!["<sip:edge1.example.com;lr>".into(), "<sip:edge2.example.com;lr;ob>".into()]
        } else {
            vec![]
        },
        transport: "tcp".into(),
        remote: "192.0.2.7:40000".into(),
        local: "198.51.100.1:5060".into(),
        user_agent: odd.then(|| "Linphone/5.2 (\"quoted\" ünïcode)".to_owned()),
        registered_at_ms: 1_699_999_000_000,
        extra: odd.then(|| r#"{"next_refresh_ms":1700000100000,"failures":0}"#.to_owned()),
        push_state: odd.then(|| "v1 pnsreg=1 purr=AAAAAAAAAAAAAAAAAAAAAA:1699999000000".to_owned()),
        node: None,
    }
}

/// An upstream registration of binding `key` (every field derived from
/// the arguments, so a row can be checked against the `cseq` it was
/// written with).
pub fn upstream(key: &str, aor: &str, cseq: u32) -> StoredUpstream {
    StoredUpstream {
        key: key.to_owned(),
        aor: aor.to_owned(),
        contact: format!("<sip:{key}@198.51.100.1:5060;transport=tcp;ob>;+sip.instance=\"<urn:uuid:{key}>\""),
        expires_at_ms: 1_700_000_000_000 + u64::from(cseq) * 1000,
        call_id: format!("up-{key}@198.51.100.1"),
        cseq,
        last_code: if cseq % 2 == 1 { 200 } else { 0 },
        last_at_ms: if cseq % 2 == 1 { 1_699_999_000_000 + u64::from(cseq) } else { 0 },
    }
}

pub fn subscriber(user: &str, domain: &str) -> Subscriber {
    Subscriber {
        user: user.to_owned(),
        domain: domain.to_owned(),
        ha1_md5: format!("{:032x}", user.len()),
        ha1_sha256: format!("{:064x}", domain.len()),
        created_at_ms: 1_700_000_000_000,
    }
}

/// Submit one batch and wait for its `done`.
pub fn submit_wait(store: &dyn Store, changes: Vec<Change>) -> Result<()> {
    let (tx, rx) = mpsc::channel();
    store.submit(
        changes,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.recv().expect("done callback dropped without being called")
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("sipwake.db")
}

pub fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default()).expect("open store")
}

/// Park the writer thread inside a barrier's callback, and return once it
/// is parked: everything submitted until the returned sender is used (or
/// dropped) queues up, so group sizes become deterministic.
pub fn hold_writer(store: &dyn Store) -> mpsc::Sender<()> {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    store.submit(
        vec![],
        Box::new(move |_| {
            entered_tx.send(()).unwrap();
            let _ = release_rx.recv();
        }),
    );
    entered_rx.recv().unwrap();
    release_tx
}
