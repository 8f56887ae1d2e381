//! The backend-neutral scenarios of tests/common/scenarios.rs on SQLite
//! (tests/postgres.rs runs them on PostgreSQL).

mod common;

use common::{open, scenarios};
use location_store::Store;

#[test]
fn shared_scenarios_hold_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    scenarios::all(|| {
        n += 1;
        Box::new(open(&dir.path().join(format!("s{n}.db")))) as Box<dyn Store>
    });
}
