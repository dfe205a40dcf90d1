//! One shard of a database: its keys, its index of keys with a TTL, and its
//! memory count. A shard is only ever touched with its lock held.

use std::sync::Arc;

use crate::dict::{hash_key, Dict};
use crate::evict::{EvictionPool, Policy};
use crate::key::Key;
use crate::store::{Observer, StoreStats};
use crate::value::Value;
use crate::watch::{WatchFlag, WatchTable, Watcher};

/// `expire_at` of a key without a TTL.
pub const NO_EXPIRE: i64 = -1;

/// Fixed per-key cost beyond the key's bytes and the value's heap: the
/// chain node holding the [`Entry`] as the allocator serves it. The bucket
/// slots are charged with the table ([`Dict::table_bytes`]).
pub const ENTRY_OVERHEAD: usize = Dict::<Entry>::NODE_BYTES;

/// Fixed cost of a TTL beyond the key's bytes: the node in the index of
/// keys with a TTL, which holds its own copy of the key.
const EXPIRE_OVERHEAD: usize = Dict::<()>::NODE_BYTES;

/// A key's value and metadata.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// Absolute expiry in unix milliseconds, or [`NO_EXPIRE`].
    pub expire_at: i64,
    /// The last access as an LRU clock value ([`crate::evict::access_clock`]),
    /// kept under every policy: LRU evicts by it, LFU breaks ties with it,
    /// `OBJECT IDLETIME` reports it.
    pub atime: u32,
    /// Redis's LFU field (`robj.lru` under an LFU policy): the minute of the
    /// last decrement and a logarithmic access counter
    /// (`minutes << 8 | counter`), counted only while an LFU policy is set.
    /// It fits in the padding after `atime`, so it costs no memory.
    pub lfu: u32,
}

/// Seconds-resolution LRU clock from unix milliseconds (24 bits, like Redis's `LRU_CLOCK`).
pub fn lru_clock(now_ms: i64) -> u32 {
    ((now_ms / 1000) as u64 & ((1 << 24) - 1)) as u32
}

/// Seconds since the access recorded in an entry's LRU metadata
/// (`OBJECT IDLETIME`).
pub fn idle_seconds(lru: u32, now_ms: i64) -> u64 {
    crate::evict::idle_ms(lru, now_ms) / 1000
}

/// Work to run on a shard, as it is, before anything else locks it: a
/// snapshot's capture of this shard ([`Shard::arm_capture`]).
pub type Capture = Box<dyn FnOnce(&Shard) + Send>;

/// A shard of one database.
pub struct Shard {
    db: usize,
    /// Captures armed by snapshots whose point in time this shard has not
    /// left yet: every lock runs them first ([`Shard::settle_captures`]).
    captures: Vec<Capture>,
    keys: Dict<Entry>,
    expires: Dict<()>,
    expire_cursor: u64,
    observer: Arc<dyn Observer>,
    stats: Arc<StoreStats>,
    /// Keys some client `WATCH`es; `None` while there are none, so a change
    /// costs one check.
    watched: Option<Box<WatchTable>>,
    /// xorshift state for LFU increments and eviction sampling.
    rng: u64,
    /// Set by [`Shard::quietly`]: `modify` does not signal the change, the
    /// caller does if anything changed ([`Shard::signal_modified`]).
    quiet: bool,
    /// Bytes of the two bucket arrays as last charged to `used_memory`,
    /// and their bucket counts then.
    table_mem: usize,
    table_buckets: (usize, usize),
}

/// Records an access: the LRU clock always, the LFU counter under an LFU
/// policy (Redis's `updateLFU` / `LRU_CLOCK()` in `lookupKey`).
#[inline]
fn touch_access(e: &mut Entry, access: &crate::evict::AccessConfig, now: i64, rng: &mut u64) {
    e.atime = crate::evict::access_clock(now);
    if access.lfu() {
        e.lfu = access.counted(e.lfu, now, || next_rand(rng));
    }
}

/// One xorshift64 step: cheap randomness for sampling, not for secrets.
#[inline]
fn next_rand(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

fn logically_expired(e: &Entry, now: i64) -> bool {
    e.expire_at != NO_EXPIRE && e.expire_at <= now
}

/// Marks the watchers of the keys of `emptied` that exist in it (or, for
/// `SWAPDB`, in `replaced_with`) as Redis's `touchAllWatchedKeysInDb` does:
/// an already-expired key that disappears, or stays expired, is no change.
fn touch_all(
    watched: &mut WatchTable,
    emptied: &Dict<Entry>,
    replaced_with: Option<&Dict<Entry>>,
    now: i64,
) {
    for (key, watchers) in watched.iter_mut() {
        let in_emptied = emptied.get(key).is_some();
        let replacement = replaced_with.and_then(|d| d.get(key));
        if !in_emptied && replacement.is_none() {
            continue;
        }
        let replacement_expired = replacement.is_some_and(|e| logically_expired(e, now));
        for w in watchers.iter_mut() {
            if w.expired {
                if replacement.is_none() {
                    // The expired key is gone: no logical change.
                    w.expired = false;
                    continue;
                } else if replacement_expired {
                    continue;
                }
            } else if !in_emptied && replacement_expired {
                // A missing key replaced by an expired one.
                w.expired = true;
                continue;
            }
            w.flag.mark();
        }
    }
}

/// Bytes one key costs, as `used_memory` charges it and `MEMORY USAGE`
/// reports it: its chain node, its key bytes when not inline, its value's heap and, with a
/// TTL, its node and key copy in the TTL index. O(1): values keep their
/// sizes incrementally.
pub fn entry_mem(key: &[u8], e: &Entry) -> usize {
    ENTRY_OVERHEAD
        + Key::heap_size(key.len())
        + e.value.mem_usage()
        + if e.expire_at != NO_EXPIRE {
            expire_mem(key)
        } else {
            0
        }
}

/// Bytes a TTL adds to a key: its node and key copy in the TTL index.
fn expire_mem(key: &[u8]) -> usize {
    EXPIRE_OVERHEAD + Key::heap_size(key.len())
}

/// A shard's former contents, freed when dropped (wherever that is).
pub struct Detached {
    _keys: Dict<Entry>,
    _expires: Dict<()>,
}

impl Shard {
    pub(crate) fn new(db: usize, observer: Arc<dyn Observer>, stats: Arc<StoreStats>) -> Self {
        Shard {
            db,
            captures: Vec::new(),
            keys: Dict::new(),
            expires: Dict::new(),
            expire_cursor: 0,
            observer,
            stats,
            watched: None,
            quiet: false,
            rng: {
                static SEED: std::sync::atomic::AtomicU64 =
                    std::sync::atomic::AtomicU64::new(0x9E37_79B9_7F4A_7C15);
                SEED.fetch_add(0x6A09_E667_F3BC_C909, std::sync::atomic::Ordering::Relaxed) | 1
            },
            table_mem: 0,
            table_buckets: (0, 0),
        }
    }

    /// The database index this shard belongs to.
    pub fn db(&self) -> usize {
        self.db
    }

    /// Arms `capture` to run on the shard's contents as they are now, at
    /// the next lock of this shard by anyone, before that lock's holder
    /// can change anything. A snapshot arms every shard while it holds
    /// them all (its point in time), then lets them go: shards nobody
    /// touches meanwhile are captured by the snapshot's own thread, and a
    /// client that needs one first captures it, paying for one shard
    /// instead of waiting on the whole dataset (Dragonfly's
    /// serialize-before-write; Redis gets the same from `fork`).
    pub fn arm_capture(&mut self, capture: Capture) {
        self.captures.push(capture);
    }

    /// Whether a snapshot still has to capture this shard.
    pub fn has_captures(&self) -> bool {
        !self.captures.is_empty()
    }

    /// Runs the armed captures; every path that locks a shard calls this
    /// before handing it out (`Db::with_shard`, `ShardRef::lock`).
    #[inline]
    pub(crate) fn settle_captures(&mut self) {
        if !self.captures.is_empty() {
            self.run_captures();
        }
    }

    #[cold]
    #[inline(never)]
    fn run_captures(&mut self) {
        for capture in std::mem::take(&mut self.captures) {
            capture(self);
        }
    }

    /// Number of keys, including expired ones not yet removed.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the shard holds no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Number of keys with a TTL.
    pub fn volatile_len(&self) -> usize {
        self.expires.len()
    }

    /// Bytes of this shard's two maps beyond keys and values, as Redis's
    /// `MEMORY STATS` reports a database's `overhead.hashtable.main` and
    /// `.expires`: (key nodes + buckets, TTL-index nodes + buckets).
    pub fn table_overhead(&self) -> (usize, usize) {
        (
            self.keys.len() * ENTRY_OVERHEAD + self.keys.table_bytes(),
            self.expires.len() * EXPIRE_OVERHEAD + self.expires.table_bytes(),
        )
    }

    fn add_mem(&self, n: usize) {
        self.stats
            .used_memory
            .fetch_add(n as i64, std::sync::atomic::Ordering::Relaxed);
    }

    fn sub_mem(&self, n: usize) {
        self.stats
            .used_memory
            .fetch_sub(n as i64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Charges a resize of either bucket array (they double and halve as
    /// keys come and go); called after every insertion and removal, it
    /// costs two compares unless a table was resized.
    #[inline]
    fn sync_table_mem(&mut self) {
        let buckets = (self.keys.buckets(), self.expires.buckets());
        if buckets != self.table_buckets {
            self.table_buckets = buckets;
            let now = self.keys.table_bytes() + self.expires.table_bytes();
            if now > self.table_mem {
                self.add_mem(now - self.table_mem);
            } else {
                self.sub_mem(self.table_mem - now);
            }
            self.table_mem = now;
        }
    }

    /// Removes `key` if its TTL has passed; true if it did.
    fn expire_if_needed(&mut self, h: u64, key: &[u8], now: i64) -> bool {
        let expired = match self.keys.get_hashed(h, key) {
            Some(e) => e.expire_at != NO_EXPIRE && e.expire_at <= now,
            None => false,
        };
        if expired
            && self
                .stats
                .replica
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            // A replica leaves expiry to its primary's `DEL` (Redis's
            // `expireIfNeeded` on a replica): the primary's stream still
            // sees the key, every other client sees it gone.
            return !crate::store::applying_primary();
        }
        if expired && self.stats.paused.load(std::sync::atomic::Ordering::Relaxed) {
            // Paused clients: gone to the reader, deleted after the pause.
            return true;
        }
        if expired {
            let gone = self.remove_hashed(h, key);
            self.stats
                .expired_keys
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.observer.expired(self.db, key);
            if let Some(e) = gone {
                self.observer
                    .dispose(e.value, crate::store::Disposal::Expired);
            }
        }
        expired
    }

    /// Reads a live key without touching its access time (`OBJECT`, `TYPE`-like peeks).
    pub fn peek(&mut self, key: &[u8], now: i64) -> Option<&Entry> {
        let h = hash_key(key);
        if self.expire_if_needed(h, key, now) {
            return None;
        }
        self.keys.get_hashed(h, key)
    }

    /// The entry stored under `key` even if its TTL has passed, without
    /// expiring it (`DEBUG OBJECT`, which Redis answers from the dict).
    pub fn peek_raw(&self, key: &[u8]) -> Option<&Entry> {
        self.keys.get_hashed(hash_key(key), key)
    }

    /// Reads a live key and records the access.
    pub fn get(&mut self, key: &[u8], now: i64) -> Option<&Entry> {
        let h = hash_key(key);
        if self.expire_if_needed(h, key, now) {
            return None;
        }
        let e = self.keys.get_mut_hashed(h, key)?;
        touch_access(e, &self.stats.access, now, &mut self.rng);
        Some(e)
    }

    /// Whether a live key exists (no access recorded).
    pub fn contains(&mut self, key: &[u8], now: i64) -> bool {
        self.peek(key, now).is_some()
    }

    /// Changes a live key's entry in place, keeping memory accounting right.
    /// Returns `None` when the key is absent. It counts as a change for
    /// `WATCH`, so call it only to change the entry.
    pub fn modify<R>(
        &mut self,
        key: &[u8],
        now: i64,
        f: impl FnOnce(&mut Entry) -> R,
    ) -> Option<R> {
        let h = hash_key(key);
        if self.expire_if_needed(h, key, now) {
            return None;
        }
        let e = self.keys.get_mut_hashed(h, key)?;
        let before = e.value.mem_usage();
        let r = f(e);
        touch_access(e, &self.stats.access, now, &mut self.rng);
        let after = e.value.mem_usage();
        if after > before {
            self.add_mem(after - before);
        } else {
            self.sub_mem(before - after);
        }
        if !self.quiet {
            self.touch(key);
        }
        Some(r)
    }

    /// Runs `f` with [`Shard::modify`] not signalling changes, for
    /// commands that may change nothing (`SADD` of a present member, `SREM`
    /// of a missing one): Redis signals (`WATCH`, tracking) only when
    /// something changed, so the caller calls [`Shard::signal_modified`]
    /// then. Removing or replacing a key still signals.
    pub fn quietly<R>(&mut self, f: impl FnOnce(&mut Shard) -> R) -> R {
        let was = std::mem::replace(&mut self.quiet, true);
        let r = f(self);
        self.quiet = was;
        r
    }

    /// Tells `WATCH`ers and tracking that `key` changed (Redis's
    /// `signalModifiedKey`), after a [`Shard::quietly`] change.
    pub fn signal_modified(&mut self, key: &[u8]) {
        self.touch(key);
    }

    /// Overwrites a live key's access metadata (`RESTORE ... IDLETIME/FREQ`,
    /// Redis's `objectSetLRUOrLFU`): `atime` as an LRU clock value
    /// ([`crate::evict::access_clock`]), `lfu` as the LFU field. Not a change
    /// for `WATCH`. Returns whether the key was there.
    pub fn set_access(&mut self, key: &[u8], atime: Option<u32>, lfu: Option<u32>) -> bool {
        let h = hash_key(key);
        let Some(e) = self.keys.get_mut_hashed(h, key) else {
            return false;
        };
        if let Some(a) = atime {
            e.atime = a;
        }
        if let Some(l) = lfu {
            e.lfu = l;
        }
        true
    }

    /// Stores a value, replacing any previous one; `expire_at` is absolute ms
    /// or [`NO_EXPIRE`]. A replaced value goes to [`Observer::dispose`]
    /// (strings, one allocation, are freed here). Returns whether a live
    /// value was replaced.
    ///
    /// [`Observer::dispose`]: crate::store::Observer::dispose
    pub fn set(&mut self, key: &[u8], value: Value, expire_at: i64, now: i64) -> bool {
        let h = hash_key(key);
        if value.is_blockable() {
            self.observer.key_ready(self.db, key);
        }
        let value_is_stream = matches!(value, Value::Stream(_));
        let mut entry = Entry {
            value,
            expire_at,
            atime: crate::evict::access_clock(now),
            lfu: crate::evict::lfu_initial(now),
        };
        let add = entry_mem(key, &entry);
        let old = match self.keys.get_mut_hashed(h, key) {
            Some(slot) => {
                // An overwrite keeps the key's access frequency, counting
                // this write as an access (Redis's `dbSetValue`).
                if self.stats.access.lfu() {
                    let rng = &mut self.rng;
                    entry.lfu = self.stats.access.counted(slot.lfu, now, || next_rand(rng));
                }
                Some(std::mem::replace(slot, entry))
            }
            None => {
                self.keys.insert_new_hashed(h, key.into(), entry);
                self.stats
                    .keys
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                None
            }
        };
        if let Some(o) = &old {
            if matches!(o.value, Value::Stream(_)) && !value_is_stream {
                // Clients blocked in XREADGROUP on an overwritten stream
                // are told it is gone (Redis's `dbSetValue`).
                self.observer.key_ready(self.db, key);
            }
            self.sub_mem(entry_mem(key, o));
            if o.expire_at != NO_EXPIRE && expire_at == NO_EXPIRE {
                self.expires.remove_entry_hashed(h, key);
                self.stats
                    .volatile_keys
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if expire_at != NO_EXPIRE && old.as_ref().is_none_or(|o| o.expire_at == NO_EXPIRE) {
            self.expires.insert_new_hashed(h, key.into(), ());
            self.stats
                .volatile_keys
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.add_mem(add);
        self.sync_table_mem();
        self.touch(key);
        // An old value that had already expired is not a previous value.
        let replaced = old
            .as_ref()
            .is_some_and(|o| o.expire_at == NO_EXPIRE || o.expire_at > now);
        if let Some(o) = old {
            self.dispose_server_del(o.value);
        }
        if !replaced
            && self
                .stats
                .notify_new
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            self.observer.key_created(self.db, key);
        }
        replaced
    }

    fn remove_hashed(&mut self, h: u64, key: &[u8]) -> Option<Entry> {
        let (k, e) = self.keys.remove_entry_hashed(h, key)?;
        self.stats
            .keys
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if e.expire_at != NO_EXPIRE {
            self.expires.remove_entry_hashed(h, key);
            self.stats
                .volatile_keys
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.sub_mem(entry_mem(&k, &e));
        self.sync_table_mem();
        self.touch(key);
        if matches!(e.value, Value::Stream(_)) {
            // Wakes clients blocked in XREADGROUP on it (`dbGenericDelete`).
            self.observer.key_ready(self.db, key);
        }
        Some(e)
    }

    /// Removes a live key; returns its entry.
    pub fn remove(&mut self, key: &[u8], now: i64) -> Option<Entry> {
        let h = hash_key(key);
        if self.expire_if_needed(h, key, now) {
            return None;
        }
        self.remove_hashed(h, key)
    }

    /// Deletes a live key as a side effect of a command (not `DEL`): its
    /// value goes to [`Observer::dispose`]. Returns whether it existed.
    ///
    /// [`Observer::dispose`]: crate::store::Observer::dispose
    pub fn delete(&mut self, key: &[u8], now: i64) -> bool {
        match self.remove(key, now) {
            Some(e) => {
                self.dispose_server_del(e.value);
                true
            }
            None => false,
        }
    }

    /// Hands a value a command replaced or deleted to the observer; a
    /// string (one allocation) is freed here.
    fn dispose_server_del(&self, value: Value) {
        if !matches!(value, Value::Str { .. }) {
            self.observer
                .dispose(value, crate::store::Disposal::ServerDel);
        }
    }

    /// Sets or clears (`NO_EXPIRE`) a live key's TTL; false if the key is absent.
    pub fn set_expire(&mut self, key: &[u8], expire_at: i64, now: i64) -> bool {
        let h = hash_key(key);
        if self.expire_if_needed(h, key, now) {
            return false;
        }
        let Some(e) = self.keys.get_mut_hashed(h, key) else {
            return false;
        };
        let old = e.expire_at;
        e.expire_at = expire_at;
        match (old == NO_EXPIRE, expire_at == NO_EXPIRE) {
            (true, false) => {
                self.expires.insert_new_hashed(h, key.into(), ());
                self.stats
                    .volatile_keys
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.add_mem(expire_mem(key));
            }
            (false, true) => {
                self.expires.remove_entry_hashed(h, key);
                self.stats
                    .volatile_keys
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                self.sub_mem(expire_mem(key));
            }
            _ => {}
        }
        self.sync_table_mem();
        self.touch(key);
        true
    }

    /// Removes every key, freeing them here; returns how many there were.
    pub fn clear(&mut self) -> usize {
        self.detach_all().0
    }

    /// Removes every key as [`Shard::clear`] does (watchers, counters,
    /// memory), but hands back the removed contents instead of freeing
    /// them, for `FLUSHALL ASYNC` to free on another thread.
    pub fn detach_all(&mut self) -> (usize, Detached) {
        if let Some(w) = self.watched.as_mut() {
            // `now` only matters with a replacement database.
            touch_all(w, &self.keys, None, 0);
        }
        let n = self.keys.len();
        let mut mem = 0;
        for (k, e) in self.keys.iter() {
            mem += entry_mem(k, e);
            if matches!(e.value, Value::Stream(_)) {
                self.observer.key_ready(self.db, k);
            }
        }
        self.stats
            .keys
            .fetch_sub(n as i64, std::sync::atomic::Ordering::Relaxed);
        self.stats.volatile_keys.fetch_sub(
            self.expires.len() as i64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let detached = Detached {
            _keys: std::mem::take(&mut self.keys),
            _expires: std::mem::take(&mut self.expires),
        };
        self.sub_mem(mem);
        self.sync_table_mem();
        (n, detached)
    }

    /// Swaps the contents of two shards at the same position of two
    /// databases (`SWAPDB`), keeping each shard's database index and its
    /// watchers (clients watch a key of a database, whatever it holds), who
    /// are told of the keys that change; `now` decides which are expired.
    pub fn swap_contents(&mut self, other: &mut Shard, now: i64) {
        if let Some(w) = self.watched.as_mut() {
            touch_all(w, &self.keys, Some(&other.keys), now);
        }
        if let Some(w) = other.watched.as_mut() {
            touch_all(w, &other.keys, Some(&self.keys), now);
        }
        std::mem::swap(&mut self.keys, &mut other.keys);
        std::mem::swap(&mut self.expires, &mut other.expires);
        // The total is unchanged; each shard's share follows its tables.
        self.sync_table_mem();
        other.sync_table_mem();
        self.expire_cursor = 0;
        other.expire_cursor = 0;
    }

    /// Marks the watchers of `key` after it changed (Redis's
    /// `touchWatchedKey`) and, while client-side caching is in use, tells
    /// the observer (Redis's `signalModifiedKey`).
    #[inline]
    fn touch(&mut self, key: &[u8]) {
        self.stats
            .dirty
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.watched.is_some() {
            self.touch_watchers(key);
        }
        if self
            .stats
            .track_keys
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            self.observer.key_modified(self.db, key);
        }
    }

    #[cold]
    fn touch_watchers(&mut self, key: &[u8]) {
        let present = self.keys.get(key).is_some();
        let Some(watchers) = self.watched.as_mut().and_then(|t| t.get_mut(key)) else {
            return;
        };
        for w in watchers.iter_mut() {
            if w.expired && !present {
                // The already-expired key was deleted: no logical change.
                w.expired = false;
                continue;
            }
            w.flag.mark();
        }
    }

    /// Starts telling `flag` of changes to `key` (`WATCH`). The caller
    /// watches a key once per client.
    pub fn watch(&mut self, key: &[u8], flag: &Arc<WatchFlag>, now: i64) {
        let expired = self
            .keys
            .get(key)
            .is_some_and(|e| logically_expired(e, now));
        self.watched
            .get_or_insert_with(Default::default)
            .entry(key.into())
            .or_default()
            .push(Watcher {
                flag: flag.clone(),
                expired,
            });
    }

    /// Stops telling `flag` of changes to `key`.
    pub fn unwatch(&mut self, key: &[u8], flag: &Arc<WatchFlag>) {
        let Some(table) = self.watched.as_mut() else {
            return;
        };
        if let Some(watchers) = table.get_mut(key) {
            watchers.retain(|w| !Arc::ptr_eq(&w.flag, flag));
            if watchers.is_empty() {
                table.remove(key);
            }
        }
        if table.is_empty() {
            self.watched = None;
        }
    }

    /// Whether `key`, live when `flag`'s client watched it, is now present
    /// but logically expired (Redis's `isWatchedKeyExpired` for one key):
    /// `EXEC` fails then even though no access deleted it yet.
    pub fn watched_key_expired(&self, key: &[u8], flag: &Arc<WatchFlag>, now: i64) -> bool {
        let Some(watchers) = self.watched.as_ref().and_then(|t| t.get(key)) else {
            return false;
        };
        let watched_live = watchers
            .iter()
            .any(|w| Arc::ptr_eq(&w.flag, flag) && !w.expired);
        watched_live
            && self
                .keys
                .get(key)
                .is_some_and(|e| logically_expired(e, now))
    }

    /// Number of watched keys in this shard.
    pub fn watched_len(&self) -> usize {
        self.watched.as_ref().map_or(0, |t| t.len())
    }

    /// One step of a `SCAN` over this shard's buckets; `f` sees each key and
    /// entry (expired ones included: the caller filters). Returns the next cursor.
    pub fn scan(&self, cursor: u64, f: impl FnMut(&[u8], &Entry)) -> u64 {
        self.keys.scan(cursor, f)
    }

    /// Every key and entry (expired ones included).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.keys.iter()
    }

    /// A random live key, expiring the dead ones it meets (at most a bounded number of tries).
    pub fn random_key(&mut self, now: i64, mut rand: impl FnMut() -> u64) -> Option<Vec<u8>> {
        for _ in 0..100 {
            let (k, e) = self.keys.random(&mut rand)?;
            if e.expire_at != NO_EXPIRE && e.expire_at <= now {
                let k = k.to_vec();
                self.expire_if_needed(hash_key(&k), &k, now);
                continue;
            }
            return Some(k.to_vec());
        }
        None
    }

    /// Offers up to `count` sampled keys to `pool` as eviction candidates
    /// under `policy` (Redis's `evictionPoolPopulate` for this shard):
    /// every key, or only keys with a TTL for the `volatile-*` policies.
    /// Returns how many were offered.
    pub fn sample_for_eviction(
        &self,
        policy: Policy,
        count: usize,
        now: i64,
        pool: &mut EvictionPool,
        rng: &mut u64,
    ) -> usize {
        let db = self.db;
        let access = &self.stats.access;
        let mut offered = 0;
        if policy.volatile_only() {
            let keys = &self.keys;
            self.expires.sample(
                count,
                || next_rand(rng),
                |k, _| {
                    if let Some(e) = keys.get(k) {
                        pool.offer(access.score(policy, e, now), db, k);
                        offered += 1;
                    }
                },
            );
        } else {
            self.keys.sample(
                count,
                || next_rand(rng),
                |k, e| {
                    pool.offer(access.score(policy, e, now), db, k);
                    offered += 1;
                },
            );
        }
        offered
    }

    /// A random key to evict (`allkeys-random`, or `volatile-random` with
    /// `volatile`), expired or not.
    pub fn random_for_eviction(&mut self, volatile: bool) -> Option<Box<[u8]>> {
        let rng = &mut self.rng;
        if volatile {
            self.expires
                .random(|| next_rand(rng))
                .map(|(k, _)| k.into())
        } else {
            self.keys.random(|| next_rand(rng)).map(|(k, _)| k.into())
        }
    }

    /// Evicts `key` if it is still here (and still has a TTL when
    /// `volatile`): removes it, tells the observer (which propagates `DEL`
    /// and notifies `evicted`) and returns the bytes it was charged.
    pub fn evict(&mut self, key: &[u8], volatile: bool) -> Option<usize> {
        let h = hash_key(key);
        if volatile && self.expires.get_hashed(h, key).is_none() {
            return None;
        }
        let mem = self.keys.get_hashed(h, key).map(|e| entry_mem(key, e))?;
        let tables_before = self.table_mem;
        let gone = self.remove_hashed(h, key)?;
        self.observer.evicted(self.db, key);
        self.observer
            .dispose(gone.value, crate::store::Disposal::Evicted);
        // A removal can shrink the bucket arrays too.
        Some(mem + tables_before.saturating_sub(self.table_mem))
    }

    /// One active-expiry step, like one iteration of Redis's
    /// `activeExpireCycle` on one database: walks the TTL index from a saved
    /// cursor, checking up to `sample` keys, and removes the expired ones.
    /// Returns `(checked, expired)`.
    pub fn active_expire_step(&mut self, now: i64, sample: usize) -> (usize, usize) {
        let mut checked = 0;
        let mut dead: Vec<Vec<u8>> = Vec::new();
        // A replica does not expire keys itself: its primary sends `DEL`.
        // Nor while clients are paused: the dataset stays as it is.
        let keep = self
            .stats
            .replica
            .load(std::sync::atomic::Ordering::Relaxed)
            || self.stats.paused.load(std::sync::atomic::Ordering::Relaxed);
        let mut cursor = self.expire_cursor;
        let mut buckets = 0;
        while checked < sample && buckets < sample * 20 {
            let keys = &self.keys;
            cursor = self.expires.scan(cursor, |k, _| {
                checked += 1;
                if let Some(e) = keys.get(k) {
                    if !keep && e.expire_at != NO_EXPIRE && e.expire_at <= now {
                        dead.push(k.to_vec());
                    }
                }
            });
            buckets += 1;
            if cursor == 0 {
                break;
            }
        }
        self.expire_cursor = cursor;
        let n = dead.len();
        for k in dead {
            self.expire_if_needed(hash_key(&k), &k, now);
        }
        (checked, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::EncodingLimits;
    use crate::store::NoObserver;
    use crate::{Hash, List, Set};
    use proptest::prelude::*;
    use std::sync::atomic::Ordering;

    /// What the shard holds, counted from scratch.
    fn recount(s: &Shard) -> i64 {
        let entries: usize = s.keys.iter().map(|(k, e)| entry_mem(k, e)).sum();
        (entries + s.keys.table_bytes() + s.expires.table_bytes()) as i64
    }

    fn value(kind: u8, n: usize) -> Value {
        let limits = EncodingLimits::default();
        match kind % 4 {
            0 => Value::string(vec![b'v'; n * 7]),
            1 => {
                let mut l = List::new();
                for i in 0..n {
                    l.push_back(&vec![b'e'; i]);
                }
                Value::List(l)
            }
            2 => {
                let mut h = Hash::new();
                for i in 0..n * 20 {
                    h.set(format!("f{i}").as_bytes(), &vec![b'x'; i % 50], &limits);
                }
                Value::Hash(h)
            }
            _ => {
                let mut s = Set::new();
                for i in 0..n * 30 {
                    s.add(format!("{i}").as_bytes(), limits.set_max_intset_entries);
                }
                Value::Set(s)
            }
        }
    }

    proptest! {
        // The running sum always equals a recount: every path that changes
        // a key, a TTL or a table charges exactly what it changed.
        #[test]
        fn used_memory_matches_a_recount(
            ops in proptest::collection::vec((0u8..7, 0u16..60, 0u8..8, 0usize..40), 0..250)
        ) {
            let stats = Arc::new(StoreStats::default());
            let mut s = Shard::new(0, Arc::new(NoObserver), stats.clone());
            let now = 1_000;
            for (op, k, kind, n) in ops {
                let key = format!("key:{k}").into_bytes();
                match op {
                    0 => {
                        let ttl = if kind % 2 == 0 { NO_EXPIRE } else { now + 10_000 };
                        s.set(&key, value(kind, n), ttl, now);
                    }
                    1 => {
                        s.remove(&key, now);
                    }
                    2 => {
                        let ttl = match kind % 3 {
                            0 => NO_EXPIRE,
                            1 => now + 5_000,
                            // Expired: the next access removes it.
                            _ => now - 1,
                        };
                        s.set_expire(&key, ttl, now);
                    }
                    3 => {
                        s.modify(&key, now, |e| match &mut e.value {
                            Value::Str { bytes, .. } => bytes.make_mut().extend(std::iter::repeat_n(b'a', n * 13)),
                            Value::List(l) => {
                                for _ in 0..n {
                                    l.pop_front();
                                }
                            }
                            Value::Hash(h) => {
                                for i in 0..n * 5 {
                                    h.remove(format!("f{i}").as_bytes());
                                }
                            }
                            Value::Set(st) => {
                                st.add(b"not-an-integer", 512);
                            }
                            _ => {}
                        });
                    }
                    4 => {
                        s.get(&key, now);
                    }
                    5 if n == 0 => {
                        s.clear();
                    }
                    _ => {
                        s.active_expire_step(now, 20);
                    }
                }
                prop_assert_eq!(stats.used_memory.load(Ordering::Relaxed), recount(&s));
            }
            s.clear();
            prop_assert_eq!(stats.used_memory.load(Ordering::Relaxed), 0);
        }
    }
}

/// Tracking hooks: `Observer::key_modified` while tracking is on.
#[cfg(test)]
mod tracking_tests {
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};

    use super::{Shard, NO_EXPIRE};
    use crate::store::{Observer, StoreStats};
    use crate::value::Value;

    /// Records every `key_modified` call.
    #[derive(Default)]
    struct Changes(Mutex<Vec<Vec<u8>>>);

    impl Observer for Changes {
        fn expired(&self, _db: usize, _key: &[u8]) {}

        fn key_modified(&self, _db: usize, key: &[u8]) {
            self.0.lock().unwrap().push(key.to_vec());
        }
    }

    fn shard(track: bool) -> (Shard, Arc<Changes>) {
        let obs = Arc::new(Changes::default());
        let stats = Arc::new(StoreStats::default());
        stats.track_keys.store(track, Ordering::Relaxed);
        (Shard::new(0, obs.clone(), stats), obs)
    }

    fn v() -> Value {
        Value::string(b"v".to_vec())
    }

    #[test]
    fn every_change_is_reported_while_keys_are_tracked() {
        let (mut s, obs) = shard(true);
        s.set(b"a", v(), NO_EXPIRE, 0);
        s.modify(b"a", 0, |_| ());
        s.set_expire(b"a", 100, 0);
        s.get(b"a", 10);
        s.peek(b"a", 10);
        // Lazy expiry deletes the key: a change.
        assert!(!s.contains(b"a", 200));
        s.set(b"b", v(), NO_EXPIRE, 0);
        s.remove(b"b", 0);
        s.set(b"c", v(), NO_EXPIRE, 0);
        s.evict(b"c", false);
        // Misses change nothing.
        s.remove(b"nope", 0);
        s.modify(b"nope", 0, |_| ());
        let got = obs.0.lock().unwrap().clone();
        let want: Vec<&[u8]> = vec![b"a", b"a", b"a", b"a", b"b", b"b", b"c", b"c"];
        assert_eq!(got, want);
    }

    #[test]
    fn nothing_is_reported_when_no_client_tracks() {
        let (mut s, obs) = shard(false);
        s.set(b"a", v(), NO_EXPIRE, 0);
        s.modify(b"a", 0, |_| ());
        s.remove(b"a", 0);
        assert!(obs.0.lock().unwrap().is_empty());
    }
}
