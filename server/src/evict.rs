//! Keeping `used_memory` under `maxmemory` (Redis's `performEvictions`).
//!
//! Before each command, while memory is over the limit, keys are evicted by
//! the configured policy ([`ferrite_storage::Store::evict_one`]). The loop is
//! bounded in time by `maxmemory-eviction-tenacity`; when it runs out, a
//! background task goes on evicting (Redis's `evictionTimeProc`) and the
//! command is still allowed. Only when nothing can be evicted is the result
//! a failure, which makes `denyoom` commands answer `-OOM`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrite_storage::{EvictionPool, Policy};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::command::ctx::unix_ms;
use crate::shared::Shared;

/// The reply to a `denyoom` command that cannot get memory.
pub const OOM_ERROR: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// What an eviction attempt achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Memory is under the limit (or no limit is set).
    Ok,
    /// Still over the limit, but the background task goes on evicting.
    Running,
    /// Over the limit and nothing can be evicted.
    Fail,
}

/// The pool and the shard cursor live together: one eviction at a time
/// walks them, as in Redis's single thread.
struct PoolState {
    pool: EvictionPool,
    cursor: usize,
    policy: Policy,
}

/// Eviction state shared by every connection.
pub struct Evictor {
    state: Mutex<PoolState>,
    wake: Notify,
    /// When memory was last seen going over the limit (µs since `epoch`), or 0.
    exceeded_since_us: AtomicI64,
    /// Total time spent over the limit, in µs (`total_eviction_exceeded_time`).
    exceeded_total_us: AtomicI64,
    epoch: Instant,
}

impl Default for Evictor {
    fn default() -> Self {
        Evictor {
            state: Mutex::new(PoolState {
                pool: EvictionPool::default(),
                cursor: 0,
                policy: Policy::NoEviction,
            }),
            wake: Notify::new(),
            exceeded_since_us: AtomicI64::new(0),
            exceeded_total_us: AtomicI64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Evictor {
    /// Asks the background task to evict until memory is under the limit
    /// (after `CONFIG SET maxmemory`, or when a command's time ran out).
    pub fn start_background(&self) {
        // A stored permit makes a task that is finishing run once more.
        self.wake.notify_one();
    }

    /// `total_eviction_exceeded_time` and `current_eviction_exceeded_time`, in ms.
    pub fn exceeded_ms(&self) -> (i64, i64) {
        let since = self.exceeded_since_us.load(Ordering::Relaxed);
        let current = if since == 0 {
            0
        } else {
            (self.now_us() - since).max(0)
        };
        let total = self.exceeded_total_us.load(Ordering::Relaxed) + current;
        (total / 1000, current / 1000)
    }

    /// Forgets the accumulated over-the-limit time (`CONFIG RESETSTAT`).
    pub fn reset_stats(&self) {
        self.exceeded_total_us.store(0, Ordering::Relaxed);
    }

    fn now_us(&self) -> i64 {
        // Never 0, which means "not over the limit".
        self.epoch.elapsed().as_micros() as i64 + 1
    }

    fn record(&self, outcome: Outcome) {
        let since = self.exceeded_since_us.load(Ordering::Relaxed);
        match outcome {
            Outcome::Running | Outcome::Fail => {
                if since == 0 {
                    let _ = self.exceeded_since_us.compare_exchange(
                        0,
                        self.now_us(),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
            }
            Outcome::Ok => {
                if since != 0
                    && self
                        .exceeded_since_us
                        .compare_exchange(since, 0, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    self.exceeded_total_us
                        .fetch_add(self.now_us() - since, Ordering::Relaxed);
                }
            }
        }
    }
}

/// How long one eviction loop may run (`evictionTimeLimitUs`): 50 µs per
/// tenacity step up to 10, then growing by 15% per step, unlimited at 100.
fn time_limit(tenacity: i64) -> Option<Duration> {
    if tenacity <= 10 {
        Some(Duration::from_micros(50 * tenacity.max(0) as u64))
    } else if tenacity < 100 {
        Some(Duration::from_micros(
            (500.0 * 1.15f64.powi((tenacity - 10) as i32)) as u64,
        ))
    } else {
        None
    }
}

/// The memory compared with `maxmemory`: `used_memory` less what Redis
/// does not count for eviction (replica buffers).
fn used_memory(srv: &Shared) -> i64 {
    crate::commands::memory::used_memory_now(srv) - crate::client_mem::not_counted_for_evict(srv)
}

/// Evicts keys until memory is under `maxmemory`, within the tenacity time
/// limit (Redis's `performEvictions`).
pub fn perform_evictions(srv: &Shared) -> Outcome {
    let max = srv.hot.maxmemory.load(Ordering::Relaxed);
    let outcome = evict_to(srv, max);
    srv.evictor.record(outcome);
    outcome
}

fn evict_to(srv: &Shared, max: i64) -> Outcome {
    // A replica's dataset is its primary's (Redis's
    // `replica-ignore-maxmemory yes`): it does not evict. Nor does a
    // server whose clients are paused: the dataset stays as it is (Redis's
    // `isSafeToPerformEvictions`).
    if max <= 0
        || srv.ignores_maxmemory()
        || srv.paused() != crate::pause::Kind::Off
        || used_memory(srv) <= max
    {
        return Outcome::Ok;
    }
    let access = &srv.store.stats().access;
    let policy = access.policy();
    if policy == Policy::NoEviction {
        return Outcome::Fail;
    }
    let samples = srv.hot.maxmemory_samples.load(Ordering::Relaxed).max(1) as usize;
    let limit = time_limit(srv.hot.eviction_tenacity.load(Ordering::Relaxed));
    let start = Instant::now();
    let now = unix_ms();
    let mut evicted = 0u64;
    let mut state = srv.evictor.state.lock();
    let PoolState {
        pool,
        cursor,
        policy: pool_policy,
    } = &mut *state;
    if *pool_policy != policy {
        // Scores of another policy mean nothing now.
        pool.clear();
        *pool_policy = policy;
    }
    // What to free is fixed once this caller holds the pool (another may
    // have just evicted), and only evicted keys count towards it, as
    // Redis's `mem_tofree`/`mem_freed`: memory that grows meanwhile
    // (invalidation messages to tracking clients, other writers) is left
    // to the next call, so eviction cannot feed on itself.
    let tofree = (used_memory(srv) - max).max(0) as usize;
    let mut freed = 0usize;
    while freed < tofree {
        match srv.store.evict_one(policy, samples, pool, cursor, now) {
            Some(f) => freed += f,
            None => return Outcome::Fail,
        }
        srv.stats.evicted_keys.fetch_add(1, Ordering::Relaxed);
        evicted += 1;
        if evicted.is_multiple_of(16) && limit.is_some_and(|l| start.elapsed() > l) {
            srv.evictor.start_background();
            return Outcome::Running;
        }
    }
    Outcome::Ok
}

/// The background eviction task: sleeps until woken, then evicts in short
/// slices until memory is under the limit or nothing is left to evict.
pub async fn background(srv: Arc<Shared>) {
    loop {
        srv.evictor.wake.notified().await;
        loop {
            let s = srv.clone();
            let outcome = tokio::task::spawn_blocking(move || perform_evictions(&s))
                .await
                .unwrap_or(Outcome::Fail);
            if outcome != Outcome::Running {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenacity_time_limits_follow_redis() {
        assert_eq!(time_limit(0), Some(Duration::ZERO));
        assert_eq!(time_limit(10), Some(Duration::from_micros(500)));
        assert_eq!(time_limit(11), Some(Duration::from_micros(575)));
        assert!(time_limit(99).unwrap() > Duration::from_secs(100));
        assert_eq!(time_limit(100), None);
    }
}
