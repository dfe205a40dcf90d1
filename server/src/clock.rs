//! Clock reads for the per-command path.
//!
//! Every command reads the wall clock once, for its time (`last_interaction`,
//! expiry) and the start of its timing (`commandstats`, the slow log), and
//! once more at its end, as Redis's `call()` uses `ustime()`.
//! `SystemTime`/`Instant` arithmetic went through checked `Duration`
//! subtraction and `u128` conversions (~300 instructions of a GET under
//! callgrind); `clock_gettime` (vDSO, no syscall) and plain integer
//! arithmetic give the same values. rustix is built with
//! `use-libc`: its own vDSO lookup crashed the server under valgrind
//! (callgrind is how bench-vs-redis counts instructions).

use rustix::time::{clock_gettime, ClockId};

/// Reads `clock` (rustix's safe wrapper calls the vDSO, no syscall).
#[inline]
fn read(clock: ClockId) -> (i64, i64) {
    let ts = clock_gettime(clock);
    (ts.tv_sec, ts.tv_nsec)
}

/// Current unix time in milliseconds (Redis's `mstime()`).
#[inline]
pub fn unix_ms() -> i64 {
    let (s, ns) = read(ClockId::Realtime);
    s * 1000 + ns / 1_000_000
}

/// Current unix time in microseconds (Redis's `ustime()`).
#[inline]
pub fn unix_us() -> i64 {
    let (s, ns) = read(ClockId::Realtime);
    s * 1_000_000 + ns / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_std() {
        let std_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let ours = unix_ms();
        assert!((ours - std_ms).abs() < 1000, "{ours} vs {std_ms}");
        assert!((unix_us() / 1000 - ours).abs() < 1000);
    }
}
