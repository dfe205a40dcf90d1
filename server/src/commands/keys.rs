//! Keyspace commands: `DEL UNLINK EXISTS TYPE RENAME RENAMENX COPY MOVE TOUCH
//! KEYS SCAN RANDOMKEY DBSIZE FLUSHDB FLUSHALL EXPIRE PEXPIRE EXPIREAT
//! PEXPIREAT TTL PTTL EXPIRETIME PEXPIRETIME PERSIST OBJECT`.

use bytes::Bytes;
use ferrite_storage::{glob_match, idle_seconds, Shard, Value, NO_EXPIRE};

use crate::command::ctx::{int_arg, is};
use crate::command::scan::{cursor_arg, scan_options, ScanOptions};
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::pubsub::notify::GENERIC;

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("del", del),
    ("unlink", del),
    ("exists", exists),
    ("type", type_cmd),
    ("rename", rename),
    ("renamenx", renamenx),
    ("copy", copy),
    ("move", move_cmd),
    ("touch", touch),
    ("keys", keys),
    ("scan", scan),
    ("randomkey", randomkey),
    ("dbsize", dbsize),
    ("flushdb", flushdb),
    ("flushall", flushall),
    ("expire", expire),
    ("pexpire", pexpire),
    ("expireat", expireat),
    ("pexpireat", pexpireat),
    ("ttl", ttl),
    ("pttl", pttl),
    ("expiretime", expiretime),
    ("pexpiretime", pexpiretime),
    ("persist", persist),
    ("object|encoding", object_encoding),
    ("object|refcount", object_refcount),
    ("object|idletime", object_idletime),
    ("object|freq", object_freq),
    ("object|help", object_help),
];

/// `ERR source and destination objects are the same` (Redis's `sameobjecterr`).
fn same_object() -> CmdError {
    CmdError::err("source and destination objects are the same")
}

/// Counts a read lookup in `keyspace_hits`/`keyspace_misses`, as Redis's
/// `lookupKeyRead` does.
fn read_stat(ctx: &Ctx<'_>, found: bool) {
    if found {
        ctx.srv.stats.hit();
    } else {
        ctx.srv.stats.miss();
    }
}

/// Whether `key` matches a `KEYS`/`SCAN` pattern; a lone `*` matches
/// everything without calling the matcher (so the empty key matches too).
fn pattern_matches(pattern: &[u8], key: &[u8]) -> bool {
    pattern == b"*" || glob_match(pattern, key, false)
}

fn is_expired(expire_at: i64, now: i64) -> bool {
    expire_at != NO_EXPIRE && expire_at <= now
}

// ---------------------------------------------------------------- DEL & co

/// `DEL` and `UNLINK`: `UNLINK` (and `DEL` under
/// `lazyfree-lazy-user-del`) frees large values in the background.
fn del(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let keys = &args[1..];
    let now = ctx.now;
    let c = &*ctx;
    let lazy = ctx.cmd.name() == "unlink"
        || crate::lazyfree::LAZY_USER_DEL.load(std::sync::atomic::Ordering::Relaxed);
    let n = c.db().with_shards(keys.iter().map(|k| &k[..]), |g| {
        let mut n = 0;
        for k in keys {
            if let Some(e) = g.shard(k).remove(k, now) {
                n += 1;
                c.notify(GENERIC, "del", k);
                if lazy {
                    crate::lazyfree::free(e.value);
                }
            }
        }
        if n > 0 {
            c.propagate_argv(args);
        }
        n
    });
    ctx.out.integer(n);
    Ok(())
}

fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let keys = &args[1..];
    let now = ctx.now;
    let c = &*ctx;
    let n = c.db().with_shards(keys.iter().map(|k| &k[..]), |g| {
        let mut n = 0;
        for k in keys {
            let found = g.shard(k).contains(k, now);
            read_stat(c, found);
            n += i64::from(found);
        }
        n
    });
    ctx.out.integer(n);
    Ok(())
}

fn touch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let keys = &args[1..];
    let now = ctx.now;
    let c = &*ctx;
    let n = c.db().with_shards(keys.iter().map(|k| &k[..]), |g| {
        let mut n = 0;
        for k in keys {
            let found = g.shard(k).get(k, now).is_some();
            read_stat(c, found);
            n += i64::from(found);
        }
        n
    });
    ctx.out.integer(n);
    Ok(())
}

fn type_cmd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let t = ctx.db().with_shard(&args[1], |s| {
        s.peek(&args[1], now).map(|e| e.value.type_name())
    });
    read_stat(ctx, t.is_some());
    ctx.out.simple(t.unwrap_or("none").as_bytes());
    Ok(())
}

// ---------------------------------------------------------------- RENAME

fn rename_generic(ctx: &mut Ctx<'_>, args: &[Bytes], nx: bool) -> CmdResult {
    let (src, dst) = (&args[1][..], &args[2][..]);
    let now = ctx.now;
    let c = &*ctx;
    // Some(reply) or None for "no such key".
    let r = c.db().with_shards([src, dst], |g| {
        if !g.shard(src).contains(src, now) {
            return None;
        }
        if src == dst {
            return Some(false);
        }
        if nx && g.shard(dst).contains(dst, now) {
            return Some(false);
        }
        let e = g.shard(src).remove(src, now)?;
        g.shard(dst).set(dst, e.value, e.expire_at, now);
        c.propagate_argv(args);
        c.notify(GENERIC, "rename_from", src);
        c.notify(GENERIC, "rename_to", dst);
        Some(true)
    });
    match r {
        None => Err(CmdError::NoSuchKey),
        Some(done) => {
            if nx {
                ctx.out.integer(i64::from(done));
            } else {
                ctx.out.ok();
            }
            Ok(())
        }
    }
}

fn rename(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    rename_generic(ctx, args, false)
}

fn renamenx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    rename_generic(ctx, args, true)
}

/// Parses a database index argument as Redis's `getIntFromObjectOrReply`
/// then `selectDb` do.
fn db_index_arg(ctx: &Ctx<'_>, arg: &[u8]) -> Result<usize, CmdError> {
    let n = int_arg(arg)?;
    if n < i64::from(i32::MIN) || n > i64::from(i32::MAX) {
        return Err(CmdError::NotInteger);
    }
    if n < 0 || n as usize >= ctx.srv.store.db_count() {
        return Err(CmdError::DbIndexOutOfRange);
    }
    Ok(n as usize)
}

/// The copy step of `COPY` once both shards are locked; returns the reply.
fn copy_locked(
    c: &Ctx<'_>,
    args: &[Bytes],
    ss: &mut Shard,
    ds: Option<&mut Shard>,
    replace: bool,
) -> i64 {
    let (src, dst) = (&args[1][..], &args[2][..]);
    let now = c.now;
    let entry = ss.get(src, now).map(|e| (e.value.clone(), e.expire_at));
    read_stat(c, entry.is_some());
    let Some((value, expire_at)) = entry else {
        return 0;
    };
    let ds = match ds {
        Some(d) => d,
        None => ss,
    };
    if ds.contains(dst, now) {
        if !replace {
            return 0;
        }
        ds.delete(dst, now);
    }
    let dstdb = ds.db();
    ds.set(dst, value, expire_at, now);
    c.propagate_argv(args);
    c.notify_db(GENERIC, "copy_to", dst, dstdb);
    1
}

fn copy(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let srcdb = ctx.client.db;
    let mut dstdb = srcdb;
    let mut replace = false;
    let mut j = 3;
    while j < args.len() {
        let more = args.len() - j - 1;
        if is(&args[j], "replace") {
            replace = true;
        } else if is(&args[j], "db") && more >= 1 {
            dstdb = db_index_arg(ctx, &args[j + 1])?;
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let (src, dst) = (&args[1][..], &args[2][..]);
    if srcdb == dstdb && src == dst {
        return Err(same_object());
    }
    let c = &*ctx;
    let n = if srcdb == dstdb {
        c.db().with_shards([src, dst], |g| {
            if c.db().shard_of(src) == c.db().shard_of(dst) {
                copy_locked(c, args, g.shard(src), None, replace)
            } else {
                // Two distinct shards: take the destination out of the group
                // borrow by copying the source entry first.
                let now = c.now;
                let entry = g
                    .shard(src)
                    .get(src, now)
                    .map(|e| (e.value.clone(), e.expire_at));
                read_stat(c, entry.is_some());
                let Some((value, expire_at)) = entry else {
                    return 0;
                };
                let ds = g.shard(dst);
                if ds.contains(dst, now) {
                    if !replace {
                        return 0;
                    }
                    ds.delete(dst, now);
                }
                ds.set(dst, value, expire_at, now);
                c.propagate_argv(args);
                c.notify(GENERIC, "copy_to", dst);
                1
            }
        })
    } else {
        c.srv
            .store
            .with_key_in_two_dbs(srcdb, dstdb, src, dst, |sa, sb| {
                copy_locked(c, args, sa, Some(sb), replace)
            })
    };
    ctx.out.integer(n);
    Ok(())
}

fn move_cmd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let srcdb = ctx.client.db;
    let dstdb = db_index_arg(ctx, &args[2])?;
    if srcdb == dstdb {
        return Err(same_object());
    }
    let key = &args[1][..];
    let now = ctx.now;
    let c = &*ctx;
    let n = c
        .srv
        .store
        .with_key_in_two_dbs(srcdb, dstdb, key, key, |sa, sb| {
            if !sa.contains(key, now) || sb.contains(key, now) {
                return 0;
            }
            let Some(e) = sa.remove(key, now) else {
                return 0;
            };
            sb.set(key, e.value, e.expire_at, now);
            c.propagate_argv(args);
            c.notify_db(GENERIC, "move_from", key, srcdb);
            c.notify_db(GENERIC, "move_to", key, dstdb);
            1
        });
    ctx.out.integer(n);
    Ok(())
}

// ---------------------------------------------------------------- KEYS/SCAN

fn keys(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let pattern = &args[1][..];
    let now = ctx.now;
    let db = ctx.db();
    let mut found: Vec<Vec<u8>> = Vec::new();
    for i in 0..db.shard_count() {
        db.with_shard_at(i, |s| {
            for (k, e) in s.iter() {
                if pattern_matches(pattern, k) && !is_expired(e.expire_at, now) {
                    found.push(k.to_vec());
                }
            }
        });
    }
    ctx.out.array(found.len());
    for k in &found {
        ctx.out.bulk(k);
    }
    Ok(())
}

/// A `SCAN` cursor: the shard index in the low bits, the shard's dict
/// cursor above them. `shards` is a power of two.
fn encode_cursor(shard: usize, dict_cursor: u64, shards: usize) -> u64 {
    let bits = shards.trailing_zeros();
    (dict_cursor << bits) | shard as u64
}

/// Splits a `SCAN` cursor into (shard index, dict cursor).
fn decode_cursor(cursor: u64, shards: usize) -> (usize, u64) {
    let bits = shards.trailing_zeros();
    ((cursor & (shards as u64 - 1)) as usize, cursor >> bits)
}

fn scan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let cursor = cursor_arg(&args[1])?;
    let ScanOptions {
        count,
        pattern,
        typename,
    } = scan_options(args, 2, true)?;
    let now = ctx.now;
    let db = ctx.db();
    let shards = db.shard_count();
    let (mut shard, mut dcur) = decode_cursor(cursor, shards);
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut max_iterations = count.saturating_mul(10);
    let next = loop {
        let n = db.with_shard_at(shard, |s| {
            let mut dead: Vec<Vec<u8>> = Vec::new();
            let next = s.scan(dcur, |k, e| {
                if pattern.is_some_and(|p| !glob_match(p, k, false)) {
                    return;
                }
                if typename.is_some_and(|t| !is(t, e.value.type_name())) {
                    return;
                }
                if is_expired(e.expire_at, now) {
                    dead.push(k.to_vec());
                    return;
                }
                found.push(k.to_vec());
            });
            // Lazily expire what the scan met, as Redis's scan does.
            for k in dead {
                s.contains(&k, now);
            }
            next
        });
        if n == 0 {
            shard += 1;
            dcur = 0;
            if shard >= shards {
                break 0;
            }
        } else {
            dcur = n;
        }
        max_iterations -= 1;
        if found.len() as i64 >= count || max_iterations <= 0 {
            break encode_cursor(shard, dcur, shards);
        }
    };
    let mut buf = itoa::Buffer::new();
    ctx.out.array(2);
    ctx.out.bulk(buf.format(next).as_bytes());
    ctx.out.array(found.len());
    for k in &found {
        ctx.out.bulk(k);
    }
    Ok(())
}

fn randomkey(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let db = ctx.db();
    let shards = db.shard_count();
    loop {
        let lens: Vec<usize> = (0..shards).map(|i| db.peek_at(i, |s| s.len())).collect();
        let total: usize = lens.iter().sum();
        if total == 0 {
            ctx.out.null();
            return Ok(());
        }
        // Pick a shard weighted by its size, so every key is equally likely.
        let mut pick = (rand::random::<u64>() % total as u64) as usize;
        let mut idx = 0;
        for (i, &l) in lens.iter().enumerate() {
            if pick < l {
                idx = i;
                break;
            }
            pick -= l;
        }
        if let Some(k) = db.with_shard_at(idx, |s| s.random_key(now, rand::random::<u64>)) {
            ctx.out.bulk(&k);
            return Ok(());
        }
    }
}

fn dbsize(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let n = ctx.db().len();
    ctx.out.integer(n as i64);
    Ok(())
}

/// Whether a `FLUSHDB`/`FLUSHALL` frees in the background: `ASYNC`, or no
/// option under `lazyfree-lazy-user-flush`; `SYNC` never.
fn flush_async(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<bool, CmdError> {
    match args.len() {
        1 => Ok(ctx.srv.config.read().lazyfree_lazy_user_flush),
        2 if is(&args[1], "sync") => Ok(false),
        2 if is(&args[1], "async") => Ok(true),
        _ => Err(CmdError::Syntax),
    }
}

fn flushdb(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if flush_async(ctx, args)? {
        let (n, parts) = ctx.db().detach_all();
        crate::lazyfree::free_databases(parts, n as u64);
    } else {
        ctx.db().clear();
    }
    // Cached keys are not per database: every tracking client drops all.
    ctx.srv.tracking.flushed();
    // Redis forces the propagation even when the database was empty.
    ctx.propagate_argv(args);
    ctx.out.ok();
    Ok(())
}

fn flushall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let lazy = flush_async(ctx, args)?;
    // First, so the running save's captures need not serialize every
    // shard before the flush can lock it.
    crate::persist::cancel_bgsave(ctx.srv);
    if lazy {
        crate::lazyfree::flush_all_async(&ctx.srv.store);
    } else {
        ctx.srv.store.flush_all();
    }
    crate::persist::after_flushall(ctx.srv);
    ctx.srv.tracking.flushed();
    // Propagated in the client's database, as Redis's call() does (a SELECT
    // precedes it when the stream was elsewhere).
    ctx.propagate_argv(args);
    ctx.out.ok();
    Ok(())
}

// ---------------------------------------------------------------- EXPIRE

/// The `NX | XX | GT | LT` options of the `EXPIRE` family.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

/// Parses the options after the time, with Redis 7.0's errors.
fn parse_expire_flags(opts: &[Bytes]) -> Result<ExpireFlags, CmdError> {
    let mut f = ExpireFlags::default();
    for o in opts {
        if is(o, "nx") {
            f.nx = true;
        } else if is(o, "xx") {
            f.xx = true;
        } else if is(o, "gt") {
            f.gt = true;
        } else if is(o, "lt") {
            f.lt = true;
        } else {
            return Err(CmdError::err(format!(
                "Unsupported option {}",
                String::from_utf8_lossy(o)
            )));
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err(CmdError::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if f.gt && f.lt {
        return Err(CmdError::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    Ok(f)
}

/// The absolute expiry in ms from the argument, or `None` on overflow.
fn absolute_when(when: i64, basetime: i64, seconds: bool) -> Option<i64> {
    let when = if seconds {
        when.checked_mul(1000)?
    } else {
        when
    };
    if when > i64::MAX - basetime {
        return None;
    }
    Some(when + basetime)
}

/// Whether the options allow setting `when` over the key's `current` expiry
/// ([`NO_EXPIRE`] for none), as `expireGenericCommand` decides.
fn expire_allowed(f: ExpireFlags, current: i64, when: i64) -> bool {
    let none = current == NO_EXPIRE;
    if f.nx && !none {
        return false;
    }
    if f.xx && none {
        return false;
    }
    if f.gt && (none || when <= current) {
        return false;
    }
    if f.lt && !none && when >= current {
        return false;
    }
    true
}

fn expire_generic(ctx: &mut Ctx<'_>, args: &[Bytes], relative: bool, seconds: bool) -> CmdResult {
    let flags = parse_expire_flags(&args[3..])?;
    let raw = int_arg(&args[2])?;
    let now = ctx.now;
    let basetime = if relative { now } else { 0 };
    let when = absolute_when(raw, basetime, seconds)
        .ok_or_else(|| CmdError::InvalidExpire(ctx.cmd.name().to_string()))?;
    let key = &args[1][..];
    let c = &*ctx;
    let n = c.db().with_shard(key, |s| {
        let Some(current) = s.peek(key, now).map(|e| e.expire_at) else {
            return 0;
        };
        if !expire_allowed(flags, current, when) {
            return 0;
        }
        if when <= now {
            s.remove(key, now);
            c.propagate(&[b"DEL", key]);
            c.notify(GENERIC, "del", key);
        } else {
            s.set_expire(key, when, now);
            let mut buf = itoa::Buffer::new();
            c.propagate(&[b"PEXPIREAT", key, buf.format(when).as_bytes()]);
            c.notify(GENERIC, "expire", key);
        }
        1
    });
    ctx.out.integer(n);
    Ok(())
}

fn expire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, args, true, true)
}

fn pexpire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, args, true, false)
}

fn expireat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, args, false, true)
}

fn pexpireat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, args, false, false)
}

/// The reply of `TTL`/`PTTL`/`EXPIRETIME`/`PEXPIRETIME` for a key's expiry.
fn ttl_reply(expire_at: Option<i64>, now: i64, ms: bool, absolute: bool) -> i64 {
    match expire_at {
        None => -2,
        Some(NO_EXPIRE) => -1,
        Some(at) => {
            let t = (if absolute { at } else { at - now }).max(0);
            if ms {
                t
            } else {
                (t + 500) / 1000
            }
        }
    }
}

fn ttl_generic(ctx: &mut Ctx<'_>, args: &[Bytes], ms: bool, absolute: bool) -> CmdResult {
    let now = ctx.now;
    let at = ctx
        .db()
        .with_shard(&args[1], |s| s.peek(&args[1], now).map(|e| e.expire_at));
    read_stat(ctx, at.is_some());
    ctx.out.integer(ttl_reply(at, now, ms, absolute));
    Ok(())
}

fn ttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, args, false, false)
}

fn pttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, args, true, false)
}

fn expiretime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, args, false, true)
}

fn pexpiretime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    ttl_generic(ctx, args, true, true)
}

fn persist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let now = ctx.now;
    let c = &*ctx;
    let n = c
        .db()
        .with_shard(key, |s| match s.peek(key, now).map(|e| e.expire_at) {
            Some(at) if at != NO_EXPIRE => {
                s.set_expire(key, NO_EXPIRE, now);
                c.propagate_argv(args);
                c.notify(GENERIC, "persist", key);
                1
            }
            _ => 0,
        });
    ctx.out.integer(n);
    Ok(())
}

// ---------------------------------------------------------------- OBJECT

/// Looks the key up as `objectCommandLookup` (no LRU touch, stats counted);
/// `None` writes the null reply.
fn object_lookup<R>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    f: impl FnOnce(&ferrite_storage::Entry) -> R,
) -> Option<R> {
    let now = ctx.now;
    let r = ctx.db().with_shard(key, |s| s.peek(key, now).map(f));
    read_stat(ctx, r.is_some());
    if r.is_none() {
        ctx.out.null();
    }
    r
}

/// Redis shares the integers 0..10000 (`OBJ_SHARED_INTEGERS`) unless a
/// maxmemory LRU/LFU policy is in effect; shared objects report `INT_MAX`.
fn refcount_of(value: &Value, maxmemory: i64, policy: ferrite_storage::Policy) -> i64 {
    use ferrite_storage::Policy;
    let no_shared = maxmemory != 0
        && (policy.is_lfu() || matches!(policy, Policy::AllKeysLru | Policy::VolatileLru));
    if !no_shared && value.encoding() == "int" {
        if let Some(n) = value.as_str().and_then(ferrite_protocol::parse_i64) {
            if (0..10000).contains(&n) {
                return i64::from(i32::MAX);
            }
        }
    }
    1
}

fn object_encoding(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if let Some(enc) = object_lookup(ctx, &args[2], |e| e.value.encoding()) {
        ctx.out.bulk(enc.as_bytes());
    }
    Ok(())
}

fn object_refcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let maxmemory = ctx
        .srv
        .hot
        .maxmemory
        .load(std::sync::atomic::Ordering::Relaxed);
    let policy = ctx.srv.store.stats().access.policy();
    if let Some(n) = object_lookup(ctx, &args[2], |e| refcount_of(&e.value, maxmemory, policy)) {
        ctx.out.integer(n);
    }
    Ok(())
}

fn lfu_policy(ctx: &Ctx<'_>) -> bool {
    ctx.srv.store.stats().access.lfu()
}

fn object_idletime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let Some(lru) = object_lookup(ctx, &args[2], |e| e.atime) else {
        return Ok(());
    };
    if lfu_policy(ctx) {
        return Err(CmdError::err("An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."));
    }
    ctx.out.integer(idle_seconds(lru, now) as i64);
    Ok(())
}

fn object_freq(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Some(meta) = object_lookup(ctx, &args[2], |e| e.lfu) else {
        return Ok(());
    };
    if !lfu_policy(ctx) {
        return Err(CmdError::err("An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."));
    }
    let decay = ctx.srv.store.stats().access.decay_time();
    ctx.out
        .integer(i64::from(ferrite_storage::evict::lfu_decayed(
            meta, ctx.now, decay,
        )));
    Ok(())
}

fn object_help(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    const LINES: &[&str] = &[
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    Return the access frequency index of the <key>. The returned integer is",
        "    proportional to the logarithm of the recent access frequency of the key.",
        "IDLETIME <key>",
        "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.",
    ];
    crate::commands::connection::write_help(ctx, "OBJECT", LINES);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn cursor_roundtrip() {
        for shards in [1usize, 2, 16, 64] {
            for shard in [0, shards - 1] {
                for dc in [0u64, 1, 12345, 1 << 40] {
                    let c = encode_cursor(shard, dc, shards);
                    assert_eq!(decode_cursor(c, shards), (shard, dc));
                }
            }
        }
        assert_eq!(encode_cursor(0, 0, 16), 0);
    }

    #[test]
    fn expire_flags() {
        assert_eq!(parse_expire_flags(&[]).unwrap(), ExpireFlags::default());
        let f = parse_expire_flags(&b(&["xx", "GT"])).unwrap();
        assert!(f.xx && f.gt && !f.nx && !f.lt);
        assert_eq!(
            parse_expire_flags(&b(&["nx", "xx"]))
                .unwrap_err()
                .to_string(),
            "ERR NX and XX, GT or LT options at the same time are not compatible"
        );
        assert_eq!(
            parse_expire_flags(&b(&["gt", "lt"]))
                .unwrap_err()
                .to_string(),
            "ERR GT and LT options at the same time are not compatible"
        );
        assert_eq!(
            parse_expire_flags(&b(&["nx", "foo"]))
                .unwrap_err()
                .to_string(),
            "ERR Unsupported option foo"
        );
    }

    #[test]
    fn expire_rules() {
        let f = |s: &[&str]| parse_expire_flags(&b(s)).unwrap();
        assert!(expire_allowed(f(&["nx"]), NO_EXPIRE, 10));
        assert!(!expire_allowed(f(&["nx"]), 5, 10));
        assert!(!expire_allowed(f(&["xx"]), NO_EXPIRE, 10));
        assert!(expire_allowed(f(&["xx"]), 5, 10));
        assert!(!expire_allowed(f(&["gt"]), NO_EXPIRE, 10));
        assert!(expire_allowed(f(&["gt"]), 5, 10));
        assert!(!expire_allowed(f(&["gt"]), 10, 10));
        assert!(expire_allowed(f(&["lt"]), NO_EXPIRE, 10));
        assert!(expire_allowed(f(&["lt"]), 20, 10));
        assert!(!expire_allowed(f(&["lt"]), 10, 10));
    }

    #[test]
    fn expire_overflow() {
        assert_eq!(absolute_when(5, 1000, true), Some(6000));
        assert_eq!(absolute_when(i64::MAX / 1000 + 1, 0, true), None);
        assert_eq!(absolute_when(i64::MAX, 1, false), None);
        assert_eq!(absolute_when(-5, 0, false), Some(-5));
    }

    #[test]
    fn ttl_replies() {
        assert_eq!(ttl_reply(None, 0, false, false), -2);
        assert_eq!(ttl_reply(Some(NO_EXPIRE), 0, false, false), -1);
        assert_eq!(ttl_reply(Some(1600), 0, false, false), 2);
        assert_eq!(ttl_reply(Some(1400), 0, false, false), 1);
        assert_eq!(ttl_reply(Some(1400), 2000, true, false), 0);
        assert_eq!(ttl_reply(Some(1400), 2000, true, true), 1400);
    }

    #[test]
    fn refcount_shared_ints() {
        let v = Value::string(&b"100"[..]);
        assert_eq!(
            refcount_of(&v, 0, ferrite_storage::Policy::NoEviction),
            i64::from(i32::MAX)
        );
        assert_eq!(refcount_of(&v, 100, ferrite_storage::Policy::AllKeysLru), 1);
        assert_eq!(
            refcount_of(
                &Value::string(&b"10000"[..]),
                0,
                ferrite_storage::Policy::NoEviction
            ),
            1
        );
        assert_eq!(
            refcount_of(
                &Value::string(&b"abc"[..]),
                0,
                ferrite_storage::Policy::NoEviction
            ),
            1
        );
    }
}
