//! The small encoding of a sorted set: every (member, score) pair back to
//! back in one byte buffer, sorted, like Redis's listpack.
//!
//! A small sorted set costs one allocation and about ten bytes of overhead
//! per member instead of a node, a hash slot and a separate member
//! allocation. Every operation is a linear walk, which is what Redis does
//! too; the size thresholds (`zset-max-listpack-entries`,
//! `zset-max-listpack-value`) keep the walks short.
//!
//! Entry layout: `len` (LEB128) · member bytes · score (8 bytes, little
//! endian) · `back` (the entry's byte length as LEB128, bytes reversed, so a
//! walk from the end can find where the entry starts).

/// A sorted run of (member, score) pairs in one buffer.
#[derive(Clone, Debug, Default)]
pub struct ZListpack {
    buf: Vec<u8>,
    len: u32,
}

fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn get_varint(buf: &[u8], mut pos: usize) -> (usize, usize) {
    let mut v = 0usize;
    let mut shift = 0;
    loop {
        let b = buf[pos];
        pos += 1;
        v |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return (v, pos);
        }
        shift += 7;
    }
}

/// Reads the reversed varint that ends at `end`; returns (value, its first byte).
fn get_back_varint(buf: &[u8], end: usize) -> (usize, usize) {
    let mut v = 0usize;
    let mut shift = 0;
    let mut pos = end;
    loop {
        pos -= 1;
        let b = buf[pos];
        v |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return (v, pos);
        }
        shift += 7;
    }
}

/// `(a_score, a_member) < (b_score, b_member)` in sorted-set order.
#[inline]
fn less(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> bool {
    a_score < b_score || (a_score == b_score && a_member < b_member)
}

impl ZListpack {
    /// An empty listpack.
    pub fn new() -> Self {
        ZListpack::default()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// No members.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Encoded size in bytes (Redis refuses listpacks over 1 GB).
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Heap bytes held, as allocated.
    pub fn mem_usage(&self) -> usize {
        crate::mem::alloc_size(self.buf.capacity())
    }

    /// The entry starting at `pos`: (member, score, start of the next entry).
    #[inline]
    fn entry(&self, pos: usize) -> (&[u8], f64, usize) {
        let (mlen, p) = get_varint(&self.buf, pos);
        let member = &self.buf[p..p + mlen];
        let mut sb = [0u8; 8];
        sb.copy_from_slice(&self.buf[p + mlen..p + mlen + 8]);
        let body = p + mlen + 8 - pos;
        (
            member,
            f64::from_le_bytes(sb),
            p + mlen + 8 + varint_len(body),
        )
    }

    /// Start of the entry that ends at `end`.
    #[inline]
    fn entry_before(&self, end: usize) -> usize {
        let (body, p) = get_back_varint(&self.buf, end);
        p - body
    }

    /// Byte offset of the entry with 0-based `rank` (`len` gives the end).
    fn offset_of(&self, rank: usize) -> usize {
        if rank >= self.len() {
            return self.buf.len();
        }
        if rank <= self.len() / 2 {
            let mut pos = 0;
            for _ in 0..rank {
                pos = self.entry(pos).2;
            }
            pos
        } else {
            let mut pos = self.buf.len();
            for _ in rank..self.len() {
                pos = self.entry_before(pos);
            }
            pos
        }
    }

    /// Finds a member: (byte offset, rank, score).
    fn find(&self, member: &[u8]) -> Option<(usize, usize, f64)> {
        let mut pos = 0;
        for rank in 0..self.len() {
            let (m, s, next) = self.entry(pos);
            if m == member {
                return Some((pos, rank, s));
            }
            pos = next;
        }
        None
    }

    /// The score of `member`.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.find(member).map(|(_, _, s)| s)
    }

    /// Rank (0-based, ascending) of `member`.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        self.find(member).map(|(_, r, _)| r)
    }

    /// Adds a member that is not present. A score of -0 is stored as 0, as
    /// Redis's listpack stores integral scores as integers.
    pub fn insert(&mut self, score: f64, member: &[u8]) {
        debug_assert!(self.find(member).is_none());
        let score = if score == 0.0 { 0.0 } else { score };
        let mut pos = 0;
        while pos < self.buf.len() {
            let (m, s, next) = self.entry(pos);
            if less(score, member, s, m) {
                break;
            }
            pos = next;
        }
        let mut e = Vec::with_capacity(member.len() + 16);
        put_varint(&mut e, member.len());
        e.extend_from_slice(member);
        e.extend_from_slice(&score.to_le_bytes());
        let body = e.len();
        let at = e.len();
        put_varint(&mut e, body);
        e[at..].reverse();
        self.buf.splice(pos..pos, e);
        self.len += 1;
    }

    /// Appends a member known to sort after every present one.
    pub fn push_sorted(&mut self, score: f64, member: &[u8]) {
        let score = if score == 0.0 { 0.0 } else { score };
        let start = self.buf.len();
        put_varint(&mut self.buf, member.len());
        self.buf.extend_from_slice(member);
        self.buf.extend_from_slice(&score.to_le_bytes());
        let body = self.buf.len() - start;
        let at = self.buf.len();
        put_varint(&mut self.buf, body);
        self.buf[at..].reverse();
        self.len += 1;
    }

    /// Removes a member; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (pos, _, s) = self.find(member)?;
        let end = self.entry(pos).2;
        self.buf.drain(pos..end);
        self.len -= 1;
        self.shrink();
        Some(s)
    }

    /// Changes a present member's score (remove and re-insert, as Redis).
    pub fn update_score(&mut self, member: &[u8], score: f64) -> Option<f64> {
        let old = self.remove(member)?;
        self.insert(score, member);
        Some(old)
    }

    /// How many leading members satisfy a prefix-closed predicate.
    pub fn count_while(&self, mut pred: impl FnMut(f64, &[u8]) -> bool) -> usize {
        let mut pos = 0;
        for rank in 0..self.len() {
            let (m, s, next) = self.entry(pos);
            if !pred(s, m) {
                return rank;
            }
            pos = next;
        }
        self.len()
    }

    /// The member and score at 0-based `rank`.
    pub fn get_by_rank(&self, rank: usize) -> Option<(&[u8], f64)> {
        if rank >= self.len() {
            return None;
        }
        let (m, s, _) = self.entry(self.offset_of(rank));
        Some((m, s))
    }

    /// Members with ranks in `start..end`, ascending (reverse for descending).
    pub fn range(&self, start: usize, end: usize) -> Iter<'_> {
        let end = end.min(self.len());
        if start >= end {
            return Iter {
                lp: self,
                front: 0,
                back: 0,
                left: 0,
            };
        }
        Iter {
            lp: self,
            front: self.offset_of(start),
            back: self.offset_of(end),
            left: end - start,
        }
    }

    /// All members, ascending.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            lp: self,
            front: 0,
            back: self.buf.len(),
            left: self.len(),
        }
    }

    /// Removes ranks `start..end`; returns how many were removed.
    pub fn remove_range(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len());
        if start >= end {
            return 0;
        }
        let a = self.offset_of(start);
        let b = self.offset_of(end);
        self.buf.drain(a..b);
        self.len -= (end - start) as u32;
        self.shrink();
        end - start
    }

    fn shrink(&mut self) {
        if self.buf.capacity() > 64 && self.buf.len() < self.buf.capacity() / 2 {
            self.buf.shrink_to(self.buf.len() * 5 / 4);
        }
    }
}

/// Iterator over a rank range of a [`ZListpack`], both directions.
pub struct Iter<'a> {
    lp: &'a ZListpack,
    front: usize,
    /// End of the last entry still to yield.
    back: usize,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (m, s, next) = self.lp.entry(self.front);
        self.front = next;
        Some((m, s))
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
        self.left -= 1;
        let start = self.lp.entry_before(self.back);
        self.back = start;
        let (m, s, _) = self.lp.entry(start);
        Some((m, s))
    }
}

impl ExactSizeIterator for Iter<'_> {}
