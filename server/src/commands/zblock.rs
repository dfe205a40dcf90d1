//! The blocking sorted-set pops `BZPOPMIN BZPOPMAX BZMPOP`, on the same
//! waiter registry as the list pops (`crate::blocking`): served in the order
//! clients blocked, propagated as the plain `ZPOPMIN`/`ZPOPMAX` they
//! amount to (with the count for `BZMPOP`), as Redis 7.0 does.

use bytes::Bytes;
use ferrite_protocol::ReplyBuf;
use ferrite_storage::{Shard, Value};

use crate::blocking::{BlockOp, Waiter};
use crate::command::ctx::{mpop_args, timeout_arg};
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::commands::list::Served;
use crate::commands::zset::zpop_into;
use crate::shared::Shared;

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("bzpopmin", bzpopmin),
    ("bzpopmax", bzpopmax),
    ("bzmpop", bzmpop),
];

/// Writes a pop's reply: `[key, member, score]` for `BZPOP*` (`count` None),
/// `[key, [[member, score], ...]]` for `BZMPOP`.
fn reply_popped(out: &mut ReplyBuf, key: &[u8], popped: &[(Vec<u8>, f64)], count: Option<usize>) {
    match count {
        None => {
            out.array(3);
            out.bulk(key);
            if let Some((m, s)) = popped.first() {
                out.bulk(m);
                out.double(*s);
            } else {
                out.null();
                out.null();
            }
        }
        Some(_) => {
            out.array(2);
            out.bulk(key);
            out.array(popped.len());
            for (m, s) in popped {
                out.array(2);
                out.bulk(m);
                out.double(*s);
            }
        }
    }
}

/// Propagates a pop as `ZPOPMIN key` / `ZPOPMAX key [n]`.
fn propagate(srv: &Shared, db: usize, key: &[u8], max: bool, n: Option<usize>) {
    let cmd: &[u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
    match n {
        Some(n) => {
            let mut b = itoa::Buffer::new();
            srv.repl.feed(db, &[cmd, key, b.format(n).as_bytes()]);
        }
        None => srv.repl.feed(db, &[cmd, key]),
    }
}

/// The live sorted set at `key`: `Ok(None)` when absent, WRONGTYPE for other types.
fn zset_len(s: &mut Shard, key: &[u8], now: i64) -> Result<Option<usize>, CmdError> {
    match s.peek(key, now) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::ZSet(z) => Ok(Some(z.len())),
            _ => Err(CmdError::WrongType),
        },
    }
}

fn bzpop_generic(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
    max: bool,
    count: Option<usize>,
    deadline: i64,
) -> CmdResult {
    let db = ctx.db();
    let (srv, dbi, now) = (ctx.srv, ctx.client.db, ctx.now);
    db.with_shards(keys.iter().map(|k| &k[..]), |g| {
        for key in keys {
            let s = g.shard(key);
            if zset_len(s, key, now)?.is_none() {
                continue;
            }
            let popped =
                zpop_into(srv, dbi, s, key, max, count.unwrap_or(1), now).unwrap_or_default();
            reply_popped(ctx.out, key, &popped, count);
            propagate(srv, dbi, key, max, count.map(|_| popped.len()));
            return Ok(());
        }
        if ctx.client.deny_blocking() {
            ctx.out.null_array();
            return Ok(());
        }
        let blocked = srv.blocking.block(
            ctx.client.id(),
            dbi,
            ctx.out.resp3,
            keys.to_vec(),
            BlockOp::ZPop { max, count },
            deadline,
        );
        ctx.client.blocked = Some(blocked);
        Ok(())
    })
}

fn bzpopmin(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let deadline = timeout_arg(ctx, &args[args.len() - 1])?;
    bzpop_generic(ctx, &args[1..args.len() - 1], false, None, deadline)
}

fn bzpopmax(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let deadline = timeout_arg(ctx, &args[args.len() - 1])?;
    bzpop_generic(ctx, &args[1..args.len() - 1], true, None, deadline)
}

/// `BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]`.
fn bzmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (keys, side, count) = mpop_args(args, 2, ["min", "max"])?;
    let deadline = timeout_arg(ctx, &args[1])?;
    bzpop_generic(ctx, keys, side == 1, Some(count), deadline)
}

/// Serves one sorted-set waiter from `key` (see `list::serve_ready`).
pub(crate) fn serve_zset_waiter(
    srv: &Shared,
    w: &std::sync::Arc<Waiter>,
    key: &Bytes,
    now: i64,
) -> Served {
    let BlockOp::ZPop { max, count } = w.op else {
        return Served::NoData;
    };
    let db = srv.store.db(w.db);
    db.with_shard(key, |s| {
        let has = matches!(s.peek(key, now), Some(e) if matches!(&e.value, Value::ZSet(z) if !z.is_empty()));
        if !has {
            return Served::NoData;
        }
        let Some(tx) = srv.blocking.claim(w) else {
            return Served::Next;
        };
        let popped = zpop_into(srv, w.db, s, key, max, count.unwrap_or(1), now).unwrap_or_default();
        let mut out = ReplyBuf::new();
        out.resp3 = w.resp3;
        reply_popped(&mut out, key, &popped, count);
        propagate(srv, w.db, key, max, count.map(|_| popped.len()));
        let _ = tx.send(out.buf);
        Served::Next
    })
}
