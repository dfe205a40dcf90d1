//! Transactions: `MULTI EXEC DISCARD WATCH UNWATCH`, after Redis 7.0's
//! `multi.c`.
//!
//! Between `MULTI` and `EXEC` the dispatcher checks and queues commands
//! (see `command::dispatch`). `EXEC` locks, in the global lock order, every
//! shard the queued commands and the client's watched keys can touch (every
//! shard of every database when key positions cannot tell), checks the
//! watched keys, and runs the queue through the ordinary handlers, which
//! reuse the held shards ([`ferrite_storage::Store::with_locked`]); their
//! effects reach the propagation stream as one block
//! ([`crate::propagate::Propagator::transaction`]). Other connections see
//! all of the transaction or none of it.
//!
//! `WATCH` registers the client's [`ferrite_storage::WatchFlag`] with the
//! shard of each key; the shard marks it when the key changes, is deleted,
//! expires, is flushed or swapped away.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use ferrite_storage::LockSet;

use crate::client::{Client, MultiState, Queued};
use crate::command::ctx::unix_ms;
use crate::command::dispatch::{call, feed_monitor};
use crate::command::meta::{BeginSearch, FindKeys};
use crate::command::{CmdError, CmdResult, Command, Ctx, Handler};
use crate::shared::Shared;

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("multi", multi),
    ("exec", exec),
    ("discard", discard),
    ("watch", watch),
    ("unwatch", unwatch),
];

fn multi(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::err("MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(MultiState::default());
    ctx.client.handle.multi_len.store(0, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

fn discard(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_none() {
        return Err(CmdError::err("DISCARD without MULTI"));
    }
    discard_transaction(ctx.srv, ctx.client);
    ctx.out.ok();
    Ok(())
}

/// Leaves the transaction, if any, and unwatches every key (Redis's
/// `discardTransaction`; also `RESET`).
pub fn discard_transaction(srv: &Shared, client: &mut Client) {
    client.multi = None;
    client.handle.multi_len.store(-1, Ordering::Relaxed);
    unwatch_all(srv, client);
}

/// Unwatches every key of `client` and clears its dirty flag (also when the
/// connection closes).
pub fn unwatch_all(srv: &Shared, client: &mut Client) {
    let flag = &client.handle.watch;
    for (db, key) in client.watched.drain(..) {
        srv.store.db(db).with_shard(&key, |s| s.unwatch(&key, flag));
    }
    // After the shards forgot the flag, nothing marks it again.
    flag.clear();
}

fn watch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::err("WATCH inside MULTI is not allowed"));
    }
    // No point in watching more once the transaction is doomed.
    if !ctx.client.handle.watch.is_dirty() {
        let db_index = ctx.client.db;
        let db = ctx.db();
        let now = ctx.now;
        for key in &args[1..] {
            if ctx
                .client
                .watched
                .iter()
                .any(|(d, k)| *d == db_index && k == key)
            {
                continue;
            }
            let flag = &ctx.client.handle.watch;
            db.with_shard(key, |s| s.watch(key, flag, now));
            ctx.client
                .watched
                .push((db_index, Bytes::copy_from_slice(key)));
        }
    }
    ctx.out.ok();
    Ok(())
}

fn unwatch(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    unwatch_all(ctx.srv, ctx.client);
    ctx.out.ok();
    Ok(())
}

fn exec(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let Some(state) = ctx.client.multi.take() else {
        return Err(CmdError::err("EXEC without MULTI"));
    };
    if state.aborted {
        ctx.client.handle.multi_len.store(-1, Ordering::Relaxed);
        unwatch_all(ctx.srv, ctx.client);
        return Err(CmdError::Other(
            "EXECABORT Transaction discarded because of previous errors.".into(),
        ));
    }
    let srv = ctx.srv;
    let client = &mut *ctx.client;
    let out = &mut *ctx.out;
    let set = lock_set(srv, client, &state.queue);
    srv.store.with_locked(&set, || {
        srv.repl.transaction(|| {
            // Checked with the watched keys' shards held: no change can
            // slip in between the check and the commands.
            let now = unix_ms();
            let dirty = client.handle.watch.is_dirty() || watched_key_expired(srv, client, now);
            unwatch_all(srv, client);
            if dirty {
                out.null_array();
                return;
            }
            let deny = std::mem::replace(&mut client.deny_blocking, true);
            out.array(state.queue.len());
            client.in_exec = true;
            for q in &state.queue {
                // The rules may have changed since the command was queued,
                // or a queued AUTH changed the user.
                if let Some(u) = client.user.clone().filter(|u| !u.open()) {
                    let context = crate::acl::log::Context::Multi;
                    let checked = crate::acl::enforce(
                        srv,
                        &client.handle,
                        &u,
                        &u.rules(),
                        context,
                        q.cmd,
                        &q.argv,
                    );
                    if let Err(d) = checked {
                        let msg = format!("NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {}", d.exec_reason());
                        srv.stats.count_error(msg.as_bytes());
                        out.error(msg.as_bytes());
                        continue;
                    }
                }
                feed_monitor(srv, client, q.cmd, &q.argv);
                let at = out.len();
                let t = crate::clock::unix_us();
                call(srv, client, out, q.cmd, &q.argv, t / 1000, t);
                crate::command::dispatch::merge_push(client, out, at);
            }
            client.deny_blocking = deny;
            client.in_exec = false;
        })
    });
    // Until here the client still shows flag `x` and `multi=<queued>`
    // (in `CLIENT INFO` run inside the transaction, or an ACL log entry),
    // as Redis clears its `CLIENT_MULTI` only after the commands ran.
    client.handle.multi_len.store(-1, Ordering::Relaxed);
    Ok(())
}

/// Whether a key the client watched while it was live is now logically
/// expired though not yet deleted (Redis's `isWatchedKeyExpired`).
fn watched_key_expired(srv: &Shared, client: &Client, now: i64) -> bool {
    let flag = &client.handle.watch;
    client.watched.iter().any(|(db, key)| {
        srv.store
            .db(*db)
            .with_shard(key, |s| s.watched_key_expired(key, flag, now))
    })
}

/// Keyless commands that touch no key at all, so a transaction holding
/// them needs no shard for them. Every other keyless command (`KEYS`,
/// `DBSIZE`, `INFO`, `DEBUG`, ...) makes the transaction lock everything.
const KEYSPACE_FREE: &[&str] = &[
    "ping",
    "echo",
    "time",
    "lastsave",
    "command",
    "config",
    "client",
    "slowlog",
    "latency",
    "hello",
    "auth",
    "publish",
    "pubsub",
    "role",
    "lolwut",
    "unwatch",
    "readonly",
    "readwrite",
];

/// Commands with keys whose effect reaches beyond them: other databases
/// (`MOVE`, `COPY ... DB`, `SWAPDB`, `SELECT` changes the database of the
/// commands after it), key patterns (`SORT ... BY/GET`), or whole databases.
const LOCK_EVERYTHING: &[&str] = &[
    "select",
    "swapdb",
    "move",
    "flushdb",
    "flushall",
    "keys",
    "scan",
    "dbsize",
    "randomkey",
    "info",
    "debug",
    "sort",
    "sort_ro",
    "migrate",
    // A script may touch any key.
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
];

/// Whether `q` may touch shards its key positions do not name.
fn needs_everything(q: &Queued) -> bool {
    reaches_beyond_keys(q.cmd, &q.argv)
}

/// Whether a call of `cmd` may touch shards its key positions do not name.
fn reaches_beyond_keys(cmd: &Command, argv: &[Bytes]) -> bool {
    let meta = cmd.meta;
    let top = meta.name.split('|').next().unwrap_or(meta.name);
    if LOCK_EVERYTHING.contains(&top) {
        return true;
    }
    if top == "copy" {
        return argv
            .get(3..)
            .unwrap_or_default()
            .iter()
            .any(|a| a.eq_ignore_ascii_case(b"db"));
    }
    if meta.key_specs.is_empty() {
        return meta.first_key <= 0 && !KEYSPACE_FREE.contains(&top);
    }
    meta.key_specs.iter().any(|ks| {
        matches!(ks.begin_search, BeginSearch::Unknown) || matches!(ks.find_keys, FindKeys::Unknown)
    })
}

/// The shards `EXEC` must hold: those of the watched keys and of the queued
/// commands' keys, or every shard when a command's reach is not known.
fn lock_set(srv: &Shared, client: &Client, queue: &[Queued]) -> LockSet {
    let mut set = LockSet::new();
    for (db, key) in &client.watched {
        set.add_key(srv.store.db(*db), key);
    }
    let db = srv.store.db(client.db);
    for q in queue {
        if needs_everything(q) {
            set.add_all();
            return set;
        }
        for (i, _) in q.cmd.keys(&q.argv) {
            set.add_key(db, &q.argv[i]);
        }
    }
    set
}

/// The shards a single call must hold to run as one step with respect to
/// writers (a tracked read and the remembering of its keys): those of its
/// keys in database `db`, or every shard when its reach is not known.
pub(crate) fn call_lock_set(
    srv: &Shared,
    db: usize,
    cmd: &Command,
    argv: &[Bytes],
    keys: &[(usize, &'static [&'static str])],
) -> LockSet {
    let mut set = LockSet::new();
    if reaches_beyond_keys(cmd, argv) {
        set.add_all();
        return set;
    }
    let db = srv.store.db(db);
    for (i, _) in keys {
        if let Some(k) = argv.get(*i) {
            set.add_key(db, k);
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::TABLE;

    fn queued(args: &[&str]) -> Queued {
        let mut cmd = TABLE.lookup(args[0].as_bytes()).expect("command");
        if !cmd.subcommands.is_empty() && args.len() > 1 {
            cmd = cmd.subcommand(args[1].as_bytes()).expect("subcommand");
        }
        Queued {
            cmd,
            argv: args.iter().map(|a| Bytes::from(a.to_string())).collect(),
        }
    }

    #[test]
    fn commands_with_known_keys_lock_only_those() {
        for args in [
            &["set", "k", "v"][..],
            &["get", "k"],
            &["mset", "a", "1", "b", "2"],
            &["lmpop", "2", "a", "b", "left"],
            &["blmove", "a", "b", "left", "left", "0"],
            &["copy", "a", "b"],
            &["ping"],
            &["config", "get", "maxmemory"],
        ] {
            assert!(!needs_everything(&queued(args)), "{args:?}");
        }
    }

    #[test]
    fn commands_reaching_beyond_their_keys_lock_everything() {
        for args in [
            &["select", "1"][..],
            &["flushall"],
            &["dbsize"],
            &["keys", "*"],
            &["move", "k", "1"],
            &["copy", "a", "b", "db", "2"],
            &["swapdb", "0", "1"],
            &["info"],
        ] {
            assert!(needs_everything(&queued(args)), "{args:?}");
        }
    }
}
