//! What eviction needs from the keyspace, after Redis's `evict.c`: the
//! per-key access metadata (an LRU clock, and Redis's LFU field while an LFU
//! policy is set), the policies, and the pool of best candidates that
//! sampling fills.
//!
//! Like Redis, LRU and LFU are approximated: each eviction samples
//! `maxmemory-samples` keys into a pool of [`POOL_SIZE`] candidates kept
//! across evictions, and evicts the best one still present. Two deliberate
//! differences, both for a better hit ratio at the same cost: the LRU clock
//! ticks every [`LRU_RESOLUTION_MS`] ms instead of every second (Redis's
//! one-second clock cannot tell apart keys touched in the same second),
//! LFU breaks ties between equal counters by idle time, and the pool never
//! holds the same key twice.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};

/// Granularity of the LRU clock kept in [`crate::Entry::lru`]. 32 bits of
/// 4 ms wrap after 198 days, about Redis's 24-bit seconds clock (194 days).
pub const LRU_RESOLUTION_MS: i64 = 4;

/// Candidates kept between evictions (Redis's `EVPOOL_SIZE`).
pub const POOL_SIZE: usize = 16;

/// The counter a new key starts with under an LFU policy (`LFU_INIT_VAL`),
/// so it is not evicted before it had a chance to be used again.
pub const LFU_INIT_VAL: u8 = 5;

/// The `maxmemory-policy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Policy {
    /// Refuse `denyoom` commands above the limit.
    NoEviction = 0,
    /// Least recently used among all keys.
    AllKeysLru,
    /// Least recently used among keys with a TTL.
    VolatileLru,
    /// Least frequently used among all keys.
    AllKeysLfu,
    /// Least frequently used among keys with a TTL.
    VolatileLfu,
    /// Any key.
    AllKeysRandom,
    /// Any key with a TTL.
    VolatileRandom,
    /// The key with the nearest expiry.
    VolatileTtl,
}

impl Policy {
    /// Every policy, in `redis.conf` order.
    pub const ALL: [Policy; 8] = [
        Policy::VolatileLru,
        Policy::VolatileLfu,
        Policy::VolatileRandom,
        Policy::VolatileTtl,
        Policy::AllKeysLru,
        Policy::AllKeysLfu,
        Policy::AllKeysRandom,
        Policy::NoEviction,
    ];

    /// The `maxmemory-policy` name.
    pub fn name(self) -> &'static str {
        match self {
            Policy::NoEviction => "noeviction",
            Policy::AllKeysLru => "allkeys-lru",
            Policy::VolatileLru => "volatile-lru",
            Policy::AllKeysLfu => "allkeys-lfu",
            Policy::VolatileLfu => "volatile-lfu",
            Policy::AllKeysRandom => "allkeys-random",
            Policy::VolatileRandom => "volatile-random",
            Policy::VolatileTtl => "volatile-ttl",
        }
    }

    /// Parses a `maxmemory-policy` name (case-insensitive, as `CONFIG SET`).
    pub fn parse(name: &str) -> Option<Policy> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Whether keys carry an LFU counter instead of an LRU clock.
    pub fn is_lfu(self) -> bool {
        matches!(self, Policy::AllKeysLfu | Policy::VolatileLfu)
    }

    /// Whether only keys with a TTL may be evicted.
    pub fn volatile_only(self) -> bool {
        matches!(
            self,
            Policy::VolatileLru
                | Policy::VolatileLfu
                | Policy::VolatileRandom
                | Policy::VolatileTtl
        )
    }

    /// Whether candidates are picked at random instead of from the pool.
    pub fn is_random(self) -> bool {
        matches!(self, Policy::AllKeysRandom | Policy::VolatileRandom)
    }

    fn from_u8(v: u8) -> Policy {
        Policy::ALL
            .into_iter()
            .find(|p| *p as u8 == v)
            .unwrap_or(Policy::NoEviction)
    }
}

/// The eviction settings storage reads on every access, mirrored from the
/// config so the hot path takes no lock.
#[derive(Debug)]
pub struct AccessConfig {
    lfu: AtomicBool,
    policy: AtomicU8,
    log_factor: AtomicU32,
    decay_time: AtomicU32,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            lfu: AtomicBool::new(false),
            policy: AtomicU8::new(Policy::NoEviction as u8),
            log_factor: AtomicU32::new(10),
            decay_time: AtomicU32::new(1),
        }
    }
}

impl AccessConfig {
    /// Installs new settings (`CONFIG SET maxmemory-policy`, `lfu-*`).
    pub fn set(&self, policy: Policy, lfu_log_factor: u32, lfu_decay_time: u32) {
        self.policy.store(policy as u8, Ordering::Relaxed);
        self.lfu.store(policy.is_lfu(), Ordering::Relaxed);
        self.log_factor.store(lfu_log_factor, Ordering::Relaxed);
        self.decay_time.store(lfu_decay_time, Ordering::Relaxed);
    }

    /// The current policy.
    pub fn policy(&self) -> Policy {
        Policy::from_u8(self.policy.load(Ordering::Relaxed))
    }

    /// Whether an LFU policy is selected.
    #[inline]
    pub fn lfu(&self) -> bool {
        self.lfu.load(Ordering::Relaxed)
    }

    /// `lfu-decay-time` in minutes.
    pub fn decay_time(&self) -> u32 {
        self.decay_time.load(Ordering::Relaxed)
    }

    /// The LFU field after an access at `now_ms` (Redis's `updateLFU`):
    /// decayed, then incremented with the logarithmic probability; `rand`
    /// is a uniform random `u64`.
    #[inline]
    pub fn counted(&self, lfu: u32, now_ms: i64, rand: impl FnOnce() -> u64) -> u32 {
        let counter = lfu_decayed(lfu, now_ms, self.decay_time());
        let counter = lfu_log_incr(counter, self.log_factor.load(Ordering::Relaxed), rand());
        (lfu_minutes(now_ms) << 8) | u32::from(counter)
    }

    /// How good an eviction candidate a key is: higher is evicted first
    /// (idle time, `255 - frequency`, or the nearness of its expiry).
    /// Equal frequencies are ordered by idle time: of two keys read as
    /// often, the one not read for longer goes first.
    pub fn score(&self, policy: Policy, e: &crate::Entry, now_ms: i64) -> u64 {
        let idle_ticks = u64::from(access_clock(now_ms).wrapping_sub(e.atime));
        match policy {
            Policy::AllKeysLfu | Policy::VolatileLfu => {
                let freq = u64::from(lfu_decayed(e.lfu, now_ms, self.decay_time()));
                ((255 - freq) << 32) | idle_ticks
            }
            Policy::VolatileTtl => u64::MAX - e.expire_at.max(0) as u64,
            _ => idle_ticks,
        }
    }
}

/// The LFU field of a new key: `LFU_INIT_VAL`, so it is not evicted
/// before it had a chance to be read again.
#[inline]
pub fn lfu_initial(now_ms: i64) -> u32 {
    (lfu_minutes(now_ms) << 8) | u32::from(LFU_INIT_VAL)
}

/// The LRU clock value for `now_ms`.
#[inline]
pub fn access_clock(now_ms: i64) -> u32 {
    (now_ms / LRU_RESOLUTION_MS) as u64 as u32
}

/// Milliseconds since `meta` (an LRU clock value), by the wrapping clock.
pub fn idle_ms(meta: u32, now_ms: i64) -> u64 {
    u64::from(access_clock(now_ms).wrapping_sub(meta)) * LRU_RESOLUTION_MS as u64
}

/// Minutes since the epoch, 16 bits (`LFUGetTimeInMinutes`).
#[inline]
pub fn lfu_minutes(now_ms: i64) -> u32 {
    ((now_ms / 60_000) & 0xFFFF) as u32
}

/// The counter of `meta` after its decay: one step per `decay_time`
/// minutes without access (`LFUDecrAndReturn`). This is what `OBJECT FREQ`
/// reports.
pub fn lfu_decayed(meta: u32, now_ms: i64, decay_time: u32) -> u8 {
    let ldt = meta >> 8;
    let counter = (meta & 0xFF) as u8;
    if decay_time == 0 {
        return counter;
    }
    let now = lfu_minutes(now_ms);
    let elapsed = if now >= ldt {
        now - ldt
    } else {
        65535 - ldt + now
    };
    let periods = elapsed / decay_time;
    counter.saturating_sub(periods.min(255) as u8)
}

/// Increments a logarithmic counter with probability
/// `1 / ((counter - LFU_INIT_VAL) * log_factor + 1)` (`LFULogIncr`);
/// `rand` is a uniform random `u64`.
pub fn lfu_log_incr(counter: u8, log_factor: u32, rand: u64) -> u8 {
    if counter == 255 {
        return 255;
    }
    let r = (rand >> 11) as f64 / (1u64 << 53) as f64;
    let base = f64::from(counter.saturating_sub(LFU_INIT_VAL));
    let p = 1.0 / (base * f64::from(log_factor) + 1.0);
    if r < p {
        counter + 1
    } else {
        counter
    }
}

/// One candidate of the pool.
#[derive(Debug, Clone)]
struct Candidate {
    score: u64,
    db: usize,
    key: Box<[u8]>,
}

/// The best eviction candidates seen so far, in ascending score order
/// (Redis's `EvictionPoolLRU`): each eviction adds fresh samples and takes
/// the best that still exists.
#[derive(Debug, Default)]
pub struct EvictionPool {
    entries: Vec<Candidate>,
}

impl EvictionPool {
    /// Offers a sampled key; kept if the pool has room or it beats the
    /// worst candidate. A key already in the pool is only re-scored.
    pub fn offer(&mut self, score: u64, db: usize, key: &[u8]) {
        if let Some(i) = self
            .entries
            .iter()
            .position(|c| c.db == db && *c.key == *key)
        {
            self.entries.remove(i);
        } else if self.entries.len() == POOL_SIZE && self.entries[0].score >= score {
            return;
        }
        let at = self.entries.partition_point(|c| c.score < score);
        if self.entries.len() == POOL_SIZE {
            // Drop the worst candidate to make room.
            self.entries.remove(0);
            self.entries.insert(
                at - 1,
                Candidate {
                    score,
                    db,
                    key: key.into(),
                },
            );
        } else {
            self.entries.insert(
                at,
                Candidate {
                    score,
                    db,
                    key: key.into(),
                },
            );
        }
    }

    /// Takes the best candidate out of the pool.
    pub fn pop_best(&mut self) -> Option<(usize, Box<[u8]>)> {
        self.entries.pop().map(|c| (c.db, c.key))
    }

    /// Number of candidates held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every candidate (`FLUSHALL`, policy change).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn policy_names_round_trip() {
        for p in Policy::ALL {
            assert_eq!(Policy::parse(p.name()), Some(p));
            assert_eq!(Policy::from_u8(p as u8), p);
        }
        assert_eq!(Policy::parse("ALLKEYS-LRU"), Some(Policy::AllKeysLru));
        assert_eq!(Policy::parse("lru"), None);
    }

    #[test]
    fn lfu_counter_grows_logarithmically() {
        // With log factor 10, about a million hits reach 255 (Redis's table in redis.conf).
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut c = LFU_INIT_VAL;
        for _ in 0..1000 {
            c = lfu_log_incr(c, 10, next());
        }
        assert!((15..=25).contains(&c), "1k hits gave {c}");
        let mut c = LFU_INIT_VAL;
        for _ in 0..100_000 {
            c = lfu_log_incr(c, 10, next());
        }
        assert!((120..=160).contains(&c), "100k hits gave {c}");
        assert_eq!(lfu_log_incr(255, 10, 0), 255);
        // Log factor 0 counts every hit.
        assert_eq!(lfu_log_incr(100, 0, u64::MAX), 101);
    }

    #[test]
    fn lfu_decays_one_step_per_period() {
        let t0 = 1_700_000_000_000i64;
        let meta = (lfu_minutes(t0) << 8) | 20;
        assert_eq!(lfu_decayed(meta, t0, 1), 20);
        assert_eq!(lfu_decayed(meta, t0 + 3 * 60_000, 1), 17);
        assert_eq!(lfu_decayed(meta, t0 + 3 * 60_000, 2), 19);
        assert_eq!(lfu_decayed(meta, t0 + 3 * 60_000, 0), 20);
        assert_eq!(lfu_decayed(meta, t0 + 300 * 60_000, 1), 0);
    }

    #[test]
    fn idle_time_wraps_with_the_clock() {
        let t = 1_700_000_000_000i64;
        assert_eq!(idle_ms(access_clock(t), t + 10_000), 10_000);
        let wrap = (1i64 << 32) * LRU_RESOLUTION_MS;
        let before_wrap = wrap - 8;
        assert_eq!(idle_ms(access_clock(before_wrap), wrap + 12), 20);
    }

    #[test]
    fn pool_rescores_a_key_offered_twice() {
        let mut pool = EvictionPool::default();
        pool.offer(10, 0, b"a");
        pool.offer(20, 0, b"b");
        pool.offer(30, 0, b"a");
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.pop_best().unwrap().1.as_ref(), b"a");
        // Same key name in another database is another candidate.
        pool.offer(5, 1, b"b");
        assert_eq!(pool.len(), 2);
    }

    proptest! {
        // The pool holds the POOL_SIZE best of the distinct keys offered and
        // hands them out best first.
        #[test]
        fn pool_keeps_the_best(scores in proptest::collection::vec(0u64..1000, 0..200)) {
            let mut pool = EvictionPool::default();
            for (i, score) in scores.iter().enumerate() {
                pool.offer(*score, 0, &(i as u32).to_be_bytes());
            }
            let mut want = scores.clone();
            want.sort_unstable_by(|a, b| b.cmp(a));
            want.truncate(POOL_SIZE);
            let mut got = Vec::new();
            while let Some((_, k)) = pool.pop_best() {
                got.push(scores[u32::from_be_bytes(k[..].try_into().unwrap()) as usize]);
            }
            prop_assert_eq!(got, want);
        }
    }
}
