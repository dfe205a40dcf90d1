//! The whole keyspace: every database, the shared statistics, and the hooks
//! through which storage reports effects (expiries) to the server.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::db::Db;
use crate::held::{self, HeldSet, LockSet};
use crate::shard::Shard;

/// Told of effects that happen inside storage, with the shard lock held, so
/// the server can propagate them (`DEL` for an expiry) in execution order.
pub trait Observer: Send + Sync {
    /// `key` in database `db` was removed because its TTL passed.
    fn expired(&self, db: usize, key: &[u8]);

    /// `key` in database `db` now holds a list or sorted set: clients blocked
    /// on it may be served (Redis's `signalKeyAsReady`).
    fn key_ready(&self, _db: usize, _key: &[u8]) {}

    /// `key` in database `db` was just created (the `new` keyspace event).
    /// Called only while [`StoreStats::notify_new`] is set, so a server
    /// without `n` notifications pays one relaxed load per new key.
    fn key_created(&self, _db: usize, _key: &[u8]) {}
}

/// An observer that ignores everything (unit tests, tools).
pub struct NoObserver;

impl Observer for NoObserver {
    fn expired(&self, _db: usize, _key: &[u8]) {}
}

/// Counters shared by all shards, read by `INFO`.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Report new keys to [`Observer::key_created`] (`notify-keyspace-events` has `n`).
    pub notify_new: std::sync::atomic::AtomicBool,
    /// Keys removed because their TTL passed (`expired_keys`).
    pub expired_keys: AtomicU64,
    /// Bytes the keyspace holds as allocated (keys, values, per-key nodes,
    /// both maps' bucket arrays), kept as entries change: the dataset part
    /// of `used_memory`.
    pub used_memory: AtomicI64,
    /// Highest `used_memory` total the server has reported or sampled
    /// (`used_memory_peak`); kept by the server, which knows the parts of
    /// `used_memory` outside the keyspace.
    pub used_memory_peak: AtomicI64,
    /// Share of sampled volatile keys found expired in the last cycle, in percent x100.
    pub expired_stale_perc_x100: AtomicU64,
    /// Active cycles that stopped on their time budget (`expired_time_cap_reached_count`).
    pub expired_time_cap_reached_count: AtomicU64,
}

/// Every database of the server.
pub struct Store {
    dbs: Box<[Db]>,
    stats: Arc<StoreStats>,
    active_expire: AtomicBool,
}

/// Keys checked per step of the active expiry cycle (Redis's
/// `ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP`).
pub const EXPIRE_KEYS_PER_LOOP: usize = 20;

impl Store {
    /// `databases` databases of `shards` shards each.
    pub fn new(databases: usize, shards: usize, observer: Arc<dyn Observer>) -> Self {
        let stats = Arc::new(StoreStats::default());
        let dbs = (0..databases.max(1))
            .map(|i| Db::new(i, shards, observer.clone(), stats.clone()))
            .collect();
        Store {
            dbs,
            stats,
            active_expire: AtomicBool::new(true),
        }
    }

    /// Number of databases.
    pub fn db_count(&self) -> usize {
        self.dbs.len()
    }

    /// Database `i`.
    ///
    /// # Panics
    /// If `i` is out of range; callers validate `SELECT` indexes first.
    pub fn db(&self, i: usize) -> &Db {
        &self.dbs[i]
    }

    /// Bytes of the keyspace's fixed structures (databases, shards, their
    /// locks), allocated at startup whatever the data: the part of
    /// `used_memory_startup` the store can size.
    pub fn structure_mem(&self) -> usize {
        crate::mem::array_size::<Db>(self.dbs.len())
            + self.dbs.iter().map(Db::structure_mem).sum::<usize>()
    }

    /// The shared counters.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// Turns the active expiry cycle on or off (`DEBUG SET-ACTIVE-EXPIRE`).
    pub fn set_active_expire(&self, on: bool) {
        self.active_expire.store(on, Ordering::Relaxed);
    }

    /// Whether the active expiry cycle runs.
    pub fn active_expire_enabled(&self) -> bool {
        self.active_expire.load(Ordering::Relaxed)
    }

    /// Runs `f` with every shard of `set` locked for its whole duration, so
    /// that everything `f` does through this store is one atomic step
    /// (`EXEC`). Shards are locked in the global order (shard position, then
    /// database), the order every other multi-shard operation follows, so
    /// this cannot deadlock with them. Inside `f`, accesses on this thread
    /// to a shard of the set reuse its guard (see [`crate::held`]); other
    /// shards are locked as usual, so `set` must cover every shard `f`
    /// touches for the lock order to hold.
    ///
    /// A nested call runs `f` under the outer scope.
    pub fn with_locked<R>(&self, set: &LockSet, f: impl FnOnce() -> R) -> R {
        if held::active() {
            return f();
        }
        let n = self.dbs[0].shard_count();
        let addrs = self.dbs.iter().map(|d| d as *const Db as usize).collect();
        let mut held = HeldSet::new(addrs, n);
        for i in 0..n {
            for (d, db) in self.dbs.iter().enumerate() {
                if set.contains(d, i) {
                    held.hold(d, i, db.mutex(i).lock_arc());
                }
            }
        }
        let _scope = held::install(held);
        f()
    }

    /// Swaps two databases' contents atomically (`SWAPDB`): all shards of
    /// both are locked, in the global order (shard position, then database).
    /// `now` decides which watched keys count as expired.
    pub fn swap_dbs(&self, a: usize, b: usize, now: i64) {
        if a == b {
            return;
        }
        let (lo, hi) = (a.min(b), a.max(b));
        let n = self.dbs[lo].shard_count();
        let mut guards = Vec::with_capacity(n);
        for i in 0..n {
            let g1 = self.dbs[lo].lock_at(i);
            let g2 = self.dbs[hi].lock_at(i);
            guards.push((g1, g2));
        }
        for (g1, g2) in guards.iter_mut() {
            g1.swap_contents(g2, now);
        }
    }

    /// Runs `f` with the shards of `key` in databases `a` and `b` locked, in
    /// the global order; `f` gets (shard in a, shard in b). `a != b`.
    pub fn with_key_in_two_dbs<R>(
        &self,
        a: usize,
        b: usize,
        key_a: &[u8],
        key_b: &[u8],
        f: impl FnOnce(&mut Shard, &mut Shard) -> R,
    ) -> R {
        let (sa, sb) = (self.dbs[a].shard_of(key_a), self.dbs[b].shard_of(key_b));
        if (sa, a) < (sb, b) {
            let mut ga = self.dbs[a].lock_at(sa);
            let mut gb = self.dbs[b].lock_at(sb);
            f(&mut ga, &mut gb)
        } else {
            let mut gb = self.dbs[b].lock_at(sb);
            let mut ga = self.dbs[a].lock_at(sa);
            f(&mut ga, &mut gb)
        }
    }

    /// Removes everything in every database.
    pub fn flush_all(&self) -> usize {
        self.dbs.iter().map(Db::clear).sum()
    }

    /// One run of the active expiry cycle, like Redis's slow
    /// `activeExpireCycle`: every shard of every database is stepped, and a
    /// shard is stepped again while more than a quarter of its sample had
    /// expired, until `budget` runs out. Returns keys expired.
    pub fn active_expire_cycle(&self, now: i64, budget: std::time::Duration) -> usize {
        if !self.active_expire_enabled() {
            return 0;
        }
        let start = Instant::now();
        let mut total_checked = 0usize;
        let mut total_expired = 0usize;
        let mut capped = false;
        'outer: for db in self.dbs.iter() {
            for i in 0..db.shard_count() {
                loop {
                    let (checked, expired) = db.with_shard_at(i, |s| {
                        if s.volatile_len() == 0 {
                            (0, 0)
                        } else {
                            s.active_expire_step(now, EXPIRE_KEYS_PER_LOOP)
                        }
                    });
                    total_checked += checked;
                    total_expired += expired;
                    if start.elapsed() >= budget {
                        capped = true;
                        break 'outer;
                    }
                    if checked == 0 || expired * 4 <= checked {
                        break;
                    }
                }
            }
        }
        if capped {
            self.stats
                .expired_time_cap_reached_count
                .fetch_add(1, Ordering::Relaxed);
        }
        let perc = (total_expired * 10000)
            .checked_div(total_checked)
            .unwrap_or(0);
        self.stats
            .expired_stale_perc_x100
            .store(perc as u64, Ordering::Relaxed);
        total_expired
    }
}
