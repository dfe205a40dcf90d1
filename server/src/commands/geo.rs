//! Geospatial commands: `GEOADD GEODIST GEOHASH GEOPOS GEORADIUS
//! GEORADIUSBYMEMBER GEORADIUS_RO GEORADIUSBYMEMBER_RO GEOSEARCH
//! GEOSEARCHSTORE`, over sorted sets whose scores are 52-bit geohashes
//! ([`ferrite_storage::geohash`]), as Redis 7.0's `geo.c`.
//!
//! `GEOADD` is `ZADD` with computed scores: it runs (and propagates, and
//! notifies) as that `ZADD`, as Redis rewrites it. A search scans the score
//! ranges of the cells around its centre and keeps the members inside the
//! shape; replies, the order errors are found in, and the number formats
//! (distances to 4 decimals, coordinates as `%.17Lf` trimmed) are Redis's.

use bytes::Bytes;
use ferrite_protocol::ReplyBuf;
use ferrite_storage::geohash::{self, Shape, ShapeKind};
use ferrite_storage::{ScoreRange, Shard, Value, ZSet, NO_EXPIRE};

use super::zset::zset_of;
use crate::command::ctx::{float_arg, int_arg, is};
use crate::command::{CmdError, CmdResult, Ctx, Handler};
use crate::pubsub::notify::{GENERIC as GENERIC_EV, ZSET as ZSET_EV};

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("geoadd", geoadd),
    ("geodist", geodist),
    ("geohash", geohash_cmd),
    ("geopos", geopos),
    ("georadius", georadius),
    ("georadiusbymember", georadiusbymember),
    ("georadius_ro", georadius_ro),
    ("georadiusbymember_ro", georadiusbymember_ro),
    ("geosearch", geosearch),
    ("geosearchstore", geosearchstore),
];

/// A float argument with Redis's `getDoubleFromObjectOrReply` message.
fn float_or(arg: &[u8], msg: Option<&str>) -> Result<f64, CmdError> {
    float_arg(arg).map_err(|e| msg.map_or(e, CmdError::err))
}

/// `extractLongLatOrReply`: a longitude and a latitude within the limits.
fn lon_lat(args: &[Bytes]) -> Result<(f64, f64), CmdError> {
    let lon = float_arg(&args[0])?;
    let lat = float_arg(&args[1])?;
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&lon)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&lat)
    {
        return Err(CmdError::err(format!(
            "invalid longitude,latitude pair {lon:.6},{lat:.6}"
        )));
    }
    Ok((lon, lat))
}

/// `extractUnitOrReply`: metres per unit.
fn unit(arg: &[u8]) -> Result<f64, CmdError> {
    match arg.to_ascii_lowercase().as_slice() {
        b"m" => Ok(1.0),
        b"km" => Ok(1000.0),
        b"ft" => Ok(0.3048),
        b"mi" => Ok(1609.34),
        _ => Err(CmdError::err(
            "unsupported unit provided. please use M, KM, FT, MI",
        )),
    }
}

/// `extractDistanceOrReply`: (radius, metres per unit).
fn radius(args: &[Bytes]) -> Result<(f64, f64), CmdError> {
    let r = float_or(&args[0], Some("need numeric radius"))?;
    if r < 0.0 {
        return Err(CmdError::err("radius cannot be negative"));
    }
    Ok((r, unit(&args[1])?))
}

/// `extractBoxOrReply`: (width, height, metres per unit).
fn bbox(args: &[Bytes]) -> Result<(f64, f64, f64), CmdError> {
    let w = float_or(&args[0], Some("need numeric width"))?;
    let h = float_or(&args[1], Some("need numeric height"))?;
    if h < 0.0 || w < 0.0 {
        return Err(CmdError::err("height or width cannot be negative"));
    }
    Ok((w, h, unit(&args[2])?))
}

/// A distance as `addReplyDoubleDistance` writes it: rounded half to even
/// at 4 decimals (`fixedpoint_d2string`), always a bulk string.
fn distance_text(d: f64) -> String {
    let v = (d * 10000.0).round_ties_even();
    let neg = v < 0.0;
    let a = v.abs() as u64;
    format!(
        "{}{}.{:04}",
        if neg { "-" } else { "" },
        a / 10000,
        a % 10000
    )
}

/// A coordinate as `addReplyHumanLongDouble` writes it: `%.17Lf` with
/// trailing zeros (and a trailing dot) removed; a bulk string in RESP2, a
/// double in RESP3.
fn human_double(out: &mut ReplyBuf, d: f64) {
    let mut s = format!("{d:.17}");
    if s.contains('.') {
        let t = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(t);
    }
    if s == "-0" {
        s = "0".into();
    }
    if out.resp3 {
        out.raw(b",");
        out.raw(s.as_bytes());
        out.raw(b"\r\n");
    } else {
        out.bulk(s.as_bytes());
    }
}

/// `GEOADD key [NX|XX] [CH] longitude latitude member [...]`: runs as the
/// `ZADD` Redis rewrites it to.
fn geoadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (mut xx, mut nx) = (false, false);
    let mut longidx = 2;
    while longidx < args.len() {
        let o = &args[longidx][..];
        if is(o, "nx") {
            nx = true;
        } else if is(o, "xx") {
            xx = true;
        } else if !is(o, "ch") {
            break;
        }
        longidx += 1;
    }
    if !(args.len() - longidx).is_multiple_of(3) || (xx && nx) {
        return Err(CmdError::Syntax);
    }
    let mut zargv: Vec<Bytes> = Vec::with_capacity(longidx + (args.len() - longidx) / 3 * 2);
    zargv.push(Bytes::from_static(b"zadd"));
    zargv.extend_from_slice(&args[1..longidx]);
    for triple in args[longidx..].chunks(3) {
        let (lon, lat) = lon_lat(triple)?;
        let score = geohash::score_of(lon, lat).unwrap_or(0);
        zargv.push(Bytes::from(score.to_string()));
        zargv.push(triple[2].clone());
    }
    super::zset::zadd_generic(ctx, &zargv, false)
}

/// `GEODIST key member1 member2 [unit]`.
fn geodist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let to_meter = match args.len() {
        5 => unit(&args[4])?,
        n if n > 5 => return Err(CmdError::Syntax),
        _ => 1.0,
    };
    let key = &args[1][..];
    let c = &*ctx;
    let d = c.db().with_shard(key, |s| {
        let Some(z) = c.read_lookup(s, key, zset_of)? else {
            return Ok(None);
        };
        let (Some(a), Some(b)) = (z.score(&args[2]), z.score(&args[3])) else {
            return Ok(None);
        };
        let (Some((x1, y1)), Some((x2, y2))) = (geohash::decode_score(a), geohash::decode_score(b))
        else {
            return Ok(None);
        };
        Ok::<_, CmdError>(Some(geohash::distance(x1, y1, x2, y2) / to_meter))
    })?;
    match d {
        Some(d) => ctx.out.bulk(distance_text(d).as_bytes()),
        None => ctx.out.null(),
    }
    Ok(())
}

/// The score of each member `args[2..]` of the sorted set at `args[1]`
/// (`None` for a missing member or key): what `GEOHASH` and `GEOPOS` read.
fn member_scores(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<Vec<Option<f64>>, CmdError> {
    let key = &args[1][..];
    ctx.db().with_shard(key, |s| {
        let z = ctx.read_lookup(s, key, zset_of)?;
        Ok(args[2..]
            .iter()
            .map(|m| z.and_then(|z| z.score(m)))
            .collect())
    })
}

/// `GEOHASH key [member ...]`: 11-character standard geohashes.
fn geohash_cmd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let scores = member_scores(ctx, args)?;
    ctx.out.array(scores.len());
    for s in scores {
        match s.and_then(geohash::geohash_string) {
            Some(h) => ctx.out.bulk(&h),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

/// `GEOPOS key [member ...]`: each position, or a null array.
fn geopos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let scores = member_scores(ctx, args)?;
    ctx.out.array(scores.len());
    for s in scores {
        match s.and_then(geohash::decode_score) {
            Some((lon, lat)) => {
                ctx.out.array(2);
                human_double(ctx.out, lon);
                human_double(ctx.out, lat);
            }
            None => ctx.out.null_array(),
        }
    }
    Ok(())
}

/// Which search command (`georadiusGeneric`'s flags).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `GEORADIUS[_RO] key lon lat radius unit`.
    Coords { ro: bool },
    /// `GEORADIUSBYMEMBER[_RO] key member radius unit`.
    Member { ro: bool },
    /// `GEOSEARCH key ...` or `GEOSEARCHSTORE dst key ...`.
    Search { store: bool },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// A parsed search.
struct Query {
    shape: Shape,
    store: Option<usize>,
    storedist: bool,
    withdist: bool,
    withhash: bool,
    withcoords: bool,
    sort: Sort,
    any: bool,
    count: i64,
}

/// A member found inside the shape.
struct Point {
    lon: f64,
    lat: f64,
    dist: f64,
    score: f64,
    member: Vec<u8>,
}

/// Parses a search's arguments in Redis's order (its errors first come
/// first). `z` is the source set: `None` when the key is missing, and in
/// the dry run that only finds the store key before any lock is taken
/// (`dry`: member lookups always succeed).
fn parse(args: &[Bytes], kind: Kind, z: Option<&ZSet>, dry: bool) -> Result<Query, CmdError> {
    let mut q = Query {
        shape: Shape {
            xy: (0.0, 0.0),
            conversion: 1.0,
            kind: ShapeKind::Radius(0.0),
        },
        store: None,
        storedist: false,
        withdist: false,
        withhash: false,
        withcoords: false,
        sort: Sort::None,
        any: false,
        count: 0,
    };
    let member_pos = |m: &[u8]| -> Result<(f64, f64), CmdError> {
        if dry {
            return Ok((0.0, 0.0));
        }
        z.and_then(|z| z.score(m))
            .and_then(geohash::decode_score)
            .ok_or_else(|| CmdError::err("could not decode requested zset member"))
    };
    let (base, nostore, search) = match kind {
        Kind::Coords { ro } => {
            q.shape.xy = lon_lat(&args[2..4])?;
            let (r, conv) = radius(&args[4..6])?;
            q.shape.kind = ShapeKind::Radius(r);
            q.shape.conversion = conv;
            (6, ro, false)
        }
        Kind::Member { ro } => {
            if z.is_some() || dry {
                q.shape.xy = member_pos(&args[2])?;
                let (r, conv) = radius(&args[3..5])?;
                q.shape.kind = ShapeKind::Radius(r);
                q.shape.conversion = conv;
            }
            (5, ro, false)
        }
        Kind::Search { store } => {
            if store {
                q.store = Some(1);
            }
            (if store { 3 } else { 2 }, false, true)
        }
    };
    let store_cmd = kind == Kind::Search { store: true };
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let rest = &args[base.min(args.len())..];
    let mut i = 0;
    while i < rest.len() {
        let remaining = rest.len();
        let a = &rest[i][..];
        if is(a, "withdist") {
            q.withdist = true;
        } else if is(a, "withhash") {
            q.withhash = true;
        } else if is(a, "withcoord") {
            q.withcoords = true;
        } else if is(a, "any") {
            q.any = true;
        } else if is(a, "asc") {
            q.sort = Sort::Asc;
        } else if is(a, "desc") {
            q.sort = Sort::Desc;
        } else if is(a, "count") && i + 1 < remaining {
            q.count = int_arg(&rest[i + 1])?;
            if q.count <= 0 {
                return Err(CmdError::err("COUNT must be > 0"));
            }
            i += 1;
        } else if (is(a, "store") || is(a, "storedist")) && i + 1 < remaining && !nostore && !search
        {
            q.store = Some(base + i + 1);
            q.storedist = is(a, "storedist");
            i += 1;
        } else if is(a, "storedist") && search && store_cmd {
            q.storedist = true;
        } else if is(a, "frommember") && i + 1 < remaining && search && !fromloc {
            if z.is_some() || dry {
                q.shape.xy = member_pos(&rest[i + 1])?;
            }
            frommember = true;
            i += 1;
        } else if is(a, "fromlonlat") && i + 2 < remaining && search && !frommember {
            q.shape.xy = lon_lat(&rest[i + 1..i + 3])?;
            fromloc = true;
            i += 2;
        } else if is(a, "byradius") && i + 2 < remaining && search && !bybox {
            let (r, conv) = radius(&rest[i + 1..i + 3])?;
            q.shape.kind = ShapeKind::Radius(r);
            q.shape.conversion = conv;
            byradius = true;
            i += 2;
        } else if is(a, "bybox") && i + 3 < remaining && search && !byradius {
            let (w, h, conv) = bbox(&rest[i + 1..i + 4])?;
            q.shape.kind = ShapeKind::Box(w, h);
            q.shape.conversion = conv;
            bybox = true;
            i += 3;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if q.store.is_some() && (q.withdist || q.withhash || q.withcoords) {
        return Err(CmdError::err(format!(
            "{} is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
            if store_cmd {
                "GEOSEARCHSTORE"
            } else {
                "STORE option in GEORADIUS"
            }
        )));
    }
    let name = String::from_utf8_lossy(&args[0]).into_owned();
    if search && !(frommember || fromloc) {
        return Err(CmdError::err(format!(
            "exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if search && !(byradius || bybox) {
        return Err(CmdError::err(format!(
            "exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if q.any && q.count == 0 {
        return Err(CmdError::err("the ANY argument requires COUNT argument"));
    }
    Ok(q)
}

/// The members inside the shape, in the order the cells are scanned
/// (`membersOfAllNeighbors`), stopping at `limit` (0: none) for `ANY`.
fn points_in(z: &ZSet, shape: &Shape, limit: usize) -> Vec<Point> {
    let cells = shape.cells();
    let mut found = Vec::new();
    let mut last: Option<usize> = None;
    for (i, cell) in cells.iter().enumerate() {
        if cell.is_zero() {
            continue;
        }
        // Huge radii can make neighbours coincide: skip a repeat.
        if last.is_some_and(|l| cells[l] == *cell) {
            continue;
        }
        if limit > 0 && found.len() >= limit {
            break;
        }
        let (min, max) = cell.score_range();
        let range = ScoreRange {
            min: min as f64,
            max: max as f64,
            min_ex: false,
            max_ex: true,
        };
        let (lo, hi) = z.score_ranks(&range);
        for (m, score) in z.range(lo, hi) {
            if let Some((lon, lat)) = geohash::decode_score(score) {
                if let Some(dist) = shape.distance_if_within(lon, lat) {
                    found.push(Point {
                        lon,
                        lat,
                        dist,
                        score,
                        member: m.to_vec(),
                    });
                }
            }
            if limit > 0 && found.len() >= limit {
                break;
            }
        }
        last = Some(i);
    }
    found
}

/// `georadiusGeneric`: every search command. `src` is the source key's
/// argument index.
fn search(ctx: &mut Ctx<'_>, args: &[Bytes], src: usize, kind: Kind) -> CmdResult {
    let key = &args[src][..];
    // Which key a STORE writes is only known from the options: a dry parse
    // finds it so both keys' shards are held for the real one.
    let dst = parse(args, kind, None, true)
        .ok()
        .and_then(|q| q.store)
        .map(|i| &args[i][..]);
    let limits = ctx.enc();
    let c = &*ctx;
    let db = c.db();
    let keys: Vec<&[u8]> = std::iter::once(key).chain(dst).collect();
    enum Outcome {
        Points(Query, Vec<Point>),
        Stored(usize),
    }
    let outcome = db.with_shards(keys.iter().copied(), |g| {
        let (q, pts) = {
            let z = c.read_lookup(g.shard(key), key, zset_of)?;
            let q = parse(args, kind, z, false)?;
            let pts = z.map(|z| {
                let mut sort = q.sort;
                if q.count != 0 && sort == Sort::None && !q.any {
                    sort = Sort::Asc;
                }
                let limit = if q.any { q.count as usize } else { 0 };
                let mut pts = points_in(z, &q.shape, limit);
                match sort {
                    Sort::Asc => pts.sort_by(|a, b| a.dist.total_cmp(&b.dist)),
                    Sort::Desc => pts.sort_by(|a, b| b.dist.total_cmp(&a.dist)),
                    Sort::None => {}
                }
                if q.count > 0 {
                    pts.truncate(q.count as usize);
                }
                pts
            });
            (q, pts)
        };
        let Some(mut pts) = pts else {
            if let Some(i) = q.store {
                let dst = &args[i][..];
                delete_store(c, g.shard(dst), dst);
                return Ok(Outcome::Stored(0));
            }
            return Ok(Outcome::Points(q, Vec::new()));
        };
        for p in &mut pts {
            p.dist /= q.shape.conversion;
        }
        match q.store {
            None => Ok(Outcome::Points(q, pts)),
            Some(i) => {
                let dst = &args[i][..];
                let s = g.shard(dst);
                if pts.is_empty() {
                    delete_store(c, s, dst);
                    return Ok(Outcome::Stored(0));
                }
                let mut items: Vec<(Vec<u8>, f64)> = pts
                    .into_iter()
                    .map(|p| (p.member, if q.storedist { p.dist } else { p.score }))
                    .collect();
                items.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
                let n = items.len();
                let stored = ZSet::from_sorted(items.iter().map(|(m, s)| (&m[..], *s)), &limits);
                s.set(dst, Value::ZSet(stored), NO_EXPIRE, c.now);
                c.propagate_argv(args);
                let event = if matches!(kind, Kind::Search { .. }) {
                    "geosearchstore"
                } else {
                    "georadiusstore"
                };
                c.notify(ZSET_EV, event, dst);
                Ok(Outcome::Stored(n))
            }
        }
    })?;
    match outcome {
        Outcome::Stored(n) => ctx.out.integer(n as i64),
        Outcome::Points(q, pts) => {
            let options =
                usize::from(q.withdist) + usize::from(q.withhash) + usize::from(q.withcoords);
            ctx.out.array(pts.len());
            for p in pts {
                if options > 0 {
                    ctx.out.array(options + 1);
                }
                ctx.out.bulk(&p.member);
                if q.withdist {
                    ctx.out.bulk(distance_text(p.dist).as_bytes());
                }
                if q.withhash {
                    ctx.out.integer(p.score as i64);
                }
                if q.withcoords {
                    ctx.out.array(2);
                    human_double(ctx.out, p.lon);
                    human_double(ctx.out, p.lat);
                }
            }
        }
    }
    Ok(())
}

/// A store with nothing to store deletes the destination (and says so).
fn delete_store(c: &Ctx<'_>, s: &mut Shard, dst: &[u8]) {
    if s.delete(dst, c.now) {
        c.propagate(&[b"DEL", dst]);
        c.notify(GENERIC_EV, "del", dst);
    }
}

fn georadius(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    search(ctx, args, 1, Kind::Coords { ro: false })
}

fn georadius_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    search(ctx, args, 1, Kind::Coords { ro: true })
}

fn georadiusbymember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    search(ctx, args, 1, Kind::Member { ro: false })
}

fn georadiusbymember_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    search(ctx, args, 1, Kind::Member { ro: true })
}

fn geosearch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    search(ctx, args, 1, Kind::Search { store: false })
}

fn geosearchstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    search(ctx, args, 2, Kind::Search { store: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_round_as_fixedpoint_d2string() {
        assert_eq!(distance_text(166274.15156960033), "166274.1516");
        assert_eq!(distance_text(0.0), "0.0000");
        assert_eq!(distance_text(0.775), "0.7750");
        assert_eq!(distance_text(-1.5), "-1.5000");
        assert_eq!(distance_text(0.00001), "0.0000");
    }
}
