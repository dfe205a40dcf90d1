//! `FAILOVER`: a primary hands its role to one of its replicas without
//! losing a write (Redis 7.0's coordinated failover, `replication.c`).
//!
//! 1. `FAILOVER [TO host port [FORCE]] [TIMEOUT ms]` pauses writes
//!    ([`Purpose::Failover`]) so the stream stops growing: state
//!    `waiting-for-sync`.
//! 2. [`cron`] watches the replicas' acknowledgements (each `REPLCONF ACK`
//!    wakes it, and it looks every 100 ms). Once the target, or with no
//!    target any replica, has acknowledged the whole stream, this server
//!    becomes a replica of it: state `failover-in-progress`.
//! 3. Its replication link then sends `PSYNC <replid> <offset> FAILOVER`
//!    ([`in_progress`] says so), which makes the target a primary that
//!    continues the same history. A `+CONTINUE` or `+FULLRESYNC` ends the
//!    failover ([`psync_answered`]), and the held writes run again, now
//!    refused by a replica; any other answer aborts it.
//!
//! On `TIMEOUT` the failover aborts, or with `FORCE` goes on with a target
//! that has not caught up. `FAILOVER ABORT` cancels it at any point; an
//! abort after step 2 makes this server a primary again.
//!
//! Redis runs all of this on one thread; here commands run on several.
//! Every state change happens under one lock with the role change it
//! implies, and before step 2 the cron takes every shard once, so a write
//! that passed the pause check just before the pause began has finished
//! and its effect is in the stream the replica must acknowledge. One that
//! passed the check but still waits for a shard behind a long command can
//! run after that barrier; it is the one window left.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::command::ctx::unix_ms;
use crate::pause::Purpose;
use crate::replica::ReplicaInfo;
use crate::shared::Shared;

/// Where a failover stands (Redis's `failover_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    None = 0,
    /// Writes are held until a replica has the whole stream.
    WaitForSync = 1,
    /// This server follows the target and asks it to take over.
    InProgress = 2,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            1 => State::WaitForSync,
            2 => State::InProgress,
            _ => State::None,
        }
    }

    /// The name `INFO replication` shows (`master_failover_state`).
    pub fn name(self) -> &'static str {
        match self {
            State::None => "no-failover",
            State::WaitForSync => "waiting-for-sync",
            State::InProgress => "failover-in-progress",
        }
    }
}

/// What `FAILOVER` asked for.
#[derive(Debug, Default)]
struct Plan {
    /// The replica to hand over to; `None` until one has caught up when
    /// the command named none.
    target: Option<(String, u16)>,
    /// Unix ms at which waiting ends (0: no `TIMEOUT`).
    end_ms: i64,
    force: bool,
}

/// The failover state shared by the command, the cron and the link. Every
/// change of state happens with `plan` held, together with the role change
/// it implies, so a concurrent `FAILOVER ABORT` sees either side of it.
#[derive(Default)]
pub struct Failover {
    state: AtomicU8,
    plan: Mutex<Plan>,
    /// Wakes [`cron`] when a failover starts.
    wake: Notify,
}

impl Failover {
    /// The current state.
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    fn set(&self, s: State) {
        self.state.store(s as u8, Ordering::Release);
    }
}

/// Runs `f` (a role change: `REPLICAOF`) unless a failover is under way,
/// with the failover lock held so none starts meanwhile; `None` when one
/// is.
pub fn unless_failing_over<R>(srv: &Shared, f: impl FnOnce() -> R) -> Option<R> {
    let _plan = srv.failover.plan.lock();
    (srv.failover.state() == State::None).then(f)
}

/// Whether the replication link must add `FAILOVER` to its `PSYNC`.
pub fn in_progress(srv: &Shared) -> bool {
    srv.failover.state() == State::InProgress
}

/// Starts a failover (holds writes back and wakes the cron), or says why
/// it cannot, in Redis's words; checked and started under one lock.
pub fn start(
    srv: &Shared,
    target: Option<(&str, i64)>,
    timeout_ms: i64,
    force: bool,
) -> Result<(), &'static str> {
    let mut plan = srv.failover.plan.lock();
    if let Some(why) = refusal(srv, target, timeout_ms, force) {
        return Err(why);
    }
    *plan = Plan {
        target: target.map(|(h, p)| (h.to_string(), p as u16)),
        end_ms: if timeout_ms > 0 {
            unix_ms() + timeout_ms
        } else {
            0
        },
        force,
    };
    match &plan.target {
        Some((h, p)) => tracing::info!("FAILOVER requested to {h}:{p}."),
        None => tracing::info!("FAILOVER requested to any replica."),
    }
    srv.failover.set(State::WaitForSync);
    srv.pause.hold_writes(&srv.store, Purpose::Failover, true);
    drop(plan);
    srv.failover.wake.notify_one();
    Ok(())
}

/// Why `FAILOVER` cannot start, in Redis's words.
fn refusal(
    srv: &Shared,
    target: Option<(&str, i64)>,
    timeout_ms: i64,
    force: bool,
) -> Option<&'static str> {
    if srv.failover.state() != State::None {
        return Some("FAILOVER already in progress.");
    }
    if srv.upstream.is_replica.load(Ordering::Relaxed) {
        return Some("FAILOVER is not valid when server is a replica.");
    }
    if srv.replicas.all().is_empty() {
        return Some("FAILOVER requires connected replicas.");
    }
    if force && (timeout_ms == 0 || target.is_none()) {
        return Some("FAILOVER with force option requires both a timeout and target HOST and IP.");
    }
    if let Some((host, port)) = target {
        match find(srv, host, port) {
            None => return Some("FAILOVER target HOST and PORT is not a replica."),
            Some(r) if !r.online() => return Some("FAILOVER target replica is not online."),
            Some(_) => {}
        }
    }
    None
}

/// The replica serving clients at `host:port` (Redis's
/// `findReplica`: the announced or peer address, and the listening port).
fn find(srv: &Shared, host: &str, port: i64) -> Option<Arc<ReplicaInfo>> {
    srv.replicas
        .all()
        .into_iter()
        .find(|r| r.ip.eq_ignore_ascii_case(host) && i64::from(r.port) == port)
}

/// Ends the failover, aborted or done, and lets writes run again (Redis's
/// `clearFailoverState`); `plan` is the held lock.
fn clear(srv: &Shared, plan: &mut Plan) {
    *plan = Plan::default();
    srv.failover.set(State::None);
    srv.pause.hold_writes(&srv.store, Purpose::Failover, false);
}

/// Aborts a failover, if one is under way (Redis's `abortFailover`). Once
/// this server follows the target it becomes a primary again. False when
/// there was none.
pub fn abort(srv: &Shared, why: &str) -> bool {
    let mut plan = srv.failover.plan.lock();
    abort_locked(srv, &mut plan, why)
}

fn abort_locked(srv: &Shared, plan: &mut Plan, why: &str) -> bool {
    let state = srv.failover.state();
    if state == State::None {
        return false;
    }
    match &plan.target {
        Some((h, p)) => tracing::info!("FAILOVER to {h}:{p} aborted: {why}"),
        None => tracing::info!("FAILOVER to any replica aborted: {why}"),
    }
    if state == State::InProgress {
        crate::upstream::unset_master(srv);
    }
    clear(srv, plan);
    true
}

/// The target's answer to `PSYNC ... FAILOVER`: `Some(true)` for a
/// `+CONTINUE` or a `+FULLRESYNC` (the target is now the primary),
/// `Some(false)` for any other, `None` when none came (the connection
/// failed). All but the first abort, as Redis's `syncWithMaster` does.
pub fn psync_answered(srv: &Shared, answer: Option<bool>) {
    let mut plan = srv.failover.plan.lock();
    if srv.failover.state() != State::InProgress {
        return;
    }
    let why = match answer {
        Some(true) => return clear(srv, &mut plan),
        Some(false) => "Failover target rejected psync request",
        None => "Failover target did not answer the psync request",
    };
    abort_locked(srv, &mut plan, why);
}

/// Checks a waiting failover (Redis's `updateFailoverStatus`): the
/// timeout, then whether the target (or any replica) has acknowledged the
/// whole stream; if so, follows it.
fn update(srv: &Shared) {
    if srv.failover.state() != State::WaitForSync {
        return;
    }
    // A write that passed the pause check before the pause began may still
    // be running on another worker. Once some replica has acknowledged the
    // stream's end, wait for every shard, and go on only if the stream has
    // not grown meanwhile. Before the plan lock: a `FAILOVER` inside
    // `EXEC` holds every shard and then takes that lock.
    let end = srv.repl.offset();
    let synced = |r: &ReplicaInfo| r.online() && r.ack_offset.load(Ordering::Relaxed) == end;
    let stable = srv.replicas.all().iter().any(|r| synced(r)) && {
        let mut all = ferrite_storage::LockSet::new();
        all.add_all();
        srv.store.with_locked(&all, || srv.repl.offset()) == end
    };
    let mut plan = srv.failover.plan.lock();
    if srv.failover.state() != State::WaitForSync {
        return;
    }
    if plan.end_ms != 0 && plan.end_ms <= unix_ms() {
        if plan.force {
            if let Some((host, port)) = plan.target.clone() {
                tracing::info!("FAILOVER to {host}:{port} time out exceeded, failing over.");
                srv.failover.set(State::InProgress);
                crate::upstream::set_master(srv, &host, port);
                return;
            }
        }
        abort_locked(srv, &mut plan, "Replica never caught up before timeout");
        return;
    }
    if !stable || srv.repl.offset() != end {
        return;
    }
    let caught_up = match &plan.target {
        Some((host, port)) => find(srv, host, i64::from(*port)).is_some_and(|r| synced(&r)),
        None => match srv.replicas.all().into_iter().find(|r| synced(r)) {
            Some(r) => {
                plan.target = Some((r.ip.clone(), r.port));
                true
            }
            None => false,
        },
    };
    if !caught_up {
        return;
    }
    let Some((host, port)) = plan.target.clone() else {
        return;
    };
    srv.failover.set(State::InProgress);
    tracing::info!("Failover target {host}:{port} is synced, failing over.");
    crate::upstream::set_master(srv, &host, port);
}

/// Runs for the server's life: while a failover waits, checks it on
/// every acknowledgement from a replica and every 100 ms.
pub async fn cron(srv: Arc<Shared>) {
    loop {
        if srv.shutting_down.load(Ordering::Relaxed) {
            return;
        }
        if srv.failover.state() != State::WaitForSync {
            // Woken by `start`; the timeout only rechecks for shutdown.
            tokio::select! {
                _ = srv.failover.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        let acks = crate::replica::ACKS.notified();
        update(&srv);
        tokio::select! {
            _ = acks => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}
