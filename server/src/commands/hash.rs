//! Hash commands: `HSET HSETNX HGET HMGET HMSET HDEL HEXISTS HLEN HSTRLEN
//! HKEYS HVALS HGETALL HINCRBY HINCRBYFLOAT HRANDFIELD HSCAN`, after
//! Redis 7.0's `t_hash.c`.
//!
//! Each handler parses its arguments first, then runs one closure with the
//! shard lock of its key held; writes propagate their deterministic effect
//! from inside that closure (`HINCRBYFLOAT` as the `HSET` of its result, as
//! Redis does, so float formatting can never make a replica diverge).

use bytes::Bytes;
use ferrite_storage::hash::SetOutcome;
use ferrite_storage::{glob_match, Hash, Shard, Value, NO_EXPIRE};
use rand::Rng;

use crate::command::ctx::{int_arg, is};
use crate::command::scan::{cursor_arg, scan_options, ScanOptions};
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::commands::string::format_incrbyfloat;
use crate::pubsub::notify::{GENERIC, HASH};

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("hset", hset),
    ("hmset", hmset),
    ("hsetnx", hsetnx),
    ("hget", hget),
    ("hmget", hmget),
    ("hdel", hdel),
    ("hexists", hexists),
    ("hlen", hlen),
    ("hstrlen", hstrlen),
    ("hkeys", hkeys),
    ("hvals", hvals),
    ("hgetall", hgetall),
    ("hincrby", hincrby),
    ("hincrbyfloat", hincrbyfloat),
    ("hrandfield", hrandfield),
    ("hscan", hscan),
];

/// Largest reply `HRANDFIELD` with a negative count may build, estimated
/// from the hash's average pair size. Replies are built whole in memory
/// before they are written, so a count like `-9223372036854775807` (which
/// Redis accepts and would also try to serve until it runs out of memory)
/// is refused instead of taking the server down.
const MAX_RANDOM_REPLY_BYTES: usize = 1 << 30;

// ---------------------------------------------------------------------------
// Shared helpers

/// A read lookup counting keyspace hits and misses (`lookupKeyRead`): the
/// hash, `None` when absent, WRONGTYPE for other types.
fn read_hash<'s>(
    ctx: &Ctx<'_>,
    s: &'s mut Shard,
    key: &[u8],
) -> Result<Option<&'s Hash>, CmdError> {
    ctx.read_lookup(s, key, |v| match v {
        Value::Hash(h) => Ok(h),
        _ => Err(CmdError::WrongType),
    })
}

/// A write lookup (`lookupKeyWrite` + `checkType`, creating the key when
/// `create`, as `hashTypeLookupWriteOrCreate`): runs `f` on the hash and
/// deletes the key if `f` left it empty. `Ok(None)` when the key is absent
/// and not created. `f` must not change the hash when it returns an error.
fn write_hash<R>(
    ctx: &Ctx<'_>,
    s: &mut Shard,
    key: &[u8],
    create: bool,
    f: impl FnOnce(&mut Hash) -> Result<R, CmdError>,
) -> Result<Option<R>, CmdError> {
    let now = ctx.now;
    match s.peek(key, now) {
        None if !create => return Ok(None),
        None => {
            let mut h = Hash::new();
            let r = f(&mut h)?;
            if !h.is_empty() {
                s.set(key, Value::Hash(h), NO_EXPIRE, now);
            }
            return Ok(Some(r));
        }
        Some(e) if !matches!(e.value, Value::Hash(_)) => return Err(CmdError::WrongType),
        Some(_) => {}
    }
    let done = s
        .modify(key, now, |e| match &mut e.value {
            Value::Hash(h) => {
                let r = f(h);
                Some((r, h.is_empty()))
            }
            _ => None,
        })
        .flatten();
    let Some((r, empty)) = done else {
        return Err(CmdError::WrongType);
    };
    if empty {
        s.remove(key, now);
    }
    r.map(Some)
}

/// A random source for the sampling functions of [`Hash`].
fn rng() -> impl FnMut() -> u64 {
    let mut r = rand::thread_rng();
    move || r.gen::<u64>()
}

// ---------------------------------------------------------------------------
// Writes

/// `hsetCommand`, shared by `HSET` (replies the number of new fields) and
/// `HMSET` (replies OK).
fn hset_generic(ctx: &mut Ctx<'_>, args: &[Bytes], hmset: bool) -> CmdResult {
    if args.len() % 2 == 1 {
        return Err(ctx.arity_error());
    }
    let lim = ctx.enc();
    let key = &args[1][..];
    let db = ctx.db();
    db.with_shard(key, |s| {
        let created = write_hash(ctx, s, key, true, |h| {
            h.try_conversion(args[2..].iter().map(|a| &a[..]), &lim);
            let mut n: i64 = 0;
            for pair in args[2..].chunks_exact(2) {
                if h.set(&pair[0], &pair[1], &lim) == SetOutcome::Inserted {
                    n += 1;
                }
            }
            Ok(n)
        })?
        .unwrap_or(0);
        ctx.propagate_argv(args);
        ctx.notify(HASH, "hset", key);
        if hmset {
            ctx.out.ok();
        } else {
            ctx.out.integer(created);
        }
        Ok(())
    })
}

fn hset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    hset_generic(ctx, args, false)
}

fn hmset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    hset_generic(ctx, args, true)
}

fn hsetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let lim = ctx.enc();
    let (key, field, value) = (&args[1][..], &args[2][..], &args[3][..]);
    let db = ctx.db();
    db.with_shard(key, |s| {
        let done = write_hash(ctx, s, key, true, |h| {
            if h.contains(field) {
                return Ok(false);
            }
            h.try_conversion([field, value], &lim);
            h.set(field, value, &lim);
            Ok(true)
        })?
        .unwrap_or(false);
        if done {
            ctx.propagate_argv(args);
            ctx.notify(HASH, "hset", key);
        }
        ctx.out.integer(i64::from(done));
        Ok(())
    })
}

fn hdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let db = ctx.db();
    db.with_shard(key, |s| {
        let deleted = s
            .quietly(|s| {
                write_hash(ctx, s, key, false, |h| {
                    let mut n: i64 = 0;
                    for f in &args[2..] {
                        if h.remove(f) {
                            n += 1;
                            // Like Redis, stop once the hash is empty (it is deleted).
                            if h.is_empty() {
                                break;
                            }
                        }
                    }
                    Ok(n)
                })
            })?
            .unwrap_or(0);
        if deleted > 0 {
            s.signal_modified(key);
            ctx.propagate_argv(args);
            ctx.notify(HASH, "hdel", key);
            if ctx.notify_enabled() && !s.contains(key, ctx.now) {
                ctx.notify(GENERIC, "del", key);
            }
        }
        ctx.out.integer(deleted);
        Ok(())
    })
}

fn hincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let incr = int_arg(&args[3])?;
    let lim = ctx.enc();
    let (key, field) = (&args[1][..], &args[2][..]);
    let db = ctx.db();
    db.with_shard(key, |s| {
        let new = write_hash(ctx, s, key, true, |h| {
            let old = match h.get(field) {
                None => 0,
                Some(v) => ferrite_protocol::parse_i64(v)
                    .ok_or_else(|| CmdError::err("hash value is not an integer"))?,
            };
            let new = old.checked_add(incr).ok_or(CmdError::Overflow)?;
            h.set(field, itoa::Buffer::new().format(new).as_bytes(), &lim);
            Ok(new)
        })?
        .unwrap_or(0);
        ctx.propagate_argv(args);
        ctx.notify(HASH, "hincrby", key);
        ctx.out.integer(new);
        Ok(())
    })
}

fn hincrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let incr = ferrite_protocol::parse_f64(&args[3]).ok_or(CmdError::NotFloat)?;
    if !incr.is_finite() {
        return Err(CmdError::err("value is NaN or Infinity"));
    }
    let lim = ctx.enc();
    let (key, field) = (&args[1][..], &args[2][..]);
    let db = ctx.db();
    db.with_shard(key, |s| {
        let text = write_hash(ctx, s, key, true, |h| {
            let old = match h.get(field) {
                None => 0.0,
                Some(v) => ferrite_protocol::parse_f64(v)
                    .ok_or_else(|| CmdError::err("hash value is not a float"))?,
            };
            let new = old + incr;
            if !new.is_finite() {
                return Err(CmdError::err("increment would produce NaN or Infinity"));
            }
            let text = format_incrbyfloat(new);
            h.set(field, text.as_bytes(), &lim);
            Ok(text)
        })?
        .unwrap_or_default();
        ctx.propagate(&[b"HSET", key, field, text.as_bytes()]);
        ctx.notify(HASH, "hincrbyfloat", key);
        ctx.out.bulk(text.as_bytes());
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Reads

fn hget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    db.with_shard(&args[1], |s| {
        match read_hash(ctx, s, &args[1])?.and_then(|h| h.get(&args[2])) {
            Some(v) => ctx.out.bulk(v),
            None => ctx.out.null(),
        }
        Ok(())
    })
}

fn hmget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    db.with_shard(&args[1], |s| {
        let h = read_hash(ctx, s, &args[1])?;
        let fields = &args[2..];
        ctx.out.array(fields.len());
        for f in fields {
            match h.and_then(|h| h.get(f)) {
                Some(v) => ctx.out.bulk(v),
                None => ctx.out.null(),
            }
        }
        Ok(())
    })
}

fn hexists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    db.with_shard(&args[1], |s| {
        let found = read_hash(ctx, s, &args[1])?.is_some_and(|h| h.contains(&args[2]));
        ctx.out.integer(i64::from(found));
        Ok(())
    })
}

fn hlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    db.with_shard(&args[1], |s| {
        let n = read_hash(ctx, s, &args[1])?.map_or(0, Hash::len);
        ctx.out.integer(n as i64);
        Ok(())
    })
}

fn hstrlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    db.with_shard(&args[1], |s| {
        let n = read_hash(ctx, s, &args[1])?
            .and_then(|h| h.get(&args[2]))
            .map_or(0, <[u8]>::len);
        ctx.out.integer(n as i64);
        Ok(())
    })
}

/// `genericHgetallCommand`: fields, values, or both (a map in RESP3).
fn hgetall_generic(ctx: &mut Ctx<'_>, args: &[Bytes], keys: bool, vals: bool) -> CmdResult {
    let db = ctx.db();
    db.with_shard(&args[1], |s| {
        let h = read_hash(ctx, s, &args[1])?;
        let n = h.map_or(0, Hash::len);
        if keys && vals {
            ctx.out.map(n);
        } else {
            ctx.out.array(n);
        }
        for (k, v) in h.into_iter().flat_map(Hash::iter) {
            if keys {
                ctx.out.bulk(k);
            }
            if vals {
                ctx.out.bulk(v);
            }
        }
        Ok(())
    })
}

fn hkeys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    hgetall_generic(ctx, args, true, false)
}

fn hvals(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    hgetall_generic(ctx, args, false, true)
}

fn hgetall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    hgetall_generic(ctx, args, true, true)
}

// ---------------------------------------------------------------------------
// HRANDFIELD

/// Writes one `HRANDFIELD` element: the field, or with values the field
/// and value (flat in RESP2, a two-element array in RESP3).
fn random_reply(out: &mut ferrite_protocol::ReplyBuf, k: &[u8], v: &[u8], withvalues: bool) {
    if withvalues && out.resp3 {
        out.array(2);
    }
    out.bulk(k);
    if withvalues {
        out.bulk(v);
    }
}

fn hrandfield(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() >= 3 {
        let l = int_arg(&args[2])?;
        if l < -i64::MAX {
            return Err(CmdError::err(format!(
                "value is out of range, value must between {} and {}",
                -i64::MAX,
                i64::MAX
            )));
        }
        if args.len() > 4 || (args.len() == 4 && !is(&args[3], "withvalues")) {
            return Err(CmdError::Syntax);
        }
        let withvalues = args.len() == 4;
        if withvalues && !(-i64::MAX / 2..=i64::MAX / 2).contains(&l) {
            return Err(CmdError::err("value is out of range"));
        }
        return hrandfield_count(ctx, &args[1], l, withvalues);
    }
    let db = ctx.db();
    db.with_shard(&args[1], |s| {
        let Some(h) = read_hash(ctx, s, &args[1])? else {
            ctx.out.null();
            return Ok(());
        };
        let mut rand = rng();
        let out = &mut *ctx.out;
        h.random_with(&mut rand, |k, _| out.bulk(k));
        Ok(())
    })
}

/// `hrandfieldWithCountCommand`: a negative count samples with repetition
/// (CASE 1), a positive one returns distinct fields (the whole hash when
/// the count reaches its size, CASE 2; CASES 3 and 4 in [`Hash::random_distinct`]).
fn hrandfield_count(ctx: &mut Ctx<'_>, key: &[u8], l: i64, withvalues: bool) -> CmdResult {
    let db = ctx.db();
    db.with_shard(key, |s| {
        let Some(h) = read_hash(ctx, s, key)? else {
            ctx.out.array(0);
            return Ok(());
        };
        let unique = l >= 0;
        let count = usize::try_from(l.unsigned_abs()).unwrap_or(usize::MAX);
        if count == 0 {
            ctx.out.array(0);
            return Ok(());
        }
        let resp2_flat = withvalues && !ctx.out.resp3;
        let mut rand = rng();
        let out = &mut *ctx.out;
        if !unique || count == 1 {
            let avg = h.byte_len() / h.len().max(1);
            let estimate = count.saturating_mul(avg.saturating_add(16));
            if estimate > MAX_RANDOM_REPLY_BYTES {
                return Err(CmdError::err("value is out of range"));
            }
            out.array(if resp2_flat {
                count.saturating_mul(2)
            } else {
                count
            });
            h.random_pairs(count, &mut rand, |k, v| random_reply(out, k, v, withvalues));
            return Ok(());
        }
        let n = count.min(h.len());
        out.array(if resp2_flat { n * 2 } else { n });
        h.random_distinct(count, &mut rand, |k, v| random_reply(out, k, v, withvalues));
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// HSCAN

fn hscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let cursor = cursor_arg(&args[2])?;
    let key = &args[1][..];
    let db = ctx.db();
    db.with_shard(key, |s| {
        let Some(h) = read_hash(ctx, s, key)? else {
            ctx.out.array(2);
            ctx.out.bulk(b"0");
            ctx.out.array(0);
            return Ok(());
        };
        // Options are parsed after the lookup, as in `scanGenericCommand`.
        let ScanOptions { count, pattern, .. } = scan_options(args, 3, false)?;
        let mut found: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut collect = |k: &[u8], v: &[u8]| found.push((k.to_vec(), v.to_vec()));
        let next = if h.is_listpack() {
            h.scan(0, &mut collect)
        } else {
            // COUNT counts fields and values, like Redis's doubled count;
            // at most ten times as many buckets are visited.
            let want = usize::try_from(count)
                .unwrap_or(usize::MAX)
                .saturating_mul(2);
            let mut budget = want.saturating_mul(10);
            let mut cur = cursor;
            let mut items = 0usize;
            loop {
                cur = h.scan(cur, |k, v| {
                    collect(k, v);
                    items += 2;
                });
                if cur == 0 || budget == 0 || items >= want {
                    break cur;
                }
                budget -= 1;
            }
        };
        if let Some(p) = pattern {
            found.retain(|(k, _)| glob_match(p, k, false));
        }
        ctx.out.array(2);
        ctx.out.bulk(itoa::Buffer::new().format(next).as_bytes());
        ctx.out.array(found.len() * 2);
        for (k, v) in &found {
            ctx.out.bulk(k);
            ctx.out.bulk(v);
        }
        Ok(())
    })
}
