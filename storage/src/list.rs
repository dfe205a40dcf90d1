//! Lists. Redis 7.0 stores every list as a quicklist (a linked list of
//! listpacks) and `OBJECT ENCODING` always answers `quicklist`; we keep the
//! elements in a ring buffer, which gives the same O(1) pushes and pops at
//! both ends and O(1) indexing, and track the bytes held for `used_memory`.

use std::collections::VecDeque;

use crate::mem::{alloc_size, array_size};

/// A list value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct List {
    items: VecDeque<Box<[u8]>>,
    /// Heap bytes of the elements' own allocations.
    bytes: usize,
}

/// An element's own allocation (its slot in the ring is counted with the
/// ring's capacity).
fn cost(e: &[u8]) -> usize {
    alloc_size(e.len())
}

impl List {
    /// An empty list (a key never holds one: empty lists are deleted).
    pub fn new() -> Self {
        List::default()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// No elements.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Heap bytes as allocated (elements and ring), kept incrementally.
    pub fn mem_usage(&self) -> usize {
        self.bytes + array_size::<Box<[u8]>>(self.items.capacity())
    }

    /// Adds at the head (`LPUSH`).
    pub fn push_front(&mut self, e: &[u8]) {
        self.bytes += cost(e);
        self.items.push_front(e.into());
    }

    /// Adds at the tail (`RPUSH`).
    pub fn push_back(&mut self, e: &[u8]) {
        self.bytes += cost(e);
        self.items.push_back(e.into());
    }

    /// Removes the head.
    pub fn pop_front(&mut self) -> Option<Box<[u8]>> {
        let e = self.items.pop_front()?;
        self.bytes -= cost(&e);
        Some(e)
    }

    /// Removes the tail.
    pub fn pop_back(&mut self) -> Option<Box<[u8]>> {
        let e = self.items.pop_back()?;
        self.bytes -= cost(&e);
        Some(e)
    }

    /// The element at a zero-based index from the head.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.items.get(i).map(|b| &**b)
    }

    /// Replaces the element at `i`; false when out of range.
    pub fn set(&mut self, i: usize, e: &[u8]) -> bool {
        match self.items.get_mut(i) {
            Some(slot) => {
                self.bytes = self.bytes - cost(slot) + cost(e);
                *slot = e.into();
                true
            }
            None => false,
        }
    }

    /// Inserts before position `i` (`i == len` appends).
    pub fn insert(&mut self, i: usize, e: &[u8]) {
        self.bytes += cost(e);
        self.items.insert(i, e.into());
    }

    /// Removes the element at `i`.
    pub fn remove(&mut self, i: usize) -> Option<Box<[u8]>> {
        let e = self.items.remove(i)?;
        self.bytes -= cost(&e);
        Some(e)
    }

    /// Keeps only the elements in `start..=end` (both clamped), like `LTRIM`.
    pub fn keep_range(&mut self, start: usize, end: usize) {
        if start > end || start >= self.items.len() {
            self.items.clear();
            self.bytes = 0;
            return;
        }
        let end = end.min(self.items.len() - 1);
        for e in self.items.drain(end + 1..) {
            self.bytes -= cost(&e);
        }
        for e in self.items.drain(..start) {
            self.bytes -= cost(&e);
        }
        if self.items.capacity() > 64 && self.items.len() * 4 < self.items.capacity() {
            self.items.shrink_to_fit();
        }
    }

    /// Elements from head to tail.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        self.items.iter().map(|b| &**b)
    }

    /// Elements in `start..=end` (clamped) from head to tail.
    pub fn range(&self, start: usize, end: usize) -> impl DoubleEndedIterator<Item = &[u8]> {
        let len = self.items.len();
        let (s, e) = if start >= len || start > end {
            (0, 0)
        } else {
            (start, end.min(len - 1) + 1)
        };
        self.items.range(s..e).map(|b| &**b)
    }

    /// Removes up to `count` elements equal to `e` (0 = all), from the head
    /// when `from_head`, else from the tail (`LREM`); returns how many.
    pub fn remove_matching(&mut self, e: &[u8], count: usize, from_head: bool) -> usize {
        let limit = if count == 0 { usize::MAX } else { count };
        let mut removed = 0;
        if from_head {
            let mut i = 0;
            while i < self.items.len() && removed < limit {
                if &*self.items[i] == e {
                    self.remove(i);
                    removed += 1;
                } else {
                    i += 1;
                }
            }
        } else {
            let mut i = self.items.len();
            while i > 0 && removed < limit {
                i -= 1;
                if &*self.items[i] == e {
                    self.remove(i);
                    removed += 1;
                }
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn behaves_like_a_vecdeque(ops in proptest::collection::vec((0u8..8, 0u8..6, 0usize..12), 0..300)) {
            let mut l = List::new();
            let mut m: VecDeque<Vec<u8>> = VecDeque::new();
            for (op, v, i) in ops {
                let e = vec![v; (v as usize) % 3];
                match op {
                    0 => { l.push_front(&e); m.push_front(e); }
                    1 => { l.push_back(&e); m.push_back(e); }
                    2 => prop_assert_eq!(l.pop_front().map(|b| b.to_vec()), m.pop_front()),
                    3 => prop_assert_eq!(l.pop_back().map(|b| b.to_vec()), m.pop_back()),
                    4 => if i <= m.len() { l.insert(i, &e); m.insert(i, e); },
                    5 => { let want = m.iter().filter(|x| **x == e).count().min(if i == 0 { usize::MAX } else { i });
                           let got = l.remove_matching(&e, i, v % 2 == 0);
                           prop_assert_eq!(got, want);
                           let mut left = want;
                           if v % 2 == 0 { m.retain(|x| if *x == e && left > 0 { left -= 1; false } else { true }); }
                           else { let mut r: Vec<_> = m.drain(..).rev().collect(); r.retain(|x| if *x == e && left > 0 { left -= 1; false } else { true }); m = r.into_iter().rev().collect(); } }
                    6 => { let end = i + (v as usize); l.keep_range(i, end);
                           let mut n: VecDeque<Vec<u8>> = m.iter().enumerate().filter(|(j, _)| *j >= i && *j <= end).map(|(_, x)| x.clone()).collect();
                           std::mem::swap(&mut m, &mut n); }
                    _ => if i < m.len() { prop_assert!(l.set(i, &e)); m[i] = e; },
                }
                let got: Vec<Vec<u8>> = l.iter().map(|x| x.to_vec()).collect();
                let want: Vec<Vec<u8>> = m.iter().cloned().collect();
                prop_assert_eq!(got, want);
                prop_assert_eq!(l.bytes, m.iter().map(|x| cost(x)).sum::<usize>());
            }
        }
    }
}
