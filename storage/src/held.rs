//! Shards held for a transaction.
//!
//! `EXEC` must be atomic: before its first queued command runs it locks
//! every shard the transaction can touch (the shards of its keys and of the
//! keys its client `WATCH`es, or every shard of every database when that set
//! cannot be known from key positions), in the global lock order, and keeps
//! them until the last command is done ([`Store::with_locked`]).
//!
//! The queued commands run through their ordinary handlers, which lock
//! shards themselves with [`Db::with_shard`] and friends. `parking_lot`
//! mutexes are not re-entrant, so while a scope is active on a thread those
//! calls take the guard the scope already holds out of this thread's
//! [`HeldSet`] and give it back when they finish, instead of locking again.
//! The guards are owned `ArcMutexGuard`s that are moved out and back, so no
//! unsafe code is involved, and a handler that nested two accesses to one
//! shard (which would deadlock outside a transaction) panics here instead of
//! aliasing the shard.
//!
//! Outside a scope the only cost on the hot path is one thread-local flag
//! read ([`active`]).
//!
//! [`Store::with_locked`]: crate::Store::with_locked
//! [`Db::with_shard`]: crate::Db::with_shard

use std::cell::{Cell, RefCell};
use std::ops::{Deref, DerefMut};

use parking_lot::{ArcMutexGuard, MutexGuard, RawMutex};

use crate::db::Db;
use crate::shard::Shard;

pub(crate) type OwnedGuard = ArcMutexGuard<RawMutex, Shard>;

thread_local! {
    /// Whether a scope is active on this thread: the one check every
    /// shard access pays.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static HELD: RefCell<Option<HeldSet>> = const { RefCell::new(None) };
}

/// Which shards a transaction locks: for each database, one bit per shard.
#[derive(Debug, Clone, Default)]
pub struct LockSet {
    masks: Vec<u64>,
    all: bool,
}

impl LockSet {
    /// An empty set.
    pub fn new() -> Self {
        LockSet::default()
    }

    /// Adds the shard owning `key` in `db`.
    pub fn add_key(&mut self, db: &Db, key: &[u8]) {
        let d = db.index();
        if self.masks.len() <= d {
            self.masks.resize(d + 1, 0);
        }
        self.masks[d] |= 1 << db.shard_of(key);
    }

    /// Makes the set every shard of every database (commands whose keys are
    /// not known in advance, or that touch whole databases).
    pub fn add_all(&mut self) {
        self.all = true;
    }

    /// Whether the set is every shard of every database.
    pub fn is_all(&self) -> bool {
        self.all
    }

    /// Whether shard `i` of database `d` is in the set.
    pub fn contains(&self, d: usize, i: usize) -> bool {
        self.all || self.masks.get(d).is_some_and(|m| m >> i & 1 == 1)
    }

    /// Whether the set holds no shard.
    pub fn is_empty(&self) -> bool {
        !self.all && self.masks.iter().all(|m| *m == 0)
    }
}

/// The state of one shard in a scope.
pub(crate) enum Slot {
    /// Not locked by the scope: accesses lock it as usual.
    NotHeld,
    /// Locked by the scope and free to lend.
    Held(OwnedGuard),
    /// Lent to an access that has not finished.
    Lent,
}

/// The shards one thread holds: slot `db * shards + i`.
pub(crate) struct HeldSet {
    /// Address of each database of the store the scope belongs to, so a
    /// `Db` of another store (tests build several) is never mistaken.
    db_addrs: Vec<usize>,
    shards: usize,
    slots: Vec<Slot>,
}

impl HeldSet {
    pub(crate) fn new(db_addrs: Vec<usize>, shards: usize) -> Self {
        let slots = (0..db_addrs.len() * shards)
            .map(|_| Slot::NotHeld)
            .collect();
        HeldSet {
            db_addrs,
            shards,
            slots,
        }
    }

    pub(crate) fn hold(&mut self, d: usize, i: usize, g: OwnedGuard) {
        self.slots[d * self.shards + i] = Slot::Held(g);
    }

    fn slot_of(&self, db: &Db, i: usize) -> Option<usize> {
        let d = db.index();
        if self.db_addrs.get(d) != Some(&(db as *const Db as usize)) || i >= self.shards {
            return None;
        }
        Some(d * self.shards + i)
    }
}

/// Whether a scope is active on this thread.
#[inline(always)]
pub(crate) fn active() -> bool {
    ACTIVE.with(Cell::get)
}

/// Installs `set` as this thread's held shards until the returned value is
/// dropped; dropping it unlocks them.
pub(crate) fn install(set: HeldSet) -> Scope {
    HELD.with(|h| *h.borrow_mut() = Some(set));
    ACTIVE.with(|a| a.set(true));
    Scope(())
}

/// An active scope; its drop ends it (also when a handler panics).
pub(crate) struct Scope(());

impl Drop for Scope {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(false));
        let set = HELD.with(|h| h.borrow_mut().take());
        drop(set);
    }
}

/// Takes the guard of shard `i` of `db` if this thread's scope holds it.
///
/// # Panics
/// If that guard is already lent: a handler nested two accesses to one shard,
/// which outside a transaction would deadlock.
fn take(db: &Db, i: usize) -> Option<OwnedGuard> {
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        let set = h.as_mut()?;
        let idx = set.slot_of(db, i)?;
        match std::mem::replace(&mut set.slots[idx], Slot::Lent) {
            Slot::Held(g) => Some(g),
            Slot::NotHeld => {
                set.slots[idx] = Slot::NotHeld;
                None
            }
            Slot::Lent => panic!(
                "shard {i} of database {} accessed twice at once on one thread",
                db.index()
            ),
        }
    })
}

/// Returns a lent guard to the scope; if the scope is gone, the guard unlocks.
fn give_back(db: &Db, i: usize, g: OwnedGuard) {
    let back = HELD.try_with(|h| {
        let Ok(mut h) = h.try_borrow_mut() else {
            return Some(g);
        };
        let Some(set) = h.as_mut() else {
            return Some(g);
        };
        match set.slot_of(db, i) {
            Some(idx) if matches!(set.slots[idx], Slot::Lent) => {
                set.slots[idx] = Slot::Held(g);
                None
            }
            _ => Some(g),
        }
    });
    drop(back);
}

/// A guard lent by the scope; its drop gives it back.
pub struct LentGuard<'a> {
    db: &'a Db,
    shard: usize,
    guard: Option<OwnedGuard>,
}

impl Drop for LentGuard<'_> {
    fn drop(&mut self) {
        if let Some(g) = self.guard.take() {
            give_back(self.db, self.shard, g);
        }
    }
}

/// A locked shard: locked by this access, or lent by the thread's scope.
pub enum ShardRef<'a> {
    /// Locked for this access alone.
    Local(MutexGuard<'a, Shard>),
    /// Held by the transaction scope, lent for this access.
    Lent(LentGuard<'a>),
}

impl ShardRef<'_> {
    /// Shard `i` of `db`: lent by this thread's scope when it holds it,
    /// locked otherwise.
    /// Captures armed on the shard run first ([`Shard::arm_capture`]),
    /// lent guards included: a transaction may hold a shard since before
    /// a snapshot it runs (`BGSAVE` inside `EXEC`) armed it.
    pub(crate) fn lock(db: &Db, i: usize) -> ShardRef<'_> {
        let mut r = ShardRef::acquire(db, i);
        r.settle_captures();
        r
    }

    /// Shard `i` of `db` with its captures left armed, for reads through
    /// a shared reference (`Db::peek_at`) and arming (`Db::arm_at`) only.
    pub(crate) fn lock_unsettled(db: &Db, i: usize) -> ShardRef<'_> {
        ShardRef::acquire(db, i)
    }

    /// [`ShardRef::lock_unsettled`] without waiting: `None` while another
    /// thread holds the shard.
    pub(crate) fn try_lock_unsettled(db: &Db, i: usize) -> Option<ShardRef<'_>> {
        ShardRef::lent(db, i).or_else(|| db.mutex(i).try_lock().map(ShardRef::Local))
    }

    fn acquire(db: &Db, i: usize) -> ShardRef<'_> {
        ShardRef::lent(db, i).unwrap_or_else(|| ShardRef::Local(db.mutex(i).lock()))
    }

    /// The guard a transaction on this thread lent for shard `i`, if any.
    fn lent(db: &Db, i: usize) -> Option<ShardRef<'_>> {
        if !active() {
            return None;
        }
        take(db, i).map(|g| {
            ShardRef::Lent(LentGuard {
                db,
                shard: i,
                guard: Some(g),
            })
        })
    }
}

impl Deref for ShardRef<'_> {
    type Target = Shard;

    fn deref(&self) -> &Shard {
        match self {
            ShardRef::Local(g) => g,
            ShardRef::Lent(l) => l.guard.as_ref().expect("lent guard present until drop"),
        }
    }
}

impl DerefMut for ShardRef<'_> {
    fn deref_mut(&mut self) -> &mut Shard {
        match self {
            ShardRef::Local(g) => g,
            ShardRef::Lent(l) => l.guard.as_mut().expect("lent guard present until drop"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use crate::store::{NoObserver, Store};
    use crate::value::Value;

    use super::*;

    fn store() -> Store {
        Store::new(4, 8, Arc::new(NoObserver))
    }

    fn put(store: &Store, db: usize, key: &[u8]) {
        store
            .db(db)
            .with_shard(key, |s| s.set(key, Value::string(b"v".to_vec()), -1, 0));
    }

    /// Two keys of the same database in different shards.
    fn two_keys(store: &Store) -> (Vec<u8>, Vec<u8>) {
        let db = store.db(0);
        let a = b"a".to_vec();
        let b = (0..1000)
            .map(|i| format!("k{i}").into_bytes())
            .find(|k| db.shard_of(k) != db.shard_of(&a))
            .expect("some key in another shard");
        (a, b)
    }

    #[test]
    fn scope_reuses_held_shards() {
        let store = store();
        let (a, b) = two_keys(&store);
        let mut set = LockSet::new();
        set.add_key(store.db(0), &a);
        set.add_key(store.db(0), &b);
        let db = store.db(0);
        store.with_locked(&set, || {
            assert!(active());
            // Without reuse these would deadlock on the held mutexes.
            db.with_shard(&a, |s| s.set(&a, Value::string(b"1".to_vec()), -1, 0));
            db.with_shards([&a[..], &b[..]], |g| {
                g.shard(&b).set(&b, Value::string(b"2".to_vec()), -1, 0);
            });
            db.with_shard_at(db.shard_of(&a), |s| assert!(s.contains(&a, 0)));
            // A shard outside the set is locked as usual.
            assert_eq!(store.db(1).len(), 0);
            assert_eq!(db.len(), 2);
        });
        assert!(!active());
        // Released at the end of the scope.
        assert!(db.mutex(db.shard_of(&a)).try_lock().is_some());
        assert!(db.mutex(db.shard_of(&b)).try_lock().is_some());
    }

    #[test]
    fn scope_keeps_other_threads_out() {
        let store = Arc::new(store());
        let (a, _) = two_keys(&store);
        let mut set = LockSet::new();
        set.add_key(store.db(0), &a);
        let wrote = Arc::new(AtomicBool::new(false));
        store.with_locked(&set, || {
            let (st, k, w) = (store.clone(), a.clone(), wrote.clone());
            let t = std::thread::spawn(move || {
                put(&st, 0, &k);
                w.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(!wrote.load(Ordering::SeqCst), "the other thread got in");
            // Still usable from the scope's own thread.
            store.db(0).with_shard(&a, |s| assert!(!s.contains(&a, 0)));
            drop(t);
        });
        for _ in 0..200 {
            if wrote.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the other thread never got the shard");
    }

    #[test]
    fn lock_all_covers_every_database() {
        let store = store();
        let mut set = LockSet::new();
        set.add_all();
        assert!(set.is_all() && !set.is_empty());
        store.with_locked(&set, || {
            put(&store, 0, b"x");
            put(&store, 3, b"y");
            store.swap_dbs(0, 3, 0);
            assert_eq!(store.flush_all(), 2);
        });
        for d in 0..4 {
            for i in 0..store.db(d).shard_count() {
                assert!(store.db(d).mutex(i).try_lock().is_some());
            }
        }
    }

    #[test]
    fn nested_access_to_one_shard_panics_instead_of_aliasing() {
        let store = store();
        let mut set = LockSet::new();
        set.add_key(store.db(0), b"k");
        let db = store.db(0);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.with_locked(&set, || {
                db.with_shard(b"k", |_| db.with_shard(b"k", |_| ()));
            })
        }));
        assert!(r.is_err());
        assert!(!active(), "scope ended by the unwind");
        assert!(db.mutex(db.shard_of(b"k")).try_lock().is_some());
    }

    #[test]
    fn another_stores_db_is_not_mistaken_for_a_held_one() {
        let s1 = store();
        let s2 = store();
        let mut set = LockSet::new();
        set.add_key(s1.db(0), b"k");
        s1.with_locked(&set, || {
            put(&s2, 0, b"k");
            let i = s2.db(0).shard_of(b"k");
            // s2's shard was locked and released by the access, not lent.
            assert!(s2.db(0).mutex(i).try_lock().is_some());
        });
    }

    /// The keys of `db` that captures armed on every shard under one
    /// scope saw, by whichever access locked each shard next.
    fn arm_all(store: &Store) -> Arc<parking_lot::Mutex<Vec<Vec<u8>>>> {
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let mut all = LockSet::new();
        all.add_all();
        store.with_locked(&all, || {
            let db = store.db(0);
            for i in 0..db.shard_count() {
                let seen = seen.clone();
                db.arm_at(
                    i,
                    Box::new(move |s| {
                        seen.lock().extend(s.iter().map(|(k, _)| k.to_vec()));
                    }),
                );
            }
        });
        seen
    }

    #[test]
    fn captures_see_the_shards_as_they_were_when_armed() {
        let store = Arc::new(store());
        let (a, b) = two_keys(&store);
        put(&store, 0, &a);
        let seen = arm_all(&store);
        // Writes after arming, through each way of locking a shard: the
        // capture of the shard runs first, so it never sees them.
        put(&store, 0, &b);
        let db = store.db(0);
        db.with_shard(&a, |s| assert!(s.remove(&a, 0).is_some()));
        let st = store.clone();
        std::thread::spawn(move || put(&st, 0, b"from-another-thread"))
            .join()
            .unwrap();
        let mut set = LockSet::new();
        set.add_key(db, b"in-a-scope");
        store.with_locked(&set, || put(&store, 0, b"in-a-scope"));
        // The rest, as the snapshot's own thread collects them.
        for i in 0..db.shard_count() {
            db.with_shard_at(i, |_| ());
        }
        assert_eq!(*seen.lock(), std::slice::from_ref(&a));
        // Each capture ran once: later locks do not run it again.
        put(&store, 0, b"later");
        assert_eq!(seen.lock().len(), 1);
        assert_eq!(db.len(), 4);
    }

    #[test]
    fn two_snapshots_armed_one_after_the_other_each_see_their_moment() {
        let store = store();
        let (a, b) = two_keys(&store);
        put(&store, 0, &a);
        let first = arm_all(&store);
        put(&store, 0, &b);
        // Arming does not run the first snapshot's captures: they stack.
        let second = arm_all(&store);
        assert!(first.lock().is_empty(), "a's shard not captured by arming");
        let db = store.db(0);
        assert!(db.peek_at(db.shard_of(&a), |s| s.has_captures()));
        put(&store, 0, b"third");
        for i in 0..db.shard_count() {
            db.with_shard_at(i, |_| ());
        }
        assert_eq!(*first.lock(), std::slice::from_ref(&a));
        let mut got = second.lock().clone();
        got.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(got, want);
    }
}
