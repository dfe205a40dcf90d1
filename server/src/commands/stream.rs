//! Stream commands: `XADD XLEN XRANGE XREVRANGE XDEL XTRIM XREAD XREADGROUP
//! XACK XPENDING XCLAIM XAUTOCLAIM XSETID XGROUP XINFO`, following Redis
//! 7.0's `t_stream.c` case by case (replies, error texts, the order in which
//! arguments are checked).
//!
//! Writes propagate what Redis propagates: `XADD` with the ID it generated
//! and `~` trimming rewritten to the exact `=` result; group reads and
//! claims as idempotent `XCLAIM ... TIME t RETRYCOUNT n FORCE JUSTID LASTID
//! id` per delivered entry, `XGROUP SETID ... ENTRIESREAD n` for a group's
//! position and `XGROUP CREATECONSUMER` where Redis sends them.
//!
//! Blocking `XREAD`/`XREADGROUP` register a waiter ([`BlockOp::Stream`]) on
//! the shared registry; `XADD` (and `XGROUP DESTROY`) report the key ready
//! and [`serve_stream_waiter`] answers the waiters in blocking order.

use bytes::Bytes;
use ferrite_protocol::ReplyBuf;
use ferrite_storage::stream::{AddError, ConsumerGroup, Fields, Trim, INVALID_ENTRIES_READ};
use ferrite_storage::{Shard, Stream, StreamId, Value, NO_EXPIRE};

use crate::blocking::{BlockOp, StreamRead, Waiter};
use crate::command::ctx::{int_arg, is, range_arg};
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::commands::list::Served;
use crate::pubsub::notify::STREAM;
use crate::shared::Shared;

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("xadd", xadd),
    ("xlen", xlen),
    ("xrange", xrange),
    ("xrevrange", xrevrange),
    ("xdel", xdel),
    ("xtrim", xtrim),
    ("xread", xread),
    ("xreadgroup", xread),
    ("xack", xack),
    ("xpending", xpending),
    ("xclaim", xclaim),
    ("xautoclaim", xautoclaim),
    ("xsetid", xsetid),
    ("xgroup|create", xgroup),
    ("xgroup|setid", xgroup),
    ("xgroup|destroy", xgroup),
    ("xgroup|createconsumer", xgroup),
    ("xgroup|delconsumer", xgroup),
    ("xgroup|help", xgroup_help),
    ("xinfo|stream", xinfo),
    ("xinfo|groups", xinfo),
    ("xinfo|consumers", xinfo),
    ("xinfo|help", xinfo_help),
];

const INVALID_ID: &str = "Invalid stream ID specified as stream command argument";

// ---------------------------------------------------------------------------
// IDs

/// `string2ull`: a decimal `u64` (a leading `+` is accepted, as `strtoull`).
fn parse_u64(s: &[u8]) -> Option<u64> {
    let s = s.strip_prefix(b"+").unwrap_or(s);
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// `streamGenericParseIDOrReply`: `-`, `+` (unless `strict`), `ms`,
/// `ms-seq` and, when `allow_star`, `ms-*`. Returns the ID and whether the
/// sequence was given.
fn parse_id_full(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
    allow_star: bool,
) -> Result<(StreamId, bool), CmdError> {
    let invalid = || CmdError::err(INVALID_ID);
    if arg.len() > 127 {
        return Err(invalid());
    }
    if arg == b"-" || arg == b"+" {
        if strict {
            return Err(invalid());
        }
        return Ok((
            if arg == b"-" {
                StreamId::MIN
            } else {
                StreamId::MAX
            },
            true,
        ));
    }
    let (ms_part, seq_part) = match arg.iter().position(|&b| b == b'-') {
        Some(p) => (&arg[..p], Some(&arg[p + 1..])),
        None => (arg, None),
    };
    let ms = parse_u64(ms_part).ok_or_else(invalid)?;
    match seq_part {
        Some(b"*") if allow_star => Ok((StreamId::new(ms, 0), false)),
        Some(seq) => Ok((StreamId::new(ms, parse_u64(seq).ok_or_else(invalid)?), true)),
        None => Ok((StreamId::new(ms, missing_seq), true)),
    }
}

/// A strict ID (no `-`/`+`), missing sequence 0.
fn strict_id(arg: &[u8]) -> Result<StreamId, CmdError> {
    parse_id_full(arg, 0, true, false).map(|r| r.0)
}

/// A range bound: `(` makes it exclusive (and strict); returns the
/// inclusive bound.
fn interval_id(arg: &[u8], missing_seq: u64, start: bool) -> Result<StreamId, CmdError> {
    if arg.len() > 1 && arg[0] == b'(' {
        let id = parse_id_full(&arg[1..], missing_seq, true, false)?.0;
        let adj = if start { id.incr() } else { id.decr() };
        adj.ok_or_else(|| {
            CmdError::err(if start {
                "invalid start ID for the interval"
            } else {
                "invalid end ID for the interval"
            })
        })
    } else {
        Ok(parse_id_full(arg, missing_seq, false, false)?.0)
    }
}

fn id_bytes(id: StreamId) -> Vec<u8> {
    let mut v = Vec::with_capacity(24);
    let mut b = itoa::Buffer::new();
    v.extend_from_slice(b.format(id.ms).as_bytes());
    v.push(b'-');
    v.extend_from_slice(b.format(id.seq).as_bytes());
    v
}

fn reply_id(out: &mut ReplyBuf, id: StreamId) {
    out.bulk(&id_bytes(id));
}

fn reply_entry(out: &mut ReplyBuf, id: StreamId, fields: &Fields) {
    out.array(2);
    reply_id(out, id);
    out.array(fields.len());
    for f in fields.iter() {
        out.bulk(f);
    }
}

fn i64_bytes(n: i64) -> Vec<u8> {
    itoa::Buffer::new().format(n).as_bytes().to_vec()
}

// ---------------------------------------------------------------------------
// Lookups and effects

fn stream_of(v: &Value) -> Result<&Stream, CmdError> {
    match v {
        Value::Stream(s) => Ok(s),
        _ => Err(CmdError::WrongType),
    }
}

/// A write lookup: whether a stream is at `key`, WRONGTYPE for another type.
fn write_exists(s: &mut Shard, key: &[u8], now: i64) -> Result<bool, CmdError> {
    match s.peek(key, now) {
        None => Ok(false),
        Some(e) => stream_of(&e.value).map(|_| true),
    }
}

/// Runs `f` on the stream at `key` (which the caller checked); `signal`
/// says whether the change counts for `WATCH` and tracking (Redis's
/// `signalModifiedKey` is not called by every stream write).
fn modify_stream<R>(
    s: &mut Shard,
    key: &[u8],
    now: i64,
    signal: bool,
    f: impl FnOnce(&mut Stream) -> R,
) -> Option<R> {
    let run = |s: &mut Shard| {
        s.modify(key, now, |e| match &mut e.value {
            Value::Stream(st) => Some(f(st)),
            _ => None,
        })
        .flatten()
    };
    if signal {
        run(s)
    } else {
        s.quietly(run)
    }
}

/// What a stream write did besides its reply: keyspace events and
/// propagated commands, applied in order by the caller (a command through
/// its `Ctx`, a served waiter through the server).
#[derive(Default)]
struct Effects {
    items: Vec<Effect>,
}

enum Effect {
    Notify(&'static str),
    Propagate(Vec<Vec<u8>>),
}

impl Effects {
    fn notify(&mut self, event: &'static str) {
        self.items.push(Effect::Notify(event));
    }

    fn propagate(&mut self, args: Vec<Vec<u8>>) {
        self.items.push(Effect::Propagate(args));
    }

    fn apply_ctx(self, ctx: &Ctx<'_>, key: &[u8]) {
        for e in self.items {
            match e {
                Effect::Notify(ev) => ctx.notify(STREAM, ev, key),
                Effect::Propagate(a) => {
                    let v: Vec<&[u8]> = a.iter().map(|x| &x[..]).collect();
                    ctx.propagate(&v);
                }
            }
        }
    }

    fn apply_srv(self, srv: &Shared, db: usize, key: &[u8]) {
        for e in self.items {
            match e {
                Effect::Notify(ev) => srv.pubsub.notify(STREAM, ev, key, db, None),
                Effect::Propagate(a) => {
                    let v: Vec<&[u8]> = a.iter().map(|x| &x[..]).collect();
                    srv.repl.feed(db, &v);
                }
            }
        }
    }
}

/// `streamPropagateXCLAIM`.
fn xclaim_effect(
    key: &[u8],
    group: &[u8],
    g: &ConsumerGroup,
    id_arg: &[u8],
    id: StreamId,
) -> Vec<Vec<u8>> {
    let (consumer, time, count) = match g.pel.get(&id) {
        Some(n) => (n.consumer.to_vec(), n.delivery_time, n.delivery_count),
        None => (Vec::new(), 0, 0),
    };
    vec![
        b"XCLAIM".to_vec(),
        key.to_vec(),
        group.to_vec(),
        consumer,
        b"0".to_vec(),
        id_arg.to_vec(),
        b"TIME".to_vec(),
        i64_bytes(time),
        b"RETRYCOUNT".to_vec(),
        itoa::Buffer::new().format(count).as_bytes().to_vec(),
        b"FORCE".to_vec(),
        b"JUSTID".to_vec(),
        b"LASTID".to_vec(),
        id_bytes(g.last_id),
    ]
}

/// `streamPropagateGroupID`.
fn setid_effect(key: &[u8], group: &[u8], g: &ConsumerGroup) -> Vec<Vec<u8>> {
    vec![
        b"XGROUP".to_vec(),
        b"SETID".to_vec(),
        key.to_vec(),
        group.to_vec(),
        id_bytes(g.last_id),
        b"ENTRIESREAD".to_vec(),
        i64_bytes(g.entries_read),
    ]
}

fn nogroup_key(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::Other(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

// ---------------------------------------------------------------------------
// XADD / XTRIM

#[derive(Default)]
struct TrimArgs {
    trim: Option<Trim>,
    approx: bool,
    limit: u64,
    /// Index of the MAXLEN/MINID value.
    arg_idx: usize,
    /// Index of the LIMIT keyword, when given.
    limit_idx: Option<usize>,
    nomkstream: bool,
    /// The explicit ID and whether its sequence was given.
    id: Option<(StreamId, bool)>,
    idpos: usize,
}

/// `streamParseAddOrTrimArgsOrReply`.
fn parse_trim_args(ctx: &Ctx<'_>, args: &[Bytes], xadd: bool) -> Result<TrimArgs, CmdError> {
    let mut t = TrimArgs::default();
    let mut i = 2;
    let mut limit_given = false;
    let mut limit: i64 = 0;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = &args[i][..];
        if xadd && opt == b"*" {
            break;
        } else if (is(opt, "maxlen") || is(opt, "minid")) && more > 0 {
            if t.trim.is_some() {
                return Err(CmdError::err(
                    "syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            t.approx = false;
            let next = &args[i + 1][..];
            if more >= 2 && next == b"~" {
                t.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            if is(opt, "maxlen") {
                let n = int_arg(&args[i + 1])?;
                if n < 0 {
                    return Err(CmdError::err("The MAXLEN argument must be >= 0."));
                }
                t.trim = Some(Trim::MaxLen(n as u64));
            } else {
                t.trim = Some(Trim::MinId(strict_id(&args[i + 1])?));
            }
            i += 1;
            t.arg_idx = i;
        } else if is(opt, "limit") && more > 0 {
            limit = int_arg(&args[i + 1])?;
            if limit < 0 {
                return Err(CmdError::err("The LIMIT argument must be >= 0."));
            }
            limit_given = true;
            t.limit_idx = Some(i);
            i += 1;
        } else if xadd && is(opt, "nomkstream") {
            t.nomkstream = true;
        } else if xadd {
            t.id = Some(parse_id_full(opt, 0, true, true)?);
            break;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    t.idpos = i;
    if limit != 0 && t.trim.is_none() {
        return Err(CmdError::err(
            "syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && t.trim.is_none() {
        return Err(CmdError::err(
            "syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit_given {
        if !t.approx {
            return Err(CmdError::err(
                "syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
        t.limit = limit as u64;
    } else if t.approx {
        let n = 100u64.saturating_mul(ctx.enc().stream_node_max_entries as u64);
        t.limit = if n == 0 { 10000 } else { n.min(1_000_000) };
    }
    Ok(t)
}

/// The propagated form of a trimming command: `~` becomes `=` with the
/// exact result (length or first ID), and LIMIT is dropped (a replica never
/// limits), so replicas end up with the same entries.
fn rewrite_trim(argv: &mut Vec<Vec<u8>>, t: &TrimArgs, st: &Stream) {
    if !t.approx {
        return;
    }
    argv[t.arg_idx - 1] = b"=".to_vec();
    argv[t.arg_idx] = match t.trim {
        Some(Trim::MaxLen(_)) => itoa::Buffer::new().format(st.len()).as_bytes().to_vec(),
        _ => id_bytes(st.first().map(|e| e.0).unwrap_or(StreamId::MAX)),
    };
    if let Some(li) = t.limit_idx {
        argv.drain(li..li + 2);
    }
}

/// What `XADD` did: the ID, entries trimmed, the command to propagate.
type Added = (StreamId, u64, Vec<Vec<u8>>);

/// `XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value [field value ...]`
fn xadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let t = parse_trim_args(ctx, args, true)?;
    let field_pos = t.idpos + 1;
    let nf = args.len().saturating_sub(field_pos);
    if field_pos > args.len() || nf < 2 || nf % 2 == 1 {
        return Err(ctx.arity_error());
    }
    if let Some((id, true)) = t.id {
        if id.is_zero() {
            return Err(CmdError::err(
                "The ID specified in XADD must be greater than 0-0",
            ));
        }
    }
    let key = &args[1][..];
    let (now, dbi) = (ctx.now, ctx.client.db);
    let lim = ctx.enc();
    let fields: Fields = args[field_pos..]
        .iter()
        .map(|a| Box::<[u8]>::from(&a[..]))
        .collect();
    let c = &*ctx;
    let res = c
        .db()
        .with_shard(key, |s| -> Result<Option<Added>, CmdError> {
            let exists = write_exists(s, key, now)?;
            if !exists && t.nomkstream {
                return Ok(None);
            }
            let run = |st: &mut Stream| -> Result<(StreamId, u64, Vec<Vec<u8>>), CmdError> {
                if st.last_id == StreamId::MAX {
                    return Err(CmdError::err(
                        "The stream has exhausted the last possible ID, unable to add more items",
                    ));
                }
                let id = match t.id {
                    None => st.next_auto_id(now.max(0) as u64),
                    Some((id, true)) => Some(id),
                    Some((id, false)) => st.next_seq_id(id.ms).ok(),
                };
                let too_small = || {
                    CmdError::err(
                    "The ID specified in XADD is equal or smaller than the target stream top item",
                )
                };
                let id = id.ok_or_else(too_small)?;
                st.append(id, fields, &lim).map_err(|e| match e {
                    AddError::TooSmall | AddError::Overflow => too_small(),
                })?;
                let trimmed = match t.trim {
                    Some(how) => st.trim(how, t.approx, t.limit),
                    None => 0,
                };
                let mut argv: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
                if t.trim.is_some() {
                    rewrite_trim(&mut argv, &t, st);
                }
                if !matches!(t.id, Some((_, true))) {
                    // The LIMIT pair may have been dropped before idpos.
                    let shift = if t.approx && t.limit_idx.is_some() {
                        2
                    } else {
                        0
                    };
                    argv[t.idpos - shift] = id_bytes(id);
                }
                Ok((id, trimmed, argv))
            };
            let r = if exists {
                let r = modify_stream(s, key, now, true, run).ok_or(CmdError::WrongType)??;
                c.srv.blocking.key_ready(dbi, key);
                r
            } else {
                let mut st = Stream::new();
                let r = run(&mut st)?;
                s.set(key, Value::Stream(Box::new(st)), NO_EXPIRE, now);
                r
            };
            c.notify(STREAM, "xadd", key);
            if r.1 > 0 {
                c.notify(STREAM, "xtrim", key);
            }
            let v: Vec<&[u8]> = r.2.iter().map(|x| &x[..]).collect();
            c.propagate(&v);
            Ok(Some(r))
        })?;
    match res {
        None => ctx.out.null(),
        Some((id, _, _)) => reply_id(ctx.out, id),
    }
    Ok(())
}

/// `XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]`
fn xtrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let t = parse_trim_args(ctx, args, false)?;
    let key = &args[1][..];
    let now = ctx.now;
    let c = &*ctx;
    let n = c.db().with_shard(key, |s| -> Result<u64, CmdError> {
        if !write_exists(s, key, now)? {
            return Ok(0);
        }
        let how = t.trim.ok_or(CmdError::Syntax)?;
        let r = s.quietly(|s| {
            modify_stream(s, key, now, false, |st| {
                let n = st.trim(how, t.approx, t.limit);
                let mut argv: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
                rewrite_trim(&mut argv, &t, st);
                (n, argv)
            })
        });
        let (n, argv) = r.ok_or(CmdError::WrongType)?;
        if n > 0 {
            s.signal_modified(key);
            c.notify(STREAM, "xtrim", key);
            let v: Vec<&[u8]> = argv.iter().map(|x| &x[..]).collect();
            c.propagate(&v);
        }
        Ok(n)
    })?;
    ctx.out.integer(n as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// XLEN / XRANGE / XREVRANGE / XDEL

fn xlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let c = &*ctx;
    let n = c.db().with_shard(key, |s| {
        c.read_lookup(s, key, stream_of)
            .map(|o| o.map_or(0, Stream::len))
    })?;
    ctx.out.integer(n as i64);
    Ok(())
}

fn xrange_generic(ctx: &mut Ctx<'_>, args: &[Bytes], rev: bool) -> CmdResult {
    let (sa, ea) = if rev {
        (&args[3], &args[2])
    } else {
        (&args[2], &args[3])
    };
    let start = interval_id(sa, 0, true)?;
    let end = interval_id(ea, u64::MAX, false)?;
    let mut count: i64 = -1;
    let mut j = 4;
    while j < args.len() {
        if is(&args[j], "count") && j + 1 < args.len() {
            count = int_arg(&args[j + 1])?.max(0);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let key = &args[1][..];
    let mut outb = ReplyBuf::new();
    outb.resp3 = ctx.out.resp3;
    let c = &*ctx;
    let out = &mut outb;
    let r = c.db().with_shard(key, |s| -> CmdResult {
        let Some(st) = c.read_lookup(s, key, stream_of)? else {
            out.array(0);
            return Ok(());
        };
        if count == 0 {
            out.null_array();
            return Ok(());
        }
        let limit = if count < 0 {
            usize::MAX
        } else {
            count as usize
        };
        let mut tmp = ReplyBuf::new();
        tmp.resp3 = out.resp3;
        let mut n = 0;
        let it = st.range(start, end);
        let mut emit = |id: StreamId, f: &Fields| {
            reply_entry(&mut tmp, id, f);
            n += 1;
        };
        if rev {
            for (id, f) in it.rev().take(limit) {
                emit(id, f);
            }
        } else {
            for (id, f) in it.take(limit) {
                emit(id, f);
            }
        }
        out.array(n);
        out.raw(&tmp.buf);
        Ok(())
    });
    if r.is_ok() {
        ctx.out.raw(&outb.buf);
    }
    r
}

fn xrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    xrange_generic(ctx, args, false)
}

fn xrevrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    xrange_generic(ctx, args, true)
}

fn xdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let now = ctx.now;
    let c = &*ctx;
    let n = c.db().with_shard(key, |s| -> Result<usize, CmdError> {
        if !write_exists(s, key, now)? {
            return Ok(0);
        }
        let ids = args[2..]
            .iter()
            .map(|a| strict_id(a))
            .collect::<Result<Vec<_>, _>>()?;
        let n = modify_stream(s, key, now, false, |st| st.delete(&ids)).unwrap_or(0);
        if n > 0 {
            s.signal_modified(key);
            c.notify(STREAM, "xdel", key);
            c.propagate_argv(args);
        }
        Ok(n)
    })?;
    ctx.out.integer(n as i64);
    Ok(())
}

// ---------------------------------------------------------------------------
// Group reads

/// Reads for a group (`streamReplyWithRange` with a group, or its history
/// variant): writes the entries into `out`, updates the group and PELs,
/// records effects.
#[allow(clippy::too_many_arguments)]
fn group_read(
    st: &mut Stream,
    key: &[u8],
    gname: &[u8],
    cname: &[u8],
    start: StreamId,
    count: usize,
    noack: bool,
    history: bool,
    now: i64,
    out: &mut ReplyBuf,
    fx: &mut Effects,
) {
    let limit = if count == 0 { usize::MAX } else { count };
    // Consumer lookup or creation (refreshes seen-time).
    {
        let Some(g) = st.groups.get_mut(gname) else {
            out.array(0);
            return;
        };
        let (c, created) = g.consumer_or_create(cname, now);
        c.seen_time = now;
        if created {
            fx.notify("xgroup-createconsumer");
            if noack {
                fx.propagate(vec![
                    b"XGROUP".to_vec(),
                    b"CREATECONSUMER".to_vec(),
                    key.to_vec(),
                    gname.to_vec(),
                    cname.to_vec(),
                ]);
            }
        }
    }
    if history {
        let ids: Vec<StreamId> = st.groups[gname].consumers[cname]
            .pel
            .range(start..)
            .take(limit)
            .copied()
            .collect();
        out.array(ids.len());
        for id in ids {
            match st.get(id) {
                None => {
                    out.array(2);
                    reply_id(out, id);
                    out.null_array();
                }
                Some(f) => {
                    reply_entry(out, id, f);
                    if let Some(n) = st.groups.get_mut(gname).and_then(|g| g.pel.get_mut(&id)) {
                        n.delivery_time = now;
                        n.delivery_count += 1;
                    }
                }
            }
        }
        return;
    }
    let entries: Vec<(StreamId, Fields)> = st
        .range(start, StreamId::MAX)
        .take(limit)
        .map(|(id, f)| (id, f.clone()))
        .collect();
    out.array(entries.len());
    let mut propagate_last = false;
    for (id, f) in &entries {
        let id = *id;
        let tomb = st.range_has_tombstones(Some(id));
        let est = st.estimate_distance(id);
        let added = st.entries_added;
        let Some(g) = st.groups.get_mut(gname) else {
            return;
        };
        if id > g.last_id {
            if g.entries_read != INVALID_ENTRIES_READ && !tomb {
                g.entries_read += 1;
            } else if added != 0 {
                g.entries_read = est;
            }
            g.last_id = id;
            if noack {
                propagate_last = true;
            }
        }
        reply_entry(out, id, f);
        if !noack {
            g.assign(id, cname, now, 1);
            fx.propagate(xclaim_effect(key, gname, g, &id_bytes(id), id));
        }
    }
    if propagate_last {
        if let Some(g) = st.groups.get(gname) {
            fx.propagate(setid_effect(key, gname, g));
        }
    }
}

/// The options of `XREAD`/`XREADGROUP`.
struct ReadArgs {
    block: Option<i64>,
    count: usize,
    group: Option<(Bytes, Bytes)>,
    noack: bool,
    streams_arg: usize,
    nstreams: usize,
}

/// `BLOCK` milliseconds into an absolute deadline (0 = forever).
fn block_deadline(ctx: &Ctx<'_>, arg: &[u8]) -> Result<i64, CmdError> {
    let ms = ferrite_protocol::parse_i64(arg)
        .ok_or_else(|| CmdError::err("timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CmdError::err("timeout is negative"));
    }
    if ms == 0 {
        return Ok(0);
    }
    ms.checked_add(ctx.now)
        .ok_or_else(|| CmdError::err("timeout is out of range"))
}

fn parse_read_args(ctx: &Ctx<'_>, args: &[Bytes], xreadgroup: bool) -> Result<ReadArgs, CmdError> {
    let mut r = ReadArgs {
        block: None,
        count: 0,
        group: None,
        noack: false,
        streams_arg: 0,
        nstreams: 0,
    };
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - i - 1;
        let o = &args[i][..];
        if is(o, "block") && more > 0 {
            if ctx.client.in_script {
                // No sense in BLOCK inside a script (Redis keeps this
                // error for backward compatibility).
                return Err(CmdError::err(format!(
                    "{} command is not allowed with BLOCK option from scripts",
                    String::from_utf8_lossy(&args[0])
                )));
            }
            i += 1;
            r.block = Some(block_deadline(ctx, &args[i])?);
        } else if is(o, "count") && more > 0 {
            i += 1;
            r.count = int_arg(&args[i])?.max(0) as usize;
        } else if is(o, "streams") && more > 0 {
            r.streams_arg = i + 1;
            let n = args.len() - r.streams_arg;
            if !n.is_multiple_of(2) {
                return Err(CmdError::err(
                    "Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            r.nstreams = n / 2;
            break;
        } else if is(o, "group") && more >= 2 {
            if !xreadgroup {
                return Err(CmdError::err(
                    "The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.group = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 2;
        } else if is(o, "noack") {
            if !xreadgroup {
                return Err(CmdError::err(
                    "The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.noack = true;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if r.streams_arg == 0 {
        return Err(CmdError::Syntax);
    }
    if xreadgroup && r.group.is_none() {
        return Err(CmdError::err("Missing GROUP option for XREADGROUP"));
    }
    Ok(r)
}

/// `XREAD [COUNT n] [BLOCK ms] STREAMS key ... id ...` and
/// `XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS key ... id ...`.
fn xread(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let xreadgroup = args[0].len() == 10;
    let r = parse_read_args(ctx, args, xreadgroup)?;
    let keys = &args[r.streams_arg..r.streams_arg + r.nstreams];
    let id_args = &args[r.streams_arg + r.nstreams..];
    let (now, dbi) = (ctx.now, ctx.client.db);
    let c = &*ctx;
    let resp3 = ctx.out.resp3;
    let result = c.db().with_shards(keys.iter().map(|k| &k[..]), |g| -> Result<ReadOutcome, CmdError> {
        // Resolve IDs (MAX = `>`).
        let mut ids = Vec::with_capacity(keys.len());
        for (key, ida) in keys.iter().zip(id_args) {
            let s = g.shard(key);
            let st = c.read_lookup(s, key, stream_of)?;
            if let Some((gname, _)) = &r.group {
                if st.is_none_or(|st| !st.groups.contains_key(&gname[..])) {
                    return Err(CmdError::Other(format!(
                        "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                        String::from_utf8_lossy(key),
                        String::from_utf8_lossy(gname)
                    )));
                }
            }
            if &ida[..] == b"$" {
                if xreadgroup {
                    return Err(CmdError::err("The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set."));
                }
                ids.push(st.map_or(StreamId::MIN, |st| st.last_id));
            } else if &ida[..] == b">" {
                if !xreadgroup {
                    return Err(CmdError::err("The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."));
                }
                ids.push(StreamId::MAX);
            } else {
                ids.push(strict_id(ida)?);
            }
        }
        let mut body = ReplyBuf::new();
        body.resp3 = resp3;
        let mut n = 0;
        for (i, key) in keys.iter().enumerate() {
            let s = g.shard(key);
            let gt = ids[i];
            // Redis looks each stream up a second time here (`lookupKeyRead`),
            // which counts in the keyspace hits and misses again.
            let Some(e) = s.get(key, now) else {
                c.srv.stats.miss();
                continue;
            };
            c.srv.stats.hit();
            let Value::Stream(st) = &e.value else { continue };
            let maxid = st.last().map(|e| e.0);
            let (sync, history) = match &r.group {
                Some((gname, _)) => {
                    if gt != StreamId::MAX {
                        (true, true)
                    } else {
                        let last = st.groups.get(&gname[..]).map(|g| g.last_id).unwrap_or_default();
                        (maxid.is_some_and(|m| m > last), false)
                    }
                }
                None => (maxid.is_some_and(|m| m > gt), false),
            };
            if !sync {
                continue;
            }
            n += 1;
            if !resp3 {
                body.array(2);
            }
            body.bulk(key);
            match &r.group {
                None => {
                    let start = gt.incr().unwrap_or(StreamId::MAX);
                    let limit = if r.count == 0 { usize::MAX } else { r.count };
                    let v: Vec<_> = st.range(start, StreamId::MAX).take(limit).collect();
                    body.array(v.len());
                    for (id, f) in v {
                        reply_entry(&mut body, id, f);
                    }
                }
                Some((gname, cname)) => {
                    let mut fx = Effects::default();
                    let start = if history {
                        // Redis starts after the given ID, history included.
                        gt.incr().unwrap_or(StreamId::MAX)
                    } else {
                        st.groups
                            .get(&gname[..])
                            .and_then(|g| g.last_id.incr())
                            .unwrap_or(StreamId::MAX)
                    };
                    modify_stream(s, key, now, false, |st| {
                        group_read(
                            st, key, gname, cname, start, r.count, r.noack, history, now, &mut body,
                            &mut fx,
                        )
                    });
                    fx.apply_ctx(c, key);
                }
            }
        }
        if n > 0 {
            let mut out = ReplyBuf::new();
            out.resp3 = resp3;
            if resp3 {
                out.map(n);
            } else {
                out.array(n);
            }
            out.raw(&body.buf);
            return Ok(ReadOutcome::Reply(out));
        }
        let Some(deadline) = r.block else {
            return Ok(ReadOutcome::Null);
        };
        if c.client.deny_blocking() {
            return Ok(ReadOutcome::Null);
        }
        // Block: one ID per distinct key, the first given (as Redis).
        let mut per_key: Vec<(Bytes, StreamId)> = Vec::new();
        for (k, id) in keys.iter().zip(&ids) {
            if !per_key.iter().any(|(x, _)| x == k) {
                per_key.push((k.clone(), *id));
            }
        }
        let op = BlockOp::Stream(Box::new(StreamRead {
            ids: per_key,
            count: if r.count == 0 { 1000 } else { r.count },
            group: r.group.clone(),
            noack: r.noack,
        }));
        let blocked = c.srv.blocking.block(c.client.id(), dbi, resp3, keys.to_vec(), op, deadline);
        Ok(ReadOutcome::Block(blocked))
    })?;
    match result {
        ReadOutcome::Reply(out) => ctx.out.raw(&out.buf),
        ReadOutcome::Null => ctx.out.null_array(),
        ReadOutcome::Block(b) => ctx.client.blocked = Some(b),
    }
    Ok(())
}

/// What a read found: a reply, nothing, or a registered wait.
enum ReadOutcome {
    Reply(ReplyBuf),
    Null,
    Block(crate::blocking::Blocked),
}

/// Serves one blocked `XREAD`/`XREADGROUP` from `key` (see
/// `list::serve_ready`), as Redis's `serveClientsBlockedOnStreamKey`.
pub(crate) fn serve_stream_waiter(
    srv: &Shared,
    w: &std::sync::Arc<Waiter>,
    key: &Bytes,
    now: i64,
) -> Served {
    let BlockOp::Stream(sr) = &w.op else {
        return Served::NoData;
    };
    let Some(gt) = sr.ids.iter().find(|(k, _)| k == key).map(|e| e.1) else {
        return Served::NoData;
    };
    let db = srv.store.db(w.db);
    db.with_shard(key, |s| {
        let mut out = ReplyBuf::new();
        out.resp3 = w.resp3;
        let st = match s.peek(key, now) {
            Some(e) => match &e.value {
                Value::Stream(st) => Some(st),
                _ => None,
            },
            None => None,
        };
        let Some(st) = st else {
            // The key was deleted or overwritten: a group reader is told
            // so (`unblockDeletedStreamReadgroupClients`); XREAD keeps
            // waiting.
            if sr.group.is_none() {
                return Served::NoData;
            }
            let Some(tx) = srv.blocking.claim(w) else {
                return Served::Next;
            };
            send_error(srv, tx, out, b"UNBLOCKED the stream key no longer exists");
            return Served::Next;
        };
        let gt = match &sr.group {
            Some((gname, _)) => match st.groups.get(&gname[..]) {
                None => {
                    let Some(tx) = srv.blocking.claim(w) else {
                        return Served::Next;
                    };
                    send_error(
                        srv,
                        tx,
                        out,
                        b"NOGROUP the consumer group this client was blocked on no longer exists",
                    );
                    return Served::Next;
                }
                Some(g) => g.last_id,
            },
            None => gt,
        };
        if st.last_id <= gt {
            return Served::NoData;
        }
        let Some(tx) = srv.blocking.claim(w) else {
            return Served::Next;
        };
        let start = gt.incr().unwrap_or(StreamId::MAX);
        if w.resp3 {
            out.map(1);
        } else {
            out.array(1);
            out.array(2);
        }
        out.bulk(key);
        match &sr.group {
            None => {
                let v: Vec<_> = st.range(start, StreamId::MAX).take(sr.count).collect();
                out.array(v.len());
                for (id, f) in v {
                    reply_entry(&mut out, id, f);
                }
            }
            Some((gname, cname)) => {
                let mut fx = Effects::default();
                modify_stream(s, key, now, false, |st| {
                    group_read(
                        st, key, gname, cname, start, sr.count, sr.noack, false, now, &mut out,
                        &mut fx,
                    )
                });
                fx.apply_srv(srv, w.db, key);
            }
        }
        let _ = tx.send(out.buf);
        Served::Next
    })
}

/// Fails a served `XREADGROUP` waiter, counted as the failed call it is
/// (`errorstats`, `total_error_replies`, the command's `failed_calls`).
fn send_error(
    srv: &Shared,
    tx: tokio::sync::oneshot::Sender<bytes::BytesMut>,
    mut out: ReplyBuf,
    msg: &[u8],
) {
    out.error(msg);
    srv.stats.count_error(msg);
    if let Some(cmd) = crate::command::TABLE.lookup(b"xreadgroup") {
        cmd.stats
            .failed_calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let _ = tx.send(out.buf);
}

// ---------------------------------------------------------------------------
// XACK / XPENDING / XCLAIM / XAUTOCLAIM

/// `XACK key group id [id ...]`
fn xack(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (key, gname) = (&args[1][..], &args[2][..]);
    let now = ctx.now;
    let c = &*ctx;
    let n = c.db().with_shard(key, |s| -> Result<usize, CmdError> {
        let has = match c.read_lookup(s, key, stream_of)? {
            None => false,
            Some(st) => st.groups.contains_key(gname),
        };
        if !has {
            return Ok(0);
        }
        let ids = args[3..]
            .iter()
            .map(|a| strict_id(a))
            .collect::<Result<Vec<_>, _>>()?;
        let n = modify_stream(s, key, now, false, |st| {
            let g = st.groups.get_mut(gname)?;
            Some(ids.iter().filter(|id| g.ack(**id)).count())
        })
        .flatten()
        .unwrap_or(0);
        if n > 0 {
            c.propagate_argv(args);
        }
        Ok(n)
    })?;
    ctx.out.integer(n as i64);
    Ok(())
}

/// `XPENDING key group [[IDLE min-idle-time] start end count [consumer]]`
fn xpending(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let justinfo = args.len() == 3;
    if args.len() != 3 && (args.len() < 6 || args.len() > 9) {
        return Err(CmdError::Syntax);
    }
    let (mut start, mut end, mut count, mut minidle) = (StreamId::MIN, StreamId::MAX, 0i64, 0i64);
    let mut consumer: Option<&[u8]> = None;
    if args.len() >= 6 {
        let mut si = 3;
        if is(&args[3], "idle") {
            minidle = int_arg(&args[4])?;
            if args.len() < 8 {
                return Err(CmdError::Syntax);
            }
            si += 2;
        }
        count = int_arg(&args[si + 2])?.max(0);
        start = interval_id(&args[si], 0, true)?;
        end = interval_id(&args[si + 1], u64::MAX, false)?;
        if si + 3 < args.len() {
            consumer = Some(&args[si + 3]);
        }
    }
    let (key, gname) = (&args[1][..], &args[2][..]);
    let now = ctx.now;
    let mut outb = ReplyBuf::new();
    outb.resp3 = ctx.out.resp3;
    let c = &*ctx;
    let out = &mut outb;
    let r = c.db().with_shard(key, |s| -> CmdResult {
        let st = c.read_lookup(s, key, stream_of)?;
        let Some(g) = st.and_then(|st| st.groups.get(gname)) else {
            return Err(nogroup_key(key, gname));
        };
        if justinfo {
            out.array(4);
            out.integer(g.pel.len() as i64);
            match (g.pel.first_key_value(), g.pel.last_key_value()) {
                (Some((a, _)), Some((b, _))) => {
                    reply_id(out, *a);
                    reply_id(out, *b);
                    let cs: Vec<_> = g
                        .consumers
                        .iter()
                        .filter(|(_, c)| !c.pel.is_empty())
                        .collect();
                    out.array(cs.len());
                    for (name, cons) in cs {
                        out.array(2);
                        out.bulk(name);
                        out.bulk_int(cons.pel.len() as i64);
                    }
                }
                _ => {
                    out.null();
                    out.null();
                    out.null_array();
                }
            }
            return Ok(());
        }
        let ids: Vec<StreamId> = match consumer {
            Some(cn) => match g.consumers.get(cn) {
                None => {
                    out.array(0);
                    return Ok(());
                }
                Some(cons) => cons
                    .pel
                    .range(start..)
                    .take_while(|id| **id <= end)
                    .copied()
                    .collect(),
            },
            None => g
                .pel
                .range(start..)
                .take_while(|(id, _)| **id <= end)
                .map(|e| *e.0)
                .collect(),
        };
        let mut tmp = ReplyBuf::new();
        tmp.resp3 = out.resp3;
        let mut n = 0;
        for id in ids {
            if n >= count {
                break;
            }
            let Some(nack) = g.pel.get(&id) else { continue };
            if minidle != 0 && now - nack.delivery_time < minidle {
                continue;
            }
            n += 1;
            tmp.array(4);
            reply_id(&mut tmp, id);
            tmp.bulk(&nack.consumer);
            tmp.integer((now - nack.delivery_time).max(0));
            tmp.integer(nack.delivery_count as i64);
        }
        out.array(n as usize);
        out.raw(&tmp.buf);
        Ok(())
    });
    if r.is_ok() {
        ctx.out.raw(&outb.buf);
    }
    r
}

/// `XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME
/// unix-ms] [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID lastid]`
fn xclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (key, gname, cname) = (&args[1][..], &args[2][..], &args[3][..]);
    let now = ctx.now;
    let mut outb = ReplyBuf::new();
    outb.resp3 = ctx.out.resp3;
    let c = &*ctx;
    let out = &mut outb;
    let r = c.db().with_shard(key, |s| -> CmdResult {
        let st = c.read_lookup(s, key, stream_of)?;
        if !st.is_some_and(|st| st.groups.contains_key(gname)) {
            return Err(nogroup_key(key, gname));
        }
        let minidle = ferrite_protocol::parse_i64(&args[4])
            .ok_or_else(|| CmdError::err("Invalid min-idle-time argument for XCLAIM"))?
            .max(0);
        let mut ids = Vec::new();
        let mut j = 5;
        while j < args.len() {
            match strict_id(&args[j]) {
                Ok(id) => ids.push((id, j)),
                Err(_) => break,
            }
            j += 1;
        }
        let (mut force, mut justid) = (false, false);
        let mut retrycount: i64 = -1;
        let mut deliverytime: i64 = -1;
        let mut last_id = StreamId::MIN;
        while j < args.len() {
            let more = args.len() - 1 - j;
            let opt = &args[j][..];
            let num = |a: &[u8], what: &str| {
                ferrite_protocol::parse_i64(a).ok_or_else(|| {
                    CmdError::err(format!("Invalid {what} option argument for XCLAIM"))
                })
            };
            if is(opt, "force") {
                force = true;
            } else if is(opt, "justid") {
                justid = true;
            } else if is(opt, "idle") && more > 0 {
                j += 1;
                deliverytime = now - num(&args[j], "IDLE")?;
            } else if is(opt, "time") && more > 0 {
                j += 1;
                deliverytime = num(&args[j], "TIME")?;
            } else if is(opt, "retrycount") && more > 0 {
                j += 1;
                retrycount = num(&args[j], "RETRYCOUNT")?;
            } else if is(opt, "lastid") && more > 0 {
                j += 1;
                last_id = strict_id(&args[j])?;
            } else {
                return Err(CmdError::err(format!(
                    "Unrecognized XCLAIM option '{}'",
                    String::from_utf8_lossy(opt)
                )));
            }
            j += 1;
        }
        if deliverytime != -1 {
            if deliverytime < 0 || deliverytime > now {
                deliverytime = now;
            }
        } else {
            deliverytime = now;
        }
        let mut fx = Effects::default();
        let mut body = ReplyBuf::new();
        body.resp3 = out.resp3;
        let n = modify_stream(s, key, now, false, |st| {
            let mut n = 0usize;
            let mut propagate_last = false;
            {
                let Some(g) = st.groups.get_mut(gname) else {
                    return 0;
                };
                if last_id > g.last_id {
                    g.last_id = last_id;
                    propagate_last = true;
                }
            }
            let mut consumer_ready = false;
            for &(id, j) in &ids {
                let exists = st.get(id).is_some();
                let Some(g) = st.groups.get_mut(gname) else {
                    break;
                };
                let pending = g.pel.contains_key(&id);
                if !exists {
                    if pending {
                        fx.propagate(xclaim_effect(key, gname, g, &args[j], id));
                        propagate_last = false;
                        g.ack(id);
                    }
                    continue;
                }
                let mut fresh = false;
                if force && !pending {
                    // A NACK with no owner yet (`streamCreateNACK(NULL)`).
                    g.pel.insert(
                        id,
                        ferrite_storage::stream::Nack {
                            consumer: Box::from(&b""[..]),
                            delivery_time: now,
                            delivery_count: 1,
                        },
                    );
                    fresh = true;
                } else if !pending {
                    continue;
                }
                if !fresh && minidle != 0 {
                    if let Some(nk) = g.pel.get(&id) {
                        if now - nk.delivery_time < minidle {
                            continue;
                        }
                    }
                }
                if !consumer_ready {
                    let (cons, created) = g.consumer_or_create(cname, now);
                    cons.seen_time = now;
                    if created {
                        fx.notify("xgroup-createconsumer");
                    }
                    consumer_ready = true;
                }
                let prev = g.pel.get(&id).map(|nk| nk.delivery_count).unwrap_or(1);
                let count = if retrycount >= 0 {
                    retrycount as u64
                } else if !justid {
                    prev + 1
                } else {
                    prev
                };
                g.assign(id, cname, deliverytime, count);
                if justid {
                    reply_id(&mut body, id);
                } else if let Some(f) = st.get(id) {
                    reply_entry(&mut body, id, f);
                }
                n += 1;
                if let Some(g) = st.groups.get(gname) {
                    fx.propagate(xclaim_effect(key, gname, g, &args[j], id));
                }
                propagate_last = false;
            }
            if propagate_last {
                if let Some(g) = st.groups.get(gname) {
                    fx.propagate(setid_effect(key, gname, g));
                }
            }
            n
        })
        .unwrap_or(0);
        fx.apply_ctx(c, key);
        out.array(n);
        out.raw(&body.buf);
        Ok(())
    });
    if r.is_ok() {
        ctx.out.raw(&outb.buf);
    }
    r
}

/// `XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]`
fn xautoclaim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (key, gname, cname) = (&args[1][..], &args[2][..], &args[3][..]);
    let minidle = ferrite_protocol::parse_i64(&args[4])
        .ok_or_else(|| CmdError::err("Invalid min-idle-time argument for XAUTOCLAIM"))?
        .max(0);
    let start = interval_id(&args[5], 0, true)?;
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if is(&args[j], "count") && more > 0 {
            count = range_arg(&args[j + 1], 1, i64::MAX / 16, "COUNT must be > 0")?;
            j += 1;
        } else if is(&args[j], "justid") {
            justid = true;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let now = ctx.now;
    let mut outb = ReplyBuf::new();
    outb.resp3 = ctx.out.resp3;
    let c = &*ctx;
    let out = &mut outb;
    let r = c.db().with_shard(key, |s| -> CmdResult {
        let st = c.read_lookup(s, key, stream_of)?;
        if !st.is_some_and(|st| st.groups.contains_key(gname)) {
            return Err(nogroup_key(key, gname));
        }
        let mut fx = Effects::default();
        let mut body = ReplyBuf::new();
        body.resp3 = out.resp3;
        let (n, next, deleted) = modify_stream(s, key, now, false, |st| {
            let mut count = count as u64;
            let mut attempts = count.saturating_mul(10);
            let mut n = 0usize;
            let mut deleted = Vec::new();
            let mut consumer_ready = false;
            let mut cursor = start;
            let mut next = StreamId::MIN;
            while let Some(g) = st.groups.get(gname) {
                let Some((&id, _)) = g.pel.range(cursor..).next() else {
                    break;
                };
                if attempts == 0 || count == 0 {
                    next = id;
                    break;
                }
                attempts -= 1;
                cursor = match id.incr() {
                    Some(x) => x,
                    None => {
                        // Last possible ID: nothing can follow it.
                        StreamId::MAX
                    }
                };
                let exists = st.get(id).is_some();
                let Some(g) = st.groups.get_mut(gname) else {
                    break;
                };
                if !exists {
                    fx.propagate(xclaim_effect(key, gname, g, &id_bytes(id), id));
                    g.ack(id);
                    deleted.push(id);
                    count -= 1;
                    if id == StreamId::MAX {
                        break;
                    }
                    continue;
                }
                if minidle != 0 {
                    if let Some(nk) = g.pel.get(&id) {
                        if now - nk.delivery_time < minidle {
                            if id == StreamId::MAX {
                                break;
                            }
                            continue;
                        }
                    }
                }
                if !consumer_ready {
                    let (cons, created) = g.consumer_or_create(cname, now);
                    cons.seen_time = now;
                    if created {
                        fx.notify("xgroup-createconsumer");
                    }
                    consumer_ready = true;
                }
                let prev = g.pel.get(&id).map(|nk| nk.delivery_count).unwrap_or(0);
                g.assign(id, cname, now, if justid { prev } else { prev + 1 });
                fx.propagate(xclaim_effect(key, gname, g, &id_bytes(id), id));
                if justid {
                    reply_id(&mut body, id);
                } else if let Some(f) = st.get(id) {
                    reply_entry(&mut body, id, f);
                }
                n += 1;
                count -= 1;
                if id == StreamId::MAX {
                    break;
                }
            }
            (n, next, deleted)
        })
        .unwrap_or((0, StreamId::MIN, Vec::new()));
        fx.apply_ctx(c, key);
        out.array(3);
        reply_id(out, next);
        out.array(n);
        out.raw(&body.buf);
        out.array(deleted.len());
        for id in deleted {
            reply_id(out, id);
        }
        Ok(())
    });
    if r.is_ok() {
        ctx.out.raw(&outb.buf);
    }
    r
}

// ---------------------------------------------------------------------------
// XSETID / XGROUP / XINFO

/// `XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]`
fn xsetid(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let id = strict_id(&args[2])?;
    let mut entries_added: i64 = -1;
    let mut max_xdel = StreamId::MIN;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if is(&args[i], "entriesadded") && more > 0 {
            entries_added = int_arg(&args[i + 1])?;
            if entries_added < 0 {
                return Err(CmdError::err("entries_added must be positive"));
            }
            i += 2;
        } else if is(&args[i], "maxdeletedid") && more > 0 {
            max_xdel = strict_id(&args[i + 1])?;
            if id < max_xdel {
                return Err(CmdError::err(
                    "The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let key = &args[1][..];
    let now = ctx.now;
    let c = &*ctx;
    c.db().with_shard(key, |s| -> CmdResult {
        if !write_exists(s, key, now)? {
            return Err(CmdError::NoSuchKey);
        }
        modify_stream(s, key, now, false, |st| -> CmdResult {
            if let Some((maxid, _)) = st.last() {
                if id < maxid {
                    return Err(CmdError::err(
                        "The ID specified in XSETID is smaller than the target stream top item",
                    ));
                }
                if entries_added != -1 && st.len() as i64 > entries_added {
                    return Err(CmdError::err(
                        "The entries_added specified in XSETID is smaller than the target stream length",
                    ));
                }
            }
            st.last_id = id;
            if entries_added != -1 {
                st.entries_added = entries_added as u64;
            }
            if !max_xdel.is_zero() {
                st.max_deleted_entry_id = max_xdel;
            }
            Ok(())
        })
        .unwrap_or(Err(CmdError::WrongType))?;
        c.notify(STREAM, "xsetid", key);
        c.propagate_argv(args);
        Ok(())
    })?;
    ctx.out.ok();
    Ok(())
}

fn nogroup_for_key(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::Other(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(group),
        String::from_utf8_lossy(key)
    ))
}

/// `XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER ...`
fn xgroup(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let (key, gname) = (&args[2][..], &args[3][..]);
    let mut mkstream = false;
    let mut entries_read = INVALID_ENTRIES_READ;
    let mut i = 5;
    while i < args.len() {
        if sub == "create" && is(&args[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if (sub == "create" || sub == "setid")
            && is(&args[i], "entriesread")
            && i + 1 < args.len()
        {
            entries_read = int_arg(&args[i + 1])?;
            if entries_read < 0 && entries_read != INVALID_ENTRIES_READ {
                return Err(CmdError::err(
                    "value for ENTRIESREAD must be positive or -1",
                ));
            }
            i += 2;
        } else {
            return Err(CmdError::subcommand_syntax(args));
        }
    }
    let now = ctx.now;
    let mut outb = ReplyBuf::new();
    outb.resp3 = ctx.out.resp3;
    let c = &*ctx;
    let out = &mut outb;
    let r = c.db().with_shard(key, |s| -> CmdResult {
        let exists = write_exists(s, key, now)?;
        let has_group = match s.peek(key, now) {
            Some(e) => matches!(&e.value, Value::Stream(st) if st.groups.contains_key(gname)),
            None => false,
        };
        if !mkstream {
            if !exists {
                return Err(CmdError::err("The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."));
            }
            if !has_group && matches!(sub.as_str(), "setid" | "createconsumer" | "delconsumer") {
                return Err(nogroup_for_key(key, gname));
            }
        }
        match sub.as_str() {
            "create" if args.len() >= 5 && args.len() <= 8 => {
                let dollar = &args[4][..] == b"$";
                let id = if dollar {
                    None
                } else {
                    Some(strict_id(&args[4])?)
                };
                if !exists {
                    s.set(key, Value::Stream(Box::new(Stream::new())), NO_EXPIRE, now);
                }
                let created = modify_stream(s, key, now, false, |st| {
                    let id = id.unwrap_or(st.last_id);
                    if st.groups.contains_key(gname) {
                        return None;
                    }
                    st.groups.insert(gname.into(), ConsumerGroup::new(id, entries_read));
                    Some(id)
                })
                .flatten();
                let Some(id) = created else {
                    return Err(CmdError::Other("BUSYGROUP Consumer Group name already exists".into()));
                };
                out.ok();
                c.notify(STREAM, "xgroup-create", key);
                let mut argv: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
                if dollar {
                    argv[4] = id_bytes(id);
                }
                let v: Vec<&[u8]> = argv.iter().map(|x| &x[..]).collect();
                c.propagate(&v);
                Ok(())
            }
            "setid" if args.len() == 5 || args.len() == 7 => {
                let dollar = &args[4][..] == b"$";
                let id = if dollar {
                    None
                } else {
                    Some(parse_id_full(&args[4], 0, false, false)?.0)
                };
                let id = modify_stream(s, key, now, false, |st| {
                    let id = id.unwrap_or(st.last_id);
                    if let Some(g) = st.groups.get_mut(gname) {
                        g.last_id = id;
                        g.entries_read = entries_read;
                    }
                    id
                })
                .unwrap_or_default();
                out.ok();
                c.notify(STREAM, "xgroup-setid", key);
                let mut argv: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
                if dollar {
                    argv[4] = id_bytes(id);
                }
                let v: Vec<&[u8]> = argv.iter().map(|x| &x[..]).collect();
                c.propagate(&v);
                Ok(())
            }
            "destroy" if args.len() == 4 => {
                if has_group {
                    modify_stream(s, key, now, false, |st| st.groups.remove(gname));
                    out.integer(1);
                    c.notify(STREAM, "xgroup-destroy", key);
                    c.propagate_argv(args);
                    c.srv.blocking.key_ready(c.client.db, key);
                } else {
                    out.integer(0);
                }
                Ok(())
            }
            "createconsumer" if args.len() == 5 => {
                let created = modify_stream(s, key, now, false, |st| {
                    st.groups
                        .get_mut(gname)
                        .map(|g| g.consumer_or_create(&args[4], now).1)
                })
                .flatten()
                .unwrap_or(false);
                if created {
                    c.notify(STREAM, "xgroup-createconsumer", key);
                    c.propagate_argv(args);
                }
                out.integer(i64::from(created));
                Ok(())
            }
            "delconsumer" if args.len() == 5 => {
                let pending = modify_stream(s, key, now, false, |st| {
                    st.groups.get_mut(gname).and_then(|g| g.delete_consumer(&args[4]))
                })
                .flatten();
                if pending.is_some() {
                    c.notify(STREAM, "xgroup-delconsumer", key);
                    c.propagate_argv(args);
                }
                out.integer(pending.unwrap_or(0) as i64);
                Ok(())
            }
            _ => Err(CmdError::subcommand_syntax(args)),
        }
    });
    if r.is_ok() {
        ctx.out.raw(&outb.buf);
    }
    r
}

fn xgroup_help(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    crate::commands::connection::write_help(
        ctx,
        "XGROUP",
        &[
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
        ],
    );
    Ok(())
}

fn xinfo_help(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> CmdResult {
    crate::commands::connection::write_help(
        ctx,
        "XINFO",
        &[
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
        ],
    );
    Ok(())
}

fn reply_opt_i64(out: &mut ReplyBuf, v: Option<i64>) {
    match v {
        Some(n) => out.integer(n),
        None => out.null(),
    }
}

/// `XINFO STREAM|GROUPS|CONSUMERS key ...`
fn xinfo(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let key = &args[2][..];
    let now = ctx.now;
    let mut outb = ReplyBuf::new();
    outb.resp3 = ctx.out.resp3;
    let c = &*ctx;
    let out = &mut outb;
    let r = c.db().with_shard(key, |s| -> CmdResult {
        let Some(st) = c.read_lookup(s, key, stream_of)? else {
            return Err(CmdError::NoSuchKey);
        };
        match sub.as_str() {
            "consumers" if args.len() == 4 => {
                let Some(g) = st.groups.get(&args[3][..]) else {
                    return Err(nogroup_for_key(key, &args[3]));
                };
                out.array(g.consumers.len());
                for (name, cons) in &g.consumers {
                    out.map(3);
                    out.bulk(b"name");
                    out.bulk(name);
                    out.bulk(b"pending");
                    out.integer(cons.pel.len() as i64);
                    out.bulk(b"idle");
                    out.integer((now - cons.seen_time).max(0));
                }
                Ok(())
            }
            "groups" if args.len() == 3 => {
                out.array(st.groups.len());
                for (name, g) in &st.groups {
                    out.map(6);
                    out.bulk(b"name");
                    out.bulk(name);
                    out.bulk(b"consumers");
                    out.integer(g.consumers.len() as i64);
                    out.bulk(b"pending");
                    out.integer(g.pel.len() as i64);
                    out.bulk(b"last-delivered-id");
                    reply_id(out, g.last_id);
                    out.bulk(b"entries-read");
                    reply_opt_i64(
                        out,
                        (g.entries_read != INVALID_ENTRIES_READ).then_some(g.entries_read),
                    );
                    out.bulk(b"lag");
                    reply_opt_i64(out, st.group_lag(g));
                }
                Ok(())
            }
            "stream" => xinfo_stream(out, st, args),
            _ => Err(CmdError::subcommand_syntax(args)),
        }
    });
    if r.is_ok() {
        ctx.out.raw(&outb.buf);
    }
    r
}

fn xinfo_stream(out: &mut ReplyBuf, st: &Stream, args: &[Bytes]) -> CmdResult {
    let opts = &args[3..];
    let mut full = true;
    let mut count: i64 = 10;
    if opts.is_empty() {
        full = false;
    } else {
        if opts.len() != 1 && opts.len() != 3 {
            return Err(CmdError::subcommand_syntax(args));
        }
        if !is(&opts[0], "full") {
            return Err(CmdError::subcommand_syntax(args));
        }
        if opts.len() == 3 {
            if !is(&opts[1], "count") {
                return Err(CmdError::subcommand_syntax(args));
            }
            count = int_arg(&opts[2])?;
            if count < 0 {
                count = 10;
            }
        }
    }
    let limit = if count == 0 {
        usize::MAX
    } else {
        count as usize
    };
    out.map(if full { 9 } else { 10 });
    out.bulk(b"length");
    out.integer(st.len() as i64);
    out.bulk(b"radix-tree-keys");
    out.integer(st.node_count() as i64);
    out.bulk(b"radix-tree-nodes");
    out.integer(radix_nodes_estimate(st.node_count()) as i64);
    out.bulk(b"last-generated-id");
    reply_id(out, st.last_id);
    out.bulk(b"max-deleted-entry-id");
    reply_id(out, st.max_deleted_entry_id);
    out.bulk(b"entries-added");
    out.integer(st.entries_added as i64);
    out.bulk(b"recorded-first-entry-id");
    reply_id(out, st.first_id);
    if !full {
        out.bulk(b"groups");
        out.integer(st.groups.len() as i64);
        out.bulk(b"first-entry");
        match st.first() {
            Some((id, f)) => reply_entry(out, id, f),
            None => out.null(),
        }
        out.bulk(b"last-entry");
        match st.last() {
            Some((id, f)) => reply_entry(out, id, f),
            None => out.null(),
        }
        return Ok(());
    }
    out.bulk(b"entries");
    let v: Vec<_> = st.range(StreamId::MIN, StreamId::MAX).take(limit).collect();
    out.array(v.len());
    for (id, f) in v {
        reply_entry(out, id, f);
    }
    out.bulk(b"groups");
    out.array(st.groups.len());
    for (name, g) in &st.groups {
        out.map(7);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"last-delivered-id");
        reply_id(out, g.last_id);
        out.bulk(b"entries-read");
        reply_opt_i64(
            out,
            (g.entries_read != INVALID_ENTRIES_READ).then_some(g.entries_read),
        );
        out.bulk(b"lag");
        reply_opt_i64(out, st.group_lag(g));
        out.bulk(b"pel-count");
        out.integer(g.pel.len() as i64);
        out.bulk(b"pending");
        let pel: Vec<_> = g.pel.iter().take(limit).collect();
        out.array(pel.len());
        for (id, n) in pel {
            out.array(4);
            reply_id(out, *id);
            out.bulk(&n.consumer);
            out.integer(n.delivery_time);
            out.integer(n.delivery_count as i64);
        }
        out.bulk(b"consumers");
        out.array(g.consumers.len());
        for (cname, cons) in &g.consumers {
            out.map(4);
            out.bulk(b"name");
            out.bulk(cname);
            out.bulk(b"seen-time");
            out.integer(cons.seen_time);
            out.bulk(b"pel-count");
            out.integer(cons.pel.len() as i64);
            out.bulk(b"pending");
            let ids: Vec<_> = cons.pel.iter().take(limit).collect();
            out.array(ids.len());
            for id in ids {
                let (t, n) = g
                    .pel
                    .get(id)
                    .map_or((0, 0), |n| (n.delivery_time, n.delivery_count));
                out.array(3);
                reply_id(out, *id);
                out.integer(t);
                out.integer(n as i64);
            }
        }
    }
    Ok(())
}

/// Redis's rax over 16-byte big-endian IDs: an empty tree is one node and
/// each key adds about one (its compressed path); an estimate, since the
/// real count depends on the keys' shared prefixes.
fn radix_nodes_estimate(keys: usize) -> usize {
    if keys == 0 {
        1
    } else {
        1 + keys
    }
}
