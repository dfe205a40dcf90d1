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
//! gave 1.03-1.09× Redis's non-pipelined throughput at 0.89-1.02× its CPU
//! per request (`bench-vs-redis`, 5 rounds), against 0.93-1.01× without.
//!
//! It is not for every load. When the clients are few, or each waits for
//! its reply before doing anything else, the nap adds to every round trip:
//! 4 clients lost 40% of their throughput with a nap after every round, 8
//! lost 25%, 16 broke even. And a pipelined load keeps the worker busy
//! anyway; a nap there only idles it. Hence the conditions in
//! [`Moderator::after_round`]: at least [`MIN_CONNS`] connections served
//! in the last [`EPOCH`], about one command per batch, and a round that
//! served more than one connection but at most half of those, so the
//! clients had other replies to work on while the worker naps.

use std::time::{Duration, Instant};

/// How long a nap lasts. Longer naps gathered more requests per round
/// but left more of them waiting; 20 µs kept p50 latency within noise at
/// 50 clients.
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

/// What one flush of the worker's reply queue wrote
/// (`crate::deferred::flush_all`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Connections whose replies it wrote.
    pub batches: u64,
    /// Commands those replies answer.
    pub commands: u64,
    /// Connections among them not served before in this epoch.
    pub fresh: u64,
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

    /// After a round that left the worker with nothing to do: how long to
    /// nap before polling for input again, if at all. Returns true when an
    /// epoch ended (the caller starts a new one in the reply queue, so
    /// connections count as fresh again).
    pub fn after_round(&mut self, f: Flushed, now: Instant) -> (Option<Duration>, bool) {
        self.conns += f.fresh;
        self.batches += f.batches;
        self.commands += f.commands;
        let mut new_epoch = false;
        if now.duration_since(self.epoch_start) >= EPOCH {
            let depth = self.commands as f64 / self.batches.max(1) as f64;
            let wide = self.conns >= MIN_CONNS && depth < MAX_DEPTH;
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
        // A round that served half of the connections or more had the
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

    /// Runs `epochs` epochs of rounds that each serve `per_round` of
    /// `conns` connections with `depth` commands each; returns the naps
    /// taken in the last epoch and its rounds.
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
                let (nap, new_epoch) = m.after_round(
                    Flushed {
                        batches: per_round,
                        commands: per_round * depth,
                        fresh,
                    },
                    *t,
                );
                if new_epoch {
                    seen = 0;
                }
                rounds += 1;
                naps += u32::from(nap.is_some());
            }
        }
        (naps, rounds)
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
        let (naps, _) = drive(&mut m, &mut t, 3, 50, 7, 16);
        assert_eq!(naps, 0);
    }

    #[test]
    fn a_round_of_most_clients_or_of_one_does_not_nap() {
        let mut t = Instant::now();
        let mut m = Moderator::new(t);
        drive(&mut m, &mut t, 2, 50, 7, 1);
        let one = Flushed {
            batches: 1,
            commands: 1,
            fresh: 0,
        };
        assert_eq!(m.after_round(one, t).0, None);
        let most = Flushed {
            batches: 40,
            commands: 40,
            fresh: 0,
        };
        assert_eq!(m.after_round(most, t).0, None);
        let some = Flushed {
            batches: 10,
            commands: 10,
            fresh: 0,
        };
        assert_eq!(m.after_round(some, t).0, Some(NAP));
        // A round cut short by tokio's budget may have left work ready.
        drive(&mut m, &mut t, 2, 500, 70, 1);
        let cut = Flushed {
            batches: ROUND_LIMIT,
            commands: ROUND_LIMIT,
            fresh: 0,
        };
        assert_eq!(m.after_round(cut, t).0, None);
    }

    #[test]
    fn a_load_that_stops_stops_the_naps_an_epoch_later() {
        let mut t = Instant::now();
        let mut m = Moderator::new(t);
        drive(&mut m, &mut t, 2, 50, 7, 1);
        let seven = |fresh| Flushed {
            batches: 7,
            commands: 7,
            fresh,
        };
        // Closes the epoch the wide load was in.
        t += EPOCH;
        assert!(m.after_round(seven(0), t).1);
        t += EPOCH;
        let (nap, new_epoch) = m.after_round(seven(7), t);
        assert!(new_epoch);
        assert_eq!(nap, None, "an epoch with 7 connections is not wide");
    }
}
