//! A database (`SELECT n`): its keys split over a power-of-two number of
//! shards, each behind its own lock.
//!
//! Access is closure-based only (`with_shard`, `with_shards`), so the lock
//! discipline lives here: a multi-key command locks the shards of its keys
//! in ascending shard order, which can never deadlock. Handlers run inside
//! the closure and never `.await`.
//!
//! Every lock taken here goes through [`ShardRef::lock`], so that inside a
//! transaction scope (see [`crate::held`]) the shards `EXEC` already holds
//! are reused instead of locked again.

use std::sync::Arc;

use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::dict::hash_key;
use crate::held::{self, ShardRef};
use crate::mem::{alloc_size, array_size};
use crate::shard::Shard;
use crate::store::{Observer, StoreStats};

/// Most shards a database can have: shard sets are 64-bit masks.
pub const MAX_SHARDS: usize = 64;

/// One database.
pub struct Db {
    index: usize,
    /// Each shard is its own allocation so a transaction scope can own its
    /// guard (`ArcMutexGuard`).
    shards: Box<[Arc<Mutex<Shard>>]>,
    mask: u64,
}

/// The shards a multi-key command holds, locked in ascending order.
pub struct ShardGroup<'a> {
    db: &'a Db,
    guards: SmallVec<[(usize, ShardRef<'a>); 8]>,
}

impl ShardGroup<'_> {
    /// The locked shard that owns `key`.
    ///
    /// # Panics
    /// If `key` was not among the keys the group was locked for; that is a
    /// bug in a handler, never something a client can cause.
    pub fn shard(&mut self, key: &[u8]) -> &mut Shard {
        let idx = self.db.shard_of(key);
        let pos = self
            .guards
            .iter()
            .position(|(i, _)| *i == idx)
            .expect("key outside the locked shard group");
        &mut self.guards[pos].1
    }

    /// The database index.
    pub fn db_index(&self) -> usize {
        self.db.index
    }
}

impl Db {
    pub(crate) fn new(
        index: usize,
        shards: usize,
        observer: Arc<dyn Observer>,
        stats: Arc<StoreStats>,
    ) -> Self {
        let n = shards.clamp(1, MAX_SHARDS).next_power_of_two();
        let shards = (0..n)
            .map(|_| {
                Arc::new(Mutex::new(Shard::new(
                    index,
                    observer.clone(),
                    stats.clone(),
                )))
            })
            .collect();
        Db {
            index,
            shards,
            mask: (n - 1) as u64,
        }
    }

    /// The database index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The one place that decides a key's shard.
    #[inline]
    pub fn shard_of(&self, key: &[u8]) -> usize {
        (hash_key(key) & self.mask) as usize
    }

    /// The mutex of shard `i` (for [`ShardRef::lock`] and transaction scopes).
    pub(crate) fn mutex(&self, i: usize) -> &Arc<Mutex<Shard>> {
        &self.shards[i]
    }

    /// Runs `f` with the shard of `key` locked.
    #[inline]
    pub fn with_shard<R>(&self, key: &[u8], f: impl FnOnce(&mut Shard) -> R) -> R {
        let i = self.shard_of(key);
        if held::active() {
            return self.with_shard_scoped(i, f);
        }
        let mut g = self.shards[i].lock();
        g.settle_captures();
        f(&mut g)
    }

    /// `with_shard` inside a transaction scope, kept out of line so the
    /// common path stays one branch.
    #[cold]
    #[inline(never)]
    fn with_shard_scoped<R>(&self, i: usize, f: impl FnOnce(&mut Shard) -> R) -> R {
        let mut g = ShardRef::lock(self, i);
        f(&mut g)
    }

    /// Runs `f` with the shards of all `keys` locked, in ascending shard order.
    pub fn with_shards<'k, R>(
        &self,
        keys: impl IntoIterator<Item = &'k [u8]>,
        f: impl FnOnce(&mut ShardGroup<'_>) -> R,
    ) -> R {
        let mut set: u64 = 0;
        for k in keys {
            set |= 1 << self.shard_of(k);
        }
        let mut group = ShardGroup {
            db: self,
            guards: SmallVec::new(),
        };
        while set != 0 {
            let i = set.trailing_zeros() as usize;
            set &= set - 1;
            group.guards.push((i, ShardRef::lock(self, i)));
        }
        f(&mut group)
    }

    /// Runs `f` on shard `i` alone (whole-database commands visit shards one at a time).
    pub fn with_shard_at<R>(&self, i: usize, f: impl FnOnce(&mut Shard) -> R) -> R {
        let mut g = ShardRef::lock(self, i);
        f(&mut g)
    }

    /// Reads shard `i` without running the captures armed on it: a shared
    /// reference cannot change the shard, so a snapshot still to capture
    /// it loses nothing. For counts that whole-database readers (`INFO`,
    /// `DBSIZE`, the expiry cycle's planning) take from every shard, which
    /// would otherwise serialize every armed shard on a client's thread.
    pub fn peek_at<R>(&self, i: usize, f: impl FnOnce(&Shard) -> R) -> R {
        let g = ShardRef::lock_unsettled(self, i);
        f(&g)
    }

    /// [`Db::peek_at`] if shard `i` is free now, `None` if another thread
    /// holds it (a snapshot capturing it, a command). For the expiry
    /// cycle, which must not wait: on a connection's worker thread a wait
    /// stalls every client of that worker.
    pub fn try_peek_at<R>(&self, i: usize, f: impl FnOnce(&Shard) -> R) -> Option<R> {
        let g = ShardRef::try_lock_unsettled(self, i)?;
        Some(f(&g))
    }

    /// Arms `capture` on shard `i` ([`Shard::arm_capture`]) without running
    /// the captures an earlier snapshot left there: they would run now,
    /// under every lock the arming snapshot holds, instead of at the
    /// shard's next lock. Stacked, they still capture the same contents:
    /// nothing changed the shard since either was armed.
    pub fn arm_at(&self, i: usize, capture: crate::shard::Capture) {
        let mut g = ShardRef::lock_unsettled(self, i);
        g.arm_capture(capture);
    }

    /// Locks every shard in order (atomic whole-database operations).
    pub fn lock_all(&self) -> Vec<ShardRef<'_>> {
        (0..self.shards.len())
            .map(|i| ShardRef::lock(self, i))
            .collect()
    }

    /// Number of keys (expired ones not yet collected included, as Redis's `DBSIZE`).
    pub fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|i| self.peek_at(i, Shard::len))
            .sum()
    }

    /// Whether the database holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`Shard::table_overhead`] summed over the shards, visited one at a
    /// time (`MEMORY STATS`).
    pub fn table_overhead(&self) -> (usize, usize) {
        (0..self.shard_count())
            .map(|i| self.peek_at(i, Shard::table_overhead))
            .fold((0, 0), |(m, e), (sm, se)| (m + sm, e + se))
    }

    /// Bytes of the database's own structures: the shard array and each
    /// shard's lock and maps' headers, as allocated.
    pub fn structure_mem(&self) -> usize {
        // An `Arc` allocation holds two counters before the value.
        let shard =
            alloc_size(2 * std::mem::size_of::<usize>() + std::mem::size_of::<Mutex<Shard>>());
        array_size::<Arc<Mutex<Shard>>>(self.shards.len()) + self.shards.len() * shard
    }

    /// Number of keys with a TTL.
    pub fn volatile_len(&self) -> usize {
        (0..self.shards.len())
            .map(|i| self.peek_at(i, Shard::volatile_len))
            .sum()
    }

    /// Removes every key, one shard at a time; returns how many were removed.
    pub fn clear(&self) -> usize {
        (0..self.shards.len())
            .map(|i| ShardRef::lock(self, i).clear())
            .sum()
    }

    /// Empties every shard as [`Db::clear`], handing back the contents to
    /// be freed elsewhere (`FLUSHDB ASYNC`).
    pub fn detach_all(&self) -> (usize, Vec<crate::shard::Detached>) {
        let mut n = 0;
        let mut parts = Vec::with_capacity(self.shards.len());
        for i in 0..self.shards.len() {
            let (k, d) = ShardRef::lock(self, i).detach_all();
            n += k;
            parts.push(d);
        }
        (n, parts)
    }

    /// The shard lock for position `i` (used by `Store` for cross-database operations).
    pub(crate) fn lock_at(&self, i: usize) -> ShardRef<'_> {
        ShardRef::lock(self, i)
    }
}
