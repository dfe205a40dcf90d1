//! The worker threads and how many of them serve clients at a time.
//!
//! Each worker is a single-threaded runtime that owns its connections.
//! Spreading 50 connections over 8 workers on a 16-core machine made the
//! server spend 1.3–1.4× Redis's CPU per request at the load one Redis
//! core carries (bench-vs-redis on the device machine, 2026-11-23): each
//! worker wakes for one or two ready sockets, so every request pays a
//! sleep and a wake-up, where one busy loop would find many sockets ready
//! per `epoll_wait`. One worker matched Redis there but capped pipelined
//! throughput at one core.
//!
//! So the number of *active* workers follows the load. New connections go
//! to the active workers only, and the balancer thread moves connections
//! between workers: a connection moves at the end of a batch, with its
//! socket and its whole state ([`crate::connection::Parked`]). Every
//! [`TICK`] the balancer reads each worker's CPU time (the thread's
//! `schedstat`, kernel time included) and the commands processed, and
//! tries a step:
//! - a worker busy at least [`HOT`] of the time: one more worker takes half
//!   of the busiest worker's active connections;
//! - every active worker below [`COLD`]: the last worker's connections go
//!   to the others.
//!
//! A step is a trial. It is kept only if throughput over the next ticks
//! shows it was right: a spread must raise it by [`SPREAD_GAIN`] (else the
//! load was bound by the clients, not by the worker), a merge must keep
//! [`MERGE_KEEP`] of it. A reverted step waits a backoff that doubles each
//! time, up to [`MAX_BACKOFF`] ticks, before the balancer tries again.
//!
//! Whether a spread pays depends on the load's shape. Deep pipelines gain
//! almost linearly. Fifty clients with one request in flight each lost
//! throughput when spread (137k → 78k commands/s on the device machine):
//! one busy worker answers them in bursts, which also lets the clients
//! batch their own reads. So spread trials are remembered per pipeline
//! depth (commands per batch, in powers of two): a depth where spreading
//! failed backs off without holding back another where it succeeds.
//!
//! Where thread CPU times cannot be read (not Linux), every worker is
//! active and nothing moves.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tokio::sync::mpsc;

use crate::client::{ClientHandle, NO_MOVE};
use crate::shared::Shared;

/// How often the balancer looks.
pub const TICK: Duration = Duration::from_millis(200);
/// Busy share of a worker above which it is taken to limit throughput.
pub const HOT: f64 = 0.90;
/// Busy share below which every active worker counts as lightly loaded.
pub const COLD: f64 = 0.70;
/// Throughput a spread must gain to be kept.
pub const SPREAD_GAIN: f64 = 1.25;
/// Throughput a merge must keep to be kept.
pub const MERGE_KEEP: f64 = 0.95;
/// Longest wait after a reverted step, in ticks.
pub const MAX_BACKOFF: u64 = 128;
/// Wait after the first reverted step, in ticks.
const FIRST_BACKOFF: u64 = 4;
/// Ticks a trial waits for the moved connections to settle, then measures.
const SETTLE: u32 = 1;
const MEASURE: u32 = 2;
/// How far the last two ticks' throughputs may differ for a steady load.
const STEADY: f64 = 0.15;
/// Consecutive hot / cold ticks before a trial.
const HOT_TICKS: u32 = 2;
const COLD_TICKS: u32 = 3;
/// A connection that ran a command within this many ms counts as active.
const ACTIVE_MS: i64 = 1000;

/// What a worker's channel carries.
pub enum Incoming {
    /// A connection just accepted.
    New(std::net::TcpStream, SocketAddr),
    /// A connection moved here from another worker.
    Moved(Box<crate::connection::Parked>),
}

/// One worker as the balancer sees it, on a cache line of its own: its
/// thread id, and the batches and commands its connections ran (added
/// after each batch).
#[repr(align(128))]
#[derive(Default)]
struct Worker {
    tid: AtomicUsize,
    batches: AtomicU64,
    commands: AtomicU64,
}

/// Pipeline-depth classes the balancer tells apart (see the module doc).
pub const DEPTHS: usize = 6;

/// The class of `commands` per batch: 0 for about one, then one per
/// doubling.
pub fn depth_class(commands_per_batch: f64) -> usize {
    if commands_per_batch.is_finite() && commands_per_batch >= 1.5 {
        ((commands_per_batch / 1.5).log2() as usize + 1).min(DEPTHS - 1)
    } else {
        0
    }
}

/// The workers' mailboxes, which of them are active, and their thread ids.
pub struct Workers {
    senders: RwLock<Vec<mpsc::UnboundedSender<Incoming>>>,
    workers: Vec<Worker>,
    active: AtomicUsize,
    next: AtomicUsize,
    /// `DEBUG SET-ACTIVE-WORKERS` fixed the count: the balancer waits.
    manual: AtomicBool,
    /// A balancer runs (more than one worker, thread CPU times readable).
    balanced: bool,
}

impl Workers {
    /// Mailboxes for `senders.len()` workers; one is active at first when
    /// the balancer can run, else all.
    pub fn new(senders: Vec<mpsc::UnboundedSender<Incoming>>) -> Self {
        let n = senders.len();
        let balanced = n > 1 && cpu_time_readable();
        Workers {
            balanced,
            workers: (0..n).map(|_| Worker::default()).collect(),
            senders: RwLock::new(senders),
            active: AtomicUsize::new(if balanced { 1 } else { n }),
            next: AtomicUsize::new(0),
            manual: AtomicBool::new(false),
        }
    }

    /// Whether a balancer thread should run.
    pub fn balanced(&self) -> bool {
        self.balanced
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Never true: a server has at least one worker.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Workers that take new connections.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed).clamp(1, self.len())
    }

    /// The worker for a new connection: the active ones in turn.
    pub fn pick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.active()
    }

    /// Hands `inc` to worker `i`; gives it back once the server is
    /// stopping.
    pub fn send(&self, i: usize, inc: Incoming) -> Option<Incoming> {
        match self.senders.read().get(i) {
            Some(tx) => tx.send(inc).err().map(|e| e.0),
            None => Some(inc),
        }
    }

    /// Drops every mailbox so the workers finish (shutdown).
    pub fn close(&self) {
        self.senders.write().clear();
    }

    /// A connection on worker `i` ran a batch of `commands`.
    #[inline]
    pub fn count_batch(&self, i: usize, commands: u64) {
        if !self.balanced {
            return;
        }
        if let Some(c) = self.workers.get(i) {
            c.batches.fetch_add(1, Ordering::Relaxed);
            c.commands.fetch_add(commands, Ordering::Relaxed);
        }
    }

    /// Batches and commands run on every worker so far.
    fn totals(&self) -> (u64, u64) {
        self.workers.iter().fold((0, 0), |(b, c), x| {
            (
                b + x.batches.load(Ordering::Relaxed),
                c + x.commands.load(Ordering::Relaxed),
            )
        })
    }

    /// Called by worker `i` on its own thread: records its thread id.
    pub fn register_thread(&self, i: usize) {
        if let Some(tid) = own_tid() {
            self.workers[i].tid.store(tid, Ordering::Relaxed);
        }
    }

    /// Makes `k` workers active and asks connections to move so the active
    /// ones share the busy connections evenly (see [`plan_moves`]).
    pub fn resize(&self, srv: &Shared, k: usize) {
        let k = k.clamp(1, self.len());
        self.active.store(k, Ordering::Relaxed);
        let now = crate::command::ctx::unix_ms();
        let clients = srv.clients.all();
        let conns: Vec<Conn> = clients
            .iter()
            .map(|h| Conn {
                worker: h.worker.load(Ordering::Relaxed),
                active: now - h.last_interaction_ms.load(Ordering::Relaxed) <= ACTIVE_MS,
            })
            .collect();
        for (idx, to) in plan_moves(&conns, k, self.len()) {
            ask_move(&clients[idx], to);
        }
    }

    /// `DEBUG SET-ACTIVE-WORKERS`: `Some(k)` fixes the count at `k`,
    /// `None` gives it back to the balancer.
    pub fn set_manual(&self, srv: &Shared, k: Option<usize>) {
        match k {
            Some(k) => {
                self.manual.store(true, Ordering::Relaxed);
                self.resize(srv, k);
            }
            None => self.manual.store(false, Ordering::Relaxed),
        }
    }

    /// Connections per worker (`DEBUG WORKERS`).
    pub fn connections(&self, srv: &Shared) -> Vec<usize> {
        let mut v = vec![0; self.len()];
        for h in srv.clients.all() {
            if let Some(c) = v.get_mut(h.worker.load(Ordering::Relaxed)) {
                *c += 1;
            }
        }
        v
    }
}

fn ask_move(h: &ClientHandle, to: usize) {
    if h.worker.load(Ordering::Relaxed) != to {
        h.move_to.store(to, Ordering::Relaxed);
    } else {
        h.move_to.store(NO_MOVE, Ordering::Relaxed);
    }
}

/// One connection as [`plan_moves`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    pub worker: usize,
    /// Ran a command lately.
    pub active: bool,
}

/// Which connections move where so that workers `0..k` hold every
/// connection and share the active ones evenly: every connection on a
/// worker `>= k` moves (idle ones too: they move at their next command),
/// and a worker with more active connections than its share gives the
/// surplus to those with fewer. Returns (index into `conns`, worker).
pub fn plan_moves(conns: &[Conn], k: usize, n: usize) -> Vec<(usize, usize)> {
    let k = k.clamp(1, n.max(1));
    let mut active = vec![0usize; k];
    for c in conns {
        if c.active && c.worker < k {
            active[c.worker] += 1;
        }
    }
    let total_active = conns.iter().filter(|c| c.active).count();
    let share = total_active.div_ceil(k);
    let mut moves = Vec::new();
    // The active worker with the fewest active connections.
    let least = |active: &[usize]| {
        (0..active.len())
            .min_by_key(|&w| active[w])
            .expect("k >= 1")
    };
    for (i, c) in conns.iter().enumerate() {
        if c.worker >= k {
            let to = least(&active);
            if c.active {
                active[to] += 1;
            }
            moves.push((i, to));
        }
    }
    for (i, c) in conns.iter().enumerate() {
        if c.active && c.worker < k && active[c.worker] > share {
            let to = least(&active);
            if active[to] + 1 < active[c.worker] {
                active[c.worker] -= 1;
                active[to] += 1;
                moves.push((i, to));
            }
        }
    }
    moves
}

/// A trial step and the throughput before it.
#[derive(Debug, Clone, Copy)]
struct Trial {
    from: usize,
    to: usize,
    before: f64,
    depth: usize,
    ticks: u32,
    sum: f64,
}

/// When the next trial of one kind may start, and the wait after its next
/// failure.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    until: u64,
    next: u64,
}

impl Backoff {
    const FRESH: Backoff = Backoff {
        until: 0,
        next: FIRST_BACKOFF,
    };

    fn failed(&mut self, now: u64) {
        self.until = now + self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
    }
}

/// The balancer's decisions, apart from clocks and sockets (unit-tested).
#[derive(Debug)]
pub struct Policy {
    n: usize,
    k: usize,
    hot: u32,
    cold: u32,
    trial: Option<Trial>,
    tick: u64,
    spread: [Backoff; DEPTHS],
    merge: Backoff,
    last_ops: [f64; 2],
}

impl Policy {
    /// A policy for `n` workers, `k` of them active.
    pub fn new(n: usize, k: usize) -> Self {
        Policy {
            n,
            k,
            hot: 0,
            cold: 0,
            trial: None,
            tick: 0,
            spread: [Backoff::FRESH; DEPTHS],
            merge: Backoff::FRESH,
            last_ops: [0.0; 2],
        }
    }

    /// Active workers as the policy sees them.
    pub fn active(&self) -> usize {
        self.k
    }

    /// One tick: each worker's busy share since the last tick, the
    /// commands per second and their class of pipeline depth
    /// ([`depth_class`]). Returns the new active count when it changes.
    pub fn tick(&mut self, util: &[f64], ops: f64, depth: usize) -> Option<usize> {
        self.tick += 1;
        let depth = depth.min(DEPTHS - 1);
        self.last_ops = [self.last_ops[1], ops];
        let before = (self.last_ops[0] + self.last_ops[1]) / 2.0;
        if let Some(t) = self.trial.as_mut() {
            t.ticks += 1;
            if t.ticks <= SETTLE {
                return None;
            }
            t.sum += ops;
            if t.ticks < SETTLE + MEASURE {
                return None;
            }
            let t = *t;
            self.trial = None;
            self.hot = 0;
            self.cold = 0;
            let after = t.sum / f64::from(MEASURE);
            let spread = t.to > t.from;
            let keep = if spread {
                after >= t.before * SPREAD_GAIN
            } else {
                after >= t.before * MERGE_KEEP
            };
            let backoff = if spread {
                &mut self.spread[t.depth]
            } else {
                &mut self.merge
            };
            if keep {
                *backoff = Backoff::FRESH;
                if !spread {
                    // One worker fewer serves this load as well: spreading
                    // at this depth did not pay (a spread kept on a noisy
                    // tick comes back here).
                    self.spread[t.depth].failed(self.tick);
                }
                return None;
            }
            backoff.failed(self.tick);
            self.k = t.from;
            return Some(t.from);
        }
        let busiest = util.iter().take(self.k).copied().fold(0.0f64, f64::max);
        self.hot = if busiest >= HOT { self.hot + 1 } else { 0 };
        self.cold = if self.k > 1 && busiest < COLD {
            self.cold + 1
        } else {
            0
        };
        // A spread is judged against the throughput before it, so it starts
        // only from a steady load (not as a load ramps up or down).
        let [a, b] = self.last_ops;
        let steady = a > 0.0 && (a - b).abs() <= STEADY * a.max(b);
        let to = if self.hot >= HOT_TICKS
            && steady
            && self.k < self.n
            && self.tick >= self.spread[depth].until
        {
            self.k + 1
        } else if self.cold >= COLD_TICKS && self.tick >= self.merge.until {
            self.k - 1
        } else {
            return None;
        };
        self.trial = Some(Trial {
            from: self.k,
            to,
            before,
            depth,
            ticks: 0,
            sum: 0.0,
        });
        self.k = to;
        Some(to)
    }

    /// Forgets a trial and counts (the count was fixed by hand meanwhile).
    pub fn reset(&mut self, k: usize) {
        *self = Policy::new(self.n, k);
    }
}

/// The balancer thread: samples, decides, moves. Runs until shutdown.
pub fn balance(srv: Arc<Shared>, workers: Arc<Workers>) {
    let n = workers.len();
    let mut policy = Policy::new(n, workers.active());
    let mut last_cpu = vec![None::<u64>; n];
    let (mut last_batches, mut last_cmds) = workers.totals();
    let mut last_at = Instant::now();
    while !srv.shutting_down.load(Ordering::Relaxed) {
        std::thread::park_timeout(TICK);
        let now = Instant::now();
        let dt = now.duration_since(last_at).as_secs_f64().max(1e-3);
        last_at = now;
        let (batches, cmds) = workers.totals();
        let ran = cmds.saturating_sub(last_cmds);
        let ops = ran as f64 / dt;
        let depth = depth_class(ran as f64 / batches.saturating_sub(last_batches).max(1) as f64);
        (last_batches, last_cmds) = (batches, cmds);
        let util: Vec<f64> = (0..n)
            .map(|i| {
                let cpu = thread_cpu_ns(workers.workers[i].tid.load(Ordering::Relaxed));
                let u = match (cpu, last_cpu[i]) {
                    (Some(c), Some(l)) => c.saturating_sub(l) as f64 / 1e9 / dt,
                    _ => 0.0,
                };
                last_cpu[i] = cpu;
                u
            })
            .collect();
        if workers.manual.load(Ordering::Relaxed) {
            policy.reset(workers.active());
            continue;
        }
        if let Some(k) = policy.tick(&util, ops, depth) {
            tracing::debug!(active = k, ?util, ops, depth, "worker balancer");
            workers.resize(&srv, k);
        }
    }
}

/// Whether this platform lets the balancer read thread CPU times.
pub fn cpu_time_readable() -> bool {
    cfg!(target_os = "linux") && std::path::Path::new("/proc/thread-self/schedstat").exists()
}

/// The calling thread's id, from `/proc/thread-self` (`PID/task/TID`).
fn own_tid() -> Option<usize> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// A thread's time on a CPU in ns, kernel time included (the first field of
/// `schedstat`, as bench-vs-redis measures servers).
fn thread_cpu_ns(tid: usize) -> Option<u64> {
    if tid == 0 {
        return None;
    }
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    s.split_ascii_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conns(spec: &[(usize, bool)]) -> Vec<Conn> {
        spec.iter()
            .map(|&(worker, active)| Conn { worker, active })
            .collect()
    }

    fn after(c: &[Conn], moves: &[(usize, usize)]) -> Vec<Conn> {
        let mut c = c.to_vec();
        for &(i, to) in moves {
            c[i].worker = to;
        }
        c
    }

    fn active_per_worker(c: &[Conn], n: usize) -> Vec<usize> {
        let mut v = vec![0; n];
        for x in c.iter().filter(|x| x.active) {
            v[x.worker] += 1;
        }
        v
    }

    #[test]
    fn spreading_splits_the_busy_worker() {
        let c = conns(&[(0, true); 10]);
        let m = plan_moves(&c, 2, 4);
        assert_eq!(active_per_worker(&after(&c, &m), 4), vec![5, 5, 0, 0]);
    }

    #[test]
    fn merging_moves_everything_off_the_dropped_worker() {
        let mut spec = vec![(0, true); 3];
        spec.extend([(1, true), (1, true), (1, false), (2, false)]);
        let c = conns(&spec);
        let m = plan_moves(&c, 1, 3);
        let a = after(&c, &m);
        assert!(a.iter().all(|x| x.worker == 0));
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn idle_connections_are_left_where_they_are() {
        let c = conns(&[(0, true), (0, true), (0, false), (0, false), (0, false)]);
        let m = plan_moves(&c, 2, 2);
        assert_eq!(m.len(), 1);
        assert!(c[m[0].0].active);
    }

    #[test]
    fn balanced_workers_move_nothing() {
        let c = conns(&[(0, true), (1, true), (0, true), (1, true)]);
        assert!(plan_moves(&c, 2, 2).is_empty());
    }

    #[test]
    fn a_hot_worker_gets_help_kept_when_throughput_rises() {
        let mut p = Policy::new(4, 1);
        assert_eq!(p.tick(&[0.99, 0.0], 100.0, 0), None);
        assert_eq!(p.tick(&[0.99, 0.0], 100.0, 0), Some(2));
        // Settling, then two measured ticks at +60%.
        assert_eq!(p.tick(&[0.9, 0.9], 120.0, 0), None);
        assert_eq!(p.tick(&[0.8, 0.8], 160.0, 0), None);
        assert_eq!(p.tick(&[0.8, 0.8], 160.0, 0), None);
        assert_eq!(p.active(), 2);
    }

    #[test]
    fn a_spread_that_gains_nothing_is_reverted_and_waits() {
        let mut p = Policy::new(4, 1);
        p.tick(&[0.95], 100.0, 0);
        assert_eq!(p.tick(&[0.95], 100.0, 0), Some(2));
        p.tick(&[0.6, 0.6], 100.0, 0);
        p.tick(&[0.6, 0.6], 115.0, 0);
        assert_eq!(p.tick(&[0.6, 0.6], 120.0, 0), Some(1));
        // Hot again at once, but the backoff holds the next trial back.
        for _ in 0..FIRST_BACKOFF - 1 {
            assert_eq!(p.tick(&[0.95], 100.0, 0), None);
        }
        assert_eq!(p.tick(&[0.95], 100.0, 0), Some(2));
    }

    #[test]
    fn light_load_merges_workers() {
        let mut p = Policy::new(4, 3);
        assert_eq!(p.tick(&[0.3, 0.3, 0.3], 50.0, 0), None);
        assert_eq!(p.tick(&[0.3, 0.3, 0.3], 50.0, 0), None);
        assert_eq!(p.tick(&[0.3, 0.3, 0.3], 50.0, 0), Some(2));
        p.tick(&[0.4, 0.4], 50.0, 0);
        p.tick(&[0.4, 0.4], 50.0, 0);
        assert_eq!(p.tick(&[0.4, 0.4], 50.0, 0), None);
        assert_eq!(p.active(), 2);
    }

    #[test]
    fn a_merge_that_costs_throughput_is_reverted() {
        let mut p = Policy::new(4, 2);
        for _ in 0..2 {
            assert_eq!(p.tick(&[0.6, 0.6], 200.0, 0), None);
        }
        assert_eq!(p.tick(&[0.6, 0.6], 200.0, 0), Some(1));
        p.tick(&[1.0], 120.0, 0);
        p.tick(&[1.0], 110.0, 0);
        assert_eq!(p.tick(&[1.0], 110.0, 0), Some(2));
    }

    #[test]
    fn a_failed_spread_holds_back_only_its_own_pipeline_depth() {
        let mut p = Policy::new(4, 1);
        p.tick(&[0.95], 100.0, 0);
        assert_eq!(p.tick(&[0.95], 100.0, 0), Some(2));
        p.tick(&[0.5, 0.5], 80.0, 0);
        p.tick(&[0.5, 0.5], 80.0, 0);
        assert_eq!(p.tick(&[0.5, 0.5], 80.0, 0), Some(1));
        // Depth 0 waits; a deep pipeline is tried at once.
        assert_eq!(p.tick(&[1.0], 100.0, 0), None);
        assert_eq!(p.tick(&[1.0], 100.0, 4), Some(2));
    }

    #[test]
    fn depth_classes_double() {
        assert_eq!(depth_class(1.0), 0);
        assert_eq!(depth_class(1.2), 0);
        assert_eq!(depth_class(2.0), 1);
        assert_eq!(depth_class(3.0), 2);
        assert_eq!(depth_class(16.0), 4);
        assert_eq!(depth_class(1000.0), DEPTHS - 1);
        assert_eq!(depth_class(f64::NAN), 0);
    }

    #[test]
    fn no_spread_while_the_load_ramps_up() {
        let mut p = Policy::new(4, 1);
        assert_eq!(p.tick(&[0.95], 20.0, 0), None);
        assert_eq!(p.tick(&[0.95], 60.0, 0), None);
        assert_eq!(p.tick(&[0.95], 100.0, 0), None);
        assert_eq!(p.tick(&[0.95], 100.0, 0), Some(2));
    }

    #[test]
    fn a_kept_merge_holds_back_spreading_at_its_depth() {
        let mut p = Policy::new(4, 2);
        for _ in 0..2 {
            assert_eq!(p.tick(&[0.5, 0.5], 100.0, 0), None);
        }
        assert_eq!(p.tick(&[0.5, 0.5], 100.0, 0), Some(1));
        p.tick(&[0.9], 100.0, 0);
        p.tick(&[0.95], 100.0, 0);
        assert_eq!(p.tick(&[0.95], 100.0, 0), None, "merge kept");
        // Hot at depth 0 now waits; depth 4 does not.
        assert_eq!(p.tick(&[0.95], 100.0, 0), None);
        assert_eq!(p.tick(&[0.95], 100.0, 4), Some(2));
    }

    #[test]
    fn one_worker_never_moves() {
        let mut p = Policy::new(1, 1);
        for _ in 0..10 {
            assert_eq!(p.tick(&[1.0], 100.0, 0), None);
        }
    }

    #[test]
    fn own_cpu_time_is_readable_on_linux() {
        if cpu_time_readable() {
            let tid = own_tid().expect("tid");
            assert!(thread_cpu_ns(tid).is_some());
        }
    }
}
