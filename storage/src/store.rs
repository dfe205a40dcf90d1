//! The whole keyspace: every database, the shared statistics, and the hooks
//! through which storage reports effects (expiries) to the server.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use crate::db::Db;
use crate::evict::{EvictionPool, Policy};
use crate::held::{self, HeldSet, LockSet};
use crate::shard::Shard;

/// Told of effects that happen inside storage, with the shard lock held, so
/// the server can propagate them (`DEL` for an expiry) in execution order.
pub trait Observer: Send + Sync {
    /// `key` in database `db` was removed because its TTL passed.
    fn expired(&self, db: usize, key: &[u8]);

    /// `key` in database `db` was evicted to respect `maxmemory`.
    fn evicted(&self, _db: usize, _key: &[u8]) {}

    /// `key` in database `db` now holds a list or sorted set: clients blocked
    /// on it may be served (Redis's `signalKeyAsReady`).
    fn key_ready(&self, _db: usize, _key: &[u8]) {}

    /// `key` in database `db` was just created (the `new` keyspace event).
    /// Called only while [`StoreStats::notify_new`] is set, so a server
    /// without `n` notifications pays one relaxed load per new key.
    fn key_created(&self, _db: usize, _key: &[u8]) {}

    /// `key` in database `db` changed (set, modified, deleted, its TTL
    /// changed, expired or evicted): clients caching it must be told
    /// (Redis's `trackingInvalidateKey` from `signalModifiedKey`). Called
    /// only while [`StoreStats::track_keys`] is set, so a server where no
    /// client uses client-side caching pays one relaxed load per change.
    fn key_modified(&self, _db: usize, _key: &[u8]) {}

    /// The value of a key that expired, was evicted, or that the server
    /// overwrote or deleted, to free: here by default, elsewhere under
    /// `lazyfree-lazy-expire`/`-eviction`/`-server-del`.
    fn dispose(&self, _value: crate::value::Value, _why: Disposal) {}
}

/// Why a value is handed to [`Observer::dispose`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposal {
    /// Its TTL passed.
    Expired,
    /// It was evicted for `maxmemory`.
    Evicted,
    /// A command replaced it (`SET`, `RENAME`, a `*STORE` destination) or
    /// deleted it as a side effect (an empty `*STORE` result, `RESTORE
    /// REPLACE`, `MIGRATE`): Redis's `dbDelete`/`dbSetValue`, which free
    /// under `lazyfree-lazy-server-del`.
    ServerDel,
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
    /// Report changed keys to [`Observer::key_modified`] (some client
    /// tracks keys for client-side caching, or the tracking table still
    /// names keys).
    pub track_keys: std::sync::atomic::AtomicBool,
    /// Keys removed because their TTL passed (`expired_keys`).
    pub expired_keys: AtomicU64,
    /// Changes to keys since start (Redis's `server.dirty`, one per key a
    /// write changed): `rdb_changes_since_last_save` and the `save` points
    /// count from it.
    pub dirty: AtomicU64,
    /// Bytes the keyspace holds as allocated (keys, values, per-key nodes,
    /// both maps' bucket arrays), kept as entries change: the dataset part
    /// of `used_memory`.
    pub used_memory: AtomicI64,
    /// Highest `used_memory` total the server has reported or sampled
    /// (`used_memory_peak`); kept by the server, which knows the parts of
    /// `used_memory` outside the keyspace.
    pub used_memory_peak: AtomicI64,
    /// Running average of the share of sampled volatile keys the active
    /// cycles found expired (`expired_stale_perc`), as an `f64` fraction's
    /// bits; see [`StoreStats::expired_stale_perc`].
    expired_stale_perc_bits: AtomicU64,
    /// Active cycles that stopped on their time limit (`expired_time_cap_reached_count`).
    pub expired_time_cap_reached_count: AtomicU64,
    /// Keys in every database, expired ones not yet removed included; lets
    /// eviction see "nothing to evict" without visiting shards.
    pub keys: AtomicI64,
    /// Keys with a TTL in every database.
    pub volatile_keys: AtomicI64,
    /// Which access metadata keys keep (LRU clock or LFU counter).
    pub access: crate::evict::AccessConfig,
    /// Wall time spent in active expiry cycles, in microseconds
    /// (`expire_cycle_cpu_milliseconds`, which Redis also measures as wall time).
    pub expire_cycle_time_used_us: AtomicU64,
    /// This server is a replica: expired keys stay until the primary's
    /// `DEL`, hidden from every client but the primary's link (see
    /// [`applying_primary`]), and active expiry skips them.
    pub replica: std::sync::atomic::AtomicBool,
    /// Clients are paused (`CLIENT PAUSE`): the dataset stays as it is.
    /// Expired keys are hidden but kept, and active expiry skips them
    /// (Redis's `checkClientPauseTimeoutAndReturnIfPaused` in
    /// `expireIfNeeded` and `activeExpireCycle`); the pause's end lets
    /// both delete them.
    pub paused: std::sync::atomic::AtomicBool,
}

thread_local! {
    static APPLYING_PRIMARY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks this thread as running the primary's replication stream (or not):
/// on a replica, that stream sees logically expired keys as live, as
/// Redis's master client does.
pub fn set_applying_primary(on: bool) {
    APPLYING_PRIMARY.with(|c| c.set(on));
}

/// Whether this thread runs the primary's replication stream.
pub fn applying_primary() -> bool {
    APPLYING_PRIMARY.with(std::cell::Cell::get)
}

impl StoreStats {
    /// The running average of the stale share (a fraction, 0..=1) that
    /// each active cycle updates with a 5% weight, as Redis's
    /// `stat_expired_stale_perc`.
    pub fn expired_stale_perc(&self) -> f64 {
        f64::from_bits(self.expired_stale_perc_bits.load(Ordering::Relaxed))
    }

    /// Stores a new running average (only the expiry cycle writes it).
    pub fn set_expired_stale_perc(&self, v: f64) {
        self.expired_stale_perc_bits
            .store(v.to_bits(), Ordering::Relaxed);
    }

    /// Zeroes the expiry counters `CONFIG RESETSTAT` zeroes
    /// (Redis's `resetServerStats`).
    pub fn reset_expire_stats(&self) {
        self.expired_keys.store(0, Ordering::Relaxed);
        self.set_expired_stale_perc(0.0);
        self.expired_time_cap_reached_count
            .store(0, Ordering::Relaxed);
        self.expire_cycle_time_used_us.store(0, Ordering::Relaxed);
    }
}

/// A shared handle on every database ([`Store::databases`]).
#[derive(Clone)]
pub struct Databases(Arc<[Db]>);

impl Databases {
    /// Number of databases.
    pub fn db_count(&self) -> usize {
        self.0.len()
    }

    /// Database `i` (in range: as [`Store::db`]).
    pub fn db(&self, i: usize) -> &Db {
        &self.0[i]
    }
}

/// Every database of the server.
pub struct Store {
    dbs: Arc<[Db]>,
    stats: Arc<StoreStats>,
    active_expire: AtomicBool,
}

impl Store {
    /// `databases` databases of `shards` shards each.
    pub fn new(databases: usize, shards: usize, observer: Arc<dyn Observer>) -> Self {
        let stats = Arc::new(StoreStats::default());
        let dbs: Box<[Db]> = (0..databases.max(1))
            .map(|i| Db::new(i, shards, observer.clone(), stats.clone()))
            .collect();
        let dbs = Arc::from(dbs);
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

    /// The databases, for work that outlives a borrow of the store: a
    /// snapshot's thread visits the shards through it after the command
    /// that armed the snapshot returned.
    pub fn databases(&self) -> Databases {
        Databases(self.dbs.clone())
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

    /// The shared counters, for a component that outlives a borrow of the
    /// store (the server's tracking table flips [`StoreStats::track_keys`]).
    pub fn stats_arc(&self) -> Arc<StoreStats> {
        self.stats.clone()
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

    /// Whether this thread runs inside [`Store::with_locked`] (a
    /// transaction): work that must lock every shard in order, such as a
    /// snapshot, is deferred then instead of nested.
    pub fn in_locked_scope(&self) -> bool {
        held::active()
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

    /// Evicts one key by `policy` (Redis's `performEvictions` loop body):
    /// for the LRU, LFU and TTL policies each database with candidates
    /// offers `samples` sampled keys of one shard (shards taken in turn by
    /// `cursor`) to `pool`, and the best candidate that still exists is
    /// evicted; the random policies evict a random key of the next
    /// database in turn. Returns the bytes freed, or `None` when no key can
    /// be evicted.
    pub fn evict_one(
        &self,
        policy: Policy,
        samples: usize,
        pool: &mut EvictionPool,
        cursor: &mut usize,
        now: i64,
    ) -> Option<usize> {
        let volatile = policy.volatile_only();
        let counter = if volatile {
            &self.stats.volatile_keys
        } else {
            &self.stats.keys
        };
        if policy == Policy::NoEviction {
            return None;
        }
        let n = self.dbs[0].shard_count();
        // xorshift state for the samples' positions.
        static SEED: AtomicU64 = AtomicU64::new(0x2545_F491_4F6C_DD1D);
        let mut rng = SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) | 1;
        // Enough rounds to visit every shard of every database once.
        for _ in 0..n * 2 {
            if counter.load(Ordering::Relaxed) <= 0 {
                return None;
            }
            *cursor = cursor.wrapping_add(1);
            let shard = *cursor % n;
            if policy.is_random() {
                for k in 0..self.dbs.len() {
                    let db = &self.dbs[(*cursor / n + k) % self.dbs.len()];
                    let freed = db.with_shard_at(shard, |s| {
                        let key = s.random_for_eviction(volatile)?;
                        s.evict(&key, volatile)
                    });
                    if freed.is_some() {
                        return freed;
                    }
                }
                continue;
            }
            // Sampling only reads (`peek_at`): a shard a snapshot has yet
            // to capture is captured only if its key is the one evicted.
            for db in self.dbs.iter() {
                db.peek_at(shard, |s| {
                    s.sample_for_eviction(policy, samples, now, pool, &mut rng)
                });
            }
            while let Some((db, key)) = pool.pop_best() {
                let freed = self.dbs[db].with_shard(&key, |s| s.evict(&key, volatile));
                if freed.is_some() {
                    return freed;
                }
            }
        }
        None
    }
}
