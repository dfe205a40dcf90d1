//! HyperLogLog commands: `PFADD PFCOUNT PFMERGE PFDEBUG PFSELFTEST`, over
//! string values in Redis's own layout ([`ferrite_storage::hll`]), with
//! Redis 7.0's replies, errors and propagation: `PFADD` and `PFMERGE` as
//! received, `PFCOUNT` too when it wrote the cached cardinality into the
//! value (it is `may_replicate`), `PFDEBUG GETREG/TODENSE` when they
//! converted the value to dense.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use ferrite_storage::hll;
use ferrite_storage::{Shard, Value, NO_EXPIRE};
use rand::Rng;

use crate::command::ctx::is;
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::pubsub::notify::STRING;

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("pfadd", pfadd),
    ("pfcount", pfcount),
    ("pfmerge", pfmerge),
    ("pfdebug", pfdebug),
    ("pfselftest", pfselftest),
];

fn not_hll() -> CmdError {
    CmdError::Other("WRONGTYPE Key is not a valid HyperLogLog string value.".into())
}

fn corrupt() -> CmdError {
    CmdError::Other("INVALIDOBJ Corrupted HLL object detected".into())
}

/// The value as a HyperLogLog (`isHLLObjectOrReply`).
fn hll_of(v: &Value) -> Result<&[u8], CmdError> {
    match v {
        Value::Str { bytes, .. } if hll::is_valid(bytes) => Ok(bytes),
        Value::Str { .. } => Err(not_hll()),
        _ => Err(CmdError::WrongType),
    }
}

/// Runs `f` on the bytes of the HyperLogLog at `key` (checked to be one),
/// without signalling a change; the caller signals what changed.
fn with_hll_mut<R>(
    s: &mut Shard,
    key: &[u8],
    now: i64,
    f: impl FnOnce(&mut Vec<u8>) -> R,
) -> Option<R> {
    s.quietly(|s| {
        s.modify(key, now, |e| match &mut e.value {
            Value::Str { bytes, raw } => {
                *raw = true;
                Some(f(bytes.make_mut()))
            }
            _ => None,
        })
        .flatten()
    })
}

fn sparse_max(ctx: &Ctx<'_>) -> usize {
    ctx.srv
        .hot
        .hll_sparse_max_bytes
        .load(Ordering::Relaxed)
        .max(0) as usize
}

/// Creates an empty HyperLogLog at `key` (it was checked to be absent).
fn create(s: &mut Shard, key: &[u8], now: i64) {
    s.set(
        key,
        Value::Str {
            bytes: hll::new_sparse().into(),
            raw: true,
        },
        NO_EXPIRE,
        now,
    );
}

/// `PFADD key [element ...]`: 1 if any register changed (or the key was
/// created), else 0.
fn pfadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let max = sparse_max(ctx);
    let now = ctx.now;
    let c = &*ctx;
    let updated = c.db().with_shard(key, |s| {
        let exists = match s.peek(key, now) {
            None => false,
            Some(e) => hll_of(&e.value).map(|_| true)?,
        };
        let mut updated = 0;
        if !exists {
            create(s, key, now);
            updated += 1;
        }
        let changed = with_hll_mut(s, key, now, |v| {
            let mut n = 0;
            for ele in &args[2..] {
                if hll::add(v, ele, max)? {
                    n += 1;
                }
            }
            if n > 0 {
                hll::touch(v);
            }
            Ok(n)
        })
        .unwrap_or(Ok(0))
        .map_err(|_: hll::Corrupt| corrupt())?;
        updated += changed;
        if updated > 0 {
            if exists {
                s.signal_modified(key);
            }
            c.propagate_argv(args);
            c.notify(STRING, "pfadd", key);
        }
        Ok::<_, CmdError>(updated)
    })?;
    ctx.out.integer(i64::from(updated > 0));
    Ok(())
}

/// `PFCOUNT key [key ...]`: one key's (cached) estimate, or the estimate
/// of the union of several.
fn pfcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let c = &*ctx;
    let now = c.now;
    if args.len() > 2 {
        let keys = &args[1..];
        let card = c.db().with_shards(keys.iter().map(|k| &k[..]), |g| {
            let mut max = Box::new([0u8; hll::REGISTERS]);
            for k in keys {
                let Some(v) = c.read_lookup(g.shard(k), k, hll_of)? else {
                    continue;
                };
                hll::merge_into(&mut max, v).map_err(|_| corrupt())?;
            }
            Ok::<_, CmdError>(hll::count_registers(&max))
        })?;
        ctx.out.integer(card as i64);
        return Ok(());
    }
    let key = &args[1][..];
    let card = c.db().with_shard(key, |s| {
        if c.read_lookup(s, key, hll_of)?.is_none() {
            return Ok(0);
        }
        let (card, wrote) = with_hll_mut(s, key, now, |v| hll::count(v))
            .unwrap_or(Ok((0, false)))
            .map_err(|_| corrupt())?;
        if wrote {
            // The cache is part of the string: a change to the value.
            s.signal_modified(key);
            c.propagate_argv(args);
        }
        Ok::<_, CmdError>(card)
    })?;
    ctx.out.integer(card as i64);
    Ok(())
}

/// `PFMERGE destkey [sourcekey ...]`: the union into `destkey` (itself one
/// of the inputs), dense if any input is.
fn pfmerge(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let max_bytes = sparse_max(ctx);
    let c = &*ctx;
    let now = c.now;
    let dst = &args[1][..];
    c.db().with_shards(args[1..].iter().map(|k| &k[..]), |g| {
        let mut max = Box::new([0u8; hll::REGISTERS]);
        let mut dense = false;
        for k in &args[1..] {
            let Some(v) = c.read_lookup(g.shard(k), k, hll_of)? else {
                continue;
            };
            dense |= !hll::is_sparse(v);
            hll::merge_into(&mut max, v).map_err(|_| corrupt())?;
        }
        let s = g.shard(dst);
        if s.peek(dst, now).is_none() {
            create(s, dst, now);
        }
        with_hll_mut(s, dst, now, |v| {
            hll::store_registers(v, &max, dense, max_bytes)
        })
        .unwrap_or(Ok(()))
        .map_err(|_| corrupt())?;
        s.signal_modified(dst);
        c.propagate_argv(args);
        // Redis notifies a merge as `pfadd` (a mass add).
        c.notify(STRING, "pfadd", dst);
        Ok::<_, CmdError>(())
    })?;
    ctx.out.ok();
    Ok(())
}

/// `PFDEBUG <GETREG|DECODE|ENCODING|TODENSE> key`.
fn pfdebug(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).into_owned();
    let key = &args[2][..];
    let c = &*ctx;
    let now = c.now;
    enum Reply {
        Registers(Vec<u8>),
        Text(String),
        Status(&'static str),
        Int(i64),
    }
    let reply = c.db().with_shard(key, |s| {
        let Some(e) = s.peek(key, now) else {
            return Err(CmdError::err("The specified key does not exist"));
        };
        let sparse = hll::is_sparse(hll_of(&e.value)?);
        let arity = || {
            CmdError::err(format!(
                "Wrong number of arguments for the '{sub}' subcommand"
            ))
        };
        let to_dense = |s: &mut Shard| -> Result<bool, CmdError> {
            let converted = with_hll_mut(s, key, now, hll::to_dense)
                .unwrap_or(Ok(false))
                .map_err(|_| corrupt())?;
            if converted {
                s.signal_modified(key);
                c.propagate_argv(args);
            }
            Ok(converted)
        };
        if is(&args[1], "getreg") {
            if args.len() != 3 {
                return Err(arity());
            }
            to_dense(s)?;
            let regs = s.peek(key, now).map(|e| match &e.value {
                Value::Str { bytes, .. } => hll::registers(bytes),
                _ => Vec::new(),
            });
            Ok(Reply::Registers(regs.unwrap_or_default()))
        } else if is(&args[1], "decode") {
            if args.len() != 3 {
                return Err(arity());
            }
            if !sparse {
                return Err(CmdError::err("HLL encoding is not sparse"));
            }
            let text = s.peek(key, now).map(|e| match &e.value {
                Value::Str { bytes, .. } => hll::decode(bytes),
                _ => String::new(),
            });
            Ok(Reply::Text(text.unwrap_or_default()))
        } else if is(&args[1], "encoding") {
            if args.len() != 3 {
                return Err(arity());
            }
            Ok(Reply::Status(if sparse { "sparse" } else { "dense" }))
        } else if is(&args[1], "todense") {
            if args.len() != 3 {
                return Err(arity());
            }
            Ok(Reply::Int(i64::from(to_dense(s)?)))
        } else {
            Err(CmdError::err(format!("Unknown PFDEBUG subcommand '{sub}'")))
        }
    })?;
    match reply {
        Reply::Registers(regs) => {
            ctx.out.array(regs.len());
            for r in regs {
                ctx.out.integer(i64::from(r));
            }
        }
        Reply::Text(t) => ctx.out.bulk(t.as_bytes()),
        Reply::Status(s) => ctx.out.simple(s.as_bytes()),
        Reply::Int(n) => ctx.out.integer(n),
    }
    Ok(())
}

/// `PFSELFTEST`: Redis's self test of the register layout and estimator.
fn pfselftest(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    let mut rng = rand::thread_rng();
    hll::selftest(|| rng.gen(), sparse_max(ctx)).map_err(CmdError::Other)?;
    ctx.out.ok();
    Ok(())
}
