//! The large encoding of a sorted set: a skip list with rank spans, as
//! Redis's `zskiplist`, joined with a member → node hash table, as the
//! `dict` of Redis's `zset`.
//!
//! Redis allocates every node (and its member) separately and reaches them
//! through pointers. We keep every node in one slab (`Vec<Node>`) and name
//! nodes by `u32` index, so the structure is safe Rust and a node costs 40
//! bytes instead of a pointer-sized field per link:
//!
//! - Level 0 of a node (its successor; the span is always 1) lives inline in
//!   the node. Levels 1 and up (a quarter of the nodes have any) live in a
//!   second slab of `(forward, span)` pairs, one contiguous block per node,
//!   with a free list per block size.
//! - Member bytes live back to back in one byte arena; removed members leave
//!   garbage that is reclaimed by rebuilding the whole structure once it
//!   outweighs the live data (amortised O(1) per removal).
//! - The hash table is intrusive: buckets hold the index of the first node,
//!   nodes chain through their `chain` field. Lookup hashes the member with
//!   the keyspace hash; bucket selection, growth and shrinking follow
//!   [`crate::Dict`], so `ZSCAN` keeps `SCAN`'s guarantee through resizes.
//!
//! Ranks are counted from 0 in the public API. Levels are drawn with
//! p = 1/4 and at most [`MAX_LEVEL`], as in Redis. Every operation is
//! O(log n) expected except the explicit range operations, which add the
//! size of the range.

use crate::dict::hash_key;
use crate::mem::{alloc_size, array_size};

/// Highest level a node can have (Redis's `ZSKIPLIST_MAXLEVEL`).
pub const MAX_LEVEL: usize = 32;

/// "No node". Node 0 is the header, so it never names a member either.
const NIL: u32 = u32::MAX;
/// The header node: it holds level links only.
const HEAD: u32 = 0;
/// Member lengths at or above this are stored with a `u64` length prefix in
/// the arena (the inline field is 32 bits to keep nodes at 40 bytes).
const LONG_MEMBER: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Node {
    score: f64,
    /// Offset of the member bytes in the arena.
    off: u64,
    /// Member length, or [`LONG_MEMBER`] when a `u64` prefix holds it.
    len: u32,
    /// Predecessor at level 0 (`NIL` for the first node).
    back: u32,
    /// Successor at level 0 (`NIL` for the last node).
    next: u32,
    /// Index in `levels` of this node's level 1 (levels `1..height`).
    up: u32,
    /// Next node in the same hash bucket, or next free slot when free.
    chain: u32,
    /// Number of levels; 0 marks a free slot.
    height: u8,
}

#[derive(Clone, Copy, Debug)]
struct Level {
    /// Successor at this level (`NIL` at the end); free-list link in free blocks.
    fwd: u32,
    /// Number of level-0 steps `fwd` jumps over. For a link to `NIL` it is the
    /// number of nodes after this one, which keeps insertion arithmetic uniform.
    span: u32,
}

/// A sorted set in skip-list-plus-hash form. Members are unique; order is
/// by score, then by member bytes.
#[derive(Clone, Debug)]
pub struct SkipList {
    nodes: Vec<Node>,
    levels: Vec<Level>,
    /// Heads of the free level blocks, by block size (`height - 1`).
    level_free: [u32; MAX_LEVEL],
    /// Head of the free node slots.
    node_free: u32,
    free_nodes: u32,
    arena: Vec<u8>,
    /// Bytes of the arena no live member uses.
    garbage: usize,
    buckets: Vec<u32>,
    len: u32,
    /// Highest level in use (at least 1).
    level: u8,
    tail: u32,
    rng: u64,
}

impl Default for SkipList {
    fn default() -> Self {
        Self::new()
    }
}

/// `(a_score, a_member) < (b_score, b_member)` in sorted-set order.
#[inline]
fn less(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> bool {
    a_score < b_score || (a_score == b_score && a_member < b_member)
}

#[inline]
fn bucket_hash(h: u64) -> usize {
    // The same bits `Dict` uses, so the two tables scan alike.
    h.rotate_right(32) as usize
}

impl SkipList {
    /// An empty list with a random level generator seeded from the OS.
    pub fn new() -> Self {
        Self::with_seed(rand::random())
    }

    /// An empty list whose levels come from `seed`, for reproducible tests
    /// and benchmarks.
    pub fn with_seed(seed: u64) -> Self {
        let header = Node {
            score: 0.0,
            off: 0,
            len: 0,
            back: NIL,
            next: NIL,
            up: 0,
            chain: NIL,
            height: MAX_LEVEL as u8,
        };
        SkipList {
            nodes: vec![header],
            levels: vec![Level { fwd: NIL, span: 0 }; MAX_LEVEL - 1],
            level_free: [NIL; MAX_LEVEL],
            node_free: NIL,
            free_nodes: 0,
            arena: Vec::new(),
            garbage: 0,
            buckets: Vec::new(),
            len: 0,
            level: 1,
            tail: NIL,
            // xorshift must not start at 0.
            rng: seed | 1,
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// No members.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes held as allocated (capacities, not lengths), the list's
    /// own box included, computed in O(1) because the keyspace asks before
    /// and after every write.
    pub fn mem_usage(&self) -> usize {
        alloc_size(std::mem::size_of::<Self>())
            + array_size::<Node>(self.nodes.capacity())
            + array_size::<Level>(self.levels.capacity())
            + alloc_size(self.arena.capacity())
            + array_size::<u32>(self.buckets.capacity())
    }

    // ------------------------------------------------------------------
    // Node access

    #[inline]
    fn member(&self, x: u32) -> &[u8] {
        let n = &self.nodes[x as usize];
        let off = n.off as usize;
        if n.len != LONG_MEMBER {
            &self.arena[off..off + n.len as usize]
        } else {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.arena[off..off + 8]);
            let len = u64::from_le_bytes(b) as usize;
            &self.arena[off + 8..off + 8 + len]
        }
    }

    #[inline]
    fn score_of(&self, x: u32) -> f64 {
        self.nodes[x as usize].score
    }

    #[inline]
    fn fwd(&self, x: u32, i: usize) -> u32 {
        let n = &self.nodes[x as usize];
        if i == 0 {
            n.next
        } else {
            self.levels[n.up as usize + i - 1].fwd
        }
    }

    /// Span of level `i >= 1` of `x` (level 0 always spans 1).
    #[inline]
    fn span(&self, x: u32, i: usize) -> u32 {
        if i == 0 {
            1
        } else {
            self.levels[self.nodes[x as usize].up as usize + i - 1].span
        }
    }

    #[inline]
    fn set_fwd(&mut self, x: u32, i: usize, to: u32) {
        if i == 0 {
            self.nodes[x as usize].next = to;
        } else {
            let up = self.nodes[x as usize].up as usize;
            self.levels[up + i - 1].fwd = to;
        }
    }

    #[inline]
    fn set_span(&mut self, x: u32, i: usize, span: u32) {
        if i > 0 {
            let up = self.nodes[x as usize].up as usize;
            self.levels[up + i - 1].span = span;
        }
    }

    fn random_level(&mut self) -> usize {
        // xorshift64*: each pair of low zero bits is one more level (p = 1/4).
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (1 + (r.trailing_zeros() / 2) as usize).min(MAX_LEVEL)
    }

    /// A node slot with `height` levels holding `score` and a copy of `member`.
    fn alloc(&mut self, score: f64, member: &[u8], height: usize) -> u32 {
        let off = self.arena.len() as u64;
        let len = match u32::try_from(member.len()) {
            Ok(l) if l != LONG_MEMBER => l,
            _ => {
                self.arena
                    .extend_from_slice(&(member.len() as u64).to_le_bytes());
                LONG_MEMBER
            }
        };
        self.arena.extend_from_slice(member);
        let up = if height > 1 {
            self.alloc_levels(height - 1)
        } else {
            0
        };
        let node = Node {
            score,
            off,
            len,
            back: NIL,
            next: NIL,
            up,
            chain: NIL,
            height: height as u8,
        };
        if self.node_free != NIL {
            let x = self.node_free;
            self.node_free = self.nodes[x as usize].chain;
            self.free_nodes -= 1;
            self.nodes[x as usize] = node;
            x
        } else {
            let x = u32::try_from(self.nodes.len())
                .ok()
                .filter(|&x| x != NIL)
                .expect("a sorted set holds fewer than 2^32 members");
            self.nodes.push(node);
            x
        }
    }

    fn alloc_levels(&mut self, size: usize) -> u32 {
        let head = self.level_free[size];
        if head != NIL {
            self.level_free[size] = self.levels[head as usize].fwd;
            let at = head as usize;
            self.levels[at..at + size].fill(Level { fwd: NIL, span: 0 });
            return head;
        }
        let at = self.levels.len();
        self.levels.resize(at + size, Level { fwd: NIL, span: 0 });
        u32::try_from(at).expect("level slab below 2^32 entries")
    }

    fn release(&mut self, x: u32) {
        let n = self.nodes[x as usize];
        let bytes = if n.len == LONG_MEMBER {
            self.member(x).len() + 8
        } else {
            n.len as usize
        };
        self.garbage += bytes;
        let h = n.height as usize;
        if h > 1 {
            self.levels[n.up as usize].fwd = self.level_free[h - 1];
            self.level_free[h - 1] = n.up;
        }
        let slot = &mut self.nodes[x as usize];
        slot.height = 0;
        slot.chain = self.node_free;
        self.node_free = x;
        self.free_nodes += 1;
    }

    // ------------------------------------------------------------------
    // Hash table

    #[inline]
    fn bucket(&self, h: u64) -> usize {
        bucket_hash(h) & (self.buckets.len() - 1)
    }

    fn find(&self, member: &[u8]) -> Option<u32> {
        if self.buckets.is_empty() {
            return None;
        }
        let mut x = self.buckets[self.bucket(hash_key(member))];
        while x != NIL {
            if self.member(x) == member {
                return Some(x);
            }
            x = self.nodes[x as usize].chain;
        }
        None
    }

    /// Links the live node `x` (already counted in `self.len`) into its bucket.
    fn hash_link(&mut self, x: u32) {
        if self.len as usize > self.buckets.len() {
            // The rehash walks every live node, so it links `x` too.
            self.rehash((self.len as usize).next_power_of_two().max(4));
            return;
        }
        let b = self.bucket(hash_key(self.member(x)));
        self.nodes[x as usize].chain = self.buckets[b];
        self.buckets[b] = x;
    }

    fn hash_unlink(&mut self, x: u32) {
        let b = self.bucket(hash_key(self.member(x)));
        let next = self.nodes[x as usize].chain;
        if self.buckets[b] == x {
            self.buckets[b] = next;
        } else {
            let mut p = self.buckets[b];
            while self.nodes[p as usize].chain != x {
                p = self.nodes[p as usize].chain;
            }
            self.nodes[p as usize].chain = next;
        }
    }

    fn maybe_shrink_table(&mut self) {
        let size = self.buckets.len();
        if self.len == 0 {
            self.buckets = Vec::new();
        } else if size > 4 && (self.len as usize) * 8 < size {
            self.rehash((self.len as usize).next_power_of_two().max(4));
        }
    }

    fn rehash(&mut self, size: usize) {
        self.buckets = vec![NIL; size];
        // Slab order, not list order: sequential memory makes the one-step
        // rehash of a large set several times faster.
        for x in 1..self.nodes.len() as u32 {
            if self.nodes[x as usize].height == 0 {
                continue;
            }
            let b = self.bucket(hash_key(self.member(x)));
            self.nodes[x as usize].chain = self.buckets[b];
            self.buckets[b] = x;
        }
    }

    // ------------------------------------------------------------------
    // Skip list

    /// The score of `member`, O(1).
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.find(member).map(|x| self.score_of(x))
    }

    /// Whether `member` is present.
    pub fn contains(&self, member: &[u8]) -> bool {
        self.find(member).is_some()
    }

    /// For each level, the last node before `(score, member)` and its rank
    /// (1-based; the header is 0).
    fn path_to(&self, score: f64, member: &[u8]) -> ([u32; MAX_LEVEL], [u32; MAX_LEVEL]) {
        let mut update = [HEAD; MAX_LEVEL];
        let mut rank = [0u32; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level as usize).rev() {
            rank[i] = if i + 1 == self.level as usize {
                0
            } else {
                rank[i + 1]
            };
            loop {
                let f = self.fwd(x, i);
                if f != NIL && less(self.score_of(f), self.member(f), score, member) {
                    rank[i] += self.span(x, i);
                    x = f;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        (update, rank)
    }

    /// Puts the unlinked node `x` (score and height set) in its place.
    fn link(&mut self, x: u32) {
        let score = self.score_of(x);
        let (mut update, mut rank) = {
            let member = self.member(x);
            self.path_to(score, member)
        };
        let height = self.nodes[x as usize].height as usize;
        let level = self.level as usize;
        if height > level {
            for i in level..height {
                rank[i] = 0;
                update[i] = HEAD;
                self.set_span(HEAD, i, self.len);
            }
            self.level = height as u8;
        }
        for i in 0..height {
            let u = update[i];
            self.set_fwd(x, i, self.fwd(u, i));
            self.set_fwd(u, i, x);
            if i > 0 {
                let crossed = rank[0] - rank[i];
                self.set_span(x, i, self.span(u, i) - crossed);
                self.set_span(u, i, crossed + 1);
            }
        }
        for (i, &u) in update
            .iter()
            .enumerate()
            .take(self.level as usize)
            .skip(height)
        {
            self.set_span(u, i, self.span(u, i) + 1);
        }
        self.nodes[x as usize].back = if update[0] == HEAD { NIL } else { update[0] };
        let next = self.nodes[x as usize].next;
        if next != NIL {
            self.nodes[next as usize].back = x;
        } else {
            self.tail = x;
        }
        self.len += 1;
    }

    /// Takes `x` out of the level links; `update` is its path.
    fn unlink(&mut self, x: u32, update: &[u32; MAX_LEVEL]) {
        for (i, &u) in update.iter().enumerate().take(self.level as usize) {
            if self.fwd(u, i) == x {
                if i > 0 {
                    let span = self.span(u, i) + self.span(x, i) - 1;
                    self.set_span(u, i, span);
                }
                self.set_fwd(u, i, self.fwd(x, i));
            } else if i > 0 {
                self.set_span(u, i, self.span(u, i) - 1);
            }
        }
        let Node { back, next, .. } = self.nodes[x as usize];
        if next != NIL {
            self.nodes[next as usize].back = back;
        } else {
            self.tail = back;
        }
        while self.level > 1 && self.fwd(HEAD, self.level as usize - 1) == NIL {
            self.level -= 1;
        }
        self.len -= 1;
    }

    /// Adds a member that is not present (the caller checks, as Redis's
    /// `zslInsert` assumes). `score` must not be NaN.
    pub fn insert(&mut self, score: f64, member: &[u8]) {
        debug_assert!(!score.is_nan());
        debug_assert!(!self.contains(member));
        let height = self.random_level();
        let x = self.alloc(score, member, height);
        self.link(x);
        self.hash_link(x);
    }

    /// Changes the score of a present member; returns the old score.
    /// The node stays where it is when the order allows it.
    pub fn update_score(&mut self, member: &[u8], score: f64) -> Option<f64> {
        debug_assert!(!score.is_nan());
        let x = self.find(member)?;
        let old = self.score_of(x);
        let Node { back, next, .. } = self.nodes[x as usize];
        let m = self.member(x);
        let after_back = back == NIL || less(self.score_of(back), self.member(back), score, m);
        let before_next = next == NIL || less(score, m, self.score_of(next), self.member(next));
        if after_back && before_next {
            self.nodes[x as usize].score = score;
            return Some(old);
        }
        let (update, _) = self.path_to(old, m);
        self.unlink(x, &update);
        self.nodes[x as usize].score = score;
        self.link(x);
        Some(old)
    }

    /// Removes a member; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let x = self.find(member)?;
        let score = self.score_of(x);
        let (update, _) = self.path_to(score, member);
        self.hash_unlink(x);
        self.unlink(x, &update);
        self.release(x);
        self.after_removal();
        Some(score)
    }

    /// Rank (0-based, ascending) of a member.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let x = self.find(member)?;
        let score = self.score_of(x);
        Some(self.count_while(|s, m| less(s, m, score, member)))
    }

    /// How many leading members satisfy `pred`, which must hold for a prefix
    /// of the order and fail after it (score and lex bounds are such). Used
    /// for rank lookups and for the first/last rank of a range.
    pub fn count_while(&self, mut pred: impl FnMut(f64, &[u8]) -> bool) -> usize {
        let mut x = HEAD;
        let mut rank = 0usize;
        for i in (0..self.level as usize).rev() {
            loop {
                let f = self.fwd(x, i);
                if f != NIL && pred(self.score_of(f), self.member(f)) {
                    rank += self.span(x, i) as usize;
                    x = f;
                } else {
                    break;
                }
            }
        }
        rank
    }

    /// The node at 1-based `rank` (`1..=len`).
    fn node_at(&self, rank: usize) -> u32 {
        let mut x = HEAD;
        let mut traversed = 0usize;
        for i in (0..self.level as usize).rev() {
            loop {
                let f = self.fwd(x, i);
                if f != NIL && traversed + self.span(x, i) as usize <= rank {
                    traversed += self.span(x, i) as usize;
                    x = f;
                } else {
                    break;
                }
            }
            if traversed == rank {
                return x;
            }
        }
        NIL
    }

    /// The member and score at 0-based `rank`.
    pub fn get_by_rank(&self, rank: usize) -> Option<(&[u8], f64)> {
        if rank >= self.len() {
            return None;
        }
        let x = self.node_at(rank + 1);
        Some((self.member(x), self.score_of(x)))
    }

    /// The members with ranks in `start..end` (0-based), ascending; reverse
    /// it for descending order. Finding both ends costs O(log n).
    pub fn range(&self, start: usize, end: usize) -> Iter<'_> {
        let end = end.min(self.len());
        if start >= end {
            return Iter {
                list: self,
                front: NIL,
                back: NIL,
                left: 0,
            };
        }
        let front = if start == 0 {
            self.nodes[HEAD as usize].next
        } else {
            self.node_at(start + 1)
        };
        let back = if end == self.len() {
            self.tail
        } else {
            self.node_at(end)
        };
        Iter {
            list: self,
            front,
            back,
            left: end - start,
        }
    }

    /// All members, ascending.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            list: self,
            front: self.nodes[HEAD as usize].next,
            back: self.tail,
            left: self.len(),
        }
    }

    /// Removes the members with ranks in `start..end` (0-based); returns how
    /// many were removed. O(log n + removed).
    pub fn remove_range(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len());
        if start >= end {
            return 0;
        }
        let mut update = [HEAD; MAX_LEVEL];
        let mut x = HEAD;
        let mut traversed = 0usize;
        for i in (0..self.level as usize).rev() {
            loop {
                let f = self.fwd(x, i);
                if f != NIL && traversed + self.span(x, i) as usize <= start {
                    traversed += self.span(x, i) as usize;
                    x = f;
                } else {
                    break;
                }
            }
            update[i] = x;
        }
        let mut x = self.fwd(update[0], 0);
        let mut removed = 0;
        while x != NIL && removed < end - start {
            let next = self.nodes[x as usize].next;
            self.hash_unlink(x);
            self.unlink(x, &update);
            self.release(x);
            removed += 1;
            x = next;
        }
        self.after_removal();
        removed
    }

    /// Shrinks the table and, once dead slots or dead member bytes outweigh
    /// the live ones, rebuilds everything compactly.
    fn after_removal(&mut self) {
        if self.len == 0 {
            *self = SkipList::with_seed(self.rng);
            return;
        }
        let live_bytes = self.arena.len() - self.garbage;
        if (self.free_nodes > self.len && self.nodes.len() > 64)
            || (self.garbage > 4096 && self.garbage > live_bytes)
        {
            self.compact();
        } else {
            self.maybe_shrink_table();
        }
    }

    fn compact(&mut self) {
        let mut fresh = SkipList::with_seed(self.rng);
        fresh.nodes.reserve_exact(self.len());
        fresh.arena.reserve_exact(self.arena.len() - self.garbage);
        fresh.extend_sorted(self.iter());
        *self = fresh;
    }

    /// Appends members that are sorted, distinct and all after the current
    /// last member, in O(1) each (no searching): used to build a list from
    /// a listpack or from a computed result.
    pub fn extend_sorted<'a>(&mut self, items: impl IntoIterator<Item = (&'a [u8], f64)>) {
        // The last node at each level and its 1-based rank.
        let mut last = [HEAD; MAX_LEVEL];
        let mut last_rank = [0u32; MAX_LEVEL];
        {
            // Find the rightmost node of each level.
            let mut x = HEAD;
            let mut rank = 0u32;
            for i in (0..MAX_LEVEL).rev() {
                if i < self.level as usize {
                    loop {
                        let f = self.fwd(x, i);
                        if f == NIL {
                            break;
                        }
                        rank += self.span(x, i);
                        x = f;
                    }
                }
                last[i] = x;
                last_rank[i] = rank;
            }
        }
        for (member, score) in items {
            debug_assert!(
                self.tail == NIL || {
                    let t = self.tail;
                    less(self.score_of(t), self.member(t), score, member)
                }
            );
            let height = self.random_level();
            let x = self.alloc(score, member, height);
            let rank = self.len + 1;
            for i in 0..height {
                self.set_fwd(last[i], i, x);
                self.set_span(last[i], i, rank - last_rank[i]);
                last[i] = x;
                last_rank[i] = rank;
            }
            self.nodes[x as usize].back = self.tail;
            self.tail = x;
            self.len += 1;
            if height > self.level as usize {
                self.level = height as u8;
            }
            self.hash_link(x);
        }
        // Links to the end span the nodes after their source.
        for i in 1..MAX_LEVEL {
            let span = self.len - last_rank[i];
            self.set_span(last[i], i, span);
        }
    }

    /// One step of a cursor scan over the hash buckets (see
    /// [`crate::Dict::scan`]): every member present for the whole scan is
    /// returned at least once, across resizes.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], f64)) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        let mask = (self.buckets.len() - 1) as u64;
        let mut x = self.buckets[(cursor & mask) as usize];
        while x != NIL {
            f(self.member(x), self.score_of(x));
            x = self.nodes[x as usize].chain;
        }
        let mut v = cursor | !mask;
        v = v.reverse_bits();
        v = v.wrapping_add(1);
        v.reverse_bits()
    }

    /// Checks every structural invariant; for tests.
    #[doc(hidden)]
    pub fn check(&self) {
        let n = self.len();
        // Level 0 order, back links, tail.
        let mut x = self.nodes[HEAD as usize].next;
        let mut prev = NIL;
        let mut count = 0;
        let mut ranks = std::collections::HashMap::new();
        while x != NIL {
            count += 1;
            ranks.insert(x, count as u32);
            assert_eq!(self.nodes[x as usize].back, prev, "back link");
            assert!(self.nodes[x as usize].height >= 1);
            if prev != NIL {
                assert!(less(
                    self.score_of(prev),
                    self.member(prev),
                    self.score_of(x),
                    self.member(x)
                ));
            }
            prev = x;
            x = self.nodes[x as usize].next;
        }
        assert_eq!(count, n);
        assert_eq!(self.tail, prev);
        // Higher levels and their spans.
        for i in 1..self.level as usize {
            let mut x = HEAD;
            let mut r = 0u32;
            loop {
                let f = self.fwd(x, i);
                let span = self.span(x, i);
                if f == NIL {
                    assert_eq!(span, self.len - r, "span to end at level {i}");
                    break;
                }
                assert!(self.nodes[f as usize].height as usize > i);
                assert_eq!(r + span, ranks[&f], "span at level {i}");
                r = ranks[&f];
                x = f;
            }
        }
        assert!(self.level == 1 || self.fwd(HEAD, self.level as usize - 1) != NIL);
        // Hash table.
        let mut hashed = 0;
        for &b in &self.buckets {
            let mut x = b;
            while x != NIL {
                hashed += 1;
                assert!(ranks.contains_key(&x));
                x = self.nodes[x as usize].chain;
            }
        }
        assert_eq!(hashed, n);
        for &x in ranks.keys() {
            assert_eq!(self.find(self.member(x)), Some(x));
        }
        assert_eq!(self.nodes.len() - 1 - self.free_nodes as usize, n);
    }
}

/// Iterator over a rank range of a [`SkipList`], both directions.
pub struct Iter<'a> {
    list: &'a SkipList,
    front: u32,
    back: u32,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let x = self.front;
        self.left -= 1;
        self.front = self.list.nodes[x as usize].next;
        Some((self.list.member(x), self.list.score_of(x)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let x = self.back;
        self.left -= 1;
        self.back = self.list.nodes[x as usize].back;
        Some((self.list.member(x), self.list.score_of(x)))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The oracle: (score, member) pairs kept sorted.
    #[derive(Default)]
    struct Model(Vec<(f64, Vec<u8>)>);

    impl Model {
        fn sort(&mut self) {
            self.0
                .sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then_with(|| a.1.cmp(&b.1)));
        }
        fn pos(&self, m: &[u8]) -> Option<usize> {
            self.0.iter().position(|(_, x)| x == m)
        }
        fn ranks_where(&self, pred: impl Fn(f64, &[u8]) -> bool) -> Vec<usize> {
            (0..self.0.len())
                .filter(|&i| pred(self.0[i].0, &self.0[i].1))
                .collect()
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(i8, u8),
        Remove(u8),
        Rank(u8),
        Range(u8, u8, bool),
        RemoveRange(u8, u8),
        CountBelow(i8, u8),
        Bulk(u8),
    }

    fn score(s: i8) -> f64 {
        match s {
            i8::MIN => f64::NEG_INFINITY,
            i8::MAX => f64::INFINITY,
            s => f64::from(s % 8) / 2.0,
        }
    }

    fn member(m: u8) -> Vec<u8> {
        // Short members, plus a few long ones to exercise the arena.
        if m.is_multiple_of(17) {
            vec![b'L'; 300 + m as usize]
        } else {
            format!("m{}", m % 40).into_bytes()
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<i8>(), any::<u8>()).prop_map(|(s, m)| Op::Add(s, m)),
            3 => any::<u8>().prop_map(Op::Remove),
            1 => any::<u8>().prop_map(Op::Rank),
            2 => (any::<u8>(), any::<u8>(), any::<bool>()).prop_map(|(a, b, r)| Op::Range(a, b, r)),
            1 => (any::<u8>(), 0u8..6).prop_map(|(a, n)| Op::RemoveRange(a, n)),
            1 => (any::<i8>(), any::<u8>()).prop_map(|(s, m)| Op::CountBelow(s, m)),
            1 => (0u8..30).prop_map(Op::Bulk),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn behaves_like_a_sorted_vec(seed in any::<u64>(), ops in proptest::collection::vec(op(), 1..300)) {
            let mut sl = SkipList::with_seed(seed);
            let mut model = Model::default();
            for op in ops {
                match op {
                    Op::Add(s, m) => {
                        let (s, m) = (score(s), member(m));
                        match model.pos(&m) {
                            Some(i) => {
                                let old = model.0[i].0;
                                model.0[i].0 = s;
                                prop_assert_eq!(sl.update_score(&m, s), Some(old));
                            }
                            None => {
                                model.0.push((s, m.clone()));
                                sl.insert(s, &m);
                            }
                        }
                        model.sort();
                    }
                    Op::Remove(m) => {
                        let m = member(m);
                        let want = model.pos(&m).map(|i| model.0.remove(i).0);
                        prop_assert_eq!(sl.remove(&m), want);
                    }
                    Op::Rank(m) => {
                        let m = member(m);
                        prop_assert_eq!(sl.rank(&m), model.pos(&m));
                        prop_assert_eq!(sl.score(&m), model.pos(&m).map(|i| model.0[i].0));
                    }
                    Op::Range(a, b, rev) => {
                        let n = model.0.len() + 2;
                        let (a, b) = (a as usize % n, b as usize % n);
                        let want: Vec<_> = model.0.get(a..b.min(model.0.len()).max(a.min(model.0.len()))).unwrap_or(&[]).to_vec();
                        let got: Vec<(f64, Vec<u8>)> = if rev {
                            let mut v: Vec<_> = sl.range(a, b).rev().map(|(m, s)| (s, m.to_vec())).collect();
                            v.reverse();
                            v
                        } else {
                            sl.range(a, b).map(|(m, s)| (s, m.to_vec())).collect()
                        };
                        prop_assert_eq!(got, want);
                        if a < model.0.len() {
                            let (m, s) = sl.get_by_rank(a).unwrap();
                            prop_assert_eq!((s, m.to_vec()), model.0[a].clone());
                        } else {
                            prop_assert!(sl.get_by_rank(a).is_none());
                        }
                    }
                    Op::RemoveRange(a, k) => {
                        let n = model.0.len() + 1;
                        let a = a as usize % n;
                        let b = (a + k as usize).min(model.0.len());
                        let removed = sl.remove_range(a, a + k as usize);
                        prop_assert_eq!(removed, b - a);
                        model.0.drain(a..b);
                    }
                    Op::CountBelow(s, m) => {
                        let (s, m) = (score(s), member(m));
                        let want = model.ranks_where(|x, y| less(x, y, s, &m)).len();
                        prop_assert_eq!(sl.count_while(|x, y| less(x, y, s, &m)), want);
                        let want = model.ranks_where(|x, _| x <= s).len();
                        prop_assert_eq!(sl.count_while(|x, _| x <= s), want);
                    }
                    Op::Bulk(k) => {
                        // Appending after the current maximum must keep spans right.
                        let top = model.0.last().map_or(f64::NEG_INFINITY, |e| e.0);
                        if top.is_finite() || top == f64::NEG_INFINITY {
                            let base = if top.is_finite() { top + 1.0 } else { 0.0 };
                            let items: Vec<(f64, Vec<u8>)> = (0..k)
                                .map(|i| (base + f64::from(i), format!("bulk{i}").into_bytes()))
                                .filter(|(_, m)| model.pos(m).is_none())
                                .collect();
                            sl.extend_sorted(items.iter().map(|(s, m)| (&m[..], *s)));
                            model.0.extend(items);
                        }
                    }
                }
                sl.check();
                prop_assert_eq!(sl.len(), model.0.len());
            }
            let all: Vec<_> = sl.iter().map(|(m, s)| (s, m.to_vec())).collect();
            prop_assert_eq!(&all, &model.0);
            let mut back: Vec<_> = sl.iter().rev().map(|(m, s)| (s, m.to_vec())).collect();
            back.reverse();
            prop_assert_eq!(&back, &model.0);
        }
    }

    #[test]
    fn many_removals_compact_the_slabs() {
        let mut sl = SkipList::with_seed(7);
        for i in 0..10_000u32 {
            sl.insert(f64::from(i), format!("member:{i}").as_bytes());
        }
        let big = sl.mem_usage();
        assert_eq!(sl.remove_range(0, 9_900), 9_900);
        sl.check();
        assert!(sl.mem_usage() < big / 10, "{} vs {}", sl.mem_usage(), big);
        assert_eq!(sl.rank(b"member:9950"), Some(50));
        for i in 9_900..9_990u32 {
            assert_eq!(
                sl.remove(format!("member:{i}").as_bytes()),
                Some(f64::from(i))
            );
            sl.check();
        }
        assert_eq!(sl.len(), 10);
    }

    #[test]
    fn scan_visits_every_member_across_resizes() {
        let mut sl = SkipList::with_seed(3);
        for i in 0..500u32 {
            sl.insert(f64::from(i), &i.to_be_bytes());
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut step = 0u32;
        loop {
            cursor = sl.scan(cursor, |m, _| {
                seen.insert(m.to_vec());
            });
            // Grow and shrink the table under the scan.
            if step < 10 {
                for j in 0..100u32 {
                    sl.insert(-1.0, &(100_000 + step * 100 + j).to_be_bytes());
                }
            } else if step < 20 {
                for j in 0..100u32 {
                    sl.remove(&(100_000 + (step - 10) * 100 + j).to_be_bytes());
                }
            }
            step += 1;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..500u32 {
            assert!(seen.contains(&i.to_be_bytes()[..]), "{i}");
        }
    }

    #[test]
    fn node_is_forty_bytes() {
        assert_eq!(std::mem::size_of::<Node>(), 40);
    }
}
