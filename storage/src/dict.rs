//! A chained hash table in the shape of Redis's `dict`.
//!
//! We need two things no general-purpose map exposes: Redis's `SCAN`
//! guarantee (every key present for the whole scan is returned at least once,
//! across resizes), which comes from walking buckets with a reverse-binary
//! cursor; and uniform random sampling (`RANDOMKEY`, active expiry,
//! eviction pools), which needs random bucket access. So the table is a
//! power-of-two vector of singly linked chains, like `dict.c`.
//!
//! Resizes are incremental, as in Redis: a growing or shrinking map
//! allocates the new table and then moves one bucket of the old one (or
//! skips up to ten empty ones) on every insertion and removal, so no single
//! command pays for moving a whole set or hash of millions of members (a
//! one-step resize of a million-member set stalled a command ~130 ms).
//! While both tables exist, lookups try both, new keys go to the new one,
//! and scans walk both with Redis's `dictScan` rule for two tables.

use xxhash_rust::xxh3::xxh3_64;

use crate::key::Key;
use crate::mem::{alloc_size, array_size};

/// The hash every map in the store uses. Shards take its low bits; buckets
/// take the high half (see [`bucket_hash`]), so the two never correlate.
#[inline]
pub fn hash_key(key: &[u8]) -> u64 {
    xxh3_64(key)
}

#[inline]
fn bucket_hash(h: u64) -> usize {
    h.rotate_right(32) as usize
}

struct Node<V> {
    key: Key,
    value: V,
    next: Option<Box<Node<V>>>,
}

type Table<V> = Box<[Option<Box<Node<V>>>]>;

/// A resize in progress: the new table, and the next bucket of the old one
/// to move. Boxed so that a map not resizing (nearly all of them) costs no
/// more than one table: every value embeds its map.
struct Rehash<V> {
    t1: Table<V>,
    idx: usize,
}

fn table<V>(size: usize) -> Table<V> {
    std::iter::repeat_with(|| None).take(size).collect()
}

/// Buckets a rehash step may skip while looking for one to move
/// (Redis's `empty_visits`).
const EMPTY_VISITS: usize = 10;

/// A map from byte keys to `V` with cursor scans and random sampling.
pub struct Dict<V> {
    /// The table in use; while rehashing, the old one being emptied.
    t0: Table<V>,
    len: usize,
    rehash: Option<Box<Rehash<V>>>,
}

impl<V> Default for Dict<V> {
    fn default() -> Self {
        Self::new()
    }
}

fn slot_in<V>(t: &[Option<Box<Node<V>>>], h: u64) -> usize {
    bucket_hash(h) & (t.len() - 1)
}

fn chain_get<'a, V>(mut cur: Option<&'a Node<V>>, key: &[u8]) -> Option<&'a Node<V>> {
    while let Some(n) = cur {
        if n.key.as_bytes() == key {
            return Some(n);
        }
        cur = n.next.as_deref();
    }
    None
}

impl<V> Dict<V> {
    /// An empty map; no table is allocated until the first insert.
    pub fn new() -> Self {
        Dict {
            t0: Box::new([]),
            len: 0,
            rehash: None,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No keys.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of buckets that may hold entries: the table's, or while
    /// rehashing the old table's not yet moved plus the new table's. The
    /// index space of [`Dict::bucket`], for uniform random picks.
    pub fn buckets(&self) -> usize {
        match &self.rehash {
            None => self.t0.len(),
            Some(r) => self.t0.len() - r.idx + r.t1.len(),
        }
    }

    /// The new table while rehashing, else an empty slice.
    fn t1(&self) -> &[Option<Box<Node<V>>>] {
        self.rehash.as_ref().map_or(&[], |r| &r.t1)
    }

    /// Both tables, old then new (the new one empty unless rehashing).
    fn tables_mut(&mut self) -> [&mut [Option<Box<Node<V>>>]; 2] {
        let t1: &mut [_] = match &mut self.rehash {
            Some(r) => &mut r.t1,
            None => &mut [],
        };
        [&mut self.t0[..], t1]
    }

    /// Whether a resize is in progress (two tables).
    pub fn is_rehashing(&self) -> bool {
        self.rehash.is_some()
    }

    /// Bytes of one entry's chain node as allocated (a key longer than
    /// [`crate::key::INLINE`] adds its own allocation: [`Key::heap_size`]).
    pub const NODE_BYTES: usize = alloc_size(std::mem::size_of::<Node<V>>());

    /// Bytes of the bucket arrays as allocated. They double and halve as
    /// the map grows and shrinks, so owners charge their changes as they
    /// happen, as Redis counts `dictSlots` in its memory overhead.
    pub fn table_bytes(&self) -> usize {
        array_size::<Option<Box<Node<V>>>>(self.t0.len())
            + array_size::<Option<Box<Node<V>>>>(self.t1().len())
    }

    /// Looks a key up.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.get_hashed(hash_key(key), key)
    }

    /// Looks a key up with its precomputed [`hash_key`].
    pub fn get_hashed(&self, h: u64, key: &[u8]) -> Option<&V> {
        if self.len == 0 {
            return None;
        }
        for t in [&self.t0[..], self.t1()] {
            if t.is_empty() {
                continue;
            }
            if let Some(n) = chain_get(t[slot_in(t, h)].as_deref(), key) {
                return Some(&n.value);
            }
        }
        None
    }

    /// Looks a key up for modification.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.get_mut_hashed(hash_key(key), key)
    }

    /// [`Dict::get_mut`] with a precomputed hash.
    pub fn get_mut_hashed(&mut self, h: u64, key: &[u8]) -> Option<&mut V> {
        if self.len == 0 {
            return None;
        }
        for t in self.tables_mut() {
            if t.is_empty() {
                continue;
            }
            let slot = slot_in(t, h);
            let mut cur = t[slot].as_deref_mut();
            while let Some(n) = cur {
                if n.key.as_bytes() == key {
                    return Some(&mut n.value);
                }
                cur = n.next.as_deref_mut();
            }
        }
        None
    }

    /// Whether the key is present.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        self.insert_hashed(hash_key(key), key, value)
    }

    /// [`Dict::insert`] with a precomputed hash.
    pub fn insert_hashed(&mut self, h: u64, key: &[u8], value: V) -> Option<V> {
        if let Some(v) = self.get_mut_hashed(h, key) {
            return Some(std::mem::replace(v, value));
        }
        self.insert_new_hashed(h, key.into(), value);
        None
    }

    /// Inserts a key known to be absent, taking ownership of its bytes.
    pub fn insert_new_hashed(&mut self, h: u64, key: Key, value: V) {
        self.rehash_step();
        if self.rehash.is_none() && self.len >= self.t0.len() {
            self.start_resize((self.len + 1).next_power_of_two().max(4));
        }
        let t: &mut [_] = match &mut self.rehash {
            Some(r) => &mut r.t1,
            None => &mut self.t0,
        };
        let slot = slot_in(t, h);
        let next = t[slot].take();
        t[slot] = Some(Box::new(Node { key, value, next }));
        self.len += 1;
    }

    /// Removes a key; returns its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        self.remove_entry_hashed(hash_key(key), key).map(|(_, v)| v)
    }

    /// Removes a key with a precomputed hash; returns its owned key and value.
    pub fn remove_entry_hashed(&mut self, h: u64, key: &[u8]) -> Option<(Key, V)> {
        if self.len == 0 {
            return None;
        }
        let mut found = None;
        for t in self.tables_mut() {
            if t.is_empty() {
                continue;
            }
            let slot = slot_in(t, h);
            let mut link = &mut t[slot];
            loop {
                match link {
                    None => break,
                    Some(n) if n.key.as_bytes() == key => {
                        let Some(mut node) = link.take() else { break };
                        *link = node.next.take();
                        found = Some((node.key, node.value));
                        break;
                    }
                    Some(n) => link = &mut n.next,
                }
            }
            if found.is_some() {
                break;
            }
        }
        if found.is_some() {
            self.len -= 1;
            // Only a removal that happened steps a resize: callers account
            // table memory after changes, not after failed removals.
            self.rehash_step();
            self.maybe_shrink();
        }
        found
    }

    fn maybe_shrink(&mut self) {
        if self.len == 0 {
            self.t0 = Box::new([]);
            self.rehash = None;
            return;
        }
        // Redis shrinks below 10% fill; we use 1/8, keeping power-of-two sizes.
        let size = self.t0.len();
        if self.rehash.is_none() && size > 4 && self.len * 8 < size {
            self.start_resize(self.len.next_power_of_two().max(4));
        }
    }

    /// Allocates the table of `size` buckets that the entries move to.
    fn start_resize(&mut self, size: usize) {
        let t = table(size);
        if self.t0.is_empty() {
            self.t0 = t;
        } else {
            self.rehash = Some(Box::new(Rehash { t1: t, idx: 0 }));
        }
    }

    /// Moves one bucket of the old table to the new one, looking at up to
    /// [`EMPTY_VISITS`] empty buckets first (Redis's `_dictRehashStep`);
    /// the last move makes the new table the only one.
    fn rehash_step(&mut self) {
        let Some(r) = self.rehash.as_mut() else {
            return;
        };
        let mut idx = r.idx;
        let mut empty = EMPTY_VISITS;
        while idx < self.t0.len() && self.t0[idx].is_none() && empty > 0 {
            idx += 1;
            empty -= 1;
        }
        if idx < self.t0.len() && self.t0[idx].is_some() {
            let mut head = self.t0[idx].take();
            while let Some(mut n) = head {
                head = n.next.take();
                let slot = slot_in(&r.t1, hash_key(&n.key));
                n.next = r.t1[slot].take();
                r.t1[slot] = Some(n);
            }
            idx += 1;
        }
        r.idx = idx;
        if idx >= self.t0.len() {
            if let Some(r) = self.rehash.take() {
                self.t0 = r.t1;
            }
        }
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        // Drop chains iteratively so a long chain cannot overflow the stack.
        for t in self.tables_mut() {
            for head in t.iter_mut() {
                let mut cur = head.take();
                while let Some(mut n) = cur {
                    cur = n.next.take();
                }
            }
        }
        self.t0 = Box::new([]);
        self.len = 0;
        self.rehash = None;
    }

    fn visit_chain(t: &[Option<Box<Node<V>>>], i: usize, f: &mut impl FnMut(&[u8], &V)) {
        let mut cur = t[i].as_deref();
        while let Some(n) = cur {
            f(&n.key, &n.value);
            cur = n.next.as_deref();
        }
    }

    /// Visits the bucket at `cursor` and returns the next cursor (0 = done),
    /// with Redis's reverse-binary increment: keys present for a whole scan
    /// are visited at least once even if the table grows or shrinks between
    /// calls. While rehashing, the bucket of the smaller table and every
    /// bucket of the larger one it expands to are visited (`dictScan`).
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], &V)) -> u64 {
        if self.len == 0 {
            return 0;
        }
        let rev_inc = |v: u64, mask: u64| {
            let mut v = v | !mask;
            v = v.reverse_bits();
            v = v.wrapping_add(1);
            v.reverse_bits()
        };
        let mut v = cursor;
        if self.rehash.is_none() {
            let m0 = (self.t0.len() - 1) as u64;
            Self::visit_chain(&self.t0, (v & m0) as usize, &mut f);
            return rev_inc(v, m0);
        }
        let (t0, t1) = (&self.t0[..], self.t1());
        let (small, large) = if t0.len() <= t1.len() {
            (t0, t1)
        } else {
            (t1, t0)
        };
        let m0 = (small.len() - 1) as u64;
        let m1 = (large.len() - 1) as u64;
        Self::visit_chain(small, (v & m0) as usize, &mut f);
        loop {
            Self::visit_chain(large, (v & m1) as usize, &mut f);
            v = rev_inc(v, m1);
            if v & (m0 ^ m1) == 0 {
                break;
            }
        }
        v
    }

    /// Visits bucket `i` of `0..buckets()` (while rehashing, the old
    /// table's buckets not yet moved, then the new table's), for uniform
    /// random picks.
    pub fn bucket(&self, i: usize, mut f: impl FnMut(&[u8], &V)) {
        let mut cur = self.chain_at(i);
        while let Some(n) = cur {
            f(&n.key, &n.value);
            cur = n.next.as_deref();
        }
    }

    /// Iterates over every entry (KEYS, FLUSH accounting, snapshots).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> {
        self.t0.iter().chain(self.t1().iter()).flat_map(|head| {
            let mut cur = head.as_deref();
            std::iter::from_fn(move || {
                let n = cur?;
                cur = n.next.as_deref();
                Some((n.key.as_bytes(), &n.value))
            })
        })
    }

    /// The chain of bucket `i` of `0..buckets()`.
    fn chain_at(&self, i: usize) -> Option<&Node<V>> {
        let moved = self.rehash.as_ref().map_or(0, |r| r.idx);
        let left = self.t0.len() - moved;
        if i < left {
            self.t0[moved + i].as_deref()
        } else {
            self.t1().get(i - left).and_then(|b| b.as_deref())
        }
    }

    /// Up to `count` distinct entries from a run of consecutive buckets
    /// starting at a random one, like Redis's `dictGetSomeKeys`: much
    /// cheaper than `count` independent random picks, and random enough for
    /// eviction sampling. Visits at most `count * 10` buckets and never the
    /// same bucket twice (Redis's jump over empty runs can return a key
    /// twice, which wastes a sample).
    pub fn sample(
        &self,
        count: usize,
        mut rand: impl FnMut() -> u64,
        mut f: impl FnMut(&[u8], &V),
    ) {
        if self.len == 0 || count == 0 {
            return;
        }
        let count = count.min(self.len);
        let total = self.buckets();
        let mut i = (rand() as usize) % total;
        let mut found = 0;
        for _ in 0..(count * 10).min(total) {
            let mut cur = self.chain_at(i);
            while let Some(n) = cur {
                f(&n.key, &n.value);
                found += 1;
                if found == count {
                    return;
                }
                cur = n.next.as_deref();
            }
            i = (i + 1) % total;
        }
    }

    /// A uniformly chosen bucket's random entry, like `dictGetFairRandomKey`
    /// without the bias fix; `rand` supplies random numbers.
    pub fn random(&self, mut rand: impl FnMut() -> u64) -> Option<(&[u8], &V)> {
        if self.len == 0 {
            return None;
        }
        let total = self.buckets();
        loop {
            let slot = (rand() as usize) % total;
            if let Some(head) = self.chain_at(slot) {
                let mut chain_len = 0;
                let mut cur = Some(head);
                while let Some(n) = cur {
                    chain_len += 1;
                    cur = n.next.as_deref();
                }
                let mut pick = (rand() as usize) % chain_len;
                let mut cur = head;
                while pick > 0 {
                    cur = cur.next.as_deref()?;
                    pick -= 1;
                }
                return Some((&cur.key, &cur.value));
            }
        }
    }
}

impl<V: Clone> Clone for Dict<V> {
    /// A deep copy (`COPY`) in one table of the size the map would settle
    /// at.
    fn clone(&self) -> Self {
        let mut d = Dict::new();
        if self.len > 0 {
            let size = self.t0.len().max(self.t1().len());
            d.t0 = table(size);
            for (k, v) in self.iter() {
                let slot = bucket_hash(hash_key(k)) & (size - 1);
                let next = d.t0[slot].take();
                d.t0[slot] = Some(Box::new(Node {
                    key: k.into(),
                    value: v.clone(),
                    next,
                }));
            }
            d.len = self.len;
        }
        d
    }
}

impl<V> std::fmt::Debug for Dict<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Dict(len={})", self.len)
    }
}

impl<V> Drop for Dict<V> {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    proptest! {
        #[test]
        fn behaves_like_a_btreemap(ops in proptest::collection::vec((0u8..3, 0u16..200, any::<u32>()), 0..600)) {
            let mut d = Dict::new();
            let mut m = BTreeMap::new();
            for (op, k, v) in ops {
                let key = k.to_be_bytes();
                match op {
                    0 => prop_assert_eq!(d.insert(&key, v), m.insert(key, v)),
                    1 => prop_assert_eq!(d.remove(&key), m.remove(&key)),
                    _ => prop_assert_eq!(d.get(&key), m.get(&key)),
                }
                prop_assert_eq!(d.len(), m.len());
            }
            let mut all: Vec<_> = d.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
            all.sort();
            let want: Vec<_> = m.iter().map(|(k, v)| (k.to_vec(), *v)).collect();
            prop_assert_eq!(all, want);
        }

        // Keys present for the whole scan are returned, whatever is added or
        // removed (and however the table resizes) between cursor steps.
        #[test]
        fn scan_returns_every_stable_key(stable in 1u32..300, churn in proptest::collection::vec((any::<bool>(), 1000u32..3000), 0..400)) {
            let mut d = Dict::new();
            for i in 0..stable {
                d.insert(&i.to_be_bytes(), ());
            }
            let mut seen = BTreeSet::new();
            let mut cursor = 0;
            let mut churn = churn.into_iter();
            loop {
                cursor = d.scan(cursor, |k, _| { seen.insert(k.to_vec()); });
                for _ in 0..3 {
                    if let Some((add, k)) = churn.next() {
                        if add { d.insert(&k.to_be_bytes(), ()); } else { d.remove(&k.to_be_bytes()); }
                    }
                }
                if cursor == 0 { break; }
            }
            for i in 0..stable {
                prop_assert!(seen.contains(i.to_be_bytes().as_slice()));
            }
        }
    }

    /// A resize moves a bucket (or skips ten empty ones) per insertion or
    /// removal instead of all at once, keeps every key reachable meanwhile,
    /// and is over within as many operations as the old table had buckets.
    #[test]
    fn resizes_are_incremental() {
        let mut d = Dict::new();
        for i in 0u32..1024 {
            d.insert(&i.to_be_bytes(), i);
        }
        assert!(!d.is_rehashing());
        d.insert(&1024u32.to_be_bytes(), 1024);
        assert!(d.is_rehashing(), "growth past 1024 starts a resize");
        let mut ops = 0;
        let mut next = 1025u32;
        while d.is_rehashing() {
            d.insert(&next.to_be_bytes(), next);
            next += 1;
            ops += 1;
            for probe in [0u32, 511, 1023, next - 1] {
                assert_eq!(d.get(&probe.to_be_bytes()), Some(&probe));
            }
            assert!(ops <= 1024, "resize never ended");
        }
        assert!(
            ops > 100,
            "resize ended after {ops} inserts: not incremental"
        );
        assert_eq!(d.len(), next as usize);
        assert_eq!(d.iter().count(), next as usize);
        assert_eq!(d.buckets(), 2048);
        // Shrinking is incremental too.
        for i in 0..next - 10 {
            d.remove(&i.to_be_bytes());
        }
        while d.is_rehashing() {
            d.insert(b"x", 0);
            d.remove(b"x");
        }
        assert!(d.buckets() <= 32, "{}", d.buckets());
        assert_eq!(d.len(), 10);
    }

    #[test]
    fn sample_returns_distinct_present_keys() {
        let mut d = Dict::new();
        for i in 0u32..1000 {
            d.insert(&i.to_be_bytes(), i);
        }
        let mut x = 99u64;
        let mut rand = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let mut got = Vec::new();
            d.sample(5, &mut rand, |k, v| got.push((k.to_vec(), *v)));
            assert_eq!(got.len(), 5);
            let distinct: std::collections::HashSet<_> = got.iter().map(|g| g.0.clone()).collect();
            assert_eq!(distinct.len(), 5);
            for (k, v) in got {
                assert_eq!(k, v.to_be_bytes());
                seen.insert(v);
            }
        }
        // Random starting points spread over the table.
        assert!(
            seen.len() > 500,
            "only {} distinct keys sampled",
            seen.len()
        );
        let mut small = Dict::new();
        small.insert(b"only", 1);
        let mut n = 0;
        small.sample(5, &mut rand, |_, _| n += 1);
        assert_eq!(n, 1);
    }

    #[test]
    fn random_finds_only_present_keys() {
        let mut d = Dict::new();
        for i in 0u32..100 {
            d.insert(&i.to_be_bytes(), i);
        }
        for i in 0u32..95 {
            d.remove(&i.to_be_bytes());
        }
        let mut x = 12345u64;
        for _ in 0..200 {
            let (_, v) = d
                .random(|| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                })
                .unwrap();
            assert!(*v >= 95);
        }
    }
}
