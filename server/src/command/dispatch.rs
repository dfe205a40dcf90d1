//! The dispatcher: lookup, arity and auth checks, the call, its counters,
//! the slow log, `MONITOR` feed and `CLIENT REPLY` handling; between
//! `MULTI` and `EXEC`, queueing instead of calling (Redis's
//! `processCommand`).

use std::sync::atomic::Ordering;

use bytes::Bytes;
use ferrite_protocol::ReplyBuf;

use super::ctx::{unix_us, Ctx};
use super::error::CmdError;
use super::rename;
use super::table::{flag, Command};
use crate::client::{Client, Queued, ReplyMode};
use crate::shared::Shared;
use crate::stats::SlowEntry;
use crate::tracking;

/// Refuses a command before it runs. Inside `MULTI` this dooms the
/// transaction, and a refused `EXEC` ends it (Redis's `rejectCommand`).
fn reject(srv: &Shared, client: &mut Client, out: &mut ReplyBuf, cmd: Option<&Command>, msg: &str) {
    if let Some(c) = cmd {
        c.stats.rejected_calls.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(m) = client.multi.as_mut() {
        m.aborted = true;
        if cmd.is_some_and(|c| c.name() == "exec") {
            crate::commands::multi::discard_transaction(srv, client);
            let msg = format!("EXECABORT Transaction discarded because of: {msg}");
            srv.stats.count_error(msg.as_bytes());
            out.error(msg.as_bytes());
            return;
        }
    }
    srv.stats.count_error(msg.as_bytes());
    out.error(msg.as_bytes());
}

/// The commands that act at once inside `MULTI` instead of being queued.
fn runs_inside_multi(cmd: &Command) -> bool {
    matches!(
        cmd.name(),
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

fn quoted_args(argv: &[Bytes]) -> String {
    let mut s = String::new();
    for a in argv.iter().skip(1) {
        if s.len() >= 128 {
            break;
        }
        let room = 128 - s.len();
        let text = String::from_utf8_lossy(&a[..a.len().min(room)]).into_owned();
        s.push('\'');
        s.push_str(&text);
        s.push_str("' ");
    }
    s
}

/// Runs one command and appends its reply to `out`. When `CLIENT PAUSE`
/// holds it back, nothing runs and `client.postponed` is set: the caller
/// waits for the pause to change and calls again with the same command.
pub fn execute(srv: &Shared, client: &mut Client, out: &mut ReplyBuf, argv: &[Bytes]) {
    let reply_start = out.len();
    let mode = client.reply_mode;
    // CLIENT REPLY: OFF drops every reply, SKIP drops the next command's.
    if client.reply_mode == ReplyMode::SkipNext {
        client.reply_mode = ReplyMode::Skipping;
    }
    let skipping = client.reply_mode == ReplyMode::Skipping;
    // While anyone tracks keys, invalidations for this client's own
    // connection are collected on this thread (see `tracking`).
    let tracking = tracking::enter(&srv.tracking, client.id());
    run(srv, client, out, argv, tracking);
    if client.postponed {
        // A `SKIP` applies when the command runs.
        client.reply_mode = mode;
    }
    // A skipped `CLIENT REPLY ON` ends the skip before it replies, so its
    // `OK` is sent, as Redis clears `CLIENT_REPLY_SKIP` there.
    if client.reply_mode == ReplyMode::Off || (skipping && client.reply_mode != ReplyMode::On) {
        out.buf.truncate(reply_start);
    }
    if tracking {
        if let Some(before) = tracking::take_before() {
            client.push.get_mut().raw(&before);
        }
    }
    // Push frames survive CLIENT REPLY OFF (Redis's CLIENT_PUSHING).
    merge_push(client, out, reply_start);
    if tracking {
        after_command_tracking(client, out);
    }
    if skipping && client.reply_mode == ReplyMode::Skipping {
        client.reply_mode = ReplyMode::On;
    }
    // Serve clients blocked on keys this command made ready (Redis's
    // `handleClientsBlockedOnKeys` after `call()`).
    if srv.blocking.has_ready() {
        crate::commands::list::serve_ready(srv);
    }
    if tracking {
        srv.tracking.broadcast();
    }
}

/// After a command while anyone tracks: the invalidations the command
/// caused for this client's own keys follow its reply (Redis's
/// `trackingHandlePendingKeyInvalidations`), and `CLIENT CACHING` lapses
/// unless in `MULTI` or the command was another `CLIENT` subcommand.
#[cold]
fn after_command_tracking(client: &mut Client, out: &mut ReplyBuf) {
    if let Some(after) = tracking::leave() {
        out.raw(&after);
    }
    let h = &client.handle;
    if h.tracking.load(Ordering::Relaxed) & tracking::flag::CACHING != 0
        && client.multi.is_none()
        && !client.postponed
        && !h.last_cmd_name().starts_with("client|")
    {
        h.tracking
            .fetch_and(!tracking::flag::CACHING, Ordering::Relaxed);
    }
}

fn run(srv: &Shared, client: &mut Client, out: &mut ReplyBuf, argv: &[Bytes], tracking: bool) {
    // One clock read gives the command its time and starts its timing,
    // as Redis's `call()` reuses its `ustime()` (a read costs ~30 ns here,
    // a tenth of a pipelined command's CPU with three of them).
    let start_us = unix_us();
    let now = start_us / 1000;
    client
        .handle
        .last_interaction_ms
        .store(now, Ordering::Relaxed);
    // The primary's stream and the AOF also use real names (`rename`).
    let found = if client.primary {
        rename::lookup_internal(&argv[0])
    } else {
        rename::lookup(&argv[0])
    };
    let Some(mut cmd) = found else {
        let msg = format!(
            "ERR unknown command '{}', with args beginning with: {}",
            String::from_utf8_lossy(&argv[0][..argv[0].len().min(128)]),
            quoted_args(argv)
        );
        return reject(srv, client, out, None, &msg);
    };
    // A container runs a subcommand when one is named; one that also has
    // its own handler (`COMMAND`) runs it when called alone.
    if cmd.handler.is_none() || (argv.len() >= 2 && !cmd.subcommands.is_empty()) {
        if argv.len() < 2 {
            return reject(
                srv,
                client,
                out,
                Some(cmd),
                &CmdError::WrongArity(cmd.name().into()).to_string(),
            );
        }
        match cmd.subcommand(&argv[1]) {
            Some(s) => cmd = s,
            None => {
                let msg = format!(
                    "ERR unknown subcommand '{}'. Try {} HELP.",
                    String::from_utf8_lossy(&argv[1][..argv[1].len().min(128)]),
                    cmd.name().to_ascii_uppercase()
                );
                return reject(srv, client, out, Some(cmd), &msg);
            }
        }
    }
    // As Redis's `c->lastcmd`, set before the checks that may refuse it.
    client.handle.last_cmd.store(cmd.id, Ordering::Relaxed);
    if !cmd.arity_ok(argv.len()) {
        return reject(
            srv,
            client,
            out,
            Some(cmd),
            &CmdError::WrongArity(cmd.name().into()).to_string(),
        );
    }
    if cmd.has(flag::ADMIN) {
        if let Some(msg) =
            crate::commands::server::protected_refusal(srv, cmd.name(), &client.handle.addr)
        {
            return reject(srv, client, out, Some(cmd), msg);
        }
    }
    if !client.authenticated && !cmd.has(flag::NO_AUTH) && srv.acl.default_user_needs_auth() {
        return reject(srv, client, out, Some(cmd), &CmdError::NoAuth.to_string());
    }
    if client.multi.is_some() && cmd.has(flag::NO_MULTI) && !runs_inside_multi(cmd) {
        return reject(
            srv,
            client,
            out,
            Some(cmd),
            "ERR Command not allowed inside a transaction",
        );
    }
    // One atomic load for a user whose rules allow everything.
    if let Some(user) = client.user.as_ref().filter(|u| !u.open()) {
        let context = client.acl_context();
        let rules = user.cached(&mut client.acl_cache);
        if let Err(denied) =
            crate::acl::enforce(srv, &client.handle, user, rules, context, cmd, argv)
        {
            return reject(srv, client, out, Some(cmd), &denied.message(cmd));
        }
    }
    if client.script_busy && !cmd.has(flag::ALLOW_BUSY) {
        return reject(srv, client, out, Some(cmd), srv.scripts.busy_error());
    }
    if client.pubsub && !out.resp3 && !allowed_in_pubsub(cmd) {
        let msg = format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            cmd.name()
        );
        return reject(srv, client, out, Some(cmd), &msg);
    }
    // Clients first, then keys, as Redis's `processCommand`: the last
    // command may have grown some client's buffers.
    if crate::client_mem::evict_clients(srv) && client.handle.killed.load(Ordering::Relaxed) {
        // Evicted itself: the command does not run.
        return;
    }
    // A replica ignores `maxmemory` (Redis's `replica-ignore-maxmemory`):
    // its primary's stream decides what it holds.
    if srv.hot.maxmemory.load(Ordering::Relaxed) != 0
        && !srv.ignores_maxmemory()
        && !client.primary
        && out_of_memory(srv, client, cmd)
    {
        return reject(srv, client, out, Some(cmd), crate::evict::OOM_ERROR);
    }
    if srv.hot.stop_writes_on_bgsave_error.load(Ordering::Relaxed)
        && !srv.persist.last_bgsave_ok.load(Ordering::Relaxed)
        && !client.primary
        && (is_write(client, cmd) || cmd.name() == "ping")
    {
        return reject(srv, client, out, Some(cmd), MISCONF_ERROR);
    }
    // The AOF's last write failed (Redis's `DISK_ERROR_TYPE_AOF`).
    if !srv.aof.last_write_ok.load(Ordering::Relaxed)
        && srv.repl.aof_on()
        && !client.primary
        && (is_write(client, cmd) || cmd.name() == "ping")
    {
        let msg = crate::aof::write_error(srv);
        return reject(srv, client, out, Some(cmd), &msg);
    }
    if !client.primary {
        if let Some(msg) = replication_refusal(srv, client, cmd) {
            return reject(srv, client, out, Some(cmd), msg);
        }
    }
    if tracking {
        // Keep the tracking table within `tracking-table-max-keys`
        // (invalidations for this client precede this reply).
        srv.tracking.limit();
    }
    // Replicas' links are never paused; the primary's link is.
    let pause = srv.pause.active(&srv.store, now);
    if pause != crate::pause::Kind::Off
        && !client.handle.replica.load(Ordering::Relaxed)
        && held_by_pause(srv, client, cmd, argv, pause)
    {
        client.postponed = true;
        return;
    }
    if client.multi.is_some() && !runs_inside_multi(cmd) {
        if let Some(m) = client.multi.as_mut() {
            // A doomed transaction keeps nothing (as Redis).
            if !m.aborted {
                // As Redis's `argv_len_sums`: the bytes plus a handle per argument.
                m.argv_bytes += argv
                    .iter()
                    .map(|a| a.len() + std::mem::size_of::<Bytes>())
                    .sum::<usize>();
                m.queue.push(Queued {
                    cmd,
                    argv: argv.to_vec(),
                });
                client
                    .handle
                    .multi_len
                    .store(m.queue.len() as i64, Ordering::Relaxed);
            }
        }
        out.simple(b"QUEUED");
        return;
    }
    // EXEC reaches MONITOR after the commands it ran, as in Redis.
    let is_exec = cmd.name() == "exec";
    if !is_exec {
        feed_monitor(srv, client, cmd, argv);
    }
    if tracking {
        tracking::set_in_call(true);
    }
    call(srv, client, out, cmd, argv, now, start_us);
    if tracking {
        tracking::set_in_call(false);
    }
    if is_exec {
        feed_monitor(srv, client, cmd, argv);
    }
}

/// Whether `CLIENT PAUSE` holds this command back (Redis's
/// `BLOCKED_POSTPONE` in `processCommand`): every command under `ALL`;
/// under `WRITE`, writes and commands that may replicate, and an `EXEC`
/// that queued one. A command queued inside `MULTI` counts as itself.
#[cold]
fn held_by_pause(
    srv: &Shared,
    client: &Client,
    cmd: &Command,
    argv: &[Bytes],
    pause: crate::pause::Kind,
) -> bool {
    match pause {
        crate::pause::Kind::Off => false,
        crate::pause::Kind::All => true,
        crate::pause::Kind::Write => {
            may_replicate(srv, cmd, argv)
                || (cmd.name() == "exec"
                    && client.multi.as_ref().is_some_and(|m| {
                        m.queue.iter().any(|q| may_replicate(srv, q.cmd, &q.argv))
                    }))
        }
    }
}

/// A write or `MAY_REPLICATE` command; a script decides by the flags it
/// declares, when it declares any (Redis's `getCommandFlags`).
fn may_replicate(srv: &Shared, cmd: &Command, argv: &[Bytes]) -> bool {
    if let Some(writes) = crate::scripting::declared_writes(srv, cmd.name(), argv) {
        return writes;
    }
    cmd.has(flag::WRITE | flag::MAY_REPLICATE)
}

/// Redis's refusal of writes (and `PING`) after a failed background save
/// while `stop-writes-on-bgsave-error` is on.
pub const MISCONF_ERROR: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// A write, or an `EXEC` that queued one (Redis's `is_write_command`).
fn is_write(client: &Client, cmd: &Command) -> bool {
    cmd.has(flag::WRITE)
        || matches!((&client.multi, cmd.name()), (Some(m), "exec") if m.queue.iter().any(|q| q.cmd.has(flag::WRITE)))
}

/// `-NOREPLICAS`, `-READONLY` and `-MASTERDOWN`, in Redis's
/// `processCommand` order. `EXEC` counts as a write if it queued one, and
/// as refused on a stale replica if it queued a command without the
/// `stale` flag: the server's state may have changed since they were queued.
#[inline]
fn replication_refusal(srv: &Shared, client: &Client, cmd: &Command) -> Option<&'static str> {
    let replica = srv.upstream.is_replica.load(Ordering::Relaxed);
    let min_replicas = srv.hot.min_replicas_to_write.load(Ordering::Relaxed) != 0;
    if !replica && !min_replicas {
        return None;
    }
    let write = is_write(client, cmd);
    let deny_stale = !cmd.has(flag::STALE)
        || matches!((&client.multi, cmd.name()), (Some(m), "exec") if m.queue.iter().any(|q| !q.cmd.has(flag::STALE)));
    if write && !srv.enough_good_replicas() {
        return Some("NOREPLICAS Not enough good replicas to write.");
    }
    if replica && write && srv.hot.replica_read_only.load(Ordering::Relaxed) {
        return Some("READONLY You can't write against a read only replica.");
    }
    if replica
        && deny_stale
        && !srv.hot.replica_serve_stale_data.load(Ordering::Relaxed)
        && srv.upstream.link_down()
    {
        return Some(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        );
    }
    None
}

/// Frees memory by the eviction policy before a command runs and says
/// whether the command must be refused for lack of it (Redis's
/// `processCommand`): `denyoom` commands, an `EXEC` that queued one, and
/// anything queued inside `MULTI` (queueing itself takes memory).
#[cold]
fn out_of_memory(srv: &Shared, client: &Client, cmd: &Command) -> bool {
    if crate::evict::perform_evictions(srv) != crate::evict::Outcome::Fail {
        return false;
    }
    match (&client.multi, cmd.name()) {
        (Some(m), "exec") => m.queue.iter().any(|q| q.cmd.has(flag::DENYOOM)),
        (Some(_), "discard" | "quit" | "reset") => false,
        (Some(_), _) => true,
        (None, _) => cmd.has(flag::DENYOOM),
    }
}

/// Moves the push frames a command produced (`Client::push`) in front of
/// its reply, which starts at `at`. Costs one length check when empty.
#[inline]
pub(crate) fn merge_push(client: &mut Client, out: &mut ReplyBuf, at: usize) {
    let push = client.push.get_mut();
    if push.buf.is_empty() {
        return;
    }
    if at == out.buf.len() {
        out.buf.extend_from_slice(&push.buf);
    } else {
        let tail = out.buf.split_off(at);
        out.buf.extend_from_slice(&push.buf);
        out.buf.unsplit(tail);
    }
    push.buf.clear();
}

/// The commands a RESP2 client with subscriptions may still run.
fn allowed_in_pubsub(cmd: &Command) -> bool {
    matches!(
        cmd.name(),
        "ping"
            | "subscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "sunsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "quit"
            | "reset"
    )
}

/// Sends a command to `MONITOR` clients unless it is hidden from them,
/// with its secrets redacted.
pub(crate) fn feed_monitor(srv: &Shared, client: &Client, cmd: &Command, argv: &[Bytes]) {
    if srv.monitors_active.load(Ordering::Relaxed) && !cmd.has(flag::SKIP_MONITOR | flag::ADMIN) {
        match super::redact::redacted(argv) {
            Some(shown) => srv.feed_monitors(client, &shown),
            None => srv.feed_monitors(client, argv),
        }
    }
}

/// Runs a checked command: the handler, its counters, the slow log and the
/// latency monitor. `EXEC` calls it for each queued command. Inlined so the
/// common path pays no extra call. `now` (ms) is the time the command sees,
/// `start_us` when it started ([`crate::clock::unix_us`]): its duration is
/// measured on the wall clock in whole µs, as Redis's `ustime()`.
#[inline(always)]
pub(crate) fn call(
    srv: &Shared,
    client: &mut Client,
    out: &mut ReplyBuf,
    cmd: &'static Command,
    argv: &[Bytes],
    now: i64,
    start_us: i64,
) {
    let Some(handler) = cmd.handler else { return };
    let fed = crate::propagate::last_fed();
    let mut ctx = Ctx {
        srv,
        client,
        out,
        now,
        cmd,
    };
    // A read by a client tracking keys remembers them (Redis's `call()`).
    let result = if cmd.has(flag::READONLY)
        && tracking::remembers(ctx.client.handle.tracking.load(Ordering::Relaxed))
    {
        tracking::call_remembering(&mut ctx, handler, argv)
    } else {
        handler(&mut ctx, argv)
    };
    let took_ns = since(start_us);
    let fed_now = crate::propagate::last_fed();
    if fed_now != fed {
        ctx.client.woff = fed_now;
    }
    if let Err(e) = result {
        cmd.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
        let msg = e.to_string();
        srv.stats.count_error(msg.as_bytes());
        ctx.out.error(msg.as_bytes());
    }
    if ctx.client.blocked.is_some() {
        // A command that blocked counts once it is served or times out,
        // its wait included (Redis's `updateStatsOnUnblock`).
        ctx.client.blocked_stats = Some(BlockedStats {
            cmd,
            start_us,
            argv: argv.to_vec(),
        });
        return;
    }
    record(srv, ctx.client, cmd, argv, took_ns, now);
}

/// A blocked command's stats, recorded when it completes.
pub struct BlockedStats {
    cmd: &'static Command,
    /// When it started, [`crate::clock::unix_us`].
    start_us: i64,
    argv: Vec<Bytes>,
}

/// Records a blocked command that was served, timed out or was unblocked:
/// its call, its total duration, the slow log.
pub fn record_unblocked(srv: &Shared, client: &Client, b: BlockedStats) {
    let took_ns = since(b.start_us);
    record(srv, client, b.cmd, &b.argv, took_ns, super::ctx::unix_ms());
}

/// Nanoseconds (whole µs) since `start_us`; never negative, should the
/// wall clock step back.
#[inline]
fn since(start_us: i64) -> u64 {
    (unix_us() - start_us).max(0) as u64 * 1000
}

/// A call's counters, slow log entry and latency sample.
#[inline(always)]
fn record(
    srv: &Shared,
    client: &Client,
    cmd: &'static Command,
    argv: &[Bytes],
    took_ns: u64,
    now: i64,
) {
    let took = took_ns / 1000;
    crate::counters::command(cmd.id, took_ns);
    let threshold = srv.hot.slowlog_slower_than.load(Ordering::Relaxed);
    if threshold >= 0 && took >= threshold as u64 && !cmd.has(flag::SKIP_SLOWLOG) {
        let entry = SlowEntry {
            id: 0,
            time_s: unix_us() / 1_000_000,
            duration_us: took,
            args: super::redact::redacted(argv).unwrap_or_else(|| argv.to_vec()),
            addr: client.handle.addr.clone(),
            name: client.handle.name.lock().clone().unwrap_or_default(),
        };
        let max = srv.hot.slowlog_max_len.load(Ordering::Relaxed);
        srv.slowlog.lock().push(entry, max as usize);
    }
    let lat = srv.hot.latency_threshold_ms.load(Ordering::Relaxed);
    if lat > 0 && took / 1000 >= lat as u64 {
        let ev = if cmd.has(flag::FAST) {
            "fast-command"
        } else {
            "command"
        };
        srv.latency.lock().add(ev, now / 1000, took / 1000);
    }
}
