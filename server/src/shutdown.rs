//! Shutting down with replicas attached (Redis 7.0's `shutdown-timeout`):
//! `SHUTDOWN` without `NOW`, and `SIGTERM`/`SIGINT`, first give lagging
//! replicas up to `shutdown-timeout` seconds to acknowledge the whole
//! stream, with writes paused meanwhile, so a failover loses nothing; then
//! the save and the exit happen as before ([`crate::persist`]).
//!
//! While it waits, the `SHUTDOWN` clients are blocked, `SHUTDOWN ABORT`
//! cancels it (they get Redis's error), and the server cron finishes it
//! when every replica acknowledged or the time is up (Redis's
//! `isShutdownInitiated` check in `serverCron`). A failed save aborts it
//! the same way, keeping the server up.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::command::ctx::unix_ms;
use crate::persist::ShutdownFlags;
use crate::shared::Shared;

/// The reply blocked `SHUTDOWN` clients get when it fails or is aborted.
const FAILED: &[u8] = b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n";

/// A shutdown under way: waiting for its replicas, or saving.
struct Pending {
    flags: ShutdownFlags,
    deadline_ms: i64,
    /// Blocked `SHUTDOWN` clients: an error reply if it fails; dropped
    /// (their connections close) when the server stops.
    waiters: Vec<oneshot::Sender<Bytes>>,
    /// The save has begun: too late to abort, and what joins waits for it.
    finishing: bool,
    /// A signal asked for it (a second `SIGINT` then exits at once).
    signalled: bool,
}

/// Whether a shutdown is under way (Redis's `shutdown_mstime`).
#[derive(Default)]
pub struct State {
    pending: Mutex<Option<Pending>>,
}

/// How starting a shutdown went.
pub enum Outcome {
    /// Saved as asked and stopping: the caller lets the server exit.
    Stopping,
    /// Under way; a `SHUTDOWN` client waits on the receiver.
    Waiting(Option<oneshot::Receiver<Bytes>>),
    /// The save failed; the server stays up.
    Failed,
}

/// Every replica acknowledged the whole stream (`isReadyToShutdown`).
fn replicas_caught_up(srv: &Shared) -> bool {
    let end = srv.repl.offset();
    srv.replicas
        .all()
        .iter()
        .all(|r| r.ack_offset.load(Ordering::Relaxed) >= end)
}

/// Starts a shutdown (Redis's `prepareForShutdown`): at once with `NOW`,
/// no replica, `shutdown-timeout 0` or replicas in step; otherwise it
/// waits for them, writes paused. A shutdown already under way is joined,
/// whatever the new flags. `reply` asks for a receiver (a `SHUTDOWN`
/// client); `signal` says a signal asked.
pub fn initiate(srv: &Shared, flags: ShutdownFlags, reply: bool, signal: bool) -> Outcome {
    // Read before the lock: INFO reads the configuration, then this state.
    let timeout_s: i64 = srv
        .config
        .read()
        .value("shutdown-timeout")
        .parse()
        .unwrap_or(10);
    let wait = !flags.now && timeout_s > 0 && !replicas_caught_up(srv);
    let paused = srv.paused() != crate::pause::Kind::Off;
    let mut pending = srv.shutdown_state.pending.lock();
    let (tx, rx) = oneshot::channel();
    let rx = reply.then_some(rx);
    if let Some(p) = pending.as_mut() {
        p.waiters.extend(reply.then_some(tx));
        p.signalled |= signal;
        return Outcome::Waiting(rx);
    }
    *pending = Some(Pending {
        flags,
        deadline_ms: unix_ms().saturating_add(timeout_s.saturating_mul(1000)),
        waiters: if reply { vec![tx] } else { Vec::new() },
        finishing: !wait,
        signalled: signal,
    });
    if wait {
        // Under the lock, so an abort cannot slip between the two. The
        // offset stands still under a pause, so no GETACK then (Redis).
        if !paused {
            srv.repl.feed_global(&[b"REPLCONF", b"GETACK", b"*"]);
        }
        srv.pause
            .hold_writes(&srv.store, crate::pause::Purpose::Shutdown, true);
        drop(pending);
        crate::process::stopping(&srv.config.read());
        tracing::info!("Waiting for replicas before shutting down.");
        return Outcome::Waiting(rx);
    }
    drop(pending);
    crate::process::stopping(&srv.config.read());
    if finish(srv, flags) {
        Outcome::Stopping
    } else {
        if let Some(p) = srv.shutdown_state.pending.lock().take() {
            cancelled(srv, p);
        }
        Outcome::Failed
    }
}

/// Saves as `flags` say and stops the server (`finishShutdown`); false
/// when the save failed and the server stays up.
fn finish(srv: &Shared, flags: ShutdownFlags) -> bool {
    let end = srv.repl.offset();
    let replicas = srv.replicas.all();
    if !replicas.is_empty() {
        let now = unix_ms();
        let mut in_sync = 0;
        for r in &replicas {
            let acked = r.ack_offset.load(Ordering::Relaxed);
            if acked >= end {
                in_sync += 1;
                continue;
            }
            let lag_s = (now - r.ack_ms.load(Ordering::Relaxed)) / 1000;
            tracing::warn!(
                "Lagging replica {}:{} reported offset {} behind master, lag={lag_s}, state=online.",
                r.ip,
                r.port,
                end - acked
            );
        }
        tracing::info!(
            "{in_sync} of {} replicas are in sync when shutting down.",
            replicas.len()
        );
    }
    if crate::persist::save_for_shutdown(srv, flags).is_err() {
        tracing::warn!(
            "Errors trying to shut down the server. Check the logs for more information."
        );
        return false;
    }
    srv.request_shutdown();
    true
}

/// `SHUTDOWN ABORT`: cancels a waiting shutdown; false when none waits
/// (or its save has begun).
pub fn abort(srv: &Shared) -> bool {
    let mut pending = srv.shutdown_state.pending.lock();
    if pending.as_ref().is_none_or(|p| p.finishing) {
        return false;
    }
    if let Some(p) = pending.take() {
        cancelled(srv, p);
    }
    tracing::warn!("Shutdown manually aborted.");
    true
}

/// Writes resume and the blocked clients get the error
/// (`abortShutdown`).
fn cancelled(srv: &Shared, p: Pending) {
    srv.pause
        .hold_writes(&srv.store, crate::pause::Purpose::Shutdown, false);
    for w in p.waiters {
        let _ = w.send(Bytes::from_static(FAILED));
    }
}

/// From the server cron: finishes a waiting shutdown once every replica
/// acknowledged or the time is up.
pub fn cron(srv: &Shared) {
    let flags = {
        let mut pending = srv.shutdown_state.pending.lock();
        match pending.as_mut() {
            Some(p) if !p.finishing && (unix_ms() >= p.deadline_ms || replicas_caught_up(srv)) => {
                p.finishing = true;
                p.flags
            }
            _ => return,
        }
    };
    if !finish(srv, flags) {
        if let Some(p) = srv.shutdown_state.pending.lock().take() {
            cancelled(srv, p);
        }
    }
}

/// `SHUTDOWN` clients blocked on the shutdown under way (counted in
/// `blocked_clients`, as Redis's `BLOCKED_SHUTDOWN`).
pub fn blocked_clients(srv: &Shared) -> usize {
    srv.shutdown_state
        .pending
        .lock()
        .as_ref()
        .map_or(0, |p| p.waiters.iter().filter(|w| !w.is_closed()).count())
}

/// Milliseconds left before a waiting shutdown gives up on its replicas
/// (INFO's `shutdown_in_milliseconds`).
pub fn remaining_ms(srv: &Shared) -> Option<i64> {
    let pending = srv.shutdown_state.pending.lock();
    pending
        .as_ref()
        .filter(|p| !p.finishing)
        .map(|p| (p.deadline_ms - unix_ms()).max(0))
}

/// Whether a signal started the shutdown under way (a second `SIGINT`
/// then exits at once, as Redis's "You insist... exiting now.").
pub fn signalled(srv: &Shared) -> bool {
    srv.shutdown_state
        .pending
        .lock()
        .as_ref()
        .is_some_and(|p| p.signalled)
}
