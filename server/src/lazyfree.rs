//! Freeing large values in the background (Redis's `lazyfree.c`): `UNLINK`
//! (and `DEL` with `lazyfree-lazy-user-del`) take the key out of the
//! keyspace at once and hand a value that takes more than
//! [`THRESHOLD`] allocations to free ([`Value::free_effort`]) to a
//! `ferrite-lazyfree` thread, so dropping a set of millions of members
//! does not stall the command; `FLUSHDB`/`FLUSHALL ASYNC` (and plain
//! flushes under `lazyfree-lazy-user-flush`) hand over whole databases;
//! expired and evicted keys' values follow under `lazyfree-lazy-expire`
//! and `lazyfree-lazy-eviction`, and values commands overwrite or delete
//! as a side effect under `lazyfree-lazy-server-del` (all through the
//! store's observer).
//! `INFO memory` reports
//! `lazyfree_pending_objects` and `lazyfreed_objects` (the latter reset by
//! `CONFIG RESETSTAT`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;

use ferrite_storage::shard::Detached;
use ferrite_storage::Value;
use parking_lot::Mutex;

/// Redis's `LAZYFREE_THRESHOLD`: values cheaper to free than this are
/// freed in place.
pub const THRESHOLD: usize = 64;

/// `lazyfree-lazy-user-del`: `DEL` frees as `UNLINK` does.
pub static LAZY_USER_DEL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// `lazyfree-lazy-expire`: expired keys' values go to the thread too.
pub static LAZY_EXPIRE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// `lazyfree-lazy-server-del`: values a command overwrites or deletes as a
/// side effect (`SET` over a set, `RENAME` onto a key, `*STORE`) too.
pub static LAZY_SERVER_DEL: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);
/// `lazyfree-lazy-eviction`: evicted keys' values go to the thread too.
pub static LAZY_EVICTION: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

static PENDING: AtomicU64 = AtomicU64::new(0);
static FREED: AtomicU64 = AtomicU64::new(0);
static FREED_ZERO: AtomicU64 = AtomicU64::new(0);
/// What the thread frees, and how many objects it counts as.
enum Job {
    Value(Value),
    Databases(Vec<Detached>, u64),
}

static QUEUE: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();

fn queue() -> &'static Mutex<Sender<Job>> {
    QUEUE.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("ferrite-lazyfree".into())
            .spawn(move || {
                for job in rx {
                    let n = match job {
                        Job::Value(v) => {
                            drop(v);
                            1
                        }
                        Job::Databases(d, n) => {
                            drop(d);
                            n
                        }
                    };
                    PENDING.fetch_sub(n, Ordering::Relaxed);
                    FREED.fetch_add(n, Ordering::Relaxed);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no lazyfree thread: large values are freed in place");
        }
        Mutex::new(tx)
    })
}

/// Frees `value`: in the background if it is large, else here.
pub fn free(value: Value) {
    if value.free_effort() <= THRESHOLD {
        return;
    }
    send(Job::Value(value), 1);
}

/// Empties every database at once and frees their contents in the
/// background (`FLUSHALL ASYNC`, `replica-lazy-flush`).
pub fn flush_all_async(store: &ferrite_storage::Store) {
    let (mut n, mut parts) = (0, Vec::new());
    for d in 0..store.db_count() {
        let (k, p) = store.db(d).detach_all();
        n += k;
        parts.extend(p);
    }
    free_databases(parts, n as u64);
}

/// Frees the contents of flushed databases (`FLUSHALL ASYNC`), counted
/// as their `keys` objects, as Redis's `emptyDbAsync`.
pub fn free_databases(parts: Vec<Detached>, keys: u64) {
    if keys == 0 {
        return;
    }
    send(Job::Databases(parts, keys), keys);
}

fn send(job: Job, n: u64) {
    PENDING.fetch_add(n, Ordering::Relaxed);
    if let Err(back) = queue().lock().send(job) {
        // The thread could not start: free in place after all.
        PENDING.fetch_sub(n, Ordering::Relaxed);
        drop(back);
    }
}

/// `lazyfree_pending_objects`.
pub fn pending() -> u64 {
    PENDING.load(Ordering::Relaxed)
}

/// `lazyfreed_objects` since the last `CONFIG RESETSTAT`.
pub fn freed() -> u64 {
    FREED
        .load(Ordering::Relaxed)
        .saturating_sub(FREED_ZERO.load(Ordering::Relaxed))
}

/// `CONFIG RESETSTAT`.
pub fn reset() {
    FREED_ZERO.store(FREED.load(Ordering::Relaxed), Ordering::Relaxed);
}
