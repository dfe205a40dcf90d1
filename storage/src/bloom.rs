//! Scalable Bloom filters with RedisBloom's semantics (`BF.*`).
//!
//! A filter is a chain of sub-filters. The first holds `capacity` items at
//! the requested error rate; when the newest is full, a scaling filter
//! stacks another with `capacity × expansion` room and half the error rate
//! (RedisBloom's `ERROR_TIGHTENING_RATIO`), so the compound false-positive
//! rate stays below `error × (1 + 1/2 + 1/4 + ...)`, i.e. under 2× the
//! requested rate however far it grows.
//!
//! Sizing follows the textbook formulas RedisBloom uses (without rounding
//! the bit count to a power of two): `bits per item = -ln p / ln² 2`,
//! `k = ceil(ln 2 · bits per item)`. An item is hashed once with xxh3-128;
//! its two 64-bit halves drive Kirsch–Mitzenmacher double hashing
//! (`h1 + i·h2 mod m`) in every sub-filter, so a lookup across a deep chain
//! still costs one hash of the item.
//!
//! Bits live in a `Vec<u64>` rather than a `bitvec::BitVec`: the only
//! operations are "set bit i" and "test bit i", which are two lines over
//! words; words are also what a digest or a dump reads in bulk, and no
//! extra dependency has to be built.

use xxhash_rust::xxh3::xxh3_128;

/// RedisBloom's default error rate (`BF.ADD` on a missing key).
pub const DEFAULT_ERROR_RATE: f64 = 0.01;
/// RedisBloom's default initial capacity.
pub const DEFAULT_CAPACITY: u64 = 100;
/// RedisBloom's default expansion factor.
pub const DEFAULT_EXPANSION: u64 = 2;
/// Each new sub-filter's error rate is the previous one's times this.
pub const ERROR_TIGHTENING_RATIO: f64 = 0.5;
/// The largest single sub-filter we allocate, in bytes. A request beyond it
/// (a huge capacity, a tiny error rate, or growth far past it) is refused
/// instead of aborting the process on allocation failure: client input must
/// never be able to ask for terabytes.
pub const MAX_FILTER_BYTES: u64 = 1 << 30;

/// Why a filter could not be created or grown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BloomError {
    /// The sub-filter would exceed [`MAX_FILTER_BYTES`] (or the arithmetic
    /// overflowed): RedisBloom's "could not create filter".
    TooLarge,
    /// A non-scaling filter has reached its capacity.
    Full,
}

/// One fixed-size Bloom filter of the chain.
#[derive(Debug, Clone)]
pub struct SubFilter {
    words: Vec<u64>,
    nbits: u64,
    hashes: u32,
    capacity: u64,
    count: u64,
    error: f64,
}

impl SubFilter {
    fn new(capacity: u64, error: f64) -> Result<SubFilter, BloomError> {
        let bpe = bits_per_item(error);
        let bits = (capacity as f64 * bpe).floor();
        if !bits.is_finite() || bits / 8.0 > MAX_FILTER_BYTES as f64 {
            return Err(BloomError::TooLarge);
        }
        let nbits = (bits as u64).max(1);
        let hashes = (std::f64::consts::LN_2 * bpe).ceil().max(1.0) as u32;
        let words = vec![0u64; nbits.div_ceil(64) as usize];
        Ok(SubFilter {
            words,
            nbits,
            hashes,
            capacity,
            count: 0,
            error,
        })
    }

    #[inline]
    fn positions(&self, h: (u64, u64)) -> impl Iterator<Item = u64> + '_ {
        let (h1, h2) = h;
        (0..u64::from(self.hashes)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % self.nbits)
    }

    #[inline]
    fn contains_hash(&self, h: (u64, u64)) -> bool {
        self.positions(h)
            .all(|b| self.words[(b >> 6) as usize] & (1 << (b & 63)) != 0)
    }

    /// Sets the item's bits; whether any bit changed (the item was new).
    #[inline]
    fn insert_hash(&mut self, h: (u64, u64)) -> bool {
        let (h1, h2) = h;
        let mut changed = false;
        for i in 0..u64::from(self.hashes) {
            let b = h1.wrapping_add(i.wrapping_mul(h2)) % self.nbits;
            let w = &mut self.words[(b >> 6) as usize];
            let m = 1u64 << (b & 63);
            changed |= *w & m == 0;
            *w |= m;
        }
        changed
    }

    /// Items this sub-filter was sized for.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Items added to it.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Its target false-positive rate.
    pub fn error(&self) -> f64 {
        self.error
    }

    /// Number of bits (m).
    pub fn nbits(&self) -> u64 {
        self.nbits
    }

    /// Number of hash functions (k).
    pub fn hashes(&self) -> u32 {
        self.hashes
    }

    /// The bit array, 64 bits a word, bit i at word i/64, bit i%64.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Bytes of the bit array as RedisBloom counts them (`ceil(m/8)`).
    pub fn bytes(&self) -> u64 {
        self.nbits.div_ceil(8)
    }
}

/// Optimal bits per item for a false-positive rate `p`: `-ln p / ln² 2`.
pub fn bits_per_item(p: f64) -> f64 {
    -p.ln() / (std::f64::consts::LN_2 * std::f64::consts::LN_2)
}

/// The two 64-bit hashes of an item.
#[inline]
fn hash(item: &[u8]) -> (u64, u64) {
    let h = xxh3_128(item);
    // An even h2 would only visit part of the positions when m is even;
    // forcing it odd keeps the k probes distinct for power-of-two m.
    (h as u64, ((h >> 64) as u64) | 1)
}

/// A scalable Bloom filter (RedisBloom's `SBChain`).
#[derive(Debug, Clone)]
pub struct Bloom {
    filters: Vec<SubFilter>,
    expansion: u64,
    nonscaling: bool,
    items: u64,
    /// Sum of the sub-filters' word bytes, kept so `mem_usage` is O(1).
    heap: usize,
}

/// What RedisBloom's `BF.INFO SIZE` counts besides the bit arrays: the chain
/// header and one link header per sub-filter. Chosen so that a default
/// filter (100 items at 1%) reports 240 bytes, as RedisBloom 2.x does.
const CHAIN_OVERHEAD: u64 = 56;
const LINK_OVERHEAD: u64 = 64;

impl Bloom {
    /// A new empty filter. `error` must be in (0, 1), `capacity` and
    /// `expansion` at least 1 (the commands check and word the errors).
    pub fn new(
        error: f64,
        capacity: u64,
        expansion: u64,
        nonscaling: bool,
    ) -> Result<Bloom, BloomError> {
        let first = SubFilter::new(capacity.max(1), error)?;
        let heap = first.words.capacity() * 8;
        Ok(Bloom {
            filters: vec![first],
            expansion: expansion.max(1),
            nonscaling,
            items: 0,
            heap,
        })
    }

    /// Whether the item may have been added (never false for an added item).
    pub fn contains(&self, item: &[u8]) -> bool {
        let h = hash(item);
        self.filters.iter().any(|f| f.contains_hash(h))
    }

    /// Adds an item: `Ok(true)` if it was new, `Ok(false)` if it (probably)
    /// was already there, which leaves the filter unchanged. Like
    /// RedisBloom's `SBChain_Add`: every sub-filter is checked first, then
    /// the newest one gets the bits, after a new one is stacked if it is full.
    pub fn add(&mut self, item: &[u8]) -> Result<bool, BloomError> {
        let h = hash(item);
        if self.filters.iter().any(|f| f.contains_hash(h)) {
            return Ok(false);
        }
        let last = self.filters.last().ok_or(BloomError::TooLarge)?;
        if last.count >= last.capacity {
            if self.nonscaling {
                return Err(BloomError::Full);
            }
            let cap = last
                .capacity
                .checked_mul(self.expansion)
                .ok_or(BloomError::TooLarge)?;
            let next = SubFilter::new(cap, last.error * ERROR_TIGHTENING_RATIO)?;
            self.heap += next.words.capacity() * 8;
            self.filters.push(next);
        }
        let cur = self.filters.last_mut().ok_or(BloomError::TooLarge)?;
        if !cur.insert_hash(h) {
            return Ok(false);
        }
        cur.count += 1;
        self.items += 1;
        Ok(true)
    }

    /// Total capacity of all sub-filters (`BF.INFO CAPACITY`).
    pub fn capacity(&self) -> u64 {
        self.filters
            .iter()
            .fold(0u64, |a, f| a.saturating_add(f.capacity))
    }

    /// Items added (`BF.CARD`, `BF.INFO ITEMS`).
    pub fn items(&self) -> u64 {
        self.items
    }

    /// The sub-filters, oldest first.
    pub fn filters(&self) -> &[SubFilter] {
        &self.filters
    }

    /// The expansion factor, `None` for a non-scaling filter
    /// (`BF.INFO EXPANSION` answers nil then).
    pub fn expansion(&self) -> Option<u64> {
        (!self.nonscaling).then_some(self.expansion)
    }

    /// Whether the filter refuses to grow.
    pub fn is_nonscaling(&self) -> bool {
        self.nonscaling
    }

    /// `BF.INFO SIZE`: bytes as RedisBloom's `BFMemUsage` reports them.
    pub fn size(&self) -> u64 {
        self.filters
            .iter()
            .fold(CHAIN_OVERHEAD, |a, f| a + LINK_OVERHEAD + f.bytes())
    }

    /// Heap bytes owned, for `used_memory` (O(1)).
    pub fn mem_usage(&self) -> usize {
        self.heap + self.filters.capacity() * std::mem::size_of::<SubFilter>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Items `tag:i` for `i` in `range`, as bytes.
    fn item(tag: u8, i: u64) -> [u8; 9] {
        let mut b = [tag; 9];
        b[1..].copy_from_slice(&i.to_le_bytes());
        b
    }

    /// Inserts `n` items, then measures the false-positive rate over
    /// `probes` items never inserted. Returns (fpr, bits per item of the
    /// first sub-filter, formula bits per item, filters).
    fn measure(cap: u64, p: f64, n: u64, probes: u64) -> (f64, f64, f64, usize) {
        let mut b = Bloom::new(p, cap, 2, false).unwrap();
        for i in 0..n {
            b.add(&item(b'a', i)).unwrap();
        }
        let fp = (0..probes).filter(|&i| b.contains(&item(b'z', i))).count();
        let first = &b.filters()[0];
        let mem_bits = (first.words().len() * 64) as f64 / cap as f64;
        (
            fp as f64 / probes as f64,
            mem_bits,
            bits_per_item(p),
            b.filters().len(),
        )
    }

    fn check_accuracy(cap: u64, p: f64, probes: u64) {
        let (fpr, mem, formula, nf) = measure(cap, p, cap, probes);
        println!(
            "cap={cap:>8} p={p:<6} filled 1x: fpr={fpr:.6} ({:.3}x) filters={nf} mem/item={mem:.3} bits formula={formula:.3} ({:+.2}%)",
            fpr / p,
            (mem / formula - 1.0) * 100.0
        );
        assert!(fpr <= 1.1 * p, "fpr {fpr} > 1.1 x {p}");
        assert!(
            (mem / formula - 1.0).abs() <= 0.10,
            "mem {mem} vs {formula}"
        );
        let (fpr4, _, _, nf4) = measure(cap, p, 4 * cap, probes);
        println!(
            "cap={cap:>8} p={p:<6} filled 4x: fpr={fpr4:.6} ({:.3}x) filters={nf4}",
            fpr4 / p
        );
        assert!(fpr4 <= 2.0 * p, "scaled fpr {fpr4} > 2 x {p}");
    }

    #[test]
    fn bloom_accuracy_small() {
        check_accuracy(1_000, 0.01, 1_000_000);
        check_accuracy(1_000, 0.001, 1_000_000);
    }

    /// The full matrix of issue 7 (run in release: `cargo test --release -p
    /// ferrite-storage bloom_accuracy -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn bloom_accuracy_full() {
        for cap in [1_000, 100_000, 1_000_000] {
            for p in [0.01, 0.001] {
                check_accuracy(cap, p, 1_000_000);
            }
        }
    }

    #[test]
    fn default_filter_matches_redisbloom_sizes() {
        let b = Bloom::new(DEFAULT_ERROR_RATE, DEFAULT_CAPACITY, 2, false).unwrap();
        let f = &b.filters()[0];
        assert_eq!(f.hashes(), 7);
        assert_eq!(f.nbits(), 958);
        assert_eq!(b.size(), 240);
        assert_eq!(b.capacity(), 100);
        assert_eq!(b.expansion(), Some(2));
    }

    #[test]
    fn scaling_stacks_tighter_filters_and_nonscaling_fills() {
        let mut b = Bloom::new(0.01, 10, 3, false).unwrap();
        let mut added = 0;
        for i in 0..100 {
            added += u64::from(b.add(&item(b'a', i)).unwrap());
        }
        assert_eq!(b.items(), added);
        assert!(b.filters().len() >= 3);
        assert_eq!(b.filters()[1].capacity(), 30);
        assert!((b.filters()[1].error() - 0.005).abs() < 1e-12);
        let mut n = Bloom::new(0.01, 2, 2, true).unwrap();
        assert_eq!(n.add(b"a"), Ok(true));
        assert_eq!(n.add(b"b"), Ok(true));
        assert_eq!(n.add(b"a"), Ok(false));
        assert_eq!(n.add(b"c"), Err(BloomError::Full));
        assert_eq!(n.expansion(), None);
    }

    #[test]
    fn huge_requests_are_refused_not_allocated() {
        assert_eq!(
            Bloom::new(0.01, u64::MAX, 2, false).err(),
            Some(BloomError::TooLarge)
        );
        assert_eq!(
            Bloom::new(1e-300, 1 << 30, 2, false).err(),
            Some(BloomError::TooLarge)
        );
        // Growth that would overflow stops with an error, not a panic.
        let mut b = Bloom::new(0.01, 1, u64::MAX, false).unwrap();
        assert_eq!(b.add(b"a"), Ok(true));
        let errs = (0..100u64)
            .filter(|i| b.add(&i.to_le_bytes()) == Err(BloomError::TooLarge))
            .count();
        assert!(errs > 90, "{errs}");
        assert_eq!(b.filters().len(), 1);
    }

    proptest! {
        #[test]
        fn no_false_negatives(
            items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 1..400),
            cap in 1u64..64,
            exp in 1u64..4,
        ) {
            let mut b = Bloom::new(0.01, cap, exp, false).unwrap();
            for it in &items {
                b.add(it).unwrap();
            }
            for it in &items {
                prop_assert!(b.contains(it));
            }
        }
    }
}
