//! Sets: a sorted integer array (`intset`) while every member is an integer
//! and there are at most `set-max-intset-entries`, else a [`Dict`]
//! (`hashtable`), as in Redis 7.0.
//!
//! The conversion rules are Redis's `setTypeCreate` / `setTypeAdd` /
//! `setTypeConvert` exactly, because clients (and Redis's own tests) observe
//! them through `OBJECT ENCODING`: a set only ever moves from `intset` to
//! `hashtable`, never back, except when a command builds a fresh set (the
//! `*STORE` commands, `SPOP` with a large count), which starts as an intset.
//!
//! Memory use is tracked incrementally so [`Set::mem_usage`] is O(1): the
//! shard calls it before and after every modification.

use rand::Rng;

use crate::dict::{hash_key, Dict};
use crate::key::Key;
use crate::mem::alloc_size;
use crate::mem::array_size;

/// Redis caps intsets at 2^30 entries whatever `set-max-intset-entries` says
/// (`setTypeAdd`), because of the intset's 32-bit length.
const INTSET_HARD_LIMIT: usize = 1 << 30;

/// Parses a member as Redis's `string2ll`: the canonical decimal form of an
/// `i64` only (no `+`, no leading zeros, no `-0`, no spaces).
pub fn member_as_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if neg {
        // -(2^63) is the one value whose magnitude exceeds i64::MAX.
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

/// A member as stored: intsets hand out integers, tables hand out bytes.
/// Borrowed so iterating an intset allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member<'a> {
    /// A member of an intset.
    Int(i64),
    /// A member of a table.
    Bytes(&'a [u8]),
}

impl Member<'_> {
    /// Calls `f` with the member's bytes (integers are formatted on the stack).
    pub fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Member::Int(n) => f(itoa_i64(n).as_bytes()),
            Member::Bytes(b) => f(b),
        }
    }

    /// The member's bytes, owned.
    pub fn to_vec(self) -> Vec<u8> {
        self.with_bytes(<[u8]>::to_vec)
    }
}

/// Formats an integer the way Redis prints intset members (`ll2string`).
fn itoa_i64(n: i64) -> IntBuf {
    let mut buf = IntBuf {
        bytes: [0; 20],
        len: 0,
    };
    let neg = n < 0;
    let mut v = n.unsigned_abs();
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut out = 0;
    if neg {
        buf.bytes[0] = b'-';
        out = 1;
    }
    let digits = &tmp[i..];
    // 19 digits at most plus the sign: fits the 20-byte buffer.
    buf.bytes[out..out + digits.len()].copy_from_slice(digits);
    buf.len = out + digits.len();
    buf
}

/// A formatted `i64` without allocating.
struct IntBuf {
    bytes: [u8; 20],
    len: usize,
}

impl IntBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[derive(Debug, Clone)]
enum Repr {
    /// Sorted distinct integers.
    Intset(Vec<i64>),
    /// Members as keys of a table, boxed: a table is large anyway, and
    /// inline it would make every stored value (whatever its type) wider.
    Table(Box<Dict<()>>),
}

/// A set value.
#[derive(Debug, Clone)]
pub struct Set {
    repr: Repr,
    /// Heap bytes of the table's members' own allocations (0 for an
    /// intset, whose cost is its vector's capacity).
    member_heap: usize,
}

impl Default for Set {
    fn default() -> Self {
        Set {
            repr: Repr::Intset(Vec::new()),
            member_heap: 0,
        }
    }
}

/// Redis's effective intset limit for a configured `set-max-intset-entries`.
fn intset_limit(max_intset_entries: usize) -> usize {
    max_intset_entries.min(INTSET_HARD_LIMIT)
}

impl Set {
    /// An empty set in the compact encoding.
    pub fn new() -> Self {
        Set::default()
    }

    /// An empty set in the encoding that can hold `first` (Redis's
    /// `setTypeCreate`): an intset for an integer, else a table. Commands
    /// that create a key from its first member (`SADD`, `SMOVE`) start here.
    pub fn for_member(first: &[u8]) -> Self {
        if member_as_int(first).is_some() {
            Set::new()
        } else {
            Set {
                repr: Repr::Table(Box::default()),
                member_heap: 0,
            }
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Intset(v) => v.len(),
            Repr::Table(d) => d.len(),
        }
    }

    /// No members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name `OBJECT ENCODING` answers.
    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Intset(_) => "intset",
            Repr::Table(_) => "hashtable",
        }
    }

    /// Whether the set is in the `intset` encoding.
    pub fn is_intset(&self) -> bool {
        matches!(self.repr, Repr::Intset(_))
    }

    /// Heap bytes as allocated, O(1): the shard calls this around every
    /// change. An intset is its vector; a table is its members, their
    /// nodes and its buckets.
    pub fn mem_usage(&self) -> usize {
        match &self.repr {
            Repr::Intset(v) => array_size::<i64>(v.capacity()),
            Repr::Table(d) => {
                self.member_heap
                    + alloc_size(std::mem::size_of::<Dict<()>>())
                    + d.len() * Dict::<()>::NODE_BYTES
                    + d.table_bytes()
            }
        }
    }

    /// Converts an intset to a table (`setTypeConvert`); a table is left as is.
    pub fn convert_to_table(&mut self) {
        let Repr::Intset(v) = &self.repr else {
            return;
        };
        let mut d = Dict::new();
        let mut bytes = 0;
        for &n in v {
            let b = itoa_i64(n);
            let m = b.as_bytes();
            bytes += Key::heap_size(m.len());
            d.insert_new_hashed(hash_key(m), m.into(), ());
        }
        self.repr = Repr::Table(Box::new(d));
        self.member_heap = bytes;
    }

    /// Adds a member (`setTypeAdd`); returns whether it was new. An intset
    /// becomes a table when `member` is not an integer or when it would
    /// exceed `max_intset_entries` (`set-max-intset-entries`).
    pub fn add(&mut self, member: &[u8], max_intset_entries: usize) -> bool {
        match self.repr {
            Repr::Table(_) => self.add_to_table(member),
            Repr::Intset(_) => match member_as_int(member) {
                Some(n) => self.add_int(n, max_intset_entries),
                None => {
                    self.convert_to_table();
                    self.add_to_table(member)
                }
            },
        }
    }

    /// [`Set::add`] for a member taken from another set, without
    /// formatting integers that go into an intset.
    pub fn add_member(&mut self, member: Member<'_>, max_intset_entries: usize) -> bool {
        match (member, &self.repr) {
            (Member::Int(n), Repr::Intset(_)) => self.add_int(n, max_intset_entries),
            _ => member.with_bytes(|b| self.add(b, max_intset_entries)),
        }
    }

    fn add_int(&mut self, n: i64, max_intset_entries: usize) -> bool {
        let Repr::Intset(v) = &mut self.repr else {
            return self.add_to_table(itoa_i64(n).as_bytes());
        };
        match v.binary_search(&n) {
            Ok(_) => false,
            Err(pos) => {
                v.insert(pos, n);
                if v.len() > intset_limit(max_intset_entries) {
                    self.convert_to_table();
                }
                true
            }
        }
    }

    fn add_to_table(&mut self, member: &[u8]) -> bool {
        let Repr::Table(d) = &mut self.repr else {
            return false;
        };
        let h = hash_key(member);
        if d.get_hashed(h, member).is_some() {
            return false;
        }
        d.insert_new_hashed(h, member.into(), ());
        self.member_heap += Key::heap_size(member.len());
        true
    }

    /// Removes a member (`setTypeRemove`); returns whether it was present.
    /// The encoding never changes back.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Intset(_) => match member_as_int(member) {
                Some(n) => self.remove_int(n),
                None => false,
            },
            Repr::Table(d) => match d.remove_entry_hashed(hash_key(member), member) {
                Some(_) => {
                    self.member_heap -= Key::heap_size(member.len());
                    true
                }
                None => false,
            },
        }
    }

    /// [`Set::remove`] for a member taken from a set.
    pub fn remove_member(&mut self, member: Member<'_>) -> bool {
        match (member, &self.repr) {
            (Member::Int(n), Repr::Intset(_)) => self.remove_int(n),
            _ => member.with_bytes(|b| self.remove(b)),
        }
    }

    fn remove_int(&mut self, n: i64) -> bool {
        let Repr::Intset(v) = &mut self.repr else {
            return false;
        };
        match v.binary_search(&n) {
            Ok(pos) => {
                v.remove(pos);
                // Give memory back when mostly empty, as intsetRemove's realloc does.
                if v.capacity() > 16 && v.len() * 4 < v.capacity() {
                    v.shrink_to_fit();
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Whether `member` is in the set (`setTypeIsMember`).
    pub fn contains(&self, member: &[u8]) -> bool {
        match &self.repr {
            Repr::Intset(v) => member_as_int(member).is_some_and(|n| v.binary_search(&n).is_ok()),
            Repr::Table(d) => d.contains(member),
        }
    }

    /// [`Set::contains`] for a member taken from another set: an integer
    /// probes an intset directly.
    pub fn contains_member(&self, member: Member<'_>) -> bool {
        match (member, &self.repr) {
            (Member::Int(n), Repr::Intset(v)) => v.binary_search(&n).is_ok(),
            (Member::Bytes(b), Repr::Table(d)) => d.contains(b),
            // A table member in an intset: only a canonical integer can match.
            _ => member.with_bytes(|b| self.contains(b)),
        }
    }

    /// Every member: ascending for an intset, table order for a table.
    pub fn iter(&self) -> impl Iterator<Item = Member<'_>> + '_ {
        let (ints, table) = match &self.repr {
            Repr::Intset(v) => (Some(v.iter().map(|&n| Member::Int(n))), None),
            Repr::Table(d) => (None, Some(d.iter().map(|(k, _)| Member::Bytes(k)))),
        };
        ints.into_iter()
            .flatten()
            .chain(table.into_iter().flatten())
    }

    /// A uniformly chosen member, `None` when empty.
    ///
    /// For a table this is rejection sampling over buckets: pick a bucket
    /// and a slot below a bound on chain length, and retry unless the slot
    /// holds a member. Every member is then equally likely (plain "random
    /// bucket, random chain entry" favours members of short chains, which
    /// skews `SRANDMEMBER`'s distribution visibly on small sets).
    pub fn random<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<Member<'_>> {
        match &self.repr {
            Repr::Intset(v) => {
                if v.is_empty() {
                    None
                } else {
                    Some(Member::Int(v[rng.gen_range(0..v.len())]))
                }
            }
            Repr::Table(d) => {
                if d.is_empty() {
                    return None;
                }
                let buckets = d.buckets() as u64;
                // Chains longer than 4 are rare at the table's load factor;
                // when one shows up the bound grows to it.
                let mut bound = 4usize;
                loop {
                    let b = rng.gen_range(0..buckets);
                    let mut chain = 0usize;
                    d.bucket(b as usize, |_, _| chain += 1);
                    if chain > bound {
                        bound = chain;
                    }
                    let slot = rng.gen_range(0..bound);
                    if slot < chain {
                        // `Dict::random` draws the bucket, then the chain
                        // position: feed it the pair chosen here. Should it
                        // ask for more numbers, it gets fresh random ones,
                        // so it still only ever returns a present member.
                        let mut script = [b, slot as u64].into_iter();
                        let picked = d.random(|| script.next().unwrap_or_else(|| rng.gen()));
                        return picked.map(|(k, _)| Member::Bytes(k));
                    }
                }
            }
        }
    }

    /// Removes and returns a uniformly chosen member (`SPOP`).
    pub fn pop_random<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Option<Vec<u8>> {
        let m = self.random(rng)?;
        let owned = OwnedMember::from(m);
        match &owned {
            OwnedMember::Int(n) => self.remove_int(*n),
            OwnedMember::Bytes(b) => self.remove(b),
        };
        Some(owned.into_bytes())
    }

    /// One step of `SSCAN`: calls `f` for the members of the cursor's
    /// bucket and returns the next cursor (0 when done). An intset is
    /// returned whole with cursor 0, as Redis does for compact encodings.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(Member<'_>)) -> u64 {
        match &self.repr {
            Repr::Intset(v) => {
                for &n in v {
                    f(Member::Int(n));
                }
                0
            }
            Repr::Table(d) => d.scan(cursor, |k, _| f(Member::Bytes(k))),
        }
    }
}

/// A member copied out of a set, so the set can be modified afterwards.
enum OwnedMember {
    Int(i64),
    Bytes(Vec<u8>),
}

impl From<Member<'_>> for OwnedMember {
    fn from(m: Member<'_>) -> Self {
        match m {
            Member::Int(n) => OwnedMember::Int(n),
            Member::Bytes(b) => OwnedMember::Bytes(b.to_vec()),
        }
    }
}

impl OwnedMember {
    fn into_bytes(self) -> Vec<u8> {
        match self {
            OwnedMember::Int(n) => itoa_i64(n).as_bytes().to_vec(),
            OwnedMember::Bytes(b) => b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use std::collections::{BTreeSet, HashMap};

    fn members(s: &Set) -> BTreeSet<Vec<u8>> {
        s.iter().map(Member::to_vec).collect()
    }

    #[test]
    fn int_parsing_is_string2ll() {
        assert_eq!(member_as_int(b"0"), Some(0));
        assert_eq!(member_as_int(b"-1"), Some(-1));
        assert_eq!(member_as_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(member_as_int(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"1.0",
            b"99999999999999999999999",
        ] {
            assert_eq!(
                member_as_int(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn integers_print_like_ll2string() {
        for n in [0, 1, -1, 42, i64::MAX, i64::MIN] {
            assert_eq!(itoa_i64(n).as_bytes(), n.to_string().as_bytes());
        }
    }

    #[test]
    fn encoding_follows_set_type_create_and_add() {
        let mut s = Set::for_member(b"1");
        assert_eq!(s.encoding(), "intset");
        assert!(s.add(b"1", 512));
        assert!(!s.add(b"1", 512));
        // A non-canonical integer is a string member.
        assert!(s.add(b"01", 512));
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.contains(b"1") && s.contains(b"01") && !s.contains(b"2"));

        let s = Set::for_member(b"a");
        assert_eq!(s.encoding(), "hashtable");

        // Past the limit: converted at limit + 1 members, not before.
        let mut s = Set::new();
        for i in 0..4 {
            s.add(i.to_string().as_bytes(), 4);
        }
        assert_eq!(s.encoding(), "intset");
        s.add(b"4", 4);
        assert_eq!(s.encoding(), "hashtable");
        // Never converted back.
        for i in 0..5 {
            assert!(s.remove(i.to_string().as_bytes()));
        }
        s.add(b"7", 4);
        assert_eq!(s.encoding(), "hashtable");

        // A limit of 0 still creates an intset, converted by its first add.
        let mut s = Set::for_member(b"5");
        s.add(b"5", 0);
        assert_eq!(s.encoding(), "hashtable");
    }

    #[test]
    fn intset_iterates_in_ascending_order() {
        let mut s = Set::new();
        for m in ["5", "-3", "100", "0"] {
            s.add(m.as_bytes(), 512);
        }
        let got: Vec<Vec<u8>> = s.iter().map(Member::to_vec).collect();
        assert_eq!(got, [&b"-3"[..], b"0", b"5", b"100"]);
        let mut scanned = Vec::new();
        assert_eq!(s.scan(0, |m| scanned.push(m.to_vec())), 0);
        assert_eq!(scanned, got);
    }

    #[test]
    fn mem_usage_tracks_members() {
        let mut s = Set::for_member(b"a");
        let empty = s.mem_usage();
        s.add(b"hello", 512);
        let one = s.mem_usage();
        assert!(one > empty);
        s.remove(b"hello");
        assert_eq!(s.member_heap, 0);
        // The emptied table gave its buckets back; its boxed 32-byte
        // header stays.
        assert_eq!(s.mem_usage(), 32);
        s.add(b"hello", 512);
        s.add(b"a member of 17 b.", 512);
        // Two 32-byte nodes holding their members inline, four buckets.
        assert_eq!(Dict::<()>::NODE_BYTES, 32);
        assert_eq!(s.mem_usage(), 32 + 2 * 32 + 4 * 8);
        // A member past the inline limit adds its own block.
        s.add(b"a member of twenty-three", 512);
        assert_eq!(s.mem_usage(), 32 + 3 * 32 + 4 * 8 + 32);
        let mut ints = Set::for_member(b"1");
        for i in 0..5 {
            ints.add(i.to_string().as_bytes(), 512);
        }
        // Five integers in a vector that grew from four slots to eight.
        assert_eq!(ints.mem_usage(), 8 * 8);
    }

    #[test]
    fn random_is_roughly_uniform() {
        // Ten members in a table: plain "random bucket, random chain entry"
        // would favour members alone in their bucket.
        let mut s = Set::for_member(b"a");
        for i in 0..10 {
            s.add(format!("m{i}").as_bytes(), 512);
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut hist: HashMap<Vec<u8>, u32> = HashMap::new();
        let draws = 20_000;
        for _ in 0..draws {
            let m = s.random(&mut rng).map(Member::to_vec);
            *hist.entry(m.unwrap_or_default()).or_default() += 1;
        }
        assert_eq!(hist.len(), 10);
        let expected = f64::from(draws) / 10.0;
        let chi2: f64 = hist
            .values()
            .map(|&c| (f64::from(c) - expected).powi(2) / expected)
            .sum();
        // df = 9: 40 is a 0.001% tail, the bound Redis's own test uses.
        assert!(chi2 < 40.0, "chi-square {chi2}: {hist:?}");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(Vec<u8>),
        Remove(Vec<u8>),
        Contains(Vec<u8>),
        Pop,
    }

    fn member() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (-40i64..40).prop_map(|n| n.to_string().into_bytes()),
            Just(b"-0".to_vec()),
            Just(b"007".to_vec()),
            "[a-c]{1,2}".prop_map(String::into_bytes),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => member().prop_map(Op::Add),
            2 => member().prop_map(Op::Remove),
            1 => member().prop_map(Op::Contains),
            1 => Just(Op::Pop),
        ]
    }

    proptest! {
        // The set behaves as a BTreeSet of byte strings whatever its
        // encoding, and its encoding is what Redis's rules give.
        #[test]
        fn behaves_like_a_btreeset(ops in proptest::collection::vec(op(), 0..300), limit in 0usize..20, seed in any::<u64>()) {
            let mut s = Set::new();
            let mut model: BTreeSet<Vec<u8>> = BTreeSet::new();
            let mut ever_table = false;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            for op in ops {
                match op {
                    Op::Add(m) => {
                        prop_assert_eq!(s.add(&m, limit), model.insert(m));
                    }
                    Op::Remove(m) => prop_assert_eq!(s.remove(&m), model.remove(&m)),
                    Op::Contains(m) => prop_assert_eq!(s.contains(&m), model.contains(&m)),
                    Op::Pop => {
                        let got = s.pop_random(&mut rng);
                        match got {
                            Some(m) => prop_assert!(model.remove(&m)),
                            None => prop_assert!(model.is_empty()),
                        }
                    }
                }
                prop_assert_eq!(s.len(), model.len());
                ever_table |= !s.is_intset();
                // Once a table, always a table; an intset only while every
                // member is an integer and within the limit.
                prop_assert_eq!(s.is_intset(), !ever_table);
                if s.is_intset() {
                    prop_assert!(model.len() <= limit);
                    prop_assert!(model.iter().all(|m| member_as_int(m).is_some()));
                }
                if let Some(m) = s.random(&mut rng) {
                    prop_assert!(model.contains(&m.to_vec()));
                }
                let member_heap: usize = if s.is_intset() { 0 } else {
                    model.iter().map(|m| Key::heap_size(m.len())).sum()
                };
                prop_assert_eq!(s.member_heap, member_heap);
            }
            prop_assert_eq!(members(&s), model);
        }

        // Members present for the whole scan are returned, whatever is
        // added or removed between steps (and however the table resizes).
        #[test]
        fn scan_returns_every_stable_member(stable in 1u32..200, churn in proptest::collection::vec((any::<bool>(), 0u32..400), 0..300)) {
            let mut s = Set::for_member(b"x");
            for i in 0..stable {
                s.add(format!("s{i}").as_bytes(), 512);
            }
            let mut seen = BTreeSet::new();
            let mut cursor = 0;
            let mut churn = churn.into_iter();
            loop {
                cursor = s.scan(cursor, |m| { seen.insert(m.to_vec()); });
                for _ in 0..3 {
                    if let Some((add, k)) = churn.next() {
                        let m = format!("c{k}");
                        if add { s.add(m.as_bytes(), 512); } else { s.remove(m.as_bytes()); }
                    }
                }
                if cursor == 0 { break; }
            }
            for i in 0..stable {
                let m = format!("s{}", i);
                prop_assert!(seen.contains(m.as_bytes()), "missing {}", m);
            }
        }

        // Members taken from another set (`Member::Int` from an intset)
        // behave exactly like their bytes.
        #[test]
        fn member_ops_match_byte_ops(a in proptest::collection::vec(member(), 0..40), b in proptest::collection::vec(member(), 0..40)) {
            let mut src = Set::new();
            for m in &a { src.add(m, 16); }
            let mut via_member = Set::new();
            let mut via_bytes = Set::new();
            for m in &b { via_member.add(m, 16); via_bytes.add(m, 16); }
            for m in src.iter() {
                prop_assert_eq!(via_member.contains_member(m), via_bytes.contains(&m.to_vec()));
                prop_assert_eq!(via_member.add_member(m, 16), via_bytes.add(&m.to_vec(), 16));
            }
            prop_assert_eq!(via_member.encoding(), via_bytes.encoding());
            prop_assert_eq!(members(&via_member), members(&via_bytes));
            for m in src.iter() {
                prop_assert_eq!(via_member.remove_member(m), via_bytes.remove(&m.to_vec()));
            }
            prop_assert_eq!(members(&via_member), members(&via_bytes));
        }
    }
}
