//! `WATCH`: which clients watch which keys of a shard, and the flag that
//! tells a client its transaction must fail.
//!
//! A shard keeps, per watched key, the list of watchers (each client's
//! [`WatchFlag`] and whether the key was already logically expired when it
//! was watched). Every change to a watched key goes through the shard
//! (`set`, `modify`, `remove`, `set_expire`, expiry, `clear`,
//! `swap_contents`), which marks the watchers dirty with the shard lock held,
//! as Redis's `touchWatchedKey` / `touchAllWatchedKeysInDb` do. A shard with
//! no watched key pays one `Option` check per change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use smallvec::SmallVec;

/// One client's `WATCH` state as the shards see it: set when a key it
/// watches changes (Redis's `CLIENT_DIRTY_CAS`).
#[derive(Debug, Default)]
pub struct WatchFlag {
    dirty: AtomicBool,
}

impl WatchFlag {
    /// A clean flag.
    pub fn new() -> Arc<WatchFlag> {
        Arc::new(WatchFlag::default())
    }

    /// Whether a watched key changed since it was watched. Set under the
    /// lock of the key's shard, so a reader holding that lock sees every
    /// earlier change.
    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// Marks the transaction as doomed.
    pub fn mark(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Forgets past changes (`UNWATCH`, end of `EXEC`/`DISCARD`); call it
    /// after the keys were unwatched so that no shard marks it again.
    pub fn clear(&self) {
        self.dirty.store(false, Ordering::Release);
    }
}

/// One client watching one key.
#[derive(Debug)]
pub(crate) struct Watcher {
    pub(crate) flag: Arc<WatchFlag>,
    /// The key was present but logically expired when watched: its
    /// deletion is no change (Redis's `watchedKey.expired`).
    pub(crate) expired: bool,
}

/// A shard's watched keys.
pub(crate) type WatchTable = HashMap<Box<[u8]>, SmallVec<[Watcher; 2]>>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::shard::{Shard, NO_EXPIRE};
    use crate::store::{NoObserver, StoreStats};
    use crate::value::Value;

    use super::WatchFlag;

    fn shard() -> Shard {
        Shard::new(0, Arc::new(NoObserver), Arc::new(StoreStats::default()))
    }

    fn v() -> Value {
        Value::string(b"v".to_vec())
    }

    #[test]
    fn unwatched_changes_cost_nothing_and_mark_nobody() {
        let mut s = shard();
        let f = WatchFlag::new();
        s.watch(b"a", &f, 0);
        s.set(b"b", v(), NO_EXPIRE, 0);
        s.remove(b"b", 0);
        assert!(!f.is_dirty());
        s.unwatch(b"a", &f);
        assert_eq!(s.watched_len(), 0);
        s.set(b"a", v(), NO_EXPIRE, 0);
        assert!(!f.is_dirty(), "unwatched");
    }

    #[test]
    fn every_kind_of_change_marks_watchers() {
        type Change = fn(&mut Shard);
        let changes: &[(&str, Change)] = &[
            ("set", |s| {
                s.set(b"k", v(), NO_EXPIRE, 0);
            }),
            ("modify", |s| {
                s.modify(b"k", 0, |_| ());
            }),
            ("remove", |s| {
                s.remove(b"k", 0);
            }),
            ("set_expire", |s| {
                s.set_expire(b"k", 10_000, 0);
            }),
            ("persist", |s| {
                s.set_expire(b"k", NO_EXPIRE, 0);
            }),
            ("clear", |s| {
                s.clear();
            }),
        ];
        for (name, change) in changes {
            let mut s = shard();
            s.set(b"k", v(), NO_EXPIRE, 0);
            let (f1, f2) = (WatchFlag::new(), WatchFlag::new());
            s.watch(b"k", &f1, 0);
            s.watch(b"k", &f2, 0);
            change(&mut s);
            assert!(f1.is_dirty() && f2.is_dirty(), "{name}");
        }
    }

    #[test]
    fn reads_and_misses_do_not_mark() {
        let mut s = shard();
        s.set(b"k", v(), NO_EXPIRE, 0);
        let f = WatchFlag::new();
        s.watch(b"k", &f, 0);
        s.watch(b"gone", &f, 0);
        s.get(b"k", 0);
        s.peek(b"k", 0);
        assert!(s.modify(b"gone", 0, |_| ()).is_none());
        assert!(s.remove(b"gone", 0).is_none());
        assert!(!s.set_expire(b"gone", 5, 0));
        assert!(!f.is_dirty());
    }

    #[test]
    fn expiry_of_a_live_watched_key_marks() {
        let mut s = shard();
        s.set(b"k", v(), 100, 0);
        let f = WatchFlag::new();
        s.watch(b"k", &f, 50);
        // Logically expired but not yet deleted: EXEC must fail anyway.
        assert!(s.watched_key_expired(b"k", &f, 150));
        assert!(!f.is_dirty());
        // Lazy deletion marks it.
        assert!(!s.contains(b"k", 150));
        assert!(f.is_dirty());
    }

    #[test]
    fn a_key_already_expired_when_watched_is_no_change_when_deleted() {
        let mut s = shard();
        s.set(b"k", v(), 100, 0);
        let f = WatchFlag::new();
        s.watch(b"k", &f, 200);
        assert!(!s.watched_key_expired(b"k", &f, 300));
        assert!(!s.contains(b"k", 300));
        assert!(!f.is_dirty(), "deleting a stale key changes nothing");
        // After that it is an ordinary missing key.
        s.set(b"k", v(), NO_EXPIRE, 300);
        assert!(f.is_dirty());

        let mut s = shard();
        s.set(b"k", v(), 100, 0);
        let f = WatchFlag::new();
        s.watch(b"k", &f, 200);
        s.clear();
        assert!(!f.is_dirty(), "flushing a stale key changes nothing");
    }

    #[test]
    fn clear_marks_only_existing_keys() {
        let mut s = shard();
        s.set(b"a", v(), NO_EXPIRE, 0);
        let (fa, fb) = (WatchFlag::new(), WatchFlag::new());
        s.watch(b"a", &fa, 0);
        s.watch(b"b", &fb, 0);
        s.clear();
        assert!(fa.is_dirty());
        assert!(!fb.is_dirty());
    }

    #[test]
    fn swap_marks_keys_that_exist_on_either_side() {
        let now = 1000;
        // (in watched db, in other db) -> dirty?
        let cases: &[(Option<i64>, Option<i64>, bool)] = &[
            (Some(NO_EXPIRE), None, true),
            (None, Some(NO_EXPIRE), true),
            (None, None, false),
            // stale key replaced by nothing
            (Some(10), None, false),
            // nothing replaced by a stale key
            (None, Some(10), false),
            // stale replaced by stale
            (Some(10), Some(20), false),
            // stale replaced by a live key
            (Some(10), Some(NO_EXPIRE), true),
        ];
        for &(mine, theirs, dirty) in cases {
            let (mut a, mut b) = (shard(), shard());
            if let Some(e) = mine {
                a.set(b"x", v(), e, 0);
            }
            if let Some(e) = theirs {
                b.set(b"x", v(), e, 0);
            }
            let f = WatchFlag::new();
            a.watch(b"x", &f, now);
            a.swap_contents(&mut b, now);
            assert_eq!(f.is_dirty(), dirty, "{mine:?} <- {theirs:?}");
            // A key that became stale by the swap does not fail EXEC either.
            assert!(!a.watched_key_expired(b"x", &f, now) || dirty);
        }
    }
}
