//! The stream type (`XADD` and friends), after Redis 7.0's `t_stream.c`.
//!
//! Entries live in a `BTreeMap` keyed by their ID (`ms-seq`, ordered as a
//! pair of `u64`s): range queries in both directions, point deletes and
//! trimming from the head are all `O(log n)` per step, which is what
//! Redis's radix tree of listpacks gives too. What a BTreeMap cannot show is
//! Redis's *node* structure, yet it is observable: `~` trimming removes
//! only whole nodes, `LIMIT` counts node by node, and `XINFO STREAM` reports
//! `radix-tree-keys`. So alongside the entries the stream keeps a small map
//! of node summaries (first ID → live and total entry counts, an estimate
//! of the listpack's bytes, the last ID appended), grown and emptied by the
//! same rules as Redis (`stream-node-max-entries`, `stream-node-max-bytes`),
//! without storing any entry twice.
//!
//! Consumer groups hold their pending entries list (PEL) as a `BTreeMap`
//! from ID to [`Nack`]; each consumer keeps the set of IDs it owns, as
//! Redis keeps a second rax per consumer.
//!
//! Memory: entry bytes are counted incrementally; groups are charged by
//! their sizes when asked (`O(groups + consumers)`, both small in
//! practice).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;

use crate::limits::EncodingLimits;
use crate::mem::alloc_size;

/// A stream entry ID: milliseconds and a sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    /// `0-0`.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// `18446744073709551615-18446744073709551615`.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// An ID.
    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID (`streamIncrID`), `None` past the maximum.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq == u64::MAX {
            if self.ms == u64::MAX {
                None
            } else {
                Some(StreamId::new(self.ms + 1, 0))
            }
        } else {
            Some(StreamId::new(self.ms, self.seq + 1))
        }
    }

    /// The previous ID (`streamDecrID`), `None` below `0-0`.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq == 0 {
            if self.ms == 0 {
                None
            } else {
                Some(StreamId::new(self.ms - 1, u64::MAX))
            }
        } else {
            Some(StreamId::new(self.ms, self.seq - 1))
        }
    }

    /// Whether this is `0-0`.
    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// The 16 big-endian bytes Redis uses as the ID's rax key.
    pub fn to_be_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.ms.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// An entry's field-value pairs, flattened (`f1 v1 f2 v2 ...`).
pub type Fields = Box<[Box<[u8]>]>;

/// Summary of one Redis listpack node.
#[derive(Clone, Debug)]
struct Node {
    /// Entries still present.
    live: usize,
    /// Entries ever appended to this node (live + deleted).
    total: usize,
    /// Estimated listpack bytes.
    bytes: usize,
    /// The last ID appended (deleted or not), for `MINID` trimming.
    last: StreamId,
}

/// Redis's `STREAM_LISTPACK_MAX_SIZE`: a node never exceeds 1 GB.
const LISTPACK_MAX_SIZE: usize = 1 << 30;

/// Estimated cost of one entry in the BTreeMap (key, value pointer and
/// the nodes' share of slack).
const BTREE_ENTRY: usize = 56;

/// Estimated cost of one PEL entry (group map node, the consumer's set node
/// and the `Nack`).
const PEL_ENTRY: usize = 96;

/// A pending entry: delivered to a consumer and not yet acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    /// The consumer that owns it.
    pub consumer: Box<[u8]>,
    /// Unix ms of the last delivery.
    pub delivery_time: i64,
    /// Times delivered.
    pub delivery_count: u64,
}

/// A consumer of a group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Consumer {
    /// Unix ms of the consumer's last interaction (Redis 7.0's `seen_time`).
    pub seen_time: i64,
    /// The IDs it owns in the group's PEL.
    pub pel: BTreeSet<StreamId>,
}

/// `entries_read` when unknown (`SCG_INVALID_ENTRIES_READ`).
pub const INVALID_ENTRIES_READ: i64 = -1;

/// A consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroup {
    /// The last ID delivered to any of its consumers.
    pub last_id: StreamId,
    /// Its logical read counter, [`INVALID_ENTRIES_READ`] when unknown.
    pub entries_read: i64,
    /// The pending entries list.
    pub pel: BTreeMap<StreamId, Nack>,
    /// Consumers by name (ordered as Redis's rax).
    pub consumers: BTreeMap<Box<[u8]>, Consumer>,
}

impl ConsumerGroup {
    /// A group starting after `last_id`.
    pub fn new(last_id: StreamId, entries_read: i64) -> ConsumerGroup {
        ConsumerGroup {
            last_id,
            entries_read,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        }
    }

    /// Removes `id` from the PEL and from its consumer's PEL; true if it
    /// was pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        match self.pel.remove(&id) {
            Some(n) => {
                if let Some(c) = self.consumers.get_mut(&n.consumer) {
                    c.pel.remove(&id);
                }
                true
            }
            None => false,
        }
    }

    /// Records a delivery of `id` to `consumer` (which must exist): a new
    /// PEL entry, or an existing one moved to `consumer`.
    pub fn assign(&mut self, id: StreamId, consumer: &[u8], time: i64, count: u64) {
        if let Some(old) = self.pel.get(&id) {
            if *old.consumer != *consumer {
                let prev = old.consumer.clone();
                if let Some(c) = self.consumers.get_mut(&prev) {
                    c.pel.remove(&id);
                }
            }
        }
        self.pel.insert(
            id,
            Nack {
                consumer: consumer.into(),
                delivery_time: time,
                delivery_count: count,
            },
        );
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
    }

    /// The consumer named `name`, created if absent; the bool says whether
    /// it was created.
    pub fn consumer_or_create(&mut self, name: &[u8], now: i64) -> (&mut Consumer, bool) {
        let created = !self.consumers.contains_key(name);
        let c = self
            .consumers
            .entry(name.into())
            .or_insert_with(|| Consumer {
                seen_time: now,
                pel: BTreeSet::new(),
            });
        (c, created)
    }

    /// Deletes a consumer and its pending entries; returns how many it had.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }

    fn mem(&self, name: &[u8]) -> usize {
        let consumers: usize = self
            .consumers
            .keys()
            .map(|k| alloc_size(k.len()) + 64)
            .sum();
        alloc_size(name.len()) + 96 + consumers + self.pel.len() * PEL_ENTRY
    }
}

/// Why an explicit ID could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddError {
    /// Equal to or smaller than the top item (`EDOM`).
    TooSmall,
    /// The sequence cannot be incremented (`ERANGE`).
    Overflow,
}

/// How to trim: to a length or to a minimum ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

/// A stream.
#[derive(Clone, Debug, Default)]
pub struct Stream {
    entries: BTreeMap<StreamId, Fields>,
    nodes: BTreeMap<StreamId, Node>,
    /// The ID of the last entry ever added (or set by `XSETID`).
    pub last_id: StreamId,
    /// The first entry's ID as Redis records it (0-0 when empty).
    pub first_id: StreamId,
    /// The greatest ID ever deleted.
    pub max_deleted_entry_id: StreamId,
    /// Entries ever added.
    pub entries_added: u64,
    /// Consumer groups by name.
    pub groups: BTreeMap<Box<[u8]>, ConsumerGroup>,
    entries_mem: usize,
}

/// Bytes a listpack spends on an element of `len` bytes (header + backlen).
fn lp_elem(len: usize) -> usize {
    len + if len < 64 { 2 } else { 4 }
}

impl Stream {
    /// An empty stream.
    pub fn new() -> Stream {
        Stream::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it has no entries (an empty stream is still a key).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of listpack nodes (`radix-tree-keys`).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Heap bytes, for `used_memory`.
    pub fn mem_usage(&self) -> usize {
        let groups: usize = self.groups.iter().map(|(k, g)| g.mem(k)).sum();
        self.entries_mem + self.nodes.len() * 64 + groups
    }

    fn fields_mem(fields: &[Box<[u8]>]) -> usize {
        alloc_size(std::mem::size_of_val(fields))
            + fields.iter().map(|f| alloc_size(f.len())).sum::<usize>()
            + BTREE_ENTRY
    }

    /// The ID `XADD` would give with `*` at time `now_ms` (`streamIncrID`
    /// when the clock is behind), `None` when the stream is exhausted.
    pub fn next_auto_id(&self, now_ms: u64) -> Option<StreamId> {
        if now_ms > self.last_id.ms {
            Some(StreamId::new(now_ms, 0))
        } else {
            self.last_id.incr()
        }
    }

    /// The ID for an explicit `ms-*` request.
    pub fn next_seq_id(&self, ms: u64) -> Result<StreamId, AddError> {
        if ms == self.last_id.ms {
            if self.last_id.seq == u64::MAX {
                return Err(AddError::TooSmall);
            }
            Ok(StreamId::new(ms, self.last_id.seq + 1))
        } else if ms > self.last_id.ms {
            Ok(StreamId::new(ms, 0))
        } else {
            Err(AddError::TooSmall)
        }
    }

    /// Appends an entry with `id`, which must be greater than `last_id`
    /// (the caller picked it with [`Stream::next_auto_id`] or checked it).
    pub fn append(
        &mut self,
        id: StreamId,
        fields: Fields,
        lim: &EncodingLimits,
    ) -> Result<(), AddError> {
        if id <= self.last_id {
            return Err(AddError::TooSmall);
        }
        let elen: usize = fields.iter().map(|f| f.len()).sum();
        let entry_bytes = 4 + fields.iter().map(|f| lp_elem(f.len())).sum::<usize>() + 4;
        let max_bytes = match lim.stream_node_max_bytes {
            0 => LISTPACK_MAX_SIZE,
            n => n.min(LISTPACK_MAX_SIZE),
        };
        let new_node = match self.nodes.iter_mut().next_back() {
            None => true,
            Some((_, n)) => {
                n.bytes + elen >= max_bytes
                    || (lim.stream_node_max_entries != 0 && n.total >= lim.stream_node_max_entries)
            }
        };
        if new_node {
            // Master entry: count, deleted, the fields, and a terminator.
            let master = 6
                + 3 * 2
                + fields
                    .iter()
                    .step_by(2)
                    .map(|f| lp_elem(f.len()))
                    .sum::<usize>()
                + 2;
            self.nodes.insert(
                id,
                Node {
                    live: 0,
                    total: 0,
                    bytes: master,
                    last: id,
                },
            );
        }
        if let Some((_, n)) = self.nodes.iter_mut().next_back() {
            n.live += 1;
            n.total += 1;
            n.bytes += entry_bytes;
            n.last = id;
        }
        self.entries_mem += Self::fields_mem(&fields);
        self.entries.insert(id, fields);
        self.last_id = id;
        self.entries_added += 1;
        if self.entries.len() == 1 {
            self.first_id = id;
        }
        Ok(())
    }

    /// Appends one node as an RDB holds it (`rdbLoadObject`): `master` is
    /// its key (the first ID ever appended to it), `entries` its live
    /// entries in order, `total` how many it ever held (live and deleted),
    /// `bytes` its listpack's size and `last` the last ID it ever held, so
    /// later appends and `~` trims see the node Redis had. Counters
    /// (`last_id`, `first_id`, `entries_added`, ...) are the caller's to set.
    /// A node without live entries is dropped, as Redis never keeps one.
    /// Returns false, changing nothing, when the node does not fit: IDs out
    /// of order, overlapping the previous node, or counts inconsistent.
    pub fn push_node(
        &mut self,
        master: StreamId,
        entries: Vec<(StreamId, Fields)>,
        total: usize,
        bytes: usize,
        last: StreamId,
    ) -> bool {
        if let Some((_, prev)) = self.nodes.iter().next_back() {
            if master <= prev.last {
                return false;
            }
        }
        if let Some((id, _)) = self.entries.last_key_value() {
            if master <= *id {
                return false;
            }
        }
        let ordered = entries.windows(2).all(|w| w[0].0 < w[1].0);
        let inside = match (entries.first(), entries.last()) {
            (Some(f), Some(l)) => master <= f.0 && l.0 <= last,
            _ => master <= last,
        };
        if !ordered || !inside || total < entries.len() {
            return false;
        }
        if entries.is_empty() {
            return true;
        }
        self.nodes.insert(
            master,
            Node {
                live: entries.len(),
                total,
                bytes,
                last,
            },
        );
        for (id, f) in entries {
            self.entries_mem += Self::fields_mem(&f);
            self.entries.insert(id, f);
        }
        true
    }

    /// The entry with `id`.
    pub fn get(&self, id: StreamId) -> Option<&Fields> {
        self.entries.get(&id)
    }

    /// Entries with IDs in `start..=end`, ascending.
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
    ) -> impl DoubleEndedIterator<Item = (StreamId, &Fields)> + '_ {
        let r = if start <= end {
            Some(
                self.entries
                    .range((Bound::Included(start), Bound::Included(end))),
            )
        } else {
            None
        };
        r.into_iter().flatten().map(|(k, v)| (*k, v))
    }

    /// The first entry, if any.
    pub fn first(&self) -> Option<(StreamId, &Fields)> {
        self.entries.first_key_value().map(|(k, v)| (*k, v))
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<(StreamId, &Fields)> {
        self.entries.last_key_value().map(|(k, v)| (*k, v))
    }

    fn node_of(&mut self, id: StreamId) -> Option<(StreamId, &mut Node)> {
        self.nodes
            .range_mut(..=id)
            .next_back()
            .map(|(k, n)| (*k, n))
    }

    /// Removes one entry (`streamDeleteItem`), without touching
    /// `first_id`/`max_deleted_entry_id` (see [`Stream::delete`]).
    fn remove_entry(&mut self, id: StreamId) -> bool {
        let Some(f) = self.entries.remove(&id) else {
            return false;
        };
        self.entries_mem -= Self::fields_mem(&f);
        if let Some((k, n)) = self.node_of(id) {
            n.live -= 1;
            if n.live == 0 {
                self.nodes.remove(&k);
            }
        }
        true
    }

    /// `XDEL`: removes the given IDs; returns how many existed.
    pub fn delete(&mut self, ids: &[StreamId]) -> usize {
        let mut deleted = 0;
        let mut first = false;
        for &id in ids {
            if self.remove_entry(id) {
                if id == self.first_id {
                    first = true;
                }
                if id > self.max_deleted_entry_id {
                    self.max_deleted_entry_id = id;
                }
                deleted += 1;
            }
        }
        if deleted > 0 {
            if self.entries.is_empty() {
                self.first_id = StreamId::MIN;
            } else if first {
                self.first_id = self.first().map(|e| e.0).unwrap_or_default();
            }
        }
        deleted
    }

    /// `streamTrim`: removes entries from the head by `how`; with `approx`
    /// only whole nodes; `limit` (0 = none) bounds the entries removed,
    /// node by node. Returns how many were removed.
    pub fn trim(&mut self, how: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted: u64 = 0;
        while let Some((&key, node)) = self.nodes.iter().next() {
            let len = self.entries.len() as u64;
            if let Trim::MaxLen(max) = how {
                if len <= max {
                    break;
                }
            }
            let live = node.live as u64;
            if limit != 0 && deleted + live > limit {
                break;
            }
            let remove_node = match how {
                Trim::MaxLen(max) => len - live >= max,
                Trim::MinId(min) => node.last < min,
            };
            if remove_node {
                let ids: Vec<StreamId> = self
                    .entries
                    .range(key..=node.last)
                    .map(|(k, _)| *k)
                    .collect();
                for id in ids {
                    if let Some(f) = self.entries.remove(&id) {
                        self.entries_mem -= Self::fields_mem(&f);
                    }
                }
                self.nodes.remove(&key);
                deleted += live;
                continue;
            }
            if approx {
                break;
            }
            // Trim inside this node, entry by entry.
            let last = node.last;
            let ids: Vec<StreamId> = self.entries.range(key..=last).map(|(k, _)| *k).collect();
            for id in ids {
                let stop = match how {
                    Trim::MaxLen(max) => self.entries.len() as u64 <= max,
                    Trim::MinId(min) => id >= min,
                };
                if stop {
                    break;
                }
                self.remove_entry(id);
                deleted += 1;
            }
            break;
        }
        if self.entries.is_empty() {
            self.first_id = StreamId::MIN;
        } else if deleted > 0 {
            self.first_id = self.first().map(|e| e.0).unwrap_or_default();
        }
        deleted
    }

    /// `streamRangeHasTombstones` from `start` (None = the beginning) to the end.
    pub fn range_has_tombstones(&self, start: Option<StreamId>) -> bool {
        if self.entries.is_empty() || self.max_deleted_entry_id.is_zero() {
            return false;
        }
        if self.first_id > self.max_deleted_entry_id {
            return false;
        }
        start.unwrap_or(StreamId::MIN) <= self.max_deleted_entry_id
    }

    /// `streamEstimateDistanceFromFirstEverEntry`: the logical read counter
    /// of `id`, [`INVALID_ENTRIES_READ`] when it cannot be known.
    pub fn estimate_distance(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        let added = self.entries_added as i64;
        let len = self.entries.len() as i64;
        if len == 0 && id <= self.last_id {
            return added;
        }
        if id == self.last_id {
            return added;
        } else if id > self.last_id {
            return INVALID_ENTRIES_READ;
        }
        if self.max_deleted_entry_id.is_zero() || self.max_deleted_entry_id < self.first_id {
            if id < self.first_id {
                return added - len;
            } else if id == self.first_id {
                return added - len + 1;
            }
        }
        INVALID_ENTRIES_READ
    }

    /// A group's lag (`streamReplyWithCGLag`), `None` when unknown.
    pub fn group_lag(&self, g: &ConsumerGroup) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != INVALID_ENTRIES_READ && !self.range_has_tombstones(Some(g.last_id)) {
            return Some(self.entries_added as i64 - g.entries_read);
        }
        let read = self.estimate_distance(g.last_id);
        (read != INVALID_ENTRIES_READ).then(|| self.entries_added as i64 - read)
    }

    /// Node summaries for the RDB writer: each node's first ID and the
    /// entries it still holds, in order.
    pub fn node_ranges(&self) -> Vec<(StreamId, StreamId)> {
        self.nodes.iter().map(|(k, n)| (*k, n.last)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lim(n: usize) -> EncodingLimits {
        EncodingLimits {
            stream_node_max_entries: n,
            ..EncodingLimits::default()
        }
    }

    fn fields(s: &str) -> Fields {
        vec![Box::from(&b"f"[..]), Box::from(s.as_bytes())].into_boxed_slice()
    }

    fn filled(n: u64, per_node: usize) -> Stream {
        let mut s = Stream::new();
        for i in 1..=n {
            s.append(StreamId::new(i, 0), fields("v"), &lim(per_node))
                .unwrap();
        }
        s
    }

    #[test]
    fn ids_order_and_step() {
        assert!(StreamId::new(1, 5) < StreamId::new(2, 0));
        assert_eq!(StreamId::new(1, u64::MAX).incr(), Some(StreamId::new(2, 0)));
        assert_eq!(StreamId::MAX.incr(), None);
        assert_eq!(StreamId::new(2, 0).decr(), Some(StreamId::new(1, u64::MAX)));
        assert_eq!(StreamId::MIN.decr(), None);
    }

    #[test]
    fn append_rejects_smaller_ids() {
        let mut s = filled(3, 100);
        assert_eq!(
            s.append(StreamId::new(3, 0), fields("x"), &lim(100)),
            Err(AddError::TooSmall)
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s.entries_added, 3);
    }

    #[test]
    fn approx_trim_removes_whole_nodes_only() {
        let mut s = filled(1000, 100);
        assert_eq!(s.node_count(), 10);
        assert_eq!(s.trim(Trim::MaxLen(555), true, 0), 400);
        assert_eq!(s.len(), 600);
        assert_eq!(s.trim(Trim::MaxLen(555), false, 0), 45);
        assert_eq!(s.len(), 555);
        assert_eq!(s.first_id, StreamId::new(446, 0));
    }

    #[test]
    fn trim_limit_counts_nodes() {
        let mut s = filled(100, 1);
        assert_eq!(s.trim(Trim::MaxLen(0), true, 30), 30);
        assert_eq!(s.len(), 70);
    }

    #[test]
    fn minid_trim() {
        let mut s = filled(10, 3);
        assert_eq!(s.trim(Trim::MinId(StreamId::new(6, 0)), false, 0), 5);
        assert_eq!(s.first().unwrap().0, StreamId::new(6, 0));
    }

    #[test]
    fn delete_tracks_first_and_max_deleted() {
        let mut s = filled(5, 2);
        assert_eq!(
            s.delete(&[
                StreamId::new(1, 0),
                StreamId::new(3, 0),
                StreamId::new(9, 0)
            ]),
            2
        );
        assert_eq!(s.first_id, StreamId::new(2, 0));
        assert_eq!(s.max_deleted_entry_id, StreamId::new(3, 0));
        assert!(s.range_has_tombstones(None));
        assert_eq!(
            s.delete(&[
                StreamId::new(2, 0),
                StreamId::new(4, 0),
                StreamId::new(5, 0)
            ]),
            3
        );
        assert!(s.is_empty());
        assert_eq!(s.node_count(), 0);
        assert_eq!(s.first_id, StreamId::MIN);
        assert_eq!(s.mem_usage(), 0);
    }

    #[test]
    fn push_node_keeps_order_and_counts() {
        let mut s = Stream::new();
        let e = |ms| (StreamId::new(ms, 0), fields("v"));
        assert!(s.push_node(
            StreamId::new(1, 0),
            vec![e(2), e(3)],
            3,
            100,
            StreamId::new(4, 0)
        ));
        // Overlapping the previous node, unordered, or more live than total.
        assert!(!s.push_node(StreamId::new(4, 0), vec![e(5)], 1, 10, StreamId::new(5, 0)));
        assert!(!s.push_node(
            StreamId::new(5, 0),
            vec![e(7), e(6)],
            2,
            10,
            StreamId::new(7, 0)
        ));
        assert!(!s.push_node(
            StreamId::new(5, 0),
            vec![e(5), e(6)],
            1,
            10,
            StreamId::new(6, 0)
        ));
        assert!(!s.push_node(StreamId::new(5, 0), vec![e(9)], 1, 10, StreamId::new(8, 0)));
        // A node without live entries is dropped.
        assert!(s.push_node(StreamId::new(5, 0), vec![], 2, 10, StreamId::new(6, 0)));
        assert_eq!(s.node_count(), 1);
        assert_eq!(s.len(), 2);
        assert!(s.mem_usage() > 0);
        s.last_id = StreamId::new(4, 0);
        // The loaded node holds 3 of at most 3: the next entry opens a node.
        s.append(StreamId::new(8, 0), fields("w"), &lim(3)).unwrap();
        assert_eq!(s.node_count(), 2);
        assert_eq!(s.delete(&[StreamId::new(2, 0), StreamId::new(3, 0)]), 2);
        assert_eq!(s.node_count(), 1);
    }

    #[test]
    fn pel_assign_and_ack() {
        let mut g = ConsumerGroup::new(StreamId::MIN, 0);
        g.consumer_or_create(b"a", 1);
        g.consumer_or_create(b"b", 1);
        g.assign(StreamId::new(1, 0), b"a", 5, 1);
        g.assign(StreamId::new(1, 0), b"b", 6, 2);
        assert!(g.consumers[&b"a"[..]].pel.is_empty());
        assert_eq!(g.consumers[&b"b"[..]].pel.len(), 1);
        assert!(g.ack(StreamId::new(1, 0)));
        assert!(!g.ack(StreamId::new(1, 0)));
        assert!(g.consumers[&b"b"[..]].pel.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8),
        Del(u16),
        TrimLen(u16, bool),
        TrimMin(u16, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u8..5).prop_map(Op::Add),
            2 => (0u16..300).prop_map(Op::Del),
            1 => (0u16..200, any::<bool>()).prop_map(|(n, a)| Op::TrimLen(n, a)),
            1 => (0u16..300, any::<bool>()).prop_map(|(n, a)| Op::TrimMin(n, a)),
        ]
    }

    proptest! {
        #[test]
        fn matches_a_btreemap_model(ops in proptest::collection::vec(op(), 1..200), per_node in 1usize..8) {
            let mut s = Stream::new();
            let mut model: BTreeMap<StreamId, String> = BTreeMap::new();
            let mut next = 1u64;
            for op in ops {
                match op {
                    Op::Add(k) => for _ in 0..k {
                        let id = StreamId::new(next, 0);
                        next += 1;
                        s.append(id, fields(&next.to_string()), &lim(per_node)).unwrap();
                        model.insert(id, next.to_string());
                    },
                    Op::Del(i) => {
                        let id = StreamId::new(u64::from(i), 0);
                        let n = s.delete(&[id]);
                        prop_assert_eq!(n, usize::from(model.remove(&id).is_some()));
                    }
                    Op::TrimLen(n, approx) => {
                        let before = model.len();
                        let d = s.trim(Trim::MaxLen(u64::from(n)), approx, 0) as usize;
                        for _ in 0..d { model.pop_first(); }
                        prop_assert_eq!(before - d, model.len());
                        if !approx { prop_assert!(model.len() <= usize::from(n)); }
                    }
                    Op::TrimMin(n, approx) => {
                        let min = StreamId::new(u64::from(n), 0);
                        let d = s.trim(Trim::MinId(min), approx, 0) as usize;
                        for _ in 0..d { model.pop_first(); }
                        if !approx { prop_assert!(model.keys().all(|k| *k >= min)); }
                    }
                }
                prop_assert_eq!(s.len(), model.len());
                let got: Vec<StreamId> = s.range(StreamId::MIN, StreamId::MAX).map(|e| e.0).collect();
                let want: Vec<StreamId> = model.keys().copied().collect();
                prop_assert_eq!(&got, &want);
                let lo = StreamId::new(next / 3, 0);
                let hi = StreamId::new(next / 2, 0);
                let got: Vec<StreamId> = s.range(lo, hi).rev().map(|e| e.0).collect();
                let want: Vec<StreamId> = model.range(lo..=hi).rev().map(|e| *e.0).collect();
                prop_assert_eq!(got, want);
                let live: usize = s.nodes.values().map(|n| n.live).sum();
                prop_assert_eq!(live, s.len());
                prop_assert_eq!(s.first_id, model.keys().next().copied().unwrap_or_default());
            }
        }
    }
}
