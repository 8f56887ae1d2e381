//! SRV target order (RFC 2782, "Usage rules"): priority ascending, and
//! within one priority a weighted random selection.
//!
//! Pure: the randomness comes from the caller's RNG, so a seeded RNG gives a
//! reproducible order. Must not do lookups.

use rand::{Rng, RngExt};

use super::SrvRecord;

/// True when the answer says the service is decidedly not available: every
/// record has the target `.` (RFC 2782).
pub(crate) fn unavailable(records: &[SrvRecord]) -> bool {
    !records.is_empty() && records.iter().all(|r| r.target.is_empty())
}

/// Orders the records to try (targets `.` are dropped). Priorities go
/// lowest first; within a priority, RFC 2782's selection repeats until the
/// set is empty: weight-0 records first in the list, running sums of the
/// weights, a uniform random number in `0..=sum`, the first record whose
/// running sum reaches it is next. A weight-0 record is thus always tried,
/// and before heavier records only with a small chance (`1 / (sum + 1)`).
///
/// The records are first put in a canonical order (target, port), so the
/// result depends only on the record set and the RNG, not on the order the
/// server sent them in (servers rotate them).
pub(crate) fn order<R: Rng + ?Sized>(records: &[SrvRecord], rng: &mut R) -> Vec<SrvRecord> {
    let mut usable: Vec<&SrvRecord> = records.iter().filter(|r| !r.target.is_empty()).collect();
    usable.sort_by(|a, b| (a.priority, &a.target, a.port).cmp(&(b.priority, &b.target, b.port)));
    let mut out = Vec::with_capacity(usable.len());
    for group in usable.chunk_by(|a, b| a.priority == b.priority) {
        let mut left: Vec<&SrvRecord> = group.iter().filter(|r| r.weight == 0).copied().collect();
        left.extend(group.iter().filter(|r| r.weight > 0));
        while !left.is_empty() {
            let total: u32 = left.iter().map(|r| u32::from(r.weight)).sum();
            let pick = rng.random_range(0..=total);
            let mut running = 0u32;
            let idx = left
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= pick
                })
                .unwrap_or(left.len() - 1);
            out.push(left.remove(idx).clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn srv(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord { priority, weight, port: 5060, target: target.into(), ttl: 60 }
    }

    fn targets(v: &[SrvRecord]) -> Vec<&str> {
        v.iter().map(|r| r.target.as_str()).collect()
    }

    #[test]
    fn priorities_ascending_and_dot_dropped() {
        let recs = vec![srv(20, 0, "backup"), srv(10, 0, "primary"), srv(30, 5, ""), srv(5, 0, "first")];
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(targets(&order(&recs, &mut rng)), vec!["first", "primary", "backup"]);
        assert!(!unavailable(&recs));
        assert!(unavailable(&[srv(0, 0, "")]));
        assert!(!unavailable(&[]));
    }

    #[test]
    fn same_seed_same_order() {
        let recs: Vec<SrvRecord> = (0..6).map(|i| srv(10, 10 + i, &format!("t{i}"))).collect();
        let a = order(&recs, &mut StdRng::seed_from_u64(42));
        let b = order(&recs, &mut StdRng::seed_from_u64(42));
        assert_eq!(a, b);
        assert_eq!(a.len(), 6);
        let differs = (0..50u64).any(|s| order(&recs, &mut StdRng::seed_from_u64(s)) != a);
        assert!(differs, "the order must depend on the RNG");
    }

    #[test]
    fn weights_set_the_odds_and_backups_come_after() {
        let recs = vec![srv(10, 60, "heavy"), srv(10, 40, "light"), srv(10, 0, "zero"), srv(20, 100, "backup")];
        let mut rng = StdRng::seed_from_u64(7);
        let (mut heavy_first, mut zero_first, mut zero_last_of_group) = (0, 0, 0);
        let runs = 10_000;
        for _ in 0..runs {
            let o = order(&recs, &mut rng);
            let t = targets(&o);
            assert_eq!(t.len(), 4);
            assert_eq!(t[3], "backup", "a lower priority never comes before a higher one: {t:?}");
            heavy_first += usize::from(t[0] == "heavy");
            zero_first += usize::from(t[0] == "zero");
            zero_last_of_group += usize::from(t[2] == "zero");
        }
        // P(heavy first) = 60/101, P(zero first) = 1/101.
        let share = heavy_first as f64 / runs as f64;
        assert!((0.55..0.64).contains(&share), "heavy first in {share}");
        assert!(zero_first > 0 && zero_first < runs / 40, "zero first {zero_first} times");
        assert!(zero_last_of_group > runs * 9 / 10, "zero last {zero_last_of_group} times");
    }

    #[test]
    fn independent_of_the_answer_order() {
        let recs = vec![srv(10, 30, "a"), srv(10, 20, "b"), srv(10, 50, "c"), srv(20, 1, "d"), srv(20, 1, "e")];
        let mut rotated = recs.clone();
        rotated.rotate_left(2);
        rotated.swap(0, 1);
        for seed in 0..20 {
            assert_eq!(
                order(&recs, &mut StdRng::seed_from_u64(seed)),
                order(&rotated, &mut StdRng::seed_from_u64(seed))
            );
        }
    }

    #[test]
    fn all_zero_weights_are_all_tried() {
        let recs = vec![srv(1, 0, "a"), srv(1, 0, "b"), srv(1, 0, "c")];
        let o = order(&recs, &mut StdRng::seed_from_u64(3));
        let mut t = targets(&o);
        t.sort();
        assert_eq!(t, vec!["a", "b", "c"]);
    }
}
