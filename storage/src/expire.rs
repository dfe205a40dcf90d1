//! Active expiry: Redis 7.0's `activeExpireCycle` (`expire.c`) over shards.
//!
//! Lazy expiry (every lookup) guarantees no client ever sees an expired key;
//! this cycle reclaims the memory of expired keys nobody reads. Each cycle
//! visits every (database, shard) pair once, starting where the previous
//! cycle stopped; on each shard it checks `keys_per_loop` keys of the TTL
//! index from the shard's saved cursor, removes the expired ones, and checks
//! again while more than the acceptable share of that sample had expired.
//! The cursor walks the index in order, so the keys just ahead of it are the
//! ones checked longest ago: when a sample there is mostly live, the whole
//! shard is.
//!
//! Two kinds of cycle, as in Redis: the *slow* one once per `hz` period, and
//! *fast* ones (at most `fast_duration` long, never closer than twice that)
//! between them when the last cycle ran out of time or the estimated stale
//! share (see [`ActiveExpire`]) reaches half the acceptable share. All cycles
//! draw on one time budget that refills at `slow_time_perc` percent of wall
//! time (25% by default) and holds at most one slow cycle's limit, so over
//! any interval expiry takes at most that share of one core plus one period's
//! limit, however many keys expire. Time is wall time, as Redis measures it
//! for `expire_cycle_cpu_milliseconds`.
//!
//! Cycles run on the threads that serve clients, between batches of
//! requests, and on a background thread while those are idle
//! ([`ExpireDriver`]).
//!
//! This module knows no clock of its own and no configuration: the caller
//! passes `Instant`s, a unix-ms clock and the derived [`ExpireEffort`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::store::Store;

/// Tuning derived from `active-expire-effort` (1..=10), with Redis's
/// formulas, so a user's effort setting means what it means in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpireEffort {
    /// Keys checked per shard step (`20 + 20/4 * (effort-1)`).
    pub keys_per_loop: usize,
    /// A shard is stepped again while more than this percentage of its
    /// sample had expired (`10 - (effort-1)`).
    pub acceptable_stale_perc: u64,
    /// Percentage of each `hz` period the slow cycle may use, and the share
    /// of wall time all cycles together may use (`25 + 2*(effort-1)`).
    pub slow_time_perc: u64,
    /// Longest fast cycle (`1000 + 1000/4 * (effort-1)` µs).
    pub fast_duration: Duration,
}

impl ExpireEffort {
    /// The tuning for `effort`, clamped to Redis's range 1..=10.
    pub fn new(effort: i64) -> Self {
        let e = effort.clamp(1, 10) as u64 - 1;
        ExpireEffort {
            keys_per_loop: 20 + 20 / 4 * e as usize,
            acceptable_stale_perc: 10 - e,
            slow_time_perc: 25 + 2 * e,
            fast_duration: Duration::from_micros(1000 + 1000 / 4 * e),
        }
    }
}

impl Default for ExpireEffort {
    fn default() -> Self {
        ExpireEffort::new(1)
    }
}

/// Which cycle ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CycleKind {
    /// The periodic cycle (Redis's `ACTIVE_EXPIRE_CYCLE_SLOW`, from `serverCron`).
    Slow,
    /// A short cycle between slow ones (`ACTIVE_EXPIRE_CYCLE_FAST`).
    Fast,
}

/// What one cycle did (for the latency monitor and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CycleOutcome {
    /// Slow or fast.
    pub kind: CycleKind,
    /// Keys of TTL indexes checked.
    pub sampled: usize,
    /// Keys removed.
    pub expired: usize,
    /// Whether the cycle stopped on its time limit.
    pub time_cap_reached: bool,
    /// Wall time the cycle took.
    pub elapsed: Duration,
}

/// What [`ActiveExpire::tick`] did and when it wants to run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// The cycle run, if one was due.
    pub cycle: Option<CycleOutcome>,
    /// When the next cycle (slow, or fast if one is wanted sooner) is due.
    pub next: Instant,
}

/// Which thread runs a tick: it decides how long a slow cycle may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// The expiry thread, which serves no client: a slow cycle may take
    /// its whole limit (`slow_time_perc` of the period), as in Redis.
    Background,
    /// A worker between batches of client requests: every cycle, slow ones
    /// included, is cut to the fast duration so its clients wait at most
    /// that long; a slow cycle cut short is continued by fast cycles, as
    /// after any cycle that hit its time limit.
    Worker,
}

/// The share of wall time expiry may use, as a token bucket: it refills at
/// `perc` percent of elapsed time up to one slow cycle's limit, and every
/// cycle spends what it took. Over any interval `T` the cycles use at most
/// `perc% * T` plus one full bucket (plus the overshoot of one shard step).
#[derive(Debug, Clone)]
struct Budget {
    /// Microseconds available; negative after an overshoot.
    tokens_us: i64,
    refilled_at: Instant,
}

impl Budget {
    fn new(now: Instant, capacity_us: i64) -> Self {
        Budget {
            tokens_us: capacity_us,
            refilled_at: now,
        }
    }

    fn refill(&mut self, now: Instant, perc: u64, capacity_us: i64) {
        let dt = now.saturating_duration_since(self.refilled_at).as_micros() as i64;
        self.refilled_at = now;
        self.tokens_us = self
            .tokens_us
            .saturating_add(dt * perc as i64 / 100)
            .min(capacity_us);
    }

    fn spend(&mut self, d: Duration) {
        self.tokens_us -= d.as_micros() as i64;
    }

    /// When the bucket holds `need_us` again at `perc` percent refill.
    fn ready_in(&self, need_us: i64, perc: u64) -> Duration {
        let missing = need_us - self.tokens_us;
        if missing <= 0 {
            Duration::ZERO
        } else {
            Duration::from_micros((missing * 100 / perc.max(1) as i64) as u64)
        }
    }
}

/// Time constants of the two turnover averages: one default `hz` period,
/// to follow a load that grows, and ten, to remember it through a lull.
const TURNOVER_WINDOWS: [Duration; 2] = [Duration::from_millis(100), Duration::from_secs(1)];
/// Smallest budget worth starting a cycle with.
const MIN_CYCLE_US: i64 = 100;

/// The active expiry scheduler: decides when a slow or fast cycle is due,
/// runs it on a [`Store`], and keeps the state Redis keeps in
/// `activeExpireCycle`'s statics (next database, whether the last cycle hit
/// its time limit, when the last fast cycle started).
///
/// Redis starts a fast cycle when the last cycle hit its time limit or the
/// running average of stale keys reaches the acceptable share; Redis 7.0
/// compares a fraction with a percentage there, so in practice only the
/// time limit starts one, and the running average (5% weight per cycle)
/// lags by tens of cycles anyway. At `hz` 10, keys with 100 ms TTLs then
/// sit expired for up to a whole period: measured against Redis 7.0.15,
/// half of `DBSIZE` at times.
///
/// Here the estimate that starts a fast cycle is a prediction: the stale
/// share the last cycle left in its final samples (the part of each TTL
/// index checked longest ago, so the most stale), plus the share of the
/// volatile keys expiring per second (measured from `expired_keys`) times
/// the time since. A fast cycle starts when that reaches *half* the
/// acceptable share: the stale share climbs until a cycle runs and falls
/// after it, so aiming at half keeps its peaks, not its average, under the
/// acceptable share. Keys with short TTLs written steadily thus get cycles
/// every few milliseconds, each cheap; a keyspace whose TTLs are far away
/// gets only the slow cycle, as in Redis.
#[derive(Debug, Clone)]
pub struct ActiveExpire {
    /// Next (database, shard) position to visit, database-major.
    next_unit: usize,
    /// Whether the last cycle stopped on its time limit.
    timelimit_exit: bool,
    last_fast_start: Option<Instant>,
    /// No new fast cycle before this: the time limit of a cycle still
    /// running on another thread.
    busy_until: Instant,
    next_slow: Instant,
    budget: Budget,
    /// Stale share (fraction) of the last samples the last complete cycle
    /// took on each shard: what it left just ahead of its cursors.
    left_share: f64,
    /// Estimated fraction of the volatile keys that expire per second,
    /// averaged over each of [`TURNOVER_WINDOWS`]; the larger one counts, so
    /// a short gap in a steady load (no expiries for a moment, then as many
    /// as before) does not space the cycles out.
    turnover: [f64; 2],
    last_cycle_end: Instant,
    /// `expired_keys` at the end of the last cycle.
    expired_seen: u64,
}

/// A cycle the scheduler has decided to run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    kind: CycleKind,
    limit: Duration,
    first_unit: usize,
}

/// What running a [`Plan`] found, for [`ActiveExpire::finish`].
#[derive(Debug, Clone, Copy)]
struct Run {
    sampled: usize,
    expired: usize,
    /// Keys in the TTL indexes of the shards visited, when visited.
    volatile: usize,
    /// Sums over the last sample taken on each shard.
    last_sampled: usize,
    last_expired: usize,
    capped: bool,
    /// The unit after the last one visited.
    next_unit: usize,
    elapsed: Duration,
    end: Instant,
}

impl ActiveExpire {
    /// A scheduler whose first slow cycle is due at its first tick, with a
    /// full budget.
    pub fn new(now: Instant) -> Self {
        ActiveExpire {
            next_unit: 0,
            timelimit_exit: false,
            last_fast_start: None,
            busy_until: now,
            next_slow: now,
            // Clamped to one slow cycle's limit at the first refill.
            budget: Budget::new(now, i64::MAX),
            left_share: 0.0,
            turnover: [0.0; 2],
            last_cycle_end: now,
            expired_seen: 0,
        }
    }

    /// Runs the cycle due at `now`, if any, and says when the next is due.
    /// `clock` gives unix milliseconds for the expiry checks; `hz` is
    /// clamped to Redis's 1..=500.
    #[allow(clippy::too_many_arguments)]
    pub fn tick(
        &mut self,
        store: &Store,
        now: Instant,
        clock: &dyn Fn() -> i64,
        effort: &ExpireEffort,
        hz: u32,
        runner: Runner,
    ) -> Tick {
        let cycle = self.plan(store, now, effort, hz, runner).map(|plan| {
            let run = run_cycle(store, &plan, clock, effort);
            self.finish(store, &plan, &run)
        });
        Tick {
            cycle,
            next: self.next_due(Instant::now().max(now), effort),
        }
    }

    /// Decides which cycle, if any, is due at `now` and with what limit,
    /// and books it (the slow cadence, the fast spacing).
    fn plan(
        &mut self,
        store: &Store,
        now: Instant,
        effort: &ExpireEffort,
        hz: u32,
        runner: Runner,
    ) -> Option<Plan> {
        let period = Duration::from_micros(1_000_000 / u64::from(hz.clamp(1, 500)));
        let slow_limit = period * effort.slow_time_perc as u32 / 100;
        let capacity = slow_limit.as_micros() as i64;
        self.budget.refill(now, effort.slow_time_perc, capacity);
        if !store.active_expire_enabled() {
            self.next_slow = now + period;
            return None;
        }
        let kind = if now >= self.next_slow {
            // The slow cycle keeps its cadence; one skipped for want of
            // budget waits for the next period like a run one.
            self.next_slow += period;
            if self.next_slow <= now {
                self.next_slow = now + period;
            }
            CycleKind::Slow
        } else if self.fast_due(effort).is_some_and(|t| t <= now) {
            CycleKind::Fast
        } else {
            return None;
        };
        if self.budget.tokens_us < MIN_CYCLE_US.min(capacity) {
            return None;
        }
        let limit = match (kind, runner) {
            (CycleKind::Slow, Runner::Background) => slow_limit,
            _ => effort.fast_duration,
        }
        .min(Duration::from_micros(self.budget.tokens_us.max(0) as u64));
        if kind == CycleKind::Fast {
            self.last_fast_start = Some(now);
        }
        self.busy_until = now + limit;
        Some(Plan {
            kind,
            limit,
            first_unit: self.next_unit,
        })
    }

    /// Books a finished cycle: counters, budget, where the next starts and
    /// the estimates that schedule it.
    fn finish(&mut self, store: &Store, plan: &Plan, run: &Run) -> CycleOutcome {
        self.budget.spend(run.elapsed);
        // Done before its limit: the next may start (after the spacing).
        self.busy_until = self.busy_until.min(run.end);
        self.timelimit_exit = run.capped;
        if run.capped {
            self.next_unit = run.next_unit;
        } else {
            self.left_share = if run.last_sampled == 0 {
                0.0
            } else {
                run.last_expired as f64 / run.last_sampled as f64
            };
        }
        self.record(store, run);
        CycleOutcome {
            kind: plan.kind,
            sampled: run.sampled,
            expired: run.expired,
            time_cap_reached: run.capped,
            elapsed: run.elapsed,
        }
    }

    /// When the next cycle is due, slow or fast, as seen at `now`.
    fn next_due(&self, now: Instant, effort: &ExpireEffort) -> Instant {
        let fast_at = self
            .fast_due(effort)
            .map(|t| t.max(now + self.budget.ready_in(MIN_CYCLE_US, effort.slow_time_perc)));
        fast_at.map_or(self.next_slow, |t| t.min(self.next_slow))
    }

    /// When the next fast cycle may start, or `None` while none is wanted.
    fn fast_due(&self, effort: &ExpireEffort) -> Option<Instant> {
        let spacing = |t: Instant| {
            let t = t.max(self.busy_until);
            match self.last_fast_start {
                Some(last) => t.max(last + effort.fast_duration * 2),
                None => t,
            }
        };
        if self.timelimit_exit {
            return Some(spacing(self.last_cycle_end));
        }
        let target = effort.acceptable_stale_perc as f64 / 100.0 / 2.0;
        if self.left_share >= target {
            return Some(spacing(self.last_cycle_end));
        }
        let turnover = self.turnover[0].max(self.turnover[1]);
        if turnover <= 0.0 {
            return None;
        }
        let secs = (target - self.left_share) / turnover;
        // Beyond a second the slow cycles come first anyway.
        let wait = Duration::from_secs_f64(secs.min(1.0));
        Some(spacing(self.last_cycle_end + wait))
    }

    /// Updates the `INFO` counters as Redis does and the turnover estimate.
    fn record(&mut self, store: &Store, run: &Run) {
        let stats = store.stats();
        if run.capped {
            stats
                .expired_time_cap_reached_count
                .fetch_add(1, Ordering::Relaxed);
        }
        stats
            .expire_cycle_time_used_us
            .fetch_add(run.elapsed.as_micros() as u64, Ordering::Relaxed);
        let current = if run.sampled == 0 {
            0.0
        } else {
            run.expired as f64 / run.sampled as f64
        };
        stats.set_expired_stale_perc(current * 0.05 + stats.expired_stale_perc() * 0.95);

        // Keys leave the TTL indexes (expired, by this cycle or by lookups)
        // as fast as they become stale, once the cycles keep up: their rate
        // relative to the volatile keys is the turnover.
        let total = stats.expired_keys.load(Ordering::Relaxed);
        let removed = total.saturating_sub(self.expired_seen);
        self.expired_seen = total;
        let end = run.end.max(self.last_cycle_end);
        let dt = end - self.last_cycle_end;
        self.last_cycle_end = end;
        if run.capped || dt.is_zero() {
            return;
        }
        let rate = if run.volatile == 0 {
            0.0
        } else {
            removed as f64 / run.volatile as f64 / dt.as_secs_f64()
        };
        for (avg, window) in self.turnover.iter_mut().zip(TURNOVER_WINDOWS) {
            let w = (dt.as_secs_f64() / window.as_secs_f64()).min(1.0);
            *avg = *avg * (1.0 - w) + rate * w;
        }
    }
}

/// One cycle: every (database, shard) once from `plan.first_unit`, each
/// stepped while its sample's expired share exceeds the acceptable one,
/// until `plan.limit` passes. Touches no scheduler state, so the scheduler
/// is not held while it runs.
fn run_cycle(store: &Store, plan: &Plan, clock: &dyn Fn() -> i64, effort: &ExpireEffort) -> Run {
    let start = Instant::now();
    let shards = store.db(0).shard_count();
    let units = store.db_count() * shards;
    let mut run = Run {
        sampled: 0,
        expired: 0,
        volatile: 0,
        last_sampled: 0,
        last_expired: 0,
        capped: false,
        next_unit: plan.first_unit,
        elapsed: Duration::ZERO,
        end: start,
    };
    let mut visited = 0;
    // Time spent holding shards, not waiting for them: a cycle that waited
    // behind a long script or transaction must not be charged that wait
    // (Redis's cycle never waits; charged, it would exhaust the budget and
    // stall expiry for many periods afterwards).
    let mut busy = Duration::ZERO;
    while visited < units && !run.capped {
        let unit = run.next_unit % units;
        // Advance first, so a cycle that runs out of time here resumes on
        // the next shard (Redis does the same with databases).
        run.next_unit = (unit + 1) % units;
        visited += 1;
        let db = store.db(unit / shards);
        // A shard a snapshot has yet to capture waits for a later cycle:
        // expiring keys there would first serialize the whole shard on
        // this thread (Redis's cycle leaves the copy to the fork's pages).
        // A shard another thread holds waits for a later cycle too: most
        // often a snapshot capturing it, which takes milliseconds per
        // shard and visits shards one after another, so a cycle that
        // waited would follow it shard by shard, stalling the worker that
        // runs the fast cycle for the whole capture (measured: 200-250 ms
        // per 1M keys).
        match db.try_peek_at(unit % shards, |s| s.volatile_len() == 0 || s.has_captures()) {
            Some(false) => {}
            Some(true) | None => continue,
        }
        let mut first = true;
        loop {
            let step = db.with_shard_at(unit % shards, |s| {
                let held = Instant::now();
                let n = s.volatile_len();
                let r = (n > 0).then(|| (n, s.active_expire_step(clock(), effort.keys_per_loop)));
                busy += held.elapsed();
                r
            });
            let Some((n, (checked, dead))) = step else {
                break;
            };
            if first {
                run.volatile += n;
                first = false;
            }
            run.sampled += checked;
            run.expired += dead;
            if busy >= plan.limit {
                run.capped = true;
                break;
            }
            if checked > 0 && (dead * 100 / checked) as u64 <= effort.acceptable_stale_perc {
                run.last_sampled += checked;
                run.last_expired += dead;
                break;
            }
        }
    }
    run.end = Instant::now();
    run.elapsed = busy;
    run
}

/// How long a due cycle waits for a worker before the expiry thread runs
/// it: about one fast cycle's spacing.
pub const IDLE_GRACE: Duration = Duration::from_millis(2);

/// [`ActiveExpire`] shared by the expiry thread and the worker threads.
///
/// Redis runs its cycles on the thread that serves the clients (the fast
/// one from `beforeSleep`), so the clients that write keys also pay for
/// expiring them, and a busy machine cannot starve the cycles without
/// starving the writes as well. Here each worker, after writing a batch of
/// replies, runs the cycle that is due, if any ([`ExpireDriver::run_if_due`]:
/// one relaxed load when none is due), cut to the fast duration. A
/// background thread runs what stays due for [`IDLE_GRACE`] because no
/// client is being served, slow cycles with their full limit.
///
/// The scheduler's lock is held only to decide on a cycle and to book it,
/// never while it runs: a thread the OS stops in the middle of a cycle
/// must not keep the others from running the next one.
pub struct ExpireDriver {
    /// Origin of `due_us`.
    base: Instant,
    /// When the next cycle is due, in microseconds since `base`.
    due_us: AtomicU64,
    state: Mutex<ActiveExpire>,
}

impl Default for ExpireDriver {
    fn default() -> Self {
        ExpireDriver::new(Instant::now())
    }
}

impl ExpireDriver {
    /// A driver whose first slow cycle is due at once.
    pub fn new(now: Instant) -> Self {
        ExpireDriver {
            base: now,
            due_us: AtomicU64::new(0),
            state: Mutex::new(ActiveExpire::new(now)),
        }
    }

    fn since_base(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_micros() as u64
    }

    /// The expiry thread's tick: runs the cycle that has been due for
    /// [`IDLE_GRACE`] (no worker took it) and returns it with how long to
    /// sleep before calling again.
    pub fn background_tick(
        &self,
        store: &Store,
        now: Instant,
        clock: &dyn Fn() -> i64,
        effort: &ExpireEffort,
        hz: u32,
    ) -> (Option<CycleOutcome>, Duration) {
        let grace = IDLE_GRACE.as_micros() as u64;
        let due = self.due_us.load(Ordering::Relaxed).saturating_add(grace);
        let at = self.since_base(now);
        if at < due {
            return (None, Duration::from_micros(due - at));
        }
        let cycle = self.run(store, now, clock, effort, hz, Runner::Background, true);
        let due = self.due_us.load(Ordering::Relaxed).saturating_add(grace);
        let at = self.since_base(Instant::now());
        (cycle, Duration::from_micros(due.saturating_sub(at)))
    }

    /// A worker's tick, after it wrote a batch of replies: runs the cycle
    /// that is due, cut to the fast duration, unless another thread is
    /// deciding on one. `tuning` gives (effort, hz), read only when a cycle
    /// is due.
    #[inline]
    pub fn run_if_due(
        &self,
        store: &Store,
        now: Instant,
        clock: &dyn Fn() -> i64,
        tuning: impl FnOnce() -> (ExpireEffort, u32),
    ) -> Option<CycleOutcome> {
        if self.since_base(now) < self.due_us.load(Ordering::Relaxed) {
            return None;
        }
        let (effort, hz) = tuning();
        self.run(store, now, clock, &effort, hz, Runner::Worker, false)
    }

    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        store: &Store,
        now: Instant,
        clock: &dyn Fn() -> i64,
        effort: &ExpireEffort,
        hz: u32,
        runner: Runner,
        wait: bool,
    ) -> Option<CycleOutcome> {
        let plan = {
            let mut st = if wait {
                self.state.lock()
            } else {
                self.state.try_lock()?
            };
            let plan = st.plan(store, now, effort, hz, runner);
            self.publish(st.next_due(now, effort));
            plan?
        };
        let run = run_cycle(store, &plan, clock, effort);
        let mut st = self.state.lock();
        let out = st.finish(store, &plan, &run);
        self.publish(st.next_due(run.end, effort));
        Some(out)
    }

    fn publish(&self, due: Instant) {
        self.due_us.store(self.since_base(due), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NoObserver;
    use crate::value::Value;
    use std::sync::Arc;

    fn store(dbs: usize, shards: usize) -> Store {
        Store::new(dbs, shards, Arc::new(NoObserver))
    }

    fn put(store: &Store, db: usize, key: &str, expire_at: i64, now: i64) {
        store.db(db).with_shard(key.as_bytes(), |s| {
            s.set(key.as_bytes(), Value::string("v"), expire_at, now);
        });
    }

    fn stored(store: &Store) -> usize {
        (0..store.db_count()).map(|d| store.db(d).len()).sum()
    }

    impl ActiveExpire {
        /// Runs one cycle of `kind` from where the last stopped.
        fn cycle(
            &mut self,
            store: &Store,
            kind: CycleKind,
            limit: Duration,
            clock: &dyn Fn() -> i64,
            effort: &ExpireEffort,
        ) -> CycleOutcome {
            let plan = Plan {
                kind,
                limit,
                first_unit: self.next_unit,
            };
            let run = run_cycle(store, &plan, clock, effort);
            self.finish(store, &plan, &run)
        }
    }

    #[test]
    fn effort_derives_redis_values() {
        let e1 = ExpireEffort::new(1);
        assert_eq!(e1.keys_per_loop, 20);
        assert_eq!(e1.acceptable_stale_perc, 10);
        assert_eq!(e1.slow_time_perc, 25);
        assert_eq!(e1.fast_duration, Duration::from_micros(1000));
        let e10 = ExpireEffort::new(10);
        assert_eq!(e10.keys_per_loop, 65);
        assert_eq!(e10.acceptable_stale_perc, 1);
        assert_eq!(e10.slow_time_perc, 43);
        assert_eq!(e10.fast_duration, Duration::from_micros(3250));
        assert_eq!(ExpireEffort::new(0), e1);
        assert_eq!(ExpireEffort::new(99), e10);
    }

    /// A shard another thread holds (a snapshot capturing it, a long
    /// script) is passed by, not waited for: the cycle ends at once, and a
    /// cycle after the shard is free expires its keys.
    #[test]
    fn a_held_shard_is_passed_by_and_expired_by_a_later_cycle() {
        let s = store(1, 1);
        put(&s, 0, "dead", 500, 0);
        let (out, later) = std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel();
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let held = &s;
            let holder = scope.spawn(move || {
                held.db(0).with_shard_at(0, |_| {
                    tx.send(()).unwrap();
                    let _ = done_rx.recv_timeout(Duration::from_secs(10));
                });
            });
            rx.recv().unwrap();
            let mut ae = ActiveExpire::new(Instant::now());
            let effort = ExpireEffort::default();
            let out = ae.cycle(
                &s,
                CycleKind::Slow,
                Duration::from_millis(25),
                &|| 1000,
                &effort,
            );
            done_tx.send(()).unwrap();
            holder.join().unwrap();
            let later = ae.cycle(
                &s,
                CycleKind::Slow,
                Duration::from_millis(25),
                &|| 1000,
                &effort,
            );
            (out, later)
        });
        assert_eq!(out.expired, 0, "{out:?}");
        assert!(!out.time_cap_reached, "{out:?}");
        assert!(out.elapsed < Duration::from_millis(100), "{out:?}");
        assert_eq!(later.expired, 1, "{later:?}");
    }

    #[test]
    fn a_shard_is_stepped_again_while_its_sample_is_mostly_expired() {
        // One shard: 1000 expired keys, 10 live ones. Each step samples
        // about 20 keys; only repeating the step reaches them all.
        let s = store(1, 1);
        for i in 0..1000 {
            put(&s, 0, &format!("dead:{i}"), 500, 0);
        }
        for i in 0..10 {
            put(&s, 0, &format!("live:{i}"), 1_000_000, 0);
        }
        let mut ae = ActiveExpire::new(Instant::now());
        let out = ae.cycle(
            &s,
            CycleKind::Slow,
            Duration::from_secs(60),
            &|| 1000,
            &ExpireEffort::default(),
        );
        assert!(!out.time_cap_reached);
        // The step stops once a sample is at most 10% expired: with 10 live
        // keys among the last, at most a couple of samples' worth remain.
        assert!(out.expired >= 950, "{out:?}");
        assert!(stored(&s) <= 60, "{} left", stored(&s));
        assert_eq!(
            s.stats().expired_keys.load(Ordering::Relaxed),
            out.expired as u64
        );
    }

    #[test]
    fn a_mostly_live_sample_ends_the_shard_after_one_step() {
        let s = store(1, 1);
        for i in 0..1000 {
            put(&s, 0, &format!("live:{i}"), 1_000_000, 0);
        }
        put(&s, 0, "dead", 500, 0);
        let mut ae = ActiveExpire::new(Instant::now());
        let out = ae.cycle(
            &s,
            CycleKind::Slow,
            Duration::from_secs(60),
            &|| 1000,
            &ExpireEffort::default(),
        );
        assert!(out.sampled >= 20 && out.sampled < 40, "{out:?}");
    }

    #[test]
    fn higher_effort_samples_more_keys_per_step() {
        let s = store(1, 1);
        for i in 0..1000 {
            put(&s, 0, &format!("live:{i}"), 1_000_000, 0);
        }
        let mut ae = ActiveExpire::new(Instant::now());
        let out = ae.cycle(
            &s,
            CycleKind::Slow,
            Duration::from_secs(60),
            &|| 1000,
            &ExpireEffort::new(10),
        );
        assert!(out.sampled >= 65 && out.sampled < 85, "{out:?}");
    }

    #[test]
    fn a_cycle_out_of_time_counts_and_resumes_on_the_next_shard() {
        let s = store(2, 4);
        for d in 0..2 {
            for i in 0..2000 {
                put(&s, d, &format!("k:{i}"), 500, 0);
            }
        }
        let mut ae = ActiveExpire::new(Instant::now());
        let out = ae.cycle(
            &s,
            CycleKind::Slow,
            Duration::ZERO,
            &|| 1000,
            &ExpireEffort::default(),
        );
        // A zero limit still allows the one step that finds it is over.
        assert!(out.time_cap_reached);
        assert!(out.expired > 0 && out.expired <= 40, "{out:?}");
        assert_eq!(ae.next_unit, 1);
        assert!(ae.timelimit_exit);
        let st = s.stats();
        assert_eq!(st.expired_time_cap_reached_count.load(Ordering::Relaxed), 1);
        // Stale share: everything sampled was expired, weighted 5%.
        assert!((st.expired_stale_perc() - 0.05).abs() < 1e-9);
        // The next cycle starts at the next shard and, with time, clears all.
        let out = ae.cycle(
            &s,
            CycleKind::Slow,
            Duration::from_secs(60),
            &|| 1000,
            &ExpireEffort::default(),
        );
        assert!(!out.time_cap_reached);
        assert_eq!(stored(&s), 0);
        assert!(!ae.timelimit_exit);
        assert!(st.expire_cycle_time_used_us.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn no_live_key_is_ever_removed() {
        let s = store(1, 4);
        for i in 0..500 {
            put(&s, 0, &format!("dead:{i}"), 999, 0);
            put(&s, 0, &format!("edge:{i}"), 1001, 0);
            put(&s, 0, &format!("keep:{i}"), crate::NO_EXPIRE, 0);
        }
        let mut ae = ActiveExpire::new(Instant::now());
        for _ in 0..20 {
            ae.cycle(
                &s,
                CycleKind::Slow,
                Duration::from_secs(60),
                &|| 1000,
                &ExpireEffort::default(),
            );
        }
        assert_eq!(stored(&s), 1000);
        assert_eq!(s.db(0).volatile_len(), 500);
    }

    #[test]
    fn fast_cycles_wait_for_a_cause_and_keep_their_spacing() {
        let e = ExpireEffort::default();
        let t0 = Instant::now();
        let mut ae = ActiveExpire::new(t0);
        ae.last_cycle_end = t0;
        // Nothing expiring, nothing left: no fast cycle.
        assert_eq!(ae.fast_due(&e), None);
        // A cycle that hit its time limit: at once, but never closer than
        // twice the fast duration to the last fast start.
        ae.timelimit_exit = true;
        assert_eq!(ae.fast_due(&e), Some(t0));
        ae.last_fast_start = Some(t0);
        assert_eq!(ae.fast_due(&e), Some(t0 + Duration::from_micros(2000)));
        ae.timelimit_exit = false;
        ae.last_fast_start = None;
        // 2% left ahead of the cursors, 3% of volatile keys expiring per
        // 10 ms: half the acceptable 10% is predicted 10 ms later.
        ae.left_share = 0.02;
        ae.turnover = [3.0, 1.0];
        let due = ae.fast_due(&e).expect("due");
        let wait = due - t0;
        assert!(
            wait > Duration::from_micros(9_900) && wait < Duration::from_micros(10_100),
            "{wait:?}"
        );
        ae.left_share = 0.06;
        assert_eq!(ae.fast_due(&e), Some(t0));
        // Higher effort, lower acceptable share (10-9 = 1%): sooner.
        ae.left_share = 0.0;
        let due = ae.fast_due(&ExpireEffort::new(10)).expect("due");
        assert!(due - t0 < Duration::from_millis(2), "{:?}", due - t0);
    }

    #[test]
    fn budget_refills_at_the_share_and_caps_at_one_slow_cycle() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0, 0);
        b.refill(t0 + Duration::from_millis(40), 25, 25_000);
        assert_eq!(b.tokens_us, 10_000);
        b.refill(t0 + Duration::from_secs(10), 25, 25_000);
        assert_eq!(b.tokens_us, 25_000);
        b.spend(Duration::from_millis(30));
        assert_eq!(b.tokens_us, -5_000);
        assert_eq!(b.ready_in(100, 25), Duration::from_micros(20_400));
    }

    #[test]
    fn ticks_never_spend_more_than_the_share_of_wall_time() {
        // Far more expired keys than any budget clears: every cycle hits
        // its limit, and the time spent must stay within 25% of wall time
        // plus one bucket (25 ms at hz 10) and the overrun of the last
        // cycle, which started with some budget left and may end past it
        // (at most its whole length, on a machine that preempted it).
        let s = store(1, 8);
        for i in 0..300_000 {
            put(&s, 0, &format!("k:{i}"), 500, 0);
        }
        let e = ExpireEffort::default();
        let start = Instant::now();
        let mut ae = ActiveExpire::new(start);
        let mut cycles = 0;
        let mut longest = Duration::ZERO;
        while start.elapsed() < Duration::from_millis(600) && stored(&s) > 0 {
            let tick = ae.tick(&s, Instant::now(), &|| 1000, &e, 10, Runner::Background);
            if let Some(c) = tick.cycle {
                cycles += 1;
                longest = longest.max(c.elapsed);
            }
            std::thread::sleep(tick.next.saturating_duration_since(Instant::now()));
        }
        let wall = start.elapsed();
        let used =
            Duration::from_micros(s.stats().expire_cycle_time_used_us.load(Ordering::Relaxed));
        assert!(cycles > 1);
        if stored(&s) > 0 {
            // Still busy at the end: the whole budget was in use.
            assert!(
                s.stats()
                    .expired_time_cap_reached_count
                    .load(Ordering::Relaxed)
                    > 0
            );
        }
        assert!(
            used <= wall / 4 + Duration::from_millis(25) + longest,
            "used {used:?} of {wall:?}, longest cycle {longest:?}"
        );
    }

    #[test]
    fn workers_run_due_cycles_and_the_thread_only_what_they_leave() {
        let s = store(1, 4);
        for i in 0..100 {
            put(&s, 0, &format!("k:{i}"), 500, 0);
        }
        let t0 = Instant::now();
        let d = ExpireDriver::new(t0);
        let tuning = || (ExpireEffort::default(), 10);
        // The first slow cycle is due at once: a worker runs it.
        let out = d.run_if_due(&s, t0, &|| 1000, tuning).expect("a cycle");
        assert_eq!(out.kind, CycleKind::Slow);
        assert_eq!(stored(&s), 0);
        // Nothing is due now: the worker's check does nothing, and the
        // thread sleeps until the next due time plus the grace.
        let due = t0 + Duration::from_micros(d.due_us.load(Ordering::Relaxed));
        assert!(due > t0);
        assert_eq!(d.run_if_due(&s, t0, &|| 1000, tuning), None);
        let (ran, wait) = d.background_tick(&s, t0, &|| 1000, &ExpireEffort::default(), 10);
        assert_eq!(ran, None);
        assert_eq!(wait, due - t0 + IDLE_GRACE);
        // Due, but within the grace: still the workers' turn.
        for i in 0..100 {
            put(&s, 0, &format!("j:{i}"), 500, 0);
        }
        let (ran, _) = d.background_tick(&s, due, &|| 1000, &ExpireEffort::default(), 10);
        assert_eq!(ran, None);
        assert_eq!(stored(&s), 100);
        // No worker came: the thread runs it.
        let (ran, _) =
            d.background_tick(&s, due + IDLE_GRACE, &|| 1000, &ExpireEffort::default(), 10);
        assert!(ran.is_some_and(|c| c.expired > 0), "{ran:?}");
        assert!(stored(&s) < 100);
    }

    #[test]
    fn a_worker_cuts_a_slow_cycle_to_the_fast_duration() {
        let s = store(1, 1);
        for i in 0..1000 {
            put(&s, 0, &format!("k:{i}"), 500, 0);
        }
        let e = ExpireEffort::default();
        let t0 = Instant::now();
        // A clock that takes 2 ms per call (one per shard step) makes the
        // first step outlast a fast cycle but not a slow one.
        let slow_clock = || {
            std::thread::sleep(Duration::from_millis(2));
            1000
        };
        let mut worker = ActiveExpire::new(t0);
        let out = worker
            .tick(&s, t0, &slow_clock, &e, 10, Runner::Worker)
            .cycle
            .expect("due");
        assert_eq!(out.kind, CycleKind::Slow);
        assert!(out.time_cap_reached, "{out:?}");
        assert!(worker.timelimit_exit);
        assert!(stored(&s) > 0);
        let mut thread = ActiveExpire::new(t0);
        let out = thread
            .tick(&s, t0, &slow_clock, &e, 10, Runner::Background)
            .cycle
            .expect("due");
        assert_eq!(out.kind, CycleKind::Slow);
        assert!(out.sampled > 20, "{out:?}");
    }

    #[test]
    fn disabled_active_expire_runs_nothing() {
        let s = store(1, 2);
        put(&s, 0, "k", 500, 0);
        s.set_active_expire(false);
        let mut ae = ActiveExpire::new(Instant::now());
        let now = Instant::now();
        let tick = ae.tick(
            &s,
            now,
            &|| 1000,
            &ExpireEffort::default(),
            10,
            Runner::Background,
        );
        assert_eq!(tick.cycle, None);
        assert_eq!(tick.next, now + Duration::from_millis(100));
        assert_eq!(stored(&s), 1);
        s.set_active_expire(true);
        let tick = ae.tick(
            &s,
            Instant::now() + Duration::from_millis(100),
            &|| 1000,
            &ExpireEffort::default(),
            10,
            Runner::Background,
        );
        assert!(tick.cycle.is_some());
        assert_eq!(stored(&s), 0);
    }
}
