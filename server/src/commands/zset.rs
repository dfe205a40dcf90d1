//! Sorted-set commands: `ZADD ZINCRBY ZREM ZCARD ZSCORE ZMSCORE ZCOUNT
//! ZLEXCOUNT ZRANK ZREVRANK ZRANGE ZRANGESTORE ZRANGEBYSCORE
//! ZREVRANGEBYSCORE ZRANGEBYLEX ZREVRANGEBYLEX ZREVRANGE ZREMRANGEBYRANK
//! ZREMRANGEBYSCORE ZREMRANGEBYLEX ZPOPMIN ZPOPMAX ZMPOP ZRANDMEMBER ZUNION
//! ZINTER ZDIFF ZUNIONSTORE ZINTERSTORE ZDIFFSTORE ZINTERCARD ZSCAN`.
//!
//! Replies, error texts and the order in which errors are detected follow
//! Redis 7.0's `t_zset.c`, since clients and Redis's own test suite depend
//! on them. Each handler parses first, then runs one closure with the shard
//! lock(s) of its keys held; writes propagate their effect from inside it.
//! The blocking pops (`BZPOPMIN BZPOPMAX BZMPOP`) live with the blocking
//! machinery and pop through [`zpop_into`].

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use ferrite_protocol::ReplyBuf;
use ferrite_storage::{
    glob_match, AddFlags, AddOutcome, LexBound, LexRange, ScoreRange, Set, Shard, Value, ZSet,
    NO_EXPIRE,
};
use rand::Rng;

use crate::command::ctx::{int_arg, is, mpop_args, positive_arg, range_arg, MUST_BE_POSITIVE};
use crate::command::scan::{cursor_arg, scan_options, ScanOptions};
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::shared::Shared;

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("zadd", zadd),
    ("zincrby", zincrby),
    ("zrem", zrem),
    ("zcard", zcard),
    ("zscore", zscore),
    ("zmscore", zmscore),
    ("zcount", zcount),
    ("zlexcount", zlexcount),
    ("zrank", zrank),
    ("zrevrank", zrevrank),
    ("zrange", zrange),
    ("zrangestore", zrangestore),
    ("zrangebyscore", zrangebyscore),
    ("zrevrangebyscore", zrevrangebyscore),
    ("zrangebylex", zrangebylex),
    ("zrevrangebylex", zrevrangebylex),
    ("zrevrange", zrevrange),
    ("zremrangebyrank", zremrangebyrank),
    ("zremrangebyscore", zremrangebyscore),
    ("zremrangebylex", zremrangebylex),
    ("zpopmin", zpopmin),
    ("zpopmax", zpopmax),
    ("zmpop", zmpop),
    ("zrandmember", zrandmember),
    ("zunion", zunion),
    ("zinter", zinter),
    ("zdiff", zdiff),
    ("zunionstore", zunionstore),
    ("zinterstore", zinterstore),
    ("zdiffstore", zdiffstore),
    ("zintercard", zintercard),
    ("zscan", zscan),
];

// ---------------------------------------------------------------------------
// Number and range parsing

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn starts_with_ci(s: &[u8], word: &[u8]) -> bool {
    s.len() >= word.len() && s[..word.len()].eq_ignore_ascii_case(word)
}

/// Hexadecimal digits `[.digits][p[+-]exp]` after a `0x`: (value, bytes used).
fn strtod_hex(s: &[u8]) -> Option<(f64, usize)> {
    let mut m = 0f64;
    let mut exp: i64 = 0;
    let mut i = 0;
    let mut digits = 0;
    let mut seen_dot = false;
    while i < s.len() {
        let c = s[i];
        if c == b'.' && !seen_dot {
            seen_dot = true;
        } else if let Some(d) = (c as char).to_digit(16) {
            m = m * 16.0 + f64::from(d);
            digits += 1;
            if seen_dot {
                exp -= 4;
            }
        } else {
            break;
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if i < s.len() && (s[i] | 0x20) == b'p' {
        let mut j = i + 1;
        let neg = match s.get(j) {
            Some(b'-') => {
                j += 1;
                true
            }
            Some(b'+') => {
                j += 1;
                false
            }
            _ => false,
        };
        if s.get(j).is_some_and(u8::is_ascii_digit) {
            let mut e: i64 = 0;
            while let Some(d) = s.get(j).filter(|c| c.is_ascii_digit()) {
                e = (e * 10 + i64::from(d - b'0')).min(100_000);
                j += 1;
            }
            exp += if neg { -e } else { e };
            i = j;
        }
    }
    // Scale in two steps so an intermediate power cannot overflow early.
    let e = exp.clamp(-4000, 4000) as i32;
    let v = m * 2f64.powi(e / 2) * 2f64.powi(e - e / 2);
    Some((v, i))
}

/// C's `strtod`: (value, bytes consumed, whether it set `ERANGE`). Parsing
/// stops at the first byte that does not fit, as C's stops at the NUL.
fn strtod(s: &[u8]) -> (f64, usize, bool) {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let signed = |v: f64| if neg { -v } else { v };
    let rest = &s[i..];
    if starts_with_ci(rest, b"inf") {
        let n = if starts_with_ci(rest, b"infinity") {
            8
        } else {
            3
        };
        return (signed(f64::INFINITY), i + n, false);
    }
    if starts_with_ci(rest, b"nan") {
        let mut n = 3;
        if rest.get(3) == Some(&b'(') {
            let mut k = 4;
            while k < rest.len() && (rest[k].is_ascii_alphanumeric() || rest[k] == b'_') {
                k += 1;
            }
            if rest.get(k) == Some(&b')') {
                n = k + 1;
            }
        }
        return (f64::NAN, i + n, false);
    }
    if rest.len() >= 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        return match strtod_hex(&rest[2..]) {
            Some((v, n)) => {
                let erange = v.is_infinite()
                    || (v == 0.0
                        && rest[2..2 + n]
                            .iter()
                            .any(|c| c.is_ascii_hexdigit() && *c != b'0'));
                (signed(v), i + 2 + n, erange)
            }
            // "0x" with no digits converts the "0".
            None => (signed(0.0), i + 1, false),
        };
    }
    let mut j = 0;
    let mut digits = 0;
    let mut nonzero = false;
    while j < rest.len() && rest[j].is_ascii_digit() {
        nonzero |= rest[j] != b'0';
        j += 1;
        digits += 1;
    }
    if rest.get(j) == Some(&b'.') {
        j += 1;
        while j < rest.len() && rest[j].is_ascii_digit() {
            nonzero |= rest[j] != b'0';
            j += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return (0.0, 0, false);
    }
    if j < rest.len() && (rest[j] | 0x20) == b'e' {
        let mut k = j + 1;
        if matches!(rest.get(k), Some(b'-' | b'+')) {
            k += 1;
        }
        if rest.get(k).is_some_and(u8::is_ascii_digit) {
            while rest.get(k).is_some_and(u8::is_ascii_digit) {
                k += 1;
            }
            j = k;
        }
    }
    let text = std::str::from_utf8(&rest[..j]).unwrap_or("0");
    let v: f64 = text.parse().unwrap_or(0.0);
    let erange = v.is_infinite() || (v == 0.0 && nonzero);
    (signed(v), i + j, erange)
}

/// A score, increment or weight argument (Redis's `string2d`): the whole
/// argument must be a number, no leading space, no overflow to infinity
/// or underflow to zero, no NaN.
fn parse_score(arg: &[u8]) -> Option<f64> {
    if arg.is_empty() || is_c_space(arg[0]) {
        return None;
    }
    let (v, used, erange) = strtod(arg);
    if used != arg.len() || (erange && (v.is_infinite() || v == 0.0)) || v.is_nan() {
        return None;
    }
    Some(v)
}

fn score_arg(arg: &[u8]) -> Result<f64, CmdError> {
    parse_score(arg).ok_or(CmdError::NotFloat)
}

/// One end of a score range (`zslParseRange`): `(` makes it exclusive; the
/// rest is read by `strtod` up to the end (or a NUL, as C sees it).
fn parse_score_bound(arg: &[u8]) -> Option<(f64, bool)> {
    let c_str = &arg[..arg.iter().position(|&b| b == 0).unwrap_or(arg.len())];
    let (text, ex) = match c_str.first() {
        Some(b'(') => (&c_str[1..], true),
        _ => (c_str, false),
    };
    let (v, used, _) = strtod(text);
    if used != text.len() || v.is_nan() {
        return None;
    }
    Some((v, ex))
}

fn score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, CmdError> {
    match (parse_score_bound(min), parse_score_bound(max)) {
        (Some((min, min_ex)), Some((max, max_ex))) => Ok(ScoreRange {
            min,
            max,
            min_ex,
            max_ex,
        }),
        _ => Err(CmdError::err("min or max is not a float")),
    }
}

fn parse_lex_bound(arg: &[u8]) -> Option<LexBound> {
    // Only a single "+" or "-" (or one followed by a NUL, which ends a C string).
    let alone = arg.get(1).is_none_or(|&b| b == 0);
    match arg.first() {
        Some(b'+') if alone => Some(LexBound::Max),
        Some(b'-') if alone => Some(LexBound::Min),
        Some(b'(') => Some(LexBound::Excl(arg[1..].to_vec())),
        Some(b'[') => Some(LexBound::Incl(arg[1..].to_vec())),
        _ => None,
    }
}

fn lex_range(min: &[u8], max: &[u8]) -> Result<LexRange, CmdError> {
    match (parse_lex_bound(min), parse_lex_bound(max)) {
        (Some(min), Some(max)) => Ok(LexRange { min, max }),
        _ => Err(CmdError::err("min or max not valid string range item")),
    }
}

// ---------------------------------------------------------------------------
// Lookups and replies

use crate::pubsub::notify::{GENERIC as GENERIC_EV, ZSET as ZSET_EV};

/// The value as a sorted set, or WRONGTYPE (GEO commands share it).
pub(crate) fn zset_of(v: &Value) -> Result<&ZSet, CmdError> {
    match v {
        Value::ZSet(z) => Ok(z),
        _ => Err(CmdError::WrongType),
    }
}

/// A read lookup counting keyspace hits and misses (`lookupKeyRead`).
fn read_zset<'s>(
    ctx: &Ctx<'_>,
    s: &'s mut Shard,
    key: &[u8],
) -> Result<Option<&'s ZSet>, CmdError> {
    ctx.read_lookup(s, key, zset_of)
}

/// A write lookup (`lookupKeyWrite`: no hit/miss count).
fn peek_zset<'s>(s: &'s mut Shard, key: &[u8], now: i64) -> Result<Option<&'s ZSet>, CmdError> {
    match s.peek(key, now) {
        None => Ok(None),
        Some(e) => zset_of(&e.value).map(Some),
    }
}

/// Changes the sorted set at `key` (the caller checked it is one) and
/// deletes the key if that emptied it.
fn modify_zset<R>(s: &mut Shard, key: &[u8], now: i64, f: impl FnOnce(&mut ZSet) -> R) -> R {
    let (r, empty) = s
        .modify(key, now, |e| match &mut e.value {
            Value::ZSet(z) => {
                let r = f(z);
                (Some(r), z.is_empty())
            }
            _ => (None, false),
        })
        .unwrap_or((None, false));
    if empty {
        s.remove(key, now);
    }
    r.expect("modify_zset on a key checked to hold a sorted set")
}

/// Replies with members (and scores): a flat array in RESP2, pairs nested
/// in RESP3, as Redis's range replies.
fn reply_members<'a>(
    out: &mut ReplyBuf,
    n: usize,
    items: impl Iterator<Item = (&'a [u8], f64)>,
    withscores: bool,
) {
    out.array(if withscores && !out.resp3 { n * 2 } else { n });
    for (m, s) in items {
        if withscores && out.resp3 {
            out.array(2);
        }
        out.bulk(m);
        if withscores {
            out.double(s);
        }
    }
}

fn format_score(d: f64) -> Vec<u8> {
    let mut v = Vec::with_capacity(24);
    ferrite_protocol::format_double(d, &mut v);
    v
}

// ---------------------------------------------------------------------------
// ZADD / ZINCRBY / ZREM

fn zadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zadd_generic(ctx, args, false)
}

fn zincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zadd_generic(ctx, args, true)
}

/// Redis's `zaddGenericCommand`, for `ZADD` and `ZINCRBY`.
pub(crate) fn zadd_generic(ctx: &mut Ctx<'_>, args: &[Bytes], incr_cmd: bool) -> CmdResult {
    let mut flags = AddFlags {
        incr: incr_cmd,
        ..AddFlags::default()
    };
    let mut ch = false;
    let mut idx = 2;
    while idx < args.len() {
        let o = &args[idx][..];
        if is(o, "nx") {
            flags.nx = true;
        } else if is(o, "xx") {
            flags.xx = true;
        } else if is(o, "ch") {
            ch = true;
        } else if is(o, "incr") {
            flags.incr = true;
        } else if is(o, "gt") {
            flags.gt = true;
        } else if is(o, "lt") {
            flags.lt = true;
        } else {
            break;
        }
        idx += 1;
    }
    let rest = &args[idx..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    if flags.nx && flags.xx {
        return Err(CmdError::err(
            "XX and NX options at the same time are not compatible",
        ));
    }
    if ((flags.gt || flags.lt) && flags.nx) || (flags.gt && flags.lt) {
        return Err(CmdError::err(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if flags.incr && rest.len() > 2 {
        return Err(CmdError::err(
            "INCR option supports a single increment-element pair",
        ));
    }
    let scores = rest
        .chunks(2)
        .map(|p| score_arg(&p[0]))
        .collect::<Result<Vec<f64>, _>>()?;
    let key = &args[1][..];
    let limits = ctx.enc();
    let now = ctx.now;
    let db = ctx.db();
    let (added, updated, processed, last) = db.with_shard(key, |s| {
        let exists = peek_zset(s, key, now)?.is_some();
        let apply = |z: &mut ZSet| -> Result<(i64, i64, i64, f64), CmdError> {
            let (mut added, mut updated, mut processed, mut last) = (0, 0, 0, 0.0);
            for (pair, &score) in rest.chunks(2).zip(&scores) {
                match z.add(score, &pair[1], flags, &limits) {
                    AddOutcome::Added(s) => {
                        added += 1;
                        processed += 1;
                        last = s;
                    }
                    AddOutcome::Updated(s) => {
                        updated += 1;
                        processed += 1;
                        last = s;
                    }
                    AddOutcome::Unchanged(s) => {
                        processed += 1;
                        last = s;
                    }
                    AddOutcome::Skipped => {}
                    AddOutcome::NotANumber => {
                        return Err(CmdError::err("resulting score is not a number (NaN)"))
                    }
                }
            }
            Ok((added, updated, processed, last))
        };
        let r = if exists {
            // Redis signals the key only when a member was added or its
            // score changed (ZADD with the same score, ZINCRBY 0 change
            // nothing for WATCH or tracking).
            let r = s.quietly(|s| modify_zset(s, key, now, apply))?;
            if r.0 + r.1 > 0 {
                s.signal_modified(key);
            }
            r
        } else if flags.xx {
            (0, 0, 0, 0.0)
        } else {
            let mut z = ZSet::new_for(1, rest[1].len(), &limits);
            let r = apply(&mut z)?;
            if !z.is_empty() {
                s.set(key, Value::ZSet(z), NO_EXPIRE, now);
            }
            r
        };
        if r.0 + r.1 > 0 {
            ctx.propagate_argv(args);
            let event = if incr_cmd || flags.incr {
                "zincr"
            } else {
                "zadd"
            };
            ctx.notify(ZSET_EV, event, key);
        }
        Ok::<_, CmdError>(r)
    })?;
    if flags.incr {
        if processed > 0 {
            ctx.out.double(last);
        } else {
            ctx.out.null();
        }
    } else {
        ctx.out.integer(if ch { added + updated } else { added });
    }
    Ok(())
}

fn zrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let now = ctx.now;
    let db = ctx.db();
    let deleted = db.with_shard(key, |s| {
        if peek_zset(s, key, now)?.is_none() {
            return Ok(0);
        }
        let deleted = s.quietly(|s| {
            modify_zset(s, key, now, |z| {
                let mut n = 0;
                for m in &args[2..] {
                    if z.remove(m) {
                        n += 1;
                    }
                    if z.is_empty() {
                        break;
                    }
                }
                n
            })
        });
        if deleted > 0 {
            s.signal_modified(key);
            ctx.propagate_argv(args);
            ctx.notify(ZSET_EV, "zrem", key);
            if !s.contains(key, now) {
                ctx.notify(GENERIC_EV, "del", key);
            }
        }
        Ok::<_, CmdError>(deleted)
    })?;
    ctx.out.integer(deleted);
    Ok(())
}

// ---------------------------------------------------------------------------
// Point reads

fn zcard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let n = db.with_shard(&args[1], |s| {
        Ok::<_, CmdError>(read_zset(ctx, s, &args[1])?.map_or(0, ZSet::len))
    })?;
    ctx.out.integer(n as i64);
    Ok(())
}

fn zscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let score = db.with_shard(&args[1], |s| {
        Ok::<_, CmdError>(read_zset(ctx, s, &args[1])?.and_then(|z| z.score(&args[2])))
    })?;
    match score {
        Some(d) => ctx.out.double(d),
        None => ctx.out.null(),
    }
    Ok(())
}

fn zmscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let scores = db.with_shard(&args[1], |s| {
        let z = read_zset(ctx, s, &args[1])?;
        Ok::<_, CmdError>(
            args[2..]
                .iter()
                .map(|m| z.and_then(|z| z.score(m)))
                .collect::<Vec<_>>(),
        )
    })?;
    ctx.out.array(scores.len());
    for s in scores {
        match s {
            Some(d) => ctx.out.double(d),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

fn zrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    rank_generic(ctx, args, false)
}

fn zrevrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    rank_generic(ctx, args, true)
}

fn rank_generic(ctx: &mut Ctx<'_>, args: &[Bytes], reverse: bool) -> CmdResult {
    let db = ctx.db();
    let rank = db.with_shard(&args[1], |s| {
        Ok::<_, CmdError>(read_zset(ctx, s, &args[1])?.and_then(|z| z.rank(&args[2], reverse)))
    })?;
    match rank {
        Some(r) => ctx.out.integer(r as i64),
        None => ctx.out.null(),
    }
    Ok(())
}

fn zcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let range = score_range(&args[2], &args[3])?;
    let db = ctx.db();
    let n = db.with_shard(&args[1], |s| {
        Ok::<_, CmdError>(read_zset(ctx, s, &args[1])?.map_or(0, |z| {
            let (a, b) = z.score_ranks(&range);
            b - a
        }))
    })?;
    ctx.out.integer(n as i64);
    Ok(())
}

fn zlexcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let range = lex_range(&args[2], &args[3])?;
    let db = ctx.db();
    let n = db.with_shard(&args[1], |s| {
        Ok::<_, CmdError>(read_zset(ctx, s, &args[1])?.map_or(0, |z| {
            let (a, b) = z.lex_ranks(&range);
            b - a
        }))
    })?;
    ctx.out.integer(n as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// ZRANGE and its older forms

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeKind {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Auto,
    Forward,
    Reverse,
}

/// A parsed range request, ready to be resolved against a sorted set.
enum RangeSpec {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// The ascending ranks `lo..hi` a range request selects, and whether to
/// walk them backwards. Rank ranges follow `genericZrangebyrankCommand`;
/// score and lex ranges apply LIMIT like Redis's walk (a negative offset
/// selects nothing, a negative count means no limit).
fn resolve_range(
    z: &ZSet,
    spec: &RangeSpec,
    reverse: bool,
    offset: i64,
    limit: i64,
) -> (usize, usize) {
    let llen = z.len() as i64;
    match spec {
        RangeSpec::Rank(start, end) => {
            let mut start = if *start < 0 { llen + start } else { *start };
            let mut end = if *end < 0 { llen + end } else { *end };
            if start < 0 {
                start = 0;
            }
            if start > end || start >= llen {
                return (0, 0);
            }
            if end >= llen {
                end = llen - 1;
            }
            if reverse {
                ((llen - 1 - end) as usize, (llen - start) as usize)
            } else {
                (start as usize, (end + 1) as usize)
            }
        }
        RangeSpec::Score(_) | RangeSpec::Lex(_) => {
            let (first, last) = match spec {
                RangeSpec::Score(r) => z.score_ranks(r),
                RangeSpec::Lex(r) => z.lex_ranks(r),
                RangeSpec::Rank(..) => (0, 0),
            };
            if offset < 0 {
                return (0, 0);
            }
            let avail = last - first;
            let offset = usize::try_from(offset).unwrap_or(usize::MAX);
            if offset >= avail {
                return (0, 0);
            }
            let count = if limit < 0 {
                avail
            } else {
                usize::try_from(limit)
                    .unwrap_or(usize::MAX)
                    .min(avail - offset)
            };
            if reverse {
                (last - offset - count, last - offset)
            } else {
                (first + offset, first + offset + count)
            }
        }
    }
}

/// Redis's `zrangeGenericCommand`: `argc_start` is the position of the
/// source key; `store` holds the destination of `ZRANGESTORE`.
fn zrange_generic(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    argc_start: usize,
    store: Option<&[u8]>,
    mut kind: RangeKind,
    mut dir: Direction,
) -> CmdResult {
    let key = &args[argc_start][..];
    let mut minidx = argc_start + 1;
    let mut maxidx = argc_start + 2;
    let mut withscores = false;
    let mut offset: i64 = 0;
    let mut limit: i64 = -1;
    let mut j = argc_start + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j][..];
        if store.is_none() && is(a, "withscores") {
            withscores = true;
        } else if is(a, "limit") && left >= 2 {
            offset = int_arg(&args[j + 1])?;
            limit = int_arg(&args[j + 2])?;
            j += 2;
        } else if dir == Direction::Auto && is(a, "rev") {
            dir = Direction::Reverse;
        } else if kind == RangeKind::Auto && is(a, "bylex") {
            kind = RangeKind::Lex;
        } else if kind == RangeKind::Auto && is(a, "byscore") {
            kind = RangeKind::Score;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let reverse = dir == Direction::Reverse;
    if kind == RangeKind::Auto {
        kind = RangeKind::Rank;
    }
    if limit != -1 && kind == RangeKind::Rank {
        return Err(CmdError::err(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && kind == RangeKind::Lex {
        return Err(CmdError::err(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    if reverse && kind != RangeKind::Rank {
        std::mem::swap(&mut minidx, &mut maxidx);
    }
    let spec = match kind {
        RangeKind::Score => RangeSpec::Score(score_range(&args[minidx], &args[maxidx])?),
        RangeKind::Lex => RangeSpec::Lex(lex_range(&args[minidx], &args[maxidx])?),
        _ => RangeSpec::Rank(int_arg(&args[minidx])?, int_arg(&args[maxidx])?),
    };
    let db = ctx.db();
    match store {
        None => db.with_shard(key, |s| {
            let Some(z) = read_zset(ctx, s, key)? else {
                ctx.out.array(0);
                return Ok(());
            };
            let (lo, hi) = resolve_range(z, &spec, reverse, offset, limit);
            let it = z.range(lo, hi);
            let n = it.len();
            if reverse {
                reply_members(ctx.out, n, it.rev(), withscores);
            } else {
                reply_members(ctx.out, n, it, withscores);
            }
            Ok(())
        }),
        Some(dst) => {
            let limits = ctx.enc();
            let n = db.with_shards([dst, key], |g| {
                let items: Vec<(Vec<u8>, f64)> = match read_zset(ctx, g.shard(key), key)? {
                    None => Vec::new(),
                    Some(z) => {
                        let (lo, hi) = resolve_range(z, &spec, reverse, offset, limit);
                        z.range(lo, hi).map(|(m, s)| (m.to_vec(), s)).collect()
                    }
                };
                Ok::<_, CmdError>(store_result(ctx, g.shard(dst), dst, &items, args, &limits))
            })?;
            ctx.out.integer(n as i64);
            Ok(())
        }
    }
}

/// Stores a computed result (ascending) at `dst`, or deletes `dst` when it
/// is empty; propagates the command, or `DEL` when it only deleted.
/// Returns the stored cardinality.
fn store_result(
    ctx: &Ctx<'_>,
    s: &mut Shard,
    dst: &[u8],
    items: &[(Vec<u8>, f64)],
    args: &[Bytes],
    limits: &ferrite_storage::EncodingLimits,
) -> usize {
    if items.is_empty() {
        if s.delete(dst, ctx.now) {
            ctx.propagate(&[b"DEL", dst]);
            ctx.notify(GENERIC_EV, "del", dst);
        }
        return 0;
    }
    let z = ZSet::from_sorted(items.iter().map(|(m, s)| (&m[..], *s)), limits);
    s.set(dst, Value::ZSet(z), NO_EXPIRE, ctx.now);
    ctx.propagate_argv(args);
    // The event is the command's name: zunionstore, zinterstore,
    // zdiffstore, zrangestore.
    let event = ctx.cmd.name();
    ctx.notify(ZSET_EV, event, dst);
    items.len()
}

fn zrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, RangeKind::Auto, Direction::Auto)
}

fn zrangestore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(
        ctx,
        args,
        2,
        Some(&args[1][..]),
        RangeKind::Auto,
        Direction::Auto,
    )
}

fn zrevrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, RangeKind::Rank, Direction::Reverse)
}

fn zrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, RangeKind::Score, Direction::Forward)
}

fn zrevrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, RangeKind::Score, Direction::Reverse)
}

fn zrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, RangeKind::Lex, Direction::Forward)
}

fn zrevrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zrange_generic(ctx, args, 1, None, RangeKind::Lex, Direction::Reverse)
}

// ---------------------------------------------------------------------------
// ZREMRANGEBY*

fn zremrange_generic(ctx: &mut Ctx<'_>, args: &[Bytes], kind: RangeKind) -> CmdResult {
    let spec = match kind {
        RangeKind::Score => RangeSpec::Score(score_range(&args[2], &args[3])?),
        RangeKind::Lex => RangeSpec::Lex(lex_range(&args[2], &args[3])?),
        _ => RangeSpec::Rank(int_arg(&args[2])?, int_arg(&args[3])?),
    };
    let key = &args[1][..];
    let now = ctx.now;
    let db = ctx.db();
    let deleted = db.with_shard(key, |s| {
        let Some(z) = peek_zset(s, key, now)? else {
            return Ok(0);
        };
        let (lo, hi) = resolve_range(z, &spec, false, 0, -1);
        if lo >= hi {
            return Ok(0);
        }
        let n = modify_zset(s, key, now, |z| z.remove_range(lo, hi));
        ctx.propagate_argv(args);
        let event = match kind {
            RangeKind::Score => "zremrangebyscore",
            RangeKind::Lex => "zremrangebylex",
            _ => "zremrangebyrank",
        };
        ctx.notify(ZSET_EV, event, key);
        if !s.contains(key, now) {
            ctx.notify(GENERIC_EV, "del", key);
        }
        Ok::<_, CmdError>(n)
    })?;
    ctx.out.integer(deleted as i64);
    Ok(())
}

fn zremrangebyrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zremrange_generic(ctx, args, RangeKind::Rank)
}

fn zremrangebyscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zremrange_generic(ctx, args, RangeKind::Score)
}

fn zremrangebylex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zremrange_generic(ctx, args, RangeKind::Lex)
}

// ---------------------------------------------------------------------------
// Pops

/// Pops up to `count` members from the lowest (or, with `max`, highest)
/// end of the sorted set at `key`, deleting the key when it empties.
/// `None` when the key is absent or holds another type (the caller checks
/// the type when it must report WRONGTYPE). Does not propagate: the caller
/// decides the effect to replay (`ZPOPMIN key count` for the pops of
/// `ZMPOP` and the blocking variants).
pub(crate) fn zpop_into(
    srv: &Shared,
    db: usize,
    s: &mut Shard,
    key: &[u8],
    max: bool,
    count: usize,
    now: i64,
) -> Option<Vec<(Vec<u8>, f64)>> {
    if !matches!(s.peek(key, now)?.value, Value::ZSet(_)) {
        return None;
    }
    let popped = modify_zset(s, key, now, |z| {
        let n = count.min(z.len());
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            match z.pop(max) {
                Some(p) => out.push(p),
                None => break,
            }
        }
        out
    });
    // Keyspace events as Redis's genericZpopCommand: zpopmin/zpopmax, then
    // del when the pop emptied the key.
    if !popped.is_empty()
        && srv
            .pubsub
            .notify_flags
            .load(std::sync::atomic::Ordering::Relaxed)
            != 0
    {
        let event = if max { "zpopmax" } else { "zpopmin" };
        srv.pubsub.notify(ZSET_EV, event, key, db, None);
        if !s.contains(key, now) {
            srv.pubsub.notify(GENERIC_EV, "del", key, db, None);
        }
    }
    Some(popped)
}

fn zpopmin(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zpop_minmax(ctx, args, false)
}

fn zpopmax(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zpop_minmax(ctx, args, true)
}

/// `ZPOPMIN|ZPOPMAX key [count]`.
fn zpop_minmax(ctx: &mut Ctx<'_>, args: &[Bytes], max: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match args.get(2) {
        Some(a) => Some(positive_arg(a, MUST_BE_POSITIVE)?),
        None => None,
    };
    let nested = ctx.out.resp3 && count.is_some();
    let key = &args[1][..];
    let now = ctx.now;
    let dbi = ctx.client.db;
    let db = ctx.db();
    let popped = db.with_shard(key, |s| {
        if peek_zset(s, key, now)?.is_none() || count == Some(0) {
            return Ok(Vec::new());
        }
        let n = count.map_or(1, |c| usize::try_from(c).unwrap_or(usize::MAX));
        let popped = zpop_into(ctx.srv, dbi, s, key, max, n, now).unwrap_or_default();
        if !popped.is_empty() {
            ctx.propagate_argv(args);
        }
        Ok::<_, CmdError>(popped)
    })?;
    ctx.out.array(if nested {
        popped.len()
    } else {
        popped.len() * 2
    });
    for (m, s) in &popped {
        if nested {
            ctx.out.array(2);
        }
        ctx.out.bulk(m);
        ctx.out.double(*s);
    }
    Ok(())
}

/// `ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]`.
fn zmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (keys, side, count) = mpop_args(args, 1, ["min", "max"])?;
    let max = side == 1;
    let now = ctx.now;
    let dbi = ctx.client.db;
    let db = ctx.db();
    let popped = db.with_shards(keys.iter().map(|k| &k[..]), |g| {
        for k in keys {
            let s = g.shard(k);
            if peek_zset(s, k, now)?.is_none() {
                continue;
            }
            let popped = zpop_into(ctx.srv, dbi, s, k, max, count, now).unwrap_or_default();
            let mut n = itoa::Buffer::new();
            let name: &[u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
            ctx.propagate(&[name, k, n.format(popped.len()).as_bytes()]);
            return Ok(Some((k, popped)));
        }
        Ok::<_, CmdError>(None)
    })?;
    match popped {
        None => ctx.out.null_array(),
        Some((k, popped)) => {
            // Nested pairs in both protocols, unlike the range replies.
            ctx.out.array(2);
            ctx.out.bulk(k);
            ctx.out.array(popped.len());
            for (m, s) in &popped {
                ctx.out.array(2);
                ctx.out.bulk(m);
                ctx.out.double(*s);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// ZRANDMEMBER

fn zrandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() < 3 {
        let db = ctx.db();
        let pick = db.with_shard(&args[1], |s| {
            let Some(z) = read_zset(ctx, s, &args[1])? else {
                return Ok(None);
            };
            let r = rand::thread_rng().gen_range(0..z.len());
            Ok::<_, CmdError>(z.get_by_rank(r).map(|(m, _)| m.to_vec()))
        })?;
        match pick {
            Some(m) => ctx.out.bulk(&m),
            None => ctx.out.null(),
        }
        return Ok(());
    }
    let l = match ferrite_protocol::parse_i64(&args[2]) {
        None => return Err(CmdError::NotInteger),
        Some(i64::MIN) => {
            return Err(CmdError::err(
                "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            ))
        }
        Some(l) => l,
    };
    if args.len() > 4 || (args.len() == 4 && !is(&args[3], "withscores")) {
        return Err(CmdError::Syntax);
    }
    let withscores = args.len() == 4;
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return Err(CmdError::err("value is out of range"));
    }
    let db = ctx.db();
    db.with_shard(&args[1], |s| {
        let Some(z) = read_zset(ctx, s, &args[1])? else {
            ctx.out.array(0);
            return Ok(());
        };
        randmember_with_count(ctx.out, z, l, withscores);
        Ok(())
    })
}

/// Redis's `zrandmemberWithCountCommand`: a negative count may repeat
/// members; a positive one returns distinct members.
fn randmember_with_count(out: &mut ReplyBuf, z: &ZSet, l: i64, withscores: bool) {
    let size = z.len();
    let mut rng = rand::thread_rng();
    let count = l.unsigned_abs();
    if count == 0 {
        out.array(0);
        return;
    }
    let emit = |out: &mut ReplyBuf, m: &[u8], s: f64| {
        if withscores && out.resp3 {
            out.array(2);
        }
        out.bulk(m);
        if withscores {
            out.double(s);
        }
    };
    let header = |out: &mut ReplyBuf, n: u64| {
        let n = if withscores && !out.resp3 { n * 2 } else { n };
        out.array(usize::try_from(n).unwrap_or(usize::MAX));
    };
    if l < 0 || count == 1 {
        header(out, count);
        // A listpack is walked per lookup: index it once.
        let small: Vec<(&[u8], f64)> = if z.is_listpack() {
            z.iter().collect()
        } else {
            Vec::new()
        };
        for _ in 0..count {
            let r = rng.gen_range(0..size);
            let (m, s) = if z.is_listpack() {
                small[r]
            } else {
                z.get_by_rank(r).unwrap_or((b"", 0.0))
            };
            emit(out, m, s);
        }
        return;
    }
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count >= size {
        header(out, size as u64);
        for (m, s) in z.iter() {
            emit(out, m, s);
        }
        return;
    }
    header(out, count as u64);
    if count * 3 > size {
        // Close to the whole set: shuffle the ranks and keep a prefix.
        let mut ranks: Vec<usize> = (0..size).collect();
        for i in 0..count {
            let j = rng.gen_range(i..size);
            ranks.swap(i, j);
        }
        let small: Vec<(&[u8], f64)> = z.iter().collect();
        for &r in &ranks[..count] {
            let (m, s) = small[r];
            emit(out, m, s);
        }
    } else {
        let mut seen = HashSet::with_capacity(count);
        while seen.len() < count {
            let r = rng.gen_range(0..size);
            if seen.insert(r) {
                if let Some((m, s)) = z.get_by_rank(r) {
                    emit(out, m, s);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// ZUNION / ZINTER / ZDIFF and their STORE forms, ZINTERCARD

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(target: &mut f64, val: f64, agg: Aggregate) {
    match agg {
        Aggregate::Sum => {
            *target += val;
            // inf + -inf: Redis's convention is 0.
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if val < *target {
                *target = val;
            }
        }
        Aggregate::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

// Plain sets as inputs of sorted-set operations (every member scores 1).

fn set_contains(s: &Set, m: &[u8]) -> bool {
    s.contains(m)
}

/// Calls `f` with every (member, score) of a sorted set or set value.
fn for_each_item(v: &Value, mut f: impl FnMut(&[u8], f64)) {
    match v {
        Value::ZSet(z) => z.iter().for_each(|(m, s)| f(m, s)),
        Value::Set(s) => s.iter().for_each(|m| m.with_bytes(|b| f(b, 1.0))),
        _ => {}
    }
}

/// Every (member, score) of a sorted set or set value, copied.
fn source_items(v: &Value) -> Vec<(Vec<u8>, f64)> {
    let mut out = Vec::with_capacity(source_len(v));
    for_each_item(v, |m, s| out.push((m.to_vec(), s)));
    out
}

/// The score of `m` in a sorted set or set value.
fn source_score(v: &Value, m: &[u8]) -> Option<f64> {
    match v {
        Value::ZSet(z) => z.score(m),
        Value::Set(s) => set_contains(s, m).then_some(1.0),
        _ => None,
    }
}

fn source_len(v: &Value) -> usize {
    match v {
        Value::ZSet(z) => z.len(),
        Value::Set(s) => s.len(),
        _ => 0,
    }
}

struct OpOptions {
    weights: Vec<f64>,
    agg: Aggregate,
    withscores: bool,
    limit: usize,
}

/// Parses the options after the keys (`WEIGHTS AGGREGATE WITHSCORES LIMIT`).
fn parse_op_options(
    args: &[Bytes],
    mut j: usize,
    setnum: usize,
    op: SetOp,
    store: bool,
    card: bool,
) -> Result<OpOptions, CmdError> {
    let mut o = OpOptions {
        weights: vec![1.0; setnum],
        agg: Aggregate::Sum,
        withscores: false,
        limit: 0,
    };
    while j < args.len() {
        let remaining = args.len() - j;
        let a = &args[j][..];
        if op != SetOp::Diff && !card && remaining > setnum && is(a, "weights") {
            j += 1;
            for w in o.weights.iter_mut() {
                *w = parse_score(&args[j])
                    .ok_or_else(|| CmdError::err("weight value is not a float"))?;
                j += 1;
            }
        } else if op != SetOp::Diff && !card && remaining >= 2 && is(a, "aggregate") {
            let v = &args[j + 1][..];
            o.agg = if is(v, "sum") {
                Aggregate::Sum
            } else if is(v, "min") {
                Aggregate::Min
            } else if is(v, "max") {
                Aggregate::Max
            } else {
                return Err(CmdError::Syntax);
            };
            j += 2;
        } else if !store && !card && is(a, "withscores") {
            o.withscores = true;
            j += 1;
        } else if card && remaining >= 2 && is(a, "limit") {
            let l = range_arg(&args[j + 1], 0, i64::MAX, "LIMIT can't be negative")?;
            o.limit = usize::try_from(l).unwrap_or(usize::MAX);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(o)
}

/// Redis's `zunionInterDiffGenericCommand`. `numkeys_idx` is 1 for the
/// reply forms and 2 for the STORE forms (destination at 1).
fn zset_op_generic(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    numkeys_idx: usize,
    op: SetOp,
    card: bool,
) -> CmdResult {
    let store = numkeys_idx == 2;
    let setnum = int_arg(&args[numkeys_idx])?;
    if setnum < 1 {
        return Err(CmdError::err(format!(
            "at least 1 input key is needed for '{}' command",
            ctx.cmd.name()
        )));
    }
    let avail = args.len() - (numkeys_idx + 1);
    let setnum = match usize::try_from(setnum) {
        Ok(n) if n <= avail => n,
        _ => return Err(CmdError::Syntax),
    };
    let keys = &args[numkeys_idx + 1..numkeys_idx + 1 + setnum];
    // Option errors are reported after WRONGTYPE, as Redis looks the keys
    // up first.
    let opts = parse_op_options(args, numkeys_idx + 1 + setnum, setnum, op, store, card);
    let dst: Option<&[u8]> = store.then(|| &args[1][..]);
    let limits = ctx.enc();
    let now = ctx.now;
    let db = ctx.db();
    let lock_keys = keys.iter().map(|k| &k[..]).chain(dst);
    let reply = db.with_shards(lock_keys, |g| {
        // Look every input up once (hit/miss, type check), like Redis.
        let mut lens = Vec::with_capacity(setnum);
        for k in keys {
            let s = g.shard(k);
            match s.get(k, now) {
                None => {
                    ctx.srv.stats.miss();
                    lens.push(0);
                }
                Some(e) => {
                    ctx.srv.stats.hit();
                    if !matches!(e.value, Value::ZSet(_) | Value::Set(_)) {
                        return Err(CmdError::WrongType);
                    }
                    lens.push(source_len(&e.value));
                }
            }
        }
        let opts = opts?;
        // (key index, weight), smallest input first for UNION and INTER.
        let mut order: Vec<usize> = (0..setnum).collect();
        if op != SetOp::Diff {
            order.sort_by_key(|&i| lens[i]);
        }
        let mut result: Vec<(Vec<u8>, f64)> = Vec::new();
        let mut cardinality = 0usize;
        match op {
            SetOp::Inter => {
                let first = order[0];
                if lens[first] > 0 {
                    let k = &keys[first];
                    let w = opts.weights[first];
                    let mut cand: Vec<(Vec<u8>, f64)> = g
                        .shard(k)
                        .peek(k, now)
                        .map(|e| source_items(&e.value))
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(m, s)| {
                            let v = w * s;
                            (m, if v.is_nan() { 0.0 } else { v })
                        })
                        .collect();
                    for &i in &order[1..] {
                        let k = &keys[i];
                        let w = opts.weights[i];
                        let Some(e) = g.shard(k).peek(k, now) else {
                            cand.clear();
                            break;
                        };
                        cand.retain_mut(|(m, score)| match source_score(&e.value, m) {
                            Some(v) => {
                                aggregate(score, v * w, opts.agg);
                                true
                            }
                            None => false,
                        });
                        if cand.is_empty() {
                            break;
                        }
                    }
                    cardinality = cand.len();
                    result = cand;
                }
            }
            SetOp::Union => {
                let mut acc: HashMap<Vec<u8>, f64> = HashMap::new();
                for &i in &order {
                    let k = &keys[i];
                    let w = opts.weights[i];
                    let Some(e) = g.shard(k).peek(k, now) else {
                        continue;
                    };
                    for_each_item(&e.value, |m, s| {
                        let v = w * s;
                        let v = if v.is_nan() { 0.0 } else { v };
                        match acc.get_mut(m) {
                            Some(t) => aggregate(t, v, opts.agg),
                            None => {
                                acc.insert(m.to_vec(), v);
                            }
                        }
                    });
                }
                cardinality = acc.len();
                result = acc.into_iter().collect();
            }
            SetOp::Diff => {
                let k = &keys[0];
                let mut cand: Vec<(Vec<u8>, f64)> = g
                    .shard(k)
                    .peek(k, now)
                    .map(|e| source_items(&e.value))
                    .unwrap_or_default();
                for k in &keys[1..] {
                    if cand.is_empty() {
                        break;
                    }
                    if let Some(e) = g.shard(k).peek(k, now) {
                        cand.retain(|(m, _)| source_score(&e.value, m).is_none());
                    }
                }
                cardinality = cand.len();
                result = cand;
            }
        }
        if card {
            let n = if opts.limit > 0 {
                cardinality.min(opts.limit)
            } else {
                cardinality
            };
            return Ok(OpReply::Count(n));
        }
        result.sort_by(|a, b| {
            a.1.partial_cmp(&b.1)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.0.cmp(&b.0))
        });
        match dst {
            Some(d) => Ok(OpReply::Count(store_result(
                ctx,
                g.shard(d),
                d,
                &result,
                args,
                &limits,
            ))),
            None => Ok(OpReply::Items(result, opts.withscores)),
        }
    })?;
    match reply {
        OpReply::Count(n) => ctx.out.integer(n as i64),
        OpReply::Items(items, withscores) => reply_members(
            ctx.out,
            items.len(),
            items.iter().map(|(m, s)| (&m[..], *s)),
            withscores,
        ),
    }
    Ok(())
}

enum OpReply {
    Count(usize),
    Items(Vec<(Vec<u8>, f64)>, bool),
}

fn zunion(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zset_op_generic(ctx, args, 1, SetOp::Union, false)
}

fn zinter(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zset_op_generic(ctx, args, 1, SetOp::Inter, false)
}

fn zdiff(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zset_op_generic(ctx, args, 1, SetOp::Diff, false)
}

fn zunionstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zset_op_generic(ctx, args, 2, SetOp::Union, false)
}

fn zinterstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zset_op_generic(ctx, args, 2, SetOp::Inter, false)
}

fn zdiffstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zset_op_generic(ctx, args, 2, SetOp::Diff, false)
}

fn zintercard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    zset_op_generic(ctx, args, 1, SetOp::Inter, true)
}

// ---------------------------------------------------------------------------
// ZSCAN

fn zscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let cursor = cursor_arg(&args[2])?;
    let db = ctx.db();
    let key = &args[1][..];
    let (next, found) = db.with_shard(key, |s| {
        let Some(z) = read_zset(ctx, s, key)? else {
            return Ok((0, Vec::new()));
        };
        let ScanOptions { count, pattern, .. } = scan_options(args, 3, false)?;
        let mut found: Vec<(Vec<u8>, f64)> = Vec::new();
        let mut visit = |m: &[u8], s: f64| {
            if pattern.is_none_or(|p| glob_match(p, m, false)) {
                found.push((m.to_vec(), s));
            }
        };
        let next = if z.is_listpack() {
            z.scan(0, &mut visit)
        } else {
            // Count members like Redis counts reply items (two per member).
            let items = count.saturating_mul(2);
            let mut max_iterations = items.saturating_mul(10);
            let mut cur = cursor;
            let mut seen = 0i64;
            loop {
                cur = z.scan(cur, |m, s| {
                    seen += 1;
                    visit(m, s);
                });
                let more = cur != 0 && max_iterations > 0 && seen.saturating_mul(2) < items;
                max_iterations -= 1;
                if !more {
                    break cur;
                }
            }
        };
        Ok::<_, CmdError>((next, found))
    })?;
    ctx.out.array(2);
    ctx.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    ctx.out.array(found.len() * 2);
    for (m, s) in &found {
        ctx.out.bulk(m);
        ctx.out.bulk(&format_score(*s));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_parse_like_string2d() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"+Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_score(b"0x10"), Some(16.0));
        assert_eq!(parse_score(b"0x1p3"), Some(8.0));
        assert_eq!(parse_score(b"1."), Some(1.0));
        assert_eq!(parse_score(b".5"), Some(0.5));
        assert_eq!(parse_score(b"1e-310"), Some(1e-310));
        for bad in [
            &b""[..],
            b" 1",
            b"1 ",
            b"nan",
            b"1e500",
            b"1e-400",
            b"abc",
            b"1e",
            b"0x",
            b"-",
            b"1\x000",
        ] {
            assert_eq!(parse_score(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn range_bounds_parse_like_zsl_parse_range() {
        assert_eq!(parse_score_bound(b"(1"), Some((1.0, true)));
        assert_eq!(parse_score_bound(b""), Some((0.0, false)));
        assert_eq!(parse_score_bound(b"("), Some((0.0, true)));
        assert_eq!(parse_score_bound(b" 1"), Some((1.0, false)));
        assert_eq!(parse_score_bound(b"1\x00junk"), Some((1.0, false)));
        assert_eq!(parse_score_bound(b"1e500"), Some((f64::INFINITY, false)));
        assert_eq!(parse_score_bound(b"(nan"), None);
        assert_eq!(parse_score_bound(b"1 "), None);
        assert_eq!(parse_score_bound(b"[1"), None);
    }

    #[test]
    fn plain_sets_read_as_members_scoring_one() {
        let mut ints = Set::new();
        for m in [&b"-5"[..], b"3", b"10"] {
            ints.add(m, 512);
        }
        assert_eq!(ints.encoding(), "intset");
        let ints = Value::Set(ints);
        let mut t = Set::new();
        t.add(b"a", 512);
        t.add(b"b", 512);
        assert_eq!(t.encoding(), "hashtable");
        let table = Value::Set(t);
        let mut items = source_items(&ints);
        items.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            items,
            [
                (b"-5".to_vec(), 1.0),
                (b"10".to_vec(), 1.0),
                (b"3".to_vec(), 1.0)
            ]
        );
        assert_eq!(source_score(&ints, b"10"), Some(1.0));
        assert_eq!(source_score(&ints, b"010"), None);
        assert_eq!(source_score(&ints, b"4"), None);
        assert_eq!(source_len(&ints), 3);
        assert_eq!(source_score(&table, b"b"), Some(1.0));
        assert_eq!(source_score(&table, b"c"), None);
        assert_eq!(source_items(&table).len(), 2);
    }

    #[test]
    fn lex_bounds() {
        assert_eq!(parse_lex_bound(b"-"), Some(LexBound::Min));
        assert_eq!(parse_lex_bound(b"+"), Some(LexBound::Max));
        assert_eq!(parse_lex_bound(b"(a"), Some(LexBound::Excl(b"a".to_vec())));
        assert_eq!(parse_lex_bound(b"["), Some(LexBound::Incl(Vec::new())));
        assert_eq!(parse_lex_bound(b"+a"), None);
        assert_eq!(parse_lex_bound(b"a"), None);
        assert_eq!(parse_lex_bound(b""), None);
    }
}
