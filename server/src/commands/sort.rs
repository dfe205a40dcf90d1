//! `SORT` and `SORT_RO`, following Redis 7.0's `sort.c`: the option
//! grammar, the `LIMIT` clamping, `BY`/`GET` pattern substitution (`*`,
//! `#`, `->field`), numeric scores parsed with `strtod`'s rules, the
//! comparison (score, then the element's bytes as tie-break), `BY nosort`
//! keeping a list's or sorted set's native order, and `STORE` into a list.
//!
//! Locking: `BY`/`GET` patterns name keys derived from the elements, so
//! they cannot be known before the sort key is read. A sort that needs
//! pattern lookups locks every shard of the database (in ascending order,
//! like any multi-key command), which keeps it atomic exactly as Redis's
//! single thread does; a sort without lookups locks only its key and its
//! `STORE` destination.

use std::cmp::Ordering;

use bytes::Bytes;
use ferrite_storage::{Db, Hash, List, Shard, ShardGroup, ShardRef, Value, NO_EXPIRE};

use crate::command::ctx::{int_arg, is};
use crate::command::{CmdError, CmdResult, Ctx, Handler};

/// Handlers of this family.
pub const HANDLERS: &[(&str, Handler)] = &[("sort", sort), ("sort_ro", sort_ro)];

fn sort(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sort_generic(ctx, args, false)
}

fn sort_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    sort_generic(ctx, args, true)
}

/// Key positions of a `SORT` call, as Redis's `sortGetKeys`: the sorted
/// key, then the last `STORE` destination, with their key-spec flags. The
/// command's key specs mark `STORE` as "unknown" (it can appear anywhere),
/// so `COMMAND GETKEYS` and anything else that needs SORT's keys must ask
/// here. `argv[0]` is the command name. Options are skipped with their
/// arguments (`LIMIT` 2, `GET`/`BY` 1) exactly as Redis does, so a
/// pattern spelled `store` is not mistaken for the option.
pub fn sort_key_positions(argv: &[Bytes]) -> Vec<(usize, &'static [&'static str])> {
    const READ: &[&str] = &["RO", "access"];
    const WRITE: &[&str] = &["OW", "update"];
    let mut keys: Vec<(usize, &'static [&'static str])> = Vec::with_capacity(2);
    if argv.len() < 2 {
        return keys;
    }
    keys.push((1, READ));
    let mut store = None;
    let mut i = 2;
    while i < argv.len() {
        let a = &argv[i][..];
        if is(a, "limit") {
            i += 2;
        } else if is(a, "get") || is(a, "by") {
            i += 1;
        } else if is(a, "store") && i + 1 < argv.len() {
            // Skipped, as the parser does: Redis's `sortGetKeys` scans the
            // key as an option, so `STORE by STORE victim` would be
            // checked against `by` while the sort writes `victim`.
            store = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    keys.extend(store.map(|p| (p, WRITE)));
    keys
}

/// The parsed options of one `SORT`.
struct SortOpts<'a> {
    desc: bool,
    alpha: bool,
    limit_start: i64,
    limit_count: i64,
    store: Option<&'a [u8]>,
    by: Option<&'a [u8]>,
    /// `BY` without `*`: nothing to sort by (`BY nosort`).
    dontsort: bool,
    gets: Vec<&'a [u8]>,
}

/// The bytes of `s` up to its first NUL: Redis treats patterns as C strings
/// when it searches them (`strchr`, `strstr`).
fn c_str(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(i) => &s[..i],
        None => s,
    }
}

/// Whether the pattern is `#` (the element itself), as C sees it.
fn is_hash_pattern(p: &[u8]) -> bool {
    c_str(p) == b"#"
}

/// Parses the options as `sortCommandGeneric` does. `readonly` (`SORT_RO`)
/// does not know `STORE`, which is then a syntax error. Without
/// `full_access` (an ACL user that may not read every key) `GET` and a
/// pattern `BY` are refused, as they read keys no argument names.
fn parse_opts(args: &[Bytes], readonly: bool, full_access: bool) -> Result<SortOpts<'_>, CmdError> {
    let mut o = SortOpts {
        desc: false,
        alpha: false,
        limit_start: 0,
        limit_count: -1,
        store: None,
        by: None,
        dontsort: false,
        gets: Vec::new(),
    };
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j][..];
        if is(a, "asc") {
            o.desc = false;
        } else if is(a, "desc") {
            o.desc = true;
        } else if is(a, "alpha") {
            o.alpha = true;
        } else if is(a, "limit") && left >= 2 {
            o.limit_start = int_arg(&args[j + 1])?;
            o.limit_count = int_arg(&args[j + 2])?;
            j += 2;
        } else if !readonly && is(a, "store") && left >= 1 {
            o.store = Some(&args[j + 1]);
            j += 1;
        } else if is(a, "by") && left >= 1 {
            let p = &args[j + 1][..];
            o.by = Some(p);
            // A constant BY means there is nothing to sort by.
            o.dontsort = !c_str(p).contains(&b'*');
            if !o.dontsort && !full_access {
                return Err(CmdError::err(
                    "BY option of SORT denied due to insufficient ACL permissions.",
                ));
            }
            j += 1;
        } else if is(a, "get") && left >= 1 {
            if !full_access {
                return Err(CmdError::err(
                    "GET option of SORT denied due to insufficient ACL permissions.",
                ));
            }
            o.gets.push(&args[j + 1]);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

/// Whether running the sort reads keys named by patterns.
fn needs_lookups(o: &SortOpts<'_>) -> bool {
    let by = o.by.is_some() && !o.dontsort;
    let get = o
        .gets
        .iter()
        .any(|p| !is_hash_pattern(p) && c_str(p).contains(&b'*'));
    by || get
}

/// The shards a sort holds: the ones of its keys, or all of them.
trait Locked {
    /// The locked shard owning `key`.
    fn shard(&mut self, key: &[u8]) -> &mut Shard;
}

impl Locked for ShardGroup<'_> {
    fn shard(&mut self, key: &[u8]) -> &mut Shard {
        ShardGroup::shard(self, key)
    }
}

/// Every shard of a database, locked in ascending order.
struct AllShards<'a> {
    db: &'a Db,
    guards: Vec<ShardRef<'a>>,
}

impl Locked for AllShards<'_> {
    fn shard(&mut self, key: &[u8]) -> &mut Shard {
        let i = self.db.shard_of(key);
        &mut self.guards[i]
    }
}

fn sort_generic(ctx: &mut Ctx<'_>, args: &[Bytes], readonly: bool) -> CmdResult {
    let full_access = match ctx.client.user.as_ref().filter(|u| !u.open()) {
        Some(u) => crate::acl::can_read_all_keys(&u.rules(), ctx.cmd, args),
        None => true,
    };
    let opts = parse_opts(args, readonly, full_access)?;
    let db = ctx.db();
    let key = &args[1][..];
    if needs_lookups(&opts) {
        let mut all = AllShards {
            db,
            guards: db.lock_all(),
        };
        sort_locked(ctx, args, opts, &mut all)
    } else {
        let keys = std::iter::once(key).chain(opts.store);
        db.with_shards(keys, |g| sort_locked(ctx, args, opts, g))
    }
}

/// One element being sorted: the element, and what it sorts by.
struct Item {
    obj: Vec<u8>,
    score: f64,
    /// The `BY` value under `ALPHA` (`None`: the key or field is missing).
    cmp: Option<Vec<u8>>,
}

impl Item {
    fn new(obj: &[u8]) -> Item {
        Item {
            obj: obj.to_vec(),
            score: 0.0,
            cmp: None,
        }
    }
}

/// The type of the value being sorted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    List,
    Set,
    ZSet,
}

/// Elements `[from, from + n)` of an ordered collection of `len`, in
/// ascending or (`desc`) descending order: `BY nosort` with a `LIMIT`.
fn native_range<'v>(
    iter: impl Iterator<Item = &'v [u8]>,
    len: usize,
    from: usize,
    n: usize,
    desc: bool,
) -> Vec<Item> {
    if desc {
        // Descending positions from..from+n are ascending positions
        // len-from-n .. len-from, reversed.
        let skip = len.saturating_sub(from + n);
        let mut v: Vec<Item> = iter.skip(skip).take(n).map(Item::new).collect();
        v.reverse();
        v
    } else {
        iter.skip(from).take(n).map(Item::new).collect()
    }
}

fn sort_locked(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    mut o: SortOpts<'_>,
    l: &mut dyn Locked,
) -> CmdResult {
    let now = ctx.now;
    let key = &args[1][..];

    // The value to sort: a missing key is an empty list.
    let (kind, len) = match l.shard(key).get(key, now) {
        None => {
            ctx.srv.stats.miss();
            (Kind::List, 0)
        }
        Some(e) => {
            ctx.srv.stats.hit();
            match &e.value {
                Value::List(v) => (Kind::List, v.len()),
                Value::Set(v) => (Kind::Set, v.len()),
                Value::ZSet(v) => (Kind::ZSet, v.len()),
                _ => return Err(CmdError::WrongType),
            }
        }
    };

    // A set has no native order: with STORE the stored list must not
    // depend on it (replicas, AOF), so sort it alphabetically.
    if o.dontsort && kind == Kind::Set && (o.store.is_some() || ctx.client.in_script) {
        o.dontsort = false;
        o.alpha = true;
        o.by = None;
    }

    // LIMIT clamping, exactly as Redis (including its empty-range encoding
    // start = len-1, end = len-2).
    let vlen = len as i64;
    let mut start = o.limit_start.max(0).min(vlen);
    let count = o.limit_count.max(-1).min(vlen);
    let mut end = if count < 0 {
        vlen - 1
    } else {
        start + count - 1
    };
    if start >= vlen {
        start = vlen - 1;
        end = vlen - 2;
    }
    if end >= vlen {
        end = vlen - 1;
    }

    // Load the elements. Lists and sorted sets under BY nosort load just the
    // requested range in native (or reversed) order.
    let native = o.dontsort && kind != Kind::Set;
    let mut items: Vec<Item> = Vec::new();
    if let Some(e) = l.shard(key).peek(key, now) {
        if native {
            if end >= start {
                let (from, n) = (start as usize, (end - start + 1) as usize);
                items = match &e.value {
                    Value::List(v) => native_range(v.iter(), len, from, n, o.desc),
                    Value::ZSet(z) => native_range(z.iter().map(|(m, _)| m), len, from, n, o.desc),
                    _ => Vec::new(),
                };
                end -= start;
                start = 0;
            }
        } else {
            items = match &e.value {
                Value::List(v) => v.iter().map(Item::new).collect(),
                Value::Set(s) => s.iter().map(|m| m.with_bytes(Item::new)).collect(),
                Value::ZSet(z) => z.iter().map(|(m, _)| Item::new(m)).collect(),
                _ => Vec::new(),
            };
        }
    }

    // Scores (or ALPHA compare values), then the sort.
    let mut bad_score = false;
    if !o.dontsort {
        for it in items.iter_mut() {
            let byval = match o.by {
                Some(p) => match lookup_by_pattern(ctx, l, p, &it.obj) {
                    Some(v) => v,
                    None => continue,
                },
                None => it.obj.clone(),
            };
            if o.alpha {
                if o.by.is_some() {
                    it.cmp = Some(byval);
                }
            } else {
                match strtod(&byval) {
                    Some(s) => it.score = s,
                    None => bad_score = true,
                }
            }
        }
        let (alpha, by, store, desc) = (o.alpha, o.by.is_some(), o.store.is_some(), o.desc);
        items.sort_by(|a, b| {
            let c = compare(a, b, alpha, by, store);
            if desc {
                c.reverse()
            } else {
                c
            }
        });
    }

    if bad_score {
        return Err(CmdError::err(
            "One or more scores can't be converted into double",
        ));
    }

    // Output: the elements, or for each one the values of its GET patterns.
    let range: &[Item] = if end >= start && start >= 0 {
        let (s, e) = (start as usize, (end as usize + 1).min(items.len()));
        items.get(s..e).unwrap_or(&[])
    } else {
        &[]
    };
    match o.store {
        None => {
            let per = o.gets.len().max(1);
            ctx.out.array(range.len() * per);
            for it in range {
                if o.gets.is_empty() {
                    ctx.out.bulk(&it.obj);
                }
                for p in &o.gets {
                    match lookup_by_pattern(ctx, l, p, &it.obj) {
                        Some(v) => ctx.out.bulk(&v),
                        None => ctx.out.null(),
                    }
                }
            }
        }
        Some(dst) => {
            let mut list = List::new();
            for it in range {
                if o.gets.is_empty() {
                    list.push_back(&it.obj);
                }
                for p in &o.gets {
                    let v = lookup_by_pattern(ctx, l, p, &it.obj).unwrap_or_default();
                    list.push_back(&v);
                }
            }
            let n = list.len();
            let s = l.shard(dst);
            let dirty = if n > 0 {
                s.set(dst, Value::List(list), NO_EXPIRE, now);
                true
            } else {
                s.delete(dst, now)
            };
            if dirty {
                ctx.propagate_argv(args);
                if n > 0 {
                    ctx.notify(crate::pubsub::notify::LIST, "sortstore", dst);
                } else {
                    ctx.notify(crate::pubsub::notify::GENERIC, "del", dst);
                }
            }
            ctx.out.integer(n as i64);
        }
    }
    Ok(())
}

/// Redis's `sortCompare` before `DESC` is applied.
fn compare(a: &Item, b: &Item, alpha: bool, by: bool, store: bool) -> Ordering {
    if !alpha {
        if a.score > b.score {
            Ordering::Greater
        } else if a.score < b.score {
            Ordering::Less
        } else {
            // Equal scores: the elements' bytes decide, so the result is
            // deterministic.
            a.obj.cmp(&b.obj)
        }
    } else if by {
        match (&a.cmp, &b.cmp) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => string_cmp(x, y, store),
        }
    } else {
        string_cmp(&a.obj, &b.obj, store)
    }
}

/// With `STORE` Redis compares binary-safely (`compareStringObjects`);
/// otherwise with `strcoll`, which stops at a NUL byte (the C locale's
/// collation is byte order).
fn string_cmp(a: &[u8], b: &[u8], store: bool) -> Ordering {
    if store {
        a.cmp(b)
    } else {
        c_str(a).cmp(c_str(b))
    }
}

/// Redis's `lookupKeyByPattern`: `#` is the element itself; otherwise the
/// first `*` is replaced by the element and the key is read, as a string,
/// or with `key->field` as a hash field. A pattern without `*`, a missing
/// key or a key of another type gives `None`.
fn lookup_by_pattern(
    ctx: &Ctx<'_>,
    l: &mut dyn Locked,
    pattern: &[u8],
    subst: &[u8],
) -> Option<Vec<u8>> {
    if is_hash_pattern(pattern) {
        return Some(subst.to_vec());
    }
    let cpat = c_str(pattern);
    let star = cpat.iter().position(|&b| b == b'*')?;
    // `->` after the `*`, followed by at least one byte, makes a field.
    let arrow = cpat[star + 1..]
        .windows(2)
        .position(|w| w == b"->")
        .map(|i| star + 1 + i)
        .filter(|&f| f + 2 < cpat.len());
    let (key_end, field) = match arrow {
        Some(f) => (f, Some(&pattern[f + 2..])),
        None => (pattern.len(), None),
    };
    let mut key = Vec::with_capacity(key_end + subst.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(subst);
    key.extend_from_slice(&pattern[star + 1..key_end]);

    let e = match l.shard(&key).get(&key, ctx.now) {
        None => {
            ctx.srv.stats.miss();
            return None;
        }
        Some(e) => {
            ctx.srv.stats.hit();
            e
        }
    };
    match (field, &e.value) {
        (Some(f), Value::Hash(h)) => hash_field(h, f).map(<[u8]>::to_vec),
        (None, Value::Str { bytes, .. }) => Some(bytes.to_vec()),
        _ => None,
    }
}

/// The value of a hash field.
fn hash_field<'h>(h: &'h Hash, field: &[u8]) -> Option<&'h [u8]> {
    h.get(field)
}

/// Parses a sort weight as Redis does: `strtod` over the C string, failing
/// on trailing bytes, on NaN, and on overflow or underflow (`ERANGE`).
/// Leading whitespace, a sign, `inf`/`infinity`, hex floats and the empty
/// string (0) are accepted, as `strtod` accepts them.
fn strtod(s: &[u8]) -> Option<f64> {
    let s = c_str(s);
    if s.is_empty() {
        return Some(0.0);
    }
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let rest = &s[i..];
    let lower: Vec<u8> = rest.iter().map(u8::to_ascii_lowercase).collect();
    let (magnitude, used) = if lower.starts_with(b"infinity") {
        (f64::INFINITY, 8)
    } else if lower.starts_with(b"inf") {
        (f64::INFINITY, 3)
    } else if lower.starts_with(b"nan") {
        // strtod parses NaN (and "nan(chars)"); Redis then refuses it.
        return None;
    } else if lower.starts_with(b"0x")
        && lower
            .get(2)
            .is_some_and(|c| c.is_ascii_hexdigit() || *c == b'.')
    {
        parse_hex(&lower[2..]).map(|(v, n)| (v, n + 2))?
    } else {
        parse_decimal(rest)?
    };
    if i + used != s.len() {
        return None;
    }
    Some(if neg { -magnitude } else { magnitude })
}

/// A decimal float prefix: digits, optional fraction, optional exponent.
/// Returns the value and the bytes used; `None` when out of range (ERANGE)
/// or when there are no digits at all.
fn parse_decimal(s: &[u8]) -> Option<(f64, usize)> {
    let mut i = 0;
    let mut digits = 0;
    let mut nonzero = false;
    while i < s.len() && s[i].is_ascii_digit() {
        nonzero |= s[i] != b'0';
        i += 1;
        digits += 1;
    }
    if i < s.len() && s[i] == b'.' {
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            nonzero |= s[i] != b'0';
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    let mant_end = i;
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        let mut j = i + 1;
        if j < s.len() && (s[j] == b'+' || s[j] == b'-') {
            j += 1;
        }
        if j < s.len() && s[j].is_ascii_digit() {
            while j < s.len() && s[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    let text = std::str::from_utf8(&s[..i]).ok()?;
    // Rust's grammar wants a digit before the exponent's `e` in "5.e3";
    // add a zero so the same prefix parses.
    let v: f64 = match text.parse() {
        Ok(v) => v,
        Err(_) => {
            let (m, e) = text.split_at(mant_end);
            format!("{m}0{e}").parse().ok()?
        }
    };
    if v.is_infinite() || (nonzero && (v == 0.0 || v.is_subnormal())) {
        return None;
    }
    Some((v, i))
}

/// A hex float after `0x`: hex digits, optional fraction, optional binary
/// exponent `p[+-]digits`. Returns the value and the bytes used.
fn parse_hex(s: &[u8]) -> Option<(f64, usize)> {
    let mut i = 0;
    let mut v = 0f64;
    let mut digits = 0;
    let mut scale = 0i32;
    while i < s.len() && s[i].is_ascii_hexdigit() {
        v = v * 16.0 + f64::from(hex_val(s[i]));
        i += 1;
        digits += 1;
    }
    if i < s.len() && s[i] == b'.' {
        i += 1;
        while i < s.len() && s[i].is_ascii_hexdigit() {
            v = v * 16.0 + f64::from(hex_val(s[i]));
            scale = scale.saturating_sub(4);
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < s.len() && s[i] == b'p' {
        let mut j = i + 1;
        let mut eneg = false;
        if j < s.len() && (s[j] == b'+' || s[j] == b'-') {
            eneg = s[j] == b'-';
            j += 1;
        }
        if j < s.len() && s[j].is_ascii_digit() {
            let mut e: i32 = 0;
            while j < s.len() && s[j].is_ascii_digit() {
                e = e.saturating_mul(10).saturating_add(i32::from(s[j] - b'0'));
                j += 1;
            }
            scale = scale.saturating_add(if eneg { -e } else { e });
            i = j;
        }
    }
    let r = v * 2f64.powi(scale);
    if r.is_infinite() || (v != 0.0 && (r == 0.0 || r.is_subnormal())) {
        return None;
    }
    Some((r, i))
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtod_follows_c() {
        assert_eq!(strtod(b"1.5"), Some(1.5));
        assert_eq!(strtod(b""), Some(0.0));
        assert_eq!(strtod(b"  7"), Some(7.0));
        assert_eq!(strtod(b"7 "), None);
        assert_eq!(strtod(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(strtod(b"Infinity"), Some(f64::INFINITY));
        assert_eq!(strtod(b"nan"), None);
        assert_eq!(strtod(b"1e3"), Some(1000.0));
        assert_eq!(strtod(b"1e"), None);
        assert_eq!(strtod(b"5."), Some(5.0));
        assert_eq!(strtod(b".5"), Some(0.5));
        assert_eq!(strtod(b"5.e2"), Some(500.0));
        assert_eq!(strtod(b"0x10"), Some(16.0));
        assert_eq!(strtod(b"0x1p4"), Some(16.0));
        assert_eq!(strtod(b"0x"), None);
        assert_eq!(strtod(b"1e999"), None);
        assert_eq!(strtod(b"1e-999"), None);
        assert_eq!(strtod(b"0e-999"), Some(0.0));
        assert_eq!(strtod(b"not-a-double"), None);
        assert_eq!(strtod(b"-"), None);
        assert_eq!(strtod(b"12\0junk"), Some(12.0));
    }

    fn argv(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn key_positions_follow_sort_get_keys() {
        let pos = |v: &[&str]| -> Vec<usize> {
            sort_key_positions(&argv(v))
                .into_iter()
                .map(|(i, _)| i)
                .collect()
        };
        assert_eq!(pos(&["sort", "abc", "store", "def"]), [1, 3]);
        assert_eq!(pos(&["sort", "abc"]), [1]);
        assert_eq!(
            pos(&["sort", "abc", "store", "invalid", "store", "stillbad", "store", "def"]),
            [1, 7]
        );
        // A GET or BY pattern named "store" is an argument, not the option.
        assert_eq!(pos(&["sort", "abc", "get", "store", "x"]), [1]);
        assert_eq!(pos(&["sort", "abc", "limit", "store", "store", "x"]), [1]);
        // STORE as the last word has no key.
        assert_eq!(pos(&["sort", "abc", "store"]), [1]);
    }

    #[test]
    fn patterns_split_like_redis() {
        assert!(is_hash_pattern(b"#"));
        assert!(!is_hash_pattern(b"##"));
        assert_eq!(c_str(b"a\0b"), b"a");
    }
}
