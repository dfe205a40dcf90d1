//! List commands: `LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LRANGE LINDEX
//! LSET LREM LTRIM LINSERT LPOS LMOVE RPOPLPUSH LMPOP` and the blocking
//! `BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP`, after Redis 7.0's `t_list.c`.
//!
//! A blocking command that finds data behaves like its plain form and
//! propagates as it (`BLPOP` → `LPOP`); one that finds nothing registers a
//! waiter (see `crate::blocking`) and is served later by [`serve_ready`],
//! which runs in the connection of the client whose write made a key ready.

use bytes::Bytes;
use ferrite_protocol::ReplyBuf;
use ferrite_storage::{List, Shard, Value, NO_EXPIRE};

use crate::blocking::{BlockOp, End, Waiter};
use crate::command::ctx::{int_arg, is, mpop_args, positive_arg, timeout_arg, MUST_BE_POSITIVE};
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::pubsub::notify::{GENERIC, LIST};
use crate::shared::Shared;

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("lpush", lpush),
    ("rpush", rpush),
    ("lpushx", lpushx),
    ("rpushx", rpushx),
    ("lpop", lpop),
    ("rpop", rpop),
    ("llen", llen),
    ("lrange", lrange),
    ("lindex", lindex),
    ("lset", lset),
    ("lrem", lrem),
    ("ltrim", ltrim),
    ("linsert", linsert),
    ("lpos", lpos),
    ("lmove", lmove),
    ("rpoplpush", rpoplpush),
    ("lmpop", lmpop),
    ("blpop", blpop),
    ("brpop", brpop),
    ("blmove", blmove),
    ("brpoplpush", brpoplpush),
    ("blmpop", blmpop),
];

// ---------------------------------------------------------------------------
// Helpers

/// The list held by a value, or WRONGTYPE.
fn as_list(v: &Value) -> Result<&List, CmdError> {
    match v {
        Value::List(l) => Ok(l),
        _ => Err(CmdError::WrongType),
    }
}

/// A read lookup counting hits and misses: the list, `None` when absent.
fn read_list<'s>(
    ctx: &Ctx<'_>,
    s: &'s mut Shard,
    key: &[u8],
) -> Result<Option<&'s List>, CmdError> {
    ctx.read_lookup(s, key, as_list)
}

/// A write lookup: the list's length, `None` when absent, WRONGTYPE otherwise.
fn write_len(s: &mut Shard, key: &[u8], now: i64) -> Result<Option<usize>, CmdError> {
    match s.peek(key, now) {
        None => Ok(None),
        Some(e) => as_list(&e.value).map(|l| Some(l.len())),
    }
}

/// Runs `f` on an existing list and deletes the key when it ends up empty
/// (Redis never keeps an empty collection).
fn with_list<R>(s: &mut Shard, key: &[u8], now: i64, f: impl FnOnce(&mut List) -> R) -> Option<R> {
    let (r, empty) = s
        .modify(key, now, |e| match &mut e.value {
            Value::List(l) => {
                let r = f(l);
                Some((r, l.is_empty()))
            }
            _ => None,
        })
        .flatten()?;
    if empty {
        s.remove(key, now);
    }
    Some(r)
}

fn pop_event(end: End) -> &'static str {
    match end {
        End::Left => "lpop",
        End::Right => "rpop",
    }
}

fn push_event(end: End) -> &'static str {
    match end {
        End::Left => "lpush",
        End::Right => "rpush",
    }
}

/// The list event of a change to `key`, then `del` if it emptied the list.
fn notify_list(ctx: &Ctx<'_>, s: &mut Shard, key: &[u8], event: &str) {
    if ctx.notify_enabled() {
        ctx.notify(LIST, event, key);
        if !s.contains(key, ctx.now) {
            ctx.notify(GENERIC, "del", key);
        }
    }
}

/// [`notify_list`] for a pop served on behalf of a blocked client.
fn notify_list_srv(srv: &Shared, s: &mut Shard, db: usize, key: &[u8], event: &str, now: i64) {
    if srv
        .pubsub
        .notify_flags
        .load(std::sync::atomic::Ordering::Relaxed)
        != 0
    {
        srv.pubsub.notify(LIST, event, key, db, None);
        if !s.contains(key, now) {
            srv.pubsub.notify(GENERIC, "del", key, db, None);
        }
    }
}

/// Pushes `elems` at one end, creating the list if needed; returns the new
/// length. The caller has checked that `key` is absent or a list.
fn push_into(s: &mut Shard, key: &[u8], end: End, elems: &[&[u8]], now: i64) -> usize {
    let push = |l: &mut List| {
        for e in elems {
            match end {
                End::Left => l.push_front(e),
                End::Right => l.push_back(e),
            }
        }
        l.len()
    };
    match s.modify(key, now, |e| match &mut e.value {
        Value::List(l) => Some(push(l)),
        _ => None,
    }) {
        Some(Some(n)) => return n,
        Some(None) => return 0,
        None => {}
    }
    let mut l = List::new();
    let n = push(&mut l);
    s.set(key, Value::List(l), NO_EXPIRE, now);
    n
}

fn pop_one(l: &mut List, end: End) -> Option<Box<[u8]>> {
    match end {
        End::Left => l.pop_front(),
        End::Right => l.pop_back(),
    }
}

/// `LEFT`/`RIGHT` (`getListPositionFromObjectOrReply`).
fn end_arg(arg: &[u8]) -> Result<End, CmdError> {
    if is(arg, "left") {
        Ok(End::Left)
    } else if is(arg, "right") {
        Ok(End::Right)
    } else {
        Err(CmdError::Syntax)
    }
}

/// Redis's range normalisation (`LRANGE`/`LTRIM`): `None` for an empty range.
fn norm_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut s = if start < 0 {
        start.saturating_add(len)
    } else {
        start
    };
    let mut e = if end < 0 {
        end.saturating_add(len)
    } else {
        end
    };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s as usize, e as usize))
}

/// A zero-based position from a possibly negative index.
fn norm_index(i: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if i < 0 { i.saturating_add(len) } else { i };
    (0..len).contains(&i).then_some(i as usize)
}

// ---------------------------------------------------------------------------
// Push

fn push_generic(ctx: &mut Ctx<'_>, args: &[Bytes], end: End, only_existing: bool) -> CmdResult {
    let key = &args[1];
    let elems: smallvec::SmallVec<[&[u8]; 8]> = args[2..].iter().map(|b| &b[..]).collect();
    ctx.db().with_shard(key, |s| {
        let exists = write_len(s, key, ctx.now)?.is_some();
        if !exists && only_existing {
            ctx.out.integer(0);
            return Ok(());
        }
        let n = push_into(s, key, end, &elems, ctx.now);
        ctx.propagate_argv(args);
        ctx.notify(LIST, push_event(end), key);
        ctx.out.integer(n as i64);
        Ok(())
    })
}

fn lpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    push_generic(ctx, args, End::Left, false)
}

fn rpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    push_generic(ctx, args, End::Right, false)
}

fn lpushx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    push_generic(ctx, args, End::Left, true)
}

fn rpushx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    push_generic(ctx, args, End::Right, true)
}

// ---------------------------------------------------------------------------
// Pop

fn pop_generic(ctx: &mut Ctx<'_>, args: &[Bytes], end: End) -> CmdResult {
    if args.len() > 3 {
        return Err(ctx.arity_error());
    }
    let count = match args.get(2) {
        Some(a) => Some(positive_arg(a, MUST_BE_POSITIVE)?),
        None => None,
    };
    let key = &args[1];
    ctx.db().with_shard(key, |s| {
        let Some(len) = write_len(s, key, ctx.now)? else {
            if count.is_some() {
                ctx.out.null_array();
            } else {
                ctx.out.null();
            }
            return Ok(());
        };
        match count {
            None => {
                let v = with_list(s, key, ctx.now, |l| pop_one(l, end)).flatten();
                match v {
                    Some(v) => ctx.out.bulk(&v),
                    None => ctx.out.null(),
                }
            }
            Some(0) => {
                ctx.out.array(0);
                return Ok(());
            }
            Some(c) => {
                let n = (c as usize).min(len);
                ctx.out.array(n);
                let out = &mut *ctx.out;
                with_list(s, key, ctx.now, |l| {
                    for _ in 0..n {
                        if let Some(v) = pop_one(l, end) {
                            out.bulk(&v);
                        }
                    }
                });
            }
        }
        ctx.propagate_argv(args);
        notify_list(ctx, s, key, pop_event(end));
        Ok(())
    })
}

fn lpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    pop_generic(ctx, args, End::Left)
}

fn rpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    pop_generic(ctx, args, End::Right)
}

/// Pops up to `count` elements of the list at `key` (which must exist),
/// replying `[key, [elements]]`; returns how many were popped.
fn pop_range_with_key(
    s: &mut Shard,
    key: &[u8],
    end: End,
    count: usize,
    now: i64,
    out: &mut ReplyBuf,
) -> usize {
    with_list(s, key, now, |l| {
        let n = count.min(l.len());
        out.array(2);
        out.bulk(key);
        out.array(n);
        for _ in 0..n {
            if let Some(v) = pop_one(l, end) {
                out.bulk(&v);
            }
        }
        n
    })
    .unwrap_or(0)
}

/// Propagates a served multi-pop as `LPOP key n` / `RPOP key n`.
fn propagate_pop(srv: &Shared, db: usize, key: &[u8], end: End, n: Option<usize>) {
    let cmd: &[u8] = match end {
        End::Left => b"LPOP",
        End::Right => b"RPOP",
    };
    match n {
        Some(n) => {
            let mut b = itoa::Buffer::new();
            srv.repl.feed(db, &[cmd, key, b.format(n).as_bytes()]);
        }
        None => srv.repl.feed(db, &[cmd, key]),
    }
}

/// `LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]` and the same
/// after `BLMPOP`'s timeout: returns (keys, end, count).
fn parse_mpop(args: &[Bytes], numkeys_idx: usize) -> Result<(&[Bytes], End, usize), CmdError> {
    let (keys, side, count) = mpop_args(args, numkeys_idx, ["left", "right"])?;
    let end = if side == 0 { End::Left } else { End::Right };
    Ok((keys, end, count))
}

/// Tries to pop from the first non-empty list of `keys` (all locked in `g`);
/// `Ok(true)` when it replied. `count` None = the `BLPOP` reply shape.
fn try_multi_pop(
    ctx: &mut Ctx<'_>,
    g: &mut ferrite_storage::ShardGroup<'_>,
    keys: &[Bytes],
    end: End,
    count: Option<usize>,
) -> Result<bool, CmdError> {
    for key in keys {
        let s = g.shard(key);
        let Some(len) = write_len(s, key, ctx.now)? else {
            continue;
        };
        match count {
            Some(c) => {
                let n = pop_range_with_key(s, key, end, c, ctx.now, ctx.out);
                debug_assert_eq!(n, c.min(len));
                propagate_pop(ctx.srv, ctx.client.db, key, end, Some(n));
                notify_list(ctx, s, key, pop_event(end));
            }
            None => {
                let v = with_list(s, key, ctx.now, |l| pop_one(l, end)).flatten();
                if let Some(v) = v {
                    ctx.out.array(2);
                    ctx.out.bulk(key);
                    ctx.out.bulk(&v);
                }
                propagate_pop(ctx.srv, ctx.client.db, key, end, None);
                notify_list(ctx, s, key, pop_event(end));
            }
        }
        return Ok(true);
    }
    Ok(false)
}

fn lmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (keys, end, count) = parse_mpop(args, 1)?;
    let db = ctx.db();
    db.with_shards(keys.iter().map(|k| &k[..]), |g| {
        if !try_multi_pop(ctx, g, keys, end, Some(count))? {
            ctx.out.null_array();
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Reads

fn llen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    ctx.db().with_shard(&args[1], |s| {
        let n = read_list(ctx, s, &args[1])?.map_or(0, |l| l.len());
        ctx.out.integer(n as i64);
        Ok(())
    })
}

fn lrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let start = int_arg(&args[2])?;
    let end = int_arg(&args[3])?;
    ctx.db().with_shard(&args[1], |s| {
        let Some(l) = read_list(ctx, s, &args[1])? else {
            ctx.out.array(0);
            return Ok(());
        };
        match norm_range(start, end, l.len()) {
            None => ctx.out.array(0),
            Some((a, b)) => {
                ctx.out.array(b - a + 1);
                for e in l.range(a, b) {
                    ctx.out.bulk(e);
                }
            }
        }
        Ok(())
    })
}

fn lindex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let index = int_arg(&args[2])?;
    ctx.db().with_shard(&args[1], |s| {
        let Some(l) = read_list(ctx, s, &args[1])? else {
            ctx.out.null();
            return Ok(());
        };
        match norm_index(index, l.len()).and_then(|i| l.get(i)) {
            Some(e) => ctx.out.bulk(e),
            None => ctx.out.null(),
        }
        Ok(())
    })
}

fn lpos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let elem = &args[2][..];
    let (mut rank, mut count, mut maxlen) = (1i64, None::<i64>, 0i64);
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        if is(&args[j], "rank") && more {
            rank = int_arg(&args[j + 1])?;
            if rank == 0 {
                return Err(CmdError::err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if is(&args[j], "count") && more {
            count = Some(positive_arg(&args[j + 1], "COUNT can't be negative")?);
        } else if is(&args[j], "maxlen") && more {
            maxlen = positive_arg(&args[j + 1], "MAXLEN can't be negative")?;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 2;
    }
    // i64::MIN has no positive counterpart; Redis's `-rank` wraps to itself,
    // which then never matches: the same as asking beyond the list.
    let from_tail = rank < 0;
    let rank = rank.unsigned_abs();
    ctx.db().with_shard(&args[1], |s| {
        let Some(l) = read_list(ctx, s, &args[1])? else {
            if count.is_some() {
                ctx.out.array(0);
            } else {
                ctx.out.null();
            }
            return Ok(());
        };
        let len = l.len();
        let limit = if maxlen == 0 {
            usize::MAX
        } else {
            maxlen as usize
        };
        let want = match count {
            Some(0) => usize::MAX,
            Some(c) => c as usize,
            None => 1,
        };
        let mut found: smallvec::SmallVec<[i64; 8]> = smallvec::SmallVec::new();
        let mut matches = 0u64;
        let mut visit = |idx: usize, e: &[u8]| -> bool {
            if e == elem {
                matches += 1;
                if matches >= rank {
                    found.push(idx as i64);
                    if found.len() >= want {
                        return false;
                    }
                }
            }
            true
        };
        if from_tail {
            for (n, e) in l.iter().rev().enumerate().take(limit) {
                if !visit(len - 1 - n, e) {
                    break;
                }
            }
        } else {
            for (n, e) in l.iter().enumerate().take(limit) {
                if !visit(n, e) {
                    break;
                }
            }
        }
        match count {
            Some(_) => {
                ctx.out.array(found.len());
                for i in found {
                    ctx.out.integer(i);
                }
            }
            None => match found.first() {
                Some(&i) => ctx.out.integer(i),
                None => ctx.out.null(),
            },
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Other writes

fn lset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let index = int_arg(&args[2])?;
    let key = &args[1];
    ctx.db().with_shard(key, |s| {
        let Some(len) = write_len(s, key, ctx.now)? else {
            return Err(CmdError::NoSuchKey);
        };
        let Some(i) = norm_index(index, len) else {
            return Err(CmdError::err("index out of range"));
        };
        with_list(s, key, ctx.now, |l| l.set(i, &args[3]));
        ctx.propagate_argv(args);
        ctx.notify(LIST, "lset", key);
        ctx.out.ok();
        Ok(())
    })
}

fn lrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let count = int_arg(&args[2])?;
    let key = &args[1];
    ctx.db().with_shard(key, |s| {
        if write_len(s, key, ctx.now)?.is_none() {
            ctx.out.integer(0);
            return Ok(());
        }
        let n = s
            .quietly(|s| {
                with_list(s, key, ctx.now, |l| {
                    let limit = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
                    l.remove_matching(&args[3], limit, count >= 0)
                })
            })
            .unwrap_or(0);
        if n > 0 {
            s.signal_modified(key);
            ctx.propagate_argv(args);
            notify_list(ctx, s, key, "lrem");
        }
        ctx.out.integer(n as i64);
        Ok(())
    })
}

fn ltrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let start = int_arg(&args[2])?;
    let end = int_arg(&args[3])?;
    let key = &args[1];
    ctx.db().with_shard(key, |s| {
        let Some(len) = write_len(s, key, ctx.now)? else {
            ctx.out.ok();
            return Ok(());
        };
        match norm_range(start, end, len) {
            Some((a, b)) => {
                with_list(s, key, ctx.now, |l| l.keep_range(a, b));
            }
            None => {
                s.remove(key, ctx.now);
            }
        }
        ctx.propagate_argv(args);
        notify_list(ctx, s, key, "ltrim");
        ctx.out.ok();
        Ok(())
    })
}

fn linsert(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let after = if is(&args[2], "after") {
        true
    } else if is(&args[2], "before") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let key = &args[1];
    ctx.db().with_shard(key, |s| {
        if write_len(s, key, ctx.now)?.is_none() {
            ctx.out.integer(0);
            return Ok(());
        }
        let r = with_list(s, key, ctx.now, |l| {
            let pos = l.iter().position(|e| e == &args[3][..])?;
            l.insert(if after { pos + 1 } else { pos }, &args[4]);
            Some(l.len())
        })
        .flatten();
        match r {
            Some(n) => {
                ctx.propagate_argv(args);
                ctx.notify(LIST, "linsert", key);
                ctx.out.integer(n as i64);
            }
            None => ctx.out.integer(-1),
        }
        Ok(())
    })
}

/// The move of `LMOVE`/`RPOPLPUSH` with both shards locked. `Ok(None)` when
/// the source is absent; checks the destination's type before popping.
fn move_locked(
    g: &mut ferrite_storage::ShardGroup<'_>,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
    now: i64,
) -> Result<Option<Box<[u8]>>, CmdError> {
    if write_len(g.shard(src), src, now)?.is_none() {
        return Ok(None);
    }
    write_len(g.shard(dst), dst, now)?;
    let Some(v) = with_list(g.shard(src), src, now, |l| pop_one(l, from)).flatten() else {
        return Ok(None);
    };
    push_into(g.shard(dst), dst, to, &[&v], now);
    Ok(Some(v))
}

fn lmove_generic(ctx: &mut Ctx<'_>, args: &[Bytes], from: End, to: End) -> CmdResult {
    let (src, dst) = (&args[1], &args[2]);
    let db = ctx.db();
    db.with_shards([&src[..], &dst[..]], |g| {
        match move_locked(g, src, dst, from, to, ctx.now)? {
            Some(v) => {
                ctx.out.bulk(&v);
                ctx.propagate_argv(args);
                notify_list(ctx, g.shard(src), src, pop_event(from));
                ctx.notify(LIST, push_event(to), dst);
            }
            None => ctx.out.null(),
        }
        Ok(())
    })
}

fn lmove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let from = end_arg(&args[3])?;
    let to = end_arg(&args[4])?;
    lmove_generic(ctx, args, from, to)
}

fn rpoplpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    lmove_generic(ctx, args, End::Right, End::Left)
}

// ---------------------------------------------------------------------------
// Blocking

/// Registers the client as blocked (with the keys' shard locks held).
fn block(ctx: &mut Ctx<'_>, keys: &[Bytes], op: BlockOp, deadline_ms: i64) {
    let blocked = ctx.srv.blocking.block(
        ctx.client.id(),
        ctx.client.db,
        ctx.out.resp3,
        keys.to_vec(),
        op,
        deadline_ms,
    );
    ctx.client.blocked = Some(blocked);
}

fn bpop_generic(ctx: &mut Ctx<'_>, args: &[Bytes], end: End) -> CmdResult {
    let deadline = timeout_arg(ctx, &args[args.len() - 1])?;
    let keys = &args[1..args.len() - 1];
    let db = ctx.db();
    db.with_shards(keys.iter().map(|k| &k[..]), |g| {
        if try_multi_pop(ctx, g, keys, end, None)? {
            return Ok(());
        }
        if ctx.client.deny_blocking() {
            ctx.out.null_array();
            return Ok(());
        }
        block(ctx, keys, BlockOp::ListPop { end, count: None }, deadline);
        Ok(())
    })
}

fn blpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    bpop_generic(ctx, args, End::Left)
}

fn brpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    bpop_generic(ctx, args, End::Right)
}

fn blmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let deadline = timeout_arg(ctx, &args[1])?;
    let (keys, end, count) = parse_mpop(args, 2)?;
    let db = ctx.db();
    db.with_shards(keys.iter().map(|k| &k[..]), |g| {
        if try_multi_pop(ctx, g, keys, end, Some(count))? {
            return Ok(());
        }
        if ctx.client.deny_blocking() {
            ctx.out.null_array();
            return Ok(());
        }
        let op = BlockOp::ListPop {
            end,
            count: Some(count),
        };
        block(ctx, keys, op, deadline);
        Ok(())
    })
}

fn blmove_generic(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    from: End,
    to: End,
    deadline: i64,
    rpoplpush: bool,
) -> CmdResult {
    let (src, dst) = (&args[1], &args[2]);
    let db = ctx.db();
    db.with_shards([&src[..], &dst[..]], |g| {
        if let Some(v) = move_locked(g, src, dst, from, to, ctx.now)? {
            ctx.out.bulk(&v);
            if rpoplpush {
                ctx.propagate(&[b"RPOPLPUSH", src, dst]);
            } else {
                ctx.propagate(&[b"LMOVE", src, dst, from.name(), to.name()]);
            }
            notify_list(ctx, g.shard(src), src, pop_event(from));
            ctx.notify(LIST, push_event(to), dst);
            return Ok(());
        }
        if ctx.client.deny_blocking() {
            ctx.out.null();
            return Ok(());
        }
        let op = BlockOp::ListMove {
            from,
            to,
            dest: dst.clone(),
            rpoplpush,
        };
        block(ctx, std::slice::from_ref(src), op, deadline);
        Ok(())
    })
}

fn blmove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let from = end_arg(&args[3])?;
    let to = end_arg(&args[4])?;
    let deadline = timeout_arg(ctx, &args[5])?;
    blmove_generic(ctx, args, from, to, deadline, false)
}

fn brpoplpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let deadline = timeout_arg(ctx, &args[3])?;
    blmove_generic(ctx, args, End::Right, End::Left, deadline, true)
}

/// What serving one waiter did.
pub(crate) enum Served {
    /// The key has nothing for this waiter: stop serving this key.
    NoData,
    /// The waiter was served (or had already left): try the next one.
    Next,
}

/// Serves clients blocked on keys that became ready, in the order they
/// blocked, repeating while serving makes more keys ready (`BLMOVE` into a
/// waited-on list). Runs after the command that made them ready.
pub fn serve_ready(srv: &Shared) {
    loop {
        let ready = srv.blocking.take_ready();
        if ready.is_empty() {
            return;
        }
        let now = crate::command::ctx::unix_ms();
        for (db, key) in ready {
            // In blocking order; a waiter the key cannot serve (a sorted-set
            // pop on a list) is skipped, as Redis's serve loop does.
            for w in srv.blocking.waiters(db, &key) {
                let r = match &w.op {
                    BlockOp::ListPop { .. } | BlockOp::ListMove { .. } => {
                        serve_list_waiter(srv, &w, &key, now)
                    }
                    BlockOp::ZPop { .. } => {
                        crate::commands::zblock::serve_zset_waiter(srv, &w, &key, now)
                    }
                    BlockOp::Stream(_) => {
                        crate::commands::stream::serve_stream_waiter(srv, &w, &key, now)
                    }
                };
                if matches!(r, Served::NoData) && !w.op.wants_zset() && !w.op.wants_stream() {
                    // Stop at the first list waiter the key cannot feed.
                    if matches!(kind_at(srv, db, &key, now), Kind::List | Kind::None) {
                        break;
                    }
                }
            }
        }
    }
}

/// What a ready key holds now.
enum Kind {
    None,
    List,
    Other,
}

fn kind_at(srv: &Shared, db: usize, key: &[u8], now: i64) -> Kind {
    srv.store
        .db(db)
        .with_shard(key, |s| match s.peek(key, now) {
            None => Kind::None,
            Some(e) if matches!(e.value, Value::List(_)) => Kind::List,
            Some(_) => Kind::Other,
        })
}

/// Serves one list waiter from `key`.
fn serve_list_waiter(srv: &Shared, w: &std::sync::Arc<Waiter>, key: &Bytes, now: i64) -> Served {
    let db = srv.store.db(w.db);
    let mut out = ReplyBuf::new();
    out.resp3 = w.resp3;
    match &w.op {
        BlockOp::ListPop { end, count } => db.with_shard(key, |s| {
            let has = matches!(s.peek(key, now), Some(e) if matches!(&e.value, Value::List(l) if !l.is_empty()));
            if !has {
                return Served::NoData;
            }
            let Some(tx) = srv.blocking.claim(w) else {
                return Served::Next;
            };
            match count {
                Some(c) => {
                    let n = pop_range_with_key(s, key, *end, *c, now, &mut out);
                    propagate_pop(srv, w.db, key, *end, Some(n));
                    notify_list_srv(srv, s, w.db, key, pop_event(*end), now);
                }
                None => {
                    if let Some(v) = with_list(s, key, now, |l| pop_one(l, *end)).flatten() {
                        out.array(2);
                        out.bulk(key);
                        out.bulk(&v);
                    }
                    propagate_pop(srv, w.db, key, *end, None);
                    notify_list_srv(srv, s, w.db, key, pop_event(*end), now);
                }
            }
            let _ = tx.send(out.buf);
            Served::Next
        }),
        BlockOp::ListMove {
            from,
            to,
            dest,
            rpoplpush,
        } => db.with_shards([&key[..], &dest[..]], |g| {
            let has = matches!(g.shard(key).peek(key, now), Some(e) if matches!(&e.value, Value::List(l) if !l.is_empty()));
            if !has {
                return Served::NoData;
            }
            let Some(tx) = srv.blocking.claim(w) else {
                return Served::Next;
            };
            match move_locked(g, key, dest, *from, *to, now) {
                Ok(Some(v)) => {
                    out.bulk(&v);
                    if *rpoplpush {
                        srv.repl.feed(w.db, &[b"RPOPLPUSH", key, dest]);
                    } else {
                        srv.repl
                            .feed(w.db, &[b"LMOVE", key, dest, from.name(), to.name()]);
                    }
                    notify_list_srv(srv, g.shard(key), w.db, key, pop_event(*from), now);
                    srv.pubsub.notify(LIST, push_event(*to), dest, w.db, None);
                }
                Ok(None) => out.null(),
                Err(e) => out.error(e.to_string().as_bytes()),
            }
            let _ = tx.send(out.buf);
            Served::Next
        }),
        // Sorted-set and stream waiters are served by `zblock` and `stream`.
        BlockOp::ZPop { .. } | BlockOp::Stream(_) => Served::NoData,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_normalise_like_redis() {
        assert_eq!(norm_range(0, -1, 3), Some((0, 2)));
        assert_eq!(norm_range(-100, 100, 3), Some((0, 2)));
        assert_eq!(norm_range(2, 1, 3), None);
        assert_eq!(norm_range(5, 10, 3), None);
        assert_eq!(norm_range(i64::MIN, i64::MAX, 3), Some((0, 2)));
        assert_eq!(norm_range(0, 0, 0), None);
        assert_eq!(norm_index(-1, 3), Some(2));
        assert_eq!(norm_index(3, 3), None);
        assert_eq!(norm_index(i64::MIN, 3), None);
    }
}
