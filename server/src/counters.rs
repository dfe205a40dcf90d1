//! Counters the request path bumps on every command, kept per thread.
//!
//! With two or more workers busy, one shared atomic per counter
//! (`total_commands_processed`, a command's `calls`, `keyspace_hits`, ...)
//! bounces its cache line between cores on every command. Each thread
//! instead writes its own slab, with a plain load and store (it is the
//! slab's only writer), and readers (`INFO`, the balancer) add up the
//! slabs. `CONFIG RESETSTAT` never writes a slab: it records the current
//! sums as the new zero, so a writer's store can never undo a reset.

use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};

use parking_lot::Mutex;

use crate::command::table::TABLE;
use crate::hdr;

/// Server-wide slots; after them, per command id: calls and µs.
#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub enum Slot {
    Commands = 0,
    NetIn,
    NetOut,
    Hits,
    Misses,
}

const FIXED: usize = 5;

/// Buckets of a command's latency histogram (`LATENCY HISTOGRAM`): bucket
/// `k` counts the calls that Redis's HDR histogram (1 µs to 1 s, two
/// significant figures, reported on a log-2 scale from 1024 ns) reports at
/// level `1024 << k` ns: durations up to that level plus its equivalence
/// range (`level / 128`). 1024 << 20 ns is past the 1 s ceiling. Derived
/// from the HDR counts (`histogram`), as Redis's `fillCommandCDF` iterates
/// the same histogram `INFO latencystats` reads.
pub const LEVELS: usize = 21;

/// Slots per command: calls, µs.
const PER_COMMAND: usize = 2;

fn calls_slot(id: u32) -> usize {
    FIXED + PER_COMMAND * id as usize
}

/// Whether calls are recorded in the latency histograms
/// (`latency-tracking`).
pub static TRACKING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// The histogram bucket of a call that took `nanos` (clamped to Redis's
/// 1024 ns .. 1 s tracking range, as `updateCommandLatencyHistogram`).
#[inline]
pub fn level(nanos: u64) -> usize {
    let v = nanos.clamp(1024, 1_000_000_000);
    // The smallest k with v <= 1024 << k ...
    let k = (64 - ((v - 1) >> 10).leading_zeros()) as usize;
    // ... unless v falls in the level below's equivalence range.
    if k > 0 {
        let below = 1024u64 << (k - 1);
        if v < below + below / 128 {
            return k - 1;
        }
    }
    k.min(LEVELS - 1)
}

/// The duration in µs `LATENCY HISTOGRAM` shows for bucket `k` (the HDR
/// histogram's highest equivalent value of level `1024 << k` ns).
pub fn level_usec(k: usize) -> u64 {
    let l = 1024u64 << k;
    (l + l / 128 - 1) / 1000
}

fn len() -> usize {
    calls_slot(TABLE.names.len() as u32 + 1)
}

/// A thread's counters, and per command id its HDR histogram for `INFO
/// latencystats` (`crate::hdr`), made on the command's first call on that
/// thread: 24 KB each, so only commands a thread runs cost any.
struct Slab {
    slots: Box<[AtomicU64]>,
    hdr: Box<[OnceLock<Box<[AtomicU64]>>]>,
}

impl Slab {
    fn new() -> Self {
        Slab {
            slots: (0..len()).map(|_| AtomicU64::new(0)).collect(),
            hdr: (0..=TABLE.names.len()).map(|_| OnceLock::new()).collect(),
        }
    }
}

#[derive(Default)]
struct Registry {
    slabs: Vec<Arc<Slab>>,
    /// The sums at the last `CONFIG RESETSTAT`.
    zero: Vec<u64>,
    /// The HDR histograms' sums then, by command id.
    hdr_zero: std::collections::HashMap<u32, Vec<u64>>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Default::default);

thread_local! {
    static MINE: OnceCell<Arc<Slab>> = const { OnceCell::new() };
}

#[inline]
fn with_mine(f: impl FnOnce(&Slab)) {
    MINE.with(|m| {
        let slab = m.get_or_init(|| {
            let slab = Arc::new(Slab::new());
            REGISTRY.lock().slabs.push(slab.clone());
            slab
        });
        f(slab)
    });
}

#[inline]
fn bump(slab: &[AtomicU64], i: usize, n: u64) {
    if let Some(c) = slab.get(i) {
        // This thread is the slab's only writer.
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

/// Adds `n` to a server-wide slot.
#[inline]
pub fn add(slot: Slot, n: u64) {
    with_mine(|s| bump(&s.slots, slot as usize, n));
}

/// One call of command `id` that took `nanos`, and one command processed.
#[inline]
pub fn command(id: u32, nanos: u64) {
    with_mine(|s| {
        let slots = &s.slots;
        bump(slots, Slot::Commands as usize, 1);
        bump(slots, calls_slot(id), 1);
        bump(slots, calls_slot(id) + 1, nanos / 1000);
        if TRACKING.load(Ordering::Relaxed) {
            if let Some(h) = s.hdr.get(id as usize) {
                let h = h.get_or_init(|| (0..hdr::LEN).map(|_| AtomicU64::new(0)).collect());
                bump(h, hdr::index(nanos), 1);
            }
        }
    });
}

fn sum(i: usize) -> u64 {
    let r = REGISTRY.lock();
    let total = r
        .slabs
        .iter()
        .filter_map(|s| s.slots.get(i))
        .fold(0u64, |a, c| a.wrapping_add(c.load(Ordering::Relaxed)));
    total.wrapping_sub(r.zero.get(i).copied().unwrap_or(0))
}

/// Every slot's sum at once, for readers of many counters (`INFO
/// commandstats` reads two per command): one pass over the slabs under
/// one lock instead of one per counter.
pub struct Snapshot(Vec<u64>);

impl Snapshot {
    /// Calls and µs of command `id` since the last reset.
    pub fn command(&self, id: u32) -> (u64, u64) {
        let at = |i: usize| self.0.get(i).copied().unwrap_or(0);
        (at(calls_slot(id)), at(calls_slot(id) + 1))
    }
}

/// Adds every thread's slab once; what `reset` records and what a
/// [`Snapshot`] reads.
fn totals(r: &Registry) -> Vec<u64> {
    let mut sums = vec![0u64; len()];
    for s in &r.slabs {
        for (z, c) in sums.iter_mut().zip(s.slots.iter()) {
            *z = z.wrapping_add(c.load(Ordering::Relaxed));
        }
    }
    sums
}

/// All counters since the last reset.
pub fn snapshot() -> Snapshot {
    let r = REGISTRY.lock();
    let mut sums = totals(&r);
    for (v, z) in sums.iter_mut().zip(r.zero.iter()) {
        *v = v.wrapping_sub(*z);
    }
    Snapshot(sums)
}

/// A server-wide slot's value since the last reset.
pub fn get(slot: Slot) -> u64 {
    sum(slot as usize)
}

/// `CONFIG RESETSTAT`: every counter reads 0 from now on.
pub fn reset() {
    let mut r = REGISTRY.lock();
    r.zero = totals(&r);
    r.hdr_zero = (0..=TABLE.names.len() as u32)
        .filter_map(|id| hdr_totals(&r, id).map(|h| (id, h)))
        .collect();
}

/// Command `id`'s HDR counts over every thread, if any thread has them.
fn hdr_totals(r: &Registry, id: u32) -> Option<Vec<u64>> {
    let mut sums: Option<Vec<u64>> = None;
    for s in &r.slabs {
        let Some(h) = s.hdr.get(id as usize).and_then(|h| h.get()) else {
            continue;
        };
        let sums = sums.get_or_insert_with(|| vec![0; hdr::LEN]);
        for (z, c) in sums.iter_mut().zip(h.iter()) {
            *z = z.wrapping_add(c.load(Ordering::Relaxed));
        }
    }
    sums
}

/// Command `id`'s HDR counts since the last reset, if any thread has
/// them.
fn hdr_since_reset(id: u32) -> Option<Vec<u64>> {
    let r = REGISTRY.lock();
    let mut counts = hdr_totals(&r, id)?;
    if let Some(zero) = r.hdr_zero.get(&id) {
        for (c, z) in counts.iter_mut().zip(zero) {
            *c = c.wrapping_sub(*z);
        }
    }
    Some(counts)
}

/// Command `id`'s latency histogram since the last reset, by bucket
/// ([`LEVELS`]). Each HDR counter falls in one level: a level's upper
/// edge `1024 << k` and its equivalence range `[1024 << k, (1024 << k) +
/// (8 << k))` are both HDR sub-bucket boundaries at that magnitude.
pub fn histogram(id: u32) -> [u64; LEVELS] {
    let mut h = [0u64; LEVELS];
    if let Some(counts) = hdr_since_reset(id) {
        for (i, n) in counts.iter().enumerate() {
            if *n > 0 {
                h[level(hdr::value_at(i))] += n;
            }
        }
    }
    h
}

/// Command `id`'s latency percentiles in ns since the last reset, one
/// per entry of `percentiles`, as `INFO latencystats` shows them; `None`
/// when it has no call since.
pub fn percentiles(id: u32, percentiles: &[f64]) -> Option<Vec<u64>> {
    let counts = hdr_since_reset(id)?;
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    Some(
        percentiles
            .iter()
            .map(|p| hdr::value_at_percentile(&counts, total, *p))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the registry is global to the process.
    #[test]
    fn threads_add_up_and_reset_zeroes() {
        let id = TABLE.lookup(b"get").expect("get").id;
        let base = get(Slot::Hits);
        let (c0, u0) = snapshot().command(id);
        let h0 = histogram(id);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        add(Slot::Hits, 1);
                        command(id, 2000);
                    }
                });
            }
        });
        assert_eq!(get(Slot::Hits) - base, 4000);
        let (c, u) = snapshot().command(id);
        assert_eq!((c - c0, u - u0), (4000, 8000));
        assert_eq!(histogram(id)[1] - h0[1], 4000, "2 µs: the 2048 ns level");
        reset();
        assert_eq!(get(Slot::Hits), 0);
        assert_eq!(snapshot().command(id), (0, 0));
        assert_eq!(histogram(id), [0; LEVELS]);
        add(Slot::Hits, 3);
        assert_eq!(get(Slot::Hits), 3);
    }

    /// Levels and their labels as Redis's HDR histogram reports them.
    #[test]
    fn levels_follow_the_hdr_histogram() {
        assert_eq!(level(0), 0);
        assert_eq!(level(1031), 0);
        assert_eq!(level(1032), 1);
        assert_eq!(level(2048), 1);
        assert_eq!(level(2063), 1);
        assert_eq!(level(2064), 2);
        assert_eq!(level(5_000_000_000), 20);
        // Every value lands in the level of its HDR counter's lowest
        // value, which is what `histogram` relies on.
        let mut v = 1u64;
        while v <= 2_000_000_000 {
            for d in [v - 1, v, v + 1, v + v / 128 - 1, v + v / 128, v * 3 / 2] {
                assert_eq!(level(hdr::value_at(hdr::index(d))), level(d), "{d} ns");
            }
            v *= 2;
        }
        let labels: Vec<u64> = (0..8).map(level_usec).collect();
        assert_eq!(labels, [1, 2, 4, 8, 16, 33, 66, 132]);
    }
}
