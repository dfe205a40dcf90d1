//! A short nap between a worker's rounds when many clients keep it busy,
//! instead of sleeping in `epoll_wait` until the next request.
//!
//! A worker with nothing left to do sleeps in `epoll_wait`, and the next
//! request's sender pays for waking it: its `send` runs the kernel's
//! wake-up of the worker's thread, on the sender's CPU. In a virtual
//! machine that wake-up interrupts a halted virtual CPU and costs several
//! microseconds. With fifty connections and one request in flight on each
//! (`redis-benchmark`'s default) the worker caught up with the client
//! about once every six requests, and the client, busy at 97% of its core,
//! spent 8-9% of its time in those wake-ups (`perf record` on the client,
//! `sock_def_readable`), more than against Redis, which is slower per
//! request and so sleeps less often. Measured on the 2-core VM, 2026-11-24.
//!
//! So a worker that has just written the replies of several connections,
//! and has served many distinct connections one command at a time lately,
//! sleeps a fixed [`NAP`] on a timer of its own and then polls for all the
//! input that came meanwhile. Requests that arrive during the nap wake
//! nobody, and the next round serves them together. With 50 clients this
//! gave 1.07-1.12× Redis's non-pipelined throughput at 0.92-0.95× its CPU
//! per request, every round on the same side of 1.00 (`bench-vs-redis`,
//! 5 rounds), where the same tool had found both within noise of Redis's
//! throughput before (medians 0.93-1.03).
//!
//! It is not for every load. When the clients are few, or each waits for
//! its reply before doing anything else, the nap adds to every round trip:
//! 4 clients lost 40% of their throughput with a nap after every round, 8
//! lost 25%, 16 broke even. And a pipelined load keeps the worker busy
//! anyway; a nap there only idles it. Hence the conditions in
//! [`Moderator::after_round`]: at least [`MIN_CONNS`] connections served
//! in the last whole [`EPOCH`] (which ended less than an epoch ago), about
//! one command per batch, and a round that served more than one
//! connection but at most half of those, so the clients had other replies
//! to work on while the worker naps. A nap never delays a reply (they are
//! written before it), only the reading of requests that come during it,
//! by at most [`NAP`]. The nap looks like idle time to the balancer
//! (`crate::workers`), as it is: the worker has nothing to do.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How long a nap lasts. Tried against 50 µs (which the default timer
/// slack gave a 1 µs sleep): both raised throughput alike, and a shorter
/// nap holds the requests that come during it for less. At 50 clients
/// redis-benchmark's p50 is 0.34-0.35 ms against Redis's 0.30-0.31 ms.
pub const NAP: Duration = Duration::from_micros(20);
/// The timer slack a worker thread asks for, so that a nap is not
/// stretched to Linux's default 50 µs slack.
pub const TIMER_SLACK_NS: u64 = 2_000;
/// How often the load's shape is taken.
pub const EPOCH: Duration = Duration::from_millis(100);
/// Distinct connections served in an epoch below which no nap is taken.
pub const MIN_CONNS: u64 = 16;
/// Commands per batch at or above which a load counts as pipelined.
pub const MAX_DEPTH: f64 = 1.5;
/// Tasks tokio's `LocalSet` runs per poll: a round that served this many
/// may have stopped with more connections ready, and is not followed by a
/// nap.
pub const ROUND_LIMIT: u64 = 61;

/// What the worker's reply queue held over one round
/// (`crate::deferred::take_flushed`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Connections whose queued replies were flushed (a reply that did not
    /// fit its socket and went to the connection's overflow included).
    pub batches: u64,
    /// Connections among them not flushed before in this epoch.
    pub fresh: u64,
}

/// Batches every connection of a worker ran, and their commands, whether
/// their replies were queued or written at once.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub batches: u64,
    pub commands: u64,
}

thread_local! {
    static LOAD: Cell<Load> = const { Cell::new(Load { batches: 0, commands: 0 }) };
}

/// A connection of this thread's worker ran a batch of `commands`.
#[inline]
pub fn count_batch(commands: u64) {
    LOAD.with(|l| {
        let mut v = l.get();
        v.batches += 1;
        v.commands += commands;
        l.set(v);
    });
}

/// The batches counted on this thread since the last call.
pub fn take_load() -> Load {
    LOAD.with(|l| l.take())
}

/// One worker's view of its recent load, and whether it naps.
#[derive(Debug)]
pub struct Moderator {
    epoch_start: Instant,
    /// The epoch under way.
    conns: u64,
    batches: u64,
    commands: u64,
    /// The last whole epoch: whether its load was of many connections,
    /// one command at a time, and how many connections it served.
    wide: bool,
    last_conns: u64,
}

impl Moderator {
    pub fn new(now: Instant) -> Self {
        Moderator {
            epoch_start: now,
            conns: 0,
            batches: 0,
            commands: 0,
            wide: false,
            last_conns: 0,
        }
    }

    /// After a round whose tasks all wait (the caller checks that nothing
    /// woke them meanwhile), with what it flushed and the batches run
    /// since the last call: how long to nap before polling for input
    /// again, if at all. Returns true when an epoch ended (the caller
    /// starts a new one in the reply queue, so connections count as fresh
    /// again).
    pub fn after_round(
        &mut self,
        f: Flushed,
        load: Load,
        now: Instant,
    ) -> (Option<Duration>, bool) {
        self.conns += f.fresh;
        self.batches += load.batches;
        self.commands += load.commands;
        let mut new_epoch = false;
        let age = now.duration_since(self.epoch_start);
        if age >= EPOCH {
            let depth = self.commands as f64 / self.batches.max(1) as f64;
            // An epoch that ran long had no rounds for a while: the load
            // paused, and what it was before tells nothing of what comes.
            let wide = age < 2 * EPOCH && self.conns >= MIN_CONNS && depth < MAX_DEPTH;
            if wide != self.wide {
                tracing::debug!(connections = self.conns, depth, "worker naps: {wide}");
            }
            self.wide = wide;
            self.last_conns = self.conns;
            self.epoch_start = now;
            self.conns = 0;
            self.batches = 0;
            self.commands = 0;
            new_epoch = true;
        }
        // A round that served more than half of the connections had the
        // clients waiting on this worker: a nap would hold them all.
        let nap = (self.wide
            && f.batches >= 2
            && f.batches < ROUND_LIMIT
            && f.batches * 2 <= self.last_conns)
            .then_some(NAP);
        (nap, new_epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(batches: u64, fresh: u64, depth: u64) -> (Flushed, Load) {
        (
            Flushed { batches, fresh },
            Load {
                batches,
                commands: batches * depth,
            },
        )
    }

    /// Runs `epochs` epochs of rounds 50 µs apart that each serve
    /// `per_round` of `conns` connections with `depth` commands a batch;
    /// returns the naps taken in the last epoch and its rounds.
    fn drive(
        m: &mut Moderator,
        t: &mut Instant,
        epochs: u32,
        conns: u64,
        per_round: u64,
        depth: u64,
    ) -> (u32, u32) {
        let mut naps = 0;
        let mut rounds = 0;
        let mut seen = 0;
        for _ in 0..epochs {
            let end = *t + EPOCH;
            naps = 0;
            rounds = 0;
            while *t < end {
                *t += Duration::from_micros(50);
                let fresh = per_round.min(conns - seen.min(conns));
                seen += fresh;
                let (f, load) = round(per_round, fresh, depth);
                let (nap, new_epoch) = m.after_round(f, load, *t);
                if new_epoch {
                    seen = 0;
                }
                rounds += 1;
                naps += u32::from(nap.is_some());
            }
        }
        (naps, rounds)
    }

    fn after(m: &mut Moderator, t: Instant, batches: u64, fresh: u64) -> (Option<Duration>, bool) {
        let (f, load) = round(batches, fresh, 1);
        m.after_round(f, load, t)
    }

    #[test]
    fn many_clients_one_command_at_a_time_nap_after_the_first_epoch() {
        let mut t = Instant::now();
        let mut m = Moderator::new(t);
        let (naps, _) = drive(&mut m, &mut t, 1, 50, 7, 1);
        assert!(naps <= 1, "the first epoch has no shape yet: {naps}");
        let (naps, rounds) = drive(&mut m, &mut t, 2, 50, 7, 1);
        assert!(naps >= rounds - 1, "{naps} of {rounds}");
    }

    #[test]
    fn few_clients_never_nap() {
        let mut t = Instant::now();
        let mut m = Moderator::new(t);
        for conns in [1, 2, 4, 8, 15] {
            let (naps, _) = drive(&mut m, &mut t, 3, conns, conns.min(4), 1);
            assert_eq!(naps, 0, "{conns} clients");
        }
    }

    #[test]
    fn pipelined_loads_never_nap() {
        let mut t = Instant::now();
        let mut m = Moderator::new(t);
        for depth in [2, 16] {
            let (naps, _) = drive(&mut m, &mut t, 3, 50, 7, depth);
            assert_eq!(naps, 0, "{depth} commands per batch");
        }
    }

    #[test]
    fn batches_written_at_once_count_for_the_depth() {
        // Every flushed reply answers one command, but most batches were
        // pipelines written by their task.
        let mut t = Instant::now();
        let mut m = Moderator::new(t);
        for _ in 0..3 * 2000 {
            t += Duration::from_micros(50);
            let f = Flushed {
                batches: 7,
                fresh: 7,
            };
            let load = Load {
                batches: 8,
                commands: 7 + 16,
            };
            assert_eq!(m.after_round(f, load, t).0, None);
        }
    }

    #[test]
    fn a_round_of_most_clients_or_of_one_does_not_nap() {
        let mut t = Instant::now();
        let mut m = Moderator::new(t);
        drive(&mut m, &mut t, 2, 50, 7, 1);
        assert_eq!(after(&mut m, t, 1, 0).0, None);
        assert_eq!(after(&mut m, t, 26, 0).0, None);
        assert_eq!(after(&mut m, t, 25, 0).0, Some(NAP));
        assert_eq!(after(&mut m, t, 10, 0).0, Some(NAP));
        // A round cut short by tokio's budget may have left work ready.
        drive(&mut m, &mut t, 2, 500, 70, 1);
        assert_eq!(after(&mut m, t, ROUND_LIMIT - 1, 0).0, Some(NAP));
        assert_eq!(after(&mut m, t, ROUND_LIMIT, 0).0, None);
    }

    #[test]
    fn a_load_that_shrinks_stops_the_naps_an_epoch_later() {
        let mut t = Instant::now();
        let mut m = Moderator::new(t);
        drive(&mut m, &mut t, 2, 50, 7, 1);
        // Closes the epoch the wide load was in.
        t += EPOCH;
        assert!(after(&mut m, t, 7, 0).1);
        t += EPOCH;
        let (nap, new_epoch) = after(&mut m, t, 7, 7);
        assert!(new_epoch);
        assert_eq!(nap, None, "an epoch with 7 connections is not wide");
    }

    #[test]
    fn a_load_that_pauses_does_not_nap_when_it_resumes() {
        let mut t = Instant::now();
        let mut m = Moderator::new(t);
        drive(&mut m, &mut t, 2, 50, 7, 1);
        assert_eq!(after(&mut m, t, 4, 0).0, Some(NAP));
        // No round for a second, then 50 fresh connections at once: the
        // epoch that spans the pause is not taken as the load's shape.
        t += Duration::from_secs(1);
        let (nap, new_epoch) = after(&mut m, t, 4, 50);
        assert!(new_epoch);
        assert_eq!(nap, None);
    }
}
