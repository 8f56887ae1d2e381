//! Incremental stream framing: the first byte N (mod 8) says how many cut
//! points follow as 16-bit values; the rest is the stream. Whatever the cuts,
//! the framer must report the same messages at the same offsets, the same
//! pings, and fail at the same place as when the stream arrives in one read.
//! Every framed message is then parsed as framed.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sip_msg::Limits;

#[path = "../../crates/sip-msg/tests/common/invariants.rs"]
mod invariants;
use invariants::{Event, frame_events};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let n = usize::from(n % 8);
    if rest.len() < 2 * n {
        return;
    }
    let (cuts, stream) = rest.split_at(2 * n);
    let cuts: Vec<usize> =
        cuts.chunks(2).map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1)).collect();
    let limits = Limits { max_message: 2048, ..Limits::default() };
    let whole = frame_events(stream, &[], &limits);
    let pieces = frame_events(stream, &cuts, &limits);
    assert_eq!(whole, pieces, "framing depends on how the stream was cut");
    // Byte by byte as well, for short streams.
    if stream.len() <= 512 {
        let every: Vec<usize> = (1..stream.len()).collect();
        assert_eq!(whole, frame_events(stream, &every, &limits), "byte-by-byte framing differs");
    }
    for e in &whole {
        if let Event::Message(at, len) = *e {
            let _ = sip_msg::parse_framed(Bytes::copy_from_slice(&stream[at..at + len]), &limits);
            invariants::check_framed_agrees(&stream[at..], &limits);
        }
    }
});
