//! Sorted sets: a compact listpack while small, a skip list with rank spans
//! plus a member → node hash table once large, as Redis's `zset`.
//!
//! The encoding rules are Redis 7.0's, because `OBJECT ENCODING` exposes
//! them and clients (and Redis's own tests) depend on them: a set starts as
//! a listpack unless its first member is already too long, converts to a
//! skip list when an insertion would exceed `zset-max-listpack-entries` or
//! `zset-max-listpack-value`, and never converts back except when a
//! `*STORE` command builds a new result (Redis's
//! `zsetConvertToListpackIfNeeded`).

use crate::limits::EncodingLimits;
use crate::skiplist::{self, SkipList};
use crate::zlistpack::{self, ZListpack};

/// Redis's `LISTPACK_MAX_SAFETY_SIZE`: a listpack never grows past 1 GB.
const LISTPACK_MAX_BYTES: usize = 1 << 30;

/// A sorted-set value.
#[derive(Clone)]
pub struct ZSet {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Listpack(ZListpack),
    SkipList(Box<SkipList>),
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::new()
    }
}

impl std::fmt::Debug for ZSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the members: a million-member set must not end up in a log line.
        write!(f, "ZSet({}, len={})", self.encoding(), self.len())
    }
}

/// Options of one `ZADD` element (`NX XX GT LT INCR`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddFlags {
    /// Only add new members.
    pub nx: bool,
    /// Only update existing members.
    pub xx: bool,
    /// Only update when the new score is greater.
    pub gt: bool,
    /// Only update when the new score is less.
    pub lt: bool,
    /// Add the score to the current one (0 for a new member).
    pub incr: bool,
}

/// What [`ZSet::add`] did, with the member's resulting score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AddOutcome {
    /// A new member.
    Added(f64),
    /// An existing member whose score changed.
    Updated(f64),
    /// An existing member given the score it already had.
    Unchanged(f64),
    /// Nothing done because of NX, XX, GT or LT.
    Skipped,
    /// The score (or the incremented score) is NaN; nothing done.
    NotANumber,
}

/// A score interval; `min_ex`/`max_ex` make an end exclusive (`(1.5`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    /// Lower end.
    pub min: f64,
    /// Upper end.
    pub max: f64,
    /// Lower end excluded.
    pub min_ex: bool,
    /// Upper end excluded.
    pub max_ex: bool,
}

impl ScoreRange {
    /// Whether `v` is at or above the lower end.
    pub fn above_min(&self, v: f64) -> bool {
        if self.min_ex {
            v > self.min
        } else {
            v >= self.min
        }
    }

    /// Whether `v` is at or below the upper end.
    pub fn below_max(&self, v: f64) -> bool {
        if self.max_ex {
            v < self.max
        } else {
            v <= self.max
        }
    }
}

/// One end of a lexicographic range (`-`, `+`, `[a`, `(a`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexBound {
    /// `-`: before every string.
    Min,
    /// `+`: after every string.
    Max,
    /// `[a`: the string itself included.
    Incl(Vec<u8>),
    /// `(a`: the string itself excluded.
    Excl(Vec<u8>),
}

/// A lexicographic interval of members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexRange {
    /// Lower end.
    pub min: LexBound,
    /// Upper end.
    pub max: LexBound,
}

impl LexRange {
    /// Whether `m` is at or above the lower end.
    pub fn above_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Incl(s) => m >= &s[..],
            LexBound::Excl(s) => m > &s[..],
        }
    }

    /// Whether `m` is at or below the upper end.
    pub fn below_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Incl(s) => m <= &s[..],
            LexBound::Excl(s) => m < &s[..],
        }
    }
}

impl ZSet {
    /// An empty sorted set in the listpack encoding.
    pub fn new() -> Self {
        ZSet {
            repr: Repr::Listpack(ZListpack::new()),
        }
    }

    /// An empty sorted set about to receive `size_hint` members, the longest
    /// `member_len` bytes: a skip list right away when they cannot fit a
    /// listpack (Redis's `zsetTypeCreate` decision; `ZADD` passes 1 and its
    /// first member's length, `ZRANGESTORE` the range length).
    pub fn new_for(size_hint: usize, member_len: usize, limits: &EncodingLimits) -> Self {
        if size_hint > limits.zset_max_listpack_entries
            || member_len > limits.zset_max_listpack_value
        {
            ZSet {
                repr: Repr::SkipList(Box::default()),
            }
        } else {
            ZSet::new()
        }
    }

    /// A sorted set holding `items`, which must be sorted by (score, member)
    /// with distinct members; a listpack when the result fits one (the
    /// encoding `ZUNIONSTORE` and friends give their destination).
    pub fn from_sorted<'a, I>(items: I, limits: &EncodingLimits) -> Self
    where
        I: IntoIterator<Item = (&'a [u8], f64)>,
        I::IntoIter: Clone,
    {
        let it = items.into_iter();
        let (mut count, mut longest, mut total) = (0usize, 0usize, 0usize);
        for (m, _) in it.clone() {
            count += 1;
            longest = longest.max(m.len());
            total += m.len();
        }
        if count <= limits.zset_max_listpack_entries
            && longest <= limits.zset_max_listpack_value
            && total <= LISTPACK_MAX_BYTES
        {
            let mut lp = ZListpack::new();
            for (m, s) in it {
                lp.push_sorted(s, m);
            }
            ZSet {
                repr: Repr::Listpack(lp),
            }
        } else {
            let mut sl = SkipList::new();
            sl.extend_sorted(it);
            ZSet {
                repr: Repr::SkipList(Box::new(sl)),
            }
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Listpack(lp) => lp.len(),
            Repr::SkipList(sl) => sl.len(),
        }
    }

    /// No members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name `OBJECT ENCODING` answers.
    pub fn encoding(&self) -> &'static str {
        match &self.repr {
            Repr::Listpack(_) => "listpack",
            Repr::SkipList(_) => "skiplist",
        }
    }

    /// Approximate heap bytes, in O(1): the keyspace calls this before and
    /// after every write to keep `used_memory` current.
    pub fn mem_usage(&self) -> usize {
        match &self.repr {
            Repr::Listpack(lp) => lp.mem_usage(),
            Repr::SkipList(sl) => sl.mem_usage(),
        }
    }

    /// Members with their scores in ascending order (score, then member
    /// bytes). `SORT` and the conversions rely on this order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.repr {
            Repr::Listpack(lp) => Iter(IterRepr::Listpack(lp.iter())),
            Repr::SkipList(sl) => Iter(IterRepr::SkipList(sl.iter())),
        }
    }

    /// Members with 0-based ranks in `start..end`, ascending; `.rev()` gives
    /// them descending. O(log n) to start on a skip list.
    pub fn range(&self, start: usize, end: usize) -> Iter<'_> {
        match &self.repr {
            Repr::Listpack(lp) => Iter(IterRepr::Listpack(lp.range(start, end))),
            Repr::SkipList(sl) => Iter(IterRepr::SkipList(sl.range(start, end))),
        }
    }

    /// The member and score at 0-based ascending `rank`.
    pub fn get_by_rank(&self, rank: usize) -> Option<(&[u8], f64)> {
        match &self.repr {
            Repr::Listpack(lp) => lp.get_by_rank(rank),
            Repr::SkipList(sl) => sl.get_by_rank(rank),
        }
    }

    /// The score of `member`; O(1) on a skip list.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Listpack(lp) => lp.score(member),
            Repr::SkipList(sl) => sl.score(member),
        }
    }

    /// The 0-based rank of `member`, counted from the highest score when
    /// `reverse`.
    pub fn rank(&self, member: &[u8], reverse: bool) -> Option<usize> {
        let r = match &self.repr {
            Repr::Listpack(lp) => lp.rank(member),
            Repr::SkipList(sl) => sl.rank(member),
        }?;
        Some(if reverse { self.len() - 1 - r } else { r })
    }

    /// How many leading members (ascending) satisfy `pred`, which must hold
    /// for a prefix of the order and fail after it.
    fn count_while(&self, pred: impl FnMut(f64, &[u8]) -> bool) -> usize {
        match &self.repr {
            Repr::Listpack(lp) => lp.count_while(pred),
            Repr::SkipList(sl) => sl.count_while(pred),
        }
    }

    /// The ranks `start..end` of the members whose scores lie in `range`.
    pub fn score_ranks(&self, range: &ScoreRange) -> (usize, usize) {
        let start = self.count_while(|s, _| !range.above_min(s));
        let end = self.count_while(|s, _| range.below_max(s));
        (start, end.max(start))
    }

    /// The ranks `start..end` of the members in the lexicographic `range`
    /// (meaningful when all scores are equal, as in Redis).
    pub fn lex_ranks(&self, range: &LexRange) -> (usize, usize) {
        let start = self.count_while(|_, m| !range.above_min(m));
        let end = self.count_while(|_, m| range.below_max(m));
        (start, end.max(start))
    }

    fn convert_to_skiplist(&mut self) {
        if let Repr::Listpack(lp) = &self.repr {
            let mut sl = SkipList::new();
            sl.extend_sorted(lp.iter());
            self.repr = Repr::SkipList(Box::new(sl));
        }
    }

    /// Adds or updates one member with `ZADD`'s semantics (Redis's
    /// `zsetAdd`), converting to a skip list when a new member would not
    /// fit the listpack limits.
    pub fn add(
        &mut self,
        score: f64,
        member: &[u8],
        flags: AddFlags,
        limits: &EncodingLimits,
    ) -> AddOutcome {
        if score.is_nan() {
            return AddOutcome::NotANumber;
        }
        match self.score(member) {
            Some(cur) => {
                if flags.nx {
                    return AddOutcome::Skipped;
                }
                let mut score = score;
                if flags.incr {
                    score += cur;
                    if score.is_nan() {
                        return AddOutcome::NotANumber;
                    }
                }
                if (flags.lt && score >= cur) || (flags.gt && score <= cur) {
                    return AddOutcome::Skipped;
                }
                if score == cur {
                    return AddOutcome::Unchanged(score);
                }
                match &mut self.repr {
                    Repr::Listpack(lp) => lp.update_score(member, score),
                    Repr::SkipList(sl) => sl.update_score(member, score),
                };
                AddOutcome::Updated(score)
            }
            None => {
                if flags.xx {
                    return AddOutcome::Skipped;
                }
                if let Repr::Listpack(lp) = &self.repr {
                    if lp.len() + 1 > limits.zset_max_listpack_entries
                        || member.len() > limits.zset_max_listpack_value
                        || lp.bytes() + member.len() > LISTPACK_MAX_BYTES
                    {
                        self.convert_to_skiplist();
                    }
                }
                match &mut self.repr {
                    Repr::Listpack(lp) => lp.insert(score, member),
                    Repr::SkipList(sl) => sl.insert(score, member),
                }
                AddOutcome::Added(score)
            }
        }
    }

    /// Removes a member; true if it was present.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Listpack(lp) => lp.remove(member).is_some(),
            Repr::SkipList(sl) => sl.remove(member).is_some(),
        }
    }

    /// Removes the members with 0-based ranks in `start..end`; returns how
    /// many were removed.
    pub fn remove_range(&mut self, start: usize, end: usize) -> usize {
        match &mut self.repr {
            Repr::Listpack(lp) => lp.remove_range(start, end),
            Repr::SkipList(sl) => sl.remove_range(start, end),
        }
    }

    /// Removes and returns the member with the lowest (or, with `max`, the
    /// highest) score.
    pub fn pop(&mut self, max: bool) -> Option<(Vec<u8>, f64)> {
        let rank = if max { self.len().checked_sub(1)? } else { 0 };
        let (m, s) = self.get_by_rank(rank)?;
        let out = (m.to_vec(), s);
        self.remove_range(rank, rank + 1);
        Some(out)
    }

    /// One step of `ZSCAN`: calls `f` for some members and returns the next
    /// cursor (0 when done). A listpack is returned whole in one step, as
    /// Redis does.
    pub fn scan(&self, cursor: u64, mut f: impl FnMut(&[u8], f64)) -> u64 {
        match &self.repr {
            Repr::Listpack(lp) => {
                for (m, s) in lp.iter() {
                    f(m, s);
                }
                0
            }
            Repr::SkipList(sl) => sl.scan(cursor, f),
        }
    }

    /// Whether the set is in the listpack encoding (random sampling and
    /// scans pick their strategy by it, as Redis does).
    pub fn is_listpack(&self) -> bool {
        matches!(self.repr, Repr::Listpack(_))
    }
}

/// Iterator over a rank range of a [`ZSet`], both directions.
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    Listpack(zlistpack::Iter<'a>),
    SkipList(skiplist::Iter<'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Listpack(i) => i.next(),
            IterRepr::SkipList(i) => i.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            IterRepr::Listpack(i) => i.size_hint(),
            IterRepr::SkipList(i) => i.size_hint(),
        }
    }
}

impl DoubleEndedIterator for Iter<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Listpack(i) => i.next_back(),
            IterRepr::SkipList(i) => i.next_back(),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits(entries: usize, value: usize) -> EncodingLimits {
        EncodingLimits {
            zset_max_listpack_entries: entries,
            zset_max_listpack_value: value,
            ..EncodingLimits::default()
        }
    }

    fn sorted(mut v: Vec<(f64, Vec<u8>)>) -> Vec<(f64, Vec<u8>)> {
        v.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then_with(|| a.1.cmp(&b.1)));
        v
    }

    fn contents(z: &ZSet) -> Vec<(f64, Vec<u8>)> {
        z.iter().map(|(m, s)| (s, m.to_vec())).collect()
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(i8, u8, u8),
        Remove(u8),
        RemoveRange(u8, u8),
        Pop(bool),
        ScoreRange(i8, i8, bool, bool, bool),
        LexRange(u8, u8, u8, u8),
        Rank(u8, bool),
        Store,
    }

    fn member(m: u8) -> Vec<u8> {
        if m.is_multiple_of(23) {
            format!("long-member-{m}").into_bytes()
        } else {
            vec![b'a' + m % 26]
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (any::<i8>(), any::<u8>(), any::<u8>()).prop_map(|(s, m, f)| Op::Add(s, m, f)),
            3 => any::<u8>().prop_map(Op::Remove),
            1 => (any::<u8>(), 0u8..5).prop_map(|(a, n)| Op::RemoveRange(a, n)),
            1 => any::<bool>().prop_map(Op::Pop),
            2 => (any::<i8>(), any::<i8>(), any::<bool>(), any::<bool>(), any::<bool>())
                .prop_map(|(a, b, x, y, r)| Op::ScoreRange(a, b, x, y, r)),
            2 => (any::<u8>(), any::<u8>(), 0u8..4, 0u8..4).prop_map(|(a, b, x, y)| Op::LexRange(a, b, x, y)),
            2 => (any::<u8>(), any::<bool>()).prop_map(|(m, r)| Op::Rank(m, r)),
            1 => Just(Op::Store),
        ]
    }

    fn lex_bound(m: u8, kind: u8) -> LexBound {
        match kind {
            0 => LexBound::Min,
            1 => LexBound::Max,
            2 => LexBound::Incl(member(m)),
            _ => LexBound::Excl(member(m)),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        // ZSet, through both encodings and the conversions between them,
        // against a sorted vector with ZADD's flag semantics.
        #[test]
        fn behaves_like_a_sorted_vec_across_encodings(
            entries in 0usize..12,
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let lim = limits(entries, 8);
            let mut z = ZSet::new_for(1, 1, &lim);
            let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Add(s, m, f) => {
                        let score = f64::from(s % 6);
                        let m = member(m);
                        let flags = AddFlags {
                            nx: f & 1 != 0,
                            xx: f & 2 != 0 && f & 1 == 0,
                            gt: f & 4 != 0 && f & 1 == 0,
                            lt: f & 8 != 0 && f & 5 == 0,
                            incr: f & 16 != 0,
                        };
                        let want = match model.iter().position(|e| e.1 == m) {
                            Some(i) if !flags.nx => {
                                let cur = model[i].0;
                                let new = if flags.incr { cur + score } else { score };
                                if (flags.lt && new >= cur) || (flags.gt && new <= cur) {
                                    AddOutcome::Skipped
                                } else if new == cur {
                                    AddOutcome::Unchanged(new)
                                } else {
                                    model[i].0 = new;
                                    AddOutcome::Updated(new)
                                }
                            }
                            Some(_) => AddOutcome::Skipped,
                            None if flags.xx => AddOutcome::Skipped,
                            None => {
                                model.push((score, m.clone()));
                                AddOutcome::Added(score)
                            }
                        };
                        let was_skiplist = !z.is_listpack();
                        prop_assert_eq!(z.add(score, &m, flags, &lim), want);
                        model = sorted(model);
                        // Conversion happens exactly at Redis's thresholds and is one-way.
                        if was_skiplist {
                            prop_assert!(!z.is_listpack());
                        }
                        if z.is_listpack() {
                            prop_assert!(z.len() <= entries);
                            prop_assert!(z.iter().all(|(m, _)| m.len() <= 8));
                        }
                    }
                    Op::Remove(m) => {
                        let m = member(m);
                        let pos = model.iter().position(|e| e.1 == m);
                        if let Some(i) = pos {
                            model.remove(i);
                        }
                        prop_assert_eq!(z.remove(&m), pos.is_some());
                    }
                    Op::RemoveRange(a, k) => {
                        let a = a as usize % (model.len() + 1);
                        let b = (a + k as usize).min(model.len());
                        prop_assert_eq!(z.remove_range(a, a + k as usize), b - a);
                        model.drain(a..b);
                    }
                    Op::Pop(max) => {
                        let want = if max { model.pop() } else if model.is_empty() { None } else { Some(model.remove(0)) };
                        prop_assert_eq!(z.pop(max), want.map(|(s, m)| (m, s)));
                    }
                    Op::ScoreRange(a, b, min_ex, max_ex, rev) => {
                        let r = ScoreRange { min: f64::from(a % 7) - 0.5 * f64::from(a % 2), max: f64::from(b % 7), min_ex, max_ex };
                        let want: Vec<_> = model.iter().filter(|e| r.above_min(e.0) && r.below_max(e.0)).cloned().collect();
                        let (start, end) = z.score_ranks(&r);
                        let mut got: Vec<_> = if rev {
                            z.range(start, end).rev().map(|(m, s)| (s, m.to_vec())).collect()
                        } else {
                            z.range(start, end).map(|(m, s)| (s, m.to_vec())).collect()
                        };
                        if rev {
                            got.reverse();
                        }
                        prop_assert_eq!(got, want);
                    }
                    Op::LexRange(a, b, x, y) => {
                        // Lex ranges are defined on equal scores: check on a copy.
                        let mut flat = ZSet::new_for(1, 1, &lim);
                        for (_, m) in &model {
                            flat.add(0.0, m, AddFlags::default(), &lim);
                        }
                        let r = LexRange { min: lex_bound(a, x), max: lex_bound(b, y) };
                        let mut names: Vec<_> = model.iter().map(|e| e.1.clone()).collect();
                        names.sort();
                        let want: Vec<_> = names.into_iter().filter(|m| r.above_min(m) && r.below_max(m)).collect();
                        let (start, end) = flat.lex_ranks(&r);
                        let got: Vec<_> = flat.range(start, end).map(|(m, _)| m.to_vec()).collect();
                        prop_assert_eq!(got, want);
                    }
                    Op::Rank(m, rev) => {
                        let m = member(m);
                        let want = model.iter().position(|e| e.1 == m).map(|i| if rev { model.len() - 1 - i } else { i });
                        prop_assert_eq!(z.rank(&m, rev), want);
                        prop_assert_eq!(z.score(&m), model.iter().find(|e| e.1 == m).map(|e| e.0));
                    }
                    Op::Store => {
                        let copy = ZSet::from_sorted(model.iter().map(|(s, m)| (&m[..], *s)), &lim);
                        let fits = model.len() <= entries && model.iter().all(|e| e.1.len() <= 8);
                        prop_assert_eq!(copy.is_listpack(), fits);
                        prop_assert_eq!(contents(&copy), model.clone());
                        z = copy;
                    }
                }
                prop_assert_eq!(z.len(), model.len());
                prop_assert_eq!(contents(&z), model.clone());
                let mut back: Vec<_> = z.iter().rev().map(|(m, s)| (s, m.to_vec())).collect();
                back.reverse();
                prop_assert_eq!(back, model.clone());
            }
        }
    }

    #[test]
    fn first_member_too_long_starts_as_a_skiplist() {
        let lim = EncodingLimits::default();
        assert_eq!(ZSet::new_for(1, 64, &lim).encoding(), "listpack");
        assert_eq!(ZSet::new_for(1, 65, &lim).encoding(), "skiplist");
        assert_eq!(ZSet::new_for(1, 1, &limits(0, 64)).encoding(), "skiplist");
    }

    #[test]
    fn listpack_stores_negative_zero_as_zero() {
        let lim = EncodingLimits::default();
        let mut z = ZSet::new();
        z.add(-0.0, b"a", AddFlags::default(), &lim);
        assert!(z.score(b"a").unwrap().is_sign_positive());
        let mut z = ZSet::new_for(1, 100, &lim);
        z.add(-0.0, b"a", AddFlags::default(), &lim);
        assert!(z.score(b"a").unwrap().is_sign_negative());
    }

    #[test]
    fn nan_is_refused() {
        let lim = EncodingLimits::default();
        let mut z = ZSet::new();
        assert_eq!(
            z.add(f64::NAN, b"a", AddFlags::default(), &lim),
            AddOutcome::NotANumber
        );
        z.add(f64::INFINITY, b"a", AddFlags::default(), &lim);
        let incr = AddFlags {
            incr: true,
            ..AddFlags::default()
        };
        assert_eq!(
            z.add(f64::NEG_INFINITY, b"a", incr, &lim),
            AddOutcome::NotANumber
        );
        assert_eq!(z.score(b"a"), Some(f64::INFINITY));
    }
}
