//! Hashes: a listpack-like flat vector while small, a [`Dict`] past
//! `hash-max-listpack-entries` / `hash-max-listpack-value` (Redis 7.0's
//! conversion points, from `t_hash.c`: `hashTypeTryConversion` before a
//! write, `hashTypeSet` per field). A hash never converts back.
//!
//! The byte count of fields and values is kept incrementally so that
//! [`Hash::mem_usage`] is O(1): `Shard::modify` calls it around every write.

use crate::dict::Dict;
use crate::key::Key;
use crate::limits::EncodingLimits;
use crate::mem::{alloc_size, array_size};

/// One field and its value.
pub type Pair = (Box<[u8]>, Box<[u8]>);

/// Redis refuses to grow a listpack past 1 GiB (`LISTPACK_MAX_SAFETY_SIZE`)
/// and converts instead; we apply the same bound to the flat encoding.
const LISTPACK_MAX_SAFETY_SIZE: usize = 1 << 30;

/// How many entries a fair random pick looks at, like Redis's
/// `dictGetFairRandomKey` (`GETFAIR_NUM_ENTRIES`).
const FAIR_SAMPLE: usize = 20;

#[derive(Debug, Clone)]
enum Repr {
    /// Field/value pairs in insertion order (`OBJECT ENCODING` `listpack`).
    Listpack(Vec<Pair>),
    /// A table (`hashtable`).
    Table(Box<Dict<Box<[u8]>>>),
}

/// A hash value.
#[derive(Debug, Clone)]
pub struct Hash {
    repr: Repr,
    /// Sum of the lengths of every field and value.
    bytes: usize,
    /// Heap bytes of every field's and value's own allocation.
    heap: usize,
}

/// The two allocations of a field and its value in the flat encoding.
fn pair_heap(field: &[u8], value: &[u8]) -> usize {
    alloc_size(field.len()) + alloc_size(value.len())
}

/// The same in the table, whose nodes hold short fields inline ([`Key`]).
fn table_pair_heap(field: &[u8], value: &[u8]) -> usize {
    Key::heap_size(field.len()) + alloc_size(value.len())
}

impl Default for Hash {
    fn default() -> Self {
        Hash {
            repr: Repr::Listpack(Vec::new()),
            bytes: 0,
            heap: 0,
        }
    }
}

/// What [`Hash::set`] did, so callers can count created fields (`HSET`'s reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    /// The field was new.
    Inserted,
    /// The field existed; its value was replaced.
    Updated,
}

/// The table's own iterator, boxed so [`Iter`] can name it.
type TableIter<'a> = Box<dyn Iterator<Item = (&'a [u8], &'a Box<[u8]>)> + 'a>;

/// Iterator over a hash's pairs, in listpack order or table bucket order.
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    Listpack(std::slice::Iter<'a, Pair>),
    Table(TableIter<'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Listpack(it) => it.next().map(|(f, v)| (&**f, &**v)),
            IterRepr::Table(it) => it.next().map(|(f, v)| (f, &**v)),
        }
    }
}

impl Hash {
    /// An empty hash in the compact encoding, as `createHashObject`.
    pub fn new() -> Self {
        Hash::default()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Listpack(v) => v.len(),
            Repr::Table(d) => d.len(),
        }
    }

    /// No fields (such a key must be deleted).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name `OBJECT ENCODING` answers.
    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Listpack(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    /// Whether the hash is in the compact encoding, where `HSCAN` returns
    /// everything at once and random picks index directly.
    pub fn is_listpack(&self) -> bool {
        matches!(self.repr, Repr::Listpack(_))
    }

    /// Heap bytes as allocated, O(1) so `used_memory` can be kept per
    /// write: every field and value, plus the pair vector, or the table's
    /// nodes and buckets.
    pub fn mem_usage(&self) -> usize {
        self.heap
            + match &self.repr {
                Repr::Listpack(v) => array_size::<Pair>(v.capacity()),
                Repr::Table(d) => {
                    alloc_size(std::mem::size_of::<Dict<Box<[u8]>>>())
                        + d.len() * Dict::<Box<[u8]>>::NODE_BYTES
                        + d.table_bytes()
                }
            }
    }

    /// Total length of every field and value, for estimating reply sizes
    /// before building them.
    pub fn byte_len(&self) -> usize {
        self.bytes
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Listpack(v) => v.iter().find(|(f, _)| &**f == field).map(|(_, x)| &**x),
            Repr::Table(d) => d.get(field).map(|x| &**x),
        }
    }

    /// Whether `field` is present.
    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Converts to the table encoding (no-op when already there), as
    /// `hashTypeConvertListpack`, keeping every pair.
    pub fn convert_to_table(&mut self) {
        let Repr::Listpack(v) = &mut self.repr else {
            return;
        };
        let pairs = std::mem::take(v);
        let mut d = Dict::new();
        let mut heap = 0;
        for (f, x) in pairs {
            heap += table_pair_heap(&f, &x);
            d.insert(&f, x);
        }
        self.repr = Repr::Table(Box::new(d));
        self.heap = heap;
    }

    /// `hashTypeTryConversion`: before a write of the given fields and
    /// values, converts when one of them is longer than
    /// `hash-max-listpack-value` or the flat encoding would pass its safety
    /// size. Redis checks every argument up front, so a long value converts
    /// even when written to a field that already exists.
    pub fn try_conversion<'a>(
        &mut self,
        items: impl IntoIterator<Item = &'a [u8]>,
        limits: &EncodingLimits,
    ) {
        if !self.is_listpack() {
            return;
        }
        let mut sum: usize = 0;
        for it in items {
            if it.len() > limits.hash_max_listpack_value {
                self.convert_to_table();
                return;
            }
            sum = sum.saturating_add(it.len());
        }
        if self.bytes.saturating_add(sum) > LISTPACK_MAX_SAFETY_SIZE {
            self.convert_to_table();
        }
    }

    /// `hashTypeSet`: sets `field` to `value`, converting to the table
    /// encoding when either is longer than `hash-max-listpack-value` (the
    /// `HINCRBY*` path, which skips [`Hash::try_conversion`]) or when the
    /// number of fields passes `hash-max-listpack-entries`.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: &EncodingLimits) -> SetOutcome {
        if self.is_listpack()
            && (field.len() > limits.hash_max_listpack_value
                || value.len() > limits.hash_max_listpack_value)
        {
            self.convert_to_table();
        }
        let outcome = match &mut self.repr {
            Repr::Listpack(v) => {
                if let Some(slot) = v.iter_mut().find(|(f, _)| &**f == field) {
                    self.bytes = self.bytes - slot.1.len() + value.len();
                    self.heap = self.heap - alloc_size(slot.1.len()) + alloc_size(value.len());
                    slot.1 = value.into();
                    SetOutcome::Updated
                } else {
                    self.bytes += field.len() + value.len();
                    self.heap += pair_heap(field, value);
                    v.push((field.into(), value.into()));
                    SetOutcome::Inserted
                }
            }
            Repr::Table(d) => match d.insert(field, value.into()) {
                Some(old) => {
                    self.bytes = self.bytes - old.len() + value.len();
                    self.heap = self.heap - alloc_size(old.len()) + alloc_size(value.len());
                    SetOutcome::Updated
                }
                None => {
                    self.bytes += field.len() + value.len();
                    self.heap += table_pair_heap(field, value);
                    SetOutcome::Inserted
                }
            },
        };
        if self.is_listpack() && self.len() > limits.hash_max_listpack_entries {
            self.convert_to_table();
        }
        outcome
    }

    /// Removes `field`; true if it was present. The encoding never changes.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Listpack(v) => match v.iter().position(|(f, _)| &**f == field) {
                Some(i) => {
                    let (f, x) = v.remove(i);
                    self.bytes -= f.len() + x.len();
                    self.heap -= pair_heap(&f, &x);
                    true
                }
                None => false,
            },
            Repr::Table(d) => match d.remove(field) {
                Some(x) => {
                    self.bytes -= field.len() + x.len();
                    self.heap -= table_pair_heap(field, &x);
                    true
                }
                None => false,
            },
        }
    }

    /// Every pair: insertion order in the compact encoding, bucket order
    /// in the table (as Redis's `hashTypeNext`).
    pub fn iter(&self) -> Iter<'_> {
        match &self.repr {
            Repr::Listpack(v) => Iter(IterRepr::Listpack(v.iter())),
            Repr::Table(d) => Iter(IterRepr::Table(Box::new(d.iter()))),
        }
    }

    /// One `HSCAN` step. The compact encoding is small by construction, so
    /// (like Redis) it visits everything and returns cursor 0; the table
    /// visits one bucket with the reverse-binary cursor, which keeps Redis's
    /// guarantee that a field present for the whole scan is returned.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], &[u8])) -> u64 {
        match &self.repr {
            Repr::Listpack(v) => {
                for (k, x) in v {
                    f(k, x);
                }
                0
            }
            Repr::Table(d) => d.scan(cursor, |k, x| f(k, x)),
        }
    }

    /// The pair at position `i` of the compact encoding (random sampling).
    fn listpack_at(&self, i: usize) -> Option<(&[u8], &[u8])> {
        match &self.repr {
            Repr::Listpack(v) => v.get(i).map(|(f, x)| (&**f, &**x)),
            Repr::Table(_) => None,
        }
    }

    /// Calls `f` with one random pair (nothing when empty). The compact
    /// encoding picks a uniform index (`lpRandomPair`). The table samples
    /// like `dictGetFairRandomKey`: it gathers up to 20 entries from
    /// consecutive buckets after a random one and picks among them, which
    /// removes most of the bias of "random bucket, then random chain entry";
    /// hashes of at most 20 fields are picked exactly uniformly.
    pub fn random_with(&self, rand: &mut dyn FnMut() -> u64, f: impl FnOnce(&[u8], &[u8])) {
        let n = self.len();
        if n == 0 {
            return;
        }
        let d = match &self.repr {
            Repr::Listpack(_) => {
                if let Some((k, x)) = self.listpack_at(uniform(rand, n)) {
                    f(k, x);
                }
                return;
            }
            Repr::Table(d) => d,
        };
        if n <= FAIR_SAMPLE {
            if let Some((k, x)) = d.iter().nth(uniform(rand, n)) {
                f(k, x);
            }
            return;
        }
        let buckets = d.buckets() as u64;
        let want = FAIR_SAMPLE;
        let mut slot = rand() % buckets;
        // (bucket, entries in it) for the buckets gathered.
        let mut seen: Vec<(u64, usize)> = Vec::with_capacity(want);
        let mut total = 0usize;
        // At most one lap of the table, so no bucket is counted twice.
        let mut steps = (want * 10).min(d.buckets());
        while total < want && steps > 0 {
            let mut len = 0usize;
            d.bucket(slot as usize, |_, _| len += 1);
            if len > 0 {
                seen.push((slot, len));
                total += len;
            }
            slot = (slot + 1) % buckets;
            steps -= 1;
        }
        if total == 0 {
            // A pathologically sparse table: fall back to a plain random pick.
            if let Some((k, x)) = d.random(&mut *rand) {
                f(k, x);
            }
            return;
        }
        let mut pick = uniform(rand, total);
        for (slot, len) in seen {
            if pick < len {
                let mut i = 0usize;
                let mut f = Some(f);
                d.bucket(slot as usize, |k, x| {
                    if i == pick {
                        if let Some(f) = f.take() {
                            f(k, x);
                        }
                    }
                    i += 1;
                });
                return;
            }
            pick -= len;
        }
    }

    /// Calls `f` `count` times with a random pair each, repetitions allowed
    /// (`HRANDFIELD` with a negative count, `lpRandomPairs`).
    pub fn random_pairs(
        &self,
        count: usize,
        rand: &mut dyn FnMut() -> u64,
        mut f: impl FnMut(&[u8], &[u8]),
    ) {
        if self.is_empty() {
            return;
        }
        for _ in 0..count {
            self.random_with(rand, &mut f);
        }
    }

    /// Calls `f` with `count` distinct random pairs, `count < len`
    /// (`HRANDFIELD` with a positive count smaller than the hash), with
    /// Redis's two strategies: when `count` is more than a third of the
    /// hash, copy it and drop random pairs (CASE 3); otherwise pick random
    /// pairs until enough are distinct (CASE 4; the compact encoding picks
    /// a uniform subset in order, as `lpRandomPairsUnique`).
    pub fn random_distinct(
        &self,
        count: usize,
        rand: &mut dyn FnMut() -> u64,
        mut f: impl FnMut(&[u8], &[u8]),
    ) {
        let size = self.len();
        if count >= size {
            for (k, x) in self.iter() {
                f(k, x);
            }
            return;
        }
        if count.saturating_mul(3) > size {
            let mut all: Vec<(&[u8], &[u8])> = self.iter().collect();
            while all.len() > count {
                let i = uniform(rand, all.len());
                all.swap_remove(i);
            }
            for (k, x) in all {
                f(k, x);
            }
            return;
        }
        if let Repr::Listpack(v) = &self.repr {
            // Selection sampling: each pair is taken with probability
            // needed / remaining, which yields a uniform subset in order.
            let mut needed = count;
            for (i, (k, x)) in v.iter().enumerate() {
                if needed == 0 {
                    break;
                }
                let remaining = v.len() - i;
                if uniform(rand, remaining) < needed {
                    f(k, x);
                    needed -= 1;
                }
            }
            return;
        }
        let mut picked: std::collections::HashSet<Box<[u8]>> =
            std::collections::HashSet::with_capacity(count);
        while picked.len() < count {
            self.random_with(rand, |k, x| {
                if !picked.contains(k) {
                    picked.insert(k.into());
                    f(k, x);
                }
            });
        }
    }
}

/// A uniform index below `n` (`n > 0`) from a 64-bit random source; the
/// modulo bias is below 2^-40 for any hash that fits in memory.
fn uniform(rand: &mut dyn FnMut() -> u64, n: usize) -> usize {
    (rand() % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn limits(entries: usize, value: usize) -> EncodingLimits {
        EncodingLimits {
            hash_max_listpack_entries: entries,
            hash_max_listpack_value: value,
            ..EncodingLimits::default()
        }
    }

    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    fn byte_sum(h: &Hash) -> usize {
        h.iter().map(|(f, v)| f.len() + v.len()).sum()
    }

    fn heap_sum(h: &Hash) -> usize {
        let pair = if h.is_listpack() {
            pair_heap
        } else {
            table_pair_heap
        };
        h.iter().map(|(f, v)| pair(f, v)).sum()
    }

    #[test]
    fn converts_when_entries_pass_the_limit() {
        let l = limits(4, 64);
        let mut h = Hash::new();
        for i in 0..4u8 {
            assert_eq!(h.set(&[i], b"v", &l), SetOutcome::Inserted);
        }
        assert_eq!(h.encoding(), "listpack");
        assert_eq!(h.set(&[0], b"w", &l), SetOutcome::Updated);
        assert_eq!(h.encoding(), "listpack");
        h.set(&[9], b"v", &l);
        assert_eq!(h.encoding(), "hashtable");
        // Never converts back.
        for i in 0..4u8 {
            assert!(h.remove(&[i]));
        }
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 1);
        assert_eq!(h.get(&[9]), Some(&b"v"[..]));
    }

    #[test]
    fn converts_on_a_long_field_or_value() {
        let l = limits(128, 8);
        let mut h = Hash::new();
        h.set(b"f", b"12345678", &l);
        assert_eq!(h.encoding(), "listpack");
        h.set(b"f", b"123456789", &l);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = Hash::new();
        h.set(b"123456789", b"v", &l);
        assert_eq!(h.encoding(), "hashtable");
        // try_conversion looks at every argument, even a field that exists.
        let mut h = Hash::new();
        h.set(b"f", b"v", &l);
        h.try_conversion([&b"f"[..], b"123456789"], &l);
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.get(b"f"), Some(&b"v"[..]));
    }

    #[test]
    fn mem_usage_tracks_bytes() {
        let l = limits(2, 64);
        let mut h = Hash::new();
        let empty = h.mem_usage();
        h.set(b"field", b"value", &l);
        assert!(h.mem_usage() > empty);
        h.set(b"f2", b"v2", &l);
        h.set(b"f3", b"v3", &l);
        assert_eq!(h.bytes, byte_sum(&h));
        h.set(b"f3", b"a much longer value", &l);
        assert_eq!(h.bytes, byte_sum(&h));
        h.remove(b"field");
        assert_eq!(h.bytes, byte_sum(&h));
        assert_eq!(h.heap, heap_sum(&h));
        // Three fields passed the limit of two: a table, whose 48-byte
        // nodes hold the fields inline; v2 in one word, the 19-byte value
        // in a 32-byte block, four buckets, and the boxed 32-byte table
        // header.
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(Dict::<Box<[u8]>>::NODE_BYTES, 48);
        assert_eq!(h.mem_usage(), 8 + 32 + 2 * 48 + 4 * 8 + 32);
    }

    #[test]
    fn listpack_scan_returns_everything_with_cursor_zero() {
        let l = limits(128, 64);
        let mut h = Hash::new();
        for i in 0..10u8 {
            h.set(&[i], &[i], &l);
        }
        let mut n = 0;
        assert_eq!(h.scan(0, |_, _| n += 1), 0);
        assert_eq!(n, 10);
    }

    #[test]
    fn random_picks_cover_both_encodings_fairly() {
        for entries in [128, 1] {
            let l = limits(entries, 64);
            let mut h = Hash::new();
            for i in 0..50u8 {
                h.set(&[i], &[i], &l);
            }
            let mut rand = xorshift(7);
            let mut counts = [0usize; 50];
            for _ in 0..50_000 {
                h.random_with(&mut rand, |k, v| {
                    assert_eq!(k, v);
                    counts[k[0] as usize] += 1;
                });
            }
            // Each expected 1000 times; a fair sampler stays well within this.
            for c in counts {
                assert!((500..1500).contains(&c), "{entries}: {counts:?}");
            }
        }
    }

    #[test]
    fn random_distinct_is_distinct_and_complete() {
        for entries in [128, 1] {
            let l = limits(entries, 64);
            let mut h = Hash::new();
            for i in 0..30u8 {
                h.set(&[i], &[i], &l);
            }
            let mut rand = xorshift(11);
            for count in [1, 5, 10, 11, 29, 30, 40] {
                let mut got = BTreeSet::new();
                let mut n = 0;
                h.random_distinct(count, &mut rand, |k, v| {
                    assert_eq!(k, v);
                    got.insert(k.to_vec());
                    n += 1;
                });
                assert_eq!(n, count.min(30));
                assert_eq!(got.len(), n);
            }
            let mut n = 0;
            h.random_pairs(100, &mut rand, |_, _| n += 1);
            assert_eq!(n, 100);
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u8, Vec<u8>),
        Remove(u8),
        Get(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..40, proptest::collection::vec(any::<u8>(), 0..12))
                .prop_map(|(f, v)| Op::Set(f, v)),
            (0u8..40).prop_map(Op::Remove),
            (0u8..40).prop_map(Op::Get),
        ]
    }

    proptest! {
        // The hash behaves like a map whatever its encoding, converts exactly
        // when Redis would (a field count past the entry limit or a value past
        // the value limit, ever), and never converts back.
        #[test]
        fn behaves_like_a_btreemap(
            ops in proptest::collection::vec(op(), 0..300),
            entries in 0usize..20,
            value in 0usize..12,
        ) {
            let l = limits(entries, value);
            let mut h = Hash::new();
            let mut m: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut should_convert = false;
            for op in ops {
                match op {
                    Op::Set(f, v) => {
                        let field = vec![b'f', f];
                        let new = m.insert(field.clone(), v.clone()).is_none();
                        let outcome = h.set(&field, &v, &l);
                        prop_assert_eq!(outcome == SetOutcome::Inserted, new);
                        if field.len() > value || v.len() > value || m.len() > entries {
                            should_convert = true;
                        }
                    }
                    Op::Remove(f) => {
                        let field = vec![b'f', f];
                        prop_assert_eq!(h.remove(&field), m.remove(&field).is_some());
                    }
                    Op::Get(f) => {
                        let field = vec![b'f', f];
                        prop_assert_eq!(h.get(&field), m.get(&field).map(Vec::as_slice));
                        prop_assert_eq!(h.contains(&field), m.contains_key(&field));
                    }
                }
                prop_assert_eq!(h.len(), m.len());
                prop_assert_eq!(h.encoding(), if should_convert { "hashtable" } else { "listpack" });
                prop_assert_eq!(h.bytes, byte_sum(&h));
                prop_assert_eq!(h.heap, heap_sum(&h));
            }
            let mut all: Vec<(Vec<u8>, Vec<u8>)> =
                h.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            all.sort();
            let want: Vec<(Vec<u8>, Vec<u8>)> = m.into_iter().collect();
            prop_assert_eq!(all, want);
        }

        // Fields present for the whole scan are returned, whatever is added
        // or removed (and however the table resizes) between cursor steps.
        #[test]
        fn scan_returns_every_stable_field(
            stable in 1u32..300,
            churn in proptest::collection::vec((any::<bool>(), 1000u32..3000), 0..400),
            entries in prop_oneof![Just(0usize), Just(128), Just(100_000)],
        ) {
            let l = limits(entries, 64);
            let mut h = Hash::new();
            for i in 0..stable {
                h.set(&i.to_be_bytes(), b"v", &l);
            }
            let mut seen = BTreeSet::new();
            let mut cursor = 0;
            let mut churn = churn.into_iter();
            loop {
                cursor = h.scan(cursor, |k, v| {
                    assert_eq!(v, b"v");
                    seen.insert(k.to_vec());
                });
                for _ in 0..3 {
                    if let Some((add, k)) = churn.next() {
                        if add {
                            h.set(&k.to_be_bytes(), b"v", &l);
                        } else {
                            h.remove(&k.to_be_bytes());
                        }
                    }
                }
                if cursor == 0 {
                    break;
                }
            }
            for i in 0..stable {
                prop_assert!(seen.contains(i.to_be_bytes().as_slice()));
            }
        }
    }
}
