//! Set commands: `SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP
//! SRANDMEMBER SMOVE SINTER SINTERCARD SUNION SDIFF SINTERSTORE SUNIONSTORE
//! SDIFFSTORE SSCAN`, following Redis 7.0's `t_set.c` case by case: the
//! replies, the errors and, through `OBJECT ENCODING`, which code path built
//! a set are all observable.
//!
//! Each handler parses its arguments first, then runs one closure with the
//! shard lock(s) of its keys held; writes propagate their deterministic
//! effect from inside that closure. Multi-key commands lock every key's
//! shard at once (`Db::with_shards`); a [`ShardGroup`] lends one shard at a
//! time, so algorithms that combine sets copy candidates out of one set and
//! test them against the others one set at a time.

use std::collections::HashSet;

use bytes::Bytes;
use ferrite_protocol::ReplyBuf;
use ferrite_storage::set::Member;
use ferrite_storage::{glob_match, Set, Shard, ShardGroup, Value, NO_EXPIRE};
use rand::Rng;

use crate::command::ctx::{int_arg, is, positive_arg, MUST_BE_POSITIVE};
use crate::command::scan::{scan_options, ScanOptions};
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::pubsub::notify::{GENERIC, SET};

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("sadd", sadd),
    ("srem", srem),
    ("smembers", smembers),
    ("sismember", sismember),
    ("smismember", smismember),
    ("scard", scard),
    ("spop", spop),
    ("srandmember", srandmember),
    ("smove", smove),
    ("sinter", sinter),
    ("sintercard", sintercard),
    ("sinterstore", sinterstore),
    ("sunion", sunion),
    ("sunionstore", sunionstore),
    ("sdiff", sdiff),
    ("sdiffstore", sdiffstore),
    ("sscan", sscan),
];

/// `SPOP` with a count builds a new set from the survivors when the set is
/// at most this many times bigger than what remains (`SPOP_MOVE_STRATEGY_MUL`).
const SPOP_MOVE_STRATEGY_MUL: u64 = 5;

/// `SRANDMEMBER` copies the whole set and removes random members when it is
/// at most this many times bigger than the count (`SRANDMEMBER_SUB_STRATEGY_MUL`).
const SRANDMEMBER_SUB_STRATEGY_MUL: u64 = 3;

/// Most elements one `SRANDMEMBER` with a negative count may return. Redis
/// streams such a reply until the client's output buffer limit closes the
/// connection; we build replies in memory, so an absurd count is refused
/// instead of exhausting memory.
const MAX_RANDOM_REPLY: u64 = 1 << 26;

/// Members tested per round when intersecting (bounds the copy of the
/// smallest set and lets `SINTERCARD ... LIMIT` stop early).
const INTER_CHUNK: usize = 256;

// ---------------------------------------------------------------------------
// Shared helpers

/// The set held by a value, or WRONGTYPE.
fn set_of(v: &Value) -> Result<&Set, CmdError> {
    match v {
        Value::Set(s) => Ok(s),
        _ => Err(CmdError::WrongType),
    }
}

/// A read lookup counting keyspace hits and misses (`lookupKeyRead`).
fn read_set<'s>(ctx: &Ctx<'_>, s: &'s mut Shard, key: &[u8]) -> Result<Option<&'s Set>, CmdError> {
    ctx.read_lookup(s, key, set_of)
}

/// A write lookup (`lookupKeyWrite`): whether a set is there; WRONGTYPE for
/// another type.
fn write_exists(ctx: &Ctx<'_>, s: &mut Shard, key: &[u8]) -> Result<bool, CmdError> {
    match s.peek(key, ctx.now) {
        None => Ok(false),
        Some(e) => set_of(&e.value).map(|_| true),
    }
}

/// Runs `f` on the set at `key`, which the caller checked is a set; keeps
/// the shard's memory accounting right. Returns `None` if it is not a set.
fn modify_set<R>(s: &mut Shard, key: &[u8], now: i64, f: impl FnOnce(&mut Set) -> R) -> Option<R> {
    s.modify(key, now, |e| match &mut e.value {
        Value::Set(set) => Some(f(set)),
        _ => None,
    })
    .flatten()
}

/// The set at `key` after [`lookup_sources`] checked its type (no stats).
fn peek_set<'g>(g: &'g mut ShardGroup<'_>, key: &[u8], now: i64) -> Option<&'g Set> {
    match &g.shard(key).peek(key, now)?.value {
        Value::Set(s) => Some(s),
        _ => None,
    }
}

/// Appends one member as a bulk string.
fn reply_member(out: &mut ReplyBuf, m: Member<'_>) {
    match m {
        Member::Int(n) => out.bulk_int(n),
        Member::Bytes(b) => out.bulk(b),
    }
}

/// A member copied out of a set, so other shards can be borrowed meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Owned {
    Int(i64),
    Bytes(Box<[u8]>),
}

impl Owned {
    fn of(m: Member<'_>) -> Owned {
        match m {
            Member::Int(n) => Owned::Int(n),
            Member::Bytes(b) => Owned::Bytes(b.into()),
        }
    }

    fn member(&self) -> Member<'_> {
        match self {
            Owned::Int(n) => Member::Int(*n),
            Owned::Bytes(b) => Member::Bytes(b),
        }
    }
}

/// Looks up every source key in order as `lookupKeyRead` (hits, misses,
/// lazy expiry); returns each one's cardinality, `None` for a missing key.
/// The first key holding another type fails the command.
fn lookup_sources(
    ctx: &Ctx<'_>,
    g: &mut ShardGroup<'_>,
    keys: &[Bytes],
) -> Result<Vec<Option<usize>>, CmdError> {
    let mut lens = Vec::with_capacity(keys.len());
    for k in keys {
        lens.push(read_set(ctx, g.shard(k), k)?.map(Set::len));
    }
    Ok(lens)
}

/// Stores the result of a `*STORE` command (`setKey`, clearing any TTL),
/// or deletes the destination when the result is empty. Returns whether
/// the keyspace changed (Redis's `dirty`), which decides propagation.
fn store_result(
    ctx: &Ctx<'_>,
    g: &mut ShardGroup<'_>,
    dst: &[u8],
    result: Set,
    event: &str,
) -> bool {
    let s = g.shard(dst);
    if result.is_empty() {
        let removed = s.delete(dst, ctx.now);
        if removed {
            ctx.notify(GENERIC, "del", dst);
        }
        removed
    } else {
        s.set(dst, Value::Set(result), NO_EXPIRE, ctx.now);
        ctx.notify(SET, event, dst);
        true
    }
}

fn max_intset(ctx: &Ctx<'_>) -> usize {
    ctx.enc().set_max_intset_entries
}

// ---------------------------------------------------------------------------
// Single-key commands

fn sadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let members = &args[2..];
    let max = max_intset(ctx);
    let now = ctx.now;
    let db = ctx.db();
    db.with_shard(key, |s| {
        let added = if write_exists(ctx, s, key)? {
            let n = s
                .quietly(|s| {
                    modify_set(s, key, now, |set| {
                        members.iter().filter(|m| set.add(m, max)).count()
                    })
                })
                .unwrap_or(0);
            if n > 0 {
                s.signal_modified(key);
            }
            n
        } else {
            let mut set = Set::for_member(&members[0]);
            let n = members.iter().filter(|m| set.add(m, max)).count();
            s.set(key, Value::Set(set), NO_EXPIRE, now);
            n
        };
        if added > 0 {
            ctx.propagate_argv(args);
            ctx.notify(SET, "sadd", key);
        }
        ctx.out.integer(added as i64);
        Ok(())
    })
}

fn srem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let members = &args[2..];
    let now = ctx.now;
    let db = ctx.db();
    db.with_shard(key, |s| {
        if !write_exists(ctx, s, key)? {
            ctx.out.integer(0);
            return Ok(());
        }
        let (removed, empty) = s
            .quietly(|s| {
                modify_set(s, key, now, |set| {
                    let mut removed = 0;
                    for m in members {
                        if set.remove(m) {
                            removed += 1;
                            if set.is_empty() {
                                break;
                            }
                        }
                    }
                    (removed, set.is_empty())
                })
            })
            .unwrap_or((0, false));
        if removed > 0 {
            s.signal_modified(key);
        }
        if empty {
            s.remove(key, now);
        }
        if removed > 0 {
            ctx.propagate_argv(args);
            ctx.notify(SET, "srem", key);
            if empty {
                ctx.notify(GENERIC, "del", key);
            }
        }
        ctx.out.integer(removed);
        Ok(())
    })
}

fn sismember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let db = ctx.db();
    db.with_shard(key, |s| {
        let found = read_set(ctx, s, key)?.is_some_and(|set| set.contains(&args[2]));
        ctx.out.integer(i64::from(found));
        Ok(())
    })
}

fn smismember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let db = ctx.db();
    db.with_shard(key, |s| {
        let set = read_set(ctx, s, key)?;
        ctx.out.array(args.len() - 2);
        for m in &args[2..] {
            let found = set.is_some_and(|set| set.contains(m));
            ctx.out.integer(i64::from(found));
        }
        Ok(())
    })
}

fn scard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let db = ctx.db();
    db.with_shard(key, |s| {
        let n = read_set(ctx, s, key)?.map_or(0, Set::len);
        ctx.out.integer(n as i64);
        Ok(())
    })
}

fn smembers(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Redis 7.0 serves SMEMBERS with SINTER's code: a set reply.
    sinter_generic(ctx, args, &args[1..], None, None)
}

// ---------------------------------------------------------------------------
// SPOP / SRANDMEMBER

/// `getRangeLongFromObjectOrReply` with Redis's default range message.
fn range_error(min: i64, max: i64) -> CmdError {
    CmdError::err(format!(
        "value is out of range, value must between {min} and {max}"
    ))
}

fn spop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    match args.len() {
        2 => spop_one(ctx, args),
        3 => spop_count(ctx, args),
        _ => Err(CmdError::Syntax),
    }
}

fn spop_one(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let now = ctx.now;
    let db = ctx.db();
    db.with_shard(key, |s| {
        if !write_exists(ctx, s, key)? {
            ctx.out.null();
            return Ok(());
        }
        let mut rng = rand::thread_rng();
        let popped = modify_set(s, key, now, |set| {
            (set.pop_random(&mut rng), set.is_empty())
        });
        let Some((Some(m), empty)) = popped else {
            ctx.out.null();
            return Ok(());
        };
        if empty {
            s.remove(key, now);
        }
        // The effect, not the command: the replica must drop the same member.
        ctx.propagate(&[b"SREM", key, &m]);
        ctx.notify(SET, "spop", key);
        if empty {
            ctx.notify(GENERIC, "del", key);
        }
        ctx.out.bulk(&m);
        Ok(())
    })
}

fn spop_count(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let count = positive_arg(&args[2], MUST_BE_POSITIVE)? as u64;
    let max = max_intset(ctx);
    let now = ctx.now;
    let db = ctx.db();
    db.with_shard(key, |s| {
        if !write_exists(ctx, s, key)? || count == 0 {
            ctx.out.set(0);
            return Ok(());
        }
        let size = s
            .peek(key, now)
            .and_then(|e| set_of(&e.value).ok())
            .map_or(0, |set| set.len() as u64);

        // CASE 1: everything goes: reply with the whole set (built as
        // SUNION builds it) and delete the key.
        if count >= size {
            let mut all = Set::new();
            if let Some(e) = s.peek(key, now) {
                if let Value::Set(set) = &e.value {
                    for m in set.iter() {
                        all.add_member(m, max);
                    }
                }
            }
            s.remove(key, now);
            ctx.propagate(&[b"DEL", key]);
            ctx.notify(SET, "spop", key);
            ctx.notify(GENERIC, "del", key);
            ctx.out.set(all.len());
            for m in all.iter() {
                reply_member(ctx.out, m);
            }
            return Ok(());
        }

        let mut rng = rand::thread_rng();
        let remaining = size - count;
        let mut popped: Vec<Vec<u8>> = Vec::with_capacity(count as usize);
        if remaining * SPOP_MOVE_STRATEGY_MUL > count {
            // CASE 2: few members leave: pop them one by one.
            modify_set(s, key, now, |set| {
                for _ in 0..count {
                    match set.pop_random(&mut rng) {
                        Some(m) => popped.push(m),
                        None => break,
                    }
                }
            });
        } else {
            // CASE 3: most members leave: move the survivors into a new
            // set (whose encoding starts over as setTypeCreate decides)
            // and hand the old set's remains to the client.
            modify_set(s, key, now, |set| {
                let mut survivors: Option<Set> = None;
                for _ in 0..remaining {
                    let Some(m) = set.pop_random(&mut rng) else {
                        break;
                    };
                    survivors
                        .get_or_insert_with(|| Set::for_member(&m))
                        .add(&m, max);
                }
                popped.extend(set.iter().map(Member::to_vec));
                *set = survivors.unwrap_or_default();
            });
        }
        // One SREM with every popped member: the same effect as Redis 7.0's
        // SREM per member, applied atomically.
        let mut argv: Vec<&[u8]> = Vec::with_capacity(popped.len() + 2);
        argv.push(b"SREM");
        argv.push(key);
        argv.extend(popped.iter().map(|m| &m[..]));
        ctx.propagate(&argv);
        ctx.notify(SET, "spop", key);
        ctx.out.set(popped.len());
        for m in &popped {
            ctx.out.bulk(m);
        }
        Ok(())
    })
}

fn srandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    match args.len() {
        2 => srandmember_one(ctx, args),
        3 => srandmember_count(ctx, args),
        _ => Err(CmdError::Syntax),
    }
}

fn srandmember_one(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let db = ctx.db();
    db.with_shard(key, |s| {
        match read_set(ctx, s, key)?.and_then(|set| set.random(&mut rand::thread_rng())) {
            Some(m) => reply_member(ctx.out, m),
            None => ctx.out.null(),
        }
        Ok(())
    })
}

fn srandmember_count(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let l = int_arg(&args[2])?;
    if l == i64::MIN {
        return Err(range_error(-i64::MAX, i64::MAX));
    }
    let (count, uniq) = (l.unsigned_abs(), l >= 0);
    let db = ctx.db();
    db.with_shard(key, |s| {
        let Some(set) = read_set(ctx, s, key)? else {
            ctx.out.array(0);
            return Ok(());
        };
        let out = &mut *ctx.out;
        if count == 0 {
            out.array(0);
            return Ok(());
        }
        let size = set.len() as u64;
        let mut rng = rand::thread_rng();

        // CASE 1: a negative count (or 1): independent draws.
        if !uniq || count == 1 {
            if count > MAX_RANDOM_REPLY {
                return Err(range_error(-(MAX_RANDOM_REPLY as i64), i64::MAX));
            }
            out.array(count as usize);
            for _ in 0..count {
                if let Some(m) = set.random(&mut rng) {
                    reply_member(out, m);
                }
            }
            return Ok(());
        }

        // CASE 2: at least the whole set: the whole set.
        if count >= size {
            out.array(set.len());
            for m in set.iter() {
                reply_member(out, m);
            }
            return Ok(());
        }

        // CASE 3: most of the set: copy it and remove random members.
        // CASE 4: a small part: draw until enough distinct members.
        let picked: Vec<Owned> = if count * SRANDMEMBER_SUB_STRATEGY_MUL > size {
            let mut all: Vec<Owned> = set.iter().map(Owned::of).collect();
            while all.len() as u64 > count {
                let i = rng.gen_range(0..all.len());
                all.swap_remove(i);
            }
            all
        } else {
            let mut seen: HashSet<Owned> = HashSet::with_capacity(count as usize);
            let mut picked = Vec::with_capacity(count as usize);
            while (picked.len() as u64) < count {
                let Some(m) = set.random(&mut rng) else { break };
                let o = Owned::of(m);
                if seen.insert(o.clone()) {
                    picked.push(o);
                }
            }
            picked
        };
        out.array(picked.len());
        for m in &picked {
            reply_member(out, m.member());
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// SMOVE

fn smove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (src, dst, member) = (&args[1][..], &args[2][..], &args[3][..]);
    let max = max_intset(ctx);
    let now = ctx.now;
    let db = ctx.db();
    db.with_shards([src, dst], |g| {
        // A missing source answers 0 before any type check.
        if g.shard(src).peek(src, now).is_none() {
            ctx.out.integer(0);
            return Ok(());
        }
        write_exists(ctx, g.shard(src), src)?;
        let dst_exists = write_exists(ctx, g.shard(dst), dst)?;
        if src == dst {
            let found = peek_set(g, src, now).is_some_and(|set| set.contains(member));
            ctx.out.integer(i64::from(found));
            return Ok(());
        }
        let removed = modify_set(g.shard(src), src, now, |set| {
            (set.remove(member), set.is_empty())
        });
        let Some((true, src_empty)) = removed else {
            ctx.out.integer(0);
            return Ok(());
        };
        if src_empty {
            g.shard(src).remove(src, now);
        }
        let mut added = true;
        if dst_exists {
            // A member already in the destination leaves it untouched (no
            // WATCH invalidation), as Redis only signals dst on a real add.
            let present = peek_set(g, dst, now).is_some_and(|set| set.contains(member));
            if !present {
                modify_set(g.shard(dst), dst, now, |set| set.add(member, max));
            }
            added = !present;
        } else {
            let mut set = Set::for_member(member);
            set.add(member, max);
            g.shard(dst).set(dst, Value::Set(set), NO_EXPIRE, now);
        }
        ctx.propagate_argv(args);
        ctx.notify(SET, "srem", src);
        if src_empty {
            ctx.notify(GENERIC, "del", src);
        }
        if added {
            ctx.notify(SET, "sadd", dst);
        }
        ctx.out.integer(1);
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// SINTER / SINTERCARD / SINTERSTORE

/// What an intersection produces.
enum InterOut {
    /// Reply with the members (SINTER, SMEMBERS).
    Reply,
    /// Count, stopping at the limit (0 = none) (SINTERCARD).
    Card(u64),
    /// Store at this key (SINTERSTORE).
    Store(Bytes),
}

fn sinter(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sinter_generic(ctx, args, &args[1..], None, None)
}

fn sinterstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sinter_generic(ctx, args, &args[2..], Some(args[1].clone()), None)
}

fn sintercard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let numkeys_err = || CmdError::err("numkeys should be greater than 0");
    let numkeys = ferrite_protocol::parse_i64(&args[1]).ok_or_else(numkeys_err)?;
    if numkeys < 1 {
        return Err(numkeys_err());
    }
    let avail = args.len() - 2;
    let numkeys = match usize::try_from(numkeys) {
        Ok(n) if n <= avail => n,
        _ => {
            return Err(CmdError::err(
                "Number of keys can't be greater than number of args",
            ))
        }
    };
    let mut limit: u64 = 0;
    let mut j = 2 + numkeys;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if is(&args[j], "limit") && more > 0 {
            j += 1;
            let neg = || CmdError::err("LIMIT can't be negative");
            let l = ferrite_protocol::parse_i64(&args[j]).ok_or_else(neg)?;
            limit = u64::try_from(l).map_err(|_| neg())?;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    sinter_generic(ctx, args, &args[2..2 + numkeys], None, Some(limit))
}

/// Redis's `sinterGenericCommand`. `dst` for SINTERSTORE, `card_limit` for
/// SINTERCARD.
fn sinter_generic(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    keys: &[Bytes],
    dst: Option<Bytes>,
    card_limit: Option<u64>,
) -> CmdResult {
    let mode = match (dst, card_limit) {
        (Some(d), _) => InterOut::Store(d),
        (None, Some(l)) => InterOut::Card(l),
        (None, None) => InterOut::Reply,
    };
    let max = max_intset(ctx);
    let now = ctx.now;
    let db = ctx.db();
    let dst_key: Option<&[u8]> = match &mode {
        InterOut::Store(d) => Some(d),
        _ => None,
    };
    let all_keys = keys.iter().map(|k| &k[..]).chain(dst_key);
    db.with_shards(all_keys, |g| {
        let lens = lookup_sources(ctx, g, keys)?;

        // Intersection with a missing (empty) set is empty.
        let order: Option<Vec<usize>> = if lens.iter().any(Option::is_none) {
            None
        } else {
            // Smallest first; ties keep key order.
            let mut order: Vec<usize> = (0..keys.len()).collect();
            order.sort_by_key(|&i| lens[i]);
            Some(order)
        };

        let mut members: Vec<Owned> = Vec::new();
        let mut card: u64 = 0;
        if let Some(order) = &order {
            let first = &keys[order[0]][..];
            let others: Vec<&[u8]> = order[1..]
                .iter()
                .map(|&i| &keys[i][..])
                .filter(|k| *k != first)
                .collect();
            let limit = match mode {
                InterOut::Card(l) if l > 0 => l,
                _ => u64::MAX,
            };
            // One distinct set (SMEMBERS, SINTER k k): no copy needed.
            if others.is_empty() && !matches!(mode, InterOut::Store(_)) {
                let set = peek_set(g, first, now);
                let n = set.map_or(0, Set::len);
                match mode {
                    InterOut::Card(_) => ctx.out.integer((n as u64).min(limit) as i64),
                    _ => {
                        ctx.out.set(n);
                        for m in set.iter().flat_map(|s| s.iter()) {
                            reply_member(ctx.out, m);
                        }
                    }
                }
                return Ok(());
            }
            let mut cursor = 0u64;
            'outer: loop {
                // Copy the next chunk of the smallest set's members.
                let mut chunk: Vec<Owned> = Vec::new();
                if let Some(set) = peek_set(g, first, now) {
                    loop {
                        cursor = set.scan(cursor, |m| chunk.push(Owned::of(m)));
                        if cursor == 0 || chunk.len() >= INTER_CHUNK {
                            break;
                        }
                    }
                } else {
                    cursor = 0;
                }
                for k in &others {
                    if let Some(set) = peek_set(g, k, now) {
                        chunk.retain(|m| set.contains_member(m.member()));
                    }
                    if chunk.is_empty() {
                        break;
                    }
                }
                for m in chunk {
                    card += 1;
                    if !matches!(mode, InterOut::Card(_)) {
                        members.push(m);
                    }
                    if card >= limit {
                        break 'outer;
                    }
                }
                if cursor == 0 {
                    break;
                }
            }
        }

        match &mode {
            InterOut::Card(_) => ctx.out.integer(card as i64),
            InterOut::Reply => {
                ctx.out.set(members.len());
                for m in &members {
                    reply_member(ctx.out, m.member());
                }
            }
            InterOut::Store(d) => {
                // SINTERSTORE builds its result from an empty intset.
                let mut result = Set::new();
                for m in &members {
                    result.add_member(m.member(), max);
                }
                let n = result.len();
                if store_result(ctx, g, d, result, "sinterstore") {
                    ctx.propagate_argv(args);
                }
                ctx.out.integer(n as i64);
            }
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// SUNION / SDIFF and their STORE forms

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Diff,
}

fn sunion(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sunion_diff_generic(ctx, args, &args[1..], None, SetOp::Union)
}

fn sunionstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sunion_diff_generic(ctx, args, &args[2..], Some(&args[1]), SetOp::Union)
}

fn sdiff(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sunion_diff_generic(ctx, args, &args[1..], None, SetOp::Diff)
}

fn sdiffstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sunion_diff_generic(ctx, args, &args[2..], Some(&args[1]), SetOp::Diff)
}

/// Redis's `sunionDiffGenericCommand`, including its choice between the two
/// diff algorithms (which decides the result's encoding).
fn sunion_diff_generic(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    keys: &[Bytes],
    dst: Option<&[u8]>,
    op: SetOp,
) -> CmdResult {
    let max = max_intset(ctx);
    let now = ctx.now;
    let db = ctx.db();
    let all_keys = keys.iter().map(|k| &k[..]).chain(dst);
    db.with_shards(all_keys, |g| {
        let lens = lookup_sources(ctx, g, keys)?;
        let first = &keys[0][..];
        let sameset = keys[1..]
            .iter()
            .any(|k| lens[0].is_some() && &k[..] == first);

        let mut result = Set::new();
        match op {
            SetOp::Union => {
                for k in keys {
                    if let Some(set) = peek_set(g, k, now) {
                        for m in set.iter() {
                            result.add_member(m, max);
                        }
                    }
                }
            }
            // A set minus itself is empty.
            SetOp::Diff if sameset => {}
            SetOp::Diff => {
                if let Some(first_len) = lens[0] {
                    let present = lens.iter().flatten();
                    let algo_one = present.clone().count() as u64 * first_len as u64 / 2;
                    let algo_two: u64 = present.map(|&n| n as u64).sum();
                    if algo_one <= algo_two {
                        diff_algo_one(g, keys, &lens, now, max, &mut result);
                    } else {
                        diff_algo_two(g, keys, now, max, &mut result);
                    }
                }
            }
        }

        match dst {
            None => {
                ctx.out.set(result.len());
                for m in result.iter() {
                    reply_member(ctx.out, m);
                }
            }
            Some(d) => {
                let n = result.len();
                let event = match op {
                    SetOp::Union => "sunionstore",
                    _ => "sdiffstore",
                };
                if store_result(ctx, g, d, result, event) {
                    ctx.propagate_argv(args);
                }
                ctx.out.integer(n as i64);
            }
        }
        Ok(())
    })
}

/// Diff algorithm 1: each member of the first set that no other set holds,
/// testing the other sets from the largest down.
fn diff_algo_one(
    g: &mut ShardGroup<'_>,
    keys: &[Bytes],
    lens: &[Option<usize>],
    now: i64,
    max: usize,
    result: &mut Set,
) {
    let mut others: Vec<usize> = (1..keys.len()).filter(|&i| lens[i].is_some()).collect();
    others.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
    let mut candidates: Vec<Owned> = match peek_set(g, &keys[0], now) {
        Some(set) => set.iter().map(Owned::of).collect(),
        None => return,
    };
    for &i in &others {
        if candidates.is_empty() {
            break;
        }
        if let Some(set) = peek_set(g, &keys[i], now) {
            candidates.retain(|m| !set.contains_member(m.member()));
        }
    }
    for m in &candidates {
        result.add_member(m.member(), max);
    }
}

/// Diff algorithm 2: add the first set, remove every member of the others.
fn diff_algo_two(g: &mut ShardGroup<'_>, keys: &[Bytes], now: i64, max: usize, result: &mut Set) {
    for (j, k) in keys.iter().enumerate() {
        let Some(set) = peek_set(g, k, now) else {
            continue;
        };
        for m in set.iter() {
            if j == 0 {
                result.add_member(m, max);
            } else {
                result.remove_member(m);
            }
        }
        if result.is_empty() {
            break;
        }
    }
}

// ---------------------------------------------------------------------------
// SSCAN

/// A cursor as Redis's `parseScanCursorOrReply` (`strtoul`) reads it: as
/// the shared parser, except that the empty string is cursor 0, which is
/// what `strtoul` gives (`SCAN`/`HSCAN`/`ZSCAN` still refuse it: see the
/// issue note).
fn parse_cursor(arg: &[u8]) -> Option<u64> {
    if arg.is_empty() {
        return Some(0);
    }
    crate::command::scan::parse_cursor(arg)
}

fn sscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let cursor = parse_cursor(&args[2]).ok_or_else(|| CmdError::err("invalid cursor"))?;
    let key = &args[1][..];
    let db = ctx.db();
    db.with_shard(key, |s| {
        let Some(set) = read_set(ctx, s, key)? else {
            ctx.out.array(2);
            ctx.out.bulk(b"0");
            ctx.out.array(0);
            return Ok(());
        };
        let ScanOptions { count, pattern, .. } = scan_options(args, 3, false)?;
        let count = count as u64;
        let mut found: Vec<Owned> = Vec::new();
        let mut cursor = cursor;
        // Ten bucket visits per requested element at most, so a sparse
        // table cannot make one call walk the whole table.
        let mut max_iterations = count.saturating_mul(10);
        loop {
            cursor = set.scan(cursor, |m| found.push(Owned::of(m)));
            if cursor == 0 || max_iterations == 0 || found.len() as u64 >= count {
                break;
            }
            max_iterations -= 1;
        }
        if let Some(p) = pattern {
            found.retain(|m| m.member().with_bytes(|b| glob_match(p, b, false)));
        }
        let mut buf = itoa::Buffer::new();
        ctx.out.array(2);
        ctx.out.bulk(buf.format(cursor).as_bytes());
        ctx.out.array(found.len());
        for m in &found {
            reply_member(ctx.out, m.member());
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_parsing_follows_strtoul() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"+5"), Some(5));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551616"), None);
        assert_eq!(parse_cursor(b" 1"), None);
        assert_eq!(parse_cursor(b"1 "), None);
        assert_eq!(parse_cursor(b"x"), None);
        assert_eq!(parse_cursor(b"-"), None);
    }
}
