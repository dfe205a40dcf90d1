//! Bloom filter commands with RedisBloom 2.x's replies and error texts:
//! `BF.RESERVE BF.ADD BF.MADD BF.INSERT BF.EXISTS BF.MEXISTS BF.INFO BF.CARD
//! BF.SCANDUMP BF.LOADCHUNK`.
//!
//! The module registers these without an arity (Redis reports -1), so each
//! handler checks its argument count as RedisBloom does, with the same
//! `wrong number of arguments` error. Writes propagate the command as
//! received: given the same parameters and items, filter creation and
//! insertion are deterministic, so replaying it rebuilds the same bits.

use bytes::Bytes;
use ferrite_storage::bloom::{
    DEFAULT_CAPACITY, DEFAULT_ERROR_RATE, DEFAULT_EXPANSION, MAX_SCANDUMP_CHUNK,
};
use ferrite_storage::{Bloom, BloomError, DumpError, Shard, Value, NO_EXPIRE};

use crate::command::ctx::is;
use crate::command::{CmdError, CmdResult, Ctx, Handler};

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("bf.reserve", reserve),
    ("bf.add", add),
    ("bf.madd", madd),
    ("bf.insert", insert),
    ("bf.exists", exists),
    ("bf.mexists", mexists),
    ("bf.info", info),
    ("bf.card", card),
    ("bf.scandump", scandump),
    ("bf.loadchunk", loadchunk),
];

fn not_found() -> CmdError {
    CmdError::err("not found")
}

fn could_not_create() -> CmdError {
    CmdError::err("could not create filter")
}

/// RedisBloom parses numbers with `RedisModule_StringToDouble`/`ToLongLong`,
/// i.e. Redis's strict parsers.
fn parse_f64(arg: &[u8]) -> Option<f64> {
    ferrite_protocol::parse_f64(arg).filter(|f| !f.is_nan())
}

fn parse_i64(arg: &[u8]) -> Option<i64> {
    ferrite_protocol::parse_i64(arg)
}

/// The filter at `key` for reading: `Ok(None)` when absent, WRONGTYPE for
/// another type.
fn read_bloom<'s>(
    ctx: &Ctx<'_>,
    s: &'s mut Shard,
    key: &[u8],
) -> Result<Option<&'s Bloom>, CmdError> {
    ctx.read_lookup(s, key, |v| match v {
        Value::Bloom(b) => Ok(&**b),
        _ => Err(CmdError::WrongType),
    })
}

/// Creation parameters.
#[derive(Clone, Copy)]
struct Params {
    error: f64,
    capacity: u64,
    expansion: u64,
    nonscaling: bool,
}

const DEFAULTS: Params = Params {
    error: DEFAULT_ERROR_RATE,
    capacity: DEFAULT_CAPACITY,
    expansion: DEFAULT_EXPANSION,
    nonscaling: false,
};

fn new_filter(p: Params) -> Result<Bloom, CmdError> {
    Bloom::new(p.error, p.capacity, p.expansion, p.nonscaling).map_err(|_| could_not_create())
}

/// `BF.RESERVE key error_rate capacity [EXPANSION expansion] [NONSCALING]`.
fn reserve(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() < 4 || args.len() > 7 {
        return Err(ctx.arity_error());
    }
    let error = parse_f64(&args[2]).ok_or_else(|| CmdError::err("bad error rate"))?;
    if !(error > 0.0 && error < 1.0) {
        return Err(CmdError::err("(0 < error rate range < 1)"));
    }
    let capacity = parse_i64(&args[3]).ok_or_else(|| CmdError::err("bad capacity"))?;
    if capacity <= 0 {
        return Err(CmdError::err("(capacity should be larger than 0)"));
    }
    // Options are looked up by name anywhere after the capacity, as
    // `RMUtil_ArgIndex` does; anything else there is ignored.
    let find = |w: &str| (4..args.len()).find(|&i| is(&args[i], w));
    let nonscaling = find("nonscaling").is_some();
    let mut expansion = DEFAULT_EXPANSION as i64;
    if let Some(i) = find("expansion") {
        if i + 1 == args.len() {
            return Err(CmdError::err("no expansion"));
        }
        if nonscaling {
            return Err(CmdError::err("nonscaling filters cannot expand"));
        }
        expansion = parse_i64(&args[i + 1]).ok_or_else(|| CmdError::err("bad expansion"))?;
        if expansion < 1 {
            return Err(CmdError::err("(expansion should be greater or equal to 1)"));
        }
    }
    let params = Params {
        error,
        capacity: capacity as u64,
        expansion: expansion as u64,
        nonscaling,
    };
    let key = &args[1];
    ctx.db().with_shard(key, |s| {
        match s.peek(key, ctx.now) {
            Some(e) if matches!(e.value, Value::Bloom(_)) => {
                return Err(CmdError::err("item exists"))
            }
            Some(_) => return Err(CmdError::WrongType),
            None => {}
        }
        let b = new_filter(params)?;
        s.set(key, Value::Bloom(Box::new(b)), NO_EXPIRE, ctx.now);
        ctx.propagate_argv(args);
        ctx.out.ok();
        Ok(())
    })
}

/// The shared body of `BF.ADD`, `BF.MADD` and `BF.INSERT` (`bfInsertCommon`):
/// creates the filter when allowed, adds the items, replies one integer
/// (or an array of them), stopping at the first item a full filter refuses.
fn insert_common(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    items: &[Bytes],
    params: Params,
    autocreate: bool,
    multi: bool,
) -> CmdResult {
    let key = &args[1];
    ctx.db().with_shard(key, |s| {
        let created = match s.peek(key, ctx.now) {
            Some(e) if matches!(e.value, Value::Bloom(_)) => false,
            Some(_) => return Err(CmdError::WrongType),
            None if autocreate => {
                let b = new_filter(params)?;
                s.set(key, Value::Bloom(Box::new(b)), NO_EXPIRE, ctx.now);
                true
            }
            None => return Err(not_found()),
        };
        let mut results: smallvec::SmallVec<[Result<bool, BloomError>; 8]> = Default::default();
        let changed = s
            .modify(key, ctx.now, |e| {
                let Value::Bloom(b) = &mut e.value else {
                    return false;
                };
                let mut changed = false;
                for it in items {
                    let r = b.add(it);
                    changed |= r == Ok(true);
                    let stop = r.is_err();
                    results.push(r);
                    if stop {
                        break;
                    }
                }
                changed
            })
            .unwrap_or(false);
        if created || changed {
            ctx.propagate_argv(args);
        }
        if !multi {
            return match results.first() {
                Some(Ok(added)) => {
                    ctx.out.integer(i64::from(*added));
                    Ok(())
                }
                Some(Err(e)) => Err(add_error(*e)),
                None => Err(could_not_create()),
            };
        }
        ctx.out.array(results.len());
        for r in &results {
            match r {
                Ok(added) => ctx.out.integer(i64::from(*added)),
                Err(e) => ctx.out.error(add_error(*e).to_string().as_bytes()),
            }
        }
        Ok(())
    })
}

fn add_error(e: BloomError) -> CmdError {
    match e {
        BloomError::Full => CmdError::err("non scaling filter is full"),
        BloomError::TooLarge => could_not_create(),
    }
}

/// `BF.ADD key item`.
fn add(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() != 3 {
        return Err(ctx.arity_error());
    }
    insert_common(ctx, args, &args[2..], DEFAULTS, true, false)
}

/// `BF.MADD key item [item ...]`.
fn madd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() < 3 {
        return Err(ctx.arity_error());
    }
    insert_common(ctx, args, &args[2..], DEFAULTS, true, true)
}

/// `BF.INSERT key [CAPACITY c] [ERROR e] [EXPANSION x] [NOCREATE]
/// [NONSCALING] ITEMS item [item ...]`, parsed as RedisBloom does: by the
/// option's first letter(s), up to `ITEMS`.
fn insert(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() < 4 {
        return Err(ctx.arity_error());
    }
    let mut error = DEFAULT_ERROR_RATE;
    let mut capacity = DEFAULT_CAPACITY as i64;
    let mut expansion = DEFAULT_EXPANSION as i64;
    let mut autocreate = true;
    let mut nonscaling = false;
    let mut items_at = None;
    let mut pos = 2;
    while pos < args.len() && items_at.is_none() {
        let a = &args[pos][..];
        let lower = |i: usize| a.get(i).map(u8::to_ascii_lowercase);
        match lower(0) {
            Some(b'i') => {
                pos += 1;
                items_at = Some(pos);
            }
            Some(b'e') => {
                pos += 1;
                let v = args.get(pos).ok_or_else(|| ctx.arity_error())?;
                if lower(1) == Some(b'r') {
                    error = parse_f64(v).ok_or_else(|| CmdError::err("Bad error rate"))?;
                } else {
                    expansion = parse_i64(v).ok_or_else(|| CmdError::err("Bad expansion"))?;
                }
                pos += 1;
            }
            Some(b'c') => {
                pos += 1;
                let v = args.get(pos).ok_or_else(|| ctx.arity_error())?;
                capacity = parse_i64(v).ok_or_else(|| CmdError::err("Bad capacity"))?;
                pos += 1;
            }
            Some(b'n') => {
                if lower(2) == Some(b'c') {
                    autocreate = false;
                } else {
                    nonscaling = true;
                }
                pos += 1;
            }
            _ => return Err(CmdError::err("Unknown argument received")),
        }
    }
    let at = match items_at {
        Some(at) if at < args.len() => at,
        _ => return Err(ctx.arity_error()),
    };
    if !(error > 0.0 && error < 1.0) || capacity < 1 || expansion < 1 {
        return Err(CmdError::err("Bad argument received"));
    }
    let params = Params {
        error,
        capacity: capacity as u64,
        expansion: expansion as u64,
        nonscaling,
    };
    insert_common(ctx, args, &args[at..], params, autocreate, true)
}

/// `BF.EXISTS` / `BF.MEXISTS`: RedisBloom answers 0 for every item of a
/// key that is missing or not a filter.
fn check(ctx: &mut Ctx<'_>, args: &[Bytes], multi: bool) -> CmdResult {
    let key = &args[1];
    ctx.db().with_shard(key, |s| {
        let b = read_bloom(ctx, s, key).ok().flatten();
        if multi {
            ctx.out.array(args.len() - 2);
        }
        for it in &args[2..] {
            ctx.out
                .integer(i64::from(b.is_some_and(|b| b.contains(it))));
        }
        Ok(())
    })
}

fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() != 3 {
        return Err(ctx.arity_error());
    }
    check(ctx, args, false)
}

fn mexists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() < 3 {
        return Err(ctx.arity_error());
    }
    check(ctx, args, true)
}

/// `BF.INFO key [CAPACITY | SIZE | FILTERS | ITEMS | EXPANSION]`: a flat
/// name/value array in RESP2, a map in RESP3 (as RedisBloom 2.x).
fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() != 2 && args.len() != 3 {
        return Err(ctx.arity_error());
    }
    let key = &args[1];
    ctx.db().with_shard(key, |s| {
        let b = read_bloom(ctx, s, key)?.ok_or_else(not_found)?;
        let as_int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let fields: [(&str, Option<i64>); 5] = [
            ("Capacity", Some(as_int(b.capacity()))),
            ("Size", Some(as_int(b.size()))),
            ("Number of filters", Some(b.filters().len() as i64)),
            ("Number of items inserted", Some(as_int(b.items()))),
            ("Expansion rate", b.expansion().map(as_int)),
        ];
        let put = |out: &mut ferrite_protocol::ReplyBuf, v: Option<i64>| match v {
            Some(n) => out.integer(n),
            None => out.null(),
        };
        if let Some(which) = args.get(2) {
            let i = ["capacity", "size", "filters", "items", "expansion"]
                .iter()
                .position(|w| is(which, w))
                .ok_or_else(|| CmdError::err("Invalid information value"))?;
            // RedisBloom's `ReplyWithMapOrArray`: a one-pair map in RESP3,
            // the bare value in a one-element array in RESP2.
            if ctx.out.resp3 {
                ctx.out.map(1);
                ctx.out.simple(fields[i].0.as_bytes());
            } else {
                ctx.out.array(1);
            }
            put(ctx.out, fields[i].1);
            return Ok(());
        }
        ctx.out.map(fields.len());
        for (name, v) in fields {
            ctx.out.simple(name.as_bytes());
            put(ctx.out, v);
        }
        Ok(())
    })
}

/// `BF.CARD key`: items added, 0 for a missing key.
fn card(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() != 2 {
        return Err(ctx.arity_error());
    }
    let key = &args[1];
    ctx.db().with_shard(key, |s| {
        let n = read_bloom(ctx, s, key)?.map_or(0, |b| b.items());
        ctx.out.integer(i64::try_from(n).unwrap_or(i64::MAX));
        Ok(())
    })
}

fn dump_error(e: DumpError) -> CmdError {
    CmdError::Other(e.message().to_owned())
}

/// `BF.SCANDUMP key iterator`: `[1, header]` for iterator 0, then
/// `[next, chunk]` of at most 16 MiB of bit array per call, and `[0, ""]`
/// when done (see `Bloom::dump_header` for the layout).
fn scandump(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() != 3 {
        return Err(ctx.arity_error());
    }
    let key = &args[1];
    ctx.db().with_shard(key, |s| {
        let b = read_bloom(ctx, s, key)?.ok_or_else(not_found)?;
        // RedisBloom words this one without an error code.
        let iter = parse_i64(&args[2])
            .ok_or_else(|| CmdError::Other("Second argument must be numeric".into()))?;
        let (next, data) = if iter == 0 {
            (1, b.dump_header().map_err(dump_error)?)
        } else {
            b.dump_chunk(iter, MAX_SCANDUMP_CHUNK)
        };
        ctx.out.array(2);
        ctx.out.integer(next);
        ctx.out.bulk(&data);
        Ok(())
    })
}

/// `BF.LOADCHUNK key iterator data`: iterator 1 with a header creates the
/// filter on a missing key; other pairs write a `BF.SCANDUMP` chunk into
/// an existing filter. As in RedisBloom, a header sent to an existing key
/// is taken as a chunk (and refused as bad data) rather than replacing it.
/// Propagated as received: the result depends only on the arguments and
/// the filter.
fn loadchunk(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() != 4 {
        return Err(ctx.arity_error());
    }
    let iter =
        parse_i64(&args[2]).ok_or_else(|| CmdError::err("Second argument must be numeric"))?;
    let (key, data) = (&args[1], &args[3]);
    ctx.db().with_shard(key, |s| {
        match s.peek(key, ctx.now) {
            Some(e) => match &e.value {
                Value::Bloom(b) => {
                    b.check_chunk(iter, data.len()).map_err(dump_error)?;
                }
                _ => return Err(CmdError::WrongType),
            },
            None if iter == 1 => {
                let b = Bloom::from_dump_header(data).map_err(dump_error)?;
                s.set(key, Value::Bloom(Box::new(b)), NO_EXPIRE, ctx.now);
                ctx.propagate_argv(args);
                ctx.out.ok();
                return Ok(());
            }
            None => return Err(not_found()),
        }
        let r = s.modify(key, ctx.now, |e| match &mut e.value {
            Value::Bloom(b) => b.load_chunk(iter, data),
            _ => Err(DumpError::BadData),
        });
        r.unwrap_or(Err(DumpError::BadData)).map_err(dump_error)?;
        ctx.propagate_argv(args);
        ctx.out.ok();
        Ok(())
    })
}
