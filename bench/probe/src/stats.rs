//! Latency summaries of the TLS/phone modes: sorted samples to the JSON
//! fields the bench script reads. Owns nothing else.

/// `"{key}_p50_us":..,"{key}_p90_us":..,"{key}_p99_us":..,"{key}_p999_us":..,"{key}_max_us":..`
/// (µs) of `samples`, which it sorts; zeros when empty.
pub fn json_fields(key: &str, samples: &mut [u64]) -> String {
    samples.sort_unstable();
    let pct = |p: f64| -> u64 {
        if samples.is_empty() {
            return 0;
        }
        samples[((samples.len() as f64 - 1.0) * p).round() as usize]
    };
    format!(
        "\"{key}_p50_us\":{},\"{key}_p90_us\":{},\"{key}_p99_us\":{},\"{key}_p999_us\":{},\"{key}_max_us\":{}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(0.999),
        samples.last().copied().unwrap_or(0)
    )
}

/// Argument `name`'s value.
pub fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// Argument `name` parsed, or `default` when absent.
pub fn arg_num(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    arg(args, name).map_or(Ok(default), |v| v.parse().map_err(|e| format!("{name} {v}: {e}")))
}

/// Raises the soft open-files limit to the hard one (thousands of connections).
pub fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit write/read only the struct passed by pointer.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut v: Vec<u64> = (1..=1000).rev().collect();
        let s = json_fields("x", &mut v);
        assert!(
            s.contains("\"x_p50_us\":501") && s.contains("\"x_p99_us\":990") && s.contains("\"x_max_us\":1000"),
            "{s}"
        );
        assert!(json_fields("y", &mut []).contains("\"y_p50_us\":0"));
    }
}
