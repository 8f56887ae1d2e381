//! The replay tracker's memory stays bounded under 1M distinct nonces,
//! measured in bytes with a counting allocator (its own test binary, so no
//! other test allocates meanwhile).

use sip_auth::{NcVerdict, NonceId, NonceTracker};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        grew(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn tracker_memory_is_bounded_under_a_million_nonces() {
    const MAX: usize = 10_000;
    const T0: u64 = 1_700_000_000_000;
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let mut t = NonceTracker::new(MAX, 300_000);
    let mut at_cap = 0;
    for n in 0..1_000_000u64 {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&(T0 + n).to_be_bytes());
        key[8..].copy_from_slice(&n.to_le_bytes());
        let id = NonceId { key, issued_ms: T0 + n };
        assert_eq!(t.check_and_record(&id, Some(1), T0 + n), NcVerdict::Accepted);
        if n == 4 * MAX as u64 {
            at_cap = LIVE.load(Ordering::Relaxed) - base;
        }
    }
    assert_eq!(t.len(), MAX);
    let end = LIVE.load(Ordering::Relaxed) - base;
    let peak = PEAK.load(Ordering::Relaxed) - base;
    // ~20 bytes of key and count per entry, rounded up by the hash table
    // and the queue: well under 200 bytes per tracked nonce, at any time.
    assert!(peak <= 200 * MAX, "peak {peak} bytes");
    // No growth with the number of nonces seen once the cap is reached.
    assert!(end <= at_cap, "at cap {at_cap} bytes, after 1M {end} bytes");
    eprintln!("tracker: at cap {at_cap} B, after 1M nonces {end} B, peak {peak} B for {MAX} entries");
}
