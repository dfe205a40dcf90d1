//! Sorted sets: a listpack-like flat vector while small, then a skip list
//! with rank spans plus a member → score map, as Redis's `zset`. Filled in
//! by the sorted-set issue.

/// A sorted-set value.
#[derive(Debug, Clone, Default)]
pub struct ZSet {
    /// (score, member) sorted by score then member bytes.
    entries: Vec<(f64, Box<[u8]>)>,
}

impl ZSet {
    /// An empty sorted set.
    pub fn new() -> Self {
        ZSet::default()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No members.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The name `OBJECT ENCODING` answers.
    pub fn encoding(&self) -> &'static str {
        "listpack"
    }

    /// Members with their scores in ascending order (score, then member
    /// bytes). `SORT` and the conversions rely on this order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], f64)> {
        self.entries.iter().map(|(s, m)| (&**m, *s))
    }

    /// Approximate heap bytes.
    pub fn mem_usage(&self) -> usize {
        self.entries.iter().map(|(_, m)| m.len() + 32).sum()
    }
}
