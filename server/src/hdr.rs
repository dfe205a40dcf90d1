//! The bucket layout of the HDR histogram Redis keeps per command for
//! `INFO latencystats` (`hdr_init(1, 1_000_000_000, 2, ...)`: 1 ns to 1 s,
//! two significant figures), so percentiles come out with Redis's
//! quantization (a 1 µs call is `1.003`). Only the arithmetic lives here;
//! the counts are per-thread slots in `crate::counters`.
//!
//! Port of `deps/hdr_histogram/hdr_histogram.c` for that configuration:
//! 256 sub-buckets (magnitude 7 for the half count), unit 1 ns, 23
//! buckets.

/// Sub-buckets per bucket (`sub_bucket_count`).
const SUB_BUCKETS: u64 = 256;
/// `sub_bucket_half_count_magnitude`.
const HALF_MAGNITUDE: u32 = 7;
const HALF: u64 = SUB_BUCKETS / 2;
/// Buckets covering 1 s (`buckets_needed_to_cover_value`).
const BUCKETS: usize = 23;
/// Counters per histogram (`counts_len`).
pub const LEN: usize = (BUCKETS + 1) * HALF as usize;
/// What a recorded duration is clamped to, in ns
/// (`LATENCY_HISTOGRAM_MIN_VALUE`, `..._MAX_VALUE`).
pub const MIN_VALUE: u64 = 1;
pub const MAX_VALUE: u64 = 1_000_000_000;

fn bucket_of(v: u64) -> u32 {
    let pow2ceiling = 64 - (v | (SUB_BUCKETS - 1)).leading_zeros();
    pow2ceiling - (HALF_MAGNITUDE + 1)
}

/// The counter a value of `ns` (clamped to the tracked range) goes to.
#[inline]
pub fn index(ns: u64) -> usize {
    let v = ns.clamp(MIN_VALUE, MAX_VALUE);
    let bucket = bucket_of(v);
    let sub = v >> bucket;
    (((bucket as u64 + 1) << HALF_MAGNITUDE) + sub - HALF) as usize
}

/// The lowest value counter `idx` holds (`hdr_value_at_index`).
pub fn value_at(idx: usize) -> u64 {
    let idx = idx as u64;
    let bucket = (idx >> HALF_MAGNITUDE) as i64 - 1;
    let sub = (idx & (HALF - 1)) + HALF;
    if bucket < 0 {
        sub - HALF
    } else {
        sub << bucket
    }
}

fn lowest_equivalent(v: u64) -> u64 {
    let bucket = bucket_of(v);
    (v >> bucket) << bucket
}

fn range_size(v: u64) -> u64 {
    let bucket = bucket_of(v);
    let sub = v >> bucket;
    let adjusted = if sub >= SUB_BUCKETS {
        bucket + 1
    } else {
        bucket
    };
    1 << adjusted
}

/// The value at `percentile` of `counts` (`hdr_value_at_percentile`):
/// the highest value equivalent to the counter where the cumulative count
/// reaches that share of `total` (the lowest, for percentile 0).
pub fn value_at_percentile(counts: &[u64], total: u64, percentile: f64) -> u64 {
    let requested = percentile.min(100.0);
    let wanted = ((requested / 100.0) * total as f64 + 0.5) as u64;
    let wanted = wanted.max(1);
    let mut running = 0;
    let mut value = 0;
    for (idx, c) in counts.iter().enumerate() {
        running += c;
        if running >= wanted {
            value = value_at(idx);
            break;
        }
    }
    if percentile == 0.0 {
        lowest_equivalent(value)
    } else {
        lowest_equivalent(value) + range_size(value) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values: &[u64]) -> Vec<u64> {
        let mut h = vec![0; LEN];
        for v in values {
            h[index(*v)] += 1;
        }
        h
    }

    #[test]
    fn small_values_are_exact_and_large_ones_keep_two_figures() {
        for v in [1, 2, 100, 255] {
            assert_eq!(value_at(index(v)), v);
        }
        // 1 µs sits in a 4 ns range, Redis's `p50=1.003`.
        let h = histogram(&[1000]);
        assert_eq!(value_at_percentile(&h, 1, 50.0), 1003);
        assert_eq!(value_at_percentile(&h, 1, 0.0), 1000);
        // The top of the range: 1 s, in a 2^22 ns range.
        assert!(index(u64::MAX) < LEN);
        assert_eq!(index(u64::MAX), index(MAX_VALUE));
        assert_eq!(index(0), index(1));
    }

    #[test]
    fn percentiles_split_the_counts_as_redis_does() {
        // 90 calls of 1 µs, 9 of 10 µs, 1 of 1 ms.
        let mut values = vec![1000; 90];
        values.extend([10_000; 9]);
        values.push(1_000_000);
        let h = histogram(&values);
        assert_eq!(value_at_percentile(&h, 100, 50.0), 1003);
        assert_eq!(value_at_percentile(&h, 100, 99.0), 10_047);
        assert_eq!(value_at_percentile(&h, 100, 99.9), 1_003_519);
        assert_eq!(value_at_percentile(&h, 100, 100.0), 1_003_519);
    }

    proptest::proptest! {
        /// Every value lands in a counter whose range holds it, and that
        /// range is within 1% of the value (two significant figures).
        #[test]
        fn ranges_hold_their_values(v in 1u64..=MAX_VALUE) {
            let idx = index(v);
            let low = value_at(idx);
            let high = lowest_equivalent(low) + range_size(low) - 1;
            proptest::prop_assert!(low <= v && v <= high);
            proptest::prop_assert!((high - low) as f64 <= v as f64 / 100.0 + 1.0);
            proptest::prop_assert_eq!(idx, index(low));
        }
    }
}
