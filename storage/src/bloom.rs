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

use crate::mem::array_size;
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
    /// Bytes of the bit array as allocated.
    fn words_mem(&self) -> usize {
        array_size::<u64>(self.words.capacity())
    }

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
        let heap = first.words_mem();
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
            self.heap += next.words_mem();
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

    /// Heap bytes owned as allocated, for `used_memory` (O(1)).
    pub fn mem_usage(&self) -> usize {
        self.heap + array_size::<SubFilter>(self.filters.capacity())
    }
}

/// `BF.SCANDUMP`'s largest data chunk, RedisBloom's `MAX_SCANDUMP_SIZE`.
pub const MAX_SCANDUMP_CHUNK: usize = 16 * 1024 * 1024;
/// The most bit-array bytes a loaded header may claim across all its
/// sub-filters. Memory is taken when the header is loaded, before any data
/// arrives, so a forged header must not be able to ask for unbounded room.
pub const MAX_CHAIN_BYTES: u64 = 4 * MAX_FILTER_BYTES;

/// Bytes of the chain part of a dump header (`dumpedChainHeader`).
pub const DUMP_HEADER_LEN: usize = 8 + 4 + 4 + 4;
/// Bytes of one sub-filter's record in a dump header (`dumpedChainLink`).
pub const DUMP_LINK_LEN: usize = 8 + 8 + 8 + 8 + 8 + 4 + 8 + 1;

/// RedisBloom's `BLOOM_OPT_NOROUND`: bit counts are not rounded to powers of 2.
pub const OPT_NOROUND: u32 = 1;
/// RedisBloom's `BLOOM_OPT_FORCE64`: 64-bit hashing.
pub const OPT_FORCE64: u32 = 4;
/// RedisBloom's `BLOOM_OPT_NO_SCALING`.
pub const OPT_NO_SCALING: u32 = 8;
/// Ferrite's own option bit: the bits were set with xxh3-128 and
/// Kirsch–Mitzenmacher probing modulo `bits`, not RedisBloom's
/// MurmurHash64A probing. RedisBloom rejects a header carrying an option it
/// does not know ("ERR received bad data"), and Ferrite rejects a header
/// without this bit, so a dump can never be loaded by the other server
/// into a filter that would silently give false negatives.
pub const OPT_FERRITE_XXH3: u32 = 1 << 16;
/// The options every Ferrite dump carries (plus [`OPT_NO_SCALING`]).
const DUMP_BASE_OPTIONS: u32 = OPT_NOROUND | OPT_FORCE64 | OPT_FERRITE_XXH3;

/// Why a dump could not be written or a chunk could not be loaded. The
/// texts are RedisBloom's (`sb.c`), given by [`DumpError::message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpError {
    /// A malformed or foreign header, or a chunk whose iterator does not
    /// fit its length: "ERR received bad data".
    BadData,
    /// The chunk's offset lies beyond the bit arrays: "ERR invalid offset -
    /// no link found".
    NoLink,
    /// The chunk runs past the end of its sub-filter: "ERR invalid chunk -
    /// Too big for current filter".
    TooBig,
    /// The expansion factor does not fit the header's 32-bit field (Ferrite
    /// accepts larger ones than RedisBloom can encode).
    Unencodable,
}

impl DumpError {
    /// The error reply, with its code.
    pub fn message(self) -> &'static str {
        match self {
            DumpError::BadData => "ERR received bad data",
            DumpError::NoLink => "ERR invalid offset - no link found",
            DumpError::TooBig => "ERR invalid chunk - Too big for current filter",
            DumpError::Unencodable => "ERR expansion rate too large to dump",
        }
    }
}

/// Little-endian field reader over a header that was length-checked.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DumpError> {
        let (head, rest) = self.0.split_at_checked(N).ok_or(DumpError::BadData)?;
        self.0 = rest;
        head.try_into().map_err(|_| DumpError::BadData)
    }
    fn u8(&mut self) -> Result<u8, DumpError> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, DumpError> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, DumpError> {
        self.take().map(u64::from_le_bytes)
    }
    fn f64(&mut self) -> Result<f64, DumpError> {
        self.take().map(f64::from_le_bytes)
    }
}

/// One sub-filter's geometry as a dump or a snapshot records it; checked
/// before anything is allocated, since it may come from a forged file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkImage {
    /// Items the sub-filter was sized for.
    pub capacity: u64,
    /// Items added to it.
    pub count: u64,
    /// Its target false-positive rate.
    pub error: f64,
    /// Hash functions (k); must be what `error` gives.
    pub hashes: u32,
    /// Bits (the probe modulus, m).
    pub nbits: u64,
}

impl LinkImage {
    /// Bytes of its bit array: `nbits` rounded up to whole 64-bit words.
    pub fn bytes(&self) -> u64 {
        self.nbits.div_ceil(64) * 8
    }

    /// An empty sub-filter of this geometry, after every check a loaded
    /// filter needs so later lookups cannot misbehave; adds its bytes and
    /// items to the chain's running totals, which are bounded too.
    fn empty_filter(
        &self,
        total_bytes: &mut u64,
        total_items: &mut u64,
    ) -> Result<SubFilter, DumpError> {
        let want_hashes = (std::f64::consts::LN_2 * bits_per_item(self.error))
            .ceil()
            .max(1.0);
        let ok = self.error > 0.0
            && self.error < 1.0
            && self.nbits >= 1
            && self.capacity >= 1
            && f64::from(self.hashes) == want_hashes
            && self.bytes() <= MAX_FILTER_BYTES;
        if !ok {
            return Err(DumpError::BadData);
        }
        *total_bytes += self.bytes();
        *total_items = total_items
            .checked_add(self.count)
            .ok_or(DumpError::BadData)?;
        if *total_bytes > MAX_CHAIN_BYTES {
            return Err(DumpError::BadData);
        }
        Ok(SubFilter {
            words: vec![0u64; self.nbits.div_ceil(64) as usize],
            nbits: self.nbits,
            hashes: self.hashes,
            capacity: self.capacity,
            count: self.count,
            error: self.error,
        })
    }
}

impl SubFilter {
    /// Its geometry, for a snapshot.
    pub fn image(&self) -> LinkImage {
        LinkImage {
            capacity: self.capacity,
            count: self.count,
            error: self.error,
            hashes: self.hashes,
            nbits: self.nbits,
        }
    }

    /// The bit array as bytes, bit `i` at byte `i / 8`, bit `i % 8` (the
    /// dump chunks' layout).
    pub fn bit_bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

/// A whole filter rebuilt from a snapshot (Ferrite's RDB module record):
/// the chain's parameters, then each sub-filter's geometry and bit bytes.
impl Bloom {
    /// Checks every field as [`Bloom::from_dump_header`] does (plus each
    /// bit array's length) and builds the filter; any mismatch is
    /// [`DumpError::BadData`].
    pub fn from_image(
        items: u64,
        expansion: u64,
        nonscaling: bool,
        links: &[(LinkImage, &[u8])],
    ) -> Result<Bloom, DumpError> {
        if links.is_empty() || (expansion == 0 && !nonscaling) {
            return Err(DumpError::BadData);
        }
        let (mut total_bytes, mut total_items) = (0u64, 0u64);
        let mut filters = Vec::with_capacity(links.len());
        for (link, bits) in links {
            if bits.len() as u64 != link.bytes() {
                return Err(DumpError::BadData);
            }
            let mut f = link.empty_filter(&mut total_bytes, &mut total_items)?;
            for (w, b) in f.words.iter_mut().zip(bits.chunks_exact(8)) {
                *w = u64::from_le_bytes(b.try_into().map_err(|_| DumpError::BadData)?);
            }
            filters.push(f);
        }
        if total_items != items {
            return Err(DumpError::BadData);
        }
        let heap = filters.iter().map(SubFilter::words_mem).sum();
        Ok(Bloom {
            filters,
            expansion: expansion.max(1),
            nonscaling,
            items,
            heap,
        })
    }
}

/// `BF.SCANDUMP` / `BF.LOADCHUNK`: the chain in RedisBloom's dump layout.
///
/// The header is RedisBloom 2.x's packed little-endian `dumpedChainHeader`
/// (`u64 items, u32 nfilters, u32 options, u32 growth`) followed by one
/// `dumpedChainLink` per sub-filter (`u64 bytes, u64 bits, u64 count,
/// f64 error, f64 bits-per-item, u32 hashes, u64 capacity, u8 n2`); the
/// data chunks are the sub-filters' bit arrays back to back, bit `i` at
/// byte `i / 8`, bit `i % 8`, as in RedisBloom. An iterator is 1 + the byte
/// offset into that concatenation just past the chunk: `SCANDUMP` answers
/// the header with iterator 1, each chunk with the iterator to ask for next,
/// and `0` with no data at the end; `LOADCHUNK` takes the same pairs.
///
/// Differences from RedisBloom's files, which make dumps deliberately
/// non-interchangeable (each server refuses the other's header with "ERR
/// received bad data" rather than loading bits its hashing cannot read):
/// the options carry [`OPT_FERRITE_XXH3`]; `bits` is Ferrite's probe modulus
/// (not rounded up to `bytes × 8`, which RedisBloom requires); `bytes` is
/// the bit array rounded up to whole 64-bit words, as in RedisBloom.
impl Bloom {
    /// The dump header (`BF.SCANDUMP key 0`).
    pub fn dump_header(&self) -> Result<Vec<u8>, DumpError> {
        let growth = u32::try_from(self.expansion).map_err(|_| DumpError::Unencodable)?;
        let nfilters = u32::try_from(self.filters.len()).map_err(|_| DumpError::Unencodable)?;
        let mut options = DUMP_BASE_OPTIONS;
        if self.nonscaling {
            options |= OPT_NO_SCALING;
        }
        let mut out = Vec::with_capacity(DUMP_HEADER_LEN + DUMP_LINK_LEN * self.filters.len());
        out.extend_from_slice(&self.items.to_le_bytes());
        out.extend_from_slice(&nfilters.to_le_bytes());
        out.extend_from_slice(&options.to_le_bytes());
        out.extend_from_slice(&growth.to_le_bytes());
        for f in &self.filters {
            out.extend_from_slice(&(f.words.len() as u64 * 8).to_le_bytes());
            out.extend_from_slice(&f.nbits.to_le_bytes());
            out.extend_from_slice(&f.count.to_le_bytes());
            out.extend_from_slice(&f.error.to_le_bytes());
            out.extend_from_slice(&bits_per_item(f.error).to_le_bytes());
            out.extend_from_slice(&f.hashes.to_le_bytes());
            out.extend_from_slice(&f.capacity.to_le_bytes());
            out.push(0);
        }
        Ok(out)
    }

    /// The sub-filter holding dump byte `pos` (0-based) and the offset in
    /// its bit array, like RedisBloom's `getLinkPos`.
    fn link_at(&self, pos: u64) -> Option<(usize, u64)> {
        let mut start = 0u64;
        for (i, f) in self.filters.iter().enumerate() {
            let len = f.words.len() as u64 * 8;
            if pos - start < len {
                return Some((i, pos - start));
            }
            start += len;
        }
        None
    }

    /// The data chunk at iterator `iter` (`BF.SCANDUMP key iter`, `iter ≥
    /// 1`), at most `max` bytes: the next iterator and the bytes, or
    /// `(0, [])` past the end (or for an iterator below 1).
    pub fn dump_chunk(&self, iter: i64, max: usize) -> (i64, Vec<u8>) {
        let Some(pos) = iter.checked_sub(1).and_then(|p| u64::try_from(p).ok()) else {
            return (0, Vec::new());
        };
        let Some((i, off)) = self.link_at(pos) else {
            return (0, Vec::new());
        };
        let words = &self.filters[i].words;
        let len = (words.len() as u64 * 8 - off).min(max as u64);
        let mut out = Vec::with_capacity(len as usize);
        let (mut at, end) = (off, off + len);
        while at < end {
            let bytes = words[(at / 8) as usize].to_le_bytes();
            let from = (at % 8) as usize;
            let to = (8).min(from as u64 + end - at) as usize;
            out.extend_from_slice(&bytes[from..to]);
            at += (to - from) as u64;
        }
        (iter.saturating_add(len as i64), out)
    }

    /// A filter with the header's geometry and empty bit arrays
    /// (`BF.LOADCHUNK key 1 header`). Every field is checked, so a forged
    /// header cannot make later lookups misbehave or allocate more than
    /// [`MAX_FILTER_BYTES`] per sub-filter and [`MAX_CHAIN_BYTES`] in all.
    pub fn from_dump_header(buf: &[u8]) -> Result<Bloom, DumpError> {
        let mut r = Fields(buf);
        let items = r.u64()?;
        let nfilters = r.u32()?;
        let options = r.u32()?;
        let growth = r.u32()?;
        let links = (buf.len() - DUMP_HEADER_LEN) / DUMP_LINK_LEN;
        if nfilters == 0
            || links != nfilters as usize
            || !(buf.len() - DUMP_HEADER_LEN).is_multiple_of(DUMP_LINK_LEN)
            || options & !OPT_NO_SCALING != DUMP_BASE_OPTIONS
        {
            return Err(DumpError::BadData);
        }
        let nonscaling = options & OPT_NO_SCALING != 0;
        if growth == 0 && !nonscaling {
            return Err(DumpError::BadData);
        }
        let (mut total_bytes, mut total_items) = (0u64, 0u64);
        let mut filters = Vec::with_capacity(links);
        for _ in 0..links {
            let bytes = r.u64()?;
            let nbits = r.u64()?;
            let count = r.u64()?;
            let error = r.f64()?;
            let _bpe = r.f64()?;
            let hashes = r.u32()?;
            let capacity = r.u64()?;
            let n2 = r.u8()?;
            if n2 != 0 || bytes != nbits.div_ceil(64) * 8 {
                return Err(DumpError::BadData);
            }
            let link = LinkImage {
                capacity,
                count,
                error,
                hashes,
                nbits,
            };
            filters.push(link.empty_filter(&mut total_bytes, &mut total_items)?);
        }
        if total_items != items {
            return Err(DumpError::BadData);
        }
        let heap = filters.iter().map(SubFilter::words_mem).sum();
        Ok(Bloom {
            filters,
            expansion: u64::from(growth.max(1)),
            nonscaling,
            items,
            heap,
        })
    }

    /// Where a chunk of `len` bytes loaded at iterator `iter` goes: the
    /// sub-filter and the byte offset in it. RedisBloom's checks, in its
    /// order: `iter` must be at least `len` and positive (the iterator
    /// points just past the chunk), the chunk must start inside a
    /// sub-filter and end inside the same one.
    pub fn check_chunk(&self, iter: i64, len: usize) -> Result<(usize, u64), DumpError> {
        let len = len as u64;
        let iter = u64::try_from(iter).map_err(|_| DumpError::BadData)?;
        if iter == 0 || iter < len {
            return Err(DumpError::BadData);
        }
        let (i, off) = (iter - len)
            .checked_sub(1)
            .and_then(|pos| self.link_at(pos))
            .ok_or(DumpError::NoLink)?;
        if len > self.filters[i].words.len() as u64 * 8 - off {
            return Err(DumpError::TooBig);
        }
        Ok((i, off))
    }

    /// Writes a data chunk (`BF.LOADCHUNK key iter data`, `iter > 1`).
    pub fn load_chunk(&mut self, iter: i64, data: &[u8]) -> Result<(), DumpError> {
        let (i, off) = self.check_chunk(iter, data.len())?;
        let words = &mut self.filters[i].words;
        for (k, &byte) in data.iter().enumerate() {
            let at = off + k as u64;
            let w = &mut words[(at / 8) as usize];
            let shift = (at % 8) * 8;
            *w = (*w & !(0xffu64 << shift)) | (u64::from(byte) << shift);
        }
        Ok(())
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

    /// Dumps `b` the way a client does (`max`-byte chunks) and loads it back.
    fn round_trip(b: &Bloom, max: usize) -> Bloom {
        let mut copy = Bloom::from_dump_header(&b.dump_header().unwrap()).unwrap();
        let mut iter = 1;
        loop {
            let (next, data) = b.dump_chunk(iter, max);
            if next == 0 {
                assert!(data.is_empty());
                break;
            }
            assert!(!data.is_empty() && data.len() <= max);
            copy.load_chunk(next, &data).unwrap();
            iter = next;
        }
        copy
    }

    fn assert_same(a: &Bloom, b: &Bloom) {
        assert_eq!(a.dump_header(), b.dump_header());
        assert_eq!(
            (a.capacity(), a.size(), a.items(), a.expansion()),
            (b.capacity(), b.size(), b.items(), b.expansion())
        );
        assert_eq!(a.filters().len(), b.filters().len());
        for (x, y) in a.filters().iter().zip(b.filters()) {
            assert_eq!(x.words(), y.words());
            assert_eq!(x.nbits(), y.nbits());
        }
    }

    #[test]
    fn dump_round_trips_a_scaled_chain() {
        let mut b = Bloom::new(0.01, 50, 2, false).unwrap();
        for i in 0..1000 {
            b.add(&item(b'a', i)).unwrap();
        }
        assert!(b.filters().len() >= 4, "{}", b.filters().len());
        let hdr = b.dump_header().unwrap();
        assert_eq!(
            hdr.len(),
            DUMP_HEADER_LEN + DUMP_LINK_LEN * b.filters().len()
        );
        for max in [MAX_SCANDUMP_CHUNK, 7, 64, 100] {
            let mut copy = round_trip(&b, max);
            assert_same(&b, &copy);
            for i in 0..1000 {
                assert!(copy.contains(&item(b'a', i)));
            }
            for i in 0..5000 {
                assert_eq!(b.contains(&item(b'z', i)), copy.contains(&item(b'z', i)));
            }
            // The copy keeps growing like the original.
            let mut orig = b.clone();
            for i in 0..500 {
                assert_eq!(orig.add(&item(b'c', i)), copy.add(&item(b'c', i)));
            }
            assert_same(&orig, &copy);
        }
        let mut n = Bloom::new(0.001, 10, 2, true).unwrap();
        n.add(b"x").unwrap();
        let copy = round_trip(&n, 16);
        assert_same(&n, &copy);
        assert!(copy.is_nonscaling() && copy.contains(b"x"));
    }

    #[test]
    fn dump_header_layout_is_redisbloom_s() {
        let mut b = Bloom::new(0.01, 100, 3, false).unwrap();
        b.add(b"a").unwrap();
        let h = b.dump_header().unwrap();
        assert_eq!(h.len(), 20 + 53);
        assert_eq!(u64::from_le_bytes(h[0..8].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(h[8..12].try_into().unwrap()), 1);
        assert_eq!(
            u32::from_le_bytes(h[12..16].try_into().unwrap()),
            OPT_NOROUND | OPT_FORCE64 | OPT_FERRITE_XXH3
        );
        assert_eq!(u32::from_le_bytes(h[16..20].try_into().unwrap()), 3);
        let l = &h[20..];
        assert_eq!(u64::from_le_bytes(l[0..8].try_into().unwrap()), 120);
        assert_eq!(u64::from_le_bytes(l[8..16].try_into().unwrap()), 958);
        assert_eq!(u64::from_le_bytes(l[16..24].try_into().unwrap()), 1);
        assert_eq!(f64::from_le_bytes(l[24..32].try_into().unwrap()), 0.01);
        assert_eq!(u32::from_le_bytes(l[40..44].try_into().unwrap()), 7);
        assert_eq!(u64::from_le_bytes(l[44..52].try_into().unwrap()), 100);
        assert_eq!(l[52], 0);
        // Chunks: iterator 1 + offset past the chunk, then (0, []).
        assert_eq!(b.dump_chunk(1, 1 << 20).0, 121);
        assert_eq!(b.dump_chunk(121, 1 << 20), (0, vec![]));
        assert_eq!(b.dump_chunk(-5, 10), (0, vec![]));
        assert_eq!(b.dump_chunk(i64::MAX, 10), (0, vec![]));
    }

    #[test]
    fn bad_dumps_are_errors() {
        let mut b = Bloom::new(0.01, 100, 2, false).unwrap();
        b.add(b"a").unwrap();
        let h = b.dump_header().unwrap();
        // Every truncation and a trailing byte.
        for n in 0..h.len() {
            assert_eq!(
                Bloom::from_dump_header(&h[..n]).err(),
                Some(DumpError::BadData)
            );
        }
        let mut long = h.clone();
        long.push(0);
        assert!(Bloom::from_dump_header(&long).is_err());
        let patched = |at: usize, bytes: &[u8]| {
            let mut x = h.clone();
            x[at..at + bytes.len()].copy_from_slice(bytes);
            Bloom::from_dump_header(&x).err()
        };
        let bad = Some(DumpError::BadData);
        assert_eq!(patched(0, &2u64.to_le_bytes()), bad); // items != sum
        assert_eq!(patched(8, &0u32.to_le_bytes()), bad); // no filters
        assert_eq!(patched(8, &2u32.to_le_bytes()), bad); // length mismatch
        assert_eq!(patched(12, &5u32.to_le_bytes()), bad); // RedisBloom's options
        assert_eq!(patched(16, &0u32.to_le_bytes()), bad); // growth 0
        assert_eq!(patched(20, &(1u64 << 40).to_le_bytes()), bad); // huge bytes
        assert_eq!(patched(28, &(1u64 << 40).to_le_bytes()), bad); // bits vs bytes
        assert_eq!(patched(44, &2.0f64.to_le_bytes()), bad); // error rate
        assert_eq!(patched(60, &u32::MAX.to_le_bytes()), bad); // hashes
        assert_eq!(patched(64, &0u64.to_le_bytes()), bad); // capacity
        assert_eq!(patched(72, &[1]), bad); // n2
                                            // Many sub-filters each claiming 1 GiB: refused before allocating.
        let mut big = Vec::new();
        big.extend_from_slice(&0u64.to_le_bytes());
        big.extend_from_slice(&8u32.to_le_bytes());
        big.extend_from_slice(&DUMP_BASE_OPTIONS.to_le_bytes());
        big.extend_from_slice(&2u32.to_le_bytes());
        for _ in 0..8 {
            big.extend_from_slice(&MAX_FILTER_BYTES.to_le_bytes());
            big.extend_from_slice(&(MAX_FILTER_BYTES * 8).to_le_bytes());
            big.extend_from_slice(&0u64.to_le_bytes());
            big.extend_from_slice(&0.5f64.to_le_bytes());
            big.extend_from_slice(&bits_per_item(0.5).to_le_bytes());
            let k = (std::f64::consts::LN_2 * bits_per_item(0.5)).ceil() as u32;
            big.extend_from_slice(&k.to_le_bytes());
            big.extend_from_slice(&1u64.to_le_bytes());
            big.push(0);
        }
        assert_eq!(Bloom::from_dump_header(&big).err(), bad);

        let mut c = Bloom::from_dump_header(&h).unwrap();
        assert_eq!(c.load_chunk(0, b""), Err(DumpError::BadData));
        assert_eq!(c.load_chunk(-1, b"x"), Err(DumpError::BadData));
        assert_eq!(c.load_chunk(2, b"xyz"), Err(DumpError::BadData));
        assert_eq!(c.load_chunk(i64::MAX, b"x"), Err(DumpError::NoLink));
        assert_eq!(c.load_chunk(122, b"x"), Err(DumpError::NoLink));
        assert_eq!(c.load_chunk(1, b""), Ok(()));
        assert_eq!(c.load_chunk(130, &[0xff; 125]), Err(DumpError::TooBig));
        assert_eq!(c.load_chunk(121, &[0xff; 120]), Ok(()));
        assert!(c.contains(b"anything"));

        let huge = Bloom::new(0.999, 1, 1 << 40, false).unwrap();
        assert_eq!(huge.dump_header().err(), Some(DumpError::Unencodable));
    }

    /// A snapshot image (geometry plus bit bytes of each sub-filter)
    /// rebuilds the same filter, expansions too large for a dump header
    /// included; images that disagree with themselves are refused.
    #[test]
    fn image_round_trips_and_bad_images_are_errors() {
        let mut b = Bloom::new(0.02, 7, 3, false).unwrap();
        for i in 0..40 {
            b.add(&item(b'a', i)).unwrap();
        }
        assert!(b.filters().len() >= 2);
        let bits: Vec<Vec<u8>> = b.filters().iter().map(SubFilter::bit_bytes).collect();
        let links: Vec<(LinkImage, &[u8])> = b
            .filters()
            .iter()
            .zip(&bits)
            .map(|(f, v)| (f.image(), &v[..]))
            .collect();
        let c = Bloom::from_image(b.items(), 3, false, &links).unwrap();
        assert_eq!(c.expansion(), Some(3));
        assert_eq!(c.dump_chunk(1, usize::MAX), b.dump_chunk(1, usize::MAX));
        assert_eq!(c.size(), b.size());
        assert!((0..40).all(|i| c.contains(&item(b'a', i))));

        let items = b.items();
        assert!(Bloom::from_image(items + 1, 2, false, &links).is_err());
        assert!(Bloom::from_image(items, 0, false, &links).is_err());
        assert!(Bloom::from_image(0, 2, false, &[]).is_err());
        let mut short = links.clone();
        short[0].1 = &bits[0][1..];
        assert!(Bloom::from_image(items, 2, false, &short).is_err());
        let mut wrong_k = links.clone();
        wrong_k[1].0.hashes += 1;
        assert!(Bloom::from_image(items, 2, false, &wrong_k).is_err());
        let mut huge = links.clone();
        huge[0].0.nbits = u64::MAX;
        assert!(Bloom::from_image(items, 2, false, &huge).is_err());
        assert!(Bloom::from_image(items, 0, true, &links).is_ok());
        let wide = Bloom::from_image(items, 1 << 40, false, &links).unwrap();
        assert_eq!(wide.expansion(), Some(1 << 40));
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
