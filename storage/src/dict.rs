//! A chained hash table in the shape of Redis's `dict`.
//!
//! We need two things no general-purpose map exposes: Redis's `SCAN`
//! guarantee (every key present for the whole scan is returned at least once,
//! across resizes), which comes from walking buckets with a reverse-binary
//! cursor; and uniform random sampling (`RANDOMKEY`, active expiry,
//! eviction pools), which needs random bucket access. So the table is a
//! power-of-two vector of singly linked chains, like `dict.c`.
//!
//! Resizes rehash in one step rather than incrementally; each shard's table
//! is small (the keyspace is split into many shards), which bounds the pause.

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

/// A map from byte keys to `V` with cursor scans and random sampling.
pub struct Dict<V> {
    table: Vec<Option<Box<Node<V>>>>,
    len: usize,
}

impl<V> Default for Dict<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> Dict<V> {
    /// An empty map; no table is allocated until the first insert.
    pub fn new() -> Self {
        Dict {
            table: Vec::new(),
            len: 0,
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

    /// Number of buckets (for memory estimates and `DEBUG HTSTATS`-like output).
    pub fn buckets(&self) -> usize {
        self.table.len()
    }

    /// Bytes of one entry's chain node as allocated (a key longer than
    /// [`crate::key::INLINE`] adds its own allocation: [`Key::heap_size`]).
    pub const NODE_BYTES: usize = alloc_size(std::mem::size_of::<Node<V>>());

    /// Bytes of the bucket array as allocated. It doubles and halves as the
    /// map grows and shrinks, so owners charge its changes as they happen,
    /// as Redis counts `dictSlots` in its memory overhead.
    pub fn table_bytes(&self) -> usize {
        array_size::<Option<Box<Node<V>>>>(self.table.capacity())
    }

    #[inline]
    fn slot(&self, h: u64) -> usize {
        bucket_hash(h) & (self.table.len() - 1)
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
        let mut cur = self.table[self.slot(h)].as_deref();
        while let Some(n) = cur {
            if n.key.as_bytes() == key {
                return Some(&n.value);
            }
            cur = n.next.as_deref();
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
        let slot = self.slot(h);
        let mut cur = self.table[slot].as_deref_mut();
        while let Some(n) = cur {
            if n.key.as_bytes() == key {
                return Some(&mut n.value);
            }
            cur = n.next.as_deref_mut();
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
        if self.len >= self.table.len() {
            self.resize((self.len + 1).next_power_of_two().max(4));
        }
        let slot = self.slot(h);
        let next = self.table[slot].take();
        self.table[slot] = Some(Box::new(Node { key, value, next }));
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
        let slot = self.slot(h);
        let mut link = &mut self.table[slot];
        loop {
            match link {
                None => return None,
                Some(n) if n.key.as_bytes() == key => {
                    let mut node = link.take()?;
                    *link = node.next.take();
                    self.len -= 1;
                    self.maybe_shrink();
                    return Some((node.key, node.value));
                }
                Some(n) => link = &mut n.next,
            }
        }
    }

    fn maybe_shrink(&mut self) {
        // Redis shrinks below 10% fill; we use 1/8, keeping power-of-two sizes.
        let size = self.table.len();
        if size > 4 && self.len * 8 < size {
            self.resize(self.len.next_power_of_two().max(4));
        }
        if self.len == 0 && size > 0 {
            self.table = Vec::new();
        }
    }

    fn resize(&mut self, size: usize) {
        let old = std::mem::take(&mut self.table);
        self.table.resize_with(size, || None);
        for mut head in old {
            while let Some(mut n) = head {
                head = n.next.take();
                let slot = bucket_hash(hash_key(&n.key)) & (size - 1);
                n.next = self.table[slot].take();
                self.table[slot] = Some(n);
            }
        }
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        // Drop chains iteratively so a long chain cannot overflow the stack.
        for head in self.table.iter_mut() {
            let mut cur = head.take();
            while let Some(mut n) = cur {
                cur = n.next.take();
            }
        }
        self.table = Vec::new();
        self.len = 0;
    }

    /// Visits the bucket at `cursor` and returns the next cursor (0 = done),
    /// with Redis's reverse-binary increment: keys present for a whole scan
    /// are visited at least once even if the table grows or shrinks between calls.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], &V)) -> u64 {
        if self.table.is_empty() {
            return 0;
        }
        let mask = (self.table.len() - 1) as u64;
        let mut cur = self.table[(cursor & mask) as usize].as_deref();
        while let Some(n) = cur {
            f(&n.key, &n.value);
            cur = n.next.as_deref();
        }
        let mut v = cursor | !mask;
        v = v.reverse_bits();
        v = v.wrapping_add(1);
        v.reverse_bits()
    }

    /// Iterates over every entry (KEYS, FLUSH accounting, snapshots).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> {
        self.table.iter().flat_map(|head| {
            let mut cur = head.as_deref();
            std::iter::from_fn(move || {
                let n = cur?;
                cur = n.next.as_deref();
                Some((n.key.as_bytes(), &n.value))
            })
        })
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
        let mask = self.table.len() - 1;
        let mut i = (rand() as usize) & mask;
        let mut found = 0;
        for _ in 0..(count * 10).min(self.table.len()) {
            let mut cur = self.table[i].as_deref();
            while let Some(n) = cur {
                f(&n.key, &n.value);
                found += 1;
                if found == count {
                    return;
                }
                cur = n.next.as_deref();
            }
            i = (i + 1) & mask;
        }
    }

    /// A uniformly chosen bucket's random entry, like `dictGetFairRandomKey`
    /// without the bias fix; `rand` supplies random numbers.
    pub fn random(&self, mut rand: impl FnMut() -> u64) -> Option<(&[u8], &V)> {
        if self.len == 0 {
            return None;
        }
        let mask = self.table.len() - 1;
        loop {
            let slot = (rand() as usize) & mask;
            if let Some(head) = self.table[slot].as_deref() {
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
    /// A deep copy (`COPY`); chains are rebuilt in the same buckets.
    fn clone(&self) -> Self {
        let mut d = Dict::new();
        if !self.table.is_empty() {
            d.table.resize_with(self.table.len(), || None);
            for (k, v) in self.iter() {
                let slot = bucket_hash(hash_key(k)) & (d.table.len() - 1);
                let next = d.table[slot].take();
                d.table[slot] = Some(Box::new(Node {
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
