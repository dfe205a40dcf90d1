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
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

use crate::command::table::TABLE;

/// Server-wide slots; after them, two per command id (calls, µs).
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

fn calls_slot(id: u32) -> usize {
    FIXED + 2 * id as usize
}

fn len() -> usize {
    calls_slot(TABLE.names.len() as u32 + 1)
}

struct Slab(Box<[AtomicU64]>);

#[derive(Default)]
struct Registry {
    slabs: Vec<Arc<Slab>>,
    /// The sums at the last `CONFIG RESETSTAT`.
    zero: Vec<u64>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Default::default);

thread_local! {
    static MINE: OnceCell<Arc<Slab>> = const { OnceCell::new() };
}

#[inline]
fn with_mine(f: impl FnOnce(&Slab)) {
    MINE.with(|m| {
        let slab = m.get_or_init(|| {
            let slab = Arc::new(Slab((0..len()).map(|_| AtomicU64::new(0)).collect()));
            REGISTRY.lock().slabs.push(slab.clone());
            slab
        });
        f(slab)
    });
}

#[inline]
fn bump(slab: &Slab, i: usize, n: u64) {
    if let Some(c) = slab.0.get(i) {
        // This thread is the slab's only writer.
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

/// Adds `n` to a server-wide slot.
#[inline]
pub fn add(slot: Slot, n: u64) {
    with_mine(|s| bump(s, slot as usize, n));
}

/// One call of command `id` that took `usec`, and one command processed.
#[inline]
pub fn command(id: u32, usec: u64) {
    with_mine(|s| {
        bump(s, Slot::Commands as usize, 1);
        bump(s, calls_slot(id), 1);
        bump(s, calls_slot(id) + 1, usec);
    });
}

fn sum(i: usize) -> u64 {
    let r = REGISTRY.lock();
    let total = r
        .slabs
        .iter()
        .filter_map(|s| s.0.get(i))
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
        for (z, c) in sums.iter_mut().zip(s.0.iter()) {
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
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        add(Slot::Hits, 1);
                        command(id, 2);
                    }
                });
            }
        });
        assert_eq!(get(Slot::Hits) - base, 4000);
        let (c, u) = snapshot().command(id);
        assert_eq!((c - c0, u - u0), (4000, 8000));
        reset();
        assert_eq!(get(Slot::Hits), 0);
        assert_eq!(snapshot().command(id), (0, 0));
        add(Slot::Hits, 3);
        assert_eq!(get(Slot::Hits), 3);
    }
}
