//! String commands: `GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX MGET MSET
//! MSETNX APPEND STRLEN GETRANGE SUBSTR SETRANGE INCR DECR INCRBY DECRBY
//! INCRBYFLOAT SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO LCS`.
//!
//! Each handler parses its arguments first, then runs one closure with the
//! shard lock(s) of its keys held; writes propagate their deterministic
//! effect from inside that closure (see `design.md`, "Propagation").

use std::sync::atomic::Ordering;

use bytes::Bytes;
use ferrite_storage::{Shard, Value, NO_EXPIRE};

use crate::command::ctx::{float_arg, int_arg, is};
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::pubsub::notify::{GENERIC, STRING};

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("get", get),
    ("set", set),
    ("setnx", setnx),
    ("setex", setex),
    ("psetex", psetex),
    ("getset", getset),
    ("getdel", getdel),
    ("getex", getex),
    ("mget", mget),
    ("mset", mset),
    ("msetnx", msetnx),
    ("append", append),
    ("strlen", strlen),
    ("getrange", getrange),
    ("substr", getrange),
    ("setrange", setrange),
    ("incr", incr),
    ("decr", decr),
    ("incrby", incrby),
    ("decrby", decrby),
    ("incrbyfloat", incrbyfloat),
    ("setbit", setbit),
    ("getbit", getbit),
    ("bitcount", bitcount),
    ("bitpos", bitpos),
    ("bitop", bitop),
    ("bitfield", bitfield),
    ("bitfield_ro", bitfield_ro),
    ("lcs", lcs),
];

// ---------------------------------------------------------------------------
// Shared helpers

/// The bytes of a string value, or WRONGTYPE.
fn str_of(v: &Value) -> Result<&[u8], CmdError> {
    v.as_str().ok_or(CmdError::WrongType)
}

/// The bytes of a string value for in-place modification; marks it `raw`
/// as Redis does when it unshares the string.
#[allow(unreachable_patterns)]
fn str_mut(v: &mut Value) -> Option<&mut Vec<u8>> {
    match v {
        Value::Str { bytes, raw } => {
            *raw = true;
            Some(bytes.make_mut())
        }
        _ => None,
    }
}

/// A read lookup counting keyspace hits and misses (`lookupKeyRead`);
/// returns the string bytes, `None` when absent, WRONGTYPE for other types.
fn read_str<'s>(ctx: &Ctx<'_>, s: &'s mut Shard, key: &[u8]) -> Result<Option<&'s [u8]>, CmdError> {
    ctx.read_lookup(s, key, str_of)
}

/// A write lookup (no hit/miss count): the string bytes or `None`.
fn write_str<'s>(
    ctx: &Ctx<'_>,
    s: &'s mut Shard,
    key: &[u8],
) -> Result<Option<&'s [u8]>, CmdError> {
    match s.peek(key, ctx.now) {
        None => Ok(None),
        Some(e) => str_of(&e.value).map(Some),
    }
}

/// Stores `v` at `key` keeping the key's TTL, if any (`INCR`-like writes).
fn store_keepttl(s: &mut Shard, key: &[u8], v: Vec<u8>, now: i64) {
    let ttl = s.peek(key, now).map_or(NO_EXPIRE, |e| e.expire_at);
    s.set(key, Value::string(v), ttl, now);
}

fn max_bulk_len(ctx: &Ctx<'_>) -> i64 {
    ctx.srv.hot.proto_max_bulk_len.load(Ordering::Relaxed)
}

/// `checkStringLength`: whether a string of `size + append` bytes is allowed.
fn check_string_length(ctx: &Ctx<'_>, size: i64, append: i64) -> CmdResult {
    match size.checked_add(append) {
        Some(t) if t <= max_bulk_len(ctx) => Ok(()),
        _ => Err(CmdError::StringTooLong),
    }
}

fn i64_bytes(n: i64) -> Vec<u8> {
    itoa::Buffer::new().format(n).as_bytes().to_vec()
}

// ---------------------------------------------------------------------------
// GET / SET family

fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    db.with_shard(&args[1], |s| {
        match read_str(ctx, s, &args[1])? {
            Some(b) => ctx.out.bulk(b),
            None => ctx.out.null(),
        }
        Ok(())
    })
}

const F_NX: u32 = 1;
const F_XX: u32 = 2;
const F_GET: u32 = 4;
const F_KEEPTTL: u32 = 8;
const F_PERSIST: u32 = 16;
const F_EX: u32 = 32;
const F_PX: u32 = 64;
const F_EXAT: u32 = 128;
const F_PXAT: u32 = 256;
const F_ANY_EXPIRE: u32 = F_EX | F_PX | F_EXAT | F_PXAT;

/// Options of `SET` (`for_set`) or `GETEX`, parsed like Redis's
/// `parseExtendedStringArgumentsOrReply`: returns the flags and the expire
/// argument.
fn parse_ext_args(args: &[Bytes], for_set: bool) -> Result<(u32, Option<&Bytes>), CmdError> {
    let mut flags = 0u32;
    let mut expire = None;
    let mut j = if for_set { 3 } else { 2 };
    while j < args.len() {
        let opt = &args[j][..];
        let next = args.get(j + 1);
        let exp_flag = if is(opt, "ex") {
            Some(F_EX)
        } else if is(opt, "px") {
            Some(F_PX)
        } else if is(opt, "exat") {
            Some(F_EXAT)
        } else if is(opt, "pxat") {
            Some(F_PXAT)
        } else {
            None
        };
        if for_set && is(opt, "nx") && flags & F_XX == 0 {
            flags |= F_NX;
        } else if for_set && is(opt, "xx") && flags & F_NX == 0 {
            flags |= F_XX;
        } else if for_set && is(opt, "get") {
            flags |= F_GET;
        } else if for_set && is(opt, "keepttl") && flags & (F_PERSIST | F_ANY_EXPIRE) == 0 {
            flags |= F_KEEPTTL;
        } else if !for_set && is(opt, "persist") && flags & (F_KEEPTTL | F_ANY_EXPIRE) == 0 {
            flags |= F_PERSIST;
        } else if let (Some(f), Some(n)) = (exp_flag, next) {
            if flags & (F_KEEPTTL | F_PERSIST | (F_ANY_EXPIRE & !f)) != 0 {
                return Err(CmdError::Syntax);
            }
            flags |= f;
            expire = Some(n);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok((flags, expire))
}

/// `getExpireMillisecondsOrReply`: the absolute expiry in ms.
fn expire_ms(ctx: &Ctx<'_>, arg: &[u8], flags: u32) -> Result<i64, CmdError> {
    let invalid = || CmdError::InvalidExpire(ctx.cmd.name().to_string());
    let mut ms = int_arg(arg)?;
    let seconds = flags & (F_EX | F_EXAT) != 0;
    if ms <= 0 || (seconds && ms > i64::MAX / 1000) {
        return Err(invalid());
    }
    if seconds {
        ms *= 1000;
    }
    if flags & (F_EX | F_PX) != 0 {
        ms = ms.checked_add(ctx.now).ok_or_else(invalid)?;
    }
    if ms <= 0 {
        return Err(invalid());
    }
    Ok(ms)
}

/// Redis's `setGenericCommand`. `ok` false for replies handled by the caller
/// (`SETNX`: integer replies).
fn set_generic(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    val: &[u8],
    flags: u32,
    expire_at: Option<i64>,
) -> Result<bool, CmdError> {
    let db = ctx.db();
    db.with_shard(key, |s| {
        if flags & F_GET != 0 {
            match read_str(ctx, s, key)? {
                Some(b) => ctx.out.bulk(b),
                None => ctx.out.null(),
            }
        }
        let old = s.peek(key, ctx.now).map(|e| e.expire_at);
        let found = old.is_some();
        if (flags & F_NX != 0 && found) || (flags & F_XX != 0 && !found) {
            return Ok(false);
        }
        let now = ctx.now;
        match expire_at {
            Some(t) if t <= now => {
                s.remove(key, now);
                ctx.propagate(&[b"DEL", key]);
                ctx.notify(STRING, "set", key);
                ctx.notify(GENERIC, "expire", key);
            }
            Some(t) => {
                s.set(key, Value::string(val), t, now);
                let mut b = itoa::Buffer::new();
                ctx.propagate(&[b"SET", key, val, b"PXAT", b.format(t).as_bytes()]);
                ctx.notify(STRING, "set", key);
                ctx.notify(GENERIC, "expire", key);
            }
            None if flags & F_KEEPTTL != 0 => {
                s.set(key, Value::string(val), old.unwrap_or(NO_EXPIRE), now);
                ctx.propagate(&[b"SET", key, val, b"KEEPTTL"]);
                ctx.notify(STRING, "set", key);
            }
            None => {
                s.set(key, Value::string(val), NO_EXPIRE, now);
                ctx.propagate(&[b"SET", key, val]);
                ctx.notify(STRING, "set", key);
            }
        }
        Ok(true)
    })
}

fn set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (flags, expire) = parse_ext_args(args, true)?;
    let expire_at = match expire {
        Some(e) => Some(expire_ms(ctx, e, flags)?),
        None => None,
    };
    let done = set_generic(ctx, &args[1], &args[2], flags, expire_at)?;
    if flags & F_GET == 0 {
        if done {
            ctx.out.ok();
        } else {
            ctx.out.null();
        }
    }
    Ok(())
}

fn setnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let done = set_generic(ctx, &args[1], &args[2], F_NX, None)?;
    ctx.out.integer(i64::from(done));
    Ok(())
}

fn setex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let t = expire_ms(ctx, &args[2], F_EX)?;
    set_generic(ctx, &args[1], &args[3], 0, Some(t))?;
    ctx.out.ok();
    Ok(())
}

fn psetex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let t = expire_ms(ctx, &args[2], F_PX)?;
    set_generic(ctx, &args[1], &args[3], 0, Some(t))?;
    ctx.out.ok();
    Ok(())
}

fn getset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let (key, val) = (&args[1][..], &args[2][..]);
    db.with_shard(key, |s| {
        match read_str(ctx, s, key)? {
            Some(b) => ctx.out.bulk(b),
            None => ctx.out.null(),
        }
        s.set(key, Value::string(val), NO_EXPIRE, ctx.now);
        ctx.propagate(&[b"SET", key, val]);
        ctx.notify(STRING, "set", key);
        Ok(())
    })
}

fn getdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let key = &args[1][..];
    db.with_shard(key, |s| {
        match read_str(ctx, s, key)? {
            Some(b) => ctx.out.bulk(b),
            None => {
                ctx.out.null();
                return Ok(());
            }
        }
        s.remove(key, ctx.now);
        ctx.propagate(&[b"DEL", key]);
        ctx.notify(GENERIC, "del", key);
        Ok(())
    })
}

fn getex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (flags, expire) = parse_ext_args(args, false)?;
    let db = ctx.db();
    let key = &args[1][..];
    db.with_shard(key, |s| {
        let Some(b) = read_str(ctx, s, key)? else {
            ctx.out.null();
            return Ok(());
        };
        let b = b.to_vec();
        let expire_at = match expire {
            Some(e) => Some(expire_ms(ctx, e, flags)?),
            None => None,
        };
        ctx.out.bulk(&b);
        let now = ctx.now;
        if let Some(t) = expire_at {
            if t <= now {
                s.remove(key, now);
                ctx.propagate(&[b"DEL", key]);
                ctx.notify(GENERIC, "del", key);
            } else {
                s.set_expire(key, t, now);
                let mut buf = itoa::Buffer::new();
                ctx.propagate(&[b"PEXPIREAT", key, buf.format(t).as_bytes()]);
                ctx.notify(GENERIC, "expire", key);
            }
        } else if flags & F_PERSIST != 0 {
            let had_ttl = s.peek(key, now).is_some_and(|e| e.expire_at != NO_EXPIRE);
            if had_ttl {
                s.set_expire(key, NO_EXPIRE, now);
                ctx.propagate(&[b"PERSIST", key]);
                ctx.notify(GENERIC, "persist", key);
            }
        }
        Ok(())
    })
}

fn mget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let keys = &args[1..];
    db.with_shards(keys.iter().map(|k| &k[..]), |g| {
        ctx.out.array(keys.len());
        for k in keys {
            let s = g.shard(k);
            match s.get(k, ctx.now) {
                None => {
                    ctx.srv.stats.miss();
                    ctx.out.null();
                }
                Some(e) => {
                    ctx.srv.stats.hit();
                    match e.value.as_str() {
                        Some(b) => ctx.out.bulk(b),
                        None => ctx.out.null(),
                    }
                }
            }
        }
    });
    Ok(())
}

fn mset_generic(ctx: &mut Ctx<'_>, args: &[Bytes], nx: bool) -> Result<bool, CmdError> {
    if args.len().is_multiple_of(2) {
        return Err(ctx.arity_error());
    }
    let db = ctx.db();
    let pairs = &args[1..];
    let done = db.with_shards(pairs.iter().step_by(2).map(|k| &k[..]), |g| {
        if nx {
            for k in pairs.iter().step_by(2) {
                if g.shard(k).contains(k, ctx.now) {
                    return false;
                }
            }
        }
        for kv in pairs.chunks(2) {
            g.shard(&kv[0])
                .set(&kv[0], Value::string(&kv[1][..]), NO_EXPIRE, ctx.now);
        }
        let mut v: Vec<&[u8]> = Vec::with_capacity(args.len());
        v.push(b"MSET");
        v.extend(pairs.iter().map(|b| &b[..]));
        ctx.propagate(&v);
        for k in pairs.iter().step_by(2) {
            ctx.notify(STRING, "set", k);
        }
        true
    });
    Ok(done)
}

fn mset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    mset_generic(ctx, args, false)?;
    ctx.out.ok();
    Ok(())
}

fn msetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let done = mset_generic(ctx, args, true)?;
    ctx.out.integer(i64::from(done));
    Ok(())
}

fn append(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let (key, val) = (&args[1][..], &args[2][..]);
    db.with_shard(key, |s| {
        let len = match write_str(ctx, s, key)? {
            None => {
                s.set(key, Value::string(val), NO_EXPIRE, ctx.now);
                val.len()
            }
            Some(b) => {
                check_string_length(ctx, b.len() as i64, val.len() as i64)?;
                s.modify(key, ctx.now, |e| {
                    str_mut(&mut e.value).map_or(0, |b| {
                        b.extend_from_slice(val);
                        b.len()
                    })
                })
                .unwrap_or(0)
            }
        };
        ctx.propagate_argv(args);
        ctx.notify(STRING, "append", key);
        ctx.out.integer(len as i64);
        Ok(())
    })
}

fn strlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    db.with_shard(&args[1], |s| {
        let n = read_str(ctx, s, &args[1])?.map_or(0, <[u8]>::len);
        ctx.out.integer(n as i64);
        Ok(())
    })
}

/// Redis's GETRANGE index arithmetic: the inclusive byte range, or `None`
/// for an empty result.
fn byte_range(start: i64, end: i64, len: i64) -> Option<(usize, usize)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        None
    } else {
        Some((start as usize, end as usize))
    }
}

fn getrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let start = int_arg(&args[2])?;
    let end = int_arg(&args[3])?;
    let db = ctx.db();
    db.with_shard(&args[1], |s| {
        let b = read_str(ctx, s, &args[1])?.unwrap_or(b"");
        match byte_range(start, end, b.len() as i64) {
            Some((a, z)) => ctx.out.bulk(&b[a..=z]),
            None => ctx.out.bulk(b""),
        }
        Ok(())
    })
}

fn setrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let offset = int_arg(&args[2])?;
    if offset < 0 {
        return Err(CmdError::err("offset is out of range"));
    }
    let (key, val) = (&args[1][..], &args[3][..]);
    let db = ctx.db();
    db.with_shard(key, |s| {
        let exists = match write_str(ctx, s, key)? {
            None => {
                if val.is_empty() {
                    ctx.out.integer(0);
                    return Ok(());
                }
                false
            }
            Some(b) => {
                if val.is_empty() {
                    ctx.out.integer(b.len() as i64);
                    return Ok(());
                }
                true
            }
        };
        check_string_length(ctx, offset, val.len() as i64)?;
        if !exists {
            s.set(
                key,
                Value::Str {
                    bytes: Default::default(),
                    raw: true,
                },
                NO_EXPIRE,
                ctx.now,
            );
        }
        let off = offset as usize;
        let len = s
            .modify(key, ctx.now, |e| {
                str_mut(&mut e.value).map_or(0, |b| {
                    if b.len() < off + val.len() {
                        b.resize(off + val.len(), 0);
                    }
                    b[off..off + val.len()].copy_from_slice(val);
                    b.len()
                })
            })
            .unwrap_or(0);
        ctx.propagate_argv(args);
        if !val.is_empty() {
            ctx.notify(STRING, "setrange", key);
        }
        ctx.out.integer(len as i64);
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Counters

fn incr_decr(ctx: &mut Ctx<'_>, args: &[Bytes], incr: i64) -> CmdResult {
    let db = ctx.db();
    let key = &args[1][..];
    db.with_shard(key, |s| {
        let old = match write_str(ctx, s, key)? {
            None => 0,
            Some(b) => ferrite_protocol::parse_i64(b).ok_or(CmdError::NotInteger)?,
        };
        let new = old.checked_add(incr).ok_or(CmdError::Overflow)?;
        store_keepttl(s, key, i64_bytes(new), ctx.now);
        ctx.propagate_argv(args);
        ctx.notify(STRING, "incrby", key);
        ctx.out.integer(new);
        Ok(())
    })
}

fn incr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    incr_decr(ctx, args, 1)
}

fn decr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    incr_decr(ctx, args, -1)
}

fn incrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let n = int_arg(&args[2])?;
    incr_decr(ctx, args, n)
}

fn decrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let n = int_arg(&args[2])?;
    if n == i64::MIN {
        return Err(CmdError::err("decrement would overflow"));
    }
    incr_decr(ctx, args, -n)
}

/// Formats an `INCRBYFLOAT` result like Redis's `ld2string(.., LD_STR_HUMAN)`
/// (`%.17Lf`, trailing zeros trimmed). Redis computes in `long double`; we
/// compute in `f64` and keep 16 significant digits so that binary noise
/// (`0.1 + 0.2`) rounds away as it does with the wider type.
pub fn format_incrbyfloat(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".to_string();
    }
    let sci = format!("{:.15e}", v.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    // value = 0.d1d2d3... * 10^(exp+1): split into integer and fraction digits.
    let point = exp + 1;
    let (mut int_part, mut frac): (Vec<u8>, Vec<u8>) = if point <= 0 {
        let mut f = vec![b'0'; (-point) as usize];
        f.extend_from_slice(&digits);
        (vec![b'0'], f)
    } else if point as usize >= digits.len() {
        let mut i = digits.clone();
        i.resize(point as usize, b'0');
        (i, Vec::new())
    } else {
        (
            digits[..point as usize].to_vec(),
            digits[point as usize..].to_vec(),
        )
    };
    // Round the fraction to 17 decimals (half up on the decimal digits).
    if frac.len() > 17 {
        let round_up = frac[17] >= b'5';
        frac.truncate(17);
        if round_up {
            let mut carry = true;
            for d in frac.iter_mut().rev().chain(int_part.iter_mut().rev()) {
                if !carry {
                    break;
                }
                if *d == b'9' {
                    *d = b'0';
                } else {
                    *d += 1;
                    carry = false;
                }
            }
            if carry {
                int_part.insert(0, b'1');
            }
        }
    }
    while frac.last() == Some(&b'0') {
        frac.pop();
    }
    let mut out = String::new();
    let zero = int_part.iter().all(|&d| d == b'0') && frac.is_empty();
    if v < 0.0 && !zero {
        out.push('-');
    }
    out.push_str(std::str::from_utf8(&int_part).unwrap_or("0"));
    if !frac.is_empty() {
        out.push('.');
        out.push_str(std::str::from_utf8(&frac).unwrap_or(""));
    }
    out
}

fn incrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    let key = &args[1][..];
    db.with_shard(key, |s| {
        let old = match write_str(ctx, s, key)? {
            None => 0.0,
            Some(b) => ferrite_protocol::parse_f64(b).ok_or(CmdError::NotFloat)?,
        };
        let incr = float_arg(&args[2])?;
        let v = old + incr;
        if !v.is_finite() {
            return Err(CmdError::err("increment would produce NaN or Infinity"));
        }
        let text = format_incrbyfloat(v);
        store_keepttl(s, key, text.as_bytes().to_vec(), ctx.now);
        ctx.propagate(&[b"SET", key, text.as_bytes(), b"KEEPTTL"]);
        ctx.notify(STRING, "incrbyfloat", key);
        ctx.out.bulk(text.as_bytes());
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// Bits

/// `getBitOffsetFromArgument`: a bit offset, `#n` meaning `n * bits` when
/// `bits > 0`, below `proto_max_bulk_len * 8`.
pub fn parse_bit_offset(arg: &[u8], bits: u32, max_bulk: i64) -> Result<u64, CmdError> {
    let err = || CmdError::err("bit offset is not an integer or out of range");
    let hash = bits > 0 && arg.first() == Some(&b'#');
    let n = ferrite_protocol::parse_i64(if hash { &arg[1..] } else { arg }).ok_or_else(err)?;
    let n = if hash {
        n.checked_mul(i64::from(bits)).ok_or_else(err)?
    } else {
        n
    };
    if n < 0 || (n >> 3) >= max_bulk {
        return Err(err());
    }
    Ok(n as u64)
}

fn setbit(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let offset = parse_bit_offset(&args[2], 0, max_bulk_len(ctx))?;
    let on = match &args[3][..] {
        b"0" => false,
        b"1" => true,
        _ => return Err(CmdError::err("bit is not an integer or out of range")),
    };
    let key = &args[1][..];
    let db = ctx.db();
    db.with_shard(key, |s| {
        let mut dirty = false;
        if write_str(ctx, s, key)?.is_none() {
            let v = Value::Str {
                bytes: Default::default(),
                raw: true,
            };
            s.set(key, v, NO_EXPIRE, ctx.now);
            dirty = true;
        }
        let created = dirty;
        let byte = (offset >> 3) as usize;
        let mask = 1u8 << (7 - (offset & 7));
        let old = s
            .quietly(|s| {
                s.modify(key, ctx.now, |e| {
                    str_mut(&mut e.value).is_some_and(|b| {
                        if b.len() <= byte {
                            b.resize(byte + 1, 0);
                            dirty = true;
                        }
                        let old = b[byte] & mask != 0;
                        if on {
                            b[byte] |= mask;
                        } else {
                            b[byte] &= !mask;
                        }
                        old
                    })
                })
            })
            .unwrap_or(false);
        // Like Redis, only a real change (new key, growth, flipped bit) is a
        // write: for WATCH, tracking and the dirty counter too.
        if dirty || old != on {
            if !created {
                s.signal_modified(key);
            }
            ctx.propagate_argv(args);
            ctx.notify(STRING, "setbit", key);
        }
        ctx.out.integer(i64::from(old));
        Ok(())
    })
}

fn getbit(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let offset = parse_bit_offset(&args[2], 0, max_bulk_len(ctx))?;
    let db = ctx.db();
    db.with_shard(&args[1], |s| {
        let b = read_str(ctx, s, &args[1])?.unwrap_or(b"");
        let byte = (offset >> 3) as usize;
        let bit = b
            .get(byte)
            .is_some_and(|c| c & (1 << (7 - (offset & 7))) != 0);
        ctx.out.integer(i64::from(bit));
        Ok(())
    })
}

/// Resolves a `[start end]` range with Redis's BITCOUNT/BITPOS rules, in
/// bytes or bits, to an inclusive range of bits; `None` when empty.
fn bit_range(mut start: i64, mut end: i64, len: i64, isbit: bool) -> Option<(u64, u64)> {
    let total = if isbit { len * 8 } else { len };
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    if start > end {
        return None;
    }
    if isbit {
        Some((start as u64, end as u64))
    } else {
        Some((start as u64 * 8, end as u64 * 8 + 7))
    }
}

fn unit_arg(arg: &[u8]) -> Result<bool, CmdError> {
    if is(arg, "bit") {
        Ok(true)
    } else if is(arg, "byte") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

/// Number of set bits of `b` in the inclusive bit range `[a, z]`.
fn count_bits(b: &[u8], a: u64, z: u64) -> i64 {
    let (fa, fz) = ((a / 8) as usize, (z / 8) as usize);
    let mut n: i64 = b[fa..=fz].iter().map(|c| i64::from(c.count_ones())).sum();
    let first_mask = !(0xffu32 >> (a & 7)) as u8;
    let last_mask = (0xffu32 >> ((z & 7) + 1)) as u8;
    n -= i64::from((b[fa] & first_mask).count_ones());
    n -= i64::from((b[fz] & last_mask).count_ones());
    n
}

fn bitcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let db = ctx.db();
    db.with_shard(&args[1], |s| {
        let Some(b) = read_str(ctx, s, &args[1])? else {
            ctx.out.integer(0);
            return Ok(());
        };
        let range = match args.len() {
            2 => {
                if b.is_empty() {
                    None
                } else {
                    Some((0, b.len() as u64 * 8 - 1))
                }
            }
            4 | 5 => {
                let start = int_arg(&args[2])?;
                let end = int_arg(&args[3])?;
                if start < 0 && end < 0 && start > end {
                    ctx.out.integer(0);
                    return Ok(());
                }
                let isbit = match args.get(4) {
                    Some(u) => unit_arg(u)?,
                    None => false,
                };
                bit_range(start, end, b.len() as i64, isbit)
            }
            _ => return Err(CmdError::Syntax),
        };
        let n = range.map_or(0, |(a, z)| count_bits(b, a, z));
        ctx.out.integer(n);
        Ok(())
    })
}

/// First bit equal to `bit` in the inclusive bit range `[a, z]` of `b`.
fn find_bit(b: &[u8], bit: bool, a: u64, z: u64) -> Option<u64> {
    let skip = if bit { 0x00 } else { 0xff };
    let mut pos = a;
    while pos <= z {
        let byte = b[(pos / 8) as usize];
        if pos & 7 == 0 && pos + 7 <= z && byte == skip {
            pos += 8;
            continue;
        }
        if (byte & (0x80 >> (pos & 7)) != 0) == bit {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

fn bitpos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let bit = match int_arg(&args[2])? {
        0 => false,
        1 => true,
        _ => return Err(CmdError::err("The bit argument must be 1 or 0.")),
    };
    let db = ctx.db();
    db.with_shard(&args[1], |s| {
        let Some(b) = read_str(ctx, s, &args[1])? else {
            ctx.out.integer(if bit { -1 } else { 0 });
            return Ok(());
        };
        let len = b.len() as i64;
        let (range, end_given) = match args.len() {
            3 => (bit_range(0, len - 1, len, false), false),
            4..=6 => {
                let start = int_arg(&args[3])?;
                let isbit = match args.get(5) {
                    Some(u) => unit_arg(u)?,
                    None => false,
                };
                let (end, given) = match args.get(4) {
                    Some(e) => (int_arg(e)?, true),
                    None => (if isbit { len * 8 + 7 } else { len - 1 }, false),
                };
                (bit_range(start, end, len, isbit), given)
            }
            _ => return Err(CmdError::Syntax),
        };
        let pos = match range {
            None => -1,
            Some((a, z)) => match find_bit(b, bit, a, z) {
                Some(p) => p as i64,
                None if bit || end_given => -1,
                None => z as i64 + 1,
            },
        };
        ctx.out.integer(pos);
        Ok(())
    })
}

fn bitop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    #[derive(Clone, Copy, PartialEq)]
    enum Op {
        And,
        Or,
        Xor,
        Not,
    }
    let op = match &args[1][..] {
        o if is(o, "and") => Op::And,
        o if is(o, "or") => Op::Or,
        o if is(o, "xor") => Op::Xor,
        o if is(o, "not") => Op::Not,
        _ => return Err(CmdError::Syntax),
    };
    if op == Op::Not && args.len() != 4 {
        return Err(CmdError::err(
            "BITOP NOT must be called with a single source key.",
        ));
    }
    let dest = &args[2][..];
    let srcs = &args[3..];
    let db = ctx.db();
    let keys = std::iter::once(dest).chain(srcs.iter().map(|k| &k[..]));
    db.with_shards(keys, |g| {
        let mut vals: Vec<Vec<u8>> = Vec::with_capacity(srcs.len());
        for k in srcs {
            let v = read_str(ctx, g.shard(k), k)?.map(<[u8]>::to_vec);
            vals.push(v.unwrap_or_default());
        }
        let maxlen = vals.iter().map(Vec::len).max().unwrap_or(0);
        let now = ctx.now;
        let s = g.shard(dest);
        if maxlen > 0 {
            let mut res = vec![0u8; maxlen];
            for (i, r) in res.iter_mut().enumerate() {
                let byte = |v: &Vec<u8>| v.get(i).copied().unwrap_or(0);
                *r = match op {
                    Op::Not => !byte(&vals[0]),
                    Op::And => vals.iter().fold(0xff, |acc, v| acc & byte(v)),
                    Op::Or => vals.iter().fold(0, |acc, v| acc | byte(v)),
                    Op::Xor => vals.iter().fold(0, |acc, v| acc ^ byte(v)),
                };
            }
            let v = Value::Str {
                bytes: res.into(),
                raw: true,
            };
            s.set(dest, v, NO_EXPIRE, now);
            ctx.propagate_argv(args);
            ctx.notify(STRING, "set", dest);
        } else if s.delete(dest, now) {
            ctx.propagate(&[b"DEL", dest]);
            ctx.notify(GENERIC, "del", dest);
        }
        ctx.out.integer(maxlen as i64);
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// BITFIELD

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BfKind {
    Get,
    Set(i64),
    Incr(i64),
}

/// One BITFIELD operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfOp {
    pub kind: BfKind,
    pub signed: bool,
    pub bits: u32,
    pub offset: u64,
    pub overflow: Overflow,
}

const BF_TYPE_ERR: &str =
    "Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

/// Parses a bitfield type (`i1..i64`, `u1..u63`): `(signed, bits)`.
pub fn parse_bf_type(arg: &[u8]) -> Result<(bool, u32), CmdError> {
    let err = || CmdError::err(BF_TYPE_ERR);
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(err()),
    };
    let n = ferrite_protocol::parse_i64(&arg[1..]).ok_or_else(err)?;
    if n < 1 || (signed && n > 64) || (!signed && n > 63) {
        return Err(err());
    }
    Ok((signed, n as u32))
}

/// Parses the subcommands of BITFIELD (after the key).
pub fn parse_bitfield(args: &[Bytes], max_bulk: i64) -> Result<Vec<BfOp>, CmdError> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 0;
    while j < args.len() {
        let sub = &args[j][..];
        let rem = args.len() - j - 1;
        let kind_get = is(sub, "get") && rem >= 2;
        let kind_set = is(sub, "set") && rem >= 3;
        let kind_incr = is(sub, "incrby") && rem >= 3;
        if is(sub, "overflow") && rem >= 1 {
            let t = &args[j + 1][..];
            overflow = if is(t, "wrap") {
                Overflow::Wrap
            } else if is(t, "sat") {
                Overflow::Sat
            } else if is(t, "fail") {
                Overflow::Fail
            } else {
                return Err(CmdError::err("Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        }
        if !(kind_get || kind_set || kind_incr) {
            return Err(CmdError::Syntax);
        }
        let (signed, bits) = parse_bf_type(&args[j + 1])?;
        let offset = parse_bit_offset(&args[j + 2], bits, max_bulk)?;
        let kind = if kind_get {
            BfKind::Get
        } else {
            let v = int_arg(&args[j + 3])?;
            if kind_set {
                BfKind::Set(v)
            } else {
                BfKind::Incr(v)
            }
        };
        ops.push(BfOp {
            kind,
            signed,
            bits,
            offset,
            overflow,
        });
        j += if kind_get { 3 } else { 4 };
    }
    Ok(ops)
}

/// Reads `bits` bits at bit `offset` (MSB first), zero past the end.
pub fn get_bits(b: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for i in 0..u64::from(bits) {
        let pos = offset + i;
        let bit = b
            .get((pos >> 3) as usize)
            .is_some_and(|c| c & (0x80 >> (pos & 7)) != 0);
        v = (v << 1) | u64::from(bit);
    }
    v
}

/// Writes the low `bits` bits of `v` at bit `offset`; `b` must be long enough.
pub fn set_bits(b: &mut [u8], offset: u64, bits: u32, v: u64) {
    for i in 0..u64::from(bits) {
        let pos = offset + i;
        let bit = (v >> (u64::from(bits) - 1 - i)) & 1 == 1;
        let mask = 0x80u8 >> (pos & 7);
        let byte = &mut b[(pos >> 3) as usize];
        if bit {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
    }
}

fn sign_extend(v: u64, bits: u32) -> i64 {
    if bits == 64 {
        v as i64
    } else {
        let shift = 64 - bits;
        ((v << shift) as i64) >> shift
    }
}

/// Adds `incr` to `value` in a field of type `(signed, bits)` with the given
/// overflow policy: the stored result as bits (`None` when FAIL overflows).
pub fn bf_add(value: i128, incr: i128, signed: bool, bits: u32, ow: Overflow) -> Option<i64> {
    let (min, max): (i128, i128) = if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    };
    let sum = value + incr;
    if sum >= min && sum <= max {
        return Some(sum as i64);
    }
    match ow {
        Overflow::Fail => None,
        Overflow::Sat => Some(if sum > max { max } else { min } as i64),
        Overflow::Wrap => {
            let mask = if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            let low = (sum as u64) & mask;
            Some(if signed {
                sign_extend(low, bits)
            } else {
                low as i64
            })
        }
    }
}

/// Runs one op on `b` (already long enough for it): the reply value
/// (`None` when FAIL overflows) and whether the field changed.
fn bf_exec(b: &mut [u8], op: &BfOp) -> (Option<i64>, bool) {
    let raw = get_bits(b, op.offset, op.bits);
    let old: i128 = if op.signed {
        i128::from(sign_extend(raw, op.bits))
    } else {
        i128::from(raw)
    };
    let (new, reply) = match op.kind {
        BfKind::Get => {
            return (Some(old as i64), false);
        }
        BfKind::Incr(i) => {
            let Some(n) = bf_add(old, i128::from(i), op.signed, op.bits, op.overflow) else {
                return (None, false);
            };
            (n, n)
        }
        BfKind::Set(v) => {
            let v = if op.signed {
                i128::from(v)
            } else {
                i128::from(v as u64)
            };
            let Some(n) = bf_add(v, 0, op.signed, op.bits, op.overflow) else {
                return (None, false);
            };
            (n, old as i64)
        }
    };
    set_bits(b, op.offset, op.bits, new as u64);
    (Some(reply), i128::from(new) != old)
}

fn bitfield_generic(ctx: &mut Ctx<'_>, args: &[Bytes], ro: bool) -> CmdResult {
    let ops = parse_bitfield(&args[2..], max_bulk_len(ctx))?;
    let readonly = ops.iter().all(|o| o.kind == BfKind::Get);
    if ro && !readonly {
        return Err(CmdError::err(
            "BITFIELD_RO only supports the GET subcommand",
        ));
    }
    let key = &args[1][..];
    let db = ctx.db();
    db.with_shard(key, |s| {
        if readonly {
            let b = read_str(ctx, s, key)?.unwrap_or(b"");
            ctx.out.array(ops.len());
            for op in &ops {
                let raw = get_bits(b, op.offset, op.bits);
                let v = if op.signed {
                    sign_extend(raw, op.bits)
                } else {
                    raw as i64
                };
                ctx.out.integer(v);
            }
            return Ok(());
        }
        // Like `lookupStringObjectOrCreate`: create and grow up to the
        // farthest bit any write reaches, even if the writes then fail.
        let highest = ops
            .iter()
            .filter(|o| o.kind != BfKind::Get)
            .map(|o| o.offset + u64::from(o.bits) - 1)
            .max()
            .unwrap_or(0);
        let exists = write_str(ctx, s, key)?.is_some();
        let mut dirty = !exists;
        if !exists {
            let v = Value::Str {
                bytes: Default::default(),
                raw: true,
            };
            s.set(key, v, NO_EXPIRE, ctx.now);
        }
        let need = (highest >> 3) as usize + 1;
        // Quietly: only a real change (growth, a changed field) counts as a
        // write for WATCH, tracking and the dirty counter, as in Redis.
        let replies = s
            .quietly(|s| {
                s.modify(key, ctx.now, |e| {
                    let b = str_mut(&mut e.value)?;
                    if b.len() < need {
                        b.resize(need, 0);
                        dirty = true;
                    }
                    Some(ops.iter().map(|op| bf_exec(b, op)).collect::<Vec<_>>())
                })
            })
            .flatten()
            .unwrap_or_default();
        if dirty || replies.iter().any(|r| r.1) {
            if exists {
                s.signal_modified(key);
            }
            ctx.propagate_argv(args);
            ctx.notify(STRING, "setbit", key);
        }
        ctx.out.array(replies.len());
        for (r, _) in replies {
            match r {
                Some(v) => ctx.out.integer(v),
                None => ctx.out.null(),
            }
        }
        Ok(())
    })
}

fn bitfield(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    bitfield_generic(ctx, args, false)
}

fn bitfield_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    bitfield_generic(ctx, args, true)
}

// ---------------------------------------------------------------------------
// LCS

/// One LCS match: range in the first string, range in the second, length.
type LcsMatch = ((usize, usize), (usize, usize), usize);

fn lcs(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut get_len = false;
    let mut get_idx = false;
    let mut with_match_len = false;
    let mut min_match_len: i64 = 0;
    let mut j = 3;
    while j < args.len() {
        let opt = &args[j][..];
        if is(opt, "idx") {
            get_idx = true;
        } else if is(opt, "len") {
            get_len = true;
        } else if is(opt, "withmatchlen") {
            with_match_len = true;
        } else if is(opt, "minmatchlen") && j + 1 < args.len() {
            min_match_len = int_arg(&args[j + 1])?.max(0);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let db = ctx.db();
    let (a, b) = db.with_shards([&args[1][..], &args[2][..]], |g| {
        let mut fetch =
            |k: &[u8]| -> Result<Vec<u8>, CmdError> {
                let s = g.shard(k);
                match s.get(k, ctx.now) {
                    None => Ok(Vec::new()),
                    Some(e) => e.value.as_str().map(<[u8]>::to_vec).ok_or_else(|| {
                        CmdError::err("The specified keys must contain string values")
                    }),
                }
            };
        Ok::<_, CmdError>((fetch(&args[1])?, fetch(&args[2])?))
    })?;
    if get_len && get_idx {
        return Err(CmdError::err(
            "If you want both the length and indexes, please just use IDX.",
        ));
    }
    let (n, m) = (a.len(), b.len());
    let w = m + 1;
    let mut dp = vec![0u32; (n + 1) * (m + 1)];
    for i in 1..=n {
        for k in 1..=m {
            dp[i * w + k] = if a[i - 1] == b[k - 1] {
                dp[(i - 1) * w + k - 1] + 1
            } else {
                dp[(i - 1) * w + k].max(dp[i * w + k - 1])
            };
        }
    }
    let len = dp[n * w + m] as usize;
    if get_len {
        ctx.out.integer(len as i64);
        return Ok(());
    }
    let mut result = vec![0u8; len];
    let mut matches: Vec<LcsMatch> = Vec::new();
    let (mut i, mut k, mut idx) = (n, m, len);
    let mut cur: Option<(usize, usize, usize, usize)> = None; // a_start, a_end, b_start, b_end
    let mut flush = |cur: Option<(usize, usize, usize, usize)>| {
        if let Some((as_, ae, bs, be)) = cur {
            let l = ae - as_ + 1;
            if l as i64 >= min_match_len {
                matches.push(((as_, ae), (bs, be), l));
            }
        }
    };
    while i > 0 && k > 0 {
        if a[i - 1] == b[k - 1] {
            idx -= 1;
            result[idx] = a[i - 1];
            let (ai, bi) = (i - 1, k - 1);
            cur = match cur {
                Some((as_, ae, bs, be)) if as_ == ai + 1 && bs == bi + 1 => Some((ai, ae, bi, be)),
                other => {
                    flush(other);
                    Some((ai, ai, bi, bi))
                }
            };
            i -= 1;
            k -= 1;
        } else if dp[(i - 1) * w + k] > dp[i * w + k - 1] {
            i -= 1;
        } else {
            k -= 1;
        }
    }
    flush(cur);
    if !get_idx {
        ctx.out.bulk(&result);
        return Ok(());
    }
    ctx.out.map(2);
    ctx.out.bulk(b"matches");
    ctx.out.array(matches.len());
    for ((as_, ae), (bs, be), l) in &matches {
        ctx.out.array(if with_match_len { 3 } else { 2 });
        ctx.out.array(2);
        ctx.out.integer(*as_ as i64);
        ctx.out.integer(*ae as i64);
        ctx.out.array(2);
        ctx.out.integer(*bs as i64);
        ctx.out.integer(*be as i64);
        if with_match_len {
            ctx.out.integer(*l as i64);
        }
    }
    ctx.out.bulk(b"len");
    ctx.out.integer(len as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: &[&str]) -> Vec<Bytes> {
        v.iter().map(|s| Bytes::from(s.to_string())).collect()
    }

    #[test]
    fn incrbyfloat_formatting() {
        assert_eq!(format_incrbyfloat(20.5), "20.5");
        assert_eq!(format_incrbyfloat(3000.0), "3000");
        assert_eq!(format_incrbyfloat(0.1 + 0.2), "0.3");
        assert_eq!(format_incrbyfloat(1.0 + 1.1), "2.1");
        assert_eq!(format_incrbyfloat(-0.0), "0");
        assert_eq!(format_incrbyfloat(-1.5), "-1.5");
        assert_eq!(format_incrbyfloat(1e-20), "0");
        assert_eq!(format_incrbyfloat(-1e-20), "0");
        assert_eq!(format_incrbyfloat(1e20), "100000000000000000000");
        assert_eq!(format_incrbyfloat(0.000001), "0.000001");
        assert_eq!(format_incrbyfloat(10.75), "10.75");
    }

    #[test]
    fn bitfield_types() {
        assert_eq!(parse_bf_type(b"i64").unwrap(), (true, 64));
        assert_eq!(parse_bf_type(b"u63").unwrap(), (false, 63));
        assert!(parse_bf_type(b"u64").is_err());
        assert!(parse_bf_type(b"i0").is_err());
        assert!(parse_bf_type(b"I8").is_err());
        assert!(parse_bf_type(b"i").is_err());
    }

    #[test]
    fn bitfield_parsing() {
        let ops = parse_bitfield(
            &b(&[
                "get", "u8", "#2", "overflow", "sat", "incrby", "i5", "100", "1",
            ]),
            512 << 20,
        )
        .unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].offset, 16);
        assert_eq!(ops[0].kind, BfKind::Get);
        assert_eq!(ops[1].overflow, Overflow::Sat);
        assert_eq!(ops[1].kind, BfKind::Incr(1));
        assert!(parse_bitfield(&b(&["get", "u8"]), 512 << 20).is_err());
        assert!(parse_bitfield(&b(&["overflow", "foo"]), 512 << 20).is_err());
        assert!(parse_bitfield(&b(&["get", "u8", "-1"]), 512 << 20).is_err());
    }

    #[test]
    fn bitfield_overflow() {
        assert_eq!(bf_add(127, 1, true, 8, Overflow::Wrap), Some(-128));
        assert_eq!(bf_add(127, 1, true, 8, Overflow::Sat), Some(127));
        assert_eq!(bf_add(127, 1, true, 8, Overflow::Fail), None);
        assert_eq!(bf_add(255, 1, false, 8, Overflow::Wrap), Some(0));
        assert_eq!(bf_add(0, -1, false, 8, Overflow::Sat), Some(0));
        assert_eq!(
            bf_add(i64::MAX as i128, 1, true, 64, Overflow::Wrap),
            Some(i64::MIN)
        );
        assert_eq!(
            bf_add(u64::MAX as i128, 0, false, 8, Overflow::Wrap),
            Some(255)
        );
    }

    #[test]
    fn bits_roundtrip() {
        let mut v = vec![0u8; 3];
        set_bits(&mut v, 5, 10, 0x2ab);
        assert_eq!(get_bits(&v, 5, 10), 0x2ab);
        assert_eq!(get_bits(b"\xff", 4, 8), 0xf0);
    }

    #[test]
    fn ranges() {
        assert_eq!(byte_range(0, -1, 5), Some((0, 4)));
        assert_eq!(byte_range(-1, -2, 5), None);
        assert_eq!(byte_range(0, 100, 0), None);
        assert_eq!(bit_range(1, 1, 2, false), Some((8, 15)));
        assert_eq!(count_bits(b"\xff\xff", 3, 9), 7);
        assert_eq!(count_bits(b"\xff\xff", 0, 15), 16);
        assert_eq!(find_bit(b"\xff\xf0", false, 0, 15), Some(12));
    }
}
