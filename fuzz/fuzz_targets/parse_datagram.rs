//! One datagram: parse + validate + every typed accessor + serialize +
//! re-parse. Nothing may panic, and an accepted message must survive the
//! round trip (see `invariants::check_datagram`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_msg::Limits;

#[path = "../../crates/sip-msg/tests/common/invariants.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    invariants::check_datagram(data, &Limits::default());
    // Tight limits reach the 513 paths (and their salvaged partial) too.
    let tight = Limits { max_message: 1024, max_headers: 12, max_header_len: 128 };
    invariants::check_datagram(data, &tight);
});
