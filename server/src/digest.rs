//! `DEBUG DIGEST` / `DEBUG DIGEST-VALUE`: a fingerprint of the dataset or of
//! single values, the way Redis's test suite compares a key with its `COPY`,
//! a dataset before and after a reload, or a primary with its replica.
//!
//! Like Redis's `debug.c`, ordered data (strings, lists, sorted sets) is
//! hashed in order and unordered data (sets, hashes, the keyspace) is
//! combined with XOR, so equal contents give equal digests whatever the
//! internal order or encoding. The hash is xxh3-128 rather than SHA-1: the
//! digest is only ever compared with another digest from the same server.

use ferrite_storage::{StreamId, Value};
use xxhash_rust::xxh3::xxh3_128;

/// 20 bytes, printed as 40 hex characters like Redis's SHA-1 digests.
pub type Digest = [u8; 20];

fn widen(h: u128, salt: u8) -> Digest {
    let mut d = [0u8; 20];
    d[..16].copy_from_slice(&h.to_le_bytes());
    let tail = xxh3_128(&[&h.to_le_bytes()[..], &[salt]].concat());
    d[16..].copy_from_slice(&tail.to_le_bytes()[..4]);
    d
}

fn xor(into: &mut Digest, d: &Digest) {
    for (a, b) in into.iter_mut().zip(d) {
        *a ^= b;
    }
}

/// An order-sensitive accumulator (`mixDigest`).
struct Ordered(Vec<u8>);

impl Ordered {
    fn mix(&mut self, bytes: &[u8]) {
        self.0
            .extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        self.0.extend_from_slice(bytes);
        let h = xxh3_128(&self.0);
        self.0.clear();
        self.0.extend_from_slice(&h.to_le_bytes());
    }

    fn finish(self) -> u128 {
        xxh3_128(&self.0)
    }
}

fn mix_all(parts: &[&[u8]]) -> u128 {
    let mut o = Ordered(Vec::new());
    for p in parts {
        o.mix(p);
    }
    o.finish()
}

/// The digest of one value (`DEBUG DIGEST-VALUE`).
pub fn value_digest(v: &Value) -> Digest {
    let mut acc;
    match v {
        Value::Str { bytes, .. } => acc = widen(mix_all(&[b"string", bytes]), 0),
        Value::List(l) => {
            let mut o = Ordered(b"list".to_vec());
            for e in l.iter() {
                o.mix(e);
            }
            acc = widen(o.finish(), 1);
        }
        Value::Set(s) => {
            acc = widen(mix_all(&[b"set"]), 2);
            for m in s.iter() {
                m.with_bytes(|b| xor(&mut acc, &widen(mix_all(&[b]), 2)));
            }
        }
        Value::Hash(h) => {
            acc = widen(mix_all(&[b"hash"]), 3);
            for (f, x) in h.iter() {
                xor(&mut acc, &widen(mix_all(&[f, x]), 3));
            }
        }
        Value::ZSet(z) => {
            let mut o = Ordered(b"zset".to_vec());
            for (m, score) in z.iter() {
                o.mix(m);
                o.mix(&score.to_bits().to_le_bytes());
            }
            acc = widen(o.finish(), 4);
        }
        Value::Bloom(b) => {
            // Parameters and bits of every sub-filter, in chain order.
            let mut o = Ordered(b"MBbloom--".to_vec());
            o.mix(&b.expansion().unwrap_or(0).to_le_bytes());
            o.mix(&b.items().to_le_bytes());
            for f in b.filters() {
                o.mix(&f.capacity().to_le_bytes());
                o.mix(&f.count().to_le_bytes());
                o.mix(&f.error().to_bits().to_le_bytes());
                o.mix(&f.nbits().to_le_bytes());
                let bits: Vec<u8> = f.words().iter().flat_map(|w| w.to_le_bytes()).collect();
                o.mix(&bits);
            }
            acc = widen(o.finish(), 6);
        }
        Value::Stream(st) => {
            // Entries in ID order, the stream's counters, then each group
            // with its PEL and consumers (all in their maps' order).
            let mut o = Ordered(b"stream".to_vec());
            for (id, f) in st.range(StreamId::MIN, StreamId::MAX) {
                o.mix(&id.to_be_bytes());
                for x in f.iter() {
                    o.mix(x);
                }
            }
            for id in [st.last_id, st.first_id, st.max_deleted_entry_id] {
                o.mix(&id.to_be_bytes());
            }
            o.mix(&st.entries_added.to_le_bytes());
            for (name, g) in &st.groups {
                o.mix(name);
                o.mix(&g.last_id.to_be_bytes());
                o.mix(&g.entries_read.to_le_bytes());
                for (id, n) in &g.pel {
                    o.mix(&id.to_be_bytes());
                    o.mix(&n.consumer);
                    o.mix(&n.delivery_time.to_le_bytes());
                    o.mix(&n.delivery_count.to_le_bytes());
                }
                for cname in g.consumers.keys() {
                    o.mix(cname);
                }
            }
            acc = widen(o.finish(), 7);
        }
    }
    acc
}

/// The contribution of one key to the dataset digest: key, value and TTL
/// mixed, to be XORed with the others.
pub fn key_digest(db: usize, key: &[u8], v: &Value, expire_at: i64) -> Digest {
    let vd = value_digest(v);
    widen(
        mix_all(&[
            &(db as u64).to_le_bytes(),
            key,
            &vd,
            &expire_at.to_le_bytes(),
        ]),
        5,
    )
}

/// Adds `d` into an unordered accumulator.
pub fn accumulate(acc: &mut Digest, d: &Digest) {
    xor(acc, d);
}

/// 40 lowercase hex characters.
pub fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_storage::{EncodingLimits, Hash, List};

    #[test]
    fn equal_contents_give_equal_digests_whatever_the_order() {
        let lim = EncodingLimits::default();
        let mut a = Hash::new();
        a.set(b"f1", b"v1", &lim);
        a.set(b"f2", b"v2", &lim);
        let mut b = Hash::new();
        b.set(b"f2", b"v2", &lim);
        b.set(b"f1", b"v1", &lim);
        assert_eq!(value_digest(&Value::Hash(a)), value_digest(&Value::Hash(b)));

        let mut l1 = List::new();
        l1.push_back(b"a");
        l1.push_back(b"b");
        let mut l2 = List::new();
        l2.push_back(b"b");
        l2.push_back(b"a");
        assert_ne!(
            value_digest(&Value::List(l1)),
            value_digest(&Value::List(l2))
        );
        assert_ne!(
            value_digest(&Value::string(&b"ab"[..])),
            value_digest(&Value::string(&b"ba"[..]))
        );
    }
}
